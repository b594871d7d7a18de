//! The sandbox's StatefulSet, DaemonSet and Job controllers (with the kubelet's part for
//! their pods), in one small task: what kube-controller-manager does for them, simplified.
//!
//! - StatefulSet (`OrderedReady`): pods `NAME-0..N-1` created one at a time, each only once
//!   the ones before it are Ready; scaled down from the highest ordinal; a template change
//!   rolls pods from the highest ordinal down, one at a time, each Ready before the next.
//!   Status: replicas, readyReplicas, availableReplicas, currentReplicas, updatedReplicas,
//!   currentRevision, updateRevision, observedGeneration.
//! - DaemonSet: one pod per simulated node (three per cluster); status counts as the
//!   DaemonSet controller reports them.
//! - Job: `completions` pods run one after another, each Running then Succeeded; then the
//!   `SuccessCriteriaMet` and `Complete` conditions.
//!
//! A pod is Pending (ContainerCreating) for one simulated second after it is created, then
//! Running and Ready. The controller only writes pods it owns and the status of its three
//! types; it reconciles on a timer and on every write to those types or to pods.

use crate::World;
use crate::store::{DAEMONSETS, JOBS, PODS, ResourceType, STATEFULSETS};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

/// Nodes of each simulated cluster (as `deploy::pods::node_name` places pods).
const NODES: u64 = 3;
/// Simulated seconds a pod takes from creation to Ready (and a Job pod from Ready to done).
const POD_START_SECS: f64 = 1.0;

pub fn spawn(world: Arc<World>) -> Vec<tokio::task::JoinHandle<()>> {
    vec![tokio::spawn(async move {
        Controller {
            world,
            born: HashMap::new(),
        }
        .run()
        .await
    })]
}

type PodKey = (String, String, String); // cluster, namespace, name

struct Controller {
    world: Arc<World>,
    /// When this controller created (or last restarted the clock of) each pod it owns.
    born: HashMap<PodKey, Instant>,
}

fn now_ts() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// Kubernetes' "safe" alphabet for generated suffixes (no vowels, no look-alikes).
fn suffix(seed: &str, len: usize) -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut h = fnv(seed);
    (0..len)
        .map(|_| {
            let c = ALPHABET[(h % ALPHABET.len() as u64) as usize] as char;
            h /= ALPHABET.len() as u64;
            c
        })
        .collect()
}

fn meta<'a>(o: &'a Value, f: &str) -> &'a str {
    o["metadata"][f].as_str().unwrap_or("")
}

/// The revision name of a template, as `controller-revision-hash` carries it.
fn revision(owner: &Value) -> String {
    let t = serde_json::to_string(&owner["spec"]["template"]).unwrap_or_default();
    format!("{}-{}", meta(owner, "name"), suffix(&t, 10))
}

fn owner_ref(res: ResourceType, owner: &Value) -> Value {
    json!([{"apiVersion": res.api_version(), "kind": res.kind, "name": meta(owner, "name"),
            "uid": meta(owner, "uid"), "controller": true, "blockOwnerDeletion": true}])
}

