//! End-to-end tests of the `meta` binary against temporary directories.
//!
//! Multi-command flows use `rocksdb://` volumes in temp dirs (a `memory://` volume lives only
//! inside one process); single-command checks (bench, URL errors) use `memory://`.

#![allow(missing_docs)]

use std::ffi::OsStr;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const META: &str = env!("CARGO_BIN_EXE_meta");

fn meta(url: &str, args: &[&OsStr]) -> Output {
    Command::new(META)
        .env_remove("META_URL")
        .env("RUST_LOG", "warn")
        .arg("--url")
        .arg(url)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run meta")
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

fn ok(out: &Output, what: &str) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{what} failed ({}): stdout:\n{}\nstderr:\n{stderr}",
        out.status,
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!stderr.contains("panicked"), "{what} panicked: {stderr}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn bench_json_on_memory() {
    let out = ok(
        &meta(
            "memory://",
            &[
                os("bench"),
                os("--files"),
                os("200"),
                os("--tasks"),
                os("4"),
                os("--json"),
            ],
        ),
        "bench",
    );
    let v: Value = serde_json::from_str(&out).expect("bench JSON");
    let runs = v["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["mode"], "batched");
    let phases: Vec<&str> = runs[0]["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .map(|p| p["phase"].as_str().expect("phase name"))
        .collect();
    assert_eq!(
        phases,
        [
            "mkdir", "create", "stat", "readdir", "rename", "unlink", "rmdir"
        ]
    );
    for p in runs[0]["phases"].as_array().expect("phases") {
        let want = if p["phase"] == "mkdir" || p["phase"] == "rmdir" {
            10
        } else {
            200
        };
        assert_eq!(p["ops"], want, "{p}");
        assert!(p["ops_per_sec"].as_f64().expect("ops/s") > 0.0, "{p}");
    }
    assert_eq!(runs[0]["creates"], 210);
    assert!(
        runs[0]["reserve_calls_per_1000_creates"]
            .as_f64()
            .expect("f64")
            < 50.0
    );
}

/// `bench-sessions` runs plain/tracked pairs in ABBA order and gives the tracking cost;
/// `--only` runs one half and says the cost was not measured.
#[test]
fn bench_sessions_json_and_one_half() {
    let run = |extra: &[&str]| -> Value {
        let mut args = vec![
            os("bench-sessions"),
            os("--files"),
            os("40"),
            os("--tasks"),
            os("2"),
            os("--pairs"),
            os("2"),
            os("--rounds"),
            os("2"),
            os("--json"),
        ];
        args.extend(extra.iter().map(|a| os(a)));
        let out = ok(&meta("memory://", &args), "bench-sessions");
        serde_json::from_str(&out).expect("bench-sessions JSON")
    };
    let whats = |v: &Value| -> Vec<String> {
        v["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| r["what"].as_str().expect("what").to_string())
            .filter(|w| w.starts_with("create"))
            .collect()
    };
    let both = run(&[]);
    let halves: Vec<bool> = whats(&both).iter().map(|w| w.contains("tracked")).collect();
    assert_eq!(halves, [false, true, true, false], "ABBA order");
    assert!(both["tracking_cost_percent"].is_f64(), "{both}");
    let tracked = run(&["--only", "tracked"]);
    let w = whats(&tracked);
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(w.iter().all(|w| w.contains("tracked")), "{w:?}");
    assert!(tracked["tracking_cost_percent"].is_null(), "{tracked}");
    let bad = meta(
        "memory://",
        &[os("bench-sessions"), os("--only"), os("both")],
    );
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("--only"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn bench_compare_prints_ratios() {
    let out = ok(
        &meta(
            "memory://",
            &[
                os("bench"),
                os("--files"),
                os("100"),
                os("--dirs"),
                os("4"),
                os("--tasks"),
                os("8"),
                os("--compare"),
                os("--json"),
            ],
        ),
        "bench --compare",
    );
    let v: Value = serde_json::from_str(&out).expect("bench JSON");
    let modes: Vec<&str> = v["runs"]
        .as_array()
        .expect("runs")
        .iter()
        .map(|r| r["mode"].as_str().expect("mode"))
        .collect();
    assert_eq!(modes, ["batched", "unbatched"]);
    for phase in [
        "mkdir", "create", "stat", "readdir", "rename", "unlink", "rmdir",
    ] {
        assert!(
            v["ratio"][phase].as_f64().expect("ratio") > 0.0,
            "{phase}: {v}"
        );
    }
    // The table form.
    let out = ok(
        &meta(
            "memory://",
            &[os("bench"), os("--files"), os("50"), os("--no-batch")],
        ),
        "bench --no-batch",
    );
    assert!(out.contains("unbatched") && out.contains("create"), "{out}");
}

/// Tests that need a volume surviving one process (RocksDB).
#[cfg(feature = "rocksdb")]
mod rocks {
    use super::*;
    use std::fs::File;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::MetadataExt;
    use std::path::{Path, PathBuf};

    fn failed(out: &Output, what: &str) -> String {
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(
            !out.status.success(),
            "{what} should fail; stdout: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        assert!(!stderr.contains("panicked"), "{what} panicked: {stderr}");
        assert!(stderr.starts_with("meta: "), "{what}: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{what}: one line expected: {stderr}"
        );
        stderr
    }

    fn rocks_url(dir: &Path) -> String {
        format!("rocksdb://{}", dir.display())
    }

    /// Counts like `find DIR -type f|d|l` and the sum of `find -type f -printf '%s'`.
    #[derive(Debug, Default, PartialEq, Eq)]
    struct Counts {
        files: u64,
        dirs: u64,
        symlinks: u64,
        others: u64,
        bytes: u64,
    }

    fn find_counts(root: &Path) -> Counts {
        let mut c = Counts::default();
        let mut stack = vec![root.to_path_buf()];
        while let Some(p) = stack.pop() {
            let md = std::fs::symlink_metadata(&p).expect("stat");
            let ft = md.file_type();
            if ft.is_dir() {
                c.dirs += 1;
                for e in std::fs::read_dir(&p).expect("read_dir") {
                    stack.push(e.expect("entry").path());
                }
            } else if ft.is_file() {
                c.files += 1;
                c.bytes += md.size();
            } else if ft.is_symlink() {
                c.symlinks += 1;
            } else {
                c.others += 1;
            }
        }
        c
    }

    fn du_json(url: &str, path: &str) -> Counts {
        let out = ok(
            &meta(url, &[os("du"), os("--walk"), os("--json"), os(path)]),
            "du --walk --json",
        );
        let v: Value = serde_json::from_str(&out).expect("du JSON");
        let obj = v.as_object().expect("object");
        let mut keys: Vec<&String> = obj.keys().collect();
        keys.sort();
        assert_eq!(keys, ["bytes", "dirs", "files", "others", "symlinks"]);
        let n = |k: &str| v[k].as_u64().expect(k);
        Counts {
            files: n("files"),
            dirs: n("dirs"),
            symlinks: n("symlinks"),
            others: n("others"),
            bytes: n("bytes"),
        }
    }

    /// A small tree with every kind of entry: nested dirs, files of various sizes (one a sparse
    /// file over two 64 MiB chunks), a symlink, a hard link, a fifo, a non-UTF-8 name, an xattr.
    fn make_tree(root: &Path) -> bool {
        let d = |p: &str| std::fs::create_dir_all(root.join(p)).expect("mkdir");
        d("a/b/c");
        d("empty");
        d("x y");
        std::fs::write(root.join("a/one"), b"1").expect("write");
        std::fs::write(root.join("a/b/page"), vec![7u8; 4096]).expect("write");
        std::fs::write(root.join("x y/zero"), b"").expect("write");
        // Sparse files whose last byte is data: `big` has data in its third chunk only,
        // `mib` in its only chunk.
        for (name, len) in [("a/b/c/big", 128 * 1024 * 1024 + 1), ("a/mib", 1 << 20)] {
            use std::os::unix::fs::FileExt;
            File::create(root.join(name))
                .and_then(|f| f.write_all_at(b"x", len - 1))
                .expect("sparse file");
        }
        std::os::unix::fs::symlink("b/page", root.join("a/link")).expect("symlink");
        std::os::unix::fs::symlink("/nowhere/at/all", root.join("dangling")).expect("symlink");
        std::fs::hard_link(root.join("a/one"), root.join("x y/one-again")).expect("hard link");
        let fifo = Command::new("mkfifo")
            .arg(root.join("a/fifo"))
            .status()
            .expect("run mkfifo");
        assert!(fifo.success());
        let odd = OsStr::from_bytes(b"caf\xe9");
        std::fs::write(root.join(odd), b"latin-1 name").expect("write odd name");
        xattr::set(root.join("a/one"), "user.meta.test", b"value").is_ok()
    }

    #[test]
    fn import_du_fsck_dump_load_roundtrip() {
        let src = tempfile::tempdir().expect("tempdir");
        let vols = tempfile::tempdir().expect("tempdir");
        let has_xattr = make_tree(src.path());
        let url = rocks_url(&vols.path().join("vol1"));
        let url2 = rocks_url(&vols.path().join("vol2"));

        let out = meta(&url, &[os("import"), src.path().as_os_str(), os("--json")]);
        let summary: Value = serde_json::from_str(&ok(&out, "import")).expect("import JSON");
        assert_eq!(summary["errors"], 0, "{summary}");
        assert_eq!(summary["hard_links"], 1, "{summary}");
        if has_xattr {
            assert_eq!(summary["xattrs"], 1, "{summary}");
        }

        // The import ended its session; `status` (which opens none) lists no session.
        let st: Value =
            serde_json::from_str(&ok(&meta(&url, &[os("status"), os("--json")]), "status"))
                .expect("status JSON");
        assert_eq!(st["sessions"], serde_json::json!([]), "{st}");
        let text = ok(&meta(&url, &[os("status")]), "status");
        assert!(text.contains("0 session(s)"), "{text}");

        // du --walk equals find; du (from the directory statistics) agrees with it.
        let want = find_counts(src.path());
        assert_eq!(du_json(&url, "/"), want);
        let sum: Value = serde_json::from_str(&ok(
            &meta(&url, &[os("du"), os("--json"), os("/")]),
            "du --json",
        ))
        .expect("du JSON");
        assert_eq!(sum["dirs"], want.dirs, "{sum}");
        // The file named in two directories (a/one, x y/one-again) is in neither's
        // statistics: the other entries are files of the summary.
        assert_eq!(
            sum["files"],
            want.files + want.symlinks + want.others - 2,
            "{sum}"
        );
        assert_eq!(want.files, 7);
        assert_eq!(want.dirs, 6);
        assert_eq!(want.symlinks, 2);
        assert_eq!(want.others, 1);
        assert_eq!(du_json(&url, "/a"), find_counts(&src.path().join("a")));
        assert_eq!(
            du_json(&url, "/a/one"),
            Counts {
                files: 1,
                bytes: 1,
                ..Default::default()
            }
        );

        // Attributes came across.
        let st: Value = serde_json::from_str(&ok(
            &meta(&url, &[os("stat"), os("--json"), os("/a/b/c/big")]),
            "stat",
        ))
        .expect("stat JSON");
        assert_eq!(st["length"], 128 * 1024 * 1024 + 1);
        assert_eq!(st["chunks"], 1, "data in the third chunk only: {st}");
        let src_md = std::fs::symlink_metadata(src.path().join("a/b/c/big")).expect("stat");
        assert_eq!(st["mtime"]["sec"], src_md.mtime());
        assert_eq!(st["mode"], src_md.mode() & 0o7777);
        // A one-chunk file is one op: owner, mode, all three times, length and its slice.
        let st: Value = serde_json::from_str(&ok(
            &meta(&url, &[os("stat"), os("--json"), os("/a/mib")]),
            "stat",
        ))
        .expect("stat JSON");
        let md = std::fs::symlink_metadata(src.path().join("a/mib")).expect("stat");
        assert_eq!(st["length"], 1 << 20, "{st}");
        assert_eq!(st["chunks"], 1, "{st}");
        assert_eq!(st["uid"], md.uid(), "{st}");
        assert_eq!(st["gid"], md.gid(), "{st}");
        assert_eq!(st["mode"], md.mode() & 0o7777, "{st}");
        for (field, sec, nsec) in [
            ("atime", md.atime(), md.atime_nsec()),
            ("mtime", md.mtime(), md.mtime_nsec()),
            ("ctime", md.ctime(), md.ctime_nsec()),
        ] {
            assert_eq!(st[field]["sec"], sec, "{field}: {st}");
            assert_eq!(st[field]["nsec"], nsec, "{field}: {st}");
        }
        // One op per entry (a Link for the second name of a file), then the directories'
        // attributes (and the target's), the xattr, and for the 128 MiB file a Write for its
        // third chunk (the first two are holes) and a SetAttr.
        // (`find` counts the top directory too.)
        let dirs = want.dirs - 1;
        let entries = want.files + dirs + want.symlinks + want.others;
        let xattrs = u64::from(has_xattr);
        assert_eq!(summary["ops"], entries + dirs + 1 + xattrs + 2, "{summary}");
        let st: Value = serde_json::from_str(&ok(
            &meta(&url, &[os("stat"), os("--json"), os("/a/one")]),
            "stat",
        ))
        .expect("stat JSON");
        assert_eq!(st["nlink"], 2);
        if has_xattr {
            assert_eq!(st["xattrs"][0], "user.meta.test");
        }
        let st: Value = serde_json::from_str(&ok(
            &meta(&url, &[os("stat"), os("--json"), os("/a/link")]),
            "stat",
        ))
        .expect("stat JSON");
        assert_eq!(st["target"], "b/page");
        // Directory mtimes are those of the source (set after their contents).
        let st: Value = serde_json::from_str(&ok(
            &meta(&url, &[os("stat"), os("--json"), os("/a")]),
            "stat",
        ))
        .expect("stat JSON");
        let a_md = std::fs::symlink_metadata(src.path().join("a")).expect("stat");
        assert_eq!(st["mtime"]["sec"], a_md.mtime());
        assert_eq!(st["mtime"]["nsec"], a_md.mtime_nsec());

        // ls / tree see the entries, including the non-UTF-8 name as raw bytes.
        let out = meta(&url, &[os("ls"), os("/")]);
        ok(&out, "ls");
        assert!(out.stdout.split(|&b| b == b'\n').any(|l| l == b"caf\xe9"));
        let out = ok(&meta(&url, &[os("ls"), os("-l"), os("/a")]), "ls -l");
        assert!(out.contains("link -> b/page"), "{out}");
        assert!(
            out.lines()
                .any(|l| l.starts_with('p') && l.ends_with("fifo")),
            "{out}"
        );
        let out = ok(
            &meta(&url, &[os("tree"), os("/"), os("--depth"), os("1")]),
            "tree",
        );
        assert!(out.contains("├── a\n") || out.contains("└── a\n"), "{out}");
        assert!(!out.contains("page"), "depth 1 must not descend: {out}");

        // fsck is clean.
        let out = ok(&meta(&url, &[os("fsck")]), "fsck");
        assert!(out.contains("clean"), "{out}");
        let rep: Value =
            serde_json::from_str(&ok(&meta(&url, &[os("fsck"), os("--json")]), "fsck --json"))
                .expect("fsck JSON");
        assert_eq!(rep["clean"], true);
        assert_eq!(
            rep["inodes"],
            want.dirs + want.files + want.symlinks + want.others - 1
        );

        // dump | load | dump round-trips exactly.
        let dump1 = meta(&url, &[os("dump")]);
        ok(&dump1, "dump");
        let dump_file = vols.path().join("dump.jsonl");
        std::fs::write(&dump_file, &dump1.stdout).expect("save dump");
        ok(&meta(&url2, &[os("load"), dump_file.as_os_str()]), "load");
        let dump2 = meta(&url2, &[os("dump"), os("-")]);
        ok(&dump2, "dump 2");
        assert!(dump1.stdout == dump2.stdout, "dumps differ");
        // Also through a file argument and stdin.
        let dump_file2 = vols.path().join("dump2.jsonl");
        ok(
            &meta(&url2, &[os("dump"), dump_file2.as_os_str()]),
            "dump FILE",
        );
        assert_eq!(std::fs::read(&dump_file2).expect("read"), dump1.stdout);
        let url3 = rocks_url(&vols.path().join("vol3"));
        let load3 = Command::new(META)
            .args(["--url", &url3, "load", "-"])
            .stdin(File::open(&dump_file).expect("open dump"))
            .output()
            .expect("run meta");
        ok(&load3, "load -");
        assert_eq!(du_json(&url3, "/"), want);
        ok(&meta(&url3, &[os("fsck")]), "fsck of loaded volume");

        // Loading over a volume needs --force.
        let again = meta(&url2, &[os("load"), dump_file.as_os_str()]);
        let err = failed(&again, "load over a volume");
        assert!(err.contains("EEXIST"), "{err}");
        ok(
            &meta(&url2, &[os("load"), dump_file.as_os_str(), os("--force")]),
            "load --force",
        );

        // stats.
        let stats: Value =
            serde_json::from_str(&ok(&meta(&url, &[os("stats"), os("--json")]), "stats"))
                .expect("stats JSON");
        assert_eq!(stats["setting"]["name"], "meta");
        assert_eq!(stats["counters"]["totalInodes"], rep["inodes"]);
        assert!(stats["process"]["inode_pool"]["reserve_calls"].is_u64());
    }

    /// `meta import` sends `--batch` ops per batch, else the URL's `batch_size`, else 4096
    /// (the flag's default once overrode the URL's value).
    #[test]
    fn import_batch_size_comes_from_the_flag_or_the_url() {
        let src = tempfile::tempdir().expect("tempdir");
        let vols = tempfile::tempdir().expect("tempdir");
        make_tree(src.path());
        let url = rocks_url(&vols.path().join("vol"));
        ok(&meta(&url, &[os("format")]), "format");
        let batches = |url: &str, to: &str, flag: &[&str]| -> (u64, u64) {
            let mut args = vec![os("import"), src.path().as_os_str(), os("--to"), os(to)];
            args.extend(flag.iter().map(|a| os(a)));
            args.push(os("--json"));
            let out = ok(&meta(url, &args), "import");
            let v: Value = serde_json::from_str(&out).expect("import JSON");
            let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("{k} in {v}"));
            (n("ops"), n("batches"))
        };
        let (ops, b) = batches(&format!("{url}?batch_size=2"), "/small", &[]);
        assert!(
            ops > 4 && b * 3 >= ops,
            "batch_size=2: {ops} ops in {b} batches"
        );
        let (ops, b) = batches(
            &format!("{url}?batch_size=2"),
            "/flag",
            &["--batch", "1000"],
        );
        assert!(b < ops / 2, "--batch 1000 wins: {ops} ops in {b} batches");
        let (ops, b) = batches(&url, "/default", &[]);
        assert!(b < ops / 2, "default 4096: {ops} ops in {b} batches");
        for bad in ["0", "2000000"] {
            let out = meta(
                &url,
                &[os("import"), src.path().as_os_str(), os("--batch"), os(bad)],
            );
            let e = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success() && e.contains("--batch"),
                "--batch {bad}: {e}"
            );
        }
    }

    #[test]
    fn import_into_a_subdirectory_and_twice() {
        let src = tempfile::tempdir().expect("tempdir");
        let vols = tempfile::tempdir().expect("tempdir");
        make_tree(src.path());
        let url = rocks_url(&vols.path().join("vol"));
        ok(
            &meta(
                &url,
                &[
                    os("format"),
                    os("--name"),
                    os("sub"),
                    os("--capacity"),
                    os("10G"),
                ],
            ),
            "format",
        );
        ok(
            &meta(
                &url,
                &[os("import"), src.path().as_os_str(), os("--to"), os("/x/y")],
            ),
            "import",
        );
        let want = find_counts(src.path());
        assert_eq!(du_json(&url, "/x/y"), want);
        let all = du_json(&url, "/");
        assert_eq!(all.dirs, want.dirs + 2);
        // A second import into the same place: every name exists; the errors are listed, the
        // import goes on, and the exit status says so.
        let again = meta(
            &url,
            &[os("import"), src.path().as_os_str(), os("--to"), os("/x/y")],
        );
        assert!(!again.status.success());
        let out = String::from_utf8_lossy(&again.stdout);
        assert!(out.contains("EEXIST"), "{out}");
        let err = String::from_utf8_lossy(&again.stderr);
        assert!(err.contains("error(s)"), "{err}");
        assert_eq!(du_json(&url, "/x/y"), want);
        ok(&meta(&url, &[os("fsck")]), "fsck");
        let stats: Value =
            serde_json::from_str(&ok(&meta(&url, &[os("stats"), os("--json")]), "stats"))
                .expect("stats JSON");
        assert_eq!(stats["setting"]["name"], "sub");
        assert_eq!(stats["setting"]["capacity"], 10u64 << 30);
        // Importing onto a file fails cleanly.
        let bad = meta(
            &url,
            &[
                os("import"),
                src.path().as_os_str(),
                os("--to"),
                os("/x/y/a/one"),
            ],
        );
        let e = failed(&bad, "import onto a file");
        assert!(e.contains("ENOTDIR"), "{e}");
    }

    #[test]
    fn format_is_idempotent_and_force_erases() {
        let vols = tempfile::tempdir().expect("tempdir");
        let url = rocks_url(&vols.path().join("vol"));
        ok(
            &meta(&url, &[os("format"), os("--name"), os("v1")]),
            "format",
        );
        let out = ok(
            &meta(&url, &[os("format"), os("--name"), os("v1")]),
            "format again",
        );
        assert!(out.contains("already formatted"), "{out}");
        let e = failed(
            &meta(&url, &[os("format"), os("--name"), os("v2")]),
            "format other name",
        );
        assert!(e.contains("EEXIST") && e.contains("--force"), "{e}");
        ok(
            &meta(&url, &[os("format"), os("--name"), os("v2"), os("--force")]),
            "format --force",
        );
        // A malformed size is a usage error (clap's message, exit status 2).
        let bad = meta(&url, &[os("format"), os("--capacity"), os("lots")]);
        assert_eq!(bad.status.code(), Some(2));
        let e = String::from_utf8_lossy(&bad.stderr);
        assert!(e.contains("\"lots\" is not a size"), "{e}");
    }

    #[test]
    fn errors_are_one_clean_line() {
        let vols = tempfile::tempdir().expect("tempdir");
        let e = failed(&meta("bogus://x", &[os("ls")]), "unknown scheme");
        assert!(e.contains("bogus") && e.contains("memory"), "{e}");
        assert!(e.contains("EINVAL"), "{e}");
        let e = failed(&meta("not a url", &[os("ls")]), "unparsable URL");
        assert!(e.contains("URL"), "{e}");
        let e = failed(&meta("/some/path", &[os("ls")]), "path as URL");
        assert!(e.contains("rocksdb:///some/path"), "{e}");
        let e = failed(
            &meta("tikv://pd:2379/vol", &[os("ls")]),
            "scheme not built in",
        );
        assert!(e.contains("tikv") && e.contains("feature"), "{e}");
        let e = failed(
            &meta("memory://?bogus_option=1", &[os("ls")]),
            "unknown option",
        );
        assert!(e.contains("bogus_option"), "{e}");
        let e = failed(
            &meta(
                "memory://?batch_size=zero",
                &[os("bench"), os("--files"), os("10")],
            ),
            "bad option value",
        );
        assert!(e.contains("batch_size"), "{e}");
        let rurl = rocks_url(&vols.path().join("vol"));
        let e = failed(
            &meta(&format!("{rurl}?sync=maybe"), &[os("format")]),
            "bad sync",
        );
        assert!(e.contains("sync"), "{e}");
        // A bad engine option on a scheme this build has is reported as it is (it was once
        // masked as "this build lacks the cargo feature"); a '#' is refused, not cut off.
        let sqlite = format!("sqlite://{}", vols.path().join("s.db").display());
        for (url, want) in [
            (format!("{rurl}?batch_size=zero"), "batch_size"),
            (format!("{rurl}?batch_interval=100years"), "batch_interval"),
            (format!("{rurl}#2"), "%23"),
            (format!("{sqlite}?busy_timeout=30days"), "busy_timeout"),
        ] {
            let e = failed(&meta(&url, &[os("format")]), "bad URL");
            assert!(e.contains(want) && !e.contains("feature"), "{url}: {e}");
        }
        assert!(!vols.path().join("s.db").exists(), "nothing created");
        assert!(!vols.path().join("vol").exists(), "nothing created");
        // Read commands never create a volume.
        let missing = rocks_url(&vols.path().join("missing"));
        let e = failed(&meta(&missing, &[os("du")]), "missing volume");
        assert!(e.contains("ENOENT"), "{e}");
        assert!(!vols.path().join("missing").exists());
        let e = failed(&meta("memory://", &[os("ls")]), "unformatted memory volume");
        assert!(e.contains("not formatted"), "{e}");
        // Paths inside the volume.
        ok(&meta(&rurl, &[os("format")]), "format");
        let e = failed(&meta(&rurl, &[os("ls"), os("/nope")]), "missing path");
        assert!(e.contains("/nope") && e.contains("ENOENT"), "{e}");
        let e = failed(
            &meta(&rurl, &[os("stat"), os("/nope/deeper")]),
            "missing path",
        );
        assert!(e.contains("ENOENT"), "{e}");
        // Malformed dumps.
        let bad = vols.path().join("bad.jsonl");
        std::fs::write(&bad, b"{\"dump_version\":1,\"setting\":").expect("write");
        let other = rocks_url(&vols.path().join("other"));
        let e = failed(
            &meta(&other, &[os("load"), bad.as_os_str()]),
            "malformed dump",
        );
        assert!(e.contains("line 1") && e.contains("EINVAL"), "{e}");
        let e = failed(
            &meta(&other, &[os("load"), os("/nonexistent/dump")]),
            "missing dump file",
        );
        assert!(e.contains("ENOENT"), "{e}");
        let e = failed(
            &meta(&rurl, &[os("import"), os("/nonexistent/dir")]),
            "missing source",
        );
        assert!(e.contains("ENOENT"), "{e}");
    }

    #[test]
    fn bench_on_a_temporary_rocksdb_volume() {
        let out = Command::new(META)
            .env_remove("META_URL")
            .args(["bench", "--files", "100", "--tasks", "4", "--json"])
            .output()
            .expect("run meta");
        let v: Value = serde_json::from_str(&ok(&out, "bench")).expect("bench JSON");
        let url = v["runs"][0]["url"].as_str().expect("url");
        assert!(url.starts_with("rocksdb://"), "{url}");
        let dir = PathBuf::from(url.trim_start_matches("rocksdb://"));
        assert!(
            !dir.exists(),
            "temporary volume {} left behind",
            dir.display()
        );
    }

    #[test]
    fn closed_stdout_ends_quietly() {
        use std::io::Read;
        let src = tempfile::tempdir().expect("tempdir");
        let vols = tempfile::tempdir().expect("tempdir");
        for i in 0..1500 {
            std::fs::write(src.path().join(format!("file-{i:05}")), b"x").expect("write");
        }
        let url = rocks_url(&vols.path().join("vol"));
        ok(
            &meta(&url, &[os("import"), src.path().as_os_str()]),
            "import",
        );
        let mut child = Command::new(META)
            .args(["--url", &url, "dump"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn meta dump");
        let mut buf = [0u8; 100];
        child
            .stdout
            .take()
            .expect("stdout")
            .read_exact(&mut buf)
            .expect("read");
        // The read end is closed now (dropped with the temporary).
        let out = child.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(141), "{err}");
        assert!(err.is_empty(), "{err}");
    }

    /// A sparse file imports as its length and one slice per data extent: holes need no
    /// slice (before, an 8 TiB file with nothing written made 131,072 slices and ops).
    #[test]
    fn sparse_files_import_their_data_extents_only() {
        use std::io::{Seek, SeekFrom, Write};
        let src = tempfile::tempdir().expect("tempdir");
        let vols = tempfile::tempdir().expect("tempdir");
        let url = rocks_url(&vols.path().join("vol"));
        let tib8 = 1u64 << 43;
        let empty = File::create(src.path().join("empty")).expect("create");
        empty.set_len(tib8).expect("set_len");
        let mut two = File::create(src.path().join("two")).expect("create");
        two.set_len(tib8).expect("set_len");
        two.write_all(b"head").expect("write");
        two.seek(SeekFrom::Start((5 << 30) + 100)).expect("seek");
        two.write_all(b"middle").expect("write");
        two.sync_all().expect("sync");
        let out = meta(&url, &[os("import"), src.path().as_os_str(), os("--json")]);
        let summary: Value = serde_json::from_str(&ok(&out, "import")).expect("import JSON");
        assert_eq!(summary["errors"], 0, "{summary}");
        let stat = |p: &str| -> Value {
            serde_json::from_str(&ok(&meta(&url, &[os("stat"), os("--json"), os(p)]), "stat"))
                .expect("stat JSON")
        };
        let st = stat("/empty");
        assert_eq!(st["length"], tib8, "{st}");
        assert_eq!(st["chunks"], 0, "a hole needs no slice: {st}");
        let st = stat("/two");
        assert_eq!(st["length"], tib8, "{st}");
        assert_eq!(st["chunks"], 2, "chunk 0 and the chunk at 5 GiB: {st}");
        // Two creates, for `two` a Write for its second chunk and its times again, and the
        // top directory's attributes.
        assert_eq!(summary["ops"], 2 + 2 + 1, "{summary}");
        ok(&meta(&url, &[os("fsck")]), "fsck");
    }

    /// `meta` run with a time limit: a command that loops forever fails the test instead of
    /// hanging it.
    fn meta_limited(url: &str, args: &[&str]) -> Output {
        Command::new("timeout")
            .arg("60")
            .arg(META)
            .env_remove("META_URL")
            .arg("--url")
            .arg(url)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run timeout meta")
    }

    /// A corrupted volume in which a directory is its own descendant (an entry added with
    /// sqlite3: `/a/b/up` names `/a` again) makes du, tree and dump fail with a clear error
    /// instead of walking forever.
    #[test]
    fn walks_report_a_directory_cycle() {
        let src = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(src.path().join("a/b")).expect("mkdir");
        let vols = tempfile::tempdir().expect("tempdir");
        // SQLite, whose rows sqlite3(1) can edit (`load` refuses a dump with a cycle).
        let db = vols.path().join("vol.db");
        let url2 = format!("sqlite://{}", db.display());
        ok(
            &meta(&url2, &[os("import"), src.path().as_os_str()]),
            "import",
        );
        // Entry "up" of `b` names `a`: a -> b -> a.
        let out = std::process::Command::new("sqlite3")
            .arg(&db)
            .arg(
                "INSERT INTO edge SELECT b.ino, X'7570', a.ino, a.type FROM edge a, edge b \
                 WHERE a.name = X'61' AND b.name = X'62'",
            )
            .output()
            .expect("sqlite3 (apt-get install sqlite3)");
        assert!(
            out.status.success(),
            "sqlite3: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for args in [vec!["du", "/"], vec!["tree", "/"], vec!["dump", "-"]] {
            let out = meta_limited(&url2, &args);
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                !out.status.success() && out.status.code() != Some(124),
                "{args:?} on a cycle: {} {err}",
                out.status
            );
            assert!(err.contains("second time"), "{args:?}: {err}");
        }
    }
    /// Crash consistency: `meta import` killed with SIGKILL at a random moment, 20 times on
    /// RocksDB (`sync=true`) and 20 on SQLite, each into its own directory of one volume, at a
    /// random point within the time one whole import takes on this machine; after every kill the volume reopens and fsck finds it clean (every batch is one
    /// commit: applied whole or not at all, counters and link counts included).
    #[test]
    fn killed_imports_leave_a_consistent_volume() {
        let src = tempfile::tempdir().expect("tempdir");
        for d in 0..40 {
            let dir = src.path().join(format!("d{d}"));
            std::fs::create_dir(&dir).expect("mkdir");
            for f in 0..100 {
                std::fs::write(
                    dir.join(format!("f{f}")),
                    if f % 2 == 0 { &b""[..] } else { b"x" },
                )
                .expect("write");
            }
        }
        let vols = tempfile::tempdir().expect("tempdir");
        let mut seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1)
            | 1;
        for url in [
            format!("{}?sync=true", rocks_url(&vols.path().join("r"))),
            format!("sqlite://{}", vols.path().join("s.db").display()),
        ] {
            ok(&meta(&url, &[os("format")]), "format");
            // One import run to its end measures this machine: the kills below land at a
            // random point within that time, so they interrupt however fast the machine is.
            let started = std::time::Instant::now();
            ok(
                &meta(
                    &url,
                    &[
                        os("import"),
                        os("--to"),
                        os("/full"),
                        src.path().as_os_str(),
                    ],
                ),
                "uninterrupted import",
            );
            let full_ms = (started.elapsed().as_millis() as u64).max(20);
            let mut interrupted = 0;
            for round in 0..20 {
                let to = format!("/r{round}");
                let mut child = Command::new(META)
                    .env_remove("META_URL")
                    .args(["--url", &url, "import", "--to", &to])
                    .arg(src.path())
                    .stdin(Stdio::null())
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("spawn meta import");
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                std::thread::sleep(std::time::Duration::from_millis(
                    full_ms * (50 + seed % 850) / 1000,
                ));
                let _ = child.kill();
                let status = child.wait().expect("wait");
                if !status.success() {
                    interrupted += 1;
                }
                let rep: Value = serde_json::from_str(&ok(
                    &meta(&url, &[os("fsck"), os("--json")]),
                    "fsck after a kill",
                ))
                .expect("fsck JSON");
                assert_eq!(rep["clean"], true, "{url}, round {round}: {rep}");
            }
            assert!(
                interrupted >= 5,
                "{url}: only {interrupted} of 20 imports were killed before they finished"
            );
        }
    }
}

/// Benchmark sizes out of range are refused up front with the limit, never attempted.
#[test]
fn benchmark_sizes_are_bounded() {
    for (args, want) in [
        (["bench", "--dirs", "100000000"], "directories"),
        (["bench", "--files", "0"], "files or pairs"),
        (["bench", "--files", "999g"], "files or pairs"),
        (["bench", "--tasks", "0"], "tasks"),
    ] {
        let argv: Vec<&OsStr> = args.iter().map(|a| os(a)).collect();
        let out = meta("memory://", &argv);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} accepted");
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
}

/// `meta mount --gc-interval` out of range is refused before anything is mounted (0 made the
/// deletion pass run without pause).
#[test]
fn mount_gc_interval_is_bounded() {
    let dir = tempfile::tempdir().expect("tempdir");
    for v in ["0", "0.01", "100000"] {
        let out = Command::new(META)
            .env_remove("META_URL")
            .args([os("mount"), os("memory://"), dir.path().as_os_str()])
            .args([os("--gc-interval"), os(v)])
            .stdin(Stdio::null())
            .output()
            .expect("run meta");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "--gc-interval {v} accepted");
        assert!(err.contains("--gc-interval"), "--gc-interval {v}: {err}");
    }
}
