//! Slice compaction (`Op::CompactChunk`, `Meta::compact_chunk`): a chunk's slice list is
//! replaced only when it is exactly the list the caller read; the slices it drops become
//! pending deletion in the same op; a stale list changes nothing (`Conflict` through `Meta`,
//! `WouldBlock` per op in a batch); racing writes never lose a slice.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use meta_core::CHUNK_SIZE;

use super::prelude::*;

const CS: u32 = CHUNK_SIZE as u32;

/// The slice IDs of pending records.
async fn pending_ids(b: &dyn Backend) -> Result<BTreeSet<u64>> {
    Ok(pending_sorted(b)
        .await?
        .into_iter()
        .filter_map(|p| match p {
            Pending::Slice { id, .. } => Some(id),
            Pending::File { .. } => None,
        })
        .collect())
}

/// One slice covering `[0, end)` of a list: what a data layer writes when it merges it.
fn merged(id: u64, list: &[Slice]) -> Slice {
    let end = list.iter().map(|s| s.end()).max().unwrap_or(0) as u32;
    slice(id, 0, end)
}

/// Compaction replaces the list (reads return the new one); every dropped ID becomes pending
/// with its object size, kept and new IDs do not; the length, times and counters do not
/// change; other chunks are untouched; a list compacted to nothing removes the chunk; the
/// same compaction again (now stale) is a `Conflict`. Errors as write: ENOENT, EISDIR,
/// EINVAL (symlink; a new slice past the chunk end or its object).
pub async fn replaces_list(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let b = ctx.backend();
    let (f, _) = m.create(ME, ROOT, b"f", 0o644).await?;
    let s1 = slice(m.new_slice_id().await?, 0, 4096);
    let s2 = Slice {
        pos: 1000,
        id: m.new_slice_id().await?,
        size: 3000,
        off: 100,
        len: 2000,
    };
    let s3 = slice(m.new_slice_id().await?, 8192, 100);
    let hole = slice(0, 5000, 100);
    let k1 = slice(m.new_slice_id().await?, 0, 100);
    let k2 = slice(m.new_slice_id().await?, 50, 100);
    for s in [s1, s2, s3, hole] {
        m.write(Caller::ROOT, f, 0, s).await?;
    }
    m.write(Caller::ROOT, f, 1, k1).await?;
    m.write(Caller::ROOT, f, 1, k2).await?;
    let before = m.getattr(f).await?;
    let st = m.statfs().await?;
    let expect = m.read(f, 0).await?;
    ensure!(expect == vec![s1, s2, s3, hole], "list before: {expect:?}");
    let new = merged(m.new_slice_id().await?, &expect);
    ok(
        m.compact_chunk(f, 0, expect.clone(), vec![new]).await,
        "compact chunk 0",
    )?;
    ensure!(m.read(f, 0).await? == vec![new], "chunk 0 after compaction");
    ensure!(
        m.read(f, 1).await? == vec![k1, k2],
        "chunk 1 changed by a compaction of chunk 0"
    );
    let want: Vec<Pending> = [s1, s2, s3]
        .iter()
        .map(|s| Pending::Slice {
            id: s.id,
            size: s.size,
        })
        .collect();
    let got = pending_sorted(&*b).await?;
    ensure!(
        got == want,
        "pending after compaction: {got:?}, want {want:?}"
    );
    ensure!(
        m.getattr(f).await? == before,
        "compaction changed the attributes"
    );
    let st2 = m.statfs().await?;
    ensure!(
        st2.used_space == st.used_space && st2.used_inodes == st.used_inodes,
        "compaction changed the counters: {st:?} -> {st2:?}"
    );
    // Again with the old list: stale now.
    expect_err(
        m.compact_chunk(f, 0, expect, vec![merged(999_999, &[s1])])
            .await,
        Conflict,
        "the same compaction twice",
    )?;
    ensure!(
        m.read(f, 0).await? == vec![new],
        "a stale compaction changed chunk 0"
    );
    // Keep k1, drop k2 for a new slice: only k2 pending.
    let n2 = slice(m.new_slice_id().await?, 50, 100);
    m.compact_chunk(f, 1, vec![k1, k2], vec![k1, n2]).await?;
    ensure!(
        m.read(f, 1).await? == vec![k1, n2],
        "chunk 1 after compaction"
    );
    let ids = pending_ids(&*b).await?;
    ensure!(
        ids.contains(&k2.id) && !ids.contains(&k1.id) && !ids.contains(&n2.id),
        "pending after a partial compaction: {ids:?}"
    );
    // To nothing: the chunk goes, its slices are pending.
    m.compact_chunk(f, 1, vec![k1, n2], Vec::new()).await?;
    let chunks = b.list_chunks(f).await?;
    ensure!(
        chunks == vec![(0, vec![new])],
        "chunks after compacting chunk 1 to nothing: {chunks:?}"
    );
    let ids = pending_ids(&*b).await?;
    ensure!(
        ids.contains(&k1.id) && ids.contains(&n2.id),
        "pending after compacting to nothing: {ids:?}"
    );
    // Errors, each changing nothing.
    expect_err(
        m.compact_chunk(MISSING, 0, Vec::new(), Vec::new()).await,
        NotFound,
        "compaction of a missing inode",
    )?;
    expect_err(
        m.compact_chunk(ROOT, 0, Vec::new(), Vec::new()).await,
        IsADirectory,
        "compaction of a directory",
    )?;
    let (l, _) = m.symlink(ME, ROOT, b"l", b"target").await?;
    expect_err(
        m.compact_chunk(l, 0, Vec::new(), Vec::new()).await,
        InvalidArgument,
        "compaction of a symlink",
    )?;
    expect_err(
        m.compact_chunk(f, 0, vec![new], vec![slice(77, CS - 10, 20)])
            .await,
        InvalidArgument,
        "a new slice past the chunk end",
    )?;
    let bad = Slice {
        pos: 0,
        id: 78,
        size: 10,
        off: 5,
        len: 10,
    };
    expect_err(
        m.compact_chunk(f, 0, vec![new], vec![bad]).await,
        InvalidArgument,
        "a new slice past its object",
    )?;
    ensure!(
        m.read(f, 0).await? == vec![new],
        "a failed compaction changed chunk 0"
    );
    counters_exact(&*b, "after compactions").await?;
    fsck_clean(&*b, "after compactions").await
}

