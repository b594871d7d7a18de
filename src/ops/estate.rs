//! The Estate store: every application from every source, merged and indexed by id and by
//! (service, environment), with the connection state of each source. It is owned by one
//! task (the TUI loop or a headless command) and changed only by applying [`Update`]s, each
//! in O(1) (amortised); views read it by reference.

use super::classify::{Classified, Classifier};
use super::policy::Policies;
use crate::model::{AppId, Application, Environment, Revision, SyncStatus};
pub use crate::model::{Connection, Update};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// Why an application is OutOfSync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutOfSyncCause {
    /// Git moved past what was deployed: a change waits to be synced.
    PendingChange,
    /// Git did not move, the live objects did (a `kubectl edit`, a controller).
    Drift,
    /// Out of sync for a reason shipdeck cannot tell (never deployed, no history).
    Unknown,
}

impl OutOfSyncCause {
    pub fn as_str(self) -> &'static str {
        match self {
            OutOfSyncCause::PendingChange => "pending-change",
            OutOfSyncCause::Drift => "drift",
            OutOfSyncCause::Unknown => "unknown",
        }
    }
}

/// The revision last deployed: the newest history entry, else the last sync result.
pub fn deployed_revision(app: &Application) -> Option<Revision> {
    app.status
        .history
        .last()
        .and_then(|h| h.revision.clone().or_else(|| h.revisions.first().cloned()))
        .or_else(|| {
            app.status
                .operation_state
                .as_ref()
                .filter(|o| o.phase == crate::model::OperationPhase::Succeeded)
                .and_then(|o| o.sync_result.as_ref())
                .and_then(|r| r.revision.clone())
        })
        .map(Revision)
}

/// The revision Argo CD last compared against (the resolved target).
pub fn compared_revision(app: &Application) -> Option<Revision> {
    app.status
        .sync
        .revision
        .clone()
        .or_else(|| app.status.sync.revisions.first().cloned())
        .map(Revision)
}

/// Tell a pending change from drift. None when the app is not OutOfSync.
pub fn out_of_sync_cause(app: &Application) -> Option<OutOfSyncCause> {
    if app.status.sync.status != SyncStatus::OutOfSync {
        return None;
    }
    Some(match (deployed_revision(app), compared_revision(app)) {
        (Some(deployed), Some(target)) if deployed == target => OutOfSyncCause::Drift,
        (Some(_), Some(_)) => OutOfSyncCause::PendingChange,
        _ => OutOfSyncCause::Unknown,
    })
}

/// One application as the console sees it.
#[derive(Debug, Clone)]
pub struct AppEntry {
    pub id: AppId,
    pub app: Application,
    pub environment: Environment,
    pub service: String,
    pub cause: Option<OutOfSyncCause>,
}

impl AppEntry {
    pub fn new(id: AppId, app: Application) -> Self {
        Self::classified(id, app, &Classifier::default())
    }

    /// An entry classified by config rules in front of the defaults.
    pub fn classified(id: AppId, app: Application, classifier: &Classifier) -> Self {
        let Classified {
            environment,
            service,
        } = classifier.classify(&app);
        let cause = out_of_sync_cause(&app);
        Self {
            id,
            app,
            environment,
            service,
            cause,
        }
    }
}

#[derive(Debug, Default)]
pub struct Estate {
    apps: HashMap<AppId, AppEntry>,
    by_cell: HashMap<(String, String), Vec<AppId>>,
    environments: BTreeMap<Environment, usize>,
    services: BTreeMap<String, usize>,
    pub connections: BTreeMap<String, Connection>,
    classifier: Classifier,
    /// Bumped on every change; views compare it to decide whether to redraw.
    pub generation: u64,
}

impl Estate {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that classifies with config rules (see [`Classifier`]).
    pub fn with_classifier(classifier: Classifier) -> Self {
        Self {
            classifier,
            ..Self::default()
        }
    }

    pub fn classifier(&self) -> &Classifier {
        &self.classifier
    }

    pub fn apply(&mut self, update: Update) {
        self.generation += 1;
        match update {
            Update::Upsert(id, app) => self.upsert(id, *app),
            Update::Delete(id) => self.remove(&id),
            Update::Resync { instance, apps } => {
                let keep: BTreeSet<AppId> = apps.iter().map(|(id, _)| id.clone()).collect();
                let gone: Vec<AppId> = self
                    .apps
                    .keys()
                    .filter(|id| id.instance == instance && !keep.contains(*id))
                    .cloned()
                    .collect();
                for id in gone {
                    self.remove(&id);
                }
                for (id, app) in apps {
                    self.upsert(id, app);
                }
            }
            Update::Connection { source, state } => {
                self.connections.insert(source, state);
            }
        }
    }

