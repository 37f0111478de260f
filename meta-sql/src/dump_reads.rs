//! The whole-volume reads of a dump ([`meta_core::snapshot::VolumeReads`]) on SQL: a page of
//! inodes in four queries ([`read_inodes_in`]), and the snapshot: one read transaction held
//! for the whole dump on a connection of its own ([`SqlSnapshot`]), PostgreSQL at
//! `REPEATABLE READ`, MySQL/MariaDB `WITH CONSISTENT SNAPSHOT` at `REPEATABLE READ`, SQLite a
//! deferred read transaction on a reader connection (WAL: it keeps the snapshot of its first
//! read).

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use meta_core::logic::{self, TxnView};
use meta_core::session::{Session, SessionHoldings, Sid};
use meta_core::snapshot::{InodeData, VolumeReads};
use meta_core::{
    Counter, DirEntry, Error, ErrorKind, FileType, Ino, Pending, Quota, Result, Setting, Slice,
};

use crate::backend::SqlBackend;
use crate::codec;
use crate::error::{Stage, classify};
use crate::exec::{Exec, Stmt, Ty};
use crate::sql::{Dialect, Sql};
use crate::txn::{SqlTxn, Stats};

/// An xattr: name and value.
type Xattr = (Vec<u8>, Vec<u8>);

/// What a dump records of each of `inos`, positionally (`None`: no such inode), in four
/// queries whatever their number: nodes, symlink targets, xattrs, chunks.
/// Errors: `Corrupted` for an undecodable row, and the driver's.
pub(crate) async fn read_inodes_in(
    c: &mut dyn Exec,
    sql: &Sql,
    stats: &Stats,
    inos: &[Ino],
) -> Result<Vec<Option<InodeData>>> {
    if inos.is_empty() {
        return Ok(Vec::new());
    }
    let mut t = SqlTxn::new(c, sql, stats, false);
    let set: BTreeSet<Ino> = inos.iter().copied().collect();
    t.fetch_nodes(&set, false).await?;
    let mut attrs = BTreeMap::new();
    for &ino in &set {
        if let Some(a) = t.get_attr(ino).await? {
            attrs.insert(ino, a);
        }
    }
    let of = |typ: FileType| -> Vec<i64> {
        attrs
            .iter()
            .filter(|(_, a)| a.typ == typ)
            .map(|(i, _)| i.0 as i64)
            .collect()
    };
    let (links, files) = (of(FileType::Symlink), of(FileType::Regular));
    let all: Vec<i64> = attrs.keys().map(|i| i.0 as i64).collect();
    let mut targets = BTreeMap::new();
    if !links.is_empty() {
        for s in sql.symlinks(links) {
            for r in t.rows(s, &[Ty::Int, Ty::Bytes]).await? {
                let ino = Ino(codec::id_of(codec::int(&r[0], "symlink inode")?));
                targets.insert(ino, codec::symlink_target(&r[1], ino)?);
            }
        }
    }
    let mut xattrs: BTreeMap<Ino, Vec<Xattr>> = BTreeMap::new();
    if !all.is_empty() {
        for s in xattrs_of(sql, all) {
            for r in t.rows(s, &[Ty::Int, Ty::Bytes, Ty::Bytes]).await? {
                let ino = Ino(codec::id_of(codec::int(&r[0], "xattr inode")?));
                let name = codec::bytes(&r[1], "xattr name")?;
                let value = codec::xattr_value(&r[2], ino)?;
                xattrs.entry(ino).or_default().push((name, value));
            }
        }
    }
    let mut chunks = BTreeMap::new();
    if !files.is_empty() {
        chunks = chunks_of(&mut t, sql, files).await?;
    }
    let mut out = Vec::with_capacity(inos.len());
    for ino in inos {
        let Some(&attr) = attrs.get(ino) else {
            out.push(None);
            continue;
        };
        let target = if attr.typ == FileType::Symlink {
            Some(
                targets
                    .get(ino)
                    .cloned()
                    .ok_or_else(|| codec::corrupted(format!("symlink {ino} has no target")))?,
            )
        } else {
            None
        };
        let mut x = xattrs.get(ino).cloned().unwrap_or_default();
        x.sort();
        out.push(Some(InodeData {
            attr,
            target,
            xattrs: x,
            chunks: chunks.get(ino).cloned().unwrap_or_default(),
        }));
    }
    Ok(out)
}

