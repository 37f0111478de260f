//! [`SqlBackend`]: the [`Backend`] of every dialect — pools, one transaction per batch,
//! and the reads (how a transaction runs and is retried is in `run`; the schema's
//! migrations and what `format` writes are in `schema`).

use std::collections::BTreeSet;
use std::fmt;
use std::ops::Range;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use meta_core::backend::{BackendInfo, InodePage};
use meta_core::logic::{self, Limits, TxnView};
use meta_core::snapshot::{InodeData, VolumeReads};
use meta_core::{
    Attr, Backend, Counter, DirEntry, DirStat, Error, ErrorKind, IdKind, Ino, InodeLocks, Op,
    OpOutput, Pending, Quota, Result, Session, SessionHoldings, Setting, Sid, Slice, Statfs,
};

use crate::codec::{self, NODE_TYS};
use crate::dump_reads;
use crate::error::{Stage, classify};
use crate::exec::{Arg, Exec, Stmt, Ty};
use crate::run::{backoff, conn, retry, txn};
use crate::schema::{format_in, migrate};
use crate::sql::{Dialect, OLD_TABLES, Sql, TABLES};
use crate::txn::{Counters, QuotaCache, SqlTxn, Stats};

/// Most ops one `apply` call accepts (the batcher never sends more).
pub const MAX_BATCH_OPS: usize = 1024;

/// Attempts of a batch (or any transaction) that lost a race before `Conflict` is returned.
pub const MAX_ATTEMPTS: u32 = 24;

/// Connection pools of one volume.
pub(crate) enum Pools {
    /// SQLite: one writer connection (writes are serialized in-process; `BEGIN IMMEDIATE`
    /// and `busy_timeout` serialize them across processes), and reader connections (WAL
    /// lets them read while the writer writes).
    #[cfg(feature = "sqlite")]
    Sqlite {
        writer: sqlx::SqlitePool,
        reader: sqlx::SqlitePool,
    },
    /// PostgreSQL.
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
    /// MySQL / MariaDB.
    #[cfg(feature = "mysql")]
    MySql(sqlx::MySqlPool),
}

/// Counters of the work a [`SqlBackend`] sent to its database since it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SqlStats {
    /// `apply` calls with at least one op.
    pub batches: u64,
    /// Ops in those calls.
    pub ops: u64,
    /// Transactions started (batches, their retries, format, migrations).
    pub transactions: u64,
    /// Transactions committed.
    pub commits: u64,
    /// Statements sent, `BEGIN`/`COMMIT`/`ROLLBACK` and autocommitted reads included. On
    /// PostgreSQL and MySQL each is one network round trip (prepared statements are cached
    /// per connection; a statement's first use on a connection costs one more to prepare).
    pub statements: u64,
    /// Transactions re-run after losing a race (serialization failure, deadlock, busy,
    /// unique violation, a row changed since read).
    pub retries: u64,
    /// Reads the prefetch did not anticipate (one extra SELECT each).
    pub misses: u64,
    /// Optimistic attempts of batches that charge directory quotas re-run on the locked
    /// path (a stale memory of the quotas, a limit reached, a lost race); also counted in
    /// `retries`.
    pub reruns: u64,
}

impl SqlStats {
    /// The work done between two snapshots: `self` minus `earlier`, field by field (each
    /// counter only grows, so `earlier` must be the older snapshot; a smaller field gives 0).
    pub fn since(&self, earlier: &SqlStats) -> SqlStats {
        SqlStats {
            batches: self.batches.saturating_sub(earlier.batches),
            ops: self.ops.saturating_sub(earlier.ops),
            transactions: self.transactions.saturating_sub(earlier.transactions),
            commits: self.commits.saturating_sub(earlier.commits),
            statements: self.statements.saturating_sub(earlier.statements),
            retries: self.retries.saturating_sub(earlier.retries),
            misses: self.misses.saturating_sub(earlier.misses),
            reruns: self.reruns.saturating_sub(earlier.reruns),
        }
    }
}

