//! The conformance factory of meta-redis: every test gets a fresh volume under its own key
//! prefix on the server named by an environment variable, and its keys are deleted after.

#![allow(dead_code)]

pub mod ops;
pub mod server;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use meta_conformance::{Factory, Fresh, RawTarget, TestVolume, async_trait};
use meta_core::{Backend, Counter};
use meta_redis::RedisBackend;
use redis::Value;

/// Environment variable naming the standalone server (e.g. `redis://127.0.0.1:6379/0`).
pub const STANDALONE_ENV: &str = "META_TEST_REDIS_URL";
/// Environment variable naming a Cluster node (e.g. `redis+cluster://127.0.0.1:7000`).
pub const CLUSTER_ENV: &str = "META_TEST_REDIS_CLUSTER_URL";

/// Makes volumes on the server `env` names; skips when it is unset.
#[derive(Debug, Clone)]
pub struct RedisFactory {
    env: &'static str,
    name: &'static str,
    /// URL parameters added to the server's URL (`""` for none).
    query: &'static str,
}

impl RedisFactory {
    /// Volumes on the standalone server of `META_TEST_REDIS_URL`.
    pub fn standalone() -> Self {
        RedisFactory {
            env: STANDALONE_ENV,
            name: "redis",
            query: "",
        }
    }

    /// Volumes on the standalone server of `META_TEST_REDIS_URL`, opened with
    /// `strict_keys=true`: no script touches a key it does not declare.
    pub fn standalone_strict() -> Self {
        RedisFactory {
            env: STANDALONE_ENV,
            name: "redis-strict",
            query: "strict_keys=true",
        }
    }

    /// Volumes on the Cluster of `META_TEST_REDIS_CLUSTER_URL`.
    pub fn cluster() -> Self {
        RedisFactory {
            env: CLUSTER_ENV,
            name: "redis-cluster",
            query: "",
        }
    }
}

/// The server URL in environment variable `var`, or `None` (the caller skips `test`, saying
/// so on stderr) when it is unset or empty; panics instead under
/// `META_CONFORMANCE_REQUIRE=1`, where a skip is a failure.
pub fn server(var: &str, test: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            if meta_conformance::skips_are_failures() {
                panic!("{test}: {var} is not set and META_CONFORMANCE_REQUIRE=1");
            }
            eprintln!("SKIP meta-redis {test}: {var} is not set");
            None
        }
    }
}

/// A prefix no other test (of this or another process) uses.
pub fn unique_prefix(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "t{tag}-{}-{}-{:08x}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    )
}

/// `url` with `param` (`name=value`) added to its query string.
pub fn with_param(url: &str, param: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{param}")
}

/// `url` with `prefix=` added to its query string.
pub fn with_prefix(url: &str, prefix: &str) -> String {
    with_param(url, &format!("prefix={prefix}"))
}

/// Opens the volume `prefix` on the server of `url`.
pub async fn open(url: &str, prefix: &str) -> anyhow::Result<RedisBackend> {
    let (u, _) = meta_redis::parse_url(&with_prefix(url, prefix))?;
    Ok(meta_redis::open(u).await?)
}

#[async_trait]
impl Factory for RedisFactory {
    fn name(&self) -> &str {
        self.name
    }

    async fn create(&self) -> anyhow::Result<Fresh> {
        match std::env::var(self.env) {
            Ok(url) if !url.is_empty() => {
                let url = if self.query.is_empty() {
                    url
                } else {
                    with_param(&url, self.query)
                };
                Ok(Fresh::Volume(Box::new(RedisVolume {
                    url,
                    prefix: unique_prefix("c"),
                })))
            }
            _ => Ok(Fresh::Skip(format!("{} is not set", self.env))),
        }
    }
}

/// One volume: a key prefix on the server.
pub struct RedisVolume {
    url: String,
    prefix: String,
}

async fn q(b: &RedisBackend, c: &redis::Cmd) -> anyhow::Result<Value> {
    Ok(b.query(c).await?)
}

#[async_trait]
impl TestVolume for RedisVolume {
    async fn open(&self) -> anyhow::Result<Arc<dyn Backend>> {
        Ok(Arc::new(open(&self.url, &self.prefix).await?))
    }

    async fn plant_garbage(&self, target: &RawTarget, garbage: &[u8]) -> anyhow::Result<bool> {
        let b = open(&self.url, &self.prefix).await?;
        let l = b.layout().clone();
        let set = |key: String| {
            let mut c = redis::cmd("SET");
            c.arg(key).arg(garbage);
            c
        };
        match target {
            RawTarget::Attr(ino) => q(&b, &set(l.attr(*ino))).await?,
            RawTarget::Chunk(ino, indx) => q(&b, &set(l.chunk(*ino, *indx))).await?,
            RawTarget::Symlink(ino) => q(&b, &set(l.symlink(*ino))).await?,
            RawTarget::Counter(c) => q(&b, &set(l.counter(*c))).await?,
            RawTarget::Setting => q(&b, &set(l.setting())).await?,
            RawTarget::Xattr(ino, name) => {
                q(
                    &b,
                    redis::cmd("HSET")
                        .arg(l.xattrs(*ino))
                        .arg(name)
                        .arg(garbage),
                )
                .await?
            }
            RawTarget::Entry(parent, name) => {
                // Replace the member `name \0 entry` by `name \0 garbage`.
                let mut min = b"[".to_vec();
                min.extend_from_slice(name);
                min.push(0);
                let mut max = b"(".to_vec();
                max.extend_from_slice(name);
                max.push(1);
                let key = l.entries(*parent);
                let found = q(&b, redis::cmd("ZRANGEBYLEX").arg(&key).arg(min).arg(max)).await?;
                if let Value::Array(ms) = found {
                    for m in ms {
                        if let Value::BulkString(m) = m {
                            q(&b, redis::cmd("ZREM").arg(&key).arg(m)).await?;
                        }
                    }
                }
                let mut member = name.clone();
                member.push(0);
                member.extend_from_slice(garbage);
                q(&b, redis::cmd("ZADD").arg(&key).arg(0).arg(member)).await?
            }
            _ => return Ok(false),
        };
        let _ = Counter::ALL;
        Ok(true)
    }

    async fn cleanup(&self) -> anyhow::Result<()> {
        let b = open(&self.url, &self.prefix).await?;
        b.erase().await?;
        Ok(())
    }
}
