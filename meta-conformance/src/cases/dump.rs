//! Dump and load (`meta_core::dump`): round trips on one backend and across backends.

use std::sync::Arc;

use meta_core::memory::memory_backend;

use super::prelude::*;

/// dump → load into a fresh volume of the same backend → dump gives identical text; the
/// loaded volume passes fsck and has the same statfs.
pub async fn round_trip_same_backend(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    build_rich_tree(&m).await?;
    let b = ctx.backend();
    let text = dump_text(&*b).await?;
    let vol = ctx.extra_volume(None).await?;
    let b2 = vol.backend();
    load_text(&*b2, &text).await?;
    same_text(
        &text,
        &dump_text(&*b2).await?,
        "dump vs dump of the loaded volume",
    )?;
    ensure!(
        b.statfs().await? == b2.statfs().await?,
        "statfs differs after load"
    );
    fsck_clean(&*b2, "the loaded volume").await?;
    // The loaded volume is usable: new IDs do not collide.
    let m2 = vol.meta(MetaOptions::default()).await?;
    for i in 0..20 {
        m2.create(ME, ROOT, format!("after-load-{i}").as_bytes(), 0o644)
            .await?;
    }
    fsck_clean(&*b2, "the loaded volume after creates").await?;
    drop((m2, b2));
    vol.close().await
}

/// Across backends: a dump of the backend under test loads into the in-memory reference and
/// dumps to identical text, and a dump made on the reference loads into the backend under
/// test and dumps identically.
pub async fn across_backends(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    build_rich_tree(&m).await?;
    let text = dump_text(&*ctx.backend()).await?;
    let mem = memory_backend();
    load_text(&mem, &text).await?;
    same_text(
        &text,
        &dump_text(&mem).await?,
        "this backend's dump vs its load into memory",
    )?;
    // The other way round: a tree built on the reference.
    let reference: Arc<dyn Backend> = Arc::new(memory_backend());
    Meta::format(&*reference, &Setting::new("reference"), false).await?;
    let rm = Meta::open(reference.clone(), MetaOptions::default(), None).await?;
    build_rich_tree(&rm).await?;
    rm.create(ME, ROOT, b"only-on-reference", 0o600).await?;
    let rtext = dump_text(&*reference).await?;
    let vol = ctx.extra_volume(None).await?;
    let b2 = vol.backend();
    load_text(&*b2, &rtext).await?;
    same_text(
        &rtext,
        &dump_text(&*b2).await?,
        "the reference's dump vs its load here",
    )?;
    fsck_clean(&*b2, "reference dump loaded here").await?;
    drop(b2);
    vol.close().await
}

/// Data awaiting deletion survives a dump → load: the pending-deletion records (a deleted
/// file's chunks, dropped slices) of the dumped volume are pending in the loaded one, so
/// the data layer can still delete those objects (JuiceFS dumps them as `DelFiles`).
pub async fn keeps_pending(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    build_rich_tree(&m).await?;
    let b = ctx.backend();
    let pending = pending_sorted(&*b).await?;
    ensure!(
        pending.len() == 2,
        "the rich tree should leave a pending file and a slice: {pending:?}"
    );
    let text = dump_text(&*b).await?;
    let vol = ctx.extra_volume(None).await?;
    let b2 = vol.backend();
    load_text(&*b2, &text).await?;
    let loaded = pending_sorted(&*b2).await?;
    ensure!(
        loaded == pending,
        "pending-deletion records lost by dump/load:\n  dumped volume {pending:?}\n  loaded volume {loaded:?}"
    );
    for p in &pending {
        if let Pending::File { ino, .. } = p {
            ensure!(
                b2.list_chunks(*ino).await? == b.list_chunks(*ino).await?,
                "chunks of pending file {ino} lost by dump/load"
            );
        }
    }
    drop(b2);
    vol.close().await
}

/// load refuses a volume that is already formatted (EEXIST) unless forced, and leaves it
/// untouched.
pub async fn load_refuses_formatted(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    m.create(ME, ROOT, b"precious", 0o644).await?;
    let b = ctx.backend();
    let before = dump_text(&*b).await?;
    let other = memory_backend();
    Meta::format(&other, &Setting::new("other"), false).await?;
    let text = dump_text(&other).await?;
    let mut input = text.as_bytes();
    let r = meta_core::dump::load(&*b, &mut input, false, &mut |_| {}).await;
    expect_err(r, AlreadyExists, "load into a formatted volume")?;
    same_text(
        &before,
        &dump_text(&*b).await?,
        "the volume after a refused load",
    )
}
