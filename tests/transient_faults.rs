//! Transient faults (issue 7 item 6), over real HTTP with the real clients (kube-rs in core
//! mode, reqwest in API mode) against a sandbox started here, faults injected through its
//! `/_sandbox/faults` room. Oracles are independent of the product: the sandbox's own
//! `/_sandbox/truth` and fault state, and kubectl.
//!
//! - `shipdeck status -o json` (the real binary) rides out a few 500/503/429 answers on the
//!   list path in both modes, and still fails, clearly, when the fault outlasts the retries.
//! - A forced 409 on an Application update (sync, auto-sync) is retried and the update lands.
//! - A sync whose answer is lost is never sent again: after a client timeout it is reported
//!   as not done (or done, once the app shows it); through a proxy that delivers the write
//!   and cuts the connection before the answer, both modes read the app back and report it
//!   done, the write having been sent once.
//! - Both watchers say `reconnecting` (with the reason) while the fault lasts and converge
//!   on kubectl's view within 10 s of it clearing; the times are printed.
//! - Reads wait as long as a 429's `Retry-After` says (a stand-in server: the sandbox's
//!   fault answers carry none).

use serde_json::{Value, json};
use shipdeck::model::{Application, Connection, InfoEntry, Update};
use shipdeck::sandbox::auth::Role;
use shipdeck::sandbox::{Sandbox, SandboxOptions};
use shipdeck::secrets::Secret;
use shipdeck::sources::argocd::{ArgoApi, ArgoApiOptions};
use shipdeck::sources::git::GitMirrors;
use shipdeck::sources::kube::{CoreArgo, CoreOptions};
use shipdeck::sources::{ArgoSource, SyncRequest};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The bound the issue sets for convergence after a fault clears (a correctness bound,
/// generous on this machine; not a benchmark).
const CONVERGE_WITHIN: Duration = Duration::from_secs(10);

async fn start() -> Sandbox {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Sandbox::start(SandboxOptions {
        time_scale: 0.02,
        ..Default::default()
    })
    .await
    .expect("sandbox starts")
}

fn api(sb: &Sandbox, timeout: Option<Duration>) -> ArgoApi {
    ArgoApi::new(ArgoApiOptions {
        server: sb.url.clone(),
        token: Some(Secret::new(sb.world.users.token(Role::Admin))),
        timeout,
        ..Default::default()
    })
    .expect("API client")
}

async fn core(sb: &Sandbox, cache: &std::path::Path) -> CoreArgo {
    let kc = kube::config::Kubeconfig::read_from(sb.kubeconfig_path()).expect("kubeconfig");
    CoreArgo::connect(CoreOptions {
        kubeconfig: Some(kc),
        git: Some(Arc::new(GitMirrors::new(cache))),
        ..Default::default()
    })
    .await
    .expect("core mode connects")
}

async fn fault(sb: &Sandbox, body: Value) {
    let r = reqwest::Client::new()
        .post(format!("{}/_sandbox/faults", sb.url))
        .json(&body)
        .send()
        .await
        .expect("fault endpoint answers");
    assert!(r.status().is_success(), "fault {body} -> {}", r.status());
}

async fn clear_faults(sb: &Sandbox) {
    let r = reqwest::Client::new()
        .delete(format!("{}/_sandbox/faults", sb.url))
        .send()
        .await
        .expect("fault endpoint answers");
    assert!(r.status().is_success());
}

async fn fault_state(sb: &Sandbox) -> Value {
    reqwest::get(format!("{}/_sandbox/faults", sb.url))
        .await
        .expect("fault endpoint answers")
        .json()
        .await
        .expect("fault state is JSON")
}

async fn truth(sb: &Sandbox) -> Vec<Value> {
    reqwest::get(format!("{}/_sandbox/truth", sb.url))
        .await
        .expect("truth answers")
        .json()
        .await
        .expect("truth is JSON")
}

/// The real kubectl, or None when it is not installed (the only allowed skip).
fn kubectl(sb: &Sandbox, args: &[&str]) -> Option<Value> {
    let out = std::process::Command::new("kubectl")
        .env("KUBECONFIG", sb.kubeconfig_path())
        .env("HOME", std::env::temp_dir())
        .args(args)
        .args(["-o", "json", "--request-timeout=10s"])
        .output();
    let out = match out {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("kubectl does not run: {e}"),
        Ok(o) => o,
    };
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_slice(&out.stdout).expect("kubectl prints JSON"))
}

