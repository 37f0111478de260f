//! # meta-conformance
//!
//! The shared conformance suite of **meta** backends. Every case is a plain
//! `pub async fn case(ctx: &TestCtx) -> anyhow::Result<()>` (see [`cases`]), listed once in
//! [`CASES`]. A backend crate gets the whole suite as one `#[test]` per case with a ten-line
//! `tests/conformance.rs`:
//!
//! ```ignore
//! //! Runs the shared conformance suite on my backend.
//! meta_conformance::conformance_tests!(my_backend::testing::MyFactory::from_env());
//! ```
//!
//! The factory ([`Factory`]) hands every test a fresh, isolated volume ([`TestVolume`]); a
//! backend whose server is not configured answers [`Fresh::Skip`], and the test then prints a
//! loud `SKIP` line and passes — unless `META_CONFORMANCE_REQUIRE=1`, which turns every skip
//! into a failure (`cargo xtask conformance` sets it).
//!
//! Test names are `group::case` (e.g. `rename::exchange`): `cargo test -- rename::` runs one
//! group, and `cargo xtask conformance` builds its backend × group matrix from the prefix.
//!
//! Beyond the single-process cases, [`process`] holds multi-process fault tests a backend crate
//! runs from its own test files: a SIGKILLed writer ([`process::crash`]) and two processes
//! racing in one directory ([`process::race`]); [`proxy`] is a fault-injecting TCP proxy for
//! a server backend's failure tests (lost connections, a server that stops answering).
//!
//! Environment:
//! - `META_CONFORMANCE_REQUIRE=1`: a skipped backend fails instead of passing.
//! - `META_CONFORMANCE_SEED=N`: seed of the model-based randomized test (default fixed).
//! - `META_CONFORMANCE_MODEL_BATCHES=N`: length of the randomized run (default 300 batches).

use std::future::Future;
use std::pin::Pin;

pub mod cases;
mod ctx;
mod factory;
pub mod process;
pub mod proxy;
pub mod util;

pub use async_trait::async_trait;
pub use ctx::{ExtraVolume, TestCtx};
pub use factory::{
    Factory, Fresh, HandleCache, MemoryFactory, MemoryVolume, RawTarget, TestVolume, kv_key,
};

/// Name of the environment variable that turns a skipped backend into a failure.
pub const REQUIRE_ENV: &str = "META_CONFORMANCE_REQUIRE";
/// Name of the environment variable that sets the seed of the randomized model test.
pub const SEED_ENV: &str = "META_CONFORMANCE_SEED";

/// The future a case returns (`Send`, so a runner may spawn it).
pub type CaseFuture<'a> = Pin<Box<dyn Future<Output = anyhow::Result<()>> + Send + 'a>>;

/// One case of the suite.
#[derive(Clone, Copy)]
pub struct Case {
    /// Its group, e.g. `"rename"` (the module in [`cases`]).
    pub group: &'static str,
    /// Its name inside the group, e.g. `"exchange"`.
    pub name: &'static str,
    /// Runs the case on a prepared context.
    pub run: for<'a> fn(&'a TestCtx) -> CaseFuture<'a>,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}::{}", self.group, self.name)
    }
}

