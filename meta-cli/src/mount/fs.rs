//! The FUSE filesystem: every request becomes a task on the tokio runtime that calls the
//! [`Meta`] API (or the data side, `files.rs`) and answers with the engine's errno.
//!
//! - Inode numbers are the engine's (the root is 1 in both). Attributes and entries are
//!   answered with a TTL (`--attr-timeout`, default 0: the kernel asks again each time, so
//!   changes made through other mounts show at once).
//! - Regular files are opened in the engine's session (`open_file` / `create_open` /
//!   `release_file`), so a file unlinked while open stays readable until its last close.
//! - Directory listings map FUSE offsets onto the engine's name cursor (`dir.rs`), so
//!   entries added or removed meanwhile never make a listing skip or repeat the others.
//! - POSIX byte-range locks (`getlk` / `setlk`, `locks.rs`) go to the engine, so they hold across
//!   mounts; `flock(2)` is left to the kernel (one mount): fuser 0.18 does not tell a flock
//!   request from a byte-range one.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use meta_core::perm::{MAY_EXEC, MAY_READ};
use meta_core::types::MAX_FILE_LEN;

use super::access;

use fuser::{
    AccessFlags, Errno, FileHandle, Filesystem, FopenFlags, INodeNo, KernelConfig,
    LockOwner as FuseLockOwner, OpenFlags, RenameFlags as FuseRenameFlags, ReplyAttr, ReplyCreate,
    ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyLock, ReplyOpen,
    ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use meta_core::{
    Attr, Caller, ErrorKind, FileType, Ino, LockType, Meta, PlockRequest, RenameFlags, Result,
    SetAttrMask, SetAttrValues, XattrFlags,
};

use super::convert::{GEN, errno, file_attr, name_bytes, setattr_request, type_of_mode};
use super::dir::{self, DirCursor};
use super::files::Files;
use super::locks;

/// The mount's filesystem.
pub struct MetaFs {
    shared: Arc<Shared>,
    rt: tokio::runtime::Handle,
    dirs: Mutex<HashMap<u64, Arc<Mutex<DirCursor>>>>,
    next_fh: AtomicU64,
}

/// What every request's task works with.
pub struct Shared {
    /// The engine.
    pub meta: Meta,
    /// The data side.
    pub files: Arc<Files>,
    /// Attribute and entry TTL.
    pub ttl: Duration,
    /// The engine checks permissions (mounted without `default_permissions`): see
    /// [`super::access`].
    pub check: bool,
    /// Inodes on which byte-range locks were taken through this mount: a close drops the
    /// closing process's locks on them (and costs nothing for the others).
    locked: Mutex<std::collections::HashSet<u64>>,
}

impl MetaFs {
    /// A filesystem over `meta` and `files`, running its requests on `rt`.
    /// With `check`, the engine decides permissions (see [`super::access`]).
    pub fn new(
        meta: Meta,
        files: Arc<Files>,
        rt: tokio::runtime::Handle,
        ttl: Duration,
        check: bool,
    ) -> Self {
        MetaFs {
            shared: Arc::new(Shared {
                meta,
                files,
                ttl,
                check,
                locked: Mutex::default(),
            }),
            rt,
            dirs: Mutex::default(),
            next_fh: AtomicU64::new(1),
        }
    }

    /// Runs `f` on the runtime with a clone of the engine, the data side and the TTL.
    fn run<F, Fut>(&self, f: F)
    where
        F: FnOnce(Meta, Arc<Files>, Duration) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let s = &self.shared;
        self.rt.spawn(f(s.meta.clone(), s.files.clone(), s.ttl));
    }

    /// The caller of `req` (with its supplementary groups when the engine checks).
    fn who(&self, req: &Request) -> Caller {
        access::caller(req, self.shared.check)
    }

    fn locked(&self) -> std::sync::MutexGuard<'_, std::collections::HashSet<u64>> {
        self.shared.locked.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cursor(&self, fh: u64) -> Option<Arc<Mutex<DirCursor>>> {
        self.dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&fh)
            .cloned()
    }
}

