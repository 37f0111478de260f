//! The values of the KV schema: fixed-width big-endian fields after a version byte.

use crate::error::{Error, Result, err};
use crate::kv::{ATTR_BYTES, ATTR_COMPACT_MIN, ATTR_COMPACT_VERSION, SLICE_BYTES, VALUE_VERSION};
use crate::session::{Session, SessionInfo};
use crate::stats::DirStat;
use crate::types::{Attr, Entry, FileType, Ino, Pending, Setting, Slice, Timespec};

struct Reader<'a> {
    buf: &'a [u8],
    what: &'a str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], what: &'a str) -> Result<Self> {
        match buf.first() {
            Some(&VALUE_VERSION) => Ok(Reader {
                buf: &buf[1..],
                what,
            }),
            Some(v) => Err(err::corrupted(format!("{what}: unknown value version {v}"))),
            None => Err(err::corrupted(format!("{what}: empty value"))),
        }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.buf.len() < n {
            return Err(err::corrupted(format!(
                "{}: value truncated ({} bytes left, {n} needed)",
                self.what,
                self.buf.len()
            )));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        Ok(u16::from_be_bytes(
            self.take(2)?.try_into().map_err(|_| self.bad())?,
        ))
    }
    fn u32(&mut self) -> Result<u32> {
        Ok(u32::from_be_bytes(
            self.take(4)?.try_into().map_err(|_| self.bad())?,
        ))
    }
    fn u64(&mut self) -> Result<u64> {
        Ok(u64::from_be_bytes(
            self.take(8)?.try_into().map_err(|_| self.bad())?,
        ))
    }
    fn time(&mut self) -> Result<Timespec> {
        let sec = self.u64()? as i64;
        let nsec = self.u32()?;
        Timespec::new(sec, nsec)
            .map_err(|_| err::corrupted(format!("{}: bad nanoseconds", self.what)))
    }
    fn bad(&self) -> Error {
        err::corrupted(format!("{}: bad value", self.what))
    }
    fn finish(self) -> Result<()> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(err::corrupted(format!(
                "{}: {} trailing bytes",
                self.what,
                self.buf.len()
            )))
        }
    }
    fn rest(self) -> &'a [u8] {
        self.buf
    }
}

fn put_time(out: &mut Vec<u8>, t: Timespec) {
    out.extend_from_slice(&(t.sec as u64).to_be_bytes());
    out.extend_from_slice(&t.nsec.to_be_bytes());
}

/// Encodes attributes (73 bytes).
pub fn encode_attr(a: &Attr) -> Vec<u8> {
    let mut v = Vec::with_capacity(ATTR_BYTES);
    v.push(VALUE_VERSION);
    v.push(a.typ.code());
    v.extend_from_slice(&a.mode.to_be_bytes());
    v.extend_from_slice(&a.uid.to_be_bytes());
    v.extend_from_slice(&a.gid.to_be_bytes());
    v.extend_from_slice(&a.rdev.to_be_bytes());
    put_time(&mut v, a.atime);
    put_time(&mut v, a.mtime);
    put_time(&mut v, a.ctime);
    v.extend_from_slice(&a.nlink.to_be_bytes());
    v.extend_from_slice(&a.length.to_be_bytes());
    v.extend_from_slice(&a.parent.0.to_be_bytes());
    v.push(a.flags);
    v
}