/// The one list of cases: `group: [case, ...]`, each naming `cases::group::case`.
///
/// It feeds both [`CASES`] and [`conformance_tests!`]; add a case here and every backend runs
/// it. (Internal: `__case_list!(@mode args)` calls `__case_list_apply!` with the list.)
#[doc(hidden)]
#[macro_export]
macro_rules! __case_list {
    ($($mode:tt)*) => {
        $crate::__case_list_apply! { ($($mode)*)
            errno: [
                mknod, link, unlink, rmdir, rename, setattr, write_truncate, xattr, reads,
                sticky_bit, enospc_inodes, enospc_capacity,
            ],
            rename: [
                same_dir, across_dirs, overwrite_file, overwrite_hardlinked_file,
                overwrite_empty_dir, overwrite_nonempty_dir, type_mismatch, noreplace, exchange,
                exchange_across_dirs, cycles, same_inode_noop,
            ],
            perm: [
                namespace_matrix, rename_matrix, setattr_matrix, data_matrix,
                access_and_checks_off,
            ],
            links: [nlink_counts, parent_field, dir_nlink, dot_and_dotdot, parent_times],
            symlink: [readlink_and_length, target_limits],
            setattr: [mode_owner_ctime, times, size, setgid_inheritance],
            readdir: [pagination_10k, pagination_10k_plus, cursor_semantics],
            data: [
                write_read_order, chunk_boundaries, truncate_drops_slices, unlink_pending_file,
                rename_over_pending_file, holes,
            ],
            compaction: [replaces_list, stale_expect_conflicts, race_with_writes],
            dirstat: [
                follows_every_op, summary_matches_walk, concurrent_exact,
                off_when_formatted_without,
            ],
            quota: [
                limits_at_the_edge, limits_past_i64_max, one_batch, op_by_op, nested_moves_and_links, set_on_populated_tree,
                race_16x2, set_while_writing, unsupported_and_dump,
            ],
            xattr: [set_get_list_remove, flags, limits, deleted_with_inode],
            statfs: [counters, limits_shown, space_saturates_at_i64_max],
            batch: [
                positional_results, order_and_dependencies, failing_op_leaves_no_trace,
                partial_writes_rolled_back, empty_batch, apply_batch_chunks, batcher_routes_results,
            ],
            ids: [reserve_ranges, two_meta_unique, metaprime_off],
            concurrency: [
                churn_64_tasks, churn_64_tasks_unbatched, race_same_name_32,
                race_same_name_two_meta, race_rename_noreplace, mkdir_rmdir_nlink,
                rename_cycle_race, link_unlink_race,
            ],
            bad_input: [
                names, inode_zero, missing_inode, invalid_flags, corrupted_records,
                corrupted_setting, out_of_range_records,
            ],
            persistence: [reopen_keeps_volume, reopen_ids_keep_growing],
            dump: [
                round_trip_same_backend, across_backends, keeps_pending, load_refuses_formatted,
                load_keeps_counters_above_ids, snapshot_under_writes, sustained_becomes_pending,
            ],
            format: [contract],
            session: [
                unlink_open_file, rename_over_and_rmdir_open, two_clients_unlink_while_open,
                crashed_session_is_cleaned_up, lifecycle_and_errors, flock_matrix,
                plock_split_merge_getlk, lock_race_16x2, lock_ops_in_one_batch_see_each_other,
                open_release_churn, cleanup_lease_one_at_a_time,
            ],
            session_bulk: [
                many_released_at_once, many_held_at_close, close_beside_many_held_elsewhere,
                crashed_holding_many_is_cleaned_up, close_in_parts_fences_the_session,
            ],
            model: [randomized_vs_memory],
        }
    };
}

/// Expands the case list for one mode (internal).
#[doc(hidden)]
#[macro_export]
macro_rules! __case_list_apply {
    ((@tests) $($group:ident: [$($case:ident),* $(,)?]),* $(,)?) => {
        // Every generated test is named `conformance::GROUP::CASE`, so a run can leave the
        // suite out with `--skip conformance::` (as `cargo xtask test` does for its
        // workspace run before it runs the matrix).
        #[allow(non_snake_case, missing_docs)]
        mod conformance {
            $(
                mod $group {
                    $(
                        #[test]
                        fn $case() {
                            $crate::run_case(
                                super::super::__meta_conformance_factory,
                                stringify!($group),
                                stringify!($case),
                            );
                        }
                    )*
                }
            )*
        }
    };
    ((@consts) $($group:ident: [$($case:ident),* $(,)?]),* $(,)?) => {
        /// Every case of the suite, in list order (the same list the macro expands).
        pub const CASES: &[$crate::Case] = &[
            $($(
                $crate::Case {
                    group: stringify!($group),
                    name: stringify!($case),
                    run: |ctx| ::std::boxed::Box::pin($crate::cases::$group::$case(ctx)),
                },
            )*)*
        ];
    };
}

__case_list!(@consts);

