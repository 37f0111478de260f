//! What is specific to the Redis backend: URLs and options, how a lost or refused
//! connection is reported (through a fault-injecting proxy), Cluster detection, batches with
//! in-batch dependencies (several rounds), racing directory renames (the ancestor chain is
//! re-checked by the script), erase. Server tests use `META_TEST_REDIS_URL` (and
//! `META_TEST_REDIS_CLUSTER_URL` for the Cluster ones) and skip loudly when unset.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, bail, ensure};
use common::{CLUSTER_ENV, STANDALONE_ENV, open, server, unique_prefix, with_prefix};
use meta_conformance::proxy::{Mode, Proxy};
use meta_core::{
    Backend, Caller, ErrorKind, FileType, Ino, LockType, Meta, MetaOptions, Op, OpOutput,
    RenameFlags, Setting, Timespec,
};
use meta_redis::{RedisBackend, normalize_url, parse_url};

async fn open_err(url: &str) -> meta_core::Error {
    let r = match parse_url(url) {
        Ok((u, _)) => meta_redis::open(u).await,
        Err(e) => Err(e),
    };
    match r {
        Ok(b) => panic!("{url}: opened {b:?}"),
        Err(e) => e,
    }
}

const ME: Caller = Caller::new(1000, 1000);

fn t(sec: i64) -> Timespec {
    Timespec {
        sec: 1_900_000_000 + sec,
        nsec: 0,
    }
}

fn mknod(parent: Ino, name: &[u8], ino: Ino, typ: FileType) -> Op {
    Op::Mknod {
        parent,
        name: name.to_vec(),
        ino,
        typ,
        mode: 0o755,
        uid: ME.uid,
        gid: ME.gid,
        caller: ME,
        rdev: 0,
        target: Vec::new(),
        time: t(0),
        opened_by: None,
        imported: None,
    }
}

fn rename(parent: Ino, name: &[u8], new_parent: Ino, new_name: &[u8]) -> Op {
    Op::Rename {
        parent,
        name: name.to_vec(),
        new_parent,
        new_name: new_name.to_vec(),
        flags: RenameFlags::NONE,
        caller: ME,
        time: t(1),
    }
}

/// A fresh, formatted volume on the server of `url`.
async fn fresh(url: &str) -> anyhow::Result<(RedisBackend, String)> {
    let prefix = unique_prefix("r");
    let b = open(url, &prefix).await?;
    Meta::format(&b, &Setting::new("redis-test"), false).await?;
    Ok((b, prefix))
}

fn host_port(url: &str) -> anyhow::Result<SocketAddr> {
    let u = url::Url::parse(&normalize_url(url))?;
    let host = u.host_str().context("no host")?;
    let port = u.port().unwrap_or(6379);
    Ok(format!("{host}:{port}").parse()?)
}

#[test]
fn multi_host_cluster_urls_are_normalized() {
    assert_eq!(
        normalize_url("redis+cluster://h1:7000,h2:7001,h3:7002/0"),
        "redis+cluster://h1:7000/0?nodes=h2:7001,h3:7002"
    );
    assert_eq!(
        normalize_url("redis+cluster://u:p@h1:7000,h2:7001?prefix=v1&timeout=1s"),
        "redis+cluster://u:p@h1:7000?prefix=v1&timeout=1s&nodes=h2:7001"
    );
    assert_eq!(
        normalize_url("redis://h:6379/2?prefix=x"),
        "redis://h:6379/2?prefix=x"
    );
    let (u, o) = parse_url("redis+cluster://h1:7000,h2:7001/0?batch=0").unwrap();
    assert!(!o.batchwrite);
    assert_eq!(u.scheme(), "redis+cluster");
}

