//! Throw-away database servers on free loopback ports in temp dirs, from locally installed
//! binaries: redis-server (standalone and a 3-master cluster), PostgreSQL, MariaDB, and a
//! 3-member etcd cluster.
//!
//! Every server is started in its own session (so a Ctrl-C on the terminal does not reach
//! it) and recorded in a state file (PIDs, env vars, the temp dir) as soon as it runs. They
//! are stopped by PID — after checking that the PID still runs the expected binary — never by
//! name. A watchdog process (`xtask __watchdog`) stops them if xtask dies (Ctrl-C, kill).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::util::{
    Result, free_port, free_port_pair, is_root, pid_alive, pid_cmdline, read_pid_file, require,
    run, signal, wait_for, which,
};

/// A kind of server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// One redis-server.
    Redis,
    /// Three redis-servers forming a Redis Cluster (3 masters, no replicas).
    RedisCluster,
    /// PostgreSQL (initdb + pg_ctl).
    Postgres,
    /// MariaDB (mariadb-install-db + mariadbd).
    Mysql,
    /// Three etcd members forming one cluster (Debian `etcd-server`).
    Etcd,
}

impl Kind {
    /// Every kind, in start order.
    pub const ALL: [Kind; 5] = [
        Kind::Redis,
        Kind::RedisCluster,
        Kind::Postgres,
        Kind::Mysql,
        Kind::Etcd,
    ];

    /// The backend name that needs this server (`--backend` value).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Redis => "redis",
            Kind::RedisCluster => "redis-cluster",
            Kind::Postgres => "postgres",
            Kind::Mysql => "mysql",
            Kind::Etcd => "etcd",
        }
    }

    /// The environment variable that carries the server's URL to the tests.
    pub fn env_var(self) -> &'static str {
        match self {
            Kind::Redis => "META_TEST_REDIS_URL",
            Kind::RedisCluster => "META_TEST_REDIS_CLUSTER_URL",
            Kind::Postgres => "META_TEST_POSTGRES_URL",
            Kind::Mysql => "META_TEST_MYSQL_URL",
            Kind::Etcd => "META_TEST_ETCD_URL",
        }
    }
}

/// One running server process.
#[derive(Debug, Clone)]
struct Server {
    label: String,
    pid: u32,
    /// Signal that shuts it down cleanly.
    stop_signal: String,
    /// A word its command line must contain (guards against a reused PID).
    exe: String,
}

/// Servers started by one `up`, and what the tests need to reach them.
#[derive(Debug)]
pub struct Services {
    base: PathBuf,
    servers: Vec<Server>,
    env: Vec<(String, String)>,
    state: PathBuf,
}

/// The default state file of `services up` / `down`.
pub fn default_state_file() -> PathBuf {
    std::env::temp_dir().join("meta-xtask-services.state")
}

fn new_base_dir() -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!("meta-xtask-{}-{nanos}", std::process::id()));
    std::fs::create_dir(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    // 0755: the postgres user must reach its data dir below.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("chmod {}: {e}", dir.display()))?;
    Ok(dir)
}

impl Services {
    /// The env vars (`META_TEST_*_URL`) of the running servers.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// Where the PIDs are recorded.
    pub fn state_file(&self) -> &Path {
        &self.state
    }

