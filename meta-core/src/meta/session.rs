//! The session of a [`Meta`]: registration, heartbeat, cleanup of expired sessions and locks
//! (see [`crate::session`] for the model); open files are in `open.rs`.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tracing::{debug, warn};

use super::{Inner, Meta};
use crate::error::{Error, ErrorKind, Result};
use crate::op::Op;
use crate::options::MISSED_HEARTBEATS;
use crate::session::{
    LockOwner, LockType, PlockRange, Session, SessionHoldings, SessionInfo, Sid, check_range,
    plock_conflict,
};
use crate::types::{IdKind, Ino, Timespec};

/// First pause of the blocking lock helpers; it doubles up to [`MAX_LOCK_PAUSE`].
const FIRST_LOCK_PAUSE: Duration = Duration::from_millis(1);
/// Longest pause between two attempts of the blocking lock helpers.
const MAX_LOCK_PAUSE: Duration = Duration::from_millis(100);

/// The session part of a `Meta`.
pub(super) struct SessionState {
    /// The session ID; 0 until registered.
    sid: AtomicU64,
    /// Open files (see `open.rs`).
    pub(super) files: super::open::OpenFiles,
    /// Inodes this client took a lock on: their last release drops the session's locks
    /// (`Op::Release`'s `drop_locks`).
    pub(super) locked: Mutex<HashSet<Ino>>,
    /// Stops the background tasks (heartbeat, release flusher). They hold no strong
    /// reference to the `Meta` while they wait, so dropping every clone stops them too.
    stop: tokio::sync::watch::Sender<bool>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl Default for SessionState {
    fn default() -> Self {
        SessionState {
            sid: AtomicU64::new(0),
            files: Default::default(),
            locked: Mutex::default(),
            stop: tokio::sync::watch::channel(false).0,
            tasks: Mutex::default(),
        }
    }
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

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
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
    pub(super) fn state(&self) -> Result<&SessionState> {
        self.inner.session.as_ref().ok_or_else(no_session)
    }

    /// This client's session ID, `None` without a session (or before it is registered).
    pub fn session_id(&self) -> Option<Sid> {
        let sid = self.inner.session.as_ref()?.sid.load(Ordering::Acquire);
        (sid != 0).then_some(sid)
    }

    pub(super) fn sid(&self) -> Result<Sid> {
        self.session_id().ok_or_else(no_session)
    }

    /// Registers the session and starts the heartbeat and the release flusher.
    pub(super) async fn start_session(&self) -> Result<()> {
        self.register().await?;
        let st = self.state()?;
        let weak = Arc::downgrade(&self.inner);
        let period = self.inner.opts.heartbeat;
        let beats = tokio::spawn(heartbeat_loop(weak.clone(), st.stop.subscribe(), period));
        let flusher = tokio::spawn(super::open::flusher_loop(
            weak,
            st.stop.subscribe(),
            st.files.wake.clone(),
        ));
        lock(&st.tasks).extend([beats, flusher]);
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
            // Meta::close has started: it ends the session itself.
            Err(e) if e.kind() == ErrorKind::Closed => return,
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
        let inos = self.state()?.files.held();
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
        let _ = st.stop.send(true);
        let tasks = std::mem::take(&mut *lock(&st.tasks));
        for t in tasks {
            let _ = t.await;
        }
        let sid = st.sid.swap(0, Ordering::AcqRel);
        // Closing the session releases everything it holds, queued releases included.
        let held = st.files.held();
        st.files.clear();
        self.inner.metrics.open_files.set(0);
        if sid == 0 {
            return Ok(());
        }
        // What is still open goes first, in releases of a few inodes each: the close would
        // release it all in one op, which a store with a limit per transaction (etcd: 128
        // operations) refuses for a session holding many files. A failed release is left to
        // the close.
        let inos: Vec<(Ino, bool)> = held.into_iter().map(|i| (i, true)).collect();
        if let Some((ino, e)) = self.send_releases(sid, &inos).await.first() {
            warn!(
                sid,
                ino = ino.0,
                "releasing open files before the session's close: {e}"
            );
        }
        // A failure that may pass is tried again (a close that was applied although its
        // answer was lost finds the session gone: NotFound, which is success here).
        let mut tries = 1;
        loop {
            let r = self.close_session_op(sid, None).await;
            match r {
                Ok(_) => return Ok(()),
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                Err(e) if tries < CLOSE_TRIES && e.kind().may_pass() => {
                    warn!(
                        sid,
                        "closing the session (try {tries} of {CLOSE_TRIES}): {e}"
                    );
                    tokio::time::sleep(CLOSE_RETRY_PAUSE * tries).await;
                    tries += 1;
                }
                Err(e) => return Err(e.context_prefix("close session")),
            }
        }
    }

    /// Cleans up every session of the volume that expired (other than this client's): each
    /// in one atomic op that releases its open files and drops its locks (or, on a store
    /// that refuses that op as too large, in parts of up to 16, fenced at the first: see
    /// [`Op::CloseSession`]'s `at_most`),
    /// re-checking the expiry inside the op. Returns the sessions cleaned. The heartbeat
    /// calls this when it wins the cleanup lease ([`Op::ClaimCleanup`]); an explicit call
    /// does not take the lease. Errors: those of the backend (a session cleaned by another
    /// client meanwhile is skipped; one that fails is logged and the others are still
    /// cleaned, then the first failure is returned).
    pub async fn clean_expired_sessions(&self) -> Result<Vec<Sid>> {
        let now = Timespec::now();
        let own = self.session_id();
        let mut cleaned = Vec::new();
        let mut first_err = None;
        for s in self.inner.backend.list_sessions().await? {
            let sid = s.info.sid;
            if Some(sid) == own || s.expire >= now {
                continue;
            }
            match self.close_session_op(sid, Some(now)).await {
                Ok(_) => cleaned.push(sid),
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::WouldBlock) => {}
                // One session that cannot be cleaned does not hold up the others.
                Err(e) => {
                    warn!(sid, "cannot clean up the expired session: {e}");
                    first_err.get_or_insert(e.context_prefix(format!("clean up session {sid}")));
                }
            }
        }
        first_err.map_or(Ok(cleaned), Err)
    }

