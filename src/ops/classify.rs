//! Environment classification and service names (DESIGN.md "Environments"). Config rules
//! go first and the first one that matches is taken as it is (the operator said so).
//! Otherwise every default signal is read — label `env`/`environment`/`stage`, the app
//! name, the destination namespace, the destination cluster — and when they disagree the
//! stricter wins (the one whose environment's policy asks more before a change): an app
//! called `ledger4-prod` labelled `stage=build` is prod. Anything that reads as production
//! (`prod`, `prd`, `production`, `live`, also with a prefix or suffix: `prod-eu`, `eu-prod`,
//! `prod2`) is production; the policy layer gates what matches no known word at all.

use super::policy::Policies;
use crate::model::{Application, ApprovalPolicy, Environment};

/// The default vocabulary, in promotion order: (canonical name, rank, spellings).
const VOCABULARY: &[(&str, u32, &[&str])] = &[
    ("dev", 0, &["dev", "develop", "development"]),
    ("staging", 1, &["qa", "test", "stage", "stg", "staging"]),
    ("prod", 2, &["prod", "prd", "production"]),
];

/// Rank given to environments outside the vocabulary: after prod.
pub const OTHER_RANK: u32 = 10;

/// Rank of prod in the vocabulary; production-reading names that are not spelled as the
/// vocabulary's (`prod-eu`, `live`) rank with it.
pub const PROD_RANK: u32 = 2;

/// Words that mean production wherever they stand in a name.
const PRODUCTION_WORDS: &[&str] = &["prod", "prd", "production", "live"];

/// Whether one `-`/`_`/`.`-separated token means production: a production word, possibly
/// followed by digits (`prod2`).
fn production_token(token: &str) -> bool {
    PRODUCTION_WORDS.iter().any(|w| {
        token
            .strip_prefix(w)
            .is_some_and(|rest| rest.bytes().all(|b| b.is_ascii_digit()))
    })
}

/// Whether a name, label value or environment reads as production: `prod`, `prd`,
/// `production`, `live`, alone or with a prefix or suffix (`prod-eu`, `eu-prod`,
/// `ledger-prod-eu`, `prod2`). Case does not matter.
pub fn reads_as_production(word: &str) -> bool {
    word.to_ascii_lowercase()
        .split(['-', '_', '.', '/', ':'])
        .any(production_token)
}

/// Whether the default vocabulary knows this environment (dev, staging or production in any
/// of their spellings). What it does not know is gated (see `policy::EnvPolicy::default_for`).
pub fn known(word: &str) -> bool {
    canonical(word).is_some() || reads_as_production(word)
}

const ENV_LABELS: &[&str] = &["env", "environment", "stage"];

/// The canonical environment for a word, if the vocabulary knows it.
pub fn canonical(word: &str) -> Option<Environment> {
    let w = word.to_ascii_lowercase();
    VOCABULARY
        .iter()
        .find(|(_, _, spellings)| spellings.contains(&w.as_str()))
        .map(|(name, rank, _)| Environment::new(*name, *rank))
}

/// The environment named by a label value: known words map to the vocabulary, production
/// readings (`prod-eu`, `live`) keep their name and rank with prod, others are their own
/// environment ranked after prod.
pub fn from_label(value: &str) -> Environment {
    canonical(value).unwrap_or_else(|| {
        let name = value.to_ascii_lowercase();
        let rank = if reads_as_production(&name) {
            PROD_RANK
        } else {
            OTHER_RANK
        };
        Environment::new(name, rank)
    })
}

/// The environment a name, namespace or cluster name says: its suffix when the vocabulary
/// knows it, else prod when any part of it reads as production.
fn from_name(name: &str) -> Option<Environment> {
    split_suffix(name)
        .map(|(_, e)| e)
        .or_else(|| canonical(name))
        .or_else(|| reads_as_production(name).then(|| Environment::new("prod", PROD_RANK)))
}

/// The name before its first production token (`ledger-prod-eu` -> `ledger`), when there
/// is something before it.
fn production_stem(name: &str) -> Option<String> {
    let mut start = 0;
    for (i, c) in name.char_indices().chain([(name.len(), '-')]) {
        if matches!(c, '-' | '_' | '.') {
            let token = name[start..i].to_ascii_lowercase();
            if production_token(&token) {
                let stem = name[..start].trim_end_matches(['-', '_', '.']);
                return (!stem.is_empty()).then(|| stem.to_string());
            }
            start = i + 1;
        }
    }
    None
}

