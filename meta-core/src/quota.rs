//! Directory quotas: a space and inode limit on a directory's whole subtree, checked and
//! charged inside the atomic op that grows it, on every backend.
//!
//! **Usage** of a quota on directory `Q` is the sum of the directory statistics
//! ([`crate::stats`]) of every directory in `Q`'s subtree, `Q` included: every inode charged to
//! a directory below `Q`, but not `Q`'s own inode (which is charged to `Q`'s parent). The quota
//! record keeps that sum ([`Quota::used`]); every op that changes a directory's statistics
//! adds the same change to each quota on the directory's way to the root, in the same atomic
//! op, and fails with `QuotaExceeded` (EDQUOT) when a limit would be passed. Only growth is
//! checked: an op that shrinks a subtree, or moves usage inside one quota, always passes, even
//! when the usage is above a limit that was lowered below it.
//!
//! **Boundaries** (the same answers as XFS project quotas, `CrossDevice`, EXDEV):
//! - a non-empty directory cannot move into or out of a quota (its subtree's usage would have
//!   to move with it); an empty one can, and its own inode's charge moves as any file's;
//! - a file named in two or more directories is charged to none ([`crate::stats::charge`]),
//!   so a `link` or `rename` that would make a file leave a quota's charge that way, or enter a
//!   quota uncharged, fails. Files and empty directories moving across quotas are charged to
//!   the new ones and uncharged from the old ones by the same op.
//!
//! Quotas need directory statistics ([`crate::Setting::dir_stats`]); a volume without them
//! answers `Unsupported`. [`crate::Meta::set_quota`] computes the usage of a new quota from the
//! statistics of the subtree's directories, which the client lists and the op verifies
//! ([`check_subtree`]), so a concurrent mkdir, rmdir or rename is noticed and retried.

use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::error::{Result, err};
use crate::stats::DirStat;
use crate::types::{Attr, FileType, Ino};

/// One directory's quota: its limits and its subtree's current usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Quota {
    /// Limit on [`DirStat::space`] of the subtree, in bytes (4 KiB-aligned space, as
    /// [`Attr::space`]); 0 is no limit.
    pub max_space: u64,
    /// Limit on the number of inodes in the subtree (the directory itself not counted);
    /// 0 is no limit.
    pub max_inodes: u64,
    /// The subtree's usage: the sum of its directories' statistics.
    pub used: DirStat,
}

impl Quota {
    /// Fails with `QuotaExceeded` (EDQUOT) when adding `delta` to the usage would pass a limit
    /// of the quota on directory `dir`. Only a growing field is checked (a positive space or
    /// inode change), so a shrink always passes. Limits are compared as unsigned values, so a
    /// limit above `i64::MAX` is never reached.
    pub fn check(&self, dir: Ino, delta: &DirStat) -> Result<()> {
        if self.max_space > 0 && delta.space > 0 {
            let after = self.used.space.saturating_add(delta.space);
            if i128::from(after) > i128::from(self.max_space) {
                return Err(err::quota_exceeded(format!(
                    "quota of directory {dir}: {} bytes of space would pass its limit of {} \
                     ({} used)",
                    delta.space, self.max_space, self.used.space
                )));
            }
        }
        if self.max_inodes > 0 && delta.inodes > 0 {
            let after = self.used.inodes.saturating_add(delta.inodes);
            if i128::from(after) > i128::from(self.max_inodes) {
                return Err(err::quota_exceeded(format!(
                    "quota of directory {dir}: {} more inodes would pass its limit of {} \
                     ({} used)",
                    delta.inodes, self.max_inodes, self.used.inodes
                )));
            }
        }
        Ok(())
    }
}

/// Verifies that `dirs` is exactly the set of directories in the subtree of `dirs[0]`, given
/// the attributes of each (`attrs[i]` of `dirs[i]`): every one is a live directory, every one
/// but the first has its parent in the list, and each one's `nlink − 2` (its subdirectories,
/// by the directory link rule of Linux filesystems) equals the number of listed directories
/// whose parent it is. Errors: `InvalidArgument` for an empty list, a repeated inode or a
/// first entry that is not the quota's directory; `WouldBlock` when the list does not match
/// what is stored (a directory was created, removed or moved since it was listed: list again).
pub fn check_subtree(dir: Ino, dirs: &[Ino], attrs: &[Option<Attr>]) -> Result<()> {
    if dirs.first() != Some(&dir) {
        return Err(err::invalid(format!(
            "the subtree list of directory {dir} must start with it"
        )));
    }
    let mut children: std::collections::HashMap<Ino, u64> = std::collections::HashMap::new();
    let mut seen = std::collections::HashSet::with_capacity(dirs.len());
    for (i, (d, a)) in dirs.iter().zip(attrs).enumerate() {
        if !seen.insert(*d) {
            return Err(err::invalid(format!(
                "directory {d} is listed twice in the subtree of {dir}"
            )));
        }
        let changed = || err::would_block(format!("the subtree of directory {dir} changed"));
        let a = a.as_ref().ok_or_else(changed)?;
        if a.typ != FileType::Directory || a.nlink < 2 {
            return Err(changed());
        }
        if i > 0 {
            *children.entry(a.parent).or_default() += 1;
        }
    }
    for (d, a) in dirs.iter().zip(attrs) {
        let subdirs = a.as_ref().map_or(0, |a| u64::from(a.nlink) - 2);
        if children.remove(d).unwrap_or(0) != subdirs {
            return Err(err::would_block(format!(
                "the subtree of directory {dir} changed (directory {d} has other subdirectories)"
            )));
        }
    }
    if !children.is_empty() {
        return Err(err::would_block(format!(
            "the subtree of directory {dir} changed (a listed directory moved out of it)"
        )));
    }
    Ok(())
}

