//! The batcher: concurrent ops share one `Backend::apply` call.
//!
//! Group commit with no artificial delay: a dispatcher takes an op from the queue, waits for an
//! in-flight slot (`max_inflight`), then drains whatever else is queued (up to `batch_size` ops
//! and `batch_bytes`), and sends it all as one batch. When nothing is in flight an op goes at
//! once (latency = one round trip); while all slots are busy new ops accumulate. A batch that
//! takes the last free slot first yields to the scheduler until the callers woken by the batch
//! that freed it have resubmitted (microseconds; see `Dispatcher::gather`), so closed-loop
//! callers share one batch instead of alternating between two. Every caller awaits its own
//! op's result. A full queue (`max_queue`) makes callers wait (backpressure).
//!
//! Deferred ops (see [`crate::Meta::enqueue`]) return when queued; a batch holding one runs
//! alone (it takes every in-flight slot), so deferred ops and the ops after them are applied in
//! queue order. Their errors are kept for the next `flush()`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::FutureExt;
use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::backend::Backend;
use crate::error::{Error, ErrorKind, Result};
use crate::metrics::Metrics;
use crate::op::{Op, OpOutput};

/// Upper bound on scheduler yields spent gathering one batch (see `Dispatcher::gather`).
const GATHER_YIELDS: usize = 16;

/// Where a queued op's result goes.
enum Reply {
    /// A caller awaits it.
    Wait(oneshot::Sender<Result<OpOutput>>),
    /// Deferred: errors are kept for the next flush.
    Deferred,
}

struct Request {
    op: Op,
    reply: Reply,
    queued: Instant,
}

enum Msg {
    Op(Request),
    /// Replies once every op queued before it has a result.
    Barrier(oneshot::Sender<()>),
    /// Like `Barrier`, then the dispatcher stops.
    Close(oneshot::Sender<()>),
}

/// Limits of the batcher (from [`crate::MetaOptions`] and the backend's `max_batch_ops`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct BatchLimits {
    pub ops: usize,
    pub bytes: usize,
    pub interval: Duration,
    pub inflight: usize,
    pub queue: usize,
}

/// Errors of deferred ops since the last flush.
#[derive(Debug, Default)]
pub(crate) struct DeferredErrors {
    pub count: u64,
    pub first: Option<Error>,
}

impl DeferredErrors {
    pub fn record(&mut self, e: Error) {
        self.count += 1;
        self.first.get_or_insert(e);
    }
}

/// Handle to the dispatcher task; dropping every handle stops it after the queue drains.
#[derive(Debug, Clone)]
pub(crate) struct Batcher {
    tx: mpsc::Sender<Msg>,
    task: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

fn closed() -> Error {
    Error::new(ErrorKind::Internal, "batcher stopped")
}

impl Batcher {
    pub fn start(
        backend: Arc<dyn Backend>,
        limits: BatchLimits,
        metrics: Arc<Metrics>,
        deferred: Arc<Mutex<DeferredErrors>>,
    ) -> Batcher {
        let (tx, rx) = mpsc::channel(limits.queue.max(1));
        let d = Dispatcher {
            rx,
            backend,
            limits,
            metrics,
            slots: Arc::new(Semaphore::new(limits.inflight.max(1))),
            deferred,
        };
        let task = tokio::spawn(d.run());
        Batcher {
            tx,
            task: Arc::new(Mutex::new(Some(task))),
        }
    }

    /// Queues `op` and waits for its result.
    pub async fn submit(&self, op: Op) -> Result<OpOutput> {
        let (tx, rx) = oneshot::channel();
        let req = Request {
            op,
            reply: Reply::Wait(tx),
            queued: Instant::now(),
        };
        self.tx.send(Msg::Op(req)).await.map_err(|_| closed())?;
        rx.await.map_err(|_| closed())?
    }

    /// Queues `op` and returns once it is queued.
    pub async fn enqueue(&self, op: Op) -> Result<()> {
        let req = Request {
            op,
            reply: Reply::Deferred,
            queued: Instant::now(),
        };
        self.tx.send(Msg::Op(req)).await.map_err(|_| closed())
    }

