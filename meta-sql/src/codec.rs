//! Rows ↔ meta-core types. Integers are BIGINT columns; `u64` values (inode numbers, slice
//! IDs) are stored as their two's-complement `i64` bit pattern, so every ID the counters hand
//! out (≤ `i64::MAX`) reads the same in SQL. Anything a decoder cannot accept (an unknown
//! type code, a NULL where a value is required, an out-of-range field, a slice list whose
//! length is not a multiple of 24) is a `Corrupted` error naming the record.

use meta_core::types::{MAX_SYMLINK_LEN, MAX_XATTR_VALUE_LEN};
use meta_core::{
    Attr, DirStat, Entry, Error, ErrorKind, FileType, Ino, Quota, Result, Slice, Timespec,
};

use crate::exec::{Arg, Ty, Val};

/// Columns of the `node` table, in the order every statement uses.
pub(crate) const NODE_COLS: [&str; 16] = [
    "ino",
    "type",
    "mode",
    "uid",
    "gid",
    "rdev",
    "atime_sec",
    "atime_nsec",
    "mtime_sec",
    "mtime_nsec",
    "ctime_sec",
    "ctime_nsec",
    "nlink",
    "length",
    "parent",
    "flags",
];

/// Result types of the node columns.
pub(crate) const NODE_TYS: [Ty; 16] = [Ty::Int; 16];

/// Encoded size of one slice in a `chunk.slices` value, in bytes.
pub(crate) const SLICE_BYTES: usize = 24;

pub(crate) fn corrupted(what: impl Into<String>) -> Error {
    Error::new(ErrorKind::Corrupted, what)
}

/// `ino` as stored.
pub(crate) fn ino_arg(ino: Ino) -> Arg {
    Arg::Int(ino.0 as i64)
}

/// An `i64` as read back into a `u64` ID.
pub(crate) fn id_of(v: i64) -> u64 {
    v as u64
}

/// The integer in `v`; `Corrupted` for NULL or another type.
pub(crate) fn int(v: &Val, what: &str) -> Result<i64> {
    match v {
        Val::Int(i) => Ok(*i),
        Val::Null => Err(corrupted(format!("{what} is NULL"))),
        other => Err(corrupted(format!("{what}: unexpected value {other:?}"))),
    }
}

/// The integer in `v` converted to `T` (range-checked).
pub(crate) fn num<T: TryFrom<i64>>(v: &Val, what: &str) -> Result<T> {
    let i = int(v, what)?;
    T::try_from(i).map_err(|_| corrupted(format!("{what} = {i} is out of range")))
}

/// The bytes in `v`; `Corrupted` for NULL.
pub(crate) fn bytes(v: &Val, what: &str) -> Result<Vec<u8>> {
    match v {
        Val::Bytes(b) => Ok(b.clone()),
        Val::Text(s) => Ok(s.as_bytes().to_vec()),
        Val::Null => Err(corrupted(format!("{what} is NULL"))),
        Val::Int(_) => Err(corrupted(format!("{what}: unexpected integer"))),
    }
}

/// The text in `v`; `Corrupted` for NULL.
pub(crate) fn text(v: &Val, what: &str) -> Result<String> {
    match v {
        Val::Text(s) => Ok(s.clone()),
        Val::Bytes(b) => {
            String::from_utf8(b.clone()).map_err(|_| corrupted(format!("{what} is not UTF-8")))
        }
        Val::Null => Err(corrupted(format!("{what} is NULL"))),
        Val::Int(_) => Err(corrupted(format!("{what}: unexpected integer"))),
    }
}

fn file_type(v: &Val, what: &str) -> Result<FileType> {
    let code: u8 = num(v, what)?;
    FileType::from_code(code).map_err(|e| e.context_prefix(what))
}

fn time(sec: &Val, nsec: &Val, what: &str) -> Result<Timespec> {
    Timespec::new(int(sec, what)?, num(nsec, what)?)
        .map_err(|_| corrupted(format!("{what}: nanoseconds out of range")))
}

