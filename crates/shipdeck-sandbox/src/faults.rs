//! Faults on demand, for tests and benchmarks: drop every open watch, expire watch
//! versions (410 Gone), fail or delay requests whose path matches, expire tokens, force
//! 409 conflicts on writes, and churn (a steady rate of Application status changes).
//!
//! Admin surface, served on loopback only and without a token (the sandbox never listens
//! elsewhere by default; do not expose it):
//! - `POST /_sandbox/faults` with one JSON fault, tagged by `fault`:
//!   `{"fault":"drop-watches"}`, `{"fault":"expire-watch-versions"}`,
//!   `{"fault":"fail","path":"/applications","status":503,"count":3}` (or `"seconds":10`),
//!   `{"fault":"delay","path":"/pods","ms":500,"seconds":5}`, `{"fault":"expire-tokens"}`,
//!   `{"fault":"conflict","count":2}`, `{"fault":"churn","per_second":50,"seconds":30}`,
//!   `{"fault":"deny-apply","kind":"Deployment","name":"checkout","message":"...","count":1}`
//!   (the controller's apply of that object is denied the way an admission webhook denies
//!   it, so the sync ends `Failed` with Argo CD's "one or more objects failed to apply");
//!   `{"fault":"hold-operations","seconds":30}` (the controller starts no `.operation`
//!   for a while, as a busy one; what is queued runs after);
//!   `{"fault":"argocd-version","version":"v3.4.2"}` (be an older Argo CD: `/api/version`
//!   says so and what came later is not served, e.g. the Application's `toggle-auto-sync`
//!   resource action of 3.5);
//! - `DELETE /_sandbox/faults` clears every rule, pending conflict and churn;
//! - `GET /_sandbox/faults` lists active rules; `GET /_sandbox/health` says the server lives.
//!
//! Faults change behaviour only through this room's state; they never edit objects except
//! churn, which writes annotations and `status.reconciledAt` the way a busy controller would.

use super::store::APPLICATIONS;
use super::{ARGOCD_NAMESPACE, IN_CLUSTER, World};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `v3.4.2` (or `3.4.2`, with any `+build` tail) as (major, minor).
fn parse_version(v: &str) -> Option<(u64, u64)> {
    let v = v.strip_prefix('v').unwrap_or(v);
    let v = v.split(['+', '-']).next()?;
    let mut it = v.split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next()?.parse().ok()?;
    it.next()?.parse::<u64>().ok()?;
    Some((major, minor))
}

/// Upper bounds that keep a fault from taking the machine down.
const MAX_CHURN_PER_SECOND: u64 = 20_000;
const MAX_SECONDS: u64 = 3_600;

/// One fault request (the JSON body of `POST /_sandbox/faults`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "fault", rename_all = "kebab-case")]
pub enum Fault {
    DropWatches,
    ExpireWatchVersions,
    /// Answer `status` to requests whose path contains `path`, for `count` requests and/or
    /// `seconds` (with neither: until cleared).
    Fail {
        path: String,
        status: u16,
        #[serde(default)]
        count: Option<u64>,
        #[serde(default)]
        seconds: Option<f64>,
    },
    /// Hold matching requests `ms` milliseconds before serving them.
    Delay {
        path: String,
        ms: u64,
        #[serde(default)]
        count: Option<u64>,
        #[serde(default)]
        seconds: Option<f64>,
    },
    ExpireTokens,
    /// The next `count` writes answer 409 Conflict.
    Conflict {
        count: u64,
    },
    /// `per_second` Application status changes per second for `seconds`.
    Churn {
        per_second: u64,
        seconds: f64,
    },
    /// The controller's apply of objects of `kind` (named `name`, if given) answers the
    /// API server's admission denial with `message`, for `count` applies (else until
    /// cleared).
    DenyApply {
        kind: String,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        message: Option<String>,
        #[serde(default)]
        count: Option<u64>,
    },
    /// The Argo CD controller starts no operation for `seconds` (a busy controller:
    /// `.operation` waits), until cleared.
    HoldOperations {
        seconds: f64,
    },
    /// Answer as Argo CD `version` (`vMAJOR.MINOR.PATCH`) until cleared.
    ArgocdVersion {
        version: String,
    },
}

/// The Argo CD version the sandbox is by default.
pub const ARGOCD_VERSION: &str = "v3.5.1";

/// The webhook named in a denied apply, as the API server names it.
pub const DENY_WEBHOOK: &str = "validate.policy.sandbox.shipdeck.dev";

