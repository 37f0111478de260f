//! The schema: the embedded migrations of each dialect, [`migrate`], which applies the ones
//! newer than the stored version, and [`format_in`], what a newly formatted volume's tables
//! hold.

use meta_core::logic;
use meta_core::{Counter, Error, ErrorKind, Ino, Result, Setting, Timespec};

use crate::codec;
use crate::exec::{Arg, Exec, Ty, Val};
use crate::sql::{Dialect, QUOTA_COUNT, QUOTA_GEN, RENAME_LOCK, Sql, TABLES};
use crate::txn::{SqlTxn, Stats};

/// The schema version this build creates and understands.
pub const SCHEMA_VERSION: i64 = 6;

/// The embedded migrations of a dialect: `(version, description, SQL)`.
fn migrations(d: Dialect) -> &'static [(i64, &'static str, &'static str)] {
    match d {
        Dialect::Sqlite => &[
            (
                1,
                "initial schema",
                include_str!("../migrations/sqlite/0001_init.sql"),
            ),
            (
                2,
                "sessions, open files, locks",
                include_str!("../migrations/sqlite/0002_sessions.sql"),
            ),
            (
                3,
                "directory statistics",
                include_str!("../migrations/sqlite/0003_dirstat.sql"),
            ),
            (
                4,
                "directory quotas",
                include_str!("../migrations/sqlite/0004_quota.sql"),
            ),
            (
                5,
                "quota set generation",
                include_str!("../migrations/sqlite/0005_quota_gen.sql"),
            ),
            (
                6,
                "directory statistics in node rows",
                include_str!("../migrations/sqlite/0006_dirstat_in_node.sql"),
            ),
        ],
        Dialect::Postgres => &[
            (
                1,
                "initial schema",
                include_str!("../migrations/postgres/0001_init.sql"),
            ),
            (
                2,
                "sessions, open files, locks",
                include_str!("../migrations/postgres/0002_sessions.sql"),
            ),
            (
                3,
                "directory statistics",
                include_str!("../migrations/postgres/0003_dirstat.sql"),
            ),
            (
                4,
                "directory quotas",
                include_str!("../migrations/postgres/0004_quota.sql"),
            ),
            (
                5,
                "quota set generation",
                include_str!("../migrations/postgres/0005_quota_gen.sql"),
            ),
            (
                6,
                "directory statistics in node rows",
                include_str!("../migrations/postgres/0006_dirstat_in_node.sql"),
            ),
        ],
        Dialect::MySql => &[
            (
                1,
                "initial schema",
                include_str!("../migrations/mysql/0001_init.sql"),
            ),
            (
                2,
                "sessions, open files, locks",
                include_str!("../migrations/mysql/0002_sessions.sql"),
            ),
            (
                3,
                "directory statistics",
                include_str!("../migrations/mysql/0003_dirstat.sql"),
            ),
            (
                4,
                "directory quotas",
                include_str!("../migrations/mysql/0004_quota.sql"),
            ),
            (
                5,
                "quota set generation",
                include_str!("../migrations/mysql/0005_quota_gen.sql"),
            ),
            (
                6,
                "directory statistics in node rows",
                include_str!("../migrations/mysql/0006_dirstat_in_node.sql"),
            ),
        ],
    }
}

