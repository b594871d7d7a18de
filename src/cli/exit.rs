//! Exit codes of the headless commands, the scripting contract: documented in `--help` and
//! README, and derived here from the error an action or source returned. Nothing else.

use crate::ops::actions::ActionError;
use crate::ops::policy::Refusal;
use crate::sources::SourceError;

pub const OK: i32 = 0;
/// `diff` found differences (as `argocd app diff`).
pub const DIFFERENCES: i32 = 1;
pub const USAGE: i32 = 2;
pub const REFUSED: i32 = 3;
pub const PERMISSION: i32 = 4;
pub const NOT_FOUND: i32 = 5;
pub const FAILED: i32 = 6;
pub const UNREACHABLE: i32 = 7;

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  ok
  1  diff: there are differences (as `argocd app diff`)
  2  usage or configuration error
  3  refused by policy: needs approval, read-only mode, sync window, operation running,
     auto-sync on (rollback)
  4  permission denied or not authenticated
  5  not found (application, history id, pipeline)
  6  the operation failed, or the app ended Degraded
  7  unreachable or timed out";

/// A usage or configuration problem found by the CLI itself.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub fn for_source(e: &SourceError) -> i32 {
    match e {
        SourceError::Unauthorized { .. } | SourceError::Forbidden(_) => PERMISSION,
        SourceError::NotFound(_) => NOT_FOUND,
        SourceError::Config(_) => USAGE,
        SourceError::Refused(_) => REFUSED,
        SourceError::Unreachable { .. } | SourceError::Timeout { .. } => UNREACHABLE,
        SourceError::Conflict(_) | SourceError::Protocol { .. } => FAILED,
    }
}

pub fn for_refusal(r: &Refusal) -> i32 {
    if r.is_permission() {
        PERMISSION
    } else {
        REFUSED
    }
}

pub fn for_action(e: &ActionError) -> i32 {
    match e {
        ActionError::Refused(r) => for_refusal(r),
        ActionError::Source(s) => for_source(s),
        ActionError::NotFound(_) => NOT_FOUND,
        ActionError::AuditBeforeSend(_) => REFUSED,
        ActionError::Failed(_) => FAILED,
        ActionError::Timeout { .. } => UNREACHABLE,
    }
}

/// The exit code for any error a headless command returns.
pub fn for_error(e: &anyhow::Error) -> i32 {
    if let Some(a) = e.downcast_ref::<ActionError>() {
        return for_action(a);
    }
    if let Some(s) = e.downcast_ref::<SourceError>() {
        return for_source(s);
    }
    if let Some(r) = e.downcast_ref::<Refusal>() {
        return for_refusal(r);
    }
    if e.downcast_ref::<UsageError>().is_some() {
        return USAGE;
    }
    USAGE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_documented_table() {
        let refused: anyhow::Error = ActionError::Refused(Refusal::NeedsApproval {
            app: "a".into(),
            environment: "prod".into(),
        })
        .into();
        assert_eq!(for_error(&refused), REFUSED);
        let denied: anyhow::Error = SourceError::Forbidden("x".into()).into();
        assert_eq!(for_error(&denied), PERMISSION);
        let gone: anyhow::Error = ActionError::Source(SourceError::Unreachable {
            server: "s".into(),
            detail: "d".into(),
        })
        .into();
        assert_eq!(for_error(&gone), UNREACHABLE);
        assert!(EXIT_CODES_HELP.contains("3  refused by policy"));
    }
}
