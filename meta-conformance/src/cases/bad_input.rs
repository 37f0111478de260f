//! Bad input reaching the backend directly (raw `Op`s and reads): names, inode 0, missing
//! inodes, invalid flags, and stored garbage — always an error kind, never a panic.

use meta_core::Counter;

use super::prelude::*;
use crate::RawTarget;

const BAD_NAMES: [(&[u8], ErrorKind); 6] = [
    (b"", InvalidArgument),
    (b".", InvalidArgument),
    (b"..", InvalidArgument),
    (b"a/b", InvalidArgument),
    (b"a\0b", InvalidArgument),
    (&[b'x'; 256], NameTooLong),
];

/// Name rules enforced by the backend itself for every op that takes a name (mknod, link,
/// unlink, rmdir, rename source and destination) and by lookup: empty, `.`, `..`, `/`, NUL
/// → EINVAL; 256 bytes → ENAMETOOLONG; 255 bytes and non-UTF-8 bytes are fine.
pub async fn names(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let b = ctx.backend();
    let (f, _) = m.create(ME, ROOT, b"f", 0o644).await?;
    m.mkdir(ME, ROOT, b"d", 0o755).await?;
    for (bad, kind) in BAD_NAMES {
        let time = t(0, 0);
        let ops = vec![
            mknod_op(ROOT, bad, m.new_ino().await?, FileType::Regular, time),
            Op::Link {
                caller: Caller::ROOT,
                ino: f,
                parent: ROOT,
                name: bad.to_vec(),
                time,
            },
            Op::Unlink {
                parent: ROOT,
                name: bad.to_vec(),
                caller: ME,
                time,
            },
            Op::Rmdir {
                parent: ROOT,
                name: bad.to_vec(),
                caller: ME,
                time,
            },
            Op::Rename {
                parent: ROOT,
                name: bad.to_vec(),
                new_parent: ROOT,
                new_name: b"ok".to_vec(),
                flags: RenameFlags::NONE,
                caller: ME,
                time,
            },
            Op::Rename {
                parent: ROOT,
                name: b"f".to_vec(),
                new_parent: ROOT,
                new_name: bad.to_vec(),
                flags: RenameFlags::NONE,
                caller: ME,
                time,
            },
        ];
        for (op, r) in ops.iter().zip(apply(&*b, &ops).await?) {
            expect_err(r, kind, format!("{} with name {bad:?}", op.name()))?;
        }
        if bad != b"." && bad != b".." {
            expect_err(b.lookup(ROOT, bad).await, kind, format!("lookup {bad:?}"))?;
        }
    }
    let ok_names: [&[u8]; 3] = [&[b'y'; 255], &[0xff, 0xfe, 0x80], b" leading space"];
    for name in ok_names {
        let r = apply1(
            &*b,
            mknod_op(ROOT, name, m.new_ino().await?, FileType::Regular, t(0, 0)),
        )
        .await?;
        ok(r, format!("mknod {name:?}"))?;
        ensure!(b.lookup(ROOT, name).await.is_ok(), "lookup {name:?}");
    }
    ensure!(
        crate::util::names(&*b, ROOT).await?.len() == 5,
        "refused names left entries"
    );
    counters_exact(&*b, "bad names").await?;
    fsck_clean(&*b, "bad names").await
}

