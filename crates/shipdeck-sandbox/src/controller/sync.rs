//! Running one Application `.operation` (a sync, or a rollback written as a sync to a
//! history revision): Running -> Succeeded/Failed with per-resource results, objects
//! applied into the destination cluster, pruning, dry runs, selected resources, sync
//! windows, history, events, and `.operation` cleared at the end, as Argo CD does.

use super::argo::{COMPONENT, Ctx, compare_live, now, write_comparison};
use super::{cluster_of, compare, windows};
use crate::estate::seed::kubectl_name;
use crate::store::{APPLICATIONS, APPPROJECTS, DEPLOYMENTS, NAMESPACES, PODS, REPLICASETS};
use crate::{ARGOCD_NAMESPACE, IN_CLUSTER, events};
use serde_json::{Value, json};
use shipdeck_wire::Application;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

pub(super) async fn run(ctx: Arc<Ctx>, name: String) {
    execute(&ctx, &name).await;
    ctx.running
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&name);
    let _ = ctx.done.send(name);
}

struct Outcome {
    sha: String,
    results: Vec<Value>,
    source: Value,
    /// Why later sync waves were not applied (an earlier one never became healthy).
    blocked: Option<String>,
}

async fn execute(ctx: &Ctx, name: &str) {
    let world = &ctx.world;
    let store = &world.store;
    let Some(obj) = store.get(IN_CLUSTER, APPLICATIONS, ARGOCD_NAMESPACE, name) else {
        return;
    };
    let Some(op) = obj.get("operation").filter(|o| !o.is_null()).cloned() else {
        return;
    };
    let automated = op["initiatedBy"]["automated"] == json!(true);
    if world.faults.holding_operations() {
        // A busy controller: the operation waits in `.operation` for a later pass.
        world.clock.sleep(Duration::from_secs(1)).await;
        return;
    }
    if let Some(why) = window_blocks(ctx, &obj, automated) {
        // As Argo CD's controller (`syncWindowPreventsSync`): the operation stays Running
        // with this message, `.operation` stays set, and it is tried again on each pass
        // until a window allows it (or someone terminates it).
        let message = why.message();
        let _ = store.mutate(
            IN_CLUSTER,
            APPLICATIONS,
            ARGOCD_NAMESPACE,
            name,
            true,
            |o| {
                if !o["status"].is_object() {
                    o["status"] = json!({});
                }
                let st = &o["status"]["operationState"];
                let same = st["phase"] == "Running" && st["operation"] == op;
                if same && st["message"] == json!(message) {
                    return Ok(false);
                }
                let started = if same {
                    st["startedAt"].clone()
                } else {
                    json!(now())
                };
                o["status"]["operationState"] = json!({
                    "operation": op,
                    "phase": "Running",
                    "message": message,
                    "startedAt": started,
                });
                Ok(true)
            },
        );
        world.clock.sleep(Duration::from_secs(1)).await;
        return;
    }
    let started = now();
    let user = op["initiatedBy"]["username"]
        .as_str()
        .unwrap_or("admin")
        .to_string();
    let requested = op["sync"]["revision"].as_str().unwrap_or("").to_string();
    let running = store.mutate(
        IN_CLUSTER,
        APPLICATIONS,
        ARGOCD_NAMESPACE,
        name,
        true,
        |o| {
            if !o["status"].is_object() {
                o["status"] = json!({});
            }
            o["status"]["operationState"] = json!({
                "operation": op,
                "phase": "Running",
                "message": "one or more tasks are running",
                "startedAt": started,
            });
            Ok(true)
        },
    );
    let Ok(running) = running else {
        return;
    };
    let shown = if requested.is_empty() {
        "HEAD".to_string()
    } else {
        requested.clone()
    };
    let message = if automated {
        format!("Initiated automated sync to '{shown}'")
    } else {
        format!("{user} initiated sync to {shown}")
    };
    events::emit(
        store,
        IN_CLUSTER,
        &running,
        "Normal",
        "OperationStarted",
        &message,
        COMPONENT,
    );
    // Argo CD takes a moment to apply; let watchers see the Running phase.
    world.clock.sleep(Duration::from_secs(1)).await;
    if !wait_for_window(ctx, name, automated).await {
        return;
    }

    let app: Result<Application, String> =
        serde_json::from_value((*running).clone()).map_err(|e| format!("invalid application: {e}"));
    let dry_run = op["sync"]["dryRun"] == json!(true);
    let selected: Vec<Value> = op["sync"]["resources"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let outcome = match app {
        Ok(app) => sync_once(ctx, &app, &op, dry_run, &selected).await,
        Err(e) => Err(e),
    };
    let finished = now();
    let (phase, message, sync_result) = match &outcome {
        Ok(o) => {
            let failed: Vec<&Value> = o
                .results
                .iter()
                .filter(|r| r["status"] == "SyncFailed")
                .collect();
            let sr = json!({"resources": o.results, "revision": o.sha, "source": o.source});
            if let Some(why) = &o.blocked {
                ("Failed", why.clone(), Some(sr))
            } else if let Some(f) = failed.first() {
                (
                    "Failed",
                    format!(
                        "one or more objects failed to apply, reason: {}",
                        f["message"].as_str().unwrap_or("")
                    ),
                    Some(sr),
                )
            } else {
                (
                    "Succeeded",
                    "successfully synced (all tasks run)".to_string(),
                    Some(sr),
                )
            }
        }
        Err(e) => ("Failed", e.clone(), None),
    };
    let whole_app = selected.is_empty();
    let mut heads = HashMap::new();
    let done = store.mutate(
        IN_CLUSTER,
        APPLICATIONS,
        ARGOCD_NAMESPACE,
        name,
        true,
        |o| {
            let mut state = json!({
                "operation": op,
                "phase": phase,
                "message": message,
                "startedAt": started,
                "finishedAt": finished,
            });
            if let Some(sr) = &sync_result {
                state["syncResult"] = sr.clone();
            }
            if !o["status"].is_object() {
                o["status"] = json!({});
            }
            if phase == "Succeeded"
                && !dry_run
                && whole_app
                && let Ok(out) = &outcome
            {
                let history = o["status"]["history"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                let id = history
                    .last()
                    .and_then(|h| h["id"].as_i64())
                    .map_or(0, |i| i + 1);
                let mut history = history;
                history.push(json!({
                    "id": id,
                    "revision": out.sha,
                    "source": out.source,
                    "deployStartedAt": started,
                    "deployedAt": finished,
                    "initiatedBy": op["initiatedBy"],
                }));
                let limit = o["spec"]["revisionHistoryLimit"]
                    .as_i64()
                    .unwrap_or(10)
                    .max(1) as usize;
                if history.len() > limit {
                    history.drain(..history.len() - limit);
                }
                o["status"]["history"] = json!(history);
            }
            o["status"]["operationState"] = state;
            if let Some(m) = o.as_object_mut() {
                m.remove("operation");
            }
            // Compare again so that `argocd app wait` (reconciledAt >= finishedAt) reads a
            // status that includes this sync.
            if let Ok(app) = serde_json::from_value::<Application>(o.clone()) {
                let computed = super::argo::compute(ctx, &app, &mut heads);
                write_comparison(&mut o["status"], &app, &computed);
            }
            o["status"]["reconciledAt"] = json!(finished);
            Ok(true)
        },
    );
    if let Ok(done) = done {
        let sha = outcome.as_ref().map(|o| o.sha.clone()).unwrap_or(shown);
        let (kind, text) = if phase == "Succeeded" {
            ("Normal", format!("Sync operation to {sha} succeeded"))
        } else {
            (
                "Warning",
                format!("Sync operation to {sha} failed: {message}"),
            )
        };
        events::emit(
            store,
            IN_CLUSTER,
            &done,
            kind,
            "OperationCompleted",
            &text,
            COMPONENT,
        );
    }
}

/// Argo CD's `SyncAppState` under a sync window that prevents the sync
/// (`syncWindowPreventsSync`): the operation stays Running with the message "Sync operation
/// blocked by sync window" (with the window error, if one does not parse) and is tried again
/// on the next pass, so it goes ahead once the window lets it. False when the operation went
/// away or was terminated meanwhile (then it has been finished here).
async fn wait_for_window(ctx: &Ctx, name: &str, automated: bool) -> bool {
    let store = &ctx.world.store;
    let mut shown = String::new();
    loop {
        let Some(obj) = store.get(IN_CLUSTER, APPLICATIONS, ARGOCD_NAMESPACE, name) else {
            return false;
        };
        if obj.get("operation").is_none_or(Value::is_null) {
            return false;
        }
        if obj["status"]["operationState"]["phase"] == "Terminating" {
            let _ = store.mutate(
                IN_CLUSTER,
                APPLICATIONS,
                ARGOCD_NAMESPACE,
                name,
                true,
                |o| {
                    o["status"]["operationState"]["phase"] = json!("Failed");
                    o["status"]["operationState"]["message"] = json!("Operation terminated");
                    o["status"]["operationState"]["finishedAt"] = json!(now());
                    if let Some(m) = o.as_object_mut() {
                        m.remove("operation");
                    }
                    Ok(true)
                },
            );
            return false;
        }
        // The same rule as before the operation started (`window_blocks`); Argo CD adds
        // the reason only when a window cannot be evaluated.
        let message = match window_blocks(ctx, &obj, automated) {
            None => return true,
            Some(why) => why.message(),
        };
        if message != shown {
            show_while_running(store, name, &message);
            shown = message;
        }
        ctx.world.clock.sleep(Duration::from_secs(1)).await;
    }
}

/// Live objects with the app's tracking label that Git no longer has (prune candidates),
/// among the selected resources.
fn orphans(
    ctx: &Ctx,
    name: &str,
    cluster: &str,
    desired: &[Value],
    selected: &[Value],
) -> Vec<(super::argo::ObjRef, Arc<Value>)> {
    let store = &ctx.world.store;
    let wanted: Vec<(String, String, String)> = desired
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap_or("").to_string(),
                compare::meta(d, "namespace").to_string(),
                compare::meta(d, "name").to_string(),
            )
        })
        .collect();
    let mut out = Vec::new();
    let mut refs = ctx.index().of(name);
    refs.sort_by(|a, b| {
        (a.res.kind, &a.namespace, &a.name).cmp(&(b.res.kind, &b.namespace, &b.name))
    });
    for r in refs {
        if r.cluster != cluster || r.res == PODS || r.res == REPLICASETS {
            continue;
        }
        let Some(live) = store.get(&r.cluster, r.res, &r.namespace, &r.name) else {
            continue;
        };
        if live["metadata"]["ownerReferences"]
            .as_array()
            .is_some_and(|o| !o.is_empty())
            || wanted.contains(&(r.res.kind.to_string(), r.namespace.clone(), r.name.clone()))
            || !selected_match(selected, &live)
        {
            continue;
        }
        out.push((r, live));
    }
    out
}

