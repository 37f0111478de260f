//! Sessions holding many files: a client that closes hundreds of files at once (a process
//! exiting, `tar`, a build) releases them all, on every backend, whatever the store's limits
//! per transaction (etcd takes 128 operations by default).

use std::sync::Arc;

use meta_core::{LockType, Session, SessionHoldings, Sid};

use super::prelude::*;

/// Creates `n` files `f000`, `f001`, ... in `dir`, open in `m`'s session, with a write flock
/// (owner 1) on every fifth and, when `write`, one 100-byte slice each: names and inodes.
async fn create_held(m: &Meta, dir: Ino, n: u32, write: bool) -> Result<Vec<(String, Ino)>> {
    let mut files = Vec::new();
    for i in 0..n {
        let name = format!("f{i:03}");
        let (f, _) = m.create_open(ME, dir, name.as_bytes(), 0o644).await?;
        if write {
            let s = slice(m.new_slice_id().await?, 0, 100);
            m.write(Caller::ROOT, f, 0, s).await?;
        }
        if i % 5 == 0 {
            m.flock(f, 1, LockType::Write).await?;
        }
        files.push((name, f));
    }
    Ok(files)
}

/// Checks `files` once released: the even ones (unlinked while open) are gone and pending
/// deletion, the odd ones are still there and not pending.
async fn check_released(m: &Meta, files: &[Ino], when: &str) -> Result<()> {
    let pending = m.list_pending(usize::MAX).await?;
    for (i, f) in files.iter().enumerate() {
        let gone = i % 2 == 0;
        match m.getattr(*f).await {
            Err(e) if gone && e.kind() == NotFound => {}
            Ok(_) if !gone => {}
            other => bail!("file {i} (unlinked: {gone}) {when}: {other:?}"),
        }
        let is_pending = pending
            .iter()
            .any(|p| matches!(p, Pending::File { ino, .. } if ino == f));
        ensure!(
            is_pending == gone,
            "file {i} {when}: pending deletion {is_pending}"
        );
    }
    Ok(())
}

/// After session `sid`, which held `files` from `create_held` open (the even ones unlinked),
/// was closed or cleaned up: its holdings are ENOENT, every file is released
/// (`check_released`), the kept files it flocked (5, 15, ...) can be write-locked by another
/// owner, and the counters and fsck are clean.
async fn check_gone_with_all(
    ctx: &TestCtx,
    a: &Meta,
    sid: Sid,
    files: &[Ino],
    when: &str,
) -> Result<()> {
    expect_err(
        a.session_holdings(sid).await,
        NotFound,
        format!("the session's holdings {when}"),
    )?;
    check_released(a, files, when).await?;
    for (i, f) in files.iter().enumerate().skip(5).step_by(10) {
        a.flock(*f, 2, LockType::Write)
            .await
            .with_context(|| format!("file {i} is free to lock {when}"))?;
    }
    counters_exact(&*ctx.backend(), when).await?;
    fsck_clean(&*ctx.backend(), when).await
}

/// 200 files created open by one client, with 3 xattrs each, 100 of them unlinked (sustained)
/// and 40 locked, all closed together: every release reaches the backend (the sustained
/// inodes become pending deletion, the locks go), another client can lock the files, and the
/// session holds nothing afterwards.
pub async fn many_released_at_once(ctx: &TestCtx) -> Result<()> {
    let a = ctx.meta();
    let sid = a.session_id().context("a read-write Meta has a session")?;
    let (dir, _) = a.mkdir(ME, ROOT, b"bulk", 0o755).await?;
    let files = create_held(&a, dir, 200, true).await?;
    for &(_, f) in &files {
        // xattrs make each inode's deletion larger (on etcd, 16 of them pass one
        // transaction's limit: the release is split).
        for x in [&b"user.a"[..], b"user.b", b"user.c"] {
            a.setxattr(Caller::ROOT, f, x, b"v", XattrFlags::NONE)
                .await?;
        }
    }
    for (name, _) in files.iter().step_by(2) {
        a.unlink(ME, dir, name.as_bytes()).await?;
    }
    // All closes at once, as the kernel sends them when a process with 200 files exits.
    let a2 = Arc::new(a.clone());
    let tasks: Vec<_> = files
        .iter()
        .map(|&(_, f)| {
            let a = a2.clone();
            tokio::spawn(async move { a.release_file(f).await })
        })
        .collect();
    for t in tasks {
        t.await.context("release task panicked")??;
    }
    a.flush().await.context("the queued releases")?;
    let h = a.session_holdings(sid).await?;
    ensure!(
        h.open.is_empty() && h.flocks.is_empty(),
        "the session still holds {} open files and {} flocks after the releases",
        h.open.len(),
        h.flocks.len()
    );
    let inos: Vec<Ino> = files.iter().map(|&(_, f)| f).collect();
    check_released(&a, &inos, "after its release").await?;
    let b = ctx.open_meta(MetaOptions::default()).await?;
    for (i, (_, f)) in files.iter().enumerate().skip(5).step_by(10) {
        b.flock(*f, 2, LockType::Write)
            .await
            .with_context(|| format!("another client locks file {i}"))?;
    }
    b.close().await?;
    counters_exact(&*ctx.backend(), "after the bulk release").await?;
    fsck_clean(&*ctx.backend(), "after the bulk release").await
}

