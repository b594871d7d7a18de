//! Sandbox users and their bearer tokens: an admin, a read-only viewer, a deployer who
//! may sync only non-production applications, and an approver (a second person allowed to
//! sync production, so four-eyes approvals can be played by two identities). Every API of the sandbox (Kubernetes, Argo CD,
//! GitHub, Jenkins) asks this room who a caller is and what they may do.
//!
//! Every credential is derived from one secret. A normal start draws that secret from the
//! operating system's random source, so two sandboxes never share a token and a sandbox left
//! running on a shared host is not open to whoever read the README. Only a start with an
//! explicit secrets seed (tests that restart with the same credentials) derives it from the
//! seed. Tokens are written only into the state files; this module never logs or prints one.

use super::store::{APPLICATIONS, ResourceType};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::sync::Mutex;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Admin,
    Viewer,
    Deployer,
    /// Reads everything and may sync (patch or update) every Application, production too;
    /// nothing else (no impersonation, no other writes).
    Approver,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::Viewer, Role::Deployer, Role::Approver];

    /// The user name of the role (kube user, Argo CD account, audit name).
    pub fn username(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
            Role::Deployer => "deployer",
            Role::Approver => "approver",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub role: Role,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("no bearer token: send `Authorization: Bearer <token>` (see the sandbox's env file)")]
    Missing,
    #[error("unknown token: use a token from the sandbox's env or kubeconfig file")]
    Invalid,
    #[error("token expired: read the current token from the sandbox's env or kubeconfig file")]
    Expired,
}

/// The sandbox's accounts. Shared through `World` by `Arc`, so expiry uses interior
/// mutability.
#[derive(Debug)]
pub struct Users {
    /// Every token and password is a hash of this; never printed.
    secret: [u8; 32],
    /// Bumped by [`Users::expire_all`]; tokens of older generations answer `Expired`.
    generation: Mutex<u64>,
}

const READ_VERBS: &[&str] = &["get", "list", "watch"];

fn derive(secret: &[u8; 32], purpose: &str, generation: u64) -> String {
    let mut h = Sha256::new();
    h.update(b"shipdeck-sandbox\0");
    h.update(secret);
    h.update(purpose.as_bytes());
    h.update(generation.to_le_bytes());
    let digest = h.finalize();
    digest.iter().take(20).map(|b| format!("{b:02x}")).collect()
}

impl Users {
    /// Credentials derived from a seed: the same seed, the same tokens (tests only).
    pub fn generate(seed: u64) -> Users {
        let mut h = Sha256::new();
        h.update(b"shipdeck-sandbox-seed\0");
        h.update(seed.to_le_bytes());
        Users {
            secret: h.finalize().into(),
            generation: Mutex::new(0),
        }
    }

    /// Fresh credentials from the operating system's random source (every normal start).
    pub fn random() -> Users {
        Users {
            secret: rand::random(),
            generation: Mutex::new(0),
        }
    }

    /// A keyed signature of `data` (pre-signed download URLs), 32 hex digits.
    pub fn sign(&self, data: &str) -> String {
        derive(&self.secret, &format!("sign:{data}"), 0)[..32].to_string()
    }

