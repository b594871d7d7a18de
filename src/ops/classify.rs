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
}
