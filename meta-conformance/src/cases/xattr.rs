//! Extended attributes: setxattr(2), getxattr(2), listxattr(2), removexattr(2).

use super::prelude::*;

/// Names and values are bytes (binary values with NUL, non-UTF-8 names); listxattr gives
/// names in byte order; a plain set replaces; removexattr removes; every inode type
/// (directories, symlinks: `trusted.` names, `user.` being for files and directories) carries
/// xattrs.
pub async fn set_get_list_remove(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (f, _) = m.create(ME, ROOT, b"f", 0o644).await?;
    let (d, _) = m.mkdir(ME, ROOT, b"d", 0o755).await?;
    let (l, _) = m.symlink(ME, ROOT, b"l", b"f").await?;
    ensure!(m.listxattr(f).await?.is_empty(), "a new file has no xattrs");
    let binary = vec![0u8, 1, 2, 0, 255, 0];
    let odd_name = vec![b'u', b'.', 0xff, 0xfe];
    m.setxattr(Caller::ROOT, f, b"user.b", &binary, XattrFlags::NONE)
        .await?;
    m.setxattr(Caller::ROOT, f, b"user.a", b"first", XattrFlags::NONE)
        .await?;
    m.setxattr(Caller::ROOT, f, &odd_name, b"", XattrFlags::NONE)
        .await?;
    m.setxattr(Caller::ROOT, f, b"security.x", b"s", XattrFlags::NONE)
        .await?;
    let mut want = vec![
        b"user.a".to_vec(),
        b"user.b".to_vec(),
        odd_name.clone(),
        b"security.x".to_vec(),
    ];
    want.sort();
    ensure!(
        m.listxattr(f).await? == want,
        "listxattr: {:?}",
        m.listxattr(f).await?
    );
    ensure!(m.getxattr(f, b"user.b").await? == binary, "binary value");
    ensure!(m.getxattr(f, &odd_name).await?.is_empty(), "empty value");
    m.setxattr(Caller::ROOT, f, b"user.a", b"second", XattrFlags::NONE)
        .await?;
    ensure!(
        m.getxattr(f, b"user.a").await? == b"second",
        "replaced value"
    );
    m.removexattr(Caller::ROOT, f, b"user.a").await?;
    expect_err(m.getxattr(f, b"user.a").await, NoData, "a removed xattr")?;
    ensure!(m.listxattr(f).await?.len() == 3, "list after remove");
    m.setxattr(Caller::ROOT, d, b"user.dir", b"1", XattrFlags::NONE)
        .await?;
    // xattr(7): user. names only on regular files and directories (EPERM, root too).
    expect_err(
        m.setxattr(Caller::ROOT, l, b"user.link", b"2", XattrFlags::NONE)
            .await,
        NotPermitted,
        "a user. xattr on a symlink",
    )?;
    m.setxattr(Caller::ROOT, l, b"trusted.link", b"2", XattrFlags::NONE)
        .await?;
    ensure!(m.getxattr(d, b"user.dir").await? == b"1", "xattr of a dir");
    ensure!(
        m.getxattr(l, b"trusted.link").await? == b"2",
        "xattr of a symlink"
    );
    ensure!(
        m.listxattr(d).await? == vec![b"user.dir".to_vec()],
        "a dir's list"
    );
    Ok(())
}

