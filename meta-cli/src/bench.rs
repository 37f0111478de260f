//! `meta bench`: mdtest-like phases on small files with concurrent tokio tasks.
//!
//! Phases, in order: `mkdir` (D directories), `create` (N empty files spread over them),
//! `stat` (lookup of every file), `readdir` (list every directory; one op = one entry
//! listed), `rename` (every file to a new name in its directory), `unlink`, `rmdir`. Each
//! phase runs T tasks; task t takes items t, t+T, t+2T, ... and awaits one op at a time, so T
//! ops are in flight — the batcher groups them (or, with `batchwrite=0`, each is its own
//! `apply`).

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use indicatif::ProgressBar;
use meta_core::{Caller, Ino, Meta, PoolStats, RenameFlags};
use prometheus::Registry;
use serde::Serialize;
use tokio::task::JoinSet;

use crate::browse;
use crate::util;
use crate::volume::{self, Access, Opened};

/// Options of `meta bench`.
#[derive(Debug, Clone)]
pub struct BenchOpts {
    /// Files created (and renamed, unlinked).
    pub files: u64,
    /// Directories the files are spread over.
    pub dirs: u64,
    /// Concurrent tasks.
    pub tasks: usize,
    /// Run with `batchwrite=0` only.
    pub no_batch: bool,
    /// Run batched and unbatched, each on a fresh volume, and print the ratio.
    pub compare: bool,
    /// Serve Prometheus `/metrics` here while running.
    pub metrics_addr: Option<SocketAddr>,
    /// The `--url` (or `META_URL`) if given; `None` = a fresh temporary RocksDB volume.
    pub url: Option<String>,
    /// Who runs the ops (`--caller`; root by default). The run's directories belong to it,
    /// so a caller other than root makes every op go through the permission checks the way
    /// an unprivileged user's would.
    pub caller: Caller,
    /// Set a directory quota on the run's top directory (`--quota`), with limits the run
    /// never reaches, so every create, write and unlink charges it.
    pub quota: bool,
}

/// One phase's result.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseResult {
    /// Phase name.
    pub phase: &'static str,
    /// Ops done (for `readdir`: entries listed).
    pub ops: u64,
    /// Wall time, seconds.
    pub seconds: f64,
    /// `ops / seconds`.
    pub ops_per_sec: f64,
}

/// One run (batched or unbatched) on one volume.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    /// `batched` or `unbatched`.
    pub mode: &'static str,
    /// The volume (password redacted).
    pub url: String,
    /// Per-phase results, in order.
    pub phases: Vec<PhaseResult>,
    /// Inode ID pool counters.
    pub inode_pool: PoolStats,
    /// Chunk ID pool counters.
    pub chunk_pool: PoolStats,
    /// Inodes created (mkdir + create).
    pub creates: u64,
    /// Inode `reserve_ids` calls per 1,000 creates.
    pub reserve_calls_per_1000_creates: f64,
    /// Backend `apply` calls.
    pub apply_calls: u64,
    /// Mean ops per `apply` call.
    pub mean_batch_ops: f64,
    /// The backend's own activity counters during the run ([`meta_core::Backend::activity`]:
    /// commits and conflict retries of a transactional store), as (name, count).
    pub backend_activity: Vec<(&'static str, u64)>,
    /// Ops of the phases that write (all but stat and readdir).
    pub write_ops: u64,
}

/// The whole report (`--json` prints it).
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    /// Files per run.
    pub files: u64,
    /// Directories per run.
    pub dirs: u64,
    /// Concurrent tasks.
    pub tasks: usize,
    /// Runs in order.
    pub runs: Vec<RunResult>,
    /// With `--compare`: batched ops/s ÷ unbatched ops/s per phase.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ratio: Option<BTreeMap<&'static str, f64>>,
}

/// Where each run's volume comes from.
pub(crate) enum Source {
    /// A fresh temporary RocksDB volume per run.
    #[cfg(feature = "rocksdb")]
    TempRocks,
    /// A fresh in-memory volume per run (the URL's engine options kept).
    Memory(String),
    /// One volume shared by the runs (each run works in its own top directory).
    Shared(Opened),
}