/// The host of a server URL (`https://prod-eu.k8s.example:6443` -> `prod-eu.k8s.example`).
fn host_of(server: &str) -> &str {
    let rest = server.split_once("://").map_or(server, |(_, r)| r);
    let rest = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    rest.split(':').next().unwrap_or(rest)
}

/// The environment suffix of a name (`event-ingestion-prod` -> prod), with the stem.
pub fn split_suffix(name: &str) -> Option<(&str, Environment)> {
    let (stem, suffix) = name.rsplit_once(['-', '_', '.'])?;
    if stem.is_empty() {
        return None;
    }
    canonical(suffix).map(|env| (stem, env))
}

/// Classification of one application: its environment and service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    pub environment: Environment,
    pub service: String,
}

/// A classification rule from config, tried in order before the defaults; the first rule
/// whose every given condition holds wins. Globs take `*`.
///
/// ```toml
/// [[environments.rules]]
/// namespace = "gamemetrics"     # the prod namespace carries no suffix
/// environment = "prod"
/// [[environments.rules]]
/// label = "tier"                # the environment is the label's value
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EnvRule {
    /// Glob on the Application's name.
    pub app: Option<String>,
    /// Glob on the destination namespace.
    pub namespace: Option<String>,
    /// Glob on the destination cluster name or server URL.
    pub cluster: Option<String>,
    /// `key` (the environment is the label's value) or `key=value` (a condition).
    pub label: Option<String>,
    /// The environment this rule gives; required unless `label` is a bare key.
    pub environment: Option<String>,
    /// The service this rule gives (default: the name without its environment suffix).
    pub service: Option<String>,
}

impl EnvRule {
    /// The environment name this rule gives the app, if every condition holds.
    fn apply(&self, app: &Application) -> Option<String> {
        let dest = &app.spec.destination;
        let holds = |pattern: &Option<String>, value: Option<&str>| match pattern {
            None => true,
            Some(p) => value.is_some_and(|v| glob(p, v)),
        };
        if !holds(&self.app, Some(app.metadata.name.as_str()))
            || !holds(&self.namespace, dest.namespace.as_deref())
        {
            return None;
        }
        if self.cluster.is_some()
            && !holds(&self.cluster, dest.name.as_deref())
            && !holds(&self.cluster, dest.server.as_deref())
        {
            return None;
        }
        let from_label = match self.label.as_deref() {
            None => None,
            Some(l) => match l.split_once('=') {
                Some((k, v)) => {
                    if app.metadata.labels.get(k).map(String::as_str) != Some(v) {
                        return None;
                    }
                    None
                }
                None => Some(app.metadata.labels.get(l)?.clone()),
            },
        };
        self.environment.clone().or(from_label)
    }
}

/// The product's one glob dialect (names, namespaces, clusters, pipelines): `*` any run of
/// characters (`/` included: cluster URLs), `?` one character, `[abc]` a class, `{a,b}`
/// alternatives; case-sensitive, anchored at both ends. Built on `globset`.
pub fn compile_glob(pattern: &str) -> Result<globset::GlobMatcher, String> {
    globset::GlobBuilder::new(pattern)
        .literal_separator(false)
        .backslash_escape(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| e.kind().to_string())
}

/// Whether `text` matches `pattern` (see [`compile_glob`]). A pattern that does not compile
/// matches nothing; config loading refuses such patterns before they get here.
pub fn glob(pattern: &str, text: &str) -> bool {
    compile_glob(pattern).is_ok_and(|m| m.is_match(text))
}

/// Environment classification with config rules in front of the defaults and an optional
/// promotion order from config (`["dev", "qa", "prod"]`) that overrides the vocabulary's.
#[derive(Debug, Clone, Default)]
pub struct Classifier {
    rules: Vec<EnvRule>,
    order: Vec<String>,
    /// Decide which signal is stricter; the compiled-in defaults unless configured.
    policies: Policies,
}

impl Classifier {
    pub fn new(rules: Vec<EnvRule>, order: Vec<String>) -> Self {
        Self {
            rules,
            order,
            policies: Policies::default(),
        }
    }

