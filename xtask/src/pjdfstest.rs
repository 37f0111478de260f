//! `cargo xtask pjdfstest`: the POSIX file system test suite (the `pjdfstest` crate, the
//! Rust port of pjdfstest) through `meta mount`, one fresh volume per backend.
//!
//! Per backend: format a fresh volume, mount it with `meta mount --foreground` (a child of
//! xtask), run `pjdfstest` as root inside the mount, unmount, and parse pjdfstest's lines
//! (`name   ok|failed|skipped`) and its `Summary:` line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::services::Kind;
use crate::util::{Result, cargo, mounted, run, target_dir, wait_for, which};

/// The pjdfstest release installed and run.
pub const PJDFSTEST_VERSION: &str = "0.2.2";

/// The configuration pjdfstest runs with: every feature a Linux filesystem has (`-l` lists
/// them; chflags, NFSv4 ACLs and birth times are FreeBSD's), a second filesystem for the
/// `exdev_target` tests (`secondary`, a directory of the host's filesystem outside the
/// mount), a nap long enough for timestamp checks, and the users to switch to
/// (`nobody`/`nogroup`, `daemon`/`daemon`: Debian has no `tests` user). `allow_remount` is
/// on only for the second pass, which runs the `erofs_*` tests alone (see [`run_one`]).
pub fn config_text(secondary: &Path, allow_remount: bool) -> String {
    format!(
        "[features]
posix_fallocate = {{}}
rename_ctime = {{}}
utimensat = {{}}
utime_now = {{}}
secondary_fs = {secondary:?}

[settings]
naptime = 0.02
allow_remount = {allow_remount}

[dummy_auth]
entries = [[\"nobody\", \"nogroup\"], [\"daemon\", \"daemon\"]]
"
    )
}

/// The tests that remount the filesystem read-only (pjdfstest's name pattern).
pub const REMOUNT_TESTS: &str = "erofs";

/// Writes `DIR/mount`, a `mount` for pjdfstest's PATH that adds `-i`, and returns `DIR`.
///
/// The `erofs_*` tests run `mount -o remount,ro MNT` (then `rw`). For a FUSE mount,
/// mount(8) hands that to the `mount.fuse3` helper, which takes the mount's source
/// (`meta:URL`) for a program to start and fails; `-i` makes mount(8) call mount(2) itself,
/// and the kernel's FUSE remounts read-only and back (checked with `/proc/mounts` by hand:
/// a write then fails with EROFS without reaching `meta mount`).
fn mount_wrapper(dir: &Path) -> Result<PathBuf> {
    let real = which("mount").ok_or("mount(8) not found (apt install mount)")?;
    std::fs::create_dir_all(dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
    let script = dir.join("mount");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nexec {} -i \"$@\"\n", real.display()),
    )
    .map_err(|e| format!("write {}: {e}", script.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod {}: {e}", script.display()))?;
    Ok(dir.to_path_buf())
}

/// One backend pjdfstest can run on, and the env var naming its server (if any).
#[derive(Debug, Clone, Copy)]
pub struct PjdBackend {
    /// The `--backend` name.
    pub name: &'static str,
    /// The server it needs.
    pub service: Option<Kind>,
    /// The variable of `cargo xtask services` naming the server's URL.
    pub env: Option<&'static str>,
}

/// Every backend, in table order.
pub const BACKENDS: &[PjdBackend] = &[
    PjdBackend {
        name: "rocks",
        service: None,
        env: None,
    },
    PjdBackend {
        name: "sqlite",
        service: None,
        env: None,
    },
    PjdBackend {
        name: "redis",
        service: Some(Kind::Redis),
        env: Some("META_TEST_REDIS_URL"),
    },
    PjdBackend {
        name: "postgres",
        service: Some(Kind::Postgres),
        env: Some("META_TEST_POSTGRES_URL"),
    },
    PjdBackend {
        name: "mysql",
        service: Some(Kind::Mysql),
        env: Some("META_TEST_MYSQL_URL"),
    },
    PjdBackend {
        name: "etcd",
        service: Some(Kind::Etcd),
        env: Some("META_TEST_ETCD_URL"),
    },
];

/// The result of one backend.
#[derive(Debug, Default, Clone)]
pub struct PjdRun {
    /// Tests by name: `ok`, `failed` or `skipped`.
    pub tests: BTreeMap<String, String>,
    /// From the `Summary:` line (and [`PjdRun::merge`]).
    pub passed: usize,
    /// From the `Summary:` line (and [`PjdRun::merge`]).
    pub failed: usize,
    /// From the `Summary:` line (and [`PjdRun::merge`]).
    pub skipped: usize,
    /// Seconds the suite ran.
    pub seconds: f64,
    /// Why the run itself failed (mount, install, no summary), if it did.
    pub error: Option<String>,
}

impl PjdRun {
    /// Takes the results of a later pass that ran tests this run skipped: each of them
    /// counts once, with the later result. Errors when the later pass ran a test this run
    /// did not skip (the passes overlap) or one this run never listed.
    pub fn merge(&mut self, later: &PjdRun) -> Result<()> {
        for (name, result) in &later.tests {
            if result == "skipped" {
                continue;
            }
            match self.tests.get(name).map(String::as_str) {
                Some("skipped") => {}
                Some(other) => {
                    return Err(format!("{name} ran in two passes ({other}, then {result})"));
                }
                None => return Err(format!("{name} ran only in a later pass")),
            }
            self.skipped = self.skipped.saturating_sub(1);
            match result.as_str() {
                "ok" => self.passed += 1,
                _ => self.failed += 1,
            }
            self.tests.insert(name.clone(), result.clone());
        }
        Ok(())
    }
}

/// Parses a list of backend names (`all` or none = every backend).
pub fn parse_list(list: Option<&str>) -> Result<Vec<&'static PjdBackend>> {
    match list {
        None | Some("all") => Ok(BACKENDS.iter().collect()),
        Some(l) => l
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
            .map(|n| {
                BACKENDS.iter().find(|b| b.name == n).ok_or_else(|| {
                    let names: Vec<&str> = BACKENDS.iter().map(|b| b.name).collect();
                    format!(
                        "unknown pjdfstest backend {n:?} (known: {})",
                        names.join(", ")
                    )
                })
            })
            .collect(),
    }
}

/// The pjdfstest binary: cached under `$HOME/.cache/meta-pjdfstest`, installed with
/// `cargo install --locked` when missing.
pub fn ensure_binary() -> Result<PathBuf> {
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
    let root = PathBuf::from(home).join(".cache").join("meta-pjdfstest");
    let bin = root.join("bin").join("pjdfstest");
    if bin.exists() {
        return Ok(bin);
    }
    eprintln!(
        "xtask: installing pjdfstest {PJDFSTEST_VERSION} into {}",
        root.display()
    );
    let bin_cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    run(
        Command::new(bin_cargo)
            .args([
                "install",
                "--locked",
                "pjdfstest",
                "--version",
                PJDFSTEST_VERSION,
            ])
            .arg("--root")
            .arg(&root)
            .env_remove("CARGO_TARGET_DIR"),
        "cargo install pjdfstest (needs libacl1-dev)",
    )?;
    Ok(bin)
}

/// Builds the `meta` binary (debug) and returns its path.
pub fn build_meta() -> Result<PathBuf> {
    run(
        cargo().args(["build", "-p", "meta-cli"]),
        "cargo build -p meta-cli",
    )?;
    Ok(target_dir().join("debug").join("meta"))
}

fn with_param(url: &str, param: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{param}")
}

/// The volume URL of `b` inside `work`, or why there is none.
fn volume_url(b: &PjdBackend, work: &Path, env: &[(String, String)]) -> Result<String> {
    let tag = format!("pjd{}", std::process::id());
    Ok(match b.name {
        "rocks" => format!("rocksdb://{}", work.join("vol").display()),
        "sqlite" => format!("sqlite://{}", work.join("vol.db").display()),
        _ => {
            let var = b.env.unwrap_or("");
            let server = env
                .iter()
                .find(|(k, _)| k == var)
                .map(|(_, v)| v.clone())
                .or_else(|| std::env::var(var).ok())
                .ok_or_else(|| format!("{var} is not set (no {} server)", b.name))?;
            if b.name == "redis" {
                with_param(&server, &format!("prefix={tag}"))
            } else if b.name == "etcd" {
                // The cluster URL's path is the volume's key prefix.
                let (hosts, query) = server.split_once('?').unwrap_or((&server, ""));
                let sep = if query.is_empty() { "" } else { "?" };
                format!("{}/{tag}{sep}{query}", hosts.trim_end_matches('/'))
            } else {
                with_param(&server, &format!("table_prefix={tag}_"))
            }
        }
    })
}

/// Parses pjdfstest's output.
pub fn parse(out: &str, into: &mut PjdRun) {
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("Summary: ") {
            // "0 failed, 21 skipped, 377 passed, 0 expected failures, 398 total"
            for part in rest.split(',') {
                let mut w = part.split_whitespace();
                let (Some(n), Some(what)) = (w.next(), w.next()) else {
                    continue;
                };
                let Ok(n) = n.parse::<usize>() else { continue };
                match what {
                    "failed" => into.failed = n,
                    "skipped" => into.skipped = n,
                    "passed" => into.passed = n,
                    _ => {}
                }
            }
            continue;
        }
        let mut w = line.split_whitespace();
        if let (Some(name), Some(result), None) = (w.next(), w.next(), w.next())
            && name.contains("::")
        {
            // pjdfstest prints `ok`, `skipped` and `FAILED`.
            let result = result.to_ascii_lowercase();
            if matches!(result.as_str(), "ok" | "failed" | "skipped") {
                into.tests.insert(name.to_string(), result);
            }
        }
    }
}

struct Mount {
    child: Child,
    mnt: PathBuf,
    meta: PathBuf,
}

impl Mount {
    /// Mounts `url` on `work/mnt`; `engine_permissions` mounts without `default_permissions`
    /// (`-o allow_other`), so the engine, not the kernel, decides permissions.
    fn start(meta: &Path, url: &str, work: &Path, engine_permissions: bool) -> Result<Mount> {
        let mnt = work.join("mnt");
        std::fs::create_dir_all(&mnt).map_err(|e| format!("mkdir {}: {e}", mnt.display()))?;
        run(
            Command::new(meta).args(["--url", url, "format", "--force"]),
            "meta format",
        )?;
        let log =
            std::fs::File::create(work.join("mount.log")).map_err(|e| format!("mount log: {e}"))?;
        let err = log.try_clone().map_err(|e| format!("mount log: {e}"))?;
        let child = Command::new(meta)
            .arg("mount")
            .arg(url)
            .arg(&mnt)
            .arg("--data")
            .arg(work.join("data"))
            .arg("--foreground")
            .args(if engine_permissions {
                &["-o", "allow_other"][..]
            } else {
                &[]
            })
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("start meta mount: {e}"))?;
        let mut m = Mount {
            child,
            mnt,
            meta: meta.to_path_buf(),
        };
        let ok = wait_for(
            "meta mount",
            Duration::from_secs(60),
            Duration::from_millis(50),
            || {
                if mounted(&m.mnt) {
                    return Some(true);
                }
                match m.child.try_wait() {
                    Ok(Some(_)) | Err(_) => Some(false),
                    Ok(None) => None,
                }
            },
        );
        match ok {
            Ok(true) => Ok(m),
            other => {
                let log = std::fs::read_to_string(work.join("mount.log")).unwrap_or_default();
                m.stop();
                Err(format!(
                    "the mount did not come up ({other:?}): {}",
                    log.trim()
                ))
            }
        }
    }

    /// Unmounts and waits for the mount process (killing it after 30 s).
    fn stop(&mut self) {
        let _ = Command::new(&self.meta)
            .arg("umount")
            .arg(&self.mnt)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new(&self.meta)
            .arg("umount")
            .arg("--lazy")
            .arg(&self.mnt)
            .status();
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

/// Runs pjdfstest on one backend.
pub fn run_one(
    b: &PjdBackend,
    meta: &Path,
    pjd: &Path,
    env: &[(String, String)],
    verbose: bool,
    engine_permissions: bool,
) -> PjdRun {
    let mut r = PjdRun::default();
    let work =
        std::env::temp_dir().join(format!("meta-pjdfstest-{}-{}", b.name, std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    if let Err(e) = std::fs::create_dir_all(&work) {
        r.error = Some(format!("mkdir {}: {e}", work.display()));
        return r;
    }
    let outcome = (|| -> Result<()> {
        let url = volume_url(b, &work, env)?;
        let secondary = work.join("secondary");
        std::fs::create_dir_all(&secondary).map_err(|e| format!("mkdir secondary: {e}"))?;
        let wrapper = mount_wrapper(&work.join("bin"))?;
        let path = std::env::join_paths(
            std::iter::once(wrapper).chain(
                std::env::var_os("PATH")
                    .iter()
                    .flat_map(std::env::split_paths),
            ),
        )
        .map_err(|e| format!("PATH: {e}"))?;
        let mut m = Mount::start(meta, &url, &work, engine_permissions)?;
        let started = Instant::now();
        // Pass 1: the whole suite, remounts not allowed (the erofs tests skip). Pass 2: the
        // erofs tests alone, in a fresh pjdfstest process. Earlier tests of the suite leave
        // descriptors open for writing on files they removed (seen in /proc/PID/fd), and the
        // kernel refuses a read-only remount while any are open (EBUSY): on tmpfs too, 6 of
        // the 13 erofs tests fail inside one whole-suite run and all pass alone.
        let mut passes = Vec::new();
        for (n, allow_remount) in [(1, false), (2, true)] {
            let config = work.join(format!("pjdfstest-{n}.toml"));
            std::fs::write(&config, config_text(&secondary, allow_remount))
                .map_err(|e| format!("write config: {e}"))?;
            let mut cmd = Command::new(pjd);
            cmd.arg("-c").arg(&config).arg("-p").arg(&m.mnt);
            if allow_remount {
                cmd.arg(REMOUNT_TESTS);
            }
            let out = cmd
                .current_dir(&m.mnt)
                .env("PATH", &path)
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("run pjdfstest (pass {n}): {e}"))?;
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            if verbose {
                print!("{text}");
            }
            if !text.contains("Summary: ") {
                // Returning drops `m`, which unmounts.
                return Err(format!(
                    "pjdfstest printed no summary in pass {n} ({}): {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            let mut pass = PjdRun::default();
            parse(&text, &mut pass);
            passes.push(pass);
        }
        r.seconds = started.elapsed().as_secs_f64();
        m.stop();
        let mut passes = passes.into_iter();
        if let Some(first) = passes.next() {
            let seconds = r.seconds;
            r = first;
            r.seconds = seconds;
        }
        for later in passes {
            r.merge(&later)?;
        }
        let fsck = run(
            Command::new(meta).args(["--url", &url, "fsck"]),
            "meta fsck after pjdfstest",
        );
        if let Err(e) = fsck {
            return Err(format!("the volume is not consistent after the suite: {e}"));
        }
        Ok(())
    })();
    if let Err(e) = outcome {
        r.error = Some(e);
    }
    let _ = std::fs::remove_dir_all(&work);
    r
}

/// Prints the table of runs (`title` follows "through meta mount" in its heading); returns
/// `(passed, failed)` over every backend (a run that failed as a whole counts as one
/// failure).
pub fn print_table(runs: &[(&PjdBackend, PjdRun)], title: &str) -> (usize, usize) {
    println!("\npjdfstest {PJDFSTEST_VERSION} through meta mount{title}");
    println!(
        "{:<10} {:>7} {:>7} {:>8} {:>8}  note",
        "backend", "passed", "failed", "skipped", "seconds"
    );
    let (mut passed, mut failed) = (0, 0);
    for (b, r) in runs {
        let note = match &r.error {
            Some(e) => format!("ERROR: {e}"),
            None if r.failed > 0 => {
                let names: Vec<&str> = r
                    .tests
                    .iter()
                    .filter(|(_, v)| *v == "failed")
                    .map(|(k, _)| k.as_str())
                    .collect();
                format!("failed: {}", names.join(", "))
            }
            None => String::new(),
        };
        println!(
            "{:<10} {:>7} {:>7} {:>8} {:>8.1}  {note}",
            b.name, r.passed, r.failed, r.skipped, r.seconds
        );
        passed += r.passed;
        failed += r.failed + usize::from(r.error.is_some());
    }
    // Every backend must give the same answer per test.
    let mut differ = Vec::new();
    if let Some((_, first)) = runs.iter().find(|(_, r)| r.error.is_none()) {
        for (b, r) in runs.iter().filter(|(_, r)| r.error.is_none()) {
            for (name, res) in &r.tests {
                if first.tests.get(name) != Some(res) {
                    differ.push(format!("{} on {}: {res}", name, b.name));
                }
            }
        }
    }
    if !differ.is_empty() {
        println!("results differ between backends: {}", differ.join("; "));
        failed += 1;
    }
    (passed, failed)
}

/// The tools a pjdfstest run needs, for the prerequisites check.
pub fn tools_missing() -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    if which("fusermount3").is_none() {
        out.push(("fusermount3", "fuse3"));
    }
    if which("setfacl").is_none() {
        out.push(("setfacl", "acl"));
    }
    if !Path::new("/usr/include/sys/acl.h").exists() {
        out.push(("sys/acl.h (to build pjdfstest)", "libacl1-dev"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_tests_and_summary() {
        let mut r = PjdRun::default();
        parse(
            "chmod::foo                                  ok\n\
             link::link_count_max                 skipped\n\
             \tsome explanation line\n\
             rename::bar::dir                        FAILED\n\
             \nSummary: 1 failed, 1 skipped, 1 passed, 0 expected failures, 3 total\n",
            &mut r,
        );
        assert_eq!((r.passed, r.failed, r.skipped), (1, 1, 1));
        assert_eq!(r.tests.len(), 3);
        assert_eq!(r.tests["rename::bar::dir"], "failed");
        assert!(parse_list(Some("rocks,redis")).is_ok());
        // A second pass that ran the skipped test: it counts once, with its new result.
        let mut later = PjdRun::default();
        parse(
            "link::link_count_max      ok\n\nSummary: 0 failed, 0 skipped, 1 passed\n",
            &mut later,
        );
        r.merge(&later).expect("merge");
        assert_eq!((r.passed, r.failed, r.skipped), (2, 1, 0));
        // A test that ran in both passes is an error, not a double count.
        assert!(r.merge(&later).is_err());
        assert!(parse_list(Some("nope")).is_err());
    }
}
