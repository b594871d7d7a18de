//! Events and logs in API mode, through Argo CD's own endpoints as its UI uses them:
//! `GET /api/v1/applications/{name}/events` for the Application, the same route with
//! `resourceName`/`resourceNamespace`/`resourceUID` for each resource of its tree, and
//! `GET /api/v1/applications/{name}/logs?follow=true`, read as the stream it is.

use super::{Inner, enc};
use crate::model::Application;
use crate::sources::{AppEvent, SourceError, app_event};
use futures::StreamExt;
use reqwest::Method;
use serde::Deserialize;
use tokio::sync::mpsc;

/// Events kept for one app (newest).
pub const EVENT_LIMIT: usize = 500;
/// Resources whose events are asked for, at most (a tree can be large).
const RESOURCE_LIMIT: usize = 200;
/// The longest log line kept; longer lines are cut and marked.
pub const MAX_LINE_BYTES: usize = 16 * 1024;

#[derive(Deserialize)]
struct EventList {
    #[serde(default)]
    items: Option<Vec<k8s_openapi::api::core::v1::Event>>,
}

#[derive(Deserialize, Clone)]
struct TreeNode {
    #[serde(default)]
    kind: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    uid: String,
}

#[derive(Deserialize)]
struct Tree {
    #[serde(default)]
    nodes: Option<Vec<TreeNode>>,
}

async fn list(inner: &Inner, path: &str, what: &str) -> Result<Vec<AppEvent>, SourceError> {
    let l: EventList = inner.send(inner.request(Method::GET, path), what).await?;
    Ok(l.items.unwrap_or_default().iter().map(app_event).collect())
}

/// The Application's events and those of every resource in its tree, oldest first.
pub(super) async fn events(inner: &Inner, app: &Application) -> Result<Vec<AppEvent>, SourceError> {
    let mut out = list(inner, &inner.app_path(app, "/events"), "events").await?;
    let tree: Tree = inner
        .send(
            inner.request(Method::GET, &inner.app_path(app, "/resource-tree")),
            "resource tree",
        )
        .await?;
    let mut nodes: Vec<TreeNode> = tree
        .nodes
        .unwrap_or_default()
        .into_iter()
        .filter(|n| !n.uid.is_empty() && !n.name.is_empty())
        .collect();
    // Workloads and their pods first: that is where a failing rollout says why.
    let rank = |k: &str| match k {
        "Pod" => 0,
        "ReplicaSet" | "StatefulSet" | "DaemonSet" | "Job" => 1,
        "Deployment" => 2,
        _ => 3,
    };
    nodes.sort_by_key(|n| rank(&n.kind));
    nodes.truncate(RESOURCE_LIMIT);
    let results: Vec<Result<Vec<AppEvent>, SourceError>> = futures::stream::iter(nodes)
        .map(|n| async move {
            let path = inner.app_path(
                app,
                &format!(
                    "/events?resourceName={}&resourceNamespace={}&resourceUID={}",
                    enc(&n.name),
                    enc(&n.namespace),
                    enc(&n.uid)
                ),
            );
            let what = format!("events of {} {}/{}", n.kind, n.namespace, n.name);
            list(inner, &path, &what).await
        })
        .buffer_unordered(8)
        .collect()
        .await;
    for r in results {
        match r {
            Ok(v) => out.extend(v),
            // The resource went away between the tree and the question (Argo CD answers
            // "not found as part of application").
            Err(SourceError::NotFound(_)) => {}
            Err(SourceError::Refused(m)) if m.contains("not found as part of application") => {}
            Err(e) => return Err(e),
        }
    }
    out.sort_by(|a, b| a.last_seen.cmp(&b.last_seen));
    let skip = out.len().saturating_sub(EVENT_LIMIT);
    Ok(out.split_off(skip))
}

#[derive(Deserialize)]
struct LogEntry {
    #[serde(default)]
    content: Option<String>,
    #[serde(default)]
    last: Option<bool>,
}

