//! Directory quotas in SQL (table `quota`, schema v4; [`meta_core::quota`]): the
//! [`TxnView`](meta_core::logic::TxnView) quota methods' reads and buffered writes, their
//! prefetch, and their share of the flush.
//!
//! **Charging one quota.** A quota row holds absolute values (limits and usage): the generic
//! logic reads it, checks the op's change against the limits and writes the new usage back.
//! So that two batches charging one quota neither lose an update nor both pass a limit, a
//! write transaction reads quota rows `FOR UPDATE` (PostgreSQL, MySQL; SQLite has one
//! writer), sorted by inode, and keeps them for the rest of the batch.
//!
//! **Creating a quota while batches charge without it.** A new quota's usage is summed from
//! its subtree's directory statistics. A batch that charges a directory of that subtree but
//! read "no quota there" (or "no quotas at all", `has_quotas`) must not commit its statistics
//! delta after that sum was taken, or the quota misses the delta for good. KV stores get a
//! write-write conflict from `SetQuota` rewriting every subtree directory's statistics; here
//! statistics are commutative upserts that conflict with nothing (and a zero delta is not
//! even written). Instead one row orders the two: the counter row `quotaCount`, the number
//! of quotas.
//! - `has_quotas` reads it with a share lock held to COMMIT (PostgreSQL `FOR KEY SHARE`,
//!   MySQL/MariaDB `LOCK IN SHARE MODE`) and answers `count > 0`: one statement per batch,
//!   in batches whose ops change directory statistics only (its only callers);
//! - a batch with a `SetQuota` or `RemoveQuota` locks the row `FOR UPDATE` at the end of its
//!   prefetch (after its other row locks, the order charging batches take them in), then
//!   reads the quota rows, attributes and statistics the op checks and sums, replacing
//!   anything read before the lock; its flush adds the quotas it created or removed to the
//!   count.
//!
//! So a `SetQuota` waits for every batch in flight that charges statistics and sums what they
//! committed, and a batch that reaches `has_quotas` later waits for the `SetQuota` to commit
//! and then sees the new quota (READ COMMITTED: every statement sees what committed before
//! it, and a locking read the latest row) and charges it. Charging batches only share the
//! row; it serializes quota administration against them, not them against each other. On
//! PostgreSQL `FOR KEY SHARE` conflicts with `FOR UPDATE` only, so a batch that removes a
//! directory with a quota decrements the count with a plain UPDATE (`FOR NO KEY UPDATE`)
//! without waiting for the other holders; MySQL has no such mode: its share lock is upgraded
//! then, which InnoDB may answer with a deadlock (one batch retried).
//!
//! PostgreSQL runs batches of plain creates autocommitted, with no transaction to hold a
//! lock: there `has_quotas` answers "none" without a read, and the batch's single write
//! statement carries a guard, `SELECT 1 FROM counter WHERE name = 'quotaCount' AND value = 0
//! FOR KEY SHARE`, that must match: a quota created meanwhile makes it fail (`Conflict`), and
//! the backend runs the batch again in a transaction and keeps doing so while the volume has
//! quotas ([`SqlTxn::quotas_seen`]).
//!
//! **Chains.** The logic walks from a charged directory to the root, asking each directory
//! for its quota and its parent. The first quota the cache lacks reads the whole chains of
//! that directory and of the directories the prefetch expects to be charged (parents the ops
//! name, directories they remove, parents of the inodes they rewrite) in two statements:
//! their ancestors' node rows (a recursive CTE, no lock) and the quota rows of all of them
//! (`FOR UPDATE`, sorted).

use std::collections::{BTreeMap, BTreeSet};

use meta_core::{Ino, Op, Quota, Result};

