//! Cross-client races on one volume: two `Meta` instances, each with its own backend and
//! connection pools (as two processes would have), hammer the same rows. What must hold:
//! exactly one winner per name, exact nlink and counters (no lost update on any row), no
//! rename cycle, no entry in a removed directory, fsck clean.
//!
//! SQLite runs always (two pools on one file: `BEGIN IMMEDIATE` + `busy_timeout`);
//! PostgreSQL and MySQL run when `META_TEST_POSTGRES_URL` / `META_TEST_MYSQL_URL` are set.

mod common;

use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use common::{SqlFactory, SqlVolume};
use meta_core::{
    Backend, Caller, ErrorKind, Ino, Meta, MetaOptions, Op, RenameFlags, Setting, Slice,
};
use meta_sql::SqlBackend;

const ME: Caller = Caller::new(0, 0);

/// Two clients on one fresh volume.
struct Two {
    vol: SqlVolume,
    b1: Arc<SqlBackend>,
    b2: Arc<SqlBackend>,
    m1: Meta,
    m2: Meta,
}

impl Two {
    async fn new(f: SqlFactory) -> Result<Option<Two>> {
        Two::with_options(f, MetaOptions::default()).await
    }

    async fn with_options(f: SqlFactory, opts: MetaOptions) -> Result<Option<Two>> {
        Two::with_setting(f, opts, Setting::new("race")).await
    }

    async fn with_setting(
        f: SqlFactory,
        opts: MetaOptions,
        setting: Setting,
    ) -> Result<Option<Two>> {
        if let Err(reason) = f.server_url() {
            if meta_conformance::skips_are_failures() {
                bail!("{reason} and META_CONFORMANCE_REQUIRE=1 forbids skipping");
            }
            eprintln!("SKIP race test on {}: {reason}", f.dialect.scheme());
            return Ok(None);
        }
        let vol = f.fresh("").map_err(anyhow::Error::msg)?;
        let b1 = vol.backend()?;
        Meta::format(&*b1, &setting, false).await?;
        let m1 = Meta::open(b1.clone(), opts.clone(), None).await?;
        let b2 = vol.backend()?;
        let m2 = Meta::open(b2.clone(), opts, None).await?;
        Ok(Some(Two {
            vol,
            b1,
            b2,
            m1,
            m2,
        }))
    }

    fn meta(&self, i: usize) -> Meta {
        if i.is_multiple_of(2) {
            self.m1.clone()
        } else {
            self.m2.clone()
        }
    }

    async fn fsck(&self, what: &str) -> Result<()> {
        let rep = meta_core::fsck::fsck(&*self.b1).await?;
        ensure!(rep.is_clean(), "{what}: fsck: {:?}", rep.problems);
        Ok(())
    }

    async fn close(self) -> Result<()> {
        self.m1.close().await?;
        self.m2.close().await?;
        if self.vol.dialect != meta_sql::Dialect::Sqlite {
            self.b1.drop_tables().await?;
        }
        Ok(())
    }
}

/// Every name in `dir`.
async fn names(b: &dyn Backend, dir: Ino) -> Result<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = b.read_dir(dir, after.as_deref(), 500, false).await?;
        let n = page.len();
        for e in page {
            after = Some(e.name.clone());
            out.push(e.name);
        }
        if n < 500 {
            return Ok(out);
        }
    }
}

