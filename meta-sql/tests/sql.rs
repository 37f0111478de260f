//! What is specific to the SQL backend: how many statements (round trips) a batch costs,
//! names stored as exact bytes, table prefixes, the schema version check, URL options and
//! errors. SQLite always; PostgreSQL/MySQL when their server URLs are set.

mod common;

use anyhow::{Context, Result, bail, ensure};
use common::{SqlFactory, SqlVolume, cleanup, counter_is, fresh, mknod};
use meta_core::{
    Backend, Caller, ErrorKind, FileType, IdKind, Ino, Meta, MetaOptions, Op, RenameFlags, Setting,
    Timespec, parse_url,
};
use meta_sql::{Dialect, RawParam, SqlBackend};

const ME: Caller = Caller::new(0, 0);

/// A batch of 64 creates costs a constant number of statements (each one round trip on
/// PostgreSQL/MySQL). MySQL/SQLite: BEGIN, one prefetch SELECT (entries + inodes), the
/// quota generation guard (`has_quotas` answered from what the client remembers), INSERT
/// node, INSERT edge, the directory's commutative UPDATE (with its statistics), the
/// counters' UPDATE, COMMIT (8). PostgreSQL: the prefetch and one autocommitted
/// statement with every write (2; the guard rides in it). So do 64 unlinks and 64 creates
/// spread over 64 directories.
async fn statements_per_batch(f: SqlFactory) -> Result<()> {
    let Some(v) = fresh(f, "")? else {
        return Ok(());
    };
    let b = v.backend()?;
    Meta::format(&*b, &Setting::new("count"), false).await?;
    b.load().await?;

    let ids = b.reserve_ids(IdKind::Inode, 64 + 64 + 64).await?;
    let mut next = ids.start;
    let mut id = || {
        next += 1;
        next - 1
    };
    let s0 = b.stats();
    let ops: Vec<Op> = (0..64)
        .map(|i| mknod(Ino::ROOT, format!("f{i}"), id(), FileType::Regular))
        .collect();
    let res = b.apply(&ops).await?;
    ensure!(res.iter().all(|r| r.is_ok()), "creates failed: {res:?}");
    let d = b.stats().since(&s0);
    eprintln!("{}: 64 creates: {d:?}", f.dialect.scheme());
    ensure!(d.commits == 1 && d.retries == 0, "64 creates: {d:?}");
    ensure!(
        d.statements <= 9,
        "64 creates took {} statements",
        d.statements
    );
    if f.dialect == Dialect::Postgres {
        // Creates need no row lock: one prefetch SELECT and one autocommitted statement
        // holding every write (no BEGIN/COMMIT).
        ensure!(d.statements == 2, "64 creates on PostgreSQL: {d:?}");
    }
    ensure!(d.misses == 0, "64 creates missed the prefetch: {d:?}");

    // 64 directories, then one create in each: the directory updates stay one statement.
    let dirs: Vec<Op> = (0..64)
        .map(|i| mknod(Ino::ROOT, format!("d{i}"), id(), FileType::Directory))
        .collect();
    let dir_inos: Vec<Ino> = dirs
        .iter()
        .map(|o| match o {
            Op::Mknod { ino, .. } => *ino,
            _ => Ino::ZERO,
        })
        .collect();
    b.apply(&dirs).await?;
    let s1 = b.stats();
    let ops: Vec<Op> = dir_inos
        .iter()
        .map(|&d| mknod(d, "x".into(), id(), FileType::Regular))
        .collect();
    let res = b.apply(&ops).await?;
    ensure!(res.iter().all(|r| r.is_ok()), "creates failed: {res:?}");
    let d = b.stats().since(&s1);
    eprintln!("{}: 64 creates in 64 dirs: {d:?}", f.dialect.scheme());
    ensure!(d.statements <= 9, "64 creates in 64 dirs: {d:?}");

    // 64 unlinks: BEGIN, entries FOR UPDATE, their inodes FOR UPDATE, the parent, whether
    // a session holds them open (openfile), the quota generation guard, DELETE xattrs,
    // DELETE entries, DELETE inodes, the directory's UPDATE (with its statistics), the
    // counters' UPDATE, COMMIT (MySQL 12; SQLite 11, its parent read shares the prefetch;
    // PostgreSQL 7, one write statement holding the guard).
    let s2 = b.stats();
    let ops: Vec<Op> = (0..64)
        .map(|i| Op::Unlink {
            parent: Ino::ROOT,
            name: format!("f{i}").into_bytes(),
            caller: ME,
            time: Timespec::now(),
        })
        .collect();
    let res = b.apply(&ops).await?;
    ensure!(res.iter().all(|r| r.is_ok()), "unlinks failed: {res:?}");
    let d = b.stats().since(&s2);
    eprintln!("{}: 64 unlinks: {d:?}", f.dialect.scheme());
    ensure!(d.statements <= 12 && d.misses == 0, "64 unlinks: {d:?}");
    if f.dialect == Dialect::Postgres {
        ensure!(d.statements <= 7, "64 unlinks on PostgreSQL: {d:?}");
    }
    let rep = meta_core::fsck::fsck(&*b).await?;
    ensure!(rep.is_clean(), "fsck: {:?}", rep.problems);
    b.close().await;
    cleanup(&v).await
}

