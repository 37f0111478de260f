//! Dump and load a whole volume as streaming JSON Lines.
//!
//! Line 1 is a [`Header`] (format record, counters, directory quotas' limits); then one [`InodeRecord`] per line, in
//! the order of a breadth-first walk of the directories by name: the root, then the entries
//! of each directory page by page, each inode with every entry that names it, a directory
//! after its parent and a file after every directory that names it (an inode with several
//! links is written when its last name is met); last, one [`PendingRecord`] per record of
//! data awaiting deletion. The order depends only on the volume's content.
//!
//! The dump streams: it keeps the directories left to walk and the names of hard-linked
//! inodes not yet written, not the volume, and reads each directory page's inodes in one
//! [`Backend::read_inodes`] call.
//!
//! Sessions, open files and locks are not dumped: they belong to the clients of the dumped
//! volume, not to its content. A sustained inode (unlinked while open) is dumped as what it
//! becomes once its sessions end: a regular file with data becomes a pending-deletion record
//! with its chunks (so the data layer still deletes its objects), anything else is left out.
//! Names, symlink targets and xattr values are bytes: they appear as a JSON string when
//! they are valid UTF-8, else as an array of byte values. `load` of a dump into an empty store,
//! then `dump` again, gives the same text.
//!
//! A dump is a **consistent snapshot** where the backend gives one ([`Backend::snapshot`]):
//! RocksDB (a RocksDB snapshot), the SQL backends (one read transaction: PostgreSQL
//! `REPEATABLE READ`, MySQL/MariaDB `WITH CONSISTENT SNAPSHOT`, SQLite a deferred read
//! transaction) and the in-memory backend (a copy); see [`crate::snapshot`] for the table.
//! Elsewhere (Redis, etcd, TiKV, for now) it reads the live volume, one
//! consistent read after another, so a dump of a volume that clients are writing may show
//! some of their ops and not others (a file renamed during the dump may appear under both
//! names, or neither); [`DumpStats::snapshot`] says which, and `meta dump` prints it. Dump a
//! quiet volume there for an exact copy. A dump refuses a corrupted volume it cannot walk
//! faithfully (a directory reached twice, an entry whose type is not its inode's) with
//! `Corrupted`, rather than leave part of it out.
//!
//! `load` reads and checks the whole dump before it writes anything (see its module: a
//! malformed or inconsistent dump leaves the target as it was, even with `force`).
//! Loading never lets the ID counters trail the IDs present: `load` raises `nextInode` and
//! `nextChunk` to the header's values first, then above every inode and slice ID of each
//! batch before applying it, so a load that stops midway (a backend error) or a header older
//! than its records (a dump of a volume being written) cannot make the next create or write
//! reuse an ID. Directory quotas are set last, each with the usage of its loaded subtree.

use std::collections::BTreeMap;
use std::io::Write;

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::error::{Error, ErrorKind, Result};
use crate::snapshot::{InodeData, LiveReads, VolumeReads};
use crate::types::{Attr, Counter, FileType, Ino, Pending, Setting, Slice};

mod load;

pub use load::load;

/// Version of the dump format this build writes and reads.
pub const DUMP_VERSION: u32 = 1;
/// Entries fetched per readdir call while dumping; inodes restored per `apply` when loading.
const PAGE: usize = 1000;

/// Bytes in a dump: a string when valid UTF-8, else the raw byte values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Bytes {
    /// Valid UTF-8.
    Text(String),
    /// Anything else.
    Raw(Vec<u8>),
}

impl From<Vec<u8>> for Bytes {
    fn from(v: Vec<u8>) -> Bytes {
        match String::from_utf8(v) {
            Ok(s) => Bytes::Text(s),
            Err(e) => Bytes::Raw(e.into_bytes()),
        }
    }
}

impl Bytes {
    /// The bytes.
    pub fn into_vec(self) -> Vec<u8> {
        match self {
            Bytes::Text(s) => s.into_bytes(),
            Bytes::Raw(v) => v,
        }
    }
}

