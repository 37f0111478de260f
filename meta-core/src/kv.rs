//! The key schema and binary codec shared by the key-value backends (in-memory, RocksDB, TiKV),
//! the overlay transaction ([`KvTxn`]) that runs the generic op logic against any ordered KV
//! store, and [`KvBackend`], a complete [`Backend`] over any [`KvStore`].
//!
//! # Keys
//! | key | value |
//! |---|---|
//! | `A{ino:8}I` | attributes (73 bytes) |
//! | `A{ino:8}D{name}` | entry: type + inode |
//! | `A{ino:8}C{indx:4}` | slices of a chunk, 24 bytes each, in write order |
//! | `A{ino:8}S` | symlink target |
//! | `A{ino:8}X{name}` | xattr value |
//! | `C{counter name}` | counter (i64) |
//! | `D{ino:8}` | pending-deletion file: length (u64) |
//! | `L{id:8}` | pending-deletion slice: size (u32) |
//! | `Setting` | format record (JSON) |
//!
//! Integers are fixed-width big-endian, so byte order of keys is numeric order. Every value
//! starts with a version byte ([`VALUE_VERSION`]); anything undecodable is a `Corrupted` error.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::backend::{Backend, BackendInfo};
use crate::error::{Error, ErrorKind, Result, err};
use crate::logic::{self, Limits, TxnView};
use crate::op::{Op, OpOutput};
use crate::types::{
    Attr, Counter, DirEntry, Entry, FileType, IdKind, Ino, Pending, Setting, Slice, Statfs,
    Timespec,
};

/// Version byte at the start of every stored value.
pub const VALUE_VERSION: u8 = 1;
/// Key of the format record.
pub const SETTING_KEY: &[u8] = b"Setting";
/// Encoded size of one slice in a chunk value, in bytes.
pub const SLICE_BYTES: usize = 24;
/// Encoded size of an attribute value, in bytes (version byte included).
pub const ATTR_BYTES: usize = 73;

// ----------------------------------------------------------------------------------------------
// Keys

fn inode_key(ino: Ino, tag: u8, extra: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(10 + extra.len());
    k.push(b'A');
    k.extend_from_slice(&ino.0.to_be_bytes());
    k.push(tag);
    k.extend_from_slice(extra);
    k
}

/// `A{ino}I`: attributes.
pub fn attr_key(ino: Ino) -> Vec<u8> {
    inode_key(ino, b'I', &[])
}
/// `A{ino}D{name}`: a directory entry.
pub fn entry_key(parent: Ino, name: &[u8]) -> Vec<u8> {
    inode_key(parent, b'D', name)
}
/// `A{ino}D`: prefix of all entries of a directory.
pub fn entry_prefix(parent: Ino) -> Vec<u8> {
    inode_key(parent, b'D', &[])
}
/// `A{ino}C{indx}`: a chunk.
pub fn chunk_key(ino: Ino, indx: u32) -> Vec<u8> {
    inode_key(ino, b'C', &indx.to_be_bytes())
}
/// `A{ino}C`: prefix of all chunks of an inode.
pub fn chunk_prefix(ino: Ino) -> Vec<u8> {
    inode_key(ino, b'C', &[])
}
/// `A{ino}S`: symlink target.
pub fn symlink_key(ino: Ino) -> Vec<u8> {
    inode_key(ino, b'S', &[])
}
/// `A{ino}X{name}`: an xattr.
pub fn xattr_key(ino: Ino, name: &[u8]) -> Vec<u8> {
    inode_key(ino, b'X', name)
}
/// `A{ino}X`: prefix of all xattrs of an inode.
pub fn xattr_prefix(ino: Ino) -> Vec<u8> {
    inode_key(ino, b'X', &[])
}
/// `C{name}`: a counter.
pub fn counter_key(c: Counter) -> Vec<u8> {
    let mut k = vec![b'C'];
    k.extend_from_slice(c.name().as_bytes());
    k
}
/// `D{ino}` / `L{id}`: a pending-deletion record.
pub fn pending_key(p: Pending) -> Vec<u8> {
    match p {
        Pending::File { ino, .. } => {
            let mut k = vec![b'D'];
            k.extend_from_slice(&ino.0.to_be_bytes());
            k
        }
        Pending::Slice { id, .. } => {
            let mut k = vec![b'L'];
            k.extend_from_slice(&id.to_be_bytes());
            k
        }
    }
}

/// The smallest key greater than every key starting with `prefix` (exclusive scan end).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff; prefix.len() + 1]
}

/// Parses the inode of an `A{ino}...` key.
pub fn key_ino(key: &[u8]) -> Option<Ino> {
    if key.len() < 10 || key[0] != b'A' {
        return None;
    }
    Some(Ino(u64::from_be_bytes(key[1..9].try_into().ok()?)))
}

// ----------------------------------------------------------------------------------------------
// Values

