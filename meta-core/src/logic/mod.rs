//! The POSIX rules, written once, as generic async functions over a small transaction view
//! ([`TxnView`]). Every backend that runs Rust-side logic (in-memory, RocksDB, SQL, TiKV)
//! implements the view; Redis implements the same rules in Lua.
//!
//! Sources of the rules: link(2), unlink(2), rmdir(2), rename(2) (incl. `renameat2` flags),
//! setxattr(2), truncate(2), and Linux's handling of directory nlink and parent times.
//! Sessions, open files and locks: [`session`] (flock(2), fcntl(2)).

mod session;

pub use session::{list_locks, session_holdings};

use async_trait::async_trait;

use crate::error::{Error, ErrorKind, Result, err};
use crate::op::{
    Caller, Op, OpOutput, RenameFlags, RestoreRecord, SetAttrMask, SetAttrValues, XattrFlags,
};
use crate::session::{LockKind, LockOwner, LockType, PlockRange, Session, Sid};
use crate::types::{
    Attr, CHUNK_BITS, CHUNK_SIZE, Counter, DirEntry, Entry, FileType, Ino, MAX_FILE_LEN, Pending,
    Setting, Slice, Timespec, align_space, show_name, validate_name, validate_symlink_target,
    validate_xattr,
};

/// Volume limits the op logic enforces (from the format record). 0 means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Capacity in bytes.
    pub capacity: u64,
    /// Maximum number of inodes.
    pub inodes: u64,
}

impl From<&Setting> for Limits {
    fn from(s: &Setting) -> Limits {
        Limits {
            capacity: s.capacity,
            inodes: s.inodes,
        }
    }
}

/// Key-level access to one volume inside one transaction, with savepoints.
///
/// All reads see the writes made earlier in the same transaction. `savepoint` /
/// `release_savepoint` / `rollback_to_savepoint` bracket one op: a rolled-back op leaves no
/// trace. Methods whose default reads-modifies-writes can be overridden where the database can
/// express the intent better (e.g. SQL's commutative `UPDATE ... SET nlink = nlink + ?`).
#[async_trait]
pub trait TxnView: Send {
    /// Attributes of `ino`, or `None`.
    async fn get_attr(&mut self, ino: Ino) -> Result<Option<Attr>>;
    /// Stores the attributes of `ino` (insert or replace).
    async fn put_attr(&mut self, ino: Ino, attr: &Attr) -> Result<()>;
    /// Removes the attributes, symlink target and xattrs of `ino` (chunks stay).
    async fn delete_inode(&mut self, ino: Ino) -> Result<()>;