    fn write_state(&self) -> Result<()> {
        let mut s = String::new();
        let _ = writeln!(s, "base {}", self.base.display());
        for sv in &self.servers {
            let _ = writeln!(
                s,
                "server {} {} {} {}",
                sv.label, sv.pid, sv.stop_signal, sv.exe
            );
        }
        for (k, v) in &self.env {
            let _ = writeln!(s, "env {k}={v}");
        }
        let tmp = self.state.with_extension("tmp");
        std::fs::write(&tmp, s).map_err(|e| format!("write {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &self.state)
            .map_err(|e| format!("write {}: {e}", self.state.display()))
    }

    fn add(&mut self, label: &str, pid: u32, stop_signal: &str, exe: &str) -> Result<()> {
        self.servers.push(Server {
            label: label.to_string(),
            pid,
            stop_signal: stop_signal.to_string(),
            exe: exe.to_string(),
        });
        self.write_state()
    }

    /// Starts the servers of `kinds` (each once), waiting until every one is ready. On an
    /// error, whatever was started is stopped again.
    pub fn start(kinds: &[Kind], state: &Path) -> Result<Services> {
        if state.exists() {
            return Err(format!(
                "state file {} exists: servers from an earlier run may be up; run `cargo xtask services down` first",
                state.display()
            ));
        }
        check_binaries(kinds)?;
        let mut s = Services {
            base: new_base_dir()?,
            servers: Vec::new(),
            env: Vec::new(),
            state: state.to_path_buf(),
        };
        s.write_state()?;
        let mut kinds = kinds.to_vec();
        kinds.sort();
        kinds.dedup();
        for k in kinds {
            let started = match k {
                Kind::Redis => s.start_redis(),
                Kind::RedisCluster => s.start_redis_cluster(),
                Kind::Postgres => s.start_postgres(),
                Kind::Mysql => s.start_mysql(),
                Kind::Etcd => s.start_etcd(),
            };
            if let Err(e) = started {
                let _ = s.stop();
                return Err(format!("starting {}: {e}", k.name()));
            }
            eprintln!("xtask: {} is up", k.name());
        }
        Ok(s)
    }

    fn dir(&self, name: &str) -> Result<PathBuf> {
        let d = self.base.join(name);
        std::fs::create_dir_all(&d).map_err(|e| format!("create {}: {e}", d.display()))?;
        Ok(d)
    }

    fn redis_server(&mut self, label: &str, port: u16, cluster: bool) -> Result<()> {
        let server = require("redis-server", "redis-server")?;
        let cli = require("redis-cli", "redis-tools")?;
        let d = self.dir(label)?;
        let mut cmd = Command::new(server);
        cmd.args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--daemonize",
            "yes",
        ])
        .arg("--dir")
        .arg(&d)
        .arg("--pidfile")
        .arg(d.join("redis.pid"))
        .arg("--logfile")
        .arg(d.join("redis.log"))
        .args(["--save", "", "--appendonly", "no"]);
        if cluster {
            cmd.args(["--cluster-enabled", "yes", "--cluster-node-timeout", "5000"])
                .arg("--cluster-config-file")
                .arg(d.join("nodes.conf"));
        }
        run(&mut cmd, &format!("redis-server on port {port}"))?;
        let pid = wait_for(
            &format!("{label} pid file"),
            Duration::from_secs(10),
            Duration::from_millis(20),
            || read_pid_file(&d.join("redis.pid")),
        )?;
        self.add(label, pid, "TERM", "redis-server")?;
        wait_for(
            &format!("{label} on port {port}"),
            Duration::from_secs(10),
            Duration::from_millis(20),
            || {
                Command::new(&cli)
                    .args(["-h", "127.0.0.1", "-p", &port.to_string(), "ping"])
                    .stderr(Stdio::null())
                    .output()
                    .ok()
                    .filter(|o| String::from_utf8_lossy(&o.stdout).trim() == "PONG")
            },
        )?;
        Ok(())
    }

    fn start_redis(&mut self) -> Result<()> {
        let port = free_port()?;
        self.redis_server("redis", port, false)?;
        self.env.push((
            Kind::Redis.env_var().into(),
            format!("redis://127.0.0.1:{port}/"),
        ));
        self.write_state()
    }

    fn start_redis_cluster(&mut self) -> Result<()> {
        let cli = require("redis-cli", "redis-tools")?;
        let mut ports = Vec::new();
        for i in 1..=3 {
            let p = free_port_pair(10_000)?;
            self.redis_server(&format!("redis-cluster-{i}"), p, true)?;
            ports.push(p);
        }
        let nodes: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        run(
            Command::new(&cli)
                .arg("--cluster")
                .arg("create")
                .args(&nodes)
                .args(["--cluster-replicas", "0", "--cluster-yes"]),
            "redis-cli --cluster create",
        )?;
        for p in &ports {
            wait_for(
                &format!("cluster state on port {p}"),
                Duration::from_secs(30),
                Duration::from_millis(100),
                || {
                    Command::new(&cli)
                        .args(["-h", "127.0.0.1", "-p", &p.to_string(), "cluster", "info"])
                        .output()
                        .ok()
                        .filter(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
                },
            )?;
        }
        self.env.push((
            Kind::RedisCluster.env_var().into(),
            format!("redis+cluster://{}", nodes.join(",")),
        ));
        self.env
            .push(("META_TEST_REDIS_CLUSTER_NODES".into(), nodes.join(",")));
        self.write_state()
    }

    fn start_postgres(&mut self) -> Result<()> {
        let bin = postgres_bin()?;
        let port = free_port()?;
        let d = self.dir("postgres")?;
        let root = is_root();
        let as_pg = |prog: &str| -> Result<Command> {
            let path = bin.join(prog);
            if root {
                let mut c = Command::new(require("runuser", "util-linux")?);
                c.args(["-u", "postgres", "--"]).arg(path);
                Ok(c)
            } else {
                Ok(Command::new(path))
            }
        };
        if root {
            // PostgreSQL refuses to run as root: the data dir belongs to user postgres.
            run(
                Command::new("chown").arg("-R").arg("postgres:").arg(&d),
                "chown the PostgreSQL dir to postgres (is the `postgresql` package installed?)",
            )?;
        }
        run(
            as_pg("initdb")?.arg("-D").arg(d.join("data")).args([
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ]),
            "initdb",
        )?;
        let opts = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200",
            d.display()
        );
        let started = run(
            as_pg("pg_ctl")?
                .arg("-D")
                .arg(d.join("data"))
                .arg("-l")
                .arg(d.join("pg.log"))
                .args(["-w", "-t", "60", "-o", &opts, "start"]),
            "pg_ctl start",
        );
        // Record the postmaster even if pg_ctl gave up waiting.
        if let Some(pid) = read_pid_file(&d.join("data").join("postmaster.pid")) {
            self.add("postgres", pid, "INT", "postgres")?;
        }
        started?;
        if !self.servers.iter().any(|s| s.label == "postgres") {
            return Err("pg_ctl started PostgreSQL but wrote no postmaster.pid".into());
        }
        self.env.push((
            Kind::Postgres.env_var().into(),
            format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        ));
        self.write_state()
    }

