//! Directory statistics (`meta_core::stats`, `Meta::dir_stat`, `Meta::summary`): every op
//! keeps the statistics of the directories it changes exact, in the same atomic op, so they
//! always equal what the inodes add up to (`stats::expected_dir_stats`, also checked by
//! every `fsck_clean` of the suite); a subtree summary built from them equals a walk.

use std::collections::BTreeMap;

use meta_core::stats::{DirStat, Summary, expected_dir_stats};

use super::prelude::*;

/// `(inodes, length, space)` as a [`DirStat`].
fn ds(inodes: i64, length: i64, space: i64) -> DirStat {
    DirStat {
        inodes,
        length,
        space,
    }
}

/// Each directory's stored statistics equal what its inodes add up to.
async fn stats_exact(b: &dyn Backend, what: &str) -> Result<BTreeMap<Ino, DirStat>> {
    let attrs = all_inodes(b).await?;
    let want = expected_dir_stats(&attrs);
    let dirs: Vec<Ino> = attrs
        .iter()
        .filter(|(_, a)| a.typ == FileType::Directory)
        .map(|(i, _)| *i)
        .collect();
    let got = b.dir_stats(&dirs).await.context("dir_stats")?;
    ensure!(
        got.len() == dirs.len(),
        "{what}: dir_stats answered {} of {}",
        got.len(),
        dirs.len()
    );
    for (d, g) in dirs.iter().zip(got) {
        let w = want.get(d).copied().unwrap_or_default();
        ensure!(
            g == w,
            "{what}: directory {d} has {g:?}, its children add up to {w:?}"
        );
    }
    Ok(want)
}

/// Every op moves exactly its inode's charge: create (file 1 byte long from write, dir 4096,
/// symlink its target's length, fifo 0; each at least 4 KiB of space), write and truncate
/// (length and aligned space), a link in the same directory (nothing), a link into another
/// directory (the inode leaves its directory: it is named in two), rename across directories
/// (leaves one, joins the other), rename over a file (the replaced file leaves), unlink of an
/// open file (leaves at once; writes to it afterwards change no directory), rmdir.
pub async fn follows_every_op(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let b = ctx.backend();
    let (d, _) = m.mkdir(ME, ROOT, b"d", 0o755).await?;
    let (e, _) = m.mkdir(ME, ROOT, b"e", 0o755).await?;
    ensure!(
        m.dir_stat(d).await? == DirStat::default(),
        "a new directory has zeros"
    );
    ensure!(
        m.dir_stat(ROOT).await? == ds(2, 8192, 8192),
        "root holds d and e"
    );

    let (f, _) = m.create(ME, d, b"f", 0o644).await?;
    ensure!(m.dir_stat(d).await? == ds(1, 0, 4096), "after create");
    m.write(ME, f, 0, slice(m.new_slice_id().await?, 0, 5000))
        .await?;
    ensure!(m.dir_stat(d).await? == ds(1, 5000, 8192), "after write");
    m.truncate(ME, f, 10).await?;
    ensure!(m.dir_stat(d).await? == ds(1, 10, 4096), "after truncate");
    m.symlink(ME, d, b"s", b"0123456789abcdef").await?;
    m.mknod(ME, d, b"p", FileType::Fifo, 0o644, 0).await?;
    m.mkdir(ME, d, b"sub", 0o755).await?;
    ensure!(
        m.dir_stat(d).await? == ds(4, 10 + 16 + 4096, 4 * 4096),
        "symlink, fifo, subdir"
    );
    stats_exact(&*b, "after creates").await?;

    m.link(ME, f, d, b"f2").await?;
    ensure!(
        m.dir_stat(d).await? == ds(4, 4122, 4 * 4096),
        "a second name in the same dir"
    );
    m.link(ME, f, e, b"f3").await?;
    ensure!(
        m.dir_stat(d).await? == ds(3, 4112, 3 * 4096),
        "named in two dirs: charged to none"
    );
    ensure!(
        m.dir_stat(e).await? == DirStat::default(),
        "nor to the new one"
    );
    stats_exact(&*b, "after links").await?;

    let (g, _) = m.create(ME, d, b"g", 0o644).await?;
    m.write(ME, g, 0, slice(m.new_slice_id().await?, 0, 100))
        .await?;
    m.rename(ME, d, b"g", e, b"g", RenameFlags::NONE).await?;
    ensure!(
        m.dir_stat(e).await? == ds(1, 100, 4096),
        "rename joins the new directory"
    );
    ensure!(
        m.dir_stat(d).await? == ds(3, 4112, 3 * 4096),
        "and leaves the old one"
    );
    let (h, _) = m.create(ME, e, b"h", 0o644).await?;
    m.write(ME, h, 0, slice(m.new_slice_id().await?, 0, 7))
        .await?;
    m.rename(ME, e, b"h", e, b"g", RenameFlags::NONE).await?;
    ensure!(
        m.dir_stat(e).await? == ds(1, 7, 4096),
        "rename over: the replaced file leaves"
    );
    stats_exact(&*b, "after renames").await?;

    m.open_file(h).await?;
    m.unlink(ME, e, b"g").await?;
    ensure!(
        m.dir_stat(e).await? == DirStat::default(),
        "an unlinked open file leaves"
    );
    m.write(ME, h, 0, slice(m.new_slice_id().await?, 0, 9000))
        .await?;
    ensure!(
        m.dir_stat(e).await? == DirStat::default(),
        "writes to it change no directory"
    );
    stats_exact(&*b, "with a sustained inode").await?;
    m.release_file(h).await?;
    m.flush().await?;

    m.rmdir(ME, d, b"sub").await?;
    m.unlink(ME, d, b"s").await?;
    ensure!(
        m.dir_stat(d).await? == ds(1, 0, 4096),
        "rmdir and unlink leave"
    );
    fsck_clean(&*b, "after the sequence").await?;
    Ok(())
}

