#![doc = include_str!("../README.md")]

mod error;

use std::fmt;
use std::path::{Path, PathBuf};

use meta_core::backend::BackendInfo;
use meta_core::kv::{KvBackend, KvSnapshot, KvStore, WriteSet};
use meta_core::options::parse_bool;
use meta_core::{Error, ErrorKind, Result, VolumeUrl};
use rocksdb::{
    BlockBasedIndexType, BlockBasedOptions, Cache, DB, Direction, IteratorMode, Options,
    ReadOptions, SliceTransform, WriteBatch, WriteOptions,
    statistics::{StatsLevel, Ticker},
};

use crate::error::{Stage, classify, classify_dir};

/// The URL scheme of this backend: `rocksdb://`.
pub const SCHEME: &str = "rocksdb";

/// Most ops one `apply` call accepts (the batcher never sends more).
pub const MAX_BATCH_OPS: usize = 4096;

/// Length in bytes of the key prefix the bloom filters index: `A` + the 8-byte inode, so a
/// scan of one inode's entries, chunks or xattrs skips SST files without that inode.
const PREFIX_LEN: usize = 9;

/// Options of a RocksDB volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RocksOptions {
    /// Fsync the WAL after every batch (URL `sync`, default `true`): an acknowledged op
    /// survives a crash of the machine. With `false` it survives a crash of the process only.
    pub sync: bool,
}

impl RocksOptions {
    /// The defaults with `sync` set.
    pub const fn with_sync(sync: bool) -> Self {
        RocksOptions { sync }
    }
}

impl Default for RocksOptions {
    fn default() -> Self {
        RocksOptions { sync: true }
    }
}

/// The RocksDB backend: meta-core's generic KV backend over a [`RocksStore`].
pub type RocksBackend = KvBackend<RocksStore>;

/// Opens (creating it if missing) the volume a `rocksdb://` URL names: `rocksdb:///abs/path` or
/// `rocksdb://./relative/path`, with the backend option `sync=true|false` (default `true`).
///
/// Errors: `ConfigInvalid` for another scheme, a URL without a path, a malformed `sync` value
/// or an unknown parameter (the message names it; nothing is created on disk), or a path that
/// exists and is not a directory; `Unavailable` when the volume is in use by another process
/// (or already open in this one) or the directory cannot be created; `Corrupted` when its
/// files are damaged.
pub fn open(mut url: VolumeUrl) -> Result<RocksBackend> {
    if url.scheme() != SCHEME {
        return Err(Error::new(
            ErrorKind::ConfigInvalid,
            format!("meta-rocks opens {SCHEME}:// URLs, not {}://", url.scheme()),
        ));
    }
    let path = url.file_path();
    if path.is_empty() {
        return Err(Error::new(
            ErrorKind::ConfigInvalid,
            format!("URL {url} names no directory; use {SCHEME}:///abs/path or {SCHEME}://./rel"),
        ));
    }
    let mut opts = RocksOptions::default();
    if let Some(v) = url.take_param("sync") {
        opts.sync = parse_bool("sync", &v)?;
    }
    url.finish()?;
    open_path(Path::new(&path), opts)
}

/// This backend for a [`meta_core::registry::BackendRegistry`]: scheme `rocksdb`, opened with
/// [`open`]; the URL names a local directory.
pub fn factory() -> meta_core::registry::BackendFactory {
    meta_core::registry::BackendFactory::new(vec![SCHEME], |url| {
        Box::pin(async move {
            Ok(std::sync::Arc::new(open(url)?) as std::sync::Arc<dyn meta_core::Backend>)
        })
    })
    .with_local_path(|url| Some(url.file_path()))
}

/// Opens (creating it and its parents if missing) the volume in directory `path`.
///
/// Errors: as [`open`], minus the URL errors.
pub fn open_path(path: &Path, opts: RocksOptions) -> Result<RocksBackend> {
    Ok(KvBackend::new(RocksStore::open(path, opts)?))
}

/// A RocksDB database as an ordered key-value store ([`KvStore`]): the storage half of
/// [`RocksBackend`]. Reach it with `backend.store()`.
pub struct RocksStore {
    db: DB,
    /// The options the database was opened with; they own its statistics.
    db_opts: Options,
    path: PathBuf,
    write_opts: WriteOptions,
    sync: bool,
}

