//! Redis keeps the writes a script made before it failed, so an op must check every key it
//! writes before its first write. For each op kind, from one fixed volume state: the op is
//! run once to find the keys it writes; then, for each of those keys, on a fresh copy of the
//! state, that key is replaced by a value of another Redis type and the op is run again. It
//! must either fail and leave every key exactly as it was, or succeed with exactly the effects
//! it has on a clean volume (an op may overwrite or delete a key whatever its type). The
//! ops that charge, set or remove directory quotas run again with quotas on two directories
//! (the quotas hash among the keys they write).

mod common;

use std::collections::BTreeMap;

use anyhow::{Context, ensure};
use common::ops::{ME, attr, mknod, t};
use common::{STANDALONE_ENV, open, unique_prefix};
use meta_core::{
    Backend, FileType, Imported, Ino, LockOwner, LockType, Meta, Op, Pending, RenameFlags,
    RestoreRecord, SessionInfo, SetAttrMask, SetAttrValues, Setting, Slice, XattrFlags,
};
use meta_redis::RedisBackend;
use redis::Value;

const SID: u64 = 7;

fn slice(id: u64, len: u32) -> Slice {
    Slice {
        pos: 0,
        id,
        size: len,
        off: 0,
        len,
    }
}

fn write(ino: u64, indx: u32, id: u64) -> Op {
    Op::Write {
        ino: Ino(ino),
        indx,
        slice: slice(id, 100),
        caller: ME,
        time: t(1),
    }
}

fn info(sid: u64) -> Box<SessionInfo> {
    Box::new(SessionInfo {
        sid,
        host: "h".into(),
        pid: 1,
        version: "v".into(),
        started: t(0),
        label: String::new(),
    })
}

fn owner(n: u64) -> LockOwner {
    LockOwner { sid: SID, owner: n }
}

/// The fixed state every case starts from: /d (10) holding f (11: two chunks, an xattr), s
/// (12, a symlink), g (13: truncated to 0, so one pending slice), h (15: open by session 7,
/// with a flock and a byte-range lock); /e (14) empty; a pending file (16).
fn setup() -> Vec<Op> {
    vec![
        Op::OpenSession {
            info: info(SID),
            expire: t(1_000_000),
        },
        // The root's times, set at format, become fixed ones.
        Op::SetAttr {
            ino: Ino::ROOT,
            mask: SetAttrMask(SetAttrMask::ATIME.0 | SetAttrMask::MTIME.0),
            values: SetAttrValues {
                mode: 0,
                uid: 0,
                gid: 0,
                atime: t(0),
                mtime: t(0),
                size: 0,
            },
            caller: ME,
            time: t(0),
        },
        mknod(1, "d", 10, FileType::Directory),
        mknod(10, "f", 11, FileType::Regular),
        write(11, 0, 1000),
        write(11, 1, 1001),
        Op::SetXattr {
            ino: Ino(11),
            name: b"user.a".to_vec(),
            value: b"1".to_vec(),
            flags: XattrFlags::NONE,
            caller: ME,
        },
        mknod(10, "s", 12, FileType::Symlink),
        mknod(10, "g", 13, FileType::Regular),
        write(13, 0, 1002),
        Op::Truncate {
            ino: Ino(13),
            length: 0,
            caller: ME,
            time: t(2),
        },
        mknod(1, "e", 14, FileType::Directory),
        mknod(10, "h", 15, FileType::Regular),
        Op::Open {
            sid: SID,
            ino: Ino(15),
        },
        Op::Flock {
            ino: Ino(15),
            owner: owner(1),
            typ: LockType::Read,
        },
        Op::Setlk {
            ino: Ino(15),
            owner: owner(1),
            typ: LockType::Write,
            start: 0,
            end: 9,
            pid: 1,
        },
        mknod(10, "p", 16, FileType::Regular),
        write(16, 0, 1003),
        mknod(10, "q", 17, FileType::Regular),
        Op::Open {
            sid: SID,
            ino: Ino(17),
        },
        // Sustained: open, then its last name removed.
        mknod(10, "r", 18, FileType::Regular),
        write(18, 0, 1004),
        Op::Open {
            sid: SID,
            ino: Ino(18),
        },
        Op::Unlink {
            parent: Ino(10),
            name: b"r".to_vec(),
            caller: ME,
            time: t(4),
        },
        Op::Unlink {
            parent: Ino(10),
            name: b"p".to_vec(),
            caller: ME,
            time: t(3),
        },
    ]
}