#[tokio::test]
async fn url_errors_name_the_problem_and_hide_the_password() {
    let e = open_err("redis://127.0.0.1:1/0?bogus=1").await;
    assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
    assert!(e.to_string().contains("bogus"), "{e}");
    let e = open_err("redis://127.0.0.1:1/0?prefix=a%7Bb").await;
    assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
    assert!(e.to_string().contains("prefix"), "{e}");
    let e = open_err("redis://127.0.0.1:1/0?timeout=soon").await;
    assert!(e.to_string().contains("timeout"), "{e}");
    let e = open_err("redis://127.0.0.1:1/x").await;
    assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
    let e = open_err("redis+cluster://127.0.0.1:1/3").await;
    assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
    assert!(e.to_string().contains("database 0"), "{e}");
    let e = open_err("rocksdb:///tmp/x").await;
    assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
    if !cfg!(feature = "tls") {
        let e = open_err("rediss://u:s3cret@127.0.0.1:1/0").await;
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(!e.to_string().contains("s3cret"), "{e}");
    }
    // Nothing listens on port 1: refused, reported as Unavailable, password hidden.
    let e = open_err("redis://bob:s3cret@127.0.0.1:1/0").await;
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(!e.to_string().contains("s3cret"), "{e}");
    assert!(!format!("{e:?}").contains("s3cret"), "{e:?}");
    let e = open_err("redis+cluster://bob:s3cret@127.0.0.1:1,127.0.0.1:2").await;
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    assert!(!e.to_string().contains("s3cret"), "{e}");
    let e = open_err("unix:///nonexistent/redis.sock?db=1").await;
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
}

#[tokio::test]
async fn wrong_password_is_config_invalid_and_hidden() -> anyhow::Result<()> {
    let Some(url) = server(STANDALONE_ENV, "wrong_password") else {
        return Ok(());
    };
    let a = host_port(&url)?;
    let e = open_err(&format!("redis://nobody:s3cret@{a}/0")).await;
    assert_eq!(e.kind(), ErrorKind::ConfigInvalid, "{e}");
    assert!(!e.to_string().contains("s3cret"), "{e}");
    assert!(!format!("{e:?}").contains("s3cret"), "{e:?}");
    Ok(())
}

#[tokio::test]
async fn debug_shows_no_password() -> anyhow::Result<()> {
    let Some(url) = server(STANDALONE_ENV, "debug_shows_no_password") else {
        return Ok(());
    };
    // The default user accepts any username/password pair only when it has no password; use
    // the URL as given and check what Debug shows.
    let (b, _) = fresh(&url).await?;
    let d = format!("{b:?}");
    assert!(d.contains("RedisBackend") && d.contains("prefix"), "{d}");
    b.erase().await?;
    Ok(())
}

#[tokio::test]
async fn lost_connection_is_indeterminate_refused_is_unavailable() -> anyhow::Result<()> {
    let Some(url) = server(STANDALONE_ENV, "lost_connection") else {
        return Ok(());
    };
    let upstream = host_port(&url)?;
    let proxy = Proxy::start(upstream).await?;
    let prefix = unique_prefix("p");
    let direct = open(&url, &prefix).await?;
    Meta::format(&direct, &Setting::new("proxy"), false).await?;
    let via = open(&format!("redis://{}/0", proxy.addr), &prefix).await?;
    let r = via
        .apply(&[mknod(Ino::ROOT, b"a", Ino(100), FileType::Regular)])
        .await?;
    ensure!(r[0].is_ok(), "through the proxy: {:?}", r[0]);

    // The server runs the scripts, the replies never arrive: Indeterminate, and indeed applied.
    proxy.set_mode(Mode::CutAfterRequest);
    let ops = [
        mknod(Ino::ROOT, b"b", Ino(101), FileType::Regular),
        mknod(Ino::ROOT, b"c", Ino(102), FileType::Regular),
    ];
    match via.apply(&ops).await {
        Err(e) if e.kind() == ErrorKind::Indeterminate => {}
        other => bail!("a batch whose replies were lost: expected Indeterminate, got {other:?}"),
    }
    ensure!(
        direct.lookup(Ino::ROOT, b"b").await.is_ok()
            && direct.lookup(Ino::ROOT, b"c").await.is_ok(),
        "the lost batch should have been applied by the server"
    );

    // Nothing listens any more: connection refused, nothing applied -> Unavailable.
    proxy.shutdown();
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let mut last = None;
    for _ in 0..3 {
        match via
            .apply(&[mknod(Ino::ROOT, b"d", Ino(103), FileType::Regular)])
            .await
        {
            Err(e) if e.kind() == ErrorKind::Unavailable => {
                last = None;
                break;
            }
            other => last = Some(format!("{other:?}")),
        }
    }
    if let Some(o) = last {
        bail!("a refused connection: expected Unavailable, got {o}");
    }
    match via.get_attr(Ino::ROOT).await {
        Err(e) if e.kind() == ErrorKind::Unavailable => {}
        other => bail!("a read on a refused connection: expected Unavailable, got {other:?}"),
    }
    ensure!(
        direct.lookup(Ino::ROOT, b"d").await.is_err(),
        "an Unavailable batch was applied"
    );
    direct.erase().await?;
    Ok(())
}

