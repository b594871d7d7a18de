//! The console's state machine, without a terminal: the Estate (domain state) beside the
//! screen stack and chrome (view state). It turns keys, source updates and answers into
//! changes and requests, and draws a frame read-only. The async loop (`app.rs`) feeds it;
//! tests drive it directly with a `TestBackend`.

use super::keymap::{Intent, Keymap};
use super::request::{Payload, Request, Response, Ticket};
use super::theme::{ColorDepth, Role, Theme};
use super::view::{Ctx, Effect, Level, Outbox, View};
use super::views::{
    apps::AppsView, board::BoardView, builds::BuildsView, help::HelpView, palette::PaletteView,
};
use super::widgets::{self, clean, fit};
use crate::model::{AppId, Application, Connection, Update};
use crate::ops::estate::Estate;
use crossterm::event::{KeyEvent, KeyEventKind};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

/// The smallest terminal the layout is made for; below it a message replaces the screens.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 20;

/// Settings the console starts with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub theme: Theme,
    pub keymap: Keymap,
    pub read_only: bool,
    pub operator: String,
    /// What the console is connected to, for the header.
    pub source_label: String,
    pub depth: ColorDepth,
    pub themes_dir: Option<PathBuf>,
    /// Warnings from config and themes, shown once at start.
    pub warnings: Vec<String>,
    pub policies: crate::ops::policy::Policies,
    /// Config rules in front of the defaults: the board classifies as the guards do.
    pub classifier: crate::ops::classify::Classifier,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            theme: Theme::built_in("default"),
            keymap: Keymap::default(),
            read_only: false,
            operator: "operator".into(),
            source_label: String::new(),
            depth: ColorDepth::TrueColor,
            themes_dir: None,
            warnings: Vec::new(),
            policies: Default::default(),
            classifier: Default::default(),
        }
    }
}

/// A request the loop must run, with the app it is about as the estate holds it now.
pub struct Outgoing {
    pub ticket: Ticket,
    pub request: Request,
    pub app: Option<Application>,
}

/// Where the board's background tickets start (the screens count up from 1).
const LAG_TICKETS: u64 = 1 << 62;

pub struct Console {
    pub estate: Estate,
    screens: Vec<Box<dyn View>>,
    settings: Settings,
    flash: Option<(Level, String)>,
    tick: u64,
    quit: bool,
    outbox: Outbox,
    /// Tickets of mutations: never cancelled when their screen closes.
    mutations: BTreeSet<Ticket>,
    /// Syncs and rollbacks whose follower answers a second time with how they ended.
    followed: BTreeSet<Ticket>,
    /// Tickets whose task should be stopped (their screen went away).
    cancelled: Vec<Ticket>,
    now: chrono::DateTime<chrono::Utc>,
    /// The refreshes of the last `:refresh` (or Ctrl-r), until every answer is in.
    refreshes: Refreshes,
    /// History-image loads for the board's `«`: the ticket of each, and per app the history
    /// length asked for (asked once per new deploy, only for cells whose environment before
    /// runs other images).
    lag_loads: BTreeMap<Ticket, AppId>,
    lag_asked: HashMap<AppId, usize>,
    /// Those loads not yet handed to the loop (apart from the screens' requests).
    lag_queue: Vec<(Ticket, Request)>,
    lag_next: u64,
    /// Incident freezes open now (`ops::freeze`), for the header; asked in the background.
    freezes: Vec<crate::ops::freeze::FreezeMark>,
    freeze_ticket: Option<Ticket>,
    freeze_asked: Option<std::time::Instant>,
    /// Updates folded in ([`Console::fold`]) that the screens have not reacted to yet, and
    /// whether one of them was a relist.
    unreacted: bool,
    unreacted_relist: bool,
}

/// How often the header's freeze line is asked again.
const FREEZE_POLL: std::time::Duration = std::time::Duration::from_secs(10);

/// One round of refreshes: which tickets are out, and how the answered ones went.
#[derive(Debug, Default)]
struct Refreshes {
    pending: std::collections::BTreeMap<Ticket, String>,
    total: usize,
    ok: usize,
    failed: Vec<(String, String)>,
    hard: bool,
    /// Every app of the round, in the order asked.
    names: Vec<String>,
}

