//! [`SqlTxn`]: meta-core's transaction view ([`TxnView`]) over one SQL transaction.
//!
//! A batch runs in four steps, so that it costs a handful of round trips whatever its size:
//!
//! 1. **Prefetch** ([`SqlTxn::prefetch`]): the rows the batch's ops will read, with a few
//!    multi-row SELECTs (entries named by the ops, the inodes they name or point to, the
//!    first entries of directories about to be removed, chunks, xattrs, pending records,
//!    counters when the volume has limits). On PostgreSQL and MySQL the rows the batch will
//!    rewrite (entries it removes or replaces, inodes whose attributes it sets) are read
//!    `FOR UPDATE`, sorted, so concurrent clients cannot lose each other's updates.
//! 2. **Logic**: meta-core's generic op functions run against a cache of those rows; a read
//!    the prefetch did not anticipate costs one extra SELECT (correct, only slower).
//! 3. **Overlay**: writes are buffered in two layers, like `meta_core::kv::KvTxn`: the
//!    current op's layer is dropped when the op fails (a savepoint without a round trip) and
//!    folded into the batch layer when it succeeds. Directory updates ([`TxnView::update_dir`]),
//!    directory statistics ([`TxnView::add_dir_stat`]) and counters are kept as deltas.
//! 4. **Flush** ([`SqlTxn::flush`]): the batch layer becomes multi-row DELETE / INSERT /
//!    upsert statements, then the commutative `nlink = nlink + δ, mtime = max(mtime, t)`
//!    updates of parent directories, the `dirstat` upsert adding each directory's statistics
//!    delta, and the `value = value + δ` counter updates as the last statements, so the hot
//!    rows are locked only from there to COMMIT.
//!
//! Directory quotas (optimistic charging with a locked rerun, and how a new quota is ordered
//! against the batches that charge statistics without it) are in the `quota` and
//! `optimistic` submodules.

mod optimistic;
mod quota;
mod session;

pub(crate) use optimistic::{Counters, QuotaCache};

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use meta_core::logic::{self, Limits, TxnView};
use meta_core::types::validate_name;
use meta_core::{
    Attr, Counter, DirStat, Entry, Error, ErrorKind, FileType, Ino, LockKind, LockOwner, LockType,
    Op, Pending, PlockRange, Quota, Result, Session, SetAttrMask, Sid, Slice, Timespec,
};

use crate::codec::{self, NODE_TYS, corrupted, ino_arg};
use crate::error::{Stage, classify, in_batch};
use crate::exec::{Arg, Exec, Stmt, Ty, Val};
use crate::sql::Sql;

/// Counters of what the backend sent to the database.
#[derive(Debug, Default)]
pub(crate) struct Stats {
    pub statements: AtomicU64,
    pub transactions: AtomicU64,
    pub commits: AtomicU64,
    pub retries: AtomicU64,
    pub batches: AtomicU64,
    pub ops: AtomicU64,
    pub misses: AtomicU64,
    pub reruns: AtomicU64,
}

impl Stats {
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

type Cached<T> = Result<Option<T>>;

/// A key of a pending-deletion record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum PKey {
    File(Ino),
    Slice(u64),
}

impl PKey {
    fn of(p: Pending) -> (PKey, u64) {
        match p {
            Pending::File { ino, length } => (PKey::File(ino), length),
            Pending::Slice { id, size } => (PKey::Slice(id), u64::from(size)),
        }
    }
}

/// The first entries of a directory after a cursor, as read from the database.
#[derive(Debug, Clone)]
struct Listing {
    entries: Vec<(Vec<u8>, Entry)>,
    /// True when `entries` holds every entry after the cursor.
    complete: bool,
}

/// What the database held when first read in this transaction.
#[derive(Default)]
struct Base {
    nodes: HashMap<Ino, Cached<Attr>>,
    /// Nodes read with a row lock (PostgreSQL/MySQL write transactions).
    locked: HashSet<Ino>,
    edges: HashMap<(Ino, Vec<u8>), Cached<Entry>>,
    listings: HashMap<(Ino, Option<Vec<u8>>), Result<Listing>>,
    chunks: HashMap<(Ino, u32), Result<Vec<Slice>>>,
    chunk_lists: HashMap<Ino, Vec<u32>>,
    symlinks: HashMap<Ino, Cached<Vec<u8>>>,
    xattrs: HashMap<(Ino, Vec<u8>), Cached<Vec<u8>>>,
    counters: HashMap<Counter, Result<i64>>,
    /// Directory statistics rows (zeros for a directory without one).
    dir_stats: HashMap<Ino, Result<DirStat>>,
    /// Quota rows (locked in PostgreSQL/MySQL write transactions; see `quota`).
    quotas: HashMap<Ino, Cached<Quota>>,
    /// The quota count, as read with the lock of `quota` (`None`: not read), or as an
    /// optimistic attempt started from it.
    quota_count: Option<Result<i64>>,
    /// The quota set's generation read with the count (or started from).
    quota_gen: Option<i64>,
    pend: HashMap<PKey, bool>,
    sess: session::SessBase,
}