/// Names are bytes: any byte but `/` and NUL round-trips, is stored verbatim (the row is
/// found by its exact bytes) and sorts by bytes.
async fn names_are_bytes(f: SqlFactory) -> Result<()> {
    let Some(v) = fresh(f, "")? else {
        return Ok(());
    };
    let b = v.backend()?;
    Meta::format(&*b, &Setting::new("bytes"), false).await?;
    let m = Meta::open(b.clone(), MetaOptions::default(), None).await?;
    let odd: Vec<u8> = vec![0xff, 0xfe, b'a', 0x01, 0x80];
    let long = vec![0xc3; 255];
    m.create(ME, Ino::ROOT, &odd, 0o644).await?;
    m.create(ME, Ino::ROOT, &long, 0o644).await?;
    m.create(ME, Ino::ROOT, b"A", 0o644).await?;
    ensure!(
        m.lookup(Ino::ROOT, &odd).await.is_ok(),
        "lookup of a binary name"
    );
    let names: Vec<Vec<u8>> = b
        .read_dir(Ino::ROOT, None, 10, false)
        .await?
        .into_iter()
        .map(|e| e.name)
        .collect();
    ensure!(
        names == vec![b"A".to_vec(), long.clone(), odd.clone()],
        "byte order: {names:?}"
    );
    let n = v
        .raw(
            "UPDATE {p}edge SET type = type WHERE parent = ? AND name = ?",
            vec![RawParam::Int(1), RawParam::Bytes(odd)],
        )
        .await?;
    ensure!(n == 1, "the stored name is not the exact bytes ({n} rows)");
    m.close().await?;
    b.close().await;
    cleanup(&v).await
}

/// Two table prefixes in one database are two volumes.
async fn prefixes_isolate(f: SqlFactory) -> Result<()> {
    let (Some(v1), Some(v2)) = (fresh(f, "")?, fresh(f, "")?) else {
        return Ok(());
    };
    // For SQLite put both prefixes into one file.
    let (u1, u2) = if f.dialect == Dialect::Sqlite {
        (
            format!("{}?table_prefix=one_", v1.url),
            format!("{}?table_prefix=two_", v1.url),
        )
    } else {
        (v1.url.clone(), v2.url.clone())
    };
    let b1 = meta_sql::open(parse_url(&u1)?.0)?;
    let b2 = meta_sql::open(parse_url(&u2)?.0)?;
    Meta::format(&b1, &Setting::new("one"), false).await?;
    Meta::format(&b2, &Setting::new("two"), false).await?;
    ensure!(b1.load().await?.name == "one" && b2.load().await?.name == "two");
    let m1 = Meta::open(std::sync::Arc::new(b1), MetaOptions::default(), None).await?;
    m1.create(ME, Ino::ROOT, b"only-in-one", 0o644).await?;
    ensure!(
        matches!(
            b2.lookup(Ino::ROOT, b"only-in-one").await,
            Err(e) if e.kind() == ErrorKind::NotFound
        ),
        "a file leaked across prefixes"
    );
    m1.close().await?;
    if f.dialect == Dialect::Sqlite {
        b2.drop_tables().await?;
    }
    cleanup(&v1).await?;
    cleanup(&v2).await
}