/// A volume in a SQL database: SQLite, PostgreSQL or MySQL/MariaDB. See the crate docs.
pub struct SqlBackend {
    pub(crate) pools: Pools,
    pub(crate) sql: Sql,
    pub(crate) display: String,
    pub(crate) stats: Stats,
    /// The schema was checked (and created or upgraded) by this backend.
    schema_ok: AtomicBool,
    schema_lock: tokio::sync::Mutex<()>,
    limits: RwLock<Option<Limits>>,
    /// What this backend remembers of the volume's quotas between batches, for their
    /// optimistic attempts (see `txn::quota`).
    quota_cache: QuotaCache,
    /// How long one call may wait for the server ([`crate::SqlOptions::timeout`]; `None`
    /// on SQLite).
    pub(crate) timeout: Option<std::time::Duration>,
}

impl fmt::Debug for SqlBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlBackend")
            .field("dialect", &self.sql.d)
            .field("url", &self.display)
            .field("table_prefix", &self.sql.prefix())
            .finish()
    }
}

fn not_formatted() -> Error {
    Error::new(
        ErrorKind::NotFound,
        "volume is not formatted (no format record)",
    )
}

impl SqlBackend {
    pub(crate) fn new(
        pools: Pools,
        sql: Sql,
        display: String,
        timeout: Option<std::time::Duration>,
    ) -> SqlBackend {
        SqlBackend {
            pools,
            sql,
            display,
            stats: Stats::default(),
            schema_ok: AtomicBool::new(false),
            schema_lock: tokio::sync::Mutex::new(()),
            limits: RwLock::new(None),
            quota_cache: QuotaCache::default(),
            timeout,
        }
    }

    /// The dialect of the database.
    pub fn dialect(&self) -> Dialect {
        self.sql.d
    }

    /// The table prefix (lower-cased), e.g. `"vol1_"`.
    pub fn table_prefix(&self) -> &str {
        self.sql.prefix()
    }

    /// Counters of what this backend sent to the database since it was opened.
    pub fn stats(&self) -> SqlStats {
        let g = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        SqlStats {
            batches: g(&self.stats.batches),
            ops: g(&self.stats.ops),
            transactions: g(&self.stats.transactions),
            commits: g(&self.stats.commits),
            statements: g(&self.stats.statements),
            retries: g(&self.stats.retries),
            misses: g(&self.stats.misses),
            reruns: g(&self.stats.reruns),
        }
    }

    /// Closes the connection pools and waits for their connections to close, at most the
    /// URL's `timeout` (PostgreSQL/MySQL: a connection on its way back to the pool waits for
    /// the server's answer to a ping, which a silent server never gives). Later calls fail
    /// with `Unavailable`.
    pub async fn close(&self) {
        let closing = self.close_pools();
        match self.timeout {
            Some(t) => {
                if tokio::time::timeout(t, closing).await.is_err() {
                    tracing::warn!(
                        "{}: connections still closing after {t:?}; left to the server",
                        self.sql.d.scheme()
                    );
                }
            }
            None => closing.await,
        }
    }

    async fn close_pools(&self) {
        match &self.pools {
            #[cfg(feature = "sqlite")]
            Pools::Sqlite { writer, reader } => {
                reader.close().await;
                writer.close().await;
            }
            #[cfg(feature = "postgres")]
            Pools::Postgres(p) => p.close().await,
            #[cfg(feature = "mysql")]
            Pools::MySql(p) => p.close().await,
        }
    }

    /// Drops every table of this volume (the data is gone for good). For tests and for
    /// decommissioning a volume; the next call recreates an empty, unformatted schema.
    pub async fn drop_tables(&self) -> Result<()> {
        // Unbounded: dropping large tables may take long.
        let r: Result<()> = conn!(unbounded self, writer, |c| {
            let mut t = SqlTxn::new(c, &self.sql, &self.stats, false);
            // (And the tables of older schema versions, in case these were never migrated.)
            for table in TABLES.iter().rev().chain(&OLD_TABLES) {
                t.run(self.sql.drop_table(table)).await?;
            }
            Ok(())
        });
        r?;
        // The next call creates an empty schema again.
        self.schema_ok.store(false, Ordering::SeqCst);
        self.quota_cache.reset(None);
        *self.limits.write().unwrap_or_else(|p| p.into_inner()) = None;
        Ok(())
    }

