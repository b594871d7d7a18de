//! Server-sent event streams: `/api/v1/stream/applications` (ADDED for every app unless a
//! resourceVersion is given, then ADDED/MODIFIED/DELETED as the store changes) and an app's
//! resource tree. A stream ends when the client goes, when its watch falls behind, or when
//! the "drop watches" fault fires; clients reconnect as they would with Argo CD.

use super::apps::{Fields, passes, readable, selector_of};
use super::resources::tree_of;
use super::{ApiResult, Shared, caller, seams};
use crate::store::{APPLICATIONS, EVENTS, EventType};
use crate::{ARGOCD_NAMESPACE, IN_CLUSTER};
use axum::extract::{Path, Query};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use shipdeck_wire::Application;
use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::{Hash, Hasher};
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;

const KEEPALIVE: Duration = Duration::from_secs(15);

fn sse(rx: mpsc::Receiver<Value>) -> Response {
    let (tx, out) = mpsc::channel::<String>(16);
    tokio::spawn(async move {
        let mut rx = rx;
        while let Some(v) = rx.recv().await {
            if tx.send(v.to_string()).await.is_err() {
                return;
            }
        }
    });
    sse_text(out)
}

fn sse_text(rx: mpsc::Receiver<String>) -> Response {
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let v = rx.recv().await?;
        Some((Ok::<_, Infallible>(Event::default().data(v)), rx))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEPALIVE))
        .into_response()
}

fn event_name(t: EventType) -> &'static str {
    match t {
        EventType::Added => "ADDED",
        EventType::Modified => "MODIFIED",
        EventType::Deleted => "DELETED",
    }
}

pub async fn applications(
    axum::extract::State(world): Shared,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> ApiResult<Response> {
    let user = caller(&world, &headers)?;
    let selector = selector_of(&q)?;
    let from_rv = q
        .iter()
        .find(|(k, _)| k == "resourceVersion")
        .and_then(|(_, v)| v.parse::<u64>().ok())
        .filter(|rv| *rv > 0);
    let mut epoch = world.store.watch_epoch();
    epoch.borrow_and_update();
    let (backlog, mut rx, initial) =
        match from_rv.map(|rv| world.store.watch(IN_CLUSTER, APPLICATIONS, rv)) {
            Some(Ok((backlog, rx))) => (backlog, rx, Vec::new()),
            // No version, or one too old to replay: start from a full listing.
            _ => {
                let (backlog, rx) = world
                    .store
                    .watch(IN_CLUSTER, APPLICATIONS, 0)
                    .map_err(|e| super::ApiError::internal(e.to_string()))?;
                let (apps, _) = world
                    .store
                    .list(IN_CLUSTER, APPLICATIONS, Some(ARGOCD_NAMESPACE));
                (backlog, rx, apps)
            }
        };
    let fields = Fields::of(&q);
    let (tx, out) = mpsc::channel::<String>(512);
    tokio::spawn(async move {
        let visible = |app: &Value| {
            app["metadata"]["namespace"] == ARGOCD_NAMESPACE
                && passes(app, &q, &selector)
                && seams::allowed(&world, &user, "get", Some(app))
        };
        // Argo CD's stream forwarder keys messages by application name and sends one only
        // when its (projected) text differs from the last one sent for that app.
        let mut last: HashMap<String, u64> = HashMap::new();
        let mut emit = |kind: &str, app: &Value| -> Option<String> {
            let text = message(kind, app, fields.as_ref())?;
            let name = app["metadata"]["name"].as_str().unwrap_or("").to_string();
            let mut h = std::collections::hash_map::DefaultHasher::new();
            text.hash(&mut h);
            let h = h.finish();
            if last.insert(name, h) == Some(h) {
                return None;
            }
            Some(text)
        };
        for app in initial.iter().filter(|a| visible(a)) {
            if let Some(msg) = emit("ADDED", app)
                && tx.send(msg).await.is_err()
            {
                return;
            }
        }
        for ev in backlog {
            if visible(&ev.object)
                && let Some(msg) = emit(event_name(ev.event_type), &ev.object)
                && tx.send(msg).await.is_err()
            {
                return;
            }
        }
        loop {
            tokio::select! {
                ev = rx.recv() => match ev {
                    Ok(ev) => {
                        if ev.resource != APPLICATIONS || ev.cluster != IN_CLUSTER || !visible(&ev.object) {
                            continue;
                        }
                        if let Some(msg) = emit(event_name(ev.event_type), &ev.object)
                            && tx.send(msg).await.is_err()
                        {
                            return;
                        }
                    }
                    // Fell behind: end the stream so the client relists.
                    Err(RecvError::Lagged(_)) | Err(RecvError::Closed) => return,
                },
                _ = epoch.changed() => return,
                _ = tx.closed() => return,
            }
        }
    });
    Ok(sse_text(out))
}

/// One stream message, `{"result":{"type":..,"application":..}}`, written straight from the
/// store's object and projected by `fields` (paths start at `result.`).
fn message(kind: &str, app: &Value, fields: Option<&Fields>) -> Option<String> {
    #[derive(serde::Serialize)]
    struct Event<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        application: &'a Value,
    }
    #[derive(serde::Serialize)]
    struct Msg<'a> {
        result: Event<'a>,
    }
    let msg = Msg {
        result: Event {
            kind,
            application: app,
        },
    };
    match fields {
        None => serde_json::to_string(&msg).ok(),
        // Projected as it is written: no copy of the application, no tree in between.
        Some(f) => serde_json::to_string(&ProjectedMsg {
            fields: f,
            kind,
            app,
        })
        .ok(),
    }
}

