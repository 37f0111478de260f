//! Directory quotas in SQL (table `quota`, schema v4; the counter `quotaGen`, schema v5;
//! [`meta_core::quota`]): the [`TxnView`](meta_core::logic::TxnView) quota methods' reads
//! and buffered writes, their prefetch, and their share of the flush. The optimistic half
//! (the backend's cache, the conditional updates, the guard) is in the `optimistic` module.
//!
//! A quota row holds absolute values (limits and usage). For every op that changes directory
//! statistics the generic logic asks `has_quotas`, walks from each changed directory to the
//! root (`get_quota`, `get_attr(..).parent`), checks each quota on the way
//! ([`Quota::check`]) and writes its new usage back. Two things must hold: **(1)** two
//! batches charging one quota neither lose an update nor both pass a limit; **(2)** no batch
//! commits a statistics delta in a subtree whose quota it did not charge — a new quota's
//! usage is summed from its subtree's statistics once, when it is created, so a delta
//! committed after that sum by a batch that did not see the quota is missing for good (KV
//! stores get a write-write conflict from `SetQuota` rewriting the subtree's statistics;
//! here statistics are commutative upserts that conflict with nothing).
//!
//! **The quota set and its generation.** Counter `quotaCount` holds the number of quotas and
//! `quotaGen` the generation of the set: it grows by one in every batch that creates or
//! removes a quota, or moves a directory between two different lists of quotas above it
//! (all of which run on the locked path, below). So while the generation stays the same,
//! the list of quota directories above any directory stays the same: meta-core refuses to
//! move a non-empty directory across a quota boundary (EXDEV), and a move that keeps the
//! list above the moved directory keeps it for its whole subtree. A parent pointer read at
//! any time under one generation, however old, therefore leads to the chain of quotas in
//! force as long as the generation has not changed (a walk through such pointers must only
//! reach the root). Formatting starts the generation at the time in nanoseconds, so a
//! volume formatted again never repeats a generation a client may remember.
//!
//! **Two paths.** A batch that may charge quotas first runs *optimistically*: no quota row
//! and no counter row is read with a lock. Anything that makes that attempt doubtful makes
//! it commit nothing and run again at once on the *locked* path, which reads everything
//! fresh under locks (the design before the optimistic one). Batches that set or remove a
//! quota, move entries between directories (a rename's cycle check and a directory's move
//! need fresh ancestors) or restore inodes take the locked path directly.
//!
//! **The locked path.** `has_quotas` reads both counter rows with a share lock held to
//! COMMIT (PostgreSQL `FOR KEY SHARE`, MySQL/MariaDB `LOCK IN SHARE MODE`). The first quota
//! the batch needs reads the chains of the directories it charges in three statements: their
//! node rows locked (before the quota rows: the order a rename or rmdir takes them in, where
//! the commutative update at flush would take them the other way round, a deadlock that
//! PostgreSQL only detects after `deadlock_timeout`), their ancestors (a recursive CTE, no
//! lock) and all their quota rows `FOR UPDATE`, sorted; the flush upserts absolute values,
//! and the row locks give (1). A `SetQuota` or `RemoveQuota` locks both counter rows `FOR
//! UPDATE` at the end of its prefetch (after its other row locks, the order charging
//! batches take them in), then reads the quota rows, attributes and statistics it checks
//! and sums, and its flush adds to the count and the generation. So a new quota waits for
//! every batch in flight that holds the share lock or an optimistic guard (below) and sums
//! what they committed, and the batches after it wait for it and see it (READ COMMITTED:
//! every statement sees what committed before it, a locking read the latest row) — (2). An
//! rmdir removing a quota and a directory moved across quotas add to the counters with a
//! plain UPDATE, which on PostgreSQL (`FOR NO KEY UPDATE`) does not wait for the `FOR KEY
//! SHARE` holders (MySQL upgrades the share lock; InnoDB may answer a deadlock: one batch
//! retried). They need not wait: a batch charging a removed quota finds its row gone, and a
//! batch charging a directory that moves is caught by its parent check (below). What a
//! locked batch read goes to the backend's cache once committed, under the generation it
//! read (a batch that changed the set empties the cache instead).
//!
//! **The optimistic path** (PostgreSQL's autocommitted batches of creates included). A
//! backend remembers ([`QuotaCache`](super::QuotaCache)) the counters it last read and,
//! under that generation, the directories its batches walked or created: each one's node
//! row (for its parent) and quota row (limits, and a usage that may be old; a new directory
//! has none). An optimistic attempt:
//! - answers `has_quotas` from the remembered counters (a backend that remembers none reads
//!   them, without a lock);
//! - answers a chain from its own reads, then the cache, when that walk reaches the root
//!   without a loop, else reads it (the CTE and the quota rows, without locks);
//! - turns each quota write into a delta, usage written minus usage read, and notes the
//!   largest cumulative growth its ops checked (a quota created, removed or with other
//!   limits sends the batch to the locked path);
//! - flushes each charged quota as `UPDATE quota SET used_* = used_* + δ WHERE ino = q AND
//!   <checks>`, where the checks repeat [`Quota::check`] against the stored row at that
//!   largest growth (per field: none when no op grew it or the limit is 0 or above
//!   `i64::MAX` — stored negative, never reached — else `used + growth <= limit`), and
//!   expects one row per quota;
//! - carries the generation guard `SELECT value FROM counter WHERE name = 'quotaGen' AND
//!   value = g`, share-locked to COMMIT, first in its flush (on PostgreSQL inside the one
//!   write statement: no round trip), and expects its row;
//! - never returns its own `QuotaExceeded`: any op failing with it, any expectation not
//!   met, and any other lost race make it commit nothing (autocommit: the single statement
//!   aborts on a shortfall, `count / (count >= expected)::int`; a transaction rolls back)
//!   and run again on the locked path, which alone answers EDQUOT and refreshes the cache.
//!
//! Why each race is closed on the optimistic path:
//! - *Two batches on one quota* (1): the database adds the delta and checks the limit on the
//!   row's current value under its row lock (PostgreSQL re-evaluates the WHERE on the newest
//!   version after waiting; InnoDB updates the current version), in inode order. A usage
//!   remembered too low can only let the logic pass an op that the update then refuses; one
//!   remembered too high can only give a `QuotaExceeded`, which re-runs. Checking the largest
//!   cumulative growth is checking every op's growth against the current usage, so an attempt
//!   commits exactly what the locked path would have decided.
//! - *A quota created while a batch charges without it* (2) — the volume's first, or one
//!   created as another is removed, which leaves the count as it was (why the guard reads the
//!   generation, not the count): the creation locks the generation row `FOR UPDATE` before it
//!   sums. If the guard's share lock came first, the creation waits for the batch to commit
//!   and sums its delta; if the creation's lock came first, the guard waits for it, then
//!   finds another generation, and the batch commits nothing.
//! - *A chain remembered from before a quota was removed and another created*: the same
//!   generation check; and a batch charging a removed quota finds no row to update.
//! - *A directory moving across quotas*: the move changes the generation (for later
//!   batches); a batch in flight that walked from that directory's old parent fails its
//!   commutative update of the directory's node row, which requires the parent it walked
//!   from ([`SqlTxn::chain_parent`]): the rename locks the row and either waits for the
//!   batch and then finds the directory not empty (EXDEV), or commits first. Only an empty
//!   directory moves across quotas, so no other directory's walk passes through it.
//! - *A stale cache*: it only serves attempts whose guard checks its generation. What an
//!   attempt read goes to the cache only once it committed: under the generation its guard
//!   proved (an optimistic read happens after the cache's generation was read and before the
//!   guard, so under that generation), or read under its share lock (locked path; a
//!   generation bumped by a plain UPDATE meanwhile is one that no guard will match again).
//!
//! MySQL runs the guard as a statement of its own, first in the flush; SQLite has one
//! writer (`BEGIN IMMEDIATE`), so its locks are moot but the guard still catches what
//! another process changed since this one remembered the counters.

