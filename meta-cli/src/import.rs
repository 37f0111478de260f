//! `meta import DIR`: replicates a real directory tree's metadata through the batch API.
//!
//! Three stages run concurrently:
//! 1. a **walker** on a blocking thread reads the tree depth-first without following symlinks
//!    (`symlink_metadata`, `read_dir`, `read_link`, `llistxattr`/`lgetxattr` through the `xattr`
//!    crate) and sends one item per entry; a directory's item always precedes its contents;
//! 2. a **builder** turns items into [`Op`]s — one `Mknod` per inode (inode numbers
//!    preallocated from the pool) carrying its mode, owner, times, length and first slice
//!    ([`meta_core::Imported`]), a `Write` per further 64 MiB chunk of a long file (then a
//!    `SetAttr` putting its times back), `SetXattr`, `Link` for a second name of an inode
//!    already seen — and groups them into batches;
//! 3. an **applier** sends each batch with [`Meta::apply_batch`], in order (so a directory's
//!    `Mknod` is applied before anything inside it), and tallies the results.
//!
//! Directory attributes (mode, owner, atime/mtime, and ctime = the source's ctime) are set after
//! everything else, so creating children does not bump the replicated mtimes. Entries that
//! cannot be read are warned about, counted and listed in the summary; the import goes on.

use std::collections::HashMap;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use indicatif::ProgressBar;
use meta_core::{
    CHUNK_SIZE, Caller, ErrorKind, FileType, Imported, Ino, Meta, Op, SetAttrMask, SetAttrValues,
    Slice, Timespec, XattrFlags,
};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::util::{self, io_error_line};

/// What to import and how.
#[derive(Debug, Clone)]
pub struct ImportOpts {
    /// The directory tree to replicate (followed if it is itself a symlink).
    pub src: PathBuf,
    /// Directory of the volume that receives the contents of `src` (created if missing).
    pub to: Vec<u8>,
    /// Ops per `apply_batch` call.
    pub batch_ops: usize,
    /// Copy extended attributes.
    pub xattrs: bool,
}

/// The result of an import.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ImportSummary {
    /// The source directory.
    pub source: String,
    /// The target directory in the volume.
    pub target: String,
    /// Directories created (the target itself not included).
    pub dirs: u64,
    /// Regular files created.
    pub files: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Fifos, sockets and devices created.
    pub others: u64,
    /// Sum of the lengths of the regular files created.
    pub bytes: u64,
    /// Extra names of inodes already imported (hard links).
    pub hard_links: u64,
    /// Extended attributes copied.
    pub xattrs: u64,
    /// Entries or attributes that could not be read or recreated.
    pub errors: u64,
    /// One line per error.
    pub error_list: Vec<String>,
    /// Ops applied.
    pub ops: u64,
    /// `apply_batch` calls.
    pub batches: u64,
    /// Wall time in seconds.
    pub elapsed_secs: f64,
    /// `ops / elapsed_secs`.
    pub ops_per_sec: f64,
}

impl ImportSummary {
    fn error(&mut self, pb: &ProgressBar, msg: String) {
        util::warn(pb, &msg);
        self.errors += 1;
        self.error_list.push(msg);
    }

    /// Prints the human-readable summary.
    pub fn print(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        writeln!(
            out,
            "imported {} into {} in {:.2} s",
            self.source, self.target, self.elapsed_secs
        )?;
        writeln!(out, "  directories {:>12}", self.dirs)?;
        writeln!(
            out,
            "  files       {:>12}  ({} bytes, {})",
            self.files,
            self.bytes,
            util::human_bytes(self.bytes)
        )?;
        writeln!(out, "  symlinks    {:>12}", self.symlinks)?;
        writeln!(
            out,
            "  others      {:>12}  (fifos, sockets, devices)",
            self.others
        )?;
        writeln!(out, "  hard links  {:>12}", self.hard_links)?;
        writeln!(out, "  xattrs      {:>12}", self.xattrs)?;
        writeln!(
            out,
            "  ops         {:>12}  in {} batches, {:.0} ops/s",
            self.ops, self.batches, self.ops_per_sec
        )?;
        writeln!(out, "  errors      {:>12}", self.errors)?;
        const SHOWN: usize = 50;
        for e in self.error_list.iter().take(SHOWN) {
            writeln!(out, "    {e}")?;
        }
        if self.error_list.len() > SHOWN {
            writeln!(out, "    ... and {} more", self.error_list.len() - SHOWN)?;
        }
        Ok(())
    }
}

