//! `load`: a dump into an empty store, in two passes. The first reads every line, checks the
//! dump's structure ([`LoadCheck`]) and copies it to a temporary file; only a dump that
//! passes is written, by the second pass from that copy. So a malformed or inconsistent dump
//! fails before the target is formatted: a forced load never erases a volume for a dump it
//! cannot load, and no load leaves a half-written volume for a reason it could see in the
//! dump. (A backend failure during the second pass can still stop it part way.)

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, BufWriter, Seek, Write};

use super::{DUMP_VERSION, DumpStats, Header, InodeRecord, PAGE, PendingRecord, io_err};
use crate::backend::Backend;
use crate::error::{Error, ErrorKind, Result};
use crate::op::{Op, RestoreRecord};
use crate::types::{Counter, FileType, IdKind, Ino, Pending};

fn bad_line(n: usize, e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::new(
        ErrorKind::InvalidArgument,
        format!("dump line {n} is malformed"),
    )
    .with_source(e)
}

/// Said of what a dump of a live volume without a snapshot may show (see `super`'s doc).
const LIVE_HINT: &str =
    " (a dump of a volume written meanwhile, without a snapshot? dump a quiet volume)";

fn invalid(n: usize, what: String) -> Error {
    Error::new(ErrorKind::InvalidArgument, format!("dump line {n}: {what}"))
}

/// Line `n` as read: an I/O error or text that is not UTF-8 names the line.
fn read_line(n: usize, line: std::io::Result<String>) -> Result<String> {
    line.map_err(|e| {
        if e.kind() == std::io::ErrorKind::InvalidData {
            bad_line(n, e)
        } else {
            io_err(&format!("read dump line {n}"), e)
        }
    })
}

/// One record line of a dump (after the header).
enum Record {
    Inode(InodeRecord),
    Pending(PendingRecord),
}

/// Parses line `n` (`None`: a blank line).
fn parse(n: usize, line: &str) -> Result<Option<Record>> {
    if line.trim().is_empty() {
        return Ok(None);
    }
    let value: serde_json::Value = serde_json::from_str(line).map_err(|e| bad_line(n, e))?;
    Ok(Some(if value.get("pending").is_some() {
        Record::Pending(serde_json::from_value(value).map_err(|e| bad_line(n, e))?)
    } else {
        Record::Inode(serde_json::from_value(value).map_err(|e| bad_line(n, e))?)
    }))
}

/// What the first pass checks across lines (memory: about 30 bytes per inode and per slice):
/// a directory has one record, a file no two records of different types; the root's
/// (inode 1) is a directory with no links; every other inode has at least one link and a
/// directory exactly one; every link is into an inode the dump has as a directory; a symlink
/// target only on a symlink; a record names each chunk index once; no pending deletion names
/// an inode of the dump or a slice one of its inodes reads (the data layer would delete live
/// data). Each rule is one that `restore` would otherwise apply blindly, or refuse only part
/// way through the load.
#[derive(Default)]
struct LoadCheck {
    /// Inode records: inode → type.
    types: HashMap<u64, FileType>,
    /// Directories linked into: parent → the first line doing so.
    parents: HashMap<u64, usize>,
    /// Slice IDs the inode records read → the first line doing so.
    slices: HashMap<u64, usize>,
    /// Pending deletions: (line, record).
    pending: Vec<(usize, Pending)>,
}

