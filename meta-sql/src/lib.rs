#![doc = include_str!("../README.md")]

#[cfg(not(any(feature = "sqlite", feature = "postgres", feature = "mysql")))]
compile_error!("meta-sql needs at least one of the cargo features sqlite, postgres, mysql");

mod backend;
mod codec;
mod dump_reads;
mod error;
mod exec;
mod run;
mod schema;
mod sql;
mod txn;

use std::time::Duration;

use meta_core::options::{check_timeout, parse_bool, parse_int, parse_timeout};
use meta_core::{Error, ErrorKind, Result, VolumeUrl};

pub use backend::{MAX_ATTEMPTS, MAX_BATCH_OPS, RawParam, SqlBackend, SqlStats};
pub use schema::SCHEMA_VERSION;
pub use sql::{Dialect, validate_prefix};

/// The URL schemes this crate opens (those of the dialects compiled in).
pub fn schemes() -> Vec<&'static str> {
    [
        ("sqlite", cfg!(feature = "sqlite")),
        ("postgres", cfg!(feature = "postgres")),
        ("postgresql", cfg!(feature = "postgres")),
        ("mysql", cfg!(feature = "mysql")),
    ]
    .into_iter()
    .filter(|(_, built)| *built)
    .map(|(s, _)| s)
    .collect()
}

/// Backend options, from the volume URL's query string.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SqlOptions {
    /// `table_prefix` (default empty): prepended to every table name, so several volumes
    /// share one database. ASCII letters, digits and `_`, at most 32; folded to lower case.
    pub table_prefix: String,
    /// `max_connections`: size of the connection pool (PostgreSQL/MySQL, default 16) or of
    /// the SQLite reader pool (default 4; SQLite always has one writer connection).
    pub max_connections: u32,
    /// `acquire_timeout` (default `30s`): how long a call waits for a pooled connection
    /// (connecting included) before failing with `Unavailable`.
    pub acquire_timeout: Duration,
    /// PostgreSQL/MySQL `timeout` (default `10s`): how long one attempt of a call (a read,
    /// or one transaction; a batch that lost a race runs again with a new bound) may wait
    /// for the server's answers once it has a connection, so that a server that stops
    /// answering (frozen, or cut off without a reset) cannot stall a batch, a heartbeat or a
    /// clean close forever. Past it a read, or a transaction short of COMMIT, fails with
    /// `Unavailable` (nothing was applied: the server rolls the transaction back); a COMMIT
    /// or an autocommitted write with `Indeterminate` (the kinds of a lost connection, and
    /// the rule of the Redis and etcd backends' `timeout`); a connection given up that way
    /// is closed, never reused. Not bounded by it: getting a connection (`acquire_timeout`
    /// bounds that, connecting included), and the schema work that may rewrite large tables:
    /// `format`, `drop_tables`, and the schema check and upgrade of a backend's first call
    /// (which runs after a connection probe, so a server that stopped answering before
    /// fails there after `acquire_timeout`). From 1 ms to 1 day. Ignored on SQLite, whose
    /// waits `busy_timeout` bounds.
    pub timeout: Duration,
    /// SQLite `sync` (default `true`): `synchronous=FULL`, every commit is fsync'd; `false`:
    /// `synchronous=NORMAL`, a commit survives a process crash but maybe not a power loss.
    pub sync: bool,
    /// SQLite `busy_timeout` (default `5s`): how long a writer waits for another process's
    /// write lock before the batch is retried.
    pub busy_timeout: Duration,
    /// TLS parameters, `(name, value)`, passed to the driver as libpq and the MySQL client
    /// name them. PostgreSQL: `sslmode` (`disable`, `allow`, `prefer`, `require`,
    /// `verify-ca`, `verify-full`), `sslrootcert` (CA file, PEM), `sslcert` / `sslkey`
    /// (client certificate). MySQL/MariaDB: `ssl-mode` (`DISABLED`, `PREFERRED`, `REQUIRED`,
    /// `VERIFY_CA`, `VERIFY_IDENTITY`), `ssl-ca`, `ssl-cert`, `ssl-key`. Default: none (the
    /// driver's default, `prefer` / `PREFERRED`: TLS when the server offers it, unverified).
    pub tls: Vec<(String, String)>,
}

