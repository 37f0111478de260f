//! The batch contract of `Backend::apply` and `Meta::apply_batch`: one result per op, in
//! order; op *i* sees ops < *i*; each op atomic and independent.

use meta_core::RestoreRecord;

use super::prelude::*;

fn kinds(results: &[meta_core::Result<OpOutput>]) -> Vec<Option<ErrorKind>> {
    results.iter().map(kind_of).collect()
}

/// A mixed batch of seven ops (successes and failures interleaved) gives exactly seven
/// results, each at its op's position with that op's outcome — through `Backend::apply`
/// and through `Meta::apply_batch`.
pub async fn positional_results(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let b = ctx.backend();
    for (round, via_meta) in [(0, false), (1, true)] {
        let name = |s: &str| format!("{s}{round}").into_bytes();
        let (i1, i2, i3) = (m.new_ino().await?, m.new_ino().await?, m.new_ino().await?);
        let i4 = m.new_ino().await?;
        let ops = vec![
            mknod_op(ROOT, &name("a"), i1, FileType::Regular, t(1, 0)),
            mknod_op(ROOT, &name("a"), i2, FileType::Regular, t(2, 0)),
            Op::Unlink {
                parent: ROOT,
                name: name("missing"),
                caller: ME,
                time: t(3, 0),
            },
            mknod_op(ROOT, &name("d"), i3, FileType::Directory, t(4, 0)),
            Op::Rmdir {
                parent: ROOT,
                name: name("a"),
                caller: ME,
                time: t(5, 0),
            },
            Op::SetAttr {
                caller: Caller::ROOT,
                ino: i1,
                mask: SetAttrMask::MODE,
                values: SetAttrValues {
                    mode: 0o600,
                    ..Default::default()
                },
                time: t(6, 0),
            },
            mknod_op(i1, b"x", i4, FileType::Regular, t(7, 0)),
        ];
        let results = if via_meta {
            m.apply_batch(ops.clone()).await
        } else {
            apply(&*b, &ops).await?
        };
        let how = if via_meta {
            "Meta::apply_batch"
        } else {
            "Backend::apply"
        };
        ensure!(
            results.len() == 7,
            "{how}: {} results for 7 ops",
            results.len()
        );
        let want = vec![
            None,
            Some(AlreadyExists),
            Some(NotFound),
            None,
            Some(NotADirectory),
            None,
            Some(NotADirectory),
        ];
        ensure!(
            kinds(&results) == want,
            "{how}: result kinds {:?}, expected {want:?}",
            kinds(&results)
        );
        ensure!(
            results[0].as_ref().ok().and_then(OpOutput::ino) == Some(i1),
            "{how}: result 0"
        );
        ensure!(
            results[3].as_ref().ok().and_then(OpOutput::ino) == Some(i3),
            "{how}: result 3"
        );
        ensure!(
            results[5]
                .as_ref()
                .ok()
                .and_then(OpOutput::attr)
                .map(|a| a.mode)
                == Some(0o600),
            "{how}: result 5"
        );
        expect_err(
            m.getattr(i2).await,
            NotFound,
            format!("{how}: the inode of the failed create"),
        )?;
        expect_err(
            m.getattr(i4).await,
            NotFound,
            format!("{how}: the inode of the last op"),
        )?;
    }
    counters_exact(&*b, "positional results").await?;
    fsck_clean(&*b, "positional results").await
}

