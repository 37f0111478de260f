//! TLS against a private PostgreSQL (`ssl=on`, `hostssl`-only `pg_hba.conf`) and a private
//! MariaDB (`ssl_cert`/`ssl_key`/`ssl_ca`, `require_secure_transport=ON`) whose certificate
//! (SAN `localhost`, `127.0.0.1`) is signed by a throw-away CA made here. What must hold:
//!
//! - full verification (`sslmode=verify-full` / `ssl-mode=VERIFY_IDENTITY`) with the right CA
//!   connects, and a volume works over it (format, mkdir, create, lookup);
//! - with another CA, verification fails with an error naming the certificate — the client
//!   does not fall back to plain text (the server would refuse it anyway; see below);
//! - full verification against an address the certificate does not name (127.0.0.2, where the
//!   server also listens) fails, while CA-only verification (`verify-ca` / `VERIFY_CA`) there
//!   connects: the host name check is what refused;
//! - TLS without verification (`require` / `REQUIRED`) connects, and a client that disables
//!   TLS is refused by the server (`ConfigInvalid`).
//!
//! Each test starts its own server (see `common/server.rs`). It skips, loudly, when the
//! server binaries are missing, unless `META_CONFORMANCE_REQUIRE=1`.

mod common;

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, ensure};
use common::server::{self, DbServer, Engine, ServerTls};
use meta_core::{Backend, Caller, ErrorKind, Ino, Meta, Setting};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, SanType};

/// A CA; returns (certificate PEM, params and key to sign with).
fn make_ca(name: &str) -> Result<(rcgen::Certificate, KeyPair)> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, format!("meta test CA {name}"));
    let key = KeyPair::generate()?;
    let cert = ca.self_signed(&key)?;
    Ok((cert, key))
}

/// The server's TLS material (a certificate for `localhost` and 127.0.0.1 signed by a fresh
/// CA), and the client-side files `ca.pem` (that CA) and `wrong-ca.pem` (another CA) in `dir`.
fn make_certs(dir: &Path) -> Result<ServerTls> {
    let (ca_cert, ca_key) = make_ca("right")?;
    let (wrong_cert, _) = make_ca("wrong")?;
    let mut srv = CertificateParams::new(vec!["localhost".to_string()])?;
    srv.subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    srv.distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let srv_key = KeyPair::generate()?;
    let srv_cert = srv.signed_by(&srv_key, &ca_cert, &ca_key)?;
    std::fs::write(dir.join("ca.pem"), ca_cert.pem())?;
    std::fs::write(dir.join("wrong-ca.pem"), wrong_cert.pem())?;
    Ok(ServerTls {
        cert_pem: srv_cert.pem(),
        key_pem: srv_key.serialize_pem(),
        ca_pem: ca_cert.pem(),
        require: true,
    })
}

/// The URL parameter names of one dialect.
struct Params {
    mode: &'static str,
    ca: &'static str,
    full: &'static str,
    ca_only: &'static str,
    /// TLS without verification.
    require: &'static str,
    disable: &'static str,
}

const PG: Params = Params {
    mode: "sslmode",
    ca: "sslrootcert",
    full: "verify-full",
    ca_only: "verify-ca",
    require: "require",
    disable: "disable",
};

const MYSQL: Params = Params {
    mode: "ssl-mode",
    ca: "ssl-ca",
    full: "VERIFY_IDENTITY",
    ca_only: "VERIFY_CA",
    require: "REQUIRED",
    disable: "DISABLED",
};

/// Opens `url` and makes the first call (which connects): the error, or `None`.
async fn connect_error(url: &str) -> Result<Option<meta_core::Error>> {
    let (u, _) = meta_core::parse_url(url)?;
    let b = meta_sql::open(u)?;
    let r = b.load().await;
    b.close().await;
    Ok(match r {
        // Connected: an unformatted volume (the table prefix is fresh) is NotFound.
        Ok(_) => None,
        Err(e) if e.kind() == ErrorKind::NotFound => None,
        Err(e) => Some(e),
    })
}

