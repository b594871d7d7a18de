//! Notifications: a fan-out of the audit log to webhooks (`[[notify]]` in the config).
//!
//! Every audit record an action appends ([`crate::ops::audit::AuditLog::append`]) is mapped
//! to an [`Event`] ([`event_of`]); each configured webhook that wants that event gets one
//! message: Slack's incoming-webhook JSON (`text` + `blocks`) or shipdeck's own JSON object
//! ([`Message`], documented in the README). So every action notifies, present and future,
//! without calling this module.
//!
//! Sending never blocks or fails the action: messages go into a bounded queue served by one
//! background thread (its own runtime, so it outlives the caller's), which retries a failed
//! delivery (connection error, timeout, 5xx, 408, 429) with backoff, then gives up and
//! records a warning (logged, and shown by the console and by headless commands on exit).
//! A full queue drops the message with a warning. Headless commands call [`flush_all`]
//! after printing their result: a short bounded wait, undelivered ones become warnings on
//! stderr, never a failure exit.
//!
//! A webhook URL is a secret (Slack's path is the credential): it is never logged, never
//! shown; messages name the webhook by its `name` or its scheme and host only.

use super::audit::AuditRecord;
use crate::config::{ConfigError, NotifyConfig};
use crate::model::text::sanitize;
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

/// Webhook kinds `kind = ...` accepts.
pub const KINDS: &[&str] = &["slack", "json"];
/// Event names `events = [...]` accepts.
pub const EVENTS: &[&str] = &[
    "requested",
    "approved",
    "synced",
    "rolled-back",
    "failed",
    "frozen",
    "unfrozen",
    "prune-confirmed",
];
/// The `schema` of the JSON kind's object; bumped only on an incompatible change.
pub const SCHEMA: &str = "shipdeck.notification/v1";
/// How long headless commands wait for undelivered notifications before they exit.
pub const EXIT_FLUSH: Duration = Duration::from_secs(5);
/// Messages waiting to be sent, at most.
pub const QUEUE: usize = 64;
/// Warnings kept for the console / exit report, at most.
const MAX_WARNINGS: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Event {
    Requested,
    Approved,
    Synced,
    RolledBack,
    Failed,
    Frozen,
    Unfrozen,
    PruneConfirmed,
}

impl Event {
    pub fn parse(s: &str) -> Option<Event> {
        Some(match s {
            "requested" => Event::Requested,
            "approved" => Event::Approved,
            "synced" => Event::Synced,
            "rolled-back" => Event::RolledBack,
            "failed" => Event::Failed,
            "frozen" => Event::Frozen,
            "unfrozen" => Event::Unfrozen,
            "prune-confirmed" => Event::PruneConfirmed,
            _ => return None,
        })
    }

    pub fn label(self) -> &'static str {
        match self {
            Event::Requested => "requested",
            Event::Approved => "approved",
            Event::Synced => "synced",
            Event::RolledBack => "rolled-back",
            Event::Failed => "failed",
            Event::Frozen => "frozen",
            Event::Unfrozen => "unfrozen",
            Event::PruneConfirmed => "prune-confirmed",
        }
    }

    fn emoji(self) -> &'static str {
        match self {
            Event::Requested => ":raised_hand:",
            Event::Approved => ":ballot_box_with_check:",
            Event::Synced => ":white_check_mark:",
            Event::RolledBack => ":rewind:",
            Event::Failed => ":x:",
            Event::Frozen => ":snowflake:",
            Event::Unfrozen => ":sunny:",
            Event::PruneConfirmed => ":wastebasket:",
        }
    }
}

