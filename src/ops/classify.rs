//! Environment classification and service names (DESIGN.md "Environments"): the first rule
//! that matches wins: label `env`/`environment`/`stage`, then the app name suffix, then the
//! destination namespace suffix, then the destination cluster name. Config may add rules in
//! front of these defaults.

use crate::model::{Application, Environment};

/// The default vocabulary, in promotion order: (canonical name, rank, spellings).
const VOCABULARY: &[(&str, u32, &[&str])] = &[
    ("dev", 0, &["dev", "develop", "development"]),
    ("staging", 1, &["qa", "test", "stage", "stg", "staging"]),
    ("prod", 2, &["prod", "prd", "production"]),
];

/// Rank given to environments outside the vocabulary: after prod.
pub const OTHER_RANK: u32 = 10;

const ENV_LABELS: &[&str] = &["env", "environment", "stage"];

/// The canonical environment for a word, if the vocabulary knows it.
pub fn canonical(word: &str) -> Option<Environment> {
    let w = word.to_ascii_lowercase();
    VOCABULARY
        .iter()
        .find(|(_, _, spellings)| spellings.contains(&w.as_str()))
        .map(|(name, rank, _)| Environment::new(*name, *rank))
}

/// The environment named by a label value: known words map to the vocabulary, others are
/// their own environment ranked after prod.
pub fn from_label(value: &str) -> Environment {
    canonical(value).unwrap_or_else(|| Environment::new(value.to_ascii_lowercase(), OTHER_RANK))
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

/// `*` matches any run of characters; everything else matches itself.
pub fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || text.len() < first.len() + last.len() {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    if !text.ends_with(last) {
        return false;
    }
    for mid in &parts[1..parts.len() - 1] {
        match rest.find(mid) {
            Some(i) => rest = &rest[i + mid.len()..],
            None => return false,
        }
    }
    true
}

/// Environment classification with config rules in front of the defaults and an optional
/// promotion order from config (`["dev", "qa", "prod"]`) that overrides the vocabulary's.
#[derive(Debug, Clone, Default)]
pub struct Classifier {
    rules: Vec<EnvRule>,
    order: Vec<String>,
}

impl Classifier {
    pub fn new(rules: Vec<EnvRule>, order: Vec<String>) -> Self {
        Self { rules, order }
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
        let default = classify(app);
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

/// Classify with the default rules. `cluster_name` is the destination cluster's name when
/// known (`spec.destination.name`, or a name from config for its server URL).
pub fn classify(app: &Application) -> Classified {
    let name = app.metadata.name.as_str();
    let service = app
        .metadata
        .labels
        .get("app.kubernetes.io/part-of")
        .cloned()
        .or_else(|| split_suffix(name).map(|(stem, _)| stem.to_string()));

    let by_label = ENV_LABELS
        .iter()
        .find_map(|l| app.metadata.labels.get(*l))
        .map(|v| from_label(v));
    let by_name = split_suffix(name).map(|(_, e)| e);
    let namespace = app.spec.destination.namespace.as_deref().unwrap_or("");
    let by_namespace = split_suffix(namespace).map(|(_, e)| e);
    let by_cluster = app
        .spec
        .destination
        .name
        .as_deref()
        .and_then(|c| canonical(c).or_else(|| split_suffix(c).map(|(_, e)| e)));

    let environment = by_label
        .or(by_name)
        .or(by_namespace)
        .or(by_cluster)
        // A namespace without a suffix next to suffixed siblings (`gamemetrics` beside
        // `gamemetrics-dev`) is by convention prod; without any hint, the environment is
        // unknown and ranked last.
        .unwrap_or_else(|| Environment::new("other", OTHER_RANK + 1));
    let service = service.unwrap_or_else(|| name.to_string());
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
    fn globs() {
        assert!(glob("*-prod", "event-ingestion-prod"));
        assert!(glob("event-*-prod", "event-ingestion-prod"));
        assert!(!glob("event-*-prod", "event-prod"));
        assert!(glob("*", ""));
        assert!(glob("a*b*c", "axxbyyc"));
        assert!(!glob("a*b*c", "axxcyyb"));
        assert!(glob("exact", "exact") && !glob("exact", "exactly"));
    }
}