    /// Runs one statement written against this volume's tables, for tests and manual
    /// repairs: `{p}` in `sql` is replaced by the table prefix and each `?` by the next
    /// parameter (`$n` on PostgreSQL). Returns the rows it matched. Not part of the stable
    /// API.
    #[doc(hidden)]
    pub async fn raw_execute(&self, sql: &str, params: Vec<RawParam>) -> Result<u64> {
        let mut text = String::with_capacity(sql.len());
        let mut n = 0;
        for ch in sql.replace("{p}", self.sql.prefix()).chars() {
            if ch == '?' && self.sql.d == Dialect::Postgres {
                n += 1;
                text.push_str(&format!("${n}"));
            } else {
                text.push(ch);
            }
        }
        let args = params
            .into_iter()
            .map(|p| match p {
                RawParam::Int(i) => Arg::Int(i),
                RawParam::Bytes(b) => Arg::Bytes(b),
                RawParam::Text(s) => Arg::Text(s),
            })
            .collect();
        self.run_stmt(Stmt {
            sql: text.into(),
            args,
        })
        .await
    }

    /// Runs `stmt` by itself (autocommitted) on a pooled connection, the writer's on SQLite;
    /// the rows it matched. For [`SqlBackend::raw_execute`] and tests. Errors: those of the
    /// connection and of the statement, classified (`Unavailable`, `Conflict`, ...).
    pub(crate) async fn run_stmt(&self, stmt: Stmt) -> Result<u64> {
        self.ready().await?;
        conn!(self, writer, |c| {
            let mut t = SqlTxn::new(c, &self.sql, &self.stats, false);
            t.run(stmt).await
        })
    }

    /// Creates or upgrades the schema once per backend (every call starts with this).
    pub(crate) async fn ready(&self) -> Result<()> {
        if self.schema_ok.load(Ordering::Acquire) {
            return Ok(());
        }
        let _g = self.schema_lock.lock().await;
        if self.schema_ok.load(Ordering::Acquire) {
            return Ok(());
        }
        self.probe().await?;
        // Unbounded: an upgrade may rewrite large tables.
        retry!(
            self,
            txn!(unbounded self, self.sql.d.begin(), |c| migrate(
                c,
                &self.sql,
                &self.stats
            )
            .await)
        )?;
        self.schema_ok.store(true, Ordering::Release);
        Ok(())
    }

    /// Connects once outside the pool and closes the connection. The pool retries a refused
    /// connection until `acquire_timeout` (30 s by default: it takes it for a server still
    /// starting) and then reports only "pool timed out"; before first use this says at once
    /// why the server cannot be reached (connection refused, unknown host, TLS refused,
    /// wrong password). Errors: those of [`classify`] at [`Stage::Connect`].
    async fn probe(&self) -> Result<()> {
        #[cfg(any(feature = "postgres", feature = "mysql"))]
        use sqlx::Connection;
        let d = self.sql.d;
        // An embedded SQLite file has no server to reach.
        #[cfg(feature = "sqlite")]
        if matches!(self.pools, Pools::Sqlite { .. }) {
            return Ok(());
        }
        let r: std::result::Result<(), sqlx::Error> = match &self.pools {
            #[cfg(feature = "sqlite")]
            Pools::Sqlite { .. } => Ok(()),
            #[cfg(feature = "postgres")]
            Pools::Postgres(p) => {
                let o = p.connect_options();
                let t = p.options().get_acquire_timeout();
                match tokio::time::timeout(t, sqlx::PgConnection::connect_with(&o)).await {
                    Ok(Ok(c)) => c.close().await,
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(sqlx::Error::PoolTimedOut),
                }
            }
            #[cfg(feature = "mysql")]
            Pools::MySql(p) => {
                let o = p.connect_options();
                let t = p.options().get_acquire_timeout();
                match tokio::time::timeout(t, sqlx::MySqlConnection::connect_with(&o)).await {
                    Ok(Ok(c)) => c.close().await,
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(sqlx::Error::PoolTimedOut),
                }
            }
        };
        r.map_err(|e| classify(e, Stage::Connect, d))
    }

    fn cached_limits(&self) -> Option<Limits> {
        *self.limits.read().unwrap_or_else(|p| p.into_inner())
    }

    fn set_limits(&self, s: &Setting) {
        *self.limits.write().unwrap_or_else(|p| p.into_inner()) = Some(Limits::from(s));
    }