/// `{"result":{"type","application"}}` seen through `fields` (paths start at `result.`).
struct ProjectedMsg<'a> {
    fields: &'a Fields,
    kind: &'a str,
    app: &'a Value,
}

impl serde::Serialize for ProjectedMsg<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        struct Result_<'a>(&'a ProjectedMsg<'a>);
        impl serde::Serialize for Result_<'_> {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                let m = self.0;
                let mut out = s.serialize_map(None)?;
                if m.fields.keep("result.type").0 {
                    out.serialize_entry("type", m.kind)?;
                }
                match m.fields.keep("result.application") {
                    (false, _) => {}
                    (true, true) => out.serialize_entry("application", m.app)?,
                    (true, false) => out.serialize_entry(
                        "application",
                        &m.fields.project("result.application", m.app),
                    )?,
                }
                out.end()
            }
        }
        let mut top = s.serialize_map(None)?;
        if self.fields.keep("result").0 {
            top.serialize_entry("result", &Result_(self))?;
        }
        top.end()
    }
}

pub async fn resource_tree(
    axum::extract::State(world): Shared,
    headers: HeaderMap,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let user = caller(&world, &headers)?;
    let app = readable(&world, &user, &name)?;
    let typed: Application = serde_json::from_value((*app).clone()).unwrap_or_default();
    let cluster = seams::cluster_of(&world, &typed).unwrap_or_else(|| IN_CLUSTER.to_string());
    let mut epoch = world.store.watch_epoch();
    epoch.borrow_and_update();
    let (_, mut rx) = world
        .store
        .watch(&cluster, APPLICATIONS, 0)
        .map_err(|e| super::ApiError::internal(e.to_string()))?;
    let (tx, out) = mpsc::channel::<Value>(16);
    tokio::spawn(async move {
        let relevant = |ev: &crate::store::WatchEvent| {
            if ev.resource == APPLICATIONS {
                ev.object["metadata"]["name"].as_str() == Some(name.as_str())
            } else {
                ev.cluster == cluster && ev.resource != EVENTS
            }
        };
        let mut last = Value::Null;
        let mut dirty = true;
        loop {
            if dirty {
                let Some(app) = super::apps::find(&world, &name) else {
                    return;
                };
                let tree = tree_of(&world, &app);
                if tree != last {
                    last = tree.clone();
                    if tx.send(json!({"result": tree})).await.is_err() {
                        return;
                    }
                }
                // Coalesce bursts of changes into one tree.
                tokio::time::sleep(Duration::from_millis(200)).await;
                dirty = false;
                loop {
                    match rx.try_recv() {
                        Ok(ev) => dirty |= relevant(&ev),
                        Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => dirty = true,
                        Err(_) => break,
                    }
                }
                if dirty {
                    continue;
                }
            }
            tokio::select! {
                ev = rx.recv() => match ev {
                    Ok(ev) => dirty = relevant(&ev),
                    Err(RecvError::Lagged(_)) => dirty = true,
                    Err(RecvError::Closed) => return,
                },
                _ = epoch.changed() => return,
                _ = tx.closed() => return,
            }
        }
    });
    Ok(sse(out))
}
