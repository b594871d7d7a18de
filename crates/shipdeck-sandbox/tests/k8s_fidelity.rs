//! The sandbox's Kubernetes API against the clients people script it with, each in its usual
//! mode: the official Python `kubernetes` client (in a virtualenv made by
//! `tests/clients/setup-python.sh`), `kubectl`, and raw HTTP. Each test is one item of
//! issue 10: discovery with a trailing slash, paging (`limit`/`continue`, 410 for an expired
//! token), StatefulSets/DaemonSets/Jobs/`events.k8s.io` Events, unsupported field selectors
//! (400), and DNS-1123 names (422). Expectations are the real API server's behaviour and
//! wording, and the sandbox's own watch stream where order matters.

use serde_json::{Value, json};
use shipdeck_sandbox::auth::Role;
use shipdeck_sandbox::{Sandbox, SandboxOptions};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

async fn start() -> Sandbox {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Sandbox::start(SandboxOptions {
        time_scale: 0.02,
        ..Default::default()
    })
    .await
    .expect("sandbox starts")
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

fn token(sb: &Sandbox) -> String {
    sb.world.users.token(Role::Admin)
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Whether `program` is on PATH (kubectl has no `--version`, so look rather than run).
fn have(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// The virtualenv's python with the pinned client, made once per test binary; None (the
/// test skips) only when python3 itself is missing.
fn python() -> Option<PathBuf> {
    static PY: OnceLock<Option<PathBuf>> = OnceLock::new();
    PY.get_or_init(|| {
        if !have("python3") {
            eprintln!("SKIP: python3 is not installed");
            return None;
        }
        let script = repo_root().join("tests/clients/setup-python.sh");
        let out = Command::new("bash")
            .arg(&script)
            .output()
            .expect("setup-python.sh runs");
        assert!(
            out.status.success(),
            "setup-python.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        Some(PathBuf::from(path))
    })
    .clone()
}

/// Run one scenario of `tests/clients/kube_client.py` and parse what it printed.
async fn py(sb: &Sandbox, py: &Path, args: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients/kube_client.py");
    let mut cmd = tokio::process::Command::new(py);
    cmd.arg(script)
        .args(args)
        .env("KUBECONFIG", sb.kubeconfig_path())
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .env("NO_PROXY", "127.0.0.1,localhost");
    let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
        .await
        .expect("the python client finishes")
        .expect("python runs");
    assert!(
        out.status.success(),
        "python {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "python printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Run kubectl against the sandbox: (success, stdout, stderr).
async fn kubectl(sb: &Sandbox, args: &[&str]) -> (bool, String, String) {
    let out = tokio::process::Command::new("kubectl")
        .args(["--context", "in-cluster"])
        .args(args)
        .env("KUBECONFIG", sb.kubeconfig_path())
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .output()
        .await
        .expect("kubectl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

async fn post(sb: &Sandbox, path: &str, body: Value) -> reqwest::Response {
    http()
        .post(format!("{}{path}", sb.url))
        .bearer_auth(token(sb))
        .json(&body)
        .send()
        .await
        .expect("request is answered")
}

async fn make_configmaps(sb: &Sandbox, ns: &str, names: &[&str]) {
    let r = post(sb, "/api/v1/namespaces", json!({"metadata": {"name": ns}})).await;
    assert!(r.status().is_success(), "namespace {ns}: {}", r.status());
    for n in names {
        let r = post(
            sb,
            &format!("/api/v1/namespaces/{ns}/configmaps"),
            json!({"metadata": {"name": n}, "data": {"k": "v"}}),
        )
        .await;
        assert_eq!(r.status(), 201, "configmap {n}");
    }
}

#[tokio::test]
async fn discovery_answers_with_a_trailing_slash() {
    let sb = start().await;
    for (path, kind) in [
        ("/apis/", "APIGroupList"),
        ("/api/", "APIVersions"),
        ("/apis/apps/v1/", "APIResourceList"),
        ("/apis/batch/", "APIGroup"),
    ] {
        let r = http()
            .get(format!("{}{path}", sb.url))
            .bearer_auth(token(&sb))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["kind"], kind, "{path}: {v}");
    }
    let r = http()
        .get(format!("{}/version/", sb.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["major"], "1");

    if have("kubectl") {
        for path in ["/apis/", "/api/", "/version/"] {
            let (ok, out, err) = kubectl(&sb, &["get", "--raw", path]).await;
            assert!(ok, "kubectl get --raw {path}: {err}");
            let v: Value = serde_json::from_str(&out).expect("kubectl printed JSON");
            assert!(v.is_object(), "{path}: {out}");
        }
        let (ok, out, err) = kubectl(&sb, &["api-resources", "--api-group=apps"]).await;
        assert!(ok, "{err}");
        assert!(out.contains("statefulsets") && out.contains("sts"), "{out}");
        assert!(out.contains("daemonsets"), "{out}");
    } else {
        eprintln!("SKIP (kubectl part): kubectl is not installed");
    }

    let Some(python) = python() else { return };
    let v = py(&sb, &python, &["discovery"]).await;
    assert_eq!(v["found"]["apps/v1/StatefulSet"], "statefulsets", "{v}");
    assert_eq!(v["found"]["apps/v1/DaemonSet"], "daemonsets", "{v}");
    assert_eq!(v["found"]["batch/v1/Job"], "jobs", "{v}");
    assert_eq!(v["found"]["events.k8s.io/v1/Event"], "events", "{v}");
    assert_eq!(v["sts_kind"], "StatefulSetList", "{v}");
    let groups: Vec<&str> = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for g in ["apps", "batch", "events.k8s.io", "argoproj.io"] {
        assert!(groups.contains(&g), "{g} in {groups:?}");
    }
}

#[tokio::test]
async fn lists_page_with_limit_and_continue() {
    let sb = start().await;
    let names = ["cm-a", "cm-b", "cm-c", "cm-d", "cm-e"];
    make_configmaps(&sb, "paging", &names).await;

    // Raw HTTP: the first page.
    let r = http()
        .get(format!(
            "{}/api/v1/namespaces/paging/configmaps?limit=2",
            sb.url
        ))
        .bearer_auth(token(&sb))
        .send()
        .await
        .unwrap();
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["items"].as_array().unwrap().len(), 2, "{first}");
    assert_eq!(first["metadata"]["remainingItemCount"], 3, "{first}");
    assert!(
        first["metadata"]["continue"]
            .as_str()
            .is_some_and(|c| !c.is_empty())
    );

    if have("kubectl") {
        let (ok, out, err) = kubectl(
            &sb,
            &[
                "get",
                "configmaps",
                "-n",
                "paging",
                "--chunk-size=2",
                "-o",
                "name",
                "-v=6",
            ],
        )
        .await;
        assert!(ok, "{err}");
        let got: Vec<&str> = out.lines().collect();
        let want: Vec<String> = names.iter().map(|n| format!("configmap/{n}")).collect();
        assert_eq!(got, want);
        // kubectl fetched in chunks, following the continue tokens.
        assert!(err.contains("limit=2"), "{err}");
        assert_eq!(err.matches("continue=").count(), 2, "{err}");
        // Cluster-scoped and all-namespaces lists page to the same result as one unpaged
        // list (of types whose names do not churn while the estate runs).
        for what in [
            &["get", "namespaces"][..],
            &["get", "applications", "-A"][..],
        ] {
            let paged = kubectl(&sb, &[what, &["--chunk-size=3", "-o", "name"]].concat()).await;
            let whole = kubectl(&sb, &[what, &["--chunk-size=0", "-o", "name"]].concat()).await;
            assert!(paged.0 && whole.0, "{} {}", paged.2, whole.2);
            assert_eq!(paged.1, whole.1, "{what:?}");
            assert!(whole.1.lines().count() > 3, "{what:?}: {}", whole.1);
        }
        // And the Table path (what plain `kubectl get` asks for) pages too.
        let (ok, out, err) = kubectl(
            &sb,
            &["get", "configmaps", "-n", "paging", "--chunk-size=2"],
        )
        .await;
        assert!(ok, "{err}");
        for n in names {
            assert!(out.contains(n), "{n} in {out}");
        }
    } else {
        eprintln!("SKIP (kubectl part): kubectl is not installed");
    }

    let Some(python) = python() else { return };
    let v = py(&sb, &python, &["paging", "paging"]).await;
    let pages = v["pages"].as_array().unwrap();
    let got: Vec<Vec<&str>> = pages
        .iter()
        .map(|p| {
            p["names"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .collect()
        })
        .collect();
    assert_eq!(
        got,
        vec![vec!["cm-a", "cm-b"], vec!["cm-c", "cm-d"], vec!["cm-e"]]
    );
    let remaining: Vec<&Value> = pages.iter().map(|p| &p["remaining"]).collect();
    assert_eq!(remaining, vec![&json!(3), &json!(1), &Value::Null]);
    // Every page of one list carries the resourceVersion of its first page.
    assert!(pages.iter().all(|p| p["rv"] == pages[0]["rv"]), "{v}");
}

#[tokio::test]
async fn an_expired_continue_token_answers_410_as_the_api_server_does() {
    let sb = start().await;
    let names = ["cm-a", "cm-b", "cm-c", "cm-d", "cm-e"];
    make_configmaps(&sb, "expiry", &names).await;
    let r = http()
        .get(format!(
            "{}/api/v1/namespaces/expiry/configmaps?limit=2",
            sb.url
        ))
        .bearer_auth(token(&sb))
        .send()
        .await
        .unwrap();
    let first: Value = r.json().await.unwrap();
    let token_first = first["metadata"]["continue"].as_str().unwrap().to_string();
    // Newer writes, then the store compacts past the first page's version (as etcd does).
    make_configmaps(&sb, "expiry-other", &["later"]).await;
    let r = http()
        .post(format!("{}/_sandbox/faults", sb.url))
        .json(&json!({"fault": "expire-watch-versions"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());

    let Some(python) = python() else { return };
    let v = py(&sb, &python, &["expired", "expiry", &token_first]).await;
    let err = &v["error"];
    assert_eq!(err["status"], 410, "{v}");
    assert_eq!(err["body"]["kind"], "Status");
    assert_eq!(err["body"]["reason"], "Expired");
    assert_eq!(err["body"]["code"], 410);
    assert_eq!(
        err["body"]["message"],
        "The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter, or use the continue token in this response to retrieve the remainder of the results. Continuing with the provided token results in an inconsistent list - objects that were created, modified, or deleted between the time the first chunk was returned and now may show up in the list."
    );
    // The Status's own token resumes after the first page, inconsistently.
    assert_eq!(v["rest"], json!(["cm-c", "cm-d", "cm-e"]), "{v}");

    // A token that is not one answers 400.
    let r = http()
        .get(format!(
            "{}/api/v1/namespaces/expiry/configmaps?limit=2&continue=garbage",
            sb.url
        ))
        .bearer_auth(token(&sb))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
}

/// Pod watch events seen: (type, name, Ready).
type Seen = Vec<(String, String, bool)>;

/// Collect the pod watch events of a namespace from `from_rv` until `stop` fires.
fn watch_pods(
    sb: &Sandbox,
    ns: &str,
    from_rv: &str,
) -> (
    tokio::task::JoinHandle<Seen>,
    tokio::sync::oneshot::Sender<()>,
) {
    let url = format!(
        "{}/api/v1/namespaces/{ns}/pods?watch=true&resourceVersion={from_rv}",
        sb.url
    );
    let tok = token(sb);
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        let mut resp = http().get(url).bearer_auth(tok).send().await.unwrap();
        let mut buf = Vec::new();
        let mut seen = Vec::new();
        loop {
            tokio::select! {
                _ = &mut stop_rx => break,
                chunk = resp.chunk() => match chunk {
                    Ok(Some(c)) => buf.extend_from_slice(&c),
                    _ => break,
                },
            }
            while let Some(i) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=i).collect();
                let ev: Value = serde_json::from_slice(&line).unwrap();
                let o = &ev["object"];
                let ready = o["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                });
                seen.push((
                    ev["type"].as_str().unwrap_or("").to_string(),
                    o["metadata"]["name"].as_str().unwrap_or("").to_string(),
                    ready,
                ));
            }
        }
        seen
    });
    (handle, stop_tx)
}

#[tokio::test]
async fn statefulsets_daemonsets_jobs_and_events_v1_are_served() {
    let Some(python) = python() else { return };
    let sb = start().await;
    let r = post(
        &sb,
        "/api/v1/namespaces",
        json!({"metadata": {"name": "data"}}),
    )
    .await;
    assert!(r.status().is_success());
    let ns: Value = r.json().await.unwrap();
    // Watching from the namespace's version replays every pod event after it, however late
    // the watch request lands.
    let rv = ns["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();
    let (watch, stop) = watch_pods(&sb, "data", &rv);
    let v = py(&sb, &python, &["workloads", "data"]).await;
    let _ = stop.send(());
    let seen = watch.await.unwrap();

    assert_eq!(v["sts"]["replicas"], 3, "{v}");
    assert_eq!(v["sts"]["ready"], 3, "{v}");
    assert_eq!(v["sts"]["current"], 3, "{v}");
    assert_eq!(v["sts"]["updated"], 3, "{v}");
    assert_eq!(v["sts"]["current_revision"], v["sts"]["update_revision"]);
    assert!(
        v["sts"]["update_revision"]
            .as_str()
            .is_some_and(|r| r.starts_with("kafka-")),
        "{v}"
    );
    assert_eq!(v["ds"]["desired"], 3, "{v}");
    assert_eq!(v["ds"]["ready"], 3, "{v}");
    assert_eq!(v["job"]["succeeded"], 1, "{v}");
    assert!(
        v["job"]["conditions"]
            .as_array()
            .unwrap()
            .contains(&json!("Complete")),
        "{v}"
    );
    assert!(
        v["all_sts"]
            .as_array()
            .unwrap()
            .contains(&json!("data/kafka"))
    );
    assert!(
        v["all_ds"]
            .as_array()
            .unwrap()
            .contains(&json!("data/node-agent"))
    );
    assert!(
        v["all_jobs"]
            .as_array()
            .unwrap()
            .contains(&json!("data/migrate"))
    );
    let pods: Vec<&str> = v["pods"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for p in ["kafka-0", "kafka-1", "kafka-2"] {
        assert!(pods.contains(&p), "{p} in {pods:?}");
    }
    assert_eq!(
        pods.iter().filter(|p| p.starts_with("node-agent-")).count(),
        3
    );
    assert_eq!(pods.iter().filter(|p| p.starts_with("migrate-")).count(), 1);
    assert!(v["events_listed"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["core_event"]["message"], "partitions moved");
    assert_eq!(v["core_event"]["involved"], "kafka");
    assert_eq!(v["v1_event"]["note"], "partitions moved");
    assert_eq!(v["v1_event"]["regarding"], "kafka");
    // Field selectors of each version, over the same stored Events.
    assert_eq!(v["v1_selected"], json!(["kafka.rebalance"]), "{v}");
    // `involvedObject.name=kafka`: the test's own Event and those the StatefulSet
    // controller recorded about kafka (its `SuccessfulCreate`s), as the store holds them.
    let mut about_kafka: Vec<String> = sb
        .world
        .store
        .list(
            shipdeck_sandbox::IN_CLUSTER,
            shipdeck_sandbox::store::EVENTS,
            Some("data"),
        )
        .0
        .iter()
        .filter(|e| e["involvedObject"]["name"] == "kafka")
        .filter_map(|e| e["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    about_kafka.sort();
    let mut core_selected: Vec<String> = v["core_selected"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n.as_str().map(str::to_string))
        .collect();
    core_selected.sort();
    assert!(
        core_selected.contains(&"kafka.rebalance".to_string()),
        "{v}"
    );
    assert_eq!(core_selected, about_kafka, "{v}");

    // Ordered creation, from the sandbox's own watch stream: kafka-N is created only after
    // kafka-(N-1) was seen Ready.
    let added: Vec<&str> = seen
        .iter()
        .filter(|(t, n, _)| t == "ADDED" && n.starts_with("kafka-"))
        .map(|(_, n, _)| n.as_str())
        .collect();
    assert_eq!(added, vec!["kafka-0", "kafka-1", "kafka-2"], "{seen:?}");
    for i in 1..3 {
        let created = seen
            .iter()
            .position(|(t, n, _)| t == "ADDED" && *n == format!("kafka-{i}"))
            .unwrap();
        let prev_ready = seen
            .iter()
            .position(|(_, n, r)| *r && *n == format!("kafka-{}", i - 1));
        assert!(
            prev_ready.is_some_and(|p| p < created),
            "kafka-{} Ready before kafka-{i} exists: {seen:?}",
            i - 1
        );
    }

    // Pods page too (the Python client's `limit`/`_continue`).
    let paged = py(&sb, &python, &["paging", "data", "pods"]).await;
    let mut paged_names: Vec<&str> = paged["pages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| {
            p["names"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
        })
        .collect();
    assert!(paged["pages"].as_array().unwrap().len() >= 4, "{paged}");
    paged_names.sort();
    assert_eq!(paged_names, pods);

    // A rollout of a new image: pods replaced from the highest ordinal down, each one only
    // once the others are Ready.
    let rv = sb.world.store.resource_version().to_string();
    let (watch, stop) = watch_pods(&sb, "data", &rv);
    let r = py(&sb, &python, &["rollout", "data"]).await;
    let _ = stop.send(());
    let seen = watch.await.unwrap();
    assert!(r["done"].is_object(), "the rollout never finished: {r}");
    assert_ne!(r["done"]["update_revision"], r["before"]);
    for p in ["kafka-0", "kafka-1", "kafka-2"] {
        assert_eq!(r["images"][p], "bitnami/kafka:3.8", "{r}");
    }
    let deleted: Vec<&str> = seen
        .iter()
        .filter(|(t, n, _)| t == "DELETED" && n.starts_with("kafka-"))
        .map(|(_, n, _)| n.as_str())
        .collect();
    assert_eq!(deleted, vec!["kafka-2", "kafka-1", "kafka-0"], "{seen:?}");

    if !have("kubectl") {
        eprintln!("SKIP (kubectl part): kubectl is not installed");
        return;
    }
    let (ok, out, err) = kubectl(
        &sb,
        &[
            "get",
            "pods",
            "-n",
            "data",
            "--chunk-size=2",
            "-o",
            "name",
            "-v=6",
        ],
    )
    .await;
    assert!(ok, "{err}");
    let mut listed: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("pod/")).collect();
    listed.sort();
    assert_eq!(listed, pods);
    assert!(err.matches("continue=").count() >= 3, "{err}");
    // kubectl's rollout status reads the defaulted strategy and the status the controller
    // wrote.
    let (ok, out, err) = kubectl(
        &sb,
        &[
            "rollout",
            "status",
            "statefulset/kafka",
            "-n",
            "data",
            "--timeout=30s",
        ],
    )
    .await;
    assert!(ok, "{err}");
    assert!(
        out.contains("partitioned roll out complete: 3 new pods have been updated"),
        "{out}"
    );
    let (ok, out, err) = kubectl(
        &sb,
        &[
            "rollout",
            "status",
            "daemonset/node-agent",
            "-n",
            "data",
            "--timeout=30s",
        ],
    )
    .await;
    assert!(ok, "{err}");
    assert!(
        out.contains("daemon set \"node-agent\" successfully rolled out"),
        "{out}"
    );
    let (ok, out, err) = kubectl(&sb, &["get", "statefulsets", "-A"]).await;
    assert!(ok, "{err}");
    let header = out.lines().next().unwrap_or("");
    assert!(
        header.split_whitespace().collect::<Vec<_>>() == ["NAMESPACE", "NAME", "READY", "AGE"],
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().take(3).collect::<Vec<_>>() == ["data", "kafka", "3/3"]),
        "{out}"
    );
    // `kubectl get all` finds the new types through their discovery categories.
    let (ok, out, err) = kubectl(&sb, &["get", "all", "-n", "data", "-o", "name"]).await;
    assert!(ok, "{err}");
    for want in [
        "statefulset.apps/kafka",
        "daemonset.apps/node-agent",
        "job.batch/migrate",
        "pod/kafka-0",
    ] {
        assert!(out.lines().any(|l| l == want), "{want} in {out}");
    }
    let (ok, out, err) = kubectl(&sb, &["get", "daemonsets", "-n", "data"]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("DESIRED   CURRENT   READY   UP-TO-DATE   AVAILABLE   NODE SELECTOR   AGE"),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().take(6).collect::<Vec<_>>()
                == ["node-agent", "3", "3", "3", "3", "3"]),
        "{out}"
    );
    let (ok, out, err) = kubectl(&sb, &["get", "jobs", "-n", "data"]).await;
    assert!(ok, "{err}");
    let header: Vec<&str> = out
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"],
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.split_whitespace().take(3).collect::<Vec<_>>()
                == ["migrate", "Complete", "1/1"]),
        "{out}"
    );
    let (ok, out, err) = kubectl(&sb, &["get", "events.v1.events.k8s.io", "-n", "data"]).await;
    assert!(ok, "{err}");
    assert!(
        out.contains("partitions moved") && out.contains("statefulset/kafka"),
        "{out}"
    );
    let (ok, out, err) = kubectl(
        &sb,
        &["scale", "statefulset/kafka", "-n", "data", "--replicas=1"],
    )
    .await;
    assert!(ok, "{err}{out}");
    // Scaled down from the highest ordinal: kafka-0 stays.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, out, _) = kubectl(&sb, &["get", "pods", "-n", "data", "-o", "name"]).await;
        let kafka: Vec<&str> = out
            .lines()
            .filter(|l| l.starts_with("pod/kafka-"))
            .collect();
        if kafka == ["pod/kafka-0"] {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "still {kafka:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Deleting the StatefulSet takes its pods with it.
    let d = py(&sb, &python, &["delete_sts", "data"]).await;
    assert_eq!(d["pods_left"], 0, "{d}");
    assert_eq!(d["read_after_delete"], 404, "{d}");
}

#[tokio::test]
async fn an_unsupported_field_selector_answers_400() {
    let sb = start().await;
    if have("kubectl") {
        let (ok, _, err) = kubectl(
            &sb,
            &["get", "pods", "-A", "--field-selector", "spec.bogus=x"],
        )
        .await;
        assert!(!ok);
        assert!(
            err.contains("field label not supported: spec.bogus"),
            "{err}"
        );
        let (ok, _, err) = kubectl(
            &sb,
            &[
                "get",
                "pods",
                "-A",
                "--field-selector",
                "status.phase=Running",
            ],
        )
        .await;
        assert!(ok, "{err}");
    } else {
        eprintln!("SKIP (kubectl part): kubectl is not installed");
    }
    let Some(python) = python() else { return };
    let v = py(&sb, &python, &["field_selector", "fields"]).await;
    assert_eq!(v["bogus"]["status"], 400, "{v}");
    assert_eq!(v["bogus"]["body"]["reason"], "BadRequest");
    assert_eq!(
        v["bogus"]["body"]["message"],
        "field label not supported: spec.bogus"
    );
    assert_eq!(v["sts_bogus"]["status"], 400, "{v}");
    assert_eq!(
        v["sts_bogus"]["body"]["message"],
        "\"spec.replicas\" is not a known field selector: only \"metadata.name\", \"metadata.namespace\""
    );
    assert!(v["supported"].is_u64(), "{v}");
}

#[tokio::test]
async fn names_must_be_dns_1123_on_every_create() {
    let sb = start().await;
    let Some(python) = python() else { return };
    let v = py(&sb, &python, &["invalid_names", "names"]).await;
    let subdomain = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
    assert_eq!(v["underscore"]["status"], 422, "{v}");
    assert_eq!(v["underscore"]["body"]["reason"], "Invalid");
    assert_eq!(
        v["underscore"]["body"]["message"],
        format!(
            "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\": {subdomain}"
        )
    );
    assert_eq!(
        v["underscore"]["body"]["details"]["causes"][0]["field"],
        "metadata.name"
    );
    // Escape characters are quoted as Go's %q does, never passed through raw.
    assert_eq!(v["escape"]["status"], 422, "{v}");
    let m = v["escape"]["body"]["message"].as_str().unwrap();
    assert!(
        m.starts_with("ConfigMap \"bad\\x1b[31mname\" is invalid"),
        "{m}"
    );
    assert!(!m.contains('\u{1b}'));
    assert_eq!(v["sts"]["status"], 422, "{v}");
    assert!(
        v["sts"]["body"]["message"]
            .as_str()
            .unwrap()
            .starts_with("StatefulSet.apps \"Kafka\" is invalid"),
        "{v}"
    );
    // Nothing was stored.
    let r = http()
        .get(format!("{}/api/v1/namespaces/names/configmaps", sb.url))
        .bearer_auth(token(&sb))
        .send()
        .await
        .unwrap();
    let list: Value = r.json().await.unwrap();
    assert_eq!(list["items"], json!([]));

    if have("kubectl") {
        let (ok, _, err) = kubectl(&sb, &["create", "configmap", "Bad_Name", "-n", "names"]).await;
        assert!(!ok);
        assert!(
            err.contains(
                "ConfigMap \"Bad_Name\" is invalid: metadata.name: Invalid value: \"Bad_Name\""
            ),
            "{err}"
        );
        let (ok, _, err) = kubectl(&sb, &["create", "namespace", "a.b"]).await;
        assert!(!ok);
        assert!(
            err.contains("a lowercase RFC 1123 label must consist"),
            "{err}"
        );
    }
}

#[tokio::test]
async fn delete_answers_a_success_status_for_built_in_types() {
    let sb = start().await;
    make_configmaps(&sb, "deletes", &["gone-a", "gone-b"]).await;
    if have("kubectl") {
        let (ok, out, err) =
            kubectl(&sb, &["delete", "configmap", "gone-b", "-n", "deletes"]).await;
        assert!(ok, "{err}");
        assert_eq!(out.trim(), "configmap \"gone-b\" deleted");
    }
    let Some(python) = python() else { return };
    let v = py(&sb, &python, &["delete_configmap", "deletes", "gone-a"]).await;
    assert_eq!(
        v,
        json!({"kind": "Status", "status": "Success", "name": "gone-a", "kind_detail": "configmaps"})
    );
    let r = http()
        .get(format!("{}/api/v1/namespaces/deletes/configmaps", sb.url))
        .bearer_auth(token(&sb))
        .send()
        .await
        .unwrap();
    let list: Value = r.json().await.unwrap();
    assert_eq!(list["items"], json!([]));
}

/// Four-eyes needs a second identity the servers name: `SelfSubjectReview` answers as
/// kube-apiserver does (201, `status.userInfo.username`), for the admin by token and for the
/// approver through its own kubeconfig context with the real kubectl (`auth whoami`), and
/// Argo CD's userinfo names the approver by its token; the approver may sync production, the
/// deployer may not.
#[tokio::test]
async fn self_subject_review_and_the_approver_identity() {
    let sb = start().await;
    let r = post(
        &sb,
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}),
    )
    .await;
    assert_eq!(r.status().as_u16(), 201);
    let v: Value = r.json().await.expect("json");
    assert_eq!(v["kind"], "SelfSubjectReview");
    assert_eq!(v["status"]["userInfo"]["username"], "admin");
    assert!(
        v["status"]["userInfo"]["groups"]
            .as_array()
            .is_some_and(|g| g.iter().any(|x| x == "system:authenticated"))
    );
    let approver = sb.world.users.token(Role::Approver);
    let info: Value = http()
        .get(format!("{}/api/v1/session/userinfo", sb.url))
        .bearer_auth(&approver)
        .send()
        .await
        .expect("userinfo")
        .json()
        .await
        .expect("json");
    assert_eq!(info["username"], "approver");
    assert_eq!(info["loggedIn"], true);
    for (who, yes) in [(Role::Approver, "yes"), (Role::Deployer, "no")] {
        let v: Value = http()
            .get(format!(
                "{}/api/v1/account/can-i/applications/sync/default/cart-prod",
                sb.url
            ))
            .bearer_auth(sb.world.users.token(who))
            .send()
            .await
            .expect("can-i")
            .json()
            .await
            .expect("json");
        assert_eq!(v["value"], yes, "{who:?}");
    }
    let env = std::fs::read_to_string(sb.env_path()).expect("env file");
    assert!(env.contains(&format!(
        "export SHIPDECK_SANDBOX_APPROVER_TOKEN='{approver}'"
    )));
    if have("kubectl") {
        let out = tokio::process::Command::new("kubectl")
            .args([
                "--context",
                "approver@in-cluster",
                "auth",
                "whoami",
                "-o",
                "json",
            ])
            .env("KUBECONFIG", sb.kubeconfig_path())
            .env_remove("HTTP_PROXY")
            .env_remove("http_proxy")
            .output()
            .await
            .expect("kubectl runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).expect("kubectl printed JSON");
        assert_eq!(v["status"]["userInfo"]["username"], "approver");
    }
    sb.stop().await;
}
