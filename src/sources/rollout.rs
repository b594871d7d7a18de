//! Turning Kubernetes Deployments, ReplicaSets and Pods (and StatefulSets, DaemonSets,
//! Jobs, CronJobs) into [`WorkloadRollout`]s, shared by core mode (objects from the
//! cluster) and API mode (manifests from Argo CD's resource API). Pure: no I/O, inputs are
//! already fetched. Children are found by their controlling owner reference (uid, or kind
//! and name when the uid is missing), as Kubernetes' garbage collector and Argo CD's
//! resource tree link them.

use crate::model::{
    JobState, ObjectRef, Pod as PodInfo, ReplicaSetInfo, StatefulSetState, WorkloadRollout,
};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

fn owned_by(
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
    kind: &str,
    name: &str,
    uid: Option<&str>,
) -> bool {
    meta.owner_references.iter().flatten().any(|o| {
        o.kind == kind && o.name == name && uid.is_none_or(|u| o.uid.is_empty() || o.uid == u)
    })
}

fn images_of(spec: Option<&k8s_openapi::api::core::v1::PodSpec>) -> Vec<String> {
    spec.map(|s| {
        s.containers
            .iter()
            .filter_map(|c| c.image.clone())
            .collect()
    })
    .unwrap_or_default()
}

fn count(v: Option<i32>) -> u32 {
    v.unwrap_or(0).max(0) as u32
}

/// The controlling owner of an object (`controller: true`, else the only owner).
pub fn controller_of(meta: &ObjectMeta) -> Option<ObjectRef> {
    let owners = meta.owner_references.as_deref().unwrap_or_default();
    owners
        .iter()
        .find(|o| o.controller == Some(true))
        .or(if owners.len() == 1 {
            owners.first()
        } else {
            None
        })
        .map(|o| ObjectRef {
            kind: o.kind.clone(),
            namespace: meta.namespace.clone().unwrap_or_default(),
            name: o.name.clone(),
            uid: o.uid.clone(),
        })
}

fn self_ref(kind: &str, meta: &ObjectMeta) -> ObjectRef {
    ObjectRef {
        kind: kind.into(),
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
        uid: meta.uid.clone().unwrap_or_default(),
    }
}

/// `child` (an owner reference) names `parent`: same kind and namespace, same uid when
/// both have one, else same name.
pub fn same_object(child: &ObjectRef, parent: &ObjectRef) -> bool {
    child.kind == parent.kind
        && child.namespace == parent.namespace
        && if !child.uid.is_empty() && !parent.uid.is_empty() {
            child.uid == parent.uid
        } else {
            child.name == parent.name
        }
}

fn pods_of(parent: &ObjectRef, pods: &[Pod]) -> Vec<PodInfo> {
    let mut out: Vec<PodInfo> = pods
        .iter()
        .map(pod_info)
        .filter(|p| p.owner.as_ref().is_some_and(|o| same_object(o, parent)))
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

pub fn pod_info(p: &Pod) -> PodInfo {
    let status = p.status.as_ref();
    let containers = status
        .and_then(|s| s.container_statuses.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let init = status
        .and_then(|s| s.init_container_statuses.as_ref())
        .map(Vec::as_slice)
        .unwrap_or_default();
    let waiting_reason = init
        .iter()
        .chain(containers)
        .find_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone())
        .or_else(|| {
            // A pod not scheduled yet has no container statuses: say why if the scheduler did.
            status?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "PodScheduled" && c.status == "False")
                .and_then(|c| c.reason.clone())
        });
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
    PodInfo {
        namespace: p.metadata.namespace.clone().unwrap_or_default(),
        name: p.metadata.name.clone().unwrap_or_default(),
        phase: status
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Pending".into()),
        ready,
        restarts: containers
            .iter()
            .map(|c| c.restart_count.max(0) as u32)
            .sum(),
        waiting_reason,
        owner_replicaset: p
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.kind == "ReplicaSet")
            .map(|o| o.name.clone()),
        images: images_of(p.spec.as_ref()),
        created_at: p
            .metadata
            .creation_timestamp
            .as_ref()
            .map(|t| t.0.to_string()),
        owner: controller_of(&p.metadata),
    }
}

