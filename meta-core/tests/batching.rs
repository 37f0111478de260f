//! The batcher and the ID pools, through a backend wrapper that counts calls and adds latency.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use meta_core::memory::memory_backend;
use meta_core::testing::DelayBackend;
use meta_core::{
    Backend, Caller, ErrorKind, FileType, Ino, Meta, MetaOptions, Op, RestoreRecord, Setting,
    Timespec,
};

const ME: Caller = Caller::new(1, 1);

/// An `Op::Mknod` by root, owned by uid/gid 1, mode 0o755 for a directory and 0o644 else,
/// timed now.
fn mknod(parent: Ino, name: &str, ino: Ino, typ: FileType) -> Op {
    Op::Mknod {
        caller: Caller::ROOT,
        parent,
        name: name.as_bytes().to_vec(),
        ino,
        typ,
        mode: if typ == FileType::Directory {
            0o755
        } else {
            0o644
        },
        uid: 1,
        gid: 1,
        rdev: 0,
        target: vec![],
        time: Timespec::now(),
        opened_by: None,
        imported: None,
    }
}

async fn formatted() -> Arc<dyn Backend> {
    let b: Arc<dyn Backend> = Arc::new(memory_backend());
    Meta::format(&*b, &Setting::new("t"), false)
        .await
        .expect("format");
    b
}

async fn delayed(delay: Duration) -> Arc<DelayBackend> {
    Arc::new(DelayBackend::new(formatted().await, delay))
}

/// A `Meta` without a session: these tests count the backend calls of the batcher and the ID
/// pools alone (a session adds its registration and heartbeats).
async fn open(b: Arc<DelayBackend>, opts: MetaOptions) -> Meta {
    let opts = {
        let mut o = opts;
        o.session = false;
        o
    };
    Meta::open(b, opts, None).await.expect("open")
}

fn no_batch() -> MetaOptions {
    {
        let mut o = MetaOptions::default();
        o.batchwrite = false;
        o
    }
}

/// 1,000 concurrent creates through a 200 µs-per-call backend share few `apply` calls, and
/// every caller gets its own result.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_creates_share_apply_calls() {
    let b = delayed(Duration::from_micros(200)).await;
    let m = open(b.clone(), MetaOptions::default()).await;
    let mut tasks = Vec::new();
    for i in 0..1000 {
        let m = m.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("f{i}");
            let (ino, _) = m.create(ME, Ino::ROOT, name.as_bytes(), 0o644).await?;
            Ok::<_, meta_core::Error>((name, ino))
        }));
    }
    let mut inos = HashSet::new();
    for t in tasks {
        let (name, ino) = t.await.expect("join").expect("create");
        assert!(inos.insert(ino), "inode {ino} handed to two callers");
        assert_eq!(
            m.lookup(Ino::ROOT, name.as_bytes())
                .await
                .expect("lookup")
                .0,
            ino
        );
    }
    let calls = b.apply_calls();
    assert_eq!(b.applied_ops(), 1000);
    assert!(
        calls <= 100,
        "{calls} apply calls for 1000 concurrent creates"
    );
    assert_eq!(m.getattr(Ino::ROOT).await.expect("root").nlink, 2);
    assert_eq!(m.statfs().await.expect("statfs").used_inodes, 1001);
    let hist = m.metrics().batch_size.get_sample_count();
    assert_eq!(hist, calls, "one batch_size sample per apply call");
}

/// Closed loop: 16 callers that each submit their next create as soon as the previous one
/// returns, on a backend taking one 1 ms call at a time. Callers woken by a batch must make it
/// into the next one (mean batch ≈ 16), not leave it to the batch after (≈ 8 each, which is
/// what a dispatcher running ahead of its woken callers forms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_callers_fill_the_next_batch() {
    let b = Arc::new(DelayBackend::serialized(
        formatted().await,
        Duration::from_millis(1),
    ));
    let m = open(b.clone(), MetaOptions::default()).await;
    let mut tasks = Vec::new();
    for t in 0..16 {
        let m = m.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..30 {
                m.create(ME, Ino::ROOT, format!("t{t}-{i}").as_bytes(), 0o644)
                    .await?;
            }
            Ok::<_, meta_core::Error>(())
        }));
    }
    for t in tasks {
        t.await.expect("join").expect("create");
    }
    assert_eq!(b.applied_ops(), 480);
    let mean = b.applied_ops() as f64 / b.apply_calls() as f64;
    assert!(
        mean >= 12.0,
        "mean batch {mean:.1} ops for 16 closed-loop callers ({} calls)",
        b.apply_calls()
    );
}

