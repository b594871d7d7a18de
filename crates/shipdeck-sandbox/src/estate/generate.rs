//! `--apps N`: a large estate for scale tests and benchmarks, generated deterministically
//! from the seed. Services `svc-0001`... each deployed to dev, staging and prod of one
//! cluster (namespaces `scale-dev`, `scale-staging`, `scale`); a few prod apps wait for
//! approval and a few are broken, as in a real estate of that size. Manifests live under
//! `apps/gNNN/svc-XXXX/ENV` (a hundred services per group directory).

use super::{
    AppDef, AppKind, EnvDef, Estate, GithubDef, ProjectDef, SyncMode, TagStyle, WorkloadDef,
    default_ci, hash,
};
use crate::IN_CLUSTER;

pub(super) fn generate(n: usize, seed: u64) -> Estate {
    let envs = [
        ("dev", "develop", "scale-dev", SyncMode::Auto),
        ("staging", "develop", "scale-staging", SyncMode::Auto),
        ("prod", "main", "scale", SyncMode::Manual),
    ];
    let environments: Vec<EnvDef> = envs
        .iter()
        .map(|(name, branch, ns, sync)| EnvDef {
            name: (*name).into(),
            branch: (*branch).into(),
            cluster: IN_CLUSTER.into(),
            namespace: (*ns).into(),
            approval: if *sync == SyncMode::Manual {
                "required".into()
            } else {
                "none".into()
            },
            sync: *sync,
            project: if *sync == SyncMode::Manual {
                "prod".into()
            } else {
                "default".into()
            },
        })
        .collect();
    let registry = "registry.example.com/scale".to_string();
    let mut apps = Vec::with_capacity(n);
    let mut services = Vec::new();
    let builds = 6;
    'outer: for s in 1.. {
        let service = format!("svc-{s:04}");
        for (rank, env) in environments.iter().enumerate() {
            if apps.len() >= n {
                break 'outer;
            }
            if rank == 0 {
                services.push(service.clone());
            }
            let name = format!("{service}-{}", env.name);
            let h = hash(seed, &name);
            let prod = env.sync == SyncMode::Manual;
            let pending = prod && h.is_multiple_of(20);
            let fault = (prod && h % 200 == 7).then(|| {
                if h.is_multiple_of(2) {
                    "ImagePullBackOff".to_string()
                } else {
                    "CrashLoopBackOff".to_string()
                }
            });
            let versions = 2 + (h % 3) as usize + usize::from(pending);
            apps.push(AppDef {
                name,
                service: service.clone(),
                environment: env.name.clone(),
                kind: AppKind::Service,
                cluster: IN_CLUSTER.into(),
                namespace: env.namespace.clone(),
                branch: env.branch.clone(),
                // Grouped a hundred services a directory: `git fast-import` finds a path's
                // directory entry by a linear scan, so 16,667 services side by side in
                // `apps/` made creating a 50,000-app repository quadratic (32 s of it).
                path: format!("apps/g{:03}/{service}/{}", s / 100, env.name),
                project: env.project.clone(),
                auto_sync: !prod,
                self_heal: false,
                prune: !prod,
                workloads: vec![WorkloadDef {
                    name: service.clone(),
                    image: format!("{registry}/{service}"),
                    file: "deployment.yaml".into(),
                    replicas: 1 + (h % 3) as u32,
                    port: 8080,
                    wave: None,
                }],
                with_service: true,
                topics: vec![],
                values_file: None,
                children: vec![],
                git_build: builds - (2 - rank),
                versions,
                pending,
                fault,
                prune_confirm: false,
                wave: None,
                extras: vec![],
            });
        }
    }
    let env_names: Vec<String> = environments.iter().map(|e| e.name.clone()).collect();
    let (workflows, jenkins) = default_ci(&services, &env_names);
    let mut estate = Estate {
        name: format!("generated-{n}"),
        description: format!("{n} generated applications across dev, staging and prod"),
        clusters: vec![IN_CLUSTER.into()],
        environments,
        apps,
        projects: vec![
            ProjectDef {
                name: "default".into(),
                description: "non-production applications".into(),
                windows: vec![],
            },
            ProjectDef {
                name: "prod".into(),
                description: "production applications".into(),
                windows: vec![serde_json::json!({
                    "kind": "allow", "schedule": "0 0 * * *", "duration": "24h",
                    "applications": ["*-prod"], "manualSync": true
                })],
            },
        ],
        github: GithubDef {
            owner: "acme".into(),
            repo: "scale-gitops".into(),
            workflows,
        },
        jenkins,
        registry,
        tag_style: TagStyle::Sha,
        failing_builds: vec![],
        seed,
        by_name: Default::default(),
    };
    estate.normalize_clusters();
    estate
}
