//! POSIX permissions, with Linux as the oracle: every expectation below is a row of
//! `meta-conformance/oracle/permissions.tsv`, the output of `oracle/permissions.py` (run as
//! root on Linux 6.18, tmpfs), read at compile time; `meta-conformance/tests/oracle.rs` runs
//! the script again on the machine of the test run and checks the table still holds there.
//! The few checks without a row say their expectation in the code. Users: `OWNER` 1000:1000, `MEMBER` 1001:1001 with
//! supplementary group 1000, `OTHER` 1002:1002, and root. Unless a row says otherwise the
//! directory and file are owned by 1000:1000.
//!
//! Not expressible through the engine's API and so not checked here: `chown(f, -1, -1)`
//! (a setattr without UID or GID; Linux clears setuid even then), hard links under
//! `fs.protected_hardlinks = 1` (the engine follows `= 0`, see [`meta_core::perm`]).

use super::prelude::*;
use meta_core::perm::{MAY_EXEC, MAY_READ, MAY_WRITE};

const OWNER: Caller = Caller::new(1000, 1000);
const OTHER: Caller = Caller::new(1002, 1002);

fn member() -> Caller {
    Caller::with_groups(1001, 1001, [1001, 1000])
}

/// The oracle's table: `row<TAB>errno or ok<TAB>mode after or -`, `#` comment lines.
const ORACLE: &str = include_str!("../../oracle/permissions.tsv");

/// Linux's answer for `row`: the error kind (`None`: success) and, when recorded, the mode
/// the target had afterwards.
fn linux(row: &str) -> Result<(Option<ErrorKind>, Option<u16>)> {
    let line = ORACLE
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| l.split('\t').next() == Some(row))
        .with_context(|| format!("row {row} is not in oracle/permissions.tsv"))?;
    let f: Vec<&str> = line.split('\t').collect();
    let [_, result, mode] = f[..] else {
        bail!("oracle row {line:?} does not have three fields");
    };
    let kind = match result {
        "ok" => None,
        "EACCES" => Some(PermissionDenied),
        "EPERM" => Some(NotPermitted),
        "EEXIST" => Some(AlreadyExists),
        "ENOENT" => Some(NotFound),
        other => bail!("oracle row {row}: no error kind for {other}"),
    };
    let mode = match mode {
        "-" => None,
        m => {
            Some(u16::from_str_radix(m, 8).with_context(|| format!("oracle row {row}: mode {m}"))?)
        }
    };
    Ok((kind, mode))
}

/// `r` is what Linux answered for `row`.
fn want<T: std::fmt::Debug>(r: meta_core::Result<T>, row: &str) -> Result<()> {
    want_kind(r, linux(row)?.0, row)
}

/// The target's mode after the op is the one Linux left for `row`.
async fn want_mode(m: &Meta, ino: Ino, row: &str) -> Result<()> {
    let want = linux(row)?
        .1
        .with_context(|| format!("oracle row {row} records no mode"))?;
    let got = mode_of(m, ino).await?;
    ensure!(got == want, "{row}: mode {got:o}, Linux {want:o}");
    Ok(())
}

/// `r` succeeded (`kind` None) or failed with `kind`.
fn want_kind<T: std::fmt::Debug>(
    r: meta_core::Result<T>,
    kind: Option<ErrorKind>,
    what: &str,
) -> Result<()> {
    match (r, kind) {
        (Ok(_), None) => Ok(()),
        (Err(e), None) => bail!("{what}: Linux succeeds, got {:?} ({e})", e.kind()),
        (r, Some(k)) => expect_err(r, k, format!("{what} (Linux: {})", k.errno_name())),
    }
}

/// Sets mode and owner as root (the mode is set together with the owner, so nothing is
/// cleared).
async fn own(m: &Meta, ino: Ino, mode: u16, uid: u32, gid: u32) -> Result<()> {
    let mask = SetAttrMask::MODE | SetAttrMask::UID | SetAttrMask::GID;
    let v = SetAttrValues {
        mode,
        uid,
        gid,
        ..Default::default()
    };
    m.setattr(Caller::ROOT, ino, mask, v).await?;
    let a = m.getattr(ino).await?;
    ensure!(
        (a.mode, a.uid, a.gid) == (mode, uid, gid),
        "setup: inode {ino} is {:o} {}:{}",
        a.mode,
        a.uid,
        a.gid
    );
    Ok(())
}

