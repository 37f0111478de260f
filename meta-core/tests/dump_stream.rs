//! The streaming dump (`meta_core::dump`): same records as a walk that first collects every
//! link (the dump before it streamed), parents before children, deterministic; and a dump is
//! a state that existed when read from a snapshot, which a live read is not.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use meta_core::dump::{Bytes, InodeRecord};
use meta_core::memory::memory_backend;
use meta_core::snapshot::{InodeData, LiveReads, VolumeReads, read_inodes_one_by_one};
use meta_core::{
    Backend, Caller, Counter, DirEntry, FileType, Ino, Meta, MetaOptions, Pending, RenameFlags,
    Session, SessionHoldings, Setting, Sid, Slice, XattrFlags,
};

const ME: Caller = Caller::new(0, 0);

async fn volume() -> Meta {
    let b: Arc<dyn Backend> = Arc::new(memory_backend());
    Meta::format(&*b, &Setting::new("dump"), false)
        .await
        .expect("format");
    Meta::open(b, MetaOptions::default(), None)
        .await
        .expect("open")
}

fn slice(id: u64, len: u32) -> Slice {
    Slice {
        id,
        size: len,
        off: 0,
        len,
        pos: 0,
    }
}

async fn dump_of(reads: &dyn VolumeReads) -> String {
    let mut out = Vec::new();
    meta_core::dump::dump_from(reads, &mut out, &mut |_| {})
        .await
        .expect("dump");
    String::from_utf8(out).expect("UTF-8")
}

/// The inode records the dump wrote before it streamed: every link collected by a
/// breadth-first walk first, then each inode read by point reads.
async fn reference_records(b: &dyn Backend) -> Vec<String> {
    let mut links: BTreeMap<Ino, Vec<(Ino, Vec<u8>)>> = BTreeMap::new();
    let mut dirs = vec![Ino::ROOT];
    let mut i = 0;
    while i < dirs.len() {
        let dir = dirs[i];
        i += 1;
        let mut cursor: Option<Vec<u8>> = None;
        loop {
            let page = b
                .read_dir(dir, cursor.as_deref(), 7, false)
                .await
                .expect("readdir");
            let n = page.len();
            for e in page {
                if e.typ == FileType::Directory {
                    dirs.push(e.ino);
                }
                links.entry(e.ino).or_default().push((dir, e.name.clone()));
                cursor = Some(e.name);
            }
            if n < 7 {
                break;
            }
        }
    }
    links.insert(Ino::ROOT, Vec::new());
    let mut out = Vec::new();
    for (ino, l) in links {
        let d = read_inodes_one_by_one(b, &[ino])
            .await
            .expect("read")
            .pop()
            .flatten()
            .expect("inode");
        let rec = InodeRecord {
            ino,
            attr: d.attr,
            links: l.into_iter().map(|(p, n)| (p, Bytes::from(n))).collect(),
            target: d.target.map(Bytes::from),
            xattrs: d
                .xattrs
                .into_iter()
                .map(|(n, v)| (Bytes::from(n), Bytes::from(v)))
                .collect(),
            chunks: d.chunks,
        };
        out.push(serde_json::to_string(&rec).expect("encode"));
    }
    out.sort();
    out
}

