//! shipdeck's config file: TOML in the platform config dir, every key optional, read as
//! overrides on the compiled-in defaults (`assets/config.example.toml`). It fails closed: a
//! file that does not parse, a value of the wrong type (`read_only = "yes"`) or out of
//! range, a missing explicit `--config` is a [`ConfigError`] (file:line, key, reason, what
//! is allowed) and shipdeck stops before it connects (exit 2); a typo must never turn
//! read-only off. Unknown keys are [`ConfigWarning`]s pointing at the key's own line. Also
//! here: which CI pipeline belongs to an app (config rules and Application annotations), as
//! a pure function.

use crate::model::{Application, ApprovalPolicy};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub const DEFAULTS: &str = include_str!("../assets/config.example.toml");

/// Something in a config file that is ignored (an unknown key); the rest applies.
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
        write!(f, ": {}: {}", self.key, self.reason)
    }
}

/// A config file shipdeck will not run with: it does not parse, a value has the wrong type
/// or is out of range, or an explicit `--config` is missing. The caller exits 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub key: String,
    pub reason: String,
    /// What the key accepts.
    pub allowed: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "config {}", self.file.display())?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
        }
        write!(
            f,
            ": {}: {}; allowed: {}",
            self.key, self.reason, self.allowed
        )
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
    /// How long a four-eyes request stands (`4h`, `90m`, `1h30m`); default 4h.
    #[serde(default)]
    pub approval_request_ttl: Option<String>,
}

fn one() -> u32 {
    1
}
fn yes() -> bool {
    true
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnvironmentsConfig {
    pub order: Vec<String>,
    pub rules: Vec<EnvRule>,
    pub policy: BTreeMap<String, EnvPolicy>,
}

impl EnvironmentsConfig {
    /// The policy of an environment: configured, else the compiled-in default (production
    /// readings `required`, dev and staging `none`, anything unknown `confirm`).
    pub fn policy_for(&self, env: &str) -> EnvPolicy {
        if let Some(p) = self.policy.get(env) {
            return p.clone();
        }
        let d = crate::ops::policy::EnvPolicy::default_for(env);
        EnvPolicy {
            approval: d.approval,
            approvers: d.approvers,
            prune_needs_confirm: true,
            approval_request_ttl: None,
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
    /// How long a started sync or rollback is followed before it is called timed out
    /// (console and headless `--wait` alike).
    #[serde(default = "follow_deadline")]
    pub follow_deadline_seconds: u64,
}

fn follow_deadline() -> u64 {
    300
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
            follow_deadline_seconds: follow_deadline(),
        }
    }
}

/// `[[notify]]`: a webhook that hears about actions (see `ops::notify`). The URL is given
/// inline (`url`) or, so a Slack webhook's secret stays out of the file, by the name of an
/// environment variable holding it (`url_env`); exactly one of the two.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyConfig {
    /// A label for messages about this webhook (default: its host).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub url: Option<String>,
    #[serde(default)]
    pub url_env: Option<String>,
    /// `slack` (incoming-webhook JSON) or `json` (shipdeck's own object).
    pub kind: String,
    /// Which events it wants: [`crate::ops::notify::EVENTS`].
    pub events: Vec<String>,
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
    pub notify: Vec<NotifyConfig>,
    /// The file the values came from, if any.
    pub path: Option<PathBuf>,
}

/// `~/.config/shipdeck/config.toml` on Linux.
pub fn default_path() -> Option<PathBuf> {
    crate::paths::config_dir().map(|d| d.join("config.toml"))
}

