//! [`Meta`]: the API a filesystem calls. Every mutating call becomes an [`Op`] that goes
//! through the batcher and awaits its own result, so the caller sees exactly the semantics of
//! an unbatched call. Sessions, open files and locks: [`session`].

mod open;
mod quota;
mod session;
mod stats;

pub use session::PlockRequest;
use session::SessionState;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use prometheus::Registry;

use crate::backend::Backend;
use crate::batch::{BatchLimits, Batcher, DeferredErrors, apply_recorded};
use crate::error::{Error, ErrorKind, Result};
use crate::idpool::{IdPool, PoolCounters, PoolStats};
use crate::metrics::Metrics;
use crate::op::{Caller, Op, OpOutput, RenameFlags, SetAttrMask, SetAttrValues, XattrFlags};
use crate::options::MetaOptions;
use crate::types::{
    Attr, DirEntry, FileType, IdKind, Ino, Pending, Setting, Slice, Statfs, Timespec, validate_name,
};

struct Inner {
    backend: Arc<dyn Backend>,
    setting: Setting,
    opts: MetaOptions,
    metrics: Arc<Metrics>,
    inodes: IdPool,
    chunks: IdPool,
    batcher: Option<Batcher>,
    deferred: Arc<Mutex<DeferredErrors>>,
    max_ops: usize,
    /// The session, when `opts.session` (see [`session`]).
    session: Option<SessionState>,
    /// Set when [`Meta::close`] starts: new work is refused with `Closed`.
    closed: std::sync::atomic::AtomicBool,
}

/// A volume opened for use: the engine in front of a [`Backend`]. Cheap to clone; clones share
/// the batcher and the ID pools. Must be created inside a tokio runtime.
#[derive(Clone)]
pub struct Meta {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Meta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meta")
            .field("volume", &self.inner.setting.name)
            .field("backend", &self.inner.backend)
            .field("options", &self.inner.opts)
            .finish()
    }
}

fn unexpected(op: &str, out: &OpOutput) -> Error {
    Error::new(
        ErrorKind::Internal,
        format!("{op}: unexpected backend output {out:?}"),
    )
}

impl Meta {
    /// Formats `backend` with `setting` (see [`Backend::format`]). Errors: those of
    /// [`Backend::format`], and `ConfigInvalid` for a new volume name
    /// [`Setting::validate_name`] refuses.
    pub async fn format(backend: &dyn Backend, setting: &Setting, force: bool) -> Result<()> {
        // A new name is checked; formatting again under the stored name (a no-op) is not,
        // so a volume named before the rule can still be.
        let same = matches!(backend.load().await, Ok(old) if old.name == setting.name);
        if !same {
            setting.validate_name()?;
        }
        backend.format(setting, force).await
    }

