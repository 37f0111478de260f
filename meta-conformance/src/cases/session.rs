//! Sessions, open files and locks: an inode unlinked while open stays readable until the
//! last release (unlink(2): "if any process still has the file open, the file will remain in
//! existence until the last file descriptor referring to it is closed"); a crashed client's
//! session is cleaned up by another; flock(2) and fcntl(2) byte-range locks conflict across
//! sessions and owners, split and merge, and vanish with the session.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use meta_core::{LockOwner, LockType, PlockRange, PlockRequest};

use super::prelude::*;

/// A heartbeat short enough for expiry tests: a session expires 5 beats (250 ms) after its
/// last one.
const FAST_BEAT: Duration = Duration::from_millis(50);

fn fast() -> MetaOptions {
    let mut o = MetaOptions::default();
    o.heartbeat = FAST_BEAT;
    o
}

fn req(typ: LockType, start: u64, end: u64) -> PlockRequest {
    PlockRequest {
        typ,
        start,
        end,
        pid: 42,
    }
}

async fn file_with_data(m: &Meta, name: &[u8]) -> Result<(Ino, Slice)> {
    let (f, _) = m.create(ME, ROOT, name, 0o644).await?;
    let s = slice(m.new_slice_id().await?, 0, 5000);
    m.write(Caller::ROOT, f, 0, s).await?;
    Ok((f, s))
}

fn pending_file(p: &[Pending], ino: Ino) -> bool {
    p.iter()
        .any(|x| matches!(x, Pending::File { ino: i, .. } if *i == ino))
}

/// Checks that `f` is sustained: no name, nlink 0, attributes and slices readable, written
/// and truncated by inode number, counted by statfs, not pending deletion.
async fn check_sustained(m: &Meta, f: Ino, s: Slice, used_inodes: u64) -> Result<()> {
    let a = m
        .getattr(f)
        .await
        .context("getattr of the sustained inode")?;
    ensure!(a.nlink == 0, "a sustained inode has nlink 0, got {a:?}");
    ensure!(
        m.read(f, 0).await? == vec![s],
        "its slices stay readable by inode number"
    );
    let s2 = slice(m.new_slice_id().await?, 5000, 100);
    let a = ok(
        m.write(Caller::ROOT, f, 0, s2).await,
        "write to a sustained inode",
    )?;
    ensure!(a.length == 5100 && a.nlink == 0, "after the write: {a:?}");
    let a = ok(
        m.truncate(Caller::ROOT, f, 5000).await,
        "truncate of a sustained inode",
    )?;
    ensure!(a.length == 5000, "after truncate: {a:?}");
    ensure!(
        m.statfs().await?.used_inodes == used_inodes,
        "statfs keeps counting the sustained inode"
    );
    ensure!(
        !pending_file(&m.list_pending(usize::MAX).await?, f),
        "a sustained inode is not pending deletion"
    );
    expect_err(
        m.link(Caller::ROOT, f, ROOT, b"again").await,
        NotFound,
        "link of an unlinked inode",
    )?;
    fsck_clean(&**m.backend(), "with a sustained inode").await
}

/// unlink of an open file: the name goes, the inode stays (see `check_sustained`); the last
/// release deletes it, its data becoming pending deletion, and statfs drops it.
pub async fn unlink_open_file(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (f, s) = file_with_data(&m, b"f").await?;
    m.open_file(f).await?;
    m.open_file(f).await?;
    let used = m.statfs().await?.used_inodes;
    m.unlink(ME, ROOT, b"f").await?;
    expect_err(m.lookup(ROOT, b"f").await, NotFound, "lookup after unlink")?;
    check_sustained(&m, f, s, used).await?;
    m.release_file(f).await?;
    m.flush().await?;
    ensure!(m.getattr(f).await.is_ok(), "one open left: still there");
    m.release_file(f).await?;
    // The last release is queued; flush waits until it is applied.
    m.flush().await?;
    expect_err(
        m.getattr(f).await,
        NotFound,
        "getattr after the last release",
    )?;
    ensure!(
        pending_file(&m.list_pending(usize::MAX).await?, f),
        "the data is pending deletion after the last release"
    );
    ensure!(m.statfs().await?.used_inodes == used - 1, "statfs drops it");
    expect_err(
        m.release_file(f).await,
        NotFound,
        "release of a closed file",
    )?;
    counters_exact(&**m.backend(), "after the release").await?;
    fsck_clean(&**m.backend(), "after the release").await
}

