//! rename(2) and renameat2(2): moves, overwrites, flags, cycles, parents' nlink.

use super::prelude::*;

const N: RenameFlags = RenameFlags::NONE;

/// rename(2) within one directory: the name moves to the same inode, the inode's ctime and
/// the directory's mtime/ctime become the op's time, the directory's nlink is unchanged.
pub async fn same_dir(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (f, _) = m.create(ME, ROOT, b"a", 0o644).await?;
    let (d, _) = m.mkdir(ME, ROOT, b"dir", 0o755).await?;
    let time = t(100, 7);
    let out = m
        .submit(Op::Rename {
            parent: ROOT,
            name: b"a".to_vec(),
            new_parent: ROOT,
            new_name: b"b".to_vec(),
            flags: N,
            caller: ME,
            time,
        })
        .await?;
    let OpOutput::Renamed {
        ino,
        attr,
        parent,
        new_parent,
        replaced,
    } = out
    else {
        bail!("rename returned {out:?}");
    };
    ensure!(
        ino == f && replaced.is_none(),
        "rename output {ino} {replaced:?}"
    );
    ensure!(
        attr.ctime == time,
        "the moved inode's ctime is {:?}",
        attr.ctime
    );
    ensure!(
        parent.mtime == time && parent.ctime == time && parent == new_parent,
        "the directory's times after rename: {parent:?}"
    );
    ensure!(parent.nlink == 3, "a file rename changed the dir's nlink");
    expect_err(m.lookup(ROOT, b"a").await, NotFound, "the old name")?;
    ensure!(
        m.lookup(ROOT, b"b").await?.0 == f,
        "the new name points elsewhere"
    );
    ensure!(
        m.getattr(f).await? == attr,
        "getattr differs from the rename output"
    );
    ensure!(
        m.getattr(ROOT).await? == parent,
        "root differs from the rename output"
    );
    // A directory renamed in place keeps every nlink.
    m.rename(ME, ROOT, b"dir", ROOT, b"dir2", N).await?;
    ensure!(
        m.getattr(ROOT).await?.nlink == 3,
        "root nlink after a dir rename"
    );
    ensure!(m.getattr(d).await?.nlink == 2, "dir nlink after its rename");
    fsck_clean(&*ctx.backend(), "rename in place").await
}

/// rename(2) across directories: a moved directory's `..` and `parent` follow it, the old
/// parent loses one nlink and the new one gains one; a moved file's `parent` follows it.
pub async fn across_dirs(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (a, _) = m.mkdir(ME, ROOT, b"A", 0o755).await?;
    let (b, _) = m.mkdir(ME, ROOT, b"B", 0o755).await?;
    let (sub, _) = m.mkdir(ME, a, b"sub", 0o755).await?;
    let (f, _) = m.create(ME, a, b"f", 0o644).await?;
    m.create(ME, sub, b"deep", 0o644).await?;
    ensure!(m.getattr(a).await?.nlink == 3, "A with one subdir");
    let (ino, attr) = m.rename(ME, a, b"sub", b, b"moved", N).await?;
    ensure!(
        ino == sub && attr.parent == b,
        "moved dir's parent is {}",
        attr.parent
    );
    ensure!(m.getattr(a).await?.nlink == 2, "old parent nlink");
    ensure!(m.getattr(b).await?.nlink == 3, "new parent nlink");
    ensure!(m.lookup(sub, b"..").await?.0 == b, "`..` of the moved dir");
    ensure!(
        m.lookup(sub, b"deep").await.is_ok(),
        "the moved dir lost its content"
    );
    let (_, fa) = m.rename(ME, a, b"f", b, b"f", N).await?;
    ensure!(fa.parent == b, "moved file's parent is {}", fa.parent);
    ensure!(
        m.getattr(f).await?.parent == b,
        "getattr parent of the moved file"
    );
    expect_err(
        m.lookup(a, b"f").await,
        NotFound,
        "old name of the moved file",
    )?;
    ensure!(
        names(&*ctx.backend(), a).await?.is_empty(),
        "A should be empty"
    );
    fsck_clean(&*ctx.backend(), "rename across dirs").await
}

