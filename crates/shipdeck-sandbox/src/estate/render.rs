//! The manifests of each app at each build, as the estate's Git repository holds them and as
//! the live objects were applied: one function renders both so that what is seeded live and
//! what Git says agree exactly (a difference would be a drift nobody made).

use super::{AppDef, AppKind, Estate, SYNC_WAVE};
use crate::ARGOCD_NAMESPACE;
use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};

/// Pod-template annotation the Deployment controller reads to fail pods on purpose.
pub const FAIL_ANNOTATION: &str = "sandbox.shipdeck.io/fail";
/// Argo CD's default tracking label.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// Notification subscription added to children in the app-of-apps' second version.
const NOTIFY_ANNOTATION: &str = "notifications.argoproj.io/subscribe.on-sync-failed.slack";

/// When CI produced a service's build: days ago, one build a day, deterministic minutes.
pub fn build_time(estate: &Estate, service: &str, build: usize) -> DateTime<Utc> {
    let start = start_of_history();
    let minutes = (super::hash(estate.seed, &format!("{service}@{build}")) % 300) as i64;
    start + Duration::hours(20 * build as i64) + Duration::minutes(minutes)
}

/// Midnight ten days ago: the estate's history starts there, so the newest commit is in the
/// past (a day or two ago).
pub fn start_of_history() -> DateTime<Utc> {
    let now = Utc::now();
    let days = now.timestamp() / 86_400 - 10;
    DateTime::<Utc>::from_timestamp(days * 86_400, 0).unwrap_or(now)
}

/// When a build was committed for an app: after CI, later for later environments.
pub fn commit_time(estate: &Estate, app: &AppDef, build: usize) -> DateTime<Utc> {
    let rank = estate
        .environments
        .iter()
        .position(|e| e.name == app.environment)
        .unwrap_or(0) as i64;
    let jitter = (super::hash(estate.seed, &format!("{}@{build}", app.name)) % 40) as i64;
    build_time(estate, &app.service, build) + Duration::minutes(12 + rank * 170 + jitter)
}

/// The image reference of a workload at a build.
pub fn image(estate: &Estate, app: &AppDef, workload: usize, build: usize) -> String {
    let w = &app.workloads[workload];
    match app.kind {
        AppKind::Infra => format!(
            "{}:3.{}.0",
            w.image,
            6 + usize::from(build > app.first_build())
        ),
        _ => format!(
            "{}:{}",
            w.image,
            estate.tag(&app.service, build, &app.branch)
        ),
    }
}

/// Files of the app's path at a build: (path in repo, objects). Objects carry no namespace
/// (Argo CD defaults it to the destination) and no tracking label (Argo CD adds it).
pub fn app_files(
    estate: &Estate,
    app: &AppDef,
    build: usize,
    repo_url: &str,
) -> Vec<(String, Vec<Value>)> {
    let mut files = Vec::new();
    match app.kind {
        AppKind::Service => {
            for (i, w) in app.workloads.iter().enumerate() {
                let mut d = deployment(estate, app, i, build);
                if let Some(reason) = &app.fault
                    && build >= app.deployed_build()
                {
                    d["spec"]["template"]["metadata"]["annotations"] =
                        json!({ FAIL_ANNOTATION: reason });
                }
                if let Some(wave) = w.wave {
                    d["metadata"]["annotations"] = json!({ SYNC_WAVE: wave.to_string() });
                }
                files.push((w.file.clone(), vec![d]));
            }
            if app.with_service {
                let w = &app.workloads[0];
                files.push(("service.yaml".into(), vec![service(&w.name, w.port)]));
                files.push(("configmap.yaml".into(), vec![config_map(app)]));
            }
            if app.prune_confirm {
                // The repository only writes files, so the newest build empties this one.
                let objects = if build < app.git_build {
                    vec![json!({
                        "apiVersion": "v1",
                        "kind": "ConfigMap",
                        "metadata": {
                            "name": format!("{}-legacy-flags", app.service),
                            "annotations": {SYNC_OPTIONS: "Prune=confirm"},
                        },
                        "data": {"LEGACY_CHECKOUT": "true"},
                    })]
                } else {
                    Vec::new()
                };
                files.push(("legacy-flags.yaml".into(), objects));
            }
            for x in &app.extras {
                files.push((format!("{}.yaml", x.name), vec![extra(app, x)]));
            }
        }
        AppKind::Infra => {
            let w = &app.workloads[0];
            files.push((
                "broker.yaml".into(),
                vec![
                    deployment(estate, app, 0, build),
                    service(&app.service, w.port),
                ],
            ));
            let topics = app
                .topics
                .iter()
                .map(|t| topic(t, w.replicas, build > app.first_build()))
                .collect();
            files.push(("topics.yaml".into(), topics));
        }
        AppKind::Parent => {
            for child in &app.children {
                if let Some(c) = estate.app(child) {
                    let mut m = application(c, repo_url);
                    if build > app.first_build() {
                        m["metadata"]["annotations"][NOTIFY_ANNOTATION] = json!("deploys");
                    }
                    files.push((format!("{child}.yaml"), vec![m]));
                }
            }
        }
    }
    files
        .into_iter()
        .map(|(f, objs)| (format!("{}/{f}", app.path), objs))
        .collect()
}