#[derive(Debug)]
struct Denial {
    kind: String,
    name: Option<String>,
    message: String,
    remaining: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
enum Action {
    Fail(u16),
    Delay(Duration),
}

#[derive(Debug)]
struct Rule {
    path_contains: String,
    action: Action,
    remaining: Option<u64>,
    until: Option<Instant>,
}

impl Rule {
    fn live(&self, now: Instant) -> bool {
        self.remaining != Some(0) && self.until.is_none_or(|u| now < u)
    }
}

#[derive(Debug, Default)]
struct State_ {
    rules: Vec<Rule>,
    denials: Vec<Denial>,
    version: Option<String>,
    hold_until: Option<Instant>,
    churn: Option<tokio::task::JoinHandle<()>>,
}

/// The fault state of one sandbox.
#[derive(Debug, Default)]
pub struct Faults {
    state: Mutex<State_>,
    conflicts: AtomicU64,
    churn_stats: Arc<ChurnStats>,
}

fn bounded_seconds(s: Option<f64>) -> Result<Option<Duration>, String> {
    match s {
        None => Ok(None),
        Some(s) if s.is_finite() && s > 0.0 && s <= MAX_SECONDS as f64 => {
            Ok(Some(Duration::from_secs_f64(s)))
        }
        Some(s) => Err(format!("seconds must be in (0, {MAX_SECONDS}], got {s}")),
    }
}

impl Faults {
    fn lock(&self) -> std::sync::MutexGuard<'_, State_> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True once per forced conflict: the write that asked answers 409.
    pub fn take_conflict(&self) -> bool {
        self.conflicts
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Apply one fault to a running sandbox.
    pub fn apply(world: &Arc<World>, fault: Fault) -> Result<(), String> {
        let faults = &world.faults;
        match fault {
            Fault::DropWatches => world.store.drop_watches(),
            Fault::ExpireWatchVersions => world.store.expire_history(),
            Fault::ExpireTokens => world.users.expire_all(),
            Fault::Conflict { count } => {
                faults
                    .conflicts
                    .fetch_add(count.min(1_000_000), Ordering::SeqCst);
            }
            Fault::Fail {
                path,
                status,
                count,
                seconds,
            } => {
                if !(100..=599).contains(&status) {
                    return Err(format!("status must be an HTTP status code, got {status}"));
                }
                faults.add_rule(path, Action::Fail(status), count, bounded_seconds(seconds)?);
            }
            Fault::Delay {
                path,
                ms,
                count,
                seconds,
            } => {
                if ms > MAX_SECONDS * 1000 {
                    return Err(format!("ms must be at most {}", MAX_SECONDS * 1000));
                }
                let action = Action::Delay(Duration::from_millis(ms));
                faults.add_rule(path, action, count, bounded_seconds(seconds)?);
            }
            Fault::DenyApply {
                kind,
                name,
                message,
                count,
            } => {
                if kind.is_empty() {
                    return Err("kind must name a Kubernetes kind".into());
                }
                faults.lock().denials.push(Denial {
                    kind,
                    name,
                    message: message
                        .unwrap_or_else(|| "the object is denied by the sandbox's policy".into()),
                    remaining: count,
                });
            }
            Fault::HoldOperations { seconds } => {
                let d = bounded_seconds(Some(seconds))?.unwrap_or_default();
                faults.lock().hold_until = Some(Instant::now() + d);
            }
            Fault::ArgocdVersion { version } => {
                if parse_version(&version).is_none() {
                    return Err(format!(
                        "version must be vMAJOR.MINOR.PATCH, got {version:?}"
                    ));
                }
                faults.lock().version = Some(version);
            }
            Fault::Churn {
                per_second,
                seconds,
            } => {
                if per_second == 0 || per_second > MAX_CHURN_PER_SECOND {
                    return Err(format!("per_second must be in 1..={MAX_CHURN_PER_SECOND}"));
                }
                let duration = bounded_seconds(Some(seconds))?.unwrap_or_default();
                let mut state = faults.lock();
                if let Some(old) = state.churn.take() {
                    old.abort();
                }
                let epoch = faults.churn_stats.begin(per_second, duration);
                let task = churn(world.clone(), per_second, duration, epoch);
                state.churn = Some(tokio::spawn(task));
            }
        }
        Ok(())
    }

    fn add_rule(&self, path: String, action: Action, count: Option<u64>, dur: Option<Duration>) {
        self.lock().rules.push(Rule {
            path_contains: path,
            action,
            remaining: count,
            until: dur.map(|d| Instant::now() + d),
        });
    }

    /// The API server's error for the controller's apply of `kind`/`name`, when a
    /// `deny-apply` fault matches it (one use of its count).
    pub fn denied_apply(&self, kind: &str, name: &str) -> Option<String> {
        let mut s = self.lock();
        let d = s.denials.iter_mut().find(|d| {
            d.remaining != Some(0) && d.kind == kind && d.name.as_deref().is_none_or(|n| n == name)
        })?;
        if let Some(n) = d.remaining.as_mut() {
            *n = n.saturating_sub(1);
        }
        let why = format!(
            "admission webhook \"{DENY_WEBHOOK}\" denied the request: {}",
            d.message
        );
        s.denials.retain(|d| d.remaining != Some(0));
        Some(why)
    }

    /// Whether the controller holds operations now (fault `hold-operations`).
    pub fn holding_operations(&self) -> bool {
        self.lock().hold_until.is_some_and(|u| Instant::now() < u)
    }

    /// The Argo CD version the sandbox answers as (`v3.5.1` unless a fault says older).
    pub fn argocd_version(&self) -> String {
        self.lock()
            .version
            .clone()
            .unwrap_or_else(|| ARGOCD_VERSION.to_string())
    }

    /// Whether the Argo CD the sandbox is serves something added in `major.minor`.
    pub fn argocd_at_least(&self, major: u64, minor: u64) -> bool {
        parse_version(&self.argocd_version()).is_none_or(|v| v >= (major, minor))
    }

    /// Clear every rule, pending conflict and churn.
    pub fn clear(&self) {
        let mut s = self.lock();
        s.rules.clear();
        s.denials.clear();
        s.version = None;
        s.hold_until = None;
        if let Some(t) = s.churn.take() {
            t.abort();
            self.churn_stats.end();
        }
        self.conflicts.store(0, Ordering::SeqCst);
    }

    /// What a request to `path` must suffer: a delay, then maybe a failure status.
    fn check(&self, path: &str) -> (Duration, Option<u16>) {
        let now = Instant::now();
        let mut s = self.lock();
        s.rules.retain(|r| r.live(now));
        let (mut delay, mut fail) = (Duration::ZERO, None);
        for r in s
            .rules
            .iter_mut()
            .filter(|r| path.contains(&r.path_contains))
        {
            if let Some(n) = r.remaining.as_mut() {
                *n = n.saturating_sub(1);
            }
            match r.action {
                Action::Delay(d) => delay += d,
                Action::Fail(code) => fail = fail.or(Some(code)),
            }
        }
        s.rules.retain(|r| r.live(now));
        (delay, fail)
    }

    fn describe(&self) -> Value {
        let now = Instant::now();
        let s = self.lock();
        let rules: Vec<Value> = s
            .rules
            .iter()
            .filter(|r| r.live(now))
            .map(|r| {
                let (kind, v) = match r.action {
                    Action::Fail(c) => ("fail", json!(c)),
                    Action::Delay(d) => ("delay", json!(d.as_millis() as u64)),
                };
                json!({"fault": kind, "path": r.path_contains, "value": v,
                       "remaining": r.remaining,
                       "seconds_left": r.until.map(|u| u.saturating_duration_since(now).as_secs_f64())})
            })
            .collect();
        let denials: Vec<Value> = s
            .denials
            .iter()
            .map(|d| json!({"fault": "deny-apply", "kind": d.kind, "name": d.name, "remaining": d.remaining}))
            .collect();
        json!({
            "rules": rules,
            "denials": denials,
            "pending_conflicts": self.conflicts.load(Ordering::SeqCst),
            "churn": s.churn.as_ref().is_some_and(|t| !t.is_finished()),
            "churn_stats": self.churn_stats.describe(s.churn.as_ref().is_some_and(|t| !t.is_finished())),
        })
    }
}

/// What the last churn asked for and what it did, for `GET /_sandbox/faults` (`churn_stats`):
/// a benchmark prints the rate the sandbox really achieved beside the one it asked for.
#[derive(Debug, Default)]
pub struct ChurnStats {
    /// Which churn these figures belong to (an aborted one must not count into the next).
    epoch: AtomicU64,
    asked_per_second: AtomicU64,
    /// Milliseconds the churn was asked to run.
    asked_ms: AtomicU64,
    /// Status changes written so far (each one a store write, so a watch event).
    changes: AtomicU64,
    /// The highest `sandbox.shipdeck.io/churn` stamp written (stamps count from 1 per churn).
    last_stamp: AtomicU64,
    started: Mutex<Option<Instant>>,
    finished: Mutex<Option<Instant>>,
}

impl ChurnStats {
    fn begin(&self, per_second: u64, duration: Duration) -> u64 {
        let epoch = self.epoch.fetch_add(1, Ordering::SeqCst) + 1;
        self.asked_per_second.store(per_second, Ordering::SeqCst);
        self.asked_ms
            .store(duration.as_millis() as u64, Ordering::SeqCst);
        self.changes.store(0, Ordering::SeqCst);
        self.last_stamp.store(0, Ordering::SeqCst);
        *self.started.lock().unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
        *self.finished.lock().unwrap_or_else(|p| p.into_inner()) = None;
        epoch
    }

