#![doc = include_str!("../README.md")]

mod apply;
mod calls;
mod config;
mod conn;
mod error;
pub mod layout;
mod plan;
mod reads;
mod reply;
mod scripts;
mod sessions;
mod spec;

/// The `redis` crate this backend is built on (for [`RedisBackend::query`]).
pub use redis;

pub use crate::apply::{MAX_CALL_BYTES, MAX_CALL_OPS, MAX_ROUND_OPS};
pub use crate::config::{
    DEFAULT_CONNECT_TIMEOUT, DEFAULT_PREFIX, DEFAULT_TIMEOUT, RedisOptions, SCHEME, SCHEME_CLUSTER,
    SCHEME_CLUSTER_TLS, SCHEME_TLS, SCHEME_UNIX, normalize_url, open, parse_url,
};
pub use crate::scripts::Scripting;

use std::fmt;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use async_trait::async_trait;
use meta_core::backend::BackendInfo;
use meta_core::kv::decode_setting;
use meta_core::{
    Attr, Backend, Counter, DirEntry, DirStat, Error, ErrorKind, IdKind, Ino, InodePage, Op,
    OpOutput, Pending, Result, Setting, Slice, Statfs, Timespec, logic,
};
use redis::{Value, cmd, pipe};

use crate::config::Target;
use crate::conn::{Conn, cluster_seed, connect_cluster, connect_single};
use crate::error::{Stage, classify};
use crate::layout::Layout;
use crate::reads::PAGE;
use crate::reply::{bytes, internal, list, not_found, parse_scan, take};
use crate::scripts::{Entry, Library};

/// Most ops one `apply` call accepts and the batcher sends: one round trip of pipelined
/// calls of the library's `batch` entry point ([`MAX_ROUND_OPS`], [`MAX_CALL_OPS`] per
/// call).
pub const MAX_BATCH_OPS: usize = MAX_ROUND_OPS;

/// The Redis backend: one volume (a key prefix) on a standalone server or a Cluster.
///
/// Cheap to clone: clones share the connection. See the crate documentation for the data
/// layout and the Lua library.
#[derive(Clone)]
pub struct RedisBackend {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) conn: Conn,
    pub(crate) layout: Layout,
    /// The keys every library call declares first ([`plan::shared_keys`]), built once.
    pub(crate) shared: [String; 9],
    pub(crate) library: Library,
    /// True when the library is called as Redis Functions, false as scripts.
    pub(crate) functions: AtomicBool,
    /// The URL with its password redacted, for messages.
    pub(crate) target: String,
    /// Reads touch declared keys only (see [`RedisOptions::strict_keys`]).
    pub(crate) strict: AtomicBool,
}

impl fmt::Debug for RedisBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisBackend")
            .field("url", &self.inner.target)
            .field("prefix", &self.inner.layout.tag())
            .field("cluster", &self.inner.conn.is_cluster())
            .field("scripting", &self.inner.scripting())
            .finish()
    }
}

impl RedisBackend {
    pub(crate) async fn connect(
        target: Target,
        opts: RedisOptions,
        shown: String,
    ) -> Result<RedisBackend> {
        let conn = match target {
            Target::Single(u) => {
                let single = connect_single(&u, &opts, &shown).await?;
                if let Some(seed) = cluster_seed(&single, &u, &shown).await? {
                    connect_cluster(vec![seed], &opts, &shown).await?
                } else {
                    single
                }
            }
            Target::Cluster(nodes) => connect_cluster(nodes, &opts, &shown).await?,
        };
        let layout = Layout::new(&opts.prefix);
        let b = RedisBackend {
            inner: Arc::new(Inner {
                conn,
                shared: plan::shared_keys(&layout),
                layout,
                library: Library::new(),
                functions: AtomicBool::new(true),
                target: shown,
                strict: AtomicBool::new(opts.strict_keys),
            }),
        };
        b.inner.load_library_as(opts.scripting).await?;
        Ok(b)
    }

    /// The key layout of this volume.
    pub fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    /// Sends one raw command on the backend's connection; on a Cluster, to the primary
    /// serving the volume's slot (so `SCAN`, `INFO` and commands on the volume's keys reach
    /// the right node). For tools and tests that inspect or repair the stored records; see
    /// [`RedisBackend::layout`] for the key names.
    ///
    /// Errors: `Unavailable` when the server cannot be reached or answers with an error
    /// (WRONGTYPE, ...), `ConfigInvalid` when the ACL user may not run the command.
    pub async fn query(&self, cmd: &redis::Cmd) -> Result<Value> {
        self.inner
            .conn
            .cmd_at(cmd, &self.inner.layout.setting())
            .await
            .map_err(|e| classify(e, Stage::Read, &self.inner.target))
    }

    /// True when connected to a Redis Cluster.
    pub fn is_cluster(&self) -> bool {
        self.inner.conn.is_cluster()
    }

