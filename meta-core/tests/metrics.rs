//! Metrics land in the caller's registry under the names DESIGN.md lists, and move.

use std::sync::Arc;

use meta_core::memory::memory_backend;
use std::time::Duration;

use meta_core::{Caller, ErrorKind, Ino, LockType, Meta, MetaOptions, Setting};

#[tokio::test]
async fn metrics_are_registered_in_the_callers_registry() {
    let b = Arc::new(memory_backend());
    Meta::format(&*b, &Setting::new("m"), false)
        .await
        .expect("format");
    let registry = prometheus::Registry::new();
    let opts = {
        let mut o = MetaOptions::default();
        o.heartbeat = Duration::from_millis(20);
        o
    };
    let m = Meta::open(b.clone(), opts, Some(&registry))
        .await
        .expect("open");
    m.create(Caller::ROOT, Ino::ROOT, b"a", 0o644)
        .await
        .expect("create");
    let e = m
        .create(Caller::ROOT, Ino::ROOT, b"a", 0o644)
        .await
        .expect_err("EEXIST");
    assert_eq!(e.kind(), ErrorKind::AlreadyExists);
    m.new_slice_id().await.expect("slice id");

    let families = registry.gather();
    let names: Vec<&str> = families.iter().map(|f| f.name()).collect();
    for want in [
        "meta_ops_total",
        "meta_op_duration_seconds",
        "meta_batch_size",
        "meta_batch_flush_duration_seconds",
        "meta_batch_queue_depth",
        "meta_inode_ids_served_total",
        "meta_inode_prime_calls_total",
        "meta_inode_prefetch_async_total",
        "meta_chunk_ids_served_total",
        "meta_chunk_prime_calls_total",
        "meta_chunk_prefetch_async_total",
        "meta_prime_errors_total",
        "meta_sessions",
        "meta_open_files",
        "meta_lock_waits_total",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let ops = &m.metrics().ops_total;
    assert_eq!(ops.with_label_values(&["mknod", "ok"]).get(), 1);
    assert_eq!(ops.with_label_values(&["mknod", "already_exists"]).get(), 1);
    assert_eq!(
        m.metrics().inode_served.get(),
        2,
        "both creates took an inode"
    );
    assert_eq!(m.metrics().chunk_served.get(), 1);
    // The session's registration, then the two creates.
    assert_eq!(m.metrics().batch_size.get_sample_count(), 3);

    // Open files and lock waits move; the session count follows the heartbeat.
    let (a, _) = m.lookup(Ino::ROOT, b"a").await.expect("lookup");
    m.open_file(a).await.expect("open");
    m.open_file(a).await.expect("open again");
    assert_eq!(m.metrics().open_files.get(), 1, "one inode held open");
    m.flock(a, 1, LockType::Write).await.expect("flock");
    let e = m
        .flock_wait(a, 2, LockType::Write, Some(Duration::from_millis(30)))
        .await
        .expect_err("owner 1 holds it");
    assert_eq!(e.kind(), ErrorKind::WouldBlock);
    assert!(m.metrics().lock_waits.get() >= 2, "the helper retried");
    m.release_file(a).await.expect("release");
    assert_eq!(m.metrics().open_files.get(), 1, "still open once");
    m.release_file(a).await.expect("release");
    m.flush().await.expect("flush the queued release");
    assert_eq!(m.metrics().open_files.get(), 0);
    for _ in 0..200 {
        if m.metrics().sessions.get() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        m.metrics().sessions.get(),
        1,
        "the heartbeat counted the session"
    );

    // A second Meta cannot register the same names into the same registry.
    let e = Meta::open(b, MetaOptions::default(), Some(&registry))
        .await
        .expect_err("duplicate registration");
    assert_eq!(e.kind(), ErrorKind::ConfigInvalid);
}