async fn dir(m: &Meta, parent: Ino, name: &str, mode: u16, uid: u32, gid: u32) -> Result<Ino> {
    let (d, _) = m
        .mkdir(Caller::ROOT, parent, name.as_bytes(), 0o700)
        .await?;
    own(m, d, mode, uid, gid).await?;
    Ok(d)
}

async fn file(m: &Meta, parent: Ino, name: &str, mode: u16, uid: u32, gid: u32) -> Result<Ino> {
    let (f, _) = m
        .create(Caller::ROOT, parent, name.as_bytes(), 0o600)
        .await?;
    own(m, f, mode, uid, gid).await?;
    Ok(f)
}

async fn exists(m: &Meta, parent: Ino, name: &str) -> Result<bool> {
    match m.lookup(parent, name.as_bytes()).await {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == NotFound => Ok(false),
        Err(e) => Err(e.into()),
    }
}

async fn mode_of(m: &Meta, ino: Ino) -> Result<u16> {
    Ok(m.getattr(ino).await?.mode)
}

/// create, mkdir, unlink, rmdir and link (open(2) O_CREAT, mkdir(2), unlink(2), rmdir(2),
/// link(2)): search permission to look a name up, then write and search permission on the
/// directory that changes; one class of mode bits applies (owner, else group, else other);
/// root passes; the sticky bit (EPERM). A refused op leaves the directory as it was.
pub async fn namespace_matrix(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let top = dir(&m, ROOT, "perm-ns", 0o777, 0, 0).await?;
    let creators: [(&str, Caller); 4] = [
        ("owner", OWNER),
        ("member", member()),
        ("other", OTHER),
        ("root", Caller::ROOT),
    ];
    let rows: &[(u16, &str)] = &[
        (0o755, "owner"),
        (0o755, "member"),
        (0o755, "other"),
        (0o755, "root"),
        (0o775, "member"),
        (0o775, "other"),
        (0o757, "member"),
        (0o757, "other"),
        (0o333, "owner"),
        (0o666, "owner"),
        (0o000, "root"),
    ];
    for (i, (mode, who)) in rows.iter().enumerate() {
        let d = dir(&m, top, &format!("c{i}"), *mode, 1000, 1000).await?;
        let caller = creators.iter().find(|c| c.0 == *who).map(|c| c.1.clone());
        let caller = caller.context("caller")?;
        let row = format!("create_{mode:04o}_{who}");
        want(m.create(caller, d, b"new", 0o644).await, &row)?;
        ensure!(
            exists(&m, d, "new").await? == linux(&row)?.0.is_none(),
            "{row}: the entry's presence does not match the result"
        );
    }

    let d = dir(&m, top, "m555", 0o555, 1000, 1000).await?;
    m.mkdir(Caller::ROOT, d, b"e", 0o755).await?;
    let r = m.mkdir(OWNER, d, b"e", 0o755).await;
    want(r, "mkdir_exists_0555_owner")?;
    let r = m.mkdir(OWNER, d, b"new", 0o755).await;
    want(r, "mkdir_new_0555_owner")?;
    own(&m, d, 0o444, 1000, 1000).await?;
    let r = m.mkdir(OWNER, d, b"e", 0o755).await;
    want(r, "mkdir_exists_0444_owner")?;
    let r = m.symlink(OWNER, d, b"l", b"target").await;
    want_kind(r, Some(PermissionDenied), "symlink in a 0444 directory")?;

    let d = dir(&m, top, "u755", 0o755, 1000, 1000).await?;
    file(&m, d, "f", 0o644, 1000, 1000).await?;
    want(m.unlink(OTHER, d, b"f").await, "unlink_0755_other")?;
    want(m.unlink(member(), d, b"f").await, "unlink_0755_member")?;
    ensure!(
        exists(&m, d, "f").await?,
        "a refused unlink removed the entry"
    );
    let r = m.unlink(OTHER, d, b"missing").await;
    want(r, "unlink_missing_0755_other")?;
    want(m.unlink(OWNER, d, b"f").await, "unlink_0755_owner")?;
    own(&m, d, 0o644, 1000, 1000).await?;
    let r = m.unlink(OWNER, d, b"missing").await;
    want(r, "unlink_missing_0644_owner")?;
    own(&m, d, 0o300, 1000, 1000).await?;
    file(&m, d, "g", 0o644, 1000, 1000).await?;
    want(m.unlink(OWNER, d, b"g").await, "unlink_0300_owner")?;

    let s = dir(&m, top, "sticky", 0o1777, 1000, 1000).await?;
    for name in ["f1", "f2", "f3", "f4"] {
        file(&m, s, name, 0o644, 1001, 1001).await?;
    }
    dir(&m, s, "sub", 0o755, 1001, 1001).await?;
    want(m.unlink(OTHER, s, b"f1").await, "sticky_unlink_other")?;
    want(m.rmdir(OTHER, s, b"sub").await, "sticky_rmdir_other")?;
    want(
        m.unlink(member(), s, b"f1").await,
        "sticky_unlink_fileowner",
    )?;
    want(m.unlink(OWNER, s, b"f2").await, "sticky_unlink_dirowner")?;
    want(m.unlink(Caller::ROOT, s, b"f3").await, "sticky_unlink_root")?;

    let d = dir(&m, top, "r555", 0o555, 1000, 1000).await?;
    m.mkdir(Caller::ROOT, d, b"s", 0o755).await?;
    want(m.rmdir(OWNER, d, b"s").await, "rmdir_0555_owner")?;
    ensure!(
        exists(&m, d, "s").await?,
        "a refused rmdir removed the directory"
    );

    let d = dir(&m, top, "l755", 0o755, 1000, 1000).await?;
    let d2 = dir(&m, top, "l777", 0o777, 1000, 1000).await?;
    let f2 = file(&m, d2, "f2", 0o644, 1002, 1002).await?;
    let r = m.link(OTHER, f2, d, b"l").await;
    want(r, "link_other_0755_other")?;
    ensure!(
        m.getattr(f2).await?.nlink == 1,
        "a refused link changed nlink"
    );
    let f = file(&m, d2, "f", 0o600, 1000, 1000).await?;
    want(m.link(OTHER, f, d2, b"l").await, "link_foreign_file_other")?;
    let f = file(&m, d2, "suid", 0o4755, 1000, 1000).await?;
    want(m.link(OTHER, f, d2, b"l2").await, "link_foreign_suid_other")?;
    Ok(())
}

