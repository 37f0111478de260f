//! What is specific to the RocksDB backend: persistence across reopen (memtable, WAL and SST
//! reads), the volume lock, URL options, batch atomicity through one WriteBatch, and how damaged
//! files are reported. The shared POSIX suite comes from meta-conformance.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use futures::future::try_join_all;
use meta_core::kv::KvStore;
use meta_core::{
    Backend, Caller, ErrorKind, FileType, IdKind, Ino, Meta, MetaOptions, Op, RenameFlags, Setting,
    Slice, Timespec, XattrFlags, parse_url,
};
use meta_rocks::{RocksBackend, RocksOptions, WriteStats, open, open_path};

/// Drops `meta` and waits until its background tasks (batcher, ID-pool prefetch) have released
/// their handles, so that dropping `backend` closes the database.
async fn close(meta: Meta, backend: Arc<RocksBackend>) -> anyhow::Result<()> {
    meta.flush().await?;
    drop(meta);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Arc::strong_count(&backend) > 1 {
        ensure!(
            Instant::now() < deadline,
            "Meta's tasks still hold the backend after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(backend);
    Ok(())
}

/// Every entry of directory `ino`, read in pages of 7 (so the cursor is exercised).
async fn list(b: &dyn Backend, ino: Ino) -> anyhow::Result<Vec<(Vec<u8>, Ino, FileType)>> {
    let mut out = Vec::new();
    let mut cursor: Option<Vec<u8>> = None;
    loop {
        let page = b.read_dir(ino, cursor.as_deref(), 7, false).await?;
        let n = page.len();
        for e in page {
            cursor = Some(e.name.clone());
            out.push((e.name, e.ino, e.typ));
        }
        if n < 7 {
            return Ok(out);
        }
    }
}

/// Every raw key and value of the store, in key order.
fn raw_dump(b: &RocksBackend) -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    Ok(b.store().scan(&[], &[0xff; 16], usize::MAX)?)
}

/// A volume as the read API sees it: format record, every inode, every directory listing,
/// chunks, symlink targets and xattrs, counters.
async fn snapshot(b: &dyn Backend) -> anyhow::Result<String> {
    let mut s = format!("{:?}\n{:?}\n", b.load().await?, b.statfs().await?);
    {
        for (ino, attr) in meta_core::backend::all_inodes(b, 100).await? {
            s += &format!("{ino} {attr:?}\n");
            match attr.typ {
                FileType::Directory => s += &format!("  {:?}\n", list(b, ino).await?),
                FileType::Symlink => s += &format!("  -> {:?}\n", b.read_link(ino).await?),
                FileType::Regular => s += &format!("  {:?}\n", b.list_chunks(ino).await?),
                _ => {}
            }
            for x in b.list_xattr(ino).await? {
                s += &format!("  x {x:?}={:?}\n", b.get_xattr(ino, &x).await?);
            }
        }
    }
    Ok(s)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_keeps_everything_from_memtable_wal_and_sst() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("vol");
    let backend = Arc::new(open_path(&path, RocksOptions::default())?);
    assert_eq!(backend.info().scheme, "rocksdb");
    assert_eq!(backend.info().max_batch_ops, 4096);
    assert!(backend.info().durable);
    Meta::format(&*backend, &Setting::new("persist"), false).await?;
    let meta = Meta::open(backend.clone(), MetaOptions::default(), None).await?;
    let me = Caller::new(1000, 100);

    // Three directories of 150 files: the first half of each goes to SST files (flush), the
    // second half stays in the memtable and the WAL.
    let mut dirs = Vec::new();
    for d in 0..3 {
        dirs.push(
            meta.mkdir(me.clone(), Ino::ROOT, format!("d{d}").as_bytes(), 0o755)
                .await?
                .0,
        );
    }
    let create_range = |lo: usize, hi: usize| {
        let meta = meta.clone();
        let dirs = dirs.clone();
        let me = me.clone();
        async move {
            for &dir in &dirs {
                let names: Vec<_> = (lo..hi).map(|i| format!("f{i:04}")).collect();
                // Concurrent creates: the batcher groups them into shared WriteBatches.
                try_join_all(
                    names
                        .iter()
                        .map(|n| meta.create(me.clone(), dir, n.as_bytes(), 0o640)),
                )
                .await?;
            }
            anyhow::Ok(())
        }
    };
    create_range(0, 75).await?;
    let (file, _) = meta.create(me.clone(), dirs[0], b"data", 0o600).await?;
    let id = meta.new_slice_id().await?;
    meta.write(
        Caller::ROOT,
        file,
        1,
        Slice {
            pos: 4096,
            id,
            size: 100,
            off: 0,
            len: 100,
        },
    )
    .await?;
    meta.symlink(me.clone(), dirs[1], b"link", b"../d0/data")
        .await?;
    meta.setxattr(Caller::ROOT, file, b"user.k", b"v", XattrFlags::NONE)
        .await?;
    meta.flush().await?;
    let store = backend.store().clone();
    tokio::task::spawn_blocking(move || store.flush()).await??;
    create_range(75, 150).await?;
    meta.rename(
        me.clone(),
        dirs[2],
        b"f0001",
        dirs[1],
        b"moved",
        RenameFlags::NONE,
    )
    .await?;
    meta.unlink(me, dirs[2], b"f0002").await?;
    let before = snapshot(&*backend).await?;
    let next_ino = backend.get_counter(meta_core::Counter::NextInode).await?;
    close(meta, backend).await?;

    let backend = Arc::new(open_path(&path, RocksOptions::default())?);
    let after = snapshot(&*backend).await?;
    assert_eq!(before, after, "the volume changed across close and reopen");
    for (i, &dir) in dirs.iter().enumerate() {
        let names = list(&*backend, dir).await?;
        // d0: + data; d1: + link + moved; d2: - f0001 (moved away) - f0002 (unlinked).
        assert_eq!(names.len(), [151, 152, 148][i], "entries of d{i}");
    }
    assert_eq!(
        backend.lookup(dirs[1], b"moved").await?.1.typ,
        FileType::Regular
    );
    assert_eq!(
        backend
            .read_link(backend.lookup(dirs[1], b"link").await?.0)
            .await?,
        b"../d0/data"
    );
    assert_eq!(backend.get_xattr(file, b"user.k").await?, b"v");
    assert_eq!(backend.read_chunk(file, 1).await?[0].id, id);
    let report = meta_core::fsck::fsck(&*backend).await?;
    assert!(report.is_clean(), "fsck: {:?}", report.problems);
    assert_eq!(report.inodes, 1 + 3 + 3 * 150 + 2 - 1);
    // The ID counter survived: new IDs start where the old ones stopped.
    let r = backend.reserve_ids(IdKind::Inode, 10).await?;
    assert_eq!(r.start as i64, next_ino);
    Ok(())
}

#[tokio::test]
async fn second_open_is_a_clear_in_use_error_until_the_first_closes() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("vol");
    let first = open_path(&path, RocksOptions::default())?;
    first.format(&Setting::new("locked"), false).await?;

    let e = open_path(&path, RocksOptions::default()).expect_err("second open must fail");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("in use"),
        "message does not say the volume is in use: {msg}"
    );
    assert!(
        msg.contains(&path.display().to_string()),
        "message does not name the path: {msg}"
    );
    // The failed open left the first handle working.
    assert_eq!(first.load().await?.name, "locked");

    // A clone shares the database (and the lock); dropping every handle releases it.
    let clone = first.clone();
    drop(first);
    assert!(
        open_path(&path, RocksOptions::default()).is_err(),
        "a clone still holds the lock"
    );
    drop(clone);
    let again = open_path(&path, RocksOptions::default()).context("open after close")?;
    assert_eq!(again.load().await?.name, "locked");
    Ok(())
}