/// Xattr rows `(ino, name, value)` of every one of `inos`.
fn xattrs_of(sql: &Sql, inos: Vec<i64>) -> Vec<Stmt> {
    let keys = inos
        .into_iter()
        .map(|i| vec![crate::exec::Arg::Int(i)])
        .collect();
    sql.select_keys(
        "xattr",
        "ino, name, value",
        &[("ino", Ty::Int)],
        keys,
        "",
        false,
    )
}

/// Every chunk of each of `inos`, by inode then increasing index.
async fn chunks_of(
    t: &mut SqlTxn<'_>,
    sql: &Sql,
    inos: Vec<i64>,
) -> Result<BTreeMap<Ino, Vec<(u32, Vec<Slice>)>>> {
    let mut out: BTreeMap<Ino, Vec<(u32, Vec<Slice>)>> = BTreeMap::new();
    for s in sql.chunks_of(inos) {
        for r in t.rows(s, &[Ty::Int, Ty::Int, Ty::Bytes]).await? {
            let ino = Ino(codec::id_of(codec::int(&r[0], "chunk inode")?));
            let indx: u32 = codec::num(&r[1], &format!("chunk index of inode {ino}"))?;
            let what = format!("chunk {indx} of inode {ino}");
            out.entry(ino)
                .or_default()
                .push((indx, codec::decode_slices(&r[2], &what)?));
        }
    }
    for v in out.values_mut() {
        v.sort_by_key(|(i, _)| *i);
    }
    Ok(out)
}

/// Every chunk of `ino`. Errors: `Corrupted`, the driver's.
pub(crate) async fn list_chunks_in(
    c: &mut dyn Exec,
    sql: &Sql,
    stats: &Stats,
    ino: Ino,
) -> Result<Vec<(u32, Vec<Slice>)>> {
    let mut t = SqlTxn::new(c, sql, stats, false);
    Ok(chunks_of(&mut t, sql, vec![ino.0 as i64])
        .await?
        .remove(&ino)
        .unwrap_or_default())
}

/// Pending-deletion records, files first, at most `limit`. Errors: `Corrupted`, the driver's.
pub(crate) async fn list_pending_in(
    c: &mut dyn Exec,
    sql: &Sql,
    stats: &Stats,
    limit: usize,
) -> Result<Vec<Pending>> {
    let mut t = SqlTxn::new(c, sql, stats, false);
    let lim = i64::try_from(limit).unwrap_or(i64::MAX);
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    for r in t.rows(sql.pending(true, lim), &[Ty::Int, Ty::Int]).await? {
        out.push(Pending::File {
            ino: Ino(codec::id_of(codec::int(&r[0], "pending file")?)),
            length: codec::num(&r[1], "pending file length")?,
        });
    }
    let left = lim - out.len() as i64;
    if left > 0 {
        for r in t
            .rows(sql.pending(false, left), &[Ty::Int, Ty::Int])
            .await?
        {
            out.push(Pending::Slice {
                id: codec::id_of(codec::int(&r[0], "pending slice")?),
                size: codec::num(&r[1], "pending slice size")?,
            });
        }
    }
    Ok(out)
}

/// Every directory quota, by directory inode, in one statement. Errors: `Corrupted` for an
/// undecodable row, the driver's.
pub(crate) async fn quotas_in(
    c: &mut dyn Exec,
    sql: &Sql,
    stats: &Stats,
) -> Result<Vec<(Ino, Quota)>> {
    let mut t = SqlTxn::new(c, sql, stats, false);
    t.rows(sql.all_quotas(), &[Ty::Int; 6])
        .await?
        .iter()
        .map(|r| codec::quota(r))
        .collect()
}

/// The format record. Errors: `NotFound` when there is none, `Corrupted`, the driver's.
pub(crate) async fn load_in(c: &mut dyn Exec, sql: &Sql, stats: &Stats) -> Result<Setting> {
    let mut t = SqlTxn::new(c, sql, stats, false);
    let rows = t.rows(sql.setting_get(false), &[Ty::Text]).await?;
    match rows.first() {
        Some(r) => Setting::from_json(codec::text(&r[0], "format record")?.as_bytes()),
        None => Err(Error::new(
            ErrorKind::NotFound,
            "volume is not formatted (no format record)",
        )),
    }
}

