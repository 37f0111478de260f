//! How attributes are stored: the compact form (`meta_core::kv::encode_attr_compact`) for
//! every record the library writes, and the 73-byte form of volumes written before it read on
//! every path that looks at a stored record (decoded by Rust, decoded by the library, and the
//! two fixed-offset peeks: the parent for a `..` lookup, the link count for a release).
//! Uses `META_TEST_REDIS_URL`; skips loudly when unset.

mod common;

use std::sync::Arc;

use anyhow::ensure;
use common::{STANDALONE_ENV, open, server, unique_prefix};
use meta_conformance::util::slice;
use meta_core::kv::{ATTR_BYTES, ATTR_COMPACT_MIN, ATTR_COMPACT_VERSION, decode_attr};
use meta_core::kv::{HINT_NEVER_OPENED, HINT_NO_XATTRS, SHAPE_LENGTH, SHAPE_MTIME};
use meta_core::kv::{encode_attr, encode_attr_compact};
use meta_core::{
    Attr, Backend, Caller, ErrorKind, Ino, Meta, MetaOptions, Pending, SetAttrMask, SetAttrValues,
    Setting, XattrFlags,
};
use meta_redis::RedisBackend;
use redis::Value;

const ME: Caller = Caller::new(1000, 1000);

async fn raw(b: &RedisBackend, ino: Ino) -> anyhow::Result<Vec<u8>> {
    match b.query(redis::cmd("GET").arg(b.layout().attr(ino))).await? {
        Value::BulkString(v) => Ok(v),
        other => anyhow::bail!("attributes of {ino:?}: {other:?}"),
    }
}

async fn put(b: &RedisBackend, ino: Ino, v: &[u8]) -> anyhow::Result<()> {
    b.query(redis::cmd("SET").arg(b.layout().attr(ino)).arg(v))
        .await?;
    Ok(())
}

/// chmod 600, an op that decodes the stored record and writes it back.
async fn chmod(m: &Meta, ino: Ino) -> meta_core::Result<Attr> {
    let values = SetAttrValues {
        mode: 0o600,
        ..Default::default()
    };
    m.setattr(ME, ino, SetAttrMask::MODE, values).await
}

fn is_compact(v: &[u8]) -> bool {
    v.first() == Some(&ATTR_COMPACT_VERSION)
}

/// The byte of a compact record that holds its shape and hint bits.
const SHAPE_BYTE: usize = 17;

/// The hint bits of a compact record.
fn hints(v: &[u8]) -> u8 {
    v.get(SHAPE_BYTE)
        .map_or(0, |s| s & (HINT_NO_XATTRS | HINT_NEVER_OPENED))
}

/// A compact record without its hint bits: what `encode_attr_compact` writes.
fn unhinted(v: &[u8]) -> Vec<u8> {
    let mut v = v.to_vec();
    if let Some(s) = v.get_mut(SHAPE_BYTE) {
        *s &= !(HINT_NO_XATTRS | HINT_NEVER_OPENED);
    }
    v
}

async fn exists(b: &RedisBackend, key: String) -> anyhow::Result<bool> {
    Ok(b.query(redis::cmd("EXISTS").arg(key)).await? == Value::Int(1))
}

