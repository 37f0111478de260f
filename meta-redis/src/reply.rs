//! Turning reply values into meta's types.

use meta_core::kv::{decode_attr, decode_entry};
use meta_core::{Attr, Counter, DirStat, Entry, Error, ErrorKind, Ino, Quota, Result};
use redis::Value;

/// The cursor and keys of a `SCAN` reply.
pub(crate) fn parse_scan(v: Value) -> Result<(u64, Vec<Vec<u8>>)> {
    let bad = || Error::new(ErrorKind::Internal, "redis: unexpected SCAN reply");
    let Value::Array(mut parts) = v else {
        return Err(bad());
    };
    if parts.len() != 2 {
        return Err(bad());
    }
    let keys = parts.pop().ok_or_else(bad)?;
    let cursor = parts.pop().ok_or_else(bad)?;
    let cursor = match cursor {
        Value::BulkString(b) => std::str::from_utf8(&b)
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or_else(bad)?,
        Value::Int(n) => n as u64,
        _ => return Err(bad()),
    };
    let Value::Array(keys) = keys else {
        return Err(bad());
    };
    let keys = keys
        .into_iter()
        .filter_map(|k| match k {
            Value::BulkString(b) => Some(b),
            _ => None,
        })
        .collect();
    Ok((cursor, keys))
}

pub(crate) fn internal(what: impl Into<String>) -> Error {
    Error::new(ErrorKind::Internal, what)
}

/// A reply value as bytes: `None` for nil; a server error in a read reply is classified.
pub(crate) fn bytes(v: Value, what: &str) -> Result<Option<Vec<u8>>> {
    match v {
        Value::Nil => Ok(None),
        Value::BulkString(b) => Ok(Some(b)),
        Value::SimpleString(s) => Ok(Some(s.into_bytes())),
        Value::Okay => Ok(Some(b"OK".to_vec())),
        Value::Int(n) => Ok(Some(n.to_string().into_bytes())),
        Value::ServerError(e) if e.code() == "WRONGTYPE" => Err(Error::new(
            ErrorKind::Corrupted,
            format!("{what}: a key holds the wrong Redis type"),
        )),
        Value::ServerError(e) => Err(Error::new(
            ErrorKind::Unavailable,
            format!("{what}: redis: {} {}", e.code(), e.details().unwrap_or("")),
        )),
        other => Err(internal(format!("{what}: unexpected reply {other:?}"))),
    }
}

/// A reply value as a list (array, set or flattened map).
pub(crate) fn list(v: Value, what: &str) -> Result<Vec<Value>> {
    match v {
        Value::Array(a) | Value::Set(a) => Ok(a),
        Value::Map(m) => Ok(m.into_iter().flat_map(|(k, v)| [k, v]).collect()),
        Value::Nil => Ok(Vec::new()),
        other => {
            bytes(other, what)?;
            Err(internal(format!("{what}: expected a list")))
        }
    }
}

pub(crate) fn attr_of(v: Value, ino: Ino) -> Result<Option<Attr>> {
    bytes(v, "attributes")?
        .map(|b| decode_attr(&b).map_err(|e| e.context_prefix(format!("inode {ino}"))))
        .transpose()
}

pub(crate) fn counter_of(v: Value, c: Counter) -> Result<i64> {
    match bytes(v, c.name())? {
        None => Ok(0),
        Some(b) => std::str::from_utf8(&b)
            .ok()
            .and_then(|s| s.parse::<i64>().ok())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Corrupted,
                    format!("counter {} is not an integer", c.name()),
                )
            }),
    }
}

/// The i64 at byte `8 * i` of `rec` (which holds it).
fn i64_at(rec: &[u8], i: usize) -> i64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&rec[8 * i..8 * i + 8]);
    i64::from_be_bytes(x)
}

