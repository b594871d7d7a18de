//! Argo CD's application controller: one task that keeps every Application's status true
//! to Git and the clusters, auto-syncs where the policy says, and starts `.operation`s
//! (run by `sync.rs`). It reconciles only apps whose inputs changed (Git moved on a
//! webhook or poll, a live object with the app's label changed, the Application's spec or
//! operation changed), so 10,000 quiet apps cost nothing between polls.

use super::compare::{self, Comparison};
use super::{cluster_of, sync};
use crate::estate::render::INSTANCE_LABEL;
use crate::store::{
    APPLICATIONS, CONFIGMAPS, DEPLOYMENTS, EventType, PODS, REPLICASETS, ResourceType, SECRETS,
    SERVICES, WatchEvent,
};
use crate::{ARGOCD_NAMESPACE, IN_CLUSTER, World, events};
use chrono::{SecondsFormat, Utc};
use serde_json::{Value, json};
use shipdeck_wire::Application;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::mpsc;

pub(super) const COMPONENT: &str = "argocd-application-controller";
/// How often Argo CD polls Git without a webhook (simulated seconds).
const POLL: Duration = Duration::from_secs(180);
const INDEXED: &[ResourceType] = &[
    DEPLOYMENTS,
    SERVICES,
    CONFIGMAPS,
    SECRETS,
    PODS,
    REPLICASETS,
    APPLICATIONS,
];

/// A live object the app's tracking label points at.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct ObjRef {
    pub cluster: String,
    pub res: ResourceType,
    pub namespace: String,
    pub name: String,
}

/// Objects by the app that labels them, kept from the store's watch.
#[derive(Default)]
pub(super) struct Index {
    by_app: HashMap<String, HashSet<ObjRef>>,
    owner: HashMap<ObjRef, String>,
}

impl Index {
    fn set(&mut self, r: ObjRef, app: Option<String>) {
        if let Some(old) = self.owner.remove(&r)
            && let Some(s) = self.by_app.get_mut(&old)
        {
            s.remove(&r);
        }
        if let Some(a) = app {
            self.by_app.entry(a.clone()).or_default().insert(r.clone());
            self.owner.insert(r, a);
        }
    }

