//! Approvals: what an operator gives to let a change into a gated environment (the app's
//! name typed again, a reason) and the record kept of it (audit log, `info` entries on the
//! Argo CD operation). It must not decide whether an approval is needed (that is
//! `policy`) nor send anything.

use crate::model::{AppId, ApprovalRecord, InfoEntry, Revision};
use rand::Rng;

/// An operator's approval as given (the console's typed name, the CLI's `--approve APP
/// --reason TEXT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    /// The application name the operator typed; must equal the app acted on.
    pub named_app: String,
    pub reason: Option<String>,
    pub operator: String,
}

/// Info entry names Argo CD shows on the operation.
pub const INFO_APPROVED_BY: &str = "approved-by";
pub const INFO_REASON: &str = "reason";
pub const INFO_APPROVAL_ID: &str = "approval-id";

/// A fresh approval id: time-ordered and unique enough to find one line in the audit log.
pub fn new_id(now: chrono::DateTime<chrono::Utc>) -> String {
    let suffix: u32 = rand::rng().random();
    format!("{}-{suffix:08x}", now.format("%Y%m%dT%H%M%SZ"))
}

/// The record of an approval about to be used for `app`.
pub fn record(
    approval: &Approval,
    app: &AppId,
    environment: &str,
    from: Option<Revision>,
    to: Option<Revision>,
    diff_digest: Option<String>,
) -> ApprovalRecord {
    let at = chrono::Utc::now();
    ApprovalRecord {
        id: new_id(at),
        app: app.clone(),
        environment: environment.to_string(),
        approved_by: approval.operator.clone(),
        reason: approval.reason.clone().filter(|r| !r.trim().is_empty()),
        from_revision: from,
        to_revision: to,
        diff_digest,
        at,
    }
}

/// The `info` entries that carry an approval on the Argo CD operation.
pub fn info_entries(record: &ApprovalRecord) -> Vec<InfoEntry> {
    let mut out = vec![InfoEntry {
        name: INFO_APPROVED_BY.into(),
        value: record.approved_by.clone(),
    }];
    if let Some(r) = &record.reason {
        out.push(InfoEntry {
            name: INFO_REASON.into(),
            value: r.clone(),
        });
    }
    out.push(InfoEntry {
        name: INFO_APPROVAL_ID.into(),
        value: record.id.clone(),
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_entries_carry_who_why_and_which() {
        let a = Approval {
            named_app: "shop-prod".into(),
            reason: Some("release 42".into()),
            operator: "ana".into(),
        };
        let r = record(
            &a,
            &AppId::new("i", "argocd", "shop-prod"),
            "prod",
            Some(Revision::new("a")),
            Some(Revision::new("b")),
            Some("d".into()),
        );
        let names: Vec<_> = info_entries(&r)
            .into_iter()
            .map(|e| (e.name, e.value))
            .collect();
        assert_eq!(names[0], ("approved-by".to_string(), "ana".to_string()));
        assert_eq!(names[1], ("reason".to_string(), "release 42".to_string()));
        assert_eq!(names[2].0, "approval-id");
        assert_eq!(names[2].1, r.id);
        assert_ne!(new_id(r.at), new_id(r.at));
    }
}