impl Refreshes {
    /// The flash line for the round so far.
    fn words(&self) -> (Level, String) {
        let kind = if self.hard { "hard refresh" } else { "refresh" };
        let done = self.ok + self.failed.len();
        if self.total == 1 {
            return match (self.failed.first(), self.pending.values().next()) {
                (Some((name, e)), _) => (
                    Level::Error,
                    format!("{kind} of {} failed: {}", clean(name), clean(e)),
                ),
                (None, Some(name)) => (
                    Level::Info,
                    format!("{kind} of {} requested: Argo CD re-reads Git…", clean(name)),
                ),
                (None, None) => (
                    Level::Info,
                    format!(
                        "{kind} done: Argo CD re-read Git for {}",
                        clean(self.last_name())
                    ),
                ),
            };
        }
        if done < self.total {
            return (
                Level::Info,
                format!("{kind} of {} apps: {done} answered…", self.total),
            );
        }
        if self.failed.is_empty() {
            return (
                Level::Info,
                format!(
                    "{kind} done: Argo CD re-read Git for all {} apps",
                    self.total
                ),
            );
        }
        let names: Vec<String> = self
            .failed
            .iter()
            .map(|(n, e)| format!("{} ({})", clean(n), clean(e)))
            .collect();
        (
            Level::Error,
            format!(
                "{kind}: {} of {} apps refreshed; failed: {}",
                self.ok,
                self.total,
                names.join(", ")
            ),
        )
    }

    fn last_name(&self) -> &str {
        self.names.first().map(String::as_str).unwrap_or("")
    }
}

impl Console {
    pub fn new(estate: Estate, settings: Settings) -> Self {
        let flash = settings.warnings.first().map(|w| {
            (
                Level::Warning,
                format!(
                    "{w} ({} warnings: :warnings lists them)",
                    settings.warnings.len()
                ),
            )
        });
        let mut c = Console {
            estate,
            screens: Vec::new(),
            settings,
            flash,
            tick: 0,
            quit: false,
            outbox: Outbox::new(),
            mutations: BTreeSet::new(),
            followed: BTreeSet::new(),
            cancelled: Vec::new(),
            now: chrono::Utc::now(),
            refreshes: Refreshes::default(),
            lag_loads: BTreeMap::new(),
            lag_asked: HashMap::new(),
            lag_queue: Vec::new(),
            lag_next: 0,
            freezes: Vec::new(),
            freeze_ticket: None,
            freeze_asked: None,
            unreacted: false,
            unreacted_relist: false,
        };
        c.ask_freezes(true);
        c.push(Box::new(BoardView::new()));
        c.ask_lag_history();
        c
    }

    /// Background warnings (an undelivered notification): kept for `:warnings`, the first
    /// shown on the flash line.
    pub fn notice(&mut self, warnings: Vec<String>) {
        self.react();
        let Some(first) = warnings.first() else {
            return;
        };
        self.flash = Some((
            Level::Warning,
            format!("{} (:warnings lists them)", clean(first)),
        ));
        self.settings.warnings.extend(warnings);
    }

    /// Pin the clock (tests and snapshots).
    pub fn set_now(&mut self, now: chrono::DateTime<chrono::Utc>) {
        self.now = now;
    }

