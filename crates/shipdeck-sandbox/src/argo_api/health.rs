//! Resource health as Argo CD's built-in checks word it, for the nodes of a resource tree
//! (Deployments, ReplicaSets, Pods, Services, Applications).

use serde_json::{Value, json};

pub fn of(obj: &Value) -> Option<Value> {
    let (status, message) = match obj["kind"].as_str()? {
        "Deployment" => deployment(obj),
        "ReplicaSet" => replicaset(obj),
        "Pod" => pod(obj),
        "Service" | "Namespace" => ("Healthy", String::new()),
        "Application" => (
            obj["status"]["health"]["status"]
                .as_str()
                .unwrap_or("Unknown"),
            obj["status"]["health"]["message"]
                .as_str()
                .unwrap_or("")
                .to_string(),
        ),
        _ => return None,
    };
    Some(if message.is_empty() {
        json!({"status": status})
    } else {
        json!({"status": status, "message": message})
    })
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn deployment(d: &Value) -> (&'static str, String) {
    let name = d["metadata"]["name"].as_str().unwrap_or("");
    let st = &d["status"];
    if d["spec"]["paused"].as_bool().unwrap_or(false) {
        return ("Suspended", "Deployment is paused".into());
    }
    if int(&d["metadata"]["generation"]) > int(&st["observedGeneration"]) {
        return (
            "Progressing",
            "Waiting for rollout to finish: observed deployment generation less than desired generation".into(),
        );
    }
    let progressing = st["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Progressing"));
    if progressing.is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded") {
        return (
            "Degraded",
            format!("Deployment \"{name}\" exceeded its progress deadline"),
        );
    }
    let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let (updated, replicas, available) = (
        int(&st["updatedReplicas"]),
        int(&st["replicas"]),
        int(&st["availableReplicas"]),
    );
    if updated < want {
        return (
            "Progressing",
            format!(
                "Waiting for rollout to finish: {updated} out of {want} new replicas have been updated..."
            ),
        );
    }
    if replicas > updated {
        return (
            "Progressing",
            format!(
                "Waiting for rollout to finish: {} old replicas are pending termination...",
                replicas - updated
            ),
        );
    }
    if available < updated {
        return (
            "Progressing",
            format!(
                "Waiting for rollout to finish: {available} of {updated} updated replicas are available..."
            ),
        );
    }
    ("Healthy", String::new())
}

fn replicaset(rs: &Value) -> (&'static str, String) {
    let want = rs["spec"]["replicas"].as_i64().unwrap_or(1);
    let available = int(&rs["status"]["availableReplicas"]);
    if available < want {
        return (
            "Progressing",
            format!(
                "Waiting for rollout to finish: {available} out of {want} new replicas are available..."
            ),
        );
    }
    ("Healthy", String::new())
}

/// The reason kubectl prints in STATUS for a pod.
pub fn pod_reason(p: &Value) -> String {
    if !p["metadata"]["deletionTimestamp"].is_null() {
        return "Terminating".into();
    }
    let waiting = p["status"]["containerStatuses"].as_array().and_then(|cs| {
        cs.iter()
            .find_map(|c| c["state"]["waiting"]["reason"].as_str())
    });
    waiting
        .or_else(|| p["status"]["reason"].as_str())
        .or_else(|| p["status"]["phase"].as_str())
        .unwrap_or("Unknown")
        .to_string()
}

fn pod(p: &Value) -> (&'static str, String) {
    let statuses = p["status"]["containerStatuses"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for c in &statuses {
        if let Some(reason) = c["state"]["waiting"]["reason"].as_str()
            && matches!(
                reason,
                "ImagePullBackOff" | "ErrImagePull" | "CrashLoopBackOff" | "InvalidImageName"
            )
        {
            return (
                "Degraded",
                c["state"]["waiting"]["message"]
                    .as_str()
                    .unwrap_or(reason)
                    .to_string(),
            );
        }
    }
    match p["status"]["phase"].as_str() {
        Some("Running") if !statuses.is_empty() && statuses.iter().all(|c| c["ready"] == true) => {
            ("Healthy", String::new())
        }
        Some("Succeeded") => ("Healthy", String::new()),
        Some("Failed") => ("Degraded", String::new()),
        _ => ("Progressing", String::new()),
    }
}
