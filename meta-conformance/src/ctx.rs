//! [`TestCtx`]: what a case gets — a fresh volume, a `Meta` on it, more handles, reopen.

use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use meta_core::{Backend, BackendInfo, Meta, MetaOptions, Setting};

use crate::factory::{Factory, Fresh, RawTarget, TestVolume};

/// How long [`TestCtx::reopen`] waits for every handle of the volume to be released.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Default)]
struct State {
    /// The primary engine (default options).
    meta: Option<Meta>,
    /// The primary backend handle (the one `meta` uses).
    backend: Option<Arc<dyn Backend>>,
    /// Every handle this context opened, to wait for their release before a reopen.
    handles: Vec<Weak<dyn Backend>>,
}

/// The context of one case: a fresh volume of the backend under test, formatted with
/// [`TestCtx::setting`], and a [`Meta`] opened on it with default options.
///
/// Handles (`meta()`, `backend()`, `open_meta`, `open_backend`) are cheap clones; a case must
/// drop the ones it holds before calling [`TestCtx::reopen`], which waits until every handle
/// of the volume is released so that durable backends really read the volume back.
pub struct TestCtx {
    factory: Arc<dyn Factory>,
    volume: Box<dyn TestVolume>,
    setting: Setting,
    info: BackendInfo,
    state: Mutex<State>,
}

impl std::fmt::Debug for TestCtx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestCtx")
            .field("backend", &self.factory.name())
            .field("setting", &self.setting)
            .finish()
    }
}