    pub fn quit_requested(&self) -> bool {
        self.quit
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    pub fn screen_titles(&self) -> Vec<String> {
        let ctx = ctx_of(&self.estate, &self.settings, self.now, self.tick);
        self.screens.iter().map(|s| s.title(&ctx)).collect()
    }

    /// The freezes the header shows.
    pub fn freezes(&self) -> &[crate::ops::freeze::FreezeMark] {
        &self.freezes
    }

    /// Ask for the freezes open now, unless an answer is awaited or came recently.
    fn ask_freezes(&mut self, now: bool) {
        // Freezes are looked for over the estate's projects: none before the first list.
        if self.freeze_ticket.is_some() || self.estate.is_empty() {
            return;
        }
        if !now && self.freeze_asked.is_some_and(|t| t.elapsed() < FREEZE_POLL) {
            return;
        }
        self.lag_next += 1;
        let t = Ticket(LAG_TICKETS + self.lag_next);
        // The projects the estate's apps use (as `freeze::project_of` names them), once each.
        let projects: std::collections::BTreeSet<(&str, &str)> = self
            .estate
            .apps()
            .map(|e| {
                let p = &*e.board.project;
                (
                    e.id.instance.as_str(),
                    if p.is_empty() { "default" } else { p },
                )
            })
            .collect();
        let projects = projects
            .into_iter()
            .map(|(i, p)| (i.to_string(), p.to_string()))
            .collect();
        self.lag_queue.push((t, Request::Freezes { projects }));
        self.freeze_ticket = Some(t);
        self.freeze_asked = Some(std::time::Instant::now());
    }

    /// `:freeze ENV [until=TIME] REASON...` and `:unfreeze ENV [REASON...]`: the environment
    /// typed in full is the confirmation a gated unfreeze needs (as a sync's typed name).
    fn freeze_command(&mut self, head: &str, rest: &[&str]) {
        let Some((env, words)) = rest.split_first() else {
            self.flash = Some((
                Level::Warning,
                format!(
                    "usage: :{head} ENV {}",
                    if head == "freeze" {
                        "[until=2h] REASON"
                    } else {
                        "[REASON]"
                    }
                ),
            ));
            return;
        };
        let env = env.to_string();
        if head == "unfreeze" {
            let reason = words.join(" ");
            let approval = crate::ops::approval::Approval {
                named_app: env.clone(),
                reason: (!reason.trim().is_empty()).then_some(reason),
                operator: self.settings.operator.clone(),
            };
            self.outbox.request(Request::Unfreeze {
                env,
                approval: Some(approval),
            });
            return;
        }
        let mut until = None;
        let mut words: Vec<&str> = words.to_vec();
        if let Some(u) = words.first().and_then(|w| w.strip_prefix("until=")) {
            match crate::ops::freeze::parse_until(u, chrono::Utc::now()) {
                Ok(t) => until = Some(t),
                Err(e) => {
                    self.flash = Some((Level::Warning, e.replace("--until", "until=")));
                    return;
                }
            }
            words.remove(0);
        }
        let reason = words.join(" ");
        if reason.trim().is_empty() {
            self.flash = Some((
                Level::Warning,
                "usage: :freeze ENV [until=2h] REASON (the reason is shown to every operator)"
                    .into(),
            ));
            return;
        }
        self.outbox.request(Request::Freeze { env, reason, until });
    }

    /// `:confirm-prune APP [REASON...]`: the app's name typed in full is the confirmation a
    /// gated environment needs, as for a sync.
    fn confirm_prune(&mut self, rest: &[&str]) {
        let Some((name, words)) = rest.split_first() else {
            self.flash = Some((Level::Warning, "usage: :confirm-prune APP [REASON]".into()));
            return;
        };
        let id = match self.estate.find_by_name(name).as_slice() {
            [one] => one.id.clone(),
            [] => {
                self.flash = Some((
                    Level::Warning,
                    format!("no application named `{}`", clean(name)),
                ));
                return;
            }
            _ => {
                self.flash = Some((
                    Level::Warning,
                    format!("`{}` names several applications", clean(name)),
                ));
                return;
            }
        };
        let reason = words.join(" ");
        let approval = crate::ops::approval::Approval {
            named_app: name.to_string(),
            reason: (!reason.trim().is_empty()).then_some(reason),
            operator: self.settings.operator.clone(),
        };
        self.outbox.request(Request::ConfirmPrune {
            app: id,
            approval: Some(approval),
        });
    }

    pub fn flash(&self) -> Option<&(Level, String)> {
        self.flash.as_ref()
    }

    /// Push a screen (opening it first).
    pub fn push(&mut self, mut view: Box<dyn View>) {
        let ctx = ctx_of(&self.estate, &self.settings, self.now, self.tick);
        view.open(&ctx, &mut self.outbox);
        self.screens.push(view);
        self.settle();
    }

    fn pop(&mut self) {
        if self.screens.len() > 1
            && let Some(v) = self.screens.pop()
        {
            self.cancelled.extend(
                v.tickets()
                    .into_iter()
                    .filter(|t| !self.mutations.contains(t)),
            );
        }
    }

    /// Apply queued effects until none are left.
    fn settle(&mut self) {
        let mut guard = 0;
        while !self.outbox.effects.is_empty() && guard < 16 {
            guard += 1;
            let effects = std::mem::take(&mut self.outbox.effects);
            for e in effects {
                match e {
                    Effect::Push(v) => {
                        let ctx = ctx_of(&self.estate, &self.settings, self.now, self.tick);
                        let mut v = v;
                        v.open(&ctx, &mut self.outbox);
                        self.screens.push(v);
                    }
                    Effect::Pop => self.pop(),
                    Effect::Home(v) => {
                        while self.screens.len() > 1 {
                            self.pop();
                        }
                        self.screens.clear();
                        let ctx = ctx_of(&self.estate, &self.settings, self.now, self.tick);
                        let mut v = v;
                        v.open(&ctx, &mut self.outbox);
                        self.screens.push(v);
                    }
                    Effect::Flash(level, text) => self.flash = Some((level, text)),
                    Effect::Command(cmd) => self.run_command(&cmd),
                    Effect::Quit => self.quit = true,
                }
            }
        }
    }

    /// Run a palette command (as if typed after `:`).
    pub fn command(&mut self, cmd: &str) {
        self.react();
        self.run_command(cmd);
        self.settle();
    }

    fn run_command(&mut self, cmd: &str) {
        let mut words = cmd.split_whitespace();
        let head = words.next().unwrap_or("");
        if head == "confirm-prune" {
            let rest: Vec<&str> = words.collect();
            self.confirm_prune(&rest);
            return;
        }
        if head == "freeze" || head == "unfreeze" {
            let rest: Vec<&str> = words.collect();
            self.freeze_command(head, &rest);
            return;
        }
        let arg = words.next();
        match (head, arg) {
            ("", _) => {}
            ("board", _) => self
                .outbox
                .effects
                .push(Effect::Home(Box::new(BoardView::new()))),
            ("apps", _) => self.go_to(Box::new(AppsView::new(None))),
            // Four-eyes requests first while any wait; else the apps that need approval.
            ("pending", _) if self.has_requests() => {
                self.go_to(Box::new(super::views::pending::PendingView::new()))
            }
            ("pending", _) => self.go_to(Box::new(AppsView::waiting())),
            ("requests", _) => self.go_to(Box::new(super::views::pending::PendingView::new())),
            ("env", Some(env)) => self.go_to(Box::new(AppsView::new(Some(env.to_string())))),
            ("env", None) => self.flash = Some((Level::Warning, "usage: :env NAME".into())),
            ("builds", _) => self.go_to(Box::new(BuildsView::new(None))),
            ("metrics", span) => match super::views::metrics::MetricsView::new(span) {
                Ok(v) => self.go_to(Box::new(v)),
                Err(e) => {
                    self.flash = Some((Level::Warning, format!("usage: :metrics [30d]: {e}")))
                }
            },
            ("warnings", _) => self.go_to(Box::new(super::views::warnings::WarningsView::new(
                self.settings.warnings.clone(),
            ))),
            ("ctx", _) => {
                let states: Vec<String> = self
                    .estate
                    .connections
                    .iter()
                    .map(|(k, v)| format!("{}: {}", clean(k), connection_words_full(v)))
                    .collect();
                let text = if states.is_empty() {
                    format!(
                        "{} (no connection reported yet)",
                        self.settings.source_label
                    )
                } else {
                    states.join(" · ")
                };
                self.flash = Some((Level::Info, text));
            }
            ("theme", Some(name)) => {
                match Theme::load(
                    name,
                    self.settings.themes_dir.as_deref(),
                    self.settings.depth,
                ) {
                    Ok(t) => {
                        self.flash = Some((Level::Info, format!("theme {}", t.name)));
                        self.settings.theme = t;
                    }
                    Err(e) => self.flash = Some((Level::Error, e.to_string())),
                }
            }
            ("theme", None) => {
                let names: Vec<&str> = super::theme::built_in_names().collect();
                self.flash = Some((Level::Info, format!("themes: {}", names.join(", "))));
            }
            ("refresh" | "refresh!", target) => self.refresh(head == "refresh!", target),
            ("q" | "quit" | "q!", _) => self.quit = true,
            (other, _) => {
                self.flash = Some((
                    Level::Warning,
                    format!("unknown command `{}` (? lists them)", clean(other)),
                ))
            }
        }
        // Commands may queue pushes; they are applied by the caller's settle loop.
    }

    /// Whether a standing four-eyes request waits anywhere in the estate.
    fn has_requests(&self) -> bool {
        let ctx = ctx_of(&self.estate, &self.settings, self.now, self.tick);
        super::views::pending::PendingView::any(&ctx)
    }

    /// A palette command goes to a screen: it replaces what is above the board instead of
    /// stacking (`board › apps prod`, then `:apps nosuch` gives `board › apps nosuch`).
    fn go_to(&mut self, view: Box<dyn View>) {
        for _ in 1..self.screens.len() {
            self.outbox.effects.push(Effect::Pop);
        }
        self.outbox.push(view);
    }

    /// `:refresh` / `:refresh!`: the app under the cursor (or the one the screen is
    /// about); `:refresh all`: every app. The flash line follows the answers.
    fn refresh(&mut self, hard: bool, target: Option<&str>) {
        let ctx = ctx_of(&self.estate, &self.settings, self.now, self.tick);
        let ids: Vec<crate::model::AppId> = match target {
            Some("all") => {
                let mut v: Vec<_> = self.estate.apps().map(|e| e.id.clone()).collect();
                v.sort();
                v
            }
            Some(name) => match self.estate.find_by_name(name).as_slice() {
                [one] => vec![one.id.clone()],
                [] => {
                    self.flash = Some((
                        Level::Warning,
                        format!("no application named `{}`", clean(name)),
                    ));
                    return;
                }
                _ => {
                    self.flash = Some((
                        Level::Warning,
                        format!(
                            "`{}` names several applications: open one and press Ctrl-r",
                            clean(name)
                        ),
                    ));
                    return;
                }
            },
            None => match self
                .screens
                .iter()
                .rev()
                .filter(|s| !s.overlay())
                .find_map(|s| s.selected_app(&ctx))
            {
                Some(id) => vec![id],
                None => {
                    self.flash = Some((
                        Level::Warning,
                        "no application under the cursor: move to one, or :refresh all".into(),
                    ));
                    return;
                }
            },
        };
        if ids.is_empty() {
            self.flash = Some((Level::Warning, "no applications to refresh".into()));
            return;
        }
        let mut round = Refreshes {
            hard,
            total: ids.len(),
            ..Default::default()
        };
        for id in ids {
            round.names.push(id.name.clone());
            let t = self.outbox.request(super::request::Request::Refresh {
                app: Some(id.clone()),
                hard,
            });
            round.pending.insert(t, id.name);
        }
        self.flash = Some(round.words());
        self.refreshes = round;
    }

    /// Handle one key. Returns true when something may look different.
    pub fn key(&mut self, key: KeyEvent) -> bool {
        if key.kind != KeyEventKind::Press {
            return false;
        }
        self.react();
        self.flash = None;
        let ctx = ctx_of(&self.estate, &self.settings, self.now, self.tick);
        let depth = self.screens.len();
        let Some(top) = self.screens.last_mut() else {
            return false;
        };
        let before = top.tickets();
        let consumed = top.on_key(&key, &ctx, &mut self.outbox);
        if !consumed && let Some(intent) = self.settings.keymap.intent(&key) {
            let typing = top.typing();
            match intent {
                Intent::Help if !typing => {
                    let h = HelpView::new(top.title(&ctx), top.keys(&ctx)).with_about(top.about());
                    self.outbox.push(Box::new(h));
                }
                Intent::Palette if !typing => {
                    let p = PaletteView::new(top.title(&ctx));
                    self.outbox.push(Box::new(p));
                }
                Intent::Quit if depth == 1 => self.quit = true,
                Intent::Quit if !typing => self.outbox.effects.push(Effect::Pop),
                Intent::Back if depth == 1 => {}
                _ => top.on_intent(intent, &ctx, &mut self.outbox),
            }
        }
        if let Some(top) = self.screens.last() {
            let after = top.tickets();
            self.cancelled.extend(
                before
                    .into_iter()
                    .filter(|t| !after.contains(t) && !self.mutations.contains(t)),
            );
        }
        self.settle();
        true
    }

    /// Apply a batch of source updates, then let screens react once.
    pub fn apply(&mut self, updates: impl IntoIterator<Item = Update>) {
        self.fold(updates);
        self.react();
    }

    /// Fold a batch of source updates into the estate; the screens react at the next
    /// [`Console::react`] (the loop's next frame or key), not once per batch: a live stream
    /// delivers a few updates per turn of the loop, and at 50,000 apps a screen's reaction
    /// (the applications list orders every app) costs far more than folding a few.
    /// True when a whole list was among them.
    pub fn fold(&mut self, updates: impl IntoIterator<Item = Update>) -> bool {
        let mut relisted = false;
        let mut detailed = false;
        for u in updates {
            relisted |= matches!(
                u,
                Update::Resync { .. } | Update::Summary { last: true, .. }
            );
            detailed |= matches!(u, Update::Details { .. });
            self.estate.apply(u);
        }
        // A list packed apart still holds its decoded apps: what it frees goes back when it
        // is packed ([`Console::packed`]).
        if (relisted && !self.estate.packing()) || (detailed && self.estate.incomplete() == 0) {
            // A relist (or the last of the whole apps) decoded the whole estate once more;
            // hand what that freed back.
            crate::memory::give_back();
        }
        if relisted {
            tracing::debug!(at_ms = %crate::logging::uptime_ms(), cpu_ms = %crate::logging::cpu_ms(), "a whole list folded");
        }
        self.unreacted = true;
        self.unreacted_relist |= relisted;
        relisted
    }

    /// A large list packed on its own thread (see [`Estate::pack_later`]): nothing on
    /// screen changes, the entries only hold their apps packed from now on.
    pub fn packed(&mut self, done: crate::ops::estate::PackedList) {
        self.estate.packed(done);
        tracing::debug!(at_ms = %crate::logging::uptime_ms(), cpu_ms = %crate::logging::cpu_ms(), "a whole list packed");
    }

    /// Let the screens react to what [`Console::fold`] brought, once. Every entry point
    /// that reads a screen (a key, an answer, a command, a tick) reacts first; the loop
    /// reacts before it draws.
    pub fn react(&mut self) {
        if !std::mem::take(&mut self.unreacted) {
            return;
        }
        let relisted = std::mem::take(&mut self.unreacted_relist);
        // A relist may bring projects not looked at yet: look now rather than at the poll.
        self.ask_freezes(relisted);
        let ctx = ctx_of(&self.estate, &self.settings, self.now, self.tick);
        for s in self.screens.iter_mut() {
            s.on_estate(&ctx, &mut self.outbox);
        }
        self.settle();
    }

    /// `«` needs the images each history entry of a cell deployed (from Git) wherever the
    /// environment before runs other images. Only cells a screen drew ask (the estate notes
    /// them while drawing), once per app and history length: a large estate reads Git for
    /// what is on screen, and scrolling asks for the rest as it comes into view.
    fn ask_lag_history(&mut self) {
        let wanted = self.estate.take_lag_wanted();
        for id in wanted {
            // An app whose history has not arrived yet is asked for once it has.
            let Some(len) = self
                .estate
                .get(&id)
                .filter(|e| e.board.complete)
                .map(|e| e.board.history_len)
            else {
                continue;
            };
            if self.lag_asked.get(&id) == Some(&len) {
                continue;
            }
            // Tickets from a range of their own, far from the screens' counter.
            self.lag_next += 1;
            let t = Ticket(LAG_TICKETS + self.lag_next);
            self.lag_queue
                .push((t, Request::HistoryImages { app: id.clone() }));
            self.lag_loads.insert(t, id.clone());
            self.lag_asked.insert(id, len);
        }
    }

    /// Hand an answer to the screens; unclaimed errors and acknowledgements become the
    /// flash line (a bulk sync's answers belong to no screen).
    pub fn respond(&mut self, resp: Response) -> bool {
        self.react();
        if self.freeze_ticket == Some(resp.ticket) {
            self.freeze_ticket = None;
            match resp.result {
                Ok(Payload::Freezes(f)) => self.freezes = f,
                Ok(_) => {}
                // Keep what was known; the next ask may do better.
                Err(e) => tracing::debug!("freezes: {e}"),
            }
            return true;
        }
        let freeze_change = self.mutations.contains(&resp.ticket);
        if let Some(id) = self.lag_loads.remove(&resp.ticket) {
            // Not known (no Git, an unreadable revision) stays unknown: no `«` claimed.
            if let Ok(Payload::HistoryImages(images)) = resp.result {
                self.estate.set_history_images(&id, images);
            }
            self.settle();
            return true;
        }
        let ctx = ctx_of(&self.estate, &self.settings, self.now, self.tick);
        let mut claimed = false;
        for s in self.screens.iter_mut().rev() {
            if s.on_response(&resp, &ctx, &mut self.outbox) {
                claimed = true;
                break;
            }
        }
        // Only answers to mutations nobody watches (a bulk sync) are worth a flash; a late
        // answer to a superseded load is dropped silently.
        if !claimed && self.mutations.contains(&resp.ticket) {
            match &resp.result {
                Err(e) => self.flash = Some((Level::Error, clean(e).into_owned())),
                Ok(Payload::Accepted(m)) => self.flash = Some((Level::Info, clean(m).into_owned())),
                Ok(Payload::Requested(m)) => {
                    self.flash = Some((Level::Warning, clean(m).into_owned()))
                }
                Ok(_) => {}
            }
        }
        // The follower's last word, when no screen took it (closed, or a sync sent from
        // the board): ✓ or ✗ with the reason.
        if !self.mutations.contains(&resp.ticket) && self.followed.remove(&resp.ticket) && !claimed
        {
            match &resp.result {
                Err(e) => self.flash = Some((Level::Error, format!("✗ {}", clean(e)))),
                Ok(Payload::Accepted(m)) => self.flash = Some((Level::Info, clean(m).into_owned())),
                Ok(_) => {}
            }
        }
        if claimed && !self.mutations.contains(&resp.ticket) {
            self.followed.remove(&resp.ticket);
        }
        if self.mutations.contains(&resp.ticket) {
            self.mutations.remove(&resp.ticket);
            if resp.result.is_err() {
                self.followed.remove(&resp.ticket);
            }
        }
        if freeze_change {
            // A freeze, an unfreeze or another change: the header reads the freezes again.
            self.ask_freezes(true);
        }
        if let Some(name) = self.refreshes.pending.remove(&resp.ticket) {
            match &resp.result {
                Err(e) => self.refreshes.failed.push((name, e.clone())),
                Ok(_) => self.refreshes.ok += 1,
            }
            self.flash = Some(self.refreshes.words());
        }
        self.settle();
        true
    }

    /// The board's own background loads (history images for `«`), with their apps attached;
    /// the loop runs them like the screens' requests.
    pub fn take_background_requests(&mut self) -> Vec<Outgoing> {
        self.ask_lag_history();
        std::mem::take(&mut self.lag_queue)
            .into_iter()
            .map(|(ticket, request)| {
                let app = request
                    .app()
                    .and_then(|id| self.estate.get(id))
                    .map(|e| e.app());
                Outgoing {
                    ticket,
                    request,
                    app,
                }
            })
            .collect()
    }

    /// Requests queued by screens, with their apps attached; mutations are refused here in
    /// read-only mode whatever a screen did.
    pub fn take_requests(&mut self) -> Vec<Outgoing> {
        let reqs = std::mem::take(&mut self.outbox.requests);
        let mut out = Vec::with_capacity(reqs.len());
        for (ticket, request) in reqs {
            if request.mutates() {
                if self.settings.read_only {
                    self.flash = Some((Level::Warning, "read-only mode: change refused".into()));
                    continue;
                }
                self.mutations.insert(ticket);
                if matches!(request, Request::Sync { .. } | Request::Rollback { .. }) {
                    self.followed.insert(ticket);
                }
            }
            let app = request
                .app()
                .and_then(|id| self.estate.get(id))
                .map(|e| e.app());
            out.push(Outgoing {
                ticket,
                request,
                app,
            });
        }
        out
    }

    /// Tickets whose tasks should stop.
    pub fn take_cancelled(&mut self) -> Vec<Ticket> {
        std::mem::take(&mut self.cancelled)
    }

    /// Whether anything is in progress (spinner ticks run only then).
    pub fn busy(&self) -> bool {
        let ctx = ctx_of(&self.estate, &self.settings, self.now, self.tick);
        self.screens.last().is_some_and(|s| s.busy(&ctx))
    }

    pub fn tick(&mut self) {
        self.react();
        self.tick = self.tick.wrapping_add(1);
        self.now = chrono::Utc::now();
        self.ask_freezes(false);
    }

    /// Draw one frame. Read-only.
    pub fn render(&self, frame: &mut Frame) {
        let area = frame.area();
        let theme = &self.settings.theme;
        frame.render_widget(Paragraph::new("").style(widgets::base(theme)), area);
        if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
            let msg = vec![
                Line::from(widgets::styled(theme, Role::Warning, "terminal too small")),
                Line::from(widgets::text(
                    theme,
                    format!(
                        "{}x{}: shipdeck needs at least {MIN_WIDTH}x{MIN_HEIGHT}",
                        area.width, area.height
                    ),
                )),
                Line::from(widgets::muted(theme, "enlarge the window, or q to quit")),
            ];
            frame.render_widget(Paragraph::new(msg), area);
            return;
        }
        let ctx = ctx_of(&self.estate, &self.settings, self.now, self.tick);
        // An open freeze takes a second header line, in the danger colour.
        let header_rows = if self.freezes.is_empty() { 1 } else { 2 };
        let [header, body, flash, footer] = Layout::vertical([
            Constraint::Length(header_rows),
            Constraint::Min(1),
            Constraint::Length(1),
            Constraint::Length(1),
        ])
        .areas(area);
        let header = if let Some(first) = self.freezes.first() {
            let [top, line] =
                Layout::vertical([Constraint::Length(1), Constraint::Length(1)]).areas(header);
            let mut text = clean(&first.line()).into_owned();
            if self.freezes.len() > 1 {
                text.push_str(&format!(
                    "  (+{} more: shipdeck freeze --list)",
                    self.freezes.len() - 1
                ));
            }
            frame.render_widget(
                Paragraph::new(Span::styled(
                    fit(&format!("❄ {text}"), line.width as usize),
                    theme
                        .style(Role::Danger)
                        .add_modifier(ratatui::style::Modifier::BOLD),
                )),
                line,
            );
            top
        } else {
            header
        };
        self.render_header(&ctx, frame, header);
        if let Some(top) = self.screens.last() {
            if top.overlay()
                && self.screens.len() >= 2
                && let Some(below) = self.screens.get(self.screens.len() - 2)
            {
                below.render(&ctx, frame, body);
            }
            top.render(&ctx, frame, body);
        }
        // A source that failed says why and what to do on the flash line, whole, when
        // nothing else is flashed (the header has room for a few words only).
        let failed = self
            .estate
            .connections
            .iter()
            .find_map(|(name, c)| match c {
                Connection::Failed { reason } => {
                    Some((Level::Error, format!("{}: {}", clean(name), clean(reason))))
                }
                _ => None,
            });
        let shown = match (&self.flash, &failed) {
            (Some((Level::Info, _)), Some(f)) => Some(f),
            (Some(f), _) => Some(f),
            (None, f) => f.as_ref(),
        };
        if let Some((level, text)) = shown {
            let role = match level {
                Level::Info => Role::Accent,
                Level::Warning => Role::Warning,
                Level::Error => Role::Danger,
            };
            frame.render_widget(
                Paragraph::new(Span::styled(
                    fit(text, flash.width as usize),
                    theme.style(role),
                )),
                flash,
            );
        }
        self.render_footer(&ctx, frame, footer);
    }

