//! setattr: chmod(2), chown(2), utimensat(2), truncate through setattr, setgid directories.

use super::prelude::*;

fn setattr_op(ino: Ino, mask: SetAttrMask, values: SetAttrValues, time: Timespec) -> Op {
    Op::SetAttr {
        caller: Caller::ROOT,
        ino,
        mask,
        values,
        time,
    }
}

async fn attr_of(m: &Meta, op: Op) -> Result<Attr> {
    match m.submit(op).await? {
        OpOutput::Attr { attr, .. } => Ok(attr),
        other => bail!("setattr returned {other:?}"),
    }
}

/// chmod(2)/chown(2): MODE keeps only the 12 permission bits (setuid, setgid, sticky
/// included), UID and GID change only what the mask selects, ctime becomes the op's time
/// and mtime/atime stay; the output equals getattr.
pub async fn mode_owner_ctime(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (f, before) = m.create(ME, ROOT, b"f", 0o644).await?;
    let v = SetAttrValues {
        mode: 0o177_777,
        uid: 42,
        gid: 43,
        ..Default::default()
    };
    let a = attr_of(&m, setattr_op(f, SetAttrMask::MODE, v, t(10, 1))).await?;
    ensure!(
        a.mode == 0o7777,
        "mode {:o} (only 12 bits may be kept)",
        a.mode
    );
    ensure!(a.uid == ME.uid && a.gid == ME.gid, "MODE changed the owner");
    ensure!(a.ctime == t(10, 1), "ctime {:?}", a.ctime);
    ensure!(
        a.mtime == before.mtime && a.atime == before.atime,
        "chmod changed mtime/atime"
    );
    ensure!(
        a.typ == FileType::Regular && a.nlink == 1 && a.length == 0,
        "other fields"
    );
    let a = attr_of(&m, setattr_op(f, SetAttrMask::UID, v, t(11, 0))).await?;
    // chown(2) of a non-directory clears setuid and (group execute being set) setgid, for
    // root too (Linux; meta-conformance/oracle/permissions.py, chown_clears_suid_root).
    ensure!(
        a.uid == 42 && a.gid == ME.gid && a.mode == 0o1777,
        "UID only: {a:?}"
    );
    let a = attr_of(&m, setattr_op(f, SetAttrMask::GID, v, t(12, 0))).await?;
    ensure!(
        a.uid == 42 && a.gid == 43 && a.ctime == t(12, 0),
        "GID only: {a:?}"
    );
    let a = attr_of(
        &m,
        setattr_op(
            f,
            SetAttrMask::MODE,
            SetAttrValues { mode: 0o4751, ..v },
            t(13, 0),
        ),
    )
    .await?;
    ensure!(a.mode == 0o4751, "mode {:o}", a.mode);
    ensure!(
        m.getattr(f).await? == a,
        "getattr differs from the setattr output"
    );
    ensure!(m.getattr(f).await?.st_mode() == 0o104751, "st_mode");
    // Directories and symlinks too.
    let (d, _) = m.mkdir(ME, ROOT, b"d", 0o755).await?;
    let a = attr_of(
        &m,
        setattr_op(d, SetAttrMask::MODE | SetAttrMask::UID, v, t(15, 0)),
    )
    .await?;
    ensure!(
        a.mode == 0o7777 && a.uid == 42 && a.typ == FileType::Directory,
        "dir: {a:?}"
    );
    Ok(())
}

