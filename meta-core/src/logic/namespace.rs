//! The namespace ops: mknod (every file type), link, unlink, rmdir, rename (link(2),
//! unlink(2), rmdir(2), rename(2) with `renameat2` flags), and the deletion of an inode whose
//! last link goes.

use crate::error::{Result, err};
use crate::op::{Caller, Imported, OpOutput, RenameFlags};
use crate::session::Sid;
use crate::types::{Attr, Counter, Entry, FileType, Ino, Pending, Timespec, show_name};

use crate::perm::{check_delete, check_dir_write, check_search};

use super::checks::{check_quota, dir_attr, existing_attr, live_dir_attr, restat};
use super::{Limits, TxnView, quota, session};

/// The new inode of a mknod.
pub(super) struct NewInode<'a> {
    pub(super) ino: Ino,
    pub(super) typ: FileType,
    pub(super) mode: u16,
    pub(super) uid: u32,
    pub(super) gid: u32,
    pub(super) rdev: u32,
    pub(super) target: &'a [u8],
    pub(super) time: Timespec,
    pub(super) opened_by: Option<Sid>,
    pub(super) imported: Option<&'a Imported>,
}

pub(super) async fn mknod<V: TxnView + ?Sized>(
    v: &mut V,
    parent: Ino,
    name: &[u8],
    n: NewInode<'_>,
    caller: &Caller,
    limits: &Limits,
) -> Result<OpOutput> {
    let pattr = live_dir_attr(v, parent).await?;
    // Linux's order: search permission to look the name up, EEXIST, then write permission.
    check_search(&pattr, parent, caller, "create")?;
    if v.get_entry(parent, name).await?.is_some() {
        return Err(err::exists(format!("{parent}/{}", show_name(name))));
    }
    check_dir_write(&pattr, parent, caller, "create")?;
    if v.get_attr(n.ino).await?.is_some() {
        return Err(err::exists(format!("inode {} is already in use", n.ino)));
    }
    let is_dir = n.typ == FileType::Directory;
    let mut mode = n.mode & 0o7777;
    let mut gid = n.gid;
    // A setgid directory passes its group on, and to subdirectories also the setgid bit
    // (not to a file being imported, whose recorded group and mode are kept).
    if pattr.mode & 0o2000 != 0 && n.imported.is_none() {
        gid = pattr.gid;
        if is_dir {
            mode |= 0o2000;
        }
    }
    let (atime, mtime, ctime) = match n.imported {
        Some(i) => (i.atime, i.mtime, i.ctime),
        None => (n.time, n.time, n.time),
    };
    let attr = Attr {
        typ: n.typ,
        mode,
        uid: n.uid,
        gid,
        rdev: n.rdev,
        atime,
        mtime,
        ctime,
        nlink: if is_dir { 2 } else { 1 },
        length: match n.typ {
            FileType::Directory => 4096,
            FileType::Symlink => n.target.len() as u64,
            _ => n.imported.map_or(0, |i| i.length),
        },
        parent,
        flags: 0,
    };
    let space = attr.space() as i64;
    check_quota(v, limits, space, 1).await?;
    if let Some(sid) = n.opened_by {
        session::live_session(v, sid).await?;
        v.set_open(sid, n.ino, true).await?;
    }
    v.put_attr(n.ino, &attr).await?;
    v.put_entry(
        parent,
        name,
        Entry {
            ino: n.ino,
            typ: n.typ,
        },
    )
    .await?;
    if n.typ == FileType::Symlink {
        v.put_symlink(n.ino, n.target).await?;
    }
    if let Some(slice) = n.imported.and_then(|i| i.slice) {
        v.append_slice(n.ino, 0, slice).await?;
    }
    v.add_counter(Counter::UsedSpace, space).await?;
    v.add_counter(Counter::TotalInodes, 1).await?;
    restat(v, limits, n.ino, None, Some(&attr)).await?;
    let parent_attr = v
        .update_dir(parent, &pattr, if is_dir { 1 } else { 0 }, n.time)
        .await?;
    Ok(OpOutput::Entry {
        ino: n.ino,
        attr,
        parent: parent_attr,
    })
}

