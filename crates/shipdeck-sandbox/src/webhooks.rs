//! A webhook receiver, so tests and the demo see the notifications shipdeck sends (Slack
//! incoming webhooks and generic JSON webhooks alike):
//! - `POST /_sandbox/webhooks/{name}` records the request (headers and body, the body as
//!   JSON when it parses, else as text) and answers `200 ok`, as Slack's incoming webhooks
//!   do; while a fault is armed for `name` it answers that status instead (and records the
//!   attempt with that status);
//! - `POST /_sandbox/webhooks/{name}/fault` `{"status": 500, "times": 2}` arms the fault for
//!   the next `times` requests (`times` 0 disarms it);
//! - `GET /_sandbox/webhooks` lists every request received, oldest first, each with `name`,
//!   `at`, `status` (what the receiver answered), `headers` and `body`;
//!   `GET /_sandbox/webhooks/{name}` the same for one name; `DELETE /_sandbox/webhooks`
//!   forgets them and every armed fault.
//!
//! The state is the receiver's own (not the estate's): it is the independent record of what
//! arrived. At most [`KEEP`] requests are kept; older ones are dropped first.

use axum::Json;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// How many received requests the receiver keeps.
pub const KEEP: usize = 1000;
/// The largest body recorded; bigger ones are answered 413.
pub const MAX_BODY: usize = 256 * 1024;

#[derive(Default)]
struct Inner {
    received: VecDeque<Value>,
    /// name -> (status to answer, how many more times).
    faults: HashMap<String, (u16, u32)>,
}

#[derive(Default, Clone)]
pub struct Webhooks {
    inner: Arc<Mutex<Inner>>,
}

impl Webhooks {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn bad(status: StatusCode, msg: &str) -> Response {
    (status, Json(json!({"error": msg}))).into_response()
}

async fn receive(
    State(hooks): State<Webhooks>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if !valid_name(&name) {
        return bad(
            StatusCode::BAD_REQUEST,
            "webhook name: letters, digits, - _ . (at most 128)",
        );
    }
    if body.len() > MAX_BODY {
        return bad(StatusCode::PAYLOAD_TOO_LARGE, "body too large");
    }
    let mut inner = hooks.lock();
    let status = match inner.faults.get_mut(&name) {
        Some((code, times)) if *times > 0 => {
            *times -= 1;
            *code
        }
        _ => 200,
    };
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
            )
        })
        .collect();
    let body_value = serde_json::from_slice::<Value>(&body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
    inner.received.push_back(json!({
        "name": name,
        "at": chrono::Utc::now().to_rfc3339(),
        "status": status,
        "headers": headers,
        "body": body_value,
    }));
    while inner.received.len() > KEEP {
        inner.received.pop_front();
    }
    drop(inner);
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if code.is_success() {
        (code, "ok").into_response()
    } else {
        (code, "injected by the sandbox's webhook fault").into_response()
    }
}

async fn set_fault(
    State(hooks): State<Webhooks>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if !valid_name(&name) {
        return bad(
            StatusCode::BAD_REQUEST,
            "webhook name: letters, digits, - _ . (at most 128)",
        );
    }
    let usage = "body: {\"status\": 500, \"times\": N} (status 400..=599, times 0 disarms)";
    let Ok(v) = serde_json::from_slice::<Value>(&body) else {
        return bad(StatusCode::BAD_REQUEST, usage);
    };
    let (Some(status), Some(times)) = (v["status"].as_u64(), v["times"].as_u64()) else {
        return bad(StatusCode::BAD_REQUEST, usage);
    };
    if !(400..=599).contains(&status) || times > 1000 {
        return bad(StatusCode::BAD_REQUEST, usage);
    }
    let mut inner = hooks.lock();
    if times == 0 {
        inner.faults.remove(&name);
    } else {
        inner
            .faults
            .insert(name.clone(), (status as u16, times as u32));
    }
    Json(json!({"name": name, "status": status, "times": times})).into_response()
}

async fn list_all(State(hooks): State<Webhooks>) -> Json<Value> {
    let inner = hooks.lock();
    Json(json!({"received": inner.received.iter().collect::<Vec<_>>()}))
}

async fn list_one(State(hooks): State<Webhooks>, Path(name): Path<String>) -> Json<Value> {
    let inner = hooks.lock();
    Json(json!({
        "received": inner.received.iter().filter(|r| r["name"] == name.as_str()).collect::<Vec<_>>()
    }))
}

async fn clear(State(hooks): State<Webhooks>) -> Json<Value> {
    let mut inner = hooks.lock();
    inner.received.clear();
    inner.faults.clear();
    Json(json!({"cleared": true}))
}

/// The receiver's routes, with their own state.
pub fn router() -> Router {
    Router::new()
        .route("/_sandbox/webhooks", get(list_all).delete(clear))
        .route("/_sandbox/webhooks/{name}", post(receive).get(list_one))
        .route("/_sandbox/webhooks/{name}/fault", post(set_fault))
        .with_state(Webhooks::default())
}
