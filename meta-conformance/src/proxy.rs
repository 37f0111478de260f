//! A TCP proxy on loopback that can break the connection in controlled ways, for a backend's
//! failure tests against its real server: a connection lost after the server ran a request
//! (the outcome is unknown: `Indeterminate`), a server that stops answering (the backend's
//! timeout), a server gone (`Unavailable`). Used by meta-redis and meta-sql.
//!
//! ```no_run
//! # async fn demo(server: std::net::SocketAddr) -> anyhow::Result<()> {
//! use meta_conformance::proxy::{Mode, Proxy};
//! let proxy = Proxy::start(server).await?;
//! // ... open the backend on `proxy.addr`, run a call ...
//! proxy.set_mode(Mode::Stall); // requests reach the server, replies never come back
//! # Ok(()) }
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Mode {
    /// Forward both ways.
    Pass = 0,
    /// Forward the client's next request to the server, swallow the reply, then close both
    /// connections: the client loses the connection after the server ran the request.
    CutAfterRequest = 1,
    /// Forward requests, swallow every reply, keep the connection open.
    Stall = 2,
}

/// A running proxy; dropping it (or [`Proxy::shutdown`]) closes every connection and the
/// listening port.
pub struct Proxy {
    /// Where clients connect.
    pub addr: SocketAddr,
    mode: Arc<AtomicU8>,
    tasks: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>>,
    listener: JoinHandle<()>,
}

impl Proxy {
    /// Starts a proxy to `upstream` on a free loopback port.
    pub async fn start(upstream: SocketAddr) -> anyhow::Result<Proxy> {
        let l = TcpListener::bind("127.0.0.1:0").await?;
        let addr = l.local_addr()?;
        let mode = Arc::new(AtomicU8::new(Mode::Pass as u8));
        let tasks: Arc<std::sync::Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (m, t) = (mode.clone(), tasks.clone());
        let listener = tokio::spawn(async move {
            while let Ok((c, _)) = l.accept().await {
                let Ok(s) = TcpStream::connect(upstream).await else {
                    continue;
                };
                let h = tokio::spawn(pump(c, s, m.clone()));
                t.lock().unwrap_or_else(|p| p.into_inner()).push(h);
            }
        });
        Ok(Proxy {
            addr,
            mode,
            tasks,
            listener,
        })
    }

    /// Changes what the proxy does from now on.
    pub fn set_mode(&self, m: Mode) {
        self.mode.store(m as u8, Ordering::SeqCst);
    }

    /// Closes every connection and stops listening (new connections are refused).
    pub fn shutdown(&self) {
        self.listener.abort();
        for h in self
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            h.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shutdown();
    }
}

async fn pump(mut c: TcpStream, mut s: TcpStream, mode: Arc<AtomicU8>) {
    let mut cb = vec![0u8; 64 * 1024];
    let mut sb = vec![0u8; 64 * 1024];
    loop {
        tokio::select! {
            r = c.read(&mut cb) => {
                let n = match r { Ok(0) | Err(_) => return, Ok(n) => n };
                if s.write_all(&cb[..n]).await.is_err() { return; }
                if mode.load(Ordering::SeqCst) == Mode::CutAfterRequest as u8 {
                    // Let the server run the request, drain its reply, then hang up.
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    return;
                }
            }
            r = s.read(&mut sb) => {
                let n = match r { Ok(0) | Err(_) => return, Ok(n) => n };
                if mode.load(Ordering::SeqCst) == Mode::Pass as u8
                    && c.write_all(&sb[..n]).await.is_err()
                {
                    return;
                }
            }
        }
    }
}
