//! Reading a volume's tree: `ls`, `stat`, `tree`, `du`.

use std::io::Write;

use anyhow::Result;
use meta_core::{Attr, DirEntry, ErrorKind, FileType, Ino, Meta};
use serde::Serialize;

use crate::util::{self, fmt_time, fmt_time_short, join, mode_string, write_name};

/// Entries per readdir call.
const PAGE: usize = 1024;

/// Every entry of directory `ino`, in name order, with attributes when `plus`.
pub async fn read_all(meta: &Meta, ino: Ino, plus: bool) -> meta_core::Result<Vec<DirEntry>> {
    let mut all = Vec::new();
    loop {
        let cursor = all.last().map(|e: &DirEntry| e.name.clone());
        let page = meta.readdir(ino, cursor.as_deref(), PAGE, plus).await?;
        let n = page.len();
        all.extend(page);
        if n < PAGE {
            return Ok(all);
        }
    }
}

/// Resolves a path of the volume; a missing component or a non-directory on the way is
/// reported as `PATH: no such file or directory (ENOENT)` / `... (ENOTDIR)`.
async fn resolve(meta: &Meta, path: &[u8]) -> Result<(Ino, Attr)> {
    let shown = String::from_utf8_lossy(path);
    meta.resolve(path).await.map_err(|e| match e.kind() {
        ErrorKind::NotFound | ErrorKind::NotADirectory => anyhow::anyhow!("{shown}: {}", e.kind()),
        _ => anyhow::Error::new(e).context(shown.into_owned()),
    })
}

async fn attr_of(meta: &Meta, e: &DirEntry) -> Result<Attr> {
    match e.attr {
        Some(a) => Ok(a),
        None => Ok(meta.getattr(e.ino).await?),
    }
}

fn long_line(
    out: &mut dyn Write,
    meta_target: Option<&[u8]>,
    name: &[u8],
    a: &Attr,
) -> std::io::Result<()> {
    let size = match a.typ {
        FileType::CharDevice | FileType::BlockDevice => {
            format!(
                "{},{}",
                (a.rdev >> 8) & 0xfff,
                (a.rdev & 0xff) | ((a.rdev >> 12) & 0xfff00)
            )
        }
        _ => a.length.to_string(),
    };
    write!(
        out,
        "{} {:>3} {:>5} {:>5} {:>12} {} ",
        mode_string(a.typ, a.mode),
        a.nlink,
        a.uid,
        a.gid,
        size,
        fmt_time_short(a.mtime)
    )?;
    write_name(out, name)?;
    if let Some(t) = meta_target {
        out.write_all(b" -> ")?;
        write_name(out, t)?;
    }
    out.write_all(b"\n")
}

/// `ls [-l] PATH`: the entries of a directory (or the entry itself for anything else).
pub async fn ls(meta: &Meta, path: &[u8], long: bool, out: &mut dyn Write) -> Result<()> {
    let (ino, attr) = resolve(meta, path).await?;
    if attr.typ != FileType::Directory {
        let name = path
            .rsplit(|&b| b == b'/')
            .find(|p| !p.is_empty())
            .unwrap_or(path);
        if long {
            let target = if attr.typ == FileType::Symlink {
                Some(meta.readlink(ino).await?)
            } else {
                None
            };
            long_line(out, target.as_deref(), name, &attr)?;
        } else {
            write_name(out, name)?;
            out.write_all(b"\n")?;
        }
        return Ok(());
    }
    for e in read_all(meta, ino, long).await? {
        if long {
            let a = attr_of(meta, &e).await?;
            let target = if e.typ == FileType::Symlink {
                Some(meta.readlink(e.ino).await?)
            } else {
                None
            };
            long_line(out, target.as_deref(), &e.name, &a)?;
        } else {
            write_name(out, &e.name)?;
            out.write_all(b"\n")?;
        }
    }
    Ok(())
}

/// `stat PATH` in JSON.
#[derive(Debug, Serialize)]
struct StatJson {
    path: String,
    ino: Ino,
    #[serde(flatten)]
    attr: Attr,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<String>,
    xattrs: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    chunks: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    slices: Option<usize>,
}