/// The 16 column values of a node row.
pub(crate) fn node_args(ino: Ino, a: &Attr) -> Vec<Arg> {
    vec![
        ino_arg(ino),
        Arg::Int(i64::from(a.typ.code())),
        Arg::Int(i64::from(a.mode)),
        Arg::Int(i64::from(a.uid)),
        Arg::Int(i64::from(a.gid)),
        Arg::Int(i64::from(a.rdev)),
        Arg::Int(a.atime.sec),
        Arg::Int(i64::from(a.atime.nsec)),
        Arg::Int(a.mtime.sec),
        Arg::Int(i64::from(a.mtime.nsec)),
        Arg::Int(a.ctime.sec),
        Arg::Int(i64::from(a.ctime.nsec)),
        Arg::Int(i64::from(a.nlink)),
        Arg::Int(a.length as i64),
        ino_arg(a.parent),
        Arg::Int(i64::from(a.flags)),
    ]
}

/// The inode number of a node row (its first column); `None` when NULL (an outer join
/// without a match).
pub(crate) fn node_ino(v: &[Val]) -> Option<Ino> {
    match v.first() {
        Some(Val::Int(i)) => Some(Ino(id_of(*i))),
        _ => None,
    }
}

/// Decodes the 16 columns of a node row (the inode number is not checked here).
pub(crate) fn node_attr(v: &[Val]) -> Result<Attr> {
    if v.len() < NODE_COLS.len() {
        return Err(corrupted("node row: too few columns"));
    }
    let ino = node_ino(v).map_or(0, |i| i.0);
    let what = |c: &str| format!("inode {ino}: {c}");
    let mode: u16 = num(&v[2], &what("mode"))?;
    if mode > 0o7777 {
        return Err(corrupted(what("mode has bits beyond 0o7777")));
    }
    let length: i64 = int(&v[13], &what("length"))?;
    if length < 0 {
        return Err(corrupted(what("negative length")));
    }
    let a = Attr {
        typ: file_type(&v[1], &what("type"))?,
        mode,
        uid: num(&v[3], &what("uid"))?,
        gid: num(&v[4], &what("gid"))?,
        rdev: num(&v[5], &what("rdev"))?,
        atime: time(&v[6], &v[7], &what("atime"))?,
        mtime: time(&v[8], &v[9], &what("mtime"))?,
        ctime: time(&v[10], &v[11], &what("ctime"))?,
        nlink: num(&v[12], &what("nlink"))?,
        length: length as u64,
        parent: Ino(id_of(int(&v[14], &what("parent"))?)),
        flags: num(&v[15], &what("flags"))?,
    };
    // The ranges a write can produce, as the KV codec checks them (one rule).
    meta_core::logic::check_record(&a).map_err(|e| corrupted(what(e.context())))?;
    Ok(a)
}

/// Decodes an entry from its `(ino, type)` columns; `None` when `ino` is NULL (no match).
pub(crate) fn entry(ino: &Val, typ: &Val, what: &str) -> Result<Option<Entry>> {
    if *ino == Val::Null {
        return Ok(None);
    }
    let i = Ino(id_of(int(ino, what)?));
    if i == Ino::ZERO {
        return Err(corrupted(format!("{what}: points to inode 0")));
    }
    Ok(Some(Entry {
        ino: i,
        typ: file_type(typ, what)?,
    }))
}

/// Decodes a directory statistics row `(ino, inodes, length, space)` (the statistics
/// columns of its `node` row, NULL read as 0) into the directory and its
/// statistics; `Corrupted` for a NULL or non-integer column (or a row that is too short).
pub(crate) fn dir_stat(v: &[Val]) -> Result<(Ino, DirStat)> {
    let [ino, inodes, length, space] = v else {
        return Err(corrupted(format!(
            "directory statistics row with {} columns",
            v.len()
        )));
    };
    let dir = Ino(id_of(int(ino, "directory statistics inode")?));
    let what = |c: &str| format!("statistics of directory {dir}: {c}");
    Ok((
        dir,
        DirStat {
            inodes: int(inodes, &what("inodes"))?,
            length: int(length, &what("length"))?,
            space: int(space, &what("space"))?,
        },
    ))
}

/// Columns of the `quota` table, in the order every statement uses (key first).
pub(crate) const QUOTA_COLS: [&str; 6] = [
    "ino",
    "max_space",
    "max_inodes",
    "used_inodes",
    "used_length",
    "used_space",
];

/// The six column values of a `quota` row: the limits as their `i64` bit pattern (every
/// `u64` limit reads back as itself), the usage as is.
pub(crate) fn quota_args(dir: Ino, q: &Quota) -> Vec<Arg> {
    vec![
        ino_arg(dir),
        Arg::Int(q.max_space as i64),
        Arg::Int(q.max_inodes as i64),
        Arg::Int(q.used.inodes),
        Arg::Int(q.used.length),
        Arg::Int(q.used.space),
    ]
}