const WIPE_XATTR: u8 = 1;
const WIPE_SYMLINK: u8 = 2;
const WIPE_CHUNK: u8 = 4;

/// A buffered write of a node: an absolute value (`Some(None)` = deleted) and/or a directory
/// delta applied on top of it.
#[derive(Debug, Clone, Copy, Default)]
struct NodeW {
    abs: Option<Option<Attr>>,
    delta: Option<(i64, Timespec)>,
}

/// A buffered change of a directory's statistics: `reset` when the directory was deleted
/// ([`TxnView::delete_inode`]: its stored row goes, and what came before in the batch with it),
/// then `delta` added on top (from zero after a reset).
#[derive(Debug, Clone, Copy, Default)]
struct StatW {
    reset: bool,
    delta: DirStat,
}

fn add_delta(a: Option<(i64, Timespec)>, b: Option<(i64, Timespec)>) -> Option<(i64, Timespec)> {
    match (a, b) {
        (Some((d1, t1)), Some((d2, t2))) => Some((d1 + d2, t1.max(t2))),
        (x, None) | (None, x) => x,
    }
}

/// One layer of buffered writes.
#[derive(Default)]
struct Layer {
    nodes: BTreeMap<Ino, NodeW>,
    edges: BTreeMap<(Ino, Vec<u8>), Option<Entry>>,
    /// Empty list = chunk removed.
    chunks: BTreeMap<(Ino, u32), Vec<Slice>>,
    symlinks: BTreeMap<Ino, Option<Vec<u8>>>,
    xattrs: BTreeMap<(Ino, Vec<u8>), Option<Vec<u8>>>,
    pend: BTreeMap<PKey, Option<u64>>,
    counters: BTreeMap<Counter, i64>,
    dir_stats: BTreeMap<Ino, StatW>,
    /// Quotas stored (`Some`) or removed (`None`).
    quotas: BTreeMap<Ino, Option<Quota>>,
    /// The growth of quotas the ops checked (optimistic attempts).
    quota_peaks: BTreeMap<Ino, optimistic::Peak>,
    /// Inodes whose xattrs / symlink / chunks below this layer are all gone.
    wiped: BTreeMap<Ino, u8>,
    sess: session::SessLayer,
}

impl Layer {
    fn wiped(&self, ino: Ino, what: u8) -> bool {
        self.wiped.get(&ino).is_some_and(|w| w & what != 0)
    }

    fn wipe(&mut self, ino: Ino, what: u8) {
        if what & WIPE_XATTR != 0 {
            let keys: Vec<_> = self
                .xattrs
                .range((ino, Vec::new())..)
                .take_while(|((i, _), _)| *i == ino)
                .map(|(k, _)| k.clone())
                .collect();
            for k in keys {
                self.xattrs.remove(&k);
            }
        }
        if what & WIPE_SYMLINK != 0 {
            self.symlinks.remove(&ino);
        }
        if what & WIPE_CHUNK != 0 {
            let keys: Vec<_> = self
                .chunks
                .range((ino, 0)..=(ino, u32::MAX))
                .map(|(k, _)| *k)
                .collect();
            for k in keys {
                self.chunks.remove(&k);
            }
        }
        *self.wiped.entry(ino).or_default() |= what;
    }

    /// Folds `op` (a later layer) into this one.
    fn fold(&mut self, op: Layer) {
        for (ino, what) in op.wiped {
            self.wipe(ino, what);
        }
        for (ino, w) in op.nodes {
            if w.abs.is_some() {
                self.nodes.insert(ino, w);
            } else {
                let e = self.nodes.entry(ino).or_default();
                e.delta = add_delta(e.delta, w.delta);
            }
        }
        self.edges.extend(op.edges);
        self.chunks.extend(op.chunks);
        self.symlinks.extend(op.symlinks);
        self.xattrs.extend(op.xattrs);
        self.pend.extend(op.pend);
        for (c, d) in op.counters {
            *self.counters.entry(c).or_default() += d;
        }
        for (ino, w) in op.dir_stats {
            if w.reset {
                self.dir_stats.insert(ino, w);
            } else {
                let e = self.dir_stats.entry(ino).or_default();
                e.delta = e.delta + w.delta;
            }
        }
        self.quotas.extend(op.quotas);
        optimistic::fold_peaks(&mut self.quota_peaks, op.quota_peaks);
        self.sess.fold(op.sess);
    }
}

