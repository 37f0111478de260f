//! Symlinks: symlink(2), readlink(2), target limits.

use super::prelude::*;

/// symlink(2)/readlink(2): the target comes back byte for byte (not necessarily UTF-8), the
/// symlink's length is the target's length, its mode 0o777, its type Symlink in lookup and
/// readdir; after unlink it is gone.
pub async fn readlink_and_length(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let targets: [&[u8]; 4] = [b"target/path", &[0xff, 0xfe, b'x', 0x80], b"/abs", b"."];
    for (i, target) in targets.iter().enumerate() {
        let name = format!("l{i}");
        let (l, a) = m.symlink(ME, ROOT, name.as_bytes(), target).await?;
        ensure!(a.typ == FileType::Symlink, "type {:?}", a.typ);
        ensure!(
            a.length == target.len() as u64,
            "length {} for {target:?}",
            a.length
        );
        ensure!(
            a.mode == 0o777 && a.nlink == 1,
            "mode {:o} nlink {}",
            a.mode,
            a.nlink
        );
        ensure!(m.readlink(l).await? == *target, "readlink of {name}");
        ensure!(
            m.lookup(ROOT, name.as_bytes()).await?.1 == a,
            "lookup attrs of {name}"
        );
    }
    let listed = list_all(&*ctx.backend(), ROOT, false, 100).await?;
    ensure!(
        listed.iter().all(|e| e.typ == FileType::Symlink),
        "readdir types: {listed:?}"
    );
    let (l0, _) = m.lookup(ROOT, b"l0").await?;
    m.unlink(ME, ROOT, b"l0").await?;
    expect_err(m.readlink(l0).await, NotFound, "readlink after unlink")?;
    counters_exact(&*ctx.backend(), "symlinks").await?;
    fsck_clean(&*ctx.backend(), "symlinks").await
}

/// Symlink targets: 4096 bytes (PATH_MAX) are fine, 4097 are ENAMETOOLONG, an empty target
/// or one with NUL is EINVAL — checked by the backend too (raw `Op::Mknod`), not only by
/// `Meta`.
pub async fn target_limits(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let long = vec![b'x'; 4096];
    let (l, a) = m.symlink(ME, ROOT, b"long", &long).await?;
    ensure!(
        a.length == 4096 && m.readlink(l).await? == long,
        "4096-byte target"
    );
    expect_err(
        m.symlink(ME, ROOT, b"l2", &[b'x'; 4097]).await,
        NameTooLong,
        "4097-byte target",
    )?;
    expect_err(
        m.symlink(ME, ROOT, b"l3", b"").await,
        InvalidArgument,
        "empty target",
    )?;
    expect_err(
        m.symlink(ME, ROOT, b"l4", b"a\0b").await,
        InvalidArgument,
        "target with NUL",
    )?;
    let b = ctx.backend();
    for (target, kind) in [
        (vec![b'x'; 4097], NameTooLong),
        (Vec::new(), InvalidArgument),
        (b"a\0b".to_vec(), InvalidArgument),
    ] {
        let mut op = mknod_op(ROOT, b"raw", m.new_ino().await?, FileType::Symlink, t(0, 0));
        if let Op::Mknod { target: tg, .. } = &mut op {
            *tg = target.clone();
        }
        expect_err(
            apply1(&*b, op).await?,
            kind,
            format!("raw symlink with a {}-byte target", target.len()),
        )?;
    }
    expect_err(
        m.lookup(ROOT, b"raw").await,
        NotFound,
        "a refused symlink left an entry",
    )?;
    counters_exact(&*b, "symlink limits").await
}