fn rs_info(rs: &ReplicaSet) -> ReplicaSetInfo {
    let st = rs.status.as_ref();
    ReplicaSetInfo {
        name: rs.metadata.name.clone().unwrap_or_default(),
        revision: rs
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION_ANNOTATION).cloned()),
        desired: count(rs.spec.replicas),
        ready: count(st.and_then(|s| s.ready_replicas)),
        available: count(st.and_then(|s| s.available_replicas)),
        images: images_of(rs.spec.template.as_ref().and_then(|t| t.spec.as_ref())),
    }
}

/// One Deployment's rollout, with the ReplicaSets it owns (newest revision = new) and their
/// pods. `replicasets` and `pods` may hold objects of other Deployments; they are filtered.
pub fn rollout_of(d: &Deployment, replicasets: &[ReplicaSet], pods: &[Pod]) -> WorkloadRollout {
    let name = d.metadata.name.clone().unwrap_or_default();
    let uid = d.metadata.uid.as_deref();
    let spec = &d.spec;
    let st = d.status.as_ref();
    let dep_revision = d
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REVISION_ANNOTATION).cloned());
    let mut owned: Vec<&ReplicaSet> = replicasets
        .iter()
        .filter(|rs| owned_by(&rs.metadata, "Deployment", &name, uid))
        .collect();
    let rev_num = |rs: &ReplicaSet| -> i64 {
        rs.metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REVISION_ANNOTATION))
            .and_then(|r| r.parse().ok())
            .unwrap_or(0)
    };
    owned.sort_by_key(|rs| std::cmp::Reverse(rev_num(rs)));
    let template_images = images_of(spec.template.spec.as_ref());
    // The new ReplicaSet is the one at the Deployment's revision; without the annotation,
    // the one whose pod template has the Deployment's images; else the newest.
    let new_idx = owned
        .iter()
        .position(|rs| {
            dep_revision.is_some()
                && rs
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(REVISION_ANNOTATION))
                    == dep_revision.as_ref()
        })
        .or_else(|| {
            owned
                .iter()
                .position(|rs| rs_info(rs).images == template_images)
        })
        .or(if owned.is_empty() { None } else { Some(0) });
    let new_replicaset = new_idx.map(|i| rs_info(owned[i]));
    let old_replicasets: Vec<ReplicaSetInfo> = owned
        .iter()
        .enumerate()
        .filter(|(i, _)| Some(*i) != new_idx)
        .map(|(_, rs)| rs_info(rs))
        .filter(|rs| rs.desired > 0 || rs.ready > 0)
        .collect();
    let rs_names: Vec<String> = owned
        .iter()
        .filter_map(|rs| rs.metadata.name.clone())
        .collect();
    let mut pod_list: Vec<PodInfo> = pods
        .iter()
        .filter(|p| {
            p.metadata
                .owner_references
                .iter()
                .flatten()
                .any(|o| o.kind == "ReplicaSet" && rs_names.contains(&o.name))
        })
        .map(pod_info)
        .collect();
    pod_list.sort_by(|a, b| a.name.cmp(&b.name));
    WorkloadRollout {
        kind: "Deployment".into(),
        uid: uid.unwrap_or_default().to_string(),
        namespace: d.metadata.namespace.clone().unwrap_or_default(),
        name,
        generation: d.metadata.generation.unwrap_or(0),
        observed_generation: st.and_then(|s| s.observed_generation).unwrap_or(0),
        desired: spec.replicas.map_or(1, |r| r.max(0) as u32),
        current: count(st.and_then(|s| s.replicas)),
        updated: count(st.and_then(|s| s.updated_replicas)),
        ready: count(st.and_then(|s| s.ready_replicas)),
        available: count(st.and_then(|s| s.available_replicas)),
        images: template_images,
        progressing_reason: st
            .and_then(|s| s.conditions.as_ref())
            .and_then(|cs| {
                cs.iter()
                    .find(|c| c.type_.as_deref() == Some("Progressing"))
            })
            .and_then(|c| c.reason.clone()),
        new_replicaset,
        old_replicasets,
        pods: pod_list,
        owner: controller_of(&d.metadata),
        ..Default::default()
    }
}

