//! The command count, from the server's own statistics (`INFO commandstats`): N creates in
//! one batch cost N `EVALSHA` calls in one pipeline, with no WATCH/MULTI/EXEC; N unlinks cost
//! N reads of the entries (one pipeline) plus N `EVALSHA`. A flushed script cache is
//! reloaded transparently. This file holds one test so that no other test of this crate
//! runs on the server meanwhile (cargo runs test binaries one at a time); it needs a
//! standalone server (`META_TEST_REDIS_URL`) that nothing else uses during the test.

mod common;

use std::collections::BTreeMap;

use anyhow::ensure;
use common::{STANDALONE_ENV, open, unique_prefix};
use meta_conformance::util::{ME, mknod_op};
use meta_core::{Backend, FileType, Ino, Meta, Op, Setting, Timespec};
use meta_redis::RedisBackend;
use redis::Value;

const N: u64 = 200;

/// `cmdstat_<name>` → calls, from `INFO commandstats`.
async fn stats(b: &RedisBackend) -> anyhow::Result<BTreeMap<String, u64>> {
    let v = b.query(redis::cmd("INFO").arg("commandstats")).await?;
    let text = match v {
        Value::BulkString(t) => String::from_utf8_lossy(&t).into_owned(),
        Value::VerbatimString { text, .. } => text,
        other => anyhow::bail!("INFO: {other:?}"),
    };
    let mut out = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("cmdstat_")
            && let Some((name, fields)) = rest.split_once(':')
            && let Some(calls) = fields
                .split(',')
                .find_map(|f| f.strip_prefix("calls="))
                .and_then(|c| c.parse().ok())
        {
            out.insert(name.to_string(), calls);
        }
    }
    Ok(out)
}

async fn reset(b: &RedisBackend) -> anyhow::Result<()> {
    b.query(redis::cmd("CONFIG").arg("RESETSTAT")).await?;
    Ok(())
}

/// The calls since the last reset, without the INFO call that read them.
fn calls(s: &BTreeMap<String, u64>, name: &str) -> u64 {
    s.get(name).copied().unwrap_or(0)
}

