//! The data layer of `meta mount`: every slice is one file under the data directory, named by
//! its slice ID (`DIR/slices/{id % 1000:03}/{id}`), written once and never changed; a chunk's
//! bytes are assembled from its slices, later slices shadowing earlier ones, holes reading as
//! zeros. Deleting a slice's file is the job of the pending-deletion loop (`gc.rs`).

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use meta_core::Slice;

/// Slice files under one directory.
#[derive(Debug, Clone)]
pub struct SliceStore {
    root: PathBuf,
}

impl SliceStore {
    /// The store under `dir` (created if missing). Errors: I/O errors creating it.
    pub fn open(dir: &Path) -> io::Result<SliceStore> {
        let root = dir.join("slices");
        std::fs::create_dir_all(&root)?;
        Ok(SliceStore { root })
    }

    /// The file of slice `id`.
    pub fn path(&self, id: u64) -> PathBuf {
        self.root
            .join(format!("{:03}", id % 1000))
            .join(id.to_string())
    }

    /// Stores `data` as slice `id` (a new file); with `sync`, on stable storage before it
    /// returns. Errors: I/O errors (the caller turns them into EIO).
    pub fn put(&self, id: u64, data: &[u8], sync: bool) -> io::Result<()> {
        let path = self.path(id);
        let mut f = match File::create(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)?;
                }
                File::create(&path)?
            }
            Err(e) => return Err(e),
        };
        f.write_all(data)?;
        if sync {
            f.sync_all()?;
        }
        Ok(())
    }

    /// Flushes slice `id` to stable storage (fsync(2) of a file that wrote it). A slice that
    /// is gone meanwhile (truncated away and collected) is not an error.
    pub fn sync(&self, id: u64) -> io::Result<()> {
        match File::open(self.path(id)) {
            Ok(f) => f.sync_all(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes slice `id`'s file; a missing file is fine (deleted before a crash).
    pub fn delete(&self, id: u64) -> io::Result<()> {
        match std::fs::remove_file(self.path(id)) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Reads `buf.len()` bytes of one chunk starting at `pos` (bytes within the chunk) from
    /// `slices` (in write order): zeros first, then each slice's overlap copied over, so
    /// later slices shadow earlier ones and a hole (slice ID 0) reads as zeros. Errors: I/O
    /// errors; a slice file that is missing or shorter than the slice says is `UnexpectedEof`
    /// naming the slice.
    pub fn read_chunk(&self, slices: &[Slice], pos: u64, buf: &mut [u8]) -> io::Result<()> {
        buf.fill(0);
        let end = pos + buf.len() as u64;
        for s in slices {
            let (a, b) = (pos.max(u64::from(s.pos)), end.min(s.end()));
            if a >= b {
                continue;
            }
            let dst = &mut buf[(a - pos) as usize..(b - pos) as usize];
            if s.id == 0 {
                dst.fill(0);
                continue;
            }
            let at = u64::from(s.off) + (a - u64::from(s.pos));
            let f = File::open(self.path(s.id)).map_err(|e| {
                io::Error::new(e.kind(), format!("slice {} of the chunk: {e}", s.id))
            })?;
            f.read_exact_at(dst, at).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("slice {} ({} bytes wanted at {at}): {e}", s.id, dst.len()),
                )
            })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(id: u64, pos: u32, off: u32, len: u32, size: u32) -> Slice {
        Slice {
            pos,
            id,
            size,
            off,
            len,
        }
    }

    #[test]
    fn later_slices_shadow_and_holes_read_zero() -> io::Result<()> {
        let dir = tempfile::tempdir()?;
        let s = SliceStore::open(dir.path())?;
        s.put(1, b"aaaaaaaaaa", false)?;
        s.put(2, b"xBBBy", false)?;
        let slices = vec![
            slice(1, 0, 0, 10, 10),
            slice(2, 3, 1, 3, 5), // "BBB" at 3..6
            slice(0, 8, 0, 1, 0), // a hole at 8
        ];
        let mut buf = vec![0xff; 12];
        s.read_chunk(&slices, 0, &mut buf)?;
        assert_eq!(&buf, b"aaaBBBaa\0a\0\0");
        let mut part = vec![0xff; 4];
        s.read_chunk(&slices, 4, &mut part)?;
        assert_eq!(&part, b"BBaa");
        s.delete(2)?;
        s.delete(2)?;
        let e = s
            .read_chunk(&slices, 0, &mut buf)
            .expect_err("slice 2 is gone");
        assert!(e.to_string().contains("slice 2"), "{e}");
        Ok(())
    }
}
