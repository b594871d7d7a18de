//! The contract every screen keeps: draw read-only from a [`Ctx`], turn intents into
//! requests and effects through an [`Outbox`], take tagged [`Response`]s. A screen never
//! performs I/O, never holds a lock and never sees another screen.

use super::keymap::{Intent, Keymap};
use super::request::{Request, Response, Ticket};
use super::theme::Theme;
use crate::model::{AppId, ApprovalPolicy, Environment};
use crate::ops::estate::{AppEntry, Estate};
use crossterm::event::KeyEvent;
use ratatui::Frame;
use ratatui::layout::Rect;

/// Everything a screen may read while drawing or deciding.
pub struct Ctx<'a> {
    pub estate: &'a Estate,
    pub theme: &'a Theme,
    pub keymap: &'a Keymap,
    pub read_only: bool,
    /// Who the operator is (recorded in approvals and sent as `initiatedBy`).
    pub operator: &'a str,
    pub now: chrono::DateTime<chrono::Utc>,
    /// Advances while something is in progress; screens use it for spinners.
    pub tick: u64,
    pub policies: &'a crate::ops::policy::Policies,
}

impl Ctx<'_> {
    pub fn app(&self, id: &AppId) -> Option<&AppEntry> {
        self.estate.get(id)
    }

    /// The environment's approval policy (config over the default: prod requires one).
    pub fn policy(&self, env: &Environment) -> ApprovalPolicy {
        self.policies.for_env(env).approval
    }

    pub fn spinner(&self) -> &'static str {
        const FRAMES: [&str; 4] = ["|", "/", "-", "\\"];
        FRAMES[(self.tick % 4) as usize]
    }
}

/// What a view wants from the world, as data: requests get tickets; effects change the
/// screen stack or the console.
#[derive(Default)]
pub struct Outbox {
    next_ticket: u64,
    pub requests: Vec<(Ticket, Request)>,
    pub effects: Vec<Effect>,
}

impl Outbox {
    pub fn new() -> Self {
        Outbox {
            next_ticket: 1,
            ..Default::default()
        }
    }

    /// Queue a request and return the ticket its answer will carry.
    pub fn request(&mut self, req: Request) -> Ticket {
        let t = Ticket(self.next_ticket);
        self.next_ticket += 1;
        self.requests.push((t, req));
        t
    }

    pub fn push(&mut self, view: Box<dyn View>) {
        self.effects.push(Effect::Push(view));
    }

    pub fn pop(&mut self) {
        self.effects.push(Effect::Pop);
    }

    pub fn flash(&mut self, level: Level, text: impl Into<String>) {
        self.effects.push(Effect::Flash(level, text.into()));
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warning,
    Error,
}

pub enum Effect {
    Push(Box<dyn View>),
    Pop,
    /// Replace the whole stack with one home screen (`:board`, `:apps`).
    Home(Box<dyn View>),
    Flash(Level, String),
    /// A palette command to run (`board`, `theme light`, ...).
    Command(String),
    Quit,
}

/// A value a screen waits for.
#[derive(Debug, Clone, Default)]
pub enum Loadable<T> {
    #[default]
    Idle,
    Loading(Ticket),
    Ready(T),
    Failed(String),
}

impl<T> Loadable<T> {
    /// Take a response if it answers the request this value waits for (latest request
    /// wins: a late answer to an older request is dropped).
    pub fn accept(&mut self, ticket: Ticket, result: Result<T, String>) -> bool {
        match self {
            Loadable::Loading(t) if *t == ticket => {
                *self = match result {
                    Ok(v) => Loadable::Ready(v),
                    Err(e) => Loadable::Failed(e),
                };
                true
            }
            _ => false,
        }
    }

    pub fn ready(&self) -> Option<&T> {
        match self {
            Loadable::Ready(v) => Some(v),
            _ => None,
        }
    }

    pub fn is_loading(&self) -> bool {
        matches!(self, Loadable::Loading(_))
    }

    pub fn ticket(&self) -> Option<Ticket> {
        match self {
            Loadable::Loading(t) => Some(*t),
            _ => None,
        }
    }
}

/// One screen of the console.
pub trait View {
    /// Short name for the breadcrumb ("board", "diff event-ingestion-prod").
    fn title(&self, ctx: &Ctx) -> String;

    fn render(&self, ctx: &Ctx, frame: &mut Frame, area: Rect);

    /// Called once when the view is pushed, to send its first requests.
    fn open(&mut self, _ctx: &Ctx, _out: &mut Outbox) {}

    /// A key the view may want raw (text fields). Return true when consumed; then the
    /// keymap is not asked.
    fn on_key(&mut self, _key: &KeyEvent, _ctx: &Ctx, _out: &mut Outbox) -> bool {
        false
    }

    fn on_intent(&mut self, intent: Intent, ctx: &Ctx, out: &mut Outbox);

    /// An answer arrived; return true when it changed what is drawn.
    fn on_response(&mut self, _resp: &Response, _ctx: &Ctx, _out: &mut Outbox) -> bool {
        false
    }

    /// The estate changed (after a drained batch of updates, before drawing).
    fn on_estate(&mut self, _ctx: &Ctx, _out: &mut Outbox) {}

    /// Tickets this view still waits for or streams from; the loop cancels the rest.
    fn tickets(&self) -> Vec<Ticket> {
        Vec::new()
    }

    /// Something is in progress (spinner ticks run only then).
    fn busy(&self, _ctx: &Ctx) -> bool {
        false
    }

    /// Bindings that work here, for the footer and the help screen.
    fn keys(&self, ctx: &Ctx) -> Vec<(Intent, &'static str)>;

    /// What the help screen says about this screen beyond its keys (how its figures are
    /// computed), one paragraph per entry.
    fn about(&self) -> Vec<String> {
        Vec::new()
    }

    /// Whether the view is taking text right now (palette and `q` are then plain letters).
    fn typing(&self) -> bool {
        false
    }

    /// While typing, the keys the text field itself takes (key label, what it does): the
    /// footer shows only these then, since letters (`?` too) type. Empty: the footer
    /// shows the view's keys that are not plain characters.
    fn typing_keys(&self, _ctx: &Ctx) -> Vec<(&'static str, &'static str)> {
        Vec::new()
    }

    /// Drawn over the screen below it instead of replacing it (the palette).
    fn overlay(&self) -> bool {
        false
    }

    /// The application under the cursor, or the one the screen is about (`:refresh`).
    fn selected_app(&self, _ctx: &Ctx) -> Option<AppId> {
        None
    }
}
