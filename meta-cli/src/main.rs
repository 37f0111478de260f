//! `meta`: the command-line tool of the meta filesystem-metadata engine.
//!
//! Formats volumes, imports real directory trees through the batch API, browses a volume
//! (`ls`, `stat`, `tree`, `du`), sets directory quotas (`quota`), checks it (`fsck`), dumps and loads it as JSON Lines, and
//! benchmarks a backend (`bench`). See `meta --help` and this crate's README.

mod admin;
mod bench;
mod bench_sessions;
mod browse;
mod import;
mod mount;
mod quota;
mod status;
mod util;
mod volume;

use std::ffi::OsString;
use std::io::{BufWriter, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

use crate::volume::{Access, DEFAULT_URL};

/// meta: filesystem metadata on the database you already run.
#[derive(Debug, Parser)]
#[command(name = "meta", version, about, long_about = None)]
struct Cli {
    /// Volume URL, e.g. rocksdb:///var/lib/meta/vol?sync=false, rocksdb://./dir, memory://
    /// (engine options such as batchwrite=0 or batch_size=256 go in the query string).
    /// Default: rocksdb://./meta-data.
    #[arg(long, global = true, env = "META_URL", value_name = "URL")]
    url: Option<String>,

    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Format a volume (idempotent for the same name; --force erases an existing volume).
    Format {
        /// Volume name.
        #[arg(long, default_value = "meta")]
        name: String,
        /// Capacity in bytes (suffixes K, M, G, T, P allowed); 0 = unlimited.
        #[arg(long, value_parser = util::parse_size, default_value = "0")]
        capacity: u64,
        /// Inode limit (suffixes k, m allowed); 0 = unlimited.
        #[arg(long, value_parser = util::parse_count, default_value = "0")]
        inodes: u64,
        /// Erase whatever the volume holds first.
        #[arg(long)]
        force: bool,
        /// Keep no per-directory statistics (`du` then walks the tree; every create, unlink,
        /// rename and write updates one record less).
        #[arg(long)]
        no_dir_stats: bool,
    },
    /// Replicate a real directory tree's metadata into the volume (no symlink following).
    Import {
        /// The directory to import (its contents go into --to).
        dir: PathBuf,
        /// Directory of the volume receiving the contents (created if missing).
        #[arg(long, default_value = "/", value_name = "PATH")]
        to: OsString,
        /// Ops per batch: one apply call (one commit, one fsync with sync=true) each; capped
        /// by the backend's limit (RocksDB: 4096). Default: the URL's `batch_size` when it
        /// gives one, else 4096.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
        batch: Option<u64>,
        /// Do not copy extended attributes.
        #[arg(long)]
        no_xattrs: bool,
        /// Print the summary as JSON.
        #[arg(long)]
        json: bool,
    },
    /// List a directory of the volume.
    Ls {
        /// Long listing: mode, links, owner, size, mtime, symlink target.
        #[arg(short = 'l')]
        long: bool,
        /// Path inside the volume.
        #[arg(default_value = "/")]
        path: OsString,
    },
    /// Show the attributes of one inode of the volume.
    Stat {
        /// Path inside the volume.
        path: OsString,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the tree under a directory of the volume.
    Tree {
        /// Path inside the volume.
        #[arg(default_value = "/")]
        path: OsString,
        /// Descend at most this many levels.
        #[arg(long, short = 'L')]
        depth: Option<usize>,
    },
    /// What a subtree holds, from the directory statistics: directories, other inodes, bytes
    /// of length and of 4 KiB-aligned space (no file is read). Inodes named in several
    /// directories and open-but-unlinked ones are in no directory's statistics.
    Du {
        /// Print JSON: {"dirs","files","length","space"}; with --walk
        /// {"files","dirs","symlinks","others","bytes"}.
        #[arg(long)]
        json: bool,
        /// Walk the tree instead and count entries by type like find(1) (every entry's
        /// attributes are read; a hard-linked file counts once per name). The default on a
        /// volume formatted without directory statistics.
        #[arg(long)]
        walk: bool,
        /// Path inside the volume.
        #[arg(default_value = "/")]
        path: OsString,
    },
    /// Directory quotas: limits on the space and inodes of a directory's subtree, checked
    /// by every op that grows it (EDQUOT). Needs directory statistics.
    Quota {
        #[command(subcommand)]
        cmd: quota::QuotaCmd,
    },
    /// Format record, statfs numbers and counters of the volume.
    Stats {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// The sessions of the volume (clients, their open files and locks), like `juicefs
    /// status`.
    Status {
        /// Clean up expired sessions first (their open files are released, their locks
        /// dropped).
        #[arg(long)]
        clean: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check the volume's consistency; exit status 1 when a problem is found.
    Fsck {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the whole volume as JSON Lines to FILE or stdout (-).
    Dump {
        /// Output file; `-` or none = stdout.
        file: Option<PathBuf>,
    },
    /// Load a dump from FILE or stdin (-) into an empty volume.
    Load {
        /// Input file; `-` or none = stdin.
        file: Option<PathBuf>,
        /// Erase whatever the volume holds first.
        #[arg(long)]
        force: bool,
    },
    /// mdtest-like benchmark: mkdir, create, stat, readdir, rename, unlink, rmdir.
    /// Without --url (or META_URL) it runs on a fresh temporary RocksDB volume.
    Bench {
        /// Files to create.
        #[arg(long, default_value = "10000", value_parser = util::parse_files)]
        files: u64,
        /// Directories the files are spread over.
        #[arg(long, default_value = "10", value_parser = util::parse_dirs)]
        dirs: u64,
        /// Concurrent tasks.
        #[arg(long, default_value = "16", value_parser = util::parse_tasks)]
        tasks: usize,
        /// Disable batching (URL option batchwrite=0): every op is its own apply call.
        #[arg(long, conflicts_with = "compare")]
        no_batch: bool,
        /// Run batched and unbatched on fresh volumes and print the ratio per phase.
        #[arg(long)]
        compare: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Serve Prometheus /metrics on this address while running, e.g. 127.0.0.1:9100.
        #[arg(long, value_name = "ADDR")]
        metrics_addr: Option<SocketAddr>,
        /// Run the ops as this user: UID:GID or UID:GID:G1,G2,... (supplementary groups), so
        /// that they go through the permission checks (URL option permissions=false turns
        /// them off, for comparison). Default: root.
        #[arg(long, value_name = "UID:GID[:GROUPS]", default_value = "0:0", value_parser = util::parse_caller)]
        caller: meta_core::Caller,
        /// Put a directory quota (limits never reached) on the run's directory, so every op
        /// charges it: what a quota on the path costs. Needs directory statistics.
        #[arg(long)]
        quota: bool,
    },
    /// Serve the volume as a filesystem through FUSE (file data as slice files in --data).
    /// Runs in the background unless --foreground; unmount with `meta umount`, SIGINT or
    /// SIGTERM.
    Mount {
        /// Volume URL, e.g. rocksdb:///var/lib/meta/vol or redis://host:6379/1.
        #[arg(value_name = "URL")]
        volume: String,
        /// Where to mount (an existing directory).
        mountpoint: PathBuf,
        /// Directory of the file data (slice files); default for an embedded volume: next
        /// to it (`<path>-data`). Every mount of one volume must share it.
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// Serve in this process until unmounted (else a background process serves).
        #[arg(long, short = 'f')]
        foreground: bool,
        /// Mount options, comma-separated: allow_other, default_permissions, ro, nosuid,
        /// ... (default: default_permissions, and allow_other as root).
        #[arg(short = 'o', value_name = "OPTS")]
        options: Vec<String>,
        /// Seconds the kernel may cache attributes and entries (0: ask every time).
        #[arg(long, default_value = "0")]
        attr_timeout: f64,
        /// Bytes of writes buffered per file before they are committed as a slice.
        #[arg(long, default_value = "8M", value_parser = util::parse_size)]
        write_buffer: u64,
        /// Seconds between passes deleting the data of deleted files.
        #[arg(long, default_value = "5")]
        gc_interval: f64,
        /// Slices recorded in one chunk after which the mount rewrites the chunk as one
        /// slice (compaction; 0: never).
        #[arg(long, default_value = "64")]
        compact_slices: usize,
        /// Seconds the unmount (at most half) and the end of the session may take after
        /// SIGINT/SIGTERM; past them (a backend that does not answer) the process exits
        /// anyway, within 5 more seconds, and leaves its session to expire.
        #[arg(long, default_value = "15")]
        stop_timeout: f64,
        /// Log file of a background mount (default: a file in the temp directory).
        #[arg(long)]
        log: Option<PathBuf>,
    },
    /// Unmount a meta mount (`--lazy` also clears the mount point of a crashed mount).
    Umount {
        /// The mount point.
        mountpoint: PathBuf,
        /// Detach now, clean up when no longer busy (umount -l).
        #[arg(long, short = 'l')]
        lazy: bool,
    },
    /// What sessions cost: create+write+close with and without open tracking, and lock/unlock
    /// pairs of two clients on disjoint files and on one contended file. Without --url it
    /// runs on a fresh temporary RocksDB volume.
    BenchSessions(BenchSessionsArgs),
}

/// Options of `meta bench-sessions`.
#[derive(Debug, clap::Args)]
struct BenchSessionsArgs {
    /// Files per open-tracking run.
    #[arg(long, default_value = "5000", value_parser = util::parse_files)]
    files: u64,
    /// Concurrent tasks per client.
    #[arg(long, default_value = "16", value_parser = util::parse_tasks)]
    tasks: usize,
    /// Lock/unlock pairs per task.
    #[arg(long, default_value = "200", value_parser = util::parse_files)]
    pairs: u64,
    /// Plain/tracked pairs of create+write+close runs, in ABBA order.
    #[arg(long, default_value_t = 4)]
    rounds: u32,
    /// Run only the plain or only the tracked half of each pair (to profile one of them).
    #[arg(long, value_enum)]
    only: Option<bench_sessions::Half>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// How a command ended.
enum Outcome {
    Ok,
    /// Exit status 1 without an error message (fsck found problems; they were printed).
    Fail,
}

fn url_or_default(url: &Option<String>) -> &str {
    url.as_deref().unwrap_or(DEFAULT_URL)
}

/// Whether volume URL `u` has query parameter `name` (read from the query string itself, so
/// that multi-host URLs such as `etcd://h1:2379,h2:2379/v?...` count too).
fn url_has_param(u: &str, name: &str) -> bool {
    u.split_once('?')
        .is_some_and(|(_, q)| url::form_urlencoded::parse(q.as_bytes()).any(|(k, _)| k == name))
}

fn bytes(s: &OsString) -> Vec<u8> {
    util::os_bytes(s).to_vec()
}

async fn run(cli: Cli, out: &mut dyn Write) -> Result<Outcome> {
    let url = url_or_default(&cli.url).to_string();
    match cli.cmd {
        Cmd::Format {
            name,
            capacity,
            inodes,
            force,
            no_dir_stats,
        } => {
            let o = volume::open_backend(&url, Access::Create).await?;
            admin::format(
                &o,
                &admin::FormatOpts {
                    name,
                    capacity,
                    inodes,
                    force,
                    dir_stats: !no_dir_stats,
                },
                out,
            )
            .await?;
        }
        Cmd::Import {
            dir,
            to,
            batch,
            no_xattrs,
            json,
        } => {
            let mut o = volume::open_backend(&url, Access::Write).await?;
            // The explicit batch API sends at most `batch_size` ops per apply call: --batch,
            // else the URL's batch_size, else 4096.
            let url_gave_batch = url_has_param(&url, "batch_size");
            let batch = match batch {
                Some(n) => n as usize,
                None if url_gave_batch => o.opts.batch_size,
                None => 4096,
            };
            o.opts.batch_size = batch;
            let meta = volume::open_meta_on(&o, Access::Write, None).await?;
            let s = import::import(
                &meta,
                &import::ImportOpts {
                    src: dir,
                    to: bytes(&to),
                    batch_ops: batch,
                    xattrs: !no_xattrs,
                },
            )
            .await?;
            meta.close().await?;
            if json {
                serde_json::to_writer_pretty(&mut *out, &s)?;
                out.write_all(b"\n")?;
            } else {
                s.print(out)?;
            }
            if s.errors > 0 {
                out.flush()?;
                anyhow::bail!(
                    "import finished with {} error(s); the rest was imported",
                    s.errors
                );
            }
        }
        Cmd::Ls { long, path } => {
            let (meta, _) = volume::open_meta(&url, Access::Read, None).await?;
            browse::ls(&meta, &bytes(&path), long, out).await?;
        }
        Cmd::Stat { path, json } => {
            let (meta, _) = volume::open_meta(&url, Access::Read, None).await?;
            browse::stat(&meta, &bytes(&path), json, out).await?;
        }
        Cmd::Tree { path, depth } => {
            let (meta, _) = volume::open_meta(&url, Access::Read, None).await?;
            browse::tree(&meta, &bytes(&path), depth, out).await?;
        }
        Cmd::Du { json, walk, path } => {
            let (meta, _) = volume::open_meta(&url, Access::Read, None).await?;
            browse::du(&meta, &bytes(&path), walk, json, out).await?;
        }
        Cmd::Quota { cmd } => {
            let access = match cmd {
                quota::QuotaCmd::Get { .. } | quota::QuotaCmd::Ls { .. } => Access::Read,
                quota::QuotaCmd::Check { repair, .. } if !repair => Access::Read,
                _ => Access::Write,
            };
            let (meta, _) = volume::open_meta(&url, access, None).await?;
            let ok = quota::run(&meta, cmd, out).await;
            meta.close().await?;
            if !ok? {
                return Ok(Outcome::Fail);
            }
        }
        Cmd::Stats { json } => {
            let (meta, o) = volume::open_meta(&url, Access::Read, None).await?;
            admin::stats(&meta, &o, json, out).await?;
        }
        Cmd::Status { clean, json } => {
            let (meta, _) = volume::open_meta(&url, Access::Read, None).await?;
            let s = status::status(&meta, clean).await?;
            meta.close().await?;
            if json {
                serde_json::to_writer_pretty(&mut *out, &s)?;
                out.write_all(b"\n")?;
            } else {
                s.print(out)?;
            }
        }
        Cmd::Fsck { json } => {
            let o = volume::open_backend(&url, Access::Read).await?;
            if !admin::fsck(&o, json, out).await? {
                return Ok(Outcome::Fail);
            }
        }
        Cmd::Dump { file } => {
            let o = volume::open_backend(&url, Access::Read).await?;
            admin::dump(&o, file.as_deref()).await?;
        }
        Cmd::Load { file, force } => {
            let o = volume::open_backend(&url, Access::Create).await?;
            admin::load(&o, file.as_deref(), force, out).await?;
        }
        Cmd::Bench {
            files,
            dirs,
            tasks,
            no_batch,
            compare,
            json,
            metrics_addr,
            caller,
            quota,
        } => {
            let report = bench::bench(&bench::BenchOpts {
                caller,
                quota,
                files,
                dirs,
                tasks,
                no_batch,
                compare,
                metrics_addr,
                url: cli.url.clone(),
            })
            .await?;
            if json {
                serde_json::to_writer_pretty(&mut *out, &report)?;
                out.write_all(b"\n")?;
            } else {
                report.print(out)?;
            }
        }
        Cmd::Mount {
            volume: vol,
            mountpoint,
            data,
            foreground,
            options,
            attr_timeout,
            write_buffer,
            gc_interval,
            compact_slices,
            stop_timeout,
            log,
        } => {
            let seconds = |name: &str, v: f64| -> Result<std::time::Duration> {
                std::time::Duration::try_from_secs_f64(v)
                    .map_err(|_| anyhow::anyhow!("--{name} {v}: expected seconds >= 0 (EINVAL)"))
            };
            let o = mount::MountOpts {
                url: vol,
                mountpoint,
                data,
                options,
                attr_timeout: seconds("attr-timeout", attr_timeout)?,
                write_buffer: usize::try_from(write_buffer).unwrap_or(usize::MAX),
                gc_interval: match seconds("gc-interval", gc_interval)? {
                    t if t.as_secs_f64() < 0.1 || t.as_secs() > 86_400 => anyhow::bail!(
                        "--gc-interval {gc_interval}: expected seconds from 0.1 to a day \
                         (EINVAL)"
                    ),
                    t => t,
                },
                compact_slices,
                stop_timeout: match seconds("stop-timeout", stop_timeout)? {
                    t if t.is_zero() || t.as_secs() > 86_400 => anyhow::bail!(
                        "--stop-timeout {stop_timeout}: expected seconds above 0, at most a \
                         day (EINVAL)"
                    ),
                    t => t,
                },
                log,
            };
            if foreground {
                mount::run(&o, out).await?;
            } else {
                // Check what can be checked here, then let a child serve the mount.
                mount::data_dir(&o.url, o.data.as_deref())?;
                let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
                mount::spawn_background(&o, &args)?;
            }
        }
        Cmd::Umount { mountpoint, lazy } => {
            mount::umount(&mountpoint, lazy)?;
        }
        Cmd::BenchSessions(a) => {
            let report = bench_sessions::bench(&bench_sessions::Opts {
                files: a.files,
                tasks: a.tasks,
                pairs: a.pairs,
                rounds: a.rounds,
                only: a.only,
                url: cli.url.clone(),
            })
            .await?;
            if a.json {
                serde_json::to_writer_pretty(&mut *out, &report)?;
                out.write_all(b"\n")?;
            } else {
                report.print(out)?;
            }
        }
    }
    Ok(Outcome::Ok)
}

/// One line for an error chain. A `meta_core::Error` already shows its source and errno name,
/// so the chain stops there; an `io::Error` gets its errno name.
fn error_line(e: &anyhow::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in e.chain() {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            parts.push(util::io_error_line(io));
            break;
        }
        parts.push(cause.to_string());
        if cause.downcast_ref::<meta_core::Error>().is_some() {
            break;
        }
    }
    parts.join(": ")
}

fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(c);
        while let Some(err) = cur {
            let pipe = err
                .downcast_ref::<std::io::Error>()
                .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
                || err
                    .downcast_ref::<serde_json::Error>()
                    .is_some_and(|j| j.io_error_kind() == Some(std::io::ErrorKind::BrokenPipe));
            if pipe {
                return true;
            }
            cur = err.source();
        }
        false
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!(
                "meta: cannot start the runtime: {}",
                util::io_error_line(&e)
            );
            return ExitCode::FAILURE;
        }
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = rt
        .block_on(run(cli, &mut out))
        .and_then(|o| out.flush().context("write to stdout").map(|_| o));
    drop(out);
    // Let background tasks (batcher, prefetches) stop without waiting on blocking threads.
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    match result {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Fail) => ExitCode::from(1),
        Err(e) if is_broken_pipe(&e) => ExitCode::from(141),
        Err(e) => {
            eprintln!("meta: {}", error_line(&e));
            ExitCode::FAILURE
        }
    }
}