/// Inode 0 is never valid: every op naming it as inode or parent, and every read of it,
/// fails with EINVAL; creating inode 0 or the root (1) is EINVAL too.
pub async fn inode_zero(ctx: &TestCtx) -> Result<()> {
    let b = ctx.backend();
    let z = Ino::ZERO;
    let time = t(0, 0);
    let ops = vec![
        mknod_op(z, b"a", Ino(1_000_000), FileType::Regular, time),
        mknod_op(ROOT, b"a", z, FileType::Regular, time),
        mknod_op(ROOT, b"a", ROOT, FileType::Directory, time),
        Op::Link {
            caller: Caller::ROOT,
            ino: z,
            parent: ROOT,
            name: b"a".to_vec(),
            time,
        },
        Op::Unlink {
            parent: z,
            name: b"a".to_vec(),
            caller: ME,
            time,
        },
        Op::Rmdir {
            parent: z,
            name: b"a".to_vec(),
            caller: ME,
            time,
        },
        Op::Rename {
            parent: z,
            name: b"a".to_vec(),
            new_parent: ROOT,
            new_name: b"b".to_vec(),
            flags: RenameFlags::NONE,
            caller: ME,
            time,
        },
        Op::SetAttr {
            caller: Caller::ROOT,
            ino: z,
            mask: SetAttrMask::MODE,
            values: SetAttrValues::default(),
            time,
        },
        Op::Write {
            caller: Caller::ROOT,
            ino: z,
            indx: 0,
            slice: slice(1, 0, 1),
            time,
        },
        Op::Truncate {
            caller: Caller::ROOT,
            ino: z,
            length: 0,
            time,
        },
        Op::SetXattr {
            caller: Caller::ROOT,
            ino: z,
            name: b"user.a".to_vec(),
            value: Vec::new(),
            flags: XattrFlags::NONE,
        },
        Op::RemoveXattr {
            caller: Caller::ROOT,
            ino: z,
            name: b"user.a".to_vec(),
        },
    ];
    for (op, r) in ops.iter().zip(apply(&*b, &ops).await?) {
        expect_err(r, InvalidArgument, format!("{} with inode 0", op.name()))?;
    }
    expect_err(b.get_attr(z).await, InvalidArgument, "getattr 0")?;
    expect_err(b.lookup(z, b"a").await, InvalidArgument, "lookup in 0")?;
    expect_err(
        b.read_dir(z, None, 10, false).await,
        InvalidArgument,
        "readdir 0",
    )?;
    expect_err(b.read_link(z).await, InvalidArgument, "readlink 0")?;
    expect_err(b.list_xattr(z).await, InvalidArgument, "listxattr 0")?;
    expect_err(
        b.get_xattr(z, b"user.a").await,
        InvalidArgument,
        "getxattr 0",
    )?;
    ensure!(
        crate::util::names(&*b, ROOT).await?.is_empty(),
        "ops on inode 0 left entries"
    );
    counters_exact(&*b, "inode 0").await
}

/// Ops on an inode that does not exist fail with ENOENT and change nothing; creating an
/// inode number already in use is EEXIST (even under a free name); clearing a record that
/// is not pending is ENOENT.
pub async fn missing_inode(ctx: &TestCtx) -> Result<()> {
    let b = ctx.backend();
    let m = ctx.meta();
    let (f, _) = m.create(ME, ROOT, b"f", 0o644).await?;
    let x = MISSING;
    let time = t(0, 0);
    let ops = vec![
        Op::Link {
            caller: Caller::ROOT,
            ino: x,
            parent: ROOT,
            name: b"a".to_vec(),
            time,
        },
        Op::SetAttr {
            caller: Caller::ROOT,
            ino: x,
            mask: SetAttrMask::MODE,
            values: SetAttrValues::default(),
            time,
        },
        Op::Write {
            caller: Caller::ROOT,
            ino: x,
            indx: 0,
            slice: slice(1, 0, 1),
            time,
        },
        Op::Truncate {
            caller: Caller::ROOT,
            ino: x,
            length: 0,
            time,
        },
        Op::SetXattr {
            caller: Caller::ROOT,
            ino: x,
            name: b"user.a".to_vec(),
            value: Vec::new(),
            flags: XattrFlags::NONE,
        },
        Op::RemoveXattr {
            caller: Caller::ROOT,
            ino: x,
            name: b"user.a".to_vec(),
        },
        mknod_op(x, b"a", m.new_ino().await?, FileType::Regular, time),
        Op::ClearPendingFile { ino: f },
        Op::ClearPendingSlice { id: 123_456_789 },
    ];
    for (op, r) in ops.iter().zip(apply(&*b, &ops).await?) {
        expect_err(r, NotFound, format!("{} of a missing inode", op.name()))?;
    }
    let r = apply1(&*b, mknod_op(ROOT, b"free", f, FileType::Regular, time)).await?;
    expect_err(r, AlreadyExists, "mknod with an inode number in use")?;
    expect_err(
        b.lookup(ROOT, b"free").await,
        NotFound,
        "the refused mknod's entry",
    )?;
    ensure!(
        b.get_attr(f).await?.nlink == 1,
        "the existing inode was touched"
    );
    expect_err(b.get_attr(x).await, NotFound, "getattr")?;
    expect_err(b.read_link(x).await, NotFound, "readlink")?;
    expect_err(b.list_xattr(x).await, NotFound, "listxattr")?;
    expect_err(b.read_dir(x, None, 1, false).await, NotFound, "readdir")?;
    counters_exact(&*b, "missing inodes").await?;
    fsck_clean(&*b, "missing inodes").await
}

