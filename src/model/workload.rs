//! Workloads of an application as an operator watches them roll out: a Deployment's
//! replica counts, its ReplicaSets, its pods, and the verdict `kubectl rollout status`
//! would give; StatefulSets, DaemonSets, Jobs and CronJobs with their pods (or Jobs) and
//! the counts `kubectl get` shows for them.

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
    /// The controlling owner (ReplicaSet, StatefulSet, DaemonSet, Job): the pod's
    /// `ownerReferences` in core mode, its `parentRefs` in Argo CD's resource tree.
    #[serde(default)]
    pub owner: Option<ObjectRef>,
}

/// A Kubernetes object named by kind, namespace, name (and uid when known).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub uid: String,
}

/// What a StatefulSet's status and update strategy say (for kubectl's rollout words).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatefulSetState {
    pub current_replicas: u32,
    pub current_revision: String,
    pub update_revision: String,
    /// `spec.updateStrategy.type` (`RollingUpdate`, `OnDelete`).
    pub strategy: String,
    /// `spec.updateStrategy.rollingUpdate` is set, and its partition.
    pub rolling_update: bool,
    pub partition: Option<i32>,
}

/// A Job's completions as `kubectl get jobs` shows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobState {
    pub completions: u32,
    pub succeeded: u32,
    pub failed: u32,
    pub active: u32,
    /// A condition `Complete`, `Failed`, `Suspended`, ... with status True, as kubectl's
    /// STATUS column reads it; None while it runs.
    pub condition: Option<String>,
    /// The message of a `Failed` condition.
    pub message: Option<String>,
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