#[tokio::test]
async fn timeout_is_indeterminate() -> anyhow::Result<()> {
    let Some(url) = server(STANDALONE_ENV, "timeout_is_indeterminate") else {
        return Ok(());
    };
    let proxy = Proxy::start(host_port(&url)?).await?;
    let prefix = unique_prefix("s");
    let direct = open(&url, &prefix).await?;
    Meta::format(&direct, &Setting::new("stall"), false).await?;
    let (u, _) = parse_url(&with_prefix(
        &format!("redis://{}/0?timeout=300ms", proxy.addr),
        &prefix,
    ))?;
    let via = meta_redis::open(u).await?;
    proxy.set_mode(Mode::Stall);
    match via
        .apply(&[mknod(Ino::ROOT, b"x", Ino(200), FileType::Regular)])
        .await
    {
        Err(e) if e.kind() == ErrorKind::Indeterminate => {}
        other => bail!("a batch without reply: expected Indeterminate, got {other:?}"),
    }
    match via.get_attr(Ino::ROOT).await {
        Err(e) if e.kind() == ErrorKind::Unavailable => {}
        other => bail!("a read without reply: expected Unavailable, got {other:?}"),
    }
    direct.erase().await?;
    Ok(())
}

#[tokio::test]
async fn cluster_mode_is_detected_from_a_redis_url() -> anyhow::Result<()> {
    let Some(url) = server(CLUSTER_ENV, "cluster_mode_is_detected") else {
        return Ok(());
    };
    let node = host_port(&url)?;
    let prefix = unique_prefix("d");
    let b = open(&format!("redis://{node}/0"), &prefix).await?;
    ensure!(b.is_cluster(), "redis://{node} is a cluster node: {b:?}");
    ensure!(b.info().scheme == "redis+cluster");
    Meta::format(&b, &Setting::new("detected"), false).await?;
    let r = b
        .apply(&[mknod(Ino::ROOT, b"f", Ino(10), FileType::Regular)])
        .await?;
    ensure!(r[0].is_ok(), "{:?}", r[0]);
    b.erase().await?;
    let e = open_err(&with_prefix(&format!("redis://{node}/2"), &prefix)).await;
    ensure!(e.kind() == ErrorKind::ConfigInvalid, "{e}");
    Ok(())
}

/// The volume's keys that are neither a fixed record nor an inode's attributes or entries
/// (per-call state such as a round's sequence token would show up here).
async fn strays(b: &RedisBackend) -> anyhow::Result<Vec<String>> {
    let keys = b
        .query(
            redis::cmd("SCAN")
                .arg(0)
                .arg("MATCH")
                .arg(b.layout().pattern())
                .arg("COUNT")
                .arg(100_000),
        )
        .await?;
    let tag = b.layout().tag().to_string();
    let known = [
        "setting",
        "limits",
        "dirstats",
        "quotas",
        "statsOwner",
        "nextInode",
        "nextChunk",
        "usedSpace",
        "totalInodes",
        "nextSession",
        "cleanupLease",
    ];
    let strays: Vec<String> = format!("{keys:?}")
        .split('"')
        .filter_map(|k| k.strip_prefix(tag.as_str()))
        .filter(|r| {
            let inode_record = r.len() > 1
                && matches!(r.as_bytes()[0], b'i' | b'd')
                && r[1..].bytes().all(|c| c.is_ascii_digit());
            !(known.contains(r) || inode_record)
        })
        .map(str::to_string)
        .collect();
    Ok(strays)
}