    pub(super) fn of(&self, app: &str) -> Vec<ObjRef> {
        self.by_app
            .get(app)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}

pub(super) struct Ctx {
    pub world: Arc<World>,
    pub index: Mutex<Index>,
    pub running: Mutex<HashSet<String>>,
    pub done: mpsc::UnboundedSender<String>,
}

impl Ctx {
    pub(super) fn index(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn running(&self) -> MutexGuard<'_, HashSet<String>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn instance_of(obj: &Value) -> Option<String> {
    obj["metadata"]["labels"][INSTANCE_LABEL]
        .as_str()
        .map(str::to_string)
}

fn obj_ref(cluster: &str, res: ResourceType, obj: &Value) -> ObjRef {
    ObjRef {
        cluster: cluster.to_string(),
        res,
        namespace: compare::meta(obj, "namespace").to_string(),
        name: compare::meta(obj, "name").to_string(),
    }
}

pub fn spawn(world: Arc<World>) -> Vec<tokio::task::JoinHandle<()>> {
    vec![tokio::spawn(run(world))]
}

fn all_apps(world: &World) -> BTreeSet<String> {
    world
        .store
        .list(IN_CLUSTER, APPLICATIONS, Some(ARGOCD_NAMESPACE))
        .0
        .iter()
        .map(|a| compare::meta(a, "name").to_string())
        .collect()
}

async fn run(world: Arc<World>) {
    // Subscribe before reading so nothing falls between the index scan and the stream.
    let mut rx = match world.store.watch(IN_CLUSTER, APPLICATIONS, 0) {
        Ok((_, rx)) => rx,
        Err(e) => {
            tracing::warn!("argo controller cannot watch the store: {e}");
            return;
        }
    };
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let ctx = Arc::new(Ctx {
        world: world.clone(),
        index: Mutex::new(Index::default()),
        running: Mutex::new(HashSet::new()),
        done: done_tx,
    });
    {
        let mut index = ctx.index();
        for cluster in &world.estate.clusters {
            for res in INDEXED {
                for obj in world.store.list(cluster, *res, None).0 {
                    if let Some(app) = instance_of(&obj) {
                        index.set(obj_ref(cluster, *res, &obj), Some(app));
                    }
                }
            }
        }
    }
    let mut generations: HashMap<String, i64> = HashMap::new();
    let mut dirty = all_apps(&world);
    let mut heads: HashMap<String, String> = HashMap::new();
    let mut poll = world.clock.interval(POLL);
    poll.tick().await;
    loop {
        let notified = world.refresh.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let batch = std::mem::take(&mut dirty);
        for (i, name) in batch.iter().enumerate() {
            reconcile(&ctx, name, &mut heads, &mut generations);
            if i % 200 == 199 {
                tokio::task::yield_now().await;
            }
        }
        tokio::select! {
            _ = &mut notified => {
                heads.clear();
                dirty = all_apps(&world);
            }
            _ = poll.tick() => {
                heads.clear();
                dirty = all_apps(&world);
            }
            Some(name) = done_rx.recv() => {
                dirty.insert(name);
            }
            ev = rx.recv() => match ev {
                Ok(ev) => on_event(&ctx, &ev, &generations, &mut dirty),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                    dirty = all_apps(&world);
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            },
        }
        loop {
            match rx.try_recv() {
                Ok(ev) => on_event(&ctx, &ev, &generations, &mut dirty),
                Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {
                    dirty = all_apps(&world);
                }
                Err(_) => break,
            }
        }
        while let Ok(name) = done_rx.try_recv() {
            dirty.insert(name);
        }
    }
}

fn on_event(
    ctx: &Ctx,
    ev: &WatchEvent,
    generations: &HashMap<String, i64>,
    dirty: &mut BTreeSet<String>,
) {
    if !INDEXED.contains(&ev.resource) {
        return;
    }
    let obj = &ev.object;
    let app = instance_of(obj);
    let r = obj_ref(&ev.cluster, ev.resource, obj);
    {
        let mut index = ctx.index();
        let previous = index.owner.get(&r).cloned();
        if ev.event_type == EventType::Deleted {
            index.set(r, None);
        } else {
            index.set(r, app.clone());
        }
        if let Some(p) = previous {
            dirty.insert(p);
        }
    }
    if let Some(a) = &app {
        dirty.insert(a.clone());
    }
    if ev.resource == APPLICATIONS
        && ev.cluster == IN_CLUSTER
        && compare::meta(obj, "namespace") == ARGOCD_NAMESPACE
    {
        let name = compare::meta(obj, "name").to_string();
        let generation = obj["metadata"]["generation"].as_i64().unwrap_or(0);
        let changed = generations.get(&name) != Some(&generation);
        if changed
            || obj.get("operation").is_some_and(|o| !o.is_null())
            || ev.event_type != EventType::Modified
        {
            dirty.insert(name);
        }
    }
}

/// What the controller computed for one app.
pub(super) struct Computed {
    pub sha: String,
    pub cmp: Comparison,
}

/// Compare one app's desired state at its target with what is live.
pub(super) fn compute(
    ctx: &Ctx,
    app: &Application,
    heads: &mut HashMap<String, String>,
) -> Result<Computed, String> {
    let world = &ctx.world;
    let cluster = cluster_of(world, app).ok_or_else(|| {
        format!(
            "InvalidSpecError: cluster {} has not been configured",
            app.spec
                .destination
                .name
                .clone()
                .or(app.spec.destination.server.clone())
                .unwrap_or_default()
        )
    })?;
    let source = app
        .spec
        .primary_source()
        .ok_or_else(|| "InvalidSpecError: application has no source".to_string())?;
    let rev = source
        .target_revision
        .clone()
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "HEAD".into());
    let sha = match heads.get(&rev) {
        Some(s) => s.clone(),
        None => {
            let s = world
                .repo
                .resolve(&rev)
                .map_err(|e| format!("ComparisonError: {e}"))?;
            heads.insert(rev.clone(), s.clone());
            s
        }
    };
    let desired = super::desired_at_sha(world, app, &sha, source.path.as_deref())
        .map_err(|e| format!("ComparisonError: {e}"))?;
    Ok(Computed {
        cmp: compare_live(ctx, &app.metadata.name, &cluster, &desired),
        sha,
    })
}

/// Compare desired objects with the live ones in `cluster`.
pub(super) fn compare_live(ctx: &Ctx, app: &str, cluster: &str, desired: &[Value]) -> Comparison {
    let store = &ctx.world.store;
    let mut live = Vec::with_capacity(desired.len());
    let mut wanted: HashSet<(ResourceType, String, String)> = HashSet::new();
    for d in desired {
        match compare::resource_type_of(d) {
            Some(res) => {
                let ns = compare::meta(d, "namespace");
                let name = compare::meta(d, "name");
                wanted.insert((res, ns.to_string(), name.to_string()));
                live.push(store.get(cluster, res, ns, name));
            }
            None => live.push(None),
        }
    }
    let refs = ctx.index().of(app);
    let mut extra = Vec::new();
    let mut pods = Vec::new();
    for r in refs {
        if r.cluster != cluster {
            continue;
        }
        let Some(obj) = store.get(&r.cluster, r.res, &r.namespace, &r.name) else {
            continue;
        };
        if r.res == PODS {
            pods.push(obj);
            continue;
        }
        if r.res == REPLICASETS
            || obj["metadata"]["ownerReferences"]
                .as_array()
                .is_some_and(|o| !o.is_empty())
            || wanted.contains(&(r.res, r.namespace.clone(), r.name.clone()))
        {
            continue;
        }
        extra.push(obj);
    }
    extra.sort_by(|a, b| compare::meta(a, "name").cmp(compare::meta(b, "name")));
    let pods_of = |_: &Value| pods.clone();
    compare::compare(desired, &live, &extra, &pods_of)
}

/// The status fields a comparison sets.
pub(super) fn write_comparison(
    status: &mut Value,
    app: &Application,
    c: &Result<Computed, String>,
) {
    let compared = json!({
        "source": app.spec.primary_source(),
        "destination": app.spec.destination,
    });
    match c {
        Ok(c) => {
            status["sync"] = json!({
                "status": if c.cmp.synced { "Synced" } else { "OutOfSync" },
                "revision": c.sha,
                "comparedTo": compared,
            });
            let mut health = json!({"status": c.cmp.health});
            if let Some(m) = &c.cmp.health_message {
                health["message"] = json!(m);
            }
            status["health"] = health;
            status["resources"] = json!(c.cmp.resources);
            status["summary"] = json!({"images": c.cmp.images});
            if let Some(o) = status.as_object_mut() {
                o.remove("conditions");
            }
        }
        Err(e) => {
            let mut sync = json!({"status": "Unknown", "comparedTo": compared});
            if let Some(r) = status["sync"].get("revision") {
                sync["revision"] = r.clone();
            }
            status["sync"] = sync;
            let kind = e.split(':').next().unwrap_or("ComparisonError");
            status["conditions"] =
                json!([{"type": kind, "message": e, "lastTransitionTime": now()}]);
        }
    }
}

fn reconcile(
    ctx: &Arc<Ctx>,
    name: &str,
    heads: &mut HashMap<String, String>,
    generations: &mut HashMap<String, i64>,
) {
    let world = &ctx.world;
    let Some(obj) = world
        .store
        .get(IN_CLUSTER, APPLICATIONS, ARGOCD_NAMESPACE, name)
    else {
        generations.remove(name);
        return;
    };
    generations.insert(
        name.to_string(),
        obj["metadata"]["generation"].as_i64().unwrap_or(0),
    );
    let app: Application = match serde_json::from_value((*obj).clone()) {
        Ok(a) => a,
        Err(e) => {
            tracing::debug!("application {name} unreadable: {e}");
            return;
        }
    };
    let has_op = obj.get("operation").is_some_and(|o| !o.is_null());
    if has_op {
        start_operation(ctx, name);
    }
    let computed = compute(ctx, &app, heads);
    let mut before = (String::new(), String::new());
    let result = world.store.mutate(
        IN_CLUSTER,
        APPLICATIONS,
        ARGOCD_NAMESPACE,
        name,
        true,
        |o| {
            let old = o["status"].clone();
            before = (
                old["sync"]["status"].as_str().unwrap_or("").to_string(),
                old["health"]["status"].as_str().unwrap_or("").to_string(),
            );
            let mut status = if old.is_object() {
                old.clone()
            } else {
                json!({})
            };
            write_comparison(&mut status, &app, &computed);
            if status == old {
                return Ok(false);
            }
            status["reconciledAt"] = json!(now());
            o["status"] = status;
            Ok(true)
        },
    );
    let Ok(updated) = result else {
        return;
    };
    let after = (
        updated["status"]["sync"]["status"]
            .as_str()
            .unwrap_or("")
            .to_string(),
        updated["status"]["health"]["status"]
            .as_str()
            .unwrap_or("")
            .to_string(),
    );
    if !before.0.is_empty() && before.0 != after.0 {
        events::emit(
            &world.store,
            IN_CLUSTER,
            &updated,
            "Normal",
            "ResourceUpdated",
            &format!("Updated sync status: {} -> {}", before.0, after.0),
            COMPONENT,
        );
    }
    if !before.1.is_empty() && before.1 != after.1 {
        events::emit(
            &world.store,
            IN_CLUSTER,
            &updated,
            "Normal",
            "ResourceUpdated",
            &format!("Updated health status: {} -> {}", before.1, after.1),
            COMPONENT,
        );
    }
    if let Ok(c) = &computed
        && !has_op
        && !c.cmp.synced
        && app.auto_sync()
    {
        auto_sync(ctx, &app, &updated, &c.sha);
    }
}

/// Argo CD's auto-sync rule: sync a new revision once; re-sync the same revision only with
/// self-heal and only after a successful attempt (a failed one is not retried forever).
fn auto_sync(ctx: &Arc<Ctx>, app: &Application, obj: &Value, sha: &str) {
    let name = app.metadata.name.as_str();
    if ctx.running().contains(name) {
        return;
    }
    // "Sync prevented by sync window": no automated operation while a window forbids it.
    if let Some(project) = ctx.world.store.get(
        IN_CLUSTER,
        crate::store::APPPROJECTS,
        ARGOCD_NAMESPACE,
        &app.spec.project,
    ) && let Some(cluster) = cluster_of(&ctx.world, app)
        && super::windows::can_sync(
            &project["spec"]["syncWindows"],
            app,
            &cluster,
            false,
            Utc::now(),
        )
        .is_err()
    {
        tracing::debug!("{name}: sync prevented by sync window");
        return;
    }
    let state = &obj["status"]["operationState"];
    let last = state["syncResult"]["revision"].as_str().unwrap_or("");
    let phase = state["phase"].as_str().unwrap_or("");
    let self_heal = app
        .spec
        .sync_policy
        .as_ref()
        .and_then(|p| p.automated.as_ref())
        .is_some_and(|a| a.self_heal);
    let prune = app
        .spec
        .sync_policy
        .as_ref()
        .and_then(|p| p.automated.as_ref())
        .is_some_and(|a| a.prune);
    if last == sha && !(self_heal && phase == "Succeeded") {
        return;
    }
    if last == sha {
        // Self-heal waits a moment after the last sync (selfHealTimeout), then retries.
        let recent = state["finishedAt"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .is_some_and(|t| (Utc::now() - t.with_timezone(&Utc)).num_seconds() < 1);
        if recent {
            let done = ctx.done.clone();
            let name = name.to_string();
            let wait = ctx
                .world
                .clock
                .wall(Duration::from_secs(5))
                .max(Duration::from_millis(1100));
            tokio::spawn(async move {
                tokio::time::sleep(wait).await;
                let _ = done.send(name);
            });
            return;
        }
    }
    let mut sync_options = app
        .spec
        .sync_policy
        .as_ref()
        .map(|p| p.sync_options.clone())
        .unwrap_or_default();
    sync_options.dedup();
    let operation = json!({
        "initiatedBy": {"automated": true},
        "sync": {"revision": sha, "prune": prune, "syncOptions": sync_options},
        "retry": {"limit": 5},
    });
    let set = ctx.world.store.mutate(
        IN_CLUSTER,
        APPLICATIONS,
        ARGOCD_NAMESPACE,
        name,
        false,
        |o| {
            if o.get("operation").is_some_and(|x| !x.is_null()) {
                return Ok(false);
            }
            o["operation"] = operation.clone();
            Ok(true)
        },
    );
    if set.is_ok() {
        start_operation(ctx, name);
    }
}

fn start_operation(ctx: &Arc<Ctx>, name: &str) {
    if !ctx.running().insert(name.to_string()) {
        return;
    }
    tokio::spawn(sync::run(ctx.clone(), name.to_string()));
}