fn owned_by(pod: &Value, uid: &str) -> bool {
    pod["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|r| r.iter().any(|r| r["uid"].as_str() == Some(uid)))
}

fn node_name(cluster: &str, i: u64) -> String {
    format!("{cluster}-worker-{}", i + 1)
}

fn pod_ip(name: &str) -> String {
    let h = fnv(name);
    format!("10.244.{}.{}", (h >> 8) % 250 + 1, h % 250 + 2)
}

fn is_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn phase(pod: &Value) -> &str {
    pod["status"]["phase"].as_str().unwrap_or("Pending")
}

/// A new pod of `owner`'s template, Pending with its containers being created.
fn new_pod(
    res: ResourceType,
    owner: &Value,
    name: &str,
    node: &str,
    extra_labels: &[(&str, String)],
) -> Value {
    let template = &owner["spec"]["template"];
    let mut labels = template["metadata"]["labels"].clone();
    if !labels.is_object() {
        labels = json!({});
    }
    for (k, v) in extra_labels {
        labels[*k] = json!(v);
    }
    let mut spec = template["spec"].clone();
    if !spec.is_object() {
        spec = json!({"containers": []});
    }
    spec["nodeName"] = json!(node);
    if res == JOBS && spec["restartPolicy"].is_null() {
        spec["restartPolicy"] = json!("Never");
    }
    let containers: Vec<Value> = spec["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            json!({"name": c["name"], "image": c["image"], "imageID": "", "ready": false,
                   "started": false, "restartCount": 0, "lastState": {},
                   "state": {"waiting": {"reason": "ContainerCreating"}}})
        })
        .collect();
    let now = now_ts();
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": meta(owner, "namespace"), "labels": labels,
                     "ownerReferences": owner_ref(res, owner)},
        "spec": spec,
        "status": {"phase": "Pending", "qosClass": "BestEffort", "hostIP": "172.18.0.2",
            "startTime": now,
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastProbeTime": null, "lastTransitionTime": now},
                {"type": "Initialized", "status": "True", "lastProbeTime": null, "lastTransitionTime": now},
                {"type": "Ready", "status": "False", "lastProbeTime": null, "lastTransitionTime": now,
                 "reason": "ContainersNotReady"},
                {"type": "ContainersReady", "status": "False", "lastProbeTime": null, "lastTransitionTime": now,
                 "reason": "ContainersNotReady"}],
            "containerStatuses": containers},
    })
}

/// The pod's status once its containers run (and, for a Job, once they exited 0).
fn advanced_status(pod: &Value, done: bool) -> Value {
    let now = now_ts();
    let name = meta(pod, "name");
    let mut st = pod["status"].clone();
    let ready = !done;
    st["phase"] = json!(if done { "Succeeded" } else { "Running" });
    st["podIP"] = json!(pod_ip(name));
    st["podIPs"] = json!([{"ip": pod_ip(name)}]);
    let conds: Vec<Value> = ["PodScheduled", "Initialized", "Ready", "ContainersReady"]
        .iter()
        .map(|t| {
            let ok = matches!(*t, "PodScheduled" | "Initialized") || ready;
            let mut c = json!({"type": t, "status": if ok {"True"} else {"False"},
                               "lastProbeTime": null, "lastTransitionTime": now});
            if !ok {
                c["reason"] = json!("PodCompleted");
            }
            c
        })
        .collect();
    st["conditions"] = json!(conds);
    let statuses: Vec<Value> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let image = c["image"].as_str().unwrap_or("");
            let state = if done {
                json!({"terminated": {"exitCode": 0, "reason": "Completed", "startedAt": now, "finishedAt": now}})
            } else {
                json!({"running": {"startedAt": now}})
            };
            json!({"name": c["name"], "image": image, "ready": ready, "started": ready,
                   "restartCount": 0, "lastState": {}, "state": state,
                   "imageID": format!("docker.io/library/{image}@sha256:{:064x}", fnv(image)),
                   "containerID": format!("containerd://{:016x}", fnv(name))})
        })
        .collect();
    st["containerStatuses"] = json!(statuses);
    st
}

/// A pod whose image cannot be pulled, as the kubelet reports it: Pending, not Ready,
/// each container waiting in `ImagePullBackOff` with the kubelet's message.
fn pull_backoff_status(pod: &Value, image: &str) -> Value {
    let mut st = pod["status"].clone();
    st["phase"] = json!("Pending");
    let statuses: Vec<Value> = pod["spec"]["containers"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            json!({"name": c["name"], "image": c["image"], "imageID": "", "ready": false,
                   "started": false, "restartCount": 0, "lastState": {},
                   "state": {"waiting": {"reason": "ImagePullBackOff",
                       "message": format!("Back-off pulling image \"{image}\"")}}})
        })
        .collect();
    st["containerStatuses"] = json!(statuses);
    st
}

