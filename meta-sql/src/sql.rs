//! Every SQL text of the crate, built once per dialect. Texts contain only constants and the
//! validated table prefix; every value is a bound parameter.
//!
//! Multi-row statements keep a small set of distinct texts so the drivers' prepared-statement
//! caches stay warm (one round trip per statement): PostgreSQL binds whole columns as arrays
//! (`UNNEST($1::int8[], ...)`, `= ANY($1)`), one text whatever the row count; MySQL and SQLite
//! use `VALUES (..),(..)` / `IN (..)` lists whose lengths are powers of two (key lists are
//! padded by repeating a key, row lists are split into power-of-two pieces).

use std::fmt::Write as _;
use std::sync::Arc;

use meta_core::{Error, ErrorKind, Result};

use crate::codec::NODE_COLS;
use crate::exec::{Arg, Stmt, Ty};

/// The SQL dialect of a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    /// SQLite (bundled), one writer.
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB (InnoDB).
    MySql,
}

impl Dialect {
    /// The URL scheme, e.g. `"postgres"`.
    pub fn scheme(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
            Dialect::MySql => "mysql",
        }
    }

    /// True when write transactions take row locks (`SELECT ... FOR UPDATE`). SQLite
    /// serializes writers instead (`BEGIN IMMEDIATE`).
    pub(crate) fn row_locks(self) -> bool {
        !matches!(self, Dialect::Sqlite)
    }

    /// The statement that starts a batch's transaction.
    pub(crate) fn begin(self) -> &'static str {
        match self {
            // Takes the database's write lock at once: no deadlock-prone upgrade from a read
            // lock, and other processes wait in busy_timeout.
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            // READ COMMITTED explicitly (whatever the server default): every statement sees
            // what committed before it, so reads after a row lock see the lock holder's
            // writes; lost updates are prevented by the row locks, not by SERIALIZABLE.
            Dialect::Postgres => "BEGIN ISOLATION LEVEL READ COMMITTED",
            // The session is READ COMMITTED (set at connect): no gap locks on absent keys.
            Dialect::MySql => "BEGIN",
        }
    }

    fn greatest(self) -> &'static str {
        match self {
            Dialect::Sqlite => "MAX",
            _ => "GREATEST",
        }
    }
}

/// Every table of a volume, in creation order (`schema_version` last).
pub(crate) const TABLES: [&str; 16] = [
    "setting",
    "counter",
    "node",
    "edge",
    "chunk",
    "symlink",
    "xattr",
    "delfile",
    "delslice",
    "session",
    "openfile",
    "flock",
    "plock",
    "dirstat",
    "quota",
    "schema_version",
];

/// Most keys in one non-PostgreSQL `IN (...)` list / rows in one `VALUES` list.
const MAX_ROWS: usize = 256;
/// Most bound parameters of one statement (SQLite's default limit is 32766).
const MAX_PARAMS: usize = 32_000;
/// Most keys in one non-PostgreSQL `IN (...)` list of a read that is not part of a batch
/// (directory statistics: `meta_core` asks for up to 1,024 directories at a time).
const MAX_READ_KEYS: usize = 4096;

/// What an `INSERT` does with a row whose key exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OnConflict {
    /// Nothing: the statement fails (unique violation).
    Fail,
    /// The row is skipped.
    Ignore,
    /// The row's other columns replace the stored ones.
    Replace,
    /// The row's other columns are added to the stored ones (commutative deltas).
    Add,
}

/// Checks and normalizes a table prefix: ASCII letters, digits and `_`, at most 32 bytes,
/// folded to lower case (PostgreSQL folds unquoted identifiers; MySQL on Linux does not, so
/// folding keeps one prefix one set of tables everywhere).
pub fn validate_prefix(prefix: &str) -> Result<String> {
    if prefix.len() > 32
        || !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        || prefix.starts_with(|c: char| c.is_ascii_digit())
    {
        return Err(Error::new(
            ErrorKind::ConfigInvalid,
            format!(
                "table_prefix {prefix:?}: use at most 32 ASCII letters, digits and '_', not \
                 starting with a digit (it begins SQL identifiers)"
            ),
        ));
    }
    Ok(prefix.to_ascii_lowercase())
}

/// The row lock a `SELECT` takes in a write transaction (nothing on SQLite, whose writers
/// are serialized).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LockMode {
    /// A plain read.
    None,
    /// `FOR SHARE` (MySQL/MariaDB: `LOCK IN SHARE MODE`): others may share, not update.
    Share,
    /// `FOR UPDATE`.
    Update,
}

/// Statement builder: SQL text plus arguments, with the dialect's placeholders.
pub(crate) struct B {
    d: Dialect,
    s: String,
    args: Vec<Arg>,
}

