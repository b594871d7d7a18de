//! The one follower of a started sync or rollback, for both front ends: it looks at the
//! app (and, once Argo CD has applied, at its workloads) until the operation ends, and
//! says how it ended in one line: `✓ NAME Synced Healthy` or `✗ NAME: why` (Argo CD's
//! operation message, the failing pods and their waiting reasons, a deadline passed).
//! The outcome is written to the audit log by [`super::follow_operation`].

use super::{ActionError, OurOperation, WaitState, judge};
use crate::model::text::sanitize;
use crate::model::{Application, HealthStatus, RolloutVerdict, WorkloadRollout};
use crate::sources::{ArgoSource, Refresh, SourceError};
use std::time::Duration;

/// How long a follower waits for an operation to end when nothing else is configured
/// (`[poll] follow_deadline_seconds`).
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(300);

/// Container waiting reasons that do not clear on their own: a rollout with such a pod
/// has failed, whatever its progress deadline says.
pub const FAILING_REASONS: &[&str] = &[
    "ImagePullBackOff",
    "ErrImagePull",
    "CrashLoopBackOff",
    "InvalidImageName",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

/// The failing pods of the workloads and why, e.g.
/// `pod checkout-7d9-abc ImagePullBackOff (ghcr.io/acme/checkout:1a2b)`, and rollouts
/// past their progress deadline.
pub fn failing(workloads: &[WorkloadRollout]) -> Vec<String> {
    let mut out = Vec::new();
    for w in workloads {
        if let RolloutVerdict::Failed(why) = w.verdict() {
            out.push(sanitize(&why).to_string());
        }
        // Until the controller saw the new spec, the pods are the old rollout's.
        if w.generation > w.observed_generation {
            continue;
        }
        let new_rs = w.new_replicaset.as_ref().map(|r| r.name.as_str());
        for p in &w.pods {
            // An old ReplicaSet's broken pod (the failure being fixed) is not this
            // rollout failing.
            if let (Some(rs), Some(owner)) = (new_rs, p.owner_replicaset.as_deref())
                && rs != owner
            {
                continue;
            }
            let Some(reason) = p.waiting_reason.as_deref() else {
                continue;
            };
            if FAILING_REASONS.contains(&reason) {
                let image = p
                    .images
                    .first()
                    .map(|i| format!(" ({})", sanitize(i)))
                    .unwrap_or_default();
                out.push(format!(
                    "pod {} {}{image}",
                    sanitize(&p.name),
                    sanitize(reason)
                ));
            }
        }
    }
    out
}

/// The one line a front end shows when a follow ends: `✓ ...` or `✗ ...`.
pub fn outcome_line(name: &str, action: &str, r: &Result<Application, ActionError>) -> String {
    match r {
        Ok(app) => format!(
            "✓ {action} of {} done: {} {}",
            sanitize(name),
            app.status.sync.status,
            app.status.health.status
        ),
        Err(e) => format!(
            "✗ {action} of {} failed: {}",
            sanitize(name),
            sanitize(&e.to_string())
        ),
    }
}

/// Follow until our operation (`ours`: its `shipdeck-op` id, else started after the
/// previous one) ends and the app settles, fails (Argo CD's `Failed`/`Error` with its
/// message, a failing pod, a rollout past its deadline, Degraded health once applied), or
/// `deadline` passes. Another shipdeck operation taking its place once ours was seen ends
/// the follow with that said (its end is not ours). A source error during the follow is
/// retried until the deadline (a dropped connection is not a failed sync).
pub async fn follow<S: ArgoSource>(
    src: &S,
    name: &str,
    ours: &OurOperation,
    deadline: Duration,
    poll: Duration,
) -> Result<Application, ActionError> {
    let end = tokio::time::Instant::now() + deadline;
    let mut last_err: Option<SourceError>;
    let mut last: Option<Application> = None;
    let mut last_failing: Vec<String> = Vec::new();
    let mut seen_ours = false;
    loop {
        match src.get_application(name, Refresh::None).await {
            Ok(app) => {
                last_err = None;
                if let Some(why) = superseded(&app, ours, &mut seen_ours) {
                    return Err(ActionError::Failed(format!("{}: {why}", sanitize(name))));
                }
                match judge(&app, ours) {
                    WaitState::Done => return Ok(app),
                    WaitState::Failed(m) => {
                        return Err(ActionError::Failed(format!("{}: {m}", sanitize(name))));
                    }
                    WaitState::Running => {}
                }
                if applied(&app, ours) {
                    match src.workloads(&app).await {
                        Ok(w) => {
                            let f = failing(&w);
                            if !f.is_empty() {
                                return Err(ActionError::Failed(format!(
                                    "{}: the rollout fails: {}",
                                    sanitize(name),
                                    f.join("; ")
                                )));
                            }
                            last_failing = f;
                        }
                        Err(e) => tracing::debug!("{name}: workloads not read ({e})"),
                    }
                }
                last = Some(app);
            }
            Err(
                e @ (SourceError::Unauthorized { .. }
                | SourceError::Forbidden(_)
                | SourceError::NotFound(_)),
            ) => return Err(e.into()),
            Err(e) => last_err = Some(e),
        }
        if tokio::time::Instant::now() + poll > end {
            return Err(gave_up(name, deadline, last, last_failing, last_err));
        }
        tokio::time::sleep(poll).await;
    }
}

/// Once our operation was seen (pending or in the operation state, by its id), another
/// shipdeck operation in its place means ours ended unseen: say so rather than judge the
/// other one's end as ours.
fn superseded(app: &Application, ours: &OurOperation, seen_ours: &mut bool) -> Option<String> {
    let pending = app.operation.as_ref();
    let state = app.status.operation_state.as_ref().map(|s| &s.operation);
    if pending.is_some_and(|o| ours.is_ours_by_id(o))
        || state.is_some_and(|o| ours.is_ours_by_id(o))
    {
        *seen_ours = true;
        return None;
    }
    if !*seen_ours {
        return None;
    }
    let other = pending
        .filter(|o| ours.is_other(o))
        .or(state.filter(|o| ours.is_other(o)))?;
    let id = super::op_id_of(other).unwrap_or_default();
    Some(format!(
        "another operation ({}={}) replaced ours before its end was seen",
        super::INFO_OP_ID,
        sanitize(id)
    ))
}

/// Whether our operation has been applied (it ended `Succeeded`): from then on the
/// workloads are ours to judge.
fn applied(app: &Application, ours: &OurOperation) -> bool {
    let Some(op) = &app.status.operation_state else {
        return false;
    };
    app.operation.is_none()
        && ours.is(op)
        && op.finished_at.is_some()
        && op.phase == crate::model::OperationPhase::Succeeded
}

fn gave_up(
    name: &str,
    deadline: Duration,
    last: Option<Application>,
    failing: Vec<String>,
    last_err: Option<SourceError>,
) -> ActionError {
    let seconds = deadline.as_secs();
    let name = sanitize(name);
    if let Some(app) = last {
        let h = app.status.health.status;
        let msg = app
            .status
            .health
            .message
            .as_deref()
            .map(|m| format!(" ({})", sanitize(m)))
            .unwrap_or_default();
        if h == HealthStatus::Degraded {
            let mut why = format!("{name} is Degraded after the operation{msg}");
            if !failing.is_empty() {
                why.push_str(": ");
                why.push_str(&failing.join("; "));
            }
            return ActionError::Failed(why);
        }
        return ActionError::Timeout {
            what: format!("{name} is {} and {h}{msg}", app.status.sync.status),
            seconds,
        };
    }
    match last_err {
        Some(e) => e.into(),
        None => ActionError::Timeout {
            what: format!("{name} did not answer"),
            seconds,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Pod, ReplicaSetInfo};

    fn pod(name: &str, rs: &str, reason: Option<&str>) -> Pod {
        Pod {
            name: name.into(),
            owner_replicaset: Some(rs.into()),
            waiting_reason: reason.map(str::to_owned),
            images: vec!["img:2".into()],
            ..Default::default()
        }
    }

    fn rollout(pods: Vec<Pod>) -> WorkloadRollout {
        WorkloadRollout {
            name: "api".into(),
            generation: 2,
            observed_generation: 2,
            desired: 2,
            current: 2,
            updated: 1,
            new_replicaset: Some(ReplicaSetInfo {
                name: "api-new".into(),
                ..Default::default()
            }),
            pods,
            ..Default::default()
        }
    }

    #[test]
    fn only_the_new_replicasets_pods_fail_a_rollout() {
        let w = rollout(vec![
            pod("api-old-1", "api-old", Some("ImagePullBackOff")),
            pod("api-new-1", "api-new", Some("ContainerCreating")),
        ]);
        assert!(
            failing(&[w]).is_empty(),
            "the old broken pod is what is being fixed"
        );
        let w = rollout(vec![pod("api-new-1", "api-new", Some("CrashLoopBackOff"))]);
        assert_eq!(
            failing(&[w]),
            vec!["pod api-new-1 CrashLoopBackOff (img:2)".to_string()]
        );
        let mut w = rollout(vec![pod("api-new-1", "api-new", Some("ErrImagePull"))]);
        w.generation = 3;
        assert!(failing(&[w]).is_empty(), "not observed yet: not judged");
    }
}