#[test]
fn url_options_and_errors_name_the_parameter() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let vol = tmp.path().join("vol");
    let url = |q: &str| format!("rocksdb://{}{q}", vol.display());

    for (q, name) in [
        ("?sync=maybe", "sync"),
        ("?bogus=1", "bogus"),
        ("?sync=true&bogus=1", "bogus"),
    ] {
        let (u, _) = parse_url(&url(q))?;
        let e = open(u).expect_err(q);
        assert_eq!(e.kind(), ErrorKind::ConfigInvalid, "{q}: {e}");
        assert!(
            e.to_string().contains(name),
            "{q}: message does not name {name}: {e}"
        );
        assert!(
            !vol.exists(),
            "{q}: a rejected URL created {}",
            vol.display()
        );
    }

    let (u, _) = parse_url("memory://x")?;
    assert_eq!(
        open(u).expect_err("scheme").kind(),
        ErrorKind::ConfigInvalid
    );
    let (u, _) = parse_url("rocksdb://")?;
    assert_eq!(
        open(u).expect_err("no path").kind(),
        ErrorKind::ConfigInvalid
    );
    let file = tmp.path().join("a-file");
    std::fs::write(&file, b"x")?;
    let e = open_path(&file, RocksOptions::default()).expect_err("path is a file");
    assert_eq!(e.kind(), ErrorKind::ConfigInvalid, "{e}");

    // sync defaults to true; both spellings of false are taken; engine options pass through.
    let (u, _) = parse_url(&url(""))?;
    assert!(open(u)?.store().sync());
    for q in ["?sync=false", "?sync=0&batch_size=7"] {
        let (u, opts) = parse_url(&url(q))?;
        let b = open(u)?;
        assert!(!b.store().sync(), "{q}");
        assert_eq!(b.store().path(), Path::new(&vol));
        if q.contains("batch_size") {
            assert_eq!(opts.batch_size, 7);
        }
    }
    Ok(())
}