impl Controller {
    async fn run(mut self) {
        let world = self.world.clone();
        let mut rx = world
            .store
            .watch(crate::IN_CLUSTER, PODS, 0)
            .ok()
            .map(|(_, rx)| rx);
        let mut tick = world.clock.interval(Duration::from_secs_f64(0.25));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                ev = async {
                    match rx.as_mut() {
                        Some(rx) => rx.recv().await.ok(),
                        None => std::future::pending().await,
                    }
                } => {
                    // Only writes to the types this controller owns wake it early.
                    if let Some(ev) = ev
                        && ![STATEFULSETS, DAEMONSETS, JOBS].contains(&ev.resource)
                    {
                        continue;
                    }
                }
            }
            self.reconcile_all();
        }
    }

    fn reconcile_all(&mut self) {
        let world = self.world.clone();
        let now = Instant::now();
        for cluster in world.store.clusters() {
            for res in [STATEFULSETS, DAEMONSETS, JOBS] {
                for owner in world.store.list(&cluster, res, None).0 {
                    self.reconcile(&cluster, res, &owner, now);
                }
            }
        }
        let store = &world.store;
        self.born
            .retain(|(c, ns, n), _| store.get(c, PODS, ns, n).is_some());
    }

    fn start_due(&self, cluster: &str, pod: &Value, now: Instant, secs: f64) -> bool {
        let key = (
            cluster.to_string(),
            meta(pod, "namespace").to_string(),
            meta(pod, "name").to_string(),
        );
        let wall = self.world.clock.wall(Duration::from_secs_f64(secs));
        self.born.get(&key).is_none_or(|t| now >= *t + wall)
    }

    /// Create a pod of `owner` and record the Event its controller records, in its words
    /// (`create Pod NAME in StatefulSet OWNER successful`; `Created pod: NAME`).
    fn create_pod(&mut self, cluster: &str, owner: &Value, pod: Value, now: Instant) {
        let key = (
            cluster.to_string(),
            meta(&pod, "namespace").to_string(),
            meta(&pod, "name").to_string(),
        );
        if self.world.store.create(cluster, PODS, pod).is_ok() {
            let (message, component) = match owner["kind"].as_str().unwrap_or("") {
                "StatefulSet" => (
                    format!(
                        "create Pod {} in StatefulSet {} successful",
                        key.2,
                        meta(owner, "name")
                    ),
                    "statefulset-controller",
                ),
                "DaemonSet" => (format!("Created pod: {}", key.2), "daemonset-controller"),
                _ => (format!("Created pod: {}", key.2), "job-controller"),
            };
            crate::events::emit(
                &self.world.store,
                cluster,
                owner,
                "Normal",
                "SuccessfulCreate",
                &message,
                component,
            );
            self.born.insert(key, now);
        }
    }

    /// Pending pods whose start is due become Running (Ready); Job pods then Succeeded.
    fn advance_pods(&mut self, cluster: &str, pods: &[Arc<Value>], job: bool, now: Instant) {
        for pod in pods {
            let done = match phase(pod) {
                "Pending" if self.start_due(cluster, pod, now, POD_START_SECS) => false,
                "Running" if job && self.start_due(cluster, pod, now, 2.0 * POD_START_SECS) => true,
                _ => continue,
            };
            let status = match (done, self.pull_fault(pod)) {
                // The kubelet cannot pull the image: the pod stays Pending, its container
                // waiting in ImagePullBackOff, and is never Ready.
                (false, Some(image)) => pull_backoff_status(pod, &image),
                _ => advanced_status(pod, done),
            };
            if pod["status"] == status {
                continue;
            }
            let _ = self.world.store.mutate(
                cluster,
                PODS,
                meta(pod, "namespace"),
                meta(pod, "name"),
                true,
                |p| {
                    p["status"] = status.clone();
                    Ok(true)
                },
            );
        }
    }

    /// The first image of the pod that `world.image_faults` says cannot be pulled.
    fn pull_fault(&self, pod: &Value) -> Option<String> {
        let faults = self
            .world
            .image_faults
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["image"].as_str())
            .find(|i| {
                faults
                    .get(*i)
                    .is_some_and(|m| matches!(m.as_str(), "ImagePullBackOff" | "ErrImagePull"))
            })
            .map(str::to_string)
    }

    fn owned_pods(&self, cluster: &str, owner: &Value) -> Vec<Arc<Value>> {
        let uid = meta(owner, "uid");
        let mut pods: Vec<Arc<Value>> = self
            .world
            .store
            .list(cluster, PODS, Some(meta(owner, "namespace")))
            .0
            .into_iter()
            .filter(|p| owned_by(p, uid))
            .collect();
        pods.sort_by_key(|p| ordinal(meta(p, "name"), meta(owner, "name")));
        pods
    }

    fn write_status(&self, cluster: &str, res: ResourceType, owner: &Value, status: Value) {
        if owner["status"] == status {
            return;
        }
        let _ = self.world.store.mutate(
            cluster,
            res,
            meta(owner, "namespace"),
            meta(owner, "name"),
            true,
            |o| {
                o["status"] = status.clone();
                Ok(true)
            },
        );
    }

    fn reconcile(&mut self, cluster: &str, res: ResourceType, owner: &Value, now: Instant) {
        let pods = self.owned_pods(cluster, owner);
        self.advance_pods(cluster, &pods, res == JOBS, now);
        let pods = self.owned_pods(cluster, owner);
        match res {
            r if r == STATEFULSETS => self.stateful_set(cluster, owner, &pods, now),
            r if r == DAEMONSETS => self.daemon_set(cluster, owner, &pods, now),
            _ => self.job(cluster, owner, &pods, now),
        }
    }

    fn stateful_set(&mut self, cluster: &str, sts: &Value, pods: &[Arc<Value>], now: Instant) {
        let name = meta(sts, "name");
        let ns = meta(sts, "namespace");
        let replicas = sts["spec"]["replicas"].as_i64().unwrap_or(1).max(0) as usize;
        let update_rev = revision(sts);
        let rev_of = |p: &Value| {
            p["metadata"]["labels"]["controller-revision-hash"]
                .as_str()
                .unwrap_or("")
                .to_string()
        };
        let all_ready = pods.iter().all(|p| is_ready(p));
        let by_ordinal: HashMap<usize, &Arc<Value>> = pods
            .iter()
            .filter_map(|p| ordinal(meta(p, "name"), name).map(|i| (i, p)))
            .collect();
        // One step at a time, as OrderedReady does: create the first missing ordinal once all
        // before it are Ready; else remove the highest surplus; else roll the highest
        // outdated pod.
        // `Parallel` creates and removes without waiting; `OnDelete` never replaces a pod
        // itself; a partition keeps ordinals below it at their revision.
        let parallel = sts["spec"]["podManagementPolicy"] == "Parallel";
        let strategy = &sts["spec"]["updateStrategy"];
        let on_delete = strategy["type"] == "OnDelete";
        let partition = strategy["rollingUpdate"]["partition"].as_u64().unwrap_or(0) as usize;
        let missing: Vec<usize> = (0..replicas)
            .filter(|i| !by_ordinal.contains_key(i))
            .take(if parallel { replicas } else { 1 })
            .collect();
        let surplus = by_ordinal.keys().copied().filter(|i| *i >= replicas).max();
        let outdated = (partition..replicas)
            .rev()
            .find(|i| by_ordinal.get(i).is_some_and(|p| rev_of(p) != update_rev))
            .filter(|_| !on_delete);
        if !missing.is_empty() {
            for i in missing {
                if !parallel && !(0..i).all(|j| by_ordinal.get(&j).is_some_and(|p| is_ready(p))) {
                    continue;
                }
                let pod_name = format!("{name}-{i}");
                let mut pod = new_pod(
                    STATEFULSETS,
                    sts,
                    &pod_name,
                    &node_name(cluster, fnv(&pod_name) % NODES),
                    &[
                        ("controller-revision-hash", update_rev.clone()),
                        ("statefulset.kubernetes.io/pod-name", pod_name.clone()),
                        ("apps.kubernetes.io/pod-index", i.to_string()),
                    ],
                );
                pod["spec"]["hostname"] = json!(pod_name);
                if let Some(svc) = sts["spec"]["serviceName"].as_str() {
                    pod["spec"]["subdomain"] = json!(svc);
                }
                self.create_pod(cluster, sts, pod, now);
            }
        } else if let Some(i) = surplus {
            if all_ready || parallel {
                let _ = self
                    .world
                    .store
                    .delete(cluster, PODS, ns, &format!("{name}-{i}"));
            }
        } else if let Some(i) = outdated
            && all_ready
        {
            let _ = self
                .world
                .store
                .delete(cluster, PODS, ns, &format!("{name}-{i}"));
        }
        let pods = self.owned_pods(cluster, sts);
        let ready = pods.iter().filter(|p| is_ready(p)).count();
        let updated = pods.iter().filter(|p| rev_of(p) == update_rev).count();
        let prior_current = sts["status"]["currentRevision"]
            .as_str()
            .filter(|r| !r.is_empty())
            .unwrap_or(&update_rev)
            .to_string();
        let done = updated == replicas && ready == replicas && pods.len() == replicas;
        let current_rev = if done {
            update_rev.clone()
        } else {
            prior_current
        };
        let current = pods.iter().filter(|p| rev_of(p) == current_rev).count();
        let status = json!({
            "observedGeneration": sts["metadata"]["generation"],
            "replicas": pods.len(),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "currentReplicas": current,
            "updatedReplicas": updated,
            "currentRevision": current_rev,
            "updateRevision": update_rev,
            "collisionCount": 0,
        });
        self.write_status(cluster, STATEFULSETS, sts, status);
    }

    fn daemon_set(&mut self, cluster: &str, ds: &Value, pods: &[Arc<Value>], now: Instant) {
        let name = meta(ds, "name");
        let rev = revision(ds);
        let rev_of = |p: &Value| {
            p["metadata"]["labels"]["controller-revision-hash"]
                .as_str()
                .unwrap_or("")
                .to_string()
        };
        let all_ready = pods.iter().all(|p| is_ready(p));
        for i in 0..NODES {
            let node = node_name(cluster, i);
            let on_node = pods
                .iter()
                .find(|p| p["spec"]["nodeName"].as_str() == Some(node.as_str()));
            match on_node {
                None => {
                    let pod_name = format!("{name}-{}", suffix(&format!("{rev}/{node}"), 5));
                    let pod = new_pod(
                        DAEMONSETS,
                        ds,
                        &pod_name,
                        &node,
                        &[("controller-revision-hash", rev.clone())],
                    );
                    self.create_pod(cluster, ds, pod, now);
                }
                // Rolling update, one node at a time (maxUnavailable 1).
                Some(p) if rev_of(p) != rev && all_ready => {
                    let _ = self.world.store.delete(
                        cluster,
                        PODS,
                        meta(p, "namespace"),
                        meta(p, "name"),
                    );
                    break;
                }
                Some(_) => {}
            }
        }
        let pods = self.owned_pods(cluster, ds);
        let ready = pods.iter().filter(|p| is_ready(p)).count();
        let updated = pods.iter().filter(|p| rev_of(p) == rev).count();
        let status = json!({
            "observedGeneration": ds["metadata"]["generation"],
            "desiredNumberScheduled": NODES,
            "currentNumberScheduled": pods.len(),
            "numberMisscheduled": 0,
            "numberReady": ready,
            "numberAvailable": ready,
            "numberUnavailable": (NODES as usize).saturating_sub(ready),
            "updatedNumberScheduled": updated,
        });
        self.write_status(cluster, DAEMONSETS, ds, status);
    }

    fn job(&mut self, cluster: &str, job: &Value, pods: &[Arc<Value>], now: Instant) {
        let name = meta(job, "name");
        let completions = job["spec"]["completions"].as_i64().unwrap_or(1).max(0) as usize;
        let succeeded = pods.iter().filter(|p| phase(p) == "Succeeded").count();
        let active: Vec<&Arc<Value>> = pods
            .iter()
            .filter(|p| matches!(phase(p), "Pending" | "Running"))
            .collect();
        let suspended = job["spec"]["suspend"].as_bool() == Some(true);
        if active.is_empty() && succeeded < completions && !suspended {
            let pod_name = format!("{name}-{}", suffix(&format!("{name}/{}", pods.len()), 5));
            let uid = meta(job, "uid").to_string();
            let pod = new_pod(
                JOBS,
                job,
                &pod_name,
                &node_name(cluster, fnv(&pod_name) % NODES),
                &[
                    ("batch.kubernetes.io/controller-uid", uid.clone()),
                    ("batch.kubernetes.io/job-name", name.to_string()),
                    ("controller-uid", uid),
                    ("job-name", name.to_string()),
                ],
            );
            self.create_pod(cluster, job, pod, now);
        }
        let pods = self.owned_pods(cluster, job);
        let succeeded = pods.iter().filter(|p| phase(p) == "Succeeded").count();
        let active = pods
            .iter()
            .filter(|p| matches!(phase(p), "Pending" | "Running"))
            .count();
        let ready = pods.iter().filter(|p| is_ready(p)).count();
        let mut status = json!({
            "active": active,
            "ready": ready,
            "succeeded": succeeded,
            "failed": 0,
            "terminating": 0,
            "uncountedTerminatedPods": {},
        });
        let prior = &job["status"];
        let start = prior["startTime"].as_str().map(str::to_string);
        if !pods.is_empty() || start.is_some() {
            status["startTime"] = json!(start.unwrap_or_else(now_ts));
        }
        if succeeded >= completions {
            if prior["completionTime"].as_str().is_none() {
                crate::events::emit(
                    &self.world.store,
                    cluster,
                    job,
                    "Normal",
                    "Completed",
                    "Job completed",
                    "job-controller",
                );
            }
            let at = prior["completionTime"]
                .as_str()
                .map(str::to_string)
                .unwrap_or_else(now_ts);
            status["completionTime"] = json!(at);
            status["conditions"] = json!([
                {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached",
                 "message": "Reached expected number of succeeded pods", "lastProbeTime": at, "lastTransitionTime": at},
                {"type": "Complete", "status": "True", "reason": "CompletionsReached",
                 "message": "Reached expected number of succeeded pods", "lastProbeTime": at, "lastTransitionTime": at},
            ]);
        }
        if active == 0
            && let Some(o) = status.as_object_mut()
        {
            o.remove("active");
        }
        self.write_status(cluster, JOBS, job, status);
    }
}

/// The ordinal of a StatefulSet pod `NAME-i` (None for other names); sorts other pods last.
fn ordinal(pod: &str, owner: &str) -> Option<usize> {
    pod.strip_prefix(owner)?.strip_prefix('-')?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinals_and_suffixes() {
        assert_eq!(ordinal("kafka-2", "kafka"), Some(2));
        assert_eq!(ordinal("kafka-x", "kafka"), None);
        assert_eq!(ordinal("kafka-connect-0", "kafka"), None);
        let s = suffix("seed", 5);
        assert_eq!(s.len(), 5);
        assert_eq!(s, suffix("seed", 5));
    }
}
