//! Mutating operations ([`Op`]) and their results ([`OpOutput`]).
//!
//! An `Op` carries everything a backend needs to apply it atomically: new inode numbers are
//! allocated (from the ID pool) and times are taken *before* the op is queued, so applying the
//! same op on two backends gives the same result.

use crate::session::{LockOwner, LockType, SessionInfo, Sid};
use crate::types::{Attr, FileType, Ino, Slice, Timespec};

/// The caller of an operation: the user and groups whose permissions are checked (POSIX
/// discretionary access control as Linux applies it, see [`crate::perm`]).
///
/// `uid` 0 is the superuser and passes where Linux's root passes (`CAP_DAC_OVERRIDE`,
/// `CAP_FOWNER`, `CAP_CHOWN`, `CAP_FSETID`). `groups` are the supplementary group IDs
/// (getgroups(2)); `gid` need not be repeated in them. New inodes are owned by the `uid` and
/// `gid` of the op that creates them, not by the caller.
#[derive(Debug, Clone, PartialEq, Eq, Default, Hash)]
pub struct Caller {
    /// Effective (file-system) user ID.
    pub uid: u32,
    /// Effective (file-system) group ID.
    pub gid: u32,
    /// Supplementary group IDs, in any order.
    pub groups: Vec<u32>,
}

impl Caller {
    /// The superuser (uid 0, gid 0, no supplementary groups).
    pub const ROOT: Caller = Caller {
        uid: 0,
        gid: 0,
        groups: Vec::new(),
    };

    /// A caller without supplementary groups.
    pub const fn new(uid: u32, gid: u32) -> Caller {
        Caller {
            uid,
            gid,
            groups: Vec::new(),
        }
    }

    /// A caller with supplementary groups.
    pub fn with_groups(uid: u32, gid: u32, groups: impl Into<Vec<u32>>) -> Caller {
        Caller {
            uid,
            gid,
            groups: groups.into(),
        }
    }

    /// True for uid 0.
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// True when `gid` is the caller's group or one of its supplementary groups
    /// (in_group_p in Linux).
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }
}

/// Flags of rename(2) (`renameat2`): at most one of the two may be set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct RenameFlags(pub u32);

impl RenameFlags {
    /// No flag: replace the destination if the POSIX rules allow it.
    pub const NONE: RenameFlags = RenameFlags(0);
    /// `RENAME_NOREPLACE` (1): fail with EEXIST if the destination exists.
    pub const NOREPLACE: RenameFlags = RenameFlags(1);
    /// `RENAME_EXCHANGE` (2): atomically swap source and destination; both must exist.
    pub const EXCHANGE: RenameFlags = RenameFlags(2);

    /// True if every bit of `other` is set.
    pub fn contains(self, other: RenameFlags) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }
}

/// Flags of setxattr(2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct XattrFlags(pub u32);

impl XattrFlags {
    /// Create or replace.
    pub const NONE: XattrFlags = XattrFlags(0);
    /// `XATTR_CREATE` (1): fail with EEXIST if the attribute exists.
    pub const CREATE: XattrFlags = XattrFlags(1);
    /// `XATTR_REPLACE` (2): fail with ENODATA if the attribute does not exist.
    pub const REPLACE: XattrFlags = XattrFlags(2);
}

/// Which fields a [`Op::SetAttr`] changes (bits may be or-ed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct SetAttrMask(pub u32);

impl SetAttrMask {
    /// Set the permission bits (`chmod`).
    pub const MODE: SetAttrMask = SetAttrMask(1);
    /// Set the owner (`chown`).
    pub const UID: SetAttrMask = SetAttrMask(2);
    /// Set the group (`chown`).
    pub const GID: SetAttrMask = SetAttrMask(4);
    /// Set the access time to `atime`.
    pub const ATIME: SetAttrMask = SetAttrMask(8);
    /// Set the modification time to `mtime`.
    pub const MTIME: SetAttrMask = SetAttrMask(16);
    /// Set the access time to the op's time (`UTIME_NOW`).
    pub const ATIME_NOW: SetAttrMask = SetAttrMask(32);
    /// Set the modification time to the op's time (`UTIME_NOW`).
    pub const MTIME_NOW: SetAttrMask = SetAttrMask(64);
    /// Change the length (`truncate`): regular files only.
    pub const SIZE: SetAttrMask = SetAttrMask(128);

