//! The Estate store: every application from every source, merged and indexed by id and by
//! (service, environment), with the connection state of each source. It is owned by one
//! task (the TUI loop or a headless command) and changed only by applying [`Update`]s, each
//! in O(1) (amortised); views read it by reference.

use super::classify::{Classified, classify};
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
        let Classified {
            environment,
            service,
        } = classify(&app);
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
    /// Bumped on every change; views compare it to decide whether to redraw.
    pub generation: u64,
}

impl Estate {
    pub fn new() -> Self {
        Self::default()
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
        let entry = AppEntry::new(id.clone(), app);
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
}
