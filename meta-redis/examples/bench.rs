//! Create benchmark of the Redis backend, optionally through a loopback proxy that delays
//! every request (an injected round trip): N creates by T concurrent tasks (one directory per
//! task), batched vs `batch=0` (concurrent calls pipelined, and one call in flight: a
//! request/response client); and N creates by one caller through the explicit batch API
//! (`apply_batch`) and through deferred mode (`enqueue` + `flush`), all in the same run.
//!
//! ```text
//! cargo run --release -p meta-redis --example bench -- \
//!     --url redis://127.0.0.1:6379/0 --files 10000 --tasks 64 --rtt-ms 1 [--opts max_inflight=8]
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use meta_conformance::util::{ME, mknod_op};
use meta_core::testing::DelayBackend;
use meta_core::{FileType, Ino, Meta, MetaOptions, Op, Setting, Timespec};
use meta_redis::RedisBackend;

struct Args {
    url: String,
    files: u64,
    tasks: u64,
    rtt_ms: f64,
    /// Engine options for the batched run, e.g. `max_inflight=8&batch_size=256`.
    opts: String,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        url: "redis://127.0.0.1:6379/0".into(),
        files: 10_000,
        tasks: 64,
        rtt_ms: 0.0,
        opts: String::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let v = it
            .next()
            .ok_or_else(|| anyhow::anyhow!("{k} needs a value"))?;
        match k.as_str() {
            "--url" => a.url = v,
            "--files" => a.files = v.parse()?,
            "--tasks" => a.tasks = v.parse()?,
            "--rtt-ms" => a.rtt_ms = v.parse()?,
            "--opts" => a.opts = v,
            other => anyhow::bail!("unknown option {other}"),
        }
    }
    Ok(a)
}

/// Forwards `r` to `w`, each chunk `delay` after it was read (order kept). Plain threads and
/// `std::thread::sleep` (≈ 0.1 ms precise) rather than tokio timers (1 ms granularity).
fn delayed_copy(mut r: std::net::TcpStream, mut w: std::net::TcpStream, delay: Duration) {
    use std::io::{Read, Write};
    if delay.is_zero() {
        // No delay: copy on this thread (a hand-off per chunk costs a thread wake-up).
        let _ = std::io::copy(&mut r, &mut w);
        let _ = w.shutdown(std::net::Shutdown::Both);
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        while let Ok((due, buf)) = rx.recv() {
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if w.write_all(&buf).is_err() {
                break;
            }
        }
        let _ = w.shutdown(std::net::Shutdown::Both);
    });
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let n = match r.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if tx
            .send((Instant::now() + delay, buf[..n].to_vec()))
            .is_err()
        {
            return;
        }
    }
}

/// A loopback proxy to `upstream` that delays every client → server chunk by `delay` (the
/// injected round trip; replies pass at once).
fn delay_proxy(upstream: SocketAddr, delay: Duration) -> anyhow::Result<SocketAddr> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    let addr = l.local_addr()?;
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(c) = c else { continue };
            let Ok(s) = std::net::TcpStream::connect(upstream) else {
                continue;
            };
            let _ = (c.set_nodelay(true), s.set_nodelay(true));
            let (Ok(c2), Ok(s2)) = (c.try_clone(), s.try_clone()) else {
                continue;
            };
            std::thread::spawn(move || delayed_copy(c, s, delay));
            std::thread::spawn(move || delayed_copy(s2, c2, Duration::ZERO));
        }
    });
    Ok(addr)
}

async fn volume(url: &str, extra: &str) -> anyhow::Result<RedisBackend> {
    let prefix = format!("bench{:08x}", rand::random::<u32>());
    let (u, _) = meta_redis::parse_url(&format!("{url}?prefix={prefix}{extra}"))?;
    let b = meta_redis::open(u).await?;
    Meta::format(&b, &Setting::new("bench"), false).await?;
    Ok(b)
}

/// N creates by T tasks through `Meta`; returns (creates/s, apply calls). `serial`: one
/// `apply` in flight at a time.
async fn creates(url: &str, a: &Args, batched: bool, serial: bool) -> anyhow::Result<(f64, u64)> {
    let b = volume(url, "").await?;
    let counted = Arc::new(if serial {
        // One apply call at a time: a request/response client without pipelining.
        DelayBackend::serialized(Arc::new(b.clone()), Duration::ZERO)
    } else {
        DelayBackend::new(Arc::new(b.clone()), Duration::ZERO)
    });
    let mut opts = MetaOptions::default();
    for kv in a.opts.split('&').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        anyhow::ensure!(opts.set(k, v)?, "unknown engine option {k}");
    }
    opts.batchwrite = batched;
    let m = Meta::open(counted.clone(), opts, None).await?;
    let mut dirs = Vec::new();
    for t in 0..a.tasks {
        dirs.push(
            m.mkdir(ME, Ino::ROOT, format!("task{t}").as_bytes(), 0o755)
                .await?
                .0,
        );
    }
    let calls0 = counted.apply_calls();
    let per = a.files / a.tasks;
    let start = Instant::now();
    let mut hs = Vec::new();
    for &d in &dirs {
        let m = m.clone();
        hs.push(tokio::spawn(async move {
            for i in 0..per {
                m.create(ME, d, format!("f{i}").as_bytes(), 0o644).await?;
            }
            anyhow::Ok(())
        }));
    }
    for h in hs {
        h.await??;
    }
    let secs = start.elapsed().as_secs_f64();
    let calls = counted.apply_calls() - calls0;
    m.close().await?;
    b.erase().await?;
    Ok(((per * a.tasks) as f64 / secs, calls))
}