#[tokio::test]
async fn records_are_compact_and_the_full_form_is_still_read() -> anyhow::Result<()> {
    let Some(url) = server(STANDALONE_ENV, "attrs") else {
        return Ok(());
    };
    let b = open(&url, &unique_prefix("attrs")).await?;
    Meta::format(&b, &Setting::new("attrs"), false).await?;
    let m = Meta::open(Arc::new(b.clone()), MetaOptions::default(), None).await?;
    let (d, _) = m.mkdir(ME, Ino::ROOT, b"d", 0o755).await?;
    let (f, fa) = m.create(ME, d, b"f", 0o644).await?;
    m.flush().await?;

    // A new empty file: the 38-byte fixed part alone, inline in Redis (OBJECT ENCODING).
    let v = raw(&b, f).await?;
    ensure!(
        is_compact(&v) && v.len() == ATTR_COMPACT_MIN,
        "a new file's record: {v:?}"
    );
    ensure!(decode_attr(&v)? == fa, "stored {v:?}, created {fa:?}");
    let enc = b
        .query(redis::cmd("OBJECT").arg("ENCODING").arg(b.layout().attr(f)))
        .await?;
    ensure!(
        enc == Value::BulkString(b"embstr".to_vec()) || enc == Value::SimpleString("embstr".into()),
        "a new file's record is stored as {enc:?}, not inline"
    );

    // Written once: the length and the new mtime join the record, still compact.
    let wa = m
        .write(ME, f, 0, slice(m.new_slice_id().await?, 0, 1))
        .await?;
    m.flush().await?;
    let v = raw(&b, f).await?;
    ensure!(
        is_compact(&v) && unhinted(&v) == encode_attr_compact(&wa),
        "after a write: {v:?}"
    );

    // Records of the 73-byte form, as an older library wrote them.
    let da = b.get_attr(d).await?;
    put(&b, d, &encode_attr(&da)).await?;
    put(&b, f, &encode_attr(&wa)).await?;
    ensure!(raw(&b, f).await?.len() == ATTR_BYTES);
    drop(m);
    let m = Meta::open(Arc::new(b.clone()), MetaOptions::default(), None).await?;
    ensure!(b.get_attr(f).await? == wa, "the full form read by Rust");
    let (ino, _) = m.lookup(d, b"f").await?;
    ensure!(ino == f);
    // `..` of a directory whose record is in the full form: its parent field at 65..72.
    let (up, _) = m.lookup(d, b"..").await?;
    ensure!(up == Ino::ROOT, "`..` of d is {up:?}");
    // A change rewrites the record compact.
    let ca = chmod(&m, f).await?;
    m.flush().await?;
    let v = raw(&b, f).await?;
    ensure!(
        is_compact(&v) && decode_attr(&v)? == ca && hints(&v) == 0,
        "after a chmod of a record without hints: {v:?}"
    );
    ensure!(ca.length == 1 && ca.mode & 0o7777 == 0o600);

    // A release reads the link count of a full-form record at 53..56: an open file unlinked,
    // its record put back in the full form, then released, is deleted (pending).
    m.open_file(f).await?;
    m.unlink(ME, d, b"f").await?;
    m.flush().await?;
    let gone = b.get_attr(f).await?;
    ensure!(gone.nlink == 0, "the open file after unlink: {gone:?}");
    put(&b, f, &encode_attr(&gone)).await?;
    m.release_file(f).await?;
    m.flush().await?;
    ensure!(
        b.get_attr(f).await.map_err(|e| e.kind()) == Err(ErrorKind::NotFound),
        "the released file is still there"
    );
    let pending = m.list_pending(100).await?;
    ensure!(
        pending.contains(&Pending::File { ino: f, length: 1 }),
        "pending: {pending:?}"
    );

    // A compact record that stores a field its shape says is implied is damage, on the
    // library's path (setattr decodes it) and on Rust's (getattr).
    let (g, ga) = m.create(ME, d, b"g", 0o644).await?;
    m.flush().await?;
    // So is one cut short inside a time it announces.
    let mut wide = encode_attr_compact(&ga);
    wide[17] |= SHAPE_LENGTH;
    wide.extend_from_slice(&0u64.to_be_bytes());
    let mut cut = encode_attr_compact(&ga);
    cut[17] |= SHAPE_MTIME;
    cut.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0]);
    for (what, bad) in [("non-canonical", wide), ("truncated", cut)] {
        put(&b, g, &bad).await?;
        let e = chmod(&m, g).await.map(|_| ());
        ensure!(
            e.as_ref().map_err(|e| e.kind()) == Err(ErrorKind::Corrupted),
            "setattr over a {what} record: {e:?}"
        );
        let e = b.get_attr(g).await;
        ensure!(
            e.as_ref().map_err(|e| e.kind()) == Err(ErrorKind::Corrupted),
            "getattr of a {what} record: {e:?}"
        );
    }
    put(&b, g, &encode_attr_compact(&ga)).await?;
    m.close().await?;
    b.erase().await?;
    Ok(())
}