fn mknod(parent: Ino, name: &str, ino: u64, typ: FileType, t: Timespec) -> Op {
    Op::Mknod {
        caller: Caller::ROOT,
        parent,
        name: name.as_bytes().to_vec(),
        ino: Ino(ino),
        typ,
        mode: 0o755,
        uid: 0,
        gid: 0,
        rdev: 0,
        target: Vec::new(),
        time: t,
        opened_by: None,
        imported: None,
    }
}

/// A batch with failing ops in the middle, applied on one volume, and the same batch without
/// them applied on an identical copy: the raw key-value contents must end up byte-identical,
/// so the failing ops left no trace and the others all committed.
#[tokio::test]
async fn failing_ops_in_a_batch_leave_no_trace_and_the_rest_commit() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let a_path = tmp.path().join("a");
    let b_path = tmp.path().join("b");
    let t = Timespec {
        sec: 1_700_000_000,
        nsec: 5,
    };
    let caller = Caller::ROOT;
    let ids;
    {
        let a = open_path(&a_path, RocksOptions::default())?;
        a.format(&Setting::new("atomic"), false).await?;
        ids = a.reserve_ids(IdKind::Inode, 100).await?;
        let r = a
            .apply(&[
                mknod(Ino::ROOT, "dir", ids.start, FileType::Directory, t),
                mknod(Ino(ids.start), "inner", ids.start + 1, FileType::Regular, t),
            ])
            .await?;
        ensure!(r.iter().all(Result::is_ok), "setup: {r:?}");
    }
    // Copy the closed volume file by file: two identical volumes.
    std::fs::create_dir(&b_path)?;
    for f in std::fs::read_dir(&a_path)? {
        let f = f?;
        std::fs::copy(f.path(), b_path.join(f.file_name()))?;
    }
    let a = open_path(&a_path, RocksOptions::default())?;
    let b = open_path(&b_path, RocksOptions::default())?;
    ensure!(
        raw_dump(&a)? == raw_dump(&b)?,
        "the copies differ before the test"
    );

    let dir = Ino(ids.start);
    let n = ids.start + 10;
    let ok = |i: u64, name: &str| mknod(dir, name, n + i, FileType::Regular, t);
    let failing = vec![
        // Name taken by an earlier op of this very batch.
        (
            2,
            mknod(dir, "x0", n + 50, FileType::Regular, t),
            ErrorKind::AlreadyExists,
        ),
        // Parent does not exist.
        (
            3,
            mknod(Ino(999_999), "y", n + 51, FileType::Regular, t),
            ErrorKind::NotFound,
        ),
        // rmdir of a non-empty directory.
        (
            5,
            Op::Rmdir {
                parent: Ino::ROOT,
                name: b"dir".to_vec(),
                caller: caller.clone(),
                time: t,
            },
            ErrorKind::NotEmpty,
        ),
        // Rename a directory into its own subtree (a subdirectory created earlier in the batch).
        (
            6,
            Op::Rename {
                parent: Ino::ROOT,
                name: b"dir".to_vec(),
                new_parent: Ino(n + 3),
                new_name: b"loop".to_vec(),
                flags: RenameFlags::NONE,
                caller: caller.clone(),
                time: t,
            },
            ErrorKind::InvalidArgument,
        ),
        // Hard link to a directory.
        (
            7,
            Op::Link {
                caller: Caller::ROOT,
                ino: dir,
                parent: Ino::ROOT,
                name: b"dirlink".to_vec(),
                time: t,
            },
            ErrorKind::NotPermitted,
        ),
    ];
    let good = vec![
        ok(0, "x0"),
        ok(1, "x1"),
        mknod(dir, "sub", n + 3, FileType::Directory, t),
        Op::Rename {
            parent: dir,
            name: b"inner".to_vec(),
            new_parent: Ino(n + 3),
            new_name: b"moved".to_vec(),
            flags: RenameFlags::NONE,
            caller: caller.clone(),
            time: t,
        },
        Op::Unlink {
            parent: dir,
            name: b"x1".to_vec(),
            caller,
            time: t,
        },
        ok(4, "x4"),
    ];
    let expect_good = good.len();
    let mut mixed = good.clone();
    for (at, op, _) in &failing {
        mixed.insert(*at, op.clone());
    }

    let ra = a.apply(&mixed).await?;
    assert_eq!(ra.len(), mixed.len());
    for (at, op, kind) in &failing {
        match &ra[*at] {
            Err(e) => assert_eq!(e.kind(), *kind, "op {at} {op:?}: {e}"),
            Ok(out) => bail!("op {at} {op:?} should fail with {kind:?}, got {out:?}"),
        }
    }
    let oks: Vec<_> = ra.iter().filter(|r| r.is_ok()).collect();
    assert_eq!(oks.len(), expect_good, "{ra:?}");

    let rb = b.apply(&good).await?;
    ensure!(rb.iter().all(Result::is_ok), "reference batch: {rb:?}");
    let (da, db) = (raw_dump(&a)?, raw_dump(&b)?);
    assert_eq!(da.len(), db.len(), "key counts differ");
    for (x, y) in da.iter().zip(&db) {
        assert_eq!(x, y, "stores differ");
    }
    let report = meta_core::fsck::fsck(&a).await?;
    assert!(report.is_clean(), "fsck: {:?}", report.problems);
    Ok(())
}

