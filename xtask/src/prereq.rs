//! Prerequisites of the build and the tests: libclang (RocksDB's bindgen) and the server
//! packages. Installs missing ones with apt-get when running as root; otherwise prints the
//! exact command and stops.

use std::path::Path;
use std::process::Command;

use crate::services::postgres_bin;
use crate::util::{Result, is_root, which};

/// One missing thing and the Debian package that provides it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Missing {
    /// What is missing (for the message).
    pub what: String,
    /// The Debian package to install.
    pub package: &'static str,
}

/// True when a libclang shared library is installed where bindgen (clang-sys) looks.
pub fn libclang_present() -> bool {
    if let Some(dir) = std::env::var_os("LIBCLANG_PATH")
        && has_libclang(Path::new(&dir))
    {
        return true;
    }
    let mut dirs: Vec<std::path::PathBuf> = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("llvm-"))
        .map(|e| e.path().join("lib"))
        .collect();
    dirs.extend(
        [
            "/usr/lib/x86_64-linux-gnu",
            "/usr/lib/aarch64-linux-gnu",
            "/usr/lib64",
            "/usr/local/lib",
        ]
        .map(Into::into),
    );
    dirs.iter().any(|d| has_libclang(d))
}

fn has_libclang(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("libclang") && n.contains(".so") && !n.starts_with("libclang-cpp")
        })
}

/// What the build needs (libclang) and, with `servers`, what the tests need.
pub fn missing(servers: bool) -> Vec<Missing> {
    let mut out = Vec::new();
    if !libclang_present() {
        out.push(Missing {
            what: "libclang (RocksDB's bindgen)".into(),
            package: "libclang-dev",
        });
    }
    // etcd-client's build script compiles etcd's .proto files.
    if which("protoc").is_none() {
        out.push(Missing {
            what: "protoc (etcd-client's build script)".into(),
            package: "protobuf-compiler",
        });
    }
    if servers {
        for (bin, package) in [
            ("redis-server", "redis-server"),
            ("redis-cli", "redis-tools"),
            ("mariadbd", "mariadb-server"),
            ("mariadb-install-db", "mariadb-server"),
            ("mariadb-admin", "mariadb-client"),
            ("etcd", "etcd-server"),
        ] {
            if which(bin).is_none() {
                out.push(Missing {
                    what: bin.into(),
                    package,
                });
            }
        }
        if postgres_bin().is_err() {
            out.push(Missing {
                what: "PostgreSQL server (initdb, pg_ctl)".into(),
                package: "postgresql",
            });
        }
        // `meta mount` tests: FUSE, pjdfstest (built against libacl), real programs.
        for (what, package) in crate::pjdfstest::tools_missing() {
            out.push(Missing {
                what: what.into(),
                package,
            });
        }
        // ... and python3 for the permission oracle (meta-conformance/tests/oracle.rs).
        for (bin, package) in [
            ("git", "git"),
            ("sqlite3", "sqlite3"),
            ("rsync", "rsync"),
            ("python3", "python3"),
        ] {
            if which(bin).is_none() {
                out.push(Missing {
                    what: bin.into(),
                    package,
                });
            }
        }
    }
    out
}

/// The apt-get command line that installs `packages`.
pub fn apt_command(packages: &[&str]) -> String {
    format!(
        "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y {}",
        packages.join(" ")
    )
}

/// Makes sure the prerequisites are there: installs missing packages when root, else
/// fails with the exact command to run.
pub fn ensure(servers: bool, install: bool) -> Result<()> {
    let miss = missing(servers);
    if miss.is_empty() {
        return Ok(());
    }
    let mut packages: Vec<&str> = miss.iter().map(|m| m.package).collect();
    packages.sort();
    packages.dedup();
    let what: Vec<String> = miss.iter().map(|m| m.what.clone()).collect();
    let cmd = apt_command(&packages);
    if !install || !is_root() {
        return Err(format!(
            "missing: {}.\nInstall them as root with:\n  {cmd}",
            what.join(", ")
        ));
    }
    eprintln!("xtask: missing {}; installing: {cmd}", what.join(", "));
    let st = Command::new("sh")
        .arg("-c")
        .arg(&cmd)
        .status()
        .map_err(|e| format!("cannot run apt-get: {e}"))?;
    if !st.success() {
        return Err(format!("`{cmd}` failed ({st})"));
    }
    let still = missing(servers);
    if !still.is_empty() {
        return Err(format!(
            "still missing after apt-get: {}",
            still
                .iter()
                .map(|m| m.what.clone())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apt_command_is_exact() {
        assert_eq!(
            apt_command(&["libclang-dev", "redis-server"]),
            "apt-get update && DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y libclang-dev redis-server"
        );
    }
}