fn kubectl_available() -> bool {
    let found = std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok();
    if !found {
        println!("SKIP: kubectl is not on PATH");
    }
    found
}

/// name -> resourceVersion of every Application, as kubectl sees them.
fn kubectl_versions(sb: &Sandbox) -> BTreeMap<String, String> {
    let list = kubectl(sb, &["get", "applications.argoproj.io", "-n", "argocd"])
        .expect("kubectl is installed");
    list["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|o| {
            (
                o["metadata"]["name"].as_str().unwrap_or("").to_string(),
                o["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Core,
    Api,
}

/// `export K='v'` lines of the sandbox's env file.
fn env_of(sb: &Sandbox) -> BTreeMap<String, String> {
    std::fs::read_to_string(sb.env_path())
        .expect("env file")
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| {
            let v = v.trim();
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(v);
            (k.to_string(), v.replace(r"'\''", "'"))
        })
        .collect()
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// The real binary, with only what a user would have in the environment.
async fn shipdeck(sb: &Sandbox, mode: Mode, args: &[&str]) -> Out {
    let env = env_of(sb);
    let home = tempfile::tempdir().expect("tmp");
    let bin = std::env::var_os("SHIPDECK_E2E_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_shipdeck")));
    let mut cmd = tokio::process::Command::new(bin);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("XDG_CACHE_HOME", home.path().join("cache"))
        .env("SHIPDECK_DATA_DIR", home.path().join("data"))
        .env("USER", "fault-operator")
        .kill_on_drop(true);
    let mut all: Vec<&str> = args.to_vec();
    match mode {
        Mode::Core => {
            cmd.env(
                "KUBECONFIG",
                env.get("KUBECONFIG").cloned().unwrap_or_default(),
            );
            all.push("--core");
        }
        Mode::Api => {
            for k in ["ARGOCD_SERVER", "ARGOCD_AUTH_TOKEN"] {
                cmd.env(k, env.get(k).cloned().unwrap_or_default());
            }
        }
    }
    cmd.args(&all);
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("shipdeck {all:?} hung"))
        .expect("shipdeck runs");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn names(rows: &[Value]) -> Vec<String> {
    let mut v: Vec<String> = rows
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_string))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_rides_out_brief_5xx_and_429_in_both_modes() {
    let sb = start().await;
    let want = names(&truth(&sb).await);
    assert!(!want.is_empty(), "the estate has apps");
    for mode in [Mode::Core, Mode::Api] {
        for code in [500, 503, 429] {
            fault(
                &sb,
                json!({"fault": "fail", "path": "/applications", "status": code, "count": 3}),
            )
            .await;
            let out = shipdeck(&sb, mode, &["status", "--output", "json"]).await;
            assert_eq!(
                out.code, 0,
                "{mode:?}: status failed on {code} x3: {}",
                out.stderr
            );
            let rows: Vec<Value> = serde_json::from_str(&out.stdout).expect("status JSON");
            assert_eq!(names(&rows), want, "{mode:?} after {code} x3");
            // The three failures were served (the rule is used up), so the list did meet them.
            let state = fault_state(&sb).await;
            assert_eq!(state["rules"], json!([]), "{mode:?}/{code}: {state}");
        }
        // A fault that outlasts every attempt still fails, in bounded time, saying why.
        fault(
            &sb,
            json!({"fault": "fail", "path": "/applications", "status": 503, "count": 1000}),
        )
        .await;
        let out = shipdeck(&sb, mode, &["status", "--output", "json"]).await;
        clear_faults(&sb).await;
        assert_ne!(out.code, 0, "{mode:?}: status passed a lasting 503");
        assert!(
            out.stderr.contains("503") || out.stderr.contains("navailable"),
            "{mode:?}: the failure names the cause: {}",
            out.stderr
        );
    }
}

fn approval(id: &str) -> Vec<InfoEntry> {
    vec![InfoEntry {
        name: "approval-id".into(),
        value: id.into(),
    }]
}