pub(super) async fn link<V: TxnView + ?Sized>(
    v: &mut V,
    ino: Ino,
    parent: Ino,
    name: &[u8],
    caller: &Caller,
    time: Timespec,
    limits: &Limits,
) -> Result<OpOutput> {
    let mut attr = existing_attr(v, ino).await?;
    if attr.typ == FileType::Directory {
        return Err(err::not_permitted(format!("hard link to directory {ino}")));
    }
    if attr.nlink == 0 {
        // link(2) of an unlinked file still open (through /proc/self/fd): ENOENT on Linux.
        return Err(err::not_found(format!(
            "inode {ino} has no links left (unlinked while open)"
        )));
    }
    let pattr = live_dir_attr(v, parent).await?;
    check_search(&pattr, parent, caller, "link")?;
    if v.get_entry(parent, name).await?.is_some() {
        return Err(err::exists(format!("{parent}/{}", show_name(name))));
    }
    check_dir_write(&pattr, parent, caller, "link")?;
    if attr.nlink == u32::MAX {
        return Err(err::not_permitted(format!(
            "inode {ino} has too many links"
        )));
    }
    let before = attr;
    attr.nlink += 1;
    attr.ctime = time;
    if attr.parent != parent {
        attr.parent = Ino::ZERO;
        quota::check_uncharged_entry(v, limits, ino, &attr, parent).await?;
    }
    v.put_attr(ino, &attr).await?;
    restat(v, limits, ino, Some(&before), Some(&attr)).await?;
    v.put_entry(parent, name, Entry { ino, typ: attr.typ })
        .await?;
    let parent_attr = v.update_dir(parent, &pattr, 0, time).await?;
    Ok(OpOutput::Entry {
        ino,
        attr,
        parent: parent_attr,
    })
}

/// Drops one link of a non-directory inode whose entry is already gone. Returns the remaining
/// attributes (nlink 0 for a sustained inode, see [`remove_inode`]), or `None` when it was the
/// last link and the inode is deleted (its data recorded as pending deletion).
pub(super) async fn drop_link<V: TxnView + ?Sized>(
    v: &mut V,
    ino: Ino,
    mut attr: Attr,
    time: Timespec,
    limits: &Limits,
) -> Result<Option<Attr>> {
    if attr.nlink > 1 {
        attr.nlink -= 1;
        attr.ctime = time;
        v.put_attr(ino, &attr).await?;
        return Ok(Some(attr));
    }
    remove_inode(v, ino, attr, time, limits).await
}

/// The last link of `ino` is gone. When some session holds it open it is kept ("sustained"):
/// nlink 0, ctime `time`, in no directory, counted by statfs; the last [`Op::Release`] (or the
/// cleanup of the last session holding it) deletes it. Otherwise it is deleted now. Returns
/// the sustained inode's attributes, or `None` when deleted.
pub(super) async fn remove_inode<V: TxnView + ?Sized>(
    v: &mut V,
    ino: Ino,
    mut attr: Attr,
    time: Timespec,
    limits: &Limits,
) -> Result<Option<Attr>> {
    // Charged to no directory from now on, whether sustained or deleted; a removed
    // directory's quota goes with its last link.
    restat(v, limits, ino, Some(&attr), None).await?;
    if attr.typ == FileType::Directory && v.has_quotas().await? {
        v.put_quota(ino, None).await?;
    }
    if !v.openers(ino).await?.is_empty() {
        attr.nlink = 0;
        attr.ctime = time;
        v.put_attr(ino, &attr).await?;
        return Ok(Some(attr));
    }
    delete_inode(v, ino, &attr).await?;
    Ok(None)
}

/// Deletes an inode's records and accounts for it; regular files with data become pending.
pub(crate) async fn delete_inode<V: TxnView + ?Sized>(
    v: &mut V,
    ino: Ino,
    attr: &Attr,
) -> Result<()> {
    v.delete_inode(ino).await?;
    if attr.typ == FileType::Directory && v.has_quotas().await? {
        v.put_quota(ino, None).await?;
    }
    if attr.typ == FileType::Regular && attr.length > 0 {
        v.put_pending(Pending::File {
            ino,
            length: attr.length,
        })
        .await?;
    }
    v.add_counter(Counter::UsedSpace, -(attr.space() as i64))
        .await?;
    v.add_counter(Counter::TotalInodes, -1).await?;
    Ok(())
}