/// A StatefulSet with its pods: desired is `spec.replicas` (1 when unset), the counts its
/// status reports, the revisions and update strategy kubectl's rollout status reads.
pub fn statefulset(s: &StatefulSet, pods: &[Pod]) -> WorkloadRollout {
    let me = self_ref("StatefulSet", &s.metadata);
    let spec = Some(&s.spec);
    let st = s.status.as_ref();
    let strategy = spec.and_then(|s| s.update_strategy.as_ref());
    let rolling = strategy.and_then(|u| u.rolling_update.as_ref());
    WorkloadRollout {
        kind: "StatefulSet".into(),
        uid: me.uid.clone(),
        namespace: me.namespace.clone(),
        name: me.name.clone(),
        owner: controller_of(&s.metadata),
        generation: s.metadata.generation.unwrap_or(0),
        observed_generation: st.and_then(|s| s.observed_generation).unwrap_or(0),
        desired: spec.and_then(|s| s.replicas).map_or(1, |r| r.max(0) as u32),
        current: st.map_or(0, |s| s.replicas.max(0) as u32),
        updated: count(st.and_then(|s| s.updated_replicas)),
        ready: count(st.and_then(|s| s.ready_replicas)),
        available: count(st.and_then(|s| s.available_replicas)),
        images: images_of(spec.and_then(|s| s.template.spec.as_ref())),
        statefulset: Some(StatefulSetState {
            current_replicas: count(st.and_then(|s| s.current_replicas)),
            current_revision: st
                .and_then(|s| s.current_revision.clone())
                .unwrap_or_default(),
            update_revision: st
                .and_then(|s| s.update_revision.clone())
                .unwrap_or_default(),
            strategy: strategy
                .and_then(|u| u.type_.clone())
                .unwrap_or_else(|| "RollingUpdate".into()),
            rolling_update: rolling.is_some(),
            partition: rolling.and_then(|r| r.partition),
        }),
        pods: pods_of(&me, pods),
        ..Default::default()
    }
}

/// A DaemonSet with its pods: desired/current/ready/updated/available are
/// `desiredNumberScheduled`, `currentNumberScheduled`, `numberReady`,
/// `updatedNumberScheduled`, `numberAvailable` (kubectl's DESIRED CURRENT READY UP-TO-DATE
/// AVAILABLE).
pub fn daemonset(d: &DaemonSet, pods: &[Pod]) -> WorkloadRollout {
    let me = self_ref("DaemonSet", &d.metadata);
    let spec = Some(&d.spec);
    let st = d.status.as_ref();
    WorkloadRollout {
        kind: "DaemonSet".into(),
        uid: me.uid.clone(),
        namespace: me.namespace.clone(),
        name: me.name.clone(),
        owner: controller_of(&d.metadata),
        generation: d.metadata.generation.unwrap_or(0),
        observed_generation: st.and_then(|s| s.observed_generation).unwrap_or(0),
        desired: st.map_or(0, |s| s.desired_number_scheduled.max(0) as u32),
        current: st.map_or(0, |s| s.current_number_scheduled.max(0) as u32),
        updated: count(st.and_then(|s| s.updated_number_scheduled)),
        ready: st.map_or(0, |s| s.number_ready.max(0) as u32),
        available: count(st.and_then(|s| s.number_available)),
        images: images_of(spec.and_then(|s| s.template.spec.as_ref())),
        strategy: Some(
            spec.and_then(|s| s.update_strategy.as_ref())
                .and_then(|u| u.type_.clone())
                .unwrap_or_else(|| "RollingUpdate".into()),
        ),
        pods: pods_of(&me, pods),
        ..Default::default()
    }
}

