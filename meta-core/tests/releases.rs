//! Queued releases of open files (`Meta::release_file`): a release whose call fails stays
//! queued, and a later flush sends it again; a reopen meanwhile records the open again. A
//! session's close that fails the same way is tried again.

mod common;

use meta_core::{Backend, Caller, ErrorKind, Ino, LockType, Meta, MetaOptions};

const ME: Caller = Caller::new(1, 1);

/// Flushes until a flush succeeds (a failure the background flusher met before the fault
/// was lifted is reported by the next flush); fails the test after 5 tries.
async fn flush_until_ok(m: &Meta) {
    for _ in 0..5 {
        if m.flush().await.is_ok() {
            return;
        }
    }
    panic!("5 flushes in a row failed");
}

#[tokio::test]
async fn a_failed_release_is_sent_again() {
    let b = common::delay_backend().await;
    let a = Meta::open(b.clone(), MetaOptions::default(), None)
        .await
        .expect("open");
    let sid = a.session_id().expect("a session");
    let (gone, _) = a
        .create_open(ME, Ino::ROOT, b"gone", 0o644)
        .await
        .expect("create_open");
    let (kept, _) = a
        .create_open(ME, Ino::ROOT, b"kept", 0o644)
        .await
        .expect("create_open");
    a.flock(kept, 7, LockType::Write).await.expect("flock");
    a.unlink(ME, Ino::ROOT, b"gone").await.expect("unlink");
    // Every release call fails (the background flusher's tries and the flush's) until the
    // fault is lifted.
    b.fail_next("release", u64::MAX);
    a.release_file(gone).await.expect("release");
    a.release_file(kept).await.expect("release");
    let e = a.flush().await.expect_err("the injected failure");
    assert_eq!(e.kind(), ErrorKind::Unavailable, "{e}");
    let h = a.session_holdings(sid).await.expect("holdings");
    assert_eq!(h.open, vec![gone, kept], "both releases failed");
    assert_eq!(b.get_attr(gone).await.expect("sustained").nlink, 0);
    // A later flush sends them again: the sustained inode goes, the lock too.
    b.fail_next("release", 0);
    flush_until_ok(&a).await;
    let h = a.session_holdings(sid).await.expect("holdings");
    assert!(
        h.open.is_empty() && h.flocks.is_empty(),
        "the releases were sent again: {h:?}"
    );
    assert_eq!(
        b.get_attr(gone).await.expect_err("deleted").kind(),
        ErrorKind::NotFound
    );
    let c = Meta::open(b.clone(), MetaOptions::default(), None)
        .await
        .expect("open");
    c.flock(kept, 1, LockType::Write)
        .await
        .expect("the released file's lock was dropped");

    // A release that failed and a reopen before it was sent again: the open is recorded
    // again (the failed release may have reached the backend), and the next release
    // forgets it.
    a.open_file(kept).await.expect("open");
    b.fail_next_after_apply("release", u64::MAX);
    a.release_file(kept).await.expect("release");
    let e = a.flush().await.expect_err("the injected failure");
    assert_eq!(e.kind(), ErrorKind::Indeterminate, "{e}");
    let h = a.session_holdings(sid).await.expect("holdings");
    assert!(h.open.is_empty(), "the release was applied: {h:?}");
    b.fail_next_after_apply("release", 0);
    a.open_file(kept).await.expect("reopen");
    assert_eq!(a.open_count(kept).await, 1);
    let h = a.session_holdings(sid).await.expect("holdings");
    assert_eq!(
        h.open,
        vec![kept],
        "the reopened file is open on the backend"
    );
    a.release_file(kept).await.expect("release");
    flush_until_ok(&a).await;
    let h = a.session_holdings(sid).await.expect("holdings");
    assert!(h.open.is_empty(), "released: {h:?}");
    c.close().await.expect("close");
    a.close().await.expect("close");
}

/// A release op the store refuses as too large for one transaction (`Unsupported`, as etcd
/// past its operations per transaction) is split until it fits; none is lost.
#[tokio::test]
async fn a_release_too_large_for_the_store_is_split() {
    let b = common::delay_backend().await;
    let a = Meta::open(b.clone(), MetaOptions::default(), None)
        .await
        .expect("open");
    let sid = a.session_id().expect("a session");
    let mut files = Vec::new();
    for i in 0..20u32 {
        let name = format!("f{i}");
        let (f, _) = a
            .create_open(ME, Ino::ROOT, name.as_bytes(), 0o644)
            .await
            .expect("create_open");
        a.unlink(ME, Ino::ROOT, name.as_bytes())
            .await
            .expect("unlink");
        files.push(f);
    }
    // The first two release calls are refused as too large.
    b.fail_next_with("release", 2, ErrorKind::Unsupported);
    let releases: Vec<_> = files.iter().map(|&f| a.release_file(f)).collect();
    for r in futures::future::join_all(releases).await {
        r.expect("release");
    }
    a.flush().await.expect("the releases, split");
    let h = a.session_holdings(sid).await.expect("holdings");
    assert!(h.open.is_empty(), "every release went through: {h:?}");
    for f in files {
        assert_eq!(
            b.get_attr(f).await.expect_err("deleted").kind(),
            ErrorKind::NotFound
        );
    }
    a.close().await.expect("close");
}

/// A session's close that fails for a reason that may pass is tried again: refused once
/// (nothing applied), or applied with its answer lost (the retry finds the session gone).
#[tokio::test]
async fn a_failed_session_close_is_tried_again() {
    for after_apply in [false, true] {
        let b = common::delay_backend().await;
        let a = Meta::open(b.clone(), MetaOptions::default(), None)
            .await
            .expect("open");
        let sid = a.session_id().expect("a session");
        a.create_open(ME, Ino::ROOT, b"f", 0o644)
            .await
            .expect("create_open");
        if after_apply {
            b.fail_next_after_apply("close_session", 1);
        } else {
            b.fail_next("close_session", 1);
        }
        a.close()
            .await
            .unwrap_or_else(|e| panic!("close (fault after apply: {after_apply}): {e}"));
        let left: Vec<_> = b
            .list_sessions()
            .await
            .expect("sessions")
            .into_iter()
            .map(|s| s.info.sid)
            .collect();
        assert!(
            !left.contains(&sid),
            "session {sid} is still there (fault after apply: {after_apply}): {left:?}"
        );
    }
}

/// A release the background flusher could not send goes back to the queue; the next flush
/// sends it, and when that succeeds the flush reports no error.
#[tokio::test]
async fn a_release_the_next_flush_sends_is_not_its_error() {
    let b = common::delay_backend().await;
    let a = Meta::open(b.clone(), MetaOptions::default(), None)
        .await
        .expect("open");
    let sid = a.session_id().expect("a session");
    let (f, _) = a
        .create_open(ME, Ino::ROOT, b"f", 0o644)
        .await
        .expect("create_open");
    a.flush().await.expect("flush");
    let before = b.apply_calls();
    b.fail_next("release", 1);
    a.release_file(f).await.expect("release");
    // The background flusher's try (it fails; the flush below waits for its pass to end).
    for _ in 0..500 {
        if b.apply_calls() > before {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        b.apply_calls() > before,
        "the background flusher never tried"
    );
    a.flush()
        .await
        .expect("the release went through on the flush's try");
    let h = a.session_holdings(sid).await.expect("holdings");
    assert!(h.open.is_empty(), "the release was sent again: {h:?}");
}
