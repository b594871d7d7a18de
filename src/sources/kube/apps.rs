//! Applications and AppProjects as custom resources: list, watch (pages read ahead, then a
//! watch with bookmarks; relist after 410 or any error, with backoff), get, the
//! `.operation` writes a sync or a rollback makes (as `argocd --core` does: refuse when one
//! is set, update with retry on conflict), auto-sync on/off, access reviews and sync
//! windows.

use super::compact::CompactApp;
use super::{Inner, kube_err, paged, read};
use crate::model::{
    AppId, AppProject, Application, Connection, InitiatedBy, Operation, SyncOperation, Update,
};
use crate::sources::fate::SentOperation;
use crate::sources::retry;
use crate::sources::{
    Refresh, RollbackRequest, SourceError, SyncRequest, SyncWindowsState, syncwindow,
};
use backon::BackoffBuilder;
use futures::StreamExt;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub const ANOTHER_OPERATION: &str = "another operation is already in progress";
pub const ROLLBACK_AUTO_SYNC: &str = "rollback cannot be initiated when auto-sync is enabled";

fn app_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Application"),
        "applications",
    )
}

pub(super) fn project_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("argoproj.io", "v1alpha1", "AppProject"),
        "appprojects",
    )
}

pub(super) fn apps_api(inner: &Inner, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(inner.client.clone(), namespace, &app_resource())
}

/// Applications decoded straight into the board's compact app (list and watch).
fn compact_api(inner: &Inner, namespace: &str) -> Api<CompactApp> {
    Api::namespaced_with(inner.client.clone(), namespace, &app_resource())
}

pub(super) fn app_ns<'a>(inner: &'a Inner, app: &'a Application) -> &'a str {
    if app.metadata.namespace.is_empty() {
        &inner.namespace
    } else {
        &app.metadata.namespace
    }
}

pub(super) fn convert(inner: &Inner, obj: &DynamicObject) -> Result<Application, SourceError> {
    serde_json::to_value(obj)
        .and_then(serde_json::from_value::<Application>)
        .map_err(|e| SourceError::Protocol {
            server: inner.context.clone(),
            detail: format!(
                "Application {:?} does not parse: {e}",
                obj.metadata.name.as_deref().unwrap_or("")
            ),
        })
}

fn id_of(inner: &Inner, app: &Application) -> AppId {
    AppId::new(&inner.instance, app_ns(inner, app), &app.metadata.name)
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub(super) async fn list(inner: &Inner) -> Result<Vec<Application>, SourceError> {
    let api = compact_api(inner, &inner.namespace);
    let lp = kube::api::ListParams::default();
    let list = read(&inner.context, "list applications", || api.list(&lp)).await?;
    Ok(list.items.into_iter().map(|c| c.app).collect())
}

/// The list as [`paged::Lister`] reads it (pages asked for ahead), each app handed to
/// `each` as it decodes: one page of apps in memory at a time.
pub(super) async fn list_each(
    inner: &Inner,
    each: &mut (dyn FnMut(Application) + Send),
) -> Result<(), SourceError> {
    lister(inner, true)
        .list(&mut |l| {
            if let paged::Listed::App(c) = l {
                each(c.app)
            }
        })
        .await
        .map(drop)
        .map_err(|e| kube_err(&inner.context, "list applications", e))
}

fn lister(inner: &Inner, retrying: bool) -> paged::Lister {
    use kube::Resource;
    paged::Lister {
        client: inner.client.clone(),
        url: CompactApp::url_path(&app_resource(), Some(&inner.namespace)),
        retrying,
    }
}

pub(super) async fn get(inner: &Inner, name: &str) -> Result<Application, SourceError> {
    let api = apps_api(inner, &inner.namespace);
    let obj = read(&inner.context, &format!("application {name}"), || {
        api.get(name)
    })
    .await?;
    convert(inner, &obj)
}

/// The annotation Argo CD's controller reads to refresh an app (what `argocd app get
/// --refresh` sets in core mode).
pub(super) async fn request_refresh(
    inner: &Inner,
    name: &str,
    r: Refresh,
) -> Result<(), SourceError> {
    let value = if r == Refresh::Hard { "hard" } else { "normal" };
    let patch = json!({"metadata": {"annotations": {"argocd.argoproj.io/refresh": value}}});
    apps_api(inner, &inner.namespace)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| kube_err(&inner.context, &format!("refresh {name}"), e))?;
    Ok(())
}

