//! [`EtcdStore`]: meta-core's [`TxnStore`] contract over etcd's v3 API.
//!
//! A transaction reads at one revision (fixed by its first read), records the `mod_revision`
//! of every key it read (0 for a key that was absent) and every range it scanned, and commits
//! with one `Txn` whose compares are, per key, `mod_revision == seen` (which catches a change,
//! a deletion and a creation) and, per scanned range, `mod_revision < read revision + 1` over
//! the range (which catches a key created in it: rmdir and rename-over see every entry added
//! to the directory they checked was empty). The puts and deletes run only when every compare
//! holds; otherwise the commit is a `Conflict` and nothing is written.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use etcd_client::{
    Client, Compare, CompareOp, DeleteOptions, GetOptions, KvClient, Txn, TxnOp, TxnOpResponse,
};
use meta_core::backend::BackendInfo;
use meta_core::kv::{KvRead, ReadSet, StoreTxn, TxnLimits, TxnStore, WriteSet};
use meta_core::{Error, ErrorKind, Result};

use crate::config::{EtcdOptions, PROBE_TXN_OPS, SCHEME};
use crate::error::{Stage, classify, timed_out};

/// A volume on an etcd cluster, under one key prefix.
#[derive(Clone)]
pub struct EtcdStore {
    kv: KvClient,
    /// `prefix` + NUL: every key of the volume starts with it.
    base: Arc<[u8]>,
    timeout: Duration,
    limits: TxnLimits,
    endpoints: Vec<String>,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("endpoints", &self.endpoints)
            .field(
                "prefix",
                &String::from_utf8_lossy(&self.base[..self.base.len() - 1]),
            )
            .field("limits", &self.limits)
            .finish()
    }
}

/// Runs one request under the timeout, classifying its failure.
async fn timed<T>(
    timeout: Duration,
    stage: Stage,
    what: &str,
    fut: impl std::future::Future<Output = std::result::Result<T, etcd_client::Error>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(classify(e, stage, what)),
        Err(_) => Err(timed_out(stage, what, timeout)),
    }
}

impl EtcdStore {
    /// Connects to the cluster and finds its `--max-txn-ops` (unless the options give it).
    ///
    /// Errors: `ConfigInvalid` (options, authentication refused), `Unavailable` (no member
    /// answered within the timeout).
    pub async fn connect(opts: &EtcdOptions) -> Result<EtcdStore> {
        opts.validate()?;
        let mut copts = etcd_client::ConnectOptions::new()
            .with_connect_timeout(opts.timeout)
            .with_timeout(opts.timeout)
            .with_keep_alive(Duration::from_secs(10), opts.timeout);
        if let Some((u, p)) = &opts.user {
            copts = copts.with_user(u.clone(), p.clone());
        }
        let client = timed(
            opts.timeout,
            Stage::Read,
            &format!("connect to {}", opts.endpoints.join(",")),
            Client::connect(opts.endpoints.clone(), Some(copts)),
        )
        .await?;
        let mut base = opts.prefix.clone();
        base.push(0);
        let mut store = EtcdStore {
            kv: client.kv_client(),
            base: base.into(),
            timeout: opts.timeout,
            limits: TxnLimits {
                max_checks: 0,
                max_writes: 0,
                max_bytes: opts.max_request_bytes / 4 * 3,
            },
            endpoints: opts.endpoints.clone(),
        };
        let ops = match opts.max_txn_ops {
            Some(n) => n,
            None => store.probe_txn_ops().await?,
        };
        store.limits.max_checks = ops;
        store.limits.max_writes = ops;
        Ok(store)
    }

