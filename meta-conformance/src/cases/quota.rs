//! Directory quotas (`meta_core::quota`, `Meta::set_quota`): every op that grows a subtree
//! is checked against every quota on its way to the root inside its atomic op (EDQUOT), the
//! usage stays equal to the sum of the subtree's directory statistics (also checked by every
//! `fsck_clean`), moves that the usage cannot follow fail with EXDEV, and racing clients
//! never pass a limit.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use meta_core::Quota;
use meta_core::stats::DirStat;

use super::prelude::*;

const SPACE: u64 = 4096;

/// The stored quota of `dir`, which must exist.
async fn quota_of(m: &Meta, dir: Ino) -> Result<Quota> {
    m.quota(dir)
        .await?
        .with_context(|| format!("directory {dir} should have a quota"))
}

/// The stored usage equals the subtree's statistics summed now.
async fn usage_exact(m: &Meta, dir: Ino, what: &str) -> Result<Quota> {
    let (q, sum) = m.check_quota(dir).await?;
    ensure!(
        q.used == sum,
        "{what}: quota of {dir} says {:?}, its subtree adds up to {sum:?}",
        q.used
    );
    Ok(q)
}

/// Inode and space limits hit exactly at the limit: creates, mkdir, symlinks and writes in
/// the subtree (nested directories included) pass until the limit and fail with EDQUOT past
/// it, writing nothing; unlink and truncate give the usage back; a failed op leaves the
/// usage unchanged; raising a limit keeps the usage; the usage never counts the quota's own
/// directory.
pub async fn limits_at_the_edge(ctx: &TestCtx) -> Result<()> {
    let m = &ctx.meta();
    let b = ctx.backend();
    let (q, _) = m.mkdir(ME, ROOT, b"q", 0o755).await?;
    let set = m.set_quota(q, 0, 3).await?;
    ensure!(
        set.max_inodes == 3 && set.max_space == 0 && set.used == DirStat::default(),
        "a quota on an empty directory starts at zero: {set:?}"
    );
    let (sub, _) = m.mkdir(ME, q, b"sub", 0o755).await?;
    m.create(ME, sub, b"a", 0o644).await?;
    m.symlink(ME, q, b"l", b"target").await?;
    expect_err(
        m.create(ME, sub, b"b", 0o644).await,
        QuotaExceeded,
        "a fourth inode under an inode limit of 3",
    )?;
    expect_err(
        m.mkdir(ME, q, b"d2", 0o755).await,
        QuotaExceeded,
        "mkdir past the limit",
    )?;
    ensure!(
        m.lookup(sub, b"b").await.is_err(),
        "a refused create leaves no entry"
    );
    let used = usage_exact(m, q, "at the inode limit").await?;
    ensure!(used.used.inodes == 3, "3 inodes used: {used:?}");
    m.unlink(ME, q, b"l").await?;
    m.create(ME, sub, b"b", 0o644).await?;
    usage_exact(m, q, "after unlink and create").await?;

    // Space: sub, a and b use 3 × 4 KiB; allow 6 × 4 KiB, so a can grow to 4 blocks.
    m.set_quota(q, 6 * SPACE, 0).await?;
    let (f, _) = m.lookup(sub, b"a").await?;
    m.write(
        ME,
        f,
        0,
        slice(m.new_slice_id().await?, 0, 4 * SPACE as u32),
    )
    .await?;
    ensure!(
        quota_of(m, q).await?.used.space == 6 * SPACE as i64,
        "4 blocks written: at the space limit"
    );
    expect_err(
        m.write(
            ME,
            f,
            0,
            slice(m.new_slice_id().await?, 4 * SPACE as u32, 1),
        )
        .await,
        QuotaExceeded,
        "one more byte needs another 4 KiB block",
    )?;
    expect_err(
        m.truncate(ME, f, 5 * SPACE).await,
        QuotaExceeded,
        "truncate up past the limit",
    )?;
    ensure!(
        m.getattr(f).await?.length == 4 * SPACE,
        "refused write and truncate leave the length"
    );
    m.write(ME, f, 0, slice(m.new_slice_id().await?, 100, 100))
        .await
        .context("a write inside the length needs no space")?;
    m.truncate(ME, f, SPACE).await?;
    m.create(ME, q, b"c", 0o644).await?;
    usage_exact(m, q, "after truncate down and create").await?;
    // A limit below the usage: growth fails, shrinking passes.
    m.set_quota(q, SPACE, 0).await?;
    expect_err(
        m.create(ME, q, b"x", 0o644).await,
        QuotaExceeded,
        "create above a lowered limit",
    )?;
    m.unlink(ME, q, b"c").await?;
    let raised = m.set_quota(q, 0, 0).await?;
    usage_exact(m, q, "limits removed, quota kept").await?;
    ensure!(
        raised.used.inodes == 3,
        "sub, a, b, and nothing for q itself: {raised:?}"
    );
    fsck_clean(&*b, "after quota limits").await?;
    Ok(())
}

