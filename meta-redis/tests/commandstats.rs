//! The command count, from the server's own statistics (`INFO commandstats`), with the
//! library called as Redis Functions and as scripts: N creates in one batch cost exactly one
//! library call (`FCALL` or `EVALSHA`), with no WATCH/MULTI/EXEC; so do N unlinks (with
//! `strict_keys`, N reads of the entries in one pipeline come first); more ops than one call
//! carries take one call per `MAX_CALL_OPS`, kept in order by a sequence token. A flushed
//! function library or script cache is reloaded transparently.
//! This file holds one test so that no other test of this crate runs on the server meanwhile
//! (cargo runs test binaries one at a time); it needs a standalone server
//! (`META_TEST_REDIS_URL`) that nothing else uses during the test.

mod common;

use std::collections::BTreeMap;

use anyhow::ensure;
use common::{STANDALONE_ENV, open, unique_prefix, with_param};
use meta_conformance::util::{ME, mknod_op};
use meta_core::{Backend, FileType, Ino, Meta, Op, Setting, Timespec};
use meta_redis::{MAX_CALL_OPS, RedisBackend, Scripting};
use redis::Value;

/// Ops in the single-call batches: as many as one call carries.
const N: u64 = MAX_CALL_OPS as u64;

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

/// Calls of the library that writes (`FCALL` or `EVALSHA`, by `mode`).
fn write_calls(s: &BTreeMap<String, u64>, mode: Scripting) -> u64 {
    match mode {
        Scripting::Function => calls(s, "fcall"),
        Scripting::Eval => calls(s, "evalsha"),
    }
}

/// Calls of the library's read-only entry points (`FCALL_RO` or `EVALSHA`).
fn read_calls(s: &BTreeMap<String, u64>, mode: Scripting) -> u64 {
    match mode {
        Scripting::Function => calls(s, "fcall_ro"),
        Scripting::Eval => calls(s, "evalsha"),
    }
}

#[tokio::test]
async fn a_batch_is_one_library_call() -> anyhow::Result<()> {
    let Ok(url) = std::env::var(STANDALONE_ENV) else {
        if meta_conformance::skips_are_failures() {
            panic!("{STANDALONE_ENV} is not set and META_CONFORMANCE_REQUIRE=1");
        }
        eprintln!("SKIP meta-redis commandstats: {STANDALONE_ENV} is not set");
        return Ok(());
    };
    for mode in [Scripting::Function, Scripting::Eval] {
        one_mode(&url, mode).await?;
    }
    Ok(())
}

