//! Helpers of the `meta mount` tests: running commands, skipping without root or FUSE, and a
//! background mount that is unmounted when dropped.
#![allow(dead_code)] // each test file uses its own subset

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const META: &str = env!("CARGO_BIN_EXE_meta");

/// Runs `cmd`; panics naming `what` with its output when it fails. Returns its stdout.
pub fn run(cmd: &mut Command, what: &str) -> String {
    let out: Output = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs a bash script (`bash -ec`).
pub fn sh(script: &str, what: &str) -> String {
    run(Command::new("bash").arg("-ec").arg(script), what)
}

/// `meta` with `META_URL` set to `url`.
pub fn meta(url: &str) -> Command {
    let mut c = Command::new(META);
    c.env("META_URL", url);
    c
}

/// Why no FUSE mount can be made here (not root, no `/dev/fuse`), if so.
pub fn no_fuse() -> Option<String> {
    let root = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .map(|l| l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    if !root {
        return Some("not root (FUSE mounts with allow_other need root)".into());
    }
    if !Path::new("/dev/fuse").exists() {
        return Some("/dev/fuse is missing".into());
    }
    None
}

/// Skips loudly, or panics when `META_MOUNT_TESTS_REQUIRE=1` or `META_CONFORMANCE_REQUIRE=1`
/// (`cargo xtask test` sets the first when it runs as root, after installing FUSE and the
/// programs).
pub fn skip_or_fail(why: &str) {
    for var in ["META_MOUNT_TESTS_REQUIRE", "META_CONFORMANCE_REQUIRE"] {
        if std::env::var(var).is_ok_and(|v| !v.is_empty() && v != "0") {
            panic!("mount test cannot run: {why}, and {var}=1 forbids skipping");
        }
    }
    eprintln!("SKIP mount test: {why} (set META_MOUNT_TESTS_REQUIRE=1 to make this a failure)");
}

/// Files under `data` (the slice files of a mount's data directory).
pub fn slice_files(data: &Path) -> usize {
    fn walk(p: &Path, n: &mut usize) {
        if let Ok(rd) = std::fs::read_dir(p) {
            for e in rd.flatten() {
                match e.file_type() {
                    Ok(t) if t.is_dir() => walk(&e.path(), n),
                    Ok(_) => *n += 1,
                    Err(_) => {}
                }
            }
        }
    }
    let mut n = 0;
    walk(data, &mut n);
    n
}

/// True when something is mounted at `mnt` (`/proc/self/mountinfo`).
pub fn mounted(mnt: &Path) -> bool {
    let Ok(target) = std::fs::canonicalize(mnt) else {
        return false;
    };
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|m| Path::new(m) == target))
}

/// Waits up to `secs` seconds for `done`; false when it never held.
pub fn wait_until(secs: u64, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !done() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

/// A background `meta mount` (the CLI daemonizes it); `meta umount` when dropped.
pub struct Mount {
    /// The mount point.
    pub mnt: PathBuf,
    /// The data directory.
    pub data: PathBuf,
    /// The log file.
    pub log: PathBuf,
    /// The serving process.
    pub pid: u32,
}

impl Mount {
    /// Mounts `url` at `work/NAME` with data in `work/data` (shared by every mount of a
    /// work directory: they serve one volume) and `extra` arguments.
    pub fn start(url: &str, work: &Path, name: &str, extra: &[&str]) -> Mount {
        let (mnt, data) = (work.join(name), work.join("data"));
        let log = work.join(format!("{name}.log"));
        std::fs::create_dir_all(&mnt).expect("mkdir mount point");
        let said = run(
            Command::new(META)
                .arg("mount")
                .arg(url)
                .arg(&mnt)
                .arg("--data")
                .arg(&data)
                .arg("--log")
                .arg(&log)
                .args(extra),
            "meta mount",
        );
        // "meta: mounted at MNT (pid N, log FILE)"
        let pid = said
            .split("(pid ")
            .nth(1)
            .and_then(|r| r.split(',').next())
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no pid in {said:?}"));
        Mount {
            mnt,
            data,
            log,
            pid,
        }
    }

    /// True while the serving process exists.
    pub fn alive(&self) -> bool {
        Path::new(&format!("/proc/{}", self.pid)).exists()
    }

    /// Sends `signal` to the serving process.
    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        let pid = nix::unistd::Pid::from_raw(self.pid as i32);
        nix::sys::signal::kill(pid, signal)
            .unwrap_or_else(|e| panic!("kill {} {signal}: {e}", self.pid));
    }

    /// The mount's log (for failure messages).
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Mount {
    /// Unmounts (`meta umount`) and waits for the serving process to exit; panics, with the
    /// mount's log, when either does not happen.
    pub fn unmount(self) {
        run(
            Command::new(META).arg("umount").arg(&self.mnt),
            "meta umount",
        );
        assert!(
            wait_until(30, || !mounted(&self.mnt) && !self.alive()),
            "still mounted or serving 30 s after meta umount; log:\n{}",
            self.log_text()
        );
    }
}

/// A mount left by a failing test: `meta umount`, and if the mount point stays busy, a lazy
/// unmount, so that no mount and no serving process outlive the test.
impl Drop for Mount {
    fn drop(&mut self) {
        if !mounted(&self.mnt) {
            return;
        }
        for args in [&["umount"][..], &["umount", "--lazy"][..]] {
            let _ = Command::new(META)
                .args(args)
                .arg(&self.mnt)
                .stdin(Stdio::null())
                .output();
            if wait_until(10, || !mounted(&self.mnt)) {
                break;
            }
        }
        wait_until(10, || !self.alive());
    }
}
