//! What every KV backend does the same way, embedded ([`super::KvBackend`]) or distributed
//! ([`super::TxnKvBackend`]): the writes of `format` and `reserve_ids`, and the reads that are
//! not op logic (inode scans, chunk lists, pending lists, statfs). Each takes a [`KvRead`], so
//! the embedded backend passes its store and a distributed one a transaction.

use std::ops::Range;

use crate::backend::InodePage;
use crate::error::{Error, ErrorKind, Result, err};
use crate::kv::SETTING_KEY;
use crate::kv::codec::*;
use crate::kv::schema::*;
use crate::kv::store::{KvRead, WriteSet};
use crate::logic::{self, Limits};
use crate::op::Op;
use crate::stats::DirStat;
use crate::types::{Attr, Counter, IdKind, Ino, Pending, Setting, Slice, Statfs, Timespec};

/// How many raw keys one page of a scan reads.
pub const SCAN_PAGE: usize = 1024;

/// The format record. Errors: `NotFound` when the store holds none, `Corrupted` when it does
/// not decode.
pub async fn load_setting<R: KvRead + ?Sized>(r: &R) -> Result<Setting> {
    match r.get(SETTING_KEY).await? {
        Some(v) => decode_setting(&v),
        None => Err(Error::new(
            ErrorKind::NotFound,
            "volume is not formatted (no format record)",
        )),
    }
}

/// A counter's value (0 when absent). Errors: `Corrupted` when it does not decode.
pub async fn read_counter<R: KvRead + ?Sized>(r: &R, c: Counter) -> Result<i64> {
    match r.get(&counter_key(c)).await? {
        Some(v) => decode_counter(&v),
        None => Ok(0),
    }
}

/// The writes that format the store with `setting`, or `None` when it already holds a volume
/// of that name (formatting is idempotent). With `force` every existing key is deleted in the
/// same write set, so the write set grows with the volume. Errors: `AlreadyExists` when it
/// holds another volume and `force` is false; `Corrupted` for an undecodable record.
pub async fn format_writes<R: KvRead + ?Sized>(
    r: &R,
    setting: &Setting,
    force: bool,
) -> Result<Option<WriteSet>> {
    setting.validate()?;
    let mut writes = WriteSet::new();
    if let Some(v) = r.get(SETTING_KEY).await? {
        if !force {
            let old = decode_setting(&v)?;
            if old.name == setting.name {
                return Ok(None);
            }
            return Err(Error::new(
                ErrorKind::AlreadyExists,
                format!(
                    "store already holds volume {:?}; format with force to erase it",
                    old.name
                ),
            ));
        }
        // Erase everything, page by page.
        let mut start = Vec::new();
        loop {
            let page = r.scan(&start, &[0xff; 16], SCAN_PAGE).await?;
            let Some((last, _)) = page.last() else { break };
            start = last.clone();
            start.push(0);
            let n = page.len();
            for (k, _) in page {
                writes.insert(k, None);
            }
            if n < SCAN_PAGE {
                break;
            }
        }
    }
    let now = Timespec::now();
    let root = logic::root_attr(now);
    writes.insert(SETTING_KEY.to_vec(), Some(encode_setting(setting)));
    writes.insert(attr_key(Ino::ROOT), Some(encode_attr(&root)));
    for c in Counter::ALL.into_iter().chain(Counter::SESSIONS) {
        let v = match c {
            Counter::UsedSpace => root.space() as i64,
            Counter::TotalInodes => 1,
            c => c.initial(),
        };
        writes.insert(counter_key(c), Some(encode_counter(v)));
    }
    Ok(Some(writes))
}

/// Checks a request to reserve `n` IDs. Errors: `InvalidArgument` for 0 or more than 2^62.
pub fn check_reserve(n: u64) -> Result<()> {
    if n == 0 || n > i64::MAX as u64 / 2 {
        return Err(err::invalid(format!("cannot reserve {n} IDs")));
    }
    Ok(())
}

