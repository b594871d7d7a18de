//! Estates: what the sandbox simulates. An estate file (`assets/estates/*.yaml`, or any path)
//! names clusters, environments, services, infrastructure apps, an app-of-apps, sync
//! windows, CI definitions and the faults present at start; [`Estate::load`] expands it into
//! one [`AppDef`] per Argo CD Application. The shapes follow the setups in ESTATES.md.
//!
//! This room only describes the world and seeds it (`seed.rs`) and renders its manifests
//! (`render.rs`); it never runs anything: the controllers and CI act on it later.

mod file;
mod generate;
pub mod history;
pub mod render;
pub mod seed;

pub use seed::{apply_bump, apply_bump_with, seed_store};

use crate::IN_CLUSTER;
use std::collections::BTreeMap;

/// The built-in estates, embedded so the binary needs nothing beside it.
const BUILT_IN: &[(&str, &str)] = &[
    (
        "default",
        include_str!("../../../../assets/estates/default.yaml"),
    ),
    (
        "three-clusters",
        include_str!("../../../../assets/estates/three-clusters.yaml"),
    ),
    (
        "event-ingestion",
        include_str!("../../../../assets/estates/event-ingestion.yaml"),
    ),
    (
        "banking",
        include_str!("../../../../assets/estates/banking.yaml"),
    ),
    (
        "wanderlust",
        include_str!("../../../../assets/estates/wanderlust.yaml"),
    ),
    (
        "social-platform",
        include_str!("../../../../assets/estates/social-platform.yaml"),
    ),
];

/// Argo CD's sync-wave annotation (on resources, and on child Applications).
pub const SYNC_WAVE: &str = "argocd.argoproj.io/sync-wave";

/// Names of the built-in estates.
pub fn built_in_names() -> Vec<&'static str> {
    BUILT_IN.iter().map(|(n, _)| *n).collect()
}

/// A whole simulated estate, expanded.
#[derive(Debug, Clone, Default)]
pub struct Estate {
    pub name: String,
    pub description: String,
    /// Simulated clusters, `in-cluster` (where Argo CD runs) first.
    pub clusters: Vec<String>,
    pub environments: Vec<EnvDef>,
    pub apps: Vec<AppDef>,
    pub projects: Vec<ProjectDef>,
    pub github: GithubDef,
    pub jenkins: Vec<JenkinsJobDef>,
    /// Image registry prefix, e.g. `ghcr.io/acme`.
    pub registry: String,
    pub tag_style: TagStyle,
    /// Services whose builds fail (an estate setting for CI).
    pub failing_builds: Vec<String>,
    pub seed: u64,
    /// `apps` by name, built on first lookup (`app`): a lookup per app of 50,000 must not
    /// scan them all.
    pub by_name: std::sync::OnceLock<std::collections::HashMap<String, usize>>,
}

/// One environment: where its apps go and how they sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvDef {
    pub name: String,
    pub branch: String,
    pub cluster: String,
    /// Namespace pattern; `{service}` is replaced.
    pub namespace: String,
    /// `none`, `confirm` or `required`: a hint for the console's approval policy.
    pub approval: String,
    pub sync: SyncMode,
    pub project: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SyncMode {
    #[default]
    Auto,
    SelfHeal,
    Manual,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TagStyle {
    /// `sha-1a2b3c4`
    #[default]
    Sha,
    /// `v20240612-143022`
    Date,
    /// `main-1a2b3c4` / `develop-1a2b3c4`
    BranchSha,
    /// `v1.4.2`
    Semver,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppKind {
    Service,
    /// A message broker stand-in (a Deployment) and its topics (ConfigMaps).
    Infra,
    /// An app-of-apps: its manifests are the other Applications.
    Parent,
}

/// One Deployment of a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadDef {
    pub name: String,
    /// Image repository without tag, e.g. `ghcr.io/acme/checkout`.
    pub image: String,
    /// File name inside the app's path.
    pub file: String,
    pub replicas: u32,
    pub port: u16,
    /// `argocd.argoproj.io/sync-wave` of this Deployment inside its app.
    pub wave: Option<i32>,
}

/// A workload beside a service's Deployments that the estate's Git holds as it is (its
/// image does not follow the service's builds): a StatefulSet (a database or cache), a
/// DaemonSet (a node agent) or a Job (a migration), run by the sandbox's controllers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraDef {
    /// `StatefulSet`, `DaemonSet` or `Job`.
    pub kind: String,
    pub name: String,
    /// Full image reference with its tag, e.g. `docker.io/library/postgres:16.4`.
    pub image: String,
    /// StatefulSet replicas (1 when unset); a Job's completions.
    #[serde(default)]
    pub replicas: Option<u32>,
    #[serde(default)]
    pub port: Option<u16>,
}

