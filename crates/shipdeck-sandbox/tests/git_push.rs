//! The sandbox's repository takes pushes from outside (an operator's `git push`, a
//! promotion) and its Argo CD notices them at once, as with a webhook: the prod app turns
//! OutOfSync at the pushed commit. Driven with the system `git` and raw HTTP (reqwest); the
//! oracle is the Application as the Kubernetes API serves it and `git` in the repository.
//! The simulated clock runs at wall speed, so Argo CD's 3-minute poll cannot explain it.

mod support;

use serde_json::Value;
use shipdeck_sandbox::auth::Role;
use shipdeck_sandbox::{Sandbox, SandboxOptions};
use support::{git, wait_for};

async fn application(sb: &Sandbox, name: &str) -> Value {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
        .get(format!(
            "{}/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/{name}",
            sb.url
        ))
        .bearer_auth(sb.world.users.token(Role::Admin))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn a_push_to_main_is_noticed_and_a_rejected_one_changes_nothing() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sb = Sandbox::start(SandboxOptions::default())
        .await
        .expect("sandbox starts");
    let repo = sb.world.repo.path().to_path_buf();
    let work = tempfile::tempdir().expect("tmp");
    let url = format!("file://{}", repo.display());
    let clone = work.path().join("c");
    let out = std::process::Command::new("git")
        .args(["clone", "-q", "-b", "main", &url])
        .arg(&clone)
        .output()
        .expect("git clone");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let before = application(&sb, "frontend-prod").await;
    assert_eq!(before["status"]["sync"]["status"], "Synced", "{before}");
    let file = clone.join("apps/frontend/prod/deployment.yaml");
    let text = std::fs::read_to_string(&file).expect("frontend prod manifest");
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("image:"))
        .expect("an image line")
        .to_string();
    let new_line = format!("{}:sha-pushed1", line.rsplit_once(':').expect("tag").0);
    std::fs::write(&file, text.replace(&line, &new_line)).expect("edit");
    let id = ["-c", "user.name=Ana", "-c", "user.email=ana@example.com"];
    git(
        &clone,
        &[&id[..], &["commit", "-qam", "bump frontend by hand"]].concat(),
    );
    let sha = git(&clone, &["rev-parse", "HEAD"]);
    git(&clone, &["push", "-q", "origin", "HEAD:refs/heads/main"]);
    assert_eq!(git(&repo, &["rev-parse", "main"]), sha);
    // The checked-out tree follows the push (`cat` in the repo shows the truth).
    let served =
        std::fs::read_to_string(repo.join("apps/frontend/prod/deployment.yaml")).expect("read");
    assert!(served.contains("sha-pushed1"), "{served}");
    let app = wait_for("frontend-prod OutOfSync at the pushed commit", || {
        let sb = &sb;
        let sha = sha.clone();
        async move {
            let a = application(sb, "frontend-prod").await;
            (a["status"]["sync"]["status"] == "OutOfSync"
                && a["status"]["sync"]["revision"] == sha.as_str())
            .then_some(a)
        }
    })
    .await;
    assert_eq!(app["status"]["health"]["status"], "Healthy");
    // A second clone that did not fetch is behind: its push is rejected, main stays.
    let stale = work.path().join("stale");
    git(work.path(), &["clone", "-q", "-b", "main", &url, "stale"]);
    git(&stale, &["reset", "-q", "--hard", "HEAD~1"]);
    std::fs::write(stale.join("README.md"), "late\n").expect("edit");
    git(&stale, &[&id[..], &["commit", "-qam", "late"]].concat());
    let push = std::process::Command::new("git")
        .arg("-C")
        .arg(&stale)
        .args(["push", "origin", "HEAD:refs/heads/main"])
        .output()
        .expect("git push");
    assert!(!push.status.success());
    assert!(
        String::from_utf8_lossy(&push.stderr).contains("rejected"),
        "{}",
        String::from_utf8_lossy(&push.stderr)
    );
    assert_eq!(git(&repo, &["rev-parse", "main"]), sha);
    sb.stop().await;
}
