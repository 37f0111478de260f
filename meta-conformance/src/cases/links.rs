//! Hard links and link counts: link(2), unlink(2), directory nlink, `.` and `..`.

use super::prelude::*;

/// link(2)/unlink(2): each link adds one to nlink and sets ctime; each unlink removes one;
/// the inode lives until its last name goes, then its space and inode count are released.
/// Works for every non-directory type.
pub async fn nlink_counts(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (d1, _) = m.mkdir(ME, ROOT, b"d1", 0o755).await?;
    let (d2, _) = m.mkdir(ME, ROOT, b"d2", 0o755).await?;
    let (f, _) = m.create(ME, ROOT, b"f", 0o644).await?;
    let base = m.statfs().await?;
    let out = m
        .submit(Op::Link {
            caller: Caller::ROOT,
            ino: f,
            parent: d1,
            name: b"g".to_vec(),
            time: t(3, 3),
        })
        .await?;
    let OpOutput::Entry { ino, attr, parent } = out else {
        bail!("link returned {out:?}");
    };
    ensure!(
        ino == f && attr.nlink == 2 && attr.ctime == t(3, 3),
        "link output {attr:?}"
    );
    ensure!(
        parent.mtime == t(3, 3) && parent.ctime == t(3, 3) && parent.nlink == 2,
        "link's parent output {parent:?}"
    );
    let a = m.link(Caller::ROOT, f, d2, b"h").await?;
    ensure!(
        a.nlink == 3 && m.getattr(f).await?.nlink == 3,
        "nlink after two links"
    );
    ensure!(m.statfs().await? == base, "links changed statfs");
    for (dir, name) in [(d1, &b"g"[..]), (d2, b"h"), (ROOT, b"f")] {
        ensure!(m.lookup(dir, name).await?.0 == f, "lookup {dir}/{name:?}");
    }
    m.unlink(ME, ROOT, b"f").await?;
    ensure!(m.getattr(f).await?.nlink == 2, "nlink after one unlink");
    m.unlink(ME, d1, b"g").await?;
    ensure!(m.getattr(f).await?.nlink == 1, "nlink after two unlinks");
    ensure!(
        m.lookup(d2, b"h").await?.1.nlink == 1,
        "lookup shows nlink 1"
    );
    m.unlink(ME, d2, b"h").await?;
    expect_err(m.getattr(f).await, NotFound, "inode after its last unlink")?;
    let end = m.statfs().await?;
    ensure!(
        end.used_inodes == base.used_inodes - 1 && end.used_space == base.used_space - 4096,
        "counters after the last unlink: {base:?} -> {end:?}"
    );
    // Symlinks, fifos, devices and sockets can be hard-linked too.
    for (name, typ) in [
        (&b"s"[..], FileType::Fifo),
        (b"c", FileType::CharDevice),
        (b"b", FileType::BlockDevice),
        (b"k", FileType::Socket),
    ] {
        let (ino, _) = m.mknod(ME, ROOT, name, typ, 0o644, 0).await?;
        ensure!(
            m.link(Caller::ROOT, ino, d1, name).await?.nlink == 2,
            "link a {}",
            typ.name()
        );
    }
    let (l, _) = m.symlink(ME, ROOT, b"l", b"x").await?;
    ensure!(
        m.link(Caller::ROOT, l, d2, b"l").await?.nlink == 2,
        "link a symlink"
    );
    counters_exact(&*ctx.backend(), "hard links").await?;
    fsck_clean(&*ctx.backend(), "hard links").await
}