/// rename over an open file and rmdir of an open directory sustain the replaced inode;
/// create_open opens in the create op; hard links keep an open file alive without sustaining.
pub async fn rename_over_and_rmdir_open(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (old, s) = file_with_data(&m, b"old").await?;
    let (new, _) = m.create_open(ME, ROOT, b"new", 0o644).await?;
    ensure!(m.open_count(new).await == 1, "create_open opened it");
    m.open_file(old).await?;
    let used = m.statfs().await?.used_inodes;
    m.rename(ME, ROOT, b"new", ROOT, b"old", RenameFlags::NONE)
        .await?;
    check_sustained(&m, old, s, used).await?;
    m.release_file(old).await?;
    m.flush().await?;
    expect_err(m.getattr(old).await, NotFound, "released after rename over")?;
    // The file renamed over it was opened by create_open: unlinking it sustains it too.
    m.unlink(ME, ROOT, b"old").await?;
    ensure!(
        m.getattr(new).await?.nlink == 0,
        "create_open's inode sustained"
    );
    m.release_file(new).await?;
    m.flush().await?;
    expect_err(m.getattr(new).await, NotFound, "released")?;
    // A second link keeps the inode named: unlinking one is an ordinary unlink.
    let (h, _) = m.create(ME, ROOT, b"h1", 0o644).await?;
    m.link(Caller::ROOT, h, ROOT, b"h2").await?;
    m.open_file(h).await?;
    m.unlink(ME, ROOT, b"h1").await?;
    ensure!(m.getattr(h).await?.nlink == 1, "one link left");
    m.release_file(h).await?;
    m.flush().await?;
    ensure!(
        m.getattr(h).await?.nlink == 1,
        "release of a linked inode keeps it"
    );
    // rmdir of an open directory.
    let (d, _) = m.mkdir(ME, ROOT, b"d", 0o755).await?;
    m.open_file(d).await?;
    m.rmdir(ME, ROOT, b"d").await?;
    let a = ok(m.getattr(d).await, "getattr of a removed open directory")?;
    ensure!(a.nlink == 0, "removed directory: {a:?}");
    ensure!(
        m.readdir(d, None, 10, false).await?.is_empty(),
        "a removed directory lists nothing"
    );
    // Linux: creating in, linking into or renaming into a removed directory is ENOENT.
    expect_err(
        m.create(ME, d, b"x", 0o644).await,
        NotFound,
        "create in a removed directory",
    )?;
    expect_err(
        m.link(Caller::ROOT, h, d, b"x").await,
        NotFound,
        "link into a removed directory",
    )?;
    expect_err(
        m.rename(ME, ROOT, b"h2", d, b"x", RenameFlags::NONE).await,
        NotFound,
        "rename into a removed directory",
    )?;
    m.release_file(d).await?;
    m.flush().await?;
    expect_err(m.getattr(d).await, NotFound, "released directory")?;
    counters_exact(&**m.backend(), "end").await?;
    fsck_clean(&**m.backend(), "end").await
}

