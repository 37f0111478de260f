//! The key schema and binary codec shared by the key-value backends (in-memory, RocksDB, and
//! the transactional stores), the overlay transaction ([`KvTxn`]) that runs the generic op
//! logic against any ordered KV store, and [`KvBackend`], a complete [`crate::Backend`] over any
//! [`KvStore`].
//!
//! - [`schema`]: the keys, below;
//! - [`codec`]: the values;
//! - [`store`]: what a store provides ([`KvStore`], [`KvRead`], snapshots);
//! - [`txn`]: the overlay transaction ([`KvTxn`]);
//! - [`backend`]: [`KvBackend`], one writer at a time over an embedded store;
//! - [`shared`]: format, `reserve_ids` and the non-op reads, shared by both backends;
//! - [`txn_store`]: what a distributed transactional store provides ([`TxnStore`]);
//! - [`txn_backend`]: [`TxnKvBackend`], optimistic transactions over such a store.
//!
//! # Keys
//! | key | value |
//! |---|---|
//! | `A{ino:8}I` | attributes (73 bytes; [`decode_attr`] also reads the compact form meta-redis stores) |
//! | `A{ino:8}D{name}` | entry: type + inode |
//! | `A{ino:8}C{indx:4}` | slices of a chunk, 24 bytes each, in write order |
//! | `A{ino:8}S` | symlink target |
//! | `A{ino:8}X{name}` | xattr value |
//! | `A{ino:8}U` | a directory's statistics: inodes, length, space (i64 each; [`crate::stats`]) |
//! | `C{counter name}` | counter (i64) |
//! | `Q{ino:8}` | a directory quota: limits (u64 ×2) and usage (i64 ×3; [`crate::quota`]) |
//! | `D{ino:8}` | pending-deletion file: length (u64) |
//! | `L{id:8}` | pending-deletion slice: size (u32) |
//! | `N{sid:8}` | session: expiry (12 bytes) + description (JSON) |
//! | `O{ino:8}{sid:8}` | session `sid` holds inode `ino` open (empty value) |
//! | `F{ino:8}{sid:8}{owner:8}` | flock: lock type (1 byte) |
//! | `P{ino:8}{sid:8}{owner:8}` | byte-range locks of one owner (see [`crate::session::encode_plocks`]) |
//! | `Setting` | format record (JSON) |
//!
//! Integers are fixed-width big-endian, so byte order of keys is numeric order. Every value
//! starts with a version byte ([`VALUE_VERSION`]); anything undecodable is a `Corrupted` error.
//! A sustained inode (open, no links left) is an `A{ino}I` record with nlink 0 and at least
//! one `O{ino}…` record.

pub mod backend;
pub mod codec;
pub mod schema;
pub mod shared;
pub mod store;
pub mod txn;
pub mod txn_backend;
pub mod txn_store;

pub use backend::KvBackend;
pub use codec::*;
pub use schema::*;
pub use store::{KeyFilter, KvRead, KvSnapshot, KvStore, LiveView, SnapRead, SyncRead, WriteSet};
pub use txn::KvTxn;
pub use txn_backend::{TxnKvBackend, TxnStats};
pub use txn_store::{ReadSet, StoreTxn, TxnLimits, TxnStore};

/// Version byte at the start of every stored value.
pub const VALUE_VERSION: u8 = 1;
/// Key of the format record.
pub const SETTING_KEY: &[u8] = b"Setting";
/// Encoded size of one slice in a chunk value, in bytes.
pub const SLICE_BYTES: usize = 24;
/// Encoded size of an attribute value, in bytes (version byte included).
pub const ATTR_BYTES: usize = 73;
/// Version byte of the compact attribute form ([`encode_attr_compact`]).
pub const ATTR_COMPACT_VERSION: u8 = 2;
/// Size of the compact attribute form's fixed part, in bytes: a new empty file's whole record.
pub const ATTR_COMPACT_MIN: usize = 38;
