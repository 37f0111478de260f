//! Every etcd failure classified once, by the stage it happened at: a read (nothing was
//! written, so `Unavailable` is always safe) or a commit (the request may have been applied,
//! so anything but a refusal the server made before applying is `Indeterminate`).

use etcd_client::Error as EtcdError;
use meta_core::{Error, ErrorKind};
use tonic::Code;

/// Where a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// A range read of a transaction, or connecting: nothing was written.
    Read,
    /// The `Txn` that commits: it may have been applied.
    Commit,
    /// A plain write outside a transaction (erase): may have been applied.
    Write,
}

/// Classifies an etcd-client error; `what` names the request for the message.
pub(crate) fn classify(e: EtcdError, stage: Stage, what: &str) -> Error {
    let written_maybe = stage != Stage::Read;
    let kind = match &e {
        EtcdError::GRpcStatus(s) => match s.code() {
            // The revision a transaction reads at was compacted away: run it again at a new
            // one ("mvcc: required revision has been compacted").
            Code::OutOfRange => ErrorKind::Conflict,
            // Refused while checking the request, before it is proposed to raft: "too many
            // operations in txn request", "request is too large", bad key/range.
            Code::InvalidArgument => ErrorKind::Unsupported,
            // Authentication / authorisation refused the request before applying it.
            Code::Unauthenticated | Code::PermissionDenied => ErrorKind::ConfigInvalid,
            // "etcdserver: request timed out", "no leader", a member that is stopping, a
            // deadline passed: a proposal may still be applied after the reply.
            Code::Unavailable | Code::DeadlineExceeded | Code::Aborted | Code::Unknown
                if written_maybe =>
            {
                ErrorKind::Indeterminate
            }
            // Quota exceeded ("database space exceeded"): refused before applying.
            Code::ResourceExhausted => ErrorKind::NoSpace,
            // "requested lease not found" and the like: refused before applying.
            Code::NotFound | Code::FailedPrecondition => ErrorKind::Internal,
            _ if written_maybe => ErrorKind::Indeterminate,
            _ => ErrorKind::Unavailable,
        },
        // The connection broke or could not be made: after a commit was sent, unknown.
        EtcdError::TransportError(_) | EtcdError::IoError(_) if written_maybe => {
            ErrorKind::Indeterminate
        }
        EtcdError::TransportError(_) | EtcdError::IoError(_) => ErrorKind::Unavailable,
        EtcdError::InvalidArgs(_) | EtcdError::InvalidUri(_) | EtcdError::EndpointError(_) => {
            ErrorKind::ConfigInvalid
        }
        _ if written_maybe => ErrorKind::Indeterminate,
        _ => ErrorKind::Unavailable,
    };
    Error::new(kind, format!("etcd {what}: {e}")).with_source(e)
}

/// A request that did not answer within the timeout.
pub(crate) fn timed_out(stage: Stage, what: &str, after: std::time::Duration) -> Error {
    let kind = if stage == Stage::Read {
        ErrorKind::Unavailable
    } else {
        ErrorKind::Indeterminate
    };
    Error::new(
        kind,
        format!("etcd {what}: no answer within {} ms", after.as_millis()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: Code) -> EtcdError {
        EtcdError::GRpcStatus(tonic::Status::new(code, "x"))
    }

    #[test]
    fn a_commit_that_may_have_been_applied_is_indeterminate() {
        for code in [Code::Unavailable, Code::DeadlineExceeded, Code::Unknown] {
            assert_eq!(
                classify(status(code), Stage::Commit, "txn").kind(),
                ErrorKind::Indeterminate
            );
            assert_eq!(
                classify(status(code), Stage::Read, "get").kind(),
                ErrorKind::Unavailable
            );
        }
        assert_eq!(
            classify(status(Code::OutOfRange), Stage::Read, "get").kind(),
            ErrorKind::Conflict
        );
        assert_eq!(
            classify(status(Code::InvalidArgument), Stage::Commit, "txn").kind(),
            ErrorKind::Unsupported
        );
        assert_eq!(
            classify(status(Code::ResourceExhausted), Stage::Commit, "txn").kind(),
            ErrorKind::NoSpace
        );
    }
}
