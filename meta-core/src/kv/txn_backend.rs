//! [`TxnKvBackend`]: a complete [`Backend`] over any distributed [`TxnStore`].

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use crate::backend::{Backend, BackendInfo, InodePage};
use crate::error::{Error, ErrorKind, Result};
use crate::kv::shared;
use crate::kv::store::KvRead;
use crate::kv::txn::KvTxn;
use crate::kv::txn_store::{StoreTxn, TxnStore};
use crate::logic::{self, Limits, TxnView};
use crate::op::{Op, OpOutput};
use crate::session::{InodeLocks, Session, SessionHoldings, Sid};
use crate::snapshot::InodeData;
use crate::stats::DirStat;
use crate::types::{Attr, Counter, DirEntry, IdKind, Ino, Pending, Setting, Slice, Statfs};

/// A transaction that lost a race (`Conflict`) is run again until it has been retried this
/// many times *and* [`CONFLICT_PATIENCE`] has passed; then the `Conflict` is returned.
pub const CONFLICT_RETRIES: u32 = 50;
/// How long a transaction keeps retrying after conflicts (see [`CONFLICT_RETRIES`]).
pub const CONFLICT_PATIENCE: Duration = Duration::from_secs(30);
/// The first backoff after a conflict; it doubles up to [`MAX_BACKOFF`], with jitter.
const FIRST_BACKOFF: Duration = Duration::from_millis(1);
/// The longest backoff between two attempts.
const MAX_BACKOFF: Duration = Duration::from_millis(200);

/// A complete [`Backend`] over a distributed [`TxnStore`]: each batch runs the shared op logic
/// (the same as the embedded backends, through a [`KvTxn`] overlay) inside one store
/// transaction and commits once; the commit fails with `Conflict` when another client changed
/// anything the batch read, and the batch then runs again from the start, after a backoff, up
/// to [`CONFLICT_RETRIES`] times and for at least [`CONFLICT_PATIENCE`]. Retries of one
/// process go one at a time (a *retry lane*, an async mutex per backend): the first attempt of
/// every batch is fully concurrent, but batches that already lost a race no longer race each
/// other, so under contention (many tasks creating in one directory) every retry makes
/// progress instead of conflicting again with the other retries. Ops that fail keep their
/// reads in the transaction, so a failure is as serializable as a success.
///
/// A batch whose commit would pass the store's [`crate::kv::TxnLimits`] is split: the op that
/// would pass them goes to the next transaction, and so on, so one `apply` may make several
/// commits. When a later commit fails after an earlier one succeeded, the ops of the earlier
/// commits keep their results and each later op gets the error in its own slot (the outer
/// `Err` is returned only when nothing was committed). An op that alone passes the limits
/// fails with `Unsupported`, naming the limit.
#[derive(Debug)]
pub struct TxnKvBackend<S: TxnStore> {
    store: Arc<S>,
    retries: Arc<AtomicU64>,
    commits: Arc<AtomicU64>,
    lane: Arc<tokio::sync::Mutex<()>>,
}

impl<S: TxnStore> Clone for TxnKvBackend<S> {
    fn clone(&self) -> Self {
        TxnKvBackend {
            store: self.store.clone(),
            retries: self.retries.clone(),
            commits: self.commits.clone(),
            lane: self.lane.clone(),
        }
    }
}

/// What a [`TxnKvBackend`] has done so far (shared by its clones).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxnStats {
    /// Transactions that were run again because their commit lost a race.
    pub conflict_retries: u64,
    /// Commits that succeeded.
    pub commits: u64,
}

/// The result of one store transaction of an `apply`: the results of the ops it took.
type Taken = Vec<Result<OpOutput>>;

