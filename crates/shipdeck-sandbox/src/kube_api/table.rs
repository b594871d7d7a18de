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
        "StatefulSet" => vec![
            name,
            col("Ready", "string", "Number of the pod with ready state", 0),
            age,
            containers_col(),
            images_col(),
        ],
        "DaemonSet" => vec![
            name,
            col(
                "Desired",
                "integer",
                "The total number of nodes that should be running the daemon pod (including nodes correctly running the daemon pod).",
                0,
            ),
            col(
                "Current",
                "integer",
                "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod.",
                0,
            ),
            col(
                "Ready",
                "integer",
                "numberReady is the number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition.",
                0,
            ),
            col(
                "Up-to-date",
                "integer",
                "The total number of nodes that are running updated daemon pod",
                0,
            ),
            col(
                "Available",
                "integer",
                "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available (ready for at least spec.minReadySeconds)",
                0,
            ),
            col(
                "Node Selector",
                "string",
                "NodeSelector is a selector which must be true for the pod to fit on a node. Selector which must match a node's labels for the pod to be scheduled on that node.",
                0,
            ),
            age,
            containers_col(),
            images_col(),
            selector_col(),
        ],
        "Job" => vec![
            name,
            col("Status", "string", "Status of the job execution.", 0),
            col(
                "Completions",
                "string",
                "The desired number of successfully finished pods the job should be run with.",
                0,
            ),
            col(
                "Duration",
                "string",
                "Time required to complete the job.",
                0,
            ),
            age,
            containers_col(),
            images_col(),
            selector_col(),
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

fn containers_col() -> Value {
    col(
        "Containers",
        "string",
        "Names of each container in the template.",
        1,
    )
}

fn images_col() -> Value {
    col(
        "Images",
        "string",
        "Images referenced by each container in the template.",
        1,
    )
}

fn selector_col() -> Value {
    col("Selector", "string", "Label selector of the pods.", 1)
}

/// Container names and images of a pod template, comma-joined as kubectl prints them.
fn template_cells(obj: &Value) -> (Value, Value) {
    let containers = obj["spec"]["template"]["spec"]["containers"].as_array();
    let field = |f: &str| -> String {
        containers
            .into_iter()
            .flatten()
            .map(|c| c[f].as_str().unwrap_or(""))
            .collect::<Vec<_>>()
            .join(",")
    };
    (json!(field("name")), json!(field("image")))
}

/// `metav1.FormatLabelSelector` of `matchLabels`, `<none>` when empty.
fn label_map(v: &Value) -> String {
    let parts: Vec<String> = v
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

fn job_status(obj: &Value) -> &'static str {
    let conds = obj["status"]["conditions"].as_array();
    let has = |t: &str| {
        conds
            .into_iter()
            .flatten()
            .any(|c| c["type"] == t && c["status"] == "True")
    };
    if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if obj["metadata"]["deletionTimestamp"].is_string() {
        "Terminating"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else if has("SuccessCriteriaMet") {
        "SuccessCriteriaMet"
    } else if has("Suspended") {
        "Suspended"
    } else {
        "Running"
    }
}

fn job_duration(obj: &Value, now: chrono::DateTime<chrono::Utc>) -> String {
    let t = |f: &str| {
        obj["status"][f]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.with_timezone(&chrono::Utc))
    };
    match (t("startTime"), t("completionTime")) {
        (Some(s), Some(c)) => human_age((c - s).num_seconds()),
        (Some(s), None) => human_age((now - s).num_seconds()),
        _ => String::new(),
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
        "StatefulSet" => {
            let (containers, images) = template_cells(obj);
            vec![
                name,
                json!(format!(
                    "{}/{}",
                    int(&st["readyReplicas"]),
                    obj["spec"]["replicas"].as_i64().unwrap_or(1)
                )),
                age,
                containers,
                images,
            ]
        }
        "DaemonSet" => {
            let (containers, images) = template_cells(obj);
            vec![
                name,
                json!(int(&st["desiredNumberScheduled"])),
                json!(int(&st["currentNumberScheduled"])),
                json!(int(&st["numberReady"])),
                json!(int(&st["updatedNumberScheduled"])),
                json!(int(&st["numberAvailable"])),
                json!(label_map(&obj["spec"]["template"]["spec"]["nodeSelector"])),
                age,
                containers,
                images,
                json!(label_map(&obj["spec"]["selector"]["matchLabels"])),
            ]
        }
        "Job" => {
            let (containers, images) = template_cells(obj);
            let completions = match obj["spec"]["completions"].as_i64() {
                Some(c) => format!("{}/{c}", int(&st["succeeded"])),
                None => format!(
                    "{}/1 of {}",
                    int(&st["succeeded"]),
                    obj["spec"]["parallelism"].as_i64().unwrap_or(1)
                ),
            };
            vec![
                name,
                json!(job_status(obj)),
                json!(completions),
                json!(job_duration(obj, now)),
                age,
                containers,
                images,
                json!(label_map(&obj["spec"]["selector"]["matchLabels"])),
            ]
        }
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
            // Core Events, or `events.k8s.io/v1` ones (`regarding`, `note`, `deprecated*`).
            let last = obj["lastTimestamp"]
                .as_str()
                .or(obj["deprecatedLastTimestamp"].as_str())
                .or(obj["eventTime"].as_str())
                .or(meta["creationTimestamp"].as_str());
            let io = if obj["involvedObject"].is_object() {
                &obj["involvedObject"]
            } else {
                &obj["regarding"]
            };
            let message = obj["message"].as_str().or(obj["note"].as_str());
            vec![
                json!(age_of(last, now)),
                json!(s(&obj["type"])),
                json!(s(&obj["reason"])),
                json!(format!(
                    "{}/{}",
                    s(&io["kind"]).to_ascii_lowercase(),
                    s(&io["name"])
                )),
                json!(message.unwrap_or("")),
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
    list_meta: &Value,
    include: IncludeObject,
) -> Result<Vec<u8>, serde_json::Error> {
    let now = chrono::Utc::now();
    let mut buf = Vec::with_capacity(64 * 1024);
    buf.extend_from_slice(br#"{"kind":"Table","apiVersion":"meta.k8s.io/v1","metadata":"#);
    serde_json::to_writer(&mut buf, list_meta)?;
    buf.extend_from_slice(br#","columnDefinitions":"#);
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
            &json!({"resourceVersion": "7"}),
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