/// Ops that depend on earlier ops of the same batch (a rename of a name created in the
/// batch, an unlink of it, a directory moved into one created in the batch) need keys that
/// could not be read beforehand: the backend runs them in further rounds, in order, and
/// leaves nothing but the layout's records behind.
async fn dependent_batch(url: &str) -> anyhow::Result<()> {
    let (b, _) = fresh(url).await?;
    let ids = b.reserve_ids(meta_core::IdKind::Inode, 20).await?;
    ensure!(ids.start <= 10 && ids.end > 13, "{ids:?}");
    let ops = vec![
        mknod(Ino::ROOT, b"d", Ino(10), FileType::Directory),
        mknod(Ino(10), b"a", Ino(11), FileType::Regular),
        rename(Ino(10), b"a", Ino(10), b"b"),
        mknod(Ino::ROOT, b"e", Ino(12), FileType::Directory),
        rename(Ino::ROOT, b"d", Ino(12), b"d"),
        rename(Ino::ROOT, b"e", Ino(10), b"e"), // e would go below itself: EINVAL
        Op::Unlink {
            parent: Ino(10),
            name: b"b".to_vec(),
            caller: ME,
            time: t(2),
        },
        mknod(Ino(10), b"b", Ino(13), FileType::Regular),
        Op::Rmdir {
            parent: Ino(12),
            name: b"d".to_vec(),
            caller: ME,
            time: t(3),
        }, // not empty: ENOTEMPTY
    ];
    let r = b.apply(&ops).await?;
    let kinds: Vec<Option<ErrorKind>> = r
        .iter()
        .map(|r| r.as_ref().err().map(|e| e.kind()))
        .collect();
    let want = vec![
        None,
        None,
        None,
        None,
        None,
        Some(ErrorKind::InvalidArgument),
        None,
        None,
        Some(ErrorKind::NotEmpty),
    ];
    ensure!(kinds == want, "results {r:?}");
    match &r[6] {
        Ok(OpOutput::Removed {
            ino, attr: None, ..
        }) if *ino == Ino(11) => {}
        other => bail!("unlink of the renamed file: {other:?}"),
    }
    ensure!(b.lookup(Ino(12), b"d").await?.0 == Ino(10));
    ensure!(b.lookup(Ino(10), b"b").await?.0 == Ino(13));
    let rep = meta_core::fsck::fsck(&b).await?;
    ensure!(rep.is_clean(), "{:?}", rep.problems);
    // Only records of the layout are left (no per-call state).
    let strays = strays(&b).await?;
    ensure!(strays.is_empty(), "keys outside the layout: {strays:?}");
    b.erase().await?;
    Ok(())
}

#[tokio::test]
async fn batch_with_in_batch_dependencies() -> anyhow::Result<()> {
    let Some(url) = server(STANDALONE_ENV, "batch_with_in_batch_dependencies") else {
        return Ok(());
    };
    dependent_batch(&url).await
}

#[tokio::test]
async fn batch_with_in_batch_dependencies_cluster() -> anyhow::Result<()> {
    let Some(url) = server(CLUSTER_ENV, "batch_with_in_batch_dependencies_cluster") else {
        return Ok(());
    };
    dependent_batch(&url).await
}

