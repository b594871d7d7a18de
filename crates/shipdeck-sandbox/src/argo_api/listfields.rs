//! `fields` on the application **list** (`GET /api/v1/applications`), as Argo CD's API
//! server applies it (`pkg/apiclient/application/forwarder_overwrite.go`): not the generic
//! path filter the stream uses, but a fixed table of fields it knows how to pick out of an
//! Application. A named path outside the table is dropped without a word, so a client that
//! asks the list for `items.status.history` gets no history at all. The quirks are the
//! server's:
//! - a map, slice or pointer field that is unset is written as `null` (Go boxes the nil);
//! - `status.operationState.operation.sync` holds the operation's *sync result*;
//! - `operation.sync`, `status.operationState.*` and `status.resources` appear only when
//!   the app has an operation, an operation state, resources;
//! - the list's own `metadata` is always written; `-` before the value selects every table
//!   field not named.

use super::apps::Fields;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The table, in the server's order of output (sorted by name).
const TABLE: &[&str] = &[
    "metadata.annotations",
    "metadata.creationTimestamp",
    "metadata.deletionTimestamp",
    "metadata.labels",
    "metadata.name",
    "metadata.namespace",
    "operation.sync",
    "spec",
    "spec.destination",
    "spec.project",
    "spec.source",
    "spec.sourceHydrator",
    "spec.sources",
    "spec.syncPolicy",
    "status.health",
    "status.operationState.finishedAt",
    "status.operationState.operation.sync",
    "status.operationState.phase",
    "status.operationState.startedAt",
    "status.resources",
    "status.sourceHydrator",
    "status.summary",
    "status.sync.revision",
    "status.sync.status",
];

/// The table fields one request selects, an ancestor covering its descendants.
pub struct ListFields {
    selected: Vec<&'static str>,
}

impl ListFields {
    pub fn of(f: &Fields) -> Self {
        let named: Vec<&'static str> = TABLE
            .iter()
            .copied()
            .filter(|t| f.names(&format!("items.{t}")) != f.excludes())
            .collect();
        let selected = named
            .iter()
            .copied()
            .filter(|t| {
                !named
                    .iter()
                    .any(|a| a != t && t.starts_with(a) && t.as_bytes()[a.len()] == b'.')
            })
            .collect();
        Self { selected }
    }

    /// One item of the list as the server writes it.
    #[cfg(test)]
    pub fn item(&self, app: &Value) -> Value {
        serde_json::to_value(self.node(app)).unwrap_or(Value::Null)
    }

    /// One item of the list as the server writes it, borrowing the app's own values (a
    /// list of 50,000 apps is written without copying any of them).
    pub fn node<'a>(&self, app: &'a Value) -> Node<'a> {
        let mut out = BTreeMap::new();
        for field in &self.selected {
            let Some(value) = pick(field, app) else {
                continue;
            };
            let mut at = &mut out;
            let mut parts = field.split('.').peekable();
            while let Some(part) = parts.next() {
                if parts.peek().is_none() {
                    at.insert(part, value);
                    break;
                }
                let next = at.entry(part).or_insert_with(|| Node::Obj(BTreeMap::new()));
                let Node::Obj(m) = next else {
                    break;
                };
                at = m;
            }
        }
        Node::Obj(out)
    }
}

/// A projected item: the app's own values where present, the zero values Go writes for
/// the unset ones, and the objects that hold them (keys in sorted order, as
/// `serde_json::Map` writes them).
pub enum Node<'a> {
    Ref(&'a Value),
    Own(Value),
    Obj(BTreeMap<&'static str, Node<'a>>),
}

impl serde::Serialize for Node<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Ref(v) => v.serialize(s),
            Node::Own(v) => v.serialize(s),
            Node::Obj(m) => s.collect_map(m.iter()),
        }
    }
}

fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(v, |v, k| v.get(k))
        .filter(|v| !v.is_null())
}

/// A value that may be unset: present, or `null` as Go writes a nil map, slice or pointer.
fn or_null(v: Option<&Value>) -> Node<'_> {
    v.map_or(Node::Own(Value::Null), Node::Ref)
}

/// A Go struct or string value: present, or its zero value.
fn or_zero(v: Option<&Value>, zero: Value) -> Node<'_> {
    v.map_or(Node::Own(zero), Node::Ref)
}

