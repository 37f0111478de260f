//! Filling [`SqlTxn`]'s cache: the batch's prefetch ([`SqlTxn::prefetch`]) and the
//! multi-row SELECTs it and the reads through the overlay use.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use meta_core::logic::Limits;
use meta_core::types::validate_name;
use meta_core::{Counter, DirStat, FileType, Ino, Op, Result, SetAttrMask};

use crate::codec::{self, NODE_TYS};
use crate::exec::{Ty, Val};

use super::{Listing, PKey, SqlTxn, edge_cols, quota, session};

impl SqlTxn<'_> {
    fn cache_nodes(&mut self, rows: Vec<Vec<Val>>, offset: usize, locked: bool) {
        for r in rows {
            let v = &r[offset.min(r.len())..];
            if let Some(ino) = codec::node_ino(v) {
                self.base.nodes.insert(ino, codec::node_attr(v).map(Some));
                if locked {
                    self.base.locked.insert(ino);
                }
            }
        }
    }

    /// Reads the nodes `inos` into the cache (absent ones cached as absent).
    pub(crate) async fn fetch_nodes(&mut self, inos: &BTreeSet<Ino>, lock: bool) -> Result<()> {
        if inos.is_empty() {
            return Ok(());
        }
        let lock = lock && self.lock;
        let keys = inos.iter().map(|i| i.0 as i64).collect();
        let rows = self.rows_all(self.sql.nodes(keys, lock), &NODE_TYS).await?;
        for &i in inos {
            self.base.nodes.insert(i, Ok(None));
            if lock {
                self.base.locked.insert(i);
            }
        }
        self.cache_nodes(rows, 0, lock);
        Ok(())
    }

    fn cache_edge_row(&mut self, r: &[Val]) {
        let (Some(Val::Int(p)), Some(Val::Bytes(name))) = (r.first(), r.get(1)) else {
            return;
        };
        let parent = Ino(codec::id_of(*p));
        let what = format!("entry {parent}/{}", meta_core::types::show_name(name));
        let e = codec::entry(&r[2], &r[3], &what);
        self.base.edges.insert((parent, name.clone()), e);
    }

    /// Reads the entries `keys` into the cache (absent ones cached as absent); `lock` takes
    /// their row locks in a write transaction.
    pub(super) async fn fetch_edges(
        &mut self,
        keys: &BTreeSet<(Ino, Vec<u8>)>,
        lock: bool,
    ) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let k = keys.iter().map(|(p, n)| (p.0 as i64, n.clone())).collect();
        let rows = self
            .rows_all(self.sql.edges(k, lock && self.lock), &edge_cols())
            .await?;
        for k in keys {
            self.base.edges.insert(k.clone(), Ok(None));
        }
        for r in rows {
            self.cache_edge_row(&r);
        }
        Ok(())
    }

    /// Reads entries and nodes without row locks, in one statement when they fit.
    async fn fetch_plain(
        &mut self,
        keys: &BTreeSet<(Ino, Vec<u8>)>,
        inos: &BTreeSet<Ino>,
    ) -> Result<()> {
        let k: Vec<(i64, Vec<u8>)> = keys.iter().map(|(p, n)| (p.0 as i64, n.clone())).collect();
        let i: Vec<i64> = inos.iter().map(|i| i.0 as i64).collect();
        let Some(stmt) = self.sql.edges_and_nodes(k, i) else {
            self.fetch_edges(keys, false).await?;
            return self.fetch_nodes(inos, false).await;
        };
        let mut cols = vec![Ty::Int, Ty::Int, Ty::Bytes, Ty::Int, Ty::Int];
        cols.extend(NODE_TYS);
        let rows = self.rows(stmt, &cols).await?;
        for k in keys {
            self.base.edges.insert(k.clone(), Ok(None));
        }
        for &i in inos {
            self.base.nodes.insert(i, Ok(None));
        }
        let (edges, nodes): (Vec<_>, Vec<_>) = rows.into_iter().partition(|r| r[0] == Val::Int(0));
        for r in &edges {
            self.cache_edge_row(&r[1..5]);
        }
        self.cache_nodes(nodes, 5, false);
        Ok(())
    }

    /// Caches a listing of `parent` after `after` from `(name, ino, type, [node cols])` rows.
    fn cache_listing(
        &mut self,
        parent: Ino,
        after: Option<Vec<u8>>,
        rows: &[Vec<Val>],
        complete: bool,
        offset: usize,
    ) {
        let mut entries = Vec::with_capacity(rows.len());
        let mut bad = None;
        for r in rows {
            let name = match codec::bytes(&r[offset], "entry name") {
                Ok(n) => n,
                Err(e) => {
                    bad = Some(e);
                    break;
                }
            };
            let what = format!("entry {parent}/{}", meta_core::types::show_name(&name));
            match codec::entry(&r[offset + 1], &r[offset + 2], &what) {
                Ok(Some(e)) => {
                    // Entries read without a row lock must not stand in for the locked
                    // reads of a write transaction.
                    if !self.lock {
                        self.base
                            .edges
                            .entry((parent, name.clone()))
                            .or_insert(Ok(Some(e)));
                    }
                    entries.push((name, e));
                }
                Ok(None) => {}
                Err(e) => {
                    bad = Some(e);
                    break;
                }
            }
        }
        let v = match bad {
            Some(e) => Err(e),
            None => Ok(Listing { entries, complete }),
        };
        self.base.listings.insert((parent, after), v);
    }

    /// Reads up to `limit` entries of `parent` after `after` (with their inodes' attributes
    /// when `plus`) into the cache: what `read_dir` will ask for.
    pub(crate) async fn fetch_listing(
        &mut self,
        parent: Ino,
        after: Option<&[u8]>,
        limit: usize,
        plus: bool,
    ) -> Result<()> {
        let lim = i64::try_from(limit).unwrap_or(i64::MAX);
        let stmt = self
            .sql
            .scan_edges(parent.0 as i64, after.map(<[u8]>::to_vec), lim, plus);
        let mut cols = vec![Ty::Bytes, Ty::Int, Ty::Int];
        if plus {
            cols.extend(NODE_TYS);
        }
        let rows = self.rows(stmt, &cols).await?;
        let complete = rows.len() < limit;
        self.cache_listing(parent, after.map(<[u8]>::to_vec), &rows, complete, 0);
        if plus {
            for r in &rows {
                if let Some(ino) = codec::node_ino(&r[3..]) {
                    self.base
                        .nodes
                        .insert(ino, codec::node_attr(&r[3..]).map(Some));
                } else if let Val::Int(i) = r[1] {
                    // A dangling entry: its inode is known to be absent.
                    self.base.nodes.insert(Ino(codec::id_of(i)), Ok(None));
                }
            }
        }
        Ok(())
    }

    /// lookup's rows in one statement: the directory, the entry and its inode.
    pub(crate) async fn fetch_lookup(&mut self, parent: Ino, name: &[u8]) -> Result<()> {
        let stmt = self.sql.lookup(parent.0 as i64, name.to_vec());
        let mut cols: Vec<Ty> = NODE_TYS.to_vec();
        cols.extend([Ty::Int, Ty::Int]);
        cols.extend(NODE_TYS);
        let rows = self.rows(stmt, &cols).await?;
        self.base.nodes.insert(parent, Ok(None));
        let Some(r) = rows.into_iter().next() else {
            return Ok(());
        };
        self.cache_nodes(vec![r.clone()], 0, false);
        let what = format!("entry {parent}/{}", meta_core::types::show_name(name));
        let e = codec::entry(&r[16], &r[17], &what);
        if let Ok(Some(e)) = &e {
            self.base.nodes.insert(e.ino, Ok(None));
            self.cache_nodes(vec![r.clone()], 18, false);
        }
        self.base.edges.insert((parent, name.to_vec()), e);
        Ok(())
    }

    /// Reads the symlink targets of `inos`.
    pub(crate) async fn fetch_symlinks(&mut self, inos: &[Ino]) -> Result<()> {
        if inos.is_empty() {
            return Ok(());
        }
        let keys = inos.iter().map(|i| i.0 as i64).collect();
        let rows = self
            .rows_all(self.sql.symlinks(keys), &[Ty::Int, Ty::Bytes])
            .await?;
        for &i in inos {
            self.base.symlinks.insert(i, Ok(None));
        }
        for r in rows {
            if let Val::Int(i) = r[0] {
                let ino = Ino(codec::id_of(i));
                self.base
                    .symlinks
                    .insert(ino, codec::symlink_target(&r[1], ino).map(Some));
            }
        }
        Ok(())
    }

    /// Reads xattrs `(ino, name)`.
    pub(crate) async fn fetch_xattrs(&mut self, keys: &BTreeSet<(Ino, Vec<u8>)>) -> Result<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let k = keys.iter().map(|(i, n)| (i.0 as i64, n.clone())).collect();
        let rows = self
            .rows_all(self.sql.xattrs(k), &[Ty::Int, Ty::Bytes, Ty::Bytes])
            .await?;
        for k in keys {
            self.base.xattrs.insert(k.clone(), Ok(None));
        }
        for r in rows {
            if let (Val::Int(i), Val::Bytes(n)) = (&r[0], &r[1]) {
                let ino = Ino(codec::id_of(*i));
                self.base
                    .xattrs
                    .insert((ino, n.clone()), codec::xattr_value(&r[2], ino).map(Some));
            }
        }
        Ok(())
    }

    pub(super) fn cache_chunk_rows(&mut self, rows: Vec<Vec<Val>>) {
        for r in rows {
            let (Val::Int(i), Val::Int(x)) = (&r[0], &r[1]) else {
                continue;
            };
            let ino = Ino(codec::id_of(*i));
            let Ok(indx) = u32::try_from(*x) else {
                continue;
            };
            let what = format!("chunk {indx} of inode {ino}");
            self.base
                .chunks
                .insert((ino, indx), codec::decode_slices(&r[2], &what));
        }
    }

    /// Reads counters; `lock`: with a row lock held to COMMIT (see [`Sql::counters`]).
    pub(crate) async fn fetch_counters(&mut self, which: &[Counter], lock: bool) -> Result<()> {
        let names = which.iter().map(|c| c.name().to_string()).collect();
        let rows = self
            .rows_all(self.sql.counters(names, lock), &[Ty::Text, Ty::Int])
            .await?;
        for &c in which {
            self.base.counters.insert(c, Ok(0));
        }
        for r in rows {
            let Val::Text(n) = &r[0] else { continue };
            if let Some(c) = Counter::from_name(n) {
                let what = format!("counter {n}");
                self.base.counters.insert(c, codec::int(&r[1], &what));
            }
        }
        Ok(())
    }

    /// Reads the statistics rows of `dirs` into the cache (directories without a row cached
    /// as zeros).
    pub(super) async fn fetch_dir_stats(&mut self, dirs: &BTreeSet<Ino>) -> Result<()> {
        if dirs.is_empty() {
            return Ok(());
        }
        let keys = dirs.iter().map(|i| i.0 as i64).collect();
        let rows = self
            .rows_all(self.sql.dir_stats(keys), &[Ty::Int; 4])
            .await?;
        for &d in dirs {
            self.base.dir_stats.insert(d, Ok(DirStat::default()));
        }
        for r in rows {
            let (d, s) = codec::dir_stat(&r)?;
            self.base.dir_stats.insert(d, Ok(s));
        }
        Ok(())
    }

    /// The stored statistics of each of `dirs`, positionally (zeros without a row), read
    /// together: one statement on PostgreSQL, one per 4,096 directories elsewhere.
    pub(crate) async fn read_dir_stats(&mut self, dirs: &[Ino]) -> Result<Vec<DirStat>> {
        let set: BTreeSet<Ino> = dirs.iter().copied().collect();
        self.fetch_dir_stats(&set).await?;
        dirs.iter()
            .map(|d| {
                self.base
                    .dir_stats
                    .get(d)
                    .cloned()
                    .unwrap_or(Ok(DirStat::default()))
            })
            .collect()
    }

    // ------------------------------------------------------------------------------------
    // Prefetch

    /// Reads the batch's read set (see the module docs). `hints` are inodes to lock in any
    /// case (learned from a previous attempt).
    pub(crate) async fn prefetch(
        &mut self,
        ops: &[Op],
        limits: &Limits,
        hints: &BTreeSet<Ino>,
    ) -> Result<()> {
        let mut edge_keys: BTreeSet<(Ino, Vec<u8>)> = BTreeSet::new();
        // Entries whose target inode the batch rewrites (removed or replaced).
        let mut target_keys: Vec<(Ino, Vec<u8>)> = Vec::new();
        let mut lock: BTreeSet<Ino> = hints.clone();
        let mut plain: BTreeSet<Ino> = BTreeSet::new();
        let mut chunk_keys: BTreeSet<(Ino, u32)> = BTreeSet::new();
        let mut trunc: BTreeSet<Ino> = BTreeSet::new();
        let mut xattr_keys: BTreeSet<(Ino, Vec<u8>)> = BTreeSet::new();
        let mut pend_files: BTreeSet<Ino> = BTreeSet::new();
        let mut pend_slices: BTreeSet<u64> = BTreeSet::new();
        // Removals per directory (sizes the listings of directories that may be removed).
        let mut removals: HashMap<Ino, i64> = HashMap::new();
        let mut cross_rename = false;
        let mut sess = session::SessNeeds::default();
        let mut quota = quota::QuotaNeeds::default();
        // Directories the ops are expected to charge (their quota chains are read together).
        let mut charged: BTreeSet<Ino> = BTreeSet::new();
        let name = |p: Ino, n: &[u8], keys: &mut BTreeSet<(Ino, Vec<u8>)>| {
            if validate_name(n).is_ok() {
                keys.insert((p, n.to_vec()));
                true
            } else {
                false
            }
        };
        for op in ops {
            if sess.add(op) || quota.add(op) {
                continue;
            }
            match op {
                Op::Mknod {
                    parent,
                    name: n,
                    ino,
                    ..
                } => {
                    name(*parent, n, &mut edge_keys);
                    plain.insert(*parent);
                    plain.insert(*ino);
                    charged.insert(*parent);
                }
                Op::Link {
                    ino,
                    parent,
                    name: n,
                    ..
                } => {
                    name(*parent, n, &mut edge_keys);
                    lock.insert(*ino);
                    plain.insert(*parent);
                    charged.insert(*parent);
                }
                Op::Unlink {
                    parent, name: n, ..
                }
                | Op::Rmdir {
                    parent, name: n, ..
                } => {
                    if name(*parent, n, &mut edge_keys) {
                        target_keys.push((*parent, n.clone()));
                    }
                    plain.insert(*parent);
                    charged.insert(*parent);
                    *removals.entry(*parent).or_default() += 1;
                }
                Op::Rename {
                    parent,
                    name: n,
                    new_parent,
                    new_name,
                    ..
                } => {
                    if name(*parent, n, &mut edge_keys) {
                        target_keys.push((*parent, n.clone()));
                    }
                    if name(*new_parent, new_name, &mut edge_keys) {
                        target_keys.push((*new_parent, new_name.clone()));
                    }
                    plain.insert(*parent);
                    plain.insert(*new_parent);
                    charged.extend([*parent, *new_parent]);
                    *removals.entry(*parent).or_default() += 1;
                    cross_rename |= parent != new_parent;
                }
                Op::SetAttr { ino, mask, .. } => {
                    lock.insert(*ino);
                    if mask.contains(SetAttrMask::SIZE) {
                        trunc.insert(*ino);
                    }
                }
                Op::Write { ino, indx, .. } | Op::CompactChunk { ino, indx, .. } => {
                    lock.insert(*ino);
                    chunk_keys.insert((*ino, *indx));
                }
                Op::Truncate { ino, .. } => {
                    lock.insert(*ino);
                    trunc.insert(*ino);
                }
                Op::SetXattr { ino, name: n, .. } | Op::RemoveXattr { ino, name: n, .. } => {
                    lock.insert(*ino);
                    xattr_keys.insert((*ino, n.clone()));
                }
                Op::ClearPendingFile { ino } => {
                    pend_files.insert(*ino);
                    plain.insert(*ino);
                }
                Op::ClearPendingSlice { id } => {
                    pend_slices.insert(*id);
                }
                Op::Restore(rec) => {
                    lock.insert(rec.ino);
                    for (p, n) in &rec.links {
                        name(*p, n, &mut edge_keys);
                        plain.insert(*p);
                        charged.insert(*p);
                    }
                }
                _ => {}
            }
        }
        // Session rows first (see the session module), and the inodes closing sessions hold.
        self.prefetch_sessions(&mut sess).await?;
        lock.extend(sess.lock.iter().copied());
        lock.remove(&Ino::ZERO);
        plain.remove(&Ino::ZERO);

        // Directory moves between directories take the rename lock first, so the ancestor
        // chains read below cannot change until this batch commits (no rename cycles).
        if self.lock && cross_rename {
            let s = self.sql.rename_lock();
            self.rows(s, &[Ty::Int]).await?;
        }
        // Entries the batch removes or replaces are read (and locked) first, then the inodes
        // they name; entries expected absent (creates) and parent directories need no lock:
        // a concurrent insert of the same name fails the batch's INSERT (unique key), and
        // directories only get commutative updates.
        let locked_keys: BTreeSet<(Ino, Vec<u8>)> = target_keys.iter().cloned().collect();
        self.fetch_edges(&locked_keys, true).await?;
        let mut dirs_removed: BTreeSet<Ino> = BTreeSet::new();
        for k in &target_keys {
            if let Some(Ok(Some(e))) = self.base.edges.get(k) {
                lock.insert(e.ino);
                // Whether the inode is held open decides if removing its last link
                // deletes it.
                sess.openers.insert(e.ino);
                if e.typ == FileType::Directory {
                    dirs_removed.insert(e.ino);
                }
            }
        }
        let plain_keys: BTreeSet<(Ino, Vec<u8>)> =
            edge_keys.difference(&locked_keys).cloned().collect();
        if self.lock {
            for i in &lock {
                plain.remove(i);
            }
            self.fetch_nodes(&lock, true).await?;
            self.fetch_plain(&plain_keys, &plain).await?;
        } else {
            plain.extend(lock.iter().copied());
            self.fetch_plain(&plain_keys, &plain).await?;
        }

        // Quota chains start at the named parents, the removed directories, and the parents
        // of the inodes the batch rewrites (a write or truncate charges the file's parent).
        charged.extend(dirs_removed.iter().copied());
        for i in &lock {
            if let Some(Ok(Some(a))) = self.base.nodes.get(i) {
                charged.insert(a.parent);
            }
        }
        self.hint_quota_chains(charged);

        // After the locks: what the ops check inside the rows they locked.
        let dirs: Vec<(i64, i64)> = dirs_removed
            .iter()
            .map(|d| (d.0 as i64, 1 + removals.get(d).copied().unwrap_or(0)))
            .collect();
        if !dirs.is_empty() {
            let rows = self
                .rows_all(self.sql.first_entries(dirs.clone()), &edge_cols())
                .await?;
            for (d, n) in dirs {
                let ino = Ino(codec::id_of(d));
                // Padded statements repeat a directory: deduplicate by name.
                let mine: Vec<Vec<Val>> = rows
                    .iter()
                    .filter(|r| r[0] == Val::Int(d))
                    .filter_map(|r| match &r[1] {
                        Val::Bytes(n) => Some((n.clone(), r[1..].to_vec())),
                        _ => None,
                    })
                    .collect::<BTreeMap<_, _>>()
                    .into_values()
                    .collect();
                let complete = (mine.len() as i64) < n;
                self.cache_listing(ino, None, &mine, complete, 0);
            }
        }
        if !chunk_keys.is_empty() {
            let k = chunk_keys
                .iter()
                .map(|(i, x)| (i.0 as i64, i64::from(*x)))
                .collect();
            let rows = self
                .rows_all(self.sql.chunks(k), &[Ty::Int, Ty::Int, Ty::Bytes])
                .await?;
            for &k in &chunk_keys {
                self.base.chunks.insert(k, Ok(Vec::new()));
            }
            self.cache_chunk_rows(rows);
        }
        if !trunc.is_empty() {
            let k = trunc.iter().map(|i| i.0 as i64).collect();
            let rows = self
                .rows_all(self.sql.chunks_of(k), &[Ty::Int, Ty::Int, Ty::Bytes])
                .await?;
            for &i in &trunc {
                let list: Vec<u32> = rows
                    .iter()
                    .filter(|r| r[0] == Val::Int(i.0 as i64))
                    .filter_map(|r| match r[1] {
                        Val::Int(x) => u32::try_from(x).ok(),
                        _ => None,
                    })
                    .collect();
                self.base.chunk_lists.insert(i, list);
            }
            self.cache_chunk_rows(rows);
        }
        self.fetch_xattrs(&xattr_keys).await?;
        if !pend_files.is_empty() {
            let rows = self
                .rows_all(
                    self.sql
                        .delfiles(pend_files.iter().map(|i| i.0 as i64).collect()),
                    &[Ty::Int],
                )
                .await?;
            for &i in &pend_files {
                self.base.pend.insert(PKey::File(i), false);
            }
            for r in rows {
                if let Val::Int(i) = r[0] {
                    self.base
                        .pend
                        .insert(PKey::File(Ino(codec::id_of(i))), true);
                }
            }
        }
        if !pend_slices.is_empty() {
            let rows = self
                .rows_all(
                    self.sql
                        .delslices(pend_slices.iter().map(|i| *i as i64).collect()),
                    &[Ty::Int],
                )
                .await?;
            for &i in &pend_slices {
                self.base.pend.insert(PKey::Slice(i), false);
            }
            for r in rows {
                if let Val::Int(i) = r[0] {
                    self.base.pend.insert(PKey::Slice(codec::id_of(i)), true);
                }
            }
        }
        if limits.capacity > 0 || limits.inodes > 0 {
            // Locked: the batch's quota checks and its counter updates see no other
            // client's in between.
            self.fetch_counters(&[Counter::UsedSpace, Counter::TotalInodes], true)
                .await?;
        }
        self.prefetch_records(&sess).await?;
        // Last: the quota counters' lock comes after every other row lock (see `quota`).
        self.prefetch_quotas(&quota).await
    }
}
