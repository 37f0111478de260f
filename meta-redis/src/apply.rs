//! `apply`: a batch as rounds of one pipeline of `EVALSHA` calls.
//!
//! A round is: (1) one pipeline of reads for the keys some scripts cannot know beforehand
//! (the inode an entry names, an inode's chunk indexes, a directory's ancestors) — skipped
//! when no op of the round needs them, so a batch of creates is exactly one round trip;
//! (2) one pipeline with one `EVALSHA` per op, in order. Each script re-checks what was read
//! and answers `retry` if it changed (another client, or an earlier op of the same batch);
//! the round's sequence token (see `lua/lib.lua`) makes every later script of the round
//! `skip` without effect, so ops still apply strictly in order. The next round resumes at
//! the first op without a result.

use std::time::Duration;

use meta_core::kv::{decode_attr, encode_attr, encode_slice};
use meta_core::session::{
    check_range, decode_flock, decode_plocks, encode_plocks, flock_decision, setlk_decision,
};
use meta_core::types::{
    CHUNK_BITS, CHUNK_SIZE, MAX_FILE_LEN, validate_name, validate_symlink_target, validate_xattr,
};
use meta_core::{
    Attr, Entry, Error, ErrorKind, FileType, Ino, LockKind, LockOwner, LockType, Op, OpOutput,
    Pending, RenameFlags, Result, SetAttrMask, Slice,
};
use redis::{Pipeline, Value, pipe};

use crate::error::{Stage, classify, classify_script_error, did_not_run, refuses_undeclared_key};
use crate::scripts::Lua;
use crate::{Inner, bytes, ino8, internal, list, split_member, time12};

/// Rounds in a row that may end without any op completing (each time the round's first op
/// asked for a retry, i.e. other clients keep changing what it read) before the remaining
/// ops fail with `Conflict`.
const MAX_STALLS: u32 = 16;

/// Deepest directory chain walked before a rename (as `MAX_DEPTH` in `lua/lib.lua`).
const MAX_DEPTH: usize = 100_000;

/// What the reads before a round found for one op.
#[derive(Debug, Default, Clone)]
struct Known {
    /// The entry the op's (source) name points to.
    src: Option<Entry>,
    /// The entry a rename's destination name points to.
    dst: Option<Entry>,
    /// Chunk indexes of the op's inode (from the cut on, for truncate).
    chunks: Vec<u32>,
    /// Ancestor directories (rename across directories).
    chain: Vec<Ino>,
    /// The inodes a closing session holds open.
    opens: Vec<Ino>,
    /// Where a closing session holds locks: `F`/`P` + 8-byte inode.
    places: Vec<Vec<u8>>,
    /// The lock hash of the inode a lock op works on: `(field, value)` pairs.
    fields: Vec<(Vec<u8>, Vec<u8>)>,
}

/// One script call: which script, its keys after the round token, its arguments after the
/// sequence number and round size.
struct Call<'a> {
    lua: &'a Lua,
    keys: Vec<String>,
    args: Vec<Vec<u8>>,
}

enum Reply {
    Ok(Vec<Value>),
    Err(ErrorKind, String),
    Retry,
    Skip,
    NoScript,
    Server(redis::ServerError),
    Bad(String),
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::InvalidArgument, msg)
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
        let pending: Vec<usize> = (0..ops.len()).filter(|&i| results[i].is_none()).collect();
        if pending.is_empty() {
            break;
        }
        let known = match preread(inner, ops, &pending).await {
            Ok(k) => k,
            Err(e) => return finish(results, e, ran_any),
        };
        let n = pending.len();
        let token = inner.layout.token(rand::random());
        let mut p = pipe();
        p.ignore_errors();
        for (seq, (&i, k)) in pending.iter().zip(&known).enumerate() {
            let Some(call) = plan(inner, &ops[i], k) else {
                return finish(results, internal("an op without a script"), ran_any);
            };
            p.cmd("EVALSHA")
                .arg(&call.lua.sha)
                .arg(1 + call.keys.len())
                .arg(&token);
            for key in &call.keys {
                p.arg(key);
            }
            p.arg(seq).arg(n);
            for a in &call.args {
                p.arg(a.as_slice());
            }
        }
        let replies = match inner.conn.pipe(&p).await {
            Ok(r) if r.len() == n => r,
            Ok(r) => {
                let e = Error::new(
                    ErrorKind::Indeterminate,
                    format!("redis: {} replies for {n} scripts", r.len()),
                );
                return finish(results, e, ran_any);
            }
            Err(e) => return finish(results, classify(e, Stage::Write, &inner.target), ran_any),
        };
        let mut progress = false;
        let mut reload = false;
        let mut halt: Option<Error> = None;
        for (&i, v) in pending.iter().zip(replies) {
            let op = &ops[i];
            match parse_reply(v) {
                Reply::Ok(items) => {
                    results[i] = Some(output(op, items).map_err(|e| e.context_prefix(op.name())));
                    progress = true;
                }
                Reply::Err(kind, msg) => {
                    results[i] = Some(Err(Error::new(kind, format!("{}: {msg}", op.name()))));
                    progress = true;
                }
                Reply::Retry | Reply::Skip => {}
                Reply::NoScript => reload = true,
                Reply::Server(e) if did_not_run(&e) => {
                    if halt.is_none() {
                        halt = Some(classify_script_error(&e, op.name()));
                    }
                }
                Reply::Server(e) => {
                    results[i] = Some(Err(classify_script_error(&e, op.name())));
                    progress = true;
                }
                Reply::Bad(what) => {
                    results[i] = Some(Err(internal(format!("{}: {what}", op.name()))));
                    progress = true;
                }
            }
        }
        ran_any |= progress;
        if let Some(e) = halt {
            return finish(results, e, ran_any);
        }
        if reload && let Err(e) = inner.load_scripts().await {
            return finish(results, e, ran_any);
        }
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
/// error when no script has run yet (nothing was applied, or — for `Indeterminate` — an
/// unknown subset), else `e` for each remaining op and the results obtained so far.
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

