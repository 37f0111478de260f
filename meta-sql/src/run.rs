//! How [`SqlBackend`](crate::backend::SqlBackend) runs its work on the database: one
//! transaction on the writer pool (`txn!`, committing on `Ok`), a pooled connection without
//! one (`conn!`), and the retry of a transaction that lost a race (`retry!`: `Conflict`,
//! exponential backoff with jitter). Macros, because each pool has its own connection
//! type; the names they use are spelled with full paths, so they expand anywhere in the
//! crate.
//!
//! Each call's waits on the server are bounded by the URL's `timeout` ([`within`]; the
//! `unbounded` forms of `txn!` and `conn!` are for schema changes, which may take long).

use std::future::Future;
use std::time::Duration;

use meta_core::Result;
use rand::Rng;
use tokio::time::Instant;

use crate::error::{Stage, timed_out};
use crate::sql::Dialect;

/// The deadline of one call and the timeout it came from (`None`: no bound).
pub(crate) type Bound = Option<(Instant, Duration)>;

/// The bound of a call that starts now and may take `timeout` (`None`: unbounded).
pub(crate) fn bound(timeout: Option<Duration>) -> Bound {
    timeout.map(|t| (Instant::now() + t, t))
}

/// Awaits `f` until the deadline of `bound`. Errors: [`timed_out`] at `stage` when the
/// deadline passes first (`f` is dropped then: a transaction it held rolls back).
pub(crate) async fn within<F: Future>(
    bound: Bound,
    stage: Stage,
    d: Dialect,
    f: F,
) -> Result<F::Output> {
    match bound {
        None => Ok(f.await),
        Some((at, t)) => tokio::time::timeout_at(at, f)
            .await
            .map_err(|_| timed_out(stage, d, t)),
    }
}

/// The stage of a `conn!` body on pool `which`: statements on the writer may write
/// (autocommitted), on the reader they only read.
pub(crate) fn conn_stage(which: &str) -> Stage {
    if which == "writer" {
        Stage::AutoCommit
    } else {
        Stage::Statement
    }
}

/// Runs `$body` (an expression using `$c: &mut dyn Exec`) in one transaction on `$pool`,
/// committing when it returns `Ok`, rolling back otherwise, every wait on the server within
/// `$bound` (a [`Bound`]). Evaluates to `Result<T>`.
macro_rules! run_txn {
    ($self:expr, $bound:expr, $pool:expr, $begin:expr, |$c:ident| $body:expr) => {{
        let d = $self.sql.d;
        let bound: $crate::run::Bound = $bound;
        let stats = &$self.stats;
        $crate::txn::Stats::add(&stats.transactions, 1);
        // A pooled connection whose server went away fails at BEGIN, before anything was
        // sent; sqlx discards it when it returns to the pool, so try a few fresh ones.
        let mut tries = 0;
        let mut tx = loop {
            $crate::txn::Stats::add(&stats.statements, 1);
            let begun = $crate::run::within(
                bound,
                $crate::error::Stage::Begin,
                d,
                $pool.begin_with($begin),
            )
            .await?;
            match begun {
                Ok(tx) => break tx,
                Err(e @ (sqlx::Error::Io(_) | sqlx::Error::Protocol(_))) if tries < 3 => {
                    tries += 1;
                    tracing::debug!(
                        "{}: BEGIN failed ({e}); retrying on another connection",
                        d.scheme()
                    );
                }
                // No connection at all (server down, pool exhausted): "cannot connect".
                Err(e @ (sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed)) => {
                    return Err($crate::error::classify(e, $crate::error::Stage::Connect, d));
                }
                Err(e) => return Err($crate::error::classify(e, $crate::error::Stage::Begin, d)),
            }
        };
        let r: meta_core::Result<_> = {
            let $c: &mut dyn $crate::exec::Exec = &mut *tx;
            let body = async {
                let r: meta_core::Result<_> = $body;
                r
            };
            // Past the deadline `tx` is dropped unfinished: sqlx rolls it back before the
            // connection's next use, and nothing more waits on the silent server here.
            $crate::run::within(bound, $crate::error::Stage::Statement, d, body).await?
        };
        $crate::txn::Stats::add(&stats.statements, 1);
        match r {
            Ok(v) => {
                $crate::run::within(bound, $crate::error::Stage::Commit, d, tx.commit())
                    .await?
                    .map_err(|e| $crate::error::classify(e, $crate::error::Stage::Commit, d))?;
                $crate::txn::Stats::add(&stats.commits, 1);
                Ok(v)
            }
            Err(e) => {
                let _ =
                    $crate::run::within(bound, $crate::error::Stage::Statement, d, tx.rollback())
                        .await;
                Err(e)
            }
        }
    }};
}
pub(crate) use run_txn;

