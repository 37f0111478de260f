//! Directory statistics in the Redis backend (`{prefix}dirstats`, kept by the Lua ops): batch
//! by batch, the same ops give the same statistics as the in-memory reference (meta_core's
//! generic logic), for every inode number used (a deleted directory's record is gone, not
//! zero, and one back to all zeros keeps only the directory's parent, which every live
//! directory's record names, as the quota walk needs), with several ops changing one directory in one
//! batch (`[unlink a file of D, rmdir D]`), lengths past 2^53, sustained inodes deleted by a
//! session's end, restores; on a standalone server, with `strict_keys`, and on a Cluster.
//! Also: exact totals on both sides of 2^53, the limits record's `dir_stats` field (the old
//! two-field form means off), and a corrupted record fails the op before it writes and the
//! read names the directory.

mod common;

use std::collections::BTreeMap;

use anyhow::{Context, ensure};
use common::ops::{
    attr, file, link, mkdir, mknod, rename, restore, rmdir, set_size, t, truncate, unlink, write,
};
use common::{CLUSTER_ENV, STANDALONE_ENV, open, server, unique_prefix, with_param};
use meta_core::memory::memory_backend;
use meta_core::stats::expected_dir_stats;
use meta_core::{
    Backend, DirStat, ErrorKind, FileType, Ino, Meta, Op, RenameFlags, SessionInfo, Setting,
};
use meta_redis::RedisBackend;
use redis::Value;

const SID: u64 = 7;
/// Inode numbers the scenario uses (1..=MAX_INO).
const MAX_INO: u64 = 60;

/// The scenario, one `apply` per batch: (what, ops).
fn batches() -> Vec<(&'static str, Vec<Op>)> {
    const D: u64 = 20;
    vec![
        (
            "creates",
            vec![
                Op::OpenSession {
                    info: Box::new(SessionInfo {
                        sid: SID,
                        host: "h".into(),
                        pid: 1,
                        version: "v".into(),
                        started: t(0),
                        label: String::new(),
                    }),
                    expire: t(1_000_000),
                },
                mkdir(1, "d", 10),
                mkdir(1, "e", 11),
                file(10, "f", 12),
                write(12, 0, 1000, 0, 5000),
                mknod(10, "s", 13, FileType::Symlink),
                mkdir(10, "sub", 14),
                file(11, "g", 15),
                write(15, 0, 1001, 0, 100),
                mkdir(11, "x", 16),
                mkdir(10, "y", 17),
                file(17, "h", 18),
                mkdir(10, "o", 19),
                Op::Open {
                    sid: SID,
                    ino: Ino(19),
                },
                mkdir(1, "D", D),
                file(D, "a", 21),
                write(21, 0, 1002, 0, 70_000),
                mkdir(D, "b", 22),
                mkdir(1, "r", 25),
                file(10, "k", 26),
                file(10, "w", 27),
                Op::Open {
                    sid: SID,
                    ino: Ino(27),
                },
                mkdir(1, "big", 30),
                file(30, "bf", 31),
                file(30, "bg", 32),
                mknod(30, "fifo", 33, FileType::Fifo),
            ],
        ),
        (
            "a directory emptied and removed in one batch",
            vec![unlink(D, "a"), rmdir(D, "b"), rmdir(1, "D")],
        ),
        (
            "renames: across directories, exchange, over an empty directory",
            vec![
                rename(11, "g", 10, "g", RenameFlags::NONE),
                rename(10, "y", 11, "y", RenameFlags::NONE),
                rename(10, "g", 11, "x", RenameFlags::EXCHANGE),
                // After the exchange 10/g names the empty directory 16: it replaces r.
                rename(10, "g", 1, "r", RenameFlags::NONE),
                rename(1, "r", 1, "r2", RenameFlags::NONE),
            ],
        ),
        (
            "links",
            vec![
                link(15, 10, "g2"),
                link(15, 11, "g3"),
                rename(10, "g2", 17, "g2", RenameFlags::NONE),
                link(26, 10, "k2"),
                rename(10, "k2", 11, "k2", RenameFlags::NONE),
                unlink(11, "k2"),
            ],
        ),
        // Sums a double cannot hold (2^54 - 1 rounds to 2^54, 2^53 + 5 to 2^53 + 4).
        (
            "a length past 2^53",
            vec![write(31, 0, 1003, 0, 3), truncate(31, (1 << 54) - 1)],
        ),
        (
            "another one",
            vec![
                set_size(32, (1 << 53) + 5),
                truncate(12, 4097),
                set_size(12, 1),
            ],
        ),
        (
            "shrinking a huge file",
            vec![truncate(31, (1 << 53) + 3), set_size(32, (1 << 54) - 5)],
        ),
        (
            "sustained inodes",
            vec![
                rmdir(10, "o"),
                unlink(10, "w"),
                write(27, 0, 1004, 0, 9000),
                unlink(10, "f"),
            ],
        ),
        (
            "the session ends: its sustained inodes go",
            vec![Op::CloseSession {
                sid: SID,
                expired_before: None,
                at_most: None,
            }],
        ),
        (
            "restores",
            vec![
                restore(
                    40,
                    attr(FileType::Regular, 10, 1, 12_345),
                    &[(10, "restored")],
                ),
                restore(31, attr(FileType::Regular, 30, 1, 7), &[]),
                restore(41, attr(FileType::Directory, 11, 2, 4096), &[(11, "rd")]),
                restore(42, attr(FileType::Regular, 41, 1, 1), &[(41, "in")]),
            ],
        ),
        (
            "a restored directory emptied and removed; links dropped",
            vec![
                unlink(41, "in"),
                rmdir(11, "rd"),
                unlink(11, "x"),
                unlink(11, "g3"),
            ],
        ),
    ]
}

