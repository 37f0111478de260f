//! Sessions, open files and locks: the data model and the pure rules every backend shares.
//!
//! - A **session** is one client of a volume (a read-write [`crate::Meta`]). It has an ID from
//!   the `nextSession` counter, a description ([`SessionInfo`]) and an expiry refreshed by a
//!   heartbeat. A session whose expiry passed is cleaned by any other client: its open files
//!   are released and its locks dropped, in one atomic op ([`crate::Op::CloseSession`]).
//!   A session that holds more than one transaction of a store may carry (etcd's
//!   `--max-txn-ops`) is closed in parts instead: the first part *fences* it (its expiry
//!   becomes [`Session::FENCED`], after which its heartbeat is refused, so its client can
//!   never come back to a half-released session), each part releases some of what it holds,
//!   and the last deletes the record.
//! - An **open file** record says "session S holds inode I open". When the last link of an
//!   inode that some session holds open goes (unlink, rmdir, rename over it), the inode is
//!   kept ("sustained"): nlink 0, readable and writable by inode number, in no directory. It
//!   is deleted (its data becomes pending deletion) when the last session releases it.
//! - **Locks**: BSD `flock` (one shared or exclusive lock per owner and inode) and POSIX
//!   byte-range locks (`fcntl` `F_SETLK`/`F_GETLK`), both per [`LockOwner`] (session + the
//!   owner the caller names, e.g. FUSE's `lock_owner`). The two kinds never conflict with each
//!   other, as on Linux. The rules ([`flock_conflict`], [`plock_conflict`], [`plock_update`])
//!   are pure functions here; each backend decides conflicts atomically with them (or, for
//!   Redis, checks in its script that what they were computed from did not change).
//!
//! Stored encodings shared by the backends that keep lock records as bytes:
//! [`encode_plocks`] / [`decode_plocks`] (21 bytes per range after a version byte) and
//! [`LockType::code`] for a flock.

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorKind, Result};
use crate::types::Timespec;

/// A session ID (from the `nextSession` counter; 0 is never a session).
pub type Sid = u64;

/// What a session says about itself (shown by `meta status`, like `juicefs status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    /// The session ID.
    pub sid: Sid,
    /// Host name of the client.
    pub host: String,
    /// Process ID of the client.
    pub pid: u32,
    /// Version of meta the client runs (`CARGO_PKG_VERSION` of meta-core).
    pub version: String,
    /// When the session started.
    pub started: Timespec,
    /// Free text the client chose (e.g. the mount point); may be empty.
    #[serde(default)]
    pub label: String,
}

impl SessionInfo {
    /// A description of this process: host name (from `/proc/sys/kernel/hostname` or the
    /// `HOSTNAME` variable, else `"unknown"`), pid, meta's version, start time now.
    pub fn this_process(sid: Sid, label: impl Into<String>) -> SessionInfo {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .unwrap_or_else(|| "unknown".to_string());
        SessionInfo {
            sid,
            host,
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            started: Timespec::now(),
            label: label.into(),
        }
    }

    /// JSON bytes (the stored form of the description).
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Parses the stored JSON. Errors: `Corrupted`.
    pub fn from_json(bytes: &[u8]) -> Result<SessionInfo> {
        serde_json::from_slice(bytes).map_err(|e| {
            Error::new(ErrorKind::Corrupted, "undecodable session record").with_source(e)
        })
    }
}

/// A session as stored: its description and when it expires unless refreshed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    /// The description.
    pub info: SessionInfo,
    /// The session expires at this time unless a heartbeat moves it on.
    pub expire: Timespec,
}

impl Session {
    /// The expiry of a session whose close is under way in parts (the Unix epoch, which no
    /// heartbeat sets: a heartbeat sets now plus five beats): the session stays listed, as
    /// expired, until its last part deletes it, and [`crate::Op::Heartbeat`] refuses it with
    /// ENOENT, as it refuses a session already gone.
    pub const FENCED: Timespec = Timespec { sec: 0, nsec: 0 };

    /// Whether the session is fenced (see [`Session::FENCED`]).
    pub fn is_fenced(&self) -> bool {
        self.expire == Session::FENCED
    }
}

/// What a session holds (for `meta status`, fsck and dump).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SessionHoldings {
    /// Inodes the session holds open, increasing.
    pub open: Vec<crate::types::Ino>,
    /// Its flocks: inode, owner, `Read` or `Write`.
    pub flocks: Vec<(crate::types::Ino, u64, LockType)>,
    /// Its byte-range locks: inode, owner, ranges.
    pub plocks: Vec<(crate::types::Ino, u64, Vec<PlockRange>)>,
}