/// rename(2) over an existing file: the replaced inode loses its last link and is deleted
/// (its data becomes pending deletion), counters drop, and the output names it.
pub async fn overwrite_file(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (old, _) = m.create(ME, ROOT, b"target", 0o644).await?;
    let id = m.new_slice_id().await?;
    m.write(Caller::ROOT, old, 0, slice(id, 0, 5000)).await?;
    let (new, _) = m.create(ME, ROOT, b"src", 0o644).await?;
    let before = m.statfs().await?;
    let out = m
        .submit(Op::Rename {
            parent: ROOT,
            name: b"src".to_vec(),
            new_parent: ROOT,
            new_name: b"target".to_vec(),
            flags: N,
            caller: ME,
            time: t(1, 0),
        })
        .await?;
    let OpOutput::Renamed { ino, replaced, .. } = out else {
        bail!("rename returned {out:?}");
    };
    ensure!(ino == new, "moved inode {ino}");
    ensure!(replaced == Some((old, None)), "replaced = {replaced:?}");
    expect_err(m.getattr(old).await, NotFound, "the replaced inode")?;
    ensure!(
        m.lookup(ROOT, b"target").await?.0 == new,
        "target points elsewhere"
    );
    let after = m.statfs().await?;
    ensure!(
        after.used_inodes == before.used_inodes - 1 && after.used_space == before.used_space - 8192,
        "counters after overwrite: {before:?} -> {after:?}"
    );
    let pending = pending_sorted(&*ctx.backend()).await?;
    ensure!(
        pending
            == vec![Pending::File {
                ino: old,
                length: 5000
            }],
        "pending after overwrite: {pending:?}"
    );
    counters_exact(&*ctx.backend(), "after overwrite").await?;
    fsck_clean(&*ctx.backend(), "after overwrite").await
}

/// rename(2) over a file that has another hard link: only that name goes, the inode stays
/// with nlink − 1 (and a new ctime), and the output carries its remaining attributes.
pub async fn overwrite_hardlinked_file(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (x, _) = m.create(ME, ROOT, b"x", 0o644).await?;
    m.link(Caller::ROOT, x, ROOT, b"y").await?;
    m.create(ME, ROOT, b"z", 0o644).await?;
    let out = m
        .submit(Op::Rename {
            parent: ROOT,
            name: b"z".to_vec(),
            new_parent: ROOT,
            new_name: b"y".to_vec(),
            flags: N,
            caller: ME,
            time: t(5, 5),
        })
        .await?;
    let OpOutput::Renamed { replaced, .. } = out else {
        bail!("rename returned {out:?}");
    };
    let Some((rino, Some(rattr))) = replaced else {
        bail!("replaced = {replaced:?}, expected the surviving inode");
    };
    ensure!(
        rino == x && rattr.nlink == 1,
        "replaced {rino} nlink {}",
        rattr.nlink
    );
    ensure!(
        rattr.ctime == t(5, 5),
        "the replaced inode's ctime is {:?}",
        rattr.ctime
    );
    ensure!(
        m.getattr(x).await? == rattr,
        "getattr of the surviving inode"
    );
    ensure!(m.lookup(ROOT, b"x").await?.0 == x, "x is gone");
    fsck_clean(&*ctx.backend(), "overwrite of a hard-linked file").await
}

