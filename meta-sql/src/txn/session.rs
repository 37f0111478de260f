//! Sessions, open files and locks in SQL (tables `session`, `openfile`, `flock`, `plock`,
//! schema v2): the [`TxnView`](meta_core::logic::TxnView) methods' reads and buffered
//! writes, their prefetch, and their share of the flush.
//!
//! Row locks (PostgreSQL, MySQL): a batch takes its session rows first, `FOR UPDATE` for the
//! ops that change or end a session and `FOR SHARE` for the ops that add records belonging to
//! one (open, create-and-open, locks), so a session cannot be cleaned up while a batch adds a
//! record to it; then, with the node rows it locks anyway, the inodes whose open records or
//! locks it decides on (`Open`, `Release`, `Flock`, `Setlk`, and every inode a closing
//! session holds open), so an unlink deciding whether an inode is still open and an open of
//! that inode are serialized.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use meta_core::session::{FlockHolders, PlockHolders, decode_flock, decode_plocks, encode_plocks};
use meta_core::{
    Counter, Ino, LockKind, LockOwner, LockType, Op, PlockRange, Result, Session, SessionInfo, Sid,
    Timespec,
};

use super::{Cached, SqlTxn};
use crate::codec::{self, ino_arg};
use crate::exec::{Arg, Stmt, Ty, Val};
use crate::sql::{LockMode, Sql};

/// Session rows cached by a transaction.
#[derive(Default)]
pub(super) struct SessBase {
    sessions: HashMap<Sid, Cached<Session>>,
    openers: HashMap<Ino, Result<Vec<Sid>>>,
    flocks: HashMap<Ino, Result<FlockHolders>>,
    plocks: HashMap<Ino, Result<PlockHolders>>,
}

/// Buffered writes of one layer.
#[derive(Default)]
pub(super) struct SessLayer {
    sessions: BTreeMap<Sid, Option<Session>>,
    opens: BTreeMap<(Ino, Sid), bool>,
    flocks: BTreeMap<(Ino, LockOwner), Option<LockType>>,
    plocks: BTreeMap<(Ino, LockOwner), Option<Vec<PlockRange>>>,
}

impl SessLayer {
    pub(super) fn fold(&mut self, op: SessLayer) {
        self.sessions.extend(op.sessions);
        self.opens.extend(op.opens);
        self.flocks.extend(op.flocks);
        self.plocks.extend(op.plocks);
    }
}

fn sid_arg(sid: Sid) -> Arg {
    Arg::Int(sid as i64)
}

const SESSION_COLS: [Ty; 4] = [Ty::Int, Ty::Int, Ty::Int, Ty::Text];

fn session_row(r: &[Val]) -> Result<Session> {
    let sid = codec::id_of(codec::int(&r[0], "session id")?);
    let what = format!("session {sid}");
    let expire = Timespec::new(codec::int(&r[1], &what)?, codec::num(&r[2], &what)?)
        .map_err(|e| codec::corrupted(format!("{what}: {e}")))?;
    let info = SessionInfo::from_json(codec::text(&r[3], &what)?.as_bytes())
        .map_err(|e| e.context_prefix(&what))?;
    if info.sid != sid {
        return Err(codec::corrupted(format!(
            "{what}: its description names session {}",
            info.sid
        )));
    }
    Ok(Session { info, expire })
}

fn owner_of(sid: &Val, owner: &Val) -> Result<LockOwner> {
    Ok(LockOwner {
        sid: codec::id_of(codec::int(sid, "lock session")?),
        owner: codec::id_of(codec::int(owner, "lock owner")?),
    })
}

// ------------------------------------------------------------------------------------------
// Statements

impl Sql {
    fn sessions_of(&self, sids: &BTreeSet<Sid>, mode: LockMode) -> Vec<Stmt> {
        let keys = sids.iter().map(|s| vec![sid_arg(*s)]).collect();
        self.select_keys_mode(
            "session",
            "sid, expire_sec, expire_nsec, info",
            &[("sid", Ty::Int)],
            keys,
            " ORDER BY sid",
            mode,
        )
    }

