//! After a write whose answer never came (a connection that broke, a timeout, a gateway's
//! 5xx), shipdeck does not send it again: it reads the Application and looks for the
//! operation it sent, either still in `.operation` or already picked up by the controller
//! in `status.operationState` (started after the send). What it finds decides what the
//! operator is told; a sync must never run twice.

use crate::model::{Application, InfoEntry, Operation};
use chrono::{DateTime, Duration as ChronoDuration, Utc};

/// How far the server's clock may be behind ours when comparing `startedAt` with the time
/// shipdeck sent the request.
const CLOCK_SKEW: ChronoDuration = ChronoDuration::seconds(5);

/// What identifies the operation shipdeck sent.
#[derive(Debug, Clone, Default)]
pub struct SentOperation {
    /// Info entries it carried (approval id, operator); every one must be there.
    pub info: Vec<InfoEntry>,
    /// The revision it asked for, when known (a rollback's history entry).
    pub revision: Option<String>,
    /// When it was sent (our clock).
    pub sent_at: DateTime<Utc>,
}

impl SentOperation {
    pub fn new(info: Vec<InfoEntry>, revision: Option<String>) -> Self {
        Self {
            info,
            revision,
            sent_at: Utc::now(),
        }
    }

    fn matches(&self, op: &Operation) -> bool {
        let info_ok = self.info.iter().all(|want| op.info.contains(want));
        let revision_ok = match (&self.revision, op.sync.as_ref()) {
            (None, _) => true,
            (Some(want), Some(sync)) => {
                sync.revision.as_deref() == Some(want.as_str()) || sync.revisions.contains(want)
            }
            (Some(_), None) => false,
        };
        info_ok && revision_ok
    }

    /// Does `app` show this operation, pending or started after it was sent?
    pub fn landed_in(&self, app: &Application) -> bool {
        if app.operation.as_ref().is_some_and(|op| self.matches(op)) {
            return true;
        }
        let Some(state) = app.status.operation_state.as_ref() else {
            return false;
        };
        let started_after = state
            .started_at
            .as_deref()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .is_some_and(|t| t.with_timezone(&Utc) >= self.sent_at - CLOCK_SKEW);
        started_after && self.matches(&state.operation)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{OperationState, SyncOperation};

    fn entry(n: &str, v: &str) -> InfoEntry {
        InfoEntry {
            name: n.into(),
            value: v.into(),
        }
    }

    #[test]
    fn finds_the_operation_pending_or_started_after_the_send() {
        let sent = SentOperation::new(vec![entry("approval-id", "a1")], None);
        let op = Operation {
            info: vec![entry("approval-id", "a1"), entry("initiated-by", "ann")],
            sync: Some(SyncOperation::default()),
            ..Default::default()
        };
        let mut app = Application::default();
        assert!(!sent.landed_in(&app));
        app.operation = Some(op.clone());
        assert!(sent.landed_in(&app));
        app.operation = None;
        let started = |t: DateTime<Utc>| -> OperationState {
            serde_json::from_value(serde_json::json!({
                "operation": op, "phase": "Running", "startedAt": t.to_rfc3339(),
            }))
            .unwrap()
        };
        app.status.operation_state = Some(started(Utc::now()));
        assert!(sent.landed_in(&app));
        // An older operation with the same entries is not this one.
        app.status.operation_state = Some(started(Utc::now() - ChronoDuration::minutes(5)));
        assert!(!sent.landed_in(&app));
        // Another approval is not this one.
        let other = SentOperation::new(vec![entry("approval-id", "a2")], None);
        app.operation = Some(op);
        assert!(!other.landed_in(&app));
        let rev = SentOperation::new(vec![], Some("abc".into()));
        assert!(!rev.landed_in(&app));
    }
}
