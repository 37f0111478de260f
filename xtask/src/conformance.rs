//! `cargo xtask conformance`: runs the shared suite on every backend of the workspace and
//! prints a backend × case-group matrix.
//!
//! Convention for backend crates (see `docs/plugin-authors.md`): the suite runs from an
//! integration test target that invokes `meta_conformance::conformance_tests!`, whose tests
//! are named `group::case`. A backend is *present* when its crate is a workspace member and
//! its test file exists.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::Stdio;

use crate::services::Kind;
use crate::util::{Result, cargo, workspace_root};

/// One backend the suite can run on.
#[derive(Debug, Clone, Copy)]
pub struct Backend {
    /// The `--backend` name.
    pub name: &'static str,
    /// The crate that hosts its conformance test.
    pub krate: &'static str,
    /// Its integration test target (`tests/<test>.rs`).
    pub test: &'static str,
    /// The server it needs, if any.
    pub service: Option<Kind>,
    /// An env var the tests need that xtask cannot provide (TiKV: PD addresses).
    pub needs_env: Option<&'static str>,
}

/// Every backend, in matrix order. Add a row when a backend crate lands.
pub const BACKENDS: &[Backend] = &[
    Backend {
        name: "memory",
        krate: "meta-conformance",
        test: "memory",
        service: None,
        needs_env: None,
    },
    Backend {
        name: "rocks",
        krate: "meta-rocks",
        test: "conformance",
        service: None,
        needs_env: None,
    },
    Backend {
        name: "sqlite",
        krate: "meta-sql",
        test: "conformance_sqlite",
        service: None,
        needs_env: None,
    },
    Backend {
        name: "redis",
        krate: "meta-redis",
        test: "conformance",
        service: Some(Kind::Redis),
        needs_env: None,
    },
    Backend {
        name: "redis-strict",
        krate: "meta-redis",
        test: "conformance_strict",
        service: Some(Kind::Redis),
        needs_env: None,
    },
    Backend {
        name: "redis-cluster",
        krate: "meta-redis",
        test: "conformance_cluster",
        service: Some(Kind::RedisCluster),
        needs_env: None,
    },
    Backend {
        name: "postgres",
        krate: "meta-sql",
        test: "conformance_postgres",
        service: Some(Kind::Postgres),
        needs_env: None,
    },
    Backend {
        name: "mysql",
        krate: "meta-sql",
        test: "conformance_mysql",
        service: Some(Kind::Mysql),
        needs_env: None,
    },
    Backend {
        name: "etcd",
        krate: "meta-etcd",
        test: "conformance",
        service: Some(Kind::Etcd),
        needs_env: None,
    },
    Backend {
        name: "tikv",
        krate: "meta-tikv",
        test: "conformance",
        service: None,
        needs_env: Some("META_TEST_TIKV_PD"),
    },
];

/// Finds a backend by name.
pub fn backend(name: &str) -> Option<&'static Backend> {
    BACKENDS.iter().find(|b| b.name == name)
}

/// The workspace members, from the root `Cargo.toml`'s `members = [...]`.
fn members() -> BTreeSet<String> {
    let text = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap_or_default();
    let Some(start) = text.find("members") else {
        return BTreeSet::new();
    };
    let rest = &text[start..];
    let (Some(open), Some(close)) = (rest.find('['), rest.find(']')) else {
        return BTreeSet::new();
    };
    rest[open + 1..close]
        .split(',')
        .map(|m| m.trim().trim_matches('"').to_string())
        .filter(|m| !m.is_empty())
        .collect()
}

impl Backend {
    /// True when its crate is a workspace member (its own tests may need its server even
    /// before its conformance test exists).
    pub fn crate_member(&self) -> bool {
        members().contains(self.krate)
    }

    /// True when the crate is a workspace member and has the test file.
    pub fn present(&self) -> bool {
        self.crate_member()
            && workspace_root()
                .join(self.krate)
                .join("tests")
                .join(format!("{}.rs", self.test))
                .exists()
    }
}

/// Parses `--backend LIST|all`; `None` = all. Unknown names are errors.
pub fn parse_list(list: Option<&str>) -> Result<(Vec<&'static Backend>, bool)> {
    match list {
        None | Some("all") => Ok((BACKENDS.iter().collect(), false)),
        Some(l) => {
            let mut out = Vec::new();
            for name in l.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                let b = backend(name).ok_or_else(|| {
                    format!(
                        "unknown backend {name:?}; known: {}, all",
                        BACKENDS
                            .iter()
                            .map(|b| b.name)
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                })?;
                out.push(b);
            }
            Ok((out, true))
        }
    }
}

/// Outcome of one test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Passed,
    Failed,
    Ignored,
}

