//! Reads through the overlay ([`SqlTxn`]'s `load_*`) and meta-core's [`TxnView`] over them.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use meta_core::logic::{self, TxnView};
use meta_core::{
    Attr, Counter, DirStat, Entry, Ino, LockKind, LockOwner, LockType, Pending, PlockRange, Quota,
    Result, Session, Sid, Slice, Timespec,
};

use crate::codec::{self};
use crate::exec::Ty;

use super::{
    Cached, Layer, NodeW, PKey, SqlTxn, StatW, WIPE_CHUNK, WIPE_SYMLINK, WIPE_XATTR, add_delta,
};

impl SqlTxn<'_> {
    async fn load_node(&mut self, ino: Ino) -> Cached<Attr> {
        if !self.base.nodes.contains_key(&ino) {
            self.miss();
            let set = BTreeSet::from([ino]);
            self.fetch_nodes(&set, false).await?;
        }
        self.base.nodes.get(&ino).cloned().unwrap_or(Ok(None))
    }

    async fn load_edge(&mut self, parent: Ino, name: &[u8]) -> Cached<Entry> {
        let k = (parent, name.to_vec());
        if !self.base.edges.contains_key(&k) {
            self.miss();
            let set = BTreeSet::from([k.clone()]);
            self.fetch_edges(&set, true).await?;
        }
        self.base.edges.get(&k).cloned().unwrap_or(Ok(None))
    }

    /// Up to `want` database entries of `parent` after `after`.
    async fn db_entries(
        &mut self,
        parent: Ino,
        after: Option<&[u8]>,
        want: usize,
    ) -> Result<Vec<(Vec<u8>, Entry)>> {
        let key = (parent, after.map(<[u8]>::to_vec));
        let usable = match self.base.listings.get(&key) {
            Some(Ok(l)) => l.complete || l.entries.len() >= want,
            Some(Err(_)) => true,
            None => false,
        };
        if !usable {
            self.miss();
            self.fetch_listing(parent, after, want, false).await?;
        }
        match self.base.listings.get(&key) {
            Some(Ok(l)) => Ok(l.entries.iter().take(want).cloned().collect()),
            Some(Err(e)) => Err(e.clone()),
            None => Ok(Vec::new()),
        }
    }

    async fn load_chunk(&mut self, ino: Ino, indx: u32) -> Result<Vec<Slice>> {
        if !self.base.chunks.contains_key(&(ino, indx)) {
            self.miss();
            let rows = self
                .rows_all(
                    self.sql.chunks(vec![(ino.0 as i64, i64::from(indx))]),
                    &[Ty::Int, Ty::Int, Ty::Bytes],
                )
                .await?;
            self.base.chunks.insert((ino, indx), Ok(Vec::new()));
            self.cache_chunk_rows(rows);
        }
        self.base
            .chunks
            .get(&(ino, indx))
            .cloned()
            .unwrap_or(Ok(Vec::new()))
    }

    async fn load_chunk_list(&mut self, ino: Ino) -> Result<Vec<u32>> {
        if let Some(l) = self.base.chunk_lists.get(&ino) {
            return Ok(l.clone());
        }
        self.miss();
        let rows = self
            .rows(self.sql.chunk_indexes(ino.0 as i64), &[Ty::Int])
            .await?;
        let mut list = Vec::with_capacity(rows.len());
        for r in rows {
            list.push(codec::num::<u32>(
                &r[0],
                &format!("chunk index of inode {ino}"),
            )?);
        }
        self.base.chunk_lists.insert(ino, list.clone());
        Ok(list)
    }

    async fn load_symlink(&mut self, ino: Ino) -> Cached<Vec<u8>> {
        if !self.base.symlinks.contains_key(&ino) {
            self.miss();
            self.fetch_symlinks(&[ino]).await?;
        }
        self.base.symlinks.get(&ino).cloned().unwrap_or(Ok(None))
    }

    async fn load_xattr(&mut self, ino: Ino, name: &[u8]) -> Cached<Vec<u8>> {
        let k = (ino, name.to_vec());
        if !self.base.xattrs.contains_key(&k) {
            self.miss();
            self.fetch_xattrs(&BTreeSet::from([k.clone()])).await?;
        }
        self.base.xattrs.get(&k).cloned().unwrap_or(Ok(None))
    }

    async fn load_counter(&mut self, c: Counter) -> Result<i64> {
        if !self.base.counters.contains_key(&c) {
            self.miss();
            self.fetch_counters(&[c], false).await?;
        }
        self.base.counters.get(&c).cloned().unwrap_or(Ok(0))
    }

    async fn load_dir_stat(&mut self, dir: Ino) -> Result<DirStat> {
        if !self.base.dir_stats.contains_key(&dir) {
            self.miss();
            self.fetch_dir_stats(&BTreeSet::from([dir])).await?;
        }
        self.base
            .dir_stats
            .get(&dir)
            .cloned()
            .unwrap_or(Ok(DirStat::default()))
    }

    async fn load_pending(&mut self, k: PKey) -> Result<bool> {
        if let Some(&b) = self.base.pend.get(&k) {
            return Ok(b);
        }
        self.miss();
        let rows = match k {
            PKey::File(i) => {
                self.rows_all(self.sql.delfiles(vec![i.0 as i64]), &[Ty::Int])
                    .await?
            }
            PKey::Slice(id) => {
                self.rows_all(self.sql.delslices(vec![id as i64]), &[Ty::Int])
                    .await?
            }
        };
        let found = !rows.is_empty();
        self.base.pend.insert(k, found);
        Ok(found)
    }

    fn wiped(&self, ino: Ino, what: u8) -> bool {
        self.op.wiped(ino, what) || self.batch.wiped(ino, what)
    }
}