/// Limits above `i64::MAX` (a `u64` stored in a signed 64-bit field on most backends) are
/// limits like any other: they read back exactly and every op under them passes.
pub async fn limits_past_i64_max(ctx: &TestCtx) -> Result<()> {
    let m = &ctx.meta();
    let b = ctx.backend();
    let (q, _) = m.mkdir(ME, ROOT, b"huge", 0o755).await?;
    let (space, inodes) = (u64::MAX, (1u64 << 63) + 1);
    let set = m.set_quota(q, space, inodes).await?;
    ensure!(
        set.max_space == space && set.max_inodes == inodes,
        "limits as given: {set:?}"
    );
    let (sub, _) = m.mkdir(ME, q, b"sub", 0o755).await?;
    let (f, _) = m.create(ME, sub, b"f", 0o644).await?;
    m.write(
        ME,
        f,
        0,
        slice(m.new_slice_id().await?, 0, 3 * SPACE as u32),
    )
    .await
    .context("a write far below a u64::MAX space limit")?;
    m.truncate(ME, f, 1 << 40)
        .await
        .context("truncate to 1 TiB below a u64::MAX space limit")?;
    let after = usage_exact(m, q, "under limits past i64::MAX").await?;
    ensure!(
        after.max_space == space && after.max_inodes == inodes && after.used.inodes == 2,
        "limits read back exactly, 2 inodes used: {after:?}"
    );
    fsck_clean(&*b, "after limits past i64::MAX").await?;
    Ok(())
}

/// One batch (a backend may remember the quotas above a directory for the rest of a batch,
/// `meta_core::logic::QuotaChains`): an empty directory charged under quota A, then moved
/// under quota B, charges B; a quota created and then removed on it in the same batch is
/// charged while it exists and not after; usage stays exact.
pub async fn one_batch(ctx: &TestCtx) -> Result<()> {
    moves_and_quota_changes(ctx, true).await
}

/// [`one_batch`]'s ops each in a batch of its own (a backend that is its store's only writer
/// may remember the quotas above a directory from one batch to the next).
pub async fn op_by_op(ctx: &TestCtx) -> Result<()> {
    moves_and_quota_changes(ctx, false).await
}

async fn moves_and_quota_changes(ctx: &TestCtx, together: bool) -> Result<()> {
    let m = &ctx.meta();
    let b = ctx.backend();
    let (a, _) = m.mkdir(ME, ROOT, b"a", 0o755).await?;
    let (bq, _) = m.mkdir(ME, ROOT, b"b", 0o755).await?;
    let (e, _) = m.mkdir(ME, a, b"e", 0o755).await?;
    m.set_quota(a, 0, 100).await?;
    m.set_quota(bq, 0, 100).await?;
    let ids = b.reserve_ids(meta_core::IdKind::Inode, 4).await?;
    let file = |name: &[u8], i: u64| mknod_op(e, name, Ino(i), FileType::Regular, t(7, 0));
    let ops = vec![
        file(b"f1", ids.start),
        Op::Unlink {
            parent: e,
            name: b"f1".to_vec(),
            caller: Caller::ROOT,
            time: t(7, 0),
        },
        Op::Rename {
            parent: a,
            name: b"e".to_vec(),
            new_parent: bq,
            new_name: b"e".to_vec(),
            flags: RenameFlags::NONE,
            caller: Caller::ROOT,
            time: t(7, 0),
        },
        file(b"f2", ids.start + 1),
        Op::SetQuota {
            dir: e,
            max_space: 0,
            max_inodes: 2,
            subtree: vec![e],
        },
        file(b"f3", ids.start + 2),
        file(b"f4", ids.start + 3),
        Op::RemoveQuota { dir: e },
        file(b"f4", ids.start + 3),
    ];
    let r = if together {
        b.apply(&ops).await?
    } else {
        let mut r = Vec::new();
        for op in &ops {
            r.extend(b.apply(std::slice::from_ref(op)).await?);
        }
        r
    };
    for (i, res) in r.iter().enumerate() {
        if i == 6 {
            expect_err(
                res.clone(),
                QuotaExceeded,
                "a third inode under e's new quota",
            )?;
        } else {
            ensure!(
                res.is_ok(),
                "op {i} ({}) of the batch: {res:?}",
                ops[i].name()
            );
        }
    }
    let qa = usage_exact(m, a, "A after its directory moved out").await?;
    ensure!(
        qa.used == DirStat::default(),
        "nothing left under A: {qa:?}"
    );
    let qb = usage_exact(m, bq, "B after the batch").await?;
    ensure!(qb.used.inodes == 4, "e, f2, f3, f4 under B: {qb:?}");
    ensure!(m.quota(e).await?.is_none(), "e's quota was removed");
    fsck_clean(&*b, "after moves and quota changes").await?;
    Ok(())
}

