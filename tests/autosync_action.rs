//! `shipdeck autosync APP on|off` in API mode takes Argo CD's own route where the server has
//! one: the Application's `toggle-auto-sync` resource action (Argo CD 3.5+, RBAC
//! `applications, action/argoproj.io/Application/toggle-auto-sync`); on an older server it
//! patches `spec.syncPolicy` (`applications, update`). A refusal names the permission the
//! server checks. Oracle: kubectl on the sandbox's Kubernetes API (the Application's
//! `spec.syncPolicy` and the `ResourceActionRan` Events Argo CD's server records), never
//! shipdeck. The two routes leave different traces: the action keeps the `automated` block
//! with `enabled: false`, the patch removes it.

mod cli_support;

use cli_support::{Mode, World, start};
use serde_json::{Value, json};
use shipdeck::sandbox::auth::Role;

const ACTION_RBAC: &str = "action/argoproj.io/Application/toggle-auto-sync";

fn kubectl_available() -> bool {
    std::process::Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn kubectl_json(w: &World, args: &[&str]) -> Value {
    let kc = w.sandbox.kubeconfig_path().display().to_string();
    let out = std::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&kc)
        .args(args)
        .args(["-o", "json"])
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("kubectl -o json parses")
}

/// `spec.syncPolicy.automated` of an Application as kubectl reads it.
fn automated(w: &World, app: &str) -> Value {
    kubectl_json(w, &["-n", "argocd", "get", "applications.argoproj.io", app])["spec"]["syncPolicy"]
        ["automated"]
        .clone()
}

/// Messages of the `ResourceActionRan` Events on the Application.
fn actions_ran(w: &World, app: &str) -> Vec<String> {
    let list = kubectl_json(
        w,
        &[
            "-n",
            "argocd",
            "get",
            "events",
            "--field-selector",
            &format!("involvedObject.name={app},reason=ResourceActionRan"),
        ],
    );
    list["items"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|e| e["message"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn last(w: &World, app: &str, action: &str) -> Value {
    w.audit()
        .into_iter()
        .rev()
        .find(|r| r["app"] == app && r["action"] == action)
        .unwrap_or_else(|| panic!("no {action} record for {app}: {:?}", w.audit()))
}

fn as_role(w: &World, role: Role) -> Vec<(&'static str, String)> {
    vec![("ARGOCD_AUTH_TOKEN", w.sandbox.world.users.token(role))]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_mode_runs_the_action_where_the_server_has_it_else_patches() {
    if !kubectl_available() {
        println!("SKIP autosync_action: kubectl is not on PATH");
        return;
    }
    let w = start().await;
    let app = "cart-dev";
    let before = automated(&w, app);
    assert!(before.is_object(), "{app} starts with auto-sync: {before}");
    assert!(actions_ran(&w, app).is_empty());

    // Argo CD 3.5 (the sandbox's default): the action runs, Argo CD records it, and it
    // keeps the automated block with enabled=false.
    let out = w.run(Mode::Api, &["autosync", app, "off"]).await;
    assert_eq!(out.code, 0, "off: {}", out.stderr);
    let now = automated(&w, app);
    assert_eq!(now["enabled"], json!(false), "the action's trace: {now}");
    assert_eq!(now["prune"], before["prune"], "prune kept: {now}");
    assert_eq!(now["selfHeal"], before["selfHeal"], "selfHeal kept: {now}");
    let ran = actions_ran(&w, app);
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert!(ran[0].contains("ran action toggle-auto-sync"), "{ran:?}");
    assert_eq!(last(&w, app, "disable-auto-sync")["outcome"], "succeeded");

    // Asking for what already is runs nothing (a toggle would flip it back on).
    let out = w.run(Mode::Api, &["autosync", app, "off"]).await;
    assert_eq!(out.code, 0, "off again: {}", out.stderr);
    assert_eq!(automated(&w, app)["enabled"], json!(false));
    assert_eq!(actions_ran(&w, app).len(), 1, "no second toggle");

    let out = w.run(Mode::Api, &["autosync", app, "on"]).await;
    assert_eq!(out.code, 0, "on: {}", out.stderr);
    assert_eq!(automated(&w, app)["enabled"], json!(true));
    assert_eq!(actions_ran(&w, app).len(), 2);
    assert_eq!(last(&w, app, "enable-auto-sync")["outcome"], "succeeded");

    // An older Argo CD lists no action for Applications: the patch of spec.syncPolicy,
    // which removes the automated block, and no action Event.
    w.fault(json!({"fault": "argocd-version", "version": "v3.4.2"}))
        .await;
    let out = w.run(Mode::Api, &["autosync", app, "off"]).await;
    assert_eq!(out.code, 0, "off on 3.4: {}", out.stderr);
    assert!(
        automated(&w, app).is_null(),
        "patched away: {}",
        automated(&w, app)
    );
    assert_eq!(actions_ran(&w, app).len(), 2, "no action ran on 3.4");
    let out = w.run(Mode::Api, &["autosync", app, "on"]).await;
    assert_eq!(out.code, 0, "on on 3.4: {}", out.stderr);
    assert!(automated(&w, app).is_object());
    assert_eq!(actions_ran(&w, app).len(), 2);
    w.clear_faults().await;
    w.sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusal_names_the_permission_of_the_route() {
    if !kubectl_available() {
        println!("SKIP autosync_action: kubectl is not on PATH");
        return;
    }
    let w = start().await;
    // The sandbox's deployer may not change prod apps.
    let app = "kafka-prod";
    let deployer = as_role(&w, Role::Deployer);
    let out = w
        .run_with(Mode::Api, &["autosync", app, "off"], &deployer)
        .await;
    assert_eq!(out.code, 4, "a permission refusal: {}", out.stderr);
    assert!(
        out.stderr.contains(ACTION_RBAC),
        "names the action's permission: {}",
        out.stderr
    );
    assert!(automated(&w, app).is_object(), "nothing changed");
    assert!(actions_ran(&w, app).is_empty());
    let rec = last(&w, app, "disable-auto-sync");
    assert_eq!(rec["outcome"], "refused");
    assert!(
        rec["detail"]
            .as_str()
            .is_some_and(|d| d.contains(ACTION_RBAC)),
        "{rec}"
    );

    // The server refuses the run itself (can-i said yes): the message still names it.
    w.fault(json!({"fault": "fail", "path": "/resource/actions/v2", "status": 403, "count": 1}))
        .await;
    let out = w.run(Mode::Api, &["autosync", "cart-dev", "off"]).await;
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert!(
        out.stderr.contains(ACTION_RBAC),
        "names the action's permission: {}",
        out.stderr
    );
    assert!(automated(&w, "cart-dev")["enabled"] != json!(false));
    assert_eq!(
        last(&w, "cart-dev", "disable-auto-sync")["outcome"],
        "failed"
    );

    // An older server checks `update`.
    w.fault(json!({"fault": "argocd-version", "version": "v3.4.2"}))
        .await;
    let out = w
        .run_with(Mode::Api, &["autosync", app, "off"], &deployer)
        .await;
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(
        out.stderr.contains("`update`") && !out.stderr.contains(ACTION_RBAC),
        "names update: {}",
        out.stderr
    );
    assert!(automated(&w, app).is_object(), "nothing changed");
    w.clear_faults().await;
    w.sandbox.stop().await;
}