/// A pooled connection of any dialect, owned.
enum Conn {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::pool::PoolConnection<sqlx::Postgres>),
    #[cfg(feature = "mysql")]
    MySql(sqlx::pool::PoolConnection<sqlx::MySql>),
}

impl Conn {
    /// Runs `text` as a plain (unprepared) statement: transaction control.
    async fn run_raw(&mut self, text: &'static str) -> std::result::Result<(), sqlx::Error> {
        let q = sqlx::raw_sql(sqlx::AssertSqlSafe(text));
        match self {
            #[cfg(feature = "sqlite")]
            Conn::Sqlite(c) => q.execute(&mut **c).await.map(drop),
            #[cfg(feature = "postgres")]
            Conn::Postgres(c) => q.execute(&mut **c).await.map(drop),
            #[cfg(feature = "mysql")]
            Conn::MySql(c) => q.execute(&mut **c).await.map(drop),
        }
    }

    /// Closes the connection instead of returning it to the pool (where it would arrive
    /// with its snapshot transaction open, or with replies still due after a timeout).
    fn discard(self) {
        match self {
            #[cfg(feature = "sqlite")]
            Conn::Sqlite(c) => drop(c.detach()),
            #[cfg(feature = "postgres")]
            Conn::Postgres(c) => drop(c.detach()),
            #[cfg(feature = "mysql")]
            Conn::MySql(c) => drop(c.detach()),
        }
    }

    fn exec(&mut self) -> &mut dyn Exec {
        match self {
            #[cfg(feature = "sqlite")]
            Conn::Sqlite(c) => &mut **c,
            #[cfg(feature = "postgres")]
            Conn::Postgres(c) => &mut **c,
            #[cfg(feature = "mysql")]
            Conn::MySql(c) => &mut **c,
        }
    }
}

/// One read transaction held for a whole dump on a connection of its own: every read sees
/// the database as of its first read (PostgreSQL `REPEATABLE READ`, MySQL/MariaDB
/// `WITH CONSISTENT SNAPSHOT`, SQLite a deferred transaction in WAL mode). Dropping it
/// closes the connection, which ends the transaction (nothing was written).
pub(crate) struct SqlSnapshot<'a> {
    backend: &'a SqlBackend,
    conn: tokio::sync::Mutex<Option<Conn>>,
}

impl Drop for SqlSnapshot<'_> {
    fn drop(&mut self) {
        if let Some(c) = self.conn.get_mut().take() {
            c.discard();
        }
    }
}

/// The statements that start a snapshot transaction.
fn begin_snapshot(d: Dialect) -> &'static [&'static str] {
    match d {
        Dialect::Sqlite => &["BEGIN DEFERRED"],
        Dialect::Postgres => &["BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"],
        // The session is READ COMMITTED (set at connect): this transaction only is
        // REPEATABLE READ, and WITH CONSISTENT SNAPSHOT takes the snapshot at once.
        Dialect::MySql => &[
            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ",
            "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
        ],
    }
}

