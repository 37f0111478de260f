//! `cargo xtask bench-mount`: `tar -x` of 10,000 small files and `rm -rf` of them through
//! `meta mount` on several backends, next to the same on the local disk (the directory of
//! the runs, ext4 here) and on tmpfs (`/dev/shm`), in one run. `memory://` is the mount
//! with no database behind it: what is left there is FUSE round trips and the data layer's
//! slice files; the difference to it is the engine and the database.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{Result, cargo, mounted, run, target_dir, wait_for};

/// Files in the benchmark tree.
pub const FILES: usize = 10_000;

/// One row of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// What ran.
    pub what: String,
    /// Seconds of `tar -x`.
    pub tar: f64,
    /// Seconds of `rm -rf`.
    pub rm: f64,
}

/// Writes the source tree (100 directories × 100 files of 0 B–4 KiB) and its tar.
fn make_tar(work: &Path) -> Result<PathBuf> {
    let src = work.join("src").join("tree");
    let mut seed: u64 = 11;
    for d in 0..100 {
        let dir = src.join(format!("d{d:03}"));
        std::fs::create_dir_all(&dir).map_err(|e| format!("mkdir: {e}"))?;
        for f in 0..(FILES / 100) {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let size = (seed >> 33) as usize % 4097;
            let data: Vec<u8> = (0..size).map(|i| (i as u64 ^ seed) as u8).collect();
            std::fs::write(dir.join(format!("f{f:03}")), data)
                .map_err(|e| format!("write: {e}"))?;
        }
    }
    let tar = work.join("tree.tar");
    run(
        Command::new("tar")
            .arg("-C")
            .arg(work.join("src"))
            .arg("-cf")
            .arg(&tar)
            .arg("tree"),
        "tar -c",
    )?;
    Ok(tar)
}

fn timed(cmd: &mut Command, what: &str) -> Result<f64> {
    let start = Instant::now();
    run(cmd, what)?;
    Ok(start.elapsed().as_secs_f64())
}

/// `tar -x` into `dir`, then `rm -rf` of the tree.
fn workload(dir: &Path, tar: &Path, what: &str) -> Result<Row> {
    let t = timed(
        Command::new("tar").arg("-C").arg(dir).arg("-xf").arg(tar),
        &format!("tar -x on {what}"),
    )?;
    let r = timed(
        Command::new("rm").arg("-rf").arg(dir.join("tree")),
        &format!("rm -rf on {what}"),
    )?;
    Ok(Row {
        what: what.to_string(),
        tar: t,
        rm: r,
    })
}

/// The workload through `meta mount` on `url` (release build of `meta`).
fn on_mount(meta: &Path, url: &str, label: &str, work: &Path, tar: &Path) -> Result<Row> {
    // Mount points without blanks: /proc/self/mountinfo escapes them.
    let slug: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let dir = work.join(format!("m-{slug}"));
    let mnt = dir.join("mnt");
    std::fs::create_dir_all(&mnt).map_err(|e| format!("mkdir: {e}"))?;
    if !url.starts_with("memory:") {
        run(
            Command::new(meta).args(["--url", url, "format", "--force"]),
            "meta format",
        )?;
    }
    let mut child = Command::new(meta)
        .arg("mount")
        .arg(url)
        .arg(&mnt)
        .arg("--data")
        .arg(dir.join("data"))
        .arg("--foreground")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("start meta mount: {e}"))?;
    let up = wait_for(
        "meta mount",
        Duration::from_secs(60),
        Duration::from_millis(50),
        || mounted(&mnt).then_some(()),
    );
    let row = up.and_then(|()| workload(&mnt, tar, label));
    let _ = Command::new(meta).arg("umount").arg(&mnt).status();
    let _ = child.wait();
    row
}

/// Runs the benchmark; `servers` are `(label, url)` of server volumes to include.
pub fn run_bench(servers: &[(String, String)]) -> Result<Vec<Row>> {
    run(
        cargo().args(["build", "--release", "-p", "meta-cli"]),
        "cargo build --release -p meta-cli",
    )?;
    let meta = target_dir().join("release").join("meta");
    let work = std::env::temp_dir().join(format!("meta-bench-mount-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).map_err(|e| format!("mkdir: {e}"))?;
    let r = (|| {
        let tar = make_tar(&work)?;
        let mut rows = Vec::new();
        let local = work.join("local");
        std::fs::create_dir_all(&local).map_err(|e| format!("mkdir: {e}"))?;
        rows.push(workload(&local, &tar, "local disk (ext4)")?);
        let shm = Path::new("/dev/shm").join(format!("meta-bench-{}", std::process::id()));
        if std::fs::create_dir_all(&shm).is_ok() {
            let row = workload(&shm, &tar, "tmpfs (/dev/shm)");
            let _ = std::fs::remove_dir_all(&shm);
            rows.push(row?);
        }
        rows.push(on_mount(&meta, "memory://", "meta memory://", &work, &tar)?);
        let rocks = format!("rocksdb://{}", work.join("vol").display());
        rows.push(on_mount(
            &meta,
            &rocks,
            "meta rocksdb (sync=true)",
            &work,
            &tar,
        )?);
        let rocks_nosync = format!("rocksdb://{}?sync=false", work.join("vol2").display());
        rows.push(on_mount(
            &meta,
            &rocks_nosync,
            "meta rocksdb (sync=false)",
            &work,
            &tar,
        )?);
        for (label, url) in servers {
            rows.push(on_mount(&meta, url, &format!("meta {label}"), &work, &tar)?);
        }
        Ok(rows)
    })();
    let _ = std::fs::remove_dir_all(&work);
    r
}

/// Prints the table: files/s of each step and the ratio to the local disk.
pub fn print(rows: &[Row]) {
    let Some(base) = rows.first() else { return };
    println!("\ntar -x and rm -rf of {FILES} small files (0-4 KiB, 100 directories)");
    println!(
        "{:<28} {:>10} {:>12} {:>10} {:>12}",
        "where", "tar files/s", "vs local", "rm files/s", "vs local"
    );
    for r in rows {
        let (tf, rf) = (FILES as f64 / r.tar, FILES as f64 / r.rm);
        println!(
            "{:<28} {:>10.0} {:>11.2}x {:>10.0} {:>11.2}x",
            r.what,
            tf,
            base.tar / r.tar,
            rf,
            base.rm / r.rm
        );
    }
}
