//! The errno matrix: every op's error cases, through `Meta` (so through the batcher), and a
//! check that a failed op leaves no trace.

use super::prelude::*;

const TYPES: [FileType; 7] = [
    FileType::Regular,
    FileType::Directory,
    FileType::Symlink,
    FileType::Fifo,
    FileType::CharDevice,
    FileType::BlockDevice,
    FileType::Socket,
];

/// mknod(2)/mkdir(2)/creat(2): ENOENT for a missing parent, ENOTDIR when the parent is not a
/// directory, EEXIST when the name is taken (whatever either type is), EINVAL for empty,
/// `.`, `..`, `/`- or NUL-containing names, ENAMETOOLONG past 255 bytes (NAME_MAX).
pub async fn mknod(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (f, _) = m.create(ME, ROOT, b"file", 0o644).await?;
    m.mkdir(ME, ROOT, b"dir", 0o755).await?;
    m.symlink(ME, ROOT, b"link", b"file").await?;
    expect_err(
        m.create(ME, MISSING, b"x", 0o644).await,
        NotFound,
        "create in a missing parent",
    )?;
    expect_err(
        m.mkdir(ME, f, b"x", 0o755).await,
        NotADirectory,
        "mkdir under a regular file",
    )?;
    for typ in TYPES {
        for taken in [&b"file"[..], b"dir", b"link"] {
            let r = if typ == FileType::Symlink {
                m.symlink(ME, ROOT, taken, b"t").await
            } else {
                m.mknod(ME, ROOT, taken, typ, 0o644, 0).await
            };
            expect_err(
                r,
                AlreadyExists,
                format!(
                    "{} over existing {:?}",
                    typ.name(),
                    String::from_utf8_lossy(taken)
                ),
            )?;
        }
    }
    for bad in [&b""[..], b".", b"..", b"a/b", b"/", b"a\0b"] {
        expect_err(
            m.create(ME, ROOT, bad, 0o644).await,
            InvalidArgument,
            format!("create named {bad:?}"),
        )?;
    }
    expect_err(
        m.mkdir(ME, ROOT, &[b'n'; 256], 0o755).await,
        NameTooLong,
        "mkdir with a 256-byte name",
    )?;
    m.create(ME, ROOT, &[b'n'; 255], 0o644)
        .await
        .context("a 255-byte name is valid")?;
    // Nothing but the four successful creates is visible.
    ensure!(
        names(&*ctx.backend(), ROOT).await?.len() == 4,
        "failed creates left entries"
    );
    counters_exact(&*ctx.backend(), "after failed creates").await?;
    fsck_clean(&*ctx.backend(), "after failed creates").await
}

/// link(2): ENOENT for a missing inode or parent, ENOTDIR when the new parent is not a
/// directory, EEXIST for a taken name, EPERM for a directory, EINVAL/ENAMETOOLONG for names.
pub async fn link(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (f, _) = m.create(ME, ROOT, b"file", 0o644).await?;
    let (d, _) = m.mkdir(ME, ROOT, b"dir", 0o755).await?;
    expect_err(
        m.link(Caller::ROOT, MISSING, ROOT, b"x").await,
        NotFound,
        "link a missing inode",
    )?;
    expect_err(
        m.link(Caller::ROOT, f, MISSING, b"x").await,
        NotFound,
        "link into a missing dir",
    )?;
    expect_err(
        m.link(Caller::ROOT, f, f, b"x").await,
        NotADirectory,
        "link into a regular file",
    )?;
    expect_err(
        m.link(Caller::ROOT, f, ROOT, b"dir").await,
        AlreadyExists,
        "link over a taken name",
    )?;
    expect_err(
        m.link(Caller::ROOT, d, ROOT, b"d2").await,
        NotPermitted,
        "hard link to a directory",
    )?;
    expect_err(
        m.link(Caller::ROOT, f, ROOT, b"a/b").await,
        InvalidArgument,
        "link named a/b",
    )?;
    expect_err(
        m.link(Caller::ROOT, f, ROOT, b"").await,
        InvalidArgument,
        "link with empty name",
    )?;
    expect_err(
        m.link(Caller::ROOT, f, ROOT, &[b'x'; 256]).await,
        NameTooLong,
        "link with a 256-byte name",
    )?;
    ensure!(m.getattr(f).await?.nlink == 1, "failed links changed nlink");
    ensure!(
        m.getattr(d).await?.nlink == 2,
        "failed link changed a dir's nlink"
    );
    fsck_clean(&*ctx.backend(), "after failed links").await
}