    fn upsert(&mut self, id: AppId, app: Application) {
        let entry = AppEntry::classified(id.clone(), app, &self.classifier);
        if let Some(old) = self.apps.get(&id)
            && (old.environment != entry.environment || old.service != entry.service)
        {
            self.remove(&id);
        }
        if !self.apps.contains_key(&id) {
            let cell = (entry.service.clone(), entry.environment.name.clone());
            self.by_cell.entry(cell).or_default().push(id.clone());
            *self
                .environments
                .entry(entry.environment.clone())
                .or_default() += 1;
            *self.services.entry(entry.service.clone()).or_default() += 1;
        }
        self.apps.insert(id, entry);
    }

    fn remove(&mut self, id: &AppId) {
        let Some(old) = self.apps.remove(id) else {
            return;
        };
        let cell = (old.service.clone(), old.environment.name.clone());
        if let Some(ids) = self.by_cell.get_mut(&cell) {
            ids.retain(|x| x != id);
            if ids.is_empty() {
                self.by_cell.remove(&cell);
            }
        }
        decrement(&mut self.environments, &old.environment);
        decrement(&mut self.services, &old.service);
    }

    pub fn get(&self, id: &AppId) -> Option<&AppEntry> {
        self.apps.get(id)
    }

    /// Find an app by name alone (the CLI's `APP` argument); None when absent or ambiguous.
    pub fn find_by_name(&self, name: &str) -> Vec<&AppEntry> {
        self.apps.values().filter(|e| e.id.name == name).collect()
    }

    pub fn len(&self) -> usize {
        self.apps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }

    pub fn apps(&self) -> impl Iterator<Item = &AppEntry> {
        self.apps.values()
    }

    /// Apps of one board cell.
    pub fn cell(&self, service: &str, environment: &str) -> impl Iterator<Item = &AppEntry> {
        self.by_cell
            .get(&(service.to_string(), environment.to_string()))
            .into_iter()
            .flatten()
            .filter_map(|id| self.apps.get(id))
    }

    /// Environments present, in promotion order.
    pub fn environments(&self) -> impl Iterator<Item = &Environment> {
        self.environments.keys()
    }

    /// Services present, sorted by name.
    pub fn services(&self) -> impl Iterator<Item = &str> {
        self.services.keys().map(String::as_str)
    }

    /// The environment before `env` in promotion order, among those present.
    pub fn previous_environment(&self, env: &Environment) -> Option<&Environment> {
        self.environments
            .range(..env.clone())
            .next_back()
            .map(|(e, _)| e)
    }
}

/// What a board cell lags behind: the same service in the environment before it runs
/// something else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lag {
    pub previous_environment: String,
    /// Images (or the deployed revision when images are unknown) here and there.
    pub here: Vec<String>,
    pub there: Vec<String>,
}

/// What an app runs, for comparing environments: its images when Argo CD reports them
/// (revisions differ between branches even for the same build), else the deployed revision.
fn running(entry: &AppEntry) -> Vec<String> {
    let mut images: Vec<String> = entry
        .app
        .status
        .summary
        .as_ref()
        .map(|s| s.images.clone())
        .unwrap_or_default();
    if images.is_empty() {
        return deployed_revision(&entry.app)
            .map(|r| vec![r.0])
            .unwrap_or_default();
    }
    images.sort();
    images
}

impl Estate {
    /// Whether this cell runs something other than the same service in the environment
    /// before it (None when there is no such environment, or nothing to compare).
    pub fn lag(&self, entry: &AppEntry) -> Option<Lag> {
        let prev = self.previous_environment(&entry.environment)?;
        let there_entry = self.cell(&entry.service, &prev.name).next()?;
        let (here, there) = (running(entry), running(there_entry));
        if here.is_empty() || there.is_empty() || here == there {
            return None;
        }
        Some(Lag {
            previous_environment: prev.name.clone(),
            here,
            there,
        })
    }

    /// Whether the app waits for an operator: its environment is gated and Git holds a
    /// change that is not deployed.
    pub fn waits_for_approval(&self, entry: &AppEntry, policies: &Policies) -> bool {
        entry.cause == Some(OutOfSyncCause::PendingChange)
            && policies.for_env(&entry.environment).gated()
    }
}

