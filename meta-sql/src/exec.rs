//! The small per-driver part: running one statement with bound arguments and decoding its
//! rows into dialect-neutral values. Everything above this module (the transaction view, the
//! statements, the retry loop) is written once against [`Exec`].

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::{AssertSqlSafe, Row};

/// One bound parameter.
#[derive(Debug, Clone)]
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) enum Arg {
    /// A BIGINT.
    Int(i64),
    /// A BLOB / BYTEA / VARBINARY.
    Bytes(Vec<u8>),
    /// A short text (counter and setting names, the format record's JSON).
    Text(String),
    /// PostgreSQL only: an `int8[]`.
    Ints(Vec<i64>),
    /// PostgreSQL only: a `bytea[]`.
    Blobs(Vec<Vec<u8>>),
    /// PostgreSQL only: a `text[]`.
    Texts(Vec<String>),
}

/// The expected type of a result column. Every column is decoded as nullable: a NULL where
/// a value is required is reported by the row decoders (as `Corrupted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    /// BIGINT.
    Int,
    /// BLOB / BYTEA / VARBINARY.
    Bytes,
    /// TEXT / VARCHAR.
    Text,
}

/// One decoded result value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Val {
    /// NULL.
    Null,
    /// An integer.
    Int(i64),
    /// Bytes.
    Bytes(Vec<u8>),
    /// Text.
    Text(String),
}

/// What an executed statement reports.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Done {
    /// Rows matched (MySQL: the client sets CLIENT_FOUND_ROWS, so matched, not changed).
    pub rows: u64,
    /// MySQL's `LAST_INSERT_ID()` after the statement (0 elsewhere).
    pub last_id: u64,
}

/// A statement: SQL text (only constants and the validated table prefix) and its arguments.
#[derive(Debug, Clone)]
pub(crate) struct Stmt {
    pub sql: Arc<str>,
    pub args: Vec<Arg>,
}

/// A connection (or a transaction on one) that runs statements.
#[async_trait]
pub(crate) trait Exec: Send {
    /// Runs a statement that returns no rows.
    async fn run(&mut self, stmt: Stmt) -> Result<Done, sqlx::Error>;
    /// Runs a query and decodes every row as `cols` says.
    async fn rows(&mut self, stmt: Stmt, cols: &[Ty]) -> Result<Vec<Vec<Val>>, sqlx::Error>;
}

#[cfg(any(feature = "sqlite", feature = "mysql"))]
fn array_unsupported(db: &str) -> sqlx::Error {
    sqlx::Error::InvalidArgument(format!(
        "array parameters are PostgreSQL-only, not for {db}"
    ))
}

macro_rules! decode_row {
    ($row:expr, $cols:expr) => {{
        let row = $row;
        let mut out = Vec::with_capacity($cols.len());
        for (i, ty) in $cols.iter().enumerate() {
            out.push(match ty {
                Ty::Int => row
                    .try_get::<Option<i64>, _>(i)?
                    .map_or(Val::Null, Val::Int),
                Ty::Bytes => row
                    .try_get::<Option<Vec<u8>>, _>(i)?
                    .map_or(Val::Null, Val::Bytes),
                Ty::Text => row
                    .try_get::<Option<String>, _>(i)?
                    .map_or(Val::Null, Val::Text),
            });
        }
        out
    }};
}

macro_rules! impl_exec {
    ($conn:ty, $db:ty, $bind:ident, $last_id:expr) => {
        #[async_trait]
        impl Exec for $conn {
            async fn run(&mut self, stmt: Stmt) -> Result<Done, sqlx::Error> {
                let q = $bind(sqlx::query::<$db>(AssertSqlSafe(stmt.sql)), stmt.args)?;
                let r = q.execute(&mut *self).await?;
                #[allow(clippy::redundant_closure_call)]
                let last_id = ($last_id)(&r);
                Ok(Done {
                    rows: r.rows_affected(),
                    last_id,
                })
            }

            async fn rows(
                &mut self,
                stmt: Stmt,
                cols: &[Ty],
            ) -> Result<Vec<Vec<Val>>, sqlx::Error> {
                let q = $bind(sqlx::query::<$db>(AssertSqlSafe(stmt.sql)), stmt.args)?;
                let rows = q.fetch_all(&mut *self).await?;
                let mut out = Vec::with_capacity(rows.len());
                for row in &rows {
                    out.push(decode_row!(row, cols));
                }
                Ok(out)
            }
        }
    };
}

#[cfg(feature = "postgres")]
mod pg {
    use super::*;
    use sqlx::Postgres;
    use sqlx::postgres::PgArguments;

    type Q<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

    fn bind_pg(mut q: Q<'_>, args: Vec<Arg>) -> Result<Q<'_>, sqlx::Error> {
        for a in args {
            q = match a {
                Arg::Int(v) => q.bind(v),
                Arg::Bytes(v) => q.bind(v),
                Arg::Text(v) => q.bind(v),
                Arg::Ints(v) => q.bind(v),
                Arg::Blobs(v) => q.bind(v),
                Arg::Texts(v) => q.bind(v),
            };
        }
        Ok(q)
    }

    impl_exec!(
        sqlx::PgConnection,
        Postgres,
        bind_pg,
        |_: &sqlx::postgres::PgQueryResult| 0u64
    );
}

#[cfg(feature = "mysql")]
mod my {
    use super::*;
    use sqlx::MySql;
    use sqlx::mysql::MySqlArguments;

    type Q<'q> = sqlx::query::Query<'q, MySql, MySqlArguments>;

    fn bind_my(mut q: Q<'_>, args: Vec<Arg>) -> Result<Q<'_>, sqlx::Error> {
        for a in args {
            q = match a {
                Arg::Int(v) => q.bind(v),
                Arg::Bytes(v) => q.bind(v),
                Arg::Text(v) => q.bind(v),
                Arg::Ints(_) | Arg::Blobs(_) | Arg::Texts(_) => {
                    return Err(array_unsupported("MySQL"));
                }
            };
        }
        Ok(q)
    }

    impl_exec!(
        sqlx::MySqlConnection,
        MySql,
        bind_my,
        |r: &sqlx::mysql::MySqlQueryResult| r.last_insert_id()
    );
}

#[cfg(feature = "sqlite")]
mod lite {
    use super::*;
    use sqlx::Sqlite;
    use sqlx::sqlite::SqliteArguments;

    type Q<'q> = sqlx::query::Query<'q, Sqlite, SqliteArguments>;

    fn bind_lite(mut q: Q<'_>, args: Vec<Arg>) -> Result<Q<'_>, sqlx::Error> {
        for a in args {
            q = match a {
                Arg::Int(v) => q.bind(v),
                Arg::Bytes(v) => q.bind(v),
                Arg::Text(v) => q.bind(v),
                Arg::Ints(_) | Arg::Blobs(_) | Arg::Texts(_) => {
                    return Err(array_unsupported("SQLite"));
                }
            };
        }
        Ok(q)
    }

    impl_exec!(
        sqlx::SqliteConnection,
        Sqlite,
        bind_lite,
        |_: &sqlx::sqlite::SqliteQueryResult| 0u64
    );
}
