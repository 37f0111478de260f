//! Concurrency invariants: many tasks on one directory, races on one name.

use std::collections::BTreeSet;

use super::prelude::*;

/// The work of one churn task: mkdir `d{t}`, create 8 files, rename the even ones, unlink
/// every fourth, move the odd ones into its dir, rename its dir.
async fn churn_task(m: Meta, w: Ino, t: usize) -> Result<()> {
    let n = |s: String| s.into_bytes();
    let (d, _) = m.mkdir(ME, w, &n(format!("d{t}")), 0o755).await?;
    for i in 0..8 {
        m.create(ME, w, &n(format!("f{t}_{i}")), 0o644).await?;
    }
    for i in 0..8 {
        if i % 2 == 0 {
            m.rename(
                ME,
                w,
                &n(format!("f{t}_{i}")),
                w,
                &n(format!("g{t}_{i}")),
                RenameFlags::NONE,
            )
            .await?;
            if i % 4 == 0 {
                m.unlink(ME, w, &n(format!("g{t}_{i}"))).await?;
            }
        } else {
            m.rename(
                ME,
                w,
                &n(format!("f{t}_{i}")),
                d,
                &n(format!("h{i}")),
                RenameFlags::NONE,
            )
            .await?;
        }
    }
    m.rename(
        ME,
        w,
        &n(format!("d{t}")),
        w,
        &n(format!("e{t}")),
        RenameFlags::NONE,
    )
    .await?;
    Ok(())
}

async fn churn(ctx: &TestCtx, m: Meta) -> Result<()> {
    const TASKS: usize = 64;
    let (w, _) = m.mkdir(ME, ROOT, b"work", 0o755).await?;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        tasks.push(tokio::spawn(churn_task(m.clone(), w, t)));
    }
    for (t, h) in tasks.into_iter().enumerate() {
        h.await
            .context("task panicked")?
            .with_context(|| format!("task {t}"))?;
    }
    let b = ctx.backend();
    let got: BTreeSet<Vec<u8>> = names(&*b, w).await?.into_iter().collect();
    let mut want = BTreeSet::new();
    for t in 0..TASKS {
        want.insert(format!("e{t}").into_bytes());
        want.insert(format!("g{t}_2").into_bytes());
        want.insert(format!("g{t}_6").into_bytes());
    }
    ensure!(
        got == want,
        "work/ has {} entries, expected {}",
        got.len(),
        want.len()
    );
    for t in 0..TASKS {
        let (e, ea) = m.lookup(w, format!("e{t}").as_bytes()).await?;
        ensure!(ea.nlink == 2, "e{t} nlink {}", ea.nlink);
        let inside = names(&*b, e).await?;
        ensure!(
            inside
                == vec![
                    b"h1".to_vec(),
                    b"h3".to_vec(),
                    b"h5".to_vec(),
                    b"h7".to_vec()
                ],
            "e{t}: {inside:?}"
        );
    }
    ensure!(m.getattr(w).await?.nlink == 2 + TASKS as u32, "work/ nlink");
    let st = m.statfs().await?;
    let inodes = 2 + TASKS as u64 * (1 + 2 + 4);
    ensure!(
        st.used_inodes == inodes && st.used_space == inodes * 4096,
        "statfs {st:?}, expected {inodes} inodes"
    );
    counters_exact(&*b, "after churn").await?;
    fsck_clean(&*b, "after churn").await
}

/// 64 tasks create, rename, unlink and mkdir concurrently in one directory through the
/// batching `Meta`: every op succeeds, the final namespace is exactly the expected one,
/// nlinks and statfs counters are exact and fsck is clean.
pub async fn churn_64_tasks(ctx: &TestCtx) -> Result<()> {
    churn(ctx, ctx.meta()).await
}

/// The same 64-task churn with batching off (every op its own `apply`, so the backend sees
/// concurrent transactions on the same directory).
pub async fn churn_64_tasks_unbatched(ctx: &TestCtx) -> Result<()> {
    let m = ctx.open_meta(TestCtx::unbatched()).await?;
    churn(ctx, m).await
}

/// Checks a race's outcome: exactly one winner, every other EEXIST, the name points to the
/// winner.
async fn one_winner(
    m: &Meta,
    dir: Ino,
    name: &[u8],
    results: Vec<meta_core::Result<(Ino, Attr)>>,
) -> Result<()> {
    let mut winners = Vec::new();
    for r in results {
        match r {
            Ok((ino, _)) => winners.push(ino),
            Err(e) if e.kind() == AlreadyExists => {}
            Err(e) => bail!("a racing op failed with {e}"),
        }
    }
    ensure!(winners.len() == 1, "{} winners: {winners:?}", winners.len());
    let (ino, _) = m.lookup(dir, name).await?;
    ensure!(
        ino == winners[0],
        "{name:?} points to {ino}, the winner was {}",
        winners[0]
    );
    Ok(())
}