    fn render_header(&self, ctx: &Ctx, frame: &mut Frame, area: Rect) {
        let theme = ctx.theme;
        let mut spans = vec![Span::styled("shipdeck", theme.style(Role::Accent))];
        let titles: Vec<String> = self
            .screens
            .iter()
            .filter(|s| !s.overlay())
            .map(|s| s.title(ctx))
            .collect();
        // The trail gets what the connection states leave, but never less than half the
        // line (the current screen is what the operator reads first).
        let right: usize = self
            .estate
            .connections
            .iter()
            .map(|(name, state)| {
                clean(name).chars().count() + connection_words(state).chars().count() + 4
            })
            .sum::<usize>()
            + 12
            + if self.settings.read_only { 13 } else { 0 };
        let width = area.width as usize;
        let budget = width.saturating_sub(8 + 3 + 3 + right).max(width / 2);
        spans.push(widgets::muted(
            theme,
            format!(" › {}", widgets::breadcrumb(&titles, budget)),
        ));
        spans.push(Span::raw("   "));
        if self.estate.connections.is_empty() {
            spans.push(widgets::muted(
                theme,
                format!("◌ {} connecting…", clean(&self.settings.source_label)),
            ));
        }
        for (name, state) in &self.estate.connections {
            let (glyph, role) = match state {
                Connection::Connected => ("●", Role::Healthy),
                Connection::Connecting => ("◌", Role::Progressing),
                Connection::Reconnecting { .. } => ("◔", Role::Warning),
                Connection::Failed { .. } => ("✗", Role::Danger),
            };
            spans.push(Span::styled(
                format!("{glyph} {} {}  ", clean(name), connection_words(state)),
                theme.style(role),
            ));
        }
        spans.push(widgets::muted(theme, format!("{} apps", self.estate.len())));
        let pending = self.estate.incomplete();
        if pending > 0 {
            // The board is drawn from Argo CD's list; history arrives with the whole list.
            spans.push(Span::styled(
                format!(" · reading the history of {pending}"),
                theme.style(Role::Progressing),
            ));
        }
        // Who the audit log and Argo CD's initiatedBy name (the same in every front end).
        spans.push(widgets::muted(
            theme,
            format!("  as {}", clean(&self.settings.operator)),
        ));
        if self.settings.read_only {
            spans.push(Span::raw("  "));
            spans.push(Span::styled(
                " READ-ONLY ",
                theme
                    .style(Role::Warning)
                    .add_modifier(ratatui::style::Modifier::REVERSED),
            ));
        }
        // Keep READ-ONLY visible: cut the middle if the line is too long.
        let total = widgets::spans_width(&spans);
        if total > area.width as usize && self.settings.read_only && spans.len() > 3 {
            let ro = spans.split_off(spans.len() - 2);
            let room = (area.width as usize).saturating_sub(widgets::spans_width(&ro));
            let mut kept = Vec::new();
            let mut used = 0;
            for s in spans {
                let w = s.width();
                if used + w > room {
                    kept.push(Span::styled(
                        fit(&s.content, room.saturating_sub(used)),
                        s.style,
                    ));
                    break;
                }
                used += w;
                kept.push(s);
            }
            kept.extend(ro);
            spans = kept;
        }
        frame.render_widget(Paragraph::new(Line::from(spans)), area);
    }

