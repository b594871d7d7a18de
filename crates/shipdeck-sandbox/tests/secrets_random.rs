//! Credentials are fresh on every start: two sandboxes started the same way share no token
//! or password, the tokens the old fixed derivation (seed 1, as the README's sandbox had)
//! produced are refused, and only an explicit secrets seed repeats them. The state dir's env
//! file and kubeconfig carry the live ones, and real clients get in with them.

use serde_json::Value;
use sha2::{Digest, Sha256};
use shipdeck_sandbox::auth::{Role, Users};
use shipdeck_sandbox::{Sandbox, SandboxOptions};
use std::collections::BTreeMap;

async fn start(secrets_seed: Option<u64>, state_dir: Option<std::path::PathBuf>) -> Sandbox {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Sandbox::start(SandboxOptions {
        time_scale: 0.01,
        secrets_seed,
        state_dir,
        ..Default::default()
    })
    .await
    .expect("sandbox starts")
}

fn secrets(u: &Users) -> Vec<String> {
    let mut v: Vec<String> = Role::ALL
        .iter()
        .flat_map(|r| [u.token(*r), u.password(*r)])
        .collect();
    v.push(u.github_token());
    v.push(u.jenkins_token());
    v
}

/// The admin token every default sandbox handed out before: derived from seed 1 alone.
fn old_fixed_admin_token() -> String {
    let mut h = Sha256::new();
    h.update(b"shipdeck-sandbox\0");
    h.update(1u64.to_le_bytes());
    h.update(b"token:admin");
    h.update(0u64.to_le_bytes());
    let d = h.finalize();
    format!(
        "sd{}",
        d.iter()
            .take(20)
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// `export K='v'` lines of the env file.
fn env_vars(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_start_has_its_own_secrets() {
    let a = start(None, None).await;
    let b = start(None, None).await;
    let (sa, sb) = (secrets(&a.world.users), secrets(&b.world.users));
    for s in &sa {
        assert!(!sb.contains(s), "a secret repeats across starts");
    }
    // Both run the same estate: only the secrets differ.
    assert_eq!(a.world.estate.github.repo, b.world.estate.github.repo);

    let http = reqwest::Client::new();
    let get = |url: String, token: String| {
        let http = http.clone();
        async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .expect("request")
                .status()
        }
    };
    let ns = |sb: &Sandbox| format!("{}/api/v1/namespaces", sb.url);
    assert_eq!(get(ns(&a), a.world.users.token(Role::Admin)).await, 200);
    // Another sandbox's token, and the old README-derivable one, are refused.
    assert_eq!(get(ns(&a), b.world.users.token(Role::Admin)).await, 401);
    assert_eq!(get(ns(&a), old_fixed_admin_token()).await, 401);
    assert_eq!(
        get(
            format!("{}/github/user", a.url),
            b.world.users.github_token()
        )
        .await,
        401
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_explicit_seed_repeats_the_secrets() {
    let a = start(Some(7), None).await;
    let b = start(Some(7), None).await;
    let c = start(Some(8), None).await;
    assert_eq!(secrets(&a.world.users), secrets(&b.world.users));
    assert_ne!(secrets(&a.world.users), secrets(&c.world.users));
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/namespaces", a.url))
        .bearer_auth(b.world.users.token(Role::Admin))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_env_file_carries_the_live_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let sb = start(None, Some(dir.path().to_path_buf())).await;
    let text = std::fs::read_to_string(sb.env_path()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(sb.env_path())
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let env = env_vars(&text);
    let http = reqwest::Client::new();

    let r = http
        .get(format!("{}/api/v1/applications", env["ARGOCD_SERVER"]))
        .bearer_auth(&env["ARGOCD_AUTH_TOKEN"])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!("{}/user", env["GITHUB_API_URL"]))
        .bearer_auth(&env["GITHUB_TOKEN"])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let me: Value = http
        .get(format!("{}/me/api/json", env["JENKINS_URL"]))
        .basic_auth(&env["JENKINS_USER"], Some(&env["JENKINS_TOKEN"]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(me["id"], Value::from(env["JENKINS_USER"].clone()));
    assert_eq!(env["ARGOCD_AUTH_TOKEN"], sb.world.users.token(Role::Admin));

    // kubectl with the kubeconfig written next to it.
    let kubectl = std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output();
    if kubectl.is_ok_and(|o| o.status.success()) {
        let kubeconfig = sb.kubeconfig_path();
        let out = tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["get", "namespaces", "-o", "name"])
            .output()
            .await
            .unwrap();
        assert!(
            out.status.success(),
            "kubectl: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains("namespace/"));
    } else {
        eprintln!("SKIP kubectl part: kubectl is not installed");
    }
}
