//! Small helpers: paths, commands, processes, ports. Standard library only.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The error of every xtask step: a message for the user.
pub type Result<T, E = String> = std::result::Result<T, E>;

/// The workspace root (the parent of this crate's directory), taken at run time from the
/// `CARGO_MANIFEST_DIR` that `cargo run` (so `cargo xtask`) sets. The compile-time value is
/// only the fallback: the xtask binary in a target directory shared by several clones (the
/// default `~/.cache/meta-target`) may have been built from another clone, which cargo
/// counts as fresh, and would then test that clone, or a directory that no longer exists.
pub fn workspace_root() -> PathBuf {
    let here = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .filter(|d| d.join("Cargo.toml").is_file())
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    here.parent().map(Path::to_path_buf).unwrap_or(here)
}

/// `CARGO_TARGET_DIR` if set, else `$HOME/.cache/meta-target` (shared across clones).
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => {
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
            PathBuf::from(home).join(".cache").join("meta-target")
        }
    }
}

/// A `cargo` command in the workspace root with `CARGO_TARGET_DIR` set, linking RocksDB from
/// the per-machine cache when it holds a build (see [`rocksdb_cache`]).
pub fn cargo() -> Command {
    let bin = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut c = Command::new(bin);
    c.current_dir(workspace_root())
        .env("CARGO_TARGET_DIR", target_dir());
    if std::env::var_os("ROCKSDB_LIB_DIR").is_none()
        && let Some(dir) = rocksdb_cache()
    {
        keep_rocksdb(&dir);
        if dir.join("librocksdb.a").is_file() && dir.join("libsnappy.a").is_file() {
            c.env("ROCKSDB_LIB_DIR", &dir)
                .env("ROCKSDB_STATIC", "1")
                .env("SNAPPY_LIB_DIR", &dir)
                .env("SNAPPY_STATIC", "1");
        }
    }
    c
}

/// Where the static RocksDB and Snappy libraries `librocksdb-sys` compiled are kept for every
/// later build on this machine, whatever the profile or the clone: compiling RocksDB's C++
/// takes ≈ 9 min per profile on a 2-core machine, linking the kept one ≈ 20 s
/// (`ROCKSDB_LIB_DIR`, `ROCKSDB_STATIC`; the crate's documented way to use a prebuilt
/// library). `~/.cache/meta-rocksdb/<librocksdb-sys version from Cargo.lock>`; `None` when
/// the lock file names no version (nothing is cached then).
pub fn rocksdb_cache() -> Option<PathBuf> {
    let lock = std::fs::read_to_string(workspace_root().join("Cargo.lock")).ok()?;
    let mut lines = lock.lines();
    while let Some(l) = lines.next() {
        if l.trim() == "name = \"librocksdb-sys\"" {
            let v = lines
                .next()?
                .trim()
                .strip_prefix("version = \"")?
                .strip_suffix('"')?;
            let home = std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into());
            return Some(PathBuf::from(home).join(".cache/meta-rocksdb").join(v));
        }
    }
    None
}

/// Copies the libraries of a finished `librocksdb-sys` build under the target directory into
/// `dir` (a release build first), once. Failures only mean RocksDB is compiled again.
fn keep_rocksdb(dir: &Path) {
    if dir.join("librocksdb.a").is_file() {
        return;
    }
    for profile in ["release", "debug"] {
        let Ok(builds) = std::fs::read_dir(target_dir().join(profile).join("build")) else {
            continue;
        };
        for b in builds.map_while(std::result::Result::ok) {
            let out = b.path().join("out");
            let name = b.file_name();
            if !name.to_string_lossy().starts_with("librocksdb-sys-")
                || !out.join("librocksdb.a").is_file()
                || !out.join("libsnappy.a").is_file()
            {
                continue;
            }
            let mut partial = dir.as_os_str().to_owned();
            partial.push(".partial");
            let tmp = PathBuf::from(partial);
            let _ = std::fs::remove_dir_all(&tmp);
            let copied = std::fs::create_dir_all(&tmp).is_ok()
                && ["librocksdb.a", "libsnappy.a"]
                    .iter()
                    .all(|f| std::fs::copy(out.join(f), tmp.join(f)).is_ok());
            if copied && std::fs::rename(&tmp, dir).is_ok() {
                eprintln!("xtask: RocksDB kept in {} for later builds", dir.display());
                return;
            }
            let _ = std::fs::remove_dir_all(&tmp);
        }
    }
}

/// Finds an executable on `PATH` and in the sbin directories (which a non-root `PATH` may
/// lack: `mariadbd` lives in `/usr/sbin`).
pub fn which(bin: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for extra in [
        "/usr/local/sbin",
        "/usr/sbin",
        "/sbin",
        "/usr/local/bin",
        "/usr/bin",
        "/bin",
    ] {
        dirs.push(PathBuf::from(extra));
    }
    dirs.into_iter()
        .map(|d| d.join(bin))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Like [`which`], but a missing binary is an error naming the Debian package.
pub fn require(bin: &str, package: &str) -> Result<PathBuf> {
    which(bin).ok_or_else(|| {
        format!(
            "`{bin}` not found: install the Debian package `{package}` \
             (apt-get install -y {package}), or run `cargo xtask test` as root to install it"
        )
    })
}

/// True when running as root (effective uid 0).
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// Runs a command to completion; an error carries its exit status and output.
pub fn run(cmd: &mut Command, what: &str) -> Result<Output> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{what}: cannot run {:?}: {e}", cmd.get_program()))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out)
}

/// Polls `check` every `every` until it returns `Some`, or fails after `timeout`.
pub fn wait_for<T>(
    what: &str,
    timeout: Duration,
    every: Duration,
    mut check: impl FnMut() -> Option<T>,
) -> Result<T> {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            return Err(format!("{what}: not ready after {timeout:?}"));
        }
        std::thread::sleep(every);
    }
}

/// A loopback TCP port that is free right now.
pub fn free_port() -> Result<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}

/// A port `p` in 20000..=50000 such that `p` and `p + offset` are both free (Redis Cluster
/// needs its bus port at `p + 10000`).
pub fn free_port_pair(offset: u16) -> Result<u16> {
    for _ in 0..200 {
        let p = free_port()?;
        if !(20_000..=50_000).contains(&p) {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", p + offset)).is_ok()
            && TcpListener::bind(("127.0.0.1", p)).is_ok()
        {
            return Ok(p);
        }
    }
    Err(format!("cannot find two free ports {offset} apart"))
}

/// True when process `pid` exists and is not a zombie.
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Format: "pid (comm) S ...": the state follows the last ')'.
        Ok(s) => s
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// The command line of process `pid`, arguments joined by spaces ("" when gone).
pub fn pid_cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// Sends `signal` (e.g. `"TERM"`) to process `pid` with `kill(1)`.
pub fn signal(pid: u32, signal: &str) -> Result<()> {
    let st = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|e| format!("cannot run kill: {e}"))?;
    if st.success() || !pid_alive(pid) {
        Ok(())
    } else {
        Err(format!("kill -{signal} {pid} failed"))
    }
}

/// Reads the first line of a PID file.
pub fn read_pid_file(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .next()?
        .trim()
        .parse()
        .ok()
}

/// True when something is mounted at `mnt` (`/proc/self/mountinfo`, field 5).
pub fn mounted(mnt: &Path) -> bool {
    let Ok(target) = std::fs::canonicalize(mnt) else {
        return false;
    };
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4).is_some_and(|m| Path::new(m) == target))
}