struct Reader<'a> {
    buf: &'a [u8],
    what: &'a str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], what: &'a str) -> Result<Self> {
        match buf.first() {
            Some(&VALUE_VERSION) => Ok(Reader {
                buf: &buf[1..],
                what,
            }),
            Some(v) => Err(err::corrupted(format!("{what}: unknown value version {v}"))),
            None => Err(err::corrupted(format!("{what}: empty value"))),
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(err::corrupted(format!(
                "{}: value truncated ({} bytes left, {n} needed)",
                self.what,
                self.buf.len()
            )));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().map_err(|_| self.bad())?,
        ))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().map_err(|_| self.bad())?,
        ))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().map_err(|_| self.bad())?,
        ))
    }
    fn time(&mut self) -> Result<Timespec> {
        let sec = self.u64()? as i64;
        let nsec = self.u32()?;
        Timespec::new(sec, nsec)
            .map_err(|_| err::corrupted(format!("{}: bad nanoseconds", self.what)))
    }
    fn bad(&self) -> Error {
        err::corrupted(format!("{}: bad value", self.what))
    }
    fn finish(self) -> Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(err::corrupted(format!(
                "{}: {} trailing bytes",
                self.what,
                self.buf.len()
            )))
        }
    }
    fn rest(self) -> &'a [u8] {
        self.buf
    }
}

fn put_time(out: &mut Vec<u8>, t: Timespec) {
    out.extend_from_slice(&(t.sec as u64).to_be_bytes());
    out.extend_from_slice(&t.nsec.to_be_bytes());
}

/// Encodes attributes (73 bytes).
pub fn encode_attr(a: &Attr) -> Vec<u8> {
    let mut v = Vec::with_capacity(ATTR_BYTES);
    v.push(VALUE_VERSION);
    v.push(a.typ.code());
    v.extend_from_slice(&a.mode.to_be_bytes());
    v.extend_from_slice(&a.uid.to_be_bytes());
    v.extend_from_slice(&a.gid.to_be_bytes());
    v.extend_from_slice(&a.rdev.to_be_bytes());
    put_time(&mut v, a.atime);
    put_time(&mut v, a.mtime);
    put_time(&mut v, a.ctime);
    v.extend_from_slice(&a.nlink.to_be_bytes());
    v.extend_from_slice(&a.length.to_be_bytes());
    v.extend_from_slice(&a.parent.0.to_be_bytes());
    v.push(a.flags);
    v
}

/// Decodes attributes; `Corrupted` on any malformed input.
pub fn decode_attr(buf: &[u8]) -> Result<Attr> {
    let mut r = Reader::new(buf, "attr")?;
    let a = Attr {
        typ: FileType::from_code(r.u8()?)?,
        mode: r.u16()?,
        uid: r.u32()?,
        gid: r.u32()?,
        rdev: r.u32()?,
        atime: r.time()?,
        mtime: r.time()?,
        ctime: r.time()?,
        nlink: r.u32()?,
        length: r.u64()?,
        parent: Ino(r.u64()?),
        flags: r.u8()?,
    };
    r.finish()?;
    Ok(a)
}

/// Encodes an entry value (10 bytes).
pub fn encode_entry(e: Entry) -> Vec<u8> {
    let mut v = Vec::with_capacity(10);
    v.push(VALUE_VERSION);
    v.push(e.typ.code());
    v.extend_from_slice(&e.ino.0.to_be_bytes());
    v
}

/// Decodes an entry value.
pub fn decode_entry(buf: &[u8]) -> Result<Entry> {
    let mut r = Reader::new(buf, "entry")?;
    let typ = FileType::from_code(r.u8()?)?;
    let ino = Ino(r.u64()?);
    r.finish()?;
    if ino == Ino::ZERO {
        return Err(err::corrupted("entry: points to inode 0"));
    }
    Ok(Entry { ino, typ })
}

/// Encodes one slice (24 bytes) onto `out`.
pub fn encode_slice(out: &mut Vec<u8>, s: &Slice) {
    out.extend_from_slice(&s.pos.to_be_bytes());
    out.extend_from_slice(&s.id.to_be_bytes());
    out.extend_from_slice(&s.size.to_be_bytes());
    out.extend_from_slice(&s.off.to_be_bytes());
    out.extend_from_slice(&s.len.to_be_bytes());
}

/// Encodes a chunk value (version byte + 24 bytes per slice).
pub fn encode_chunk(slices: &[Slice]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + SLICE_BYTES * slices.len());
    v.push(VALUE_VERSION);
    for s in slices {
        encode_slice(&mut v, s);
    }
    v
}

/// Decodes a chunk value.
pub fn decode_chunk(buf: &[u8]) -> Result<Vec<Slice>> {
    let mut r = Reader::new(buf, "chunk")?;
    if r.buf.len() % SLICE_BYTES != 0 {
        return Err(err::corrupted(format!(
            "chunk: {} bytes is not a multiple of {SLICE_BYTES}",
            r.buf.len()
        )));
    }
    let mut out = Vec::with_capacity(r.buf.len() / SLICE_BYTES);
    while !r.buf.is_empty() {
        out.push(Slice {
            pos: r.u32()?,
            id: r.u64()?,
            size: r.u32()?,
            off: r.u32()?,
            len: r.u32()?,
        });
    }
    Ok(out)
}