    /// True if every bit of `other` is set.
    pub fn contains(self, other: SetAttrMask) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }
}

impl std::ops::BitOr for SetAttrMask {
    type Output = SetAttrMask;
    fn bitor(self, rhs: SetAttrMask) -> SetAttrMask {
        SetAttrMask(self.0 | rhs.0)
    }
}

/// New values for [`Op::SetAttr`]; only the fields selected by the mask are used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SetAttrValues {
    /// Permission bits (12 bits).
    pub mode: u16,
    /// Owner user ID.
    pub uid: u32,
    /// Owner group ID.
    pub gid: u32,
    /// Access time.
    pub atime: Timespec,
    /// Modification time.
    pub mtime: Timespec,
    /// New length in bytes.
    pub size: u64,
}

/// One mutating operation. Each is atomic: it takes full effect or none.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// Create an inode of any type under `parent` (mknod(2), mkdir(2), creat(2), symlink(2)).
    /// Errors: ENOENT (no parent), ENOTDIR (parent not a dir), EEXIST (name taken), EINVAL /
    /// ENAMETOOLONG (bad name or target), ENOSPC (inode or space limit).
    Mknod {
        /// Directory to create in.
        parent: Ino,
        /// New entry name.
        name: Vec<u8>,
        /// The new inode number, allocated beforehand from the inode pool.
        ino: Ino,
        /// Type of the new inode.
        typ: FileType,
        /// Permission bits (umask already applied by the caller).
        mode: u16,
        /// Owner.
        uid: u32,
        /// Group. (A setgid parent directory's group wins, as on Linux.)
        gid: u32,
        /// Who creates it: needs search and write permission on `parent` (EACCES).
        caller: Caller,
        /// Device number for devices, else 0.
        rdev: u32,
        /// Symlink target (symlinks only; empty otherwise).
        target: Vec<u8>,
        /// Time stamp for the new inode and the parent's mtime/ctime.
        time: Timespec,
        /// Open the new inode for this session in the same op (FUSE `create`, open(2) with
        /// `O_CREAT`), as [`Op::Open`] would; `None` for a plain create. ENOENT when the
        /// session does not exist.
        opened_by: Option<Sid>,
        /// The recorded state of a file being recreated (`meta import`): times, length and
        /// first slice, so that one op makes the whole inode; `None` for a plain create. With
        /// it the mode, owner and group are stored exactly as given (no setgid inheritance)
        /// and the times come from it; `time` still sets the parent's mtime/ctime.
        imported: Option<Box<Imported>>,
    },
    /// Add a hard link `parent/name` to `ino` (link(2)). EPERM for a directory, EACCES
    /// without search and write permission on `parent` (no check on `ino` itself: Linux with
    /// `fs.protected_hardlinks = 0`).
    Link {
        /// Existing inode.
        ino: Ino,
        /// Directory of the new name.
        parent: Ino,
        /// New name.
        name: Vec<u8>,
        /// Who links.
        caller: Caller,
        /// ctime of the inode, mtime/ctime of the parent.
        time: Timespec,
    },
    /// Remove a non-directory entry (unlink(2)). EISDIR for a directory.
    Unlink {
        /// Directory holding the entry.
        parent: Ino,
        /// Entry name.
        name: Vec<u8>,
        /// Who removes it: search and write permission on `parent` (EACCES), the sticky-bit
        /// rule (EPERM).
        caller: Caller,
        /// Time stamp.
        time: Timespec,
    },
    /// Remove an empty directory (rmdir(2)). ENOTDIR, ENOTEMPTY.
    Rmdir {
        /// Directory holding the entry.
        parent: Ino,
        /// Entry name.
        name: Vec<u8>,
        /// Who removes it: search and write permission on `parent` (EACCES), the sticky-bit
        /// rule (EPERM).
        caller: Caller,
        /// Time stamp.
        time: Timespec,
    },
    /// Rename `parent/name` to `new_parent/new_name` (rename(2), renameat2(2) flags).
    Rename {
        /// Source directory.
        parent: Ino,
        /// Source name.
        name: Vec<u8>,
        /// Destination directory.
        new_parent: Ino,
        /// Destination name.
        new_name: Vec<u8>,
        /// `NOREPLACE` or `EXCHANGE`.
        flags: RenameFlags,
        /// Who renames: search and write permission on both directories (EACCES), the
        /// sticky-bit rule on both (EPERM), write permission on a directory that changes
        /// parent (its `..` changes; EACCES).
        caller: Caller,
        /// Time stamp.
        time: Timespec,
    },
    /// Change attributes (chmod, chown, utimens, truncate through setattr); the permission
    /// rules are [`crate::perm::check_setattr`]'s (EPERM, EACCES).
    SetAttr {
        /// Inode to change.
        ino: Ino,
        /// Which fields to change.
        mask: SetAttrMask,
        /// New values.
        values: SetAttrValues,
        /// Who changes them.
        caller: Caller,
        /// ctime (and the `*_NOW` times).
        time: Timespec,
    },
    /// Append a slice to chunk `indx` of a regular file; extends the length if it ends past it.
    Write {
        /// Regular file.
        ino: Ino,
        /// Chunk index (`offset >> 26`).
        indx: u32,
        /// The slice; `pos + len` must not exceed 64 MiB.
        slice: Slice,
        /// Who writes: no permission is checked (open(2) decided it), but a caller other
        /// than root clears the setuid bit (and setgid with group execute), as write(2).
        caller: Caller,
        /// New mtime/ctime.
        time: Timespec,
    },
    /// Set the length of a regular file; slices past the new end are dropped or trimmed and
    /// recorded as pending deletion.
    Truncate {
        /// Regular file.
        ino: Ino,
        /// New length in bytes.
        length: u64,
        /// Who truncates: needs write permission (EACCES); a caller other than root clears
        /// setuid/setgid as [`Op::Write`] (truncate(2)).
        caller: Caller,
        /// New mtime/ctime.
        time: Timespec,
    },
    /// Compaction: replace the slice list of chunk `indx` of a regular file with `slices` if
    /// and only if the list stored now is exactly `expect` (same slices, same order); every
    /// slice ID of `expect` (other than 0, a hole) that is not in `slices` becomes pending
    /// deletion (as [`Op::Truncate`] records them, with its object size) in the same op. The
    /// length, times and `used_space` do not change. Errors: `WouldBlock` (EAGAIN) when the
    /// list is not `expect` (a write or another compaction came in since it was read: nothing
    /// changes; [`crate::Meta::compact_chunk`] reports it as `Conflict`), ENOENT, EISDIR /
    /// EINVAL for a non-file (as [`Op::Write`]), EINVAL when a slice of `slices` breaks the
    /// rules of [`Op::Write`] at `indx`.
    CompactChunk {
        /// Regular file.
        ino: Ino,
        /// Chunk index.
        indx: u32,
        /// The list as the caller read it.
        expect: Vec<Slice>,
        /// The new list (e.g. one slice holding the merged data under a new slice ID).
        slices: Vec<Slice>,
    },
    /// Set the limits of directory `dir`'s quota ([`crate::quota`]), creating it when it has
    /// none. A new quota's usage is the sum of the statistics of `subtree`: every directory
    /// of `dir`'s subtree, `dir` first (what [`crate::Meta::set_quota`] lists), which the op
    /// verifies against the stored attributes ([`crate::quota::check_subtree`]); an existing
    /// quota keeps its usage and `subtree` is ignored. A limit below the usage is allowed
    /// (growth then fails). Administrative: no caller, no permission check. A directory's
    /// quota goes when its last link does (rmdir, rename over it). Errors: ENOENT (also for a
    /// directory removed while open), ENOTDIR, `WouldBlock` when the subtree changed since it was listed (list again),
    /// EINVAL for a malformed list, `Unsupported` on a volume without directory statistics.
    SetQuota {
        /// The directory.
        dir: Ino,
        /// Space limit in bytes (4 KiB-aligned space); 0 is none.
        max_space: u64,
        /// Inode limit; 0 is none.
        max_inodes: u64,
        /// The subtree's directories, `dir` first (ignored when the quota exists).
        subtree: Vec<Ino>,
    },
    /// Remove directory `dir`'s quota. Errors: ENOENT when it has none.
    RemoveQuota {
        /// The directory.
        dir: Ino,
    },
    /// Set an extended attribute (setxattr(2)).
    SetXattr {
        /// Inode.
        ino: Ino,
        /// Attribute name, 1..=255 bytes.
        name: Vec<u8>,
        /// Value, at most 64 KiB.
        value: Vec<u8>,
        /// `CREATE` / `REPLACE`.
        flags: XattrFlags,
        /// Who sets it ([`crate::perm::check_xattr_write`]: EPERM, EACCES).
        caller: Caller,
    },
    /// Remove an extended attribute (removexattr(2)); ENODATA if absent.
    RemoveXattr {
        /// Inode.
        ino: Ino,
        /// Attribute name.
        name: Vec<u8>,
        /// Who removes it (as [`Op::SetXattr`]).
        caller: Caller,
    },
    /// Forget a deleted file's chunks once the data layer has deleted its objects.
    ClearPendingFile {
        /// The deleted inode listed by `Backend::list_pending`.
        ino: Ino,
    },
    /// Forget a dropped slice once the data layer has deleted its object.
    ClearPendingSlice {
        /// The slice ID listed by `Backend::list_pending`.
        id: u64,
    },
    /// Write one inode's records verbatim (used by `load` to restore a dump): its attributes,
    /// the entries that name it, its symlink target, xattrs and chunks. No POSIX checks beyond
    /// "each link's parent exists and the name is free"; `used_space` and `total_inodes` are
    /// adjusted. Overwrites the attributes of an existing inode (the root).
    Restore(Box<RestoreRecord>),
    /// Register a session (see [`crate::session`]): store its description and expiry.
    /// EEXIST when the ID is taken; EINVAL for session 0 or an expiry at the epoch (the
    /// fence, [`crate::session::Session::FENCED`]).
    OpenSession {
        /// The description; `info.sid` is the new session's ID (from `nextSession`).
        info: Box<SessionInfo>,
        /// When it expires unless refreshed.
        expire: Timespec,
    },
    /// Move a session's expiry on (the heartbeat). ENOENT when the session is gone (another
    /// client cleaned it up after it expired) or fenced (its close in parts has begun: see
    /// `CloseSession`'s `at_most`); EINVAL when `expire` is the fence itself
    /// ([`crate::session::Session::FENCED`], the epoch), which only a close sets.
    Heartbeat {
        /// The session.
        sid: Sid,
        /// The new expiry.
        expire: Timespec,
    },
    /// End a session: release every inode it holds open (a sustained inode no other session
    /// holds is deleted, its data becoming pending deletion), drop its locks and its record.
    /// ENOENT when the session does not exist.
    CloseSession {
        /// The session.
        sid: Sid,
        /// Cleanup of another client's session: only if it expired before this time (checked
        /// inside the op; EAGAIN when it has not, e.g. a heartbeat came in meanwhile). `None`
        /// closes unconditionally (a client closing its own session).
        expired_before: Option<Timespec>,
        /// `None`: the whole close in this op. `Some(n)` (n ≥ 1): one part of a close, for a
        /// session that holds more than one transaction of the store may carry (etcd's
        /// `--max-txn-ops`): the op releases at most n of what the session holds (open
        /// inodes first, then locks); when something is left, it keeps the record but
        /// fences the session ([`crate::session::Session::FENCED`]: its heartbeat is refused
        /// from then on) instead of deleting it. Send parts until one answers ENOENT. A
        /// backend with no limit per transaction may close the whole session in the first
        /// part (Redis does).
        at_most: Option<std::num::NonZeroU32>,
    },
    /// Claim the cleanup of expired sessions: succeeds (and records `now_ms`) when no client
    /// claimed it in the last `every_ms` milliseconds, else EAGAIN. Keeps the cleanup to
    /// one client at a time per volume.
    ClaimCleanup {
        /// Now, in milliseconds since the Unix epoch.
        now_ms: i64,
        /// The lease length in milliseconds.
        every_ms: i64,
    },
    /// Record that session `sid` holds `ino` open (open(2)). ENOENT when the inode or the
    /// session does not exist or is fenced (its close in parts has begun). Idempotent.
    Open {
        /// The session.
        sid: Sid,
        /// The inode (any type).
        ino: Ino,
    },
    /// Forget that session `sid` holds these inodes open (the last close(2) of each in the
    /// session). A sustained inode (nlink 0) no other session holds open is deleted. An
    /// inode the session does not hold open changes nothing (a client queues its releases
    /// and sends them together, see [`crate::Meta`], so one inode never fails the op).
    Release {
        /// The session.
        sid: Sid,
        /// The inodes, each with `drop_locks`: the session may hold locks on it (its client
        /// took some), dropped too, as no descriptor is left to hold them; `false` saves
        /// looking for them (locks held anyway stay until the session ends).
        inos: Vec<(Ino, bool)>,
    },
    /// BSD flock(2), non-blocking (`LOCK_NB`): set `owner`'s lock on `ino` to `typ`.
    /// EAGAIN when another owner holds a conflicting lock; ENOENT when the inode or the
    /// session does not exist or is fenced. Unlock of a lock not held succeeds.
    Flock {
        /// The inode.
        ino: Ino,
        /// Who locks.
        owner: LockOwner,
        /// `Read` (`LOCK_SH`), `Write` (`LOCK_EX`) or `Unlock` (`LOCK_UN`).
        typ: LockType,
    },
    /// POSIX byte-range lock, fcntl(2) `F_SETLK` (non-blocking): set `owner`'s locks over
    /// `start..=end` to `typ`, splitting and merging its ranges as fcntl(2) describes.
    /// EAGAIN when another owner holds a conflicting range; EINVAL when `start > end`;
    /// ENOENT when the inode or the session does not exist, or the session is fenced.
    Setlk {
        /// The inode.
        ino: Ino,
        /// Who locks.
        owner: LockOwner,
        /// `Read`, `Write` or `Unlock`.
        typ: LockType,
        /// First byte, inclusive.
        start: u64,
        /// Last byte, inclusive (`u64::MAX`: to the end of the file).
        end: u64,
        /// The process, reported by `F_GETLK`.
        pid: u32,
    },
    /// Write a pending-deletion record verbatim (used by `load`): for `Pending::File`, also the
    /// deleted inode's chunks, which stay readable until the data layer clears the record.
    /// `AlreadyExists` when a `Pending::File` names a live inode.
    RestorePending {
        /// The record.
        pending: crate::types::Pending,
        /// Chunks of a pending file (empty for a pending slice).
        chunks: Vec<(u32, Vec<Slice>)>,
    },
}