/// The event an audit record is, if any: `request`/`requested` -> requested,
/// `approve`/`approved` -> approved, `sync`/`succeeded` -> synced, `rollback`/`succeeded`
/// -> rolled-back, `freeze`/`succeeded` -> frozen, `unfreeze`/`succeeded` -> unfrozen,
/// `confirm-prune`/`succeeded` -> prune-confirmed, any action `failed` or `timed-out` ->
/// failed. `started`, `refused` and dry runs notify nobody.
pub fn event_of(rec: &AuditRecord) -> Option<Event> {
    if rec.dry_run {
        return None;
    }
    Some(match (rec.action.as_str(), rec.outcome.as_str()) {
        (_, "failed" | "timed-out") => Event::Failed,
        ("request", "requested") => Event::Requested,
        ("approve", "approved") => Event::Approved,
        ("sync", "succeeded") => Event::Synced,
        ("rollback", "succeeded") => Event::RolledBack,
        ("freeze", "succeeded") => Event::Frozen,
        ("unfreeze", "succeeded") => Event::Unfrozen,
        ("confirm-prune", "succeeded") => Event::PruneConfirmed,
        _ => return None,
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Slack,
    Json,
}

/// Whether `url` is one shipdeck sends to: http or https, with a host. The error never
/// repeats the URL (it may hold a secret).
pub fn check_url(url: &str) -> Result<reqwest::Url, String> {
    let u = reqwest::Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!("scheme {:?} is not http or https", u.scheme()));
    }
    if u.host_str().is_none_or(str::is_empty) {
        return Err("the URL has no host".into());
    }
    Ok(u)
}

/// How a webhook is named in messages: its `name`, else scheme and host (never the path:
/// Slack's path is the secret).
fn label_of(name: Option<&str>, url: &reqwest::Url) -> String {
    if let Some(n) = name.filter(|n| !n.trim().is_empty()) {
        return sanitize(n).into_owned();
    }
    let host = url.host_str().unwrap_or("?");
    match url.port() {
        Some(p) => format!("{}://{host}:{p}/…", url.scheme()),
        None => format!("{}://{host}/…", url.scheme()),
    }
}

/// One webhook, resolved.
pub struct Target {
    pub label: String,
    url: String,
    pub kind: Kind,
    pub events: BTreeSet<Event>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("label", &self.label)
            .field("url", &"<secret>")
            .field("kind", &self.kind)
            .field("events", &self.events)
            .finish()
    }
}

impl Target {
    /// A webhook from config; `url_env` is read from the environment here. An unset or
    /// empty variable, or one that is not an http(s) URL, is a config error (fail closed:
    /// a notification the operator asked for must not vanish silently).
    pub fn from_config(
        n: &NotifyConfig,
        key: &str,
        file: Option<&PathBuf>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Target, ConfigError> {
        let err = |k: String, reason: String, allowed: &str| ConfigError {
            file: file.cloned().unwrap_or_else(|| PathBuf::from("<config>")),
            line: None,
            key: k,
            reason,
            allowed: allowed.into(),
        };
        let (url, key_of_url) = match (&n.url, &n.url_env) {
            (Some(u), None) => (u.clone(), format!("{key}.url")),
            (None, Some(var)) => match env(var).filter(|v| !v.trim().is_empty()) {
                Some(v) => (v.trim().to_string(), format!("{key}.url_env")),
                None => {
                    return Err(err(
                        format!("{key}.url_env"),
                        format!("the environment variable {var} is not set (or empty)"),
                        "export the webhook URL in that variable, or remove the [[notify]] entry",
                    ));
                }
            },
            _ => {
                return Err(err(
                    key.to_string(),
                    "a webhook needs exactly one of `url` and `url_env`".into(),
                    "url = \"https://...\" or url_env = \"ENV_VAR_WITH_THE_URL\"",
                ));
            }
        };
        let parsed = check_url(&url).map_err(|e| err(key_of_url, e, "an http(s) URL"))?;
        let kind = match n.kind.as_str() {
            "slack" => Kind::Slack,
            "json" => Kind::Json,
            other => {
                return Err(err(
                    format!("{key}.kind"),
                    format!("{other:?} is not a webhook kind"),
                    "\"slack\", \"json\"",
                ));
            }
        };
        let mut events = BTreeSet::new();
        for (j, e) in n.events.iter().enumerate() {
            match Event::parse(e) {
                Some(ev) => {
                    events.insert(ev);
                }
                None => {
                    return Err(err(
                        format!("{key}.events[{j}]"),
                        format!("{e:?} is not an event"),
                        &EVENTS.join(", "),
                    ));
                }
            }
        }
        Ok(Target {
            label: label_of(n.name.as_deref(), &parsed),
            url,
            kind,
            events,
        })
    }
}

/// The JSON kind's object, one per event (documented in the README; field names are
/// stable under [`SCHEMA`]). Absent values are `null`, never left out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub schema: &'static str,
    /// One of [`EVENTS`].
    pub event: &'static str,
    /// The audit action (`sync`, `rollback`, `approve`, `request`, `freeze`, ...).
    pub action: String,
    /// The audit outcome (`succeeded`, `failed`, `timed-out`, `approved`, `requested`, ...).
    pub outcome: String,
    pub app: String,
    pub environment: String,
    /// The Argo CD instance.
    pub instance: String,
    pub who: String,
    pub from_revision: Option<String>,
    pub to_revision: Option<String>,
    /// The images the app runs after a followed sync or rollback that succeeded; empty
    /// when not known (a failed one: the detail names the failing image).
    pub images: Vec<String>,
    pub reason: Option<String>,
    /// Why it failed, or other detail.
    pub detail: Option<String>,
    pub approval_id: Option<String>,
    /// RFC 3339, UTC.
    pub at: String,
}