/// Encodes a byte-string value (symlink target, xattr value).
pub fn encode_bytes(b: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + b.len());
    v.push(VALUE_VERSION);
    v.extend_from_slice(b);
    v
}

/// Decodes a byte-string value.
pub fn decode_bytes(buf: &[u8], what: &str) -> Result<Vec<u8>> {
    Ok(Reader::new(buf, what)?.rest().to_vec())
}

/// Encodes a counter (i64).
pub fn encode_counter(n: i64) -> Vec<u8> {
    let mut v = Vec::with_capacity(9);
    v.push(VALUE_VERSION);
    v.extend_from_slice(&n.to_be_bytes());
    v
}

/// Decodes a counter.
pub fn decode_counter(buf: &[u8]) -> Result<i64> {
    let mut r = Reader::new(buf, "counter")?;
    let n = r.u64()? as i64;
    r.finish()?;
    Ok(n)
}

/// Encodes a pending-deletion record's value.
pub fn encode_pending(p: Pending) -> Vec<u8> {
    let mut v = vec![VALUE_VERSION];
    match p {
        Pending::File { length, .. } => v.extend_from_slice(&length.to_be_bytes()),
        Pending::Slice { size, .. } => v.extend_from_slice(&size.to_be_bytes()),
    }
    v
}

/// Decodes a pending-deletion record from its key and value.
pub fn decode_pending(key: &[u8], val: &[u8]) -> Result<Pending> {
    let id = key
        .get(1..9)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
        .filter(|_| key.len() == 9)
        .ok_or_else(|| err::corrupted("pending: bad key"))?;
    let mut r = Reader::new(val, "pending")?;
    let p = match key[0] {
        b'D' => Pending::File {
            ino: Ino(id),
            length: r.u64()?,
        },
        b'L' => Pending::Slice { id, size: r.u32()? },
        _ => return Err(err::corrupted("pending: bad key")),
    };
    r.finish()?;
    Ok(p)
}

/// Encodes the format record.
pub fn encode_setting(s: &Setting) -> Vec<u8> {
    encode_bytes(&s.to_json())
}

/// Decodes the format record (`Corrupted`, or `Unsupported` for a newer version).
pub fn decode_setting(buf: &[u8]) -> Result<Setting> {
    Setting::from_json(&decode_bytes(buf, "setting")?)
}

// ----------------------------------------------------------------------------------------------
// Stores and the overlay transaction

/// A write set: key → new value, or `None` for a delete. Applied atomically by
/// [`KvStore::commit`].
pub type WriteSet = BTreeMap<Vec<u8>, Option<Vec<u8>>>;

/// Async read access to an ordered KV store (a snapshot or a transaction).
#[async_trait]
pub trait KvRead: Send + Sync {
    /// The value of `key`, or `None`.
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Pairs with `start <= key < end`, in key order, at most `limit`.
    async fn scan(&self, start: &[u8], end: &[u8], limit: usize)
    -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
}

/// A synchronous ordered KV store with atomic multi-key commits: what [`KvBackend`] needs.
///
/// Implementations must make `commit` all-or-nothing and durable as configured, and report
/// failures with a classified [`ErrorKind`]: `Unavailable` when nothing was written,
/// `Indeterminate` when the write may have reached the disk (e.g. a WAL I/O error).
pub trait KvStore: Send + Sync + Debug + 'static {
    /// The value of `key`, or `None`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Pairs with `start <= key < end`, in key order, at most `limit`.
    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
    /// Applies every write of `writes` atomically.
    fn commit(&self, writes: WriteSet) -> Result<()>;
    /// True when calls block on I/O, so [`KvBackend`] runs them on tokio's blocking pool
    /// instead of an async worker thread. Default true.
    fn is_blocking(&self) -> bool {
        true
    }
    /// Static facts: scheme, batch limit, durability.
    fn info(&self) -> BackendInfo;
    /// A consistent read-only view for reads that touch several keys (readdir with attributes,
    /// lookup). The default reads the live store, which is consistent only for stores whose
    /// calls do not block ([`KvStore::is_blocking`] false): [`KvBackend`] holds its writer lock
    /// around their reads. Stores with snapshots (RocksDB) should return one.
    fn snapshot(&self) -> Result<Box<dyn KvSnapshot + '_>> {
        Ok(Box::new(LiveView(self)))
    }
}

/// A read-only, point-in-time view of a [`KvStore`].
pub trait KvSnapshot: Send + Sync {
    /// The value of `key`, or `None`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Pairs with `start <= key < end`, in key order, at most `limit`.
    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>>;
}

/// The live store seen as a [`KvSnapshot`] (the default of [`KvStore::snapshot`]).
#[derive(Debug)]
pub struct LiveView<'a, S: ?Sized>(pub &'a S);

impl<S: KvStore + ?Sized> KvSnapshot for LiveView<'_, S> {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.0.get(key)
    }
    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.0.scan(start, end, limit)
    }
}

/// Adapts a [`KvSnapshot`] to [`KvRead`].
pub struct SnapRead<'a>(pub &'a dyn KvSnapshot);

#[async_trait]
impl KvRead for SnapRead<'_> {
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.0.get(key)
    }
    async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.0.scan(start, end, limit)
    }
}

