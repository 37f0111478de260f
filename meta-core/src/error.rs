//! The one public error type: an [`ErrorKind`] (which maps to an errno), a context message, and an
//! optional source error. It is `Clone` so that a batch-level failure can be handed to every op of
//! the batch.

use std::fmt;
use std::sync::Arc;

/// What went wrong, in POSIX terms. Each kind maps to one errno through [`ErrorKind::errno`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// ENOENT: a parent, name or inode does not exist.
    NotFound,
    /// EEXIST: the name exists (create over it, rename with RENAME_NOREPLACE, xattr CREATE).
    AlreadyExists,
    /// ENOTDIR: a directory was required (mkdir under a file, rename a dir over a file).
    NotADirectory,
    /// EISDIR: a non-directory was required (unlink a dir, rename a file over a dir).
    IsADirectory,
    /// ENOTEMPTY: rmdir of, or rename over, a directory that has entries.
    NotEmpty,
    /// EINVAL: a bad name, flags, or a directory renamed into its own subtree.
    InvalidArgument,
    /// ENAMETOOLONG: a name over 255 bytes or a symlink target over 4096 bytes.
    NameTooLong,
    /// EACCES: permission denied.
    PermissionDenied,
    /// EPERM: operation not permitted (hard link to a directory, sticky-bit rules).
    NotPermitted,
    /// ENOSPC: the volume's capacity or inode limit is reached.
    NoSpace,
    /// EDQUOT: a directory quota's space or inode limit would be passed (quotactl(2) and
    /// write(2) name this errno for quota limits; [`crate::Quota`]). The volume-wide limits
    /// answer `NoSpace` instead.
    QuotaExceeded,
    /// EXDEV: the op would move usage across a directory quota's boundary that it cannot
    /// account for: a non-empty directory moving into or out of a quota, or a hard link that
    /// would make a file named in several directories enter or leave one (XFS project quotas
    /// answer EXDEV in the same cases, so `mv` falls back to copy and unlink).
    CrossDevice,
    /// ENODATA: the extended attribute does not exist (getxattr(2), removexattr(2)).
    NoData,
    /// ERANGE: an xattr name is empty or longer than 255 bytes (setxattr(2)).
    OutOfRange,
    /// E2BIG: an xattr value is larger than 64 KiB (setxattr(2)).
    TooBig,
    /// EAGAIN: a non-blocking lock request conflicts with a lock another owner holds
    /// (flock(2) `LOCK_NB`: EWOULDBLOCK, the same number as EAGAIN; fcntl(2) `F_SETLK`), or
    /// another client holds the lease asked for, or the chunk a compaction
    /// (`Op::CompactChunk`) expected changed. Unlike `Conflict` it concerns one op only.
    WouldBlock,
    /// EAGAIN: a transaction lost a race after the retry budget; nothing was applied.
    Conflict,
    /// EIO: the database could not be reached (connection refused, timeout); nothing was applied.
    Unavailable,
    /// EIO: the batch was sent and its outcome is unknown: some unknown subset may be applied.
    Indeterminate,
    /// EIO: a stored record could not be decoded, or the volume has an unknown format version.
    Corrupted,
    /// ENOTSUP: the backend lacks a capability.
    Unsupported,
    /// EINVAL: a bad URL, option or setting.
    ConfigInvalid,
    /// EIO: any other failure of the engine itself (a bug, a task that died).
    Internal,
    /// EIO: the `Meta` was closed ([`crate::Meta::close`]) before the call; nothing was
    /// applied.
    Closed,
}

/// Linux errno values used by [`ErrorKind::errno`] (from `asm-generic/errno-base.h` and `errno.h`).
pub mod errno {
    #![allow(missing_docs)]
    pub const EPERM: i32 = 1;
    pub const ENOENT: i32 = 2;
    pub const EIO: i32 = 5;
    pub const E2BIG: i32 = 7;
    pub const EAGAIN: i32 = 11;
    pub const EXDEV: i32 = 18;
    pub const EACCES: i32 = 13;
    pub const EEXIST: i32 = 17;
    pub const ENOTDIR: i32 = 20;
    pub const EISDIR: i32 = 21;
    pub const EINVAL: i32 = 22;
    pub const ENOSPC: i32 = 28;
    pub const ERANGE: i32 = 34;
    pub const ENAMETOOLONG: i32 = 36;
    pub const ENOTEMPTY: i32 = 39;
    pub const ENODATA: i32 = 61;
    pub const ENOTSUP: i32 = 95;
    pub const EDQUOT: i32 = 122;
}

