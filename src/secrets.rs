//! Credentials: where a token comes from, in order — flag, environment, the OS keyring
//! (Secret Service over D-Bus, then the kernel keyutils store), then the argocd and gh CLIs'
//! own config files — and storing one in the keyring with a plain answer about where it went
//! or why it could not (no D-Bus session on an SSH bastion is normal). Tokens are wrapped in
//! [`Secret`], whose Debug never shows them; nothing here logs a token or writes one in
//! plain text. Keyring calls block: call them from `spawn_blocking` in async code.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Keyring service names, one per system.
pub const ARGOCD_SERVICE: &str = "shipdeck-argocd";
pub const GITHUB_SERVICE: &str = "shipdeck-github";
pub const JENKINS_SERVICE: &str = "shipdeck-jenkins";

/// A token or password. Debug and Display are redacted.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }
    /// The secret itself, for an Authorization header. Never print it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Which keyring holds a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredWhere {
    SecretService,
    KernelKeyutils,
}

impl fmt::Display for StoredWhere {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StoredWhere::SecretService => "the Secret Service keyring (D-Bus)",
            StoredWhere::KernelKeyutils => {
                "the kernel keyring (keyutils; kept in memory until logout or reboot)"
            }
        })
    }
}

/// Where a credential was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Flag,
    Env(String),
    Keyring(StoredWhere),
    ArgocdCliConfig(PathBuf),
    GhCliConfig(PathBuf),
    ShipdeckConfig,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag => f.write_str("command-line flag"),
            Origin::Env(v) => write!(f, "environment variable {v}"),
            Origin::Keyring(w) => write!(f, "{w}"),
            Origin::ArgocdCliConfig(p) => write!(f, "argocd CLI config {}", p.display()),
            Origin::GhCliConfig(p) => write!(f, "gh CLI config {}", p.display()),
            Origin::ShipdeckConfig => f.write_str("shipdeck config"),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum SecretError {
    #[error(
        "could not store the credential in any keyring: {}. Use an environment variable instead (e.g. ARGOCD_AUTH_TOKEN, GH_TOKEN) — this is normal on a host without a desktop session",
        .0.join("; ")
    )]
    NoKeyring(Vec<String>),
    #[error("cannot read {path}: {detail}")]
    BadFile { path: PathBuf, detail: String },
}

/// Reads an environment variable (tests pass a map instead of the process environment).
pub type EnvLookup = Box<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Where to look; tests replace the environment and the CLI config paths.
pub struct CredentialChain {
    pub env: EnvLookup,
    pub use_keyring: bool,
    pub argocd_config: Option<PathBuf>,
    pub gh_config: Option<PathBuf>,
}

impl Default for CredentialChain {
    fn default() -> Self {
        Self {
            env: Box::new(|k| std::env::var(k).ok().filter(|v| !v.trim().is_empty())),
            use_keyring: std::env::var_os("SHIPDECK_NO_KEYRING").is_none(),
            argocd_config: argocd_config_path(),
            gh_config: gh_config_path(),
        }
    }
}

/// The host part of a URL or server string, as the keyring account name.
pub fn host_of(server: &str) -> String {
    let s = server
        .trim()
        .trim_start_matches("https://")
        .trim_start_matches("http://");
    s.split('/').next().unwrap_or(s).to_ascii_lowercase()
}

impl CredentialChain {
    fn env_first(&self, names: &[&str]) -> Option<(Secret, Origin)> {
        names.iter().find_map(|n| {
            (self.env)(n)
                .filter(|v| !v.trim().is_empty())
                .map(|v| (Secret::new(v.trim()), Origin::Env((*n).to_string())))
        })
    }

    fn keyring(&self, service: &str, account: &str) -> Option<(Secret, Origin)> {
        if !self.use_keyring {
            return None;
        }
        keyring_get(service, account).map(|(s, w)| (s, Origin::Keyring(w)))
    }

    /// Argo CD token for a server: flag > `ARGOCD_AUTH_TOKEN` > keyring > argocd CLI config.
    pub fn argocd_token(&self, server: &str, flag: Option<&str>) -> Option<(Secret, Origin)> {
        if let Some(f) = flag.filter(|f| !f.trim().is_empty()) {
            return Some((Secret::new(f.trim()), Origin::Flag));
        }
        self.env_first(&["ARGOCD_AUTH_TOKEN"])
            .or_else(|| self.keyring(ARGOCD_SERVICE, &host_of(server)))
            .or_else(|| {
                let path = self.argocd_config.as_ref()?;
                let cfg = ArgocdCliConfig::load(path).ok()?;
                cfg.token_for(server)
                    .map(|t| (t, Origin::ArgocdCliConfig(path.clone())))
            })
    }

