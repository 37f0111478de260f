//! Slice compaction for `meta mount`: a chunk written many times (appends with fsync, a
//! database's pages) collects one slice per committed write, and every read of it then opens
//! every slice file. When this mount has recorded `--compact-slices` slices in one chunk,
//! a background task rewrites the chunk's visible bytes as one new slice and swaps the list
//! with [`Meta::compact_chunk`] (the recipe in its doc). The dropped slices become pending
//! deletion in the same op and the GC loop (`gc.rs`) deletes their files.
//!
//! The task holds the inode's write lock of this mount (the one a commit holds) while it
//! copies and swaps, so this mount's own writes to the file wait for it rather than make the
//! swap fail; a write through another mount makes it fail (`Conflict`), and it tries again,
//! up to [`TRIES`] times.

use std::collections::HashMap;
use std::sync::Mutex;

use meta_core::{Error, ErrorKind, Ino, Meta, Result, Slice};
use tracing::{debug, warn};

use super::data::SliceStore;
use super::files::State;

/// Attempts of one triggered compaction when the chunk changes under it.
pub const TRIES: usize = 3;

/// What one compaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compacted {
    /// The chunk has fewer slices than asked for: left alone.
    Skipped {
        /// Slices in the chunk.
        slices: usize,
    },
    /// `slices` slices were replaced by one of `bytes` bytes.
    Done {
        /// Slices before.
        slices: usize,
        /// Bytes of the new slice.
        bytes: u32,
    },
    /// The chunk changed while its data was copied (a write, a truncate or another
    /// compaction): nothing changed; the next trigger tries again.
    Changed,
}

/// Compacts chunk `indx` of `ino` when it has at least `min` slices: reads the slice list,
/// copies the bytes it describes (from the first slice's start to the last one's end; holes
/// inside become zeros) into one new slice file, synced, and swaps the list. Errors: the
/// engine's (ENOENT for a removed inode) and I/O errors (`Unavailable`); on any error and on
/// [`Compacted::Changed`] the new slice file is deleted again.
pub async fn compact_chunk(
    meta: &Meta,
    store: &SliceStore,
    ino: Ino,
    indx: u32,
    min: usize,
) -> Result<Compacted> {
    let expect = meta.read(ino, indx).await?;
    if expect.len() < min.max(2) {
        return Ok(Compacted::Skipped {
            slices: expect.len(),
        });
    }
    let start = expect.iter().map(|s| u64::from(s.pos)).min().unwrap_or(0);
    let end = expect.iter().map(Slice::end).max().unwrap_or(0);
    let len = u32::try_from(end.saturating_sub(start))
        .map_err(|_| Error::new(ErrorKind::Internal, "chunk longer than 4 GiB"))?;
    let id = meta.new_slice_id().await?;
    let copy = {
        let (store, expect) = (store.clone(), expect.clone());
        tokio::task::spawn_blocking(move || {
            let mut buf = vec![0u8; len as usize];
            store.read_chunk(&expect, start, &mut buf)?;
            store.put(id, &buf, true)
        })
        .await
        .map_err(|e| Error::new(ErrorKind::Internal, "compaction task").with_source(e))?
    };
    if let Err(e) = copy {
        let _ = store.delete(id);
        if e.kind() == std::io::ErrorKind::NotFound {
            // A slice file went (truncated away and collected) after the list was read.
            return Ok(Compacted::Changed);
        }
        return Err(Error::new(
            ErrorKind::Unavailable,
            format!("compaction of inode {ino} chunk {indx}: {e}"),
        )
        .with_source(e));
    }
    let slice = Slice {
        pos: start as u32,
        id,
        size: len,
        off: 0,
        len,
    };
    let slices = expect.len();
    match meta.compact_chunk(ino, indx, expect, vec![slice]).await {
        Ok(()) => Ok(Compacted::Done { slices, bytes: len }),
        Err(e) => {
            // Unless the outcome is unknown (the swap may have applied: the chunk would name
            // a deleted file), the copy goes.
            if e.kind() != ErrorKind::Indeterminate {
                let _ = store.delete(id);
            }
            if e.kind() == ErrorKind::Conflict {
                Ok(Compacted::Changed)
            } else {
                Err(e)
            }
        }
    }
}

/// Chunks whose counts are kept at most; past it the counts start again from zero (they
/// only decide when to look at a chunk, and a compaction reads the real slice list).
const MAX_COUNTED: usize = 65_536;

/// Counts the slices this mount records per chunk and starts a compaction in the background
/// each time a chunk's count reaches the threshold.
pub struct Trigger {
    /// Slices recorded in a chunk before it is compacted (0: never).
    every: usize,
    counts: Mutex<HashMap<(Ino, u32), usize>>,
}

impl Trigger {
    /// Compacts a chunk after every `every` slices this mount records in it (0: never).
    pub fn new(every: usize) -> Trigger {
        Trigger {
            every,
            counts: Mutex::default(),
        }
    }

