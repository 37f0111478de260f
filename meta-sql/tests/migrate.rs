//! Tables written by earlier schema versions (v2 to v5) are migrated on first use: each test
//! takes a fresh volume's tables back to an old version by hand, then opens it with this
//! version. SQLite always; PostgreSQL/MySQL when their server URLs are set.

mod common;

use anyhow::{Result, bail, ensure};
use common::{SqlFactory, SqlVolume, cleanup, counter_is, fresh};
use meta_core::{Backend, Caller, ErrorKind, Ino, Meta, MetaOptions, Setting};
use meta_sql::RawParam;

const ME: Caller = Caller::new(0, 0);

/// Takes a volume's tables back to schema v5: the statistics go back from the node rows to
/// a `dirstat` table and the node rows lose their statistics columns (one statement each,
/// as SQLite wants). The caller then deletes the v6 record (and older ones) last: every
/// `raw` opens a backend, which migrates tables whose version is missing.
async fn back_to_v5(v: &SqlVolume) -> Result<()> {
    v.raw(
        "CREATE TABLE {p}dirstat (ino BIGINT NOT NULL PRIMARY KEY, inodes BIGINT NOT NULL, \
         length BIGINT NOT NULL, space BIGINT NOT NULL)",
        vec![],
    )
    .await?;
    v.raw(
        "INSERT INTO {p}dirstat (ino, inodes, length, space) SELECT ino, st_inodes, st_length, \
         st_space FROM {p}node WHERE st_inodes IS NOT NULL",
        vec![],
    )
    .await?;
    for c in ["st_inodes", "st_length", "st_space"] {
        v.raw(&format!("ALTER TABLE {{p}}node DROP COLUMN {c}"), vec![])
            .await?;
    }
    Ok(())
}

