//! Seeding the store with the estate as it stands at start (namespaces, AppProjects, the live
//! objects of every app at its deployed build, Applications with history and status), and
//! `apply_bump`, the one way CI changes Git.

use super::render::{self, FAIL_ANNOTATION, INSTANCE_LABEL};
use super::{AppDef, AppKind, Estate, ImageBump};
use crate::controller::compare;
use crate::store::{APPLICATIONS, APPPROJECTS, NAMESPACES};
use crate::{ARGOCD_NAMESPACE, IN_CLUSTER, World};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

const OPERATORS: &[&str] = &["alice", "priya", "marc", "admin"];

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Fill the store with the estate at start. Fast enough for 10,000 apps: no Git process per
/// app (commits come from the repository's creation record).
pub fn seed_store(world: &World) -> Result<(), String> {
    let estate = &world.estate;
    let store = &world.store;
    let url = world.repo.url();
    let err = |e: crate::store::StoreError| e.to_string();

    let mut namespaces: BTreeSet<(String, String)> = BTreeSet::new();
    namespaces.insert((IN_CLUSTER.into(), ARGOCD_NAMESPACE.into()));
    for c in &estate.clusters {
        namespaces.insert((c.clone(), "default".into()));
        namespaces.insert((c.clone(), "kube-system".into()));
    }
    for a in &estate.apps {
        namespaces.insert((a.cluster.clone(), a.namespace.clone()));
    }
    for (cluster, ns) in &namespaces {
        store
            .create(
                cluster,
                NAMESPACES,
                json!({"metadata": {"name": ns, "labels": {"kubernetes.io/metadata.name": ns}},
                       "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}),
            )
            .map_err(err)?;
    }
    for p in &estate.projects {
        store
            .create(
                IN_CLUSTER,
                APPPROJECTS,
                json!({
                    "metadata": {"name": p.name, "namespace": ARGOCD_NAMESPACE},
                    "spec": {
                        "description": p.description,
                        "sourceRepos": ["*"],
                        "destinations": [{"server": "*", "namespace": "*", "name": "*"}],
                        "clusterResourceWhitelist": [{"group": "*", "kind": "*"}],
                        "syncWindows": p.windows,
                    },
                }),
            )
            .map_err(err)?;
    }

    let mut heads: HashMap<String, (String, i64)> = HashMap::new();
    for b in estate.branches() {
        let sha = world.repo.resolve(&b)?;
        let time = world.repo.commit_time(&sha)?;
        heads.insert(b.clone(), (sha, time));
    }
    let parents: HashMap<&str, &str> = estate
        .apps
        .iter()
        .filter(|a| a.kind == AppKind::Parent)
        .flat_map(|p| {
            p.children
                .iter()
                .map(move |c| (c.as_str(), p.name.as_str()))
        })
        .collect();
    let now = Utc::now();
    // Children before parents, so a parent's comparison sees its children live.
    let mut order: Vec<&AppDef> = estate
        .apps
        .iter()
        .filter(|a| a.kind != AppKind::Parent)
        .collect();
    order.extend(estate.apps.iter().filter(|a| a.kind == AppKind::Parent));
    for app in order {
        let deployed = app.deployed_build();
        let mut live_objects: Vec<Option<Arc<Value>>> = Vec::new();
        let desired = desired_at(estate, app, app.git_build, &url);
        if app.kind != AppKind::Parent {
            let live_desired = desired_at(estate, app, deployed, &url);
            let mut created: HashMap<(String, String), Arc<Value>> = HashMap::new();
            for obj in live_desired {
                let Some(res) = compare::resource_type_of(&obj) else {
                    continue;
                };
                let key = (
                    res.kind.to_string(),
                    compare::meta(&obj, "name").to_string(),
                );
                let obj = with_live_status(obj, app);
                let stored = store.create(&app.cluster, res, obj).map_err(err)?;
                created.insert(key, stored);
            }
            for d in &desired {
                let key = (
                    d["kind"].as_str().unwrap_or("").to_string(),
                    compare::meta(d, "name").to_string(),
                );
                live_objects.push(created.get(&key).cloned());
            }
        } else {
            for d in &desired {
                live_objects.push(store.get(
                    IN_CLUSTER,
                    APPLICATIONS,
                    ARGOCD_NAMESPACE,
                    compare::meta(d, "name"),
                ));
            }
        }
        let cmp = compare::compare(&desired, &live_objects, &[], &|_| Vec::new());
        let head = heads.get(&app.branch).cloned().unwrap_or_default();
        let (application, past_events) = application_object(
            world,
            app,
            parents.get(app.name.as_str()).copied(),
            &url,
            &head,
            &cmp,
            now,
        )?;
        let stored = store
            .create(IN_CLUSTER, APPLICATIONS, application)
            .map_err(err)?;
        for (at, kind, reason, message) in past_events {
            crate::events::emit_at(
                store,
                IN_CLUSTER,
                &stored,
                (kind, reason, &message),
                "argocd-application-controller",
                at,
            );
        }
    }
    Ok(())
}

/// Desired objects of an app at a build, as the controller will see them: namespace
/// defaulted and the tracking label set.
fn desired_at(estate: &Estate, app: &AppDef, build: usize, url: &str) -> Vec<Value> {
    render::app_files(estate, app, build, url)
        .into_iter()
        .flat_map(|(_, objs)| objs)
        .map(|o| crate::controller::prepare_desired(o, &app.namespace, &app.name))
        .collect()
}

/// A live object as the API server and controllers would have left it.
fn with_live_status(mut obj: Value, app: &AppDef) -> Value {
    match obj["kind"].as_str() {
        Some("Deployment") => {
            let replicas = obj["spec"]["replicas"].as_i64().unwrap_or(1);
            let name = compare::meta(&obj, "name").to_string();
            let rs = format!(
                "{name}-{:010x}",
                super::hash(0, &format!("{}{}", app.name, obj["spec"]["template"]))
                    & 0xff_ffff_ffff
            );
            obj["spec"]["progressDeadlineSeconds"] = json!(600);
            obj["metadata"]["annotations"]["deployment.kubernetes.io/revision"] = json!("1");
            let broken =
                obj["spec"]["template"]["metadata"]["annotations"][FAIL_ANNOTATION].is_string();
            obj["status"] = if broken {
                json!({
                    "observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
                    "readyReplicas": 0, "availableReplicas": 0, "unavailableReplicas": replicas,
                    "conditions": [
                        {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                         "message": "Deployment does not have minimum availability."},
                        {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded",
                         "message": format!("ReplicaSet \"{rs}\" has timed out progressing.")},
                    ],
                })
            } else {
                json!({
                    "observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
                    "readyReplicas": replicas, "availableReplicas": replicas,
                    "conditions": [
                        {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable",
                         "message": "Deployment has minimum availability."},
                        {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable",
                         "message": format!("ReplicaSet \"{rs}\" has successfully progressed.")},
                    ],
                })
            };
        }
        Some("Service") => {
            let h = super::hash(0, &format!("{}/{}", app.name, compare::meta(&obj, "name")));
            obj["spec"]["type"] = json!("ClusterIP");
            obj["spec"]["clusterIP"] =
                json!(format!("10.96.{}.{}", (h >> 8) % 250 + 1, h % 250 + 2));
            obj["status"] = json!({"loadBalancer": {}});
        }
        _ => {}
    }
    obj
}

#[allow(clippy::too_many_arguments)]
fn application_object(
    world: &World,
    app: &AppDef,
    parent: Option<&str>,
    url: &str,
    head: &(String, i64),
    cmp: &compare::Comparison,
    now: DateTime<Utc>,
) -> Result<(Value, Vec<PastEvent>), String> {
    let estate = &world.estate;
    let mut obj = render::application(app, url);
    if app.cluster != IN_CLUSTER {
        obj["spec"]["destination"]["server"] =
            json!(format!("{}/clusters/{}", world.base_url, app.cluster));
    }
    if let Some(p) = parent {
        obj["metadata"]["labels"][INSTANCE_LABEL] = json!(p);
        if let Some(pd) = estate.app(p)
            && pd.deployed_build() > pd.first_build()
        {
            obj["metadata"]["annotations"]["notifications.argoproj.io/subscribe.on-sync-failed.slack"] =
                json!("deploys");
        }
    }
    let source = obj["spec"]["source"].clone();
    let h = super::hash(estate.seed, &app.name);
    let first_id = (h % 40) as i64;
    let mut history = Vec::new();
    let deployed = app.deployed_build();
    let mut last_deploy: Option<(String, DateTime<Utc>, DateTime<Utc>, Value)> = None;
    let target = head.0.as_str();
    let mut past_events: Vec<PastEvent> = Vec::new();
    // Weeks of past deployments first (estate::history), with their aftermath.
    let past = super::history::past_builds(estate, app, super::render::start_of_history());
    let mut next_id = first_id;
    let mut previous: Option<String> = None;
    for (k, b) in past.iter().enumerate() {
        let Some(commit) = world.repo.past_commit(&app.name, k).cloned() else {
            return Err(format!(
                "no commit recorded for {} past build {k}",
                app.name
            ));
        };
        let committed = DateTime::<Utc>::from_timestamp(commit.time, 0).unwrap_or(b.time);
        let jitter = (super::hash(estate.seed, &format!("{}:past{k}", app.name)) % 170) as i64;
        let started = if app.auto_sync {
            committed + Duration::seconds(20 + jitter)
        } else {
            committed + Duration::hours(2) + Duration::minutes(jitter)
        };
        let finished = started + Duration::seconds(4 + jitter % 30);
        let operator = OPERATORS[(h as usize + k) % OPERATORS.len()];
        let initiated = if app.auto_sync {
            json!({"automated": true})
        } else {
            json!({"username": operator})
        };
        history.push(json!({
            "id": next_id,
            "revision": commit.sha,
            "source": source,
            "deployStartedAt": ts(started),
            "deployedAt": ts(finished),
            "initiatedBy": initiated,
        }));
        next_id += 1;
        match super::history::aftermath(estate, app, k, past.len()) {
            super::history::Aftermath::Fine => {}
            super::history::Aftermath::RolledBack(m) => {
                if let Some(prev) = &previous {
                    let at = finished + Duration::minutes(m);
                    history.push(json!({
                        "id": next_id,
                        "revision": prev,
                        "source": source,
                        "deployStartedAt": ts(at - Duration::seconds(6)),
                        "deployedAt": ts(at),
                        "initiatedBy": {"username": operator},
                    }));
                    past_events.push((
                        at - Duration::seconds(6),
                        "Normal",
                        "OperationStarted",
                        format!("{operator} initiated rollback to {}", next_id - 2),
                    ));
                    next_id += 1;
                }
            }
            super::history::Aftermath::Degraded(after, restore) => {
                let at = finished + Duration::minutes(after);
                past_events.push((
                    at,
                    "Normal",
                    "ResourceUpdated",
                    "Updated health status: Healthy -> Degraded".into(),
                ));
                past_events.push((
                    at + Duration::minutes(restore),
                    "Normal",
                    "ResourceUpdated",
                    "Updated health status: Degraded -> Healthy".into(),
                ));
            }
            super::history::Aftermath::SyncFailed(after) => {
                past_events.push((
                    finished + Duration::minutes(after),
                    "Warning",
                    "OperationCompleted",
                    format!(
                        "Sync operation to {} failed: one or more objects failed to apply, \
                         reason: admission webhook denied the request",
                        commit.sha
                    ),
                ));
            }
        }
        previous = Some(commit.sha.clone());
    }
    let first_id = next_id;
    for (i, build) in (app.first_build()..=deployed).enumerate() {
        let mut commit = world
            .repo
            .build_commit(&app.name, build)
            .cloned()
            .ok_or_else(|| format!("no commit recorded for {} build {build}", app.name))?;
        // An operator syncs a manual app at the branch's head of the day: when nothing of
        // it changed since, the last deployment is of the head commit.
        if build == deployed && !app.auto_sync && !app.pending {
            commit = crate::gitrepo::BuildCommit {
                sha: head.0.clone(),
                time: head.1,
            };
        }
        let committed = DateTime::<Utc>::from_timestamp(commit.time, 0).unwrap_or(now);
        let jitter = (super::hash(estate.seed, &format!("{}:{build}", app.name)) % 170) as i64;
        let started = if app.auto_sync {
            committed + Duration::seconds(20 + jitter)
        } else {
            (committed + Duration::hours(3) + Duration::minutes(jitter))
                .min(now - Duration::minutes(30 + jitter))
        };
        let finished = started + Duration::seconds(4 + jitter % 30);
        let initiated = if app.auto_sync {
            json!({"automated": true})
        } else {
            json!({"username": OPERATORS[(h as usize + i) % OPERATORS.len()]})
        };
        history.push(json!({
            "id": first_id + i as i64,
            "revision": commit.sha,
            "source": source,
            "deployStartedAt": ts(started),
            "deployedAt": ts(finished),
            "initiatedBy": initiated,
        }));
        last_deploy = Some((commit.sha.clone(), started, finished, initiated));
    }
    let limit = 10;
    if history.len() > limit {
        history.drain(..history.len() - limit);
    }
    let mut status = json!({
        "sync": {
            "status": if cmp.synced { "Synced" } else { "OutOfSync" },
            "revision": target,
            "comparedTo": {"source": source, "destination": obj["spec"]["destination"]},
        },
        "health": {"status": cmp.health},
        "resources": cmp.resources,
        "summary": {"images": cmp.images},
        "history": history,
        "reconciledAt": ts(now),
        "sourceType": "Directory",
        "controllerNamespace": ARGOCD_NAMESPACE,
    });
    if let Some(m) = &cmp.health_message {
        status["health"]["message"] = json!(m);
    }
    if let Some((sha, started, finished, initiated)) = last_deploy {
        let mut operation = json!({
            "initiatedBy": initiated,
            "sync": {"revision": sha, "syncStrategy": {"hook": {}}},
        });
        if app.auto_sync {
            operation["sync"]["prune"] = json!(app.prune);
            operation["retry"] = json!({"limit": 5});
        }
        let results: Vec<Value> = cmp
            .resources
            .iter()
            .filter(|r| r["requiresPruning"] != json!(true))
            .map(|r| {
                let mut x = r.clone();
                if let Some(o) = x.as_object_mut() {
                    o.remove("health");
                    o.remove("requiresPruning");
                }
                x["status"] = json!("Synced");
                x["message"] = json!(format!("{} configured", kubectl_name(r)));
                x["hookPhase"] = json!("Running");
                x["syncPhase"] = json!("Sync");
                x
            })
            .collect();
        status["operationState"] = json!({
            "operation": operation,
            "phase": "Succeeded",
            "message": "successfully synced (all tasks run)",
            "syncResult": {"resources": results, "revision": sha, "source": source},
            "startedAt": ts(started),
            "finishedAt": ts(finished),
        });
    }
    obj["status"] = status;
    Ok((obj, past_events))
}

/// An Application event of the seeded past: (time, type, reason, message).
type PastEvent = (DateTime<Utc>, &'static str, &'static str, String);

/// `deployment.apps/web`, `service/web`: how kubectl and Argo CD name a resource.
pub fn kubectl_name(r: &Value) -> String {
    let kind = r["kind"].as_str().unwrap_or("").to_ascii_lowercase();
    let group = r["group"].as_str().unwrap_or("");
    let name = r["name"].as_str().unwrap_or("");
    if group.is_empty() {
        format!("{kind}/{name}")
    } else {
        format!("{kind}.{group}/{name}")
    }
}

/// Commit a new image tag for a service in one environment (on the environment's branch),
/// as CI does; returns the new commit sha and wakes the Argo CD controller like a webhook.
/// A bump also drops the sandbox's failure annotation: the new image is the fix.
pub fn apply_bump(world: &World, bump: &ImageBump, author: &str) -> Result<String, String> {
    apply_bump_with(world, bump, author, "")
}

/// [`apply_bump`] with `trailers` appended to the commit message after a blank line (the
/// run that built the image and its source commit).
pub fn apply_bump_with(
    world: &World,
    bump: &ImageBump,
    author: &str,
    trailers: &str,
) -> Result<String, String> {
    let estate = &world.estate;
    let app = estate
        .app_of(&bump.service, &bump.environment)
        .ok_or_else(|| {
            format!(
                "no application for service {} in environment {} (services: {})",
                bump.service,
                bump.environment,
                estate.services().join(", ")
            )
        })?;
    let tag = bump.tag.trim();
    if tag.is_empty() || tag.contains(|c: char| c.is_whitespace() || c == ':' || c == '/') {
        return Err(format!("invalid image tag '{}'", bump.tag));
    }
    let repo = &world.repo;
    let mut changes: Vec<(String, String)> = Vec::new();
    for path in repo.list_files(&app.branch, &app.path)? {
        if !(path.ends_with(".yaml") || path.ends_with(".yml")) {
            continue;
        }
        let Some(text) = repo.read_file(&app.branch, &path)? else {
            continue;
        };
        let mut docs: Vec<Value> =
            serde_saphyr::from_multiple(&text).map_err(|e| format!("{path}: {e}"))?;
        let mut changed = false;
        for d in docs.iter_mut() {
            if d["kind"] != "Deployment" {
                continue;
            }
            let wname = compare::meta(d, "name").to_string();
            let whole_service = bump.service == app.service;
            if !whole_service && wname != bump.service {
                continue;
            }
            if let Some(cs) = d["spec"]["template"]["spec"]["containers"].as_array_mut() {
                for c in cs {
                    if let Some(image) = c["image"].as_str() {
                        let (repo_part, old) = render::split_image(image);
                        if old != tag {
                            c["image"] = json!(format!("{repo_part}:{tag}"));
                            changed = true;
                        }
                    }
                }
            }
            if let Some(a) = d["spec"]["template"]["metadata"]
                .get_mut("annotations")
                .and_then(Value::as_object_mut)
                && a.remove(FAIL_ANNOTATION).is_some()
            {
                changed = true;
                if a.is_empty()
                    && let Some(m) = d["spec"]["template"]["metadata"].as_object_mut()
                {
                    m.remove("annotations");
                }
            }
        }
        if changed {
            changes.push((path, render::to_yaml(&docs)));
        }
    }
    if let Some(values) = &app.values_file
        && let Some(text) = repo.read_file(&app.branch, values)?
    {
        let new: String = text
            .lines()
            .map(|l| match l.split_once("tag: ") {
                Some((indent, _)) if indent.trim().is_empty() => format!("{indent}tag: {tag}\n"),
                _ => format!("{l}\n"),
            })
            .collect();
        if new != text {
            changes.push((values.clone(), new));
        }
    }
    if changes.is_empty() {
        return repo.resolve(&app.branch);
    }
    let mut message = format!("ci: bump {} to {tag} in {}", bump.service, bump.environment);
    if !trailers.is_empty() {
        message.push_str("\n\n");
        message.push_str(trailers);
    }
    let sha = repo.commit_files(&app.branch, &changes, &message, author)?;
    world.refresh.notify_waiters();
    world.refresh.notify_one();
    Ok(sha)
}
