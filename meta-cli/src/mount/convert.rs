//! Conversions between the engine's types and FUSE's: errno, times, file types, attributes.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{Errno, FileAttr, Generation, INodeNo, TimeOrNow};
use meta_core::{Attr, FileType, Ino, SetAttrMask, SetAttrValues, Timespec};

/// The errno of an engine error.
pub fn errno(e: &meta_core::Error) -> Errno {
    Errno::from_i32(e.kind().errno())
}

fn time(t: Timespec) -> SystemTime {
    if t.sec >= 0 {
        UNIX_EPOCH + Duration::new(t.sec as u64, t.nsec)
    } else {
        UNIX_EPOCH
            .checked_sub(Duration::from_secs(t.sec.unsigned_abs()))
            .map(|s| s + Duration::from_nanos(u64::from(t.nsec)))
            .unwrap_or(UNIX_EPOCH)
    }
}

pub(super) fn timespec(t: SystemTime) -> Timespec {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => Timespec {
            sec: d.as_secs() as i64,
            nsec: d.subsec_nanos(),
        },
        Err(e) => {
            let d = e.duration();
            let borrow = i64::from(d.subsec_nanos() > 0);
            Timespec {
                sec: -(d.as_secs() as i64) - borrow,
                nsec: (1_000_000_000 - d.subsec_nanos()) % 1_000_000_000,
            }
        }
    }
}

pub(super) fn kind(t: FileType) -> fuser::FileType {
    match t {
        FileType::Regular => fuser::FileType::RegularFile,
        FileType::Directory => fuser::FileType::Directory,
        FileType::Symlink => fuser::FileType::Symlink,
        FileType::Fifo => fuser::FileType::NamedPipe,
        FileType::CharDevice => fuser::FileType::CharDevice,
        FileType::BlockDevice => fuser::FileType::BlockDevice,
        FileType::Socket => fuser::FileType::Socket,
    }
}

/// The engine type of a `st_mode`'s `S_IFMT` bits.
pub(super) fn type_of_mode(mode: u32) -> Option<FileType> {
    Some(match mode & libc::S_IFMT {
        libc::S_IFREG | 0 => FileType::Regular,
        libc::S_IFDIR => FileType::Directory,
        libc::S_IFLNK => FileType::Symlink,
        libc::S_IFIFO => FileType::Fifo,
        libc::S_IFCHR => FileType::CharDevice,
        libc::S_IFBLK => FileType::BlockDevice,
        libc::S_IFSOCK => FileType::Socket,
        _ => return None,
    })
}

/// FUSE attributes of an engine inode.
pub fn file_attr(ino: Ino, a: &Attr) -> FileAttr {
    let blocks = match a.typ {
        FileType::Regular => a.length.div_ceil(512),
        FileType::Directory => 8,
        _ => 0,
    };
    FileAttr {
        ino: INodeNo(ino.0),
        size: a.length,
        blocks,
        atime: time(a.atime),
        mtime: time(a.mtime),
        ctime: time(a.ctime),
        crtime: time(a.ctime),
        kind: kind(a.typ),
        perm: a.mode & 0o7777,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        blksize: 4096,
        flags: 0,
    }
}

pub(super) fn name_bytes(name: &OsStr) -> Vec<u8> {
    name.as_bytes().to_vec()
}

pub(super) const GEN: Generation = Generation(0);

/// The engine's setattr request (which fields, their values) for a FUSE `setattr` with
/// these fields set: mode bits (only the 12 permission bits are kept), owner, group, size,
/// atime and mtime each given or "now" (`UTIME_NOW`, utimensat(2)).
pub(super) fn setattr_request(
    mode: Option<u32>,
    uid: Option<u32>,
    gid: Option<u32>,
    size: Option<u64>,
    atime: Option<TimeOrNow>,
    mtime: Option<TimeOrNow>,
) -> (SetAttrMask, SetAttrValues) {
    let mut mask = SetAttrMask::default();
    let mut v = SetAttrValues::default();
    if let Some(m) = mode {
        mask = mask | SetAttrMask::MODE;
        v.mode = (m & 0o7777) as u16;
    }
    if let Some(u) = uid {
        mask = mask | SetAttrMask::UID;
        v.uid = u;
    }
    if let Some(g) = gid {
        mask = mask | SetAttrMask::GID;
        v.gid = g;
    }
    if let Some(s) = size {
        mask = mask | SetAttrMask::SIZE;
        v.size = s;
    }
    match atime {
        Some(TimeOrNow::Now) => mask = mask | SetAttrMask::ATIME_NOW,
        Some(TimeOrNow::SpecificTime(t)) => {
            mask = mask | SetAttrMask::ATIME;
            v.atime = timespec(t);
        }
        None => {}
    }
    match mtime {
        Some(TimeOrNow::Now) => mask = mask | SetAttrMask::MTIME_NOW,
        Some(TimeOrNow::SpecificTime(t)) => {
            mask = mask | SetAttrMask::MTIME;
            v.mtime = timespec(t);
        }
        None => {}
    }
    (mask, v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip_before_and_after_the_epoch() {
        for t in [
            Timespec { sec: 0, nsec: 0 },
            Timespec {
                sec: 1_700_000_000,
                nsec: 123,
            },
            Timespec { sec: -5, nsec: 1 },
            Timespec { sec: -1, nsec: 0 },
        ] {
            assert_eq!(timespec(time(t)), t, "{t:?}");
        }
    }

    #[test]
    fn modes_map_to_types() {
        assert_eq!(type_of_mode(libc::S_IFIFO | 0o644), Some(FileType::Fifo));
        assert_eq!(type_of_mode(0o644), Some(FileType::Regular));
        assert_eq!(type_of_mode(0o170000), None);
    }

    #[test]
    fn setattr_fields_become_the_mask_and_values() {
        let t = SystemTime::UNIX_EPOCH + Duration::new(5, 6);
        let (mask, v) = setattr_request(
            Some(0o104755),
            None,
            Some(7),
            Some(9),
            Some(TimeOrNow::Now),
            Some(TimeOrNow::SpecificTime(t)),
        );
        let want = SetAttrMask::MODE
            | SetAttrMask::GID
            | SetAttrMask::SIZE
            | SetAttrMask::ATIME_NOW
            | SetAttrMask::MTIME;
        assert_eq!(mask, want);
        assert_eq!((v.mode, v.gid, v.size), (0o4755, 7, 9));
        assert_eq!(v.mtime, Timespec { sec: 5, nsec: 6 });
        let (none, _) = setattr_request(None, None, None, None, None, None);
        assert_eq!(none, SetAttrMask::default());
    }
}
