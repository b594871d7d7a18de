//! An application's workloads in its destination cluster (Deployments, ReplicaSets,
//! StatefulSets, DaemonSets, Jobs, CronJobs and their Pods, linked by owner references),
//! its Events and pod logs, read through the kubeconfig context that reaches that cluster.
//! Workloads are watched only while someone looks (the task ends when the receiver drops).
//! Only the kinds the app manages are listed (a cluster without CronJobs is not asked).

use super::{Inner, read};
use crate::model::{Application, WorkloadRollout};
use crate::sources::{AppEvent, SourceError, app_event, rollout};
use futures::StreamExt;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
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

/// Workload kinds whose pods (or Jobs) the tree shows.
const WORKLOAD_KINDS: &[&str] = &["Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"];

fn manages(app: &Application, kind: &str) -> bool {
    app.status.resources.iter().any(|r| r.kind == kind)
}

/// Namespaces the app's workloads live in: the destination namespace and any namespace
/// named by a managed workload.
fn namespaces(app: &Application) -> BTreeSet<String> {
    let mut out: BTreeSet<String> = app
        .status
        .resources
        .iter()
        .filter(|r| WORKLOAD_KINDS.contains(&r.kind.as_str()) && !r.namespace.is_empty())
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

/// A top-level workload of `kind` belongs to the app: it carries the app's tracking label
/// or the app reports it as a managed resource.
fn belongs(
    app: &Application,
    kind: &str,
    meta: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta,
) -> bool {
    let name = meta.name.as_deref().unwrap_or("");
    let ns = meta.namespace.as_deref().unwrap_or("");
    let labelled = meta
        .labels
        .as_ref()
        .and_then(|l| l.get(INSTANCE_LABEL))
        .is_some_and(|v| *v == app.metadata.name);
    labelled
        || app.status.resources.iter().any(|r| {
            r.kind == kind && r.name == name && (r.namespace.is_empty() || r.namespace == ns)
        })
}

pub(super) async fn workloads(
    inner: &Inner,
    app: &Application,
) -> Result<Vec<WorkloadRollout>, SourceError> {
    let (ctx, client) = inner.dest_client(app).await?;
    let mut f = rollout::Fetched::default();
    let lp = ListParams::default();
    for ns in namespaces(app) {
        let what = |k: &str| format!("{k} in {ns}");
        let mut any = false;
        let api = Api::<Deployment>::namespaced(client.clone(), &ns);
        let ds = read(&ctx, &what("deployments"), || api.list(&lp)).await?;
        let mine: Vec<Deployment> = ds
            .items
            .into_iter()
            .filter(|d| belongs(app, "Deployment", &d.metadata))
            .collect();
        if !mine.is_empty() {
            any = true;
            let api = Api::<ReplicaSet>::namespaced(client.clone(), &ns);
            let rs = read(&ctx, &what("replicasets"), || api.list(&lp)).await?;
            f.deployments.extend(mine);
            f.replicasets.extend(rs.items);
        }
        if manages(app, "StatefulSet") {
            let api = Api::<StatefulSet>::namespaced(client.clone(), &ns);
            let l = read(&ctx, &what("statefulsets"), || api.list(&lp)).await?;
            let mine: Vec<StatefulSet> = l
                .items
                .into_iter()
                .filter(|o| belongs(app, "StatefulSet", &o.metadata))
                .collect();
            any |= !mine.is_empty();
            f.statefulsets.extend(mine);
        }
        if manages(app, "DaemonSet") {
            let api = Api::<DaemonSet>::namespaced(client.clone(), &ns);
            let l = read(&ctx, &what("daemonsets"), || api.list(&lp)).await?;
            let mine: Vec<DaemonSet> = l
                .items
                .into_iter()
                .filter(|o| belongs(app, "DaemonSet", &o.metadata))
                .collect();
            any |= !mine.is_empty();
            f.daemonsets.extend(mine);
        }
        let mut crons = Vec::new();
        if manages(app, "CronJob") {
            let api = Api::<CronJob>::namespaced(client.clone(), &ns);
            let l = read(&ctx, &what("cronjobs"), || api.list(&lp)).await?;
            crons = l
                .items
                .into_iter()
                .filter(|o| belongs(app, "CronJob", &o.metadata))
                .collect();
        }
        if manages(app, "Job") || !crons.is_empty() {
            let api = Api::<Job>::namespaced(client.clone(), &ns);
            let l = read(&ctx, &what("jobs"), || api.list(&lp)).await?;
            // The app's own Jobs, and the Jobs its CronJobs started (by owner uid).
            let cron_refs: Vec<_> = crons
                .iter()
                .map(rollout::cronjob)
                .map(|w| crate::model::ObjectRef {
                    kind: w.kind,
                    namespace: w.namespace,
                    name: w.name,
                    uid: w.uid,
                })
                .collect();
            let mine: Vec<Job> = l
                .items
                .into_iter()
                .filter(|o| {
                    belongs(app, "Job", &o.metadata)
                        || rollout::controller_of(&o.metadata)
                            .is_some_and(|c| cron_refs.iter().any(|p| rollout::same_object(&c, p)))
                })
                .collect();
            any |= !mine.is_empty();
            f.jobs.extend(mine);
        }
        any |= !crons.is_empty();
        f.cronjobs.extend(crons);
        if !any {
            continue;
        }
        let api = Api::<Pod>::namespaced(client.clone(), &ns);
        let ps = read(&ctx, &what("pods"), || api.list(&lp)).await?;
        f.pods.extend(ps.items);
    }
    Ok(rollout::all_workloads(&f))
}

/// Recompute the workloads whenever a Deployment, ReplicaSet or Pod (or a StatefulSet,
/// DaemonSet, Job, CronJob the app manages) in the app's namespaces changes (kube-rs
/// watchers; debounced), until `tx` closes.
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
            if manages(&app, "StatefulSet") {
                streams.push(
                    watcher(
                        Api::<StatefulSet>::namespaced(client.clone(), &ns),
                        cfg.clone(),
                    )
                    .default_backoff()
                    .map(|_| ())
                    .boxed(),
                );
            }
            if manages(&app, "DaemonSet") {
                streams.push(
                    watcher(
                        Api::<DaemonSet>::namespaced(client.clone(), &ns),
                        cfg.clone(),
                    )
                    .default_backoff()
                    .map(|_| ())
                    .boxed(),
                );
            }
            if manages(&app, "Job") || manages(&app, "CronJob") {
                streams.push(
                    watcher(Api::<Job>::namespaced(client.clone(), &ns), cfg.clone())
                        .default_backoff()
                        .map(|_| ())
                        .boxed(),
                );
            }
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
