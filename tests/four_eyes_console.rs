//! Four-eyes in the console, two operators on one in-process sandbox, each with their own
//! headless console over the real Argo CD API client (admin's token, approver's token) and
//! the SAME local operator name: the admin's approval screen writes a request (nothing is
//! sent); the approver's board marks the cell "1/2", `:requests` lists it with the
//! requester and why, Enter opens the approval screen with who/when/why, and approving there
//! sends the sync with both names in the operation's info. The oracle is the sandbox's store.

mod common;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use shipdeck::model::ApprovalPolicy;
use shipdeck::ops::actions::Ops;
use shipdeck::ops::audit::AuditLog;
use shipdeck::ops::estate::Estate;
use shipdeck::ops::policy::{EnvPolicy, Policies};
use shipdeck::sandbox::auth::Role;
use shipdeck::sandbox::store::APPLICATIONS;
use shipdeck::sandbox::{IN_CLUSTER, Sandbox};
use shipdeck::secrets::Secret;
use shipdeck::sources::ArgoSource;
use shipdeck::sources::argocd::{ArgoApi, ArgoApiOptions};
use shipdeck::sources::git::GitMirrors;
use shipdeck::tui::adapt::ArgoProvider;
use shipdeck::tui::app::Headless;
use shipdeck::tui::console::{Console, Settings};
use shipdeck::tui::request::Provider;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const W: u16 = 170;
const H: u16 = 48;

fn policies() -> Policies {
    let mut m = BTreeMap::new();
    m.insert(
        "prod".to_string(),
        EnvPolicy {
            approval: ApprovalPolicy::Required,
            approvers: 2,
            prune_without_confirmation: false,
            approval_request_ttl: None,
        },
    );
    Policies::new(m)
}

struct Person {
    h: Headless,
    _watch: tokio::task::JoinHandle<()>,
}

fn console_as(sb: &Sandbox, role: Role, dir: &std::path::Path) -> Person {
    common::tls();
    let argo = ArgoApi::new(ArgoApiOptions {
        name: Some("sandbox".into()),
        server: sb.url.clone(),
        token: Some(Secret::new(sb.world.users.token(role))),
        workload_poll: Some(Duration::from_millis(100)),
        ..Default::default()
    })
    .expect("API client");
    let (tx, rx) = tokio::sync::mpsc::channel(4096);
    let watch = argo.watch_applications(tx);
    let ops = Ops {
        operator: "same-laptop-user".into(),
        read_only: false,
        policies: policies(),
        classifier: Default::default(),
        audit: AuditLog::in_dir(&dir.join(role.username()).join("audit")),
    };
    let git = Some(Arc::new(GitMirrors::new(
        dir.join(role.username()).join("mirrors"),
    )));
    let provider: Arc<dyn Provider> =
        Arc::new(ArgoProvider::new(vec![argo], ops, git, "sandbox".into()));
    let console = Console::new(
        Estate::new(),
        Settings {
            operator: "same-laptop-user".into(),
            source_label: "sandbox".into(),
            policies: policies(),
            ..Settings::default()
        },
    );
    Person {
        h: Headless::new(console, provider, rx),
        _watch: watch,
    }
}

fn press(h: &mut Headless, code: KeyCode) {
    h.key(KeyEvent::new(code, KeyModifiers::NONE));
}

fn command(h: &mut Headless, cmd: &str) {
    press(h, KeyCode::Char(':'));
    h.type_str(cmd);
    press(h, KeyCode::Enter);
}