/// Adapts a [`KvStore`] to [`KvRead`].
#[derive(Debug)]
pub struct SyncRead<'a, S: ?Sized>(pub &'a S);

#[async_trait]
impl<S: KvStore + ?Sized> KvRead for SyncRead<'_, S> {
    async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.0.get(key)
    }
    async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        self.0.scan(start, end, limit)
    }
}

/// The generic op logic's view over a [`KvRead`]: reads see the underlying store overlaid by
/// the writes of earlier ops of the batch and of the current op; writes are buffered. Each op's
/// writes live in their own layer until `release_savepoint` folds them into the batch layer, or
/// `rollback_to_savepoint` drops them.
pub struct KvTxn<'a, R: KvRead + ?Sized> {
    reader: &'a R,
    batch: WriteSet,
    op: WriteSet,
}

impl<'a, R: KvRead + ?Sized> KvTxn<'a, R> {
    /// A transaction with no writes yet.
    pub fn new(reader: &'a R) -> Self {
        KvTxn {
            reader,
            batch: WriteSet::new(),
            op: WriteSet::new(),
        }
    }

    /// The writes of every released op (what to commit).
    pub fn into_writes(mut self) -> WriteSet {
        let op = std::mem::take(&mut self.op);
        self.batch.extend(op);
        self.batch
    }

    /// Reads a key through the overlay.
    pub async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if let Some(v) = self.op.get(key) {
            return Ok(v.clone());
        }
        if let Some(v) = self.batch.get(key) {
            return Ok(v.clone());
        }
        self.reader.get(key).await
    }

    /// Buffers a write (`None` deletes).
    pub fn set(&mut self, key: Vec<u8>, value: Option<Vec<u8>>) {
        self.op.insert(key, value);
    }

    /// Scans `[start, end)` through the overlay, at most `limit` pairs.
    pub async fn scan(
        &self,
        start: &[u8],
        end: &[u8],
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        if limit == 0 || start >= end {
            return Ok(Vec::new());
        }
        let range = (
            std::ops::Bound::Included(start.to_vec()),
            std::ops::Bound::Excluded(end.to_vec()),
        );
        let mut overlay: BTreeMap<&[u8], &Option<Vec<u8>>> = BTreeMap::new();
        for (k, v) in self.batch.range::<Vec<u8>, _>(range.clone()) {
            overlay.insert(k, v);
        }
        for (k, v) in self.op.range::<Vec<u8>, _>(range) {
            overlay.insert(k, v);
        }
        // Fetching `limit + deletes` underlying pairs guarantees `limit` survivors when they
        // exist, and every survivor among the first `limit` merged pairs was fetched.
        let deletes = overlay.values().filter(|v| v.is_none()).count();
        let base = self
            .reader
            .scan(start, end, limit.saturating_add(deletes))
            .await?;
        let base_full = base.len() == limit.saturating_add(deletes);
        let last_base = base.last().map(|(k, _)| k.clone());
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> = base.into_iter().collect();
        for (k, v) in overlay {
            if base_full && last_base.as_deref().is_some_and(|l| k > l) {
                continue;
            }
            match v {
                Some(v) => {
                    merged.insert(k.to_vec(), v.clone());
                }
                None => {
                    merged.remove(k);
                }
            }
        }
        Ok(merged.into_iter().take(limit).collect())
    }

    async fn scan_prefix(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
        let start = match after {
            Some(a) => {
                let mut s = prefix.to_vec();
                s.extend_from_slice(a);
                s.push(0);
                s
            }
            None => prefix.to_vec(),
        };
        self.scan(&start, &prefix_end(prefix), limit).await
    }
}

