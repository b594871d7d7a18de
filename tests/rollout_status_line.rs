//! `shipdeck rollout APP` prints kubectl's own status line, word for word, for a complete
//! and a failed rollout, in API and core mode. The oracle is `kubectl rollout status
//! deployment/NAME --watch=false` on the same Deployment (its stdout, or for a failure its
//! `error: ...` on stderr).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

mod common;

fn parse_env(text: &str) -> BTreeMap<String, String> {
    text.lines()
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

async fn shipdeck(
    vars: &BTreeMap<String, String>,
    home: &std::path::Path,
    core: bool,
    app: &str,
) -> String {
    let bin = std::env::var_os("SHIPDECK_E2E_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_shipdeck")));
    let var = |k: &str| vars.get(k).cloned().unwrap_or_default();
    let mut cmd = tokio::process::Command::new(bin);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .env("SHIPDECK_DATA_DIR", home.join("data"))
        .env("USER", "e2e-operator")
        .kill_on_drop(true)
        .args(["rollout", app]);
    if core {
        cmd.env("KUBECONFIG", var("KUBECONFIG")).arg("--core");
    } else {
        cmd.env("ARGOCD_SERVER", var("ARGOCD_SERVER"))
            .env("ARGOCD_AUTH_TOKEN", var("ARGOCD_AUTH_TOKEN"));
    }
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("shipdeck rollout {app} hung"))
        .expect("shipdeck runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// kubectl's line for the Deployment: stdout when it succeeds, its error on stderr when not.
fn kubectl_status(kubeconfig: &str, ns: &str, name: &str) -> String {
    let out = std::process::Command::new("kubectl")
        .args(["--kubeconfig", kubeconfig, "-n", ns, "rollout", "status"])
        .arg(format!("deployment/{name}"))
        .arg("--watch=false")
        .output()
        .expect("kubectl runs");
    let text = if out.status.success() {
        out.stdout
    } else {
        out.stderr
    };
    String::from_utf8_lossy(&text).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_prints_kubectls_status_line_for_complete_and_failed() {
    let sandbox = common::sandbox().await;
    let vars = parse_env(&std::fs::read_to_string(sandbox.env_path()).expect("env file"));
    let kubeconfig = vars.get("KUBECONFIG").cloned().unwrap_or_default();
    let home = tempfile::tempdir().expect("tmp");

    // cart-prod runs to completion; payments-prod cannot pull its image and exceeds its
    // progress deadline (wait for kubectl to say so).
    let complete = common::wait_ok("cart complete", Duration::from_secs(60), || async {
        let l = kubectl_status(&kubeconfig, "shop", "cart");
        if l.ends_with("successfully rolled out") {
            Ok(l)
        } else {
            Err(l)
        }
    })
    .await;
    let failed = common::wait_ok("payments failed", Duration::from_secs(60), || async {
        let l = kubectl_status(&kubeconfig, "shop", "payments");
        if l.starts_with("error: ") {
            Ok(l)
        } else {
            Err(l)
        }
    })
    .await;

    for core in [false, true] {
        for (app, line) in [("cart-prod", &complete), ("payments-prod", &failed)] {
            let out = shipdeck(&vars, home.path(), core, app).await;
            assert!(
                out.lines().any(|l| l == line.as_str()),
                "core={core}: `shipdeck rollout {app}` lacks kubectl's line {line:?}:\n{out}"
            );
            // The oracle again, after: the object did not change in between.
            let ns_name = app.trim_end_matches("-prod");
            assert_eq!(&kubectl_status(&kubeconfig, "shop", ns_name), line);
        }
    }
}