use super::{Cached, Group, Layer, SqlTxn};
use crate::codec::{self, NODE_TYS, QUOTA_COLS, corrupted, ino_arg};
use crate::exec::{Arg, Stmt, Ty, Val};
use crate::sql::{Dialect, LockMode, QUOTA_COUNT, Sql};

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

    /// The quota count `(value)` with `mode`'s row lock; a share lock is PostgreSQL's
    /// `FOR KEY SHARE` (see the module docs).
    pub(crate) fn quota_count(&self, mode: LockMode) -> Stmt {
        let mut b = self.b();
        b.s(&format!(
            "SELECT value FROM {} WHERE name = ",
            self.t("counter")
        ));
        b.p(Arg::Text(QUOTA_COUNT.into()));
        b.s(match (mode, self.d) {
            (LockMode::Share, Dialect::Postgres) => " FOR KEY SHARE",
            _ => self.lock_mode(mode),
        });
        b.done()
    }

    /// PostgreSQL's autocommit guard: one row while the volume has no quota, key-share
    /// locked until the statement that carries it commits.
    pub(crate) fn quota_guard(&self) -> Stmt {
        let mut b = self.b();
        b.s(&format!(
            "SELECT 1 FROM {} WHERE name = ",
            self.t("counter")
        ));
        b.p(Arg::Text(QUOTA_COUNT.into()));
        b.s(" AND value = 0 FOR KEY SHARE");
        b.done()
    }

    /// Adds `delta` to the quota count (a plain UPDATE: see the module docs).
    pub(crate) fn quota_count_delta(&self, delta: i64) -> Stmt {
        let mut b = self.b();
        b.s(&format!(
            "UPDATE {} SET value = value + ",
            self.t("counter")
        ));
        b.p(Arg::Int(delta));
        b.s(" WHERE name = ");
        b.p(Arg::Text(QUOTA_COUNT.into()));
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

/// The quota share of a flush: row deletes and upserts, the count's change, the guard.
pub(super) struct QuotaFlush {
    /// DELETEs of the stored quotas the batch removed.
    pub(super) deletes: Vec<Stmt>,
    /// Upserts of the quotas the batch stored (their rows are locked, or new).
    pub(super) upserts: Vec<Stmt>,
    /// The count's UPDATE (must match its row), empty when the count does not change.
    pub(super) count: Group,
    /// PostgreSQL's autocommit guard (must match one row), when `has_quotas` answered
    /// without a read.
    pub(super) guard: Option<Group>,
}

impl SqlTxn<'_> {
    /// A batch with quota ops: locks the quota count `FOR UPDATE` (after every other lock of
    /// the prefetch), then reads, replacing what was read before the lock, the quota rows of
    /// the ops' directories (`FOR UPDATE`), and the attributes and statistics of the
    /// directories `SetQuota` lists.
    pub(super) async fn prefetch_quotas(&mut self, needs: &QuotaNeeds) -> Result<()> {
        if needs.dirs.is_empty() {
            return Ok(());
        }
        self.read_quota_count(LockMode::Update).await?;
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

    /// Whether the last read of the quota count in this transaction found quotas (`None`:
    /// not read). The backend keeps PostgreSQL's autocommitted path for volumes without.
    pub(crate) fn quotas_seen(&self) -> Option<bool> {
        match &self.base.quota_count {
            Some(Ok(n)) => Some(*n > 0),
            _ => None,
        }
    }

    /// True when `has_quotas` answered without a read (autocommit): the flush carries the
    /// guard.
    pub(crate) fn quota_guarded(&self) -> bool {
        self.quota_guard
    }

    // --------------------------------------------------------------------------------------
    // Reads

    /// Reads the quota count with `mode`'s lock into the cache. `Corrupted` when its row is
    /// missing or NULL.
    async fn read_quota_count(&mut self, mode: LockMode) -> Result<i64> {
        let rows = self.rows(self.sql.quota_count(mode), &[Ty::Int]).await?;
        let v = match rows.first() {
            Some(r) => codec::int(&r[0], &format!("counter {QUOTA_COUNT}")),
            None => Err(corrupted(format!("counter {QUOTA_COUNT} is missing"))),
        };
        self.base.quota_count = Some(v.clone());
        v
    }

    /// Reads the quota rows of `dirs` (`FOR UPDATE` in a write transaction) into the cache;
    /// absent ones are cached as absent, an undecodable one as its error.
    async fn fetch_quotas(&mut self, dirs: &BTreeSet<Ino>) -> Result<()> {
        if dirs.is_empty() {
            return Ok(());
        }
        let keys = dirs.iter().map(|d| d.0 as i64).collect();
        let rows = self
            .rows_all(self.sql.quota_rows(keys, self.lock), &[Ty::Int; 6])
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

    /// Reads the quota chains of `dir` and of the hinted directories: locks the node rows of
    /// those directories (see [`SqlTxn::lock_chain_starts`]), reads the node rows of their
    /// ancestors (cached where not read yet), then the quota rows of all of them.
    async fn fetch_chains(&mut self, dir: Ino) -> Result<()> {
        let mut starts = vec![dir];
        let hint = std::mem::take(&mut self.quota_hint);
        starts.extend(
            hint.into_iter()
                .filter(|d| *d != dir && !self.base.quotas.contains_key(d))
                .take(MAX_CHAIN_STARTS - 1),
        );
        self.lock_chain_starts(&starts).await?;
        let keys = starts.iter().map(|d| d.0 as i64).collect();
        let rows = self.rows(self.sql.ancestors(keys), &NODE_TYS).await?;
        let mut dirs: BTreeSet<Ino> = starts.into_iter().collect();
        for r in rows {
            if let Some(ino) = codec::node_ino(&r) {
                dirs.insert(ino);
                self.base
                    .nodes
                    .entry(ino)
                    .or_insert_with(|| codec::node_attr(&r).map(Some));
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
        if !self.lock {
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
    /// stored a quota or the count read (share-locked) at the first call is positive.
    pub(super) async fn quota_any(&mut self) -> Result<bool> {
        let stored = |l: &Layer| l.quotas.values().any(Option::is_some);
        if stored(&self.op) || stored(&self.batch) {
            return Ok(true);
        }
        let n = match &self.base.quota_count {
            Some(v) => v.clone()?,
            None if self.autocommit => {
                self.quota_guard = true;
                return Ok(false);
            }
            None => {
                let mode = if self.lock {
                    LockMode::Share
                } else {
                    LockMode::None
                };
                self.read_quota_count(mode).await?
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

    async fn load_quota(&mut self, dir: Ino) -> Cached<Quota> {
        if !self.base.quotas.contains_key(&dir) {
            self.fetch_chains(dir).await?;
        }
        self.base.quotas.get(&dir).cloned().unwrap_or(Ok(None))
    }

    /// [`TxnView::put_quota`](meta_core::logic::TxnView::put_quota): buffered; the stored row
    /// is read first (locked) when it was not, for the flush to know whether the count
    /// changes.
    pub(super) async fn quota_put(&mut self, dir: Ino, quota: Option<&Quota>) -> Result<()> {
        if !self.base.quotas.contains_key(&dir) {
            self.fetch_chains(dir).await?;
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

    /// The statements of the batch's quota writes: deletes of removed quotas that are
    /// stored, upserts of the others, and the count's change. `guard`: the batch writes
    /// directory statistics, so an autocommitted one carries the guard.
    pub(super) fn quota_flush(
        &self,
        writes: BTreeMap<Ino, Option<Quota>>,
        guard: bool,
    ) -> QuotaFlush {
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
                    }
                    upserts.push(codec::quota_args(dir, &q));
                }
                None if stored => {
                    delta -= 1;
                    deletes.push(vec![ino_arg(dir)]);
                }
                None if base.is_none() => deletes.push(vec![ino_arg(dir)]),
                None => {}
            }
        }
        let cols: Vec<(&str, Ty)> = QUOTA_COLS.iter().map(|c| (*c, Ty::Int)).collect();
        let mut count = Group::new(if delta == 0 {
            Vec::new()
        } else {
            vec![self.sql.quota_count_delta(delta)]
        })
        .expect(u64::from(delta != 0), "");
        count.corrupt = true;
        let guard = (guard && self.autocommit && self.quota_guard).then(|| {
            Group::new(vec![self.sql.quota_guard()])
                .expect(1, "a directory quota was created while this batch ran")
        });
        QuotaFlush {
            deletes: self.sql.delete_keys("quota", &[("ino", Ty::Int)], deletes),
            upserts: self.sql.insert("quota", &cols, 1, upserts, true),
            count,
            guard,
        }
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