/// unlink(2): ENOENT for a missing name or parent, ENOTDIR when the parent is not a
/// directory, EISDIR for a directory, EINVAL for `.`/`..`.
pub async fn unlink(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (f, _) = m.create(ME, ROOT, b"file", 0o644).await?;
    m.mkdir(ME, ROOT, b"dir", 0o755).await?;
    expect_err(
        m.unlink(ME, ROOT, b"nope").await,
        NotFound,
        "unlink a missing name",
    )?;
    expect_err(
        m.unlink(ME, MISSING, b"x").await,
        NotFound,
        "unlink in a missing dir",
    )?;
    expect_err(
        m.unlink(ME, f, b"x").await,
        NotADirectory,
        "unlink under a file",
    )?;
    expect_err(
        m.unlink(ME, ROOT, b"dir").await,
        IsADirectory,
        "unlink a directory",
    )?;
    expect_err(m.unlink(ME, ROOT, b".").await, InvalidArgument, "unlink .")?;
    expect_err(
        m.unlink(ME, ROOT, b"..").await,
        InvalidArgument,
        "unlink ..",
    )?;
    ensure!(
        names(&*ctx.backend(), ROOT).await?.len() == 2,
        "failed unlinks removed entries"
    );
    // The other types unlink fine.
    m.symlink(ME, ROOT, b"l", b"file").await?;
    m.mknod(ME, ROOT, b"p", FileType::Fifo, 0o644, 0).await?;
    m.unlink(ME, ROOT, b"l").await?;
    m.unlink(ME, ROOT, b"p").await?;
    m.unlink(ME, ROOT, b"file").await?;
    expect_err(
        m.getattr(f).await,
        NotFound,
        "getattr after the last unlink",
    )?;
    counters_exact(&*ctx.backend(), "after unlinks").await?;
    fsck_clean(&*ctx.backend(), "after unlinks").await
}

/// rmdir(2): ENOENT for a missing name or parent, ENOTDIR for a non-directory entry or
/// parent, ENOTEMPTY for a directory with entries, EINVAL for `.`.
pub async fn rmdir(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (f, _) = m.create(ME, ROOT, b"file", 0o644).await?;
    let (d, _) = m.mkdir(ME, ROOT, b"dir", 0o755).await?;
    m.create(ME, d, b"inside", 0o644).await?;
    expect_err(
        m.rmdir(ME, ROOT, b"nope").await,
        NotFound,
        "rmdir a missing name",
    )?;
    expect_err(
        m.rmdir(ME, MISSING, b"x").await,
        NotFound,
        "rmdir in a missing dir",
    )?;
    expect_err(
        m.rmdir(ME, ROOT, b"file").await,
        NotADirectory,
        "rmdir a file",
    )?;
    expect_err(
        m.rmdir(ME, f, b"x").await,
        NotADirectory,
        "rmdir under a file",
    )?;
    expect_err(
        m.rmdir(ME, ROOT, b"dir").await,
        NotEmpty,
        "rmdir a non-empty dir",
    )?;
    expect_err(m.rmdir(ME, ROOT, b".").await, InvalidArgument, "rmdir .")?;
    ensure!(
        m.getattr(ROOT).await?.nlink == 3,
        "failed rmdirs changed root's nlink"
    );
    m.unlink(ME, d, b"inside").await?;
    m.rmdir(ME, ROOT, b"dir").await?;
    expect_err(m.getattr(d).await, NotFound, "getattr of a removed dir")?;
    ensure!(
        m.getattr(ROOT).await?.nlink == 2,
        "rmdir did not drop root's nlink"
    );
    counters_exact(&*ctx.backend(), "after rmdir").await?;
    fsck_clean(&*ctx.backend(), "after rmdir").await
}

