//! Who a FUSE request acts for, and what the mount checks itself when the engine, not the
//! kernel, decides permissions (mounted without `default_permissions`).
//!
//! With `default_permissions` (the default) the kernel checks every access against the
//! attributes it was given, clears setuid/setgid itself, and the volume is opened with
//! `permissions=false`. Without it the kernel checks nothing: the engine decides the mutating
//! ops inside their atomic op ([`meta_core::perm`]), and the mount asks
//! [`meta_core::Meta::access`] for what the engine does not see as an op: search permission
//! before a lookup, the open mode at open(2) and opendir(3), `access(2)`, reading `user.`
//! xattrs; and it clears setuid/setgid on a write by another user than root, which the kernel
//! then leaves to the filesystem (`FUSE_HANDLE_KILLPRIV`).

use fuser::Request;
use meta_core::perm::{MAY_READ, MAY_WRITE};
use meta_core::{Attr, Caller, Ino, Meta, Result, SetAttrMask, SetAttrValues};

/// The caller of `req`: its uid and gid, and when `groups` its supplementary groups (the
/// `Groups:` line of `/proc/<pid>/status`; FUSE does not send them). A process that is gone
/// has none.
pub(super) fn caller(req: &Request, groups: bool) -> Caller {
    let mut c = Caller::new(req.uid(), req.gid());
    if groups {
        c.groups = proc_groups(req.pid());
    }
    c
}

fn proc_groups(pid: u32) -> Vec<u32> {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return Vec::new();
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .map(|g| {
            g.split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// With engine checks (`who` given), fails unless `who` has the permissions of `mask` on
/// `ino` ([`Meta::access`]); without them (the kernel checked) passes at once, reading
/// nothing.
pub(super) async fn check(meta: &Meta, who: Option<&Caller>, ino: Ino, mask: u32) -> Result<()> {
    match who {
        Some(w) => meta.access(w, ino, mask).await,
        None => Ok(()),
    }
}

/// A write or truncate by `who` through a descriptor (attributes `a`): clears setuid/setgid
/// as write(2) does ([`meta_core::perm::mode_after_write`]), as root (the writer need not own
/// the file).
pub(super) async fn kill_privileges(meta: &Meta, ino: Ino, a: Attr, who: &Caller) -> Result<()> {
    let mode = meta_core::perm::mode_after_write(&a, who);
    if mode != a.mode {
        let v = SetAttrValues {
            mode,
            ..SetAttrValues::default()
        };
        meta.setattr(Caller::ROOT, ino, SetAttrMask::MODE, v)
            .await?;
    }
    Ok(())
}

/// `O_ACCMODE` and `O_TRUNC` (open(2), Linux values).
const O_ACCMODE: i32 = 3;
const O_TRUNC: i32 = 0o1000;

/// The permissions open(2) with `flags` needs (`may_open`): read for `O_RDONLY`, write for
/// `O_WRONLY`, both for `O_RDWR`, and write for `O_TRUNC`.
pub(super) fn open_mask(flags: i32) -> u32 {
    let mut mask = match flags & O_ACCMODE {
        0 => MAY_READ,
        1 => MAY_WRITE,
        _ => MAY_READ | MAY_WRITE,
    };
    if flags & O_TRUNC != 0 {
        mask |= MAY_WRITE;
    }
    mask
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_modes() {
        assert_eq!(open_mask(0), MAY_READ);
        assert_eq!(open_mask(1), MAY_WRITE);
        assert_eq!(open_mask(2), MAY_READ | MAY_WRITE);
        assert_eq!(open_mask(O_TRUNC), MAY_READ | MAY_WRITE);
    }

    #[test]
    fn own_groups() {
        let mine = proc_groups(std::process::id());
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let line = status.lines().find(|l| l.starts_with("Groups:"));
        let n = line.map_or(0, |l| l.split_whitespace().count() - 1);
        assert_eq!(mine.len(), n, "{line:?}");
        assert!(proc_groups(u32::MAX).is_empty());
    }
}