/// rename(2): write and search permission on both directories, the sticky bit on the source
/// and on a replaced destination, and write permission on a directory moving to another
/// parent (its `..` changes).
pub async fn rename_matrix(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let n = RenameFlags::NONE;
    let top = dir(&m, ROOT, "perm-rename", 0o777, 0, 0).await?;
    let d = dir(&m, top, "d", 0o755, 1000, 1000).await?;
    file(&m, d, "f", 0o644, 1000, 1000).await?;
    let r = m.rename(OTHER, d, b"f", d, b"g", n).await;
    want(r, "rename_same_0755_other")?;
    ensure!(
        exists(&m, d, "f").await?,
        "a refused rename moved the entry"
    );

    let d1 = dir(&m, top, "d1", 0o777, 1000, 1000).await?;
    file(&m, d1, "f", 0o644, 1002, 1002).await?;
    let r = m.rename(OTHER, d1, b"f", d, b"f2", n).await;
    want(r, "rename_into_0755_other")?;

    let d2 = dir(&m, top, "d2", 0o777, 1000, 1000).await?;
    dir(&m, d1, "s", 0o555, 1000, 1000).await?;
    let r = m.rename(OWNER, d1, b"s", d2, b"s", n).await;
    want(r, "rename_dir_newparent_0555_owner")?;
    let r = m.rename(OWNER, d1, b"s", d1, b"t", n).await;
    want(r, "rename_dir_sameparent_0555_owner")?;
    let r = m.rename(Caller::ROOT, d1, b"t", d2, b"s", n).await;
    want(r, "rename_dir_newparent_0555_root")?;
    let r = m
        .rename(OWNER, d2, b"s", d1, b"s", RenameFlags::EXCHANGE)
        .await;
    want_kind(r, Some(NotFound), "exchange with a missing entry")?;

    let st = dir(&m, top, "st", 0o1777, 1000, 1000).await?;
    file(&m, st, "t", 0o644, 1001, 1001).await?;
    file(&m, d1, "mine", 0o644, 1002, 1002).await?;
    let r = m.rename(OTHER, d1, b"mine", st, b"t", n).await;
    want(r, "rename_sticky_target_other")?;
    let r = m.rename(OTHER, st, b"t", st, b"u", n).await;
    want(r, "rename_sticky_source_other")?;
    ensure!(
        exists(&m, d1, "mine").await? && exists(&m, st, "t").await?,
        "a refused rename changed the directories"
    );
    Ok(())
}