/// Nested quotas each count their own subtree; files and empty directories moving across a
/// boundary move their charge (checked against the destination's quotas); a non-empty
/// directory moving across one, or a hard link that would name a file in a second
/// directory across one, fails with EXDEV; moves inside one quota always pass; removing a
/// quota, or the directory holding it, drops the quota.
pub async fn nested_moves_and_links(ctx: &TestCtx) -> Result<()> {
    let m = &ctx.meta();
    let b = ctx.backend();
    let (outer, _) = m.mkdir(ME, ROOT, b"outer", 0o755).await?;
    let (inner, _) = m.mkdir(ME, outer, b"inner", 0o755).await?;
    let (free, _) = m.mkdir(ME, ROOT, b"free", 0o755).await?;
    m.set_quota(outer, 0, 10).await?;
    m.set_quota(inner, 0, 2).await?;
    let (f, _) = m.create(ME, inner, b"f", 0o644).await?;
    m.create(ME, inner, b"g", 0o644).await?;
    ensure!(
        quota_of(m, outer).await?.used.inodes == 3,
        "outer counts inner, f, g"
    );
    // File moves: out of inner into outer (inner -1, outer unchanged), in from outside.
    m.rename(ME, inner, b"f", outer, b"f", RenameFlags::NONE)
        .await?;
    ensure!(quota_of(m, inner).await?.used.inodes == 1, "f left inner");
    ensure!(
        quota_of(m, outer).await?.used.inodes == 3,
        "f stayed in outer"
    );
    let (h, _) = m.create(ME, free, b"h", 0o644).await?;
    m.rename(ME, free, b"h", inner, b"h", RenameFlags::NONE)
        .await?;
    expect_err(
        m.rename(ME, outer, b"f", inner, b"f", RenameFlags::NONE)
            .await,
        QuotaExceeded,
        "a file moving into a full quota",
    )?;
    ensure!(
        m.lookup(outer, b"f").await?.0 == f,
        "the refused rename left f in place"
    );
    // Directories: an empty one moves with its charge, a non-empty one cannot cross.
    let (e, _) = m.mkdir(ME, free, b"empty", 0o755).await?;
    m.rename(ME, free, b"empty", outer, b"empty", RenameFlags::NONE)
        .await?;
    ensure!(
        quota_of(m, outer).await?.used.inodes == 5,
        "empty dir joined"
    );
    let (full, _) = m.mkdir(ME, free, b"full", 0o755).await?;
    m.create(ME, full, b"x", 0o644).await?;
    expect_err(
        m.rename(ME, free, b"full", outer, b"full", RenameFlags::NONE)
            .await,
        CrossDevice,
        "a non-empty directory moving into a quota",
    )?;
    m.create(ME, e, b"y", 0o644).await?;
    expect_err(
        m.rename(ME, outer, b"empty", free, b"back", RenameFlags::NONE)
            .await,
        CrossDevice,
        "a non-empty directory moving out of a quota",
    )?;
    let (sibling, _) = m.mkdir(ME, outer, b"sibling", 0o755).await?;
    m.rename(ME, outer, b"empty", sibling, b"moved", RenameFlags::NONE)
        .await
        .context("a non-empty directory moving inside one quota")?;
    // Hard links: into another directory across a boundary (either way) is EXDEV; in the
    // same directory it is a second name charged once.
    expect_err(
        m.link(ME, h, free, b"h2").await,
        CrossDevice,
        "a link out of a quota",
    )?;
    let (k, _) = m.create(ME, free, b"k", 0o644).await?;
    m.link(ME, k, ROOT, b"k2").await?;
    expect_err(
        m.link(ME, k, outer, b"k3").await,
        CrossDevice,
        "a file named in two directories linked into a quota",
    )?;
    expect_err(
        m.rename(ME, ROOT, b"k2", outer, b"k2", RenameFlags::NONE)
            .await,
        CrossDevice,
        "a file named in two directories renamed into a quota",
    )?;
    m.link(ME, h, inner, b"h-again").await?;
    m.link(ME, f, outer, b"f-again").await?;
    ensure!(
        m.getattr(h).await?.parent == inner,
        "links in one directory keep the charge"
    );
    usage_exact(m, outer, "after moves and links").await?;
    usage_exact(m, inner, "after moves and links").await?;
    fsck_clean(&*b, "after moves and links").await?;

    // Removing.
    m.remove_quota(inner).await?;
    expect_err(
        m.remove_quota(inner).await,
        NotFound,
        "removing a quota twice",
    )?;
    let (gone, _) = m.mkdir(ME, ROOT, b"gone", 0o755).await?;
    m.set_quota(gone, 1, 1).await?;
    m.rmdir(ME, ROOT, b"gone").await?;
    let left: Vec<Ino> = m.quotas().await?.into_iter().map(|(d, _)| d).collect();
    ensure!(
        left == vec![outer],
        "only outer's quota is left (inner removed, gone's went with it): {left:?}"
    );
    expect_err(
        m.set_quota(f, 1, 1).await,
        NotADirectory,
        "a quota on a file",
    )?;
    expect_err(
        m.set_quota(Ino(1 << 40), 1, 1).await,
        NotFound,
        "a quota on a missing inode",
    )?;
    fsck_clean(&*b, "after removing quotas").await?;
    Ok(())
}