/// utimensat(2): ATIME/MTIME set the given times exactly (negative seconds and nanoseconds
/// kept), ATIME_NOW/MTIME_NOW set the op's time, and ctime always becomes the op's time.
pub async fn times(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (f, _) = m.create(ME, ROOT, b"f", 0o644).await?;
    let v = SetAttrValues {
        atime: Timespec {
            sec: -12_345,
            nsec: 999_999_999,
        },
        mtime: Timespec { sec: 0, nsec: 1 },
        ..Default::default()
    };
    let a = attr_of(
        &m,
        setattr_op(f, SetAttrMask::ATIME | SetAttrMask::MTIME, v, t(20, 0)),
    )
    .await?;
    ensure!(
        a.atime == v.atime && a.mtime == v.mtime,
        "explicit times: {a:?}"
    );
    ensure!(a.ctime == t(20, 0), "ctime {:?}", a.ctime);
    let a = attr_of(&m, setattr_op(f, SetAttrMask::ATIME_NOW, v, t(21, 5))).await?;
    ensure!(
        a.atime == t(21, 5) && a.mtime == v.mtime,
        "ATIME_NOW: {a:?}"
    );
    let a = attr_of(&m, setattr_op(f, SetAttrMask::MTIME_NOW, v, t(22, 6))).await?;
    ensure!(
        a.atime == t(21, 5) && a.mtime == t(22, 6) && a.ctime == t(22, 6),
        "MTIME_NOW: {a:?}"
    );
    let a = attr_of(&m, setattr_op(f, SetAttrMask::MTIME, v, t(23, 0))).await?;
    ensure!(
        a.mtime == v.mtime && a.atime == t(21, 5),
        "MTIME only: {a:?}"
    );
    ensure!(m.getattr(f).await? == a, "getattr differs");
    Ok(())
}

/// truncate through setattr SIZE: the length changes, used_space follows the 4 KiB-aligned
/// length, mtime and ctime become the op's time, and SIZE combines with other fields in one
/// atomic op.
pub async fn size(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (f, _) = m.create(ME, ROOT, b"f", 0o644).await?;
    let base = m.statfs().await?.used_space;
    let v = |size| SetAttrValues {
        size,
        mode: 0o600,
        ..Default::default()
    };
    let a = attr_of(&m, setattr_op(f, SetAttrMask::SIZE, v(10_000), t(30, 0))).await?;
    ensure!(
        a.length == 10_000 && a.mtime == t(30, 0) && a.ctime == t(30, 0),
        "grow: {a:?}"
    );
    ensure!(a.mode == 0o644, "SIZE alone changed the mode");
    ensure!(
        m.statfs().await?.used_space == base + 8192,
        "used_space after growing to 10000"
    );
    let a = attr_of(
        &m,
        setattr_op(f, SetAttrMask::SIZE | SetAttrMask::MODE, v(100), t(31, 0)),
    )
    .await?;
    ensure!(a.length == 100 && a.mode == 0o600, "SIZE|MODE: {a:?}");
    ensure!(
        m.statfs().await?.used_space == base,
        "used_space after shrinking to 100"
    );
    let a = m.truncate(Caller::ROOT, f, 4097).await?;
    ensure!(a.length == 4097, "truncate op length");
    ensure!(
        m.statfs().await?.used_space == base + 4096,
        "used_space at 4097 bytes"
    );
    counters_exact(&*ctx.backend(), "setattr size").await
}

/// A setgid directory (mode 0o2000) passes its group to new entries, and its setgid bit to
/// new subdirectories (Linux semantics); other directories use the caller's group.
pub async fn setgid_inheritance(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (g, _) = m.mkdir(ME, ROOT, b"g", 0o755).await?;
    m.setattr(
        Caller::ROOT,
        g,
        SetAttrMask::MODE | SetAttrMask::GID,
        SetAttrValues {
            mode: 0o2775,
            gid: 50,
            ..Default::default()
        },
    )
    .await?;
    let (_, f) = m.create(ME, g, b"f", 0o644).await?;
    ensure!(
        f.gid == 50 && f.mode == 0o644,
        "file in a setgid dir: gid {} mode {:o}",
        f.gid,
        f.mode
    );
    let (_, s) = m.mkdir(ME, g, b"s", 0o755).await?;
    ensure!(
        s.gid == 50 && s.mode == 0o2755,
        "subdir of a setgid dir: gid {} mode {:o}",
        s.gid,
        s.mode
    );
    let (_, l) = m.symlink(ME, g, b"l", b"f").await?;
    ensure!(l.gid == 50, "symlink in a setgid dir: gid {}", l.gid);
    let (_, plain) = m.create(ME, ROOT, b"plain", 0o644).await?;
    ensure!(
        plain.gid == ME.gid,
        "file in a plain dir: gid {}",
        plain.gid
    );
    Ok(())
}
