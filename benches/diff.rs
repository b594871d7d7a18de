//! Diff engine figures: a 5,000-line manifest set (about 100 Deployments, ConfigMaps and
//! Secrets) diffed against live objects that carry server fields and a few changes. Prints
//! the median and worst of several runs; the budget is 50 ms (DESIGN.md "Budgets").

use serde_json::{Value, json};
use shipdeck::ops::diff::{diff_app, to_yaml};
use shipdeck::sources::ManagedResource;
use std::time::{Duration, Instant};

fn deployment(i: usize, image: &str, replicas: u32) -> Value {
    let env: Vec<Value> = (0..12)
        .map(|k| json!({"name": format!("VAR_{k}"), "value": format!("value-{i}-{k}")}))
        .collect();
    json!({"apiVersion":"apps/v1","kind":"Deployment",
        "metadata":{"name":format!("svc-{i}"),"namespace":"shop","labels":{"app":format!("svc-{i}"),"team":"payments"}},
        "spec":{"replicas":replicas,"selector":{"matchLabels":{"app":format!("svc-{i}")}},
          "template":{"metadata":{"labels":{"app":format!("svc-{i}")}},
            "spec":{"containers":[{"name":"app","image":image,"env":env,
              "ports":[{"containerPort":8080,"name":"http"}],
              "resources":{"limits":{"cpu":"500m","memory":"256Mi"},"requests":{"cpu":"100m","memory":"128Mi"}},
              "readinessProbe":{"httpGet":{"path":"/health","port":"http"},"periodSeconds":5}}]}}}})
}

fn config_map(i: usize, v: &str) -> Value {
    let data: serde_json::Map<String, Value> = (0..8)
        .map(|k| (format!("key{k}.properties"), json!(format!("{v}-{i}-{k}"))))
        .collect();
    json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":format!("cfg-{i}"),"namespace":"shop"},"data":data})
}

fn live(mut v: Value, i: usize) -> Value {
    v["metadata"]["uid"] = json!(format!("uid-{i}"));
    v["metadata"]["resourceVersion"] = json!(format!("{}", 1000 + i));
    v["metadata"]["managedFields"] = json!([{"manager":"argocd-controller","operation":"Apply"}]);
    v["status"] =
        json!({"replicas":2,"readyReplicas":2,"conditions":[{"type":"Available","status":"True"}]});
    v
}

fn resources() -> Vec<ManagedResource> {
    let mut out = Vec::new();
    for i in 0..70 {
        let changed = i % 7 == 0;
        let t = deployment(
            i,
            if changed {
                "reg/app:sha-2"
            } else {
                "reg/app:sha-1"
            },
            if i % 11 == 0 { 3 } else { 2 },
        );
        let l = live(deployment(i, "reg/app:sha-1", 2), i);
        out.push(ManagedResource {
            group: "apps".into(),
            version: "v1".into(),
            kind: "Deployment".into(),
            namespace: "shop".into(),
            name: format!("svc-{i}"),
            target: Some(t),
            live: Some(l),
        });
        let t = config_map(i, if i % 5 == 0 { "new" } else { "old" });
        let l = live(config_map(i, "old"), i);
        out.push(ManagedResource {
            group: String::new(),
            version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: "shop".into(),
            name: format!("cfg-{i}"),
            target: Some(t),
            live: Some(l),
        });
    }
    out
}

fn main() {
    let res = resources();
    let lines: usize = res
        .iter()
        .filter_map(|r| r.target.as_ref())
        .map(|t| to_yaml(t).lines().count())
        .sum();
    let runs = 15;
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    let mut changed = 0;
    for _ in 0..runs {
        let start = Instant::now();
        let d = diff_app(&res, &[]);
        let digest = d.digest();
        times.push(start.elapsed());
        changed = d.changed().count();
        std::hint::black_box(digest);
    }
    times.sort();
    println!(
        "diff: {} resources, {lines} manifest lines, {changed} changed: median {:.1} ms, worst {:.1} ms (budget 50 ms)",
        res.len(),
        times[runs / 2].as_secs_f64() * 1e3,
        times[runs - 1].as_secs_f64() * 1e3,
    );
}
