//! `rediss://` against a real redis-server listening on TLS only, with a throw-away CA: the
//! volume works end to end when the URL names the CA (`tls_ca=`), and the connection is
//! refused when it does not (the certificate does not chain to a public root) or when the
//! client speaks plain TCP to the TLS port.
//!
//! The test starts its own redis-server (from `PATH`) in a temp dir and stops it by PID. It
//! skips, loudly, when redis-server is missing, unless `META_CONFORMANCE_REQUIRE=1`.

#![cfg(feature = "tls")]

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use anyhow::{Context, Result, ensure};
use common::server::{self, Server};
use meta_core::{Backend, Caller, ErrorKind, FileType, Ino, Meta, MetaOptions, Setting};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};

/// Writes `ca.pem`, `server.pem` and `server.key` into `dir`: a CA and a server certificate
/// for 127.0.0.1 signed by it.
fn make_certs(dir: &Path) -> Result<()> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let mut srv = CertificateParams::new(vec!["localhost".to_string()])?;
    srv.subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    let srv_key = KeyPair::generate()?;
    let srv_cert = srv.signed_by(&srv_key, &ca_cert, &ca_key)?;
    std::fs::write(dir.join("ca.pem"), ca_cert.pem())?;
    std::fs::write(dir.join("server.pem"), srv_cert.pem())?;
    std::fs::write(dir.join("server.key"), srv_key.serialize_pem())?;
    Ok(())
}

/// Starts redis-server with only a TLS port; `None` when the binary is missing.
fn start(dir: &Path, port: u16) -> Result<Option<Server>> {
    let port_s = port.to_string();
    server::start(
        dir,
        port,
        &[
            "--bind",
            "127.0.0.1",
            "--port",
            "0",
            "--tls-port",
            &port_s,
            "--tls-cert-file",
            "server.pem",
            "--tls-key-file",
            "server.key",
            "--tls-ca-cert-file",
            "ca.pem",
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
    )
}

async fn open(url: &str) -> meta_core::Result<meta_redis::RedisBackend> {
    let (u, _) = meta_redis::parse_url(url)?;
    meta_redis::open(u).await
}

#[tokio::test]
async fn rediss_with_a_private_ca() -> Result<()> {
    let dir = tempfile::tempdir()?;
    make_certs(dir.path())?;
    let port = server::free_port()?;
    let Some(_server) = start(dir.path(), port)? else {
        ensure!(
            !meta_conformance::skips_are_failures(),
            "redis-server is not installed and META_CONFORMANCE_REQUIRE=1"
        );
        eprintln!("SKIP meta-redis TLS test: redis-server is not installed");
        return Ok(());
    };
    let ca = dir.path().join("ca.pem");
    let base = format!("rediss://127.0.0.1:{port}/0");

    // Trusting the CA: a whole volume round trip over TLS.
    let b = open(&format!("{base}?prefix=tls&tls_ca={}", ca.display())).await?;
    Meta::format(&b, &Setting::new("tls"), false).await?;
    let m = Meta::open(std::sync::Arc::new(b.clone()), MetaOptions::default(), None).await?;
    let me = Caller::new(0, 0);
    let (d, _) = m.mkdir(me.clone(), Ino::ROOT, b"d", 0o755).await?;
    let (f, _) = m.create(me, d, b"f", 0o644).await?;
    ensure!(m.lookup(d, b"f").await?.0 == f, "lookup over TLS");
    let list = b.read_dir(d, None, 10, true).await?;
    ensure!(
        list.len() == 1 && list[0].typ == FileType::Regular,
        "readdir over TLS: {list:?}"
    );
    m.close().await?;

    // Without the CA the server's certificate chains to no trusted root: refused.
    let e = open(&format!("{base}?prefix=tls"))
        .await
        .err()
        .context("an untrusted certificate was accepted")?;
    ensure!(
        matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::ConfigInvalid),
        "untrusted certificate: {e}"
    );
    // Plain TCP to the TLS port does not work either.
    ensure!(
        open(&format!(
            "redis://127.0.0.1:{port}/0?prefix=tls&timeout=2s&connect_timeout=2s"
        ))
        .await
        .is_err(),
        "plain TCP to a TLS port succeeded"
    );
    // tls_ca only makes sense with TLS, and must be readable.
    let e = open(&format!(
        "redis://127.0.0.1:{port}/0?tls_ca={}",
        ca.display()
    ))
    .await
    .err()
    .context("tls_ca on redis:// was accepted")?;
    ensure!(e.kind() == ErrorKind::ConfigInvalid, "{e}");
    let e = open(&format!("{base}?tls_ca=/nonexistent/ca.pem"))
        .await
        .err()
        .context("a missing tls_ca file was accepted")?;
    ensure!(
        e.kind() == ErrorKind::ConfigInvalid && e.to_string().contains("tls_ca"),
        "{e}"
    );
    b.erase().await?;
    Ok(())
}
