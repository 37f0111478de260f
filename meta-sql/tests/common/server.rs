//! Private PostgreSQL and MariaDB servers for tests that kill or reconfigure them (crash,
//! TLS): each in its own temp dir on a free loopback port, started from the installed
//! binaries (PostgreSQL: `/usr/lib/postgresql/N/bin` or `PG_BIN`; MariaDB: `mariadbd` and
//! `mariadb-install-db` from `PATH`), stopped by PID — SIGKILL, on purpose or when dropped.
//!
//! PostgreSQL refuses to run as root: as root, its files belong to, and its processes run as,
//! the `postgres` user.

use std::io::Read;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Postgres,
    MariaDb,
}

impl Engine {
    pub fn name(self) -> &'static str {
        match self {
            Engine::Postgres => "PostgreSQL",
            Engine::MariaDb => "MariaDB",
        }
    }

    /// Why this server cannot be started here (a binary is missing), if it cannot.
    pub fn missing(self) -> Option<String> {
        match self {
            Engine::Postgres => postgres_bin().err().map(|e| e.to_string()),
            Engine::MariaDb => ["mariadbd", "mariadb-install-db", "mariadb"]
                .into_iter()
                .find(|b| which(b).is_none())
                .map(|b| format!("{b} is not installed (Debian package mariadb-server)")),
        }
    }
}

/// Reports a test that cannot run: an error under `META_CONFORMANCE_REQUIRE=1`, else a loud
/// SKIP line (the test then returns early; it is not a pass of what it checks).
pub fn skip(test: &str, why: &str) -> Result<()> {
    ensure!(
        !meta_conformance::skips_are_failures(),
        "{test}: {why}, and META_CONFORMANCE_REQUIRE=1"
    );
    eprintln!("SKIP {test}: {why}");
    Ok(())
}

/// TLS material for a server: PEM text, written into the server's directory.
#[derive(Debug, Clone)]
pub struct ServerTls {
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
    /// Refuse clients that do not use TLS (PostgreSQL: `hostssl`-only `pg_hba.conf`;
    /// MariaDB: `require_secure_transport=ON`).
    pub require: bool,
}

/// A running private server. Dropping it kills it (SIGKILL) and removes its directory.
pub struct DbServer {
    engine: Engine,
    port: u16,
    /// Loopback addresses it listens on (the first is the one of [`DbServer::url`]).
    addrs: Vec<String>,
    tls: Option<ServerTls>,
    child: Option<Child>,
    /// The PostgreSQL user as root, to run the server as: (uid, gid).
    run_as: Option<(u32, u32)>,
    dir: tempfile::TempDir,
}