/// Decodes a `quota` row (the columns of [`QUOTA_COLS`]) into the directory and its quota;
/// `Corrupted` for a NULL or non-integer column, a row of another width, or inode 0.
pub(crate) fn quota(v: &[Val]) -> Result<(Ino, Quota)> {
    let [ino, max_space, max_inodes, inodes, length, space] = v else {
        return Err(corrupted(format!("quota row with {} columns", v.len())));
    };
    let dir = Ino(id_of(int(ino, "quota inode")?));
    if dir == Ino::ZERO {
        return Err(corrupted("a quota row names inode 0"));
    }
    let what = |c: &str| format!("quota of directory {dir}: {c}");
    Ok((
        dir,
        Quota {
            max_space: id_of(int(max_space, &what("max_space"))?),
            max_inodes: id_of(int(max_inodes, &what("max_inodes"))?),
            used: DirStat {
                inodes: int(inodes, &what("used_inodes"))?,
                length: int(length, &what("used_length"))?,
                space: int(space, &what("used_space"))?,
            },
        },
    ))
}

/// Encodes slices as stored in `chunk.slices`: 24 bytes each, big-endian
/// `pos:u32 id:u64 size:u32 off:u32 len:u32`, in write order.
pub(crate) fn encode_slices(slices: &[Slice]) -> Vec<u8> {
    let mut out = Vec::with_capacity(SLICE_BYTES * slices.len());
    for s in slices {
        meta_core::kv::encode_slice(&mut out, s);
    }
    out
}

fn be32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(b);
    u32::from_be_bytes(a)
}

/// Decodes a `chunk.slices` value.
pub(crate) fn decode_slices(v: &Val, what: &str) -> Result<Vec<Slice>> {
    let b = bytes(v, what)?;
    if b.len() % SLICE_BYTES != 0 {
        return Err(corrupted(format!(
            "{what}: {} bytes is not a multiple of {SLICE_BYTES}",
            b.len()
        )));
    }
    let slices: Vec<Slice> = b
        .chunks_exact(SLICE_BYTES)
        .map(|c| {
            let mut id = [0u8; 8];
            id.copy_from_slice(&c[4..12]);
            Slice {
                pos: be32(&c[0..4]),
                id: u64::from_be_bytes(id),
                size: be32(&c[12..16]),
                off: be32(&c[16..20]),
                len: be32(&c[20..24]),
            }
        })
        .collect();
    // The slice rules of write, as the KV codec checks them (one rule).
    for s in &slices {
        meta_core::logic::check_write(0, s)
            .map_err(|e| corrupted(format!("{what}: {}", e.context())))?;
    }
    Ok(slices)
}

/// Decodes a symlink target (NULL or longer than 4096 bytes is corrupted).
pub(crate) fn symlink_target(v: &Val, ino: Ino) -> Result<Vec<u8>> {
    let what = format!("symlink target of inode {ino}");
    let b = bytes(v, &what)?;
    if b.len() > MAX_SYMLINK_LEN {
        return Err(corrupted(format!("{what}: {} bytes", b.len())));
    }
    Ok(b)
}