fn parse_reply(v: Value) -> Reply {
    let items = match v {
        Value::Array(items) => items,
        Value::ServerError(e) if e.code() == "NOSCRIPT" => return Reply::NoScript,
        Value::ServerError(e) => return Reply::Server(e),
        other => return Reply::Bad(format!("unexpected script reply {other:?}")),
    };
    let mut it = items.into_iter();
    let status = match it.next() {
        Some(Value::BulkString(s)) => s,
        other => return Reply::Bad(format!("unexpected script status {other:?}")),
    };
    let text = |v: Option<Value>| match v {
        Some(Value::BulkString(b)) => String::from_utf8_lossy(&b).into_owned(),
        _ => String::new(),
    };
    match status.as_slice() {
        b"ok" => Reply::Ok(it.collect()),
        b"err" => {
            let kind = text(it.next());
            let msg = text(it.next());
            match kind_from_name(&kind) {
                Some(k) => Reply::Err(k, msg),
                None => Reply::Bad(format!("unknown error kind {kind:?}: {msg}")),
            }
        }
        b"retry" => Reply::Retry,
        b"skip" => Reply::Skip,
        other => Reply::Bad(format!(
            "unknown script status {:?}",
            String::from_utf8_lossy(other)
        )),
    }
}

/// The name scripts use for an error kind (its `Debug` form), and back.
fn kind_name(k: ErrorKind) -> String {
    format!("{k:?}")
}

fn kind_from_name(s: &str) -> Option<ErrorKind> {
    use ErrorKind::*;
    Some(match s {
        "NotFound" => NotFound,
        "AlreadyExists" => AlreadyExists,
        "NotADirectory" => NotADirectory,
        "IsADirectory" => IsADirectory,
        "NotEmpty" => NotEmpty,
        "InvalidArgument" => InvalidArgument,
        "NameTooLong" => NameTooLong,
        "PermissionDenied" => PermissionDenied,
        "NotPermitted" => NotPermitted,
        "NoSpace" => NoSpace,
        "NoData" => NoData,
        "OutOfRange" => OutOfRange,
        "TooBig" => TooBig,
        "WouldBlock" => WouldBlock,
        "Corrupted" => Corrupted,
        _ => return None,
    })
}

/// An error the script raises at the point the POSIX rules check it, as two arguments
/// (kind, message); empty when there is none.
fn err_args(e: Option<Error>) -> [Vec<u8>; 2] {
    match e {
        Some(e) => [
            kind_name(e.kind()).into_bytes(),
            e.context().as_bytes().to_vec(),
        ],
        None => [Vec::new(), Vec::new()],
    }
}

