//! Small helpers shared by the subcommands: size parsing, mode strings, time formatting,
//! progress bars, errno names and byte-string output.

use std::ffi::OsStr;
use std::io::{IsTerminal, Write};
use std::os::unix::ffi::OsStrExt;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use meta_core::{FileType, Timespec};

/// Parses a byte size: a plain integer, or a number with a binary suffix `K`, `M`, `G`, `T`,
/// `P` (optionally followed by `i`/`iB`/`B`, case-insensitive), e.g. `10G` = 10 × 2^30.
/// Fractions are allowed with a suffix (`1.5G`).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let num_end = lower
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(lower.len());
    let (num, suffix) = lower.split_at(num_end);
    // One unit letter, then at most one 'i' and one 'b' (k, kb, ki, kib); "b" alone is bytes.
    let unit = suffix.strip_suffix('b').unwrap_or(suffix);
    let unit = match unit.strip_suffix('i') {
        Some("") => "?",
        Some(u) => u,
        None => unit,
    };
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => return Err(format!("{s:?} is not a size (e.g. 1048576, 512M, 10G)")),
    };
    if num.is_empty() {
        return Err(format!("{s:?} is not a size (e.g. 1048576, 512M, 10G)"));
    }
    if let Ok(n) = num.parse::<u64>() {
        return n
            .checked_mul(1u64 << shift)
            .ok_or_else(|| format!("size {s:?} is too large"));
    }
    match num.parse::<f64>() {
        Ok(f) if shift > 0 && f.is_finite() && f >= 0.0 => {
            let v = f * (1u64 << shift) as f64;
            if v >= u64::MAX as f64 {
                Err(format!("size {s:?} is too large"))
            } else if f > 0.0 && v < 1.0 {
                // (0 means "no limit" to quota and capacity options.)
                Err(format!("size {s:?} is less than one byte"))
            } else {
                Ok(v as u64)
            }
        }
        _ => Err(format!("{s:?} is not a size (e.g. 1048576, 512M, 10G)")),
    }
}

/// Parses a count that may carry a decimal suffix `k` (1e3), `m` (1e6) or `g` (1e9).
pub fn parse_count(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let (num, mul) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1_000),
        Some('m') => (&t[..t.len() - 1], 1_000_000),
        Some('g') => (&t[..t.len() - 1], 1_000_000_000),
        _ => (&t[..], 1),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mul))
        .ok_or_else(|| format!("{s:?} is not a count (e.g. 10000 or 10k)"))
}

/// Most files (or lock pairs) a benchmark run makes: 10^9.
pub const MAX_FILES: u64 = 1_000_000_000;
/// Most directories a benchmark run spreads its files over: 10^6.
pub const MAX_DIRS: u64 = 1_000_000;
/// Most concurrent tasks of a benchmark: 65,536.
pub const MAX_TASKS: u64 = 65_536;

fn count_in(s: &str, what: &str, max: u64) -> Result<u64, String> {
    let n = parse_count(s)?;
    if n == 0 || n > max {
        return Err(format!("{s:?}: expected 1 to {max} {what}"));
    }
    Ok(n)
}

/// A count of files or pairs (`10000`, `10k`, `1m`), 1 to [`MAX_FILES`].
pub fn parse_files(s: &str) -> Result<u64, String> {
    count_in(s, "(files or pairs)", MAX_FILES)
}

/// A count of directories, 1 to [`MAX_DIRS`].
pub fn parse_dirs(s: &str) -> Result<u64, String> {
    count_in(s, "directories", MAX_DIRS)
}

/// A count of tasks, 1 to [`MAX_TASKS`].
pub fn parse_tasks(s: &str) -> Result<usize, String> {
    count_in(s, "tasks", MAX_TASKS).map(|n| n as usize)
}