/// What [`Op::Mknod`] takes over from a file being recreated (`meta import`).
///
/// Checked before anything is read (`InvalidArgument`): only a regular file has a length or
/// a slice; the length is at most [`crate::types::MAX_FILE_LEN`]; the slice obeys the rules of
/// [`Op::Write`] in chunk 0 and ends at or before the length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// Last access time (the new inode's atime).
    pub atime: Timespec,
    /// Last modification time (mtime).
    pub mtime: Timespec,
    /// Last status change time (ctime).
    pub ctime: Timespec,
    /// Length in bytes; regular files only (0 for any other type, whose length follows from
    /// the type as in a plain create).
    pub length: u64,
    /// The slice holding the file's first bytes, appended to chunk 0 as [`Op::Write`] would;
    /// `None` for a file without data (or whose data the caller writes with later ops).
    pub slice: Option<Slice>,
}

/// The payload of [`Op::Restore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreRecord {
    /// Inode number to restore.
    pub ino: Ino,
    /// Its attributes, stored as they are.
    pub attr: Attr,
    /// `(parent, name)` of every entry naming this inode (empty for the root).
    pub links: Vec<(Ino, Vec<u8>)>,
    /// Symlink target (symlinks only).
    pub target: Vec<u8>,
    /// Extended attributes `(name, value)`.
    pub xattrs: Vec<(Vec<u8>, Vec<u8>)>,
    /// Chunks `(index, slices)`.
    pub chunks: Vec<(u32, Vec<Slice>)>,
}