async fn screen_until(h: &mut Headless, what: &str, cond: impl Fn(&str) -> bool) -> String {
    for _ in 0..600 {
        let s = h.screen(W, H);
        if cond(&s) {
            return s;
        }
        h.step(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}:\n{}", h.screen(W, H));
}

async fn review_loaded(h: &mut Headless) -> String {
    screen_until(h, "the review", |s| {
        s.contains("Type ") && !s.contains("computing diff") && !s.contains("checking permission")
    })
    .await
}

fn stored(sb: &Sandbox, name: &str) -> serde_json::Value {
    sb.world
        .store
        .get(IN_CLUSTER, APPLICATIONS, "argocd", name)
        .map(|v| (*v).clone())
        .expect("app in the store")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_in_one_console_approve_in_another() {
    let sb = common::sandbox_scaled(0.02).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let name = "cart-prod";
    let mut admin = console_as(&sb, Role::Admin, dir.path());
    assert!(
        admin
            .h
            .until(Duration::from_secs(30), |c| !c
                .estate
                .find_by_name(name)
                .is_empty())
            .await
    );

    // The admin's approval screen says a confirmation writes a request, and it does.
    command(&mut admin.h, "env prod");
    press(&mut admin.h, KeyCode::Char('/'));
    admin.h.type_str(name);
    press(&mut admin.h, KeyCode::Enter);
    press(&mut admin.h, KeyCode::Char('s'));
    let s = review_loaded(&mut admin.h).await;
    assert!(s.contains("confirming writes a request"), "{s}");
    admin.h.type_str(name);
    press(&mut admin.h, KeyCode::Tab);
    admin.h.type_str("release 42");
    press(&mut admin.h, KeyCode::Enter);
    let s = screen_until(&mut admin.h, "the request written", |s| {
        s.contains("⚑ requested")
    })
    .await;
    assert!(s.contains("needs a second approver"), "{s}");
    let raw = stored(&sb, name)["metadata"]["annotations"]["shipdeck.io/approval-request"]
        .as_str()
        .map(str::to_owned)
        .expect("the request is on the Application");
    let req: serde_json::Value = serde_json::from_str(&raw).expect("JSON");
    assert_eq!(req["requestedBy"], "admin");
    assert!(stored(&sb, name)["operation"].is_null(), "nothing sent");

    // The approver's board marks the cell, :requests lists it.
    let mut approver = console_as(&sb, Role::Approver, dir.path());
    let s = screen_until(&mut approver.h, "the board's 1/2 mark", |s| {
        s.contains("1/2")
    })
    .await;
    assert!(s.contains("1/2"), "{s}");
    command(&mut approver.h, "requests");
    let s = screen_until(&mut approver.h, "the request listed", |s| {
        s.contains("1 requests waiting for you") && s.contains("release 42")
    })
    .await;
    assert!(s.contains(name) && s.contains("admin"), "{s}");

    // The admin's own :requests hides it (it waits for someone else).
    command(&mut admin.h, "requests");
    let s = screen_until(&mut admin.h, "own request hidden", |s| {
        s.contains("1 of your own requests")
    })
    .await;
    assert!(s.contains("0 requests waiting for you"), "{s}");

    // Enter: the approval screen shows who, when, why; approving sends.
    press(&mut approver.h, KeyCode::Enter);
    let s = review_loaded(&mut approver.h).await;
    assert!(s.contains("requested by admin"), "{s}");
    assert!(
        s.contains("1 of 2 approvals") && s.contains("why: release 42"),
        "{s}"
    );
    approver.h.type_str(name);
    press(&mut approver.h, KeyCode::Tab);
    approver.h.type_str("diff reviewed");
    press(&mut approver.h, KeyCode::Enter);
    let op = common::wait_until("the approved sync finished", || {
        let app = stored(&sb, name);
        let st = &app["status"]["operationState"];
        let info = st["operation"]["info"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let has = |k: &str, v: &str| info.iter().any(|i| i["name"] == k && i["value"] == v);
        (app["operation"].is_null()
            && st["finishedAt"].is_string()
            && has("requested-by", "admin")
            && has("approved-by", "approver"))
        .then(|| st.clone())
    })
    .await;
    assert_eq!(op["phase"], "Succeeded", "{op}");
    assert!(
        stored(&sb, name)["metadata"]["annotations"]["shipdeck.io/approval-request"].is_null(),
        "the request is consumed"
    );
    sb.stop().await;
}
