//! Workloads in API mode: the resource tree names the app's Deployments, ReplicaSets,
//! StatefulSets, DaemonSets, Jobs, CronJobs and Pods, and the resource API gives their
//! manifests, so clusters the operator has no kubeconfig for still show rollouts. Who is
//! whose child is the tree's `parentRefs` (Argo CD's view), not the manifests' owner
//! references. While watched, polled (interval from config).

use super::{Inner, enc};
use crate::model::{Application, ObjectRef, Pod as PodInfo, ReplicaSetInfo, WorkloadRollout};
use crate::sources::{SourceError, rollout};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use reqwest::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

#[derive(Debug, Clone, Default, Deserialize)]
struct InfoItem {
    #[serde(default)]
    name: String,
    #[serde(default)]
    value: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Health {
    #[serde(default)]
    status: String,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ParentRef {
    #[serde(default)]
    group: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    uid: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Node {
    #[serde(default)]
    group: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    info: Vec<InfoItem>,
    #[serde(default)]
    health: Option<Health>,
    #[serde(default)]
    images: Vec<String>,
    #[serde(default)]
    uid: String,
    #[serde(default)]
    parent_refs: Vec<ParentRef>,
    #[serde(default)]
    created_at: Option<String>,
}

/// The parent the resource tree names for a node (its first `parentRefs` entry), as an
/// object reference. A missing namespace is the child's own (Argo CD omits it for
/// cluster-scoped parents only).
fn tree_parent(n: &Node) -> Option<ObjectRef> {
    n.parent_refs.first().map(|p| ObjectRef {
        kind: p.kind.clone(),
        namespace: if p.namespace.is_empty() {
            n.namespace.clone()
        } else {
            p.namespace.clone()
        },
        name: p.name.clone(),
        uid: p.uid.clone(),
    })
}

/// Make `meta`'s controlling owner the parent the tree names for the same object (kind,
/// namespace, name), so children nest by `parentRefs`; an object the tree has no parent
/// for keeps no owner (it hangs under the Application).
fn own_by_tree(kind: &str, meta: &mut ObjectMeta, nodes: &[Node]) {
    let ns = meta.namespace.clone().unwrap_or_default();
    let name = meta.name.clone().unwrap_or_default();
    let Some(node) = nodes
        .iter()
        .find(|n| n.kind == kind && n.namespace == ns && n.name == name)
    else {
        return;
    };
    meta.owner_references = tree_parent(node).map(|p| {
        let group = node
            .parent_refs
            .first()
            .map(|r| r.group.clone())
            .unwrap_or_default();
        vec![OwnerReference {
            api_version: if group.is_empty() {
                "v1".into()
            } else {
                format!("{group}/v1")
            },
            kind: p.kind,
            name: p.name,
            uid: p.uid,
            controller: Some(true),
            block_owner_deletion: None,
        }]
    });
}

impl Node {
    fn info(&self, name: &str) -> Option<&str> {
        self.info
            .iter()
            .find(|i| i.name == name)
            .map(|i| i.value.as_str())
    }
    fn child_of(&self, kind: &str, name: &str) -> bool {
        self.parent_refs
            .iter()
            .any(|p| p.kind == kind && p.name == name)
    }
    fn revision(&self) -> Option<String> {
        self.info("Revision")
            .map(|r| r.trim_start_matches("Rev:").to_string())
    }
}

/// A pod's phase from the tree's `Status Reason` (the tree carries no phase). Kubernetes
/// keeps a pod whose containers have started `Running` while one waits to restart
/// (`CrashLoopBackOff`, or a container that ran and exited with `Error`/`OOMKilled`);
/// only a pod none of whose containers started is `Pending`.
fn tree_pod_phase(reason: &str, healthy: bool) -> String {
    match reason {
        "Running" | "Succeeded" | "Failed" | "Unknown" => reason.to_string(),
        "Completed" => "Succeeded".into(),
        "CrashLoopBackOff" | "Error" | "OOMKilled" | "RunContainerError" | "Terminating" => {
            "Running".into()
        }
        _ if healthy => "Running".into(),
        _ => "Pending".into(),
    }
}

/// Rollouts from the resource tree alone, for servers that do not serve the resource API:
/// counts come from the pods the tree lists, health from Argo CD's verdict.
fn rollouts_from_tree(nodes: &[Node]) -> Vec<WorkloadRollout> {
    let mut out = Vec::new();
    for d in nodes
        .iter()
        .filter(|n| n.group == "apps" && n.kind == "Deployment")
    {
        let sets: Vec<&Node> = nodes
            .iter()
            .filter(|n| {
                n.kind == "ReplicaSet"
                    && n.child_of("Deployment", &d.name)
                    && n.namespace == d.namespace
            })
            .collect();
        let rev = |n: &Node| {
            n.revision()
                .and_then(|r| r.parse::<i64>().ok())
                .unwrap_or(0)
        };
        let new_rs = sets
            .iter()
            .max_by_key(|n| (n.images == d.images, rev(n)))
            .copied();
        let pods_of = |rs: &Node| -> Vec<PodInfo> {
            nodes
                .iter()
                .filter(|p| p.kind == "Pod" && p.child_of("ReplicaSet", &rs.name))
                .map(|p| {
                    let reason = p.info("Status Reason").unwrap_or("").to_string();
                    let (ready_c, total_c) = p
                        .info("Containers")
                        .and_then(|c| c.split_once('/'))
                        .map(|(a, b)| {
                            (a.parse::<u32>().unwrap_or(0), b.parse::<u32>().unwrap_or(0))
                        })
                        .unwrap_or((0, 0));
                    let healthy = p.health.as_ref().is_some_and(|h| h.status == "Healthy");
                    PodInfo {
                        namespace: p.namespace.clone(),
                        name: p.name.clone(),
                        phase: tree_pod_phase(&reason, healthy),
                        ready: total_c > 0 && ready_c == total_c,
                        restarts: p
                            .info("Restart Count")
                            .and_then(|r| r.parse().ok())
                            .unwrap_or(0),
                        waiting_reason: (!matches!(
                            reason.as_str(),
                            "" | "Running" | "Completed" | "Succeeded"
                        ))
                        .then_some(reason),
                        owner_replicaset: Some(rs.name.clone()),
                        images: p.images.clone(),
                        created_at: p.created_at.clone(),
                        owner: tree_parent(p),
                    }
                })
                .collect()
        };
        let info_of = |rs: &Node, pods: &[PodInfo]| ReplicaSetInfo {
            name: rs.name.clone(),
            revision: rs.revision(),
            desired: pods.len() as u32,
            ready: pods.iter().filter(|p| p.ready).count() as u32,
            available: pods.iter().filter(|p| p.ready).count() as u32,
            images: rs.images.clone(),
        };
        let mut all_pods = Vec::new();
        let mut new_info = None;
        let mut old = Vec::new();
        for rs in &sets {
            let pods = pods_of(rs);
            let info = info_of(rs, &pods);
            if new_rs.is_some_and(|n| n.name == rs.name) {
                new_info = Some(info);
            } else if !pods.is_empty() {
                old.push(info);
            }
            all_pods.extend(pods);
        }
        let updated = new_info.as_ref().map_or(0, |i| i.desired);
        let ready = all_pods.iter().filter(|p| p.ready).count() as u32;
        let health = d.health.clone().unwrap_or_default();
        let deadline = health
            .message
            .as_deref()
            .is_some_and(|m| m.contains("progress deadline"));
        all_pods.sort_by(|a, b| a.name.cmp(&b.name));
        out.push(WorkloadRollout {
            kind: "Deployment".into(),
            uid: d.uid.clone(),
            owner: tree_parent(d),
            statefulset: None,
            job: None,
            strategy: None,
            namespace: d.namespace.clone(),
            name: d.name.clone(),
            generation: 0,
            observed_generation: 0,
            desired: updated.max(if health.status == "Healthy" {
                0
            } else {
                all_pods.len() as u32
            }),
            current: all_pods.len() as u32,
            updated,
            ready,
            available: new_info.as_ref().map_or(0, |i| i.available),
            images: d.images.clone(),
            progressing_reason: deadline.then(|| "ProgressDeadlineExceeded".to_string()),
            new_replicaset: new_info,
            old_replicasets: old,
            pods: all_pods,
        });
    }
    out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out
}

#[derive(Deserialize)]
struct Tree {
    #[serde(default)]
    nodes: Option<Vec<Node>>,
}

async fn manifest<T: DeserializeOwned>(
    inner: &Inner,
    app: &Application,
    n: &Node,
) -> Result<T, SourceError> {
    #[derive(Deserialize)]
    struct Resp {
        #[serde(default)]
        manifest: String,
    }
    let path = inner.app_path(
        app,
        &format!(
            "/resource?namespace={}&resourceName={}&version={}&group={}&kind={}",
            enc(&n.namespace),
            enc(&n.name),
            enc(&n.version),
            enc(&n.group),
            enc(&n.kind)
        ),
    );
    let what = format!("{} {}/{}", n.kind, n.namespace, n.name);
    let r: Resp = inner.send(inner.request(Method::GET, &path), &what).await?;
    serde_json::from_str(&r.manifest).map_err(|e| SourceError::Protocol {
        server: inner.base.clone(),
        detail: format!("{what}: manifest does not parse: {e}"),
    })
}

async fn fetch_all<T: DeserializeOwned>(
    inner: &Inner,
    app: &Application,
    nodes: &[Node],
) -> Result<Vec<T>, SourceError> {
    let results: Vec<Result<T, SourceError>> = futures::stream::iter(nodes.to_vec())
        .map(|n| async move { manifest::<T>(inner, app, &n).await })
        .buffer_unordered(8)
        .collect()
        .await;
    let mut out = Vec::with_capacity(results.len());
    for r in results {
        match r {
            Ok(v) => out.push(v),
            // A pod can vanish between the tree and the fetch: Argo CD then answers that it
            // is "not found as part of application" (InvalidArgument), or 404.
            Err(SourceError::NotFound(_)) => {}
            Err(SourceError::Refused(m)) if m.contains("not found as part of application") => {}
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Kinds whose manifests the tree's nodes are fetched for, with their API group.
const WORKLOAD_KINDS: &[(&str, &str)] = &[
    ("apps", "Deployment"),
    ("apps", "ReplicaSet"),
    ("apps", "StatefulSet"),
    ("apps", "DaemonSet"),
    ("batch", "Job"),
    ("batch", "CronJob"),
    ("", "Pod"),
];

pub(super) async fn workloads(
    inner: &Inner,
    app: &Application,
) -> Result<Vec<WorkloadRollout>, SourceError> {
    let path = inner.app_path(app, "/resource-tree");
    let tree: Tree = inner
        .send(inner.request(Method::GET, &path), "resource tree")
        .await?;
    let nodes = tree.nodes.unwrap_or_default();
    let of = |group: &str, kind: &str| -> Vec<Node> {
        nodes
            .iter()
            .filter(|n| n.group == group && n.kind == kind)
            .cloned()
            .map(|mut n| {
                if n.version.is_empty() {
                    n.version = "v1".into();
                }
                n
            })
            .collect()
    };
    let tops: Vec<Node> = WORKLOAD_KINDS
        .iter()
        .filter(|(_, k)| !matches!(*k, "ReplicaSet" | "Pod"))
        .flat_map(|(g, k)| of(g, k))
        .collect();
    let Some(first) = tops.first() else {
        return Ok(Vec::new());
    };
    // Servers without the resource API (404 on a workload the tree just listed) still give
    // Deployments' rollouts from the tree alone.
    if let Err(SourceError::NotFound(_)) = manifest::<serde_json::Value>(inner, app, first).await {
        return Ok(rollouts_from_tree(&nodes));
    }
    let f = rollout::Fetched {
        deployments: fetch_all(inner, app, &of("apps", "Deployment")).await?,
        replicasets: fetch_all(inner, app, &of("apps", "ReplicaSet")).await?,
        statefulsets: fetch_all(inner, app, &of("apps", "StatefulSet")).await?,
        daemonsets: fetch_all(inner, app, &of("apps", "DaemonSet")).await?,
        jobs: fetch_all(inner, app, &of("batch", "Job")).await?,
        cronjobs: fetch_all(inner, app, &of("batch", "CronJob")).await?,
        pods: fetch_all(inner, app, &of("", "Pod")).await?,
    };
    Ok(nest_by_tree(&nodes, f))
}

/// The workloads of fetched manifests, each child (ReplicaSet, Job, Pod) under the parent
/// the resource tree's `parentRefs` names for it, whatever its manifest's owner references
/// say: the tree is what Argo CD shows.
fn nest_by_tree(nodes: &[Node], mut f: rollout::Fetched) -> Vec<WorkloadRollout> {
    for o in &mut f.replicasets {
        own_by_tree("ReplicaSet", &mut o.metadata, nodes);
    }
    for o in &mut f.jobs {
        own_by_tree("Job", &mut o.metadata, nodes);
    }
    for o in &mut f.pods {
        own_by_tree("Pod", &mut o.metadata, nodes);
    }
    rollout::all_workloads(&f)
}

pub(super) fn watch(
    inner: Arc<Inner>,
    app: Application,
    tx: mpsc::Sender<Result<Vec<WorkloadRollout>, SourceError>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut last: Option<Result<Vec<WorkloadRollout>, String>> = None;
        loop {
            let now = workloads(&inner, &app).await;
            let key = match &now {
                Ok(v) => Ok(v.clone()),
                Err(e) => Err(e.to_string()),
            };
            if last.as_ref() != Some(&key) {
                last = Some(key);
                if tx.send(now).await.is_err() {
                    return;
                }
            }
            tokio::select! {
                _ = tx.closed() => return,
                _ = tokio::time::sleep(inner.workload_poll) => {}
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    /// A resource tree as Argo CD answers it (trimmed), with every parent kind: Deployment
    /// -> ReplicaSet -> Pod, StatefulSet -> Pod, DaemonSet -> Pod, CronJob -> Job -> Pod.
    fn recorded_tree() -> Vec<Node> {
        let pref = |group: &str, kind: &str, name: &str, uid: &str| json!([{"group": group, "kind": kind, "namespace": "data", "name": name, "uid": uid}]);
        // Argo CD omits `parentRefs` on nodes without a parent.
        let n = |group: &str, kind: &str, name: &str, uid: &str, parent: Value| {
            let mut v = json!({"group": group, "version": "v1", "kind": kind,
                "namespace": "data", "name": name, "uid": uid});
            if !parent.is_null() {
                v["parentRefs"] = parent;
            }
            v
        };
        let tree = json!({"nodes": [
            n("apps", "Deployment", "api", "u-dep", Value::Null),
            n("apps", "ReplicaSet", "api-7d9", "u-rs", pref("apps", "Deployment", "api", "u-dep")),
            n("", "Pod", "api-7d9-abcde", "u-p1", pref("apps", "ReplicaSet", "api-7d9", "u-rs")),
            n("apps", "StatefulSet", "db", "u-sts", Value::Null),
            n("", "Pod", "db-0", "u-p2", pref("apps", "StatefulSet", "db", "u-sts")),
            n("", "Pod", "db-1", "u-p3", pref("apps", "StatefulSet", "db", "u-sts")),
            n("apps", "DaemonSet", "agent", "u-ds", Value::Null),
            n("", "Pod", "agent-x2x4z", "u-p4", pref("apps", "DaemonSet", "agent", "u-ds")),
            n("batch", "CronJob", "nightly", "u-cj", Value::Null),
            n("batch", "Job", "nightly-2901", "u-job", pref("batch", "CronJob", "nightly", "u-cj")),
            n("", "Pod", "nightly-2901-q8w7s", "u-p5", pref("batch", "Job", "nightly-2901", "u-job")),
        ]});
        serde_json::from_value::<Tree>(tree)
            .expect("tree parses")
            .nodes
            .unwrap_or_default()
    }

    /// A manifest named as a tree node, with owner references that lie (a stale owner):
    /// nesting must follow the tree, not these.
    fn manifest_of<T: serde::de::DeserializeOwned>(n: &Node) -> T {
        let api = if n.group.is_empty() {
            "v1".to_string()
        } else {
            format!("{}/v1", n.group)
        };
        let mut v = json!({"apiVersion": api, "kind": n.kind,
            "metadata": {"name": n.name, "namespace": n.namespace, "uid": n.uid,
                "ownerReferences": [{"apiVersion": "v1", "kind": "Stale", "name": "wrong",
                    "uid": "u-wrong", "controller": true}]},
            "spec": {}});
        match n.kind.as_str() {
            "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" => {
                v["spec"] = json!({"selector": {}, "template": {"spec": {"containers": []}}});
            }
            "Job" => v["spec"] = json!({"template": {"spec": {"containers": []}}}),
            "CronJob" => {
                v["spec"] = json!({"schedule": "0 3 * * *",
                    "jobTemplate": {"spec": {"template": {"spec": {"containers": []}}}}})
            }
            "Pod" => v["spec"] = json!({"containers": []}),
            _ => {}
        }
        if matches!(
            n.kind.as_str(),
            "Deployment" | "StatefulSet" | "DaemonSet" | "CronJob"
        ) {
            v["metadata"]["ownerReferences"] = json!([]);
        }
        serde_json::from_value(v).expect("manifest")
    }

    #[test]
    fn children_nest_by_the_trees_parent_refs_for_every_kind() {
        let nodes = recorded_tree();
        let of = |k: &'static str| nodes.iter().filter(move |n| n.kind == k);
        let f = rollout::Fetched {
            deployments: of("Deployment").map(manifest_of).collect(),
            replicasets: of("ReplicaSet").map(manifest_of).collect(),
            statefulsets: of("StatefulSet").map(manifest_of).collect(),
            daemonsets: of("DaemonSet").map(manifest_of).collect(),
            jobs: of("Job").map(manifest_of).collect(),
            cronjobs: of("CronJob").map(manifest_of).collect(),
            pods: of("Pod").map(manifest_of).collect(),
        };
        let ws = nest_by_tree(&nodes, f);
        let w = |kind: &str, name: &str| {
            ws.iter()
                .find(|w| w.kind() == kind && w.name == name)
                .unwrap_or_else(|| panic!("{kind}/{name} in {ws:?}"))
        };
        let pods = |w: &WorkloadRollout| -> Vec<String> {
            w.pods.iter().map(|p| p.name.clone()).collect()
        };
        assert_eq!(pods(w("Deployment", "api")), ["api-7d9-abcde"]);
        assert_eq!(
            w("Deployment", "api")
                .new_replicaset
                .as_ref()
                .map(|r| r.name.as_str()),
            Some("api-7d9")
        );
        assert_eq!(pods(w("StatefulSet", "db")), ["db-0", "db-1"]);
        assert_eq!(pods(w("DaemonSet", "agent")), ["agent-x2x4z"]);
        assert_eq!(pods(w("Job", "nightly-2901")), ["nightly-2901-q8w7s"]);
        assert!(pods(w("CronJob", "nightly")).is_empty());
        // The chain CronJob -> Job -> Pod: the Job's owner is the CronJob, with its uid.
        let job = w("Job", "nightly-2901");
        let owner = job.owner.as_ref().expect("the Job has a parent");
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str(), owner.uid.as_str()),
            ("CronJob", "nightly", "u-cj")
        );
        let p = &job.pods[0];
        let po = p.owner.as_ref().expect("the pod has a parent");
        assert_eq!(
            (po.kind.as_str(), po.name.as_str()),
            ("Job", "nightly-2901")
        );
        // Top-level workloads have no parent.
        assert!(w("StatefulSet", "db").owner.is_none());
        assert!(w("CronJob", "nightly").owner.is_none());
    }
}