/// Expands to one `#[test]` per case of the suite, each running the case on a fresh volume
/// from the given factory (an expression of a type implementing [`Factory`], evaluated inside
/// the test's tokio runtime once per test).
///
/// Each test builds a multi-threaded tokio runtime with 4 workers (the equivalent of
/// `#[tokio::test(flavor = "multi_thread", worker_threads = 4)]`, without requiring tokio's
/// macros in the calling crate). Tests are named `group::case`. Invoke it once per module; to
/// run the suite on two factories in one test file, put each invocation in its own `mod`.
///
/// ```ignore
/// meta_conformance::conformance_tests!(meta_conformance::MemoryFactory);
/// ```
#[macro_export]
macro_rules! conformance_tests {
    ($factory:expr $(,)?) => {
        #[allow(dead_code)]
        fn __meta_conformance_factory() -> impl $crate::Factory {
            $factory
        }
        $crate::__case_list!(@tests);
    };
}

/// Looks a case up by group and name.
pub fn find_case(group: &str, name: &str) -> Option<&'static Case> {
    CASES.iter().find(|c| c.group == group && c.name == name)
}

/// Inputs per target of the fuzz tests (proptest): `META_FUZZ_CASES`, default 10,000 (what
/// CI runs); `docs/reliability.md` gives the long-run commands.
pub fn fuzz_cases() -> u32 {
    std::env::var("META_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000)
}

/// True when `META_CONFORMANCE_REQUIRE` is set to something other than `0`/empty.
pub fn skips_are_failures() -> bool {
    std::env::var(REQUIRE_ENV)
        .map(|v| !v.is_empty() && v != "0")
        .unwrap_or(false)
}

/// What [`run_case_async`] did.
#[derive(Debug)]
pub enum Outcome {
    /// The case ran and passed.
    Passed,
    /// The backend is not configured: the factory's reason.
    Skipped(String),
}

/// Runs one case (by group and name) on a fresh volume of `factory`: creates the volume,
/// formats it, opens the context, runs the case, then closes the context and cleans the
/// volume up. A skip is reported as [`Outcome::Skipped`], whatever `META_CONFORMANCE_REQUIRE`
/// says (the caller decides).
pub async fn run_case_async(
    factory: std::sync::Arc<dyn Factory>,
    case: &Case,
) -> anyhow::Result<Outcome> {
    let ctx = match TestCtx::new(factory).await? {
        Ok(ctx) => ctx,
        Err(reason) => return Ok(Outcome::Skipped(reason)),
    };
    let result = (case.run)(&ctx).await;
    let closed = ctx.close().await;
    result?;
    closed?;
    Ok(Outcome::Passed)
}

/// The body of every test `conformance_tests!` generates: builds a 4-worker runtime, makes
/// the factory, runs the case and panics with the full error chain when it fails. A skip
/// prints a loud `SKIP` line on stderr and passes, or panics under
/// `META_CONFORMANCE_REQUIRE=1`.
pub fn run_case<F: Factory>(make_factory: impl FnOnce() -> F, group: &str, name: &str) {
    let case = match find_case(group, name) {
        Some(c) => *c,
        None => panic!("no conformance case {group}::{name}"),
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => panic!("cannot build the tokio runtime: {e}"),
    };
    let result = rt.block_on(async move {
        let factory: std::sync::Arc<dyn Factory> = std::sync::Arc::new(make_factory());
        let backend = factory.name().to_string();
        (backend, run_case_async(factory, &case).await)
    });
    rt.shutdown_timeout(std::time::Duration::from_secs(10));
    match result {
        (_, Ok(Outcome::Passed)) => {}
        (backend, Ok(Outcome::Skipped(reason))) => {
            if skips_are_failures() {
                panic!(
                    "conformance {group}::{name} on {backend}: the backend is not configured \
                     ({reason}) and {REQUIRE_ENV}=1 forbids skipping"
                );
            }
            eprintln!(
                "SKIP conformance {group}::{name} on {backend}: {reason} \
                 (set {REQUIRE_ENV}=1 to make this a failure)"
            );
        }
        (backend, Err(e)) => panic!("conformance {group}::{name} on {backend} failed: {e:#}"),
    }
}