/// `run_txn!` on the volume's writer pool, within the URL's `timeout`; `txn!(unbounded
/// ...)` without it. Evaluates to `Result<T>`.
macro_rules! txn {
    (unbounded $self:expr, $begin:expr, |$c:ident| $body:expr) => {
        $crate::run::txn!(@within None, $self, $begin, |$c| $body)
    };
    (@within $bound:expr, $self:expr, $begin:expr, |$c:ident| $body:expr) => {
        async {
            match &$self.pools {
                #[cfg(feature = "sqlite")]
                $crate::backend::Pools::Sqlite { writer, .. } => {
                    $crate::run::run_txn!($self, $bound, writer, $begin, |$c| $body)
                }
                #[cfg(feature = "postgres")]
                $crate::backend::Pools::Postgres(p) => {
                    $crate::run::run_txn!($self, $bound, p, $begin, |$c| $body)
                }
                #[cfg(feature = "mysql")]
                $crate::backend::Pools::MySql(p) => {
                    $crate::run::run_txn!($self, $bound, p, $begin, |$c| $body)
                }
            }
        }
        .await
    };
    ($self:expr, $begin:expr, |$c:ident| $body:expr) => {
        $crate::run::txn!(@within $crate::run::bound($self.timeout), $self, $begin, |$c| $body)
    };
}
pub(crate) use txn;

/// Runs `$body` on a pooled connection without a transaction (`reader` or `writer` pool
/// for SQLite; the one pool elsewhere), within the URL's `timeout` (past it: `Unavailable`
/// on the reader, `Indeterminate` on the writer, whose statements may write); `conn!(unbounded
/// ...)` without it. Evaluates to `Result<T>`.
macro_rules! conn {
    (unbounded $self:expr, $which:ident, |$c:ident| $body:expr) => {
        $crate::run::conn!(@within None, $self, $which, |$c| $body)
    };
    (@within $bound:expr, $self:expr, $which:ident, |$c:ident| $body:expr) => {
        async {
            let d = $self.sql.d;
            let bound: $crate::run::Bound = $bound;
            let stage = $crate::run::conn_stage(stringify!($which));
            match &$self.pools {
                #[cfg(feature = "sqlite")]
                $crate::backend::Pools::Sqlite { $which, .. } => {
                    let mut pc = $which.acquire().await.map_err(|e| {
                        $crate::error::classify(e, $crate::error::Stage::Connect, d)
                    })?;
                    let $c: &mut dyn $crate::exec::Exec = &mut *pc;
                    let body = async {
                        let r: meta_core::Result<_> = $body;
                        r
                    };
                    $crate::run::within(bound, stage, d, body).await?
                }
                #[cfg(feature = "postgres")]
                $crate::backend::Pools::Postgres(p) => {
                    let mut pc = p.acquire().await.map_err(|e| {
                        $crate::error::classify(e, $crate::error::Stage::Connect, d)
                    })?;
                    let $c: &mut dyn $crate::exec::Exec = &mut *pc;
                    let body = async {
                        let r: meta_core::Result<_> = $body;
                        r
                    };
                    $crate::run::within(bound, stage, d, body).await?
                }
                #[cfg(feature = "mysql")]
                $crate::backend::Pools::MySql(p) => {
                    let mut pc = p.acquire().await.map_err(|e| {
                        $crate::error::classify(e, $crate::error::Stage::Connect, d)
                    })?;
                    let $c: &mut dyn $crate::exec::Exec = &mut *pc;
                    let body = async {
                        let r: meta_core::Result<_> = $body;
                        r
                    };
                    $crate::run::within(bound, stage, d, body).await?
                }
            }
        }
        .await
    };
    ($self:expr, $which:ident, |$c:ident| $body:expr) => {
        $crate::run::conn!(@within $crate::run::bound($self.timeout), $self, $which, |$c| $body)
    };
}
pub(crate) use conn;

/// Re-runs `$attempt` (a `Result<T>` expression) while it fails with `Conflict`, with
/// exponential backoff and jitter, at most [`MAX_ATTEMPTS`](crate::backend::MAX_ATTEMPTS) times.
macro_rules! retry {
    ($self:expr, $attempt:expr) => {{
        let mut n = 0u32;
        loop {
            let r: meta_core::Result<_> = $attempt;
            match r {
                Err(e)
                    if e.kind() == meta_core::ErrorKind::Conflict
                        && n + 1 < $crate::backend::MAX_ATTEMPTS =>
                {
                    n += 1;
                    $crate::txn::Stats::add(&$self.stats.retries, 1);
                    $crate::run::backoff(n).await;
                }
                r => break r,
            }
        }
    }};
}
pub(crate) use retry;

/// Sleeps before retry `n` (1-based): 1 ms doubling up to 256 ms, times a random factor in
/// [0.5, 1.5) so racing clients spread out.
pub(crate) async fn backoff(n: u32) {
    let base = Duration::from_millis(1u64 << n.min(8));
    let f: f64 = rand::rng().random_range(0.5..1.5);
    tokio::time::sleep(base.mul_f64(f)).await;
}
