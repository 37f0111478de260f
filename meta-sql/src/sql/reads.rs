//! Statements that read: nodes and edges, chunks, symlinks, xattrs, pending records,
//! counters; and the merge of a PostgreSQL batch's statements into one.

use std::fmt::Write as _;
use std::sync::Arc;

use crate::codec::NODE_COLS;
use crate::exec::{Arg, Stmt, Ty};

use super::{Dialect, MAX_ROWS, RENAME_LOCK, Sql, padded_lists, renumber};

impl Sql {
    /// Node columns with a table alias, e.g. `n.ino, n.type, ...`.
    pub(crate) fn node_cols(alias: &str) -> String {
        NODE_COLS
            .iter()
            .map(|c| format!("{alias}{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Node rows of `inos`, sorted by inode; `lock` takes their row locks in that order.
    pub(crate) fn nodes(&self, inos: Vec<i64>, lock: bool) -> Vec<Stmt> {
        let keys = inos.into_iter().map(|i| vec![Arg::Int(i)]).collect();
        self.select_keys(
            "node",
            &Self::node_cols(""),
            &[("ino", Ty::Int)],
            keys,
            " ORDER BY ino",
            lock,
        )
    }

    /// Edge rows `(parent, name, ino, type)` of `keys`, sorted; `lock` takes row locks.
    pub(crate) fn edges(&self, keys: Vec<(i64, Vec<u8>)>, lock: bool) -> Vec<Stmt> {
        let keys = keys
            .into_iter()
            .map(|(p, n)| vec![Arg::Int(p), Arg::Bytes(n)])
            .collect();
        self.select_keys(
            "edge",
            "parent, name, ino, type",
            &[("parent", Ty::Int), ("name", Ty::Bytes)],
            keys,
            " ORDER BY parent, name",
            lock,
        )
    }

    /// Entries `keys` and nodes `inos` in one statement, without row locks: rows of
    /// `(kind, parent, name, ino, type, 16 node columns)` where kind 0 is an entry (node
    /// columns NULL) and kind 1 a node (entry columns NULL). `None` when the lists are too
    /// long for one statement (then use [`Sql::edges`] and [`Sql::nodes`]).
    pub(crate) fn edges_and_nodes(
        &self,
        keys: Vec<(i64, Vec<u8>)>,
        inos: Vec<i64>,
    ) -> Option<Stmt> {
        if keys.is_empty() || inos.is_empty() {
            return None;
        }
        let pg = self.d == Dialect::Postgres;
        if !pg && (keys.len() > MAX_ROWS || inos.len() > MAX_ROWS) {
            return None;
        }
        let pad = |mut v: Vec<Vec<Arg>>| {
            if !pg {
                v = padded_lists(v, MAX_ROWS)
                    .into_iter()
                    .next()
                    .unwrap_or_default();
            }
            v
        };
        let keys = pad(keys
            .into_iter()
            .map(|(p, n)| vec![Arg::Int(p), Arg::Bytes(n)])
            .collect());
        let inos = pad(inos.into_iter().map(|i| vec![Arg::Int(i)]).collect());
        let (ni, nb, k0, k1) = if pg {
            ("NULL::int8", "NULL::bytea", "0::int8", "1::int8")
        } else {
            ("NULL", "NULL", "0", "1")
        };
        let nulls = vec![ni; NODE_COLS.len()].join(", ");
        let mut b = self.b();
        b.s(&format!(
            "SELECT {k0}, parent, name, ino, type, {nulls} FROM {} WHERE ",
            self.t("edge")
        ));
        self.where_keys(
            &mut b,
            "",
            &[("parent", Ty::Int), ("name", Ty::Bytes)],
            keys,
        );
        b.s(&format!(
            " UNION ALL SELECT {k1}, {ni}, {nb}, {ni}, {ni}, {} FROM {} WHERE ",
            Self::node_cols(""),
            self.t("node")
        ));
        self.where_keys(&mut b, "", &[("ino", Ty::Int)], inos);
        Some(b.done())
    }

    /// PostgreSQL: several data-modifying statements as one, each a CTE (`WITH w0 AS
    /// (... RETURNING 1), ...`), returning one row with each statement's row count. The
    /// statements must touch disjoint rows (they share one snapshot). A `SELECT` (a locking
    /// read, e.g. the quota guard) is taken as is; its count is the rows it returned.
    ///
    /// `guards[i] = Some(n)`: statement `i` must match at least `n` rows, else the whole
    /// statement fails with `division_by_zero` (SQLSTATE 22012: the count is divided by
    /// `(count >= n)::int`), so an autocommitted statement commits nothing. The divisor is
    /// not a constant, so the planner cannot fold it.
    pub(crate) fn merge_pg(&self, stmts: Vec<Stmt>, guards: &[Option<u64>]) -> Stmt {
        let mut s = String::from("WITH ");
        let mut args = Vec::new();
        let n = stmts.len();
        for (i, st) in stmts.into_iter().enumerate() {
            if i > 0 {
                s.push_str(", ");
            }
            let text = renumber(&st.sql, args.len());
            if text.starts_with("SELECT ") {
                // A locking read (a guard): its rows are its count.
                let _ = write!(s, "w{i} AS ({text})");
            } else {
                let _ = write!(s, "w{i} AS ({text} RETURNING 1)");
            }
            args.extend(st.args);
        }
        s.push_str(" SELECT ");
        for i in 0..n {
            if i > 0 {
                s.push_str(", ");
            }
            match guards.get(i).copied().flatten() {
                Some(min) if min > 0 => {
                    args.push(Arg::Int(min as i64));
                    let _ = write!(
                        s,
                        "(SELECT count(*) FROM w{i}) / ((SELECT count(*) FROM w{i}) >= ${})::int",
                        args.len()
                    );
                }
                _ => {
                    let _ = write!(s, "(SELECT count(*) FROM w{i})");
                }
            }
        }
        Stmt {
            sql: Arc::from(s),
            args,
        }
    }

    /// lookup in one statement: the directory's node, the entry and its inode's node:
    /// 16 + 2 + 16 columns, one row when `parent` exists.
    pub(crate) fn lookup(&self, parent: i64, name: Vec<u8>) -> Stmt {
        let mut b = self.b();
        b.s(&format!(
            "SELECT {}, e.ino, e.type, {} FROM {} p LEFT JOIN {} e ON e.parent = p.ino AND e.name = ",
            Self::node_cols("p."),
            Self::node_cols("n."),
            self.t("node"),
            self.t("edge"),
        ));
        b.p(Arg::Bytes(name));
        b.s(&format!(
            " LEFT JOIN {} n ON n.ino = e.ino WHERE p.ino = ",
            self.t("node")
        ));
        b.p(Arg::Int(parent));
        b.done()
    }

    /// Entries of `parent` after `after` in name order, at most `limit`: `(name, ino, type)`,
    /// plus the 16 node columns of each entry's inode with `plus`.
    pub(crate) fn scan_edges(
        &self,
        parent: i64,
        after: Option<Vec<u8>>,
        limit: i64,
        plus: bool,
    ) -> Stmt {
        let mut b = self.b();
        if plus {
            b.s(&format!(
                "SELECT e.name, e.ino, e.type, {} FROM {} e LEFT JOIN {} n ON n.ino = e.ino WHERE e.parent = ",
                Self::node_cols("n."),
                self.t("edge"),
                self.t("node")
            ));
        } else {
            b.s(&format!(
                "SELECT e.name, e.ino, e.type FROM {} e WHERE e.parent = ",
                self.t("edge")
            ));
        }
        b.p(Arg::Int(parent));
        if let Some(a) = after {
            b.s(" AND e.name > ");
            b.p(Arg::Bytes(a));
        }
        b.s(" ORDER BY e.name LIMIT ");
        b.p(Arg::Int(limit));
        b.done()
    }

    /// The first `n` entries (by name) of each directory: `(parent, name, ino, type)`.
    pub(crate) fn first_entries(&self, dirs: Vec<(i64, i64)>) -> Vec<Stmt> {
        if dirs.is_empty() {
            return Vec::new();
        }
        if self.d == Dialect::Postgres {
            let (p, n): (Vec<i64>, Vec<i64>) = dirs.into_iter().unzip();
            let mut b = self.b();
            b.s("SELECT e.parent, e.name, e.ino, e.type FROM UNNEST(");
            b.arr(Arg::Ints(p), Ty::Int).s(", ");
            b.arr(Arg::Ints(n), Ty::Int);
            b.s(&format!(
                ") AS d(p, lim) CROSS JOIN LATERAL (SELECT parent, name, ino, type FROM {} \
                 WHERE parent = d.p ORDER BY name LIMIT d.lim) e",
                self.t("edge")
            ));
            return vec![b.done()];
        }
        let keys = dirs
            .into_iter()
            .map(|(p, n)| vec![Arg::Int(p), Arg::Int(n)])
            .collect();
        padded_lists(keys, 64)
            .into_iter()
            .map(|list| {
                let mut b = self.b();
                for (i, k) in list.into_iter().enumerate() {
                    if i > 0 {
                        b.s(" UNION ALL ");
                    }
                    let mut k = k.into_iter();
                    b.s(&format!(
                        "SELECT * FROM (SELECT parent, name, ino, type FROM {} WHERE parent = ",
                        self.t("edge")
                    ));
                    if let Some(a) = k.next() {
                        b.p(a);
                    }
                    b.s(" ORDER BY name LIMIT ");
                    if let Some(a) = k.next() {
                        b.p(a);
                    }
                    b.s(&format!(") AS t{i}"));
                }
                b.done()
            })
            .collect()
    }

    /// Live inodes after `after`, increasing, at most `limit`.
    pub(crate) fn node_range(&self, after: i64, limit: i64) -> Stmt {
        let mut b = self.b();
        b.s(&format!(
            "SELECT {} FROM {} WHERE ino > ",
            Self::node_cols(""),
            self.t("node")
        ));
        b.p(Arg::Int(after));
        b.s(" ORDER BY ino LIMIT ");
        b.p(Arg::Int(limit));
        b.done()
    }

    /// The row lock that serializes directory moves between directories (rename cycles).
    pub(crate) fn rename_lock(&self) -> Stmt {
        let mut b = self.b();
        b.s(&format!(
            "SELECT value FROM {} WHERE name = ",
            self.t("counter")
        ));
        b.p(Arg::Text(RENAME_LOCK.into()));
        b.s(self.lock_suffix(true));
        b.done()
    }

    // ------------------------------------------------------------------------------------
    // Chunks, symlinks, xattrs, pending records, counters

    /// Chunk rows `(ino, indx, slices)` of `keys`.
    pub(crate) fn chunks(&self, keys: Vec<(i64, i64)>) -> Vec<Stmt> {
        let keys = keys
            .into_iter()
            .map(|(i, x)| vec![Arg::Int(i), Arg::Int(x)])
            .collect();
        self.select_keys(
            "chunk",
            "ino, indx, slices",
            &[("ino", Ty::Int), ("indx", Ty::Int)],
            keys,
            "",
            false,
        )
    }

    /// Every chunk row `(ino, indx, slices)` of `inos`.
    pub(crate) fn chunks_of(&self, inos: Vec<i64>) -> Vec<Stmt> {
        let keys = inos.into_iter().map(|i| vec![Arg::Int(i)]).collect();
        self.select_keys(
            "chunk",
            "ino, indx, slices",
            &[("ino", Ty::Int)],
            keys,
            " ORDER BY ino, indx",
            false,
        )
    }

    /// Chunk indexes of one inode, increasing.
    pub(crate) fn chunk_indexes(&self, ino: i64) -> Stmt {
        self.column_of("chunk", "indx", ino)
    }

    /// Column `col` of every row of `table` that belongs to inode `ino`, ordered by `col`.
    fn column_of(&self, table: &str, col: &str, ino: i64) -> Stmt {
        let mut b = self.b();
        b.s(&format!("SELECT {col} FROM {} WHERE ino = ", self.t(table)));
        b.p(Arg::Int(ino));
        b.s(&format!(" ORDER BY {col}"));
        b.done()
    }

    /// Symlink rows `(ino, target)` of `inos`.
    pub(crate) fn symlinks(&self, inos: Vec<i64>) -> Vec<Stmt> {
        let keys = inos.into_iter().map(|i| vec![Arg::Int(i)]).collect();
        self.select_keys(
            "symlink",
            "ino, target",
            &[("ino", Ty::Int)],
            keys,
            "",
            false,
        )
    }

    /// Xattr rows `(ino, name, value)` of `keys`.
    pub(crate) fn xattrs(&self, keys: Vec<(i64, Vec<u8>)>) -> Vec<Stmt> {
        let keys = keys
            .into_iter()
            .map(|(i, n)| vec![Arg::Int(i), Arg::Bytes(n)])
            .collect();
        self.select_keys(
            "xattr",
            "ino, name, value",
            &[("ino", Ty::Int), ("name", Ty::Bytes)],
            keys,
            "",
            false,
        )
    }

    /// Xattr names of one inode, in byte order.
    pub(crate) fn xattr_names(&self, ino: i64) -> Stmt {
        self.column_of("xattr", "name", ino)
    }

    /// Pending-file rows `(ino)` of `inos`.
    pub(crate) fn delfiles(&self, inos: Vec<i64>) -> Vec<Stmt> {
        let keys = inos.into_iter().map(|i| vec![Arg::Int(i)]).collect();
        self.select_keys("delfile", "ino", &[("ino", Ty::Int)], keys, "", false)
    }

    /// Pending-slice rows `(id)` of `ids`.
    pub(crate) fn delslices(&self, ids: Vec<i64>) -> Vec<Stmt> {
        let keys = ids.into_iter().map(|i| vec![Arg::Int(i)]).collect();
        self.select_keys("delslice", "id", &[("id", Ty::Int)], keys, "", false)
    }

    /// Pending records of one kind in key order, at most `limit`: `(key, length or size)`.
    pub(crate) fn pending(&self, files: bool, limit: i64) -> Stmt {
        let mut b = self.b();
        if files {
            b.s(&format!(
                "SELECT ino, length FROM {} ORDER BY ino LIMIT ",
                self.t("delfile")
            ));
        } else {
            b.s(&format!(
                "SELECT id, size FROM {} ORDER BY id LIMIT ",
                self.t("delslice")
            ));
        }
        b.p(Arg::Int(limit));
        b.done()
    }

    /// Counter rows `(name, value)` of `names`.
    ///
    /// `lock`: `FOR UPDATE` (PostgreSQL, MySQL), so that a quota check and the counter update
    /// after it are not interleaved with another client's (without it two clients could both
    /// pass the last free inode or byte).
    pub(crate) fn counters(&self, names: Vec<String>, lock: bool) -> Vec<Stmt> {
        let keys = names.into_iter().map(|n| vec![Arg::Text(n)]).collect();
        self.select_keys(
            "counter",
            "name, value",
            &[("name", Ty::Text)],
            keys,
            "",
            lock,
        )
    }

    /// Reserves `n` IDs from counter `name` in one autocommitted statement. PostgreSQL and
    /// SQLite return the new value (`RETURNING`); MySQL reports it as `LAST_INSERT_ID()` in
    /// the statement's OK packet (`Done::last_id`). A plain `value + n`, not saturating:
    /// past i64::MAX the statement fails rather than hand out IDs again.
    pub(crate) fn reserve(&self, name: &str, n: i64) -> Stmt {
        if self.d != Dialect::MySql {
            let mut b = self.b();
            b.s(&format!(
                "UPDATE {} SET value = value + ",
                self.t("counter")
            ));
            b.p(Arg::Int(n));
            b.s(" WHERE name = ");
            b.p(Arg::Text(name.into()));
            b.s(" RETURNING value");
            return b.done();
        }
        let mut b = self.b();
        b.s(&format!(
            "UPDATE {} SET value = LAST_INSERT_ID(value + ",
            self.t("counter")
        ));
        b.p(Arg::Int(n));
        b.s(") WHERE name = ");
        b.p(Arg::Text(name.into()));
        b.s(" AND value IS NOT NULL");
        b.done()
    }
}
