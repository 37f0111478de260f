//! Open files of a [`Meta`]'s session.
//!
//! **An open or a close costs the backend something only when it matters.** The session
//! keeps a local count of opens per inode:
//!
//! - Only the first open of an inode by this client (count 0 → 1) is an op
//!   ([`Op::Open`]), because another client's unlink decides, inside its atomic op, whether
//!   the inode is still open somewhere. [`Meta::create_open`] records the open inside the
//!   create op itself, so creating and opening a file is one op.
//! - The last release (1 → 0) is queued, not sent: [`Meta::release_file`] returns at once,
//!   and a background flusher sends the session's queued releases as [`Op::Release`]s of
//!   up to [`RELEASE_CHUNK`] inodes (while they are in flight the next ones gather behind
//!   them, as the batcher does with ops). An inode reopened before its release left is
//!   simply taken back from the queue: a close followed by an open costs nothing.
//!   [`Meta::flush`] waits for the queue. A release that failed for a reason that may pass
//!   stays queued, so the next flush sends it again (a release is idempotent; an inode
//!   reopened meanwhile has its open recorded again, since the failed release may have been
//!   applied); the flush reports it, like a deferred op, if its own try fails too. One that
//!   failed otherwise is dropped and reported by the next flush.
//!
//! Until its release reaches the backend, an inode this client closed still counts as open
//! there, so removing its last name keeps it (sustained) and the release then deletes it:
//! deletion is at most delayed, never early. Per inode, the open count is guarded by an
//! async mutex held while the inode's open or release is in flight, so the backend sees one
//! client's opens and releases of an inode in order.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, Weak};

use tracing::warn;

use super::session::lock;
use super::{Inner, Meta};
use crate::error::{Error, ErrorKind, Result};
use crate::op::{Caller, Op};
use crate::session::Sid;
use crate::types::{Attr, FileType, Ino};

/// One inode's local open count (see the module doc).
type OpenCount = Arc<tokio::sync::Mutex<u32>>;

/// A queued release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Queued {
    /// The release drops the session's locks on the inode.
    drop_locks: bool,
    /// An earlier send of this release failed, so the backend may or may not still have the
    /// open: taking it back from the queue records the open again.
    failed: bool,
}

/// The open files of a session.
#[derive(Default)]
pub(super) struct OpenFiles {
    /// Local open counts by inode (count 0: a release is queued or in flight).
    counts: Mutex<HashMap<Ino, OpenCount>>,
    /// Releases queued and not sent yet, by inode.
    queued: Mutex<BTreeMap<Ino, Queued>>,
    /// Wakes the flusher when a release is queued.
    pub(super) wake: Arc<tokio::sync::Notify>,
    /// One flush at a time, so releases reach the backend in the order they were queued.
    flushing: tokio::sync::Mutex<()>,
}

impl OpenFiles {
    /// The inodes this client holds open (count > 0 or a release not sent yet).
    pub(super) fn held(&self) -> Vec<Ino> {
        lock(&self.counts).keys().copied().collect()
    }

    /// Forgets everything (the session is closing: its end releases all it holds).
    pub(super) fn clear(&self) {
        lock(&self.counts).clear();
        lock(&self.queued).clear();
    }

    fn len(&self) -> i64 {
        lock(&self.counts).len() as i64
    }

    /// The count entry of `ino`, locked, and still the one in the table.
    async fn entry(&self, ino: Ino) -> (OpenCount, tokio::sync::OwnedMutexGuard<u32>) {
        loop {
            let entry = lock(&self.counts).entry(ino).or_default().clone();
            let guard = entry.clone().lock_owned().await;
            let current = lock(&self.counts)
                .get(&ino)
                .is_some_and(|e| Arc::ptr_eq(e, &entry));
            if current {
                return (entry, guard);
            }
        }
    }

    /// Removes `entry` from the table if it is still there (call with its guard held).
    fn forget(&self, ino: Ino, entry: &OpenCount) {
        let mut t = lock(&self.counts);
        if t.get(&ino).is_some_and(|e| Arc::ptr_eq(e, entry)) {
            t.remove(&ino);
        }
    }
}

impl Meta {
    fn files(&self) -> Result<&OpenFiles> {
        Ok(&self.state()?.files)
    }

    fn count_open_files(&self) {
        if let Ok(f) = self.files() {
            self.inner.metrics.open_files.set(f.len());
        }
    }