/// setxattr(2) flags: XATTR_CREATE creates (EEXIST if present), XATTR_REPLACE replaces
/// (ENODATA if absent), both together or unknown bits are EINVAL.
pub async fn flags(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (f, _) = m.create(ME, ROOT, b"f", 0o644).await?;
    m.setxattr(Caller::ROOT, f, b"user.k", b"1", XattrFlags::CREATE)
        .await?;
    expect_err(
        m.setxattr(Caller::ROOT, f, b"user.k", b"2", XattrFlags::CREATE)
            .await,
        AlreadyExists,
        "CREATE again",
    )?;
    m.setxattr(Caller::ROOT, f, b"user.k", b"3", XattrFlags::REPLACE)
        .await?;
    ensure!(m.getxattr(f, b"user.k").await? == b"3", "REPLACE value");
    expect_err(
        m.setxattr(Caller::ROOT, f, b"user.n", b"1", XattrFlags::REPLACE)
            .await,
        NoData,
        "REPLACE of a missing name",
    )?;
    expect_err(
        m.setxattr(Caller::ROOT, f, b"user.k", b"4", XattrFlags(3))
            .await,
        InvalidArgument,
        "CREATE|REPLACE",
    )?;
    expect_err(
        m.setxattr(Caller::ROOT, f, b"user.k", b"4", XattrFlags(8))
            .await,
        InvalidArgument,
        "unknown flag",
    )?;
    ensure!(
        m.getxattr(f, b"user.k").await? == b"3",
        "refused sets changed the value"
    );
    ensure!(
        m.listxattr(f).await? == vec![b"user.k".to_vec()],
        "refused sets added names"
    );
    Ok(())
}

/// Limits (xattr(7)): names of 1..=255 bytes (ERANGE otherwise, checked on get and remove
/// too), values up to 64 KiB (E2BIG past it) round-trip exactly; NUL in a name is EINVAL.
pub async fn limits(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (f, _) = m.create(ME, ROOT, b"f", 0o644).await?;
    let long_name = vec![b'n'; 255];
    let big: Vec<u8> = (0..65_536u32).map(|i| (i % 251) as u8).collect();
    m.setxattr(Caller::ROOT, f, &long_name, &big, XattrFlags::NONE)
        .await?;
    ensure!(
        m.getxattr(f, &long_name).await? == big,
        "64 KiB value round trip"
    );
    expect_err(
        m.setxattr(Caller::ROOT, f, &[b'n'; 256], b"", XattrFlags::NONE)
            .await,
        OutOfRange,
        "256-byte name",
    )?;
    expect_err(
        m.getxattr(f, &[b'n'; 256]).await,
        OutOfRange,
        "getxattr of a 256-byte name",
    )?;
    expect_err(
        m.removexattr(Caller::ROOT, f, b"").await,
        OutOfRange,
        "removexattr of an empty name",
    )?;
    expect_err(
        m.setxattr(Caller::ROOT, f, b"a\0b", b"", XattrFlags::NONE)
            .await,
        InvalidArgument,
        "NUL in a name",
    )?;
    let mut too_big = big.clone();
    too_big.push(0);
    expect_err(
        m.setxattr(Caller::ROOT, f, b"user.x", &too_big, XattrFlags::NONE)
            .await,
        TooBig,
        "64 KiB + 1",
    )?;
    ensure!(
        m.listxattr(f).await? == vec![long_name],
        "refused sets added names"
    );
    Ok(())
}

/// An inode's xattrs go with it: after the last unlink (and rmdir) they are gone with the
/// inode (ENOENT), and new inodes start without any.
pub async fn deleted_with_inode(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (f, _) = m.create(ME, ROOT, b"f", 0o644).await?;
    let (d, _) = m.mkdir(ME, ROOT, b"d", 0o755).await?;
    m.setxattr(Caller::ROOT, f, b"user.a", b"1", XattrFlags::NONE)
        .await?;
    m.setxattr(Caller::ROOT, d, b"user.a", b"1", XattrFlags::NONE)
        .await?;
    m.unlink(ME, ROOT, b"f").await?;
    m.rmdir(ME, ROOT, b"d").await?;
    expect_err(
        m.listxattr(f).await,
        NotFound,
        "listxattr of an unlinked file",
    )?;
    expect_err(
        m.getxattr(d, b"user.a").await,
        NotFound,
        "getxattr of a removed dir",
    )?;
    let (g, _) = m.create(ME, ROOT, b"f", 0o644).await?;
    ensure!(
        m.listxattr(g).await?.is_empty(),
        "a new inode inherited xattrs"
    );
    fsck_clean(&*ctx.backend(), "xattrs of deleted inodes").await
}