/// `stat` fields of a source entry.
#[derive(Debug, Clone, Copy)]
struct Stat {
    mode: u16,
    uid: u32,
    gid: u32,
    rdev: u64,
    size: u64,
    atime: Timespec,
    mtime: Timespec,
    ctime: Timespec,
    dev: u64,
    ino: u64,
    nlink: u64,
}

fn ts(sec: i64, nsec: i64) -> Timespec {
    Timespec {
        sec,
        nsec: nsec.clamp(0, 999_999_999) as u32,
    }
}

impl Stat {
    fn of(md: &std::fs::Metadata) -> Stat {
        Stat {
            mode: (md.mode() & 0o7777) as u16,
            uid: md.uid(),
            gid: md.gid(),
            rdev: md.rdev(),
            size: md.size(),
            atime: ts(md.atime(), md.atime_nsec()),
            mtime: ts(md.mtime(), md.mtime_nsec()),
            ctime: ts(md.ctime(), md.ctime_nsec()),
            dev: md.dev(),
            ino: md.ino(),
            nlink: md.nlink(),
        }
    }

    /// The `SetAttr` that gives an imported inode this entry's mode, owner and times; its
    /// `time` (which becomes the ctime) is the source's ctime.
    fn setattr(&self, ino: Ino) -> Op {
        Op::SetAttr {
            caller: Caller::ROOT,
            ino,
            mask: SetAttrMask::MODE
                | SetAttrMask::UID
                | SetAttrMask::GID
                | SetAttrMask::ATIME
                | SetAttrMask::MTIME,
            values: SetAttrValues {
                mode: self.mode,
                uid: self.uid,
                gid: self.gid,
                atime: self.atime,
                mtime: self.mtime,
                size: 0,
            },
            time: self.ctime,
        }
    }
}

/// Linux's 32-bit device number encoding (`new_encode_dev`) of a 64-bit glibc `dev_t`;
/// `None` when the major or minor number does not fit (major > 4095 or minor > 1048575).
fn encode_rdev(dev: u64) -> Option<u32> {
    let major = ((dev >> 32) & 0xffff_f000) | ((dev >> 8) & 0xfff);
    let minor = ((dev >> 12) & 0xffff_ff00) | (dev & 0xff);
    if major > 0xfff || minor > 0xf_ffff {
        return None;
    }
    u32::try_from((minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)).ok()
}

#[derive(Debug)]
enum Kind {
    /// A directory and the index the walker gave it.
    Dir(usize),
    File,
    Symlink(Vec<u8>),
    Special(FileType),
}

/// Extended attributes `(name, value)`.
type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

#[derive(Debug)]
struct Item {
    /// Walker index of the parent directory (0 = the source root).
    parent: usize,
    name: Vec<u8>,
    path: PathBuf,
    kind: Kind,
    st: Stat,
    xattrs: Xattrs,
    /// A sparse regular file's data extents (`[start, end)` byte ranges, see
    /// [`data_extents`]); `None` when the whole file is data.
    extents: Option<Vec<(u64, u64)>>,
}

/// Most data extents recorded for one sparse file; past it, the rest of the file from the
/// last extent on counts as data (a file fragmented further costs at most this many slices
/// more than necessary, never an unbounded number).
const MAX_EXTENTS: usize = 4096;

