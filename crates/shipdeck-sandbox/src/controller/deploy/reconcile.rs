//! One Deployment's reconcile pass, as Kubernetes' Deployment and ReplicaSet controllers
//! would do it together: advance its pods, find or make the ReplicaSet of the current pod
//! template, size old and new sets by the rollout strategy, create and terminate pods, and
//! write ReplicaSets, pods and the Deployment status. The controller loop (`deploy.rs`)
//! decides when a pass runs; this file never waits.

use super::pods::{self, Fault, PodEvent, PodSim};
use super::rollout::{self, RsCounts};
use crate::World;
use crate::store::{DEPLOYMENTS, PODS, REPLICASETS, StoreError};
use serde_json::{Map, Value, json};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Pod-template annotation that makes every pod of the template fail on demand.
pub const FAIL_ANNOTATION: &str = "sandbox.shipdeck.io/fail";
pub const REVISION_ANNOTATION: &str = "deployment.kubernetes.io/revision";

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub cluster: String,
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn of(cluster: &str, obj: &Value) -> Key {
        Key {
            cluster: cluster.to_string(),
            namespace: obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            name: obj["metadata"]["name"].as_str().unwrap_or("").to_string(),
        }
    }
    fn sibling(&self, name: &str) -> Key {
        Key {
            cluster: self.cluster.clone(),
            namespace: self.namespace.clone(),
            name: name.to_string(),
        }
    }
}

pub struct RsState {
    pub name: String,
    pub uid: Option<String>,
    pub hash: String,
    pub revision: i64,
    /// The pod template with the pod-template-hash label.
    pub template: Arc<Value>,
    pub images: Vec<(String, String)>,
    pub annotation_fault: Option<Fault>,
    pub desired: i64,
    pub pods: Vec<PodSim>,
    pub pod_seq: u64,
}

#[derive(Debug, Clone, PartialEq)]
struct Condition {
    status: &'static str,
    reason: String,
    message: String,
    update_ts: String,
    transition_ts: String,
}

