//! `meta status`: the sessions of a volume (clients, their open files and locks), like
//! `juicefs status`, and on request the cleanup of expired ones.

use std::io::Write;

use anyhow::Result;
use meta_core::{ErrorKind, Ino, Meta, Session, SessionHoldings, Timespec};
use serde::Serialize;

/// One session as `meta status` shows it.
#[derive(Debug, Serialize)]
pub struct SessionRow {
    /// The stored session.
    #[serde(flatten)]
    pub session: Session,
    /// Seconds until it expires (negative: expired that long ago, not yet cleaned up; a
    /// session whose close in parts has begun expired at the epoch, `Session::FENCED`).
    pub expires_in: f64,
    /// What it holds; `None` when it vanished while being read.
    pub holdings: Option<SessionHoldings>,
    /// Its open inodes that have no name left (sustained).
    pub sustained: Vec<Ino>,
}

/// What `meta status` prints.
#[derive(Debug, Serialize)]
pub struct Status {
    /// Sessions by ID.
    pub sessions: Vec<SessionRow>,
    /// Sessions cleaned up by this run (`--clean`).
    pub cleaned: Vec<u64>,
}

fn seconds(t: Timespec) -> f64 {
    t.sec as f64 + f64::from(t.nsec) / 1e9
}

/// Lists the sessions of the volume; with `clean`, first cleans up the expired ones.
pub async fn status(meta: &Meta, clean: bool) -> Result<Status> {
    let cleaned = if clean {
        meta.clean_expired_sessions().await?
    } else {
        Vec::new()
    };
    let now = seconds(Timespec::now());
    let mut rows = Vec::new();
    for s in meta.sessions().await? {
        let holdings = match meta.session_holdings(s.info.sid).await {
            Ok(h) => Some(h),
            Err(e) if e.kind() == ErrorKind::NotFound => None,
            Err(e) => return Err(e.into()),
        };
        let mut sustained = Vec::new();
        for &ino in holdings.iter().flat_map(|h| &h.open) {
            if meta.getattr(ino).await.is_ok_and(|a| a.nlink == 0) {
                sustained.push(ino);
            }
        }
        rows.push(SessionRow {
            expires_in: seconds(s.expire) - now,
            session: s,
            holdings,
            sustained,
        });
    }
    Ok(Status {
        sessions: rows,
        cleaned,
    })
}

impl Status {
    /// A table: one line per session, then a total.
    pub fn print(&self, out: &mut dyn Write) -> Result<()> {
        if !self.cleaned.is_empty() {
            writeln!(out, "cleaned up expired sessions: {:?}", self.cleaned)?;
        }
        writeln!(
            out,
            "{:>6}  {:<20} {:>8}  {:<10} {:>12}  {:>6} {:>9} {:>6} {:>6}  label",
            "sid", "host", "pid", "version", "expires", "open", "sustained", "flocks", "plocks"
        )?;
        for r in &self.sessions {
            let i = &r.session.info;
            let expires = if r.session.is_fenced() {
                // Its close in parts has begun (Session::FENCED): the next cleanup ends it.
                "CLOSING".to_string()
            } else if r.expires_in >= 0.0 {
                format!("in {:.0}s", r.expires_in)
            } else {
                format!("EXPIRED {:.0}s", -r.expires_in)
            };
            let (open, flocks, plocks) = match &r.holdings {
                Some(h) => (h.open.len(), h.flocks.len(), h.plocks.len()),
                None => (0, 0, 0),
            };
            writeln!(
                out,
                "{:>6}  {:<20} {:>8}  {:<10} {:>12}  {:>6} {:>9} {:>6} {:>6}  {}",
                i.sid,
                i.host,
                i.pid,
                i.version,
                expires,
                open,
                r.sustained.len(),
                flocks,
                plocks,
                i.label
            )?;
        }
        writeln!(out, "{} session(s)", self.sessions.len())?;
        Ok(())
    }
}
