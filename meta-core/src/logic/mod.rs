//! The POSIX rules, written once, as generic async functions over a small transaction view
//! ([`TxnView`]). Every backend that runs Rust-side logic (in-memory, RocksDB, SQL, TiKV)
//! implements the view; Redis implements the same rules in Lua.
//!
//! Sources of the rules: link(2), unlink(2), rmdir(2), rename(2) (incl. `renameat2` flags),
//! setxattr(2), truncate(2), and Linux's handling of directory nlink and parent times.
//! Sessions, open files and locks: `logic::session` (flock(2), fcntl(2)).
//!
//! Files: `checks` (what every op checks first, shared with the Redis backend), `namespace`
//! (mknod, link, unlink, rmdir, rename), `data` (setattr, truncate, write, compaction, xattrs,
//! restore),
//! `session` (sessions, open files, locks), `quota` (directory quotas), `read` (the reads).

mod checks;
mod data;
mod namespace;
mod quota;
mod read;
mod session;

pub use checks::{
    bump_dir, check_length, check_record, check_slices, check_write, dropped_slices, precheck,
};
pub(crate) use namespace::delete_inode;
pub use quota::QuotaChains;
pub use read::{
    corrupted, get_attr, get_xattr, list_xattr, lookup, read_dir, read_link, root_attr, statfs_from,
};
pub use session::{list_locks, session_holdings};

use async_trait::async_trait;

use crate::error::{Result, err};
use crate::op::{Op, OpOutput, SetAttrMask, SetAttrValues};
use crate::quota::Quota;
use crate::session::{LockKind, LockOwner, LockType, PlockRange, Session, Sid};
use crate::stats::DirStat;
use crate::types::{Attr, Counter, Entry, Ino, Pending, Setting, Slice, Timespec, show_name};

/// Volume limits the op logic enforces (from the format record). 0 means unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Limits {
    /// Capacity in bytes.
    pub capacity: u64,
    /// Maximum number of inodes.
    pub inodes: u64,
    /// Keep directory statistics ([`Setting::dir_stats`]).
    pub dir_stats: bool,
}

