//! Four-eyes approvals (`approvers = 2`) over the in-process sandbox with the real clients:
//! a request by the admin identity is written on the Application and nothing is sent; the
//! admin cannot approve it; the approver identity's approval sends the sync exactly once with
//! both names in the operation's info; a request expires; a new commit voids one; core mode
//! does the main path with a SelfSubjectReview for identity. Both operators run with the
//! SAME local operator name, so only the server-reported identity can tell them apart. The
//! oracle is the sandbox's own store (what Argo CD / the cluster holds), never shipdeck.

mod common;

use serde_json::Value;
use shipdeck::model::ApprovalPolicy;
use shipdeck::ops::actions::{self, ActionError, ApproveOptions, Ops, SyncOptions};
use shipdeck::ops::approval::Approval;
use shipdeck::ops::audit::AuditLog;
use shipdeck::ops::classify::Classifier;
use shipdeck::ops::policy::{EnvPolicy, Policies, Refusal};
use shipdeck::sandbox::auth::Role;
use shipdeck::sandbox::store::APPLICATIONS;
use shipdeck::sandbox::{IN_CLUSTER, Sandbox, SandboxOptions};
use shipdeck::secrets::Secret;
use shipdeck::sources::argocd::{ArgoApi, ArgoApiOptions};
use shipdeck::sources::git::GitMirrors;
use shipdeck::sources::kube::{CoreArgo, CoreOptions};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

const ANNOTATION: &str = "shipdeck.io/approval-request";

fn api(sb: &Sandbox, role: Role) -> ArgoApi {
    common::tls();
    ArgoApi::new(ArgoApiOptions {
        server: sb.url.clone(),
        token: Some(Secret::new(sb.world.users.token(role))),
        ..Default::default()
    })
    .expect("client")
}

async fn core(sb: &Sandbox, context: &str, dir: &std::path::Path) -> CoreArgo {
    common::tls();
    let kc = kube::config::Kubeconfig::read_from(sb.kubeconfig_path()).expect("kubeconfig");
    CoreArgo::connect(CoreOptions {
        context: Some(context.into()),
        kubeconfig: Some(kc),
        git: Some(Arc::new(GitMirrors::new(dir.join(context)))),
        ..Default::default()
    })
    .await
    .expect("core mode connects")
}

/// Prod needs two approvers; both operators carry the same local name on purpose.
fn ops(dir: &std::path::Path, ttl: Option<&str>) -> Ops {
    let mut m = BTreeMap::new();
    m.insert(
        "prod".to_string(),
        EnvPolicy {
            approval: ApprovalPolicy::Required,
            approvers: 2,
            prune_without_confirmation: false,
            approval_request_ttl: ttl.map(str::to_owned),
        },
    );
    Ops {
        operator: "same-laptop-user".into(),
        read_only: false,
        policies: Policies::new(m),
        classifier: Classifier::default(),
        audit: AuditLog::in_dir(&dir.join("audit")),
    }
}

fn approval(app: &str, reason: &str) -> Option<Approval> {
    Some(Approval {
        named_app: app.into(),
        reason: Some(reason.into()),
        operator: "same-laptop-user".into(),
    })
}

/// The Application as the sandbox holds it (the oracle).
fn stored(sb: &Sandbox, name: &str) -> Value {
    sb.world
        .store
        .get(IN_CLUSTER, APPLICATIONS, "argocd", name)
        .map(|v| (*v).clone())
        .expect("app in the store")
}

fn stored_request(sb: &Sandbox, name: &str) -> Option<Value> {
    stored(sb, name)["metadata"]["annotations"][ANNOTATION]
        .as_str()
        .map(|s| serde_json::from_str(s).expect("request annotation is JSON"))
}

/// Deployments recorded so far: the id of the newest history entry. Argo CD numbers its
/// history entries one up per deployment and keeps only the last ten, so the length stops
/// growing while the id does not.
fn history_len(sb: &Sandbox, name: &str) -> usize {
    stored(sb, name)["status"]["history"]
        .as_array()
        .and_then(|h| h.last())
        .and_then(|e| e["id"].as_u64())
        .map_or(0, |id| id as usize)
}

