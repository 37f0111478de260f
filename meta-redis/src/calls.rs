//! Loading the Lua library and calling its entry points, as Functions or as scripts (see
//! [`crate::scripts`]).

use std::sync::atomic::Ordering;

use meta_core::{Error, ErrorKind, Result};
use redis::{Cmd, Value, cmd, pipe};

use crate::Inner;
use crate::error::{Stage, classify, refuses_undeclared_key};
use crate::reply::{bytes, internal};
use crate::scripts::{Entry, Scripting};

/// One call's `KEYS` and arguments.
pub(crate) type CallArgs<'a> = (Vec<&'a [u8]>, Vec<&'a [u8]>);

/// Whether a server error means the server does not know Functions at all (an older Redis
/// or a Redis-compatible server): the library is then used as scripts.
fn lacks_functions(e: &redis::RedisError) -> bool {
    let m = e.to_string().to_ascii_lowercase();
    m.contains("unknown command") || m.contains("unknown subcommand")
}

impl Inner {
    /// How the library is called now.
    pub(crate) fn scripting(&self) -> Scripting {
        if self.functions.load(Ordering::Relaxed) {
            Scripting::Function
        } else {
            Scripting::Eval
        }
    }

    /// Loads the library `want`'s way: `FUNCTION LOAD` (on a Cluster, on every primary; a
    /// library of this name already there is this code, since the name is its hash, and
    /// stays, with what it keeps from call to call), or `SCRIPT LOAD` of every script;
    /// `None` (the `scripting=auto` default): Functions when the server has them, else
    /// scripts.
    ///
    /// Errors: `Unavailable` when the server cannot be reached, `ConfigInvalid` when the
    /// ACL user may not load functions or scripts, or `scripting=function` names a server
    /// without Functions.
    pub(crate) async fn load_library_as(&self, want: Option<Scripting>) -> Result<()> {
        if want != Some(Scripting::Eval) {
            let c = cmd("FUNCTION")
                .arg("LOAD")
                .arg(&self.library.function_code)
                .clone();
            match self.conn.cmd(&c).await {
                Ok(_) => {
                    self.functions.store(true, Ordering::Relaxed);
                    return Ok(());
                }
                Err(e) if e.to_string().contains("already exists") => {
                    self.functions.store(true, Ordering::Relaxed);
                    return Ok(());
                }
                Err(e) if want.is_none() && lacks_functions(&e) => {
                    tracing::info!(
                        target: "meta_redis",
                        "{}: the server has no Redis Functions ({e}); using scripts",
                        self.target
                    );
                }
                Err(e) if lacks_functions(&e) => {
                    return Err(Error::new(
                        ErrorKind::ConfigInvalid,
                        format!(
                            "{}: scripting=function, but the server has no Redis Functions \
                             (Redis 7.0 or later)",
                            self.target
                        ),
                    )
                    .with_source(e));
                }
                Err(e) => return Err(classify(e, Stage::Connect, &self.target)),
            }
        }
        self.functions.store(false, Ordering::Relaxed);
        self.load_scripts().await
    }

    /// Loads the library the way it is called now.
    pub(crate) async fn load_library(&self) -> Result<()> {
        self.load_library_as(Some(self.scripting())).await
    }

    async fn load_scripts(&self) -> Result<()> {
        let scripts = self.library.scripts();
        if self.conn.is_cluster() {
            for s in scripts {
                self.conn
                    .cmd(cmd("SCRIPT").arg("LOAD").arg(&s.code))
                    .await
                    .map_err(|e| classify(e, Stage::Connect, &self.target))?;
            }
            return Ok(());
        }
        let mut p = pipe();
        for s in scripts {
            p.cmd("SCRIPT").arg("LOAD").arg(&s.code);
        }
        let replies = self
            .conn
            .pipe(&p)
            .await
            .map_err(|e| classify(e, Stage::Connect, &self.target))?;
        for (s, r) in scripts.iter().zip(replies) {
            match bytes(r, "SCRIPT LOAD")? {
                Some(sha) if sha == s.sha.as_bytes() => {}
                other => {
                    return Err(internal(format!(
                        "SCRIPT LOAD: the server answered {other:?}, expected SHA {}",
                        s.sha
                    )));
                }
            }
        }
        Ok(())
    }

    /// True when a server error says the library is not loaded (a restart without
    /// persistence, a failover to a node that never had it, `FUNCTION FLUSH`, `SCRIPT
    /// FLUSH`): the call did not run.
    pub(crate) fn is_missing_library(&self, message: &str) -> bool {
        let m = message.to_ascii_lowercase();
        m.starts_with("noscript") || m.contains("function not found")
    }

