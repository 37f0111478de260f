//! The ops of sessions, open files and locks (see [`crate::session`] for the model), over the
//! same transaction view as the namespace ops, so every backend that runs Rust-side logic
//! decides them inside its atomic batch. Sources: flock(2), fcntl(2) (`F_SETLK`, `F_GETLK`),
//! unlink(2) ("if any process still has the file open, the file will remain in existence
//! until the last file descriptor referring to it is closed").

use super::checks::existing_attr;
use super::{TxnView, delete_inode};
use crate::error::{Result, err};
use crate::op::OpOutput;
use crate::session::{
    LockKind, LockOwner, LockType, Session, SessionHoldings, SessionInfo, Sid, flock_decision,
    setlk_decision,
};
use crate::types::{Counter, Ino, Timespec};

fn no_session(sid: Sid) -> crate::error::Error {
    err::not_found(format!(
        "session {sid} does not exist (closed, or cleaned up after it expired)"
    ))
}

/// The session `sid`; ENOENT when it does not exist (never registered, closed, or cleaned up
/// after it expired).
async fn session_record<V: TxnView + ?Sized>(v: &mut V, sid: Sid) -> Result<Session> {
    v.get_session(sid).await?.ok_or_else(|| no_session(sid))
}

/// ENOENT unless session `sid` exists and is not fenced (for ops that add a record belonging
/// to it: a session whose close in parts has begun takes none, so the parts end and its
/// client learns at once that the session is gone).
pub(super) async fn live_session<V: TxnView + ?Sized>(v: &mut V, sid: Sid) -> Result<()> {
    if v.has_session(sid).await? {
        Ok(())
    } else {
        Err(no_session(sid))
    }
}

pub(super) async fn open_session<V: TxnView + ?Sized>(
    v: &mut V,
    info: &SessionInfo,
    expire: Timespec,
) -> Result<OpOutput> {
    if v.get_session(info.sid).await?.is_some() {
        return Err(err::exists(format!("session {} exists", info.sid)));
    }
    v.put_session(&Session {
        info: info.clone(),
        expire,
    })
    .await?;
    Ok(OpOutput::Done)
}

pub(super) async fn heartbeat<V: TxnView + ?Sized>(
    v: &mut V,
    sid: Sid,
    expire: Timespec,
) -> Result<OpOutput> {
    let mut s = session_record(v, sid).await?;
    if s.is_fenced() {
        return Err(err::not_found(format!(
            "session {sid} expired and its cleanup is under way"
        )));
    }
    s.expire = expire;
    v.put_session(&s).await?;
    Ok(OpOutput::Done)
}

/// Deletes a sustained inode (nlink 0) once no session holds it open any more.
async fn delete_if_unheld<V: TxnView + ?Sized>(v: &mut V, ino: Ino) -> Result<()> {
    if let Some(attr) = v.get_attr(ino).await?
        && attr.nlink == 0
        && v.openers(ino).await?.is_empty()
    {
        delete_inode(v, ino, &attr).await?;
    }
    Ok(())
}

/// Drops every lock session `sid` holds on `ino` (no open file of the session is left, so
/// no descriptor can hold one; also what fcntl(2) does at the last close).
async fn drop_locks_on<V: TxnView + ?Sized>(v: &mut V, sid: Sid, ino: Ino) -> Result<()> {
    for (o, _) in v.get_flocks(ino).await? {
        if o.sid == sid {
            v.set_flock(ino, o, LockType::Unlock).await?;
        }
    }
    for (o, _) in v.get_plocks(ino).await? {
        if o.sid == sid {
            v.set_plocks(ino, o, &[]).await?;
        }
    }
    Ok(())
}

/// [`crate::Op::CloseSession`]: the whole close, or with `at_most` one part of it (at most
/// that many open inodes and locks released; the session fenced when something is left).
pub(super) async fn close_session<V: TxnView + ?Sized>(
    v: &mut V,
    sid: Sid,
    expired_before: Option<Timespec>,
    at_most: Option<std::num::NonZeroU32>,
) -> Result<OpOutput> {
    let mut s = session_record(v, sid).await?;
    if let Some(t) = expired_before
        && s.expire >= t
    {
        return Err(err::would_block(format!(
            "session {sid} has not expired (it expires at {}.{:09})",
            s.expire.sec, s.expire.nsec
        )));
    }
    // A part reads one holding more than it releases, to know whether something is left
    // (and no more: on etcd every holding read is a check of the transaction).
    let (opens, locks, left) = match at_most {
        None => (
            v.session_opens(sid).await?,
            v.session_locks(sid).await?,
            false,
        ),
        Some(n) => {
            let n = n.get() as usize;
            let mut opens = v.session_opens_at_most(sid, n.saturating_add(1)).await?;
            let mut locks = Vec::new();
            if opens.len() <= n {
                locks = v.session_locks_at_most(sid, n - opens.len() + 1).await?;
            }
            let left = opens.len() + locks.len() > n;
            opens.truncate(n);
            locks.truncate(n - opens.len());
            (opens, locks, left)
        }
    };
    for ino in opens {
        v.set_open(sid, ino, false).await?;
        delete_if_unheld(v, ino).await?;
    }
    for (ino, kind, owner) in locks {
        let o = LockOwner { sid, owner };
        match kind {
            LockKind::Flock => v.set_flock(ino, o, LockType::Unlock).await?,
            LockKind::Plock => v.set_plocks(ino, o, &[]).await?,
        }
    }
    if left {
        s.expire = Session::FENCED;
        v.put_session(&s).await?;
    } else {
        v.delete_session(sid).await?;
    }
    Ok(OpOutput::Done)
}