/// A Job with its pods: completions (1 when unset), succeeded, failed, active, and the
/// condition kubectl's STATUS column shows.
pub fn job(j: &Job, pods: &[Pod]) -> WorkloadRollout {
    let me = self_ref("Job", &j.metadata);
    let spec = j.spec.as_ref();
    let st = j.status.as_ref();
    let conditions = st.and_then(|s| s.conditions.as_deref()).unwrap_or_default();
    let holds = |t: &str| {
        conditions
            .iter()
            .find(|c| c.type_ == t && c.status == "True")
    };
    // kubectl's STATUS column, in its order (`printJob`): Complete, Failed, Terminating,
    // Suspended, FailureTarget, SuccessCriteriaMet; else Running (None here).
    let condition = if holds("Complete").is_some() {
        Some("Complete".to_string())
    } else if holds("Failed").is_some() {
        Some("Failed".into())
    } else if j.metadata.deletion_timestamp.is_some() {
        Some("Terminating".into())
    } else {
        ["Suspended", "FailureTarget", "SuccessCriteriaMet"]
            .into_iter()
            .find(|t| holds(t).is_some())
            .map(str::to_string)
    };
    let completions = spec
        .and_then(|s| s.completions)
        .map_or(1, |c| c.max(0) as u32);
    let succeeded = count(st.and_then(|s| s.succeeded));
    WorkloadRollout {
        kind: "Job".into(),
        uid: me.uid.clone(),
        namespace: me.namespace.clone(),
        name: me.name.clone(),
        owner: controller_of(&j.metadata),
        desired: completions,
        current: count(st.and_then(|s| s.active)),
        ready: count(st.and_then(|s| s.ready)),
        available: succeeded,
        images: images_of(spec.and_then(|s| s.template.spec.as_ref())),
        job: Some(JobState {
            completions,
            succeeded,
            failed: count(st.and_then(|s| s.failed)),
            active: count(st.and_then(|s| s.active)),
            message: holds("Failed").and_then(|c| c.message.clone()),
            condition,
        }),
        pods: pods_of(&me, pods),
        ..Default::default()
    }
}

/// A CronJob (its Jobs are workloads of their own, owned by it).
pub fn cronjob(c: &CronJob) -> WorkloadRollout {
    let me = self_ref("CronJob", &c.metadata);
    WorkloadRollout {
        kind: "CronJob".into(),
        uid: me.uid.clone(),
        namespace: me.namespace.clone(),
        name: me.name.clone(),
        owner: controller_of(&c.metadata),
        images: images_of(
            c.spec
                .job_template
                .spec
                .as_ref()
                .and_then(|s| s.template.spec.as_ref()),
        ),
        ..Default::default()
    }
}

/// Every workload of an app, fetched by kind: Deployments (with ReplicaSets), StatefulSets,
/// DaemonSets, Jobs and CronJobs, each with its pods; sorted by namespace, kind, name.
#[derive(Default)]
pub struct Fetched {
    pub deployments: Vec<Deployment>,
    pub replicasets: Vec<ReplicaSet>,
    pub statefulsets: Vec<StatefulSet>,
    pub daemonsets: Vec<DaemonSet>,
    pub jobs: Vec<Job>,
    pub cronjobs: Vec<CronJob>,
    pub pods: Vec<Pod>,
}

pub fn all_workloads(f: &Fetched) -> Vec<WorkloadRollout> {
    let mut out = rollouts(&f.deployments, &f.replicasets, &f.pods);
    out.extend(f.statefulsets.iter().map(|s| statefulset(s, &f.pods)));
    out.extend(f.daemonsets.iter().map(|d| daemonset(d, &f.pods)));
    out.extend(f.jobs.iter().map(|j| job(j, &f.pods)));
    out.extend(f.cronjobs.iter().map(cronjob));
    out.sort_by(|a, b| (&a.namespace, a.kind(), &a.name).cmp(&(&b.namespace, b.kind(), &b.name)));
    out
}

