//! The Lua library and how it is called.
//!
//! One library, assembled from `lua/base.lua`, the shared op code ([`LIB_PARTS`]:
//! `lua/lib.lua`, `perm.lua`, `stats.lua`, `quota.lua`, `files.lua`), `lua/ops/*.lua`,
//! `lua/batch.lua` and `lua/reads.lua`, has four entry points ([`Entry`]): `batch` (every
//! mutating op), `format`, and the read-only `lookup` and `readdir_plus`. It reaches the
//! server in one of two ways ([`Scripting`]):
//!
//! - **Redis Functions** (Redis ≥ 7.0): `FUNCTION LOAD` once per server (on a Cluster, on
//!   every primary; functions are replicated and persisted with the data; a library of the
//!   same name is the same code and stays), then `FCALL` / `FCALL_RO`. The library's code
//!   runs once at load; a call runs only its entry point, and what the library keeps from
//!   call to call (`lua/stats.lua`'s `stats_load`) lives as long as it is loaded.
//! - **Scripts**: one script per entry point (`SCRIPT LOAD`, `EVALSHA`), for servers without
//!   Functions. Every call re-runs its script's definitions (for `batch`, the whole library:
//!   ≈ 2–3 µs of server time per call, shared by the ops of the batch).
//!
//! The library's name carries a hash of its code (`meta_<12 hex digits>`), so clients of
//! different versions share a server without replacing each other's functions.

use redis::Script;

use crate::spec::OPS;

const BASE: &str = include_str!("../lua/base.lua");
/// The code the op bodies share, `(file, source)`, in the order it is assembled: one Lua
/// chunk, in which a local is visible in the files after the one defining it.
const LIB_PARTS: [(&str, &str); 5] = [
    ("lib.lua", include_str!("../lua/lib.lua")),
    ("perm.lua", include_str!("../lua/perm.lua")),
    ("stats.lua", include_str!("../lua/stats.lua")),
    ("quota.lua", include_str!("../lua/quota.lua")),
    ("files.lua", include_str!("../lua/files.lua")),
];
const BATCH: &str = include_str!("../lua/batch.lua");
const READS: &str = include_str!("../lua/reads.lua");

/// The op bodies, `(name, source)`, in the order of [`OPS`].
pub(crate) const OP_SOURCES: [(&str, &str); 24] = [
    ("mknod", include_str!("../lua/ops/mknod.lua")),
    ("link", include_str!("../lua/ops/link.lua")),
    ("unlink", include_str!("../lua/ops/unlink.lua")),
    ("rmdir", include_str!("../lua/ops/rmdir.lua")),
    ("rename", include_str!("../lua/ops/rename.lua")),
    ("setattr", include_str!("../lua/ops/setattr.lua")),
    ("write", include_str!("../lua/ops/write.lua")),
    ("truncate", include_str!("../lua/ops/truncate.lua")),
    ("setxattr", include_str!("../lua/ops/setxattr.lua")),
    ("removexattr", include_str!("../lua/ops/removexattr.lua")),
    (
        "clear_pending_file",
        include_str!("../lua/ops/clear_pending_file.lua"),
    ),
    (
        "clear_pending_slice",
        include_str!("../lua/ops/clear_pending_slice.lua"),
    ),
    ("restore", include_str!("../lua/ops/restore.lua")),
    (
        "restore_pending",
        include_str!("../lua/ops/restore_pending.lua"),
    ),
    ("open_session", include_str!("../lua/ops/open_session.lua")),
    ("heartbeat", include_str!("../lua/ops/heartbeat.lua")),
    (
        "close_session",
        include_str!("../lua/ops/close_session.lua"),
    ),
    (
        "claim_cleanup",
        include_str!("../lua/ops/claim_cleanup.lua"),
    ),
    ("open", include_str!("../lua/ops/open.lua")),
    ("release", include_str!("../lua/ops/release.lua")),
    ("lock", include_str!("../lua/ops/lock.lua")),
    (
        "compact_chunk",
        include_str!("../lua/ops/compact_chunk.lua"),
    ),
    ("set_quota", include_str!("../lua/ops/set_quota.lua")),
    ("remove_quota", include_str!("../lua/ops/remove_quota.lua")),
];