    /// open(2) of `ino` (any type) by this client: records in the session that the inode is
    /// held open, so that removing its last name keeps it ("sustained") until this client
    /// releases it. Only the first open of an inode by this client costs an op, and none
    /// when its release is still queued (see the module doc). Errors: ENOENT when the inode
    /// does not exist, `Unsupported` without a session.
    pub async fn open_file(&self, ino: Ino) -> Result<()> {
        let sid = self.sid()?;
        let files = self.files()?;
        let (entry, mut count) = files.entry(ino).await;
        if *count == 0 {
            let queued = lock(&files.queued).remove(&ino);
            match queued {
                // Taken back from the queue: the backend still has the open (unless a send
                // of the release failed: maybe applied, so the open is recorded again).
                Some(q) => {
                    if q.drop_locks
                        && let Ok(st) = self.state()
                    {
                        lock(&st.locked).insert(ino);
                    }
                    if q.failed
                        && let Err(e) = self.submit(Op::Open { sid, ino }).await
                    {
                        lock(&files.queued).insert(ino, q);
                        return Err(e);
                    }
                }
                None => {
                    if let Err(e) = self.submit(Op::Open { sid, ino }).await {
                        files.forget(ino, &entry);
                        return Err(e);
                    }
                }
            }
        }
        *count += 1;
        drop(count);
        self.count_open_files();
        Ok(())
    }

    /// creat(2) / open(2) with `O_CREAT`: creates a regular file and opens it for this
    /// client in the same op (FUSE `create`). Errors: those of [`Meta::create`], and
    /// `Unsupported` without a session.
    pub async fn create_open(
        &self,
        caller: Caller,
        parent: Ino,
        name: &[u8],
        mode: u16,
    ) -> Result<(Ino, Attr)> {
        let sid = self.sid()?;
        let (ino, attr) = self
            .make_inode(
                caller,
                parent,
                name,
                (FileType::Regular, mode, 0),
                Vec::new(),
                Some(sid),
            )
            .await?;
        let (_, mut count) = self.files()?.entry(ino).await;
        *count += 1;
        drop(count);
        self.count_open_files();
        Ok((ino, attr))
    }