#[async_trait]
impl<R: KvRead + ?Sized> TxnView for KvTxn<'_, R> {
    async fn get_attr(&mut self, ino: Ino) -> Result<Option<Attr>> {
        self.get(&attr_key(ino))
            .await?
            .map(|v| decode_attr(&v).map_err(|e| e.context_prefix(format!("inode {ino}"))))
            .transpose()
    }
    async fn put_attr(&mut self, ino: Ino, attr: &Attr) -> Result<()> {
        self.set(attr_key(ino), Some(encode_attr(attr)));
        Ok(())
    }
    async fn delete_inode(&mut self, ino: Ino) -> Result<()> {
        self.set(attr_key(ino), None);
        self.set(symlink_key(ino), None);
        for name in TxnView::list_xattr(self, ino).await? {
            self.set(xattr_key(ino, &name), None);
        }
        Ok(())
    }
    async fn get_entry(&mut self, parent: Ino, name: &[u8]) -> Result<Option<Entry>> {
        self.get(&entry_key(parent, name))
            .await?
            .map(|v| decode_entry(&v))
            .transpose()
    }
    async fn put_entry(&mut self, parent: Ino, name: &[u8], entry: Entry) -> Result<()> {
        self.set(entry_key(parent, name), Some(encode_entry(entry)));
        Ok(())
    }
    async fn delete_entry(&mut self, parent: Ino, name: &[u8]) -> Result<()> {
        self.set(entry_key(parent, name), None);
        Ok(())
    }
    async fn scan_entries(
        &mut self,
        parent: Ino,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Entry)>> {
        let prefix = entry_prefix(parent);
        self.scan_prefix(&prefix, after, limit)
            .await?
            .into_iter()
            .map(|(k, v)| Ok((k[prefix.len()..].to_vec(), decode_entry(&v)?)))
            .collect()
    }
    async fn get_chunk(&mut self, ino: Ino, indx: u32) -> Result<Vec<Slice>> {
        match self.get(&chunk_key(ino, indx)).await? {
            Some(v) => decode_chunk(&v),
            None => Ok(Vec::new()),
        }
    }
    async fn put_chunk(&mut self, ino: Ino, indx: u32, slices: &[Slice]) -> Result<()> {
        let v = (!slices.is_empty()).then(|| encode_chunk(slices));
        self.set(chunk_key(ino, indx), v);
        Ok(())
    }
    async fn append_slice(&mut self, ino: Ino, indx: u32, slice: Slice) -> Result<()> {
        let key = chunk_key(ino, indx);
        let mut v = match self.get(&key).await? {
            Some(v) => {
                decode_chunk(&v)?;
                v
            }
            None => vec![VALUE_VERSION],
        };
        encode_slice(&mut v, &slice);
        self.set(key, Some(v));
        Ok(())
    }
    async fn chunk_indexes(&mut self, ino: Ino) -> Result<Vec<u32>> {
        let prefix = chunk_prefix(ino);
        self.scan_prefix(&prefix, None, usize::MAX)
            .await?
            .into_iter()
            .map(|(k, _)| {
                k[prefix.len()..]
                    .try_into()
                    .map(u32::from_be_bytes)
                    .map_err(|_| err::corrupted(format!("chunk key of inode {ino}")))
            })
            .collect()
    }
    async fn get_symlink(&mut self, ino: Ino) -> Result<Option<Vec<u8>>> {
        self.get(&symlink_key(ino))
            .await?
            .map(|v| decode_bytes(&v, "symlink"))
            .transpose()
    }
    async fn put_symlink(&mut self, ino: Ino, target: &[u8]) -> Result<()> {
        self.set(symlink_key(ino), Some(encode_bytes(target)));
        Ok(())
    }
    async fn get_xattr(&mut self, ino: Ino, name: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get(&xattr_key(ino, name))
            .await?
            .map(|v| decode_bytes(&v, "xattr"))
            .transpose()
    }
    async fn put_xattr(&mut self, ino: Ino, name: &[u8], value: &[u8]) -> Result<()> {
        self.set(xattr_key(ino, name), Some(encode_bytes(value)));
        Ok(())
    }
    async fn delete_xattr(&mut self, ino: Ino, name: &[u8]) -> Result<()> {
        self.set(xattr_key(ino, name), None);
        Ok(())
    }
    async fn list_xattr(&mut self, ino: Ino) -> Result<Vec<Vec<u8>>> {
        let prefix = xattr_prefix(ino);
        Ok(self
            .scan_prefix(&prefix, None, usize::MAX)
            .await?
            .into_iter()
            .map(|(k, _)| k[prefix.len()..].to_vec())
            .collect())
    }
    async fn get_counter(&mut self, counter: Counter) -> Result<i64> {
        match self.get(&counter_key(counter)).await? {
            Some(v) => decode_counter(&v),
            None => Ok(0),
        }
    }
    async fn add_counter(&mut self, counter: Counter, delta: i64) -> Result<()> {
        let n = self.get_counter(counter).await?;
        self.set(
            counter_key(counter),
            Some(encode_counter(n.saturating_add(delta))),
        );
        Ok(())
    }
    async fn put_pending(&mut self, pending: Pending) -> Result<()> {
        self.set(pending_key(pending), Some(encode_pending(pending)));
        Ok(())
    }
    async fn has_pending(&mut self, pending: Pending) -> Result<bool> {
        Ok(self.get(&pending_key(pending)).await?.is_some())
    }
    async fn delete_pending(&mut self, pending: Pending) -> Result<()> {
        self.set(pending_key(pending), None);
        Ok(())
    }
    async fn savepoint(&mut self) -> Result<()> {
        let op = std::mem::take(&mut self.op);
        self.batch.extend(op);
        Ok(())
    }
    async fn release_savepoint(&mut self) -> Result<()> {
        // Keeping the op's writes is the same step as starting the next op: merge its layer.
        self.savepoint().await
    }
    async fn rollback_to_savepoint(&mut self) -> Result<()> {
        self.op.clear();
        Ok(())
    }
}

// ----------------------------------------------------------------------------------------------
// The generic KV backend

/// How many raw keys one page of an inode scan reads.
const SCAN_PAGE: usize = 1024;

/// A complete [`Backend`] over any [`KvStore`]: one writer at a time applies a batch through a
/// [`KvTxn`] and commits every surviving op's writes with one `commit` (one RocksDB WriteBatch,
/// one BTreeMap update). Calls of blocking stores run on tokio's blocking pool.
#[derive(Debug)]
pub struct KvBackend<S: KvStore> {
    store: Arc<S>,
    writer: Arc<Mutex<()>>,
}