/// Creates the tables (migrations newer than the stored version), under the dialect's
/// migration lock. `Unsupported` when the database holds a newer schema than this build.
pub(crate) async fn migrate(c: &mut dyn Exec, sql: &Sql, stats: &Stats) -> Result<()> {
    let mut t = SqlTxn::new(c, sql, stats, false);
    if let Some(lock) = sql.migration_lock() {
        if sql.d == Dialect::MySql {
            let got = t.rows(lock, &[Ty::Int]).await?;
            if got.first().and_then(|r| r.first()) != Some(&Val::Int(1)) {
                return Err(Error::new(
                    ErrorKind::Unavailable,
                    "mysql: another client holds the schema migration lock for 60 s",
                ));
            }
        } else {
            t.run(lock).await?;
        }
    }
    let r = async {
        t.run(sql.version_table()).await?;
        let v = t.rows(sql.version_get(), &[Ty::Int]).await?;
        let have = match v.first().and_then(|r| r.first()) {
            Some(Val::Int(i)) => *i,
            _ => 0,
        };
        if have > SCHEMA_VERSION {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!(
                    "{}: the tables of prefix {:?} have schema version {have}, newer than this \
                     build understands ({SCHEMA_VERSION}); upgrade meta",
                    sql.d.scheme(),
                    sql.prefix()
                ),
            ));
        }
        for (version, description, text) in migrations(sql.d) {
            if *version <= have {
                continue;
            }
            for stmt in sql.script(text) {
                t.run(stmt).await?;
            }
            t.run(sql.version_put(*version, description, Timespec::now().sec))
                .await?;
        }
        Ok(())
    }
    .await;
    if let Some(unlock) = sql.migration_unlock() {
        let _ = t.rows(unlock, &[Ty::Int]).await;
    }
    r.map_err(|e| {
        if e.kind() == ErrorKind::Internal {
            Error::new(
                ErrorKind::Unavailable,
                format!("{}: cannot create the schema: {e}", sql.d.scheme()),
            )
        } else {
            e
        }
    })
}

/// The body of `format` inside its transaction; returns the record now in force, and the
/// quota set's generation when it formatted the volume (it starts at the time in
/// nanoseconds, so formatting a volume again never repeats a generation a client may
/// remember).
pub(crate) async fn format_in(
    c: &mut dyn Exec,
    sql: &Sql,
    stats: &Stats,
    setting: &Setting,
    force: bool,
) -> Result<(Setting, Option<i64>)> {
    let mut t = SqlTxn::new(c, sql, stats, true);
    let rows = t.rows(sql.setting_get(true), &[Ty::Text]).await?;
    if let Some(r) = rows.first()
        && !force
    {
        let old = Setting::from_json(codec::text(&r[0], "format record")?.as_bytes())?;
        if old.name == setting.name {
            return Ok((old, None));
        }
        return Err(Error::new(
            ErrorKind::AlreadyExists,
            format!(
                "the tables hold volume {:?}; format with force to erase it",
                old.name
            ),
        ));
    }
    for table in TABLES.iter().filter(|t| **t != "schema_version") {
        t.run(sql.erase(table)).await?;
    }
    let now = Timespec::now();
    let generation = now
        .sec
        .saturating_mul(1_000_000_000)
        .saturating_add(i64::from(now.nsec));
    let root = logic::root_attr(now);
    t.run(sql.setting_put(String::from_utf8_lossy(&setting.to_json()).into_owned()))
        .await?;
    let node_cols: Vec<(&str, Ty)> = codec::NODE_COLS.iter().map(|c| (*c, Ty::Int)).collect();
    for s in sql.insert(
        "node",
        &node_cols,
        1,
        vec![codec::node_args(Ino::ROOT, &root)],
        false,
    ) {
        t.run(s).await?;
    }
    let counters = Counter::ALL
        .into_iter()
        .chain(Counter::SESSIONS)
        .map(|c| {
            let v = match c {
                Counter::UsedSpace => root.space() as i64,
                Counter::TotalInodes => 1,
                c => c.initial(),
            };
            (c.name(), v)
        })
        .chain([(RENAME_LOCK, 0), (QUOTA_COUNT, 0), (QUOTA_GEN, generation)])
        .map(|(n, v)| vec![Arg::Text(n.to_string()), Arg::Int(v)])
        .collect();
    for s in sql.insert(
        "counter",
        &[("name", Ty::Text), ("value", Ty::Int)],
        1,
        counters,
        false,
    ) {
        t.run(s).await?;
    }
    Ok((setting.clone(), Some(generation)))
}