/// A volume whose tables are at schema v5 (statistics in the `dirstat` table) gets them
/// moved into its directories' node rows on first use: the same statistics, the table gone,
/// and charging goes on from them.
async fn v5_volume_moves_dirstat(f: SqlFactory) -> Result<()> {
    let Some(v) = fresh(f, "")? else {
        return Ok(());
    };
    let b = v.backend()?;
    Meta::format(&*b, &Setting::new("v5"), false).await?;
    let m = Meta::open(b.clone(), MetaOptions::default(), None).await?;
    let (d, _) = m.mkdir(ME, Ino::ROOT, b"d", 0o755).await?;
    let (e, _) = m.mkdir(ME, d, b"e", 0o755).await?;
    m.create(ME, d, b"f", 0o644).await?;
    m.create(ME, e, b"g", 0o644).await?;
    let before = b.dir_stats(&[Ino::ROOT, d, e]).await?;
    ensure!(
        before[1].inodes == 2 && before[2].inodes == 1,
        "statistics before: {before:?}"
    );
    m.close().await?;
    b.close().await;
    back_to_v5(&v).await?;
    v.raw(
        "DELETE FROM {p}schema_version WHERE version >= ?",
        vec![RawParam::Int(6)],
    )
    .await?;
    let b = v.backend()?;
    ensure!(
        b.dir_stats(&[Ino::ROOT, d, e]).await? == before,
        "the migration kept the statistics"
    );
    let n = b
        .raw_execute(
            "UPDATE {p}schema_version SET description = description WHERE version = ?",
            vec![RawParam::Int(6)],
        )
        .await?;
    ensure!(n == 1, "migration 6 not recorded");
    ensure!(
        v.raw("DELETE FROM {p}dirstat", vec![]).await.is_err(),
        "the dirstat table is still there"
    );
    let m = Meta::open(b.clone(), MetaOptions::default(), None).await?;
    m.create(ME, e, b"h", 0o644).await?;
    ensure!(
        m.dir_stat(e).await?.inodes == 2,
        "charging after the migration"
    );
    let rep = meta_core::fsck::fsck(&*b).await?;
    ensure!(rep.is_clean(), "fsck: {:?}", rep.problems);
    m.close().await?;
    b.close().await;
    cleanup(&v).await
}
/// A volume whose tables are at schema v2 (before `dirstat`) gets the table on first use:
/// its old format record keeps statistics off, `dir_stats` answers zeros, ops work; formatted
/// again by this version it keeps statistics.
async fn v2_volume_gets_dirstat(f: SqlFactory) -> Result<()> {
    let Some(v) = fresh(f, "")? else {
        return Ok(());
    };
    let b = v.backend()?;
    let mut old = Setting::new("v2");
    old.dir_stats = false;
    Meta::format(&*b, &old, false).await?;
    b.close().await;
    // Back to v2: no dirstat or quota table, no statistics columns, no v3 or later record.
    back_to_v5(&v).await?;
    v.raw("DROP TABLE {p}dirstat", vec![]).await?;
    v.raw("DROP TABLE {p}quota", vec![]).await?;
    v.raw(
        "DELETE FROM {p}schema_version WHERE version >= ?",
        vec![RawParam::Int(3)],
    )
    .await?;
    let b = v.backend()?;
    ensure!(
        !b.load().await?.dir_stats,
        "the old record keeps statistics off"
    );
    let n = b
        .raw_execute(
            "UPDATE {p}schema_version SET description = description WHERE version = ?",
            vec![RawParam::Int(meta_sql::SCHEMA_VERSION)],
        )
        .await?;
    ensure!(
        n == 1,
        "migration {} not recorded",
        meta_sql::SCHEMA_VERSION
    );
    let m = Meta::open(b.clone(), MetaOptions::default(), None).await?;
    let (d, _) = m.mkdir(ME, Ino::ROOT, b"d", 0o755).await?;
    m.create(ME, d, b"f", 0o644).await?;
    ensure!(
        b.dir_stats(&[Ino::ROOT, d]).await? == vec![Default::default(); 2],
        "nothing is charged on a volume without statistics"
    );
    ensure!(
        matches!(m.dir_stat(d).await, Err(e) if e.kind() == ErrorKind::Unsupported),
        "Meta::dir_stat on a volume without statistics"
    );
    m.close().await?;
    Meta::format(&*b, &Setting::new("v3"), true).await?;
    let m = Meta::open(b.clone(), MetaOptions::default(), None).await?;
    let (d, _) = m.mkdir(ME, Ino::ROOT, b"d", 0o755).await?;
    m.create(ME, d, b"f", 0o644).await?;
    ensure!(
        m.dir_stat(d).await?.inodes == 1,
        "statistics after format --force"
    );
    let rep = meta_core::fsck::fsck(&*b).await?;
    ensure!(rep.is_clean(), "fsck: {:?}", rep.problems);
    m.close().await?;
    b.close().await;
    cleanup(&v).await
}

/// A volume whose tables are at schema v3 (before `quota`) gets the table and the
/// `quotaCount` counter row on first use, and then keeps quotas.
async fn v3_volume_gets_quota(f: SqlFactory) -> Result<()> {
    let Some(v) = fresh(f, "")? else {
        return Ok(());
    };
    let b = v.backend()?;
    Meta::format(&*b, &Setting::new("v3"), false).await?;
    b.close().await;
    // Back to v3: no quota table, no count row, no v4 record.
    back_to_v5(&v).await?;
    v.raw("DROP TABLE {p}quota", vec![]).await?;
    v.raw(
        "DELETE FROM {p}counter WHERE name = ?",
        vec![RawParam::Text("quotaCount".into())],
    )
    .await?;
    v.raw(
        "DELETE FROM {p}schema_version WHERE version >= ?",
        vec![RawParam::Int(4)],
    )
    .await?;
    let b = v.backend()?;
    let m = Meta::open(b.clone(), MetaOptions::default(), None).await?;
    let (q, _) = m.mkdir(ME, Ino::ROOT, b"q", 0o755).await?;
    m.create(ME, q, b"f", 0o644).await?;
    let quota = m.set_quota(q, 0, 2).await?;
    ensure!(quota.used.inodes == 1, "the usage of q: {quota:?}");
    m.create(ME, q, b"g", 0o644).await?;
    match m.create(ME, q, b"h", 0o644).await {
        Err(e) if e.kind() == ErrorKind::QuotaExceeded => {}
        other => bail!("a third inode under a limit of 2: {other:?}"),
    }
    let count = b
        .raw_execute(
            "UPDATE {p}counter SET value = value WHERE name = ? AND value = 1",
            vec![RawParam::Text("quotaCount".into())],
        )
        .await?;
    ensure!(count == 1, "the migration's count row does not say 1 quota");
    ensure!(b.quotas().await?.len() == 1, "one quota listed");
    let rep = meta_core::fsck::fsck(&*b).await?;
    ensure!(rep.is_clean(), "fsck: {:?}", rep.problems);
    m.close().await?;
    b.close().await;
    cleanup(&v).await
}