/// The transaction view. Built on a connection inside a transaction (batches) or on a plain
/// pooled connection (reads, `lock` false).
pub(crate) struct SqlTxn<'a> {
    conn: &'a mut dyn Exec,
    sql: &'a Sql,
    stats: &'a Stats,
    /// A batch transaction: every driver error ends the batch.
    write: bool,
    /// A write transaction on a dialect with row locks.
    lock: bool,
    /// PostgreSQL batches that need no row lock (only creates) run without BEGIN/COMMIT:
    /// plain reads, then the whole write set as one statement, committed by itself.
    autocommit: bool,
    base: Base,
    batch: Layer,
    op: Layer,
    /// Inodes whose unlocked read proved stale at flush: the retry locks them up front.
    pub hints: Vec<Ino>,
    /// Directories whose quota chains the batch's first quota read covers too (see `quota`).
    quota_hint: BTreeSet<Ino>,
    /// `has_quotas` answered from counters it did not lock (an optimistic attempt): the
    /// flush carries the generation guard.
    quota_guard: bool,
    /// Optimistic quota charging (see `quota`).
    opt: optimistic::OptState<'a>,
}

fn edge_cols() -> [Ty; 4] {
    [Ty::Int, Ty::Bytes, Ty::Int, Ty::Int]
}

impl<'a> SqlTxn<'a> {
    /// A view on `conn`; `write` for a batch transaction.
    pub(crate) fn new(conn: &'a mut dyn Exec, sql: &'a Sql, stats: &'a Stats, write: bool) -> Self {
        SqlTxn {
            conn,
            sql,
            stats,
            write,
            lock: write && sql.d.row_locks(),
            autocommit: false,
            base: Base::default(),
            batch: Layer::default(),
            op: Layer::default(),
            hints: Vec::new(),
            quota_hint: BTreeSet::new(),
            quota_guard: false,
            opt: optimistic::OptState::default(),
        }
    }

    /// Makes this write view commit its flush as one autocommitted statement (PostgreSQL,
    /// batches whose ops need no row lock: see [`SqlTxn::lock_free`]).
    pub(crate) fn set_autocommit(&mut self) {
        self.autocommit = true;
    }

    /// True when `ops` need no row lock and can run autocommitted: plain creates only (a
    /// create that opens the new inode takes a share lock on its session row). Such a batch
    /// runs optimistically (see `quota`): its generation guard and conditional quota
    /// updates sit in its single write statement.
    pub(crate) fn lock_free(ops: &[Op]) -> bool {
        ops.iter().all(|o| {
            matches!(
                o,
                Op::Mknod {
                    opened_by: None,
                    ..
                }
            )
        })
    }

    fn err(&self, e: sqlx::Error) -> Error {
        let e = classify(e, Stage::Statement, self.sql.d);
        if self.write { in_batch(e) } else { e }
    }

