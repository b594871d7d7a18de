//! The sandbox's Deployment controller: what kube-controller-manager's Deployment and
//! ReplicaSet controllers and the kubelets do for a Deployment, in one task. It watches the
//! store for Deployments in every cluster, keeps each one's ReplicaSets and simulated pods
//! in memory, and writes them back as the real controllers would, so `kubectl rollout
//! status`, Argo CD's health and the console see believable rollouts, including failures on
//! demand (`world.image_faults`, the `sandbox.shipdeck.io/fail` pod-template annotation).
//!
//! It only does work for Deployments that changed or have a pod stage due, so a steady estate
//! of ten thousand apps costs nothing. It must never write an object it does not own (only
//! ReplicaSets, pods, Events, and Deployment status/revision annotation).

mod pods;
mod reconcile;
mod rollout;

use crate::store::{DEPLOYMENTS, EVENTS, EventType, PODS, REPLICASETS, WatchEvent};
use crate::{IN_CLUSTER, World};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use reconcile::{DeployState, Key, Outcome};
use serde_json::{Value, json};
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::sync::Arc;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::time::Instant;

pub use reconcile::FAIL_ANNOTATION;

/// Events the controller keeps per cluster before it deletes the oldest.
const EVENT_LIMIT: usize = 4000;
/// Deployments reconciled between yields to the runtime.
const BATCH: usize = 256;

pub fn spawn(world: Arc<World>) -> Vec<tokio::task::JoinHandle<()>> {
    vec![tokio::spawn(
        async move { Controller::new(world).run().await },
    )]
}

struct Controller {
    world: Arc<World>,
    deployments: HashMap<Key, DeployState>,
    /// Pod and ReplicaSet -> owning Deployment, for objects this controller wrote.
    owners: HashMap<(bool, Key), Key>,
    timers: BinaryHeap<Reverse<(Instant, Key)>>,
    pending: BTreeSet<Key>,
    events_since_prune: usize,
}

impl Controller {
    fn new(world: Arc<World>) -> Controller {
        Controller {
            world,
            deployments: HashMap::new(),
            owners: HashMap::new(),
            timers: BinaryHeap::new(),
            pending: BTreeSet::new(),
            events_since_prune: 0,
        }
    }

    async fn run(mut self) {
        // Subscribe before listing, so nothing falls between the list and the stream.
        let mut rx = match self.world.store.watch(IN_CLUSTER, DEPLOYMENTS, 0) {
            Ok((_, rx)) => rx,
            Err(e) => {
                tracing::warn!("deployment controller cannot watch the store: {e}");
                return;
            }
        };
        self.start_up().await;
        loop {
            let next_timer = self.timers.peek().map(|Reverse((t, _))| *t);
            tokio::select! {
                ev = rx.recv() => match ev {
                    Ok(ev) => {
                        self.on_event(ev);
                        loop {
                            match rx.try_recv() {
                                Ok(ev) => self.on_event(ev),
                                Err(TryRecvError::Lagged(_)) => self.resync(),
                                Err(_) => break,
                            }
                        }
                    }
                    Err(RecvError::Lagged(_)) => self.resync(),
                    Err(RecvError::Closed) => return,
                },
                _ = sleep_until(next_timer) => {}
            }
            self.take_due_timers();
            self.run_pending().await;
        }
    }