    fn render_footer(&self, ctx: &Ctx, frame: &mut Frame, area: Rect) {
        let Some(top) = self.screens.last() else {
            return;
        };
        let keymap = &self.settings.keymap;
        let items: Vec<(String, String)> = if top.typing() {
            let raw = top.typing_keys(ctx);
            if raw.is_empty() {
                top.keys(ctx)
                    .into_iter()
                    .filter_map(|(i, l)| Some((keymap.non_typing_key_for(i)?, l.to_string())))
                    .collect()
            } else {
                raw.into_iter()
                    .map(|(k, l)| (k.to_string(), l.to_string()))
                    .collect()
            }
        } else {
            let mut keys = top.keys(ctx);
            keys.push((Intent::Help, "help"));
            // Left and Right are a pair wherever one moves: `h/l env`.
            keys.into_iter()
                .map(|(i, l)| match i {
                    // A directional label ("prev resource") belongs to its own key only.
                    Intent::Left | Intent::Right if !l.contains("prev") && !l.contains("next") => (
                        format!(
                            "{}/{}",
                            keymap.key_for(Intent::Left),
                            keymap.key_for(Intent::Right)
                        ),
                        l.to_string(),
                    ),
                    _ => (keymap.key_for(i), l.to_string()),
                })
                .collect()
        };
        let line = widgets::footer(ctx.theme, &items, area.width as usize, !top.typing());
        frame.render_widget(Paragraph::new(line), area);
    }
}