    fn all_sessions(&self) -> Stmt {
        let mut b = self.b();
        b.s(&format!(
            "SELECT sid, expire_sec, expire_nsec, info FROM {} ORDER BY sid",
            self.t("session")
        ));
        b.done()
    }

    fn by_ino(&self, table: &str, out: &str, inos: &BTreeSet<Ino>) -> Vec<Stmt> {
        let keys = inos.iter().map(|i| vec![ino_arg(*i)]).collect();
        self.select_keys(table, out, &[("ino", Ty::Int)], keys, "", false)
    }

    fn by_sid(&self, table: &str, out: &str, sid: Sid) -> Stmt {
        let mut b = self.b();
        b.s(&format!("SELECT {out} FROM {} WHERE sid = ", self.t(table)));
        b.p(sid_arg(sid));
        b.done()
    }
}

// ------------------------------------------------------------------------------------------
// Prefetch and loads

/// What a batch's ops need of the session tables.
#[derive(Default)]
pub(super) struct SessNeeds {
    share: BTreeSet<Sid>,
    update: BTreeSet<Sid>,
    closing: BTreeSet<Sid>,
    /// Inodes whose open records the ops decide on.
    pub(super) openers: BTreeSet<Ino>,
    flocks: BTreeSet<Ino>,
    plocks: BTreeSet<Ino>,
    /// Inodes the ops must lock (`FOR UPDATE`) besides those the namespace ops lock.
    pub(super) lock: BTreeSet<Ino>,
    /// An op claims the cleanup lease: its counter is read `FOR UPDATE`, so that of two
    /// clients claiming at once the second sees the first's claim (a plain read would let
    /// both add their delta and both win).
    lease: bool,
}

impl SessNeeds {
    /// Notes what `op` needs; false when it is not a session op (and not a create-and-open).
    pub(super) fn add(&mut self, op: &Op) -> bool {
        match op {
            Op::Mknod {
                opened_by: Some(sid),
                ..
            } => {
                self.share.insert(*sid);
                false
            }
            Op::OpenSession { info, .. } => {
                self.update.insert(info.sid);
                true
            }
            Op::Heartbeat { sid, .. } => {
                self.update.insert(*sid);
                true
            }
            Op::CloseSession { sid, .. } => {
                self.update.insert(*sid);
                self.closing.insert(*sid);
                true
            }
            Op::Open { sid, ino } => {
                self.share.insert(*sid);
                self.openers.insert(*ino);
                self.lock.insert(*ino);
                true
            }
            Op::Release { inos, .. } => {
                for &(ino, drop_locks) in inos {
                    self.openers.insert(ino);
                    if drop_locks {
                        self.flocks.insert(ino);
                        self.plocks.insert(ino);
                    }
                    self.lock.insert(ino);
                }
                true
            }
            Op::Flock { ino, owner, .. } => {
                self.share.insert(owner.sid);
                self.flocks.insert(*ino);
                self.lock.insert(*ino);
                true
            }
            Op::Setlk { ino, owner, .. } => {
                self.share.insert(owner.sid);
                self.plocks.insert(*ino);
                self.lock.insert(*ino);
                true
            }
            Op::ClaimCleanup { .. } => {
                self.lease = true;
                true
            }
            _ => false,
        }
    }
}