impl Op {
    /// The caller whose permissions the op is checked against, for the ops that have one.
    /// [`crate::Meta`] replaces it with [`Caller::ROOT`] when the engine's permission checks
    /// are off (`permissions=false`).
    pub fn caller_mut(&mut self) -> Option<&mut Caller> {
        match self {
            Op::Mknod { caller, .. }
            | Op::Link { caller, .. }
            | Op::Unlink { caller, .. }
            | Op::Rmdir { caller, .. }
            | Op::Rename { caller, .. }
            | Op::SetAttr { caller, .. }
            | Op::Write { caller, .. }
            | Op::Truncate { caller, .. }
            | Op::SetXattr { caller, .. }
            | Op::RemoveXattr { caller, .. } => Some(caller),
            Op::CompactChunk { .. }
            | Op::SetQuota { .. }
            | Op::RemoveQuota { .. }
            | Op::ClearPendingFile { .. }
            | Op::ClearPendingSlice { .. }
            | Op::Restore(_)
            | Op::RestorePending { .. }
            | Op::OpenSession { .. }
            | Op::Heartbeat { .. }
            | Op::CloseSession { .. }
            | Op::ClaimCleanup { .. }
            | Op::Open { .. }
            | Op::Release { .. }
            | Op::Flock { .. }
            | Op::Setlk { .. } => None,
        }
    }