/// Encodes attributes in the compact form (version [`ATTR_COMPACT_VERSION`], 38 to 74 bytes):
/// the fixed part (version, type, mode u16, uid, gid, nlink u32, flags, a shape byte, ctime as
/// i64 seconds + u32 nanoseconds, parent u64: [`ATTR_COMPACT_MIN`] bytes), then only the fields
/// the shape byte announces, in this order: mtime when it differs from ctime
/// ([`SHAPE_MTIME`]), atime when it differs from mtime ([`SHAPE_ATIME`]), a non-zero length
/// ([`SHAPE_LENGTH`]), a non-zero rdev ([`SHAPE_RDEV`]). A new empty file (three equal times,
/// length 0) takes 38 bytes, which Redis keeps inline with its key object (values of at most
/// 44 bytes are "embstr" strings), 32 bytes less than the 73 of [`encode_attr`].
/// The form is canonical: one attribute record has one encoding of its fields. The shape byte
/// may also carry a backend's hints ([`HINT_NO_XATTRS`], [`HINT_NEVER_OPENED`]), which add no
/// bytes and no attribute; this function never sets them. [`decode_attr`] reads both forms.
pub fn encode_attr_compact(a: &Attr) -> Vec<u8> {
    let mut shape = 0;
    if a.mtime != a.ctime {
        shape |= SHAPE_MTIME;
    }
    if a.atime != a.mtime {
        shape |= SHAPE_ATIME;
    }
    if a.length != 0 {
        shape |= SHAPE_LENGTH;
    }
    if a.rdev != 0 {
        shape |= SHAPE_RDEV;
    }
    let mut v = Vec::with_capacity(ATTR_COMPACT_MIN + 36);
    v.push(ATTR_COMPACT_VERSION);
    v.push(a.typ.code());
    v.extend_from_slice(&a.mode.to_be_bytes());
    v.extend_from_slice(&a.uid.to_be_bytes());
    v.extend_from_slice(&a.gid.to_be_bytes());
    v.extend_from_slice(&a.nlink.to_be_bytes());
    v.push(a.flags);
    v.push(shape);
    put_time(&mut v, a.ctime);
    v.extend_from_slice(&a.parent.0.to_be_bytes());
    if shape & SHAPE_MTIME != 0 {
        put_time(&mut v, a.mtime);
    }
    if shape & SHAPE_ATIME != 0 {
        put_time(&mut v, a.atime);
    }
    if shape & SHAPE_LENGTH != 0 {
        v.extend_from_slice(&a.length.to_be_bytes());
    }
    if shape & SHAPE_RDEV != 0 {
        v.extend_from_slice(&a.rdev.to_be_bytes());
    }
    v
}

/// The compact form's shape bit: mtime is stored (it differs from ctime).
pub const SHAPE_MTIME: u8 = 1;
/// The compact form's shape bit: atime is stored (it differs from mtime).
pub const SHAPE_ATIME: u8 = 2;
/// The compact form's shape bit: the length is stored (it is not 0).
pub const SHAPE_LENGTH: u8 = 4;
/// The compact form's shape bit: rdev is stored (it is not 0).
pub const SHAPE_RDEV: u8 = 8;

/// A hint bit of the compact form's shape byte, not an attribute: the inode has no extended
/// attributes, so deleting it need not delete an xattr key. Set only by a backend that writes
/// the record at the inode's creation and clears the bit at its first `setxattr` (meta-redis);
/// a record without it says nothing. [`decode_attr`] accepts and drops it.
pub const HINT_NO_XATTRS: u8 = 0x10;
/// A hint bit of the compact form's shape byte, not an attribute: no session has ever held
/// the inode open, so removing its last name need not look for openers. Set only by a backend
/// that writes the record at a creation without an opener and clears the bit at the first
/// `open` (meta-redis); a record without it says nothing. [`decode_attr`] accepts and drops it.
pub const HINT_NEVER_OPENED: u8 = 0x20;

fn decode_attr_compact(buf: &[u8]) -> Result<Attr> {
    let mut r = Reader {
        buf: &buf[1..],
        what: "attr",
    };
    let typ = FileType::from_code(r.u8()?)?;
    let mode = r.u16()?;
    let uid = r.u32()?;
    let gid = r.u32()?;
    let nlink = r.u32()?;
    let flags = r.u8()?;
    let shape = r.u8()?;
    let known = SHAPE_MTIME | SHAPE_ATIME | SHAPE_LENGTH | SHAPE_RDEV;
    if shape & !(known | HINT_NO_XATTRS | HINT_NEVER_OPENED) != 0 {
        return Err(err::corrupted(format!(
            "attr: unknown shape bits {shape:#04x}"
        )));
    }
    let ctime = r.time()?;
    let parent = Ino(r.u64()?);
    let mtime = if shape & SHAPE_MTIME != 0 {
        r.time()?
    } else {
        ctime
    };
    let atime = if shape & SHAPE_ATIME != 0 {
        r.time()?
    } else {
        mtime
    };
    let length = if shape & SHAPE_LENGTH != 0 {
        r.u64()?
    } else {
        0
    };
    let rdev = if shape & SHAPE_RDEV != 0 { r.u32()? } else { 0 };
    r.finish()?;
    let a = Attr {
        typ,
        mode,
        uid,
        gid,
        rdev,
        atime,
        mtime,
        ctime,
        nlink,
        length,
        parent,
        flags,
    };
    // One record, one encoding: a field stored although the shape could have left it out
    // was not written by encode_attr_compact.
    if encode_attr_compact(&a).len() != buf.len() {
        return Err(err::corrupted("attr: not in canonical compact form"));
    }
    Ok(a)
}

