//! Member failures on a 3-member etcd cluster of the test's own (the `etcd` binary on PATH;
//! skipped loudly without it): 8 tasks create files throughout while
//!
//! 1. one member is SIGKILLed: creates go on against the other two (the quorum), and the
//!    member is restarted;
//! 2. two members are SIGKILLed: no quorum, so ops fail, and every failure is `Unavailable`
//!    or `Indeterminate` (never a wrong answer, never silence); both are restarted;
//!
//! and after recovery every acknowledged create is there and fsck is clean.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::cluster::{Cluster, etcd_binary};
use meta_core::{Caller, ErrorKind, Ino, Meta, Setting};

const TASKS: usize = 8;

#[derive(Default)]
struct Log {
    acked: BTreeSet<String>,
    failed: Vec<(String, ErrorKind)>,
}

fn count(log: &Mutex<Log>) -> (usize, usize) {
    let l = log.lock().unwrap_or_else(|p| p.into_inner());
    (l.acked.len(), l.failed.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_members_fail_loudly_and_lose_no_acknowledged_op() -> anyhow::Result<()> {
    let Some(etcd) = etcd_binary() else {
        eprintln!(
            "SKIP killed_members_*: no `etcd` on PATH (apt etcd-server); not counted as passed"
        );
        return Ok(());
    };
    let mut cluster = Cluster::start(etcd)?;
    let url = format!("{}?timeout=3s", cluster.url("faults"));
    let (u, opts) = meta_core::parse_url(&meta_etcd::normalize_url(&url))?;
    let backend = Arc::new(meta_etcd::open(u).await?);
    Meta::format(&*backend, &Setting::new("faults"), false).await?;
    let meta = Arc::new(Meta::open(backend.clone(), opts, None).await?);
    let (dir, _) = meta.mkdir(Caller::ROOT, Ino::ROOT, b"d", 0o755).await?;

    let log = Arc::new(Mutex::new(Log::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (meta, log, stop) = (meta.clone(), log.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let name = format!("t{t}-{i}");
                i += 1;
                let r = meta.create(Caller::ROOT, dir, name.as_bytes(), 0o644).await;
                {
                    let mut l = log.lock().unwrap_or_else(|p| p.into_inner());
                    match r {
                        Ok(_) => {
                            l.acked.insert(name);
                        }
                        Err(e) => l.failed.push((name, e.kind())),
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    // 1. One member down: the quorum goes on.
    cluster.kill(0)?;
    let before = count(&log).0;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let during = count(&log).0 - before;
    assert!(during > 0, "no create succeeded with 2 of 3 members up");
    cluster.restart(0)?;
    cluster.wait_healthy(0, Duration::from_secs(60))?;
    tokio::time::sleep(Duration::from_secs(1)).await;

    // 2. Two members down: no quorum, every op fails loudly.
    let failed_before = count(&log).1;
    cluster.kill(1)?;
    cluster.kill(2)?;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let failed_during = count(&log).1 - failed_before;
    assert!(failed_during > 0, "no op failed with 1 of 3 members up");
    cluster.restart(1)?;
    cluster.restart(2)?;
    for i in 0..3 {
        cluster.wait_healthy(i, Duration::from_secs(60))?;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await?;
    }

    let l = std::mem::take(&mut *log.lock().unwrap_or_else(|p| p.into_inner()));
    for (name, kind) in &l.failed {
        assert!(
            matches!(kind, ErrorKind::Unavailable | ErrorKind::Indeterminate),
            "{name} failed with {kind:?}"
        );
    }
    for name in &l.acked {
        meta.lookup(dir, name.as_bytes())
            .await
            .map_err(|e| anyhow::anyhow!("acknowledged create {name} is missing: {e}"))?;
    }
    let rep = meta_core::fsck::fsck(meta.backend().as_ref()).await?;
    assert!(rep.is_clean(), "fsck: {:?}", rep.problems);
    let indeterminate = l
        .failed
        .iter()
        .filter(|(_, k)| *k == ErrorKind::Indeterminate)
        .count();
    println!(
        "member faults: {} creates acknowledged (all present), {} failed ({} indeterminate, \
         the rest unavailable), {} conflict retries",
        l.acked.len(),
        l.failed.len(),
        indeterminate,
        backend.stats().conflict_retries
    );
    meta.close().await?;
    Ok(())
}