fn ctx_of<'a>(
    estate: &'a Estate,
    settings: &'a Settings,
    now: chrono::DateTime<chrono::Utc>,
    tick: u64,
) -> Ctx<'a> {
    Ctx {
        estate,
        theme: &settings.theme,
        keymap: &settings.keymap,
        read_only: settings.read_only,
        operator: &settings.operator,
        now,
        tick,
        policies: &settings.policies,
    }
}

/// A connection state with the whole reason (it carries what to do, e.g. which login to
/// run), for `:ctx`.
pub fn connection_words_full(c: &Connection) -> String {
    match c {
        Connection::Reconnecting { reason, since } => {
            format!("reconnecting since {} ({})", clean(since), clean(reason))
        }
        Connection::Failed { reason } => format!("failed: {}", clean(reason)),
        other => connection_words(other),
    }
}

/// A connection state in words, with its age when stale.
pub fn connection_words(c: &Connection) -> String {
    match c {
        Connection::Connecting => "connecting".into(),
        Connection::Connected => "connected".into(),
        Connection::Reconnecting { reason, since } => {
            format!(
                "reconnecting since {} ({})",
                clean(since),
                fit(&clean(reason), 40)
            )
        }
        Connection::Failed { reason } => format!("failed: {}", fit(&clean(reason), 60)),
    }
}
