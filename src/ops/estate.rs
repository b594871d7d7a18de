//! The Estate store: every application from every source, merged and indexed by id and by
//! (service, environment), with the connection state of each source. It is owned by one
//! task (the TUI loop or a headless command) and changed only by applying [`Update`]s, each
//! in O(1) (amortised); views read it by reference.

use super::classify::{Classified, Classifier};
use super::policy::Policies;
use crate::model::{AppId, Application, Environment, HealthStatus, Packed, Revision, SyncStatus};
pub use crate::model::{Connection, Update};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

/// Why an application is OutOfSync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum OutOfSyncCause {
    /// Git moved past what was deployed: a change waits to be synced.
    PendingChange,
    /// Git did not move, the live objects did (a `kubectl edit`, a controller).
    Drift,
    /// An operator rolled back: the deployed revision is an older one the app had already
    /// moved past (it appears earlier in history, followed by another revision). Git's
    /// head is not deployed on purpose; syncing would undo the rollback.
    RolledBack,
    /// Out of sync for a reason shipdeck cannot tell (never deployed, no history).
    Unknown,
}

impl OutOfSyncCause {
    pub fn as_str(self) -> &'static str {
        match self {
            OutOfSyncCause::PendingChange => "pending-change",
            OutOfSyncCause::Drift => "drift",
            OutOfSyncCause::RolledBack => "rolled-back",
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
        (Some(_), Some(_)) if rolled_back(app) => OutOfSyncCause::RolledBack,
        (Some(_), Some(_)) => OutOfSyncCause::PendingChange,
        _ => OutOfSyncCause::Unknown,
    })
}

fn entry_revision(h: &crate::model::HistoryEntry) -> Option<&str> {
    h.revision
        .as_deref()
        .or_else(|| h.revisions.first().map(String::as_str))
}

/// Whether the newest deployment went back to a revision the app had already moved past:
/// history reads `… A, B, …, A` (Argo CD records a rollback as a new entry with the old
/// entry's revision).
pub fn rolled_back(app: &Application) -> bool {
    let mut history: Vec<&crate::model::HistoryEntry> = app.status.history.iter().collect();
    history.sort_by_key(|h| h.id);
    let Some((last, earlier)) = history.split_last() else {
        return false;
    };
    let Some(now) = entry_revision(last) else {
        return false;
    };
    // The newest earlier entry with the same revision, and something else deployed after it.
    match earlier.iter().rposition(|h| entry_revision(h) == Some(now)) {
        Some(i) => earlier[i + 1..]
            .iter()
            .any(|h| entry_revision(h).is_some_and(|r| r != now)),
        None => false,
    }
}

/// The out-of-sync cause in words, for the application screen and the lists.
pub fn cause_words(cause: OutOfSyncCause, app: &Application) -> String {
    match cause {
        OutOfSyncCause::PendingChange => {
            "Git moved past what is deployed: a change waits to be synced".into()
        }
        OutOfSyncCause::Drift => "drift: live objects changed, Git did not".into(),
        OutOfSyncCause::RolledBack => {
            let rev = deployed_revision(app)
                .map(|r| r.short().to_string())
                .unwrap_or_default();
            let auto = if app.auto_sync() {
                "auto-sync on: Argo CD will sync Git's head again"
            } else {
                "auto-sync off"
            };
            format!("rolled back to an older revision {rev}; {auto}")
        }
        OutOfSyncCause::Unknown => "out of sync (never deployed?)".into(),
    }
}

/// What the board, the lists and the estate read of every app, decoded once when the app
/// arrives. Everything else of the app is in [`AppEntry::app`], packed.
#[derive(Debug, Clone, PartialEq)]
pub struct Board {
    pub sync: SyncStatus,
    pub health: HealthStatus,
    pub operation_in_progress: bool,
    pub auto_sync: bool,
    /// shipdeck marked when it turned auto-sync off (`AUTO_SYNC_OFF_SINCE`).
    pub auto_sync_off_marked: bool,
    /// The app carries a four-eyes request annotation (read it from [`AppEntry::app`]).
    pub four_eyes: bool,
    /// `argocd.argoproj.io/sync-wave`, when it is a number.
    pub wave: Option<i64>,
    pub history_len: usize,
    /// `spec.project` as written (empty when unset), interned: a few projects serve all.
    pub project: Arc<str>,
    pub deployed: Option<Revision>,
    /// `status.summary.images`, in Argo CD's order.
    pub images: Box<[Box<str>]>,
    /// The tag (or digest) of the app's own image, raw: see `tui::widgets::version_of`.
    pub version: Option<Box<str>>,
    /// The entry holds every part of the app shipdeck reads. False while only Argo CD's
    /// projected list has been seen ([`Update::Summary`]): its fixed table of fields has no
    /// history, no operation message, no conditions, so `history_len`, `deployed` and the
    /// out-of-sync cause are not known yet, and a screen that shows them says so.
    pub complete: bool,
}

impl Board {
    fn of(app: &Application, interner: &mut Interner, complete: bool) -> Self {
        let images: Box<[Box<str>]> = app
            .status
            .summary
            .as_ref()
            .map(|s| s.images.iter().map(|i| i.as_str().into()).collect())
            .unwrap_or_default();
        Self {
            sync: app.status.sync.status,
            health: app.status.health.status,
            operation_in_progress: app.operation_in_progress(),
            auto_sync: app.auto_sync(),
            auto_sync_off_marked: app
                .metadata
                .annotations
                .contains_key(crate::sources::kube::AUTO_SYNC_OFF_SINCE),
            four_eyes: app
                .metadata
                .annotations
                .contains_key(crate::ops::foureyes::ANNOTATION),
            wave: app
                .metadata
                .annotations
                .get("argocd.argoproj.io/sync-wave")
                .and_then(|w| w.trim().parse().ok()),
            history_len: app.status.history.len(),
            project: interner.intern(&app.spec.project),
            deployed: deployed_revision(app),
            version: own_version(app, &images),
            images,
            complete,
        }
    }
}

/// The tag (or the digest's first 14 characters) of the app's own image: Argo CD lists an
/// app's images sorted by name, so with a database StatefulSet or a sidecar beside the
/// service the first is not the service's; the image whose repository is named as one of
/// the app's Deployments comes first, then the first listed. Raw: sanitize before drawing.
fn own_version(app: &Application, images: &[Box<str>]) -> Option<Box<str>> {
    let repo_name = |img: &str| -> String {
        let last = img.rsplit('/').next().unwrap_or(img);
        let end = last.find([':', '@']).unwrap_or(last.len());
        last[..end].to_string()
    };
    let own = images.iter().find(|img| {
        let repo = repo_name(img);
        app.status
            .resources
            .iter()
            .any(|r| r.kind == "Deployment" && r.name == repo)
    });
    let img = own.or(images.first())?;
    let last = img.rsplit('/').next().unwrap_or(img);
    if let Some((_, tag)) = last.rsplit_once(':') {
        return Some(tag.into());
    }
    last.split_once('@')
        .map(|(_, digest)| digest.get(..14).unwrap_or(digest).into())
}