    /// Judge "stricter" by these policies (config's) rather than the defaults.
    pub fn with_policies(mut self, policies: Policies) -> Self {
        self.policies = policies;
        self
    }

    /// The environment called `name`, ranked by the configured order, else the vocabulary.
    pub fn environment(&self, name: &str) -> Environment {
        let lower = name.to_ascii_lowercase();
        let env = from_label(&lower);
        // `stg` is `staging`: look up the spelling, then its canonical name.
        for candidate in [&lower, &env.name] {
            if let Some(i) = self
                .order
                .iter()
                .position(|o| o.eq_ignore_ascii_case(candidate))
            {
                return Environment::new(candidate.clone(), i as u32);
            }
        }
        if self.order.is_empty() {
            env
        } else {
            // Configured environments come first; the vocabulary keeps its relative order
            // after them.
            Environment::new(env.name, self.order.len() as u32 + env.rank)
        }
    }

    pub fn classify(&self, app: &Application) -> Classified {
        let default = classify_with(app, &self.policies);
        for rule in &self.rules {
            if let Some(env) = rule.apply(app) {
                let environment = self.environment(&env);
                let service = rule.service.clone().unwrap_or_else(|| {
                    service_without_suffix(app, &environment.name)
                        .unwrap_or(default.service.clone())
                });
                return Classified {
                    environment,
                    service,
                };
            }
        }
        if self.order.is_empty() {
            default
        } else {
            Classified {
                environment: self.environment(&default.environment.name),
                service: default.service,
            }
        }
    }
}

/// `link-app-live` with environment `live` is service `link-app`.
fn service_without_suffix(app: &Application, env: &str) -> Option<String> {
    if let Some(p) = app.metadata.labels.get("app.kubernetes.io/part-of") {
        return Some(p.clone());
    }
    let name = app.metadata.name.as_str();
    if let Some((stem, _)) = split_suffix(name) {
        return Some(stem.to_string());
    }
    let (stem, suffix) = name.rsplit_once(['-', '_', '.'])?;
    (!stem.is_empty() && suffix.eq_ignore_ascii_case(env)).then(|| stem.to_string())
}

/// How much an environment's policy asks before a change: none < confirm < required, then
/// more approvers.
fn strictness(policies: &Policies, env: &Environment) -> (u8, u32) {
    let p = policies.for_env(env);
    let level = match p.approval {
        ApprovalPolicy::None => 0,
        ApprovalPolicy::Confirm => 1,
        ApprovalPolicy::Required => 2,
    };
    (level, p.approvers)
}

/// Every environment the default signals name, in the order label, name, namespace,
/// destination cluster (name, then server host).
pub fn signals(app: &Application) -> Vec<Environment> {
    let dest = &app.spec.destination;
    let by_label = ENV_LABELS
        .iter()
        .find_map(|l| app.metadata.labels.get(*l))
        .map(|v| from_label(v));
    let by_name = from_name(&app.metadata.name);
    let by_namespace = dest
        .namespace
        .as_deref()
        .and_then(|ns| split_suffix(ns).map(|(_, e)| e).or_else(|| from_name(ns)));
    let by_cluster = dest.name.as_deref().and_then(from_name);
    let by_server = dest
        .server
        .as_deref()
        .map(host_of)
        .filter(|h| reads_as_production(h))
        .map(|_| Environment::new("prod", PROD_RANK));
    [by_label, by_name, by_namespace, by_cluster, by_server]
        .into_iter()
        .flatten()
        .collect()
}

/// Classify with the default rules and the compiled-in policies.
pub fn classify(app: &Application) -> Classified {
    classify_with(app, &Policies::default())
}