    /// GitHub token: flag > `GH_TOKEN` > `GITHUB_TOKEN` > keyring > gh CLI config.
    pub fn github_token(&self, api_url: &str, flag: Option<&str>) -> Option<(Secret, Origin)> {
        if let Some(f) = flag.filter(|f| !f.trim().is_empty()) {
            return Some((Secret::new(f.trim()), Origin::Flag));
        }
        let host = github_host(api_url);
        self.env_first(&["GH_TOKEN", "GITHUB_TOKEN"])
            .or_else(|| self.keyring(GITHUB_SERVICE, &host))
            .or_else(|| {
                let path = self.gh_config.as_ref()?;
                gh_token(path, &host).map(|t| (t, Origin::GhCliConfig(path.clone())))
            })
    }

    /// Jenkins user and API token: flags > `JENKINS_USER`+`JENKINS_API_TOKEN` > keyring
    /// (stored as `user:token`).
    pub fn jenkins(
        &self,
        url: &str,
        user: Option<&str>,
        token: Option<&str>,
    ) -> Option<(String, Secret, Origin)> {
        if let (Some(u), Some(t)) = (user, token) {
            return Some((u.to_string(), Secret::new(t), Origin::Flag));
        }
        if let (Some(u), Some((t, o))) = (
            (self.env)("JENKINS_USER"),
            self.env_first(&["JENKINS_API_TOKEN", "JENKINS_TOKEN"]),
        ) {
            return Some((u, t, o));
        }
        let (both, origin) = self.keyring(JENKINS_SERVICE, &host_of(url))?;
        let (u, t) = both.expose().split_once(':')?;
        Some((u.to_string(), Secret::new(t), origin))
    }
}

/// `api.github.com` for the public API, else the enterprise host.
pub fn github_host(api_url: &str) -> String {
    let h = host_of(api_url);
    if h == "api.github.com" {
        "github.com".into()
    } else {
        h
    }
}

fn config_home() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| directories::BaseDirs::new().map(|d| d.home_dir().join(".config")))
}

/// The argocd CLI's config: `$ARGOCD_CONFIG_DIR/config`, else `~/.config/argocd/config`,
/// else the legacy `~/.argocd/config`.
pub fn argocd_config_path() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("ARGOCD_CONFIG_DIR") {
        return Some(PathBuf::from(d).join("config"));
    }
    let xdg = config_home().map(|c| c.join("argocd").join("config"));
    if xdg.as_ref().is_some_and(|p| p.exists()) {
        return xdg;
    }
    let legacy = directories::BaseDirs::new().map(|d| d.home_dir().join(".argocd").join("config"));
    if legacy.as_ref().is_some_and(|p| p.exists()) {
        return legacy;
    }
    xdg
}

pub fn gh_config_path() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("GH_CONFIG_DIR") {
        return Some(PathBuf::from(d).join("hosts.yml"));
    }
    config_home().map(|c| c.join("gh").join("hosts.yml"))
}

/// The argocd CLI's own config file (contexts, servers, users, current context).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ArgocdCliConfig {
    #[serde(default)]
    pub current_context: Option<String>,
    #[serde(default)]
    pub contexts: Vec<ArgocdContext>,
    #[serde(default)]
    pub servers: Vec<ArgocdServer>,
    #[serde(default)]
    pub users: Vec<ArgocdUser>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ArgocdContext {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub server: String,
    #[serde(default)]
    pub user: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ArgocdServer {
    #[serde(default)]
    pub server: String,
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub plain_text: bool,
    #[serde(default)]
    pub grpc_web_root_path: Option<String>,
    #[serde(default)]
    pub core: bool,
}

#[derive(Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct ArgocdUser {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    auth_token: Option<String>,
}

impl fmt::Debug for ArgocdUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArgocdUser")
            .field("name", &self.name)
            .field(
                "auth_token",
                &self.auth_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// The current argocd CLI context, resolved to a server address as the CLI would use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgocdCurrent {
    pub name: String,
    /// `http://host` when the CLI talks plain text, else `https://host`.
    pub server: String,
    pub insecure: bool,
    /// The context is `argocd --core` (no API server): use core mode.
    pub core: bool,
}