/// With `batchwrite=0` every op is its own apply call (the baseline).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unbatched_is_one_call_per_op() {
    let b = delayed(Duration::ZERO).await;
    let m = open(b.clone(), no_batch()).await;
    let mut tasks = Vec::new();
    for i in 0..100 {
        let m = m.clone();
        tasks.push(tokio::spawn(async move {
            m.create(ME, Ino::ROOT, format!("f{i}").as_bytes(), 0o644)
                .await
        }));
    }
    for t in tasks {
        t.await.expect("join").expect("create");
    }
    assert_eq!(b.apply_calls(), 100);
}

/// No artificial delay: an op on an idle batcher goes alone, at once.
#[tokio::test]
async fn idle_op_is_sent_immediately() {
    let b = delayed(Duration::ZERO).await;
    let m = open(b.clone(), MetaOptions::default()).await;
    m.create(ME, Ino::ROOT, b"a", 0o644).await.expect("create");
    assert_eq!((b.apply_calls(), b.applied_ops()), (1, 1));
}

/// A failing op inside a batch leaves no trace and does not affect its neighbours; in-batch
/// dependencies see earlier ops.
#[tokio::test]
async fn failing_op_leaves_no_trace() {
    let b = delayed(Duration::ZERO).await;
    let m = open(b.clone(), MetaOptions::default()).await;
    let t = Timespec::now();
    let mk = |parent, name: &[u8], ino, typ| Op::Mknod {
        caller: Caller::ROOT,
        parent,
        name: name.to_vec(),
        ino,
        typ,
        mode: 0o755,
        uid: 1,
        gid: 1,
        rdev: 0,
        target: vec![],
        time: t,
        opened_by: None,
        imported: None,
    };
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(m.new_ino().await.expect("ino"));
    }
    let (d, f, x, r, y) = (ids[0], ids[1], ids[2], ids[3], ids[4]);
    let file_attr = meta_core::logic::root_attr(t);
    let ops = vec![
        mk(Ino::ROOT, b"dir", d, FileType::Directory),
        mk(d, b"inside", f, FileType::Regular),
        mk(Ino::ROOT, b"dir", x, FileType::Regular), // EEXIST
        // Restore writes its first link, then fails on the second: must be undone entirely.
        Op::Restore(Box::new(RestoreRecord {
            ino: r,
            attr: meta_core::Attr {
                typ: FileType::Regular,
                nlink: 2,
                ..file_attr
            },
            links: vec![(Ino::ROOT, b"partial".to_vec()), (d, b"inside".to_vec())],
            target: vec![],
            xattrs: vec![],
            chunks: vec![],
        })),
        mk(d, b"after", y, FileType::Regular),
    ];
    let before = m.statfs().await.expect("statfs");
    let res = m.apply_batch(ops).await;
    assert_eq!(res.len(), 5);
    assert!(
        res[0].is_ok() && res[1].is_ok() && res[4].is_ok(),
        "{res:?}"
    );
    assert_eq!(
        res[2].as_ref().map_err(|e| e.kind()).err(),
        Some(ErrorKind::AlreadyExists)
    );
    assert_eq!(
        res[3].as_ref().map_err(|e| e.kind()).err(),
        Some(ErrorKind::AlreadyExists)
    );
    assert_eq!(b.apply_calls(), 1, "one apply call for the explicit batch");
    assert_eq!(
        m.lookup(Ino::ROOT, b"partial")
            .await
            .map_err(|e| e.kind())
            .err(),
        Some(ErrorKind::NotFound)
    );
    assert_eq!(
        m.getattr(r).await.map_err(|e| e.kind()).err(),
        Some(ErrorKind::NotFound)
    );
    assert_eq!(
        m.getattr(x).await.map_err(|e| e.kind()).err(),
        Some(ErrorKind::NotFound)
    );
    assert_eq!(m.lookup(d, b"inside").await.expect("inside").0, f);
    let after = m.statfs().await.expect("statfs");
    assert_eq!(after.used_inodes, before.used_inodes + 3);
    let rep = meta_core::fsck::fsck(&*b).await.expect("fsck");
    assert!(rep.is_clean(), "{:?}", rep.problems);
}

/// `flush()` returns only when every op queued before it has a result, and reports deferred
/// errors once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_waits_for_queued_ops_and_reports_deferred_errors() {
    let b = delayed(Duration::from_millis(2)).await;
    let m = open(b.clone(), MetaOptions::default()).await;
    for i in 0..200u64 {
        let ino = m.new_ino().await.expect("ino");
        let name = if i == 50 {
            "f0".to_string()
        } else {
            format!("f{i}")
        }; // 50 collides
        m.enqueue(mknod(Ino::ROOT, &name, ino, FileType::Regular))
            .await
            .expect("enqueue");
    }
    let e = m.flush().await.expect_err("one deferred op failed");
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    assert!(e.to_string().contains("1 deferred op(s) failed"), "{e}");
    assert_eq!(
        b.applied_ops(),
        200,
        "flush returned before every queued op was applied"
    );
    assert_eq!(m.statfs().await.expect("statfs").used_inodes, 200);
    m.flush().await.expect("errors are reported once");
}