/// A client that closes its `Meta` while it holds 200 files open, 100 of them unlinked
/// (sustained) and 40 locked: the close succeeds, the session is gone with everything it held
/// (the sustained inodes pending deletion, the others intact, the locks free for others).
pub async fn many_held_at_close(ctx: &TestCtx) -> Result<()> {
    let a = ctx.meta();
    let c = ctx.open_meta(MetaOptions::default()).await?;
    let sid = c.session_id().context("a read-write Meta has a session")?;
    let (dir, _) = a.mkdir(ME, ROOT, b"held", 0o755).await?;
    let held = create_held(&c, dir, 200, true).await?;
    for (name, _) in held.iter().step_by(2) {
        c.unlink(ME, dir, name.as_bytes()).await?;
    }
    let files: Vec<Ino> = held.iter().map(|&(_, f)| f).collect();
    c.close()
        .await
        .context("close of a session holding 200 files")?;
    check_gone_with_all(ctx, &a, sid, &files, "after the close").await
}

/// A client that closes its session while another client holds 200 files open, 40 of them
/// locked: the close succeeds and deletes the file it held unlinked, and the other client's
/// opens and locks stay. (On etcd, the close's transaction must not check each of the
/// volume's opens and locks one by one: 128 checks is its limit.)
pub async fn close_beside_many_held_elsewhere(ctx: &TestCtx) -> Result<()> {
    let a = ctx.meta();
    let sa = a.session_id().context("a read-write Meta has a session")?;
    let (dir, _) = a.mkdir(ME, ROOT, b"elsewhere", 0o755).await?;
    create_held(&a, dir, 200, false).await?;
    a.flush().await?;
    let c = ctx.open_meta(MetaOptions::default()).await?;
    let sc = c.session_id().context("a read-write Meta has a session")?;
    let (g, _) = c.create_open(ME, dir, b"mine", 0o644).await?;
    c.flock(g, 7, LockType::Read).await?;
    c.unlink(ME, dir, b"mine").await?;
    c.close()
        .await
        .context("close beside 200 files another session holds")?;
    expect_err(
        a.session_holdings(sc).await,
        NotFound,
        "the closed session's holdings",
    )?;
    expect_err(
        a.getattr(g).await,
        NotFound,
        "its file, unlinked while open",
    )?;
    let h = a.session_holdings(sa).await?;
    ensure!(
        h.open.len() == 200 && h.flocks.len() == 40,
        "the other session holds {} open files and {} flocks, not 200 and 40",
        h.open.len(),
        h.flocks.len()
    );
    counters_exact(&*ctx.backend(), "after the close").await?;
    fsck_clean(&*ctx.backend(), "after the close").await
}

