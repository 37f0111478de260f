//! Project automation, `cargo xtask <command>` (standard library only):
//!
//! - `test [--no-install]`: prerequisites (installed with apt-get when root), throw-away
//!   servers, `cargo test --workspace`, then the conformance matrix on every present
//!   backend; ends with a line `N passed, N failed`. The README's test command; `.ci/run`.
//! - `conformance [--backend LIST|all] [--no-start] [--keep-up]`: the conformance matrix.
//! - `services up|down [--backend LIST] [--state FILE]`: throw-away servers for manual work;
//!   `services exec [--backend LIST] -- CMD ARGS` runs one command with servers up.
//! - `bench [--matrix] [-- ARGS]`: prerequisites, then `meta bench` (release build).
//! - `bench-mount`: `tar -x` and `rm -rf` of 10,000 small files through `meta mount`
//!   (memory, RocksDB, Redis, PostgreSQL) next to the local disk and tmpfs.
//! - `pjdfstest [--backend LIST|all] [--verbose] [--engine-permissions]`: the POSIX test
//!   suite through `meta mount` on every backend (servers started as needed); a pass/fail
//!   table per backend. `--engine-permissions` mounts without `default_permissions`, so that
//!   what it judges is the engine's permission checks, not the kernel's.
//!
//! Child cargo processes get `CARGO_TARGET_DIR` (default `$HOME/.cache/meta-target`).

mod bench_mount;
mod conformance;
mod pjdfstest;
mod prereq;
mod services;
mod util;

use std::path::PathBuf;
use std::process::ExitCode;

use conformance::{BACKENDS, Backend, BackendRun, env_ok, parse_list, print_matrix, run_backend};
use services::{Kind, Services, Watchdog, default_state_file};
use util::{Result, cargo};

const USAGE: &str = "usage: cargo xtask <command>
  test [--no-install]                                  all tests + the conformance matrix (README, CI)
  conformance [--backend LIST|all] [--no-start] [--keep-up] [--tikv-pd HOST:PORT]
                                                       the conformance suite on every backend
  services up|down [--backend LIST] [--state FILE]     throw-away servers (prints export lines)
  services exec [--backend LIST] -- CMD [ARGS]         run CMD with servers up, then stop them
  bench [--matrix] [-- ARGS]                           `meta bench` on the embedded default
  bench-mount                                          tar -x / rm -rf through `meta mount` vs local disk
  pjdfstest [--backend LIST|all] [--verbose]           pjdfstest through `meta mount` per backend
            [--engine-permissions]                    ... mounted without default_permissions
                                                       (rocks, sqlite, redis, postgres, mysql)
backends: memory, rocks, sqlite, redis, redis-strict, redis-cluster, postgres, mysql, tikv";

/// Parsed flags: `--name value`, `--flag`, and everything after `--`.
#[derive(Debug, Default)]
struct Args {
    positional: Vec<String>,
    flags: Vec<(String, Option<String>)>,
    rest: Vec<String>,
}

impl Args {
    fn parse(args: &[String], with_value: &[&str]) -> Result<Args> {
        let mut a = Args::default();
        let mut it = args.iter();
        while let Some(arg) = it.next() {
            if arg == "--" {
                a.rest = it.by_ref().cloned().collect();
                break;
            }
            if let Some(name) = arg.strip_prefix("--") {
                let (name, inline) = match name.split_once('=') {
                    Some((n, v)) => (n.to_string(), Some(v.to_string())),
                    None => (name.to_string(), None),
                };
                let value = if with_value.contains(&name.as_str()) {
                    match inline {
                        Some(v) => Some(v),
                        None => Some(
                            it.next()
                                .cloned()
                                .ok_or_else(|| format!("--{name} needs a value"))?,
                        ),
                    }
                } else {
                    inline
                };
                a.flags.push((name, value));
            } else {
                a.positional.push(arg.clone());
            }
        }
        Ok(a)
    }

    fn has(&self, name: &str) -> bool {
        self.flags.iter().any(|(n, _)| n == name)
    }