/// Op *i* sees the effects of ops < *i* in the same batch: mkdir then create inside, write,
/// link, rename and unlink of what was just created, create → unlink → create of one name,
/// and an emptied directory removed — all in one `apply`.
pub async fn order_and_dependencies(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let b = ctx.backend();
    let mut ino = Vec::new();
    for _ in 0..6 {
        ino.push(m.new_ino().await?);
    }
    let (d, f, z, w, e, x) = (ino[0], ino[1], ino[2], ino[3], ino[4], ino[5]);
    let sid = m.new_slice_id().await?;
    let unlink = |parent, name: &[u8]| Op::Unlink {
        parent,
        name: name.to_vec(),
        caller: ME,
        time: t(50, 0),
    };
    let ops = vec![
        mknod_op(ROOT, b"d", d, FileType::Directory, t(1, 0)),
        mknod_op(d, b"f", f, FileType::Regular, t(2, 0)),
        Op::Write {
            caller: Caller::ROOT,
            ino: f,
            indx: 0,
            slice: slice(sid, 0, 100),
            time: t(3, 0),
        },
        Op::Link {
            caller: Caller::ROOT,
            ino: f,
            parent: ROOT,
            name: b"l".to_vec(),
            time: t(4, 0),
        },
        Op::Rename {
            parent: d,
            name: b"f".to_vec(),
            new_parent: d,
            new_name: b"g".to_vec(),
            flags: RenameFlags::NONE,
            caller: ME,
            time: t(5, 0),
        },
        unlink(ROOT, b"l"),
        Op::SetXattr {
            caller: Caller::ROOT,
            ino: f,
            name: b"user.k".to_vec(),
            value: b"v".to_vec(),
            flags: XattrFlags::CREATE,
        },
        mknod_op(ROOT, b"tmp", z, FileType::Regular, t(6, 0)),
        unlink(ROOT, b"tmp"),
        mknod_op(ROOT, b"tmp", w, FileType::Regular, t(7, 0)),
        mknod_op(ROOT, b"e", e, FileType::Directory, t(8, 0)),
        mknod_op(e, b"x", x, FileType::Fifo, t(9, 0)),
        unlink(e, b"x"),
        Op::Rmdir {
            parent: ROOT,
            name: b"e".to_vec(),
            caller: ME,
            time: t(10, 0),
        },
    ];
    let results = apply(&*b, &ops).await?;
    for (i, (op, r)) in ops.iter().zip(&results).enumerate() {
        ensure!(r.is_ok(), "op {i} ({}) failed: {:?}", op.name(), r);
    }
    let (g, ga) = m.lookup(d, b"g").await?;
    ensure!(g == f && ga.nlink == 1 && ga.length == 100, "d/g: {ga:?}");
    ensure!(
        m.getxattr(f, b"user.k").await? == b"v",
        "xattr set in the batch"
    );
    expect_err(m.lookup(ROOT, b"l").await, NotFound, "root/l")?;
    expect_err(m.lookup(d, b"f").await, NotFound, "d/f")?;
    ensure!(
        m.lookup(ROOT, b"tmp").await?.0 == w,
        "root/tmp is the second create"
    );
    expect_err(m.getattr(z).await, NotFound, "the first tmp")?;
    expect_err(m.getattr(e).await, NotFound, "the removed dir")?;
    ensure!(m.getattr(ROOT).await?.nlink == 3, "root nlink");
    counters_exact(&*b, "dependent batch").await?;
    fsck_clean(&*b, "dependent batch").await
}

/// A failing op in the middle of a batch leaves no trace and does not disturb its
/// neighbours: volume A gets `[ok, bad, ok, bad, ok, bad, ok]`, volume B (same format
/// record) only the good ops; the good ops' results and the two volumes' dumps are equal.
pub async fn failing_op_leaves_no_trace(ctx: &TestCtx) -> Result<()> {
    let setting = ctx.setting().clone();
    let va = ctx.extra_volume(Some(&setting)).await?;
    let vb = ctx.extra_volume(Some(&setting)).await?;
    let (a, b) = (va.backend(), vb.backend());
    let ra = a.reserve_ids(meta_core::IdKind::Inode, 100).await?;
    let rb = b.reserve_ids(meta_core::IdKind::Inode, 100).await?;
    ensure!(
        ra == rb,
        "fresh volumes reserved different ranges: {ra:?} {rb:?}"
    );
    let ca = a.reserve_ids(meta_core::IdKind::Chunk, 100).await?;
    let cb = b.reserve_ids(meta_core::IdKind::Chunk, 100).await?;
    ensure!(
        ca == cb,
        "fresh volumes reserved different chunk ranges: {ca:?} {cb:?}"
    );
    let i = |k: u64| Ino(ra.start + k);
    let root_times = Op::SetAttr {
        caller: Caller::ROOT,
        ino: ROOT,
        mask: SetAttrMask::ATIME | SetAttrMask::MTIME,
        values: SetAttrValues {
            atime: t(0, 0),
            mtime: t(0, 0),
            ..Default::default()
        },
        time: t(0, 0),
    };
    let good = vec![
        root_times,
        mknod_op(ROOT, b"d", i(0), FileType::Directory, t(1, 0)),
        mknod_op(i(0), b"f", i(1), FileType::Regular, t(2, 0)),
        Op::Write {
            caller: Caller::ROOT,
            ino: i(1),
            indx: 0,
            slice: slice(ca.start, 0, 10),
            time: t(3, 0),
        },
        mknod_op(ROOT, b"g", i(2), FileType::Symlink, t(4, 0)),
    ];
    let bad = [
        Op::Rename {
            parent: ROOT,
            name: b"d".to_vec(),
            new_parent: i(0),
            new_name: b"x".to_vec(),
            flags: RenameFlags::NONE,
            caller: ME,
            time: t(10, 0),
        },
        mknod_op(ROOT, b"other", i(1), FileType::Regular, t(11, 0)),
        Op::Restore(Box::new(RestoreRecord {
            ino: i(3),
            attr: ctx.meta().getattr(ROOT).await.map(|mut a| {
                a.typ = FileType::Regular;
                a.nlink = 1;
                a
            })?,
            links: vec![(ROOT, b"fine".to_vec()), (ROOT, b"bad/name".to_vec())],
            target: Vec::new(),
            xattrs: Vec::new(),
            chunks: Vec::new(),
        })),
    ];
    let mixed = vec![
        good[0].clone(),
        good[1].clone(),
        good[2].clone(),
        bad[0].clone(),
        good[3].clone(),
        bad[1].clone(),
        bad[2].clone(),
        good[4].clone(),
    ];
    let res_a = apply(&*a, &mixed).await?;
    let res_b = apply(&*b, &good).await?;
    let want = [
        None,
        None,
        None,
        Some(InvalidArgument),
        None,
        Some(AlreadyExists),
        Some(InvalidArgument),
        None,
    ];
    ensure!(
        kinds(&res_a) == want,
        "mixed batch kinds {:?}, expected {want:?}",
        kinds(&res_a)
    );
    let good_a: Vec<_> = [0, 1, 2, 4, 7]
        .iter()
        .map(|&k| res_a[k].clone().ok())
        .collect();
    let good_b: Vec<_> = res_b.iter().map(|r| r.clone().ok()).collect();
    ensure!(
        good_a == good_b,
        "the good ops' outputs differ:\n  {good_a:?}\n  {good_b:?}"
    );
    same_text(
        &dump_text(&*a).await?,
        &dump_text(&*b).await?,
        "with vs without the bad ops",
    )?;
    ensure!(
        pending_sorted(&*a).await? == pending_sorted(&*b).await?,
        "pending differs"
    );
    ensure!(a.statfs().await? == b.statfs().await?, "statfs differs");
    fsck_clean(&*a, "volume with failed ops").await?;
    drop((a, b));
    va.close().await?;
    vb.close().await
}

