//! A redis-server child process for tests that need their own server (TLS, crashes): started
//! from `PATH` in a directory of the test's, stopped (SIGKILL) when dropped.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// A redis-server child, killed when dropped.
pub struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `redis-server ARGS` in `dir` and waits up to 10 s until `port` accepts
/// connections; `None` when the binary is missing.
pub fn start(dir: &Path, port: u16, args: &[&str]) -> Result<Option<Server>> {
    let mut cmd = Command::new("redis-server");
    cmd.current_dir(dir)
        .args(args)
        .args(["--daemonize", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).context("start redis-server"),
    };
    let server = Server(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            bail!("redis-server did not listen on port {port} within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Some(server))
}

/// A free loopback port.
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