/// The data extents of a sparse regular file (fewer allocated blocks than its length), found
/// with lseek(2) `SEEK_DATA` / `SEEK_HOLE`: holes read as zeros and need no slice, so a
/// 1 PiB file with nothing written imports as its length alone. `None` when the file is not
/// sparse or cannot be opened or asked (then every chunk gets a slice, as for a dense file).
fn data_extents(path: &Path, md: &std::fs::Metadata) -> Option<Vec<(u64, u64)>> {
    use rustix::fs::{SeekFrom, seek};
    let size = md.size();
    if !md.is_file() || md.blocks().saturating_mul(512) >= size {
        return None;
    }
    let f = std::fs::File::open(path).ok()?;
    let mut out = Vec::new();
    let mut pos: u64 = 0;
    while pos < size {
        let data = match seek(&f, SeekFrom::Data(pos)) {
            Ok(d) => d,
            // ENXIO: no data at or after `pos` (the rest is a hole).
            Err(e) if e == rustix::io::Errno::NXIO => break,
            // The filesystem cannot say: count the rest as data.
            Err(_) => {
                out.push((pos, size));
                break;
            }
        };
        let end = seek(&f, SeekFrom::Hole(data)).map_or(size, |h| h.min(size));
        if end <= data {
            break;
        }
        if out.len() + 1 == MAX_EXTENTS {
            out.push((data, size));
            break;
        }
        out.push((data, end));
        pos = end;
    }
    Some(out)
}

/// The slices of chunk `c` of a file of `size` bytes: one per data extent inside it (all of
/// the chunk's bytes when `extents` is `None`), as `(pos, len)` within the chunk.
fn chunk_ranges(size: u64, c: u64, extents: Option<&[(u64, u64)]>) -> Vec<(u32, u32)> {
    let lo = c * CHUNK_SIZE;
    let hi = size.min(lo + CHUNK_SIZE);
    match extents {
        None => vec![(0, (hi - lo) as u32)],
        Some(ext) => ext
            .iter()
            .filter_map(|&(s, e)| {
                let (s, e) = (s.max(lo), e.min(hi));
                (s < e).then(|| ((s - lo) as u32, (e - s) as u32))
            })
            .collect(),
    }
}

/// The indexes of the chunks of a file of `size` bytes that hold data: every chunk when
/// `extents` is `None`, else those an extent touches (at most [`MAX_EXTENTS`] runs).
fn data_chunks(size: u64, extents: Option<&[(u64, u64)]>) -> Vec<u64> {
    match extents {
        None => (0..size.div_ceil(CHUNK_SIZE)).collect(),
        Some(ext) => {
            let mut out: Vec<u64> = Vec::new();
            for &(s, e) in ext {
                if e <= s {
                    continue;
                }
                for c in s / CHUNK_SIZE..=(e - 1) / CHUNK_SIZE {
                    if out.last() != Some(&c) {
                        out.push(c);
                    }
                }
            }
            out
        }
    }
}

#[derive(Debug)]
enum Msg {
    Item(Box<Item>),
    Warn(String),
}

fn unsupported(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::ENOTSUP)
        || e.raw_os_error() == Some(libc::EOPNOTSUPP)
        || e.kind() == std::io::ErrorKind::Unsupported
}

/// The xattrs of `path` (not following symlinks) and warnings for those that could not be read.
/// A filesystem without xattr support yields none and no warning.
fn read_xattrs(path: &Path) -> (Xattrs, Vec<String>) {
    let mut out = Vec::new();
    let mut warns = Vec::new();
    match xattr::list(path) {
        Ok(names) => {
            for name in names {
                match xattr::get(path, &name) {
                    Ok(Some(v)) => out.push((name.into_vec(), v)),
                    Ok(None) => {}
                    Err(e) if unsupported(&e) => {}
                    Err(e) => warns.push(format!(
                        "{}: cannot read xattr {:?}: {}",
                        path.display(),
                        name,
                        io_error_line(&e)
                    )),
                }
            }
        }
        Err(e) if unsupported(&e) => {}
        Err(e) => warns.push(io_warning(path, "cannot list xattrs", &e)),
    }
    (out, warns)
}

/// The warning line for an I/O failure `e` while doing `what` on `p`: `path: what: error`.
fn io_warning(p: &Path, what: &str, e: &std::io::Error) -> String {
    format!("{}: {what}: {}", p.display(), io_error_line(e))
}

