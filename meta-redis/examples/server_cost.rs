//! What meta costs the Redis server: CPU per op and memory per file.
//!
//! `cost` mode (default): N files created by T tasks spread over D directories (under one
//! top directory `run`) through `Meta` (default options: batched), then looked up, renamed
//! and unlinked the same way. For each
//! phase: ops/s, and the server's work per op from `INFO` deltas: process CPU
//! (`used_cpu_user + used_cpu_sys`, everything the server did: parsing, scripts, I/O),
//! script time (the `usec` of `EVALSHA`/`EVAL`/`FCALL`/`FCALL_RO` in `INFO commandstats`,
//! nested commands included), and calls per op of each top-level command kind.
//!
//! `memory` mode: `used_memory` growth per file for N empty files (named `file0`, `file1`,
//! ...) in D directories, and again for N files with one slice each.
//!
//! `--dir-stats false` formats the volume without directory statistics; `--quota true` sets
//! one directory quota on `run` before the timed phases (limits that are never reached, as
//! `meta bench --quota` does), so every create, rename and unlink charges it; `--opts
//! permissions=0` turns the engine's permission checks off (the ops run as uid 1000, on
//! directories of mode 0755 that uid 1000 owns). Issue #16's comparison is `--dir-stats
//! false --opts permissions=0` vs `--quota true`. `--until PHASE` stops after that phase
//! (create, stat, rename or unlink), for a profiler that counts the server's whole run:
//! `docs/tools/redis_ir.sh` counts instructions with callgrind and subtracts such runs.
//!
//! Only the public API is used, so the same file builds against an older meta-redis to
//! compare in one session against one server.
//!
//! ```text
//! cargo run --release -p meta-redis --example server_cost -- \
//!     --url redis://127.0.0.1:6379/0 [--mode cost|memory] [--files 20000] [--tasks 64] [--dirs 16]
//!     [--opts 'k=v&...'] [--dir-stats true|false] [--quota true|false]
//!     [--until create|stat|rename|unlink]
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use meta_core::{Caller, Ino, Meta, Setting, Slice};
use meta_redis::RedisBackend;

const ME: Caller = Caller::new(1000, 1000);

struct Args {
    url: String,
    mode: String,
    files: u64,
    tasks: u64,
    dirs: u64,
    opts: String,
    dir_stats: bool,
    quota: bool,
    /// The last phase of `cost` mode to run (create, stat, rename or unlink).
    until: String,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        url: "redis://127.0.0.1:6379/0".into(),
        mode: "cost".into(),
        files: 20_000,
        tasks: 64,
        dirs: 16,
        opts: String::new(),
        dir_stats: true,
        quota: false,
        until: "unlink".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it
            .next()
            .ok_or_else(|| anyhow::anyhow!("{k} needs a value"))?;
        match k.as_str() {
            "--url" => a.url = v,
            "--mode" => a.mode = v,
            "--files" => a.files = v.parse()?,
            "--tasks" => a.tasks = v.parse()?,
            "--dirs" => a.dirs = v.parse()?,
            "--opts" => a.opts = v,
            "--dir-stats" => a.dir_stats = v.parse()?,
            "--quota" => a.quota = v.parse()?,
            "--until" => a.until = v,
            other => anyhow::bail!("unknown option {other}"),
        }
    }
    anyhow::ensure!(
        a.tasks > 0 && a.dirs > 0,
        "--tasks and --dirs must be positive"
    );
    anyhow::ensure!(
        PHASES.contains(&a.until.as_str()),
        "--until must be one of {PHASES:?}, not {}",
        a.until
    );
    anyhow::ensure!(
        a.dir_stats || !a.quota,
        "--quota true needs directory statistics (--dir-stats true)"
    );
    Ok(a)
}

/// `INFO` as field → value.
async fn info(b: &RedisBackend, section: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let v = b.query(redis::cmd("INFO").arg(section)).await?;
    let text: String = redis::FromRedisValue::from_redis_value(v)?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect())
}

/// The server's counters at one moment: CPU seconds, and per command (calls, usec).
struct Snap {
    cpu: f64,
    cmds: BTreeMap<String, (u64, u64)>,
}

