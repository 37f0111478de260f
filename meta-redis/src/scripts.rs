//! The Lua scripts: one per mutating op (`lua/<op>.lua`, each prefixed with `lua/lib.lua`),
//! plus `format.lua` and the read-only `lookup.lua`, `readdir_plus.lua`, `ancestors.lua`.

use redis::Script;

const LIB: &str = include_str!("../lua/lib.lua");

/// One script: its source and SHA1 (what `EVALSHA` names).
#[derive(Debug, Clone)]
pub(crate) struct Lua {
    /// File name, for messages.
    pub name: &'static str,
    /// Full source as loaded.
    pub code: String,
    /// Lower-case hex SHA1 of `code`.
    pub sha: String,
}

impl Lua {
    fn new(name: &'static str, body: &str, with_lib: bool) -> Lua {
        let code = if with_lib {
            format!("{LIB}\n-- {name}\n{body}")
        } else {
            body.to_string()
        };
        let sha = Script::new(&code).get_hash().to_string();
        Lua { name, code, sha }
    }
}

/// Every script of the backend.
#[derive(Debug, Clone)]
pub(crate) struct Scripts {
    pub mknod: Lua,
    pub link: Lua,
    pub unlink: Lua,
    pub rmdir: Lua,
    pub rename: Lua,
    pub setattr: Lua,
    pub write: Lua,
    pub truncate: Lua,
    pub setxattr: Lua,
    pub removexattr: Lua,
    pub clear_pending_file: Lua,
    pub clear_pending_slice: Lua,
    pub restore: Lua,
    pub restore_pending: Lua,
    pub open_session: Lua,
    pub heartbeat: Lua,
    pub close_session: Lua,
    pub claim_cleanup: Lua,
    pub open: Lua,
    pub release: Lua,
    pub lock: Lua,
    pub format: Lua,
    pub lookup: Lua,
    pub readdir_plus: Lua,
    pub ancestors: Lua,
}

macro_rules! op_script {
    ($name:literal) => {
        Lua::new($name, include_str!(concat!("../lua/", $name, ".lua")), true)
    };
}

impl Scripts {
    pub(crate) fn new() -> Scripts {
        Scripts {
            mknod: op_script!("mknod"),
            link: op_script!("link"),
            unlink: op_script!("unlink"),
            rmdir: op_script!("rmdir"),
            rename: op_script!("rename"),
            setattr: op_script!("setattr"),
            write: op_script!("write"),
            truncate: op_script!("truncate"),
            setxattr: op_script!("setxattr"),
            removexattr: op_script!("removexattr"),
            clear_pending_file: op_script!("clear_pending_file"),
            clear_pending_slice: op_script!("clear_pending_slice"),
            restore: op_script!("restore"),
            restore_pending: op_script!("restore_pending"),
            open_session: op_script!("open_session"),
            heartbeat: op_script!("heartbeat"),
            close_session: op_script!("close_session"),
            claim_cleanup: op_script!("claim_cleanup"),
            open: op_script!("open"),
            release: op_script!("release"),
            lock: op_script!("lock"),
            format: Lua::new("format", include_str!("../lua/format.lua"), false),
            lookup: op_script!("lookup"),
            readdir_plus: op_script!("readdir_plus"),
            ancestors: op_script!("ancestors"),
        }
    }

    /// Every script, for `SCRIPT LOAD`.
    pub(crate) fn all(&self) -> [&Lua; 25] {
        [
            &self.mknod,
            &self.link,
            &self.unlink,
            &self.rmdir,
            &self.rename,
            &self.setattr,
            &self.write,
            &self.truncate,
            &self.setxattr,
            &self.removexattr,
            &self.clear_pending_file,
            &self.clear_pending_slice,
            &self.restore,
            &self.restore_pending,
            &self.open_session,
            &self.heartbeat,
            &self.close_session,
            &self.claim_cleanup,
            &self.open,
            &self.release,
            &self.lock,
            &self.format,
            &self.lookup,
            &self.readdir_plus,
            &self.ancestors,
        ]
    }
}