    /// Closes session `sid` ([`Op::CloseSession`], expired before `expired_before` when
    /// given): in one op, or, when the store refuses that op as too large for one transaction
    /// (`Unsupported`: etcd's `--max-txn-ops`, which a session holding a few dozen files
    /// with xattrs passes), in parts of at most [`CLOSE_PART`] open inodes and locks each,
    /// halved while a part is still refused, until a part finds the session gone. The first
    /// part fences the session, so its client, should it come back, finds it gone rather
    /// than half-released. Errors: the first op's (ENOENT when the session does not exist,
    /// EAGAIN when it has not expired), a part's, or `Unsupported` when even a part of one
    /// is refused or the parts do not end (more than [`CLOSE_PARTS_MAX`]).
    async fn close_session_op(&self, sid: Sid, expired_before: Option<Timespec>) -> Result<()> {
        let close = |at_most| Op::CloseSession {
            sid,
            expired_before,
            at_most,
        };
        // (The engine's own close runs while `Meta::close` refuses new ops.)
        let own = expired_before.is_none();
        let send = |op| async move {
            if own {
                self.submit_unchecked(op).await
            } else {
                self.submit(op).await
            }
        };
        match send(close(None)).await {
            Err(e) if e.kind() == ErrorKind::Unsupported => {
                debug!(sid, "closing the session in parts: {e}");
            }
            r => return r.map(|_| ()),
        }
        let mut part = CLOSE_PART;
        for _ in 0..CLOSE_PARTS_MAX {
            match send(close(NonZeroU32::new(part))).await {
                Ok(_) => {}
                // The last part deleted the session (or a cleanup elsewhere finished it).
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
                Err(e) if e.kind() == ErrorKind::Unsupported && part > 1 => part /= 2,
                Err(e) => return Err(e.context_prefix(format!("close in parts of {part}"))),
            }
        }
        Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "session {sid} still holds files or locks after {CLOSE_PARTS_MAX} parts of its close"
            ),
        ))
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
        self.note_lock(ino, typ);
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
        self.note_lock(ino, req.typ);
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

    /// Remembers that this client may hold a lock on `ino` (noted before the request, so a
    /// release racing with it errs on the side of looking for locks).
    fn note_lock(&self, ino: Ino, typ: LockType) {
        if typ != LockType::Unlock
            && let Some(st) = &self.inner.session
        {
            lock(&st.locked).insert(ino);
        }
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
async fn heartbeat_loop(
    weak: Weak<Inner>,
    mut stop: tokio::sync::watch::Receiver<bool>,
    period: Duration,
) {
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(period) => {}
        }
        let Some(inner) = weak.upgrade() else { return };
        Meta { inner }.beat().await;
    }
}

/// Tries of a session's close ([`Meta::close`]) that fails for a reason that may pass
/// (`Unavailable`, `Indeterminate`, `Conflict`); past them the session is left to expire and
/// be cleaned up by another client.
const CLOSE_TRIES: u32 = 3;
/// Open inodes and locks released per part of a session's close in parts
/// ([`Meta::close_session_op`]) at first: 16 releases fit etcd's default of 128 operations per
/// transaction in the common case, as [`super::open::RELEASE_CHUNK`] says.
const CLOSE_PART: u32 = 16;
/// Most parts of one session's close in parts: a million open inodes and locks at 16 per
/// part, far more than a client holds; what is still left then (a client that keeps adding
/// to a fenced session) is an error rather than an endless loop.
const CLOSE_PARTS_MAX: u32 = 65_536;
/// Pause before the second try of a session's close; the third waits twice as long.
const CLOSE_RETRY_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);