/// YAML text of a file's objects (multi-document when there are several), in the block
/// style people write manifests in. A small emitter of our own: generating 10,000 apps'
/// history serializes hundreds of thousands of objects, and a general serializer is the
/// slow part of repository creation.
pub fn to_yaml(objects: &[Value]) -> String {
    let mut out = String::new();
    for (i, o) in objects.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        match o {
            Value::Object(m) if !m.is_empty() => write_map(m, 0, &mut out),
            other => {
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
    out
}

fn pad(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn write_map(m: &serde_json::Map<String, Value>, indent: usize, out: &mut String) {
    for (k, v) in m {
        pad(out, indent);
        out.push_str(&key(k));
        out.push(':');
        write_after_key(v, indent, out);
    }
}

fn write_after_key(v: &Value, indent: usize, out: &mut String) {
    match v {
        Value::Object(m) if !m.is_empty() => {
            out.push('\n');
            write_map(m, indent + 2, out);
        }
        Value::Array(a) if !a.is_empty() => {
            out.push('\n');
            write_seq(a, indent, out);
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn write_seq(a: &[Value], indent: usize, out: &mut String) {
    for item in a {
        match item {
            Value::Object(m) if !m.is_empty() => {
                let mut inner = String::new();
                write_map(m, indent + 2, &mut inner);
                pad(out, indent);
                out.push_str("- ");
                out.push_str(&inner[indent + 2..]);
            }
            Value::Array(x) if !x.is_empty() => {
                pad(out, indent);
                out.push_str("-\n");
                write_seq(x, indent + 2, out);
            }
            other => {
                pad(out, indent);
                out.push_str("- ");
                out.push_str(&scalar(other));
                out.push('\n');
            }
        }
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => key(s),
        Value::Object(_) => "{}".into(),
        Value::Array(_) => "[]".into(),
    }
}

/// A string as a plain scalar when YAML reads it back as the same string, else quoted
/// (JSON's double-quoted form is valid YAML).
fn key(s: &str) -> String {
    const RESERVED: &[&str] = &["true", "false", "yes", "no", "on", "off", "null", "y", "n"];
    let plain = s
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '/')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._/-:".contains(c))
        && !s.ends_with(':')
        && !s.contains(": ")
        && !RESERVED.contains(&s.to_ascii_lowercase().as_str());
    if plain {
        s.to_string()
    } else {
        Value::String(s.to_string()).to_string()
    }
}

/// Helm values of an app (for values-file estates), kept beside the rendered manifests.
pub fn values_yaml(estate: &Estate, app: &AppDef, build: usize) -> String {
    let mut out = format!(
        "# Values for {} ({}). CI rewrites the image tags.\nreplicaCount: {}\nimage:\n",
        app.service,
        app.environment,
        app.workloads.first().map(|w| w.replicas).unwrap_or(1)
    );
    for w in &app.workloads {
        let reference = image(estate, app, 0, build);
        let (repo, tag) = split_image(&reference);
        let short = w.name.rsplit('-').next().unwrap_or(&w.name).to_string();
        out.push_str(&format!(
            "  {short}:\n    repository: {repo}\n    tag: {tag}\n"
        ));
    }
    out.push_str(&format!(
        "ingress:\n  host: {}.{}.example.com\nhealthCheck:\n  path: /health\n",
        app.environment, app.service
    ));
    out
}

/// `repo:tag` -> (repo, tag).
pub fn split_image(image: &str) -> (&str, &str) {
    match image.rsplit_once(':') {
        Some((r, t)) if !t.contains('/') => (r, t),
        _ => (image, "latest"),
    }
}

fn deployment(estate: &Estate, app: &AppDef, i: usize, build: usize) -> Value {
    let w = &app.workloads[i];
    let env = &app.environment;
    let log_level = if env == "dev" { "debug" } else { "info" };
    let mut container = json!({
        "name": w.name,
        "image": image(estate, app, i, build),
        "ports": [{"name": "http", "containerPort": w.port}],
        "env": [
            {"name": "ENVIRONMENT", "value": env},
            {"name": "LOG_LEVEL", "value": log_level},
        ],
        "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"},
            "limits": {"memory": "256Mi"},
        },
    });
    if app.kind == AppKind::Infra {
        container["ports"] = json!([{"name": "kafka", "containerPort": w.port}]);
        container["env"] = json!([
            {"name": "KAFKA_CFG_PROCESS_ROLES", "value": "broker,controller"},
            {"name": "KAFKA_CFG_NUM_PARTITIONS", "value": "6"},
        ]);
    } else {
        container["readinessProbe"] = json!({
            "httpGet": {"path": "/health", "port": "http"},
            "periodSeconds": 10,
        });
    }
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": w.name,
            "labels": {"app": w.name, "app.kubernetes.io/name": w.name, "app.kubernetes.io/part-of": app.service},
        },
        "spec": {
            "replicas": w.replicas,
            "revisionHistoryLimit": 5,
            "selector": {"matchLabels": {"app": w.name}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": w.name, INSTANCE_LABEL: app.name}},
                "spec": {"containers": [container]},
            },
        },
    })
}