/// Invalid flags and values are EINVAL: unknown setattr mask bits, setxattr flags 3 or
/// unknown bits, rename flags 3 or unknown bits, a target on a non-symlink, a slice larger
/// than its object, a write or truncate past the maximum file length.
pub async fn invalid_flags(ctx: &TestCtx) -> Result<()> {
    let b = ctx.backend();
    let m = ctx.meta();
    let (f, _) = m.create(ME, ROOT, b"f", 0o644).await?;
    m.create(ME, ROOT, b"g", 0o644).await?;
    let time = t(0, 0);
    let mut with_target = mknod_op(ROOT, b"h", m.new_ino().await?, FileType::Regular, time);
    if let Op::Mknod { target, .. } = &mut with_target {
        *target = b"nope".to_vec();
    }
    let rename = |flags| Op::Rename {
        parent: ROOT,
        name: b"f".to_vec(),
        new_parent: ROOT,
        new_name: b"g".to_vec(),
        flags,
        caller: ME,
        time,
    };
    let ops = vec![
        Op::SetAttr {
            caller: Caller::ROOT,
            ino: f,
            mask: SetAttrMask(0x100),
            values: SetAttrValues::default(),
            time,
        },
        Op::SetXattr {
            caller: Caller::ROOT,
            ino: f,
            name: b"user.a".to_vec(),
            value: Vec::new(),
            flags: XattrFlags(3),
        },
        Op::SetXattr {
            caller: Caller::ROOT,
            ino: f,
            name: b"user.a".to_vec(),
            value: Vec::new(),
            flags: XattrFlags(4),
        },
        rename(RenameFlags(3)),
        rename(RenameFlags(8)),
        with_target,
        Op::Write {
            caller: Caller::ROOT,
            ino: f,
            indx: 0,
            slice: Slice {
                pos: 0,
                id: 5,
                size: 10,
                off: 5,
                len: 6,
            },
            time,
        },
        Op::Write {
            caller: Caller::ROOT,
            ino: f,
            indx: u32::MAX,
            slice: slice(5, 0, 10),
            time,
        },
        Op::Truncate {
            caller: Caller::ROOT,
            ino: f,
            length: u64::MAX,
            time,
        },
        Op::SetAttr {
            caller: Caller::ROOT,
            ino: f,
            mask: SetAttrMask::SIZE,
            values: SetAttrValues {
                size: u64::MAX,
                ..Default::default()
            },
            time,
        },
    ];
    for (op, r) in ops.iter().zip(apply(&*b, &ops).await?) {
        expect_err(r, InvalidArgument, format!("{op:?}"))?;
    }
    ensure!(
        b.get_attr(f).await?.length == 0 && b.read_chunk(f, 0).await?.is_empty(),
        "f changed"
    );
    ensure!(b.list_xattr(f).await?.is_empty(), "f got xattrs");
    counters_exact(&*b, "invalid flags").await?;
    fsck_clean(&*b, "invalid flags").await
}

const GARBAGE: &[u8] = b"\xff\x00garbage\x01";