/// Decodes attributes in either form ([`encode_attr`]'s 73 bytes or
/// [`encode_attr_compact`]'s); `Corrupted` on any malformed input.
pub fn decode_attr(buf: &[u8]) -> Result<Attr> {
    let a = if buf.first() == Some(&ATTR_COMPACT_VERSION) {
        decode_attr_compact(buf)?
    } else {
        decode_attr_full(buf)?
    };
    // A record out of the ranges a write can produce (logic::checks::check_record) is damage,
    // not a file.
    crate::logic::check_record(&a).map_err(|e| err::corrupted(format!("attr: {}", e.context())))?;
    Ok(a)
}

fn decode_attr_full(buf: &[u8]) -> Result<Attr> {
    let mut r = Reader::new(buf, "attr")?;
    let a = Attr {
        typ: FileType::from_code(r.u8()?)?,
        mode: r.u16()?,
        uid: r.u32()?,
        gid: r.u32()?,
        rdev: r.u32()?,
        atime: r.time()?,
        mtime: r.time()?,
        ctime: r.time()?,
        nlink: r.u32()?,
        length: r.u64()?,
        parent: Ino(r.u64()?),
        flags: r.u8()?,
    };
    r.finish()?;
    Ok(a)
}

/// Encodes an entry value (10 bytes).
pub fn encode_entry(e: Entry) -> Vec<u8> {
    let mut v = Vec::with_capacity(10);
    v.push(VALUE_VERSION);
    v.push(e.typ.code());
    v.extend_from_slice(&e.ino.0.to_be_bytes());
    v
}

/// Decodes an entry value.
pub fn decode_entry(buf: &[u8]) -> Result<Entry> {
    let mut r = Reader::new(buf, "entry")?;
    let typ = FileType::from_code(r.u8()?)?;
    let ino = Ino(r.u64()?);
    r.finish()?;
    if ino == Ino::ZERO {
        return Err(err::corrupted("entry: points to inode 0"));
    }
    Ok(Entry { ino, typ })
}

/// Encodes one slice (24 bytes) onto `out`.
pub fn encode_slice(out: &mut Vec<u8>, s: &Slice) {
    out.extend_from_slice(&s.pos.to_be_bytes());
    out.extend_from_slice(&s.id.to_be_bytes());
    out.extend_from_slice(&s.size.to_be_bytes());
    out.extend_from_slice(&s.off.to_be_bytes());
    out.extend_from_slice(&s.len.to_be_bytes());
}

/// Encodes a chunk value (version byte + 24 bytes per slice).
pub fn encode_chunk(slices: &[Slice]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + SLICE_BYTES * slices.len());
    v.push(VALUE_VERSION);
    for s in slices {
        encode_slice(&mut v, s);
    }
    v
}

/// Decodes a chunk value.
pub fn decode_chunk(buf: &[u8]) -> Result<Vec<Slice>> {
    let mut r = Reader::new(buf, "chunk")?;
    if r.buf.len() % SLICE_BYTES != 0 {
        return Err(err::corrupted(format!(
            "chunk: {} bytes is not a multiple of {SLICE_BYTES}",
            r.buf.len()
        )));
    }
    let mut out = Vec::with_capacity(r.buf.len() / SLICE_BYTES);
    while !r.buf.is_empty() {
        out.push(Slice {
            pos: r.u32()?,
            id: r.u64()?,
            size: r.u32()?,
            off: r.u32()?,
            len: r.u32()?,
        });
    }
    for s in &out {
        crate::logic::check_write(0, s)
            .map_err(|e| err::corrupted(format!("chunk: {}", e.context())))?;
    }
    Ok(out)
}

/// Encodes a byte-string value (symlink target, xattr value).
pub fn encode_bytes(b: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + b.len());
    v.push(VALUE_VERSION);
    v.extend_from_slice(b);
    v
}

/// Decodes a byte-string value.
pub fn decode_bytes(buf: &[u8], what: &str) -> Result<Vec<u8>> {
    Ok(Reader::new(buf, what)?.rest().to_vec())
}

/// Encodes a counter (i64).
pub fn encode_counter(n: i64) -> Vec<u8> {
    let mut v = Vec::with_capacity(9);
    v.push(VALUE_VERSION);
    v.extend_from_slice(&n.to_be_bytes());
    v
}