/// rename(2)/renameat2(2): ENOENT (source, source dir, destination dir; EXCHANGE with a
/// missing destination), ENOTDIR (dir over a non-dir, destination parent a file), EISDIR
/// (non-dir over a dir), ENOTEMPTY, EEXIST (NOREPLACE), EINVAL (both flags, unknown flags,
/// into own subtree).
pub async fn rename(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let n = RenameFlags::NONE;
    let (f, _) = m.create(ME, ROOT, b"file", 0o644).await?;
    let (d, _) = m.mkdir(ME, ROOT, b"dir", 0o755).await?;
    let (full, _) = m.mkdir(ME, ROOT, b"full", 0o755).await?;
    m.create(ME, full, b"x", 0o644).await?;
    let e = |r, k, w: &str| expect_err(r, k, format!("rename {w}"));
    e(
        m.rename(ME, ROOT, b"nope", ROOT, b"y", n).await,
        NotFound,
        "missing source",
    )?;
    e(
        m.rename(ME, MISSING, b"a", ROOT, b"y", n).await,
        NotFound,
        "from a missing dir",
    )?;
    e(
        m.rename(ME, ROOT, b"file", MISSING, b"y", n).await,
        NotFound,
        "into a missing dir",
    )?;
    e(
        m.rename(ME, ROOT, b"file", f, b"y", n).await,
        NotADirectory,
        "into a file",
    )?;
    e(
        m.rename(ME, ROOT, b"dir", ROOT, b"file", n).await,
        NotADirectory,
        "dir over file",
    )?;
    e(
        m.rename(ME, ROOT, b"file", ROOT, b"dir", n).await,
        IsADirectory,
        "file over dir",
    )?;
    e(
        m.rename(ME, ROOT, b"dir", ROOT, b"full", n).await,
        NotEmpty,
        "over a non-empty dir",
    )?;
    e(
        m.rename(ME, ROOT, b"file", ROOT, b"dir", RenameFlags::NOREPLACE)
            .await,
        AlreadyExists,
        "NOREPLACE onto an existing name",
    )?;
    e(
        m.rename(ME, ROOT, b"file", ROOT, b"y", RenameFlags::EXCHANGE)
            .await,
        NotFound,
        "EXCHANGE with a missing destination",
    )?;
    e(
        m.rename(ME, ROOT, b"file", ROOT, b"y", RenameFlags(3))
            .await,
        InvalidArgument,
        "with NOREPLACE|EXCHANGE",
    )?;
    e(
        m.rename(ME, ROOT, b"file", ROOT, b"y", RenameFlags(4))
            .await,
        InvalidArgument,
        "with an unknown flag",
    )?;
    e(
        m.rename(ME, ROOT, b"dir", d, b"sub", n).await,
        InvalidArgument,
        "into itself",
    )?;
    e(
        m.rename(ME, ROOT, b"file", ROOT, b"a/b", n).await,
        InvalidArgument,
        "to a/b",
    )?;
    e(
        m.rename(ME, ROOT, b"file", ROOT, &[b'z'; 256], n).await,
        NameTooLong,
        "to 256 bytes",
    )?;
    let mut got = names(&*ctx.backend(), ROOT).await?;
    got.sort();
    ensure!(
        got == vec![b"dir".to_vec(), b"file".to_vec(), b"full".to_vec()],
        "failed renames changed root: {got:?}"
    );
    ensure!(
        m.getattr(ROOT).await?.nlink == 4,
        "failed renames changed root's nlink"
    );
    fsck_clean(&*ctx.backend(), "after failed renames").await
}