/// The volume's inode limit holds under 2 × 16 tasks creating at once: the quota check and
/// the counter update of one batch see no other client's in between (counter rows locked),
/// so the volume ends exactly at its limit, never above.
async fn inode_limit_2x16(f: SqlFactory) -> Result<()> {
    const LIMIT: u64 = 150;
    let mut setting = Setting::new("quota");
    setting.inodes = LIMIT;
    let Some(t) = Two::with_setting(f, MetaOptions::default(), setting).await? else {
        return Ok(());
    };
    let mut tasks = Vec::new();
    for i in 0..32usize {
        let m = t.meta(i);
        tasks.push(tokio::spawn(async move {
            let mut made = 0u64;
            for j in 0..20 {
                match m
                    .create(ME, Ino::ROOT, format!("f{i}_{j}").as_bytes(), 0o644)
                    .await
                {
                    Ok(_) => made += 1,
                    Err(e) if e.kind() == ErrorKind::NoSpace => {}
                    Err(e) => return Err(e),
                }
            }
            Ok::<_, meta_core::Error>(made)
        }));
    }
    let mut made = 0;
    for h in tasks {
        made += h.await.context("task")??;
    }
    let st = t.b1.statfs().await?;
    ensure!(
        st.used_inodes == LIMIT && made == LIMIT - 1,
        "limit {LIMIT}: {made} creates succeeded, {} inodes used",
        st.used_inodes
    );
    t.fsck("inode limit").await?;
    t.close().await
}

