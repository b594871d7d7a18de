//! Exit codes of the headless commands, the scripting contract: documented in `--help` and
//! the README's table, and derived here, in one place, from the error an action, a source,
//! the config or the command line returned: every error becomes a [`Kind`], and [`TABLE`]
//! maps kinds to codes. `tests/exit_codes.rs` walks every row of the README's table against
//! a sandbox.

use crate::config::ConfigError;
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

/// What kind of failure an error is; [`TABLE`] gives its exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A bad flag, value or request (unknown workflow input), or a config shipdeck will not
    /// run with.
    Usage,
    /// Policy said no: needs approval or confirmation, read-only, sync window, operation
    /// running, auto-sync on for a rollback.
    Refused,
    /// Not authenticated, or not allowed.
    Permission,
    /// No such application, history id, pipeline, workflow or job.
    NotFound,
    /// The operation failed, or the app ended Degraded; an answer shipdeck cannot read.
    Failed,
    /// The server could not be reached, answered "unavailable", or timed out.
    Unreachable,
}

/// The one table from error kinds to exit codes.
pub const TABLE: &[(Kind, i32)] = &[
    (Kind::Usage, USAGE),
    (Kind::Refused, REFUSED),
    (Kind::Permission, PERMISSION),
    (Kind::NotFound, NOT_FOUND),
    (Kind::Failed, FAILED),
    (Kind::Unreachable, UNREACHABLE),
];

/// The exit code of a kind, from [`TABLE`].
pub fn code(kind: Kind) -> i32 {
    TABLE
        .iter()
        .find(|(k, _)| *k == kind)
        .map_or(USAGE, |(_, c)| *c)
}

/// Every documented code with its meaning, in the order of `--help` and the README.
pub const CODES: &[(i32, &str)] = &[
    (OK, "ok"),
    (
        DIFFERENCES,
        "diff: there are differences (as `argocd app diff`); plan: not proven, or something in the way",
    ),
    (
        USAGE,
        "usage or configuration error: a bad flag or value, an unknown theme or workflow input, a config file that does not parse or has a wrong value, a missing `--config`",
    ),
    (
        REFUSED,
        "refused by policy: needs approval or confirmation (or a second approver: the four-eyes request is written, nothing sent), read-only mode, sync window, operation running, auto-sync on (rollback)",
    ),
    (PERMISSION, "permission denied or not authenticated"),
    (
        NOT_FOUND,
        "not found: application, history id, pipeline, workflow or job",
    ),
    (FAILED, "the operation failed, or the app ended Degraded"),
    (
        UNREACHABLE,
        "unreachable (including a server answering 502/503), or timed out",
    ),
];

pub const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  ok
  1  diff: there are differences (as `argocd app diff`); plan: not proven, or something in the way
  2  usage or configuration error: a bad flag or value, an unknown theme or workflow
     input, a config file that does not parse or has a wrong value, a missing --config
  3  refused by policy: needs approval or confirmation (or a second approver: the
     four-eyes request is written, nothing sent), read-only mode, sync window,
     operation running, auto-sync on (rollback)
  4  permission denied or not authenticated
  5  not found: application, history id, pipeline, workflow or job
  6  the operation failed, or the app ended Degraded
  7  unreachable (including a server answering 502/503), or timed out";

/// A usage or configuration problem found by the CLI itself.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

pub fn kind_of_source(e: &SourceError) -> Kind {
    match e {
        SourceError::Unauthorized { .. } | SourceError::Forbidden(_) => Kind::Permission,
        SourceError::NotFound(_) => Kind::NotFound,
        SourceError::Config(_) | SourceError::Invalid(_) => Kind::Usage,
        SourceError::Refused(_) => Kind::Refused,
        SourceError::Unreachable { .. } | SourceError::Timeout { .. } => Kind::Unreachable,
        SourceError::Conflict(_) | SourceError::Protocol { .. } => Kind::Failed,
    }
}

pub fn kind_of_refusal(r: &Refusal) -> Kind {
    if r.is_permission() {
        Kind::Permission
    } else {
        Kind::Refused
    }
}

pub fn kind_of_action(e: &ActionError) -> Kind {
    match e {
        ActionError::Refused(r) => kind_of_refusal(r),
        ActionError::Source(s) => kind_of_source(s),
        ActionError::NotFound(_) => Kind::NotFound,
        ActionError::AuditBeforeSend(_) => Kind::Refused,
        ActionError::Failed(_) => Kind::Failed,
        ActionError::Timeout { .. } => Kind::Unreachable,
    }
}

pub fn kind_of_promote(e: &crate::ops::promote::PromoteError) -> Kind {
    use crate::ops::promote::PromoteError as P;
    match e {
        P::Refused(_) => Kind::Refused,
        P::NotFound(_) => Kind::NotFound,
        P::Permission(_) => Kind::Permission,
        P::Failed(_) => Kind::Failed,
        P::Usage(_) => Kind::Usage,
    }
}

/// The kind of any error a command returns; what nobody classified is a usage error.
pub fn kind_of(e: &anyhow::Error) -> Kind {
    if let Some(a) = e.downcast_ref::<ActionError>() {
        kind_of_action(a)
    } else if let Some(s) = e.downcast_ref::<SourceError>() {
        kind_of_source(s)
    } else if let Some(r) = e.downcast_ref::<Refusal>() {
        kind_of_refusal(r)
    } else if let Some(p) = e.downcast_ref::<crate::ops::promote::PromoteError>() {
        kind_of_promote(p)
    } else {
        // UsageError, ConfigError, and anything unexpected.
        Kind::Usage
    }
}

pub fn for_source(e: &SourceError) -> i32 {
    code(kind_of_source(e))
}

pub fn for_refusal(r: &Refusal) -> i32 {
    code(kind_of_refusal(r))
}

pub fn for_action(e: &ActionError) -> i32 {
    code(kind_of_action(e))
}

/// The exit code for any error a headless command returns.
pub fn for_error(e: &anyhow::Error) -> i32 {
    code(kind_of(e))
}

/// Print a config error (sanitized) and give its exit code, 2.
pub fn report(e: ConfigError) -> i32 {
    eprintln!("shipdeck: {}", crate::model::text::sanitize(&e.to_string()));
    code(Kind::Usage)
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
        let invalid: anyhow::Error = SourceError::Invalid("unexpected input".into()).into();
        assert_eq!(for_error(&invalid), USAGE);
        let config: anyhow::Error = ConfigError {
            file: "c.toml".into(),
            line: Some(1),
            key: "read_only".into(),
            reason: "wrong type".into(),
            allowed: "true or false".into(),
        }
        .into();
        assert_eq!(for_error(&config), USAGE);
    }

    #[test]
    fn help_lists_every_code_once_and_the_table_covers_every_kind() {
        for (c, _) in CODES {
            assert_eq!(
                EXIT_CODES_HELP.matches(&format!("\n  {c}  ")).count(),
                1,
                "{c}"
            );
        }
        for k in [
            Kind::Usage,
            Kind::Refused,
            Kind::Permission,
            Kind::NotFound,
            Kind::Failed,
            Kind::Unreachable,
        ] {
            assert_eq!(TABLE.iter().filter(|(x, _)| *x == k).count(), 1, "{k:?}");
        }
    }
}