/// A StatefulSet, DaemonSet or Job of the app, the same at every build (Git holds it as
/// is; a Job's pod template cannot change once it exists).
fn extra(app: &AppDef, x: &super::ExtraDef) -> Value {
    let mut container = json!({
        "name": x.name,
        "image": x.image,
        "resources": {"requests": {"cpu": "50m", "memory": "64Mi"}},
    });
    if let Some(port) = x.port {
        container["ports"] = json!([{"containerPort": port}]);
    }
    let labels = json!({"app": x.name, "app.kubernetes.io/part-of": app.service});
    let template = |restart: Option<&str>| {
        let mut spec = json!({"containers": [container.clone()]});
        if let Some(r) = restart {
            spec["restartPolicy"] = json!(r);
        }
        json!({
            "metadata": {"labels": {"app": x.name, INSTANCE_LABEL: app.name}},
            "spec": spec,
        })
    };
    match x.kind.as_str() {
        "StatefulSet" => json!({
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": x.name, "labels": labels},
            "spec": {
                "serviceName": x.name,
                "replicas": x.replicas.unwrap_or(1),
                "selector": {"matchLabels": {"app": x.name}},
                // As the API server defaults it (kubectl's rollout status reads the partition).
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": 0}},
                "template": template(None),
            },
        }),
        "DaemonSet" => json!({
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": x.name, "labels": labels},
            "spec": {
                "selector": {"matchLabels": {"app": x.name}},
                "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}},
                "template": template(None),
            },
        }),
        _ => json!({
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": x.name, "labels": labels},
            "spec": {
                "completions": x.replicas.unwrap_or(1),
                "backoffLimit": 2,
                "template": template(Some("Never")),
            },
        }),
    }
}

fn service(name: &str, port: u16) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": {
            "selector": {"app": name},
            "ports": [{"name": "http", "port": 80, "targetPort": port}],
        },
    })
}

/// Argo CD's per-resource sync options annotation.
pub const SYNC_OPTIONS: &str = "argocd.argoproj.io/sync-options";

fn config_map(app: &AppDef) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": format!("{}-config", app.service)},
        "data": {
            "ENVIRONMENT": app.environment,
            "METRICS_ENABLED": "true",
            "REQUEST_TIMEOUT_MS": if app.environment == "prod" { "3000" } else { "10000" },
        },
    })
}

fn topic(name: &str, brokers: u32, raised: bool) -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": format!("topic-{name}"), "labels": {"kafka.shipdeck.io/topic": name}},
        "data": {
            "partitions": "6",
            "replication.factor": brokers.clamp(1, 3).to_string(),
            "retention.ms": if raised { "604800000" } else { "259200000" },
        },
    })
}

/// The Application manifest of an app (what the app-of-apps holds and what is seeded).
pub fn application(app: &AppDef, repo_url: &str) -> Value {
    let mut destination = json!({"namespace": app.namespace});
    if app.cluster == crate::IN_CLUSTER {
        destination["server"] = json!("https://kubernetes.default.svc");
    } else {
        destination["name"] = json!(app.cluster);
    }
    let mut sync_policy = json!({"syncOptions": ["CreateNamespace=true"]});
    if app.auto_sync {
        sync_policy["automated"] = json!({"prune": app.prune, "selfHeal": app.self_heal});
    }
    let mut m = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {
            "name": app.name,
            "namespace": ARGOCD_NAMESPACE,
            "labels": {"env": app.environment, "app.kubernetes.io/part-of": app.service},
            "finalizers": ["resources-finalizer.argocd.argoproj.io"],
        },
        "spec": {
            "project": app.project,
            "source": {"repoURL": repo_url, "path": app.path, "targetRevision": app.branch},
            "destination": destination,
            "syncPolicy": sync_policy,
            "revisionHistoryLimit": 10,
        },
    });
    if let Some(wave) = app.wave {
        m["metadata"]["annotations"] = json!({ SYNC_WAVE: wave.to_string() });
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_round_trips_every_manifest() {
        for name in crate::estate::built_in_names() {
            let e = Estate::load(name, None, 3).unwrap();
            for app in &e.apps {
                for build in app.builds() {
                    for (path, objs) in app_files(&e, app, build, "file:///tmp/repo") {
                        let text = to_yaml(&objs);
                        let back: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
                        assert_eq!(back, objs, "{path}:\n{text}");
                    }
                }
            }
        }
    }
}