fn clean(s: &str) -> String {
    sanitize(s).into_owned()
}

impl Message {
    pub fn of(event: Event, rec: &AuditRecord, images: &[String]) -> Message {
        Message {
            schema: SCHEMA,
            event: event.label(),
            action: clean(&rec.action),
            outcome: clean(&rec.outcome),
            app: clean(&rec.app),
            environment: clean(&rec.environment),
            instance: clean(&rec.instance),
            who: clean(&rec.who),
            from_revision: rec.from_revision.as_ref().map(|r| clean(&r.0)),
            to_revision: rec.to_revision.as_ref().map(|r| clean(&r.0)),
            images: images.iter().map(|i| clean(i)).collect(),
            reason: rec.reason.as_deref().map(clean),
            detail: rec.detail.as_deref().map(clean),
            approval_id: rec.approval_id.as_deref().map(clean),
            at: rec.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        }
    }

    /// One line for Slack's `text` (the notification and fallback).
    pub fn headline(&self) -> String {
        let rev = |r: &Option<String>| {
            r.as_deref()
                .map(|r| r.chars().take(7).collect::<String>())
                .unwrap_or_else(|| "?".into())
        };
        let what = match self.event {
            "requested" => format!("{} requested a {} of", self.who, self.action),
            "approved" => format!("{} approved", self.who),
            "synced" => format!("{} synced", self.who),
            "rolled-back" => format!("{} rolled back", self.who),
            "failed" => format!("{} by {} failed:", self.action, self.who),
            // A freeze is of an environment; its record lists the apps it covers.
            "frozen" | "unfrozen" => {
                let verb = if self.event == "frozen" {
                    "froze"
                } else {
                    "unfroze"
                };
                return format!("{} {verb} {} ({})", self.who, self.environment, self.app);
            }
            _ => format!("{} confirmed the prune of", self.who),
        };
        let revs = if self.from_revision.is_some() || self.to_revision.is_some() {
            format!(
                " ({} → {})",
                rev(&self.from_revision),
                rev(&self.to_revision)
            )
        } else {
            String::new()
        };
        format!("{what} {} in {}{revs}", self.app, self.environment)
    }

