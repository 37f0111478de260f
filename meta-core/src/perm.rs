//! POSIX permission rules as Linux applies them, written once as pure functions over an
//! inode's [`Attr`] and the [`Caller`]. The op logic (`crate::logic`) and [`crate::Meta::access`]
//! call them; the Redis backend's Lua library repeats them (`lua/perm.lua`, `perm_*`), and the
//! conformance suite's permission matrix keeps the two in agreement.
//!
//! Sources: path_resolution(7) ("Permission checking", "Capabilities"), access(2), chmod(2),
//! chown(2), utimensat(2), truncate(2), write(2), link(2), unlink(2), rename(2), xattr(7), and
//! where the pages are silent Linux's own code paths (`generic_permission`, `may_delete`,
//! `setattr_prepare`, `may_setattr`, `should_remove_suid`, `xattr_permission`), checked against
//! this machine's kernel by `meta-conformance/oracle/permissions.py`.
//!
//! Hard links follow Linux with `fs.protected_hardlinks = 0`: linking someone else's file needs
//! only search and write permission on the new parent.

use crate::error::{Result, err};
use crate::op::{Caller, SetAttrMask, SetAttrValues};
use crate::types::{Attr, FileType, Ino};

/// access(2) `R_OK`: read permission.
pub const MAY_READ: u32 = 4;
/// access(2) `W_OK`: write permission.
pub const MAY_WRITE: u32 = 2;
/// access(2) `X_OK`: execute permission (search, for a directory).
pub const MAY_EXEC: u32 = 1;

/// The setuid bit.
pub const S_ISUID: u16 = 0o4000;
/// The setgid bit.
pub const S_ISGID: u16 = 0o2000;
/// The sticky bit.
pub const S_ISVTX: u16 = 0o1000;
/// Group execute.
const S_IXGRP: u16 = 0o010;

/// Whether `caller` has every permission of `mask` (bits of [`MAY_READ`], [`MAY_WRITE`],
/// [`MAY_EXEC`]) on an inode with attributes `attr`. One class of bits applies: the owner's
/// when the caller owns the inode, else the group's when the caller is in its group, else the
/// others' (path_resolution(7): the classes are not combined). Root may read and write
/// anything and execute a directory, or a file with at least one execute bit.
pub fn permits(attr: &Attr, caller: &Caller, mask: u32) -> bool {
    let mask = mask & 7;
    if caller.is_root() {
        return mask & MAY_EXEC == 0 || attr.typ == FileType::Directory || attr.mode & 0o111 != 0;
    }
    let bits = if caller.uid == attr.uid {
        attr.mode >> 6
    } else if caller.in_group(attr.gid) {
        attr.mode >> 3
    } else {
        attr.mode
    };
    u32::from(bits) & mask == mask
}

/// [`permits`] as a check. Errors: `PermissionDenied` (EACCES) naming the inode and `what`.
pub fn check_access(attr: &Attr, ino: Ino, caller: &Caller, mask: u32, what: &str) -> Result<()> {
    if permits(attr, caller, mask) {
        return Ok(());
    }
    Err(err::permission_denied(format!(
        "{what}: uid {} has no {} permission on inode {ino} (mode {:o}, owner {}:{})",
        caller.uid,
        mask_name(mask),
        attr.mode,
        attr.uid,
        attr.gid
    )))
}

fn mask_name(mask: u32) -> String {
    let mut s = String::new();
    for (bit, c) in [(MAY_READ, 'r'), (MAY_WRITE, 'w'), (MAY_EXEC, 'x')] {
        if mask & bit != 0 {
            s.push(c);
        }
    }
    s
}

/// Search permission on a directory whose entry is looked up (path_resolution(7)).
/// Errors: `PermissionDenied`.
pub fn check_search(dir: &Attr, ino: Ino, caller: &Caller, what: &str) -> Result<()> {
    check_access(dir, ino, caller, MAY_EXEC, what)
}

/// Write and search permission on a directory that gains or loses an entry (`may_create`,
/// the first half of `may_delete`). Errors: `PermissionDenied`.
pub fn check_dir_write(dir: &Attr, ino: Ino, caller: &Caller, what: &str) -> Result<()> {
    check_access(dir, ino, caller, MAY_WRITE | MAY_EXEC, what)
}

/// The sticky-bit rule (unlink(2), rename(2), rmdir(2): EPERM): in a directory with mode
/// 0o1000 only root, the directory's owner or the entry's owner may remove or rename an
/// entry. Errors: `NotPermitted`.
pub fn check_sticky(dir: &Attr, target: &Attr, caller: &Caller, what: &str) -> Result<()> {
    if dir.mode & S_ISVTX != 0
        && !caller.is_root()
        && caller.uid != dir.uid
        && caller.uid != target.uid
    {
        return Err(err::not_permitted(format!(
            "{what}: sticky directory owned by uid {}",
            dir.uid
        )));
    }
    Ok(())
}