/// The `parent` attribute: the directory holding a non-directory, kept when a second link
/// is made in the same directory, 0 once the inode is linked into several directories —
/// whether by link(2) or by renaming one of several links into another directory; a
/// single-link file moved by rename(2) follows its new directory.
pub async fn parent_field(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (d1, _) = m.mkdir(ME, ROOT, b"d1", 0o755).await?;
    let (d2, _) = m.mkdir(ME, ROOT, b"d2", 0o755).await?;
    let (f, a) = m.create(ME, d1, b"f", 0o644).await?;
    ensure!(a.parent == d1, "new file's parent {}", a.parent);
    ensure!(
        m.link(Caller::ROOT, f, d1, b"f2").await?.parent == d1,
        "second link in the same dir"
    );
    ensure!(
        m.link(Caller::ROOT, f, d2, b"f3").await?.parent == Ino::ZERO,
        "link into a second dir"
    );
    ensure!(
        m.getattr(f).await?.parent == Ino::ZERO,
        "getattr parent when multiply linked"
    );
    let (dd, da) = m.mkdir(ME, d2, b"sub", 0o755).await?;
    ensure!(
        da.parent == d2 && m.getattr(dd).await?.parent == d2,
        "a directory's parent"
    );
    // Two links in d1, one of them renamed into d2: the inode now lives in two directories.
    let (g, _) = m.create(ME, d1, b"g", 0o644).await?;
    m.link(Caller::ROOT, g, d1, b"g2").await?;
    ensure!(m.getattr(g).await?.parent == d1, "two links in one dir");
    let (_, ga) = m
        .rename(ME, d1, b"g2", d2, b"g2", RenameFlags::NONE)
        .await?;
    ensure!(
        ga.parent == Ino::ZERO && m.getattr(g).await?.parent == Ino::ZERO,
        "a file linked in d1 and (by rename) in d2 has parent {} (rename output {}), expected 0",
        m.getattr(g).await?.parent,
        ga.parent
    );
    // A single-link file moved by rename follows its directory.
    let (h, _) = m.create(ME, d1, b"h", 0o644).await?;
    m.rename(ME, d1, b"h", d2, b"h", RenameFlags::NONE).await?;
    ensure!(
        m.getattr(h).await?.parent == d2,
        "a moved single-link file's parent"
    );
    Ok(())
}

/// Directory nlink = 2 + number of subdirectories (root included): mkdir adds one to the
/// parent, rmdir removes one, other types leave it alone.
pub async fn dir_nlink(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    ensure!(m.getattr(ROOT).await?.nlink == 2, "fresh root nlink");
    let (a, aa) = m.mkdir(ME, ROOT, b"a", 0o755).await?;
    ensure!(aa.nlink == 2 && aa.length == 4096, "new dir attrs {aa:?}");
    ensure!(m.getattr(ROOT).await?.nlink == 3, "root after mkdir");
    for i in 0..5u8 {
        m.mkdir(ME, a, &[b's', b'0' + i], 0o755).await?;
    }
    m.create(ME, a, b"f", 0o644).await?;
    m.symlink(ME, a, b"l", b"f").await?;
    m.mknod(ME, a, b"p", FileType::Fifo, 0o644, 0).await?;
    ensure!(m.getattr(a).await?.nlink == 7, "a with five subdirs");
    m.rmdir(ME, a, b"s0").await?;
    m.rmdir(ME, a, b"s1").await?;
    ensure!(m.getattr(a).await?.nlink == 5, "a after two rmdirs");
    ensure!(
        m.getattr(ROOT).await?.nlink == 3,
        "root unchanged by grandchildren"
    );
    fsck_clean(&*ctx.backend(), "dir nlink").await
}

/// lookup of `.` is the directory itself, `..` its parent (the root's `..` is the root);
/// readdir lists neither.
pub async fn dot_and_dotdot(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (a, _) = m.mkdir(ME, ROOT, b"a", 0o755).await?;
    let (b, _) = m.mkdir(ME, a, b"b", 0o755).await?;
    ensure!(m.lookup(b, b".").await?.0 == b, "b/.");
    ensure!(m.lookup(b, b"..").await?.0 == a, "b/..");
    ensure!(m.lookup(a, b"..").await?.0 == ROOT, "a/..");
    ensure!(m.lookup(ROOT, b"..").await?.0 == ROOT, "/..");
    ensure!(m.lookup(ROOT, b".").await?.0 == ROOT, "/.");
    let listed = names(&*ctx.backend(), a).await?;
    ensure!(listed == vec![b"b".to_vec()], "readdir of a: {listed:?}");
    ensure!(m.resolve(b"/a/b").await?.0 == b, "resolve /a/b");
    Ok(())
}

