//! File data of `meta mount`: writes are buffered per inode and committed as slices on
//! flush, fsync, release, or when the buffer passes its limit; reads assemble chunks from
//! slices (`data.rs`).
//!
//! A buffered write is a set of non-overlapping extents (file offset → bytes; a new write
//! replaces what it covers and merges with extents it touches). Committing one extent writes
//! its bytes as one slice file per 64 MiB chunk it spans, then records each slice with
//! [`Meta::write`]. Everything that must see the file's data or length (read, getattr,
//! setattr, fsync, flush, release) commits the buffer first, so within one mount every
//! reader sees every write, and between mounts close-to-open consistency holds.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use meta_core::{CHUNK_SIZE, Caller, Error, ErrorKind, Ino, Meta, Result, Slice};

use super::compact::Trigger;
use super::data::SliceStore;

/// The buffered writes of one inode.
#[derive(Debug, Default)]
pub struct Dirty {
    /// Non-overlapping extents: file offset → bytes.
    extents: BTreeMap<u64, Vec<u8>>,
    /// Bytes held.
    bytes: usize,
    /// Slices committed since the last fsync (their files are synced by the next one).
    unsynced: Vec<u64>,
    /// The error of a commit that lost buffered writes, reported by every close(2) and
    /// fsync(2) of the inode ([`Files::flush_report`], [`Files::fsync`]) until its last
    /// release by this mount ([`Files::clear_lost`]): the writes were acknowledged when
    /// buffered, so their loss must reach the writer, as a write-back error does on Linux
    /// (fsync(2), close(2): EIO, ENOSPC, EDQUOT). The mount cannot tell which descriptor
    /// wrote (every handle is the inode's), so a reader's close may report it too.
    lost: Option<Error>,
}

impl Dirty {
    /// Adds a write of `data` at `off`: it replaces what it covers, and extents it overlaps
    /// or touches merge with it into one.
    pub fn insert(&mut self, off: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let end = off + data.len() as u64;
        let touched: Vec<u64> = self
            .extents
            .range(..=end)
            .rev()
            .take_while(|(s, v)| **s + v.len() as u64 >= off)
            .map(|(s, _)| *s)
            .collect();
        if touched.is_empty() {
            self.bytes += data.len();
            self.extents.insert(off, data.to_vec());
            return;
        }
        let start = touched.iter().copied().min().unwrap_or(off).min(off);
        let mut stop = end;
        for s in &touched {
            if let Some(v) = self.extents.get(s) {
                stop = stop.max(s + v.len() as u64);
            }
        }
        let mut buf = vec![0u8; (stop - start) as usize];
        for s in touched {
            if let Some(v) = self.extents.remove(&s) {
                self.bytes -= v.len();
                let at = (s - start) as usize;
                buf[at..at + v.len()].copy_from_slice(&v);
            }
        }
        let at = (off - start) as usize;
        buf[at..at + data.len()].copy_from_slice(data);
        self.bytes += buf.len();
        self.extents.insert(start, buf);
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.extents.is_empty()
    }

    /// Bytes buffered.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The extents, taken out.
    fn take(&mut self) -> BTreeMap<u64, Vec<u8>> {
        self.bytes = 0;
        std::mem::take(&mut self.extents)
    }
}

/// One inode's state in this mount.
pub(super) type State = Arc<tokio::sync::Mutex<Dirty>>;

/// The data side of the mount.
pub struct Files {
    meta: Meta,
    store: SliceStore,
    states: Mutex<HashMap<Ino, State>>,
    /// Buffered bytes per inode before a write commits them itself.
    limit: usize,
    /// Starts a compaction of a chunk this mount wrote many slices to.
    compaction: Trigger,
    /// Set at shutdown, before the last [`Files::flush_all`]: writes fail from then on
    /// instead of being buffered and lost.
    closing: std::sync::atomic::AtomicBool,
}

fn io_error(what: &str, e: std::io::Error) -> Error {
    Error::new(ErrorKind::Unavailable, format!("{what}: {e}")).with_source(e)
}

impl Files {
    /// The data side over `store`, buffering up to `limit` bytes per inode and compacting a
    /// chunk after every `compact_every` slices it records in it (0: never).
    pub fn new(meta: Meta, store: SliceStore, limit: usize, compact_every: usize) -> Files {
        Files {
            meta,
            store,
            states: Mutex::default(),
            limit: limit.max(4096),
            compaction: Trigger::new(compact_every),
            closing: std::sync::atomic::AtomicBool::new(false),
        }
    }