/// Two clients: A opens, B unlinks, A still reads and writes; A's release makes it pending.
pub async fn two_clients_unlink_while_open(ctx: &TestCtx) -> Result<()> {
    let a = ctx.meta();
    let b = ctx.open_meta(MetaOptions::default()).await?;
    let (f, s) = file_with_data(&a, b"f").await?;
    a.open_file(f).await?;
    b.unlink(ME, ROOT, b"f").await?;
    ensure!(b.getattr(f).await?.nlink == 0, "B sees the sustained inode");
    ensure!(a.read(f, 0).await? == vec![s], "A still reads");
    let s2 = slice(a.new_slice_id().await?, 8192, 10);
    ok(a.write(Caller::ROOT, f, 0, s2).await, "A still writes")?;
    let holds = b
        .session_holdings(a.session_id().context("A's session")?)
        .await?;
    ensure!(holds.open == vec![f], "A's session holds {f}: {holds:?}");
    a.release_file(f).await?;
    a.flush().await?;
    ensure!(
        pending_file(&b.list_pending(usize::MAX).await?, f),
        "pending after A's release"
    );
    expect_err(b.getattr(f).await, NotFound, "gone after A's release")?;
    b.close().await?;
    fsck_clean(&**a.backend(), "end").await
}

/// A client that stops beating (dropped without close, as in a crash) expires after five
/// heartbeats; another client's cleanup then releases its sustained inode (pending deletion)
/// and drops its locks; a session that is still beating is never cleaned up.
pub async fn crashed_session_is_cleaned_up(ctx: &TestCtx) -> Result<()> {
    let b = ctx.open_meta(fast()).await?;
    let (f, _) = file_with_data(&b, b"f").await?;
    let (g, _) = b.create(ME, ROOT, b"g", 0o644).await?;
    let a = ctx.open_meta(fast()).await?;
    let sid_a = a.session_id().context("A's session")?;
    a.open_file(f).await?;
    a.flock(g, 1, LockType::Write).await?;
    a.setlk(g, 1, req(LockType::Write, 0, 99)).await?;
    b.unlink(ME, ROOT, b"f").await?;
    ensure!(
        b.getattr(f).await?.nlink == 0,
        "A's open keeps the unlinked inode"
    );
    ensure!(
        b.sessions().await?.iter().any(|s| s.info.sid == sid_a),
        "A's session is listed"
    );
    // A beats: not cleaned even after several of its expiry periods.
    tokio::time::sleep(FAST_BEAT * 8).await;
    ensure!(
        !b.clean_expired_sessions().await?.contains(&sid_a),
        "a live session must not be cleaned up"
    );
    expect_err(
        b.flock(g, 9, LockType::Read).await,
        WouldBlock,
        "A's flock holds",
    )?;
    // A "crashes": every handle dropped without close, so its heartbeat stops.
    drop(a);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        // B's own heartbeat cleans it up too; either way A's session goes.
        let cleaned = b.clean_expired_sessions().await?;
        let listed = b.sessions().await?.iter().any(|s| s.info.sid == sid_a);
        if cleaned.contains(&sid_a) || !listed {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "A's session was not cleaned up 20 s after its last heartbeat"
        );
        tokio::time::sleep(FAST_BEAT).await;
    }
    expect_err(
        b.getattr(f).await,
        NotFound,
        "A's sustained inode is deleted",
    )?;
    ensure!(
        pending_file(&b.list_pending(usize::MAX).await?, f),
        "its data is pending deletion"
    );
    ok(b.flock(g, 9, LockType::Write).await, "A's flock is gone")?;
    ok(
        b.setlk(g, 9, req(LockType::Write, 0, u64::MAX)).await,
        "A's byte-range lock is gone",
    )?;
    expect_err(
        b.session_holdings(sid_a).await,
        NotFound,
        "A's session after cleanup",
    )?;
    b.close().await?;
    fsck_clean(&*ctx.backend(), "end").await
}