/// A client that crashes (dropped without close, its heartbeat stopped) while it holds 200
/// files open, 100 of them unlinked (sustained) and 40 locked: once it expired, another
/// client's cleanup releases all of it (the sustained inodes pending deletion, the others
/// intact, the locks free). On etcd the session's close is larger than one transaction
/// (128 operations by default), so the cleanup goes in parts ([`Op::CloseSession`]'s
/// `at_most`); before parts existed it failed there with `Unsupported` every time.
pub async fn crashed_holding_many_is_cleaned_up(ctx: &TestCtx) -> Result<()> {
    let a = ctx.meta();
    let mut fast = MetaOptions::default();
    fast.heartbeat = std::time::Duration::from_millis(50);
    let c = ctx.open_meta(fast).await?;
    let sid = c.session_id().context("a read-write Meta has a session")?;
    let (dir, _) = a.mkdir(ME, ROOT, b"crashed", 0o755).await?;
    let held = create_held(&c, dir, 200, true).await?;
    for (name, _) in held.iter().step_by(2) {
        c.unlink(ME, dir, name.as_bytes()).await?;
    }
    c.flush().await?;
    // The crash: every handle dropped without close, so the heartbeat stops.
    drop(c);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let cleaned = a
            .clean_expired_sessions()
            .await
            .context("cleanup of a crashed session holding 200 files")?;
        if cleaned.contains(&sid) {
            break;
        }
        ensure!(
            tokio::time::Instant::now() < deadline,
            "the crashed session was not cleaned up 30 s after its last heartbeat"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let files: Vec<Ino> = held.iter().map(|&(_, f)| f).collect();
    check_gone_with_all(ctx, &a, sid, &files, "after the cleanup").await
}

/// A session's close in parts of 5 ([`Op::CloseSession`] with `at_most`), 10 open files (5
/// unlinked) and 2 flocks held: after the first part the session is gone or fenced (listed
/// with the epoch as its expiry and what it still holds, its heartbeat and new opens refused
/// with ENOENT, so its client cannot come back to it half-released); each part releases 5 of its
/// holdings; parts go on until one answers ENOENT, and then everything is released as by a
/// close in one op. Only such a close fences: a heartbeat to the fence is EINVAL. (Redis
/// closes the whole session in the first part.)
pub async fn close_in_parts_fences_the_session(ctx: &TestCtx) -> Result<()> {
    let a = ctx.meta();
    let be = ctx.backend();
    let c = ctx.open_meta(MetaOptions::default()).await?;
    let sid = c.session_id().context("a read-write Meta has a session")?;
    let (dir, _) = a.mkdir(ME, ROOT, b"parts", 0o755).await?;
    let held = create_held(&c, dir, 10, true).await?;
    for (name, _) in held.iter().step_by(2) {
        c.unlink(ME, dir, name.as_bytes()).await?;
    }
    c.flush().await?;
    // Its client stops (no heartbeat can come in meanwhile); the session stays.
    drop(c);
    let files: Vec<Ino> = held.iter().map(|&(_, f)| f).collect();
    let count = |h: &SessionHoldings| h.open.len() + h.flocks.len() + h.plocks.len();
    let mut left = count(&a.session_holdings(sid).await?);
    ensure!(
        left == 12,
        "10 open files and 2 flocks held, not {left} holdings"
    );
    // Only a close sets the fence: a heartbeat to it is refused (and changes nothing).
    let fence = Op::Heartbeat {
        sid,
        expire: Session::FENCED,
    };
    expect_err(
        apply1(&*be, fence).await?,
        InvalidArgument,
        "a heartbeat to the fence",
    )?;
    let part = std::num::NonZeroU32::new(5).context("5 is not 0")?;
    let mut parts = 0;
    loop {
        let r = apply1(
            &*be,
            Op::CloseSession {
                sid,
                expired_before: None,
                at_most: Some(part),
            },
        )
        .await?;
        if parts > 0 && kind_of(&r) == Some(NotFound) {
            break;
        }
        ok(r, format!("part {} of the close", parts + 1))?;
        parts += 1;
        ensure!(
            parts <= 3,
            "12 holdings in parts of 5 took more than 3 parts"
        );
        let beat = Op::Heartbeat {
            sid,
            expire: Timespec::now(),
        };
        expect_err(
            apply1(&*be, beat).await?,
            NotFound,
            format!("a heartbeat after part {parts}"),
        )?;
        // Nor does it take new opens: the parts end.
        let reopen = Op::Open { sid, ino: files[1] };
        expect_err(
            apply1(&*be, reopen).await?,
            NotFound,
            format!("an open after part {parts}"),
        )?;
        match a.session_holdings(sid).await {
            Err(e) if e.kind() == NotFound => {}
            Ok(h) => {
                let now = count(&h);
                ensure!(
                    now + 5 == left,
                    "part {parts} left {now} of {left} holdings, not 5 fewer"
                );
                left = now;
                let all = a.sessions().await?;
                let s = all
                    .iter()
                    .find(|s| s.info.sid == sid)
                    .context("a session with holdings left is listed")?;
                ensure!(
                    s.is_fenced(),
                    "after part {parts}: expiry {:?}, not the fence",
                    s.expire
                );
            }
            Err(e) => bail!("holdings after part {parts}: {e}"),
        }
    }
    ensure!(
        !a.sessions().await?.iter().any(|s| s.info.sid == sid),
        "the session is listed after its last part"
    );
    check_released(&a, &files, "after the close in parts").await?;
    a.flock(files[5], 2, LockType::Write)
        .await
        .context("file 5's flock is gone with the session")?;
    counters_exact(&*be, "after the close in parts").await?;
    fsck_clean(&*be, "after the close in parts").await
}
