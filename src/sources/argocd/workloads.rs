//! Workloads in API mode: the resource tree names the app's Deployments, ReplicaSets and
//! Pods, and the resource API gives their manifests, so clusters the operator has no
//! kubeconfig for still show rollouts. While watched, polled (interval from config).

use super::{Inner, enc};
use crate::model::{Application, WorkloadRollout};
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
            // A pod can vanish between the tree and the fetch.
            Err(SourceError::NotFound(_)) => {}
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
    let deployments: Vec<Deployment> = fetch_all(inner, app, &of("apps", "Deployment")).await?;
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
