//! [`SqlTxn::flush`]: the batch layer as a few multi-row statements (see the module docs of
//! `txn`), and the [`Group`]s they run in.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use meta_core::logic;
use meta_core::{Attr, Error, ErrorKind, FileType, Ino, Result, Timespec};

use crate::codec::{self, NODE_TYS, corrupted, ino_arg};
use crate::error::{Stage, classify, in_batch};
use crate::exec::{Arg, Stmt, Ty, Val};
use crate::sql::NODE_STAT_COLS;

use super::{PKey, SqlTxn, Stats, WIPE_CHUNK, WIPE_SYMLINK, WIPE_XATTR, session};

/// A row of the directories' commutative update (`Sql::dir_deltas`):
/// directory `ino`'s nlink and time change (none: its nlink and times stay, as no time is
/// below i64::MIN seconds), its statistics' delta and the parent its quota chain was walked
/// from (0: none).
fn dir_row(ino: Ino, delta: Option<(i64, Timespec)>, st: [i64; 3], parent: i64) -> [i64; 8] {
    let (d, sec, nsec) = delta.map_or((0, i64::MIN, 0), |(d, t)| (d, t.sec, i64::from(t.nsec)));
    let [si, sl, ss] = st;
    [ino.0 as i64, d, sec, nsec, parent, si, sl, ss]
}

impl SqlTxn<'_> {
    /// Folds the last op's layer and writes the batch: validation of unlocked rows, then
    /// deletes, inserts and upserts, then directory deltas, then counter deltas. `Conflict`
    /// (with [`SqlTxn::hints`] set) when a row read without a lock changed meanwhile.
    pub(crate) async fn flush(&mut self) -> Result<()> {
        let op = std::mem::take(&mut self.op);
        self.batch.fold(op);
        let w = std::mem::take(&mut self.batch);
        let sql = self.sql;

        // Directory statistics (schema v6: in the directory's node row): each directory's
        // delta goes with the write of its node row below, which the database adds to the
        // stored values. A deleted directory's statistics go with its row (`reset`: the
        // batch's deltas to it before were dropped; none can come after).
        let mut stats: BTreeMap<Ino, [i64; 3]> = BTreeMap::new();
        for (ino, sw) in &w.dir_stats {
            if !sw.delta.is_zero() {
                let d = sw.delta;
                stats.insert(*ino, [d.inodes, d.length, d.space]);
            }
        }
        let with_stats = |mut row: Vec<Arg>, st: [i64; 3]| {
            row.extend(st.map(Arg::Int));
            row
        };
        let walked = self.quotas_walked(&w.quotas);

        // Nodes.
        let mut node_insert: Vec<Vec<Arg>> = Vec::new();
        let mut node_upsert: Vec<Vec<Arg>> = Vec::new();
        let mut node_insert_st: Vec<Vec<Arg>> = Vec::new();
        let mut node_upsert_st: Vec<Vec<Arg>> = Vec::new();
        let mut node_delete: Vec<i64> = Vec::new();
        let mut expect_deleted = 0u64;
        let mut dir_rows: Vec<[i64; 8]> = Vec::new();
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
                            let new = matches!(base, Some(Ok(None)));
                            let row = codec::node_args(*ino, &a);
                            match (stats.remove(ino), new) {
                                (None, true) => node_insert.push(row),
                                (None, false) => node_upsert.push(row),
                                (Some(st), true) => node_insert_st.push(with_stats(row, st)),
                                (Some(st), false) => node_upsert_st.push(with_stats(row, st)),
                            }
                        }
                        None => {
                            if stats.remove(ino).is_some() {
                                return Err(Error::new(
                                    ErrorKind::Internal,
                                    format!(
                                        "directory statistics charged to directory {ino} after \
                                         the batch deleted it"
                                    ),
                                ));
                            }
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
                    let st = stats.remove(ino);
                    if nw.delta.is_some() || st.is_some() {
                        let parent = self.chain_parent(walked, *ino);
                        dir_rows.push(dir_row(*ino, nw.delta, st.unwrap_or_default(), parent));
                    }
                }
            }
        }
        // Directories whose statistics alone change (no node write).
        for (ino, st) in stats {
            dir_rows.push(dir_row(ino, None, st, self.chain_parent(walked, ino)));
        }
        dir_rows.sort_unstable_by_key(|r| r[0]);
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
        // Node rows written with their statistics' delta (new directories: the delta is the
        // whole value; rewritten ones: added to the stored value).
        let node_cols_st: Vec<(&str, Ty)> = node_cols
            .iter()
            .copied()
            .chain(NODE_STAT_COLS.iter().map(|c| (*c, Ty::Int)))
            .collect();
        plan.push(Group::new(sql.insert(
            "node",
            &node_cols_st,
            1,
            node_insert_st,
            false,
        )));
        plan.push(Group::new(sql.upsert_adding(
            "node",
            &node_cols_st,
            1,
            node_upsert_st,
            NODE_STAT_COLS.len(),
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
        // The directories' node rows: their nlink and time changes and their statistics.
        let dirs = dir_rows.len() as u64;
        plan.push(Group::new(sql.dir_deltas(dir_rows)).expect(
            dirs,
            "a directory this batch updates was removed (or moved) concurrently",
        ));
        // An optimistic batch's quota rows after the directories' node rows, the order the
        // locked path takes them in.
        plan.push(quotas.deltas);
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
pub(super) struct Group {
    pub(super) stmts: Vec<Stmt>,
    pub(super) expect: u64,
    pub(super) short: &'static str,
    /// A shortfall means a missing row (Corrupted), not a lost race (Conflict).
    pub(super) corrupt: bool,
    /// Locking reads (a guard): what they match is the rows they return.
    pub(super) query: bool,
}

impl Group {
    pub(super) fn new(stmts: Vec<Stmt>) -> Group {
        Group {
            stmts,
            expect: 0,
            short: "",
            corrupt: false,
            query: false,
        }
    }

    pub(super) fn expect(mut self, n: u64, why: &'static str) -> Group {
        self.expect = n;
        self.short = why;
        self
    }

    pub(super) fn check(&self, matched: u64) -> Result<()> {
        if matched >= self.expect {
            return Ok(());
        }
        if self.corrupt {
            return Err(corrupted("a volume counter row is missing"));
        }
        Err(Error::new(ErrorKind::Conflict, self.short))
    }
}