/// Full error text: the error and every source.
fn chain(e: &meta_core::Error) -> String {
    let mut s = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        s.push_str(" | ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// A connection that must be refused for a certificate reason: the kind and the message.
fn assert_cert_refused(what: &str, e: Option<meta_core::Error>, words: &[&str]) -> Result<()> {
    let e = e.with_context(|| format!("{what}: connected"))?;
    let text = chain(&e);
    eprintln!("{what}: {:?}: {text}", e.kind());
    ensure!(
        e.kind() == ErrorKind::Unavailable,
        "{what}: kind {:?}: {text}",
        e.kind()
    );
    let lower = text.to_lowercase();
    ensure!(
        words.iter().all(|w| lower.contains(w)),
        "{what}: the message does not name {words:?}: {text}"
    );
    Ok(())
}

async fn tls(engine: Engine, p: Params) -> Result<()> {
    let test = format!("meta-sql {} TLS test", engine.name());
    if let Some(why) = engine.missing() {
        return server::skip(&test, &why);
    }
    let certs = tempfile::tempdir()?;
    let server_tls = make_certs(certs.path())?;
    let srv =
        tokio::task::block_in_place(|| DbServer::start(engine, Some(server_tls), &["127.0.0.2"]))?;
    let ca = certs.path().join("ca.pem");
    let wrong = certs.path().join("wrong-ca.pem");
    let url = |host: &str, mode: &str, ca: Option<&Path>| {
        let mut u = format!(
            "{}?table_prefix=tls_&acquire_timeout=5s&{}={mode}",
            srv.url_at(host),
            p.mode
        );
        if let Some(ca) = ca {
            u.push_str(&format!("&{}={}", p.ca, ca.display()));
        }
        u
    };

    // Full verification with the right CA: a volume round trip over TLS (the server accepts
    // nothing else, so every statement here went over TLS).
    let (u, opts) = meta_core::parse_url(&url("127.0.0.1", p.full, Some(&ca)))?;
    let b = Arc::new(meta_sql::open(u)?);
    Meta::format(&*b, &Setting::new("tls"), false)
        .await
        .with_context(|| format!("{} with the right CA", p.full))?;
    let m = Meta::open(b.clone(), opts, None).await?;
    let me = Caller::new(0, 0);
    let (d, _) = m.mkdir(me.clone(), Ino::ROOT, b"d", 0o755).await?;
    let (f, _) = m.create(me, d, b"f", 0o644).await?;
    ensure!(m.lookup(d, b"f").await?.0 == f, "lookup over TLS");
    ensure!(b.lookup(d, b"f").await?.0 == f, "backend lookup over TLS");
    m.close().await?;
    // `localhost` is named by the certificate too.
    ensure!(
        connect_error(&url("localhost", p.full, Some(&ca)))
            .await?
            .is_none(),
        "{} to localhost with the right CA",
        p.full
    );

    // Another CA: the server's certificate does not chain to it.
    for mode in [p.full, p.ca_only] {
        assert_cert_refused(
            &format!("{mode} with another CA"),
            connect_error(&url("127.0.0.1", mode, Some(&wrong))).await?,
            &["certificate"],
        )?;
    }
    // An address the certificate does not name: full verification refuses, CA-only passes.
    assert_cert_refused(
        &format!("{} to 127.0.0.2", p.full),
        connect_error(&url("127.0.0.2", p.full, Some(&ca))).await?,
        &["certificate", "127.0.0.2"],
    )?;
    ensure!(
        connect_error(&url("127.0.0.2", p.ca_only, Some(&ca)))
            .await?
            .is_none(),
        "{} to 127.0.0.2 with the right CA",
        p.ca_only
    );

    // TLS without verification connects (the same account, only the transport differs
    // from the refused plain connection below).
    ensure!(
        connect_error(&url("127.0.0.1", p.require, None))
            .await?
            .is_none(),
        "{}={} without a CA",
        p.mode,
        p.require
    );
    // No TLS: the server refuses. (MariaDB 10.11 reports require_secure_transport's refusal
    // as error 1045, "Access denied ... (using password: NO)", like its own client sees it.)
    let e = connect_error(&url("127.0.0.1", p.disable, None))
        .await?
        .with_context(|| format!("{}={} connected to a TLS-only server", p.mode, p.disable))?;
    let text = chain(&e);
    eprintln!("{}={}: {:?}: {text}", p.mode, p.disable, e.kind());
    ensure!(
        e.kind() == ErrorKind::ConfigInvalid,
        "{}={}: kind {:?}: {text}",
        p.mode,
        p.disable,
        e.kind()
    );

    b.drop_tables().await?;
    b.close().await;
    drop(srv);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tls_with_a_private_ca() -> Result<()> {
    tls(Engine::Postgres, PG).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_tls_with_a_private_ca() -> Result<()> {
    tls(Engine::MariaDb, MYSQL).await
}