    /// Deployments already in the store when the sandbox starts come up running, without
    /// a rollout: the estate was running before the sandbox looked at it. ReplicaSets and
    /// pods already in the store are adopted as they are.
    async fn start_up(&mut self) {
        let world = self.world.clone();
        let now = Instant::now();
        for cluster in world.store.clusters() {
            let (sets, _) = world.store.list(&cluster, REPLICASETS, None);
            let (pods, _) = world.store.list(&cluster, PODS, None);
            let mut sets_by_owner: HashMap<String, Vec<Arc<Value>>> = HashMap::new();
            for rs in sets {
                if let Some(uid) = controller_uid(&rs) {
                    sets_by_owner.entry(uid).or_default().push(rs);
                }
            }
            let mut pods_by_owner: HashMap<String, Vec<Arc<Value>>> = HashMap::new();
            for p in pods {
                if let Some(uid) = controller_uid(&p) {
                    pods_by_owner.entry(uid).or_default().push(p);
                }
            }
            let (deployments, _) = world.store.list(&cluster, DEPLOYMENTS, None);
            for (i, dep) in deployments.iter().enumerate() {
                let key = Key::of(&cluster, dep);
                let uid = dep["metadata"]["uid"].as_str().unwrap_or("").to_string();
                let mut state = match sets_by_owner.get(&uid) {
                    Some(sets) => reconcile::adopt(
                        &world,
                        uid.clone(),
                        sets,
                        &|rs_uid| pods_by_owner.get(rs_uid).cloned().unwrap_or_default(),
                        now,
                    ),
                    None => DeployState::new(uid, now),
                };
                for rs in &state.sets {
                    self.owners
                        .insert((false, key_sibling(&key, &rs.name)), key.clone());
                    for p in &rs.pods {
                        self.owners
                            .insert((true, key_sibling(&key, &p.name)), key.clone());
                    }
                }
                let out = reconcile::reconcile(&world, &key, dep, &mut state, now, true);
                self.finish(key, state, out);
                if i % BATCH == BATCH - 1 {
                    tokio::task::yield_now().await;
                }
            }
        }
    }

    fn on_event(&mut self, ev: WatchEvent) {
        let key = Key::of(&ev.cluster, &ev.object);
        if ev.resource == DEPLOYMENTS {
            let uid = ev.object["metadata"]["uid"].as_str().unwrap_or("");
            let generation = ev.object["metadata"]["generation"].as_i64().unwrap_or(0);
            match ev.event_type {
                EventType::Deleted => {
                    if self.deployments.get(&key).is_some_and(|s| s.uid == uid) {
                        self.pending.insert(key);
                    }
                }
                _ => {
                    let known = self
                        .deployments
                        .get(&key)
                        .is_some_and(|s| s.uid == uid && s.generation == generation);
                    if !known {
                        self.pending.insert(key);
                    }
                }
            }
        } else if (ev.resource == PODS || ev.resource == REPLICASETS)
            && ev.event_type == EventType::Deleted
        {
            // Someone else deleted a pod or ReplicaSet of ours (`kubectl delete pod`): the
            // ReplicaSet controller replaces it.
            let is_pod = ev.resource == PODS;
            if let Some(owner) = self.owners.remove(&(is_pod, key.clone())) {
                if let Some(state) = self.deployments.get_mut(&owner) {
                    if is_pod {
                        for rs in &mut state.sets {
                            rs.pods.retain(|p| p.name != key.name);
                        }
                    } else if let Some(i) = state.sets.iter().position(|r| r.name == key.name) {
                        let rs = state.sets.remove(i);
                        for p in rs.pods {
                            let _ = self.world.store.delete(
                                &key.cluster,
                                PODS,
                                &key.namespace,
                                &p.name,
                            );
                            self.owners.remove(&(true, key_sibling(&key, &p.name)));
                        }
                    }
                }
                self.pending.insert(owner);
            }
        }
    }

    /// After missing watch events: compare every Deployment with what we know.
    fn resync(&mut self) {
        let store = &self.world.store;
        let mut seen = BTreeSet::new();
        for cluster in store.clusters() {
            for dep in store.list(&cluster, DEPLOYMENTS, None).0 {
                let key = Key::of(&cluster, &dep);
                let uid = dep["metadata"]["uid"].as_str().unwrap_or("");
                let generation = dep["metadata"]["generation"].as_i64().unwrap_or(0);
                if self
                    .deployments
                    .get(&key)
                    .is_none_or(|s| s.uid != uid || s.generation != generation)
                {
                    self.pending.insert(key.clone());
                }
                seen.insert(key);
            }
        }
        for (key, state) in &mut self.deployments {
            if !seen.contains(key) {
                self.pending.insert(key.clone());
                continue;
            }
            let before: usize = state.sets.iter().map(|r| r.pods.len()).sum();
            for rs in &mut state.sets {
                rs.pods.retain(|p| {
                    p.uid.is_none()
                        || store
                            .get(&key.cluster, PODS, &key.namespace, &p.name)
                            .is_some()
                });
            }
            if state.sets.iter().map(|r| r.pods.len()).sum::<usize>() != before {
                self.pending.insert(key.clone());
            }
        }
    }

