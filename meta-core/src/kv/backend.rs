//! [`KvBackend`]: a complete [`Backend`] over any [`KvStore`].

use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::backend::{Backend, BackendInfo, InodePage};
use crate::error::{Error, ErrorKind, Result, err};
use crate::kv::SETTING_KEY;
use crate::kv::codec::*;
use crate::kv::schema::*;
use crate::kv::store::{KvStore, SnapRead, SyncRead, WriteSet};
use crate::kv::txn::KvTxn;
use crate::logic::{self, Limits, TxnView};
use crate::op::{Op, OpOutput};
use crate::session::{InodeLocks, Session, SessionHoldings, Sid};
use crate::types::{
    Attr, Counter, DirEntry, IdKind, Ino, Pending, Setting, Slice, Statfs, Timespec,
};

/// How many raw keys one page of an inode scan reads.
const SCAN_PAGE: usize = 1024;

/// A complete [`Backend`] over any [`KvStore`]: one writer at a time applies a batch through a
/// [`KvTxn`] and commits every surviving op's writes with one `commit` (one RocksDB WriteBatch,
/// one BTreeMap update). Calls of blocking stores run on tokio's blocking pool.
#[derive(Debug)]
pub struct KvBackend<S: KvStore> {
    store: Arc<S>,
    writer: Arc<Mutex<()>>,
}

impl<S: KvStore> Clone for KvBackend<S> {
    fn clone(&self) -> Self {
        KvBackend {
            store: self.store.clone(),
            writer: self.writer.clone(),
        }
    }
}

fn lock_writer(m: &Mutex<()>) -> std::sync::MutexGuard<'_, ()> {
    // A panic while holding the lock cannot leave the store half-written (commit is atomic),
    // so a poisoned lock is still safe to use.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<S: KvStore> KvBackend<S> {
    /// Wraps a store.
    pub fn new(store: S) -> Self {
        KvBackend {
            store: Arc::new(store),
            writer: Arc::new(Mutex::new(())),
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
        F: FnOnce(&S, &Mutex<()>) -> Result<T> + Send + 'static,
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
            futures::executor::block_on(f(&mut txn))
        })
        .await
    }
}

fn load_setting<S: KvStore + ?Sized>(store: &S) -> Result<Setting> {
    match store.get(SETTING_KEY)? {
        Some(v) => decode_setting(&v),
        None => Err(Error::new(
            ErrorKind::NotFound,
            "volume is not formatted (no format record)",
        )),
    }
}

