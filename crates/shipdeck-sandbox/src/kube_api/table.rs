//! The `meta.k8s.io/v1` Table format kubectl asks for (`Accept: ...;as=Table`): the columns
//! kubectl shows per type, the Application CRD's printer columns, NAME/AGE otherwise. Rows
//! are computed from each object alone, so a list is linear in its size.

use crate::store::ResourceType;
use serde_json::{Value, json};

/// What each row carries as `object` (the `includeObject` query parameter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IncludeObject {
    None,
    Metadata,
    Object,
}

impl IncludeObject {
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => Self::None,
            Some("Object") => Self::Object,
            _ => Self::Metadata,
        }
    }
}

/// Whether an Accept header asks for a Table.
pub fn wants_table(accept: &str) -> bool {
    accept.contains("as=Table")
}

fn col(name: &str, kind: &str, description: &str, priority: u32) -> Value {
    let format = if name == "Name" { "name" } else { "" };
    json!({"name": name, "type": kind, "format": format, "description": description, "priority": priority})
}

pub fn columns(res: ResourceType) -> Vec<Value> {
    let name = col(
        "Name",
        "string",
        "Name must be unique within a namespace.",
        0,
    );
    let age = col(
        "Age",
        "string",
        "CreationTimestamp is a timestamp representing the server time when this object was created.",
        0,
    );
    match res.kind {
        "Pod" => vec![
            name,
            col(
                "Ready",
                "string",
                "The aggregate readiness state of this pod for accepting traffic.",
                0,
            ),
            col(
                "Status",
                "string",
                "The aggregate status of the containers in this pod.",
                0,
            ),
            col(
                "Restarts",
                "string",
                "The number of times the containers in this pod have been restarted.",
                0,
            ),
            age,
        ],
        "Deployment" => vec![
            name,
            col("Ready", "string", "Number of the pod with ready state", 0),
            col(
                "Up-to-date",
                "integer",
                "Total number of non-terminated pods targeted by this deployment that have the desired template spec.",
                0,
            ),
            col(
                "Available",
                "integer",
                "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.",
                0,
            ),
            age,
        ],
        "ReplicaSet" => vec![
            name,
            col("Desired", "integer", "Number of desired pods.", 0),
            col("Current", "integer", "Number of actual pods.", 0),
            col("Ready", "integer", "Number of ready pods.", 0),
            age,
        ],
        "Application" => vec![
            name,
            col("Sync Status", "string", "", 0),
            col("Health Status", "string", "", 0),
            col("Revision", "string", "", 10),
            col("Project", "string", "", 10),
        ],
        "Namespace" => vec![
            name,
            col("Status", "string", "The status of the namespace", 0),
            age,
        ],
        "Event" => vec![
            col(
                "Last Seen",
                "string",
                "Time since the event was last seen.",
                0,
            ),
            col("Type", "string", "Type of this event (Normal, Warning).", 0),
            col("Reason", "string", "Why the action was taken.", 0),
            col("Object", "string", "The object this event is about.", 0),
            col(
                "Message",
                "string",
                "A human-readable description of the status of this operation.",
                0,
            ),
        ],
        "Service" => vec![
            name,
            col("Type", "string", "The type of the service.", 0),
            col("Cluster-IP", "string", "The cluster IP of the service.", 0),
            col(
                "External-IP",
                "string",
                "The external IPs of the service.",
                0,
            ),
            col("Port(s)", "string", "The ports of the service.", 0),
            age,
        ],
        "ConfigMap" => vec![name, col("Data", "integer", "Number of keys.", 0), age],
        "Secret" => vec![
            name,
            col("Type", "string", "The type of the secret.", 0),
            col("Data", "integer", "Number of keys.", 0),
            age,
        ],
        _ => vec![name, age],
    }
}

/// `HumanDuration` as kubectl prints ages: 45s, 3m10s, 25m, 5h10m, 3d4h, 120d.
pub fn human_age(secs: i64) -> String {
    let s = secs.max(0);
    if s < 120 {
        format!("{s}s")
    } else if s < 600 {
        let (m, r) = (s / 60, s % 60);
        if r == 0 {
            format!("{m}m")
        } else {
            format!("{m}m{r}s")
        }
    } else if s < 3 * 3600 {
        format!("{}m", s / 60)
    } else if s < 8 * 3600 {
        let (h, m) = (s / 3600, (s % 3600) / 60);
        if m == 0 {
            format!("{h}h")
        } else {
            format!("{h}h{m}m")
        }
    } else if s < 48 * 3600 {
        format!("{}h", s / 3600)
    } else if s < 8 * 86400 {
        let (d, h) = (s / 86400, (s % 86400) / 3600);
        if h == 0 {
            format!("{d}d")
        } else {
            format!("{d}d{h}h")
        }
    } else if s < 730 * 86400 {
        format!("{}d", s / 86400)
    } else {
        format!("{}y", s / (365 * 86400))
    }
}