/// Encodes a directory's statistics: version byte, then inodes, length, space (i64 each,
/// big-endian); 25 bytes.
pub fn encode_dir_stat(s: &DirStat) -> Vec<u8> {
    let mut v = Vec::with_capacity(25);
    v.push(VALUE_VERSION);
    for n in [s.inodes, s.length, s.space] {
        v.extend_from_slice(&n.to_be_bytes());
    }
    v
}

/// Decodes a directory's statistics (see [`encode_dir_stat`]).
pub fn decode_dir_stat(buf: &[u8]) -> Result<DirStat> {
    let mut r = Reader::new(buf, "directory statistics")?;
    let s = DirStat {
        inodes: r.u64()? as i64,
        length: r.u64()? as i64,
        space: r.u64()? as i64,
    };
    r.finish()?;
    Ok(s)
}

/// Encodes a directory quota: version byte, max_space, max_inodes (u64 each), then the
/// usage as [`encode_dir_stat`] (i64 each), all big-endian; 41 bytes.
pub fn encode_quota(q: &crate::quota::Quota) -> Vec<u8> {
    let mut v = Vec::with_capacity(41);
    v.push(VALUE_VERSION);
    v.extend_from_slice(&q.max_space.to_be_bytes());
    v.extend_from_slice(&q.max_inodes.to_be_bytes());
    for n in [q.used.inodes, q.used.length, q.used.space] {
        v.extend_from_slice(&n.to_be_bytes());
    }
    v
}

/// Decodes a directory quota (see [`encode_quota`]).
pub fn decode_quota(buf: &[u8]) -> Result<crate::quota::Quota> {
    let mut r = Reader::new(buf, "directory quota")?;
    let q = crate::quota::Quota {
        max_space: r.u64()?,
        max_inodes: r.u64()?,
        used: DirStat {
            inodes: r.u64()? as i64,
            length: r.u64()? as i64,
            space: r.u64()? as i64,
        },
    };
    r.finish()?;
    Ok(q)
}

/// Decodes a counter.
pub fn decode_counter(buf: &[u8]) -> Result<i64> {
    let mut r = Reader::new(buf, "counter")?;
    let n = r.u64()? as i64;
    r.finish()?;
    Ok(n)
}

/// Encodes a pending-deletion record's value.
pub fn encode_pending(p: Pending) -> Vec<u8> {
    let mut v = vec![VALUE_VERSION];
    match p {
        Pending::File { length, .. } => v.extend_from_slice(&length.to_be_bytes()),
        Pending::Slice { size, .. } => v.extend_from_slice(&size.to_be_bytes()),
    }
    v
}

/// Decodes a pending-deletion record from its key and value.
pub fn decode_pending(key: &[u8], val: &[u8]) -> Result<Pending> {
    let id = key
        .get(1..9)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
        .filter(|_| key.len() == 9)
        .ok_or_else(|| err::corrupted("pending: bad key"))?;
    let mut r = Reader::new(val, "pending")?;
    let p = match key[0] {
        b'D' => Pending::File {
            ino: Ino(id),
            length: r.u64()?,
        },
        b'L' => Pending::Slice { id, size: r.u32()? },
        _ => return Err(err::corrupted("pending: bad key")),
    };
    r.finish()?;
    Ok(p)
}

/// Encodes the format record.
pub fn encode_setting(s: &Setting) -> Vec<u8> {
    encode_bytes(&s.to_json())
}

/// Decodes the format record (`Corrupted`, or `Unsupported` for a newer version).
pub fn decode_setting(buf: &[u8]) -> Result<Setting> {
    Setting::from_json(&decode_bytes(buf, "setting")?)
}

/// Encodes a session record: version byte, expiry (i64 seconds + u32 nanoseconds), then the
/// description as JSON.
pub fn encode_session(s: &Session) -> Vec<u8> {
    let json = s.info.to_json();
    let mut v = Vec::with_capacity(13 + json.len());
    v.push(VALUE_VERSION);
    put_time(&mut v, s.expire);
    v.extend_from_slice(&json);
    v
}

/// The expiry of a session record, without decoding its description (whether the session
/// is fenced: [`Session::FENCED`]). Errors: `Corrupted`.
pub fn session_expiry(buf: &[u8]) -> Result<Timespec> {
    Reader::new(buf, "session")?.time()
}