    /// The server's `--max-txn-ops`: the largest of [`PROBE_TXN_OPS`] that a `Txn` of that
    /// many compares (on a key of the volume that is never written) passes.
    async fn probe_txn_ops(&self) -> Result<usize> {
        let probe = self.full(b"probe-max-txn-ops");
        for n in PROBE_TXN_OPS {
            let cmps: Vec<Compare> = (0..n)
                .map(|_| Compare::mod_revision(probe.clone(), CompareOp::Equal, 0))
                .collect();
            let mut kv = self.kv.clone();
            match timed(
                self.timeout,
                Stage::Read,
                "probe of --max-txn-ops",
                kv.txn(Txn::new().when(cmps)),
            )
            .await
            {
                Ok(_) => return Ok(n),
                Err(e) if e.kind() == ErrorKind::Unsupported => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::new(
            ErrorKind::ConfigInvalid,
            format!(
                "the etcd server refuses transactions of {} operations; meta needs at least \
                 that (start etcd with a larger --max-txn-ops)",
                PROBE_TXN_OPS[PROBE_TXN_OPS.len() - 1]
            ),
        ))
    }

    fn full(&self, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.base.len() + key.len());
        k.extend_from_slice(&self.base);
        k.extend_from_slice(key);
        k
    }

    /// The end of the volume's key space (`prefix` + 0x01).
    fn end(&self) -> Vec<u8> {
        let mut e = self.base.to_vec();
        if let Some(last) = e.last_mut() {
            *last = 1;
        }
        e
    }

    /// The per-commit limits in use.
    pub fn txn_limits(&self) -> TxnLimits {
        self.limits
    }
}

#[async_trait]
impl TxnStore for EtcdStore {
    fn info(&self) -> BackendInfo {
        BackendInfo::new(SCHEME, self.limits.max_writes.max(1), true)
    }

    fn limits(&self) -> TxnLimits {
        self.limits
    }

    async fn begin(&self) -> Result<Box<dyn StoreTxn>> {
        Ok(Box::new(EtcdTxn {
            store: self.clone(),
            state: Mutex::new(TxnState::default()),
            record: true,
        }))
    }

    /// A read-only transaction at the store's current revision (fixed now, by one point
    /// read at the volume's base key), recording nothing. Its reads fail once etcd has
    /// compacted that revision away (`--auto-compaction-*`, or an explicit compaction).
    async fn point_in_time(&self) -> Result<Option<Box<dyn StoreTxn>>> {
        let txn = EtcdTxn {
            store: self.clone(),
            state: Mutex::new(TxnState::default()),
            record: false,
        };
        txn.range(&[], None, 1).await?;
        Ok(Some(Box::new(txn)))
    }

    async fn erase(&self) -> Result<()> {
        let mut kv = self.kv.clone();
        timed(
            self.timeout,
            Stage::Write,
            "delete of the volume's keys",
            kv.delete(
                self.base.to_vec(),
                Some(DeleteOptions::new().with_range(self.end())),
            ),
        )
        .await?;
        Ok(())
    }
}

#[derive(Default)]
struct TxnState {
    /// The revision every read is made at (that of the first read).
    rev: Option<i64>,
    reads: ReadSet,
    /// Values already read or prefetched, by key, with their `mod_revision` (`None`, 0:
    /// absent): at a fixed revision a second read of a key returns the same, so it costs no
    /// round trip.
    cache: std::collections::HashMap<Vec<u8>, (Option<Vec<u8>>, i64)>,
}

/// One optimistic transaction on etcd (see the module doc).
struct EtcdTxn {
    store: EtcdStore,
    state: Mutex<TxnState>,
    /// Whether reads are recorded (read set, cache): false for a point-in-time reader
    /// ([`TxnStore::point_in_time`]), which is never committed and may read the whole
    /// volume, and keeps only prefetched values until their one read.
    record: bool,
}