    fn state(&self, ino: Ino) -> State {
        self.states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(ino)
            .or_default()
            .clone()
    }

    fn existing(&self, ino: Ino) -> Option<State> {
        self.states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&ino)
            .cloned()
    }

    /// Drops the state of `ino` when it holds nothing (after its last release).
    pub fn forget(&self, ino: Ino) {
        let mut t = self.states.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = t.get(&ino)
            && Arc::strong_count(s) == 1
            && s.try_lock()
                .is_ok_and(|d| d.is_empty() && d.unsynced.is_empty() && d.lost.is_none())
        {
            t.remove(&ino);
        }
    }

    /// Buffers a write; commits the buffer when it passes the limit. Errors: those of the
    /// commit.
    pub async fn write(&self, ino: Ino, off: u64, data: &[u8]) -> Result<()> {
        if self.closing.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Error::new(
                ErrorKind::Unavailable,
                "the mount is shutting down: write refused (EIO)",
            ));
        }
        let state = self.state(ino);
        let mut d = state.lock().await;
        d.insert(off, data);
        if d.bytes() >= self.limit {
            self.commit(ino, &state, &mut d).await?;
        }
        Ok(())
    }

    /// Commits the buffered writes of `ino`, if any (before a read, a getattr, a
    /// truncate). Errors: this commit's; an earlier commit's is kept for
    /// [`Files::flush_report`].
    pub async fn flush(&self, ino: Ino) -> Result<()> {
        let Some(state) = self.existing(ino) else {
            return Ok(());
        };
        let mut d = state.lock().await;
        self.commit(ino, &state, &mut d).await
    }

    /// [`Files::flush`] for a close(2) (FUSE flush, release): also reports the error of an
    /// earlier commit that lost buffered writes of `ino` (see `Dirty::lost`).
    pub async fn flush_report(&self, ino: Ino) -> Result<()> {
        let Some(state) = self.existing(ino) else {
            return Ok(());
        };
        let mut d = state.lock().await;
        self.commit(ino, &state, &mut d).await?;
        d.lost.clone().map_or(Ok(()), Err)
    }

    /// Forgets the lost-write error of `ino` (its last release by this mount).
    pub async fn clear_lost(&self, ino: Ino) {
        if let Some(state) = self.existing(ino) {
            state.lock().await.lost = None;
        }
    }

    /// At shutdown: refuses every later write (EIO), then commits the buffered writes of
    /// every inode (after a lazy unmount, files may still be open with writes the kernel
    /// never flushed). Errors: the first commit's (the others are still tried).
    pub async fn flush_all(&self) -> Result<()> {
        self.closing
            .store(true, std::sync::atomic::Ordering::Release);
        let inos: Vec<Ino> = self
            .states
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .copied()
            .collect();
        let mut first = Ok(());
        for ino in inos {
            let r = self.flush(ino).await;
            if first.is_ok() {
                first = r;
            }
        }
        first
    }

    /// Commits the buffered writes of `ino`, then syncs the files of every slice committed
    /// since the last fsync.
    pub async fn fsync(&self, ino: Ino) -> Result<()> {
        let Some(state) = self.existing(ino) else {
            return Ok(());
        };
        let mut d = state.lock().await;
        self.commit(ino, &state, &mut d).await?;
        if let Some(e) = &d.lost {
            return Err(e.clone());
        }
        let ids = std::mem::take(&mut d.unsynced);
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            for id in ids {
                store.sync(id)?;
            }
            Ok::<(), std::io::Error>(())
        })
        .await
        .map_err(|e| Error::new(ErrorKind::Internal, "fsync task").with_source(e))?
        .map_err(|e| io_error("fsync of slice data", e))
    }

    /// Writes each buffered extent as slices (one per chunk it spans) and records them.
    /// `state` is the inode's state, whose lock the caller holds (a compaction this starts
    /// takes it too, so it runs after the commit). A failure drops the writes not recorded
    /// yet (retrying them could fail forever: EDQUOT, ENOSPC) and keeps its error in
    /// `d.lost` for the writer's close(2) or fsync(2).
    async fn commit(&self, ino: Ino, state: &State, d: &mut Dirty) -> Result<()> {
        if d.is_empty() {
            return Ok(());
        }
        let r = self.commit_extents(ino, state, d).await;
        if let Err(e) = &r
            && d.lost.is_none()
        {
            d.lost = Some(e.clone());
        }
        r
    }

    async fn commit_extents(&self, ino: Ino, state: &State, d: &mut Dirty) -> Result<()> {
        for (mut off, data) in d.take() {
            let mut rest: &[u8] = &data;
            while !rest.is_empty() {
                let pos = off & (CHUNK_SIZE - 1);
                let n = rest.len().min((CHUNK_SIZE - pos) as usize);
                let (piece, tail) = rest.split_at(n);
                let id = self.meta.new_slice_id().await?;
                let store = self.store.clone();
                let bytes = piece.to_vec();
                tokio::task::spawn_blocking(move || store.put(id, &bytes, false))
                    .await
                    .map_err(|e| Error::new(ErrorKind::Internal, "write task").with_source(e))?
                    .map_err(|e| io_error("write slice data", e))?;
                let slice = Slice {
                    pos: pos as u32,
                    id,
                    size: n as u32,
                    off: 0,
                    len: n as u32,
                };
                let indx = (off >> 26) as u32;
                if let Err(e) = self.meta.write(Caller::ROOT, ino, indx, slice).await {
                    // The slice was not recorded: its file must not leak. Unless the outcome
                    // is unknown: then it may be recorded, and a leaked file is better than
                    // a chunk naming a deleted one (fsck does not see the leak; the ID is
                    // never given out again).
                    if e.kind() != ErrorKind::Indeterminate {
                        let _ = self.store.delete(id);
                    }
                    return Err(e);
                }
                self.compaction
                    .recorded(&self.meta, &self.store, ino, indx, state);
                d.unsynced.push(id);
                off += n as u64;
                rest = tail;
            }
        }
        Ok(())
    }

    /// Reads `size` bytes at `off` (fewer at the end of the file), after committing the
    /// inode's buffered writes. Errors: those of the engine; a slice file that cannot be
    /// read is `Unavailable` (EIO).
    pub async fn read(&self, ino: Ino, off: u64, size: u32) -> Result<Vec<u8>> {
        self.flush(ino).await?;
        let attr = self.meta.getattr(ino).await?;
        if off >= attr.length {
            return Ok(Vec::new());
        }
        let end = attr.length.min(off.saturating_add(u64::from(size)));
        let mut out = vec![0u8; (end - off) as usize];
        let mut at = off;
        while at < end {
            let indx = (at >> 26) as u32;
            let pos = at & (CHUNK_SIZE - 1);
            let n = (end - at).min(CHUNK_SIZE - pos) as usize;
            let buf = self.read_chunk(ino, indx, pos, n).await?;
            let from = (at - off) as usize;
            out[from..from + n].copy_from_slice(&buf);
            at += n as u64;
        }
        Ok(out)
    }

    /// Reads `n` bytes of chunk `indx` at `pos`. A slice file that is gone means the list
    /// changed after it was read (a compaction or truncate, then the GC loop): the list is
    /// read again, up to 3 times.
    async fn read_chunk(&self, ino: Ino, indx: u32, pos: u64, n: usize) -> Result<Vec<u8>> {
        let mut tries = 0;
        loop {
            let slices = self.meta.read(ino, indx).await?;
            let store = self.store.clone();
            let read = tokio::task::spawn_blocking(move || {
                let mut buf = vec![0u8; n];
                store.read_chunk(&slices, pos, &mut buf).map(|()| buf)
            })
            .await
            .map_err(|e| Error::new(ErrorKind::Internal, "read task").with_source(e))?;
            match read {
                Ok(buf) => return Ok(buf),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries < 3 => tries += 1,
                Err(e) => return Err(io_error(&format!("read of inode {ino}"), e)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extents(d: &Dirty) -> Vec<(u64, Vec<u8>)> {
        d.extents.iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    #[test]
    fn writes_merge_and_later_ones_win() {
        let mut d = Dirty::default();
        d.insert(10, b"abc");
        d.insert(20, b"xyz");
        assert_eq!(d.bytes(), 6);
        d.insert(13, b"de"); // touches the first extent: merges
        assert_eq!(
            extents(&d),
            vec![(10, b"abcde".to_vec()), (20, b"xyz".to_vec())]
        );
        d.insert(12, b"QQQQQQQQQ"); // 12..21 covers the gap, overlaps both
        assert_eq!(extents(&d), vec![(10, b"abQQQQQQQQQyz".to_vec())]);
        assert_eq!(d.bytes(), 13);
        d.insert(0, b"0"); // apart
        d.insert(5, b""); // nothing
        assert_eq!(extents(&d).len(), 2);
        assert_eq!(d.take().len(), 2);
        assert!(d.is_empty() && d.bytes() == 0);
    }
}
