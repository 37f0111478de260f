//! A PostgreSQL or MySQL server that stops answering (frozen, or partitioned without a
//! reset) fails calls after the URL's `timeout` instead of stalling them forever: reads and
//! transactions short of COMMIT with `Unavailable` (nothing applied), an autocommitted
//! write with `Indeterminate`. The server is the real one, behind a proxy that swallows its
//! replies on demand (`meta_conformance::proxy`). Skipped loudly without the servers.

mod common;

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use common::{SqlFactory, SqlVolume};
use meta_conformance::proxy::{Mode, Proxy};
use meta_core::{
    Backend, Caller, Counter, ErrorKind, FileType, Ino, Meta, Op, RenameFlags, Setting, Timespec,
    parse_url,
};
use meta_sql::{Dialect, SqlOptions};

fn mknod(name: &str, ino: u64) -> Op {
    common::mknod(Ino::ROOT, name.to_string(), ino, FileType::Regular)
}

/// The volume's URL with the server's `host:port` replaced by `addr`, plus `extra`.
fn via(v: &SqlVolume, addr: std::net::SocketAddr, extra: &str) -> Result<String> {
    let mut u = url::Url::parse(&v.url)?;
    u.set_ip_host(addr.ip())
        .map_err(|()| anyhow::anyhow!("cannot set the host of {}", v.url))?;
    u.set_port(Some(addr.port()))
        .map_err(|()| anyhow::anyhow!("cannot set the port of {}", v.url))?;
    Ok(format!("{u}&{extra}"))
}

/// The server's address in the volume's URL.
fn server_addr(v: &SqlVolume) -> Result<std::net::SocketAddr> {
    let u = url::Url::parse(&v.url)?;
    let host = u.host_str().context("the server URL has no host")?;
    let port = u.port().context("the server URL has no port")?;
    std::net::ToSocketAddrs::to_socket_addrs(&(host, port))?
        .next()
        .context("the server's host resolves to nothing")
}

/// `call` failed with `kind` within a few timeouts (and did not hang: given up after 20 s).
async fn failed_in_time<T: std::fmt::Debug>(
    what: &str,
    call: impl std::future::Future<Output = meta_core::Result<T>>,
    kind: ErrorKind,
) -> Result<()> {
    let started = Instant::now();
    let Ok(r) = tokio::time::timeout(Duration::from_secs(20), call).await else {
        bail!("{what}: no answer after 20 s, timeout=300ms");
    };
    let took = started.elapsed();
    match r {
        Err(e) if e.kind() == kind => {
            ensure!(
                e.to_string().contains("timeout"),
                "{what}: the message names no timeout: {e}"
            );
            ensure!(
                took < Duration::from_secs(5),
                "{what}: failed after {took:?}, timeout=300ms"
            );
            Ok(())
        }
        other => bail!("{what}: expected {kind:?} after the timeout, got {other:?}"),
    }
}

