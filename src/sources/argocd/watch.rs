//! Watching applications over the API: the projected list (a Summary: the board at once),
//! then the SSE stream `/api/v1/stream/applications` from the list's resourceVersion,
//! parsed incrementally, while the whole list is read beside it for what the projected
//! list cannot carry (Details: history, operation messages, conditions).
//! On any loss (error message, closed stream, silence past the keepalive interval) it
//! reports Reconnecting, backs off (the reconnect policy of `sources::retry`, capped at a
//! few seconds so the board converges soon after a fault clears), and starts again with a
//! fresh list.

use super::Inner;
use crate::model::{
    AppId, Application, Connection, Packed, SUMMARY_PART, Update, compact_for_board, is_compact,
};
use crate::sources::retry;
use crate::sources::sse::SseParser;
use backon::BackoffBuilder;
use futures::StreamExt;
use reqwest::Method;
use serde::Deserialize;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// Argo CD sends a keepalive every 15 s; silence this long means the stream is dead.
const IDLE_LIMIT: Duration = Duration::from_secs(60);

#[derive(Deserialize)]
struct WatchEvent {
    #[serde(default, rename = "type")]
    kind: String,
    application: Application,
}

#[derive(Deserialize)]
struct StreamError {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    http_code: Option<u16>,
}

#[derive(Deserialize)]
struct StreamMessage {
    #[serde(default)]
    result: Option<WatchEvent>,
    #[serde(default)]
    error: Option<StreamError>,
}