/// Sessions are listed with their description; close ends one (its opens released, its
/// locks dropped); a session-less `Meta` refuses opens and locks; ops naming a missing
/// session or inode fail with ENOENT.
pub async fn lifecycle_and_errors(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let own = m.session_id().context("the primary Meta has a session")?;
    let b = ctx.open_meta(MetaOptions::default()).await?;
    let sb = b.session_id().context("B's session")?;
    ensure!(sb != own, "two clients, two sessions");
    let all = m.sessions().await?;
    let s = all
        .iter()
        .find(|s| s.info.sid == sb)
        .context("B is listed")?;
    ensure!(
        s.info.pid == std::process::id() && !s.info.host.is_empty(),
        "description: {s:?}"
    );
    ensure!(s.expire > Timespec::now(), "expiry in the future: {s:?}");
    let (f, _) = m.create(ME, ROOT, b"f", 0o644).await?;
    b.open_file(f).await?;
    b.flock(f, 1, LockType::Read).await?;
    b.setlk(f, 1, req(LockType::Read, 10, 20)).await?;
    let h = m.session_holdings(sb).await?;
    ensure!(
        h.open == vec![f] && h.flocks == vec![(f, 1, LockType::Read)] && h.plocks.len() == 1,
        "B holds {h:?}"
    );
    m.unlink(ME, ROOT, b"f").await?;
    b.close().await?;
    ensure!(
        !m.sessions().await?.iter().any(|s| s.info.sid == sb),
        "close removed B's session"
    );
    expect_err(m.getattr(f).await, NotFound, "B's close released the file")?;
    expect_err(m.session_holdings(sb).await, NotFound, "closed session")?;
    // Raw ops naming a session that does not exist, or an inode that does not.
    let be = m.backend();
    let (g, _) = m.create(ME, ROOT, b"g", 0o644).await?;
    let gone = LockOwner { sid: sb, owner: 1 };
    for (op, kind) in [
        (Op::Open { sid: sb, ino: g }, NotFound),
        (
            Op::Open {
                sid: own,
                ino: MISSING,
            },
            NotFound,
        ),
        (
            Op::Open {
                sid: own,
                ino: Ino::ZERO,
            },
            InvalidArgument,
        ),
        (
            Op::Flock {
                ino: g,
                owner: gone,
                typ: LockType::Read,
            },
            NotFound,
        ),
        (
            Op::Setlk {
                ino: g,
                owner: LockOwner { sid: own, owner: 1 },
                typ: LockType::Read,
                start: 5,
                end: 4,
                pid: 1,
            },
            InvalidArgument,
        ),
        (
            Op::Heartbeat {
                sid: sb,
                expire: t(0, 0),
            },
            NotFound,
        ),
        (
            Op::CloseSession {
                sid: own,
                expired_before: Some(t(-1_000_000_000, 0)),
                at_most: None,
            },
            WouldBlock,
        ),
    ] {
        let what = format!("{op:?}");
        expect_err(apply1(&**be, op).await?, kind, what)?;
    }
    // A session closed by an op of a batch is gone for the ops after it in that batch,
    // even when an earlier op of the batch found it alive.
    let c = ctx.open_meta(MetaOptions::default()).await?;
    let sc = c.session_id().context("C's session")?;
    let ids = be.reserve_ids(meta_core::IdKind::Inode, 1).await?;
    let mut created = mknod_op(ROOT, b"h", Ino(ids.start), FileType::Regular, t(5, 0));
    if let Op::Mknod { opened_by, .. } = &mut created {
        *opened_by = Some(sc);
    }
    let r = be
        .apply(&[
            Op::Open { sid: sc, ino: g },
            Op::CloseSession {
                sid: sc,
                expired_before: None,
                at_most: None,
            },
            Op::Open { sid: sc, ino: g },
            created,
        ])
        .await?;
    ensure!(r[0].is_ok() && r[1].is_ok(), "open, close: {r:?}");
    expect_err(r[2].clone(), NotFound, "open after the close in one batch")?;
    expect_err(
        r[3].clone(),
        NotFound,
        "create-open after the close in one batch",
    )?;
    expect_err(
        m.lookup(ROOT, b"h").await,
        NotFound,
        "the failed create-open",
    )?;
    // C's session is already gone: its own close has nothing left to end.
    c.close().await.ok();
    // A client without a session.
    let plain = ctx
        .open_meta({
            let mut o = MetaOptions::default();
            o.session = false;
            o
        })
        .await?;
    ensure!(plain.session_id().is_none(), "session=0 registers nothing");
    expect_err(
        plain.open_file(g).await,
        Unsupported,
        "open without a session",
    )?;
    expect_err(
        plain.flock(g, 1, LockType::Read).await,
        Unsupported,
        "flock without a session",
    )?;
    fsck_clean(&**be, "end").await
}