pub(crate) struct Volume {
    pub(crate) opened: Opened,
    _dir: Option<tempfile::TempDir>,
}

impl Volume {
    /// Closes a temporary volume before deleting its directory: waits (up to 10 s) until the
    /// engine's background tasks have let go of the backend, so the database is closed first.
    pub(crate) async fn close(self) {
        let Volume { opened, _dir } = self;
        let Some(dir) = _dir else { return };
        let backend = opened.backend;
        for _ in 0..1000 {
            if Arc::strong_count(&backend) == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        drop(backend);
        drop(dir);
    }
}

impl Source {
    pub(crate) async fn new(url: Option<&str>) -> Result<Source> {
        match url {
            None => {
                #[cfg(feature = "rocksdb")]
                return Ok(Source::TempRocks);
                #[cfg(not(feature = "rocksdb"))]
                {
                    eprintln!("meta bench: built without rocksdb; using memory://");
                    Ok(Source::Memory("memory://".into()))
                }
            }
            Some(u) => {
                let o = volume::open_backend(u, Access::Write).await?;
                if o.backend.info().scheme == "memory" {
                    Ok(Source::Memory(u.to_string()))
                } else {
                    Ok(Source::Shared(o))
                }
            }
        }
    }

    pub(crate) async fn volume(&self) -> Result<Volume> {
        match self {
            #[cfg(feature = "rocksdb")]
            Source::TempRocks => {
                let dir = tempfile::Builder::new()
                    .prefix("meta-bench-")
                    .tempdir()
                    .context("create a temporary directory for the bench volume")?;
                let url = format!("rocksdb://{}", dir.path().join("vol").display());
                Ok(Volume {
                    opened: volume::open_backend(&url, Access::Write).await?,
                    _dir: Some(dir),
                })
            }
            Source::Memory(url) => Ok(Volume {
                opened: volume::open_backend(url, Access::Write).await?,
                _dir: None,
            }),
            Source::Shared(o) => Ok(Volume {
                opened: o.clone(),
                _dir: None,
            }),
        }
    }
}

/// The registries the `/metrics` endpoint gathers from (one per run, labelled by mode).
#[derive(Default)]
struct Hub {
    registries: Mutex<Vec<Registry>>,
}

impl Hub {
    fn render(&self) -> String {
        let regs = self.registries.lock().unwrap_or_else(|p| p.into_inner());
        let mut fams: Vec<prometheus::proto::MetricFamily> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for r in regs.iter() {
            for mut mf in r.gather() {
                match index.get(mf.name()) {
                    Some(&i) => {
                        let m = mf.take_metric();
                        fams[i].mut_metric().extend(m);
                    }
                    None => {
                        index.insert(mf.name().to_string(), fams.len());
                        fams.push(mf);
                    }
                }
            }
        }
        let mut out = String::new();
        if let Err(e) = prometheus::TextEncoder::new().encode_utf8(&fams, &mut out) {
            return format!("# encoding failed: {e}\n");
        }
        out
    }
}

async fn serve_metrics(
    addr: SocketAddr,
    hub: Arc<Hub>,
) -> Result<(tokio::task::JoinHandle<()>, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("listen on {addr} for /metrics"))?;
    let local = listener.local_addr().context("metrics listener address")?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let hub = hub.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    hub.render(),
                )
            }
        }),
    );
    let handle = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::warn!("metrics server stopped: {e}");
        }
    });
    Ok((handle, local))
}