impl Condition {
    fn to_json(&self, kind: &str) -> Value {
        json!({"type": kind, "status": self.status, "reason": self.reason,
            "message": self.message, "lastUpdateTime": self.update_ts,
            "lastTransitionTime": self.transition_ts})
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    replicas: i64,
    updated: i64,
    ready: i64,
    available: i64,
}

/// What the controller remembers about one Deployment between passes.
pub struct DeployState {
    pub uid: String,
    /// The generation the last pass acted on.
    pub generation: i64,
    pub sets: Vec<RsState>,
    progressing: Option<Condition>,
    available: Option<Condition>,
    progress_at: Instant,
    last: Counts,
    /// When the next pass is due (None: nothing pending).
    pub due: Option<Instant>,
}

impl DeployState {
    pub fn new(uid: String, now: Instant) -> DeployState {
        DeployState {
            uid,
            generation: 0,
            sets: Vec::new(),
            progressing: None,
            available: None,
            progress_at: now,
            last: Counts::default(),
            due: None,
        }
    }
}

/// Side effects a pass asks the loop to record in its indexes.
#[derive(Default)]
pub struct Outcome {
    pub pods_added: Vec<Key>,
    pub pods_removed: Vec<Key>,
    pub sets_added: Vec<Key>,
    pub sets_removed: Vec<Key>,
    pub events: usize,
}

struct Spec {
    replicas: i64,
    template: Value,
    recreate: bool,
    rolling: Option<Value>,
    min_ready: Duration,
    deadline: Duration,
    history_limit: usize,
    paused: bool,
    selector: Map<String, Value>,
}

impl Spec {
    fn parse(dep: &Value) -> Spec {
        let spec = &dep["spec"];
        let mut template = spec["template"].clone();
        if !template.is_object() {
            template = json!({});
        }
        Spec {
            replicas: spec["replicas"].as_i64().unwrap_or(1).max(0),
            template,
            recreate: spec["strategy"]["type"].as_str() == Some("Recreate"),
            rolling: spec["strategy"].get("rollingUpdate").cloned(),
            min_ready: Duration::from_secs(spec["minReadySeconds"].as_u64().unwrap_or(0)),
            deadline: Duration::from_secs(spec["progressDeadlineSeconds"].as_u64().unwrap_or(600)),
            history_limit: spec["revisionHistoryLimit"].as_u64().unwrap_or(10) as usize,
            paused: spec["paused"].as_bool().unwrap_or(false),
            selector: spec["selector"]["matchLabels"]
                .as_object()
                .cloned()
                .unwrap_or_default(),
        }
    }
}

fn now_ts() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The fault that new pods of a template suffer now: the template's annotation first,
/// then `world.image_faults` for any of its images.
pub fn fault_of(
    world: &World,
    annotation: Option<Fault>,
    images: &[(String, String)],
) -> Option<Fault> {
    if annotation.is_some() {
        return annotation;
    }
    let faults = world.image_faults.lock().unwrap_or_else(|p| p.into_inner());
    if faults.is_empty() {
        return None;
    }
    images
        .iter()
        .find_map(|(_, img)| faults.get(img).and_then(|m| Fault::parse(m)))
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// Rebuild the state of a Deployment whose ReplicaSets and pods already exist in the store
/// (e.g. seeded by the estate): running pods are taken as they are.
pub fn adopt(
    world: &World,
    uid: String,
    sets: &[Arc<Value>],
    pods_of: &dyn Fn(&str) -> Vec<Arc<Value>>,
    now: Instant,
) -> DeployState {
    let mut state = DeployState::new(uid, now);
    for rs in sets {
        let template = rs["spec"]["template"].clone();
        let images = pods::images(&template);
        let annotation_fault = template["metadata"]["annotations"][FAIL_ANNOTATION]
            .as_str()
            .and_then(Fault::parse);
        let rs_uid = rs["metadata"]["uid"].as_str().unwrap_or("").to_string();
        let fault = fault_of(world, annotation_fault, &images);
        let pods = pods_of(&rs_uid)
            .iter()
            .map(|p| {
                let name = p["metadata"]["name"].as_str().unwrap_or("").to_string();
                let mut sim = PodSim::settled(name, now, Duration::ZERO, fault, &world.clock);
                sim.uid = p["metadata"]["uid"].as_str().map(str::to_string);
                sim
            })
            .collect::<Vec<_>>();
        state.sets.push(RsState {
            name: rs["metadata"]["name"].as_str().unwrap_or("").to_string(),
            uid: Some(rs_uid),
            hash: rs["metadata"]["labels"]["pod-template-hash"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            revision: rs["metadata"]["annotations"][REVISION_ANNOTATION]
                .as_str()
                .and_then(|r| r.parse().ok())
                .unwrap_or(0),
            template: Arc::new(template),
            images,
            annotation_fault,
            desired: int(&rs["spec"]["replicas"]),
            pod_seq: pods.len() as u64,
            pods,
        });
    }
    state.sets.sort_by_key(|r| r.revision);
    state
}

/// Remove every ReplicaSet and pod of a Deployment from the store (garbage collection
/// after the Deployment is deleted).
pub fn collect_garbage(world: &World, key: &Key, state: DeployState, out: &mut Outcome) {
    for rs in state.sets {
        for p in rs.pods {
            let _ = world
                .store
                .delete(&key.cluster, PODS, &key.namespace, &p.name);
            out.pods_removed.push(key.sibling(&p.name));
        }
        let _ = world
            .store
            .delete(&key.cluster, REPLICASETS, &key.namespace, &rs.name);
        out.sets_removed.push(key.sibling(&rs.name));
    }
}

/// One pass over one Deployment. `settle` brings a Deployment seen at start-up straight to
/// its steady state (pods already running), as an estate that was running before.
pub fn reconcile(
    world: &World,
    key: &Key,
    dep: &Arc<Value>,
    state: &mut DeployState,
    now: Instant,
    settle: bool,
) -> Outcome {
    let mut out = Outcome::default();
    let clock = world.clock;
    let spec = Spec::parse(dep);
    let (surge, max_unavailable) =
        rollout::surge_and_unavailable(spec.rolling.as_ref(), spec.replicas);
    let mut pod_events: Vec<(String, Option<String>, PodEvent)> = Vec::new();
    let mut scale_events: Vec<String> = Vec::new();

    // Pods move on with time.
    for rs in &mut state.sets {
        let images = rs.images.clone();
        let ann = rs.annotation_fault;
        for pod in &mut rs.pods {
            for ev in pod.advance(now, &clock, &images, &|| fault_of(world, ann, &images)) {
                pod_events.push((pod.name.clone(), pod.uid.clone(), ev));
            }
        }
        rs.pods.retain(|p| {
            let gone = p.is_terminating() && p.next.is_some_and(|t| t <= now);
            if gone {
                let _ = world
                    .store
                    .delete(&key.cluster, PODS, &key.namespace, &p.name);
                out.pods_removed.push(key.sibling(&p.name));
            }
            !gone
        });
    }

    // The ReplicaSet of the current template.
    let hash = rollout::template_hash(&spec.template, 0);
    let max_revision = state.sets.iter().map(|r| r.revision).max().unwrap_or(0);
    let mut found_new = false;
    match state.sets.iter().position(|r| r.hash == hash) {
        Some(i) if state.sets[i].revision != max_revision && !spec.paused => {
            // Back to an older template (`kubectl rollout undo`): it becomes the newest.
            state.sets[i].revision = max_revision + 1;
            set_progressing(
                state,
                "True",
                "FoundNewReplicaSet",
                format!("Found new replica set \"{}\"", state.sets[i].name),
                now,
            );
            found_new = true;
        }
        Some(_) => {}
        None if spec.paused && !state.sets.is_empty() => {}
        None => {
            let name = format!("{}-{}", key.name, hash);
            let mut template = spec.template.clone();
            if let Some(meta) = ensure(&mut template, "metadata").as_object_mut() {
                let labels = meta.entry("labels").or_insert_with(|| json!({}));
                if let Some(l) = labels.as_object_mut() {
                    l.insert("pod-template-hash".into(), json!(hash));
                }
            }
            let images = pods::images(&template);
            let annotation_fault = template["metadata"]["annotations"][FAIL_ANNOTATION]
                .as_str()
                .and_then(Fault::parse);
            let mut rs = RsState {
                name: name.clone(),
                uid: None,
                hash: hash.clone(),
                revision: max_revision + 1,
                template: Arc::new(template),
                images,
                annotation_fault,
                desired: 0,
                pods: Vec::new(),
                pod_seq: 0,
            };
            if settle && state.sets.is_empty() {
                let fault = fault_of(world, annotation_fault, &rs.images);
                rs.desired = spec.replicas;
                for _ in 0..spec.replicas {
                    let pod_name = next_pod_name(&mut rs, key);
                    rs.pods.push(PodSim::settled(
                        pod_name,
                        now,
                        spec.min_ready,
                        fault,
                        &clock,
                    ));
                }
                state.last = Counts::default();
            } else {
                set_progressing(
                    state,
                    "True",
                    "NewReplicaSetCreated",
                    format!("Created new replica set \"{name}\""),
                    now,
                );
            }
            state.sets.push(rs);
            found_new = true;
        }
    }
    state.sets.sort_by_key(|r| r.revision);
    let _ = found_new;

    // Size the sets.
    if let Some((new, old)) = state.sets.split_last_mut() {
        let count = |rs: &RsState| RsCounts {
            desired: rs.desired,
            available: rs
                .pods
                .iter()
                .filter(|p| p.is_available(now, spec.min_ready, &clock))
                .count() as i64,
        };
        let before: Vec<i64> = old.iter().map(|r| r.desired).chain([new.desired]).collect();
        if spec.paused {
            if old.iter().all(|r| r.desired == 0) {
                new.desired = spec.replicas;
            }
        } else if spec.recreate {
            for rs in old.iter_mut() {
                rs.desired = 0;
            }
            let old_pods: usize = old.iter().map(|r| r.pods.len()).sum();
            if old_pods == 0 {
                new.desired = spec.replicas;
            }
        } else if old.iter().all(|r| r.desired == 0) {
            new.desired = spec.replicas;
        } else {
            let mut all: Vec<RsCounts> = old.iter().map(count).collect();
            all.push(count(new));
            new.desired = rollout::new_rs_replicas(spec.replicas, surge, count(new), &all);
            let old_counts: Vec<RsCounts> = old.iter().map(count).collect();
            let next =
                rollout::old_rs_replicas(spec.replicas, max_unavailable, count(new), &old_counts);
            for (rs, n) in old.iter_mut().zip(next) {
                rs.desired = n;
            }
        }
        let after = old
            .iter()
            .map(|r| (r.name.as_str(), r.desired))
            .chain([(new.name.as_str(), new.desired)]);
        for ((name, to), from) in after.zip(before) {
            if to != from && !settle {
                let dir = if to > from { "up" } else { "down" };
                scale_events.push(format!(
                    "Scaled {dir} replica set {name} from {from} to {to}"
                ));
            }
        }
    }

    // The ReplicaSet controller: make pods match each set's size.
    for rs in &mut state.sets {
        let active = rs.pods.iter().filter(|p| !p.is_terminating()).count() as i64;
        if active < rs.desired {
            for _ in active..rs.desired {
                let name = next_pod_name(rs, key);
                rs.pods.push(PodSim::new(name, now, &clock));
            }
        } else if active > rs.desired {
            let mut victims: Vec<usize> = (0..rs.pods.len())
                .filter(|&i| !rs.pods[i].is_terminating())
                .collect();
            // Least ready first, then the youngest.
            victims.sort_by_key(|&i| (rs.pods[i].deletion_rank(), std::cmp::Reverse(i)));
            for &i in victims.iter().take((active - rs.desired) as usize) {
                rs.pods[i].terminate(now, &clock);
            }
        }
    }

    // Old, empty sets beyond the revision history limit go.
    let empties: Vec<usize> = (0..state.sets.len().saturating_sub(1))
        .filter(|&i| state.sets[i].desired == 0 && state.sets[i].pods.is_empty())
        .collect();
    if empties.len() > spec.history_limit {
        let drop: Vec<String> = empties[..empties.len() - spec.history_limit]
            .iter()
            .map(|&i| state.sets[i].name.clone())
            .collect();
        state.sets.retain(|r| !drop.contains(&r.name));
        for name in drop {
            let _ = world
                .store
                .delete(&key.cluster, REPLICASETS, &key.namespace, &name);
            out.sets_removed.push(key.sibling(&name));
        }
    }

    write_sets(world, key, dep, state, &spec, surge, now, &mut out);

    let counts = status_counts(state, &spec, now, &clock);
    update_conditions(
        state,
        &spec,
        counts,
        max_unavailable,
        now,
        clock.wall(spec.deadline),
    );
    if settle && counts.available < spec.replicas && !spec.paused {
        // Failing since before the sandbox started: long past its deadline already.
        if let Some(name) = state.sets.last().map(|r| r.name.clone()) {
            set_progressing(
                state,
                "False",
                "ProgressDeadlineExceeded",
                format!("ReplicaSet \"{name}\" has timed out progressing."),
                now,
            );
        }
    }
    write_status(world, key, dep, state, counts);
    state.generation = int(&dep["metadata"]["generation"]);
    state.last = counts;

    // Events last, so pods have their uids.
    let ev_pods: Vec<(String, Option<String>, PodEvent)> = pod_events
        .into_iter()
        .map(|(name, uid, ev)| {
            let uid = uid.or_else(|| find_pod_uid(state, &name));
            (name, uid, ev)
        })
        .collect();
    for (name, uid, (kind, reason, message)) in ev_pods {
        let message = if reason == "Scheduled" {
            format!(
                "Successfully assigned {}/{name} to {}",
                key.namespace,
                pods::node_name(&key.cluster, &name)
            )
        } else {
            message
        };
        let involved = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": key.namespace, "uid": uid}});
        let component = if reason == "Scheduled" {
            "default-scheduler"
        } else {
            "kubelet"
        };
        crate::events::emit(
            &world.store,
            &key.cluster,
            &involved,
            kind,
            reason,
            &message,
            component,
        );
        out.events += 1;
    }
    for message in scale_events {
        crate::events::emit(
            &world.store,
            &key.cluster,
            dep,
            "Normal",
            "ScalingReplicaSet",
            &message,
            "deployment-controller",
        );
        out.events += 1;
    }

    state.due = next_due(state, &spec, counts, now, &clock);
    out
}

fn find_pod_uid(state: &DeployState, name: &str) -> Option<String> {
    state
        .sets
        .iter()
        .flat_map(|r| r.pods.iter())
        .find(|p| p.name == name)
        .and_then(|p| p.uid.clone())
}

fn next_pod_name(rs: &mut RsState, key: &Key) -> String {
    loop {
        rs.pod_seq += 1;
        let name = format!(
            "{}-{}",
            rs.name,
            pods::pod_suffix(&format!(
                "{}/{}/{}#{}",
                key.cluster, key.namespace, rs.name, rs.pod_seq
            ))
        );
        if !rs.pods.iter().any(|p| p.name == name) {
            return name;
        }
    }
}

fn ensure<'a>(v: &'a mut Value, field: &str) -> &'a mut Value {
    if !v[field].is_object() {
        v[field] = json!({});
    }
    &mut v[field]
}

fn set_progressing(
    state: &mut DeployState,
    status: &'static str,
    reason: &str,
    message: String,
    now: Instant,
) {
    let ts = now_ts();
    let transition = match &state.progressing {
        Some(c) if c.status == status => c.transition_ts.clone(),
        _ => ts.clone(),
    };
    state.progressing = Some(Condition {
        status,
        reason: reason.to_string(),
        message,
        update_ts: ts,
        transition_ts: transition,
    });
    if status == "True" {
        state.progress_at = now;
    }
}

fn status_counts(state: &DeployState, spec: &Spec, now: Instant, clock: &crate::Clock) -> Counts {
    let mut c = Counts::default();
    let last = state.sets.len().saturating_sub(1);
    for (i, rs) in state.sets.iter().enumerate() {
        for p in rs.pods.iter().filter(|p| !p.is_terminating()) {
            c.replicas += 1;
            if i == last {
                c.updated += 1;
            }
            if p.is_ready() {
                c.ready += 1;
            }
            if p.is_available(now, spec.min_ready, clock) {
                c.available += 1;
            }
        }
    }
    c
}

fn update_conditions(
    state: &mut DeployState,
    spec: &Spec,
    c: Counts,
    max_unavailable: i64,
    now: Instant,
    deadline: Duration,
) {
    let ts = now_ts();
    let (a_status, a_reason, a_message) = if c.available >= spec.replicas - max_unavailable {
        (
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        )
    } else {
        (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    };
    if state
        .available
        .as_ref()
        .is_none_or(|a| a.status != a_status)
    {
        state.available = Some(Condition {
            status: a_status,
            reason: a_reason.into(),
            message: a_message.into(),
            update_ts: ts.clone(),
            transition_ts: ts,
        });
    }
    let Some(new) = state.sets.last() else { return };
    let new_name = new.name.clone();
    let reason = state
        .progressing
        .as_ref()
        .map(|p| p.reason.clone())
        .unwrap_or_default();
    if spec.paused {
        if reason != "DeploymentPaused" {
            set_progressing(
                state,
                "Unknown",
                "DeploymentPaused",
                "Deployment is paused".into(),
                now,
            );
        }
        return;
    }
    let complete =
        c.updated == spec.replicas && c.replicas == spec.replicas && c.available == spec.replicas;
    let prev = state.last;
    let progressed = c.updated > prev.updated
        || (c.replicas - c.updated) < (prev.replicas - prev.updated)
        || c.ready > prev.ready
        || c.available > prev.available;
    if complete {
        if reason != "NewReplicaSetAvailable" {
            set_progressing(
                state,
                "True",
                "NewReplicaSetAvailable",
                format!("ReplicaSet \"{new_name}\" has successfully progressed."),
                now,
            );
        }
    } else if progressed || reason == "DeploymentPaused" || reason.is_empty() {
        set_progressing(
            state,
            "True",
            "ReplicaSetUpdated",
            format!("ReplicaSet \"{new_name}\" is progressing."),
            now,
        );
    } else if reason != "ProgressDeadlineExceeded" && now >= state.progress_at + deadline {
        set_progressing(
            state,
            "False",
            "ProgressDeadlineExceeded",
            format!("ReplicaSet \"{new_name}\" has timed out progressing."),
            now,
        );
    }
}

fn owner_ref(kind: &str, name: &str, uid: &Value) -> Value {
    json!([{"apiVersion": if kind == "Deployment" || kind == "ReplicaSet" {"apps/v1"} else {"v1"},
        "kind": kind, "name": name, "uid": uid, "controller": true, "blockOwnerDeletion": true}])
}

#[allow(clippy::too_many_arguments)]
fn write_sets(
    world: &World,
    key: &Key,
    dep: &Arc<Value>,
    state: &mut DeployState,
    spec: &Spec,
    surge: i64,
    now: Instant,
    out: &mut Outcome,
) {
    let clock = world.clock;
    let store = &world.store;
    // Newest first: its pods become ready and surge before old pods terminate, so a
    // watcher never sees a moment with fewer available or more pods than the rollout allows.
    for rs in state.sets.iter_mut().rev() {
        let active: Vec<&PodSim> = rs.pods.iter().filter(|p| !p.is_terminating()).collect();
        let ready = active.iter().filter(|p| p.is_ready()).count();
        let available = active
            .iter()
            .filter(|p| p.is_available(now, spec.min_ready, &clock))
            .count();
        let mut status = json!({"replicas": active.len(), "observedGeneration": 1});
        if !active.is_empty() {
            status["fullyLabeledReplicas"] = json!(active.len());
        }
        if ready > 0 {
            status["readyReplicas"] = json!(ready);
        }
        if available > 0 {
            status["availableReplicas"] = json!(available);
        }
        let annotations = json!({
            "deployment.kubernetes.io/desired-replicas": spec.replicas.to_string(),
            "deployment.kubernetes.io/max-replicas": (spec.replicas + surge).to_string(),
            REVISION_ANNOTATION: rs.revision.to_string(),
        });
        let desired = rs.desired;
        let written = match &rs.uid {
            Some(_) => store.mutate(
                &key.cluster,
                REPLICASETS,
                &key.namespace,
                &rs.name,
                true,
                |obj| {
                    let before = obj.clone();
                    let generation = int(&obj["metadata"]["generation"]).max(1);
                    let spec_changes = obj["spec"]["replicas"] != json!(desired);
                    obj["spec"]["replicas"] = json!(desired);
                    let mut st = status.clone();
                    st["observedGeneration"] = json!(generation + i64::from(spec_changes));
                    obj["status"] = st;
                    if let Some(a) = ensure(ensure(obj, "metadata"), "annotations").as_object_mut()
                        && let Some(new) = annotations.as_object()
                    {
                        for (k, v) in new {
                            a.insert(k.clone(), v.clone());
                        }
                    }
                    Ok(*obj != before)
                },
            ),
            None => {
                let mut selector = spec.selector.clone();
                selector.insert("pod-template-hash".into(), json!(rs.hash));
                let obj = json!({
                    "apiVersion": "apps/v1", "kind": "ReplicaSet",
                    "metadata": {"name": rs.name, "namespace": key.namespace,
                        "labels": rs.template["metadata"]["labels"],
                        "annotations": annotations,
                        "ownerReferences": owner_ref("Deployment", &key.name, &dep["metadata"]["uid"])},
                    "spec": {"replicas": desired, "minReadySeconds": spec.min_ready.as_secs(),
                        "selector": {"matchLabels": selector}, "template": *rs.template},
                    "status": status,
                });
                out.sets_added.push(key.sibling(&rs.name));
                create_or_replace(store, &key.cluster, REPLICASETS, obj)
            }
        };
        let rs_uid = match written {
            Ok(obj) => obj["metadata"]["uid"].clone(),
            Err(e) => {
                tracing::debug!("replicaset {} not written: {e}", rs.name);
                continue;
            }
        };
        rs.uid = rs_uid.as_str().map(str::to_string);
        for pod in rs.pods.iter_mut().filter(|p| p.dirty) {
            pod.dirty = false;
            let ip = pods::pod_ip(&pod.name);
            let status = pod.status(&rs.images, &ip);
            let node =
                (pod.scheduled_at.is_some()).then(|| pods::node_name(&key.cluster, &pod.name));
            let deleting = pod.is_terminating().then(now_ts);
            let written = match &pod.uid {
                Some(_) => {
                    store.mutate(&key.cluster, PODS, &key.namespace, &pod.name, true, |obj| {
                        obj["status"] = status.clone();
                        if let Some(n) = &node {
                            obj["spec"]["nodeName"] = json!(n);
                        }
                        if let Some(ts) = &deleting
                            && obj["metadata"]["deletionTimestamp"].is_null()
                        {
                            obj["metadata"]["deletionTimestamp"] = json!(ts);
                            obj["metadata"]["deletionGracePeriodSeconds"] = json!(30);
                        }
                        Ok(true)
                    })
                }
                None => {
                    let template = &rs.template;
                    let mut pod_spec = template["spec"].clone();
                    if !pod_spec.is_object() {
                        pod_spec = json!({});
                    }
                    for (k, v) in [
                        ("restartPolicy", json!("Always")),
                        ("schedulerName", json!("default-scheduler")),
                        ("terminationGracePeriodSeconds", json!(30)),
                        ("dnsPolicy", json!("ClusterFirst")),
                        ("serviceAccountName", json!("default")),
                    ] {
                        if pod_spec.get(k).is_none() {
                            pod_spec[k] = v;
                        }
                    }
                    if let Some(n) = &node {
                        pod_spec["nodeName"] = json!(n);
                    }
                    let mut meta = json!({"name": pod.name, "namespace": key.namespace,
                        "labels": template["metadata"]["labels"],
                        "ownerReferences": owner_ref("ReplicaSet", &rs.name, &rs_uid)});
                    if template["metadata"]["annotations"].is_object() {
                        meta["annotations"] = template["metadata"]["annotations"].clone();
                    }
                    out.pods_added.push(key.sibling(&pod.name));
                    create_or_replace(
                        store,
                        &key.cluster,
                        PODS,
                        json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": pod_spec, "status": status}),
                    )
                }
            };
            match written {
                Ok(obj) => pod.uid = obj["metadata"]["uid"].as_str().map(str::to_string),
                Err(e) => tracing::debug!("pod {} not written: {e}", pod.name),
            }
        }
    }
}

fn create_or_replace(
    store: &crate::Store,
    cluster: &str,
    res: crate::store::ResourceType,
    obj: Value,
) -> Result<Arc<Value>, StoreError> {
    match store.create(cluster, res, obj.clone()) {
        Err(StoreError::AlreadyExists { .. }) => store.replace(cluster, res, obj, true),
        other => other,
    }
}

fn write_status(world: &World, key: &Key, dep: &Arc<Value>, state: &DeployState, c: Counts) {
    let generation = int(&dep["metadata"]["generation"]);
    let mut status = json!({"observedGeneration": generation});
    for (field, v) in [
        ("replicas", c.replicas),
        ("updatedReplicas", c.updated),
        ("readyReplicas", c.ready),
        ("availableReplicas", c.available),
    ] {
        if v > 0 {
            status[field] = json!(v);
        }
    }
    let replicas = Spec::parse(dep).replicas;
    let unavailable = (replicas - c.available).max(0);
    if unavailable > 0 {
        status["unavailableReplicas"] = json!(unavailable);
    }
    let mut conditions = Vec::new();
    if let Some(a) = &state.available {
        conditions.push(a.to_json("Available"));
    }
    if let Some(p) = &state.progressing {
        conditions.push(p.to_json("Progressing"));
    }
    status["conditions"] = json!(conditions);
    let revision = state.sets.last().map(|r| r.revision.to_string());
    let res = world.store.mutate(
        &key.cluster,
        DEPLOYMENTS,
        &key.namespace,
        &key.name,
        true,
        |obj| {
            // Only when the spec we acted on is still the stored one; a newer spec gets its
            // own pass.
            if int(&obj["metadata"]["generation"]) != generation {
                return Ok(false);
            }
            let mut changed = obj["status"] != status;
            if changed {
                obj["status"] = status.clone();
            }
            if let Some(rev) = &revision
                && obj["metadata"]["annotations"][REVISION_ANNOTATION].as_str()
                    != Some(rev.as_str())
            {
                if let Some(a) = ensure(ensure(obj, "metadata"), "annotations").as_object_mut() {
                    a.insert(REVISION_ANNOTATION.into(), json!(rev));
                }
                changed = true;
            }
            Ok(changed)
        },
    );
    if let Err(e) = res {
        tracing::debug!("deployment {} status not written: {e}", key.name);
    }
}

fn next_due(
    state: &DeployState,
    spec: &Spec,
    c: Counts,
    now: Instant,
    clock: &crate::Clock,
) -> Option<Instant> {
    let mut due: Option<Instant> = None;
    let mut consider = |t: Instant| {
        due = Some(due.map_or(t, |d| d.min(t)));
    };
    for p in state.sets.iter().flat_map(|r| r.pods.iter()) {
        if let Some(t) = p.next {
            consider(t);
        }
        if p.is_ready()
            && let Some(since) = p.ready_since
        {
            let at = since + clock.wall(spec.min_ready);
            if at > now {
                consider(at);
            }
        }
    }
    let complete =
        c.updated == spec.replicas && c.replicas == spec.replicas && c.available == spec.replicas;
    let waiting = state
        .progressing
        .as_ref()
        .is_some_and(|p| p.status == "True");
    if !complete && waiting && !spec.paused {
        consider(state.progress_at + clock.wall(spec.deadline));
    }
    due
}
