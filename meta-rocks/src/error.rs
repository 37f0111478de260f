//! The one place that turns RocksDB (and file-system) errors into [`meta_core::ErrorKind`]s.
//!
//! RocksDB reports every failure as a `Status` rendered to a string such as
//! `"IO error: While lock file: /v/LOCK: Resource temporarily unavailable"`; the `rocksdb` crate
//! parses its leading code into [`rocksdb::ErrorKind`]. What a code means for the caller depends
//! on when it happened ([`Stage`]): an I/O error while opening or reading means "nothing was
//! done, try again later", but an I/O error while writing a batch means the WAL record may or
//! may not have reached the disk.

use std::path::Path;

use meta_core::{Error, ErrorKind};

/// When the error happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// `DB::open` (recovery included).
    Open,
    /// A point read or an iterator.
    Read,
    /// Writing one `WriteBatch`.
    Commit,
    /// A memtable flush requested by the caller.
    Flush,
}

impl Stage {
    fn verb(self) -> &'static str {
        match self {
            Stage::Open => "open",
            Stage::Read => "read",
            Stage::Commit => "commit a batch to",
            Stage::Flush => "flush",
        }
    }
}

/// Classifies a RocksDB error raised at `stage` on the volume at `path`.
pub(crate) fn classify(e: rocksdb::Error, stage: Stage, path: &Path) -> Error {
    let msg = e.as_ref();
    let at = format!("rocksdb: cannot {} volume {}", stage.verb(), path.display());
    // Another process holds the volume: `LockFile` failed on `<path>/LOCK` with EAGAIN
    // ("IO error: While lock file: ...: Resource temporarily unavailable"). Unavailable rather
    // than ConfigInvalid: the URL and options are fine and the same call succeeds once the
    // other process closes the volume; nothing was read or written (errno EIO, "try later").
    if msg.contains("While lock file") {
        return Error::new(
            ErrorKind::Unavailable,
            format!(
                "{at}: the volume is in use by another process (its LOCK file is held); \
                 close that process first"
            ),
        )
        .with_source(e);
    }
    // This process already has the volume open ("lock hold by current process, acquire
    // time ..."): RocksDB keeps a per-process table of held LOCK files because fcntl locks do
    // not conflict within one process. Same reasoning as above: Unavailable until the first
    // handle (every clone of the backend, and any task still holding one) is dropped.
    if msg.contains("lock hold by current process") {
        return Error::new(
            ErrorKind::Unavailable,
            format!(
                "{at}: the volume is in use: this process already has it open (drop every \
                 handle of the first open before opening it again)"
            ),
        )
        .with_source(e);
    }
    let kind = match (e.kind(), stage) {
        // A checksum mismatch, a torn/undecodable MANIFEST or SST, a missing file the
        // MANIFEST names: the stored data is damaged; retrying will not help.
        (rocksdb::ErrorKind::Corruption, _) => ErrorKind::Corrupted,
        // Opening: a file the MANIFEST lists is gone ("NotFound: ... No such file").
        (rocksdb::ErrorKind::NotFound, Stage::Open) => ErrorKind::Corrupted,
        // Writing a batch failed in the WAL append or its fsync (EIO, ENOSPC, ...): the
        // record may be partly or wholly on disk, and recovery may replay it. The outcome
        // of the batch is unknown.
        (rocksdb::ErrorKind::IOError, Stage::Commit) => ErrorKind::Indeterminate,
        // Opening, reading or flushing: the disk or file system failed (EIO, EACCES, ENOSPC
        // during recovery); nothing was changed by this call. Temporary from our view.
        (rocksdb::ErrorKind::IOError, _) => ErrorKind::Unavailable,
        // Options the stored volume rejects (e.g. a different comparator), or a path that
        // is not a RocksDB directory: a configuration problem of the caller.
        (rocksdb::ErrorKind::InvalidArgument, Stage::Open) => ErrorKind::ConfigInvalid,
        // A feature this RocksDB build lacks (e.g. a compression library for an SST).
        (rocksdb::ErrorKind::NotSupported, _) => ErrorKind::Unsupported,
        // RocksDB refused to start the work (write stall with no_slowdown, shutdown in
        // progress, a timeout or abort before anything was applied): nothing was written.
        (
            rocksdb::ErrorKind::Busy
            | rocksdb::ErrorKind::TryAgain
            | rocksdb::ErrorKind::TimedOut
            | rocksdb::ErrorKind::Aborted
            | rocksdb::ErrorKind::Expired
            | rocksdb::ErrorKind::Incomplete
            | rocksdb::ErrorKind::ShutdownInProgress,
            _,
        ) => ErrorKind::Unavailable,
        // Anything else (merge in progress, dropped column family, InvalidArgument outside
        // open, an unknown code) is not expected from how this crate uses RocksDB: a bug.
        _ => ErrorKind::Internal,
    };
    Error::new(kind, at).with_source(e)
}

/// Classifies a failure to create or inspect the volume directory `path`.
pub(crate) fn classify_dir(e: std::io::Error, path: &Path) -> Error {
    use std::io::ErrorKind as Io;
    let at = format!("rocksdb: cannot create volume directory {}", path.display());
    match e.kind() {
        // The path (or one of its parents) exists and is not a directory: the URL is wrong.
        Io::AlreadyExists | Io::NotADirectory => Error::new(
            ErrorKind::ConfigInvalid,
            format!("{at}: the path exists and is not a directory"),
        )
        .with_source(e),
        // Permission denied, read-only file system, disk full, I/O error: the file system
        // refused; nothing was created.
        _ => Error::new(ErrorKind::Unavailable, at).with_source(e),
    }
}