impl LoadCheck {
    fn inode(&mut self, n: usize, rec: &InodeRecord) -> Result<()> {
        let (ino, typ) = (rec.ino, rec.attr.typ);
        if ino == Ino::ZERO {
            return Err(invalid(n, "inode 0 is never valid".into()));
        }
        // A second record of a file is what a dump of a live volume without a snapshot
        // writes for one renamed during it, and restore takes it (the later attributes, both
        // names); of a directory it would be a second link, making a cycle possible.
        if let Some(prev) = self.types.insert(ino.0, typ) {
            if typ == FileType::Directory || prev == FileType::Directory {
                return Err(invalid(
                    n,
                    format!("directory {ino} has a second record{LIVE_HINT}"),
                ));
            }
            if prev != typ {
                return Err(invalid(
                    n,
                    format!("inode {ino} has a second record, of another type"),
                ));
            }
        }
        if ino == Ino::ROOT {
            if typ != FileType::Directory {
                return Err(invalid(
                    n,
                    format!("the root (inode 1) is a {}", typ.name()),
                ));
            }
            if !rec.links.is_empty() {
                return Err(invalid(
                    n,
                    "the root (inode 1) is linked into a directory".into(),
                ));
            }
        } else if rec.links.is_empty() {
            return Err(invalid(n, format!("inode {ino} has no link")));
        } else if typ == FileType::Directory && rec.links.len() > 1 {
            return Err(invalid(
                n,
                format!("directory {ino} has {} links", rec.links.len()),
            ));
        }
        if rec.target.is_some() && typ != FileType::Symlink {
            return Err(invalid(
                n,
                format!("inode {ino}, a {}, has a symlink target", typ.name()),
            ));
        }
        for (parent, _) in &rec.links {
            self.parents.entry(parent.0).or_insert(n);
        }
        self.chunks(n, &rec.chunks, true)
    }

    /// The chunks of line `n`; `live`: an inode record's, whose slices are read.
    fn chunks(
        &mut self,
        n: usize,
        chunks: &[(u32, Vec<crate::types::Slice>)],
        live: bool,
    ) -> Result<()> {
        let mut indexes = HashSet::with_capacity(chunks.len());
        for (indx, slices) in chunks {
            if !indexes.insert(*indx) {
                return Err(invalid(n, format!("chunk {indx} appears twice")));
            }
            if live {
                for s in slices.iter().filter(|s| s.id != 0) {
                    self.slices.entry(s.id).or_insert(n);
                }
            }
        }
        Ok(())
    }

    fn pending(&mut self, n: usize, rec: &PendingRecord) -> Result<()> {
        if let Pending::Slice { .. } = rec.pending
            && !rec.chunks.is_empty()
        {
            return Err(invalid(n, "a pending slice has chunks".into()));
        }
        self.chunks(n, &rec.chunks, false)?;
        self.pending.push((n, rec.pending));
        Ok(())
    }