/// The first directory quota of a volume, created while the other client's 16 tasks create
/// files below it, round after round (each round removes it again, so every `set_quota` is
/// the volume's first quota and races batches that read "no quotas", autocommitted ones on
/// PostgreSQL included): its usage equals its subtree's statistics, and once a limit is set
/// the creates stop exactly at it.
async fn first_quota_vs_creates(f: SqlFactory) -> Result<()> {
    let Some(t) = Two::new(f).await? else {
        return Ok(());
    };
    for round in 0..4 {
        let (q, _) =
            t.m1.mkdir(ME, Ino::ROOT, format!("q{round}").as_bytes(), 0o755)
                .await?;
        let (sub, _) = t.m1.mkdir(ME, q, b"sub", 0o755).await?;
        let mut tasks = Vec::new();
        for i in 0..16 {
            let m = t.m2.clone();
            tasks.push(tokio::spawn(async move {
                for n in 0.. {
                    let name = format!("f{i}_{n}");
                    match m.create(ME, sub, name.as_bytes(), 0o644).await {
                        Ok(_) => {}
                        Err(e) if e.kind() == ErrorKind::QuotaExceeded => return Ok(n),
                        Err(e) => return Err(e),
                    }
                }
                Ok(0)
            }));
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let first = t.m1.set_quota(q, 0, 0).await?;
        let (quota, sum) = t.m1.check_quota(q).await?;
        ensure!(
            quota.used.inodes >= first.used.inodes && quota.used.inodes <= sum.inodes,
            "round {round}: usage {first:?} when set, then {quota:?} with {sum:?} stored"
        );
        let limit = sum.inodes as u64 + 40;
        let set = t.m1.set_quota(q, 0, limit).await?;
        for h in tasks {
            h.await.context("task")??;
        }
        let (quota, sum) = t.m1.check_quota(q).await?;
        ensure!(
            quota.used == sum,
            "round {round}: the quota says {:?}, its subtree adds up to {sum:?}",
            quota.used
        );
        let want = limit.max(set.used.inodes as u64) as i64;
        ensure!(
            quota.used.inodes == want,
            "round {round}: {} inodes under a limit of {limit}",
            quota.used.inodes
        );
        t.m1.remove_quota(q).await?;
    }
    t.fsck("first quota vs creates").await?;
    t.close().await
}

/// An empty directory moved from one quota to another while a file is created in it, 60
/// times: the create charged the quotas above the directory as it read it, so either the
/// move waits for the create and then finds the directory not empty (EXDEV), or it commits
/// first and the create, whose directory update finds another parent, is run again and
/// charges the new quota. Both quotas' usage stays exact.
async fn move_empty_dir_vs_create(f: SqlFactory) -> Result<()> {
    let Some(t) = Two::new(f).await? else {
        return Ok(());
    };
    let (a, _) = t.m1.mkdir(ME, Ino::ROOT, b"a", 0o755).await?;
    let (b, _) = t.m1.mkdir(ME, Ino::ROOT, b"b", 0o755).await?;
    t.m1.set_quota(a, 0, 0).await?;
    t.m1.set_quota(b, 0, 0).await?;
    let mut moved = 0;
    for round in 0..60 {
        let name = format!("d{round}");
        let (d, _) = t.m1.mkdir(ME, a, name.as_bytes(), 0o755).await?;
        let (x, y) = tokio::join!(
            t.m1.create(ME, d, b"x", 0o644),
            t.m2.rename(
                ME,
                a,
                name.as_bytes(),
                b,
                name.as_bytes(),
                RenameFlags::NONE
            )
        );
        x.with_context(|| format!("round {round}: create"))?;
        match y {
            Ok(_) => moved += 1,
            Err(e) if e.kind() == ErrorKind::CrossDevice => {}
            Err(e) => bail!("round {round}: rename: {e}"),
        }
        for q in [a, b] {
            let (quota, sum) = t.m1.check_quota(q).await?;
            ensure!(
                quota.used == sum,
                "round {round}: the quota of {q} says {:?}, its subtree adds up to {sum:?}",
                quota.used
            );
        }
    }
    let retries = t.b1.stats().retries + t.b2.stats().retries;
    eprintln!(
        "{}: {moved} of 60 moved, {retries} retries",
        f.dialect.scheme()
    );
    t.fsck("moves across quotas").await?;
    t.close().await
}

/// The volume's one quota moves, in single batches that remove it and set another (so the
/// quota count never changes), round after round around `/z` (off the creates' path), `/a`
/// and `/a/b`, while the other client's 16 tasks create files in `/a/b/c`. That client
/// charges optimistically from what it remembers of the quotas: right after `/z`→`/a` it
/// remembers "no quota on my path", and only the quota set's generation (not the count)
/// tells it otherwise. After each move the creates pause and the quota in force must equal
/// its subtree's statistics exactly.
async fn quota_moves_vs_creates(f: SqlFactory) -> Result<()> {
    let Some(t) = Two::new(f).await? else {
        return Ok(());
    };
    let (z, _) = t.m1.mkdir(ME, Ino::ROOT, b"z", 0o755).await?;
    let (a, _) = t.m1.mkdir(ME, Ino::ROOT, b"a", 0o755).await?;
    let (b, _) = t.m1.mkdir(ME, a, b"b", 0o755).await?;
    let (c, _) = t.m1.mkdir(ME, b, b"c", 0o755).await?;
    t.m1.set_quota(z, 0, 0).await?;
    let pause = Arc::new(tokio::sync::RwLock::new(()));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (m, pause, stop) = (t.m2.clone(), pause.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let _running = pause.read().await;
                m.create(ME, c, format!("f{i}_{n}").as_bytes(), 0o644)
                    .await?;
                n += 1;
            }
            Ok::<_, meta_core::Error>(n)
        }));
    }
    let cycle = [z, a, b];
    let mut cur = 0;
    for round in 0..24 {
        tokio::time::sleep(std::time::Duration::from_millis(15)).await;
        let next = (cur + 1) % cycle.len();
        let subtree = meta_core::quota::subtree_dirs(&*t.b1, cycle[next]).await?;
        let ops = [
            Op::RemoveQuota { dir: cycle[cur] },
            Op::SetQuota {
                dir: cycle[next],
                max_space: 0,
                max_inodes: 0,
                subtree,
            },
        ];
        let res = t.b1.apply(&ops).await?;
        ensure!(
            res.iter().all(|r| r.is_ok()),
            "round {round}: moving the quota: {res:?}"
        );
        cur = next;
        tokio::time::sleep(std::time::Duration::from_millis(15)).await;
        let _paused = pause.write().await;
        let (quota, sum) = t.m1.check_quota(cycle[cur]).await?;
        ensure!(
            quota.used == sum,
            "round {round}: the quota of {} says {:?}, its subtree adds up to {sum:?}",
            cycle[cur],
            quota.used
        );
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut made = 0;
    for h in tasks {
        made += h.await.context("task")??;
    }
    let (r1, r2) = (t.b1.stats(), t.b2.stats());
    eprintln!(
        "{}: {made} creates, creator {} re-runs on the locked path, mover {} statements",
        f.dialect.scheme(),
        r2.reruns,
        r1.statements
    );
    ensure!(made > 0, "no create ran");
    t.fsck("quota moves vs creates").await?;
    t.close().await
}