async fn race_create(
    metas: Vec<Meta>,
    name: &'static [u8],
    tasks: usize,
) -> Result<Vec<meta_core::Result<(Ino, Attr)>>> {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(tasks));
    let mut hs = Vec::new();
    for i in 0..tasks {
        let m = metas[i % metas.len()].clone();
        let barrier = barrier.clone();
        hs.push(tokio::spawn(async move {
            barrier.wait().await;
            if i % 2 == 0 {
                m.create(ME, ROOT, name, 0o644).await
            } else {
                m.mkdir(ME, ROOT, name, 0o755).await
            }
        }));
    }
    let mut out = Vec::new();
    for h in hs {
        out.push(h.await.context("task panicked")?);
    }
    Ok(out)
}

/// 32 tasks race to create one name (files and directories mixed), batched and unbatched:
/// exactly one succeeds, the other 31 get EEXIST, and the name is the winner's.
pub async fn race_same_name_32(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let r = race_create(vec![m.clone()], b"x", 32).await?;
    one_winner(&m, ROOT, b"x", r).await.context("batched")?;
    let u = ctx.open_meta(TestCtx::unbatched()).await?;
    let r = race_create(vec![u.clone()], b"y", 32).await?;
    one_winner(&u, ROOT, b"y", r).await.context("unbatched")?;
    counters_exact(&*ctx.backend(), "after races").await?;
    fsck_clean(&*ctx.backend(), "after races").await
}

/// The same race from two `Meta` instances on separate handles (two clients): one winner.
pub async fn race_same_name_two_meta(ctx: &TestCtx) -> Result<()> {
    let a = ctx.open_meta(MetaOptions::default()).await?;
    let b = ctx.open_meta(TestCtx::unbatched()).await?;
    let r = race_create(vec![a.clone(), b], b"z", 32).await?;
    one_winner(&a, ROOT, b"z", r).await?;
    counters_exact(&*ctx.backend(), "after the two-client race").await?;
    fsck_clean(&*ctx.backend(), "after the two-client race").await
}

/// 32 tasks race to rename their own file onto one name with RENAME_NOREPLACE: exactly one
/// wins, the others get EEXIST and keep their source name.
pub async fn race_rename_noreplace(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let u = ctx.open_meta(TestCtx::unbatched()).await?;
    for i in 0..32 {
        m.create(ME, ROOT, format!("s{i}").as_bytes(), 0o644)
            .await?;
    }
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(32));
    let mut hs = Vec::new();
    for i in 0..32 {
        let mm = if i % 2 == 0 { m.clone() } else { u.clone() };
        let barrier = barrier.clone();
        hs.push(tokio::spawn(async move {
            barrier.wait().await;
            mm.rename(
                ME,
                ROOT,
                format!("s{i}").as_bytes(),
                ROOT,
                b"t",
                RenameFlags::NOREPLACE,
            )
            .await
        }));
    }
    let mut results = Vec::new();
    for h in hs {
        results.push(h.await.context("task panicked")?);
    }
    let losers = results.iter().filter(|r| r.is_err()).count();
    one_winner(&m, ROOT, b"t", results).await?;
    ensure!(
        names(&*ctx.backend(), ROOT).await?.len() == 1 + losers,
        "losers lost their names"
    );
    fsck_clean(&*ctx.backend(), "after the rename race").await
}

