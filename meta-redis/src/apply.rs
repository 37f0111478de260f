//! `apply`: a batch as one round trip of calls of the library's `batch` entry point.
//!
//! A round is: (1) one pipeline of reads for the keys some ops cannot know beforehand (the
//! inode an entry names, an inode's chunk indexes, a directory's ancestors, a session's
//! holdings, a lock hash) — skipped when no op of the round needs them, so a batch of
//! creates is exactly one round trip; (2) one pipeline of calls carrying every op of the
//! round, applied in order, each atomic on its own. A call carries at most
//! [`MAX_CALL_OPS`] ops and about [`MAX_CALL_BYTES`] bytes, so one call never blocks the
//! server for long; a round carries at most [`MAX_ROUND_OPS`]. An op re-checks what was read
//! and, when it changed (another client, or an earlier op of the same batch), stops its call
//! there ("retry"); a sequence token (`lua/batch.lua`) makes the round's later calls skip,
//! and the next round reads again and resumes at that op.

use std::time::Duration;

use meta_core::kv::decode_attr;
use meta_core::logic::precheck;
use meta_core::types::CHUNK_BITS;
use meta_core::{
    Attr, Entry, Error, ErrorKind, Ino, LockKind, Op, OpOutput, RenameFlags, Result, SetAttrMask,
};
use redis::{Pipeline, Value, pipe};

use crate::Inner;
use crate::calls::CallArgs;
use crate::error::{Stage, classify, did_not_run};
use crate::plan::{Call, Known, kind_from_name, plan};
use crate::reply::{bytes, internal, list, quota_of, split_member};
use crate::scripts::Entry as Fn;

/// Most ops one call carries (also [`crate::MAX_BATCH_OPS`], the most the batcher sends per
/// `apply`, so a batch is one call). Measured on Redis 7.0.15 (docs/benchmarks.md, SLOWLOG
/// during `meta import`): a create with one slice costs ≈ 11 µs of server time inside a
/// call, so 160 of them block the server for ≈ 1.8 ms, under the ≈ 2 ms a call may take;
/// the heaviest ops (a release of many inodes, a rename walking a deep chain) are also
/// bounded by [`MAX_CALL_BYTES`].
pub const MAX_CALL_OPS: usize = 160;

/// Most ops one round carries (also [`crate::MAX_BATCH_OPS`]): up to 7 calls of
/// [`MAX_CALL_OPS`] sent as one pipeline, so a batch of 1,024 creates is one round trip
/// while no single call holds the server for more than ≈ 2 ms.
pub const MAX_ROUND_OPS: usize = 1024;

/// About the most bytes of keys and arguments one call carries (at least one op always
/// goes, whatever its size).
pub const MAX_CALL_BYTES: usize = 1 << 20;

/// Rounds in a row that may end without any op completing (each time the round's first op
/// asked for a retry, i.e. other clients keep changing what it read) before the remaining
/// ops fail with `Conflict`.
const MAX_STALLS: u32 = 16;

/// Deepest directory chain walked before a rename (as `MAX_DEPTH` in `lua/base.lua`).
const MAX_DEPTH: usize = 100_000;

/// How a call ended.
enum Stop {
    /// Every op of the call ran.
    Done,
    /// The op after the last result found what was read changed; nothing of it was written.
    Retry,
    /// The op after the last result raised a server error (the message).
    Fault(String),
    /// An earlier call of the round did not run to its end; this one did nothing.
    Skip,
}