impl<S: KvStore> Clone for KvBackend<S> {
    fn clone(&self) -> Self {
        KvBackend {
            store: self.store.clone(),
            writer: self.writer.clone(),
        }
    }
}

fn lock_writer(m: &Mutex<()>) -> std::sync::MutexGuard<'_, ()> {
    // A panic while holding the lock cannot leave the store half-written (commit is atomic),
    // so a poisoned lock is still safe to use.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<S: KvStore> KvBackend<S> {
    /// Wraps a store.
    pub fn new(store: S) -> Self {
        KvBackend {
            store: Arc::new(store),
            writer: Arc::new(Mutex::new(())),
        }
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// Runs `f` against the store: on the blocking pool for blocking stores, inline otherwise.
    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&S, &Mutex<()>) -> Result<T> + Send + 'static,
    {
        let store = self.store.clone();
        let writer = self.writer.clone();
        if store.is_blocking() {
            tokio::task::spawn_blocking(move || f(&store, &writer))
                .await
                .map_err(|e| Error::new(ErrorKind::Internal, "store task failed").with_source(e))?
        } else {
            f(&store, &writer)
        }
    }

    /// Runs a read through the generic logic on a consistent view: a store snapshot, or the
    /// live store under the writer lock for stores that do not block.
    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'a> FnOnce(
                &'a mut KvTxn<'a, SnapRead<'a>>,
            ) -> futures::future::BoxFuture<'a, Result<T>>
            + Send
            + 'static,
    {
        self.run(move |store, writer| {
            let _g = (!store.is_blocking()).then(|| lock_writer(writer));
            let snap = store.snapshot()?;
            let reader = SnapRead(&*snap);
            let mut txn = KvTxn::new(&reader);
            futures::executor::block_on(f(&mut txn))
        })
        .await
    }
}

fn load_setting<S: KvStore + ?Sized>(store: &S) -> Result<Setting> {
    match store.get(SETTING_KEY)? {
        Some(v) => decode_setting(&v),
        None => Err(Error::new(
            ErrorKind::NotFound,
            "volume is not formatted (no format record)",
        )),
    }
}

fn read_counter<S: KvStore + ?Sized>(store: &S, c: Counter) -> Result<i64> {
    match store.get(&counter_key(c))? {
        Some(v) => decode_counter(&v),
        None => Ok(0),
    }
}

#[async_trait]
impl<S: KvStore> Backend for KvBackend<S> {
    fn info(&self) -> BackendInfo {
        self.store.info()
    }

    /// One: batches are applied by a single writer, one at a time.
    fn preferred_inflight(&self) -> usize {
        1
    }

    async fn format(&self, setting: &Setting, force: bool) -> Result<()> {
        setting.validate()?;
        let setting = setting.clone();
        self.run(move |store, writer| {
            let _g = lock_writer(writer);
            let mut writes = WriteSet::new();
            if let Some(v) = store.get(SETTING_KEY)? {
                if !force {
                    let old = decode_setting(&v)?;
                    if old.name == setting.name {
                        return Ok(());
                    }
                    return Err(Error::new(
                        ErrorKind::AlreadyExists,
                        format!(
                            "store already holds volume {:?}; format with force to erase it",
                            old.name
                        ),
                    ));
                }
                // Erase everything, page by page.
                let mut start = Vec::new();
                loop {
                    let page = store.scan(&start, &[0xff; 16], SCAN_PAGE)?;
                    let Some((last, _)) = page.last() else { break };
                    start = last.clone();
                    start.push(0);
                    let n = page.len();
                    for (k, _) in page {
                        writes.insert(k, None);
                    }
                    if n < SCAN_PAGE {
                        break;
                    }
                }
            }
            let now = Timespec::now();
            let root = logic::root_attr(now);
            writes.insert(SETTING_KEY.to_vec(), Some(encode_setting(&setting)));
            writes.insert(attr_key(Ino::ROOT), Some(encode_attr(&root)));
            for (c, v) in [
                (Counter::NextInode, 2),
                (Counter::NextChunk, 1),
                (Counter::UsedSpace, root.space() as i64),
                (Counter::TotalInodes, 1),
            ] {
                writes.insert(counter_key(c), Some(encode_counter(v)));
            }
            store.commit(writes)
        })
        .await
    }

    async fn load(&self) -> Result<Setting> {
        self.run(|store, _| load_setting(store)).await
    }

    async fn apply(&self, ops: &[Op]) -> Result<Vec<Result<OpOutput>>> {
        if ops.is_empty() {
            return Ok(Vec::new());
        }
        let ops = ops.to_vec();
        self.run(move |store, writer| {
            let _g = lock_writer(writer);
            let limits = Limits::from(&load_setting(store)?);
            let reader = SyncRead(store);
            let mut txn = KvTxn::new(&reader);
            let results = futures::executor::block_on(logic::apply_ops(&mut txn, &ops, &limits))?;
            let writes = txn.into_writes();
            if !writes.is_empty() {
                store.commit(writes)?;
            }
            Ok(results)
        })
        .await
    }