/// Concurrent mkdir and rmdir in one parent from 32 tasks on two clients: the parent's nlink
/// (2 + subdirectories) is exact afterwards — the commutative "nlink ± 1" updates of
/// concurrent transactions must not lose each other.
pub async fn mkdir_rmdir_nlink(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let u = ctx.open_meta(TestCtx::unbatched()).await?;
    let (p, _) = m.mkdir(ME, ROOT, b"parent", 0o755).await?;
    let mut hs = Vec::new();
    for t in 0..32 {
        let mm = if t % 2 == 0 { m.clone() } else { u.clone() };
        hs.push(tokio::spawn(async move {
            for i in 0..10 {
                mm.mkdir(ME, p, format!("d{t}_{i}").as_bytes(), 0o755)
                    .await?;
            }
            for i in (0..10).step_by(2) {
                mm.rmdir(ME, p, format!("d{t}_{i}").as_bytes()).await?;
            }
            Ok::<_, meta_core::Error>(())
        }));
    }
    for h in hs {
        h.await.context("task panicked")??;
    }
    let a = m.getattr(p).await?;
    ensure!(
        a.nlink == 2 + 32 * 5,
        "parent nlink {} after concurrent mkdir/rmdir, expected {}",
        a.nlink,
        2 + 32 * 5
    );
    ensure!(names(&*ctx.backend(), p).await?.len() == 32 * 5, "entries");
    counters_exact(&*ctx.backend(), "after mkdir/rmdir churn").await?;
    fsck_clean(&*ctx.backend(), "after mkdir/rmdir churn").await
}

/// The rename cycle race (rename(2) EINVAL): two clients concurrently move `a` into `b` and
/// `b` into `a`. Each alone is valid, together they would detach both from the root in a
/// cycle; at most one may succeed, in every one of 40 rounds, and fsck stays clean.
pub async fn rename_cycle_race(ctx: &TestCtx) -> Result<()> {
    let m1 = ctx.open_meta(TestCtx::unbatched()).await?;
    let m2 = ctx.open_meta(TestCtx::unbatched()).await?;
    for round in 0..40 {
        let a = format!("a{round}").into_bytes();
        let b = format!("b{round}").into_bytes();
        let (ai, _) = m1.mkdir(ME, ROOT, &a, 0o755).await?;
        let (bi, _) = m1.mkdir(ME, ROOT, &b, 0o755).await?;
        let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(2));
        let (x, y) = (m1.clone(), m2.clone());
        let (ba, bb) = (barrier.clone(), barrier);
        let a1 = a.clone();
        let t1 = tokio::spawn(async move {
            ba.wait().await;
            x.rename(ME, ROOT, &a1, bi, b"x", RenameFlags::NONE).await
        });
        let t2 = tokio::spawn(async move {
            bb.wait().await;
            y.rename(ME, ROOT, &b, ai, b"y", RenameFlags::NONE).await
        });
        let (r1, r2) = (
            t1.await.context("task panicked")?,
            t2.await.context("task panicked")?,
        );
        ensure!(
            !(r1.is_ok() && r2.is_ok()),
            "round {round}: both crossing renames succeeded: a{round} and b{round} now form a cycle"
        );
        for r in [&r1, &r2] {
            if let Err(e) = r {
                ensure!(
                    matches!(e.kind(), InvalidArgument | NotFound),
                    "round {round}: the losing rename failed with {e}"
                );
            }
        }
    }
    fsck_clean(&*ctx.backend(), "after the rename cycle races").await
}

/// link(2) and unlink(2) of one inode from 16 tasks at once, with setattr on it from 8
/// more: every op succeeds and the final nlink is exactly 1 (no lost update on the inode).
pub async fn link_unlink_race(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let u = ctx.open_meta(TestCtx::unbatched()).await?;
    let (f, _) = m.create(ME, ROOT, b"f", 0o644).await?;
    let mut hs = Vec::new();
    for t in 0..16 {
        let mm = if t % 2 == 0 { m.clone() } else { u.clone() };
        hs.push(tokio::spawn(async move {
            for i in 0..8 {
                let name = format!("l{t}_{i}");
                mm.link(Caller::ROOT, f, ROOT, name.as_bytes()).await?;
                mm.unlink(ME, ROOT, name.as_bytes()).await?;
            }
            Ok::<_, meta_core::Error>(())
        }));
    }
    for t in 0..8u16 {
        let mm = if t % 2 == 0 { m.clone() } else { u.clone() };
        hs.push(tokio::spawn(async move {
            for i in 0..8u16 {
                mm.setattr(
                    Caller::ROOT,
                    f,
                    SetAttrMask::MODE,
                    SetAttrValues {
                        mode: 0o600 + i,
                        ..Default::default()
                    },
                )
                .await?;
            }
            Ok(())
        }));
    }
    for h in hs {
        h.await.context("task panicked")??;
    }
    let a = m.getattr(f).await?;
    ensure!(
        a.nlink == 1,
        "nlink {} after balanced concurrent link/unlink",
        a.nlink
    );
    ensure!(
        names(&*ctx.backend(), ROOT).await? == vec![b"f".to_vec()],
        "names left"
    );
    fsck_clean(&*ctx.backend(), "after the link/unlink race").await
}