/// flock(2) between two sessions and two owners of one session: shared locks coexist, an
/// exclusive lock conflicts with any other owner's, an owner converts its own lock, unlock
/// of a lock not held succeeds; close drops the session's flocks.
pub async fn flock_matrix(ctx: &TestCtx) -> Result<()> {
    let a = ctx.meta();
    let b = ctx.open_meta(MetaOptions::default()).await?;
    let (f, _) = a.create(ME, ROOT, b"f", 0o644).await?;
    use LockType::{Read, Unlock, Write};
    a.flock(f, 1, Read).await?;
    ok(
        a.flock(f, 2, Read).await,
        "two shared owners in one session",
    )?;
    ok(b.flock(f, 1, Read).await, "shared across sessions")?;
    expect_err(
        b.flock(f, 2, Write).await,
        WouldBlock,
        "exclusive over shared",
    )?;
    expect_err(
        a.flock(f, 1, Write).await,
        WouldBlock,
        "upgrade with other readers",
    )?;
    a.flock(f, 2, Unlock).await?;
    b.flock(f, 1, Unlock).await?;
    ok(a.flock(f, 1, Write).await, "upgrade as the only holder")?;
    expect_err(a.flock(f, 2, Read).await, WouldBlock, "another owner of A")?;
    expect_err(b.flock(f, 1, Read).await, WouldBlock, "another session")?;
    ok(a.flock(f, 1, Write).await, "relock by the holder")?;
    ok(b.flock(f, 7, Unlock).await, "unlock of nothing")?;
    ok(a.flock(f, 1, Read).await, "downgrade")?;
    ok(b.flock(f, 1, Read).await, "shared after the downgrade")?;
    let locks = a.locks(f).await?;
    ensure!(locks.flocks.len() == 2, "two flocks: {locks:?}");
    b.close().await?;
    ensure!(
        a.locks(f).await?.flocks.len() == 1,
        "close dropped B's flock"
    );
    ok(a.flock(f, 1, Write).await, "A alone again")?;
    expect_err(
        a.flock(MISSING, 1, Read).await,
        NotFound,
        "flock of a missing inode",
    )?;
    Ok(())
}