pub(super) async fn unlink<V: TxnView + ?Sized>(
    v: &mut V,
    parent: Ino,
    name: &[u8],
    caller: &Caller,
    time: Timespec,
    limits: &Limits,
) -> Result<OpOutput> {
    let pattr = dir_attr(v, parent).await?;
    check_search(&pattr, parent, caller, "unlink")?;
    let entry = v
        .get_entry(parent, name)
        .await?
        .ok_or_else(|| err::not_found(format!("{parent}/{}", show_name(name))))?;
    // may_delete: write permission, the sticky bit, then the type.
    let attr = v.get_attr(entry.ino).await?;
    check_delete(&pattr, parent, attr.as_ref(), caller, "unlink")?;
    if entry.typ == FileType::Directory {
        return Err(err::is_dir(format!("{parent}/{}", show_name(name))));
    }
    v.delete_entry(parent, name).await?;
    // A dangling entry (inode missing) is removed without further bookkeeping.
    let remaining = match attr {
        Some(a) => drop_link(v, entry.ino, a, time, limits).await?,
        None => None,
    };
    let parent_attr = v.update_dir(parent, &pattr, 0, time).await?;
    Ok(OpOutput::Removed {
        ino: entry.ino,
        attr: remaining,
        parent: parent_attr,
    })
}

pub(super) async fn rmdir<V: TxnView + ?Sized>(
    v: &mut V,
    parent: Ino,
    name: &[u8],
    caller: &Caller,
    time: Timespec,
    limits: &Limits,
) -> Result<OpOutput> {
    let pattr = dir_attr(v, parent).await?;
    check_search(&pattr, parent, caller, "rmdir")?;
    let entry = v
        .get_entry(parent, name)
        .await?
        .ok_or_else(|| err::not_found(format!("{parent}/{}", show_name(name))))?;
    if entry.typ != FileType::Directory {
        // may_delete: the permission and sticky checks come before the type.
        let attr = v.get_attr(entry.ino).await?;
        check_delete(&pattr, parent, attr.as_ref(), caller, "rmdir")?;
        return Err(err::not_dir(format!("{parent}/{}", show_name(name))));
    }
    let attr = existing_attr(v, entry.ino).await?;
    check_delete(&pattr, parent, Some(&attr), caller, "rmdir")?;
    if v.has_entries(entry.ino).await? {
        return Err(err::not_empty(format!("{parent}/{}", show_name(name))));
    }
    v.delete_entry(parent, name).await?;
    let sustained = remove_inode(v, entry.ino, attr, time, limits).await?;
    let parent_attr = v.update_dir(parent, &pattr, -1, time).await?;
    Ok(OpOutput::Removed {
        ino: entry.ino,
        attr: sustained,
        parent: parent_attr,
    })
}

/// Deepest directory nesting followed when checking for rename cycles before the tree is
/// declared corrupted.
pub(super) const MAX_DEPTH: usize = 100_000;

/// EINVAL when `dir` is `moving` or lies below it (rename(2): "an attempt was made to make a
/// directory a subdirectory of itself").
pub(super) async fn check_not_below<V: TxnView + ?Sized>(
    v: &mut V,
    dir: Ino,
    moving: Ino,
) -> Result<()> {
    let mut cur = dir;
    for _ in 0..MAX_DEPTH {
        if cur == moving {
            return Err(err::invalid(format!(
                "directory {moving} cannot move into its own subtree"
            )));
        }
        if cur == Ino::ROOT || cur == Ino::ZERO {
            return Ok(());
        }
        cur = existing_attr(v, cur).await?.parent;
    }
    Err(err::corrupted(format!(
        "directory {dir} is nested deeper than {MAX_DEPTH} levels (a parent loop?)"
    )))
}