impl<S: TxnStore> TxnKvBackend<S> {
    /// Wraps a store.
    pub fn new(store: S) -> Self {
        TxnKvBackend {
            store: Arc::new(store),
            retries: Arc::new(AtomicU64::new(0)),
            commits: Arc::new(AtomicU64::new(0)),
            lane: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// Conflict retries and commits since this backend was made.
    pub fn stats(&self) -> TxnStats {
        TxnStats {
            conflict_retries: self.retries.load(Ordering::Relaxed),
            commits: self.commits.load(Ordering::Relaxed),
        }
    }

    /// Runs `attempt` until it does not fail with `Conflict` (see [`TxnKvBackend`] for the
    /// budget and the retry lane), sleeping a growing, jittered backoff between retries.
    async fn retry<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let started = std::time::Instant::now();
        let mut backoff = FIRST_BACKOFF;
        let mut tries = 0;
        let mut lane = None;
        loop {
            match attempt().await {
                Err(e) if e.kind() == ErrorKind::Conflict => {
                    if tries >= CONFLICT_RETRIES && started.elapsed() >= CONFLICT_PATIENCE {
                        return Err(e.context_prefix(format!(
                            "{what}: still conflicting after {tries} retries in {} ms",
                            started.elapsed().as_millis()
                        )));
                    }
                    tries += 1;
                    self.retries.fetch_add(1, Ordering::Relaxed);
                    if lane.is_none() {
                        // Joining the lane is the wait; the first retry in it goes at once.
                        lane = Some(self.lane.lock().await);
                        continue;
                    }
                    let jitter = rand_below(backoff.as_micros() as u64 + 1);
                    tokio::time::sleep(backoff / 2 + Duration::from_micros(jitter / 2)).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
                r => {
                    if r.is_ok() {
                        self.commits.fetch_add(1, Ordering::Relaxed);
                    }
                    return r;
                }
            }
        }
    }

    /// Runs a read through the generic logic on one snapshot (a transaction rolled back).
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        F: for<'a> FnOnce(
            &'a mut KvTxn<'a, dyn StoreTxn>,
        ) -> futures::future::BoxFuture<'a, Result<T>>,
    {
        let txn = self.store.begin().await?;
        let r = {
            let mut view = KvTxn::new(&*txn);
            f(&mut view).await
        };
        txn.rollback().await?;
        r
    }

    /// Runs a plain read function on one snapshot.
    async fn read_with<T>(
        &self,
        f: impl for<'a> FnOnce(&'a dyn KvRead) -> futures::future::BoxFuture<'a, Result<T>>,
    ) -> Result<T> {
        let txn = self.store.begin().await?;
        let r = f(&*txn).await;
        txn.rollback().await?;
        r
    }

    /// One store transaction over a prefix of `ops`: applies ops in order while the commit
    /// still fits the store's limits, then commits. Returns the results of the ops it took
    /// (at least one).
    async fn apply_prefix(&self, ops: &[Op]) -> Result<Taken> {
        let limits = self.store.limits();
        let txn = self.store.begin().await?;
        let res = async {
            txn.prefetch(&shared::batch_keys(ops)).await?;
            let setting = shared::load_setting(&*txn).await?;
            let fs_limits = Limits::from(&setting);
            let mut view = KvTxn::new(&*txn);
            let mut out: Taken = Vec::with_capacity(ops.len());
            for op in ops {
                let mark = txn.mark();
                view.savepoint().await?;
                let r = match logic::apply_op(&mut view, op, &fs_limits).await {
                    Err(e) if e.kind().is_batch_fatal() => return Err(e),
                    r => r,
                };
                let (writes, write_bytes) = view.write_cost();
                let reads = txn.read_cost();
                if !limits.fits(reads, writes, write_bytes) {
                    view.rollback_to_savepoint().await?;
                    txn.rewind(mark);
                    view.forget_reads();
                    if !out.is_empty() {
                        break;
                    }
                    out.push(Err(Error::new(
                        ErrorKind::Unsupported,
                        format!(
                            "{}: its transaction would carry {} checks, {writes} writes and \
                             {} bytes; this store takes at most {} checks, {} writes and {} \
                             bytes per transaction",
                            op.name(),
                            reads.0,
                            reads.1 + write_bytes,
                            limits.max_checks,
                            limits.max_writes,
                            limits.max_bytes
                        ),
                    )));
                    continue;
                }
                match r {
                    Ok(o) => {
                        view.release_savepoint().await?;
                        out.push(Ok(o));
                    }
                    Err(e) => {
                        // Its reads stay: the failure depends on them as a success would.
                        view.rollback_to_savepoint().await?;
                        out.push(Err(e));
                    }
                }
            }
            Ok((out, view.into_writes()))
        }
        .await;
        match res {
            Ok((out, writes)) if writes.is_empty() => {
                txn.rollback().await?;
                Ok(out)
            }
            Ok((out, writes)) => {
                txn.commit(writes).await?;
                Ok(out)
            }
            Err(e) => {
                // The transaction wrote nothing; a failed rollback changes nothing for it.
                let _ = txn.rollback().await;
                Err(e)
            }
        }
    }
}

