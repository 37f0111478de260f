//! Server crash: a redis-server with `appendonly yes` and `appendfsync always` is killed with
//! SIGKILL while 16 tasks create files through one `Meta`, and restarted on the same port and
//! data directory. What must hold: an op that failed failed with `Unavailable` or
//! `Indeterminate` (never a silent success that is missing later); the client reconnects by
//! itself (creates succeed again after the restart); every create acknowledged before or after
//! the kill is present; fsck is clean.
//!
//! The test starts its own redis-server (from `PATH`) in a temp dir and stops it by PID. It
//! skips, loudly, when redis-server is missing, unless `META_CONFORMANCE_REQUIRE=1`.

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use common::server::{self, Server};
use meta_core::{Backend, Caller, ErrorKind, Ino, Meta, Setting};

/// redis-server persisting every write before it answers.
fn start(dir: &Path, port: u16) -> Result<Option<Server>> {
    let port_s = port.to_string();
    server::start(
        dir,
        port,
        &[
            "--bind",
            "127.0.0.1",
            "--port",
            &port_s,
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn server_killed_mid_run_loses_no_acknowledged_create() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let port = server::free_port()?;
    let Some(server) = start(dir.path(), port)? else {
        ensure!(
            !meta_conformance::skips_are_failures(),
            "redis-server is not installed and META_CONFORMANCE_REQUIRE=1"
        );
        eprintln!("SKIP meta-redis crash test: redis-server is not installed");
        return Ok(());
    };
    let url = format!("redis://127.0.0.1:{port}/0?prefix=crash&timeout=2s&connect_timeout=1s");
    let (u, opts) = meta_redis::parse_url(&url)?;
    let b = Arc::new(meta_redis::open(u).await?);
    Meta::format(&*b, &Setting::new("crash"), false).await?;
    let m = Meta::open(b.clone(), opts, None).await?;
    let me = Caller::new(0, 0);

    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let failed: Arc<Mutex<Vec<(String, ErrorKind)>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for t in 0..16 {
        let (m, acked, failed, stop, me) = (
            m.clone(),
            acked.clone(),
            failed.clone(),
            stop.clone(),
            me.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let name = format!("f{t}_{i}");
                i += 1;
                match m
                    .create(me.clone(), Ino::ROOT, name.as_bytes(), 0o644)
                    .await
                {
                    Ok(_) => acked.lock().map(|mut a| a.push(name)).unwrap_or(()),
                    Err(e) => {
                        failed
                            .lock()
                            .map(|mut f| f.push((name, e.kind())))
                            .unwrap_or(());
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
            }
        }));
    }
    let count = |v: &Arc<Mutex<Vec<String>>>| v.lock().map(|a| a.len()).unwrap_or(0);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // SIGKILL: no shutdown, no final fsync beyond what `appendfsync always` did per write.
    drop(server);
    let before_kill = count(&acked);
    tokio::time::sleep(Duration::from_millis(700)).await;
    let _server = start(dir.path(), port)?.context("restart redis-server")?;
    let at_restart = count(&acked);
    // The client reconnects by itself: creates succeed again.
    let deadline = Instant::now() + Duration::from_secs(20);
    while count(&acked) < at_restart + 200 {
        ensure!(
            Instant::now() < deadline,
            "no reconnection: {} creates acknowledged in 20 s after the restart",
            count(&acked) - at_restart
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in tasks {
        t.await?;
    }
    ensure!(before_kill > 0, "nothing was acknowledged before the kill");
    let failed = failed.lock().map(|f| f.clone()).unwrap_or_default();
    ensure!(
        !failed.is_empty(),
        "the kill failed no create: it came too late or too early"
    );
    for (name, kind) in &failed {
        ensure!(
            matches!(kind, ErrorKind::Unavailable | ErrorKind::Indeterminate),
            "create {name} failed with {kind:?}"
        );
    }
    let acked = acked.lock().map(|a| a.clone()).unwrap_or_default();
    for name in &acked {
        b.lookup(Ino::ROOT, name.as_bytes())
            .await
            .with_context(|| format!("acknowledged create {name} is missing after the crash"))?;
    }
    let rep = meta_core::fsck::fsck(&*b).await?;
    ensure!(rep.is_clean(), "fsck after the crash: {:?}", rep.problems);
    eprintln!(
        "{} creates acknowledged ({before_kill} before the kill), {} failed during the outage",
        acked.len(),
        failed.len()
    );
    m.close().await.ok();
    Ok(())
}
