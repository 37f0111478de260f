//! [`TikvStore`]: meta-core's [`TxnStore`] contract over TiKV optimistic transactions.
//!
//! A TiKV optimistic transaction reads at its start timestamp and, at commit, detects
//! write-write conflicts only. To make it serializable like meta-core expects, every key the
//! transaction read (point reads and the keys a scan returned) is added with `lock_keys`, so
//! the commit also fails when another transaction wrote one of them after this one started.
//! Keys *added* inside a scanned range cannot be locked; meta's ops cover that through a key
//! every such insert also writes: an entry added to a directory rewrites the directory's
//! attributes, which `rmdir`/rename-over read (and so lock); an `open` record is added by an
//! op that locks the inode's attributes, which unlink rewrites.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use meta_core::backend::BackendInfo;
use meta_core::kv::{KvRead, ReadSet, StoreTxn, TxnLimits, TxnStore, WriteSet};
use meta_core::{Error, ErrorKind, Result};
use tikv_client::{CheckLevel, Key, Transaction, TransactionClient, TransactionOptions};
use tokio::sync::Mutex;

use crate::config::{SCHEME, TikvOptions};
use crate::error::{Stage, classify, timed_out};

/// Most writes and locked keys per commit: far below TiKV's `txn-total-size-limit`
/// (100 MiB by default) for meta's small records.
pub const MAX_TXN_KEYS: usize = 8192;
/// Most bytes of keys and values per commit (TiKV's `raft-entry-max-size` is 8 MiB).
pub const MAX_TXN_BYTES: usize = 6 << 20;
/// Keys deleted per transaction by `erase`.
const ERASE_PAGE: u32 = 1024;

/// A volume on a TiKV cluster, under one key prefix.
#[derive(Clone)]
pub struct TikvStore {
    client: Arc<TransactionClient>,
    base: Arc<[u8]>,
    timeout: Duration,
    pd: Vec<String>,
}

impl std::fmt::Debug for TikvStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TikvStore")
            .field("pd", &self.pd)
            .field(
                "prefix",
                &String::from_utf8_lossy(&self.base[..self.base.len() - 1]),
            )
            .finish()
    }
}

async fn timed<T>(
    timeout: Duration,
    stage: Stage,
    what: &str,
    fut: impl std::future::Future<Output = tikv_client::Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(classify(e, stage, what)),
        Err(_) => Err(timed_out(stage, what, timeout)),
    }
}

fn options() -> TransactionOptions {
    // Every path ends in commit or rollback; a timed-out commit future is dropped mid-way, so
    // warn instead of panicking then.
    TransactionOptions::new_optimistic().drop_check(CheckLevel::Warn)
}

impl TikvStore {
    /// Connects to the cluster through its PD endpoints.
    ///
    /// Errors: `ConfigInvalid` (options), `Unavailable` (no PD answered within the timeout).
    pub async fn connect(opts: &TikvOptions) -> Result<TikvStore> {
        opts.validate()?;
        let config = tikv_client::Config::default().with_timeout(opts.timeout);
        let client = timed(
            opts.timeout,
            Stage::Read,
            &format!("connect to PD {}", opts.pd.join(",")),
            TransactionClient::new_with_config(opts.pd.clone(), config),
        )
        .await?;
        let mut base = opts.prefix.clone();
        base.push(0);
        Ok(TikvStore {
            client: Arc::new(client),
            base: base.into(),
            timeout: opts.timeout,
            pd: opts.pd.clone(),
        })
    }

    fn full(&self, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.base.len() + key.len());
        k.extend_from_slice(&self.base);
        k.extend_from_slice(key);
        k
    }

    fn strip(&self, key: Key) -> Result<Vec<u8>> {
        let k: Vec<u8> = key.into();
        match k.strip_prefix(&self.base[..]) {
            Some(rest) => Ok(rest.to_vec()),
            None => Err(Error::new(
                ErrorKind::Internal,
                "tikv returned a key outside the range asked for",
            )),
        }
    }

    async fn begin_txn(&self) -> Result<Transaction> {
        timed(
            self.timeout,
            Stage::Read,
            "begin",
            self.client.begin_with_options(options()),
        )
        .await
    }
}

#[async_trait]
impl TxnStore for TikvStore {
    fn info(&self) -> BackendInfo {
        BackendInfo::new(SCHEME, 4096, true)
    }

    fn limits(&self) -> TxnLimits {
        TxnLimits {
            max_checks: MAX_TXN_KEYS,
            max_writes: MAX_TXN_KEYS,
            max_bytes: MAX_TXN_BYTES,
        }
    }

    async fn begin(&self) -> Result<Box<dyn StoreTxn>> {
        let txn = self.begin_txn().await?;
        Ok(Box::new(TikvTxn {
            store: self.clone(),
            txn: Mutex::new(Some(txn)),
            reads: std::sync::Mutex::new(ReadSet::default()),
        }))
    }