use std::collections::{BTreeMap, BTreeSet};

use meta_core::{Ino, Op, Quota, Result};

use super::optimistic::Peak;
use super::{Cached, Group, Layer, NodeW, SqlTxn};
use crate::codec::{self, NODE_TYS, QUOTA_COLS, corrupted, ino_arg};
use crate::exec::{Arg, Stmt, Ty, Val};
use crate::sql::{Dialect, LockMode, QUOTA_COUNT, QUOTA_GEN, Sql};

/// Directories whose chains one read covers at most (the first is the one asked for).
const MAX_CHAIN_STARTS: usize = 256;
/// Levels above a directory the ancestors' read follows (MySQL stops a recursive CTE after
/// 1,000 rounds); the logic's walk up a deeper chain misses the cache there and reads on
/// from that directory the same way.
const MAX_CHAIN_DEPTH: i64 = 256;

// ------------------------------------------------------------------------------------------
// Statements

impl Sql {
    /// Quota rows of `dirs` (the columns of [`QUOTA_COLS`]), sorted by inode; `lock` takes
    /// their row locks in that order.
    pub(crate) fn quota_rows(&self, dirs: Vec<i64>, lock: bool) -> Vec<Stmt> {
        let keys = dirs.into_iter().map(|i| vec![Arg::Int(i)]).collect();
        self.select_keys(
            "quota",
            &QUOTA_COLS.join(", "),
            &[("ino", Ty::Int)],
            keys,
            " ORDER BY ino",
            lock,
        )
    }

