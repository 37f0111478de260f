//! `meta mount` and `meta umount`: a reference FUSE filesystem on any backend, with file data
//! as slice files in a local directory.
//!
//! - `fs.rs`: the FUSE requests → the [`Meta`] API.
//! - `files.rs`: write buffering and reads of file data.
//! - `data.rs`: slice files.
//! - `gc.rs`: deletion of the data of deleted files and dropped slices.
//!
//! Lifecycle: the mount registers a session (labelled with the mount point) and holds the
//! files the kernel has open in it; SIGINT or SIGTERM unmounts and ends the session cleanly;
//! an external unmount (`meta umount`, `fusermount3 -u`) ends it too. A mount that crashed
//! leaves an unusable mount point ("transport endpoint is not connected") until `meta umount`
//! (a lazy unmount), and its session is cleaned up by any other client once it expires.

mod access;
mod compact;
mod convert;
mod data;
mod dir;
mod files;
mod fs;
mod gc;
mod locks;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use fuser::{Config, MountOption, SessionACL};
use meta_core::Meta;

pub use data::SliceStore;

use crate::volume::{self, Access};

/// Options of `meta mount`.
#[derive(Debug, Clone)]
pub struct MountOpts {
    /// The volume URL.
    pub url: String,
    /// Where to mount.
    pub mountpoint: PathBuf,
    /// The data directory (`None`: next to an embedded volume).
    pub data: Option<PathBuf>,
    /// `-o` options, comma-separated lists.
    pub options: Vec<String>,
    /// Attribute and entry TTL given to the kernel.
    pub attr_timeout: Duration,
    /// Buffered bytes per file before a write commits them.
    pub write_buffer: usize,
    /// How often the data of deleted files is removed.
    pub gc_interval: Duration,
    /// Slices this mount records in one chunk before it compacts the chunk (0: never).
    pub compact_slices: usize,
    /// How long the unmount and the session's end may take after SIGINT/SIGTERM.
    pub stop_timeout: Duration,
    /// Log file of a background mount.
    pub log: Option<PathBuf>,
}

/// The data directory: `--data`, or `<volume path>-data` for an embedded volume
/// (`rocksdb://`, `sqlite://`). Errors: a server volume without `--data`.
pub fn data_dir(url: &str, data: Option<&Path>) -> Result<PathBuf> {
    if let Some(d) = data {
        return Ok(d.to_path_buf());
    }
    let (u, _) = meta_core::parse_url(url).context("volume URL")?;
    match u.scheme() {
        "rocksdb" | "sqlite" => {
            let p = u.file_path();
            let p = p.trim_end_matches('/');
            if p.is_empty() {
                bail!("the volume URL names no path; give --data DIR");
            }
            Ok(PathBuf::from(format!("{p}-data")))
        }
        other => bail!(
            "a {other}:// volume has no local path to put file data next to: give --data DIR \
             (a directory every mount of the volume shares, e.g. on NFS)"
        ),
    }
}