/// gitops-engine's `objRequiresPruneConfirmation`: the live object's
/// `argocd.argoproj.io/sync-options` has `Prune=confirm`.
fn requires_prune_confirmation(live: &Value) -> bool {
    live["metadata"]["annotations"][crate::estate::render::SYNC_OPTIONS]
        .as_str()
        .is_some_and(|o| o.split(',').any(|x| x.trim() == "Prune=confirm"))
}

/// The Application annotation that confirms pending prunes (`argocd app confirm-deletion`
/// writes it with the time; the UI's confirm button too).
pub const DELETION_APPROVED: &str = "argocd.argoproj.io/deletion-approved";

/// Hold the operation Running with gitops-engine's message ("waiting for pruning
/// confirmation of GROUP/KIND/NAME and N more resources") until the app carries
/// `argocd.argoproj.io/deletion-approved` with an RFC 3339 time at or after the operation's
/// `startedAt` (Argo CD's `IsDeletionConfirmed`); an unreadable time confirms nothing.
async fn wait_for_prune_confirmation(
    ctx: &Ctx,
    name: &str,
    waiting: &[String],
) -> Result<(), String> {
    let store = &ctx.world.store;
    let mut message = format!("waiting for pruning confirmation of {}", waiting[0]);
    if waiting.len() > 1 {
        message.push_str(&format!(" and {} more resources", waiting.len() - 1));
    }
    let mut shown = false;
    loop {
        let Some(obj) = store.get(IN_CLUSTER, APPLICATIONS, ARGOCD_NAMESPACE, name) else {
            return Err("application deleted".into());
        };
        if obj.get("operation").is_none_or(Value::is_null)
            || obj["status"]["operationState"]["phase"] == "Terminating"
        {
            return Err("Operation terminated".into());
        }
        let started = obj["status"]["operationState"]["startedAt"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        let approved = obj["metadata"]["annotations"][DELETION_APPROVED]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
        if let (Some(started), Some(approved)) = (started, approved)
            && approved >= started
        {
            return Ok(());
        }
        if !shown {
            show_while_running(store, name, &message);
            shown = true;
        }
        ctx.world.clock.sleep(Duration::from_secs(1)).await;
    }
}

/// Put `message` on the app's operation state while it is still Running (a held operation
/// says why it waits).
fn show_while_running(store: &crate::store::Store, name: &str, message: &str) {
    let _ = store.mutate(
        IN_CLUSTER,
        APPLICATIONS,
        ARGOCD_NAMESPACE,
        name,
        true,
        |o| {
            if o["status"]["operationState"]["phase"] != "Running" {
                return Ok(false);
            }
            o["status"]["operationState"]["message"] = json!(message);
            Ok(true)
        },
    );
}

/// Argo CD's wording for an operation held by a sync window.
pub const BLOCKED: &str = "Sync operation blocked by sync window";

fn selected_match(selected: &[Value], obj: &Value) -> bool {
    if selected.is_empty() {
        return true;
    }
    let (group, _) = compare::group_version(obj);
    selected.iter().any(|s| {
        s["kind"].as_str() == obj["kind"].as_str()
            && s["name"].as_str() == Some(compare::meta(obj, "name"))
            && s["group"].as_str().unwrap_or("") == group
            && s["namespace"]
                .as_str()
                .is_none_or(|n| n.is_empty() || n == compare::meta(obj, "namespace"))
    })
}

/// The `argocd.argoproj.io/sync-wave` of a manifest (0 when absent or not a number).
pub(crate) fn wave_of(obj: &Value) -> i64 {
    obj["metadata"]["annotations"][crate::estate::SYNC_WAVE]
        .as_str()
        .and_then(|w| w.trim().parse().ok())
        .unwrap_or(0)
}

/// How long one wave may take to become healthy before the sync fails (simulated).
const WAVE_TIMEOUT: Duration = Duration::from_secs(600);

/// Health of an applied object for the wave gate: a child Application by its own
/// `status.health` (the health check app-of-apps users enable so that waves of child apps
/// wait, as Argo CD documents), other kinds as Argo CD assesses them; kinds without a health
/// check count as healthy.
fn gate_health(ctx: &Ctx, cluster: &str, desired: &Value) -> (String, String) {
    let Some(res) = compare::resource_type_of(desired) else {
        return ("Healthy".into(), String::new());
    };
    let ns = compare::meta(desired, "namespace");
    let name = compare::meta(desired, "name");
    let what = format!("{}/{}/{name}", res.group, res.kind);
    let Some(live) = ctx.world.store.get(cluster, res, ns, name) else {
        return ("Missing".into(), what);
    };
    if res == APPLICATIONS {
        let h = live["status"]["health"]["status"]
            .as_str()
            .unwrap_or("Unknown")
            .to_string();
        return (h, what);
    }
    let pods: Vec<Arc<Value>> = if res == DEPLOYMENTS {
        let (all, _) = ctx.world.store.list(cluster, PODS, Some(ns));
        all.into_iter().collect()
    } else {
        vec![]
    };
    match compare::resource_health(&live, &pods) {
        Some((h, _)) => (h, what),
        None => ("Healthy".into(), what),
    }
}

/// Wait until every object of a wave is healthy (Argo CD moves to the next wave only then);
/// a Degraded object or the timeout fails the sync.
async fn wait_wave(
    ctx: &Ctx,
    app: &str,
    cluster: &str,
    wave: i64,
    objects: &[&Value],
) -> Result<(), String> {
    let clock = ctx.world.clock;
    let mut waited = Duration::ZERO;
    let mut shown = String::new();
    loop {
        let pending: Vec<(String, String)> = objects
            .iter()
            .map(|d| gate_health(ctx, cluster, d))
            .filter(|(h, _)| h != "Healthy")
            .collect();
        let Some((health, first)) = pending.first() else {
            return Ok(());
        };
        if health == "Degraded" {
            return Err(format!(
                "sync wave {wave}: {first} is Degraded; later waves were not applied"
            ));
        }
        if waited >= WAVE_TIMEOUT {
            return Err(format!(
                "sync wave {wave}: {first} still {health} after {}s; later waves were not applied",
                WAVE_TIMEOUT.as_secs()
            ));
        }
        let message = if pending.len() > 1 {
            format!(
                "waiting for healthy state of {first} and {} more resources",
                pending.len() - 1
            )
        } else {
            format!("waiting for healthy state of {first}")
        };
        if message != shown {
            show_while_running(&ctx.world.store, app, &message);
            shown = message;
        }
        clock.sleep(Duration::from_secs(1)).await;
        waited += Duration::from_secs(1);
    }
}

enum Blocked {
    Window,
    Invalid(String),
}

impl Blocked {
    /// Argo CD's message on the held operation (with the window error when one does not
    /// parse).
    fn message(&self) -> String {
        match self {
            Blocked::Window => BLOCKED.to_string(),
            Blocked::Invalid(e) => format!("{BLOCKED}: {e}"),
        }
    }
}

/// Whether the app's project windows keep this operation from running now (Argo CD's
/// `CanSync(isManual)`; a manual operation is one not initiated by automation).
fn window_blocks(ctx: &Ctx, obj: &Value, automated: bool) -> Option<Blocked> {
    let world = &ctx.world;
    let app: Application = serde_json::from_value(obj.clone()).ok()?;
    let cluster = cluster_of(world, &app)?;
    let project = world
        .store
        .get(IN_CLUSTER, APPPROJECTS, ARGOCD_NAMESPACE, &app.spec.project)?;
    match windows::can_sync(
        &project["spec"]["syncWindows"],
        &app,
        &cluster,
        !automated,
        chrono::Utc::now(),
    ) {
        Ok(()) => None,
        Err(e) if e.starts_with("invalid sync window") => Some(Blocked::Invalid(e)),
        Err(_) => Some(Blocked::Window),
    }
}

async fn sync_once(
    ctx: &Ctx,
    app: &Application,
    op: &Value,
    dry_run: bool,
    selected: &[Value],
) -> Result<Outcome, String> {
    let world = &ctx.world;
    let store = &world.store;
    let name = app.metadata.name.as_str();
    let cluster = cluster_of(world, app).ok_or_else(|| {
        "ComparisonError: the destination cluster has not been configured".to_string()
    })?;
    let spec_source = serde_json::to_value(app.spec.primary_source()).unwrap_or(Value::Null);
    let source = if op["sync"]["source"].is_object() {
        op["sync"]["source"].clone()
    } else {
        spec_source
    };
    let rev = op["sync"]["revision"]
        .as_str()
        .filter(|r| !r.is_empty())
        .or(source["targetRevision"].as_str())
        .unwrap_or("HEAD")
        .to_string();
    let sha = world
        .repo
        .resolve(&rev)
        .map_err(|e| format!("ComparisonError: {e}"))?;
    let path = source["path"].as_str().map(str::to_string);
    let desired = super::desired_at_sha(world, app, &sha, path.as_deref())
        .map_err(|e| format!("ComparisonError: {e}"))?;
    let options: Vec<String> = op["sync"]["syncOptions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_string)
        .chain(
            app.spec
                .sync_policy
                .iter()
                .flat_map(|p| p.sync_options.clone()),
        )
        .collect();
    let create_ns = options.iter().any(|o| o == "CreateNamespace=true");
    // Argo CD 3.4+: prunes of resources marked `Prune=confirm` (or all, with the app's
    // `Prune=confirm` option) wait for a deletion confirmation before the wave runs.
    if op["sync"]["prune"] == json!(true) && !dry_run {
        let default_confirm = options.iter().any(|o| o == "Prune=confirm");
        let waiting: Vec<String> = orphans(ctx, name, &cluster, &desired, selected)
            .into_iter()
            .filter(|(_, live)| default_confirm || requires_prune_confirmation(live))
            .map(|(r, _)| format!("{}/{}/{}", r.res.group, r.res.kind, r.name))
            .collect();
        if !waiting.is_empty() {
            wait_for_prune_confirmation(ctx, name, &waiting).await?;
        }
    }
    let suffix = if dry_run { " (dry run)" } else { "" };
    let mut results = Vec::new();
    // Apply in sync-wave order, each wave healthy before the next, as Argo CD does.
    let mut ordered: Vec<&Value> = desired
        .iter()
        .filter(|d| selected_match(selected, d))
        .collect();
    ordered.sort_by_key(|d| wave_of(d));
    let waves: Vec<i64> = {
        let mut w: Vec<i64> = ordered.iter().map(|d| wave_of(d)).collect();
        w.dedup();
        w
    };
    let mut blocked: Option<String> = None;
    for (wi, wave) in waves.iter().enumerate() {
        let in_wave: Vec<&Value> = ordered
            .iter()
            .copied()
            .filter(|d| wave_of(d) == *wave)
            .collect();
        let mut applied = Vec::new();
        for d in in_wave.iter().copied() {
            let (group, version) = compare::group_version(d);
            let mut result = json!({
                "group": group, "version": version, "kind": d["kind"],
                "namespace": compare::meta(d, "namespace"), "name": compare::meta(d, "name"),
                "hookPhase": "Running", "syncPhase": "Sync",
            });
            if *wave != 0 {
                result["syncWave"] = json!(wave);
            }
            match apply(ctx, &cluster, d, create_ns, dry_run) {
                Ok(verb) => {
                    result["status"] = json!("Synced");
                    result["message"] = json!(format!("{} {verb}{suffix}", kubectl_name(&result)));
                    applied.push(d);
                }
                Err(e) => {
                    result["status"] = json!("SyncFailed");
                    result["hookPhase"] = json!("Failed");
                    result["message"] = json!(e);
                }
            }
            results.push(result);
        }
        let failed = results.iter().any(|r| r["status"] == "SyncFailed");
        if failed {
            // Later waves are not applied after a failed one.
            break;
        }
        if dry_run || wi + 1 == waves.len() {
            continue;
        }
        if let Err(e) = wait_wave(ctx, name, &cluster, *wave, &applied).await {
            blocked = Some(e);
            break;
        }
    }
    if blocked.is_some() {
        return Ok(Outcome {
            sha,
            results,
            source,
            blocked,
        });
    }
    // Live objects with the app's label that Git no longer has.
    let prune = op["sync"]["prune"] == json!(true);
    for (r, live) in orphans(ctx, name, &cluster, &desired, selected) {
        let (group, version) = compare::group_version(&live);
        let mut result = json!({
            "group": group, "version": version, "kind": r.res.kind,
            "namespace": r.namespace, "name": r.name, "syncPhase": "Sync",
        });
        if prune {
            if !dry_run {
                let _ = store.delete(&r.cluster, r.res, &r.namespace, &r.name);
            }
            result["status"] = json!("Pruned");
            result["message"] = json!(format!("pruned{suffix}"));
        } else {
            result["status"] = json!("PruneSkipped");
            result["message"] = json!("ignored (requires pruning)");
        }
        results.push(result);
    }
    let _ = compare_live;
    Ok(Outcome {
        sha,
        results,
        source,
        blocked: None,
    })
}

/// Apply one desired object like `kubectl apply`: create it, or write its fields over the
/// live object (keeping status and fields only live has). Returns the kubectl verb.
fn apply(
    ctx: &Ctx,
    cluster: &str,
    desired: &Value,
    create_ns: bool,
    dry_run: bool,
) -> Result<&'static str, String> {
    let store = &ctx.world.store;
    let res = compare::resource_type_of(desired).ok_or_else(|| {
        format!(
            "the server could not find the requested resource ({} {})",
            desired["apiVersion"].as_str().unwrap_or(""),
            desired["kind"].as_str().unwrap_or("")
        )
    })?;
    let ns = compare::meta(desired, "namespace");
    let name = compare::meta(desired, "name");
    if let Some(why) = ctx.world.faults.denied_apply(res.kind, name) {
        return Err(why);
    }
    if res.namespaced && store.get(cluster, NAMESPACES, "", ns).is_none() {
        if !create_ns {
            return Err(format!("namespaces \"{ns}\" not found"));
        }
        if !dry_run {
            let _ = store.create(
                cluster,
                NAMESPACES,
                json!({"metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}}, "status": {"phase": "Active"}}),
            );
        }
    }
    match store.get(cluster, res, ns, name) {
        None => {
            if !dry_run {
                store
                    .create(cluster, res, desired.clone())
                    .map_err(|e| e.to_string())?;
            }
            Ok("created")
        }
        Some(live) => {
            let merged = compare::merge_apply(&live, desired);
            if compare::normalize(&merged) == compare::normalize(&live) {
                return Ok("unchanged");
            }
            if !dry_run {
                store
                    .replace(cluster, res, merged, false)
                    .map_err(|e| e.to_string())?;
            }
            Ok("configured")
        }
    }
}