/// The new `parent` field of an inode whose entry moves from directory `from` to `to`
/// (`from != to`). A directory follows its entry. A non-directory whose links all lived in
/// `from` (parent == from) follows too if this was its only link; with other links left in
/// `from` it is now named in two directories, so its parent becomes 0. A parent of 0 stays 0.
fn moved_parent(attr: &Attr, from: Ino, to: Ino) -> Ino {
    if attr.typ == FileType::Directory {
        to
    } else if attr.parent == from {
        if attr.nlink > 1 { Ino::ZERO } else { to }
    } else {
        attr.parent
    }
}

pub(super) async fn rename<V: TxnView + ?Sized>(
    v: &mut V,
    (parent, name): (Ino, &[u8]),
    (new_parent, new_name): (Ino, &[u8]),
    flags: RenameFlags,
    caller: &Caller,
    time: Timespec,
    limits: &Limits,
) -> Result<OpOutput> {
    let noreplace = flags.contains(RenameFlags::NOREPLACE);
    let exchange = flags.contains(RenameFlags::EXCHANGE);
    let spattr = dir_attr(v, parent).await?;
    let dpattr = if new_parent == parent {
        spattr
    } else {
        live_dir_attr(v, new_parent).await?
    };
    let src_path = format!("{parent}/{}", show_name(name));
    let dst_path = format!("{new_parent}/{}", show_name(new_name));
    check_search(&spattr, parent, caller, "rename")?;
    let sentry = v
        .get_entry(parent, name)
        .await?
        .ok_or_else(|| err::not_found(src_path.clone()))?;
    let mut sattr = existing_attr(v, sentry.ino).await?;
    check_search(&dpattr, new_parent, caller, "rename")?;
    let dentry = v.get_entry(new_parent, new_name).await?;
    if noreplace && dentry.is_some() {
        return Err(err::exists(dst_path));
    }
    let unchanged = |sattr: Attr| OpOutput::Renamed {
        ino: sentry.ino,
        attr: sattr,
        parent: spattr,
        new_parent: dpattr,
        replaced: None,
    };
    if parent == new_parent && name == new_name {
        return Ok(unchanged(sattr));
    }
    if exchange && dentry.is_none() {
        return Err(err::not_found(dst_path));
    }
    // rename(2): two names of one inode → nothing happens.
    if dentry.is_some_and(|d| d.ino == sentry.ino) {
        return Ok(unchanged(sattr));
    }
    let s_is_dir = sentry.typ == FileType::Directory;
    if s_is_dir && new_parent != parent {
        check_not_below(v, new_parent, sentry.ino).await?;
    }
    // Linux checks both directions of the loop before any permission.
    let moved_back = dentry.filter(|d| exchange && d.typ == FileType::Directory);
    if let (Some(d), true) = (moved_back, new_parent != parent) {
        check_not_below(v, parent, d.ino).await?;
    }
    let dattr = match dentry {
        Some(d) => Some(existing_attr(v, d.ino).await?),
        None => None,
    };
    check_rename_permissions(
        (parent, &spattr, (sentry.ino, &sattr)),
        (
            new_parent,
            &dpattr,
            dentry.map(|d| d.ino).zip(dattr.as_ref()),
        ),
        exchange,
        caller,
    )?;
    // nlink deltas of the source and destination directories.
    let mut dsrc: i64 = 0;
    let mut ddst: i64 = 0;
    let mut replaced = None;
    if let (Some(d), Some(mut dattr)) = (dentry, dattr) {
        let d_is_dir = d.typ == FileType::Directory;
        if exchange {
            v.put_entry(parent, name, d).await?;
            v.put_entry(new_parent, new_name, sentry).await?;
            if parent != new_parent {
                let (sbefore, dbefore) = (sattr, dattr);
                sattr.parent = moved_parent(&sattr, parent, new_parent);
                dattr.parent = moved_parent(&dattr, new_parent, parent);
                restat(v, limits, sentry.ino, Some(&sbefore), Some(&sattr)).await?;
                restat(v, limits, d.ino, Some(&dbefore), Some(&dattr)).await?;
                quota::check_uncharged_entry(v, limits, sentry.ino, &sattr, new_parent).await?;
                quota::check_uncharged_entry(v, limits, d.ino, &dattr, parent).await?;
                let moved = i64::from(s_is_dir) - i64::from(d_is_dir);
                dsrc -= moved;
                ddst += moved;
            }
            sattr.ctime = time;
            dattr.ctime = time;
            v.put_attr(sentry.ino, &sattr).await?;
            v.put_attr(d.ino, &dattr).await?;
            let (p, np) = update_both(
                v,
                (parent, &spattr, dsrc),
                (new_parent, &dpattr, ddst),
                time,
            )
            .await?;
            return Ok(OpOutput::Renamed {
                ino: sentry.ino,
                attr: sattr,
                parent: p,
                new_parent: np,
                replaced: Some((d.ino, Some(dattr))),
            });
        }
        if s_is_dir && !d_is_dir {
            return Err(err::not_dir(format!("{dst_path} is not a directory")));
        }
        if !s_is_dir && d_is_dir {
            return Err(err::is_dir(format!("{dst_path} is a directory")));
        }
        if d_is_dir {
            if v.has_entries(d.ino).await? {
                return Err(err::not_empty(dst_path));
            }
            let left = remove_inode(v, d.ino, dattr, time, limits).await?;
            ddst -= 1;
            replaced = Some((d.ino, left));
        } else {
            let left = drop_link(v, d.ino, dattr, time, limits).await?;
            replaced = Some((d.ino, left));
        }
    }
    v.delete_entry(parent, name).await?;
    v.put_entry(new_parent, new_name, sentry).await?;
    if parent != new_parent {
        let before = sattr;
        sattr.parent = moved_parent(&sattr, parent, new_parent);
        restat(v, limits, sentry.ino, Some(&before), Some(&sattr)).await?;
        quota::check_uncharged_entry(v, limits, sentry.ino, &sattr, new_parent).await?;
        if s_is_dir {
            dsrc -= 1;
            ddst += 1;
        }
    }
    sattr.ctime = time;
    v.put_attr(sentry.ino, &sattr).await?;
    let (p, np) = update_both(
        v,
        (parent, &spattr, dsrc),
        (new_parent, &dpattr, ddst),
        time,
    )
    .await?;
    Ok(OpOutput::Renamed {
        ino: sentry.ino,
        attr: sattr,
        parent: p,
        new_parent: np,
        replaced,
    })
}