/// [`SqlOptions::timeout`] when the URL has no `timeout=`: the Redis and etcd backends'
/// default too.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest `max_connections` ([`SqlOptions::max_connections`]).
const MAX_CONNECTIONS: u32 = 1024;

/// The TLS parameters each dialect accepts (see [`SqlOptions::tls`]).
const PG_TLS: [&str; 4] = ["sslmode", "sslrootcert", "sslcert", "sslkey"];
const MYSQL_TLS: [&str; 4] = ["ssl-mode", "ssl-ca", "ssl-cert", "ssl-key"];

impl SqlOptions {
    /// The defaults for `dialect`.
    pub fn new(dialect: Dialect) -> SqlOptions {
        SqlOptions {
            table_prefix: String::new(),
            max_connections: if dialect == Dialect::Sqlite { 4 } else { 16 },
            acquire_timeout: Duration::from_secs(30),
            timeout: DEFAULT_TIMEOUT,
            sync: true,
            busy_timeout: Duration::from_secs(5),
            tls: Vec::new(),
        }
    }

    /// Checks options built in code against the ranges [`open`] enforces on URLs: a pool of
    /// 1 to 1,024 connections, timeouts from 1 ms to 1 day
    /// ([`meta_core::options::check_timeout`]; `timeout` only on PostgreSQL/MySQL,
    /// `busy_timeout` only on SQLite, where each applies), a valid table prefix.
    /// [`open_with`] calls it. Errors: `ConfigInvalid` naming the first option out of range.
    pub fn validate(&self, dialect: Dialect) -> Result<()> {
        if !(1..=MAX_CONNECTIONS).contains(&self.max_connections) {
            return Err(config(format!(
                "option max_connections = {}: expected 1 to {MAX_CONNECTIONS}",
                self.max_connections
            )));
        }
        validate_prefix(&self.table_prefix)?;
        check_timeout("acquire_timeout", self.acquire_timeout)?;
        match dialect {
            Dialect::Sqlite => check_timeout("busy_timeout", self.busy_timeout),
            Dialect::Postgres | Dialect::MySql => check_timeout("timeout", self.timeout),
        }
    }
}

fn config(msg: impl Into<String>) -> Error {
    Error::new(ErrorKind::ConfigInvalid, msg)
}

/// The dialect of a URL scheme.
pub fn dialect_of(scheme: &str) -> Option<Dialect> {
    match scheme {
        "sqlite" => Some(Dialect::Sqlite),
        "postgres" | "postgresql" => Some(Dialect::Postgres),
        "mysql" => Some(Dialect::MySql),
        _ => None,
    }
}

/// This backend for a [`meta_core::registry::BackendRegistry`]: the schemes of
/// [`schemes`], opened with [`open`]; an `sqlite://` URL names a local file.
pub fn factory() -> meta_core::registry::BackendFactory {
    meta_core::registry::BackendFactory::new(schemes(), |url| {
        Box::pin(async move {
            Ok(std::sync::Arc::new(open(url)?) as std::sync::Arc<dyn meta_core::Backend>)
        })
    })
    .with_local_path(|url| (url.scheme() == "sqlite").then(|| url.file_path()))
}