/// Walks `root` depth-first; a directory's item is sent before its contents. Returns false
/// when the receiver went away.
fn walk(root: &Path, xattrs: bool, tx: &mpsc::Sender<Msg>) -> bool {
    let send = |m: Msg| tx.blocking_send(m).is_ok();
    // Reports an I/O failure as a warning; false when the receiver went away.
    let warn_io =
        |p: &Path, what: &str, e: &std::io::Error| send(Msg::Warn(io_warning(p, what, e)));
    let mut stack: Vec<(PathBuf, usize)> = vec![(root.to_path_buf(), 0)];
    let mut next_dir = 1usize;
    while let Some((dir, idx)) = stack.pop() {
        let rd = match std::fs::read_dir(&dir) {
            Ok(rd) => rd,
            Err(e) => {
                if !warn_io(&dir, "cannot read directory", &e) {
                    return false;
                }
                continue;
            }
        };
        for ent in rd {
            let ent = match ent {
                Ok(ent) => ent,
                Err(e) => {
                    if !warn_io(&dir, "cannot read directory", &e) {
                        return false;
                    }
                    break;
                }
            };
            let path = ent.path();
            let md = match std::fs::symlink_metadata(&path) {
                Ok(md) => md,
                Err(e) => {
                    if !warn_io(&path, "cannot stat", &e) {
                        return false;
                    }
                    continue;
                }
            };
            let ft = md.file_type();
            let kind = if ft.is_dir() {
                let i = next_dir;
                next_dir += 1;
                stack.push((path.clone(), i));
                Kind::Dir(i)
            } else if ft.is_file() {
                Kind::File
            } else if ft.is_symlink() {
                match std::fs::read_link(&path) {
                    Ok(t) => Kind::Symlink(t.into_os_string().into_vec()),
                    Err(e) => {
                        if !warn_io(&path, "cannot read symlink", &e) {
                            return false;
                        }
                        continue;
                    }
                }
            } else if ft.is_fifo() {
                Kind::Special(FileType::Fifo)
            } else if ft.is_char_device() {
                Kind::Special(FileType::CharDevice)
            } else if ft.is_block_device() {
                Kind::Special(FileType::BlockDevice)
            } else if ft.is_socket() {
                Kind::Special(FileType::Socket)
            } else {
                if !send(Msg::Warn(format!("{}: unknown file type", path.display()))) {
                    return false;
                }
                continue;
            };
            let (xa, warns) = if xattrs {
                read_xattrs(&path)
            } else {
                Default::default()
            };
            for w in warns {
                if !send(Msg::Warn(w)) {
                    return false;
                }
            }
            let extents = if matches!(kind, Kind::File) {
                data_extents(&path, &md)
            } else {
                None
            };
            let item = Item {
                parent: idx,
                name: ent.file_name().into_vec(),
                path,
                kind,
                st: Stat::of(&md),
                xattrs: xa,
                extents,
            };
            if !send(Msg::Item(Box::new(item))) {
                return false;
            }
        }
    }
    true
}

/// How an entry's first op counts when it succeeds.
#[derive(Debug, Clone, Copy)]
enum What {
    Dir,
    File(u64),
    Symlink,
    Other,
    /// Attributes set at the end (directories, the target).
    Attrs,
}

#[derive(Debug)]
struct Rec {
    path: PathBuf,
    what: What,
    /// A second name of an inode already imported (`Op::Link`).
    link: bool,
    first: usize,
    n: usize,
}

#[derive(Debug, Default)]
struct Batch {
    ops: Vec<Op>,
    recs: Vec<Rec>,
}

impl Batch {
    fn push(&mut self, path: PathBuf, what: What, link: bool, ops: impl IntoIterator<Item = Op>) {
        let first = self.ops.len();
        self.ops.extend(ops);
        self.recs.push(Rec {
            path,
            what,
            link,
            first,
            n: self.ops.len() - first,
        });
    }
}