/// The checks of `meta_core::logic` that come before any read, in the same order.
fn precheck(op: &Op) -> Result<()> {
    match op {
        Op::Mknod {
            name,
            ino,
            typ,
            target,
            ..
        } => {
            validate_name(name)?;
            if *typ == FileType::Symlink {
                validate_symlink_target(target)?;
            } else if !target.is_empty() {
                return Err(invalid("a target is only allowed for symlinks"));
            }
            if *ino == Ino::ZERO || *ino == Ino::ROOT {
                return Err(invalid(format!("inode {ino} cannot be created")));
            }
            Ok(())
        }
        Op::Link { name, .. } | Op::Unlink { name, .. } | Op::Rmdir { name, .. } => {
            validate_name(name)
        }
        Op::Rename {
            name,
            new_name,
            flags,
            ..
        } => {
            validate_name(name)?;
            validate_name(new_name)?;
            let noreplace = flags.contains(RenameFlags::NOREPLACE);
            let exchange = flags.contains(RenameFlags::EXCHANGE);
            if flags.0 & !3 != 0 || (noreplace && exchange) {
                return Err(invalid(format!("rename flags {:#x}", flags.0)));
            }
            Ok(())
        }
        Op::SetAttr { mask, .. } => {
            if mask.0 & !0xff != 0 {
                return Err(invalid(format!("setattr mask {:#x}", mask.0)));
            }
            Ok(())
        }
        Op::SetXattr {
            name, value, flags, ..
        } => {
            validate_xattr(name, Some(value))?;
            if flags.0 & !3 != 0 || flags.0 == 3 {
                return Err(invalid(format!("setxattr flags {:#x}", flags.0)));
            }
            Ok(())
        }
        Op::RemoveXattr { name, .. } => validate_xattr(name, None),
        Op::Restore(rec) => {
            if rec.ino == Ino::ZERO {
                return Err(invalid("inode 0 is never valid"));
            }
            if rec.attr.typ == FileType::Symlink {
                validate_symlink_target(&rec.target)?;
            }
            Ok(())
        }
        Op::RestorePending { pending, chunks } => {
            if matches!(pending, Pending::Slice { .. }) && !chunks.is_empty() {
                return Err(invalid("a pending slice carries no chunks"));
            }
            Ok(())
        }
        Op::OpenSession { info, .. } => {
            if info.sid == 0 {
                return Err(invalid("session 0 is never valid"));
            }
            Ok(())
        }
        Op::ClaimCleanup { every_ms, .. } => {
            if *every_ms <= 0 {
                return Err(invalid(format!("cleanup lease of {every_ms} ms")));
            }
            Ok(())
        }
        Op::Setlk { start, end, .. } => check_range(*start, *end),
        Op::Write { .. }
        | Op::Truncate { .. }
        | Op::ClearPendingFile { .. }
        | Op::ClearPendingSlice { .. }
        | Op::Heartbeat { .. }
        | Op::CloseSession { .. }
        | Op::Open { .. }
        | Op::Release { .. }
        | Op::Flock { .. } => Ok(()),
        other => Err(Error::new(
            ErrorKind::Unsupported,
            format!("meta-redis has no script for op {}", other.name()),
        )),
    }
}

/// The slice checks of `logic::write` (raised by the script after the inode checks).
fn write_error(indx: u32, slice: &Slice) -> Option<Error> {
    if slice.end() > CHUNK_SIZE {
        return Some(invalid(format!(
            "slice [{}, {}) passes the end of the 64 MiB chunk",
            slice.pos,
            slice.end()
        )));
    }
    if slice.id != 0 && u64::from(slice.off) + u64::from(slice.len) > u64::from(slice.size) {
        return Some(invalid(format!(
            "slice {} uses [{}, {}) of an object of {} bytes",
            slice.id,
            slice.off,
            u64::from(slice.off) + u64::from(slice.len),
            slice.size
        )));
    }
    let end = (u64::from(indx) << CHUNK_BITS) + slice.end();
    if end > MAX_FILE_LEN {
        return Some(invalid(format!(
            "write ends at {end}, past the maximum file length {MAX_FILE_LEN}"
        )));
    }
    None
}

/// The length check of `logic::truncate_to`.
fn length_error(length: u64) -> Option<Error> {
    (length > MAX_FILE_LEN).then(|| {
        invalid(format!(
            "length {length} exceeds the maximum file length {MAX_FILE_LEN}"
        ))
    })
}

fn dec(n: impl ToString) -> Vec<u8> {
    n.to_string().into_bytes()
}

// ---------------------------------------------------------------------------------------------
// Reads before a round