/// Every directory of `dir`'s subtree, `dir` first, breadth first, from plain `read_dir`
/// pages (no attributes): the list [`crate::Op::SetQuota`] takes. A directory removed while
/// the walk runs is skipped (the op then finds the list stale). Errors: `NotADirectory`,
/// `NotFound` for `dir`; `Corrupted` when a directory is reached twice (a cycle).
pub async fn subtree_dirs(backend: &dyn Backend, dir: Ino) -> Result<Vec<Ino>> {
    if backend.get_attr(dir).await?.typ != FileType::Directory {
        return Err(err::not_dir(format!("inode {dir}")));
    }
    let mut out = vec![dir];
    let mut seen = std::collections::HashSet::from([dir]);
    let mut next = 0;
    while next < out.len() {
        let parent = out[next];
        next += 1;
        for (name, d) in crate::stats::subdirectories(backend, parent).await? {
            if !seen.insert(d) {
                return Err(crate::dump::second_link(parent, &name, d));
            }
            out.push(d);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Timespec;

    fn dir(parent: u64, nlink: u32) -> Option<Attr> {
        let t = Timespec { sec: 0, nsec: 0 };
        Some(Attr {
            typ: FileType::Directory,
            mode: 0o755,
            uid: 0,
            gid: 0,
            rdev: 0,
            atime: t,
            mtime: t,
            ctime: t,
            nlink,
            length: 4096,
            parent: Ino(parent),
            flags: 0,
        })
    }

    #[test]
    fn check_counts_growth_only() {
        let q = Quota {
            max_space: 8192,
            max_inodes: 2,
            used: DirStat {
                inodes: 2,
                length: 10,
                space: 8192,
            },
        };
        let one = DirStat {
            inodes: 1,
            length: 0,
            space: 4096,
        };
        let e = q.check(Ino(5), &one).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::QuotaExceeded);
        assert!(e.to_string().contains("directory 5"), "{e}");
        assert!(q.check(Ino(5), &-one).is_ok());
        let unlimited = Quota {
            max_space: 0,
            max_inodes: 0,
            ..q
        };
        assert!(unlimited.check(Ino(5), &one).is_ok());
        let space_only = Quota { max_inodes: 0, ..q };
        let grow_len = DirStat {
            inodes: 1,
            length: 5,
            space: 0,
        };
        assert!(space_only.check(Ino(5), &grow_len).is_ok());
        // Limits are unsigned: one above i64::MAX (stored as a negative i64 by SQL) is not
        // passed by any usage.
        let huge = Quota {
            max_space: u64::MAX - 1,
            max_inodes: 1 << 63,
            ..q
        };
        assert!(huge.check(Ino(5), &one).is_ok());
    }

    #[test]
    fn subtree_must_be_closed() {
        // 10 -> {11 -> {13}, 12}
        let dirs = [Ino(10), Ino(11), Ino(12), Ino(13)];
        let attrs = [dir(1, 4), dir(10, 3), dir(10, 2), dir(11, 2)];
        assert!(check_subtree(Ino(10), &dirs, &attrs).is_ok());
        // 13 missing from the list: 11 has one more subdirectory than listed.
        let e = check_subtree(Ino(10), &dirs[..3], &attrs[..3]).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::WouldBlock);
        // 12 was moved elsewhere.
        let moved = [dir(1, 4), dir(10, 3), dir(7, 2), dir(11, 2)];
        assert!(check_subtree(Ino(10), &dirs, &moved).is_err());
        // 12 was removed.
        let gone = [dir(1, 4), dir(10, 3), None, dir(11, 2)];
        assert!(check_subtree(Ino(10), &dirs, &gone).is_err());
        // Wrong first entry or repeats are the caller's mistake.
        let e = check_subtree(Ino(11), &dirs, &attrs).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        let twice = [Ino(10), Ino(11), Ino(11), Ino(13)];
        let e = check_subtree(Ino(10), &twice, &attrs).unwrap_err();
        assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument);
        // A leaf quota lists only itself.
        assert!(check_subtree(Ino(13), &[Ino(13)], &[dir(11, 2)]).is_ok());
    }
}
