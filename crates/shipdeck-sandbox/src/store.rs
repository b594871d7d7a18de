//! The sandbox's object store: every Kubernetes object of every simulated cluster, as JSON,
//! under one global resourceVersion, with a bounded history of changes for watches.
//!
//! It is the single source of truth that the Kubernetes API, the Argo CD API, and the
//! controllers all read and write. It never blocks on I/O: a `std::sync::Mutex` guards it
//! and is never held across an `.await`.

use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::broadcast;

/// A resource type the sandbox serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ResourceType {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
}

impl ResourceType {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

pub const NAMESPACES: ResourceType = ResourceType {
    group: "",
    version: "v1",
    plural: "namespaces",
    singular: "namespace",
    kind: "Namespace",
    namespaced: false,
    short_names: &["ns"],
};
pub const PODS: ResourceType = ResourceType {
    group: "",
    version: "v1",
    plural: "pods",
    singular: "pod",
    kind: "Pod",
    namespaced: true,
    short_names: &["po"],
};
pub const EVENTS: ResourceType = ResourceType {
    group: "",
    version: "v1",
    plural: "events",
    singular: "event",
    kind: "Event",
    namespaced: true,
    short_names: &["ev"],
};
pub const SERVICES: ResourceType = ResourceType {
    group: "",
    version: "v1",
    plural: "services",
    singular: "service",
    kind: "Service",
    namespaced: true,
    short_names: &["svc"],
};
pub const CONFIGMAPS: ResourceType = ResourceType {
    group: "",
    version: "v1",
    plural: "configmaps",
    singular: "configmap",
    kind: "ConfigMap",
    namespaced: true,
    short_names: &["cm"],
};
pub const SECRETS: ResourceType = ResourceType {
    group: "",
    version: "v1",
    plural: "secrets",
    singular: "secret",
    kind: "Secret",
    namespaced: true,
    short_names: &[],
};
pub const DEPLOYMENTS: ResourceType = ResourceType {
    group: "apps",
    version: "v1",
    plural: "deployments",
    singular: "deployment",
    kind: "Deployment",
    namespaced: true,
    short_names: &["deploy"],
};
pub const REPLICASETS: ResourceType = ResourceType {
    group: "apps",
    version: "v1",
    plural: "replicasets",
    singular: "replicaset",
    kind: "ReplicaSet",
    namespaced: true,
    short_names: &["rs"],
};
pub const STATEFULSETS: ResourceType = ResourceType {
    group: "apps",
    version: "v1",
    plural: "statefulsets",
    singular: "statefulset",
    kind: "StatefulSet",
    namespaced: true,
    short_names: &["sts"],
};
pub const DAEMONSETS: ResourceType = ResourceType {
    group: "apps",
    version: "v1",
    plural: "daemonsets",
    singular: "daemonset",
    kind: "DaemonSet",
    namespaced: true,
    short_names: &["ds"],
};
pub const JOBS: ResourceType = ResourceType {
    group: "batch",
    version: "v1",
    plural: "jobs",
    singular: "job",
    kind: "Job",
    namespaced: true,
    short_names: &[],
};
/// `events.k8s.io/v1` Events: a second view of the core Events (as in Kubernetes, both
/// versions are one stored object). Nothing is stored under this type; the Kubernetes API
/// converts to and from [`EVENTS`] (`kube_api::convert`).
pub const EVENTS_V1: ResourceType = ResourceType {
    group: "events.k8s.io",
    version: "v1",
    plural: "events",
    singular: "event",
    kind: "Event",
    namespaced: true,
    short_names: &["ev"],
};
pub const APPLICATIONS: ResourceType = ResourceType {
    group: "argoproj.io",
    version: "v1alpha1",
    plural: "applications",
    singular: "application",
    kind: "Application",
    namespaced: true,
    short_names: &["app", "apps"],
};
pub const APPPROJECTS: ResourceType = ResourceType {
    group: "argoproj.io",
    version: "v1alpha1",
    plural: "appprojects",
    singular: "appproject",
    kind: "AppProject",
    namespaced: true,
    short_names: &["appproj", "appprojs"],
};

/// Every stored type. (`selfsubjectaccessreviews` is served but never stored.)
pub const RESOURCE_TYPES: &[ResourceType] = &[
    NAMESPACES,
    PODS,
    EVENTS,
    SERVICES,
    CONFIGMAPS,
    SECRETS,
    DEPLOYMENTS,
    REPLICASETS,
    STATEFULSETS,
    DAEMONSETS,
    JOBS,
    EVENTS_V1,
    APPLICATIONS,
    APPPROJECTS,
];

pub fn resource_type(group: &str, plural: &str) -> Option<ResourceType> {
    RESOURCE_TYPES
        .iter()
        .copied()
        .find(|r| r.group == group && r.plural == plural)
}

/// Which simulated cluster an object lives in. The sandbox serves each cluster under its
/// own URL prefix (`/clusters/{name}`), and the "in-cluster" one (where Argo CD runs) also
/// at the root.
pub type ClusterName = String;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum EventType {
    #[serde(rename = "ADDED")]
    Added,
    #[serde(rename = "MODIFIED")]
    Modified,
    #[serde(rename = "DELETED")]
    Deleted,
}

#[derive(Debug, Clone)]
pub struct WatchEvent {
    pub rv: u64,
    pub cluster: ClusterName,
    pub resource: ResourceType,
    pub event_type: EventType,
    pub object: Arc<Value>,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum StoreError {
    #[error("{kind}.{group} \"{name}\" not found")]
    NotFound {
        kind: String,
        group: String,
        name: String,
    },
    #[error("{kind}.{group} \"{name}\" already exists")]
    AlreadyExists {
        kind: String,
        group: String,
        name: String,
    },
    #[error(
        "Operation cannot be fulfilled on {plural}.{group} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
    )]
    Conflict {
        plural: String,
        group: String,
        name: String,
    },
    #[error("too old resource version: {requested} ({oldest})")]
    Gone { requested: u64, oldest: u64 },
    #[error("{0}")]
    Invalid(String),
}

