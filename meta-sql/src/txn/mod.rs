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
//!    upsert statements, then the commutative `nlink = nlink + δ, mtime = max(mtime, t),
//!    st_* = st_* + δ` updates of parent directories (a directory's statistics live in its
//!    node row, schema v6, so the row lock that orders the batches charging it is taken once
//!    for both), and the `value = value + δ` counter updates as the last statements, so the
//!    hot rows are locked only from there to COMMIT. Each `+ δ` of statistics, quota usage
//!    and counters saturates at the i64 bounds (`Dialect::sat_add`).
//!
//! Directory quotas (optimistic charging with a locked rerun, and how a new quota is ordered
//! against the batches that charge statistics without it) are in the `quota` and
//! `optimistic` submodules.

mod fetch;
mod flush;
mod optimistic;
mod quota;
mod session;
mod view;

use flush::Group;

pub(crate) use optimistic::{Counters, QuotaCache};

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};

use meta_core::{
    Attr, Counter, DirStat, Entry, Error, Ino, Op, Pending, Quota, Result, Slice, Timespec,
};

use crate::error::{Stage, classify, in_batch};
use crate::exec::{Exec, Stmt, Ty, Val};
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
            let e = self.counters.entry(c).or_default();
            *e = e.saturating_add(d);
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
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;
    use meta_conformance::util::mknod_op;
    use meta_core::logic::TxnView;
    use meta_core::{Backend, FileType, Setting};

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