/// The flocks on one inode: `Read` (shared) or `Write` (exclusive), by owner.
pub type FlockHolders = Vec<(LockOwner, LockType)>;
/// The byte-range locks on one inode, by owner.
pub type PlockHolders = Vec<(LockOwner, Vec<PlockRange>)>;

/// The locks on one inode (see [`crate::Backend::list_locks`]).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct InodeLocks {
    /// flock(2) locks by owner: `Read` (shared) or `Write` (exclusive).
    pub flocks: FlockHolders,
    /// Byte-range locks by owner.
    pub plocks: PlockHolders,
}

/// Who holds a lock: a session and an owner inside it (FUSE's `lock_owner`: for POSIX locks
/// the process's file table, for flock the open file description).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
pub struct LockOwner {
    /// The session.
    pub sid: Sid,
    /// The owner inside the session.
    pub owner: u64,
}

/// A lock request's type (`LOCK_SH`/`LOCK_EX`/`LOCK_UN` of flock(2), `F_RDLCK`/`F_WRLCK`/
/// `F_UNLCK` of fcntl(2)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LockType {
    /// Shared (read) lock.
    Read,
    /// Exclusive (write) lock.
    Write,
    /// Release.
    Unlock,
}

impl LockType {
    /// Stored one-byte code: 1 read, 2 write, 3 unlock.
    pub fn code(self) -> u8 {
        match self {
            LockType::Read => 1,
            LockType::Write => 2,
            LockType::Unlock => 3,
        }
    }

    /// Inverse of [`LockType::code`]; `Corrupted` for another byte.
    pub fn from_code(c: u8) -> Result<LockType> {
        match c {
            1 => Ok(LockType::Read),
            2 => Ok(LockType::Write),
            3 => Ok(LockType::Unlock),
            other => Err(Error::new(
                ErrorKind::Corrupted,
                format!("unknown lock type code {other}"),
            )),
        }
    }

    /// True when a lock of type `self` and one of type `other` held by different owners
    /// cannot coexist (at least one is a write lock; unlock never conflicts).
    pub fn conflicts_with(self, other: LockType) -> bool {
        !matches!(
            (self, other),
            (LockType::Unlock, _) | (_, LockType::Unlock) | (LockType::Read, LockType::Read)
        )
    }

    /// `"read"`, `"write"` or `"unlock"`.
    pub fn name(self) -> &'static str {
        match self {
            LockType::Read => "read",
            LockType::Write => "write",
            LockType::Unlock => "unlock",
        }
    }
}

/// Which kind of lock a record is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum LockKind {
    /// BSD flock(2).
    Flock,
    /// POSIX byte-range lock (fcntl(2)).
    Plock,
}

impl LockKind {
    /// Stored one-byte tag: `F` or `P`.
    pub fn tag(self) -> u8 {
        match self {
            LockKind::Flock => b'F',
            LockKind::Plock => b'P',
        }
    }

    /// Inverse of [`LockKind::tag`]; `Corrupted` for another byte.
    pub fn from_tag(t: u8) -> Result<LockKind> {
        match t {
            b'F' => Ok(LockKind::Flock),
            b'P' => Ok(LockKind::Plock),
            other => Err(Error::new(
                ErrorKind::Corrupted,
                format!("unknown lock kind tag {other}"),
            )),
        }
    }
}

/// One byte-range lock of an owner: bytes `start..=end` (both inclusive; `end` = `u64::MAX`
/// means "to the end of the file, however long", fcntl's `l_len = 0`), its type (`Read` or
/// `Write`) and the pid fcntl's `F_GETLK` reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PlockRange {
    /// First byte, inclusive.
    pub start: u64,
    /// Last byte, inclusive.
    pub end: u64,
    /// `Read` or `Write`.
    pub typ: LockType,
    /// The process that set it.
    pub pid: u32,
}

impl PlockRange {
    fn overlaps(&self, start: u64, end: u64) -> bool {
        self.start <= end && start <= self.end
    }
}

/// Checks a byte range of a lock request: `start <= end` (`InvalidArgument` otherwise, as
/// fcntl(2) gives EINVAL for a range that ends before it starts).
pub fn check_range(start: u64, end: u64) -> Result<()> {
    if start > end {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("lock range starts at {start} after its end {end}"),
        ));
    }
    Ok(())
}