    /// Runs a query, counting it.
    pub(crate) async fn rows(&mut self, stmt: Stmt, cols: &[Ty]) -> Result<Vec<Vec<Val>>> {
        Stats::add(&self.stats.statements, 1);
        match self.conn.rows(stmt, cols).await {
            Ok(r) => Ok(r),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Runs several queries, concatenating their rows.
    async fn rows_all(&mut self, stmts: Vec<Stmt>, cols: &[Ty]) -> Result<Vec<Vec<Val>>> {
        let mut out = Vec::new();
        for s in stmts {
            out.extend(self.rows(s, cols).await?);
        }
        Ok(out)
    }

    /// Runs a statement, counting it; returns the rows it matched.
    pub(crate) async fn run(&mut self, stmt: Stmt) -> Result<u64> {
        Stats::add(&self.stats.statements, 1);
        match self.conn.run(stmt).await {
            Ok(d) => Ok(d.rows),
            Err(e) => Err(self.err(e)),
        }
    }

    async fn run_all(&mut self, stmts: Vec<Stmt>) -> Result<u64> {
        let mut n = 0;
        for s in stmts {
            n += self.run(s).await?;
        }
        Ok(n)
    }

    fn miss(&self) {
        Stats::add(&self.stats.misses, 1);
    }

    // ------------------------------------------------------------------------------------
    // Filling the cache

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
    async fn fetch_edges(&mut self, keys: &BTreeSet<(Ino, Vec<u8>)>, lock: bool) -> Result<()> {
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

    fn cache_chunk_rows(&mut self, rows: Vec<Vec<Val>>) {
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
    async fn fetch_dir_stats(&mut self, dirs: &BTreeSet<Ino>) -> Result<()> {
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

    // ------------------------------------------------------------------------------------
    // Reads through the overlay

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

    // ------------------------------------------------------------------------------------
    // Flush

    /// Folds the last op's layer and writes the batch: validation of unlocked rows, then
    /// deletes, inserts and upserts, then directory deltas, then counter deltas. `Conflict`
    /// (with [`SqlTxn::hints`] set) when a row read without a lock changed meanwhile.
    pub(crate) async fn flush(&mut self) -> Result<()> {
        let op = std::mem::take(&mut self.op);
        self.batch.fold(op);
        let w = std::mem::take(&mut self.batch);
        let sql = self.sql;

        // Nodes.
        let mut node_insert: Vec<Vec<Arg>> = Vec::new();
        let mut node_upsert: Vec<Vec<Arg>> = Vec::new();
        let mut node_delete: Vec<i64> = Vec::new();
        let mut expect_deleted = 0u64;
        let mut dir_rows: Vec<[i64; 5]> = Vec::new();
        let walked = self.quotas_walked(&w.quotas);
        let mut validate: BTreeSet<Ino> = BTreeSet::new();
        for (ino, nw) in &w.nodes {
            let base = self.base.nodes.get(ino);
            let exists = matches!(base, Some(Ok(Some(_))));
            match nw.abs {
                Some(abs) => {
                    if self.lock && exists && !self.base.locked.contains(ino) {
                        validate.insert(*ino);
                    }
                    match abs {
                        Some(a) => {
                            let a = match nw.delta {
                                Some((d, t)) => logic::bump_dir(&a, d, t),
                                None => a,
                            };
                            if matches!(base, Some(Ok(None))) {
                                node_insert.push(codec::node_args(*ino, &a));
                            } else {
                                node_upsert.push(codec::node_args(*ino, &a));
                            }
                        }
                        None => {
                            if !matches!(base, Some(Ok(None))) {
                                node_delete.push(ino.0 as i64);
                                if exists {
                                    expect_deleted += 1;
                                }
                            }
                        }
                    }
                }
                None => {
                    if let Some((d, t)) = nw.delta {
                        let parent = self.chain_parent(walked, *ino);
                        dir_rows.push([ino.0 as i64, d, t.sec, i64::from(t.nsec), parent]);
                    }
                }
            }
        }
        if self.autocommit && !validate.is_empty() {
            return Err(Error::new(
                ErrorKind::Internal,
                "an autocommitted batch rewrites existing inodes",
            ));
        }
        if !validate.is_empty() {
            let keys = validate.iter().map(|i| i.0 as i64).collect();
            let rows = self.rows_all(sql.nodes(keys, true), &NODE_TYS).await?;
            let mut fresh: HashMap<Ino, Result<Attr>> = HashMap::new();
            for r in rows {
                if let Some(i) = codec::node_ino(&r) {
                    fresh.insert(i, codec::node_attr(&r));
                }
            }
            let mut stale = Vec::new();
            for i in &validate {
                let same = match (fresh.get(i), self.base.nodes.get(i)) {
                    (Some(Ok(a)), Some(Ok(Some(b)))) => a == b,
                    _ => false,
                };
                if !same {
                    stale.push(*i);
                }
            }
            if !stale.is_empty() {
                self.hints = stale.clone();
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!("inodes {stale:?} changed since read; retrying with row locks"),
                ));
            }
        }

        // Wipes: every xattr / symlink / chunk row of an inode.
        let mut wipe_x: Vec<Vec<Arg>> = Vec::new();
        let mut wipe_s: Vec<Vec<Arg>> = Vec::new();
        let mut wipe_c: Vec<Vec<Arg>> = Vec::new();
        let mut wiped: [BTreeSet<Ino>; 3] = Default::default();
        for (ino, what) in &w.wiped {
            // Rows the database cannot hold need no DELETE: an inode created by this batch
            // has none, and only a symlink has a target.
            let base = self.base.nodes.get(ino);
            let new = matches!(base, Some(Ok(None)));
            let not_symlink =
                new || matches!(base, Some(Ok(Some(a))) if a.typ != FileType::Symlink);
            if what & WIPE_XATTR != 0 && !new {
                wipe_x.push(vec![ino_arg(*ino)]);
                wiped[0].insert(*ino);
            }
            if what & WIPE_SYMLINK != 0 && !not_symlink {
                wipe_s.push(vec![ino_arg(*ino)]);
                wiped[1].insert(*ino);
            }
            if what & WIPE_CHUNK != 0 {
                wipe_c.push(vec![ino_arg(*ino)]);
                wiped[2].insert(*ino);
            }
        }

        // Edges.
        let edge_key = [("parent", Ty::Int), ("name", Ty::Bytes)];
        let edge_cols = [
            ("parent", Ty::Int),
            ("name", Ty::Bytes),
            ("ino", Ty::Int),
            ("type", Ty::Int),
        ];
        let mut edge_delete: Vec<Vec<Arg>> = Vec::new();
        let mut edge_expect = 0u64;
        let mut edge_insert: Vec<Vec<Arg>> = Vec::new();
        let mut edge_upsert: Vec<Vec<Arg>> = Vec::new();
        for ((p, n), v) in w.edges {
            let base = self.base.edges.get(&(p, n.clone()));
            match v {
                None => match base {
                    Some(Ok(None)) => {}
                    Some(Ok(Some(_))) => {
                        edge_expect += 1;
                        edge_delete.push(vec![ino_arg(p), Arg::Bytes(n)]);
                    }
                    _ => edge_delete.push(vec![ino_arg(p), Arg::Bytes(n)]),
                },
                Some(e) => {
                    let row = vec![
                        ino_arg(p),
                        Arg::Bytes(n),
                        ino_arg(e.ino),
                        Arg::Int(i64::from(e.typ.code())),
                    ];
                    match base {
                        Some(Ok(Some(b))) if *b == e => {}
                        Some(Ok(None)) => edge_insert.push(row),
                        _ => edge_upsert.push(row),
                    }
                }
            }
        }

        // Chunks, symlinks, xattrs, pending records.
        let mut chunk_delete: Vec<Vec<Arg>> = Vec::new();
        let mut chunk_upsert: Vec<Vec<Arg>> = Vec::new();
        let mut put_inos: [BTreeSet<Ino>; 3] = Default::default();
        for ((ino, indx), slices) in w.chunks {
            let key = vec![ino_arg(ino), Arg::Int(i64::from(indx))];
            if slices.is_empty() {
                chunk_delete.push(key);
            } else {
                put_inos[2].insert(ino);
                let mut row = key;
                row.push(Arg::Bytes(codec::encode_slices(&slices)));
                chunk_upsert.push(row);
            }
        }
        let mut sym_delete: Vec<Vec<Arg>> = Vec::new();
        let mut sym_upsert: Vec<Vec<Arg>> = Vec::new();
        for (ino, t) in w.symlinks {
            match t {
                Some(t) => {
                    put_inos[1].insert(ino);
                    sym_upsert.push(vec![ino_arg(ino), Arg::Bytes(t)]);
                }
                None => sym_delete.push(vec![ino_arg(ino)]),
            }
        }
        let mut x_delete: Vec<Vec<Arg>> = Vec::new();
        let mut x_upsert: Vec<Vec<Arg>> = Vec::new();
        for ((ino, n), v) in w.xattrs {
            match v {
                Some(v) => {
                    put_inos[0].insert(ino);
                    x_upsert.push(vec![ino_arg(ino), Arg::Bytes(n), Arg::Bytes(v)]);
                }
                None => x_delete.push(vec![ino_arg(ino), Arg::Bytes(n)]),
            }
        }
        let (mut pf_del, mut pf_put, mut ps_del, mut ps_put) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (k, v) in w.pend {
            match (k, v) {
                (PKey::File(i), Some(len)) => pf_put.push(vec![ino_arg(i), Arg::Int(len as i64)]),
                (PKey::File(i), None) => pf_del.push(vec![ino_arg(i)]),
                (PKey::Slice(id), Some(sz)) => {
                    ps_put.push(vec![Arg::Int(id as i64), Arg::Int(sz as i64)])
                }
                (PKey::Slice(id), None) => ps_del.push(vec![Arg::Int(id as i64)]),
            }
        }
        // Directory statistics: the row of a deleted directory goes (one created by this
        // batch, or a deleted non-directory, has none), deltas are added by the database.
        let mut stat_delete: Vec<Vec<Arg>> = Vec::new();
        let mut stat_rows: Vec<[i64; 4]> = Vec::new();
        let mut stat_reput = false;
        for (ino, sw) in &w.dir_stats {
            let put = !sw.delta.is_zero();
            if sw.reset {
                let stored = match self.base.nodes.get(ino) {
                    Some(Ok(None)) => false,
                    Some(Ok(Some(a))) => a.typ == FileType::Directory,
                    _ => true,
                };
                if stored {
                    stat_delete.push(vec![ino_arg(*ino)]);
                    stat_reput |= put;
                }
            }
            if put {
                let d = sw.delta;
                stat_rows.push([ino.0 as i64, d.inodes, d.length, d.space]);
            }
        }
        let quotas = self.quota_flush(w.quotas, &w.quota_peaks, &w.nodes)?;
        let (sess_deletes, sess_puts) = session::flush_statements(sql, w.sess);
        let counters: Vec<(String, i64)> = w
            .counters
            .into_iter()
            .filter(|(_, d)| *d != 0)
            .map(|(c, d)| (c.name().to_string(), d))
            .collect();

        // The plan, in execution order: wipes, deletes, inserts and upserts, then the
        // commutative updates of the hot rows (directories, counters) last.
        let ino_key = [("ino", Ty::Int)];
        let node_cols: Vec<(&str, Ty)> = codec::NODE_COLS.iter().map(|c| (*c, Ty::Int)).collect();
        let mut plan: Vec<Group> = Vec::new();
        // First the generation guard of an optimistic batch: it waits for a batch creating a
        // quota before this one takes any other row lock (see `quota`).
        plan.extend(quotas.guard);
        // A wipe and a put of the same inode in one table must not share a PostgreSQL
        // statement (one snapshot, unpredictable order): run such a wipe on its own first.
        let alone = |i: usize| !wiped[i].is_disjoint(&put_inos[i]);
        let mut early: Vec<Group> = Vec::new();
        for (i, (table, rows)) in [("xattr", wipe_x), ("symlink", wipe_s), ("chunk", wipe_c)]
            .into_iter()
            .enumerate()
        {
            let g = Group::new(sql.delete_keys(table, &ino_key, rows));
            if alone(i) {
                early.push(g);
            } else {
                plan.push(g);
            }
        }
        plan.push(
            Group::new(sql.delete_keys("edge", &edge_key, edge_delete)).expect(
                edge_expect,
                "an entry this batch removes was removed concurrently",
            ),
        );
        plan.push(
            Group::new(sql.delete_keys(
                "node",
                &ino_key,
                node_delete.iter().map(|&i| vec![Arg::Int(i)]).collect(),
            ))
            .expect(
                expect_deleted,
                "an inode this batch deletes was deleted concurrently",
            ),
        );
        // The row of a directory deleted and then charged again in this batch (not something
        // the ops do) is deleted first, alone: a PostgreSQL statement's parts share one
        // snapshot.
        let g = Group::new(sql.delete_keys("dirstat", &[("ino", Ty::Int)], stat_delete));
        if stat_reput {
            early.push(g);
        } else {
            plan.push(g);
        }
        plan.push(Group::new(quotas.deletes));
        plan.push(Group::new(sql.delete_keys(
            "chunk",
            &[("ino", Ty::Int), ("indx", Ty::Int)],
            chunk_delete,
        )));
        plan.push(Group::new(sql.delete_keys("symlink", &ino_key, sym_delete)));
        plan.push(Group::new(sql.delete_keys(
            "xattr",
            &[("ino", Ty::Int), ("name", Ty::Bytes)],
            x_delete,
        )));
        plan.push(Group::new(sql.delete_keys("delfile", &ino_key, pf_del)));
        plan.push(Group::new(sql.delete_keys(
            "delslice",
            &[("id", Ty::Int)],
            ps_del,
        )));
        plan.push(Group::new(sess_deletes));
        plan.push(Group::new(sql.insert(
            "node",
            &node_cols,
            1,
            node_insert,
            false,
        )));
        plan.push(Group::new(sql.insert(
            "node",
            &node_cols,
            1,
            node_upsert,
            true,
        )));
        plan.push(Group::new(sql.insert(
            "edge",
            &edge_cols,
            2,
            edge_insert,
            false,
        )));
        plan.push(Group::new(sql.insert(
            "edge",
            &edge_cols,
            2,
            edge_upsert,
            true,
        )));
        plan.push(Group::new(sql.insert(
            "chunk",
            &[("ino", Ty::Int), ("indx", Ty::Int), ("slices", Ty::Bytes)],
            2,
            chunk_upsert,
            true,
        )));
        plan.push(Group::new(sql.insert(
            "symlink",
            &[("ino", Ty::Int), ("target", Ty::Bytes)],
            1,
            sym_upsert,
            true,
        )));
        plan.push(Group::new(sql.insert(
            "xattr",
            &[("ino", Ty::Int), ("name", Ty::Bytes), ("value", Ty::Bytes)],
            2,
            x_upsert,
            true,
        )));
        plan.push(Group::new(sql.insert(
            "delfile",
            &[("ino", Ty::Int), ("length", Ty::Int)],
            1,
            pf_put,
            true,
        )));
        plan.push(Group::new(sql.insert(
            "delslice",
            &[("id", Ty::Int), ("size", Ty::Int)],
            1,
            ps_put,
            true,
        )));
        plan.push(Group::new(sess_puts));
        plan.push(Group::new(quotas.upserts));
        let dirs = dir_rows.len() as u64;
        plan.push(Group::new(sql.dir_deltas(dir_rows)).expect(
            dirs,
            "a directory this batch updates was removed (or moved) concurrently",
        ));
        // An optimistic batch's quota rows after the directories' node rows and before the
        // statistics rows, the order the locked path takes them in.
        plan.push(quotas.deltas);
        // After the directories' node rows: a batch that removes a directory locks its node
        // row first, so it waits for (or is waited on by) a batch charging it.
        plan.push(Group::new(sql.dir_stat_deltas(stat_rows)));
        let n = counters.len() as u64;
        let mut g = Group::new(sql.counter_deltas(counters)).expect(n, "");
        g.corrupt = true;
        plan.push(g);
        plan.push(quotas.count);
        if self.autocommit && !early.is_empty() {
            return Err(Error::new(
                ErrorKind::Internal,
                "an autocommitted batch needs two write statements",
            ));
        }
        for mut g in early {
            let n = self.run_all(std::mem::take(&mut g.stmts)).await?;
            g.check(n)?;
        }
        plan.retain(|g| !g.stmts.is_empty());
        if self.autocommit && plan.is_empty() {
            return Ok(());
        }
        if sql.d == crate::sql::Dialect::Postgres && (plan.len() > 1 || self.autocommit) {
            // One statement, one round trip, for the whole write set.
            let flat: Vec<(usize, Stmt)> = plan
                .iter_mut()
                .enumerate()
                .flat_map(|(i, g)| {
                    std::mem::take(&mut g.stmts)
                        .into_iter()
                        .map(move |s| (i, s))
                })
                .collect();
            let owners: Vec<usize> = flat.iter().map(|(i, _)| *i).collect();
            // In autocommit mode the checks run inside the statement (a shortfall aborts
            // it, so nothing commits); a group spread over several statements cannot be
            // checked there, but PostgreSQL builds one statement per group.
            let guards: Vec<Option<u64>> = owners
                .iter()
                .map(|&i| {
                    let one = owners.iter().filter(|&&j| j == i).count() == 1;
                    (self.autocommit && one).then_some(plan[i].expect)
                })
                .collect();
            let merged = sql.merge_pg(flat.into_iter().map(|(_, s)| s).collect(), &guards);
            let cols = vec![Ty::Int; owners.len()];
            let row = if self.autocommit {
                Stats::add(&self.stats.statements, 1);
                match self.conn.rows(merged, &cols).await {
                    Ok(r) => {
                        Stats::add(&self.stats.commits, 1);
                        r
                    }
                    Err(e) => return Err(in_batch(classify(e, Stage::AutoCommit, sql.d))),
                }
            } else {
                self.rows(merged, &cols).await?
            };
            let mut counts = vec![0u64; plan.len()];
            if let Some(r) = row.first() {
                for (k, v) in r.iter().enumerate() {
                    if let (Some(&i), Val::Int(c)) = (owners.get(k), v) {
                        counts[i] += *c as u64;
                    }
                }
            }
            for (g, n) in plan.iter().zip(counts) {
                g.check(n)?;
            }
        } else {
            for mut g in plan {
                let stmts = std::mem::take(&mut g.stmts);
                let n = if g.query {
                    self.rows_all(stmts, &[Ty::Int]).await?.len() as u64
                } else {
                    self.run_all(stmts).await?
                };
                g.check(n)?;
            }
        }
        Ok(())
    }
}

/// Statements of one flush step, with the rows they must match.
struct Group {
    stmts: Vec<Stmt>,
    expect: u64,
    short: &'static str,
    /// A shortfall means a missing row (Corrupted), not a lost race (Conflict).
    corrupt: bool,
    /// Locking reads (a guard): what they match is the rows they return.
    query: bool,
}

impl Group {
    fn new(stmts: Vec<Stmt>) -> Group {
        Group {
            stmts,
            expect: 0,
            short: "",
            corrupt: false,
            query: false,
        }
    }

    fn expect(mut self, n: u64, why: &'static str) -> Group {
        self.expect = n;
        self.short = why;
        self
    }

    fn check(&self, matched: u64) -> Result<()> {
        if matched >= self.expect {
            return Ok(());
        }
        if self.corrupt {
            return Err(corrupted("a volume counter row is missing"));
        }
        Err(Error::new(ErrorKind::Conflict, self.short))
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
        let d = self.batch.counters.get(&counter).copied().unwrap_or(0)
            + self.op.counters.get(&counter).copied().unwrap_or(0);
        Ok(base.saturating_add(d))
    }

    async fn add_counter(&mut self, counter: Counter, delta: i64) -> Result<()> {
        *self.op.counters.entry(counter).or_default() += delta;
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

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;
    use meta_conformance::util::mknod_op;
    use meta_core::{Backend, Setting};

    fn ds(inodes: i64, length: i64, space: i64) -> DirStat {
        DirStat {
            inodes,
            length,
            space,
        }
    }

    /// `get_dir_stat` = stored row + batch deltas + op deltas; an op's deltas go with its
    /// rollback; `delete_inode` drops the row and everything added before it.
    #[tokio::test]
    async fn dir_stat_overlay() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("v.db").display());
        let b = crate::open(meta_core::parse_url(&url)?.0)?;
        b.format(&Setting::new("overlay"), false).await?;
        let ids = b.reserve_ids(meta_core::IdKind::Inode, 2).await?;
        let (d, f) = (Ino(ids.start), Ino(ids.start + 1));
        let now = Timespec::now();
        let res = b
            .apply(&[
                mknod_op(Ino::ROOT, b"d", d, FileType::Directory, now),
                mknod_op(d, b"f", f, FileType::Regular, now),
            ])
            .await?;
        anyhow::ensure!(res.iter().all(|r| r.is_ok()), "{res:?}");
        #[allow(irrefutable_let_patterns)] // the only pool of a sqlite-only build
        let crate::backend::Pools::Sqlite { writer, .. } = &b.pools else {
            anyhow::bail!("an sqlite:// URL opened another pool");
        };
        let mut conn = writer.acquire().await?;
        let mut t = SqlTxn::new(&mut *conn, &b.sql, &b.stats, false);
        let stored = ds(1, 0, 4096);
        anyhow::ensure!(t.get_dir_stat(d).await? == stored);
        anyhow::ensure!(t.get_dir_stat(f).await? == DirStat::default(), "no row");
        t.add_dir_stat(d, ds(1, 10, 4096)).await?;
        anyhow::ensure!(t.get_dir_stat(d).await? == ds(2, 10, 8192), "op delta");
        t.release_savepoint().await?;
        t.add_dir_stat(d, ds(5, 5, 5)).await?;
        t.rollback_to_savepoint().await?;
        anyhow::ensure!(t.get_dir_stat(d).await? == ds(2, 10, 8192), "rolled back");
        t.add_dir_stat(d, ds(-1, -10, -4096)).await?;
        t.delete_inode(d).await?;
        anyhow::ensure!(t.get_dir_stat(d).await? == DirStat::default(), "deleted");
        t.release_savepoint().await?;
        t.add_dir_stat(d, ds(1, 1, 4096)).await?;
        anyhow::ensure!(t.get_dir_stat(d).await? == ds(1, 1, 4096), "after a delete");
        t.release_savepoint().await?;
        let w = &t.batch.dir_stats[&d];
        anyhow::ensure!(w.reset && w.delta == ds(1, 1, 4096), "{w:?}");
        anyhow::ensure!(
            t.read_dir_stats(&[f, d, d]).await? == vec![DirStat::default(), stored, stored],
            "positional reads"
        );
        drop(t);
        drop(conn);
        b.close().await;
        Ok(())
    }
}