/// rename(2) of a directory over an empty directory: the replaced one is deleted, nlinks
/// of both parents stay exact (in one directory and across two).
pub async fn overwrite_empty_dir(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (p, _) = m.mkdir(ME, ROOT, b"p", 0o755).await?;
    let (s1, _) = m.mkdir(ME, p, b"s1", 0o755).await?;
    let (s2, _) = m.mkdir(ME, p, b"s2", 0o755).await?;
    m.create(ME, s1, b"content", 0o644).await?;
    ensure!(m.getattr(p).await?.nlink == 4, "p with two subdirs");
    m.rename(ME, p, b"s1", p, b"s2", N).await?;
    ensure!(m.getattr(p).await?.nlink == 3, "p after s1 replaced s2");
    expect_err(m.getattr(s2).await, NotFound, "the replaced dir")?;
    ensure!(m.lookup(p, b"s2").await?.0 == s1, "s2 points elsewhere");
    ensure!(
        m.lookup(s1, b"content").await.is_ok(),
        "the moved dir lost its content"
    );
    // Across directories.
    let (x, _) = m.mkdir(ME, ROOT, b"x", 0o755).await?;
    let (y, _) = m.mkdir(ME, ROOT, b"y", 0o755).await?;
    let (e, _) = m.mkdir(ME, x, b"e", 0o755).await?;
    let (mv, _) = m.mkdir(ME, y, b"m", 0o755).await?;
    m.rename(ME, y, b"m", x, b"e", N).await?;
    ensure!(
        m.getattr(x).await?.nlink == 3,
        "x gained one dir and lost one"
    );
    ensure!(m.getattr(y).await?.nlink == 2, "y lost its dir");
    expect_err(m.getattr(e).await, NotFound, "the replaced dir e")?;
    ensure!(m.getattr(mv).await?.parent == x, "moved dir's parent");
    counters_exact(&*ctx.backend(), "after dir overwrites").await?;
    fsck_clean(&*ctx.backend(), "after dir overwrites").await
}

/// rename(2) over a non-empty directory: ENOTEMPTY and nothing changes (also when the
/// target is an ancestor of the source, as Linux reports).
pub async fn overwrite_nonempty_dir(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (a, _) = m.mkdir(ME, ROOT, b"a", 0o755).await?;
    let (b, _) = m.mkdir(ME, ROOT, b"b", 0o755).await?;
    m.create(ME, b, b"f", 0o644).await?;
    let (c, _) = m.mkdir(ME, b, b"c", 0o755).await?;
    let before = dump_text(&*ctx.backend()).await?;
    expect_err(
        m.rename(ME, ROOT, b"a", ROOT, b"b", N).await,
        NotEmpty,
        "a over non-empty b",
    )?;
    expect_err(
        m.rename(ME, b, b"c", ROOT, b"b", N).await,
        NotEmpty,
        "b/c over its own ancestor b",
    )?;
    same_text(
        &before,
        &dump_text(&*ctx.backend()).await?,
        "state after refused renames",
    )?;
    ensure!(
        m.getattr(a).await?.nlink == 2 && m.getattr(c).await?.parent == b,
        "attrs changed"
    );
    Ok(())
}

/// rename(2): a directory may replace only a directory (ENOTDIR) and a non-directory only a
/// non-directory (EISDIR) — for every non-directory type.
pub async fn type_mismatch(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    m.mkdir(ME, ROOT, b"dir", 0o755).await?;
    m.mkdir(ME, ROOT, b"dir2", 0o755).await?;
    m.create(ME, ROOT, b"file", 0o644).await?;
    m.symlink(ME, ROOT, b"sym", b"file").await?;
    m.mknod(ME, ROOT, b"fifo", FileType::Fifo, 0o644, 0).await?;
    for other in [&b"file"[..], b"sym", b"fifo"] {
        expect_err(
            m.rename(ME, ROOT, b"dir", ROOT, other, N).await,
            NotADirectory,
            format!("dir over {}", String::from_utf8_lossy(other)),
        )?;
        expect_err(
            m.rename(ME, ROOT, other, ROOT, b"dir2", N).await,
            IsADirectory,
            format!("{} over dir", String::from_utf8_lossy(other)),
        )?;
    }
    // Non-directories of different types replace each other.
    m.rename(ME, ROOT, b"fifo", ROOT, b"sym", N).await?;
    ensure!(
        m.lookup(ROOT, b"sym").await?.1.typ == FileType::Fifo,
        "a fifo should replace a symlink"
    );
    fsck_clean(&*ctx.backend(), "type mismatches").await
}

