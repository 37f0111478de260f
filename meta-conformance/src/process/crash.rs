//! Process crash: a child (this test binary re-run) runs creates, renames and unlinks from
//! [`CrashTest::tasks`] concurrent tasks, each in its own directory `t{k}`, logging each op
//! before it starts (`B`) and again once it returned `Ok` (`A`, acknowledged). The parent
//! SIGKILLs it at a random moment, [`CrashTest::rounds`] times in a row on the same volume.
//! After each kill the volume must reopen, fsck must be clean, and every directory must hold
//! exactly the names the acknowledged ops leave, plus or minus the one op per task that was
//! in flight (it may or may not have committed, but all or nothing).
//!
//! The log is written with one `write(2)` per line and not fsync'd: a SIGKILL loses nothing a
//! process has written to the page cache (the same failure model as the volume's own
//! write-ahead log under test), so an ack line means the op's `Ok` was seen. A torn last line
//! is ignored, which makes its op "in flight", never "acknowledged".

use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use meta_core::registry::BackendFactory;
use meta_core::{Caller, Ino, Meta, RenameFlags, Setting};
use rand::Rng;

use super::{ARG_ENV, ROUND_ENV, URL_ENV, child_command, child_env, child_role, open};

/// The role name of a crash child.
const ROLE: &str = "crash";
/// A child stops on its own after this long (only if the parent died).
const CHILD_MAX: Duration = Duration::from_secs(120);

/// One crash test: what to open and how hard to hit it.
#[derive(Clone, Copy)]
pub struct CrashTest {
    /// The name of the `#[test]` function that calls [`run`] (re-run with `--exact`).
    pub test_name: &'static str,
    /// The backend's factory (its crate's `factory()`).
    pub factory: fn() -> BackendFactory,
    /// The volume URL for a fresh temp directory (e.g. `rocksdb://DIR/vol?sync=true`).
    pub url_for: fn(&Path) -> String,
    /// SIGKILLs per run (default 20).
    pub rounds: usize,
    /// Concurrent tasks in the child (default 4).
    pub tasks: usize,
    /// Called while the child works, with the temp directory (e.g. "a second opener is
    /// refused"); an error fails the test.
    pub while_running: Option<fn(&Path) -> anyhow::Result<()>>,
}

impl Default for CrashTest {
    fn default() -> Self {
        fn no_factory() -> BackendFactory {
            BackendFactory::new(vec![], |_| {
                Box::pin(async {
                    Err(meta_core::Error::new(
                        meta_core::ErrorKind::ConfigInvalid,
                        "CrashTest::factory was not set",
                    ))
                })
            })
        }
        CrashTest {
            test_name: "",
            factory: no_factory,
            url_for: |_| String::new(),
            rounds: 20,
            tasks: 4,
            while_running: None,
        }
    }
}

/// What one run saw, for the test's report.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CrashReport {
    /// Ops acknowledged over all rounds.
    pub acknowledged: usize,
    /// Kills that landed while an op was in flight and found it committed.
    pub in_flight_committed: usize,
    /// Kills that landed while an op was in flight and found it not committed.
    pub in_flight_dropped: usize,
    /// Names left in the volume at the end.
    pub names: usize,
}

/// Runs the crash test (parent), or the child's workload when this process is a crash child.
/// Errors: the first broken rule, naming the round, task and names involved.
pub async fn run(t: CrashTest) -> anyhow::Result<CrashReport> {
    if child_role().as_deref() == Some(ROLE) {
        child_main(&t).await?;
        bail!("crash child ran {CHILD_MAX:?} without being killed");
    }
    parent(t).await
}

// ----------------------------------------------------------------------------------------------
// The child

/// One line per `write(2)`; shared by the tasks.
#[derive(Clone)]
struct Log(Arc<Mutex<std::fs::File>>);

impl Log {
    fn line(&self, s: String) -> anyhow::Result<()> {
        let mut f = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f.write_all(format!("{s}\n").as_bytes())
            .context("write the op log")
    }
}