async fn one_name(f: SqlFactory) -> Result<()> {
    let Some(t) = Two::new(f).await? else {
        return Ok(());
    };
    for round in 0..40 {
        let name = format!("n{round}");
        let (a, b) = tokio::join!(
            t.m1.create(ME, Ino::ROOT, name.as_bytes(), 0o644),
            t.m2.create(ME, Ino::ROOT, name.as_bytes(), 0o644)
        );
        match (&a, &b) {
            (Ok(_), Err(e)) | (Err(e), Ok(_)) if e.kind() == ErrorKind::AlreadyExists => {}
            _ => bail!("round {round}: expected one winner, got {a:?} and {b:?}"),
        }
    }
    ensure!(names(&*t.b1, Ino::ROOT).await?.len() == 40, "40 names");
    let st = t.b1.statfs().await?;
    ensure!(st.used_inodes == 41, "used inodes {}", st.used_inodes);
    t.fsck("one name").await?;
    t.close().await
}

async fn creates_2x32(f: SqlFactory) -> Result<()> {
    let Some(t) = Two::new(f).await? else {
        return Ok(());
    };
    let (d, _) = t.m1.mkdir(ME, Ino::ROOT, b"d", 0o755).await?;
    let mut tasks = Vec::new();
    for i in 0..64usize {
        let m = t.meta(i);
        tasks.push(tokio::spawn(async move {
            for j in 0..8 {
                m.create(ME, d, format!("f{i}_{j}").as_bytes(), 0o644)
                    .await?;
            }
            m.mkdir(ME, d, format!("d{i}").as_bytes(), 0o755).await?;
            Ok::<_, meta_core::Error>(())
        }));
    }
    for h in tasks {
        h.await.context("task")??;
    }
    let n = names(&*t.b1, d).await?.len();
    ensure!(n == 64 * 9, "{n} entries, want {}", 64 * 9);
    let a = t.b1.get_attr(d).await?;
    ensure!(a.nlink == 2 + 64, "dir nlink {}, want 66", a.nlink);
    let st = t.b1.statfs().await?;
    ensure!(
        st.used_inodes == 2 + 64 * 9,
        "used inodes {}",
        st.used_inodes
    );
    ensure!(
        st.used_space == 4096 * (2 + 64 * 9),
        "used space {}",
        st.used_space
    );
    // The directory's statistics row did not exist when the racing batches started adding
    // to it: concurrent first inserts turn into additions, none is lost.
    let ds = t.m1.dir_stat(d).await?;
    ensure!(
        ds == meta_core::DirStat {
            inodes: 64 * 9,
            length: 64 * 4096,
            space: 64 * 9 * 4096,
        },
        "dir statistics {ds:?}"
    );
    t.fsck("2 x 32 creates").await?;
    t.close().await
}