    async fn erase(&self) -> Result<()> {
        let mut end = self.base.to_vec();
        if let Some(last) = end.last_mut() {
            *last = 1;
        }
        loop {
            let mut txn = self.begin_txn().await?;
            let keys: Vec<Key> = match timed(
                self.timeout,
                Stage::Read,
                "scan for erase",
                txn.scan_keys(self.base.to_vec()..end.clone(), ERASE_PAGE),
            )
            .await
            {
                Ok(k) => k.collect(),
                Err(e) => {
                    let _ = txn.rollback().await;
                    return Err(e);
                }
            };
            let n = keys.len();
            for k in keys {
                if let Err(e) = txn.delete(k).await {
                    let _ = txn.rollback().await;
                    return Err(classify(e, Stage::Read, "delete"));
                }
            }
            timed(self.timeout, Stage::Commit, "erase commit", txn.commit()).await?;
            if n < ERASE_PAGE as usize {
                return Ok(());
            }
        }
    }
}

/// One optimistic TiKV transaction (see the module doc). `None` once committed or rolled
/// back.
struct TikvTxn {
    store: TikvStore,
    txn: Mutex<Option<Transaction>>,
    reads: std::sync::Mutex<ReadSet>,
}

impl TikvTxn {
    fn reads(&self) -> std::sync::MutexGuard<'_, ReadSet> {
        // Nothing panics while holding the lock; a poisoned one is still consistent.
        self.reads.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn ended() -> Error {
    Error::new(ErrorKind::Internal, "tikv transaction used after it ended")
}

#[async_trait]
impl KvRead for TikvTxn {
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let mut g = self.txn.lock().await;
        let txn = g.as_mut().ok_or_else(ended)?;
        let v = timed(
            self.store.timeout,
            Stage::Read,
            "get",
            txn.get(self.store.full(key)),
        )
        .await?;
        self.reads().key(key, 0);
        Ok(v)
    }

    async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        self.scan_recorded(start, end, limit, &|_| true).await
    }

    /// Only the range and the kept keys count as reads (see `KvRead::scan_where`).
    async fn scan_where(
        &self,
        start: &[u8],
        end: &[u8],
        keep: &meta_core::kv::KeyFilter,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.scan_recorded(start, end, usize::MAX, keep).await
    }
}

impl TikvTxn {
    /// One scan of `[start, end)`, at most `limit` pairs, keeping those whose key `keep`
    /// accepts; records the range and the kept keys as reads.
    async fn scan_recorded(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
        keep: &meta_core::kv::KeyFilter,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if start >= end {
            return Ok(Vec::new());
        }
        let mut g = self.txn.lock().await;
        let txn = g.as_mut().ok_or_else(ended)?;
        let lim = u32::try_from(limit).unwrap_or(u32::MAX);
        let pairs = timed(
            self.store.timeout,
            Stage::Read,
            "scan",
            txn.scan(self.store.full(start)..self.store.full(end), lim),
        )
        .await?;
        let mut out = Vec::new();
        for p in pairs {
            let (k, v) = (p.key().clone(), p.into_value());
            let k = self.store.strip(k)?;
            if keep(&k) {
                out.push((k, v));
            }
        }
        let mut r = self.reads();
        r.range(start, end);
        for (k, _) in &out {
            r.key(k, 0);
        }
        Ok(out)
    }
}

#[async_trait]
impl StoreTxn for TikvTxn {
    fn read_cost(&self) -> (usize, usize) {
        let r = self.reads();
        (r.checks(), r.bytes())
    }

    fn mark(&self) -> usize {
        self.reads().mark()
    }

    fn rewind(&self, mark: usize) {
        self.reads().rewind(mark);
    }

    /// One `batch_get` of `keys`: tikv-client keeps what it read in the transaction's buffer,
    /// so the ops' reads of them cost no round trip.
    async fn prefetch(&self, keys: &[Vec<u8>]) -> Result<()> {
        let mut g = self.txn.lock().await;
        let txn = g.as_mut().ok_or_else(ended)?;
        let full: Vec<Vec<u8>> = keys.iter().map(|k| self.store.full(k)).collect();
        timed(
            self.store.timeout,
            Stage::Read,
            "batch_get",
            txn.batch_get(full),
        )
        .await?
        .for_each(drop);
        Ok(())
    }

    async fn commit(self: Box<Self>, writes: WriteSet) -> Result<()> {
        let reads = std::mem::take(&mut *self.reads());
        let Some(mut txn) = self.txn.lock().await.take() else {
            return Err(ended());
        };
        let s = &self.store;
        let staged: tikv_client::Result<()> = async {
            let locks: Vec<Vec<u8>> = reads
                .keys()
                .iter()
                .filter(|(k, _)| !writes.contains_key(k))
                .map(|(k, _)| s.full(k))
                .collect();
            for (k, v) in writes {
                match v {
                    Some(v) => txn.put(s.full(&k), v).await?,
                    None => txn.delete(s.full(&k)).await?,
                }
            }
            txn.lock_keys(locks).await
        }
        .await;
        if let Err(e) = staged {
            let _ = txn.rollback().await;
            return Err(classify(e, Stage::Read, "buffering the writes"));
        }
        match timed(s.timeout, Stage::Commit, "commit", txn.commit()).await {
            Ok(_) => Ok(()),
            Err(e) => {
                if e.kind() == ErrorKind::Conflict {
                    // Prewrite failed: release whatever it locked.
                    let _ = txn.rollback().await;
                }
                Err(e)
            }
        }
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        if let Some(mut txn) = self.txn.lock().await.take() {
            timed(self.store.timeout, Stage::Read, "rollback", txn.rollback()).await?;
        }
        Ok(())
    }
}