/// Every Deployment's rollout, sorted by namespace and name.
pub fn rollouts(
    deployments: &[Deployment],
    replicasets: &[ReplicaSet],
    pods: &[Pod],
) -> Vec<WorkloadRollout> {
    let mut out: Vec<WorkloadRollout> = deployments
        .iter()
        .map(|d| rollout_of(d, replicasets, pods))
        .collect();
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Pods hang under the StatefulSet or Job whose uid their controlling owner reference
    /// names; a Job's line is kubectl's STATUS and COMPLETIONS.
    #[test]
    fn statefulset_and_job_own_their_pods_by_uid() {
        let pod = |name: &str, kind: &str, owner: &str, uid: &str| -> Pod {
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "data",
                    "ownerReferences": [{"apiVersion": "v1", "kind": kind, "name": owner,
                        "uid": uid, "controller": true}]},
                "spec": {"containers": [{"name": "c", "image": "img:1"}]},
                "status": {"phase": "Running"}
            }))
            .unwrap()
        };
        let sts: StatefulSet = serde_json::from_value(json!({
            "metadata": {"name": "db", "namespace": "data", "uid": "s1", "generation": 1},
            "spec": {"replicas": 2, "selector": {}, "serviceName": "db",
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                "template": {"spec": {"containers": [{"name": "c", "image": "img:1"}]}}},
            "status": {"observedGeneration": 1, "replicas": 2, "readyReplicas": 1,
                "updatedReplicas": 2, "currentReplicas": 2}
        }))
        .unwrap();
        let failed: Job = serde_json::from_value(json!({
            "metadata": {"name": "migrate", "namespace": "data", "uid": "j1"},
            "spec": {"completions": 1, "template": {"spec": {"containers": []}}},
            "status": {"failed": 3, "conditions": [
                {"type": "FailureTarget", "status": "True"},
                {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded",
                 "message": "Job has reached the specified backoff limit"}]}
        }))
        .unwrap();
        let pods = [
            pod("db-0", "StatefulSet", "db", "s1"),
            // Same name, another uid (a StatefulSet deleted and recreated): not this one's.
            pod("db-1", "StatefulSet", "db", "s0"),
            pod("migrate-x", "Job", "migrate", "j1"),
        ];
        let s = statefulset(&sts, &pods);
        assert_eq!(
            s.pods.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["db-0"]
        );
        assert_eq!(s.summary(), "ready 1/2");
        assert_eq!(s.status_line(), "Waiting for 1 pods to be ready...");
        let j = job(&failed, &pods);
        assert_eq!(j.pods.len(), 1);
        assert_eq!(j.summary(), "Failed 0/1");
        assert_eq!(
            j.verdict(),
            crate::model::RolloutVerdict::Failed(
                "Job has reached the specified backoff limit".into()
            )
        );
    }

    #[test]
    fn maps_deployment_with_old_and_new_replicasets() {
        let d: Deployment = serde_json::from_value(json!({
            "metadata": {"name": "web", "namespace": "shop", "uid": "d1", "generation": 3,
                "annotations": {"deployment.kubernetes.io/revision": "2"}},
            "spec": {"replicas": 2, "selector": {}, "template": {"spec": {"containers": [{"name": "web", "image": "web:v2"}]}}},
            "status": {"observedGeneration": 3, "replicas": 3, "updatedReplicas": 1, "readyReplicas": 2, "availableReplicas": 2,
                "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}]}
        })).unwrap();
        let rs = |name: &str, rev: &str, image: &str, replicas: i32| -> ReplicaSet {
            serde_json::from_value(json!({
                "metadata": {"name": name, "namespace": "shop", "annotations": {"deployment.kubernetes.io/revision": rev},
                    "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "d1"}]},
                "spec": {"replicas": replicas, "selector": {}, "template": {"spec": {"containers": [{"name": "web", "image": image}]}}},
                "status": {"replicas": replicas, "readyReplicas": replicas, "availableReplicas": replicas}
            })).unwrap()
        };
        let pod: Pod = serde_json::from_value(json!({
            "metadata": {"name": "web-b-1", "namespace": "shop",
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-b", "uid": "x"}]},
            "spec": {"containers": [{"name": "web", "image": "web:v2"}]},
            "status": {"phase": "Pending", "containerStatuses": [{"name": "web", "image": "web:v2", "imageID": "", "ready": false,
                "restartCount": 3, "state": {"waiting": {"reason": "ImagePullBackOff"}}}]}
        })).unwrap();
        let r = rollout_of(
            &d,
            &[rs("web-a", "1", "web:v1", 2), rs("web-b", "2", "web:v2", 1)],
            &[pod],
        );
        assert_eq!(r.new_replicaset.as_ref().unwrap().name, "web-b");
        assert_eq!(r.old_replicasets.len(), 1);
        assert_eq!(r.updated, 1);
        assert_eq!(r.progressing_reason.as_deref(), Some("ReplicaSetUpdated"));
        assert_eq!(r.pods.len(), 1);
        assert_eq!(
            r.pods[0].waiting_reason.as_deref(),
            Some("ImagePullBackOff")
        );
        assert_eq!(r.pods[0].restarts, 3);
    }
}
