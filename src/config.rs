//! shipdeck's config file: TOML in the platform config dir, every key optional, read as
//! overrides on the compiled-in defaults (`assets/config.example.toml`). A bad value never
//! stops the program: it becomes a [`ConfigWarning`] naming the file, line, key and reason,
//! and the default is used. Also here: which CI pipeline belongs to an app (config rules and
//! Application annotations), as a pure function.

use crate::model::{Application, ApprovalPolicy};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub const DEFAULTS: &str = include_str!("../assets/config.example.toml");

/// One problem in a config file; the rest of the file still applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub key: String,
    pub reason: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        write!(f, ": {}: {} (using the default)", self.key, self.reason)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceConfig {
    #[serde(default)]
    pub name: Option<String>,
    pub server: String,
    #[serde(default)]
    pub insecure: bool,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default)]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextConfig {
    pub name: String,
    #[serde(default = "default_argocd_namespace")]
    pub argocd_namespace: String,
    #[serde(default)]
    pub read_only: bool,
}

fn default_argocd_namespace() -> String {
    "argocd".into()
}

/// How a rule finds an app's environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EnvMatch {
    Label,
    NameGlob,
    NamespaceGlob,
    Cluster,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvRule {
    #[serde(rename = "match")]
    pub kind: EnvMatch,
    /// Label key for `label`.
    #[serde(default)]
    pub key: Option<String>,
    /// Glob for `name-glob` / `namespace-glob` / `cluster`.
    #[serde(default)]
    pub glob: Option<String>,
    /// The environment to assign; for `label`, None means the label's value.
    #[serde(default)]
    pub environment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnvPolicy {
    #[serde(default)]
    pub approval: ApprovalPolicy,
    #[serde(default = "one")]
    pub approvers: u32,
    #[serde(default = "yes")]
    pub prune_needs_confirm: bool,
}

fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}