/// An app with no operation in flight, and (when `auto` is Some) auto-sync as asked.
async fn quiet_app(source: &impl ArgoSource, auto: Option<bool>) -> Application {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let apps = source.list_applications().await.expect("list");
        if let Some(a) = apps.into_iter().find(|a| {
            a.operation.is_none()
                && !a.operation_in_progress()
                && auto.is_none_or(|want| a.auto_sync() == want)
        }) {
            return a;
        }
        assert!(Instant::now() < deadline, "no quiet app");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The Application as kubectl reads it.
fn kubectl_app(sb: &Sandbox, name: &str) -> Value {
    kubectl(
        sb,
        &["get", "applications.argoproj.io", "-n", "argocd", name],
    )
    .expect("kubectl is installed")
}

/// Does kubectl's Application carry the approval id, pending or started?
fn carries(app: &Value, id: &str) -> bool {
    let has = |op: &Value| {
        op["info"]
            .as_array()
            .is_some_and(|i| i.iter().any(|e| e["value"] == id))
    };
    has(&app["operation"]) || has(&app["status"]["operationState"]["operation"])
}

async fn conflict_is_retried(sb: &Sandbox, source: &impl ArgoSource, label: &str) {
    // Sync.
    let app = quiet_app(source, None).await;
    fault(sb, json!({"fault": "conflict", "count": 1})).await;
    let id = format!("{label}-409");
    let req = SyncRequest {
        initiated_by: "fault-operator".into(),
        info: approval(&id),
        ..Default::default()
    };
    source
        .sync(&app, req)
        .await
        .unwrap_or_else(|e| panic!("{label}: sync after one 409: {e}"));
    assert_eq!(
        fault_state(sb).await["pending_conflicts"],
        0,
        "{label}: the forced 409 was served"
    );
    let seen = kubectl_app(sb, &app.metadata.name);
    assert!(carries(&seen, &id), "{label}: the sync landed: {seen}");

    // Auto-sync off on an app that has it on.
    let app = quiet_app(source, Some(true)).await;
    fault(sb, json!({"fault": "conflict", "count": 1})).await;
    source
        .set_auto_sync(&app, false)
        .await
        .unwrap_or_else(|e| panic!("{label}: auto-sync off after one 409: {e}"));
    assert_eq!(fault_state(sb).await["pending_conflicts"], 0);
    let seen = kubectl_app(sb, &app.metadata.name);
    // Off either way Argo CD writes it: no `automated` (a PATCH) or `enabled: false`
    // (its `toggle-auto-sync` action keeps prune/selfHeal).
    let automated = &seen["spec"]["syncPolicy"]["automated"];
    assert!(
        automated.is_null() || automated["enabled"] == false,
        "{label}: auto-sync is off: {}",
        seen["spec"]["syncPolicy"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_conflict_on_an_application_update_is_retried_in_both_modes() {
    if !kubectl_available() {
        return;
    }
    let sb = start().await;
    let cache = tempfile::tempdir().expect("tmp");
    conflict_is_retried(&sb, &api(&sb, None), "api").await;
    conflict_is_retried(&sb, &core(&sb, cache.path()).await, "core").await;
}

/// Write `.operation` with these info entries straight into the Application (kube-rs), as
/// the API server would have done with a request whose answer was then lost.
async fn write_operation_behind_the_client(sb: &Sandbox, name: &str, info: Value) {
    let kc = kube::config::Kubeconfig::read_from(sb.kubeconfig_path()).expect("kubeconfig");
    let cfg = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .expect("config");
    let client = kube::Client::try_from(cfg).expect("client");
    let ar = kube::core::ApiResource::from_gvk_with_plural(
        &kube::core::GroupVersionKind::gvk("argoproj.io", "v1alpha1", "Application"),
        "applications",
    );
    let api: kube::Api<kube::core::DynamicObject> =
        kube::Api::namespaced_with(client, "argocd", &ar);
    let patch = json!({"operation": {
        "initiatedBy": {"username": "admin"},
        "info": info,
        "sync": {"prune": false, "syncStrategy": {"hook": {}}},
    }});
    api.patch(name, &Default::default(), &kube::api::Patch::Merge(&patch))
        .await
        .expect("operation written");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_whose_answer_is_lost_is_not_sent_again() {
    if !kubectl_available() {
        return;
    }
    let sb = start().await;
    // The client gives up after 1 s; the server holds /sync 3 s (and, the client gone,
    // never does it: the request dies with the connection).
    let source = api(&sb, Some(Duration::from_secs(1)));
    let req = |id: &str| SyncRequest {
        initiated_by: "fault-operator".into(),
        info: approval(id),
        ..Default::default()
    };

    // 1. It did not go through: said so, and not sent again.
    let app = quiet_app(&source, None).await;
    fault(
        &sb,
        json!({"fault": "delay", "path": "/sync", "ms": 3000, "count": 5}),
    )
    .await;
    let err = source
        .sync(&app, req("lost-1"))
        .await
        .expect_err("a sync the server never did is not reported as done");
    let msg = err.to_string();
    assert!(
        msg.contains("not resend") && msg.contains("timed out"),
        "the operator hears what happened: {msg}"
    );
    let state = fault_state(&sb).await;
    assert_eq!(state["rules"][0]["remaining"], 4, "sent once: {state}");
    assert!(!carries(&kubectl_app(&sb, &app.metadata.name), "lost-1"));
    clear_faults(&sb).await;

    // 2. It did go through (the operation appears while the answer is lost): reported as
    // done, and still sent once.
    let app = quiet_app(&source, None).await;
    fault(
        &sb,
        json!({"fault": "delay", "path": "/sync", "ms": 3000, "count": 5}),
    )
    .await;
    let name = app.metadata.name.clone();
    let (done, ()) = tokio::join!(source.sync(&app, req("lost-2")), async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        write_operation_behind_the_client(
            &sb,
            &name,
            json!([{"name": "approval-id", "value": "lost-2"},
                   {"name": "initiated-by", "value": "fault-operator"}]),
        )
        .await;
    });
    let got = done.unwrap_or_else(|e| panic!("the sync landed and must be reported so: {e}"));
    assert!(
        got.operation.is_some() || got.status.operation_state.is_some(),
        "the app returned shows the operation"
    );
    let state = fault_state(&sb).await;
    assert_eq!(state["rules"][0]["remaining"], 4, "sent once: {state}");
    assert!(carries(&kubectl_app(&sb, &name), "lost-2"));
}

/// What a watcher has shown so far: the apps by name with their resourceVersion, and its
/// latest connection state.
#[derive(Default)]
struct Board {
    versions: BTreeMap<String, String>,
    incomplete: std::collections::BTreeSet<String>,
    connection: Option<Connection>,
    saw_reconnecting: Option<String>,
}

impl Board {
    fn apply(&mut self, u: Update) {
        let rv = |a: &Application| a.metadata.resource_version.clone().unwrap_or_default();
        match u {
            Update::Resync { apps, .. } => {
                self.incomplete.clear();
                self.versions = apps
                    .iter()
                    .map(|(_, a)| (a.metadata.name.clone(), rv(a)))
                    .collect();
            }
            // API mode: Argo CD's projected list has no resourceVersion per app; the
            // whole apps follow as Details, which fill only what no change has since.
            // A large list comes in parts: the first begins afresh.
            Update::Summary { apps, first, .. } => {
                if first {
                    self.incomplete.clear();
                    self.versions.clear();
                }
                self.incomplete
                    .extend(apps.iter().map(|(id, _)| id.name.clone()));
                self.versions
                    .extend(apps.iter().map(|(_, a)| (a.metadata.name.clone(), rv(a))));
            }
            Update::Details { apps } => {
                for (id, a) in apps {
                    if self.incomplete.remove(&id.name) {
                        self.versions.insert(a.metadata.name.clone(), rv(&a));
                    }
                }
            }
            Update::Upsert(_, a) => {
                self.incomplete.remove(&a.metadata.name);
                self.versions.insert(a.metadata.name.clone(), rv(&a));
            }
            Update::Delete(id) => {
                self.incomplete.remove(&id.name);
                self.versions.retain(|n, _| *n != id.name);
            }
            Update::Connection { state, .. } => {
                if let Connection::Reconnecting { reason, .. } = &state {
                    self.saw_reconnecting = Some(reason.clone());
                }
                self.connection = Some(state);
            }
            // Other kinds of update (added elsewhere) do not change this board.
            #[allow(unreachable_patterns)]
            _ => {}
        }
    }

    /// Take every update that is waiting, or wait up to `wait` for one.
    async fn drain(&mut self, rx: &mut mpsc::Receiver<Update>, wait: Duration) {
        if let Ok(Some(u)) = tokio::time::timeout(wait, rx.recv()).await {
            self.apply(u);
        }
        while let Ok(u) = rx.try_recv() {
            self.apply(u);
        }
    }
}

/// Watch, fault the estate (every list and watch on Applications answers 503, open watches
/// dropped) while it changes, clear the fault, and time convergence on kubectl's view.
async fn outage_and_recovery(sb: &Sandbox, source: &impl ArgoSource, label: &str) -> Duration {
    let (tx, mut rx) = mpsc::channel(1024);
    let task = source.watch_applications(tx);
    let mut board = Board::default();
    let deadline = Instant::now() + Duration::from_secs(30);
    while board.connection != Some(Connection::Connected) {
        assert!(Instant::now() < deadline, "{label}: the watch connects");
        board.drain(&mut rx, Duration::from_millis(200)).await;
    }
    board.saw_reconnecting = None;

    fault(
        sb,
        json!({"fault": "fail", "path": "/applications", "status": 503}),
    )
    .await;
    fault(sb, json!({"fault": "drop-watches"})).await;
    // The first word may be the dropped stream; the next attempt meets the 503, and the
    // reason says so.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reason = board.saw_reconnecting.clone().unwrap_or_default();
        if reason.contains("503") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{label}: the watcher says reconnecting with the 503 as reason (last: {reason:?})"
        );
        board.drain(&mut rx, Duration::from_millis(200)).await;
    }
    // The estate changes while the watcher cannot see it; the outage lasts long enough for
    // an uncapped backoff to grow well past the bound.
    fault(
        sb,
        json!({"fault": "churn", "per_second": 20, "seconds": 2}),
    )
    .await;
    let outage_end = Instant::now() + Duration::from_secs(12);
    while Instant::now() < outage_end {
        board.drain(&mut rx, Duration::from_millis(200)).await;
        assert!(
            !matches!(board.connection, Some(Connection::Connected)),
            "{label}: said connected during the outage"
        );
    }
    clear_faults(sb).await;
    let cleared = Instant::now();
    // (kubectl is read only now: during the outage its list fails like everyone's.)
    assert_ne!(
        board.versions,
        kubectl_versions(sb),
        "{label}: the churn changed apps the watcher could not see"
    );
    loop {
        board.drain(&mut rx, Duration::from_millis(100)).await;
        if board.connection == Some(Connection::Connected) && board.versions == kubectl_versions(sb)
        {
            break;
        }
        assert!(
            cleared.elapsed() < CONVERGE_WITHIN,
            "{label}: converged within {CONVERGE_WITHIN:?} of the fault clearing (state {:?})",
            board.connection
        );
    }
    let took = cleared.elapsed();
    println!(
        "{label}: converged {} ms after the fault cleared",
        took.as_millis()
    );
    task.abort();
    took
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_watchers_say_reconnecting_during_a_fault_and_converge_after() {
    if !kubectl_available() {
        return;
    }
    let sb = start().await;
    let cache = tempfile::tempdir().expect("tmp");
    let core_took = outage_and_recovery(&sb, &core(&sb, cache.path()).await, "core").await;
    let api_took = outage_and_recovery(&sb, &api(&sb, None), "api").await;
    println!(
        "convergence after a 12 s outage: core {} ms, api {} ms",
        core_took.as_millis(),
        api_took.as_millis()
    );
}

/// A stand-in server that answers the first request 429 with `Retry-After: 1` (and the
/// Kubernetes Status' `retryAfterSeconds: 1`), then an empty application list, and
/// remembers when each request came.
async fn too_many_requests_once() -> (String, Arc<std::sync::Mutex<Vec<Instant>>>) {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    let seen: Arc<std::sync::Mutex<Vec<Instant>>> = Arc::default();
    let log = seen.clone();
    let app = axum::Router::new().fallback(move || {
        let log = log.clone();
        async move {
            let n = {
                let mut l = log.lock().expect("log");
                l.push(Instant::now());
                l.len()
            };
            if n == 1 {
                let status = json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                    "reason": "TooManyRequests", "code": 429, "message": "slow down",
                    "details": {"retryAfterSeconds": 1}});
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::RETRY_AFTER, "1")],
                    axum::Json(status),
                )
                    .into_response();
            }
            axum::Json(
                json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "ApplicationList",
                "metadata": {"resourceVersion": "1"}, "items": []}),
            )
            .into_response()
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