fn age_of(ts: Option<&str>, now: chrono::DateTime<chrono::Utc>) -> String {
    match ts.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) {
        Some(t) => human_age((now - t.with_timezone(&chrono::Utc)).num_seconds()),
        None => "<unknown>".into(),
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn pod_status(obj: &Value) -> String {
    if obj["metadata"]["deletionTimestamp"].is_string() {
        return "Terminating".into();
    }
    let statuses = obj["status"]["containerStatuses"].as_array();
    for cs in statuses.into_iter().flatten() {
        if let Some(r) = cs["state"]["waiting"]["reason"].as_str() {
            return r.to_string();
        }
        if let Some(r) = cs["state"]["terminated"]["reason"].as_str() {
            return r.to_string();
        }
    }
    let phase = s(&obj["status"]["phase"]);
    if phase.is_empty() {
        "Pending".into()
    } else {
        phase.into()
    }
}

/// The cells of one row.
pub fn cells(res: ResourceType, obj: &Value, now: chrono::DateTime<chrono::Utc>) -> Vec<Value> {
    let meta = &obj["metadata"];
    let name = json!(s(&meta["name"]));
    let age = json!(age_of(meta["creationTimestamp"].as_str(), now));
    let st = &obj["status"];
    match res.kind {
        "Pod" => {
            let total = obj["spec"]["containers"].as_array().map_or(0, Vec::len);
            let statuses = st["containerStatuses"].as_array();
            let ready = statuses
                .into_iter()
                .flatten()
                .filter(|c| c["ready"].as_bool() == Some(true))
                .count();
            let restarts: i64 = statuses
                .into_iter()
                .flatten()
                .map(|c| int(&c["restartCount"]))
                .sum();
            vec![
                name,
                json!(format!("{ready}/{total}")),
                json!(pod_status(obj)),
                json!(restarts.to_string()),
                age,
            ]
        }
        "Deployment" => vec![
            name,
            json!(format!(
                "{}/{}",
                int(&st["readyReplicas"]),
                obj["spec"]["replicas"].as_i64().unwrap_or(1)
            )),
            json!(int(&st["updatedReplicas"])),
            json!(int(&st["availableReplicas"])),
            age,
        ],
        "ReplicaSet" => vec![
            name,
            json!(obj["spec"]["replicas"].as_i64().unwrap_or(1)),
            json!(int(&st["replicas"])),
            json!(int(&st["readyReplicas"])),
            age,
        ],
        "Application" => vec![
            name,
            json!(s(&st["sync"]["status"])),
            json!(s(&st["health"]["status"])),
            json!(s(&st["sync"]["revision"])),
            json!(s(&obj["spec"]["project"])),
        ],
        "Namespace" => {
            let phase = s(&st["phase"]);
            vec![
                name,
                json!(if phase.is_empty() { "Active" } else { phase }),
                age,
            ]
        }
        "Event" => {
            let last = obj["lastTimestamp"]
                .as_str()
                .or(obj["eventTime"].as_str())
                .or(meta["creationTimestamp"].as_str());
            let io = &obj["involvedObject"];
            vec![
                json!(age_of(last, now)),
                json!(s(&obj["type"])),
                json!(s(&obj["reason"])),
                json!(format!(
                    "{}/{}",
                    s(&io["kind"]).to_ascii_lowercase(),
                    s(&io["name"])
                )),
                json!(s(&obj["message"])),
            ]
        }
        "Service" => {
            let spec = &obj["spec"];
            let ports: Vec<String> = spec["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| {
                    format!(
                        "{}/{}",
                        p["port"].as_i64().unwrap_or(0),
                        p["protocol"].as_str().unwrap_or("TCP")
                    )
                })
                .collect();
            let kind = spec["type"].as_str().unwrap_or("ClusterIP");
            let ip = spec["clusterIP"].as_str().unwrap_or("<none>");
            let ports = if ports.is_empty() {
                "<none>".to_string()
            } else {
                ports.join(",")
            };
            vec![
                name,
                json!(kind),
                json!(ip),
                json!("<none>"),
                json!(ports),
                age,
            ]
        }
        "ConfigMap" => {
            let n = obj["data"].as_object().map_or(0, |m| m.len())
                + obj["binaryData"].as_object().map_or(0, |m| m.len());
            vec![name, json!(n), age]
        }
        "Secret" => {
            let n = obj["data"].as_object().map_or(0, |m| m.len());
            vec![
                name,
                json!(obj["type"].as_str().unwrap_or("Opaque")),
                json!(n),
                age,
            ]
        }
        _ => vec![name, age],
    }
}

