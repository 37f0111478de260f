//! How [`SqlBackend`](crate::backend::SqlBackend) runs its work on the database: one
//! transaction on the writer pool (`txn!`, committing on `Ok`), a pooled connection without
//! one (`conn!`), and the retry of a transaction that lost a race (`retry!`: `Conflict`,
//! exponential backoff with jitter). Macros, because each pool has its own connection
//! type; the names they use are spelled with full paths, so they expand anywhere in the
//! crate.

use std::time::Duration;

use rand::Rng;

/// Runs `$body` (an expression using `$c: &mut dyn Exec`) in one transaction on `$pool`,
/// committing when it returns `Ok`, rolling back otherwise. Evaluates to `Result<T>`.
macro_rules! run_txn {
    ($self:expr, $pool:expr, $begin:expr, |$c:ident| $body:expr) => {{
        let d = $self.sql.d;
        let stats = &$self.stats;
        $crate::txn::Stats::add(&stats.transactions, 1);
        // A pooled connection whose server went away fails at BEGIN, before anything was
        // sent; sqlx discards it when it returns to the pool, so try a few fresh ones.
        let mut tries = 0;
        let mut tx = loop {
            $crate::txn::Stats::add(&stats.statements, 1);
            match $pool.begin_with($begin).await {
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
            $body
        };
        $crate::txn::Stats::add(&stats.statements, 1);
        match r {
            Ok(v) => {
                tx.commit()
                    .await
                    .map_err(|e| $crate::error::classify(e, $crate::error::Stage::Commit, d))?;
                $crate::txn::Stats::add(&stats.commits, 1);
                Ok(v)
            }
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }};
}
pub(crate) use run_txn;

/// `run_txn!` on the volume's writer pool. Evaluates to `Result<T>`.
macro_rules! txn {
    ($self:expr, $begin:expr, |$c:ident| $body:expr) => {
        async {
            match &$self.pools {
                #[cfg(feature = "sqlite")]
                $crate::backend::Pools::Sqlite { writer, .. } => {
                    $crate::run::run_txn!($self, writer, $begin, |$c| $body)
                }
                #[cfg(feature = "postgres")]
                $crate::backend::Pools::Postgres(p) => {
                    $crate::run::run_txn!($self, p, $begin, |$c| $body)
                }
                #[cfg(feature = "mysql")]
                $crate::backend::Pools::MySql(p) => {
                    $crate::run::run_txn!($self, p, $begin, |$c| $body)
                }
            }
        }
        .await
    };
}
pub(crate) use txn;

/// Runs `$body` on a pooled connection without a transaction (`reader` or `writer` pool
/// for SQLite; the one pool elsewhere). Evaluates to `Result<T>`.
macro_rules! conn {
    ($self:expr, $which:ident, |$c:ident| $body:expr) => {
        async {
            let d = $self.sql.d;
            match &$self.pools {
                #[cfg(feature = "sqlite")]
                $crate::backend::Pools::Sqlite { $which, .. } => {
                    let mut pc = $which.acquire().await.map_err(|e| {
                        $crate::error::classify(e, $crate::error::Stage::Connect, d)
                    })?;
                    let $c: &mut dyn $crate::exec::Exec = &mut *pc;
                    $body
                }
                #[cfg(feature = "postgres")]
                $crate::backend::Pools::Postgres(p) => {
                    let mut pc = p.acquire().await.map_err(|e| {
                        $crate::error::classify(e, $crate::error::Stage::Connect, d)
                    })?;
                    let $c: &mut dyn $crate::exec::Exec = &mut *pc;
                    $body
                }
                #[cfg(feature = "mysql")]
                $crate::backend::Pools::MySql(p) => {
                    let mut pc = p.acquire().await.map_err(|e| {
                        $crate::error::classify(e, $crate::error::Stage::Connect, d)
                    })?;
                    let $c: &mut dyn $crate::exec::Exec = &mut *pc;
                    $body
                }
            }
        }
        .await
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