/// Time stamps of namespace ops (mknod(2), link(2), unlink(2), rmdir(2), rename(2)): a new
/// inode gets atime = mtime = ctime = the op's time; every op sets the mtime and ctime of
/// the directories whose entries it changes; link and a non-final unlink set the inode's
/// ctime; rename sets the moved inode's ctime and both parents' times.
pub async fn parent_times(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (a, _) = m.mkdir(ME, ROOT, b"a", 0o755).await?;
    let (b, _) = m.mkdir(ME, ROOT, b"b", 0o755).await?;
    let out = |o: OpOutput| -> Result<(Option<Attr>, Attr)> {
        match o {
            OpOutput::Entry { attr, parent, .. } => Ok((Some(attr), parent)),
            OpOutput::Removed { attr, parent, .. } => Ok((attr, parent)),
            other => bail!("unexpected output {other:?}"),
        }
    };
    let ino = m.new_ino().await?;
    let (attr, parent) = out(m
        .submit(mknod_op(a, b"f", ino, FileType::Regular, t(100, 1)))
        .await?)?;
    let attr = attr.context("mknod output")?;
    ensure!(
        attr.atime == t(100, 1) && attr.mtime == t(100, 1) && attr.ctime == t(100, 1),
        "new inode times {attr:?}"
    );
    ensure!(
        parent.mtime == t(100, 1) && parent.ctime == t(100, 1),
        "parent after mknod {parent:?}"
    );
    let (attr, parent) = out(m
        .submit(Op::Link {
            caller: Caller::ROOT,
            ino,
            parent: b,
            name: b"g".to_vec(),
            time: t(101, 0),
        })
        .await?)?;
    ensure!(
        attr.map(|a| a.ctime) == Some(t(101, 0)),
        "inode ctime after link"
    );
    ensure!(
        parent.mtime == t(101, 0) && parent.ctime == t(101, 0),
        "b after link {parent:?}"
    );
    let (attr, parent) = out(m
        .submit(Op::Unlink {
            parent: a,
            name: b"f".to_vec(),
            caller: ME,
            time: t(102, 0),
        })
        .await?)?;
    ensure!(
        attr.map(|a| a.ctime) == Some(t(102, 0)),
        "inode ctime after a non-final unlink"
    );
    ensure!(
        parent.mtime == t(102, 0) && parent.ctime == t(102, 0),
        "a after unlink {parent:?}"
    );
    ensure!(
        m.getattr(ino).await?.ctime == t(102, 0),
        "getattr ctime after unlink"
    );
    m.mkdir(ME, a, b"sub", 0o755).await?;
    let (_, parent) = out(m
        .submit(Op::Rmdir {
            parent: a,
            name: b"sub".to_vec(),
            caller: ME,
            time: t(103, 0),
        })
        .await?)?;
    ensure!(
        parent.mtime == t(103, 0) && parent.ctime == t(103, 0),
        "a after rmdir {parent:?}"
    );
    let o = m
        .submit(Op::Rename {
            parent: b,
            name: b"g".to_vec(),
            new_parent: a,
            new_name: b"h".to_vec(),
            flags: RenameFlags::NONE,
            caller: ME,
            time: t(104, 0),
        })
        .await?;
    let OpOutput::Renamed {
        attr,
        parent,
        new_parent,
        ..
    } = o
    else {
        bail!("rename returned {o:?}");
    };
    ensure!(
        attr.ctime == t(104, 0),
        "moved inode ctime {:?}",
        attr.ctime
    );
    for (what, d) in [("source", parent), ("destination", new_parent)] {
        ensure!(
            d.mtime == t(104, 0) && d.ctime == t(104, 0),
            "{what} dir after rename {d:?}"
        );
    }
    ensure!(
        m.getattr(a).await? == new_parent && m.getattr(b).await? == parent,
        "getattr vs rename output"
    );
    Ok(())
}
