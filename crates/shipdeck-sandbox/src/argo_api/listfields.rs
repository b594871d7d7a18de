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

/// The table fields one request selects, an ancestor covering its descendants, each
/// resolved once per request: where it goes in an item and which extractor finds it.
pub struct ListFields {
    selected: Vec<Selected>,
}

struct Selected {
    /// The field's path in the item, e.g. `["status", "sync", "status"]`.
    parts: Vec<&'static str>,
    pick: Pick,
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
            .filter_map(|t| {
                Some(Selected {
                    parts: t.split('.').collect(),
                    pick: Pick::of(t)?,
                })
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
    /// list of 50,000 apps is written without copying any of them). The app's objects are
    /// looked up once per app, not once per field.
    pub fn node<'a>(&self, app: &'a Value) -> Node<'a> {
        let at = Parents::of(app);
        let mut out = BTreeMap::new();
        for sel in &self.selected {
            let Some(value) = sel.pick.value(&at) else {
                continue;
            };
            let mut at = &mut out;
            let mut parts = sel.parts.iter().copied().peekable();
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

/// A member of an object that may be missing or `null` (both are unset).
fn get<'a>(v: Option<&'a Value>, key: &str) -> Option<&'a Value> {
    v?.get(key).filter(|v| !v.is_null())
}

/// The objects of one app the table's fields are found in (unset ones are None).
struct Parents<'a> {
    metadata: Option<&'a Value>,
    spec: Option<&'a Value>,
    operation: Option<&'a Value>,
    status: Option<&'a Value>,
    sync: Option<&'a Value>,
    op_state: Option<&'a Value>,
}

impl<'a> Parents<'a> {
    fn of(app: &'a Value) -> Self {
        let app = Some(app);
        let status = get(app, "status");
        Self {
            metadata: get(app, "metadata"),
            spec: get(app, "spec"),
            operation: get(app, "operation"),
            status,
            sync: get(status, "sync"),
            op_state: get(status, "operationState"),
        }
    }
}

/// A value that may be unset: present, or `null` as Go writes a nil map, slice or pointer.
fn or_null(v: Option<&Value>) -> Node<'_> {
    v.map_or(Node::Own(Value::Null), Node::Ref)
}

/// A Go struct or string value: present, or its zero value.
fn or_zero(v: Option<&Value>, zero: Value) -> Node<'_> {
    v.map_or(Node::Own(zero), Node::Ref)
}

/// The zero values Go writes for an unset field.
#[derive(Clone, Copy)]
enum Zero {
    /// A nil map, slice or pointer: `null`.
    Null,
    /// A string: `""`.
    Text,
    /// A struct: `{}`.
    Empty,
}

impl Zero {
    fn or<'a>(self, v: Option<&'a Value>) -> Node<'a> {
        match self {
            Zero::Null => or_null(v),
            Zero::Text => or_zero(v, Value::String(String::new())),
            Zero::Empty => or_zero(v, Value::Object(Map::new())),
        }
    }
}

/// Which object a table field's value is a member of.
#[derive(Clone, Copy)]
enum Parent {
    Metadata,
    Spec,
    Status,
    Sync,
}

/// How the server's extractor finds one table field.
#[derive(Clone, Copy)]
enum Pick {
    /// A member of a parent object, or its zero value.
    Member(Parent, &'static str, Zero),
    /// The whole spec, `{}` when unset.
    Spec,
    /// `status.resources`, left out when unset or empty.
    Resources,
    /// `operation.sync`, left out when the app has no operation.
    OperationSync,
    /// A member of `status.operationState`, left out when the app has none; the key as the
    /// server reads it (`operation.sync` is the operation's `syncResult`).
    OpState(&'static str, Zero),
}

impl Pick {
    fn of(field: &'static str) -> Option<Self> {
        use Parent::*;
        let member = |p, f: &'static str, z| {
            let key = f.rsplit('.').next().unwrap_or(f);
            Pick::Member(p, key, z)
        };
        Some(match field {
            "metadata.name" | "metadata.namespace" => member(Metadata, field, Zero::Text),
            "spec.project" => member(Spec, field, Zero::Text),
            "metadata.annotations"
            | "metadata.labels"
            | "metadata.creationTimestamp"
            | "metadata.deletionTimestamp" => member(Metadata, field, Zero::Null),
            "spec.source" | "spec.sources" | "spec.sourceHydrator" | "spec.syncPolicy" => {
                member(Spec, field, Zero::Null)
            }
            "spec" => Pick::Spec,
            "spec.destination" => member(Spec, field, Zero::Empty),
            "status.sourceHydrator" | "status.summary" | "status.health" => {
                member(Status, field, Zero::Empty)
            }
            "status.sync.status" | "status.sync.revision" => member(Sync, field, Zero::Text),
            "status.resources" => Pick::Resources,
            "operation.sync" => Pick::OperationSync,
            "status.operationState.phase" => Pick::OpState("phase", Zero::Text),
            "status.operationState.startedAt" => Pick::OpState("startedAt", Zero::Null),
            "status.operationState.finishedAt" => Pick::OpState("finishedAt", Zero::Null),
            "status.operationState.operation.sync" => Pick::OpState("syncResult", Zero::Null),
            _ => return None,
        })
    }

    /// The value the server's extractor returns; None when it returns nil (the field is
    /// left out of the item).
    fn value<'a>(self, at: &Parents<'a>) -> Option<Node<'a>> {
        Some(match self {
            Pick::Member(parent, key, zero) => {
                let p = match parent {
                    Parent::Metadata => at.metadata,
                    Parent::Spec => at.spec,
                    Parent::Status => at.status,
                    Parent::Sync => at.sync,
                };
                zero.or(get(p, key))
            }
            Pick::Spec => Zero::Empty.or(at.spec),
            Pick::Resources => Node::Ref(
                get(at.status, "resources")
                    .filter(|r| r.as_array().is_some_and(|a| !a.is_empty()))?,
            ),
            Pick::OperationSync => or_null(at.operation?.get("sync")),
            Pick::OpState(key, zero) => zero.or(at.op_state?.get(key)),
        })
    }
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
    fn every_table_field_has_an_extractor() {
        let missing: Vec<&str> = TABLE
            .iter()
            .copied()
            .filter(|t| Pick::of(t).is_none())
            .collect();
        assert!(missing.is_empty(), "{missing:?}");
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