/// What a value must be, for validation before anything is deserialized.
enum Ty {
    Bool,
    Str,
    /// An integer in this inclusive range.
    Int(i64, i64),
    StrList,
    /// A table of strings (any keys).
    StrMap,
    OneOf(&'static [&'static str]),
    Glob,
    OwnerRepo,
    /// A duration such as `4h`, `90m`, `1h30m` (`ops::foureyes::parse_ttl`).
    Duration,
    Table(&'static [Field]),
    /// `[[name]]`: a list of tables.
    Tables(&'static [Field]),
    /// A table of tables by name (`[environments.policy.NAME]`).
    MapOf(&'static [Field]),
}

struct Field {
    name: &'static str,
    ty: Ty,
    required: bool,
}

const fn f(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        required: false,
    }
}

const fn req(name: &'static str, ty: Ty) -> Field {
    Field {
        name,
        ty,
        required: true,
    }
}

const INSTANCE: &[Field] = &[
    f("name", Ty::Str),
    req("server", Ty::Str),
    f("insecure", Ty::Bool),
    f("read_only", Ty::Bool),
    f("namespace", Ty::Str),
];
const CONTEXT: &[Field] = &[
    req("name", Ty::Str),
    f("argocd_namespace", Ty::Str),
    f("read_only", Ty::Bool),
];
const RULE: &[Field] = &[
    req(
        "match",
        Ty::OneOf(&["label", "name-glob", "namespace-glob", "cluster"]),
    ),
    f("key", Ty::Str),
    f("glob", Ty::Glob),
    f("environment", Ty::Str),
];
const POLICY: &[Field] = &[
    f("approval", Ty::OneOf(&["none", "confirm", "required"])),
    f("approvers", Ty::Int(1, 10)),
    f("prune_needs_confirm", Ty::Bool),
    f("approval_request_ttl", Ty::Duration),
];
const ENVIRONMENTS: &[Field] = &[
    f("order", Ty::StrList),
    f("rules", Ty::Tables(RULE)),
    f("policy", Ty::MapOf(POLICY)),
];
const PIPELINE: &[Field] = &[
    req("apps", Ty::Glob),
    f("github", Ty::OwnerRepo),
    f("workflow", Ty::Str),
    f("ref", Ty::Str),
    f("jenkins", Ty::Str),
];
const GITHUB: &[Field] = &[f("api_url", Ty::Str)];
const JENKINS: &[Field] = &[f("url", Ty::Str), f("user", Ty::Str)];
const POLL: &[Field] = &[
    f("workloads_api_seconds", Ty::Int(1, 3600)),
    f("github_runs_seconds", Ty::Int(1, 3600)),
    f("jenkins_seconds", Ty::Int(1, 3600)),
    f("git_fetch_min_seconds", Ty::Int(1, 86400)),
    f("follow_deadline_seconds", Ty::Int(5, 86400)),
];
const NOTIFY: &[Field] = &[
    f("name", Ty::Str),
    f("url", Ty::Str),
    f("url_env", Ty::Str),
    req("kind", Ty::OneOf(crate::ops::notify::KINDS)),
    req("events", Ty::StrList),
];
const TOP: &[Field] = &[
    f("theme", Ty::Str),
    f("read_only", Ty::Bool),
    f("operator", Ty::Str),
    f("instances", Ty::Tables(INSTANCE)),
    f("contexts", Ty::Tables(CONTEXT)),
    f("clusters", Ty::StrMap),
    f("environments", Ty::Table(ENVIRONMENTS)),
    f("pipelines", Ty::Tables(PIPELINE)),
    f("github", Ty::Table(GITHUB)),
    f("jenkins", Ty::Table(JENKINS)),
    f("keys", Ty::StrMap),
    f("poll", Ty::Table(POLL)),
    f("notify", Ty::Tables(NOTIFY)),
];

/// What a value is, for "found ..." in messages (strings quoted: `"yes"` is not `true`).
fn found(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("the string {s:?}"),
        toml::Value::Integer(i) => format!("the integer {i}"),
        toml::Value::Float(x) => format!("the float {x}"),
        toml::Value::Boolean(b) => format!("the boolean {b}"),
        toml::Value::Datetime(d) => format!("the datetime {d}"),
        toml::Value::Array(_) => "a list".into(),
        toml::Value::Table(_) => "a table".into(),
    }
}

