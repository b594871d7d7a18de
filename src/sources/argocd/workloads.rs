//! Workloads in API mode: the resource tree names the app's Deployments, ReplicaSets and
//! Pods, and the resource API gives their manifests, so clusters the operator has no
//! kubeconfig for still show rollouts. While watched, polled (interval from config).

use super::{Inner, enc};
use crate::model::{Application, Pod as PodInfo, ReplicaSetInfo, WorkloadRollout};
use crate::sources::{SourceError, rollout};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::Pod;
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
    kind: String,
    #[serde(default)]
    name: String,
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
    parent_refs: Vec<ParentRef>,
    #[serde(default)]
    created_at: Option<String>,
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
    let dep_nodes = of("apps", "Deployment");
    let Some(first) = dep_nodes.first() else {
        return Ok(Vec::new());
    };
    // Servers without the resource API (404 on a Deployment the tree just listed) still
    // give a rollout from the tree alone.
    if let Err(SourceError::NotFound(_)) = manifest::<Deployment>(inner, app, first).await {
        return Ok(rollouts_from_tree(&nodes));
    }
    let deployments: Vec<Deployment> = fetch_all(inner, app, &dep_nodes).await?;
    if deployments.is_empty() {
        return Ok(Vec::new());
    }
    let replicasets: Vec<ReplicaSet> = fetch_all(inner, app, &of("apps", "ReplicaSet")).await?;
    let pods: Vec<Pod> = fetch_all(inner, app, &of("", "Pod")).await?;
    Ok(rollout::rollouts(&deployments, &replicasets, &pods))
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