impl Drop for DbServer {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

impl DbServer {
    /// Creates a data directory and starts the server on a free port, listening on
    /// 127.0.0.1 (and on `extra_addrs`, other loopback addresses); waits until it accepts
    /// connections. Fails when a binary is missing (check [`Engine::missing`] first).
    pub fn start(engine: Engine, tls: Option<ServerTls>, extra_addrs: &[&str]) -> Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("meta-sql-server-")
            .tempdir()
            .context("temp dir")?;
        let mut addrs = vec!["127.0.0.1".to_string()];
        addrs.extend(extra_addrs.iter().map(|a| a.to_string()));
        let run_as = if engine == Engine::Postgres && is_root() {
            Some(user_ids("postgres")?)
        } else {
            None
        };
        let mut s = DbServer {
            engine,
            port: free_port()?,
            addrs,
            tls,
            child: None,
            run_as,
            dir,
        };
        s.write_tls_files()?;
        match engine {
            Engine::Postgres => s.init_postgres()?,
            Engine::MariaDb => s.init_mariadb()?,
        }
        s.launch()?;
        if engine == Engine::MariaDb {
            // Through the Unix socket, which require_secure_transport accepts as secure.
            let out = Command::new("mariadb")
                .arg("--no-defaults")
                .arg(format!("--socket={}", s.socket().display()))
                .args([
                    "-u",
                    "root",
                    "-e",
                    "CREATE DATABASE IF NOT EXISTS meta_test",
                ])
                .output()
                .context("run mariadb")?;
            ensure!(
                out.status.success(),
                "CREATE DATABASE meta_test: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(s)
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's directory (data, logs, certificates).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The volume URL base (no query string) for the server's first address.
    pub fn url(&self) -> String {
        self.url_at(&self.addrs[0])
    }

    /// The volume URL base for `host` (one of the addresses it listens on, or `localhost`).
    pub fn url_at(&self, host: &str) -> String {
        match self.engine {
            Engine::Postgres => format!("postgres://postgres@{host}:{}/postgres", self.port),
            Engine::MariaDb => format!("mysql://root@{host}:{}/meta_test", self.port),
        }
    }

    /// The last 2 kB of the server's log, for error messages.
    pub fn log_tail(&self) -> String {
        let name = match self.engine {
            Engine::Postgres => "pg.log",
            Engine::MariaDb => "err.log",
        };
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.dir().join(name)) {
            let _ = f.read_to_string(&mut s);
        }
        let start = s.len().saturating_sub(2048);
        let start = (start..s.len())
            .find(|&i| s.is_char_boundary(i))
            .unwrap_or(s.len());
        s[start..].to_string()
    }

    /// SIGKILLs the server — PostgreSQL: the postmaster and every backend it forked, as a
    /// crash of the whole server would — and waits until its processes are gone. No
    /// shutdown: what was not durable is lost.
    pub fn kill(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = child.id();
        let mut pids = Vec::new();
        if self.engine == Engine::Postgres {
            // Stop the postmaster first so that it forks nobody while we collect its
            // children (each backend is its own process group: no group kill).
            signal("STOP", &[pid])?;
            pids = children_of(pid);
        }
        pids.push(pid);
        signal("KILL", &pids)?;
        let _ = child.wait();
        let deadline = Instant::now() + Duration::from_secs(10);
        while pids.iter().any(|&p| alive(p)) {
            ensure!(
                Instant::now() < deadline,
                "{} processes {pids:?} still alive 10 s after SIGKILL",
                self.engine.name()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Starts the server again on the same port and data directory (after [`kill`], it
    /// runs crash recovery first) and waits until it accepts connections.
    ///
    /// [`kill`]: DbServer::kill
    pub fn restart(&mut self) -> Result<()> {
        self.kill()?;
        self.launch()
    }

    fn data(&self) -> PathBuf {
        self.dir().join("data")
    }

    fn socket(&self) -> PathBuf {
        self.dir().join("mysqld.sock")
    }

    fn write_tls_files(&self) -> Result<()> {
        let Some(t) = &self.tls else {
            return Ok(());
        };
        use std::os::unix::fs::PermissionsExt;
        for (name, pem) in [
            ("server.pem", &t.cert_pem),
            ("server.key", &t.key_pem),
            ("ca.pem", &t.ca_pem),
        ] {
            let p = self.dir().join(name);
            std::fs::write(&p, pem).with_context(|| format!("write {}", p.display()))?;
            // PostgreSQL refuses a key file others can read.
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600))?;
        }
        Ok(())
    }

    /// A command run as the server's user.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new(program);
        c.current_dir(self.dir());
        if let Some((uid, gid)) = self.run_as {
            c.uid(uid).gid(gid);
        }
        c
    }

    fn init_postgres(&mut self) -> Result<()> {
        let bin = postgres_bin()?;
        if let Some((uid, gid)) = self.run_as {
            chown_tree(self.dir(), uid, gid)?;
        }
        let out = self
            .command(bin.join("initdb"))
            .arg("-D")
            .arg(self.data())
            .args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ])
            .output()
            .context("run initdb")?;
        ensure!(
            out.status.success(),
            "initdb: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let host = match &self.tls {
            Some(t) if t.require => "hostssl",
            _ => "host",
        };
        let hba = format!(
            "local all all trust\n{host} all all 127.0.0.0/8 trust\n{host} all all ::1/128 trust\n"
        );
        let hba_path = self.data().join("pg_hba.conf");
        std::fs::write(&hba_path, hba).context("write pg_hba.conf")?;
        if let Some((uid, gid)) = self.run_as {
            std::os::unix::fs::chown(&hba_path, Some(uid), Some(gid))?;
        }
        Ok(())
    }