/// Two clients move two directories into each other over and over. Each rename checks the
/// destination's ancestors (read beforehand, re-checked by the script): whatever the
/// interleaving, no directory ends up below itself and the tree stays consistent.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_directory_moves_never_make_a_loop() -> anyhow::Result<()> {
    let Some(url) = server(STANDALONE_ENV, "racing_directory_moves") else {
        return Ok(());
    };
    let (b, prefix) = fresh(&url).await?;
    let m = Meta::open(Arc::new(b.clone()), MetaOptions::default(), None).await?;
    let (a, _) = m.mkdir(ME, Ino::ROOT, b"a", 0o755).await?;
    let (c, _) = m.mkdir(ME, Ino::ROOT, b"c", 0o755).await?;
    let mut tasks = Vec::new();
    for (me, other, name) in [(a, c, &b"a"[..]), (c, a, &b"c"[..])] {
        let b2 = Arc::new(open(&url, &prefix).await?);
        let m2 = Meta::open(b2, MetaOptions::default(), None).await?;
        let name = name.to_vec();
        tasks.push(tokio::spawn(async move {
            let mut moved = 0;
            for _ in 0..150 {
                // Move `me` under `other` (from wherever it is), then back to the root.
                let here = m2.getattr(me).await?.parent;
                let r = m2
                    .rename(ME, here, &name, other, &name, RenameFlags::NONE)
                    .await;
                match r {
                    Ok(_) => moved += 1,
                    Err(e)
                        if matches!(e.kind(), ErrorKind::InvalidArgument | ErrorKind::NotFound) => {
                    }
                    Err(e) => return Err(anyhow::Error::from(e)),
                }
                let here = m2.getattr(me).await?.parent;
                if here != Ino::ROOT {
                    let _ = m2
                        .rename(ME, here, &name, Ino::ROOT, &name, RenameFlags::NONE)
                        .await;
                }
            }
            anyhow::Ok(moved)
        }));
    }
    let mut moved = 0;
    for t in tasks {
        moved += t.await??;
    }
    ensure!(moved > 0, "no rename ever succeeded");
    let rep = meta_core::fsck::fsck(&b).await?;
    ensure!(rep.is_clean(), "after racing moves: {:?}", rep.problems);
    drop(m);
    b.erase().await?;
    Ok(())
}

#[tokio::test]
async fn erase_removes_every_key_of_the_volume_only() -> anyhow::Result<()> {
    let Some(url) = server(STANDALONE_ENV, "erase") else {
        return Ok(());
    };
    let (b, _) = fresh(&url).await?;
    let (other, _) = fresh(&url).await?;
    let m = Meta::open(Arc::new(b.clone()), MetaOptions::default(), None).await?;
    let (d, _) = m.mkdir(ME, Ino::ROOT, b"d", 0o755).await?;
    let (f, _) = m.create(ME, d, b"f", 0o644).await?;
    m.setxattr(ME, f, b"user.x", b"1", Default::default())
        .await?;
    m.symlink(ME, d, b"l", b"f").await?;
    drop(m);
    let n = b.erase().await?;
    ensure!(n >= 10, "erased only {n} keys");
    ensure!(b.erase().await? == 0, "a second erase found keys");
    ensure!(
        other.get_attr(Ino::ROOT).await.is_ok(),
        "erase touched another volume"
    );
    other.erase().await?;
    Ok(())
}