/// The range `n` IDs of `kind` would take and the write that takes it. Errors: `NotFound`
/// (unformatted), `Corrupted` (counter ≤ 0 or undecodable), `NoSpace` past 2^63 − 1.
pub async fn reserve_writes<R: KvRead + ?Sized>(
    r: &R,
    kind: IdKind,
    n: u64,
) -> Result<(Range<u64>, WriteSet)> {
    check_reserve(n)?;
    load_setting(r).await?;
    let c = kind.counter();
    let cur = read_counter(r, c).await?;
    let start = u64::try_from(cur)
        .ok()
        .filter(|&s| s > 0)
        .ok_or_else(|| err::corrupted(format!("counter {} is {cur}", c.name())))?;
    let end = start
        .checked_add(n)
        .filter(|&e| e <= i64::MAX as u64)
        .ok_or_else(|| err::no_space(format!("{} IDs exhausted", c.name())))?;
    let mut w = WriteSet::new();
    w.insert(counter_key(c), Some(encode_counter(end as i64)));
    Ok((start..end, w))
}

/// The statistics of each of `dirs`, positionally (zeros for a directory without a record).
/// Errors: `Corrupted` for an undecodable record.
pub async fn dir_stats<R: KvRead + ?Sized>(r: &R, dirs: &[Ino]) -> Result<Vec<DirStat>> {
    let mut out = Vec::with_capacity(dirs.len());
    for d in dirs {
        out.push(match r.get(&dir_stat_key(*d)).await? {
            Some(v) => {
                decode_dir_stat(&v).map_err(|e| e.context_prefix(format!("directory {d}")))?
            }
            None => DirStat::default(),
        });
    }
    Ok(out)
}

/// Every directory quota, by directory inode. Errors: `Corrupted` for an undecodable record
/// or key.
pub async fn quotas<R: KvRead + ?Sized>(r: &R) -> Result<Vec<(Ino, crate::quota::Quota)>> {
    const PAGE: usize = 1024;
    let end = prefix_end(QUOTA_PREFIX);
    let mut start = QUOTA_PREFIX.to_vec();
    let mut out = Vec::new();
    loop {
        let rows = r.scan(&start, &end, PAGE).await?;
        let full = rows.len() == PAGE;
        for (k, v) in rows {
            let dir = parse_quota_key(&k)
                .ok_or_else(|| err::corrupted(format!("quota key {k:?} has no inode number")))?;
            let q = decode_quota(&v).map_err(|e| e.context_prefix(format!("directory {dir}")))?;
            out.push((dir, q));
            start = k;
            start.push(0);
        }
        if !full {
            return Ok(out);
        }
    }
}

/// Volume usage from the counters and the format record.
pub async fn statfs<R: KvRead + ?Sized>(r: &R) -> Result<Statfs> {
    let limits = Limits::from(&load_setting(r).await?);
    Ok(logic::statfs_from(
        read_counter(r, Counter::UsedSpace).await?,
        read_counter(r, Counter::TotalInodes).await?,
        &limits,
    ))
}

/// A page of live inodes in increasing order after `cursor` (see
/// [`crate::Backend::scan_inodes`]). Errors: `InvalidArgument` (cursor), `Corrupted` (record).
pub async fn scan_inodes<R: KvRead + ?Sized>(
    r: &R,
    cursor: Option<&[u8]>,
    limit: usize,
) -> Result<InodePage> {
    let after = InodePage::after(cursor)?;
    let mut out: Vec<(Ino, Attr)> = Vec::new();
    let Some(first) = after.0.checked_add(1) else {
        return Ok(InodePage::default());
    };
    let mut start = attr_key(Ino(first));
    start.truncate(9);
    let end = vec![b'B'];
    while out.len() < limit {
        let page = r.scan(&start, &end, SCAN_PAGE).await?;
        let n = page.len();
        for (k, v) in &page {
            if k.len() == 10 && k[9] == b'I' {
                let ino = key_ino(k).ok_or_else(|| err::corrupted("attr key"))?;
                let attr = decode_attr(v).map_err(|e| e.context_prefix(format!("inode {ino}")))?;
                out.push((ino, attr));
                if out.len() == limit {
                    break;
                }
            }
        }
        match page.last() {
            Some((k, _)) if n == SCAN_PAGE => {
                start = k.clone();
                start.push(0);
            }
            _ => break,
        }
    }
    Ok(InodePage::ordered(out, limit))
}