impl EtcdTxn {
    fn state(&self) -> std::sync::MutexGuard<'_, TxnState> {
        // Nothing panics while holding the lock; a poisoned one is still consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reads `[key, end)` (a point read when `end` is `None`) at the transaction's revision.
    async fn range(
        &self,
        key: &[u8],
        end: Option<&[u8]>,
        limit: usize,
    ) -> Result<(Vec<(Vec<u8>, Vec<u8>, i64)>, bool)> {
        let rev = self.state().rev;
        let mut opts = GetOptions::new();
        if let Some(e) = end {
            opts = opts.with_range(self.store.full(e));
            if limit != usize::MAX {
                opts = opts.with_limit(i64::try_from(limit).unwrap_or(i64::MAX));
            }
        }
        if let Some(r) = rev {
            opts = opts.with_revision(r);
        }
        let mut kv = self.store.kv.clone();
        let mut resp = timed(
            self.store.timeout,
            Stage::Read,
            "range read",
            kv.get(self.store.full(key), Some(opts)),
        )
        .await?;
        if rev.is_none() {
            let at = resp.header().map(|h| h.revision()).ok_or_else(|| {
                Error::new(ErrorKind::Internal, "etcd range reply without a header")
            })?;
            self.state().rev.get_or_insert(at);
        }
        let more = resp.more();
        let base = self.store.base.len();
        let mut out = Vec::new();
        for kv in resp.take_kvs() {
            let m = kv.mod_revision();
            let (k, v) = kv.into_key_value();
            if k.len() < base || k[..base] != self.store.base[..] {
                return Err(Error::new(
                    ErrorKind::Internal,
                    "etcd returned a key outside the range asked for",
                ));
            }
            out.push((k[base..].to_vec(), v, m));
        }
        Ok((out, more))
    }
}

#[async_trait]
impl KvRead for EtcdTxn {
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        {
            let mut st = self.state();
            if !self.record {
                if let Some((v, _)) = st.cache.remove(key) {
                    return Ok(v);
                }
            } else if let Some((v, m)) = st.cache.get(key).cloned() {
                st.reads.key(key, m);
                return Ok(v);
            }
        }
        let (mut kvs, _) = self.range(key, None, 1).await?;
        let found = kvs.pop();
        let m = found.as_ref().map_or(0, |(_, _, m)| *m);
        let v = found.map(|(_, v, _)| v);
        if !self.record {
            return Ok(v);
        }
        let mut st = self.state();
        st.reads.key(key, m);
        st.cache.insert(key.to_vec(), (v.clone(), m));
        Ok(v)
    }

    async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if limit == 0 || start >= end {
            return Ok(Vec::new());
        }
        let (kvs, more) = self.range(start, Some(end), limit).await?;
        if !self.record {
            return Ok(kvs.into_iter().map(|(k, v, _)| (k, v)).collect());
        }
        let mut st = self.state();
        // The part of the range the scan covered: all of it, or up to its last key.
        let covered_end = match kvs.last() {
            Some((k, _, _)) if more || kvs.len() >= limit => {
                let mut e = k.clone();
                e.push(0);
                e
            }
            _ => end.to_vec(),
        };
        st.reads.range(start, &covered_end);
        for (k, v, m) in &kvs {
            st.reads.key(k, *m);
            st.cache.insert(k.clone(), (Some(v.clone()), *m));
        }
        Ok(kvs.into_iter().map(|(k, v, _)| (k, v)).collect())
    }

    /// One range read; the commit checks the range (one compare over it) and the kept keys
    /// (one compare each), so the range may hold more keys than a transaction's compares.
    async fn scan_where(
        &self,
        start: &[u8],
        end: &[u8],
        keep: &meta_core::kv::KeyFilter,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.scan_where_at_most(start, end, keep, usize::MAX).await
    }

    /// As `scan_where`, keeping the first `limit` kept keys: when more follow, the range
    /// recorded (one check) ends just after the last key returned, so the commit checks
    /// nothing about the keys past it, which the caller did not see.
    async fn scan_where_at_most(
        &self,
        start: &[u8],
        end: &[u8],
        keep: &meta_core::kv::KeyFilter,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if start >= end || limit == 0 {
            return Ok(Vec::new());
        }
        let (mut kvs, _) = self.range(start, Some(end), usize::MAX).await?;
        kvs.retain(|(k, _, _)| keep(k));
        let mut seen_end = end.to_vec();
        if kvs.len() > limit {
            kvs.truncate(limit);
            if let Some((last, _, _)) = kvs.last() {
                // The smallest key above `last`.
                seen_end = last.clone();
                seen_end.push(0);
            }
        }
        if self.record {
            let mut st = self.state();
            st.reads.range(start, &seen_end);
            for (k, v, m) in &kvs {
                st.reads.key(k, *m);
                st.cache.insert(k.clone(), (Some(v.clone()), *m));
            }
        }
        Ok(kvs.into_iter().map(|(k, v, _)| (k, v)).collect())
    }
}