/// One op of each kind (and the variants that write different keys).
fn cases() -> Vec<(&'static str, Op)> {
    let mut open_create = mknod(10, "new2", 21, FileType::Regular);
    if let Op::Mknod { opened_by, .. } = &mut open_create {
        *opened_by = Some(SID);
    }
    let mut imported = mknod(10, "new4", 23, FileType::Regular);
    if let Op::Mknod { imported: i, .. } = &mut imported {
        *i = Some(Box::new(Imported {
            atime: t(0),
            mtime: t(0),
            ctime: t(0),
            length: 100,
            slice: Some(slice(1100, 100)),
        }));
    }
    let unlink = |dir: u64, name: &str| Op::Unlink {
        parent: Ino(dir),
        name: name.as_bytes().to_vec(),
        caller: ME,
        time: t(5),
    };
    let rename = |a: &str, dir: u64, b: &str| Op::Rename {
        parent: Ino(10),
        name: a.as_bytes().to_vec(),
        new_parent: Ino(dir),
        new_name: b.as_bytes().to_vec(),
        flags: RenameFlags::NONE,
        caller: ME,
        time: t(5),
    };
    let values = SetAttrValues {
        mode: 0o600,
        uid: 0,
        gid: 0,
        atime: t(0),
        mtime: t(0),
        size: 10,
    };
    vec![
        ("mknod", mknod(10, "new", 20, FileType::Regular)),
        ("mknod, opened", open_create),
        ("mknod, symlink", mknod(10, "new3", 22, FileType::Symlink)),
        ("mknod, imported with a slice", imported),
        (
            "link",
            Op::Link {
                ino: Ino(11),
                parent: Ino(14),
                name: b"f2".to_vec(),
                caller: ME,
                time: t(5),
            },
        ),
        ("unlink of a file with data and an xattr", unlink(10, "f")),
        ("unlink of a symlink", unlink(10, "s")),
        ("unlink of an open file", unlink(10, "h")),
        (
            "rmdir",
            Op::Rmdir {
                parent: Ino(1),
                name: b"e".to_vec(),
                caller: ME,
                time: t(5),
            },
        ),
        ("rename across directories", rename("f", 14, "f")),
        ("rename over a file with data", rename("g", 10, "f")),
        (
            "setattr mode",
            Op::SetAttr {
                ino: Ino(11),
                mask: SetAttrMask::MODE,
                values,
                caller: ME,
                time: t(5),
            },
        ),
        (
            "setattr size down",
            Op::SetAttr {
                ino: Ino(11),
                mask: SetAttrMask::SIZE,
                values,
                caller: ME,
                time: t(5),
            },
        ),
        ("write to a new chunk", write(11, 2, 1200)),
        (
            "compact chunk 0",
            Op::CompactChunk {
                ino: Ino(11),
                indx: 0,
                expect: vec![slice(1000, 100)],
                slices: vec![slice(1210, 100)],
            },
        ),
        (
            "compact chunk 1 to nothing",
            Op::CompactChunk {
                ino: Ino(11),
                indx: 1,
                expect: vec![slice(1001, 100)],
                slices: Vec::new(),
            },
        ),
        ("write to chunk 0", write(11, 0, 1201)),
        (
            "truncate",
            Op::Truncate {
                ino: Ino(11),
                length: 0,
                caller: ME,
                time: t(5),
            },
        ),
        (
            "setxattr",
            Op::SetXattr {
                ino: Ino(11),
                name: b"user.b".to_vec(),
                value: b"2".to_vec(),
                flags: XattrFlags::NONE,
                caller: ME,
            },
        ),
        (
            "removexattr",
            Op::RemoveXattr {
                ino: Ino(11),
                name: b"user.a".to_vec(),
                caller: ME,
            },
        ),
        ("clear_pending_file", Op::ClearPendingFile { ino: Ino(16) }),
        ("clear_pending_slice", Op::ClearPendingSlice { id: 1002 }),
        (
            "restore",
            Op::Restore(Box::new(RestoreRecord {
                ino: Ino(30),
                attr: attr(FileType::Regular, 10, 1, 100),
                links: vec![(Ino(10), b"restored".to_vec())],
                target: Vec::new(),
                xattrs: vec![(b"user.r".to_vec(), b"1".to_vec())],
                chunks: vec![(0, vec![slice(1300, 100)]), (1, vec![slice(1301, 100)])],
            })),
        ),
        (
            "restore_pending file",
            Op::RestorePending {
                pending: Pending::File {
                    ino: Ino(31),
                    length: 100,
                },
                chunks: vec![(0, vec![slice(1400, 100)])],
            },
        ),
        (
            "restore_pending slice",
            Op::RestorePending {
                pending: Pending::Slice {
                    id: 1500,
                    size: 100,
                },
                chunks: Vec::new(),
            },
        ),
        (
            "open",
            Op::Open {
                sid: SID,
                ino: Ino(11),
            },
        ),
        (
            "release with locks",
            Op::Release {
                sid: SID,
                inos: vec![(Ino(15), true)],
            },
        ),
        (
            // A damaged openers set of the second inode: the first one's SREM is undone.
            "release of two",
            Op::Release {
                sid: SID,
                inos: vec![(Ino(17), false), (Ino(15), true)],
            },
        ),
        (
            // The sustained inode is deleted: its attributes among the keys planted.
            "release deleting a sustained inode",
            Op::Release {
                sid: SID,
                inos: vec![(Ino(17), false), (Ino(18), false)],
            },
        ),
        (
            "flock",
            Op::Flock {
                ino: Ino(11),
                owner: owner(2),
                typ: LockType::Write,
            },
        ),
        (
            "setlk",
            Op::Setlk {
                ino: Ino(11),
                owner: owner(2),
                typ: LockType::Write,
                start: 0,
                end: 9,
                pid: 2,
            },
        ),
        (
            "heartbeat",
            Op::Heartbeat {
                sid: SID,
                expire: t(2_000_000),
            },
        ),
        (
            "close_session",
            Op::CloseSession {
                sid: SID,
                expired_before: None,
                at_most: None,
            },
        ),
        (
            "claim_cleanup",
            Op::ClaimCleanup {
                now_ms: 1_900_000_000_000,
                every_ms: 1000,
            },
        ),
        (
            "open_session",
            Op::OpenSession {
                info: info(8),
                expire: t(1_000_000),
            },
        ),
    ]
}