/// Repeated strings (projects) held once.
#[derive(Debug, Default, Clone)]
pub struct Interner(std::collections::HashSet<Arc<str>>);

impl Interner {
    pub fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(x) = self.0.get(s) {
            return x.clone();
        }
        let x: Arc<str> = s.into();
        self.0.insert(x.clone());
        x
    }
}

/// A whole list of apps as a source delivered it, shared by the entries made from it while
/// a thread packs it (see [`Estate::pack_later`]).
pub type ListedApps = Arc<Vec<(AppId, Application)>>;

/// A list packed on its own thread, for [`Estate::packed`]: one blob per app, in the
/// list's order.
#[derive(Debug)]
pub struct PackedList {
    list: ListedApps,
    packed: Vec<Packed>,
}

/// Where an entry's whole app is kept.
#[derive(Debug, Clone)]
enum Body {
    Packed(Packed),
    /// Still the decoded app, `at` in the list it came in, until that list is packed.
    Listed {
        list: ListedApps,
        at: usize,
    },
}

/// One application as the console sees it: the board's facts, decoded, and the whole
/// projected object, packed (or, for a moment after a large list, not packed yet).
#[derive(Debug, Clone)]
pub struct AppEntry {
    pub id: AppId,
    pub board: Board,
    body: Body,
    pub environment: Environment,
    pub service: String,
    pub cause: Option<OutOfSyncCause>,
}

impl AppEntry {
    pub fn new(id: AppId, app: Application) -> Self {
        Self::classified(id, app, &Classifier::default(), &mut Interner::default())
    }

    /// An entry classified by config rules in front of the defaults.
    pub fn classified(
        id: AppId,
        mut app: Application,
        classifier: &Classifier,
        interner: &mut Interner,
    ) -> Self {
        // The estate keeps the board's projection, whatever the source sent.
        crate::model::compact_for_board(&mut app);
        let packed = Packed::pack(&app);
        Self::of_packed(&id, &app, Body::Packed(packed), classifier, interner, true)
    }

    /// An entry of an app already compacted (`compact_for_board`) and packed; `complete`
    /// as [`Board::complete`].
    ///
    /// The entry is kept until its app changes: it is built in the long-lived heap
    /// (`memory::long_lived`), apart from the decoded apps around it.
    fn of_packed(
        id: &AppId,
        app: &Application,
        body: Body,
        classifier: &Classifier,
        interner: &mut Interner,
        complete: bool,
    ) -> Self {
        crate::memory::long_lived(|| {
            let Classified {
                environment,
                service,
            } = classifier.classify(app);
            // Without history the cause is not known: Unknown, never a guess.
            let cause = if complete {
                out_of_sync_cause(app)
            } else {
                (app.status.sync.status == SyncStatus::OutOfSync).then_some(OutOfSyncCause::Unknown)
            };
            Self {
                id: id.clone(),
                board: Board::of(app, interner, complete),
                body,
                environment,
                service,
                cause,
            }
        })
    }

    /// The app's projected object (what the source listed or streamed, less what
    /// `compact_for_board` drops), decoded from its packed form. A blob that does not decode
    /// (a defect: it was packed here) gives an app holding only the id and the board's
    /// statuses, with an in-progress operation so no screen offers to act on it.
    pub fn app(&self) -> Application {
        let unpacked = match &self.body {
            Body::Packed(p) => p.unpack(),
            Body::Listed { list, at } => list
                .get(*at)
                .map(|(_, app)| app.clone())
                .ok_or_else(|| "a listed application is not in its list".to_string()),
        };
        match unpacked {
            Ok(app) => app,
            Err(e) => {
                tracing::error!(app = %self.id, "{e}");
                let mut app = Application::default();
                app.metadata.name = self.id.name.clone();
                app.metadata.namespace = self.id.namespace.clone();
                app.status.sync.status = self.board.sync;
                app.status.health.status = self.board.health;
                app.operation = Some(Default::default());
                app
            }
        }
    }
}

#[derive(Debug, Default)]
pub struct Estate {
    /// Boxed: a table slot is then a pointer, so the table's spare capacity and its growth
    /// (old and new table both alive while it rehashes) cost bytes per slot, not an
    /// Application's worth (~2 KB) per slot.
    apps: HashMap<AppId, Box<AppEntry>>,
    /// The apps of each board cell: service, then environment. Looked up by `&str` at
    /// both levels, so neither an insert nor a drawn cell copies its key to look.
    by_cell: HashMap<String, HashMap<String, Vec<AppId>>>,
    /// Instances whose list is coming in parts, with the ids seen so far when the list
    /// will take out what it did not hold (see [`Update::Summary`]).
    listing: HashMap<String, Option<HashSet<AppId>>>,
    environments: BTreeMap<Environment, usize>,
    services: BTreeMap<String, usize>,
    pub connections: BTreeMap<String, Connection>,
    classifier: Classifier,
    interner: Interner,
    /// The images each history entry of an app deployed (oldest first, as
    /// `ops::plan::history_images` reads them from Git), keyed by app, with the history
    /// length they were read for (a new deploy makes them stale). Loaded on demand; what is
    /// not loaded is not known, and [`Estate::lag`] then claims no lag.
    history_images: HashMap<AppId, (usize, Vec<Vec<String>>)>,
    /// Apps whose lag was asked for (a screen drew the cell) while their history images were
    /// not known: the console loads just those, so a large estate reads Git only for the
    /// cells on screen, never for every app. Interior mutability because drawing reads the
    /// estate by shared reference; taken with [`Estate::take_lag_wanted`].
    lag_wanted: std::cell::RefCell<BTreeSet<AppId>>,
    /// Bumped on every change; views compare it to decide whether to redraw.
    pub generation: u64,
    /// Bumped when an app comes or goes (or moves to another cell): what a view ordered by
    /// name alone depends on. A status change bumps `generation` only.
    pub shape: u64,
    /// Entries not complete (see [`Board::complete`]), counted as they come and go.
    incomplete: usize,
    /// Entries with a sync wave, counted the same way.
    waved: usize,
    /// Where a large list's packing reports when it is done (see [`Estate::pack_later`]);
    /// None packs every list before its entries are in.
    packer: Option<tokio::sync::mpsc::UnboundedSender<PackedList>>,
    /// Lists being packed, not yet handed to [`Estate::packed`].
    packing: usize,
    /// Lists whose packing is not started yet (see [`Estate::start_packing`]).
    to_pack: Vec<(ListedApps, tokio::sync::mpsc::UnboundedSender<PackedList>)>,
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