/// Decodes an xattr value (NULL or larger than 64 KiB is corrupted).
pub(crate) fn xattr_value(v: &Val, ino: Ino) -> Result<Vec<u8>> {
    let what = format!("xattr value of inode {ino}");
    let b = bytes(v, &what)?;
    if b.len() > MAX_XATTR_VALUE_LEN {
        return Err(corrupted(format!("{what}: {} bytes", b.len())));
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_round_trip_and_garbage() {
        let a = Attr {
            typ: FileType::Symlink,
            mode: 0o4755,
            uid: u32::MAX,
            gid: 7,
            rdev: 9,
            atime: Timespec { sec: -5, nsec: 1 },
            mtime: Timespec {
                sec: 1_700_000_000,
                nsec: 999_999_999,
            },
            ctime: Timespec::default(),
            nlink: 3,
            length: 1 << 54,
            parent: Ino(u64::MAX),
            flags: 1,
        };
        let vals: Vec<Val> = node_args(Ino(u64::MAX - 1), &a)
            .into_iter()
            .map(|x| match x {
                Arg::Int(i) => Val::Int(i),
                _ => Val::Null,
            })
            .collect();
        assert_eq!(node_ino(&vals), Some(Ino(u64::MAX - 1)));
        assert_eq!(node_attr(&vals).unwrap(), a);
        for (col, bad) in [(1, 99), (2, 0o17777), (3, -1), (7, 1_000_000_000), (13, -1)] {
            let mut v = vals.clone();
            v[col] = Val::Int(bad);
            assert_eq!(
                node_attr(&v).unwrap_err().kind(),
                ErrorKind::Corrupted,
                "{col}"
            );
        }
        let mut v = vals;
        v[12] = Val::Null;
        assert_eq!(node_attr(&v).unwrap_err().kind(), ErrorKind::Corrupted);
    }

    #[test]
    fn quota_round_trip_and_garbage() {
        let q = Quota {
            max_space: u64::MAX,
            max_inodes: 1 << 63,
            used: DirStat {
                inodes: -1,
                length: i64::MAX,
                space: 4096,
            },
        };
        let vals: Vec<Val> = quota_args(Ino(u64::MAX), &q)
            .into_iter()
            .map(|x| match x {
                Arg::Int(i) => Val::Int(i),
                _ => Val::Null,
            })
            .collect();
        assert_eq!(quota(&vals).unwrap(), (Ino(u64::MAX), q));
        for col in 0..6 {
            let mut v = vals.clone();
            v[col] = Val::Null;
            assert_eq!(quota(&v).unwrap_err().kind(), ErrorKind::Corrupted, "{col}");
            v[col] = Val::Bytes(vec![1]);
            assert_eq!(quota(&v).unwrap_err().kind(), ErrorKind::Corrupted, "{col}");
        }
        assert!(quota(&vals[..5]).is_err());
        let mut zero = vals;
        zero[0] = Val::Int(0);
        assert!(quota(&zero).is_err());
    }

    #[test]
    fn slices_round_trip_and_garbage() {
        let s = vec![
            Slice {
                pos: 1,
                id: u64::MAX,
                size: 9,
                off: 4,
                len: 5,
            },
            Slice {
                pos: 0,
                id: 0,
                size: 0,
                off: 0,
                len: 0,
            },
        ];
        let b = encode_slices(&s);
        assert_eq!(b.len(), 48);
        assert_eq!(decode_slices(&Val::Bytes(b), "c").unwrap(), s);
        // A slice that reads past its object is damage (the write rules, as on KV).
        let past = encode_slices(&[Slice { size: 3, ..s[0] }]);
        let e = decode_slices(&Val::Bytes(past), "c").unwrap_err();
        assert_eq!(e.kind(), meta_core::ErrorKind::Corrupted, "{e}");
        assert!(decode_slices(&Val::Bytes(vec![1; 25]), "c").is_err());
        assert!(decode_slices(&Val::Null, "c").is_err());
        assert!(entry(&Val::Int(0), &Val::Int(1), "e").is_err());
        assert!(entry(&Val::Int(5), &Val::Int(99), "e").is_err());
        assert_eq!(entry(&Val::Null, &Val::Null, "e").unwrap(), None);
    }
}

/// Fuzzing of row decoding (proptest): arbitrary column values must decode to a value or an
/// error, never a panic. `META_FUZZ_CASES` sets the inputs (default 10,000, what CI runs);
/// `META_FUZZ_CASES=1000000 cargo test --release -p meta-sql --lib fuzz` is the long run.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn val() -> impl Strategy<Value = Val> {
        prop_oneof![
            Just(Val::Null),
            any::<i64>().prop_map(Val::Int),
            prop_oneof![Just(0i64), Just(1), Just(-1), Just(i64::MAX), Just(1 << 54)]
                .prop_map(Val::Int),
            proptest::collection::vec(any::<u8>(), 0..120).prop_map(Val::Bytes),
            "\\PC{0,20}".prop_map(Val::Text),
        ]
    }

    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: meta_conformance::fuzz_cases(),
            failure_persistence: None,
            ..ProptestConfig::default()
        }
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn row_decoding_never_panics(row in proptest::collection::vec(val(), 0..16)) {
            let _ = node_ino(&row);
            let _ = node_attr(&row);
            if let [a, b, ..] = row.as_slice() {
                let _ = entry(a, b, "fuzz");
                let _ = int(a, "fuzz");
                let _ = bytes(a, "fuzz");
                let _ = text(a, "fuzz");
                let _ = decode_slices(a, "fuzz");
                let _ = symlink_target(a, Ino(2));
                let _ = xattr_value(a, Ino(2));
            }
            let _ = quota(&row);
            let _ = dir_stat(&row);
        }
    }
}