/// A `--caller` value: `UID:GID` or `UID:GID:G1,G2,...` (decimal IDs).
pub fn parse_caller(s: &str) -> Result<meta_core::Caller, String> {
    let id = |what: &str, v: &str| {
        v.trim()
            .parse::<u32>()
            .map_err(|_| format!("{what} {v:?} in {s:?} is not a number from 0 to 4294967295"))
    };
    let mut parts = s.splitn(3, ':');
    let (Some(uid), Some(gid)) = (parts.next(), parts.next()) else {
        return Err(format!("{s:?}: expected UID:GID or UID:GID:G1,G2,..."));
    };
    let groups = match parts.next() {
        Some(g) if !g.is_empty() => g
            .split(',')
            .map(|g| id("group", g))
            .collect::<Result<_, _>>()?,
        _ => Vec::new(),
    };
    Ok(meta_core::Caller::with_groups(
        id("uid", uid)?,
        id("gid", gid)?,
        groups,
    ))
}

/// `ls -l` style mode string, e.g. `drwxr-sr-t`.
pub fn mode_string(typ: FileType, mode: u16) -> String {
    let t = match typ {
        FileType::Regular => '-',
        FileType::Directory => 'd',
        FileType::Symlink => 'l',
        FileType::Fifo => 'p',
        FileType::CharDevice => 'c',
        FileType::BlockDevice => 'b',
        FileType::Socket => 's',
    };
    let mut s = String::with_capacity(10);
    s.push(t);
    let bit = |b: u16, c: char| if mode & b != 0 { c } else { '-' };
    let special = |x: bool, special: bool, set: char, unset: char| match (x, special) {
        (true, true) => set,
        (false, true) => unset,
        (true, false) => 'x',
        (false, false) => '-',
    };
    s.push(bit(0o400, 'r'));
    s.push(bit(0o200, 'w'));
    s.push(special(mode & 0o100 != 0, mode & 0o4000 != 0, 's', 'S'));
    s.push(bit(0o040, 'r'));
    s.push(bit(0o020, 'w'));
    s.push(special(mode & 0o010 != 0, mode & 0o2000 != 0, 's', 'S'));
    s.push(bit(0o004, 'r'));
    s.push(bit(0o002, 'w'));
    s.push(special(mode & 0o001 != 0, mode & 0o1000 != 0, 't', 'T'));
    s
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A time as `YYYY-MM-DD hh:mm:ss.nnnnnnnnn +0000` (UTC), as `stat(1)` prints it.
pub fn fmt_time(t: Timespec) -> String {
    let days = t.sec.div_euclid(86_400);
    let secs = t.sec.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:09} +0000",
        secs / 3600,
        secs / 60 % 60,
        secs % 60,
        t.nsec
    )
}

/// A time as `YYYY-MM-DD hh:mm` (UTC), for `ls -l`.
pub fn fmt_time_short(t: Timespec) -> String {
    let full = fmt_time(t);
    full.get(..16).unwrap_or(&full).to_string()
}

/// A byte count for humans, e.g. `1.5 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The symbolic name of a Linux errno value, e.g. `"ENOENT"` for 2.
pub fn errno_name(code: i32) -> Option<&'static str> {
    Some(match code {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::EBADF => "EBADF",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::ESPIPE => "ESPIPE",
        libc::EROFS => "EROFS",
        libc::EMLINK => "EMLINK",
        libc::EPIPE => "EPIPE",
        libc::ERANGE => "ERANGE",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ELOOP => "ELOOP",
        libc::ENODATA => "ENODATA",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::EDQUOT => "EDQUOT",
        _ => return None,
    })
}

/// An `io::Error` as one line: its message with the errno name instead of `(os error N)`.
pub fn io_error_line(e: &std::io::Error) -> String {
    match e.raw_os_error() {
        Some(code) => {
            let text = e.to_string();
            let text = text
                .strip_suffix(&format!(" (os error {code})"))
                .unwrap_or(&text)
                .to_string();
            match errno_name(code) {
                Some(name) => format!("{text} ({name})"),
                None => format!("{text} (errno {code})"),
            }
        }
        None => e.to_string(),
    }
}

/// True when stderr is a terminal (progress bars are drawn only then).
pub fn stderr_is_tty() -> bool {
    std::io::stderr().is_terminal()
}