    fn take_due_timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((t, _))) = self.timers.peek() {
            if *t > now {
                break;
            }
            if let Some(Reverse((t, key))) = self.timers.pop()
                && self.deployments.get(&key).is_some_and(|s| s.due == Some(t))
            {
                self.pending.insert(key);
            }
        }
    }

    async fn run_pending(&mut self) {
        let world = self.world.clone();
        let keys: Vec<Key> = std::mem::take(&mut self.pending).into_iter().collect();
        for (i, key) in keys.into_iter().enumerate() {
            let now = Instant::now();
            let dep = world
                .store
                .get(&key.cluster, DEPLOYMENTS, &key.namespace, &key.name);
            let mut state = self.deployments.remove(&key);
            let uid = dep
                .as_ref()
                .and_then(|d| d["metadata"]["uid"].as_str())
                .unwrap_or("")
                .to_string();
            if let Some(old) = state.take_if(|s| dep.is_none() || s.uid != uid) {
                let mut out = Outcome::default();
                reconcile::collect_garbage(&world, &key, old, &mut out);
                self.record(&key, &out);
            }
            let Some(dep) = dep else { continue };
            let mut state = state.unwrap_or_else(|| DeployState::new(uid, now));
            let out = reconcile::reconcile(&world, &key, &dep, &mut state, now, false);
            self.finish(key, state, out);
            if i % BATCH == BATCH - 1 {
                tokio::task::yield_now().await;
            }
        }
        if self.events_since_prune > EVENT_LIMIT / 4 {
            self.events_since_prune = 0;
            prune_events(&world);
        }
    }

    fn record(&mut self, key: &Key, out: &Outcome) {
        for k in &out.pods_removed {
            self.owners.remove(&(true, k.clone()));
        }
        for k in &out.sets_removed {
            self.owners.remove(&(false, k.clone()));
        }
        for k in &out.pods_added {
            self.owners.insert((true, k.clone()), key.clone());
        }
        for k in &out.sets_added {
            self.owners.insert((false, k.clone()), key.clone());
        }
        self.events_since_prune += out.events;
    }

    fn finish(&mut self, key: Key, state: DeployState, out: Outcome) {
        self.record(&key, &out);
        if let Some(t) = state.due {
            self.timers.push(Reverse((t, key.clone())));
        }
        self.deployments.insert(key, state);
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

fn key_sibling(key: &Key, name: &str) -> Key {
    Key {
        cluster: key.cluster.clone(),
        namespace: key.namespace.clone(),
        name: name.to_string(),
    }
}

fn controller_uid(obj: &Value) -> Option<String> {
    obj["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|r| r["controller"].as_bool().unwrap_or(false))
        .and_then(|r| r["uid"].as_str())
        .map(str::to_string)
}

/// Keep the newest `EVENT_LIMIT` Events per cluster, as the API server's event TTL would.
fn prune_events(world: &World) {
    for cluster in world.store.clusters() {
        let (events, _) = world.store.list(&cluster, EVENTS, None);
        if events.len() <= EVENT_LIMIT {
            continue;
        }
        let mut by_age: Vec<(u64, &Arc<Value>)> = events
            .iter()
            .map(|e| {
                let rv = e["metadata"]["resourceVersion"]
                    .as_str()
                    .and_then(|r| r.parse().ok())
                    .unwrap_or(0);
                (rv, e)
            })
            .collect();
        by_age.sort_by_key(|(rv, _)| *rv);
        for (_, e) in by_age.iter().take(events.len() - EVENT_LIMIT) {
            let meta = &e["metadata"];
            let _ = world.store.delete(
                &cluster,
                EVENTS,
                meta["namespace"].as_str().unwrap_or(""),
                meta["name"].as_str().unwrap_or(""),
            );
        }
    }
}

/// `/_sandbox/` endpoints of the Deployment controller: `POST /_sandbox/image-fault`
/// `{"image": "...", "mode": "ImagePullBackOff"|"CrashLoopBackOff"|null}` makes new pods of
/// that image fail (or stop failing); `GET` lists the faults in force.
pub fn admin_router(world: Arc<World>) -> axum::Router {
    axum::Router::new()
        .route(
            "/_sandbox/image-fault",
            axum::routing::post(set_image_fault).get(list_image_faults),
        )
        .with_state(world)
}

async fn list_image_faults(State(world): State<Arc<World>>) -> Json<Value> {
    let faults = world.image_faults.lock().unwrap_or_else(|p| p.into_inner());
    Json(json!({"faults": *faults}))
}

async fn set_image_fault(
    State(world): State<Arc<World>>,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let bad = |msg: &str| (StatusCode::BAD_REQUEST, Json(json!({"error": msg}))).into_response();
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad(
            "body must be JSON: {\"image\": \"...\", \"mode\": \"ImagePullBackOff\"|\"CrashLoopBackOff\"|null}",
        );
    };
    let Some(image) = body["image"].as_str().filter(|i| !i.is_empty()) else {
        return bad("\"image\" is required");
    };
    let mode = match &body["mode"] {
        Value::Null => None,
        Value::String(m) if pods::Fault::parse(m).is_some() => Some(m.clone()),
        _ => return bad("\"mode\" must be \"ImagePullBackOff\", \"CrashLoopBackOff\" or null"),
    };
    let mut faults = world.image_faults.lock().unwrap_or_else(|p| p.into_inner());
    match mode {
        Some(m) => faults.insert(image.to_string(), m),
        None => faults.remove(image),
    };
    (StatusCode::OK, Json(json!({"faults": *faults}))).into_response()
}

/// A few log lines of a pod's main container, as an operator reading `kubectl logs` would
/// see them; derived from the pod's state, so they cost no memory. Empty when the pod does
/// not exist or its container never started.
pub fn pod_log_lines(world: &World, cluster: &str, namespace: &str, pod: &str) -> Vec<String> {
    let Some(obj) = world.store.get(cluster, PODS, namespace, pod) else {
        return Vec::new();
    };
    let cs = &obj["status"]["containerStatuses"][0];
    let image = cs["image"]
        .as_str()
        .or_else(|| obj["spec"]["containers"][0]["image"].as_str())
        .unwrap_or("app");
    if cs["state"]["running"].is_null() && cs["lastState"]["terminated"].is_null() {
        return Vec::new();
    }
    let (repo, tag) = match image.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, t),
        _ => (image, "latest"),
    };
    let service = repo.rsplit('/').next().unwrap_or(repo);
    let start = cs["state"]["running"]["startedAt"]
        .as_str()
        .or_else(|| cs["lastState"]["terminated"]["startedAt"].as_str())
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&chrono::Utc))
        .unwrap_or_else(chrono::Utc::now);
    let at = |s: i64| {
        (start + chrono::Duration::milliseconds(s * 731))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let mut lines = vec![
        format!("{} INFO  starting {service} {tag} (pid 1)", at(0)),
        format!(
            "{} INFO  loaded configuration from /etc/{service}/config.yaml",
            at(1)
        ),
    ];
    if !cs["state"]["waiting"].is_null() || cs["state"]["running"].is_null() {
        lines.push(format!(
            "{} ERROR cannot connect to postgres://db:5432/{service}: connection refused",
            at(2)
        ));
        lines.push(format!(
            "{} FATAL {service} exiting: dependency check failed (exit code 1)",
            at(3)
        ));
        return lines;
    }
    lines.push(format!(
        "{} INFO  connected to upstream dependencies",
        at(2)
    ));
    lines.push(format!("{} INFO  listening on 0.0.0.0:8080", at(3)));
    if cs["ready"].as_bool().unwrap_or(false) {
        lines.push(format!("{} INFO  GET /healthz 200 0.4ms", at(5)));
        lines.push(format!("{} INFO  GET /readyz 200 0.3ms", at(6)));
    }
    lines
}