    /// Every quota row, by inode.
    pub(crate) fn all_quotas(&self) -> Stmt {
        let mut b = self.b();
        b.s(&format!(
            "SELECT {} FROM {} ORDER BY ino",
            QUOTA_COLS.join(", "),
            self.t("quota")
        ));
        b.done()
    }

    /// Node rows of `inos` (at most 256) and of all their ancestors up to
    /// [`MAX_CHAIN_DEPTH`] levels, without locks: a recursive CTE over `node.parent` that
    /// stops at the root and at parent 0.
    pub(crate) fn ancestors(&self, inos: Vec<i64>) -> Stmt {
        let keys: Vec<Vec<Arg>> = inos.into_iter().map(|i| vec![Arg::Int(i)]).collect();
        let keys = if self.d == Dialect::Postgres {
            keys
        } else {
            crate::sql::padded_key_list(keys)
        };
        let node = self.t("node");
        let mut b = self.b();
        b.s(&format!(
            "WITH RECURSIVE up (ino, parent, depth) AS (SELECT ino, parent, 0 FROM {node} WHERE "
        ));
        self.where_keys(&mut b, "", &[("ino", Ty::Int)], keys);
        b.s(&format!(
            " UNION SELECT n.ino, n.parent, up.depth + 1 FROM {node} n JOIN up ON n.ino = \
             up.parent WHERE up.parent <> 0 AND up.ino <> {root} AND up.depth < {MAX_CHAIN_DEPTH}) \
             SELECT {} FROM {node} n WHERE n.ino IN (SELECT ino FROM up)",
            Sql::node_cols("n."),
            root = Ino::ROOT.0
        ));
        b.done()
    }
}

// ------------------------------------------------------------------------------------------
// Prefetch

/// What a batch's ops need of the quota table.
#[derive(Default)]
pub(super) struct QuotaNeeds {
    /// Directories of `SetQuota` / `RemoveQuota` ops.
    dirs: BTreeSet<Ino>,
    /// Directories listed by `SetQuota` ops (attributes and statistics to check and sum).
    subtree: BTreeSet<Ino>,
}

impl QuotaNeeds {
    /// Notes what `op` needs; false when it is not a quota op.
    pub(super) fn add(&mut self, op: &Op) -> bool {
        match op {
            Op::SetQuota { dir, subtree, .. } => {
                self.dirs.insert(*dir);
                self.subtree.extend(subtree.iter().copied());
                true
            }
            Op::RemoveQuota { dir } => {
                self.dirs.insert(*dir);
                true
            }
            _ => false,
        }
    }
}

/// The quota share of a flush: row deletes and upserts (locked path) or conditional deltas
/// (optimistic), the count's and the generation's change, the generation guard.
pub(super) struct QuotaFlush {
    /// DELETEs of the stored quotas the batch removed.
    pub(super) deletes: Vec<Stmt>,
    /// Upserts of the quotas the batch stored (their rows are locked, or new).
    pub(super) upserts: Vec<Stmt>,
    /// An optimistic batch's conditional quota updates (each must match its row).
    pub(super) deltas: Group,
    /// The UPDATEs of the count and the generation (each must match its row), empty when the
    /// quota set does not change.
    pub(super) count: Group,
    /// An optimistic batch's generation guard (must match one row), when `has_quotas`
    /// answered from counters it did not lock.
    pub(super) guard: Option<Group>,
}