/// A stored record that cannot be decoded (planted by the factory, where it can) is a
/// `Corrupted` error (EIO) for every read and op that touches it — never a panic, never
/// silently wrong data — and ops in the same batch that do not touch it still succeed.
pub async fn corrupted_records(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let b = ctx.backend();
    let (d, _) = m.mkdir(ME, ROOT, b"d", 0o755).await?;
    let (fa, _) = m.create(ME, d, b"attr", 0o644).await?;
    let (_, _) = m.create(ME, d, b"entry", 0o644).await?;
    let (fc, _) = m.create(ME, ROOT, b"chunk", 0o644).await?;
    m.write(Caller::ROOT, fc, 0, slice(m.new_slice_id().await?, 0, 10))
        .await?;
    let (l, _) = m.symlink(ME, ROOT, b"link", b"target").await?;
    let (fx, _) = m.create(ME, ROOT, b"xattr", 0o644).await?;
    m.setxattr(Caller::ROOT, fx, b"user.a", b"1", XattrFlags::NONE)
        .await?;
    let targets = [
        RawTarget::Attr(fa),
        RawTarget::Entry(d, b"entry".to_vec()),
        RawTarget::Chunk(fc, 0),
        RawTarget::Symlink(l),
        RawTarget::Xattr(fx, b"user.a".to_vec()),
    ];
    for target in &targets {
        if !ctx.plant_garbage(target, GARBAGE).await? {
            eprintln!(
                "NOTE conformance bad_input::corrupted_records on {}: the factory cannot plant raw records; case not applicable",
                ctx.backend_name()
            );
            return Ok(());
        }
    }
    let c = |r: meta_core::Result<_>, what: &str| -> Result<()> {
        match r {
            Err(e) if e.kind() == Corrupted => Ok(()),
            Err(e) => bail!("{what}: expected Corrupted, got {:?}: {e}", e.kind()),
            Ok(()) => bail!("{what}: succeeded on a garbage record"),
        }
    };
    c(b.get_attr(fa).await.map(drop), "getattr of a garbage attr")?;
    c(
        b.lookup(d, b"attr").await.map(drop),
        "lookup of an inode with a garbage attr",
    )?;
    c(
        b.lookup(d, b"entry").await.map(drop),
        "lookup of a garbage entry",
    )?;
    c(
        b.read_dir(d, None, 100, true).await.map(drop),
        "readdirplus over garbage",
    )?;
    c(
        b.read_chunk(fc, 0).await.map(drop),
        "read of a garbage chunk",
    )?;
    c(
        b.read_link(l).await.map(drop),
        "readlink of a garbage target",
    )?;
    c(
        b.get_xattr(fx, b"user.a").await.map(drop),
        "getxattr of a garbage value",
    )?;
    // Ops: the one touching garbage fails with Corrupted, its neighbours succeed.
    let time = t(0, 0);
    let ops = vec![
        mknod_op(ROOT, b"n1", m.new_ino().await?, FileType::Directory, time),
        Op::SetAttr {
            caller: Caller::ROOT,
            ino: fa,
            mask: SetAttrMask::MODE,
            values: SetAttrValues::default(),
            time,
        },
        Op::SetXattr {
            caller: Caller::ROOT,
            ino: ROOT,
            name: b"user.ok".to_vec(),
            value: b"1".to_vec(),
            flags: XattrFlags::NONE,
        },
        Op::Write {
            caller: Caller::ROOT,
            ino: fc,
            indx: 0,
            slice: slice(m.new_slice_id().await?, 0, 5),
            time,
        },
        Op::Unlink {
            parent: d,
            name: b"entry".to_vec(),
            caller: ME,
            time,
        },
    ];
    let res = apply(&*b, &ops).await?;
    for k in [0, 2] {
        ensure!(
            res[k].is_ok(),
            "{} away from the garbage failed: {:?}",
            ops[k].name(),
            res[k]
        );
    }
    for k in [1, 3, 4] {
        match &res[k] {
            Err(e) if e.kind() == Corrupted => {}
            other => bail!(
                "{} touching garbage: expected Corrupted, got {other:?}",
                ops[k].name()
            ),
        }
    }
    // A garbage counter.
    ensure!(
        ctx.plant_garbage(&RawTarget::Counter(Counter::UsedSpace), GARBAGE)
            .await?,
        "the factory planted garbage before but not into a counter"
    );
    c(
        b.get_counter(Counter::UsedSpace).await.map(drop),
        "a garbage counter",
    )?;
    c(b.statfs().await.map(drop), "statfs over a garbage counter")?;
    // fsck and dump report, never panic.
    match meta_core::fsck::fsck(&*b).await {
        Ok(rep) => ensure!(!rep.is_clean(), "fsck found a volume with garbage clean"),
        Err(e) => ensure!(e.kind() == Corrupted, "fsck failed with {e}"),
    }
    ensure!(
        dump_text(&*b).await.is_err(),
        "dump of a volume with garbage succeeded"
    );
    Ok(())
}

