//! `follow=true` on the logs routes: the stream stays open, as Argo CD's does, and sends
//! each pod's new lines as its containers write them (the sandbox's lines follow from pod
//! state, so it looks again every simulated second). It ends when the client goes away or
//! the app is deleted; memory per stream is the last lines seen per pod, nothing more.

use super::apps::find;
use super::resources::{app_pods, entry_line, tail};
use crate::World;
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

struct Follow {
    world: Arc<World>,
    app: Value,
    q: Vec<(String, String)>,
    /// Lines already sent, per pod (only the pod's current lines are kept).
    sent: HashMap<String, Vec<String>>,
    first: bool,
    done: bool,
}

impl Follow {
    /// New lines since the last look, one JSON entry per line.
    fn fresh(&mut self) -> String {
        let (cluster, pods) = app_pods(&self.world, &self.app, &self.q);
        let mut out = String::new();
        let mut now_sent = HashMap::new();
        for p in pods {
            let ns = p["metadata"]["namespace"].as_str().unwrap_or("");
            let pname = p["metadata"]["name"].as_str().unwrap_or("").to_string();
            let lines = crate::controller::deploy::pod_log_lines(&self.world, &cluster, ns, &pname);
            let before = self.sent.get(&pname).map(Vec::as_slice).unwrap_or_default();
            // Only the tail on the first look, then what was not sent before.
            let new: Vec<String> = if self.first {
                tail(lines.clone(), &self.q)
            } else {
                let unsent: Vec<String> = lines
                    .iter()
                    .filter(|l| !before.contains(l))
                    .cloned()
                    .collect();
                // The filter still applies; tailLines only to the first look.
                let filter: Vec<(String, String)> = self
                    .q
                    .iter()
                    .filter(|(k, _)| k == "filter")
                    .cloned()
                    .collect();
                tail(unsent, &filter)
            };
            for l in &new {
                out.push_str(&entry_line(&pname, l));
            }
            now_sent.insert(pname, lines);
        }
        self.sent = now_sent;
        self.first = false;
        out
    }
}

pub fn follow(world: Arc<World>, app: Value, q: Vec<(String, String)>) -> Response {
    let state = Follow {
        world,
        app,
        q,
        sent: HashMap::new(),
        first: true,
        done: false,
    };
    let stream = futures::stream::unfold(state, |mut st| async move {
        if st.done {
            return None;
        }
        loop {
            if !st.first {
                tokio::time::sleep(st.world.clock.wall(Duration::from_secs(1))).await;
            }
            let name = st.app["metadata"]["name"]
                .as_str()
                .unwrap_or("")
                .to_string();
            match find(&st.world, &name) {
                Some(app) => st.app = (*app).clone(),
                None => {
                    st.done = true;
                    let now =
                        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
                    let last = json!({"result": {"content": "", "timeStamp": now,
                        "timeStampStr": now, "last": true}});
                    return Some((Ok::<_, std::convert::Infallible>(format!("{last}\n")), st));
                }
            }
            let chunk = st.fresh();
            if !chunk.is_empty() {
                return Some((Ok(chunk), st));
            }
        }
    });
    (
        [("content-type", "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}