/// Statistics of every inode number the scenario uses.
async fn all_stats(b: &dyn Backend) -> anyhow::Result<Vec<DirStat>> {
    let inos: Vec<Ino> = (1..=MAX_INO).map(Ino).collect();
    Ok(b.dir_stats(&inos).await?)
}

/// The records of the statistics hash (field: 8-byte inode, value: 32 bytes, statistics and
/// parent, or 24 bytes, statistics only, never all zeros), by inode; beside them only the
/// `layout` field, which makes the hash a hashtable.
async fn stored_fields(b: &RedisBackend) -> anyhow::Result<BTreeMap<u64, Vec<u8>>> {
    let v = b
        .query(redis::cmd("HGETALL").arg(b.layout().dir_stats()))
        .await?;
    let Value::Array(items) = v else {
        anyhow::bail!("HGETALL: {v:?}");
    };
    let mut out = BTreeMap::new();
    let mut layout = false;
    for pair in items.chunks(2) {
        let [Value::BulkString(f), Value::BulkString(rec)] = pair else {
            anyhow::bail!("HGETALL pair {pair:?}");
        };
        if f == b"layout" {
            layout = rec.len() > 64;
            continue;
        }
        ensure!(f.len() == 8, "field {f:?}");
        ensure!(
            (rec.len() == 32 || rec.len() == 24) && rec.iter().any(|&x| x != 0),
            "record {rec:?} of field {f:?}"
        );
        out.insert(u64::from_be_bytes(f[..].try_into()?), rec.clone());
    }
    ensure!(layout, "no layout field");
    let enc = b
        .query(
            redis::cmd("OBJECT")
                .arg("ENCODING")
                .arg(b.layout().dir_stats()),
        )
        .await?;
    ensure!(
        enc == Value::BulkString(b"hashtable".to_vec()),
        "encoding {enc:?}"
    );
    Ok(out)
}

