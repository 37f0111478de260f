//! ID priming: inode and chunk IDs come from a local range refilled with one atomic
//! `reserve_ids(kind, batch)`, and prefetched asynchronously (single-flight) when the remaining
//! part of the range falls under the low watermark. IDs are unique across all clients of a
//! volume because each reservation is an atomic increment on the database; a crash wastes at most
//! one range (gaps are harmless in a 64-bit space).

use std::ops::Range;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus::IntCounter;

use crate::backend::Backend;
use crate::error::Result;
use crate::types::IdKind;

/// Counters of one pool, also exported as Prometheus metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct PoolStats {
    /// IDs handed out.
    pub served: u64,
    /// `reserve_ids` calls made (synchronous and asynchronous).
    pub reserve_calls: u64,
    /// Reservations made by the asynchronous prefetch.
    pub prefetches: u64,
    /// Times a caller found the pool empty and had to wait for a reservation.
    pub sync_refills: u64,
}

/// The Prometheus counters a pool updates.
#[derive(Debug, Clone)]
pub(crate) struct PoolCounters {
    pub served: IntCounter,
    pub prime_calls: IntCounter,
    pub prefetch_async: IntCounter,
    pub prime_errors: IntCounter,
}

#[derive(Debug, Default)]
struct State {
    cur: Range<u64>,
    next: Option<Range<u64>>,
    prefetching: bool,
}

#[derive(Debug)]
struct Inner {
    kind: IdKind,
    backend: Arc<dyn Backend>,
    batch: u64,
    /// Prefetch when at most this many IDs remain (0 = never).
    low: u64,
    enabled: bool,
    state: Mutex<State>,
    refill: tokio::sync::Mutex<()>,
    counters: PoolCounters,
    sync_refills: AtomicU64,
    closed: AtomicBool,
}

/// A pool of IDs of one kind. Cheap to clone (shared state).
#[derive(Debug, Clone)]
pub struct IdPool {
    inner: Arc<Inner>,
}

impl IdPool {
    /// A pool reserving `batch` IDs at a time, prefetching when fewer than
    /// `low_watermark_pct`% of a batch remain; `enabled = false` reserves one ID per call
    /// (`metaprime=0`).
    pub(crate) fn new(
        kind: IdKind,
        backend: Arc<dyn Backend>,
        batch: u64,
        low_watermark_pct: u8,
        enabled: bool,
        counters: PoolCounters,
    ) -> IdPool {
        let batch = batch.max(1);
        IdPool {
            inner: Arc::new(Inner {
                kind,
                backend,
                batch,
                low: batch * u64::from(low_watermark_pct.min(100)) / 100,
                enabled,
                state: Mutex::new(State::default()),
                refill: tokio::sync::Mutex::new(()),
                counters,
                sync_refills: AtomicU64::new(0),
                closed: AtomicBool::new(false),
            }),
        }
    }

    /// The next unique ID. Takes from the local range; refills synchronously when it is empty
    /// (one `reserve_ids` call shared by every waiting caller). Errors: those of
    /// `reserve_ids` (`Unavailable`, `NotFound` for an unformatted volume, ...).
    pub async fn next(&self) -> Result<u64> {
        let inner = &self.inner;
        if !inner.enabled {
            let r = self.reserve(1).await?;
            inner.sync_refills.fetch_add(1, Ordering::Relaxed);
            inner.counters.served.inc();
            return Ok(r.start);
        }
        loop {
            if let Some(id) = self.take() {
                inner.counters.served.inc();
                return Ok(id);
            }
            let _g = inner.refill.lock().await;
            {
                let s = self.lock();
                if s.cur.start < s.cur.end || s.next.is_some() {
                    continue;
                }
            }
            let r = self.reserve(inner.batch).await?;
            inner.sync_refills.fetch_add(1, Ordering::Relaxed);
            let mut s = self.lock();
            if s.cur.start >= s.cur.end {
                s.cur = r;
            } else {
                s.next = Some(r);
            }
        }
    }

    /// Stops starting prefetches and waits for one in flight to finish (used by
    /// [`crate::Meta::close`], so no task holds the backend afterwards).
    pub(crate) async fn close(&self) {
        self.inner.closed.store(true, Ordering::Release);
        loop {
            let _g = self.inner.refill.lock().await;
            if !self.lock().prefetching {
                return;
            }
            drop(_g);
            // A prefetch task was spawned but has not taken the refill lock yet.
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }

    /// Counters of this pool.
    pub fn stats(&self) -> PoolStats {
        let c = &self.inner.counters;
        PoolStats {
            served: c.served.get(),
            reserve_calls: c.prime_calls.get(),
            prefetches: c.prefetch_async.get(),
            sync_refills: self.inner.sync_refills.load(Ordering::Relaxed),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn take(&self) -> Option<u64> {
        let mut s = self.lock();
        if s.cur.start >= s.cur.end {
            s.cur = s.next.take()?;
        }
        let id = s.cur.start;
        s.cur.start += 1;
        let left = s.cur.end - s.cur.start;
        if self.inner.low > 0
            && left <= self.inner.low
            && s.next.is_none()
            && !s.prefetching
            && !self.inner.closed.load(Ordering::Acquire)
            && let Ok(handle) = tokio::runtime::Handle::try_current()
        {
            s.prefetching = true;
            let pool = self.clone();
            handle.spawn(async move { pool.prefetch().await });
        }
        Some(id)
    }

    async fn prefetch(&self) {
        let inner = &self.inner;
        let _g = inner.refill.lock().await;
        let r = self.reserve(inner.batch).await;
        let mut s = self.lock();
        s.prefetching = false;
        if let Ok(r) = r {
            inner.counters.prefetch_async.inc();
            if s.cur.start >= s.cur.end && s.next.is_none() {
                s.cur = r;
            } else {
                s.next = Some(r);
            }
        }
    }

    async fn reserve(&self, n: u64) -> Result<Range<u64>> {
        let inner = &self.inner;
        match inner.backend.reserve_ids(inner.kind, n).await {
            Ok(r) => {
                inner.counters.prime_calls.inc();
                Ok(r)
            }
            Err(e) => {
                inner.counters.prime_errors.inc();
                Err(e.context_prefix(format!("reserve {n} {:?} IDs", inner.kind)))
            }
        }
    }
}