    /// Slack's incoming-webhook body: `text` (fallback and notification) and `blocks`.
    pub fn slack(&self, emoji: &str) -> serde_json::Value {
        let field = |title: &str, v: &str| serde_json::json!({"type": "mrkdwn", "text": format!("*{title}*\n{}", slack_escape(&truncate(v, 1900)))});
        let none = "—".to_string();
        let mut fields = vec![
            field("App", &self.app),
            field("Environment", &self.environment),
            field("Who", &self.who),
            field("Outcome", &self.outcome),
            field("From", self.from_revision.as_ref().unwrap_or(&none)),
            field("To", self.to_revision.as_ref().unwrap_or(&none)),
        ];
        if !self.images.is_empty() {
            fields.push(field("Image", &self.images.join("\n")));
        }
        fields.push(field("Reason", self.reason.as_ref().unwrap_or(&none)));
        let mut blocks = vec![
            serde_json::json!({
                "type": "section",
                "text": {"type": "mrkdwn", "text": format!("{emoji} {}", slack_escape(&truncate(&self.headline(), 2900)))}
            }),
            serde_json::json!({"type": "section", "fields": fields}),
        ];
        if let Some(d) = &self.detail {
            blocks.push(serde_json::json!({
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": slack_escape(&truncate(d, 2900))}]
            }));
        }
        blocks.push(serde_json::json!({
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": slack_escape(&format!("shipdeck · {} · {} · {}", self.instance, self.action, self.at))}]
        }));
        serde_json::json!({
            "text": format!("{emoji} {}", slack_escape(&self.headline())),
            "blocks": blocks,
        })
    }
}

/// Slack's three control characters, escaped as Slack asks (`&`, `<`, `>`), so a name
/// cannot become a link or a mention.
fn slack_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max).collect();
        t.push('…');
        t
    }
}

/// The body a webhook of `kind` gets for `event`.
pub fn body(kind: Kind, event: Event, rec: &AuditRecord, images: &[String]) -> Vec<u8> {
    let m = Message::of(event, rec, images);
    let v = match kind {
        Kind::Json => serde_json::to_value(&m).unwrap_or_default(),
        Kind::Slack => m.slack(event.emoji()),
    };
    serde_json::to_vec(&v).unwrap_or_default()
}

/// How deliveries are retried.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts in all (the first and the retries).
    pub attempts: u32,
    /// Wait before the first retry; doubled before each next one.
    pub backoff: Duration,
    /// Per attempt.
    pub timeout: Duration,
}

impl Default for Retry {
    fn default() -> Self {
        Retry {
            attempts: 4,
            backoff: Duration::from_millis(250),
            timeout: Duration::from_secs(3),
        }
    }
}

#[derive(Default)]
struct State {
    /// Queued or being sent.
    pending: usize,
    delivered: u64,
    /// Not yet taken by the console or the exit report.
    warnings: Vec<String>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn warn(&self, w: String) {
        tracing::warn!("{w}");
        let mut s = self.lock();
        if s.warnings.len() < MAX_WARNINGS {
            s.warnings.push(w);
        }
    }
}

struct Job {
    target: Arc<Target>,
    event: Event,
    app: String,
    body: Vec<u8>,
}

/// The sending side: cheap to clone, shared by every clone of the audit log.
#[derive(Clone)]
pub struct Notifier {
    targets: Arc<Vec<Arc<Target>>>,
    tx: SyncSender<Job>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("targets", &self.targets)
            .finish()
    }
}

/// Every notifier this process started, for [`flush_all`].
fn registry() -> &'static Mutex<Vec<Arc<Shared>>> {
    static R: OnceLock<Mutex<Vec<Arc<Shared>>>> = OnceLock::new();
    R.get_or_init(Default::default)
}

impl Notifier {
    /// The webhooks of `[[notify]]`, resolved (`url_env` read now); None when there are
    /// none (no thread is started).
    pub fn from_config(config: &crate::config::Config) -> Result<Option<Notifier>, ConfigError> {
        let mut targets = Vec::new();
        for (i, n) in config.notify.iter().enumerate() {
            targets.push(Target::from_config(
                n,
                &format!("notify[{i}]"),
                config.path.as_ref(),
                |k| std::env::var(k).ok(),
            )?);
        }
        if targets.is_empty() {
            return Ok(None);
        }
        Ok(Notifier::start(targets, Retry::default()))
    }

