//! Crash test: a child process (this test binary re-invoked with `--exact crash_child`) runs
//! creates, renames and unlinks with `sync=true` from several concurrent tasks, logging each op
//! before it starts and again once it returned `Ok` (acknowledged); the parent SIGKILLs it at a
//! random moment, ten times in a row on the same volume. After each kill the volume must reopen,
//! fsck must be clean, and every directory must hold exactly the names the acknowledged ops
//! leave — plus or minus the one op per task that was in flight when the child died (it may or
//! may not have committed, but it must be all or nothing).
//!
//! While the child runs, the parent also opens the volume itself and must get the "in use by
//! another process" error (RocksDB's LOCK file), never a second writer.
//!
//! The log files are written with one `write(2)` per line and not fsync'd: a SIGKILL loses
//! nothing a process has written to the page cache — the same failure model as the volume's
//! own WAL under test — so an ack line in the log means the op's `Ok` was seen. A torn last
//! line (killed mid-write) is ignored, which makes its op "in flight", never "acknowledged".

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use meta_core::{
    Backend, Caller, ErrorKind, FileType, IdKind, Ino, Meta, Op, RenameFlags, Setting, Timespec,
};
use meta_rocks::{RocksOptions, open_path};
use rand::Rng;

/// Env var that turns `crash_child` into the child: the volume directory.
const CHILD_VOLUME: &str = "META_ROCKS_CRASH_VOLUME";
/// The child's op log.
const CHILD_LOG: &str = "META_ROCKS_CRASH_LOG";
/// The round number (makes names unique across rounds).
const CHILD_ROUND: &str = "META_ROCKS_CRASH_ROUND";
/// Concurrent tasks in the child, each in its own directory `t{k}`.
const TASKS: usize = 4;
/// Kills per test run.
const ROUNDS: usize = 10;
/// A child stops on its own after this long (only if the parent died).
const CHILD_MAX: Duration = Duration::from_secs(120);

// ----------------------------------------------------------------------------------------------
// The child

/// Not a test of its own: the body of the child process, a no-op unless the parent set
/// `META_ROCKS_CRASH_VOLUME`.
#[test]
fn crash_child() {
    let Ok(volume) = std::env::var(CHILD_VOLUME) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = rt.block_on(child_main(volume)) {
        eprintln!("crash child failed: {e:#}");
        std::process::exit(3);
    }
    // Reaching here means the parent never killed us.
    std::process::exit(4);
}

/// One line per `write(2)`; shared by the tasks.
#[derive(Clone)]
struct Log(Arc<Mutex<std::fs::File>>);

impl Log {
    fn line(&self, s: String) -> anyhow::Result<()> {
        let mut f = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f.write_all(format!("{s}\n").as_bytes())
            .context("write log")
    }
}