/// How the library reaches the server (URL option `scripting`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scripting {
    /// Redis Functions (`FUNCTION LOAD`, `FCALL`): the default when the server has them.
    Function,
    /// Scripts (`SCRIPT LOAD`, `EVALSHA`): for servers without Functions.
    Eval,
}

impl Scripting {
    /// The URL spelling: `function` or `eval`.
    pub fn name(self) -> &'static str {
        match self {
            Scripting::Function => "function",
            Scripting::Eval => "eval",
        }
    }
}

/// The library's entry points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Entry {
    /// Applies a batch of ops (see `lua/batch.lua`).
    Batch,
    /// Writes a new volume's records (see `lua/reads.lua`).
    Format,
    /// Read-only: a lookup in one atomic view.
    Lookup,
    /// Read-only: a page of entries with their attributes.
    ReaddirPlus,
}

impl Entry {
    /// Every entry point.
    pub(crate) const ALL: [Entry; 4] = [
        Entry::Batch,
        Entry::Format,
        Entry::Lookup,
        Entry::ReaddirPlus,
    ];

    /// The Lua function implementing it.
    pub(crate) fn lua_name(self) -> &'static str {
        match self {
            Entry::Batch => "batch",
            Entry::Format => "format",
            Entry::Lookup => "lookup",
            Entry::ReaddirPlus => "readdir_plus",
        }
    }

    /// True for the entries that never write (registered with the `no-writes` flag, called
    /// with `FCALL_RO`).
    pub(crate) fn read_only(self) -> bool {
        matches!(self, Entry::Lookup | Entry::ReaddirPlus)
    }

    fn index(self) -> usize {
        match self {
            Entry::Batch => 0,
            Entry::Format => 1,
            Entry::Lookup => 2,
            Entry::ReaddirPlus => 3,
        }
    }
}

/// One script of the `eval` way: its source and SHA1 (what `EVALSHA` names).
#[derive(Debug, Clone)]
pub(crate) struct Lua {
    /// Lower-case hex SHA1 of `code`.
    pub sha: String,
    /// Full source as loaded.
    pub code: String,
}

/// The assembled library, both ways.
#[derive(Debug, Clone)]
pub(crate) struct Library {
    /// `meta_` + the first 12 hex digits of the SHA1 of the library's code.
    pub name: String,
    /// The source for `FUNCTION LOAD`.
    pub function_code: String,
    /// The scripts for `EVALSHA`, by [`Entry`].
    scripts: Vec<Lua>,
}

/// Lua that sets `OP_BY_CODE[code] = OPS.<name>` for every op of the spec.
fn op_codes() -> String {
    OPS.iter()
        .map(|o| format!("OP_BY_CODE[{}] = OPS.{}\n", o.code, o.name))
        .collect()
}

impl Library {
    pub(crate) fn new() -> Library {
        let ops: String = OP_SOURCES
            .iter()
            .map(|(name, src)| format!("-- ops/{name}.lua\n{src}\n"))
            .collect();
        let lib: String = LIB_PARTS
            .iter()
            .map(|(file, src)| format!("-- {file}\n{src}\n"))
            .collect();
        let ops_lib = format!(
            "-- base.lua\n{BASE}\n{lib}{ops}-- batch.lua\n{BATCH}\n{}",
            op_codes()
        );
        let body = format!("{ops_lib}\n-- reads.lua\n{READS}\n");
        let sha = Script::new(&body).get_hash().to_string();
        let name = format!("meta_{}", &sha[..12]);
        let mut function_code = format!("#!lua name={name}\n{body}\n");
        for e in Entry::ALL {
            let flags = if e.read_only() {
                ", flags = { 'no-writes' }"
            } else {
                ""
            };
            function_code.push_str(&format!(
                "redis.register_function{{ function_name = '{name}_{}', callback = {}{flags} }}\n",
                e.lua_name(),
                e.lua_name()
            ));
        }
        let scripts = Entry::ALL
            .iter()
            .map(|&e| {
                let code = match e {
                    Entry::Batch => format!("{ops_lib}\nreturn batch(KEYS, ARGV, true)\n"),
                    _ => format!("{BASE}\n{READS}\nreturn {}(KEYS, ARGV)\n", e.lua_name()),
                };
                Lua {
                    sha: Script::new(&code).get_hash().to_string(),
                    code,
                }
            })
            .collect();
        Library {
            name,
            function_code,
            scripts,
        }
    }