    async fn limits(&self) -> Result<Limits> {
        match self.cached_limits() {
            Some(l) => Ok(l),
            None => Ok(Limits::from(&self.load().await?)),
        }
    }
}

/// A parameter of [`SqlBackend::raw_execute`].
#[doc(hidden)]
#[derive(Debug, Clone)]
pub enum RawParam {
    /// BIGINT.
    Int(i64),
    /// BLOB / BYTEA / VARBINARY.
    Bytes(Vec<u8>),
    /// Text.
    Text(String),
}

/// `reserve_ids` in one autocommitted statement; returns the counter's new value.
async fn reserve_in(
    c: &mut dyn Exec,
    sql: &Sql,
    stats: &Stats,
    name: &str,
    n: u64,
) -> Result<Option<i64>> {
    Stats::add(&stats.statements, 1);
    let stmt = sql.reserve(name, n as i64);
    if sql.d == Dialect::MySql {
        let d = c
            .run(stmt)
            .await
            .map_err(|e| classify(e, Stage::AutoCommit, sql.d))?;
        return Ok((d.rows > 0).then_some(d.last_id as i64));
    }
    let rows = c
        .rows(stmt, &[Ty::Int])
        .await
        .map_err(|e| classify(e, Stage::AutoCommit, sql.d))?;
    match rows.first() {
        Some(r) => Ok(Some(codec::int(&r[0], &format!("counter {name}"))?)),
        None => Ok(None),
    }
}

/// One attempt of a batch on `t`: prefetch, the ops' logic, the flush. `cache`: the
/// backend's quota cache for an optimistic attempt (`None`: the locked path).
async fn run_batch<'a>(
    t: &mut SqlTxn<'a>,
    cache: Option<&'a QuotaCache>,
    ops: &[Op],
    limits: &Limits,
    hints: &BTreeSet<Ino>,
) -> Result<Vec<Result<OpOutput>>> {
    if let Some(c) = cache {
        t.set_optimistic(c);
    }
    t.prefetch(ops, limits, hints).await?;
    let out = logic::apply_ops(t, ops, limits).await?;
    t.quota_outcome(&out)?;
    t.flush().await?;
    Ok(out)
}