/// Why the list or watch stopped, in the operator's words.
fn reason_of(inner: &Inner, e: kube::Error) -> String {
    let mapped = kube_err(&inner.context, "watch applications", e).to_string();
    crate::model::text::sanitize(&mapped).into_owned()
}

/// A list or watch error that retrying will not cure: the API server refused the
/// kubeconfig's credential (401) or it may not list/watch Applications (403). Then the
/// connection is `failed` with what to do, not `reconnecting` forever.
fn credential_failure(inner: &Inner, e: &kube::Error) -> Option<String> {
    let kube::Error::Api(s) = e else {
        return None;
    };
    match s.code {
        401 => Some(super::credential_refused(&inner.context)),
        403 => Some(super::credential_lacks(
            &inner.context,
            &format!(
                "list and watch Applications in namespace `{}`",
                inner.namespace
            ),
        )),
        _ => None,
    }
}

/// How long a watch may say nothing before it counts as dead: the server ends it after its
/// `timeoutSeconds` (kube-rs asks for 290), and bookmarks come well within that.
const WATCH_IDLE: std::time::Duration = std::time::Duration::from_secs(290 + 5);

/// Watch Applications as kube-rs' watcher does (list, then watch from the list's
/// resourceVersion with bookmarks, watch again from the last version seen when a stream
/// ends or goes quiet), but with the list read by [`paged::Lister`]: pages asked for ahead
/// and decoded as they arrive. Any error (a failed list, a watch that will not start, 410
/// Gone, an ERROR event, a broken stream) is reported at once as `reconnecting` with the
/// reason, and the loop starts over with a fresh list after the reconnect backoff of
/// [`crate::sources::retry`] (capped at a few seconds, so the board converges soon after a
/// fault clears). `connected` is reported after each complete list, never on a stale board.
pub(super) fn watch(inner: Arc<Inner>, tx: mpsc::Sender<Update>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let source = inner.instance.clone();
        let conn = |state| Update::Connection {
            source: source.clone(),
            state,
        };
        if tx.send(conn(Connection::Connecting)).await.is_err() {
            return;
        }
        let mut since = now();
        let mut backoff = BackoffBuilder::build(retry::reconnect_backoff());
        let lister = lister(&inner, false);
        loop {
            tracing::debug!(at_ms = %crate::logging::uptime_ms(), cpu_ms = %crate::logging::cpu_ms(), "application list begins");
            let mut apps: Vec<(AppId, Application)> = Vec::new();
            let mut keep = |l: paged::Listed| match l {
                // Room for the whole list at once: 50,000 apps grown by doubling moved
                // every app several times.
                paged::Listed::Expect(n) => apps.reserve(n.min(1 << 20)),
                paged::Listed::App(c) => apps.push((id_of(&inner, &c.app), c.app)),
            };
            let listed = tokio::select! {
                _ = tx.closed() => return,
                l = lister.list(&mut keep) => l,
            };
            let stopped = match listed {
                Ok(rv) => {
                    tracing::debug!(at_ms = %crate::logging::uptime_ms(), cpu_ms = %crate::logging::cpu_ms(), apps = apps.len(), "application list read");
                    let resync = Update::Resync {
                        instance: inner.instance.clone(),
                        apps,
                    };
                    if tx.send(resync).await.is_err()
                        || tx.send(conn(Connection::Connected)).await.is_err()
                    {
                        return;
                    }
                    since = now();
                    backoff = BackoffBuilder::build(retry::reconnect_backoff());
                    match follow(&inner, &tx, rv, &mut since).await {
                        Some(e) => e,
                        None => return,
                    }
                }
                Err(e) => e,
            };
            let failed = match credential_failure(&inner, &stopped) {
                Some(reason) => {
                    tracing::warn!(source = %inner.instance, "application watch: {reason}");
                    Connection::Failed { reason }
                }
                None => {
                    let reason = reason_of(&inner, stopped);
                    tracing::info!(source = %inner.instance, "application watch: {reason}");
                    Connection::Reconnecting {
                        reason,
                        since: since.clone(),
                    }
                }
            };
            // A refused credential is tried again now and then (an exec plugin may hand out
            // a fresh one), without hammering the API server.
            let wait = if matches!(failed, Connection::Failed { .. }) {
                retry::RECONNECT_MAX_DELAY
            } else {
                backoff.next().unwrap_or(retry::RECONNECT_MAX_DELAY)
            };
            if tx.send(conn(failed)).await.is_err() {
                return;
            }
            tokio::select! {
                _ = tx.closed() => return,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    })
}