/// A tree with more than a page (1,000 entries) in one directory, hard links within one
/// directory, across directories and across pages, symlinks, xattrs, data, a pending file.
async fn tree(m: &Meta) {
    let (big, _) = m.mkdir(ME, Ino::ROOT, b"big", 0o755).await.expect("mkdir");
    let (other, _) = m
        .mkdir(ME, Ino::ROOT, b"other", 0o755)
        .await
        .expect("mkdir");
    let (sub, _) = m.mkdir(ME, big, b"zz-sub", 0o755).await.expect("mkdir");
    let mut first = None;
    for i in 0..1203 {
        let (f, _) = m
            .create(ME, big, format!("f{i:05}").as_bytes(), 0o644)
            .await
            .expect("create");
        if i % 100 == 0 {
            let id = m.new_slice_id().await.expect("id");
            m.write(Caller::ROOT, f, 0, slice(id, 10))
                .await
                .expect("write");
        }
        first.get_or_insert(f);
    }
    let f = first.expect("a file");
    // Links: same directory (both pages), another directory, a subdirectory.
    m.link(Caller::ROOT, f, big, b"a-link").await.expect("link");
    m.link(Caller::ROOT, f, big, b"zzz-link")
        .await
        .expect("link");
    m.link(Caller::ROOT, f, other, b"x").await.expect("link");
    m.link(Caller::ROOT, f, sub, b"deep").await.expect("link");
    let (g, _) = m.create(ME, other, b"g", 0o644).await.expect("create");
    m.link(Caller::ROOT, g, other, b"g2").await.expect("link");
    m.symlink(ME, other, b"s", b"../big/f00001")
        .await
        .expect("symlink");
    m.setxattr(Caller::ROOT, g, b"user.k", b"v", XattrFlags::NONE)
        .await
        .expect("setxattr");
    m.setxattr(Caller::ROOT, g, b"user.b", &[0xff], XattrFlags::NONE)
        .await
        .expect("setxattr");
    let (gone, _) = m.create(ME, other, b"gone", 0o644).await.expect("create");
    let id = m.new_slice_id().await.expect("id");
    m.write(Caller::ROOT, gone, 0, slice(id, 5))
        .await
        .expect("write");
    m.unlink(ME, other, b"gone").await.expect("unlink");
}

#[tokio::test]
async fn streaming_dump_has_the_records_of_the_collecting_walk() {
    let m = volume().await;
    tree(&m).await;
    let b = m.backend().clone();
    let text = dump_of(&LiveReads(&*b)).await;
    let mut lines = text.lines();
    let _header = lines.next().expect("header");
    let mut records = Vec::new();
    let mut written: HashSet<Ino> = HashSet::new();
    let mut pending = 0;
    for l in lines {
        if l.contains("\"pending\"") {
            pending += 1;
            continue;
        }
        let rec: InodeRecord = serde_json::from_str(l).expect("record");
        for (parent, _) in &rec.links {
            assert!(
                written.contains(parent),
                "inode {} before its parent {parent}",
                rec.ino
            );
        }
        assert!(written.insert(rec.ino), "inode {} written twice", rec.ino);
        records.push(l.to_string());
    }
    assert_eq!(pending, 1);
    records.sort();
    assert_eq!(records, reference_records(&*b).await);
    // Deterministic, and the same through the snapshot.
    assert_eq!(text, dump_of(&LiveReads(&*b)).await);
    let snap = b
        .snapshot()
        .await
        .expect("snapshot")
        .expect("memory has one");
    assert_eq!(text, dump_of(&*snap).await);
    // And it loads back to the same text.
    let target = memory_backend();
    meta_core::dump::load(&target, &mut text.as_bytes(), false, &mut |_| {})
        .await
        .expect("load");
    assert_eq!(text, dump_of(&LiveReads(&target)).await);
}

/// Writes a [`Hooked`] runs.
type HookFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

/// Reads that run `hook` once, just before the first page of directory `at` is read.
struct Hooked<'a> {
    inner: &'a dyn VolumeReads,
    at: Ino,
    hook: tokio::sync::Mutex<Option<HookFuture>>,
    fired: AtomicBool,
}