async fn child_main(t: &CrashTest) -> anyhow::Result<()> {
    let url = child_env(URL_ENV)?;
    let log_path = child_env(ARG_ENV)?;
    let round: usize = child_env(ROUND_ENV)?.parse()?;
    let log = Log(Arc::new(Mutex::new(
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("open {log_path}"))?,
    )));
    let (backend, opts) = open(t.factory, &url).await?;
    let meta = Meta::open(backend, opts, None).await?;
    log.line(format!("O {round}"))?;
    let mut tasks = Vec::new();
    for k in 0..t.tasks {
        let (meta, log) = (meta.clone(), log.clone());
        tasks.push(tokio::spawn(async move {
            child_task(meta, log, round, k).await
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// Runs random ops in directory `t{k}` until killed, logging `B` before and `A` after.
async fn child_task(meta: Meta, log: Log, round: usize, k: usize) -> anyhow::Result<()> {
    let me = Caller::ROOT;
    let (dir, _) = meta.lookup(Ino::ROOT, format!("t{k}").as_bytes()).await?;
    let mut names: Vec<String> = super::names_in(meta.backend().as_ref(), dir)
        .await?
        .into_iter()
        .collect();
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
                    me.clone(),
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
                meta.unlink(me.clone(), dir, name.as_bytes())
                    .await
                    .with_context(|| format!("unlink {name}"))?;
            }
            _ => {
                log.line(format!("B {k} {seq} C {fresh}"))?;
                meta.create(me.clone(), dir, fresh.as_bytes(), 0o644)
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
// The log

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

fn parse_log(text: &str, tasks: usize) -> anyhow::Result<RoundLog> {
    let mut log = RoundLog {
        opened: false,
        acked: vec![Vec::new(); tasks],
        in_flight: vec![None; tasks],
    };
    let mut begun: Vec<Option<(u64, LoggedOp)>> = vec![None; tasks];
    // Only complete lines: a torn last line was never fully written.
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    let task = |k: &str| -> anyhow::Result<usize> {
        let k: usize = k.parse()?;
        ensure!(k < tasks, "task {k} out of range");
        Ok(k)
    };
    for line in complete.lines() {
        let w: Vec<&str> = line.split(' ').collect();
        match w.as_slice() {
            ["O", _] => log.opened = true,
            ["B", k, seq, rest @ ..] => {
                let k = task(k)?;
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
                let k = task(k)?;
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

// ----------------------------------------------------------------------------------------------
// The parent

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// Names in every task's directory.
async fn read_state(
    b: &dyn meta_core::Backend,
    tasks: usize,
) -> anyhow::Result<Vec<BTreeSet<String>>> {
    let mut out = Vec::new();
    for k in 0..tasks {
        let (dir, _) = b.lookup(Ino::ROOT, format!("t{k}").as_bytes()).await?;
        out.push(super::names_in(b, dir).await?);
    }
    Ok(out)
}

async fn parent(t: CrashTest) -> anyhow::Result<CrashReport> {
    ensure!(
        t.rounds > 0 && t.tasks > 0,
        "a crash test needs rounds and tasks"
    );
    let tmp = tempfile::tempdir()?;
    let url = (t.url_for)(tmp.path());
    {
        let (b, _) = open(t.factory, &url).await?;
        b.format(&Setting::new("crash"), false).await?;
        let dirs: Vec<String> = (0..t.tasks).map(|k| format!("t{k}")).collect();
        super::make_dirs(b.as_ref(), &dirs).await?;
    }
    let mut expected: Vec<BTreeSet<String>> = vec![BTreeSet::new(); t.tasks];
    let mut rep = CrashReport::default();

    for round in 0..t.rounds {
        let log_path = tmp.path().join(format!("ops-{round}.log"));
        let err_path = tmp.path().join(format!("child-{round}.stderr"));
        let mut child = child_command(t.test_name, ROLE, &url)?
            .env(ARG_ENV, &log_path)
            .env(ROUND_ENV, round.to_string())
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
                if Instant::now() > deadline {
                    let _ = child.kill();
                    bail!("round {round}: child did not open the volume in 60 s");
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            if let Some(check) = t.while_running
                && let Err(e) = check(tmp.path())
            {
                let _ = child.kill();
                return Err(e.context(format!("round {round}: while the child runs")));
            }
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
        ensure!(
            status.signal() == Some(libc::SIGKILL),
            "round {round}: child ended with {status}, not by SIGKILL"
        );

        // Reopen, fsck, and compare with the log.
        let log =
            parse_log(&read(&log_path), t.tasks).with_context(|| format!("round {round} log"))?;
        ensure!(early || log.opened, "round {round}: log lost its open line");
        let (b, _) = open(t.factory, &url)
            .await
            .with_context(|| format!("round {round}: reopen after SIGKILL"))?;
        super::fsck_clean(b.as_ref(), &format!("round {round}, after SIGKILL")).await?;
        let actual = read_state(b.as_ref(), t.tasks).await?;
        drop(b);
        for k in 0..t.tasks {
            let mut want = expected[k].clone();
            for op in &log.acked[k] {
                op.apply_to(&mut want)
                    .with_context(|| format!("round {round} task {k}"))?;
            }
            rep.acknowledged += log.acked[k].len();
            let with_in_flight = match &log.in_flight[k] {
                Some(op) => {
                    let mut w = want.clone();
                    op.apply_to(&mut w)?;
                    Some(w)
                }
                None => None,
            };
            if actual[k] == want {
                rep.in_flight_dropped += usize::from(with_in_flight.is_some());
            } else if with_in_flight.as_ref() == Some(&actual[k]) {
                rep.in_flight_committed += 1;
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
        rep.names = expected.iter().map(BTreeSet::len).sum();
        eprintln!(
            "round {round}: killed after {delay} ms{}, {} ops acknowledged so far, {} names",
            if early { " (early)" } else { "" },
            rep.acknowledged,
            rep.names,
        );
    }
    eprintln!(
        "{} kills: {} ops acknowledged, in-flight ops at the kills: {} committed, {} not",
        t.rounds, rep.acknowledged, rep.in_flight_committed, rep.in_flight_dropped
    );
    // The test must have exercised something: acknowledged ops, and kills during ops.
    ensure!(
        rep.acknowledged >= t.rounds,
        "only {} ops acknowledged in {} rounds",
        rep.acknowledged,
        t.rounds
    );
    ensure!(
        rep.in_flight_committed + rep.in_flight_dropped > 0,
        "no kill landed while an op was in flight"
    );
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_parsing_separates_acknowledged_from_in_flight() -> anyhow::Result<()> {
        let text = "O 0\nB 0 1 C a\nA 0 1\nB 1 1 C b\nB 0 2 R a c\nA 0 2\nB 0 3 U c\nA 0";
        let log = parse_log(text, 2)?;
        assert!(log.opened);
        assert_eq!(
            log.acked[0],
            vec![
                LoggedOp::Create("a".into()),
                LoggedOp::Rename("a".into(), "c".into())
            ]
        );
        // The torn last line "A 0" does not acknowledge the unlink.
        assert_eq!(log.in_flight[0], Some(LoggedOp::Unlink("c".into())));
        assert_eq!(log.in_flight[1], Some(LoggedOp::Create("b".into())));
        assert!(
            parse_log("B 0 1 C a\nA 0 2\n", 1).is_err(),
            "ack of another op"
        );
        assert!(parse_log("B 7 1 C a\n", 2).is_err(), "task out of range");
        Ok(())
    }
}
