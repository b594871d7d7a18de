//! The state files a client needs to reach the sandbox: `kubeconfig` (a context per
//! simulated cluster plus viewer and deployer contexts on in-cluster) and `env` (shell
//! exports for kubectl, argocd, gh-style and Jenkins clients). Both hold tokens, so both are
//! written mode 0600; this is the only place the sandbox writes a token anywhere.

use super::auth::Role;
use super::{IN_CLUSTER, World};
use std::io::Write;
use std::path::Path;

/// Every simulated cluster, in-cluster first.
pub fn cluster_names(world: &World) -> Vec<String> {
    let mut out = vec![IN_CLUSTER.to_string()];
    for c in world
        .estate
        .clusters
        .iter()
        .cloned()
        .chain(world.store.clusters())
    {
        if !out.contains(&c) {
            out.push(c);
        }
    }
    out
}

/// The server URL of a cluster: the root for in-cluster, `/clusters/C` otherwise.
pub fn cluster_url(world: &World, cluster: &str) -> String {
    if cluster == IN_CLUSTER {
        world.base_url.clone()
    } else {
        format!("{}/clusters/{cluster}", world.base_url)
    }
}

/// YAML double-quoted scalar (JSON string syntax is valid YAML).
fn q(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// Shell single-quoted word.
fn sh(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The kubeconfig. Each user's token is also given as an impersonation extra, because
/// kubectl sends no `Authorization` header to a plain-HTTP server but does send
/// `Impersonate-Extra-Token`; the sandbox accepts the token from either.
pub fn kubeconfig(world: &World) -> String {
    let clusters = cluster_names(world);
    let mut y = String::from("apiVersion: v1\nkind: Config\npreferences: {}\nclusters:\n");
    for c in &clusters {
        y.push_str(&format!(
            "- name: {}\n  cluster:\n    server: {}\n",
            q(c),
            q(&cluster_url(world, c))
        ));
    }
    y.push_str("users:\n");
    for role in Role::ALL {
        y.push_str(&format!(
            "- name: {n}\n  user:\n    token: {t}\n    as: {n}\n    as-user-extra:\n      token: [{t}]\n",
            n = q(role.username()),
            t = q(&world.users.token(role))
        ));
    }
    y.push_str("contexts:\n");
    let mut context = |name: &str, cluster: &str, user: &str| {
        y.push_str(&format!(
            "- name: {}\n  context:\n    cluster: {}\n    user: {}\n",
            q(name),
            q(cluster),
            q(user)
        ));
    };
    for c in &clusters {
        context(c, c, "admin");
    }
    context(&format!("viewer@{IN_CLUSTER}"), IN_CLUSTER, "viewer");
    context(&format!("deployer@{IN_CLUSTER}"), IN_CLUSTER, "deployer");
    context(&approver_context(), IN_CLUSTER, "approver");
    y.push_str(&format!("current-context: {}\n", q(IN_CLUSTER)));
    y
}

/// The kubeconfig context of the second person (`approver`), for four-eyes approvals.
pub fn approver_context() -> String {
    format!("approver@{IN_CLUSTER}")
}

pub fn env_file(world: &World, dir: &Path) -> String {
    let base = &world.base_url;
    let users = &world.users;
    let vars: Vec<(&str, String)> = vec![
        ("KUBECONFIG", dir.join("kubeconfig").display().to_string()),
        ("ARGOCD_SERVER", base.clone()),
        ("ARGOCD_AUTH_TOKEN", users.token(Role::Admin)),
        ("ARGOCD_OPTS", "--plaintext".into()),
        ("GITHUB_API_URL", format!("{base}/github")),
        ("GITHUB_TOKEN", users.github_token()),
        ("JENKINS_URL", format!("{base}/jenkins")),
        ("JENKINS_USER", users.jenkins_user()),
        ("JENKINS_TOKEN", users.jenkins_token()),
        (
            "SHIPDECK_SANDBOX_REPO",
            world.repo.path().display().to_string(),
        ),
        ("SHIPDECK_SANDBOX_URL", base.clone()),
        (
            "SHIPDECK_SANDBOX_WEBHOOK_URL",
            format!("{base}/_sandbox/webhooks/shipdeck"),
        ),
        ("SHIPDECK_SANDBOX_ADMIN_TOKEN", users.token(Role::Admin)),
        ("SHIPDECK_SANDBOX_VIEWER_TOKEN", users.token(Role::Viewer)),
        (
            "SHIPDECK_SANDBOX_DEPLOYER_TOKEN",
            users.token(Role::Deployer),
        ),
        (
            "SHIPDECK_SANDBOX_APPROVER_TOKEN",
            users.token(Role::Approver),
        ),
        ("SHIPDECK_SANDBOX_APPROVER_CONTEXT", approver_context()),
        (
            "SHIPDECK_SANDBOX_APPROVER_PASSWORD",
            users.password(Role::Approver),
        ),
        (
            "SHIPDECK_SANDBOX_ADMIN_PASSWORD",
            users.password(Role::Admin),
        ),
        (
            "SHIPDECK_SANDBOX_VIEWER_PASSWORD",
            users.password(Role::Viewer),
        ),
        (
            "SHIPDECK_SANDBOX_DEPLOYER_PASSWORD",
            users.password(Role::Deployer),
        ),
    ];
    let mut out =
        String::from("# shipdeck sandbox: `source` this file to point clients at the sandbox.\n");
    for (k, v) in vars {
        out.push_str(&format!("export {k}={}\n", sh(&v)));
    }
    out
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Write `kubeconfig` and `env` into the state dir (again after tokens expire, if wanted).
pub fn write_state_files(world: &World, dir: &Path) -> std::io::Result<()> {
    write_private(&dir.join("kubeconfig"), &kubeconfig(world))?;
    write_private(&dir.join("env"), &env_file(world, dir))
}
