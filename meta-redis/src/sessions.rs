//! Reads of sessions, open files and locks (layout: [`crate::layout`]; the writes are the
//! scripts `open_session`, `heartbeat`, `close_session`, `claim_cleanup`, `open`,
//! `release` and `lock`).

use meta_core::kv::decode_session;
use meta_core::session::{decode_flock, decode_plocks};
use meta_core::{
    Error, ErrorKind, Ino, InodeLocks, LockKind, LockOwner, Result, Session, SessionHoldings, Sid,
};
use redis::{Value, pipe};

use crate::{Inner, bytes, list};

fn corrupted(what: impl Into<String>) -> Error {
    Error::new(ErrorKind::Corrupted, what)
}

/// The field/value pairs of an `HGETALL` reply.
fn hash_pairs(v: Value, what: &str) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let mut it = list(v, what)?.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((
            bytes(k, what)?.unwrap_or_default(),
            bytes(v, what)?.unwrap_or_default(),
        ));
    }
    Ok(out)
}

fn u64_of(b: &[u8], what: &str) -> Result<u64> {
    <[u8; 8]>::try_from(b)
        .map(u64::from_be_bytes)
        .map_err(|_| corrupted(format!("{what}: not an 8-byte number")))
}

/// A lock hash's records: 16-byte owner fields and the values `decode` reads.
fn lock_records<T>(
    v: Value,
    what: &str,
    decode: impl Fn(&[u8]) -> Result<T>,
) -> Result<Vec<(LockOwner, T)>> {
    let mut out = Vec::new();
    for (f, v) in hash_pairs(v, what)? {
        if f.len() != 16 {
            return Err(corrupted(format!("{what}: bad owner field")));
        }
        let owner = LockOwner {
            sid: u64_of(&f[..8], what)?,
            owner: u64_of(&f[8..], what)?,
        };
        out.push((owner, decode(&v).map_err(|e| e.context_prefix(what))?));
    }
    out.sort_by_key(|(o, _)| *o);
    Ok(out)
}

impl Inner {
    pub(crate) async fn list_sessions(&self) -> Result<Vec<Session>> {
        let mut p = pipe();
        p.ignore_errors();
        p.cmd("HGETALL").arg(self.layout.sessions());
        let v = self.read_pipe(&p).await?.pop().unwrap_or(Value::Nil);
        let mut out = Vec::new();
        for (f, v) in hash_pairs(v, "sessions")? {
            let sid = u64_of(&f, "session id")?;
            let s = decode_session(&v).map_err(|e| e.context_prefix(format!("session {sid}")))?;
            if s.info.sid != sid {
                return Err(corrupted(format!(
                    "session {sid}: its description names session {}",
                    s.info.sid
                )));
            }
            out.push(s);
        }
        out.sort_by_key(|s| s.info.sid);
        Ok(out)
    }

    pub(crate) async fn session_holdings(&self, sid: Sid) -> Result<SessionHoldings> {
        let l = &self.layout;
        let mut p = pipe();
        p.ignore_errors();
        p.cmd("HEXISTS")
            .arg(l.sessions())
            .arg(&sid.to_be_bytes()[..]);
        p.cmd("SMEMBERS").arg(l.session_opens(sid));
        p.cmd("SMEMBERS").arg(l.session_locks(sid));
        let mut v = self.read_pipe(&p).await?.into_iter();
        if !matches!(v.next(), Some(Value::Int(1))) {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("session {sid} does not exist (closed, or cleaned up after it expired)"),
            ));
        }
        let mut h = SessionHoldings::default();
        for m in list(v.next().unwrap_or(Value::Nil), "session opens")? {
            h.open.push(Ino(u64_of(
                &bytes(m, "open")?.unwrap_or_default(),
                "open inode",
            )?));
        }
        h.open.sort_unstable();
        let mut places = Vec::new();
        for m in list(v.next().unwrap_or(Value::Nil), "session locks")? {
            let m = bytes(m, "lock place")?.unwrap_or_default();
            let kind = LockKind::from_tag(*m.first().unwrap_or(&0))?;
            places.push((
                kind,
                Ino(u64_of(m.get(1..).unwrap_or_default(), "lock place")?),
            ));
        }
        places.sort_unstable();
        if places.is_empty() {
            return Ok(h);
        }
        let mut p = pipe();
        p.ignore_errors();
        for (kind, ino) in &places {
            p.cmd("HGETALL").arg(l.locks(*kind, *ino));
        }
        for ((kind, ino), v) in places.into_iter().zip(self.read_pipe(&p).await?) {
            match kind {
                LockKind::Flock => {
                    for (o, t) in lock_records(v, "flock", decode_flock)? {
                        if o.sid == sid {
                            h.flocks.push((ino, o.owner, t));
                        }
                    }
                }
                LockKind::Plock => {
                    for (o, r) in lock_records(v, "plock", decode_plocks)? {
                        if o.sid == sid {
                            h.plocks.push((ino, o.owner, r));
                        }
                    }
                }
            }
        }
        Ok(h)
    }

    pub(crate) async fn list_locks(&self, ino: Ino) -> Result<InodeLocks> {
        let l = &self.layout;
        let mut p = pipe();
        p.ignore_errors();
        p.cmd("EXISTS").arg(l.attr(ino));
        p.cmd("HGETALL").arg(l.locks(LockKind::Flock, ino));
        p.cmd("HGETALL").arg(l.locks(LockKind::Plock, ino));
        let mut v = self.read_pipe(&p).await?.into_iter();
        if !matches!(v.next(), Some(Value::Int(1))) || ino == Ino::ZERO {
            return Err(Error::new(ErrorKind::NotFound, format!("inode {ino}")));
        }
        Ok(InodeLocks {
            flocks: lock_records(v.next().unwrap_or(Value::Nil), "flock", decode_flock)?,
            plocks: lock_records(v.next().unwrap_or(Value::Nil), "plock", decode_plocks)?,
        })
    }
}