/// The ops that make /d (10) and /e (14) quota directories, before the quota cases.
fn quota_prelude() -> Vec<Op> {
    [10, 14]
        .map(|d| Op::SetQuota {
            dir: Ino(d),
            max_space: 0,
            max_inodes: 0,
            subtree: vec![Ino(d)],
        })
        .to_vec()
}

/// Ops that charge, set or remove quotas (run after [`quota_prelude`]), so each writes the
/// quotas hash too.
fn quota_cases() -> Vec<(&'static str, Op)> {
    let rename = |a: &str, dir: u64, b: &str| Op::Rename {
        parent: Ino(10),
        name: a.as_bytes().to_vec(),
        new_parent: Ino(dir),
        new_name: b.as_bytes().to_vec(),
        flags: RenameFlags::NONE,
        caller: ME,
        time: t(5),
    };
    vec![
        ("quota: mknod", mknod(10, "new", 20, FileType::Regular)),
        ("quota: mkdir", mknod(10, "sub", 24, FileType::Directory)),
        ("quota: write", write(11, 2, 1200)),
        (
            "quota: truncate",
            Op::Truncate {
                ino: Ino(11),
                length: 0,
                caller: ME,
                time: t(5),
            },
        ),
        (
            "quota: unlink",
            Op::Unlink {
                parent: Ino(10),
                name: b"f".to_vec(),
                caller: ME,
                time: t(5),
            },
        ),
        ("quota: rename to another quota", rename("f", 14, "f")),
        ("quota: rename out of the quotas", rename("f", 1, "f")),
        (
            "quota: rmdir of a quota's directory",
            Op::Rmdir {
                parent: Ino(1),
                name: b"e".to_vec(),
                caller: ME,
                time: t(5),
            },
        ),
        (
            "quota: set_quota, new",
            Op::SetQuota {
                dir: Ino::ROOT,
                max_space: 1 << 40,
                max_inodes: 1000,
                subtree: vec![Ino::ROOT, Ino(10), Ino(14)],
            },
        ),
        (
            "quota: set_quota, new limits",
            Op::SetQuota {
                dir: Ino(10),
                max_space: 1 << 40,
                max_inodes: 1000,
                subtree: Vec::new(),
            },
        ),
        ("quota: remove_quota", Op::RemoveQuota { dir: Ino(10) }),
    ]
}

