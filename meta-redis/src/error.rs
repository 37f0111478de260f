//! The one place that turns Redis errors into [`meta_core::ErrorKind`]s.
//!
//! What an error means depends on when it happened ([`Stage`]): a broken connection while
//! connecting or reading means "nothing was done, try again later" (`Unavailable`), but while a
//! pipeline of mutating scripts was in flight it means some of them may have run
//! (`Indeterminate`). Server errors that come back *in place of one script's reply* are
//! classified per op by [`classify_script_error`]. Messages never contain a password: the
//! driver's errors name addresses only, and our context uses the redacted URL.

use meta_core::{Error, ErrorKind};
use redis::{RedisError, ServerError};

/// When the error happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Opening the connection (or the cluster's slot map).
    Connect,
    /// A read-only command or pipeline (also the reads made before a batch's scripts).
    Read,
    /// A pipeline holding mutating scripts (a batch round, `reserve_ids`, `format`).
    Write,
}

impl Stage {
    fn verb(self) -> &'static str {
        match self {
            Stage::Connect => "connect to",
            Stage::Read => "read from",
            Stage::Write => "write to",
        }
    }
}

/// Whether a server refused a script because it touched a key not declared in `KEYS`.
/// Redis itself allows it (in the script's own Cluster slot); some Redis-compatible servers
/// forbid it by default ("script tried accessing undeclared key"), and a Cluster node answers
/// "non local key" for a key of another slot. The backend then reads with plain commands
/// (see `RedisOptions::strict_keys`).
pub(crate) fn refuses_undeclared_key(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("undeclared") || m.contains("non local key")
}

/// Classifies a driver error raised at `stage` while talking to `target` (a redacted URL).
pub(crate) fn classify(e: RedisError, stage: Stage, target: &str) -> Error {
    let at = format!("redis: cannot {} {target}", stage.verb());
    let kind = if e.is_connection_refusal() {
        // ECONNREFUSED / host unreachable while (re)connecting: the request never reached a
        // server, so nothing was applied, whatever the stage. Temporary from our view.
        ErrorKind::Unavailable
    } else {
        match (e.kind(), stage) {
            // Wrong password, unknown user, NOAUTH: the URL's credentials are wrong.
            (redis::ErrorKind::AuthenticationFailed, _) => ErrorKind::ConfigInvalid,
            // The driver refused the configuration before sending anything (bad URL parts,
            // TLS without the `tls` feature).
            (redis::ErrorKind::InvalidClientConfig, _) => ErrorKind::ConfigInvalid,
            // The database number of the URL is refused while connecting ("DB index is out
            // of range", or "SELECT is not allowed in cluster mode"): the URL is wrong.
            (redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError), Stage::Connect)
                if e.detail()
                    .is_some_and(|d| d.contains("DB index") || d.contains("SELECT")) =>
            {
                ErrorKind::ConfigInvalid
            }
            // NOPERM: the ACL user may not run EVALSHA / SCAN / ...: a deployment problem.
            (redis::ErrorKind::Server(redis::ServerErrorKind::NoPerm), _) => {
                ErrorKind::ConfigInvalid
            }
            // Cluster topology errors, LOADING, MASTERDOWN, TRYAGAIN and the like while
            // connecting or reading: nothing changed; the same call works once the server or
            // cluster settles.
            (redis::ErrorKind::Server(_), Stage::Connect | Stage::Read) => ErrorKind::Unavailable,
            // A whole-pipeline server error while scripts were in flight (the cluster client
            // reports MOVED/ASK/TRYAGAIN/CLUSTERDOWN for the pipeline as a whole): the node
            // may have run the commands before the one that failed.
            (redis::ErrorKind::Server(_), Stage::Write) => ErrorKind::Indeterminate,
            // I/O errors, timeouts, a dropped connection while connecting or reading: nothing
            // was changed by this call.
            (_, Stage::Connect | Stage::Read) if e.is_io_error() || e.is_timeout() => {
                ErrorKind::Unavailable
            }
            // The cluster client found no connection for the slot (all nodes down, map
            // being rebuilt): the request was not sent.
            (redis::ErrorKind::ClusterConnectionNotFound, _) => ErrorKind::Unavailable,
            // The connection broke or timed out after the pipeline was (partly) written: any
            // prefix of its scripts may have run. Never retried silently.
            (_, Stage::Write) if e.is_io_error() || e.is_timeout() => ErrorKind::Indeterminate,
            // A reply the driver could not parse: the stream is out of sync; for a write we
            // cannot know what ran.
            (redis::ErrorKind::Parse, Stage::Write) => ErrorKind::Indeterminate,
            (redis::ErrorKind::Parse, _) => ErrorKind::Unavailable,
            // Anything else (unexpected reply types, client-side errors) is a bug here.
            _ => ErrorKind::Internal,
        }
    };
    Error::new(kind, at).with_source(e)
}