/// setattr (chmod/chown/utimens/truncate): ENOENT for a missing inode, EISDIR for SIZE on a
/// directory, EINVAL for SIZE on a symlink or device (truncate(2)).
pub async fn setattr(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (d, _) = m.mkdir(ME, ROOT, b"dir", 0o755).await?;
    let (l, _) = m.symlink(ME, ROOT, b"l", b"dir").await?;
    let (c, _) = m
        .mknod(ME, ROOT, b"c", FileType::CharDevice, 0o644, 1)
        .await?;
    let size = |n| SetAttrValues {
        size: n,
        ..Default::default()
    };
    expect_err(
        m.setattr(
            Caller::ROOT,
            MISSING,
            SetAttrMask::MODE,
            SetAttrValues::default(),
        )
        .await,
        NotFound,
        "chmod of a missing inode",
    )?;
    expect_err(
        m.setattr(Caller::ROOT, d, SetAttrMask::SIZE, size(1)).await,
        IsADirectory,
        "SIZE on a dir",
    )?;
    expect_err(
        m.setattr(Caller::ROOT, l, SetAttrMask::SIZE, size(1)).await,
        InvalidArgument,
        "SIZE on a symlink",
    )?;
    expect_err(
        m.setattr(Caller::ROOT, c, SetAttrMask::SIZE, size(1)).await,
        InvalidArgument,
        "SIZE on a device",
    )?;
    // A failing SIZE in a combined mask changes nothing else either.
    let before = m.getattr(d).await?;
    expect_err(
        m.setattr(
            Caller::ROOT,
            d,
            SetAttrMask::SIZE | SetAttrMask::MODE,
            SetAttrValues {
                mode: 0o700,
                size: 5,
                ..Default::default()
            },
        )
        .await,
        IsADirectory,
        "SIZE|MODE on a dir",
    )?;
    ensure!(
        m.getattr(d).await? == before,
        "a failed setattr changed the attributes"
    );
    Ok(())
}

/// write/truncate: ENOENT for a missing inode, EISDIR for a directory, EINVAL for other
/// non-regular files, for a slice passing the 64 MiB chunk end, and for a length past the
/// maximum file length.
pub async fn write_truncate(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (f, _) = m.create(ME, ROOT, b"f", 0o644).await?;
    let (d, _) = m.mkdir(ME, ROOT, b"d", 0o755).await?;
    let (p, _) = m.mknod(ME, ROOT, b"p", FileType::Fifo, 0o644, 0).await?;
    let (l, _) = m.symlink(ME, ROOT, b"l", b"f").await?;
    let s = slice(m.new_slice_id().await?, 0, 10);
    expect_err(
        m.write(Caller::ROOT, MISSING, 0, s).await,
        NotFound,
        "write to a missing inode",
    )?;
    expect_err(
        m.write(Caller::ROOT, d, 0, s).await,
        IsADirectory,
        "write to a directory",
    )?;
    expect_err(
        m.write(Caller::ROOT, p, 0, s).await,
        InvalidArgument,
        "write to a fifo",
    )?;
    expect_err(
        m.write(Caller::ROOT, l, 0, s).await,
        InvalidArgument,
        "write to a symlink",
    )?;
    let past = slice(s.id, (meta_core::CHUNK_SIZE - 5) as u32, 10);
    expect_err(
        m.write(Caller::ROOT, f, 0, past).await,
        InvalidArgument,
        "slice passing the chunk end",
    )?;
    expect_err(
        m.truncate(Caller::ROOT, MISSING, 0).await,
        NotFound,
        "truncate a missing inode",
    )?;
    expect_err(
        m.truncate(Caller::ROOT, d, 0).await,
        IsADirectory,
        "truncate a directory",
    )?;
    expect_err(
        m.truncate(Caller::ROOT, p, 0).await,
        InvalidArgument,
        "truncate a fifo",
    )?;
    expect_err(
        m.truncate(Caller::ROOT, f, meta_core::types::MAX_FILE_LEN + 1)
            .await,
        InvalidArgument,
        "truncate past the maximum length",
    )?;
    let a = m.getattr(f).await?;
    ensure!(
        a.length == 0,
        "failed writes changed the length to {}",
        a.length
    );
    ensure!(
        m.read(f, 0).await?.is_empty(),
        "a failed write left a slice"
    );
    counters_exact(&*ctx.backend(), "after failed writes").await
}