/// chmod(2), chown(2) and utimensat(2): who may change what (EPERM, EACCES), setgid dropped
/// by a chmod outside the file's group, setuid/setgid cleared by a chown of a non-directory.
pub async fn setattr_matrix(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let top = dir(&m, ROOT, "perm-setattr", 0o777, 0, 0).await?;
    let mut k = 0;
    let mut fresh = |mode: u16, uid: u32, gid: u32| {
        k += 1;
        let m = m.clone();
        async move { file(&m, top, &format!("f{k}"), mode, uid, gid).await }
    };
    let chmod = |mode| SetAttrValues {
        mode,
        ..Default::default()
    };
    let chown = |uid, gid| SetAttrValues {
        uid,
        gid,
        ..Default::default()
    };
    let (mode, uid, gid) = (SetAttrMask::MODE, SetAttrMask::UID, SetAttrMask::GID);

    let f = fresh(0o644, 1000, 1000).await?;
    want(
        m.setattr(OTHER, f, mode, chmod(0o600)).await,
        "chmod_nonowner",
    )?;
    want_mode(&m, f, "chmod_nonowner").await?;
    want(m.setattr(OWNER, f, mode, chmod(0o600)).await, "chmod_owner")?;
    want_mode(&m, f, "chmod_owner").await?;
    want(
        m.setattr(Caller::ROOT, f, mode, chmod(0o640)).await,
        "chmod_root",
    )?;

    for (row, caller, owner, group) in [
        ("chmod_sgid_notingroup_owner", OWNER, 1000, 2000),
        ("chmod_sgid_ingroup_member", member(), 1001, 1000),
        ("chmod_sgid_notingroup_root", Caller::ROOT, 1000, 2000),
    ] {
        let f = fresh(0o644, owner, group).await?;
        want(m.setattr(caller, f, mode, chmod(0o2755)).await, row)?;
        want_mode(&m, f, row).await?;
    }

    let f = fresh(0o644, 1000, 1000).await?;
    let r = m.setattr(OWNER, f, uid, chown(1002, 0)).await;
    want(r, "chown_uid_owner")?;
    want(
        m.setattr(OWNER, f, uid, chown(1000, 0)).await,
        "chown_sameuid_owner",
    )?;
    let r = m.setattr(OTHER, f, uid, chown(1000, 0)).await;
    want(r, "chown_sameuid_other")?;
    let in3000 = Caller::with_groups(1000, 1000, [1000, 3000]);
    let r = m.setattr(in3000.clone(), f, gid, chown(0, 3000)).await;
    want(r, "chgrp_member_group_owner")?;
    let r = m.setattr(OWNER, f, gid, chown(0, 4000)).await;
    want(r, "chgrp_nonmember_group_owner")?;
    let r = m.setattr(OTHER, f, gid, chown(0, 3000)).await;
    want(r, "chgrp_same_gid_other")?;
    want(
        m.setattr(Caller::ROOT, f, uid, chown(1002, 0)).await,
        "chown_uid_root",
    )?;
    ensure!(
        m.getattr(f).await?.uid == 1002,
        "chown_uid_root: owner after"
    );

    for (row, caller, mask, start) in [
        ("chown_clears_suid_root", Caller::ROOT, uid, 0o6755),
        ("chown_clears_suid_owner_chgrp", in3000.clone(), gid, 0o6755),
        ("chown_sgid_nogx_root", Caller::ROOT, uid, 0o2745),
    ] {
        let f = fresh(start, 1000, 1000).await?;
        want(m.setattr(caller, f, mask, chown(1002, 3000)).await, row)?;
        want_mode(&m, f, row).await?;
    }
    let s = dir(&m, top, "sdir", 0o6755, 1000, 1000).await?;
    want(
        m.setattr(Caller::ROOT, s, uid, chown(1002, 0)).await,
        "chown_dir_suid_root",
    )?;
    want_mode(&m, s, "chown_dir_suid_root").await?;

    let times = SetAttrValues {
        atime: Timespec { sec: 1, nsec: 0 },
        mtime: Timespec { sec: 2, nsec: 0 },
        ..Default::default()
    };
    let explicit = SetAttrMask::ATIME | SetAttrMask::MTIME;
    let now = SetAttrMask::ATIME_NOW | SetAttrMask::MTIME_NOW;
    let w = fresh(0o666, 1000, 1000).await?;
    let r = m.setattr(OTHER, w, explicit, times).await;
    want(r, "utimes_explicit_nonowner_writable")?;
    want(
        m.setattr(OWNER, w, explicit, times).await,
        "utimes_explicit_owner",
    )?;
    want(
        m.setattr(OTHER, w, now, times).await,
        "utimes_now_nonowner_writable",
    )?;
    let r = m.setattr(OTHER, w, SetAttrMask::ATIME_NOW, times).await;
    want(r, "utimens_now_omit_nonowner_writable")?;
    let ro = fresh(0o644, 1000, 1000).await?;
    let r = m.setattr(OTHER, ro, now, times).await;
    want(r, "utimes_now_nonowner_readonly")?;
    let ro = fresh(0o444, 1000, 1000).await?;
    want(
        m.setattr(OWNER, ro, now, times).await,
        "utimes_now_owner_readonly",
    )?;
    Ok(())
}