    /// The command calling entry point `e` with `keys` and `args`.
    pub(crate) fn call_cmd(&self, e: Entry, keys: &[&[u8]], args: &[&[u8]]) -> Cmd {
        let mut c = match self.scripting() {
            Scripting::Function => {
                let mut c = cmd(if e.read_only() { "FCALL_RO" } else { "FCALL" });
                c.arg(self.library.function(e));
                c
            }
            Scripting::Eval => {
                let mut c = cmd("EVALSHA");
                c.arg(&self.library.script(e).sha);
                c
            }
        };
        c.arg(keys.len());
        for k in keys {
            c.arg(*k);
        }
        for a in args {
            c.arg(*a);
        }
        c
    }

    /// Calls entry point `e`, loading the library again once when the server lost it.
    /// Returns the reply, or the server error that came back in its place as
    /// `Value::ServerError`.
    ///
    /// Errors: a broken connection as `Indeterminate` for the writing entries (the call may
    /// have run) and `Unavailable` for the read-only ones or when the server refused the
    /// connection (nothing ran).
    pub(crate) async fn call(&self, e: Entry, keys: &[&[u8]], args: &[&[u8]]) -> Result<Value> {
        let mut v = self.call_many(e, &[(keys.to_vec(), args.to_vec())]).await?;
        v.pop()
            .ok_or_else(|| internal("redis: no reply to a library call"))
    }

    /// Calls entry point `e` once per `(keys, args)`, all in one pipeline; one reply per
    /// call, in order (a server error in place of a reply as `Value::ServerError`). When the
    /// first reply says the library is missing, it is loaded again and the whole pipeline
    /// sent once more: callers make the later calls of a pipeline depend on the earlier
    /// ones having run (the `batch` entry's sequence token), so a resend cannot apply
    /// anything twice.
    ///
    /// Errors: as [`Inner::call`].
    pub(crate) async fn call_many(&self, e: Entry, calls: &[CallArgs<'_>]) -> Result<Vec<Value>> {
        let stage = if e.read_only() {
            Stage::Read
        } else {
            Stage::Write
        };
        for attempt in 0..2 {
            let mut p = pipe();
            p.ignore_errors();
            for (keys, args) in calls {
                p.add_command(self.call_cmd(e, keys, args));
            }
            let v = self
                .conn
                .pipe(&p)
                .await
                .map_err(|err| classify(err, stage, &self.target))?;
            if v.len() != calls.len() {
                return Err(Error::new(
                    if e.read_only() {
                        ErrorKind::Unavailable
                    } else {
                        ErrorKind::Indeterminate
                    },
                    format!(
                        "redis: {} replies for a pipeline of {} library calls",
                        v.len(),
                        calls.len()
                    ),
                ));
            }
            if let Some(Value::ServerError(se)) = v.first() {
                let msg = format!("{} {}", se.code(), se.details().unwrap_or(""));
                if attempt == 0 && self.is_missing_library(&msg) {
                    self.load_library().await?;
                    continue;
                }
            }
            return Ok(v);
        }
        Err(internal(format!(
            "{}: the library was missing again right after loading it",
            e.lua_name()
        )))
    }

    /// Calls a read-only entry point. `Ok(None)` when reads must use declared keys only:
    /// already so, or the server just refused the call for an undeclared key.
    pub(crate) async fn read_call(
        &self,
        e: Entry,
        keys: &[&[u8]],
        args: &[&[u8]],
    ) -> Result<Option<Value>> {
        if self.strict() {
            return Ok(None);
        }
        match self.call(e, keys, args).await? {
            Value::ServerError(se) => {
                let msg = format!("{} {}", se.code(), se.details().unwrap_or(""));
                if refuses_undeclared_key(&msg) {
                    self.go_strict(e.lua_name(), &msg);
                    return Ok(None);
                }
                Err(crate::error::classify_read_error(&se, e.lua_name()))
            }
            v => Ok(Some(v)),
        }
    }

    /// Whether reads must touch declared keys only (`RedisOptions::strict_keys`).
    pub(crate) fn strict(&self) -> bool {
        self.strict.load(Ordering::Relaxed)
    }

    /// Switches reads to declared keys only, after `entry` was refused for an undeclared key.
    pub(crate) fn go_strict(&self, entry: &str, message: &str) {
        if !self.strict.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                target: "meta_redis",
                "{}: {entry} was refused ({message}); reads switch to plain commands \
                 (as with strict_keys=true)",
                self.target
            );
        }
    }

    /// Sends a read-only pipeline.
    pub(crate) async fn read_pipe(&self, p: &redis::Pipeline) -> Result<Vec<Value>> {
        let v = self
            .conn
            .pipe(p)
            .await
            .map_err(|e| classify(e, Stage::Read, &self.target))?;
        if v.len() != p.len() {
            return Err(internal(format!(
                "redis: {} replies for a pipeline of {}",
                v.len(),
                p.len()
            )));
        }
        Ok(v)
    }
}