async fn scenario(url: &str) -> anyhow::Result<()> {
    let b = open(url, &unique_prefix("s")).await?;
    let reference = memory_backend();
    let setting = Setting::new("dirstats");
    Meta::format(&b, &setting, false).await?;
    Meta::format(&reference, &setting, false).await?;
    for (what, ops) in batches() {
        let got = b.apply(&ops).await?;
        let want = reference.apply(&ops).await?;
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            ensure!(
                g.as_ref().map_err(|e| e.kind()).map(|o| o.ino())
                    == w.as_ref().map_err(|e| e.kind()).map(|o| o.ino()),
                "{what}, op {i}: redis {g:?}, reference {w:?}"
            );
            ensure!(g.is_ok(), "{what}, op {i}: {g:?}");
        }
        let (g, w) = (all_stats(&b).await?, all_stats(&reference).await?);
        for (i, (g, w)) in g.iter().zip(&w).enumerate() {
            ensure!(
                g == w,
                "{what}: inode {}: redis {g:?}, reference {w:?}",
                i + 1
            );
        }
        // The definition, from the inodes.
        let mut attrs = BTreeMap::new();
        for i in 1..=MAX_INO {
            if let Ok(a) = b.get_attr(Ino(i)).await {
                attrs.insert(Ino(i), a);
            }
        }
        let expected = expected_dir_stats(&attrs);
        for (i, s) in g.iter().enumerate() {
            let e = expected
                .get(&Ino(i as u64 + 1))
                .copied()
                .unwrap_or_default();
            ensure!(
                *s == e,
                "{what}: inode {}: {s:?}, the inodes add up to {e:?}",
                i + 1
            );
        }
        // No record outlives its directory; every directory but the root has one, naming
        // its parent (what the walk to the quotas above a directory reads).
        let fields = stored_fields(&b).await?;
        for (ino, rec) in &fields {
            let a = attrs.get(&Ino(*ino));
            ensure!(
                a.is_some_and(|a| a.typ == FileType::Directory),
                "{what}: record {rec:?} of inode {ino}, which is no live directory"
            );
        }
        for (ino, a) in &attrs {
            if a.typ == FileType::Directory && *ino != Ino::ROOT {
                let rec = fields.get(&ino.0);
                ensure!(
                    rec.is_some_and(|r| r.len() == 32 && r[24..] == a.parent.0.to_be_bytes()),
                    "{what}: directory {ino} (parent {}) has the record {rec:?}",
                    a.parent
                );
            }
        }
    }
    let big = all_stats(&b).await?[29];
    ensure!(
        big.length == (1 << 54) - 5 + 7 && big.inodes == 3,
        "the big directory: {big:?}"
    );
    let d = stored_fields(&b).await?;
    ensure!(
        !d.contains_key(&20) && !d.contains_key(&41),
        "removed directories keep records: {d:?}"
    );
    b.erase().await?;
    Ok(())
}

#[tokio::test]
async fn same_statistics_as_the_reference() -> anyhow::Result<()> {
    let Some(url) = server(STANDALONE_ENV, "dirstats") else {
        return Ok(());
    };
    scenario(&url).await.context("standalone")?;
    scenario(&with_param(&url, "strict_keys=true"))
        .await
        .context("strict_keys")?;
    Ok(())
}

#[tokio::test]
async fn same_statistics_as_the_reference_cluster() -> anyhow::Result<()> {
    let Some(url) = server(CLUSTER_ENV, "dirstats cluster") else {
        return Ok(());
    };
    scenario(&url).await.context("cluster")?;
    scenario(&with_param(&url, "strict_keys=true"))
        .await
        .context("cluster, strict_keys")
}

async fn get(b: &RedisBackend, key: &str) -> anyhow::Result<Value> {
    Ok(b.query(redis::cmd("GET").arg(key)).await?)
}

/// Runs `c`, a direct write of the statistics or quotas hash, and deletes the volume's
/// `statsOwner` key as the layout asks of anything but the library that writes them (else
/// the library would go on from the records it kept).
async fn tamper(b: &RedisBackend, c: &mut redis::Cmd) -> anyhow::Result<()> {
    b.query(c).await?;
    b.query(redis::cmd("DEL").arg(b.layout().stats_owner()))
        .await?;
    Ok(())
}

async fn exists(b: &RedisBackend, key: &str) -> anyhow::Result<bool> {
    Ok(matches!(
        b.query(redis::cmd("EXISTS").arg(key)).await?,
        Value::Int(1)
    ))
}