/// The first flock of another owner that a request of type `typ` by `me` conflicts with
/// (flock(2): a shared lock conflicts with another owner's exclusive lock, an exclusive lock
/// with any other owner's lock; an owner never conflicts with itself; unlock never
/// conflicts).
pub fn flock_conflict(
    held: &[(LockOwner, LockType)],
    me: LockOwner,
    typ: LockType,
) -> Option<(LockOwner, LockType)> {
    held.iter()
        .find(|(o, t)| *o != me && typ.conflicts_with(*t))
        .copied()
}

/// The first byte-range lock of another owner that a request by `me` of type `typ` over
/// `start..=end` conflicts with (fcntl(2): overlapping ranges of different owners where at
/// least one is a write lock). Locks of `me` never conflict with the request.
pub fn plock_conflict(
    held: &[(LockOwner, Vec<PlockRange>)],
    me: LockOwner,
    typ: LockType,
    start: u64,
    end: u64,
) -> Option<(LockOwner, PlockRange)> {
    held.iter()
        .filter(|(o, _)| *o != me)
        .flat_map(|(o, ranges)| ranges.iter().map(move |r| (*o, *r)))
        .find(|(_, r)| r.overlaps(start, end) && typ.conflicts_with(r.typ))
}

/// An owner's ranges after it sets `start..=end` to `typ` (fcntl(2) `F_SETLK`): the new
/// range replaces whatever the owner held there (ranges it cuts are split, e.g. unlocking
/// 40..=60 of 0..=100 leaves 0..=39 and 61..=100), and ranges of the same type that overlap
/// or touch are merged into one, as Linux does. The result is sorted by `start`.
pub fn plock_update(
    mine: &[PlockRange],
    typ: LockType,
    start: u64,
    end: u64,
    pid: u32,
) -> Vec<PlockRange> {
    let mut out: Vec<PlockRange> = Vec::with_capacity(mine.len() + 2);
    for r in mine {
        if !r.overlaps(start, end) {
            out.push(*r);
            continue;
        }
        if r.start < start {
            out.push(PlockRange {
                end: start - 1,
                ..*r
            });
        }
        if r.end > end {
            out.push(PlockRange {
                start: end + 1,
                ..*r
            });
        }
    }
    if typ != LockType::Unlock {
        out.push(PlockRange {
            start,
            end,
            typ,
            pid,
        });
    }
    out.sort_by_key(|r| r.start);
    let mut merged: Vec<PlockRange> = Vec::with_capacity(out.len());
    for r in out {
        if let Some(last) = merged.last_mut()
            && last.typ == r.typ
            && last.end.checked_add(1).is_none_or(|next| next >= r.start)
        {
            if r.end > last.end {
                last.end = r.end;
            }
            // The lock just set names the process F_GETLK reports for the merged range.
            if r.start >= start && r.end <= end {
                last.pid = r.pid;
            }
            continue;
        }
        merged.push(r);
    }
    merged
}

/// What a flock request does to `owner`'s lock on `ino`, given the flocks held there
/// (the rule of [`crate::Op::Flock`], decided once for every backend): `Ok(None)` when
/// nothing changes, `Ok(Some(t))` to store `t` (`Unlock` removes the record). Errors:
/// `WouldBlock` naming the conflicting owner.
pub fn flock_decision(
    held: &[(LockOwner, LockType)],
    ino: crate::types::Ino,
    owner: LockOwner,
    typ: LockType,
) -> Result<Option<LockType>> {
    if let Some((o, t)) = flock_conflict(held, owner, typ) {
        return Err(Error::new(
            ErrorKind::WouldBlock,
            format!(
                "flock of inode {ino}: session {} owner {} holds a {} lock",
                o.sid,
                o.owner,
                t.name()
            ),
        ));
    }
    let mine = held.iter().find(|(o, _)| *o == owner).map(|(_, t)| *t);
    let want = (typ != LockType::Unlock).then_some(typ);
    Ok((mine != want).then_some(typ))
}

/// What an `F_SETLK` request does to `owner`'s ranges on `ino`, given the ranges held there
/// (the rule of [`crate::Op::Setlk`]): `Ok(None)` when nothing changes, `Ok(Some(r))` to
/// store `r` (empty removes the record). Errors: `InvalidArgument` when `start > end`,
/// `WouldBlock` naming the conflicting range.
pub fn setlk_decision(
    held: &[(LockOwner, Vec<PlockRange>)],
    ino: crate::types::Ino,
    owner: LockOwner,
    typ: LockType,
    (start, end): (u64, u64),
    pid: u32,
) -> Result<Option<Vec<PlockRange>>> {
    check_range(start, end)?;
    if let Some((o, r)) = plock_conflict(held, owner, typ, start, end) {
        return Err(Error::new(
            ErrorKind::WouldBlock,
            format!(
                "lock {start}..={end} of inode {ino}: session {} owner {} (pid {}) holds {}..={} {}",
                o.sid,
                o.owner,
                r.pid,
                r.start,
                r.end,
                r.typ.name()
            ),
        ));
    }
    let mine: &[PlockRange] = held
        .iter()
        .find(|(o, _)| *o == owner)
        .map(|(_, r)| r.as_slice())
        .unwrap_or(&[]);
    let new = plock_update(mine, typ, start, end, pid);
    Ok((new != mine).then_some(new))
}

