//! Whole-volume reads for a dump: [`VolumeReads`], the reads a walk of the whole volume makes,
//! batched a directory page at a time ([`VolumeReads::read_inodes`]), and the optional
//! point-in-time view a backend may give ([`crate::Backend::snapshot`]).
//!
//! Which backends give a snapshot (every read of one [`VolumeReads`] sees the volume as it was
//! at one moment, whatever clients write meanwhile):
//!
//! | backend | snapshot | how |
//! |---|---|---|
//! | RocksDB | yes | one RocksDB snapshot, held by a reader thread for the dump's duration |
//! | memory | yes | a copy of the map (the whole volume, in memory) |
//! | PostgreSQL | yes | one `REPEATABLE READ, READ ONLY` transaction on a connection of its own |
//! | MySQL / MariaDB | yes | one `REPEATABLE READ` transaction started `WITH CONSISTENT SNAPSHOT` |
//! | SQLite | yes | one deferred read transaction on a reader connection (WAL) |
//! | Redis | no | reads are separate commands |
//! | etcd | yes | every read at one revision (the store's revision when the snapshot was taken), recording nothing; a dump fails if etcd compacts that revision away before it ends |
//! | TiKV | no (not yet) | a store transaction held for the whole dump would keep every key it read in its read set and cache; a snapshot read at one timestamp would not |
//!
//! Without one, [`LiveReads`] reads the live volume through the ordinary [`Backend`] reads
//! (each of which is consistent on its own), and a dump says it is not a snapshot
//! ([`crate::dump::DumpStats::snapshot`]).

use std::sync::mpsc;

use async_trait::async_trait;
use futures::future::BoxFuture;

use crate::backend::Backend;
use crate::error::{Error, ErrorKind, Result};
use crate::kv::shared;
use crate::kv::store::{KvRead, KvSnapshot, KvStore, SnapRead};
use crate::kv::txn::KvTxn;
use crate::kv::txn_store::StoreTxn;
use crate::logic::{self, TxnView};
use crate::session::{Session, SessionHoldings, Sid};
use crate::types::{Attr, Counter, DirEntry, FileType, Ino, Pending, Setting, Slice};

/// Everything a dump records of one inode besides its names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InodeData {
    /// Attributes.
    pub attr: Attr,
    /// Symlink target (`Some` for a symlink only).
    pub target: Option<Vec<u8>>,
    /// Extended attributes `(name, value)`, by name.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Chunks of a regular file, by increasing index, each with its slices in write order;
    /// empty for other types.
    pub chunks: Vec<(u32, Vec<Slice>)>,
}

/// The reads of a whole-volume walk (a dump): from one point in time when they come from
/// [`Backend::snapshot`], else from the live volume ([`LiveReads`]). Errors: those of the
/// backend's reads.
#[async_trait]
pub trait VolumeReads: Send + Sync {
    /// True when every read sees the volume at one moment (a snapshot).
    fn is_snapshot(&self) -> bool;
    /// The format record (see [`Backend::load`]).
    async fn load(&self) -> Result<Setting>;
    /// A counter's value (see [`Backend::get_counter`]).
    async fn get_counter(&self, counter: Counter) -> Result<i64>;
    /// Entries of directory `ino` without attributes (see [`Backend::read_dir`]).
    async fn read_dir(&self, ino: Ino, after: Option<&[u8]>, limit: usize)
    -> Result<Vec<DirEntry>>;
    /// What a dump records of each of `inos` (see [`Backend::read_inodes`]).
    async fn read_inodes(&self, inos: &[Ino]) -> Result<Vec<Option<InodeData>>>;
    /// Every chunk of `ino` (see [`Backend::list_chunks`]); readable for a pending file.
    async fn list_chunks(&self, ino: Ino) -> Result<Vec<(u32, Vec<Slice>)>>;
    /// Pending-deletion records, at most `limit` (see [`Backend::list_pending`]).
    async fn list_pending(&self, limit: usize) -> Result<Vec<Pending>>;
    /// Every session (see [`Backend::list_sessions`]).
    async fn list_sessions(&self) -> Result<Vec<Session>>;
    /// What session `sid` holds (see [`Backend::session_holdings`]).
    async fn session_holdings(&self, sid: Sid) -> Result<SessionHoldings>;
    /// Every directory quota (see [`Backend::quotas`]); empty on a backend without quotas.
    async fn quotas(&self) -> Result<Vec<(Ino, crate::quota::Quota)>>;
}