/// A garbage format record: `load` (and so `Meta::open`) fails with `Corrupted`, not a
/// panic and not a fresh volume.
pub async fn corrupted_setting(ctx: &TestCtx) -> Result<()> {
    if !ctx.plant_garbage(&RawTarget::Setting, GARBAGE).await? {
        eprintln!(
            "NOTE conformance bad_input::corrupted_setting on {}: the factory cannot plant raw records; case not applicable",
            ctx.backend_name()
        );
        return Ok(());
    }
    let b = ctx.open_backend().await?;
    match b.load().await {
        Err(e) if e.kind() == Corrupted => {}
        other => bail!("load of a garbage format record: expected Corrupted, got {other:?}"),
    }
    match Meta::open(b, MetaOptions::default(), None).await {
        Err(e) if e.kind() == Corrupted => Ok(()),
        Err(e) => bail!("Meta::open over a garbage format record: {e}"),
        Ok(_) => bail!("Meta::open over a garbage format record succeeded"),
    }
}

/// `load` and `Op::Restore` store what they are given, so they check it first: a mode above
/// 0o7777, nanoseconds of 10^9 or more, a length past the maximum file length, a slice past
/// its chunk or its object, chunks on a directory, and a pending file past the maximum length
/// are `InvalidArgument`, and nothing is stored.
pub async fn out_of_range_records(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let be = ctx.backend();
    let file = {
        let mut a = m.getattr(ROOT).await?;
        a.typ = FileType::Regular;
        a.mode = 0o644;
        a.nlink = 1;
        a.length = 10;
        a
    };
    let ok_slice = Slice {
        pos: 0,
        id: 77,
        size: 10,
        off: 0,
        len: 10,
    };
    let record = |name: &str, attr: Attr, chunks: Vec<(u32, Vec<Slice>)>| {
        Op::Restore(Box::new(meta_core::RestoreRecord {
            ino: Ino(900_001),
            attr,
            links: vec![(ROOT, name.as_bytes().to_vec())],
            target: Vec::new(),
            xattrs: Vec::new(),
            chunks,
        }))
    };
    let mut cases = vec![
        (
            "mode",
            record(
                "r1",
                Attr {
                    mode: 0o17777,
                    ..file
                },
                Vec::new(),
            ),
        ),
        (
            "nanoseconds",
            record(
                "r2",
                Attr {
                    mtime: Timespec {
                        sec: 1,
                        nsec: 1_000_000_000,
                    },
                    ..file
                },
                Vec::new(),
            ),
        ),
        (
            "length",
            record(
                "r3",
                Attr {
                    length: meta_core::types::MAX_FILE_LEN + 1,
                    ..file
                },
                Vec::new(),
            ),
        ),
        (
            "slice past the chunk",
            record(
                "r4",
                file,
                vec![(
                    0,
                    vec![Slice {
                        pos: (meta_core::CHUNK_SIZE - 5) as u32,
                        ..ok_slice
                    }],
                )],
            ),
        ),
        (
            "slice past its object",
            record("r5", file, vec![(0, vec![Slice { off: 5, ..ok_slice }])]),
        ),
        (
            "slice past the maximum length",
            record("r6", file, vec![(u32::MAX, vec![ok_slice])]),
        ),
        (
            "chunks on a directory",
            record(
                "r7",
                Attr {
                    typ: FileType::Directory,
                    nlink: 2,
                    length: 4096,
                    ..file
                },
                vec![(0, vec![ok_slice])],
            ),
        ),
    ];
    cases.push((
        "pending file length",
        Op::RestorePending {
            pending: Pending::File {
                ino: Ino(900_002),
                length: u64::MAX,
            },
            chunks: Vec::new(),
        },
    ));
    let before = be.statfs().await?;
    for (what, op) in cases {
        expect_err(apply1(&*be, op).await?, InvalidArgument, what)?;
    }
    for name in ["r1", "r2", "r3", "r4", "r5", "r6", "r7"] {
        expect_err(m.lookup(ROOT, name.as_bytes()).await, NotFound, name)?;
    }
    ensure!(
        be.statfs().await? == before,
        "a refused record changed statfs"
    );
    ensure!(
        pending_sorted(&*be).await?.is_empty(),
        "a refused pending record was stored"
    );
    fsck_clean(&*be, "after refused records").await
}
