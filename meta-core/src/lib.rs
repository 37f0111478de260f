//! # meta-core
//!
//! The engine of **meta**: filesystem metadata (inodes, directory entries, chunk/slice maps,
//! symlinks, xattrs, counters) kept on a database, with identical POSIX semantics on every
//! backend, per-operation atomicity, cross-operation batching and locally primed ID pools.
//!
//! - [`types`]: the data model ([`Ino`], [`Attr`], [`Slice`], [`Setting`], ...).
//! - [`Error`] / [`ErrorKind`]: one error type with an errno mapping.
//! - [`Op`] / [`OpOutput`] and the [`Backend`] trait: the backend contract.
//! - [`logic`]: the POSIX rules, once, over the [`logic::TxnView`] transaction view.
//! - [`kv`]: the key schema and codec of the KV backends, and [`kv::KvBackend`].
//! - [`memory`]: the in-memory reference backend.
//! - [`Meta`]: the high-level API with the batcher, the ID pools and the session.
//! - [`session`]: sessions, open files (sustained inodes) and locks.
//! - [`fsck`] and [`dump`]: consistency check and JSON dump/load of a whole volume;
//!   [`snapshot`]: the whole-volume reads of a dump and the backends' point-in-time views.
//! - [`stats`]: directory statistics ([`stats::DirStat`]) and subtree summaries.
//! - [`quota`]: directory quotas ([`quota::Quota`]), charged inside the ops.
//! - [`testing`]: a latency-adding, call-counting backend wrapper for tests and benchmarks.
//!
//! ```
//! use std::sync::Arc;
//! use meta_core::{Caller, Ino, Meta, MetaOptions, Setting, memory::memory_backend};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> meta_core::Result<()> {
//! let backend = Arc::new(memory_backend());
//! Meta::format(&*backend, &Setting::new("demo"), false).await?;
//! let meta = Meta::open(backend, MetaOptions::default(), None).await?;
//! let me = Caller::new(1000, 1000);
//! let (dir, _) = meta.mkdir(me.clone(), Ino::ROOT, b"docs", 0o755).await?;
//! let (file, attr) = meta.create(me, dir, b"a.txt", 0o644).await?;
//! assert_eq!(attr.nlink, 1);
//! assert_eq!(meta.lookup(dir, b"a.txt").await?.0, file);
//! assert_eq!(meta.getattr(dir).await?.nlink, 2);
//! # Ok(())
//! # }
//! ```

pub mod backend;
mod batch;
pub mod dump;
pub mod error;
pub mod fsck;
mod idpool;
pub mod kv;
pub mod logic;
pub mod memory;
mod meta;
pub mod metrics;
pub mod op;
pub mod options;
pub mod perm;
pub mod quota;
pub mod registry;
pub mod session;
pub mod snapshot;
pub mod stats;
pub mod testing;
pub mod types;

pub use backend::{Backend, BackendInfo, InodePage};
pub use error::{Error, ErrorKind, Result};
pub use idpool::PoolStats;
pub use meta::{Meta, PlockRequest};
pub use op::{
    Caller, Imported, Op, OpOutput, RenameFlags, RestoreRecord, SetAttrMask, SetAttrValues,
    XattrFlags,
};
pub use options::{MetaOptions, VolumeUrl, parse_url};
pub use quota::Quota;
pub use session::{
    InodeLocks, LockKind, LockOwner, LockType, PlockRange, Session, SessionHoldings, SessionInfo,
    Sid,
};
pub use stats::{DirStat, Summary};
pub use types::{
    Attr, CHUNK_SIZE, Counter, DirEntry, Entry, FileType, IdKind, Ino, Pending, Setting, Slice,
    Statfs, Timespec,
};

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