/// The attributes of `ino` after committing its buffered writes.
async fn fresh_attr(meta: &Meta, files: &Files, ino: Ino) -> Result<Attr> {
    files.flush(ino).await?;
    meta.getattr(ino).await
}

fn entry_reply(reply: ReplyEntry, ttl: Duration, r: Result<(Ino, Attr)>) {
    match r {
        Ok((ino, a)) => reply.entry(&ttl, &file_attr(ino, &a), GEN),
        Err(e) => reply.error(errno(&e)),
    }
}

/// Answers a request that returns nothing: ok, or the engine error's errno.
pub(super) fn empty_reply(reply: ReplyEmpty, r: Result<()>) {
    match r {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(&e)),
    }
}

impl Filesystem for MetaFs {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> std::io::Result<()> {
        // Byte-range locks are the engine's (across mounts); everything else as the kernel
        // offers it.
        let _ = config.add_capabilities(fuser::InitFlags::FUSE_POSIX_LOCKS);
        if self.shared.check {
            // Writes, truncates and chowns clear setuid/setgid here (the engine's ops and
            // `write` below), not through a setattr the kernel would send as the writer.
            let _ = config.add_capabilities(fuser::InitFlags::FUSE_HANDLE_KILLPRIV);
        }
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let name = name_bytes(name);
        let who = self.shared.check.then(|| self.who(req));
        self.run(|meta, _, ttl| async move {
            let parent = Ino(parent.0);
            let r = async {
                access::check(&meta, who.as_ref(), parent, MAY_EXEC).await?;
                meta.lookup(parent, &name).await
            }
            .await;
            entry_reply(reply, ttl, r)
        });
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.run(|meta, files, ttl| async move {
            match fresh_attr(&meta, &files, Ino(ino.0)).await {
                Ok(a) => reply.attr(&ttl, &file_attr(Ino(ino.0), &a)),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        // truncate(2): EFBIG past the largest file the engine records.
        if size.is_some_and(|s| s > MAX_FILE_LEN) {
            reply.error(Errno::EFBIG);
            return;
        }
        let (mask, v) = setattr_request(mode, uid, gid, size, atime, mtime);
        let who = self.who(req);
        // ftruncate(2) on a descriptor open for writing: open(2) checked the permission, so
        // the engine must not check it again (the file may have been made read-only since).
        let by_fd = self.shared.check && fh.is_some() && mask.contains(SetAttrMask::SIZE);
        self.run(|meta, files, ttl| async move {
            let ino = Ino(ino.0);
            let r = async {
                // Buffered writes land first, so a truncate cuts them too.
                files.flush(ino).await?;
                if by_fd {
                    let size = SetAttrValues {
                        size: v.size,
                        ..SetAttrValues::default()
                    };
                    let a = meta
                        .setattr(Caller::ROOT, ino, SetAttrMask::SIZE, size)
                        .await?;
                    access::kill_privileges(&meta, ino, a, &who).await?;
                    let rest = SetAttrMask(mask.0 & !SetAttrMask::SIZE.0);
                    if rest.0 == 0 {
                        return meta.getattr(ino).await;
                    }
                    return meta.setattr(who, ino, rest, v).await;
                }
                meta.setattr(who, ino, mask, v).await
            }
            .await;
            match r {
                Ok(a) => reply.attr(&ttl, &file_attr(ino, &a)),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        self.run(|meta, _, _| async move {
            match meta.readlink(Ino(ino.0)).await {
                Ok(t) => reply.data(&t),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let (name, who) = (name_bytes(name), self.who(req));
        let Some(typ) = type_of_mode(mode) else {
            reply.error(Errno::EINVAL);
            return;
        };
        let perm = (mode & !umask & 0o7777) as u16;
        self.run(|meta, _, ttl| async move {
            let r = meta.mknod(who, Ino(parent.0), &name, typ, perm, rdev).await;
            entry_reply(reply, ttl, r)
        });
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let (name, who) = (name_bytes(name), self.who(req));
        let perm = (mode & !umask & 0o7777) as u16;
        self.run(|meta, _, ttl| async move {
            entry_reply(
                reply,
                ttl,
                meta.mkdir(who, Ino(parent.0), &name, perm).await,
            )
        });
    }

    fn unlink(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let (name, who) = (name_bytes(name), self.who(req));
        self.run(|meta, _, _| async move {
            empty_reply(reply, meta.unlink(who, Ino(parent.0), &name).await)
        });
    }

    fn rmdir(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let (name, who) = (name_bytes(name), self.who(req));
        self.run(|meta, _, _| async move {
            empty_reply(reply, meta.rmdir(who, Ino(parent.0), &name).await)
        });
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let (name, who) = (name_bytes(link_name), self.who(req));
        let target = target.as_os_str().as_bytes().to_vec();
        self.run(|meta, _, ttl| async move {
            entry_reply(
                reply,
                ttl,
                meta.symlink(who, Ino(parent.0), &name, &target).await,
            )
        });
    }

    fn rename(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: FuseRenameFlags,
        reply: ReplyEmpty,
    ) {
        let (name, newname, who) = (name_bytes(name), name_bytes(newname), self.who(req));
        let flags = if flags.is_empty() {
            RenameFlags::NONE
        } else if flags == FuseRenameFlags::RENAME_NOREPLACE {
            RenameFlags::NOREPLACE
        } else if flags == FuseRenameFlags::RENAME_EXCHANGE {
            RenameFlags::EXCHANGE
        } else {
            reply.error(Errno::EINVAL);
            return;
        };
        self.run(|meta, _, _| async move {
            let r = meta
                .rename(who, Ino(parent.0), &name, Ino(newparent.0), &newname, flags)
                .await;
            empty_reply(reply, r.map(drop))
        });
    }

    fn link(
        &self,
        req: &Request,
        ino: INodeNo,
        newparent: INodeNo,
        newname: &OsStr,
        reply: ReplyEntry,
    ) {
        let newname = name_bytes(newname);
        let who = self.who(req);
        self.run(|meta, _, ttl| async move {
            let r = meta.link(who, Ino(ino.0), Ino(newparent.0), &newname).await;
            entry_reply(reply, ttl, r.map(|a| (Ino(ino.0), a)))
        });
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let who = self.shared.check.then(|| self.who(req));
        self.run(|meta, _, _| async move {
            let ino = Ino(ino.0);
            let r = async {
                let mask = access::open_mask(flags.0);
                access::check(&meta, who.as_ref(), ino, mask).await?;
                meta.open_file(ino).await
            }
            .await;
            match r {
                Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let (name, who) = (name_bytes(name), self.who(req));
        if type_of_mode(mode) != Some(FileType::Regular) {
            reply.error(Errno::EINVAL);
            return;
        }
        let perm = (mode & !umask & 0o7777) as u16;
        self.run(|meta, _, ttl| async move {
            match meta.create_open(who, Ino(parent.0), &name, perm).await {
                Ok((ino, a)) => reply.created(
                    &ttl,
                    &file_attr(ino, &a),
                    GEN,
                    FileHandle(0),
                    FopenFlags::empty(),
                ),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<FuseLockOwner>,
        reply: ReplyData,
    ) {
        self.run(|_, files, _| async move {
            match files.read(Ino(ino.0), offset, size).await {
                Ok(d) => reply.data(&d),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn write(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<FuseLockOwner>,
        reply: ReplyWrite,
    ) {
        // write(2): EFBIG past the largest file the engine records (the kernel's own limit
        // for a FUSE file is 2^63 - 1).
        if offset
            .checked_add(data.len() as u64)
            .is_none_or(|end| end > MAX_FILE_LEN)
        {
            reply.error(Errno::EFBIG);
            return;
        }
        let data = data.to_vec();
        // With engine checks the kernel leaves setuid/setgid clearing to the filesystem.
        let writer = self.shared.check.then(|| self.who(req));
        self.run(|meta, files, _| async move {
            let ino = Ino(ino.0);
            let r = async {
                if let Some(w) = writer.filter(|w| !w.is_root()) {
                    let a = meta.getattr(ino).await?;
                    access::kill_privileges(&meta, ino, a, &w).await?;
                }
                files.write(ino, offset, &data).await
            }
            .await;
            match r {
                Ok(()) => reply.written(data.len() as u32),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn flush(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        lock_owner: FuseLockOwner,
        reply: ReplyEmpty,
    ) {
        let had_locks = self.locked().contains(&ino.0);
        self.run(|meta, files, _| async move {
            let ino = Ino(ino.0);
            let flushed = files.flush_report(ino).await;
            let unlocked = async {
                if !had_locks {
                    return Ok(());
                }
                // close(2) drops the closing process's byte-range locks on the file, whatever
                // the flush gave.
                let unlock = PlockRequest {
                    typ: LockType::Unlock,
                    start: 0,
                    end: u64::MAX,
                    pid: 0,
                };
                match meta.setlk(ino, lock_owner.0, unlock).await {
                    Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
                    r => r,
                }
            }
            .await;
            empty_reply(reply, flushed.and(unlocked))
        });
    }

    fn release(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<FuseLockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.run(|meta, files, _| async move {
            let ino = Ino(ino.0);
            // The open is released whatever the flush gives (else it would stay held, and
            // an unlinked file sustained, until the session ends).
            let flushed = files.flush_report(ino).await;
            let released = meta.release_file(ino).await;
            let r = flushed.and(released);
            // The last release of the inode by this mount: a lost write was reported to
            // every close and fsync until now.
            if meta.open_count(ino).await == 0 {
                files.clear_lost(ino).await;
            }
            files.forget(ino);
            empty_reply(reply, r)
        });
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.run(|meta, files, _| async move {
            let r = async {
                files.fsync(Ino(ino.0)).await?;
                // The engine's ops are durable when they return (per its backend); queued
                // releases need not be.
                meta.flush().await
            }
            .await;
            empty_reply(reply, r)
        });
    }

    fn opendir(&self, req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        let who = self.shared.check.then(|| self.who(req));
        let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
        self.dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(fh, Arc::default());
        self.run(|meta, _, _| async move {
            // The directory must exist, be one, and (engine checks) be readable.
            match meta.getattr(Ino(ino.0)).await {
                Ok(a) if a.typ == FileType::Directory => {
                    // The attributes are at hand: no second read through `Meta::access`.
                    let denied = who.as_ref().and_then(|w| {
                        meta_core::perm::check_access(&a, Ino(ino.0), w, MAY_READ, "opendir").err()
                    });
                    match denied {
                        Some(e) => reply.error(errno(&e)),
                        None => reply.opened(FileHandle(fh), FopenFlags::empty()),
                    }
                }
                Ok(_) => reply.error(Errno::ENOTDIR),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectory,
    ) {
        let Some(cursor) = self.cursor(fh.0) else {
            reply.error(Errno::EBADF);
            return;
        };
        self.run(|meta, _, _| dir::readdir(meta, Ino(ino.0), cursor, offset, reply));
    }

    fn readdirplus(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        reply: ReplyDirectoryPlus,
    ) {
        let Some(cursor) = self.cursor(fh.0) else {
            reply.error(Errno::EBADF);
            return;
        };
        self.run(|meta, _, ttl| dir::readdirplus(meta, Ino(ino.0), cursor, offset, ttl, reply));
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // Namespace ops are durable when they return.
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        self.run(|meta, _, _| async move {
            match meta.statfs().await {
                Ok(s) => reply.statfs(
                    s.total_space / 4096,
                    s.avail_space / 4096,
                    s.avail_space / 4096,
                    s.used_inodes + s.avail_inodes,
                    s.avail_inodes,
                    4096,
                    255,
                    4096,
                ),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn setxattr(
        &self,
        req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let (name, value) = (name_bytes(name), value.to_vec());
        let who = self.who(req);
        self.run(|meta, _, _| async move {
            let r = meta
                .setxattr(who, Ino(ino.0), &name, &value, XattrFlags(flags as u32))
                .await;
            empty_reply(reply, r)
        });
    }

    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let name = name_bytes(name);
        let who = self.shared.check.then(|| self.who(req));
        self.run(|meta, _, _| async move {
            let ino = Ino(ino.0);
            let r = async {
                if let Some(who) = &who {
                    // xattr(7): reading `user.` names needs read permission; `trusted.`
                    // names are invisible to other users than root.
                    if name.starts_with(b"user.") {
                        meta.access(who, ino, MAY_READ).await?;
                    } else if name.starts_with(b"trusted.") && !who.is_root() {
                        return Err(meta_core::Error::new(ErrorKind::NoData, "trusted. xattr"));
                    }
                }
                meta.getxattr(ino, &name).await
            }
            .await;
            match r {
                Ok(v) if size == 0 => reply.size(v.len() as u32),
                Ok(v) if v.len() <= size as usize => reply.data(&v),
                Ok(_) => reply.error(Errno::ERANGE),
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        self.run(|meta, _, _| async move {
            match meta.listxattr(Ino(ino.0)).await {
                Ok(names) => {
                    let mut buf = Vec::new();
                    for n in names {
                        buf.extend_from_slice(&n);
                        buf.push(0);
                    }
                    if size == 0 {
                        reply.size(buf.len() as u32);
                    } else if buf.len() <= size as usize {
                        reply.data(&buf);
                    } else {
                        reply.error(Errno::ERANGE);
                    }
                }
                Err(e) => reply.error(errno(&e)),
            }
        });
    }

    fn removexattr(&self, req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name_bytes(name);
        let who = self.who(req);
        self.run(|meta, _, _| async move {
            empty_reply(reply, meta.removexattr(who, Ino(ino.0), &name).await)
        });
    }

    fn access(&self, req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        // Only called without default_permissions, i.e. when the engine checks.
        let who = self.who(req);
        self.run(|meta, _, _| async move {
            let r = meta
                .access(&who, Ino(ino.0), (mask.bits() & 7) as u32)
                .await;
            empty_reply(reply, r)
        });
    }

    fn getlk(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        lock_owner: FuseLockOwner,
        start: u64,
        end: u64,
        typ: i32,
        pid: u32,
        reply: ReplyLock,
    ) {
        let Some(req) = locks::request(typ, start, end, pid) else {
            reply.error(Errno::EINVAL);
            return;
        };
        self.run(|meta, _, _| locks::getlk(meta, Ino(ino.0), lock_owner.0, req, reply));
    }

    fn setlk(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        lock_owner: FuseLockOwner,
        start: u64,
        end: u64,
        typ: i32,
        pid: u32,
        sleep: bool,
        reply: ReplyEmpty,
    ) {
        let Some(req) = locks::request(typ, start, end, pid) else {
            reply.error(Errno::EINVAL);
            return;
        };
        if req.typ != LockType::Unlock {
            self.locked().insert(ino.0);
        }
        self.run(|meta, _, _| locks::setlk(meta, Ino(ino.0), lock_owner.0, req, sleep, reply));
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        // Mode 0 allocates: the file grows to offset + length (the data layer writes
        // slices lazily, so space needs no reservation); FALLOC_FL_KEEP_SIZE changes nothing.
        // Punching holes and the other modes are not supported.
        if mode & !libc::FALLOC_FL_KEEP_SIZE != 0 {
            reply.error(Errno::EOPNOTSUPP);
            return;
        }
        let Some(end) = offset
            .checked_add(length)
            .filter(|&end| end <= MAX_FILE_LEN)
        else {
            reply.error(Errno::EFBIG);
            return;
        };
        let keep = mode & libc::FALLOC_FL_KEEP_SIZE != 0;
        self.run(|meta, files, _| async move {
            let ino = Ino(ino.0);
            let r = async {
                let a = fresh_attr(&meta, &files, ino).await?;
                if a.typ != FileType::Regular {
                    return Err(meta_core::Error::new(
                        ErrorKind::InvalidArgument,
                        "fallocate of a non-regular file",
                    ));
                }
                if !keep && end > a.length {
                    meta.truncate(Caller::ROOT, ino, end).await?;
                }
                Ok(())
            }
            .await;
            empty_reply(reply, r)
        });
    }
}