/// `stat PATH`: every attribute of one inode, its symlink target, xattr names and chunk count.
pub async fn stat(meta: &Meta, path: &[u8], json: bool, out: &mut dyn Write) -> Result<()> {
    let (ino, a) = resolve(meta, path).await?;
    let target = if a.typ == FileType::Symlink {
        Some(meta.readlink(ino).await?)
    } else {
        None
    };
    let xattrs = meta.listxattr(ino).await?;
    let chunks = if a.typ == FileType::Regular {
        Some(meta.backend().list_chunks(ino).await?)
    } else {
        None
    };
    if json {
        let j = StatJson {
            path: String::from_utf8_lossy(path).into_owned(),
            ino,
            attr: a,
            target: target
                .as_deref()
                .map(|t| String::from_utf8_lossy(t).into_owned()),
            xattrs: xattrs
                .iter()
                .map(|x| String::from_utf8_lossy(x).into_owned())
                .collect(),
            chunks: chunks.as_ref().map(Vec::len),
            slices: chunks
                .as_ref()
                .map(|c| c.iter().map(|(_, s)| s.len()).sum()),
        };
        serde_json::to_writer_pretty(&mut *out, &j)?;
        out.write_all(b"\n")?;
        return Ok(());
    }
    out.write_all(b"  File: ")?;
    write_name(out, path)?;
    if let Some(t) = &target {
        out.write_all(b" -> ")?;
        write_name(out, t)?;
    }
    out.write_all(b"\n")?;
    writeln!(
        out,
        "  Type: {:<12} Inode: {:<10} Links: {:<6} Parent: {}",
        a.typ.name(),
        ino,
        a.nlink,
        a.parent
    )?;
    writeln!(
        out,
        "  Size: {:<12} Mode: {:04o} ({})   Uid: {}   Gid: {}   Rdev: {:#x}",
        a.length,
        a.mode,
        mode_string(a.typ, a.mode),
        a.uid,
        a.gid,
        a.rdev
    )?;
    writeln!(out, "Access: {}", fmt_time(a.atime))?;
    writeln!(out, "Modify: {}", fmt_time(a.mtime))?;
    writeln!(out, "Change: {}", fmt_time(a.ctime))?;
    if !xattrs.is_empty() {
        out.write_all(b"Xattrs:")?;
        for x in &xattrs {
            out.write_all(b" ")?;
            write_name(out, x)?;
        }
        out.write_all(b"\n")?;
    }
    if let Some(c) = &chunks {
        let slices: usize = c.iter().map(|(_, s)| s.len()).sum();
        writeln!(out, "Chunks: {} ({} slices)", c.len(), slices)?;
    }
    Ok(())
}

/// `tree PATH [--depth N]`: the tree under a directory, like tree(1).
pub async fn tree(
    meta: &Meta,
    path: &[u8],
    depth: Option<usize>,
    out: &mut dyn Write,
) -> Result<()> {
    let (ino, attr) = resolve(meta, path).await?;
    write_name(out, path)?;
    out.write_all(b"\n")?;
    let (mut dirs, mut files) = (0u64, 0u64);
    if attr.typ == FileType::Directory {
        // Stack of (entries of a directory, next index, prefix for its children).
        let mut stack: Vec<(Vec<DirEntry>, usize, Vec<u8>)> =
            vec![(read_all(meta, ino, false).await?, 0, Vec::new())];
        // The directories on the path to the current one: a directory met again there is a
        // cycle in a corrupted volume, which must not be followed.
        let mut path_dirs: Vec<Ino> = vec![ino];
        while let Some(top) = stack.last_mut() {
            let (entries, i, prefix) = top;
            let Some(e) = entries.get(*i) else {
                stack.pop();
                path_dirs.truncate(stack.len());
                continue;
            };
            *i += 1;
            let last = *i == entries.len();
            let e = e.clone();
            let prefix = prefix.clone();
            out.write_all(&prefix)?;
            out.write_all(if last {
                "└── ".as_bytes()
            } else {
                "├── ".as_bytes()
            })?;
            write_name(out, &e.name)?;
            if e.typ == FileType::Symlink {
                out.write_all(b" -> ")?;
                write_name(out, &meta.readlink(e.ino).await?)?;
            }
            out.write_all(b"\n")?;
            if e.typ == FileType::Directory {
                dirs += 1;
                if path_dirs.contains(&e.ino) {
                    let parent = path_dirs.last().copied().unwrap_or(ino);
                    return Err(meta_core::dump::second_link(parent, &e.name, e.ino).into());
                }
                if depth.is_none_or(|d| stack.len() < d) {
                    path_dirs.push(e.ino);
                    let mut p = prefix;
                    p.extend_from_slice(if last {
                        "    ".as_bytes()
                    } else {
                        "│   ".as_bytes()
                    });
                    stack.push((read_all(meta, e.ino, false).await?, 0, p));
                }
            } else {
                files += 1;
            }
        }
    }
    writeln!(
        out,
        "\n{dirs} director{}, {files} file{}",
        if dirs == 1 { "y" } else { "ies" },
        if files == 1 { "" } else { "s" }
    )?;
    Ok(())
}

