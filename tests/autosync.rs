//! `shipdeck autosync APP on|off` (issue 9): an action of its own, in API mode and core mode.
//! Turning auto-sync on in a gated environment needs an approval like a sync; read-only
//! refuses; a user without `update` is told which permission is missing; every attempt is
//! audited; turning it off records since when on the Application itself. The oracle is the
//! Application as the sandbox's Kubernetes API holds it (kube-rs), never shipdeck.

mod cli_support;

use cli_support::{MODES, Mode, World, start};
use serde_json::Value;

const SINCE: &str = "shipdeck.io/auto-sync-off-since";

async fn automated(w: &World, app: &str) -> bool {
    let a = w.application(app).await;
    let auto = &a["spec"]["syncPolicy"]["automated"];
    !auto.is_null() && auto["enabled"] != false
}

async fn since(w: &World, app: &str) -> Option<String> {
    w.application(app).await["metadata"]["annotations"][SINCE]
        .as_str()
        .map(str::to_owned)
}

fn last(w: &World, app: &str, action: &str) -> Value {
    w.audit()
        .into_iter()
        .rev()
        .find(|r| r["app"] == app && r["action"] == action)
        .unwrap_or_else(|| panic!("no {action} record for {app}: {:?}", w.audit()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autosync_off_and_on_in_both_modes() {
    let w = start().await;
    for mode in MODES {
        let app = "cart-dev";
        assert!(automated(&w, app).await, "{app} starts with auto-sync on");
        let before = chrono::Utc::now() - chrono::Duration::seconds(2);
        let out = w.run(mode, &["autosync", app, "off"]).await;
        assert_eq!(out.code, 0, "{mode:?} off: {}", out.stderr);
        assert!(out.stdout.contains("auto-sync off"), "{}", out.stdout);
        assert!(
            !automated(&w, app).await,
            "{mode:?}: auto-sync is off in Kubernetes"
        );
        let at = since(&w, app)
            .await
            .expect("since when is on the Application");
        let at = chrono::DateTime::parse_from_rfc3339(&at).expect("RFC 3339");
        assert!(at >= before, "{at} is now, not earlier");
        let rec = last(&w, app, "disable-auto-sync");
        assert_eq!(rec["outcome"], "succeeded");
        assert_eq!(rec["who"], "fail-closed");

        let out = w.run(mode, &["autosync", app, "on"]).await;
        assert_eq!(out.code, 0, "{mode:?} on: {}", out.stderr);
        assert!(automated(&w, app).await, "{mode:?}: auto-sync is on again");
        assert_eq!(since(&w, app).await, None, "the mark goes with it");
        assert_eq!(last(&w, app, "enable-auto-sync")["outcome"], "succeeded");
    }
    w.sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turning_it_on_in_prod_needs_an_approval_and_read_only_refuses() {
    let w = start().await;
    let app = "kafka-prod";
    assert!(automated(&w, app).await, "kafka-prod auto-syncs in prod");

    // Read-only refuses before anything is sent, and says so in the audit log.
    let out = w
        .run(Mode::Api, &["--read-only", "autosync", app, "off"])
        .await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(automated(&w, app).await, "read-only changed nothing");
    assert_eq!(last(&w, app, "disable-auto-sync")["outcome"], "refused");

    let out = w.run(Mode::Api, &["autosync", app, "off"]).await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(!automated(&w, app).await);

    for mode in MODES {
        // On in prod lets Argo CD deploy Git on its own: approval first.
        let out = w.run(mode, &["autosync", app, "on"]).await;
        assert_eq!(out.code, 3, "{mode:?}: {}", out.stderr);
        assert!(out.stderr.contains("approv"), "{}", out.stderr);
        assert!(!automated(&w, app).await, "{mode:?}: still off");
        assert_eq!(last(&w, app, "enable-auto-sync")["outcome"], "refused");
    }
    let out = w
        .run(
            Mode::Core,
            &[
                "autosync",
                app,
                "on",
                "--approve",
                app,
                "--reason",
                "rollback is over",
            ],
        )
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(automated(&w, app).await, "approved: on");
    let approve = last(&w, app, "approve");
    assert_eq!(approve["reason"], "rollback is over");
    let on = last(&w, app, "enable-auto-sync");
    assert_eq!(on["outcome"], "succeeded");
    assert_eq!(on["approval_id"], approve["approval_id"]);
    w.sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_without_update_is_told_which_permission_is_missing() {
    let w = start().await;
    let app = "cart-dev";
    let out = w
        .run(
            Mode::Core,
            &["autosync", app, "off", "--context", "viewer@in-cluster"],
        )
        .await;
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stderr.contains("update"),
        "names the permission: {}",
        out.stderr
    );
    assert!(automated(&w, app).await, "nothing changed");
    w.sandbox.stop().await;
}