/// One `apply` is one `WriteBatch` and, with `sync=true`, exactly one WAL fsync, however many
/// ops it carries; `sync=false` never fsyncs; reads and all-failing batches write nothing.
#[tokio::test]
async fn one_write_batch_and_one_fsync_per_batch() -> anyhow::Result<()> {
    for sync in [true, false] {
        let tmp = tempfile::tempdir()?;
        let b = open_path(&tmp.path().join("vol"), RocksOptions::with_sync(sync))?;
        b.format(&Setting::new("stats"), false).await?;
        let ids = b.reserve_ids(IdKind::Inode, 1000).await?;
        let t = Timespec::now();
        let delta =
            |s0: WriteStats, s1: WriteStats| (s1.batches - s0.batches, s1.wal_syncs - s0.wal_syncs);
        let per_sync = u64::from(sync);

        let s0 = b.store().write_stats();
        let mut ops: Vec<Op> = (0..100)
            .map(|i| {
                mknod(
                    Ino::ROOT,
                    &format!("f{i}"),
                    ids.start + i,
                    FileType::Regular,
                    t,
                )
            })
            .collect();
        ops.insert(
            50,
            mknod(Ino::ROOT, "f0", ids.start + 500, FileType::Regular, t),
        ); // EEXIST
        let r = b.apply(&ops).await?;
        assert_eq!(r.iter().filter(|r| r.is_ok()).count(), 100);
        let s1 = b.store().write_stats();
        assert_eq!(
            delta(s0, s1),
            (1, per_sync),
            "101 ops in one apply, sync={sync}"
        );
        assert!(s1.wal_bytes > s0.wal_bytes);

        for i in 0..5 {
            let op = mknod(
                Ino::ROOT,
                &format!("g{i}"),
                ids.start + 200 + i,
                FileType::Regular,
                t,
            );
            b.apply(&[op]).await?.remove(0)?;
        }
        let s2 = b.store().write_stats();
        assert_eq!(
            delta(s1, s2),
            (5, 5 * per_sync),
            "5 applies of one op, sync={sync}"
        );

        b.lookup(Ino::ROOT, b"f1").await?;
        list(&b, Ino::ROOT).await?;
        let r = b
            .apply(&[mknod(
                Ino::ROOT,
                "f1",
                ids.start + 900,
                FileType::Regular,
                t,
            )])
            .await?;
        assert_eq!(
            r[0].as_ref().map_err(|e| e.kind()).err(),
            Some(ErrorKind::AlreadyExists)
        );
        assert_eq!(
            b.store().write_stats(),
            s2,
            "reads and a failed op wrote, sync={sync}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn damaged_files_are_reported_as_corrupted() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let path = tmp.path().join("vol");
    {
        let b = open_path(&path, RocksOptions::default())?;
        b.format(&Setting::new("damaged"), false).await?;
    }
    // CURRENT names the live MANIFEST; without its trailing newline RocksDB refuses to open.
    std::fs::write(path.join("CURRENT"), b"MANIFEST-garbage")?;
    let e = open_path(&path, RocksOptions::default()).expect_err("damaged volume opened");
    assert_eq!(e.kind(), ErrorKind::Corrupted, "{e}");
    assert!(e.to_string().contains(&path.display().to_string()), "{e}");
    Ok(())
}