    /// Notes one slice recorded in chunk `indx` of `ino`; when that makes `every`, spawns
    /// [`compact_chunk`] on the current Tokio runtime, holding `state`'s lock while it runs
    /// (its outcome is logged).
    pub fn recorded(&self, meta: &Meta, store: &SliceStore, ino: Ino, indx: u32, state: &State) {
        if self.every == 0 {
            return;
        }
        {
            let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
            if counts.len() >= MAX_COUNTED {
                counts.clear();
            }
            let n = counts.entry((ino, indx)).or_default();
            *n += 1;
            if *n < self.every {
                return;
            }
            counts.remove(&(ino, indx));
        }
        let (meta, store, min, state) = (meta.clone(), store.clone(), self.every, state.clone());
        tokio::spawn(async move {
            let _writes = state.lock().await;
            for _ in 0..TRIES {
                match compact_chunk(&meta, &store, ino, indx, min).await {
                    Ok(Compacted::Changed) => continue,
                    Ok(done) => debug!(ino = ino.0, indx, ?done, "compaction"),
                    Err(e) if e.kind() == ErrorKind::NotFound => {}
                    Err(e) => warn!(ino = ino.0, indx, "compaction failed: {e}"),
                }
                return;
            }
            debug!(
                ino = ino.0,
                indx, "compaction gave up: the chunk kept changing"
            );
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use meta_core::memory::memory_backend;
    use meta_core::{Caller, MetaOptions, Pending, Setting};

    use super::super::files::Files;
    use super::*;

    async fn volume() -> Result<(Meta, tempfile::TempDir, SliceStore)> {
        let backend = Arc::new(memory_backend());
        Meta::format(&*backend, &Setting::new("t"), false).await?;
        let meta = Meta::open(backend, MetaOptions::default(), None).await?;
        let dir =
            tempfile::tempdir().map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?;
        let store = SliceStore::open(dir.path())
            .map_err(|e| Error::new(ErrorKind::Internal, e.to_string()))?;
        Ok((meta, dir, store))
    }

    /// Overlapping writes, a hole and a chunk that does not start at 0: after compaction the
    /// chunk is one slice, reads the same bytes, and the old slices are pending deletion.
    #[tokio::test]
    async fn compaction_keeps_the_bytes_and_drops_the_slices() -> Result<()> {
        let (meta, _dir, store) = volume().await?;
        let files = Files::new(meta.clone(), store.clone(), 1 << 20, 0);
        let (ino, _) = meta
            .create(Caller::new(0, 0), Ino::ROOT, b"f", 0o644)
            .await?;
        let mut want = vec![0u8; 9000];
        for (i, off) in [100u64, 3000, 150, 8000, 120].into_iter().enumerate() {
            let data = vec![b'a' + i as u8; 700];
            files.write(ino, off, &data).await?;
            files.flush(ino).await?;
            want[off as usize..off as usize + 700].copy_from_slice(&data);
        }
        let want = &want[..8700];
        assert_eq!(meta.read(ino, 0).await?.len(), 5);
        assert_eq!(files.read(ino, 0, 20_000).await?, want);
        // Fewer slices than asked for: left alone.
        let skipped = compact_chunk(&meta, &store, ino, 0, 6).await?;
        assert_eq!(skipped, Compacted::Skipped { slices: 5 });
        let done = compact_chunk(&meta, &store, ino, 0, 5).await?;
        assert_eq!(
            done,
            Compacted::Done {
                slices: 5,
                bytes: 8600
            }
        );
        let now = meta.read(ino, 0).await?;
        assert_eq!(now.len(), 1);
        assert_eq!((now[0].pos, now[0].len), (100, 8600));
        assert_eq!(files.read(ino, 0, 20_000).await?, want);
        let pending = meta.list_pending(100).await?;
        let dropped = pending
            .iter()
            .filter(|p| matches!(p, Pending::Slice { .. }))
            .count();
        assert_eq!(dropped, 5, "{pending:?}");
        assert_eq!(meta.getattr(ino).await?.length, 8700);
        Ok(())
    }

    /// The mount's trigger: every `n`-th slice recorded in a chunk starts a compaction.
    #[tokio::test]
    async fn the_trigger_compacts_a_chunk_written_many_times() -> Result<()> {
        let (meta, _dir, store) = volume().await?;
        let files = Files::new(meta.clone(), store.clone(), 1 << 20, 8);
        let (ino, _) = meta
            .create(Caller::new(0, 0), Ino::ROOT, b"log", 0o644)
            .await?;
        let mut want = Vec::new();
        for i in 0..7u8 {
            let line = vec![b'0' + i; 100];
            files.write(ino, want.len() as u64, &line).await?;
            files.flush(ino).await?;
            want.extend_from_slice(&line);
        }
        assert_eq!(meta.read(ino, 0).await?.len(), 7, "below the threshold");
        let line = vec![b'z'; 100];
        files.write(ino, want.len() as u64, &line).await?;
        files.flush(ino).await?;
        want.extend_from_slice(&line);
        let mut slices = usize::MAX;
        for _ in 0..500 {
            slices = meta.read(ino, 0).await?.len();
            if slices == 1 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert_eq!(slices, 1, "the 8th slice starts a compaction");
        assert_eq!(files.read(ino, 0, 4096).await?, want);
        Ok(())
    }
}