impl SqlTxn<'_> {
    /// Step 1 of the prefetch, before any other row lock: the session rows (`FOR UPDATE`
    /// for ops that change a session, `FOR SHARE` for ops that add records of one), then
    /// the inodes closing sessions hold open (added to `needs.lock` and `needs.openers`).
    pub(super) async fn prefetch_sessions(&mut self, needs: &mut SessNeeds) -> Result<()> {
        let share: BTreeSet<Sid> = needs.share.difference(&needs.update).copied().collect();
        for (sids, mode) in [(&needs.update, LockMode::Update), (&share, LockMode::Share)] {
            if sids.is_empty() {
                continue;
            }
            let mode = if self.lock { mode } else { LockMode::None };
            let rows = self
                .rows_all(self.sql.sessions_of(sids, mode), &SESSION_COLS)
                .await?;
            for s in sids {
                self.base.sess.sessions.insert(*s, Ok(None));
            }
            for r in rows {
                let sid = match &r[0] {
                    Val::Int(i) => codec::id_of(*i),
                    _ => continue,
                };
                self.base
                    .sess
                    .sessions
                    .insert(sid, session_row(&r).map(Some));
            }
        }
        for sid in needs.closing.clone() {
            for ino in self.db_session_opens(sid).await? {
                needs.lock.insert(ino);
                needs.openers.insert(ino);
            }
        }
        Ok(())
    }

    /// Step 2, after the node locks: open records and lock records of the inodes the ops
    /// decide on.
    pub(super) async fn prefetch_records(&mut self, needs: &SessNeeds) -> Result<()> {
        if needs.lease {
            self.fetch_counters(&[Counter::CleanupLease], true).await?;
        }
        self.fetch_openers(&needs.openers).await?;
        self.fetch_flocks(&needs.flocks).await?;
        self.fetch_plocks(&needs.plocks).await
    }

    async fn fetch_openers(&mut self, inos: &BTreeSet<Ino>) -> Result<()> {
        let inos: BTreeSet<Ino> = inos
            .iter()
            .filter(|i| !self.base.sess.openers.contains_key(i))
            .copied()
            .collect();
        if inos.is_empty() {
            return Ok(());
        }
        let rows = self
            .rows_all(
                self.sql.by_ino("openfile", "ino, sid", &inos),
                &[Ty::Int, Ty::Int],
            )
            .await?;
        let mut found: BTreeMap<Ino, Vec<Sid>> = inos.iter().map(|i| (*i, Vec::new())).collect();
        for r in rows {
            if let (Val::Int(i), Val::Int(s)) = (&r[0], &r[1]) {
                let list = found.entry(Ino(codec::id_of(*i))).or_default();
                let sid = codec::id_of(*s);
                // Padded key lists may return a row twice.
                if !list.contains(&sid) {
                    list.push(sid);
                }
            }
        }
        for (ino, mut sids) in found {
            sids.sort_unstable();
            self.base.sess.openers.insert(ino, Ok(sids));
        }
        Ok(())
    }

    async fn fetch_flocks(&mut self, inos: &BTreeSet<Ino>) -> Result<()> {
        let inos: BTreeSet<Ino> = inos
            .iter()
            .filter(|i| !self.base.sess.flocks.contains_key(i))
            .copied()
            .collect();
        if inos.is_empty() {
            return Ok(());
        }
        let cols = [Ty::Int, Ty::Int, Ty::Int, Ty::Int];
        let rows = self
            .rows_all(
                self.sql.by_ino("flock", "ino, sid, owner, ltype", &inos),
                &cols,
            )
            .await?;
        let mut found: BTreeMap<Ino, Result<BTreeMap<LockOwner, LockType>>> =
            inos.iter().map(|i| (*i, Ok(BTreeMap::new()))).collect();
        for r in rows {
            let Val::Int(i) = r[0] else { continue };
            let ino = Ino(codec::id_of(i));
            let rec = owner_of(&r[1], &r[2]).and_then(|o| {
                let t = codec::num::<u8>(&r[3], "flock type")?;
                Ok((o, decode_flock(&[t])?))
            });
            if let Some(Ok(map)) = found.get_mut(&ino) {
                match rec {
                    Ok((o, t)) => {
                        map.insert(o, t);
                    }
                    Err(e) => {
                        found.insert(ino, Err(e.context_prefix(format!("flock of inode {ino}"))));
                    }
                }
            }
        }
        for (ino, r) in found {
            let v = r.map(|m| m.into_iter().collect());
            self.base.sess.flocks.insert(ino, v);
        }
        Ok(())
    }

    async fn fetch_plocks(&mut self, inos: &BTreeSet<Ino>) -> Result<()> {
        let inos: BTreeSet<Ino> = inos
            .iter()
            .filter(|i| !self.base.sess.plocks.contains_key(i))
            .copied()
            .collect();
        if inos.is_empty() {
            return Ok(());
        }
        let cols = [Ty::Int, Ty::Int, Ty::Int, Ty::Bytes];
        let rows = self
            .rows_all(
                self.sql.by_ino("plock", "ino, sid, owner, records", &inos),
                &cols,
            )
            .await?;
        type Owners = BTreeMap<LockOwner, Vec<PlockRange>>;
        let mut found: BTreeMap<Ino, Result<Owners>> =
            inos.iter().map(|i| (*i, Ok(BTreeMap::new()))).collect();
        for r in rows {
            let Val::Int(i) = r[0] else { continue };
            let ino = Ino(codec::id_of(i));
            let rec = owner_of(&r[1], &r[2]).and_then(|o| {
                let b = codec::bytes(&r[3], "plock records")?;
                Ok((o, decode_plocks(&b)?))
            });
            if let Some(Ok(map)) = found.get_mut(&ino) {
                match rec {
                    Ok((o, ranges)) => {
                        map.insert(o, ranges);
                    }
                    Err(e) => {
                        found.insert(ino, Err(e.context_prefix(format!("plock of inode {ino}"))));
                    }
                }
            }
        }
        for (ino, r) in found {
            let v = r.map(|m| m.into_iter().collect());
            self.base.sess.plocks.insert(ino, v);
        }
        Ok(())
    }

    async fn db_session_opens(&mut self, sid: Sid) -> Result<Vec<Ino>> {
        let rows = self
            .rows(self.sql.by_sid("openfile", "ino", sid), &[Ty::Int])
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            out.push(Ino(codec::id_of(codec::int(&r[0], "open-file inode")?)));
        }
        Ok(out)
    }

    fn layers(&self) -> [&SessLayer; 2] {
        [&self.batch.sess, &self.op.sess]
    }

    // --------------------------------------------------------------------------------------
    // The view's methods (called from the TxnView impl)

    pub(super) async fn sess_get(&mut self, sid: Sid) -> Result<Option<Session>> {
        for l in [&self.op.sess, &self.batch.sess] {
            if let Some(s) = l.sessions.get(&sid) {
                return Ok(s.clone());
            }
        }
        if !self.base.sess.sessions.contains_key(&sid) {
            self.miss();
            let mode = if self.write && self.lock {
                LockMode::Share
            } else {
                LockMode::None
            };
            let rows = self
                .rows_all(
                    self.sql.sessions_of(&BTreeSet::from([sid]), mode),
                    &SESSION_COLS,
                )
                .await?;
            let v = match rows.first() {
                Some(r) => session_row(r).map(Some),
                None => Ok(None),
            };
            self.base.sess.sessions.insert(sid, v);
        }
        self.base
            .sess
            .sessions
            .get(&sid)
            .cloned()
            .unwrap_or(Ok(None))
    }

    pub(super) fn sess_put(&mut self, s: &Session) {
        self.op.sess.sessions.insert(s.info.sid, Some(s.clone()));
    }

    pub(super) fn sess_delete(&mut self, sid: Sid) {
        self.op.sess.sessions.insert(sid, None);
    }

    pub(super) async fn sess_list(&mut self) -> Result<Vec<Session>> {
        let rows = self.rows(self.sql.all_sessions(), &SESSION_COLS).await?;
        let mut all: BTreeMap<Sid, Session> = BTreeMap::new();
        for r in rows {
            let s = session_row(&r)?;
            all.insert(s.info.sid, s);
        }
        for l in self.layers() {
            for (sid, s) in &l.sessions {
                match s {
                    Some(s) => all.insert(*sid, s.clone()),
                    None => all.remove(sid),
                };
            }
        }
        Ok(all.into_values().collect())
    }

    pub(super) async fn sess_openers(&mut self, ino: Ino) -> Result<Vec<Sid>> {
        if !self.base.sess.openers.contains_key(&ino) {
            self.miss();
            self.fetch_openers(&BTreeSet::from([ino])).await?;
        }
        let base = match self.base.sess.openers.get(&ino) {
            Some(r) => r.clone()?,
            None => Vec::new(),
        };
        let mut set: BTreeSet<Sid> = base.into_iter().collect();
        for l in self.layers() {
            for ((_, sid), open) in l.opens.range((ino, 0)..=(ino, Sid::MAX)) {
                if *open {
                    set.insert(*sid);
                } else {
                    set.remove(sid);
                }
            }
        }
        Ok(set.into_iter().collect())
    }

    pub(super) fn sess_set_open(&mut self, sid: Sid, ino: Ino, open: bool) {
        self.op.sess.opens.insert((ino, sid), open);
    }

    pub(super) async fn sess_opens_of(&mut self, sid: Sid) -> Result<Vec<Ino>> {
        let mut set: BTreeSet<Ino> = self.db_session_opens(sid).await?.into_iter().collect();
        for l in self.layers() {
            for ((ino, s), open) in &l.opens {
                if *s == sid {
                    if *open {
                        set.insert(*ino);
                    } else {
                        set.remove(ino);
                    }
                }
            }
        }
        Ok(set.into_iter().collect())
    }

    pub(super) async fn sess_flocks(&mut self, ino: Ino) -> Result<Vec<(LockOwner, LockType)>> {
        if !self.base.sess.flocks.contains_key(&ino) {
            self.miss();
            self.fetch_flocks(&BTreeSet::from([ino])).await?;
        }
        let base = match self.base.sess.flocks.get(&ino) {
            Some(r) => r.clone()?,
            None => Vec::new(),
        };
        let mut map: BTreeMap<LockOwner, LockType> = base.into_iter().collect();
        for l in self.layers() {
            for ((i, o), t) in &l.flocks {
                if *i == ino {
                    match t {
                        Some(t) => map.insert(*o, *t),
                        None => map.remove(o),
                    };
                }
            }
        }
        Ok(map.into_iter().collect())
    }

    pub(super) fn sess_set_flock(&mut self, ino: Ino, owner: LockOwner, typ: LockType) {
        let v = (typ != LockType::Unlock).then_some(typ);
        self.op.sess.flocks.insert((ino, owner), v);
    }

    pub(super) async fn sess_plocks(
        &mut self,
        ino: Ino,
    ) -> Result<Vec<(LockOwner, Vec<PlockRange>)>> {
        if !self.base.sess.plocks.contains_key(&ino) {
            self.miss();
            self.fetch_plocks(&BTreeSet::from([ino])).await?;
        }
        let base = match self.base.sess.plocks.get(&ino) {
            Some(r) => r.clone()?,
            None => Vec::new(),
        };
        let mut map: BTreeMap<LockOwner, Vec<PlockRange>> = base.into_iter().collect();
        for l in self.layers() {
            for ((i, o), r) in &l.plocks {
                if *i == ino {
                    match r {
                        Some(r) => map.insert(*o, r.clone()),
                        None => map.remove(o),
                    };
                }
            }
        }
        Ok(map.into_iter().collect())
    }

    pub(super) fn sess_set_plocks(&mut self, ino: Ino, owner: LockOwner, ranges: &[PlockRange]) {
        let v = (!ranges.is_empty()).then(|| ranges.to_vec());
        self.op.sess.plocks.insert((ino, owner), v);
    }

    pub(super) async fn sess_locks_of(&mut self, sid: Sid) -> Result<Vec<(Ino, LockKind, u64)>> {
        let mut set: BTreeSet<(Ino, LockKind, u64)> = BTreeSet::new();
        for (kind, table) in [(LockKind::Flock, "flock"), (LockKind::Plock, "plock")] {
            let rows = self
                .rows(
                    self.sql.by_sid(table, "ino, owner", sid),
                    &[Ty::Int, Ty::Int],
                )
                .await?;
            for r in rows {
                let ino = Ino(codec::id_of(codec::int(&r[0], "lock inode")?));
                let owner = codec::id_of(codec::int(&r[1], "lock owner")?);
                set.insert((ino, kind, owner));
            }
        }
        for l in self.layers() {
            for ((ino, o), t) in &l.flocks {
                if o.sid == sid {
                    let k = (*ino, LockKind::Flock, o.owner);
                    if t.is_some() {
                        set.insert(k);
                    } else {
                        set.remove(&k);
                    }
                }
            }
            for ((ino, o), r) in &l.plocks {
                if o.sid == sid {
                    let k = (*ino, LockKind::Plock, o.owner);
                    if r.is_some() {
                        set.insert(k);
                    } else {
                        set.remove(&k);
                    }
                }
            }
        }
        Ok(set.into_iter().collect())
    }
}

