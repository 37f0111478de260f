//! Two separate OS processes × 32 tasks racing creates, writes, renames and unlinks in one
//! directory of one Redis volume (standalone and Cluster), through the shared harness
//! (`meta_conformance::process::race`): exact names, counters and IDs, fsck clean. Skipped
//! loudly without `META_TEST_REDIS_URL` / `META_TEST_REDIS_CLUSTER_URL`.

mod common;

use meta_conformance::process::race::{self, RaceTest};

/// A fresh volume URL on the server `env` names.
fn fresh(env: &str) -> Result<String, String> {
    match std::env::var(env) {
        Ok(url) if !url.is_empty() => Ok(common::with_prefix(&url, &common::unique_prefix("race"))),
        _ => Err(format!("{env} is not set")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_race_in_one_directory() -> anyhow::Result<()> {
    let t = RaceTest::new("two_processes_race_in_one_directory", meta_redis::factory);
    race::run_or_skip(t, fresh(common::STANDALONE_ENV)).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_two_processes_race_in_one_directory() -> anyhow::Result<()> {
    let t = RaceTest::new(
        "cluster_two_processes_race_in_one_directory",
        meta_redis::factory,
    );
    race::run_or_skip(t, fresh(common::CLUSTER_ENV)).await
}