async fn one_mode(url: &str, mode: Scripting) -> anyhow::Result<()> {
    let url = with_param(url, &format!("scripting={}", mode.name()));
    let prefix = unique_prefix("n");
    let b = open(&url, &prefix).await?;
    ensure!(
        b.scripting() == mode,
        "asked for {mode:?}, got {:?}",
        b.scripting()
    );
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

    // The volume's first call makes this library the owner of its statistics
    // (`{prefix}statsOwner`: one TIME, one SET); the calls after it find it so.
    let warm = [
        mknod_op(Ino::ROOT, b"warm", Ino(99), FileType::Regular, time),
        Op::Unlink {
            parent: Ino::ROOT,
            name: b"warm".to_vec(),
            caller: ME,
            time,
        },
    ];
    ensure!(
        b.apply(&warm).await?.iter().all(Result::is_ok),
        "the first create and unlink failed"
    );
    reset(&b).await?;
    let r = b.apply(&creates).await?;
    ensure!(r.iter().all(|r| r.is_ok()), "creates failed: {r:?}");
    let s = stats(&b).await?;
    eprintln!("{mode:?}: {N} creates in one batch: {s:?}");
    ensure!(write_calls(&s, mode) == 1, "{N} creates, {mode:?}: {s:?}");
    for t in [
        "watch",
        "multi",
        "exec",
        "eval",
        "script|load",
        "function|load",
    ] {
        ensure!(calls(&s, t) == 0, "{N} creates used {t}: {s:?}");
    }
    // The commands run inside the call (counted under their own names): one ZRANGEBYLEX,
    // one GET of the new inode's key and one ZADD per create; the parent's attributes once
    // for the whole batch (one GET, one MSET with every new inode and the parent).
    ensure!(
        calls(&s, "zrangebylex") == N && calls(&s, "zadd") == N,
        "{s:?}"
    );
    ensure!(
        calls(&s, "mset") == 1,
        "attributes written back once: {s:?}"
    );
    ensure!(
        calls(&s, "set") == 0 && calls(&s, "time") == 0,
        "no SET per create: {s:?}"
    );
    // The root's statistics record and the number of quotas: kept from the first call by a
    // function library, read once per call by scripts.
    let reads = match mode {
        Scripting::Function => 0,
        Scripting::Eval => 1,
    };
    ensure!(
        calls(&s, "hget") == reads && calls(&s, "hlen") == reads,
        "{mode:?}: statistics and quotas read {reads} time(s) for {N} creates: {s:?}"
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
    eprintln!("{mode:?}: {N} unlinks in one batch: {s:?}");
    ensure!(write_calls(&s, mode) == 1, "{N} unlinks: {s:?}");
    // No read before the call: each op reads its entry (one ZRANGEBYLEX) and derives the
    // keys of the inode it names.
    ensure!(calls(&s, "zrangebylex") == N, "{N} unlinks: {s:?}");
    // The records say these files never had an xattr nor an opener (the hint bits of
    // meta_core::kv): no SCARD of an openers set, and one DEL (the attributes' write-back),
    // not one more per file for its xattr hash.
    ensure!(
        calls(&s, "scard") == 0 && calls(&s, "del") == 1,
        "{N} unlinks of files never opened, without xattrs: {s:?}"
    );
    ensure!(calls(&s, "hget") == reads, "{mode:?}, {N} unlinks: {s:?}");
    for t in ["watch", "multi", "exec"] {
        ensure!(calls(&s, t) == 0, "{N} unlinks used {t}: {s:?}");
    }

    // More ops than one call carries: one call per MAX_CALL_OPS, in order.
    let many = (2 * MAX_CALL_OPS + 10) as u64;
    let more: Vec<Op> = (0..many)
        .map(|i| {
            mknod_op(
                Ino::ROOT,
                format!("g{i}").as_bytes(),
                Ino(1000 + i),
                FileType::Regular,
                time,
            )
        })
        .collect();
    reset(&b).await?;
    let r = b.apply(&more).await?;
    ensure!(r.iter().all(|r| r.is_ok()), "{many} creates: {r:?}");
    let s = stats(&b).await?;
    ensure!(write_calls(&s, mode) == 3, "{many} creates: {s:?}");
    // The round's sequence token: set by the first two calls, read by the last two,
    // deleted by the last.
    ensure!(
        calls(&s, "set") == 2 && calls(&s, "get") >= 2 && calls(&s, "del") == 1,
        "{many} creates, sequence token: {s:?}"
    );

    // A flushed library: the next batch finds it missing, reloads it, and succeeds.
    let (flush, load) = match mode {
        Scripting::Function => ("FUNCTION", "function|load"),
        Scripting::Eval => ("SCRIPT", "script|load"),
    };
    b.query(redis::cmd(flush).arg("FLUSH")).await?;
    reset(&b).await?;
    let r = b.apply(&creates[..3]).await?;
    ensure!(r.iter().all(|r| r.is_ok()), "after {flush} FLUSH: {r:?}");
    let s = stats(&b).await?;
    ensure!(calls(&s, load) > 0, "no {load} after a flush: {s:?}");
    ensure!(b.lookup(Ino::ROOT, b"f2").await.is_ok());

    // strict_keys=true: lookups, readdir-plus and the ancestor walk before a rename across
    // directories make no library call (the read-only entry points are the ones touching
    // undeclared keys); only the rename itself is one. Same answers as the library's reads.
    let strict = open(&with_param(&url, "strict_keys=true"), &prefix).await?;
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
            "lookup {name}: strict {x:?} vs library {y:?}"
        );
    }
    let x = strict.read_dir(Ino::ROOT, None, 1000, true).await?;
    let y = b.read_dir(Ino::ROOT, None, 1000, true).await?;
    ensure!(
        // g0.., f0..f2 again, a and c.
        x.len() == 2 * MAX_CALL_OPS + 10 + 3 + 2 && format!("{x:?}") == format!("{y:?}"),
        "readdir-plus: {} vs {} entries",
        x.len(),
        y.len()
    );
    let s = stats(&b).await?;
    // The library half: 6 lookups (one call each, "." too) and one readdir-plus page.
    ensure!(read_calls(&s, mode) == 7, "library reads: {s:?}");
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
        write_calls(&s, mode) == 1 && calls(&s, "fcall_ro") == 0,
        "strict reads called the library (only the rename should): {s:?}"
    );
    if mode == Scripting::Eval {
        ensure!(calls(&s, "evalsha") == 1, "{s:?}");
    }
    ensure!(strict.lookup(Ino(902), b"b").await?.0 == Ino(901));
    // With declared keys, unlinks read their entries first (one pipeline), then one call
    // that re-reads each entry.
    reset(&b).await?;
    let r = strict.apply(&unlinks[..3]).await?;
    ensure!(r.iter().all(|r| r.is_ok()), "strict unlinks: {r:?}");
    let s = stats(&b).await?;
    ensure!(
        write_calls(&s, mode) == 1 && calls(&s, "zrangebylex") == 6,
        "3 strict unlinks: {s:?}"
    );
    b.erase().await?;
    Ok(())
}
