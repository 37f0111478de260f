//! The contract of a distributed transactional KV store (etcd, TiKV, FoundationDB…): what
//! [`super::TxnKvBackend`] needs to run the shared op logic with the same per-op atomicity as
//! the embedded backends, when many clients write one volume at once.
//!
//! A store transaction reads one consistent snapshot and records what it read (a
//! [`ReadSet`]); the backend buffers the writes itself (in a [`super::KvTxn`] overlay) and
//! hands them to [`StoreTxn::commit`], which applies them only if nothing the transaction read
//! has changed since (optimistic concurrency control, serializable): otherwise it fails with
//! `Conflict` and writes nothing, and the backend runs the batch again.

use std::collections::HashMap;
use std::fmt::Debug;

use async_trait::async_trait;

use crate::backend::BackendInfo;
use crate::error::Result;
use crate::kv::store::{KvRead, WriteSet};

/// What one commit may carry, from the store's documented (or probed) request limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnLimits {
    /// Most conflict checks (keys and ranges read) one commit may carry; for etcd, its
    /// `--max-txn-ops` (default 128), which bounds the compares of a `Txn`.
    pub max_checks: usize,
    /// Most writes (puts and deletes) one commit may carry; for etcd also `--max-txn-ops`.
    pub max_writes: usize,
    /// Most bytes of keys and values one commit may carry; for etcd below its
    /// `--max-request-bytes` (default 1.5 MiB).
    pub max_bytes: usize,
}

impl TxnLimits {
    /// True when a commit of `writes` writes of `write_bytes` bytes with the checks of a
    /// transaction whose [`StoreTxn::read_cost`] is `reads` fits.
    pub fn fits(&self, reads: (usize, usize), writes: usize, write_bytes: usize) -> bool {
        reads.0 <= self.max_checks
            && writes <= self.max_writes
            && reads.1.saturating_add(write_bytes) <= self.max_bytes
    }
}

/// One transaction of a [`TxnStore`]: reads at one snapshot (through [`KvRead`]), recording
/// them; then exactly one of `commit` or `rollback`.
#[async_trait]
pub trait StoreTxn: KvRead {
    /// The checks its commit would carry so far, and their bytes ([`ReadSet::checks`],
    /// [`ReadSet::bytes`]).
    fn read_cost(&self) -> (usize, usize);
    /// A mark of the read set, to [`StoreTxn::rewind`] to.
    fn mark(&self) -> usize;
    /// Forgets the reads recorded after `mark` (those of an op taken out of this transaction
    /// because the commit would have been too large).
    fn rewind(&self, mark: usize);
    /// Applies `writes` atomically if nothing this transaction read has changed since it was
    /// read. Errors: `Conflict` (something changed; nothing written), `Unavailable` (nothing
    /// written: the store could not be reached), `Indeterminate` (sent; the outcome is
    /// unknown, e.g. a timeout or a lost connection after the request left).
    async fn commit(self: Box<Self>, writes: WriteSet) -> Result<()>;
    /// Reads `keys` ahead, in as few requests as the store allows, so that the ops' reads of
    /// them cost no round trip ([`crate::kv::shared::batch_keys`] names them). It must not
    /// add them to the read set: only keys an op actually reads are checked at commit.
    /// Default: nothing (every read goes to the store).
    async fn prefetch(&self, keys: &[Vec<u8>]) -> Result<()> {
        let _ = keys;
        Ok(())
    }
    /// Ends the transaction without writing. Errors: `Unavailable` (best effort; a store that
    /// holds nothing for an open transaction, like etcd, never fails).
    async fn rollback(self: Box<Self>) -> Result<()>;
}

/// A distributed store that holds one volume under a key prefix.
#[async_trait]
pub trait TxnStore: Send + Sync + Debug + 'static {
    /// Static facts: scheme, batch limit, durability.
    fn info(&self) -> BackendInfo;
    /// What one commit may carry.
    fn limits(&self) -> TxnLimits;
    /// Starts a transaction. Errors: `Unavailable`.
    async fn begin(&self) -> Result<Box<dyn StoreTxn>>;
    /// Deletes every key of the volume (for `format --force`), in as many requests as the
    /// store needs: not atomic, which is why it is only used when erasing.
    async fn erase(&self) -> Result<()>;
    /// A read-only transaction that sees the volume as it was when this returned, however
    /// long it is held and whatever is committed meanwhile, for a walk of the whole volume
    /// (a dump through [`crate::Backend::snapshot`]): it records no read set and keeps
    /// nothing it read, only what [`StoreTxn::prefetch`] fetched until it is read once, so
    /// it stays small over any number of reads. Never committed: rolled back (or dropped)
    /// when done. `None` when the store cannot give one (the default). Errors:
    /// `Unavailable`, and those of its reads later (etcd: its revision compacted away).
    async fn point_in_time(&self) -> Result<Option<Box<dyn StoreTxn>>> {
        Ok(None)
    }
}