fn read_counter<S: KvStore + ?Sized>(store: &S, c: Counter) -> Result<i64> {
    match store.get(&counter_key(c))? {
        Some(v) => decode_counter(&v),
        None => Ok(0),
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
        setting.validate()?;
        let setting = setting.clone();
        self.run(move |store, writer| {
            let _g = lock_writer(writer);
            let mut writes = WriteSet::new();
            if let Some(v) = store.get(SETTING_KEY)? {
                if !force {
                    let old = decode_setting(&v)?;
                    if old.name == setting.name {
                        return Ok(());
                    }
                    return Err(Error::new(
                        ErrorKind::AlreadyExists,
                        format!(
                            "store already holds volume {:?}; format with force to erase it",
                            old.name
                        ),
                    ));
                }
                // Erase everything, page by page.
                let mut start = Vec::new();
                loop {
                    let page = store.scan(&start, &[0xff; 16], SCAN_PAGE)?;
                    let Some((last, _)) = page.last() else { break };
                    start = last.clone();
                    start.push(0);
                    let n = page.len();
                    for (k, _) in page {
                        writes.insert(k, None);
                    }
                    if n < SCAN_PAGE {
                        break;
                    }
                }
            }
            let now = Timespec::now();
            let root = logic::root_attr(now);
            writes.insert(SETTING_KEY.to_vec(), Some(encode_setting(&setting)));
            writes.insert(attr_key(Ino::ROOT), Some(encode_attr(&root)));
            for c in Counter::ALL.into_iter().chain(Counter::SESSIONS) {
                let v = match c {
                    Counter::UsedSpace => root.space() as i64,
                    Counter::TotalInodes => 1,
                    c => c.initial(),
                };
                writes.insert(counter_key(c), Some(encode_counter(v)));
            }
            store.commit(writes)
        })
        .await
    }

    async fn load(&self) -> Result<Setting> {
        self.run(|store, _| load_setting(store)).await
    }

    async fn apply(&self, ops: &[Op]) -> Result<Vec<Result<OpOutput>>> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let ops = ops.to_vec();
        self.run(move |store, writer| {
            let _g = lock_writer(writer);
            let limits = Limits::from(&load_setting(store)?);
            let reader = SyncRead(store);
            let mut txn = KvTxn::new(&reader);
            let results = futures::executor::block_on(logic::apply_ops(&mut txn, &ops, &limits))?;
            let writes = txn.into_writes();
            if !writes.is_empty() {
                store.commit(writes)?;
            }
            Ok(results)
        })
        .await
    }

    async fn reserve_ids(&self, kind: IdKind, n: u64) -> Result<Range<u64>> {
        if n == 0 || n > i64::MAX as u64 / 2 {
            return Err(err::invalid(format!("cannot reserve {n} IDs")));
        }
        self.run(move |store, writer| {
            let _g = lock_writer(writer);
            load_setting(store)?;
            let c = kind.counter();
            let cur = read_counter(store, c)?;
            let start = u64::try_from(cur)
                .ok()
                .filter(|&s| s > 0)
                .ok_or_else(|| err::corrupted(format!("counter {} is {cur}", c.name())))?;
            let end = start
                .checked_add(n)
                .filter(|&e| e <= i64::MAX as u64)
                .ok_or_else(|| err::no_space(format!("{} IDs exhausted", c.name())))?;
            let mut w = WriteSet::new();
            w.insert(counter_key(c), Some(encode_counter(end as i64)));
            store.commit(w)?;
            Ok(start..end)
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
        self.run(|store, _| {
            let limits = Limits::from(&load_setting(store)?);
            Ok(logic::statfs_from(
                read_counter(store, Counter::UsedSpace)?,
                read_counter(store, Counter::TotalInodes)?,
                &limits,
            ))
        })
        .await
    }

    async fn get_counter(&self, counter: Counter) -> Result<i64> {
        self.run(move |store, _| read_counter(store, counter)).await
    }

    async fn scan_inodes(&self, cursor: Option<&[u8]>, limit: usize) -> Result<InodePage> {
        let after = InodePage::after(cursor)?;
        self.run(move |store, _| {
            let mut out = Vec::new();
            let Some(first) = after.0.checked_add(1) else {
                return Ok(InodePage::default());
            };
            let mut start = attr_key(Ino(first));
            start.truncate(9);
            let end = vec![b'B'];
            while out.len() < limit {
                let page = store.scan(&start, &end, SCAN_PAGE)?;
                let n = page.len();
                for (k, v) in &page {
                    if k.len() == 10 && k[9] == b'I' {
                        let ino = key_ino(k).ok_or_else(|| err::corrupted("attr key"))?;
                        let attr =
                            decode_attr(v).map_err(|e| e.context_prefix(format!("inode {ino}")))?;
                        out.push((ino, attr));
                        if out.len() == limit {
                            break;
                        }
                    }
                }
                match page.last() {
                    Some((k, _)) if n == SCAN_PAGE => {
                        start = k.clone();
                        start.push(0);
                    }
                    _ => break,
                }
            }
            Ok(InodePage::ordered(out, limit))
        })
        .await
    }

    async fn list_chunks(&self, ino: Ino) -> Result<Vec<(u32, Vec<Slice>)>> {
        self.run(move |store, _| {
            let prefix = chunk_prefix(ino);
            store
                .scan(&prefix, &prefix_end(&prefix), usize::MAX)?
                .into_iter()
                .map(|(k, v)| {
                    let indx = k[prefix.len()..]
                        .try_into()
                        .map(u32::from_be_bytes)
                        .map_err(|_| err::corrupted(format!("chunk key of inode {ino}")))?;
                    Ok((indx, decode_chunk(&v)?))
                })
                .collect()
        })
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
        self.run(move |store, _| {
            let mut out = Vec::new();
            for prefix in [b"D", b"L"] {
                let rows = store.scan(prefix, &prefix_end(prefix), limit - out.len())?;
                for (k, v) in rows {
                    out.push(decode_pending(&k, &v)?);
                }
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
        .await
    }
}