/// renameat2(2) RENAME_NOREPLACE: EEXIST when the destination exists (also for the same
/// inode under two names), a plain move otherwise.
pub async fn noreplace(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (a, _) = m.create(ME, ROOT, b"a", 0o644).await?;
    m.create(ME, ROOT, b"b", 0o644).await?;
    m.link(Caller::ROOT, a, ROOT, b"a2").await?;
    let nr = RenameFlags::NOREPLACE;
    expect_err(
        m.rename(ME, ROOT, b"a", ROOT, b"b", nr).await,
        AlreadyExists,
        "onto b",
    )?;
    expect_err(
        m.rename(ME, ROOT, b"a", ROOT, b"a2", nr).await,
        AlreadyExists,
        "onto another name of the same inode",
    )?;
    let (ino, _) = m.rename(ME, ROOT, b"a", ROOT, b"c", nr).await?;
    ensure!(ino == a, "NOREPLACE moved another inode");
    expect_err(
        m.lookup(ROOT, b"a").await,
        NotFound,
        "old name after NOREPLACE move",
    )?;
    fsck_clean(&*ctx.backend(), "NOREPLACE").await
}

/// renameat2(2) RENAME_EXCHANGE in one directory: both names stay, swapped, of any types
/// (a file and a directory too); ENOENT when the destination is missing.
pub async fn exchange(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (f, _) = m.create(ME, ROOT, b"f", 0o644).await?;
    let (d, _) = m.mkdir(ME, ROOT, b"d", 0o755).await?;
    m.create(ME, d, b"inside", 0o644).await?;
    let out = m
        .submit(Op::Rename {
            parent: ROOT,
            name: b"f".to_vec(),
            new_parent: ROOT,
            new_name: b"d".to_vec(),
            flags: RenameFlags::EXCHANGE,
            caller: ME,
            time: t(9, 9),
        })
        .await?;
    let OpOutput::Renamed {
        ino,
        attr,
        replaced,
        parent,
        ..
    } = out
    else {
        bail!("exchange returned {out:?}");
    };
    ensure!(
        ino == f && attr.ctime == t(9, 9),
        "exchange output for f: {ino} {attr:?}"
    );
    let Some((rino, Some(rattr))) = replaced else {
        bail!("exchange: replaced = {replaced:?}");
    };
    ensure!(
        rino == d && rattr.ctime == t(9, 9),
        "exchange output for d: {rino} {rattr:?}"
    );
    ensure!(
        parent.nlink == 3,
        "exchange in one dir changed its nlink to {}",
        parent.nlink
    );
    let (at_f, af) = m.lookup(ROOT, b"f").await?;
    let (at_d, ad) = m.lookup(ROOT, b"d").await?;
    ensure!(
        at_f == d && af.typ == FileType::Directory,
        "f should now name the directory"
    );
    ensure!(
        at_d == f && ad.typ == FileType::Regular,
        "d should now name the file"
    );
    ensure!(
        m.lookup(d, b"inside").await.is_ok(),
        "the exchanged dir lost its content"
    );
    let types: Vec<FileType> = list_all(&*ctx.backend(), ROOT, false, 10)
        .await?
        .iter()
        .map(|e| e.typ)
        .collect();
    ensure!(
        types == vec![FileType::Regular, FileType::Directory],
        "readdir types after exchange: {types:?} (d, f)"
    );
    expect_err(
        m.rename(ME, ROOT, b"f", ROOT, b"zz", RenameFlags::EXCHANGE)
            .await,
        NotFound,
        "EXCHANGE with a missing destination",
    )?;
    fsck_clean(&*ctx.backend(), "exchange").await
}

/// RENAME_EXCHANGE across directories: a file and a directory swap parents; the parents'
/// nlink follow the directory, both `parent` fields and the directory's `..` are updated.
pub async fn exchange_across_dirs(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (a, _) = m.mkdir(ME, ROOT, b"A", 0o755).await?;
    let (b, _) = m.mkdir(ME, ROOT, b"B", 0o755).await?;
    let (f, _) = m.create(ME, a, b"f", 0o644).await?;
    let (d, _) = m.mkdir(ME, b, b"d", 0o755).await?;
    m.rename(ME, a, b"f", b, b"d", RenameFlags::EXCHANGE)
        .await?;
    ensure!(m.lookup(a, b"f").await?.0 == d, "A/f should be the dir");
    ensure!(m.lookup(b, b"d").await?.0 == f, "B/d should be the file");
    ensure!(m.getattr(a).await?.nlink == 3, "A gained a subdir");
    ensure!(m.getattr(b).await?.nlink == 2, "B lost its subdir");
    ensure!(m.getattr(d).await?.parent == a, "the dir's parent field");
    ensure!(m.getattr(f).await?.parent == b, "the file's parent field");
    ensure!(
        m.lookup(d, b"..").await?.0 == a,
        "`..` of the exchanged dir"
    );
    // Two directories across parents: nlinks unchanged.
    let (d2, _) = m.mkdir(ME, b, b"d2", 0o755).await?;
    m.rename(ME, a, b"f", b, b"d2", RenameFlags::EXCHANGE)
        .await?;
    ensure!(
        m.getattr(a).await?.nlink == 3 && m.getattr(b).await?.nlink == 3,
        "dir-for-dir exchange changed nlinks"
    );
    ensure!(
        m.getattr(d2).await?.parent == a && m.getattr(d).await?.parent == b,
        "parents"
    );
    fsck_clean(&*ctx.backend(), "exchange across dirs").await
}