    /// Pack large lists after their entries are in, not before. A relist of 50,000 apps
    /// takes about half a second of CPU to pack, which the first frame need not wait for:
    /// the entries are made from the decoded apps, a thread packs the list meanwhile and
    /// sends it to `done`, and whoever owns the estate hands it to [`Estate::packed`].
    /// Until then each entry reads its app from the list (the same app, not packed yet).
    pub fn pack_later(&mut self, done: tokio::sync::mpsc::UnboundedSender<PackedList>) {
        self.packer = Some(done);
    }

    /// Whether a list is being packed (see [`Estate::pack_later`]).
    pub fn packing(&self) -> bool {
        self.packing > 0
    }

    /// Swap a packed list's blobs in for the decoded apps of the entries still made from
    /// it (an entry changed or removed since is not), then free the list on a thread.
    pub fn packed(&mut self, done: PackedList) {
        self.packing = self.packing.saturating_sub(1);
        let PackedList { list, packed } = done;
        if packed.len() == list.len() {
            for ((id, _), blob) in list.iter().zip(packed) {
                if let Some(e) = self.apps.get_mut(id)
                    && let Body::Listed { list: of, .. } = &e.body
                    && Arc::ptr_eq(of, &list)
                {
                    e.body = Body::Packed(blob);
                }
            }
        } else {
            // A defect of the packer: the entries keep reading the decoded apps.
            tracing::error!(
                "a packed list came back with {} of {} apps",
                packed.len(),
                list.len()
            );
        }
        if let Some(spent) = Arc::into_inner(list) {
            free_apart(spent);
        }
    }

    pub fn apply(&mut self, update: Update) {
        self.generation += 1;
        match update {
            Update::Upsert(id, app) => self.upsert(id, *app),
            Update::Delete(id) => self.remove(&id),
            Update::Resync { instance, apps } => self.resync(&instance, apps, Vec::new(), true),
            Update::Summary {
                instance,
                apps,
                packed,
                first: true,
                last: true,
            } => {
                self.listing.remove(&instance);
                self.resync(&instance, apps, packed, false)
            }
            Update::Summary {
                instance,
                apps,
                packed,
                first,
                last,
            } => self.summary_part(&instance, apps, packed, first, last),
            Update::Details { apps } => {
                let apps: Vec<(AppId, Application)> = apps
                    .into_iter()
                    .filter(|(id, _)| self.apps.get(id).is_some_and(|e| !e.board.complete))
                    .collect();
                // A batch of the whole list read beside the stream: freed here, as any
                // update's app (not a thread and a give-back per batch of 1,024).
                drop(self.insert_packed(apps, Vec::new(), true));
            }
            Update::Connection { source, state } => {
                if state != Connection::Connected {
                    // The list it was sending in parts is abandoned: the next one begins
                    // afresh, and until then the board is drawn as it is.
                    self.listing.remove(&source);
                }
                self.connections.insert(source, state);
            }
        }
    }

    /// Every app of `instance` is in `apps`; the rest of the instance's apps are gone.
    fn resync(
        &mut self,
        instance: &str,
        apps: Vec<(AppId, Application)>,
        packed: Vec<Packed>,
        complete: bool,
    ) {
        // The first list of an instance has nothing to compare with (a set of 50,000 keys
        // is built for nothing otherwise).
        if self.apps.keys().any(|id| id.instance == instance) {
            let keep: HashSet<&AppId> = apps.iter().map(|(id, _)| id).collect();
            self.take_out_unlisted(instance, |id| keep.contains(id));
        }
        if self.apps.is_empty() {
            // The first list: room for all of it at once, not grown step by step.
            self.apps.reserve(apps.len());
        }
        if packed.is_empty()
            && apps.len() >= PACK_APART
            && let Some(done) = self.packer.clone()
        {
            self.insert_listed(apps, complete, done);
            return;
        }
        let spent = self.insert_packed(apps, packed, complete);
        free_apart(spent);
    }

    /// A part of a list read in parts (see [`Update::Summary`]). The ids seen are kept
    /// only when the instance had apps when the list began: a first list has nothing to
    /// take out at its end.
    fn summary_part(
        &mut self,
        instance: &str,
        apps: Vec<(AppId, Application)>,
        packed: Vec<Packed>,
        first: bool,
        last: bool,
    ) {
        if first || !self.listing.contains_key(instance) {
            let had = self.apps.keys().any(|id| id.instance == instance);
            self.listing
                .insert(instance.to_string(), had.then(HashSet::new));
        }
        if let Some(Some(seen)) = self.listing.get_mut(instance) {
            seen.extend(apps.iter().map(|(id, _)| id.clone()));
        }
        // Freed here, part by part: the next part's apps decode into the same memory.
        drop(self.insert_packed(apps, packed, false));
        if last && let Some(Some(seen)) = self.listing.remove(instance) {
            self.take_out_unlisted(instance, |id| seen.contains(id));
        }
    }

    /// Take out every app of `instance` a list did not hold.
    fn take_out_unlisted(&mut self, instance: &str, listed: impl Fn(&AppId) -> bool) {
        let gone: Vec<AppId> = self
            .apps
            .keys()
            .filter(|id| id.instance == instance && !listed(id))
            .cloned()
            .collect();
        for id in gone {
            self.remove(&id);
        }
    }

    /// Whether a list is coming in parts and not all in (see [`Update::Summary`]).
    pub fn listing(&self) -> bool {
        !self.listing.is_empty()
    }

    /// Put a large list's apps in as they are, and pack the list on a thread of its own
    /// (see [`Estate::pack_later`]).
    fn insert_listed(
        &mut self,
        mut apps: Vec<(AppId, Application)>,
        complete: bool,
        done: tokio::sync::mpsc::UnboundedSender<PackedList>,
    ) {
        for (_, a) in apps.iter_mut() {
            crate::model::compact_for_board(a);
        }
        let list: ListedApps = Arc::new(apps);
        let bodies = (0..list.len())
            .map(|at| Body::Listed {
                list: list.clone(),
                at,
            })
            .collect();
        let entries = self.entries_of(&list, bodies, complete);
        for ((id, _), entry) in list.iter().zip(entries) {
            self.insert(id, entry);
        }
        self.packing += 1;
        self.to_pack.push((list, done));
    }

