//! The backend contract: what a database must provide to hold a volume.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::Range;

use async_trait::async_trait;

use crate::error::{Error, ErrorKind, Result};
use crate::op::{Op, OpOutput};
use crate::session::{InodeLocks, Session, SessionHoldings, Sid};
use crate::snapshot::{InodeData, VolumeReads};
use crate::stats::DirStat;
use crate::types::{Attr, Counter, DirEntry, IdKind, Ino, Pending, Setting, Slice, Statfs};

/// Static facts about a backend. More may be added: build it with [`BackendInfo::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackendInfo {
    /// URL scheme, e.g. `"rocksdb"`, `"memory"`.
    pub scheme: &'static str,
    /// Most ops one [`Backend::apply`] call accepts; the batcher never sends more.
    pub max_batch_ops: usize,
    /// True when data survives the process (false for the in-memory backend).
    pub durable: bool,
}

impl BackendInfo {
    /// Facts of a backend of URL scheme `scheme` that takes at most `max_batch_ops` ops per
    /// [`Backend::apply`] and keeps data across restarts when `durable`.
    pub const fn new(scheme: &'static str, max_batch_ops: usize, durable: bool) -> Self {
        BackendInfo {
            scheme,
            max_batch_ops,
            durable,
        }
    }
}

/// A page of [`Backend::scan_inodes`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InodePage {
    /// Live inodes with their attributes.
    pub inodes: Vec<(Ino, Attr)>,
    /// The cursor of the next page; `None` when the scan is complete.
    pub next: Option<Vec<u8>>,
}

impl InodePage {
    /// For backends that list inodes in increasing order: the last inode number listed
    /// before `cursor` (0 at the start). Their cursors are that number, 8 bytes big-endian.
    /// Errors: `InvalidArgument` for anything else.
    pub fn after(cursor: Option<&[u8]>) -> Result<Ino> {
        match cursor {
            None => Ok(Ino::ZERO),
            Some(c) => <[u8; 8]>::try_from(c)
                .map(|b| Ino(u64::from_be_bytes(b)))
                .map_err(|_| {
                    crate::error::Error::new(
                        crate::error::ErrorKind::InvalidArgument,
                        format!(
                            "scan_inodes: a cursor of {} bytes is not one of ours",
                            c.len()
                        ),
                    )
                }),
        }
    }

    /// The page of an ordered scan that asked for `limit` inodes: a next cursor (the last
    /// inode number) only when the page is full.
    pub fn ordered(inodes: Vec<(Ino, Attr)>, limit: usize) -> InodePage {
        let next = match inodes.last() {
            Some((last, _)) if inodes.len() >= limit => Some(last.0.to_be_bytes().to_vec()),
            _ => None,
        };
        InodePage { inodes, next }
    }
}

/// Every live inode of the volume with its attributes, by inode number: the whole
/// [`Backend::scan_inodes`] in pages of `page` (repeats collapse). Holds the whole volume's
/// attributes in memory (about 100 bytes per inode). Errors: those of `scan_inodes`.
pub async fn all_inodes(backend: &dyn Backend, page: usize) -> Result<BTreeMap<Ino, Attr>> {
    let mut out = BTreeMap::new();
    let mut cursor: Option<Vec<u8>> = None;
    loop {
        let p = backend.scan_inodes(cursor.as_deref(), page.max(1)).await?;
        out.extend(p.inodes);
        match p.next {
            Some(next) => cursor = Some(next),
            None => return Ok(out),
        }
    }
}

