//! The schema: the embedded migrations of each dialect and [`migrate`], which applies the
//! ones newer than the stored version.

use meta_core::{Error, ErrorKind, Result, Timespec};

use crate::exec::{Exec, Ty, Val};
use crate::sql::{Dialect, Sql};
use crate::txn::{SqlTxn, Stats};

/// The schema version this build creates and understands.
pub const SCHEMA_VERSION: i64 = 5;

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
