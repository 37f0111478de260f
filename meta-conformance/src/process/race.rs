//! Two OS processes on one volume: two children (this test binary re-run) × [`RaceTest::tasks`]
//! tasks each, every task [`RaceTest::rounds`] times: create `p{proc}-t{task}-{i}`, write one
//! slice to it, rename it to `k…` and unlink every third. Each child prints the names it left
//! and its backend's activity counters. Afterwards the directory must hold exactly the names
//! both children report, the inode counter must be exact, no inode or slice ID may appear
//! twice and fsck must be clean.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use meta_core::registry::BackendFactory;
use meta_core::{Caller, Counter, Ino, Meta, RenameFlags, Setting, Slice};

use super::{ARG_ENV, URL_ENV, child_command, child_env, child_role, open};

/// A directory where each child announces `ready-N` and waits for `go`, so both start
/// their work at the same moment.
const BARRIER_ENV: &str = "META_PROCESS_BARRIER";

/// The role name of a race child.
const ROLE: &str = "race";
/// The directory the children race in.
const DIR: &str = "race";

/// One two-process race: what to open and how much work each child does.
#[derive(Clone, Copy)]
pub struct RaceTest {
    /// The name of the `#[test]` function that calls [`run`] (re-run with `--exact`).
    pub test_name: &'static str,
    /// The backend's factory (its crate's `factory()`).
    pub factory: fn() -> BackendFactory,
    /// Tasks per child process (default 32).
    pub tasks: usize,
    /// Files each task creates (default 12; 4 ops per file, 3 for every third).
    pub rounds: usize,
}

impl RaceTest {
    /// 2 × 32 tasks × 12 files each.
    pub fn new(test_name: &'static str, factory: fn() -> BackendFactory) -> Self {
        RaceTest {
            test_name,
            factory,
            tasks: 32,
            rounds: 12,
        }
    }

    /// Names a task leaves (every third file is unlinked).
    fn left_per_task(&self) -> usize {
        self.rounds - self.rounds.div_ceil(3)
    }
}

/// What a run saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RaceReport {
    /// Names left in the directory.
    pub files: usize,
    /// Ops both children ran (all acknowledged).
    pub ops: usize,
    /// Each child's backend activity counters (e.g. `conflict_retries`), as printed.
    pub activity: Vec<String>,
}

/// Runs the race on the fresh volume `url` (parent; it formats the volume), or one child's
/// workload when this process is a race child (then `Ok(None)`). Errors: a child that failed
/// (its output included), or the first broken rule.
pub async fn run(t: RaceTest, url: &str) -> anyhow::Result<Option<RaceReport>> {
    if child_role().as_deref() == Some(ROLE) {
        child(&t).await?;
        return Ok(None);
    }
    parent(&t, url).await.map(Some)
}

/// [`run`] on `url`, or, when `url` is `Err(why)` (no server configured), a loud `SKIP`
/// line and `Ok` — an error instead under `META_CONFORMANCE_REQUIRE=1`.
pub async fn run_or_skip(t: RaceTest, url: Result<String, String>) -> anyhow::Result<()> {
    match url {
        Ok(url) => run(t, &url).await.map(drop),
        Err(why) if std::env::var(crate::REQUIRE_ENV).as_deref() == Ok("1") => {
            bail!("{}: {why} ({}=1)", t.test_name, crate::REQUIRE_ENV)
        }
        Err(why) => {
            eprintln!("SKIP {}: {why} (not counted as passed)", t.test_name);
            Ok(())
        }
    }
}

