//! The estate file format and its expansion into apps. Unknown fields are refused so a typo
//! in a hand-written estate is reported instead of silently ignored.

use super::{
    AppDef, AppKind, CiAction, CiInput, EnvDef, Estate, GithubDef, JenkinsJobDef, ProjectDef,
    SyncMode, TagStyle, WorkflowDef, WorkloadDef, default_ci, hash,
};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EstateFile {
    name: String,
    #[serde(default)]
    description: String,
    github: GithubFile,
    #[serde(default = "default_registry")]
    registry: String,
    #[serde(default)]
    tag_style: TagStyle,
    #[serde(default)]
    clusters: Vec<String>,
    environments: Vec<EnvFile>,
    /// App name pattern (`{service}`, `{env}`); default `{service}-{env}`.
    #[serde(default = "default_app_name")]
    app_name: String,
    /// Manifest path pattern; default `apps/{service}/{env}`.
    #[serde(default = "default_path")]
    path: String,
    #[serde(default)]
    services: Vec<ServiceFile>,
    #[serde(default)]
    infra: Vec<InfraFile>,
    #[serde(default)]
    parent: Option<ParentFile>,
    #[serde(default)]
    projects: Vec<ProjectFile>,
    #[serde(default)]
    workflows: Option<Vec<WorkflowFile>>,
    #[serde(default)]
    jenkins: Option<Vec<JenkinsFile>>,
    #[serde(default)]
    faults: FaultsFile,
    /// How many builds each service has had (the newest is in dev).
    #[serde(default = "default_builds")]
    builds: usize,
}

