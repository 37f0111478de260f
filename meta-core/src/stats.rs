//! Directory statistics: what each directory's direct children use, kept exact by the op that
//! changes it (in the same atomic op, on every backend), and the subtree summary built from
//! them ([`crate::Meta::dir_stat`], [`crate::Meta::summary`]).
//!
//! **Which directory an inode is charged to.** Every inode except the root is charged to the
//! directory in its `parent` field ([`crate::Attr::parent`]) while it has at least one link:
//! one inode, its length and its 4 KiB-aligned space ([`crate::Attr::space`]). Two kinds of
//! inodes are charged to no directory (they stay in the volume counters of statfs):
//!
//! - a sustained inode (nlink 0, unlinked while open), which is in no directory;
//! - a non-directory named in two or more directories (`parent` 0 after a `link` into another
//!   directory or a `rename` of one of several links), because the engine keeps no list of an
//!   inode's directories. Its usage leaves its old directory at that moment and is not charged
//!   again (XFS project quotas take a similar position: they refuse such links with EXDEV).
//!
//! So for a volume formatted with directory statistics, at every moment:
//! `Σ stats of all directories + the root's own inode + uncharged inodes = statfs counters`,
//! and [`expected_dir_stats`] computes every directory's statistics from the inodes alone
//! (what `fsck` and the conformance suite compare with the stored ones).

use std::collections::BTreeMap;
use std::ops::{Add, Neg, Sub};

use serde::{Deserialize, Serialize};

use crate::types::{Attr, FileType, Ino};

/// Usage of one directory's direct children (see the module documentation for which inodes
/// count). Signed, so the same type carries a change; a stored value is never negative.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DirStat {
    /// Number of inodes charged to the directory.
    pub inodes: i64,
    /// Sum of their lengths, in bytes ([`Attr::length`]: a directory counts 4096, a symlink
    /// its target's length).
    pub length: i64,
    /// Sum of their space, in bytes ([`Attr::space`]: the length rounded up to 4 KiB, at
    /// least 4 KiB).
    pub space: i64,
}

impl DirStat {
    /// The charge of one inode with attributes `a`.
    pub fn of(a: &Attr) -> DirStat {
        DirStat {
            inodes: 1,
            length: a.length as i64,
            space: a.space() as i64,
        }
    }

    /// True when every field is 0.
    pub fn is_zero(&self) -> bool {
        *self == DirStat::default()
    }
}

impl Add for DirStat {
    type Output = DirStat;
    fn add(self, o: DirStat) -> DirStat {
        DirStat {
            inodes: self.inodes.saturating_add(o.inodes),
            length: self.length.saturating_add(o.length),
            space: self.space.saturating_add(o.space),
        }
    }
}

impl Neg for DirStat {
    type Output = DirStat;
    fn neg(self) -> DirStat {
        DirStat {
            inodes: -self.inodes,
            length: -self.length,
            space: -self.space,
        }
    }
}

impl Sub for DirStat {
    type Output = DirStat;
    fn sub(self, o: DirStat) -> DirStat {
        self + -o
    }
}

/// The directory inode `ino` with attributes `a` is charged to and by how much, or `None` when
/// it is charged to none (the root, a sustained inode, an inode named in several directories).
pub fn charge(ino: Ino, a: &Attr) -> Option<(Ino, DirStat)> {
    if ino == Ino::ROOT || a.nlink == 0 || a.parent == Ino::ZERO {
        return None;
    }
    Some((a.parent, DirStat::of(a)))
}

/// The changes of directory statistics when inode `ino`'s attributes go from `before` to
/// `after` (`None`: the inode does not exist). At most two (directory, change) pairs, none
/// with a zero change.
pub fn recharge(ino: Ino, before: Option<&Attr>, after: Option<&Attr>) -> Vec<(Ino, DirStat)> {
    let old = before.and_then(|a| charge(ino, a));
    let new = after.and_then(|a| charge(ino, a));
    let mut out = Vec::with_capacity(2);
    match (old, new) {
        (Some((d, o)), Some((e, n))) if d == e => out.push((d, n - o)),
        (old, new) => {
            if let Some((d, o)) = old {
                out.push((d, -o));
            }
            if let Some((e, n)) = new {
                out.push((e, n));
            }
        }
    }
    out.retain(|(_, s)| !s.is_zero());
    out
}

/// Every directory's statistics computed from the inodes alone (the definition the stored ones
/// must equal). Directories with nothing charged are absent.
pub fn expected_dir_stats<'a>(
    inodes: impl IntoIterator<Item = (&'a Ino, &'a Attr)>,
) -> BTreeMap<Ino, DirStat> {
    let mut out: BTreeMap<Ino, DirStat> = BTreeMap::new();
    for (ino, a) in inodes {
        if let Some((d, s)) = charge(*ino, a) {
            let e = out.entry(d).or_default();
            *e = *e + s;
        }
    }
    out
}