/// An op that fails after writing part of its records (an `Op::Restore` whose second link
/// or an xattr is invalid) is rolled back completely, while its neighbours in the batch
/// take effect.
pub async fn partial_writes_rolled_back(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let b = ctx.backend();
    m.create(ME, ROOT, b"taken", 0o644).await?;
    let template = m.getattr(m.lookup(ROOT, b"taken").await?.0).await?;
    let restore = |ino: Ino, links: Vec<(Ino, Vec<u8>)>, xattrs: Vec<(Vec<u8>, Vec<u8>)>| {
        Op::Restore(Box::new(RestoreRecord {
            ino,
            attr: Attr {
                nlink: links.len() as u32,
                ..template
            },
            links,
            target: Vec::new(),
            xattrs,
            chunks: vec![(0, vec![slice(77, 0, 10)])],
        }))
    };
    let before_stat = m.statfs().await?;
    let (r1, r2, r3) = (m.new_ino().await?, m.new_ino().await?, m.new_ino().await?);
    let (n1, n2) = (m.new_ino().await?, m.new_ino().await?);
    let ops = vec![
        mknod_op(ROOT, b"n1", n1, FileType::Regular, t(1, 0)),
        restore(
            r1,
            vec![(ROOT, b"r1".to_vec()), (ROOT, b"bad/name".to_vec())],
            vec![],
        ),
        restore(
            r2,
            vec![(ROOT, b"r2".to_vec()), (ROOT, b"taken".to_vec())],
            vec![],
        ),
        restore(
            r3,
            vec![(ROOT, b"r3".to_vec())],
            vec![
                (b"user.ok".to_vec(), b"1".to_vec()),
                (Vec::new(), b"x".to_vec()),
            ],
        ),
        mknod_op(ROOT, b"n2", n2, FileType::Regular, t(2, 0)),
    ];
    let res = apply(&*b, &ops).await?;
    let want = [
        None,
        Some(InvalidArgument),
        Some(AlreadyExists),
        Some(OutOfRange),
        None,
    ];
    ensure!(
        kinds(&res) == want,
        "kinds {:?}, expected {want:?}",
        kinds(&res)
    );
    for (ino, name) in [(r1, &b"r1"[..]), (r2, b"r2"), (r3, b"r3")] {
        expect_err(
            m.lookup(ROOT, name).await,
            NotFound,
            "an entry of a rolled-back op",
        )?;
        expect_err(
            m.getattr(ino).await,
            NotFound,
            "the inode of a rolled-back op",
        )?;
        ensure!(
            m.read(ino, 0).await.map(|s| s.is_empty()).unwrap_or(true),
            "chunks of a rolled-back op"
        );
    }
    ensure!(
        m.lookup(ROOT, b"n1").await?.0 == n1 && m.lookup(ROOT, b"n2").await?.0 == n2,
        "the neighbours"
    );
    let after = m.statfs().await?;
    ensure!(
        after.used_inodes == before_stat.used_inodes + 2,
        "inode count {after:?}"
    );
    counters_exact(&*b, "rolled-back ops").await?;
    fsck_clean(&*b, "rolled-back ops").await
}