    fn current(&self, epoch: u64) -> bool {
        self.epoch.load(Ordering::SeqCst) == epoch
    }

    fn end(&self) {
        let mut f = self.finished.lock().unwrap_or_else(|p| p.into_inner());
        if f.is_none() {
            *f = Some(Instant::now());
        }
    }

    fn describe(&self, running: bool) -> Value {
        let started = *self.started.lock().unwrap_or_else(|p| p.into_inner());
        let finished = *self.finished.lock().unwrap_or_else(|p| p.into_inner());
        let changes = self.changes.load(Ordering::SeqCst);
        let elapsed = started.map(|s| finished.unwrap_or_else(Instant::now).duration_since(s));
        let secs = elapsed.map_or(0.0, |d| d.as_secs_f64());
        json!({
            "running": running,
            "asked_per_second": self.asked_per_second.load(Ordering::SeqCst),
            "asked_seconds": self.asked_ms.load(Ordering::SeqCst) as f64 / 1000.0,
            "changes": changes,
            "last_stamp": self.last_stamp.load(Ordering::SeqCst),
            "elapsed_seconds": secs,
            "achieved_per_second": if secs > 0.0 { changes as f64 / secs } else { 0.0 },
        })
    }
}

/// Names of the churned Applications, read again at most this often (a list per tick of
/// 50,000 apps is what kept churn at a fifth of the asked rate).
const CHURN_NAMES_EVERY: Duration = Duration::from_secs(1);

/// Churn: touch random Applications at a steady rate, bounded in time. Each change writes a
/// new `sandbox.shipdeck.io/churn` stamp (1, 2, ... in write order) and `status.reconciledAt`
/// through the store, so both watches (Kubernetes and Argo CD's stream) deliver it.
async fn churn(world: Arc<World>, per_second: u64, duration: Duration, epoch: u64) {
    let stats = world.faults.churn_stats.clone();
    let started = tokio::time::Instant::now();
    let tick = Duration::from_millis(20);
    let mut ticks = tokio::time::interval(tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut owed = 0.0f64;
    let mut counter: u64 = 0;
    let mut names: Vec<String> = Vec::new();
    let mut names_at: Option<tokio::time::Instant> = None;
    let mut last = started;
    while started.elapsed() < duration && stats.current(epoch) {
        ticks.tick().await;
        // What is owed follows the wall clock, so a slow tick is made up on the next one.
        let now_i = tokio::time::Instant::now();
        owed += per_second as f64 * now_i.duration_since(last).as_secs_f64();
        last = now_i;
        if names_at.is_none_or(|t| t.elapsed() >= CHURN_NAMES_EVERY) {
            names = world
                .store
                .list(IN_CLUSTER, APPLICATIONS, Some(ARGOCD_NAMESPACE))
                .0
                .iter()
                .filter_map(|a| a["metadata"]["name"].as_str().map(str::to_string))
                .collect();
            names_at = Some(now_i);
        }
        if names.is_empty() {
            owed = 0.0;
            continue;
        }
        // Never more than a second's worth at once: a stalled sandbox does not burst.
        owed = owed.min(per_second as f64);
        let picks: Vec<usize> = {
            use rand::Rng;
            let mut rng = rand::rng();
            (0..owed.floor() as u64)
                .map(|_| rng.random_range(0..names.len()))
                .collect()
        };
        owed -= picks.len() as f64;
        let now = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let now_v = json!(now);
        for (n, i) in picks.into_iter().enumerate() {
            counter += 1;
            let stamp = json!(counter.to_string());
            let wrote = world.store.mutate(
                IN_CLUSTER,
                APPLICATIONS,
                ARGOCD_NAMESPACE,
                &names[i],
                true,
                |app| {
                    if !app["metadata"]["annotations"].is_object() {
                        app["metadata"]["annotations"] = json!({});
                    }
                    app["metadata"]["annotations"]["sandbox.shipdeck.io/churn"] = stamp.clone();
                    if !app["status"].is_object() {
                        app["status"] = json!({});
                    }
                    app["status"]["reconciledAt"] = now_v.clone();
                    Ok(true)
                },
            );
            match wrote {
                Ok(_) if !stats.current(epoch) => return,
                Ok(_) => {
                    stats.changes.fetch_add(1, Ordering::SeqCst);
                    stats.last_stamp.store(counter, Ordering::SeqCst);
                }
                // Deleted since the names were read: read them again next tick.
                Err(_) => {
                    counter -= 1;
                    names_at = None;
                }
            }
            // Let the watches that deliver these changes run between bursts.
            if n % 500 == 499 {
                tokio::task::yield_now().await;
            }
        }
    }
    if stats.current(epoch) {
        stats.end();
    }
}

fn fault_status(code: u16, message: &str) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let reason = match code {
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        409 => "Conflict",
        410 => "Expired",
        429 => "TooManyRequests",
        500 => "InternalError",
        503 => "ServiceUnavailable",
        504 => "Timeout",
        _ => "Unknown",
    };
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": message, "reason": reason, "code": code});
    (status, Json(body)).into_response()
}

/// Middleware over every API: applies the delay and failure rules to matching requests.
/// `/_sandbox/` itself is exempt so a test can always clear what it set.
pub async fn fault_layer(State(world): State<Arc<World>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if path.starts_with("/_sandbox/") {
        return next.run(req).await;
    }
    let (delay, fail) = world.faults.check(path);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if let Some(code) = fail {
        return fault_status(
            code,
            "injected by the sandbox's fault rules (/_sandbox/faults)",
        );
    }
    next.run(req).await
}

async fn post_fault(State(world): State<Arc<World>>, body: axum::body::Bytes) -> Response {
    let fault: Fault = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"error": format!("bad fault: {e}")})),
            )
                .into_response();
        }
    };
    match Faults::apply(&world, fault.clone()) {
        Ok(()) => (StatusCode::OK, Json(json!({"applied": fault}))).into_response(),
        Err(e) => (StatusCode::BAD_REQUEST, Json(json!({"error": e}))).into_response(),
    }
}