fn waited_at_least_a_second(seen: &std::sync::Mutex<Vec<Instant>>, label: &str) {
    let seen = seen.lock().expect("log");
    assert_eq!(seen.len(), 2, "{label}: one 429, then one more request");
    // A lower bound, not a speed claim: the client must not ask again before it was told.
    assert!(
        seen[1] - seen[0] >= Duration::from_secs(1),
        "{label}: asked again after {:?}, before the Retry-After of 1 s",
        seen[1] - seen[0]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_wait_as_long_as_retry_after_says() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    // API mode: the Retry-After header.
    let (url, seen) = too_many_requests_once().await;
    let api = ArgoApi::new(ArgoApiOptions {
        server: url,
        token: Some(Secret::new("t")),
        ..Default::default()
    })
    .expect("client");
    let apps = api.list_applications().await.expect("list after a 429");
    assert!(apps.is_empty());
    waited_at_least_a_second(&seen, "api");

    // Core mode: the Status' retryAfterSeconds (kube-rs keeps no headers in its errors).
    let (url, seen) = too_many_requests_once().await;
    let yaml = format!(
        "apiVersion: v1\nkind: Config\ncurrent-context: stand-in\nclusters:\n- name: stand-in\n  cluster:\n    server: {url}\ncontexts:\n- name: stand-in\n  context:\n    cluster: stand-in\n    user: nobody\nusers:\n- name: nobody\n  user: {{}}\n"
    );
    let kc = kube::config::Kubeconfig::from_yaml(&yaml).expect("kubeconfig");
    let cache = tempfile::tempdir().expect("tmp");
    let core = CoreArgo::connect(CoreOptions {
        kubeconfig: Some(kc),
        git: Some(Arc::new(GitMirrors::new(cache.path()))),
        ..Default::default()
    })
    .await
    .expect("core mode connects");
    let apps = core.list_applications().await.expect("list after a 429");
    assert!(apps.is_empty());
    waited_at_least_a_second(&seen, "core");
}

/// A TCP proxy in front of the sandbox that passes everything through, except that the
/// first request starting with `method` whose request line contains `path` is delivered
/// to the sandbox and then its connection is cut before the answer comes back: the write
/// is done, the client never hears so. Counts the matching requests it saw.
async fn answer_losing_proxy(
    upstream: &str,
    method: &'static str,
    path: &'static str,
) -> (String, Arc<std::sync::atomic::AtomicU32>) {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let upstream = upstream
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let matched = Arc::new(AtomicU32::new(0));
    let armed = Arc::new(AtomicBool::new(true));
    let counter = matched.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                continue;
            };
            let (counter, armed) = (counter.clone(), armed.clone());
            tokio::spawn(async move {
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let cut = Arc::new(AtomicBool::new(false));
                let cut_up = cut.clone();
                let up = tokio::spawn(async move {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = cr.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        let head = String::from_utf8_lossy(&buf[..n.min(512)]).into_owned();
                        let line = head.lines().next().unwrap_or("");
                        if line.starts_with(method) && line.contains(path) {
                            counter.fetch_add(1, Ordering::SeqCst);
                            if armed.swap(false, Ordering::SeqCst) {
                                cut_up.store(true, Ordering::SeqCst);
                            }
                        }
                        if sw.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n) = sr.read(&mut buf).await {
                    if n == 0 || cut.load(Ordering::SeqCst) {
                        break;
                    }
                    if cw.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
                // Dropping both halves closes the client's connection.
                up.abort();
            });
        }
    });
    (url, matched)
}