    /// A stable lower-case name for metrics and messages, e.g. `"mknod"`.
    pub fn name(&self) -> &'static str {
        match self {
            Op::Mknod { .. } => "mknod",
            Op::Link { .. } => "link",
            Op::Unlink { .. } => "unlink",
            Op::Rmdir { .. } => "rmdir",
            Op::Rename { .. } => "rename",
            Op::SetAttr { .. } => "setattr",
            Op::Write { .. } => "write",
            Op::Truncate { .. } => "truncate",
            Op::CompactChunk { .. } => "compact_chunk",
            Op::SetQuota { .. } => "set_quota",
            Op::RemoveQuota { .. } => "remove_quota",
            Op::SetXattr { .. } => "setxattr",
            Op::RemoveXattr { .. } => "removexattr",
            Op::ClearPendingFile { .. } => "clear_pending_file",
            Op::ClearPendingSlice { .. } => "clear_pending_slice",
            Op::Restore(_) => "restore",
            Op::RestorePending { .. } => "restore_pending",
            Op::OpenSession { .. } => "open_session",
            Op::Heartbeat { .. } => "heartbeat",
            Op::CloseSession { .. } => "close_session",
            Op::ClaimCleanup { .. } => "claim_cleanup",
            Op::Open { .. } => "open",
            Op::Release { .. } => "release",
            Op::Flock { .. } => "flock",
            Op::Setlk { .. } => "setlk",
        }
    }

    /// Every op name, for pre-creating metric series.
    pub const NAMES: [&'static str; 25] = [
        "mknod",
        "link",
        "unlink",
        "rmdir",
        "rename",
        "setattr",
        "write",
        "truncate",
        "compact_chunk",
        "set_quota",
        "remove_quota",
        "setxattr",
        "removexattr",
        "clear_pending_file",
        "clear_pending_slice",
        "restore",
        "restore_pending",
        "open_session",
        "heartbeat",
        "close_session",
        "claim_cleanup",
        "open",
        "release",
        "flock",
        "setlk",
    ];

    /// Approximate encoded size in bytes, used for the `batch_bytes` limit.
    pub fn size_hint(&self) -> usize {
        64 + match self {
            Op::Mknod { name, target, .. } => name.len() + target.len(),
            Op::Link { name, .. } | Op::Unlink { name, .. } | Op::Rmdir { name, .. } => name.len(),
            Op::Rename { name, new_name, .. } => name.len() + new_name.len(),
            Op::SetXattr { name, value, .. } => name.len() + value.len(),
            Op::RemoveXattr { name, .. } => name.len(),
            Op::Restore(r) => {
                r.target.len()
                    + r.links.iter().map(|(_, n)| n.len() + 8).sum::<usize>()
                    + r.xattrs
                        .iter()
                        .map(|(n, v)| n.len() + v.len())
                        .sum::<usize>()
                    + r.chunks
                        .iter()
                        .map(|(_, s)| 4 + 24 * s.len())
                        .sum::<usize>()
            }
            Op::RestorePending { chunks, .. } => {
                chunks.iter().map(|(_, s)| 4 + 24 * s.len()).sum::<usize>()
            }
            Op::OpenSession { info, .. } => info.host.len() + info.label.len() + 64,
            Op::Release { inos, .. } => 9 * inos.len(),
            Op::CompactChunk { expect, slices, .. } => 24 * (expect.len() + slices.len()),
            Op::SetQuota { subtree, .. } => 8 * subtree.len(),
            _ => 0,
        }
    }
}