impl B {
    fn new(d: Dialect) -> B {
        B {
            d,
            s: String::with_capacity(256),
            args: Vec::new(),
        }
    }
    pub(crate) fn s(&mut self, text: &str) -> &mut Self {
        self.s.push_str(text);
        self
    }
    /// A placeholder bound to `a`.
    pub(crate) fn p(&mut self, a: Arg) -> &mut Self {
        self.args.push(a);
        if self.d == Dialect::Postgres {
            let _ = write!(self.s, "${}", self.args.len());
        } else {
            self.s.push('?');
        }
        self
    }
    /// A PostgreSQL array placeholder with its cast.
    pub(crate) fn arr(&mut self, a: Arg, ty: Ty) -> &mut Self {
        self.p(a);
        self.s.push_str(match ty {
            Ty::Int => "::int8[]",
            Ty::Bytes => "::bytea[]",
            Ty::Text => "::text[]",
        });
        self
    }
    pub(crate) fn done(self) -> Stmt {
        Stmt {
            sql: Arc::from(self.s),
            args: self.args,
        }
    }
}

/// Transposes rows of scalar arguments into one array argument per column (PostgreSQL).
pub(crate) fn columns(rows: Vec<Vec<Arg>>, tys: &[Ty]) -> Vec<Arg> {
    let mut ints: Vec<Vec<i64>> = vec![Vec::new(); tys.len()];
    let mut blobs: Vec<Vec<Vec<u8>>> = vec![Vec::new(); tys.len()];
    let mut texts: Vec<Vec<String>> = vec![Vec::new(); tys.len()];
    for row in rows {
        for (i, a) in row.into_iter().enumerate() {
            match a {
                Arg::Int(v) => ints[i].push(v),
                Arg::Bytes(v) => blobs[i].push(v),
                Arg::Text(v) => texts[i].push(v),
                // Rows hold scalars only.
                Arg::Ints(_) | Arg::Blobs(_) | Arg::Texts(_) => {}
            }
        }
    }
    tys.iter()
        .enumerate()
        .map(|(i, ty)| match ty {
            Ty::Int => Arg::Ints(std::mem::take(&mut ints[i])),
            Ty::Bytes => Arg::Blobs(std::mem::take(&mut blobs[i])),
            Ty::Text => Arg::Texts(std::mem::take(&mut texts[i])),
        })
        .collect()
}

/// Splits `n` rows into power-of-two pieces of at most `max` rows.
fn pow2_pieces(mut n: usize, max: usize) -> Vec<usize> {
    let mut out = Vec::new();
    let cap = if max.is_power_of_two() {
        max
    } else {
        max.next_power_of_two() / 2
    }
    .max(1);
    while n > 0 {
        let k = if n >= cap {
            cap
        } else {
            1 << (usize::BITS - 1 - n.leading_zeros())
        };
        out.push(k);
        n -= k;
    }
    out
}

/// Splits keys into lists of at most `MAX_ROWS` (or `max`), each padded to a power of two by
/// repeating its last key (harmless in `IN` / `OR` lists).
pub(crate) fn padded_lists(keys: Vec<Vec<Arg>>, max: usize) -> Vec<Vec<Vec<Arg>>> {
    padded_lists_upto(keys, max.clamp(1, MAX_ROWS))
}

/// The first `IN` list of [`padded_lists`]: at most `MAX_ROWS` keys (the caller keeps to
/// that), padded to a power of two.
pub(crate) fn padded_key_list(keys: Vec<Vec<Arg>>) -> Vec<Vec<Arg>> {
    padded_lists(keys, MAX_ROWS)
        .into_iter()
        .next()
        .unwrap_or_default()
}

/// [`padded_lists`] with lists of up to `max` keys (a power of two).
fn padded_lists_upto(keys: Vec<Vec<Arg>>, max: usize) -> Vec<Vec<Vec<Arg>>> {
    let max = max.max(1);
    let mut out = Vec::new();
    let mut it = keys.into_iter().peekable();
    while it.peek().is_some() {
        let mut list: Vec<Vec<Arg>> = it.by_ref().take(max).collect();
        let target = list.len().next_power_of_two().min(max);
        while list.len() < target {
            let Some(last) = list.last().cloned() else {
                break;
            };
            list.push(last);
        }
        out.push(list);
    }
    out
}

/// The SQL of one volume: dialect and table prefix.
#[derive(Debug, Clone)]
pub(crate) struct Sql {
    pub d: Dialect,
    prefix: String,
}

impl Sql {
    /// `prefix` must come from [`validate_prefix`].
    pub(crate) fn new(d: Dialect, prefix: String) -> Sql {
        Sql { d, prefix }
    }

    /// The table prefix.
    pub(crate) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A prefixed table name.
    pub(crate) fn t(&self, table: &str) -> String {
        format!("{}{table}", self.prefix)
    }

    pub(crate) fn b(&self) -> B {
        B::new(self.d)
    }

