//! An application's workloads in its destination cluster (Deployments, ReplicaSets, Pods),
//! its Events and pod logs, read through the kubeconfig context that reaches that cluster.
//! Workloads are watched only while someone looks (the task ends when the receiver drops).

use super::{Inner, read};
use crate::model::{Application, WorkloadRollout};
use crate::sources::{AppEvent, SourceError, app_event, rollout};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, ListParams, LogParams};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";

/// Namespaces the app's Deployments live in: the destination namespace and any namespace
/// named by a managed Deployment.
fn namespaces(app: &Application) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = app
        .status
        .resources
        .iter()
        .filter(|r| r.kind == "Deployment" && !r.namespace.is_empty())
        .map(|r| r.namespace.clone())
        .collect();
    if let Some(ns) = app
        .spec
        .destination
        .namespace
        .as_ref()
        .filter(|n| !n.is_empty())
    {
        out.insert(ns.clone());
    }
    if out.is_empty() {
        out.insert("default".into());
    }
    out
}

fn belongs(app: &Application, d: &Deployment) -> bool {
    let name = d.metadata.name.as_deref().unwrap_or("");
    let ns = d.metadata.namespace.as_deref().unwrap_or("");
    let labelled = d
        .metadata
        .labels
        .as_ref()
        .and_then(|l| l.get(INSTANCE_LABEL))
        .is_some_and(|v| *v == app.metadata.name);
    labelled
        || app.status.resources.iter().any(|r| {
            r.kind == "Deployment"
                && r.name == name
                && (r.namespace.is_empty() || r.namespace == ns)
        })
}

pub(super) async fn workloads(
    inner: &Inner,
    app: &Application,
) -> Result<Vec<WorkloadRollout>, SourceError> {
    let (ctx, client) = inner.dest_client(app).await?;
    let mut deployments = Vec::new();
    let mut replicasets = Vec::new();
    let mut pods = Vec::new();
    let lp = ListParams::default();
    for ns in namespaces(app) {
        let what = |k: &str| format!("{k} in {ns}");
        let api = Api::<Deployment>::namespaced(client.clone(), &ns);
        let ds = read(&ctx, &what("deployments"), || api.list(&lp)).await?;
        let mine: Vec<Deployment> = ds.items.into_iter().filter(|d| belongs(app, d)).collect();
        if mine.is_empty() {
            continue;
        }
        let api = Api::<ReplicaSet>::namespaced(client.clone(), &ns);
        let rs = read(&ctx, &what("replicasets"), || api.list(&lp)).await?;
        let api = Api::<Pod>::namespaced(client.clone(), &ns);
        let ps = read(&ctx, &what("pods"), || api.list(&lp)).await?;
        deployments.extend(mine);
        replicasets.extend(rs.items);
        pods.extend(ps.items);
    }
    Ok(rollout::rollouts(&deployments, &replicasets, &pods))
}

/// Recompute the workloads whenever a Deployment, ReplicaSet or Pod in the app's
/// namespaces changes (kube-rs watchers; debounced), until `tx` closes.
pub(super) fn watch(
    inner: Arc<Inner>,
    app: Application,
    tx: mpsc::Sender<Result<Vec<WorkloadRollout>, SourceError>>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let client = match inner.dest_client(&app).await {
            Ok((_, c)) => c,
            Err(e) => {
                let _ = tx.send(Err(e)).await;
                return;
            }
        };
        let mut streams = Vec::new();
        for ns in namespaces(&app) {
            let cfg = watcher::Config::default();
            streams.push(
                watcher(
                    Api::<Deployment>::namespaced(client.clone(), &ns),
                    cfg.clone(),
                )
                .default_backoff()
                .map(|_| ())
                .boxed(),
            );
            streams.push(
                watcher(
                    Api::<ReplicaSet>::namespaced(client.clone(), &ns),
                    cfg.clone(),
                )
                .default_backoff()
                .map(|_| ())
                .boxed(),
            );
            streams.push(
                watcher(Api::<Pod>::namespaced(client.clone(), &ns), cfg)
                    .default_backoff()
                    .map(|_| ())
                    .boxed(),
            );
        }
        let mut changes = futures::stream::select_all(streams);
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
            // Wait for a change (or re-check every 30 s in case a watch went quiet).
            tokio::select! {
                _ = tx.closed() => return,
                _ = changes.next() => {}
                _ = tokio::time::sleep(Duration::from_secs(30)) => {}
            }
            // Let a burst of pod events settle into one recompute.
            let settle = tokio::time::sleep(Duration::from_millis(150));
            tokio::pin!(settle);
            loop {
                tokio::select! {
                    _ = &mut settle => break,
                    _ = tx.closed() => return,
                    _ = changes.next() => {}
                }
            }
        }
    })
}

/// Events about the Application itself and about its resources (and their ReplicaSets and
/// pods, matched by name prefix), oldest first.
pub(super) async fn events(inner: &Inner, app: &Application) -> Result<Vec<AppEvent>, SourceError> {
    let ns = if app.metadata.namespace.is_empty() {
        inner.namespace.clone()
    } else {
        app.metadata.namespace.clone()
    };
    let lp = ListParams::default().fields(&format!("involvedObject.name={}", app.metadata.name));
    let api = Api::<Event>::namespaced(inner.client.clone(), &ns);
    let own = read(&inner.context, "events", || api.list(&lp)).await?;
    let mut out: Vec<AppEvent> = own
        .items
        .iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(app.metadata.name.as_str()))
        .map(app_event)
        .collect();
    let names: Vec<&str> = app
        .status
        .resources
        .iter()
        .map(|r| r.name.as_str())
        .collect();
    if let Ok((ctx, client)) = inner.dest_client(app).await {
        for dns in namespaces(app) {
            let api = Api::<Event>::namespaced(client.clone(), &dns);
            let all = ListParams::default();
            let list = read(&ctx, &format!("events in {dns}"), || api.list(&all)).await?;
            out.extend(
                list.items
                    .iter()
                    .filter(|e| {
                        let n = e.involved_object.name.as_deref().unwrap_or("");
                        names
                            .iter()
                            .any(|r| n == *r || n.starts_with(&format!("{r}-")))
                    })
                    .map(app_event),
            );
        }
    }
    out.sort_by(|a, b| a.last_seen.cmp(&b.last_seen));
    let skip = out.len().saturating_sub(500);
    Ok(out.split_off(skip))
}

pub(super) async fn pod_logs(
    inner: &Inner,
    app: &Application,
    namespace: &str,
    pod: &str,
    tail: u32,
) -> Result<Vec<String>, SourceError> {
    let (ctx, client) = inner.dest_client(app).await?;
    let lp = LogParams {
        tail_lines: Some(i64::from(tail)),
        ..Default::default()
    };
    let api = Api::<Pod>::namespaced(client, namespace);
    let text = read(&ctx, &format!("logs of {namespace}/{pod}"), || {
        api.logs(pod, &lp)
    })
    .await?;
    Ok(text.lines().map(str::to_string).collect())
}