#[derive(Deserialize)]
struct LogMsg {
    #[serde(default)]
    result: Option<LogEntry>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// What one line of the logs stream says.
enum Parsed {
    Line(String),
    Last(Option<String>),
    Error(String),
    Nothing,
}

fn parse(line: &[u8]) -> Parsed {
    let Ok(m) = serde_json::from_slice::<LogMsg>(line) else {
        return Parsed::Nothing;
    };
    if let Some(e) = m.error {
        let msg = e
            .get("message")
            .and_then(|v| v.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| e.to_string());
        return Parsed::Error(crate::model::text::sanitize(&msg).into_owned());
    }
    match m.result {
        Some(LogEntry {
            content,
            last: Some(true),
        }) => Parsed::Last(content.filter(|c| !c.is_empty())),
        Some(LogEntry {
            content: Some(c), ..
        }) => Parsed::Line(c),
        _ => Parsed::Nothing,
    }
}

/// Cut a line to [`MAX_LINE_BYTES`] on a character boundary, marked.
pub fn cap_line(mut s: String) -> String {
    if s.len() > MAX_LINE_BYTES {
        let mut end = MAX_LINE_BYTES;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str(" …[line cut]");
    }
    s
}

/// Follow one pod's logs over `GET /api/v1/applications/{name}/logs?follow=true`: the first
/// (possibly empty) batch as soon as the server accepts, then each chunk's complete lines.
/// Memory: one partial line, at most [`MAX_LINE_BYTES`] (the rest of an overlong line is
/// dropped).
pub(super) async fn follow(
    inner: &Inner,
    app: &Application,
    namespace: &str,
    pod: &str,
    tail: u32,
    tx: mpsc::Sender<Result<Vec<String>, SourceError>>,
) {
    let path = inner.app_path(
        app,
        &format!(
            "/logs?podName={}&namespace={}&tailLines={tail}&follow=true",
            enc(pod),
            enc(namespace)
        ),
    );
    let what = format!("logs of {namespace}/{pod}");
    let rb = inner.request_with(&inner.stream_client, Method::GET, &path);
    let resp = tokio::select! {
        _ = tx.closed() => return,
        r = tokio::time::timeout(inner.timeout, rb.send()) => r,
    };
    let resp = match resp {
        Err(_) => {
            let _ = tx
                .send(Err(SourceError::Timeout {
                    what: format!("{what} ({})", inner.base),
                    seconds: inner.timeout.as_secs(),
                }))
                .await;
            return;
        }
        Ok(Err(e)) => {
            let _ = tx.send(Err(inner.transport_error(&what, e))).await;
            return;
        }
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    if !status.is_success() {
        let body = resp.bytes().await.unwrap_or_default();
        let _ = tx.send(Err(inner.status_error(&what, status, &body))).await;
        return;
    }
    // Connected: say so at once, lines or not.
    if tx.send(Ok(Vec::new())).await.is_err() {
        return;
    }
    let mut stream = Box::pin(resp.bytes_stream());
    let mut partial: Vec<u8> = Vec::new();
    let mut overlong = false;
    loop {
        let chunk = tokio::select! {
            _ = tx.closed() => return,
            c = stream.next() => c,
        };
        let chunk = match chunk {
            None => return,
            Some(Err(e)) => {
                let _ = tx.send(Err(inner.transport_error(&what, e))).await;
                return;
            }
            Some(Ok(c)) => c,
        };
        let mut batch = Vec::new();
        let mut end: Option<Result<(), String>> = None;
        for piece in chunk.split_inclusive(|b| *b == b'\n') {
            let complete = piece.last() == Some(&b'\n');
            let body = piece.strip_suffix(b"\n").unwrap_or(piece);
            if !overlong {
                let room = MAX_LINE_BYTES * 2 - partial.len().min(MAX_LINE_BYTES * 2);
                if body.len() > room {
                    // A stream line (JSON around the log line) beyond any sane size: keep
                    // nothing of it rather than grow.
                    overlong = true;
                    partial.clear();
                } else {
                    partial.extend_from_slice(body);
                }
            }
            if !complete {
                continue;
            }
            if overlong {
                batch.push("…[a log line too long to show was dropped]".to_string());
                overlong = false;
                continue;
            }
            match parse(&partial) {
                Parsed::Line(l) => batch.push(cap_line(l)),
                Parsed::Last(l) => {
                    batch.extend(l.map(cap_line));
                    end = Some(Ok(()));
                }
                Parsed::Error(e) => end = Some(Err(e)),
                Parsed::Nothing => {}
            }
            partial.clear();
            if end.is_some() {
                break;
            }
        }
        if !batch.is_empty() && tx.send(Ok(batch)).await.is_err() {
            return;
        }
        match end {
            None => {}
            Some(Ok(())) => return,
            Some(Err(e)) => {
                let _ = tx
                    .send(Err(SourceError::Refused(format!("{what}: {e}"))))
                    .await;
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_lines_parse() {
        assert!(
            matches!(parse(br#"{"result":{"content":"a","podName":"p"}}"#), Parsed::Line(l) if l == "a")
        );
        assert!(matches!(
            parse(br#"{"result":{"content":"","last":true}}"#),
            Parsed::Last(None)
        ));
        assert!(
            matches!(parse(br#"{"error":{"message":"boom"}}"#), Parsed::Error(e) if e == "boom")
        );
    }

    #[test]
    fn long_lines_are_cut_on_a_char_boundary() {
        let l = cap_line("é".repeat(MAX_LINE_BYTES));
        assert!(l.len() <= MAX_LINE_BYTES + 20);
        assert!(l.ends_with("[line cut]"));
    }
}