/// The keys and ranges a transaction read, each with the version it saw (for etcd, the key's
/// `mod_revision`; 0 for a key that was absent), in the order first read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadSet {
    keys: Vec<(Vec<u8>, i64)>,
    index: HashMap<Vec<u8>, usize>,
    ranges: Vec<(Vec<u8>, Vec<u8>)>,
    /// How many entries (keys, then ranges interleaved) were recorded, in order, for rewind.
    log: Vec<Recorded>,
    bytes: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Recorded {
    Key,
    Range,
}

impl ReadSet {
    /// Records that `key` was read at `version` (0: absent). A key already recorded keeps its
    /// first version: the commit checks against what the transaction first saw.
    pub fn key(&mut self, key: &[u8], version: i64) {
        if self.index.contains_key(key) {
            return;
        }
        self.index.insert(key.to_vec(), self.keys.len());
        self.keys.push((key.to_vec(), version));
        self.bytes += key.len();
        self.log.push(Recorded::Key);
    }

    /// Records that the range `[start, end)` was scanned: the commit checks that no key in it
    /// was created or changed since (each key the scan returned is recorded with [`Self::key`]
    /// too, which catches deletions).
    pub fn range(&mut self, start: &[u8], end: &[u8]) {
        self.bytes += start.len() + end.len();
        self.ranges.push((start.to_vec(), end.to_vec()));
        self.log.push(Recorded::Range);
    }

    /// Keys read, with the version seen, in the order first read.
    pub fn keys(&self) -> &[(Vec<u8>, i64)] {
        &self.keys
    }

    /// Ranges scanned, as `[start, end)`.
    pub fn ranges(&self) -> &[(Vec<u8>, Vec<u8>)] {
        &self.ranges
    }

    /// How many checks a commit carries: one per key and one per range.
    pub fn checks(&self) -> usize {
        self.log.len()
    }

    /// Bytes of the keys and range bounds.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The position to [`Self::rewind`] to.
    pub fn mark(&self) -> usize {
        self.log.len()
    }

    /// Forgets what was recorded after `mark`.
    pub fn rewind(&mut self, mark: usize) {
        while self.log.len() > mark {
            match self.log.pop() {
                Some(Recorded::Key) => {
                    if let Some((k, _)) = self.keys.pop() {
                        self.bytes -= k.len();
                        self.index.remove(&k);
                    }
                }
                Some(Recorded::Range) => {
                    if let Some((s, e)) = self.ranges.pop() {
                        self.bytes -= s.len() + e.len();
                    }
                }
                None => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewind_forgets_only_later_reads() {
        let mut r = ReadSet::default();
        r.key(b"a", 3);
        r.range(b"b", b"c");
        let m = r.mark();
        r.key(b"a", 9); // already recorded: keeps version 3, adds no check
        r.key(b"d", 0);
        r.range(b"e", b"f");
        assert_eq!(r.checks(), 4);
        assert_eq!(r.bytes(), 1 + 2 + 1 + 2);
        r.rewind(m);
        assert_eq!(r.checks(), 2);
        assert_eq!(r.keys(), &[(b"a".to_vec(), 3)]);
        assert_eq!(r.ranges(), &[(b"b".to_vec(), b"c".to_vec())]);
        assert_eq!(r.bytes(), 3);
        r.key(b"d", 5);
        assert_eq!(r.keys()[1], (b"d".to_vec(), 5));
    }

    #[test]
    fn limits_count_checks_writes_and_bytes() {
        let l = TxnLimits {
            max_checks: 2,
            max_writes: 3,
            max_bytes: 10,
        };
        let mut r = ReadSet::default();
        r.key(b"abc", 1);
        let cost = |r: &ReadSet| (r.checks(), r.bytes());
        assert!(l.fits(cost(&r), 3, 7));
        assert!(!l.fits(cost(&r), 4, 0));
        assert!(!l.fits(cost(&r), 1, 8));
        r.key(b"x", 1);
        r.key(b"y", 1);
        assert!(!l.fits(cost(&r), 0, 0));
    }
}