/// Waits until every weak handle is dead; names how many are still alive on timeout.
async fn wait_released(handles: &[Weak<dyn Backend>]) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let alive = handles.iter().filter(|w| w.strong_count() > 0).count();
        if alive == 0 {
            return Ok(());
        }
        if start.elapsed() > RELEASE_TIMEOUT {
            bail!(
                "{alive} backend handle(s) still alive after {RELEASE_TIMEOUT:?}: a case holds a \
                 Meta or backend clone across reopen, or a task using one is still running"
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

impl TestCtx {
    /// Creates a fresh volume from `factory`, formats it with a new [`Setting`] named
    /// `conformance` and opens a `Meta` with default options. `Ok(Err(reason))` when the
    /// factory skips.
    pub async fn new(factory: Arc<dyn Factory>) -> anyhow::Result<Result<TestCtx, String>> {
        let volume = match factory.create().await.context("factory: create a volume")? {
            Fresh::Volume(v) => v,
            Fresh::Skip(reason) => return Ok(Err(reason)),
        };
        let setting = Setting::new("conformance");
        let backend = volume.open().await.context("open the fresh volume")?;
        let info = backend.info();
        Meta::format(&*backend, &setting, false)
            .await
            .context("format the fresh volume")?;
        let meta = Meta::open(backend.clone(), MetaOptions::default(), None)
            .await
            .context("open Meta on the fresh volume")?;
        let state = State {
            meta: Some(meta),
            handles: vec![Arc::downgrade(&backend)],
            backend: Some(backend),
        };
        Ok(Ok(TestCtx {
            factory,
            volume,
            setting,
            info,
            state: Mutex::new(state),
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The backend's name as its factory gives it (`"memory"`, `"rocks"`, ...).
    pub fn backend_name(&self) -> &str {
        self.factory.name()
    }

    /// The factory (to make more fresh volumes of the backend under test).
    pub fn factory(&self) -> &Arc<dyn Factory> {
        &self.factory
    }

    /// The backend's static facts (scheme, batch limit, durability).
    pub fn info(&self) -> &BackendInfo {
        &self.info
    }

    /// The format record the volume was formatted with.
    pub fn setting(&self) -> &Setting {
        &self.setting
    }

    /// The primary `Meta` (default options: batching and ID priming on).
    ///
    /// # Panics
    /// Only when called after a failed [`TestCtx::reopen`].
    pub fn meta(&self) -> Meta {
        match &self.state().meta {
            Some(m) => m.clone(),
            None => panic!("TestCtx::meta after a failed reopen"),
        }
    }

    /// The backend handle the primary `Meta` uses.
    ///
    /// # Panics
    /// Only when called after a failed [`TestCtx::reopen`].
    pub fn backend(&self) -> Arc<dyn Backend> {
        match &self.state().backend {
            Some(b) => b.clone(),
            None => panic!("TestCtx::backend after a failed reopen"),
        }
    }

    /// Another handle to the same volume (see [`TestVolume::open`]).
    pub async fn open_backend(&self) -> anyhow::Result<Arc<dyn Backend>> {
        let b = self.volume.open().await.context("open another handle")?;
        self.state().handles.push(Arc::downgrade(&b));
        Ok(b)
    }

    /// Another `Meta` with its own ID pools and batcher, on another handle to the same
    /// volume: a second client.
    pub async fn open_meta(&self, opts: MetaOptions) -> anyhow::Result<Meta> {
        let b = self.open_backend().await?;
        Meta::open(b, opts, None)
            .await
            .context("open another Meta on the volume")
    }

    /// Default options with batching off (`batchwrite=0`): every op is its own `apply`.
    pub fn unbatched() -> MetaOptions {
        let mut o = MetaOptions::default();
        o.batchwrite = false;
        o
    }

    /// Closes every handle (the case must have dropped its clones), waits until they are
    /// released, then opens the volume again and a new primary `Meta`: for durable backends
    /// this reads everything back from storage.
    pub async fn reopen(&self) -> anyhow::Result<()> {
        let (meta, handles) = {
            let mut st = self.state();
            st.backend = None;
            (st.meta.take(), std::mem::take(&mut st.handles))
        };
        if let Some(m) = meta {
            // Stops the batcher and the ID-pool prefetch so they release the backend now.
            let _ = m.close().await;
        }
        wait_released(&handles).await.context("reopen")?;
        let backend = self.volume.open().await.context("reopen the volume")?;
        let meta = Meta::open(backend.clone(), MetaOptions::default(), None)
            .await
            .context("open Meta after reopen")?;
        let mut st = self.state();
        st.handles.push(Arc::downgrade(&backend));
        st.backend = Some(backend);
        st.meta = Some(meta);
        Ok(())
    }

    /// Asks the volume to overwrite a stored record with garbage (see
    /// [`TestVolume::plant_garbage`]); `Ok(false)` when the backend does not support it.
    pub async fn plant_garbage(&self, target: &RawTarget, garbage: &[u8]) -> anyhow::Result<bool> {
        self.volume.plant_garbage(target, garbage).await
    }

    /// Another fresh, isolated volume of the backend under test, formatted with `setting`
    /// when given (unformatted otherwise, e.g. to `load` a dump into).
    pub async fn extra_volume(&self, setting: Option<&Setting>) -> anyhow::Result<ExtraVolume> {
        let volume = match self
            .factory
            .create()
            .await
            .context("create an extra volume")?
        {
            Fresh::Volume(v) => v,
            Fresh::Skip(r) => bail!("the factory skipped an extra volume: {r}"),
        };
        let backend = volume.open().await.context("open the extra volume")?;
        if let Some(s) = setting {
            Meta::format(&*backend, s, false)
                .await
                .context("format the extra volume")?;
        }
        Ok(ExtraVolume {
            backend: Some(backend),
            volume,
        })
    }

    /// Drops every handle, waits for their release and lets the volume clean up.
    pub async fn close(self) -> anyhow::Result<()> {
        let (meta, handles) = {
            let mut st = self.state();
            st.backend = None;
            (st.meta.take(), std::mem::take(&mut st.handles))
        };
        if let Some(m) = meta {
            let _ = m.close().await;
        }
        let released = wait_released(&handles).await;
        self.volume.cleanup().await.context("clean the volume up")?;
        released
    }
}

/// A further isolated volume of the backend under test (see [`TestCtx::extra_volume`]).
pub struct ExtraVolume {
    backend: Option<Arc<dyn Backend>>,
    volume: Box<dyn TestVolume>,
}

impl std::fmt::Debug for ExtraVolume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtraVolume")
            .field("backend", &self.backend)
            .finish()
    }
}

impl ExtraVolume {
    /// Its backend handle.
    ///
    /// # Panics
    /// Never after construction (the handle is only taken in `close`).
    pub fn backend(&self) -> Arc<dyn Backend> {
        match &self.backend {
            Some(b) => b.clone(),
            None => panic!("ExtraVolume used after close"),
        }
    }

    /// A `Meta` on it.
    pub async fn meta(&self, opts: MetaOptions) -> anyhow::Result<Meta> {
        Meta::open(self.backend(), opts, None)
            .await
            .context("open Meta on the extra volume")
    }

    /// Drops the handle (callers must have dropped their clones), waits for its release and
    /// lets the volume clean up.
    pub async fn close(mut self) -> anyhow::Result<()> {
        if let Some(b) = self.backend.take() {
            let w = Arc::downgrade(&b);
            drop(b);
            wait_released(&[w]).await?;
        }
        self.volume.cleanup().await
    }
}