/// A quota set on a populated tree starts with the tree's usage (the sum of its
/// directories' statistics, what `Meta::summary` reads), on the root too; the op refuses a
/// subtree list that is not exactly the subtree (EAGAIN), or does not start with the
/// directory (EINVAL), and writes nothing then.
pub async fn set_on_populated_tree(ctx: &TestCtx) -> Result<()> {
    let m = &ctx.meta();
    let b = ctx.backend();
    let (top, _) = m.mkdir(ME, ROOT, b"top", 0o755).await?;
    let mut dirs = vec![top];
    for i in 0..4u8 {
        let (d, _) = m.mkdir(ME, top, &[b'd', b'0' + i], 0o755).await?;
        let (dd, _) = m.mkdir(ME, d, b"deeper", 0o755).await?;
        dirs.extend([d, dd]);
        for j in 0..3u8 {
            let (f, _) = m.create(ME, dd, &[b'f', b'0' + j], 0o644).await?;
            m.write(
                ME,
                f,
                0,
                slice(m.new_slice_id().await?, 0, 5000 * (j as u32 + 1)),
            )
            .await?;
        }
    }
    let q = m.set_quota(top, 0, 0).await?;
    let sum = m.summary(top).await?;
    ensure!(
        q.used.inodes as u64 == sum.dirs + sum.files - 1
            && q.used.space as u64 == sum.space - SPACE,
        "usage {q:?} is the summary {sum:?} without top's own inode"
    );
    let root = m.set_quota(ROOT, 0, 0).await?;
    let all = m.summary(ROOT).await?;
    ensure!(
        root.used.inodes as u64 == all.dirs + all.files - 1,
        "a quota on the root counts every inode but the root: {root:?} vs {all:?}"
    );
    // Malformed or stale lists.
    let (other, _) = m.mkdir(ME, ROOT, b"other", 0o755).await?;
    let (child, _) = m.mkdir(ME, other, b"child", 0o755).await?;
    let stale = Op::SetQuota {
        dir: other,
        max_space: 0,
        max_inodes: 1,
        subtree: vec![other],
    };
    expect_err(
        apply1(&*b, stale).await?,
        WouldBlock,
        "a subtree list missing a directory",
    )?;
    let foreign = Op::SetQuota {
        dir: other,
        max_space: 0,
        max_inodes: 1,
        subtree: vec![other, child, dirs[1]],
    };
    expect_err(
        apply1(&*b, foreign).await?,
        WouldBlock,
        "a subtree list with a directory from elsewhere",
    )?;
    let wrong_first = Op::SetQuota {
        dir: other,
        max_space: 0,
        max_inodes: 1,
        subtree: vec![child, other],
    };
    expect_err(
        apply1(&*b, wrong_first).await?,
        InvalidArgument,
        "a subtree list not starting with the directory",
    )?;
    ensure!(m.quota(other).await?.is_none(), "refused ops set nothing");
    let ok = Op::SetQuota {
        dir: other,
        max_space: 0,
        max_inodes: 1,
        subtree: vec![other, child],
    };
    ok_out(apply1(&*b, ok).await?, "the exact subtree list")?;
    ensure!(
        quota_of(m, other).await?.used.inodes == 1,
        "other holds child"
    );
    usage_exact(m, top, "populated tree").await?;
    fsck_clean(&*b, "quotas on populated trees").await?;
    Ok(())
}