type Key = (ClusterName, &'static str, &'static str); // cluster, group, plural
type ObjKey = (String, String); // namespace ("" for cluster-scoped), name

struct Inner {
    rv: u64,
    objects: HashMap<Key, BTreeMap<ObjKey, Arc<Value>>>,
    history: VecDeque<WatchEvent>,
    /// Versions at or below this are no longer in `history`: watching from them gives 410.
    compacted_rv: u64,
    history_limit: usize,
    next_uid: u64,
    /// Events of each cluster, oldest first, for [`EVENT_LIMIT`].
    event_order: HashMap<ClusterName, VecDeque<ObjKey>>,
}

/// Events kept per cluster. The API server expires Events after an hour (`--event-ttl`);
/// the sandbox keeps the newest ones instead, so a sandbox left running stays bounded.
pub const EVENT_LIMIT: usize = 5_000;

/// Sizes of what the store holds, for the soak benchmark and the bounds tests.
#[derive(Debug, Clone, Default)]
pub struct StoreStats {
    /// Objects per (cluster, plural), sorted.
    pub objects: Vec<(String, String, usize)>,
    pub history: usize,
    pub event_order: usize,
}

/// The shared store. Cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Mutex<Inner>>,
    events: broadcast::Sender<WatchEvent>,
    /// Bumped to end every open watch at once (the "drop watches" fault).
    watch_epoch: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Default for Store {
    fn default() -> Self {
        Self::new(20_000)
    }
}

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> &'a str {
    obj.get("metadata")
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