/// The limits record carries `dir_stats` as a third field; a record of two fields (a volume
/// formatted before statistics existed) keeps none; any other form is `Corrupted`.
#[tokio::test]
async fn the_limits_record_says_whether_statistics_are_kept() -> anyhow::Result<()> {
    let Some(url) = server(STANDALONE_ENV, "dirstats limits") else {
        return Ok(());
    };
    let b = open(&url, &unique_prefix("l")).await?;
    let limits = b.layout().limits();
    let stats = b.layout().dir_stats();
    let mut s = Setting::new("off");
    s.dir_stats = false;
    s.capacity = 1 << 40;
    Meta::format(&b, &s, false).await?;
    ensure!(
        get(&b, &limits).await? == Value::BulkString(b"1099511627776 0 0".to_vec()),
        "{:?}",
        get(&b, &limits).await?
    );
    let r = b.apply(&[mkdir(1, "d", 10), file(10, "f", 11)]).await?;
    ensure!(r.iter().all(Result::is_ok), "{r:?}");
    ensure!(!exists(&b, &stats).await?, "statistics written when off");
    b.erase().await?;

    Meta::format(&b, &Setting::new("on"), false).await?;
    ensure!(get(&b, &limits).await? == Value::BulkString(b"0 0 1 1".to_vec()));
    // As formatted before `statsOwner` existed: the first library to own the statistics adds
    // the fourth field, which older libraries refuse.
    b.query(redis::cmd("SET").arg(&limits).arg("0 0 1")).await?;
    let r = b.apply(&[mkdir(1, "d", 10)]).await?;
    ensure!(r.iter().all(Result::is_ok), "{r:?}");
    ensure!(exists(&b, &stats).await?, "no statistics written when on");
    ensure!(
        get(&b, &limits).await? == Value::BulkString(b"0 0 1 1".to_vec()),
        "{:?}",
        get(&b, &limits).await?
    );
    // The old form: no statistics.
    b.query(redis::cmd("SET").arg(&limits).arg("0 0")).await?;
    let before = b.dir_stats(&[Ino(1), Ino(10)]).await?;
    let r = b.apply(&[file(10, "f", 11), mkdir(1, "e", 12)]).await?;
    ensure!(r.iter().all(Result::is_ok), "{r:?}");
    ensure!(
        b.dir_stats(&[Ino(1), Ino(10)]).await? == before,
        "statistics changed when off"
    );
    for bad in [
        "0 0 2",
        "0 0 1 2",
        "0 0 1 1 1",
        "0 0 ",
        "0",
        "x 0 1",
        "0 0 true",
    ] {
        b.query(redis::cmd("SET").arg(&limits).arg(bad)).await?;
        let r = b.apply(&[file(10, "g", 13)]).await?;
        ensure!(
            r[0].as_ref().err().map(|e| e.kind()) == Some(ErrorKind::Corrupted),
            "limits {bad:?}: {r:?}"
        );
    }
    b.erase().await?;
    Ok(())
}