    /// The function name of `e` (`FCALL` way).
    pub(crate) fn function(&self, e: Entry) -> String {
        format!("{}_{}", self.name, e.lua_name())
    }

    /// The script of `e` (`EVALSHA` way).
    pub(crate) fn script(&self, e: Entry) -> &Lua {
        &self.scripts[e.index()]
    }

    /// Every script (`EVALSHA` way), for `SCRIPT LOAD`.
    pub(crate) fn scripts(&self) -> &[Lua] {
        &self.scripts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every Lua source of the library, `(file, source)`.
    fn sources() -> Vec<(&'static str, &'static str)> {
        let mut all = vec![
            ("base.lua", BASE),
            ("batch.lua", BATCH),
            ("reads.lua", READS),
        ];
        all.extend(LIB_PARTS);
        all.extend(OP_SOURCES);
        all
    }

    /// The arguments of each `redis.call(...)` / `redis.pcall(...)` in `src` (split at the
    /// call's own commas, Lua strings and nested brackets skipped), with the call's line.
    fn call_args(src: &str) -> Vec<(usize, Vec<String>)> {
        let mut out = Vec::new();
        let mut from = 0;
        while let Some(i) = src[from..].find("redis.").map(|i| i + from) {
            let rest = &src[i + "redis.".len()..];
            let Some(name) = ["call(", "pcall("]
                .into_iter()
                .find(|n| rest.starts_with(n))
            else {
                from = i + 1;
                continue;
            };
            let open = i + "redis.".len() + name.len();
            let (mut depth, mut quote, mut args, mut cur) = (1, None, Vec::new(), String::new());
            let mut end = src.len();
            for (j, ch) in src[open..].char_indices() {
                match (quote, ch) {
                    (Some(q), c) if c == q => quote = None,
                    (Some(_), _) => {}
                    (None, '\'' | '"') => quote = Some(ch),
                    (None, '(' | '{' | '[') => depth += 1,
                    (None, ')' | '}' | ']') => {
                        depth -= 1;
                        if depth == 0 {
                            end = open + j;
                            break;
                        }
                    }
                    (None, ',') if depth == 1 => {
                        args.push(std::mem::take(&mut cur));
                        continue;
                    }
                    _ => {}
                }
                cur.push(ch);
            }
            args.push(cur);
            let line = src[..i].matches('\n').count() + 1;
            out.push((line, args.iter().map(|a| a.trim().to_string()).collect()));
            from = end.max(i + 1);
        }
        out
    }

    /// Redis formats a Lua number passed to `redis.call` with snprintf("%.17g"), about 2,000
    /// server instructions each (lib.lua): the library passes strings. Catches literals.
    #[test]
    fn redis_calls_take_no_number_literals() {
        let mut bad = Vec::new();
        let mut calls = 0;
        for (file, src) in sources() {
            for (line, args) in call_args(src) {
                calls += 1;
                for a in args {
                    if !a.is_empty() && a.parse::<f64>().is_ok() {
                        bad.push(format!("{file}:{line}: {a}"));
                    }
                }
            }
        }
        assert!(
            calls > 100,
            "only {calls} redis.call sites found: the scan is broken"
        );
        assert!(
            bad.is_empty(),
            "number literals passed to redis.call: {bad:?}"
        );
    }

    #[test]
    fn call_args_splits_at_the_calls_own_commas() {
        let src = "x = redis.call('ZADD', k, 0, f(a, 'b,c'))\nredis.pcall(\n  'GET', t[1])";
        let got = call_args(src);
        assert_eq!(got.len(), 2);
        assert_eq!(
            got[0],
            (
                1,
                vec![
                    "'ZADD'".into(),
                    "k".into(),
                    "0".into(),
                    "f(a, 'b,c')".into()
                ]
            )
        );
        assert_eq!(got[1], (2, vec!["'GET'".into(), "t[1]".into()]));
    }
}