/// What happened to one backend.
#[derive(Debug, Default)]
pub struct BackendRun {
    /// Per group: passed, failed, ignored.
    groups: BTreeMap<String, (usize, usize, usize)>,
    /// Failed test names.
    failed: Vec<String>,
    /// Why it did not run, or why the run failed as a whole.
    note: Option<String>,
    /// Whether the backend counts as failed.
    pub failure: bool,
    /// Whether it ran at all.
    ran: bool,
    /// Not run because the backend is not in the workspace.
    absent: bool,
}

impl BackendRun {
    /// A backend that did not run, with the reason; `failure` when that counts as failed.
    pub fn not_run(note: impl Into<String>, failure: bool) -> Self {
        BackendRun {
            note: Some(note.into()),
            failure,
            ..Default::default()
        }
    }

    /// A backend that is not in the workspace (a failure only when explicitly requested).
    pub fn absent(note: impl Into<String>, failure: bool) -> Self {
        BackendRun {
            absent: true,
            ..Self::not_run(note, failure)
        }
    }

    /// Tests passed, failed.
    pub fn totals(&self) -> (usize, usize) {
        self.groups
            .values()
            .fold((0, 0), |(p, f), (gp, gf, _)| (p + gp, f + gf))
    }
}

/// The group of a test name `[module::]group::case`; `other` without a `::`.
fn group_of(test: &str) -> String {
    let parts: Vec<&str> = test.split("::").collect();
    if parts.len() >= 2 {
        parts[parts.len() - 2].to_string()
    } else {
        "other".to_string()
    }
}

/// Parses one libtest line `test NAME ... ok|FAILED|ignored`.
fn parse_test_line(line: &str) -> Option<(String, Status)> {
    let rest = line.strip_prefix("test ")?;
    let (name, result) = rest.split_once(" ... ")?;
    let status = match result.trim() {
        "ok" => Status::Passed,
        "FAILED" => Status::Failed,
        r if r.starts_with("ignored") => Status::Ignored,
        _ => return None,
    };
    Some((name.trim().to_string(), status))
}

/// Runs `cargo test -p CRATE --test TEST` with `env`, streaming its output, and collects
/// per-test results.
pub fn run_backend(b: &Backend, env: &[(String, String)]) -> BackendRun {
    eprintln!(
        "\nxtask: conformance on {} (cargo test -p {} --test {})",
        b.name, b.krate, b.test
    );
    let mut cmd = cargo();
    cmd.args(["test", "-p", b.krate, "--test", b.test])
        .env("META_CONFORMANCE_REQUIRE", "1")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return BackendRun::not_run(format!("cannot run cargo: {e}"), true),
    };
    let mut run = BackendRun {
        ran: true,
        ..Default::default()
    };
    if let Some(out) = child.stdout.take() {
        let stdout = std::io::stdout();
        for line in BufReader::new(out)
            .lines()
            .map_while(std::result::Result::ok)
        {
            {
                let mut o = stdout.lock();
                let _ = writeln!(o, "{line}");
            }
            if let Some((name, status)) = parse_test_line(&line) {
                let g = run.groups.entry(group_of(&name)).or_default();
                match status {
                    Status::Passed => g.0 += 1,
                    Status::Failed => {
                        g.1 += 1;
                        run.failed.push(name);
                    }
                    Status::Ignored => g.2 += 1,
                }
            }
        }
    }
    let status = child.wait();
    let ok = status.as_ref().is_ok_and(|s| s.success());
    let (passed, failed) = run.totals();
    if !ok && failed == 0 {
        run.note = Some(format!(
            "cargo test failed before reporting a test failure ({}): build error?",
            status
                .map(|s| s.to_string())
                .unwrap_or_else(|e| e.to_string())
        ));
        run.failure = true;
    } else if passed + failed == 0 {
        run.note = Some("no test ran".into());
        run.failure = true;
    }
    run.failure |= failed > 0;
    run
}

/// The `META_TEST_*` URL a backend needs and whether it is available.
pub fn env_ok(b: &Backend, env: &[(String, String)]) -> std::result::Result<(), String> {
    let var = match (b.service, b.needs_env) {
        (Some(k), _) => k.env_var(),
        (None, Some(v)) => v,
        (None, None) => return Ok(()),
    };
    let set = env.iter().any(|(k, v)| k == var && !v.is_empty())
        || std::env::var(var).is_ok_and(|v| !v.is_empty());
    if set {
        Ok(())
    } else {
        Err(format!("{var} is not set"))
    }
}