async fn silent_server(f: SqlFactory) -> Result<()> {
    let v = match f.fresh("") {
        Ok(v) => v,
        Err(reason) => {
            if meta_conformance::skips_are_failures() {
                bail!("{reason} and META_CONFORMANCE_REQUIRE=1 forbids skipping");
            }
            eprintln!("SKIP silent_server on {}: {reason}", f.dialect.scheme());
            return Ok(());
        }
    };
    let direct = v.backend()?;
    Meta::format(&*direct, &Setting::new("stall"), false).await?;
    let proxy = Proxy::start(server_addr(&v)?).await?;
    // (A connection that a frozen server never answers at connect is bounded by
    // acquire_timeout instead: 2 s here, so a stall before the pool had its connection
    // fails this test quickly, with a message that names no timeout parameter.)
    let url = via(&v, proxy.addr, "timeout=300ms&acquire_timeout=2s")?;
    // Each case on a backend of its own (its own pool), warmed up through the proxy while
    // it forwards (a create: the backend then knows the volume has no quota, and takes
    // PostgreSQL's autocommitted path for creates), so the call finds a pooled connection;
    // after a timeout that connection is closed, and a new one would wait for
    // acquire_timeout on the silent server.
    let warmed = std::sync::atomic::AtomicU64::new(200);
    let warm = || async {
        let b = meta_sql::open(parse_url(&url)?.0)?;
        let n = warmed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let r = b.apply(&[mknod(&format!("warm{n}"), n)]).await?;
        ensure!(r[0].is_ok(), "a create through the proxy: {:?}", r[0]);
        // sqlx pings a connection when it goes back to the pool, in a task of its own: let
        // that finish before the replies stop.
        tokio::time::sleep(Duration::from_millis(300)).await;
        anyhow::Ok(b)
    };
    let r = direct.apply(&[mknod("before", 100)]).await?;
    ensure!(r[0].is_ok(), "a create: {:?}", r[0]);

    let b = warm().await?;
    proxy.set_mode(Mode::Stall);
    failed_in_time("a read", b.get_attr(Ino::ROOT), ErrorKind::Unavailable).await?;
    proxy.set_mode(Mode::Pass);
    // Answering again: the same backend works (the connection that timed out was closed,
    // not put back in the pool with a reply still due).
    let r = b.apply(&[mknod("after", 102)]).await?;
    ensure!(r[0].is_ok(), "a create after the stall: {:?}", r[0]);

    let b = warm().await?;
    proxy.set_mode(Mode::Stall);
    let during = [mknod("during", 101)];
    // PostgreSQL sends a batch of creates as one autocommitted statement, which the server
    // may have run; MySQL's transaction never got past BEGIN.
    let (kind, applied_maybe) = match f.dialect {
        Dialect::Postgres => (ErrorKind::Indeterminate, true),
        _ => (ErrorKind::Unavailable, false),
    };
    failed_in_time("a batch", b.apply(&during), kind).await?;
    proxy.set_mode(Mode::Pass);

    // A transaction (a rename is never autocommitted) stops short of COMMIT: nothing applied.
    let b = warm().await?;
    proxy.set_mode(Mode::Stall);
    let rename = Op::Rename {
        parent: Ino::ROOT,
        name: b"before".to_vec(),
        new_parent: Ino::ROOT,
        new_name: b"renamed".to_vec(),
        flags: RenameFlags::NONE,
        caller: Caller::ROOT,
        time: Timespec::now(),
    };
    failed_in_time(
        "a rename",
        b.apply(std::slice::from_ref(&rename)),
        ErrorKind::Unavailable,
    )
    .await?;
    proxy.set_mode(Mode::Pass);

    // A dump's snapshot, on a connection of its own.
    let b = warm().await?;
    let snap = b.snapshot().await?.context("a SQL backend has snapshots")?;
    proxy.set_mode(Mode::Stall);
    failed_in_time(
        "a snapshot read",
        snap.get_counter(Counter::NextInode),
        ErrorKind::Unavailable,
    )
    .await?;
    // Its connection was discarded: the next read fails at once, without waiting.
    match snap.get_counter(Counter::NextInode).await {
        Err(e) if e.kind() == ErrorKind::Unavailable => {}
        other => bail!("a read of a snapshot that timed out: {other:?}"),
    }
    drop(snap);
    // Closing a pool while the server is silent does not wait for it.
    ensure!(
        tokio::time::timeout(Duration::from_secs(10), b.close())
            .await
            .is_ok(),
        "closing the backend waited on the silent server"
    );
    proxy.set_mode(Mode::Pass);

    // What the server holds, read directly: the rename is not there, and "during" only
    // where the outcome was unknown.
    ensure!(
        direct.lookup(Ino::ROOT, b"before").await.is_ok(),
        "the timed-out rename was applied"
    );
    let found = direct.lookup(Ino::ROOT, b"during").await;
    if !applied_maybe {
        ensure!(
            found
                .as_ref()
                .is_err_and(|e| e.kind() == ErrorKind::NotFound),
            "an Unavailable batch was applied: {found:?}"
        );
    }
    proxy.shutdown();
    direct.drop_tables().await?;
    direct.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_postgres_times_out() -> Result<()> {
    silent_server(SqlFactory::postgres()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_mysql_times_out() -> Result<()> {
    silent_server(SqlFactory::mysql()).await
}

/// `timeout` is a server dialect's parameter: a duration above zero; SQLite has none.
#[tokio::test]
async fn timeout_parameter_is_checked() {
    let open = |url: &str| parse_url(url).and_then(|(u, _)| meta_sql::open(u));
    for bad in [
        "postgres://bob@127.0.0.1:1/db?timeout=0",
        "postgres://bob@127.0.0.1:1/db?timeout=soon",
        "mysql://bob@127.0.0.1:1/db?timeout=0s",
        "sqlite:///tmp/meta-sql-timeout.db?timeout=1s",
    ] {
        match open(bad) {
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::ConfigInvalid, "{bad}: {e}");
                assert!(e.to_string().contains("timeout"), "{bad}: {e}");
            }
            Ok(b) => panic!("{bad} opened: {b:?}"),
        }
    }
    for good in [
        "postgres://bob@127.0.0.1:1/db?timeout=250ms",
        "mysql://bob@127.0.0.1:1/db?timeout=1m",
    ] {
        assert!(open(good).is_ok(), "{good}");
    }
    // Options built in code get the URL's ranges (SqlOptions::validate).
    type Edit = fn(&mut SqlOptions);
    let cases: [(&str, Dialect, &str, Edit); 5] = [
        (
            "postgres://bob@127.0.0.1:1/db",
            Dialect::Postgres,
            "timeout",
            |o| o.timeout = Duration::ZERO,
        ),
        (
            "mysql://bob@127.0.0.1:1/db",
            Dialect::MySql,
            "acquire_timeout",
            |o| o.acquire_timeout = Duration::from_secs(2 * 86_400),
        ),
        (
            "sqlite:///tmp/meta-sql-opts.db",
            Dialect::Sqlite,
            "busy_timeout",
            |o| o.busy_timeout = Duration::ZERO,
        ),
        (
            "sqlite:///tmp/meta-sql-opts.db",
            Dialect::Sqlite,
            "max_connections",
            |o| o.max_connections = 0,
        ),
        (
            "postgres://bob@127.0.0.1:1/db",
            Dialect::Postgres,
            "prefix",
            |o| o.table_prefix = "a b".into(),
        ),
    ];
    for (url, dialect, name, edit) in cases {
        let mut o = SqlOptions::new(dialect);
        edit(&mut o);
        let u = parse_url(url).expect("a valid URL").0;
        match meta_sql::open_with(&u, o) {
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::ConfigInvalid, "{name}: {e}");
                assert!(e.to_string().contains(name), "{name}: {e}");
            }
            Ok(b) => panic!("{url} with a bad {name} opened: {b:?}"),
        }
    }
    // SQLite has no `timeout`: a zero there is not looked at.
    let mut o = SqlOptions::new(Dialect::Sqlite);
    o.timeout = Duration::ZERO;
    let u = parse_url("sqlite:///tmp/meta-sql-opts.db")
        .expect("a valid URL")
        .0;
    assert!(meta_sql::open_with(&u, o).is_ok());
}
