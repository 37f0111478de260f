//! Real programs on `meta mount`: tar of a generated tree of 5,000+ files with symlinks and
//! hard links (then `diff -r` against the source), git init/add/commit/fsck, sqlite3 in WAL
//! mode, rsync twice (the second finds nothing to copy), a file read after its last name is
//! removed, then `rm -rf` of everything: statfs back to empty, the data directory emptied
//! by the pending-deletion loop, and after unmounting `meta fsck` clean and no session left.
//!
//! Runs on RocksDB always, and on Redis / PostgreSQL when `META_TEST_REDIS_URL` /
//! `META_TEST_POSTGRES_URL` name a server (`cargo xtask test` sets them). It needs root,
//! `/dev/fuse` and `tar`, `git`, `sqlite3`, `rsync`, `diff`, `stat`, `bash`: without them it
//! is skipped with a loud line, or fails under `META_MOUNT_TESTS_REQUIRE=1` (set by
//! `cargo xtask test` as root).

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

mod common;

use common::{Mount, meta, no_fuse, run, sh, skip_or_fail, slice_files};

/// Why the test cannot run here, if it cannot.
fn missing() -> Option<String> {
    if let Some(why) = no_fuse() {
        return Some(why);
    }
    for tool in ["tar", "git", "sqlite3", "rsync", "diff", "stat", "bash"] {
        let found = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            return Some(format!("{tool} is not installed (apt-get install {tool})"));
        }
    }
    None
}

/// Writes the source tree: 50 directories × 100 files of 0 B to 70 KB (some in a
/// subdirectory), a symlink and a hard link per directory, one 3 MB file.
fn make_tree(root: &Path) -> usize {
    let mut n = 0;
    let mut seed: u64 = 7;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    for d in 0..50 {
        let dir = root.join(format!("d{d}"));
        std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
        for f in 0..100 {
            let size = [0usize, 10, 100, 4096, 5000, 70_000][(next() % 6) as usize];
            let data: Vec<u8> = (0..size).map(|_| next() as u8).collect();
            let path = if f % 2 == 1 {
                dir.join(format!("f{f}"))
            } else {
                dir.join("sub").join(format!("f{f}"))
            };
            std::fs::write(&path, data).expect("write");
            n += 1;
        }
        std::os::unix::fs::symlink("f1", dir.join("link")).expect("symlink");
        std::fs::hard_link(dir.join("f1"), dir.join("hard")).expect("hard link");
    }
    let big: Vec<u8> = (0..3 << 20).map(|_| next() as u8).collect();
    std::fs::write(root.join("big"), big).expect("write big");
    n + 1
}

