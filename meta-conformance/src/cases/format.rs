//! The format contract of `Backend::format` / `Backend::load`.

use super::prelude::*;

/// format(2)-like contract: an unformatted volume has no format record (`load` and
/// `Meta::open` give ENOENT, not an implicit volume); formatting again with the same name
/// keeps the stored record and the data; another name without `force` is EEXIST and
/// changes nothing; with `force` the old volume is erased and a fresh root created.
pub async fn contract(ctx: &TestCtx) -> Result<()> {
    let vol = ctx.extra_volume(None).await?;
    let b = vol.backend();
    expect_err(b.load().await, NotFound, "load of an unformatted volume")?;
    match Meta::open(b.clone(), MetaOptions::default(), None).await {
        Err(e) if e.kind() == NotFound => {}
        Err(e) => bail!("Meta::open of an unformatted volume: {e}"),
        Ok(_) => bail!("Meta::open of an unformatted volume succeeded"),
    }
    let s1 = Setting::new("first");
    Meta::format(&*b, &s1, false).await?;
    ensure!(b.load().await? == s1, "load after format");
    let m = vol.meta(MetaOptions::default()).await?;
    m.create(ME, ROOT, b"keep", 0o644).await?;
    let again = Setting::new("first");
    Meta::format(&*b, &again, false)
        .await
        .context("format again with the same name")?;
    ensure!(
        b.load().await? == s1,
        "a repeated format replaced the stored record"
    );
    ensure!(
        m.lookup(ROOT, b"keep").await.is_ok(),
        "a repeated format lost data"
    );
    let s2 = Setting::new("second");
    expect_err(
        Meta::format(&*b, &s2, false).await,
        AlreadyExists,
        "format with another name",
    )?;
    ensure!(
        b.load().await? == s1 && m.lookup(ROOT, b"keep").await.is_ok(),
        "a refused format changed the volume"
    );
    drop(m);
    Meta::format(&*b, &s2, true)
        .await
        .context("forced format")?;
    ensure!(b.load().await? == s2, "load after a forced format");
    ensure!(
        names(&*b, ROOT).await?.is_empty(),
        "a forced format kept entries"
    );
    let st = b.statfs().await?;
    ensure!(
        st.used_inodes == 1 && st.used_space == 4096,
        "statfs after a forced format: {st:?}"
    );
    let root = b.get_attr(ROOT).await?;
    ensure!(
        root.typ == FileType::Directory
            && root.mode == 0o777
            && root.uid == 0
            && root.nlink == 2
            && root.parent == ROOT,
        "root after format: {root:?}"
    );
    fsck_clean(&*b, "after a forced format").await?;
    let m = vol.meta(MetaOptions::default()).await?;
    m.create(ME, ROOT, b"new", 0o644).await?;
    fsck_clean(&*b, "creates after a forced format").await?;
    drop((m, b));
    vol.close().await
}
