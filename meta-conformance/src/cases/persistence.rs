//! Reopen and persistence: everything acknowledged is still there after every handle was
//! closed and the volume opened again (for durable backends: read back from storage).

use std::collections::HashSet;

use meta_core::IdKind;

use super::prelude::*;

/// After a reopen the volume is identical (dump text, pending records, statfs, fsck clean)
/// and new inodes from the reopened engine never reuse numbers handed out before.
pub async fn reopen_keeps_volume(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    build_rich_tree(&m).await?;
    let b = ctx.backend();
    let before = dump_text(&*b).await?;
    let pending = pending_sorted(&*b).await?;
    let st = b.statfs().await?;
    let used: HashSet<Ino> = all_inodes(&*b).await?.into_keys().collect();
    let setting = b.load().await?;
    drop((m, b));
    ctx.reopen().await?;
    let b = ctx.backend();
    ensure!(b.load().await? == setting, "the format record changed");
    same_text(
        &before,
        &dump_text(&*b).await?,
        "dump before vs after reopen",
    )?;
    ensure!(
        pending_sorted(&*b).await? == pending,
        "pending records changed"
    );
    ensure!(b.statfs().await? == st, "statfs changed");
    fsck_clean(&*b, "after reopen").await?;
    let m = ctx.meta();
    for i in 0..100 {
        let (ino, _) = m
            .create(ME, ROOT, format!("new{i}").as_bytes(), 0o644)
            .await?;
        ensure!(!used.contains(&ino), "inode {ino} was reused after reopen");
    }
    fsck_clean(&*b, "after reopen and creates").await
}

/// ID counters survive a reopen: reservations after it start at or after the end of every
/// reservation made before, for inodes and chunks.
pub async fn reopen_ids_keep_growing(ctx: &TestCtx) -> Result<()> {
    let b = ctx.backend();
    let ri = b.reserve_ids(IdKind::Inode, 1000).await?;
    let rc = b.reserve_ids(IdKind::Chunk, 5000).await?;
    drop(b);
    ctx.reopen().await?;
    let b = ctx.backend();
    let ri2 = b.reserve_ids(IdKind::Inode, 1).await?;
    let rc2 = b.reserve_ids(IdKind::Chunk, 1).await?;
    ensure!(
        ri2.start >= ri.end,
        "inode IDs went back after reopen: {ri:?} then {ri2:?}"
    );
    ensure!(
        rc2.start >= rc.end,
        "chunk IDs went back after reopen: {rc:?} then {rc2:?}"
    );
    Ok(())
}