/// Tables written by a newer schema version refuse to open.
async fn newer_schema_refused(f: SqlFactory) -> Result<()> {
    let Some(v) = fresh(f, "")? else {
        return Ok(());
    };
    let b = v.backend()?;
    Meta::format(&*b, &Setting::new("v"), false).await?;
    b.raw_execute(
        "INSERT INTO {p}schema_version (version, description, applied_at) VALUES (?, ?, ?)",
        vec![
            RawParam::Int(meta_sql::SCHEMA_VERSION + 1),
            RawParam::Text("from the future".into()),
            RawParam::Int(0),
        ],
    )
    .await?;
    let b2 = v.backend()?;
    match b2.load().await {
        Err(e) if e.kind() == ErrorKind::Unsupported => {}
        other => bail!("load over a newer schema: {other:?}"),
    }
    b.close().await;
    b2.close().await;
    cleanup(&v).await
}

/// Whether `dir`'s node row holds statistics (the UPDATE matches it; MySQL counts found
/// rows).
async fn has_stat_row(v: &SqlVolume, dir: Ino) -> Result<bool> {
    let n = v
        .raw(
            "UPDATE {p}node SET st_inodes = st_inodes WHERE ino = ? AND st_inodes IS NOT NULL",
            vec![RawParam::Int(dir.0 as i64)],
        )
        .await?;
    Ok(n > 0)
}

/// A directory removed by a batch has no statistics row afterwards, even when an earlier op
/// of the same batch charged it (unlink of its last file, then rmdir), or when the batch
/// created it; its parent's statistics and fsck stay exact.
async fn removed_dir_loses_its_stats(f: SqlFactory) -> Result<()> {
    let Some(v) = fresh(f, "")? else {
        return Ok(());
    };
    let b = v.backend()?;
    Meta::format(&*b, &Setting::new("rmstat"), false).await?;
    b.load().await?;
    let ids = b.reserve_ids(IdKind::Inode, 8).await?;
    let (d, file, d2, x) = (ids.start, ids.start + 1, ids.start + 2, ids.start + 3);
    let res = b
        .apply(&[
            mknod(Ino::ROOT, "d".into(), d, FileType::Directory),
            mknod(Ino(d), "f".into(), file, FileType::Regular),
        ])
        .await?;
    ensure!(res.iter().all(|r| r.is_ok()), "setup: {res:?}");
    ensure!(has_stat_row(&v, Ino(d)).await?, "d holds f: it has a row");
    let stats = b.dir_stats(&[Ino(d), Ino::ROOT, Ino(999_999)]).await?;
    ensure!(
        stats[0].inodes == 1 && stats[1].inodes == 1 && stats[2] == Default::default(),
        "positional statistics: {stats:?}"
    );
    let unlink = |parent: Ino, name: &str| Op::Unlink {
        parent,
        name: name.as_bytes().to_vec(),
        caller: ME,
        time: Timespec::now(),
    };
    let rmdir = |parent: Ino, name: &str| Op::Rmdir {
        parent,
        name: name.as_bytes().to_vec(),
        caller: ME,
        time: Timespec::now(),
    };
    let res = b
        .apply(&[unlink(Ino(d), "f"), rmdir(Ino::ROOT, "d")])
        .await?;
    ensure!(res.iter().all(|r| r.is_ok()), "unlink + rmdir: {res:?}");
    ensure!(!has_stat_row(&v, Ino(d)).await?, "rmdir left d's row");
    // Created, charged, emptied and removed in one batch: nothing to delete, nothing left.
    let res = b
        .apply(&[
            mknod(Ino::ROOT, "d2".into(), d2, FileType::Directory),
            mknod(Ino(d2), "x".into(), x, FileType::Regular),
            unlink(Ino(d2), "x"),
            rmdir(Ino::ROOT, "d2"),
        ])
        .await?;
    ensure!(res.iter().all(|r| r.is_ok()), "d2's life: {res:?}");
    ensure!(!has_stat_row(&v, Ino(d2)).await?, "d2 left a row");
    ensure!(
        b.dir_stats(&[Ino::ROOT]).await?[0] == Default::default(),
        "the root is empty again"
    );
    let rep = meta_core::fsck::fsck(&*b).await?;
    ensure!(rep.is_clean(), "fsck: {:?}", rep.problems);
    b.close().await;
    cleanup(&v).await
}