/// `may_delete`: removing (or renaming away, or replacing) the entry of `target` in `dir`
/// needs write and search permission on `dir` (EACCES), then passes the sticky-bit rule
/// (EPERM).
pub fn check_delete(
    dir: &Attr,
    dir_ino: Ino,
    target: Option<&Attr>,
    caller: &Caller,
    what: &str,
) -> Result<()> {
    check_dir_write(dir, dir_ino, caller, what)?;
    match target {
        Some(t) => check_sticky(dir, t, caller, what),
        None => Ok(()),
    }
}

/// The mode bits a change of owner or content removes (Linux's `should_remove_suid` and
/// `setattr_should_drop_sgid`): setuid, and setgid when group execute is set or when the
/// caller is neither in the file's group nor root.
fn kill_bits(attr: &Attr, caller: &Caller) -> u16 {
    let mut kill = attr.mode & S_ISUID;
    if attr.mode & S_ISGID != 0
        && (attr.mode & S_IXGRP != 0 || !(caller.is_root() || caller.in_group(attr.gid)))
    {
        kill |= S_ISGID;
    }
    kill
}

/// The mode of a regular file after a write or truncate by `caller` (write(2), truncate(2)):
/// a caller other than root (even the owner) loses the file's setuid bit, and its setgid bit
/// when group execute is set or the caller is not in the file's group. Root keeps both
/// (`CAP_FSETID`); other types are unchanged.
pub fn mode_after_write(attr: &Attr, caller: &Caller) -> u16 {
    if caller.is_root() || attr.typ != FileType::Regular {
        return attr.mode;
    }
    attr.mode & !kill_bits(attr, caller)
}

/// Checks a setattr by `caller` on an inode with attributes `attr`, in Linux's order
/// (`setattr_prepare`, `may_setattr`, `do_truncate`), and returns the mode the inode must get
/// besides what the op sets: with `MODE` the requested mode, without its setgid bit when a
/// caller other than root is not in the (new) group; after a chown of a non-directory or a
/// truncate without `MODE`, the current mode without setuid and (as [`mode_after_write`]
/// decides) setgid; a chown clears them for root too, a truncate only for other callers.
///
/// - `SIZE` (truncate(2)): write permission on the file, EACCES.
/// - `UID` (chown(2)): root, or the owner "changing" it to itself; else EPERM.
/// - `GID`: root, or the owner changing it to its own group or one of its supplementary
///   groups (or leaving it); else EPERM.
/// - `MODE` (chmod(2)): root or the owner; else EPERM.
/// - explicit times (`ATIME`, `MTIME`) or a single `*_NOW` (utimensat(2) with one
///   `UTIME_NOW` and one `UTIME_OMIT`): root or the owner; else EPERM.
/// - both `ATIME_NOW` and `MTIME_NOW` and no explicit time (utimensat(2) with `times`
///   NULL): root, the owner, or write permission; else EACCES.
pub fn check_setattr(
    attr: &Attr,
    ino: Ino,
    caller: &Caller,
    mask: SetAttrMask,
    values: &SetAttrValues,
) -> Result<u16> {
    let owner = caller.is_root() || caller.uid == attr.uid;
    let denied = |what: &str| {
        err::not_permitted(format!(
            "{what} of inode {ino} (owner {}) by uid {}",
            attr.uid, caller.uid
        ))
    };
    if mask.contains(SetAttrMask::SIZE) {
        check_access(attr, ino, caller, MAY_WRITE, "truncate")?;
    }
    if mask.contains(SetAttrMask::UID)
        && !caller.is_root()
        && !(caller.uid == attr.uid && values.uid == attr.uid)
    {
        return Err(denied("chown"));
    }
    let new_gid = if mask.contains(SetAttrMask::GID) {
        values.gid
    } else {
        attr.gid
    };
    if mask.contains(SetAttrMask::GID)
        && !caller.is_root()
        && !(caller.uid == attr.uid && (values.gid == attr.gid || caller.in_group(values.gid)))
    {
        return Err(denied("chgrp"));
    }
    let mut mode = attr.mode;
    if mask.contains(SetAttrMask::MODE) {
        if !owner {
            return Err(denied("chmod"));
        }
        mode = values.mode & 0o7777;
        if !caller.is_root() && !caller.in_group(new_gid) {
            mode &= !S_ISGID;
        }
    }
    let explicit = mask.contains(SetAttrMask::ATIME) || mask.contains(SetAttrMask::MTIME);
    let now_a = mask.contains(SetAttrMask::ATIME_NOW);
    let now_m = mask.contains(SetAttrMask::MTIME_NOW);
    if explicit || now_a != now_m {
        if !owner {
            return Err(denied("setting the times"));
        }
    } else if now_a && now_m && !owner && !permits(attr, caller, MAY_WRITE) {
        return Err(err::permission_denied(format!(
            "touching the times of inode {ino}: uid {} is not the owner and cannot write",
            caller.uid
        )));
    }
    if !mask.contains(SetAttrMask::MODE) && attr.typ != FileType::Directory {
        if mask.contains(SetAttrMask::UID) || mask.contains(SetAttrMask::GID) {
            // chown(2): the set-user-ID bit and (with group execute, or for a caller outside
            // the group) the set-group-ID bit are cleared, for root too.
            mode &= !kill_bits(&Attr { mode, ..*attr }, caller);
        }
        if mask.contains(SetAttrMask::SIZE) {
            mode = mode_after_write(&Attr { mode, ..*attr }, caller);
        }
    }
    Ok(mode)
}

