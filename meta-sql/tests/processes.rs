//! Separate OS processes on one SQL volume, through the shared harness
//! (`meta_conformance::process`): a SQLite writer SIGKILLed 20 times mid-workload (every
//! acknowledged op must survive, fsck clean), and two processes × 32 tasks racing in one
//! directory on SQLite, PostgreSQL and MariaDB (exact names, counters and IDs, fsck clean).
//! The server cases skip loudly without `META_TEST_POSTGRES_URL` / `META_TEST_MYSQL_URL`,
//! and fail instead under `META_CONFORMANCE_REQUIRE=1`.

mod common;

use common::SqlFactory;
use meta_conformance::process::crash::{self, CrashTest};
use meta_conformance::process::race::{self, RaceTest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_acknowledged_ops_survive_sigkill() -> anyhow::Result<()> {
    crash::run(CrashTest {
        test_name: "sqlite_acknowledged_ops_survive_sigkill",
        factory: meta_sql::factory,
        url_for: |dir| format!("sqlite://{}?sync=true", dir.join("vol.db").display()),
        ..CrashTest::default()
    })
    .await?;
    Ok(())
}

/// Races two processes on a fresh volume of `f` (skipped loudly when its server is unset).
async fn race_on(f: SqlFactory, test_name: &'static str) -> anyhow::Result<()> {
    let vol = f.fresh("");
    let url = vol.as_ref().map(|v| v.url.clone()).map_err(Clone::clone);
    race::run_or_skip(RaceTest::new(test_name, meta_sql::factory), url).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_two_processes_race_in_one_directory() -> anyhow::Result<()> {
    race_on(
        SqlFactory::sqlite(),
        "sqlite_two_processes_race_in_one_directory",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_two_processes_race_in_one_directory() -> anyhow::Result<()> {
    race_on(
        SqlFactory::postgres(),
        "postgres_two_processes_race_in_one_directory",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_two_processes_race_in_one_directory() -> anyhow::Result<()> {
    race_on(
        SqlFactory::mysql(),
        "mysql_two_processes_race_in_one_directory",
    )
    .await
}