/// First line of a dump.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// Dump format version ([`DUMP_VERSION`]).
    pub dump_version: u32,
    /// The volume's format record.
    pub setting: Setting,
    /// Counter values by stored name (`nextInode`, `nextChunk`, `usedSpace`, `totalInodes`);
    /// `load` refuses a name it does not know (a dump from a newer meta).
    pub counters: BTreeMap<String, i64>,
    /// Directory quotas' limits (absent when there are none). Their usage is not dumped:
    /// `load` recomputes it from the loaded subtree ([`crate::Op::SetQuota`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quotas: Vec<QuotaLimits>,
}

/// One directory quota's limits in a dump [`Header`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaLimits {
    /// The directory.
    pub dir: Ino,
    /// Space limit in bytes; 0 is none.
    pub max_space: u64,
    /// Inode limit; 0 is none.
    pub max_inodes: u64,
}

/// One inode of a dump (an unknown field is refused: a misspelt one would be lost).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InodeRecord {
    /// Inode number.
    pub ino: Ino,
    /// Attributes.
    pub attr: Attr,
    /// `(parent, name)` of each entry naming it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<(Ino, Bytes)>,
    /// Symlink target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<Bytes>,
    /// Extended attributes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub xattrs: Vec<(Bytes, Bytes)>,
    /// Chunks: index and slices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<(u32, Vec<Slice>)>,
}

/// Counts of a finished dump or load.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct DumpStats {
    /// Inode records written or read.
    pub inodes: u64,
    /// Directory entries (links) written or read.
    pub entries: u64,
    /// Pending-deletion records written or read.
    pub pending: u64,
    /// For a dump: true when it was read from one point-in-time view of the volume
    /// ([`Backend::snapshot`]), false when the backend gives none and it read the live
    /// volume. Always false for a load.
    pub snapshot: bool,
}

/// A pending-deletion record of a dump (after every inode): the record and, for a deleted
/// file, its chunks (an unknown field is refused).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingRecord {
    /// The record.
    pub pending: Pending,
    /// Chunks of a pending file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chunks: Vec<(u32, Vec<Slice>)>,
}

fn io_err(what: &str, e: std::io::Error) -> Error {
    Error::new(ErrorKind::Unavailable, what.to_string()).with_source(e)
}

fn json_line<T: Serialize>(out: &mut (dyn Write + Send), v: &T) -> Result<()> {
    serde_json::to_writer(&mut *out, v).map_err(|e| {
        if e.is_io() {
            Error::new(ErrorKind::Unavailable, "write dump").with_source(e)
        } else {
            Error::new(ErrorKind::Internal, "encode dump record").with_source(e)
        }
    })?;
    out.write_all(b"\n").map_err(|e| io_err("write dump", e))
}