/// Applies `ops` in rounds (see the module doc).
pub(crate) async fn apply(inner: &Inner, ops: &[Op]) -> Result<Vec<Result<OpOutput>>> {
    let mut results: Vec<Option<Result<OpOutput>>> = ops
        .iter()
        .map(|op| precheck(op).err().map(|e| Err(e.context_prefix(op.name()))))
        .collect();
    let mut ran_any = false;
    let mut stalls = 0u32;
    loop {
        let pending: Vec<usize> = (0..ops.len())
            .filter(|&i| results[i].is_none())
            .take(MAX_ROUND_OPS)
            .collect();
        if pending.is_empty() {
            break;
        }
        let declared = inner.strict();
        let mut known = match preread(inner, ops, &pending, declared).await {
            Ok(k) => k,
            Err(e) => return finish(results, e, ran_any),
        };
        if let Some(k) = known.first_mut() {
            k.first = true;
        }
        let mut planned: Vec<(usize, Call)> = Vec::with_capacity(pending.len());
        for (&i, k) in pending.iter().zip(&known) {
            match plan(&inner.layout, &ops[i], k, declared) {
                Ok(c) => planned.push((i, c)),
                Err(e) => return finish(results, e, ran_any),
            }
        }
        let groups = group(&planned);
        let outcomes = match send(inner, &planned, &groups, declared).await {
            Ok(r) => r,
            Err(e) => return finish(results, e, ran_any),
        };
        let mut progress = false;
        for (n, (range, outcome)) in groups.iter().zip(outcomes).enumerate() {
            let calls = &planned[range.clone()];
            let (stop, replies) = match outcome {
                Ok(r) => r,
                // A later call refused before it ran (e.g. OOM): the next round starts
                // there and meets the refusal as its first call.
                Err(e) if n > 0 && e.kind() != ErrorKind::Indeterminate => break,
                Err(e) => return finish(results, e, ran_any || progress),
            };
            if matches!(stop, Stop::Skip) {
                if n == 0 {
                    return finish(results, internal("redis: the first call skipped"), ran_any);
                }
                break;
            }
            progress |= !replies.is_empty() || matches!(stop, Stop::Fault(_));
            let mut after = 0;
            for ((i, _), v) in calls.iter().zip(replies) {
                results[*i] = Some(op_result(&ops[*i], v));
                after += 1;
            }
            if let Stop::Fault(msg) = &stop
                && let Some((i, _)) = calls.get(after)
            {
                results[*i] = Some(Err(fault(msg, ops[*i].name())));
            }
            if !matches!(stop, Stop::Done) {
                break;
            }
        }
        ran_any |= progress;
        if progress {
            stalls = 0;
        } else {
            stalls += 1;
            if stalls >= MAX_STALLS {
                let e = Error::new(
                    ErrorKind::Conflict,
                    format!("redis: {MAX_STALLS} rounds in a row found their keys changed"),
                );
                return finish(results, e, ran_any);
            }
            if stalls > 1 {
                tokio::time::sleep(Duration::from_millis(u64::from(stalls))).await;
            }
        }
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(internal("no result"))))
        .collect())
}

/// Ends `apply` after a failure `e` that hit the ops still without a result: a batch-level
/// error when no op has run yet (nothing was applied, or — for `Indeterminate` — an unknown
/// subset), else `e` for each remaining op and the results obtained so far.
fn finish(
    results: Vec<Option<Result<OpOutput>>>,
    e: Error,
    ran_any: bool,
) -> Result<Vec<Result<OpOutput>>> {
    if !ran_any && e.kind().is_batch_fatal() {
        return Err(e);
    }
    Ok(results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(e.clone())))
        .collect())
}

/// Splits a round's planned ops into calls: consecutive ranges of at most
/// [`MAX_CALL_OPS`] ops and about [`MAX_CALL_BYTES`] bytes (at least one op each).
fn group(planned: &[(usize, Call)]) -> Vec<std::ops::Range<usize>> {
    let mut groups = Vec::new();
    let (mut start, mut size) = (0, 0);
    for (n, (_, c)) in planned.iter().enumerate() {
        if n > start && (n - start >= MAX_CALL_OPS || size + c.size() > MAX_CALL_BYTES) {
            groups.push(start..n);
            (start, size) = (n, 0);
        }
        size += c.size();
    }
    if start < planned.len() {
        groups.push(start..planned.len());
    }
    groups
}

