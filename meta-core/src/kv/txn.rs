//! [`KvTxn`]: the generic op logic's transaction view over any [`KvRead`].

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::error::{Result, err};
use crate::kv::VALUE_VERSION;
use crate::kv::codec::*;
use crate::kv::schema::*;
use crate::kv::store::{KvRead, WriteSet};
use crate::logic::{QuotaChains, TxnView};
use crate::session::{LockKind, LockOwner, LockType, PlockRange, Session, Sid};
use crate::stats::DirStat;
use crate::types::{Attr, Counter, Entry, Ino, Pending, Slice};

/// The bytes a buffered write carries: its key and its value (none for a delete).
fn write_bytes(key: &[u8], value: &Option<Vec<u8>>) -> usize {
    key.len() + value.as_ref().map_or(0, Vec::len)
}

/// The generic op logic's view over a [`KvRead`]: reads see the underlying store overlaid by
/// the writes of earlier ops of the batch and of the current op; writes are buffered. Each op's
/// writes live in their own layer until `release_savepoint` folds them into the batch layer, or
/// `rollback_to_savepoint` drops them.
pub struct KvTxn<'a, R: KvRead + ?Sized> {
    reader: &'a R,
    batch: WriteSet,
    /// Bytes of keys and values in `batch`, kept as ops fold into it (see `write_cost`).
    batch_bytes: usize,
    op: WriteSet,
    /// Whether the store holds a session (read once per transaction; writes go to the
    /// layers, which are looked at first).
    sessions: std::collections::HashMap<Sid, bool>,
    /// Whether the store holds a quota (read once per transaction, as `sessions`).
    quotas: Option<bool>,
    /// Where the quotas are, as the logic found them in this transaction.
    chains: QuotaChains,
}

impl<'a, R: KvRead + ?Sized> KvTxn<'a, R> {
    /// A transaction with no writes yet.
    pub fn new(reader: &'a R) -> Self {
        KvTxn {
            reader,
            batch: WriteSet::new(),
            batch_bytes: 0,
            op: WriteSet::new(),
            sessions: std::collections::HashMap::new(),
            quotas: None,
            chains: QuotaChains::default(),
        }
    }

    /// This transaction starting from a memo of where the quotas are (`chains`) and of
    /// whether the store holds any (`quotas`), kept from an earlier transaction by a caller
    /// that is the store's only writer (see [`crate::kv::KvBackend`]).
    pub fn with_quota_memo(mut self, chains: QuotaChains, quotas: Option<bool>) -> Self {
        self.chains = chains;
        self.quotas = quotas;
        self
    }

    /// Takes this transaction's memo of where the quotas are and of whether the store holds
    /// any, for the next transaction of the same writer (see [`KvTxn::with_quota_memo`]).
    pub fn take_quota_memo(&mut self) -> (QuotaChains, Option<bool>) {
        (std::mem::take(&mut self.chains), self.quotas.take())
    }

    /// Forgets what this transaction remembers of its reads (whether sessions and quotas
    /// exist, where the quotas are), so that the next op reads them again through the store.
    /// For a store whose recorded reads were rewound ([`crate::kv::StoreTxn::rewind`]): a
    /// remembered answer whose read is no longer recorded would not be checked at commit.
    pub fn forget_reads(&mut self) {
        self.sessions.clear();
        self.quotas = None;
        self.chains = QuotaChains::default();
    }

    /// The writes of every released op (what to commit).
    pub fn into_writes(mut self) -> WriteSet {
        let op = std::mem::take(&mut self.op);
        self.batch.extend(op);
        self.batch
    }

    /// How many writes are buffered and their bytes (keys and values), counting a key written
    /// by the current op and an earlier one twice: an upper bound of what a commit carries.
    /// Costs O(the current op's writes): the batch layer's bytes are kept as ops fold in.
    pub fn write_cost(&self) -> (usize, usize) {
        let op_bytes: usize = self.op.iter().map(|(k, v)| write_bytes(k, v)).sum();
        (
            self.batch.len() + self.op.len(),
            self.batch_bytes + op_bytes,
        )
    }