/// getxattr/setxattr/removexattr/listxattr(2): ENOENT for a missing inode, ENODATA for a
/// missing attribute (get, remove, REPLACE), EEXIST for CREATE over an existing one, ERANGE
/// for an empty or over-255-byte name, E2BIG for a value over 64 KiB.
pub async fn xattr(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (f, _) = m.create(ME, ROOT, b"f", 0o644).await?;
    m.setxattr(Caller::ROOT, f, b"user.a", b"1", XattrFlags::NONE)
        .await?;
    expect_err(
        m.getxattr(f, b"user.b").await,
        NoData,
        "getxattr of a missing name",
    )?;
    expect_err(
        m.removexattr(Caller::ROOT, f, b"user.b").await,
        NoData,
        "removexattr of a missing name",
    )?;
    expect_err(
        m.setxattr(Caller::ROOT, f, b"user.b", b"2", XattrFlags::REPLACE)
            .await,
        NoData,
        "REPLACE of a missing name",
    )?;
    expect_err(
        m.setxattr(Caller::ROOT, f, b"user.a", b"2", XattrFlags::CREATE)
            .await,
        AlreadyExists,
        "CREATE of an existing name",
    )?;
    expect_err(
        m.setxattr(Caller::ROOT, f, b"", b"2", XattrFlags::NONE)
            .await,
        OutOfRange,
        "empty name",
    )?;
    expect_err(
        m.setxattr(Caller::ROOT, f, &[b'n'; 256], b"2", XattrFlags::NONE)
            .await,
        OutOfRange,
        "256-byte name",
    )?;
    expect_err(
        m.setxattr(
            Caller::ROOT,
            f,
            b"user.big",
            &vec![7; 65537],
            XattrFlags::NONE,
        )
        .await,
        TooBig,
        "value over 64 KiB",
    )?;
    expect_err(
        m.getxattr(MISSING, b"user.a").await,
        NotFound,
        "getxattr of a missing inode",
    )?;
    expect_err(
        m.setxattr(Caller::ROOT, MISSING, b"user.a", b"", XattrFlags::NONE)
            .await,
        NotFound,
        "setxattr of a missing inode",
    )?;
    expect_err(
        m.removexattr(Caller::ROOT, MISSING, b"user.a").await,
        NotFound,
        "removexattr of a missing inode",
    )?;
    expect_err(
        m.listxattr(MISSING).await,
        NotFound,
        "listxattr of a missing inode",
    )?;
    ensure!(
        m.listxattr(f).await? == vec![b"user.a".to_vec()],
        "failed setxattrs changed the list"
    );
    ensure!(
        m.getxattr(f, b"user.a").await? == b"1",
        "a failed CREATE changed the value"
    );
    Ok(())
}

/// Reads: lookup ENOENT/ENOTDIR, getattr ENOENT, readdir ENOENT/ENOTDIR, readlink EINVAL
/// for a non-symlink (readlink(2)) and ENOENT for a missing inode.
pub async fn reads(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (f, _) = m.create(ME, ROOT, b"f", 0o644).await?;
    let (d, _) = m.mkdir(ME, ROOT, b"d", 0o755).await?;
    expect_err(
        m.lookup(ROOT, b"nope").await,
        NotFound,
        "lookup a missing name",
    )?;
    expect_err(
        m.lookup(MISSING, b"f").await,
        NotFound,
        "lookup in a missing dir",
    )?;
    expect_err(m.lookup(f, b"x").await, NotADirectory, "lookup in a file")?;
    expect_err(
        m.getattr(MISSING).await,
        NotFound,
        "getattr of a missing inode",
    )?;
    expect_err(
        m.readdir(MISSING, None, 10, false).await,
        NotFound,
        "readdir of a missing dir",
    )?;
    expect_err(
        m.readdir(f, None, 10, false).await,
        NotADirectory,
        "readdir of a file",
    )?;
    expect_err(
        m.readdir(f, None, 10, true).await,
        NotADirectory,
        "readdirplus of a file",
    )?;
    expect_err(m.readlink(f).await, InvalidArgument, "readlink of a file")?;
    expect_err(m.readlink(d).await, InvalidArgument, "readlink of a dir")?;
    expect_err(
        m.readlink(MISSING).await,
        NotFound,
        "readlink of a missing inode",
    )?;
    Ok(())
}