/// A statistics record that is neither 32 nor 24 bytes fails an op that would add to it, before any
/// write; the read names the directory.
#[tokio::test]
async fn a_corrupted_record_fails_before_any_write() -> anyhow::Result<()> {
    let Some(url) = server(STANDALONE_ENV, "dirstats corrupted") else {
        return Ok(());
    };
    let b = open(&url, &unique_prefix("c")).await?;
    Meta::format(&b, &Setting::new("corrupted"), false).await?;
    let r = b
        .apply(&[mkdir(1, "d", 10), file(10, "f", 11), write(11, 0, 5, 0, 10)])
        .await?;
    ensure!(r.iter().all(Result::is_ok), "{r:?}");
    let stats = b.layout().dir_stats();
    let field = 10u64.to_be_bytes();
    let garbage: [&[u8]; 7] = [b"abc", b"", b"10", &[0; 23], &[0; 25], &[0; 31], &[0; 33]];
    for garbage in garbage {
        tamper(
            &b,
            redis::cmd("HSET").arg(&stats).arg(&field[..]).arg(garbage),
        )
        .await?;
        let attr_before = b.get_attr(Ino(11)).await?;
        for op in [
            write(11, 0, 6, 10, 10),
            file(10, "g", 12),
            unlink(10, "f"),
            rename(10, "f", 1, "f", RenameFlags::NONE),
        ] {
            let r = b.apply(std::slice::from_ref(&op)).await?;
            ensure!(
                r[0].as_ref().err().map(|e| e.kind()) == Some(ErrorKind::Corrupted),
                "{garbage:?}, {op:?}: {r:?}"
            );
        }
        ensure!(
            b.get_attr(Ino(11)).await? == attr_before,
            "{garbage:?}: the write wrote"
        );
        ensure!(
            b.lookup(Ino(10), b"g").await.is_err(),
            "{garbage:?}: the create wrote"
        );
        let e = b
            .dir_stats(&[Ino(1), Ino(10)])
            .await
            .expect_err("a corrupted record reads as an error");
        ensure!(
            e.kind() == ErrorKind::Corrupted && e.to_string().contains("directory 10"),
            "{e}"
        );
    }
    // A wrong-type hash fails the ops that would write it, and the read.
    b.query(redis::cmd("DEL").arg(&stats)).await?;
    tamper(&b, redis::cmd("SET").arg(&stats).arg("x")).await?;
    let r = b.apply(&[file(10, "g", 12)]).await?;
    ensure!(
        r[0].as_ref().err().map(|e| e.kind()) == Some(ErrorKind::Corrupted),
        "{r:?}"
    );
    let e = b.dir_stats(&[Ino(10)]).await.expect_err("wrong type");
    ensure!(e.kind() == ErrorKind::Corrupted, "{e}");
    ensure!(b.dir_stats(&[]).await?.is_empty());
    b.erase().await?;
    Ok(())
}

/// Totals on both sides of 2^53 (where the library leaves doubles for 32-bit halves), in
/// both directions and within one batch, equal the reference's; the root back to all zeros
/// keeps no record (it has no parent to keep).
#[tokio::test]
async fn exact_totals_around_2_pow_53() -> anyhow::Result<()> {
    let Some(url) = server(STANDALONE_ENV, "dirstats 2^53") else {
        return Ok(());
    };
    let b = open(&url, &unique_prefix("b")).await?;
    let reference = memory_backend();
    let setting = Setting::new("around-2-pow-53");
    Meta::format(&b, &setting, false).await?;
    Meta::format(&reference, &setting, false).await?;
    let p53: u64 = 1 << 53;
    let batches: Vec<Vec<Op>> = vec![
        vec![mkdir(1, "d", 10), file(10, "f", 11), file(10, "g", 12)],
        vec![set_size(11, p53 - 4097)],
        vec![set_size(11, p53 - 1)],
        vec![set_size(12, 1)],
        vec![set_size(11, p53 + 1), set_size(12, 2)],
        vec![set_size(11, p53 - 3)],
        vec![set_size(11, p53 + 7), set_size(11, p53 - 9)],
        vec![
            set_size(11, (1 << 54) - 1),
            file(10, "h", 13),
            set_size(12, (1 << 54) - 3),
        ],
        vec![unlink(10, "f"), set_size(12, 5)],
        vec![set_size(12, 0), unlink(10, "h")],
        vec![set_size(12, p53), set_size(12, 0)],
        vec![file(10, "y", 15), unlink(10, "y")],
        vec![unlink(10, "g")],
        vec![
            file(10, "x", 14),
            set_size(14, (1 << 54) - 1),
            unlink(10, "x"),
            rmdir(1, "d"),
        ],
    ];
    for (i, ops) in batches.iter().enumerate() {
        let got = b.apply(ops).await?;
        let want = reference.apply(ops).await?;
        for (g, w) in got.iter().zip(&want) {
            ensure!(
                g.is_ok() && w.is_ok(),
                "batch {i}: redis {g:?}, reference {w:?}"
            );
        }
        let (g, w) = (all_stats(&b).await?, all_stats(&reference).await?);
        ensure!(g == w, "batch {i}: redis {:?}, reference {:?}", g[9], w[9]);
    }
    // Dir 10 emptied in batch 12 and removed in 13; the root emptied too.
    let d = stored_fields(&b).await?;
    ensure!(d.is_empty(), "records left: {d:?}");
    b.erase().await?;
    Ok(())
}