/// One row: cells plus the object as `includeObject` asks.
pub fn row(
    res: ResourceType,
    obj: &Value,
    include: IncludeObject,
    now: chrono::DateTime<chrono::Utc>,
) -> Value {
    let mut r = json!({"cells": cells(res, obj, now)});
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => {
            r["object"] = json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": obj["metadata"],
            });
        }
        IncludeObject::Object => r["object"] = obj.clone(),
    }
    r
}

/// Write a whole Table of `objects` straight into bytes: rows are encoded one by one from
/// the stored objects, with no per-row copy of their metadata (10,000 Applications).
pub fn write_table<'a>(
    res: ResourceType,
    objects: impl Iterator<Item = &'a Value>,
    rv: &str,
    include: IncludeObject,
) -> Result<Vec<u8>, serde_json::Error> {
    let now = chrono::Utc::now();
    let mut buf = Vec::with_capacity(64 * 1024);
    buf.extend_from_slice(
        br#"{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":{"resourceVersion":"#,
    );
    serde_json::to_writer(&mut buf, rv)?;
    buf.extend_from_slice(br#"},"columnDefinitions":"#);
    serde_json::to_writer(&mut buf, &columns(res))?;
    buf.extend_from_slice(br#","rows":["#);
    for (i, obj) in objects.enumerate() {
        if i > 0 {
            buf.push(b',');
        }
        buf.extend_from_slice(br#"{"cells":"#);
        serde_json::to_writer(&mut buf, &cells(res, obj, now))?;
        match include {
            IncludeObject::None => {}
            IncludeObject::Metadata => {
                buf.extend_from_slice(
                    br#","object":{"kind":"PartialObjectMetadata","apiVersion":"meta.k8s.io/v1","metadata":"#,
                );
                serde_json::to_writer(&mut buf, &obj["metadata"])?;
                buf.push(b'}');
            }
            IncludeObject::Object => {
                buf.extend_from_slice(br#","object":"#);
                serde_json::to_writer(&mut buf, obj)?;
            }
        }
        buf.push(b'}');
    }
    buf.extend_from_slice(b"]}");
    Ok(buf)
}

/// A Table of the given rows (`with_columns` false for watch events after the first).
pub fn table(res: ResourceType, rows: Vec<Value>, rv: &str, with_columns: bool) -> Value {
    let columns = if with_columns {
        columns(res)
    } else {
        Vec::new()
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": columns,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{APPLICATIONS, PODS};

    #[test]
    fn pod_and_application_cells() {
        let now = chrono::Utc::now();
        let pod = json!({"metadata": {"name": "web-1", "creationTimestamp": now.to_rfc3339()},
            "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
            "status": {"phase": "Running", "containerStatuses": [
                {"ready": true, "restartCount": 2, "state": {"running": {}}},
                {"ready": false, "restartCount": 1, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}});
        let c = cells(PODS, &pod, now);
        assert_eq!(c[1], "1/2");
        assert_eq!(c[2], "CrashLoopBackOff");
        assert_eq!(c[3], "3");
        let app = json!({"metadata": {"name": "web"}, "status": {"sync": {"status": "OutOfSync"}, "health": {"status": "Healthy"}}});
        let c = cells(APPLICATIONS, &app, now);
        assert_eq!(
            (c[1].as_str(), c[2].as_str()),
            (Some("OutOfSync"), Some("Healthy"))
        );
        assert_eq!(columns(APPLICATIONS).len(), c.len());
        assert_eq!(human_age(200), "3m20s");
        let bytes = write_table(
            APPLICATIONS,
            [&app, &app].into_iter(),
            "7",
            IncludeObject::Metadata,
        )
        .unwrap();
        let t: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(t["rows"][1]["cells"][1], "OutOfSync");
        assert_eq!(t["rows"][0]["object"]["metadata"]["name"], "web");
        assert_eq!(t["metadata"]["resourceVersion"], "7");
        assert_eq!(human_age(30 * 3600), "30h");
    }
}
