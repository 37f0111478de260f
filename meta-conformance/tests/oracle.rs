//! The permission oracle still holds: runs `oracle/permissions.py` (Linux's own answers for
//! the permission cases, measured by forking a child per case that drops to the case's user
//! and makes one syscall) on this machine's kernel and checks every row against
//! `oracle/permissions.tsv`, the table the conformance cases `perm::*` take their
//! expectations from. A kernel that answers differently fails here, naming the rows.
//!
//! Needs root (to switch users and to set `fs.protected_hardlinks` for the link rows, which
//! the script restores) and `python3`; without them it is skipped with a loud line, or fails
//! under `META_ORACLE_REQUIRE=1` (set by `cargo xtask test` as root).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// `row → (result, mode)` of the table's non-comment lines.
fn rows(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (row, rest) = l.split_once('\t').unwrap_or((l, ""));
            (row.to_string(), rest.to_string())
        })
        .collect()
}

fn skip_or_fail(why: &str) {
    if std::env::var("META_ORACLE_REQUIRE").is_ok_and(|v| !v.is_empty() && v != "0") {
        panic!(
            "the permission oracle cannot run: {why}, and META_ORACLE_REQUIRE=1 forbids skipping"
        );
    }
    eprintln!("SKIP permission oracle: {why} (set META_ORACLE_REQUIRE=1 to make this a failure)");
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .and_then(|l| l.split_whitespace().nth(2))
            == Some("0")
    })
}

#[test]
fn recorded_table_matches_this_kernel() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("oracle");
    let recorded = std::fs::read_to_string(dir.join("permissions.tsv")).expect("read the table");
    if !is_root() {
        return skip_or_fail("not root");
    }
    let out = match Command::new("python3")
        .arg(dir.join("permissions.py"))
        .output()
    {
        Ok(o) => o,
        Err(e) => return skip_or_fail(&format!("python3 cannot run: {e}")),
    };
    assert!(
        out.status.success(),
        "permissions.py failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let live = rows(&String::from_utf8_lossy(&out.stdout));
    let want = rows(&recorded);
    assert!(
        want.len() >= 80,
        "the recorded table has {} rows",
        want.len()
    );
    let differ: Vec<String> = want
        .iter()
        .filter(|(row, v)| live.get(*row) != Some(v))
        .map(|(row, v)| format!("{row}: recorded {v:?}, this kernel {:?}", live.get(row)))
        .chain(
            live.keys()
                .filter(|row| !want.contains_key(*row))
                .map(|row| format!("{row}: not recorded")),
        )
        .collect();
    assert!(
        differ.is_empty(),
        "this kernel answers differently from oracle/permissions.tsv:\n{}",
        differ.join("\n")
    );
}
