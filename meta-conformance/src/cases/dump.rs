//! Dump and load (`meta_core::dump`): round trips on one backend and across backends.

use std::sync::Arc;

use meta_core::memory::memory_backend;

use super::prelude::*;

/// dump → load into a fresh volume of the same backend → dump gives identical text; the
/// loaded volume passes fsck and has the same statfs.
pub async fn round_trip_same_backend(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    build_rich_tree(&m).await?;
    let b = ctx.backend();
    let text = dump_text(&*b).await?;
    let vol = ctx.extra_volume(None).await?;
    let b2 = vol.backend();
    load_text(&*b2, &text).await?;
    same_text(
        &text,
        &dump_text(&*b2).await?,
        "dump vs dump of the loaded volume",
    )?;
    ensure!(
        b.statfs().await? == b2.statfs().await?,
        "statfs differs after load"
    );
    fsck_clean(&*b2, "the loaded volume").await?;
    // The loaded volume is usable: new IDs do not collide.
    let m2 = vol.meta(MetaOptions::default()).await?;
    for i in 0..20 {
        m2.create(ME, ROOT, format!("after-load-{i}").as_bytes(), 0o644)
            .await?;
    }
    fsck_clean(&*b2, "the loaded volume after creates").await?;
    drop((m2, b2));
    vol.close().await
}

/// Across backends: a dump of the backend under test loads into the in-memory reference and
/// dumps to identical text, and a dump made on the reference loads into the backend under
/// test and dumps identically.
pub async fn across_backends(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    build_rich_tree(&m).await?;
    let text = dump_text(&*ctx.backend()).await?;
    let mem = memory_backend();
    load_text(&mem, &text).await?;
    same_text(
        &text,
        &dump_text(&mem).await?,
        "this backend's dump vs its load into memory",
    )?;
    // The other way round: a tree built on the reference.
    let reference: Arc<dyn Backend> = Arc::new(memory_backend());
    Meta::format(&*reference, &Setting::new("reference"), false).await?;
    let rm = Meta::open(reference.clone(), MetaOptions::default(), None).await?;
    build_rich_tree(&rm).await?;
    rm.create(ME, ROOT, b"only-on-reference", 0o600).await?;
    let rtext = dump_text(&*reference).await?;
    let vol = ctx.extra_volume(None).await?;
    let b2 = vol.backend();
    load_text(&*b2, &rtext).await?;
    same_text(
        &rtext,
        &dump_text(&*b2).await?,
        "the reference's dump vs its load here",
    )?;
    fsck_clean(&*b2, "reference dump loaded here").await?;
    drop(b2);
    vol.close().await
}

/// Data awaiting deletion survives a dump → load: the pending-deletion records (a deleted
/// file's chunks, dropped slices) of the dumped volume are pending in the loaded one, so
/// the data layer can still delete those objects (JuiceFS dumps them as `DelFiles`).
pub async fn keeps_pending(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    build_rich_tree(&m).await?;
    let b = ctx.backend();
    let pending = pending_sorted(&*b).await?;
    ensure!(
        pending.len() == 2,
        "the rich tree should leave a pending file and a slice: {pending:?}"
    );
    let text = dump_text(&*b).await?;
    let vol = ctx.extra_volume(None).await?;
    let b2 = vol.backend();
    load_text(&*b2, &text).await?;
    let loaded = pending_sorted(&*b2).await?;
    ensure!(
        loaded == pending,
        "pending-deletion records lost by dump/load:\n  dumped volume {pending:?}\n  loaded volume {loaded:?}"
    );
    for p in &pending {
        if let Pending::File { ino, .. } = p {
            ensure!(
                b2.list_chunks(*ino).await? == b.list_chunks(*ino).await?,
                "chunks of pending file {ino} lost by dump/load"
            );
        }
    }
    drop(b2);
    vol.close().await
}