/// 2 × 16 unbatched tasks, each creating in its own directory: every transaction updates the
/// same two counter rows (and its own directory's row), so they must lock those rows in one
/// order; counts stay exact and no batch is retried. (With a plan-dependent lock order,
/// PostgreSQL deadlocked (40P01) 4–76 times per 10,000 creates in `examples/sql_bench`; this
/// smaller debug-build run did not reproduce it, so the benchmark is the evidence for that
/// fix and this test guards the counts and the retry-free path.)
async fn separate_dirs_no_deadlock(f: SqlFactory) -> Result<()> {
    let opts = {
        let mut o = MetaOptions::default();
        o.batchwrite = false;
        o
    };
    let Some(t) = Two::with_options(f, opts).await? else {
        return Ok(());
    };
    let mut dirs = Vec::new();
    for i in 0..32 {
        dirs.push(
            t.m1.mkdir(ME, Ino::ROOT, format!("d{i}").as_bytes(), 0o755)
                .await?
                .0,
        );
    }
    let (r1, r2) = (t.b1.stats().retries, t.b2.stats().retries);
    let mut tasks = Vec::new();
    for (i, d) in dirs.iter().copied().enumerate() {
        let m = t.meta(i);
        tasks.push(tokio::spawn(async move {
            for j in 0..25 {
                m.create(ME, d, format!("f{j}").as_bytes(), 0o644).await?;
            }
            Ok::<_, meta_core::Error>(())
        }));
    }
    for h in tasks {
        h.await.context("task")??;
    }
    let st = t.b1.statfs().await?;
    ensure!(
        st.used_inodes == 1 + 32 * 26,
        "used inodes {}",
        st.used_inodes
    );
    let retries = t.b1.stats().retries - r1 + t.b2.stats().retries - r2;
    if t.vol.dialect != meta_sql::Dialect::Sqlite {
        // SQLite has one writer; a busy retry there is a wait, not a lock-order bug.
        ensure!(retries == 0, "{retries} batches retried (deadlocks?)");
    }
    t.fsck("separate dirs").await?;
    t.close().await
}

async fn links_2x16(f: SqlFactory) -> Result<()> {
    let Some(t) = Two::new(f).await? else {
        return Ok(());
    };
    let (file, _) = t.m1.create(ME, Ino::ROOT, b"f", 0o644).await?;
    let (d, _) = t.m1.mkdir(ME, Ino::ROOT, b"d", 0o755).await?;
    let mut tasks = Vec::new();
    for i in 0..32usize {
        let m = t.meta(i);
        tasks.push(tokio::spawn(async move {
            m.link(Caller::ROOT, file, d, format!("l{i}").as_bytes())
                .await
                .map(drop)
        }));
    }
    for h in tasks {
        h.await.context("task")??;
    }
    let a = t.b1.get_attr(file).await?;
    ensure!(a.nlink == 33, "nlink after 32 links: {}", a.nlink);
    let mut tasks = Vec::new();
    for i in 0..32usize {
        let m = t.meta(i);
        tasks.push(tokio::spawn(async move {
            m.unlink(ME, d, format!("l{i}").as_bytes()).await
        }));
    }
    for h in tasks {
        h.await.context("task")??;
    }
    let a = t.b1.get_attr(file).await?;
    ensure!(a.nlink == 1, "nlink after unlinking them: {}", a.nlink);
    t.fsck("links").await?;
    t.close().await
}

async fn writes_2x16(f: SqlFactory) -> Result<()> {
    let Some(t) = Two::new(f).await? else {
        return Ok(());
    };
    let (file, _) = t.m1.create(ME, Ino::ROOT, b"f", 0o644).await?;
    let mut tasks = Vec::new();
    for i in 0..32u32 {
        let m = t.meta(i as usize);
        tasks.push(tokio::spawn(async move {
            let id = m.new_slice_id().await?;
            let s = Slice {
                pos: i * 10_000,
                id,
                size: 10_000,
                off: 0,
                len: 10_000,
            };
            m.write(Caller::ROOT, file, 0, s).await.map(drop)
        }));
    }
    for h in tasks {
        h.await.context("task")??;
    }
    let a = t.b1.get_attr(file).await?;
    ensure!(a.length == 320_000, "length {}", a.length);
    let slices = t.b1.read_chunk(file, 0).await?;
    ensure!(slices.len() == 32, "{} slices, want 32", slices.len());
    let st = t.b1.statfs().await?;
    ensure!(
        st.used_space == 4096 + 320_000u64.div_ceil(4096) * 4096,
        "used space {}",
        st.used_space
    );
    t.fsck("writes").await?;
    t.close().await
}