/// Applies batches in order and tallies the results. Stops at an error that concerns the whole
/// backend (unavailable, indeterminate, ...).
async fn applier(
    meta: Meta,
    mut rx: mpsc::Receiver<Batch>,
    sum: Arc<Mutex<ImportSummary>>,
    pb: ProgressBar,
) -> Result<()> {
    while let Some(b) = rx.recv().await {
        let names: Vec<&'static str> = b.ops.iter().map(Op::name).collect();
        let xattr_names: Vec<Option<String>> = b
            .ops
            .iter()
            .map(|op| match op {
                Op::SetXattr { name, .. } => Some(String::from_utf8_lossy(name).into_owned()),
                _ => None,
            })
            .collect();
        let n_ops = b.ops.len() as u64;
        let results = meta.apply_batch(b.ops).await;
        let mut s = sum.lock().unwrap_or_else(|p| p.into_inner());
        s.ops += n_ops;
        s.batches += 1;
        for rec in b.recs {
            let rs = results.get(rec.first..rec.first + rec.n).unwrap_or(&[]);
            let mut failed_first = false;
            for (i, r) in rs.iter().enumerate() {
                let Err(e) = r else {
                    if names.get(rec.first + i) == Some(&"setxattr") {
                        s.xattrs += 1;
                    }
                    continue;
                };
                if e.kind().is_batch_fatal() {
                    return Err(anyhow::Error::new(e.clone())
                        .context(format!("import stopped at {}", rec.path.display())));
                }
                if i == 0 {
                    failed_first = true;
                }
                let op = names.get(rec.first + i).copied().unwrap_or("op");
                let detail = match xattr_names.get(rec.first + i) {
                    Some(Some(x)) => format!("{op} {x:?}"),
                    _ => op.to_string(),
                };
                s.error(&pb, format!("{}: {detail}: {e}", rec.path.display()));
                if i == 0 {
                    break;
                }
            }
            if failed_first {
                continue;
            }
            if rec.link {
                s.hard_links += 1;
            }
            match rec.what {
                What::Dir => s.dirs += 1,
                What::File(len) => {
                    s.files += 1;
                    s.bytes += len;
                }
                What::Symlink => s.symlinks += 1,
                What::Other => s.others += 1,
                What::Attrs => {}
            }
        }
        pb.set_message(format!(
            "{} dirs, {} files, {} symlinks, {} errors",
            s.dirs, s.files, s.symlinks, s.errors
        ));
        pb.set_position(s.dirs + s.files + s.symlinks + s.others);
    }
    Ok(())
}

/// Creates the directory `path` of the volume and its missing ancestors (`mkdir -p`).
async fn mkdir_p(meta: &Meta, path: &[u8]) -> Result<Ino> {
    let mut cur = Ino::ROOT;
    for part in path.split(|&b| b == b'/').filter(|p| !p.is_empty()) {
        cur = match meta.lookup(cur, part).await {
            Ok((ino, attr)) => {
                if attr.typ != FileType::Directory {
                    bail!(
                        "{} is not a directory in the volume (ENOTDIR)",
                        String::from_utf8_lossy(path)
                    );
                }
                ino
            }
            Err(e) if e.kind() == ErrorKind::NotFound => match meta
                .mkdir(Caller::ROOT, cur, part, 0o755)
                .await
            {
                Ok((ino, _)) => ino,
                Err(e) if e.kind() == ErrorKind::AlreadyExists => meta.lookup(cur, part).await?.0,
                Err(e) => return Err(e.into()),
            },
            Err(e) => return Err(e.into()),
        };
    }
    Ok(cur)
}