/// load refuses a volume that is already formatted (EEXIST) unless forced, and leaves it
/// untouched.
pub async fn load_refuses_formatted(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    m.create(ME, ROOT, b"precious", 0o644).await?;
    let b = ctx.backend();
    let before = dump_text(&*b).await?;
    let other = memory_backend();
    Meta::format(&other, &Setting::new("other"), false).await?;
    let text = dump_text(&other).await?;
    let mut input = text.as_bytes();
    let r = meta_core::dump::load(&*b, &mut input, false, &mut |_| {}).await;
    expect_err(r, AlreadyExists, "load into a formatted volume")?;
    same_text(
        &before,
        &dump_text(&*b).await?,
        "the volume after a refused load",
    )
}

/// The largest inode number and slice ID present in a volume (attributes, chunks of live and
/// pending files, pending slices).
async fn largest_ids(b: &dyn Backend) -> Result<(u64, u64)> {
    let inodes = meta_core::backend::all_inodes(b, 1000).await?;
    let mut files: Vec<Ino> = inodes
        .iter()
        .filter(|(_, a)| a.typ == FileType::Regular)
        .map(|(i, _)| *i)
        .collect();
    let mut slice = 0;
    for p in b.list_pending(usize::MAX).await? {
        match p {
            Pending::File { ino, .. } => files.push(ino),
            Pending::Slice { id, .. } => slice = slice.max(id),
        }
    }
    for ino in files {
        for (_, list) in b.list_chunks(ino).await? {
            slice = slice.max(list.iter().map(|s| s.id).max().unwrap_or(0));
        }
    }
    let ino = inodes.keys().map(|i| i.0).max().unwrap_or(0);
    Ok((ino, slice))
}

/// The ID counters are above every ID present (else the next create or write reuses one).
async fn counters_above_ids(b: &dyn Backend, what: &str) -> Result<()> {
    let (ino, slice) = largest_ids(b).await?;
    let next_ino = b.get_counter(meta_core::IdKind::Inode.counter()).await?;
    let next_slice = b.get_counter(meta_core::IdKind::Chunk.counter()).await?;
    ensure!(
        next_ino > ino as i64 && next_slice > slice as i64,
        "{what}: counters nextInode {next_ino} / nextChunk {next_slice}, but inode {ino} and \
         slice {slice} are present"
    );
    Ok(())
}

/// A load never leaves the ID counters at or below an ID present, wherever it stops: with a
/// header whose counters are older than its records (a dump of a volume being written), and
/// with a load that fails on a record near the end (the records before it are applied: a
/// failure only the backend finds, a name already taken).
pub async fn load_keeps_counters_above_ids(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    build_rich_tree(&m).await?;
    let text = dump_text(&*ctx.backend()).await?;
    let lines: Vec<&str> = text.lines().collect();
    ensure!(
        lines.len() > 4,
        "the rich tree dumps to {} lines",
        lines.len()
    );
    // 1. The header's counters lag behind the records.
    let mut header: serde_json::Value = serde_json::from_str(lines[0])?;
    header["counters"]["nextInode"] = 2.into();
    header["counters"]["nextChunk"] = 1.into();
    let mut stale = vec![header.to_string()];
    stale.extend(lines[1..].iter().map(|l| l.to_string()));
    let vol = ctx.extra_volume(None).await?;
    let b2 = vol.backend();
    load_text(&*b2, &(stale.join("\n") + "\n")).await?;
    counters_above_ids(&*b2, "a dump with a stale header").await?;
    drop(b2);
    vol.close().await?;
    // 2. The last inode record takes the name of the first one after the root: the dump's
    // checks pass it (they keep no name), the backend refuses it (EEXIST), so the load fails
    // there, after applying the records before it.
    let last = lines
        .iter()
        .rposition(|l| !l.contains("\"pending\""))
        .context("an inode record")?;
    let first: serde_json::Value = serde_json::from_str(lines[2])?;
    ensure!(
        last > 2,
        "the rich tree has more than one inode record after the root"
    );
    let mut rec: serde_json::Value = serde_json::from_str(lines[last])?;
    rec["links"] = serde_json::json!([first["links"][0].clone()]);
    let mut broken: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    broken[last] = rec.to_string();
    let vol = ctx.extra_volume(None).await?;
    let b3 = vol.backend();
    let mut input = broken.join("\n").into_bytes();
    input.push(b'\n');
    let r = meta_core::dump::load(&*b3, &mut input.as_slice(), false, &mut |_| {}).await;
    let e = r
        .err()
        .context("a load with a name taken twice succeeded")?;
    ensure!(
        e.to_string().contains(&format!("line {}", last + 1))
            && e.to_string().contains("load again with force"),
        "the error names the line and says the target holds part of the dump: {e}"
    );
    ensure!(
        meta_core::backend::all_inodes(&*b3, 1000).await?.len() > 2,
        "the records before the bad one were applied"
    );
    counters_above_ids(&*b3, "a load that stopped at a bad record").await?;
    drop(b3);
    vol.close().await
}

