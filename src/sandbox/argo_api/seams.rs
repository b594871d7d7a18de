//! The one place where the services (Argo CD, GitHub, Jenkins APIs and CI) reach into what
//! other parts of the sandbox provide: users and tokens, forced faults, the Argo CD
//! controller's rendering and normalization, destination clusters. Every call goes through
//! here so the seams are visible in one file.
//!
//! Until the users (auth.rs) and the Argo CD controller are merged, this file holds
//! stand-ins with the contract's signatures; they refuse rather than pretend.

use crate::model::Application;
use crate::sandbox::World;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Admin,
    Viewer,
    Deployer,
}

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub role: Role,
}

#[allow(dead_code)] // stand-in until auth.rs is merged
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthError {
    Missing,
    Invalid,
    Expired,
}

pub fn authenticate(world: &World, authorization: Option<&str>) -> Result<User, AuthError> {
    use crate::sandbox::auth as a;
    match world.users.authenticate(authorization) {
        Ok(u) => Ok(User {
            name: u.name,
            role: match u.role {
                a::Role::Admin => Role::Admin,
                a::Role::Viewer => Role::Viewer,
                a::Role::Deployer => Role::Deployer,
            },
        }),
        Err(a::AuthError::Missing) => Err(AuthError::Missing),
        Err(a::AuthError::Expired) => Err(AuthError::Expired),
        Err(_) => Err(AuthError::Invalid),
    }
}

pub fn login(_world: &World, _username: &str, _password: &str) -> Option<String> {
    None
}

pub fn allowed(_world: &World, user: &User, verb: &str, _obj: Option<&Value>) -> bool {
    user.role == Role::Admin || matches!(verb, "get" | "list" | "watch")
}

pub fn may_sync(_world: &World, user: &User, _app: &Value) -> bool {
    user.role == Role::Admin
}

pub fn take_conflict(_world: &World) -> bool {
    false
}

/// The store cluster an Application deploys to.
pub fn cluster_of(world: &World, app: &Application) -> Option<String> {
    let dest = &app.spec.destination;
    match dest.server.as_deref() {
        Some("https://kubernetes.default.svc") => Some(crate::sandbox::IN_CLUSTER.into()),
        Some(s) => s
            .strip_prefix(&format!("{}/clusters/", world.base_url))
            .map(str::to_string)
            .or_else(|| dest.name.clone()),
        None => dest.name.clone(),
    }
}

pub fn desired_objects(
    world: &World,
    app: &Application,
    revision: Option<&str>,
) -> Result<Vec<Value>, String> {
    crate::sandbox::controller::desired_objects(world, app, revision)
}

pub fn normalize(obj: &Value) -> Value {
    let mut v = obj.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("status");
    }
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        for f in [
            "managedFields",
            "resourceVersion",
            "uid",
            "generation",
            "creationTimestamp",
        ] {
            m.remove(f);
        }
    }
    v
}

fn repo_path(world: &World) -> std::path::PathBuf {
    world.repo.path().to_path_buf()
}

/// A branch, tag or (short) sha of the estate's repository -> full commit sha.
pub fn resolve(world: &World, rev: &str) -> Result<String, String> {
    if rev.starts_with('-') {
        return Err(format!("invalid revision {rev:?}"));
    }
    git(
        world,
        &["rev-parse", "--verify", &format!("{rev}^{{commit}}")],
    )
    .map(|s| s.trim().to_string())
}

/// Author ("Name <email>"), ISO date and message of a commit.
pub fn commit_info(world: &World, rev: &str) -> Result<(String, String, String), String> {
    let rev = resolve(world, rev)?;
    let rev = rev.as_str();
    let out = git(
        world,
        &["log", "-1", "--format=%an <%ae>%x00%aI%x00%B", rev, "--"],
    )?;
    let mut parts = out.splitn(3, '\0');
    let author = parts.next().unwrap_or("").to_string();
    let date = parts.next().unwrap_or("").to_string();
    let message = parts.next().unwrap_or("").trim_end().to_string();
    Ok((author, date, message))
}

fn git(world: &World, args: &[&str]) -> Result<String, String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(repo_path(world))
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().to_string());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