    /// How this client calls the Lua library: Redis Functions or scripts (URL `scripting`,
    /// chosen at open by default).
    pub fn scripting(&self) -> Scripting {
        self.inner.scripting()
    }

    /// The name of the Functions library this build loads (`meta_<hash of its code>`;
    /// `FUNCTION DELETE` it to remove a version no client uses any more).
    pub fn library_name(&self) -> &str {
        &self.inner.library.name
    }

    /// Deletes every key of the volume (`SCAN MATCH {prefix}*` + `UNLINK`, on the node that
    /// serves the volume's slot). Returns the number of keys deleted. Not atomic: do not run
    /// it while clients use the volume.
    ///
    /// Errors: `Unavailable` when the server cannot be reached.
    pub async fn erase(&self) -> Result<u64> {
        let inner = &self.inner;
        let pattern = inner.layout.pattern();
        let route_key = inner.layout.setting();
        let mut cursor: u64 = 0;
        let mut deleted = 0u64;
        loop {
            let mut c = cmd("SCAN");
            c.arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(PAGE);
            let v = inner
                .conn
                .cmd_at(&c, &route_key)
                .await
                .map_err(|e| classify(e, Stage::Read, &inner.target))?;
            let (next, keys) = parse_scan(v)?;
            if !keys.is_empty() {
                let mut u = cmd("UNLINK");
                for k in &keys {
                    u.arg(k);
                }
                let n = inner
                    .conn
                    .cmd(&u)
                    .await
                    .map_err(|e| classify(e, Stage::Write, &inner.target))?;
                deleted += match n {
                    Value::Int(n) => n.max(0) as u64,
                    _ => 0,
                };
            }
            if next == 0 {
                return Ok(deleted);
            }
            cursor = next;
        }
    }
}

#[async_trait]
impl Backend for RedisBackend {
    fn info(&self) -> BackendInfo {
        BackendInfo::new(
            if self.inner.conn.is_cluster() {
                SCHEME_CLUSTER
            } else {
                SCHEME
            },
            MAX_BATCH_OPS,
            true,
        )
    }

    async fn format(&self, setting: &Setting, force: bool) -> Result<()> {
        setting.validate()?;
        let inner = &self.inner;
        let same_or_exists = |old: &Setting| -> Result<()> {
            if old.name == setting.name {
                Ok(())
            } else {
                Err(Error::new(
                    ErrorKind::AlreadyExists,
                    format!(
                        "prefix {} already holds volume {:?}; format with force to erase it",
                        inner.layout.tag(),
                        old.name
                    ),
                ))
            }
        };
        let raw = inner
            .conn
            .cmd(cmd("GET").arg(inner.layout.setting()))
            .await
            .map_err(|e| classify(e, Stage::Read, &inner.target))?;
        if let Some(v) = bytes(raw, "format record")? {
            if !force {
                return same_or_exists(&decode_setting(&v)?);
            }
            self.erase().await?;
        }
        let l = &inner.layout;
        let root = logic::root_attr(Timespec::now());
        let keys = [
            l.setting(),
            l.limits(),
            l.attr(Ino::ROOT),
            l.counter(Counter::NextInode),
            l.counter(Counter::NextChunk),
            l.counter(Counter::UsedSpace),
            l.counter(Counter::TotalInodes),
            l.counter(Counter::NextSession),
            l.counter(Counter::CleanupLease),
            l.dir_stats(),
        ];
        let keys: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
        let record = meta_core::kv::encode_setting(setting);
        // (With statistics, the fourth field that keeps libraries from before
        // `{prefix}statsOwner` off the volume: `Layout::limits`.)
        let limits = format!(
            "{} {} {}{}",
            setting.capacity,
            setting.inodes,
            u8::from(setting.dir_stats),
            if setting.dir_stats { " 1" } else { "" }
        );
        let root = meta_core::kv::encode_attr_compact(&root);
        let reply = match inner
            .call(Entry::Format, &keys, &[&record, limits.as_bytes(), &root])
            .await?
        {
            Value::ServerError(e) => {
                return Err(crate::error::classify_script_error(&e, "format"));
            }
            v => v,
        };
        let mut items = list(reply, "format")?;
        let status = bytes(take(&mut items), "format")?;
        match status.as_deref() {
            Some(b"ok") => Ok(()),
            Some(b"exists") => match bytes(take(&mut items), "format")? {
                Some(v) if !force => same_or_exists(&decode_setting(&v)?),
                _ => Err(Error::new(
                    ErrorKind::Conflict,
                    "another client formatted the volume while it was being erased",
                )),
            },
            _ => Err(internal("format: unexpected reply")),
        }
    }

    async fn load(&self) -> Result<Setting> {
        self.inner.get_setting().await?.ok_or_else(|| {
            not_found(format!(
                "volume {} is not formatted (no format record)",
                self.inner.layout.tag()
            ))
        })
    }

    async fn apply(&self, ops: &[Op]) -> Result<Vec<Result<OpOutput>>> {
        apply::apply(&self.inner, ops).await
    }

