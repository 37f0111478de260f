//! The one place that turns sqlx errors into [`meta_core::ErrorKind`]s.
//!
//! What an error means depends on the dialect (PostgreSQL SQLSTATEs, MySQL error numbers,
//! SQLite extended result codes) and on when it happened ([`Stage`]): a lost connection before
//! COMMIT means nothing was applied, but during COMMIT the outcome is unknown.
//!
//! `Conflict` is the retryable kind: the batch's transaction lost a race (serialization
//! failure, deadlock, lock wait timeout, busy database, or a unique violation because another
//! client created the same key first). The backend re-runs the whole batch with fresh reads;
//! after the retry budget the `Conflict` reaches the caller (EAGAIN).

use meta_core::{Error, ErrorKind};

use crate::sql::Dialect;

/// When the error happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Connecting, or acquiring a pooled connection.
    Connect,
    /// `BEGIN`.
    Begin,
    /// A statement inside a transaction, or an autocommitted read.
    Statement,
    /// `COMMIT`.
    Commit,
    /// An autocommitted single-statement write (`reserve_ids`): it either happened or not,
    /// but a lost connection leaves the outcome unknown like a COMMIT.
    AutoCommit,
}

impl Stage {
    fn verb(self) -> &'static str {
        match self {
            Stage::Connect => "connect to",
            Stage::Begin => "begin a transaction on",
            Stage::Statement => "run a statement on",
            Stage::Commit => "commit a transaction on",
            Stage::AutoCommit => "update",
        }
    }

    /// True when a failure here may have left the write applied.
    fn outcome_unknown(self) -> bool {
        matches!(self, Stage::Commit | Stage::AutoCommit)
    }
}

/// A call whose answer did not come within the URL's `timeout` (`after`) at `stage`: its
/// connection is closed (`run::Held`), so the server rolls back what it had open. Before
/// COMMIT nothing was applied (`Unavailable`); at COMMIT or an autocommitted write the
/// outcome is unknown (`Indeterminate`), as when the connection is lost there.
pub(crate) fn timed_out(stage: Stage, dialect: Dialect, after: std::time::Duration) -> Error {
    let kind = if stage.outcome_unknown() {
        ErrorKind::Indeterminate
    } else {
        ErrorKind::Unavailable
    };
    Error::new(
        kind,
        format!(
            "{}: cannot {} the database: no answer within {after:?} (URL parameter timeout)",
            dialect.scheme(),
            stage.verb()
        ),
    )
}

/// Classifies `e`, raised at `stage` on a `dialect` database.
pub(crate) fn classify(e: sqlx::Error, stage: Stage, dialect: Dialect) -> Error {
    let at = format!("{}: cannot {} the database", dialect.scheme(), stage.verb());
    let kind = match &e {
        sqlx::Error::Database(db) => match dialect {
            Dialect::Postgres => postgres(db.code().as_deref().unwrap_or("")),
            Dialect::MySql => mysql(&**db),
            Dialect::Sqlite => sqlite(db.code().as_deref().unwrap_or("")),
        },
        // The connection broke (reset, EOF, timeout) or the server sent something we could
        // not parse. Before COMMIT nothing was applied (the server rolls back a transaction
        // whose connection dies); during COMMIT the commit may or may not have happened.
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::Tls(_) => {
            if stage.outcome_unknown() {
                ErrorKind::Indeterminate
            } else {
                ErrorKind::Unavailable
            }
        }
        // No connection could be had in time, the pool was closed, or SQLite's worker
        // thread died: nothing was sent.
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => ErrorKind::Unavailable,
        // Bad connect options (host, TLS mode, file path): the URL is wrong.
        sqlx::Error::Configuration(_) => ErrorKind::ConfigInvalid,
        // A column holds a value of another type than the schema says (a DBA altered a
        // table): the stored data does not match what this build reads.
        sqlx::Error::ColumnDecode { .. } | sqlx::Error::Decode(_) => ErrorKind::Corrupted,
        // Missing columns or rows, encode failures, savepoint misuse: our statements and the
        // schema disagree, a bug.
        _ => ErrorKind::Internal,
    };
    Error::new(at_stage(kind, stage, &e), at).with_source(e)
}

/// A server-side failure reported while committing (the connection failed, the server is
/// shutting down, an I/O error on the server) leaves the outcome unknown: the commit may have
/// been durable before the error was sent. Errors that prove nothing was applied (a
/// serialization failure, a pool without connections) keep their kind.
fn at_stage(kind: ErrorKind, stage: Stage, e: &sqlx::Error) -> ErrorKind {
    match (kind, e) {
        (ErrorKind::Unavailable, sqlx::Error::Database(_)) if stage.outcome_unknown() => {
            ErrorKind::Indeterminate
        }
        _ => kind,
    }
}