/// What a directory quota costs batches of 64 creates and 64 unlinks below it. Client `b`
/// formatted the volume, so it remembers it without quotas; another client then sets the
/// quota. `b`'s first batch charges optimistically from that memory, its generation guard
/// fails and it runs again on the locked path (PostgreSQL 2 + 8 statements, MySQL 4 + 12,
/// SQLite 4 + 11), which refreshes what `b` remembers: from then on a batch of creates costs
/// what it costs without a quota on PostgreSQL (2: the quota's conditional UPDATE and the
/// guard ride in the one write statement) and one statement more on MySQL/SQLite (9), and
/// so do unlinks (PostgreSQL 7, MySQL 13, SQLite 12), with no re-run, and creates in
/// directories the client just made (it remembers them from the batch that made them). The
/// usage is exact; once the quota is removed, one batch re-runs again and the next ones are
/// back to 2 statements on PostgreSQL.
async fn quota_statements_per_batch(f: SqlFactory) -> Result<()> {
    let Some(v) = fresh(f, "")? else {
        return Ok(());
    };
    let b = v.backend()?;
    Meta::format(&*b, &Setting::new("qcount"), false).await?;
    let other = v.backend()?;
    let m = Meta::open(other.clone(), MetaOptions::default(), None).await?;
    let (q, _) = m.mkdir(ME, Ino::ROOT, b"q", 0o755).await?;
    m.set_quota(q, 0, 1000).await?;
    let ids = b.reserve_ids(IdKind::Inode, 6 * 64 + 1).await?;
    let mut next = ids.start;
    let mut names = Vec::new();
    let mut batch = |dir: Ino, names: &mut Vec<String>| -> Vec<Op> {
        (0..64)
            .map(|_| {
                next += 1;
                names.push(format!("f{next}"));
                mknod(dir, format!("f{next}"), next - 1, FileType::Regular)
            })
            .collect()
    };
    let scheme = f.dialect.scheme();
    for round in 0..3 {
        let s0 = b.stats();
        let res = b.apply(&batch(q, &mut names)).await?;
        ensure!(res.iter().all(|r| r.is_ok()), "creates failed: {res:?}");
        let d = b.stats().since(&s0);
        eprintln!("{scheme}: 64 creates under a quota: {d:?}");
        ensure!(d.commits == 1 && d.misses == 0, "round {round}: {d:?}");
        let rerun = u64::from(round == 0);
        ensure!(
            d.retries == rerun && d.reruns == rerun,
            "round {round}: {d:?}"
        );
        let most = match f.dialect {
            Dialect::Postgres => 2 + 8 * rerun,
            Dialect::MySql => 9 + 7 * rerun,
            Dialect::Sqlite => 9 + 6 * rerun,
        };
        ensure!(d.statements <= most, "round {round}: {d:?}");
    }
    let s0 = b.stats();
    let ops: Vec<Op> = names
        .drain(..64)
        .map(|n| Op::Unlink {
            parent: q,
            name: n.into_bytes(),
            caller: ME,
            time: Timespec::now(),
        })
        .collect();
    let res = b.apply(&ops).await?;
    ensure!(res.iter().all(|r| r.is_ok()), "unlinks failed: {res:?}");
    let d = b.stats().since(&s0);
    eprintln!("{scheme}: 64 unlinks under a quota: {d:?}");
    let most = match f.dialect {
        Dialect::Postgres => 7,
        Dialect::MySql => 13,
        Dialect::Sqlite => 12,
    };
    ensure!(
        d.statements <= most && d.retries == 0 && d.misses == 0,
        "64 unlinks under a quota: {d:?}"
    );
    // 64 new directories under the quota, then a create in each: the directories' chains
    // are known from the batch that made them, so the creates read nothing more.
    let dirs = batch(q, &mut Vec::new());
    let dirs: Vec<Op> = dirs
        .into_iter()
        .map(|o| match o {
            Op::Mknod {
                parent, name, ino, ..
            } => mknod(
                parent,
                String::from_utf8_lossy(&name).into(),
                ino.0,
                FileType::Directory,
            ),
            o => o,
        })
        .collect();
    let dir_inos: Vec<Ino> = dirs
        .iter()
        .filter_map(|o| match o {
            Op::Mknod { ino, .. } => Some(*ino),
            _ => None,
        })
        .collect();
    let res = b.apply(&dirs).await?;
    ensure!(res.iter().all(|r| r.is_ok()), "mkdirs failed: {res:?}");
    let s0 = b.stats();
    let ops: Vec<Op> = dir_inos
        .iter()
        .zip(ids.start + 5 * 64..)
        .map(|(&d, i)| mknod(d, "x".into(), i, FileType::Regular))
        .collect();
    let res = b.apply(&ops).await?;
    ensure!(res.iter().all(|r| r.is_ok()), "creates failed: {res:?}");
    let d = b.stats().since(&s0);
    eprintln!("{scheme}: 64 creates in 64 new directories under a quota: {d:?}");
    let most = match f.dialect {
        Dialect::Postgres => 2,
        _ => 10,
    };
    ensure!(
        d.statements <= most && d.retries == 0 && d.misses == 0,
        "64 creates in 64 new directories under a quota: {d:?}"
    );
    let quota = m.quota(q).await?.context("q's quota")?;
    ensure!(quota.used.inodes == 128 + 128, "usage {quota:?}");
    let (quota, sum) = m.check_quota(q).await?;
    ensure!(quota.used == sum, "usage {quota:?}, statistics {sum:?}");
    m.remove_quota(q).await?;
    let s0 = b.stats();
    let res = b.apply(&batch(Ino::ROOT, &mut names)).await?;
    ensure!(res.iter().all(|r| r.is_ok()), "creates failed: {res:?}");
    let d = b.stats().since(&s0);
    ensure!(d.reruns == 1, "the quota's removal re-ran one batch: {d:?}");
    let s0 = b.stats();
    let last = mknod(Ino::ROOT, "last".into(), ids.end - 1, FileType::Regular);
    let res = b.apply(&[last]).await?;
    ensure!(res.iter().all(|r| r.is_ok()), "create failed: {res:?}");
    let d = b.stats().since(&s0);
    ensure!(d.reruns == 0, "no quota left: {d:?}");
    if f.dialect == Dialect::Postgres {
        ensure!(d.statements == 2, "no quota left: {d:?}");
    }
    let rep = meta_core::fsck::fsck(&*b).await?;
    ensure!(rep.is_clean(), "fsck: {:?}", rep.problems);
    m.close().await?;
    b.close().await;
    other.close().await;
    cleanup(&v).await
}