/// The record of directory `dir` in the statistics hash, raw.
async fn record(b: &RedisBackend, dir: u64) -> anyhow::Result<Option<Vec<u8>>> {
    Ok(
        match b
            .query(
                redis::cmd("HGET")
                    .arg(b.layout().dir_stats())
                    .arg(&dir.to_be_bytes()[..]),
            )
            .await?
        {
            Value::BulkString(v) => Some(v),
            _ => None,
        },
    )
}

/// Records written before directory quotas (24 bytes, or none for a directory with nothing
/// charged) name no parent: with `strict_keys` the walk to the quotas above such a directory
/// fails with `Corrupted` (naming it) before writing; without, it reads the attributes and
/// the call records the parents, after which strict clients walk too. A damaged quota record
/// fails the ops that would charge it and `quotas()` names its directory.
#[tokio::test]
async fn records_without_a_parent_and_damaged_quotas() -> anyhow::Result<()> {
    let Some(url) = server(STANDALONE_ENV, "dirstats legacy records") else {
        return Ok(());
    };
    let prefix = unique_prefix("l");
    let b = open(&url, &prefix).await?;
    let strict = open(&with_param(&url, "strict_keys=true"), &prefix).await?;
    Meta::format(&b, &Setting::new("legacy"), false).await?;
    let r = b
        .apply(&[
            mkdir(1, "a", 10),
            mkdir(10, "b", 11),
            Op::SetQuota {
                dir: Ino(10),
                max_space: 0,
                max_inodes: 100,
                subtree: vec![Ino(10), Ino(11)],
            },
        ])
        .await?;
    ensure!(r.iter().all(Result::is_ok), "{r:?}");
    let stats = b.layout().dir_stats();
    // As an older version left them: 10 without its parent, 11 (nothing charged) without a
    // record.
    let rec10 = record(&b, 10).await?.context("record of 10")?;
    ensure!(
        rec10.len() == 32 && rec10[24..] == 1u64.to_be_bytes(),
        "{rec10:?}"
    );
    b.query(
        redis::cmd("HSET")
            .arg(&stats)
            .arg(&10u64.to_be_bytes()[..])
            .arg(&rec10[..24]),
    )
    .await?;
    tamper(
        &b,
        redis::cmd("HDEL").arg(&stats).arg(&11u64.to_be_bytes()[..]),
    )
    .await?;
    let r = strict.apply(&[file(11, "f", 12)]).await?;
    let e = r[0]
        .as_ref()
        .expect_err("a strict walk through a record without parent");
    ensure!(
        e.kind() == ErrorKind::Corrupted && e.to_string().contains("directory 11"),
        "{e}"
    );
    ensure!(
        strict.lookup(Ino(11), b"f").await.is_err(),
        "the create wrote"
    );
    ensure!(
        record(&b, 11).await?.is_none(),
        "the failed create wrote a record"
    );
    let r = b.apply(&[file(11, "f", 12)]).await?;
    ensure!(r[0].is_ok(), "{r:?}");
    for (dir, parent) in [(10u64, 1u64), (11, 10)] {
        let rec = record(&b, dir).await?;
        ensure!(
            rec.as_ref()
                .is_some_and(|r| r.len() == 32 && r[24..] == parent.to_be_bytes()),
            "directory {dir}: {rec:?}"
        );
    }
    let r = strict.apply(&[file(11, "g", 13)]).await?;
    ensure!(r[0].is_ok(), "{r:?}");
    let q = b.quotas().await?;
    ensure!(
        q.len() == 1 && q[0].0 == Ino(10) && q[0].1.used.inodes == 3,
        "b, f, g under 10: {q:?}"
    );

    // A damaged quota record.
    tamper(
        &b,
        redis::cmd("HSET")
            .arg(b.layout().quotas())
            .arg(&10u64.to_be_bytes()[..])
            .arg("garbage"),
    )
    .await?;
    let e = b.quotas().await.expect_err("a damaged quota");
    ensure!(
        e.kind() == ErrorKind::Corrupted && e.to_string().contains("directory 10"),
        "{e}"
    );
    let r = b.apply(&[file(11, "h", 14)]).await?;
    ensure!(
        r[0].as_ref().err().map(|e| e.kind()) == Some(ErrorKind::Corrupted),
        "{r:?}"
    );
    ensure!(b.lookup(Ino(11), b"h").await.is_err(), "the create wrote");
    b.query(
        redis::cmd("HSET")
            .arg(b.layout().quotas())
            .arg("bad-field")
            .arg(&[0u8; 40][..]),
    )
    .await?;
    b.query(
        redis::cmd("HDEL")
            .arg(b.layout().quotas())
            .arg(&10u64.to_be_bytes()[..]),
    )
    .await?;
    let e = b.quotas().await.expect_err("a damaged field");
    ensure!(
        e.kind() == ErrorKind::Corrupted && e.to_string().contains("bad-field"),
        "{e}"
    );
    b.erase().await?;
    Ok(())
}

