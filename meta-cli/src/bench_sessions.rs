//! `meta bench-sessions`: what sessions, open files and locks cost.
//!
//! - **open tracking**: T tasks each create a file, write one slice and close it, N files in
//!   all, once without open tracking (`create` + `write`) and once with it (`create_open` +
//!   `write` + `release_file`: the open rides in the create op, the release is one more op),
//!   alternating (ABBA) on one volume; files/s of each and the cost of tracking in percent
//!   (mean against mean).
//!   `release_file` queues the release (the engine sends queued releases together in the
//!   background); the time of a run includes the final `flush` that waits for all of them.
//! - **locks**: two clients (two `Meta`, two sessions) × T tasks take and release an
//!   exclusive flock, then a byte-range lock: on disjoint files (one per task) and all on one
//!   contended file (the blocking helpers retry); lock/unlock pairs per second.

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, bail};
use meta_core::{Caller, Ino, LockType, Meta, PlockRequest, Slice};
use serde::Serialize;

use crate::bench::{Source, name, phase};
use crate::util;
use crate::volume;

const ME: Caller = Caller::ROOT;

/// Options of `meta bench-sessions`.
#[derive(Debug, Clone)]
pub struct Opts {
    /// Files per open-tracking run.
    pub files: u64,
    /// Concurrent tasks per client.
    pub tasks: usize,
    /// Lock/unlock pairs per task.
    pub pairs: u64,
    /// Plain/tracked pairs of open-tracking runs (ABBA order).
    pub rounds: u32,
    /// Run only this half of each pair (`None`: both), e.g. to count what one half costs the
    /// server with a profiler.
    pub only: Option<Half>,
    /// `--url`, or a fresh temporary RocksDB volume.
    pub url: Option<String>,
}

/// One half of the open-tracking comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Half {
    /// `create` + `write`: no open recorded.
    Plain,
    /// `create_open` + `write` + `release_file`.
    Tracked,
}

/// One measured row.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// What was measured.
    pub what: String,
    /// Operations (files, or lock/unlock pairs).
    pub ops: u64,
    /// Per second.
    pub per_sec: f64,
}

/// The report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The volume.
    pub url: String,
    /// Tasks per client.
    pub tasks: usize,
    /// Rows in order.
    pub rows: Vec<Row>,
    /// Mean files/s without tracking ÷ mean files/s with tracking − 1, in percent; `None`
    /// when only one half ran (`--only`).
    pub tracking_cost_percent: Option<f64>,
    /// Lock requests that found a conflict and retried (`meta_lock_waits_total` of both
    /// clients, contended runs).
    pub lock_waits: u64,
}

async fn files_run(meta: &Meta, top: Ino, tracked: bool, o: &Opts, round: u32) -> Result<Row> {
    let label = if tracked { "tracked" } else { "plain" };
    let dir_name = format!("{label}-{round}");
    let (dir, _) = meta.mkdir(ME, top, dir_name.as_bytes(), 0o755).await?;
    let pb = util::bar(o.files);
    let m = meta.clone();
    let started = Instant::now();
    let r = phase(
        if tracked {
            "create+write+close (tracked)"
        } else {
            "create+write (plain)"
        },
        o.files,
        o.tasks,
        &pb,
        move |i| {
            let m = m.clone();
            async move {
                let n = name("f", i);
                let ino = if tracked {
                    m.create_open(ME, dir, &n, 0o644).await?.0
                } else {
                    m.create(ME, dir, &n, 0o644).await?.0
                };
                let id = m.new_slice_id().await?;
                let s = Slice {
                    pos: 0,
                    id,
                    size: 4096,
                    off: 0,
                    len: 4096,
                };
                m.write(Caller::ROOT, ino, 0, s).await?;
                if tracked {
                    m.release_file(ino).await?;
                }
                Ok(1)
            }
        },
    )
    .await?;
    meta.flush().await?;
    let secs = started.elapsed().as_secs_f64();
    pb.finish_and_clear();
    Ok(Row {
        what: format!("{} round {round}", r.phase),
        ops: r.ops,
        per_sec: r.ops as f64 / secs.max(1e-9),
    })
}