/// A number in `[0, n)` from the clock and a counter (jitter only; not for anything else).
fn rand_below(n: u64) -> u64 {
    static SEQ: AtomicU64 = AtomicU64::new(0x9e37_79b9_7f4a_7c15);
    let mut x = SEQ.fetch_add(0x9e37_79b9_7f4a_7c15, Ordering::Relaxed)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as u64)
            .unwrap_or(0);
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x % n.max(1)
}

#[async_trait]
impl<S: TxnStore> Backend for TxnKvBackend<S> {
    fn info(&self) -> BackendInfo {
        self.store.info()
    }

    /// One: batches of one process would only race each other (every create in a directory
    /// rewrites its attributes) and lose to conflicts; one batch at a time lets the next
    /// batch grow while the current one commits. Other processes still run concurrently.
    fn preferred_inflight(&self) -> usize {
        1
    }

    /// `commits` and `conflict_retries` ([`TxnKvBackend::stats`]).
    fn activity(&self) -> Vec<(&'static str, u64)> {
        let s = self.stats();
        vec![
            ("commits", s.commits),
            ("conflict_retries", s.conflict_retries),
        ]
    }

    async fn format(&self, setting: &Setting, force: bool) -> Result<()> {
        setting.validate()?;
        if force {
            let held = self.read_with(|r| Box::pin(shared::load_setting(r))).await;
            match held {
                Ok(old) if old.name != setting.name => self.store.erase().await?,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) if e.kind() == ErrorKind::Corrupted => self.store.erase().await?,
                Err(e) => return Err(e),
            }
        }
        self.retry("format", || async {
            let txn = self.store.begin().await?;
            match shared::format_writes(&*txn, setting, false).await {
                Ok(Some(w)) => txn.commit(w).await,
                Ok(None) => txn.rollback().await,
                Err(e) => {
                    let _ = txn.rollback().await;
                    Err(e)
                }
            }
        })
        .await
    }

    async fn load(&self) -> Result<Setting> {
        self.read_with(|r| Box::pin(shared::load_setting(r))).await
    }

    async fn apply(&self, ops: &[Op]) -> Result<Vec<Result<OpOutput>>> {
        let mut out: Vec<Result<OpOutput>> = Vec::with_capacity(ops.len());
        while out.len() < ops.len() {
            let rest = &ops[out.len()..];
            match self.retry("batch", || self.apply_prefix(rest)).await {
                Ok(taken) => out.extend(taken),
                Err(e) if out.is_empty() => return Err(e),
                Err(e) => {
                    // Earlier commits stand; every op not committed gets the error.
                    let msg = e.to_string();
                    for _ in out.len()..ops.len() {
                        out.push(Err(Error::new(e.kind(), msg.clone())));
                    }
                }
            }
        }
        Ok(out)
    }

    async fn reserve_ids(&self, kind: IdKind, n: u64) -> Result<Range<u64>> {
        shared::check_reserve(n)?;
        self.retry("reserve_ids", || async move {
            let txn = self.store.begin().await?;
            match shared::reserve_writes(&*txn, kind, n).await {
                Ok((range, w)) => txn.commit(w).await.map(|()| range),
                Err(e) => {
                    let _ = txn.rollback().await;
                    Err(e)
                }
            }
        })
        .await
    }

    async fn lookup(&self, parent: Ino, name: &[u8]) -> Result<(Ino, Attr)> {
        let name = name.to_vec();
        self.read(move |t| Box::pin(async move { logic::lookup(t, parent, &name).await }))
            .await
    }

    async fn get_attr(&self, ino: Ino) -> Result<Attr> {
        self.read(|t| Box::pin(async move { logic::get_attr(t, ino).await }))
            .await
    }

    async fn read_dir(
        &self,
        ino: Ino,
        after: Option<&[u8]>,
        limit: usize,
        plus: bool,
    ) -> Result<Vec<DirEntry>> {
        let after = after.map(<[u8]>::to_vec);
        self.read(move |t| {
            Box::pin(async move { logic::read_dir(t, ino, after.as_deref(), limit, plus).await })
        })
        .await
    }

    async fn read_chunk(&self, ino: Ino, indx: u32) -> Result<Vec<Slice>> {
        self.read(|t| Box::pin(async move { t.get_chunk(ino, indx).await }))
            .await
    }

    async fn read_link(&self, ino: Ino) -> Result<Vec<u8>> {
        self.read(|t| Box::pin(async move { logic::read_link(t, ino).await }))
            .await
    }

    async fn get_xattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        let name = name.to_vec();
        self.read(move |t| Box::pin(async move { logic::get_xattr(t, ino, &name).await }))
            .await
    }

    async fn list_xattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>> {
        self.read(|t| Box::pin(async move { logic::list_xattr(t, ino).await }))
            .await
    }

    async fn statfs(&self) -> Result<Statfs> {
        self.read_with(|r| Box::pin(shared::statfs(r))).await
    }

    async fn dir_stats(&self, dirs: &[Ino]) -> Result<Vec<DirStat>> {
        let dirs = dirs.to_vec();
        self.read_with(move |r| Box::pin(async move { shared::dir_stats(r, &dirs).await }))
            .await
    }

    async fn quotas(&self) -> Result<Vec<(Ino, crate::quota::Quota)>> {
        self.read_with(|r| Box::pin(shared::quotas(r))).await
    }

    async fn get_counter(&self, counter: Counter) -> Result<i64> {
        self.read_with(|r| Box::pin(shared::read_counter(r, counter)))
            .await
    }

    async fn scan_inodes(&self, cursor: Option<&[u8]>, limit: usize) -> Result<InodePage> {
        let cursor = cursor.map(<[u8]>::to_vec);
        self.read_with(move |r| {
            Box::pin(async move { shared::scan_inodes(r, cursor.as_deref(), limit).await })
        })
        .await
    }

    async fn list_chunks(&self, ino: Ino) -> Result<Vec<(u32, Vec<Slice>)>> {
        self.read_with(|r| Box::pin(shared::list_chunks(r, ino)))
            .await
    }

    async fn list_pending(&self, limit: usize) -> Result<Vec<Pending>> {
        self.read_with(|r| Box::pin(shared::list_pending(r, limit)))
            .await
    }

    async fn list_sessions(&self) -> Result<Vec<Session>> {
        self.read(|t| Box::pin(async move { TxnView::list_sessions(t).await }))
            .await
    }

    async fn session_holdings(&self, sid: Sid) -> Result<SessionHoldings> {
        self.read(|t| Box::pin(async move { logic::session_holdings(t, sid).await }))
            .await
    }

    async fn list_locks(&self, ino: Ino) -> Result<InodeLocks> {
        self.read(|t| Box::pin(async move { logic::list_locks(t, ino).await }))
            .await
    }

    /// All of `inos` in one store transaction (one snapshot), rolled back; their attributes
    /// are fetched ahead in as few requests as the store allows ([`StoreTxn::prefetch`]).
    async fn read_inodes(&self, inos: &[Ino]) -> Result<Vec<Option<InodeData>>> {
        let txn = self.store.begin().await?;
        let r = crate::snapshot::txn_read_inodes(&*txn, inos).await;
        txn.rollback().await?;
        r
    }

    /// The store's point-in-time transaction ([`TxnStore::point_in_time`]), when it has
    /// one: etcd, at one revision.
    async fn snapshot(&self) -> Result<Option<Box<dyn crate::snapshot::VolumeReads + '_>>> {
        Ok(self.store.point_in_time().await?.map(|t| {
            Box::new(crate::snapshot::TxnSnapshot(t)) as Box<dyn crate::snapshot::VolumeReads>
        }))
    }
}