/// Whether the `quotaCount` counter row says `n`.
async fn quota_count_is(b: &SqlBackend, n: i64) -> Result<bool> {
    counter_is(b, "quotaCount", n).await
}

/// The `quotaCount` row follows the quotas exactly: set (new or again), removed, repaired
/// (removed and set in one batch), gone with its directory; and a batch whose op fails
/// leaves it alone. The `quotaGen` row grows with every change of the set (a quota created
/// or removed, an empty directory moved from one quota to another), not with a change of
/// limits, a repair or a move under the same quotas.
async fn quota_count_follows(f: SqlFactory) -> Result<()> {
    let Some(v) = fresh(f, "")? else {
        return Ok(());
    };
    let b = v.backend()?;
    Meta::format(&*b, &Setting::new("qc"), false).await?;
    let m = Meta::open(b.clone(), MetaOptions::default(), None).await?;
    ensure!(quota_count_is(&b, 0).await?, "a new volume has no quota");
    // Count generations from 0 (this client's memory of the format's is stale from here).
    b.raw_execute(
        "UPDATE {p}counter SET value = 0 WHERE name = ?",
        vec![RawParam::Text("quotaGen".into())],
    )
    .await?;
    let gen_is = |n: i64| counter_is(&b, "quotaGen", n);
    let (a, _) = m.mkdir(ME, Ino::ROOT, b"a", 0o755).await?;
    let (d, _) = m.mkdir(ME, Ino::ROOT, b"d", 0o755).await?;
    let (e, _) = m.mkdir(ME, Ino::ROOT, b"e", 0o755).await?;
    m.mkdir(ME, a, b"x", 0o755).await?;
    m.set_quota(a, 0, 10).await?;
    ensure!(gen_is(1).await?, "a quota created");
    m.set_quota(a, 0, 20).await?;
    ensure!(gen_is(1).await?, "only a limit changed");
    m.set_quota(d, 0, 10).await?;
    ensure!(quota_count_is(&b, 2).await?, "two quotas, one set twice");
    ensure!(gen_is(2).await?, "a second quota created");
    m.rename(ME, a, b"x", e, b"x", RenameFlags::NONE).await?;
    ensure!(gen_is(3).await?, "an empty directory moved out of a quota");
    m.rename(ME, e, b"x", Ino::ROOT, b"x", RenameFlags::NONE)
        .await?;
    ensure!(gen_is(3).await?, "a move under the same (no) quotas");
    m.repair_quota(a).await?;
    ensure!(quota_count_is(&b, 2).await?, "repaired");
    ensure!(gen_is(3).await?, "a repair keeps the set");
    m.remove_quota(a).await?;
    ensure!(quota_count_is(&b, 1).await?, "one removed");
    ensure!(gen_is(4).await?, "a quota removed");
    match m.remove_quota(a).await {
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        other => bail!("removing a removed quota: {other:?}"),
    }
    ensure!(gen_is(4).await?, "a failed removal");
    m.rmdir(ME, Ino::ROOT, b"d").await?;
    ensure!(
        quota_count_is(&b, 0).await?,
        "the quota went with its directory"
    );
    ensure!(gen_is(5).await?, "a quota removed with its directory");
    ensure!(b.quotas().await?.is_empty(), "no quota listed");
    let rep = meta_core::fsck::fsck(&*b).await?;
    ensure!(rep.is_clean(), "fsck: {:?}", rep.problems);
    m.close().await?;
    b.close().await;
    cleanup(&v).await
}