/// One Argo CD Application of the estate.
#[derive(Debug, Clone)]
pub struct AppDef {
    pub name: String,
    pub service: String,
    pub environment: String,
    pub kind: AppKind,
    pub cluster: String,
    pub namespace: String,
    pub branch: String,
    pub path: String,
    pub project: String,
    pub auto_sync: bool,
    pub self_heal: bool,
    pub prune: bool,
    pub workloads: Vec<WorkloadDef>,
    /// A Service and ConfigMap beside a single-workload app.
    pub with_service: bool,
    pub topics: Vec<String>,
    /// Helm-values-style estates also keep `values-<env>.yaml` (outside the app path).
    pub values_file: Option<String>,
    /// For the app-of-apps: names of its children.
    pub children: Vec<String>,
    /// Build number of the service that Git holds at start.
    pub git_build: usize,
    /// How many versions exist in Git for this app (history plus pending).
    pub versions: usize,
    /// Whether Git moved past what is deployed (pending change or rolling out at start).
    pub pending: bool,
    /// Pod-template failure for the deployed version (`ImagePullBackOff`/`CrashLoopBackOff`).
    pub fault: Option<String>,
    /// The deployed build has a ConfigMap `{service}-legacy-flags` marked
    /// `argocd.argoproj.io/sync-options: Prune=confirm` that Git's newest build dropped: a
    /// sync with prune waits for a deletion confirmation (Argo CD 3.4+).
    pub prune_confirm: bool,
    /// `argocd.argoproj.io/sync-wave` of the Application in its app-of-apps.
    pub wave: Option<i32>,
    /// StatefulSets, DaemonSets and Jobs beside the service's Deployments.
    pub extras: Vec<ExtraDef>,
}

impl AppDef {
    /// Build numbers in Git, oldest first (the first is the initial commit's).
    pub fn builds(&self) -> std::ops::RangeInclusive<usize> {
        (self.git_build + 1 - self.versions)..=self.git_build
    }

    /// Build deployed at start.
    pub fn deployed_build(&self) -> usize {
        if self.pending {
            self.git_build - 1
        } else {
            self.git_build
        }
    }

    /// The first build (present in the initial commit).
    pub fn first_build(&self) -> usize {
        self.git_build + 1 - self.versions
    }
}

/// An AppProject with its sync windows.
#[derive(Debug, Clone, Default)]
pub struct ProjectDef {
    pub name: String,
    pub description: String,
    pub windows: Vec<serde_json::Value>,
}

#[derive(Debug, Clone, Default)]
pub struct GithubDef {
    pub owner: String,
    pub repo: String,
    pub workflows: Vec<WorkflowDef>,
}

/// A GitHub Actions workflow, written to `.github/workflows/<file>` on main and develop.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowDef {
    pub file: String,
    pub name: String,
    pub action: CiAction,
    pub inputs: Vec<CiInput>,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
pub struct CiInput {
    pub name: String,
    #[serde(default)]
    pub description: String,
    /// `string`, `choice`, `boolean`, `environment` or `number`.
    #[serde(default = "default_kind", rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub options: Vec<String>,
    #[serde(default)]
    pub default: Option<String>,
    #[serde(default)]
    pub required: bool,
}

fn default_kind() -> String {
    "string".into()
}

/// What a CI run does when it succeeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CiAction {
    /// `service` input -> a new image tag bumped into every environment of it.
    Build,
    /// `service` + `version` + `environment` -> bump one environment.
    Deploy,
    /// Health check only.
    Verify,
    /// Ask Argo CD to sync apps (`sync_target`: infrastructure | monitoring | microservices |
    /// all, by sync wave; `force_sync`: also apps already in sync).
    Sync,
}

#[derive(Debug, Clone, PartialEq)]
pub struct JenkinsJobDef {
    pub name: String,
    pub parameters: Vec<CiInput>,
    pub action: CiAction,
    /// A downstream job a successful build triggers with one `<X>_DOCKER_TAG` parameter per
    /// image it built (a "CI" job handing over to `GitOps-Pipeline`), instead of committing.
    pub trigger: Option<String>,
}

/// A new image tag for one service in one environment (what CI commits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageBump {
    pub service: String,
    pub environment: String,
    pub tag: String,
}

impl Estate {
    /// Load a built-in estate by name or an estate file by path; with `apps`, generate that
    /// many apps instead (deterministic from `seed`).
    pub fn load(name_or_path: &str, apps: Option<usize>, seed: u64) -> Result<Estate, String> {
        if let Some(n) = apps {
            return Ok(generate::generate(n, seed));
        }
        let text = match BUILT_IN.iter().find(|(n, _)| *n == name_or_path) {
            Some((_, t)) => (*t).to_string(),
            None => std::fs::read_to_string(name_or_path).map_err(|e| {
                format!(
                    "{name_or_path}: not a built-in estate ({}) and not a readable file: {e}",
                    built_in_names().join(", ")
                )
            })?,
        };
        file::parse(&text, seed).map_err(|e| format!("{name_or_path}: {e}"))
    }