/// PostgreSQL SQLSTATE codes (Appendix A of the PostgreSQL manual).
fn postgres(code: &str) -> ErrorKind {
    match code {
        // serialization_failure: a REPEATABLE READ / SERIALIZABLE transaction (or a
        // server-side default isolation we do not set) lost a race. Retry the batch.
        "40001" => ErrorKind::Conflict,
        // deadlock_detected: two batches locked rows in opposite orders; the server aborted
        // this one. Retry.
        "40P01" => ErrorKind::Conflict,
        // unique_violation: another client inserted the same (parent, name) or inode first
        // and committed. Retry: the re-run op sees the row (EEXIST for a create).
        "23505" => ErrorKind::Conflict,
        // division_by_zero: raised only by the guards of an autocommitted batch statement
        // (`count / (count >= expected)::int`, see `Sql::merge_pg`) when a directory it
        // updates was removed concurrently; the statement committed nothing. Retry.
        "22012" => ErrorKind::Conflict,
        // lock_not_available (lock_timeout / NOWAIT): a row lock was busy. Retry.
        "55P03" => ErrorKind::Conflict,
        // query_canceled (statement_timeout, pg_cancel_backend): nothing of the transaction
        // remains. Temporary.
        "57014" => ErrorKind::Unavailable,
        // admin_shutdown, crash_shutdown, cannot_connect_now: the server is going away or
        // starting up. Temporary.
        "57P01" | "57P02" | "57P03" => ErrorKind::Unavailable,
        // insufficient_privilege, invalid_authorization_specification, invalid_password,
        // invalid_catalog_name (no such database): the URL or the role is wrong.
        "42501" | "28000" | "28P01" | "3D000" => ErrorKind::ConfigInvalid,
        // undefined_table / undefined_column: a table of the volume was dropped or altered
        // behind our back after the migrations ran.
        "42P01" | "42703" => ErrorKind::Corrupted,
        c if c.starts_with("08") => ErrorKind::Unavailable, // connection_exception class
        c if c.starts_with("53") => ErrorKind::Unavailable, // insufficient_resources (too many connections, disk full)
        c if c.starts_with("58") => ErrorKind::Unavailable, // system_error (I/O error on the server)
        c if c.starts_with("XX") => ErrorKind::Corrupted, // internal_error / data_corrupted / index_corrupted
        // Syntax errors, data exceptions (value out of range), failed-transaction state
        // (25P02): our statements are wrong — a bug.
        _ => ErrorKind::Internal,
    }
}

/// MySQL / MariaDB server error numbers (MySQL "Server Error Message Reference").
fn mysql(db: &dyn sqlx::error::DatabaseError) -> ErrorKind {
    #[cfg(feature = "mysql")]
    let number = db
        .try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
        .map_or(0, |e| e.number());
    #[cfg(not(feature = "mysql"))]
    let number = {
        let _ = db;
        0u16
    };
    match number {
        // ER_LOCK_DEADLOCK: InnoDB chose this transaction as a deadlock victim and rolled it
        // back. Retry.
        1213 => ErrorKind::Conflict,
        // ER_LOCK_WAIT_TIMEOUT: a row lock was held longer than innodb_lock_wait_timeout.
        // Retry (we roll the whole transaction back).
        1205 => ErrorKind::Conflict,
        // ER_DUP_ENTRY: another client inserted the same key first. Retry.
        1062 => ErrorKind::Conflict,
        // ER_CHECKREAD: "Record has changed since last read" (a snapshot conflict). Retry.
        1020 => ErrorKind::Conflict,
        // ER_CON_COUNT_ERROR (too many connections), ER_SERVER_SHUTDOWN, ER_QUERY_INTERRUPTED
        // (KILL QUERY, max_statement_time): temporary.
        1040 | 1053 | 1317 | 3024 | 1969 => ErrorKind::Unavailable,
        // ER_DBACCESS_DENIED_ERROR, ER_ACCESS_DENIED_ERROR, ER_BAD_DB_ERROR (no such
        // database), ER_TABLEACCESS_DENIED_ERROR: the URL or the account is wrong.
        1044 | 1045 | 1049 | 1142 => ErrorKind::ConfigInvalid,
        // ER_NO_SUCH_TABLE, ER_BAD_FIELD_ERROR: a table of the volume was dropped or altered
        // after the migrations ran.
        1146 | 1054 => ErrorKind::Corrupted,
        // ER_RECORD_FILE_FULL / ER_DISK_FULL / ER_OUT_OF_RESOURCES: the server cannot write
        // now. Temporary.
        1114 | 1021 | 1041 => ErrorKind::Unavailable,
        // Syntax errors, data too long, out-of-range values, unknown numbers: a bug.
        _ => ErrorKind::Internal,
    }
}