    /// Start the sending thread. None only if the thread cannot be started (then the
    /// reason is logged and actions go on unnotified).
    pub fn start(targets: Vec<Target>, retry: Retry) -> Option<Notifier> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(QUEUE);
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            changed: Condvar::new(),
        });
        let worker = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("shipdeck-notify".into())
            .spawn(move || serve(rx, worker, retry));
        if let Err(e) = spawned {
            tracing::warn!("notifications off: cannot start their thread ({e})");
            return None;
        }
        registry()
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(shared.clone());
        Some(Notifier {
            targets: Arc::new(targets.into_iter().map(Arc::new).collect()),
            tx,
            shared,
        })
    }

    /// Queue the record's notification for every webhook that wants its event. Never
    /// blocks: a full queue drops the message with a warning.
    pub fn notify(&self, rec: &AuditRecord, images: &[String]) {
        let Some(event) = event_of(rec) else {
            return;
        };
        for t in self.targets.iter().filter(|t| t.events.contains(&event)) {
            let job = Job {
                target: t.clone(),
                event,
                app: clean(&rec.app),
                body: body(t.kind, event, rec, images),
            };
            self.shared.lock().pending += 1;
            if let Err(e) = self.tx.try_send(job) {
                let why = match e {
                    TrySendError::Full(_) => "the queue is full",
                    TrySendError::Disconnected(_) => "the sender has stopped",
                };
                {
                    let mut s = self.shared.lock();
                    s.pending = s.pending.saturating_sub(1);
                }
                self.shared.changed.notify_all();
                self.shared.warn(format!(
                    "notification {} for {} to {} dropped: {why}",
                    event.label(),
                    clean(&rec.app),
                    t.label
                ));
            }
        }
    }

    /// Warnings not yet shown (undelivered or dropped notifications), oldest first.
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut self.shared.lock().warnings)
    }

    /// Messages delivered so far.
    pub fn delivered(&self) -> u64 {
        self.shared.lock().delivered
    }

    /// Wait up to `within` for the queue to drain; the warnings (taken) and, if some are
    /// still pending, one saying so.
    pub fn flush(&self, within: Duration) -> Vec<String> {
        flush_shared(&self.shared, Instant::now() + within)
    }
}

fn flush_shared(shared: &Shared, deadline: Instant) -> Vec<String> {
    let mut s = shared.lock();
    while s.pending > 0 {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        s = match shared.changed.wait_timeout(s, deadline - now) {
            Ok((g, _)) => g,
            Err(p) => p.into_inner().0,
        };
    }
    let mut out = std::mem::take(&mut s.warnings);
    if s.pending > 0 {
        out.push(format!(
            "{} notification(s) not delivered before exit (still being retried)",
            s.pending
        ));
    }
    out
}

/// Every notifier of the process: wait up to `within` in all for their queues, and give
/// the warnings to print. What headless commands call after printing their result.
pub fn flush_all(within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let all: Vec<Arc<Shared>> = registry().lock().unwrap_or_else(|p| p.into_inner()).clone();
    all.iter().flat_map(|s| flush_shared(s, deadline)).collect()
}

/// The sending thread: one message at a time, in order, each retried per `retry`.
fn serve(rx: Receiver<Job>, shared: Arc<Shared>, retry: Retry) {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            shared.warn(format!("notifications off: no runtime for them ({e})"));
            drain_failed(&rx, &shared, "no runtime");
            return;
        }
    };
    let client = match reqwest::Client::builder()
        .timeout(retry.timeout)
        .user_agent(concat!("shipdeck/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            shared.warn(format!(
                "notifications off: no HTTP client ({})",
                e.without_url()
            ));
            drain_failed(&rx, &shared, "no HTTP client");
            return;
        }
    };
    while let Ok(job) = rx.recv() {
        let result = rt.block_on(deliver(&client, &job, retry));
        {
            let mut s = shared.lock();
            s.pending = s.pending.saturating_sub(1);
            if result.is_ok() {
                s.delivered += 1;
            }
        }
        if let Err(why) = result {
            shared.warn(format!(
                "notification {} for {} to {} not delivered: {why}",
                job.event.label(),
                job.app,
                job.target.label
            ));
        }
        shared.changed.notify_all();
    }
}

