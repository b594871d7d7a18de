//! The one place where the services (Argo CD, GitHub, Jenkins APIs and CI) reach into what
//! other parts of the sandbox provide: users and tokens, forced faults, the Argo CD
//! controller's rendering and normalization, destination clusters. Every call goes through
//! here so the seams are visible in one file.

use crate::World;
use serde_json::Value;
use shipdeck_wire::Application;

pub use crate::auth::{AuthError, Role, User};

pub fn authenticate(world: &World, authorization: Option<&str>) -> Result<User, AuthError> {
    world.users.authenticate(authorization)
}

pub fn login(world: &World, username: &str, password: &str) -> Option<String> {
    world.users.login(username, password)
}

pub fn allowed(world: &World, user: &User, verb: &str, obj: Option<&Value>) -> bool {
    world
        .users
        .allowed(user, verb, &crate::store::APPLICATIONS, obj)
}

pub fn may_sync(world: &World, user: &User, app: &Value) -> bool {
    world.users.may_sync(user, app)
}

pub fn take_conflict(world: &World) -> bool {
    world.faults.take_conflict()
}

/// The store cluster an Application deploys to (the Argo CD controller's mapping).
pub fn cluster_of(world: &World, app: &Application) -> Option<String> {
    crate::controller::cluster_of(world, app)
}

pub fn desired_objects(
    world: &World,
    app: &Application,
    revision: Option<&str>,
) -> Result<Vec<Value>, String> {
    crate::controller::desired_objects(world, app, revision)
}

pub fn normalize(obj: &Value) -> Value {
    crate::controller::normalize(obj)
}

fn repo_path(world: &World) -> &std::path::Path {
    world.repo.path()
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