/// The release that deletes a sustained inode deletes every key of it: the symlink target,
/// the xattrs, the openers set and the session's locks on it (a symlink and a regular file
/// with an xattr and a flock). By default the release op derives those keys from the inode
/// number, with `strict_keys=true` the client declares them; a wrong key in either way would
/// leave it behind (a stray).
async fn released_sustained_inodes_leave_no_key(query: &str) -> anyhow::Result<()> {
    let Some(url) = server(STANDALONE_ENV, "released_sustained_inodes_leave_no_key") else {
        return Ok(());
    };
    let url = common::with_param(&url, query);
    let (b, _) = fresh(&url).await?;
    let m = Meta::open(Arc::new(b.clone()), MetaOptions::default(), None).await?;
    let (d, _) = m.mkdir(ME, Ino::ROOT, b"d", 0o755).await?;
    let (f, _) = m.create(ME, d, b"f", 0o644).await?;
    let (l, _) = m.symlink(ME, d, b"l", b"f").await?;
    m.open_file(f).await?;
    m.open_file(l).await?;
    m.setxattr(ME, f, b"user.x", b"1", Default::default())
        .await?;
    m.flock(f, 7, LockType::Write).await?;
    for name in [&b"f"[..], b"l"] {
        m.unlink(ME, d, name).await?;
    }
    ensure!(
        m.getattr(f).await?.nlink == 0,
        "an open file lost its last name but was not sustained"
    );
    let held = strays(&b).await?;
    ensure!(!held.is_empty(), "no key holds the opens, xattrs and lock");
    for ino in [f, l] {
        m.release_file(ino).await?;
    }
    m.flush().await?;
    for ino in [f, l] {
        let e = m.getattr(ino).await.err();
        ensure!(
            e.as_ref().map(|e| e.kind()) == Some(ErrorKind::NotFound),
            "inode {ino} is still there after its release: {e:?}"
        );
    }
    let left: Vec<String> = strays(&b)
        .await?
        .into_iter()
        .filter(|k| k != "sessions")
        .collect();
    ensure!(
        left.is_empty(),
        "keys left after the releases ({query:?}): {left:?}, before them {held:?}"
    );
    m.close().await?;
    b.erase().await?;
    Ok(())
}

#[tokio::test]
async fn released_sustained_inodes_leave_no_key_derived() -> anyhow::Result<()> {
    released_sustained_inodes_leave_no_key("").await
}

#[tokio::test]
async fn released_sustained_inodes_leave_no_key_declared() -> anyhow::Result<()> {
    released_sustained_inodes_leave_no_key("strict_keys=true").await
}

/// Removing the last name of an open inode renames its openers set (`{P}o{ino}`) to its kept
/// openers set (`{P}u{ino}`), where a release looks only when the first set did not have
/// its session. A volume sustained by a library from before the kept openers set has the
/// sessions in the openers set instead: a session that opens the inode now goes to the kept
/// set, its release counts the older sessions too, and the cleanup of the last older session
/// (a `close_session` op, as for a crashed client) deletes the inode.
async fn sustained_inodes_keep_their_openers_apart(query: &str) -> anyhow::Result<()> {
    let Some(url) = server(STANDALONE_ENV, "sustained_inodes_keep_their_openers_apart") else {
        return Ok(());
    };
    let url = common::with_param(&url, query);
    let (b, _) = fresh(&url).await?;
    let a = Meta::open(Arc::new(b.clone()), MetaOptions::default(), None).await?;
    let (f, _) = a.create_open(ME, Ino::ROOT, b"f", 0o644).await?;
    a.unlink(ME, Ino::ROOT, b"f").await?;
    let (live, kept) = (b.layout().openers(f), b.layout().kept_openers(f));
    let exists = |k: String| {
        let b = b.clone();
        async move { anyhow::Ok(b.query(redis::cmd("EXISTS").arg(k)).await? == redis::Value::Int(1)) }
    };
    ensure!(
        !exists(live.clone()).await? && exists(kept.clone()).await?,
        "the unlink of an open file did not move its openers to {kept} ({query:?})"
    );
    // As an older library leaves it.
    b.query(redis::cmd("RENAME").arg(&kept).arg(&live)).await?;
    let other = Meta::open(Arc::new(b.clone()), MetaOptions::default(), None).await?;
    other.open_file(f).await?;
    ensure!(
        exists(kept.clone()).await?,
        "an open of a sustained inode missed {kept}"
    );
    other.release_file(f).await?;
    other.flush().await?;
    ensure!(
        other.getattr(f).await?.nlink == 0,
        "released while an older session still holds it ({query:?})"
    );
    let sid = a.session_id().context("no session")?;
    drop(a);
    let r = b
        .apply(&[Op::CloseSession {
            sid,
            expired_before: None,
            at_most: None,
        }])
        .await?;
    ensure!(r[0].is_ok(), "cleanup of the older session: {r:?}");
    let e = other.getattr(f).await.err().map(|e| e.kind());
    ensure!(
        e == Some(ErrorKind::NotFound),
        "the close of the last session left the sustained inode: {e:?} ({query:?})"
    );
    ensure!(
        !exists(live).await? && !exists(kept).await?,
        "openers keys left ({query:?})"
    );
    other.close().await?;
    b.erase().await?;
    Ok(())
}