fn decrement<K: Ord>(map: &mut BTreeMap<K, usize>, key: &K) {
    if let Some(n) = map.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            map.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::HistoryEntry;

    fn app(name: &str, sync: SyncStatus, deployed: &str, target: &str) -> Application {
        let mut a = Application::default();
        a.metadata.name = name.into();
        a.status.sync.status = sync;
        a.status.sync.revision = Some(target.into());
        a.status.history.push(HistoryEntry {
            id: 1,
            revision: Some(deployed.into()),
            ..Default::default()
        });
        a
    }

    #[test]
    fn cause_tells_pending_from_drift() {
        assert_eq!(
            out_of_sync_cause(&app("a", SyncStatus::OutOfSync, "aaa", "bbb")),
            Some(OutOfSyncCause::PendingChange)
        );
        assert_eq!(
            out_of_sync_cause(&app("a", SyncStatus::OutOfSync, "aaa", "aaa")),
            Some(OutOfSyncCause::Drift)
        );
        assert_eq!(
            out_of_sync_cause(&app("a", SyncStatus::Synced, "a", "a")),
            None
        );
    }

    #[test]
    fn indexes_follow_updates() {
        let mut e = Estate::new();
        let id = AppId::new("i", "argocd", "shop-prod");
        e.apply(Update::Upsert(
            id.clone(),
            Box::new(app("shop-prod", SyncStatus::Synced, "a", "a")),
        ));
        e.apply(Update::Upsert(
            AppId::new("i", "argocd", "shop-dev"),
            Box::new(app("shop-dev", SyncStatus::Synced, "a", "a")),
        ));
        assert_eq!(e.cell("shop", "prod").count(), 1);
        let envs: Vec<_> = e.environments().map(|x| x.name.clone()).collect();
        assert_eq!(envs, ["dev", "prod"]);
        let prod = Environment::new("prod", 2);
        assert_eq!(
            e.previous_environment(&prod).map(|x| x.name.as_str()),
            Some("dev")
        );
        e.apply(Update::Resync {
            instance: "i".into(),
            apps: vec![],
        });
        assert!(e.is_empty());
        assert_eq!(e.environments().count(), 0);
    }

    fn with_images(mut a: Application, images: &[&str]) -> Application {
        a.status.summary = Some(crate::model::Summary {
            images: images.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        });
        a
    }

    #[test]
    fn lag_and_waiting_for_approval() {
        let mut e = Estate::new();
        let dev = AppId::new("i", "argocd", "event-ingestion-dev");
        let prod = AppId::new("i", "argocd", "event-ingestion-prod");
        e.apply(Update::Upsert(
            dev.clone(),
            Box::new(with_images(
                app("event-ingestion-dev", SyncStatus::Synced, "d2", "d2"),
                &["event-consumer:v20240612-143022"],
            )),
        ));
        e.apply(Update::Upsert(
            prod.clone(),
            Box::new(with_images(
                app("event-ingestion-prod", SyncStatus::OutOfSync, "p1", "p2"),
                &["event-consumer:v20240611-090000"],
            )),
        ));
        let policies = Policies::default();
        let p = e.get(&prod).cloned();
        let d = e.get(&dev).cloned();
        let (Some(p), Some(d)) = (p, d) else {
            panic!("entries missing");
        };
        let lag = e.lag(&p);
        assert_eq!(
            lag.as_ref().map(|l| l.previous_environment.as_str()),
            Some("dev")
        );
        assert_eq!(
            lag.map(|l| l.there),
            Some(vec!["event-consumer:v20240612-143022".to_string()])
        );
        assert!(e.lag(&d).is_none());
        assert!(e.waits_for_approval(&p, &policies));
        assert!(!e.waits_for_approval(&d, &policies));
    }

    #[test]
    fn config_rules_classify_in_the_store() {
        use crate::ops::classify::EnvRule;
        let rule = EnvRule {
            namespace: Some("gamemetrics".into()),
            environment: Some("prod".into()),
            ..Default::default()
        };
        let mut e = Estate::with_classifier(Classifier::new(vec![rule], vec![]));
        let mut a = app("gamemetrics", SyncStatus::Synced, "a", "a");
        a.spec.destination.namespace = Some("gamemetrics".into());
        let mut b = app("gamemetrics", SyncStatus::Synced, "a", "a");
        b.spec.destination.namespace = Some("gamemetrics-dev".into());
        e.apply(Update::Upsert(AppId::new("i", "argocd", "gm"), Box::new(a)));
        e.apply(Update::Upsert(AppId::new("j", "argocd", "gm"), Box::new(b)));
        assert_eq!(e.cell("gamemetrics", "prod").count(), 1);
        assert_eq!(e.cell("gamemetrics", "dev").count(), 1);
    }
}
