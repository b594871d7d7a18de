//! Churn at scale is real: every status change the `churn` fault writes reaches both
//! watches (the Kubernetes watch of Applications and Argo CD's `/api/v1/stream/applications`),
//! none is lost, and what each watcher folded at the end equals what the sandbox itself says
//! (`/_sandbox/truth` and its own list). Counts and final values only, never timings. The
//! watchers are plain HTTP clients (reqwest) reading the wire, not the product's code.
//!
//! And the list bodies (`/api/v1/applications` with and without `fields`, the Kubernetes list
//! with and without `limit`/`continue`) are byte for byte what a straightforward
//! serialization of the store's objects gives, so serializing straight into the body changed
//! nothing on the wire.

use serde_json::{Value, json};
use shipdeck_sandbox::auth::Role;
use shipdeck_sandbox::store::APPLICATIONS;
use shipdeck_sandbox::{ARGOCD_NAMESPACE, IN_CLUSTER, Sandbox, SandboxOptions};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const APPS: usize = 240;
const STAMP: &str = "sandbox.shipdeck.io/churn";
const DEADLINE: Duration = Duration::from_secs(90);

async fn start() -> Sandbox {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Sandbox::start(SandboxOptions {
        apps: Some(APPS),
        ..Default::default()
    })
    .await
    .expect("sandbox starts")
}

/// Poll `f` until it yields, for at most [`DEADLINE`].
async fn wait_for<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// (churn stamp, reconciledAt) of an Application object.
fn mark(app: &Value) -> (Option<String>, Option<String>) {
    let s = |v: &Value| v.as_str().map(str::to_string);
    (
        s(&app["metadata"]["annotations"][STAMP]),
        s(&app["status"]["reconciledAt"]),
    )
}

/// What one watcher saw: the last mark per app, every churn stamp it was told of, and how
/// many times it (re)connected.
#[derive(Default)]
struct Seen {
    marks: BTreeMap<String, (Option<String>, Option<String>)>,
    stamps: BTreeSet<u64>,
    added: BTreeSet<String>,
    connects: usize,
}

type Shared = Arc<Mutex<Seen>>;

fn fold(seen: &Shared, kind: &str, app: &Value) {
    let name = app["metadata"]["name"].as_str().unwrap_or("").to_string();
    let mut s = seen.lock().unwrap();
    if let Some(n) = app["metadata"]["annotations"][STAMP]
        .as_str()
        .and_then(|v| v.parse().ok())
    {
        s.stamps.insert(n);
    }
    match kind {
        "DELETED" => {
            s.marks.remove(&name);
        }
        _ => {
            if kind == "ADDED" {
                s.added.insert(name.clone());
            }
            s.marks.insert(name, mark(app));
        }
    }
}

/// Split complete lines off `buf`.
fn lines(buf: &mut Vec<u8>) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(i) = buf.iter().position(|b| *b == b'\n') {
        let line: Vec<u8> = buf.drain(..=i).collect();
        out.push(String::from_utf8_lossy(&line).trim_end().to_string());
    }
    out
}

/// The Kubernetes watch of Applications, as a client-go reflector runs it: list-less start
/// (synthetic ADDED per object), then resume from the last resourceVersion when the stream
/// ends.
fn kube_watcher(url: String, token: String, seen: Shared) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        let mut rv = String::new();
        loop {
            seen.lock().unwrap().connects += 1;
            let mut q = "watch=true".to_string();
            if !rv.is_empty() {
                q.push_str(&format!("&resourceVersion={rv}"));
            }
            let Ok(mut resp) = http
                .get(format!(
                    "{url}/apis/argoproj.io/v1alpha1/namespaces/argocd/applications?{q}"
                ))
                .bearer_auth(&token)
                .send()
                .await
            else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let mut buf = Vec::new();
            while let Ok(Some(chunk)) = resp.chunk().await {
                buf.extend_from_slice(&chunk);
                for line in lines(&mut buf) {
                    let Ok(ev) = serde_json::from_str::<Value>(&line) else {
                        continue;
                    };
                    let kind = ev["type"].as_str().unwrap_or("");
                    if kind == "ERROR" {
                        // 410: start over with a fresh synthetic listing.
                        rv.clear();
                        seen.lock().unwrap().marks.clear();
                        continue;
                    }
                    if let Some(v) = ev["object"]["metadata"]["resourceVersion"].as_str() {
                        rv = v.to_string();
                    }
                    if kind != "BOOKMARK" {
                        fold(&seen, kind, &ev["object"]);
                    }
                }
            }
        }
    })
}

