//! `meta mount` cases beyond the real-program run of `mount.rs`, on SQLite volumes (two
//! processes can serve one): the lifecycle (`meta status` of a live mount, SIGTERM unmounts
//! and ends the session, a SIGKILLed mount is cleaned by `meta umount` and
//! `meta status --clean`; SIGTERM with a file held open, and with a backend that cannot
//! answer), data across a chunk boundary and compaction of a chunk written
//! many times, readdir while entries are added and removed, fcntl locks between two
//! mounts of one volume, and EFBIG past the largest file, a write lost by a failed commit
//! reported at close(2), truncate(2) by a writer who is not the owner.
//!
//! Needs root and `/dev/fuse`: without them each test is skipped with a loud line, or fails
//! under `META_MOUNT_TESTS_REQUIRE=1` (set by `cargo xtask test` as root).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use common::{Mount, meta, mounted, no_fuse, run, skip_or_fail, slice_files, wait_until};
use nix::sys::signal::Signal;

fn volume(work: &Path, extra: &str) -> String {
    let url = format!("sqlite://{}{extra}", work.join("vol.db").display());
    run(meta(&url).args(["format", "--force"]), "meta format");
    url
}

fn status(url: &str, clean: bool) -> String {
    let mut c = meta(url);
    c.args(["status", "--json"]);
    if clean {
        c.arg("--clean");
    }
    run(&mut c, "meta status")
}

/// The number of sessions in `meta status --json` output.
fn sessions(json: &str) -> usize {
    json.matches("\"sid\":").count()
}

#[test]
fn lifecycle_status_sigterm_and_a_crashed_mount() {
    if let Some(why) = no_fuse() {
        return skip_or_fail(&why);
    }
    let work = tempfile::tempdir().expect("tempdir");
    // Heartbeats every 100 ms: a dead session expires 0.5 s after its last one.
    let url = volume(work.path(), "?heartbeat=100ms");

    // A live mount is one session; a file held open after its name is gone shows as
    // open and sustained.
    let m = Mount::start(&url, work.path(), "mnt", &[]);
    let path = m.mnt.join("held");
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .expect("create");
    f.write_all(b"still here").expect("write");
    f.flush().expect("flush");
    std::fs::remove_file(&path).expect("unlink");
    let st = status(&url, false);
    assert_eq!(sessions(&st), 1, "{st}");
    assert!(
        st.contains("\"sustained\": [\n"),
        "no sustained inode listed: {st}"
    );
    assert!(st.contains(&format!("\"pid\": {}", m.pid)), "{st}");
    let mut back = String::new();
    f.seek(SeekFrom::Start(0)).expect("seek");
    f.read_to_string(&mut back).expect("read after unlink");
    assert_eq!(back, "still here");
    drop(f);

    // SIGTERM: unmounted, the process exits, the session ends.
    m.signal(Signal::SIGTERM);
    assert!(
        wait_until(30, || !mounted(&m.mnt) && !m.alive()),
        "still mounted or running 30 s after SIGTERM; log:\n{}",
        m.log_text()
    );
    let st = status(&url, false);
    assert_eq!(sessions(&st), 0, "a session is left after SIGTERM: {st}");
    drop(m);

    // SIGKILL: the mount point is left dead (ENOTCONN) until `meta umount`; the session
    // stays until it expires and a client cleans it up.
    let m = Mount::start(&url, work.path(), "mnt", &[]);
    std::fs::write(m.mnt.join("a"), b"a").expect("write a");
    m.signal(Signal::SIGKILL);
    assert!(
        wait_until(10, || !m.alive()),
        "SIGKILL did not end the mount"
    );
    let err = std::fs::metadata(m.mnt.join("a")).expect_err("a dead mount answers nothing");
    assert_eq!(err.raw_os_error(), Some(libc::ENOTCONN), "{err}");
    assert!(mounted(&m.mnt));
    run(
        common::meta(&url).arg("umount").arg(&m.mnt),
        "meta umount of a crashed mount",
    );
    assert!(!mounted(&m.mnt), "meta umount left the dead mount");
    assert_eq!(sessions(&status(&url, false)), 1, "the crashed session");
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let st = status(&url, true);
    assert!(st.contains("\"cleaned\": [\n"), "nothing cleaned: {st}");
    assert_eq!(sessions(&st), 0, "{st}");
    let fsck = run(meta(&url).arg("fsck"), "meta fsck");
    assert!(fsck.starts_with("clean:"), "{fsck}");
}

