//! Prometheus metrics of one [`crate::Meta`], registered into a caller-supplied registry (never
//! the global default). Labels never carry inodes or paths.

use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry,
};

use crate::error::{Error, ErrorKind, Result};
use crate::op::Op;

/// Every metric of the engine. Names as in DESIGN.md.
#[derive(Debug, Clone)]
pub struct Metrics {
    /// `meta_ops_total{op,result}`: mutating ops by name and result (`ok` or an error label).
    pub ops_total: IntCounterVec,
    /// `meta_op_duration_seconds{op}`: from submission to result, seconds.
    pub op_duration: HistogramVec,
    /// `meta_batch_size`: ops per `apply` call.
    pub batch_size: Histogram,
    /// `meta_batch_flush_duration_seconds`: duration of one `apply` call, seconds.
    pub batch_flush_duration: Histogram,
    /// `meta_batch_queue_depth`: ops waiting in the batch queue.
    pub queue_depth: IntGauge,
    /// `meta_batch_errors_total{kind}`: whole-batch failures by error kind.
    pub batch_errors: IntCounterVec,
    /// `meta_inode_ids_served_total`.
    pub inode_served: IntCounter,
    /// `meta_inode_prime_calls_total`: reservations (sync and async) of inode IDs.
    pub inode_prime_calls: IntCounter,
    /// `meta_inode_prefetch_async_total`: reservations made ahead of need.
    pub inode_prefetch_async: IntCounter,
    /// `meta_chunk_ids_served_total`.
    pub chunk_served: IntCounter,
    /// `meta_chunk_prime_calls_total`.
    pub chunk_prime_calls: IntCounter,
    /// `meta_chunk_prefetch_async_total`.
    pub chunk_prefetch_async: IntCounter,
    /// `meta_prime_errors_total`: failed reservations.
    pub prime_errors: IntCounter,
    /// `meta_sessions`: sessions of the volume (expired ones not yet cleaned up included), as
    /// listed at this client's last heartbeat.
    pub sessions: IntGauge,
    /// `meta_open_files`: inodes this client holds open.
    pub open_files: IntGauge,
    /// `meta_lock_waits_total`: lock requests that found a conflict and waited to retry
    /// (the blocking helpers `flock_wait` / `setlk_wait`), one per retry.
    pub lock_waits: IntCounter,
}

fn reg_err(e: prometheus::Error) -> Error {
    Error::new(
        ErrorKind::ConfigInvalid,
        "cannot register metrics (is another Meta registered in this registry?)",
    )
    .with_source(e)
}

impl Metrics {
    /// Creates the metrics and registers them into `registry`.
    /// Errors: `ConfigInvalid` when the names are already registered there.
    pub fn new(registry: &Registry) -> Result<Metrics> {
        let counter = |name: &str, help: &str| IntCounter::new(name, help);
        let m = Metrics {
            ops_total: IntCounterVec::new(
                Opts::new("meta_ops_total", "Mutating metadata operations by result"),
                &["op", "result"],
            )
            .map_err(reg_err)?,
            op_duration: HistogramVec::new(
                HistogramOpts::new(
                    "meta_op_duration_seconds",
                    "Latency of mutating operations from submission to result",
                )
                .buckets(prometheus::exponential_buckets(0.00005, 2.0, 18).map_err(reg_err)?),
                &["op"],
            )
            .map_err(reg_err)?,
            batch_size: Histogram::with_opts(
                HistogramOpts::new("meta_batch_size", "Operations per backend apply call")
                    .buckets(prometheus::exponential_buckets(1.0, 2.0, 14).map_err(reg_err)?),
            )
            .map_err(reg_err)?,
            batch_flush_duration: Histogram::with_opts(
                HistogramOpts::new(
                    "meta_batch_flush_duration_seconds",
                    "Duration of one backend apply call",
                )
                .buckets(prometheus::exponential_buckets(0.00005, 2.0, 18).map_err(reg_err)?),
            )
            .map_err(reg_err)?,
            queue_depth: IntGauge::new(
                "meta_batch_queue_depth",
                "Operations waiting in the batch queue",
            )
            .map_err(reg_err)?,
            batch_errors: IntCounterVec::new(
                Opts::new(
                    "meta_batch_errors_total",
                    "Whole-batch failures by error kind",
                ),
                &["kind"],
            )
            .map_err(reg_err)?,
            inode_served: counter("meta_inode_ids_served_total", "Inode IDs handed out")
                .map_err(reg_err)?,
            inode_prime_calls: counter("meta_inode_prime_calls_total", "Inode ID reservations")
                .map_err(reg_err)?,
            inode_prefetch_async: counter(
                "meta_inode_prefetch_async_total",
                "Inode ID reservations made asynchronously ahead of need",
            )
            .map_err(reg_err)?,
            chunk_served: counter("meta_chunk_ids_served_total", "Chunk IDs handed out")
                .map_err(reg_err)?,
            chunk_prime_calls: counter("meta_chunk_prime_calls_total", "Chunk ID reservations")
                .map_err(reg_err)?,
            chunk_prefetch_async: counter(
                "meta_chunk_prefetch_async_total",
                "Chunk ID reservations made asynchronously ahead of need",
            )
            .map_err(reg_err)?,
            prime_errors: counter("meta_prime_errors_total", "Failed ID reservations")
                .map_err(reg_err)?,
            sessions: IntGauge::new(
                "meta_sessions",
                "Sessions of the volume at this client's last heartbeat",
            )
            .map_err(reg_err)?,
            open_files: IntGauge::new("meta_open_files", "Inodes this client holds open")
                .map_err(reg_err)?,
            lock_waits: counter(
                "meta_lock_waits_total",
                "Lock requests that found a conflict and waited to retry",
            )
            .map_err(reg_err)?,
        };
        for c in [
            Box::new(m.ops_total.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(m.op_duration.clone()),
            Box::new(m.batch_size.clone()),
            Box::new(m.batch_flush_duration.clone()),
            Box::new(m.queue_depth.clone()),
            Box::new(m.batch_errors.clone()),
            Box::new(m.inode_served.clone()),
            Box::new(m.inode_prime_calls.clone()),
            Box::new(m.inode_prefetch_async.clone()),
            Box::new(m.chunk_served.clone()),
            Box::new(m.chunk_prime_calls.clone()),
            Box::new(m.chunk_prefetch_async.clone()),
            Box::new(m.prime_errors.clone()),
            Box::new(m.sessions.clone()),
            Box::new(m.open_files.clone()),
            Box::new(m.lock_waits.clone()),
        ] {
            registry.register(c).map_err(reg_err)?;
        }
        for op in Op::NAMES {
            m.ops_total.with_label_values(&[op, "ok"]);
        }
        Ok(m)
    }

    /// Records one op's result and latency (seconds).
    pub fn record_op(&self, op: &'static str, result: &Result<impl Sized>, seconds: f64) {
        let label = match result {
            Ok(_) => "ok",
            Err(e) => e.kind().label(),
        };
        self.ops_total.with_label_values(&[op, label]).inc();
        self.op_duration.with_label_values(&[op]).observe(seconds);
    }
}