#[async_trait]
impl Backend for SqlBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo::new(self.sql.d.scheme(), MAX_BATCH_OPS, true)
    }

    /// `commits`, `statements`, `retries` (transactions re-run after losing a race) and
    /// `quota_reruns` (optimistic quota attempts re-run on the locked path, among the
    /// retries) of [`SqlBackend::stats`].
    fn activity(&self) -> Vec<(&'static str, u64)> {
        let s = self.stats();
        vec![
            ("commits", s.commits),
            ("statements", s.statements),
            ("retries", s.retries),
            ("quota_reruns", s.reruns),
        ]
    }

    /// 1: every batch that creates or deletes updates the same `counter` rows (used space,
    /// inode count) and usually a shared parent's `node` row, and holds those row locks until
    /// COMMIT, so a second write batch in flight would only wait for the first (SQLite has a
    /// single writer anyway). One batch at a time makes batches larger instead: measured on
    /// PostgreSQL 15 with 16 tasks creating in one directory, 16 ops per batch at one in
    /// flight vs 4 at four (docs/benchmarks.md).
    fn preferred_inflight(&self) -> usize {
        1
    }

    async fn format(&self, setting: &Setting, force: bool) -> Result<()> {
        setting.validate()?;
        self.ready().await?;
        // Unbounded: `force` deletes a whole volume's rows.
        let (s, generation) = retry!(
            self,
            txn!(unbounded self, self.sql.d.begin(), |c| format_in(
                c,
                &self.sql,
                &self.stats,
                setting,
                force
            )
            .await)
        )?;
        if let Some(generation) = generation {
            // A new volume: no quota, and the generation format_in started.
            self.quota_cache.reset(Some(Counters {
                generation,
                count: 0,
            }));
        }
        self.set_limits(&s);
        Ok(())
    }

    async fn load(&self) -> Result<Setting> {
        self.ready().await?;
        let s = retry!(
            self,
            conn!(self, reader, |c| {
                let mut t = SqlTxn::new(c, &self.sql, &self.stats, false);
                let rows = t.rows(self.sql.setting_get(false), &[Ty::Text]).await?;
                match rows.first() {
                    Some(r) => Setting::from_json(codec::text(&r[0], "format record")?.as_bytes()),
                    None => Err(not_formatted()),
                }
            })
        )?;
        self.set_limits(&s);
        Ok(s)
    }

    async fn apply(&self, ops: &[Op]) -> Result<Vec<Result<OpOutput>>> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        self.ready().await?;
        let limits = self.limits().await?;
        Stats::add(&self.stats.batches, 1);
        Stats::add(&self.stats.ops, ops.len() as u64);
        let mut hints: BTreeSet<Ino> = BTreeSet::new();
        let mut n = 0u32;
        // A volume with limits locks its counter rows for the volume-limit checks (see
        // `Sql::counters`), which needs a transaction.
        let fast = self.sql.d == Dialect::Postgres
            && SqlTxn::lock_free(ops)
            && limits.capacity == 0
            && limits.inodes == 0;
        // Quotas are charged optimistically first (see `txn::quota`); batches that set or
        // remove a quota or move entries between directories take the locked path, and so
        // does the re-run of an optimistic attempt that failed.
        let mut locked = !SqlTxn::optimistic_ok(ops);
        loop {
            let mut stale = Vec::new();
            let mut learned = None;
            let cache = (!locked).then_some(&self.quota_cache);
            let r = if fast && !locked && hints.is_empty() {
                // Creates only: no BEGIN/COMMIT, two statements (see SqlTxn::set_autocommit).
                Stats::add(&self.stats.transactions, 1);
                conn!(self, writer, |c| {
                    let mut t = SqlTxn::new(c, &self.sql, &self.stats, true);
                    t.set_autocommit();
                    let r = run_batch(&mut t, cache, ops, &limits, &hints).await;
                    learned = r.is_ok().then(|| t.quota_learned());
                    r
                })
            } else {
                txn!(self, self.sql.d.begin(), |c| {
                    let mut t = SqlTxn::new(c, &self.sql, &self.stats, true);
                    let r = run_batch(&mut t, cache, ops, &limits, &hints).await;
                    stale = std::mem::take(&mut t.hints);
                    learned = r.is_ok().then(|| t.quota_learned());
                    r
                })
            };
            match r {
                Ok(out) => {
                    if let Some(l) = learned {
                        self.quota_cache.learn(l);
                    }
                    return Ok(out);
                }
                Err(e) if e.kind() == ErrorKind::Conflict && n + 1 < MAX_ATTEMPTS => {
                    hints.extend(stale);
                    n += 1;
                    Stats::add(&self.stats.retries, 1);
                    if locked {
                        backoff(n).await;
                    } else {
                        // Whatever failed the optimistic attempt (the quota set changed, a
                        // quota's usage or limit moved on, a lost race of its own), the
                        // locked path reads everything again, at once.
                        Stats::add(&self.stats.reruns, 1);
                        locked = true;
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn reserve_ids(&self, kind: IdKind, n: u64) -> Result<Range<u64>> {
        if n == 0 || n > i64::MAX as u64 / 2 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("cannot reserve {n} IDs"),
            ));
        }
        self.ready().await?;
        let c = kind.counter();
        let end = retry!(
            self,
            conn!(self, writer, |conn| reserve_in(
                conn,
                &self.sql,
                &self.stats,
                c.name(),
                n
            )
            .await)
        )?;
        let Some(end) = end else {
            // No counter row: an unformatted volume (NotFound), else a damaged one.
            self.load().await?;
            return Err(codec::corrupted(format!(
                "counter {} is missing or NULL",
                c.name()
            )));
        };
        let start = end
            .checked_sub(n as i64)
            .filter(|&s| s > 0)
            .ok_or_else(|| {
                codec::corrupted(format!("counter {} is {end} after reserving {n}", c.name()))
            })?;
        Ok(start as u64..end as u64)
    }

    async fn lookup(&self, parent: Ino, name: &[u8]) -> Result<(Ino, Attr)> {
        self.ready().await?;
        retry!(
            self,
            conn!(self, reader, |c| {
                let mut t = SqlTxn::new(c, &self.sql, &self.stats, false);
                if name == b"." || name == b".." {
                    t.fetch_nodes(&BTreeSet::from([parent]), false).await?;
                } else {
                    t.fetch_lookup(parent, name).await?;
                }
                logic::lookup(&mut t, parent, name).await
            })
        )
    }

    async fn get_attr(&self, ino: Ino) -> Result<Attr> {
        self.ready().await?;
        retry!(
            self,
            conn!(self, reader, |c| {
                let mut t = SqlTxn::new(c, &self.sql, &self.stats, false);
                t.fetch_nodes(&BTreeSet::from([ino]), false).await?;
                logic::get_attr(&mut t, ino).await
            })
        )
    }

    async fn read_dir(
        &self,
        ino: Ino,
        after: Option<&[u8]>,
        limit: usize,
        plus: bool,
    ) -> Result<Vec<DirEntry>> {
        self.ready().await?;
        retry!(
            self,
            conn!(self, reader, |c| {
                let mut t = SqlTxn::new(c, &self.sql, &self.stats, false);
                t.fetch_nodes(&BTreeSet::from([ino]), false).await?;
                if limit > 0 {
                    t.fetch_listing(ino, after, limit, plus).await?;
                }
                logic::read_dir(&mut t, ino, after, limit, plus).await
            })
        )
    }

    async fn read_chunk(&self, ino: Ino, indx: u32) -> Result<Vec<Slice>> {
        self.ready().await?;
        retry!(
            self,
            conn!(self, reader, |c| {
                let mut t = SqlTxn::new(c, &self.sql, &self.stats, false);
                meta_core::logic::TxnView::get_chunk(&mut t, ino, indx).await
            })
        )
    }

    async fn read_link(&self, ino: Ino) -> Result<Vec<u8>> {
        self.ready().await?;
        retry!(
            self,
            conn!(self, reader, |c| {
                let mut t = SqlTxn::new(c, &self.sql, &self.stats, false);
                t.fetch_nodes(&BTreeSet::from([ino]), false).await?;
                t.fetch_symlinks(&[ino]).await?;
                logic::read_link(&mut t, ino).await
            })
        )
    }

    async fn get_xattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        self.ready().await?;
        retry!(
            self,
            conn!(self, reader, |c| {
                let mut t = SqlTxn::new(c, &self.sql, &self.stats, false);
                t.fetch_nodes(&BTreeSet::from([ino]), false).await?;
                if meta_core::types::validate_xattr(name, None).is_ok() {
                    t.fetch_xattrs(&BTreeSet::from([(ino, name.to_vec())]))
                        .await?;
                }
                logic::get_xattr(&mut t, ino, name).await
            })
        )
    }

    async fn list_xattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>> {
        self.ready().await?;
        retry!(
            self,
            conn!(self, reader, |c| {
                let mut t = SqlTxn::new(c, &self.sql, &self.stats, false);
                t.fetch_nodes(&BTreeSet::from([ino]), false).await?;
                logic::list_xattr(&mut t, ino).await
            })
        )
    }

    async fn statfs(&self) -> Result<Statfs> {
        self.ready().await?;
        let limits = self.limits().await?;
        retry!(
            self,
            conn!(self, reader, |c| {
                let mut t = SqlTxn::new(c, &self.sql, &self.stats, false);
                t.fetch_counters(&[Counter::UsedSpace, Counter::TotalInodes], false)
                    .await?;
                let used =
                    meta_core::logic::TxnView::get_counter(&mut t, Counter::UsedSpace).await?;
                let inodes =
                    meta_core::logic::TxnView::get_counter(&mut t, Counter::TotalInodes).await?;
                Ok(logic::statfs_from(used, inodes, &limits))
            })
        )
    }

    /// One `SELECT ... FROM node WHERE ino IN (...)` of the statistics columns (PostgreSQL:
    /// `= ANY($1)`, one statement whatever the count; MySQL/SQLite: one per 4,096
    /// directories), outside a transaction.
    async fn dir_stats(&self, dirs: &[Ino]) -> Result<Vec<DirStat>> {
        if dirs.is_empty() {
            return Ok(Vec::new());
        }
        self.ready().await?;
        retry!(
            self,
            conn!(self, reader, |c| {
                let mut t = SqlTxn::new(c, &self.sql, &self.stats, false);
                t.read_dir_stats(dirs).await
            })
        )
    }

    /// One `SELECT ... FROM quota ORDER BY ino`, outside a transaction.
    async fn quotas(&self) -> Result<Vec<(Ino, Quota)>> {
        self.ready().await?;
        retry!(
            self,
            conn!(self, reader, |c| {
                dump_reads::quotas_in(c, &self.sql, &self.stats).await
            })
        )
    }

    async fn get_counter(&self, counter: Counter) -> Result<i64> {
        self.ready().await?;
        retry!(
            self,
            conn!(self, reader, |c| {
                let mut t = SqlTxn::new(c, &self.sql, &self.stats, false);
                meta_core::logic::TxnView::get_counter(&mut t, counter).await
            })
        )
    }

    async fn scan_inodes(&self, cursor: Option<&[u8]>, limit: usize) -> Result<InodePage> {
        let after = InodePage::after(cursor)?;
        self.ready().await?;
        if limit == 0 || after.0 >= i64::MAX as u64 {
            return Ok(InodePage::default());
        }
        let lim = i64::try_from(limit).unwrap_or(i64::MAX);
        retry!(
            self,
            conn!(self, reader, |c| {
                let mut t = SqlTxn::new(c, &self.sql, &self.stats, false);
                let rows = t
                    .rows(self.sql.node_range(after.0 as i64, lim), &NODE_TYS)
                    .await?;
                let inodes = rows
                    .iter()
                    .map(|r| {
                        let ino = codec::node_ino(r)
                            .ok_or_else(|| codec::corrupted("node row without inode"))?;
                        Ok((ino, codec::node_attr(r)?))
                    })
                    .collect::<Result<Vec<_>>>()?;
                Ok(InodePage::ordered(inodes, limit))
            })
        )
    }

    async fn list_chunks(&self, ino: Ino) -> Result<Vec<(u32, Vec<Slice>)>> {
        self.ready().await?;
        retry!(
            self,
            conn!(self, reader, |c| {
                dump_reads::list_chunks_in(c, &self.sql, &self.stats, ino).await
            })
        )
    }

    async fn list_sessions(&self) -> Result<Vec<Session>> {
        self.ready().await?;
        retry!(
            self,
            conn!(self, reader, |c| {
                let mut t = SqlTxn::new(c, &self.sql, &self.stats, false);
                TxnView::list_sessions(&mut t).await
            })
        )
    }

    async fn session_holdings(&self, sid: Sid) -> Result<SessionHoldings> {
        self.ready().await?;
        retry!(
            self,
            conn!(self, reader, |c| {
                let mut t = SqlTxn::new(c, &self.sql, &self.stats, false);
                logic::session_holdings(&mut t, sid).await
            })
        )
    }

    async fn list_locks(&self, ino: Ino) -> Result<InodeLocks> {
        self.ready().await?;
        retry!(
            self,
            conn!(self, reader, |c| {
                let mut t = SqlTxn::new(c, &self.sql, &self.stats, false);
                logic::list_locks(&mut t, ino).await
            })
        )
    }

    async fn list_pending(&self, limit: usize) -> Result<Vec<Pending>> {
        self.ready().await?;
        retry!(
            self,
            conn!(self, reader, |c| {
                dump_reads::list_pending_in(c, &self.sql, &self.stats, limit).await
            })
        )
    }

    /// A page of inodes in four queries (nodes, symlinks, xattrs, chunks) on one
    /// connection, outside a transaction: each inode's rows are read by separate statements.
    async fn read_inodes(&self, inos: &[Ino]) -> Result<Vec<Option<InodeData>>> {
        self.ready().await?;
        retry!(
            self,
            conn!(self, reader, |c| {
                dump_reads::read_inodes_in(c, &self.sql, &self.stats, inos).await
            })
        )
    }

    /// One read transaction on a connection of its own (see `dump_reads`).
    async fn snapshot(&self) -> Result<Option<Box<dyn VolumeReads + '_>>> {
        self.ready().await?;
        Ok(Some(Box::new(dump_reads::SqlSnapshot::open(self).await?)))
    }
}
