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
/// deadline passes first (`f` is dropped then; the caller's [`Held`] connection, left
/// unsettled, is closed).
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

/// A pooled connection that goes back to the pool only when its user [`Held::settle`]s it
/// (a COMMIT or ROLLBACK answered, a statement answered with no connection error); dropped
/// unsettled (a timeout, a lost or garbled connection, a caller that cancelled the call
/// mid-way) it is detached and closed: the server may be in the middle of a BEGIN, a
/// statement or a COMMIT, and the connection would come back with a transaction open or
/// replies due (sqlx rolls back only a transaction whose BEGIN it saw answered).
pub(crate) struct Held<DB: sqlx::Database> {
    pc: Option<sqlx::pool::PoolConnection<DB>>,
    settled: bool,
}

impl<DB: sqlx::Database> Held<DB> {
    pub(crate) fn new(pc: sqlx::pool::PoolConnection<DB>) -> Self {
        Held {
            pc: Some(pc),
            settled: false,
        }
    }

    /// The connection (present until drop).
    pub(crate) fn conn(&mut self) -> &mut DB::Connection {
        match self.pc.as_mut() {
            Some(pc) => pc,
            None => unreachable!("a Held connection is only taken when dropped"),
        }
    }

    /// The connection is idle and in a known state: it may go back to the pool.
    pub(crate) fn settle(&mut self) {
        self.settled = true;
    }
}

impl<DB: sqlx::Database> Drop for Held<DB> {
    fn drop(&mut self) {
        if let Some(pc) = self.pc.take()
            && !self.settled
        {
            // Closes the socket: the server rolls back whatever it had open.
            drop(pc.detach());
        }
    }
}

/// True when `e` leaves the connection it came from in doubt (lost, garbled, timed out).
pub(crate) fn connection_in_doubt(e: &meta_core::Error) -> bool {
    matches!(
        e.kind(),
        meta_core::ErrorKind::Unavailable | meta_core::ErrorKind::Indeterminate
    )
}

/// What one attempt of `run_txn!` came to: a BEGIN to try again on another connection, or
/// the transaction's result.
pub(crate) enum Step<T> {
    /// BEGIN failed on a pooled connection whose server went away: nothing was sent.
    Retry(sqlx::Error),
    /// Committed (`Ok`), or failed and rolled back, or given up at the deadline.
    Done(Result<T>),
}