/// Deferred ops keep queue order: a create inside a directory made by an earlier deferred mkdir
/// succeeds even with several batches in flight.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn deferred_ops_apply_in_order() {
    let b = delayed(Duration::from_micros(300)).await;
    let m = open(b.clone(), MetaOptions::default()).await;
    let mut parent = Ino::ROOT;
    for i in 0..50 {
        let ino = m.new_ino().await.expect("ino");
        m.enqueue(mknod(parent, &format!("d{i}"), ino, FileType::Directory))
            .await
            .expect("enqueue");
        parent = ino;
    }
    m.flush()
        .await
        .expect("every nested mkdir found its parent");
    assert_eq!(m.statfs().await.expect("statfs").used_inodes, 51);
}

/// A full queue makes callers wait; nothing is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backpressure_holds_when_queue_is_full() {
    let b = Arc::new(DelayBackend::gated(formatted().await));
    let opts = {
        let mut o = MetaOptions::default();
        o.max_queue = 4;
        o.max_inflight = 1;
        o
    };
    let m = open(b.clone(), opts).await;
    let xattr = |i: u64| Op::SetXattr {
        caller: Caller::ROOT,
        ino: Ino::ROOT,
        name: format!("user.k{i}").into_bytes(),
        value: vec![1],
        flags: meta_core::XattrFlags::NONE,
    };
    // The first op reaches the gate and holds the only in-flight slot.
    m.enqueue(xattr(0)).await.expect("enqueue");
    while b.apply_calls() == 0 {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let mut accepted = 0u64;
    let mut blocked = None;
    for i in 1..20u64 {
        let m2 = m.clone();
        let op = xattr(i);
        let mut fut = Box::pin(async move { m2.enqueue(op).await });
        match tokio::time::timeout(Duration::from_millis(100), &mut fut).await {
            Ok(r) => {
                r.expect("enqueue");
                accepted += 1;
            }
            Err(_) => {
                blocked = Some(fut);
                break;
            }
        }
    }
    // The dispatcher waits on the held batch, so exactly the queue's 4 places fill.
    assert!(
        blocked.is_some(),
        "queue of 4 accepted all {accepted} ops without waiting"
    );
    assert_eq!(accepted, 4, "a queue of 4 accepted {accepted} ops");
    b.open_gate(1000);
    blocked
        .expect("blocked")
        .await
        .expect("enqueue after release");
    m.flush().await.expect("flush");
    assert_eq!(
        m.listxattr(Ino::ROOT).await.expect("list").len() as u64,
        accepted + 2,
        "nothing dropped"
    );
}

/// Two `Meta` instances on one backend, 64 tasks each, 100,000 IDs: no duplicate, and
/// reservations ≈ ⌈IDs / batch⌉.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn id_pools_unique_across_instances() {
    let b = delayed(Duration::from_micros(200)).await;
    let per_task = 100_000usize.div_ceil(128);
    let mut handles = Vec::new();
    let mut metas = Vec::new();
    for _ in 0..2 {
        let m = open(b.clone(), MetaOptions::default()).await;
        for _ in 0..64 {
            let m = m.clone();
            handles.push(tokio::spawn(async move {
                let mut ids = Vec::with_capacity(per_task);
                for _ in 0..per_task {
                    ids.push(m.new_ino().await?.0);
                }
                Ok::<_, meta_core::Error>(ids)
            }));
        }
        metas.push(m);
    }
    let mut all = HashSet::new();
    let mut n = 0usize;
    for h in handles {
        for id in h.await.expect("join").expect("ids") {
            n += 1;
            assert!(all.insert(id), "duplicate id {id}");
        }
    }
    assert_eq!(n, per_task * 128);
    let min_calls = n.div_ceil(1024) as u64;
    let calls = b.reserve_calls();
    // Each instance may hold one partly used range and one prefetched range.
    assert!(
        (min_calls..=min_calls + 4).contains(&calls),
        "{calls} reserve calls for {n} IDs"
    );
    let served: u64 = metas.iter().map(|m| m.pool_stats().0.served).sum();
    assert_eq!(served, n as u64);
}