/// A spinner with a message and a counter, drawn on stderr only when it is a terminal.
pub fn spinner(template: &str) -> ProgressBar {
    if !stderr_is_tty() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(template) {
        pb.set_style(style);
    }
    pb.enable_steady_tick(Duration::from_millis(120));
    pb
}

/// A bar of `len` steps, drawn on stderr only when it is a terminal.
pub fn bar(len: u64) -> ProgressBar {
    if !stderr_is_tty() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{prefix:>8} [{bar:40}] {pos}/{len} {per_sec} {msg}")
    {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}

/// Prints a warning above the progress bar (or to stderr when the bar is hidden).
pub fn warn(pb: &ProgressBar, msg: &str) {
    if pb.is_hidden() {
        eprintln!("meta: warning: {msg}");
    } else {
        pb.println(format!("meta: warning: {msg}"));
    }
}

/// The bytes of an OS string (paths inside the volume are bytes, not UTF-8).
pub fn os_bytes(s: &OsStr) -> &[u8] {
    s.as_bytes()
}

/// Writes `name` as raw bytes.
pub fn write_name(out: &mut dyn Write, name: &[u8]) -> std::io::Result<()> {
    out.write_all(name)
}

/// Joins a volume path and a name with one `/`.
pub fn join(path: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = path.to_vec();
    if !p.ends_with(b"/") {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers() {
        assert_eq!(parse_caller("0:0"), Ok(meta_core::Caller::ROOT));
        let c = parse_caller("1000:100:4,27").unwrap_or_default();
        assert_eq!((c.uid, c.gid, c.groups), (1000, 100, vec![4, 27]));
        assert_eq!(parse_caller("5:6:").map(|c| c.groups.len()), Ok(0));
        for bad in ["", "1000", "x:1", "1:-2", "1:2:3,y", "4294967296:0"] {
            let e = parse_caller(bad).err().unwrap_or_default();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("123"), Ok(123));
        assert_eq!(parse_size("10G"), Ok(10 << 30));
        assert_eq!(parse_size("10GiB"), Ok(10 << 30));
        assert_eq!(parse_size("512m"), Ok(512 << 20));
        assert_eq!(parse_size("1.5K"), Ok(1536));
        assert!(parse_size("ten").is_err());
        assert!(parse_size("").is_err());
        assert!(parse_size("1X").is_err());
        assert!(parse_size("99999999999P").is_err());
        assert_eq!(parse_size("10KB"), Ok(10 << 10));
        assert_eq!(parse_size("10ki"), Ok(10 << 10));
        assert_eq!(parse_size("7b"), Ok(7));
        for bad in ["10iiii", "1bbbbb", "1ib", "1i", "0.0001K"] {
            assert!(parse_size(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(parse_size("0K"), Ok(0));
        assert_eq!(parse_count("10k"), Ok(10_000));
        assert_eq!(parse_count("7"), Ok(7));
        assert!(parse_count("x").is_err());
    }

    #[test]
    fn modes_and_times() {
        assert_eq!(mode_string(FileType::Directory, 0o755), "drwxr-xr-x");
        assert_eq!(mode_string(FileType::Regular, 0o4644), "-rwSr--r--");
        assert_eq!(mode_string(FileType::Directory, 0o3777), "drwxrwsrwt");
        assert_eq!(
            fmt_time(Timespec { sec: 0, nsec: 5 }),
            "1970-01-01 00:00:00.000000005 +0000"
        );
        assert_eq!(
            fmt_time(Timespec {
                sec: 1_700_000_000,
                nsec: 0
            }),
            "2023-11-14 22:13:20.000000000 +0000"
        );
        assert_eq!(
            fmt_time_short(Timespec { sec: -1, nsec: 0 }),
            "1969-12-31 23:59"
        );
        assert_eq!(human_bytes(10), "10 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(errno_name(2), Some("ENOENT"));
        let e = std::io::Error::from_raw_os_error(2);
        assert!(
            io_error_line(&e).ends_with("(ENOENT)"),
            "{}",
            io_error_line(&e)
        );
    }
}
