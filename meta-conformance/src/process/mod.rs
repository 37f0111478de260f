//! Multi-process fault tests any backend crate can run: the test binary re-runs itself as
//! child processes that work on one volume, and the parent checks what is left.
//!
//! - [`crash::run`]: a child runs creates, renames and unlinks from several tasks and is
//!   SIGKILLed at a random moment, round after round on the same volume; after each kill the
//!   volume must reopen, fsck must be clean and every acknowledged op must be there (the op
//!   in flight at the kill may be there or not, whole).
//! - [`race::run`]: two children × 32 tasks race creates, writes, renames and unlinks in one
//!   directory; afterwards the directory holds exactly the names both report, the inode
//!   counter is exact, no inode or slice ID is used twice and fsck is clean.
//!
//! A backend crate calls one of them from a `#[tokio::test(flavor = "multi_thread")]`
//! function and passes that function's name: the child is the same test binary run with
//! `--exact NAME`, told by environment variables (`META_PROCESS_*`) that it is the child.
//! The volume is opened through the crate's [`BackendFactory`], from a URL, in the parent and
//! in every child.
//!
//! ```ignore
//! #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
//! async fn sigkill_keeps_acknowledged_ops() -> anyhow::Result<()> {
//!     meta_conformance::process::crash::run(meta_conformance::process::crash::CrashTest {
//!         test_name: "sigkill_keeps_acknowledged_ops",
//!         factory: my_backend::factory,
//!         url_for: |dir| format!("mydb://{}?sync=true", dir.display()),
//!         ..Default::default()
//!     })
//!     .await
//! }
//! ```

pub mod crash;
pub mod race;

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;

use anyhow::{Context, ensure};
use meta_core::registry::{BackendFactory, BackendRegistry};
use meta_core::{Backend, FileType, IdKind, Ino, MetaOptions, Op, Timespec};

/// Which child a process is (`crash` or `race`); unset in the parent.
pub const ROLE_ENV: &str = "META_PROCESS_ROLE";
/// The volume URL the child opens.
pub const URL_ENV: &str = "META_PROCESS_URL";
/// The child's argument: the op log path (crash) or the process number (race).
pub const ARG_ENV: &str = "META_PROCESS_ARG";
/// The round number (crash: makes names unique across rounds).
pub const ROUND_ENV: &str = "META_PROCESS_ROUND";

/// The role this process was started with, when it is a child.
fn child_role() -> Option<String> {
    std::env::var(ROLE_ENV).ok().filter(|r| !r.is_empty())
}

/// A required child environment variable.
fn child_env(name: &str) -> anyhow::Result<String> {
    std::env::var(name).with_context(|| format!("child process: {name} is not set"))
}

/// Opens the volume `url` through `factory` (its own connections, ID pools).
pub(crate) async fn open(
    factory: fn() -> BackendFactory,
    url: &str,
) -> anyhow::Result<(Arc<dyn Backend>, MetaOptions)> {
    let mut registry = BackendRegistry::new();
    registry.register(factory())?;
    registry
        .open(url)
        .await
        .with_context(|| format!("open {url}"))
}

/// The command that re-runs this test binary as a child running only `test_name`.
fn child_command(test_name: &str, role: &str, url: &str) -> anyhow::Result<Command> {
    let exe = std::env::current_exe().context("path of the test binary")?;
    let mut cmd = Command::new(exe);
    cmd.args(["--exact", test_name, "--nocapture", "--test-threads=1"])
        .env(ROLE_ENV, role)
        .env(URL_ENV, url);
    Ok(cmd)
}

/// Creates directories `names` under the root in one batch (mode 0755, owned by root), with
/// inode numbers reserved from the volume. Errors: the first op's error.
async fn make_dirs(b: &dyn Backend, names: &[String]) -> anyhow::Result<Vec<Ino>> {
    let ids = b.reserve_ids(IdKind::Inode, names.len() as u64).await?;
    let t = Timespec::now();
    let inos: Vec<Ino> = (0..names.len() as u64)
        .map(|k| Ino(ids.start + k))
        .collect();
    let ops: Vec<Op> = names
        .iter()
        .zip(&inos)
        .map(|(name, ino)| Op::Mknod {
            caller: meta_core::Caller::ROOT,
            parent: Ino::ROOT,
            name: name.clone().into_bytes(),
            ino: *ino,
            typ: FileType::Directory,
            mode: 0o755,
            uid: 0,
            gid: 0,
            rdev: 0,
            target: Vec::new(),
            time: t,
            opened_by: None,
            imported: None,
        })
        .collect();
    for (r, name) in b.apply(&ops).await?.into_iter().zip(names) {
        r.with_context(|| format!("mkdir {name}"))?;
    }
    Ok(inos)
}

/// Every name in directory `dir` (all regular files, UTF-8), read page by page.
async fn names_in(b: &dyn Backend, dir: Ino) -> anyhow::Result<BTreeSet<String>> {
    let mut names = BTreeSet::new();
    let mut cursor: Option<Vec<u8>> = None;
    loop {
        let page = b.read_dir(dir, cursor.as_deref(), 500, false).await?;
        let n = page.len();
        for e in page {
            ensure!(
                e.typ == FileType::Regular,
                "directory {dir} holds a {:?}",
                e.typ
            );
            names.insert(String::from_utf8(e.name.clone())?);
            cursor = Some(e.name);
        }
        if n < 500 {
            return Ok(names);
        }
    }
}

/// fsck must find nothing wrong.
async fn fsck_clean(b: &dyn Backend, when: &str) -> anyhow::Result<()> {
    let report = meta_core::fsck::fsck(b).await?;
    ensure!(
        report.is_clean(),
        "{when}: fsck found {} problem(s): {:#?}",
        report.problems.len(),
        report.problems
    );
    Ok(())
}