/// A database that stores one volume's metadata.
///
/// Implementations: `meta-core`'s in-memory reference backend and [`crate::kv::KvBackend`]
/// (any ordered key-value store), `meta-rocks`, `meta-redis`, `meta-sql`, `meta-tikv`. The shared
/// conformance suite (`meta-conformance`) checks that an implementation follows this contract.
///
/// Reads return `NotFound` for a missing inode; they see every op whose `apply` returned.
#[async_trait]
pub trait Backend: Send + Sync + Debug + 'static {
    /// Scheme, capabilities and batch limit.
    fn info(&self) -> BackendInfo;

    /// How many batches it pays to have in flight at once (the batcher's default
    /// `max_inflight`). A backend that applies one batch at a time (a single writer) should
    /// answer 1: further batches would only queue behind it, and batches would form smaller.
    /// One that overlaps requests (a connection pool, a pipelined connection) keeps the
    /// default, 4.
    fn preferred_inflight(&self) -> usize {
        4
    }

    /// Backend-specific activity counters since this handle was made, as (name, count), for
    /// tools and benchmarks: a transactional store reports its `commits` and
    /// `conflict_retries`. Default: none.
    fn activity(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }

    /// Writes the format record and creates the root directory (ino 1, mode 0777, owned by
    /// root) and the counters. Idempotent: formatting an already formatted volume with the same
    /// name is a no-op that keeps the stored record. Errors: `AlreadyExists` when it holds a
    /// volume of another name and `force` is false; with `force` the old volume is erased first.
    async fn format(&self, setting: &Setting, force: bool) -> Result<()>;

    /// Reads the format record. Errors: `NotFound` when the volume was never formatted,
    /// `Corrupted` when undecodable, `Unsupported` when written by a newer format version.
    async fn load(&self) -> Result<Setting>;

    /// Applies `ops` in order. Each op is atomic and independent: it takes full effect or none,
    /// and op *i* sees the effects of ops before it. Returns exactly `ops.len()` results,
    /// positionally. The outer `Err` means the whole batch failed: `Unavailable` or `Conflict`
    /// mean nothing was applied; `Indeterminate` means an unknown subset may have been applied.
    async fn apply(&self, ops: &[Op]) -> Result<Vec<Result<OpOutput>>>;

    /// Atomically advances the counter of `kind` by `n` (n ≥ 1) and returns the reserved range
    /// `[old, old + n)`. Unique across every client of the volume and durable before it returns.
    async fn reserve_ids(&self, kind: IdKind, n: u64) -> Result<Range<u64>>;

    /// Resolves `name` in directory `parent`; returns the inode and its attributes.
    /// Errors: `NotFound`, `NotADirectory` when `parent` is not a directory.
    async fn lookup(&self, parent: Ino, name: &[u8]) -> Result<(Ino, Attr)>;

    /// Attributes of `ino`; `NotFound` if it does not exist.
    async fn get_attr(&self, ino: Ino) -> Result<Attr>;

    /// Entries of directory `ino` in byte order of their names, starting strictly after the
    /// name `after` (the cursor; `None` from the start), at most `limit` entries, with
    /// attributes when `plus`. `.` and `..` are not listed. Errors: `NotFound`, `NotADirectory`.
    async fn read_dir(
        &self,
        ino: Ino,
        after: Option<&[u8]>,
        limit: usize,
        plus: bool,
    ) -> Result<Vec<DirEntry>>;

    /// Slices of chunk `indx` of `ino`, in write order (later shadow earlier). An inode listed
    /// as pending deletion can still be read. Empty if the chunk has no slices.
    async fn read_chunk(&self, ino: Ino, indx: u32) -> Result<Vec<Slice>>;

    /// The target of symlink `ino`. Errors: `NotFound`, `InvalidArgument` (not a symlink).
    async fn read_link(&self, ino: Ino) -> Result<Vec<u8>>;

    /// Value of xattr `name` of `ino`. Errors: `NotFound` (inode), `NoData` (attribute).
    async fn get_xattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>>;

    /// Names of the xattrs of `ino`, in byte order. Errors: `NotFound`.
    async fn list_xattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>>;

    /// Volume usage from the counters and the format record's limits.
    async fn statfs(&self) -> Result<Statfs>;

    /// Current value of a counter.
    async fn get_counter(&self, counter: Counter) -> Result<i64>;

    /// The statistics of each of `dirs` ([`crate::stats`]), positionally, read together (one
    /// request where the database allows); zeros for an inode without a record (an empty
    /// directory, a non-directory, a missing inode, or a volume formatted without
    /// statistics: callers check [`crate::Setting::dir_stats`] and the inode's type). The
    /// default fails with `Unsupported`. Errors: `Corrupted` for an undecodable record,
    /// those of the reads.
    async fn dir_stats(&self, dirs: &[Ino]) -> Result<Vec<DirStat>> {
        let _ = dirs;
        Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "the {} backend keeps no directory statistics",
                self.info().scheme
            ),
        ))
    }

    /// Every directory quota ([`crate::quota`]) with its limits and usage, ordered by
    /// directory inode, read in one request where the database allows. The default fails
    /// with `Unsupported`. Errors: `Corrupted` for an undecodable record, those of the reads.
    async fn quotas(&self) -> Result<Vec<(Ino, crate::quota::Quota)>> {
        Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "the {} backend keeps no directory quotas",
                self.info().scheme
            ),
        ))
    }

    /// Live inodes with their attributes, a page at a time (for fsck and tools): start with
    /// `cursor = None`, then pass the previous page's [`InodePage::next`] until it is `None`.
    /// Every inode that lives for the whole scan is listed at least once; one may be listed
    /// again, and the order is the backend's (increasing inode number, except on Redis,
    /// whose `SCAN` follows its hash table). A page holds at most about `limit` inodes and
    /// may be empty before the end. Errors: `InvalidArgument` for a cursor this backend did
    /// not return.
    async fn scan_inodes(&self, cursor: Option<&[u8]>, limit: usize) -> Result<InodePage>;

    /// Every chunk of `ino` with its slices, by increasing chunk index.
    async fn list_chunks(&self, ino: Ino) -> Result<Vec<(u32, Vec<Slice>)>>;

    /// Records of data waiting for deletion (see [`Pending`]), at most `limit`.
    async fn list_pending(&self, limit: usize) -> Result<Vec<Pending>>;

    /// Every session of the volume (expired ones not yet cleaned up included), by
    /// increasing ID.
    async fn list_sessions(&self) -> Result<Vec<Session>>;

    /// What session `sid` holds: its open inodes and its locks. Errors: `NotFound` when the
    /// session does not exist.
    async fn session_holdings(&self, sid: Sid) -> Result<SessionHoldings>;

    /// The flocks and byte-range locks on `ino`, by owner (what fcntl(2) `F_GETLK` is
    /// answered from). Errors: `NotFound` when the inode does not exist.
    async fn list_locks(&self, ino: Ino) -> Result<InodeLocks>;

    /// What a dump records of each of `inos` (attributes, symlink target, xattrs, chunks of
    /// a regular file), positionally; `None` for an inode that does not exist. The default
    /// reads them one after another with the point reads
    /// ([`crate::snapshot::read_inodes_one_by_one`]); a backend overrides it to read a
    /// directory page's inodes in a few requests (the KV backends from one store snapshot,
    /// SQL with four queries outside a transaction). Only a [`Backend::snapshot`] makes them
    /// consistent with each other and with the rest of a dump. Errors: those of the reads.
    async fn read_inodes(&self, inos: &[Ino]) -> Result<Vec<Option<InodeData>>> {
        crate::snapshot::read_inodes_one_by_one(self, inos).await
    }

    /// A read-only view of the whole volume at one point in time, for a dump: every read of
    /// it sees the volume as it was when it was taken, whatever is written meanwhile; it is
    /// released when dropped. `None` when this backend cannot give one (the default): a dump
    /// then reads the live volume and says so. See [`crate::snapshot`] for which backends
    /// give one. Errors: those of taking it.
    async fn snapshot(&self) -> Result<Option<Box<dyn VolumeReads + '_>>> {
        Ok(None)
    }
}