/// Decodes a session record. Errors: `Corrupted`.
pub fn decode_session(buf: &[u8]) -> Result<Session> {
    let mut r = Reader::new(buf, "session")?;
    let expire = r.time()?;
    let info = SessionInfo::from_json(r.rest())?;
    Ok(Session { info, expire })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;
    use crate::kv::schema::*;
    use crate::types::{CHUNK_SIZE, MAX_FILE_LEN};

    fn attr() -> Attr {
        Attr {
            typ: FileType::Symlink,
            mode: 0o4755,
            uid: 1000,
            gid: 100,
            rdev: 7,
            atime: Timespec { sec: -5, nsec: 1 },
            mtime: Timespec {
                sec: 1_700_000_000,
                nsec: 999_999_999,
            },
            ctime: Timespec { sec: 0, nsec: 0 },
            nlink: 3,
            length: MAX_FILE_LEN,
            parent: Ino(42),
            flags: 1,
        }
    }

    #[test]
    fn attr_round_trip_and_size() {
        let a = attr();
        let v = encode_attr(&a);
        assert_eq!(v.len(), ATTR_BYTES);
        assert_eq!(decode_attr(&v).unwrap(), a);
    }

    #[test]
    fn compact_attr_round_trip_and_sizes() {
        // All four optional fields present.
        let a = attr();
        let v = encode_attr_compact(&a);
        assert_eq!(v.len(), ATTR_COMPACT_MIN + 12 + 12 + 8 + 4);
        assert_eq!(decode_attr(&v).unwrap(), a);
        // A new empty file: one time, no length, no rdev; inline in Redis (<= 44 bytes).
        let t = Timespec {
            sec: 1_700_000_000,
            nsec: 5,
        };
        let fresh = Attr {
            typ: FileType::Regular,
            rdev: 0,
            atime: t,
            mtime: t,
            ctime: t,
            length: 0,
            ..attr()
        };
        let v = encode_attr_compact(&fresh);
        assert_eq!(v.len(), ATTR_COMPACT_MIN);
        assert_eq!(decode_attr(&v).unwrap(), fresh);
        // Written once: mtime = ctime, atime older, a length.
        let written = Attr {
            atime: Timespec { sec: 1, nsec: 0 },
            length: 1,
            ..fresh
        };
        let v = encode_attr_compact(&written);
        assert_eq!(v.len(), ATTR_COMPACT_MIN + 12 + 8);
        assert_eq!(decode_attr(&v).unwrap(), written);
        // Not canonical (a field stored that equals what the shape implies), unknown shape
        // bits, truncated, trailing bytes: Corrupted.
        let mut wide = encode_attr_compact(&fresh);
        wide[17] |= SHAPE_LENGTH;
        wide.extend_from_slice(&0u64.to_be_bytes());
        let mut odd = encode_attr_compact(&fresh);
        odd[17] |= 0x40;
        // The hint bits carry no attribute: the same record with or without them.
        for hint in [
            HINT_NO_XATTRS,
            HINT_NEVER_OPENED,
            HINT_NO_XATTRS | HINT_NEVER_OPENED,
        ] {
            let mut hinted = encode_attr_compact(&written);
            hinted[17] |= hint;
            assert_eq!(decode_attr(&hinted).unwrap(), written);
        }
        let full = encode_attr_compact(&a);
        for bad in [
            wide,
            odd,
            full[..full.len() - 1].to_vec(),
            [full.clone(), vec![0]].concat(),
        ] {
            assert_eq!(
                decode_attr(&bad).unwrap_err().kind(),
                ErrorKind::Corrupted,
                "{bad:?}"
            );
        }
        // The range checks apply to the compact form too.
        let v = encode_attr_compact(&Attr {
            length: MAX_FILE_LEN + 1,
            ..attr()
        });
        assert_eq!(decode_attr(&v).unwrap_err().kind(), ErrorKind::Corrupted);
    }

    #[test]
    fn chunk_entry_counter_pending_round_trip() {
        let s = vec![
            Slice {
                pos: 0,
                id: 1,
                size: 10,
                off: 0,
                len: 10,
            },
            Slice {
                pos: (CHUNK_SIZE - 2) as u32,
                id: u64::MAX,
                size: 3,
                off: 1,
                len: 2,
            },
        ];
        assert_eq!(decode_chunk(&encode_chunk(&s)).unwrap(), s);
        // Records out of the ranges a write produces are damage.
        let mut past = s.clone();
        past[1].pos += 1;
        assert_eq!(
            decode_chunk(&encode_chunk(&past)).unwrap_err().kind(),
            ErrorKind::Corrupted
        );
        for bad in [
            Attr {
                mode: 0o10000,
                ..attr()
            },
            Attr {
                length: MAX_FILE_LEN + 1,
                ..attr()
            },
        ] {
            assert_eq!(
                decode_attr(&encode_attr(&bad)).unwrap_err().kind(),
                ErrorKind::Corrupted
            );
        }
        let e = Entry {
            ino: Ino(9),
            typ: FileType::Fifo,
        };
        assert_eq!(decode_entry(&encode_entry(e)).unwrap(), e);
        assert_eq!(decode_counter(&encode_counter(-3)).unwrap(), -3);
        for p in [
            Pending::File {
                ino: Ino(5),
                length: 77,
            },
            Pending::Slice { id: 8, size: 9 },
        ] {
            assert_eq!(
                decode_pending(&pending_key(p), &encode_pending(p)).unwrap(),
                p
            );
        }
        assert_eq!(decode_bytes(&encode_bytes(b"xyz"), "t").unwrap(), b"xyz");
    }

    #[test]
    fn keys_sort_numerically() {
        assert!(attr_key(Ino(255)) < attr_key(Ino(256)));
        assert!(chunk_key(Ino(1), 1) < chunk_key(Ino(1), 256));
        assert_eq!(key_ino(&entry_key(Ino(77), b"x")), Some(Ino(77)));
        assert_eq!(prefix_end(b"A\x01\xff"), b"A\x02".to_vec());
    }

    #[test]
    fn garbage_is_corrupted_never_a_panic() {
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![0],
            vec![2, 1, 2, 3],
            vec![VALUE_VERSION],
            vec![VALUE_VERSION, 99],
            encode_attr(&attr())[..40].to_vec(),
            [encode_attr(&attr()), vec![0]].concat(),
        ];
        for c in &cases {
            assert_eq!(
                decode_attr(c).unwrap_err().kind(),
                ErrorKind::Corrupted,
                "{c:?}"
            );
            assert_eq!(
                decode_entry(c).unwrap_err().kind(),
                ErrorKind::Corrupted,
                "{c:?}"
            );
            assert_eq!(
                decode_counter(c).unwrap_err().kind(),
                ErrorKind::Corrupted,
                "{c:?}"
            );
        }
        assert_eq!(
            decode_chunk(&[VALUE_VERSION, 1, 2]).unwrap_err().kind(),
            ErrorKind::Corrupted
        );
        assert_eq!(
            decode_pending(b"D1", &[VALUE_VERSION]).unwrap_err().kind(),
            ErrorKind::Corrupted
        );
        assert_eq!(
            decode_setting(&[VALUE_VERSION, b'{']).unwrap_err().kind(),
            ErrorKind::Corrupted
        );
        // An entry pointing at inode 0, a bad nanosecond field, an unknown type.
        let mut e = encode_entry(Entry {
            ino: Ino(1),
            typ: FileType::Regular,
        });
        e[9] = 0;
        assert_eq!(decode_entry(&e).unwrap_err().kind(), ErrorKind::Corrupted);
        let mut a = encode_attr(&attr());
        a[24] = 0xff;
        assert_eq!(decode_attr(&a).unwrap_err().kind(), ErrorKind::Corrupted);
        let mut a = encode_attr(&attr());
        a[1] = 0;
        assert_eq!(decode_attr(&a).unwrap_err().kind(), ErrorKind::Corrupted);
    }

    proptest::proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..100)) {
            let _ = decode_attr(&bytes);
            let _ = decode_entry(&bytes);
            let _ = decode_chunk(&bytes);
            let _ = decode_counter(&bytes);
            let _ = decode_setting(&bytes);
            let _ = decode_pending(&bytes, &bytes);
        }

        #[test]
        fn attr_round_trips(mode in 0u16..0o7777, uid: u32, len in 0u64..=MAX_FILE_LEN, sec: i64, nsec in 0u32..1_000_000_000) {
            let mut a = attr();
            a.mode = mode; a.uid = uid; a.length = len;
            a.mtime = Timespec { sec, nsec };
            proptest::prop_assert_eq!(decode_attr(&encode_attr(&a)).unwrap(), a);
            proptest::prop_assert_eq!(decode_attr(&encode_attr_compact(&a)).unwrap(), a);
            // With equal times and no length or rdev too.
            a.atime = a.ctime; a.mtime = a.ctime; a.rdev = 0;
            proptest::prop_assert_eq!(decode_attr(&encode_attr_compact(&a)).unwrap(), a);
        }
    }
}
