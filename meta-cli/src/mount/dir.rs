//! Directory listings (FUSE `readdir` / `readdirplus`) on the engine's name cursor.
//!
//! FUSE resumes a listing at an offset the filesystem handed out; the engine resumes strictly
//! after a name. Each open directory handle therefore keeps a [`DirCursor`]: every entry
//! sent gets a new offset of the handle (3, 4, ...; 1 and 2 are `.` and `..`), remembered
//! with its name, and a listing at offset `o` resumes after `o`'s name. Entries added or
//! removed meanwhile never make a listing skip or repeat the others.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use fuser::{Errno, INodeNo, ReplyDirectory, ReplyDirectoryPlus};
use meta_core::{DirEntry, Ino, Meta, Result};

use super::convert::{GEN, errno, file_attr, kind};

/// Entries per engine `readdir` call while answering one FUSE readdir.
const DIR_PAGE: usize = 256;

/// The offsets handed out by one open directory: offset → the name it follows.
#[derive(Default)]
pub(super) struct DirCursor {
    names: BTreeMap<u64, Vec<u8>>,
    next: u64,
}

impl DirCursor {
    /// A new offset (3, 4, ...) for the entry `name`.
    fn assign(&mut self, name: &[u8]) -> u64 {
        self.next = self.next.max(3);
        let o = self.next;
        self.next += 1;
        self.names.insert(o, name.to_vec());
        o
    }
}

fn lock(c: &Mutex<DirCursor>) -> MutexGuard<'_, DirCursor> {
    c.lock().unwrap_or_else(|p| p.into_inner())
}

/// Where a listing at FUSE offset `off` resumes: from the first entry (`None`) for offsets
/// up to 2, else after the name `off` was handed out for. EINVAL for an offset this handle
/// never handed out.
fn resume(cursor: &Mutex<DirCursor>, off: u64) -> std::result::Result<Option<Vec<u8>>, Errno> {
    if off <= 2 {
        return Ok(None);
    }
    match lock(cursor).names.get(&off) {
        Some(n) => Ok(Some(n.clone())),
        None => Err(Errno::EINVAL),
    }
}

/// Sends the entries of `dir` after `after`, a page of [`DIR_PAGE`] at a time, each with a
/// new offset of `cursor`, through `add(entry, offset)` until it answers "full" or the
/// directory ends. With `plus`, the pages carry attributes and an entry without them (its
/// inode is gone) is skipped.
async fn send_pages(
    meta: &Meta,
    dir: Ino,
    cursor: &Mutex<DirCursor>,
    mut after: Option<Vec<u8>>,
    plus: bool,
    mut add: impl FnMut(&DirEntry, u64) -> bool,
) -> Result<()> {
    loop {
        let page = meta.readdir(dir, after.as_deref(), DIR_PAGE, plus).await?;
        let n = page.len();
        for e in page {
            if !(plus && e.attr.is_none()) {
                let offset = lock(cursor).assign(&e.name);
                if add(&e, offset) {
                    return Ok(());
                }
            }
            after = Some(e.name);
        }
        if n < DIR_PAGE {
            return Ok(());
        }
    }
}

/// FUSE `readdir` of `dir` from `offset` on the open handle's `cursor`.
pub(super) async fn readdir(
    meta: Meta,
    dir: Ino,
    cursor: Arc<Mutex<DirCursor>>,
    offset: u64,
    mut reply: ReplyDirectory,
) {
    let mut off = offset;
    if off == 0 {
        if reply.add(INodeNo(dir.0), 1, fuser::FileType::Directory, ".") {
            reply.ok();
            return;
        }
        off = 1;
    }
    if off == 1 {
        let parent = match meta.lookup(dir, b"..").await {
            Ok((p, _)) => p,
            Err(_) => dir,
        };
        if reply.add(INodeNo(parent.0), 2, fuser::FileType::Directory, "..") {
            reply.ok();
            return;
        }
        off = 2;
    }
    let after = match resume(&cursor, off) {
        Ok(a) => a,
        Err(e) => return reply.error(e),
    };
    let sent = send_pages(&meta, dir, &cursor, after, false, |e, next| {
        reply.add(
            INodeNo(e.ino.0),
            next,
            kind(e.typ),
            OsStr::from_bytes(&e.name),
        )
    })
    .await;
    match sent {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(&e)),
    }
}

/// FUSE `readdirplus` of `dir` from `offset` on the open handle's `cursor`: entries with
/// their attributes, valid for `ttl`.
pub(super) async fn readdirplus(
    meta: Meta,
    dir: Ino,
    cursor: Arc<Mutex<DirCursor>>,
    offset: u64,
    ttl: Duration,
    mut reply: ReplyDirectoryPlus,
) {
    let mut off = offset;
    for (dot, name) in [(1u64, &b"."[..]), (2, &b".."[..])] {
        if off < dot {
            match meta.lookup(dir, name).await {
                Ok((i, a)) => {
                    let attr = file_attr(i, &a);
                    if reply.add(INodeNo(i.0), dot, OsStr::from_bytes(name), &ttl, &attr, GEN) {
                        reply.ok();
                        return;
                    }
                }
                Err(e) => return reply.error(errno(&e)),
            }
            off = dot;
        }
    }
    let after = match resume(&cursor, off) {
        Ok(a) => a,
        Err(e) => return reply.error(e),
    };
    let sent = send_pages(&meta, dir, &cursor, after, true, |e, next| {
        let Some(a) = &e.attr else { return false };
        reply.add(
            INodeNo(e.ino.0),
            next,
            OsStr::from_bytes(&e.name),
            &ttl,
            &file_attr(e.ino, a),
            GEN,
        )
    })
    .await;
    match sent {
        Ok(()) => reply.ok(),
        Err(e) => reply.error(errno(&e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_resume_after_their_name() {
        let c = Mutex::new(DirCursor::default());
        assert_eq!(resume(&c, 0), Ok(None));
        assert_eq!(resume(&c, 2), Ok(None));
        assert_eq!(resume(&c, 3), Err(Errno::EINVAL));
        let a = lock(&c).assign(b"a");
        let b = lock(&c).assign(b"b");
        assert_eq!((a, b), (3, 4));
        assert_eq!(resume(&c, 4), Ok(Some(b"b".to_vec())));
        assert_eq!(resume(&c, 5), Err(Errno::EINVAL));
    }
}