    /// Folds the current op's layer into the batch layer, keeping `batch_bytes`.
    fn fold_op(&mut self) {
        for (k, v) in std::mem::take(&mut self.op) {
            let added = write_bytes(&k, &v);
            if let Some(old) = self.batch.get(&k) {
                self.batch_bytes -= write_bytes(&k, old);
            }
            self.batch.insert(k, v);
            self.batch_bytes += added;
        }
    }

    /// The keys under `prefix` that `keep` accepts, through the overlay, in key order (see
    /// [`KvRead::scan_where`] for what a transactional store checks at commit).
    pub async fn keys_where(
        &self,
        prefix: &[u8],
        keep: &crate::kv::store::KeyFilter,
    ) -> Result<Vec<Vec<u8>>> {
        self.keys_where_at_most(prefix, keep, usize::MAX).await
    }

    /// The first `limit` of [`KvTxn::keys_where`], reading no more than that many kept keys
    /// (plus as many as the overlay deletes) from the store ([`KvRead::scan_where_at_most`]).
    pub async fn keys_where_at_most(
        &self,
        prefix: &[u8],
        keep: &crate::kv::store::KeyFilter,
        limit: usize,
    ) -> Result<Vec<Vec<u8>>> {
        let end = prefix_end(prefix);
        let range = (
            std::ops::Bound::Included(prefix.to_vec()),
            std::ops::Bound::Excluded(end.clone()),
        );
        // Every key the overlay deletes may hide one the store returns: read that many more,
        // so that the first `limit` after the merge are the first `limit` there are (the
        // store's keys past the last one read are all greater than those). No limit: read
        // everything, without counting.
        let read = if limit == usize::MAX {
            self.reader.scan_where(prefix, &end, keep).await?
        } else {
            let deleted = [&self.batch, &self.op]
                .iter()
                .flat_map(|l| l.range::<Vec<u8>, _>(range.clone()))
                .filter(|(k, v)| v.is_none() && keep(k))
                .count();
            match limit.saturating_add(deleted) {
                usize::MAX => self.reader.scan_where(prefix, &end, keep).await?,
                n => {
                    self.reader
                        .scan_where_at_most(prefix, &end, keep, n)
                        .await?
                }
            }
        };
        let mut keys: std::collections::BTreeSet<Vec<u8>> =
            read.into_iter().map(|(k, _)| k).collect();
        for layer in [&self.batch, &self.op] {
            for (k, v) in layer.range::<Vec<u8>, _>(range.clone()) {
                if !keep(k) {
                    continue;
                }
                if v.is_some() {
                    keys.insert(k.clone());
                } else {
                    keys.remove(k);
                }
            }
        }
        Ok(keys.into_iter().take(limit).collect())
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
        self.set(dir_stat_key(ino), None);
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
    async fn add_dir_stat(&mut self, dir: Ino, delta: DirStat) -> Result<()> {
        let s = TxnView::get_dir_stat(self, dir).await? + delta;
        self.set(dir_stat_key(dir), Some(encode_dir_stat(&s)));
        Ok(())
    }
    async fn get_dir_stat(&mut self, dir: Ino) -> Result<DirStat> {
        match self.get(&dir_stat_key(dir)).await? {
            Some(v) => {
                decode_dir_stat(&v).map_err(|e| e.context_prefix(format!("directory {dir}")))
            }
            None => Ok(DirStat::default()),
        }
    }
    async fn has_quotas(&mut self) -> Result<bool> {
        if let Some(any) = self.quotas {
            return Ok(any);
        }
        let end = prefix_end(QUOTA_PREFIX);
        let any = !self.reader.scan(QUOTA_PREFIX, &end, 1).await?.is_empty();
        self.quotas = Some(any);
        Ok(any)
    }
    async fn get_quota(&mut self, dir: Ino) -> Result<Option<crate::quota::Quota>> {
        self.get(&quota_key(dir))
            .await?
            .map(|v| decode_quota(&v).map_err(|e| e.context_prefix(format!("directory {dir}"))))
            .transpose()
    }
    async fn put_quota(&mut self, dir: Ino, quota: Option<&crate::quota::Quota>) -> Result<()> {
        if quota.is_some() {
            // Also when the op is rolled back later: a needless walk is only slower.
            self.quotas = Some(true);
        }
        self.set(quota_key(dir), quota.map(encode_quota));
        Ok(())
    }
    fn quota_chains(&mut self) -> Option<&mut QuotaChains> {
        Some(&mut self.chains)
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
    async fn get_session(&mut self, sid: Sid) -> Result<Option<Session>> {
        self.get(&session_key(sid))
            .await?
            .map(|v| decode_session(&v).map_err(|e| e.context_prefix(format!("session {sid}"))))
            .transpose()
    }
    async fn has_session(&mut self, sid: Sid) -> Result<bool> {
        let key = session_key(sid);
        let takes = |v: Option<&Vec<u8>>| -> Result<bool> {
            match v {
                Some(b) => Ok(session_expiry(b)? != Session::FENCED),
                None => Ok(false),
            }
        };
        if let Some(v) = self.op.get(&key).or_else(|| self.batch.get(&key)) {
            return takes(v.as_ref());
        }
        // Every create-and-open of a batch asks about the same session: read it once.
        if let Some(&known) = self.sessions.get(&sid) {
            return Ok(known);
        }
        let known = takes(self.reader.get(&key).await?.as_ref())?;
        self.sessions.insert(sid, known);
        Ok(known)
    }
    async fn put_session(&mut self, session: &Session) -> Result<()> {
        self.set(session_key(session.info.sid), Some(encode_session(session)));
        Ok(())
    }
    async fn delete_session(&mut self, sid: Sid) -> Result<()> {
        self.set(session_key(sid), None);
        Ok(())
    }
    async fn list_sessions(&mut self) -> Result<Vec<Session>> {
        self.scan_prefix(&[SESSION_TAG], None, usize::MAX)
            .await?
            .into_iter()
            .map(|(k, v)| {
                decode_session(&v).map_err(|e| e.context_prefix(format!("session key {k:?}")))
            })
            .collect()
    }
    async fn openers(&mut self, ino: Ino) -> Result<Vec<Sid>> {
        self.scan_prefix(&open_prefix(ino), None, usize::MAX)
            .await?
            .into_iter()
            .map(|(k, _)| {
                parse_open_key(&k)
                    .map(|(_, sid)| sid)
                    .ok_or_else(|| err::corrupted(format!("open-file key {k:?}")))
            })
            .collect()
    }
    async fn set_open(&mut self, sid: Sid, ino: Ino, open: bool) -> Result<()> {
        self.set(open_key(ino, sid), open.then(|| vec![VALUE_VERSION]));
        Ok(())
    }
    async fn session_opens(&mut self, sid: Sid) -> Result<Vec<Ino>> {
        // Every open of the volume is scanned, but only this session's are checked one by one
        // at commit (see KvRead::scan_where): a new open of the session would also have read
        // its session record, which the ops that call this read and change.
        self.session_opens_at_most(sid, usize::MAX).await
    }
    async fn session_opens_at_most(&mut self, sid: Sid, n: usize) -> Result<Vec<Ino>> {
        let mine = move |k: &[u8]| parse_open_key(k).is_none_or(|(_, s)| s == sid);
        let mut out = Vec::new();
        for k in self.keys_where_at_most(&[OPEN_TAG], &mine, n).await? {
            let (ino, _) =
                parse_open_key(&k).ok_or_else(|| err::corrupted(format!("open-file key {k:?}")))?;
            out.push(ino);
        }
        Ok(out)
    }
    async fn get_flocks(&mut self, ino: Ino) -> Result<Vec<(LockOwner, LockType)>> {
        self.scan_prefix(&lock_prefix(LockKind::Flock, ino), None, usize::MAX)
            .await?
            .into_iter()
            .map(|(k, v)| {
                let (_, owner) = parse_lock_key(LockKind::Flock, &k)
                    .ok_or_else(|| err::corrupted(format!("flock key {k:?}")))?;
                let body = decode_bytes(&v, "flock")?;
                Ok((owner, crate::session::decode_flock(&body)?))
            })
            .collect()
    }
    async fn set_flock(&mut self, ino: Ino, owner: LockOwner, typ: LockType) -> Result<()> {
        let v = (typ != LockType::Unlock).then(|| encode_bytes(&[typ.code()]));
        self.set(lock_key(LockKind::Flock, ino, owner), v);
        Ok(())
    }
    async fn get_plocks(&mut self, ino: Ino) -> Result<Vec<(LockOwner, Vec<PlockRange>)>> {
        self.scan_prefix(&lock_prefix(LockKind::Plock, ino), None, usize::MAX)
            .await?
            .into_iter()
            .map(|(k, v)| {
                let (_, owner) = parse_lock_key(LockKind::Plock, &k)
                    .ok_or_else(|| err::corrupted(format!("plock key {k:?}")))?;
                let body = decode_bytes(&v, "plock")?;
                Ok((owner, crate::session::decode_plocks(&body)?))
            })
            .collect()
    }
    async fn set_plocks(
        &mut self,
        ino: Ino,
        owner: LockOwner,
        ranges: &[PlockRange],
    ) -> Result<()> {
        let v = (!ranges.is_empty()).then(|| encode_bytes(&crate::session::encode_plocks(ranges)));
        self.set(lock_key(LockKind::Plock, ino, owner), v);
        Ok(())
    }
    async fn session_locks(&mut self, sid: Sid) -> Result<Vec<(Ino, LockKind, u64)>> {
        self.session_locks_at_most(sid, usize::MAX).await
    }
    async fn session_locks_at_most(
        &mut self,
        sid: Sid,
        n: usize,
    ) -> Result<Vec<(Ino, LockKind, u64)>> {
        let mut out = Vec::new();
        for kind in [LockKind::Flock, LockKind::Plock] {
            if out.len() >= n {
                break;
            }
            // As session_opens: locks are taken by ops that read the session record.
            let mine = move |k: &[u8]| parse_lock_key(kind, k).is_none_or(|(_, o)| o.sid == sid);
            let left = n - out.len();
            for k in self.keys_where_at_most(&[kind.tag()], &mine, left).await? {
                let (ino, o) = parse_lock_key(kind, &k)
                    .ok_or_else(|| err::corrupted(format!("lock key {k:?}")))?;
                out.push((ino, kind, o.owner));
            }
        }
        Ok(out)
    }
    async fn savepoint(&mut self) -> Result<()> {
        self.fold_op();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A store with nothing in it, counting its point reads.
    #[derive(Default)]
    struct Empty(std::sync::atomic::AtomicUsize);

    #[async_trait]
    impl KvRead for Empty {
        async fn get(&self, _key: &[u8]) -> Result<Option<Vec<u8>>> {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            Ok(None)
        }
        async fn scan(
            &self,
            _start: &[u8],
            _end: &[u8],
            _limit: usize,
        ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
            Ok(Vec::new())
        }
    }

    /// `write_cost` computed from scratch over both layers.
    fn recount(t: &KvTxn<'_, Empty>) -> (usize, usize) {
        let bytes = |w: &WriteSet| w.iter().map(|(k, v)| write_bytes(k, v)).sum::<usize>();
        (t.batch.len() + t.op.len(), bytes(&t.batch) + bytes(&t.op))
    }

    #[tokio::test]
    async fn write_cost_follows_overwrites_deletes_folds_and_rollbacks() {
        let r = Empty::default();
        let mut t = KvTxn::new(&r);
        // A fixed pseudo-random walk over 8 keys: values of varying length, deletes, and an
        // op end (kept or rolled back) every few writes.
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let key = vec![b'k', (x % 8) as u8];
            let value = match (x >> 8) % 4 {
                0 => None,
                n => Some(vec![0u8; ((x >> 16) % 40) as usize * n as usize]),
            };
            t.set(key, value);
            match (x >> 24) % 6 {
                0 => t.release_savepoint().await.expect("fold"),
                1 => t.rollback_to_savepoint().await.expect("rollback"),
                _ => {}
            }
            assert_eq!(t.write_cost(), recount(&t));
        }
        assert!(t.batch_bytes > 0, "the walk kept some writes");
    }

    /// A store of fixed pairs whose `scan_where_at_most` returns no more than it is asked for
    /// (as etcd's does), recording the largest limit asked.
    struct Fixed(Vec<(Vec<u8>, Vec<u8>)>, std::sync::atomic::AtomicUsize);

    #[async_trait]
    impl KvRead for Fixed {
        async fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
            Ok(self
                .0
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone()))
        }
        async fn scan(
            &self,
            start: &[u8],
            end: &[u8],
            limit: usize,
        ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
            Ok(self
                .0
                .iter()
                .filter(|(k, _)| k.as_slice() >= start && k.as_slice() < end)
                .take(limit)
                .cloned()
                .collect())
        }
        async fn scan_where_at_most(
            &self,
            start: &[u8],
            end: &[u8],
            keep: &crate::kv::store::KeyFilter,
            limit: usize,
        ) -> Result<Vec<(Vec<u8>, Vec<u8>)>> {
            self.1.fetch_max(limit, std::sync::atomic::Ordering::SeqCst);
            let mut all = self.scan_where(start, end, keep).await?;
            all.truncate(limit);
            Ok(all)
        }
    }