/// Opens the volume a URL names, without connecting yet: the first call (usually
/// `format` or `load`) connects and creates or upgrades the tables.
///
/// ```text
/// sqlite:///var/lib/meta/vol1.db?sync=true&busy_timeout=5s
/// sqlite://./relative.db
/// postgres://user:pass@host:5432/db?table_prefix=vol1_&max_connections=16&acquire_timeout=30s
/// postgres://user@host/db?timeout=30s
/// postgres://user@host/db?sslmode=verify-full&sslrootcert=/etc/meta/ca.pem
/// mysql://user@host/db?ssl-mode=VERIFY_IDENTITY&ssl-ca=/etc/meta/ca.pem
/// mysql://user:pass@host:3306/db?table_prefix=vol1_
/// ```
///
/// Must be called inside a tokio runtime (the pools start their maintenance tasks).
/// Errors (`ConfigInvalid`, naming the problem, never the password): another scheme, a
/// dialect not compiled in, a missing SQLite path, a malformed option value, an unknown
/// parameter, a bad table prefix, `timeout=0`; no tokio runtime.
pub fn open(mut url: VolumeUrl) -> Result<SqlBackend> {
    let scheme = url.scheme().to_string();
    let dialect = dialect_of(&scheme).ok_or_else(|| {
        config(format!(
            "meta-sql opens sqlite://, postgres:// and mysql:// URLs, not {scheme}://"
        ))
    })?;
    let mut o = SqlOptions::new(dialect);
    if let Some(p) = url.take_param("table_prefix") {
        o.table_prefix = validate_prefix(&p)?;
    }
    if let Some(v) = url.take_param("max_connections") {
        o.max_connections = parse_int("max_connections", &v, 1, MAX_CONNECTIONS.into())? as u32;
    }
    if let Some(v) = url.take_param("acquire_timeout") {
        o.acquire_timeout = parse_timeout("acquire_timeout", &v)?;
    }
    if dialect != Dialect::Sqlite
        && let Some(v) = url.take_param("timeout")
    {
        o.timeout = parse_timeout("timeout", &v)?;
    }
    let tls_names: &[&str] = match dialect {
        Dialect::Postgres => &PG_TLS,
        Dialect::MySql => &MYSQL_TLS,
        Dialect::Sqlite => &[],
    };
    for name in tls_names {
        if let Some(v) = url.take_param(name) {
            o.tls.push((name.to_string(), v));
        }
    }
    if dialect == Dialect::Sqlite {
        if let Some(v) = url.take_param("sync") {
            o.sync = parse_bool("sync", &v)?;
        }
        if let Some(v) = url.take_param("busy_timeout") {
            o.busy_timeout = parse_timeout("busy_timeout", &v)?;
        }
    }
    url.clone().finish()?;
    open_with(&url, o)
}

/// [`open`] with options given as a struct (`url`'s own parameters are ignored).
/// Errors: those of [`SqlOptions::validate`], then [`open`]'s.
pub fn open_with(url: &VolumeUrl, o: SqlOptions) -> Result<SqlBackend> {
    let dialect = dialect_of(url.scheme())
        .ok_or_else(|| config(format!("meta-sql cannot open {}:// URLs", url.scheme())))?;
    o.validate(dialect)?;
    let prefix = validate_prefix(&o.table_prefix)?;
    if tokio::runtime::Handle::try_current().is_err() {
        return Err(config(
            "meta-sql: open the volume inside a tokio runtime (the connection pools need one)",
        ));
    }
    let display = url.redacted();
    let sql = sql::Sql::new(dialect, prefix);
    let pools = match dialect {
        Dialect::Sqlite => sqlite_pools(url, &o)?,
        Dialect::Postgres => postgres_pool(url, &o)?,
        Dialect::MySql => mysql_pool(url, &o)?,
    };
    // SQLite has no server to wait for; its lock waits are bounded by busy_timeout.
    let timeout = (dialect != Dialect::Sqlite).then_some(o.timeout);
    Ok(SqlBackend::new(pools, sql, display, timeout))
}

#[allow(dead_code)]
fn not_built(d: Dialect) -> Error {
    config(format!(
        "meta-sql was built without the `{}` cargo feature; schemes in this build: {}",
        d.scheme(),
        schemes().join(", ")
    ))
}

/// Prepared statements cached per connection: enough for every statement shape of a batch.
#[allow(dead_code)]
const STATEMENT_CACHE: usize = 512;