/// The live volume's reads through a [`Backend`]: each read is consistent on its own, but
/// a walk may see some of the concurrent writes and not others. Not a snapshot.
#[derive(Debug, Clone, Copy)]
pub struct LiveReads<'a>(pub &'a dyn Backend);

#[async_trait]
impl VolumeReads for LiveReads<'_> {
    fn is_snapshot(&self) -> bool {
        false
    }
    async fn load(&self) -> Result<Setting> {
        self.0.load().await
    }
    async fn get_counter(&self, counter: Counter) -> Result<i64> {
        self.0.get_counter(counter).await
    }
    async fn read_dir(
        &self,
        ino: Ino,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<DirEntry>> {
        self.0.read_dir(ino, after, limit, false).await
    }
    async fn read_inodes(&self, inos: &[Ino]) -> Result<Vec<Option<InodeData>>> {
        self.0.read_inodes(inos).await
    }
    async fn list_chunks(&self, ino: Ino) -> Result<Vec<(u32, Vec<Slice>)>> {
        self.0.list_chunks(ino).await
    }
    async fn list_pending(&self, limit: usize) -> Result<Vec<Pending>> {
        self.0.list_pending(limit).await
    }
    async fn list_sessions(&self) -> Result<Vec<Session>> {
        self.0.list_sessions().await
    }
    async fn session_holdings(&self, sid: Sid) -> Result<SessionHoldings> {
        self.0.session_holdings(sid).await
    }
    async fn quotas(&self) -> Result<Vec<(Ino, crate::quota::Quota)>> {
        match self.0.quotas().await {
            Err(e) if e.kind() == crate::ErrorKind::Unsupported => Ok(Vec::new()),
            other => other,
        }
    }
}