async fn child(t: &RaceTest) -> anyhow::Result<()> {
    let url = child_env(URL_ENV)?;
    let proc_no = child_env(ARG_ENV)?;
    let (backend, opts) = open(t.factory, &url).await?;
    let meta = Meta::open(backend.clone(), opts, None).await?;
    let dir = meta.lookup(Ino::ROOT, DIR.as_bytes()).await?.0;
    let barrier = std::path::PathBuf::from(child_env(BARRIER_ENV)?);
    std::fs::write(barrier.join(format!("ready-{proc_no}")), b"")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !barrier.join("go").exists() {
        ensure!(Instant::now() < deadline, "no go from the parent in 60 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let mut tasks = Vec::new();
    for task in 0..t.tasks {
        let meta = meta.clone();
        let proc_no = proc_no.clone();
        let rounds = t.rounds;
        tasks.push(tokio::spawn(async move {
            let mut left = Vec::new();
            for i in 0..rounds {
                let name = format!("p{proc_no}-t{task}-{i}");
                let (ino, _) = meta
                    .create(Caller::ROOT, dir, name.as_bytes(), 0o644)
                    .await
                    .with_context(|| format!("create {name}"))?;
                let id = meta.new_slice_id().await?;
                let s = Slice {
                    pos: 0,
                    id,
                    size: 4096,
                    off: 0,
                    len: 4096,
                };
                meta.write(Caller::ROOT, ino, 0, s)
                    .await
                    .with_context(|| format!("write {name}"))?;
                let kept = format!("k{name}");
                meta.rename(
                    Caller::ROOT,
                    dir,
                    name.as_bytes(),
                    dir,
                    kept.as_bytes(),
                    RenameFlags::default(),
                )
                .await
                .with_context(|| format!("rename {name}"))?;
                if i % 3 == 0 {
                    meta.unlink(Caller::ROOT, dir, kept.as_bytes())
                        .await
                        .with_context(|| format!("unlink {kept}"))?;
                } else {
                    left.push(kept);
                }
            }
            anyhow::Ok(left)
        }));
    }
    let mut left = Vec::new();
    for task in tasks {
        left.extend(task.await??);
    }
    meta.close().await?;
    println!("LEFT {}", left.join(" "));
    let activity: Vec<String> = backend
        .activity()
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    println!("ACTIVITY {}", activity.join(","));
    Ok(())
}

async fn parent(t: &RaceTest, url: &str) -> anyhow::Result<RaceReport> {
    let (backend, _) = open(t.factory, url).await?;
    backend.format(&Setting::new("race"), false).await?;
    let dir = super::make_dirs(backend.as_ref(), &[DIR.to_string()]).await?[0];
    // Both children at once, released together once both have the volume open.
    let barrier = tempfile::tempdir()?;
    let mut spawned: Vec<_> = (0..2)
        .map(|n| {
            child_command(t.test_name, ROLE, url)?
                .env(ARG_ENV, n.to_string())
                .env(BARRIER_ENV, barrier.path())
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .context("spawn a child")
        })
        .collect::<anyhow::Result<_>>()?;
    let deadline = Instant::now() + Duration::from_secs(120);
    while !(0..2).all(|n| barrier.path().join(format!("ready-{n}")).exists()) {
        for c in &mut spawned {
            if let Some(status) = c.try_wait()? {
                bail!("a child exited before it was ready ({status})");
            }
        }
        ensure!(Instant::now() < deadline, "children not ready in 120 s");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    std::fs::write(barrier.path().join("go"), b"")?;
    let mut want = BTreeSet::new();
    let mut rep = RaceReport::default();
    for c in spawned {
        let out = c.wait_with_output()?;
        let text = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "child failed: {}\n{text}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let mut reported = false;
        for line in text.lines() {
            // libtest may print "test NAME ... " on the same line first.
            if let Some((_, names)) = line.split_once("LEFT ") {
                want.extend(names.split(' ').filter(|s| !s.is_empty()).map(String::from));
                reported = true;
            }
            if let Some((_, a)) = line.split_once("ACTIVITY ") {
                rep.activity.push(a.trim().to_string());
            }
        }
        ensure!(reported, "a child did not report its names:\n{text}");
    }
    ensure!(
        want.len() == 2 * t.tasks * t.left_per_task(),
        "the children report {} names, not {}",
        want.len(),
        2 * t.tasks * t.left_per_task()
    );
    let b = backend.as_ref();
    let got = super::names_in(b, dir).await?;
    if got != want {
        bail!(
            "the directory does not hold what the processes left\n  missing: {:?}\n  extra: {:?}",
            want.difference(&got).take(20).collect::<Vec<_>>(),
            got.difference(&want).take(20).collect::<Vec<_>>()
        );
    }
    let mut inos = BTreeSet::new();
    let mut slices = BTreeSet::new();
    for name in &got {
        let (ino, _) = b.lookup(dir, name.as_bytes()).await?;
        ensure!(inos.insert(ino), "inode {ino} has two names ({name})");
        for (_, ss) in b.list_chunks(ino).await? {
            for s in ss {
                ensure!(slices.insert(s.id), "slice {} used twice ({name})", s.id);
            }
        }
    }
    let inodes = b.get_counter(Counter::TotalInodes).await?;
    ensure!(
        inodes == 2 + want.len() as i64,
        "inode counter {inodes}, want {} (root + {DIR} + files)",
        2 + want.len()
    );
    super::fsck_clean(b, "after two processes").await?;
    rep.files = want.len();
    rep.ops = 2 * t.tasks * (t.rounds * 3 + t.rounds.div_ceil(3));
    eprintln!(
        "two processes x {} tasks: {} files left, {} ops, activity per process {:?}",
        t.tasks, rep.files, rep.ops, rep.activity
    );
    Ok(rep)
}
