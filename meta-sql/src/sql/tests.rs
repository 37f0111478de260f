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