    /// The rules across lines, once every line was read.
    fn finish(&self) -> Result<()> {
        if !self.types.contains_key(&Ino::ROOT.0) {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                "the dump has no record of the root (inode 1)",
            ));
        }
        for (&parent, &n) in &self.parents {
            if self.types.get(&parent) != Some(&FileType::Directory) {
                return Err(invalid(
                    n,
                    format!("a link into inode {parent}, which is no directory of the dump"),
                ));
            }
        }
        for &(n, p) in &self.pending {
            match p {
                Pending::File { ino, .. } if self.types.contains_key(&ino.0) => {
                    return Err(invalid(
                        n,
                        format!(
                            "inode {ino} is pending deletion and has a record of its own{LIVE_HINT}"
                        ),
                    ));
                }
                Pending::Slice { id, .. } if self.slices.contains_key(&id) => {
                    return Err(invalid(
                        n,
                        format!(
                            "slice {id} is pending deletion but the inode of line {} reads it{LIVE_HINT}",
                            self.slices[&id]
                        ),
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// The op that restores a record.
fn op_of(rec: Record, stats: &mut DumpStats) -> Op {
    match rec {
        Record::Pending(rec) => {
            stats.pending += 1;
            Op::RestorePending {
                pending: rec.pending,
                chunks: rec.chunks,
            }
        }
        Record::Inode(rec) => {
            stats.inodes += 1;
            stats.entries += rec.links.len() as u64;
            Op::Restore(Box::new(RestoreRecord {
                ino: rec.ino,
                attr: rec.attr,
                links: rec
                    .links
                    .into_iter()
                    .map(|(p, n)| (p, n.into_vec()))
                    .collect(),
                target: rec.target.map(super::Bytes::into_vec).unwrap_or_default(),
                xattrs: rec
                    .xattrs
                    .into_iter()
                    .map(|(n, v)| (n.into_vec(), v.into_vec()))
                    .collect(),
                chunks: rec.chunks,
            }))
        }
    }
}

/// Loads a dump from `input` into the empty store `backend` (formatted from the dump's record;
/// `force` erases whatever the store held). The whole dump is read and checked first (see the
/// module doc; it is copied to a temporary file meanwhile), then inodes are restored in
/// batches of up to 1000 ops. Errors: `InvalidArgument` naming the line for malformed input or
/// a dump that breaks one of `LoadCheck`'s rules (nothing written then), `AlreadyExists`
/// when the store holds a volume and `force` is false, `Unavailable` when the input or the
/// temporary file cannot be read or written, and backend errors. An error of the second pass
/// (the backend refusing a record, or failing) leaves the target formatted and holding the
/// records before it; its message says so, and that a forced load replaces them.
pub async fn load(
    backend: &dyn Backend,
    input: &mut (dyn BufRead + Send),
    force: bool,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<DumpStats> {
    let mut lines = input.lines().enumerate();
    let header: Header = match lines.next() {
        Some((_, l)) => serde_json::from_str(&read_line(1, l)?).map_err(|e| bad_line(1, e))?,
        None => return Err(Error::new(ErrorKind::InvalidArgument, "dump is empty")),
    };
    if header.dump_version > DUMP_VERSION {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "dump version {} is newer than {DUMP_VERSION}",
                header.dump_version
            ),
        ));
    }
    header.setting.validate()?;
    // (The session counters are accepted and not loaded: a loaded volume has no sessions.)
    let known = |n: &str| {
        Counter::ALL
            .iter()
            .chain(&Counter::SESSIONS)
            .any(|c| c.name() == n)
    };
    if let Some(name) = header.counters.keys().find(|n| !known(n)) {
        let names: Vec<&str> = Counter::ALL.iter().map(|c| c.name()).collect();
        return Err(invalid(
            1,
            format!(
                "unknown counter {name:?} (a dump has {}); is it from a newer meta?",
                names.join(", ")
            ),
        ));
    }
    if !force && backend.load().await.is_ok() {
        return Err(Error::new(
            ErrorKind::AlreadyExists,
            "the target already holds a volume; load into an empty one or use force",
        ));
    }
    // First pass: check, and copy the records to a temporary file.
    let spool_err = |e| io_err("temporary copy of the dump", e);
    let mut spool = BufWriter::new(tempfile::tempfile().map_err(spool_err)?);
    let mut check = LoadCheck::default();
    for (i, line) in lines {
        let line = read_line(i + 1, line)?;
        match parse(i + 1, &line)? {
            None => continue,
            Some(Record::Inode(r)) => check.inode(i + 1, &r)?,
            Some(Record::Pending(r)) => check.pending(i + 1, &r)?,
        }
        // (The line number first: the second pass reports the dump's own numbers.)
        writeln!(spool, "{} {line}", i + 1).map_err(spool_err)?;
    }
    check.finish()?;
    for q in &header.quotas {
        if !header.setting.dir_stats {
            return Err(invalid(
                1,
                format!(
                    "a quota on directory {} in a volume without directory statistics",
                    q.dir
                ),
            ));
        }
        if check.types.get(&q.dir.0) != Some(&FileType::Directory) {
            return Err(invalid(
                1,
                format!(
                    "a quota on inode {}, which is no directory of the dump",
                    q.dir
                ),
            ));
        }
    }
    drop(check);
    let mut spool = spool.into_inner().map_err(|e| spool_err(e.into_error()))?;
    spool.rewind().map_err(spool_err)?;

    backend.format(&header.setting, force).await?;
    restore(backend, &header, spool, progress)
        .await
        .map_err(|e| {
            e.context_prefix(
                "load stopped part-way and the target keeps what it loaded before \
             (load again with force to replace it)",
            )
        })
}

/// The second pass of [`load`]: restores the checked copy of the dump (`spool`, each line
/// prefixed with its line number in the dump) into the freshly formatted `backend`, then the
/// header's quotas. Errors: those of the backend, naming the dump line.
async fn restore(
    backend: &dyn Backend,
    header: &Header,
    spool: std::fs::File,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<DumpStats> {
    let spool_err = |e| io_err("temporary copy of the dump", e);
    // The ID counters never trail the IDs present, wherever the load stops: first raised to
    // the header's values, then, before each batch, above every inode and slice ID in it
    // (the header may be older than the records: a dump of a volume being written).
    for kind in [IdKind::Inode, IdKind::Chunk] {
        let name = kind.counter().name();
        let want = header.counters.get(name).copied();
        raise_counter(backend, kind, want.map_or(0, |v| v.max(0) as u64))
            .await
            .map_err(|e| e.context_prefix(format!("counter {name} of the dump (line 1)")))?;
    }
    let mut stats = DumpStats::default();
    let mut batch: Vec<Op> = Vec::with_capacity(PAGE);
    let mut batch_lines: Vec<usize> = Vec::with_capacity(PAGE);
    let flush = async |batch: &mut Vec<Op>, batch_lines: &mut Vec<usize>| -> Result<()> {
        let (mut inodes, mut slices) = (0u64, 0u64);
        for op in batch.iter() {
            let (ino, chunks, slice) = match op {
                Op::Restore(r) => (r.ino.0, &r.chunks, 0),
                Op::RestorePending { pending, chunks } => match pending {
                    Pending::File { ino, .. } => (ino.0, chunks, 0),
                    Pending::Slice { id, .. } => (0, chunks, *id),
                },
                _ => continue,
            };
            inodes = inodes.max(ino);
            slices = slices.max(slice);
            for (_, list) in chunks {
                slices = slices.max(list.iter().map(|s| s.id).max().unwrap_or(0));
            }
        }
        raise_counter(backend, IdKind::Inode, inodes.saturating_add(1)).await?;
        raise_counter(backend, IdKind::Chunk, slices.saturating_add(1)).await?;
        let results = backend.apply(batch).await?;
        for (r, line) in results.into_iter().zip(batch_lines.iter()) {
            r.map_err(|e| e.context_prefix(format!("dump line {line}")))?;
        }
        batch.clear();
        batch_lines.clear();
        Ok(())
    };
    for line in BufReader::with_capacity(1 << 16, spool).lines() {
        let line = line.map_err(spool_err)?;
        let (n, text) = line.split_once(' ').unwrap_or(("0", ""));
        let n: usize = n.parse().unwrap_or(0);
        let Some(rec) = parse(n, text)? else { continue };
        batch.push(op_of(rec, &mut stats));
        batch_lines.push(n);
        if batch.len() >= PAGE.min(backend.info().max_batch_ops) {
            flush(&mut batch, &mut batch_lines).await?;
            progress(stats.inodes);
        }
    }
    if !batch.is_empty() {
        flush(&mut batch, &mut batch_lines).await?;
        progress(stats.inodes);
    }
    // Quotas last, each with the usage of its now complete subtree.
    for q in &header.quotas {
        let subtree = crate::quota::subtree_dirs(backend, q.dir)
            .await
            .map_err(|e| e.context_prefix(format!("quota of directory {} (dump line 1)", q.dir)))?;
        let op = Op::SetQuota {
            dir: q.dir,
            max_space: q.max_space,
            max_inodes: q.max_inodes,
            subtree,
        };
        for r in backend.apply(&[op]).await? {
            r.map_err(|e| e.context_prefix(format!("quota of directory {} (dump line 1)", q.dir)))?;
        }
    }
    Ok(stats)
}

/// Raises the counter of `kind` so that the next ID it hands out is at least `next` (a
/// reservation of the difference; never lowers it). Errors: those of the backend.
async fn raise_counter(backend: &dyn Backend, kind: IdKind, next: u64) -> Result<()> {
    let have = backend.get_counter(kind.counter()).await?.max(0) as u64;
    if next > have {
        backend.reserve_ids(kind, next - have).await?;
    }
    Ok(())
}