impl fmt::Debug for RocksStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RocksStore")
            .field("path", &self.path)
            .field("sync", &self.sync)
            .finish()
    }
}

fn db_options() -> Options {
    let mut table = BlockBasedOptions::default();
    // Full bloom filter, ~1% false positives, over whole keys (point lookups: "does this name
    // exist?" on create is the hot path) and over the prefix extractor's prefixes (scans).
    table.set_bloom_filter(10.0, false);
    table.set_whole_key_filtering(true);
    table.set_block_cache(&Cache::new_lru_cache(64 << 20));
    table.set_cache_index_and_filter_blocks(true);
    table.set_pin_l0_filter_and_index_blocks_in_cache(true);
    // Partitioned filters and a two-level index. Whole, the filter and index of one SST file
    // grow with it (a 1,000,000-file volume compacts into one 29 MB file with a filter of
    // ≈ 5 MB), beyond one block-cache shard (64 MB in 64 shards: 1 MB), so they were never
    // kept and every read loaded and checksummed them again: a dump read ~700 inodes/s.
    // Partitions of `metadata_block_size` are cached like data blocks; the top level stays
    // pinned. Files written before keep their whole filter until compacted.
    table.set_index_type(BlockBasedIndexType::TwoLevelIndexSearch);
    table.set_partition_filters(true);
    table.set_metadata_block_size(4096);
    table.set_pin_top_level_index_and_filter(true);

    let mut o = Options::default();
    o.create_if_missing(true);
    o.set_block_based_table_factory(&table);
    o.set_prefix_extractor(SliceTransform::create_fixed_prefix(PREFIX_LEN));
    o.set_write_buffer_size(32 << 20);
    o.set_max_total_wal_size(256 << 20);
    o.set_max_background_jobs(2);
    o.set_keep_log_file_num(4);
    // Tickers only (no histograms or timers): per-core counters, negligible cost.
    o.enable_statistics();
    o.set_statistics_level(StatsLevel::ExceptHistogramOrTimers);
    o
}

/// Write-path counters of an open volume since it was opened (RocksDB statistics tickers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteStats {
    /// `WriteBatch`es written: one per commit that had writes (`apply`, `reserve_ids`,
    /// `format`), however many ops it carried.
    pub batches: u64,
    /// WAL fsyncs: one per batch with `sync=true`; none with `sync=false` (besides a clean
    /// close).
    pub wal_syncs: u64,
    /// Bytes appended to the WAL.
    pub wal_bytes: u64,
}

impl RocksStore {
    fn open(path: &Path, opts: RocksOptions) -> Result<RocksStore> {
        std::fs::create_dir_all(path).map_err(|e| classify_dir(e, path))?;
        let db_opts = db_options();
        let db = DB::open(&db_opts, path).map_err(|e| classify(e, Stage::Open, path))?;
        let mut write_opts = WriteOptions::default();
        write_opts.set_sync(opts.sync);
        Ok(RocksStore {
            db,
            db_opts,
            path: path.to_path_buf(),
            write_opts,
            sync: opts.sync,
        })
    }

    /// The volume directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True when every commit fsyncs the WAL (`sync=true`).
    pub fn sync(&self) -> bool {
        self.sync
    }

    /// Counters of the write path since the volume was opened: batches written, WAL fsyncs,
    /// WAL bytes. Cheap (reads per-core counters); does not block on I/O.
    pub fn write_stats(&self) -> WriteStats {
        WriteStats {
            batches: self.db_opts.get_ticker_count(Ticker::WriteWithWal),
            wal_syncs: self.db_opts.get_ticker_count(Ticker::WalFileSynced),
            wal_bytes: self.db_opts.get_ticker_count(Ticker::WalFileBytes),
        }
    }

    /// Writes the memtables to SST files and waits (before a file-level backup, and for tests
    /// that must read from SST files). Blocks; call it from a blocking context.
    /// Errors: `Unavailable` on an I/O error, `Corrupted` on damaged files.
    pub fn flush(&self) -> Result<()> {
        self.db
            .flush()
            .map_err(|e| classify(e, Stage::Flush, &self.path))
    }
}