    /// Applies everything queued, stops the dispatcher and waits until it (and every batch it
    /// started) is done. Later calls fail with `Internal` ("batcher stopped").
    pub async fn close(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Close(tx)).await.is_ok() {
            let _ = rx.await;
        }
        let task = self.task.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = task {
            t.await.map_err(|e| {
                Error::new(ErrorKind::Internal, "batch dispatcher failed").with_source(e)
            })?;
        }
        Ok(())
    }

    /// Returns when every op queued before the call has a result.
    pub async fn barrier(&self) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Msg::Barrier(tx)).await.map_err(|_| closed())?;
        rx.await.map_err(|_| closed())
    }
}

struct Dispatcher {
    rx: mpsc::Receiver<Msg>,
    backend: Arc<dyn Backend>,
    limits: BatchLimits,
    metrics: Arc<Metrics>,
    slots: Arc<Semaphore>,
    deferred: Arc<Mutex<DeferredErrors>>,
}

impl Dispatcher {
    /// Lets callers that are about to submit join the batch being formed, when it takes the
    /// last free slot.
    ///
    /// The batch that freed the slot has just woken its callers; most of them submit their next
    /// op within microseconds, but the dispatcher is woken last and, left alone, would run
    /// first (tokio runs the most recently woken task next) and send a batch without them:
    /// with one slot and N callers, batches then alternate at about N/2 ops. When this batch
    /// takes the last slot, an op that misses it waits a whole batch turnaround, so yielding
    /// to the scheduler until the queue stops growing (at most [`GATHER_YIELDS`] times, a few
    /// microseconds each) is worth it; an op arriving while nothing is in flight on a
    /// one-slot batcher pays one or two yields of latency.
    async fn gather(&self) {
        if self.slots.available_permits() > 0 {
            // Another slot is free: an op that misses this batch can leave in the next one at
            // once, and two batches in flight overlap (better than one bigger batch on a
            // pipelined backend).
            return;
        }
        let mut seen = self.rx.len();
        let mut idle = 0;
        for _ in 0..GATHER_YIELDS {
            if seen >= self.limits.ops {
                break;
            }
            tokio::task::yield_now().await;
            let now = self.rx.len();
            if now == seen {
                idle += 1;
                if idle == 2 {
                    break;
                }
            } else {
                idle = 0;
                seen = now;
            }
        }
    }

    async fn run(mut self) {
        let all = self.limits.inflight.max(1) as u32;
        let mut held: Option<Msg> = None;
        loop {
            let first = match held.take() {
                Some(m) => m,
                None => match self.rx.recv().await {
                    Some(m) => m,
                    None => break,
                },
            };
            let first = match first {
                Msg::Barrier(done) => {
                    // Every earlier batch holds a slot until it has delivered its results.
                    if let Ok(p) = self.slots.acquire_many(all).await {
                        drop(p);
                    }
                    let _ = done.send(());
                    continue;
                }
                Msg::Close(done) => {
                    self.rx.close();
                    if let Ok(p) = self.slots.acquire_many(all).await {
                        drop(p);
                    }
                    let _ = done.send(());
                    // Ops that raced the close get "batcher stopped" when their reply drops.
                    break;
                }
                Msg::Op(r) => r,
            };
            // Wait for a free slot before collecting: ops queue up meanwhile.
            let Ok(mut permit) = self.slots.clone().acquire_owned().await else {
                break;
            };
            self.gather().await;
            let mut bytes = first.op.size_hint();
            let mut has_deferred = matches!(first.reply, Reply::Deferred);
            let mut batch = vec![first];
            let deadline = Instant::now() + self.limits.interval;
            while batch.len() < self.limits.ops && bytes < self.limits.bytes {
                let next = match self.rx.try_recv() {
                    Ok(m) => m,
                    Err(mpsc::error::TryRecvError::Empty) if !self.limits.interval.is_zero() => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            break;
                        }
                        match tokio::time::timeout(left, self.rx.recv()).await {
                            Ok(Some(m)) => m,
                            _ => break,
                        }
                    }
                    Err(_) => break,
                };
                match next {
                    Msg::Op(r) => {
                        bytes += r.op.size_hint();
                        has_deferred |= matches!(r.reply, Reply::Deferred);
                        batch.push(r);
                    }
                    barrier @ (Msg::Barrier(_) | Msg::Close(_)) => {
                        held = Some(barrier);
                        break;
                    }
                }
            }
            self.metrics.queue_depth.set(self.rx.len() as i64);
            if has_deferred && all > 1 {
                // Run alone: wait for every other batch, keep the others out until done.
                match self.slots.clone().acquire_many_owned(all - 1).await {
                    Ok(rest) => permit.merge(rest),
                    Err(_) => break,
                }
            }
            let exec = Execute {
                backend: self.backend.clone(),
                metrics: self.metrics.clone(),
                deferred: self.deferred.clone(),
            };
            if has_deferred {
                // In order: the next batch starts only after this one is applied.
                exec.run(batch).await;
                drop(permit);
            } else {
                tokio::spawn(async move {
                    exec.run(batch).await;
                    drop(permit);
                });
            }
        }
        // Queue closed: wait for the batches in flight.
        let _ = self.slots.acquire_many(all).await;
    }
}