#[async_trait]
impl TxnView for SqlTxn<'_> {
    async fn get_attr(&mut self, ino: Ino) -> Result<Option<Attr>> {
        let has_abs = |l: &Layer| l.nodes.get(&ino).is_some_and(|w| w.abs.is_some());
        let mut v = if has_abs(&self.op) || has_abs(&self.batch) {
            None
        } else {
            self.load_node(ino).await?
        };
        for layer in [&self.batch, &self.op] {
            if let Some(w) = layer.nodes.get(&ino) {
                if let Some(abs) = w.abs {
                    v = abs;
                }
                if let Some((d, t)) = w.delta {
                    v = v.map(|a| logic::bump_dir(&a, d, t));
                }
            }
        }
        Ok(v)
    }

    async fn put_attr(&mut self, ino: Ino, attr: &Attr) -> Result<()> {
        self.op.nodes.insert(
            ino,
            NodeW {
                abs: Some(Some(*attr)),
                delta: None,
            },
        );
        Ok(())
    }

    async fn delete_inode(&mut self, ino: Ino) -> Result<()> {
        self.op.nodes.insert(
            ino,
            NodeW {
                abs: Some(None),
                delta: None,
            },
        );
        self.op.wipe(ino, WIPE_XATTR | WIPE_SYMLINK);
        // A directory's statistics row goes with it (flush skips inodes that cannot have
        // one: non-directories, inodes created by this batch).
        self.op.dir_stats.insert(
            ino,
            StatW {
                reset: true,
                delta: DirStat::default(),
            },
        );
        Ok(())
    }

    async fn get_entry(&mut self, parent: Ino, name: &[u8]) -> Result<Option<Entry>> {
        let k = (parent, name.to_vec());
        if let Some(v) = self.op.edges.get(&k) {
            return Ok(*v);
        }
        if let Some(v) = self.batch.edges.get(&k) {
            return Ok(*v);
        }
        self.load_edge(parent, name).await
    }

    async fn put_entry(&mut self, parent: Ino, name: &[u8], entry: Entry) -> Result<()> {
        self.op.edges.insert((parent, name.to_vec()), Some(entry));
        Ok(())
    }

    async fn delete_entry(&mut self, parent: Ino, name: &[u8]) -> Result<()> {
        self.op.edges.insert((parent, name.to_vec()), None);
        Ok(())
    }

    async fn scan_entries(
        &mut self,
        parent: Ino,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Entry)>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mut overlay: BTreeMap<Vec<u8>, Option<Entry>> = BTreeMap::new();
        for layer in [&self.batch, &self.op] {
            for ((_, n), v) in layer
                .edges
                .range((parent, Vec::new())..)
                .take_while(|((p, _), _)| *p == parent)
            {
                if after.is_none_or(|a| n.as_slice() > a) {
                    overlay.insert(n.clone(), *v);
                }
            }
        }
        let deletes = overlay.values().filter(|v| v.is_none()).count();
        let want = limit.saturating_add(deletes);
        let base = self.db_entries(parent, after, want).await?;
        let base_full = base.len() == want;
        let last_base = base.last().map(|(k, _)| k.clone());
        let mut merged: BTreeMap<Vec<u8>, Entry> = base.into_iter().collect();
        for (k, v) in overlay {
            if base_full && last_base.as_ref().is_some_and(|l| &k > l) {
                continue;
            }
            match v {
                Some(e) => {
                    merged.insert(k, e);
                }
                None => {
                    merged.remove(&k);
                }
            }
        }
        Ok(merged.into_iter().take(limit).collect())
    }

    async fn get_chunk(&mut self, ino: Ino, indx: u32) -> Result<Vec<Slice>> {
        if let Some(s) = self.op.chunks.get(&(ino, indx)) {
            return Ok(s.clone());
        }
        if self.op.wiped(ino, WIPE_CHUNK) {
            return Ok(Vec::new());
        }
        if let Some(s) = self.batch.chunks.get(&(ino, indx)) {
            return Ok(s.clone());
        }
        if self.batch.wiped(ino, WIPE_CHUNK) {
            return Ok(Vec::new());
        }
        self.load_chunk(ino, indx).await
    }

    async fn put_chunk(&mut self, ino: Ino, indx: u32, slices: &[Slice]) -> Result<()> {
        self.op.chunks.insert((ino, indx), slices.to_vec());
        Ok(())
    }

    async fn chunk_indexes(&mut self, ino: Ino) -> Result<Vec<u32>> {
        let mut set: BTreeSet<u32> = if self.wiped(ino, WIPE_CHUNK) {
            BTreeSet::new()
        } else {
            self.load_chunk_list(ino).await?.into_iter().collect()
        };
        let layers: &[&Layer] = if self.op.wiped(ino, WIPE_CHUNK) {
            &[&self.op]
        } else {
            &[&self.batch, &self.op]
        };
        for layer in layers {
            for ((_, x), s) in layer.chunks.range((ino, 0)..=(ino, u32::MAX)) {
                if s.is_empty() {
                    set.remove(x);
                } else {
                    set.insert(*x);
                }
            }
        }
        Ok(set.into_iter().collect())
    }

    async fn delete_chunks(&mut self, ino: Ino) -> Result<()> {
        self.op.wipe(ino, WIPE_CHUNK);
        Ok(())
    }

    async fn get_symlink(&mut self, ino: Ino) -> Result<Option<Vec<u8>>> {
        if let Some(v) = self.op.symlinks.get(&ino) {
            return Ok(v.clone());
        }
        if self.op.wiped(ino, WIPE_SYMLINK) {
            return Ok(None);
        }
        if let Some(v) = self.batch.symlinks.get(&ino) {
            return Ok(v.clone());
        }
        if self.batch.wiped(ino, WIPE_SYMLINK) {
            return Ok(None);
        }
        self.load_symlink(ino).await
    }

    async fn put_symlink(&mut self, ino: Ino, target: &[u8]) -> Result<()> {
        self.op.symlinks.insert(ino, Some(target.to_vec()));
        Ok(())
    }

    async fn get_xattr(&mut self, ino: Ino, name: &[u8]) -> Result<Option<Vec<u8>>> {
        let k = (ino, name.to_vec());
        if let Some(v) = self.op.xattrs.get(&k) {
            return Ok(v.clone());
        }
        if self.op.wiped(ino, WIPE_XATTR) {
            return Ok(None);
        }
        if let Some(v) = self.batch.xattrs.get(&k) {
            return Ok(v.clone());
        }
        if self.batch.wiped(ino, WIPE_XATTR) {
            return Ok(None);
        }
        self.load_xattr(ino, name).await
    }

    async fn put_xattr(&mut self, ino: Ino, name: &[u8], value: &[u8]) -> Result<()> {
        self.op
            .xattrs
            .insert((ino, name.to_vec()), Some(value.to_vec()));
        Ok(())
    }

    async fn delete_xattr(&mut self, ino: Ino, name: &[u8]) -> Result<()> {
        self.op.xattrs.insert((ino, name.to_vec()), None);
        Ok(())
    }

    async fn list_xattr(&mut self, ino: Ino) -> Result<Vec<Vec<u8>>> {
        let mut names: BTreeSet<Vec<u8>> = if self.wiped(ino, WIPE_XATTR) {
            BTreeSet::new()
        } else {
            self.miss();
            let rows = self
                .rows(self.sql.xattr_names(ino.0 as i64), &[Ty::Bytes])
                .await?;
            let mut s = BTreeSet::new();
            for r in rows {
                s.insert(codec::bytes(&r[0], "xattr name")?);
            }
            s
        };
        let layers: &[&Layer] = if self.op.wiped(ino, WIPE_XATTR) {
            &[&self.op]
        } else {
            &[&self.batch, &self.op]
        };
        for layer in layers {
            for ((_, n), v) in layer
                .xattrs
                .range((ino, Vec::new())..)
                .take_while(|((i, _), _)| *i == ino)
            {
                if v.is_some() {
                    names.insert(n.clone());
                } else {
                    names.remove(n);
                }
            }
        }
        Ok(names.into_iter().collect())
    }

    async fn get_counter(&mut self, counter: Counter) -> Result<i64> {
        let base = self.load_counter(counter).await?;
        let d = (self.batch.counters.get(&counter).copied().unwrap_or(0))
            .saturating_add(self.op.counters.get(&counter).copied().unwrap_or(0));
        Ok(base.saturating_add(d))
    }

    async fn add_counter(&mut self, counter: Counter, delta: i64) -> Result<()> {
        // (Saturating, as the stored counter's addition is: `Dialect::sat_add`.)
        let c = self.op.counters.entry(counter).or_default();
        *c = c.saturating_add(delta);
        Ok(())
    }

    async fn add_dir_stat(&mut self, dir: Ino, delta: DirStat) -> Result<()> {
        let e = self.op.dir_stats.entry(dir).or_default();
        e.delta = e.delta + delta;
        Ok(())
    }

    async fn get_dir_stat(&mut self, dir: Ino) -> Result<DirStat> {
        let reset = |l: &Layer| l.dir_stats.get(&dir).is_some_and(|w| w.reset);
        let mut v = if reset(&self.op) || reset(&self.batch) {
            DirStat::default()
        } else {
            self.load_dir_stat(dir).await?
        };
        for layer in [&self.batch, &self.op] {
            if let Some(w) = layer.dir_stats.get(&dir) {
                if w.reset {
                    v = DirStat::default();
                }
                v = v + w.delta;
            }
        }
        Ok(v)
    }

    async fn has_quotas(&mut self) -> Result<bool> {
        self.quota_any().await
    }

    async fn get_quota(&mut self, dir: Ino) -> Result<Option<Quota>> {
        self.quota_get(dir).await
    }

    async fn put_quota(&mut self, dir: Ino, quota: Option<&Quota>) -> Result<()> {
        self.quota_put(dir, quota).await
    }

    async fn put_pending(&mut self, pending: Pending) -> Result<()> {
        let (k, v) = PKey::of(pending);
        self.op.pend.insert(k, Some(v));
        Ok(())
    }

    async fn has_pending(&mut self, pending: Pending) -> Result<bool> {
        let (k, _) = PKey::of(pending);
        if let Some(v) = self.op.pend.get(&k) {
            return Ok(v.is_some());
        }
        if let Some(v) = self.batch.pend.get(&k) {
            return Ok(v.is_some());
        }
        self.load_pending(k).await
    }

    async fn delete_pending(&mut self, pending: Pending) -> Result<()> {
        let (k, _) = PKey::of(pending);
        self.op.pend.insert(k, None);
        Ok(())
    }

    async fn update_dir(
        &mut self,
        dir: Ino,
        current: &Attr,
        nlink_delta: i64,
        time: Timespec,
    ) -> Result<Attr> {
        let e = self.op.nodes.entry(dir).or_default();
        e.delta = add_delta(e.delta, Some((nlink_delta, time)));
        Ok(logic::bump_dir(current, nlink_delta, time))
    }

    async fn get_session(&mut self, sid: Sid) -> Result<Option<Session>> {
        self.sess_get(sid).await
    }

    async fn put_session(&mut self, session: &Session) -> Result<()> {
        self.sess_put(session);
        Ok(())
    }

    async fn delete_session(&mut self, sid: Sid) -> Result<()> {
        self.sess_delete(sid);
        Ok(())
    }

    async fn list_sessions(&mut self) -> Result<Vec<Session>> {
        self.sess_list().await
    }

    async fn openers(&mut self, ino: Ino) -> Result<Vec<Sid>> {
        self.sess_openers(ino).await
    }

    async fn set_open(&mut self, sid: Sid, ino: Ino, open: bool) -> Result<()> {
        self.sess_set_open(sid, ino, open);
        Ok(())
    }

    async fn session_opens(&mut self, sid: Sid) -> Result<Vec<Ino>> {
        self.sess_opens_of(sid).await
    }

    async fn get_flocks(&mut self, ino: Ino) -> Result<Vec<(LockOwner, LockType)>> {
        self.sess_flocks(ino).await
    }

    async fn set_flock(&mut self, ino: Ino, owner: LockOwner, typ: LockType) -> Result<()> {
        self.sess_set_flock(ino, owner, typ);
        Ok(())
    }

    async fn get_plocks(&mut self, ino: Ino) -> Result<Vec<(LockOwner, Vec<PlockRange>)>> {
        self.sess_plocks(ino).await
    }

    async fn set_plocks(
        &mut self,
        ino: Ino,
        owner: LockOwner,
        ranges: &[PlockRange],
    ) -> Result<()> {
        self.sess_set_plocks(ino, owner, ranges);
        Ok(())
    }

    async fn session_locks(&mut self, sid: Sid) -> Result<Vec<(Ino, LockKind, u64)>> {
        self.sess_locks_of(sid).await
    }

    async fn savepoint(&mut self) -> Result<()> {
        let op = std::mem::take(&mut self.op);
        self.batch.fold(op);
        Ok(())
    }

    async fn release_savepoint(&mut self) -> Result<()> {
        // Keeping the op's writes is the same step as starting the next op: fold its layer.
        self.savepoint().await
    }

    async fn rollback_to_savepoint(&mut self) -> Result<()> {
        self.op = Layer::default();
        Ok(())
    }
}
