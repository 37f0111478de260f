//! Op builders for the tests that run one op list on Redis and on the in-memory reference
//! (dirstats.rs, quota_batches.rs): every op as root ([`ME`]), at fixed times past
//! 2030-03-17 ([`t`]), so both sides get identical ops.

#![allow(dead_code)]

use meta_core::{
    Attr, Caller, FileType, Ino, Op, RenameFlags, RestoreRecord, SetAttrMask, SetAttrValues, Slice,
    Timespec,
};

/// Every op's caller: root.
pub const ME: Caller = Caller::new(0, 0);

/// 1,900,000,000 + `sec` seconds.
pub fn t(sec: i64) -> Timespec {
    Timespec {
        sec: 1_900_000_000 + sec,
        nsec: 0,
    }
}

/// Creates `name` (inode `ino`, mode 0755, owned by root; a symlink to a 10-byte target).
pub fn mknod(parent: u64, name: &str, ino: u64, typ: FileType) -> Op {
    Op::Mknod {
        parent: Ino(parent),
        name: name.as_bytes().to_vec(),
        ino: Ino(ino),
        typ,
        mode: 0o755,
        uid: 0,
        gid: 0,
        caller: ME,
        rdev: 0,
        target: if typ == FileType::Symlink {
            b"0123456789".to_vec()
        } else {
            Vec::new()
        },
        time: t(0),
        opened_by: None,
        imported: None,
    }
}

/// [`mknod`] of a directory.
pub fn mkdir(parent: u64, name: &str, ino: u64) -> Op {
    mknod(parent, name, ino, FileType::Directory)
}

/// [`mknod`] of a regular file.
pub fn file(parent: u64, name: &str, ino: u64) -> Op {
    mknod(parent, name, ino, FileType::Regular)
}

/// Writes `len` bytes of slice `id` at `pos` of chunk `indx`.
pub fn write(ino: u64, indx: u32, id: u64, pos: u32, len: u32) -> Op {
    Op::Write {
        ino: Ino(ino),
        indx,
        slice: Slice {
            pos,
            id,
            size: len,
            off: 0,
            len,
        },
        caller: ME,
        time: t(1),
    }
}

/// Removes the entry `name` of `parent`.
pub fn unlink(parent: u64, name: &str) -> Op {
    Op::Unlink {
        parent: Ino(parent),
        name: name.as_bytes().to_vec(),
        caller: ME,
        time: t(2),
    }
}

/// Removes the empty directory `name` of `parent`.
pub fn rmdir(parent: u64, name: &str) -> Op {
    Op::Rmdir {
        parent: Ino(parent),
        name: name.as_bytes().to_vec(),
        caller: ME,
        time: t(2),
    }
}

/// Renames `parent/name` to `new_parent/new_name`.
pub fn rename(parent: u64, name: &str, new_parent: u64, new_name: &str, flags: RenameFlags) -> Op {
    Op::Rename {
        parent: Ino(parent),
        name: name.as_bytes().to_vec(),
        new_parent: Ino(new_parent),
        new_name: new_name.as_bytes().to_vec(),
        flags,
        caller: ME,
        time: t(3),
    }
}

/// A hard link `parent/name` to `ino`.
pub fn link(ino: u64, parent: u64, name: &str) -> Op {
    Op::Link {
        ino: Ino(ino),
        parent: Ino(parent),
        name: name.as_bytes().to_vec(),
        caller: ME,
        time: t(4),
    }
}

/// Truncates `ino` to `length` bytes.
pub fn truncate(ino: u64, length: u64) -> Op {
    Op::Truncate {
        ino: Ino(ino),
        length,
        caller: ME,
        time: t(5),
    }
}

/// `setattr` of the size of `ino` to `size` bytes.
pub fn set_size(ino: u64, size: u64) -> Op {
    Op::SetAttr {
        ino: Ino(ino),
        mask: SetAttrMask::SIZE,
        values: SetAttrValues {
            mode: 0,
            uid: 0,
            gid: 0,
            atime: t(0),
            mtime: t(0),
            size,
        },
        caller: ME,
        time: t(6),
    }
}

/// Attributes for [`restore`]: mode 0644, owned by root, at time [`t`]`(0)`.
pub fn attr(typ: FileType, parent: u64, nlink: u32, length: u64) -> Attr {
    Attr {
        typ,
        mode: 0o644,
        uid: 0,
        gid: 0,
        rdev: 0,
        atime: t(0),
        mtime: t(0),
        ctime: t(0),
        nlink,
        length,
        parent: Ino(parent),
        flags: 0,
    }
}

/// Restores inode `ino` with attributes `a` under the entries `links` (parent, name).
pub fn restore(ino: u64, a: Attr, links: &[(u64, &str)]) -> Op {
    Op::Restore(Box::new(RestoreRecord {
        ino: Ino(ino),
        attr: a,
        links: links
            .iter()
            .map(|(p, n)| (Ino(*p), n.as_bytes().to_vec()))
            .collect(),
        target: Vec::new(),
        xattrs: Vec::new(),
        chunks: Vec::new(),
    }))
}

/// A quota on `dir` limited to `max_inodes` inodes; `subtree`: every directory of dir's
/// subtree, dir first.
pub fn set_quota(dir: u64, max_inodes: u64, subtree: &[u64]) -> Op {
    Op::SetQuota {
        dir: Ino(dir),
        max_space: 0,
        max_inodes,
        subtree: subtree.iter().map(|&d| Ino(d)).collect(),
    }
}