impl SqlTxn<'_> {
    /// A batch with quota ops: locks the quota count and generation `FOR UPDATE` (after every
    /// other lock of the prefetch), then reads, replacing what was read before the lock, the quota rows of
    /// the ops' directories (`FOR UPDATE`), and the attributes and statistics of the
    /// directories `SetQuota` lists.
    pub(super) async fn prefetch_quotas(&mut self, needs: &QuotaNeeds) -> Result<()> {
        if needs.dirs.is_empty() {
            return Ok(());
        }
        self.read_quota_counters(LockMode::Update).await?;
        let mut nodes: BTreeSet<Ino> = needs.subtree.union(&needs.dirs).copied().collect();
        nodes.remove(&Ino::ZERO);
        self.fetch_nodes(&nodes, false).await?;
        self.fetch_dir_stats(&needs.subtree).await?;
        self.fetch_quotas(&needs.dirs).await
    }

    /// Sets the directories whose quota chains the first quota read of the batch covers too.
    pub(super) fn hint_quota_chains(&mut self, dirs: BTreeSet<Ino>) {
        self.quota_hint = dirs;
        self.quota_hint.remove(&Ino::ZERO);
    }

    /// Whether the quota count this attempt read (or started from) says there are quotas
    /// (`None`: not known).
    fn quotas_seen(&self) -> Option<bool> {
        match &self.base.quota_count {
            Some(Ok(n)) => Some(*n > 0),
            _ => None,
        }
    }

    // --------------------------------------------------------------------------------------
    // Reads

    /// Reads the quota count and generation with `mode`'s lock on both into the cache;
    /// returns the count. `Corrupted` when a row is missing or NULL.
    async fn read_quota_counters(&mut self, mode: LockMode) -> Result<i64> {
        let rows = self
            .rows(self.sql.quota_counters(mode), &[Ty::Text, Ty::Int])
            .await?;
        let value = |name: &str| match rows.iter().find(|r| r[0] == Val::Text(name.into())) {
            Some(r) => codec::int(&r[1], &format!("counter {name}")),
            None => Err(corrupted(format!("counter {name} is missing"))),
        };
        let (count, generation) = (value(QUOTA_COUNT), value(QUOTA_GEN));
        self.base.quota_gen = generation.as_ref().ok().copied();
        let count = generation.and(count);
        self.base.quota_count = Some(count.clone());
        count
    }

    /// Reads the quota rows of `dirs` (`FOR UPDATE` in a write transaction on the locked
    /// path) into the cache; absent ones are cached as absent, an undecodable one as its
    /// error.
    async fn fetch_quotas(&mut self, dirs: &BTreeSet<Ino>) -> Result<()> {
        if dirs.is_empty() {
            return Ok(());
        }
        let keys = dirs.iter().map(|d| d.0 as i64).collect();
        let lock = self.lock && !self.optimistic();
        let rows = self
            .rows_all(self.sql.quota_rows(keys, lock), &[Ty::Int; 6])
            .await?;
        for &d in dirs {
            self.base.quotas.insert(d, Ok(None));
        }
        for r in rows {
            match (codec::quota(&r), r.first()) {
                (Ok((d, q)), _) => {
                    self.base.quotas.insert(d, Ok(Some(q)));
                }
                (Err(e), Some(Val::Int(i))) => {
                    self.base.quotas.insert(Ino(codec::id_of(*i)), Err(e));
                }
                (Err(e), _) => return Err(e),
            }
        }
        Ok(())
    }

    /// Reads the quota chains of `dir` and of the hinted directories (an optimistic attempt:
    /// those the backend's cache cannot answer): on the locked path locks the node rows of
    /// those directories first (see [`SqlTxn::lock_chain_starts`]), reads the node rows of
    /// their ancestors (cached where not read yet), then the quota rows of all of them.
    async fn fetch_chains(&mut self, dir: Ino) -> Result<()> {
        let mut starts = vec![dir];
        let hint = std::mem::take(&mut self.quota_hint);
        starts.extend(
            hint.into_iter()
                .filter(|d| *d != dir && !self.base.quotas.contains_key(d) && !self.cached(*d))
                .take(MAX_CHAIN_STARTS - 1),
        );
        self.lock_chain_starts(&starts).await?;
        let keys = starts.iter().map(|d| d.0 as i64).collect();
        let rows = self.rows(self.sql.ancestors(keys), &NODE_TYS).await?;
        let mut dirs: BTreeSet<Ino> = starts.into_iter().collect();
        for r in rows {
            if let Some(ino) = codec::node_ino(&r) {
                dirs.insert(ino);
                self.cache_chain_node(ino, codec::node_attr(&r));
            }
        }
        dirs.retain(|d| !self.base.quotas.contains_key(d));
        self.fetch_quotas(&dirs).await
    }

    /// Takes the row locks of the directories whose quota chains are about to be read and
    /// locked (the charged directories), before the quota rows: a batch that locks a
    /// directory's row in its prefetch (rmdir, rename) and then charges the quotas above it
    /// takes the two in that order too, where the commutative update of the directory at
    /// flush would take them the other way round (a deadlock, which PostgreSQL only detects
    /// after `deadlock_timeout`). Charging batches under one quota are serialized by its row
    /// anyway. The rows are not read again: a directory moved since it was read is caught by
    /// its update ([`SqlTxn::chain_parent`]).
    async fn lock_chain_starts(&mut self, dirs: &[Ino]) -> Result<()> {
        if !self.lock || self.optimistic() {
            return Ok(());
        }
        let keys: Vec<Vec<Arg>> = dirs
            .iter()
            .filter(|d| !self.base.locked.contains(d))
            .map(|d| vec![ino_arg(*d)])
            .collect();
        if keys.is_empty() {
            return Ok(());
        }
        let stmts = self.sql.select_keys(
            "node",
            "ino",
            &[("ino", Ty::Int)],
            keys,
            " ORDER BY ino",
            true,
        );
        self.rows_all(stmts, &[Ty::Int]).await.map(drop)
    }

    // --------------------------------------------------------------------------------------
    // The TxnView methods

    /// [`TxnView::has_quotas`](meta_core::logic::TxnView::has_quotas): true when this batch
    /// stored a quota or the count is positive — the count read (share-locked) at the first
    /// call on the locked path; in an optimistic attempt the one the backend's cache holds
    /// (else read without a lock), which the flush's generation guard then checks.
    pub(super) async fn quota_any(&mut self) -> Result<bool> {
        let stored = |l: &Layer| l.quotas.values().any(Option::is_some);
        if stored(&self.op) || stored(&self.batch) {
            return Ok(true);
        }
        let n = match &self.base.quota_count {
            Some(v) => v.clone()?,
            None if self.optimistic() => {
                self.quota_guard = true;
                match self.quota_snapshot() {
                    Some(c) => {
                        self.base.quota_count = Some(Ok(c.count));
                        self.base.quota_gen = Some(c.generation);
                        c.count
                    }
                    None => self.read_quota_counters(LockMode::None).await?,
                }
            }
            None => {
                let mode = if self.lock {
                    LockMode::Share
                } else {
                    LockMode::None
                };
                self.read_quota_counters(mode).await?
            }
        };
        Ok(n > 0)
    }

    /// [`TxnView::get_quota`](meta_core::logic::TxnView::get_quota) through the overlay.
    pub(super) async fn quota_get(&mut self, dir: Ino) -> Result<Option<Quota>> {
        for layer in [&self.op, &self.batch] {
            if let Some(q) = layer.quotas.get(&dir) {
                return Ok(*q);
            }
        }
        self.load_quota(dir).await
    }

    /// The stored quota of `dir`: from the batch's cache, else (an optimistic attempt) from
    /// the backend's cache, else read with its whole chain.
    async fn load_quota(&mut self, dir: Ino) -> Cached<Quota> {
        self.ensure_chain(dir).await?;
        self.base.quotas.get(&dir).cloned().unwrap_or(Ok(None))
    }

    async fn ensure_chain(&mut self, dir: Ino) -> Result<()> {
        if self.optimistic() && self.base.quota_count.is_none() {
            // What the chain is remembered under, and the guard that checks it.
            self.quota_any().await?;
        }
        if !self.base.quotas.contains_key(&dir) && !self.serve_cached(dir) {
            self.fetch_chains(dir).await?;
        }
        Ok(())
    }

    /// [`TxnView::put_quota`](meta_core::logic::TxnView::put_quota): buffered; the stored row
    /// is read first (locked on the locked path) when it was not, for the flush to know
    /// whether the quota set changes. An optimistic attempt notes the growth the op checked
    /// and refuses what only the locked path writes ([`SqlTxn::note_quota_write`]).
    pub(super) async fn quota_put(&mut self, dir: Ino, quota: Option<&Quota>) -> Result<()> {
        self.ensure_chain(dir).await?;
        if self.optimistic() {
            self.note_quota_write(dir, quota)?;
        }
        self.op.quotas.insert(dir, quota.copied());
        Ok(())
    }

    // --------------------------------------------------------------------------------------
    // Flush

    /// Whether this batch may have charged quotas: it read a positive quota count, or
    /// stores a quota (`stored`: its quota writes).
    pub(super) fn quotas_walked(&self, stored: &BTreeMap<Ino, Option<Quota>>) -> bool {
        self.quotas_seen() == Some(true) || stored.values().any(Option::is_some)
    }

    /// The parent directory `dir`'s commutative update must still find (0: any). A batch
    /// that charged quotas walked from `dir` to the root through the parent it read; if
    /// `dir` moved meanwhile (an empty directory may move across quotas), the quotas it
    /// charged are the wrong ones, so the update then matches nothing and the batch is run
    /// again (`Conflict`). A rename that sees `dir` empty and moves it either waits for this
    /// batch's update (its `FOR UPDATE` read of `dir`'s row) and then finds it not empty, or
    /// commits first and fails this check.
    pub(super) fn chain_parent(&self, walked: bool, dir: Ino) -> i64 {
        match (walked, self.base.nodes.get(&dir)) {
            (true, Some(Ok(Some(a)))) => a.parent.0 as i64,
            _ => 0,
        }
    }

    /// The statements of the batch's quota writes (`writes`; `peaks`: the growth its ops
    /// checked; `nodes`: its node writes). An optimistic attempt: conditional deltas and the
    /// generation guard. The locked path: deletes of removed quotas that are stored, upserts
    /// of the others, and, when the quota set changes (a quota created or removed, a
    /// directory moved between two sets of quotas), the count's change and the generation's.
    /// Leaves the written usage in the batch's cache (for the backend's).
    pub(super) fn quota_flush(
        &mut self,
        writes: BTreeMap<Ino, Option<Quota>>,
        peaks: &BTreeMap<Ino, Peak>,
        nodes: &BTreeMap<Ino, NodeW>,
    ) -> Result<QuotaFlush> {
        self.note_created_dirs(nodes);
        if self.optimistic() {
            let deltas = self.optimistic_deltas(writes, peaks)?;
            return Ok(QuotaFlush {
                deletes: Vec::new(),
                upserts: Vec::new(),
                deltas,
                count: Group::new(Vec::new()),
                guard: self.gen_guard(),
            });
        }
        let mut changed =
            self.quotas_seen() == Some(true) && self.moved_across_quotas(nodes, &writes);
        let mut deletes: Vec<Vec<Arg>> = Vec::new();
        let mut upserts: Vec<Vec<Arg>> = Vec::new();
        let mut delta = 0i64;
        for (dir, q) in writes {
            // `quota_put` read the row; an undecodable one is stored.
            let base = self.base.quotas.get(&dir);
            let stored = matches!(base, Some(Ok(Some(_)) | Err(_)));
            match q {
                Some(q) => {
                    if !stored {
                        delta += 1;
                        changed = true;
                    }
                    upserts.push(codec::quota_args(dir, &q));
                }
                None if stored => {
                    delta -= 1;
                    changed = true;
                    deletes.push(vec![ino_arg(dir)]);
                }
                None if base.is_none() => {
                    changed = true;
                    deletes.push(vec![ino_arg(dir)]);
                }
                None => {}
            }
            self.base.quotas.insert(dir, Ok(q));
        }
        let mut stmts = Vec::new();
        if delta != 0 {
            stmts.push(self.sql.counter_add(QUOTA_COUNT, delta));
        }
        if changed {
            stmts.push(self.sql.counter_add(QUOTA_GEN, 1));
        }
        self.opt.changed = changed;
        let n = stmts.len() as u64;
        let mut count = Group::new(stmts).expect(n, "");
        count.corrupt = true;
        let cols: Vec<(&str, Ty)> = QUOTA_COLS.iter().map(|c| (*c, Ty::Int)).collect();
        Ok(QuotaFlush {
            deletes: self.sql.delete_keys("quota", &[("ino", Ty::Int)], deletes),
            upserts: self.sql.insert("quota", &cols, 1, upserts, true),
            deltas: Group::new(Vec::new()),
            count,
            guard: None,
        })
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use meta_conformance::util::mknod_op;
    use meta_core::logic::TxnView;
    use meta_core::{Backend, DirStat, FileType, Setting, Timespec};

    use super::*;

    fn quota(inodes: i64) -> Quota {
        Quota {
            max_space: u64::MAX,
            max_inodes: 5,
            used: DirStat {
                inodes,
                length: 0,
                space: 4096 * inodes,
            },
        }
    }

    /// `get_quota` sees the op's and the batch's writes over the stored row, an op's
    /// writes go with its rollback, `has_quotas` follows the count and the writes, and the
    /// flush stores the rows and the count (limits above `i64::MAX` included).
    #[tokio::test]
    async fn quota_overlay_and_flush() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let url = format!("sqlite://{}", tmp.path().join("q.db").display());
        let b = crate::open(meta_core::parse_url(&url)?.0)?;
        b.format(&Setting::new("overlay"), false).await?;
        let d = Ino(b.reserve_ids(meta_core::IdKind::Inode, 1).await?.start);
        let mkdir = mknod_op(Ino::ROOT, b"d", d, FileType::Directory, Timespec::now());
        anyhow::ensure!(b.apply(&[mkdir]).await?[0].is_ok());
        #[allow(irrefutable_let_patterns)] // the only pool of a sqlite-only build
        let crate::backend::Pools::Sqlite { writer, .. } = &b.pools else {
            anyhow::bail!("an sqlite:// URL opened another pool");
        };
        let mut conn = writer.acquire().await?;
        let mut t = SqlTxn::new(&mut *conn, &b.sql, &b.stats, false);
        anyhow::ensure!(!t.has_quotas().await?, "a new volume has none");
        anyhow::ensure!(t.get_quota(d).await?.is_none());
        t.put_quota(d, Some(&quota(1))).await?;
        anyhow::ensure!(t.has_quotas().await?, "this batch stores one");
        anyhow::ensure!(t.get_quota(d).await? == Some(quota(1)), "op layer");
        t.rollback_to_savepoint().await?;
        anyhow::ensure!(t.get_quota(d).await?.is_none(), "rolled back");
        anyhow::ensure!(!t.has_quotas().await?, "nothing stored after the rollback");
        t.put_quota(d, Some(&quota(1))).await?;
        t.release_savepoint().await?;
        t.put_quota(d, Some(&quota(2))).await?;
        anyhow::ensure!(t.get_quota(d).await? == Some(quota(2)), "op over batch");
        t.release_savepoint().await?;
        t.put_quota(Ino::ROOT, None).await?;
        t.flush().await?;
        drop(t);
        drop(conn);
        anyhow::ensure!(b.quotas().await? == vec![(d, quota(2))], "stored");
        let mut conn = writer.acquire().await?;
        let mut t = SqlTxn::new(&mut *conn, &b.sql, &b.stats, false);
        anyhow::ensure!(t.has_quotas().await?, "the count says 1");
        anyhow::ensure!(t.get_quota(d).await? == Some(quota(2)), "read back");
        t.put_quota(d, None).await?;
        t.release_savepoint().await?;
        t.flush().await?;
        drop(t);
        drop(conn);
        anyhow::ensure!(b.quotas().await?.is_empty(), "removed");
        let mut conn = writer.acquire().await?;
        let mut t = SqlTxn::new(&mut *conn, &b.sql, &b.stats, false);
        anyhow::ensure!(!t.has_quotas().await?, "the count is back to 0");
        drop(t);
        drop(conn);
        b.close().await;
        Ok(())
    }
}