/// The ops creating one entry under `parent` as inode `ino`.
async fn entry_ops(meta: &Meta, item: &Item, parent: Ino, ino: Ino) -> Result<Vec<Op>, String> {
    let st = &item.st;
    let (typ, rdev, target) = match &item.kind {
        Kind::Dir(_) => (FileType::Directory, 0, Vec::new()),
        Kind::File => (FileType::Regular, 0, Vec::new()),
        Kind::Symlink(t) => (FileType::Symlink, 0, t.clone()),
        Kind::Special(t) => {
            let rdev = if matches!(t, FileType::CharDevice | FileType::BlockDevice) {
                encode_rdev(st.rdev).ok_or_else(|| {
                    format!("device number {:#x} does not fit in 32 bits", st.rdev)
                })?
            } else {
                0
            };
            (*t, rdev, Vec::new())
        }
    };
    // One op makes the whole inode: its recorded times and, for a regular file, its length
    // and the slice of its first chunk. Directories get their times at the end (after their
    // children, which change them); a file longer than one chunk gets a Write per further
    // chunk and then its times again (writes set mtime/ctime).
    let is_dir = typ == FileType::Directory;
    let regular = typ == FileType::Regular;
    if regular && st.size > meta_core::types::MAX_FILE_LEN {
        return Err(format!(
            "file of {} bytes is longer than the largest file a volume holds ({} bytes)",
            st.size,
            meta_core::types::MAX_FILE_LEN
        ));
    }
    let chunks = if regular {
        data_chunks(st.size, item.extents.as_deref())
    } else {
        Vec::new()
    };
    let mut slices = Vec::new();
    for c in chunks {
        let indx =
            u32::try_from(c).map_err(|_| format!("file of {} bytes is too long", st.size))?;
        for (pos, n) in chunk_ranges(st.size, c, item.extents.as_deref()) {
            let id = meta
                .new_slice_id()
                .await
                .map_err(|e| format!("slice ID: {e}"))?;
            let slice = Slice {
                pos,
                id,
                size: n,
                off: 0,
                len: n,
            };
            slices.push((indx, slice));
        }
    }
    // The first slice rides on the create only when it belongs to chunk 0.
    let first = match slices.first() {
        Some((0, _)) => Some(slices.remove(0).1),
        _ => None,
    };
    let rest = slices.into_iter();
    let imported = (!is_dir).then(|| {
        Box::new(Imported {
            atime: st.atime,
            mtime: st.mtime,
            ctime: st.ctime,
            length: if regular { st.size } else { 0 },
            slice: first,
        })
    });
    let mut ops = vec![Op::Mknod {
        caller: Caller::ROOT,
        parent,
        name: item.name.clone(),
        ino,
        typ,
        mode: st.mode,
        uid: st.uid,
        gid: st.gid,
        rdev,
        target,
        time: st.mtime,
        opened_by: None,
        imported,
    }];
    let more_chunks = rest.len() > 0;
    for (indx, slice) in rest {
        ops.push(Op::Write {
            caller: Caller::ROOT,
            ino,
            indx,
            slice,
            time: st.mtime,
        });
    }
    for (name, value) in &item.xattrs {
        ops.push(Op::SetXattr {
            caller: Caller::ROOT,
            ino,
            name: name.clone(),
            value: value.clone(),
            flags: XattrFlags::NONE,
        });
    }
    if more_chunks {
        ops.push(st.setattr(ino));
    }
    Ok(ops)
}