#[tokio::test]
async fn n_creates_in_one_batch_cost_n_evalsha() -> anyhow::Result<()> {
    let Ok(url) = std::env::var(STANDALONE_ENV) else {
        if meta_conformance::skips_are_failures() {
            panic!("{STANDALONE_ENV} is not set and META_CONFORMANCE_REQUIRE=1");
        }
        eprintln!("SKIP meta-redis commandstats: {STANDALONE_ENV} is not set");
        return Ok(());
    };
    let prefix = unique_prefix("n");
    let b = open(&url, &prefix).await?;
    Meta::format(&b, &Setting::new("commandstats"), false).await?;
    let time = Timespec {
        sec: 1_900_000_000,
        nsec: 0,
    };
    let creates: Vec<Op> = (0..N)
        .map(|i| {
            mknod_op(
                Ino::ROOT,
                format!("f{i}").as_bytes(),
                Ino(100 + i),
                FileType::Regular,
                time,
            )
        })
        .collect();

    reset(&b).await?;
    let r = b.apply(&creates).await?;
    ensure!(r.iter().all(|r| r.is_ok()), "creates failed: {r:?}");
    let s = stats(&b).await?;
    eprintln!("{N} creates in one batch: {s:?}");
    ensure!(
        calls(&s, "evalsha") == N,
        "{N} creates: {} EVALSHA",
        calls(&s, "evalsha")
    );
    for t in ["watch", "multi", "exec", "eval", "script|load"] {
        ensure!(calls(&s, t) == 0, "{N} creates used {t}: {s:?}");
    }
    // Commands the client sent (scripts' inner commands are counted too, under their own
    // names; the client sent only EVALSHA).
    eprintln!(
        "per create: 1 EVALSHA; commands run inside the script: {:.1}",
        s.iter()
            .filter(|(k, _)| !matches!(k.as_str(), "evalsha" | "config|resetstat"))
            .map(|(_, v)| *v)
            .sum::<u64>() as f64
            / N as f64
    );

    let unlinks: Vec<Op> = (0..N)
        .map(|i| Op::Unlink {
            parent: Ino::ROOT,
            name: format!("f{i}").into_bytes(),
            caller: ME,
            time,
        })
        .collect();
    reset(&b).await?;
    let r = b.apply(&unlinks).await?;
    ensure!(r.iter().all(|r| r.is_ok()), "unlinks failed: {r:?}");
    let s = stats(&b).await?;
    eprintln!("{N} unlinks in one batch: {s:?}");
    ensure!(calls(&s, "evalsha") == N, "{N} unlinks: {s:?}");
    // The entry reads: ZRANGEBYLEX by the client (N) + one inside each script (N).
    ensure!(calls(&s, "zrangebylex") == 2 * N, "{N} unlinks: {s:?}");
    for t in ["watch", "multi", "exec"] {
        ensure!(calls(&s, t) == 0, "{N} unlinks used {t}: {s:?}");
    }

    // A flushed script cache: the next batch gets NOSCRIPT, reloads, and succeeds.
    b.query(redis::cmd("SCRIPT").arg("FLUSH")).await?;
    reset(&b).await?;
    let r = b.apply(&creates[..3]).await?;
    ensure!(r.iter().all(|r| r.is_ok()), "after SCRIPT FLUSH: {r:?}");
    let s = stats(&b).await?;
    ensure!(
        calls(&s, "script|load") > 0,
        "no SCRIPT LOAD after a flush: {s:?}"
    );
    ensure!(b.lookup(Ino::ROOT, b"f2").await.is_ok());

    // strict_keys=true: lookups, readdir-plus and the ancestor walk before a rename across
    // directories run no script (the read scripts are the ones touching undeclared keys);
    // only the rename itself is an EVALSHA. Same answers as the scripted reads.
    let strict = open(&format!("{url}?strict_keys=true"), &prefix).await?;
    let mkdir = |parent: Ino, name: &str, ino: u64| {
        mknod_op(parent, name.as_bytes(), Ino(ino), FileType::Directory, time)
    };
    let r = b
        .apply(&[
            mkdir(Ino::ROOT, "a", 900),
            mkdir(Ino(900), "b", 901),
            mkdir(Ino::ROOT, "c", 902),
        ])
        .await?;
    ensure!(r.iter().all(|r| r.is_ok()), "mkdirs: {r:?}");
    reset(&b).await?;
    let lookups = [
        (Ino::ROOT, "f0"),
        (Ino::ROOT, "f1"),
        (Ino::ROOT, "nope"),
        (Ino(900), "b"),
        (Ino(900), "."),
        (Ino(901), ".."),
    ];
    for (dir, name) in lookups {
        let (x, y) = (
            strict.lookup(dir, name.as_bytes()).await,
            b.lookup(dir, name.as_bytes()).await,
        );
        ensure!(
            format!("{x:?}") == format!("{y:?}"),
            "lookup {name}: strict {x:?} vs scripted {y:?}"
        );
    }
    let x = strict.read_dir(Ino::ROOT, None, 1000, true).await?;
    let y = b.read_dir(Ino::ROOT, None, 1000, true).await?;
    ensure!(
        x.len() == 5 && format!("{x:?}") == format!("{y:?}"),
        "readdir-plus: {x:?} vs {y:?}"
    );
    let s = stats(&b).await?;
    // The scripted half: 6 lookups (1 EVALSHA each, "." too) and one readdir-plus page.
    ensure!(calls(&s, "evalsha") == 7, "scripted reads: {s:?}");
    reset(&b).await?;
    for (dir, name) in lookups {
        strict.lookup(dir, name.as_bytes()).await.ok();
    }
    strict.read_dir(Ino::ROOT, None, 1000, true).await?;
    let r = strict
        .apply(&[Op::Rename {
            parent: Ino(900),
            name: b"b".to_vec(),
            new_parent: Ino(902),
            new_name: b"b".to_vec(),
            flags: meta_core::RenameFlags::NONE,
            caller: ME,
            time,
        }])
        .await?;
    ensure!(r.iter().all(|r| r.is_ok()), "rename: {r:?}");
    let s = stats(&b).await?;
    ensure!(
        calls(&s, "evalsha") == 1,
        "strict reads ran scripts (only the rename should): {s:?}"
    );
    ensure!(strict.lookup(Ino(902), b"b").await?.0 == Ino(901));
    b.erase().await?;
    Ok(())
}