enum Slot {
    Src(usize),
    Dst(usize),
    Chunks(usize),
    Chain(usize),
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

/// Reads what the round's scripts need to name their keys. Server errors in single replies
/// (garbage where a ZSET should be, ...) count as "nothing found": the script runs into the
/// same record and reports it.
async fn preread(inner: &Inner, ops: &[Op], pending: &[usize]) -> Result<Vec<Known>> {
    let l = &inner.layout;
    for attempt in 0..3 {
        let strict = inner.strict();
        let mut known = vec![Known::default(); pending.len()];
        // Declared keys only: chains are walked with plain GETs after the pipeline.
        let mut walks: Vec<(usize, Ino)> = Vec::new();
        let mut p = pipe();
        p.ignore_errors();
        let mut slots = Vec::new();
        let chunk_read = |p: &mut Pipeline, ino: Ino, from: u64| {
            p.cmd("ZRANGEBYSCORE")
                .arg(l.chunk_index(ino))
                .arg(from)
                .arg("+inf");
        };
        let chain_read = |p: &mut Pipeline, dir: Ino| {
            p.cmd("EVALSHA")
                .arg(&inner.scripts.ancestors.sha)
                .arg(1)
                .arg(l.attr(dir))
                .arg(l.attr_prefix())
                .arg(ino8(dir));
        };
        for (k, &i) in pending.iter().enumerate() {
            match &ops[i] {
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
                        let mut chains = vec![*new_parent];
                        if flags.contains(RenameFlags::EXCHANGE) {
                            chains.push(*parent);
                        }
                        for dir in chains {
                            if strict {
                                walks.push((k, dir));
                            } else {
                                chain_read(&mut p, dir);
                                slots.push(Slot::Chain(k));
                            }
                        }
                    }
                }
                Op::Truncate { ino, length, .. } => {
                    chunk_read(&mut p, *ino, length >> CHUNK_BITS);
                    slots.push(Slot::Chunks(k));
                }
                Op::SetAttr {
                    ino, mask, values, ..
                } if mask.contains(SetAttrMask::SIZE) => {
                    chunk_read(&mut p, *ino, values.size >> CHUNK_BITS);
                    slots.push(Slot::Chunks(k));
                }
                Op::ClearPendingFile { ino } => {
                    chunk_read(&mut p, *ino, 0);
                    slots.push(Slot::Chunks(k));
                }
                Op::CloseSession { sid, .. } => {
                    p.cmd("SMEMBERS").arg(l.session_opens(*sid));
                    slots.push(Slot::Opens(k));
                    p.cmd("SMEMBERS").arg(l.session_locks(*sid));
                    slots.push(Slot::Places(k));
                }
                Op::Flock { ino, .. } => {
                    p.cmd("HGETALL").arg(l.locks(LockKind::Flock, *ino));
                    slots.push(Slot::Fields(k));
                }
                Op::Setlk { ino, .. } => {
                    p.cmd("HGETALL").arg(l.locks(LockKind::Plock, *ino));
                    slots.push(Slot::Fields(k));
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
        let mut noscript = false;
        let mut refused = false;
        for (slot, v) in slots.into_iter().zip(replies) {
            if let Value::ServerError(e) = &v {
                if e.code() == "NOSCRIPT" {
                    noscript = true;
                    continue;
                }
                let msg = e.details().unwrap_or(e.code()).to_string();
                if matches!(slot, Slot::Chain(_)) && refuses_undeclared_key(&msg) {
                    inner.go_strict(inner.scripts.ancestors.name, &msg);
                    refused = true;
                    continue;
                }
            }
            let items = list(v, "pre-read").unwrap_or_default();
            let first_entry = |items: Vec<Value>| -> Option<Entry> {
                let m = bytes(items.into_iter().next()?, "entry").ok()??;
                split_member(&m).ok().map(|(_, e)| e)
            };
            match slot {
                Slot::Src(k) => known[k].src = first_entry(items),
                Slot::Dst(k) => known[k].dst = first_entry(items),
                Slot::Chunks(k) => {
                    known[k].chunks = items
                        .into_iter()
                        .filter_map(|v| bytes(v, "chunk index").ok().flatten())
                        .filter_map(|b| std::str::from_utf8(&b).ok()?.parse::<u32>().ok())
                        .collect();
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
                Slot::Chain(k) => {
                    for v in items {
                        if let Ok(Some(b)) = bytes(v, "ancestors")
                            && let Ok(b) = <[u8; 8]>::try_from(b.as_slice())
                        {
                            let ino = Ino(u64::from_be_bytes(b));
                            if !known[k].chain.contains(&ino) {
                                known[k].chain.push(ino);
                            }
                        }
                    }
                }
            }
        }
        if refused {
            // Read again, walking the chains with plain commands.
            continue;
        }
        if !noscript {
            return Ok(known);
        }
        if attempt == 0 {
            inner.load_scripts().await?;
        }
    }
    Err(internal("ancestors.lua: NOSCRIPT after loading"))
}

/// What `ancestors.lua` answers, with plain GETs (one round trip per level): `dir` and the
/// directories above it up to (excluding) the root, following the attributes' parent fields;
/// stops at the root, inode 0, a missing or undecodable attribute, or a loop. Used when the
/// server forbids undeclared keys; the rename script re-checks the chain either way.
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
// Script calls

/// The script call of one op, with the keys and arguments its header in `lua/<op>.lua`
/// describes. `None` for an op without a script (rejected earlier by `precheck`).
fn plan<'a>(inner: &'a Inner, op: &Op, k: &Known) -> Option<Call<'a>> {
    let l = &inner.layout;
    let s = &inner.scripts;
    let counters = |keys: &mut Vec<String>| {
        keys.push(l.limits());
        keys.push(l.counter(meta_core::Counter::UsedSpace));
        keys.push(l.counter(meta_core::Counter::TotalInodes));
    };
    Some(match op {
        Op::Mknod {
            parent,
            name,
            ino,
            typ,
            mode,
            uid,
            gid,
            rdev,
            target,
            time,
            opened_by,
        } => {
            let length: u64 = match typ {
                FileType::Directory => 4096,
                FileType::Symlink => target.len() as u64,
                _ => 0,
            };
            let mut keys = vec![
                l.attr(*parent),
                l.entries(*parent),
                l.attr(*ino),
                l.symlink(*ino),
                l.inodes(),
            ];
            counters(&mut keys);
            let opener = opened_by.unwrap_or(0);
            keys.extend([l.sessions(), l.openers(*ino), l.session_opens(opener)]);
            Call {
                lua: &s.mknod,
                keys,
                args: vec![
                    ino8(*parent),
                    name.clone(),
                    ino8(*ino),
                    dec(typ.code()),
                    dec(*mode),
                    uid.to_be_bytes().to_vec(),
                    gid.to_be_bytes().to_vec(),
                    rdev.to_be_bytes().to_vec(),
                    target.clone(),
                    time12(*time),
                    length.to_be_bytes().to_vec(),
                    opened_by
                        .map(|s| s.to_be_bytes().to_vec())
                        .unwrap_or_default(),
                ],
            }
        }
        Op::Link {
            ino,
            parent,
            name,
            time,
        } => Call {
            lua: &s.link,
            keys: vec![l.attr(*ino), l.attr(*parent), l.entries(*parent)],
            args: vec![ino8(*ino), ino8(*parent), name.clone(), time12(*time)],
        },
        Op::Unlink {
            parent,
            name,
            caller,
            time,
        }
        | Op::Rmdir {
            parent,
            name,
            caller,
            time,
        } => {
            let t = k.src.map(|e| e.ino).unwrap_or(Ino::ZERO);
            let rmdir = matches!(op, Op::Rmdir { .. });
            let mut keys = vec![l.attr(*parent), l.entries(*parent), l.attr(t)];
            if rmdir {
                // The directory's own entries: rmdir.lua checks them empty and deletes them.
                keys.push(l.entries(t));
            }
            keys.extend([
                l.symlink(t),
                l.xattrs(t),
                l.inodes(),
                l.pending_files(),
                l.counter(meta_core::Counter::UsedSpace),
                l.counter(meta_core::Counter::TotalInodes),
                l.openers(t),
            ]);
            Call {
                lua: if rmdir { &s.rmdir } else { &s.unlink },
                keys,
                args: vec![
                    ino8(*parent),
                    name.clone(),
                    caller.uid.to_be_bytes().to_vec(),
                    time12(*time),
                    ino8(t),
                ],
            }
        }
        Op::Rename {
            parent,
            name,
            new_parent,
            new_name,
            flags,
            caller,
            time,
        } => {
            let si = k.src.map(|e| e.ino).unwrap_or(Ino::ZERO);
            let di = k.dst.map(|e| e.ino).unwrap_or(Ino::ZERO);
            let mut keys = vec![
                l.attr(*parent),
                l.entries(*parent),
                l.attr(*new_parent),
                l.entries(*new_parent),
                l.attr(si),
                l.attr(di),
                l.entries(di),
                l.symlink(di),
                l.xattrs(di),
                l.inodes(),
                l.pending_files(),
                l.counter(meta_core::Counter::UsedSpace),
                l.counter(meta_core::Counter::TotalInodes),
                l.openers(di),
            ];
            let mut args = vec![
                ino8(*parent),
                name.clone(),
                ino8(*new_parent),
                new_name.clone(),
                dec(flags.0),
                caller.uid.to_be_bytes().to_vec(),
                time12(*time),
                ino8(si),
                ino8(di),
                dec(k.chain.len()),
            ];
            for &c in &k.chain {
                keys.push(l.attr(c));
                args.push(ino8(c));
            }
            Call {
                lua: &s.rename,
                keys,
                args,
            }
        }
        Op::SetAttr {
            ino,
            mask,
            values,
            time,
        } => {
            let mut keys = vec![l.attr(*ino), l.chunk_index(*ino), l.pending_slices()];
            counters(&mut keys);
            let sized = mask.contains(SetAttrMask::SIZE);
            let [ek, em] = err_args(if sized {
                length_error(values.size)
            } else {
                None
            });
            let mut args = vec![
                ino8(*ino),
                dec(mask.0),
                dec(values.mode),
                values.uid.to_be_bytes().to_vec(),
                values.gid.to_be_bytes().to_vec(),
                time12(values.atime),
                time12(values.mtime),
                values.size.to_be_bytes().to_vec(),
                time12(*time),
                ek,
                em,
                dec(values.size >> CHUNK_BITS),
                dec(values.size & (CHUNK_SIZE - 1)),
                dec(if sized { k.chunks.len() } else { 0 }),
            ];
            if sized {
                for &c in &k.chunks {
                    keys.push(l.chunk(*ino, c));
                    args.push(dec(c));
                }
            }
            Call {
                lua: &s.setattr,
                keys,
                args,
            }
        }
        Op::Truncate { ino, length, time } => {
            let mut keys = vec![l.attr(*ino), l.chunk_index(*ino), l.pending_slices()];
            counters(&mut keys);
            let [ek, em] = err_args(length_error(*length));
            let mut args = vec![
                ino8(*ino),
                length.to_be_bytes().to_vec(),
                time12(*time),
                ek,
                em,
                dec(length >> CHUNK_BITS),
                dec(length & (CHUNK_SIZE - 1)),
                dec(k.chunks.len()),
            ];
            for &c in &k.chunks {
                keys.push(l.chunk(*ino, c));
                args.push(dec(c));
            }
            Call {
                lua: &s.truncate,
                keys,
                args,
            }
        }
        Op::Write {
            ino,
            indx,
            slice,
            time,
        } => {
            let mut keys = vec![l.attr(*ino), l.chunk(*ino, *indx), l.chunk_index(*ino)];
            counters(&mut keys);
            let mut sv = Vec::with_capacity(24);
            encode_slice(&mut sv, slice);
            let end = (u64::from(*indx) << CHUNK_BITS).saturating_add(slice.end());
            let [ek, em] = err_args(write_error(*indx, slice));
            Call {
                lua: &s.write,
                keys,
                args: vec![
                    ino8(*ino),
                    dec(*indx),
                    sv,
                    end.to_be_bytes().to_vec(),
                    time12(*time),
                    ek,
                    em,
                ],
            }
        }
        Op::SetXattr {
            ino,
            name,
            value,
            flags,
        } => Call {
            lua: &s.setxattr,
            keys: vec![l.attr(*ino), l.xattrs(*ino)],
            args: vec![ino8(*ino), name.clone(), value.clone(), dec(flags.0)],
        },
        Op::RemoveXattr { ino, name } => Call {
            lua: &s.removexattr,
            keys: vec![l.attr(*ino), l.xattrs(*ino)],
            args: vec![ino8(*ino), name.clone()],
        },
        Op::ClearPendingFile { ino } => {
            let mut keys = vec![l.pending_files(), l.attr(*ino), l.chunk_index(*ino)];
            let mut args = vec![ino8(*ino), dec(k.chunks.len())];
            for &c in &k.chunks {
                keys.push(l.chunk(*ino, c));
                args.push(dec(c));
            }
            Call {
                lua: &s.clear_pending_file,
                keys,
                args,
            }
        }
        Op::ClearPendingSlice { id } => Call {
            lua: &s.clear_pending_slice,
            keys: vec![l.pending_slices()],
            args: vec![id.to_be_bytes().to_vec()],
        },
        Op::Restore(rec) => {
            let ino = rec.ino;
            let mut keys = vec![
                l.attr(ino),
                l.inodes(),
                l.symlink(ino),
                l.xattrs(ino),
                l.chunk_index(ino),
                l.counter(meta_core::Counter::UsedSpace),
                l.counter(meta_core::Counter::TotalInodes),
            ];
            let xerr = rec
                .xattrs
                .iter()
                .find_map(|(n, v)| validate_xattr(n, Some(v)).err());
            let [xk, xm] = err_args(xerr);
            let mut args = vec![
                ino8(ino),
                encode_attr(&rec.attr),
                dec(rec.attr.space()),
                rec.target.clone(),
                dec(rec.links.len()),
                dec(rec.xattrs.len()),
                dec(rec.chunks.len()),
                xk,
                xm,
            ];
            for (parent, name) in &rec.links {
                keys.push(l.attr(*parent));
                keys.push(l.entries(*parent));
                let [nk, nm] = err_args(validate_name(name).err());
                args.extend([ino8(*parent), name.clone(), nk, nm]);
            }
            for (name, value) in &rec.xattrs {
                args.push(name.clone());
                args.push(value.clone());
            }
            for (indx, slices) in &rec.chunks {
                keys.push(l.chunk(ino, *indx));
                let mut sv = Vec::with_capacity(24 * slices.len());
                for sl in slices {
                    encode_slice(&mut sv, sl);
                }
                args.push(dec(*indx));
                args.push(sv);
            }
            Call {
                lua: &s.restore,
                keys,
                args,
            }
        }
        Op::RestorePending { pending, chunks } => {
            let (ino, kind, value, table) = match *pending {
                Pending::File { ino, length } => (
                    ino,
                    "file",
                    length.to_be_bytes().to_vec(),
                    l.pending_files(),
                ),
                Pending::Slice { id, size } => (
                    Ino(id),
                    "slice",
                    size.to_be_bytes().to_vec(),
                    l.pending_slices(),
                ),
            };
            let mut keys = vec![l.attr(ino), l.chunk_index(ino), table];
            let mut args = vec![
                kind.as_bytes().to_vec(),
                ino8(ino),
                value,
                dec(chunks.len()),
            ];
            for (indx, slices) in chunks {
                keys.push(l.chunk(ino, *indx));
                let mut sv = Vec::with_capacity(24 * slices.len());
                for sl in slices {
                    encode_slice(&mut sv, sl);
                }
                args.push(dec(*indx));
                args.push(sv);
            }
            Call {
                lua: &s.restore_pending,
                keys,
                args,
            }
        }
        Op::OpenSession { info, expire } => Call {
            lua: &s.open_session,
            keys: vec![l.sessions()],
            args: vec![
                info.sid.to_be_bytes().to_vec(),
                meta_core::kv::encode_session(&meta_core::Session {
                    info: (**info).clone(),
                    expire: *expire,
                }),
            ],
        },
        Op::Heartbeat { sid, expire } => Call {
            lua: &s.heartbeat,
            keys: vec![l.sessions()],
            args: vec![sid.to_be_bytes().to_vec(), time12(*expire)],
        },
        Op::ClaimCleanup { now_ms, every_ms } => Call {
            lua: &s.claim_cleanup,
            keys: vec![l.counter(meta_core::Counter::CleanupLease)],
            args: vec![dec(*now_ms), dec(*every_ms)],
        },
        Op::Open { sid, ino } => Call {
            lua: &s.open,
            keys: vec![
                l.attr(*ino),
                l.sessions(),
                l.openers(*ino),
                l.session_opens(*sid),
            ],
            args: vec![ino8(*ino), sid.to_be_bytes().to_vec()],
        },
        Op::Release { sid, inos } => {
            let mut keys = vec![
                l.session_opens(*sid),
                l.session_locks(*sid),
                l.inodes(),
                l.pending_files(),
                l.counter(meta_core::Counter::UsedSpace),
                l.counter(meta_core::Counter::TotalInodes),
            ];
            let mut args = vec![sid.to_be_bytes().to_vec(), dec(inos.len())];
            for &(ino, drop_locks) in inos {
                keys.extend([
                    l.attr(ino),
                    l.openers(ino),
                    l.locks(LockKind::Flock, ino),
                    l.locks(LockKind::Plock, ino),
                    l.symlink(ino),
                    l.xattrs(ino),
                ]);
                args.push(ino8(ino));
                args.push(if drop_locks {
                    b"1".to_vec()
                } else {
                    Vec::new()
                });
            }
            Call {
                lua: &s.release,
                keys,
                args,
            }
        }
        Op::CloseSession {
            sid,
            expired_before,
        } => {
            let mut keys = vec![
                l.sessions(),
                l.session_opens(*sid),
                l.session_locks(*sid),
                l.inodes(),
                l.pending_files(),
                l.counter(meta_core::Counter::UsedSpace),
                l.counter(meta_core::Counter::TotalInodes),
            ];
            let mut args = vec![
                sid.to_be_bytes().to_vec(),
                expired_before.map(time12).unwrap_or_default(),
                dec(k.opens.len()),
                dec(k.places.len()),
            ];
            for &ino in &k.opens {
                keys.extend([l.attr(ino), l.openers(ino), l.symlink(ino), l.xattrs(ino)]);
                args.push(ino8(ino));
            }
            for place in &k.places {
                let kind = match place.first() {
                    Some(b'P') => LockKind::Plock,
                    _ => LockKind::Flock,
                };
                let ino = place
                    .get(1..9)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(|b| Ino(u64::from_be_bytes(b)))
                    .unwrap_or(Ino::ZERO);
                keys.push(l.locks(kind, ino));
                args.push(place.clone());
            }
            Call {
                lua: &s.close_session,
                keys,
                args,
            }
        }
        Op::Flock { ino, owner, typ } => {
            let decision = decode_fields(&k.fields, decode_flock).and_then(|held| {
                flock_decision(&held, *ino, *owner, *typ)
                    .map(|d| d.map(|t| (t != LockType::Unlock).then(|| vec![t.code()])))
            });
            lock_call(inner, *ino, *owner, LockKind::Flock, &k.fields, decision)
        }
        Op::Setlk {
            ino,
            owner,
            typ,
            start,
            end,
            pid,
        } => {
            let decision = decode_fields(&k.fields, decode_plocks).and_then(|held| {
                setlk_decision(&held, *ino, *owner, *typ, (*start, *end), *pid)
                    .map(|d| d.map(|r| (!r.is_empty()).then(|| encode_plocks(&r))))
            });
            lock_call(inner, *ino, *owner, LockKind::Plock, &k.fields, decision)
        }
        _ => return None,
    })
}

/// Decodes a lock hash read before the round: 16-byte fields (session ID + owner) and the
/// values `decode` reads. Errors: `Corrupted`.
fn decode_fields<T>(
    fields: &[(Vec<u8>, Vec<u8>)],
    decode: impl Fn(&[u8]) -> Result<T>,
) -> Result<Vec<(LockOwner, T)>> {
    fields
        .iter()
        .map(|(f, v)| {
            let o = <[u8; 16]>::try_from(f.as_slice())
                .map_err(|_| Error::new(ErrorKind::Corrupted, "lock record: bad owner field"))?;
            let (sid, owner) = o.split_at(8);
            let owner = LockOwner {
                sid: u64::from_be_bytes(sid.try_into().unwrap_or_default()),
                owner: u64::from_be_bytes(owner.try_into().unwrap_or_default()),
            };
            Ok((owner, decode(v)?))
        })
        .collect()
}

/// The `lock.lua` call applying `decision` (`Ok(None)`: nothing changes, `Ok(Some(None))`:
/// remove the owner's record, `Ok(Some(Some(v)))`: store `v`, `Err`: the op's error) if the
/// lock hash still holds `fields`.
fn lock_call<'a>(
    inner: &'a Inner,
    ino: Ino,
    owner: LockOwner,
    kind: LockKind,
    fields: &[(Vec<u8>, Vec<u8>)],
    decision: Result<Option<Option<Vec<u8>>>>,
) -> Call<'a> {
    let l = &inner.layout;
    let mut field = owner.sid.to_be_bytes().to_vec();
    field.extend_from_slice(&owner.owner.to_be_bytes());
    let mut args = vec![
        ino8(ino),
        owner.sid.to_be_bytes().to_vec(),
        field,
        vec![kind.tag()],
        dec(fields.len()),
    ];
    for (f, v) in fields {
        args.push(f.clone());
        args.push(v.clone());
    }
    match decision {
        Ok(None) => args.push(b"keep".to_vec()),
        Ok(Some(None)) => args.push(b"del".to_vec()),
        Ok(Some(Some(v))) => args.extend([b"set".to_vec(), v]),
        Err(e) => {
            let [ek, em] = err_args(Some(e));
            args.extend([b"err".to_vec(), ek, em]);
        }
    }
    Call {
        lua: &inner.scripts.lock,
        keys: vec![
            l.attr(ino),
            l.sessions(),
            l.locks(kind, ino),
            l.session_locks(owner.sid),
        ],
        args,
    }
}