/// Prints the matrix (backend × group) and the failing tests; returns (passed, failed).
pub fn print_matrix(runs: &[(&Backend, BackendRun)]) -> (usize, usize) {
    let groups: BTreeSet<String> = runs
        .iter()
        .flat_map(|(_, r)| r.groups.keys().cloned())
        .collect();
    let name_w = runs
        .iter()
        .map(|(b, _)| b.name.len())
        .max()
        .unwrap_or(7)
        .max(7);
    let cells: Vec<Vec<String>> = runs
        .iter()
        .map(|(_, r)| {
            groups
                .iter()
                .map(|g| match r.groups.get(g) {
                    Some((p, 0, 0)) => format!("{p} ok"),
                    Some((p, 0, i)) => format!("{p} ok {i} ign"),
                    Some((p, f, _)) => format!("{f}/{} FAIL", p + f),
                    None if r.ran => "-".into(),
                    None => String::new(),
                })
                .collect()
        })
        .collect();
    let widths: Vec<usize> = groups
        .iter()
        .enumerate()
        .map(|(i, g)| {
            cells
                .iter()
                .map(|c| c[i].len())
                .max()
                .unwrap_or(0)
                .max(g.len())
        })
        .collect();
    let mut out = String::new();
    out.push_str("\n== conformance matrix (backend × group: passed / failed) ==\n");
    out.push_str(&format!("{:name_w$}  {:8}", "backend", "result"));
    for (g, w) in groups.iter().zip(&widths) {
        out.push_str(&format!("  {g:w$}"));
    }
    out.push('\n');
    let (mut tp, mut tf) = (0, 0);
    for ((b, r), row) in runs.iter().zip(&cells) {
        let (p, f) = r.totals();
        tp += p;
        tf += f;
        let result = if r.absent {
            if r.failure { "MISSING" } else { "absent" }
        } else if !r.ran {
            if r.failure { "NOT RUN" } else { "skipped" }
        } else if r.failure {
            "FAIL"
        } else {
            "ok"
        };
        out.push_str(&format!("{:name_w$}  {result:8}", b.name));
        if r.ran {
            for (c, w) in row.iter().zip(&widths) {
                out.push_str(&format!("  {c:w$}"));
            }
        }
        if let Some(n) = &r.note {
            out.push_str(&format!("  ({n})"));
        }
        let trimmed = out.trim_end().len();
        out.truncate(trimmed);
        out.push('\n');
    }
    let failing: Vec<String> = runs
        .iter()
        .flat_map(|(b, r)| r.failed.iter().map(move |t| format!("  {}: {t}", b.name)))
        .collect();
    if !failing.is_empty() {
        out.push_str("\nfailing cases:\n");
        out.push_str(&failing.join("\n"));
        out.push('\n');
    }
    print!("{out}");
    let _ = std::io::stdout().flush();
    (tp, tf)
}

/// Whether a crate path exists (for messages).
pub fn crate_exists(krate: &str) -> bool {
    Path::new(&workspace_root())
        .join(krate)
        .join("Cargo.toml")
        .exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_libtest_lines() {
        assert_eq!(
            parse_test_line("test rename::exchange ... ok"),
            Some(("rename::exchange".into(), Status::Passed))
        );
        assert_eq!(
            parse_test_line("test postgres::errno::mknod ... FAILED"),
            Some(("postgres::errno::mknod".into(), Status::Failed))
        );
        assert_eq!(
            parse_test_line("test a::b ... ignored, needs a server"),
            Some(("a::b".into(), Status::Ignored))
        );
        assert_eq!(parse_test_line("test result: ok. 3 passed"), None);
        assert_eq!(parse_test_line("running 3 tests"), None);
    }

    #[test]
    fn groups_are_the_second_to_last_component() {
        assert_eq!(group_of("rename::exchange"), "rename");
        assert_eq!(group_of("postgres::rename::exchange"), "rename");
        assert_eq!(group_of("lonely"), "other");
    }

    #[test]
    fn backend_lists() {
        let (all, explicit) = parse_list(None).unwrap_or_default();
        assert_eq!(all.len(), BACKENDS.len());
        assert!(!explicit);
        let (two, explicit) = parse_list(Some("memory,rocks")).unwrap_or_default();
        assert_eq!(
            two.iter().map(|b| b.name).collect::<Vec<_>>(),
            ["memory", "rocks"]
        );
        assert!(explicit);
        assert!(parse_list(Some("nope")).is_err());
        assert!(backend("memory").is_some_and(Backend::present));
    }

    #[test]
    fn matrix_counts() {
        let mut r = BackendRun {
            ran: true,
            ..Default::default()
        };
        r.groups.insert("rename".into(), (3, 1, 0));
        r.groups.insert("errno".into(), (5, 0, 0));
        assert_eq!(r.totals(), (8, 1));
    }
}