async fn snap(b: &RedisBackend) -> anyhow::Result<Snap> {
    let cpu = info(b, "cpu").await?;
    let f = |k: &str| {
        cpu.get(k)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let mut cmds = BTreeMap::new();
    for (k, v) in info(b, "commandstats").await? {
        let Some(name) = k.strip_prefix("cmdstat_") else {
            continue;
        };
        let field = |f: &str| {
            v.split(',')
                .find_map(|p| p.strip_prefix(f))
                .and_then(|x| x.parse::<u64>().ok())
                .unwrap_or(0)
        };
        cmds.insert(name.to_string(), (field("calls="), field("usec=")));
    }
    Ok(Snap {
        cpu: f("used_cpu_user") + f("used_cpu_sys"),
        cmds,
    })
}

/// The phases of `cost` mode, in order (`--until` names the last one to run).
const PHASES: [&str; 4] = ["create", "stat", "rename", "unlink"];

const SCRIPT_CMDS: [&str; 4] = ["evalsha", "eval", "fcall", "fcall_ro"];

/// One phase's line: ops/s, CPU µs/op, script µs/op, calls per op.
fn report(phase: &str, n: u64, secs: f64, a: &Snap, b: &Snap) {
    let per = |x: f64| x / n as f64;
    let cpu_us = per((b.cpu - a.cpu) * 1e6);
    let mut script_us = 0.0;
    let mut calls = Vec::new();
    for (name, &(c1, u1)) in &b.cmds {
        let (c0, u0) = a.cmds.get(name).copied().unwrap_or((0, 0));
        let (dc, du) = (c1 - c0, u1 - u0);
        if dc == 0 || name == "info" {
            continue;
        }
        if SCRIPT_CMDS.contains(&name.as_str()) {
            script_us += per(du as f64);
        }
        calls.push(format!("{name} {:.3}", per(dc as f64)));
    }
    println!(
        "| {phase} | {:.0} | {cpu_us:.1} | {script_us:.1} | {} |",
        n as f64 / secs,
        calls.join(", ")
    );
}

async fn open(a: &Args) -> anyhow::Result<(RedisBackend, Meta)> {
    // A short prefix, as a deployment would use (every key carries it).
    let prefix = format!("m{:04x}", rand::random::<u16>());
    let sep = if a.url.contains('?') { '&' } else { '?' };
    let (u, mut opts) = meta_redis::parse_url(&format!("{}{sep}prefix={prefix}", a.url))?;
    for kv in a.opts.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        anyhow::ensure!(opts.set(k, v)?, "unknown engine option {k}");
    }
    let b = meta_redis::open(u).await?;
    let mut setting = Setting::new("cost");
    setting.dir_stats = a.dir_stats;
    Meta::format(&b, &setting, false).await?;
    let m = Meta::open(Arc::new(b.clone()), opts, None).await?;
    Ok((b, m))
}

/// Runs `f(meta, dir, i)` for every file `i` of every task, T tasks at a time; returns the
/// elapsed seconds.
async fn run<F, Fut>(m: &Meta, dirs: &[Ino], a: &Args, f: F) -> anyhow::Result<f64>
where
    F: Fn(Meta, Ino, u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let per = a.files / a.tasks;
    let start = Instant::now();
    let mut hs = Vec::new();
    for t in 0..a.tasks {
        let (m, f) = (m.clone(), f.clone());
        let d = dirs[(t % a.dirs) as usize];
        hs.push(tokio::spawn(async move {
            for i in 0..per {
                f(m.clone(), d, t * per + i).await?;
            }
            anyhow::Ok(())
        }));
    }
    for h in hs {
        h.await??;
    }
    Ok(start.elapsed().as_secs_f64())
}

