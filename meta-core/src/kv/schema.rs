//! The keys of the KV schema (see the table in [`crate::kv`]).

use crate::session::{LockKind, LockOwner, Sid};
use crate::types::{Counter, Ino, Pending};

fn inode_key(ino: Ino, tag: u8, extra: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(10 + extra.len());
    k.push(b'A');
    k.extend_from_slice(&ino.0.to_be_bytes());
    k.push(tag);
    k.extend_from_slice(extra);
    k
}

/// `A{ino}I`: attributes.
pub fn attr_key(ino: Ino) -> Vec<u8> {
    inode_key(ino, b'I', &[])
}
/// `A{ino}D{name}`: a directory entry.
pub fn entry_key(parent: Ino, name: &[u8]) -> Vec<u8> {
    inode_key(parent, b'D', name)
}
/// `A{ino}D`: prefix of all entries of a directory.
pub fn entry_prefix(parent: Ino) -> Vec<u8> {
    inode_key(parent, b'D', &[])
}
/// `A{ino}C{indx}`: a chunk.
pub fn chunk_key(ino: Ino, indx: u32) -> Vec<u8> {
    inode_key(ino, b'C', &indx.to_be_bytes())
}
/// `A{ino}C`: prefix of all chunks of an inode.
pub fn chunk_prefix(ino: Ino) -> Vec<u8> {
    inode_key(ino, b'C', &[])
}
/// `A{ino}S`: symlink target.
pub fn symlink_key(ino: Ino) -> Vec<u8> {
    inode_key(ino, b'S', &[])
}
/// `A{ino}X{name}`: an xattr.
pub fn xattr_key(ino: Ino, name: &[u8]) -> Vec<u8> {
    inode_key(ino, b'X', name)
}
/// `A{ino}X`: prefix of all xattrs of an inode.
pub fn xattr_prefix(ino: Ino) -> Vec<u8> {
    inode_key(ino, b'X', &[])
}
/// `A{ino}U`: a directory's statistics ([`crate::stats::DirStat`]).
pub fn dir_stat_key(ino: Ino) -> Vec<u8> {
    inode_key(ino, b'U', &[])
}
/// `Q{ino}`: a directory quota ([`crate::quota::Quota`]).
pub fn quota_key(ino: Ino) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(b'Q');
    k.extend_from_slice(&ino.0.to_be_bytes());
    k
}
/// `Q`: prefix of all directory quotas.
pub const QUOTA_PREFIX: &[u8] = b"Q";
/// The directory of a quota key ([`quota_key`]), `None` for another key.
pub fn parse_quota_key(key: &[u8]) -> Option<Ino> {
    match key {
        [b'Q', rest @ ..] => Some(Ino(u64::from_be_bytes(rest.try_into().ok()?))),
        _ => None,
    }
}
/// `C{name}`: a counter.
pub fn counter_key(c: Counter) -> Vec<u8> {
    let mut k = vec![b'C'];
    k.extend_from_slice(c.name().as_bytes());
    k
}
/// `D{ino}` / `L{id}`: a pending-deletion record.
pub fn pending_key(p: Pending) -> Vec<u8> {
    match p {
        Pending::File { ino, .. } => {
            let mut k = vec![b'D'];
            k.extend_from_slice(&ino.0.to_be_bytes());
            k
        }
        Pending::Slice { id, .. } => {
            let mut k = vec![b'L'];
            k.extend_from_slice(&id.to_be_bytes());
            k
        }
    }
}

/// The smallest key greater than every key starting with `prefix` (exclusive scan end).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    vec![0xff; prefix.len() + 1]
}

/// Parses the inode of an `A{ino}...` key.
pub fn key_ino(key: &[u8]) -> Option<Ino> {
    if key.len() < 10 || key[0] != b'A' {
        return None;
    }
    Some(Ino(u64::from_be_bytes(key[1..9].try_into().ok()?)))
}

/// First byte of session keys.
pub const SESSION_TAG: u8 = b'N';
/// First byte of open-file keys.
pub const OPEN_TAG: u8 = b'O';

fn u64s_key(tag: u8, parts: &[u64]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + 8 * parts.len());
    k.push(tag);
    for p in parts {
        k.extend_from_slice(&p.to_be_bytes());
    }
    k
}

fn parse_u64s<const N: usize>(key: &[u8], tag: u8) -> Option<[u64; N]> {
    if key.len() != 1 + 8 * N || key[0] != tag {
        return None;
    }
    let mut out = [0u64; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u64::from_be_bytes(key[1 + 8 * i..9 + 8 * i].try_into().ok()?);
    }
    Some(out)
}

/// `N{sid}`: a session record.
pub fn session_key(sid: Sid) -> Vec<u8> {
    u64s_key(SESSION_TAG, &[sid])
}
/// `O{ino}{sid}`: session `sid` holds `ino` open.
pub fn open_key(ino: Ino, sid: Sid) -> Vec<u8> {
    u64s_key(OPEN_TAG, &[ino.0, sid])
}
/// `O{ino}`: prefix of the open records of `ino`.
pub fn open_prefix(ino: Ino) -> Vec<u8> {
    u64s_key(OPEN_TAG, &[ino.0])
}
/// Parses an `O{ino}{sid}` key.
pub fn parse_open_key(key: &[u8]) -> Option<(Ino, Sid)> {
    parse_u64s::<2>(key, OPEN_TAG).map(|[i, s]| (Ino(i), s))
}
/// `F{ino}{sid}{owner}` (flock) or `P{ino}{sid}{owner}` (byte-range locks).
pub fn lock_key(kind: LockKind, ino: Ino, owner: LockOwner) -> Vec<u8> {
    u64s_key(kind.tag(), &[ino.0, owner.sid, owner.owner])
}
/// `F{ino}` / `P{ino}`: prefix of the lock records of `ino`.
pub fn lock_prefix(kind: LockKind, ino: Ino) -> Vec<u8> {
    u64s_key(kind.tag(), &[ino.0])
}
/// Parses a lock key of `kind`.
pub fn parse_lock_key(kind: LockKind, key: &[u8]) -> Option<(Ino, LockOwner)> {
    parse_u64s::<3>(key, kind.tag()).map(|[i, sid, owner]| (Ino(i), LockOwner { sid, owner }))
}