async fn child_main(volume: String) -> anyhow::Result<()> {
    let log_path = std::env::var(CHILD_LOG)?;
    let round: usize = std::env::var(CHILD_ROUND)?.parse()?;
    let log = Log(Arc::new(Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)?,
    )));
    let (url, opts) = meta_core::parse_url(&format!("rocksdb://{volume}?sync=true"))?;
    let backend = Arc::new(meta_rocks::open(url)?);
    let meta = Meta::open(backend, opts, None).await?;
    log.line(format!("O {round}"))?;

    let mut tasks = Vec::new();
    for k in 0..TASKS {
        let (meta, log) = (meta.clone(), log.clone());
        tasks.push(tokio::spawn(async move {
            child_task(meta, log, round, k).await
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(())
}

/// Runs random ops in directory `t{k}` forever (until killed), logging `B` before and `A` after.
async fn child_task(meta: Meta, log: Log, round: usize, k: usize) -> anyhow::Result<()> {
    let me = Caller::ROOT;
    let (dir, _) = meta.lookup(Ino::ROOT, format!("t{k}").as_bytes()).await?;
    let mut names: Vec<String> = Vec::new();
    let mut cursor: Option<Vec<u8>> = None;
    loop {
        let page = meta.readdir(dir, cursor.as_deref(), 1000, false).await?;
        let n = page.len();
        for e in page {
            names.push(String::from_utf8(e.name.clone())?);
            cursor = Some(e.name);
        }
        if n < 1000 {
            break;
        }
    }
    let started = Instant::now();
    let mut seq = 0u64;
    while started.elapsed() < CHILD_MAX {
        seq += 1;
        let fresh = format!("r{round}-{k}-{seq}");
        let dice = rand::rng().random_range(0..100);
        let pick = (!names.is_empty()).then(|| rand::rng().random_range(0..names.len()));
        match pick {
            Some(i) if dice < 30 => {
                let from = names[i].clone();
                log.line(format!("B {k} {seq} R {from} {fresh}"))?;
                meta.rename(
                    me,
                    dir,
                    from.as_bytes(),
                    dir,
                    fresh.as_bytes(),
                    RenameFlags::NONE,
                )
                .await
                .with_context(|| format!("rename {from} {fresh}"))?;
                names[i] = fresh;
            }
            Some(i) if dice < 50 || names.len() > 200 => {
                let name = names.swap_remove(i);
                log.line(format!("B {k} {seq} U {name}"))?;
                meta.unlink(me, dir, name.as_bytes())
                    .await
                    .with_context(|| format!("unlink {name}"))?;
            }
            _ => {
                log.line(format!("B {k} {seq} C {fresh}"))?;
                meta.create(me, dir, fresh.as_bytes(), 0o644)
                    .await
                    .with_context(|| format!("create {fresh}"))?;
                names.push(fresh);
            }
        }
        log.line(format!("A {k} {seq}"))?;
    }
    Ok(())
}

// ----------------------------------------------------------------------------------------------
// The parent

/// One logged op.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LoggedOp {
    Create(String),
    Rename(String, String),
    Unlink(String),
}

impl LoggedOp {
    fn apply_to(&self, names: &mut BTreeSet<String>) -> anyhow::Result<()> {
        match self {
            LoggedOp::Create(n) => ensure!(names.insert(n.clone()), "create of existing {n}"),
            LoggedOp::Rename(a, b) => {
                ensure!(names.remove(a), "rename of missing {a}");
                ensure!(names.insert(b.clone()), "rename onto existing {b}");
            }
            LoggedOp::Unlink(n) => ensure!(names.remove(n), "unlink of missing {n}"),
        }
        Ok(())
    }
}

/// What a round's log says, per task: acknowledged ops in order, and the op in flight.
#[derive(Debug, Default)]
struct RoundLog {
    opened: bool,
    acked: Vec<Vec<LoggedOp>>,
    in_flight: Vec<Option<LoggedOp>>,
}

fn parse_log(text: &str) -> anyhow::Result<RoundLog> {
    let mut log = RoundLog {
        opened: false,
        acked: vec![Vec::new(); TASKS],
        in_flight: vec![None; TASKS],
    };
    let mut begun: Vec<Option<(u64, LoggedOp)>> = vec![None; TASKS];
    // Only complete lines: a torn last line was never fully written.
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    for line in complete.lines() {
        let w: Vec<&str> = line.split(' ').collect();
        match w.as_slice() {
            ["O", _] => log.opened = true,
            ["B", k, seq, rest @ ..] => {
                let k: usize = k.parse()?;
                let seq: u64 = seq.parse()?;
                ensure!(
                    begun[k].is_none(),
                    "task {k} began {seq} with an op unfinished"
                );
                let op = match rest {
                    ["C", n] => LoggedOp::Create(n.to_string()),
                    ["R", a, b] => LoggedOp::Rename(a.to_string(), b.to_string()),
                    ["U", n] => LoggedOp::Unlink(n.to_string()),
                    _ => bail!("bad log line {line:?}"),
                };
                begun[k] = Some((seq, op));
            }
            ["A", k, seq] => {
                let k: usize = k.parse()?;
                let seq: u64 = seq.parse()?;
                match begun[k].take() {
                    Some((s, op)) if s == seq => log.acked[k].push(op),
                    other => bail!("ack {k} {seq} does not match the op begun: {other:?}"),
                }
            }
            _ => bail!("bad log line {line:?}"),
        }
    }
    for (k, b) in begun.into_iter().enumerate() {
        log.in_flight[k] = b.map(|(_, op)| op);
    }
    Ok(log)
}

/// Names in directory `t{k}` for every task, read through the backend.
async fn read_state(b: &dyn Backend) -> anyhow::Result<Vec<BTreeSet<String>>> {
    let mut out = Vec::new();
    for k in 0..TASKS {
        let (dir, _) = b.lookup(Ino::ROOT, format!("t{k}").as_bytes()).await?;
        let mut names = BTreeSet::new();
        let mut cursor: Option<Vec<u8>> = None;
        loop {
            let page = b.read_dir(dir, cursor.as_deref(), 500, false).await?;
            let n = page.len();
            for e in page {
                ensure!(e.typ == FileType::Regular, "t{k} holds a {:?}", e.typ);
                names.insert(String::from_utf8(e.name.clone())?);
                cursor = Some(e.name);
            }
            if n < 500 {
                break;
            }
        }
        out.push(names);
    }
    Ok(out)
}

async fn setup(volume: &Path) -> anyhow::Result<()> {
    let b = open_path(volume, RocksOptions::default())?;
    b.format(&Setting::new("crash"), false).await?;
    let ids = b.reserve_ids(IdKind::Inode, TASKS as u64).await?;
    let t = Timespec::now();
    let ops: Vec<Op> = (0..TASKS)
        .map(|k| Op::Mknod {
            parent: Ino::ROOT,
            name: format!("t{k}").into_bytes(),
            ino: Ino(ids.start + k as u64),
            typ: FileType::Directory,
            mode: 0o755,
            uid: 0,
            gid: 0,
            rdev: 0,
            target: Vec::new(),
            time: t,
            opened_by: None,
            imported: None,
        })
        .collect();
    for r in b.apply(&ops).await? {
        r?;
    }
    Ok(())
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_ops_survive_sigkill_ten_times() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let volume = tmp.path().join("vol");
    setup(&volume).await?;
    let exe = std::env::current_exe()?;
    let mut expected: Vec<BTreeSet<String>> = vec![BTreeSet::new(); TASKS];
    let (mut total_acked, mut in_flight_applied, mut in_flight_dropped) = (0usize, 0usize, 0usize);

    for round in 0..ROUNDS {
        let log_path: PathBuf = tmp.path().join(format!("ops-{round}.log"));
        let err_path = tmp.path().join(format!("child-{round}.stderr"));
        let mut child = Command::new(&exe)
            .args([
                "crash_child",
                "--exact",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_VOLUME, &volume)
            .env(CHILD_LOG, &log_path)
            .env(CHILD_ROUND, round.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err_path)?)
            .spawn()
            .context("spawn the child")?;

        // Every fourth round the kill lands early, typically while the child starts up or
        // recovers the volume; the others wait until it has the volume open and is working.
        let early = round % 4 == 3;
        if !early {
            let deadline = Instant::now() + Duration::from_secs(60);
            while !read(&log_path).starts_with(&format!("O {round}\n")) {
                if let Some(status) = child.try_wait()? {
                    bail!(
                        "round {round}: child exited early ({status}): {}",
                        read(&err_path)
                    );
                }
                ensure!(
                    Instant::now() < deadline,
                    "round {round}: child did not open the volume in 60 s"
                );
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            // The volume is held by the child: a second opener gets a clear error.
            let e = open_path(&volume, RocksOptions::default())
                .expect_err("opened a volume another process holds");
            assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
            assert!(e.to_string().contains("in use by another process"), "{e}");
        }
        let delay = rand::rng().random_range(if early { 0..150 } else { 20..400 });
        tokio::time::sleep(Duration::from_millis(delay)).await;
        if let Some(status) = child.try_wait()? {
            bail!(
                "round {round}: child exited before the kill ({status}): {}",
                read(&err_path)
            );
        }
        child.kill().context("SIGKILL the child")?; // std sends SIGKILL on Unix
        let status = child.wait()?;
        assert_eq!(
            status.signal(),
            Some(libc::SIGKILL),
            "round {round}: {status}"
        );

        // Reopen, fsck, and compare with the log.
        let log = parse_log(&read(&log_path)).with_context(|| format!("round {round} log"))?;
        ensure!(early || log.opened, "round {round}: log lost its open line");
        let b = open_path(&volume, RocksOptions::default())
            .with_context(|| format!("round {round}: reopen after SIGKILL"))?;
        let report = meta_core::fsck::fsck(&b).await?;
        assert!(
            report.is_clean(),
            "round {round}: fsck after SIGKILL: {:#?}",
            report.problems
        );
        let actual = read_state(&b).await?;
        drop(b);
        for k in 0..TASKS {
            let mut want = expected[k].clone();
            for op in &log.acked[k] {
                op.apply_to(&mut want)
                    .with_context(|| format!("round {round} task {k}"))?;
            }
            total_acked += log.acked[k].len();
            let with_in_flight = match &log.in_flight[k] {
                Some(op) => {
                    let mut w = want.clone();
                    op.apply_to(&mut w)?;
                    Some(w)
                }
                None => None,
            };
            if actual[k] == want {
                in_flight_dropped += usize::from(with_in_flight.is_some());
            } else if with_in_flight.as_ref() == Some(&actual[k]) {
                in_flight_applied += 1;
            } else {
                bail!(
                    "round {round} task {k}: the volume matches neither the acknowledged ops nor \
                     them plus the in-flight op {:?}\n  acknowledged but missing: {:?}\n  \
                     present but never acknowledged: {:?}",
                    log.in_flight[k],
                    want.difference(&actual[k]).collect::<Vec<_>>(),
                    actual[k].difference(&want).collect::<Vec<_>>(),
                );
            }
            expected[k] = actual[k].clone();
        }
        eprintln!(
            "round {round}: killed after {delay} ms{}, {} ops acknowledged so far, {} names",
            if early { " (early)" } else { "" },
            total_acked,
            expected.iter().map(BTreeSet::len).sum::<usize>()
        );
    }
    eprintln!("in-flight ops at the kills: {in_flight_applied} committed, {in_flight_dropped} not");
    // The test must have exercised something: acknowledged ops, and kills during ops.
    assert!(
        total_acked >= ROUNDS,
        "only {total_acked} ops acknowledged in {ROUNDS} rounds"
    );
    assert!(
        in_flight_applied + in_flight_dropped > 0,
        "no kill landed while an op was in flight"
    );
    Ok(())
}