    async fn reserve_ids(&self, kind: IdKind, n: u64) -> Result<Range<u64>> {
        if n == 0 || n > i64::MAX as u64 / 2 {
            return Err(err::invalid(format!("cannot reserve {n} IDs")));
        }
        self.run(move |store, writer| {
            let _g = lock_writer(writer);
            load_setting(store)?;
            let c = kind.counter();
            let cur = read_counter(store, c)?;
            let start = u64::try_from(cur)
                .ok()
                .filter(|&s| s > 0)
                .ok_or_else(|| err::corrupted(format!("counter {} is {cur}", c.name())))?;
            let end = start
                .checked_add(n)
                .filter(|&e| e <= i64::MAX as u64)
                .ok_or_else(|| err::no_space(format!("{} IDs exhausted", c.name())))?;
            let mut w = WriteSet::new();
            w.insert(counter_key(c), Some(encode_counter(end as i64)));
            store.commit(w)?;
            Ok(start..end)
        })
        .await
    }

    async fn lookup(&self, parent: Ino, name: &[u8]) -> Result<(Ino, Attr)> {
        let name = name.to_vec();
        self.read(move |t| Box::pin(async move { logic::lookup(t, parent, &name).await }))
            .await
    }

    async fn get_attr(&self, ino: Ino) -> Result<Attr> {
        self.read(move |t| Box::pin(async move { logic::get_attr(t, ino).await }))
            .await
    }

    async fn read_dir(
        &self,
        ino: Ino,
        after: Option<&[u8]>,
        limit: usize,
        plus: bool,
    ) -> Result<Vec<DirEntry>> {
        let after = after.map(<[u8]>::to_vec);
        self.read(move |t| {
            Box::pin(async move { logic::read_dir(t, ino, after.as_deref(), limit, plus).await })
        })
        .await
    }

    async fn read_chunk(&self, ino: Ino, indx: u32) -> Result<Vec<Slice>> {
        self.read(move |t| Box::pin(async move { t.get_chunk(ino, indx).await }))
            .await
    }

    async fn read_link(&self, ino: Ino) -> Result<Vec<u8>> {
        self.read(move |t| Box::pin(async move { logic::read_link(t, ino).await }))
            .await
    }

    async fn get_xattr(&self, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
        let name = name.to_vec();
        self.read(move |t| Box::pin(async move { logic::get_xattr(t, ino, &name).await }))
            .await
    }

    async fn list_xattr(&self, ino: Ino) -> Result<Vec<Vec<u8>>> {
        self.read(move |t| Box::pin(async move { logic::list_xattr(t, ino).await }))
            .await
    }

    async fn statfs(&self) -> Result<Statfs> {
        self.run(|store, _| {
            let limits = Limits::from(&load_setting(store)?);
            Ok(logic::statfs_from(
                read_counter(store, Counter::UsedSpace)?,
                read_counter(store, Counter::TotalInodes)?,
                &limits,
            ))
        })
        .await
    }

    async fn get_counter(&self, counter: Counter) -> Result<i64> {
        self.run(move |store, _| read_counter(store, counter)).await
    }

    async fn scan_inodes(&self, after: Ino, limit: usize) -> Result<Vec<(Ino, Attr)>> {
        self.run(move |store, _| {
            let mut out = Vec::new();
            let Some(first) = after.0.checked_add(1) else {
                return Ok(out);
            };
            let mut start = attr_key(Ino(first));
            start.truncate(9);
            let end = vec![b'B'];
            while out.len() < limit {
                let page = store.scan(&start, &end, SCAN_PAGE)?;
                let n = page.len();
                for (k, v) in &page {
                    if k.len() == 10 && k[9] == b'I' {
                        let ino = key_ino(k).ok_or_else(|| err::corrupted("attr key"))?;
                        let attr =
                            decode_attr(v).map_err(|e| e.context_prefix(format!("inode {ino}")))?;
                        out.push((ino, attr));
                        if out.len() == limit {
                            break;
                        }
                    }
                }
                match page.last() {
                    Some((k, _)) if n == SCAN_PAGE => {
                        start = k.clone();
                        start.push(0);
                    }
                    _ => break,
                }
            }
            Ok(out)
        })
        .await
    }

    async fn list_chunks(&self, ino: Ino) -> Result<Vec<(u32, Vec<Slice>)>> {
        self.run(move |store, _| {
            let prefix = chunk_prefix(ino);
            store
                .scan(&prefix, &prefix_end(&prefix), usize::MAX)?
                .into_iter()
                .map(|(k, v)| {
                    let indx = k[prefix.len()..]
                        .try_into()
                        .map(u32::from_be_bytes)
                        .map_err(|_| err::corrupted(format!("chunk key of inode {ino}")))?;
                    Ok((indx, decode_chunk(&v)?))
                })
                .collect()
        })
        .await
    }