    /// Three etcd members on loopback ports, one cluster; waits until every member reports
    /// itself healthy (`GET /health`, which needs a leader).
    fn start_etcd(&mut self) -> Result<()> {
        let etcd = require("etcd", "etcd-server")?;
        let setsid = require("setsid", "util-linux")?;
        let mut members = Vec::new();
        for i in 1..=3 {
            members.push((format!("m{i}"), free_port()?, free_port()?));
        }
        let cluster: Vec<String> = members
            .iter()
            .map(|(n, _, peer)| format!("{n}=http://127.0.0.1:{peer}"))
            .collect();
        let d = self.dir("etcd")?;
        for (name, client, peer) in &members {
            let args = etcd_member_args(&d, name, *client, *peer, &cluster.join(","));
            let log = d.join(format!("{name}.log"));
            // `sh -c '... &'` in its own session; `$!` is the member (setsid execs it).
            let out = run(
                Command::new("sh")
                    .arg("-c")
                    .arg("log=$1; shift; \"$@\" >\"$log\" 2>&1 </dev/null & echo $!")
                    .arg("sh")
                    .arg(&log)
                    .arg(&setsid)
                    .arg(&etcd)
                    .args(&args),
                &format!("start etcd member {name}"),
            )?;
            let pid: u32 = String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse()
                .map_err(|_| format!("start etcd member {name}: no PID printed"))?;
            self.add(&format!("etcd-{name}"), pid, "TERM", "etcd")?;
        }
        for (name, client, _) in &members {
            wait_for(
                &format!("etcd member {name} healthy on port {client}"),
                Duration::from_secs(60),
                Duration::from_millis(100),
                || etcd_healthy(*client).then_some(()),
            )
            .map_err(|e| format!("{e}; see {}", d.join(format!("{name}.log")).display()))?;
        }
        let hosts: Vec<String> = members
            .iter()
            .map(|(_, c, _)| format!("127.0.0.1:{c}"))
            .collect();
        self.env.push((
            Kind::Etcd.env_var().into(),
            format!("etcd://{}/", hosts.join(",")),
        ));
        self.write_state()
    }