/// The hints in a record's shape byte (`meta_core::kv::HINT_*`): a create sets both (only
/// "no xattrs" for a create that opens); the first setxattr and the first open clear theirs
/// in the same op; an unlink then does what the cleared hint would have spared (the xattr
/// hash deleted, the open inode kept). A record without hints (written before them) is
/// treated as having xattrs and openers.
#[tokio::test]
async fn hints_are_set_at_create_and_cleared_before_they_could_lie() -> anyhow::Result<()> {
    let Some(url) = server(STANDALONE_ENV, "attrs") else {
        return Ok(());
    };
    let b = open(&url, &unique_prefix("hints")).await?;
    Meta::format(&b, &Setting::new("hints"), false).await?;
    let m = Meta::open(Arc::new(b.clone()), MetaOptions::default(), None).await?;
    let (d, _) = m.mkdir(ME, Ino::ROOT, b"d", 0o755).await?;
    let both = HINT_NO_XATTRS | HINT_NEVER_OPENED;
    let (x, _) = m.create(ME, d, b"x", 0o644).await?;
    let (o, _) = m.create(ME, d, b"o", 0o644).await?;
    let (co, _) = m.create_open(ME, d, b"co", 0o644).await?;
    m.flush().await?;
    ensure!(hints(&raw(&b, x).await?) == both, "a new file");
    ensure!(hints(&raw(&b, d).await?) == both, "a new directory");
    ensure!(
        hints(&raw(&b, co).await?) == HINT_NO_XATTRS,
        "a file created open"
    );

    // setxattr: the hash is written and the hint goes; the unlink deletes the hash.
    m.setxattr(ME, x, b"user.a", b"1", XattrFlags::NONE).await?;
    m.flush().await?;
    ensure!(
        hints(&raw(&b, x).await?) == HINT_NEVER_OPENED,
        "after setxattr"
    );
    ensure!(exists(&b, b.layout().xattrs(x)).await?, "no xattr hash");
    m.unlink(ME, d, b"x").await?;
    m.flush().await?;
    ensure!(
        !exists(&b, b.layout().xattrs(x)).await?,
        "xattrs left by unlink"
    );

    // open: the hint goes; the unlink keeps the open inode (nlink 0) until its release.
    m.open_file(o).await?;
    m.flush().await?;
    ensure!(hints(&raw(&b, o).await?) == HINT_NO_XATTRS, "after open");
    m.unlink(ME, d, b"o").await?;
    m.flush().await?;
    ensure!(b.get_attr(o).await?.nlink == 0, "the open file was deleted");
    m.release_file(o).await?;
    m.unlink(ME, d, b"co").await?;
    m.flush().await?;
    ensure!(
        b.get_attr(co).await?.nlink == 0,
        "the file created open was deleted"
    );
    m.release_file(co).await?;
    m.flush().await?;
    for ino in [o, co] {
        let e = b.get_attr(ino).await.map(|_| ());
        ensure!(
            e.map_err(|e| e.kind()) == Err(ErrorKind::NotFound),
            "inode {ino:?} outlived its release"
        );
    }

    // A record without hints (as written before them) whose inode has an xattr hash: the
    // unlink still deletes the hash.
    let (y, ya) = m.create(ME, d, b"y", 0o644).await?;
    m.flush().await?;
    b.query(
        redis::cmd("HSET")
            .arg(b.layout().xattrs(y))
            .arg("user.b")
            .arg("\x012"),
    )
    .await?;
    put(&b, y, &encode_attr_compact(&ya)).await?;
    m.unlink(ME, d, b"y").await?;
    m.flush().await?;
    ensure!(
        !exists(&b, b.layout().xattrs(y)).await?,
        "xattrs left by unlink"
    );

    // A hint bit the library does not know is damage.
    let (z, za) = m.create(ME, d, b"z", 0o644).await?;
    m.flush().await?;
    let mut odd = encode_attr_compact(&za);
    odd[SHAPE_BYTE] |= 0x40;
    put(&b, z, &odd).await?;
    let e = chmod(&m, z).await.map(|_| ());
    ensure!(
        e.as_ref().map_err(|e| e.kind()) == Err(ErrorKind::Corrupted),
        "setattr over unknown shape bits: {e:?}"
    );
    put(&b, z, &encode_attr_compact(&za)).await?;
    m.close().await?;
    b.erase().await?;
    Ok(())
}