/// Imports `opts.src` into `meta`. Returns the summary (with the errors listed); `Err` only when
/// the import could not run at all or the backend failed as a whole.
pub async fn import(meta: &Meta, opts: &ImportOpts) -> Result<ImportSummary> {
    let started = Instant::now();
    let root_md = std::fs::metadata(&opts.src)
        .with_context(|| format!("import source {}", opts.src.display()))?;
    if !root_md.is_dir() {
        bail!(
            "import source {} is not a directory (ENOTDIR)",
            opts.src.display()
        );
    }
    let root_st = Stat::of(&root_md);
    let target = mkdir_p(meta, &opts.to)
        .await
        .with_context(|| format!("import target {}", String::from_utf8_lossy(&opts.to)))?;

    let pb = util::spinner("{spinner} {elapsed} {pos} entries ({per_sec}) {msg}");
    let sum = Arc::new(Mutex::new(ImportSummary {
        source: opts.src.display().to_string(),
        target: String::from_utf8_lossy(&opts.to).into_owned(),
        ..Default::default()
    }));
    let record_error = |msg: String| {
        sum.lock()
            .unwrap_or_else(|p| p.into_inner())
            .error(&pb, msg);
    };
    let (root_xattrs, root_warns) = if opts.xattrs {
        read_xattrs(&opts.src)
    } else {
        Default::default()
    };
    for w in root_warns {
        record_error(w);
    }

    let (item_tx, mut item_rx) = mpsc::channel::<Msg>(4096);
    let (batch_tx, batch_rx) = mpsc::channel::<Batch>(4);
    let src = opts.src.clone();
    let xattrs = opts.xattrs;
    let walker = tokio::task::spawn_blocking(move || walk(&src, xattrs, &item_tx));
    let applier = tokio::spawn(applier(meta.clone(), batch_rx, sum.clone(), pb.clone()));

    let mut dir_inos: Vec<Ino> = vec![target];
    let mut dir_final: Vec<(Ino, Stat, PathBuf)> = Vec::new();
    let mut seen: HashMap<(u64, u64), Ino> = HashMap::new();
    let mut cur = Batch::default();
    let batch_ops = opts.batch_ops.max(1);
    let mut stopped = false;
    while let Some(msg) = item_rx.recv().await {
        let item = match msg {
            Msg::Warn(w) => {
                record_error(w);
                continue;
            }
            Msg::Item(item) => item,
        };
        let Some(&parent) = dir_inos.get(item.parent) else {
            bail!("internal: directory index {} not yet seen", item.parent);
        };
        let what = match item.kind {
            Kind::Dir(_) => What::Dir,
            Kind::File => What::File(item.st.size),
            Kind::Symlink(_) => What::Symlink,
            Kind::Special(_) => What::Other,
        };
        let hard = !matches!(item.kind, Kind::Dir(_)) && item.st.nlink > 1;
        if hard && let Some(&first) = seen.get(&(item.st.dev, item.st.ino)) {
            cur.push(
                item.path,
                what,
                true,
                [Op::Link {
                    caller: Caller::ROOT,
                    ino: first,
                    parent,
                    name: item.name,
                    time: item.st.ctime,
                }],
            );
        } else {
            let ino = meta.new_ino().await?;
            if let Kind::Dir(i) = item.kind {
                if i != dir_inos.len() {
                    bail!("internal: directory index {i} out of order");
                }
                dir_inos.push(ino);
                dir_final.push((ino, item.st, item.path.clone()));
            }
            if hard {
                seen.insert((item.st.dev, item.st.ino), ino);
            }
            match entry_ops(meta, &item, parent, ino).await {
                Ok(ops) => cur.push(item.path, what, false, ops),
                Err(msg) => record_error(format!("{}: {msg}", item.path.display())),
            }
        }
        if cur.ops.len() >= batch_ops && batch_tx.send(std::mem::take(&mut cur)).await.is_err() {
            stopped = true;
            break;
        }
    }
    drop(item_rx);
    // Directory attributes last, so that creating their children did not change them.
    if !stopped {
        for (ino, st, path) in dir_final {
            cur.push(path, What::Attrs, false, [st.setattr(ino)]);
            if cur.ops.len() >= batch_ops && batch_tx.send(std::mem::take(&mut cur)).await.is_err()
            {
                stopped = true;
                break;
            }
        }
    }
    if !stopped {
        let mut ops: Vec<Op> = root_xattrs
            .into_iter()
            .map(|(name, value)| Op::SetXattr {
                caller: Caller::ROOT,
                ino: target,
                name,
                value,
                flags: XattrFlags::NONE,
            })
            .collect();
        ops.push(root_st.setattr(target));
        cur.push(opts.src.clone(), What::Attrs, false, ops);
        let _ = batch_tx.send(std::mem::take(&mut cur)).await;
    }
    drop(batch_tx);
    let applied = applier.await.context("import applier task")?;
    let _ = walker.await;
    pb.finish_and_clear();
    applied?;
    meta.flush().await?;
    let mut s = sum.lock().unwrap_or_else(|p| p.into_inner()).clone();
    s.elapsed_secs = started.elapsed().as_secs_f64();
    s.ops_per_sec = if s.elapsed_secs > 0.0 {
        s.ops as f64 / s.elapsed_secs
    } else {
        0.0
    };
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rdev_encoding_matches_the_kernel() {
        // /dev/null is 1:3, /dev/sda 8:0, /dev/nvme0n1 259:0 (all fit in the old layout).
        assert_eq!(encode_rdev(0x103), Some(0x103));
        assert_eq!(encode_rdev(0x800), Some(0x800));
        // glibc makedev(259, 0x12345): minor high bits go to bits 20+ in both encodings.
        let glibc = ((259u64 & 0xfff) << 8) | (0x12345 & 0xff) | ((0x12345u64 & !0xff) << 12);
        assert_eq!(encode_rdev(glibc), Some(glibc as u32));
        // A major above 4095 does not fit.
        let big = (0x1000u64 & !0xfff) << 32;
        assert_eq!(encode_rdev(big), None);
    }
}