/// truncate(2) needs write permission; write(2) and truncate by a caller other than root
/// clear setuid (and setgid with group execute or outside the group); setxattr(2) and
/// removexattr(2): write permission for `user.`, root for `trusted.`, the owner on a sticky
/// directory.
pub async fn data_matrix(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let top = dir(&m, ROOT, "perm-data", 0o777, 0, 0).await?;
    let mut k = 0;
    let mut fresh = |mode: u16| {
        k += 1;
        let m = m.clone();
        async move { file(&m, top, &format!("f{k}"), mode, 1000, 1000).await }
    };
    let size = |size| SetAttrValues {
        size,
        ..Default::default()
    };

    let ro = fresh(0o644).await?;
    want(m.truncate(OTHER, ro, 0).await, "truncate_other_readonly")?;
    let r = m.setattr(OTHER, ro, SetAttrMask::SIZE, size(5)).await;
    want_kind(
        r,
        Some(PermissionDenied),
        "truncate_other_readonly (setattr)",
    )?;
    ensure!(
        m.getattr(ro).await?.length == 0,
        "a refused truncate changed the length"
    );
    let rw = fresh(0o666).await?;
    want(m.truncate(OTHER, rw, 0).await, "truncate_other_writable")?;

    for (row, caller, start) in [
        ("truncate_clears_suid_other", OTHER, 0o6777),
        ("truncate_sgid_nogx_other", OTHER, 0o2767),
        ("truncate_suid_root", Caller::ROOT, 0o6777),
        ("truncate_suid_owner", OWNER, 0o6777),
    ] {
        for via_setattr in [false, true] {
            let f = fresh(start).await?;
            let r = if via_setattr {
                m.setattr(caller.clone(), f, SetAttrMask::SIZE, size(1))
                    .await
            } else {
                m.truncate(caller.clone(), f, 1).await
            };
            let what = format!("{row} (through setattr: {via_setattr})");
            want_kind(r, linux(row)?.0, &what)?;
            want_mode(&m, f, row).await.context(what)?;
        }
    }
    for (row, caller) in [
        ("write_clears_suid_other", OTHER),
        ("write_suid_root", Caller::ROOT),
        ("write_suid_owner", OWNER),
    ] {
        let f = fresh(0o6777).await?;
        let id = m.new_slice_id().await?;
        let s = Slice {
            pos: 0,
            id,
            size: 1,
            off: 0,
            len: 1,
        };
        want(m.write(caller, f, 0, s).await, row)?;
        want_mode(&m, f, row).await?;
    }

    let x = XattrFlags::NONE;
    let ro = fresh(0o644).await?;
    let r = m.setxattr(OTHER, ro, b"user.x", b"1", x).await;
    want(r, "setxattr_user_other_readonly")?;
    want(
        m.setxattr(OWNER, ro, b"user.x", b"1", x).await,
        "setxattr_user_owner",
    )?;
    let r = m.removexattr(OTHER, ro, b"user.x").await;
    want(r, "removexattr_user_other_readonly")?;
    ensure!(
        m.getxattr(ro, b"user.x").await? == b"1",
        "a refused removexattr removed it"
    );
    let rw = fresh(0o666).await?;
    let r = m.setxattr(OTHER, rw, b"user.x", b"1", x).await;
    want(r, "setxattr_user_other_writable")?;
    let r = m.setxattr(OWNER, rw, b"trusted.x", b"1", x).await;
    want(r, "setxattr_trusted_owner")?;
    let r = m.setxattr(Caller::ROOT, rw, b"trusted.x", b"1", x).await;
    want(r, "setxattr_trusted_root")?;
    let s = dir(&m, top, "sticky", 0o1777, 1000, 1000).await?;
    let r = m.setxattr(OTHER, s, b"user.x", b"1", x).await;
    want(r, "setxattr_user_sticky_dir_other")?;
    Ok(())
}

