//! Watches: newline-delimited `{"type","object"}` events streamed with chunked transfer.
//! Without a resourceVersion (or with "0") the stream opens with a synthetic ADDED per
//! existing object; from a version it replays retained history, and a version older than
//! that answers an ERROR event carrying a 410 `Expired` Status, as the API server does.
//! Streams end on `timeoutSeconds`, on the drop-watches fault, and when the store's
//! broadcast leaves this watcher behind (the client re-watches, which is what real clients
//! must survive). A BOOKMARK comes at the start and every few seconds when asked for.

use super::Ctx;
use super::handlers::{selectors, table_mode};
use super::selectors::{FieldSelector, LabelSelector};
use super::status::ApiError;
use super::table::{self, IncludeObject};
use crate::World;
use crate::store::{ResourceType, StoreError, WatchEvent};
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{broadcast, mpsc};

/// How often a BOOKMARK goes out on watches that allow them.
const BOOKMARK_EVERY: Duration = Duration::from_secs(2);

struct Stream {
    world: Arc<World>,
    cluster: String,
    res: ResourceType,
    /// The type the store keeps `res` as (`events.k8s.io` Events are core Events).
    stored: ResourceType,
    ns: Option<String>,
    labels: LabelSelector,
    fields: FieldSelector,
    table: Option<IncludeObject>,
    /// Column definitions go with the first Table event only.
    first_table: bool,
    last_rv: u64,
    /// Objects this watch has shown under a label selector, so one whose labels stop
    /// matching is sent as DELETED (and one that starts matching as ADDED), as the API
    /// server does. Only kept when there is a label selector.
    shown: Option<std::collections::HashSet<(String, String)>>,
    tx: mpsc::Sender<Result<Bytes, Infallible>>,
    /// Encoded events not yet handed to the body: sent as one chunk when it is large or
    /// when the stream is about to wait (one chunk per event cost more than encoding it,
    /// so a 50,000-app initial listing or 5,000 changes a second fell behind).
    pending: Vec<u8>,
}

/// A chunk goes out once this much is pending.
const CHUNK: usize = 256 * 1024;

impl Stream {
    fn ns_ok(&self, obj: &Value) -> bool {
        self.ns
            .as_ref()
            .is_none_or(|ns| obj["metadata"]["namespace"].as_str() == Some(ns.as_str()))
    }

    fn wanted(&self, obj: &Value) -> bool {
        self.ns_ok(obj) && self.labels.matches(obj) && self.fields.matches(obj)
    }

    fn encode(&mut self, kind: &str, obj: &Value) -> Bytes {
        let converted;
        let obj = if kind != "ERROR" && kind != "BOOKMARK" && self.stored != self.res {
            converted = super::convert::to_wire(self.res, obj);
            &converted
        } else {
            obj
        };
        let table;
        let object = match self.table {
            Some(include) if kind != "ERROR" && kind != "BOOKMARK" => {
                let rv = obj["metadata"]["resourceVersion"].as_str().unwrap_or("");
                let row = table::row(self.res, obj, include, chrono::Utc::now());
                table = table::table(self.res, vec![row], rv, self.first_table);
                self.first_table = false;
                &table
            }
            _ => obj,
        };
        // Written straight from the stored object: no copy of it per event and watcher.
        #[derive(serde::Serialize)]
        struct Line<'a> {
            #[serde(rename = "type")]
            kind: &'a str,
            object: &'a Value,
        }
        let mut line = serde_json::to_vec(&Line { kind, object }).unwrap_or_default();
        line.push(b'\n');
        Bytes::from(line)
    }

    async fn send(&mut self, kind: &str, obj: &Value) -> bool {
        let bytes = self.encode(kind, obj);
        self.pending.extend_from_slice(&bytes);
        self.pending.len() < CHUNK || self.flush().await
    }

    /// Hand what is pending to the body; false when the client left.
    async fn flush(&mut self) -> bool {
        if self.pending.is_empty() {
            return true;
        }
        let chunk = Bytes::from(std::mem::take(&mut self.pending));
        self.tx.send(Ok(chunk)).await.is_ok()
    }

    /// Forward one store event if it belongs to this watch; false when the client left.
    async fn forward(&mut self, ev: WatchEvent) -> bool {
        if ev.rv <= self.last_rv {
            return true;
        }
        self.last_rv = ev.rv;
        if ev.cluster != self.cluster || ev.resource != self.stored || !self.ns_ok(&ev.object) {
            return true;
        }
        let kind = match ev.event_type {
            crate::store::EventType::Added => "ADDED",
            crate::store::EventType::Modified => "MODIFIED",
            crate::store::EventType::Deleted => "DELETED",
        };
        self.send_tracked(kind, &ev.object).await
    }

    /// Send, turning label-selector transitions into ADDED/DELETED.
    async fn send_tracked(&mut self, kind: &str, obj: &Value) -> bool {
        let matches = self.wanted(obj);
        let Some(shown) = self.shown.as_mut() else {
            return !matches || self.send(kind, obj).await;
        };
        let key = (
            obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_string(),
            obj["metadata"]["name"].as_str().unwrap_or("").to_string(),
        );
        let was = shown.contains(&key);
        let kind = if kind == "DELETED" {
            if !was {
                return true;
            }
            shown.remove(&key);
            "DELETED"
        } else if matches {
            shown.insert(key);
            if was || kind == "ADDED" {
                kind
            } else {
                "MODIFIED"
            }
        } else if was {
            shown.remove(&key);
            "DELETED"
        } else {
            return true;
        };
        self.send(kind, obj).await
    }

    /// A bookmark must not claim a version whose events this watch has not yet passed on:
    /// read the store's version first, then drain everything already broadcast.
    async fn bookmark(&mut self, rx: &mut broadcast::Receiver<WatchEvent>) -> bool {
        let current = self.world.store.resource_version();
        loop {
            match rx.try_recv() {
                Ok(ev) => {
                    if !self.forward(ev).await {
                        return false;
                    }
                }
                Err(broadcast::error::TryRecvError::Empty) => break,
                Err(_) => return false,
            }
        }
        if self.table.is_some() {
            return true;
        }
        let rv = current.max(self.last_rv).to_string();
        let obj = json!({
            "kind": self.res.kind,
            "apiVersion": self.res.api_version(),
            "metadata": {"resourceVersion": rv},
        });
        self.send("BOOKMARK", &obj).await
    }
}