pub(super) async fn claim_cleanup<V: TxnView + ?Sized>(
    v: &mut V,
    now_ms: i64,
    every_ms: i64,
) -> Result<OpOutput> {
    let last = v.get_counter(Counter::CleanupLease).await?;
    if last > now_ms.saturating_sub(every_ms) {
        return Err(err::would_block(format!(
            "another client claimed the session cleanup {} ms ago",
            now_ms.saturating_sub(last)
        )));
    }
    v.add_counter(Counter::CleanupLease, now_ms - last).await?;
    Ok(OpOutput::Done)
}

pub(super) async fn open<V: TxnView + ?Sized>(v: &mut V, sid: Sid, ino: Ino) -> Result<OpOutput> {
    let attr = existing_attr(v, ino).await?;
    live_session(v, sid).await?;
    // Recording an open the session already has changes nothing.
    v.set_open(sid, ino, true).await?;
    Ok(OpOutput::Attr { ino, attr })
}

pub(super) async fn release<V: TxnView + ?Sized>(
    v: &mut V,
    sid: Sid,
    inos: &[(Ino, bool)],
) -> Result<OpOutput> {
    // Forgetting an open the session does not have changes nothing; the inode is deleted only
    // if it is sustained (nlink 0) and nobody holds it, which cannot be a live inode.
    for &(ino, drop_locks) in inos {
        v.set_open(sid, ino, false).await?;
        if drop_locks {
            drop_locks_on(v, sid, ino).await?;
        }
        delete_if_unheld(v, ino).await?;
    }
    Ok(OpOutput::Done)
}

pub(super) async fn flock<V: TxnView + ?Sized>(
    v: &mut V,
    ino: Ino,
    owner: LockOwner,
    typ: LockType,
) -> Result<OpOutput> {
    existing_attr(v, ino).await?;
    live_session(v, owner.sid).await?;
    let held = v.get_flocks(ino).await?;
    if let Some(t) = flock_decision(&held, ino, owner, typ)? {
        v.set_flock(ino, owner, t).await?;
    }
    Ok(OpOutput::Done)
}

pub(super) async fn setlk<V: TxnView + ?Sized>(
    v: &mut V,
    ino: Ino,
    owner: LockOwner,
    typ: LockType,
    range: (u64, u64),
    pid: u32,
) -> Result<OpOutput> {
    existing_attr(v, ino).await?;
    live_session(v, owner.sid).await?;
    let held = v.get_plocks(ino).await?;
    if let Some(new) = setlk_decision(&held, ino, owner, typ, range, pid)? {
        v.set_plocks(ino, owner, &new).await?;
    }
    Ok(OpOutput::Done)
}

/// The locks on `ino` (for `F_GETLK` and inspection): flocks and byte-range locks by owner.
/// ENOENT when the inode does not exist.
pub async fn list_locks<V: TxnView + ?Sized>(
    v: &mut V,
    ino: Ino,
) -> Result<crate::session::InodeLocks> {
    existing_attr(v, ino).await?;
    Ok(crate::session::InodeLocks {
        flocks: v.get_flocks(ino).await?,
        plocks: v.get_plocks(ino).await?,
    })
}

/// What session `sid` holds: open inodes and locks. ENOENT when the session does not exist.
pub async fn session_holdings<V: TxnView + ?Sized>(v: &mut V, sid: Sid) -> Result<SessionHoldings> {
    // (A fenced session's too: what is left for the next part of its close.)
    session_record(v, sid).await?;
    let mut h = SessionHoldings {
        open: v.session_opens(sid).await?,
        ..SessionHoldings::default()
    };
    for (ino, kind, owner) in v.session_locks(sid).await? {
        let o = LockOwner { sid, owner };
        match kind {
            LockKind::Flock => {
                if let Some((_, t)) = v.get_flocks(ino).await?.into_iter().find(|(x, _)| *x == o) {
                    h.flocks.push((ino, owner, t));
                }
            }
            LockKind::Plock => {
                if let Some((_, r)) = v.get_plocks(ino).await?.into_iter().find(|(x, _)| *x == o) {
                    h.plocks.push((ino, owner, r));
                }
            }
        }
    }
    Ok(h)
}