/// The FUSE mount options: `fsname`/`subtype`, then `-o` (or, without `-o`,
/// `default_permissions` and, as root, `allow_other`). Returns them with the access rule.
fn mount_options(o: &MountOpts, display: &str) -> Result<(Vec<MountOption>, SessionACL)> {
    let mut opts = vec![
        MountOption::FSName(format!("meta:{display}")),
        MountOption::Subtype("meta".into()),
    ];
    let mut acl = SessionACL::Owner;
    let given: Vec<String> = o
        .options
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    let words: Vec<String> = if given.is_empty() {
        let mut w = vec!["default_permissions".to_string()];
        if is_root() {
            w.push("allow_other".into());
        }
        w
    } else {
        given
    };
    for w in words {
        match w.as_str() {
            "allow_other" => acl = SessionACL::All,
            "allow_root" => acl = SessionACL::RootAndOwner,
            "default_permissions" => opts.push(MountOption::DefaultPermissions),
            "ro" => opts.push(MountOption::RO),
            "rw" => opts.push(MountOption::RW),
            "dev" => opts.push(MountOption::Dev),
            "nodev" => opts.push(MountOption::NoDev),
            "suid" => opts.push(MountOption::Suid),
            "nosuid" => opts.push(MountOption::NoSuid),
            "exec" => opts.push(MountOption::Exec),
            "noexec" => opts.push(MountOption::NoExec),
            "atime" => opts.push(MountOption::Atime),
            "noatime" => opts.push(MountOption::NoAtime),
            "sync" => opts.push(MountOption::Sync),
            "async" => opts.push(MountOption::Async),
            "dirsync" => opts.push(MountOption::DirSync),
            other => bail!(
                "unknown mount option {other:?} (known: allow_other, allow_root, \
                 default_permissions, ro, rw, dev, nodev, suid, nosuid, exec, noexec, atime, \
                 noatime, sync, async, dirsync)"
            ),
        }
    }
    Ok((opts, acl))
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// True when `path` is the mount point of a meta FUSE filesystem (per
/// /proc/self/mountinfo: a `fuse` type whose source starts with `meta:`).
pub fn is_mounted(path: &Path) -> bool {
    let Ok(target) = std::fs::canonicalize(path) else {
        return false;
    };
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    info.lines().any(|l| {
        let f: Vec<&str> = l.split(' ').collect();
        let Some(sep) = f.iter().position(|x| *x == "-") else {
            return false;
        };
        f.get(4).is_some_and(|m| Path::new(m) == target)
            && f.get(sep + 1).is_some_and(|t| t.starts_with("fuse"))
            && f.get(sep + 2).is_some_and(|s| s.starts_with("meta:"))
    })
}

/// `meta mount` in the background: starts this program again with `--foreground` as a
/// process of its own group (its output to the log file), waits until the mount point is
/// mounted, and returns. Errors: the child's own error (from its log) when it exits first.
pub fn spawn_background(o: &MountOpts, args: &[std::ffi::OsString]) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let log_path = match &o.log {
        Some(p) => p.clone(),
        None => std::env::temp_dir().join(format!("meta-mount-{}.log", std::process::id())),
    };
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("create the mount log {}", log_path.display()))?;
    let exe = std::env::current_exe().context("find this program")?;
    let mut child = std::process::Command::new(exe)
        .args(args)
        .arg("--foreground")
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("log file")?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("start the mount process")?;
    let started = Instant::now();
    loop {
        if is_mounted(&o.mountpoint) {
            println!(
                "meta: mounted at {} (pid {}, log {})",
                o.mountpoint.display(),
                child.id(),
                log_path.display()
            );
            return Ok(());
        }
        if let Some(status) = child.try_wait().context("wait for the mount process")? {
            let text = std::fs::read_to_string(&log_path).unwrap_or_default();
            bail!(
                "the mount process exited ({status}) before mounting: {}",
                text.trim()
            );
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!(
                "{} is not mounted 60 s after starting (pid {} still runs; log {})",
                o.mountpoint.display(),
                child.id(),
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `meta mount --foreground`: mounts, serves until SIGINT/SIGTERM or an external unmount,
/// then unmounts and ends the session. Progress lines go to `out`.
pub async fn run(o: &MountOpts, out: &mut dyn Write) -> Result<()> {
    let mp = &o.mountpoint;
    let md = std::fs::metadata(mp).with_context(|| format!("mount point {}", mp.display()))?;
    if !md.is_dir() {
        bail!("mount point {} is not a directory (ENOTDIR)", mp.display());
    }
    let data = data_dir(&o.url, o.data.as_deref())?;
    let store =
        SliceStore::open(&data).with_context(|| format!("data directory {}", data.display()))?;
    let mut opened = volume::open_backend(&o.url, Access::Write).await?;
    opened.opts.session_label = format!("mount {}", mp.display());
    let (mopts, acl) = mount_options(o, &opened.display)?;
    // With default_permissions the kernel checks permissions and clears setuid/setgid
    // itself through setattr, so the engine's checks would only repeat them; without it the
    // engine decides (see access.rs).
    let engine_checks = !mopts.contains(&MountOption::DefaultPermissions);
    opened.opts.permissions = engine_checks;
    let meta = volume::open_meta_on(&opened, Access::Write, None).await?;
    let files = Arc::new(files::Files::new(
        meta.clone(),
        store.clone(),
        o.write_buffer,
        o.compact_slices,
    ));
    let fs = fs::MetaFs::new(
        meta.clone(),
        files.clone(),
        tokio::runtime::Handle::current(),
        o.attr_timeout,
        engine_checks,
    );
    let mut config = Config::default();
    config.mount_options = mopts;
    config.acl = acl;
    let mount_at = mp.clone();
    let session = tokio::task::spawn_blocking(move || {
        fuser::Session::new(fs, &mount_at, &config).and_then(fuser::Session::spawn)
    })
    .await
    .context("mount task")?
    .with_context(|| format!("mount {} (is /dev/fuse there? as root?)", mp.display()))?;
    writeln!(
        out,
        "meta: {} mounted at {} (data in {}, session {})",
        opened.display,
        mp.display(),
        data.display(),
        meta.session_id().unwrap_or(0)
    )?;
    out.flush()?;
    let gc = tokio::spawn(gc::run(meta.clone(), Arc::new(store), o.gc_interval));
    let why = wait_for_end(&session).await;
    writeln!(out, "meta: {why}; unmounting {}", mp.display())?;
    out.flush()?;
    // The unmount may take half of --stop-timeout: after a lazy unmount (fusermount's, for
    // a user; ours, when the mount is busy) the FUSE session goes on serving the files still
    // open there, and a request may be waiting on a backend that does not answer. The
    // session ends with whatever time is left, in any case.
    let deadline = tokio::time::Instant::now() + o.stop_timeout;
    match tokio::time::timeout(o.stop_timeout / 2, unmount(session, mp.clone())).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!("{e:#}"),
        Err(_) => tracing::warn!(
            "the FUSE session of {} is still serving (files held open after a lazy unmount, \
             or a request waiting on the backend): ending the session anyway",
            mp.display()
        ),
    }
    gc.abort();
    let stop = async {
        // Writes buffered for files still open (a lazy unmount flushes nothing).
        if let Err(e) = files.flush_all().await {
            tracing::warn!("commit buffered writes: {e}");
        }
        close_meta(&meta).await
    };
    match tokio::time::timeout_at(deadline, stop).await {
        Ok(closed) => closed,
        Err(_) => bail!(
            "the unmount and the end of session {} took longer than {:?} (--stop-timeout): \
             exiting without them; the session expires after 5 missed heartbeats and another \
             client then releases its open files and locks",
            meta.session_id().unwrap_or(0),
            o.stop_timeout
        ),
    }
}

/// Unmounts the session's mount point and waits for its FUSE thread, or, when the kernel
/// refuses because the mount is busy (a process has a file or its working directory there,
/// or a request in flight), detaches it lazily (umount2(2) `MNT_DETACH`): it leaves the
/// namespace at once, and the processes still inside get errors once the session has ended,
/// rather than a dead mount point (ENOTCONN) that needs `meta umount --lazy`. A user's
/// unmount is always lazy (fuser runs `fusermount3 -u -z`), and then waits for the files
/// still open. Errors: the unmount's.
async fn unmount(session: fuser::BackgroundSession, mp: PathBuf) -> Result<()> {
    tokio::task::spawn_blocking(move || {
        if session.guard.is_finished() {
            // Unmounted from outside: nothing left to unmount.
            return session.join().context("the FUSE session");
        }
        match session.umount_and_join() {
            Ok(()) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                tracing::warn!("{} is busy (EBUSY): detaching it lazily", mp.display());
                detach(&mp)
            }
            Err(e) => Err(e).with_context(|| format!("unmount {}", mp.display())),
        }
    })
    .await
    .context("the unmount task")?
}

/// umount2(2) with `MNT_DETACH`, called directly rather than through umount(8), which may
/// look at the mount point first and so wait on this very process. Only root gets here (a
/// user's unmount is fusermount's, lazy already). Errors: the call's errno.
fn detach(mp: &Path) -> Result<()> {
    rustix::mount::unmount(mp, rustix::mount::UnmountFlags::DETACH)
        .map_err(std::io::Error::from)
        .with_context(|| format!("detach {}", mp.display()))
}

async fn close_meta(meta: &Meta) -> Result<()> {
    meta.close().await.context("end the session")
}

/// Waits for SIGINT, SIGTERM, or the end of the FUSE session (an external unmount).
async fn wait_for_end(session: &fuser::BackgroundSession) -> String {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        // No signal handling: serve until the session ends.
        while !session.guard.is_finished() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        return "the filesystem was unmounted".into();
    };
    loop {
        tokio::select! {
            _ = int.recv() => return "interrupted (SIGINT)".into(),
            _ = term.recv() => return "terminated (SIGTERM)".into(),
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                if session.guard.is_finished() {
                    return "the filesystem was unmounted".into();
                }
            }
        }
    }
}

/// `meta umount MOUNTPOINT`: unmounts a meta mount (lazily with `lazy`, which also clears
/// the mount point of a crashed mount). Errors: the unmount's.
pub fn umount(mountpoint: &Path, lazy: bool) -> Result<()> {
    let mut cmd = if is_root() {
        let mut c = std::process::Command::new("umount");
        if lazy {
            c.arg("-l");
        }
        c
    } else {
        let mut c = std::process::Command::new("fusermount3");
        c.arg("-u");
        if lazy {
            c.arg("-z");
        }
        c
    };
    let out = cmd
        .arg(mountpoint)
        .output()
        .context("run umount (apt-get install fuse3 for fusermount3)")?;
    if !out.status.success() {
        bail!(
            "unmount {}: {}",
            mountpoint.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