async fn cost(a: &Args) -> anyhow::Result<()> {
    let (b, m) = open(a).await?;
    let (top, _) = m.mkdir(ME, Ino::ROOT, b"run", 0o755).await?;
    if a.quota {
        // Limits never reached: every op charges the quota, none fails on it.
        m.set_quota(top, 1 << 60, 1 << 40).await?;
    }
    let mut dirs = Vec::new();
    for d in 0..a.dirs {
        dirs.push(m.mkdir(ME, top, format!("d{d}").as_bytes(), 0o755).await?.0);
    }
    m.flush().await?;
    let n = a.files / a.tasks * a.tasks;
    println!(
        "{n} files, {} tasks, {} directories, statistics {}, quota {}; per op: server CPU \
         (INFO cpu), script time (commandstats usec of EVALSHA/FCALL), top-level and nested \
         calls",
        a.tasks,
        a.dirs,
        if a.dir_stats { "on" } else { "off" },
        if a.quota { "on" } else { "off" },
    );
    println!("| phase | ops/s | server CPU µs/op | script µs/op | calls per op |");
    println!("|---|---|---|---|---|");
    let name = |i: u64| format!("file{i}").into_bytes();
    let renamed = |i: u64| format!("moved{i}").into_bytes();

    let s0 = snap(&b).await?;
    let secs = run(&m, &dirs, a, move |m, d, i| async move {
        m.create(ME, d, &name(i), 0o644).await?;
        Ok(())
    })
    .await?;
    m.flush().await?;
    let s1 = snap(&b).await?;
    report("create", n, secs, &s0, &s1);
    if a.until == "create" {
        return finish(b, m).await;
    }

    let secs = run(&m, &dirs, a, move |m, d, i| async move {
        m.lookup(d, &name(i)).await?;
        Ok(())
    })
    .await?;
    let s2 = snap(&b).await?;
    report("stat (lookup)", n, secs, &s1, &s2);
    if a.until == "stat" {
        return finish(b, m).await;
    }

    let secs = run(&m, &dirs, a, move |m, d, i| async move {
        m.rename(ME, d, &name(i), d, &renamed(i), Default::default())
            .await?;
        Ok(())
    })
    .await?;
    m.flush().await?;
    let s3 = snap(&b).await?;
    report("rename", n, secs, &s2, &s3);
    if a.until == "rename" {
        return finish(b, m).await;
    }

    let secs = run(&m, &dirs, a, move |m, d, i| async move {
        m.unlink(ME, d, &renamed(i)).await?;
        Ok(())
    })
    .await?;
    m.flush().await?;
    let s4 = snap(&b).await?;
    report("unlink", n, secs, &s3, &s4);

    if a.quota {
        // Everything created was removed again: the quota is back to `run` and its
        // directories (inodes, 4 KiB each).
        let q = m
            .quota(top)
            .await?
            .ok_or_else(|| anyhow::anyhow!("the quota of run is gone"))?;
        anyhow::ensure!(
            q.used.inodes == a.dirs as i64,
            "quota usage after the run: {:?} (expected {} inodes)",
            q.used,
            a.dirs
        );
    }

    finish(b, m).await
}

/// Closes the session and erases the volume.
async fn finish(b: RedisBackend, m: Meta) -> anyhow::Result<()> {
    m.close().await?;
    b.erase().await?;
    Ok(())
}

async fn used_memory(b: &RedisBackend) -> anyhow::Result<i64> {
    let m = info(b, "memory").await?;
    m.get("used_memory")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("INFO memory without used_memory"))
}

async fn memory(a: &Args) -> anyhow::Result<()> {
    println!(
        "used_memory growth per file: {} files in {} directories",
        a.files, a.dirs
    );
    println!("| files | bytes per file |");
    println!("|---|---|");
    for with_slice in [false, true] {
        let (b, m) = open(a).await?;
        let mut dirs = Vec::new();
        for d in 0..a.dirs {
            dirs.push(
                m.mkdir(ME, Ino::ROOT, format!("d{d}").as_bytes(), 0o755)
                    .await?
                    .0,
            );
        }
        m.flush().await?;
        let before = used_memory(&b).await?;
        run(&m, &dirs, a, move |m, d, i| async move {
            let (ino, _) = m
                .create(ME, d, format!("file{i}").as_bytes(), 0o644)
                .await?;
            if with_slice {
                let id = m.new_slice_id().await?;
                let slice = Slice {
                    pos: 0,
                    id,
                    size: 1,
                    off: 0,
                    len: 1,
                };
                m.write(ME, ino, 0, slice).await?;
            }
            Ok(())
        })
        .await?;
        m.flush().await?;
        let after = used_memory(&b).await?;
        let n = a.files / a.tasks * a.tasks;
        let what = if with_slice {
            "one slice (1 byte)"
        } else {
            "empty"
        };
        println!("| {what} | {:.0} |", (after - before) as f64 / n as f64);
        m.close().await?;
        b.erase().await?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    match a.mode.as_str() {
        "cost" => cost(&a).await,
        "memory" => memory(&a).await,
        other => anyhow::bail!("unknown mode {other} (cost, memory)"),
    }
}
