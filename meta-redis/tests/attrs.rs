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
use meta_core::kv::{SHAPE_LENGTH, SHAPE_MTIME, encode_attr, encode_attr_compact};
use meta_core::{
    Attr, Backend, Caller, ErrorKind, Ino, Meta, MetaOptions, Pending, SetAttrMask, SetAttrValues,
    Setting,
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
        is_compact(&v) && v == encode_attr_compact(&wa),
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
        is_compact(&v) && decode_attr(&v)? == ca,
        "after a chmod: {v:?}"
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
