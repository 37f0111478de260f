//! The session of a [`Meta`]: registration, heartbeat, cleanup of expired sessions, open
//! files and locks (see [`crate::session`] for the model).
//!
//! **Open files cost a round trip only when it matters.** The session keeps a local count of
//! opens per inode; only the first open of an inode by this client (count 0 → 1) and the last
//! release (1 → 0) reach the backend, each as one op that shares a batch with whatever else is
//! in flight, and [`Meta::create_open`] records the open inside the create op itself. So a
//! file opened by many processes of one client, or reopened while still open, costs nothing
//! more, and a create + close costs one extra op (the release). The backend must know about
//! the first open, because another client's unlink decides inside its atomic op whether the
//! inode is still open somewhere.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tracing::{debug, warn};

use super::{Inner, Meta};
use crate::error::{Error, ErrorKind, Result};
use crate::op::{Caller, Op};
use crate::options::MISSED_HEARTBEATS;
use crate::session::{
    LockOwner, LockType, PlockRange, Session, SessionHoldings, SessionInfo, Sid, check_range,
    plock_conflict,
};
use crate::types::{Attr, FileType, IdKind, Ino, Timespec};

/// First pause of the blocking lock helpers; it doubles up to [`MAX_LOCK_PAUSE`].
const FIRST_LOCK_PAUSE: Duration = Duration::from_millis(1);
/// Longest pause between two attempts of the blocking lock helpers.
const MAX_LOCK_PAUSE: Duration = Duration::from_millis(100);

/// One inode's local open count, locked while its open or release op is in flight so that the
/// backend sees this client's opens and releases of the inode in order.
type OpenCount = Arc<tokio::sync::Mutex<u32>>;

/// The session part of a `Meta`.
#[derive(Default)]
pub(super) struct SessionState {
    /// The session ID; 0 until registered.
    sid: AtomicU64,
    /// Local open counts by inode.
    opens: Mutex<HashMap<Ino, OpenCount>>,
    /// Stops the heartbeat task (shared with it: the task holds no strong reference to the
    /// `Meta` while it sleeps, so dropping every clone stops it too).
    stop: Arc<tokio::sync::Notify>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// A byte-range lock request (fcntl(2) `struct flock`, with an inclusive end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlockRequest {
    /// `Read` (`F_RDLCK`), `Write` (`F_WRLCK`) or `Unlock` (`F_UNLCK`).
    pub typ: LockType,
    /// First byte, inclusive.
    pub start: u64,
    /// Last byte, inclusive (`u64::MAX`: to the end of the file).
    pub end: u64,
    /// The requesting process (what `F_GETLK` reports to others).
    pub pid: u32,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn no_session() -> Error {
    Error::new(
        ErrorKind::Unsupported,
        "this Meta was opened without a session (session=0): open files and locks need one",
    )
}

fn expire_after(heartbeat: Duration) -> Timespec {
    let now = Timespec::now();
    let ttl = heartbeat * MISSED_HEARTBEATS;
    let nsec = u64::from(now.nsec) + u64::from(ttl.subsec_nanos());
    Timespec {
        sec: now
            .sec
            .saturating_add(ttl.as_secs() as i64)
            .saturating_add((nsec / 1_000_000_000) as i64),
        nsec: (nsec % 1_000_000_000) as u32,
    }
}

fn now_ms() -> i64 {
    let t = Timespec::now();
    t.sec.saturating_mul(1000) + i64::from(t.nsec / 1_000_000)
}

impl Meta {
    fn state(&self) -> Result<&SessionState> {
        self.inner.session.as_ref().ok_or_else(no_session)
    }

    /// This client's session ID, `None` without a session (or before it is registered).
    pub fn session_id(&self) -> Option<Sid> {
        let sid = self.inner.session.as_ref()?.sid.load(Ordering::Acquire);
        (sid != 0).then_some(sid)
    }

    fn sid(&self) -> Result<Sid> {
        self.session_id().ok_or_else(no_session)
    }

    /// Registers the session and starts the heartbeat.
    pub(super) async fn start_session(&self) -> Result<()> {
        self.register().await?;
        let st = self.state()?;
        let weak = Arc::downgrade(&self.inner);
        let period = self.inner.opts.heartbeat;
        let task = tokio::spawn(heartbeat_loop(weak, st.stop.clone(), period));
        *lock(&st.task) = Some(task);
        Ok(())
    }