impl<'a> SqlSnapshot<'a> {
    /// Opens a connection and starts the snapshot transaction on it (SQLite: also reads the
    /// format record, which fixes its snapshot). Errors: `Unavailable` when no connection
    /// can be had, the driver's.
    pub(crate) async fn open(backend: &'a SqlBackend) -> Result<SqlSnapshot<'a>> {
        let d = backend.sql.d;
        let conn = match &backend.pools {
            #[cfg(feature = "sqlite")]
            crate::backend::Pools::Sqlite { reader, .. } => Conn::Sqlite(
                reader
                    .acquire()
                    .await
                    .map_err(|e| classify(e, Stage::Connect, d))?,
            ),
            #[cfg(feature = "postgres")]
            crate::backend::Pools::Postgres(p) => Conn::Postgres(
                p.acquire()
                    .await
                    .map_err(|e| classify(e, Stage::Connect, d))?,
            ),
            #[cfg(feature = "mysql")]
            crate::backend::Pools::MySql(p) => Conn::MySql(
                p.acquire()
                    .await
                    .map_err(|e| classify(e, Stage::Connect, d))?,
            ),
        };
        // In the snapshot before BEGIN: whatever happens next (an error, a timeout),
        // dropping it discards the connection.
        let snap = SqlSnapshot {
            backend,
            conn: tokio::sync::Mutex::new(Some(conn)),
        };
        {
            let mut guard = snap.conn.lock().await;
            let bound = crate::run::bound(backend.timeout);
            for text in begin_snapshot(d) {
                let Some(conn) = guard.as_mut() else { break };
                crate::run::within(bound, Stage::Begin, d, conn.run_raw(text))
                    .await?
                    .map_err(|e| classify(e, Stage::Begin, d))?;
            }
        }
        // SQLite takes the snapshot at the first read.
        snap.load().await?;
        Ok(snap)
    }

    fn sql(&self) -> &Sql {
        &self.backend.sql
    }

    fn stats(&self) -> &Stats {
        &self.backend.stats
    }
}

/// Runs `$body` with `$c: &mut dyn Exec` on the snapshot's connection, within the URL's
/// `timeout` (past it: `Unavailable`, and the connection is discarded: later reads of the
/// snapshot fail with `Unavailable` too).
macro_rules! on_snapshot {
    ($self:expr, |$c:ident| $body:expr) => {{
        let mut guard = $self.conn.lock().await;
        let conn = guard.as_mut().ok_or_else(|| {
            Error::new(
                ErrorKind::Unavailable,
                "the snapshot's connection is gone (a read timed out)",
            )
        })?;
        let r = {
            let $c: &mut dyn Exec = conn.exec();
            let body = async {
                let r: Result<_> = $body;
                r
            };
            let bound = crate::run::bound($self.backend.timeout);
            crate::run::within(bound, Stage::Statement, $self.backend.sql.d, body).await
        };
        match r {
            Ok(r) => r,
            Err(e) => {
                if let Some(c) = guard.take() {
                    c.discard();
                }
                Err(e)
            }
        }
    }};
}

#[async_trait]
impl VolumeReads for SqlSnapshot<'_> {
    fn is_snapshot(&self) -> bool {
        true
    }
    async fn load(&self) -> Result<Setting> {
        on_snapshot!(self, |c| load_in(c, self.sql(), self.stats()).await)
    }
    async fn get_counter(&self, counter: Counter) -> Result<i64> {
        on_snapshot!(self, |c| {
            let mut t = SqlTxn::new(c, self.sql(), self.stats(), false);
            TxnView::get_counter(&mut t, counter).await
        })
    }
    async fn read_dir(
        &self,
        ino: Ino,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<DirEntry>> {
        on_snapshot!(self, |c| {
            let mut t = SqlTxn::new(c, self.sql(), self.stats(), false);
            t.fetch_nodes(&BTreeSet::from([ino]), false).await?;
            if limit > 0 {
                t.fetch_listing(ino, after, limit, false).await?;
            }
            logic::read_dir(&mut t, ino, after, limit, false).await
        })
    }
    async fn read_inodes(&self, inos: &[Ino]) -> Result<Vec<Option<InodeData>>> {
        on_snapshot!(self, |c| read_inodes_in(c, self.sql(), self.stats(), inos)
            .await)
    }
    async fn list_chunks(&self, ino: Ino) -> Result<Vec<(u32, Vec<Slice>)>> {
        on_snapshot!(self, |c| list_chunks_in(c, self.sql(), self.stats(), ino)
            .await)
    }
    async fn list_pending(&self, limit: usize) -> Result<Vec<Pending>> {
        on_snapshot!(self, |c| list_pending_in(
            c,
            self.sql(),
            self.stats(),
            limit
        )
        .await)
    }
    async fn list_sessions(&self) -> Result<Vec<Session>> {
        on_snapshot!(self, |c| {
            let mut t = SqlTxn::new(c, self.sql(), self.stats(), false);
            TxnView::list_sessions(&mut t).await
        })
    }
    async fn session_holdings(&self, sid: Sid) -> Result<SessionHoldings> {
        on_snapshot!(self, |c| {
            let mut t = SqlTxn::new(c, self.sql(), self.stats(), false);
            logic::session_holdings(&mut t, sid).await
        })
    }
    async fn quotas(&self) -> Result<Vec<(Ino, Quota)>> {
        on_snapshot!(self, |c| quotas_in(c, self.sql(), self.stats()).await)
    }
}