/// The summary of a subtree equals a walk of it (directories counted with the top one, files,
/// length and space of everything in it); a file's summary is its own numbers; `dir_stat` of a
/// file is ENOTDIR and of a missing inode ENOENT.
pub async fn summary_matches_walk(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let (top, _) = m.mkdir(ME, ROOT, b"top", 0o755).await?;
    let mut dirs = vec![top];
    let mut want = Summary {
        dirs: 1,
        files: 0,
        length: 4096,
        space: 4096,
    };
    let mut a_file = None;
    for i in 0..30u32 {
        let parent = dirs[(i as usize * 7) % dirs.len()];
        let name = format!("n{i}");
        if i % 4 == 0 {
            let (d, a) = m.mkdir(ME, parent, name.as_bytes(), 0o755).await?;
            dirs.push(d);
            want.dirs += 1;
            want.length += a.length;
            want.space += a.space();
        } else {
            let (f, _) = m.create(ME, parent, name.as_bytes(), 0o644).await?;
            let a = m
                .write(
                    ME,
                    f,
                    i % 2,
                    slice(m.new_slice_id().await?, i * 1000, 1 + i * 313),
                )
                .await?;
            a_file.get_or_insert((f, a));
            want.files += 1;
            want.length += a.length;
            want.space += a.space();
        }
    }
    m.flush().await?;
    let got = m.summary(top).await?;
    ensure!(got == want, "summary {got:?}, walk {want:?}");
    let root = m.summary(ROOT).await?;
    ensure!(
        root.dirs == want.dirs + 1 && root.files == want.files,
        "the root's summary {root:?} holds the subtree {want:?} and itself"
    );
    let (f, fa) = a_file.context("the tree has a file")?;
    ensure!(
        m.summary(f).await? == Summary::of_inode(&fa),
        "a file's summary is itself"
    );
    expect_err(m.dir_stat(f).await, NotADirectory, "dir_stat of a file")?;
    expect_err(
        m.dir_stat(MISSING).await,
        NotFound,
        "dir_stat of a missing inode",
    )?;
    expect_err(
        m.summary(MISSING).await,
        NotFound,
        "summary of a missing inode",
    )?;
    Ok(())
}

/// 16 tasks on each of two `Meta` instances create, write, rename and unlink in two shared
/// directories at once; the statistics stay exactly what the inodes add up to (no lost
/// update between concurrent batches or clients).
pub async fn concurrent_exact(ctx: &TestCtx) -> Result<()> {
    const TASKS: usize = 16;
    const ROUNDS: usize = 12;
    let m = ctx.meta();
    let other = ctx.open_meta(MetaOptions::default()).await?;
    let (a, _) = m.mkdir(ME, ROOT, b"a", 0o777).await?;
    let (z, _) = m.mkdir(ME, ROOT, b"z", 0o777).await?;
    let mut tasks = Vec::new();
    for t in 0..2 * TASKS {
        let mm = if t % 2 == 0 { m.clone() } else { other.clone() };
        tasks.push(tokio::spawn(async move {
            for r in 0..ROUNDS {
                let name = format!("t{t}r{r}");
                let (f, _) = mm.create(ME, a, name.as_bytes(), 0o644).await?;
                let id = mm.new_slice_id().await?;
                mm.write(ME, f, 0, slice(id, 0, (1 + t * 100 + r) as u32))
                    .await?;
                match r % 3 {
                    0 => mm.unlink(ME, a, name.as_bytes()).await?,
                    1 => {
                        mm.rename(
                            ME,
                            a,
                            name.as_bytes(),
                            z,
                            name.as_bytes(),
                            RenameFlags::NONE,
                        )
                        .await?;
                    }
                    _ => {}
                }
            }
            anyhow::Ok(())
        }));
    }
    for h in tasks {
        h.await??;
    }
    m.flush().await?;
    other.flush().await?;
    let want = stats_exact(&*ctx.backend(), "after the race").await?;
    let per_dir = (2 * TASKS * ROUNDS / 3) as i64;
    ensure!(
        want.get(&a).map(|s| s.inodes) == Some(per_dir)
            && want.get(&z).map(|s| s.inodes) == Some(per_dir),
        "each directory ends with {per_dir} files: {want:?}"
    );
    other.close().await?;
    Ok(())
}

/// A volume formatted without statistics keeps none: `dir_stat` and `summary` of a directory
/// are `Unsupported` (ENOTSUP), ops work, fsck does not look for them.
pub async fn off_when_formatted_without(ctx: &TestCtx) -> Result<()> {
    let mut s = Setting::new("conformance-no-dirstats");
    s.dir_stats = false;
    let vol = ctx.extra_volume(Some(&s)).await?;
    let m = vol.meta(MetaOptions::default()).await?;
    let (d, _) = m.mkdir(ME, ROOT, b"d", 0o755).await?;
    m.create(ME, d, b"f", 0o644).await?;
    expect_err(
        m.dir_stat(d).await,
        Unsupported,
        "dir_stat without statistics",
    )?;
    expect_err(
        m.summary(d).await,
        Unsupported,
        "summary without statistics",
    )?;
    let b = vol.backend();
    let got = b.dir_stats(&[d]).await?;
    ensure!(
        got == vec![DirStat::default()],
        "no record is written: {got:?}"
    );
    fsck_clean(&*b, "a volume without statistics").await?;
    m.close().await?;
    drop((m, b));
    vol.close().await?;
    Ok(())
}
