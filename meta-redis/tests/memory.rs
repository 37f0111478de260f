//! Redis memory per file: `INFO memory` `used_memory` before and after creating 100,000 empty
//! files (100 directories of 1,000), divided by 100,000. Ignored by default (it takes a
//! while and wants a server nothing else writes to meanwhile):
//!
//! ```text
//! META_TEST_REDIS_URL=redis://127.0.0.1:6379/0 \
//!   cargo test -p meta-redis --release --test memory -- --ignored --nocapture
//! ```

mod common;

use std::sync::Arc;

use anyhow::{Context, ensure};
use common::{STANDALONE_ENV, open};
use meta_conformance::util::{ME, mknod_op};
use meta_core::{Backend, FileType, Ino, Meta, MetaOptions, Op, Setting, Slice, Timespec};
use meta_redis::RedisBackend;
use redis::Value;

const DIRS: u64 = 100;
const PER_DIR: u64 = 1000;

async fn used_memory(b: &RedisBackend) -> anyhow::Result<i64> {
    let v = b.query(redis::cmd("INFO").arg("memory")).await?;
    let text = match v {
        Value::BulkString(t) => String::from_utf8_lossy(&t).into_owned(),
        Value::VerbatimString { text, .. } => text,
        other => anyhow::bail!("INFO: {other:?}"),
    };
    text.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .context("no used_memory in INFO memory")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measures Redis memory on 100,000 files; run with --ignored"]
async fn bytes_per_file_100k() -> anyhow::Result<()> {
    let url = std::env::var(STANDALONE_ENV).context("META_TEST_REDIS_URL")?;
    // A short prefix, as a deployment would use (every key carries it).
    let prefix = format!("m{:04x}", rand::random::<u16>());
    let b = open(&url, &prefix).await?;
    Meta::format(&b, &Setting::new("memory"), false).await?;
    let m = Meta::open(Arc::new(b.clone()), MetaOptions::default(), None).await?;
    let mut dirs = Vec::new();
    for d in 0..DIRS {
        dirs.push(
            m.mkdir(ME, Ino::ROOT, format!("dir{d}").as_bytes(), 0o755)
                .await?
                .0,
        );
    }
    let before = used_memory(&b).await?;
    let time = Timespec::now();
    let mut files = Vec::new();
    for &dir in &dirs {
        let mut ops = Vec::new();
        for i in 0..PER_DIR {
            let ino = m.new_ino().await?;
            files.push(ino);
            ops.push(mknod_op(
                dir,
                format!("file-{i:06}.dat").as_bytes(),
                ino,
                FileType::Regular,
                time,
            ));
        }
        for r in m.apply_batch(ops).await {
            r?;
        }
    }
    let after_create = used_memory(&b).await?;
    let n = (DIRS * PER_DIR) as f64;
    // Then one 4 MiB slice in each file (a chunk key and a chunk index per file).
    let mut ops = Vec::new();
    for &ino in &files {
        ops.push(Op::Write {
            ino,
            indx: 0,
            slice: Slice {
                pos: 0,
                id: m.new_slice_id().await?,
                size: 4 << 20,
                off: 0,
                len: 4 << 20,
            },
            time,
        });
    }
    for part in ops.chunks(4096) {
        for r in m.apply_batch(part.to_vec()).await {
            r?;
        }
    }
    let after_write = used_memory(&b).await?;
    eprintln!(
        "Redis used_memory per empty file: {:.0} bytes ({} files in {DIRS} directories); \
         per file with one slice: {:.0} bytes",
        (after_create - before) as f64 / n,
        n,
        (after_write - before) as f64 / n,
    );
    ensure!(b.statfs().await?.used_inodes == 1 + DIRS + DIRS * PER_DIR);
    drop(m);
    b.erase().await?;
    Ok(())
}