    /// The entry `name` of directory `parent`, or `None`.
    async fn get_entry(&mut self, parent: Ino, name: &[u8]) -> Result<Option<Entry>>;
    /// Stores an entry (insert or replace).
    async fn put_entry(&mut self, parent: Ino, name: &[u8], entry: Entry) -> Result<()>;
    /// Removes an entry (no error if absent).
    async fn delete_entry(&mut self, parent: Ino, name: &[u8]) -> Result<()>;
    /// Entries of `parent` with names strictly after `after`, in byte order, at most `limit`.
    async fn scan_entries(
        &mut self,
        parent: Ino,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<Vec<(Vec<u8>, Entry)>>;
    /// True when `parent` has at least one entry.
    async fn has_entries(&mut self, parent: Ino) -> Result<bool> {
        Ok(!self.scan_entries(parent, None, 1).await?.is_empty())
    }

    /// Slices of chunk `indx` of `ino` (empty when none).
    async fn get_chunk(&mut self, ino: Ino, indx: u32) -> Result<Vec<Slice>>;
    /// Replaces the slices of a chunk; an empty list removes the chunk.
    async fn put_chunk(&mut self, ino: Ino, indx: u32, slices: &[Slice]) -> Result<()>;
    /// Appends one slice to a chunk.
    async fn append_slice(&mut self, ino: Ino, indx: u32, slice: Slice) -> Result<()> {
        let mut s = self.get_chunk(ino, indx).await?;
        s.push(slice);
        self.put_chunk(ino, indx, &s).await
    }
    /// Indexes of the non-empty chunks of `ino`, increasing.
    async fn chunk_indexes(&mut self, ino: Ino) -> Result<Vec<u32>>;
    /// Removes every chunk of `ino`.
    async fn delete_chunks(&mut self, ino: Ino) -> Result<()> {
        for indx in self.chunk_indexes(ino).await? {
            self.put_chunk(ino, indx, &[]).await?;
        }
        Ok(())
    }

    /// Symlink target of `ino`, or `None`.
    async fn get_symlink(&mut self, ino: Ino) -> Result<Option<Vec<u8>>>;
    /// Stores a symlink target.
    async fn put_symlink(&mut self, ino: Ino, target: &[u8]) -> Result<()>;

    /// Value of xattr `name`, or `None`.
    async fn get_xattr(&mut self, ino: Ino, name: &[u8]) -> Result<Option<Vec<u8>>>;
    /// Stores an xattr (insert or replace).
    async fn put_xattr(&mut self, ino: Ino, name: &[u8], value: &[u8]) -> Result<()>;
    /// Removes an xattr (no error if absent).
    async fn delete_xattr(&mut self, ino: Ino, name: &[u8]) -> Result<()>;
    /// Names of the xattrs of `ino`, in byte order.
    async fn list_xattr(&mut self, ino: Ino) -> Result<Vec<Vec<u8>>>;

    /// Current value of a counter (0 when absent).
    async fn get_counter(&mut self, counter: Counter) -> Result<i64>;
    /// Adds `delta` to a counter (commutative intent).
    async fn add_counter(&mut self, counter: Counter, delta: i64) -> Result<()>;

    /// Records data awaiting deletion by the data layer.
    async fn put_pending(&mut self, pending: Pending) -> Result<()>;
    /// Whether a pending record exists: `Pending::File { ino, .. }` matches on `ino`,
    /// `Pending::Slice { id, .. }` on `id` (the other field is ignored).
    async fn has_pending(&mut self, pending: Pending) -> Result<bool>;
    /// Removes a pending record (matched as in [`TxnView::has_pending`]).
    async fn delete_pending(&mut self, pending: Pending) -> Result<()>;

    /// The session `sid`, or `None`. In a write transaction the backend must keep the
    /// session's record from being deleted until the transaction ends when the op adds a
    /// record that belongs to the session (SQL: a shared row lock, see meta-sql).
    async fn get_session(&mut self, sid: Sid) -> Result<Option<Session>>;
    /// Whether session `sid` exists (the same locking duty as [`TxnView::get_session`]);
    /// stores override it to skip decoding the session's description.
    async fn has_session(&mut self, sid: Sid) -> Result<bool> {
        Ok(self.get_session(sid).await?.is_some())
    }
    /// Stores a session (insert or replace).
    async fn put_session(&mut self, session: &Session) -> Result<()>;
    /// Removes a session's record (no error if absent).
    async fn delete_session(&mut self, sid: Sid) -> Result<()>;
    /// Every session, by increasing ID.
    async fn list_sessions(&mut self) -> Result<Vec<Session>>;
    /// The sessions holding `ino` open, increasing.
    async fn openers(&mut self, ino: Ino) -> Result<Vec<Sid>>;
    /// Records (`open`) or forgets (`!open`) that session `sid` holds `ino` open.
    async fn set_open(&mut self, sid: Sid, ino: Ino, open: bool) -> Result<()>;
    /// The inodes session `sid` holds open, increasing.
    async fn session_opens(&mut self, sid: Sid) -> Result<Vec<Ino>>;
    /// The flocks on `ino`, by owner.
    async fn get_flocks(&mut self, ino: Ino) -> Result<Vec<(LockOwner, LockType)>>;
    /// Sets `owner`'s flock on `ino` (`Unlock` removes the record).
    async fn set_flock(&mut self, ino: Ino, owner: LockOwner, typ: LockType) -> Result<()>;
    /// The byte-range locks on `ino`, by owner (owners without ranges are not listed).
    async fn get_plocks(&mut self, ino: Ino) -> Result<Vec<(LockOwner, Vec<PlockRange>)>>;
    /// Replaces `owner`'s ranges on `ino` (an empty list removes the record).
    async fn set_plocks(&mut self, ino: Ino, owner: LockOwner, ranges: &[PlockRange])
    -> Result<()>;
    /// Every lock record of session `sid`: inode, kind and owner.
    async fn session_locks(&mut self, sid: Sid) -> Result<Vec<(Ino, LockKind, u64)>>;

    /// "Add `nlink_delta` to directory `dir`'s nlink and raise its mtime/ctime to `time`", where
    /// `current` is the directory's attributes as read in this transaction. Returns the new
    /// attributes. The default is a read-modify-write; SQL overrides it with one commutative
    /// UPDATE so concurrent creates in one directory do not conflict on its row.
    async fn update_dir(
        &mut self,
        dir: Ino,
        current: &Attr,
        nlink_delta: i64,
        time: Timespec,
    ) -> Result<Attr> {
        let attr = bump_dir(current, nlink_delta, time);
        self.put_attr(dir, &attr).await?;
        Ok(attr)
    }

    /// Starts an op: its writes can be undone alone with `rollback_to_savepoint`.
    async fn savepoint(&mut self) -> Result<()>;
    /// Keeps the writes made since the last savepoint.
    async fn release_savepoint(&mut self) -> Result<()>;
    /// Undoes the writes made since the last savepoint.
    async fn rollback_to_savepoint(&mut self) -> Result<()>;
}

/// `attr` with nlink changed by `delta` and mtime/ctime raised to `time` (never lowered).
pub fn bump_dir(attr: &Attr, delta: i64, time: Timespec) -> Attr {
    let mut a = *attr;
    a.nlink = (i64::from(a.nlink) + delta).clamp(0, i64::from(u32::MAX)) as u32;
    a.mtime = a.mtime.max(time);
    a.ctime = a.ctime.max(time);
    a
}

/// Applies `ops` in order inside one transaction, each under its own savepoint: a failing op is
/// rolled back alone and its error returned in its slot. An error of a batch-fatal kind
/// ([`ErrorKind::is_batch_fatal`]) aborts the whole batch and is returned as the outer error.
pub async fn apply_ops<V: TxnView + ?Sized>(
    v: &mut V,
    ops: &[Op],
    limits: &Limits,
) -> Result<Vec<Result<OpOutput>>> {
    let mut out = Vec::with_capacity(ops.len());
    for op in ops {
        v.savepoint().await?;
        match apply_op(v, op, limits).await {
            Ok(o) => {
                v.release_savepoint().await?;
                out.push(Ok(o));
            }
            Err(e) if e.kind().is_batch_fatal() => return Err(e),
            Err(e) => {
                v.rollback_to_savepoint().await?;
                out.push(Err(e));
            }
        }
    }
    Ok(out)
}

/// Applies one op (no savepoint handling; see [`apply_ops`]). On error the view may hold
/// partial writes of this op, which the caller must roll back.
pub async fn apply_op<V: TxnView + ?Sized>(
    v: &mut V,
    op: &Op,
    limits: &Limits,
) -> Result<OpOutput> {
    let r = match op {
        Op::Mknod {
            parent,
            name,
            ino,
            typ,
            mode,
            uid,
            gid,
            rdev,
            target,
            time,
            opened_by,
        } => {
            let new = NewInode {
                ino: *ino,
                typ: *typ,
                mode: *mode,
                uid: *uid,
                gid: *gid,
                rdev: *rdev,
                target,
                time: *time,
                opened_by: *opened_by,
            };
            mknod(v, *parent, name, new, limits).await
        }
        Op::Link {
            ino,
            parent,
            name,
            time,
        } => link(v, *ino, *parent, name, *time).await,
        Op::Unlink {
            parent,
            name,
            caller,
            time,
        } => unlink(v, *parent, name, *caller, *time).await,
        Op::Rmdir {
            parent,
            name,
            caller,
            time,
        } => rmdir(v, *parent, name, *caller, *time).await,
        Op::Rename {
            parent,
            name,
            new_parent,
            new_name,
            flags,
            caller,
            time,
        } => {
            rename(
                v,
                (*parent, name),
                (*new_parent, new_name),
                *flags,
                *caller,
                *time,
            )
            .await
        }
        Op::SetAttr {
            ino,
            mask,
            values,
            time,
        } => setattr(v, *ino, *mask, values, *time, limits).await,
        Op::Write {
            ino,
            indx,
            slice,
            time,
        } => write(v, *ino, *indx, *slice, *time, limits).await,
        Op::Truncate { ino, length, time } => {
            let mut attr = regular_file(v, *ino, "truncate").await?;
            truncate_to(v, *ino, &mut attr, *length, *time, limits).await?;
            v.put_attr(*ino, &attr).await?;
            Ok(OpOutput::Attr { ino: *ino, attr })
        }
        Op::SetXattr {
            ino,
            name,
            value,
            flags,
        } => setxattr(v, *ino, name, value, *flags).await,
        Op::RemoveXattr { ino, name } => {
            validate_xattr(name, None)?;
            existing_attr(v, *ino).await?;
            if v.get_xattr(*ino, name).await?.is_none() {
                return Err(err::no_data(format!(
                    "removexattr {ino} {}",
                    show_name(name)
                )));
            }
            v.delete_xattr(*ino, name).await?;
            Ok(OpOutput::Done)
        }
        Op::ClearPendingFile { ino } => {
            let key = Pending::File {
                ino: *ino,
                length: 0,
            };
            if !v.has_pending(key).await? {
                return Err(err::not_found(format!(
                    "inode {ino} is not pending deletion"
                )));
            }
            if v.get_attr(*ino).await?.is_none() {
                v.delete_chunks(*ino).await?;
            }
            v.delete_pending(key).await?;
            Ok(OpOutput::Done)
        }
        Op::ClearPendingSlice { id } => {
            let key = Pending::Slice { id: *id, size: 0 };
            if !v.has_pending(key).await? {
                return Err(err::not_found(format!(
                    "slice {id} is not pending deletion"
                )));
            }
            v.delete_pending(key).await?;
            Ok(OpOutput::Done)
        }
        Op::Restore(rec) => restore(v, rec).await,
        Op::RestorePending { pending, chunks } => {
            if let Pending::File { ino, .. } = pending {
                if v.get_attr(*ino).await?.is_some() {
                    return Err(err::exists(format!(
                        "inode {ino} is live; it cannot be pending deletion"
                    )));
                }
                for (indx, slices) in chunks {
                    v.put_chunk(*ino, *indx, slices).await?;
                }
            } else if !chunks.is_empty() {
                return Err(err::invalid("a pending slice carries no chunks"));
            }
            v.put_pending(*pending).await?;
            Ok(OpOutput::Done)
        }
        Op::OpenSession { info, expire } => session::open_session(v, info, *expire).await,
        Op::Heartbeat { sid, expire } => session::heartbeat(v, *sid, *expire).await,
        Op::CloseSession {
            sid,
            expired_before,
        } => session::close_session(v, *sid, *expired_before).await,
        Op::ClaimCleanup { now_ms, every_ms } => {
            session::claim_cleanup(v, *now_ms, *every_ms).await
        }
        Op::Open { sid, ino } => session::open(v, *sid, *ino).await,
        Op::Release { sid, inos } => session::release(v, *sid, inos).await,
        Op::Flock { ino, owner, typ } => session::flock(v, *ino, *owner, *typ).await,
        Op::Setlk {
            ino,
            owner,
            typ,
            start,
            end,
            pid,
        } => session::setlk(v, *ino, *owner, *typ, (*start, *end), *pid).await,
    };
    r.map_err(|e| {
        if e.kind().is_batch_fatal() {
            e
        } else {
            e.context_prefix(op.name())
        }
    })
}

async fn existing_attr<V: TxnView + ?Sized>(v: &mut V, ino: Ino) -> Result<Attr> {
    if ino == Ino::ZERO {
        return Err(err::invalid("inode 0 is never valid"));
    }
    v.get_attr(ino)
        .await?
        .ok_or_else(|| err::not_found(format!("inode {ino}")))
}

async fn dir_attr<V: TxnView + ?Sized>(v: &mut V, ino: Ino) -> Result<Attr> {
    let a = existing_attr(v, ino).await?;
    if a.typ != FileType::Directory {
        return Err(err::not_dir(format!("inode {ino}")));
    }
    Ok(a)
}

/// [`dir_attr`] of a directory that is to receive a new entry: ENOENT when it was removed
/// while open (nlink 0), as Linux answers a create in a deleted working directory.
async fn live_dir_attr<V: TxnView + ?Sized>(v: &mut V, ino: Ino) -> Result<Attr> {
    let a = dir_attr(v, ino).await?;
    if a.nlink == 0 {
        return Err(err::not_found(format!("directory {ino} was removed")));
    }
    Ok(a)
}

async fn regular_file<V: TxnView + ?Sized>(v: &mut V, ino: Ino, what: &str) -> Result<Attr> {
    let a = existing_attr(v, ino).await?;
    match a.typ {
        FileType::Regular => Ok(a),
        FileType::Directory => Err(err::is_dir(format!("{what} of directory {ino}"))),
        other => Err(err::invalid(format!("{what} of {} {ino}", other.name()))),
    }
}

/// Fails with NoSpace when adding `space` bytes and `inodes` inodes would pass the limits.
/// Reads the counters only when a limit is set and the delta is positive.
async fn check_quota<V: TxnView + ?Sized>(
    v: &mut V,
    limits: &Limits,
    space: i64,
    inodes: i64,
) -> Result<()> {
    if limits.capacity > 0 && space > 0 {
        let used = v.get_counter(Counter::UsedSpace).await?;
        if used.saturating_add(space) > limits.capacity as i64 {
            return Err(err::no_space(format!(
                "capacity {} bytes reached ({used} used)",
                limits.capacity
            )));
        }
    }
    if limits.inodes > 0 && inodes > 0 {
        let used = v.get_counter(Counter::TotalInodes).await?;
        if used.saturating_add(inodes) > limits.inodes as i64 {
            return Err(err::no_space(format!(
                "inode limit {} reached",
                limits.inodes
            )));
        }
    }
    Ok(())
}

/// The sticky-bit rule (unlink(2), rename(2): EPERM): in a directory with mode 0o1000 only
/// root, the directory's owner or the entry's owner may remove or rename an entry.
fn check_sticky(dir: &Attr, target: &Attr, caller: Caller, what: &str) -> Result<()> {
    if dir.mode & 0o1000 != 0
        && caller.uid != 0
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

struct NewInode<'a> {
    ino: Ino,
    typ: FileType,
    mode: u16,
    uid: u32,
    gid: u32,
    rdev: u32,
    target: &'a [u8],
    time: Timespec,
    opened_by: Option<Sid>,
}

async fn mknod<V: TxnView + ?Sized>(
    v: &mut V,
    parent: Ino,
    name: &[u8],
    n: NewInode<'_>,
    limits: &Limits,
) -> Result<OpOutput> {
    validate_name(name)?;
    if n.typ == FileType::Symlink {
        validate_symlink_target(n.target)?;
    } else if !n.target.is_empty() {
        return Err(err::invalid("a target is only allowed for symlinks"));
    }
    if n.ino == Ino::ZERO || n.ino == Ino::ROOT {
        return Err(err::invalid(format!("inode {} cannot be created", n.ino)));
    }
    let pattr = live_dir_attr(v, parent).await?;
    if v.get_entry(parent, name).await?.is_some() {
        return Err(err::exists(format!("{parent}/{}", show_name(name))));
    }
    if v.get_attr(n.ino).await?.is_some() {
        return Err(err::exists(format!("inode {} is already in use", n.ino)));
    }
    let is_dir = n.typ == FileType::Directory;
    let mut mode = n.mode & 0o7777;
    let mut gid = n.gid;
    // A setgid directory passes its group on, and to subdirectories also the setgid bit.
    if pattr.mode & 0o2000 != 0 {
        gid = pattr.gid;
        if is_dir {
            mode |= 0o2000;
        }
    }
    let attr = Attr {
        typ: n.typ,
        mode,
        uid: n.uid,
        gid,
        rdev: n.rdev,
        atime: n.time,
        mtime: n.time,
        ctime: n.time,
        nlink: if is_dir { 2 } else { 1 },
        length: match n.typ {
            FileType::Directory => 4096,
            FileType::Symlink => n.target.len() as u64,
            _ => 0,
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
    v.add_counter(Counter::UsedSpace, space).await?;
    v.add_counter(Counter::TotalInodes, 1).await?;
    let parent_attr = v
        .update_dir(parent, &pattr, if is_dir { 1 } else { 0 }, n.time)
        .await?;
    Ok(OpOutput::Entry {
        ino: n.ino,
        attr,
        parent: parent_attr,
    })
}

async fn link<V: TxnView + ?Sized>(
    v: &mut V,
    ino: Ino,
    parent: Ino,
    name: &[u8],
    time: Timespec,
) -> Result<OpOutput> {
    validate_name(name)?;
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
    if v.get_entry(parent, name).await?.is_some() {
        return Err(err::exists(format!("{parent}/{}", show_name(name))));
    }
    if attr.nlink == u32::MAX {
        return Err(err::not_permitted(format!(
            "inode {ino} has too many links"
        )));
    }
    attr.nlink += 1;
    attr.ctime = time;
    if attr.parent != parent {
        attr.parent = Ino::ZERO;
    }
    v.put_attr(ino, &attr).await?;
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
async fn drop_link<V: TxnView + ?Sized>(
    v: &mut V,
    ino: Ino,
    mut attr: Attr,
    time: Timespec,
) -> Result<Option<Attr>> {
    if attr.nlink > 1 {
        attr.nlink -= 1;
        attr.ctime = time;
        v.put_attr(ino, &attr).await?;
        return Ok(Some(attr));
    }
    remove_inode(v, ino, attr, time).await
}

/// The last link of `ino` is gone. When some session holds it open it is kept ("sustained"):
/// nlink 0, ctime `time`, in no directory, counted by statfs; the last [`Op::Release`] (or the
/// cleanup of the last session holding it) deletes it. Otherwise it is deleted now. Returns
/// the sustained inode's attributes, or `None` when deleted.
async fn remove_inode<V: TxnView + ?Sized>(
    v: &mut V,
    ino: Ino,
    mut attr: Attr,
    time: Timespec,
) -> Result<Option<Attr>> {
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

async fn unlink<V: TxnView + ?Sized>(
    v: &mut V,
    parent: Ino,
    name: &[u8],
    caller: Caller,
    time: Timespec,
) -> Result<OpOutput> {
    validate_name(name)?;
    let pattr = dir_attr(v, parent).await?;
    let entry = v
        .get_entry(parent, name)
        .await?
        .ok_or_else(|| err::not_found(format!("{parent}/{}", show_name(name))))?;
    if entry.typ == FileType::Directory {
        return Err(err::is_dir(format!("{parent}/{}", show_name(name))));
    }
    let attr = v.get_attr(entry.ino).await?;
    if let Some(a) = &attr {
        check_sticky(&pattr, a, caller, "unlink")?;
    }
    v.delete_entry(parent, name).await?;
    // A dangling entry (inode missing) is removed without further bookkeeping.
    let remaining = match attr {
        Some(a) => drop_link(v, entry.ino, a, time).await?,
        None => None,
    };
    let parent_attr = v.update_dir(parent, &pattr, 0, time).await?;
    Ok(OpOutput::Removed {
        ino: entry.ino,
        attr: remaining,
        parent: parent_attr,
    })
}

async fn rmdir<V: TxnView + ?Sized>(
    v: &mut V,
    parent: Ino,
    name: &[u8],
    caller: Caller,
    time: Timespec,
) -> Result<OpOutput> {
    validate_name(name)?;
    let pattr = dir_attr(v, parent).await?;
    let entry = v
        .get_entry(parent, name)
        .await?
        .ok_or_else(|| err::not_found(format!("{parent}/{}", show_name(name))))?;
    if entry.typ != FileType::Directory {
        return Err(err::not_dir(format!("{parent}/{}", show_name(name))));
    }
    let attr = existing_attr(v, entry.ino).await?;
    check_sticky(&pattr, &attr, caller, "rmdir")?;
    if v.has_entries(entry.ino).await? {
        return Err(err::not_empty(format!("{parent}/{}", show_name(name))));
    }
    v.delete_entry(parent, name).await?;
    let sustained = remove_inode(v, entry.ino, attr, time).await?;
    let parent_attr = v.update_dir(parent, &pattr, -1, time).await?;
    Ok(OpOutput::Removed {
        ino: entry.ino,
        attr: sustained,
        parent: parent_attr,
    })
}

/// Deepest directory nesting followed when checking for rename cycles before the tree is
/// declared corrupted.
const MAX_DEPTH: usize = 100_000;

/// EINVAL when `dir` is `moving` or lies below it (rename(2): "an attempt was made to make a
/// directory a subdirectory of itself").
async fn check_not_below<V: TxnView + ?Sized>(v: &mut V, dir: Ino, moving: Ino) -> Result<()> {
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

async fn rename<V: TxnView + ?Sized>(
    v: &mut V,
    (parent, name): (Ino, &[u8]),
    (new_parent, new_name): (Ino, &[u8]),
    flags: RenameFlags,
    caller: Caller,
    time: Timespec,
) -> Result<OpOutput> {
    validate_name(name)?;
    validate_name(new_name)?;
    let noreplace = flags.contains(RenameFlags::NOREPLACE);
    let exchange = flags.contains(RenameFlags::EXCHANGE);
    if flags.0 & !3 != 0 || (noreplace && exchange) {
        return Err(err::invalid(format!("rename flags {:#x}", flags.0)));
    }
    let spattr = dir_attr(v, parent).await?;
    let dpattr = if new_parent == parent {
        spattr
    } else {
        live_dir_attr(v, new_parent).await?
    };
    let src_path = format!("{parent}/{}", show_name(name));
    let dst_path = format!("{new_parent}/{}", show_name(new_name));
    let sentry = v
        .get_entry(parent, name)
        .await?
        .ok_or_else(|| err::not_found(src_path.clone()))?;
    let mut sattr = existing_attr(v, sentry.ino).await?;
    check_sticky(&spattr, &sattr, caller, "rename")?;
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
    // nlink deltas of the source and destination directories.
    let mut dsrc: i64 = 0;
    let mut ddst: i64 = 0;
    let mut replaced = None;
    if let Some(d) = dentry {
        let mut dattr = existing_attr(v, d.ino).await?;
        check_sticky(&dpattr, &dattr, caller, "rename")?;
        let d_is_dir = d.typ == FileType::Directory;
        if exchange {
            if d_is_dir && new_parent != parent {
                check_not_below(v, parent, d.ino).await?;
            }
            v.put_entry(parent, name, d).await?;
            v.put_entry(new_parent, new_name, sentry).await?;
            if parent != new_parent {
                sattr.parent = moved_parent(&sattr, parent, new_parent);
                dattr.parent = moved_parent(&dattr, new_parent, parent);
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
            let left = remove_inode(v, d.ino, dattr, time).await?;
            ddst -= 1;
            replaced = Some((d.ino, left));
        } else {
            let left = drop_link(v, d.ino, dattr, time).await?;
            replaced = Some((d.ino, left));
        }
    }
    v.delete_entry(parent, name).await?;
    v.put_entry(new_parent, new_name, sentry).await?;
    if parent != new_parent {
        sattr.parent = moved_parent(&sattr, parent, new_parent);
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

/// Updates the source and destination directories of a rename (once when they are the same).
async fn update_both<V: TxnView + ?Sized>(
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

async fn setattr<V: TxnView + ?Sized>(
    v: &mut V,
    ino: Ino,
    mask: SetAttrMask,
    values: &SetAttrValues,
    time: Timespec,
    limits: &Limits,
) -> Result<OpOutput> {
    if mask.0 & !0xff != 0 {
        return Err(err::invalid(format!("setattr mask {:#x}", mask.0)));
    }
    let mut attr = existing_attr(v, ino).await?;
    if mask.contains(SetAttrMask::SIZE) {
        match attr.typ {
            FileType::Regular => {}
            FileType::Directory => return Err(err::is_dir(format!("truncate of directory {ino}"))),
            other => return Err(err::invalid(format!("truncate of {} {ino}", other.name()))),
        }
        truncate_to(v, ino, &mut attr, values.size, time, limits).await?;
    }
    if mask.contains(SetAttrMask::MODE) {
        attr.mode = values.mode & 0o7777;
    }
    if mask.contains(SetAttrMask::UID) {
        attr.uid = values.uid;
    }
    if mask.contains(SetAttrMask::GID) {
        attr.gid = values.gid;
    }
    if mask.contains(SetAttrMask::ATIME) {
        attr.atime = values.atime;
    }
    if mask.contains(SetAttrMask::ATIME_NOW) {
        attr.atime = time;
    }
    if mask.contains(SetAttrMask::MTIME) {
        attr.mtime = values.mtime;
    }
    if mask.contains(SetAttrMask::MTIME_NOW) {
        attr.mtime = time;
    }
    attr.ctime = time;
    v.put_attr(ino, &attr).await?;
    Ok(OpOutput::Attr { ino, attr })
}

/// Sets a regular file's length to `length` (truncate(2)): chunks past the end are removed,
/// the chunk holding the new end has its slices trimmed; whole slices dropped become pending
/// deletion. mtime/ctime become `time`; `used_space` follows the 4 KiB-aligned length.
async fn truncate_to<V: TxnView + ?Sized>(
    v: &mut V,
    ino: Ino,
    attr: &mut Attr,
    length: u64,
    time: Timespec,
    limits: &Limits,
) -> Result<()> {
    if length > MAX_FILE_LEN {
        return Err(err::invalid(format!(
            "length {length} exceeds the maximum file length {MAX_FILE_LEN}"
        )));
    }
    let delta = align_space(length) as i64 - align_space(attr.length) as i64;
    check_quota(v, limits, delta, 0).await?;
    if length < attr.length {
        let cut_indx = length >> CHUNK_BITS;
        let cut = (length & (CHUNK_SIZE - 1)) as u32;
        for indx in v.chunk_indexes(ino).await? {
            let indx64 = u64::from(indx);
            if indx64 < cut_indx {
                continue;
            }
            let slices = v.get_chunk(ino, indx).await?;
            let keep_before = if indx64 == cut_indx { cut } else { 0 };
            let mut kept = Vec::with_capacity(slices.len());
            for mut s in slices {
                if u64::from(s.pos) >= u64::from(keep_before) {
                    if s.id != 0 {
                        v.put_pending(Pending::Slice {
                            id: s.id,
                            size: s.size,
                        })
                        .await?;
                    }
                } else {
                    if s.end() > u64::from(keep_before) {
                        s.len = keep_before - s.pos;
                    }
                    kept.push(s);
                }
            }
            v.put_chunk(ino, indx, &kept).await?;
        }
    }
    attr.length = length;
    attr.mtime = time;
    attr.ctime = time;
    if delta != 0 {
        v.add_counter(Counter::UsedSpace, delta).await?;
    }
    Ok(())
}

async fn write<V: TxnView + ?Sized>(
    v: &mut V,
    ino: Ino,
    indx: u32,
    slice: Slice,
    time: Timespec,
    limits: &Limits,
) -> Result<OpOutput> {
    let mut attr = regular_file(v, ino, "write").await?;
    if slice.end() > CHUNK_SIZE {
        return Err(err::invalid(format!(
            "slice [{}, {}) passes the end of the 64 MiB chunk",
            slice.pos,
            slice.end()
        )));
    }
    if slice.id != 0 && u64::from(slice.off) + u64::from(slice.len) > u64::from(slice.size) {
        return Err(err::invalid(format!(
            "slice {} uses [{}, {}) of an object of {} bytes",
            slice.id,
            slice.off,
            u64::from(slice.off) + u64::from(slice.len),
            slice.size
        )));
    }
    let end = (u64::from(indx) << CHUNK_BITS) + slice.end();
    if end > MAX_FILE_LEN {
        return Err(err::invalid(format!(
            "write ends at {end}, past the maximum file length {MAX_FILE_LEN}"
        )));
    }
    let new_len = attr.length.max(end);
    let delta = align_space(new_len) as i64 - align_space(attr.length) as i64;
    check_quota(v, limits, delta, 0).await?;
    v.append_slice(ino, indx, slice).await?;
    attr.length = new_len;
    attr.mtime = time;
    attr.ctime = time;
    v.put_attr(ino, &attr).await?;
    if delta != 0 {
        v.add_counter(Counter::UsedSpace, delta).await?;
    }
    Ok(OpOutput::Attr { ino, attr })
}

async fn setxattr<V: TxnView + ?Sized>(
    v: &mut V,
    ino: Ino,
    name: &[u8],
    value: &[u8],
    flags: XattrFlags,
) -> Result<OpOutput> {
    validate_xattr(name, Some(value))?;
    if flags.0 & !3 != 0 || flags.0 == 3 {
        return Err(err::invalid(format!("setxattr flags {:#x}", flags.0)));
    }
    existing_attr(v, ino).await?;
    let exists = v.get_xattr(ino, name).await?.is_some();
    if flags == XattrFlags::CREATE && exists {
        return Err(err::exists(format!("xattr {} of {ino}", show_name(name))));
    }
    if flags == XattrFlags::REPLACE && !exists {
        return Err(err::no_data(format!("xattr {} of {ino}", show_name(name))));
    }
    v.put_xattr(ino, name, value).await?;
    Ok(OpOutput::Done)
}

async fn restore<V: TxnView + ?Sized>(v: &mut V, rec: &RestoreRecord) -> Result<OpOutput> {
    let ino = rec.ino;
    if ino == Ino::ZERO {
        return Err(err::invalid("inode 0 is never valid"));
    }
    if rec.attr.typ == FileType::Symlink {
        validate_symlink_target(&rec.target)?;
    }
    let old = v.get_attr(ino).await?;
    for (parent, name) in &rec.links {
        validate_name(name)?;
        dir_attr(v, *parent).await?;
        if v.get_entry(*parent, name).await?.is_some() {
            return Err(err::exists(format!("{parent}/{}", show_name(name))));
        }
        v.put_entry(
            *parent,
            name,
            Entry {
                ino,
                typ: rec.attr.typ,
            },
        )
        .await?;
    }
    v.put_attr(ino, &rec.attr).await?;
    if rec.attr.typ == FileType::Symlink {
        v.put_symlink(ino, &rec.target).await?;
    }
    for (name, value) in &rec.xattrs {
        validate_xattr(name, Some(value))?;
        v.put_xattr(ino, name, value).await?;
    }
    for (indx, slices) in &rec.chunks {
        v.put_chunk(ino, *indx, slices).await?;
    }
    let old_space = old.map(|a| a.space() as i64).unwrap_or(0);
    v.add_counter(Counter::UsedSpace, rec.attr.space() as i64 - old_space)
        .await?;
    if old.is_none() {
        v.add_counter(Counter::TotalInodes, 1).await?;
    }
    Ok(OpOutput::Attr {
        ino,
        attr: rec.attr,
    })
}

// ---------------------------------------------------------------------------------------------
// Reads, shared by the backends that implement the view.

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