/// fcntl(2) byte-range locks: lock `[0,100]`, unlock `[40,60]` leaves two ranges; F_GETLK names
/// the conflicting range (or none); read ranges coexist, write ranges conflict across
/// owners; adjacent ranges of one type merge; release of the last open drops them.
pub async fn plock_split_merge_getlk(ctx: &TestCtx) -> Result<()> {
    let a = ctx.meta();
    let b = ctx.open_meta(MetaOptions::default()).await?;
    let (f, _) = a.create(ME, ROOT, b"f", 0o644).await?;
    use LockType::{Read, Unlock, Write};
    let sa = a.session_id().context("A's session")?;
    let r = |start, end, typ| PlockRange {
        start,
        end,
        typ,
        pid: 42,
    };
    a.setlk(f, 1, req(Write, 0, 100)).await?;
    a.setlk(f, 1, req(Unlock, 40, 60)).await?;
    let mine = |l: &meta_core::InodeLocks, o: LockOwner| {
        l.plocks
            .iter()
            .find(|(x, _)| *x == o)
            .map(|(_, r)| r.clone())
            .unwrap_or_default()
    };
    let oa = LockOwner { sid: sa, owner: 1 };
    ensure!(
        mine(&a.locks(f).await?, oa) == vec![r(0, 39, Write), r(61, 100, Write)],
        "split: {:?}",
        a.locks(f).await?
    );
    ensure!(
        b.getlk(f, 1, req(Write, 45, 55)).await?.is_none(),
        "the hole is free"
    );
    ensure!(
        b.getlk(f, 1, req(Read, 30, 50)).await? == Some((oa, r(0, 39, Write))),
        "F_GETLK names the conflicting range"
    );
    ok(
        b.setlk(f, 1, req(Read, 41, 59)).await,
        "lock inside the hole",
    )?;
    expect_err(
        b.setlk(f, 1, req(Read, 39, 41)).await,
        WouldBlock,
        "read over write",
    )?;
    expect_err(
        a.setlk(f, 2, req(Write, 50, 50)).await,
        WouldBlock,
        "another owner of A over B's read",
    )?;
    ok(a.setlk(f, 2, req(Read, 50, 50)).await, "read over read")?;
    // Same-type neighbours merge; converting a middle part splits.
    a.setlk(f, 1, req(Write, 101, 200)).await?;
    ensure!(
        mine(&a.locks(f).await?, oa) == vec![r(0, 39, Write), r(61, 200, Write)],
        "merge of touching ranges"
    );
    a.setlk(f, 1, req(Read, 100, 150)).await?;
    ensure!(
        mine(&a.locks(f).await?, oa)
            == vec![
                r(0, 39, Write),
                r(61, 99, Write),
                r(100, 150, Read),
                r(151, 200, Write)
            ],
        "conversion splits: {:?}",
        a.locks(f).await?
    );
    let blocker = a.getlk(f, 1, req(Write, 0, u64::MAX)).await?;
    ensure!(
        blocker.is_some_and(|(o, _)| o != oa),
        "an owner's own ranges never block it; others' do: {blocker:?}"
    );
    // The last release of an open drops the session's locks on the inode.
    b.open_file(f).await?;
    b.release_file(f).await?;
    b.flush().await?;
    ensure!(
        a.locks(f).await?.plocks.iter().all(|(o, _)| o.sid == sa),
        "B's ranges went with its last release"
    );
    ok(a.setlk(f, 1, req(Unlock, 0, u64::MAX)).await, "unlock all")?;
    ok(a.setlk(f, 2, req(Unlock, 0, u64::MAX)).await, "unlock all")?;
    ensure!(a.locks(f).await?.plocks.is_empty(), "no locks left");
    b.close().await?;
    Ok(())
}

/// One client opens and closes four files from 16 tasks (so releases are queued, taken back
/// by reopens, and sent while other opens come in) while another client unlinks them: an
/// open fails (ENOENT) only after the unlinks began (a file whose last open was released
/// after its unlink is gone); once every task has closed and the first client flushed, no
/// file is left, each is pending deletion, and the volume is consistent.
pub async fn open_release_churn(ctx: &TestCtx) -> Result<()> {
    let a = ctx.meta();
    let b = ctx.open_meta(MetaOptions::default()).await?;
    let mut files = Vec::new();
    for i in 0..4u8 {
        files.push(file_with_data(&a, &[b'f', b'0' + i]).await?.0);
    }
    let files = Arc::new(files);
    let unlinking = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for k in 0..16usize {
        let (a, files, unlinking) = (a.clone(), files.clone(), unlinking.clone());
        tasks.push(tokio::spawn(async move {
            for round in 0..40usize {
                let f = files[(k + round) % files.len()];
                match a.open_file(f).await {
                    Ok(()) => {}
                    Err(e) if e.kind() == NotFound && unlinking.load(Ordering::SeqCst) => {
                        continue;
                    }
                    Err(e) => return Err(anyhow::Error::new(e).context("open before unlink")),
                }
                if round % 3 == 0 {
                    tokio::task::yield_now().await;
                }
                a.release_file(f).await?;
            }
            Ok::<(), anyhow::Error>(())
        }));
    }
    // The unlinks land while the churn runs: an inode still open somewhere is sustained.
    tokio::time::sleep(Duration::from_millis(5)).await;
    unlinking.store(true, Ordering::SeqCst);
    for i in 0..4u8 {
        b.unlink(ME, ROOT, &[b'f', b'0' + i]).await?;
    }
    for t in tasks {
        t.await.context("churn task panicked")??;
    }
    a.flush().await?;
    let pending = b.list_pending(usize::MAX).await?;
    for &f in files.iter() {
        expect_err(b.getattr(f).await, NotFound, "a released, unlinked file")?;
        ensure!(pending_file(&pending, f), "{f} is pending deletion");
        ensure!(a.open_count(f).await == 0, "no open left of {f}");
    }
    b.close().await?;
    counters_exact(&*ctx.backend(), "after the churn").await?;
    fsck_clean(&*ctx.backend(), "after the churn").await
}