    fn lock_suffix(&self, lock: bool) -> &'static str {
        self.lock_mode(if lock {
            LockMode::Update
        } else {
            LockMode::None
        })
    }

    /// The clause that takes `mode`'s row locks in this dialect.
    pub(crate) fn lock_mode(&self, mode: LockMode) -> &'static str {
        match (mode, self.d) {
            (LockMode::None, _) | (_, Dialect::Sqlite) => "",
            (LockMode::Update, _) => " FOR UPDATE",
            (LockMode::Share, Dialect::MySql) => " LOCK IN SHARE MODE",
            (LockMode::Share, Dialect::Postgres) => " FOR SHARE",
        }
    }

    /// Appends a condition matching any of `keys` on the key columns `kcols`.
    pub(crate) fn where_keys(
        &self,
        b: &mut B,
        alias: &str,
        kcols: &[(&str, Ty)],
        keys: Vec<Vec<Arg>>,
    ) {
        if self.d == Dialect::Postgres {
            let tys: Vec<Ty> = kcols.iter().map(|(_, t)| *t).collect();
            let cols = columns(keys, &tys);
            if kcols.len() == 1 {
                b.s(&format!("{alias}{} = ANY(", kcols[0].0));
                for a in cols {
                    b.arr(a, tys[0]);
                }
                b.s(")");
            } else {
                let names: Vec<String> = kcols.iter().map(|(c, _)| format!("{alias}{c}")).collect();
                b.s(&format!("({}) IN (SELECT * FROM UNNEST(", names.join(", ")));
                for (i, (a, ty)) in cols.into_iter().zip(tys).enumerate() {
                    if i > 0 {
                        b.s(", ");
                    }
                    b.arr(a, ty);
                }
                b.s("))");
            }
            return;
        }
        if kcols.len() == 1 {
            b.s(&format!("{alias}{} IN (", kcols[0].0));
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    b.s(", ");
                }
                for a in k {
                    b.p(a);
                }
            }
            b.s(")");
        } else {
            b.s("(");
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    b.s(" OR ");
                }
                b.s("(");
                for (j, a) in k.into_iter().enumerate() {
                    if j > 0 {
                        b.s(" AND ");
                    }
                    b.s(&format!("{alias}{} = ", kcols[j].0));
                    b.p(a);
                }
                b.s(")");
            }
            b.s(")");
        }
    }

    /// `SELECT out FROM table WHERE <keys> tail`, as few statements as the dialect allows.
    pub(crate) fn select_keys(
        &self,
        table: &str,
        out: &str,
        kcols: &[(&str, Ty)],
        keys: Vec<Vec<Arg>>,
        tail: &str,
        lock: bool,
    ) -> Vec<Stmt> {
        let mode = if lock {
            LockMode::Update
        } else {
            LockMode::None
        };
        self.select_keys_mode(table, out, kcols, keys, tail, mode)
    }

    /// [`Sql::select_keys`] with any row lock mode.
    pub(crate) fn select_keys_mode(
        &self,
        table: &str,
        out: &str,
        kcols: &[(&str, Ty)],
        keys: Vec<Vec<Arg>>,
        tail: &str,
        mode: LockMode,
    ) -> Vec<Stmt> {
        let lists = if self.d == Dialect::Postgres {
            vec![keys]
        } else {
            padded_lists(keys, MAX_PARAMS / kcols.len().max(1))
        };
        lists
            .into_iter()
            .filter(|k| !k.is_empty())
            .map(|keys| {
                let mut b = self.b();
                b.s(&format!("SELECT {out} FROM {} WHERE ", self.t(table)));
                self.where_keys(&mut b, "", kcols, keys);
                b.s(tail);
                b.s(self.lock_mode(mode));
                b.done()
            })
            .collect()
    }

    /// `DELETE FROM table WHERE <keys>`.
    pub(crate) fn delete_keys(
        &self,
        table: &str,
        kcols: &[(&str, Ty)],
        keys: Vec<Vec<Arg>>,
    ) -> Vec<Stmt> {
        let lists = if self.d == Dialect::Postgres {
            vec![keys]
        } else {
            padded_lists(keys, MAX_PARAMS / kcols.len().max(1))
        };
        lists
            .into_iter()
            .filter(|k| !k.is_empty())
            .map(|keys| {
                let mut b = self.b();
                b.s(&format!("DELETE FROM {} WHERE ", self.t(table)));
                self.where_keys(&mut b, "", kcols, keys);
                b.done()
            })
            .collect()
    }

    /// `INSERT INTO table (cols) ...` of `rows`; with `upsert`, rows whose key (the first
    /// `nkey` columns) exists replace the other columns. Rows must have distinct keys.
    pub(crate) fn insert(
        &self,
        table: &str,
        cols: &[(&str, Ty)],
        nkey: usize,
        rows: Vec<Vec<Arg>>,
        upsert: bool,
    ) -> Vec<Stmt> {
        let mode = if upsert {
            OnConflict::Replace
        } else {
            OnConflict::Fail
        };
        self.insert_with(table, cols, nkey, rows, mode)
    }

    /// `INSERT` of delta rows: a row whose key (the first `nkey` columns) exists adds its
    /// other columns to the stored ones, in the database (`ON CONFLICT DO UPDATE SET c =
    /// t.c + excluded.c`, MySQL's `ON DUPLICATE KEY UPDATE c = c + VALUES(c)`), so concurrent
    /// batches adding to one row lose nothing. Rows must have distinct keys; they are
    /// applied (and their row locks taken) in key order, as given on MySQL/SQLite.
    pub(crate) fn insert_adding(
        &self,
        table: &str,
        cols: &[(&str, Ty)],
        nkey: usize,
        rows: Vec<Vec<Arg>>,
    ) -> Vec<Stmt> {
        self.insert_with(table, cols, nkey, rows, OnConflict::Add)
    }

    /// `INSERT` of rows that are all key (e.g. `openfile`): a row whose key exists is
    /// skipped (`ON CONFLICT DO NOTHING`, MySQL's `INSERT IGNORE`).
    pub(crate) fn insert_or_ignore(
        &self,
        table: &str,
        cols: &[(&str, Ty)],
        rows: Vec<Vec<Arg>>,
    ) -> Vec<Stmt> {
        self.insert_with(table, cols, cols.len(), rows, OnConflict::Ignore)
    }

    fn insert_with(
        &self,
        table: &str,
        cols: &[(&str, Ty)],
        nkey: usize,
        rows: Vec<Vec<Arg>>,
        mode: OnConflict,
    ) -> Vec<Stmt> {
        if rows.is_empty() {
            return Vec::new();
        }
        let names: Vec<&str> = cols.iter().map(|(c, _)| *c).collect();
        let verb = if mode == OnConflict::Ignore && self.d == Dialect::MySql {
            "INSERT IGNORE"
        } else {
            "INSERT"
        };
        let pg = self.d == Dialect::Postgres;
        // PostgreSQL names the stored row by the target's alias in `DO UPDATE SET` (an
        // unqualified column would be ambiguous with `excluded`).
        let alias = if pg && mode == OnConflict::Add {
            " AS t"
        } else {
            ""
        };
        let head = format!(
            "{verb} INTO {}{alias} ({}) ",
            self.t(table),
            names.join(", ")
        );
        let keys = names[..nkey].join(", ");
        let rest = &names[nkey..];
        let conflict = match (mode, self.d) {
            (OnConflict::Fail, _) | (OnConflict::Ignore, Dialect::MySql) => String::new(),
            (OnConflict::Ignore, _) => format!(" ON CONFLICT ({keys}) DO NOTHING"),
            (OnConflict::Replace, Dialect::MySql) => {
                let set: Vec<String> = rest.iter().map(|c| format!("{c} = VALUES({c})")).collect();
                format!(" ON DUPLICATE KEY UPDATE {}", set.join(", "))
            }
            (OnConflict::Replace, _) => {
                let set: Vec<String> = rest.iter().map(|c| format!("{c} = excluded.{c}")).collect();
                format!(" ON CONFLICT ({keys}) DO UPDATE SET {}", set.join(", "))
            }
            (OnConflict::Add, Dialect::MySql) => {
                let set: Vec<String> = rest
                    .iter()
                    .map(|c| format!("{c} = {c} + VALUES({c})"))
                    .collect();
                format!(" ON DUPLICATE KEY UPDATE {}", set.join(", "))
            }
            (OnConflict::Add, Dialect::Postgres) => {
                let set: Vec<String> = rest
                    .iter()
                    .map(|c| format!("{c} = t.{c} + excluded.{c}"))
                    .collect();
                format!(" ON CONFLICT ({keys}) DO UPDATE SET {}", set.join(", "))
            }
            (OnConflict::Add, Dialect::Sqlite) => {
                let set: Vec<String> = rest
                    .iter()
                    .map(|c| format!("{c} = {c} + excluded.{c}"))
                    .collect();
                format!(" ON CONFLICT ({keys}) DO UPDATE SET {}", set.join(", "))
            }
        };
        if pg {
            let tys: Vec<Ty> = cols.iter().map(|(_, t)| *t).collect();
            let mut b = self.b();
            b.s(&head).s("SELECT * FROM UNNEST(");
            for (i, (a, ty)) in columns(rows, &tys).into_iter().zip(tys).enumerate() {
                if i > 0 {
                    b.s(", ");
                }
                b.arr(a, ty);
            }
            b.s(")");
            if mode == OnConflict::Add {
                // Rows are inserted (and conflicting rows locked) in key order, whatever the
                // plan: two batches adding to the same rows cannot deadlock on them.
                b.s(&format!(" AS d ({}) ORDER BY {keys}", names.join(", ")));
            }
            b.s(&conflict);
            return vec![b.done()];
        }
        let mut out = Vec::new();
        let mut it = rows.into_iter();
        for n in pow2_pieces(it.len(), MAX_PARAMS / cols.len().max(1)) {
            let mut b = self.b();
            b.s(&head).s("VALUES ");
            for (i, row) in it.by_ref().take(n).enumerate() {
                b.s(if i > 0 { ", (" } else { "(" });
                for (j, a) in row.into_iter().enumerate() {
                    if j > 0 {
                        b.s(", ");
                    }
                    b.p(a);
                }
                b.s(")");
            }
            b.s(&conflict);
            out.push(b.done());
        }
        out
    }

    // ------------------------------------------------------------------------------------
    // Node and edge reads

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
    /// the statement's OK packet (`Done::last_id`).
    pub(crate) fn reserve(&self, name: &str, n: i64) -> Stmt {
        let mut b = self.b();
        if self.d == Dialect::MySql {
            b.s(&format!(
                "UPDATE {} SET value = LAST_INSERT_ID(value + ",
                self.t("counter")
            ));
            b.p(Arg::Int(n));
            b.s(") WHERE name = ");
            b.p(Arg::Text(name.into()));
            b.s(" AND value IS NOT NULL");
        } else {
            b.s(&format!(
                "UPDATE {} SET value = value + ",
                self.t("counter")
            ));
            b.p(Arg::Int(n));
            b.s(" WHERE name = ");
            b.p(Arg::Text(name.into()));
            b.s(" RETURNING value");
        }
        b.done()
    }

    // ------------------------------------------------------------------------------------
    // Commutative updates

    /// PostgreSQL: a FROM item `(SELECT key FROM table WHERE key = ANY($n) ORDER BY key FOR
    /// UPDATE) AS l` that an UPDATE of several hot rows joins on its key, so that the rows are
    /// locked in key order whatever join order the planner picks. Without it the order follows
    /// the plan (e.g. a sequential scan meets the rows' newest versions in page order, which
    /// changes as they are updated): two batches updating the same two counter rows then
    /// deadlock (40P01, retried: measured at 4–76 retries per 10,000 unbatched creates by 16
    /// tasks in 16 directories, and up to 6× fewer creates/s).
    pub(crate) fn pg_lock_in_order(&self, b: &mut B, table: &str, key: &str, keys: Arg, ty: Ty) {
        b.s(&format!(
            "(SELECT {key} FROM {} WHERE {key} = ANY(",
            self.t(table)
        ));
        b.arr(keys, ty);
        b.s(&format!(") ORDER BY {key} FOR UPDATE) AS l"));
    }

    /// `nlink += delta` and mtime/ctime raised to `(sec, nsec)` for each `(ino, delta, sec,
    /// nsec, parent)` row (distinct inodes), without reading the rows first. A row whose
    /// `parent` is not 0 only matches while the directory's parent is still that one (a batch
    /// that charged the quotas above it: see `txn::quota`); a directory moved meanwhile is a
    /// shortfall in the matched rows, like one removed. MySQL evaluates a single-table
    /// UPDATE's assignments left to right, so each `*_nsec` is assigned before its `*_sec`
    /// (PostgreSQL and SQLite read the old values everywhere).
    pub(crate) fn dir_deltas(&self, rows: Vec<[i64; 5]>) -> Vec<Stmt> {
        if rows.is_empty() {
            return Vec::new();
        }
        if self.d == Dialect::Postgres {
            let rows = rows
                .into_iter()
                .map(|r| r.iter().map(|&v| Arg::Int(v)).collect())
                .collect();
            let mut b = self.b();
            let raise = |t: &str| {
                format!(
                    "{t}_nsec = CASE WHEN (n.{t}_sec, n.{t}_nsec) >= (d.s, d.ns) THEN n.{t}_nsec ELSE d.ns END, \
                     {t}_sec = GREATEST(n.{t}_sec, d.s)"
                )
            };
            b.s(&format!(
                "UPDATE {} AS n SET nlink = n.nlink + d.dn, {}, {} FROM UNNEST(",
                self.t("node"),
                raise("mtime"),
                raise("ctime")
            ));
            let cols = columns(rows, &[Ty::Int; 5]);
            let inos = cols[0].clone();
            for (i, a) in cols.into_iter().enumerate() {
                if i > 0 {
                    b.s(", ");
                }
                b.arr(a, Ty::Int);
            }
            b.s(") AS d(ino, dn, s, ns, p), ");
            self.pg_lock_in_order(&mut b, "node", "ino", inos, Ty::Int);
            b.s(" WHERE n.ino = d.ino AND l.ino = n.ino AND (d.p = 0 OR n.parent = d.p)");
            return vec![b.done()];
        }
        let keys = rows
            .into_iter()
            .map(|r| r.iter().map(|&v| Arg::Int(v)).collect())
            .collect();
        let g = self.d.greatest();
        padded_lists(keys, 64)
            .into_iter()
            .map(|list| {
                let row = |k: &Vec<Arg>, i: usize| k.get(i).cloned().unwrap_or(Arg::Int(0));
                let mut b = self.b();
                b.s(&format!(
                    "UPDATE {} SET nlink = nlink + CASE ino",
                    self.t("node")
                ));
                for k in &list {
                    b.s(" WHEN ").p(row(k, 0)).s(" THEN ").p(row(k, 1));
                }
                b.s(" END");
                for t in ["mtime", "ctime"] {
                    b.s(&format!(", {t}_nsec = CASE ino"));
                    for k in &list {
                        b.s(" WHEN ").p(row(k, 0));
                        b.s(&format!(" THEN CASE WHEN {t}_sec > ")).p(row(k, 2));
                        b.s(&format!(" OR ({t}_sec = ")).p(row(k, 2));
                        b.s(&format!(" AND {t}_nsec >= ")).p(row(k, 3));
                        b.s(&format!(") THEN {t}_nsec ELSE "))
                            .p(row(k, 3))
                            .s(" END");
                    }
                    b.s(" END");
                    b.s(&format!(", {t}_sec = CASE ino"));
                    for k in &list {
                        b.s(" WHEN ").p(row(k, 0));
                        b.s(&format!(" THEN {g}({t}_sec, ")).p(row(k, 2)).s(")");
                    }
                    b.s(" END");
                }
                b.s(" WHERE ino IN (");
                for (i, k) in list.iter().enumerate() {
                    if i > 0 {
                        b.s(", ");
                    }
                    b.p(row(k, 0));
                }
                b.s(") AND CASE ino");
                for k in &list {
                    b.s(" WHEN ").p(row(k, 0)).s(" THEN (").p(row(k, 4));
                    b.s(" = 0 OR parent = ").p(row(k, 4)).s(")");
                }
                b.s(" END");
                b.done()
            })
            .collect()
    }

    /// `value += delta` for each `(name, delta)` (distinct names).
    pub(crate) fn counter_deltas(&self, rows: Vec<(String, i64)>) -> Vec<Stmt> {
        if rows.is_empty() {
            return Vec::new();
        }
        let mut b = self.b();
        if self.d == Dialect::Postgres {
            let (names, deltas): (Vec<String>, Vec<i64>) = rows.into_iter().unzip();
            b.s(&format!(
                "UPDATE {} AS c SET value = c.value + d.dv FROM UNNEST(",
                self.t("counter")
            ));
            b.arr(Arg::Texts(names.clone()), Ty::Text).s(", ");
            b.arr(Arg::Ints(deltas), Ty::Int);
            b.s(") AS d(name, dv), ");
            self.pg_lock_in_order(&mut b, "counter", "name", Arg::Texts(names), Ty::Text);
            b.s(" WHERE c.name = d.name AND l.name = c.name");
            return vec![b.done()];
        }
        b.s(&format!(
            "UPDATE {} SET value = value + CASE name",
            self.t("counter")
        ));
        for (n, d) in &rows {
            b.s(" WHEN ")
                .p(Arg::Text(n.clone()))
                .s(" THEN ")
                .p(Arg::Int(*d));
        }
        b.s(" END WHERE name IN (");
        for (i, (n, _)) in rows.iter().enumerate() {
            if i > 0 {
                b.s(", ");
            }
            b.p(Arg::Text(n.clone()));
        }
        b.s(")");
        vec![b.done()]
    }

    // ------------------------------------------------------------------------------------
    // Directory statistics

    /// Statistics rows `(ino, inodes, length, space)` of directories `dirs` (absent: no
    /// row), in as few statements as the bind limits allow: one on PostgreSQL (`ino =
    /// ANY($1)`), `ino IN (...)` lists of up to 4,096 keys (padded to a power of two)
    /// elsewhere.
    pub(crate) fn dir_stats(&self, dirs: Vec<i64>) -> Vec<Stmt> {
        let keys: Vec<Vec<Arg>> = dirs.into_iter().map(|i| vec![Arg::Int(i)]).collect();
        let lists = if self.d == Dialect::Postgres {
            vec![keys]
        } else {
            padded_lists_upto(keys, MAX_READ_KEYS)
        };
        lists
            .into_iter()
            .filter(|k| !k.is_empty())
            .map(|keys| {
                let mut b = self.b();
                b.s(&format!(
                    "SELECT ino, inodes, length, space FROM {} WHERE ",
                    self.t("dirstat")
                ));
                self.where_keys(&mut b, "", &[("ino", Ty::Int)], keys);
                b.done()
            })
            .collect()
    }

    /// Adds `(inodes, length, space)` to the statistics of each directory of `(ino,
    /// inodes, length, space)` rows (distinct inodes, in increasing order), creating the rows
    /// that do not exist: one multi-row upsert ([`Sql::insert_adding`]) whose additions the
    /// database makes, so concurrent batches adding to one directory lose nothing.
    pub(crate) fn dir_stat_deltas(&self, rows: Vec<[i64; 4]>) -> Vec<Stmt> {
        let rows = rows
            .into_iter()
            .map(|r| r.iter().map(|&v| Arg::Int(v)).collect())
            .collect();
        self.insert_adding("dirstat", &DIRSTAT_COLS, 1, rows)
    }

    // ------------------------------------------------------------------------------------
    // Format record, erase, migrations

    /// The format record `(value)`.
    pub(crate) fn setting_get(&self, lock: bool) -> Stmt {
        let mut b = self.b();
        b.s(&format!(
            "SELECT value FROM {} WHERE name = ",
            self.t("setting")
        ));
        b.p(Arg::Text(SETTING_NAME.into()));
        b.s(self.lock_suffix(lock));
        b.done()
    }

    /// Stores the format record.
    pub(crate) fn setting_put(&self, json: String) -> Stmt {
        let mut b = self.b();
        b.s(&format!(
            "INSERT INTO {} (name, value) VALUES (",
            self.t("setting")
        ));
        b.p(Arg::Text(SETTING_NAME.into()))
            .s(", ")
            .p(Arg::Text(json))
            .s(")");
        b.done()
    }

    /// Deletes every row of `table`.
    pub(crate) fn erase(&self, table: &str) -> Stmt {
        let mut b = self.b();
        b.s(&format!("DELETE FROM {}", self.t(table)));
        b.done()
    }

    /// Drops `table` if it exists.
    pub(crate) fn drop_table(&self, table: &str) -> Stmt {
        let mut b = self.b();
        b.s(&format!("DROP TABLE IF EXISTS {}", self.t(table)));
        b.done()
    }

    /// Serializes schema migrations of this prefix between clients (PostgreSQL: an
    /// advisory lock until commit; MySQL: a named lock until `migration_unlock`; SQLite:
    /// `BEGIN IMMEDIATE` already did).
    pub(crate) fn migration_lock(&self) -> Option<Stmt> {
        let name = format!("meta-sql:{}", self.prefix);
        let mut b = self.b();
        match self.d {
            Dialect::Sqlite => return None,
            Dialect::Postgres => {
                b.s("SELECT pg_advisory_xact_lock(");
                b.p(Arg::Int(fnv1a(name.as_bytes())));
                b.s(")");
            }
            Dialect::MySql => {
                b.s("SELECT GET_LOCK(");
                b.p(Arg::Text(name));
                b.s(", 60)");
            }
        }
        Some(b.done())
    }

    /// Releases the MySQL named lock of [`Sql::migration_lock`].
    pub(crate) fn migration_unlock(&self) -> Option<Stmt> {
        if self.d != Dialect::MySql {
            return None;
        }
        let mut b = self.b();
        b.s("SELECT RELEASE_LOCK(");
        b.p(Arg::Text(format!("meta-sql:{}", self.prefix)));
        b.s(")");
        Some(b.done())
    }

    /// Creates the version table.
    pub(crate) fn version_table(&self) -> Stmt {
        let mut b = self.b();
        b.s(&format!(
            "CREATE TABLE IF NOT EXISTS {} (version BIGINT NOT NULL PRIMARY KEY, \
             description VARCHAR(255) NOT NULL, applied_at BIGINT NOT NULL)",
            self.t("schema_version")
        ));
        b.done()
    }

    /// The highest applied migration `(version)`.
    pub(crate) fn version_get(&self) -> Stmt {
        let mut b = self.b();
        b.s(&format!(
            "SELECT MAX(version) FROM {}",
            self.t("schema_version")
        ));
        b.done()
    }

    /// Records an applied migration.
    pub(crate) fn version_put(&self, version: i64, description: &str, at: i64) -> Stmt {
        let mut b = self.b();
        b.s(&format!(
            "INSERT INTO {} (version, description, applied_at) VALUES (",
            self.t("schema_version")
        ));
        b.p(Arg::Int(version))
            .s(", ")
            .p(Arg::Text(description.into()))
            .s(", ")
            .p(Arg::Int(at))
            .s(")");
        b.done()
    }

    /// The statements of a migration script: comment lines dropped, `{prefix}` replaced by
    /// the validated prefix, split at `;` line ends.
    pub(crate) fn script(&self, text: &str) -> Vec<Stmt> {
        let code: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim_start().starts_with("--"))
            .collect();
        code.join("\n")
            .split(';')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .map(|s| Stmt {
                sql: Arc::from(s.replace("{prefix}", &self.prefix)),
                args: Vec::new(),
            })
            .collect()
    }
}

