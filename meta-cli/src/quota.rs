//! `meta quota set|get|ls|check|delete`: directory quotas ([`meta_core::quota`]).

use std::io::Write;

use anyhow::{Context, Result, bail};
use clap::Subcommand;
use meta_core::{FileType, Ino, Meta, Quota};
use serde::Serialize;

use crate::util;

/// The `meta quota` subcommands.
#[derive(Debug, Subcommand)]
pub enum QuotaCmd {
    /// Set a directory's quota (created with the subtree's current usage when it has none).
    /// A limit left out keeps its current value (none for a new quota); 0 removes that limit.
    Set {
        /// Directory inside the volume.
        path: std::ffi::OsString,
        /// Space limit in bytes of 4 KiB-aligned space (suffixes K, M, G, T, P allowed).
        #[arg(long, value_parser = util::parse_size)]
        space: Option<u64>,
        /// Inode limit (suffixes k, m allowed).
        #[arg(long, value_parser = util::parse_count)]
        inodes: Option<u64>,
    },
    /// Show one directory's quota.
    Get {
        /// Directory inside the volume.
        path: std::ffi::OsString,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List every quota of the volume.
    Ls {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Recompute each quota's usage from its subtree's directory statistics and compare;
    /// exit status 1 when one differs (unless --repair fixed it).
    Check {
        /// Only this directory's quota.
        path: Option<std::ffi::OsString>,
        /// Store the recomputed usage where it differs.
        #[arg(long)]
        repair: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Remove a directory's quota.
    Delete {
        /// Directory inside the volume.
        path: std::ffi::OsString,
    },
}

/// One quota as printed.
#[derive(Debug, Serialize)]
struct Shown {
    path: String,
    ino: Ino,
    #[serde(flatten)]
    quota: Quota,
}

/// One `check` line.
#[derive(Debug, Serialize)]
struct Checked {
    path: String,
    ino: Ino,
    stored: meta_core::DirStat,
    recomputed: meta_core::DirStat,
    ok: bool,
    repaired: bool,
}

/// Runs a `meta quota` subcommand; `Ok(false)` when `check` found a difference it did not
/// repair.
pub async fn run(meta: &Meta, cmd: QuotaCmd, out: &mut dyn Write) -> Result<bool> {
    match cmd {
        QuotaCmd::Set {
            path,
            space,
            inodes,
        } => {
            if space.is_none() && inodes.is_none() {
                bail!("give --space and/or --inodes (0 removes a limit)");
            }
            let p = util::os_bytes(&path);
            let ino = dir_of(meta, p).await?;
            let old = meta.quota(ino).await?.unwrap_or_default();
            let q = meta
                .set_quota(
                    ino,
                    space.unwrap_or(old.max_space),
                    inodes.unwrap_or(old.max_inodes),
                )
                .await
                .with_context(|| format!("set the quota of {}", show(p)))?;
            print_table(out, &[row(show(p), ino, q)])?;
        }
        QuotaCmd::Get { path, json } => {
            let p = util::os_bytes(&path);
            let ino = dir_of(meta, p).await?;
            let Some(q) = meta.quota(ino).await? else {
                bail!("{} has no quota", show(p));
            };
            print(out, vec![row(show(p), ino, q)], json)?;
        }
        QuotaCmd::Ls { json } => {
            let mut rows = Vec::new();
            for (ino, q) in meta.quotas().await? {
                rows.push(row(path_of(meta, ino).await, ino, q));
            }
            print(out, rows, json)?;
        }
        QuotaCmd::Check { path, repair, json } => {
            let targets = match path {
                Some(p) => {
                    let p = util::os_bytes(&p);
                    vec![(show(p), dir_of(meta, p).await?)]
                }
                None => {
                    let mut v = Vec::new();
                    for (ino, _) in meta.quotas().await? {
                        v.push((path_of(meta, ino).await, ino));
                    }
                    v
                }
            };
            let mut all_ok = true;
            let mut lines = Vec::new();
            for (path, ino) in targets {
                let (q, recomputed) = meta.check_quota(ino).await?;
                let ok = q.used == recomputed;
                let repaired = !ok && repair;
                if repaired {
                    meta.repair_quota(ino).await?;
                }
                all_ok &= ok || repaired;
                lines.push(Checked {
                    path,
                    ino,
                    stored: q.used,
                    recomputed,
                    ok,
                    repaired,
                });
            }
            if json {
                serde_json::to_writer_pretty(&mut *out, &lines)?;
                out.write_all(b"\n")?;
            } else {
                for c in &lines {
                    let verdict = match (c.ok, c.repaired) {
                        (true, _) => "ok".to_string(),
                        (false, true) => "repaired".to_string(),
                        (false, false) => format!(
                            "DIFFERS: stored {} inodes / {} space, subtree {} / {}",
                            c.stored.inodes,
                            c.stored.space,
                            c.recomputed.inodes,
                            c.recomputed.space
                        ),
                    };
                    writeln!(out, "{} (inode {}): {verdict}", c.path, c.ino)?;
                }
            }
            return Ok(all_ok);
        }
        QuotaCmd::Delete { path } => {
            let p = util::os_bytes(&path);
            let ino = dir_of(meta, p).await?;
            meta.remove_quota(ino)
                .await
                .with_context(|| format!("remove the quota of {}", show(p)))?;
            writeln!(out, "removed the quota of {}", show(p))?;
        }
    }
    Ok(true)
}

fn show(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

fn row(path: String, ino: Ino, quota: Quota) -> Shown {
    Shown { path, ino, quota }
}

/// The directory at `path`: an error naming it when it is missing or not a directory.
async fn dir_of(meta: &Meta, path: &[u8]) -> Result<Ino> {
    let (ino, attr) = meta.resolve(path).await.with_context(|| show(path))?;
    if attr.typ != FileType::Directory {
        bail!("{}: not a directory", show(path));
    }
    Ok(ino)
}

/// A path of directory `ino` from its parent chain (each name found by listing the parent),
/// or `inode N` when it cannot be found (removed meanwhile).
async fn path_of(meta: &Meta, ino: Ino) -> String {
    let mut names: Vec<Vec<u8>> = Vec::new();
    let mut cur = ino;
    while cur != Ino::ROOT {
        let Ok(attr) = meta.getattr(cur).await else {
            return format!("inode {ino}");
        };
        let Ok(entries) = crate::browse::read_all(meta, attr.parent, false).await else {
            return format!("inode {ino}");
        };
        let Some(e) = entries.into_iter().find(|e| e.ino == cur) else {
            return format!("inode {ino}");
        };
        names.push(e.name);
        cur = attr.parent;
        if names.len() > 4096 {
            return format!("inode {ino}");
        }
    }
    let mut p = Vec::new();
    for n in names.iter().rev() {
        p.push(b'/');
        p.extend_from_slice(n);
    }
    if p.is_empty() {
        p.push(b'/');
    }
    show(&p)
}

fn print(out: &mut dyn Write, rows: Vec<Shown>, json: bool) -> Result<()> {
    if json {
        serde_json::to_writer_pretty(&mut *out, &rows)?;
        out.write_all(b"\n")?;
        return Ok(());
    }
    print_table(out, &rows)
}

fn limit(used: i64, max: u64, bytes: bool) -> String {
    let fmt = |n: u64| {
        if bytes {
            util::human_bytes(n)
        } else {
            n.to_string()
        }
    };
    let used = used.max(0) as u64;
    if max == 0 {
        format!("{} / -", fmt(used))
    } else {
        format!(
            "{} / {} ({:.0}%)",
            fmt(used),
            fmt(max),
            used as f64 * 100.0 / max as f64
        )
    }
}

fn print_table(out: &mut dyn Write, rows: &[Shown]) -> Result<()> {
    writeln!(
        out,
        "{:<32} {:>10}  {:<28} {:<24}",
        "PATH", "INODE", "SPACE USED / LIMIT", "INODES USED / LIMIT"
    )?;
    for r in rows {
        writeln!(
            out,
            "{:<32} {:>10}  {:<28} {:<24}",
            r.path,
            r.ino.0,
            limit(r.quota.used.space, r.quota.max_space, true),
            limit(r.quota.used.inodes, r.quota.max_inodes, false)
        )?;
    }
    Ok(())
}