/// SIGTERM while a process holds a file open in the mount: the kernel refuses a plain
/// unmount (EBUSY), so the mount is detached lazily instead of being left behind dead
/// (ENOTCONN until `meta umount --lazy`), and what was written to the open file (buffered
/// by the mount, never flushed by the kernel) is committed before the session ends.
#[test]
fn sigterm_detaches_a_busy_mount() {
    if let Some(why) = no_fuse() {
        return skip_or_fail(&why);
    }
    let work = tempfile::tempdir().expect("tempdir");
    let url = volume(work.path(), "");
    let m = Mount::start(&url, work.path(), "mnt", &[]);
    let mut held = File::create(m.mnt.join("held")).expect("create");
    held.write_all(b"open").expect("write");
    m.signal(Signal::SIGTERM);
    assert!(
        wait_until(30, || !m.alive()),
        "still running 30 s after SIGTERM; log:\n{}",
        m.log_text()
    );
    assert!(
        !mounted(&m.mnt),
        "a busy mount was left behind after SIGTERM; log:\n{}",
        m.log_text()
    );
    drop(held);
    drop(m);
    let m = Mount::start(&url, work.path(), "mnt", &[]);
    let back = std::fs::read(m.mnt.join("held")).expect("read held");
    assert_eq!(back, b"open", "the write to the file held open was lost");
    m.unmount();
}

