//! What a backend crate implements to run the suite: a [`Factory`] of fresh, isolated
//! [`TestVolume`]s.

use std::sync::{Arc, Mutex, Weak};

use async_trait::async_trait;
use meta_core::memory::{MemStore, MemoryBackend};
use meta_core::{Backend, Counter, Ino, kv};

/// Makes fresh, isolated volumes of one backend for the suite.
///
/// One factory value is made per test (by the expression given to
/// [`conformance_tests!`](crate::conformance_tests)), inside the test's tokio runtime; tests
/// run in parallel, so every volume must be isolated: its own temp dir, key prefix, database
/// or table prefix.
#[async_trait]
pub trait Factory: Send + Sync + 'static {
    /// The backend's short name for messages, e.g. `"memory"`, `"rocks"`, `"redis"`.
    fn name(&self) -> &str;

    /// A fresh, empty, **unformatted** volume ([`Fresh::Volume`]), or [`Fresh::Skip`] with a
    /// reason when the backend's server is not configured (e.g. `"META_TEST_REDIS_URL is not
    /// set"`). `Err` is a failure (e.g. the server is configured but unreachable).
    async fn create(&self) -> anyhow::Result<Fresh>;
}

/// The answer of [`Factory::create`].
pub enum Fresh {
    /// A fresh, empty, isolated volume.
    Volume(Box<dyn TestVolume>),
    /// The backend cannot run here; the reason is printed in the `SKIP` line.
    Skip(String),
}

impl std::fmt::Debug for Fresh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fresh::Volume(_) => f.write_str("Fresh::Volume(..)"),
            Fresh::Skip(r) => write!(f, "Fresh::Skip({r:?})"),
        }
    }
}

/// One isolated volume of the backend under test. Dropping it releases what it holds (temp
/// dir, ...); [`TestVolume::cleanup`] removes what outlives the process (keys, tables).
#[async_trait]
pub trait TestVolume: Send + Sync + 'static {
    /// A handle to this volume.
    ///
    /// - While a handle from this volume is alive, the new handle must act on the same
    ///   volume. It should be independent (its own connection or pool) where the backend
    ///   allows; stores that admit one opener per process (RocksDB) return a clone of the
    ///   live handle ([`HandleCache`] does that).
    /// - Once every handle was dropped, `open` must read the volume back from its storage:
    ///   that is how the suite checks persistence ("reopen"). Stores that live in memory keep
    ///   the store in the `TestVolume` and wrap it in a new backend.
    async fn open(&self) -> anyhow::Result<Arc<dyn Backend>>;

    /// Optional capability: overwrite the stored record `target` with undecodable `garbage`
    /// (byte-oriented stores write the bytes verbatim; others write whatever their decoder
    /// must reject). Returns `Ok(false)` when not supported (the default): the cases that
    /// need it then pass with a note.
    async fn plant_garbage(&self, target: &RawTarget, garbage: &[u8]) -> anyhow::Result<bool> {
        let _ = (target, garbage);
        Ok(false)
    }

    /// Removes whatever the volume left on a server (keys, tables); called once after the
    /// test, after every handle was dropped. Default: nothing.
    async fn cleanup(&self) -> anyhow::Result<()> {
        Ok(())
    }
}

/// A stored record the suite may ask a [`TestVolume`] to overwrite with garbage.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RawTarget {
    /// The attributes of an inode.
    Attr(Ino),
    /// The directory entry `name` of directory `parent`.
    Entry(Ino, Vec<u8>),
    /// Chunk `indx` of an inode.
    Chunk(Ino, u32),
    /// The symlink target of an inode.
    Symlink(Ino),
    /// An extended attribute.
    Xattr(Ino, Vec<u8>),
    /// A volume counter.
    Counter(Counter),
    /// The format record.
    Setting,
}

/// The key of `target` in the shared KV schema of `meta_core::kv` (for KV-store factories'
/// [`TestVolume::plant_garbage`]).
pub fn kv_key(target: &RawTarget) -> Vec<u8> {
    match target {
        RawTarget::Attr(ino) => kv::attr_key(*ino),
        RawTarget::Entry(p, name) => kv::entry_key(*p, name),
        RawTarget::Chunk(ino, indx) => kv::chunk_key(*ino, *indx),
        RawTarget::Symlink(ino) => kv::symlink_key(*ino),
        RawTarget::Xattr(ino, name) => kv::xattr_key(*ino, name),
        RawTarget::Counter(c) => kv::counter_key(*c),
        RawTarget::Setting => kv::SETTING_KEY.to_vec(),
    }
}

/// For stores that admit one opener per process: hands out the live handle while one is
/// alive, and opens a new one once every handle was dropped (a real reopen).
///
/// ```ignore
/// async fn open(&self) -> anyhow::Result<Arc<dyn Backend>> {
///     self.handles.get_or_open(|| Ok(RocksBackend::open(&self.dir)?))
/// }
/// ```
#[derive(Debug)]
pub struct HandleCache<B> {
    live: Mutex<Weak<B>>,
}

impl<B> Default for HandleCache<B> {
    fn default() -> Self {
        HandleCache {
            live: Mutex::new(Weak::new()),
        }
    }
}

impl<B: Backend> HandleCache<B> {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The live handle, or a new one from `open` when none is alive.
    pub fn get_or_open(
        &self,
        open: impl FnOnce() -> anyhow::Result<B>,
    ) -> anyhow::Result<Arc<dyn Backend>> {
        Ok(self.get_or_open_typed(open)?)
    }

    /// Like [`HandleCache::get_or_open`], with the concrete type (e.g. to reach the store
    /// in [`TestVolume::plant_garbage`]).
    pub fn get_or_open_typed(
        &self,
        open: impl FnOnce() -> anyhow::Result<B>,
    ) -> anyhow::Result<Arc<B>> {
        let mut live = self.live.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = live.upgrade() {
            return Ok(b);
        }
        let b = Arc::new(open()?);
        *live = Arc::downgrade(&b);
        Ok(b)
    }
}

/// The factory of the in-memory reference backend (`meta_core::memory`): the first user of
/// the suite, and a complete example of a [`Factory`].
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryFactory;

/// A volume of [`MemoryFactory`]: a [`MemStore`] that outlives its handles, so a "reopen"
/// wraps the same map in a new backend.
#[derive(Debug, Default)]
pub struct MemoryVolume {
    store: MemStore,
    handles: HandleCache<MemoryBackend>,
}

#[async_trait]
impl Factory for MemoryFactory {
    fn name(&self) -> &str {
        "memory"
    }

    async fn create(&self) -> anyhow::Result<Fresh> {
        Ok(Fresh::Volume(Box::new(MemoryVolume::default())))
    }
}

#[async_trait]
impl TestVolume for MemoryVolume {
    async fn open(&self) -> anyhow::Result<Arc<dyn Backend>> {
        self.handles
            .get_or_open(|| Ok(kv::KvBackend::new(self.store.clone())))
    }

    async fn plant_garbage(&self, target: &RawTarget, garbage: &[u8]) -> anyhow::Result<bool> {
        self.store.put_raw(&kv_key(target), garbage);
        Ok(true)
    }
}