async fn lock_run(clients: &[Meta], files: &[Ino], plock: bool, o: &Opts) -> Result<Row> {
    let contended = files.len() == 1;
    let n = clients.len() as u64 * o.tasks as u64;
    let pb = util::bar(n * o.pairs);
    let (clients, files) = (Arc::new(clients.to_vec()), Arc::new(files.to_vec()));
    let pairs = o.pairs;
    let what = format!(
        "{} lock/unlock, {} clients x {} tasks, {}",
        if plock { "fcntl" } else { "flock" },
        clients.len(),
        o.tasks,
        if contended { "one file" } else { "a file each" }
    );
    let pb2 = pb.clone();
    let started = Instant::now();
    phase("locks", n, n as usize, &pb, move |t| {
        let (clients, files, pb) = (clients.clone(), files.clone(), pb2.clone());
        async move {
            let m = &clients[(t % clients.len() as u64) as usize];
            let f = files[(t % files.len() as u64) as usize];
            let owner = t + 1;
            let req = |typ| PlockRequest {
                typ,
                start: 0,
                end: u64::MAX,
                pid: 1,
            };
            for _ in 0..pairs {
                if plock {
                    m.setlk_wait(f, owner, req(LockType::Write), None).await?;
                    m.setlk(f, owner, req(LockType::Unlock)).await?;
                } else {
                    m.flock_wait(f, owner, LockType::Write, None).await?;
                    m.flock(f, owner, LockType::Unlock).await?;
                }
                pb.inc(1);
            }
            Ok(0)
        }
    })
    .await?;
    let secs = started.elapsed().as_secs_f64();
    pb.finish_and_clear();
    let ops = n * pairs;
    Ok(Row {
        what,
        ops,
        per_sec: ops as f64 / secs.max(1e-9),
    })
}

/// Runs the session benchmark.
pub async fn bench(o: &Opts) -> Result<Report> {
    if o.files == 0 || o.tasks == 0 || o.pairs == 0 || o.rounds == 0 {
        bail!("--files, --tasks, --pairs and --rounds must be at least 1 (EINVAL)");
    }
    let source = Source::new(o.url.as_deref()).await?;
    let vol = source.volume().await?;
    volume::ensure_formatted(&*vol.opened.backend).await?;
    let a = Meta::open(vol.opened.backend.clone(), vol.opened.opts.clone(), None).await?;
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let top_name = format!("bench-sessions-{}-{stamp}", std::process::id());
    let (top, _) = a.mkdir(ME, Ino::ROOT, top_name.as_bytes(), 0o755).await?;
    let mut rows = Vec::new();
    // ABBA order (plain, tracked, tracked, plain, ...) so a drift of the machine or the
    // volume's size weighs on both sides alike; the cost compares the means.
    let (mut plain, mut tracked_sum) = (Vec::new(), Vec::new());
    for round in 1..=o.rounds {
        let order = if round % 2 == 1 {
            [false, true]
        } else {
            [true, false]
        };
        for tracked in order {
            if o.only.is_some_and(|h| (h == Half::Tracked) != tracked) {
                continue;
            }
            let r = files_run(&a, top, tracked, o, round).await?;
            if tracked {
                tracked_sum.push(r.per_sec);
            } else {
                plain.push(r.per_sec);
            }
            rows.push(r);
        }
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let (mean_plain, mean_tracked) = (mean(&plain), mean(&tracked_sum));
    // A second client: its own backend handle where the store allows one.
    let b_backend = match &vol.opened.backend.info().scheme {
        &"rocksdb" | &"memory" => vol.opened.backend.clone(),
        _ => match o.url.as_deref() {
            Some(u) => {
                volume::open_backend(u, volume::Access::Write)
                    .await?
                    .backend
            }
            None => vol.opened.backend.clone(),
        },
    };
    let b = Meta::open(b_backend, vol.opened.opts.clone(), None).await?;
    let clients = [a.clone(), b.clone()];
    let mut files = Vec::new();
    for t in 0..2 * o.tasks {
        files.push(a.create(ME, top, &name("lock", t as u64), 0o644).await?.0);
    }
    for plock in [false, true] {
        rows.push(lock_run(&clients, &files, plock, o).await?);
        rows.push(lock_run(&clients, &files[..1], plock, o).await?);
    }
    let lock_waits = a.metrics().lock_waits.get() + b.metrics().lock_waits.get();
    b.close().await?;
    a.close().await?;
    drop((a, b, clients));
    let url = vol.opened.display.clone();
    vol.close().await;
    Ok(Report {
        url,
        tasks: o.tasks,
        rows,
        tracking_cost_percent: (mean_plain > 0.0 && mean_tracked > 0.0)
            .then(|| (mean_plain / mean_tracked - 1.0) * 100.0),
        lock_waits,
    })
}

impl Report {
    /// Prints the table.
    pub fn print(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        writeln!(
            out,
            "meta bench-sessions: {} tasks per client, volume {}",
            self.tasks, self.url
        )?;
        writeln!(out, "{:<62} {:>8} {:>12}", "workload", "ops", "per second")?;
        for r in &self.rows {
            writeln!(out, "{:<62} {:>8} {:>12.0}", r.what, r.ops, r.per_sec)?;
        }
        match self.tracking_cost_percent {
            Some(c) => write!(
                out,
                "open tracking costs {c:.1}% (mean plain vs mean tracked files/s)"
            )?,
            None => write!(out, "open tracking's cost: not measured (one half ran)")?,
        }
        writeln!(out, "; {} lock waits", self.lock_waits)
    }
}