/// Every key of the volume (its name without the `{prefix}` tag) → type and `DUMP`.
async fn snapshot(b: &RedisBackend) -> anyhow::Result<BTreeMap<Vec<u8>, (String, Vec<u8>)>> {
    let tag = b.layout().tag().as_bytes().to_vec();
    let mut out = BTreeMap::new();
    let mut cursor = 0u64;
    loop {
        let v = b
            .query(
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(b.layout().pattern())
                    .arg("COUNT")
                    .arg(10_000),
            )
            .await?;
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::FromRedisValue::from_redis_value(v)?;
        for k in keys {
            let typ: String = redis::FromRedisValue::from_redis_value(
                b.query(redis::cmd("TYPE").arg(&k)).await?,
            )?;
            let dump = match b.query(redis::cmd("DUMP").arg(&k)).await? {
                Value::BulkString(d) => d,
                other => anyhow::bail!("DUMP {k:?}: {other:?}"),
            };
            let name = k[tag.len()..].to_vec();
            // The format record differs between volumes (its UUID), and so may the owner of
            // the statistics (a library's made-up name): the latter counts only as there or not.
            if name == b"statsOwner" && typ == "string" {
                out.insert(name, (typ, b"an owner".to_vec()));
            } else if name != b"setting" {
                out.insert(name, (typ, dump));
            }
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    Ok(out)
}

/// A fresh volume in the setup state, then `prelude`.
async fn fresh(url: &str, prelude: &[Op]) -> anyhow::Result<RedisBackend> {
    let b = open(url, &unique_prefix("w")).await?;
    Meta::format(&b, &Setting::new("wrongtype"), false).await?;
    let mut ops = setup();
    ops.extend_from_slice(prelude);
    for (i, r) in b.apply(&ops).await?.into_iter().enumerate() {
        r.with_context(|| format!("setup op {i}"))?;
    }
    Ok(b)
}

fn show(k: &[u8]) -> String {
    String::from_utf8_lossy(k).into_owned()
}

#[tokio::test]
async fn a_wrong_type_key_leaves_no_half_applied_op() -> anyhow::Result<()> {
    let Ok(url) = std::env::var(STANDALONE_ENV) else {
        if meta_conformance::skips_are_failures() {
            panic!("{STANDALONE_ENV} is not set and META_CONFORMANCE_REQUIRE=1");
        }
        eprintln!("SKIP meta-redis wrongtype: {STANDALONE_ENV} is not set");
        return Ok(());
    };
    let mut problems = Vec::new();
    let mut planted = 0;
    let all = cases()
        .into_iter()
        .map(|(name, op)| (name, Vec::new(), op))
        .chain(
            quota_cases()
                .into_iter()
                .map(|(name, op)| (name, quota_prelude(), op)),
        );
    for (name, prelude, op) in all {
        // The clean run: which keys the op writes, and the state it leaves.
        let b = fresh(&url, &prelude).await?;
        let before = snapshot(&b).await?;
        let r = b.apply(std::slice::from_ref(&op)).await?;
        ensure!(r[0].is_ok(), "{name} on the clean state: {:?}", r[0]);
        let clean = snapshot(&b).await?;
        b.erase().await?;
        let written: Vec<Vec<u8>> = before
            .keys()
            .chain(clean.keys())
            .filter(|k| before.get(*k) != clean.get(*k))
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        ensure!(!written.is_empty(), "{name} wrote nothing");
        for key in written {
            let b = fresh(&url, &prelude).await?;
            let full = [b.layout().tag().as_bytes(), &key].concat();
            let is_string = before
                .get(&key)
                .or_else(|| clean.get(&key))
                .is_some_and(|(typ, _)| typ == "string");
            b.query(redis::cmd("DEL").arg(&full)).await?;
            if is_string {
                b.query(redis::cmd("HSET").arg(&full).arg("x").arg("y"))
                    .await?;
            } else {
                b.query(redis::cmd("SET").arg(&full).arg("garbage")).await?;
            }
            if key == b"dirstats" || key == b"quotas" {
                // What the layout asks of anything but the library that writes the
                // statistics and quotas hashes: else the library would go on from the
                // records it kept, not look at the planted key.
                b.query(redis::cmd("DEL").arg(b.layout().stats_owner()))
                    .await?;
            }
            planted += 1;
            let seeded = snapshot(&b).await?;
            let r = b.apply(std::slice::from_ref(&op)).await;
            let after = snapshot(&b).await?;
            match r.as_ref().map(|v| v[0].is_ok()) {
                Ok(true) => {
                    // Succeeded: the same effects as on the clean volume, the planted key
                    // aside.
                    let differs: Vec<String> = after
                        .keys()
                        .chain(clean.keys())
                        .filter(|k| **k != key && after.get(*k) != clean.get(*k))
                        .map(|k| show(k))
                        .collect();
                    if !differs.is_empty() {
                        problems.push(format!(
                            "{name}, {} planted: succeeded with other effects on {differs:?}",
                            show(&key)
                        ));
                    }
                }
                _ => {
                    if after != seeded {
                        let changed: Vec<String> = after
                            .keys()
                            .chain(seeded.keys())
                            .filter(|k| after.get(*k) != seeded.get(*k))
                            .map(|k| show(k))
                            .collect();
                        problems.push(format!(
                            "{name}, {} planted: failed ({:?}) but changed {changed:?}",
                            show(&key),
                            r.map(|mut v| v.remove(0).err())
                        ));
                    }
                }
            }
            b.erase().await?;
        }
    }
    eprintln!("{planted} wrong-type keys planted");
    ensure!(
        problems.is_empty(),
        "{} half-applied op(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
    Ok(())
}

/// A counter holding an integer too large for `INCRBY` fails the op that would add to it, in
/// its check phase: nothing else is written.
#[tokio::test]
async fn an_out_of_range_counter_fails_before_any_write() -> anyhow::Result<()> {
    let Ok(url) = std::env::var(STANDALONE_ENV) else {
        if meta_conformance::skips_are_failures() {
            panic!("{STANDALONE_ENV} is not set and META_CONFORMANCE_REQUIRE=1");
        }
        eprintln!("SKIP meta-redis wrongtype: {STANDALONE_ENV} is not set");
        return Ok(());
    };
    for counter in ["usedSpace", "totalInodes"] {
        let b = fresh(&url, &[]).await?;
        let key = [b.layout().tag(), counter].concat();
        b.query(redis::cmd("SET").arg(&key).arg("99999999999999999999"))
            .await?;
        let seeded = snapshot(&b).await?;
        let r = b.apply(&[mknod(10, "new", 20, FileType::Regular)]).await?;
        ensure!(
            r[0].as_ref().err().map(|e| e.kind()) == Some(meta_core::ErrorKind::Corrupted),
            "{counter}: {r:?}"
        );
        ensure!(
            snapshot(&b).await? == seeded,
            "{counter}: the failed create wrote"
        );
        b.erase().await?;
    }
    Ok(())
}