/// Sends the calls `groups` of `planned` as one pipeline of calls of the `batch` entry
/// point (ordered by a sequence token when there are several); returns, per call, how it
/// stopped and the results of the ops that ran, in order, or the error that came back in
/// its place. `declared`: the ops' keys are declared (strict_keys), so the library touches
/// no other key.
async fn send(
    inner: &Inner,
    planned: &[(usize, Call)],
    groups: &[std::ops::Range<usize>],
    declared: bool,
) -> Result<Vec<Result<(Stop, Vec<Value>)>>> {
    let shared = &inner.shared;
    let sequence = (groups.len() > 1).then(|| inner.layout.sequence(rand::random()));
    let tag = inner.layout.tag().as_bytes();
    let flags: &[u8] = if declared { b"s" } else { b"" };
    let count = count16(groups.len())?;
    let mut headers = Vec::with_capacity(groups.len());
    let mut positions = Vec::with_capacity(groups.len());
    for (pos, range) in groups.iter().enumerate() {
        let mut header = Vec::with_capacity(5 * range.len());
        for (_, c) in &planned[range.clone()] {
            header.push(c.code);
            header.extend_from_slice(&count16(c.keys.len())?.to_be_bytes());
            header.extend_from_slice(&count16(c.args.len())?.to_be_bytes());
        }
        headers.push(header);
        let mut p = Vec::new();
        if sequence.is_some() {
            p.extend_from_slice(&count16(pos)?.to_be_bytes());
            p.extend_from_slice(&count.to_be_bytes());
        }
        positions.push(p);
    }
    let calls: Vec<CallArgs<'_>> = groups
        .iter()
        .enumerate()
        .map(|(pos, range)| {
            let ops = &planned[range.clone()];
            let mut keys: Vec<&[u8]> = shared.iter().map(|k| k.as_bytes()).collect();
            keys.extend(sequence.iter().map(|k| k.as_bytes()));
            let mut args: Vec<&[u8]> = vec![&headers[pos], tag, &positions[pos], flags];
            for (_, c) in ops {
                keys.extend(c.keys.iter().map(|k| k.as_bytes()));
                args.extend(c.args.iter().map(Vec::as_slice));
            }
            (keys, args)
        })
        .collect();
    let replies = inner.call_many(Fn::Batch, &calls).await?;
    Ok(replies
        .into_iter()
        .zip(groups)
        .map(|(v, range)| call_outcome(v, range.len()))
        .collect())
}

/// How one call of `n` ops ended, from its reply.
fn call_outcome(v: Value, n: usize) -> Result<(Stop, Vec<Value>)> {
    let mut items = match v {
        Value::Array(items) => items.into_iter(),
        Value::ServerError(e) => {
            let kind = if did_not_run(&e) {
                crate::error::classify_script_error(&e, "batch").kind()
            } else {
                ErrorKind::Indeterminate
            };
            return Err(Error::new(
                kind,
                format!(
                    "redis: the batch call failed: {} {}",
                    e.code(),
                    e.details().unwrap_or("")
                ),
            ));
        }
        other => return Err(internal(format!("redis: unexpected batch reply {other:?}"))),
    };
    let text = |v: Option<Value>| match v {
        Some(Value::BulkString(b)) => String::from_utf8_lossy(&b).into_owned(),
        _ => String::new(),
    };
    let stop = text(items.next());
    let msg = text(items.next());
    let stop = match stop.as_str() {
        "done" => Stop::Done,
        "retry" => Stop::Retry,
        "fault" => Stop::Fault(msg),
        "skip" => Stop::Skip,
        other => return Err(internal(format!("redis: unknown batch status {other:?}"))),
    };
    let results: Vec<Value> = items.collect();
    if results.len() > n
        || (matches!(stop, Stop::Done) && results.len() != n)
        || (matches!(stop, Stop::Skip) && !results.is_empty())
    {
        return Err(Error::new(
            ErrorKind::Indeterminate,
            format!(
                "redis: {} results for a batch call of {n} ops",
                results.len()
            ),
        ));
    }
    Ok((stop, results))
}

fn count16(n: usize) -> Result<u16> {
    u16::try_from(n).map_err(|_| {
        Error::new(
            ErrorKind::TooBig,
            format!("an op with {n} keys or arguments (at most 65535)"),
        )
    })
}

/// The error of an op that raised a server error inside the call: `Corrupted` for a key of
/// the wrong Redis type (the stored data is damaged), `NoSpace` for maxmemory (only the
/// call's first write can meet it), `Internal` for anything else (a bug in the library).
fn fault(msg: &str, op: &str) -> Error {
    let code = msg.split(' ').next().unwrap_or("");
    let kind = match code {
        "WRONGTYPE" => ErrorKind::Corrupted,
        "OOM" => ErrorKind::NoSpace,
        _ if msg.contains("WRONGTYPE") => ErrorKind::Corrupted,
        _ => ErrorKind::Internal,
    };
    Error::new(kind, format!("{op}: redis: {msg}"))
}