/// SQLite extended result codes (<https://www.sqlite.org/rescode.html>), as decimal text.
fn sqlite(code: &str) -> ErrorKind {
    let Ok(n) = code.parse::<i32>() else {
        return ErrorKind::Internal;
    };
    match n {
        // SQLITE_CONSTRAINT_UNIQUE (2067), SQLITE_CONSTRAINT_PRIMARYKEY (1555): a key exists.
        // With one writer at a time this means another process wrote it between our read and
        // our insert. Retry.
        2067 | 1555 => ErrorKind::Conflict,
        _ => match n & 0xff {
            // SQLITE_BUSY (incl. BUSY_RECOVERY, BUSY_SNAPSHOT, BUSY_TIMEOUT): another process
            // holds the write lock past busy_timeout. Retry.
            5 => ErrorKind::Conflict,
            // SQLITE_LOCKED: a table is locked by another connection of this process
            // (shared cache). Retry.
            6 => ErrorKind::Conflict,
            // SQLITE_CORRUPT, SQLITE_NOTADB: the file is damaged or not a database.
            11 | 26 => ErrorKind::Corrupted,
            // SQLITE_CANTOPEN, SQLITE_READONLY, SQLITE_PERM, SQLITE_AUTH: the path or its
            // permissions are wrong.
            14 | 8 | 3 | 23 => ErrorKind::ConfigInvalid,
            // SQLITE_IOERR, SQLITE_FULL (disk full), SQLITE_NOMEM, SQLITE_PROTOCOL: the
            // system refused; SQLite rolled the statement back. Temporary.
            10 | 13 | 7 | 15 => ErrorKind::Unavailable,
            // SQLITE_ERROR (syntax, no such table), SQLITE_MISUSE, SQLITE_RANGE, other
            // constraint failures: our statements are wrong — a bug.
            _ => ErrorKind::Internal,
        },
    }
}

/// Adjusts a classified error for the place it happened: inside a batch transaction every
/// driver error ends the batch (PostgreSQL refuses further statements after one fails), so a
/// kind that is not batch-fatal becomes `Internal` there.
pub(crate) fn in_batch(e: Error) -> Error {
    if e.kind().is_batch_fatal() {
        e
    } else {
        let ctx = format!("{} ({})", e.context(), e.kind());
        Error::new(ErrorKind::Internal, ctx).with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(postgres("40001"), ErrorKind::Conflict);
        assert_eq!(postgres("40P01"), ErrorKind::Conflict);
        assert_eq!(postgres("23505"), ErrorKind::Conflict);
        assert_eq!(postgres("08006"), ErrorKind::Unavailable);
        assert_eq!(postgres("42601"), ErrorKind::Internal);
        assert_eq!(sqlite("5"), ErrorKind::Conflict);
        assert_eq!(sqlite("517"), ErrorKind::Conflict);
        assert_eq!(sqlite("2067"), ErrorKind::Conflict);
        assert_eq!(sqlite("1555"), ErrorKind::Conflict);
        assert_eq!(sqlite("11"), ErrorKind::Corrupted);
        assert_eq!(sqlite("1"), ErrorKind::Internal);
        let io = classify(
            sqlx::Error::Io(std::io::Error::other("reset")),
            Stage::Commit,
            Dialect::Postgres,
        );
        assert_eq!(io.kind(), ErrorKind::Indeterminate);
        let io = classify(
            sqlx::Error::Io(std::io::Error::other("reset")),
            Stage::Statement,
            Dialect::Postgres,
        );
        assert_eq!(io.kind(), ErrorKind::Unavailable);
    }

    /// A database error with a SQLSTATE, as the server would send it.
    #[derive(Debug)]
    struct Coded(&'static str);

    impl std::fmt::Display for Coded {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "server error {}", self.0)
        }
    }

    impl std::error::Error for Coded {}

    impl sqlx::error::DatabaseError for Coded {
        fn message(&self) -> &str {
            "server error"
        }
        fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
            Some(self.0.into())
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    /// A server-side failure during COMMIT (connection failure, shutdown, I/O error on the
    /// server) leaves the outcome unknown; before COMMIT it means nothing was applied; a
    /// serialization failure is a conflict at any stage.
    #[test]
    fn server_errors_during_commit_are_indeterminate() {
        let at = |code, stage| {
            classify(
                sqlx::Error::Database(Box::new(Coded(code))),
                stage,
                Dialect::Postgres,
            )
            .kind()
        };
        for code in ["08006", "57P01", "58030"] {
            assert_eq!(at(code, Stage::Commit), ErrorKind::Indeterminate, "{code}");
            assert_eq!(
                at(code, Stage::AutoCommit),
                ErrorKind::Indeterminate,
                "{code}"
            );
            assert_eq!(at(code, Stage::Statement), ErrorKind::Unavailable, "{code}");
        }
        assert_eq!(at("40001", Stage::Commit), ErrorKind::Conflict);
        let pool = classify(sqlx::Error::PoolTimedOut, Stage::Commit, Dialect::Postgres);
        assert_eq!(pool.kind(), ErrorKind::Unavailable);
    }
}