/// Classifies a server error that came back in place of one mutating script's reply (the
/// script did not run, or raised an error). `NOSCRIPT` is handled by the caller (reload and
/// resume) and never reaches this function.
pub(crate) fn classify_script_error(e: &ServerError, op: &str) -> Error {
    let code = e.code();
    let detail = e.details().unwrap_or("");
    let kind = match code {
        // WRONGTYPE: a key of the volume holds another Redis type than the layout says: the
        // stored data is damaged (scripts check values before writing, so nothing was
        // written).
        "WRONGTYPE" => ErrorKind::Corrupted,
        // maxmemory reached: Redis refused the script before it ran.
        "OOM" => ErrorKind::NoSpace,
        // The server is loading its dataset, a replica was asked to write, the master is
        // down, or another script is busy: this script did not run.
        "LOADING" | "READONLY" | "MASTERDOWN" | "BUSY" | "TRYAGAIN" | "CLUSTERDOWN" | "MOVED"
        | "ASK" => ErrorKind::Unavailable,
        // The ACL user may not run the script (or a command inside it).
        "NOPERM" => ErrorKind::ConfigInvalid,
        // Any other script error (a Lua runtime error) is a bug in this crate's scripts.
        _ => ErrorKind::Internal,
    };
    Error::new(kind, format!("{op}: redis: {code} {detail}"))
}

/// Classifies a server error that came back in place of a read-only call's reply (`what`
/// names the call).
pub(crate) fn classify_read_error(e: &ServerError, what: &str) -> Error {
    let kind = match e.code() {
        // A key of the volume holds another Redis type than the layout says.
        "WRONGTYPE" => ErrorKind::Corrupted,
        "NOPERM" => ErrorKind::ConfigInvalid,
        "LOADING" | "MASTERDOWN" | "BUSY" | "TRYAGAIN" | "CLUSTERDOWN" | "MOVED" | "ASK" => {
            ErrorKind::Unavailable
        }
        _ if e.details().is_some_and(|d| d.contains("WRONGTYPE")) => ErrorKind::Corrupted,
        _ => ErrorKind::Internal,
    };
    Error::new(
        kind,
        format!("{what}: redis: {} {}", e.code(), e.details().unwrap_or("")),
    )
}

/// True for a server error meaning "this script did not run, and nothing after it in the
/// round will" (the server refused it before executing it).
pub(crate) fn did_not_run(e: &ServerError) -> bool {
    matches!(
        e.code(),
        "OOM"
            | "LOADING"
            | "READONLY"
            | "MASTERDOWN"
            | "BUSY"
            | "TRYAGAIN"
            | "CLUSTERDOWN"
            | "MOVED"
            | "ASK"
            | "NOPERM"
    )
}

#[cfg(test)]
mod tests {
    use super::refuses_undeclared_key;

    #[test]
    fn undeclared_key_refusals_are_recognized() {
        // Wordings of servers that forbid undeclared keys / keys of another slot.
        assert!(refuses_undeclared_key(
            "ERR Error running script: script tried accessing undeclared key, key: {m}i5"
        ));
        assert!(refuses_undeclared_key(
            "ERR Script attempted to access a non local key in a cluster node"
        ));
        // Errors that must not switch the mode.
        assert!(!refuses_undeclared_key("NOSCRIPT No matching script"));
        assert!(!refuses_undeclared_key(
            "WRONGTYPE Operation against a key holding the wrong kind of value"
        ));
    }
}
