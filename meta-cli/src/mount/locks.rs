//! POSIX byte-range locks (fcntl(2) `F_GETLK` / `F_SETLK` / `F_SETLKW`) through FUSE: they go
//! to the engine, so they hold across mounts of the volume.

use fuser::{ReplyEmpty, ReplyLock};
use meta_core::{Ino, LockType, Meta, PlockRequest};

use super::convert::errno;
use super::fs::empty_reply;

/// The kernel's "to the end of the file" (`OFFSET_MAX`): the largest `loff_t`. The engine's
/// is `u64::MAX`; a range end is converted both ways, so that a lock taken through the mount
/// and one taken through the API cover the same bytes, and `F_GETLK` never answers an end
/// the kernel refuses (EIO).
const OFFSET_MAX: u64 = i64::MAX as u64;

/// The engine's lock request for an fcntl(2) `l_type` (`F_RDLCK`, `F_WRLCK`, `F_UNLCK`) over
/// `[start, end]` (bytes, inclusive; `end` `OFFSET_MAX`: to the end of the file) by process
/// `pid`; None for any other `l_type` (EINVAL).
pub(super) fn request(l_type: i32, start: u64, end: u64, pid: u32) -> Option<PlockRequest> {
    let end = if end >= OFFSET_MAX { u64::MAX } else { end };
    let typ = match l_type {
        libc::F_RDLCK => LockType::Read,
        libc::F_WRLCK => LockType::Write,
        libc::F_UNLCK => LockType::Unlock,
        _ => return None,
    };
    Some(PlockRequest {
        typ,
        start,
        end,
        pid,
    })
}

/// `F_GETLK` of `req` (its range `[start, end]` in bytes, inclusive) by lock owner `owner`:
/// the first conflicting lock, or `F_UNLCK` over the asked range when none conflicts.
pub(super) async fn getlk(meta: Meta, ino: Ino, owner: u64, req: PlockRequest, reply: ReplyLock) {
    let (start, end) = (req.start.min(OFFSET_MAX), req.end.min(OFFSET_MAX));
    match meta.getlk(ino, owner, req).await {
        Ok(None) => reply.locked(start, end, libc::F_UNLCK, 0),
        Ok(Some((_, r))) => {
            let t = if r.typ == LockType::Write {
                libc::F_WRLCK
            } else {
                libc::F_RDLCK
            };
            reply.locked(r.start.min(OFFSET_MAX), r.end.min(OFFSET_MAX), t, r.pid)
        }
        Err(e) => reply.error(errno(&e)),
    }
}

/// `F_SETLK` of `req` by lock owner `owner`, or `F_SETLKW` with `sleep` (the engine's
/// retrying `setlk_wait`). EAGAIN when a conflicting lock is held and `sleep` is false.
pub(super) async fn setlk(
    meta: Meta,
    ino: Ino,
    owner: u64,
    req: PlockRequest,
    sleep: bool,
    reply: ReplyEmpty,
) {
    let r = if sleep {
        meta.setlk_wait(ino, owner, req, None).await
    } else {
        meta.setlk(ino, owner, req).await
    };
    empty_reply(reply, r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fcntl_lock_types_map_to_requests() {
        let r = request(libc::F_WRLCK, 10, 20, 7).map(|r| (r.typ, r.start, r.end, r.pid));
        assert_eq!(r, Some((LockType::Write, 10, 20, 7)));
        assert_eq!(
            request(libc::F_RDLCK, 0, 0, 1).map(|r| r.typ),
            Some(LockType::Read)
        );
        assert_eq!(
            request(libc::F_UNLCK, 0, 0, 1).map(|r| r.typ),
            Some(LockType::Unlock)
        );
        assert!(request(99, 0, 0, 1).is_none());
    }

    #[test]
    fn the_kernels_end_of_file_is_the_engines() {
        let end = |e| request(libc::F_WRLCK, 0, e, 1).map(|r| r.end);
        assert_eq!(end(i64::MAX as u64), Some(u64::MAX));
        assert_eq!(end(u64::MAX), Some(u64::MAX));
        assert_eq!(end(i64::MAX as u64 - 1), Some(i64::MAX as u64 - 1));
    }
}