/// Follow the watch from `rv` until it fails: the error (relist), or `None` once nobody
/// listens. A stream that ends (the server's timeout) or goes quiet is watched again from
/// the last version seen, as kube-rs' watcher does; one that ends at once, again and
/// again, is watched again after the reconnect backoff, not in a tight loop.
async fn follow(
    inner: &Inner,
    tx: &mpsc::Sender<Update>,
    mut rv: String,
    since: &mut String,
) -> Option<kube::Error> {
    use kube::core::WatchEvent;
    let api = compact_api(inner, &inner.namespace);
    let params = kube::api::WatchParams::default();
    let mut quick = BackoffBuilder::build(retry::reconnect_backoff());
    loop {
        let opened = tokio::select! {
            _ = tx.closed() => return None,
            s = api.watch(&params, &rv) => s,
        };
        let mut stream = match opened {
            Ok(s) => s.boxed(),
            Err(e) => return Some(e),
        };
        let mut heard = false;
        loop {
            let next = tokio::select! {
                _ = tx.closed() => return None,
                n = tokio::time::timeout(WATCH_IDLE, stream.next()) => n,
            };
            let event = match next {
                Ok(Some(Ok(ev))) => ev,
                Ok(Some(Err(e))) => return Some(e),
                // Ended, or quiet for longer than the server's own timeout: watch again.
                Ok(None) | Err(_) => break,
            };
            heard = true;
            let update = match event {
                WatchEvent::Added(o) | WatchEvent::Modified(o) => {
                    rv = seen_version(&o, &rv);
                    Update::Upsert(id_of(inner, &o.app), Box::new(o.app))
                }
                WatchEvent::Deleted(o) => {
                    rv = seen_version(&o, &rv);
                    Update::Delete(id_of(inner, &o.app))
                }
                WatchEvent::Bookmark(b) => {
                    if !b.metadata.resource_version.is_empty() {
                        rv = b.metadata.resource_version;
                    }
                    continue;
                }
                // 410 Gone (the version is too old to watch from) or any other refusal.
                WatchEvent::Error(s) => return Some(kube::Error::Api(s)),
            };
            if tx.send(update).await.is_err() {
                return None;
            }
            *since = now();
        }
        if heard {
            quick = BackoffBuilder::build(retry::reconnect_backoff());
        } else {
            let wait = quick.next().unwrap_or(retry::RECONNECT_MAX_DELAY);
            tokio::select! {
                _ = tx.closed() => return None,
                _ = tokio::time::sleep(wait) => {}
            }
        }
    }
}

fn seen_version(o: &CompactApp, last: &str) -> String {
    use kube::Resource;
    o.meta()
        .resource_version
        .clone()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| last.to_string())
}

