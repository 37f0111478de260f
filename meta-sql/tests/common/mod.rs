//! The conformance factory of meta-sql, shared by the test files: a fresh SQLite file per
//! volume, or a fresh table prefix per volume on the PostgreSQL / MySQL server named by
//! `META_TEST_POSTGRES_URL` / `META_TEST_MYSQL_URL` (skipped loudly when unset).

#![allow(dead_code)]

pub mod server;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, bail};
use meta_conformance::{Factory, Fresh, RawTarget, TestVolume, async_trait};
use meta_core::{Backend, parse_url};
use meta_sql::{Dialect, RawParam, SqlBackend};

/// Environment variable with the PostgreSQL server URL (as `cargo xtask` sets it).
pub const POSTGRES_ENV: &str = "META_TEST_POSTGRES_URL";
/// Environment variable with the MySQL/MariaDB server URL.
pub const MYSQL_ENV: &str = "META_TEST_MYSQL_URL";

/// Makes isolated volumes of one dialect.
#[derive(Debug, Clone, Copy)]
pub struct SqlFactory {
    pub dialect: Dialect,
}

impl SqlFactory {
    pub fn sqlite() -> Self {
        SqlFactory {
            dialect: Dialect::Sqlite,
        }
    }
    pub fn postgres() -> Self {
        SqlFactory {
            dialect: Dialect::Postgres,
        }
    }
    pub fn mysql() -> Self {
        SqlFactory {
            dialect: Dialect::MySql,
        }
    }

    /// The server URL for this dialect, or why there is none.
    pub fn server_url(&self) -> Result<Option<String>, String> {
        let env = match self.dialect {
            Dialect::Sqlite => return Ok(None),
            Dialect::Postgres => POSTGRES_ENV,
            Dialect::MySql => MYSQL_ENV,
        };
        match std::env::var(env) {
            Ok(u) if !u.is_empty() => Ok(Some(u)),
            _ => Err(format!("{env} is not set")),
        }
    }

    /// A fresh volume: its URL (with extra query parameters `extra`, e.g. `"batch=0"`).
    pub fn fresh(&self, extra: &str) -> Result<SqlVolume, String> {
        static N: AtomicU64 = AtomicU64::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let tag = format!("t{}_{n}_{:x}_", std::process::id(), rand::random::<u32>());
        let (url, dir) = match self.server_url()? {
            None => {
                let dir = tempfile::Builder::new()
                    .prefix("meta-sql-test-")
                    .tempdir()
                    .map_err(|e| format!("temp dir: {e}"))?;
                let url = format!("sqlite://{}", dir.path().join("vol.db").display());
                (url, Some(dir))
            }
            Some(base) => {
                let sep = if base.contains('?') { '&' } else { '?' };
                (format!("{base}{sep}table_prefix={tag}"), None)
            }
        };
        let url = if extra.is_empty() {
            url
        } else {
            let sep = if url.contains('?') { '&' } else { '?' };
            format!("{url}{sep}{extra}")
        };
        Ok(SqlVolume {
            url,
            _dir: dir,
            dialect: self.dialect,
        })
    }
}

/// One volume: a URL (and the temp dir of a SQLite file).
pub struct SqlVolume {
    pub url: String,
    pub dialect: Dialect,
    _dir: Option<tempfile::TempDir>,
}

impl SqlVolume {
    /// A new backend (its own connection pools) on this volume.
    pub fn backend(&self) -> anyhow::Result<Arc<SqlBackend>> {
        let (u, _) = parse_url(&self.url)?;
        Ok(Arc::new(meta_sql::open(u)?))
    }

    /// Runs one statement through a fresh backend (see `SqlBackend::raw_execute`).
    pub async fn raw(&self, sql: &str, params: Vec<RawParam>) -> anyhow::Result<u64> {
        let b = self.backend()?;
        let n = b.raw_execute(sql, params).await?;
        b.close().await;
        Ok(n)
    }
}

/// A create of `name` (a file, a directory, ...) as inode `ino` in `parent`, as root.
pub fn mknod(
    parent: meta_core::Ino,
    name: String,
    ino: u64,
    typ: meta_core::FileType,
) -> meta_core::Op {
    meta_core::Op::Mknod {
        caller: meta_core::Caller::ROOT,
        parent,
        name: name.into_bytes(),
        ino: meta_core::Ino(ino),
        typ,
        mode: 0o644,
        uid: 0,
        gid: 0,
        rdev: 0,
        target: Vec::new(),
        time: meta_core::Timespec::now(),
        opened_by: None,
        imported: None,
    }
}

