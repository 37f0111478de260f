//! statfs(2) numbers from the volume counters.

use meta_core::stats::DirStat;
use meta_core::types::MAX_FILE_LEN;

use super::prelude::*;

/// used_space is the sum of every inode's 4 KiB-aligned space ([`Attr::space`]: at least
/// 4 KiB per inode, regular files their length rounded up) and used_inodes the number of
/// live inodes (root included); both follow every create, write, truncate, link, unlink,
/// rmdir and rename exactly; avail = total − used; unlimited volumes show 1 PiB.
pub async fn counters(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let b = ctx.backend();
    let st = m.statfs().await?;
    ensure!(
        st.used_inodes == 1 && st.used_space == 4096,
        "fresh volume: {st:?}"
    );
    ensure!(
        st.total_space == 1 << 50,
        "unlimited capacity shows as 1 PiB, not {}",
        st.total_space
    );
    ensure!(
        st.avail_space == st.total_space - st.used_space,
        "avail_space"
    );
    ensure!(
        st.avail_inodes > 1 << 30,
        "unlimited inodes: avail {}",
        st.avail_inodes
    );
    let step = |what: &'static str, inodes: u64, space: u64| {
        let b = b.clone();
        async move {
            let st = b.statfs().await?;
            ensure!(
                st.used_inodes == inodes && st.used_space == space,
                "after {what}: used_inodes {} used_space {}, expected {inodes} {space}",
                st.used_inodes,
                st.used_space
            );
            counters_exact(&*b, what).await
        }
    };
    let (d, _) = m.mkdir(ME, ROOT, b"d", 0o755).await?;
    step("mkdir", 2, 8192).await?;
    let (f, _) = m.create(ME, d, b"f", 0o644).await?;
    step("create", 3, 12_288).await?;
    m.write(Caller::ROOT, f, 0, slice(m.new_slice_id().await?, 0, 1))
        .await?;
    step("write of 1 byte", 3, 12_288).await?;
    m.write(Caller::ROOT, f, 0, slice(m.new_slice_id().await?, 4096, 1))
        .await?;
    step("write to 4097 bytes", 3, 16_384).await?;
    m.symlink(ME, d, b"l", &[b'x'; 3000]).await?;
    step("symlink with a long target", 4, 20_480).await?;
    m.link(Caller::ROOT, f, ROOT, b"f2").await?;
    step("link", 4, 20_480).await?;
    m.unlink(ME, d, b"f").await?;
    step("unlink of one link", 4, 20_480).await?;
    m.truncate(Caller::ROOT, f, 100_000).await?;
    step("truncate up", 4, 12_288 + 102_400).await?;
    m.create(ME, ROOT, b"g", 0o644).await?;
    m.rename(ME, ROOT, b"g", ROOT, b"f2", RenameFlags::NONE)
        .await?;
    step("rename over a file", 4, 16_384).await?;
    m.unlink(ME, d, b"l").await?;
    m.rmdir(ME, ROOT, b"d").await?;
    step("unlink and rmdir", 2, 8192).await?;
    fsck_clean(&*b, "statfs").await
}

/// statfs reports the format record's limits: total_space = capacity, avail_space =
/// capacity − used, avail_inodes = inode limit − used.
pub async fn limits_shown(ctx: &TestCtx) -> Result<()> {
    let vol = ctx
        .extra_volume(Some(&limited_setting(1 << 30, 1000)))
        .await?;
    let m = vol.meta(MetaOptions::default()).await?;
    m.create(ME, ROOT, b"f", 0o644).await?;
    let st = m.statfs().await?;
    ensure!(st.total_space == 1 << 30, "total_space {}", st.total_space);
    ensure!(
        st.used_space == 8192 && st.avail_space == (1 << 30) - 8192,
        "space: {st:?}"
    );
    ensure!(
        st.used_inodes == 2 && st.avail_inodes == 998,
        "inodes: {st:?}"
    );
    drop(m);
    vol.close().await
}

/// Space that adds up past `i64::MAX`: 513 sparse files of [`MAX_FILE_LEN`] (2^54 bytes
/// each, no data) in one directory use 513 × 2^54 > 2^63 − 1 bytes. With no capacity set
/// every truncate succeeds, and the volume's usedSpace counter and the directory's
/// statistics and the usage of a quota on it (limit u64::MAX, never reached) stop at
/// `i64::MAX` (saturating, as `DirStat`'s addition does) instead of failing the op or
/// wrapping around; statfs, `dir_stat`, `summary`, the quota and fsck agree.
pub async fn space_saturates_at_i64_max(ctx: &TestCtx) -> Result<()> {
    let m = ctx.meta();
    let b = ctx.backend();
    let (d, _) = m.mkdir(ME, ROOT, b"huge", 0o755).await?;
    m.set_quota(d, u64::MAX, 0).await?;
    const FILES: i64 = 513;
    for i in 0..FILES {
        let name = format!("f{i}");
        let (f, _) = m.create(ME, d, name.as_bytes(), 0o644).await?;
        m.truncate(ME, f, MAX_FILE_LEN)
            .await
            .with_context(|| format!("truncate of {name} to {MAX_FILE_LEN} bytes"))?;
    }
    let st = m.statfs().await?;
    ensure!(
        st.used_space == i64::MAX as u64,
        "used_space {} after {FILES} files of 2^54 bytes, expected i64::MAX",
        st.used_space
    );
    let want = DirStat {
        inodes: FILES,
        length: i64::MAX,
        space: i64::MAX,
    };
    let got = m.dir_stat(d).await?;
    ensure!(got == want, "dir_stat {got:?}, expected {want:?}");
    let sum = m.summary(d).await?;
    ensure!(
        sum.files == FILES as u64 && sum.length == i64::MAX as u64 + 4096,
        "summary {sum:?}: the directory's 4096 bytes and its statistics' i64::MAX"
    );
    let (q, sum) = m.check_quota(d).await?;
    ensure!(
        q.used == want && sum == want,
        "quota usage {:?}, its subtree adds up to {sum:?}, expected {want:?}",
        q.used
    );
    fsck_clean(&*b, "space past i64::MAX").await
}