/// Set `.operation` as Argo CD's `SetAppOperation` does: GET, refuse when an operation is
/// set, set it, clear `status.operationState`, update; retry on 409.
async fn set_operation(
    inner: &Inner,
    app: &Application,
    build: impl Fn(&Application) -> Result<Operation, SourceError>,
) -> Result<Application, SourceError> {
    let ns = app_ns(inner, app).to_string();
    let name = app.metadata.name.clone();
    let api = apps_api(inner, &ns);
    let what = format!("application {name}");
    for _ in 0..8 {
        let obj = read(&inner.context, &what, || api.get(&name)).await?;
        let mut raw = serde_json::to_value(&obj).map_err(|e| SourceError::Protocol {
            server: inner.context.clone(),
            detail: e.to_string(),
        })?;
        if raw.get("operation").is_some_and(|v| !v.is_null()) {
            return Err(SourceError::Refused(ANOTHER_OPERATION.into()));
        }
        let current = convert(inner, &obj)?;
        let op = build(&current)?;
        let mut sent = SentOperation::new(
            op.info.clone(),
            op.sync.as_ref().and_then(|s| s.revision.clone()),
        );
        raw["operation"] = serde_json::to_value(&op).map_err(|e| SourceError::Protocol {
            server: inner.context.clone(),
            detail: e.to_string(),
        })?;
        if let Some(status) = raw.get_mut("status").and_then(Value::as_object_mut) {
            status.remove("operationState");
        }
        let updated: DynamicObject =
            serde_json::from_value(raw).map_err(|e| SourceError::Protocol {
                server: inner.context.clone(),
                detail: e.to_string(),
            })?;
        sent.sent_at = chrono::Utc::now();
        match api.replace(&name, &PostParams::default(), &updated).await {
            Ok(o) => return convert(inner, &o),
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) if fate_unknown(&e) => {
                return learn_fate(inner, &api, &name, &what, &sent, e).await;
            }
            Err(e) => return Err(kube_err(&inner.context, &what, e)),
        }
    }
    Err(SourceError::Conflict(format!(
        "{what} kept changing while shipdeck wrote the operation; try again"
    )))
}

/// Did this failed write leave its fate unknown (the server may have done it)? A broken
/// connection or a gateway that lost the backend (502, 504) does; any other answer from the
/// API server (4xx, 429, 500, 503) says it was not done.
fn fate_unknown(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => matches!(s.code, 502 | 504),
        kube::Error::HyperError(h) => !h.is_canceled(),
        kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        _ => false,
    }
}

/// How long shipdeck looks for an operation whose answer never came.
const FATE_WINDOW: std::time::Duration = std::time::Duration::from_secs(5);