impl Store {
    pub fn new(history_limit: usize) -> Self {
        let (events, _) = broadcast::channel(16_384);
        let (epoch, _) = tokio::sync::watch::channel(0);
        Self {
            inner: Arc::new(Mutex::new(Inner {
                rv: 1,
                objects: HashMap::new(),
                history: VecDeque::new(),
                compacted_rv: 0,
                history_limit,
                next_uid: 1,
                event_order: HashMap::new(),
            })),
            events,
            watch_epoch: Arc::new(epoch),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock would poison it; the data is still consistent
        // because every mutation is completed before the guard drops, so recover it.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The current global resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// List objects of a type, optionally in one namespace, with the list's resourceVersion.
    pub fn list(
        &self,
        cluster: &str,
        res: ResourceType,
        namespace: Option<&str>,
    ) -> (Vec<Arc<Value>>, u64) {
        let inner = self.lock();
        let key = (cluster.to_string(), res.group, res.plural);
        let items = match inner.objects.get(&key) {
            None => Vec::new(),
            Some(map) => match namespace {
                None => map.values().cloned().collect(),
                Some(ns) => map
                    .range((ns.to_string(), String::new())..)
                    .take_while(|((n, _), _)| n == ns)
                    .map(|(_, v)| v.clone())
                    .collect(),
            },
        };
        (items, inner.rv)
    }

    /// One page of a list without a selector: at most `limit` objects after `after` (the
    /// last key of the page before), the number left after them, and the resourceVersion.
    /// It walks only the page (kube-apiserver serves pages from its cache the same way);
    /// [`Store::list`] hands out the whole type, which made each page of a 50,000-app list
    /// cost as much as the whole.
    pub fn list_page(
        &self,
        cluster: &str,
        res: ResourceType,
        namespace: Option<&str>,
        after: Option<(&str, &str)>,
        limit: usize,
    ) -> (Vec<Arc<Value>>, usize, u64) {
        use std::ops::Bound;
        let inner = self.lock();
        let key = (cluster.to_string(), res.group, res.plural);
        let Some(map) = inner.objects.get(&key) else {
            return (Vec::new(), 0, inner.rv);
        };
        let start = match (after, namespace) {
            (Some((n, name)), _) => Bound::Excluded((n.to_string(), name.to_string())),
            (None, Some(ns)) => Bound::Included((ns.to_string(), String::new())),
            (None, None) => Bound::Unbounded,
        };
        let mut range = map
            .range((start, Bound::Unbounded))
            .take_while(|((n, _), _)| namespace.is_none_or(|ns| n == ns));
        let page: Vec<Arc<Value>> = range.by_ref().take(limit).map(|(_, v)| v.clone()).collect();
        let rest = range.count();
        (page, rest, inner.rv)
    }

    pub fn get(
        &self,
        cluster: &str,
        res: ResourceType,
        namespace: &str,
        name: &str,
    ) -> Option<Arc<Value>> {
        let inner = self.lock();
        inner
            .objects
            .get(&(cluster.to_string(), res.group, res.plural))
            .and_then(|m| m.get(&(ns_key(res, namespace), name.to_string())))
            .cloned()
    }

    fn not_found(res: ResourceType, name: &str) -> StoreError {
        StoreError::NotFound {
            kind: res.plural.to_string(),
            group: res.group.to_string(),
            name: name.to_string(),
        }
    }

    /// Create an object. Sets uid, creationTimestamp, generation 1 and resourceVersion.
    pub fn create(
        &self,
        cluster: &str,
        res: ResourceType,
        mut obj: Value,
    ) -> Result<Arc<Value>, StoreError> {
        let name = meta_str(&obj, "name").to_string();
        if name.is_empty() {
            let generate = meta_str(&obj, "generateName").to_string();
            if generate.is_empty() {
                return Err(StoreError::Invalid(
                    "metadata.name: Required value: name or generateName is required".into(),
                ));
            }
        }
        let namespace = ns_key(res, meta_str(&obj, "namespace"));
        if res.namespaced && namespace.is_empty() {
            return Err(StoreError::Invalid(
                "metadata.namespace: Required value".into(),
            ));
        }
        let mut inner = self.lock();
        let uid_n = inner.next_uid;
        inner.next_uid += 1;
        let name = if name.is_empty() {
            format!("{}{:05x}", meta_str(&obj, "generateName"), uid_n & 0xfffff)
        } else {
            name
        };
        let key = (cluster.to_string(), res.group, res.plural);
        let okey = (namespace.clone(), name.clone());
        if inner
            .objects
            .get(&key)
            .is_some_and(|m| m.contains_key(&okey))
        {
            return Err(StoreError::AlreadyExists {
                kind: res.plural.to_string(),
                group: res.group.to_string(),
                name,
            });
        }
        inner.rv += 1;
        let rv = inner.rv;
        normalize_type(&mut obj, res);
        let meta = ensure_object(&mut obj, "metadata");
        meta.insert("name".into(), json!(name));
        if res.namespaced {
            meta.insert("namespace".into(), json!(namespace));
        } else {
            meta.remove("namespace");
        }
        meta.remove("generateName");
        meta.insert(
            "uid".into(),
            json!(format!("00000000-0000-4000-8000-{uid_n:012x}")),
        );
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        meta.insert("generation".into(), json!(1));
        meta.entry("creationTimestamp")
            .or_insert_with(|| json!(now_rfc3339()));
        let obj = Arc::new(obj);
        inner
            .objects
            .entry(key.clone())
            .or_default()
            .insert(okey.clone(), obj.clone());
        self.record(&mut inner, cluster, res, EventType::Added, obj.clone());
        if res == EVENTS {
            self.expire_events(&mut inner, cluster, key, okey);
        }
        Ok(obj)
    }

    /// Keep at most [`EVENT_LIMIT`] Events in a cluster: the oldest go, with a DELETED watch
    /// event, as the API server's TTL removes them.
    fn expire_events(&self, inner: &mut Inner, cluster: &str, key: Key, added: ObjKey) {
        let order = inner.event_order.entry(cluster.to_string()).or_default();
        order.push_back(added);
        let stored = inner.objects.get(&key).map_or(0, BTreeMap::len);
        if order.len() > 2 * EVENT_LIMIT {
            // Events deleted through the API leave stale entries; drop them.
            let live = inner.objects.get(&key);
            let order = inner.event_order.entry(cluster.to_string()).or_default();
            order.retain(|k| live.is_some_and(|m| m.contains_key(k)));
        }
        let mut excess = stored.saturating_sub(EVENT_LIMIT);
        while excess > 0 {
            let Some(oldest) = inner
                .event_order
                .get_mut(cluster)
                .and_then(VecDeque::pop_front)
            else {
                break;
            };
            let Some(old) = inner.objects.get_mut(&key).and_then(|m| m.remove(&oldest)) else {
                continue;
            };
            excess -= 1;
            inner.rv += 1;
            let rv = inner.rv;
            let mut obj = (*old).clone();
            ensure_object(&mut obj, "metadata")
                .insert("resourceVersion".into(), json!(rv.to_string()));
            self.record(inner, cluster, EVENTS, EventType::Deleted, Arc::new(obj));
        }
    }

    /// How much the store holds (objects per type, retained watch history).
    pub fn stats(&self) -> StoreStats {
        let inner = self.lock();
        let mut objects: Vec<(String, String, usize)> = inner
            .objects
            .iter()
            .map(|((c, g, p), m)| {
                let plural = if g.is_empty() {
                    (*p).to_string()
                } else {
                    format!("{p}.{g}")
                };
                (c.clone(), plural, m.len())
            })
            .collect();
        objects.sort();
        StoreStats {
            objects,
            history: inner.history.len(),
            event_order: inner.event_order.values().map(VecDeque::len).sum(),
        }
    }

    /// Replace an object. With `check_rv`, a resourceVersion in `obj` that is not the
    /// stored one is a 409 Conflict (an absent one is accepted, as the API server does for
    /// updates that do not set it). `generation` bumps when anything but status/metadata
    /// changed. Status is kept from the stored object unless `write_status` is set.
    pub fn replace(
        &self,
        cluster: &str,
        res: ResourceType,
        mut obj: Value,
        write_status: bool,
    ) -> Result<Arc<Value>, StoreError> {
        let name = meta_str(&obj, "name").to_string();
        let namespace = ns_key(res, meta_str(&obj, "namespace"));
        let key = (cluster.to_string(), res.group, res.plural);
        let okey = (namespace, name.clone());
        let mut inner = self.lock();
        let Some(current) = inner.objects.get(&key).and_then(|m| m.get(&okey)).cloned() else {
            return Err(Self::not_found(res, &name));
        };
        let sent_rv = meta_str(&obj, "resourceVersion");
        if !sent_rv.is_empty() && sent_rv != meta_str(&current, "resourceVersion") {
            return Err(StoreError::Conflict {
                plural: res.plural.to_string(),
                group: res.group.to_string(),
                name,
            });
        }
        normalize_type(&mut obj, res);
        if !write_status
            && let Some(status) = current.get("status")
            && let Some(o) = obj.as_object_mut()
        {
            o.insert("status".into(), status.clone());
        }
        // Immutable metadata comes from the stored object.
        let cur_meta = current
            .get("metadata")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let spec_changed = !same_but_meta_status(&obj, &current);
        let generation = cur_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(1)
            + i64::from(spec_changed);
        if obj == *current {
            return Ok(current);
        }
        inner.rv += 1;
        let rv = inner.rv;
        let meta = ensure_object(&mut obj, "metadata");
        for field in ["uid", "creationTimestamp", "namespace", "name"] {
            if let Some(v) = cur_meta.get(field) {
                meta.insert(field.into(), v.clone());
            }
        }
        meta.insert("resourceVersion".into(), json!(rv.to_string()));
        meta.insert("generation".into(), json!(generation));
        let obj = Arc::new(obj);
        // Unchanged content apart from resourceVersion is still a write, as in Kubernetes.
        if let Some(m) = inner.objects.get_mut(&key) {
            m.insert(okey, obj.clone());
        }
        self.record(&mut inner, cluster, res, EventType::Modified, obj.clone());
        Ok(obj)
    }

    /// Atomically read-modify-write one object (for controllers and patches). The closure
    /// gets the current object; returning `Ok(false)` means "no change" and writes nothing.
    pub fn mutate<F>(
        &self,
        cluster: &str,
        res: ResourceType,
        namespace: &str,
        name: &str,
        write_status: bool,
        mut f: F,
    ) -> Result<Arc<Value>, StoreError>
    where
        F: FnMut(&mut Value) -> Result<bool, StoreError>,
    {
        // Retry on the (only theoretical here) race between get and replace.
        for _ in 0..5 {
            let Some(current) = self.get(cluster, res, namespace, name) else {
                return Err(Self::not_found(res, name));
            };
            let mut next = (*current).clone();
            if !f(&mut next)? {
                return Ok(current);
            }
            if let Some(meta) = next.get_mut("metadata").and_then(Value::as_object_mut) {
                meta.insert(
                    "resourceVersion".into(),
                    current["metadata"]["resourceVersion"].clone(),
                );
            }
            match self.replace(cluster, res, next, write_status) {
                Err(StoreError::Conflict { .. }) => continue,
                other => return other,
            }
        }
        Err(StoreError::Conflict {
            plural: res.plural.to_string(),
            group: res.group.to_string(),
            name: name.to_string(),
        })
    }

    pub fn delete(
        &self,
        cluster: &str,
        res: ResourceType,
        namespace: &str,
        name: &str,
    ) -> Result<Arc<Value>, StoreError> {
        let key = (cluster.to_string(), res.group, res.plural);
        let okey = (ns_key(res, namespace), name.to_string());
        let mut inner = self.lock();
        let Some(old) = inner.objects.get_mut(&key).and_then(|m| m.remove(&okey)) else {
            return Err(Self::not_found(res, name));
        };
        inner.rv += 1;
        let rv = inner.rv;
        let mut obj = (*old).clone();
        ensure_object(&mut obj, "metadata").insert("resourceVersion".into(), json!(rv.to_string()));
        let obj = Arc::new(obj);
        self.record(&mut inner, cluster, res, EventType::Deleted, obj.clone());
        Ok(obj)
    }

    fn record(
        &self,
        inner: &mut Inner,
        cluster: &str,
        res: ResourceType,
        event_type: EventType,
        object: Arc<Value>,
    ) {
        let ev = WatchEvent {
            rv: inner.rv,
            cluster: cluster.to_string(),
            resource: res,
            event_type,
            object,
        };
        if inner.history.len() >= inner.history_limit
            && let Some(old) = inner.history.pop_front()
        {
            inner.compacted_rv = old.rv;
        }
        inner.history.push_back(ev.clone());
        // No receivers is fine.
        let _ = self.events.send(ev);
    }

    /// Start a watch of one type from `from_rv` (exclusive): returns the retained events
    /// after it and a receiver for what follows. Subscribing happens under the lock so no
    /// event falls between backlog and live stream. A version older than what is retained
    /// is `Gone`. `from_rv == 0` means "from now" (after the caller's own list).
    pub fn watch(
        &self,
        cluster: &str,
        res: ResourceType,
        from_rv: u64,
    ) -> Result<(Vec<WatchEvent>, broadcast::Receiver<WatchEvent>), StoreError> {
        let inner = self.lock();
        if from_rv != 0 && from_rv < inner.compacted_rv {
            return Err(StoreError::Gone {
                requested: from_rv,
                oldest: inner.compacted_rv + 1,
            });
        }
        let rx = self.events.subscribe();
        let backlog = if from_rv == 0 {
            Vec::new()
        } else {
            inner
                .history
                .iter()
                .filter(|e| e.rv > from_rv && e.resource == res && e.cluster == cluster)
                .cloned()
                .collect()
        };
        Ok((backlog, rx))
    }

    /// Versions below this are compacted away: a list continued from one answers 410.
    pub fn compacted_rv(&self) -> u64 {
        self.lock().compacted_rv
    }

    /// Forget all retained history: every watch from an older version now gets 410 Gone.
    pub fn expire_history(&self) {
        let mut inner = self.lock();
        inner.history.clear();
        inner.compacted_rv = inner.rv;
    }

    /// End every open watch now (clients see the stream close and must re-watch).
    pub fn drop_watches(&self) {
        self.watch_epoch.send_modify(|e| *e += 1);
    }

    /// A receiver that changes when watches must drop.
    pub fn watch_epoch(&self) -> tokio::sync::watch::Receiver<u64> {
        self.watch_epoch.subscribe()
    }

    /// Every (cluster) name that holds objects.
    pub fn clusters(&self) -> Vec<ClusterName> {
        let inner = self.lock();
        let mut out: Vec<_> = inner.objects.keys().map(|(c, _, _)| c.clone()).collect();
        out.sort();
        out.dedup();
        out
    }
}

fn ns_key(res: ResourceType, namespace: &str) -> String {
    if res.namespaced {
        namespace.to_string()
    } else {
        String::new()
    }
}

fn normalize_type(obj: &mut Value, res: ResourceType) {
    if let Some(o) = obj.as_object_mut() {
        o.insert("apiVersion".into(), json!(res.api_version()));
        o.insert("kind".into(), json!(res.kind));
    }
}

fn ensure_object<'a>(obj: &'a mut Value, field: &str) -> &'a mut serde_json::Map<String, Value> {
    if !obj.is_object() {
        *obj = json!({});
    }
    let Value::Object(map) = obj else {
        unreachable!("just made an object")
    };
    let entry = map.entry(field.to_string()).or_insert_with(|| json!({}));
    if !entry.is_object() {
        *entry = json!({});
    }
    match entry {
        Value::Object(m) => m,
        _ => unreachable!("just made an object"),
    }
}

