//! Every TiKV client error classified once, by the stage it happened at (a read, or the
//! commit, whose outcome may be unknown).

use meta_core::{Error, ErrorKind};
use tikv_client::Error as TikvError;

/// Where a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Connecting, or a read of a transaction: nothing was written.
    Read,
    /// Prewrite + commit: may have been applied.
    Commit,
}

/// True when `e` (or, for the client's error lists, any error in it) is a write conflict or
/// a retryable key error: the transaction lost a race and wrote nothing.
fn is_conflict(e: &TikvError) -> bool {
    match e {
        TikvError::KeyError(k) => {
            k.conflict.is_some() || !k.retryable.is_empty() || k.deadlock.is_some()
        }
        TikvError::MultipleKeyErrors(v) | TikvError::ExtractedErrors(v) => {
            v.iter().any(is_conflict)
        }
        _ => false,
    }
}

/// Classifies a tikv-client error; `what` names the request for the message.
pub(crate) fn classify(e: TikvError, stage: Stage, what: &str) -> Error {
    let kind = match &e {
        // A write conflict (another transaction wrote a key this one wrote or locked after it
        // started) or a retryable key error: nothing was written, run the batch again.
        e if is_conflict(e) => ErrorKind::Conflict,
        // The client's own word that the primary key's commit outcome is unknown.
        TikvError::UndeterminedError(_) => ErrorKind::Indeterminate,
        // Anything else during prewrite + commit: the client may have got as far as the
        // primary key's commit, so the outcome is unknown (never claim "nothing applied").
        _ if stage == Stage::Commit => ErrorKind::Indeterminate,
        // Region moved or split, store or PD unreachable, transport failures: a read, so
        // nothing was applied.
        TikvError::RegionError(_)
        | TikvError::Grpc(_)
        | TikvError::GrpcAPI(_)
        | TikvError::Io(_)
        | TikvError::NoCurrentRegions
        | TikvError::EntryNotFoundInRegionCache
        | TikvError::RegionForKeyNotFound { .. }
        | TikvError::RegionForRangeNotFound { .. }
        | TikvError::RegionNotFoundInResponse { .. }
        | TikvError::LeaderNotFound { .. } => ErrorKind::Unavailable,
        TikvError::Url(_) => ErrorKind::ConfigInvalid,
        _ => ErrorKind::Unavailable,
    };
    Error::new(kind, format!("tikv {what}: {e}")).with_source(e)
}

/// A request that did not answer within the timeout.
pub(crate) fn timed_out(stage: Stage, what: &str, after: std::time::Duration) -> Error {
    let kind = match stage {
        Stage::Read => ErrorKind::Unavailable,
        Stage::Commit => ErrorKind::Indeterminate,
    };
    Error::new(
        kind,
        format!("tikv {what}: no answer within {} ms", after.as_millis()),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use tikv_client::ProtoKeyError;

    #[test]
    fn classification() {
        let conflict = ProtoKeyError {
            conflict: Some(Default::default()),
            ..Default::default()
        };
        let e = TikvError::KeyError(Box::new(conflict.clone()));
        assert_eq!(
            classify(e, Stage::Commit, "commit").kind(),
            ErrorKind::Conflict
        );
        let e = TikvError::MultipleKeyErrors(vec![TikvError::KeyError(Box::new(conflict))]);
        assert_eq!(
            classify(e, Stage::Commit, "commit").kind(),
            ErrorKind::Conflict
        );
        let e = TikvError::UndeterminedError(Box::new(TikvError::NoCurrentRegions));
        assert_eq!(
            classify(e, Stage::Commit, "commit").kind(),
            ErrorKind::Indeterminate
        );
        let e = TikvError::Io(std::io::Error::other("reset"));
        assert_eq!(
            classify(e, Stage::Commit, "commit").kind(),
            ErrorKind::Indeterminate
        );
        let e = TikvError::Io(std::io::Error::other("reset"));
        assert_eq!(
            classify(e, Stage::Read, "get").kind(),
            ErrorKind::Unavailable
        );
        let e = TikvError::NoCurrentRegions;
        assert_eq!(
            classify(e, Stage::Commit, "commit").kind(),
            ErrorKind::Indeterminate
        );
        let e = TikvError::NoCurrentRegions;
        assert_eq!(
            classify(e, Stage::Read, "scan").kind(),
            ErrorKind::Unavailable
        );
    }
}
