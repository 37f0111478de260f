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

use crate::exec::{Arg, Stmt, Ty};

mod reads;
mod writes;

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

    fn least(self) -> &'static str {
        match self {
            Dialect::Sqlite => "MIN",
            _ => "LEAST",
        }
    }

    /// The SQL of `base + delta` (two BIGINT expressions; `delta` is evaluated several times,
    /// so a column or a parameter-free expression) saturating at the i64 bounds, as the KV
    /// stores' counters and `DirStat`'s addition do: `base` is first clamped to
    /// `[i64::MIN - min(delta, 0), i64::MAX - max(delta, 0)]`, so no step leaves the BIGINT
    /// range, whatever order the database evaluates it in; a NULL `base` stays NULL. A plain
    /// `+` past the range fails the statement on PostgreSQL (22003) and MySQL (1690), and
    /// SQLite turns the sum into a REAL that no longer reads back as an integer (513 files of
    /// 2^54 bytes pass i64::MAX). (A CASE, not LEAST/GREATEST: PostgreSQL's skip NULLs.)
    pub(crate) fn sat_add(self, base: &str, delta: &str) -> String {
        let g = self.greatest();
        let l = self.least();
        let hi = format!("9223372036854775807 - {g}({delta}, 0)");
        let lo = format!("(-9223372036854775807 - 1) - {l}({delta}, 0)");
        format!(
            "CASE WHEN {base} > {hi} THEN {hi} WHEN {base} < {lo} THEN {lo} ELSE {base} END \
             + {delta}"
        )
    }
}

/// The integer at `row[i]` (0 when there is none or it is not an integer: a padded row's
/// missing column).
pub(crate) fn int_at(row: &[Arg], i: usize) -> i64 {
    match row.get(i) {
        Some(Arg::Int(v)) => *v,
        _ => 0,
    }
}

/// Appends `base + delta` for a known `delta`, saturating at the i64 bounds as
/// [`Dialect::sat_add`] does, with the clamp's bounds as parameters: `CASE WHEN base > hi
/// THEN hi WHEN base < lo THEN lo ELSE base END + delta` (five parameters; one statement
/// shape whatever the sign, so that the prepared statements stay few).
pub(crate) fn sat_add_arg(b: &mut B, base: &str, delta: i64) {
    let lo = i64::MIN - delta.min(0);
    let hi = i64::MAX - delta.max(0);
    b.s(&format!("CASE WHEN {base} > "))
        .p(Arg::Int(hi))
        .s(" THEN ")
        .p(Arg::Int(hi))
        .s(&format!(" WHEN {base} < "))
        .p(Arg::Int(lo))
        .s(" THEN ")
        .p(Arg::Int(lo))
        .s(&format!(" ELSE {base} END + "))
        .p(Arg::Int(delta));
}

/// Every table of a volume, in creation order (`schema_version` last).
pub(crate) const TABLES: [&str; 15] = [
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
    "quota",
    "schema_version",
];

/// Tables of older schema versions that a migration dropped: `dirstat` (v3 to v5, moved
/// into `node` by v6).
pub(crate) const OLD_TABLES: [&str; 1] = ["dirstat"];

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
    /// The row's other columns replace the stored ones, except its last `n`, which are added
    /// to them (a stored NULL counts as 0).
    ReplaceAdding(usize),
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

    /// [`Sql::insert`]'s upsert, except that the last `adding` columns of a row whose key
    /// exists are added to the stored ones (a NULL stored counts as 0) instead of replacing
    /// them: a node row rewritten whole while its statistics take a delta. Rows must have
    /// distinct keys.
    pub(crate) fn upsert_adding(
        &self,
        table: &str,
        cols: &[(&str, Ty)],
        nkey: usize,
        rows: Vec<Vec<Arg>>,
        adding: usize,
    ) -> Vec<Stmt> {
        self.insert_with(table, cols, nkey, rows, OnConflict::ReplaceAdding(adding))
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
        let adds = matches!(mode, OnConflict::ReplaceAdding(_));
        let alias = if pg && adds { " AS t" } else { "" };
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
            (OnConflict::ReplaceAdding(n), d) => {
                let cut = rest.len().saturating_sub(n);
                let set: Vec<String> = rest
                    .iter()
                    .enumerate()
                    .map(|(i, c)| {
                        let (stored, new) = match d {
                            Dialect::MySql => (c.to_string(), format!("VALUES({c})")),
                            Dialect::Postgres => (format!("t.{c}"), format!("excluded.{c}")),
                            Dialect::Sqlite => (c.to_string(), format!("excluded.{c}")),
                        };
                        if i < cut {
                            format!("{c} = {new}")
                        } else {
                            format!(
                                "{c} = {}",
                                d.sat_add(&format!("COALESCE({stored}, 0)"), &new)
                            )
                        }
                    })
                    .collect();
                if d == Dialect::MySql {
                    format!(" ON DUPLICATE KEY UPDATE {}", set.join(", "))
                } else {
                    format!(" ON CONFLICT ({keys}) DO UPDATE SET {}", set.join(", "))
                }
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
            if adds {
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
}

/// A directory's statistics (meta_core::stats: inodes charged to it, the sum of their
/// lengths and of their space, bytes), kept in its own `node` row since schema v6; NULL in
/// a row that was never charged (every non-directory), read as 0.
pub(crate) const NODE_STAT_COLS: [&str; 3] = ["st_inodes", "st_length", "st_space"];

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

/// For tests that run statements on every database at hand: a SQLite file in `dir`, and
/// PostgreSQL and MySQL when `META_TEST_POSTGRES_URL` / `META_TEST_MYSQL_URL` are set (tables
/// under a fresh prefix starting with `tag`).
#[cfg(test)]
pub(crate) fn test_urls(dir: &std::path::Path, tag: &str) -> Vec<String> {
    let prefix = format!("{tag}{:08x}_", rand::random::<u32>());
    let mut out = vec![format!("sqlite://{}", dir.join("d.db").display())];
    for var in ["META_TEST_POSTGRES_URL", "META_TEST_MYSQL_URL"] {
        if let Some(u) = std::env::var(var).ok().filter(|u| !u.is_empty()) {
            let sep = if u.contains('?') { '&' } else { '?' };
            out.push(format!("{u}{sep}table_prefix={prefix}"));
        }
    }
    out
}

#[cfg(test)]
mod tests;