/// An empty batch is valid and returns no results (`Backend::apply` and
/// `Meta::apply_batch`).
pub async fn empty_batch(ctx: &TestCtx) -> Result<()> {
    let r = ctx.backend().apply(&[]).await?;
    ensure!(r.is_empty(), "apply(&[]) returned {} results", r.len());
    ensure!(
        ctx.meta().apply_batch(Vec::new()).await.is_empty(),
        "apply_batch(vec![])"
    );
    Ok(())
}

/// `Meta::apply_batch` with 3,000 ops (several `apply` calls): every result at its
/// position, failures (duplicate names) exactly where expected, and ops may depend on
/// ops in earlier chunks.
pub async fn apply_batch_chunks(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let d = m.new_ino().await?;
    let mut ops = vec![mknod_op(ROOT, b"dir", d, FileType::Directory, t(0, 0))];
    for i in 1..3000u32 {
        let name = if i % 100 == 0 {
            format!("n{}", i - 1)
        } else {
            format!("n{i}")
        };
        let parent = if i > 600 { d } else { ROOT };
        ops.push(mknod_op(
            parent,
            name.as_bytes(),
            m.new_ino().await?,
            FileType::Regular,
            t(i64::from(i), 0),
        ));
    }
    let results = m.apply_batch(ops.clone()).await;
    ensure!(
        results.len() == ops.len(),
        "{} results for {} ops",
        results.len(),
        ops.len()
    );
    let mut ok = 0;
    for (i, (op, r)) in ops.iter().zip(&results).enumerate() {
        let Op::Mknod { ino, .. } = op else {
            unreachable!()
        };
        let dup = i % 100 == 0 && i > 0;
        match r {
            Ok(out) => {
                ensure!(!dup, "op {i} should have failed with EEXIST");
                ensure!(
                    out.ino() == Some(*ino),
                    "result {i} is for inode {:?}, not {ino}",
                    out.ino()
                );
                ok += 1;
            }
            Err(e) => ensure!(dup && e.kind() == AlreadyExists, "op {i}: {e}"),
        }
    }
    let listed = names(&*ctx.backend(), d).await?.len() + names(&*ctx.backend(), ROOT).await?.len();
    ensure!(listed == ok, "{listed} entries for {ok} successful creates");
    counters_exact(&*ctx.backend(), "big apply_batch").await
}

/// The batcher routes every result to its own caller: 300 concurrent creates (half of them
/// onto existing names) and 100 unlinks of missing names, each through `Meta`, each get
/// their own op's outcome.
pub async fn batcher_routes_results(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let mut pre = Vec::new();
    for i in 0..150 {
        pre.push(mknod_op(
            ROOT,
            format!("n{i}").as_bytes(),
            m.new_ino().await?,
            FileType::Regular,
            t(0, 0),
        ));
    }
    for r in m.apply_batch(pre).await {
        r?;
    }
    let mut tasks = Vec::new();
    for i in 0..300u32 {
        let m = m.clone();
        tasks.push(tokio::spawn(async move {
            let r = m.create(ME, ROOT, format!("n{i}").as_bytes(), 0o644).await;
            match (i < 150, r) {
                (true, Err(e)) if e.kind() == AlreadyExists => Ok(()),
                (false, Ok((ino, a))) if a.nlink == 1 => {
                    let (found, _) = m.lookup(ROOT, format!("n{i}").as_bytes()).await?;
                    ensure!(
                        found == ino,
                        "create n{i} returned {ino} but lookup finds {found}"
                    );
                    Ok(())
                }
                (_, r) => bail!("create n{i}: unexpected {r:?}"),
            }
        }));
    }
    for i in 0..100u32 {
        let m = m.clone();
        tasks.push(tokio::spawn(async move {
            expect_err(
                m.unlink(ME, ROOT, format!("missing{i}").as_bytes()).await,
                NotFound,
                "unlink missing",
            )
        }));
    }
    for t in tasks {
        t.await.context("task panicked")??;
    }
    ensure!(
        names(&*ctx.backend(), ROOT).await?.len() == 300,
        "300 names"
    );
    counters_exact(&*ctx.backend(), "batcher routing").await
}
