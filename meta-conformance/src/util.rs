//! Helpers shared by the cases: error expectations, raw ops with explicit times, full
//! listings, dumps, state checks.

use std::collections::BTreeMap;
use std::fmt::{Debug, Display};

use anyhow::{Context, bail, ensure};
use meta_core::fsck::fsck;
use meta_core::{
    Attr, Backend, Caller, DirEntry, ErrorKind, FileType, Ino, Meta, Op, OpOutput, Pending,
    Setting, Slice, Timespec,
};

/// An ordinary user (uid/gid 1000).
pub const ME: Caller = Caller::new(1000, 1000);
/// The root directory.
pub const ROOT: Ino = Ino::ROOT;
/// An inode number no test ever creates.
pub const MISSING: Ino = Ino(1 << 50);

/// Checks that `r` failed with `kind`; the message names `what` and what came instead.
pub fn expect_err<T: Debug>(
    r: meta_core::Result<T>,
    kind: ErrorKind,
    what: impl Display,
) -> anyhow::Result<()> {
    match r {
        Err(e) if e.kind() == kind => Ok(()),
        Err(e) => bail!(
            "{what}: expected {kind:?} ({}), got {:?} ({}): {e}",
            kind.errno_name(),
            e.kind(),
            e.kind().errno_name()
        ),
        Ok(v) => bail!(
            "{what}: expected {kind:?} ({}), but it succeeded with {v:?}",
            kind.errno_name()
        ),
    }
}

/// Unwraps an op result with a message naming `what`.
pub fn ok<T>(r: meta_core::Result<T>, what: impl Display) -> anyhow::Result<T> {
    r.with_context(|| format!("{what}: unexpected error"))
}

/// The error kind of a result (`None` for success).
pub fn kind_of<T>(r: &meta_core::Result<T>) -> Option<ErrorKind> {
    r.as_ref().err().map(|e| e.kind())
}

/// A time stamp `sec` seconds after 2030-01-01 (after any format time), with `nsec`.
pub fn t(sec: i64, nsec: u32) -> Timespec {
    Timespec {
        sec: 1_893_456_000 + sec,
        nsec,
    }
}

/// A slice of object `id` (size `len`) placed at `pos`.
pub fn slice(id: u64, pos: u32, len: u32) -> Slice {
    Slice {
        pos,
        id,
        size: len,
        off: 0,
        len,
    }
}

/// An `Op::Mknod` with explicit inode and time (mode 0o644 for files, 0o755 for dirs, owned
/// by [`ME`]).
pub fn mknod_op(parent: Ino, name: &[u8], ino: Ino, typ: FileType, time: Timespec) -> Op {
    Op::Mknod {
        caller: Caller::ROOT,
        parent,
        name: name.to_vec(),
        ino,
        typ,
        mode: if typ == FileType::Directory {
            0o755
        } else {
            0o644
        },
        uid: ME.uid,
        gid: ME.gid,
        rdev: 0,
        target: if typ == FileType::Symlink {
            b"target".to_vec()
        } else {
            Vec::new()
        },
        time,
        opened_by: None,
        imported: None,
    }
}

/// Applies ops through `backend.apply` and checks the batch itself did not fail.
pub async fn apply(
    backend: &dyn Backend,
    ops: &[Op],
) -> anyhow::Result<Vec<meta_core::Result<OpOutput>>> {
    let r = backend
        .apply(ops)
        .await
        .context("apply: the whole batch failed")?;
    ensure!(
        r.len() == ops.len(),
        "apply returned {} results for {} ops",
        r.len(),
        ops.len()
    );
    Ok(r)
}

/// Applies one op through `backend.apply`.
pub async fn apply1(backend: &dyn Backend, op: Op) -> anyhow::Result<meta_core::Result<OpOutput>> {
    Ok(apply(backend, std::slice::from_ref(&op))
        .await?
        .pop()
        .unwrap_or_else(|| Err(meta_core::Error::new(ErrorKind::Internal, "no result"))))
}

/// Every entry of `dir`, paging with `page` entries per call; checks that pages continue
/// strictly after their cursor.
pub async fn list_all(
    backend: &dyn Backend,
    dir: Ino,
    plus: bool,
    page: usize,
) -> anyhow::Result<Vec<DirEntry>> {
    let mut out: Vec<DirEntry> = Vec::new();
    loop {
        let cursor = out.last().map(|e| e.name.clone());
        let got = backend
            .read_dir(dir, cursor.as_deref(), page, plus)
            .await
            .with_context(|| format!("read_dir {dir} after {cursor:?}"))?;
        ensure!(
            got.len() <= page,
            "read_dir returned {} entries for limit {page}",
            got.len()
        );
        let n = got.len();
        out.extend(got);
        if n < page {
            return Ok(out);
        }
    }
}