/// Runs `$body` (an expression using `$c: &mut dyn Exec`) in one transaction on a connection
/// of `$pool`, committing when it returns `Ok`, rolling back otherwise. Every wait on the
/// server once the connection is had is within `$bound` (a [`Bound`], evaluated then); a
/// connection given up at the deadline is detached from the pool and closed, never reused:
/// the server may still be in the middle of its BEGIN, body or COMMIT, so it could otherwise
/// come back to the pool with a transaction open or replies pending. Evaluates to
/// `Result<T>`.
macro_rules! run_txn {
    ($self:expr, $bound:expr, $pool:expr, $begin:expr, |$c:ident| $body:expr) => {{
        use $crate::error::Stage;
        use $crate::run::{Step, within};
        let d = $self.sql.d;
        let stats = &$self.stats;
        $crate::txn::Stats::add(&stats.transactions, 1);
        // A pooled connection whose server went away fails at BEGIN, before anything was
        // sent; sqlx discards it when it returns to the pool, so try a few fresh ones.
        let mut tries = 0;
        loop {
            $crate::txn::Stats::add(&stats.statements, 1);
            // No connection at all (server down, pool exhausted): "cannot connect".
            let mut held = $crate::run::Held::new(
                $pool
                    .acquire()
                    .await
                    .map_err(|e| $crate::error::classify(e, Stage::Connect, d))?,
            );
            let bound: $crate::run::Bound = $bound;
            // Set when the attempt leaves the connection idle in a known state.
            let mut settled = false;
            let step: Step<_> = async {
                let begun = within(
                    bound,
                    Stage::Begin,
                    d,
                    sqlx::Connection::begin_with(held.conn(), $begin),
                )
                .await;
                let mut tx = match begun {
                    Err(e) => return Step::Done(Err(e)),
                    Ok(Err(e @ (sqlx::Error::Io(_) | sqlx::Error::Protocol(_)))) if tries < 3 => {
                        return Step::Retry(e);
                    }
                    Ok(Err(e)) => {
                        // Answered (e.g. SQLite busy): the connection stays usable.
                        let e = $crate::error::classify(e, Stage::Begin, d);
                        if !$crate::run::connection_in_doubt(&e) {
                            settled = true;
                        }
                        return Step::Done(Err(e));
                    }
                    Ok(Ok(tx)) => tx,
                };
                let r: meta_core::Result<_> = {
                    let $c: &mut dyn $crate::exec::Exec = &mut *tx;
                    let body = async {
                        let r: meta_core::Result<_> = $body;
                        r
                    };
                    match within(bound, Stage::Statement, d, body).await {
                        Ok(r) => r,
                        Err(e) => return Step::Done(Err(e)),
                    }
                };
                $crate::txn::Stats::add(&stats.statements, 1);
                match r {
                    Ok(v) => match within(bound, Stage::Commit, d, tx.commit()).await {
                        Err(e) => Step::Done(Err(e)),
                        Ok(Err(e)) => {
                            let e = $crate::error::classify(e, Stage::Commit, d);
                            if !$crate::run::connection_in_doubt(&e) {
                                settled = true;
                            }
                            Step::Done(Err(e))
                        }
                        Ok(Ok(())) => {
                            settled = true;
                            $crate::txn::Stats::add(&stats.commits, 1);
                            Step::Done(Ok(v))
                        }
                    },
                    Err(e) => {
                        if let Ok(Ok(())) = within(bound, Stage::Statement, d, tx.rollback()).await
                        {
                            settled = true;
                        }
                        Step::Done(Err(e))
                    }
                }
            }
            .await;
            if settled {
                held.settle();
            }
            drop(held);
            match step {
                Step::Retry(e) => {
                    tries += 1;
                    tracing::debug!(
                        "{}: BEGIN failed ({e}); retrying on another connection",
                        d.scheme()
                    );
                }
                Step::Done(r) => break r,
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
/// for SQLite; the one pool elsewhere), within the URL's `timeout` once the connection is had
/// (past it: `Unavailable` on the reader, `Indeterminate` on the writer, whose statements may
/// write; the connection is detached and closed, as in `run_txn!`); `conn!(unbounded ...)`
/// without it. Evaluates to `Result<T>`.
macro_rules! conn {
    (unbounded $self:expr, $which:ident, |$c:ident| $body:expr) => {
        $crate::run::conn!(@within None, $self, $which, |$c| $body)
    };
    (@on $pool:expr, $bound:expr, $self:expr, $which:ident, |$c:ident| $body:expr) => {{
        let d = $self.sql.d;
        let mut held = $crate::run::Held::new(
            $pool
                .acquire()
                .await
                .map_err(|e| $crate::error::classify(e, $crate::error::Stage::Connect, d))?,
        );
        let bound: $crate::run::Bound = $bound;
        let stage = $crate::run::conn_stage(stringify!($which));
        let r = {
            let $c: &mut dyn $crate::exec::Exec = held.conn();
            let body = async {
                let r: meta_core::Result<_> = $body;
                r
            };
            $crate::run::within(bound, stage, d, body).await
        };
        match r {
            Ok(r) => {
                if !r.as_ref().is_err_and($crate::run::connection_in_doubt) {
                    held.settle();
                }
                r
            }
            Err(e) => Err(e),
        }
    }};
    (@within $bound:expr, $self:expr, $which:ident, |$c:ident| $body:expr) => {
        async {
            match &$self.pools {
                #[cfg(feature = "sqlite")]
                $crate::backend::Pools::Sqlite { $which, .. } => {
                    $crate::run::conn!(@on $which, $bound, $self, $which, |$c| $body)
                }
                #[cfg(feature = "postgres")]
                $crate::backend::Pools::Postgres(p) => {
                    $crate::run::conn!(@on p, $bound, $self, $which, |$c| $body)
                }
                #[cfg(feature = "mysql")]
                $crate::backend::Pools::MySql(p) => {
                    $crate::run::conn!(@on p, $bound, $self, $which, |$c| $body)
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
