//! Workloads of an application as an operator watches them roll out: a Deployment's
//! replica counts, its ReplicaSets, its pods, and the verdict `kubectl rollout status`
//! would give.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
    /// Kubernetes phase: Pending, Running, Succeeded, Failed, Unknown.
    pub phase: String,
    pub ready: bool,
    pub restarts: u32,
    /// The waiting reason of the first container that waits (ContainerCreating,
    /// ImagePullBackOff, CrashLoopBackOff), if any.
    pub waiting_reason: Option<String>,
    pub owner_replicaset: Option<String>,
    pub images: Vec<String>,
    pub created_at: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaSetInfo {
    pub name: String,
    pub revision: Option<String>,
    pub desired: u32,
    pub ready: u32,
    pub available: u32,
    pub images: Vec<String>,
}

/// A Deployment's rollout as read from its spec and status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadRollout {
    pub namespace: String,
    pub name: String,
    pub generation: i64,
    pub observed_generation: i64,
    pub desired: u32,
    pub current: u32,
    pub updated: u32,
    pub ready: u32,
    pub available: u32,
    pub images: Vec<String>,
    /// Reason of the `Progressing` condition (`NewReplicaSetAvailable`,
    /// `ReplicaSetUpdated`, `ProgressDeadlineExceeded`).
    pub progressing_reason: Option<String>,
    pub new_replicaset: Option<ReplicaSetInfo>,
    pub old_replicasets: Vec<ReplicaSetInfo>,
    pub pods: Vec<Pod>,
}

/// The verdict on a rollout, with the exact wording `kubectl rollout status` uses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RolloutVerdict {
    Complete,
    InProgress(String),
    Failed(String),
}

impl WorkloadRollout {
    /// The line `kubectl rollout status deployment/NAME --watch=false` prints for this
    /// state, word for word (a failure as kubectl prints it on stderr, `error: ...`).
    pub fn status_line(&self) -> String {
        match self.verdict() {
            RolloutVerdict::Complete => {
                format!("deployment \"{}\" successfully rolled out", self.name)
            }
            RolloutVerdict::InProgress(m) => m,
            RolloutVerdict::Failed(m) => format!("error: {m}"),
        }
    }

    /// Decide as kubectl's `DeploymentStatusViewer` does (CONTRACTS.md "Rollout complete").
    pub fn verdict(&self) -> RolloutVerdict {
        let name = &self.name;
        if self.generation > self.observed_generation {
            return RolloutVerdict::InProgress(
                "Waiting for deployment spec update to be observed...".into(),
            );
        }
        if self.progressing_reason.as_deref() == Some("ProgressDeadlineExceeded") {
            return RolloutVerdict::Failed(format!(
                "deployment \"{name}\" exceeded its progress deadline"
            ));
        }
        if self.updated < self.desired {
            return RolloutVerdict::InProgress(format!(
                "Waiting for deployment \"{name}\" rollout to finish: {} out of {} new replicas have been updated...",
                self.updated, self.desired
            ));
        }
        if self.current > self.updated {
            return RolloutVerdict::InProgress(format!(
                "Waiting for deployment \"{name}\" rollout to finish: {} old replicas are pending termination...",
                self.current - self.updated
            ));
        }
        if self.available < self.updated {
            return RolloutVerdict::InProgress(format!(
                "Waiting for deployment \"{name}\" rollout to finish: {} of {} updated replicas are available...",
                self.available, self.updated
            ));
        }
        RolloutVerdict::Complete
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rollout(desired: u32, current: u32, updated: u32, available: u32) -> WorkloadRollout {
        WorkloadRollout {
            name: "web".into(),
            generation: 2,
            observed_generation: 2,
            desired,
            current,
            updated,
            ready: available,
            available,
            ..Default::default()
        }
    }

    #[test]
    fn verdict_follows_kubectl() {
        assert_eq!(rollout(3, 3, 3, 3).verdict(), RolloutVerdict::Complete);
        assert!(
            matches!(rollout(3, 4, 1, 1).verdict(), RolloutVerdict::InProgress(m) if m.contains("1 out of 3 new replicas"))
        );
        assert!(
            matches!(rollout(3, 4, 3, 3).verdict(), RolloutVerdict::InProgress(m) if m.contains("1 old replicas"))
        );
        assert!(
            matches!(rollout(3, 3, 3, 2).verdict(), RolloutVerdict::InProgress(m) if m.contains("2 of 3 updated"))
        );
        let mut r = rollout(3, 3, 1, 1);
        r.progressing_reason = Some("ProgressDeadlineExceeded".into());
        assert!(matches!(r.verdict(), RolloutVerdict::Failed(_)));
        let mut r = rollout(3, 3, 3, 3);
        r.generation = 3;
        assert!(matches!(r.verdict(), RolloutVerdict::InProgress(_)));
    }
}