    /// Service names, sorted, infrastructure included, the app-of-apps excluded.
    pub fn services(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .apps
            .iter()
            .filter(|a| a.kind != AppKind::Parent)
            .map(|a| a.service.clone())
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// Environments a service is deployed to, in promotion order.
    pub fn environments_of(&self, service: &str) -> Vec<String> {
        self.environments
            .iter()
            .filter(|e| {
                self.apps
                    .iter()
                    .any(|a| a.service == service && a.environment == e.name)
            })
            .map(|e| e.name.clone())
            .collect()
    }

    pub fn fails_builds(&self, service: &str) -> bool {
        self.failing_builds.iter().any(|s| s == service)
    }

    pub fn app(&self, name: &str) -> Option<&AppDef> {
        let index = self.by_name.get_or_init(|| {
            let mut m = std::collections::HashMap::with_capacity(self.apps.len());
            for (i, a) in self.apps.iter().enumerate() {
                m.entry(a.name.clone()).or_insert(i);
            }
            m
        });
        // The index is a shortcut, never the authority: a miss or a stale slot (apps
        // changed after it was built) falls back to the scan.
        index
            .get(name)
            .and_then(|i| self.apps.get(*i))
            .filter(|a| a.name == name)
            .or_else(|| self.apps.iter().find(|a| a.name == name))
    }

    /// The app of a service in an environment.
    pub fn app_of(&self, service: &str, environment: &str) -> Option<&AppDef> {
        self.apps.iter().find(|a| {
            a.kind != AppKind::Parent
                && a.environment == environment
                && (a.service == service || a.workloads.iter().any(|w| w.name == service))
        })
    }

    pub fn environment(&self, name: &str) -> Option<&EnvDef> {
        self.environments.iter().find(|e| e.name == name)
    }

    /// Branches in use, `main` first.
    pub fn branches(&self) -> Vec<String> {
        let mut out = vec!["main".to_string()];
        for a in &self.apps {
            if !out.contains(&a.branch) {
                out.push(a.branch.clone());
            }
        }
        out
    }

    /// The image tag of a service's build number, as CI would have produced it.
    pub fn tag(&self, service: &str, build: usize, branch: &str) -> String {
        let h = hash(self.seed, &format!("{service}#{build}"));
        let sha = format!("{:07x}", h & 0x0fff_ffff);
        match self.tag_style {
            TagStyle::Sha => format!("sha-{sha}"),
            TagStyle::BranchSha => format!("{branch}-{sha}"),
            TagStyle::Semver => format!("v1.{}.{}", 2 + build / 5, build % 5),
            TagStyle::Date => {
                let t = render::build_time(self, service, build);
                format!("v{}", t.format("%Y%m%d-%H%M%S"))
            }
        }
    }

    /// The `<X>_DOCKER_TAG` parameters CI jobs take, with the service or workload each one
    /// bumps: one per service, and one per workload named `<service>-<x>` or otherwise
    /// distinct from its service (`wanderlust-backend` -> `BACKEND_DOCKER_TAG`).
    pub fn tag_parameters(&self) -> Vec<(String, String)> {
        let param = |s: &str| format!("{}_DOCKER_TAG", s.to_ascii_uppercase().replace('-', "_"));
        let mut out: Vec<(String, String)> = Vec::new();
        let mut push = |p: String, target: String| {
            if !out.iter().any(|(q, _)| *q == p) {
                out.push((p, target));
            }
        };
        for s in self.services() {
            push(param(&s), s);
        }
        for a in self.apps.iter().filter(|a| a.kind == AppKind::Service) {
            for w in a.workloads.iter().filter(|w| w.name != a.service) {
                let short = w
                    .name
                    .strip_prefix(&format!("{}-", a.service))
                    .unwrap_or(&w.name);
                push(param(short), w.name.clone());
            }
        }
        out
    }

    /// Clusters by name, with `in-cluster` first.
    pub(crate) fn normalize_clusters(&mut self) {
        let mut clusters = vec![IN_CLUSTER.to_string()];
        for c in self
            .clusters
            .iter()
            .chain(self.apps.iter().map(|a| &a.cluster))
        {
            if !clusters.contains(c) {
                clusters.push(c.clone());
            }
        }
        self.clusters = clusters;
    }

    /// Apps by name, for lookups in loops.
    pub fn index(&self) -> BTreeMap<&str, &AppDef> {
        self.apps.iter().map(|a| (a.name.as_str(), a)).collect()
    }
}

/// A deterministic 64-bit hash of a seed and a string (FNV-1a, then a splitmix finish), so
/// estates, tags and timings repeat exactly for a seed.
pub fn hash(seed: u64, s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The usual CI of an estate: a build workflow, deploy-service.yml, verify-environment.yml
/// and a Jenkins `GitOps-Pipeline` job.
pub fn default_ci(
    services: &[String],
    environments: &[String],
) -> (Vec<WorkflowDef>, Vec<JenkinsJobDef>) {
    let choice = |name: &str, description: &str, options: &[String], default: Option<&String>| {
        if options.len() > 50 {
            CiInput {
                name: name.into(),
                description: description.into(),
                kind: "string".into(),
                options: vec![],
                default: None,
                required: true,
            }
        } else {
            CiInput {
                name: name.into(),
                description: description.into(),
                kind: "choice".into(),
                options: options.to_vec(),
                default: default.cloned(),
                required: true,
            }
        }
    };
    let input =
        |name: &str, description: &str, kind: &str, default: Option<&str>, required| CiInput {
            name: name.into(),
            description: description.into(),
            kind: kind.into(),
            options: vec![],
            default: default.map(str::to_string),
            required,
        };
    let tests: Vec<String> = ["all", "health", "smoke", "integration"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let workflows = vec![
        WorkflowDef {
            file: "build.yml".into(),
            name: "Build and push".into(),
            action: CiAction::Build,
            inputs: vec![
                choice("service", "Service to build", services, services.first()),
                input(
                    "skip_tests",
                    "Skip the unit tests",
                    "boolean",
                    Some("false"),
                    false,
                ),
            ],
        },
        WorkflowDef {
            file: "deploy-service.yml".into(),
            name: "Deploy service".into(),
            action: CiAction::Deploy,
            inputs: vec![
                choice("service", "Service to deploy", services, services.first()),
                input(
                    "version",
                    "Image tag to deploy (e.g. a previous good one)",
                    "string",
                    None,
                    true,
                ),
                choice(
                    "environment",
                    "Target environment",
                    environments,
                    environments.first(),
                ),
            ],
        },
        WorkflowDef {
            file: "verify-environment.yml".into(),
            name: "Verify environment".into(),
            action: CiAction::Verify,
            inputs: vec![
                choice(
                    "environment",
                    "Environment to verify",
                    environments,
                    environments.last(),
                ),
                choice("test_type", "Which checks to run", &tests, tests.first()),
            ],
        },
    ];
    let mut params: Vec<CiInput> = services
        .iter()
        .take(8)
        .map(|s| {
            input(
                &format!("{}_DOCKER_TAG", s.to_ascii_uppercase().replace('-', "_")),
                &format!("Image tag of {s} (empty: keep)"),
                "string",
                Some(""),
                false,
            )
        })
        .collect();
    params.push(choice(
        "ENVIRONMENT",
        "Environment whose manifests to rewrite",
        environments,
        environments.first(),
    ));
    let jenkins = vec![JenkinsJobDef {
        name: "GitOps-Pipeline".into(),
        parameters: params,
        action: CiAction::Deploy,
        trigger: None,
    }];
    (workflows, jenkins)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_ins_load() {
        for name in built_in_names() {
            let e = Estate::load(name, None, 1).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!e.apps.is_empty(), "{name}");
            assert_eq!(e.clusters[0], IN_CLUSTER);
            for a in &e.apps {
                assert!(
                    a.versions >= 1 && a.git_build + 1 >= a.versions,
                    "{}",
                    a.name
                );
            }
        }
    }

    #[test]
    fn default_has_the_demo_faults() {
        let e = Estate::load("default", None, 1).unwrap_or_default();
        assert!(
            e.apps
                .iter()
                .any(|a| a.environment == "prod" && a.pending && !a.auto_sync)
        );
        assert!(e.apps.iter().any(|a| a.fault.is_some()));
        assert!(e.apps.iter().any(|a| a.pending && a.auto_sync));
        assert!(e.apps.iter().any(|a| a.kind == AppKind::Parent));
        assert!(e.apps.iter().any(|a| a.kind == AppKind::Infra
            && a.environment == "prod"
            && a.auto_sync
            && !a.prune));
        assert_eq!(e.environments_of("checkout"), ["dev", "staging", "prod"]);
    }

    #[test]
    fn generated_is_deterministic() {
        let a = Estate::load("default", Some(300), 7).unwrap_or_default();
        let b = Estate::load("default", Some(300), 7).unwrap_or_default();
        assert_eq!(a.apps.len(), 300);
        let names = |e: &Estate| {
            e.apps
                .iter()
                .map(|a| (a.name.clone(), a.git_build))
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&a), names(&b));
        assert!(a.apps.iter().any(|x| x.name == "svc-0001-dev"));
        assert_eq!(a.tag("svc-0001", 3, "main"), b.tag("svc-0001", 3, "main"));
    }
}
