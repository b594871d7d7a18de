//! Kubernetes Events as the sandbox's controllers record them (`kubectl get events`, the
//! Argo CD events API and the console's event panes read them).

use super::store::{EVENTS, Store};
use serde_json::{Value, json};

/// Record an Event about `involved` (any stored object) in its namespace.
pub fn emit(
    store: &Store,
    cluster: &str,
    involved: &Value,
    event_type: &str,
    reason: &str,
    message: &str,
    component: &str,
) {
    emit_at(
        store,
        cluster,
        involved,
        (event_type, reason, message),
        component,
        chrono::Utc::now(),
    );
}

/// [`emit`] as of a past time `at` (the estate's seeded history).
pub fn emit_at(
    store: &Store,
    cluster: &str,
    involved: &Value,
    (event_type, reason, message): (&str, &str, &str),
    component: &str,
    at: chrono::DateTime<chrono::Utc>,
) {
    let meta = &involved["metadata"];
    let namespace = meta["namespace"].as_str().unwrap_or("default");
    let name = meta["name"].as_str().unwrap_or("");
    let now = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let event = json!({
        "metadata": {"generateName": format!("{name}."), "namespace": namespace},
        "involvedObject": {
            "apiVersion": involved["apiVersion"],
            "kind": involved["kind"],
            "name": name,
            "namespace": namespace,
            "uid": meta["uid"],
            "resourceVersion": meta["resourceVersion"],
        },
        "reason": reason,
        "message": message,
        "type": event_type,
        "source": {"component": component},
        "reportingComponent": component,
        // Set as the events.k8s.io recorder does, so clients of that version (whose
        // models require it) can read every Event.
        "eventTime": at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "reportingInstance": format!("{component}-sandbox"),
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    });
    if let Err(e) = store.create(cluster, EVENTS, event) {
        tracing::debug!("event not recorded: {e}");
    }
}
