//! Fuzzing with proptest: the KV codec, the dump reader and the URL parser get arbitrary and
//! mutated inputs and must answer with a value or an error, never a panic. A failed `load`
//! must also leave the ID counters above every ID it stored (the rule of `meta_core::dump`).
//!
//! `META_FUZZ_CASES` sets the inputs per target (default 10,000, what CI runs); the long run:
//!
//! ```text
//! META_FUZZ_CASES=1000000 cargo test --release -p meta-core --test fuzz
//! ```

use std::sync::OnceLock;

use meta_core::kv::{
    decode_attr, decode_chunk, decode_counter, decode_entry, decode_pending, decode_session,
    decode_setting,
};
use meta_core::memory::memory_backend;
use meta_core::{Backend, Caller, IdKind, Ino, Meta, MetaOptions, Setting, Slice};
use proptest::prelude::*;

fn cases() -> u32 {
    std::env::var("META_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// A dump of a small volume with files, data, a symlink, an xattr and a hard link.
fn sample_dump() -> &'static str {
    static DUMP: OnceLock<String> = OnceLock::new();
    DUMP.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async {
            let b = std::sync::Arc::new(memory_backend());
            Meta::format(&*b, &Setting::new("fuzz"), false)
                .await
                .expect("format");
            let m = Meta::open(
                b.clone(),
                {
                    let mut o = MetaOptions::default();
                    o.session = false;
                    o
                },
                None,
            )
            .await
            .expect("open");
            let me = Caller::new(1, 1);
            let (d, _) = m
                .mkdir(me.clone(), Ino::ROOT, b"d", 0o755)
                .await
                .expect("mkdir");
            let (f, _) = m.create(me.clone(), d, b"f", 0o644).await.expect("create");
            let id = m.new_slice_id().await.expect("slice id");
            m.write(
                Caller::ROOT,
                f,
                0,
                Slice {
                    pos: 0,
                    id,
                    size: 10,
                    off: 0,
                    len: 10,
                },
            )
            .await
            .expect("write");
            m.symlink(me, d, b"s", b"f").await.expect("symlink");
            m.link(Caller::ROOT, f, Ino::ROOT, b"f2")
                .await
                .expect("link");
            m.setxattr(
                Caller::ROOT,
                f,
                b"user.k",
                b"v",
                meta_core::XattrFlags::NONE,
            )
            .await
            .expect("setxattr");
            m.close().await.expect("close");
            let mut out = Vec::new();
            meta_core::dump::dump(&*b, &mut out, &mut |_| {})
                .await
                .expect("dump");
            String::from_utf8(out).expect("utf-8")
        })
    })
}

/// Replaces `len` bytes at `at` (both taken modulo the text) with `with`.
fn mutate(text: &str, at: usize, len: usize, with: &str) -> String {
    let b = text.as_bytes();
    let at = at % (b.len() + 1);
    let end = (at + len % 16).min(b.len());
    let mut out = b[..at].to_vec();
    out.extend_from_slice(with.as_bytes());
    out.extend_from_slice(&b[end..]);
    String::from_utf8_lossy(&out).into_owned()
}

/// Loads `text` into a fresh in-memory store: whatever happens, no panic, and the counters
/// are above every inode and slice the store holds.
fn load_checked(text: &str) -> Result<(), TestCaseError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    rt.block_on(async {
        let b = memory_backend();
        let _ = meta_core::dump::load(&b, &mut text.as_bytes(), false, &mut |_| {}).await;
        if b.load().await.is_err() {
            return Ok(());
        }
        let inodes = meta_core::backend::all_inodes(&b, 1000)
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let next = b
            .get_counter(IdKind::Inode.counter())
            .await
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        if let Some(max) = inodes.keys().map(|i| i.0).max() {
            prop_assert!(
                next > max as i64,
                "nextInode {next} with inode {max} present"
            );
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn kv_decoders_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_attr(&buf);
        let _ = decode_entry(&buf);
        let _ = decode_chunk(&buf);
        let _ = decode_counter(&buf);
        let _ = decode_session(&buf);
        let _ = decode_setting(&buf);
        let split = buf.len() / 2;
        let _ = decode_pending(&buf[..split], &buf[split..]);
    }

    #[test]
    fn dump_reader_never_panics(
        at in any::<usize>(),
        len in any::<usize>(),
        with in "[ -~]{0,12}|[0-9]{1,22}|\\{|\\]|,|\"|-1",
        twice in any::<bool>(),
        at2 in any::<usize>(),
    ) {
        let mut text = mutate(sample_dump(), at, len, &with);
        if twice {
            text = mutate(&text, at2, 3, "9");
        }
        load_checked(&text)?;
    }

    #[test]
    fn dump_reader_takes_garbage(text in "\\PC{0,300}") {
        load_checked(&text)?;
    }

    #[test]
    fn url_parser_never_panics(
        s in "\\PC{0,80}",
        at in any::<usize>(),
        with in "[ -~]{0,8}",
    ) {
        let _ = meta_core::parse_url(&s);
        let base = "rocksdb:///var/lib/meta/v?sync=true&batch_size=256&heartbeat=5s";
        let _ = meta_core::parse_url(&mutate(base, at, 4, &with));
    }
}
