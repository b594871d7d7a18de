//! Kubeconfig: which files (`KUBECONFIG`, several paths, else `~/.kube/config`), which
//! context, and which context reaches an Argo CD destination server. Errors name the file.

use crate::sources::SourceError;
use kube::config::{KubeConfigOptions, Kubeconfig};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// The in-cluster destination Argo CD uses for "the cluster I run in".
pub const IN_CLUSTER_SERVER: &str = "https://kubernetes.default.svc";

/// The kubeconfig files in use, in merge order.
pub fn kubeconfig_paths() -> Vec<PathBuf> {
    if let Some(v) = std::env::var_os("KUBECONFIG") {
        let paths: Vec<PathBuf> = std::env::split_paths(&v)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        if !paths.is_empty() {
            return paths;
        }
    }
    directories::BaseDirs::new()
        .map(|d| vec![d.home_dir().join(".kube").join("config")])
        .unwrap_or_default()
}

/// Read and merge every kubeconfig file; a file that is missing from a list of several is
/// skipped as kubectl does, a malformed one is an error naming it.
pub fn load_kubeconfig() -> Result<Kubeconfig, SourceError> {
    load_from(&kubeconfig_paths())
}

/// [`load_kubeconfig`] over given paths.
pub fn load_from(paths: &[PathBuf]) -> Result<Kubeconfig, SourceError> {
    let several = paths.len() > 1;
    let mut merged: Option<Kubeconfig> = None;
    for path in paths {
        if several && !path.exists() {
            continue;
        }
        let kc = Kubeconfig::read_from(path).map_err(|e| {
            SourceError::Config(format!(
                "kubeconfig {}: {e}; fix the file or point KUBECONFIG elsewhere",
                path.display()
            ))
        })?;
        merged = Some(match merged {
            None => kc,
            Some(m) => m
                .merge(kc)
                .map_err(|e| SourceError::Config(format!("kubeconfig {}: {e}", path.display())))?,
        });
    }
    merged.ok_or_else(|| {
        SourceError::Config(
            "no kubeconfig found: set KUBECONFIG or create ~/.kube/config (core mode needs one)"
                .into(),
        )
    })
}

/// The context to use: the given one (must exist) or the kubeconfig's current context.
pub fn pick_context(kc: &Kubeconfig, wanted: Option<&str>) -> Result<String, SourceError> {
    let name = match wanted {
        Some(w) => w.to_string(),
        None => kc.current_context.clone().ok_or_else(|| {
            SourceError::Config("kubeconfig has no current-context; pass --context NAME".into())
        })?,
    };
    if !kc.contexts.iter().any(|c| c.name == name) {
        let known: Vec<&str> = kc.contexts.iter().map(|c| c.name.as_str()).collect();
        return Err(SourceError::Config(format!(
            "kubeconfig has no context {name:?} (known: {})",
            known.join(", ")
        )));
    }
    Ok(name)
}

/// A client for one context.
pub async fn client_for(kc: &Kubeconfig, context: &str) -> Result<kube::Client, SourceError> {
    let opts = KubeConfigOptions {
        context: Some(context.to_string()),
        ..Default::default()
    };
    let mut config = kube::Config::from_custom_kubeconfig(kc.clone(), &opts)
        .await
        .map_err(|e| SourceError::Config(format!("kubeconfig context {context:?}: {e}")))?;
    // kube-rs would retry 429/503/504 on every request, writes included, up to 15 times
    // with delays growing to 1000 s. shipdeck retries reads itself, bounded
    // (`sources::retry`), and sends writes once.
    config.default_retry = false;
    kube::Client::try_from(config)
        .map_err(|e| SourceError::Config(format!("kubeconfig context {context:?}: {e}")))
}

fn norm(url: &str) -> String {
    url.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// The server URL of a context's cluster.
pub fn server_of(kc: &Kubeconfig, context: &str) -> Option<String> {
    let ctx = kc.contexts.iter().find(|c| c.name == context)?;
    let cluster = &ctx.context.as_ref()?.cluster;
    kc.clusters
        .iter()
        .find(|c| &c.name == cluster)?
        .cluster
        .as_ref()?
        .server
        .clone()
}

/// Which context reaches an application's destination: an explicit `clusters` entry from
/// config (server URL or cluster name -> context) first, then in-cluster = the Argo CD
/// context itself, then a context whose cluster has the same server URL, then a context
/// or cluster named like the destination.
pub fn context_for_destination(
    kc: &Kubeconfig,
    argocd_context: &str,
    explicit: &BTreeMap<String, String>,
    server: Option<&str>,
    name: Option<&str>,
) -> Option<String> {
    for key in [server, name].into_iter().flatten() {
        if let Some(ctx) = explicit
            .iter()
            .find(|(k, _)| norm(k) == norm(key))
            .map(|(_, v)| v.clone())
        {
            return Some(ctx);
        }
    }
    if server.is_some_and(|s| norm(s) == IN_CLUSTER_SERVER) || name == Some("in-cluster") {
        return Some(argocd_context.to_string());
    }
    if let Some(s) = server {
        let want = norm(s);
        // Prefer the Argo CD context when it matches too, so credentials stay the same.
        let mut matching = kc
            .contexts
            .iter()
            .filter(|c| server_of(kc, &c.name).is_some_and(|u| norm(&u) == want))
            .map(|c| c.name.clone());
        let first = matching.next();
        if let Some(first) = first {
            if server_of(kc, argocd_context).is_some_and(|u| norm(&u) == want) {
                return Some(argocd_context.to_string());
            }
            return Some(first);
        }
    }
    let n = name?;
    kc.contexts
        .iter()
        .find(|c| c.name == n || c.context.as_ref().is_some_and(|x| x.cluster == n))
        .map(|c| c.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kc() -> Kubeconfig {
        Kubeconfig::from_yaml(
            r#"
apiVersion: v1
kind: Config
current-context: mgmt
clusters:
- name: mgmt
  cluster: {server: "https://10.0.0.1:6443"}
- name: prod
  cluster: {server: "https://prod.example.com/"}
contexts:
- name: mgmt
  context: {cluster: mgmt, user: u}
- name: prod-admin
  context: {cluster: prod, user: u}
users:
- name: u
  user: {token: x}
"#,
        )
        .unwrap()
    }

    #[test]
    fn maps_destinations_to_contexts() {
        let kc = kc();
        let none = BTreeMap::new();
        let f =
            |s: Option<&str>, n: Option<&str>| context_for_destination(&kc, "mgmt", &none, s, n);
        assert_eq!(f(Some(IN_CLUSTER_SERVER), None).as_deref(), Some("mgmt"));
        assert_eq!(
            f(Some("https://prod.example.com"), None).as_deref(),
            Some("prod-admin")
        );
        assert_eq!(f(None, Some("prod")).as_deref(), Some("prod-admin"));
        assert_eq!(f(Some("https://other"), Some("other")), None);
        let explicit = BTreeMap::from([("https://other".to_string(), "mgmt".to_string())]);
        assert_eq!(
            context_for_destination(&kc, "mgmt", &explicit, Some("https://other/"), None)
                .as_deref(),
            Some("mgmt")
        );
    }

    #[test]
    fn picks_current_or_named_context() {
        let kc = kc();
        assert_eq!(pick_context(&kc, None).unwrap(), "mgmt");
        assert!(
            pick_context(&kc, Some("nope"))
                .unwrap_err()
                .to_string()
                .contains("nope")
        );
    }
}