    fn start_mysql(&mut self) -> Result<()> {
        let install = require("mariadb-install-db", "mariadb-server")?;
        let server = require("mariadbd", "mariadb-server")?;
        let admin = require("mariadb-admin", "mariadb-client")?;
        let client = require("mariadb", "mariadb-client")?;
        let setsid = require("setsid", "util-linux")?;
        let port = free_port()?;
        let d = self.dir("mysql")?;
        let data = d.join("data");
        let root = is_root();
        let mut cmd = Command::new(install);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"]);
        if root {
            cmd.arg("--user=root");
        }
        run(&mut cmd, "mariadb-install-db")?;
        let pid_file = d.join("mysqld.pid");
        let mut args = vec![
            "--no-defaults".to_string(),
            format!("--datadir={}", data.display()),
            format!("--socket={}", d.join("mysqld.sock").display()),
            format!("--port={port}"),
            "--bind-address=127.0.0.1".into(),
            format!("--pid-file={}", pid_file.display()),
            format!("--log-error={}", d.join("err.log").display()),
            "--skip-log-bin".into(),
            "--innodb-flush-log-at-trx-commit=2".into(),
        ];
        if root {
            args.push("--user=root".into());
        }
        // `sh -c '... &'`: the server is not our child (no zombie) and runs in its own session.
        run(
            Command::new("sh")
                .arg("-c")
                .arg("\"$@\" >/dev/null 2>&1 </dev/null &")
                .arg("sh")
                .arg(&setsid)
                .arg(&server)
                .args(&args),
            "start mariadbd",
        )?;
        let pid = wait_for(
            "mariadbd pid file",
            Duration::from_secs(60),
            Duration::from_millis(50),
            || read_pid_file(&pid_file),
        )
        .map_err(|e| format!("{e}; see {}", d.join("err.log").display()))?;
        self.add("mysql", pid, "TERM", "mariadbd")?;
        wait_for(
            &format!("mariadbd on port {port}"),
            Duration::from_secs(60),
            Duration::from_millis(100),
            || {
                Command::new(&admin)
                    .args([
                        "--no-defaults",
                        "-h",
                        "127.0.0.1",
                        "-P",
                        &port.to_string(),
                        "-u",
                        "root",
                        "ping",
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .ok()
                    .filter(|s| s.success())
            },
        )?;
        run(
            Command::new(client).args([
                "--no-defaults",
                "-h",
                "127.0.0.1",
                "-P",
                &port.to_string(),
                "-u",
                "root",
                "-e",
                "CREATE DATABASE IF NOT EXISTS meta_test",
            ]),
            "create database meta_test",
        )?;
        self.env.push((
            Kind::Mysql.env_var().into(),
            format!("mysql://root@127.0.0.1:{port}/meta_test"),
        ));
        self.write_state()
    }

    /// Stops every server (by PID), removes the temp dir and the state file.
    pub fn stop(&self) -> Result<()> {
        stop_servers(&self.servers, &self.base, &self.state)
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
            (bin.join("pg_ctl").exists() && bin.join("initdb").exists()).then_some((v, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, b)| b)
        .ok_or_else(|| "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin: install the Debian package `postgresql`".to_string())
}

/// Checks the binaries `kinds` need, naming the Debian package of the first missing one.
pub fn check_binaries(kinds: &[Kind]) -> Result<()> {
    for k in kinds {
        match k {
            Kind::Redis | Kind::RedisCluster => {
                require("redis-server", "redis-server")?;
                require("redis-cli", "redis-tools")?;
            }
            Kind::Postgres => {
                postgres_bin()?;
                if is_root() {
                    require("runuser", "util-linux")?;
                }
            }
            Kind::Mysql => {
                require("mariadbd", "mariadb-server")?;
                require("mariadb-install-db", "mariadb-server")?;
                require("mariadb-admin", "mariadb-client")?;
                require("mariadb", "mariadb-client")?;
                require("setsid", "util-linux")?;
            }
            Kind::Etcd => {
                require("etcd", "etcd-server")?;
                require("setsid", "util-linux")?;
            }
        }
    }
    Ok(())
}

fn stop_servers(servers: &[Server], base: &Path, state: &Path) -> Result<()> {
    let mut errors = Vec::new();
    for sv in servers.iter().rev() {
        if !pid_alive(sv.pid) {
            continue;
        }
        let cmdline = pid_cmdline(sv.pid);
        if !cmdline.contains(&sv.exe) {
            eprintln!(
                "xtask: not stopping pid {} ({}): it now runs {cmdline:?}, not {}",
                sv.pid, sv.label, sv.exe
            );
            continue;
        }
        let _ = signal(sv.pid, &sv.stop_signal);
        let gone = wait_for(
            &sv.label,
            Duration::from_secs(30),
            Duration::from_millis(20),
            || (!pid_alive(sv.pid)).then_some(()),
        );
        if gone.is_err() {
            eprintln!(
                "xtask: {} (pid {}) ignored SIG{}; sending SIGKILL",
                sv.label, sv.pid, sv.stop_signal
            );
            let _ = signal(sv.pid, "KILL");
            if wait_for(
                &sv.label,
                Duration::from_secs(10),
                Duration::from_millis(20),
                || (!pid_alive(sv.pid)).then_some(()),
            )
            .is_err()
            {
                errors.push(format!("{} (pid {}) does not stop", sv.label, sv.pid));
            }
        }
    }
    // Dead servers were reparented to init; give it a moment to reap them, so that a pgrep
    // right after `down` shows nothing (best effort: some init processes reap lazily).
    let _ = wait_for(
        "reaping",
        Duration::from_secs(3),
        Duration::from_millis(20),
        || {
            servers
                .iter()
                .all(|sv| !Path::new(&format!("/proc/{}", sv.pid)).exists())
                .then_some(())
        },
    );
    if base.starts_with(std::env::temp_dir())
        && base.exists()
        && let Err(e) = std::fs::remove_dir_all(base)
    {
        errors.push(format!("remove {}: {e}", base.display()));
    }
    if errors.is_empty() {
        let _ = std::fs::remove_file(state);
        Ok(())
    } else {
        Err(errors.join("; "))
    }
}

/// What a state file holds: the servers, the temp dir, the env vars.
type State = (Vec<Server>, PathBuf, Vec<(String, String)>);

/// Reads a state file.
fn read_state(state: &Path) -> Result<State> {
    let text =
        std::fs::read_to_string(state).map_err(|e| format!("read {}: {e}", state.display()))?;
    let mut servers = Vec::new();
    let mut base = PathBuf::new();
    let mut env = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(2, ' ');
        match (parts.next(), parts.next()) {
            (Some("base"), Some(b)) => base = PathBuf::from(b),
            (Some("env"), Some(kv)) => {
                if let Some((k, v)) = kv.split_once('=') {
                    env.push((k.to_string(), v.to_string()));
                }
            }
            (Some("server"), Some(rest)) => {
                let f: Vec<&str> = rest.split(' ').collect();
                if let [label, pid, sig, exe] = f[..] {
                    let pid = pid
                        .parse()
                        .map_err(|_| format!("bad pid in {}: {line}", state.display()))?;
                    servers.push(Server {
                        label: label.into(),
                        pid,
                        stop_signal: sig.into(),
                        exe: exe.into(),
                    });
                }
            }
            _ => {}
        }
    }
    Ok((servers, base, env))
}

/// Stops what a state file records (`services down`). A missing state file is fine.
pub fn stop_from_state(state: &Path) -> Result<usize> {
    if !state.exists() {
        return Ok(0);
    }
    let (servers, base, _) = read_state(state)?;
    stop_servers(&servers, &base, state)?;
    Ok(servers.len())
}

/// The env vars a state file records.
pub fn env_from_state(state: &Path) -> Result<Vec<(String, String)>> {
    Ok(read_state(state)?.2)
}

/// The PIDs a state file records (for tests and messages).
pub fn pids_from_state(state: &Path) -> Result<Vec<u32>> {
    Ok(read_state(state)?.0.iter().map(|s| s.pid).collect())
}

/// A process that stops the servers of `state` as soon as this xtask process is gone
/// (Ctrl-C, a crash, SIGKILL). Runs in its own session, so terminal signals miss it.
pub struct Watchdog(Child);

impl Watchdog {
    /// Starts `xtask __watchdog <our pid> <state>`.
    pub fn spawn(state: &Path) -> Result<Watchdog> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut cmd = match which("setsid") {
            Some(s) => {
                let mut c = Command::new(s);
                c.arg(exe);
                c
            }
            None => Command::new(exe),
        };
        let child = cmd
            .arg("__watchdog")
            .arg(std::process::id().to_string())
            .arg(state)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("start the watchdog: {e}"))?;
        Ok(Watchdog(child))
    }