/// 16 tasks on each of two clients race for one exclusive flock (the blocking helper) and
/// one exclusive byte range; a counter inside each critical section never sees two holders
/// (one counter per lock kind: a flock and a byte-range lock never conflict).
pub async fn lock_race_16x2(ctx: &TestCtx) -> Result<()> {
    let a = ctx.meta();
    let b = ctx.open_meta(MetaOptions::default()).await?;
    let (f, _) = a.create(ME, ROOT, b"f", 0o644).await?;
    const TASKS: u64 = 16;
    const ROUNDS: usize = 4;
    let inside = Arc::new([AtomicU32::new(0), AtomicU32::new(0)]);
    let worst = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for (i, m) in [a.clone(), b.clone()].into_iter().enumerate() {
        for k in 0..TASKS {
            let (m, inside, worst) = (m.clone(), inside.clone(), worst.clone());
            let owner = i as u64 * 100 + k;
            tasks.push(tokio::spawn(async move {
                for round in 0..ROUNDS {
                    let plock = round % 2 == 1;
                    let limit = Some(Duration::from_secs(60));
                    if plock {
                        m.setlk_wait(f, owner, req(LockType::Write, 0, 0), limit)
                            .await?;
                    } else {
                        m.flock_wait(f, owner, LockType::Write, limit).await?;
                    }
                    let counter = &inside[usize::from(plock)];
                    let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
                    worst.fetch_max(n, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_micros(300)).await;
                    counter.fetch_sub(1, Ordering::SeqCst);
                    if plock {
                        m.setlk(f, owner, req(LockType::Unlock, 0, 0)).await?;
                    } else {
                        m.flock(f, owner, LockType::Unlock).await?;
                    }
                }
                Ok::<(), meta_core::Error>(())
            }));
        }
    }
    for t in tasks {
        t.await.context("lock task panicked")??;
    }
    let w = worst.load(Ordering::SeqCst);
    ensure!(w == 1, "{w} tasks held the exclusive lock at once");
    let locks = a.locks(f).await?;
    ensure!(
        locks.flocks.is_empty() && locks.plocks.is_empty(),
        "every lock released: {locks:?}"
    );
    b.close().await?;
    Ok(())
}