async fn rename_cycles(f: SqlFactory) -> Result<()> {
    let Some(t) = Two::new(f).await? else {
        return Ok(());
    };
    let (a, _) = t.m1.mkdir(ME, Ino::ROOT, b"a", 0o755).await?;
    let (b, _) = t.m1.mkdir(ME, Ino::ROOT, b"b", 0o755).await?;
    let (c, _) = t.m1.mkdir(ME, b, b"c", 0o755).await?;
    for round in 0..25 {
        // a -> b/c/a  and  b -> a/b, concurrently: at most one may succeed.
        let (x, y) = tokio::join!(
            t.m1.rename(ME, Ino::ROOT, b"a", c, b"a", RenameFlags::NONE),
            t.m2.rename(ME, Ino::ROOT, b"b", a, b"b", RenameFlags::NONE)
        );
        ensure!(
            !(x.is_ok() && y.is_ok()),
            "round {round}: both renames succeeded (a cycle)"
        );
        for r in [&x, &y] {
            if let Err(e) = r {
                ensure!(
                    matches!(e.kind(), ErrorKind::InvalidArgument | ErrorKind::NotFound),
                    "round {round}: {e}"
                );
            }
        }
        t.fsck(&format!("rename round {round}")).await?;
        // Put them back.
        if x.is_ok() {
            t.m1.rename(ME, c, b"a", Ino::ROOT, b"a", RenameFlags::NONE)
                .await?;
        }
        if y.is_ok() {
            t.m1.rename(ME, a, b"b", Ino::ROOT, b"b", RenameFlags::NONE)
                .await?;
        }
    }
    t.close().await
}

async fn rmdir_vs_create(f: SqlFactory) -> Result<()> {
    let Some(t) = Two::new(f).await? else {
        return Ok(());
    };
    for round in 0..25 {
        let name = format!("d{round}");
        let (d, _) = t.m1.mkdir(ME, Ino::ROOT, name.as_bytes(), 0o755).await?;
        let (x, y) = tokio::join!(
            t.m1.create(ME, d, b"x", 0o644),
            t.m2.rmdir(ME, Ino::ROOT, name.as_bytes())
        );
        match (&x, &y) {
            (Ok(_), Err(e)) if e.kind() == ErrorKind::NotEmpty => {}
            (Err(e), Ok(())) if e.kind() == ErrorKind::NotFound => {}
            _ => bail!("round {round}: create {x:?}, rmdir {y:?}"),
        }
        t.fsck(&format!("rmdir round {round}")).await?;
    }
    t.close().await
}

macro_rules! dialect_tests {
    ($($m:ident => $f:expr),* $(,)?) => {$(
        mod $m {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn one_name_two_clients() -> Result<()> { one_name($f).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn inode_limit_two_clients() -> Result<()> { inode_limit_2x16($f).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn creates_2x32_one_dir() -> Result<()> { creates_2x32($f).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn links_2x16_one_file() -> Result<()> { links_2x16($f).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn separate_dirs_lock_in_one_order() -> Result<()> {
                separate_dirs_no_deadlock($f).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn writes_2x16_one_file() -> Result<()> { writes_2x16($f).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn rename_cycles_two_clients() -> Result<()> { rename_cycles($f).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn rmdir_vs_create_two_clients() -> Result<()> { rmdir_vs_create($f).await }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn move_empty_dir_vs_create_two_clients() -> Result<()> {
                move_empty_dir_vs_create($f).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn first_quota_vs_creates_two_clients() -> Result<()> {
                first_quota_vs_creates($f).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn quota_moves_vs_creates_two_clients() -> Result<()> {
                quota_moves_vs_creates($f).await
            }
        }
    )*};
}

dialect_tests! {
    sqlite => SqlFactory::sqlite(),
    postgres => SqlFactory::postgres(),
    mysql => SqlFactory::mysql(),
}