    /// Opens the volume held by `backend`: loads its format record and starts the batcher and
    /// the ID pools. Metrics go into `registry` when given (else into a private registry).
    /// Errors: `NotFound` for an unformatted volume, `Unsupported` for a newer format,
    /// `ConfigInvalid` when the metrics are already registered in `registry`.
    pub async fn open(
        backend: Arc<dyn Backend>,
        opts: MetaOptions,
        registry: Option<&Registry>,
    ) -> Result<Meta> {
        opts.validate()?;
        let setting = backend.load().await?;
        let own;
        let registry = match registry {
            Some(r) => r,
            None => {
                own = Registry::new();
                &own
            }
        };
        let metrics = Arc::new(Metrics::new(registry)?);
        let pool = |kind,
                    batch,
                    wm,
                    served: &prometheus::IntCounter,
                    calls: &prometheus::IntCounter,
                    pre: &prometheus::IntCounter| {
            IdPool::new(
                kind,
                backend.clone(),
                batch,
                wm,
                opts.metaprime,
                PoolCounters {
                    served: served.clone(),
                    prime_calls: calls.clone(),
                    prefetch_async: pre.clone(),
                    prime_errors: metrics.prime_errors.clone(),
                },
            )
        };
        let inodes = pool(
            IdKind::Inode,
            opts.inode_batch,
            opts.inode_low_watermark,
            &metrics.inode_served,
            &metrics.inode_prime_calls,
            &metrics.inode_prefetch_async,
        );
        let chunks = pool(
            IdKind::Chunk,
            opts.chunk_batch,
            opts.chunk_low_watermark,
            &metrics.chunk_served,
            &metrics.chunk_prime_calls,
            &metrics.chunk_prefetch_async,
        );
        let max_ops = opts.batch_size.min(backend.info().max_batch_ops).max(1);
        let deferred = Arc::new(Mutex::new(DeferredErrors::default()));
        let batcher = opts.batchwrite.then(|| {
            Batcher::start(
                backend.clone(),
                BatchLimits {
                    ops: max_ops,
                    bytes: opts.batch_bytes,
                    interval: opts.batch_interval,
                    inflight: if opts.max_inflight == 0 {
                        backend.preferred_inflight().max(1)
                    } else {
                        opts.max_inflight
                    },
                    queue: opts.max_queue,
                },
                metrics.clone(),
                deferred.clone(),
            )
        });
        let session = opts.session.then(SessionState::default);
        let meta = Meta {
            inner: Arc::new(Inner {
                backend,
                setting,
                opts,
                metrics,
                inodes,
                chunks,
                batcher,
                deferred,
                max_ops,
                session,
                closed: std::sync::atomic::AtomicBool::new(false),
            }),
        };
        if meta.inner.session.is_some()
            && let Err(e) = meta.start_session().await
        {
            let _ = meta.close().await;
            return Err(e.context_prefix("register the session"));
        }
        Ok(meta)
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn Backend> {
        &self.inner.backend
    }

    /// The format record read at open.
    pub fn setting(&self) -> &Setting {
        &self.inner.setting
    }

    /// The engine options in force.
    pub fn options(&self) -> &MetaOptions {
        &self.inner.opts
    }

    /// The metrics of this instance.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Counters of the inode and chunk ID pools, in that order.
    pub fn pool_stats(&self) -> (PoolStats, PoolStats) {
        (self.inner.inodes.stats(), self.inner.chunks.stats())
    }

    // ------------------------------------------------------------------------------------------
    // Submitting ops

    /// `Closed` once [`Meta::close`] has started.
    fn check_open(&self) -> Result<()> {
        if self.inner.closed.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Error::new(
                ErrorKind::Closed,
                format!("volume {}: Meta::close was called", self.inner.setting.name),
            ));
        }
        Ok(())
    }

    /// Applies one op: through the batcher, or directly when `batchwrite=0`. Errors: the
    /// op's, or `Closed` once [`Meta::close`] has started.
    pub async fn submit(&self, mut op: Op) -> Result<OpOutput> {
        self.check_open()?;
        self.trust(&mut op);
        self.submit_unchecked(op).await
    }

    /// With `permissions=false` the op runs as root would (see [`MetaOptions::permissions`]).
    fn trust(&self, op: &mut Op) {
        if let (false, Some(c)) = (self.inner.opts.permissions, op.caller_mut()) {
            *c = Caller::ROOT;
        }
    }

    /// [`Meta::submit`] for the engine's own ops while it closes (queued releases, the end of
    /// the session).
    pub(super) async fn submit_unchecked(&self, op: Op) -> Result<OpOutput> {
        match &self.inner.batcher {
            Some(b) => b.submit(op).await,
            None => {
                let started = Instant::now();
                let name = op.name();
                let r = apply_recorded(
                    &*self.inner.backend,
                    &self.inner.metrics,
                    std::slice::from_ref(&op),
                )
                .await
                .pop()
                .unwrap_or_else(|| Err(Error::new(ErrorKind::Internal, "no result")));
                self.inner
                    .metrics
                    .record_op(name, &r, started.elapsed().as_secs_f64());
                r
            }
        }
    }

    /// Deferred mode (opt-in): queues `op` and returns as soon as it is queued, without its
    /// result. The op stays atomic, and it is applied before any op queued after it; its error,
    /// if any, is returned by the next [`Meta::flush`] — like `write()` vs `fsync()`. The risk:
    /// a caller that never flushes never learns of a failure. With `batchwrite=0` the op is
    /// applied before this returns, and an error is still held for `flush`.
    ///
    /// Errors: `Closed` once [`Meta::close`] has started (the op is not queued).
    pub async fn enqueue(&self, mut op: Op) -> Result<()> {
        self.check_open()?;
        self.trust(&mut op);
        match &self.inner.batcher {
            Some(b) => b.enqueue(op).await,
            None => {
                if let Err(e) = self.submit(op).await {
                    self.inner.deferred_lock().record(e);
                }
                Ok(())
            }
        }
    }

    /// Barrier: returns when every op queued before it (by any clone of this `Meta`) has a
    /// result, queued releases of open files included ([`Meta::release_file`]). Returns the
    /// first error of deferred ops since the last flush, naming how many failed, and of
    /// queued releases: one dropped since the last flush, or one this flush sent again and
    /// that failed again (a release the background flusher put back in the queue and this
    /// flush sent is not an error).
    pub async fn flush(&self) -> Result<()> {
        if let Err(e) = self.flush_releases().await {
            self.inner
                .deferred_lock()
                .record(e.context_prefix("queued releases"));
        }
        if let Some(b) = &self.inner.batcher {
            b.barrier().await?;
        }
        self.take_deferred()
    }

    /// The first error of deferred ops since the last flush, naming how many failed.
    fn take_deferred(&self) -> Result<()> {
        let mut d = self.inner.deferred_lock();
        let count = std::mem::take(&mut d.count);
        match d.first.take() {
            Some(e) => Err(e.context_prefix(format!("{count} deferred op(s) failed; first"))),
            None => Ok(()),
        }
    }

    /// Flushes, ends the session (its open files are released and its locks dropped, see
    /// [`crate::Op::CloseSession`]), then stops the batcher and the ID-pool prefetch and waits
    /// for their tasks, so that once every clone of this `Meta` is dropped nothing holds the
    /// backend any more (an embedded database can then be reopened at once). Returns the
    /// flush's error (naming how many deferred ops failed), else the session's, if any (a
    /// close of the session that fails for a reason that may pass, `Unavailable`,
    /// `Indeterminate` or `Conflict`, is tried 3 times; a session not closed expires and
    /// another client cleans it up).
    ///
    /// From the moment `close` starts, new work on any clone — ops, deferred ops, explicit
    /// batches, new inode and slice IDs — fails with `Closed` and reaches nothing; every op
    /// accepted before has its result (deferred ones through this flush). Reads still go to
    /// the backend. A second `close` returns `Ok(())` at once.
    pub async fn close(&self) -> Result<()> {
        if self
            .inner
            .closed
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            return Ok(());
        }
        let mut flushed = self.flush().await;
        let ended = self.end_session().await;
        match ended {
            Err(e) if flushed.is_err() => {
                // The flush's error is returned; this one is not lost.
                tracing::warn!("closing the session: {e}");
            }
            ended => {
                if flushed.is_ok() {
                    flushed = ended;
                }
            }
        }
        if let Some(b) = &self.inner.batcher {
            b.close().await?;
        }
        // Deferred ops accepted just before close started were applied by the batcher's
        // close; their errors are reported too.
        if flushed.is_ok() {
            flushed = self.take_deferred();
        }
        self.inner.inodes.close().await;
        self.inner.chunks.close().await;
        flushed
    }

    /// The explicit batch API (bulk import, `rm -r`): applies `ops` in order, in as few
    /// `apply` calls as the batch limits allow (chunks of `batch_size`, one after another), so
    /// an op may depend on an earlier one (mkdir, then create inside). Returns one result per
    /// op, positionally; a batch-level failure is the error of every op of that chunk.
    ///
    /// The batch goes to the backend directly, not through the batcher, so it is not ordered
    /// after ops queued with [`Meta::enqueue`]: call [`Meta::flush`] first when it depends on
    /// them.
    ///
    /// Errors: per op, `Closed` for every op once [`Meta::close`] has started.
    pub async fn apply_batch(&self, mut ops: Vec<Op>) -> Vec<Result<OpOutput>> {
        if let Err(e) = self.check_open() {
            return vec![Err(e); ops.len()];
        }
        for op in &mut ops {
            self.trust(op);
        }
        let mut out = Vec::with_capacity(ops.len());
        for chunk in ops.chunks(self.inner.max_ops) {
            let started = Instant::now();
            let results = apply_recorded(&*self.inner.backend, &self.inner.metrics, chunk).await;
            let secs = started.elapsed().as_secs_f64();
            for (op, r) in chunk.iter().zip(&results) {
                self.inner.metrics.record_op(op.name(), r, secs);
            }
            out.extend(results);
        }
        out
    }

    /// A new inode number from the pool.
    ///
    /// Errors: the pool's refill errors, `Closed` once [`Meta::close`] has started.
    pub async fn new_ino(&self) -> Result<Ino> {
        self.check_open()?;
        Ok(Ino(self.inner.inodes.next().await?))
    }

    /// A new slice (chunk) ID from the pool, for [`Meta::write`].
    ///
    /// Errors: the pool's refill errors, `Closed` once [`Meta::close`] has started.
    pub async fn new_slice_id(&self) -> Result<u64> {
        self.check_open()?;
        self.inner.chunks.next().await
    }

    // ------------------------------------------------------------------------------------------
    // Namespace

    /// Creates an inode of type `typ` named `name` in `parent` (mknod(2)), owned by `caller`.
    /// `mode` is the permission bits (umask applied by the caller). Returns the new inode and
    /// its attributes. Errors: ENOENT, ENOTDIR, EEXIST, EINVAL, ENAMETOOLONG, ENOSPC.
    pub async fn mknod(
        &self,
        caller: Caller,
        parent: Ino,
        name: &[u8],
        typ: FileType,
        mode: u16,
        rdev: u32,
    ) -> Result<(Ino, Attr)> {
        self.create_inode(caller, parent, name, typ, mode, rdev, Vec::new())
            .await
    }

    /// mkdir(2): a directory (nlink 2; the parent's nlink grows by one).
    pub async fn mkdir(
        &self,
        caller: Caller,
        parent: Ino,
        name: &[u8],
        mode: u16,
    ) -> Result<(Ino, Attr)> {
        self.mknod(caller, parent, name, FileType::Directory, mode, 0)
            .await
    }

    /// creat(2): an empty regular file.
    pub async fn create(
        &self,
        caller: Caller,
        parent: Ino,
        name: &[u8],
        mode: u16,
    ) -> Result<(Ino, Attr)> {
        self.mknod(caller, parent, name, FileType::Regular, mode, 0)
            .await
    }

    /// symlink(2): a symlink to `target` (1..=4096 bytes), mode 0777.
    pub async fn symlink(
        &self,
        caller: Caller,
        parent: Ino,
        name: &[u8],
        target: &[u8],
    ) -> Result<(Ino, Attr)> {
        crate::types::validate_symlink_target(target)?;
        self.create_inode(
            caller,
            parent,
            name,
            FileType::Symlink,
            0o777,
            0,
            target.to_vec(),
        )
        .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn create_inode(
        &self,
        caller: Caller,
        parent: Ino,
        name: &[u8],
        typ: FileType,
        mode: u16,
        rdev: u32,
        target: Vec<u8>,
    ) -> Result<(Ino, Attr)> {
        self.make_inode(caller, parent, name, (typ, mode, rdev), target, None)
            .await
    }

    /// Builds and submits a Mknod; `opened_by` opens the new inode for that session.
    async fn make_inode(
        &self,
        caller: Caller,
        parent: Ino,
        name: &[u8],
        (typ, mode, rdev): (FileType, u16, u32),
        target: Vec<u8>,
        opened_by: Option<crate::session::Sid>,
    ) -> Result<(Ino, Attr)> {
        validate_name(name)?;
        let ino = self.new_ino().await?;
        let op = Op::Mknod {
            parent,
            name: name.to_vec(),
            ino,
            typ,
            mode,
            uid: caller.uid,
            gid: caller.gid,
            caller,
            rdev,
            target,
            time: Timespec::now(),
            opened_by,
            imported: None,
        };
        match self.submit(op).await? {
            OpOutput::Entry { ino, attr, .. } => Ok((ino, attr)),
            other => Err(unexpected("mknod", &other)),
        }
    }

    /// link(2): a new name for `ino`. Returns its attributes. Errors: EPERM for a directory,
    /// EACCES without search and write permission on `parent`, ENOENT, EEXIST.
    pub async fn link(&self, caller: Caller, ino: Ino, parent: Ino, name: &[u8]) -> Result<Attr> {
        let op = Op::Link {
            ino,
            parent,
            name: name.to_vec(),
            caller,
            time: Timespec::now(),
        };
        match self.submit(op).await? {
            OpOutput::Entry { attr, .. } => Ok(attr),
            other => Err(unexpected("link", &other)),
        }
    }

    /// unlink(2). Errors: ENOENT, EISDIR, EACCES (no search or write permission on
    /// `parent`), EPERM (sticky directory).
    pub async fn unlink(&self, caller: Caller, parent: Ino, name: &[u8]) -> Result<()> {
        self.submit(Op::Unlink {
            parent,
            name: name.to_vec(),
            caller,
            time: Timespec::now(),
        })
        .await
        .map(drop)
    }

    /// rmdir(2). Errors: ENOENT, ENOTDIR, ENOTEMPTY, EACCES, EPERM (sticky directory).
    pub async fn rmdir(&self, caller: Caller, parent: Ino, name: &[u8]) -> Result<()> {
        self.submit(Op::Rmdir {
            parent,
            name: name.to_vec(),
            caller,
            time: Timespec::now(),
        })
        .await
        .map(drop)
    }

    /// rename(2) / renameat2(2) with `RENAME_NOREPLACE` or `RENAME_EXCHANGE`. Returns the moved
    /// inode and its attributes. Errors: ENOENT, EEXIST, ENOTDIR, EISDIR, ENOTEMPTY, EINVAL
    /// (into own subtree, bad flags), EACCES (no search or write permission on a parent, or on
    /// a directory that moves to another parent), EPERM (sticky).
    pub async fn rename(
        &self,
        caller: Caller,
        parent: Ino,
        name: &[u8],
        new_parent: Ino,
        new_name: &[u8],
        flags: RenameFlags,
    ) -> Result<(Ino, Attr)> {
        let op = Op::Rename {
            parent,
            name: name.to_vec(),
            new_parent,
            new_name: new_name.to_vec(),
            flags,
            caller,
            time: Timespec::now(),
        };
        match self.submit(op).await? {
            OpOutput::Renamed { ino, attr, .. } => Ok((ino, attr)),
            other => Err(unexpected("rename", &other)),
        }
    }

    /// Changes the fields of `ino` selected by `mask`; ctime becomes now. `SIZE` truncates
    /// (regular files only: EISDIR for directories, EINVAL otherwise). Permissions as
    /// [`crate::perm::check_setattr`]: EPERM (chmod, chown, explicit times by another user),
    /// EACCES (truncate or touch without write permission).
    pub async fn setattr(
        &self,
        caller: Caller,
        ino: Ino,
        mask: SetAttrMask,
        values: SetAttrValues,
    ) -> Result<Attr> {
        self.attr_op(Op::SetAttr {
            ino,
            mask,
            values,
            caller,
            time: Timespec::now(),
        })
        .await
    }

    /// truncate(2): sets the length of a regular file, in bytes. EACCES without write
    /// permission; a caller other than root clears setuid/setgid.
    pub async fn truncate(&self, caller: Caller, ino: Ino, length: u64) -> Result<Attr> {
        self.attr_op(Op::Truncate {
            ino,
            length,
            caller,
            time: Timespec::now(),
        })
        .await
    }

    /// Records that `slice` was written to chunk `indx` of regular file `ino` (the data is
    /// already stored under the slice's ID). Extends the length when the write ends past it.
    /// Errors: ENOENT, EISDIR, EINVAL (slice passes the 64 MiB chunk end), ENOSPC. No
    /// permission is checked (open(2) decides it); a caller other than root clears the
    /// setuid bit and the setgid bit with group execute, as write(2).
    pub async fn write(&self, caller: Caller, ino: Ino, indx: u32, slice: Slice) -> Result<Attr> {
        self.attr_op(Op::Write {
            ino,
            indx,
            slice,
            caller,
            time: Timespec::now(),
        })
        .await
    }

    /// Compaction: replaces the slice list of chunk `indx` of regular file `ino` with `slices`
    /// if and only if it is still exactly `expect`; the slice IDs of `expect` not in `slices`
    /// become pending deletion ([`Meta::list_pending`]) in the same atomic op. Length, times
    /// and space used do not change.
    ///
    /// The recipe for the data layer:
    /// 1. read the chunk's list (`expect`) with [`Meta::read`];
    /// 2. read the data it describes (later slices win where they overlap) and write it as one
    ///    new object under a new slice ID (from [`Meta::new_slice_id`] or the data layer's own
    ///    allocator); holes may stay holes (slices with ID 0) or be written as zeros;
    /// 3. call `compact_chunk(ino, indx, expect, vec![new slice(s)])`;
    /// 4. on success, delete the dropped objects as for any pending slice (list them with
    ///    `list_pending`, then [`Meta::clear_pending_slice`]); on `Conflict` (a write or
    ///    another compaction changed the chunk since step 1: nothing changed), delete the new
    ///    object, which nothing refers to, and start again from step 1 or give up.
    ///
    /// A slice ID must live in one chunk only (the data layer writes one object per slice and
    /// chunk), as truncate assumes too: a dropped ID is pending whatever refers to it.
    ///
    /// Errors: `Conflict` (EAGAIN) when the list is not `expect`, ENOENT (no inode), EISDIR
    /// (a directory), EINVAL (another non-file; a new slice passes the 64 MiB chunk end, its
    /// object, or the maximum file length).
    pub async fn compact_chunk(
        &self,
        ino: Ino,
        indx: u32,
        expect: Vec<Slice>,
        slices: Vec<Slice>,
    ) -> Result<()> {
        match self
            .submit(Op::CompactChunk {
                ino,
                indx,
                expect,
                slices,
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                Err(Error::new(ErrorKind::Conflict, e.context().to_string()))
            }
            Err(e) => Err(e),
        }
    }

    async fn attr_op(&self, op: Op) -> Result<Attr> {
        let name = op.name();
        match self.submit(op).await? {
            OpOutput::Attr { attr, .. } => Ok(attr),
            other => Err(unexpected(name, &other)),
        }
    }

    /// setxattr(2). Errors: ENOENT, EEXIST (CREATE), ENODATA (REPLACE), ERANGE (name), E2BIG,
    /// EPERM / EACCES as [`crate::perm::check_xattr_write`].
    pub async fn setxattr(
        &self,
        caller: Caller,
        ino: Ino,
        name: &[u8],
        value: &[u8],
        flags: XattrFlags,
    ) -> Result<()> {
        self.submit(Op::SetXattr {
            ino,
            name: name.to_vec(),
            value: value.to_vec(),
            flags,
            caller,
        })
        .await
        .map(drop)
    }

    /// removexattr(2). Errors: ENOENT, ENODATA, EPERM / EACCES as for setxattr.
    pub async fn removexattr(&self, caller: Caller, ino: Ino, name: &[u8]) -> Result<()> {
        self.submit(Op::RemoveXattr {
            ino,
            name: name.to_vec(),
            caller,
        })
        .await
        .map(drop)
    }

    /// Forgets a deleted file's chunks after the data layer deleted its objects.
    pub async fn clear_pending_file(&self, ino: Ino) -> Result<()> {
        self.submit(Op::ClearPendingFile { ino }).await.map(drop)
    }

    /// Forgets a dropped slice after the data layer deleted its object.
    pub async fn clear_pending_slice(&self, id: u64) -> Result<()> {
        self.submit(Op::ClearPendingSlice { id }).await.map(drop)
    }

    // ------------------------------------------------------------------------------------------
    // Reads (straight to the backend)

    /// access(2): whether `caller` has every permission of `mask` on `ino` (bits of
    /// [`crate::perm::MAY_READ`] 4, [`crate::perm::MAY_WRITE`] 2, [`crate::perm::MAY_EXEC`] 1;
    /// 0 only checks that the inode exists), by [`crate::perm::permits`]. Reads are not checked
    /// by the engine: a gateway calls this before `lookup` (search on the directory),
    /// `readdir` and `read` (read) as the kernel would. With `permissions=false` every caller
    /// passes. Errors: EACCES, ENOENT, EINVAL (inode 0).
    pub async fn access(&self, caller: &Caller, ino: Ino, mask: u32) -> Result<()> {
        let attr = self.getattr(ino).await?;
        if !self.inner.opts.permissions {
            return Ok(());
        }
        crate::perm::check_access(&attr, ino, caller, mask, "access")
    }

    /// lookup: `name` in `parent` (`.` and `..` resolve too). ENOENT, ENOTDIR.
    pub async fn lookup(&self, parent: Ino, name: &[u8]) -> Result<(Ino, Attr)> {
        self.inner.backend.lookup(parent, name).await
    }

    /// getattr. ENOENT.
    pub async fn getattr(&self, ino: Ino) -> Result<Attr> {
        self.inner.backend.get_attr(ino).await
    }

    /// readdir: entries after the cursor name `after`, at most `limit`, with attributes when
    /// `plus`. See [`Backend::read_dir`].
    pub async fn readdir(
        &self,
        ino: Ino,
        after: Option<&[u8]>,
        limit: usize,
        plus: bool,
    ) -> Result<Vec<DirEntry>> {
        self.inner.backend.read_dir(ino, after, limit, plus).await
    }

    /// readlink(2). EINVAL when not a symlink.
    pub async fn readlink(&self, ino: Ino) -> Result<Vec<u8>> {
        self.inner.backend.read_link(ino).await
    }

    /// The slices of chunk `indx` of `ino`, in write order.
    pub async fn read(&self, ino: Ino, indx: u32) -> Result<Vec<Slice>> {
        self.inner.backend.read_chunk(ino, indx).await
    }

    /// getxattr(2). ENOENT, ENODATA.
    pub async fn getxattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        self.inner.backend.get_xattr(ino, name).await
    }

    /// listxattr(2): names in byte order.
    pub async fn listxattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>> {
        self.inner.backend.list_xattr(ino).await
    }

    /// statfs(2) numbers, in bytes and inodes.
    pub async fn statfs(&self) -> Result<Statfs> {
        self.inner.backend.statfs().await
    }

    /// Data awaiting deletion by the data layer, at most `limit` records.
    pub async fn list_pending(&self, limit: usize) -> Result<Vec<Pending>> {
        self.inner.backend.list_pending(limit).await
    }

    /// Resolves a `/`-separated path from the root (no symlink following). ENOENT, ENOTDIR.
    pub async fn resolve(&self, path: &[u8]) -> Result<(Ino, Attr)> {
        let mut cur = (Ino::ROOT, self.getattr(Ino::ROOT).await?);
        for part in path.split(|&b| b == b'/').filter(|p| !p.is_empty()) {
            cur = self.lookup(cur.0, part).await?;
        }
        Ok(cur)
    }
}

impl Inner {
    fn deferred_lock(&self) -> std::sync::MutexGuard<'_, DeferredErrors> {
        self.deferred.lock().unwrap_or_else(|p| p.into_inner())
    }
}