/// rename(2) EINVAL: a directory may not become a subdirectory of itself — moved into
/// itself, its child or a deeper descendant, or swapped (EXCHANGE) with one of its
/// descendants. Nothing changes.
pub async fn cycles(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (a, _) = m.mkdir(ME, ROOT, b"a", 0o755).await?;
    let (b, _) = m.mkdir(ME, a, b"b", 0o755).await?;
    let (c, _) = m.mkdir(ME, b, b"c", 0o755).await?;
    m.mkdir(ME, c, b"y", 0o755).await?;
    let before = dump_text(&*ctx.backend()).await?;
    type Move<'a> = (Ino, &'a [u8], Ino, &'a [u8], RenameFlags, &'a str);
    let cases: [Move; 5] = [
        (ROOT, b"a", a, b"x", N, "a into a"),
        (ROOT, b"a", b, b"x", N, "a into a/b"),
        (ROOT, b"a", c, b"x", N, "a into a/b/c"),
        (a, b"b", c, b"x", N, "a/b into a/b/c"),
        (
            ROOT,
            b"a",
            c,
            b"y",
            RenameFlags::EXCHANGE,
            "a exchanged with a/b/c/y",
        ),
    ];
    for (p, n, np, nn, flags, what) in cases {
        expect_err(
            m.rename(ME, p, n, np, nn, flags).await,
            InvalidArgument,
            what,
        )?;
    }
    // The mirror exchange: a/b/c/y with a (a moves below itself).
    expect_err(
        m.rename(ME, c, b"y", ROOT, b"a", RenameFlags::EXCHANGE)
            .await,
        InvalidArgument,
        "a/b/c/y exchanged with a",
    )?;
    same_text(
        &before,
        &dump_text(&*ctx.backend()).await?,
        "state after refused cycles",
    )?;
    // Moving up is fine.
    m.rename(ME, b, b"c", ROOT, b"c", N).await?;
    fsck_clean(&*ctx.backend(), "after cycle checks").await
}

/// rename(2): "If oldpath and newpath are existing hard links referring to the same file,
/// rename() does nothing" — both names stay; renaming a name onto itself does nothing too.
pub async fn same_inode_noop(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (x, _) = m.create(ME, ROOT, b"x", 0o644).await?;
    m.link(Caller::ROOT, x, ROOT, b"y").await?;
    let (d, _) = m.mkdir(ME, ROOT, b"d", 0o755).await?;
    let before = dump_text(&*ctx.backend()).await?;
    let (ino, _) = m.rename(ME, ROOT, b"x", ROOT, b"y", N).await?;
    ensure!(ino == x, "rename between two links returned {ino}");
    m.rename(ME, ROOT, b"x", ROOT, b"x", N).await?;
    m.rename(ME, ROOT, b"d", ROOT, b"d", N).await?;
    ensure!(m.lookup(ROOT, b"x").await?.0 == x, "x vanished");
    ensure!(m.lookup(ROOT, b"y").await?.0 == x, "y vanished");
    ensure!(m.getattr(x).await?.nlink == 2, "nlink changed");
    ensure!(m.getattr(d).await?.nlink == 2, "dir nlink changed");
    same_text(
        &before,
        &dump_text(&*ctx.backend()).await?,
        "state after no-op renames",
    )?;
    fsck_clean(&*ctx.backend(), "no-op renames").await
}