/// The permission checks of rename(2) in Linux's order (`vfs_rename`): the source entry may be
/// deleted from its directory, the destination entry may be deleted (replaced or exchanged) or
/// created, and a directory that changes parent is writable (its `..` changes).
fn check_rename_permissions(
    (parent, spattr, src): (Ino, &Attr, (Ino, &Attr)),
    (new_parent, dpattr, dst): (Ino, &Attr, Option<(Ino, &Attr)>),
    exchange: bool,
    caller: &Caller,
) -> Result<()> {
    check_delete(spattr, parent, Some(src.1), caller, "rename")?;
    match dst {
        Some((_, d)) => check_delete(dpattr, new_parent, Some(d), caller, "rename")?,
        None => check_dir_write(dpattr, new_parent, caller, "rename")?,
    }
    if parent != new_parent {
        for (ino, a) in [Some(src), dst.filter(|_| exchange)].into_iter().flatten() {
            if a.typ == FileType::Directory {
                let what = "rename (a directory moving to another parent)";
                crate::perm::check_access(a, ino, caller, crate::perm::MAY_WRITE, what)?;
            }
        }
    }
    Ok(())
}

/// Updates the source and destination directories of a rename (once when they are the same).
pub(super) async fn update_both<V: TxnView + ?Sized>(
    v: &mut V,
    (p, pattr, dp): (Ino, &Attr, i64),
    (np, npattr, dnp): (Ino, &Attr, i64),
    time: Timespec,
) -> Result<(Attr, Attr)> {
    if p == np {
        let a = v.update_dir(p, pattr, dp + dnp, time).await?;
        return Ok((a, a));
    }
    let a = v.update_dir(p, pattr, dp, time).await?;
    let b = v.update_dir(np, npattr, dnp, time).await?;
    Ok((a, b))
}