/// The namespace of an xattr name that only root may change: `trusted.` (xattr(7):
/// `CAP_SYS_ADMIN`) and `security.` (without a security module, Linux's `cap_inode_setxattr`
/// asks for `CAP_SYS_ADMIN` too).
fn privileged_xattr(name: &[u8]) -> bool {
    name.starts_with(b"trusted.") || name.starts_with(b"security.")
}

/// setxattr(2) / removexattr(2) by `caller` on `attr` (`xattr_permission`): `trusted.` and
/// `security.` names need root (EPERM); `user.` names exist only on regular files and
/// directories (EPERM otherwise, for root too: xattr(7)) and not on a sticky directory of
/// another owner (EPERM); then write permission (EACCES), which root has.
pub fn check_xattr_write(attr: &Attr, ino: Ino, caller: &Caller, name: &[u8]) -> Result<()> {
    let what = "changing extended attributes";
    if name.starts_with(b"user.") && !matches!(attr.typ, FileType::Regular | FileType::Directory) {
        return Err(err::not_permitted(format!(
            "{what} of {} {ino}: user. names are for regular files and directories only",
            attr.typ.name()
        )));
    }
    if caller.is_root() {
        return Ok(());
    }
    if privileged_xattr(name) {
        return Err(err::not_permitted(format!(
            "{what} of inode {ino}: {} names need root",
            crate::types::show_name(name.split(|&b| b == b'.').next().unwrap_or(b""))
        )));
    }
    if name.starts_with(b"user.")
        && attr.typ == FileType::Directory
        && attr.mode & S_ISVTX != 0
        && caller.uid != attr.uid
    {
        return Err(err::not_permitted(format!(
            "{what} of sticky directory {ino} owned by uid {}",
            attr.uid
        )));
    }
    check_access(attr, ino, caller, MAY_WRITE, what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Timespec;

    fn attr(typ: FileType, mode: u16, uid: u32, gid: u32) -> Attr {
        Attr {
            typ,
            mode,
            uid,
            gid,
            rdev: 0,
            atime: Timespec::default(),
            mtime: Timespec::default(),
            ctime: Timespec::default(),
            nlink: 1,
            length: 0,
            parent: Ino::ROOT,
            flags: 0,
        }
    }

    const OWNER: Caller = Caller::new(1000, 1000);
    const OTHER: Caller = Caller::new(1002, 1002);

    fn member() -> Caller {
        Caller::with_groups(1001, 1001, [1001, 1000])
    }

    #[test]
    fn one_class_of_bits_applies() {
        let f = |mode| attr(FileType::Regular, mode, 1000, 1000);
        // Owner bits win even when the group's allow more.
        assert!(!permits(&f(0o040), &OWNER, MAY_READ));
        // A group member gets the group's bits, not the others'.
        assert!(!permits(&f(0o407), &member(), MAY_READ));
        assert!(permits(&f(0o460), &member(), MAY_WRITE));
        assert!(permits(&f(0o404), &OTHER, MAY_READ));
        assert!(!permits(&f(0o404), &OTHER, MAY_READ | MAY_WRITE));
        assert!(permits(&f(0o000), &OTHER, 0));
    }

    #[test]
    fn root_needs_an_execute_bit_on_files_only() {
        let f = attr(FileType::Regular, 0, 1000, 1000);
        assert!(permits(&f, &Caller::ROOT, MAY_READ | MAY_WRITE));
        assert!(!permits(&f, &Caller::ROOT, MAY_EXEC));
        assert!(permits(&Attr { mode: 0o010, ..f }, &Caller::ROOT, MAY_EXEC));
        let d = attr(FileType::Directory, 0, 1000, 1000);
        assert!(permits(&d, &Caller::ROOT, MAY_EXEC | MAY_WRITE));
    }

    #[test]
    fn write_and_chown_clear_setuid() {
        let f = attr(FileType::Regular, 0o6777, 1000, 1000);
        assert_eq!(mode_after_write(&f, &OTHER), 0o777);
        assert_eq!(mode_after_write(&f, &OWNER), 0o777);
        assert_eq!(mode_after_write(&f, &Caller::ROOT), 0o6777);
        // setgid without group execute stays for a group member, not for others.
        let g = Attr { mode: 0o2767, ..f };
        assert_eq!(mode_after_write(&g, &member()), 0o2767);
        assert_eq!(mode_after_write(&g, &OTHER), 0o767);
        let chown = SetAttrValues {
            uid: 1002,
            ..Default::default()
        };
        let m = check_setattr(&f, Ino(5), &Caller::ROOT, SetAttrMask::UID, &chown);
        assert_eq!(m.ok(), Some(0o777));
        let d = attr(FileType::Directory, 0o6755, 1000, 1000);
        let m = check_setattr(&d, Ino(5), &Caller::ROOT, SetAttrMask::UID, &chown);
        assert_eq!(m.ok(), Some(0o6755));
    }

    #[test]
    fn chmod_chown_and_times_need_the_owner() {
        let f = attr(FileType::Regular, 0o666, 1000, 2000);
        let v = SetAttrValues {
            mode: 0o2755,
            uid: 1000,
            gid: 3000,
            ..Default::default()
        };
        let kind = |r: Result<u16>| r.err().map(|e| e.kind());
        use crate::ErrorKind::{NotPermitted, PermissionDenied};
        assert_eq!(
            kind(check_setattr(&f, Ino(2), &OTHER, SetAttrMask::MODE, &v)),
            Some(NotPermitted)
        );
        // The owner outside the file's group loses the setgid bit it asks for.
        assert_eq!(
            check_setattr(&f, Ino(2), &OWNER, SetAttrMask::MODE, &v).ok(),
            Some(0o755)
        );
        assert_eq!(
            kind(check_setattr(&f, Ino(2), &OTHER, SetAttrMask::UID, &v)),
            Some(NotPermitted)
        );
        assert!(check_setattr(&f, Ino(2), &OWNER, SetAttrMask::UID, &v).is_ok());
        assert_eq!(
            kind(check_setattr(&f, Ino(2), &OWNER, SetAttrMask::GID, &v)),
            Some(NotPermitted)
        );
        let in3000 = Caller::with_groups(1000, 1000, [3000]);
        assert!(check_setattr(&f, Ino(2), &in3000, SetAttrMask::GID, &v).is_ok());
        let now = SetAttrMask::ATIME_NOW | SetAttrMask::MTIME_NOW;
        assert!(check_setattr(&f, Ino(2), &OTHER, now, &v).is_ok());
        let ro = Attr { mode: 0o644, ..f };
        assert_eq!(
            kind(check_setattr(&ro, Ino(2), &OTHER, now, &v)),
            Some(PermissionDenied)
        );
        assert_eq!(
            kind(check_setattr(
                &f,
                Ino(2),
                &OTHER,
                SetAttrMask::ATIME_NOW,
                &v
            )),
            Some(NotPermitted)
        );
        assert_eq!(
            kind(check_setattr(&f, Ino(2), &OTHER, SetAttrMask::MTIME, &v)),
            Some(NotPermitted)
        );
        assert_eq!(
            kind(check_setattr(&ro, Ino(2), &OTHER, SetAttrMask::SIZE, &v)),
            Some(PermissionDenied)
        );
    }

    #[test]
    fn xattr_namespaces() {
        let f = attr(FileType::Regular, 0o644, 1000, 1000);
        assert!(check_xattr_write(&f, Ino(2), &OWNER, b"user.a").is_ok());
        assert!(check_xattr_write(&f, Ino(2), &OTHER, b"user.a").is_err());
        assert!(check_xattr_write(&f, Ino(2), &OWNER, b"trusted.a").is_err());
        assert!(check_xattr_write(&f, Ino(2), &Caller::ROOT, b"trusted.a").is_ok());
        let l = attr(FileType::Symlink, 0o777, 1000, 1000);
        assert!(check_xattr_write(&l, Ino(2), &OWNER, b"user.a").is_err());
        assert!(check_xattr_write(&l, Ino(2), &Caller::ROOT, b"user.a").is_err());
        assert!(check_xattr_write(&l, Ino(2), &Caller::ROOT, b"trusted.a").is_ok());
        let d = attr(FileType::Directory, 0o1777, 1000, 1000);
        assert!(check_xattr_write(&d, Ino(2), &OTHER, b"user.a").is_err());
        assert!(check_xattr_write(&d, Ino(2), &OWNER, b"user.a").is_ok());
    }
}
