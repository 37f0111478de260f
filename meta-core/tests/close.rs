//! `Meta::close`: new work after it is refused with `Closed` and reaches nothing; deferred
//! ops accepted before it are all reported; options built in code are validated at open.

mod common;

use std::time::Duration;

use meta_core::{Backend, Caller, ErrorKind, FileType, Ino, Meta, MetaOptions, Op, Timespec};

const ME: Caller = Caller::new(1, 1);

fn mknod(parent: Ino, name: &str, ino: u64) -> Op {
    Op::Mknod {
        caller: Caller::ROOT,
        parent,
        name: name.as_bytes().to_vec(),
        ino: Ino(ino),
        typ: FileType::Regular,
        mode: 0o644,
        uid: 1,
        gid: 1,
        rdev: 0,
        target: Vec::new(),
        time: Timespec { sec: 1, nsec: 0 },
        opened_by: None,
        imported: None,
    }
}

fn closed<T: std::fmt::Debug>(r: meta_core::Result<T>, what: &str) {
    match r {
        Err(e) if e.kind() == ErrorKind::Closed => {}
        other => panic!("{what} after close: {other:?}"),
    }
}

async fn refuses_everything_after_close(batchwrite: bool) {
    let b = common::delay_backend().await;
    let m = Meta::open(
        b.clone(),
        {
            let mut o = MetaOptions::default();
            o.batchwrite = batchwrite;
            o
        },
        None,
    )
    .await
    .expect("open");
    let other = m.clone();
    m.create(ME, Ino::ROOT, b"before", 0o644)
        .await
        .expect("create");
    m.close().await.expect("close");
    let (applies, reserves) = (b.apply_calls(), b.reserve_calls());
    closed(other.create(ME, Ino::ROOT, b"after", 0o644).await, "create");
    closed(
        other.enqueue(mknod(Ino::ROOT, "deferred", 900)).await,
        "enqueue",
    );
    for r in other
        .apply_batch(vec![mknod(Ino::ROOT, "x", 901), mknod(Ino::ROOT, "y", 902)])
        .await
    {
        closed(r, "apply_batch");
    }
    closed(other.new_ino().await, "new_ino");
    closed(other.new_slice_id().await, "new_slice_id");
    assert_eq!(
        (b.apply_calls(), b.reserve_calls()),
        (applies, reserves),
        "work after close reached the backend"
    );
    // Reads still answer, and a second close is a no-op.
    assert!(other.lookup(Ino::ROOT, b"before").await.is_ok());
    assert!(other.lookup(Ino::ROOT, b"after").await.is_err());
    other.close().await.expect("second close");
}

#[tokio::test]
async fn work_after_close_is_refused_batched() {
    refuses_everything_after_close(true).await;
}

#[tokio::test]
async fn work_after_close_is_refused_unbatched() {
    refuses_everything_after_close(false).await;
}

/// Deferred ops queued before close are applied by it, and its error counts the failures.
#[tokio::test]
async fn close_reports_every_deferred_failure() {
    let b = common::delay_backend().await;
    let m = Meta::open(b.clone(), MetaOptions::default(), None)
        .await
        .expect("open");
    let ids = b
        .reserve_ids(meta_core::IdKind::Inode, 100)
        .await
        .expect("ids");
    for i in 0..100u64 {
        // Every tenth op names a parent that does not exist.
        let parent = if i % 10 == 0 { Ino(999_999) } else { Ino::ROOT };
        m.enqueue(mknod(parent, &format!("f{i}"), ids.start + i))
            .await
            .expect("enqueue");
    }
    let e = m.close().await.expect_err("10 deferred ops failed");
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert!(e.to_string().contains("10 deferred op(s) failed"), "{e}");
    let st = b.statfs().await.expect("statfs");
    assert_eq!(st.used_inodes, 1 + 90, "{st:?}");
}

/// Options built in code get the same range checks as options from a URL.
#[tokio::test]
async fn options_built_in_code_are_validated() {
    let b = common::delay_backend().await;
    for (opts, name) in [
        (
            {
                let mut o = MetaOptions::default();
                o.max_queue = usize::MAX;
                o
            },
            "max_queue",
        ),
        (
            {
                let mut o = MetaOptions::default();
                o.max_inflight = 1 << 40;
                o
            },
            "max_inflight",
        ),
        (
            {
                let mut o = MetaOptions::default();
                o.batch_size = 0;
                o
            },
            "batch_size",
        ),
        (
            {
                let mut o = MetaOptions::default();
                o.inode_low_watermark = 101;
                o
            },
            "inode_low_watermark",
        ),
        (
            {
                let mut o = MetaOptions::default();
                o.heartbeat = Duration::ZERO;
                o
            },
            "heartbeat",
        ),
    ] {
        let e = Meta::open(b.clone(), opts, None)
            .await
            .expect_err("out-of-range option accepted");
        assert_eq!(e.kind(), ErrorKind::ConfigInvalid, "{e}");
        assert!(e.to_string().contains(name), "{e}");
    }
    assert_eq!(b.apply_calls(), 0, "a refused open registered a session");
}