/// The names of the entries of `dir`, in the order read_dir gives them.
pub async fn names(backend: &dyn Backend, dir: Ino) -> anyhow::Result<Vec<Vec<u8>>> {
    Ok(list_all(backend, dir, false, 1000)
        .await?
        .into_iter()
        .map(|e| e.name)
        .collect())
}

/// The whole volume as dump text (JSON lines, see `meta_core::dump`).
pub async fn dump_text(backend: &dyn Backend) -> anyhow::Result<String> {
    let mut out = Vec::new();
    meta_core::dump::dump(backend, &mut out, &mut |_| {})
        .await
        .context("dump")?;
    String::from_utf8(out).context("dump is not UTF-8")
}

/// Loads dump text into an empty volume.
pub async fn load_text(backend: &dyn Backend, text: &str) -> anyhow::Result<()> {
    let mut input = text.as_bytes();
    meta_core::dump::load(backend, &mut input, false, &mut |_| {})
        .await
        .context("load")?;
    Ok(())
}

/// Fails naming the first differing line when the two texts differ.
pub fn same_text(a: &str, b: &str, what: &str) -> anyhow::Result<()> {
    if a == b {
        return Ok(());
    }
    let (la, lb): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    for i in 0..la.len().max(lb.len()) {
        let x = la.get(i).copied().unwrap_or("<end>");
        let y = lb.get(i).copied().unwrap_or("<end>");
        if x != y {
            bail!(
                "{what}: line {} differs ({} vs {} lines)\n  left:  {x}\n  right: {y}",
                i + 1,
                la.len(),
                lb.len()
            );
        }
    }
    bail!("{what}: texts differ (line endings)")
}

/// Fails listing the problems when fsck does not find the volume clean.
pub async fn fsck_clean(backend: &dyn Backend, what: &str) -> anyhow::Result<()> {
    let rep = fsck(backend)
        .await
        .with_context(|| format!("fsck ({what})"))?;
    ensure!(
        rep.is_clean(),
        "fsck ({what}) found {} problem(s):\n  {}",
        rep.problems.len(),
        rep.problems.join("\n  ")
    );
    Ok(())
}

/// Every live inode with its attributes (via `scan_inodes`, in small pages so that a scan
/// spans many calls).
pub async fn all_inodes(backend: &dyn Backend) -> anyhow::Result<BTreeMap<Ino, Attr>> {
    meta_core::backend::all_inodes(backend, 50)
        .await
        .context("scan_inodes")
}

/// Checks statfs against the live inodes: `used_inodes` is their number and `used_space` the
/// sum of [`Attr::space`].
pub async fn counters_exact(backend: &dyn Backend, what: &str) -> anyhow::Result<()> {
    let inodes = all_inodes(backend).await?;
    let space: u64 = inodes.values().map(Attr::space).sum();
    let st = backend.statfs().await.context("statfs")?;
    ensure!(
        st.used_inodes == inodes.len() as u64,
        "{what}: statfs used_inodes {} but {} inodes exist",
        st.used_inodes,
        inodes.len()
    );
    ensure!(
        st.used_space == space,
        "{what}: statfs used_space {} but the inodes use {space} bytes",
        st.used_space
    );
    Ok(())
}

/// Pending-deletion records in a canonical order (the contract does not fix one).
pub async fn pending_sorted(backend: &dyn Backend) -> anyhow::Result<Vec<Pending>> {
    let mut p = backend
        .list_pending(usize::MAX)
        .await
        .context("list_pending")?;
    p.sort_by_key(|p| match *p {
        Pending::File { ino, length } => (0, ino.0, length),
        Pending::Slice { id, size } => (1, id, u64::from(size)),
    });
    Ok(p)
}

/// A fresh setting named like the context's volume, with limits.
pub fn limited_setting(capacity: u64, inodes: u64) -> Setting {
    let mut s = Setting::new("conformance-limited");
    s.capacity = capacity;
    s.inodes = inodes;
    s
}