/// One op's result from its reply: `{'ok', ...}` or `{'err', kind, message}`.
fn op_result(op: &Op, v: Value) -> Result<OpOutput> {
    let bad = |what: String| internal(format!("{}: {what}", op.name()));
    let Value::Array(items) = v else {
        return Err(bad(format!("unexpected op reply {v:?}")));
    };
    let mut it = items.into_iter();
    let text = |v: Option<Value>| match v {
        Some(Value::BulkString(b)) => String::from_utf8_lossy(&b).into_owned(),
        _ => String::new(),
    };
    let status = text(it.next());
    match status.as_str() {
        "ok" => output(op, it.collect()).map_err(|e| e.context_prefix(op.name())),
        "err" => {
            let kind = text(it.next());
            let msg = text(it.next());
            match kind_from_name(&kind) {
                Some(k) => Err(Error::new(k, format!("{}: {msg}", op.name()))),
                None => Err(bad(format!("unknown error kind {kind:?}: {msg}"))),
            }
        }
        other => Err(bad(format!("unknown op status {other:?}"))),
    }
}

// ---------------------------------------------------------------------------------------------
// Reads before a round

enum Slot {
    Src(usize),
    Dst(usize),
    /// The op's chunks; true when it starts at chunk 0.
    Chunks(usize, bool),
    Opens(usize),
    Places(usize),
    Fields(usize),
}

/// Adds the read of directory entry `name` (a ZRANGEBYLEX on the entry ZSET `key`) to `p`.
pub(crate) fn entry_read(p: &mut Pipeline, key: String, name: &[u8]) {
    let mut min = Vec::with_capacity(name.len() + 2);
    min.push(b'[');
    min.extend_from_slice(name);
    min.push(0);
    let mut max = Vec::with_capacity(name.len() + 2);
    max.push(b'(');
    max.extend_from_slice(name);
    max.push(1);
    p.cmd("ZRANGEBYLEX")
        .arg(key)
        .arg(min)
        .arg(max)
        .arg("LIMIT")
        .arg(0)
        .arg(1);
}