/// The whole sequence on the volume `url`, with data in `data`.
fn programs_on(url: &str, work: &Path) {
    let src = work.join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    let files = make_tree(&src.join("tree"));
    assert!(files >= 5000, "{files} files");
    run(meta(url).args(["format", "--force"]), "meta format");
    let mount = Mount::start(url, work, "mnt", &["--gc-interval", "0.2"]);
    let (mnt, data) = (mount.mnt.clone(), mount.data.clone());
    let started = Instant::now();
    let step = |what: &str| eprintln!("  {:>6.1} s  {what}", started.elapsed().as_secs_f64());
    let result = std::panic::catch_unwind(|| {
        let (s, m) = (src.display(), mnt.display());
        // tar of the tree, compared byte for byte, links included.
        sh(
            &format!("tar -C {s} -cf {s}/tree.tar tree && tar -C {m} -xf {s}/tree.tar"),
            "tar x",
        );
        sh(
            &format!("diff -r --no-dereference {s}/tree {m}/tree"),
            "diff -r",
        );
        let links = sh(
            &format!("stat -c %h {m}/tree/d3/hard {m}/tree/d3/f1"),
            "stat",
        );
        assert_eq!(
            links.split_whitespace().collect::<Vec<_>>(),
            ["2", "2"],
            "{links}"
        );
        assert_eq!(
            sh(&format!("readlink {m}/tree/d3/link"), "readlink").trim(),
            "f1"
        );
        step("tar x, diff -r");
        // git.
        sh(
            &format!(
                "cd {m}/tree && git init -q . && git add -A && \
                 git -c user.email=t@example.com -c user.name=t commit -qm import && \
                 git fsck --full --no-progress && git status --porcelain | wc -l"
            ),
            "git",
        );
        step("git init, add, commit, fsck");
        // sqlite3, WAL mode, 10,000 rows in 100 transactions.
        let mut sql =
            String::from("PRAGMA journal_mode=WAL;\nCREATE TABLE t(a INTEGER, b TEXT);\n");
        for tx in 0..100 {
            sql.push_str("BEGIN;\n");
            for i in 0..100 {
                let v = tx * 100 + i;
                sql.push_str(&format!("INSERT INTO t VALUES({v}, 'row {v}');\n"));
            }
            sql.push_str("COMMIT;\n");
        }
        sql.push_str("SELECT count(*), sum(a) FROM t;\nPRAGMA integrity_check;\n");
        std::fs::write(src.join("rows.sql"), sql).expect("write sql");
        let out = sh(&format!("sqlite3 {m}/db.sqlite < {s}/rows.sql"), "sqlite3");
        assert!(
            out.contains("10000|49995000") && out.contains("ok"),
            "{out}"
        );
        step("sqlite3");
        // rsync twice: the second finds nothing to do.
        sh(&format!("rsync -a {m}/tree/ {m}/tree2/"), "rsync");
        let again = sh(
            &format!("rsync -ai {m}/tree/ {m}/tree2/ | wc -l"),
            "rsync again",
        );
        assert_eq!(again.trim(), "0", "the second rsync copied something");
        sh(
            &format!("diff -r --no-dereference {m}/tree {m}/tree2"),
            "diff after rsync",
        );
        step("rsync twice, diff -r");
        // A file read after its last name is gone (unlink(2) of an open file).
        let out = sh(
            &format!(
                "cd {m} && echo kept > gone && exec 3<gone && rm gone && \
                      test ! -e gone && cat <&3"
            ),
            "read after unlink",
        );
        assert_eq!(out.trim(), "kept");
        // Everything removed: statfs back to the root alone, the data deleted.
        sh(
            &format!("rm -rf {m}/tree {m}/tree2 {m}/db.sqlite {m}/db.sqlite-wal {m}/db.sqlite-shm"),
            "rm -rf",
        );
        let left: BTreeSet<String> = std::fs::read_dir(&mnt)
            .expect("readdir")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(left.is_empty(), "left after rm -rf: {left:?}");
        let inodes = sh(&format!("stat -f -c '%c %d' {m}"), "statfs");
        let v: Vec<u64> = inodes
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        assert_eq!(v.len(), 2, "{inodes}");
        assert_eq!(v[0] - v[1], 1, "used inodes after rm -rf: {inodes}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while slice_files(&data) > 0 {
            assert!(
                Instant::now() < deadline,
                "{} slice files left 60 s after rm -rf",
                slice_files(&data)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        step("rm -rf, statfs, data deleted");
    });
    if let Err(p) = result {
        eprintln!("mount log:\n{}", mount.log_text());
        // Unwinding drops `mount`, which unmounts.
        std::panic::resume_unwind(p);
    }
    // Unmounted, and the mount process ends its session and exits.
    mount.unmount();
    let st = run(meta(url).args(["status", "--json"]), "meta status");
    assert!(st.contains("\"sessions\": []"), "a session is left: {st}");
    let fsck = run(meta(url).arg("fsck"), "meta fsck");
    assert!(fsck.starts_with("clean:"), "{fsck}");
    eprintln!(
        "mount programs on {}: {files} files, {:.1} s",
        url.split('?').next().unwrap_or(url),
        started.elapsed().as_secs_f64()
    );
}

fn with_param(url: &str, param: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{param}")
}

#[test]
fn programs_on_rocksdb() {
    if let Some(why) = missing() {
        return skip_or_fail(&why);
    }
    let work = tempfile::tempdir().expect("tempdir");
    let url = format!("rocksdb://{}?sync=false", work.path().join("vol").display());
    programs_on(&url, work.path());
}

#[test]
fn programs_on_servers() {
    if let Some(why) = missing() {
        return skip_or_fail(&why);
    }
    let stamp = std::process::id();
    let mut ran = 0;
    for (env, param) in [
        ("META_TEST_REDIS_URL", format!("prefix=mount{stamp}")),
        (
            "META_TEST_POSTGRES_URL",
            format!("table_prefix=mount{stamp}_"),
        ),
    ] {
        let Ok(server) = std::env::var(env) else {
            eprintln!("SKIP mount test on {env}: not set");
            continue;
        };
        let work = tempfile::tempdir().expect("tempdir");
        programs_on(&with_param(&server, &param), work.path());
        ran += 1;
    }
    eprintln!("mount test ran on {ran} server backend(s)");
}
