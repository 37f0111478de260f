//! Two separate OS processes × 32 tasks racing creates, writes, renames and unlinks in one
//! directory of one etcd volume, through the shared harness
//! (`meta_conformance::process::race`): the directory holds exactly the names both processes
//! report, the inode counter matches, no inode or slice ID appears twice, fsck is clean; the
//! conflict retries each process needed are printed. Skipped loudly without
//! `META_TEST_ETCD_URL`.

mod common;

use meta_conformance::process::race::{self, RaceTest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_race_in_one_directory() -> anyhow::Result<()> {
    let url = std::env::var(common::ENV)
        .ok()
        .filter(|u| !u.is_empty())
        .map(|u| common::volume_url(&u, &common::unique_prefix("race")))
        .ok_or_else(|| format!("{} is not set", common::ENV));
    let t = RaceTest::new("two_processes_race_in_one_directory", meta_etcd::factory);
    race::run_or_skip(t, url).await
}