/// Entries per `read_dir` page while looking for subdirectories.
const ENTRIES_PER_PAGE: usize = 4096;

/// The subdirectories of `dir` (name, inode), from its entries, a page of 4,096 at a time
/// (no attributes read); none when `dir` is gone (removed while a walk runs). Errors: those
/// of `read_dir` other than `NotFound`.
pub(crate) async fn subdirectories(
    backend: &dyn crate::Backend,
    dir: Ino,
) -> crate::Result<Vec<(Vec<u8>, Ino)>> {
    let mut out = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = match backend
            .read_dir(dir, after.as_deref(), ENTRIES_PER_PAGE, false)
            .await
        {
            Ok(p) => p,
            Err(e) if e.kind() == crate::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        let full = page.len() == ENTRIES_PER_PAGE;
        let last = page.last().map(|e| e.name.clone());
        out.extend(
            page.into_iter()
                .filter(|e| e.typ == FileType::Directory)
                .map(|e| (e.name, e.ino)),
        );
        match last {
            Some(name) if full => after = Some(name),
            _ => return Ok(out),
        }
    }
}

/// What a subtree holds, summed from directory statistics ([`crate::Meta::summary`]): the
/// directory itself and everything charged to a directory inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Summary {
    /// Directories, the top one included.
    pub dirs: u64,
    /// Inodes that are not directories.
    pub files: u64,
    /// Sum of lengths in bytes (directories count 4096 each).
    pub length: u64,
    /// Sum of 4 KiB-aligned space in bytes.
    pub space: u64,
}

impl Summary {
    /// Adds one directory's statistics; `subdirs` of its charged inodes are directories.
    pub fn add_dir(&mut self, stat: &DirStat, subdirs: u64) {
        let inodes = stat.inodes.max(0) as u64;
        self.files += inodes.saturating_sub(subdirs);
        self.length = self.length.saturating_add(stat.length.max(0) as u64);
        self.space = self.space.saturating_add(stat.space.max(0) as u64);
    }

    /// A summary of the single inode `a` (the top of a summary, or a non-directory).
    pub fn of_inode(a: &Attr) -> Summary {
        let dir = a.typ == FileType::Directory;
        Summary {
            dirs: u64::from(dir),
            files: u64::from(!dir),
            length: a.length,
            space: a.space(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Timespec;

    fn file(parent: u64, nlink: u32, length: u64) -> Attr {
        let t = Timespec { sec: 0, nsec: 0 };
        Attr {
            typ: FileType::Regular,
            mode: 0o644,
            uid: 0,
            gid: 0,
            rdev: 0,
            atime: t,
            mtime: t,
            ctime: t,
            nlink,
            length,
            parent: Ino(parent),
            flags: 0,
        }
    }

    #[test]
    fn recharge_moves_grows_and_drops() {
        let a = file(5, 1, 10);
        assert_eq!(
            recharge(Ino(9), None, Some(&a)),
            vec![(
                Ino(5),
                DirStat {
                    inodes: 1,
                    length: 10,
                    space: 4096
                }
            )]
        );
        let grown = file(5, 1, 5000);
        assert_eq!(
            recharge(Ino(9), Some(&a), Some(&grown)),
            vec![(
                Ino(5),
                DirStat {
                    inodes: 0,
                    length: 4990,
                    space: 4096
                }
            )]
        );
        let moved = file(6, 1, 10);
        assert_eq!(
            recharge(Ino(9), Some(&a), Some(&moved)),
            vec![
                (
                    Ino(5),
                    DirStat {
                        inodes: -1,
                        length: -10,
                        space: -4096
                    }
                ),
                (
                    Ino(6),
                    DirStat {
                        inodes: 1,
                        length: 10,
                        space: 4096
                    }
                )
            ]
        );
        // Linked into a second directory: parent 0, charged nowhere.
        let multi = file(0, 2, 10);
        assert_eq!(recharge(Ino(9), Some(&a), Some(&multi)).len(), 1);
        assert!(recharge(Ino(9), Some(&multi), Some(&file(0, 2, 99))).is_empty());
        // Sustained (nlink 0) and the root are charged nowhere.
        assert_eq!(recharge(Ino(9), Some(&a), Some(&file(5, 0, 10))).len(), 1);
        assert!(recharge(Ino::ROOT, None, Some(&file(1, 2, 4096))).is_empty());
        assert!(recharge(Ino(9), Some(&a), Some(&a)).is_empty());
    }

    #[test]
    fn expected_sums_by_parent() {
        let attrs = [
            (Ino(7), file(5, 1, 1)),
            (Ino(8), file(5, 1, 4097)),
            (Ino(9), file(0, 2, 3)),
        ];
        let m = expected_dir_stats(attrs.iter().map(|(i, a)| (i, a)));
        assert_eq!(m.len(), 1);
        assert_eq!(
            m[&Ino(5)],
            DirStat {
                inodes: 2,
                length: 4098,
                space: 4096 + 8192
            }
        );
    }
}