/// A stale `expect` (a write came in, another order, a subset, a superset) fails with
/// `Conflict` and changes nothing: list, pending records, attributes, counters. In a batch it
/// fails alone (`WouldBlock`, EAGAIN): the writes around it apply.
pub async fn stale_expect_conflicts(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let b = ctx.backend();
    let (f, _) = m.create(ME, ROOT, b"f", 0o644).await?;
    let s1 = slice(m.new_slice_id().await?, 0, 4096);
    let s2 = slice(m.new_slice_id().await?, 4096, 4096);
    let s3 = slice(m.new_slice_id().await?, 100, 10);
    m.write(Caller::ROOT, f, 0, s1).await?;
    m.write(Caller::ROOT, f, 0, s2).await?;
    let read = m.read(f, 0).await?;
    m.write(Caller::ROOT, f, 0, s3).await?;
    let before = (
        m.read(f, 0).await?,
        pending_sorted(&*b).await?,
        m.getattr(f).await?,
        m.statfs().await?,
    );
    let new = merged(m.new_slice_id().await?, &[s1, s2, s3]);
    for (what, expect) in [
        ("a write came in", read),
        ("another order", vec![s3, s2, s1]),
        ("a subset", vec![s1, s3]),
        ("a superset", vec![s1, s2, s3, s3]),
        ("nothing", Vec::new()),
    ] {
        expect_err(
            m.compact_chunk(f, 0, expect, vec![new]).await,
            Conflict,
            what,
        )?;
        let after = (
            m.read(f, 0).await?,
            pending_sorted(&*b).await?,
            m.getattr(f).await?,
            m.statfs().await?,
        );
        ensure!(
            after == before,
            "{what}: a stale compaction changed {after:?}"
        );
    }
    // In a batch: only the compaction fails.
    let s4 = slice(m.new_slice_id().await?, 200, 10);
    let s5 = slice(m.new_slice_id().await?, 300, 10);
    let w = |s: Slice| Op::Write {
        caller: Caller::ROOT,
        ino: f,
        indx: 0,
        slice: s,
        time: t(1, 0),
    };
    let r = m
        .apply_batch(vec![
            w(s4),
            Op::CompactChunk {
                ino: f,
                indx: 0,
                expect: vec![s1, s2, s3],
                slices: vec![new],
            },
            w(s5),
        ])
        .await;
    ensure!(
        r.len() == 3 && r[0].is_ok() && r[2].is_ok(),
        "the writes around a stale compaction: {r:?}"
    );
    expect_err(r[1].clone(), WouldBlock, "a stale compaction in a batch")?;
    ensure!(
        m.read(f, 0).await? == vec![s1, s2, s3, s4, s5],
        "after the batch: {:?}",
        m.read(f, 0).await?
    );
    // And one that is current in its batch position applies.
    let n2 = merged(m.new_slice_id().await?, &[s1, s2]);
    let r = m
        .apply_batch(vec![Op::CompactChunk {
            ino: f,
            indx: 0,
            expect: vec![s1, s2, s3, s4, s5],
            slices: vec![n2],
        }])
        .await;
    ensure!(r.len() == 1 && r[0].is_ok(), "a current compaction: {r:?}");
    ensure!(pending_ids(&*b).await?.len() == 5, "five slices pending");
    counters_exact(&*b, "after stale compactions").await?;
    fsck_clean(&*b, "after stale compactions").await
}