    fn generation(&self) -> u64 {
        *self.generation.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn token_at(&self, role: Role, generation: u64) -> String {
        format!(
            "sd{}",
            derive(
                &self.secret,
                &format!("token:{}", role.username()),
                generation
            )
        )
    }

    /// The current bearer token of a role (Kubernetes and Argo CD alike).
    pub fn token(&self, role: Role) -> String {
        self.token_at(role, self.generation())
    }

    /// The Argo CD session password of a role (user names admin, viewer, deployer).
    pub fn password(&self, role: Role) -> String {
        derive(&self.secret, &format!("password:{}", role.username()), 0)[..16].to_string()
    }

    /// An Argo CD session login: the role's current token when the password is right.
    pub fn login(&self, username: &str, password: &str) -> Option<String> {
        Role::ALL
            .into_iter()
            .find(|r| r.username() == username && self.password(*r) == password)
            .map(|r| self.token(r))
    }

    /// Who sent an `Authorization` header value (`Bearer <token>`).
    pub fn authenticate(&self, authorization: Option<&str>) -> Result<User, AuthError> {
        let header = authorization.map(str::trim).unwrap_or("");
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .unwrap_or("");
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        let current = self.generation();
        for role in Role::ALL {
            if self.token_at(role, current) == token {
                return Ok(User {
                    name: role.username().to_string(),
                    role,
                });
            }
        }
        for generation in (0..current).rev() {
            if Role::ALL
                .into_iter()
                .any(|r| self.token_at(r, generation) == token)
            {
                return Err(AuthError::Expired);
            }
        }
        Err(AuthError::Invalid)
    }

    /// Fault: every token handed out so far stops working (401 Expired); new ones are minted.
    pub fn expire_all(&self) {
        *self.generation.lock().unwrap_or_else(|p| p.into_inner()) += 1;
    }

    /// RBAC. Admin may do anything; viewer only reads; deployer reads everything and may
    /// patch or update Applications that [`Users::may_sync`] allows (with no object at hand,
    /// "some" counts, as `kubectl auth can-i` without a name).
    pub fn allowed(
        &self,
        user: &User,
        verb: &str,
        res: &ResourceType,
        obj: Option<&Value>,
    ) -> bool {
        match user.role {
            Role::Admin => true,
            Role::Viewer => READ_VERBS.contains(&verb),
            Role::Deployer => {
                READ_VERBS.contains(&verb)
                    || (matches!(verb, "patch" | "update")
                        && *res == APPLICATIONS
                        && obj.is_none_or(|o| self.may_sync(user, o)))
            }
            Role::Approver => {
                READ_VERBS.contains(&verb)
                    || (matches!(verb, "patch" | "update") && *res == APPLICATIONS)
            }
        }
    }

    /// Whether a user may sync (or roll back) an application: deployers only outside prod.
    pub fn may_sync(&self, user: &User, app: &Value) -> bool {
        match user.role {
            Role::Admin | Role::Approver => true,
            Role::Viewer => false,
            Role::Deployer => !is_production(app),
        }
    }

    /// A personal access token (classic) of the repository owner, as `gh auth token` prints:
    /// it may read `/user`, unlike an installation token.
    pub fn github_token(&self) -> String {
        format!("ghp_{}", &derive(&self.secret, "github", 0)[..36])
    }

    pub fn jenkins_user(&self) -> String {
        "shipdeck-ci".to_string()
    }

    pub fn jenkins_token(&self) -> String {
        derive(&self.secret, "jenkins", 0)[..34].to_string()
    }
}

/// Whether an Application is a production one, by the sandbox's own RBAC rule (as an Argo CD
/// project role would scope it): its `env` label, or a segment of its name or destination
/// namespace, is `prod`, `prd`, `production` or `live`.
fn is_production(app: &Value) -> bool {
    const WORDS: [&str; 4] = ["prod", "prd", "production", "live"];
    let reads_prod = |s: &str| {
        s.split(|c: char| !c.is_ascii_alphanumeric())
            .any(|w| WORDS.contains(&w.to_ascii_lowercase().as_str()))
    };
    let meta = &app["metadata"];
    ["env", "environment", "stage"]
        .iter()
        .filter_map(|k| meta["labels"][*k].as_str())
        .chain(meta["name"].as_str())
        .chain(app["spec"]["destination"]["namespace"].as_str())
        .any(reads_prod)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::PODS;
    use serde_json::json;

    #[test]
    fn tokens_roles_and_expiry() {
        let u = Users::generate(7);
        let admin = u.token(Role::Admin);
        assert_ne!(admin, u.token(Role::Viewer));
        assert_eq!(admin, Users::generate(7).token(Role::Admin));
        assert_ne!(admin, Users::generate(8).token(Role::Admin));
        let who = u.authenticate(Some(&format!("Bearer {admin}"))).unwrap();
        assert_eq!(who.role, Role::Admin);
        assert_eq!(u.authenticate(None), Err(AuthError::Missing));
        assert_eq!(u.authenticate(Some("Bearer nope")), Err(AuthError::Invalid));
        u.expire_all();
        assert_eq!(
            u.authenticate(Some(&format!("Bearer {admin}"))),
            Err(AuthError::Expired)
        );
        let other = Users::random();
        assert_ne!(other.token(Role::Admin), Users::random().token(Role::Admin));
        assert_ne!(other.github_token(), Users::random().github_token());
        assert_ne!(other.jenkins_token(), Users::random().jenkins_token());
        assert_ne!(
            other.password(Role::Admin),
            Users::random().password(Role::Admin)
        );
        let fresh = u.token(Role::Admin);
        assert!(u.authenticate(Some(&format!("Bearer {fresh}"))).is_ok());
        let pw = u.password(Role::Viewer);
        assert_eq!(u.login("viewer", &pw), Some(u.token(Role::Viewer)));
        assert_eq!(u.login("viewer", "wrong"), None);
    }

    #[test]
    fn rbac() {
        let u = Users::generate(1);
        let viewer = User {
            name: "viewer".into(),
            role: Role::Viewer,
        };
        let deployer = User {
            name: "deployer".into(),
            role: Role::Deployer,
        };
        let prod = json!({"metadata": {"name": "web-prod", "labels": {"env": "prod"}}});
        let dev = json!({"metadata": {"name": "web-dev", "labels": {"env": "dev"}}});
        assert!(u.allowed(&viewer, "list", &APPLICATIONS, None));
        assert!(!u.allowed(&viewer, "patch", &APPLICATIONS, Some(&dev)));
        assert!(u.allowed(&deployer, "patch", &APPLICATIONS, Some(&dev)));
        assert!(!u.allowed(&deployer, "patch", &APPLICATIONS, Some(&prod)));
        assert!(!u.allowed(&deployer, "delete", &PODS, None));
        assert!(!u.may_sync(&deployer, &prod));
        let approver = User {
            name: "approver".into(),
            role: Role::Approver,
        };
        assert!(u.may_sync(&approver, &prod));
        assert!(u.allowed(&approver, "patch", &APPLICATIONS, Some(&prod)));
        assert!(!u.allowed(&approver, "delete", &APPLICATIONS, Some(&prod)));
        assert!(!u.allowed(&approver, "patch", &PODS, None));
    }
}