struct Execute {
    backend: Arc<dyn Backend>,
    metrics: Arc<Metrics>,
    deferred: Arc<Mutex<DeferredErrors>>,
}

impl Execute {
    async fn run(self, batch: Vec<Request>) {
        let (ops, meta): (Vec<Op>, Vec<(Reply, Instant)>) = batch
            .into_iter()
            .map(|r| (r.op, (r.reply, r.queued)))
            .unzip();
        let results = apply_recorded(&*self.backend, &self.metrics, &ops).await;
        for ((op, (reply, queued)), result) in ops.iter().zip(meta).zip(results) {
            self.metrics
                .record_op(op.name(), &result, queued.elapsed().as_secs_f64());
            match reply {
                Reply::Wait(tx) => {
                    let _ = tx.send(result);
                }
                Reply::Deferred => {
                    if let Err(e) = result {
                        self.deferred
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .record(e);
                    }
                }
            }
        }
    }
}

/// One `apply` call with batch metrics; always returns exactly `ops.len()` results (a
/// batch-level error is handed to every op).
pub(crate) async fn apply_recorded(
    backend: &dyn Backend,
    metrics: &Metrics,
    ops: &[Op],
) -> Vec<Result<OpOutput>> {
    let started = Instant::now();
    // A backend that panics fails this batch's ops (it may have applied some of them:
    // Indeterminate), not the task that called: the batcher's dispatcher (which runs
    // deferred batches itself), the heartbeat, the release flusher.
    let res = std::panic::AssertUnwindSafe(backend.apply(ops))
        .catch_unwind()
        .await
        .unwrap_or_else(|panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            Err(Error::new(
                ErrorKind::Indeterminate,
                format!(
                    "the backend panicked applying a batch of {} ops: {what}",
                    ops.len()
                ),
            ))
        });
    metrics.batch_size.observe(ops.len() as f64);
    metrics
        .batch_flush_duration
        .observe(started.elapsed().as_secs_f64());
    match res {
        Ok(results) if results.len() == ops.len() => results,
        Ok(results) => {
            // The backend ran the batch: any op of it may have been applied.
            let e = Error::new(
                ErrorKind::Indeterminate,
                format!(
                    "backend returned {} results for {} ops (a backend bug)",
                    results.len(),
                    ops.len()
                ),
            );
            metrics
                .batch_errors
                .with_label_values(&[e.kind().label()])
                .inc();
            vec![Err(e); ops.len()]
        }
        Err(e) => {
            metrics
                .batch_errors
                .with_label_values(&[e.kind().label()])
                .inc();
            vec![Err(e); ops.len()]
        }
    }
}