impl ArgocdCliConfig {
    pub fn load(path: &Path) -> Result<ArgocdCliConfig, SecretError> {
        let text = std::fs::read_to_string(path).map_err(|e| SecretError::BadFile {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        serde_saphyr::from_str(&text).map_err(|e| SecretError::BadFile {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })
    }

    pub fn current(&self) -> Option<ArgocdCurrent> {
        let name = self.current_context.as_ref()?;
        let ctx = self.contexts.iter().find(|c| &c.name == name)?;
        let srv = self.servers.iter().find(|s| s.server == ctx.server);
        let plain = srv.is_some_and(|s| s.plain_text);
        let server = if ctx.server.starts_with("http://") || ctx.server.starts_with("https://") {
            ctx.server.clone()
        } else if plain {
            format!("http://{}", ctx.server)
        } else {
            format!("https://{}", ctx.server)
        };
        Some(ArgocdCurrent {
            name: name.clone(),
            server,
            insecure: srv.is_some_and(|s| s.insecure),
            core: srv.is_some_and(|s| s.core) || ctx.server == "kubernetes",
        })
    }

    /// The token of the user of the context whose server is `server`.
    pub fn token_for(&self, server: &str) -> Option<Secret> {
        let want = host_of(server);
        let ctx = self.contexts.iter().find(|c| host_of(&c.server) == want)?;
        self.users
            .iter()
            .find(|u| u.name == ctx.user)?
            .auth_token
            .as_ref()
            .filter(|t| !t.is_empty())
            .map(Secret::new)
    }
}

/// `oauth_token` for a host from the gh CLI's `hosts.yml`.
pub fn gh_token(path: &Path, host: &str) -> Option<Secret> {
    #[derive(Deserialize)]
    struct Host {
        #[serde(default)]
        oauth_token: Option<String>,
    }
    let text = std::fs::read_to_string(path).ok()?;
    let hosts: BTreeMap<String, Host> = serde_saphyr::from_str(&text).ok()?;
    hosts
        .get(host)?
        .oauth_token
        .as_ref()
        .filter(|t| !t.is_empty())
        .map(Secret::new)
}

// ---- OS keyrings -------------------------------------------------------------------------

fn secret_service_entry(service: &str, account: &str) -> Result<keyring::Entry, String> {
    keyring::Entry::new(service, account).map_err(|e| format!("Secret Service: {e}"))
}

#[cfg(target_os = "linux")]
fn keyutils_entry(service: &str, account: &str) -> Result<keyring_core::Entry, String> {
    use keyring_core::api::CredentialStoreApi;
    // A process started over SSH may have no session keyring; join (create) one so the
    // keyutils store has somewhere to live.
    let _ =
        linux_keyutils::KeyRing::from_special_id(linux_keyutils::KeyRingIdentifier::Session, true);
    let store =
        linux_keyutils_keyring_store::Store::new().map_err(|e| format!("kernel keyring: {e}"))?;
    store
        .build(service, account, None)
        .map_err(|e| format!("kernel keyring: {e}"))
}

#[cfg(not(target_os = "linux"))]
fn keyutils_entry(_service: &str, _account: &str) -> Result<keyring_core::Entry, String> {
    Err("kernel keyring: only on Linux".into())
}

/// Read a secret from the Secret Service, then the kernel keyring.
pub fn keyring_get(service: &str, account: &str) -> Option<(Secret, StoredWhere)> {
    if let Ok(e) = secret_service_entry(service, account)
        && let Ok(p) = e.get_password()
    {
        return Some((Secret::new(p), StoredWhere::SecretService));
    }
    if let Ok(e) = keyutils_entry(service, account)
        && let Ok(p) = e.get_password()
    {
        return Some((Secret::new(p), StoredWhere::KernelKeyutils));
    }
    None
}

/// Store a secret: the Secret Service if it answers, else the kernel keyring. Says where.
pub fn store(service: &str, account: &str, secret: &Secret) -> Result<StoredWhere, SecretError> {
    let mut reasons = Vec::new();
    match secret_service_entry(service, account).and_then(|e| {
        e.set_password(secret.expose())
            .map_err(|e| format!("Secret Service: {e}"))
    }) {
        Ok(()) => return Ok(StoredWhere::SecretService),
        Err(r) => reasons.push(r),
    }
    match keyutils_entry(service, account).and_then(|e| {
        e.set_password(secret.expose())
            .map_err(|e| format!("kernel keyring: {e}"))
    }) {
        Ok(()) => return Ok(StoredWhere::KernelKeyutils),
        Err(r) => reasons.push(r),
    }
    Err(SecretError::NoKeyring(reasons))
}

/// Remove a stored secret from both keyrings (missing is fine).
pub fn forget(service: &str, account: &str) {
    if let Ok(e) = secret_service_entry(service, account) {
        let _ = e.delete_credential();
    }
    if let Ok(e) = keyutils_entry(service, account) {
        let _ = e.delete_credential();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn chain(
        env: &[(&str, &str)],
        argocd: Option<PathBuf>,
        gh: Option<PathBuf>,
    ) -> CredentialChain {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        CredentialChain {
            env: Box::new(move |k| env.get(k).cloned()),
            use_keyring: false,
            argocd_config: argocd,
            gh_config: gh,
        }
    }

    #[test]
    fn secret_debug_is_redacted() {
        let s = Secret::new("hunter2");
        assert!(!format!("{s:?} {s}").contains("hunter2"));
    }

    #[test]
    fn argocd_chain_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config");
        std::fs::write(
            &path,
            "contexts:\n- name: prod\n  server: argocd.example.com\n  user: prod\ncurrent-context: prod\nservers:\n- server: argocd.example.com\n  insecure: true\nusers:\n- name: prod\n  auth-token: from-cli\n",
        )
        .unwrap();
        let c = chain(
            &[("ARGOCD_AUTH_TOKEN", "from-env")],
            Some(path.clone()),
            None,
        );
        let (t, o) = c
            .argocd_token("https://argocd.example.com", Some("from-flag"))
            .unwrap();
        assert_eq!((t.expose(), o), ("from-flag", Origin::Flag));
        let (t, o) = c.argocd_token("https://argocd.example.com", None).unwrap();
        assert_eq!(
            (t.expose(), o),
            ("from-env", Origin::Env("ARGOCD_AUTH_TOKEN".into()))
        );
        let c = chain(&[], Some(path.clone()), None);
        let (t, o) = c.argocd_token("argocd.example.com", None).unwrap();
        assert_eq!(
            (t.expose(), o),
            ("from-cli", Origin::ArgocdCliConfig(path.clone()))
        );
        assert!(c.argocd_token("other.example.com", None).is_none());
        let cur = ArgocdCliConfig::load(&path).unwrap().current().unwrap();
        assert_eq!(cur.server, "https://argocd.example.com");
        assert!(cur.insecure);
        let dbg = format!("{:?}", ArgocdCliConfig::load(&path).unwrap());
        assert!(!dbg.contains("from-cli"));
    }

    #[test]
    fn github_chain_order() {
        let dir = tempfile::tempdir().unwrap();
        let hosts = dir.path().join("hosts.yml");
        std::fs::write(&hosts, "github.com:\n  oauth_token: gho_cli\n  user: ann\n").unwrap();
        let c = chain(
            &[("GITHUB_TOKEN", "gt"), ("GH_TOKEN", "gh")],
            None,
            Some(hosts.clone()),
        );
        assert_eq!(
            c.github_token("https://api.github.com", None)
                .unwrap()
                .0
                .expose(),
            "gh"
        );
        let c = chain(&[("GITHUB_TOKEN", "gt")], None, Some(hosts.clone()));
        assert_eq!(
            c.github_token("https://api.github.com", None)
                .unwrap()
                .0
                .expose(),
            "gt"
        );
        let c = chain(&[], None, Some(hosts.clone()));
        let (t, o) = c.github_token("https://api.github.com", None).unwrap();
        assert_eq!((t.expose(), o), ("gho_cli", Origin::GhCliConfig(hosts)));
        assert!(c.github_token("https://ghe.corp/api/v3", None).is_none());
    }

    #[test]
    fn jenkins_from_env() {
        let c = chain(
            &[("JENKINS_USER", "ci"), ("JENKINS_API_TOKEN", "tok")],
            None,
            None,
        );
        let (u, t, _) = c.jenkins("http://jenkins", None, None).unwrap();
        assert_eq!((u.as_str(), t.expose()), ("ci", "tok"));
    }
}