/// A volume whose tables are at schema v4 (before `quotaGen`) gets the generation row, at 0,
/// on first use; a client that charged the volume without quotas then sees a quota another
/// client sets (the generation moves to 1) and charges it exactly, up to its limit.
async fn v4_volume_gets_quota_gen(f: SqlFactory) -> Result<()> {
    let Some(v) = fresh(f, "")? else {
        return Ok(());
    };
    let b = v.backend()?;
    Meta::format(&*b, &Setting::new("v4"), false).await?;
    b.close().await;
    back_to_v5(&v).await?;
    v.raw(
        "DELETE FROM {p}counter WHERE name = ?",
        vec![RawParam::Text("quotaGen".into())],
    )
    .await?;
    v.raw(
        "DELETE FROM {p}schema_version WHERE version >= ?",
        vec![RawParam::Int(5)],
    )
    .await?;
    let b = v.backend()?;
    let m = Meta::open(b.clone(), MetaOptions::default(), None).await?;
    let (q, _) = m.mkdir(ME, Ino::ROOT, b"q", 0o755).await?;
    m.create(ME, q, b"f", 0o644).await?;
    ensure!(
        counter_is(&b, "quotaGen", 0).await?,
        "the migration's generation row does not say 0"
    );
    let other = v.backend()?;
    let m2 = Meta::open(other.clone(), MetaOptions::default(), None).await?;
    m2.set_quota(q, 0, 3).await?;
    ensure!(
        counter_is(&b, "quotaGen", 1).await?,
        "setting a quota did not move the generation"
    );
    m.create(ME, q, b"g", 0o644).await?;
    m.create(ME, q, b"h", 0o644).await?;
    match m.create(ME, q, b"i", 0o644).await {
        Err(e) if e.kind() == ErrorKind::QuotaExceeded => {}
        other => bail!("a fourth inode under a limit of 3: {other:?}"),
    }
    let (quota, sum) = m.check_quota(q).await?;
    ensure!(
        quota.used == sum && sum.inodes == 3,
        "usage {quota:?}, statistics {sum:?}"
    );
    ensure!(
        b.stats().reruns >= 1,
        "the stale client never re-ran: {:?}",
        b.stats()
    );
    let rep = meta_core::fsck::fsck(&*b).await?;
    ensure!(rep.is_clean(), "fsck: {:?}", rep.problems);
    m.close().await?;
    m2.close().await?;
    b.close().await;
    other.close().await;
    cleanup(&v).await
}

macro_rules! dialect_tests {
    ($($name:ident => $f:expr),* $(,)?) => {$(
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn schema_v2_volume_gets_dirstat() -> Result<()> {
                v2_volume_gets_dirstat($f).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn schema_v3_volume_gets_quota() -> Result<()> {
                v3_volume_gets_quota($f).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn schema_v4_volume_gets_quota_gen() -> Result<()> {
                v4_volume_gets_quota_gen($f).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn schema_v5_volume_moves_dirstat() -> Result<()> {
                v5_volume_moves_dirstat($f).await
            }
        }
    )*};
}

dialect_tests! {
    sqlite => SqlFactory::sqlite(),
    postgres => SqlFactory::postgres(),
    mysql => SqlFactory::mysql(),
}