fn drain_failed(rx: &Receiver<Job>, shared: &Shared, why: &str) {
    while let Ok(job) = rx.recv() {
        {
            let mut s = shared.lock();
            s.pending = s.pending.saturating_sub(1);
        }
        shared.warn(format!(
            "notification {} for {} to {} not delivered: {why}",
            job.event.label(),
            job.app,
            job.target.label
        ));
        shared.changed.notify_all();
    }
}

/// One message, with retries; the error says why, without the URL.
async fn deliver(client: &reqwest::Client, job: &Job, retry: Retry) -> Result<(), String> {
    let mut wait = retry.backoff;
    let mut last = String::new();
    let attempts = retry.attempts.max(1);
    for attempt in 1..=attempts {
        let r = client
            .post(&job.target.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(job.body.clone())
            .send()
            .await;
        let retryable = match r {
            Ok(resp) if resp.status().is_success() => return Ok(()),
            Ok(resp) => {
                let st = resp.status();
                last = format!("the webhook answered {st}");
                st.is_server_error() || st.as_u16() == 408 || st.as_u16() == 429
            }
            Err(e) => {
                last = describe(e);
                true
            }
        };
        if !retryable {
            return Err(format!("{last} (not retried)"));
        }
        if attempt < attempts {
            tokio::time::sleep(wait).await;
            wait = wait.saturating_mul(2);
        }
    }
    let last = last.replace(&job.target.url, &job.target.label);
    Err(format!("{last} after {attempts} attempts"))
}

/// A transport error in words, without the URL (reqwest's message names it).
fn describe(e: reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out".to_string()
    } else if e.is_connect() {
        "cannot connect".to_string()
    } else {
        "request failed".to_string()
    };
    let e = e.without_url();
    let mut causes = Vec::new();
    let mut src = std::error::Error::source(&e);
    while let Some(c) = src {
        causes.push(c.to_string());
        src = c.source();
    }
    match causes.last() {
        Some(c) => format!("{what} ({})", sanitize(c)),
        None => what,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Revision;

    fn rec(action: &str, outcome: &str) -> AuditRecord {
        AuditRecord {
            at: chrono::Utc::now(),
            who: "ana".into(),
            action: action.into(),
            instance: "i".into(),
            app: "shop-prod".into(),
            environment: "prod".into(),
            from_revision: Some(Revision::new("aaaaaaaaaa")),
            to_revision: Some(Revision::new("bbbbbbbbbb")),
            diff_digest: None,
            approval_id: None,
            reason: Some("<!channel> fix & go".into()),
            outcome: outcome.into(),
            detail: None,
            dry_run: false,
        }
    }

    #[test]
    fn audit_records_map_to_events() {
        let e = |a, o| event_of(&rec(a, o));
        assert_eq!(e("sync", "succeeded"), Some(Event::Synced));
        assert_eq!(e("sync", "started"), None);
        assert_eq!(e("sync", "refused"), None);
        assert_eq!(e("rollback", "succeeded"), Some(Event::RolledBack));
        assert_eq!(e("rollback", "timed-out"), Some(Event::Failed));
        assert_eq!(e("build", "failed"), Some(Event::Failed));
        assert_eq!(e("request", "requested"), Some(Event::Requested));
        assert_eq!(e("approve", "approved"), Some(Event::Approved));
        assert_eq!(e("freeze", "succeeded"), Some(Event::Frozen));
        assert_eq!(e("unfreeze", "succeeded"), Some(Event::Unfrozen));
        assert_eq!(e("confirm-prune", "succeeded"), Some(Event::PruneConfirmed));
        let mut dry = rec("sync", "succeeded");
        dry.dry_run = true;
        assert_eq!(event_of(&dry), None);
        for name in EVENTS {
            assert_eq!(Event::parse(name).map(Event::label), Some(*name));
        }
    }

    #[test]
    fn slack_body_escapes_and_carries_the_fields() {
        let b = body(
            Kind::Slack,
            Event::Synced,
            &rec("sync", "succeeded"),
            &["shop:1.2".into()],
        );
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap_or_default();
        let text = v["text"].as_str().unwrap_or_default();
        assert!(text.contains("ana synced shop-prod in prod (aaaaaaa → bbbbbbb)"));
        let all = v["blocks"].to_string();
        assert!(all.contains("&lt;!channel&gt; fix &amp; go"), "{all}");
        assert!(!all.contains("<!channel>"));
        assert!(all.contains("shop:1.2"));
    }

    /// A webhook that takes the connection and never answers holds the sender on its first
    /// message: the queue fills, further messages are dropped with a warning (the caller is
    /// never held up), and a flush at its deadline says how many are still pending.
    #[test]
    fn a_full_queue_drops_with_a_warning_and_flush_reports_the_pending() {
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let port = silent.local_addr().map(|a| a.port()).unwrap_or_default();
        let n = NotifyConfig {
            name: Some("silent".into()),
            url: Some(format!("http://127.0.0.1:{port}/h")),
            url_env: None,
            kind: "json".into(),
            events: vec!["synced".into()],
        };
        let t =
            Target::from_config(&n, "notify[0]", None, |_| None).unwrap_or_else(|e| panic!("{e}"));
        let notifier = Notifier::start(
            vec![t],
            Retry {
                attempts: 1,
                backoff: Duration::from_millis(1),
                timeout: Duration::from_secs(600),
            },
        )
        .unwrap_or_else(|| panic!("started"));
        let r = rec("sync", "succeeded");
        for _ in 0..QUEUE + 3 {
            notifier.notify(&r, &[]);
        }
        // Not wanted by this webhook: nothing queued, nothing dropped.
        notifier.notify(&rec("rollback", "succeeded"), &[]);
        let w = notifier.flush(Duration::from_millis(200));
        let dropped = w
            .iter()
            .filter(|w| {
                w.as_str()
                    == "notification synced for shop-prod to silent dropped: the queue is full"
            })
            .count();
        assert!((2..=3).contains(&dropped), "{w:?}");
        let pending = w.last().cloned().unwrap_or_default();
        assert!(
            pending.ends_with("notification(s) not delivered before exit (still being retried)"),
            "{w:?}"
        );
        assert_eq!(notifier.delivered(), 0);
        drop(silent);
    }

    #[test]
    fn a_freeze_names_the_environment_first() {
        let mut r = rec("freeze", "succeeded");
        r.app = "cart-prod,shop-prod".into();
        r.from_revision = None;
        r.to_revision = None;
        let m = Message::of(Event::Frozen, &r, &[]);
        assert_eq!(m.headline(), "ana froze prod (cart-prod,shop-prod)");
    }

    #[test]
    fn url_env_unset_is_a_config_error_that_names_the_variable_not_a_url() {
        let n = NotifyConfig {
            name: None,
            url: None,
            url_env: Some("HOOK".into()),
            kind: "slack".into(),
            events: vec!["synced".into()],
        };
        let e = Target::from_config(&n, "notify[0]", None, |_| None)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("HOOK is not set"), "{e}");
        let t = Target::from_config(&n, "notify[0]", None, |_| {
            Some("https://hooks.slack.com/services/T0/B0/SECRET".into())
        });
        let t = t.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.label, "https://hooks.slack.com/…");
        assert!(!format!("{t:?}").contains("SECRET"));
    }
}