macro_rules! dialect_tests {
    ($($m:ident => $f:expr),* $(,)?) => {$(
        mod $m {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn statements_per_64_op_batch() -> Result<()> { statements_per_batch($f).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn binary_names() -> Result<()> { names_are_bytes($f).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn table_prefixes_isolate() -> Result<()> { prefixes_isolate($f).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn newer_schema_is_unsupported() -> Result<()> { newer_schema_refused($f).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn removed_dir_has_no_stats_row() -> Result<()> {
                removed_dir_loses_its_stats($f).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn statements_per_batch_under_a_quota() -> Result<()> {
                quota_statements_per_batch($f).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn quota_count_is_exact() -> Result<()> { quota_count_follows($f).await }
        }
    )*};
}

dialect_tests! {
    sqlite => SqlFactory::sqlite(),
    postgres => SqlFactory::postgres(),
    mysql => SqlFactory::mysql(),
}

fn open_err(url: &str) -> meta_core::Error {
    match parse_url(url).and_then(|(u, _)| meta_sql::open(u)) {
        Ok(b) => panic!("{url} opened: {b:?}"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn url_errors_name_the_problem_and_hide_passwords() {
    let e = open_err("sqlite://");
    assert_eq!(e.kind(), ErrorKind::ConfigInvalid, "{e}");
    let e = open_err("sqlite:///tmp/x.db?bogus=1");
    assert!(e.to_string().contains("bogus"), "{e}");
    let e = open_err("postgres://bob:s3cret@127.0.0.1:1/db?table_prefix=a-b");
    assert!(e.to_string().contains("table_prefix"), "{e}");
    assert!(!e.to_string().contains("s3cret"), "{e}");
    let e = open_err("postgres://bob:s3cret@127.0.0.1:1/db?sync=false");
    assert!(e.to_string().contains("sync"), "sync is SQLite's: {e}");
    let e = open_err("mysql://bob:s3cret@127.0.0.1:1/db?max_connections=0");
    assert!(e.to_string().contains("max_connections"), "{e}");
    let e = open_err("redis://127.0.0.1/");
    assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
    // A table prefix starts SQL identifiers: no leading digit.
    let e = open_err("postgres://bob@127.0.0.1:1/db?table_prefix=1vol");
    assert!(e.to_string().contains("table_prefix"), "{e}");
    // TLS parameters are the driver's, checked at open, per dialect.
    let e = open_err("postgres://bob@127.0.0.1:1/db?sslmode=sometimes");
    assert!(e.to_string().contains("sslmode"), "{e}");
    let e = open_err("mysql://bob@127.0.0.1:1/db?ssl-mode=sometimes");
    assert!(e.to_string().contains("ssl-mode"), "{e}");
    let e = open_err("mysql://bob@127.0.0.1:1/db?sslmode=require");
    assert!(
        e.to_string().contains("sslmode"),
        "PostgreSQL's name on MySQL: {e}"
    );
    for ok in [
        "postgres://bob@127.0.0.1:1/db?sslmode=verify-full&sslrootcert=/tmp/ca.pem",
        "mysql://bob@127.0.0.1:1/db?ssl-mode=VERIFY_IDENTITY&ssl-ca=/tmp/ca.pem",
    ] {
        let (u, _) = parse_url(ok).unwrap();
        assert!(meta_sql::open(u).is_ok(), "{ok}");
    }
}

/// A refused connection is reported at once with its cause, not after the pool's 30 s of
/// retries as "pool timed out".
#[tokio::test]
async fn refused_connection_fails_fast_with_its_cause() {
    for url in [
        "postgres://bob:s3cret@127.0.0.1:1/db",
        "mysql://bob:s3cret@127.0.0.1:1/db",
    ] {
        let b = meta_sql::open(parse_url(url).unwrap().0).unwrap();
        let started = std::time::Instant::now();
        let e = b.load().await.unwrap_err();
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{url}: took {:?}",
            started.elapsed()
        );
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{url}: {e}");
        let chain = format!("{e} {:?}", std::error::Error::source(&e));
        assert!(chain.to_lowercase().contains("refused"), "{url}: {chain}");
    }
}

/// `sslmode` reaches the driver: `disable` works against the test server (which has no TLS),
/// `require` is refused by it with an error rather than falling back to plain text.
#[tokio::test]
async fn postgres_sslmode_is_applied() -> Result<()> {
    let Ok(server) = std::env::var("META_TEST_POSTGRES_URL") else {
        eprintln!("SKIP postgres_sslmode_is_applied: META_TEST_POSTGRES_URL is not set");
        return Ok(());
    };
    let sep = if server.contains('?') { '&' } else { '?' };
    let plain = meta_sql::open(
        parse_url(&format!(
            "{server}{sep}sslmode=disable&table_prefix=sslprobe_"
        ))?
        .0,
    )?;
    plain.get_counter(meta_core::Counter::NextInode).await.ok();
    let e = plain.load().await.err();
    assert!(
        e.as_ref().is_none_or(|e| e.kind() == ErrorKind::NotFound),
        "sslmode=disable: {e:?}"
    );
    let tls =
        meta_sql::open(parse_url(&format!("{server}{sep}sslmode=require&acquire_timeout=5s"))?.0)?;
    let e = tls
        .load()
        .await
        .expect_err("sslmode=require on a server without TLS");
    assert!(
        matches!(e.kind(), ErrorKind::Unavailable | ErrorKind::ConfigInvalid),
        "{e}"
    );
    Ok(())
}

#[tokio::test]
async fn unreachable_server_is_unavailable_without_password() {
    for url in [
        "postgres://bob:s3cret@127.0.0.1:1/db?acquire_timeout=1s",
        "mysql://bob:s3cret@127.0.0.1:1/db?acquire_timeout=1s",
    ] {
        let b = meta_sql::open(parse_url(url).unwrap().0).unwrap();
        assert!(!format!("{b:?}").contains("s3cret"));
        let e = b.load().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unavailable, "{url}: {e}");
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }
}

#[test]
fn open_outside_a_runtime_is_an_error_not_a_panic() {
    let (u, _) = parse_url("sqlite:///tmp/meta-sql-no-runtime.db").unwrap();
    assert_eq!(
        meta_sql::open(u).unwrap_err().kind(),
        ErrorKind::ConfigInvalid
    );
}

#[tokio::test]
async fn sqlite_relative_path_and_reopen() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let prev = std::env::current_dir()?;
    let path = dir.path().join("rel.db");
    // An absolute path with three slashes, and the same file through a relative one.
    let b = meta_sql::open(parse_url(&format!("sqlite://{}", path.display()))?.0)?;
    Meta::format(&b, &Setting::new("rel"), false).await?;
    b.close().await;
    std::env::set_current_dir(dir.path())?;
    let r = async {
        let b = meta_sql::open(parse_url("sqlite://./rel.db")?.0)?;
        let name = b.load().await?.name;
        b.close().await;
        Ok::<_, anyhow::Error>(name)
    }
    .await;
    std::env::set_current_dir(prev)?;
    ensure!(r? == "rel");
    Ok(())
}

/// PostgreSQL runs create-only batches as one autocommitted statement whose row-count checks
/// sit inside it: a shortfall aborts the statement (nothing commits) and is a retryable
/// `Conflict`.
#[tokio::test]
async fn postgres_guarded_statement_commits_nothing_on_shortfall() -> Result<()> {
    let Some(v) = fresh(SqlFactory::postgres(), "")? else {
        return Ok(());
    };
    let b = v.backend()?;
    Meta::format(&*b, &Setting::new("guard"), false).await?;
    let e = b
        .raw_execute(
            "WITH w0 AS (INSERT INTO {p}counter (name, value) VALUES ('guard', 1) RETURNING 1), \
             w1 AS (UPDATE {p}node SET nlink = nlink + 1 WHERE ino = ? RETURNING 1) \
             SELECT (SELECT count(*) FROM w0), \
             (SELECT count(*) FROM w1) / ((SELECT count(*) FROM w1) >= ?)::int",
            vec![RawParam::Int(-5), RawParam::Int(1)],
        )
        .await
        .unwrap_err();
    ensure!(e.kind() == ErrorKind::Conflict, "{e}");
    let n = b
        .raw_execute(
            "UPDATE {p}counter SET value = value WHERE name = ?",
            vec![RawParam::Text("guard".into())],
        )
        .await?;
    ensure!(n == 0, "the aborted statement committed its insert");
    b.close().await;
    cleanup(&v).await
}

/// Rows out of the ranges a write can produce are `Corrupted` (EIO), as a KV record is: a
/// length past the maximum file length, a slice past its chunk.
#[tokio::test]
async fn out_of_range_rows_are_corrupted() -> Result<()> {
    let Some(v) = fresh(SqlFactory::sqlite(), "")? else {
        return Ok(());
    };
    let b = v.backend()?;
    Meta::format(&*b, &Setting::new("range"), false).await?;
    let m = Meta::open(b.clone(), MetaOptions::default(), None).await?;
    let (f, _) = m.create(ME, Ino::ROOT, b"f", 0o644).await?;
    let (g, _) = m.create(ME, Ino::ROOT, b"g", 0o644).await?;
    let s = meta_core::Slice {
        pos: 0,
        id: m.new_slice_id().await?,
        size: 10,
        off: 0,
        len: 10,
    };
    m.write(Caller::ROOT, g, 0, s).await?;
    m.close().await?;
    b.close().await;
    let n = v
        .raw(
            "UPDATE {p}node SET length = ? WHERE ino = ?",
            vec![RawParam::Int(1 << 60), RawParam::Int(f.0 as i64)],
        )
        .await?;
    ensure!(n == 1, "the length was planted");
    // One slice at 64 MiB: past the end of its chunk.
    let mut past = Vec::new();
    past.extend((64u32 << 20).to_be_bytes());
    past.extend(s.id.to_be_bytes());
    for n in [10u32, 0, 10] {
        past.extend(n.to_be_bytes());
    }
    let n = v
        .raw(
            "UPDATE {p}chunk SET slices = ? WHERE ino = ?",
            vec![RawParam::Bytes(past), RawParam::Int(g.0 as i64)],
        )
        .await?;
    ensure!(n == 1, "the slice was planted");
    let b = v.backend()?;
    ensure!(
        b.get_attr(f).await.err().map(|e| e.kind()) == Some(ErrorKind::Corrupted),
        "a length of 2^60 is damage"
    );
    ensure!(
        b.read_chunk(g, 0).await.err().map(|e| e.kind()) == Some(ErrorKind::Corrupted),
        "a slice past its chunk is damage"
    );
    b.close().await;
    cleanup(&v).await
}