fn default_registry() -> String {
    "ghcr.io/acme".into()
}
fn default_app_name() -> String {
    "{service}-{env}".into()
}
fn default_path() -> String {
    "apps/{service}/{env}".into()
}
fn default_builds() -> usize {
    8
}
fn default_replicas() -> u32 {
    2
}
fn default_port() -> u16 {
    8080
}
fn default_cluster() -> String {
    crate::IN_CLUSTER.into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct GithubFile {
    owner: String,
    repo: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EnvFile {
    name: String,
    branch: String,
    #[serde(default = "default_cluster")]
    cluster: String,
    namespace: String,
    #[serde(default)]
    approval: Option<String>,
    #[serde(default)]
    sync: SyncMode,
    #[serde(default)]
    project: Option<String>,
    /// App name suffix when it differs from the environment name (`production`).
    #[serde(default)]
    suffix: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServiceFile {
    name: String,
    #[serde(default = "default_replicas")]
    replicas: u32,
    #[serde(default = "default_port")]
    port: u16,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    workloads: Vec<WorkloadFile>,
    /// Environments (default: all).
    #[serde(default)]
    environments: Vec<String>,
    /// Per-environment replica counts.
    #[serde(default)]
    replicas_by_env: BTreeMap<String, u32>,
    /// `helm/<service>/values-{env}.yaml` kept beside rendered manifests.
    #[serde(default)]
    values_file: Option<String>,
    /// App name when it differs from the pattern (`wanderlust`, `cert-manager`).
    #[serde(default)]
    app: Option<String>,
    /// Destination namespace when it differs from the environment's.
    #[serde(default)]
    namespace: Option<String>,
    /// Sync wave of the service's Applications in the app-of-apps.
    #[serde(default)]
    wave: Option<i32>,
    /// Sync policy when it differs from the environment's.
    #[serde(default)]
    sync: Option<SyncMode>,
    /// StatefulSets, DaemonSets and Jobs in every environment of the service.
    #[serde(default)]
    extras: Vec<super::ExtraDef>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkloadFile {
    name: String,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    replicas: Option<u32>,
    #[serde(default)]
    port: Option<u16>,
    /// Sync wave of this Deployment inside its app.
    #[serde(default)]
    wave: Option<i32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InfraFile {
    name: String,
    /// env -> namespace
    namespaces: BTreeMap<String, String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default = "default_brokers")]
    brokers: u32,
    #[serde(default)]
    topics: Vec<String>,
    #[serde(default)]
    prune: bool,
    #[serde(default)]
    self_heal: bool,
    #[serde(default = "default_broker_image")]
    image: String,
    #[serde(default)]
    wave: Option<i32>,
}

fn default_brokers() -> u32 {
    1
}
fn default_broker_image() -> String {
    "docker.io/bitnami/kafka".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ParentFile {
    name: String,
    #[serde(default = "default_parent_path")]
    path: String,
    #[serde(default = "default_parent_env")]
    environment: String,
}

fn default_parent_path() -> String {
    "argocd/apps".into()
}
fn default_parent_env() -> String {
    "prod".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProjectFile {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    windows: Vec<WindowFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowFile {
    kind: String,
    schedule: String,
    duration: String,
    #[serde(default)]
    applications: Vec<String>,
    #[serde(default)]
    namespaces: Vec<String>,
    #[serde(default)]
    clusters: Vec<String>,
    #[serde(default)]
    manual_sync: bool,
    #[serde(default)]
    time_zone: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkflowFile {
    file: String,
    name: String,
    action: CiAction,
    #[serde(default)]
    inputs: Vec<CiInput>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JenkinsFile {
    name: String,
    action: CiAction,
    #[serde(default)]
    parameters: Vec<CiInput>,
    /// Downstream job a successful build triggers with the tags it built.
    #[serde(default)]
    trigger: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultsFile {
    /// Apps whose Git moved past what runs (manual ones wait, auto ones roll out at start).
    #[serde(default)]
    pending: Vec<String>,
    /// app name -> ImagePullBackOff | CrashLoopBackOff
    #[serde(default)]
    broken: BTreeMap<String, String>,
    /// Services whose CI builds fail.
    #[serde(default)]
    failing_builds: Vec<String>,
    /// Pending apps whose change is already proven: Git holds the build the environment
    /// before it runs (its CI run succeeded; that environment runs it Healthy).
    #[serde(default)]
    promoted: Vec<String>,
    /// Pending service apps whose deployed build has a resource marked `Prune=confirm` that
    /// Git's newest build dropped (see `AppDef::prune_confirm`).
    #[serde(default)]
    prune_confirm: Vec<String>,
}

fn fill(pattern: &str, service: &str, env: &str) -> String {
    pattern.replace("{service}", service).replace("{env}", env)
}

pub(super) fn parse(text: &str, seed: u64) -> Result<Estate, String> {
    let f: EstateFile = serde_saphyr::from_str(text).map_err(|e| e.to_string())?;
    if f.environments.is_empty() {
        return Err("an estate needs at least one environment".into());
    }
    let builds = f.builds.max(f.environments.len() + 4);
    let environments: Vec<EnvDef> = f
        .environments
        .iter()
        .map(|e| EnvDef {
            name: e.name.clone(),
            branch: e.branch.clone(),
            cluster: e.cluster.clone(),
            namespace: e.namespace.clone(),
            approval: e.approval.clone().unwrap_or_else(|| {
                if e.sync == SyncMode::Manual {
                    "required".into()
                } else {
                    "none".into()
                }
            }),
            sync: e.sync,
            project: e.project.clone().unwrap_or_else(|| "default".into()),
        })
        .collect();
    let n_env = environments.len();
    let mut apps = Vec::new();
    for s in &f.services {
        if let Some(x) = s
            .extras
            .iter()
            .find(|x| !matches!(x.kind.as_str(), "StatefulSet" | "DaemonSet" | "Job"))
        {
            return Err(format!(
                "service {}: extra {}: kind {:?} is not StatefulSet, DaemonSet or Job",
                s.name, x.name, x.kind
            ));
        }
        let workloads: Vec<WorkloadDef> = if s.workloads.is_empty() {
            vec![WorkloadDef {
                name: s.name.clone(),
                image: format!("{}/{}", f.registry, s.name),
                file: "deployment.yaml".into(),
                replicas: s.replicas,
                port: s.port,
                wave: None,
            }]
        } else {
            s.workloads
                .iter()
                .map(|w| WorkloadDef {
                    name: w.name.clone(),
                    image: match &w.image {
                        Some(i) if i.contains('/') => i.clone(),
                        Some(i) => format!("{}/{}", f.registry, i),
                        None => format!("{}/{}", f.registry, w.name),
                    },
                    file: w.file.clone().unwrap_or_else(|| format!("{}.yaml", w.name)),
                    replicas: w.replicas.unwrap_or(s.replicas),
                    port: w.port.unwrap_or(s.port),
                    wave: w.wave,
                })
                .collect()
        };
        for (rank, (env, ef)) in environments.iter().zip(&f.environments).enumerate() {
            if !s.environments.is_empty() && !s.environments.contains(&env.name) {
                continue;
            }
            let suffix = ef.suffix.clone().unwrap_or_else(|| env.name.clone());
            let name = match &s.app {
                Some(a) => fill(a, &s.name, &suffix),
                None => fill(&f.app_name, &s.name, &suffix),
            };
            let sync = s.sync.unwrap_or(env.sync);
            let mut wl = workloads.clone();
            if let Some(r) = s.replicas_by_env.get(&env.name) {
                for w in &mut wl {
                    w.replicas = *r;
                }
            }
            let git_build = builds - (n_env - 1 - rank);
            let versions = 2 + (hash(seed, &name) % 3) as usize;
            apps.push(AppDef {
                name: name.clone(),
                service: s.name.clone(),
                environment: env.name.clone(),
                kind: AppKind::Service,
                cluster: env.cluster.clone(),
                namespace: fill(
                    s.namespace.as_deref().unwrap_or(&env.namespace),
                    &s.name,
                    &env.name,
                ),
                branch: env.branch.clone(),
                path: fill(s.path.as_deref().unwrap_or(&f.path), &s.name, &env.name),
                project: env.project.clone(),
                auto_sync: sync != SyncMode::Manual,
                self_heal: sync == SyncMode::SelfHeal,
                prune: sync != SyncMode::Manual,
                with_service: s.workloads.is_empty(),
                workloads: wl,
                topics: vec![],
                values_file: s
                    .values_file
                    .as_deref()
                    .map(|v| fill(v, &s.name, &env.name)),
                children: vec![],
                git_build,
                versions,
                pending: false,
                fault: None,
                prune_confirm: false,
                wave: s.wave,
                extras: s.extras.clone(),
            });
        }
    }
    for i in &f.infra {
        for env in &environments {
            let Some(ns) = i.namespaces.get(&env.name) else {
                continue;
            };
            let name = fill(&f.app_name, &i.name, &env.name);
            let versions = 2 + (hash(seed, &name) % 2) as usize;
            apps.push(AppDef {
                name: name.clone(),
                service: i.name.clone(),
                environment: env.name.clone(),
                kind: AppKind::Infra,
                cluster: env.cluster.clone(),
                namespace: ns.clone(),
                branch: env.branch.clone(),
                path: fill(
                    i.path.as_deref().unwrap_or("infra/{service}/{env}"),
                    &i.name,
                    &env.name,
                ),
                project: "infrastructure".into(),
                auto_sync: true,
                self_heal: i.self_heal,
                prune: i.prune,
                workloads: vec![WorkloadDef {
                    name: format!("{}-broker", i.name),
                    image: i.image.clone(),
                    file: "broker.yaml".into(),
                    replicas: if env.sync == SyncMode::Manual {
                        i.brokers.max(2)
                    } else {
                        i.brokers
                    },
                    port: 9092,
                    wave: None,
                }],
                with_service: true,
                topics: i.topics.clone(),
                values_file: None,
                children: vec![],
                git_build: builds,
                versions,
                pending: false,
                fault: None,
                prune_confirm: false,
                wave: i.wave,
                extras: vec![],
            });
        }
    }
    if let Some(p) = &f.parent {
        let children: Vec<String> = apps.iter().map(|a| a.name.clone()).collect();
        apps.push(AppDef {
            name: p.name.clone(),
            service: p.name.clone(),
            environment: p.environment.clone(),
            kind: AppKind::Parent,
            cluster: crate::IN_CLUSTER.into(),
            namespace: crate::ARGOCD_NAMESPACE.into(),
            branch: "main".into(),
            path: p.path.clone(),
            project: "default".into(),
            // The root app syncs by hand, as many teams run it: an auto-syncing parent
            // would restore a child's auto-sync right after an operator turned it off to
            // roll back (Argo CD re-applies the child's spec from Git).
            auto_sync: false,
            self_heal: false,
            prune: false,
            workloads: vec![],
            with_service: false,
            topics: vec![],
            values_file: None,
            children,
            git_build: 1,
            versions: 2,
            pending: false,
            fault: None,
            prune_confirm: false,
            wave: None,
            extras: vec![],
        });
    }
    for name in &f.faults.pending {
        let app = apps
            .iter_mut()
            .find(|a| &a.name == name)
            .ok_or_else(|| format!("faults.pending: no app named {name}"))?;
        app.pending = true;
        app.versions = app.versions.max(3);
    }
    for name in &f.faults.prune_confirm {
        let app = apps
            .iter_mut()
            .find(|a| &a.name == name && a.pending && a.kind == AppKind::Service)
            .ok_or_else(|| format!("faults.prune_confirm: no pending service app named {name}"))?;
        app.prune_confirm = true;
    }
    for name in &f.faults.promoted {
        let Some(i) = apps.iter().position(|a| &a.name == name && a.pending) else {
            return Err(format!("faults.promoted: no pending app named {name}"));
        };
        let (service, env) = (apps[i].service.clone(), apps[i].environment.clone());
        let before = f
            .environments
            .iter()
            .position(|e| e.name == env)
            .and_then(|r| r.checked_sub(1))
            .map(|r| f.environments[r].name.clone());
        let build = apps
            .iter()
            .find(|a| a.service == service && Some(&a.environment) == before.as_ref())
            .map(AppDef::deployed_build)
            .ok_or_else(|| {
                format!("faults.promoted: {name} has no app in the environment before it")
            })?;
        // Git now holds the build the environment before runs; this one runs the one before.
        let app = &mut apps[i];
        app.git_build = build;
        app.versions = app.versions.min(build);
    }
    for (name, reason) in &f.faults.broken {
        if reason != "ImagePullBackOff" && reason != "CrashLoopBackOff" {
            return Err(format!(
                "faults.broken.{name}: {reason} is neither ImagePullBackOff nor CrashLoopBackOff"
            ));
        }
        let app = apps
            .iter_mut()
            .find(|a| &a.name == name)
            .ok_or_else(|| format!("faults.broken: no app named {name}"))?;
        app.fault = Some(reason.clone());
    }

    let service_names: Vec<String> = f.services.iter().map(|s| s.name.clone()).collect();
    let env_names: Vec<String> = environments.iter().map(|e| e.name.clone()).collect();
    let (default_workflows, default_jenkins) = default_ci(&service_names, &env_names);
    let workflows = match f.workflows {
        None => default_workflows,
        Some(w) => w
            .into_iter()
            .map(|w| WorkflowDef {
                file: w.file,
                name: w.name,
                action: w.action,
                inputs: w.inputs,
            })
            .collect(),
    };
    let jenkins = match f.jenkins {
        None => default_jenkins,
        Some(j) => j
            .into_iter()
            .map(|j| JenkinsJobDef {
                name: j.name,
                parameters: j.parameters,
                action: j.action,
                trigger: j.trigger,
            })
            .collect(),
    };
    let mut projects: Vec<ProjectDef> = f
        .projects
        .iter()
        .map(|p| ProjectDef {
            name: p.name.clone(),
            description: p.description.clone(),
            windows: p.windows.iter().map(window_json).collect(),
        })
        .collect();
    for needed in apps.iter().map(|a| a.project.clone()) {
        if !projects.iter().any(|p| p.name == needed) {
            projects.push(ProjectDef {
                name: needed.clone(),
                description: format!("{needed} applications"),
                windows: vec![],
            });
        }
    }
    let mut estate = Estate {
        name: f.name,
        description: f.description,
        clusters: f.clusters,
        environments,
        apps,
        projects,
        github: GithubDef {
            owner: f.github.owner,
            repo: f.github.repo,
            workflows,
        },
        jenkins,
        registry: f.registry,
        tag_style: f.tag_style,
        failing_builds: f.faults.failing_builds,
        seed,
        by_name: Default::default(),
    };
    estate.normalize_clusters();
    Ok(estate)
}

fn window_json(w: &WindowFile) -> serde_json::Value {
    let mut v = serde_json::json!({
        "kind": w.kind,
        "schedule": w.schedule,
        "duration": w.duration,
        "manualSync": w.manual_sync,
    });
    for (k, list) in [
        ("applications", &w.applications),
        ("namespaces", &w.namespaces),
        ("clusters", &w.clusters),
    ] {
        if !list.is_empty() {
            v[k] = serde_json::json!(list);
        }
    }
    if let Some(tz) = &w.time_zone {
        v["timeZone"] = serde_json::json!(tz);
    }
    v
}
