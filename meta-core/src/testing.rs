//! Test and benchmark helpers: [`DelayBackend`] wraps any backend, counts its calls and adds
//! a fixed latency to each `apply` and `reserve_ids` (a stand-in for a network round trip),
//! and can hold `apply` calls at a gate to test backpressure.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;

use crate::backend::{Backend, BackendInfo};
use crate::error::{Error, ErrorKind, Result};
use crate::op::{Op, OpOutput};
use crate::session::{InodeLocks, Session, SessionHoldings, Sid};
use crate::types::{Attr, Counter, DirEntry, IdKind, Ino, Pending, Setting, Slice, Statfs};

/// A backend wrapper that counts calls and delays them.
#[derive(Debug)]
pub struct DelayBackend {
    inner: Arc<dyn Backend>,
    delay: Duration,
    apply_calls: AtomicU64,
    applied_ops: AtomicU64,
    reserve_calls: AtomicU64,
    gate: Option<tokio::sync::Semaphore>,
    serial: Option<tokio::sync::Mutex<()>>,
    /// `(op name, calls, after the wrapped backend applied them)`: see
    /// [`DelayBackend::fail_next`].
    faults: std::sync::Mutex<Option<(&'static str, u64, bool, ErrorKind)>>,
    /// `(op name, calls)`: see [`DelayBackend::panic_next`].
    panics: std::sync::Mutex<Option<(&'static str, u64)>>,
}

impl DelayBackend {
    /// Wraps `inner`; every `apply` and `reserve_ids` first waits `delay` (measured with a
    /// blocking sleep on tokio's blocking pool, so sub-millisecond delays are honoured).
    pub fn new(inner: Arc<dyn Backend>, delay: Duration) -> Self {
        DelayBackend {
            inner,
            delay,
            apply_calls: AtomicU64::new(0),
            applied_ops: AtomicU64::new(0),
            reserve_calls: AtomicU64::new(0),
            gate: None,
            serial: None,
            faults: std::sync::Mutex::new(None),
            panics: std::sync::Mutex::new(None),
        }
    }

    /// Makes the next `calls` `apply` calls that carry an op named `op` ([`Op::name`], e.g.
    /// `"release"`) fail as a whole with `Unavailable` before reaching the wrapped backend,
    /// so nothing of them is applied (a stand-in for a connection refused mid-session).
    pub fn fail_next(&self, op: &'static str, calls: u64) {
        self.fail_next_with(op, calls, ErrorKind::Unavailable);
    }

    /// Like [`DelayBackend::fail_next`], with an error of `kind` (e.g. `Unsupported`, as a
    /// store refuses a transaction past its limits).
    pub fn fail_next_with(&self, op: &'static str, calls: u64, kind: ErrorKind) {
        *self.faults.lock().unwrap_or_else(|p| p.into_inner()) = Some((op, calls, false, kind));
    }

    /// Like [`DelayBackend::fail_next`], but the calls reach the wrapped backend, which
    /// applies them, and then fail with `Indeterminate` (a connection lost before the reply).
    pub fn fail_next_after_apply(&self, op: &'static str, calls: u64) {
        *self.faults.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((op, calls, true, ErrorKind::Indeterminate));
    }

    /// Makes the next `calls` `apply` calls that carry an op named `op` panic before
    /// reaching the wrapped backend (a stand-in for a bug in a backend).
    pub fn panic_next(&self, op: &'static str, calls: u64) {
        *self.panics.lock().unwrap_or_else(|p| p.into_inner()) = Some((op, calls));
    }

    /// An injected failure for a call carrying `ops`, if one is due at this point
    /// (`applied`: after the wrapped backend's apply).
    fn fault(&self, ops: &[Op], applied: bool) -> Result<()> {
        let mut f = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((name, left, after, kind)) = f.as_mut()
            && *after == applied
            && *left > 0
            && ops.iter().any(|o| o.name() == *name)
        {
            *left -= 1;
            return Err(Error::new(
                *kind,
                format!("injected failure of a call carrying {name}"),
            ));
        }
        Ok(())
    }

    /// Like [`DelayBackend::new`], but calls take turns: one `apply` or `reserve_ids` (delay
    /// included) at a time, as over a single connection or a single writer whose commit costs
    /// `delay`. With [`DelayBackend::new`] concurrent calls overlap their delays, as over many
    /// connections.
    pub fn serialized(inner: Arc<dyn Backend>, delay: Duration) -> Self {
        let mut d = Self::new(inner, delay);
        d.serial = Some(tokio::sync::Mutex::new(()));
        d
    }

    /// Like [`DelayBackend::new`], but every `apply` waits for a permit released with
    /// [`DelayBackend::open_gate`] (a closed gate holds batches in flight).
    pub fn gated(inner: Arc<dyn Backend>) -> Self {
        let mut d = Self::new(inner, Duration::ZERO);
        d.gate = Some(tokio::sync::Semaphore::new(0));
        d
    }

    /// Lets `n` more `apply` calls through the gate.
    pub fn open_gate(&self, n: usize) {
        if let Some(g) = &self.gate {
            g.add_permits(n);
        }
    }

    /// Number of `apply` calls so far.
    pub fn apply_calls(&self) -> u64 {
        self.apply_calls.load(Ordering::SeqCst)
    }

    /// Number of ops passed to `apply` so far.
    pub fn applied_ops(&self) -> u64 {
        self.applied_ops.load(Ordering::SeqCst)
    }

    /// Number of `reserve_ids` calls so far.
    pub fn reserve_calls(&self) -> u64 {
        self.reserve_calls.load(Ordering::SeqCst)
    }

    async fn pause(&self) -> Result<()> {
        if self.delay.is_zero() {
            return Ok(());
        }
        let d = self.delay;
        tokio::task::spawn_blocking(move || std::thread::sleep(d))
            .await
            .map_err(|e| Error::new(ErrorKind::Internal, "delay task").with_source(e))
    }
}

#[async_trait]
impl Backend for DelayBackend {
    fn info(&self) -> BackendInfo {
        self.inner.info()
    }
    /// 1 when calls take turns ([`DelayBackend::serialized`]), else 4 (calls overlap).
    fn preferred_inflight(&self) -> usize {
        if self.serial.is_some() { 1 } else { 4 }
    }
    async fn format(&self, setting: &Setting, force: bool) -> Result<()> {
        self.inner.format(setting, force).await
    }
    async fn load(&self) -> Result<Setting> {
        self.inner.load().await
    }
    async fn apply(&self, ops: &[Op]) -> Result<Vec<Result<OpOutput>>> {
        self.apply_calls.fetch_add(1, Ordering::SeqCst);
        self.applied_ops
            .fetch_add(ops.len() as u64, Ordering::SeqCst);
        if let Some(g) = &self.gate {
            g.acquire()
                .await
                .map_err(|e| Error::new(ErrorKind::Internal, "gate closed").with_source(e))?
                .forget();
        }
        let _turn = match &self.serial {
            Some(m) => Some(m.lock().await),
            None => None,
        };
        self.pause().await?;
        let panic_now = {
            let mut p = self.panics.lock().unwrap_or_else(|p| p.into_inner());
            match p.as_mut() {
                Some((name, left)) if *left > 0 && ops.iter().any(|o| o.name() == *name) => {
                    *left -= 1;
                    true
                }
                _ => false,
            }
        };
        if panic_now {
            panic!("injected panic of a call carrying {} ops", ops.len());
        }
        self.fault(ops, false)?;
        let r = self.inner.apply(ops).await;
        self.fault(ops, true)?;
        r
    }
    async fn reserve_ids(&self, kind: IdKind, n: u64) -> Result<Range<u64>> {
        self.reserve_calls.fetch_add(1, Ordering::SeqCst);
        let _turn = match &self.serial {
            Some(m) => Some(m.lock().await),
            None => None,
        };
        self.pause().await?;
        self.inner.reserve_ids(kind, n).await
    }
    async fn lookup(&self, parent: Ino, name: &[u8]) -> Result<(Ino, Attr)> {
        self.inner.lookup(parent, name).await
    }
    async fn get_attr(&self, ino: Ino) -> Result<Attr> {
        self.inner.get_attr(ino).await
    }
    async fn read_dir(
        &self,
        ino: Ino,
        after: Option<&[u8]>,
        limit: usize,
        plus: bool,
    ) -> Result<Vec<DirEntry>> {
        self.inner.read_dir(ino, after, limit, plus).await
    }
    async fn read_chunk(&self, ino: Ino, indx: u32) -> Result<Vec<Slice>> {
        self.inner.read_chunk(ino, indx).await
    }
    async fn read_link(&self, ino: Ino) -> Result<Vec<u8>> {
        self.inner.read_link(ino).await
    }
    async fn get_xattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        self.inner.get_xattr(ino, name).await
    }
    async fn list_xattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>> {
        self.inner.list_xattr(ino).await
    }
    async fn statfs(&self) -> Result<Statfs> {
        self.inner.statfs().await
    }
    async fn dir_stats(&self, dirs: &[Ino]) -> Result<Vec<crate::stats::DirStat>> {
        self.inner.dir_stats(dirs).await
    }
    async fn quotas(&self) -> Result<Vec<(Ino, crate::quota::Quota)>> {
        self.inner.quotas().await
    }
    async fn get_counter(&self, counter: Counter) -> Result<i64> {
        self.inner.get_counter(counter).await
    }
    async fn scan_inodes(
        &self,
        cursor: Option<&[u8]>,
        limit: usize,
    ) -> Result<crate::backend::InodePage> {
        self.inner.scan_inodes(cursor, limit).await
    }
    async fn list_chunks(&self, ino: Ino) -> Result<Vec<(u32, Vec<Slice>)>> {
        self.inner.list_chunks(ino).await
    }
    async fn list_pending(&self, limit: usize) -> Result<Vec<Pending>> {
        self.inner.list_pending(limit).await
    }
    async fn list_sessions(&self) -> Result<Vec<Session>> {
        self.inner.list_sessions().await
    }
    async fn session_holdings(&self, sid: Sid) -> Result<SessionHoldings> {
        self.inner.session_holdings(sid).await
    }
    async fn list_locks(&self, ino: Ino) -> Result<InodeLocks> {
        self.inner.list_locks(ino).await
    }
}