    async fn list_pending(&self, limit: usize) -> Result<Vec<Pending>> {
        self.run(move |store, _| {
            let mut out = Vec::new();
            for prefix in [b"D", b"L"] {
                let rows = store.scan(prefix, &prefix_end(prefix), limit - out.len())?;
                for (k, v) in rows {
                    out.push(decode_pending(&k, &v)?);
                }
                if out.len() >= limit {
                    break;
                }
            }
            Ok(out)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr() -> Attr {
        Attr {
            typ: FileType::Symlink,
            mode: 0o4755,
            uid: 1000,
            gid: 100,
            rdev: 7,
            atime: Timespec { sec: -5, nsec: 1 },
            mtime: Timespec {
                sec: 1_700_000_000,
                nsec: 999_999_999,
            },
            ctime: Timespec { sec: 0, nsec: 0 },
            nlink: 3,
            length: u64::MAX,
            parent: Ino(42),
            flags: 1,
        }
    }

    #[test]
    fn attr_round_trip_and_size() {
        let a = attr();
        let v = encode_attr(&a);
        assert_eq!(v.len(), ATTR_BYTES);
        assert_eq!(decode_attr(&v).unwrap(), a);
    }

    #[test]
    fn chunk_entry_counter_pending_round_trip() {
        let s = vec![
            Slice {
                pos: 0,
                id: 1,
                size: 10,
                off: 0,
                len: 10,
            },
            Slice {
                pos: u32::MAX,
                id: u64::MAX,
                size: 3,
                off: 1,
                len: 2,
            },
        ];
        assert_eq!(decode_chunk(&encode_chunk(&s)).unwrap(), s);
        let e = Entry {
            ino: Ino(9),
            typ: FileType::Fifo,
        };
        assert_eq!(decode_entry(&encode_entry(e)).unwrap(), e);
        assert_eq!(decode_counter(&encode_counter(-3)).unwrap(), -3);
        for p in [
            Pending::File {
                ino: Ino(5),
                length: 77,
            },
            Pending::Slice { id: 8, size: 9 },
        ] {
            assert_eq!(
                decode_pending(&pending_key(p), &encode_pending(p)).unwrap(),
                p
            );
        }
        assert_eq!(decode_bytes(&encode_bytes(b"xyz"), "t").unwrap(), b"xyz");
    }

    #[test]
    fn keys_sort_numerically() {
        assert!(attr_key(Ino(255)) < attr_key(Ino(256)));
        assert!(chunk_key(Ino(1), 1) < chunk_key(Ino(1), 256));
        assert_eq!(key_ino(&entry_key(Ino(77), b"x")), Some(Ino(77)));
        assert_eq!(prefix_end(b"A\x01\xff"), b"A\x02".to_vec());
    }

    #[test]
    fn garbage_is_corrupted_never_a_panic() {
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![2, 1, 2, 3],
            vec![VALUE_VERSION],
            vec![VALUE_VERSION, 99],
            encode_attr(&attr())[..40].to_vec(),
            [encode_attr(&attr()), vec![0]].concat(),
        ];
        for c in &cases {
            assert_eq!(
                decode_attr(c).unwrap_err().kind(),
                ErrorKind::Corrupted,
                "{c:?}"
            );
            assert_eq!(
                decode_entry(c).unwrap_err().kind(),
                ErrorKind::Corrupted,
                "{c:?}"
            );
            assert_eq!(
                decode_counter(c).unwrap_err().kind(),
                ErrorKind::Corrupted,
                "{c:?}"
            );
        }
        assert_eq!(
            decode_chunk(&[VALUE_VERSION, 1, 2]).unwrap_err().kind(),
            ErrorKind::Corrupted
        );
        assert_eq!(
            decode_pending(b"D1", &[VALUE_VERSION]).unwrap_err().kind(),
            ErrorKind::Corrupted
        );
        assert_eq!(
            decode_setting(&[VALUE_VERSION, b'{']).unwrap_err().kind(),
            ErrorKind::Corrupted
        );
        // An entry pointing at inode 0, a bad nanosecond field, an unknown type.
        let mut e = encode_entry(Entry {
            ino: Ino(1),
            typ: FileType::Regular,
        });
        e[9] = 0;
        assert_eq!(decode_entry(&e).unwrap_err().kind(), ErrorKind::Corrupted);
        let mut a = encode_attr(&attr());
        a[24] = 0xff;
        assert_eq!(decode_attr(&a).unwrap_err().kind(), ErrorKind::Corrupted);
        let mut a = encode_attr(&attr());
        a[1] = 0;
        assert_eq!(decode_attr(&a).unwrap_err().kind(), ErrorKind::Corrupted);
    }

    proptest::proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..100)) {
            let _ = decode_attr(&bytes);
            let _ = decode_entry(&bytes);
            let _ = decode_chunk(&bytes);
            let _ = decode_counter(&bytes);
            let _ = decode_setting(&bytes);
            let _ = decode_pending(&bytes, &bytes);
        }

        #[test]
        fn attr_round_trips(mode in 0u16..0o7777, uid: u32, len: u64, sec: i64, nsec in 0u32..1_000_000_000) {
            let mut a = attr();
            a.mode = mode; a.uid = uid; a.length = len;
            a.mtime = Timespec { sec, nsec };
            proptest::prop_assert_eq!(decode_attr(&encode_attr(&a)).unwrap(), a);
        }
    }
}