    /// Reserves a session ID and stores the session record.
    async fn register(&self) -> Result<Sid> {
        let st = self.state()?;
        let mut sid = 0;
        while sid == 0 {
            sid = self
                .inner
                .backend
                .reserve_ids(IdKind::Session, 1)
                .await?
                .start;
        }
        let info = SessionInfo::this_process(sid, self.inner.opts.session_label.clone());
        let expire = expire_after(self.inner.opts.heartbeat);
        self.submit(Op::OpenSession {
            info: Box::new(info),
            expire,
        })
        .await?;
        st.sid.store(sid, Ordering::Release);
        debug!(sid, "session registered");
        Ok(sid)
    }

    /// One heartbeat: moves the expiry on (registering anew if another client cleaned the
    /// session up meanwhile), then, if this client wins the cleanup lease, cleans up
    /// expired sessions.
    async fn beat(&self) {
        let Ok(sid) = self.sid() else { return };
        let expire = expire_after(self.inner.opts.heartbeat);
        match self.submit(Op::Heartbeat { sid, expire }).await {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                warn!(
                    sid,
                    "session was cleaned up by another client (heartbeats missed); registering \
                     a new one: inodes this client had open may have been deleted and its \
                     locks are gone"
                );
                if let Err(e) = self.reopen_after_loss().await {
                    warn!("cannot register a new session: {e}");
                }
            }
            Err(e) => warn!(sid, "heartbeat failed: {e}"),
        }
        let every_ms = self.inner.opts.heartbeat.as_millis() as i64;
        let claimed = self
            .submit(Op::ClaimCleanup {
                now_ms: now_ms(),
                every_ms: every_ms.max(1),
            })
            .await;
        if claimed.is_ok() {
            match self.clean_expired_sessions().await {
                Ok(cleaned) if !cleaned.is_empty() => {
                    debug!(?cleaned, "cleaned up expired sessions")
                }
                Ok(_) => {}
                Err(e) => warn!("session cleanup failed: {e}"),
            }
        }
        if let Ok(all) = self.inner.backend.list_sessions().await {
            self.inner.metrics.sessions.set(all.len() as i64);
        }
    }

    /// After the session was lost: a new session, and the inodes still open here opened again
    /// (those that still exist).
    async fn reopen_after_loss(&self) -> Result<()> {
        let sid = self.register().await?;
        let inos: Vec<Ino> = lock(&self.state()?.opens).keys().copied().collect();
        for ino in inos {
            if let Err(e) = self.submit(Op::Open { sid, ino }).await {
                warn!(
                    sid,
                    ino = ino.0,
                    "cannot open again after the session loss: {e}"
                );
            }
        }
        Ok(())
    }