/// [`Backend::read_inodes`] by point reads, one inode after another (its default):
/// attributes, symlink target, xattrs, chunks. An inode that is gone (`NotFound` on its
/// attributes, or on a later read: deleted meanwhile) is `None`. Errors: the other errors of
/// those reads.
pub async fn read_inodes_one_by_one<B: Backend + ?Sized>(
    backend: &B,
    inos: &[Ino],
) -> Result<Vec<Option<InodeData>>> {
    let mut out = Vec::with_capacity(inos.len());
    for &ino in inos {
        let one = async {
            let attr = backend.get_attr(ino).await?;
            let target = if attr.typ == FileType::Symlink {
                Some(backend.read_link(ino).await?)
            } else {
                None
            };
            let mut xattrs = Vec::new();
            for name in backend.list_xattr(ino).await? {
                match backend.get_xattr(ino, &name).await {
                    Ok(v) => xattrs.push((name, v)),
                    // Removed between the list and the read.
                    Err(e) if e.kind() == ErrorKind::NoData => {}
                    Err(e) => return Err(e),
                }
            }
            let chunks = if attr.typ == FileType::Regular {
                backend.list_chunks(ino).await?
            } else {
                Vec::new()
            };
            Ok(InodeData {
                attr,
                target,
                xattrs,
                chunks,
            })
        };
        match one.await {
            Ok(d) => out.push(Some(d)),
            Err(e) if e.kind() == ErrorKind::NotFound => out.push(None),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// What a dump records of each of `inos` from one consistent KV view `r` (a store snapshot,
/// or a transaction): `None` for an inode without attributes. Errors: `Corrupted` for an
/// undecodable record or a symlink without target, and the store's read errors.
pub async fn kv_read_inodes<R: KvRead + ?Sized>(
    r: &R,
    inos: &[Ino],
) -> Result<Vec<Option<InodeData>>> {
    let mut t = KvTxn::new(r);
    let mut out = Vec::with_capacity(inos.len());
    for &ino in inos {
        let Some(attr) = t.get_attr(ino).await? else {
            out.push(None);
            continue;
        };
        let target = if attr.typ == FileType::Symlink {
            Some(t.get_symlink(ino).await?.ok_or_else(|| {
                Error::new(ErrorKind::Corrupted, format!("symlink {ino} has no target"))
            })?)
        } else {
            None
        };
        let mut xattrs = Vec::new();
        for name in t.list_xattr(ino).await? {
            if let Some(v) = t.get_xattr(ino, &name).await? {
                xattrs.push((name, v));
            }
        }
        let chunks = if attr.typ == FileType::Regular {
            shared::list_chunks(r, ino).await?
        } else {
            Vec::new()
        };
        out.push(Some(InodeData {
            attr,
            target,
            xattrs,
            chunks,
        }));
    }
    Ok(out)
}

/// A job for the reader thread of a [`KvStoreSnapshot`].
type Job = Box<dyn for<'a> FnOnce(&'a SnapRead<'a>) + Send>;

/// A point-in-time view of a [`KvStore`] ([`KvStore::point_in_time`]) as [`VolumeReads`]: a
/// thread of its own holds the store's snapshot (which borrows the store) and runs each read
/// on it; dropping the value ends the thread and waits for it, so that the snapshot and the
/// thread's reference to the store are gone when the drop returns. (Not waiting let the
/// thread close a RocksDB store after `meta dump` returned from `main`, racing the process
/// exit: an abort, "pthread lock: Invalid argument", in one CI run.)
pub struct KvStoreSnapshot {
    /// `None` once dropped (closing the channel ends the thread).
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for KvStoreSnapshot {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            // The thread ends once its current read (if any) is done.
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for KvStoreSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvStoreSnapshot").finish_non_exhaustive()
    }
}

fn gone() -> Error {
    Error::new(
        ErrorKind::Internal,
        "the snapshot's reader thread has stopped",
    )
}

impl KvStoreSnapshot {
    /// Takes a point-in-time view of `store` on a new thread; `None` when the store has none
    /// ([`KvStore::point_in_time`]). Errors: those of taking it, `Internal` when the thread
    /// cannot be started.
    pub async fn open<S: KvStore>(store: std::sync::Arc<S>) -> Result<Option<KvStoreSnapshot>> {
        let (jobs, rx) = mpsc::channel::<Job>();
        let (ready, ready_rx) = futures::channel::oneshot::channel::<Result<bool>>();
        let thread = std::thread::Builder::new()
            .name("meta-snapshot".into())
            .spawn(move || {
                let snap: Box<dyn KvSnapshot + '_> = match store.point_in_time() {
                    Ok(Some(s)) => s,
                    Ok(None) => {
                        let _ = ready.send(Ok(false));
                        return;
                    }
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                if ready.send(Ok(true)).is_err() {
                    return;
                }
                let reader = SnapRead(&*snap);
                for job in rx {
                    job(&reader);
                }
            })
            .map_err(|e| {
                Error::new(ErrorKind::Internal, "start the snapshot thread").with_source(e)
            })?;
        match ready_rx.await.map_err(|_| gone())? {
            Ok(true) => Ok(Some(KvStoreSnapshot {
                jobs: Some(jobs),
                thread: Some(thread),
            })),
            other => {
                // The thread is returning: wait for it to let go of the store.
                let _ = thread.join();
                other.map(|_| None)
            }
        }
    }

    /// Runs `f` on the snapshot's thread and returns what it gives.
    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(&'a SnapRead<'a>) -> BoxFuture<'a, Result<T>> + Send + 'static,
    {
        let (tx, rx) = futures::channel::oneshot::channel();
        self.jobs
            .as_ref()
            .ok_or_else(gone)?
            .send(Box::new(move |r| {
                let _ = tx.send(futures::executor::block_on(f(r)));
            }))
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())?
    }
}

#[async_trait]
impl VolumeReads for KvStoreSnapshot {
    fn is_snapshot(&self) -> bool {
        true
    }
    async fn load(&self) -> Result<Setting> {
        self.run(|r| Box::pin(shared::load_setting(r))).await
    }
    async fn get_counter(&self, counter: Counter) -> Result<i64> {
        self.run(move |r| Box::pin(shared::read_counter(r, counter)))
            .await
    }
    async fn read_dir(
        &self,
        ino: Ino,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<DirEntry>> {
        let after = after.map(<[u8]>::to_vec);
        self.run(move |r| {
            Box::pin(async move { kv_read_dir(r, ino, after.as_deref(), limit).await })
        })
        .await
    }
    async fn read_inodes(&self, inos: &[Ino]) -> Result<Vec<Option<InodeData>>> {
        let inos = inos.to_vec();
        self.run(move |r| Box::pin(async move { kv_read_inodes(r, &inos).await }))
            .await
    }
    async fn list_chunks(&self, ino: Ino) -> Result<Vec<(u32, Vec<Slice>)>> {
        self.run(move |r| Box::pin(shared::list_chunks(r, ino)))
            .await
    }
    async fn list_pending(&self, limit: usize) -> Result<Vec<Pending>> {
        self.run(move |r| Box::pin(shared::list_pending(r, limit)))
            .await
    }
    async fn list_sessions(&self) -> Result<Vec<Session>> {
        self.run(|r| Box::pin(kv_list_sessions(r))).await
    }
    async fn session_holdings(&self, sid: Sid) -> Result<SessionHoldings> {
        self.run(move |r| Box::pin(kv_session_holdings(r, sid)))
            .await
    }
    async fn quotas(&self) -> Result<Vec<(Ino, crate::quota::Quota)>> {
        self.run(|r| Box::pin(shared::quotas(r))).await
    }
}

/// [`VolumeReads::read_dir`] over a key-value reader, through the generic logic.
async fn kv_read_dir<R: KvRead + ?Sized>(
    r: &R,
    ino: Ino,
    after: Option<&[u8]>,
    limit: usize,
) -> Result<Vec<DirEntry>> {
    let mut t = KvTxn::new(r);
    logic::read_dir(&mut t, ino, after, limit, false).await
}

/// [`VolumeReads::list_sessions`] over a key-value reader.
async fn kv_list_sessions<R: KvRead + ?Sized>(r: &R) -> Result<Vec<Session>> {
    let mut t = KvTxn::new(r);
    TxnView::list_sessions(&mut t).await
}

/// [`VolumeReads::session_holdings`] over a key-value reader.
async fn kv_session_holdings<R: KvRead + ?Sized>(r: &R, sid: Sid) -> Result<SessionHoldings> {
    let mut t = KvTxn::new(r);
    logic::session_holdings(&mut t, sid).await
}

/// The point-in-time view of a transactional store
/// ([`crate::kv::TxnStore::point_in_time`]: etcd reads at one revision), read directly: its
/// reads are async already and record nothing.
pub struct TxnSnapshot(pub Box<dyn StoreTxn>);

impl std::fmt::Debug for TxnSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxnSnapshot").finish_non_exhaustive()
    }
}

/// What a dump records of each of `inos`, read through one store transaction whose
/// attribute reads are fetched ahead in as few requests as the store allows
/// ([`StoreTxn::prefetch`]). Errors: those of the reads.
pub async fn txn_read_inodes(txn: &dyn StoreTxn, inos: &[Ino]) -> Result<Vec<Option<InodeData>>> {
    let keys: Vec<Vec<u8>> = inos.iter().map(|&i| crate::kv::attr_key(i)).collect();
    txn.prefetch(&keys).await?;
    kv_read_inodes(txn, inos).await
}

#[async_trait]
impl VolumeReads for TxnSnapshot {
    fn is_snapshot(&self) -> bool {
        true
    }
    async fn load(&self) -> Result<Setting> {
        shared::load_setting(&*self.0).await
    }
    async fn get_counter(&self, counter: Counter) -> Result<i64> {
        shared::read_counter(&*self.0, counter).await
    }
    async fn read_dir(
        &self,
        ino: Ino,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<DirEntry>> {
        kv_read_dir(&*self.0, ino, after, limit).await
    }
    async fn read_inodes(&self, inos: &[Ino]) -> Result<Vec<Option<InodeData>>> {
        txn_read_inodes(&*self.0, inos).await
    }
    async fn list_chunks(&self, ino: Ino) -> Result<Vec<(u32, Vec<Slice>)>> {
        shared::list_chunks(&*self.0, ino).await
    }
    async fn list_pending(&self, limit: usize) -> Result<Vec<Pending>> {
        shared::list_pending(&*self.0, limit).await
    }
    async fn list_sessions(&self) -> Result<Vec<Session>> {
        kv_list_sessions(&*self.0).await
    }
    async fn session_holdings(&self, sid: Sid) -> Result<SessionHoldings> {
        kv_session_holdings(&*self.0, sid).await
    }
    async fn quotas(&self) -> Result<Vec<(Ino, crate::quota::Quota)>> {
        shared::quotas(&*self.0).await
    }
}
