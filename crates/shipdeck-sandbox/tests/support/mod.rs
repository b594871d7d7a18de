//! What the client fidelity tests share: the virtualenv of third-party Python clients
//! (`tests/clients/setup-python.sh`, pinned versions from PyPI), running a client script
//! against a sandbox, and waiting for a condition with a deadline.

#![allow(dead_code)]

use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// The venv's python, created on first use. None (the test skips) only when python3 itself
/// is missing; a failing setup (no venv module, PyPI unreachable) fails the test.
pub fn python() -> Option<PathBuf> {
    let found = std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("SKIP: python3 is not installed");
        return None;
    }
    let script = workspace_root().join("tests/clients/setup-python.sh");
    let out = std::process::Command::new("bash")
        .arg(&script)
        .output()
        .expect("run setup-python.sh");
    assert!(
        out.status.success(),
        "{} failed (python3-venv installed? PyPI reachable?):\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
    Some(PathBuf::from(path))
}

/// Run a client script from `tests/clients/` with the given environment; its stdout is one
/// JSON object (what the client saw).
pub async fn run_client(python: &PathBuf, script: &str, env: &[(&str, String)]) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/clients")
        .join(script);
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(&path)
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy");
    cmd.env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::time::timeout(Duration::from_secs(180), cmd.output())
        .await
        .expect("client script ends within 180 s")
        .expect("run client script");
    assert!(
        out.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{script} printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Poll `f` until it yields, for at most 30 s.
pub async fn wait_for<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `git -C repo ARGS`, trimmed stdout.
pub fn git(repo: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