    /// Stops the heartbeat and closes the session (called by [`Meta::close`]). A session
    /// already cleaned up by another client is not an error.
    pub(super) async fn end_session(&self) -> Result<()> {
        let Some(st) = &self.inner.session else {
            return Ok(());
        };
        st.stop.notify_one();
        let task = lock(&st.task).take();
        if let Some(t) = task {
            let _ = t.await;
        }
        let sid = st.sid.swap(0, Ordering::AcqRel);
        lock(&st.opens).clear();
        self.inner.metrics.open_files.set(0);
        if sid == 0 {
            return Ok(());
        }
        match self
            .submit(Op::CloseSession {
                sid,
                expired_before: None,
            })
            .await
        {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e.context_prefix("close session")),
            _ => Ok(()),
        }
    }

    /// Cleans up every session of the volume that expired (other than this client's): each
    /// in one atomic op that releases its open files and drops its locks, re-checking the
    /// expiry inside the op. Returns the sessions cleaned. The heartbeat calls this when it
    /// wins the cleanup lease ([`Op::ClaimCleanup`]); an explicit call does not take the
    /// lease. Errors: those of the backend (a session cleaned by another client meanwhile is
    /// skipped).
    pub async fn clean_expired_sessions(&self) -> Result<Vec<Sid>> {
        let now = Timespec::now();
        let own = self.session_id();
        let mut cleaned = Vec::new();
        for s in self.inner.backend.list_sessions().await? {
            let sid = s.info.sid;
            if Some(sid) == own || s.expire >= now {
                continue;
            }
            match self
                .submit(Op::CloseSession {
                    sid,
                    expired_before: Some(now),
                })
                .await
            {
                Ok(_) => cleaned.push(sid),
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::WouldBlock) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(cleaned)
    }

    /// Every session of the volume (expired ones not yet cleaned up included).
    pub async fn sessions(&self) -> Result<Vec<Session>> {
        self.inner.backend.list_sessions().await
    }

    /// What session `sid` holds (open inodes, locks). ENOENT when it does not exist.
    pub async fn session_holdings(&self, sid: Sid) -> Result<SessionHoldings> {
        self.inner.backend.session_holdings(sid).await
    }

    // ------------------------------------------------------------------------------------------
    // Open files

    /// The local count entry of `ino`, locked, and still the one in the table.
    async fn open_entry(&self, ino: Ino) -> Result<(OpenCount, tokio::sync::OwnedMutexGuard<u32>)> {
        let st = self.state()?;
        loop {
            let entry = lock(&st.opens).entry(ino).or_default().clone();
            let guard = entry.clone().lock_owned().await;
            let current = lock(&st.opens)
                .get(&ino)
                .is_some_and(|e| Arc::ptr_eq(e, &entry));
            if current {
                return Ok((entry, guard));
            }
        }
    }

    fn forget_entry(&self, ino: Ino, entry: &OpenCount) {
        if let Some(st) = &self.inner.session {
            let mut t = lock(&st.opens);
            if t.get(&ino).is_some_and(|e| Arc::ptr_eq(e, entry)) {
                t.remove(&ino);
            }
            self.inner.metrics.open_files.set(t.len() as i64);
        }
    }

    /// open(2) of `ino` (any type) by this client: records in the session that the inode is
    /// held open, so that removing its last name keeps it ("sustained") until this client
    /// releases it. Only the first open of an inode by this client costs an op (see the
    /// module doc). Errors: ENOENT when the inode does not exist, `Unsupported` without a
    /// session.
    pub async fn open_file(&self, ino: Ino) -> Result<()> {
        let sid = self.sid()?;
        let (entry, mut count) = self.open_entry(ino).await?;
        if *count == 0 {
            let r = self.submit(Op::Open { sid, ino }).await;
            if let Err(e) = r {
                drop(count);
                self.forget_entry(ino, &entry);
                return Err(e);
            }
        }
        *count += 1;
        drop(count);
        if let Some(st) = &self.inner.session {
            self.inner
                .metrics
                .open_files
                .set(lock(&st.opens).len() as i64);
        }
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
        let (_, mut count) = self.open_entry(ino).await?;
        *count += 1;
        drop(count);
        if let Some(st) = &self.inner.session {
            self.inner
                .metrics
                .open_files
                .set(lock(&st.opens).len() as i64);
        }
        Ok((ino, attr))
    }

    /// The last close(2) of one open: when it was this client's last open of `ino`, the
    /// backend forgets the open (dropping this session's locks on the inode), and a sustained
    /// inode no other session holds is deleted, its data becoming pending deletion. Errors:
    /// ENOENT when this client does not hold `ino` open, `Unsupported` without a session.
    pub async fn release_file(&self, ino: Ino) -> Result<()> {
        let sid = self.sid()?;
        let (entry, mut count) = self.open_entry(ino).await?;
        if *count == 0 {
            drop(count);
            self.forget_entry(ino, &entry);
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("release of inode {ino}: this client does not hold it open"),
            ));
        }
        *count -= 1;
        let r = if *count == 0 {
            match self.submit(Op::Release { sid, ino }).await {
                Ok(_) => Ok(()),
                Err(e) => Err(e.context_prefix(format!("release of inode {ino}"))),
            }
        } else {
            Ok(())
        };
        let last = *count == 0;
        drop(count);
        if last {
            self.forget_entry(ino, &entry);
        }
        r
    }

    /// How many opens of `ino` this client holds (0 when none).
    pub fn open_count(&self, ino: Ino) -> u32 {
        let Some(st) = &self.inner.session else {
            return 0;
        };
        let entry = lock(&st.opens).get(&ino).cloned();
        entry
            .and_then(|e| e.try_lock().ok().map(|c| *c))
            .unwrap_or(0)
    }

    // ------------------------------------------------------------------------------------------
    // Locks

    /// flock(2) with `LOCK_NB`: sets the lock of `owner` (e.g. FUSE's `lock_owner`) in this
    /// session on `ino` to `typ`. Errors: EAGAIN (`WouldBlock`) when another owner holds a
    /// conflicting lock, ENOENT when the inode does not exist, `Unsupported` without a
    /// session.
    pub async fn flock(&self, ino: Ino, owner: u64, typ: LockType) -> Result<()> {
        let owner = LockOwner {
            sid: self.sid()?,
            owner,
        };
        self.submit(Op::Flock { ino, owner, typ }).await.map(drop)
    }

    /// flock(2) without `LOCK_NB`: retries [`Meta::flock`] while it fails with EAGAIN,
    /// pausing 1 ms, then twice as long each time up to 100 ms (each retry counts in
    /// `meta_lock_waits_total`), until it succeeds or `timeout` passes (then EAGAIN). A
    /// caller that must stop waiting drops the future.
    pub async fn flock_wait(
        &self,
        ino: Ino,
        owner: u64,
        typ: LockType,
        timeout: Option<Duration>,
    ) -> Result<()> {
        self.wait_for_lock(timeout, || self.flock(ino, owner, typ))
            .await
    }

    /// fcntl(2) `F_SETLK`: sets the byte-range locks of `owner` in this session over
    /// `req.start..=req.end` to `req.typ`, splitting and merging its ranges. Errors: EAGAIN
    /// when another owner holds a conflicting range, EINVAL when `start > end`, ENOENT when
    /// the inode does not exist, `Unsupported` without a session.
    pub async fn setlk(&self, ino: Ino, owner: u64, req: PlockRequest) -> Result<()> {
        check_range(req.start, req.end)?;
        let owner = LockOwner {
            sid: self.sid()?,
            owner,
        };
        self.submit(Op::Setlk {
            ino,
            owner,
            typ: req.typ,
            start: req.start,
            end: req.end,
            pid: req.pid,
        })
        .await
        .map(drop)
    }

    /// fcntl(2) `F_SETLKW`: retries [`Meta::setlk`] as [`Meta::flock_wait`] does.
    pub async fn setlk_wait(
        &self,
        ino: Ino,
        owner: u64,
        req: PlockRequest,
        timeout: Option<Duration>,
    ) -> Result<()> {
        self.wait_for_lock(timeout, || self.setlk(ino, owner, req))
            .await
    }

    /// fcntl(2) `F_GETLK`: the first byte-range lock of another owner (any session) that
    /// would block `req` by `owner` of this session, or `None` when it would be granted.
    /// Errors: EINVAL when `start > end`, ENOENT when the inode does not exist,
    /// `Unsupported` without a session.
    pub async fn getlk(
        &self,
        ino: Ino,
        owner: u64,
        req: PlockRequest,
    ) -> Result<Option<(LockOwner, PlockRange)>> {
        check_range(req.start, req.end)?;
        let me = LockOwner {
            sid: self.sid()?,
            owner,
        };
        let locks = self.inner.backend.list_locks(ino).await?;
        Ok(plock_conflict(
            &locks.plocks,
            me,
            req.typ,
            req.start,
            req.end,
        ))
    }

    /// The locks on `ino` (flocks and byte-range locks of every session).
    pub async fn locks(&self, ino: Ino) -> Result<crate::session::InodeLocks> {
        self.inner.backend.list_locks(ino).await
    }

    async fn wait_for_lock<F, Fut>(&self, timeout: Option<Duration>, mut attempt: F) -> Result<()>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<()>>,
    {
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut pause = FIRST_LOCK_PAUSE;
        loop {
            match attempt().await {
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if deadline.is_some_and(|d| tokio::time::Instant::now() + pause > d) {
                        return Err(e.context_prefix("gave up waiting for the lock"));
                    }
                    self.inner.metrics.lock_waits.inc();
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_LOCK_PAUSE);
                }
                r => return r,
            }
        }
    }
}

/// Beats every `period` until the `Meta` is closed or every clone of it is dropped.
async fn heartbeat_loop(weak: Weak<Inner>, stop: Arc<tokio::sync::Notify>, period: Duration) {
    loop {
        tokio::select! {
            _ = stop.notified() => return,
            _ = tokio::time::sleep(period) => {}
        }
        let Some(inner) = weak.upgrade() else { return };
        Meta { inner }.beat().await;
    }
}