impl ErrorKind {
    /// The Linux errno for this kind, e.g. `NotFound` → 2 (ENOENT).
    pub fn errno(self) -> i32 {
        use errno::*;
        match self {
            ErrorKind::NotFound => ENOENT,
            ErrorKind::AlreadyExists => EEXIST,
            ErrorKind::NotADirectory => ENOTDIR,
            ErrorKind::IsADirectory => EISDIR,
            ErrorKind::NotEmpty => ENOTEMPTY,
            ErrorKind::InvalidArgument | ErrorKind::ConfigInvalid => EINVAL,
            ErrorKind::NameTooLong => ENAMETOOLONG,
            ErrorKind::PermissionDenied => EACCES,
            ErrorKind::NotPermitted => EPERM,
            ErrorKind::NoSpace => ENOSPC,
            ErrorKind::QuotaExceeded => EDQUOT,
            ErrorKind::CrossDevice => EXDEV,
            ErrorKind::NoData => ENODATA,
            ErrorKind::OutOfRange => ERANGE,
            ErrorKind::TooBig => E2BIG,
            ErrorKind::Conflict | ErrorKind::WouldBlock => EAGAIN,
            ErrorKind::Unavailable
            | ErrorKind::Indeterminate
            | ErrorKind::Corrupted
            | ErrorKind::Internal
            | ErrorKind::Closed => EIO,
            ErrorKind::Unsupported => ENOTSUP,
        }
    }

    /// The errno's symbolic name, e.g. `"ENOENT"`; `Indeterminate` and `Corrupted` say `"EIO"`.
    pub fn errno_name(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "ENOENT",
            ErrorKind::AlreadyExists => "EEXIST",
            ErrorKind::NotADirectory => "ENOTDIR",
            ErrorKind::IsADirectory => "EISDIR",
            ErrorKind::NotEmpty => "ENOTEMPTY",
            ErrorKind::InvalidArgument | ErrorKind::ConfigInvalid => "EINVAL",
            ErrorKind::NameTooLong => "ENAMETOOLONG",
            ErrorKind::PermissionDenied => "EACCES",
            ErrorKind::NotPermitted => "EPERM",
            ErrorKind::NoSpace => "ENOSPC",
            ErrorKind::QuotaExceeded => "EDQUOT",
            ErrorKind::CrossDevice => "EXDEV",
            ErrorKind::NoData => "ENODATA",
            ErrorKind::OutOfRange => "ERANGE",
            ErrorKind::TooBig => "E2BIG",
            ErrorKind::Conflict | ErrorKind::WouldBlock => "EAGAIN",
            ErrorKind::Unsupported => "ENOTSUP",
            ErrorKind::Unavailable
            | ErrorKind::Indeterminate
            | ErrorKind::Corrupted
            | ErrorKind::Internal
            | ErrorKind::Closed => "EIO",
        }
    }

    /// A stable lower-case label for metrics, e.g. `"not_found"`.
    pub fn label(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::AlreadyExists => "already_exists",
            ErrorKind::NotADirectory => "not_a_directory",
            ErrorKind::IsADirectory => "is_a_directory",
            ErrorKind::NotEmpty => "not_empty",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::NameTooLong => "name_too_long",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::NotPermitted => "not_permitted",
            ErrorKind::NoSpace => "no_space",
            ErrorKind::QuotaExceeded => "quota_exceeded",
            ErrorKind::CrossDevice => "cross_device",
            ErrorKind::NoData => "no_data",
            ErrorKind::OutOfRange => "out_of_range",
            ErrorKind::TooBig => "too_big",
            ErrorKind::Conflict => "conflict",
            ErrorKind::WouldBlock => "would_block",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Indeterminate => "indeterminate",
            ErrorKind::Corrupted => "corrupted",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::ConfigInvalid => "config_invalid",
            ErrorKind::Internal => "internal",
            ErrorKind::Closed => "closed",
        }
    }

    /// True for the kinds of a failure that may pass if the same call is made again
    /// (`Unavailable`, `Indeterminate`, `Conflict`): what the engine's own retries of
    /// idempotent ops (queued releases, a session's close) try again.
    pub fn may_pass(self) -> bool {
        matches!(
            self,
            ErrorKind::Unavailable | ErrorKind::Indeterminate | ErrorKind::Conflict
        )
    }

    /// True for the kinds that describe the whole batch rather than one op's POSIX outcome
    /// (`Conflict`, `Unavailable`, `Indeterminate`, `Internal`, `Closed`): when one of these
    /// comes up while applying an op, the backend abandons the batch and returns it as the
    /// outer error.
    pub fn is_batch_fatal(self) -> bool {
        matches!(
            self,
            ErrorKind::Conflict
                | ErrorKind::Unavailable
                | ErrorKind::Indeterminate
                | ErrorKind::Internal
                | ErrorKind::Closed
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = match self {
            ErrorKind::NotFound => "no such file or directory",
            ErrorKind::AlreadyExists => "file exists",
            ErrorKind::NotADirectory => "not a directory",
            ErrorKind::IsADirectory => "is a directory",
            ErrorKind::NotEmpty => "directory not empty",
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::NameTooLong => "name too long",
            ErrorKind::PermissionDenied => "permission denied",
            ErrorKind::NotPermitted => "operation not permitted",
            ErrorKind::NoSpace => "no space left on volume",
            ErrorKind::QuotaExceeded => "directory quota exceeded",
            ErrorKind::CrossDevice => "crosses a directory quota's boundary",
            ErrorKind::NoData => "no such attribute",
            ErrorKind::OutOfRange => "xattr name out of range",
            ErrorKind::TooBig => "xattr value too large",
            ErrorKind::Conflict => "transaction conflict, retry budget exhausted",
            ErrorKind::WouldBlock => "resource temporarily unavailable (lock held)",
            ErrorKind::Unavailable => "backend unavailable",
            ErrorKind::Indeterminate => "outcome unknown",
            ErrorKind::Corrupted => "corrupted metadata",
            ErrorKind::Unsupported => "operation not supported",
            ErrorKind::ConfigInvalid => "invalid configuration",
            ErrorKind::Internal => "internal error",
            ErrorKind::Closed => "the volume was closed",
        };
        write!(f, "{} ({})", text, self.errno_name())
    }
}