/// Lock ops in one batch see each other in order (the batch contract), also on a backend
/// that decides a lock op from the records it read before the batch ran (meta-redis). With
/// owner 2 holding an exclusive flock and the write range `[0,9]`: `[flock by 3, unlock by 2,
/// flock by 3]` refuses the first (EAGAIN: 2 holds it then) and grants the second, and
/// `[unlock [0,9] by 2, write lock [0,9] by 3]` grants 3's range.
pub async fn lock_ops_in_one_batch_see_each_other(ctx: &TestCtx) -> Result<()> {
    let a = ctx.meta();
    let (f, _) = a.create(ME, ROOT, b"f", 0o644).await?;
    let sid = a
        .session_id()
        .context("a read-write client has a session")?;
    let by = |owner| LockOwner { sid, owner };
    let flock = |owner, typ| Op::Flock {
        ino: f,
        owner: by(owner),
        typ,
    };
    let setlk = |owner, typ| Op::Setlk {
        ino: f,
        owner: by(owner),
        typ,
        start: 0,
        end: 9,
        pid: 42,
    };
    a.flock(f, 2, LockType::Write).await?;
    a.setlk(f, 2, req(LockType::Write, 0, 9)).await?;
    let ops = vec![
        flock(3, LockType::Write),
        flock(2, LockType::Unlock),
        flock(3, LockType::Write),
        setlk(2, LockType::Unlock),
        setlk(3, LockType::Write),
    ];
    let r = a.apply_batch(ops).await;
    ensure!(r.len() == 5, "one result per op: {r:?}");
    expect_err(
        r[0].clone().map(drop),
        WouldBlock,
        "flock by 3 while 2 holds it",
    )?;
    for (i, what) in [
        (1, "flock unlock by 2"),
        (2, "flock by 3 after 2's unlock in the same batch"),
        (3, "range unlock by 2"),
        (4, "range lock by 3 after 2's unlock in the same batch"),
    ] {
        ok(r[i].clone().map(drop), what)?;
    }
    let locks = a.locks(f).await?;
    let owners =
        |l: &[(LockOwner, LockType)]| l.iter().map(|(o, t)| (o.owner, *t)).collect::<Vec<_>>();
    ensure!(
        owners(&locks.flocks) == [(3, LockType::Write)],
        "3 alone holds the flock: {locks:?}"
    );
    ensure!(
        locks.plocks.len() == 1 && locks.plocks[0].0.owner == 3,
        "3 alone holds the range: {locks:?}"
    );
    Ok(())
}

/// The cleanup lease ([`Op::ClaimCleanup`]) admits one client at a time: 16 tasks × 2
/// clients claim it at the same instant and exactly one wins; a claim within the lease is
/// refused (EAGAIN), one at its end succeeds. The claims use instants far beyond the
/// heartbeats' own (which then stay refused on this volume).
pub async fn cleanup_lease_one_at_a_time(ctx: &TestCtx) -> Result<()> {
    let a = ctx.meta();
    let b = ctx.open_meta(MetaOptions::default()).await?;
    const EVERY: i64 = 60_000;
    let base = Timespec::now().sec.saturating_mul(1000) + 1_000_000_000;
    let claim = |m: Meta, now_ms: i64| async move {
        m.submit(Op::ClaimCleanup {
            now_ms,
            every_ms: EVERY,
        })
        .await
    };
    let mut tasks = Vec::new();
    for m in [a.clone(), b.clone()] {
        for _ in 0..16 {
            tasks.push(tokio::spawn(claim(m.clone(), base)));
        }
    }
    let (mut won, mut refused) = (0, 0);
    for t in tasks {
        match t.await.context("claim task panicked")? {
            Ok(_) => won += 1,
            Err(e) if e.kind() == WouldBlock => refused += 1,
            Err(e) => return Err(e).context("a claim failed otherwise than EAGAIN"),
        }
    }
    ensure!(
        (won, refused) == (1, 31),
        "{won} claims won and {refused} refused of 32 at one instant"
    );
    expect_err(
        claim(b.clone(), base + EVERY - 1).await,
        WouldBlock,
        "a claim 1 ms before the lease ends",
    )?;
    claim(b.clone(), base + EVERY)
        .await
        .context("a claim when the lease ends")?;
    expect_err(
        claim(a.clone(), base + EVERY).await,
        WouldBlock,
        "a second claim at that instant",
    )?;
    b.close().await?;
    Ok(())
}