pub fn start(ctx: &Ctx, res: ResourceType, ns: Option<&str>) -> Result<Response, ApiError> {
    let (labels, fields) = selectors(ctx, res)?;
    let stored = super::convert::storage(res);
    let rv_param = ctx.q("resourceVersion").unwrap_or("");
    let from: u64 = if rv_param.is_empty() {
        0
    } else {
        rv_param
            .parse()
            .map_err(|_| ApiError::bad_request(format!("invalid resourceVersion {rv_param:?}")))?
    };
    let bookmarks = ctx.q_true("allowWatchBookmarks");
    let timeout = ctx
        .q("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|t| *t > 0)
        .map(Duration::from_secs);
    let (tx, body_rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    let track = !labels.is_empty();
    let mut stream = Stream {
        world: ctx.world.clone(),
        cluster: ctx.cluster.clone(),
        res,
        stored,
        ns: ns.map(str::to_string),
        labels,
        fields,
        table: table_mode(ctx),
        first_table: true,
        last_rv: from,
        shown: track.then(Default::default),
        tx,
        pending: Vec::new(),
    };
    let mut epoch = ctx.world.store.watch_epoch();
    epoch.borrow_and_update();
    // Subscribe before answering so nothing written right after the request is missed.
    let opened = ctx.world.store.watch(&ctx.cluster, stored, from);
    // The synthetic ADDED events describe the store as of this request, not as of whenever
    // the streaming task first runs.
    let listed =
        (from == 0 && opened.is_ok()).then(|| ctx.world.store.list(&ctx.cluster, stored, ns));
    tokio::spawn(async move {
        let (initial, mut rx): (Vec<(&str, Arc<Value>)>, _) = match opened {
            Err(StoreError::Gone { requested, oldest }) => {
                let status =
                    ApiError::gone(format!("too old resource version: {requested} ({oldest})"));
                stream.send("ERROR", &status.to_value()).await;
                stream.flush().await;
                return;
            }
            Err(e) => {
                let status = ApiError::from_store(res, e);
                stream.send("ERROR", &status.to_value()).await;
                stream.flush().await;
                return;
            }
            Ok((backlog, rx)) if from == 0 => {
                drop(backlog);
                let (items, list_rv) = listed.unwrap_or_default();
                stream.last_rv = list_rv;
                (items.into_iter().map(|o| ("ADDED", o)).collect(), rx)
            }
            Ok((backlog, rx)) => {
                let mut initial = Vec::new();
                for ev in backlog {
                    // The backlog is already this type and cluster; forward() filters the rest.
                    if !stream.forward(ev).await {
                        return;
                    }
                }
                initial.clear();
                (initial, rx)
            }
        };
        for (kind, obj) in initial {
            if !stream.send_tracked(kind, &obj).await {
                return;
            }
        }
        // The first BOOKMARK goes out before any live event, so a client learns a version
        // to resume from at once.
        if bookmarks && !stream.bookmark(&mut rx).await {
            return;
        }
        if !stream.flush().await {
            return;
        }
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let mut ticks =
            tokio::time::interval_at(tokio::time::Instant::now() + BOOKMARK_EVERY, BOOKMARK_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            let tx = stream.tx.clone();
            tokio::select! {
                _ = tx.closed() => return,
                _ = epoch.changed() => return,
                _ = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                } => return,
                _ = ticks.tick(), if bookmarks => {
                    if !stream.bookmark(&mut rx).await || !stream.flush().await {
                        return;
                    }
                }
                ev = rx.recv() => match ev {
                    Ok(ev) => {
                        if !stream.forward(ev).await {
                            return;
                        }
                        // What else is already broadcast goes in the same chunk.
                        for _ in 0..4096 {
                            match rx.try_recv() {
                                Ok(ev) => {
                                    if !stream.forward(ev).await {
                                        return;
                                    }
                                }
                                Err(broadcast::error::TryRecvError::Empty) => break,
                                Err(_) => {
                                    stream.flush().await;
                                    return;
                                }
                            }
                        }
                        if !stream.flush().await {
                            return;
                        }
                    }
                    // Lagged or closed: end the stream; the client re-watches from its
                    // last version (or relists on 410), as against a real API server.
                    Err(_) => return,
                },
            }
        }
    });
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(body_rx));
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}