/// Runs `f(i)` for i in 0..n on `tasks` concurrent tasks; `f` returns the ops it counted.
pub(crate) async fn phase<F, Fut>(
    name: &'static str,
    n: u64,
    tasks: usize,
    pb: &ProgressBar,
    f: F,
) -> Result<PhaseResult>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = meta_core::Result<u64>> + Send + 'static,
{
    pb.set_prefix(name);
    let f = Arc::new(f);
    let started = Instant::now();
    let mut set = JoinSet::new();
    let tasks = (tasks as u64).clamp(1, n.max(1));
    for t in 0..tasks {
        let f = f.clone();
        let pb = pb.clone();
        set.spawn(async move {
            let mut ops = 0u64;
            let mut i = t;
            while i < n {
                let k = f(i).await.map_err(|e| (i, e))?;
                ops += k;
                pb.inc(k);
                i += tasks;
            }
            Ok::<u64, (u64, meta_core::Error)>(ops)
        });
    }
    let mut ops = 0;
    let mut first_err = None;
    while let Some(r) = set.join_next().await {
        match r {
            Ok(Ok(k)) => ops += k,
            Ok(Err((i, e))) => {
                if first_err.is_none() {
                    first_err =
                        Some(anyhow::Error::new(e).context(format!("{name} phase, item {i}")));
                    set.abort_all();
                }
            }
            Err(e) if e.is_cancelled() => {}
            Err(e) => {
                first_err.get_or_insert_with(|| anyhow::anyhow!("{name} phase: task failed: {e}"));
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(PhaseResult {
        phase: name,
        ops,
        seconds,
        ops_per_sec: if seconds > 0.0 {
            ops as f64 / seconds
        } else {
            0.0
        },
    })
}

pub(crate) fn name(prefix: &str, i: u64) -> Vec<u8> {
    format!("{prefix}{i}").into_bytes()
}

async fn run_once(vol: &Volume, batched: bool, o: &BenchOpts, hub: &Hub) -> Result<RunResult> {
    let mode = if batched { "batched" } else { "unbatched" };
    let mut mopts = vol.opened.opts.clone();
    if !batched {
        mopts.batchwrite = false;
    }
    let registry = Registry::new_custom(
        None,
        Some(HashMap::from([("mode".to_string(), mode.to_string())])),
    )
    .context("metrics registry")?;
    volume::ensure_formatted(&*vol.opened.backend).await?;
    let activity_before = vol.opened.backend.activity();
    let meta = Meta::open(vol.opened.backend.clone(), mopts, Some(&registry)).await?;
    hub.registries
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(registry);

    let (files, ndirs, tasks) = (o.files, o.dirs.max(1), o.tasks.max(1));
    let total = ndirs * 2 + files * 5;
    let pb = util::bar(total);
    pb.set_message(mode);
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let top_name = format!("bench-{}-{stamp}-{mode}", std::process::id());
    let me = o.caller.clone();
    let (top, _) = meta
        .mkdir(me.clone(), Ino::ROOT, top_name.as_bytes(), 0o755)
        .await?;
    if o.quota {
        meta.set_quota(top, 1 << 60, 1 << 40)
            .await
            .context("set the quota of the run's directory (--quota)")?;
    }
    let dirs: Arc<Mutex<Vec<Ino>>> = Arc::new(Mutex::new(vec![Ino::ZERO; ndirs as usize]));
    let dir_of = {
        let dirs = dirs.clone();
        move |i: u64| -> Ino {
            let d = dirs.lock().unwrap_or_else(|p| p.into_inner());
            d.get((i % ndirs) as usize).copied().unwrap_or(Ino::ZERO)
        }
    };
    let mut phases = Vec::new();

    let (m, ds, who) = (meta.clone(), dirs.clone(), me.clone());
    phases.push(
        phase("mkdir", ndirs, tasks, &pb, move |i| {
            let (m, ds, me) = (m.clone(), ds.clone(), who.clone());
            async move {
                let (ino, _) = m.mkdir(me, top, &name("d", i), 0o755).await?;
                if let Some(slot) = ds
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_mut(i as usize)
                {
                    *slot = ino;
                }
                Ok(1)
            }
        })
        .await?,
    );
    let (m, d, who) = (meta.clone(), dir_of.clone(), me.clone());
    phases.push(
        phase("create", files, tasks, &pb, move |i| {
            let (m, dir, me) = (m.clone(), d(i), who.clone());
            async move {
                m.create(me, dir, &name("f", i), 0o644).await?;
                Ok(1)
            }
        })
        .await?,
    );
    let (m, d) = (meta.clone(), dir_of.clone());
    phases.push(
        phase("stat", files, tasks, &pb, move |i| {
            let (m, dir) = (m.clone(), d(i));
            async move {
                m.lookup(dir, &name("f", i)).await?;
                Ok(1)
            }
        })
        .await?,
    );
    let (m, d) = (meta.clone(), dir_of.clone());
    phases.push(
        phase("readdir", ndirs, tasks, &pb, move |i| {
            let (m, dir) = (m.clone(), d(i));
            async move { Ok(browse::read_all(&m, dir, false).await?.len() as u64) }
        })
        .await?,
    );
    let (m, d, who) = (meta.clone(), dir_of.clone(), me.clone());
    phases.push(
        phase("rename", files, tasks, &pb, move |i| {
            let (m, dir, me) = (m.clone(), d(i), who.clone());
            async move {
                m.rename(
                    me,
                    dir,
                    &name("f", i),
                    dir,
                    &name("r", i),
                    RenameFlags::NONE,
                )
                .await?;
                Ok(1)
            }
        })
        .await?,
    );
    let (m, d, who) = (meta.clone(), dir_of.clone(), me.clone());
    phases.push(
        phase("unlink", files, tasks, &pb, move |i| {
            let (m, dir, me) = (m.clone(), d(i), who.clone());
            async move {
                m.unlink(me, dir, &name("r", i)).await?;
                Ok(1)
            }
        })
        .await?,
    );
    let (m, who) = (meta.clone(), me.clone());
    phases.push(
        phase("rmdir", ndirs, tasks, &pb, move |i| {
            let (m, me) = (m.clone(), who.clone());
            async move {
                m.rmdir(me, top, &name("d", i)).await?;
                Ok(1)
            }
        })
        .await?,
    );
    meta.rmdir(me, Ino::ROOT, top_name.as_bytes()).await?;
    pb.finish_and_clear();
    let (inode_pool, chunk_pool) = meta.pool_stats();
    // Flush, stop the batcher and the prefetch so the backend is free (temp volumes are deleted).
    meta.close().await?;

    let creates = ndirs + files;
    let backend_activity = vol
        .opened
        .backend
        .activity()
        .into_iter()
        .map(|(k, v)| {
            let before = activity_before
                .iter()
                .find(|(b, _)| *b == k)
                .map_or(0, |(_, n)| *n);
            (k, v.saturating_sub(before))
        })
        .collect();
    let write_ops = phases
        .iter()
        .filter(|p| !matches!(p.phase, "stat" | "readdir"))
        .map(|p| p.ops)
        .sum();
    let hist = &meta.metrics().batch_size;
    let apply_calls = hist.get_sample_count();
    Ok(RunResult {
        mode,
        url: vol.opened.display.clone(),
        phases,
        inode_pool,
        chunk_pool,
        creates,
        reserve_calls_per_1000_creates: inode_pool.reserve_calls as f64 * 1000.0
            / creates.max(1) as f64,
        apply_calls,
        mean_batch_ops: if apply_calls > 0 {
            hist.get_sample_sum() / apply_calls as f64
        } else {
            0.0
        },
        backend_activity,
        write_ops,
    })
}

/// Runs the benchmark as `o` says; returns the report (printing is the caller's).
pub async fn bench(o: &BenchOpts) -> Result<BenchReport> {
    if o.files == 0 {
        bail!("--files must be at least 1 (EINVAL)");
    }
    let source = Source::new(o.url.as_deref()).await?;
    let hub = Arc::new(Hub::default());
    let server = match o.metrics_addr {
        Some(addr) => {
            let (h, local) = serve_metrics(addr, hub.clone()).await?;
            eprintln!("meta bench: serving Prometheus metrics on http://{local}/metrics");
            Some(h)
        }
        None => None,
    };
    let modes: &[bool] = if o.compare {
        &[true, false]
    } else if o.no_batch {
        &[false]
    } else {
        &[true]
    };
    let mut runs = Vec::new();
    for &batched in modes {
        let vol = source.volume().await?;
        let r = run_once(&vol, batched, o, &hub).await;
        vol.close().await;
        runs.push(r?);
    }
    if let Some(h) = server {
        h.abort();
    }
    let ratio = (runs.len() == 2).then(|| {
        runs[0]
            .phases
            .iter()
            .zip(&runs[1].phases)
            .map(|(a, b)| {
                (
                    a.phase,
                    if b.ops_per_sec > 0.0 {
                        a.ops_per_sec / b.ops_per_sec
                    } else {
                        0.0
                    },
                )
            })
            .collect()
    });
    Ok(BenchReport {
        files: o.files,
        dirs: o.dirs.max(1),
        tasks: o.tasks.max(1),
        runs,
        ratio,
    })
}

impl BenchReport {
    /// Prints the table(s).
    pub fn print(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        let Some(first) = self.runs.first() else {
            return Ok(());
        };
        writeln!(
            out,
            "meta bench: {} files in {} dirs, {} tasks, volume {}",
            self.files, self.dirs, self.tasks, first.url
        )?;
        if let (Some(ratio), [a, b]) = (&self.ratio, self.runs.as_slice()) {
            writeln!(
                out,
                "{:<8} {:>10} {:>16} {:>16} {:>8}",
                "phase", "ops", "batched ops/s", "unbatched ops/s", "ratio"
            )?;
            for (pa, pb) in a.phases.iter().zip(&b.phases) {
                writeln!(
                    out,
                    "{:<8} {:>10} {:>16.0} {:>16.0} {:>7.2}x",
                    pa.phase,
                    pa.ops,
                    pa.ops_per_sec,
                    pb.ops_per_sec,
                    ratio.get(pa.phase).copied().unwrap_or(0.0)
                )?;
            }
        } else {
            writeln!(out, "mode: {}", first.mode)?;
            writeln!(
                out,
                "{:<8} {:>10} {:>10} {:>12}",
                "phase", "ops", "seconds", "ops/s"
            )?;
            for p in &first.phases {
                writeln!(
                    out,
                    "{:<8} {:>10} {:>10.3} {:>12.0}",
                    p.phase, p.ops, p.seconds, p.ops_per_sec
                )?;
            }
        }
        writeln!(out, "(readdir: one op = one entry listed)")?;
        for r in &self.runs {
            writeln!(
                out,
                "{}: inode IDs {} served, {} reserve calls ({:.2} per 1,000 creates), {} async prefetches, {} sync refills; {} apply calls, {:.1} ops per call",
                r.mode,
                r.inode_pool.served,
                r.inode_pool.reserve_calls,
                r.reserve_calls_per_1000_creates,
                r.inode_pool.prefetches,
                r.inode_pool.sync_refills,
                r.apply_calls,
                r.mean_batch_ops
            )?;
            if !r.backend_activity.is_empty() {
                let per_k = |n: u64| n as f64 * 1000.0 / r.write_ops.max(1) as f64;
                let list: Vec<String> = r
                    .backend_activity
                    .iter()
                    .map(|(k, n)| format!("{k} {n} ({:.1} per 1,000 write ops)", per_k(*n)))
                    .collect();
                writeln!(out, "{}: backend: {}", r.mode, list.join(", "))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn metrics_endpoint_merges_the_runs() -> Result<()> {
        let hub = Arc::new(Hub::default());
        for mode in ["batched", "unbatched"] {
            let backend = Arc::new(meta_core::memory::memory_backend());
            Meta::format(&*backend, &meta_core::Setting::new("t"), false).await?;
            let reg =
                Registry::new_custom(None, Some(HashMap::from([("mode".into(), mode.into())])))?;
            let meta = Meta::open(backend, meta_core::MetaOptions::default(), Some(&reg)).await?;
            meta.mkdir(Caller::ROOT, Ino::ROOT, b"d", 0o755).await?;
            hub.registries
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(reg);
        }
        let (server, addr) = serve_metrics("127.0.0.1:0".parse()?, hub).await?;
        let mut s = tokio::net::TcpStream::connect(addr).await?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await?;
        let mut body = String::new();
        s.read_to_string(&mut body).await?;
        server.abort();
        assert!(body.starts_with("HTTP/1.1 200"), "{body}");
        assert!(
            body.contains("meta_ops_total{op=\"mknod\",result=\"ok\",mode=\"batched\"} 1"),
            "{body}"
        );
        assert!(body.contains("mode=\"unbatched\""), "{body}");
        assert_eq!(body.matches("# TYPE meta_ops_total ").count(), 1, "{body}");
        assert!(body.contains("meta_inode_prime_calls_total"), "{body}");
        Ok(())
    }
}