/// Version byte of an encoded range list.
const PLOCK_VERSION: u8 = 1;
/// Encoded size of one range: start u64, end u64, type u8, pid u32.
pub const PLOCK_RANGE_BYTES: usize = 21;

/// Encodes an owner's ranges: a version byte, then per range `start` and `end` (u64), the
/// type code (u8) and the pid (u32), big-endian.
pub fn encode_plocks(ranges: &[PlockRange]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + PLOCK_RANGE_BYTES * ranges.len());
    v.push(PLOCK_VERSION);
    for r in ranges {
        v.extend_from_slice(&r.start.to_be_bytes());
        v.extend_from_slice(&r.end.to_be_bytes());
        v.push(r.typ.code());
        v.extend_from_slice(&r.pid.to_be_bytes());
    }
    v
}

/// Decodes [`encode_plocks`]'s bytes. Errors: `Corrupted` for a bad version, length, type
/// (only `Read`/`Write` may be stored) or a range that ends before it starts.
pub fn decode_plocks(buf: &[u8]) -> Result<Vec<PlockRange>> {
    let bad = |why: String| Error::new(ErrorKind::Corrupted, format!("plock record: {why}"));
    let Some((&ver, body)) = buf.split_first() else {
        return Err(bad("empty".into()));
    };
    if ver != PLOCK_VERSION {
        return Err(bad(format!("unknown version {ver}")));
    }
    if body.len() % PLOCK_RANGE_BYTES != 0 {
        return Err(bad(format!(
            "{} bytes is not a multiple of {PLOCK_RANGE_BYTES}",
            body.len()
        )));
    }
    body.chunks_exact(PLOCK_RANGE_BYTES)
        .map(|c| {
            let u64_at = |i: usize| {
                let mut b = [0u8; 8];
                b.copy_from_slice(&c[i..i + 8]);
                u64::from_be_bytes(b)
            };
            let (start, end) = (u64_at(0), u64_at(8));
            let typ = LockType::from_code(c[16])?;
            if typ == LockType::Unlock || start > end {
                return Err(bad(format!("bad range {start}..={end} {}", typ.name())));
            }
            let mut p = [0u8; 4];
            p.copy_from_slice(&c[17..21]);
            Ok(PlockRange {
                start,
                end,
                typ,
                pid: u32::from_be_bytes(p),
            })
        })
        .collect()
}