/// A Deployment's rollout as read from its spec and status; or a StatefulSet, DaemonSet,
/// Job or CronJob (`kind`) with the same counts where they mean the same (desired =
/// `spec.replicas` / `desiredNumberScheduled` / `completions`, ready, updated, available).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadRollout {
    /// `Deployment` (also when empty), `StatefulSet`, `DaemonSet`, `Job`, `CronJob`.
    #[serde(default)]
    pub kind: String,
    pub namespace: String,
    pub name: String,
    #[serde(default)]
    pub uid: String,
    /// The controlling owner (a Job's CronJob), if any.
    #[serde(default)]
    pub owner: Option<ObjectRef>,
    #[serde(default)]
    pub statefulset: Option<StatefulSetState>,
    #[serde(default)]
    pub job: Option<JobState>,
    /// DaemonSet: `spec.updateStrategy.type`.
    #[serde(default)]
    pub strategy: Option<String>,
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
    /// The kind, `Deployment` when unset.
    pub fn kind(&self) -> &str {
        if self.kind.is_empty() {
            "Deployment"
        } else {
            &self.kind
        }
    }

    /// The line `kubectl rollout status KIND/NAME --watch=false` prints for this state,
    /// word for word (a failure as kubectl prints it on stderr, `error: ...`). Jobs and
    /// CronJobs have no rollout status in kubectl: their line is `kubectl get`'s STATUS
    /// and COMPLETIONS ([`Self::summary`]).
    pub fn status_line(&self) -> String {
        if !self.rolls_out() {
            return "error: rollout status is only available for RollingUpdate strategy type"
                .into();
        }
        match (self.kind(), self.verdict()) {
            ("Deployment", RolloutVerdict::Complete) => {
                format!("deployment \"{}\" successfully rolled out", self.name)
            }
            ("Job" | "CronJob", _) => self.summary(),
            (_, RolloutVerdict::Complete) => self.complete_words(),
            (_, RolloutVerdict::InProgress(m)) => m,
            (_, RolloutVerdict::Failed(m)) => format!("error: {m}"),
        }
    }

    /// Whether kubectl has a rollout status for the workload: a StatefulSet or DaemonSet
    /// only with the `RollingUpdate` strategy (`OnDelete` ones are updated by hand).
    fn rolls_out(&self) -> bool {
        match self.kind() {
            "StatefulSet" => self
                .statefulset
                .as_ref()
                .is_none_or(|s| s.strategy == "RollingUpdate"),
            "DaemonSet" => self
                .strategy
                .as_deref()
                .is_none_or(|s| s == "RollingUpdate"),
            _ => true,
        }
    }

    /// kubectl's words for a finished StatefulSet or DaemonSet rollout.
    fn complete_words(&self) -> String {
        match (self.kind(), &self.statefulset) {
            ("StatefulSet", Some(s)) if s.strategy == "RollingUpdate" && s.rolling_update => {
                format!(
                    "partitioned roll out complete: {} new pods have been updated...",
                    self.updated
                )
            }
            ("StatefulSet", Some(s)) => format!(
                "statefulset rolling update complete {} pods at revision {}...",
                s.current_replicas, s.current_revision
            ),
            ("DaemonSet", _) => format!("daemon set \"{}\" successfully rolled out", self.name),
            _ => String::new(),
        }
    }

    /// What `kubectl get` shows for the workload in one line: a StatefulSet's READY
    /// (`2/3`), a DaemonSet's DESIRED CURRENT READY UP-TO-DATE AVAILABLE, a Job's STATUS
    /// and COMPLETIONS, a Deployment's READY UP-TO-DATE AVAILABLE.
    pub fn summary(&self) -> String {
        match self.kind() {
            "StatefulSet" => format!("ready {}/{}", self.ready, self.desired),
            "DaemonSet" => format!(
                "desired {} current {} ready {} up-to-date {} available {}",
                self.desired, self.current, self.ready, self.updated, self.available
            ),
            "Job" => {
                let j = self.job.clone().unwrap_or_default();
                let status = j.condition.as_deref().unwrap_or("Running");
                format!("{status} {}/{}", j.succeeded, j.completions)
            }
            "CronJob" => String::new(),
            _ => format!(
                "ready {}/{} up-to-date {} available {}",
                self.ready, self.desired, self.updated, self.available
            ),
        }
    }

    /// Decide as kubectl's status viewers do: `DeploymentStatusViewer` (CONTRACTS.md
    /// "Rollout complete"), `StatefulSetStatusViewer`, `DaemonSetStatusViewer`; a Job by
    /// its conditions (kubectl has no rollout status for Jobs).
    pub fn verdict(&self) -> RolloutVerdict {
        match self.kind() {
            "StatefulSet" => return self.statefulset_verdict(),
            "DaemonSet" => return self.daemonset_verdict(),
            "Job" => {
                let j = self.job.clone().unwrap_or_default();
                return match j.condition.as_deref() {
                    Some("Complete") => RolloutVerdict::Complete,
                    Some("Failed") => RolloutVerdict::Failed(
                        j.message
                            .unwrap_or_else(|| format!("job \"{}\" failed", self.name)),
                    ),
                    _ => RolloutVerdict::InProgress(self.summary()),
                };
            }
            "CronJob" => return RolloutVerdict::Complete,
            _ => {}
        }
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

    fn statefulset_verdict(&self) -> RolloutVerdict {
        let s = self.statefulset.clone().unwrap_or_default();
        if !self.rolls_out() {
            // Nothing rolls on its own (OnDelete): not a failure, kubectl just has no
            // status for it (its line says so).
            return RolloutVerdict::Complete;
        }
        if self.observed_generation == 0 || self.generation > self.observed_generation {
            return RolloutVerdict::InProgress(
                "Waiting for statefulset spec update to be observed...".into(),
            );
        }
        if self.ready < self.desired {
            return RolloutVerdict::InProgress(format!(
                "Waiting for {} pods to be ready...",
                self.desired - self.ready
            ));
        }
        if s.rolling_update {
            if let Some(p) = s.partition {
                let want = i64::from(self.desired) - i64::from(p);
                if i64::from(self.updated) < want {
                    return RolloutVerdict::InProgress(format!(
                        "Waiting for partitioned roll out to finish: {} out of {want} new pods have been updated...",
                        self.updated
                    ));
                }
            }
            return RolloutVerdict::Complete;
        }
        if s.update_revision != s.current_revision {
            return RolloutVerdict::InProgress(format!(
                "waiting for statefulset rolling update to complete {} pods at revision {}...",
                self.updated, s.update_revision
            ));
        }
        RolloutVerdict::Complete
    }

    fn daemonset_verdict(&self) -> RolloutVerdict {
        let name = &self.name;
        if !self.rolls_out() {
            return RolloutVerdict::Complete;
        }
        if self.generation > self.observed_generation {
            return RolloutVerdict::InProgress(
                "Waiting for daemon set spec update to be observed...".into(),
            );
        }
        if self.updated < self.desired {
            return RolloutVerdict::InProgress(format!(
                "Waiting for daemon set \"{name}\" rollout to finish: {} out of {} new pods have been updated...",
                self.updated, self.desired
            ));
        }
        if self.available < self.desired {
            return RolloutVerdict::InProgress(format!(
                "Waiting for daemon set \"{name}\" rollout to finish: {} of {} updated pods are available...",
                self.available, self.desired
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

    /// kubectl's `StatefulSetStatusViewer` and `DaemonSetStatusViewer`, word for word.
    #[test]
    fn statefulset_and_daemonset_words_are_kubectls() {
        let sts = |ready: u32, updated: u32, partition: Option<i32>, cur: &str, upd: &str| {
            WorkloadRollout {
                kind: "StatefulSet".into(),
                name: "db".into(),
                generation: 2,
                observed_generation: 2,
                desired: 3,
                ready,
                updated,
                statefulset: Some(StatefulSetState {
                    current_replicas: 3,
                    current_revision: cur.into(),
                    update_revision: upd.into(),
                    strategy: "RollingUpdate".into(),
                    rolling_update: partition.is_some(),
                    partition,
                }),
                ..Default::default()
            }
        };
        assert_eq!(
            sts(2, 3, Some(0), "db-1", "db-1").status_line(),
            "Waiting for 1 pods to be ready..."
        );
        assert_eq!(
            sts(3, 1, Some(0), "db-1", "db-2").status_line(),
            "Waiting for partitioned roll out to finish: 1 out of 3 new pods have been updated..."
        );
        assert_eq!(
            sts(3, 3, Some(0), "db-2", "db-2").status_line(),
            "partitioned roll out complete: 3 new pods have been updated..."
        );
        assert_eq!(
            sts(3, 1, None, "db-1", "db-2").status_line(),
            "waiting for statefulset rolling update to complete 1 pods at revision db-2..."
        );
        assert_eq!(
            sts(3, 3, None, "db-2", "db-2").status_line(),
            "statefulset rolling update complete 3 pods at revision db-2..."
        );
        let mut s = sts(3, 3, None, "db-2", "db-2");
        s.observed_generation = 1;
        assert_eq!(
            s.status_line(),
            "Waiting for statefulset spec update to be observed..."
        );
        let ds = |updated: u32, available: u32| WorkloadRollout {
            kind: "DaemonSet".into(),
            name: "agent".into(),
            generation: 1,
            observed_generation: 1,
            desired: 3,
            current: 3,
            updated,
            ready: available,
            available,
            strategy: Some("RollingUpdate".into()),
            ..Default::default()
        };
        assert_eq!(
            ds(1, 3).status_line(),
            "Waiting for daemon set \"agent\" rollout to finish: 1 out of 3 new pods have been updated..."
        );
        assert_eq!(
            ds(3, 2).status_line(),
            "Waiting for daemon set \"agent\" rollout to finish: 2 of 3 updated pods are available..."
        );
        assert_eq!(
            ds(3, 3).status_line(),
            "daemon set \"agent\" successfully rolled out"
        );
        let mut on_delete = ds(1, 3);
        on_delete.strategy = Some("OnDelete".into());
        assert_eq!(on_delete.verdict(), RolloutVerdict::Complete);
        assert_eq!(
            on_delete.status_line(),
            "error: rollout status is only available for RollingUpdate strategy type"
        );
        assert_eq!(
            ds(3, 3).summary(),
            "desired 3 current 3 ready 3 up-to-date 3 available 3"
        );
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