/// access(2): one class of bits; root reads and writes anything and executes a directory or
/// a file with an execute bit; `permissions=false` lets every caller through, and its ops run
/// unchecked (a FUSE mount with `default_permissions`).
pub async fn access_and_checks_off(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let top = dir(&m, ROOT, "perm-access", 0o777, 0, 0).await?;
    let f400 = file(&m, top, "f400", 0o400, 1000, 1000).await?;
    let f000 = file(&m, top, "f000", 0o000, 1000, 1000).await?;
    let f010 = file(&m, top, "f010", 0o010, 1000, 1000).await?;
    let f460 = file(&m, top, "f460", 0o460, 1000, 1000).await?;
    let f040 = file(&m, top, "f040", 0o040, 1000, 1000).await?;
    let d000 = dir(&m, top, "d000", 0o000, 1000, 1000).await?;
    let root = Caller::ROOT;
    for (row, caller, ino, mask) in [
        ("access_R_owner_0400", OWNER, f400, MAY_READ),
        ("access_W_owner_0400", OWNER, f400, MAY_WRITE),
        ("access_X_owner_0400", OWNER, f400, MAY_EXEC),
        ("access_W_root_0000", root.clone(), f000, MAY_WRITE),
        ("access_R_root_0000", root.clone(), f000, MAY_READ),
        ("access_X_root_file_0000", root.clone(), f000, MAY_EXEC),
        ("access_X_root_file_0010", root.clone(), f010, MAY_EXEC),
        ("access_X_root_dir_0000", root.clone(), d000, MAY_EXEC),
        ("access_W_member_0460", member(), f460, MAY_WRITE),
        ("access_R_owner_0040", OWNER, f040, MAY_READ),
    ] {
        want(m.access(&caller, ino, mask).await, row)?;
    }
    want_kind(m.access(&OTHER, f000, 0).await, None, "access F_OK")?;
    want_kind(
        m.access(&OWNER, Ino(u64::MAX - 7), 0).await,
        Some(NotFound),
        "access of a missing inode",
    )?;

    let mut opts = MetaOptions::default();
    opts.permissions = false;
    opts.session = false;
    let off = ctx.open_meta(opts).await?;
    let d = dir(&m, top, "d755", 0o755, 1000, 1000).await?;
    want_kind(
        off.access(&OTHER, f000, MAY_READ | MAY_WRITE).await,
        None,
        "access, checks off",
    )?;
    let (g, a) = off.create(OTHER, d, b"g", 0o644).await?;
    ensure!(
        a.uid == OTHER.uid,
        "checks off: the new inode is not owned by its creator"
    );
    off.setattr(
        OTHER,
        f400,
        SetAttrMask::MODE,
        SetAttrValues {
            mode: 0o600,
            ..Default::default()
        },
    )
    .await?;
    off.unlink(OTHER, d, b"g").await?;
    ensure!(
        m.getattr(g).await.is_err(),
        "checks off: unlink did not remove the file"
    );
    off.close().await?;
    Ok(())
}