/// Argo CD's application stream (server-sent events), reconnecting from scratch when it ends
/// (Argo CD's UI does the same).
fn argo_watcher(url: String, token: String, seen: Shared) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let http = reqwest::Client::new();
        loop {
            seen.lock().unwrap().connects += 1;
            let Ok(mut resp) = http
                .get(format!("{url}/api/v1/stream/applications"))
                .bearer_auth(&token)
                .send()
                .await
            else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            let mut buf = Vec::new();
            while let Ok(Some(chunk)) = resp.chunk().await {
                buf.extend_from_slice(&chunk);
                for line in lines(&mut buf) {
                    let Some(data) = line.strip_prefix("data:") else {
                        continue;
                    };
                    let Ok(msg) = serde_json::from_str::<Value>(data.trim()) else {
                        continue;
                    };
                    let r = &msg["result"];
                    fold(&seen, r["type"].as_str().unwrap_or(""), &r["application"]);
                }
            }
        }
    })
}

async fn get_json(h: &reqwest::Client, url: &str, token: Option<&str>) -> Value {
    let mut req = h.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("request");
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    resp.json().await.expect("json")
}

/// The sandbox's own view, name -> mark, from its unprojected list.
async fn listed_marks(
    h: &reqwest::Client,
    url: &str,
    token: &str,
) -> BTreeMap<String, (Option<String>, Option<String>)> {
    let list = get_json(h, &format!("{url}/api/v1/applications"), Some(token)).await;
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|a| {
            (
                a["metadata"]["name"].as_str().unwrap_or("").to_string(),
                mark(a),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_reaches_both_watches_and_ends_equal_to_truth() {
    let sb = start().await;
    let h = reqwest::Client::new();
    let token = sb.world.users.token(Role::Admin);

    // Settled, as the benchmark waits: every app reconciled, no operation running.
    wait_for("the estate settles", || {
        let h = h.clone();
        let (url, token) = (sb.url.clone(), token.clone());
        async move {
            let l = get_json(
                &h,
                // Whole: reconciledAt and the operation are not in the projected list's table.
                &format!("{url}/api/v1/applications"),
                Some(&token),
            )
            .await;
            let items = l["items"].as_array()?;
            (items.len() == APPS
                && items
                    .iter()
                    .all(|a| a["status"]["reconciledAt"].is_string() && a["operation"].is_null()))
            .then_some(())
        }
    })
    .await;

    let kube: Shared = Default::default();
    let argo: Shared = Default::default();
    let tasks = [
        kube_watcher(sb.url.clone(), token.clone(), kube.clone()),
        argo_watcher(sb.url.clone(), token.clone(), argo.clone()),
    ];
    for (what, seen) in [("kube watch", &kube), ("argo stream", &argo)] {
        wait_for(&format!("the {what} lists every app"), || async {
            (seen.lock().unwrap().added.len() == APPS).then_some(())
        })
        .await;
    }

    let faults = format!("{}/_sandbox/faults", sb.url);
    let resp = h
        .post(&faults)
        .json(&json!({"fault": "churn", "per_second": 1000, "seconds": 3}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let stats = wait_for("the churn ends", || {
        let h = h.clone();
        let faults = faults.clone();
        async move {
            let f = get_json(&h, &faults, None).await;
            (f["churn"] == false && f["churn_stats"]["running"] == false)
                .then(|| f["churn_stats"].clone())
        }
    })
    .await;
    let changes = stats["changes"].as_u64().expect("changes");
    assert!(changes > 0, "the churn changed nothing: {stats}");
    assert_eq!(stats["last_stamp"].as_u64(), Some(changes), "{stats}");
    assert_eq!(stats["asked_per_second"], 1000, "{stats}");
    assert!(
        stats["achieved_per_second"]
            .as_f64()
            .is_some_and(|r| r > 0.0),
        "{stats}"
    );

    // The sandbox's own state: its list, and the truth it reports.
    let listed = listed_marks(&h, &sb.url, &token).await;
    assert_eq!(listed.len(), APPS);
    let truth = get_json(&h, &format!("{}/_sandbox/truth", sb.url), None).await;
    let truth: BTreeMap<String, (Option<String>, Option<String>)> = truth
        .as_array()
        .expect("truth is a list")
        .iter()
        .map(|t| {
            let s = |v: &Value| v.as_str().map(str::to_string);
            (
                t["name"].as_str().unwrap_or("").to_string(),
                (s(&t["churn"]), s(&t["reconciled_at"])),
            )
        })
        .collect();
    assert_eq!(truth, listed, "truth and the list disagree");
    // Every stamp 1..=changes was written, and the apps hold the last ones.
    let held: BTreeSet<u64> = listed
        .values()
        .filter_map(|(s, _)| s.as_deref()?.parse().ok())
        .collect();
    assert!(held.contains(&changes), "the last change is on an app");
    assert!(held.iter().all(|n| (1..=changes).contains(n)));

    let all: BTreeSet<u64> = (1..=changes).collect();
    for (what, seen) in [("kube watch", &kube), ("argo stream", &argo)] {
        let (marks, stamps, connects) = wait_for(&format!("the {what} catches up"), || async {
            let s = seen.lock().unwrap();
            (s.marks == listed).then(|| (s.marks.clone(), s.stamps.clone(), s.connects))
        })
        .await;
        assert_eq!(marks, truth, "{what}: final values equal the truth");
        let missing: Vec<&u64> = all.difference(&stamps).take(10).collect();
        assert!(
            missing.is_empty(),
            "{what} never delivered {} of {changes} changes (first: {missing:?}; {connects} connections)",
            all.difference(&stamps).count()
        );
    }
    for t in tasks {
        t.abort();
    }
}

/// Argo CD's `fields` semantics written out plainly over a tree: a key is kept when its dotted
/// path is named or is a string prefix of a named path; a named path keeps its whole value;
/// with a leading `-` the named paths go instead.
fn reference_project(v: &Value, path: &str, paths: &[&str], exclude: bool) -> Value {
    match v {
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, item) in m {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                let exact = paths.contains(&p.as_str());
                let prefix = exact || paths.iter().any(|n| n.starts_with(p.as_str()));
                if exclude {
                    if !exact {
                        out.insert(k.clone(), reference_project(item, &p, paths, exclude));
                    }
                } else if exact {
                    out.insert(k.clone(), item.clone());
                } else if prefix {
                    out.insert(k.clone(), reference_project(item, &p, paths, exclude));
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|i| reference_project(i, path, paths, exclude))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// One item of Argo CD's list under `fields`, after `forwarder_overwrite.go`: the fields of
/// its fixed table named (with `-`: not named), an ancestor covering its descendants; each
/// as the Go extractor returns it: a nil map, slice or pointer as `null`, a struct or string
/// as its zero value, and nothing at all for `nil` (no operation, no operation state, no
/// resources). `status.operationState.operation.sync` is the sync *result*.
fn reference_table(app: &Value, paths: &[&str], exclude: bool) -> Value {
    const TABLE: [&str; 24] = [
        "metadata.name",
        "metadata.namespace",
        "metadata.annotations",
        "metadata.labels",
        "metadata.creationTimestamp",
        "metadata.deletionTimestamp",
        "spec",
        "spec.destination",
        "spec.project",
        "spec.source",
        "spec.sources",
        "spec.sourceHydrator",
        "spec.syncPolicy",
        "status.sourceHydrator",
        "status.summary",
        "status.sync.status",
        "status.sync.revision",
        "status.health",
        "status.operationState.startedAt",
        "status.operationState.finishedAt",
        "status.resources",
        "operation.sync",
        "status.operationState.phase",
        "status.operationState.operation.sync",
    ];
    let get = |p: &str| -> Option<Value> {
        let mut v = app;
        for k in p.split('.') {
            v = v.get(k)?;
        }
        (!v.is_null()).then(|| v.clone())
    };
    let chosen: Vec<&str> = TABLE
        .iter()
        .copied()
        .filter(|f| paths.contains(&format!("items.{f}").as_str()) != exclude)
        .collect();
    let mut out = json!({});
    for f in &chosen {
        if chosen.iter().any(|a| f.starts_with(&format!("{a}."))) {
            continue;
        }
        let op = get("status.operationState");
        let field = |o: &Value, k: &str| o.get(k).cloned().unwrap_or(Value::Null);
        let value = match *f {
            "metadata.name"
            | "metadata.namespace"
            | "spec.project"
            | "status.sync.status"
            | "status.sync.revision" => Some(get(f).unwrap_or(json!(""))),
            "spec"
            | "spec.destination"
            | "status.sourceHydrator"
            | "status.summary"
            | "status.health" => Some(get(f).unwrap_or(json!({}))),
            "status.resources" => get(f).filter(|r| r.as_array().is_some_and(|a| !a.is_empty())),
            "operation.sync" => get("operation").map(|o| field(&o, "sync")),
            "status.operationState.phase" => {
                op.map(|o| o.get("phase").cloned().unwrap_or(json!("")))
            }
            "status.operationState.startedAt" => op.map(|o| field(&o, "startedAt")),
            "status.operationState.finishedAt" => op.map(|o| field(&o, "finishedAt")),
            "status.operationState.operation.sync" => op.map(|o| field(&o, "syncResult")),
            _ => Some(get(f).unwrap_or(Value::Null)),
        };
        let Some(value) = value else { continue };
        let parts: Vec<&str> = f.split('.').collect();
        let mut at = &mut out;
        for k in &parts[..parts.len() - 1] {
            at = at
                .as_object_mut()
                .expect("an object")
                .entry(k.to_string())
                .or_insert_with(|| json!({}));
        }
        at[parts[parts.len() - 1]] = value;
    }
    out
}

/// The body and the store's version it claims, fetched until the store has not moved
/// meanwhile (controllers write now and then): then the store's objects are what it lists.
async fn quiet_body(sb: &Sandbox, h: &reqwest::Client, url: &str, token: &str) -> (Vec<u8>, u64) {
    wait_for(&format!("a quiet read of {url}"), || async {
        let before = sb.world.store.resource_version();
        let body = h
            .get(url)
            .bearer_auth(token)
            .send()
            .await
            .ok()?
            .bytes()
            .await
            .ok()?
            .to_vec();
        (sb.world.store.resource_version() == before).then_some((body, before))
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_bodies_are_byte_identical_to_a_plain_serialization() {
    let sb = start().await;
    let h = reqwest::Client::new();
    let token = sb.world.users.token(Role::Admin);
    let items = || {
        sb.world
            .store
            .list(IN_CLUSTER, APPLICATIONS, Some(ARGOCD_NAMESPACE))
            .0
            .iter()
            .map(|a| (**a).clone())
            .collect::<Vec<Value>>()
    };

    // Argo CD's list: whole, and through several `fields` variants (table fields, a named
    // parent, an excluding list, paths outside the table, the list's own metadata).
    let variants = [
        None,
        Some(
            "items.metadata.name,items.metadata.labels,items.spec.project,items.status.sync.status,items.status.health,items.status.resources.kind,items.no.such.path",
        ),
        Some("items.status"),
        Some("metadata.resourceVersion,items.metadata.name"),
        Some("-items.status.resources,items.status.history,items.metadata.managedFields"),
        Some("items.status.reconciledAt,items.operation"),
        Some(
            "items.spec,items.spec.project,items.operation.sync,items.status.operationState.operation.sync,items.status.operationState.phase,items.metadata.annotations,items.metadata.deletionTimestamp",
        ),
        Some("nothing.at.all"),
    ];
    for fields in variants {
        let url = match fields {
            None => format!("{}/api/v1/applications", sb.url),
            Some(f) => format!("{}/api/v1/applications?fields={f}", sb.url),
        };
        let (body, rv) = quiet_body(&sb, &h, &url, &token).await;
        let whole = json!({"metadata": {"resourceVersion": rv.to_string()}, "items": items()});
        let shown = match fields {
            None => whole,
            Some(f) => {
                let (f, exclude) = match f.strip_prefix('-') {
                    Some(rest) => (rest, true),
                    None => (f, false),
                };
                let paths: Vec<&str> = f.split(',').collect();
                // The list's own metadata is written whole; each item from the table.
                json!({
                    "metadata": whole["metadata"],
                    "items": items().iter().map(|a| reference_table(a, &paths, exclude)).collect::<Vec<_>>(),
                })
            }
        };
        // Argo CD writes the list's `metadata` before its `items`.
        let mut want = b"{".to_vec();
        for key in ["metadata", "items"] {
            if let Some(v) = shown.get(key) {
                if want.len() > 1 {
                    want.push(b',');
                }
                want.extend(serde_json::to_vec(key).unwrap());
                want.push(b':');
                want.extend(serde_json::to_vec(v).unwrap());
            }
        }
        want.push(b'}');
        assert!(
            body == want,
            "{url}: the body differs from the plain serialization ({} vs {} bytes)",
            body.len(),
            want.len()
        );
    }

    // The Kubernetes list: whole, then paged with limit/continue; the pages' items together
    // are the whole list, each page byte for byte the plain serialization.
    let base = format!(
        "{}/apis/argoproj.io/v1alpha1/namespaces/argocd/applications",
        sb.url
    );
    let plain = |meta: &Value, items: &[Value]| -> Vec<u8> {
        // The API server's field order: kind, apiVersion, metadata, items.
        let mut out =
            br#"{"kind":"ApplicationList","apiVersion":"argoproj.io/v1alpha1","metadata":"#
                .to_vec();
        out.extend(serde_json::to_vec(meta).unwrap());
        out.extend(br#","items":"#);
        out.extend(serde_json::to_vec(items).unwrap());
        out.push(b'}');
        out
    };
    let (body, rv) = quiet_body(&sb, &h, &base, &token).await;
    let all = items();
    assert!(
        body == plain(&json!({"resourceVersion": rv.to_string()}), &all),
        "the Kubernetes list differs from the plain serialization"
    );
    let mut next: Option<String> = None;
    let mut offset = 0;
    let mut pages = 0;
    loop {
        let url = match &next {
            None => format!("{base}?limit=70"),
            Some(c) => format!("{base}?limit=70&continue={c}"),
        };
        let (body, _) = quiet_body(&sb, &h, &url, &token).await;
        let got: Value = serde_json::from_slice(&body).unwrap();
        let meta = got["metadata"].clone();
        let n = got["items"].as_array().unwrap().len();
        let all = items();
        assert!(
            body == plain(&meta, &all[offset..offset + n]),
            "page {pages} differs from the plain serialization"
        );
        offset += n;
        pages += 1;
        match meta["continue"].as_str() {
            Some(c) => {
                assert_eq!(
                    meta["remainingItemCount"].as_u64(),
                    Some((APPS - offset) as u64)
                );
                next = Some(c.to_string());
            }
            None => break,
        }
    }
    assert_eq!(offset, APPS);
    assert_eq!(pages, APPS.div_ceil(70));

    // The stream's initial messages are the same objects, projected the same way.
    let f = "result.type,result.application.metadata.name,result.application.status.sync.status";
    let mut resp = h
        .get(format!("{}/api/v1/stream/applications?fields={f}", sb.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let mut buf = Vec::new();
    let mut got: HashMap<String, String> = HashMap::new();
    while got.len() < APPS {
        let chunk = tokio::time::timeout(DEADLINE, resp.chunk())
            .await
            .expect("the stream sends its initial apps")
            .unwrap()
            .expect("the stream stays open");
        buf.extend_from_slice(&chunk);
        for line in lines(&mut buf) {
            if let Some(data) = line.strip_prefix("data:") {
                let v: Value = serde_json::from_str(data.trim()).unwrap();
                let name = v["result"]["application"]["metadata"]["name"]
                    .as_str()
                    .unwrap()
                    .to_string();
                got.insert(name, data.trim().to_string());
            }
        }
    }
    let paths: Vec<&str> = f.split(',').collect();
    for app in items() {
        let name = app["metadata"]["name"].as_str().unwrap().to_string();
        let want = reference_project(
            &json!({"result": {"type": "ADDED", "application": app}}),
            "",
            &paths,
            false,
        );
        let have: Value = serde_json::from_str(&got[&name]).unwrap();
        // Values, not bytes: an app may have changed between the first message and now.
        assert_eq!(
            have["result"]["type"], want["result"]["type"],
            "{name}: stream message type"
        );
        assert_eq!(
            have["result"]["application"]["metadata"], want["result"]["application"]["metadata"],
            "{name}"
        );
        assert!(
            have["result"]["application"].get("spec").is_none(),
            "{name}"
        );
    }
}