impl Default for EnvPolicy {
    fn default() -> Self {
        Self {
            approval: ApprovalPolicy::None,
            approvers: 1,
            prune_needs_confirm: true,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvironmentsConfig {
    pub order: Vec<String>,
    pub rules: Vec<EnvRule>,
    pub policy: BTreeMap<String, EnvPolicy>,
}

impl EnvironmentsConfig {
    /// The policy of an environment: configured, else `required` for prod-like names and
    /// `none` for the rest (DESIGN.md "Environments").
    pub fn policy_for(&self, env: &str) -> EnvPolicy {
        if let Some(p) = self.policy.get(env) {
            return p.clone();
        }
        let prod = matches!(env, "prod" | "prd" | "production");
        EnvPolicy {
            approval: if prod {
                ApprovalPolicy::Required
            } else {
                ApprovalPolicy::None
            },
            ..EnvPolicy::default()
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineRule {
    /// Glob on the application name.
    pub apps: String,
    /// `owner/repo` on GitHub.
    #[serde(default)]
    pub github: Option<String>,
    #[serde(default)]
    pub workflow: Option<String>,
    #[serde(default, rename = "ref")]
    pub git_ref: Option<String>,
    #[serde(default)]
    pub jenkins: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GithubConfig {
    #[serde(default)]
    pub api_url: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JenkinsConfig {
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollConfig {
    #[serde(default = "two")]
    pub workloads_api_seconds: u64,
    #[serde(default = "three")]
    pub github_runs_seconds: u64,
    #[serde(default = "three")]
    pub jenkins_seconds: u64,
    #[serde(default = "ten")]
    pub git_fetch_min_seconds: u64,
}

fn two() -> u64 {
    2
}
fn three() -> u64 {
    3
}
fn ten() -> u64 {
    10
}

impl Default for PollConfig {
    fn default() -> Self {
        Self {
            workloads_api_seconds: 2,
            github_runs_seconds: 3,
            jenkins_seconds: 3,
            git_fetch_min_seconds: 10,
        }
    }
}

/// The whole configuration, defaults filled in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config {
    pub theme: String,
    pub read_only: bool,
    pub operator: Option<String>,
    pub instances: Vec<InstanceConfig>,
    pub contexts: Vec<ContextConfig>,
    pub clusters: BTreeMap<String, String>,
    pub environments: EnvironmentsConfig,
    pub pipelines: Vec<PipelineRule>,
    pub github: GithubConfig,
    pub jenkins: JenkinsConfig,
    pub keys: BTreeMap<String, String>,
    pub poll: PollConfig,
    /// The file the values came from, if any.
    pub path: Option<PathBuf>,
}

const KNOWN: &[&str] = &[
    "theme",
    "read_only",
    "operator",
    "instances",
    "contexts",
    "clusters",
    "environments",
    "pipelines",
    "github",
    "jenkins",
    "keys",
    "poll",
];

/// `~/.config/shipdeck/config.toml` on Linux.
pub fn default_path() -> Option<PathBuf> {
    crate::paths::config_dir().map(|d| d.join("config.toml"))
}

struct Reader<'a> {
    file: &'a Path,
    text: &'a str,
    warnings: Vec<ConfigWarning>,
}

impl Reader<'_> {
    fn line_of(&self, key: &str) -> Option<usize> {
        let last = key.rsplit('.').next().unwrap_or(key);
        self.text
            .lines()
            .position(|l| {
                let t = l.trim_start();
                (t.starts_with(last) && t[last.len()..].trim_start().starts_with('='))
                    || (t.starts_with('[') && t.contains(last))
            })
            .map(|i| i + 1)
    }

    fn warn(&mut self, key: &str, reason: impl Into<String>) {
        let line = self.line_of(key);
        self.warnings.push(ConfigWarning {
            file: self.file.to_path_buf(),
            line,
            key: key.to_string(),
            reason: reason.into(),
        });
    }

    fn value<T: DeserializeOwned>(&mut self, v: &toml::Value, key: &str) -> Option<T> {
        match v.clone().try_into::<T>() {
            Ok(t) => Some(t),
            Err(e) => {
                let reason = e.message().to_string();
                self.warn(key, reason);
                None
            }
        }
    }

    fn list<T: DeserializeOwned>(&mut self, v: Option<&toml::Value>, key: &str) -> Vec<T> {
        match v {
            None => Vec::new(),
            Some(toml::Value::Array(items)) => items
                .iter()
                .enumerate()
                .filter_map(|(i, item)| self.value(item, &format!("{key}[{i}]")))
                .collect(),
            Some(_) => {
                self.warn(key, "expected a list ([[...]] tables)");
                Vec::new()
            }
        }
    }
}

fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

impl Config {
    /// The compiled-in defaults alone.
    pub fn defaults() -> Config {
        Config::parse("", Path::new("<defaults>")).0
    }

    /// Load from `path` (or the default location). A missing default file is not a
    /// warning; a missing explicit file is.
    pub fn load(path: Option<&Path>) -> (Config, Vec<ConfigWarning>) {
        let (p, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => match default_path() {
                Some(p) => (p, false),
                None => return (Config::defaults(), Vec::new()),
            },
        };
        match std::fs::read_to_string(&p) {
            Ok(text) => {
                let (mut c, w) = Config::parse(&text, &p);
                c.path = Some(p);
                (c, w)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                (Config::defaults(), Vec::new())
            }
            Err(e) => (
                Config::defaults(),
                vec![ConfigWarning {
                    file: p,
                    line: None,
                    key: "(file)".into(),
                    reason: e.to_string(),
                }],
            ),
        }
    }

    /// Parse `text` as overrides on the defaults.
    pub fn parse(text: &str, file: &Path) -> (Config, Vec<ConfigWarning>) {
        let mut r = Reader {
            file,
            text,
            warnings: Vec::new(),
        };
        let mut table: toml::Table = toml::from_str(DEFAULTS).unwrap_or_default();
        match toml::from_str::<toml::Table>(text) {
            Ok(user) => {
                for k in user.keys() {
                    if !KNOWN.contains(&k.as_str()) {
                        r.warn(k, format!("unknown key (known: {})", KNOWN.join(", ")));
                    }
                }
                merge(&mut table, user);
            }
            Err(e) => {
                let line = e
                    .span()
                    .map(|s| text[..s.start.min(text.len())].lines().count().max(1));
                r.warnings.push(ConfigWarning {
                    file: file.to_path_buf(),
                    line,
                    key: "(syntax)".into(),
                    reason: format!("{}; the whole file is ignored", e.message()),
                });
            }
        }
        let mut c = Config {
            theme: "default".into(),
            ..Default::default()
        };
        if let Some(v) = table.get("theme") {
            c.theme = r.value(v, "theme").unwrap_or(c.theme);
        }
        if let Some(v) = table.get("read_only") {
            c.read_only = r.value(v, "read_only").unwrap_or(false);
        }
        if let Some(v) = table.get("operator") {
            c.operator = r
                .value::<String>(v, "operator")
                .filter(|s| !s.trim().is_empty());
        }
        c.instances = r.list(table.get("instances"), "instances");
        c.contexts = r.list(table.get("contexts"), "contexts");
        if let Some(v) = table.get("clusters") {
            c.clusters = r.value(v, "clusters").unwrap_or_default();
        }
        if let Some(toml::Value::Table(env)) = table.get("environments") {
            if let Some(v) = env.get("order") {
                c.environments.order = r.value(v, "environments.order").unwrap_or_default();
            }
            c.environments.rules = r.list(env.get("rules"), "environments.rules");
            for rule in &c.environments.rules.clone() {
                if rule.kind == EnvMatch::Label && rule.key.is_none() {
                    r.warn("environments.rules", "a label rule needs `key`");
                }
                if rule.kind != EnvMatch::Label
                    && (rule.glob.is_none() || rule.environment.is_none())
                {
                    r.warn(
                        "environments.rules",
                        "a glob rule needs `glob` and `environment`",
                    );
                }
            }
            if let Some(toml::Value::Table(policies)) = env.get("policy") {
                for (name, v) in policies {
                    let key = format!("environments.policy.{name}");
                    if let Some(p) = r.value::<EnvPolicy>(v, &key) {
                        c.environments.policy.insert(name.clone(), p);
                    }
                }
            }
        }
        c.pipelines = r.list(table.get("pipelines"), "pipelines");
        for p in &c.pipelines.clone() {
            if p.github.is_none() && p.jenkins.is_none() {
                r.warn(
                    "pipelines",
                    format!("pipeline for {:?} names neither github nor jenkins", p.apps),
                );
            }
            if p.github
                .as_deref()
                .is_some_and(|g| g.split('/').count() != 2)
            {
                r.warn(
                    "pipelines",
                    format!(
                        "github = {:?} is not owner/repo",
                        p.github.as_deref().unwrap_or("")
                    ),
                );
            }
        }
        if let Some(v) = table.get("github") {
            c.github = r.value(v, "github").unwrap_or_default();
        }
        if let Some(v) = table.get("jenkins") {
            c.jenkins = r.value(v, "jenkins").unwrap_or_default();
        }
        if let Some(v) = table.get("keys") {
            c.keys = r.value(v, "keys").unwrap_or_default();
        }
        if let Some(v) = table.get("poll") {
            c.poll = r.value(v, "poll").unwrap_or_default();
        }
        (c, r.warnings)
    }

    /// The operator's name for `initiatedBy`: config, else the login name.
    pub fn operator_name(&self) -> String {
        self.operator
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .or_else(|| std::env::var("USERNAME").ok())
            .unwrap_or_else(|| "shipdeck".into())
    }
}

/// A shell-style glob: `*` any run, `?` one character.
pub fn glob_match(pattern: &str, s: &str) -> bool {
    fn rec(p: &[u8], s: &[u8]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some(b'*') => (0..=s.len()).any(|i| rec(&p[1..], &s[i..])),
            Some(b'?') => !s.is_empty() && rec(&p[1..], &s[1..]),
            Some(c) => s.first() == Some(c) && rec(&p[1..], &s[1..]),
        }
    }
    rec(pattern.as_bytes(), s.as_bytes())
}

/// The CI pipeline that builds an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pipeline {
    Github {
        owner: String,
        repo: String,
        /// Workflow file; None = let the operator pick among the repo's workflows.
        workflow: Option<String>,
        /// Ref to dispatch on; None = the app's target revision.
        git_ref: Option<String>,
    },
    Jenkins {
        job: String,
    },
}

pub const ANNOTATION_GITHUB_REPO: &str = "shipdeck.io/github-repo";
pub const ANNOTATION_WORKFLOW: &str = "shipdeck.io/workflow";
pub const ANNOTATION_JENKINS_JOB: &str = "shipdeck.io/jenkins-job";

/// The pipeline of an app: its annotations first (closest to the app), then the first
/// config rule whose glob matches the app name.
pub fn pipeline_for(app: &Application, rules: &[PipelineRule]) -> Option<Pipeline> {
    let ann = &app.metadata.annotations;
    if let Some(repo) = ann.get(ANNOTATION_GITHUB_REPO)
        && let Some((owner, repo)) = repo.trim().split_once('/')
    {
        return Some(Pipeline::Github {
            owner: owner.to_string(),
            repo: repo.to_string(),
            workflow: ann.get(ANNOTATION_WORKFLOW).cloned(),
            git_ref: None,
        });
    }
    if let Some(job) = ann
        .get(ANNOTATION_JENKINS_JOB)
        .filter(|j| !j.trim().is_empty())
    {
        return Some(Pipeline::Jenkins {
            job: job.trim().to_string(),
        });
    }
    let rule = rules
        .iter()
        .find(|r| glob_match(&r.apps, &app.metadata.name))?;
    if let Some((owner, repo)) = rule.github.as_deref().and_then(|g| g.split_once('/')) {
        return Some(Pipeline::Github {
            owner: owner.to_string(),
            repo: repo.to_string(),
            workflow: rule.workflow.clone(),
            git_ref: rule.git_ref.clone(),
        });
    }
    rule.jenkins.clone().map(|job| Pipeline::Jenkins { job })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_without_warnings() {
        let (c, w) = Config::parse("", Path::new("x.toml"));
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.theme, "default");
        assert_eq!(c.environments.order, vec!["dev", "staging", "prod"]);
        assert_eq!(
            c.environments.policy_for("prod").approval,
            ApprovalPolicy::Required
        );
        assert_eq!(
            c.environments.policy_for("qa").approval,
            ApprovalPolicy::None
        );
        assert_eq!(c.poll.workloads_api_seconds, 2);
    }

    #[test]
    fn overrides_apply_and_bad_values_warn() {
        let text = r#"
theme = "light"
bogus = 1
read_only = "yes"

[[instances]]
server = "argocd.example.com"
insecure = true

[[instances]]
name = 3

[environments.policy.staging]
approval = "sometimes"

[environments.policy.prod]
approvers = 2

[[pipelines]]
apps = "shop-*"
github = "acme/shop"
workflow = "build.yml"
"#;
        let (c, w) = Config::parse(text, Path::new("/home/ann/.config/shipdeck/config.toml"));
        assert_eq!(c.theme, "light");
        assert_eq!(c.instances.len(), 1);
        assert!(c.instances[0].insecure);
        assert!(!c.read_only);
        // The staging override is bad: the default stays.
        assert_eq!(
            c.environments.policy_for("staging").approval,
            ApprovalPolicy::None
        );
        assert_eq!(c.environments.policy_for("prod").approvers, 2);
        let keys: Vec<&str> = w.iter().map(|w| w.key.as_str()).collect();
        assert!(keys.contains(&"bogus"), "{keys:?}");
        assert!(keys.contains(&"read_only"), "{keys:?}");
        assert!(keys.contains(&"instances[1]"), "{keys:?}");
        assert!(keys.contains(&"environments.policy.staging"), "{keys:?}");
        let ro = w.iter().find(|w| w.key == "read_only").unwrap();
        assert_eq!(ro.line, Some(4));
        assert!(
            ro.to_string()
                .starts_with("/home/ann/.config/shipdeck/config.toml:4: read_only:")
        );
    }

    #[test]
    fn syntax_error_is_a_warning_with_a_line() {
        let (c, w) = Config::parse("theme = \"light\"\n[[instances]\n", Path::new("c.toml"));
        assert_eq!(c.theme, "default");
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].line, Some(2));
    }

    #[test]
    fn pipelines_from_annotations_then_config() {
        let rules = vec![
            PipelineRule {
                apps: "shop-*".into(),
                github: Some("acme/shop".into()),
                workflow: Some("build.yml".into()),
                git_ref: None,
                jenkins: None,
            },
            PipelineRule {
                apps: "wanderlust".into(),
                github: None,
                workflow: None,
                git_ref: None,
                jenkins: Some("GitOps-Pipeline".into()),
            },
        ];
        let mut app = Application::default();
        app.metadata.name = "shop-prod".into();
        assert!(
            matches!(pipeline_for(&app, &rules), Some(Pipeline::Github { repo, .. }) if repo == "shop")
        );
        app.metadata
            .annotations
            .insert(ANNOTATION_JENKINS_JOB.into(), "build-shop".into());
        assert_eq!(
            pipeline_for(&app, &rules),
            Some(Pipeline::Jenkins {
                job: "build-shop".into()
            })
        );
        app.metadata.name = "wanderlust".into();
        app.metadata.annotations.clear();
        assert_eq!(
            pipeline_for(&app, &rules),
            Some(Pipeline::Jenkins {
                job: "GitOps-Pipeline".into()
            })
        );
        app.metadata.name = "other".into();
        assert_eq!(pipeline_for(&app, &rules), None);
    }
}