    /// Start packing the lists put in since the last call, each on a thread of its own at
    /// a lower priority than the console's loop (see [`Estate::pack_later`]). The loop
    /// calls this once the frame showing them is drawn, so the frame does not share the
    /// cores with the packing.
    pub fn start_packing(&mut self) {
        for (list, done) in std::mem::take(&mut self.to_pack) {
            let theirs = list.clone();
            let spawned = std::thread::Builder::new()
                .name("pack-apps".into())
                .spawn(move || {
                    lower_priority();
                    let packed = pack_each(&theirs);
                    // Nobody to hand it to (the console is gone): the list is freed here.
                    let _ = done.send(PackedList {
                        list: theirs,
                        packed,
                    });
                });
            if let Err(e) = spawned {
                tracing::debug!("no thread to pack the list on, packing it here: {e}");
                let packed = pack_each(&list);
                self.packed(PackedList { list, packed });
            }
        }
    }

    /// Put `apps` in, `complete` as [`Board::complete`], with `packed` as their packed
    /// forms when it holds one for each (otherwise they are packed here, on every core).
    /// The decoded apps are handed back for the caller to free.
    fn insert_packed(
        &mut self,
        mut apps: Vec<(AppId, Application)>,
        packed: Vec<Packed>,
        complete: bool,
    ) -> Vec<(AppId, Application)> {
        let packed = if packed.len() == apps.len() {
            packed
        } else {
            pack_all(&mut apps)
        };
        let bodies = packed.into_iter().map(Body::Packed).collect();
        let entries = self.entries_of(&apps, bodies, complete);
        for ((id, _), entry) in apps.iter().zip(entries) {
            self.insert(id, entry);
        }
        apps
    }