/// Writes the whole volume to `out`, from a point-in-time view when the backend gives one
/// ([`Backend::snapshot`]), else from the live volume ([`LiveReads`]; the returned
/// [`DumpStats::snapshot`] is then false); `progress` is called with the number of inodes
/// written so far. Errors: those of the backend reads, `Unavailable` when `out` fails.
pub async fn dump(
    backend: &dyn Backend,
    out: &mut (dyn Write + Send),
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<DumpStats> {
    let snap = backend.snapshot().await?;
    let live = LiveReads(backend);
    let reads: &dyn VolumeReads = match &snap {
        Some(s) => &**s,
        None => &live,
    };
    dump_from(reads, out, progress).await
}

/// An inode seen with more links than found so far: its names until all are found.
struct HardLink {
    nlink: u32,
    links: Vec<(Ino, Vec<u8>)>,
}

/// [`dump`] through the given reads (a snapshot or the live volume).
///
/// Streams: directories are walked breadth-first, a page of 1,000 entries at a time, and
/// the page's inodes are read in one [`VolumeReads::read_inodes`] call and written at once,
/// so a directory comes after its parent and a file after the directories that name it.
/// Only what the walk still needs is kept: the directories left to walk (8 bytes each) and
/// the names of inodes with more than one link whose other names are still to be found;
/// such an inode is written (read again) when its last name is met, or at the end (by
/// inode number) with the names found if its link count says more. The output depends only
/// on the volume's content. Errors: as [`dump`]; `Corrupted` for a directory reached twice.
pub async fn dump_from(
    reads: &dyn VolumeReads,
    out: &mut (dyn Write + Send),
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<DumpStats> {
    let setting = reads.load().await?;
    let mut counters = BTreeMap::new();
    for c in Counter::ALL {
        counters.insert(c.name().to_string(), reads.get_counter(c).await?);
    }
    let quotas = reads
        .quotas()
        .await?
        .into_iter()
        .map(|(dir, q)| QuotaLimits {
            dir,
            max_space: q.max_space,
            max_inodes: q.max_inodes,
        })
        .collect();
    json_line(
        out,
        &Header {
            dump_version: DUMP_VERSION,
            setting,
            counters,
            quotas,
        },
    )?;
    let mut stats = DumpStats {
        snapshot: reads.is_snapshot(),
        ..DumpStats::default()
    };
    let root = reads
        .read_inodes(&[Ino::ROOT])
        .await?
        .into_iter()
        .next()
        .flatten()
        .ok_or_else(|| Error::new(ErrorKind::Corrupted, "the root directory is missing"))?;
    write_inode(out, &mut stats, Ino::ROOT, root, Vec::new())?;
    progress(stats.inodes);
    // Directories left to walk, in the order met (breadth-first).
    let mut dirs = std::collections::VecDeque::from([Ino::ROOT]);
    let mut seen_dirs = std::collections::HashSet::from([Ino::ROOT]);
    let mut hard: BTreeMap<Ino, HardLink> = BTreeMap::new();
    while let Some(dir) = dirs.pop_front() {
        let mut cursor: Option<Vec<u8>> = None;
        loop {
            let page = reads.read_dir(dir, cursor.as_deref(), PAGE).await?;
            let n = page.len();
            cursor = page.last().map(|e| e.name.clone());
            // Inodes to read: those met for the first time. `touched`: hard-linked inodes
            // that got a name in this page.
            let mut first = Vec::with_capacity(n);
            let mut named = Vec::with_capacity(n);
            let mut touched = Vec::new();
            for e in page {
                if e.typ == FileType::Directory {
                    if !seen_dirs.insert(e.ino) {
                        return Err(second_link(dir, &e.name, e.ino));
                    }
                    dirs.push_back(e.ino);
                }
                if let Some(h) = hard.get_mut(&e.ino) {
                    h.links.push((dir, e.name));
                    touched.push(e.ino);
                } else {
                    first.push(e.ino);
                    named.push((e.ino, e.name, e.typ));
                }
            }
            let data = reads.read_inodes(&first).await?;
            for ((ino, name, typ), d) in named.into_iter().zip(data) {
                let d = d.ok_or_else(|| missing(dir, &name, ino))?;
                if d.attr.typ != typ {
                    // The walk went by the entry's type: writing the inode's own would leave
                    // out (or wrongly walk) a subtree without a word.
                    return Err(type_mismatch(dir, &name, ino, typ, d.attr.typ));
                }
                let nlink = d.attr.nlink;
                if d.attr.typ != FileType::Directory && nlink > 1 {
                    touched.push(ino);
                    if let Some(h) = hard.get_mut(&ino) {
                        // Named twice in this page.
                        h.links.push((dir, name));
                    } else {
                        hard.insert(
                            ino,
                            HardLink {
                                nlink,
                                links: vec![(dir, name)],
                            },
                        );
                    }
                } else {
                    write_inode(out, &mut stats, ino, d, vec![(dir, name)])?;
                }
            }
            // Hard-linked inodes whose last name this page holds, by inode number.
            touched.sort_unstable();
            touched.dedup();
            let complete: Vec<Ino> = touched
                .into_iter()
                .filter(|i| {
                    hard.get(i)
                        .is_some_and(|h| h.links.len() >= h.nlink as usize)
                })
                .collect();
            write_hard_links(reads, out, &mut stats, &mut hard, &complete).await?;
            progress(stats.inodes);
            if n < PAGE {
                break;
            }
        }
    }
    // Inodes with fewer names than links (a volume being written, or one fsck would
    // repair): with the names found, by inode number.
    let rest: Vec<Ino> = hard.keys().copied().collect();
    for part in rest.chunks(PAGE) {
        write_hard_links(reads, out, &mut stats, &mut hard, part).await?;
        progress(stats.inodes);
    }
    // Data awaiting deletion by the data layer: without it the objects would leak. Sustained
    // regular files with data go the same way (see the module doc).
    let mut pendings = reads.list_pending(usize::MAX).await?;
    let mut sustained = std::collections::BTreeSet::new();
    for s in reads.list_sessions().await? {
        match reads.session_holdings(s.info.sid).await {
            Ok(h) => sustained.extend(h.open),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    let sustained: Vec<Ino> = sustained.into_iter().collect();
    for part in sustained.chunks(PAGE) {
        for (&ino, d) in part.iter().zip(reads.read_inodes(part).await?) {
            if let Some(d) = d
                && d.attr.nlink == 0
                && d.attr.typ == FileType::Regular
                && d.attr.length > 0
            {
                pendings.push(Pending::File {
                    ino,
                    length: d.attr.length,
                });
            }
        }
    }
    for pending in pendings {
        let chunks = match pending {
            Pending::File { ino, .. } => reads.list_chunks(ino).await?,
            Pending::Slice { .. } => Vec::new(),
        };
        json_line(out, &PendingRecord { pending, chunks })?;
        stats.pending += 1;
    }
    out.flush().map_err(|e| io_err("write dump", e))?;
    Ok(stats)
}

/// Reads and writes the hard-linked inodes `inos` (keys of `hard`, which they leave) with
/// the names found. Errors: those of the reads and of `out`; `NotFound` for an inode gone.
async fn write_hard_links(
    reads: &dyn VolumeReads,
    out: &mut (dyn Write + Send),
    stats: &mut DumpStats,
    hard: &mut BTreeMap<Ino, HardLink>,
    inos: &[Ino],
) -> Result<()> {
    if inos.is_empty() {
        return Ok(());
    }
    let data = reads.read_inodes(inos).await?;
    for (&ino, d) in inos.iter().zip(data) {
        let links = hard.remove(&ino).map(|h| h.links).unwrap_or_default();
        let d = match (d, links.first()) {
            (Some(d), _) => d,
            (None, Some((dir, name))) => return Err(missing(*dir, name, ino)),
            (None, None) => {
                return Err(Error::new(
                    ErrorKind::NotFound,
                    format!("inode {ino} is gone"),
                ));
            }
        };
        write_inode(out, stats, ino, d, links)?;
    }
    Ok(())
}

/// Writes one inode record.
fn write_inode(
    out: &mut (dyn Write + Send),
    stats: &mut DumpStats,
    ino: Ino,
    d: InodeData,
    links: Vec<(Ino, Vec<u8>)>,
) -> Result<()> {
    stats.entries += links.len() as u64;
    json_line(
        out,
        &InodeRecord {
            ino,
            attr: d.attr,
            links: links
                .into_iter()
                .map(|(p, n)| (p, Bytes::from(n)))
                .collect(),
            target: d.target.map(Bytes::from),
            xattrs: d
                .xattrs
                .into_iter()
                .map(|(n, v)| (Bytes::from(n), Bytes::from(v)))
                .collect(),
            chunks: d.chunks,
        },
    )?;
    stats.inodes += 1;
    Ok(())
}

/// The error of entry `name` of `parent` naming inode `ino`, which does not exist.
fn missing(parent: Ino, name: &[u8], ino: Ino) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!(
            "entry {parent}/{} names inode {ino}, which does not exist",
            String::from_utf8_lossy(name)
        ),
    )
}

/// The error of an entry whose recorded type is not its inode's: a corrupted volume, which a
/// dump refuses rather than go by one of the two (run fsck).
fn type_mismatch(parent: Ino, name: &[u8], ino: Ino, entry: FileType, inode: FileType) -> Error {
    Error::new(
        ErrorKind::Corrupted,
        format!(
            "entry {parent}/{} says {} but inode {ino} is a {} (run fsck)",
            String::from_utf8_lossy(name),
            entry.name(),
            inode.name()
        ),
    )
}

/// The error of a directory reached a second time (entry `name` of `parent`): a corrupted
/// volume (a directory cycle, or a second link to a directory), which a walk must not follow.
pub fn second_link(parent: Ino, name: &[u8], ino: Ino) -> Error {
    Error::new(
        ErrorKind::Corrupted,
        format!(
            "directory {ino} is reached a second time, through entry {:?} of directory \
             {parent}: a directory cycle or a second link to a directory (run fsck)",
            String::from_utf8_lossy(name)
        ),
    )
}
