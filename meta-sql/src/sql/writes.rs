//! Statements that write: the commutative updates of hot rows (directories, counters),
//! directory statistics, the format record, erase and migrations.

use std::sync::Arc;

use crate::exec::{Arg, Stmt, Ty};

use super::{
    B, Dialect, MAX_READ_KEYS, NODE_STAT_COLS, SETTING_NAME, Sql, columns, fnv1a, int_at,
    padded_lists, padded_lists_upto, sat_add_arg,
};

impl Sql {
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

    /// `nlink += delta`, mtime/ctime raised to `(sec, nsec)` and the directory statistics
    /// `(inodes, length, space)` added (a NULL stored counts as 0) for each `(ino, delta,
    /// sec, nsec, parent, inodes, length, space)` row (distinct inodes), without reading the
    /// rows first: the row lock that serializes the batches charging one directory is taken
    /// once for both. A row that only charges statistics has delta 0 and time (i64::MIN, 0),
    /// which raises nothing. A row whose `parent` is not 0 only matches while the directory's
    /// parent is still that one (a batch that charged the quotas above it: see
    /// `txn::quota`); a directory moved meanwhile is a shortfall in the matched rows, like one
    /// removed. MySQL evaluates a single-table
    /// UPDATE's assignments left to right, so each `*_nsec` is assigned before its `*_sec`
    /// (PostgreSQL and SQLite read the old values everywhere).
    pub(crate) fn dir_deltas(&self, rows: Vec<[i64; 8]>) -> Vec<Stmt> {
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
            let st = |c: &str, d: &str| {
                format!(
                    "{c} = {}",
                    self.d.sat_add(&format!("COALESCE(n.{c}, 0)"), d)
                )
            };
            b.s(&format!(
                "UPDATE {} AS n SET nlink = n.nlink + d.dn, {}, {}, {}, {}, {} FROM UNNEST(",
                self.t("node"),
                raise("mtime"),
                raise("ctime"),
                st("st_inodes", "d.si"),
                st("st_length", "d.sl"),
                st("st_space", "d.ss")
            ));
            let cols = columns(rows, &[Ty::Int; 8]);
            let inos = cols[0].clone();
            for (i, a) in cols.into_iter().enumerate() {
                if i > 0 {
                    b.s(", ");
                }
                b.arr(a, Ty::Int);
            }
            b.s(") AS d(ino, dn, s, ns, p, si, sl, ss), ");
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
                for (i, c) in NODE_STAT_COLS.iter().enumerate() {
                    b.s(&format!(", {c} = CASE ino"));
                    for k in &list {
                        b.s(" WHEN ").p(row(k, 0)).s(" THEN ");
                        let delta = int_at(k, 5 + i);
                        sat_add_arg(&mut b, &format!("COALESCE({c}, 0)"), delta);
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

    /// `value = value + delta` on the counter row `name`, saturating ([`Dialect::sat_add`]): a
    /// plain UPDATE (on PostgreSQL it takes `FOR NO KEY UPDATE`, which a `FOR KEY SHARE`
    /// reader does not block; see `txn::quota`).
    pub(crate) fn counter_add(&self, name: &str, delta: i64) -> Stmt {
        let mut b = self.b();
        b.s(&format!("UPDATE {} SET value = ", self.t("counter")));
        sat_add_arg(&mut b, "value", delta);
        b.s(" WHERE name = ");
        b.p(Arg::Text(name.into()));
        b.done()
    }

    /// `value += delta` for each `(name, delta)` (distinct names), saturating.
    pub(crate) fn counter_deltas(&self, rows: Vec<(String, i64)>) -> Vec<Stmt> {
        if rows.is_empty() {
            return Vec::new();
        }
        let mut b = self.b();
        if self.d == Dialect::Postgres {
            let (names, deltas): (Vec<String>, Vec<i64>) = rows.into_iter().unzip();
            b.s(&format!(
                "UPDATE {} AS c SET value = {} FROM UNNEST(",
                self.t("counter"),
                self.d.sat_add("c.value", "d.dv")
            ));
            b.arr(Arg::Texts(names.clone()), Ty::Text).s(", ");
            b.arr(Arg::Ints(deltas), Ty::Int);
            b.s(") AS d(name, dv), ");
            self.pg_lock_in_order(&mut b, "counter", "name", Arg::Texts(names), Ty::Text);
            b.s(" WHERE c.name = d.name AND l.name = c.name");
            return vec![b.done()];
        }
        b.s(&format!(
            "UPDATE {} SET value = CASE name",
            self.t("counter")
        ));
        for (n, d) in &rows {
            b.s(" WHEN ").p(Arg::Text(n.clone())).s(" THEN ");
            sat_add_arg(&mut b, "value", *d);
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

    /// Statistics `(ino, inodes, length, space)` of directories `dirs` from their node rows
    /// (schema v6; a directory never charged reads zeros, one that does not exist has no
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
                    "SELECT ino, COALESCE(st_inodes, 0), COALESCE(st_length, 0), \
                     COALESCE(st_space, 0) FROM {} WHERE ",
                    self.t("node")
                ));
                self.where_keys(&mut b, "", &[("ino", Ty::Int)], keys);
                b.done()
            })
            .collect()
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

#[cfg(test)]
mod tests {
    use meta_core::{Backend, Counter};

    use crate::exec::Arg;

    /// The counters' addition saturates at the i64 bounds and keeps a NULL NULL (which reads
    /// back as `Corrupted`, as before), one row at a time and several at once, on every
    /// database at hand.
    #[tokio::test]
    async fn counter_additions_saturate() -> anyhow::Result<()> {
        let tmp = tempfile::tempdir()?;
        let (max, min) = (i64::MAX, i64::MIN);
        let cases = [
            (Some(max - 10), 100, Some(max)),
            (Some(min + 10), -100, Some(min)),
            (Some(5), -3, Some(2)),
            (Some(max), min, Some(-1)),
            (Some(min), max, Some(-1)),
            (Some(max), max, Some(max)),
            (Some(min), min, Some(min)),
            (None, 7, None),
        ];
        for url in crate::sql::test_urls(tmp.path(), "cs") {
            let b = crate::open(meta_core::parse_url(&url)?.0)?;
            b.format(&meta_core::Setting::new("sat"), false).await?;
            let name = Counter::UsedSpace.name();
            for (several, (start, delta, want)) in [false, true]
                .into_iter()
                .flat_map(|s| cases.map(|c| (s, c)))
            {
                let mut set = b.sql.b();
                set.s(&format!("UPDATE {} SET value = ", b.sql.t("counter")));
                match start {
                    Some(v) => set.p(Arg::Int(v)),
                    None => set.s("NULL"),
                };
                set.s(" WHERE name = ").p(Arg::Text(name.into()));
                b.run_stmt(set.done()).await?;
                let stmts = if several {
                    b.sql.counter_deltas(vec![
                        (name.to_string(), delta),
                        (Counter::TotalInodes.name().to_string(), 1),
                    ])
                } else {
                    vec![b.sql.counter_add(name, delta)]
                };
                for st in stmts {
                    b.run_stmt(st).await?;
                }
                let got = b.get_counter(Counter::UsedSpace).await;
                let what = format!(
                    "{}: {start:?} + {delta} (several: {several})",
                    b.sql.d.scheme()
                );
                match want {
                    Some(w) => anyhow::ensure!(got.as_ref().ok() == Some(&w), "{what}: {got:?}"),
                    None => anyhow::ensure!(got.is_err(), "{what}: NULL became {got:?}"),
                }
            }
        }
        Ok(())
    }
}