fn ino(i: meta_core::Ino) -> RawParam {
    RawParam::Int(i.0 as i64)
}

#[async_trait]
impl Factory for SqlFactory {
    fn name(&self) -> &str {
        self.dialect.scheme()
    }

    async fn create(&self) -> anyhow::Result<Fresh> {
        match self.fresh("") {
            Ok(v) => Ok(Fresh::Volume(Box::new(v))),
            Err(reason) => Ok(Fresh::Skip(reason)),
        }
    }
}

#[async_trait]
impl TestVolume for SqlVolume {
    async fn open(&self) -> anyhow::Result<Arc<dyn Backend>> {
        Ok(self.backend()?)
    }

    /// Garbage a SQL row can hold: an unknown type code in `node`/`edge`, a slice list whose
    /// length is not a multiple of 24, NULL where a value is required, a format record that
    /// is not JSON.
    async fn plant_garbage(&self, target: &RawTarget, garbage: &[u8]) -> anyhow::Result<bool> {
        let mut blob = garbage.to_vec();
        if blob.len().is_multiple_of(24) {
            blob.push(0);
        }
        let (sql, params) = match target {
            RawTarget::Attr(i) => ("UPDATE {p}node SET type = 99 WHERE ino = ?", vec![ino(*i)]),
            RawTarget::Entry(p, n) => (
                "UPDATE {p}edge SET type = 99 WHERE parent = ? AND name = ?",
                vec![ino(*p), RawParam::Bytes(n.clone())],
            ),
            RawTarget::Chunk(i, x) => (
                "UPDATE {p}chunk SET slices = ? WHERE ino = ? AND indx = ?",
                vec![RawParam::Bytes(blob), ino(*i), RawParam::Int(i64::from(*x))],
            ),
            RawTarget::Symlink(i) => (
                "UPDATE {p}symlink SET target = NULL WHERE ino = ?",
                vec![ino(*i)],
            ),
            RawTarget::Xattr(i, n) => (
                "UPDATE {p}xattr SET value = NULL WHERE ino = ? AND name = ?",
                vec![ino(*i), RawParam::Bytes(n.clone())],
            ),
            RawTarget::Counter(c) => (
                "UPDATE {p}counter SET value = NULL WHERE name = ?",
                vec![RawParam::Text(c.name().to_string())],
            ),
            RawTarget::Setting => (
                "UPDATE {p}setting SET value = ? WHERE name = ?",
                vec![
                    RawParam::Text(String::from_utf8_lossy(garbage).replace('\0', "")),
                    RawParam::Text("format".into()),
                ],
            ),
            _ => return Ok(false),
        };
        let n = self
            .raw(sql, params)
            .await
            .with_context(|| format!("plant garbage into {target:?}"))?;
        if n != 1 {
            bail!("plant garbage into {target:?}: {n} rows matched");
        }
        Ok(true)
    }

    async fn cleanup(&self) -> anyhow::Result<()> {
        if self.dialect != Dialect::Sqlite {
            let b = self.backend()?;
            b.drop_tables().await?;
            b.close().await;
        }
        Ok(())
    }
}

/// A fresh volume of `f`'s dialect (URL options `extra`), or `None` after a loud SKIP when
/// its server is not configured (an error instead under `META_CONFORMANCE_REQUIRE=1`).
pub fn fresh(f: SqlFactory, extra: &str) -> anyhow::Result<Option<SqlVolume>> {
    match f.fresh(extra) {
        Ok(v) => Ok(Some(v)),
        Err(reason) => {
            if meta_conformance::skips_are_failures() {
                bail!("{reason} and META_CONFORMANCE_REQUIRE=1 forbids skipping");
            }
            eprintln!("SKIP on {}: {reason}", f.dialect.scheme());
            Ok(None)
        }
    }
}

/// Drops the tables of a server volume (a SQLite file goes with its temporary directory).
pub async fn cleanup(v: &SqlVolume) -> anyhow::Result<()> {
    if v.dialect != Dialect::Sqlite {
        let b = v.backend()?;
        b.drop_tables().await?;
        b.close().await;
    }
    Ok(())
}

/// Whether counter row `name` says `n`.
pub async fn counter_is(b: &SqlBackend, name: &str, n: i64) -> anyhow::Result<bool> {
    let rows = b
        .raw_execute(
            "UPDATE {p}counter SET value = value WHERE name = ? AND value = ?",
            vec![RawParam::Text(name.into()), RawParam::Int(n)],
        )
        .await?;
    Ok(rows == 1)
}