/// 8 writer tasks (batched and unbatched clients) append 25 slices each to one chunk while a
/// third client repeatedly reads the list and compacts it into one new slice. At the end
/// every slice ID a write or a compaction was acknowledged for is in the chunk's list or
/// pending, never both; no pending ID is one never written; IDs of failed ops appear nowhere;
/// at least one compaction applied; fsck is clean.
pub async fn race_with_writes(ctx: &TestCtx) -> Result<()> {
    const WRITERS: usize = 8;
    const WRITES: usize = 25;
    let m = ctx.meta();
    let u = ctx.open_meta(TestCtx::unbatched()).await?;
    let c = ctx.open_meta(MetaOptions::default()).await?;
    let b = ctx.backend();
    let (f, _) = m.create(ME, ROOT, b"f", 0o644).await?;
    let done = Arc::new(AtomicBool::new(false));
    let compactor = {
        let c = c.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let (mut applied, mut failed) = (Vec::new(), Vec::new());
            let mut last = false;
            loop {
                // One more round after the writers are done, which nothing races.
                let finished = done.load(Ordering::SeqCst);
                let expect = c.read(f, 0).await?;
                if expect.len() >= 2 || (finished && !expect.is_empty() && applied.is_empty()) {
                    let new = merged(c.new_slice_id().await?, &expect);
                    match c.compact_chunk(f, 0, expect, vec![new]).await {
                        Ok(()) => applied.push(new.id),
                        Err(e) if e.kind() == Conflict => failed.push(new.id),
                        Err(e) => return Err(anyhow::Error::from(e).context("compact_chunk")),
                    }
                } else {
                    tokio::task::yield_now().await;
                }
                if last {
                    break;
                }
                last = finished;
            }
            anyhow::Ok((applied, failed))
        })
    };
    let mut writers = Vec::new();
    for w in 0..WRITERS {
        let mm = if w % 2 == 0 { m.clone() } else { u.clone() };
        writers.push(tokio::spawn(async move {
            let (mut acked, mut failed) = (Vec::new(), Vec::new());
            for i in 0..WRITES {
                let s = slice(
                    mm.new_slice_id().await?,
                    ((w * WRITES + i) * 512) as u32,
                    4096,
                );
                match mm.write(Caller::ROOT, f, 0, s).await {
                    Ok(_) => acked.push(s.id),
                    Err(e) if e.kind() == Conflict => failed.push(s.id),
                    Err(e) => return Err(anyhow::Error::from(e).context("write")),
                }
            }
            anyhow::Ok((acked, failed))
        }));
    }
    let mut written = BTreeSet::new();
    let mut lost_ops = BTreeSet::new();
    for h in writers {
        let (acked, failed) = h.await??;
        written.extend(acked);
        lost_ops.extend(failed);
    }
    done.store(true, Ordering::SeqCst);
    let (applied, failed) = compactor.await??;
    ensure!(
        !applied.is_empty(),
        "no compaction applied ({} conflicts)",
        failed.len()
    );
    written.extend(applied.iter().copied());
    lost_ops.extend(failed);
    let list: BTreeSet<u64> = m.read(f, 0).await?.iter().map(|s| s.id).collect();
    let pending = pending_ids(&*b).await?;
    let lost: Vec<&u64> = written
        .iter()
        .filter(|id| !list.contains(id) && !pending.contains(id))
        .collect();
    ensure!(
        lost.is_empty(),
        "{} acknowledged slice(s) neither in the chunk nor pending: {lost:?}",
        lost.len()
    );
    let both: Vec<&u64> = list.intersection(&pending).collect();
    ensure!(
        both.is_empty(),
        "pending slices still in the chunk: {both:?}"
    );
    let foreign: Vec<&u64> = list
        .union(&pending)
        .filter(|id| !written.contains(id))
        .collect();
    ensure!(
        foreign.is_empty(),
        "slices of failed ops (or never written) in the chunk or pending: {foreign:?}"
    );
    ensure!(
        lost_ops
            .iter()
            .all(|id| !list.contains(id) && !pending.contains(id)),
        "a failed op's slice was recorded"
    );
    counters_exact(&*b, "after the compaction race").await?;
    fsck_clean(&*b, "after the compaction race").await
}