/// Decodes a stored flock type (one byte, `Read` or `Write`). Errors: `Corrupted`.
pub fn decode_flock(buf: &[u8]) -> Result<LockType> {
    match buf {
        [c] => match LockType::from_code(*c)? {
            LockType::Unlock => Err(Error::new(
                ErrorKind::Corrupted,
                "flock record holds an unlock",
            )),
            t => Ok(t),
        },
        _ => Err(Error::new(
            ErrorKind::Corrupted,
            format!("flock record of {} bytes", buf.len()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: LockOwner = LockOwner { sid: 1, owner: 1 };
    const B: LockOwner = LockOwner { sid: 2, owner: 1 };
    const A2: LockOwner = LockOwner { sid: 1, owner: 2 };

    fn r(start: u64, end: u64, typ: LockType) -> PlockRange {
        PlockRange {
            start,
            end,
            typ,
            pid: 7,
        }
    }

    #[test]
    fn unlock_in_the_middle_splits() {
        let held = plock_update(&[], LockType::Write, 0, 100, 7);
        let after = plock_update(&held, LockType::Unlock, 40, 60, 7);
        assert_eq!(
            after,
            vec![r(0, 39, LockType::Write), r(61, 100, LockType::Write)]
        );
    }

    #[test]
    fn same_type_neighbours_merge_and_other_types_split() {
        let a = plock_update(&[], LockType::Read, 0, 9, 7);
        let b = plock_update(&a, LockType::Read, 10, 19, 7);
        assert_eq!(b, vec![r(0, 19, LockType::Read)], "touching ranges merge");
        let c = plock_update(&b, LockType::Write, 5, 14, 7);
        assert_eq!(
            c,
            vec![
                r(0, 4, LockType::Read),
                r(5, 14, LockType::Write),
                r(15, 19, LockType::Read)
            ]
        );
        let d = plock_update(&c, LockType::Read, 0, 19, 7);
        assert_eq!(d, vec![r(0, 19, LockType::Read)]);
        assert!(plock_update(&d, LockType::Unlock, 0, u64::MAX, 7).is_empty());
    }

    #[test]
    fn ranges_to_the_end_never_overflow() {
        let a = plock_update(&[], LockType::Write, 10, u64::MAX, 7);
        let b = plock_update(&a, LockType::Write, 0, 9, 7);
        assert_eq!(b, vec![r(0, u64::MAX, LockType::Write)]);
        let c = plock_update(&b, LockType::Unlock, u64::MAX, u64::MAX, 7);
        assert_eq!(c, vec![r(0, u64::MAX - 1, LockType::Write)]);
    }

    #[test]
    fn conflict_matrix() {
        let held = vec![(A, vec![r(0, 9, LockType::Read), r(20, 29, LockType::Write)])];
        // Read over read: fine; write over read: conflict; anything over write: conflict.
        assert!(plock_conflict(&held, B, LockType::Read, 0, 9).is_none());
        assert_eq!(
            plock_conflict(&held, B, LockType::Write, 5, 5),
            Some((A, r(0, 9, LockType::Read)))
        );
        assert!(plock_conflict(&held, B, LockType::Read, 25, 40).is_some());
        assert!(plock_conflict(&held, B, LockType::Write, 10, 19).is_none());
        // Another owner of the same session conflicts; the owner itself never does.
        assert!(plock_conflict(&held, A2, LockType::Write, 0, 0).is_some());
        assert!(plock_conflict(&held, A, LockType::Write, 0, 100).is_none());
        assert!(plock_conflict(&held, B, LockType::Unlock, 0, 100).is_none());

        let f = vec![(A, LockType::Read)];
        assert!(flock_conflict(&f, B, LockType::Read).is_none());
        assert!(flock_conflict(&f, B, LockType::Write).is_some());
        assert!(flock_conflict(&f, A, LockType::Write).is_none());
        assert!(flock_conflict(&[(A, LockType::Write)], A2, LockType::Read).is_some());
    }

    #[test]
    fn codecs_round_trip_and_reject_garbage() {
        let v = vec![r(0, 9, LockType::Read), r(20, u64::MAX, LockType::Write)];
        assert_eq!(decode_plocks(&encode_plocks(&v)).unwrap(), v);
        assert_eq!(decode_plocks(&encode_plocks(&[])).unwrap(), vec![]);
        for bad in [
            vec![],
            vec![2],
            vec![1, 0],
            encode_plocks(&[r(9, 0, LockType::Read)]),
            encode_plocks(&[r(0, 9, LockType::Unlock)]),
        ] {
            assert_eq!(
                decode_plocks(&bad).unwrap_err().kind(),
                ErrorKind::Corrupted,
                "{bad:?}"
            );
        }
        assert_eq!(decode_flock(&[2]).unwrap(), LockType::Write);
        assert!(decode_flock(&[3]).is_err() && decode_flock(&[]).is_err());
        assert!(check_range(5, 4).is_err() && check_range(4, 4).is_ok());
    }

    proptest::proptest! {
        /// plock_update agrees with a byte-by-byte model, and its output is sorted, disjoint
        /// and has no touching ranges of the same type.
        #[test]
        fn plock_update_matches_a_byte_model(
            reqs in proptest::collection::vec((0u64..40, 0u64..40, 0u8..3), 1..12)
        ) {
            let mut model = [None::<LockType>; 40];
            let mut ranges: Vec<PlockRange> = Vec::new();
            for (a, b, t) in reqs {
                let (s, e) = (a.min(b), a.max(b));
                let typ = [LockType::Read, LockType::Write, LockType::Unlock][t as usize];
                for slot in &mut model[s as usize..=e as usize] {
                    *slot = (typ != LockType::Unlock).then_some(typ);
                }
                ranges = plock_update(&ranges, typ, s, e, 1);
            }
            let mut seen = [None::<LockType>; 40];
            for w in ranges.windows(2) {
                proptest::prop_assert!(w[0].end < w[1].start);
                proptest::prop_assert!(w[0].typ != w[1].typ || w[0].end + 1 < w[1].start);
            }
            for r in &ranges {
                for slot in &mut seen[r.start as usize..=r.end as usize] {
                    *slot = Some(r.typ);
                }
            }
            proptest::prop_assert_eq!(seen, model);
        }
    }
}