impl From<&Setting> for Limits {
    fn from(s: &Setting) -> Limits {
        Limits {
            capacity: s.capacity,
            inodes: s.inodes,
            dir_stats: s.dir_stats,
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
    /// Removes the attributes, symlink target and xattrs of `ino`, and a directory's statistics
    /// record (chunks stay).
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
    /// Whether session `sid` exists and takes new records: not fenced, i.e. its close in
    /// parts has not begun (`Session::FENCED`). The same locking duty as
    /// [`TxnView::get_session`]; stores override it to skip decoding the session's
    /// description.
    async fn has_session(&mut self, sid: Sid) -> Result<bool> {
        Ok(self.get_session(sid).await?.is_some_and(|s| !s.is_fenced()))
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
    /// The first `n` of [`TxnView::session_opens`]. A store that checks a transaction's
    /// reads at commit one by one (etcd) overrides it to read, and check, no more than
    /// those (a close in parts, `Op::CloseSession`'s `at_most`); the default reads all.
    async fn session_opens_at_most(&mut self, sid: Sid, n: usize) -> Result<Vec<Ino>> {
        let mut all = self.session_opens(sid).await?;
        all.truncate(n);
        Ok(all)
    }
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
    /// The first `n` of [`TxnView::session_locks`] (see [`TxnView::session_opens_at_most`]).
    async fn session_locks_at_most(
        &mut self,
        sid: Sid,
        n: usize,
    ) -> Result<Vec<(Ino, LockKind, u64)>> {
        let mut all = self.session_locks(sid).await?;
        all.truncate(n);
        Ok(all)
    }

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

    /// Adds `delta` to directory `dir`'s statistics ([`crate::stats`]); a directory without a
    /// record counts as all zeros. Commutative: SQL keeps it as a delta applied at commit.
    /// [`TxnView::delete_inode`] of a directory removes its record.
    async fn add_dir_stat(&mut self, dir: Ino, delta: DirStat) -> Result<()>;
    /// Directory `dir`'s statistics as this transaction sees them (zeros without a record).
    async fn get_dir_stat(&mut self, dir: Ino) -> Result<DirStat>;

    /// Whether the volume has at least one directory quota ([`crate::quota`]). Called by
    /// every op that changes directory statistics, so a backend reads it at most once per
    /// transaction where a read costs (and must then make a concurrent [`Op::SetQuota`]
    /// conflict with the transaction, or wait for it).
    async fn has_quotas(&mut self) -> Result<bool>;
    /// Directory `dir`'s quota, if it has one.
    async fn get_quota(&mut self, dir: Ino) -> Result<Option<Quota>>;
    /// Stores (`Some`) or removes (`None`) directory `dir`'s quota.
    async fn put_quota(&mut self, dir: Ino, quota: Option<&Quota>) -> Result<()>;
    /// This transaction's memo of quota chains, if the view keeps one (a new, empty
    /// [`QuotaChains`] per transaction; the logic fills and invalidates it). The default
    /// keeps none: every charge walks from the changed directory to the root.
    fn quota_chains(&mut self) -> Option<&mut QuotaChains> {
        None
    }

    /// Starts an op: its writes can be undone alone with `rollback_to_savepoint`.
    async fn savepoint(&mut self) -> Result<()>;
    /// Keeps the writes made since the last savepoint.
    async fn release_savepoint(&mut self) -> Result<()>;
    /// Undoes the writes made since the last savepoint.
    async fn rollback_to_savepoint(&mut self) -> Result<()>;
}

/// Applies `ops` in order inside one transaction, each under its own savepoint: a failing op is
/// rolled back alone and its error returned in its slot. An error of a batch-fatal kind
/// ([`crate::ErrorKind::is_batch_fatal`]) aborts the whole batch and is returned as the outer error.
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
                // The op may have moved a directory or created a quota and then walked.
                quota::forget_chains(v);
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
    let r = match checks::precheck(op) {
        Ok(()) => dispatch(v, op, limits).await,
        Err(e) => Err(e),
    };
    r.map_err(|e| {
        if e.kind().is_batch_fatal() {
            e
        } else {
            e.context_prefix(op.name())
        }
    })
}

/// Runs `op`, whose [`precheck`] passed.
async fn dispatch<V: TxnView + ?Sized>(v: &mut V, op: &Op, limits: &Limits) -> Result<OpOutput> {
    match op {
        Op::Mknod {
            parent,
            name,
            ino,
            typ,
            mode,
            uid,
            gid,
            caller,
            rdev,
            target,
            time,
            opened_by,
            imported,
        } => {
            let new = namespace::NewInode {
                ino: *ino,
                typ: *typ,
                mode: *mode,
                uid: *uid,
                gid: *gid,
                rdev: *rdev,
                target,
                time: *time,
                opened_by: *opened_by,
                imported: imported.as_deref(),
            };
            namespace::mknod(v, *parent, name, new, caller, limits).await
        }
        Op::Link {
            ino,
            parent,
            name,
            caller,
            time,
        } => namespace::link(v, *ino, *parent, name, caller, *time, limits).await,
        Op::Unlink {
            parent,
            name,
            caller,
            time,
        } => namespace::unlink(v, *parent, name, caller, *time, limits).await,
        Op::Rmdir {
            parent,
            name,
            caller,
            time,
        } => namespace::rmdir(v, *parent, name, caller, *time, limits).await,
        Op::Rename {
            parent,
            name,
            new_parent,
            new_name,
            flags,
            caller,
            time,
        } => {
            namespace::rename(
                v,
                (*parent, name),
                (*new_parent, new_name),
                *flags,
                caller,
                *time,
                limits,
            )
            .await
        }
        Op::SetAttr {
            ino,
            mask,
            values,
            caller,
            time,
        } => data::setattr(v, *ino, *mask, values, caller, *time, limits).await,
        Op::Write {
            ino,
            indx,
            slice,
            caller,
            time,
        } => data::write(v, *ino, *indx, *slice, caller, *time, limits).await,
        Op::Truncate {
            ino,
            length,
            caller,
            time,
        } => {
            let mut attr = checks::regular_file(v, *ino, "truncate").await?;
            // The rules of a setattr that only sets the size (truncate(2)).
            let size = SetAttrValues {
                size: *length,
                ..SetAttrValues::default()
            };
            attr.mode = crate::perm::check_setattr(&attr, *ino, caller, SetAttrMask::SIZE, &size)?;
            data::truncate_to(v, *ino, &mut attr, *length, *time, limits).await?;
            v.put_attr(*ino, &attr).await?;
            Ok(OpOutput::Attr { ino: *ino, attr })
        }
        Op::CompactChunk {
            ino,
            indx,
            expect,
            slices,
        } => data::compact_chunk(v, *ino, *indx, expect, slices).await,
        Op::SetXattr {
            ino,
            name,
            value,
            flags,
            caller,
        } => data::setxattr(v, *ino, name, value, *flags, caller).await,
        Op::RemoveXattr { ino, name, caller } => {
            let attr = checks::existing_attr(v, *ino).await?;
            crate::perm::check_xattr_write(&attr, *ino, caller, name)?;
            if v.get_xattr(*ino, name).await?.is_none() {
                return Err(err::no_data(format!(
                    "removexattr {ino} {}",
                    show_name(name)
                )));
            }
            v.delete_xattr(*ino, name).await?;
            Ok(OpOutput::Done)
        }
        Op::SetQuota {
            dir,
            max_space,
            max_inodes,
            subtree,
        } => quota::set_quota(v, *dir, *max_space, *max_inodes, subtree, limits).await,
        Op::RemoveQuota { dir } => quota::remove_quota(v, *dir).await,
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
        Op::Restore(rec) => data::restore(v, rec, limits).await,
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
            }
            v.put_pending(*pending).await?;
            Ok(OpOutput::Done)
        }
        Op::OpenSession { info, expire } => session::open_session(v, info, *expire).await,
        Op::Heartbeat { sid, expire } => session::heartbeat(v, *sid, *expire).await,
        Op::CloseSession {
            sid,
            expired_before,
            at_most,
        } => session::close_session(v, *sid, *expired_before, *at_most).await,
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
    }
}