/// Writes a [`Hooked`] runs.
type HookFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send>>;

/// [`meta_core::snapshot::VolumeReads`] that runs `hook` (once) just before the first page
/// of directory `at` is read: writes made in the middle of a dump's walk.
struct Hooked<'a> {
    inner: &'a dyn meta_core::snapshot::VolumeReads,
    at: Ino,
    hook: tokio::sync::Mutex<Option<HookFuture>>,
    fired: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl meta_core::snapshot::VolumeReads for Hooked<'_> {
    fn is_snapshot(&self) -> bool {
        self.inner.is_snapshot()
    }
    async fn load(&self) -> meta_core::Result<Setting> {
        self.inner.load().await
    }
    async fn get_counter(&self, counter: meta_core::Counter) -> meta_core::Result<i64> {
        self.inner.get_counter(counter).await
    }
    async fn read_dir(
        &self,
        ino: Ino,
        after: Option<&[u8]>,
        limit: usize,
    ) -> meta_core::Result<Vec<meta_core::DirEntry>> {
        if ino == self.at && after.is_none() {
            let hook = self.hook.lock().await.take();
            if let Some(hook) = hook {
                hook.await.map_err(|e| {
                    meta_core::Error::new(meta_core::ErrorKind::Internal, format!("hook: {e:#}"))
                })?;
                self.fired.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
        self.inner.read_dir(ino, after, limit).await
    }
    async fn read_inodes(
        &self,
        inos: &[Ino],
    ) -> meta_core::Result<Vec<Option<meta_core::snapshot::InodeData>>> {
        self.inner.read_inodes(inos).await
    }
    async fn list_chunks(&self, ino: Ino) -> meta_core::Result<Vec<(u32, Vec<Slice>)>> {
        self.inner.list_chunks(ino).await
    }
    async fn list_pending(&self, limit: usize) -> meta_core::Result<Vec<Pending>> {
        self.inner.list_pending(limit).await
    }
    async fn list_sessions(&self) -> meta_core::Result<Vec<meta_core::Session>> {
        self.inner.list_sessions().await
    }
    async fn session_holdings(
        &self,
        sid: meta_core::Sid,
    ) -> meta_core::Result<meta_core::SessionHoldings> {
        self.inner.session_holdings(sid).await
    }
    async fn quotas(&self) -> meta_core::Result<Vec<(Ino, meta_core::Quota)>> {
        self.inner.quotas().await
    }
}

/// A dump is a state that existed where the backend gives a snapshot
/// ([`Backend::snapshot`]): while it walks (after `/a` was listed, before `/z`), another
/// client moves `/a/moved` to `/z/moved-here`, creates `/z/new` and removes `/z/f0`; the dump
/// must equal the dump taken before those writes (read live, it would name the moved file
/// twice). A backend without snapshot passes by saying so: its dump reports
/// `snapshot: false`.
pub async fn snapshot_under_writes(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (a, _) = m.mkdir(ME, ROOT, b"a", 0o755).await?;
    let (z, _) = m.mkdir(ME, ROOT, b"z", 0o755).await?;
    m.create(ME, a, b"moved", 0o644).await?;
    for i in 0..3 {
        m.create(ME, z, format!("f{i}").as_bytes(), 0o644).await?;
    }
    let b = ctx.backend();
    let before = dump_text(&*b).await?;
    let Some(snap) = b.snapshot().await? else {
        let mut out = Vec::new();
        let stats = meta_core::dump::dump(&*b, &mut out, &mut |_| {}).await?;
        ensure!(
            !stats.snapshot,
            "a dump without snapshot must say it is not one"
        );
        return Ok(());
    };
    let m2 = m.clone();
    let hooked = Hooked {
        inner: &*snap,
        at: z,
        hook: tokio::sync::Mutex::new(Some(Box::pin(async move {
            m2.rename(ME, a, b"moved", z, b"moved-here", RenameFlags::default())
                .await?;
            m2.create(ME, z, b"new", 0o644).await?;
            m2.unlink(ME, z, b"f0").await?;
            Ok(())
        }))),
        fired: std::sync::atomic::AtomicBool::new(false),
    };
    let mut out = Vec::new();
    let stats = meta_core::dump::dump_from(&hooked, &mut out, &mut |_| {}).await?;
    ensure!(
        hooked.fired.load(std::sync::atomic::Ordering::SeqCst),
        "the writes did not run during the dump"
    );
    ensure!(stats.snapshot, "a dump from a snapshot says it is one");
    drop(hooked);
    drop(snap);
    let after = dump_text(&*b).await?;
    ensure!(after != before, "the writes during the dump took no effect");
    same_text(
        &before,
        &String::from_utf8(out)?,
        "a dump from a snapshot taken before writes made during its walk",
    )
}

/// A sustained inode (unlinked while open) is dumped as what it becomes once its sessions
/// end: a regular file with data as a pending deletion with its chunks, an empty one not at
/// all. The loaded volume has no sessions, and passes fsck.
pub async fn sustained_becomes_pending(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let b = ctx.backend();
    let (full, _) = m.create(ME, ROOT, b"full", 0o644).await?;
    let id = m.new_slice_id().await?;
    let slice = Slice {
        pos: 0,
        id,
        size: 100,
        off: 0,
        len: 100,
    };
    m.write(Caller::ROOT, full, 0, slice).await?;
    let (empty, _) = m.create(ME, ROOT, b"empty", 0o644).await?;
    m.open_file(full).await?;
    m.open_file(empty).await?;
    m.unlink(ME, ROOT, b"full").await?;
    m.unlink(ME, ROOT, b"empty").await?;
    ensure!(
        m.getattr(full).await?.nlink == 0 && m.getattr(empty).await?.nlink == 0,
        "both are sustained"
    );
    ensure!(
        !b.list_pending(usize::MAX)
            .await?
            .iter()
            .any(|p| matches!(p, Pending::File { ino, .. } if *ino == full)),
        "no pending record while the file is open"
    );
    let text = dump_text(&*b).await?;
    let vol = ctx.extra_volume(None).await?;
    let b2 = vol.backend();
    load_text(&*b2, &text).await?;
    let loaded = b2.list_pending(usize::MAX).await?;
    ensure!(
        loaded
            == vec![Pending::File {
                ino: full,
                length: 100
            }],
        "the loaded volume's pending records: {loaded:?}"
    );
    ensure!(
        b2.list_chunks(full).await? == vec![(0, vec![slice])],
        "the sustained file's chunks are kept for the data layer"
    );
    expect_err(
        b2.get_attr(empty).await,
        NotFound,
        "the empty sustained inode",
    )?;
    ensure!(
        b2.list_sessions().await?.is_empty(),
        "sessions are not dumped"
    );
    fsck_clean(&*b2, "the loaded volume").await?;
    drop(b2);
    vol.close().await?;
    m.release_file(full).await?;
    m.release_file(empty).await?;
    m.flush().await?;
    Ok(())
}