fn info_of(op: &Value) -> BTreeMap<String, String> {
    op["info"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|i| {
            (
                i["name"].as_str().unwrap_or("").to_string(),
                i["value"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn requested_id(r: Result<actions::ActionOutcome, ActionError>) -> String {
    match r {
        Err(ActionError::Refused(Refusal::AwaitingSecondApprover(a))) => {
            assert_eq!(a.requested_by, "admin", "the server's identity, not $USER");
            a.id
        }
        other => panic!("expected a request, got {other:?}"),
    }
}

fn audit_lines(dir: &std::path::Path) -> Vec<Value> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir.join("audit")).expect("audit dir") {
        let text = std::fs::read_to_string(e.expect("entry").path()).unwrap_or_default();
        out.extend(text.lines().filter_map(|l| serde_json::from_str(l).ok()));
    }
    out
}

/// Wait until the app's last operation (started after `before`) finished; its operation.
async fn finished_operation(sb: &Sandbox, name: &str, before: usize) -> Value {
    common::wait_until(&format!("{name}: the approved sync finished"), || {
        let app = stored(sb, name);
        let st = &app["status"]["operationState"];
        (app["operation"].is_null()
            && st["finishedAt"].is_string()
            && history_len(sb, name) > before)
            .then(|| st["operation"].clone())
    })
    .await
}

async fn sync_request<S: shipdeck::sources::ArgoSource>(
    src: &S,
    ops: &Ops,
    app: &str,
) -> Result<actions::ActionOutcome, ActionError> {
    actions::sync(
        src,
        ops,
        app,
        SyncOptions {
            approval: approval(app, "release 42 for the cart team"),
            ..Default::default()
        },
    )
    .await
}

async fn approve<S: shipdeck::sources::ArgoSource>(
    src: &S,
    ops: &Ops,
    app: &str,
    id: &str,
) -> Result<actions::ActionOutcome, ActionError> {
    actions::approve(
        src,
        ops,
        app,
        ApproveOptions {
            request: Some(id.into()),
            approval: approval(app, "looked at the diff"),
            ..Default::default()
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_eyes_request_approve_self_refusal_expiry_and_void() {
    let sb = Sandbox::start(SandboxOptions {
        time_scale: 0.02,
        ..Default::default()
    })
    .await
    .expect("sandbox starts");
    let dir = tempfile::tempdir().expect("temp dir");
    let ops = ops(dir.path(), None);
    let admin = api(&sb, Role::Admin);
    let approver = api(&sb, Role::Approver);

    // --- API mode, main path: admin requests, nothing is sent.
    let app = "cart-prod";
    let before = history_len(&sb, app);
    let id = requested_id(sync_request(&admin, &ops, app).await);
    let req = stored_request(&sb, app).expect("request written on the Application");
    assert_eq!(req["id"], id.as_str());
    assert_eq!(req["requestedBy"], "admin");
    assert_eq!(req["action"], "sync");
    assert_eq!(req["reason"], "release 42 for the cart team");
    assert_eq!(
        req["targetRevision"],
        stored(&sb, app)["status"]["sync"]["revision"],
        "bound to Git's target revision"
    );
    assert!(req["diffDigest"].is_string());
    assert!(stored(&sb, app)["operation"].is_null(), "nothing sent yet");

    // The requester approving their own request is refused, audited, and changes nothing.
    match approve(&admin, &ops, app, &id).await {
        Err(ActionError::Refused(Refusal::SelfApproval { who, .. })) => assert_eq!(who, "admin"),
        other => panic!("self-approval must be refused: {other:?}"),
    }
    assert!(stored(&sb, app)["operation"].is_null());
    assert!(
        stored_request(&sb, app).is_some(),
        "the request still waits"
    );
    assert!(
        audit_lines(dir.path())
            .iter()
            .any(|l| l["action"] == "approve" && l["outcome"] == "refused"),
        "self-approval audited"
    );
    assert!(
        audit_lines(dir.path())
            .iter()
            .any(|l| l["action"] == "request"
                && l["outcome"] == "requested"
                && l["who"] == "admin")
    );

    // The approver's approval sends it, once, with both names.
    let outcome = approve(&approver, &ops, app, &id)
        .await
        .expect("the approver's approval sends the sync");
    assert_eq!(outcome.action, "sync");
    assert!(
        stored_request(&sb, app).is_none(),
        "the request is consumed"
    );
    let op = finished_operation(&sb, app, before).await;
    let info = info_of(&op);
    assert_eq!(info.get("requested-by").map(String::as_str), Some("admin"));
    assert_eq!(
        info.get("approved-by").map(String::as_str),
        Some("approver")
    );
    assert_eq!(info.get("approval-id"), Some(&id));
    assert_eq!(
        op["sync"]["revision"], req["targetRevision"],
        "the sync is pinned to the requested revision"
    );
    assert_eq!(history_len(&sb, app), before + 1, "exactly one deployment");
    // A second approval finds nothing to approve: nothing is sent twice.
    match approve(&approver, &ops, app, &id).await {
        Err(ActionError::Refused(Refusal::NoRequest { .. })) => {}
        other => panic!("a used request must not send again: {other:?}"),
    }
    assert_eq!(history_len(&sb, app), before + 1);
    assert!(
        audit_lines(dir.path())
            .iter()
            .any(|l| l["action"] == "approve"
                && l["outcome"] == "approved"
                && l["who"] == "approver")
    );

    // --- Expiry: a request with a one-second TTL is refused once the clock passes it.
    let short = ops_with_ttl(dir.path(), "1s");
    let app = "catalog-prod";
    let id = requested_id(sync_request(&admin, &short, app).await);
    let expires: chrono::DateTime<chrono::Utc> =
        stored_request(&sb, app).expect("request")["expires"]
            .as_str()
            .and_then(|s| s.parse().ok())
            .expect("expires is RFC 3339");
    common::wait_true_within(
        "the request's expiry passes",
        Duration::from_secs(10),
        || chrono::Utc::now() > expires,
    )
    .await;
    match approve(&approver, &short, app, &id).await {
        Err(ActionError::Refused(Refusal::RequestStale { standing, .. })) => {
            assert!(standing.contains("expired"), "{standing}")
        }
        other => panic!("an expired request must be refused: {other:?}"),
    }
    assert!(stored(&sb, app)["operation"].is_null());

    // --- Core mode, main path: SelfSubjectReview names admin and approver.
    let core_admin = core(&sb, IN_CLUSTER, dir.path()).await;
    let core_approver = core(&sb, "approver@in-cluster", dir.path()).await;
    let app = "checkout-prod";
    let before = history_len(&sb, app);
    let id = requested_id(sync_request(&core_admin, &ops, app).await);
    assert_eq!(
        stored_request(&sb, app).expect("request")["requestedBy"],
        "admin"
    );
    match approve(&core_admin, &ops, app, &id).await {
        Err(ActionError::Refused(Refusal::SelfApproval { .. })) => {}
        other => panic!("self-approval must be refused in core mode: {other:?}"),
    }
    approve(&core_approver, &ops, app, &id)
        .await
        .expect("core-mode approval sends");
    let info = info_of(&finished_operation(&sb, app, before).await);
    assert_eq!(info.get("requested-by").map(String::as_str), Some("admin"));
    assert_eq!(
        info.get("approved-by").map(String::as_str),
        Some("approver")
    );
    assert_eq!(history_len(&sb, app), before + 1);

    // --- Void: a new commit on the tracked branch voids the request (last: it moves Git
    // for every app on main).
    let app = "frontend-prod";
    let id = requested_id(sync_request(&admin, &ops, app).await);
    let sha = sb
        .world
        .repo
        .commit_files(
            "main",
            &[(
                "apps/frontend/prod/NOTES.md".into(),
                "a new commit after the request\n".into(),
            )],
            "docs: a commit after the approval request",
            "Dev <dev@example.com>",
        )
        .expect("commit");
    let _ = actions::refresh(&admin, app, false).await;
    common::wait_until("Argo CD compares frontend-prod with the new commit", || {
        (stored(&sb, app)["status"]["sync"]["revision"] == sha.as_str()).then_some(())
    })
    .await;
    match approve(&approver, &ops, app, &id).await {
        Err(ActionError::Refused(Refusal::RequestStale { standing, .. })) => {
            assert!(standing.contains("Git moved"), "{standing}")
        }
        other => panic!("a request voided by a new commit must be refused: {other:?}"),
    }
    assert!(stored(&sb, app)["operation"].is_null(), "nothing sent");
    sb.stop().await;
}

fn ops_with_ttl(dir: &std::path::Path, ttl: &str) -> Ops {
    ops(dir, Some(ttl))
}