/// Counts of `du`, per directory entry like find(1).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct DuCounts {
    /// Regular files (a hard-linked file counts once per entry).
    pub files: u64,
    /// Directories, the starting one included.
    pub dirs: u64,
    /// Symlinks.
    pub symlinks: u64,
    /// Fifos, sockets and devices.
    pub others: u64,
    /// Sum of regular-file lengths (once per entry).
    pub bytes: u64,
}

impl DuCounts {
    fn add(&mut self, a: &Attr) {
        match a.typ {
            FileType::Regular => {
                self.files += 1;
                self.bytes = self.bytes.saturating_add(a.length);
            }
            FileType::Directory => self.dirs += 1,
            FileType::Symlink => self.symlinks += 1,
            _ => self.others += 1,
        }
    }
}

/// Walks the tree under `path` and counts entries by type like find(1) does.
pub async fn du_counts(meta: &Meta, path: &[u8]) -> Result<DuCounts> {
    let (ino, attr) = resolve(meta, path).await?;
    let mut c = DuCounts::default();
    c.add(&attr);
    if attr.typ != FileType::Directory {
        return Ok(c);
    }
    let mut stack = vec![ino];
    // Every directory is walked once: one reached again is a corrupted volume (a cycle or a
    // second link to a directory), reported rather than followed.
    let mut seen = std::collections::HashSet::from([ino]);
    while let Some(dir) = stack.pop() {
        let mut cursor: Option<Vec<u8>> = None;
        loop {
            let page = match meta.readdir(dir, cursor.as_deref(), PAGE, true).await {
                Ok(p) => p,
                // A directory removed while we walk: nothing to count.
                Err(e) if e.kind() == ErrorKind::NotFound => break,
                Err(e) => return Err(e.into()),
            };
            let n = page.len();
            for e in page {
                let a = match attr_of(meta, &e).await {
                    Ok(a) => a,
                    Err(err) => {
                        return Err(err.context(format!(
                            "{}",
                            String::from_utf8_lossy(&join(path, &e.name))
                        )));
                    }
                };
                c.add(&a);
                if a.typ == FileType::Directory {
                    if !seen.insert(e.ino) {
                        return Err(meta_core::dump::second_link(dir, &e.name, e.ino).into());
                    }
                    stack.push(e.ino);
                }
                cursor = Some(e.name);
            }
            if n < PAGE {
                break;
            }
        }
    }
    Ok(c)
}

/// `du [--walk] [--json] PATH`: the subtree's summary from the directory statistics
/// ([`Meta::summary`]: no file's attributes are read), or with `--walk` (or on a volume
/// formatted without statistics) a find(1)-like walk counting entries by type.
pub async fn du(
    meta: &Meta,
    path: &[u8],
    walk: bool,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    if !walk && meta.setting().dir_stats {
        let (ino, _) = resolve(meta, path).await?;
        let s = meta.summary(ino).await?;
        if json {
            serde_json::to_writer(&mut *out, &s)?;
            out.write_all(b"\n")?;
        } else {
            writeln!(out, "dirs      {:>12}", s.dirs)?;
            writeln!(
                out,
                "files     {:>12}  (every inode that is not a directory)",
                s.files
            )?;
            writeln!(
                out,
                "length    {:>12}  ({})",
                s.length,
                util::human_bytes(s.length)
            )?;
            writeln!(
                out,
                "space     {:>12}  ({})",
                s.space,
                util::human_bytes(s.space)
            )?;
        }
        return Ok(());
    }
    if !walk {
        tracing::warn!(
            "the volume keeps no directory statistics (formatted without them): walking the tree"
        );
    }
    let c = du_counts(meta, path).await?;
    if json {
        serde_json::to_writer(&mut *out, &c)?;
        out.write_all(b"\n")?;
    } else {
        writeln!(out, "files     {:>12}", c.files)?;
        writeln!(out, "dirs      {:>12}", c.dirs)?;
        writeln!(out, "symlinks  {:>12}", c.symlinks)?;
        writeln!(out, "others    {:>12}", c.others)?;
        writeln!(
            out,
            "bytes     {:>12}  ({})",
            c.bytes,
            util::human_bytes(c.bytes)
        )?;
    }
    Ok(())
}