#[async_trait::async_trait]
impl VolumeReads for Hooked<'_> {
    fn is_snapshot(&self) -> bool {
        self.inner.is_snapshot()
    }
    async fn load(&self) -> meta_core::Result<Setting> {
        self.inner.load().await
    }
    async fn get_counter(&self, counter: Counter) -> meta_core::Result<i64> {
        self.inner.get_counter(counter).await
    }
    async fn read_dir(
        &self,
        ino: Ino,
        after: Option<&[u8]>,
        limit: usize,
    ) -> meta_core::Result<Vec<DirEntry>> {
        if ino == self.at && after.is_none() {
            let hook = self.hook.lock().await.take();
            if let Some(hook) = hook {
                hook.await;
                self.fired.store(true, Ordering::SeqCst);
            }
        }
        self.inner.read_dir(ino, after, limit).await
    }
    async fn read_inodes(&self, inos: &[Ino]) -> meta_core::Result<Vec<Option<InodeData>>> {
        self.inner.read_inodes(inos).await
    }
    async fn list_chunks(&self, ino: Ino) -> meta_core::Result<Vec<(u32, Vec<Slice>)>> {
        self.inner.list_chunks(ino).await
    }
    async fn list_pending(&self, limit: usize) -> meta_core::Result<Vec<Pending>> {
        self.inner.list_pending(limit).await
    }
    async fn list_sessions(&self) -> meta_core::Result<Vec<Session>> {
        self.inner.list_sessions().await
    }
    async fn session_holdings(&self, sid: Sid) -> meta_core::Result<SessionHoldings> {
        self.inner.session_holdings(sid).await
    }
    async fn quotas(&self) -> meta_core::Result<Vec<(Ino, meta_core::Quota)>> {
        self.inner.quotas().await
    }
}

/// `/a/moved` and `/z/f0..f2`; returns the volume, `/a` and `/z`.
async fn small_tree() -> (Meta, Ino, Ino) {
    let m = volume().await;
    let (a, _) = m.mkdir(ME, Ino::ROOT, b"a", 0o755).await.expect("mkdir");
    let (z, _) = m.mkdir(ME, Ino::ROOT, b"z", 0o755).await.expect("mkdir");
    m.create(ME, a, b"moved", 0o644).await.expect("create");
    for i in 0..3 {
        m.create(ME, z, format!("f{i}").as_bytes(), 0o644)
            .await
            .expect("create");
    }
    (m, a, z)
}

/// After `/a` was walked and before `/z` is: move `/a/moved` to `/z/moved-here`, create
/// `/z/new`, remove `/z/f0`.
fn writes(m: &Meta, a: Ino, z: Ino) -> HookFuture {
    let m = m.clone();
    Box::pin(async move {
        m.rename(ME, a, b"moved", z, b"moved-here", RenameFlags::default())
            .await
            .expect("rename");
        m.create(ME, z, b"new", 0o644).await.expect("create");
        m.unlink(ME, z, b"f0").await.expect("unlink");
    })
}

#[tokio::test]
async fn dump_from_a_snapshot_is_the_state_before_concurrent_writes() {
    let (m, a, z) = small_tree().await;
    let b = m.backend().clone();
    let before = dump_of(&LiveReads(&*b)).await;
    let snap = b
        .snapshot()
        .await
        .expect("snapshot")
        .expect("memory has one");
    let hooked = Hooked {
        inner: &*snap,
        at: z,
        hook: tokio::sync::Mutex::new(Some(writes(&m, a, z))),
        fired: AtomicBool::new(false),
    };
    let text = dump_of(&hooked).await;
    assert!(hooked.fired.load(Ordering::SeqCst));
    assert_eq!(text, before);
    assert_ne!(
        dump_of(&LiveReads(&*b)).await,
        before,
        "the writes happened"
    );
}

/// The control: the same writes during a dump of the live volume give a state that never
/// existed (the moved file twice), which is what the snapshot prevents.
#[tokio::test]
async fn dump_of_the_live_volume_under_writes_is_no_state_that_existed() {
    let (m, a, z) = small_tree().await;
    let b = m.backend().clone();
    let before = dump_of(&LiveReads(&*b)).await;
    let live = LiveReads(&*b);
    let hooked = Hooked {
        inner: &live,
        at: z,
        hook: tokio::sync::Mutex::new(Some(writes(&m, a, z))),
        fired: AtomicBool::new(false),
    };
    let text = dump_of(&hooked).await;
    assert!(hooked.fired.load(Ordering::SeqCst));
    let after = dump_of(&LiveReads(&*b)).await;
    assert_ne!(text, before);
    assert_ne!(text, after);
    let stats = meta_core::dump::dump(&*b, &mut Vec::new(), &mut |_| {})
        .await
        .expect("dump");
    assert!(stats.snapshot, "the memory backend dumps from a snapshot");
}