/// The result of one successful [`Op`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OpOutput {
    /// Mknod and Link: the inode now at the name, and the parent directory's new attributes.
    Entry {
        /// The (new or linked) inode.
        ino: Ino,
        /// Its attributes after the op.
        attr: Attr,
        /// The parent directory's attributes after the op.
        parent: Attr,
    },
    /// Unlink and Rmdir: the parent's new attributes, and the inode's when links remain.
    Removed {
        /// The removed inode.
        ino: Ino,
        /// Its attributes when it still has links, `None` when it is gone.
        attr: Option<Attr>,
        /// The parent directory's attributes after the op.
        parent: Attr,
    },
    /// Rename: the moved inode and both directories' new attributes.
    Renamed {
        /// The moved inode.
        ino: Ino,
        /// Its attributes after the op.
        attr: Attr,
        /// The source directory after the op.
        parent: Attr,
        /// The destination directory after the op (equal to `parent` for a rename in place).
        new_parent: Attr,
        /// The inode that was at the destination: replaced (`attr` `None` if it is gone) or,
        /// with EXCHANGE, moved to the source name.
        replaced: Option<(Ino, Option<Attr>)>,
    },
    /// SetAttr, Write, Truncate: the inode's new attributes.
    Attr {
        /// The changed inode.
        ino: Ino,
        /// Its attributes after the op.
        attr: Attr,
    },
    /// SetQuota: the directory's quota after the op.
    Quota {
        /// The directory.
        dir: Ino,
        /// Its quota, usage included.
        quota: crate::quota::Quota,
    },
    /// Ops without a payload (xattrs, clearing pending deletions, compaction, RemoveQuota).
    Done,
}

impl OpOutput {
    /// The primary inode's attributes, where the output has them.
    pub fn attr(&self) -> Option<&Attr> {
        match self {
            OpOutput::Entry { attr, .. }
            | OpOutput::Renamed { attr, .. }
            | OpOutput::Attr { attr, .. } => Some(attr),
            OpOutput::Removed { attr, .. } => attr.as_ref(),
            OpOutput::Quota { .. } | OpOutput::Done => None,
        }
    }

    /// The primary inode, where the output has one.
    pub fn ino(&self) -> Option<Ino> {
        match self {
            OpOutput::Entry { ino, .. }
            | OpOutput::Removed { ino, .. }
            | OpOutput::Renamed { ino, .. }
            | OpOutput::Attr { ino, .. } => Some(*ino),
            OpOutput::Quota { dir, .. } => Some(*dir),
            OpOutput::Done => None,
        }
    }
}