/// The server's limit, for benchmarks: one pipeline with one script call per op (each its
/// own round of one, so no token), no reads before, no retries; returns how many succeeded.
/// Only for ops that need no reads (mknod, write, setattr without SIZE, xattrs).
pub(crate) async fn raw_pipeline(inner: &Inner, ops: &[Op]) -> Result<usize> {
    let token = inner.layout.token(0);
    let mut p = pipe();
    p.ignore_errors();
    for op in ops {
        let call =
            plan(inner, op, &Known::default()).ok_or_else(|| internal("an op without a script"))?;
        p.cmd("EVALSHA")
            .arg(&call.lua.sha)
            .arg(1 + call.keys.len())
            .arg(&token);
        for key in &call.keys {
            p.arg(key);
        }
        p.arg(0).arg(1);
        for a in &call.args {
            p.arg(a.as_slice());
        }
    }
    let replies = inner
        .conn
        .pipe(&p)
        .await
        .map_err(|e| classify(e, Stage::Write, &inner.target))?;
    Ok(replies
        .into_iter()
        .filter(|v| matches!(parse_reply(v.clone()), Reply::Ok(_)))
        .count())
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
    v.ok_or_else(|| internal(format!("script reply without {what}")))
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
                    .map_err(|_| internal("script reply: bad inode number"))?;
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
        _ => OpOutput::Done,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_script_error_kind_round_trips() {
        for k in [
            ErrorKind::NotFound,
            ErrorKind::AlreadyExists,
            ErrorKind::NotADirectory,
            ErrorKind::IsADirectory,
            ErrorKind::NotEmpty,
            ErrorKind::InvalidArgument,
            ErrorKind::NameTooLong,
            ErrorKind::NotPermitted,
            ErrorKind::NoSpace,
            ErrorKind::NoData,
            ErrorKind::OutOfRange,
            ErrorKind::TooBig,
            ErrorKind::WouldBlock,
            ErrorKind::Corrupted,
        ] {
            assert_eq!(kind_from_name(&kind_name(k)), Some(k));
        }
    }
}