#[tokio::test]
async fn sustained_inodes_keep_their_openers_apart_derived() -> anyhow::Result<()> {
    sustained_inodes_keep_their_openers_apart("").await
}

#[tokio::test]
async fn sustained_inodes_keep_their_openers_apart_declared() -> anyhow::Result<()> {
    sustained_inodes_keep_their_openers_apart("strict_keys=true").await
}

/// An op that meets a key of the wrong Redis type in the middle of a call (a damaged
/// volume) fails alone with `Corrupted`: the ops before it are applied, the call stops
/// there, and the ops after it run in the next round, in order.
#[tokio::test]
async fn a_fault_in_the_middle_of_a_batch_fails_that_op_alone() -> anyhow::Result<()> {
    let Some(url) = server(STANDALONE_ENV, "fault_in_batch") else {
        return Ok(());
    };
    let (b, _) = fresh(&url).await?;
    let ids = b.reserve_ids(meta_core::IdKind::Inode, 10).await?;
    let (dir, a, x, c) = (
        Ino(ids.start),
        Ino(ids.start + 1),
        Ino(ids.start + 2),
        Ino(ids.start + 3),
    );
    let r = b
        .apply(&[mknod(Ino::ROOT, b"dir", dir, FileType::Directory)])
        .await?;
    ensure!(r[0].is_ok(), "{r:?}");
    // The directory's entries are a string instead of a sorted set.
    b.query(
        redis::cmd("SET")
            .arg(b.layout().entries(dir))
            .arg("garbage"),
    )
    .await?;
    let r = b
        .apply(&[
            mknod(Ino::ROOT, b"a", a, FileType::Regular),
            mknod(dir, b"x", x, FileType::Regular),
            mknod(Ino::ROOT, b"c", c, FileType::Regular),
        ])
        .await?;
    ensure!(r[0].is_ok() && r[2].is_ok(), "{r:?}");
    ensure!(
        r[1].as_ref().err().map(|e| e.kind()) == Some(ErrorKind::Corrupted),
        "{r:?}"
    );
    ensure!(b.lookup(Ino::ROOT, b"a").await?.0 == a);
    ensure!(b.lookup(Ino::ROOT, b"c").await?.0 == c);
    ensure!(
        b.get_attr(x).await.err().map(|e| e.kind()) == Some(ErrorKind::NotFound),
        "the failed create left its inode"
    );
    let st = b.statfs().await?;
    ensure!(st.used_inodes == 4, "root, dir, a, c: {st:?}");
    b.erase().await?;
    Ok(())
}

