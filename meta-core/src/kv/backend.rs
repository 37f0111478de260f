//! [`KvBackend`]: a complete [`Backend`] over any [`KvStore`].

use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use futures::executor::block_on;

use crate::backend::{Backend, BackendInfo, InodePage};
use crate::error::{Error, ErrorKind, Result};
use crate::kv::shared;
use crate::kv::store::{KvStore, SnapRead, SyncRead};
use crate::kv::txn::KvTxn;
use crate::logic::{self, Limits, QuotaChains, TxnView};
use crate::op::{Op, OpOutput};
use crate::session::{InodeLocks, Session, SessionHoldings, Sid};
use crate::snapshot::{InodeData, KvStoreSnapshot, VolumeReads};
use crate::stats::DirStat;
use crate::types::{Attr, Counter, DirEntry, IdKind, Ino, Pending, Setting, Slice, Statfs};

/// A complete [`Backend`] over any [`KvStore`]: one writer at a time applies a batch through a
/// [`KvTxn`] and commits every surviving op's writes with one `commit` (one RocksDB WriteBatch,
/// one BTreeMap update). Calls of blocking stores run on tokio's blocking pool.
///
/// The writer is the store's only one (RocksDB locks its directory to one process; the
/// memory store lives in one), so it keeps the quota memo of a batch ([`QuotaChains`], and
/// whether the store holds a quota) for the next: a batch then charges the quotas above a
/// directory that earlier batches walked without reading the directories on the way. It also
/// keeps the volume's limits from the format record, which only `format` writes, so a batch
/// does not read and decode that record again. The
/// logic forgets the memo on the events that change it (a directory moving, a quota
/// created, an op rolled back); the writer forgets it after a batch that fails as a whole
/// (its commit included) and on `format`. Writing to the store behind the writer's back
/// (`store().commit`) is for tests that plant damaged records: the memo may then answer for
/// a directory whose parent record was replaced.
#[derive(Debug)]
pub struct KvBackend<S: KvStore> {
    store: Arc<S>,
    writer: Arc<Mutex<WriterState>>,
}

/// What the single writer keeps from one batch to the next (see [`KvBackend`]).
#[derive(Debug, Default)]
struct WriterState {
    chains: QuotaChains,
    quotas: Option<bool>,
    /// The format record's limits, once a batch read them.
    limits: Option<Limits>,
}

impl<S: KvStore> Clone for KvBackend<S> {
    fn clone(&self) -> Self {
        KvBackend {
            store: self.store.clone(),
            writer: self.writer.clone(),
        }
    }
}

fn lock_writer(m: &Mutex<WriterState>) -> std::sync::MutexGuard<'_, WriterState> {
    // A panic while holding the lock cannot leave the store half-written (commit is atomic),
    // so a poisoned lock is still safe to use.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<S: KvStore> KvBackend<S> {
    /// Wraps a store.
    pub fn new(store: S) -> Self {
        KvBackend {
            store: Arc::new(store),
            writer: Arc::new(Mutex::new(WriterState::default())),
        }
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// Runs `f` against the store: on the blocking pool for blocking stores, inline otherwise.
    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&S, &Mutex<WriterState>) -> Result<T> + Send + 'static,
    {
        let store = self.store.clone();
        let writer = self.writer.clone();
        if store.is_blocking() {
            tokio::task::spawn_blocking(move || f(&store, &writer))
                .await
                .map_err(|e| Error::new(ErrorKind::Internal, "store task failed").with_source(e))?
        } else {
            f(&store, &writer)
        }
    }

    /// Runs a read through the generic logic on a consistent view: a store snapshot, or the
    /// live store under the writer lock for stores that do not block.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(
                &'a mut KvTxn<'a, SnapRead<'a>>,
            ) -> futures::future::BoxFuture<'a, Result<T>>
            + Send
            + 'static,
    {
        self.run(move |store, writer| {
            let _g = (!store.is_blocking()).then(|| lock_writer(writer));
            let snap = store.snapshot()?;
            let reader = SnapRead(&*snap);
            let mut txn = KvTxn::new(&reader);
            block_on(f(&mut txn))
        })
        .await
    }
}

#[async_trait]
impl<S: KvStore> Backend for KvBackend<S> {
    fn info(&self) -> BackendInfo {
        self.store.info()
    }

    /// One: batches are applied by a single writer, one at a time.
    fn preferred_inflight(&self) -> usize {
        1
    }

    async fn format(&self, setting: &Setting, force: bool) -> Result<()> {
        let setting = setting.clone();
        self.run(move |store, writer| {
            let mut g = lock_writer(writer);
            *g = WriterState::default();
            match block_on(shared::format_writes(&SyncRead(store), &setting, force))? {
                Some(writes) => store.commit(writes),
                None => Ok(()),
            }
        })
        .await
    }

    async fn load(&self) -> Result<Setting> {
        self.run(|store, _| block_on(shared::load_setting(&SyncRead(store))))
            .await
    }