/// Columns of the `dirstat` table (key first).
pub(crate) const DIRSTAT_COLS: [(&str, Ty); 4] = [
    ("ino", Ty::Int),
    ("inodes", Ty::Int),
    ("length", Ty::Int),
    ("space", Ty::Int),
];

/// Name of the format record's row in `setting`.
pub(crate) const SETTING_NAME: &str = "format";
/// Name of the counter row whose lock serializes directory moves.
pub(crate) const RENAME_LOCK: &str = "renameLock";
/// Name of the counter row holding the number of directory quotas.
pub(crate) const QUOTA_COUNT: &str = "quotaCount";
/// Name of the counter row holding the generation of the volume's quota set: it grows by one
/// in every batch that creates or removes a quota or moves a directory between two sets of
/// quotas, and its row lock orders those batches against the ones that charge directory
/// statistics (see `txn::quota`).
pub(crate) const QUOTA_GEN: &str = "quotaGen";

/// Adds `offset` to every `$n` placeholder of a PostgreSQL text (our texts hold no other
/// `$`: no string literals, and the prefix is `[a-z0-9_]`).
fn renumber(sql: &str, offset: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '$' {
            out.push(c);
            continue;
        }
        let mut n = 0usize;
        let mut digits = false;
        while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
            n = n * 10 + d as usize;
            digits = true;
            chars.next();
        }
        if digits {
            let _ = write!(out, "${}", n + offset);
        } else {
            out.push('$');
        }
    }
    out
}