    fn value(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| v.as_deref())
    }

    fn only(&self, allowed: &[&str]) -> Result<()> {
        for (n, _) in &self.flags {
            if !allowed.contains(&n.as_str()) {
                return Err(format!("unknown option --{n}\n{USAGE}"));
            }
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match dispatch(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("xtask: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn dispatch(args: &[String]) -> Result<ExitCode> {
    let Some(cmd) = args.first() else {
        println!("{USAGE}");
        return Ok(ExitCode::FAILURE);
    };
    let rest = &args[1..];
    match cmd.as_str() {
        "test" => cmd_test(&Args::parse(rest, &[])?),
        "conformance" => cmd_conformance(&Args::parse(rest, &["backend", "tikv-pd"])?),
        "services" => cmd_services(&Args::parse(rest, &["backend", "state"])?),
        "bench" => cmd_bench(&Args::parse(rest, &[])?),
        "pjdfstest" => cmd_pjdfstest(&Args::parse(rest, &["backend"])?),
        "bench-mount" => cmd_bench_mount(&Args::parse(rest, &[])?),
        "__watchdog" => {
            let parent: u32 = rest
                .first()
                .and_then(|p| p.parse().ok())
                .ok_or("__watchdog PID STATE")?;
            let state = rest.get(1).ok_or("__watchdog PID STATE")?;
            services::watchdog_main(parent, std::path::Path::new(state))?;
            Ok(ExitCode::SUCCESS)
        }
        "help" | "--help" | "-h" => {
            println!("{USAGE}");
            Ok(ExitCode::SUCCESS)
        }
        other => Err(format!("unknown command {other:?}\n{USAGE}")),
    }
}

/// The server kinds the given backends need.
fn kinds_for(backends: &[&Backend]) -> Vec<Kind> {
    let mut k: Vec<Kind> = backends.iter().filter_map(|b| b.service).collect();
    k.sort();
    k.dedup();
    k
}

fn cmd_services(a: &Args) -> Result<ExitCode> {
    a.only(&["backend", "state"])?;
    let state = a
        .value("state")
        .map(PathBuf::from)
        .unwrap_or_else(default_state_file);
    match a.positional.first().map(String::as_str) {
        Some("up") => {
            let (backends, _) = parse_list(a.value("backend"))?;
            let kinds = if a.value("backend").is_none() {
                Kind::ALL.to_vec()
            } else {
                kinds_for(&backends)
            };
            if kinds.is_empty() {
                eprintln!("xtask: the selected backends need no server");
                return Ok(ExitCode::SUCCESS);
            }
            let s = Services::start(&kinds, &state)?;
            for (k, v) in s.env() {
                println!("export {k}={v}");
            }
            eprintln!(
                "xtask: servers are up (state: {}); stop them with `cargo xtask services down`",
                s.state_file().display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Some("down") => {
            let pids = services::pids_from_state(&state).unwrap_or_default();
            let n = services::stop_from_state(&state)?;
            if n == 0 {
                eprintln!(
                    "xtask: nothing to stop ({} does not exist)",
                    state.display()
                );
            } else {
                eprintln!("xtask: stopped {n} server(s) (pids {pids:?})");
            }
            Ok(ExitCode::SUCCESS)
        }
        Some("exec") => {
            let (prog, args) = a
                .rest
                .split_first()
                .ok_or_else(|| format!("services exec needs `-- CMD [ARGS]`\n{USAGE}"))?;
            let (backends, _) = parse_list(a.value("backend"))?;
            let kinds = if a.value("backend").is_none() {
                Kind::ALL.to_vec()
            } else {
                kinds_for(&backends)
            };
            let mut servers = RunServers::start(&kinds, false)?;
            let status = std::process::Command::new(prog)
                .args(args)
                .envs(servers.env())
                .env("CARGO_TARGET_DIR", util::target_dir())
                .status()
                .map_err(|e| format!("cannot run {prog}: {e}"));
            servers.stop()?;
            Ok(if status?.success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        _ => Err(format!("services needs `up`, `down` or `exec`\n{USAGE}")),
    }
}

/// Servers started for one run, stopped on drop (and by the watchdog if we die).
struct RunServers {
    services: Option<Services>,
    watchdog: Option<Watchdog>,
    keep: bool,
}

impl RunServers {
    fn start(kinds: &[Kind], keep: bool) -> Result<RunServers> {
        if kinds.is_empty() {
            return Ok(RunServers {
                services: None,
                watchdog: None,
                keep,
            });
        }
        let state = if keep {
            default_state_file()
        } else {
            std::env::temp_dir().join(format!("meta-xtask-run-{}.state", std::process::id()))
        };
        let watchdog = if keep {
            None
        } else {
            Some(Watchdog::spawn(&state)?)
        };
        match Services::start(kinds, &state) {
            Ok(s) => Ok(RunServers {
                services: Some(s),
                watchdog,
                keep,
            }),
            Err(e) => {
                if let Some(w) = watchdog {
                    w.dismiss();
                }
                Err(e)
            }
        }
    }

    fn env(&self) -> Vec<(String, String)> {
        self.services
            .as_ref()
            .map(|s| s.env().to_vec())
            .unwrap_or_default()
    }

    fn stop(&mut self) -> Result<()> {
        let r = match self.services.take() {
            Some(s) if self.keep => {
                eprintln!("\nxtask: servers kept up (--keep-up):");
                for (k, v) in s.env() {
                    eprintln!("  export {k}={v}");
                }
                eprintln!("  stop them with `cargo xtask services down`");
                Ok(())
            }
            Some(s) => {
                let r = s.stop();
                if r.is_ok() {
                    eprintln!("xtask: servers stopped");
                }
                r
            }
            None => Ok(()),
        };
        if let Some(w) = self.watchdog.take() {
            w.dismiss();
        }
        r
    }
}

impl Drop for RunServers {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            eprintln!("xtask: stopping servers: {e}");
        }
    }
}

/// Runs the matrix over `selected` (servers started unless `no_start`, `extra` env vars
/// added); returns one run per backend.
fn matrix(
    selected: &[&'static Backend],
    explicit: bool,
    no_start: bool,
    keep: bool,
    extra: &[(String, String)],
) -> Result<Vec<(&'static Backend, BackendRun)>> {
    let mut plan: Vec<(&'static Backend, Option<BackendRun>)> = Vec::new();
    for &b in selected {
        if !b.present() {
            let note = if conformance::crate_exists(b.krate) {
                format!("{} has no tests/{}.rs", b.krate, b.test)
            } else {
                format!("crate {} not in the workspace", b.krate)
            };
            plan.push((
                b,
                Some(BackendRun::absent(format!("not present: {note}"), explicit)),
            ));
        } else {
            plan.push((b, None));
        }
    }
    let to_run: Vec<&Backend> = plan
        .iter()
        .filter(|(_, r)| r.is_none())
        .map(|(b, _)| *b)
        .collect();
    let mut servers = if no_start {
        None
    } else {
        Some(RunServers::start(&kinds_for(&to_run), keep)?)
    };
    let mut env = servers.as_ref().map(RunServers::env).unwrap_or_default();
    if no_start {
        // Servers from `cargo xtask services up`, if any (the process env wins).
        env = services::env_from_state(&default_state_file())
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| std::env::var_os(k).is_none())
            .collect();
    }
    env.extend(extra.iter().cloned());
    let mut runs = Vec::new();
    for (b, pre) in plan {
        let r = match pre {
            Some(r) => r,
            None => match env_ok(b, &env) {
                Ok(()) => run_backend(b, &env),
                Err(why) => BackendRun::not_run(
                    format!(
                        "skipped: {why}{}",
                        if no_start { " (--no-start)" } else { "" }
                    ),
                    explicit,
                ),
            },
        };
        runs.push((b, r));
    }
    if let Some(s) = servers.as_mut() {
        s.stop()?;
    }
    Ok(runs)
}

fn cmd_conformance(a: &Args) -> Result<ExitCode> {
    a.only(&["backend", "no-start", "keep-up", "tikv-pd"])?;
    let extra: Vec<(String, String)> = a
        .value("tikv-pd")
        .map(|pd| vec![("META_TEST_TIKV_PD".to_string(), pd.to_string())])
        .unwrap_or_default();
    let (selected, explicit) = parse_list(a.value("backend"))?;
    let runs = matrix(
        &selected,
        explicit,
        a.has("no-start"),
        a.has("keep-up"),
        &extra,
    )?;
    let (passed, failed) = print_matrix(&runs);
    let bad = runs.iter().filter(|(_, r)| r.failure).count();
    println!("{passed} passed, {failed} failed");
    Ok(if bad == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Sums the `test result:` lines of cargo test output.
fn sum_results(out: &str) -> (usize, usize) {
    let mut p = 0;
    let mut f = 0;
    for line in out.lines() {
        if let Some(rest) = line.strip_prefix("test result: ") {
            for part in rest.split(';') {
                let part = part
                    .trim()
                    .trim_start_matches("ok.")
                    .trim_start_matches("FAILED.")
                    .trim();
                if let Some(n) = part.strip_suffix(" passed") {
                    p += n.trim().parse::<usize>().unwrap_or(0);
                } else if let Some(n) = part.strip_suffix(" failed") {
                    f += n.trim().parse::<usize>().unwrap_or(0);
                }
            }
        }
    }
    (p, f)
}

fn cmd_test(a: &Args) -> Result<ExitCode> {
    a.only(&["no-install"])?;
    prereq::ensure(true, !a.has("no-install"))?;
    // Servers first, for every backend crate in the workspace, so that each crate's own
    // server tests can use them too.
    let members: Vec<&'static Backend> = BACKENDS.iter().filter(|b| b.crate_member()).collect();
    let mut servers = RunServers::start(&kinds_for(&members), false)?;
    let env = servers.env();
    eprintln!(
        "xtask: cargo test --workspace -- --skip conformance:: (the suite runs in the matrix)"
    );
    let mut cmd = cargo();
    cmd.args(["test", "--workspace", "--", "--skip", "conformance::"])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdout(std::process::Stdio::piped());
    if util::is_root() {
        // As root the prerequisites above include FUSE and the programs the `meta mount`
        // tests run: those tests must run, not skip.
        cmd.env("META_MOUNT_TESTS_REQUIRE", "1");
        // ... and the permission oracle must run against this kernel.
        cmd.env("META_ORACLE_REQUIRE", "1");
    }
    let mut child = cmd.spawn().map_err(|e| format!("cannot run cargo: {e}"))?;
    let mut captured = String::new();
    if let Some(out) = child.stdout.take() {
        use std::io::BufRead;
        for line in std::io::BufReader::new(out)
            .lines()
            .map_while(std::result::Result::ok)
        {
            println!("{line}");
            captured.push_str(&line);
            captured.push('\n');
        }
    }
    let ws_ok = child.wait().map(|s| s.success()).unwrap_or(false);
    let (ws_passed, ws_failed) = sum_results(&captured);
    let variants = check_feature_variants();
    // The matrix reuses the running servers.
    let mut runs = Vec::new();
    for b in BACKENDS {
        let r = if !b.present() {
            BackendRun::absent("not present", false)
        } else {
            match env_ok(b, &env) {
                Ok(()) => run_backend(b, &env),
                Err(why) => BackendRun::not_run(format!("skipped: {why}"), false),
            }
        };
        runs.push((b, r));
    }
    // pjdfstest through `meta mount` on the embedded default and two server backends, then
    // mounted without default_permissions on the embedded default and Redis (the Rust and
    // the Lua copy of the permission rules), so that it judges the engine's checks.
    let pjd_runs = run_pjdfstest(
        &pjdfstest::parse_list(Some("rocks,redis,postgres"))?,
        &env,
        false,
        false,
    );
    let pjd_engine = run_pjdfstest(
        &pjdfstest::parse_list(Some("rocks,redis"))?,
        &env,
        false,
        true,
    );
    servers.stop()?;
    let (m_passed, m_failed) = print_matrix(&runs);
    let (mut p_passed, mut p_failed) = (0, 0);
    for (runs, title) in [
        (&pjd_runs, ""),
        (&pjd_engine, ", engine permissions (no default_permissions)"),
    ] {
        let (p, f) = match runs {
            Ok(r) => pjdfstest::print_table(r, title),
            Err(e) => {
                println!("pjdfstest{title} could not run (counted as one failure): {e}");
                (0, 1)
            }
        };
        p_passed += p;
        p_failed += f;
    }
    let v_failed = print_feature_variants(&variants);
    let v_passed = variants.len() - v_failed;
    let matrix_bad = runs.iter().any(|(_, r)| r.failure) || p_failed > 0 || v_failed > 0;
    if !ws_ok {
        println!("cargo test --workspace failed");
    }
    // Whole-run failures (a build error, a backend that reported no test) count as one each.
    let broken = usize::from(!ws_ok && ws_failed == 0)
        + runs
            .iter()
            .filter(|(_, r)| r.failure && r.totals().1 == 0)
            .count();
    println!(
        "{} passed, {} failed",
        ws_passed + m_passed + p_passed + v_passed,
        ws_failed + m_failed + broken + p_failed + v_failed
    );
    Ok(if ws_ok && !matrix_bad {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Feature sets a user of the crates may build that the workspace build never does (it
/// unifies features: meta-cli turns on every backend of meta-sql and TLS in meta-redis):
/// `(crate, features)`, each checked with `--no-default-features` and all targets.
const FEATURE_VARIANTS: [(&str, &str); 5] = [
    ("meta-sql", "sqlite"),
    ("meta-sql", "postgres"),
    ("meta-sql", "mysql"),
    ("meta-redis", ""),
    ("meta-cli", "rocksdb"),
];

/// `cargo check` of each of [`FEATURE_VARIANTS`]: `(variant, error output or None)`.
fn check_feature_variants() -> Vec<(String, Option<String>)> {
    FEATURE_VARIANTS
        .iter()
        .map(|(krate, features)| {
            let name = format!("{krate} --no-default-features --features '{features}'");
            eprintln!("xtask: cargo check -p {name} --all-targets");
            let out = cargo()
                .args(["check", "--quiet", "--all-targets", "-p", krate])
                .args(["--no-default-features", "--features", features])
                .output();
            let err = match out {
                Ok(o) if o.status.success() => None,
                Ok(o) => Some(String::from_utf8_lossy(&o.stderr).into_owned()),
                Err(e) => Some(format!("cannot run cargo: {e}")),
            };
            (name, err)
        })
        .collect()
}

/// Prints one line per feature variant (with the compiler's output of a failed one) and
/// returns how many failed.
fn print_feature_variants(variants: &[(String, Option<String>)]) -> usize {
    println!("feature variants (cargo check):");
    let mut failed = 0;
    for (name, err) in variants {
        match err {
            None => println!("  ok      {name}"),
            Some(e) => {
                failed += 1;
                println!("  FAILED  {name}\n{e}");
            }
        }
    }
    failed
}

/// Builds `meta`, installs pjdfstest if needed, and runs it on each backend.
fn run_pjdfstest(
    backends: &[&'static pjdfstest::PjdBackend],
    env: &[(String, String)],
    verbose: bool,
    engine_permissions: bool,
) -> Result<Vec<(&'static pjdfstest::PjdBackend, pjdfstest::PjdRun)>> {
    if !util::is_root() {
        return Err("pjdfstest mounts FUSE filesystems and switches users: run as root".into());
    }
    let meta = pjdfstest::build_meta()?;
    let pjd = pjdfstest::ensure_binary()?;
    let mut runs = Vec::new();
    for &b in backends {
        eprintln!("xtask: pjdfstest on {}", b.name);
        runs.push((
            b,
            pjdfstest::run_one(b, &meta, &pjd, env, verbose, engine_permissions),
        ));
    }
    Ok(runs)
}

fn cmd_pjdfstest(a: &Args) -> Result<ExitCode> {
    a.only(&["backend", "verbose", "engine-permissions"])?;
    prereq::ensure(true, true)?;
    let backends = pjdfstest::parse_list(a.value("backend"))?;
    let mut kinds: Vec<Kind> = backends.iter().filter_map(|b| b.service).collect();
    kinds.sort();
    kinds.dedup();
    let mut servers = RunServers::start(&kinds, false)?;
    let env = servers.env();
    let runs = run_pjdfstest(
        &backends,
        &env,
        a.has("verbose"),
        a.has("engine-permissions"),
    );
    servers.stop()?;
    let runs = runs?;
    let title = if a.has("engine-permissions") {
        ", engine permissions (no default_permissions)"
    } else {
        ""
    };
    let (_, failed) = pjdfstest::print_table(&runs, title);
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn cmd_bench_mount(a: &Args) -> Result<ExitCode> {
    a.only(&[])?;
    prereq::ensure(true, true)?;
    if !util::is_root() {
        return Err("bench-mount mounts FUSE filesystems: run as root".into());
    }
    let mut servers = RunServers::start(&[Kind::Redis, Kind::Postgres], false)?;
    let env = servers.env();
    let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let mut vols = Vec::new();
    if let Some(u) = get("META_TEST_REDIS_URL") {
        vols.push(("redis".to_string(), format!("{u}?prefix=benchmount")));
    }
    if let Some(u) = get("META_TEST_POSTGRES_URL") {
        vols.push((
            "postgres".to_string(),
            format!("{u}?table_prefix=benchmount_"),
        ));
    }
    let rows = bench_mount::run_bench(&vols);
    servers.stop()?;
    bench_mount::print(&rows?);
    Ok(ExitCode::SUCCESS)
}

fn cmd_bench(a: &Args) -> Result<ExitCode> {
    a.only(&["matrix"])?;
    prereq::ensure(false, true)?;
    let runs: Vec<Vec<String>> = if a.has("matrix") {
        // The RocksDB matrix of docs/benchmarks.md: sync on and off, 16 tasks, batched vs not.
        let dir = std::env::temp_dir().join(format!("meta-bench-{}", std::process::id()));
        ["true", "false"]
            .iter()
            .map(|sync| {
                let mut v = vec![
                    "--url".to_string(),
                    format!("rocksdb://{}/sync-{sync}?sync={sync}", dir.display()),
                    "bench".into(),
                    "--tasks".into(),
                    "16".into(),
                    "--compare".into(),
                ];
                v.extend(a.rest.iter().cloned());
                v
            })
            .collect()
    } else {
        let mut v = vec!["bench".to_string()];
        v.extend(a.rest.iter().cloned());
        vec![v]
    };
    let mut ok = true;
    for args in runs {
        eprintln!(
            "xtask: cargo run --release -p meta-cli -- {}",
            args.join(" ")
        );
        let st = cargo()
            .args(["run", "--release", "-p", "meta-cli", "--"])
            .args(&args)
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        ok &= st.success();
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_parse_flags_values_and_rest() {
        let v: Vec<String> = [
            "--backend",
            "memory,rocks",
            "--no-start",
            "--state=/x",
            "up",
            "--",
            "--files",
            "9",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let a = Args::parse(&v, &["backend", "state"]).unwrap_or_default();
        assert_eq!(a.value("backend"), Some("memory,rocks"));
        assert_eq!(a.value("state"), Some("/x"));
        assert!(a.has("no-start"));
        assert_eq!(a.positional, ["up"]);
        assert_eq!(a.rest, ["--files", "9"]);
        assert!(a.only(&["backend"]).is_err());
        assert!(Args::parse(&["--backend".to_string()], &["backend"]).is_err());
    }

    #[test]
    fn sums_cargo_results() {
        let out = "test result: ok. 12 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out\n\
                   test result: FAILED. 3 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out\n";
        assert_eq!(sum_results(out), (15, 2));
    }
}