/// The answer to the `.operation` write never came: read the app (a few times, for a
/// request still in flight) and report whether the operation landed. Never resend.
async fn learn_fate(
    inner: &Inner,
    api: &Api<DynamicObject>,
    name: &str,
    what: &str,
    sent: &SentOperation,
    e: kube::Error,
) -> Result<Application, SourceError> {
    let cause = kube_err(&inner.context, what, e).to_string();
    tracing::warn!("{what}: {cause}; reading the app to learn whether it went through");
    let deadline = tokio::time::Instant::now() + FATE_WINDOW;
    let read_error = loop {
        let seen = read(&inner.context, what, || api.get(name))
            .await
            .and_then(|o| convert(inner, &o));
        let read_error = match seen {
            Ok(app) if sent.landed_in(&app) => return Ok(app),
            Ok(_) => None,
            Err(e) => Some(e.to_string()),
        };
        if tokio::time::Instant::now() >= deadline {
            break read_error;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    let detail = match read_error {
        Some(e) => format!(
            "{cause}; the app could not be read afterwards ({e}), so whether it went through is unknown: look at the app before sending it again (shipdeck did not resend it)"
        ),
        None => format!(
            "{cause}; the app shows no operation from it after {}s, so it was most likely not done; shipdeck did not resend it",
            FATE_WINDOW.as_secs()
        ),
    };
    Err(SourceError::Unreachable {
        server: inner.context.clone(),
        detail,
    })
}

fn initiated_by(user: &str) -> Option<InitiatedBy> {
    Some(InitiatedBy {
        username: Some(if user.is_empty() {
            "shipdeck".into()
        } else {
            user.to_string()
        }),
        automated: false,
    })
}

/// The `.operation` a sync writes (CONTRACTS.md "Sync", core form).
pub fn sync_operation(app: &Application, req: &SyncRequest) -> Operation {
    let policy = app.spec.sync_policy.as_ref();
    let multi = app.spec.source.is_none() && !app.spec.sources.is_empty();
    let revision = req
        .revision
        .clone()
        .or_else(|| app.target_revision().map(str::to_string));
    let strategy = if req.apply_strategy {
        json!({"apply": {}})
    } else {
        json!({"hook": {}})
    };
    Operation {
        initiated_by: initiated_by(&req.initiated_by),
        info: req.info.clone(),
        retry: policy.and_then(|p| p.retry.clone()),
        sync: Some(SyncOperation {
            revision: if multi { None } else { revision.clone() },
            revisions: if multi {
                app.spec
                    .sources
                    .iter()
                    .map(|s| s.target_revision.clone().unwrap_or_else(|| "HEAD".into()))
                    .collect()
            } else {
                Vec::new()
            },
            source: if multi { None } else { app.spec.source.clone() },
            sources: if multi {
                app.spec.sources.clone()
            } else {
                Vec::new()
            },
            prune: req.prune,
            dry_run: req.dry_run,
            sync_strategy: Some(strategy),
            sync_options: policy.map(|p| p.sync_options.clone()).unwrap_or_default(),
            resources: req.resources.clone(),
        }),
    }
}

/// The `.operation` a rollback writes (CONTRACTS.md "Rollback"), or the refusal Argo CD gives.
pub fn rollback_operation(
    app: &Application,
    req: &RollbackRequest,
) -> Result<Operation, SourceError> {
    if app.auto_sync() {
        return Err(SourceError::Refused(ROLLBACK_AUTO_SYNC.into()));
    }
    let entry = app
        .status
        .history
        .iter()
        .find(|h| h.id == req.id)
        .ok_or_else(|| {
            SourceError::Refused(format!(
                "application {} does not have deployment with id {}",
                app.metadata.name, req.id
            ))
        })?;
    Ok(Operation {
        initiated_by: initiated_by(&req.initiated_by),
        info: req.info.clone(),
        retry: None,
        sync: Some(SyncOperation {
            revision: entry.revision.clone(),
            revisions: entry.revisions.clone(),
            source: entry.source.clone(),
            sources: entry.sources.clone(),
            prune: req.prune,
            dry_run: req.dry_run,
            sync_strategy: Some(json!({"apply": {}})),
            sync_options: app
                .spec
                .sync_policy
                .as_ref()
                .map(|p| p.sync_options.clone())
                .unwrap_or_default(),
            resources: Vec::new(),
        }),
    })
}

pub(super) async fn sync(
    inner: &Inner,
    app: &Application,
    req: SyncRequest,
) -> Result<Application, SourceError> {
    set_operation(inner, app, |current| Ok(sync_operation(current, &req))).await
}

pub(super) async fn rollback(
    inner: &Inner,
    app: &Application,
    req: RollbackRequest,
) -> Result<Application, SourceError> {
    set_operation(inner, app, |current| rollback_operation(current, &req)).await
}

/// The merge patch that turns automated sync on (keeping prune/selfHeal) or off.
/// Annotation shipdeck writes when it turns auto-sync off (by a rollback or `shipdeck
/// autosync APP off`): when, RFC 3339. Turning it on removes it.
pub const AUTO_SYNC_OFF_SINCE: &str = "shipdeck.io/auto-sync-off-since";

pub fn auto_sync_patch(app: &Application, enabled: bool) -> Value {
    if enabled {
        let current = app
            .spec
            .sync_policy
            .as_ref()
            .and_then(|p| p.automated.clone())
            .unwrap_or_default();
        json!({"metadata": {"annotations": {AUTO_SYNC_OFF_SINCE: null}},
            "spec": {"syncPolicy": {"automated": {
            "prune": current.prune, "selfHeal": current.self_heal, "enabled": null
        }}}})
    } else {
        // Recorded on the Application so every operator sees since when it is off.
        json!({"metadata": {"annotations": {
                AUTO_SYNC_OFF_SINCE: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            }},
            "spec": {"syncPolicy": {"automated": null}}})
    }
}

pub(super) async fn set_auto_sync(
    inner: &Inner,
    app: &Application,
    enabled: bool,
) -> Result<Application, SourceError> {
    let name = &app.metadata.name;
    let what = format!("application {name}");
    let api = apps_api(inner, app_ns(inner, app));
    let send = |patch: Value| {
        let api = &api;
        async move {
            api.patch(name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
        }
    };
    // A 409 means the patch was not applied: re-read, rebuild it from what the app is now,
    // and send it once more.
    let obj = match send(auto_sync_patch(app, enabled)).await {
        Err(kube::Error::Api(s)) if s.code == 409 => {
            tracing::info!("{what}: conflict; re-reading the app and sending the patch again");
            let current = read(&inner.context, &what, || api.get(name)).await?;
            send(auto_sync_patch(&convert(inner, &current)?, enabled)).await
        }
        other => other,
    }
    .map_err(|e| kube_err(&inner.context, &what, e))?;
    convert(inner, &obj)
}

/// Argo CD actions map to the Kubernetes verb that performs them in core mode.
fn verb_for(action: &str) -> &'static str {
    match action {
        "get" => "get",
        "delete" => "delete",
        "create" => "create",
        _ => "patch",
    }
}

pub(super) async fn can_i(
    inner: &Inner,
    action: &str,
    app: &Application,
) -> Result<bool, SourceError> {
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some("argoproj.io".into()),
                resource: Some("applications".into()),
                verb: Some(verb_for(action).into()),
                namespace: Some(app_ns(inner, app).to_string()),
                name: Some(app.metadata.name.clone()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    let api: Api<SelfSubjectAccessReview> = Api::all(inner.client.clone());
    // An access review is a question, not a change: as safe to repeat as a read.
    let pp = PostParams::default();
    let answer = read(&inner.context, "access review", || api.create(&pp, &review)).await?;
    Ok(answer.status.is_some_and(|s| s.allowed))
}

pub(super) async fn sync_windows(
    inner: &Inner,
    app: &Application,
) -> Result<SyncWindowsState, SourceError> {
    let project = if app.spec.project.is_empty() {
        "default"
    } else {
        &app.spec.project
    };
    let api: Api<DynamicObject> =
        Api::namespaced_with(inner.client.clone(), &inner.namespace, &project_resource());
    let obj = read(&inner.context, &format!("project {project}"), || {
        api.get_opt(project)
    })
    .await?;
    let Some(obj) = obj else {
        return Ok(SyncWindowsState {
            can_sync: true,
            ..Default::default()
        });
    };
    let proj: AppProject = serde_json::to_value(&obj)
        .and_then(serde_json::from_value)
        .map_err(|e| SourceError::Protocol {
            server: inner.context.clone(),
            detail: format!("AppProject {project}: {e}"),
        })?;
    for w in &proj.spec.sync_windows {
        if let Err(e) = syncwindow::parse_window(w) {
            tracing::warn!("project {project}: {e}");
        }
    }
    Ok(syncwindow::evaluate(
        &proj.spec.sync_windows,
        app,
        chrono::Utc::now(),
    ))
}
