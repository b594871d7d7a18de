//! Four-eyes approvals (`approvers = 2`): the request one operator writes on the
//! Application (annotation [`ANNOTATION`], so every operator's shipdeck sees it), and the
//! rules a second operator's approval is judged by: a different identity as the server
//! reports it, before the request expires, for the same target revision and diff digest.
//! Pure: no I/O; the clock is passed in. Writing, approving and sending are
//! `ops::actions::foureyes`.

use crate::model::Application;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// The annotation a pending request lives in (JSON of [`ApprovalRequest`]).
pub const ANNOTATION: &str = "shipdeck.io/approval-request";

/// How long a request stands when config says nothing.
pub const DEFAULT_TTL: &str = "4h";

/// Info entry names the approved operation carries besides `approved-by` and `reason`.
pub const INFO_REQUESTED_BY: &str = "requested-by";
pub const INFO_REQUEST_REASON: &str = "request-reason";

/// What the request asks to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RequestAction {
    Sync,
    Rollback,
}

impl RequestAction {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestAction::Sync => "sync",
            RequestAction::Rollback => "rollback",
        }
    }
}

/// A pending request for a second operator's approval, as stored on the Application.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRequest {
    pub id: String,
    pub action: RequestAction,
    /// The requester as the server reported them (Argo CD userinfo, SelfSubjectReview).
    pub requested_by: String,
    pub reason: String,
    pub at: DateTime<Utc>,
    pub expires: DateTime<Utc>,
    pub environment: String,
    /// The revision the sync or rollback goes to; the approval sends exactly this one.
    pub target_revision: Option<String>,
    /// Digest of the diff the requester saw ([`crate::ops::diff::AppDiff::digest`]).
    pub diff_digest: Option<String>,
    /// The history id a rollback returns to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub history_id: Option<i64>,
    #[serde(default)]
    pub prune: bool,
    /// How many approvals the environment asks for (the requester's counts as one).
    pub approvers: u32,
}

/// Where a request stands now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// Waiting for a second approver.
    Waiting,
    Expired {
        at: DateTime<Utc>,
    },
    /// Git moved or the diff changed since it was requested: it must be requested again.
    Void {
        why: String,
    },
}

impl Standing {
    /// The words the board, `:pending` and refusals use.
    pub fn describe(&self) -> String {
        match self {
            Standing::Waiting => "waiting for a second approver".into(),
            Standing::Expired { at } => format!("expired at {}", at.format("%Y-%m-%d %H:%M UTC")),
            Standing::Void { why } => format!("void: {why}"),
        }
    }
}

/// The request on `app`: None when there is none; Err when the annotation is there but not
/// one shipdeck can read (refused: it is never guessed at).
pub fn request_of(app: &Application) -> Option<Result<ApprovalRequest, String>> {
    let raw = app.metadata.annotations.get(ANNOTATION)?;
    Some(serde_json::from_str(raw).map_err(|e| {
        format!(
            "the {ANNOTATION} annotation on {} is not a request shipdeck can read ({e}); remove it and request again",
            crate::model::text::sanitize(&app.metadata.name)
        )
    }))
}

/// Judge a request against what the app would do now: the clock first, then the target
/// revision, then the diff digest (None when it could not be computed: fail closed).
pub fn standing(
    req: &ApprovalRequest,
    now: DateTime<Utc>,
    target_revision: Option<&str>,
    diff_digest: Option<&str>,
) -> Standing {
    if now >= req.expires {
        return Standing::Expired { at: req.expires };
    }
    if req.target_revision.as_deref() != target_revision {
        return Standing::Void {
            why: format!(
                "Git moved: requested for {}, the target is now {}",
                short(req.target_revision.as_deref()),
                short(target_revision)
            ),
        };
    }
    match (req.diff_digest.as_deref(), diff_digest) {
        (Some(a), Some(b)) if a == b => Standing::Waiting,
        (_, None) => Standing::Void {
            why: "the diff cannot be computed now, so it cannot be shown to be the one requested"
                .into(),
        },
        _ => Standing::Void {
            why: "the diff changed since it was requested".into(),
        },
    }
}

fn short(r: Option<&str>) -> String {
    match r {
        Some(r) => r.chars().take(7).collect(),
        None => "(none)".into(),
    }
}

/// Parse a TTL such as `4h`, `90m`, `1h30m`, `45s`, `2d`. Anything else (empty, zero,
/// unknown units, overflow) is an error: config that cannot be read fails closed.
pub fn parse_ttl(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let bad = || format!("{s:?} is not a duration (e.g. \"4h\", \"90m\", \"1h30m\")");
    if t.is_empty() {
        return Err(bad());
    }
    let mut total: i64 = 0;
    let mut num = String::new();
    for c in t.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: i64 = num.parse().map_err(|_| bad())?;
        num.clear();
        let unit = match c {
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(unit)
            .and_then(|x| total.checked_add(x))
            .ok_or_else(bad)?;
    }
    if !num.is_empty() || total <= 0 || total > 30 * 86_400 {
        return Err(bad());
    }
    Ok(Duration::seconds(total))
}

/// A request's text for the board cell: "1 of 2 approvals".
pub fn progress(req: &ApprovalRequest) -> String {
    format!("1 of {} approvals", req.approvers.max(2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(now: DateTime<Utc>) -> ApprovalRequest {
        ApprovalRequest {
            id: "r1".into(),
            action: RequestAction::Sync,
            requested_by: "admin".into(),
            reason: "release 42".into(),
            at: now,
            expires: now + Duration::hours(4),
            environment: "prod".into(),
            target_revision: Some("abcdef1234".into()),
            diff_digest: Some("d1".into()),
            history_id: None,
            prune: false,
            approvers: 2,
        }
    }

    #[test]
    fn standing_checks_clock_revision_and_digest() {
        let now = Utc::now();
        let r = req(now);
        assert_eq!(
            standing(&r, now, Some("abcdef1234"), Some("d1")),
            Standing::Waiting
        );
        assert!(matches!(
            standing(&r, now + Duration::hours(5), Some("abcdef1234"), Some("d1")),
            Standing::Expired { .. }
        ));
        let moved = standing(&r, now, Some("0123456789"), Some("d1")).describe();
        assert!(
            moved.contains("Git moved") && moved.contains("abcdef1"),
            "{moved}"
        );
        assert!(
            standing(&r, now, Some("abcdef1234"), Some("d2"))
                .describe()
                .contains("diff changed")
        );
        assert!(matches!(
            standing(&r, now, Some("abcdef1234"), None),
            Standing::Void { .. }
        ));
    }

    #[test]
    fn ttl_parses_or_fails_closed() {
        assert_eq!(parse_ttl("4h"), Ok(Duration::hours(4)));
        assert_eq!(parse_ttl("1h30m"), Ok(Duration::minutes(90)));
        assert_eq!(parse_ttl("45s"), Ok(Duration::seconds(45)));
        for bad in ["", "4", "h", "0h", "4x", "-1h", "4 hours", "99999d"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn request_round_trips_through_the_annotation() {
        let r = req(Utc::now());
        let mut app = Application::default();
        assert!(request_of(&app).is_none());
        app.metadata.annotations.insert(
            ANNOTATION.into(),
            serde_json::to_string(&r).unwrap_or_default(),
        );
        assert_eq!(request_of(&app), Some(Ok(r)));
        app.metadata
            .annotations
            .insert(ANNOTATION.into(), "{not json".into());
        assert!(matches!(request_of(&app), Some(Err(_))));
    }
}
