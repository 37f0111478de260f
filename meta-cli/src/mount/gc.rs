//! The pending-deletion loop of `meta mount`: the data layer's half of the engine's
//! `list_pending` / `clear_pending_*` contract. Deleted files and dropped slices are listed
//! by the engine; their slice files are deleted first, then the records are cleared, so a
//! crash in between only repeats a deletion (a missing file is fine).

use std::sync::Arc;
use std::time::Duration;

use meta_core::{Meta, Pending};
use tracing::{debug, warn};

use super::data::SliceStore;

/// Records handled per pass.
const PAGE: usize = 1000;

/// What one pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Collected {
    /// Deleted files whose data was removed.
    pub files: u64,
    /// Dropped slices removed.
    pub slices: u64,
}

/// One pass: removes the data of up to 1,000 pending records and clears them. Errors: the
/// engine's; a slice file that cannot be deleted is logged and its record kept for the next
/// pass.
pub async fn collect(meta: &Meta, store: &SliceStore) -> meta_core::Result<Collected> {
    let mut done = Collected::default();
    for p in meta.list_pending(PAGE).await? {
        match p {
            Pending::Slice { id, .. } => {
                if let Err(e) = store.delete(id) {
                    warn!(id, "cannot delete slice data: {e}");
                    continue;
                }
                meta.clear_pending_slice(id).await?;
                done.slices += 1;
            }
            Pending::File { ino, .. } => {
                let mut ok = true;
                for (_, slices) in meta.backend().list_chunks(ino).await? {
                    for s in slices.iter().filter(|s| s.id != 0) {
                        if let Err(e) = store.delete(s.id) {
                            warn!(ino = ino.0, id = s.id, "cannot delete slice data: {e}");
                            ok = false;
                        }
                    }
                }
                if ok {
                    meta.clear_pending_file(ino).await?;
                    done.files += 1;
                }
            }
        }
    }
    Ok(done)
}

/// Collects every `every` until the task is aborted.
pub async fn run(meta: Meta, store: Arc<SliceStore>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        loop {
            match collect(&meta, &store).await {
                Ok(c) if c.files + c.slices > 0 => {
                    debug!(files = c.files, slices = c.slices, "pending data deleted");
                    if c.files + c.slices < PAGE as u64 {
                        break;
                    }
                }
                Ok(_) => break,
                Err(e) => {
                    warn!("pending-deletion pass failed: {e}");
                    break;
                }
            }
        }
    }
}
