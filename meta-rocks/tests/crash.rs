//! Process crash on RocksDB (`sync=true`): the shared harness
//! (`meta_conformance::process::crash`) SIGKILLs a child running creates, renames and unlinks
//! from 4 tasks, 20 times on one volume; after each kill fsck must be clean and every
//! acknowledged op present. While the child runs, the parent opening the volume itself must
//! get the "in use by another process" error (RocksDB's LOCK file), never a second writer.

use meta_conformance::process::crash::{self, CrashTest};
use meta_core::ErrorKind;
use meta_rocks::{RocksOptions, open_path};

const TEST: &str = "acknowledged_ops_survive_sigkill";

/// A second opener of a volume the child holds is refused with a clear error.
fn second_opener_is_refused(dir: &std::path::Path) -> anyhow::Result<()> {
    match open_path(&dir.join("vol"), RocksOptions::default()) {
        Ok(_) => anyhow::bail!("opened a volume another process holds"),
        Err(e) => {
            anyhow::ensure!(e.kind() == ErrorKind::Unavailable, "{e}");
            anyhow::ensure!(e.to_string().contains("in use by another process"), "{e}");
            Ok(())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_ops_survive_sigkill() -> anyhow::Result<()> {
    crash::run(CrashTest {
        test_name: TEST,
        factory: meta_rocks::factory,
        url_for: |dir| format!("rocksdb://{}?sync=true", dir.join("vol").display()),
        while_running: Some(second_opener_is_refused),
        ..CrashTest::default()
    })
    .await?;
    Ok(())
}