#[async_trait]
impl StoreTxn for EtcdTxn {
    fn read_cost(&self) -> (usize, usize) {
        let st = self.state();
        (st.reads.checks(), st.reads.bytes())
    }

    fn mark(&self) -> usize {
        self.state().reads.mark()
    }

    fn rewind(&self, mark: usize) {
        self.state().reads.rewind(mark);
    }

    /// Fetches `keys` with `Txn`s of range requests (at most `--max-txn-ops` each), the first
    /// fixing the transaction's revision when no read did yet, into the cache only.
    async fn prefetch(&self, keys: &[Vec<u8>]) -> Result<()> {
        if !self.record {
            // (What an earlier prefetch fetched and nobody read goes.)
            self.state().cache.clear();
        }
        let per = self.store.limits.max_checks.max(1);
        for group in keys.chunks(per) {
            let rev = self.state().rev;
            let ops: Vec<TxnOp> = group
                .iter()
                .map(|k| {
                    let mut o = GetOptions::new();
                    if let Some(r) = rev {
                        o = o.with_revision(r);
                    }
                    TxnOp::get(self.store.full(k), Some(o))
                })
                .collect();
            let mut kv = self.store.kv.clone();
            let resp = timed(
                self.store.timeout,
                Stage::Read,
                "prefetch",
                kv.txn(Txn::new().and_then(ops)),
            )
            .await?;
            let at = resp.header().map(|h| h.revision());
            let mut st = self.state();
            if st.rev.is_none() {
                st.rev = Some(at.ok_or_else(|| {
                    Error::new(ErrorKind::Internal, "etcd txn reply without a header")
                })?);
            }
            let base = self.store.base.len();
            for (k, r) in group.iter().zip(resp.op_responses()) {
                let TxnOpResponse::Get(g) = r else {
                    return Err(Error::new(
                        ErrorKind::Internal,
                        "etcd answered a range request of a txn with another kind",
                    ));
                };
                let found = g
                    .kvs()
                    .iter()
                    .find(|kv| kv.key().len() > base && &kv.key()[base..] == k.as_slice());
                let entry = match found {
                    Some(kv) => (Some(kv.value().to_vec()), kv.mod_revision()),
                    None => (None, 0),
                };
                st.cache.entry(k.clone()).or_insert(entry);
            }
        }
        Ok(())
    }

    async fn commit(self: Box<Self>, writes: WriteSet) -> Result<()> {
        if !self.record {
            return Err(Error::new(
                ErrorKind::Internal,
                "a point-in-time reader of etcd was asked to commit",
            ));
        }
        let (rev, reads) = {
            let mut st = self.state();
            (st.rev, std::mem::take(&mut st.reads))
        };
        let s = &self.store;
        let mut cmps: Vec<Compare> = reads
            .keys()
            .iter()
            .map(|(k, m)| Compare::mod_revision(s.full(k), CompareOp::Equal, *m))
            .collect();
        if let Some(rev) = rev {
            for (a, b) in reads.ranges() {
                cmps.push(
                    Compare::mod_revision(s.full(a), CompareOp::Less, rev + 1)
                        .with_range(s.full(b)),
                );
            }
        }
        let ops: Vec<TxnOp> = writes
            .into_iter()
            .map(|(k, v)| match v {
                Some(v) => TxnOp::put(s.full(&k), v, None),
                None => TxnOp::delete(s.full(&k), None),
            })
            .collect();
        let mut kv = s.kv.clone();
        let resp = timed(
            s.timeout,
            Stage::Commit,
            "commit",
            kv.txn(Txn::new().when(cmps).and_then(ops)),
        )
        .await?;
        if resp.succeeded() {
            Ok(())
        } else {
            Err(Error::new(
                ErrorKind::Conflict,
                "etcd commit: a key the transaction read was changed by another client",
            ))
        }
    }

    async fn rollback(self: Box<Self>) -> Result<()> {
        // etcd holds nothing for a transaction that has not committed.
        Ok(())
    }
}