/// The library keeps the statistics records, the number of quotas and the quota chains from
/// call to call while `{prefix}statsOwner` names it, and drops them when another library
/// wrote the hashes and took the key over (another version of the library, or another
/// server's after a failover; here the test plays it): the next op reads the records that
/// library left, a quota it created is charged, and the key names this library again.
#[tokio::test]
async fn another_owner_of_the_statistics_is_seen() -> anyhow::Result<()> {
    let Some(url) = server(STANDALONE_ENV, "dirstats owner") else {
        return Ok(());
    };
    // (Redis Functions: the scripts way keeps nothing from call to call.)
    let b = open(&with_param(&url, "scripting=function"), &unique_prefix("o")).await?;
    Meta::format(&b, &Setting::new("owner"), false).await?;
    let owner = b.layout().stats_owner();
    let r = b.apply(&[mkdir(1, "d", 10), file(10, "a", 11)]).await?;
    ensure!(r.iter().all(Result::is_ok), "{r:?}");
    let ours = get(&b, &owner).await?;
    ensure!(
        matches!(&ours, Value::BulkString(v) if !v.is_empty() && v.as_slice() != b"script"),
        "the library names itself the owner: {ours:?}"
    );
    let r = b.apply(&[file(10, "b", 12)]).await?;
    ensure!(r[0].is_ok(), "{r:?}");
    ensure!(get(&b, &owner).await? == ours, "the owner changed");

    // Another library: directory 10 now has 50 inodes (its parent still 1), and a quota of
    // 52 inodes on it with 50 used.
    let mut rec = Vec::new();
    for v in [50i64, 0, 50 * 4096] {
        rec.extend_from_slice(&v.to_be_bytes());
    }
    rec.extend_from_slice(&1u64.to_be_bytes());
    let mut quota = Vec::new();
    for v in [0i64, 52, 50, 0, 50 * 4096] {
        quota.extend_from_slice(&v.to_be_bytes());
    }
    b.query(
        redis::cmd("HSET")
            .arg(b.layout().dir_stats())
            .arg(&10u64.to_be_bytes()[..])
            .arg(&rec[..]),
    )
    .await?;
    b.query(
        redis::cmd("HSET")
            .arg(b.layout().quotas())
            .arg(&10u64.to_be_bytes()[..])
            .arg(&quota[..]),
    )
    .await?;
    b.query(redis::cmd("SET").arg(&owner).arg("another library"))
        .await?;

    let r = b
        .apply(&[file(10, "c", 13), file(10, "d", 14), file(10, "e", 15)])
        .await?;
    ensure!(
        r[0].is_ok()
            && r[1].is_ok()
            && r[2].as_ref().err().map(|e| e.kind()) == Some(ErrorKind::QuotaExceeded),
        "the quota the other library created is charged: {r:?}"
    );
    let s = b.dir_stats(&[Ino(10)]).await?;
    ensure!(
        s[0].inodes == 52,
        "the other library's 50 inodes and 2 more: {s:?}"
    );
    ensure!(
        get(&b, &owner).await? == ours,
        "the library took the key back"
    );
    b.erase().await?;
    Ok(())
}