#[cfg(feature = "sqlite")]
fn sqlite_pools(url: &VolumeUrl, o: &SqlOptions) -> Result<backend::Pools> {
    use sqlx::sqlite::{
        SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
    };
    let path = url.file_path();
    if path.is_empty() {
        return Err(config(format!(
            "URL {url} names no file; use sqlite:///abs/path.db or sqlite://./rel.db"
        )));
    }
    let opts = SqliteConnectOptions::new()
        .filename(&path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(if o.sync {
            SqliteSynchronous::Full
        } else {
            SqliteSynchronous::Normal
        })
        .busy_timeout(o.busy_timeout)
        .foreign_keys(false)
        .statement_cache_capacity(STATEMENT_CACHE);
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(0)
        .test_before_acquire(false)
        .acquire_timeout(o.acquire_timeout)
        .connect_lazy_with(opts.clone());
    let reader = SqlitePoolOptions::new()
        .max_connections(o.max_connections)
        .min_connections(0)
        .test_before_acquire(false)
        .acquire_timeout(o.acquire_timeout)
        .connect_lazy_with(opts);
    Ok(backend::Pools::Sqlite { writer, reader })
}

#[cfg(not(feature = "sqlite"))]
fn sqlite_pools(_: &VolumeUrl, _: &SqlOptions) -> Result<backend::Pools> {
    Err(not_built(Dialect::Sqlite))
}

/// Session settings of every PostgreSQL connection (sent at connect, no extra round trip).
/// Figures: `examples/sql_bench`, 16 tasks, batched creates/s at 10,000 / 20,000 / 40,000
/// files, PostgreSQL 15 on loopback.
///
/// - `plan_cache_mode=force_generic_plan`: each prepared statement is planned once per
///   connection. Re-planning the merged write statement of a batch at every execution costs
///   more than running it: `force_custom_plan` (with `enable_seqscan=off`) gave 14.8k /
///   14.7k / 15.0k against 24.8k / 22.0k / 28.7k with the two settings here.
/// - `enable_seqscan=off`: every statement this crate sends finds its rows by primary key or
///   unique index (key lists, `UNNEST` of keys, key ranges). A generic plan is made on the
///   connection's first use, maybe of a new, nearly empty table; the planner then prefers a
///   sequential scan and a hash join, and the connection keeps that plan as the table grows.
///   Without this setting each batch read the whole `edge` table in its prefetch and the
///   whole `node` table in its directory update, and batched creates fell with the volume's
///   size: 10.3k / 6.8k / 2.8k. The setting only adds a cost penalty, so a table without a
///   usable index is still scanned.
#[cfg(feature = "postgres")]
pub(crate) const PG_SESSION: [(&str, &str); 2] = [
    ("plan_cache_mode", "force_generic_plan"),
    ("enable_seqscan", "off"),
];

#[cfg(feature = "postgres")]
fn postgres_pool(url: &VolumeUrl, o: &SqlOptions) -> Result<backend::Pools> {
    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
    let opts: PgConnectOptions = url.url().as_str().parse().map_err(|_| {
        config(format!(
            "cannot parse the PostgreSQL URL {url} (expected postgres://user:pass@host:port/db)"
        ))
    })?;
    let mut opts = opts
        .statement_cache_capacity(STATEMENT_CACHE)
        .application_name("meta")
        .options(PG_SESSION);
    for (name, v) in &o.tls {
        opts = match name.as_str() {
            "sslmode" => opts.ssl_mode(v.parse().map_err(|_| {
                config(format!(
                    "URL parameter sslmode={v:?}: expected disable, allow, prefer, require, \
                     verify-ca or verify-full"
                ))
            })?),
            "sslrootcert" => opts.ssl_root_cert(v.as_str()),
            "sslcert" => opts.ssl_client_cert(v.as_str()),
            "sslkey" => opts.ssl_client_key(v.as_str()),
            other => return Err(config(format!("{other} is not a PostgreSQL TLS parameter"))),
        };
    }
    let pool = PgPoolOptions::new()
        .max_connections(o.max_connections)
        .min_connections(0)
        .test_before_acquire(false)
        .acquire_timeout(o.acquire_timeout)
        .connect_lazy_with(opts);
    Ok(backend::Pools::Postgres(pool))
}

#[cfg(not(feature = "postgres"))]
fn postgres_pool(_: &VolumeUrl, _: &SqlOptions) -> Result<backend::Pools> {
    Err(not_built(Dialect::Postgres))
}

#[cfg(feature = "mysql")]
fn mysql_pool(url: &VolumeUrl, o: &SqlOptions) -> Result<backend::Pools> {
    use sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
    let opts: MySqlConnectOptions = url.url().as_str().parse().map_err(|_| {
        config(format!(
            "cannot parse the MySQL URL {url} (expected mysql://user:pass@host:port/db)"
        ))
    })?;
    let mut opts = opts.statement_cache_capacity(STATEMENT_CACHE);
    for (name, v) in &o.tls {
        opts = match name.as_str() {
            "ssl-mode" => opts.ssl_mode(v.parse().map_err(|_| {
                config(format!(
                    "URL parameter ssl-mode={v:?}: expected DISABLED, PREFERRED, REQUIRED, \
                     VERIFY_CA or VERIFY_IDENTITY"
                ))
            })?),
            "ssl-ca" => opts.ssl_ca(v.as_str()),
            "ssl-cert" => opts.ssl_client_cert(v.as_str()),
            "ssl-key" => opts.ssl_client_key(v.as_str()),
            other => return Err(config(format!("{other} is not a MySQL TLS parameter"))),
        };
    }
    let pool = MySqlPoolOptions::new()
        .max_connections(o.max_connections)
        .min_connections(0)
        .test_before_acquire(false)
        .acquire_timeout(o.acquire_timeout)
        .after_connect(|conn, _| {
            Box::pin(async move {
                // READ COMMITTED: no gap locks on absent keys (creates in one directory do
                // not block each other), and each statement sees what committed before it.
                sqlx::raw_sql("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                    .execute(&mut *conn)
                    .await?;
                Ok(())
            })
        })
        .connect_lazy_with(opts);
    Ok(backend::Pools::MySql(pool))
}

#[cfg(not(feature = "mysql"))]
fn mysql_pool(_: &VolumeUrl, _: &SqlOptions) -> Result<backend::Pools> {
    Err(not_built(Dialect::MySql))
}

#[cfg(all(test, feature = "postgres"))]
mod tests {
    use super::*;
    use crate::exec::{Arg, Stmt, Ty};
    use crate::sql::Sql;
    use meta_core::Counter;

    /// The hot statements of a batch, as this crate builds them for `sql`'s tables.
    fn batch_statements(sql: &Sql) -> Vec<(&'static str, Stmt)> {
        let key = |p: i64, n: &str| (p, n.as_bytes().to_vec());
        let mut v = Vec::new();
        if let Some(s) = sql.edges_and_nodes(vec![key(1, "a"), key(1, "b")], vec![1, 2]) {
            v.push(("prefetch of entries and inodes", s));
        }
        v.extend(
            sql.nodes(vec![1, 2], true)
                .into_iter()
                .map(|s| ("locked inodes", s)),
        );
        v.extend(
            sql.edges(vec![key(1, "a")], true)
                .into_iter()
                .map(|s| ("locked entries", s)),
        );
        let edge_key = [("parent", Ty::Int), ("name", Ty::Bytes)];
        let del = vec![vec![Arg::Int(1), Arg::Bytes(b"a".to_vec())]];
        v.extend(
            sql.delete_keys("edge", &edge_key, del)
                .into_iter()
                .map(|s| ("entry delete", s)),
        );
        v.extend(
            sql.dir_stats(vec![1, 2])
                .into_iter()
                .map(|s| ("directory statistics read", s)),
        );
        let write: Vec<Stmt> = sql
            .dir_deltas(vec![
                [1, 1, 0, 0, 0, 1, 4096, 4096],
                [2, 1, 0, 0, 1, -1, -10, -4096],
            ])
            .into_iter()
            .chain(sql.counter_deltas(vec![
                (Counter::UsedSpace.name().to_string(), 4096),
                (Counter::TotalInodes.name().to_string(), 1),
            ]))
            .collect();
        v.extend(
            sql.quota_rows(vec![2, 3], true)
                .into_iter()
                .map(|s| ("locked quota rows", s)),
        );
        v.extend(
            sql.quota_deltas(vec![[2, 1, 0, 4096, 1, 1, 1, 4096]])
                .into_iter()
                .map(|s| ("conditional update of one quota", s)),
        );
        v.push((
            "quota counters",
            sql.quota_counters(crate::sql::LockMode::Share),
        ));
        v.push(("ancestors of directories", sql.ancestors(vec![2, 3])));
        let quota_cols: Vec<(&str, Ty)> = codec::QUOTA_COLS.iter().map(|c| (*c, Ty::Int)).collect();
        let quota_row = vec![Arg::Int(2); quota_cols.len()];
        let write: Vec<Stmt> = write
            .into_iter()
            .chain(sql.insert("quota", &quota_cols, 1, vec![quota_row], true))
            .chain([
                sql.counter_add(crate::sql::QUOTA_COUNT, 1),
                sql.counter_add(crate::sql::QUOTA_GEN, 1),
            ])
            .chain(sql.quota_deltas(vec![
                [2, 1, 0, 4096, 1, 1, 1, 4096],
                [3, -1, 0, 0, 0, 0, 0, 0],
            ]))
            .chain([sql.quota_gen_guard(7)])
            .collect();
        let guards = vec![Some(1); write.len()];
        v.push((
            "merged directory, statistics and counter update",
            sql.merge_pg(write, &guards),
        ));
        v
    }

    /// On a new, empty volume (the planner's worst case: its generic plans are what a pooled
    /// connection keeps as the tables grow), the batch statements find `node`, `edge`,
    /// `quota` and `counter` rows by index, never by a sequential scan of the table (see
    /// [`PG_SESSION`]).
    #[tokio::test]
    async fn batch_statements_use_indexes_on_a_new_volume() -> anyhow::Result<()> {
        let Some(url) = std::env::var("META_TEST_POSTGRES_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            let why = "META_TEST_POSTGRES_URL is not set";
            if meta_conformance::skips_are_failures() {
                anyhow::bail!("{why} and META_CONFORMANCE_REQUIRE=1");
            }
            eprintln!("SKIP batch_statements_use_indexes_on_a_new_volume: {why}");
            return Ok(());
        };
        let prefix = format!("plan{:08x}_", rand::random::<u32>());
        let sep = if url.contains('?') { '&' } else { '?' };
        let backend = open(meta_core::parse_url(&format!("{url}{sep}table_prefix={prefix}"))?.0)?;
        backend.ready().await?;
        #[allow(irrefutable_let_patterns)] // the only pool of a postgres-only build
        let backend::Pools::Postgres(pool) = &backend.pools else {
            anyhow::bail!("a postgres:// URL opened another pool");
        };
        let mut conn = pool.acquire().await?;
        let mut failures = Vec::new();
        for (what, stmt) in batch_statements(&backend.sql) {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("PREPARE q AS {}", stmt.sql)))
                .execute(&mut *conn)
                .await?;
            let nulls = vec!["NULL"; stmt.args.len()].join(", ");
            let plan: Vec<String> =
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!("EXPLAIN EXECUTE q({nulls})")))
                    .fetch_all(&mut *conn)
                    .await?;
            sqlx::raw_sql("DEALLOCATE q").execute(&mut *conn).await?;
            let plan = plan.join("\n");
            for table in ["node", "edge", "quota", "counter"] {
                if plan.contains(&format!("Seq Scan on {prefix}{table}")) {
                    failures.push(format!("{what} scans {table}:\n{plan}"));
                }
            }
        }
        drop(conn);
        backend.drop_tables().await?;
        backend.close().await;
        anyhow::ensure!(failures.is_empty(), "{}", failures.join("\n\n"));
        Ok(())
    }
}