impl Drop for RocksStore {
    fn drop(&mut self) {
        // With sync=false the WAL tail is only in the page cache: a clean close makes it
        // durable. Nothing to report to on failure; the data is still in the page cache.
        if !self.sync {
            let _ = self.db.flush_wal(true);
        }
    }
}

/// True when every key in `[start, end)` has the same `PREFIX_LEN`-byte prefix as `start`.
fn one_prefix(start: &[u8], end: &[u8]) -> bool {
    start.len() >= PREFIX_LEN && end.len() >= PREFIX_LEN && start[..PREFIX_LEN] == end[..PREFIX_LEN]
}

impl KvStore for RocksStore {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.db
            .get_pinned(key)
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(|e| classify(e, Stage::Read, &self.path))
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        scan_with(start, end, limit, &self.path, |mode, ro| {
            self.db.iterator_opt(mode, ro)
        })
    }

    fn snapshot(&self) -> Result<Box<dyn KvSnapshot + '_>> {
        Ok(Box::new(RocksSnapshot {
            snap: self.db.snapshot(),
            path: &self.path,
        }))
    }

    /// A RocksDB snapshot: what a dump reads the whole volume through.
    fn point_in_time(&self) -> Result<Option<Box<dyn KvSnapshot + '_>>> {
        self.snapshot().map(Some)
    }

    fn commit(&self, writes: WriteSet) -> Result<()> {
        let mut batch = WriteBatch::default();
        for (k, v) in writes {
            match v {
                Some(v) => batch.put(k, v),
                None => batch.delete(k),
            }
        }
        self.db
            .write_opt(batch, &self.write_opts)
            .map_err(|e| classify(e, Stage::Commit, &self.path))
    }

    fn is_blocking(&self) -> bool {
        true
    }

    fn info(&self) -> BackendInfo {
        BackendInfo::new(SCHEME, MAX_BATCH_OPS, true)
    }
}

/// Reads options for a scan of `[start, end)`: an upper bound, and prefix mode when the range
/// stays within one inode's records.
fn scan_options(start: &[u8], end: &[u8]) -> ReadOptions {
    let mut ro = ReadOptions::default();
    ro.set_iterate_upper_bound(end.to_vec());
    if one_prefix(start, end) {
        // Stays within one inode's records: the prefix bloom filters may skip SST files.
        ro.set_prefix_same_as_start(true);
    } else {
        // Crosses prefixes (inode scans, format's erase): with a prefix extractor set, only
        // a total-order seek is guaranteed to see every key.
        ro.set_total_order_seek(true);
    }
    ro
}

/// Collects at most `limit` pairs of `[start, end)` from the iterator `open` returns.
fn scan_with<'a, I>(
    start: &'a [u8],
    end: &[u8],
    limit: usize,
    path: &Path,
    open: impl FnOnce(IteratorMode<'a>, ReadOptions) -> I,
) -> Result<Vec<(Vec<u8>, Vec<u8>)>>
where
    I: Iterator<Item = std::result::Result<(Box<[u8]>, Box<[u8]>), rocksdb::Error>>,
{
    if limit == 0 || start >= end {
        return Ok(Vec::new());
    }
    let mut out = Vec::with_capacity(limit.min(1024));
    for item in open(
        IteratorMode::From(start, Direction::Forward),
        scan_options(start, end),
    ) {
        let (k, v) = item.map_err(|e| classify(e, Stage::Read, path))?;
        out.push((k.into_vec(), v.into_vec()));
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// A RocksDB snapshot: the consistent view [`KvBackend`] reads through, so a readdir with
/// attributes never sees an entry whose inode a concurrent unlink already removed.
struct RocksSnapshot<'a> {
    snap: rocksdb::Snapshot<'a>,
    path: &'a Path,
}

impl KvSnapshot for RocksSnapshot<'_> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.snap
            .get(key)
            .map_err(|e| classify(e, Stage::Read, self.path))
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        scan_with(start, end, limit, self.path, |mode, ro| {
            self.snap.iterator_opt(mode, ro)
        })
    }
}