/// SIGTERM while the backend cannot answer (another process holds the SQLite volume's write
/// lock, so every write waits and retries for minutes): the process still exits after
/// `--stop-timeout`, unmounted, and says so; its session stays for another client to clean
/// up once it expires.
#[test]
fn sigterm_with_a_stuck_backend_exits_after_stop_timeout() {
    if let Some(why) = no_fuse() {
        return skip_or_fail(&why);
    }
    let work = tempfile::tempdir().expect("tempdir");
    let url = volume(work.path(), "");
    let m = Mount::start(&url, work.path(), "mnt", &["--stop-timeout", "2"]);
    std::fs::write(m.mnt.join("a"), b"a").expect("write a");
    // sqlite3(1) holds the write lock while its stdin stays open.
    let mut locker = std::process::Command::new("sqlite3")
        .arg(work.path().join("vol.db"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("run sqlite3 (apt-get install sqlite3)");
    let mut stdin = locker.stdin.take().expect("sqlite3's stdin");
    stdin
        .write_all(b"BEGIN EXCLUSIVE;\nSELECT 1;\n")
        .expect("lock the volume");
    stdin.flush().expect("flush");
    std::thread::sleep(std::time::Duration::from_millis(500));
    let started = std::time::Instant::now();
    m.signal(Signal::SIGTERM);
    let exited = wait_until(60, || !m.alive());
    let took = started.elapsed();
    drop(stdin);
    let _ = locker.wait();
    assert!(
        exited,
        "still running 60 s after SIGTERM; log:\n{}",
        m.log_text()
    );
    // 2 s, the runtime's 5 s for its tasks, and slack for a loaded machine.
    assert!(
        took < std::time::Duration::from_secs(20),
        "took {took:?} to exit with --stop-timeout 2; log:\n{}",
        m.log_text()
    );
    assert!(!mounted(&m.mnt), "left mounted; log:\n{}", m.log_text());
    let log = m.log_text();
    assert!(
        log.contains("--stop-timeout"),
        "the log does not say why: {log}"
    );
    assert_eq!(
        sessions(&status(&url, false)),
        1,
        "the session that could not end"
    );
}

#[test]
fn chunk_boundary_compaction_and_readdir() {
    if let Some(why) = no_fuse() {
        return skip_or_fail(&why);
    }
    let work = tempfile::tempdir().expect("tempdir");
    let url = volume(work.path(), "");
    let m = Mount::start(
        &url,
        work.path(),
        "mnt",
        &["--compact-slices", "16", "--gc-interval", "0.1"],
    );

    // 1 MiB written across the 64 MiB chunk boundary, read back across it.
    const CHUNK: u64 = 64 << 20;
    let big = m.mnt.join("big");
    let data: Vec<u8> = (0..1u32 << 20).map(|i| (i % 251) as u8).collect();
    let f = File::create(&big).expect("create big");
    f.write_all_at(&data, CHUNK - 4096)
        .expect("write across the boundary");
    drop(f);
    let f = File::open(&big).expect("open big");
    let mut back = vec![0u8; data.len()];
    f.read_exact_at(&mut back, CHUNK - 4096).expect("read back");
    assert!(back == data, "bytes across the chunk boundary differ");
    let mut head = [1u8; 16];
    f.read_exact_at(&mut head, 1000).expect("read the hole");
    assert_eq!(head, [0u8; 16], "a hole reads as zeros");
    assert_eq!(
        std::fs::metadata(&big).expect("stat").len(),
        CHUNK - 4096 + (1 << 20)
    );
    drop(f);
    std::fs::remove_file(&big).expect("rm big");
    assert!(
        wait_until(30, || slice_files(&m.data) == 0),
        "big's slices not collected"
    );

    // 200 appends, each fsync'd (one slice each): every 16th slice compacts the chunk (this
    // mount's appends wait for the compaction), so at most 16 slices + the compacted one are
    // left once the GC loop has collected the dropped ones, and the bytes stay right.
    let log = m.mnt.join("log");
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .expect("open log");
    let mut want = Vec::new();
    for i in 0..200 {
        let line = format!("line {i:04} {}\n", "x".repeat(i % 37));
        f.write_all(line.as_bytes()).expect("append");
        f.sync_all().expect("fsync");
        want.extend_from_slice(line.as_bytes());
    }
    drop(f);
    assert_eq!(std::fs::read(&log).expect("read log"), want);
    assert!(
        wait_until(30, || slice_files(&m.data) <= 17),
        "{} slice files for 200 appends: compaction did not keep up; log:\n{}",
        slice_files(&m.data),
        m.log_text()
    );
    assert_eq!(std::fs::read(&log).expect("read log again"), want);

    // readdir while entries are added and removed (more entries than one getdents(2)
    // buffer holds, so the listing goes on from its kernel offset after the changes):
    // every entry present throughout is listed exactly once and none twice. Entries
    // removed or added meanwhile may or may not be listed (readdir(3), POSIX).
    let dir = m.mnt.join("dir");
    std::fs::create_dir(&dir).expect("mkdir");
    let name = |i: usize| format!("entry-{i:05}-{}", "n".repeat(40));
    for i in 0..2000 {
        File::create(dir.join(name(i))).expect("create entry");
    }
    let mut listing = nix::dir::Dir::open(
        &dir,
        nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_DIRECTORY,
        nix::sys::stat::Mode::empty(),
    )
    .expect("opendir");
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut iter = listing.iter();
    for e in iter.by_ref().take(300) {
        let e = e.expect("readdir");
        *seen
            .entry(e.file_name().to_string_lossy().into_owned())
            .or_default() += 1;
    }
    // Every third entry goes, listed already or not (a cursor that counts entries would
    // then skip some), and 300 new ones come.
    let removed: BTreeSet<String> = (0..2000).step_by(3).map(name).collect();
    for n in &removed {
        std::fs::remove_file(dir.join(n)).expect("remove entry");
    }
    for i in 2000..2300 {
        File::create(dir.join(name(i))).expect("add entry");
    }
    for e in iter {
        let e = e.expect("readdir");
        *seen
            .entry(e.file_name().to_string_lossy().into_owned())
            .or_default() += 1;
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "listed twice: {twice:?}");
    let missed: Vec<String> = (0..2000)
        .map(name)
        .filter(|n| !removed.contains(n) && !seen.contains_key(n))
        .collect();
    assert!(
        missed.is_empty(),
        "{} entries there throughout were not listed, e.g. {:?}",
        missed.len(),
        missed.first()
    );
    drop(listing);
    m.unmount();
    let fsck = run(meta(&url).arg("fsck"), "meta fsck");
    assert!(fsck.starts_with("clean:"), "{fsck}");
}

/// A byte-range lock of `kind` (`F_RDLCK`, `F_WRLCK`, `F_UNLCK`) over [start, start+len)
/// (`len` 0: to the end of the file).
fn range(kind: libc::c_int, start: i64, len: i64) -> libc::flock {
    libc::flock {
        l_type: kind as libc::c_short,
        l_whence: libc::SEEK_SET as libc::c_short,
        l_start: start,
        l_len: len,
        l_pid: 0,
    }
}

/// Sets a lock of `kind` over [start, start+len) through `f` (`F_SETLK`, non-blocking).
fn setlk(f: &File, kind: libc::c_int, start: i64, len: i64) -> nix::Result<libc::c_int> {
    nix::fcntl::fcntl(f, nix::fcntl::FcntlArg::F_SETLK(&range(kind, start, len)))
}

/// A file of a mount opened for reading and writing.
fn open_rw(path: &Path) -> File {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()))
}