fn ok_out(r: meta_core::Result<OpOutput>, what: &str) -> Result<OpOutput> {
    ok(r, what)
}

/// 16 tasks on each of two clients race to create files under one inode limit, then to
/// grow their files under one space limit: exactly the limit is reached, never passed, and
/// the usage is exact (no check-then-add race on any backend).
pub async fn race_16x2(ctx: &TestCtx) -> Result<()> {
    let a = &ctx.meta();
    let other = ctx.open_meta(MetaOptions::default()).await?;
    let (q, _) = a.mkdir(ME, ROOT, b"q", 0o755).await?;
    const TASKS: u64 = 16;
    const LIMIT: u64 = 40;
    a.set_quota(q, 0, LIMIT).await?;
    let made = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for (i, m) in [a.clone(), other.clone()].into_iter().enumerate() {
        for k in 0..TASKS {
            let (m, made) = (m.clone(), made.clone());
            tasks.push(tokio::spawn(async move {
                for n in 0..4 {
                    let name = format!("f{i}-{k}-{n}");
                    match m.create(ME, q, name.as_bytes(), 0o644).await {
                        Ok(_) => {
                            made.fetch_add(1, Ordering::SeqCst);
                        }
                        Err(e) if e.kind() == QuotaExceeded => {}
                        Err(e) => return Err(e),
                    }
                }
                Ok::<(), meta_core::Error>(())
            }));
        }
    }
    for t in tasks.drain(..) {
        t.await.context("create task panicked")??;
    }
    let n = made.load(Ordering::SeqCst);
    ensure!(n == LIMIT, "{n} creates succeeded under a limit of {LIMIT}");
    let used = usage_exact(a, q, "after racing creates").await?;
    ensure!(used.used.inodes == LIMIT as i64, "usage {used:?}");

    // Space: 40 files of 4 KiB each use 40 blocks; allow 40 + 64 and race to grow.
    let limit = (LIMIT + 64) * SPACE;
    a.set_quota(q, limit, 0).await?;
    let grown = Arc::new(AtomicU64::new(0));
    let names = a.readdir(q, None, 1000, false).await?;
    for (j, e) in names.into_iter().enumerate() {
        let m = if j % 2 == 0 { a.clone() } else { other.clone() };
        let grown = grown.clone();
        tasks.push(tokio::spawn(async move {
            for blk in 1..6u32 {
                let s = slice(m.new_slice_id().await?, blk * SPACE as u32, SPACE as u32);
                match m.write(ME, e.ino, 0, s).await {
                    Ok(_) => {
                        grown.fetch_add(1, Ordering::SeqCst);
                    }
                    Err(e) if e.kind() == QuotaExceeded => break,
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        }));
    }
    for t in tasks {
        t.await.context("write task panicked")??;
    }
    let g = grown.load(Ordering::SeqCst);
    ensure!(
        g == 64,
        "{g} one-block writes succeeded under a 64-block margin"
    );
    let used = usage_exact(a, q, "after racing writes").await?;
    ensure!(
        used.used.space == limit as i64,
        "space used {} = the limit {limit}",
        used.used.space
    );
    fsck_clean(&*ctx.backend(), "after the races").await?;
    other.close().await?;
    Ok(())
}

/// A quota created again and again while 4 tasks on each of two clients create, write and
/// unlink files and now and then make a directory in its subtree (33 directories in all,
/// so that the creation fits in one etcd transaction of at most 128 operations): the quota standing at the
/// end, created in the middle of those ops, has the exact usage (an op that did not see the
/// quota must not add its statistics after the quota summed them). On stores with
/// optimistic transactions a creation may lose to the writers (`Conflict`) and is retried;
/// at least one must succeed while the writers run.
pub async fn set_while_writing(ctx: &TestCtx) -> Result<()> {
    let a = &ctx.meta();
    let other = ctx.open_meta(MetaOptions::default()).await?;
    let (q, _) = a.mkdir(ME, ROOT, b"q", 0o755).await?;
    let running = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for (i, m) in [a.clone(), other.clone()].into_iter().enumerate() {
        for k in 0..4u32 {
            let (m, running) = (m.clone(), running.clone());
            running.fetch_add(1, Ordering::SeqCst);
            tasks.push(tokio::spawn(async move {
                let r = async {
                    let (d, _) = m
                        .mkdir(ME, q, format!("d{i}-{k}").as_bytes(), 0o755)
                        .await?;
                    for n in 0..60u32 {
                        let name = format!("f{n}");
                        let (f, _) = m.create(ME, d, name.as_bytes(), 0o644).await?;
                        let s = slice(m.new_slice_id().await?, 0, 1 + 4096 * (n % 3));
                        m.write(ME, f, 0, s).await?;
                        if n % 4 != 0 {
                            m.unlink(ME, d, name.as_bytes()).await?;
                        }
                        if n % 20 == 0 {
                            m.mkdir(ME, d, format!("s{n}").as_bytes(), 0o755).await?;
                        }
                        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                    }
                    Ok::<(), meta_core::Error>(())
                }
                .await;
                running.fetch_sub(1, Ordering::SeqCst);
                r
            }));
        }
    }
    let (mut made, mut lost) = (0u32, 0u32);
    let mut round = 0;
    while running.load(Ordering::SeqCst) > 0 {
        let m = if round % 2 == 0 { a } else { &other };
        round += 1;
        if m.quota(q).await?.is_some() {
            m.remove_quota(q).await?;
        }
        match m.set_quota(q, 0, 0).await {
            Ok(_) => made += 1,
            Err(e) if matches!(e.kind(), Conflict | WouldBlock) => lost += 1,
            Err(e) => return Err(e.into()),
        }
    }
    for t in tasks {
        t.await.context("writer task panicked")??;
    }
    ensure!(
        made > 0,
        "no quota creation succeeded while the writers ran ({lost} lost to them)"
    );
    if m_has_quota(a, q).await? {
        usage_exact(a, q, "after racing quota creation").await?;
    }
    fsck_clean(&*ctx.backend(), "after racing quota creation").await?;
    other.close().await?;
    Ok(())
}

async fn m_has_quota(m: &Meta, dir: Ino) -> Result<bool> {
    Ok(m.quota(dir).await?.is_some())
}

/// A volume formatted without directory statistics has no quotas (ENOTSUP); quotas travel
/// through dump and load with their limits, and their usage is recomputed on load.
pub async fn unsupported_and_dump(ctx: &TestCtx) -> Result<()> {
    let mut s = Setting::new("conformance-no-quotas");
    s.dir_stats = false;
    let vol = ctx.extra_volume(Some(&s)).await?;
    let nm = vol.meta(MetaOptions::default()).await?;
    let (d, _) = nm.mkdir(ME, ROOT, b"d", 0o755).await?;
    expect_err(
        nm.set_quota(d, 1, 1).await,
        Unsupported,
        "a quota without statistics",
    )?;
    nm.close().await?;
    drop(nm);
    vol.close().await?;

    let m = &ctx.meta();
    let b = ctx.backend();
    let (q, _) = m.mkdir(ME, ROOT, b"q", 0o755).await?;
    let (sub, _) = m.mkdir(ME, q, b"sub", 0o755).await?;
    m.create(ME, sub, b"f", 0o644).await?;
    m.set_quota(q, 10 * SPACE, 5).await?;
    m.set_quota(sub, 0, 3).await?;
    let text = dump_text(&*b).await?;
    let copy = ctx.extra_volume(None).await?;
    let cb = copy.backend();
    load_text(&*cb, &text).await?;
    let got = cb.quotas().await?;
    let want = b.quotas().await?;
    ensure!(got == want, "loaded quotas {got:?} differ from {want:?}");
    fsck_clean(&*cb, "loaded volume with quotas").await?;
    drop(cb);
    copy.close().await?;
    Ok(())
}