/// The sticky bit (unlink(2), rmdir(2), rename(2): EPERM): in a directory with mode 0o1000,
/// only root, the directory's owner and the entry's owner may remove or rename an entry,
/// and a rename may not replace someone else's entry either.
pub async fn sticky_bit(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let owner = Caller::new(1000, 1000);
    let alice = Caller::new(2000, 2000);
    let bob = Caller::new(3000, 3000);
    let (tmp, _) = m.mkdir(owner.clone(), ROOT, b"tmp", 0o777).await?;
    m.setattr(
        Caller::ROOT,
        tmp,
        SetAttrMask::MODE,
        SetAttrValues {
            mode: 0o1777,
            ..Default::default()
        },
    )
    .await?;
    for name in [&b"a1"[..], b"a2", b"a3", b"a4"] {
        m.create(alice.clone(), tmp, name, 0o666).await?;
    }
    m.mkdir(alice.clone(), tmp, b"adir", 0o777).await?;
    m.create(bob.clone(), tmp, b"b1", 0o666).await?;
    let n = RenameFlags::NONE;
    expect_err(
        m.unlink(bob.clone(), tmp, b"a1").await,
        NotPermitted,
        "bob unlinks alice's file",
    )?;
    expect_err(
        m.rmdir(bob.clone(), tmp, b"adir").await,
        NotPermitted,
        "bob removes alice's dir",
    )?;
    expect_err(
        m.rename(bob.clone(), tmp, b"a1", tmp, b"x", n).await,
        NotPermitted,
        "bob renames alice's file",
    )?;
    expect_err(
        m.rename(bob.clone(), tmp, b"b1", tmp, b"a1", n).await,
        NotPermitted,
        "bob's rename replaces alice's file",
    )?;
    expect_err(
        m.rename(bob.clone(), tmp, b"a1", ROOT, b"x", n).await,
        NotPermitted,
        "bob moves alice's file out",
    )?;
    ensure!(
        names(&*ctx.backend(), tmp).await?.len() == 6,
        "a refused op changed tmp"
    );
    // Allowed: the entry's owner, the directory's owner, root.
    m.rename(alice.clone(), tmp, b"a1", tmp, b"a1-renamed", n)
        .await
        .context("alice renames her own file")?;
    m.unlink(alice, tmp, b"a1-renamed")
        .await
        .context("alice unlinks her own file")?;
    m.unlink(owner.clone(), tmp, b"a2")
        .await
        .context("the dir owner unlinks alice's file")?;
    m.unlink(Caller::ROOT, tmp, b"a3")
        .await
        .context("root unlinks alice's file")?;
    m.rmdir(owner, tmp, b"adir")
        .await
        .context("the dir owner removes alice's dir")?;
    m.unlink(bob.clone(), tmp, b"b1")
        .await
        .context("bob unlinks his own file")?;
    // Without the sticky bit anybody may remove entries (meta checks no other permission).
    m.setattr(
        Caller::ROOT,
        tmp,
        SetAttrMask::MODE,
        SetAttrValues {
            mode: 0o777,
            ..Default::default()
        },
    )
    .await?;
    m.unlink(bob, tmp, b"a4")
        .await
        .context("bob unlinks in a non-sticky dir")?;
    ensure!(
        names(&*ctx.backend(), tmp).await?.is_empty(),
        "tmp should be empty"
    );
    fsck_clean(&*ctx.backend(), "after sticky tests").await
}

