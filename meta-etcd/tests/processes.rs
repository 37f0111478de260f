//! Two separate OS processes (this test binary run twice more as children) × 32 tasks each
//! race creates, writes, renames and unlinks in one directory of one etcd volume; then fsck
//! must be clean, the directory must hold exactly the names both processes say they left,
//! the inode counter must match, and no inode or slice ID may appear twice. The conflict
//! retries each process needed are printed. Skipped, loudly, without `META_TEST_ETCD_URL`.

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;

use meta_core::kv::TxnStore;
use meta_core::{Caller, Counter, Ino, Meta, MetaOptions, RenameFlags, Setting, Slice};

const CHILD_ENV: &str = "META_ETCD_RACE_CHILD";
const TASKS: usize = 32;
const ROUNDS: usize = 12;
const TEST: &str = "two_processes_race_in_one_directory";

/// One child: `TASKS` tasks, each `ROUNDS` times: create `p{proc}-t{task}-{i}`, write one
/// slice, rename it to `k…`, and unlink every third. Prints the names it left and its retries.
async fn child(url: &str, prefix: &str, proc_no: &str) -> anyhow::Result<()> {
    let backend = Arc::new(common::open(url, prefix).await?);
    let meta = Meta::open(backend.clone(), MetaOptions::default(), None).await?;
    let dir = meta.lookup(Ino::ROOT, b"race").await?.0;
    let meta = Arc::new(meta);
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let meta = meta.clone();
        let proc_no = proc_no.to_string();
        tasks.push(tokio::spawn(async move {
            let mut left = Vec::new();
            for i in 0..ROUNDS {
                let name = format!("p{proc_no}-t{t}-{i}");
                let (ino, _) = meta
                    .create(Caller::ROOT, dir, name.as_bytes(), 0o644)
                    .await?;
                let id = meta.new_slice_id().await?;
                let s = Slice {
                    pos: 0,
                    id,
                    size: 4096,
                    off: 0,
                    len: 4096,
                };
                meta.write(ino, 0, s).await?;
                let kept = format!("k{name}");
                meta.rename(
                    Caller::ROOT,
                    dir,
                    name.as_bytes(),
                    dir,
                    kept.as_bytes(),
                    RenameFlags::default(),
                )
                .await?;
                if i % 3 == 0 {
                    meta.unlink(Caller::ROOT, dir, kept.as_bytes()).await?;
                } else {
                    left.push(kept);
                }
            }
            anyhow::Ok(left)
        }));
    }
    let mut left = Vec::new();
    for t in tasks {
        left.extend(t.await??);
    }
    meta.close().await?;
    println!("LEFT {}", left.join(" "));
    println!("RETRIES {}", backend.stats().conflict_retries);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_race_in_one_directory() -> anyhow::Result<()> {
    let Ok(url) = std::env::var(common::ENV) else {
        eprintln!(
            "SKIP {TEST}: {} is not set (not counted as passed)",
            common::ENV
        );
        return Ok(());
    };
    if let Ok(spec) = std::env::var(CHILD_ENV) {
        let (prefix, proc_no) = spec.split_once(' ').unwrap_or((&spec, "0"));
        return child(&url, prefix, proc_no).await;
    }
    let prefix = common::unique_prefix("race");
    let backend = Arc::new(common::open(&url, &prefix).await?);
    Meta::format(&*backend, &Setting::new("race"), false).await?;
    let meta = Meta::open(backend.clone(), MetaOptions::default(), None).await?;
    let (dir, _) = meta.mkdir(Caller::ROOT, Ino::ROOT, b"race", 0o755).await?;
    let exe = std::env::current_exe()?;
    let children: Vec<_> = (0..2)
        .map(|n| {
            Command::new(&exe)
                .args(["--exact", TEST, "--nocapture", "--test-threads=1"])
                .env(CHILD_ENV, format!("{prefix} {n}"))
                .output()
        })
        .collect::<Result<_, _>>()?;
    let mut want = BTreeSet::new();
    let mut retries = Vec::new();
    for out in &children {
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "child failed: {}\n{text}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        for line in text.lines() {
            // libtest may print "test NAME ... " on the same line first.
            if let Some(names) = line.split_once("LEFT ").map(|(_, n)| n) {
                want.extend(names.split(' ').filter(|s| !s.is_empty()).map(String::from));
            }
            if let Some(n) = line.split_once("RETRIES ").map(|(_, n)| n) {
                retries.push(n.trim().parse::<u64>()?);
            }
        }
    }
    assert_eq!(retries.len(), 2, "both children report");
    assert_eq!(want.len(), 2 * TASKS * (ROUNDS - ROUNDS.div_ceil(3)));
    let mut got = BTreeSet::new();
    let mut inos = BTreeSet::new();
    let mut slices = BTreeSet::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = meta.readdir(dir, after.as_deref(), 500, false).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.name.clone());
        for e in &page {
            assert!(inos.insert(e.ino), "inode {} listed twice", e.ino);
            for (_, ss) in backend_chunks(&meta, e.ino).await? {
                for s in ss {
                    assert!(slices.insert(s.id), "slice {} used twice", s.id);
                }
            }
            got.insert(String::from_utf8_lossy(&e.name).into_owned());
        }
    }
    assert_eq!(
        got, want,
        "the directory holds exactly what the processes left"
    );
    let inodes = meta.backend().get_counter(Counter::TotalInodes).await?;
    assert_eq!(inodes as usize, 2 + want.len(), "root + race + files");
    let rep = meta_core::fsck::fsck(meta.backend().as_ref()).await?;
    assert!(rep.is_clean(), "fsck: {:?}", rep.problems);
    println!(
        "two processes x {TASKS} tasks: {} files left, {} ops, conflict retries per process {retries:?}",
        want.len(),
        2 * TASKS * ROUNDS * 4 - 2 * TASKS * (ROUNDS - ROUNDS.div_ceil(3)),
    );
    meta.close().await?;
    backend.store().erase().await?;
    Ok(())
}

async fn backend_chunks(meta: &Meta, ino: Ino) -> anyhow::Result<Vec<(u32, Vec<Slice>)>> {
    Ok(meta.backend().list_chunks(ino).await?)
}