/// A batch longer than one call goes as one pipeline of calls. When a call stops early (here
/// at an op that meets a damaged record), the calls after it must not run ahead: they skip,
/// and the next round resumes right after the stop, in order. Op 161 (in the second call)
/// unlinks the name op 101 (in the first call, after the stop) creates; run out of order,
/// the unlink would fail and the name would stay.
#[tokio::test]
async fn a_stop_in_one_call_holds_back_the_later_calls_of_its_round() -> anyhow::Result<()> {
    let Some(url) = server(STANDALONE_ENV, "stop_holds_back") else {
        return Ok(());
    };
    let (b, _) = fresh(&url).await?;
    let n = meta_redis::MAX_CALL_OPS + 20;
    let ids = b
        .reserve_ids(meta_core::IdKind::Inode, n as u64 + 2)
        .await?;
    let dir = Ino(ids.start);
    let r = b
        .apply(&[mknod(Ino::ROOT, b"dir", dir, FileType::Directory)])
        .await?;
    ensure!(r[0].is_ok(), "{r:?}");
    b.query(
        redis::cmd("SET")
            .arg(b.layout().entries(dir))
            .arg("garbage"),
    )
    .await?;
    let (fault_at, create_at, unlink_at) = (100, 101, meta_redis::MAX_CALL_OPS + 1);
    let ops: Vec<Op> = (0..n)
        .map(|i| {
            let ino = Ino(ids.start + 1 + i as u64);
            if i == fault_at {
                mknod(dir, b"x", ino, FileType::Regular)
            } else if i == create_at {
                mknod(Ino::ROOT, b"g", ino, FileType::Regular)
            } else if i == unlink_at {
                Op::Unlink {
                    parent: Ino::ROOT,
                    name: b"g".to_vec(),
                    caller: ME,
                    time: t(2),
                }
            } else {
                mknod(
                    Ino::ROOT,
                    format!("f{i}").as_bytes(),
                    ino,
                    FileType::Regular,
                )
            }
        })
        .collect();
    let r = b.apply(&ops).await?;
    ensure!(r.len() == n);
    for (i, r) in r.iter().enumerate() {
        let kind = r.as_ref().err().map(|e| e.kind());
        let want = (i == fault_at).then_some(ErrorKind::Corrupted);
        ensure!(kind == want, "op {i}: {r:?}");
    }
    ensure!(
        b.lookup(Ino::ROOT, b"g").await.err().map(|e| e.kind()) == Some(ErrorKind::NotFound),
        "the unlink ran before the create"
    );
    ensure!(
        b.lookup(Ino::ROOT, format!("f{}", n - 1).as_bytes())
            .await
            .is_ok()
    );
    let st = b.statfs().await?;
    ensure!(st.used_inodes == n as u64 - 1, "{st:?}");
    let strays = strays(&b).await?;
    ensure!(
        strays.iter().all(|k| k == &format!("d{}", dir.0)),
        "a sequence token or other per-call state was left: {strays:?}"
    );
    b.erase().await?;
    Ok(())
}

/// Two clients on one volume (each with its own connection and ID pools, as two processes
/// would have) × 32 tasks create in one directory: every create succeeds, no inode number is
/// handed out twice, the counters and the directory's link count are exact, fsck is clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_clients_create_in_one_directory() -> anyhow::Result<()> {
    let Some(url) = server(STANDALONE_ENV, "two_clients_create") else {
        return Ok(());
    };
    let (b, prefix) = fresh(&url).await?;
    let m1 = Meta::open(
        Arc::new(open(&url, &prefix).await?),
        MetaOptions::default(),
        None,
    )
    .await?;
    let m2 = Meta::open(
        Arc::new(open(&url, &prefix).await?),
        MetaOptions::default(),
        None,
    )
    .await?;
    let (d, _) = m1.mkdir(ME, Ino::ROOT, b"d", 0o755).await?;
    let mut tasks = Vec::new();
    for i in 0..64u32 {
        let m = if i % 2 == 0 { m1.clone() } else { m2.clone() };
        tasks.push(tokio::spawn(async move {
            let mut inos = Vec::new();
            for j in 0..16 {
                let (ino, _) = m
                    .create(ME, d, format!("f{i}_{j}").as_bytes(), 0o644)
                    .await?;
                inos.push(ino);
            }
            m.mkdir(ME, d, format!("d{i}").as_bytes(), 0o755).await?;
            anyhow::Ok(inos)
        }));
    }
    let mut all = std::collections::HashSet::new();
    for t in tasks {
        for ino in t.await?? {
            ensure!(all.insert(ino), "inode {ino} handed out twice");
        }
    }
    ensure!(all.len() == 64 * 16);
    let st = b.statfs().await?;
    ensure!(st.used_inodes == 2 + 64 * 16 + 64, "{st:?}");
    ensure!(b.get_attr(d).await?.nlink == 2 + 64, "link count of d");
    let rep = meta_core::fsck::fsck(&b).await?;
    ensure!(rep.is_clean(), "{:?}", rep.problems);
    m1.close().await?;
    m2.close().await?;
    b.erase().await?;
    Ok(())
}