/// Builds a varied tree through `meta` (every inode type, nested and non-UTF-8 names, hard
/// links across directories, symlinks with binary targets, xattrs with binary values, slices
/// over several chunks, setgid and sticky directories, explicit odd times, a pending file and
/// pending slices). Returns the number of inodes created.
pub async fn build_rich_tree(meta: &Meta) -> anyhow::Result<usize> {
    use meta_core::{SetAttrMask, SetAttrValues, XattrFlags};
    let mut n = 0;
    let (a, _) = meta.mkdir(ME, ROOT, b"a", 0o755).await?;
    let (b, _) = meta.mkdir(ME, a, b"b", 0o2775).await?;
    let (c, _) = meta.mkdir(ME, b, &[0xff, 0xfe, b'c'], 0o1777).await?;
    n += 3;
    let (f, _) = meta.create(ME, a, b"file.txt", 0o644).await?;
    let id1 = meta.new_slice_id().await?;
    let id2 = meta.new_slice_id().await?;
    let id3 = meta.new_slice_id().await?;
    meta.write(Caller::ROOT, f, 0, slice(id1, 0, 10_000))
        .await?;
    meta.write(Caller::ROOT, f, 0, slice(id2, 5_000, 100))
        .await?;
    meta.write(Caller::ROOT, f, 1, slice(id3, 7, 4096)).await?;
    let (g, _) = meta
        // Uid 7 may create in b (0o2775, group 1000) as a member of group 1000.
        .create(
            Caller::with_groups(7, 8, [1000]),
            b,
            "ünïcødé".as_bytes(),
            0o600,
        )
        .await?;
    meta.write(
        Caller::ROOT,
        g,
        2,
        Slice {
            pos: 1 << 20,
            id: 0,
            size: 0,
            off: 0,
            len: 300,
        },
    )
    .await?;
    meta.link(Caller::ROOT, f, c, b"hard-link").await?;
    meta.link(Caller::ROOT, f, ROOT, b"root-link").await?;
    n += 2;
    meta.symlink(ME, c, b"sym", &[b'/', 0x80, 0x81, b'x'])
        .await?;
    meta.symlink(ME, ROOT, b"sym2", b"a/file.txt").await?;
    meta.mknod(ME, b, b"fifo", FileType::Fifo, 0o600, 0).await?;
    meta.mknod(ME, b, b"chr", FileType::CharDevice, 0o600, 0x0501)
        .await?;
    meta.mknod(ME, b, b"blk", FileType::BlockDevice, 0o600, 0x0801)
        .await?;
    meta.mknod(ME, c, b"sock", FileType::Socket, 0o777, 0)
        .await?;
    n += 6;
    meta.setxattr(Caller::ROOT, f, b"user.text", b"value", XattrFlags::NONE)
        .await?;
    meta.setxattr(
        Caller::ROOT,
        f,
        &[b'u', 0xc3],
        &[0, 1, 2, 255],
        XattrFlags::CREATE,
    )
    .await?;
    meta.setxattr(Caller::ROOT, a, b"user.dir", b"", XattrFlags::NONE)
        .await?;
    meta.setattr(
        Caller::ROOT,
        g,
        SetAttrMask::ATIME | SetAttrMask::MTIME,
        SetAttrValues {
            atime: Timespec { sec: -1, nsec: 5 },
            mtime: Timespec {
                sec: 0,
                nsec: 999_999_999,
            },
            ..Default::default()
        },
    )
    .await?;
    // A pending file and pending slices.
    let (p, _) = meta.create(ME, ROOT, b"doomed", 0o644).await?;
    let id4 = meta.new_slice_id().await?;
    meta.write(Caller::ROOT, p, 0, slice(id4, 0, 123)).await?;
    meta.unlink(ME, ROOT, b"doomed").await?;
    let (q, _) = meta.create(ME, ROOT, b"shrunk", 0o644).await?;
    let id5 = meta.new_slice_id().await?;
    let id6 = meta.new_slice_id().await?;
    meta.write(Caller::ROOT, q, 0, slice(id5, 0, 1000)).await?;
    meta.write(Caller::ROOT, q, 0, slice(id6, 2000, 1000))
        .await?;
    meta.truncate(Caller::ROOT, q, 1500).await?;
    n += 1;
    // Many entries in one directory (several readdir pages in dump/fsck).
    let (many, _) = meta.mkdir(ME, ROOT, b"many", 0o755).await?;
    n += 1;
    let mut ops = Vec::new();
    for i in 0..1500u32 {
        ops.push(Op::Mknod {
            caller: Caller::ROOT,
            parent: many,
            name: format!("entry-{i:04}").into_bytes(),
            ino: meta.new_ino().await?,
            typ: if i % 7 == 0 {
                FileType::Directory
            } else {
                FileType::Regular
            },
            mode: 0o640,
            uid: i,
            gid: i / 2,
            rdev: 0,
            target: Vec::new(),
            time: t(i64::from(i), i),
            opened_by: None,
            imported: None,
        });
    }
    for r in meta.apply_batch(ops).await {
        r.context("create in many")?;
        n += 1;
    }
    Ok(n)
}