/// Classify with the default rules; among disagreeing signals the strictest under
/// `policies` wins, the earlier signal on a tie.
pub fn classify_with(app: &Application, policies: &Policies) -> Classified {
    let name = app.metadata.name.as_str();
    let service = app
        .metadata
        .labels
        .get("app.kubernetes.io/part-of")
        .cloned()
        .or_else(|| split_suffix(name).map(|(stem, _)| stem.to_string()));

    let mut strictest: Option<((u8, u32), Environment)> = None;
    for env in signals(app) {
        let s = strictness(policies, &env);
        if strictest.as_ref().is_none_or(|(best, _)| s > *best) {
            strictest = Some((s, env));
        }
    }
    // Without any hint the environment is unknown, ranked last, and gated by the policy
    // layer (an unknown environment needs at least a typed confirmation).
    let environment = strictest
        .map(|(_, e)| e)
        .unwrap_or_else(|| Environment::new("other", OTHER_RANK + 1));
    let service = service
        .or_else(|| production_stem(name))
        .unwrap_or_else(|| name.to_string());
    Classified {
        environment,
        service,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(name: &str, ns: &str, labels: &[(&str, &str)]) -> Application {
        let mut a = Application::default();
        a.metadata.name = name.into();
        a.spec.destination.namespace = Some(ns.into());
        for (k, v) in labels {
            a.metadata.labels.insert((*k).into(), (*v).into());
        }
        a
    }

    #[test]
    fn names_our_users_use() {
        let c = classify(&app("event-ingestion-prod", "gamemetrics", &[]));
        assert_eq!(c.environment.name, "prod");
        assert_eq!(c.service, "event-ingestion");
        let c = classify(&app("vmshift-production", "vmshift", &[]));
        assert_eq!(
            (c.environment.name.as_str(), c.service.as_str()),
            ("prod", "vmshift")
        );
        let c = classify(&app("vmshift-staging", "vmshift", &[]));
        assert_eq!(c.environment.name, "staging");
        let c = classify(&app("gamemetrics", "gamemetrics-dev", &[]));
        assert_eq!(c.environment.name, "dev");
        let c = classify(&app("checkout", "shop", &[("env", "prod")]));
        assert_eq!(
            (c.environment.name.as_str(), c.service.as_str()),
            ("prod", "checkout")
        );
        let c = classify(&app("link-app-dev", "link", &[]));
        assert_eq!(c.service, "link-app");
    }

    #[test]
    fn ranks_follow_promotion_order() {
        let dev = canonical("develop").unwrap_or_else(|| Environment::new("x", 99));
        let stg = canonical("stg").unwrap_or_else(|| Environment::new("x", 99));
        let prd = canonical("PRD").unwrap_or_else(|| Environment::new("x", 99));
        assert!(dev < stg && stg < prd);
        assert!(prd < from_label("sandbox"));
    }

    fn rule(f: impl FnOnce(&mut EnvRule)) -> EnvRule {
        let mut r = EnvRule::default();
        f(&mut r);
        r
    }

    #[test]
    fn config_rules_come_first_and_the_first_match_wins() {
        let c = Classifier::new(
            vec![
                rule(|r| {
                    r.namespace = Some("gamemetrics".into());
                    r.environment = Some("prod".into());
                }),
                rule(|r| {
                    r.app = Some("*-live".into());
                    r.environment = Some("live".into());
                }),
                rule(|r| {
                    r.label = Some("tier".into());
                }),
                rule(|r| r.environment = Some("never".into())),
            ],
            vec![],
        );
        // Without the rule, an unsuffixed namespace tells nothing.
        let bare = app("gamemetrics", "gamemetrics", &[]);
        assert_eq!(classify(&bare).environment.name, "other");
        let got = c.classify(&bare);
        assert_eq!(
            (got.environment.name.as_str(), got.service.as_str()),
            ("prod", "gamemetrics")
        );
        // Its dev sibling still matches a later rule (the catch-all), not the first.
        let got = c.classify(&app("link-app-live", "link", &[]));
        assert_eq!(
            (got.environment.name.as_str(), got.service.as_str()),
            ("live", "link-app")
        );
        let got = c.classify(&app("x", "y", &[("tier", "qa")]));
        assert_eq!(got.environment.name, "staging");
        assert_eq!(c.classify(&app("x", "y", &[])).environment.name, "never");
    }

    #[test]
    fn label_conditions_and_cluster_globs() {
        let c = Classifier::new(
            vec![rule(|r| {
                r.label = Some("env=prod".into());
                r.cluster = Some("*production*".into());
                r.environment = Some("prod-eu".into());
            })],
            vec!["dev".into(), "staging".into(), "prod-eu".into()],
        );
        let mut a = app("vmshift-production", "vmshift", &[("env", "prod")]);
        a.spec.destination.server = Some("https://production.example:6443".into());
        let got = c.classify(&a);
        assert_eq!(
            (got.environment.name.as_str(), got.environment.rank),
            ("prod-eu", 2)
        );
        assert_eq!(got.service, "vmshift");
        a.spec.destination.server = Some("https://dev.example".into());
        let got = c.classify(&a);
        assert_eq!(got.environment.name, "prod");
        assert!(got.environment.rank > 2);
        assert_eq!(c.environment("DEV").rank, 0);
        assert_eq!(c.environment("stg").name, "staging");
        assert_eq!(c.environment("stg").rank, 1);
    }

    #[test]
    fn production_reads_as_production_wherever_it_stands() {
        for w in [
            "prod",
            "PRD",
            "production",
            "live",
            "prod-eu",
            "eu-prod",
            "prod2",
            "ledger-prod-eu",
        ] {
            assert!(reads_as_production(w), "{w}");
        }
        for w in [
            "product", "dev", "staging", "liver", "other", "build", "preprod",
        ] {
            assert!(!reads_as_production(w), "{w}");
        }
        assert!(known("stg") && known("prod-eu") && !known("build") && !known("other"));
    }

    #[test]
    fn the_apps_that_synced_without_approval_are_prod() {
        // Named with a region after the environment.
        let c = classify(&app("ledger-prod-eu", "ledger", &[]));
        assert_eq!(
            (c.environment.name.as_str(), c.service.as_str()),
            ("prod", "ledger")
        );
        assert_eq!(
            classify(&app("prod-ledger", "x", &[])).service,
            "prod-ledger"
        );
        // Labels that read as production keep their name, rank with prod, and are gated.
        let c = classify(&app("ledger2", "ledger", &[("env", "prod-eu")]));
        assert_eq!(
            (c.environment.name.as_str(), c.environment.rank),
            ("prod-eu", PROD_RANK)
        );
        let c = classify(&app("ledger3", "ledger", &[("env", "live")]));
        assert_eq!(c.environment.name, "live");
        // A label that disagrees with the name: the stricter (the name's prod) wins.
        let c = classify(&app("ledger4-prod", "ledger", &[("stage", "build")]));
        assert_eq!(c.environment.name, "prod");
        // An unknown label against a dev name: unknown (gated by confirm) is stricter.
        let c = classify(&app("ledger5-dev", "ledger", &[("env", "build")]));
        assert_eq!(c.environment.name, "build");
        // A dev label in a production namespace is production.
        let c = classify(&app("ledger6", "ledger-prod", &[("env", "dev")]));
        assert_eq!(c.environment.name, "prod");
        // The destination cluster's server can say it too.
        let mut a = app("ledger7", "ledger", &[("env", "staging")]);
        a.spec.destination.server = Some("https://user@prod-eu.k8s.example:6443".into());
        assert_eq!(classify(&a).environment.name, "prod");
        // Agreeing signals change nothing.
        let c = classify(&app("cart-dev", "shop-dev", &[("env", "dev")]));
        assert_eq!(c.environment.name, "dev");
    }

    #[test]
    fn configured_policies_decide_what_is_stricter() {
        let mut m = std::collections::BTreeMap::new();
        m.insert(
            "staging".to_string(),
            crate::ops::policy::EnvPolicy {
                approval: ApprovalPolicy::Required,
                approvers: 2,
                prune_without_confirmation: false,
                approval_request_ttl: None,
            },
        );
        let c = Classifier::default().with_policies(Policies::new(m));
        let got = c.classify(&app("cart-prod", "shop", &[("env", "staging")]));
        assert_eq!(got.environment.name, "staging");
        let got = Classifier::default().classify(&app("cart-prod", "shop", &[("env", "staging")]));
        assert_eq!(got.environment.name, "prod");
    }

    #[test]
    fn globs() {
        assert!(glob("*-prod", "event-ingestion-prod"));
        assert!(glob("*production*", "https://production.example:6443"));
        assert!(glob("cart-?ev", "cart-dev"));
        assert!(glob("{cart,shop}-*", "shop-prod"));
        assert!(compile_glob("[unclosed").is_err());
        assert!(!glob("[unclosed", "[unclosed"));
        assert!(glob("*-prod", "event-ingestion-prod"));
        assert!(glob("event-*-prod", "event-ingestion-prod"));
        assert!(!glob("event-*-prod", "event-prod"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxcyyb"));
        assert!(glob("exact", "exact") && !glob("exact", "exactly"));
    }
}