    fn init_mariadb(&mut self) -> Result<()> {
        let mut c = Command::new("mariadb-install-db");
        c.current_dir(self.dir())
            .arg("--no-defaults")
            .arg(format!("--datadir={}", self.data().display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
        if is_root() {
            c.arg("--user=root");
        }
        let out = c.output().context("run mariadb-install-db")?;
        ensure!(
            out.status.success(),
            "mariadb-install-db: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }

    /// Spawns the server process and waits (up to 30 s) until it accepts connections.
    fn launch(&mut self) -> Result<()> {
        let d = self.dir().to_path_buf();
        let file = |name: &str| d.join(name).display().to_string();
        let child = match self.engine {
            Engine::Postgres => {
                let bin = postgres_bin()?;
                let mut args = vec![
                    "-D".to_string(),
                    self.data().display().to_string(),
                    "-p".into(),
                    self.port.to_string(),
                    "-k".into(),
                    d.display().to_string(),
                    "-c".into(),
                    format!("listen_addresses={}", self.addrs.join(",")),
                    // Acknowledged commits must survive the SIGKILL.
                    "-c".into(),
                    "fsync=on".into(),
                    "-c".into(),
                    "synchronous_commit=on".into(),
                    "-c".into(),
                    "max_connections=100".into(),
                ];
                if self.tls.is_some() {
                    for (k, v) in [
                        ("ssl", "on".to_string()),
                        ("ssl_cert_file", file("server.pem")),
                        ("ssl_key_file", file("server.key")),
                        ("ssl_ca_file", file("ca.pem")),
                    ] {
                        args.push("-c".into());
                        args.push(format!("{k}={v}"));
                    }
                }
                let log = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(d.join("pg.log"))?;
                if let Some((uid, gid)) = self.run_as {
                    std::os::unix::fs::chown(d.join("pg.log"), Some(uid), Some(gid))?;
                }
                self.command(bin.join("postgres"))
                    .args(&args)
                    .stdin(Stdio::null())
                    .stdout(log.try_clone()?)
                    .stderr(log)
                    .spawn()
                    .context("start postgres")?
            }
            Engine::MariaDb => {
                let mut args = vec![
                    "--no-defaults".to_string(),
                    format!("--datadir={}", self.data().display()),
                    format!("--socket={}", self.socket().display()),
                    format!("--port={}", self.port),
                    format!("--bind-address={}", self.addrs.join(",")),
                    format!("--pid-file={}", file("mysqld.pid")),
                    format!("--log-error={}", file("err.log")),
                    "--skip-log-bin".into(),
                    // The default, stated: the redo log is flushed at every commit, so
                    // acknowledged commits survive the SIGKILL.
                    "--innodb-flush-log-at-trx-commit=1".into(),
                    "--innodb-buffer-pool-size=64M".into(),
                ];
                if is_root() {
                    args.push("--user=root".into());
                }
                if let Some(t) = &self.tls {
                    args.push(format!("--ssl-cert={}", file("server.pem")));
                    args.push(format!("--ssl-key={}", file("server.key")));
                    args.push(format!("--ssl-ca={}", file("ca.pem")));
                    if t.require {
                        args.push("--require-secure-transport=ON".into());
                    }
                }
                Command::new("mariadbd")
                    .current_dir(&d)
                    .args(&args)
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .context("start mariadbd")?
            }
        };
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(c) = self.child.as_mut()
                && let Some(status) = c.try_wait()?
            {
                self.child = None;
                bail!(
                    "{} exited at start ({status}); log:\n{}",
                    self.engine.name(),
                    self.log_tail()
                );
            }
            if self.ready()? {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not accept connections on port {} within 30 s; log:\n{}",
                    self.engine.name(),
                    self.port,
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// True when the server accepts connections (PostgreSQL: `pg_isready`, which is false
    /// during crash recovery; MariaDB: its TCP port, which opens after recovery).
    fn ready(&self) -> Result<bool> {
        Ok(match self.engine {
            Engine::Postgres => Command::new(postgres_bin()?.join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .context("run pg_isready")?
                .success(),
            Engine::MariaDb => TcpStream::connect(("127.0.0.1", self.port)).is_ok(),
        })
    }
}

/// The bin dir of the newest installed PostgreSQL (`/usr/lib/postgresql/N/bin`), or `PG_BIN`.
pub fn postgres_bin() -> Result<PathBuf> {
    if let Some(d) = std::env::var_os("PG_BIN") {
        return Ok(PathBuf::from(d));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            ["initdb", "postgres", "pg_isready"]
                .iter()
                .all(|b| bin.join(b).exists())
                .then_some((v, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, b)| b).context(
        "PostgreSQL server binaries (initdb, postgres) not found under \
         /usr/lib/postgresql/*/bin (Debian package postgresql; or set PG_BIN)",
    )
}

fn which(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next().map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// (uid, gid) of `user` from /etc/passwd.
fn user_ids(user: &str) -> Result<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").context("read /etc/passwd")?;
    for line in passwd.lines() {
        let f: Vec<&str> = line.split(':').collect();
        if f.len() > 3 && f[0] == user {
            return Ok((f[2].parse()?, f[3].parse()?));
        }
    }
    bail!("no user {user} (PostgreSQL must not run as root; the Debian package creates it)")
}

fn chown_tree(p: &Path, uid: u32, gid: u32) -> Result<()> {
    std::os::unix::fs::chown(p, Some(uid), Some(gid))
        .with_context(|| format!("chown {}", p.display()))?;
    if p.is_dir() {
        for e in std::fs::read_dir(p)? {
            chown_tree(&e?.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// Sends SIG`sig` to `pids` with kill(1).
fn signal(sig: &str, pids: &[u32]) -> Result<()> {
    let out = Command::new("kill")
        .arg(format!("-{sig}"))
        .args(pids.iter().map(|p| p.to_string()))
        .output()
        .context("run kill")?;
    // A process that exited on its own meanwhile is not an error.
    ensure!(
        out.status.success() || pids.iter().any(|&p| !alive(p)),
        "kill -{sig} {pids:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// (state, ppid) of a process from /proc/PID/stat.
fn stat(pid: u32) -> Option<(char, u32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) state ppid ...": comm may hold spaces and parentheses.
    let rest = &s[s.rfind(')')? + 1..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let ppid = f.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Running (not exited, not a zombie).
fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

fn children_of(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&p| stat(p).is_some_and(|(_, ppid)| ppid == parent))
        .collect()
}

/// A free loopback port.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