    /// The close(2) of one open. When it was this client's last open of `ino`, the release
    /// is queued and sent in the background (see the module doc): the backend then forgets
    /// the open (dropping this session's locks on the inode), and a sustained inode no other
    /// session holds is deleted, its data becoming pending deletion. [`Meta::flush`] waits
    /// until queued releases are applied. Errors: ENOENT when this client does not hold
    /// `ino` open, `Unsupported` without a session.
    pub async fn release_file(&self, ino: Ino) -> Result<()> {
        self.sid()?;
        let files = self.files()?;
        let (entry, mut count) = files.entry(ino).await;
        if *count == 0 {
            if !lock(&files.queued).contains_key(&ino) {
                files.forget(ino, &entry);
            }
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("release of inode {ino}: this client does not hold it open"),
            ));
        }
        *count -= 1;
        if *count == 0 {
            let drop_locks = self.state().is_ok_and(|st| lock(&st.locked).remove(&ino));
            lock(&files.queued).insert(
                ino,
                Queued {
                    drop_locks,
                    failed: false,
                },
            );
            files.wake.notify_one();
        }
        Ok(())
    }

    /// How many opens of `ino` this client holds (0 when none, or only a queued release).
    /// Waits while an open or release of `ino` is in flight, and counts it once it is done.
    pub async fn open_count(&self, ino: Ino) -> u32 {
        let Ok(files) = self.files() else { return 0 };
        let entry = lock(&files.counts).get(&ino).cloned();
        match entry {
            Some(e) => *e.lock().await,
            None => 0,
        }
    }

    /// Sends every queued release, [`RELEASE_CHUNK`] inodes per op, and waits for them (see
    /// the module doc). A release that fails for a reason that may pass (`Unavailable`,
    /// `Indeterminate`, `Conflict`) goes back to the queue (a release is idempotent), so the
    /// next flush sends it again; one that fails otherwise is dropped (its open stays on the
    /// backend until the session ends). The first error is returned, a dropped release's
    /// before a re-queued one's.
    pub(super) async fn flush_releases(&self) -> Result<()> {
        let failed = self.send_queued_releases().await;
        match (failed.dropped, failed.requeued) {
            (Some(e), _) | (None, Some(e)) => Err(e),
            (None, None) => Ok(()),
        }
    }

    /// [`Meta::flush_releases`]'s work: the first error of a release dropped and of one put
    /// back in the queue.
    async fn send_queued_releases(&self) -> FailedReleases {
        let mut failed = FailedReleases::default();
        let Some(st) = &self.inner.session else {
            return failed;
        };
        let files = &st.files;
        let _turn = files.flushing.lock().await;
        let queued = std::mem::take(&mut *lock(&files.queued));
        if queued.is_empty() {
            return failed;
        }
        let sid = match self.sid() {
            Ok(sid) => sid,
            Err(e) => {
                failed.dropped = Some(e);
                return failed;
            }
        };
        // Lock each entry (in inode order) and keep those still released: an inode reopened
        // after the queue was taken has a count again, or a new entry, and its open stays; if
        // its release was to drop this session's locks, its next release must do it. An
        // entry forgotten meanwhile (an open that failed) is put back: the backend may still
        // have the open this release forgets.
        let mut held = Vec::with_capacity(queued.len());
        for (ino, q) in queued {
            let entry = lock(&files.counts).entry(ino).or_default().clone();
            let guard = entry.clone().lock_owned().await;
            let current = {
                let mut t = lock(&files.counts);
                Arc::ptr_eq(t.entry(ino).or_insert_with(|| entry.clone()), &entry)
            };
            if *guard == 0 && current {
                held.push((ino, q, entry, guard));
            } else if q.drop_locks {
                lock(&st.locked).insert(ino);
            }
        }
        let inos: Vec<(Ino, bool)> = held.iter().map(|(i, q, ..)| (*i, q.drop_locks)).collect();
        for (ino, e) in self.send_releases(sid, &inos).await {
            if e.kind().may_pass()
                && let Some((_, q, ..)) = held.iter().find(|h| h.0 == ino)
            {
                let again = Queued { failed: true, ..*q };
                lock(&files.queued).entry(ino).or_insert(again);
                failed.requeued.get_or_insert(e);
            } else {
                failed.dropped.get_or_insert(e);
            }
        }
        // Which held inodes went back to the queue (one lookup each, not a copy of the queue).
        let requeued: Vec<bool> = {
            let q = lock(&files.queued);
            held.iter().map(|h| q.contains_key(&h.0)).collect()
        };
        for ((ino, _, entry, guard), again) in held.into_iter().zip(requeued) {
            if !again {
                files.forget(ino, &entry);
            }
            drop(guard);
        }
        self.count_open_files();
        failed
    }

    /// Sends the releases of `inos` (inode, drop this session's locks on it) as
    /// [`Op::Release`]s of up to [`RELEASE_CHUNK`] inodes, together (the batcher puts them in
    /// one batch where the backend takes them; each is atomic on its own). An op the store
    /// refuses as too large for one transaction (`Unsupported`: etcd's operations per
    /// transaction, which xattrs and locks of the inodes fill) is split in halves and sent
    /// again. Returns the inodes whose release failed, each with its error.
    pub(super) async fn send_releases(&self, sid: Sid, inos: &[(Ino, bool)]) -> Vec<(Ino, Error)> {
        let mut groups: Vec<Vec<(Ino, bool)>> =
            inos.chunks(RELEASE_CHUNK).map(<[_]>::to_vec).collect();
        let mut failed = Vec::new();
        while !groups.is_empty() {
            let sends = groups.iter().map(|g| {
                self.submit_unchecked(Op::Release {
                    sid,
                    inos: g.clone(),
                })
            });
            let results = futures::future::join_all(sends).await;
            let mut again = Vec::new();
            for (g, r) in groups.into_iter().zip(results) {
                match r {
                    Ok(_) => {}
                    Err(e) if e.kind() == ErrorKind::Unsupported && g.len() > 1 => {
                        let (a, b) = g.split_at(g.len() / 2);
                        again.extend([a.to_vec(), b.to_vec()]);
                    }
                    Err(e) => failed.extend(g.iter().map(|&(ino, _)| (ino, e.clone()))),
                }
            }
            groups = again;
        }
        failed
    }
}

/// Inodes per [`Op::Release`]: a release of an inode whose last link is gone deletes it
/// (≈ 5 keys checked and written on a KV store, more with xattrs and locks), so 16 keep one
/// op inside etcd's default of 128 operations per transaction (`--max-txn-ops`) in the
/// common case; [`Meta::send_releases`] splits an op the store still refuses.
pub(super) const RELEASE_CHUNK: usize = 16;

/// The first errors of one [`Meta::flush_releases`] pass.
#[derive(Default)]
struct FailedReleases {
    /// Of a release dropped (its open stays on the backend until the session ends).
    dropped: Option<Error>,
    /// Of a release put back in the queue (the next flush sends it again).
    requeued: Option<Error>,
}

/// Sends queued releases whenever some are queued, until the `Meta` is closed or every
/// clone of it is dropped. A release that failed and was dropped is logged and its error
/// kept for the next [`Meta::flush`], like a deferred op's; one put back in the queue is
/// only logged: that flush sends it again and reports it if it fails again.
pub(super) async fn flusher_loop(
    weak: Weak<Inner>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    wake: Arc<tokio::sync::Notify>,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = wake.notified() => {}
        }
        let Some(inner) = weak.upgrade() else { return };
        let meta = Meta { inner };
        let failed = meta.send_queued_releases().await;
        if let Some(e) = failed.requeued {
            warn!("queued releases failed, to be sent again: {e}");
        }
        if let Some(e) = failed.dropped {
            warn!("queued releases failed: {e}");
            meta.inner
                .deferred_lock()
                .record(e.context_prefix("queued releases"));
        }
    }
}
