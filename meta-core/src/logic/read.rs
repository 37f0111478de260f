//! Reads, shared by the backends that implement the view, and the records every backend
//! derives the same way (the root's attributes, statfs).

use crate::error::{Error, ErrorKind, Result, err};
use crate::types::{
    Attr, DirEntry, FileType, Ino, Timespec, show_name, validate_name, validate_xattr,
};

use super::checks::{dir_attr, existing_attr};
use super::{Limits, TxnView};

/// lookup: resolves `name` in `parent`. `.` is the directory itself and `..` its parent (the
/// root's `..` is the root). Errors: `NotFound`, `NotADirectory`, bad names as in
/// [`validate_name`] (except `.`/`..`).
pub async fn lookup<V: TxnView + ?Sized>(
    v: &mut V,
    parent: Ino,
    name: &[u8],
) -> Result<(Ino, Attr)> {
    let pattr = dir_attr(v, parent).await?;
    let ino = match name {
        b"." => parent,
        b".." => {
            if parent == Ino::ROOT || pattr.parent == Ino::ZERO {
                Ino::ROOT
            } else {
                pattr.parent
            }
        }
        _ => {
            validate_name(name)?;
            v.get_entry(parent, name)
                .await?
                .ok_or_else(|| err::not_found(format!("{parent}/{}", show_name(name))))?
                .ino
        }
    };
    let attr = v.get_attr(ino).await?.ok_or_else(|| {
        err::not_found(format!("inode {ino} named by {parent}/{}", show_name(name)))
    })?;
    Ok((ino, attr))
}

/// get_attr with `NotFound` for a missing inode.
pub async fn get_attr<V: TxnView + ?Sized>(v: &mut V, ino: Ino) -> Result<Attr> {
    existing_attr(v, ino).await
}

/// readdir: see [`crate::Backend::read_dir`].
pub async fn read_dir<V: TxnView + ?Sized>(
    v: &mut V,
    ino: Ino,
    after: Option<&[u8]>,
    limit: usize,
    plus: bool,
) -> Result<Vec<DirEntry>> {
    dir_attr(v, ino).await?;
    let rows = v.scan_entries(ino, after, limit).await?;
    let mut out = Vec::with_capacity(rows.len());
    for (name, e) in rows {
        let attr = if plus {
            Some(v.get_attr(e.ino).await?.ok_or_else(|| {
                err::corrupted(format!(
                    "entry {ino}/{} points to missing inode {}",
                    show_name(&name),
                    e.ino
                ))
            })?)
        } else {
            None
        };
        out.push(DirEntry {
            name,
            ino: e.ino,
            typ: e.typ,
            attr,
        });
    }
    Ok(out)
}

/// readlink: `InvalidArgument` when `ino` is not a symlink (readlink(2): EINVAL).
pub async fn read_link<V: TxnView + ?Sized>(v: &mut V, ino: Ino) -> Result<Vec<u8>> {
    let attr = existing_attr(v, ino).await?;
    if attr.typ != FileType::Symlink {
        return Err(err::invalid(format!("inode {ino} is not a symlink")));
    }
    v.get_symlink(ino)
        .await?
        .ok_or_else(|| err::corrupted(format!("symlink {ino} has no target")))
}

/// getxattr: `NotFound` for the inode, `NoData` for the attribute.
pub async fn get_xattr<V: TxnView + ?Sized>(v: &mut V, ino: Ino, name: &[u8]) -> Result<Vec<u8>> {
    validate_xattr(name, None)?;
    existing_attr(v, ino).await?;
    v.get_xattr(ino, name)
        .await?
        .ok_or_else(|| err::no_data(format!("xattr {} of {ino}", show_name(name))))
}

/// listxattr: names in byte order; `NotFound` for a missing inode.
pub async fn list_xattr<V: TxnView + ?Sized>(v: &mut V, ino: Ino) -> Result<Vec<Vec<u8>>> {
    existing_attr(v, ino).await?;
    v.list_xattr(ino).await
}

/// The initial attributes of the root directory (mode 0777, owned by root).
pub fn root_attr(time: Timespec) -> Attr {
    Attr {
        typ: FileType::Directory,
        mode: 0o777,
        uid: 0,
        gid: 0,
        rdev: 0,
        atime: time,
        mtime: time,
        ctime: time,
        nlink: 2,
        length: 4096,
        parent: Ino::ROOT,
        flags: 0,
    }
}

/// Builds the `Statfs` from the counters and limits. Unlimited capacity shows as 1 PiB and an
/// unlimited inode count as 2^40, the numbers `df` then displays.
pub fn statfs_from(used_space: i64, total_inodes: i64, limits: &Limits) -> crate::types::Statfs {
    let used_space = used_space.max(0) as u64;
    let used_inodes = total_inodes.max(0) as u64;
    let total_space = if limits.capacity > 0 {
        limits.capacity
    } else {
        1 << 50
    };
    let total_inodes = if limits.inodes > 0 {
        limits.inodes
    } else {
        1 << 40
    };
    crate::types::Statfs {
        total_space,
        avail_space: total_space.saturating_sub(used_space),
        used_space,
        used_inodes,
        avail_inodes: total_inodes.saturating_sub(used_inodes),
    }
}

/// An error for a record that cannot be decoded, naming where it was found.
pub fn corrupted(what: impl Into<String>) -> Error {
    Error::new(ErrorKind::Corrupted, what)
}