async fn delete_faults(State(world): State<Arc<World>>) -> Response {
    world.faults.clear();
    (StatusCode::OK, Json(json!({"cleared": true}))).into_response()
}

async fn list_faults(State(world): State<Arc<World>>) -> Response {
    Json(world.faults.describe()).into_response()
}

async fn health(State(world): State<Arc<World>>) -> Response {
    Json(json!({"status": "ok", "resourceVersion": world.store.resource_version().to_string()}))
        .into_response()
}

pub fn admin_router(world: Arc<World>) -> Router {
    Router::new()
        .route(
            "/_sandbox/faults",
            get(list_faults).post(post_fault).delete(delete_faults),
        )
        .route("/_sandbox/health", get(health))
        .with_state(world)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_count_down_and_conflicts_are_taken_once() {
        let f = Faults::default();
        f.add_rule("/pods".into(), Action::Fail(503), Some(2), None);
        f.add_rule(
            "/pods".into(),
            Action::Delay(Duration::from_millis(5)),
            None,
            None,
        );
        assert_eq!(
            f.check("/api/v1/pods"),
            (Duration::from_millis(5), Some(503))
        );
        assert_eq!(f.check("/api/v1/pods").1, Some(503));
        assert_eq!(f.check("/api/v1/pods").1, None);
        assert_eq!(f.check("/apis/apps/v1/deployments"), (Duration::ZERO, None));
        f.conflicts.store(1, Ordering::SeqCst);
        assert!(f.take_conflict());
        assert!(!f.take_conflict());
        let parsed: Fault =
            serde_json::from_str(r#"{"fault":"fail","path":"/x","status":500,"count":1}"#).unwrap();
        assert!(matches!(parsed, Fault::Fail { status: 500, .. }));
    }
}