/// Reads what the round's ops need beforehand: the lock records a lock decision is made
/// from and, with `declared` keys (strict_keys), what the ops' keys follow from. Server errors
/// in single replies (garbage where a ZSET should be, ...) count as "nothing found": the op
/// runs into the same record and reports it.
async fn preread(
    inner: &Inner,
    ops: &[Op],
    pending: &[usize],
    declared: bool,
) -> Result<Vec<Known>> {
    let l = &inner.layout;
    let mut known = vec![Known::default(); pending.len()];
    // Ancestor chains are walked with plain GETs after the pipeline.
    let mut walks: Vec<(usize, Ino)> = Vec::new();
    let mut p = pipe();
    p.ignore_errors();
    let mut slots = Vec::new();
    // The indexed chunks (1 and up) from `from` on; chunk 0 is listed whenever the op starts
    // there (the op checks whether it exists).
    let chunk_read = |p: &mut Pipeline, ino: Ino, from: u64| {
        p.cmd("ZRANGEBYSCORE")
            .arg(l.chunk_index(ino))
            .arg(from.max(1))
            .arg("+inf");
    };
    for (k, &i) in pending.iter().enumerate() {
        match &ops[i] {
            Op::Flock { ino, .. } => {
                p.cmd("HGETALL").arg(l.locks(LockKind::Flock, *ino));
                slots.push(Slot::Fields(k));
            }
            Op::Setlk { ino, .. } => {
                p.cmd("HGETALL").arg(l.locks(LockKind::Plock, *ino));
                slots.push(Slot::Fields(k));
            }
            _ if !declared => {}
            Op::Unlink { parent, name, .. } | Op::Rmdir { parent, name, .. } => {
                entry_read(&mut p, l.entries(*parent), name);
                slots.push(Slot::Src(k));
            }
            Op::Rename {
                parent,
                name,
                new_parent,
                new_name,
                flags,
                ..
            } => {
                entry_read(&mut p, l.entries(*parent), name);
                slots.push(Slot::Src(k));
                entry_read(&mut p, l.entries(*new_parent), new_name);
                slots.push(Slot::Dst(k));
                if parent != new_parent {
                    walks.push((k, *new_parent));
                    if flags.contains(RenameFlags::EXCHANGE) {
                        walks.push((k, *parent));
                    }
                }
            }
            Op::Truncate { ino, length, .. } => {
                chunk_read(&mut p, *ino, length >> CHUNK_BITS);
                slots.push(Slot::Chunks(k, length >> CHUNK_BITS == 0));
            }
            Op::SetAttr {
                ino, mask, values, ..
            } if mask.contains(SetAttrMask::SIZE) => {
                chunk_read(&mut p, *ino, values.size >> CHUNK_BITS);
                slots.push(Slot::Chunks(k, values.size >> CHUNK_BITS == 0));
            }
            Op::ClearPendingFile { ino } => {
                chunk_read(&mut p, *ino, 0);
                slots.push(Slot::Chunks(k, true));
            }
            Op::CloseSession { sid, .. } => {
                p.cmd("SMEMBERS").arg(l.session_opens(*sid));
                slots.push(Slot::Opens(k));
                p.cmd("SMEMBERS").arg(l.session_locks(*sid));
                slots.push(Slot::Places(k));
            }
            _ => {}
        }
    }
    for (k, dir) in walks {
        for ino in walk_ancestors(inner, dir).await? {
            if !known[k].chain.contains(&ino) {
                known[k].chain.push(ino);
            }
        }
    }
    if slots.is_empty() {
        return Ok(known);
    }
    let replies = inner.read_pipe(&p).await?;
    for (slot, v) in slots.into_iter().zip(replies) {
        let items = list(v, "pre-read").unwrap_or_default();
        let first_entry = |items: Vec<Value>| -> Option<Entry> {
            let m = bytes(items.into_iter().next()?, "entry").ok()??;
            split_member(&m).ok().map(|(_, e)| e)
        };
        match slot {
            Slot::Src(k) => known[k].src = first_entry(items),
            Slot::Dst(k) => known[k].dst = first_entry(items),
            Slot::Chunks(k, from_zero) => {
                known[k].chunks = from_zero.then_some(0).into_iter().collect();
                known[k].chunks.extend(
                    items
                        .into_iter()
                        .filter_map(|v| bytes(v, "chunk index").ok().flatten())
                        .filter_map(|b| std::str::from_utf8(&b).ok()?.parse::<u32>().ok()),
                );
            }
            Slot::Opens(k) => {
                known[k].opens = items
                    .into_iter()
                    .filter_map(|v| bytes(v, "open inode").ok().flatten())
                    .filter_map(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
                    .map(|b| Ino(u64::from_be_bytes(b)))
                    .collect();
            }
            Slot::Places(k) => {
                known[k].places = items
                    .into_iter()
                    .filter_map(|v| bytes(v, "lock place").ok().flatten())
                    .collect();
            }
            Slot::Fields(k) => {
                let mut it = items.into_iter();
                while let (Some(f), Some(v)) = (it.next(), it.next()) {
                    if let (Ok(Some(f)), Ok(Some(v))) = (bytes(f, "lock"), bytes(v, "lock")) {
                        known[k].fields.push((f, v));
                    }
                }
            }
        }
    }
    Ok(known)
}

/// The ancestors of `dir` with plain GETs (one round trip per level), for a rename with
/// declared keys: `dir` and the directories above it up to (excluding) the root, following
/// the attributes' parent fields; stops at the root, inode 0, a missing or undecodable
/// attribute, or a loop. The rename op re-checks the chain.
async fn walk_ancestors(inner: &Inner, dir: Ino) -> Result<Vec<Ino>> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut cur = dir;
    for _ in 0..MAX_DEPTH {
        if cur == Ino::ROOT || cur == Ino::ZERO || !seen.insert(cur) {
            break;
        }
        out.push(cur);
        let v = inner
            .conn
            .cmd(redis::cmd("GET").arg(inner.layout.attr(cur)))
            .await
            .map_err(|e| classify(e, Stage::Read, &inner.target))?;
        match bytes(v, "ancestors")
            .ok()
            .flatten()
            .map(|b| decode_attr(&b))
        {
            Some(Ok(a)) => cur = a.parent,
            _ => break,
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Outputs

fn attr_at(items: &mut std::vec::IntoIter<Value>, what: &str) -> Result<Option<Attr>> {
    match items.next() {
        None => Ok(None),
        Some(v) => bytes(v, what)?.map(|b| decode_attr(&b)).transpose(),
    }
}

fn need<T>(v: Option<T>, what: &str) -> Result<T> {
    v.ok_or_else(|| internal(format!("op reply without {what}")))
}

fn ino_at(items: &mut std::vec::IntoIter<Value>) -> Result<Option<Ino>> {
    match items.next() {
        None => Ok(None),
        Some(v) => match bytes(v, "inode")? {
            None => Ok(None),
            Some(b) => {
                let b: [u8; 8] = b
                    .as_slice()
                    .try_into()
                    .map_err(|_| internal("op reply: bad inode number"))?;
                Ok(Some(Ino(u64::from_be_bytes(b))))
            }
        },
    }
}

/// Turns an `ok` reply's payload into the op's output.
fn output(op: &Op, items: Vec<Value>) -> Result<OpOutput> {
    let mut it = items.into_iter();
    Ok(match op {
        Op::Mknod { ino, .. } | Op::Link { ino, .. } => OpOutput::Entry {
            ino: *ino,
            attr: need(attr_at(&mut it, "attr")?, "attr")?,
            parent: need(attr_at(&mut it, "parent")?, "parent attr")?,
        },
        Op::Unlink { .. } | Op::Rmdir { .. } => OpOutput::Removed {
            ino: need(ino_at(&mut it)?, "inode")?,
            attr: attr_at(&mut it, "attr")?,
            parent: need(attr_at(&mut it, "parent")?, "parent attr")?,
        },
        Op::Rename { .. } => {
            let ino = need(ino_at(&mut it)?, "inode")?;
            let attr = need(attr_at(&mut it, "attr")?, "attr")?;
            let parent = need(attr_at(&mut it, "parent")?, "parent attr")?;
            let new_parent = need(attr_at(&mut it, "new parent")?, "new parent attr")?;
            let replaced = match ino_at(&mut it)? {
                Some(r) => Some((r, attr_at(&mut it, "replaced")?)),
                None => None,
            };
            OpOutput::Renamed {
                ino,
                attr,
                parent,
                new_parent,
                replaced,
            }
        }
        Op::SetAttr { ino, .. } | Op::Write { ino, .. } | Op::Truncate { ino, .. } => {
            OpOutput::Attr {
                ino: *ino,
                attr: need(attr_at(&mut it, "attr")?, "attr")?,
            }
        }
        Op::Restore(rec) => OpOutput::Attr {
            ino: rec.ino,
            attr: need(attr_at(&mut it, "attr")?, "attr")?,
        },
        Op::Open { ino, .. } => OpOutput::Attr {
            ino: *ino,
            attr: need(attr_at(&mut it, "attr")?, "attr")?,
        },
        Op::SetQuota { dir, .. } => {
            let rec = need(bytes(need(it.next(), "quota")?, "quota")?, "quota")?;
            OpOutput::Quota {
                dir: *dir,
                quota: quota_of(&rec, *dir)?,
            }
        }
        Op::RemoveQuota { .. }
        | Op::RemoveXattr { .. }
        | Op::SetXattr { .. }
        | Op::ClearPendingFile { .. }
        | Op::ClearPendingSlice { .. }
        | Op::CompactChunk { .. }
        | Op::RestorePending { .. }
        | Op::OpenSession { .. }
        | Op::Heartbeat { .. }
        | Op::CloseSession { .. }
        | Op::ClaimCleanup { .. }
        | Op::Release { .. }
        | Op::Flock { .. }
        | Op::Setlk { .. } => OpOutput::Done,
        other => {
            return Err(internal(format!(
                "a reply to op {}, which has no body",
                other.name()
            )));
        }
    })
}
