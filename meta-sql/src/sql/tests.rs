//! Unit tests of the statement texts.

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
fn dir_stats_live_in_node_rows_and_add_in_the_database() {
    // The directories' commutative update carries the statistics' deltas.
    let rows = vec![
        [5, 1, 10, 20, 0, 1, 10, 4096],
        [9, 0, i64::MIN, 0, 2, -1, -3, -4096],
    ];
    let p = Sql::new(Dialect::Postgres, "v_".into()).dir_deltas(rows.clone());
    assert_eq!(p.len(), 1);
    for c in ["st_inodes", "st_length", "st_space"] {
        assert!(
            p[0].sql.contains(&format!(
                "{c} = CASE WHEN COALESCE(n.{c}, 0) > 9223372036854775807 - GREATEST(d."
            )),
            "{}",
            p[0].sql
        );
    }
    assert!(p[0].sql.contains("AS d(ino, dn, s, ns, p, si, sl, ss)"));
    assert_eq!(p[0].args.len(), 9, "one array per column and the lock list");
    for d in [Dialect::MySql, Dialect::Sqlite] {
        let m = Sql::new(d, "v_".into()).dir_deltas(rows.clone());
        assert_eq!(m.len(), 1);
        for c in ["st_inodes", "st_length", "st_space"] {
            let v = format!("COALESCE({c}, 0)");
            assert!(
                m[0].sql.contains(&format!(
                    "{c} = CASE ino WHEN ? THEN CASE WHEN {v} > ? THEN ? WHEN {v} < ? THEN ? \
                     ELSE {v} END + ?"
                )),
                "{d:?}: {}",
                m[0].sql
            );
        }
        // Each statistics delta comes with the bounds its column is clamped to first.
        let ints: Vec<i64> = m[0]
            .args
            .iter()
            .filter_map(|a| match a {
                Arg::Int(v) => Some(*v),
                _ => None,
            })
            .collect();
        for w in [
            [i64::MAX - 10, i64::MAX - 10, i64::MIN, i64::MIN, 10],
            [i64::MAX, i64::MAX, i64::MIN + 4096, i64::MIN + 4096, -4096],
        ] {
            assert!(ints.windows(5).any(|x| x == w), "{d:?}: {w:?} in {ints:?}");
        }
    }
    // A rewritten node row replaces its attributes and adds to its statistics (saturating).
    let cols = [("ino", Ty::Int), ("mode", Ty::Int), ("st_inodes", Ty::Int)];
    let row = vec![vec![Arg::Int(5), Arg::Int(0o755), Arg::Int(1)]];
    let p =
        Sql::new(Dialect::Postgres, "v_".into()).upsert_adding("node", &cols, 1, row.clone(), 1);
    assert_eq!(
        &*p[0].sql,
        "INSERT INTO v_node AS t (ino, mode, st_inodes) SELECT * FROM UNNEST($1::int8[], \
         $2::int8[], $3::int8[]) AS d (ino, mode, st_inodes) ORDER BY ino ON CONFLICT (ino) \
         DO UPDATE SET mode = excluded.mode, st_inodes = CASE WHEN COALESCE(t.st_inodes, 0) > \
         9223372036854775807 - GREATEST(excluded.st_inodes, 0) THEN 9223372036854775807 - \
         GREATEST(excluded.st_inodes, 0) WHEN COALESCE(t.st_inodes, 0) < \
         (-9223372036854775807 - 1) - LEAST(excluded.st_inodes, 0) THEN (-9223372036854775807 \
         - 1) - LEAST(excluded.st_inodes, 0) ELSE COALESCE(t.st_inodes, 0) END + \
         excluded.st_inodes"
    );
    let m = Sql::new(Dialect::MySql, "v_".into()).upsert_adding("node", &cols, 1, row.clone(), 1);
    assert_eq!(
        &*m[0].sql,
        "INSERT INTO v_node (ino, mode, st_inodes) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE \
         mode = VALUES(mode), st_inodes = CASE WHEN COALESCE(st_inodes, 0) > \
         9223372036854775807 - GREATEST(VALUES(st_inodes), 0) THEN 9223372036854775807 - \
         GREATEST(VALUES(st_inodes), 0) WHEN COALESCE(st_inodes, 0) < (-9223372036854775807 - \
         1) - LEAST(VALUES(st_inodes), 0) THEN (-9223372036854775807 - 1) - \
         LEAST(VALUES(st_inodes), 0) ELSE COALESCE(st_inodes, 0) END + VALUES(st_inodes)"
    );
    let l = Sql::new(Dialect::Sqlite, String::new()).upsert_adding("node", &cols, 1, row, 1);
    assert_eq!(
        &*l[0].sql,
        "INSERT INTO node (ino, mode, st_inodes) VALUES (?, ?, ?) ON CONFLICT (ino) DO UPDATE \
         SET mode = excluded.mode, st_inodes = CASE WHEN COALESCE(st_inodes, 0) > \
         9223372036854775807 - MAX(excluded.st_inodes, 0) THEN 9223372036854775807 - \
         MAX(excluded.st_inodes, 0) WHEN COALESCE(st_inodes, 0) < (-9223372036854775807 - 1) \
         - MIN(excluded.st_inodes, 0) THEN (-9223372036854775807 - 1) - \
         MIN(excluded.st_inodes, 0) ELSE COALESCE(st_inodes, 0) END + excluded.st_inodes"
    );
    // Reads: one statement for the 1,024 directories meta-core asks for at a time.
    for d in [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite] {
        let sql = Sql::new(d, String::new());
        let one = sql.dir_stats((1..=1024).collect());
        assert_eq!(one.len(), 1, "{d:?}");
        assert!(one[0].sql.starts_with(
            "SELECT ino, COALESCE(st_inodes, 0), COALESCE(st_length, 0), COALESCE(st_space, 0) \
             FROM node WHERE"
        ));
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
    let d = s.dir_deltas(vec![[1, 1, 5, 6, 0, 0, 0, 0]]);
    let t = &d[0].sql;
    assert!(t.find("mtime_nsec =").unwrap() < t.find("mtime_sec =").unwrap());
}