/// Every chunk of `ino` with its slices, by chunk index. Errors: `Corrupted`.
pub async fn list_chunks<R: KvRead + ?Sized>(r: &R, ino: Ino) -> Result<Vec<(u32, Vec<Slice>)>> {
    let prefix = chunk_prefix(ino);
    let end = prefix_end(&prefix);
    let mut out = Vec::new();
    let mut start = prefix.clone();
    loop {
        let page = r.scan(&start, &end, SCAN_PAGE).await?;
        let n = page.len();
        if let Some((last, _)) = page.last() {
            start = last.clone();
            start.push(0);
        }
        for (k, v) in page {
            let indx = k[prefix.len()..]
                .try_into()
                .map(u32::from_be_bytes)
                .map_err(|_| err::corrupted(format!("chunk key of inode {ino}")))?;
            out.push((indx, decode_chunk(&v)?));
        }
        if n < SCAN_PAGE {
            return Ok(out);
        }
    }
}

/// Records of data waiting for deletion, files first, at most `limit`. Errors: `Corrupted`.
pub async fn list_pending<R: KvRead + ?Sized>(r: &R, limit: usize) -> Result<Vec<Pending>> {
    let mut out = Vec::new();
    for prefix in [b"D", b"L"] {
        if out.len() >= limit {
            break;
        }
        let rows = r
            .scan(prefix, &prefix_end(prefix), limit - out.len())
            .await?;
        for (k, v) in rows {
            out.push(decode_pending(&k, &v)?);
        }
    }
    Ok(out)
}

/// The keys a batch of `ops` will most likely read first: the format record, the space and
/// inode counters, and per op the attributes and entries it names (parent directories and
/// their statistics, the new inode, the named entries, the written chunk, the named xattr,
/// the inodes a release names) and the session record an open, a create-and-open or a lock
/// op checks. A store with round trips fetches them in one request before running the batch
/// ([`crate::kv::StoreTxn::prefetch`]); what the ops read beyond them (an entry's target
/// inode, a directory listing) is read as usual. Duplicates are removed; order is by key.
pub fn batch_keys(ops: &[Op]) -> Vec<Vec<u8>> {
    let mut keys = std::collections::BTreeSet::new();
    keys.insert(SETTING_KEY.to_vec());
    keys.insert(counter_key(Counter::UsedSpace));
    keys.insert(counter_key(Counter::TotalInodes));
    for op in ops {
        match op {
            Op::Mknod {
                parent,
                name,
                ino,
                opened_by,
                ..
            } => {
                keys.insert(attr_key(*parent));
                keys.insert(dir_stat_key(*parent));
                keys.insert(entry_key(*parent, name));
                keys.insert(attr_key(*ino));
                if let Some(sid) = opened_by {
                    keys.insert(session_key(*sid));
                }
            }
            Op::Link {
                ino, parent, name, ..
            } => {
                keys.insert(attr_key(*ino));
                keys.insert(attr_key(*parent));
                keys.insert(dir_stat_key(*parent));
                keys.insert(entry_key(*parent, name));
            }
            Op::Unlink { parent, name, .. } | Op::Rmdir { parent, name, .. } => {
                keys.insert(attr_key(*parent));
                keys.insert(dir_stat_key(*parent));
                keys.insert(entry_key(*parent, name));
            }
            Op::Rename {
                parent,
                name,
                new_parent,
                new_name,
                ..
            } => {
                keys.insert(attr_key(*parent));
                keys.insert(attr_key(*new_parent));
                keys.insert(dir_stat_key(*parent));
                keys.insert(dir_stat_key(*new_parent));
                keys.insert(entry_key(*parent, name));
                keys.insert(entry_key(*new_parent, new_name));
            }
            Op::Write { ino, indx, .. } | Op::CompactChunk { ino, indx, .. } => {
                keys.insert(attr_key(*ino));
                keys.insert(chunk_key(*ino, *indx));
            }
            Op::SetAttr { ino, .. } | Op::Truncate { ino, .. } => {
                keys.insert(attr_key(*ino));
            }
            Op::Open { sid, ino } => {
                keys.insert(attr_key(*ino));
                keys.insert(session_key(*sid));
            }
            // A release reads each inode's attributes (is it sustained?).
            Op::Release { inos, .. } => {
                for (ino, _) in inos {
                    keys.insert(attr_key(*ino));
                }
            }
            Op::Flock { ino, owner, .. } | Op::Setlk { ino, owner, .. } => {
                keys.insert(attr_key(*ino));
                keys.insert(session_key(owner.sid));
            }
            Op::SetXattr { ino, name, .. } | Op::RemoveXattr { ino, name, .. } => {
                keys.insert(attr_key(*ino));
                keys.insert(xattr_key(*ino, name));
            }
            _ => {}
        }
    }
    keys.into_iter().collect()
}