/// The error of every fallible call in this crate and its backends.
///
/// Carries an [`ErrorKind`], a human-readable context (which never contains a password), and
/// optionally the underlying driver error. Cloning is cheap (the source is shared).
#[derive(Clone)]
pub struct Error {
    kind: ErrorKind,
    context: Arc<str>,
    source: Option<Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// An error of `kind` with a context message such as `"lookup 1/\"a\""`.
    pub fn new(kind: ErrorKind, context: impl Into<String>) -> Self {
        Error {
            kind,
            context: context.into().into(),
            source: None,
        }
    }

    /// Attaches the underlying error (e.g. a driver error).
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    /// The kind of failure.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The errno for this error (see [`ErrorKind::errno`]).
    pub fn errno(&self) -> i32 {
        self.kind.errno()
    }

    /// The context message.
    pub fn context(&self) -> &str {
        &self.context
    }

    /// Prefixes the context with `what` (e.g. the operation), keeping kind and source.
    pub fn context_prefix(self, what: impl fmt::Display) -> Self {
        Error {
            kind: self.kind,
            context: format!("{what}: {}", self.context).into(),
            source: self.source,
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind).field("context", &self.context);
        if let Some(s) = &self.source {
            d.field("source", &s.to_string());
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.context.is_empty() {
            write!(f, "{}", self.kind)?;
        } else {
            write!(f, "{}: {}", self.context, self.kind)?;
        }
        if let Some(s) = &self.source {
            write!(f, ": {s}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn std::error::Error + 'static))
    }
}

/// `Result<T, meta_core::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Shorthand constructors, e.g. `err::not_found("lookup 1/a")`.
pub(crate) mod err {
    use super::{Error, ErrorKind};

    macro_rules! ctor {
        ($($name:ident => $kind:ident),* $(,)?) => {$(
            pub(crate) fn $name(ctx: impl Into<String>) -> Error { Error::new(ErrorKind::$kind, ctx) }
        )*};
    }
    ctor! {
        not_found => NotFound, exists => AlreadyExists, not_dir => NotADirectory,
        is_dir => IsADirectory, not_empty => NotEmpty, invalid => InvalidArgument,
        not_permitted => NotPermitted, permission_denied => PermissionDenied, no_space => NoSpace, no_data => NoData,
        quota_exceeded => QuotaExceeded, cross_device => CrossDevice,
        corrupted => Corrupted, would_block => WouldBlock,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errno_mapping_follows_design_table() {
        assert_eq!(ErrorKind::NotFound.errno(), 2);
        assert_eq!(ErrorKind::AlreadyExists.errno(), 17);
        assert_eq!(ErrorKind::NotEmpty.errno(), 39);
        assert_eq!(ErrorKind::NotPermitted.errno(), 1);
        assert_eq!(ErrorKind::Indeterminate.errno(), 5);
        assert_eq!(ErrorKind::Unsupported.errno(), 95);
        assert_eq!(ErrorKind::NoData.errno(), 61);
        assert_eq!(ErrorKind::QuotaExceeded.errno(), 122);
        assert_eq!(ErrorKind::CrossDevice.errno(), 18);
    }

    #[test]
    fn display_has_context_kind_and_source() {
        let e = Error::new(ErrorKind::Unavailable, "connect 127.0.0.1:1")
            .with_source(std::io::Error::other("refused"));
        let s = e.to_string();
        assert!(s.contains("connect 127.0.0.1:1"), "{s}");
        assert!(s.contains("EIO"), "{s}");
        assert!(s.contains("refused"), "{s}");
        let c = e.clone();
        assert_eq!(c.kind(), ErrorKind::Unavailable);
    }
}