/// The creates of `a` as ops (one directory per task, inode numbers reserved at once).
async fn create_ops(m: &Meta, a: &Args) -> anyhow::Result<Vec<Op>> {
    let dir = m.mkdir(ME, Ino::ROOT, b"explicit", 0o755).await?.0;
    let time = Timespec::now();
    let mut ops = Vec::with_capacity(a.files as usize);
    for i in 0..a.files {
        let ino = m.new_ino().await?;
        ops.push(mknod_op(
            dir,
            format!("f{i}").as_bytes(),
            ino,
            FileType::Regular,
            time,
        ));
    }
    Ok(ops)
}

/// The creates sent by one caller through the explicit batch API (`Meta::apply_batch`, up
/// to the backend's batch limit per call, one call at a time) or, `deferred`, queued with
/// `Meta::enqueue` and waited for with one `Meta::flush`. Returns creates/s.
async fn one_caller(url: &str, a: &Args, deferred: bool) -> anyhow::Result<f64> {
    let b = volume(url, "").await?;
    let m = Meta::open(Arc::new(b.clone()), MetaOptions::default(), None).await?;
    let ops = create_ops(&m, a).await?;
    let start = Instant::now();
    if deferred {
        for op in ops {
            m.enqueue(op).await?;
        }
        m.flush().await?;
    } else {
        let mut ops = ops.into_iter().peekable();
        while ops.peek().is_some() {
            let chunk: Vec<Op> = ops.by_ref().take(meta_redis::MAX_BATCH_OPS).collect();
            for r in m.apply_batch(chunk).await {
                r?;
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    m.close().await?;
    b.erase().await?;
    Ok(a.files as f64 / secs)
}

/// Median round trip of a PING through `url`, in ms.
async fn ping_ms(url: &str) -> anyhow::Result<f64> {
    let b = volume(url, "").await?;
    let mut v = Vec::new();
    for _ in 0..50 {
        let t = Instant::now();
        b.query(&redis::cmd("PING")).await?;
        v.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    b.erase().await?;
    v.sort_by(f64::total_cmp);
    Ok(v[v.len() / 2])
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let url = if a.rtt_ms > 0.0 {
        let u = url::Url::parse(&a.url)?;
        let upstream: SocketAddr = format!(
            "{}:{}",
            u.host_str().unwrap_or("127.0.0.1"),
            u.port().unwrap_or(6379)
        )
        .parse()?;
        let p = delay_proxy(upstream, Duration::from_secs_f64(a.rtt_ms / 1000.0))?;
        format!("redis://{p}{}", u.path())
    } else {
        a.url.clone()
    };
    let rtt = ping_ms(&url).await?;
    println!(
        "{} creates, {} tasks, injected delay {} ms, measured PING round trip {rtt:.2} ms",
        a.files, a.tasks, a.rtt_ms
    );
    let (batched, bcalls) = creates(&url, &a, true, false).await?;
    let (unbatched, ucalls) = creates(&url, &a, false, false).await?;
    let (serial, scalls) = creates(&url, &a, false, true).await?;
    let explicit = one_caller(&url, &a, false).await?;
    let deferred = one_caller(&url, &a, true).await?;
    println!("| mode | creates/s | apply calls |");
    println!("|---|---|---|");
    println!(
        "| {} tasks, batched (default options) | {batched:.0} | {bcalls} |",
        a.tasks
    );
    println!(
        "| {} tasks, `batch=0` (concurrent calls pipelined on the connection) | {unbatched:.0} | {ucalls} |",
        a.tasks
    );
    println!(
        "| `batch=0`, one call in flight (request/response client) | {serial:.0} | {scalls} |"
    );
    println!(
        "| one caller, explicit batches (`apply_batch` of {}) | {explicit:.0} | |",
        meta_redis::MAX_BATCH_OPS
    );
    println!("| one caller, deferred (`enqueue` + `flush`) | {deferred:.0} | |");
    println!(
        "batched / request-response = {:.1}x; explicit / request-response = {:.1}x; \
         deferred / request-response = {:.1}x; batched / batch=0 = {:.1}x",
        batched / serial,
        explicit / serial,
        deferred / serial,
        batched / unbatched,
    );
    Ok(())
}