enum Outcome {
    /// The receiver is gone: stop.
    Closed,
    /// Lost the connection; `proved` says whether it had worked (resets the backoff).
    Lost { reason: String, proved: bool },
    /// Argo CD refused the token (401): reconnecting cannot help until the operator logs
    /// in again, so the state says so (and the loop retries slowly in case the token was
    /// only briefly refused).
    Rejected { detail: String },
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

pub(super) fn watch(inner: Arc<Inner>, tx: mpsc::Sender<Update>) -> JoinHandle<()> {
    tokio::spawn(async move {
        let source = inner.instance.clone();
        if tx
            .send(Update::Connection {
                source: source.clone(),
                state: Connection::Connecting,
            })
            .await
            .is_err()
        {
            return;
        }
        let mut backoff = BackoffBuilder::build(retry::reconnect_backoff());
        let mut since = now();
        loop {
            match run_once(&inner, &tx, &mut since).await {
                Outcome::Closed => return,
                Outcome::Rejected { detail } => {
                    tracing::warn!(source = %source, "Argo CD refused the token: {detail}");
                    let state = Connection::Failed {
                        reason: super::TOKEN_REJECTED.into(),
                    };
                    if tx
                        .send(Update::Connection {
                            source: source.clone(),
                            state,
                        })
                        .await
                        .is_err()
                    {
                        return;
                    }
                    tokio::select! {
                        _ = tx.closed() => return,
                        _ = tokio::time::sleep(retry::RECONNECT_MAX_DELAY) => {}
                    }
                }
                Outcome::Lost { reason, proved } => {
                    if proved {
                        backoff = BackoffBuilder::build(retry::reconnect_backoff());
                    }
                    tracing::info!(source = %source, "application stream lost: {reason}");
                    let state = Connection::Reconnecting {
                        reason: crate::model::text::sanitize(&reason).into_owned(),
                        since: since.clone(),
                    };
                    if tx
                        .send(Update::Connection {
                            source: source.clone(),
                            state,
                        })
                        .await
                        .is_err()
                    {
                        return;
                    }
                    let wait = backoff.next().unwrap_or(retry::RECONNECT_MAX_DELAY);
                    tokio::select! {
                        _ = tx.closed() => return,
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
        }
    })
}

/// `/api/v1/stream/applications?fields=result.type,result.application...`: the stream
/// projected like the list, so a change to a part the board does not read (a managed
/// field, a comparison's source) sends nothing at all (Argo CD skips a message whose
/// projection equals the last one sent for that app).
fn stream_path(rv: Option<&str>) -> String {
    let mut fields = vec!["result.type".to_string()];
    fields.extend(
        super::APP_FIELDS
            .iter()
            .map(|f| format!("result.application.{f}")),
    );
    let mut path = format!("/api/v1/stream/applications?fields={}", fields.join(","));
    if let Some(rv) = rv {
        path.push_str("&resourceVersion=");
        path.push_str(&super::enc(rv));
    }
    path
}

fn id_of(inner: &Inner, app: &Application) -> AppId {
    AppId::new(&inner.instance, inner.app_ns(app), &app.metadata.name)
}

/// Apps per [`Update::Details`] message.
const DETAILS_BATCH: usize = 1024;

/// Aborts the details pass when the stream it belongs to ends: a pass left over from an
/// older list must not fill the entries of a newer one with older objects. (What it already
/// sent is ahead of the next list in the channel, so the next Summary marks those entries
/// incomplete again.)
struct DetailsGuard(tokio::task::AbortHandle);

impl Drop for DetailsGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Read the whole list as it arrives and send its apps as Details, a batch at a time,
/// retrying until it is read. A list that does not decode is a server's defect: it is
/// logged and tried again a minute later; the entries stay incomplete meanwhile and the
/// screens keep saying their details are not in.
fn details(inner: Arc<Inner>, tx: mpsc::Sender<Update>) -> DetailsGuard {
    let task = tokio::spawn(async move {
        let mut backoff = BackoffBuilder::build(retry::reconnect_backoff());
        loop {
            let wait = match send_details(&inner, &tx).await {
                Ok(()) => return,
                Err(e @ crate::sources::SourceError::Protocol { .. }) => {
                    tracing::warn!("the whole application list: {e}");
                    Duration::from_secs(60)
                }
                Err(e) => {
                    tracing::info!("the whole application list: {e}");
                    backoff.next().unwrap_or(retry::RECONNECT_MAX_DELAY)
                }
            };
            tokio::time::sleep(wait).await;
        }
    });
    DetailsGuard(task.abort_handle())
}

async fn send_details(
    inner: &Inner,
    tx: &mpsc::Sender<Update>,
) -> Result<(), crate::sources::SourceError> {
    let mut list = inner.list_stream(false, false).await?;
    let mut batch: Vec<(AppId, Application)> = Vec::new();
    loop {
        let more = list
            .next(&mut |a| batch.push((id_of(inner, &a), a)))
            .await?;
        if batch.len() >= DETAILS_BATCH || (!more && !batch.is_empty()) {
            let apps = std::mem::take(&mut batch);
            if tx.send(Update::Details { apps }).await.is_err() {
                return Ok(());
            }
        }
        if !more {
            return list.finish().map(drop);
        }
    }
}

/// The projected list as it arrives, sent in parts of `part` apps ([`SUMMARY_PART`]; the
/// last holds 1 to `part`, none when the list is empty) as they decode (see
/// [`Update::Summary`]): the console takes each part in while the rest is on the wire, and
/// the memory of each part's decoded apps serves the next. Each app is packed as it
/// decodes, from the bytes it was decoded from when the board's compaction would not change
/// it, which spares serializing it again. Its resourceVersion, or None when the receiver is
/// gone.
async fn summary(
    inner: &Inner,
    tx: &mpsc::Sender<Update>,
    part: usize,
) -> Result<Option<Option<String>>, crate::sources::SourceError> {
    tracing::debug!(at_ms = %crate::logging::uptime_ms(), cpu_ms = %crate::logging::cpu_ms(), "projected list asked for");
    let mut list = inner.list_stream(true, false).await?;
    tracing::debug!(at_ms = %crate::logging::uptime_ms(), cpu_ms = %crate::logging::cpu_ms(), "projected list answered");
    let mut apps = Vec::new();
    let mut packed = Vec::new();
    let mut first = true;
    let mut count = 0;
    let instance = &inner.instance;
    loop {
        let more = list
            .next_raw(&mut |mut a, raw| {
                packed.push(if is_compact(&a) {
                    Packed::of_json(raw)
                } else {
                    compact_for_board(&mut a);
                    Packed::pack(&a)
                });
                apps.push((id_of(inner, &a), a));
            })
            .await?;
        // A chunk holds any number of apps: whole parts go now, and what is left over
        // (never more than a part, never nothing once any app came) waits for the next
        // chunk or goes last.
        while apps.len() > part {
            // Room for the next part at once: not grown by doubling, each app ~1.9 KB.
            let mut next = Vec::with_capacity(part);
            next.extend(apps.drain(part..));
            let mut next_packed = Vec::with_capacity(part);
            next_packed.extend(packed.drain(part..));
            count += apps.len();
            let whole = Update::Summary {
                instance: instance.clone(),
                apps: std::mem::replace(&mut apps, next),
                packed: std::mem::replace(&mut packed, next_packed),
                first: std::mem::take(&mut first),
                last: false,
            };
            if tx.send(whole).await.is_err() {
                return Ok(None);
            }
        }
        if !more {
            break;
        }
    }
    // The last part waits for the end of the body: only then is the list known whole.
    let rv = list.finish()?;
    count += apps.len();
    let last = Update::Summary {
        instance: instance.clone(),
        apps,
        packed,
        first,
        last: true,
    };
    if tx.send(last).await.is_err() {
        return Ok(None);
    }
    tracing::debug!(at_ms = %crate::logging::uptime_ms(), cpu_ms = %crate::logging::cpu_ms(), apps = count, "projected list read");
    Ok(Some(rv))
}

async fn run_once(inner: &Arc<Inner>, tx: &mpsc::Sender<Update>, since: &mut String) -> Outcome {
    let rv = match summary(inner, tx, SUMMARY_PART).await {
        Ok(Some(rv)) => rv,
        Ok(None) => return Outcome::Closed,
        Err(e @ crate::sources::SourceError::Unauthorized { .. }) => {
            return Outcome::Rejected {
                detail: e.to_string(),
            };
        }
        Err(e) => {
            return Outcome::Lost {
                reason: e.to_string(),
                proved: false,
            };
        }
    };
    if tx
        .send(Update::Connection {
            source: inner.instance.clone(),
            state: Connection::Connected,
        })
        .await
        .is_err()
    {
        return Outcome::Closed;
    }
    *since = now();
    let path = stream_path(rv.as_deref());
    let rb = inner
        .request_with(&inner.stream_client, Method::GET, &path)
        .header(reqwest::header::ACCEPT, "text/event-stream");
    let resp = match tokio::time::timeout(inner.timeout, rb.send()).await {
        Err(_) => {
            return Outcome::Lost {
                reason: format!("{}: no answer to the watch request", inner.base),
                proved: true,
            };
        }
        Ok(Err(e)) => {
            return Outcome::Lost {
                reason: inner.transport_error("watch applications", e).to_string(),
                proved: true,
            };
        }
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return Outcome::Rejected {
            detail: format!("watch applications: HTTP {status}"),
        };
    }
    if !status.is_success() {
        let body = resp.bytes().await.unwrap_or_default();
        return Outcome::Lost {
            reason: inner
                .status_error("watch applications", status, &body)
                .to_string(),
            proved: true,
        };
    }
    // The stream is open (events from here on are not missed): read the rest beside it.
    let _details = details(inner.clone(), tx.clone());
    let mut stream = Box::pin(resp.bytes_stream());
    let mut parser = SseParser::new();
    let mut pending: Vec<Update> = Vec::new();
    let mut failure: Option<String> = None;
    let mut rejected = false;
    let mut last_byte = Instant::now();
    loop {
        let chunk = tokio::select! {
            _ = tx.closed() => return Outcome::Closed,
            c = tokio::time::timeout(IDLE_LIMIT, stream.next()) => c,
        };
        let chunk = match chunk {
            Err(_) => {
                return Outcome::Lost {
                    reason: format!(
                        "no data or keepalive from {} for {}s",
                        inner.base,
                        last_byte.elapsed().as_secs()
                    ),
                    proved: true,
                };
            }
            Ok(None) => {
                return Outcome::Lost {
                    reason: format!("{} closed the application stream", inner.base),
                    proved: true,
                };
            }
            Ok(Some(Err(e))) => {
                return Outcome::Lost {
                    reason: inner.transport_error("application stream", e).to_string(),
                    proved: true,
                };
            }
            Ok(Some(Ok(c))) => c,
        };
        last_byte = Instant::now();
        parser.feed(&chunk, |data| {
            match serde_json::from_slice::<StreamMessage>(data) {
                Ok(StreamMessage {
                    result: Some(ev), ..
                }) => {
                    let id = id_of(inner, &ev.application);
                    pending.push(match ev.kind.as_str() {
                        "DELETED" => Update::Delete(id),
                        _ => Update::Upsert(id, Box::new(ev.application)),
                    });
                }
                Ok(StreamMessage {
                    error: Some(err), ..
                }) => {
                    rejected |= err.http_code == Some(401);
                    failure = Some(format!(
                        "stream error{}: {}",
                        err.http_code.map(|c| format!(" {c}")).unwrap_or_default(),
                        err.message.unwrap_or_default()
                    ));
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!("application stream: an event does not parse: {e}");
                }
            }
        });
        for u in pending.drain(..) {
            if tx.send(u).await.is_err() {
                return Outcome::Closed;
            }
        }
        if let Some(reason) = failure.take() {
            if rejected {
                return Outcome::Rejected { detail: reason };
            }
            return Outcome::Lost {
                reason,
                proved: true,
            };
        }
        *since = now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::estate::Estate;
    use crate::sources::argocd::{ArgoApi, ArgoApiOptions};
    use shipdeck_sandbox::auth::Role;
    use shipdeck_sandbox::{Sandbox, SandboxOptions};

    /// The names the server lists, read with a plain client (not the product's decoding).
    async fn listed(sb: &Sandbox, token: &str) -> Vec<String> {
        let body: serde_json::Value = reqwest::Client::new()
            .get(format!("{}/api/v1/applications", sb.url))
            .bearer_auth(token)
            .send()
            .await
            .expect("list")
            .json()
            .await
            .expect("list body");
        let mut names: Vec<String> = body["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter_map(|a| a["metadata"]["name"].as_str().map(str::to_string))
            .collect();
        names.sort_unstable();
        names
    }

    /// The projected list over real HTTP from the sandbox, in parts of 2: every part but
    /// the last is whole, `first` and `last` mark the ends, the parts hold exactly what the
    /// server lists, and an estate folding them takes out what the list did not hold only
    /// once the last part is in.
    #[tokio::test]
    async fn a_list_read_in_parts_holds_what_the_server_lists() {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let sb = Sandbox::start(SandboxOptions::default())
            .await
            .expect("sandbox starts");
        let token = sb.world.users.token(Role::Admin);
        let api = ArgoApi::new(ArgoApiOptions {
            server: sb.url.clone(),
            token: Some(crate::secrets::Secret::new(&token)),
            ..Default::default()
        })
        .expect("client");
        let truth = listed(&sb, &token).await;
        assert!(truth.len() >= 5, "the default estate lists {truth:?}");

        let (tx, mut rx) = mpsc::channel(1024);
        let rv = summary(&api.inner, &tx, 2).await.expect("the list");
        drop(tx);
        assert!(rv.is_some_and(|v| v.is_some()), "a resourceVersion");
        let mut parts = Vec::new();
        while let Some(u) = rx.recv().await {
            parts.push(u);
        }
        assert_eq!(
            parts.len(),
            truth.len().div_ceil(2),
            "parts of 2, the last 1 or 2"
        );
        let ghost = AppId::new(api.inner.instance.clone(), "argocd", "ghost");
        let mut estate = Estate::new();
        estate.apply(Update::Upsert(ghost.clone(), Box::default()));
        let mut names = Vec::new();
        let count = parts.len();
        for (at, part) in parts.into_iter().enumerate() {
            let Update::Summary {
                apps,
                packed,
                first,
                last,
                ..
            } = &part
            else {
                panic!("part {at} is not a Summary: {part:?}");
            };
            assert_eq!(*first, at == 0, "first only on the first part");
            assert_eq!(*last, at + 1 == count, "last only on the last part");
            if *last {
                assert!((1..=2).contains(&apps.len()), "the last part holds 1 or 2");
            } else {
                assert_eq!(apps.len(), 2, "part {at} is whole");
            }
            assert_eq!(packed.len(), apps.len(), "one packed form per app");
            names.extend(apps.iter().map(|(id, _)| id.name.clone()));
            estate.apply(part);
            assert_eq!(
                estate.get(&ghost).is_some(),
                at + 1 < count,
                "the unlisted app stays until the last part (part {at})"
            );
            assert_eq!(
                estate.listing(),
                at + 1 < count,
                "listing until the last part"
            );
        }
        names.sort_unstable();
        assert_eq!(names, truth);
        let mut held: Vec<String> = estate.apps().map(|e| e.id.name.clone()).collect();
        held.sort_unstable();
        assert_eq!(held, truth);
    }
}