/// The value the server's extractor returns for `field`; None when it returns nil (the
/// field is left out of the item).
fn pick<'a>(field: &str, app: &'a Value) -> Option<Node<'a>> {
    let s = |p: &str| at(app, p);
    let empty = || Value::Object(Map::new());
    let text = || Value::String(String::new());
    let op_state = s("status.operationState");
    Some(match field {
        "metadata.name" | "metadata.namespace" | "spec.project" => or_zero(s(field), text()),
        "metadata.annotations"
        | "metadata.labels"
        | "metadata.creationTimestamp"
        | "metadata.deletionTimestamp"
        | "spec.source"
        | "spec.sources"
        | "spec.sourceHydrator"
        | "spec.syncPolicy" => or_null(s(field)),
        "spec"
        | "spec.destination"
        | "status.sourceHydrator"
        | "status.summary"
        | "status.health" => or_zero(s(field), empty()),
        "status.sync.status" | "status.sync.revision" => or_zero(s(field), text()),
        "status.resources" => {
            Node::Ref(s(field).filter(|r| r.as_array().is_some_and(|a| !a.is_empty()))?)
        }
        "operation.sync" => or_null(s("operation")?.get("sync")),
        "status.operationState.phase" => or_zero(op_state?.get("phase"), text()),
        "status.operationState.startedAt" => or_null(op_state?.get("startedAt")),
        "status.operationState.finishedAt" => or_null(op_state?.get("finishedAt")),
        "status.operationState.operation.sync" => or_null(op_state?.get("syncResult")),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list(q: &str, app: Value) -> Value {
        let q = vec![("fields".to_string(), q.to_string())];
        let f = Fields::of(&q).unwrap_or_default();
        ListFields::of(&f).item(&app)
    }

    #[test]
    fn paths_outside_the_table_are_dropped_and_unset_maps_are_null() {
        let app = json!({
            "metadata": {"name": "a", "namespace": "argocd", "uid": "u", "resourceVersion": "9"},
            "spec": {"project": "p"},
            "status": {"history": [{"id": 1}], "sync": {"status": "Synced"},
                       "conditions": [{"type": "SyncError"}], "reconciledAt": "t"}
        });
        let got = list(
            "items.metadata.name,items.metadata.annotations,items.metadata.uid,\
             items.metadata.resourceVersion,items.status.history,items.status.sync.status,\
             items.status.conditions,items.status.reconciledAt,items.operation.sync",
            app,
        );
        assert_eq!(
            got,
            json!({"metadata": {"name": "a", "annotations": null},
                   "status": {"sync": {"status": "Synced"}}})
        );
    }

    #[test]
    fn the_operation_states_sync_is_its_sync_result_and_an_ancestor_covers_its_inside() {
        let app = json!({
            "metadata": {"name": "a"},
            "spec": {"project": "p", "destination": {"namespace": "n"}},
            "operation": {"sync": {"revision": "r2"}, "initiatedBy": {"username": "x"}},
            "status": {"operationState": {"phase": "Running", "startedAt": "t0",
                       "message": "m", "syncResult": {"revision": "r1"},
                       "operation": {"sync": {"revision": "r0"}}}}
        });
        let got = list(
            "items.spec,items.spec.project,items.operation.sync,\
             items.status.operationState.phase,items.status.operationState.operation.sync,\
             items.status.operationState.message",
            app,
        );
        assert_eq!(
            got,
            json!({"spec": {"project": "p", "destination": {"namespace": "n"}},
                   "operation": {"sync": {"revision": "r2"}},
                   "status": {"operationState": {"phase": "Running",
                              "operation": {"sync": {"revision": "r1"}}}}})
        );
    }

    #[test]
    fn a_leading_minus_selects_every_table_field_not_named() {
        let app = json!({"metadata": {"name": "a", "labels": {"env": "dev"}},
                         "status": {"resources": [], "history": [{"id": 1}]}});
        let got = list("-items.metadata.labels,items.status.health", app);
        let m = got["metadata"].as_object().cloned().unwrap_or_default();
        assert!(!m.contains_key("labels"), "{got}");
        assert_eq!(got["metadata"]["name"], "a");
        assert!(got["status"].get("health").is_none(), "{got}");
        assert!(got["status"].get("history").is_none(), "{got}");
        assert!(
            got["status"].get("resources").is_none(),
            "empty resources are left out: {got}"
        );
        assert_eq!(got["status"]["sync"], json!({"status": "", "revision": ""}));
    }
}