fn allowed(ty: &Ty) -> String {
    match ty {
        Ty::Bool => "true or false (without quotes)".into(),
        Ty::Str => "a quoted string".into(),
        Ty::Int(lo, hi) => format!("an integer from {lo} to {hi} (without quotes)"),
        Ty::StrList => "a list of quoted strings, e.g. [\"dev\", \"prod\"]".into(),
        Ty::StrMap => "a table of quoted strings".into(),
        Ty::OneOf(opts) => opts
            .iter()
            .map(|o| format!("\"{o}\""))
            .collect::<Vec<_>>()
            .join(", "),
        Ty::Glob => "a glob: * any run, ? one character, [abc], {a,b}".into(),
        Ty::OwnerRepo => "\"owner/repo\"".into(),
        Ty::Duration => "a quoted duration such as \"4h\", \"90m\", \"1h30m\" (at most 30d)".into(),
        Ty::Table(fields) | Ty::Tables(fields) | Ty::MapOf(fields) => format!(
            "{} with the keys {}",
            match ty {
                Ty::Tables(_) => "a list of tables ([[...]])",
                Ty::MapOf(_) => "a table of named tables",
                _ => "a table",
            },
            fields.iter().map(|f| f.name).collect::<Vec<_>>().join(", ")
        ),
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The 1-based line of a byte offset.
fn line_at(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The line of every key path in the file (`instances[1].read_only`, `environments.policy.prod`),
/// from the parser's spans: messages point at the key, not the table header.
fn key_lines(text: &str) -> BTreeMap<String, usize> {
    use toml::de::{DeTable, DeValue};
    fn walk(text: &str, t: &DeTable<'_>, path: &str, out: &mut BTreeMap<String, usize>) {
        for (k, v) in t {
            let p = join(path, k.get_ref());
            out.entry(p.clone())
                .or_insert_with(|| line_at(text, k.span().start));
            walk_value(text, v.get_ref(), &p, out);
        }
    }
    fn walk_value(text: &str, v: &DeValue<'_>, path: &str, out: &mut BTreeMap<String, usize>) {
        match v {
            DeValue::Table(t) => walk(text, t, path, out),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let p = format!("{path}[{i}]");
                    out.entry(p.clone())
                        .or_insert_with(|| line_at(text, item.span().start));
                    walk_value(text, item.get_ref(), &p, out);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    if let Ok(doc) = DeTable::parse(text) {
        walk(text, doc.get_ref(), "", &mut out);
    }
    out
}

struct Reader<'a> {
    file: &'a Path,
    lines: BTreeMap<String, usize>,
    warnings: Vec<ConfigWarning>,
}

impl Reader<'_> {
    /// The key's own line, else its closest enclosing table's.
    fn line_of(&self, key: &str) -> Option<usize> {
        let mut k = key;
        loop {
            if let Some(l) = self.lines.get(k) {
                return Some(*l);
            }
            let cut = k.rfind(['.', '['])?;
            k = &k[..cut];
        }
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

    fn error(
        &self,
        key: &str,
        reason: impl Into<String>,
        allowed: impl Into<String>,
    ) -> ConfigError {
        ConfigError {
            file: self.file.to_path_buf(),
            line: self.line_of(key),
            key: key.to_string(),
            reason: reason.into(),
            allowed: allowed.into(),
        }
    }

    /// Check a table against its fields: unknown keys are warned about and dropped, a
    /// value of the wrong type or out of range is an error, a missing required key too.
    fn check_table(
        &mut self,
        table: &mut toml::Table,
        fields: &[Field],
        path: &str,
    ) -> Result<(), ConfigError> {
        let keys: Vec<String> = table.keys().cloned().collect();
        for k in keys {
            let key = join(path, &k);
            match fields.iter().find(|f| f.name == k) {
                None => {
                    let known = fields.iter().map(|f| f.name).collect::<Vec<_>>().join(", ");
                    self.warn(&key, format!("unknown key, ignored (known here: {known})"));
                    table.remove(&k);
                }
                Some(field) => {
                    if let Some(v) = table.get_mut(&k) {
                        self.check_value(v, &field.ty, &key)?;
                    }
                }
            }
        }
        for field in fields.iter().filter(|f| f.required) {
            if !table.contains_key(field.name) {
                let key = join(path, field.name);
                return Err(self.error(
                    &key,
                    format!("missing `{}`", field.name),
                    allowed(&field.ty),
                ));
            }
        }
        Ok(())
    }

    fn check_value(&mut self, v: &mut toml::Value, ty: &Ty, key: &str) -> Result<(), ConfigError> {
        let bad = |r: &Self, v: &toml::Value| {
            Err(r.error(key, format!("wrong type: {}", found(v)), allowed(ty)))
        };
        match ty {
            Ty::Bool if !v.is_bool() => bad(self, v),
            Ty::Str | Ty::Glob | Ty::OwnerRepo | Ty::Duration | Ty::OneOf(_) if !v.is_str() => {
                bad(self, v)
            }
            Ty::Duration => {
                let s = v.as_str().unwrap_or_default();
                crate::ops::foureyes::parse_ttl(s)
                    .map(|_| ())
                    .map_err(|e| self.error(key, e, allowed(ty)))
            }
            Ty::Int(..) if !v.is_integer() => bad(self, v),
            Ty::Int(lo, hi) => {
                let n = v.as_integer().unwrap_or_default();
                if n < *lo || n > *hi {
                    return Err(self.error(key, format!("{n} is out of range"), allowed(ty)));
                }
                Ok(())
            }
            Ty::OneOf(opts) => {
                let s = v.as_str().unwrap_or_default();
                if opts.contains(&s) {
                    Ok(())
                } else {
                    Err(self.error(key, format!("{s:?} is not one of them"), allowed(ty)))
                }
            }
            Ty::Glob => {
                let s = v.as_str().unwrap_or_default();
                crate::ops::classify::compile_glob(s)
                    .map(|_| ())
                    .map_err(|e| self.error(key, format!("{s:?} is not a glob: {e}"), allowed(ty)))
            }
            Ty::OwnerRepo => {
                let s = v.as_str().unwrap_or_default();
                match s.split_once('/') {
                    Some((o, r)) if !o.is_empty() && !r.is_empty() && !r.contains('/') => Ok(()),
                    _ => Err(self.error(key, format!("{s:?} is not owner/repo"), allowed(ty))),
                }
            }
            Ty::StrList => match v.as_array() {
                Some(items) => {
                    for (i, item) in items.iter().enumerate() {
                        if !item.is_str() {
                            return Err(self.error(
                                &format!("{key}[{i}]"),
                                format!("wrong type: {}", found(item)),
                                allowed(ty),
                            ));
                        }
                    }
                    Ok(())
                }
                None => bad(self, v),
            },
            Ty::StrMap => match v.as_table() {
                Some(t) => {
                    for (k, item) in t {
                        if !item.is_str() {
                            return Err(self.error(
                                &join(key, k),
                                format!("wrong type: {}", found(item)),
                                allowed(&Ty::Str),
                            ));
                        }
                    }
                    Ok(())
                }
                None => bad(self, v),
            },
            Ty::Table(fields) => match v {
                toml::Value::Table(t) => self.check_table(t, fields, key),
                other => bad(self, other),
            },
            Ty::MapOf(fields) => match v {
                toml::Value::Table(t) => {
                    for (name, item) in t.iter_mut() {
                        let k = join(key, name);
                        match item {
                            toml::Value::Table(inner) => self.check_table(inner, fields, &k)?,
                            other => {
                                return Err(self.error(
                                    &k,
                                    format!("wrong type: {}", found(other)),
                                    allowed(&Ty::Table(fields)),
                                ));
                            }
                        }
                    }
                    Ok(())
                }
                other => bad(self, other),
            },
            Ty::Tables(fields) => match v {
                toml::Value::Array(items) => {
                    for (i, item) in items.iter_mut().enumerate() {
                        let k = format!("{key}[{i}]");
                        match item {
                            toml::Value::Table(inner) => self.check_table(inner, fields, &k)?,
                            other => {
                                return Err(self.error(
                                    &k,
                                    format!("wrong type: {}", found(other)),
                                    allowed(ty),
                                ));
                            }
                        }
                    }
                    Ok(())
                }
                other => bad(self, other),
            },
            _ => Ok(()),
        }
    }

    /// Deserialize a checked value; a failure here is still the file's fault.
    fn value<T: DeserializeOwned>(&self, v: &toml::Value, key: &str) -> Result<T, ConfigError> {
        v.clone().try_into::<T>().map_err(|e| {
            self.error(
                key,
                e.message().to_string(),
                "see assets/config.example.toml",
            )
        })
    }

    fn list<T: DeserializeOwned>(
        &self,
        v: Option<&toml::Value>,
        key: &str,
    ) -> Result<Vec<T>, ConfigError> {
        match v {
            None => Ok(Vec::new()),
            Some(toml::Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| self.value(item, &format!("{key}[{i}]")))
                .collect(),
            Some(other) => Err(self.error(
                key,
                format!("wrong type: {}", found(other)),
                "a list of tables ([[...]])",
            )),
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
        Config::parse("", Path::new("<defaults>"))
            .map(|(c, _)| c)
            .unwrap_or_else(|_| Config {
                theme: "default".into(),
                ..Default::default()
            })
    }

    /// Load from `path` (or the default location). A missing default file means the
    /// defaults; a missing explicit `--config`, an unreadable file, a syntax error or a bad
    /// value is a [`ConfigError`]: shipdeck stops before it connects (exit 2). Unknown keys
    /// come back as warnings.
    pub fn load(path: Option<&Path>) -> Result<(Config, Vec<ConfigWarning>), ConfigError> {
        let (p, explicit) = match path {
            Some(p) => (p.to_path_buf(), true),
            None => match default_path() {
                Some(p) => (p, false),
                None => return Ok((Config::defaults(), Vec::new())),
            },
        };
        match std::fs::read_to_string(&p) {
            Ok(text) => {
                let (mut c, w) = Config::parse(&text, &p)?;
                c.path = Some(p);
                Ok((c, w))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                Ok((Config::defaults(), Vec::new()))
            }
            Err(e) => Err(ConfigError {
                file: p,
                line: None,
                key: "--config".into(),
                reason: if e.kind() == std::io::ErrorKind::NotFound {
                    "no such file".into()
                } else {
                    format!("cannot read it: {e}")
                },
                allowed: "a readable TOML file (or no --config: the default location, or none)"
                    .into(),
            }),
        }
    }

    /// Parse `text` as overrides on the defaults.
    pub fn parse(text: &str, file: &Path) -> Result<(Config, Vec<ConfigWarning>), ConfigError> {
        let mut r = Reader {
            file,
            lines: BTreeMap::new(),
            warnings: Vec::new(),
        };
        let mut user = match toml::from_str::<toml::Table>(text) {
            Ok(t) => t,
            Err(e) => {
                return Err(ConfigError {
                    file: file.to_path_buf(),
                    line: e.span().map(|s| line_at(text, s.start)),
                    key: "(syntax)".into(),
                    reason: e.message().trim().to_string(),
                    allowed: "TOML: key = value lines and [table] headers".into(),
                });
            }
        };
        r.lines = key_lines(text);
        r.check_table(&mut user, TOP, "")?;
        let mut table: toml::Table = toml::from_str(DEFAULTS).unwrap_or_default();
        merge(&mut table, user);
        let mut c = Config {
            theme: "default".into(),
            ..Default::default()
        };
        if let Some(v) = table.get("theme") {
            c.theme = r.value(v, "theme")?;
        }
        if let Some(v) = table.get("read_only") {
            c.read_only = r.value(v, "read_only")?;
        }
        if let Some(v) = table.get("operator") {
            c.operator = Some(r.value::<String>(v, "operator")?).filter(|s| !s.trim().is_empty());
        }
        c.instances = r.list(table.get("instances"), "instances")?;
        c.contexts = r.list(table.get("contexts"), "contexts")?;
        if let Some(v) = table.get("clusters") {
            c.clusters = r.value(v, "clusters")?;
        }
        if let Some(toml::Value::Table(env)) = table.get("environments") {
            if let Some(v) = env.get("order") {
                c.environments.order = r.value(v, "environments.order")?;
            }
            c.environments.rules = r.list(env.get("rules"), "environments.rules")?;
            for (i, rule) in c.environments.rules.iter().enumerate() {
                let key = format!("environments.rules[{i}]");
                if rule.kind == EnvMatch::Label && rule.key.is_none() {
                    return Err(r.error(&key, "a label rule needs `key`", "key = \"LABEL\""));
                }
                if rule.kind != EnvMatch::Label
                    && (rule.glob.is_none() || rule.environment.is_none())
                {
                    return Err(r.error(
                        &key,
                        "a glob rule needs `glob` and `environment`",
                        "glob = \"*-prd\" and environment = \"prod\"",
                    ));
                }
            }
            if let Some(toml::Value::Table(policies)) = env.get("policy") {
                for (name, v) in policies {
                    let key = format!("environments.policy.{name}");
                    let mut v = v.clone();
                    // An approval left out is the environment's default, never `none`.
                    if let toml::Value::Table(t) = &mut v
                        && !t.contains_key("approval")
                    {
                        let d = crate::ops::policy::EnvPolicy::default_for(name);
                        t.insert("approval".into(), d.label().into());
                    }
                    let p = r.value::<EnvPolicy>(&v, &key)?;
                    c.environments.policy.insert(name.clone(), p);
                }
            }
        }
        c.pipelines = r.list(table.get("pipelines"), "pipelines")?;
        for (i, p) in c.pipelines.iter().enumerate() {
            if p.github.is_none() && p.jenkins.is_none() {
                return Err(r.error(
                    &format!("pipelines[{i}]"),
                    format!("pipeline for {:?} names neither github nor jenkins", p.apps),
                    "github = \"owner/repo\" or jenkins = \"JOB\"",
                ));
            }
        }
        if let Some(v) = table.get("github") {
            c.github = r.value(v, "github")?;
        }
        if let Some(v) = table.get("jenkins") {
            c.jenkins = r.value(v, "jenkins")?;
        }
        if let Some(v) = table.get("keys") {
            c.keys = r.value(v, "keys")?;
        }
        if let Some(v) = table.get("poll") {
            c.poll = r.value(v, "poll")?;
        }
        c.notify = r.list(table.get("notify"), "notify")?;
        for (i, n) in c.notify.iter().enumerate() {
            check_notify(&r, n, &format!("notify[{i}]"))?;
        }
        Ok((c, r.warnings))
    }
    /// The operator's name for `initiatedBy` and the audit log: config, else the login
    /// name, else None (the composition room then asks Argo CD whose token it holds).
    pub fn operator_name(&self) -> Option<String> {
        self.operator
            .clone()
            .or_else(login_name)
            .filter(|s| !s.trim().is_empty())
    }
}

/// A `[[notify]]` entry shipdeck will send to: one of `url` / `url_env`, an http(s) URL,
/// events it knows, at least one.
fn check_notify(r: &Reader<'_>, n: &NotifyConfig, key: &str) -> Result<(), ConfigError> {
    match (&n.url, &n.url_env) {
        (Some(_), Some(_)) | (None, None) => {
            return Err(r.error(
                key,
                "a webhook needs exactly one of `url` and `url_env`",
                "url = \"https://...\" or url_env = \"ENV_VAR_WITH_THE_URL\"",
            ));
        }
        (Some(url), None) => {
            if let Err(e) = crate::ops::notify::check_url(url) {
                return Err(r.error(&join(key, "url"), e, "an http:// or https:// URL"));
            }
        }
        (None, Some(var)) => {
            if var.trim().is_empty() || var.contains('=') {
                return Err(r.error(
                    &join(key, "url_env"),
                    format!("{var:?} is not an environment variable name"),
                    "the name of an environment variable, e.g. \"SHIPDECK_SLACK_WEBHOOK\"",
                ));
            }
        }
    }
    if n.events.is_empty() {
        return Err(r.error(
            &join(key, "events"),
            "no events: this webhook would never hear anything",
            crate::ops::notify::EVENTS.join(", "),
        ));
    }
    for (j, e) in n.events.iter().enumerate() {
        if crate::ops::notify::Event::parse(e).is_none() {
            return Err(r.error(
                &format!("{key}.events[{j}]"),
                format!("{e:?} is not an event"),
                crate::ops::notify::EVENTS.join(", "),
            ));
        }
    }
    Ok(())
}

/// The login name from the environment (`USER`, `LOGNAME`, `USERNAME`).
pub fn login_name() -> Option<String> {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.trim().is_empty())
}

/// Whether an app name matches a pipeline's `apps` glob (the product's one glob dialect,
/// [`crate::ops::classify::glob`]).
pub fn glob_match(pattern: &str, s: &str) -> bool {
    crate::ops::classify::glob(pattern, s)
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

    fn parse(text: &str) -> Result<(Config, Vec<ConfigWarning>), ConfigError> {
        Config::parse(text, Path::new("/home/ann/.config/shipdeck/config.toml"))
    }

    fn error(text: &str) -> ConfigError {
        match parse(text) {
            Err(e) => e,
            Ok((c, w)) => panic!("accepted: {c:?} {w:?}"),
        }
    }

    #[test]
    fn defaults_parse_without_warnings() {
        let (c, w) = parse("").unwrap();
        assert!(w.is_empty(), "{w:?}");
        assert_eq!(c.theme, "default");
        assert_eq!(c.environments.order, vec!["dev", "staging", "prod"]);
        assert_eq!(
            c.environments.policy_for("prod").approval,
            ApprovalPolicy::Required
        );
        // Unknown environments are never `none`.
        assert_eq!(
            c.environments.policy_for("build").approval,
            ApprovalPolicy::Confirm
        );
        assert_eq!(
            c.environments.policy_for("live").approval,
            ApprovalPolicy::Required
        );
        assert_eq!(c.poll.workloads_api_seconds, 2);
    }

    #[test]
    fn overrides_apply_and_unknown_keys_warn_at_their_line() {
        let text = r#"
theme = "light"
bogus = 1

[[instances]]
server = "argocd.example.com"
insecure = true
colour = "red"

[environments.policy.prod]
approvers = 2

[[pipelines]]
apps = "shop-*"
github = "acme/shop"
workflow = "build.yml"
"#;
        let (c, w) = parse(text).unwrap();
        assert_eq!(c.theme, "light");
        assert_eq!(c.instances.len(), 1);
        assert!(c.instances[0].insecure);
        // Leaving `approval` out keeps the environment's default, not `none`.
        assert_eq!(c.environments.policy_for("prod").approvers, 2);
        assert_eq!(
            c.environments.policy_for("prod").approval,
            ApprovalPolicy::Required
        );
        let got: Vec<(String, Option<usize>)> = w.iter().map(|w| (w.key.clone(), w.line)).collect();
        assert_eq!(
            got,
            vec![
                ("bogus".into(), Some(3)),
                ("instances[0].colour".into(), Some(8))
            ]
        );
        assert!(
            w[1].to_string().starts_with(
                "/home/ann/.config/shipdeck/config.toml:8: instances[0].colour: unknown key"
            ),
            "{}",
            w[1]
        );
    }

    #[test]
    fn wrong_types_and_ranges_stop_with_file_line_key_and_what_is_allowed() {
        for (text, key, line, allowed) in [
            ("read_only = \"yes\"\n", "read_only", 1, "true or false"),
            (
                "theme = \"x\"\nread_only = \"true\"\n",
                "read_only",
                2,
                "true or false",
            ),
            (
                "[[instances]]\nserver = \"a\"\n\n[[instances]]\nserver = \"b\"\nread_only = 1\n",
                "instances[1].read_only",
                6,
                "true or false",
            ),
            (
                "[environments.policy.staging]\napprovers = 1\napproval = \"sometimes\"\n",
                "environments.policy.staging.approval",
                3,
                "\"none\", \"confirm\", \"required\"",
            ),
            (
                "[poll]\njenkins_seconds = 0\n",
                "poll.jenkins_seconds",
                2,
                "from 1 to 3600",
            ),
            (
                "[[instances]]\nname = \"x\"\n",
                "instances[0].server",
                1,
                "quoted string",
            ),
            (
                "[[pipelines]]\napps = \"[shop\"\njenkins = \"j\"\n",
                "pipelines[0].apps",
                2,
                "glob",
            ),
            (
                "[[pipelines]]\napps = \"shop-*\"\ngithub = \"acme\"\n",
                "pipelines[0].github",
                3,
                "owner/repo",
            ),
        ] {
            let e = error(text);
            assert_eq!((e.key.as_str(), e.line), (key, Some(line)), "{text}: {e}");
            assert!(e.allowed.contains(allowed), "{text}: {e}");
            let shown = e.to_string();
            assert!(
                shown.starts_with(&format!(
                    "config /home/ann/.config/shipdeck/config.toml:{line}: {key}: "
                )),
                "{shown}"
            );
        }
        let e = error("read_only = \"yes\"\n");
        assert_eq!(
            e.to_string(),
            "config /home/ann/.config/shipdeck/config.toml:1: read_only: wrong type: the string \"yes\"; allowed: true or false (without quotes)"
        );
    }

    #[test]
    fn a_syntax_error_anywhere_stops_with_its_line() {
        let e = error("theme = \"light\"\nread_only = true\n[[instances]\n");
        assert_eq!((e.key.as_str(), e.line), ("(syntax)", Some(3)));
        let e = error("read_only = true\n\n\nx = = 2\n");
        assert_eq!(e.line, Some(4));
    }

    #[test]
    fn a_missing_explicit_file_is_an_error_and_a_missing_default_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.toml");
        let e = Config::load(Some(&missing)).unwrap_err();
        assert_eq!(e.key, "--config");
        assert!(e.to_string().contains("no such file"), "{e}");
        let ok = dir.path().join("c.toml");
        std::fs::write(&ok, "read_only = true\n").unwrap();
        let (c, w) = Config::load(Some(&ok)).unwrap();
        assert!(c.read_only && w.is_empty());
        assert_eq!(c.path.as_deref(), Some(ok.as_path()));
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