/// 64-bit FNV-1a, as a stable advisory-lock key.
fn fnv1a(b: &[u8]) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in b {
        h ^= u64::from(x);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(validate_prefix("Vol_1").unwrap(), "vol_1");
        assert_eq!(validate_prefix("").unwrap(), "");
        for bad in ["a-b", "a b", "x;DROP", "é", &"a".repeat(33)] {
            assert_eq!(
                validate_prefix(bad).unwrap_err().kind(),
                ErrorKind::ConfigInvalid,
                "{bad}"
            );
        }
    }

    #[test]
    fn pieces_and_padding() {
        assert_eq!(pow2_pieces(100, 256), vec![64, 32, 4]);
        assert_eq!(pow2_pieces(600, 256), vec![256, 256, 64, 16, 8]);
        assert_eq!(pow2_pieces(5, 3), vec![2, 2, 1]);
        let keys: Vec<Vec<Arg>> = (0..5).map(|i| vec![Arg::Int(i)]).collect();
        let lists = padded_lists(keys, 256);
        assert_eq!(lists.len(), 1);
        assert_eq!(lists[0].len(), 8);
    }

    #[test]
    fn merge_renumbers() {
        assert_eq!(
            renumber("a = $1 AND b = ANY($12::int8[])", 3),
            "a = $4 AND b = ANY($15::int8[])"
        );
        let p = Sql::new(Dialect::Postgres, "x_".into());
        let m = p.merge_pg(
            vec![
                p.delete_keys(
                    "edge",
                    &[("parent", Ty::Int), ("name", Ty::Bytes)],
                    vec![vec![Arg::Int(1), Arg::Bytes(vec![1])]],
                )
                .remove(0),
                p.counter_deltas(vec![("a".into(), 1)]).remove(0),
            ],
            &[None, Some(1)],
        );
        assert_eq!(m.args.len(), 6);
        assert!(
            m.sql.contains("$3::text[]")
                && m.sql.contains("$4::int8[]")
                && m.sql
                    .contains("name = ANY($5::text[]) ORDER BY name FOR UPDATE"),
            "{}",
            m.sql
        );
        assert!(
            m.sql
                .ends_with("(SELECT count(*) FROM w1) / ((SELECT count(*) FROM w1) >= $6)::int"),
            "{}",
            m.sql
        );
    }

    #[test]
    fn dir_stat_upserts_add_in_the_database() {
        let rows = vec![[5, 1, 10, 4096], [9, -1, -3, -4096]];
        let p = Sql::new(Dialect::Postgres, "v_".into()).dir_stat_deltas(rows.clone());
        assert_eq!(p.len(), 1);
        assert_eq!(
            &*p[0].sql,
            "INSERT INTO v_dirstat AS t (ino, inodes, length, space) SELECT * FROM \
             UNNEST($1::int8[], $2::int8[], $3::int8[], $4::int8[]) AS d (ino, inodes, length, \
             space) ORDER BY ino ON CONFLICT (ino) DO UPDATE SET inodes = t.inodes + \
             excluded.inodes, length = t.length + excluded.length, space = t.space + \
             excluded.space"
        );
        assert_eq!(p[0].args.len(), 4, "one array per column");
        let m = Sql::new(Dialect::MySql, "v_".into()).dir_stat_deltas(rows.clone());
        assert_eq!(m.len(), 1);
        assert_eq!(
            &*m[0].sql,
            "INSERT INTO v_dirstat (ino, inodes, length, space) VALUES (?, ?, ?, ?), \
             (?, ?, ?, ?) ON DUPLICATE KEY UPDATE inodes = inodes + VALUES(inodes), \
             length = length + VALUES(length), space = space + VALUES(space)"
        );
        let l = Sql::new(Dialect::Sqlite, String::new()).dir_stat_deltas(rows);
        assert_eq!(
            &*l[0].sql,
            "INSERT INTO dirstat (ino, inodes, length, space) VALUES (?, ?, ?, ?), \
             (?, ?, ?, ?) ON CONFLICT (ino) DO UPDATE SET inodes = inodes + excluded.inodes, \
             length = length + excluded.length, space = space + excluded.space"
        );
        assert!(l[0].args.len() == 8);
        // Reads: one statement for the 1,024 directories meta-core asks for at a time.
        for d in [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite] {
            let sql = Sql::new(d, String::new());
            let one = sql.dir_stats((1..=1024).collect());
            assert_eq!(one.len(), 1, "{d:?}");
            assert!(
                one[0]
                    .sql
                    .starts_with("SELECT ino, inodes, length, space FROM dirstat")
            );
            let n = if d == Dialect::Postgres { 1 } else { 2 };
            assert_eq!(sql.dir_stats((1..=5000).collect()).len(), n, "{d:?}");
        }
    }

    #[test]
    fn texts_are_stable_and_parameterized() {
        let s = Sql::new(Dialect::MySql, "v_".into());
        let a = s.edges(
            vec![(1, b"a".to_vec()), (2, b"b".to_vec()), (3, b"c".to_vec())],
            true,
        );
        let b = s.edges(vec![(7, b"x".to_vec()); 4], true);
        assert_eq!(a[0].sql, b[0].sql, "3 and 4 keys share one text");
        assert!(a[0].sql.contains("v_edge") && a[0].sql.ends_with("FOR UPDATE"));
        assert!(!a[0].sql.contains('\''));
        let p = Sql::new(Dialect::Postgres, String::new());
        let x = p.edges(vec![(1, b"a".to_vec())], false);
        let y = p.edges(vec![(1, b"a".to_vec()); 100], false);
        assert_eq!(x[0].sql, y[0].sql);
        let ins = s.insert(
            "edge",
            &[("parent", Ty::Int), ("name", Ty::Bytes)],
            2,
            vec![vec![Arg::Int(1), Arg::Bytes(vec![1])]; 5],
            false,
        );
        assert_eq!(ins.len(), 2, "5 rows = 4 + 1");
        let d = s.dir_deltas(vec![[1, 1, 5, 6, 0]]);
        let t = &d[0].sql;
        assert!(t.find("mtime_nsec =").unwrap() < t.find("mtime_sec =").unwrap());
    }
}