// ------------------------------------------------------------------------------------------
// Flush

/// The statements that write a batch's session rows: deletes first, then inserts/upserts.
pub(super) fn flush_statements(sql: &Sql, w: SessLayer) -> (Vec<Stmt>, Vec<Stmt>) {
    let (mut s_del, mut s_put) = (Vec::new(), Vec::new());
    for (sid, s) in w.sessions {
        match s {
            Some(s) => s_put.push(vec![
                sid_arg(sid),
                Arg::Int(s.expire.sec),
                Arg::Int(i64::from(s.expire.nsec)),
                Arg::Text(String::from_utf8_lossy(&s.info.to_json()).into_owned()),
            ]),
            None => s_del.push(vec![sid_arg(sid)]),
        }
    }
    let (mut o_del, mut o_put) = (Vec::new(), Vec::new());
    for ((ino, sid), open) in w.opens {
        let row = vec![ino_arg(ino), sid_arg(sid)];
        if open {
            o_put.push(row);
        } else {
            o_del.push(row);
        }
    }
    let (mut f_del, mut f_put) = (Vec::new(), Vec::new());
    for ((ino, o), t) in w.flocks {
        let mut row = vec![ino_arg(ino), sid_arg(o.sid), Arg::Int(o.owner as i64)];
        match t {
            Some(t) => {
                row.push(Arg::Int(i64::from(t.code())));
                f_put.push(row);
            }
            None => f_del.push(row),
        }
    }
    let (mut p_del, mut p_put) = (Vec::new(), Vec::new());
    for ((ino, o), r) in w.plocks {
        let mut row = vec![ino_arg(ino), sid_arg(o.sid), Arg::Int(o.owner as i64)];
        match r {
            Some(r) => {
                row.push(Arg::Bytes(encode_plocks(&r)));
                p_put.push(row);
            }
            None => p_del.push(row),
        }
    }
    let lock_key = [("ino", Ty::Int), ("sid", Ty::Int), ("owner", Ty::Int)];
    let mut deletes = Vec::new();
    deletes.extend(sql.delete_keys("session", &[("sid", Ty::Int)], s_del));
    deletes.extend(sql.delete_keys("openfile", &[("ino", Ty::Int), ("sid", Ty::Int)], o_del));
    deletes.extend(sql.delete_keys("flock", &lock_key, f_del));
    deletes.extend(sql.delete_keys("plock", &lock_key, p_del));
    let mut puts = Vec::new();
    puts.extend(sql.insert(
        "session",
        &[
            ("sid", Ty::Int),
            ("expire_sec", Ty::Int),
            ("expire_nsec", Ty::Int),
            ("info", Ty::Text),
        ],
        1,
        s_put,
        true,
    ));
    puts.extend(sql.insert_or_ignore("openfile", &[("ino", Ty::Int), ("sid", Ty::Int)], o_put));
    let mut cols = lock_key.to_vec();
    cols.push(("ltype", Ty::Int));
    puts.extend(sql.insert("flock", &cols, 3, f_put, true));
    cols.pop();
    cols.push(("records", Ty::Bytes));
    puts.extend(sql.insert("plock", &cols, 3, p_put, true));
    (deletes, puts)
}