    /// `keys_where_at_most` is the first `limit` of `keys_where` whatever the overlay deletes
    /// or adds before, among or after the store's keys, and asks the store for no more than
    /// `limit` plus the overlay's deletes.
    #[tokio::test]
    async fn keys_where_at_most_is_a_prefix_of_keys_where() {
        // Keys p00..p19; odd ones are "another session's" (rejected by the filter).
        let pairs = (0..20u8).map(|i| (vec![b'p', i], vec![i])).collect();
        let r = Fixed(pairs, Default::default());
        let keep = |k: &[u8]| k.get(1).is_none_or(|b| b % 2 == 0);
        let mut t = KvTxn::new(&r);
        // Deleted: p00, p04, p06 and (after the fold) p08, all kept by the filter, and p03
        // (rejected); added: p01, p05, p07, p09 (rejected: odd) and p30 (past the store's keys).
        for k in [0u8, 4, 6, 3] {
            t.set(vec![b'p', k], None);
        }
        t.release_savepoint().await.expect("fold");
        for k in [1u8, 7, 9, 30, 5] {
            t.set(vec![b'p', k], Some(vec![1]));
        }
        t.set(vec![b'p', 8], None);
        let all = t.keys_where(b"p", &keep).await.expect("all");
        assert_eq!(
            all,
            [2u8, 10, 12, 14, 16, 18, 30]
                .iter()
                .map(|&i| vec![b'p', i])
                .collect::<Vec<_>>()
        );
        for limit in 0..=all.len() + 2 {
            r.1.store(0, std::sync::atomic::Ordering::SeqCst);
            let some = t
                .keys_where_at_most(b"p", &keep, limit)
                .await
                .expect("some");
            assert_eq!(some, all[..limit.min(all.len())], "limit {limit}");
            // 4 kept deletes in the overlay (p00, p04, p06, p08).
            assert!(
                r.1.load(std::sync::atomic::Ordering::SeqCst) <= limit + 4,
                "limit {limit}: asked the store for more"
            );
        }
    }

    /// Whether a session or a quota exists is read once per transaction, and again after
    /// `forget_reads` (when a store rewound the reads that answered it).
    #[tokio::test]
    async fn forget_reads_makes_the_next_op_read_again() {
        let r = Empty::default();
        let reads = || r.0.load(std::sync::atomic::Ordering::SeqCst);
        let mut t = KvTxn::new(&r);
        assert!(!t.has_session(7).await.expect("read"));
        assert!(!t.has_quotas().await.expect("read"));
        let first = reads();
        assert!(first > 0);
        t.has_session(7).await.expect("read");
        t.has_quotas().await.expect("read");
        assert_eq!(reads(), first, "remembered within the transaction");
        t.forget_reads();
        t.has_session(7).await.expect("read");
        t.has_quotas().await.expect("read");
        assert_eq!(reads(), 2 * first, "read again after forget_reads");
    }
}