/// Sync through a proxy that loses the answer to the write: reported as done (the app
/// shows it), sent once, run once.
async fn lost_answer_is_settled_by_reading(
    sb: &Sandbox,
    source: &impl ArgoSource,
    sent: &std::sync::atomic::AtomicU32,
    label: &str,
) {
    let app = quiet_app(source, None).await;
    let id = format!("{label}-cut");
    let req = SyncRequest {
        initiated_by: "fault-operator".into(),
        info: approval(&id),
        ..Default::default()
    };
    let got = source
        .sync(&app, req)
        .await
        .unwrap_or_else(|e| panic!("{label}: the sync was done and must be reported so: {e}"));
    assert!(
        got.operation.is_some() || got.status.operation_state.is_some(),
        "{label}: the app returned shows the operation"
    );
    assert_eq!(
        sent.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "{label}: the write was sent once"
    );
    let seen = kubectl_app(sb, &app.metadata.name);
    assert!(carries(&seen, &id), "{label}: kubectl sees it: {seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_whose_connection_breaks_is_read_back_not_resent() {
    if !kubectl_available() {
        return;
    }
    let sb = start().await;
    // API mode: the POST .../sync.
    let (url, sent) = answer_losing_proxy(&sb.url, "POST ", "/sync").await;
    let api = ArgoApi::new(ArgoApiOptions {
        server: url,
        token: Some(Secret::new(sb.world.users.token(Role::Admin))),
        ..Default::default()
    })
    .expect("client");
    lost_answer_is_settled_by_reading(&sb, &api, &sent, "api").await;

    // Core mode: the PUT of the Application with its `.operation`.
    let (url, sent) = answer_losing_proxy(&sb.url, "PUT ", "/applications/").await;
    let text = std::fs::read_to_string(sb.kubeconfig_path()).expect("kubeconfig");
    let kc = kube::config::Kubeconfig::from_yaml(&text.replace(&sb.url, &url)).expect("yaml");
    let cache = tempfile::tempdir().expect("tmp");
    let core = CoreArgo::connect(CoreOptions {
        kubeconfig: Some(kc),
        git: Some(Arc::new(GitMirrors::new(cache.path()))),
        ..Default::default()
    })
    .await
    .expect("core mode connects");
    lost_answer_is_settled_by_reading(&sb, &core, &sent, "core").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_ride_out_a_connection_cut_mid_answer_in_both_modes() {
    let sb = start().await;
    let want = names(&truth(&sb).await);
    // API mode: the first list's connection is cut before its answer; the read is retried.
    let (url, seen) = answer_losing_proxy(&sb.url, "GET ", "/api/v1/applications").await;
    let api = ArgoApi::new(ArgoApiOptions {
        server: url,
        token: Some(Secret::new(sb.world.users.token(Role::Admin))),
        ..Default::default()
    })
    .expect("client");
    let apps = api.list_applications().await.expect("list after a cut");
    let mut got: Vec<String> = apps.iter().map(|a| a.metadata.name.clone()).collect();
    got.sort();
    assert_eq!(got, want, "api");
    assert_eq!(
        seen.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "api: cut, then again"
    );

    // Core mode, likewise.
    let (url, seen) = answer_losing_proxy(&sb.url, "GET ", "/applications").await;
    let text = std::fs::read_to_string(sb.kubeconfig_path()).expect("kubeconfig");
    let kc = kube::config::Kubeconfig::from_yaml(&text.replace(&sb.url, &url)).expect("yaml");
    let cache = tempfile::tempdir().expect("tmp");
    let core = CoreArgo::connect(CoreOptions {
        kubeconfig: Some(kc),
        git: Some(Arc::new(GitMirrors::new(cache.path()))),
        ..Default::default()
    })
    .await
    .expect("core mode connects");
    let apps = core.list_applications().await.expect("list after a cut");
    let mut got: Vec<String> = apps.iter().map(|a| a.metadata.name.clone()).collect();
    got.sort();
    assert_eq!(got, want, "core");
    assert_eq!(
        seen.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "core: cut, then again"
    );
}