    async fn apply(&self, ops: &[Op]) -> Result<Vec<Result<OpOutput>>> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let ops = ops.to_vec();
        self.run(move |store, writer| {
            let mut g = lock_writer(writer);
            // Taken: a batch that fails as a whole leaves it forgotten.
            let memo = std::mem::take(&mut *g);
            let limits = match memo.limits {
                Some(l) => l,
                None => Limits::from(&block_on(shared::load_setting(&SyncRead(store)))?),
            };
            let reader = SyncRead(store);
            let mut txn = KvTxn::new(&reader).with_quota_memo(memo.chains, memo.quotas);
            let results = block_on(logic::apply_ops(&mut txn, &ops, &limits))?;
            let (chains, quotas) = txn.take_quota_memo();
            let writes = txn.into_writes();
            if !writes.is_empty() {
                store.commit(writes)?;
            }
            *g = WriterState {
                chains,
                quotas,
                limits: Some(limits),
            };
            Ok(results)
        })
        .await
    }

    async fn reserve_ids(&self, kind: IdKind, n: u64) -> Result<Range<u64>> {
        shared::check_reserve(n)?;
        self.run(move |store, writer| {
            let _g = lock_writer(writer);
            let (range, writes) = block_on(shared::reserve_writes(&SyncRead(store), kind, n))?;
            store.commit(writes)?;
            Ok(range)
        })
        .await
    }

    async fn lookup(&self, parent: Ino, name: &[u8]) -> Result<(Ino, Attr)> {
        let name = name.to_vec();
        self.read(move |t| Box::pin(async move { logic::lookup(t, parent, &name).await }))
            .await
    }

    async fn get_attr(&self, ino: Ino) -> Result<Attr> {
        self.read(move |t| Box::pin(async move { logic::get_attr(t, ino).await }))
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
        self.read(move |t| Box::pin(async move { t.get_chunk(ino, indx).await }))
            .await
    }

    async fn read_link(&self, ino: Ino) -> Result<Vec<u8>> {
        self.read(move |t| Box::pin(async move { logic::read_link(t, ino).await }))
            .await
    }

    async fn get_xattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        let name = name.to_vec();
        self.read(move |t| Box::pin(async move { logic::get_xattr(t, ino, &name).await }))
            .await
    }

    async fn list_xattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>> {
        self.read(move |t| Box::pin(async move { logic::list_xattr(t, ino).await }))
            .await
    }

    async fn statfs(&self) -> Result<Statfs> {
        self.run(|store, _| block_on(shared::statfs(&SyncRead(store))))
            .await
    }

    async fn dir_stats(&self, dirs: &[Ino]) -> Result<Vec<DirStat>> {
        let dirs = dirs.to_vec();
        self.run(move |store, _| block_on(shared::dir_stats(&SyncRead(store), &dirs)))
            .await
    }

    async fn quotas(&self) -> Result<Vec<(Ino, crate::quota::Quota)>> {
        self.run(move |store, _| block_on(shared::quotas(&SyncRead(store))))
            .await
    }

    async fn get_counter(&self, counter: Counter) -> Result<i64> {
        self.run(move |store, _| block_on(shared::read_counter(&SyncRead(store), counter)))
            .await
    }

    async fn scan_inodes(&self, cursor: Option<&[u8]>, limit: usize) -> Result<InodePage> {
        let cursor = cursor.map(<[u8]>::to_vec);
        self.run(move |store, _| {
            block_on(shared::scan_inodes(
                &SyncRead(store),
                cursor.as_deref(),
                limit,
            ))
        })
        .await
    }

    async fn list_chunks(&self, ino: Ino) -> Result<Vec<(u32, Vec<Slice>)>> {
        self.run(move |store, _| block_on(shared::list_chunks(&SyncRead(store), ino)))
            .await
    }

    async fn list_sessions(&self) -> Result<Vec<Session>> {
        self.read(|t| Box::pin(async move { TxnView::list_sessions(t).await }))
            .await
    }

    async fn session_holdings(&self, sid: Sid) -> Result<SessionHoldings> {
        self.read(move |t| Box::pin(async move { logic::session_holdings(t, sid).await }))
            .await
    }

    async fn list_locks(&self, ino: Ino) -> Result<InodeLocks> {
        self.read(move |t| Box::pin(async move { logic::list_locks(t, ino).await }))
            .await
    }

    async fn list_pending(&self, limit: usize) -> Result<Vec<Pending>> {
        self.run(move |store, _| block_on(shared::list_pending(&SyncRead(store), limit)))
            .await
    }

    /// All of `inos` in one call on the blocking pool, from one store snapshot.
    async fn read_inodes(&self, inos: &[Ino]) -> Result<Vec<Option<InodeData>>> {
        let inos = inos.to_vec();
        self.run(move |store, writer| {
            let _g = (!store.is_blocking()).then(|| lock_writer(writer));
            let snap = store.snapshot()?;
            block_on(crate::snapshot::kv_read_inodes(&SnapRead(&*snap), &inos))
        })
        .await
    }

    /// The store's [`KvStore::point_in_time`] view (RocksDB, memory), held by a thread.
    async fn snapshot(&self) -> Result<Option<Box<dyn VolumeReads + '_>>> {
        Ok(KvStoreSnapshot::open(self.store.clone())
            .await?
            .map(|s| Box::new(s) as Box<dyn VolumeReads>))
    }
}