    /// The entries of `apps` with `bodies` (one each, in order), made on every core for a
    /// large list: classifying an app and decoding its board's facts is about 2-3 µs, a
    /// tenth of a second at 50,000 apps that the first frame waits for, and once a list is
    /// read nothing else needs the cores. Each thread interns into a copy of the estate's
    /// interner; what they added is merged back (a string first seen by two threads is held
    /// twice, once per thread: a handful of projects and clusters, not one per app).
    fn entries_of(
        &mut self,
        apps: &[(AppId, Application)],
        mut bodies: Vec<Body>,
        complete: bool,
    ) -> Vec<AppEntry> {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        let classifier = &self.classifier;
        let make = |apps: &[(AppId, Application)], bodies: Vec<Body>, interner: &mut Interner| {
            apps.iter()
                .zip(bodies)
                .map(|((id, app), body)| {
                    AppEntry::of_packed(id, app, body, classifier, interner, complete)
                })
                .collect::<Vec<AppEntry>>()
        };
        if cores == 1 || apps.len() < PACK_APART {
            return make(apps, bodies, &mut self.interner);
        }
        let chunk = apps.len().div_ceil(cores);
        let mut parts: Vec<Vec<Body>> = Vec::new();
        while bodies.len() > chunk {
            let rest = bodies.split_off(chunk);
            parts.push(std::mem::replace(&mut bodies, rest));
        }
        parts.push(bodies);
        let base = &self.interner;
        let made: Vec<Option<(Vec<AppEntry>, Interner)>> = std::thread::scope(|s| {
            let handles: Vec<_> = apps
                .chunks(chunk)
                .zip(parts)
                .map(|(apps, bodies)| {
                    s.spawn(move || {
                        let mut interner = base.clone();
                        let entries = make(apps, bodies, &mut interner);
                        (entries, interner)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().ok()).collect()
        });
        let mut entries = Vec::with_capacity(apps.len());
        for (part, interner) in made.into_iter().flatten() {
            entries.extend(part);
            for s in interner.0 {
                self.interner.0.insert(s);
            }
        }
        if entries.len() != apps.len() {
            // A worker died (a defect): the bodies went with it, so the entries are made
            // here, each app packed again.
            tracing::error!("a worker making entries died; making them here");
            return apps
                .iter()
                .map(|(id, app)| {
                    let body = Body::Packed(Packed::pack(app));
                    AppEntry::of_packed(id, app, body, classifier, &mut self.interner, complete)
                })
                .collect();
        }
        entries
    }

    /// Whether any app carries a sync wave (kept as apps come and go: no pass over them).
    pub fn any_wave(&self) -> bool {
        self.waved > 0
    }

    /// How many apps still wait for their details (see [`Board::complete`]).
    pub fn incomplete(&self) -> usize {
        self.incomplete
    }

    fn upsert(&mut self, id: AppId, app: Application) {
        let entry = AppEntry::classified(id.clone(), app, &self.classifier, &mut self.interner);
        self.insert(&id, entry);
    }

    fn insert(&mut self, id: &AppId, entry: AppEntry) {
        // The key is kept as long as the entry: a copy in the long-lived heap, not the
        // decoded one that came with the app.
        crate::memory::long_lived(|| self.insert_here(id.clone(), entry));
    }

    fn insert_here(&mut self, id: AppId, entry: AppEntry) {
        if let Some(old) = self.apps.get(&id)
            && (old.environment != entry.environment || old.service != entry.service)
        {
            self.remove(&id);
        }
        if !entry.board.complete {
            self.incomplete += 1;
        }
        if entry.board.wave.is_some() {
            self.waved += 1;
        }
        // One lookup for the rest, and the counters' keys copied only when new.
        match self.apps.entry(id) {
            std::collections::hash_map::Entry::Occupied(mut o) => {
                let old = o.get();
                if !old.board.complete {
                    self.incomplete -= 1;
                }
                if old.board.wave.is_some() {
                    self.waved -= 1;
                }
                o.insert(Box::new(entry));
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                self.shape += 1;
                let key = v.key().clone();
                match self.by_cell.get_mut(entry.service.as_str()) {
                    Some(envs) => match envs.get_mut(entry.environment.name.as_str()) {
                        Some(ids) => ids.push(key),
                        None => {
                            envs.insert(entry.environment.name.clone(), vec![key]);
                        }
                    },
                    None => {
                        let envs = HashMap::from([(entry.environment.name.clone(), vec![key])]);
                        self.by_cell.insert(entry.service.clone(), envs);
                    }
                }
                match self.environments.get_mut(&entry.environment) {
                    Some(n) => *n += 1,
                    None => {
                        self.environments.insert(entry.environment.clone(), 1);
                    }
                }
                match self.services.get_mut(&entry.service) {
                    Some(n) => *n += 1,
                    None => {
                        self.services.insert(entry.service.clone(), 1);
                    }
                }
                v.insert(Box::new(entry));
            }
        }
    }

    fn remove(&mut self, id: &AppId) {
        let Some(old) = self.apps.remove(id) else {
            return;
        };
        self.shape += 1;
        if !old.board.complete {
            self.incomplete -= 1;
        }
        if old.board.wave.is_some() {
            self.waved -= 1;
        }
        self.history_images.remove(id);
        if let Some(envs) = self.by_cell.get_mut(old.service.as_str()) {
            let env = old.environment.name.as_str();
            if let Some(ids) = envs.get_mut(env) {
                ids.retain(|x| x != id);
                if ids.is_empty() {
                    envs.remove(env);
                }
            }
            if envs.is_empty() {
                self.by_cell.remove(old.service.as_str());
            }
        }
        decrement(&mut self.environments, &old.environment);
        decrement(&mut self.services, &old.service);
    }

    pub fn get(&self, id: &AppId) -> Option<&AppEntry> {
        self.apps.get(id).map(|e| &**e)
    }

    /// Find an app by name alone (the CLI's `APP` argument); None when absent or ambiguous.
    pub fn find_by_name(&self, name: &str) -> Vec<&AppEntry> {
        self.apps
            .values()
            .filter(|e| e.id.name == name)
            .map(|e| &**e)
            .collect()
    }

    pub fn len(&self) -> usize {
        self.apps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }

    pub fn apps(&self) -> impl Iterator<Item = &AppEntry> {
        self.apps.values().map(|e| &**e)
    }

    /// Apps of one board cell.
    pub fn cell(&self, service: &str, environment: &str) -> impl Iterator<Item = &AppEntry> {
        self.by_cell
            .get(service)
            .and_then(|envs| envs.get(environment))
            .into_iter()
            .flatten()
            .filter_map(|id| self.apps.get(id).map(|e| &**e))
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
    let images = images_of(entry);
    if images.is_empty() {
        return entry
            .board
            .deployed
            .clone()
            .map(|r| vec![r.0])
            .unwrap_or_default();
    }
    images
}

/// The images Argo CD reports the app runs, sorted (empty when it reports none).
fn images_of(entry: &AppEntry) -> Vec<String> {
    let mut images: Vec<String> = entry.board.images.iter().map(|i| i.to_string()).collect();
    images.sort();
    images
}

/// When the app started running its deployed revision: the deploy time of the oldest
/// entry of the newest run of history entries with that revision (a re-sync of the same
/// revision does not make it newer).
pub fn running_since(app: &Application) -> Option<chrono::DateTime<chrono::Utc>> {
    let mut history: Vec<&crate::model::HistoryEntry> = app.status.history.iter().collect();
    history.sort_by_key(|h| h.id);
    let now = entry_revision(history.last()?)?;
    let first = history
        .iter()
        .rev()
        .take_while(|h| entry_revision(h) == Some(now))
        .last()?;
    let at = first
        .deployed_at
        .as_deref()
        .or(first.deploy_started_at.as_deref())?;
    chrono::DateTime::parse_from_rfc3339(at)
        .ok()
        .map(|t| t.with_timezone(&chrono::Utc))
}

impl Estate {
    /// Record the images each history entry of `id` deployed (oldest first), as read from
    /// Git for the app's current history.
    pub fn set_history_images(&mut self, id: &AppId, images: Vec<Vec<String>>) {
        let Some(entry) = self.apps.get(id) else {
            return;
        };
        let len = entry.board.history_len;
        if images.len() != len {
            return;
        }
        self.generation += 1;
        self.history_images.insert(id.clone(), (len, images));
    }

    /// The images each history entry of the app deployed, when loaded for its current
    /// history (None when not loaded or stale).
    pub fn history_images_of(&self, entry: &AppEntry) -> Option<&[Vec<String>]> {
        self.history_images
            .get(&entry.id)
            .filter(|(len, _)| *len == entry.board.history_len)
            .map(|(_, v)| v.as_slice())
    }

    /// The apps whose lag a screen asked for without their history images being known,
    /// since the last call (see `lag_wanted`).
    pub fn take_lag_wanted(&self) -> BTreeSet<AppId> {
        std::mem::take(&mut *self.lag_wanted.borrow_mut())
    }

    /// Whether the environment before runs something this cell has never run, in promotion
    /// order: an image the environment before runs now appears in none of this cell's
    /// history entries (their images from Git, see [`Estate::set_history_images`]). A cell
    /// that ran that image before and moved on (a newer build, a hotfix) does not lag.
    /// None when there is no environment before, the environment before reports no images,
    /// or this cell's history images are not known (not knowing is not lagging).
    pub fn lag(&self, entry: &AppEntry) -> Option<Lag> {
        let prev = self.previous_environment(&entry.environment)?;
        let there_entry = self.cell(&entry.service, &prev.name).next()?;
        let there = images_of(there_entry);
        if there.is_empty() || there == images_of(entry) {
            return None;
        }
        let Some(history) = self.history_images_of(entry) else {
            self.lag_wanted.borrow_mut().insert(entry.id.clone());
            return None;
        };
        let ran: BTreeSet<&str> = history.iter().flatten().map(String::as_str).collect();
        if there.iter().all(|i| ran.contains(i.as_str())) {
            return None;
        }
        Some(Lag {
            previous_environment: prev.name.clone(),
            here: running(entry),
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

/// Compact and pack a relist's apps, on every core: packing takes about 10 µs an app on one
/// core (measured on the sandbox's 10,000), half a second at 50,000, all before the first
/// frame.
fn pack_all(apps: &mut [(AppId, Application)]) -> Vec<Packed> {
    for (_, a) in apps.iter_mut() {
        crate::model::compact_for_board(a);
    }
    pack_each(apps)
}

/// Pack apps already compacted, on every core.
fn pack_each(apps: &[(AppId, Application)]) -> Vec<Packed> {
    let one = |c: &[(AppId, Application)]| -> Vec<Packed> {
        c.iter().map(|(_, a)| Packed::pack(a)).collect()
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
    if cores == 1 || apps.len() < 1024 {
        return one(apps);
    }
    let chunk = apps.len().div_ceil(cores);
    let parts: Vec<Option<Vec<Packed>>> = std::thread::scope(|s| {
        let handles: Vec<_> = apps
            .chunks(chunk)
            .map(|c| s.spawn(move || one(c)))
            .collect();
        handles.into_iter().map(|h| h.join().ok()).collect()
    });
    let packed: Vec<Packed> = parts.into_iter().flatten().flatten().collect();
    if packed.len() == apps.len() {
        packed
    } else {
        // A worker died (a defect): pack here rather than pair apps with the wrong blobs.
        one(apps)
    }
}

/// Lists this large are packed after their entries are in when the estate's owner asks
/// for it ([`Estate::pack_later`]), and their decoded apps freed on a thread of their own.
const PACK_APART: usize = 1024;

/// Lower this thread's priority (nice 10; on Linux a thread's nice value is its own, and
/// the threads it starts inherit it), for work nobody waits on.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    // SAFETY: setpriority takes plain integers; who 0 is the calling thread on Linux.
    unsafe {
        libc::setpriority(libc::PRIO_PROCESS, 0, 10);
    }
}

/// Free a whole list's decoded apps on a thread of their own: at 50,000 apps that is 50-85
/// ms of frees nobody need wait for. Then what they held goes back (the threads that
/// decoded them collect when they next park).
fn free_apart(spent: Vec<(AppId, Application)>) {
    if spent.len() < PACK_APART {
        return;
    }
    if let Err(e) = std::thread::Builder::new()
        .name("free-apps".into())
        .spawn(move || {
            drop(spent);
            crate::memory::give_back();
        })
    {
        tracing::debug!("no thread to free the decoded apps on: {e}");
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
            deployed_at: Some("2024-06-01T00:00:00Z".into()),
            ..Default::default()
        });
        a
    }

    /// A list in parts: nothing is taken out before its last part, what it did not hold
    /// is taken out then, the board counts as listing until then, and a list abandoned
    /// midway (the source reconnects) leaves the estate as it was for the next to finish.
    #[test]
    fn a_list_in_parts_takes_out_the_missing_only_at_its_end() {
        let mut e = Estate::new();
        let id = |n: &str| AppId::new("i", "argocd", n);
        let part = |names: &[&str], first: bool, last: bool| Update::Summary {
            instance: "i".into(),
            apps: names
                .iter()
                .map(|n| (id(n), app(n, SyncStatus::Synced, "c1", "c1")))
                .collect(),
            packed: Vec::new(),
            first,
            last,
        };
        e.apply(part(&["a", "b"], true, false));
        assert!(e.listing(), "a first list in parts is coming");
        e.apply(part(&["c"], false, true));
        assert!(!e.listing());
        assert_eq!(e.len(), 3);
        assert!(e.get(&id("a")).is_some_and(|x| !x.board.complete));

        // A relist without b: b stays until the last part, then goes.
        e.apply(part(&["a"], true, false));
        assert_eq!(e.len(), 3, "nothing goes before the last part");
        e.apply(part(&["c", "d"], false, true));
        let mut names: Vec<&str> = e.apps().map(|x| x.id.name.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["a", "c", "d"]);

        // Abandoned midway: the estate stays whole, drawn as it is, and the next list
        // begins afresh (its seen set does not carry the abandoned one's).
        e.apply(part(&["a"], true, false));
        e.apply(Update::Connection {
            source: "i".into(),
            state: Connection::Reconnecting {
                reason: "lost".into(),
                since: String::new(),
            },
        });
        assert!(!e.listing());
        assert_eq!(e.len(), 3);
        e.apply(part(&["d"], true, false));
        e.apply(part(&[], false, true));
        let names: Vec<&str> = e.apps().map(|x| x.id.name.as_str()).collect();
        assert_eq!(names, ["d"]);

        // A single-part list ends one in parts that was under way.
        e.apply(part(&["x"], true, false));
        e.apply(part(&["d"], true, true));
        assert!(!e.listing());
        assert_eq!(e.len(), 1);
    }

    /// `shape` moves when an app comes, goes or changes cell, not on a status change; the
    /// wave count follows replacements and removals.
    #[test]
    fn shape_and_waves_follow_apps_not_statuses() {
        let mut e = Estate::new();
        let id = |n: &str| AppId::new("i", "argocd", n);
        let waved = |n: &str, wave: Option<&str>| {
            let mut a = app(n, SyncStatus::Synced, "c1", "c1");
            if let Some(w) = wave {
                a.metadata
                    .annotations
                    .insert("argocd.argoproj.io/sync-wave".into(), w.into());
            }
            a
        };
        e.apply(Update::Upsert(id("web"), Box::new(waved("web", None))));
        let (shape, generation) = (e.shape, e.generation);
        assert!(!e.any_wave());
        let mut changed = waved("web", Some("2"));
        changed.status.sync.status = SyncStatus::OutOfSync;
        e.apply(Update::Upsert(id("web"), Box::new(changed)));
        assert_eq!(e.shape, shape, "a status change keeps the shape");
        assert!(e.generation > generation);
        assert!(e.any_wave());
        e.apply(Update::Upsert(id("api"), Box::new(waved("api", Some("1")))));
        assert!(e.shape > shape, "a new app changes the shape");
        e.apply(Update::Upsert(id("web"), Box::new(waved("web", None))));
        assert!(e.any_wave(), "api still has one");
        let shape = e.shape;
        e.apply(Update::Delete(id("api")));
        assert!(e.shape > shape, "a removal changes the shape");
        assert!(!e.any_wave());
    }

    /// An app with a whole history: (revision, deployed at) oldest first.
    fn with_history(mut a: Application, entries: &[(&str, &str)]) -> Application {
        a.status.history = entries
            .iter()
            .enumerate()
            .map(|(i, (rev, at))| HistoryEntry {
                id: i as i64 + 1,
                revision: Some(rev.to_string()),
                deployed_at: Some(at.to_string()),
                ..Default::default()
            })
            .collect();
        a
    }

    /// An app with every part the board reads set, from JSON as Argo CD sends it.
    fn rich(name: &str, project: &str) -> Application {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "argocd",
                "labels": {"env": "prod"},
                "annotations": {
                    "argocd.argoproj.io/sync-wave": " 3 ",
                    crate::ops::foureyes::ANNOTATION: "{}",
                    crate::sources::kube::AUTO_SYNC_OFF_SINCE: "2026-01-01T00:00:00Z"}},
            "spec": {"project": project,
                "source": {"repoURL": "https://git/x", "path": name, "targetRevision": "main"},
                "destination": {"server": "https://kubernetes.default.svc", "namespace": name},
                "syncPolicy": {"automated": {"prune": true}}},
            "operation": {"sync": {"revision": "c2"}},
            "status": {
                "sync": {"status": "OutOfSync", "revision": "c2",
                         "comparedTo": {"source": {"repoURL": "https://git/x"}}},
                "health": {"status": "Progressing", "message": "rolling"},
                "history": [
                    {"id": 1, "revision": "c0", "deployedAt": "2026-01-01T00:00:00Z",
                     "source": {"repoURL": "https://git/x", "path": name, "targetRevision": "main"}},
                    {"id": 2, "revision": "c1", "deployedAt": "2026-01-02T00:00:00Z"}],
                "resources": [
                    {"kind": "Deployment", "name": "web", "namespace": name, "status": "Synced"}],
                "summary": {"images": ["reg/sidecar:9.9", "reg/web:1.2.3"]}}
        }))
        .expect("fixture parses")
    }

    #[test]
    fn the_board_says_what_the_decoded_app_says_and_the_app_comes_back_whole() {
        let a = rich("web", "shop");
        let mut compacted = a.clone();
        crate::model::compact_for_board(&mut compacted);
        let e = AppEntry::new(AppId::new("i", "argocd", "web"), a.clone());
        let back = e.app();
        assert_eq!(
            back, compacted,
            "the packed app is the compacted app, whole"
        );
        let b = &e.board;
        assert_eq!(b.sync, a.status.sync.status);
        assert_eq!(b.health, a.status.health.status);
        assert_eq!(b.operation_in_progress, a.operation_in_progress());
        assert!(b.operation_in_progress);
        assert_eq!(b.auto_sync, a.auto_sync());
        assert!(b.auto_sync_off_marked && b.four_eyes);
        assert_eq!(b.wave, Some(3));
        assert_eq!(b.history_len, 2);
        assert_eq!(&*b.project, "shop");
        assert_eq!(b.deployed, deployed_revision(&a));
        assert_eq!(b.deployed.as_ref().map(Revision::as_str), Some("c1"));
        assert_eq!(
            &*b.images,
            &["reg/sidecar:9.9".into(), "reg/web:1.2.3".into()][..]
        );
        // The app's own image (named as its Deployment), not the first listed.
        assert_eq!(b.version.as_deref(), Some("1.2.3"));
    }

    #[test]
    fn projects_are_held_once_and_a_relist_packs_every_app_it_lists() {
        let mut e = Estate::new();
        let apps: Vec<(AppId, Application)> = (0..1500)
            .map(|i| {
                let name = format!("app-{i}");
                (
                    AppId::new("i", "argocd", name.clone()),
                    rich(&name, if i % 2 == 0 { "shop" } else { "pay" }),
                )
            })
            .collect();
        let want: Vec<Application> = apps.iter().map(|(_, a)| a.clone()).collect();
        e.apply(Update::Resync {
            instance: "i".into(),
            apps,
        });
        assert_eq!(e.len(), 1500);
        for (i, w) in want.into_iter().enumerate() {
            let mut w = w;
            crate::model::compact_for_board(&mut w);
            let got = e
                .get(&AppId::new("i", "argocd", format!("app-{i}")))
                .expect("listed");
            assert_eq!(got.app(), w, "app-{i} comes back as listed");
        }
        let a = e.get(&AppId::new("i", "argocd", "app-0")).expect("listed");
        let b = e.get(&AppId::new("i", "argocd", "app-2")).expect("listed");
        assert!(Arc::ptr_eq(&a.board.project, &b.board.project));
    }

    fn two_envs(staging: Application, prod: Application) -> (Estate, AppEntry, AppEntry) {
        let mut e = Estate::new();
        let s = AppId::new("i", "argocd", "cart-staging");
        let p = AppId::new("i", "argocd", "cart-prod");
        e.apply(Update::Upsert(s.clone(), Box::new(staging)));
        e.apply(Update::Upsert(p.clone(), Box::new(prod)));
        let (Some(s), Some(p)) = (e.get(&s).cloned(), e.get(&p).cloned()) else {
            panic!("entries missing");
        };
        (e, s, p)
    }

    #[test]
    fn prod_with_a_newer_image_than_staging_does_not_lag() {
        // Staging runs sha-aaa since June 2; prod got a hotfix sha-ccc on June 5 that
        // staging never had: prod is ahead, not behind.
        let staging = with_images(
            with_history(
                app("cart-staging", SyncStatus::Synced, "s1", "s1"),
                &[("s1", "2024-06-02T10:00:00Z")],
            ),
            &["cart:sha-aaa"],
        );
        let prod = with_images(
            with_history(
                app("cart-prod", SyncStatus::Synced, "p2", "p2"),
                &[
                    ("p1", "2024-06-01T10:00:00Z"),
                    ("p2", "2024-06-05T10:00:00Z"),
                ],
            ),
            &["cart:sha-ccc"],
        );
        let (mut e, _, p) = two_envs(staging, prod);
        assert_eq!(e.lag(&p), None, "history unknown: no lag claimed");
        // Prod ran staging's sha-aaa first, then the hotfix.
        e.set_history_images(
            &p.id,
            vec![vec!["cart:sha-aaa".into()], vec!["cart:sha-ccc".into()]],
        );
        assert_eq!(e.lag(&p), None);
    }

    #[test]
    fn prod_lags_when_staging_moved_on_after_prod() {
        let staging = with_images(
            with_history(
                app("cart-staging", SyncStatus::Synced, "s2", "s2"),
                &[
                    ("s1", "2024-06-01T09:00:00Z"),
                    ("s2", "2024-06-06T10:00:00Z"),
                ],
            ),
            &["cart:sha-bbb"],
        );
        // A re-sync of p1 on June 7 does not make prod's p1 newer than staging's s2.
        let prod = with_images(
            with_history(
                app("cart-prod", SyncStatus::Synced, "p1", "p1"),
                &[
                    ("p1", "2024-06-01T10:00:00Z"),
                    ("p1", "2024-06-07T10:00:00Z"),
                ],
            ),
            &["cart:sha-aaa"],
        );
        let (mut e, s, p) = two_envs(staging, prod);
        assert!(
            e.take_lag_wanted().is_empty(),
            "nothing drawn, nothing wanted"
        );
        assert_eq!(e.lag(&p), None, "history unknown: no lag claimed");
        // Asking for the lag without the history is what makes the console load it; staging
        // has no environment before it and wants nothing.
        assert_eq!(e.lag(&s), None);
        assert_eq!(
            e.take_lag_wanted().into_iter().collect::<Vec<_>>(),
            vec![p.id.clone()]
        );
        assert!(e.take_lag_wanted().is_empty(), "taken once");
        e.set_history_images(
            &p.id,
            vec![vec!["cart:sha-aaa".into()], vec!["cart:sha-aaa".into()]],
        );
        let lag = e.lag(&p);
        assert!(
            e.take_lag_wanted().is_empty(),
            "known history is not asked again"
        );
        assert_eq!(
            lag.as_ref()
                .map(|l| (l.previous_environment.as_str(), l.there.clone())),
            Some(("staging", vec!["cart:sha-bbb".to_string()]))
        );
        assert_eq!(e.lag(&s), None);
    }

    #[test]
    fn no_deploy_times_no_lag_claimed() {
        let mut staging = with_images(
            app("cart-staging", SyncStatus::Synced, "s1", "s1"),
            &["cart:sha-bbb"],
        );
        staging.status.history[0].deployed_at = None;
        let prod = with_images(
            app("cart-prod", SyncStatus::Synced, "p1", "p1"),
            &["cart:sha-aaa"],
        );
        let (e, _, p) = two_envs(staging, prod);
        assert_eq!(e.lag(&p), None);
    }

    #[test]
    fn a_rollback_is_its_own_cause() {
        let mut a = with_history(
            app("cart-prod", SyncStatus::OutOfSync, "x", "c3"),
            &[
                ("c1", "2024-06-01T10:00:00Z"),
                ("c2", "2024-06-02T10:00:00Z"),
                ("c1", "2024-06-03T10:00:00Z"),
            ],
        );
        assert_eq!(out_of_sync_cause(&a), Some(OutOfSyncCause::RolledBack));
        let words = cause_words(OutOfSyncCause::RolledBack, &a);
        assert!(
            words.contains("rolled back to an older revision c1"),
            "{words}"
        );
        assert!(words.contains("auto-sync off"), "{words}");
        // A plain new commit after a re-sync is a pending change, not a rollback.
        a.status.history.truncate(2);
        assert_eq!(out_of_sync_cause(&a), Some(OutOfSyncCause::PendingChange));
        let resync = with_history(
            app("cart-prod", SyncStatus::OutOfSync, "x", "c3"),
            &[
                ("c1", "2024-06-01T10:00:00Z"),
                ("c1", "2024-06-02T10:00:00Z"),
            ],
        );
        assert_eq!(
            out_of_sync_cause(&resync),
            Some(OutOfSyncCause::PendingChange)
        );
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

    /// A large list packed after its entries are in: the entries read the same apps before
    /// and after the swap, a change meanwhile is not undone by it, and a list relisted before
    /// its packing came back keeps the newer entries.
    #[test]
    fn a_large_list_is_packed_apart_and_reads_the_same() {
        let mut e = Estate::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        e.pack_later(tx);
        let id = |n: usize| AppId::new("i", "argocd", format!("app-{n}"));
        let list = |rev: &str| -> Vec<(AppId, Application)> {
            (0..PACK_APART + 6)
                .map(|n| (id(n), rich(&format!("app-{n}"), rev)))
                .collect()
        };
        let mut expected = list("p1");
        for (_, a) in expected.iter_mut() {
            crate::model::compact_for_board(a);
        }
        e.apply(Update::Resync {
            instance: "i".into(),
            apps: list("p1"),
        });
        assert!(e.packing());
        assert_eq!(e.len(), PACK_APART + 6);
        assert!(
            rx.try_recv().is_err(),
            "nothing is packed before it is asked to start"
        );
        let read = |e: &Estate, n: usize| e.get(&id(n)).expect("entry").app();
        assert_eq!(
            read(&e, 3),
            expected[3].1,
            "read from the list before packing"
        );
        // Made on every core, each entry says what one made alone says.
        for (n, (i, a)) in expected.iter().enumerate() {
            let alone = AppEntry::new(i.clone(), a.clone());
            let made = e.get(&id(n)).expect("entry");
            assert_eq!(made.board, alone.board, "app-{n}");
            assert_eq!(
                (&made.environment, &made.service, made.cause),
                (&alone.environment, &alone.service, alone.cause),
                "app-{n}"
            );
        }
        // A change before the packing is back stays.
        let mut changed = rich("app-5", "p1");
        changed.status.sync.status = SyncStatus::OutOfSync;
        e.apply(Update::Upsert(id(5), Box::new(changed.clone())));
        e.start_packing();
        let done = rx.blocking_recv().expect("the list comes back packed");
        e.packed(done);
        assert!(!e.packing());
        for (n, (_, a)) in expected.iter().enumerate() {
            let entry = e.get(&id(n)).expect("entry");
            if n == 5 {
                crate::model::compact_for_board(&mut changed);
                assert_eq!(entry.app(), changed, "the change is not undone");
            } else {
                assert!(matches!(entry.body, Body::Packed(_)), "app-{n} is packed");
                assert_eq!(&entry.app(), a, "app-{n} reads the same once packed");
            }
        }
        // Relisted before the first list's packing came back: the newer entries stay.
        e.apply(Update::Resync {
            instance: "i".into(),
            apps: list("p1"),
        });
        e.apply(Update::Resync {
            instance: "i".into(),
            apps: list("p2"),
        });
        e.start_packing();
        let first = rx.blocking_recv().expect("first list");
        e.packed(first);
        assert!(e.packing(), "the second list is still out");
        assert_eq!(e.get(&id(0)).expect("entry").app().spec.project, "p2");
        let second = rx.blocking_recv().expect("second list");
        e.packed(second);
        assert!(!e.packing());
        assert_eq!(e.get(&id(0)).expect("entry").app().spec.project, "p2");
        assert!(matches!(
            e.get(&id(0)).expect("entry").body,
            Body::Packed(_)
        ));
    }

    /// Without a packer (the CLI, headless commands) every list is packed before it is in.
    #[test]
    fn without_a_packer_a_large_list_is_packed_at_once() {
        let mut e = Estate::new();
        let apps: Vec<(AppId, Application)> = (0..PACK_APART)
            .map(|n| {
                let name = format!("app-{n}");
                (AppId::new("i", "argocd", &name), rich(&name, "p"))
            })
            .collect();
        e.apply(Update::Resync {
            instance: "i".into(),
            apps,
        });
        assert!(!e.packing());
        assert!(e.apps().all(|x| matches!(x.body, Body::Packed(_))));
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
        let mut dev_app = app("event-ingestion-dev", SyncStatus::Synced, "d2", "d2");
        dev_app.status.history[0].deployed_at = Some("2024-06-12T14:30:22Z".into());
        e.apply(Update::Upsert(
            dev.clone(),
            Box::new(with_images(dev_app, &["event-consumer:v20240612-143022"])),
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
        e.set_history_images(&p.id, vec![vec!["event-consumer:v20240611-090000".into()]]);
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