    /// Ends the watchdog (after the servers were stopped normally).
    pub fn dismiss(mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The watchdog's body: waits for `parent` to go, then stops what `state` records.
pub fn watchdog_main(parent: u32, state: &Path) -> Result<()> {
    while pid_alive(parent) {
        std::thread::sleep(Duration::from_millis(200));
    }
    if state.exists() {
        eprintln!("xtask watchdog: xtask (pid {parent}) is gone; stopping its servers");
        let n = stop_from_state(state)?;
        eprintln!("xtask watchdog: stopped {n} server(s)");
    }
    Ok(())
}

/// The command line of one member of a loopback etcd cluster whose data lives under `dir`.
pub fn etcd_member_args(
    dir: &Path,
    name: &str,
    client: u16,
    peer: u16,
    cluster: &str,
) -> Vec<String> {
    vec![
        format!("--name={name}"),
        format!("--data-dir={}", dir.join(name).display()),
        format!("--listen-client-urls=http://127.0.0.1:{client}"),
        format!("--advertise-client-urls=http://127.0.0.1:{client}"),
        format!("--listen-peer-urls=http://127.0.0.1:{peer}"),
        format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer}"),
        format!("--initial-cluster={cluster}"),
        "--initial-cluster-state=new".into(),
        "--initial-cluster-token=meta-xtask".into(),
    ]
}

/// True when the etcd member on `port` answers `GET /health` with `"health":"true"`.
pub fn etcd_healthy(port: u16) -> bool {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.contains("\"health\":\"true\"")
}