/// The asynchronous prefetch refills the pool before it runs dry: one synchronous refill
/// (the first), the rest prefetched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_refills_before_the_pool_runs_dry() {
    let b = delayed(Duration::from_micros(200)).await;
    let m = open(b.clone(), MetaOptions::default()).await;
    for _ in 0..10 * 1024 {
        m.new_ino().await.expect("ino");
        // A caller doing ~20 µs of real work between creates (blocking this worker; the
        // prefetch runs on the other one). 256 IDs under the watermark then last ~5 ms,
        // far longer than one 200 µs reservation.
        std::thread::sleep(Duration::from_micros(20));
    }
    let (inodes, _) = m.pool_stats();
    assert_eq!(inodes.served, 10 * 1024);
    assert_eq!(inodes.sync_refills, 1, "{inodes:?}");
    assert!(inodes.prefetches >= 9, "{inodes:?}");
    assert_eq!(m.metrics().inode_prefetch_async.get(), inodes.prefetches);
    assert_eq!(m.metrics().inode_prime_calls.get(), b.reserve_calls());
}

/// `metaprime=0`: one reservation per ID.
#[tokio::test]
async fn metaprime_off_reserves_one_id_per_call() {
    let b = delayed(Duration::ZERO).await;
    let opts = {
        let mut o = MetaOptions::default();
        o.metaprime = false;
        o
    };
    let m = open(b.clone(), opts).await;
    let mut last = 0;
    for _ in 0..100 {
        let id = m.new_slice_id().await.expect("id");
        assert!(id > last);
        last = id;
    }
    assert_eq!(b.reserve_calls(), 100);
}

/// `close()` applies what is queued and stops every task, so dropping the `Meta` releases the
/// backend at once (an embedded database can be reopened right away).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_releases_the_backend() {
    let b = delayed(Duration::from_micros(200)).await;
    let m = open(b.clone(), MetaOptions::default()).await;
    for _ in 0..800 {
        m.new_ino().await.expect("ino"); // past the watermark: a prefetch is under way
    }
    m.enqueue(Op::SetXattr {
        caller: Caller::ROOT,
        ino: Ino::ROOT,
        name: b"user.last".to_vec(),
        value: vec![1],
        flags: meta_core::XattrFlags::NONE,
    })
    .await
    .expect("enqueue");
    m.close().await.expect("close");
    assert_eq!(
        b.applied_ops(),
        1,
        "queued op applied before close returned"
    );
    let late = m
        .create(ME, Ino::ROOT, b"late", 0o644)
        .await
        .expect_err("closed");
    assert_eq!(late.kind(), ErrorKind::Closed);
    drop(m);
    assert_eq!(Arc::strong_count(&b), 1, "a task still holds the backend");
}

/// A backend that panics while applying a batch fails that batch's ops with `Indeterminate`
/// (waited for or deferred), and the batcher goes on with the next ops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_backend_fails_its_batch_not_the_batcher() {
    let b = delayed(Duration::ZERO).await;
    let m = open(b.clone(), MetaOptions::default()).await;
    let file = |ino: Ino, name: &str| mknod(Ino::ROOT, name, ino, FileType::Regular);
    // A deferred op (its batch runs inside the dispatcher).
    b.panic_next("mknod", 1);
    let ino = m.new_ino().await.expect("ino");
    m.enqueue(file(ino, "deferred")).await.expect("enqueue");
    let e = m.flush().await.expect_err("the panicked batch");
    assert_eq!(e.kind(), ErrorKind::Indeterminate, "{e}");
    assert!(e.to_string().contains("panicked"), "{e}");
    // An op waited for.
    b.panic_next("mknod", 1);
    let e = m
        .create(Caller::ROOT, Ino::ROOT, b"waited", 0o644)
        .await
        .expect_err("the panicked batch");
    assert_eq!(e.kind(), ErrorKind::Indeterminate, "{e}");
    // The batcher still runs both kinds.
    m.create(Caller::ROOT, Ino::ROOT, b"after", 0o644)
        .await
        .expect("a create after the panics");
    let ino = m.new_ino().await.expect("ino");
    m.enqueue(file(ino, "deferred-after"))
        .await
        .expect("enqueue");
    m.flush().await.expect("a deferred op after the panics");
    m.lookup(Ino::ROOT, b"deferred-after")
        .await
        .expect("the deferred op was applied");
    // Without the batcher (the op runs in the caller's task) and through apply_batch.
    let n = open(b.clone(), no_batch()).await;
    b.panic_next("mknod", 1);
    let e = n
        .create(Caller::ROOT, Ino::ROOT, b"unbatched", 0o644)
        .await
        .expect_err("the panicked call");
    assert_eq!(e.kind(), ErrorKind::Indeterminate, "{e}");
    b.panic_next("mknod", 1);
    let ino = n.new_ino().await.expect("ino");
    let r = n.apply_batch(vec![file(ino, "explicit")]).await;
    assert!(
        matches!(&r[..], [Err(e)] if e.kind() == ErrorKind::Indeterminate),
        "{r:?}"
    );
    n.create(Caller::ROOT, Ino::ROOT, b"unbatched", 0o644)
        .await
        .expect("a create after the panic");
}
