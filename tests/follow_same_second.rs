//! Two syncs back to back within one second (issue 9): Argo CD's `startedAt` has whole
//! seconds, so the second operation's state looks like the first's by time alone. The
//! follower knows its own operation by the `shipdeck-op` info entry it sent (Argo CD keeps
//! `operation.info` in `status.operationState.operation.info`): the first sync is followed
//! to its success, the second (which the sandbox's `deny-apply` fault makes Argo CD end
//! `Failed`) to its own failure, with Argo CD's message, in API and core mode. The oracle
//! is the Application as the sandbox's store holds it: both operations started in the same
//! second, the second's id is in the failed operation state.

mod common;

use serde_json::{Value, json};
use shipdeck::ops::actions::{self, INFO_OP_ID, Ops, SyncOptions};
use shipdeck::ops::approval::Approval;
use shipdeck::ops::audit::AuditLog;
use shipdeck::ops::policy::Policies;
use shipdeck::sandbox::Sandbox;
use shipdeck::sandbox::auth::Role;
use shipdeck::secrets::Secret;
use shipdeck::sources::ArgoSource;
use shipdeck::sources::argocd::{ArgoApi, ArgoApiOptions};
use shipdeck::sources::git::GitMirrors;
use shipdeck::sources::kube::{CoreArgo, CoreOptions};
use std::sync::Arc;
use std::time::Duration;

const APP: &str = "checkout-prod";
const DENIAL: &str = "image registry ghcr.io/acme is not allowed in prod";
const POLL: Duration = Duration::from_millis(20);
const FOLLOW: Duration = Duration::from_secs(60);

fn op_state(sb: &Sandbox) -> Value {
    sb.world
        .store
        .get(
            shipdeck::sandbox::IN_CLUSTER,
            shipdeck::sandbox::store::APPLICATIONS,
            shipdeck::sandbox::ARGOCD_NAMESPACE,
            APP,
        )
        .map(|a| a["status"]["operationState"].clone())
        .unwrap_or(Value::Null)
}

fn op_id(state: &Value) -> Option<String> {
    state["operation"]["info"]
        .as_array()?
        .iter()
        .find(|i| i["name"] == INFO_OP_ID)
        .and_then(|i| i["value"].as_str().map(String::from))
}

async fn clear_faults(sb: &Sandbox) {
    let r = common::http()
        .delete(format!("{}/_sandbox/faults", sb.url))
        .send()
        .await
        .expect("faults endpoint");
    assert!(r.status().is_success());
}

fn opts(reason: &str) -> SyncOptions {
    SyncOptions {
        approval: Some(Approval {
            named_app: APP.into(),
            reason: Some(reason.into()),
            operator: "ana".into(),
        }),
        ..Default::default()
    }
}

/// Sync and follow twice in a row, the second denied on apply; repeat until the two
/// operations started within the same second (the case `startedAt` cannot tell apart).
async fn two_syncs_in_one_second(sb: &Sandbox, src: &impl ArgoSource, ops: &Ops, mode: &str) {
    let deployment = src
        .get_application(APP, shipdeck::sources::Refresh::None)
        .await
        .expect("app")
        .status
        .resources
        .iter()
        .find(|r| r.kind == "Deployment")
        .map(|r| r.name.clone())
        .expect("a Deployment");
    // On a loaded machine many attempts overrun their second: try for a while, not a count.
    let until = std::time::Instant::now() + Duration::from_secs(120);
    let mut attempt = 0;
    while std::time::Instant::now() < until {
        attempt += 1;
        clear_faults(sb).await;
        // Start just after a second begins, so both operations fit in it more often
        // (a condition on the clock, polled).
        common::wait_true_within("a fresh second", Duration::from_secs(5), || {
            chrono::Utc::now().timestamp_subsec_millis() < 100
        })
        .await;
        let first = actions::sync(src, ops, APP, opts("first"))
            .await
            .unwrap_or_else(|e| panic!("{mode}: first sync sent: {e}"));
        let r1 = actions::follow_operation(src, ops, &first, FOLLOW, POLL).await;
        let s1 = op_state(sb);
        let app1 = r1.unwrap_or_else(|e| panic!("{mode}: the first sync succeeds: {e}; {s1}"));
        assert_eq!(s1["phase"], "Succeeded", "{mode}: {s1}");
        assert_eq!(op_id(&s1), first.op_id, "{mode}: the state is the first's");
        assert!(app1.status.operation_state.is_some());

        common::fault(
            sb,
            json!({"fault": "deny-apply", "kind": "Deployment", "name": deployment, "message": DENIAL}),
        )
        .await;
        let second = actions::sync(src, ops, APP, opts("second"))
            .await
            .unwrap_or_else(|e| panic!("{mode}: second sync sent: {e}"));
        let r2 = actions::follow_operation(src, ops, &second, FOLLOW, POLL).await;
        let s2 = op_state(sb);
        // Oracle: the second operation failed with Argo CD's message and carries its id.
        assert_eq!(s2["phase"], "Failed", "{mode}: {s2}");
        assert_eq!(
            op_id(&s2),
            second.op_id,
            "{mode}: the state is the second's"
        );
        assert_ne!(first.op_id, second.op_id);
        let e = r2.expect_err("the second sync is not reported as the first's success");
        let msg = e.to_string();
        assert!(
            msg.contains("operation Failed") && msg.contains(DENIAL),
            "{mode}: the second follow ends with Argo CD's message: {msg}"
        );
        if s1["startedAt"] == s2["startedAt"] {
            clear_faults(sb).await;
            return;
        }
        println!(
            "{mode}: attempt {attempt}: {} and {} are different seconds; again",
            s1["startedAt"], s2["startedAt"]
        );
    }
    panic!("{mode}: two syncs never started within the same second");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_syncs_in_one_second_are_each_followed_to_their_own_end() {
    let sb = common::sandbox().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let ops = Ops {
        operator: "ana".into(),
        read_only: false,
        policies: Policies::default(),
        classifier: Default::default(),
        audit: AuditLog::in_dir(dir.path()),
    };
    let api = ArgoApi::new(ArgoApiOptions {
        server: sb.url.clone(),
        token: Some(Secret::new(sb.world.users.token(Role::Admin))),
        ..Default::default()
    })
    .expect("client");
    two_syncs_in_one_second(&sb, &api, &ops, "API mode").await;

    let kc = kube::config::Kubeconfig::read_from(sb.kubeconfig_path()).expect("kubeconfig");
    let core = CoreArgo::connect(CoreOptions {
        kubeconfig: Some(kc),
        git: Some(Arc::new(GitMirrors::new(dir.path().join("git")))),
        ..Default::default()
    })
    .await
    .expect("core mode connects");
    two_syncs_in_one_second(&sb, &core, &ops, "core mode").await;
}