/// ENOSPC from the inode limit of the format record: creates (of any type) fail once the
/// limit is reached, links (no new inode) still work, and freeing an inode makes room again.
pub async fn enospc_inodes(ctx: &TestCtx) -> Result<()> {
    let vol = ctx.extra_volume(Some(&limited_setting(0, 5))).await?;
    let m = vol.meta(MetaOptions::default()).await?;
    let (f, _) = m.create(ME, ROOT, b"f1", 0o644).await?;
    m.mkdir(ME, ROOT, b"d", 0o755).await?;
    m.symlink(ME, ROOT, b"l", b"f1").await?;
    m.create(ME, ROOT, b"f2", 0o644).await?;
    let st = m.statfs().await?;
    ensure!(
        st.used_inodes == 5 && st.avail_inodes == 0,
        "statfs at the limit: {st:?}"
    );
    expect_err(
        m.create(ME, ROOT, b"f3", 0o644).await,
        NoSpace,
        "create past the inode limit",
    )?;
    expect_err(
        m.mkdir(ME, ROOT, b"d2", 0o755).await,
        NoSpace,
        "mkdir past the inode limit",
    )?;
    expect_err(
        m.symlink(ME, ROOT, b"l2", b"x").await,
        NoSpace,
        "symlink past the inode limit",
    )?;
    m.link(Caller::ROOT, f, ROOT, b"f1-link")
        .await
        .context("a link needs no inode")?;
    m.unlink(ME, ROOT, b"f2").await?;
    m.create(ME, ROOT, b"f3", 0o644)
        .await
        .context("create after freeing an inode")?;
    counters_exact(&*vol.backend(), "inode-limited volume").await?;
    drop(m);
    vol.close().await
}

/// ENOSPC from the capacity of the format record: creates, writes and growing truncates
/// that would pass it fail and change nothing; space is counted 4 KiB-aligned per inode.
pub async fn enospc_capacity(ctx: &TestCtx) -> Result<()> {
    let vol = ctx
        .extra_volume(Some(&limited_setting(10 * 4096, 0)))
        .await?;
    let m = vol.meta(MetaOptions::default()).await?;
    // root 4 KiB + f 4 KiB = 8 KiB
    let (f, _) = m.create(ME, ROOT, b"f", 0o644).await?;
    let id = m.new_slice_id().await?;
    m.write(Caller::ROOT, f, 0, slice(id, 0, 8 * 4096)).await?; // f: 32 KiB → used 36 KiB
    ensure!(
        m.statfs().await?.used_space == 9 * 4096,
        "used_space after the write"
    );
    let id2 = m.new_slice_id().await?;
    expect_err(
        m.write(Caller::ROOT, f, 0, slice(id2, 8 * 4096, 2 * 4096))
            .await,
        NoSpace,
        "write past the capacity",
    )?;
    expect_err(
        m.truncate(Caller::ROOT, f, 10 * 4096).await,
        NoSpace,
        "truncate past the capacity",
    )?;
    let a = m.getattr(f).await?;
    ensure!(
        a.length == 8 * 4096,
        "a refused write changed the length to {}",
        a.length
    );
    ensure!(
        m.read(f, 0).await?.len() == 1,
        "a refused write left a slice"
    );
    m.create(ME, ROOT, b"g", 0o644)
        .await
        .context("the last 4 KiB")?; // 40 KiB = capacity
    expect_err(
        m.create(ME, ROOT, b"h", 0o644).await,
        NoSpace,
        "create past the capacity",
    )?;
    expect_err(
        m.mkdir(ME, ROOT, b"dd", 0o755).await,
        NoSpace,
        "mkdir past the capacity",
    )?;
    let st = m.statfs().await?;
    ensure!(
        st.used_space == 10 * 4096 && st.avail_space == 0 && st.total_space == 10 * 4096,
        "statfs when full: {st:?}"
    );
    m.truncate(Caller::ROOT, f, 0)
        .await
        .context("shrinking always works")?;
    m.create(ME, ROOT, b"h", 0o644)
        .await
        .context("create after freeing space")?;
    counters_exact(&*vol.backend(), "capacity-limited volume").await?;
    drop(m);
    vol.close().await
}
