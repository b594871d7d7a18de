//! Turning Kubernetes Deployments, ReplicaSets and Pods into [`WorkloadRollout`]s, shared by
//! core mode (objects from the cluster) and API mode (manifests from Argo CD's resource
//! API). Pure: no I/O, inputs are already fetched.

use crate::model::{Pod as PodInfo, ReplicaSetInfo, WorkloadRollout};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;

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
    }
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