/// A directory's statistics record from an `HMGET` of the statistics hash (see
/// `Layout::dir_stats`: three big-endian i64, inodes, length, space, then the parent, which
/// a record from before directory quotas lacks): zeros when missing. Errors: `Corrupted`
/// (naming the directory) for a value that is neither 32 nor 24 bytes.
pub(crate) fn dir_stat_of(v: Value, dir: Ino) -> Result<DirStat> {
    let Some(b) = bytes(v, "directory statistics")? else {
        return Ok(DirStat::default());
    };
    if b.len() != 32 && b.len() != 24 {
        return Err(Error::new(
            ErrorKind::Corrupted,
            format!(
                "directory {dir}: undecodable statistics record ({} bytes, not 32 or 24)",
                b.len()
            ),
        ));
    }
    Ok(DirStat {
        inodes: i64_at(&b, 0),
        length: i64_at(&b, 1),
        space: i64_at(&b, 2),
    })
}

/// Directory `dir`'s quota record (see `Layout::quotas`: `max_space`, `max_inodes`, then the
/// usage's inodes, length, space, big-endian). Errors: `Corrupted` (naming the directory)
/// for a value that is not 40 bytes.
pub(crate) fn quota_of(rec: &[u8], dir: Ino) -> Result<Quota> {
    if rec.len() != 40 {
        return Err(Error::new(
            ErrorKind::Corrupted,
            format!(
                "quota of directory {dir}: undecodable record ({} bytes, not 40)",
                rec.len()
            ),
        ));
    }
    Ok(Quota {
        max_space: i64_at(rec, 0) as u64,
        max_inodes: i64_at(rec, 1) as u64,
        used: DirStat {
            inodes: i64_at(rec, 2),
            length: i64_at(rec, 3),
            space: i64_at(rec, 4),
        },
    })
}

/// Splits an entry member `name \0 entry` and decodes the entry.
pub(crate) fn split_member(m: &[u8]) -> Result<(Vec<u8>, Entry)> {
    let z = m
        .iter()
        .position(|&b| b == 0)
        .ok_or_else(|| Error::new(ErrorKind::Corrupted, "entry without a name separator"))?;
    let name = m[..z].to_vec();
    let e = decode_entry(&m[z + 1..])
        .map_err(|e| e.context_prefix(format!("entry {}", meta_core::types::show_name(&name))))?;
    Ok((name, e))
}

pub(crate) fn zero_inode() -> Error {
    Error::new(ErrorKind::InvalidArgument, "inode 0 is never valid")
}

pub(crate) fn not_found(what: impl Into<String>) -> Error {
    Error::new(ErrorKind::NotFound, what)
}

pub(crate) fn take(v: &mut Vec<Value>) -> Value {
    if v.is_empty() {
        Value::Nil
    } else {
        v.remove(0)
    }
}

/// Fuzzing of reply decoding (proptest): arbitrary reply trees must decode to a value or an
/// error, never a panic. `META_FUZZ_CASES` sets the inputs (default 10,000, what CI runs);
/// `META_FUZZ_CASES=1000000 cargo test --release -p meta-redis --lib fuzz` is the long run.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Nil),
            any::<i64>().prop_map(Value::Int),
            proptest::collection::vec(any::<u8>(), 0..90).prop_map(Value::BulkString),
            "[ -~]{0,20}".prop_map(Value::SimpleString),
            Just(Value::Okay),
        ];
        leaf.prop_recursive(3, 24, 6, |inner| {
            proptest::collection::vec(inner, 0..6).prop_map(Value::Array)
        })
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
        fn reply_decoding_never_panics(v in value(), m in proptest::collection::vec(any::<u8>(), 0..48)) {
            let _ = parse_scan(v.clone());
            let _ = bytes(v.clone(), "fuzz");
            let _ = list(v.clone(), "fuzz");
            let _ = attr_of(v.clone(), Ino(2));
            let _ = counter_of(v.clone(), Counter::UsedSpace);
            let _ = dir_stat_of(v, Ino(2));
            let _ = split_member(&m);
            let _ = quota_of(&m, Ino(2));
        }
    }
}