    async fn reserve_ids(&self, kind: IdKind, n: u64) -> Result<Range<u64>> {
        if n == 0 || n > i64::MAX as u64 / 2 {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!("cannot reserve {n} IDs"),
            ));
        }
        let inner = &self.inner;
        let c = kind.counter();
        let mut p = pipe();
        p.ignore_errors();
        p.cmd("EXISTS").arg(inner.layout.setting());
        p.cmd("INCRBY").arg(inner.layout.counter(c)).arg(n);
        let mut v = inner
            .conn
            .pipe(&p)
            .await
            .map_err(|e| classify(e, Stage::Write, &inner.target))?;
        let formatted = matches!(take(&mut v), Value::Int(1));
        let end = match take(&mut v) {
            Value::Int(end) => end,
            Value::ServerError(e) if e.details().is_some_and(|d| d.contains("overflow")) => {
                return Err(Error::new(
                    ErrorKind::NoSpace,
                    format!("{} IDs exhausted", c.name()),
                ));
            }
            Value::ServerError(e) if e.code() == "ERR" || e.code() == "WRONGTYPE" => {
                return Err(Error::new(
                    ErrorKind::Corrupted,
                    format!("counter {} is not an integer", c.name()),
                ));
            }
            other => {
                bytes(other, c.name())?;
                return Err(internal("INCRBY: unexpected reply"));
            }
        };
        let start = end - n as i64;
        if !formatted {
            return Err(not_found(format!(
                "volume {} is not formatted (no format record)",
                inner.layout.tag()
            )));
        }
        if start <= 0 {
            return Err(Error::new(
                ErrorKind::Corrupted,
                format!("counter {} was {start}", c.name()),
            ));
        }
        Ok(start as u64..end as u64)
    }

    async fn lookup(&self, parent: Ino, name: &[u8]) -> Result<(Ino, Attr)> {
        self.inner.lookup(parent, name).await
    }

    async fn get_attr(&self, ino: Ino) -> Result<Attr> {
        self.inner.get_attr(ino).await
    }

    async fn read_dir(
        &self,
        ino: Ino,
        after: Option<&[u8]>,
        limit: usize,
        plus: bool,
    ) -> Result<Vec<DirEntry>> {
        self.inner.read_dir(ino, after, limit, plus).await
    }

    async fn read_chunk(&self, ino: Ino, indx: u32) -> Result<Vec<Slice>> {
        self.inner.read_chunk(ino, indx).await
    }

    async fn read_link(&self, ino: Ino) -> Result<Vec<u8>> {
        self.inner.read_link(ino).await
    }

    async fn get_xattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        self.inner.get_xattr(ino, name).await
    }

    async fn list_xattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>> {
        self.inner.list_xattr(ino).await
    }

    async fn statfs(&self) -> Result<Statfs> {
        self.inner.statfs().await
    }

    async fn get_counter(&self, counter: Counter) -> Result<i64> {
        self.inner.get_counter(counter).await
    }

    async fn dir_stats(&self, dirs: &[Ino]) -> Result<Vec<DirStat>> {
        self.inner.dir_stats(dirs).await
    }

    async fn quotas(&self) -> Result<Vec<(Ino, meta_core::Quota)>> {
        self.inner.quotas().await
    }

    async fn scan_inodes(&self, cursor: Option<&[u8]>, limit: usize) -> Result<InodePage> {
        self.inner.scan_inodes(cursor, limit).await
    }

    async fn list_chunks(&self, ino: Ino) -> Result<Vec<(u32, Vec<Slice>)>> {
        self.inner.list_chunks(ino).await
    }

    async fn list_sessions(&self) -> Result<Vec<meta_core::Session>> {
        self.inner.list_sessions().await
    }

    async fn session_holdings(&self, sid: meta_core::Sid) -> Result<meta_core::SessionHoldings> {
        self.inner.session_holdings(sid).await
    }

    async fn list_locks(&self, ino: Ino) -> Result<meta_core::InodeLocks> {
        self.inner.list_locks(ino).await
    }

    async fn list_pending(&self, limit: usize) -> Result<Vec<Pending>> {
        self.inner.list_pending(limit).await
    }
}

/// This backend for a [`meta_core::registry::BackendRegistry`]: schemes `redis`, `rediss`,
/// `redis+cluster`, `rediss+cluster`, `unix`, opened with [`open`] (Cluster URLs that list
/// several nodes are rewritten by [`normalize_url`] first).
pub fn factory() -> meta_core::registry::BackendFactory {
    meta_core::registry::BackendFactory::new(
        vec![
            SCHEME,
            SCHEME_TLS,
            SCHEME_CLUSTER,
            SCHEME_CLUSTER_TLS,
            SCHEME_UNIX,
        ],
        |url| Box::pin(async move { Ok(Arc::new(open(url).await?) as Arc<dyn Backend>) }),
    )
    .with_normalize(normalize_url)
}
