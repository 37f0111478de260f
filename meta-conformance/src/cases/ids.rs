//! ID reservation and priming: unique inode and slice IDs across clients of one volume.

use std::collections::HashSet;
use std::ops::Range;

use meta_core::IdKind;

use super::prelude::*;

/// Checks that ranges are non-empty as asked and pairwise disjoint.
fn disjoint(mut ranges: Vec<Range<u64>>, what: &str) -> Result<()> {
    ranges.sort_by_key(|r| r.start);
    for w in ranges.windows(2) {
        ensure!(
            w[0].end <= w[1].start,
            "{what}: overlapping reservations {:?} and {:?}",
            w[0],
            w[1]
        );
    }
    Ok(())
}

/// `reserve_ids(kind, n)` returns `[old, old + n)` of exactly `n` IDs; later reservations
/// (from any handle) never overlap earlier ones; inode IDs never include 0 or the root,
/// chunk IDs never 0; ranges from concurrent callers on two handles are disjoint.
pub async fn reserve_ranges(ctx: &TestCtx) -> Result<()> {
    let b = ctx.backend();
    let b2 = ctx.open_backend().await?;
    for kind in [IdKind::Inode, IdKind::Chunk] {
        let r1 = b.reserve_ids(kind, 10).await?;
        ensure!(r1.end - r1.start == 10, "{kind:?}: asked 10, got {r1:?}");
        ensure!(
            r1.start >= if kind == IdKind::Inode { 2 } else { 1 },
            "{kind:?}: range {r1:?}"
        );
        let r2 = b2.reserve_ids(kind, 1).await?;
        ensure!(
            r2.end - r2.start == 1 && r2.start >= r1.end,
            "{kind:?}: {r1:?} then {r2:?}"
        );
        let r3 = b.reserve_ids(kind, 1 << 20).await?;
        ensure!(
            r3.end - r3.start == 1 << 20 && r3.start >= r2.end,
            "{kind:?}: {r2:?} then {r3:?}"
        );
        let mut tasks = Vec::new();
        for t in 0..8u64 {
            let h = if t % 2 == 0 { b.clone() } else { b2.clone() };
            tasks.push(tokio::spawn(async move {
                let mut got = Vec::new();
                for i in 0..50 {
                    let n = 1 + (t * 7 + i) % 13;
                    let r = h.reserve_ids(kind, n).await?;
                    ensure!(r.end - r.start == n, "asked {n}, got {r:?}");
                    got.push(r);
                }
                Ok::<_, anyhow::Error>(got)
            }));
        }
        let mut all = vec![r1, r2, r3];
        for t in tasks {
            all.extend(t.await.context("task panicked")??);
        }
        disjoint(all, &format!("{kind:?} reservations"))?;
    }
    Ok(())
}

/// Creates `n` files named `{tag}-{i}` in `dir` through `m`, and takes `n` slice IDs;
/// returns the inodes and the slice IDs.
async fn create_many(m: Meta, dir: Ino, tag: String, n: usize) -> Result<(Vec<Ino>, Vec<u64>)> {
    let mut inos = Vec::with_capacity(n);
    let mut slices = Vec::with_capacity(n);
    for i in 0..n {
        let (ino, _) = m
            .create(ME, dir, format!("{tag}-{i}").as_bytes(), 0o644)
            .await
            .with_context(|| format!("create {tag}-{i}"))?;
        inos.push(ino);
        slices.push(m.new_slice_id().await?);
    }
    Ok((inos, slices))
}

async fn unique_across(metas: Vec<Meta>, ctx: &TestCtx, per_task: usize) -> Result<()> {
    let m0 = ctx.meta();
    let (dir, _) = m0.mkdir(ME, ROOT, b"shared", 0o755).await?;
    let mut tasks = Vec::new();
    for (k, m) in metas.iter().enumerate() {
        for t in 0..4 {
            tasks.push(tokio::spawn(create_many(
                m.clone(),
                dir,
                format!("m{k}t{t}"),
                per_task,
            )));
        }
    }
    let mut inos = HashSet::new();
    let mut slices = HashSet::new();
    for t in tasks {
        let (i, s) = t.await.context("task panicked")??;
        for ino in i {
            ensure!(inos.insert(ino), "inode {ino} was handed out twice");
        }
        for id in s {
            ensure!(slices.insert(id), "slice ID {id} was handed out twice");
        }
    }
    let want = metas.len() * 4 * per_task;
    ensure!(
        inos.len() == want,
        "{} inodes for {want} creates",
        inos.len()
    );
    ensure!(
        names(&*ctx.backend(), dir).await?.len() == want,
        "entries in the shared dir"
    );
    ensure!(m0.getattr(dir).await?.nlink == 2, "nlink of the shared dir");
    counters_exact(&*ctx.backend(), "ID uniqueness").await?;
    fsck_clean(&*ctx.backend(), "ID uniqueness").await
}

/// ID priming with several clients: three `Meta` instances on one volume (two on their
/// own handles, small pools of 16 so they refill and prefetch often), 4 tasks each creating
/// files and taking slice IDs concurrently: no inode or slice ID is ever handed out twice
/// and every create succeeds.
pub async fn two_meta_unique(ctx: &TestCtx) -> Result<()> {
    let mut small = MetaOptions::default();
    small.inode_batch = 16;
    small.chunk_batch = 16;
    small.inode_low_watermark = 50;
    small.chunk_low_watermark = 50;
    let m1 = ctx.open_meta(small.clone()).await?;
    let m2 = ctx
        .open_meta({
            let mut o = small;
            o.batchwrite = false;
            o
        })
        .await?;
    unique_across(vec![ctx.meta(), m1, m2], ctx, 150).await
}

/// `metaprime=0` (one reservation per ID) on two clients still hands out unique IDs, with
/// one reserve call per ID served.
pub async fn metaprime_off(ctx: &TestCtx) -> Result<()> {
    let mut off = MetaOptions::default();
    off.metaprime = false;
    let m1 = ctx.open_meta(off.clone()).await?;
    let m2 = ctx.open_meta(off).await?;
    unique_across(vec![m1.clone(), m2], ctx, 40).await?;
    let (inodes, _) = m1.pool_stats();
    ensure!(
        inodes.reserve_calls == inodes.served,
        "metaprime=0: {} reserve calls for {} IDs",
        inodes.reserve_calls,
        inodes.served
    );
    Ok(())
}