#[test]
fn fcntl_locks_between_two_mounts() {
    if let Some(why) = no_fuse() {
        return skip_or_fail(&why);
    }
    let work = tempfile::tempdir().expect("tempdir");
    let url = volume(work.path(), "");
    let a = Mount::start(&url, work.path(), "a", &[]);
    let b = Mount::start(&url, work.path(), "b", &[]);
    std::fs::write(a.mnt.join("f"), b"0123456789").expect("write through a");
    assert_eq!(
        std::fs::read(b.mnt.join("f")).expect("read through b"),
        b"0123456789",
        "a file written through one mount is read through the other"
    );
    let (fa, fb) = (open_rw(&a.mnt.join("f")), open_rw(&b.mnt.join("f")));
    setlk(&fa, libc::F_WRLCK, 0, 100).expect("write lock [0,100) through a");
    assert_eq!(
        setlk(&fb, libc::F_WRLCK, 50, 10),
        Err(nix::errno::Errno::EAGAIN),
        "b took a lock a holds"
    );
    let mut probe = range(libc::F_RDLCK, 0, 0);
    nix::fcntl::fcntl(&fb, nix::fcntl::FcntlArg::F_GETLK(&mut probe)).expect("getlk");
    assert_eq!(
        (i32::from(probe.l_type), probe.l_start, probe.l_len),
        (libc::F_WRLCK, 0, 100),
        "getlk through b reports a's lock"
    );
    // Unlocking the middle splits a's lock: [40,60) is free, the rest is not.
    setlk(&fa, libc::F_UNLCK, 40, 20).expect("unlock [40,60)");
    setlk(&fb, libc::F_WRLCK, 45, 10).expect("b locks inside the freed range");
    assert_eq!(
        setlk(&fb, libc::F_WRLCK, 30, 5),
        Err(nix::errno::Errno::EAGAIN)
    );
    // Closing a's descriptor drops its locks (fcntl(2): any close by the owner).
    drop(fa);
    assert!(
        wait_until(10, || setlk(&fb, libc::F_WRLCK, 0, 0).is_ok()),
        "a's locks outlived its close"
    );
    drop(fb);
    a.unmount();
    b.unmount();
}

/// close(2) of `f`, with its error (dropping a `File` ignores it).
fn close(f: File) -> nix::Result<()> {
    use std::os::fd::IntoRawFd;
    nix::unistd::close(f.into_raw_fd())
}

#[test]
fn efbig_lost_writes_at_close_and_truncate_by_a_writer() {
    if let Some(why) = no_fuse() {
        return skip_or_fail(&why);
    }
    let work = tempfile::tempdir().expect("tempdir");
    // (nobody must reach the mount point.)
    std::fs::set_permissions(
        work.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .expect("chmod work dir");
    let url = volume(work.path(), "");
    // Engine checks (an -o without default_permissions), as a gateway would run them.
    let m = Mount::start(&url, work.path(), "mnt", &["-o", "allow_other"]);

    // write(2) and truncate(2) past the engine's largest file (2^54): EFBIG, the file intact
    // (an offset of 2^58 once wrapped to chunk 0 and overwrote byte 0).
    let path = m.mnt.join("f");
    std::fs::write(&path, b"abc").expect("write f");
    let f = OpenOptions::new().write(true).open(&path).expect("open f");
    for off in [1u64 << 54, 1 << 58] {
        let e = f.write_at(b"X", off).expect_err("a write past 2^54");
        assert_eq!(e.raw_os_error(), Some(libc::EFBIG), "offset {off}: {e}");
    }
    let e = f.set_len((1 << 54) + 1).expect_err("a truncate past 2^54");
    assert_eq!(e.raw_os_error(), Some(libc::EFBIG), "{e}");
    close(f).expect("close f");
    assert_eq!(std::fs::read(&path).expect("read f"), b"abc");

    // truncate(2) by path needs write permission only, also under the engine's checks
    // (truncate(2); a time update along with it is the kernel's, not a utimensat(2)).
    std::fs::write(m.mnt.join("shared"), b"0123456789").expect("write shared");
    let shared = m.mnt.join("shared");
    run(
        std::process::Command::new("chmod").arg("666").arg(&shared),
        "chmod 666",
    );
    // (truncate(2) by path: coreutils' truncate opens the file and calls ftruncate(2).)
    let out = std::process::Command::new("runuser")
        .args(["-u", "nobody", "--", "python3", "-c"])
        .arg("import os, sys; os.truncate(sys.argv[1], 4)")
        .arg(&shared)
        .output()
        .expect("runuser");
    assert!(
        out.status.success(),
        "truncate by a writer who is not the owner: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&shared).expect("read shared"), b"0123");

    // A commit that fails (here: EDQUOT) in a read by another descriptor loses the buffered
    // write; the writer's close(2) reports it (it once returned 0).
    std::fs::create_dir(m.mnt.join("q")).expect("mkdir q");
    run(
        meta(&url).args(["quota", "set", "/q", "--space", "16K"]),
        "meta quota set",
    );
    let big = m.mnt.join("q").join("big");
    let w = File::create(&big).expect("create big");
    w.write_all_at(&[7u8; 100_000], 0).expect("buffered write");
    let mut r = File::open(&big).expect("open big for reading");
    let mut byte = [0u8; 1];
    let _ = r.read(&mut byte); // commits first; its own result is not the point
    // (The reader closes first: its close must not take the error from the writer's.)
    drop(r);
    let e = close(w).expect_err("the writer's close after its data was lost");
    assert_eq!(e, nix::errno::Errno::EDQUOT);
    m.unmount();
}