/// Whether two objects are equal apart from `metadata` and `status`, compared in place (a
/// write to a large object must not copy it twice just to ask).
fn same_but_meta_status(a: &Value, b: &Value) -> bool {
    match (a.as_object(), b.as_object()) {
        (Some(a), Some(b)) => {
            let rest = |k: &&String| k.as_str() != "metadata" && k.as_str() != "status";
            a.keys().filter(rest).count() == b.keys().filter(rest).count()
                && a.iter()
                    .filter(|(k, _)| rest(k))
                    .all(|(k, v)| b.get(k) == Some(v))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deploy(name: &str) -> Value {
        json!({"metadata": {"name": name, "namespace": "shop"}, "spec": {"replicas": 1}})
    }

    #[test]
    fn create_get_conflict_and_generation() {
        let s = Store::default();
        let a = s.create("in-cluster", DEPLOYMENTS, deploy("web")).unwrap();
        assert_eq!(a["metadata"]["generation"], 1);
        assert!(matches!(
            s.create("in-cluster", DEPLOYMENTS, deploy("web")),
            Err(StoreError::AlreadyExists { .. })
        ));
        let mut stale = (*a).clone();
        stale["spec"]["replicas"] = json!(2);
        let b = s
            .replace("in-cluster", DEPLOYMENTS, stale.clone(), false)
            .unwrap();
        assert_eq!(b["metadata"]["generation"], 2);
        assert!(matches!(
            s.replace("in-cluster", DEPLOYMENTS, stale, false),
            Err(StoreError::Conflict { .. })
        ));
    }

    #[test]
    fn watch_backlog_and_gone() {
        let s = Store::new(2);
        let (_, rv0) = s.list("c", DEPLOYMENTS, None);
        s.create("c", DEPLOYMENTS, deploy("a")).unwrap();
        let (backlog, _rx) = s.watch("c", DEPLOYMENTS, rv0).unwrap();
        assert_eq!(backlog.len(), 1);
        s.create("c", DEPLOYMENTS, deploy("b")).unwrap();
        s.create("c", DEPLOYMENTS, deploy("d")).unwrap();
        assert!(matches!(
            s.watch("c", DEPLOYMENTS, rv0),
            Err(StoreError::Gone { .. })
        ));
        s.expire_history();
        let rv = s.resource_version();
        assert!(s.watch("c", DEPLOYMENTS, rv).is_ok());
        assert!(matches!(
            s.watch("c", DEPLOYMENTS, rv - 1),
            Err(StoreError::Gone { .. })
        ));
    }

    /// Pages followed from the last key of each, in one namespace and across all, give
    /// exactly the whole list in order, with the right count left after each page.
    #[test]
    fn pages_walk_the_list_in_order_and_stop_at_the_namespace() {
        let s = Store::default();
        for (ns, name) in [
            ("a", "x"),
            ("shop", "b"),
            ("shop", "a"),
            ("shop", "c"),
            ("z", "y"),
        ] {
            let mut d = deploy(name);
            d["metadata"]["namespace"] = json!(ns);
            s.create("c", DEPLOYMENTS, d).unwrap();
        }
        let names = |v: &[Arc<Value>]| -> Vec<String> {
            v.iter()
                .map(|o| format!("{}/{}", o["metadata"]["namespace"], o["metadata"]["name"]))
                .collect()
        };
        for ns in [Some("shop"), None] {
            let (whole, _) = s.list("c", DEPLOYMENTS, ns);
            let mut seen = Vec::new();
            let mut after: Option<(String, String)> = None;
            loop {
                let at = after.as_ref().map(|(n, m)| (n.as_str(), m.as_str()));
                let (page, rest, _) = s.list_page("c", DEPLOYMENTS, ns, at, 2);
                seen.extend(page.iter().cloned());
                assert_eq!(rest, whole.len() - seen.len(), "{ns:?}");
                let Some(last) = page.last().filter(|_| rest > 0) else {
                    break;
                };
                let key = |f: &str| last["metadata"][f].as_str().unwrap_or("").to_string();
                after = Some((key("namespace"), key("name")));
            }
            assert_eq!(names(&seen), names(&whole), "{ns:?}");
        }
        assert_eq!(
            s.list_page("c", DEPLOYMENTS, Some("none"), None, 2).0.len(),
            0
        );
    }

    #[test]
    fn namespace_list_and_delete() {
        let s = Store::default();
        s.create("c", DEPLOYMENTS, deploy("a")).unwrap();
        let mut other = deploy("b");
        other["metadata"]["namespace"] = json!("other");
        s.create("c", DEPLOYMENTS, other).unwrap();
        assert_eq!(s.list("c", DEPLOYMENTS, Some("shop")).0.len(), 1);
        assert_eq!(s.list("c", DEPLOYMENTS, None).0.len(), 2);
        s.delete("c", DEPLOYMENTS, "shop", "a").unwrap();
        assert!(s.get("c", DEPLOYMENTS, "shop", "a").is_none());
    }
}
