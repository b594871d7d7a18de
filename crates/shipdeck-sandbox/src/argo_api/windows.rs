//! The `syncwindows` answer for an app: its project's windows, read by the one engine in
//! `shipdeck_wire::syncwindow` (Argo CD's rules, cron in the window's time zone).

use crate::store::APPPROJECTS;
use crate::{ARGOCD_NAMESPACE, IN_CLUSTER, World};
use chrono::{DateTime, Utc};
use serde_json::Value;
use shipdeck_wire::SyncWindow;
use shipdeck_wire::syncwindow::{self, Evaluation, Target};

#[derive(Debug, Clone, Default)]
pub struct SyncWindows {
    pub assigned: Vec<Value>,
    pub active: Vec<Value>,
    /// Whether a manual sync may run now.
    pub can_sync: bool,
    /// Why not, when it may not.
    pub refusal: Option<String>,
    pub evaluation: Evaluation,
}

/// The windows of the app's project that apply to it, and whether a manual sync may run now.
pub fn sync_windows(world: &World, app: &Value, now: DateTime<Utc>) -> SyncWindows {
    let project = app["spec"]["project"].as_str().unwrap_or("default");
    let Some(proj) = world
        .store
        .get(IN_CLUSTER, APPPROJECTS, ARGOCD_NAMESPACE, project)
    else {
        return SyncWindows {
            can_sync: true,
            ..Default::default()
        };
    };
    let raw = &proj["spec"]["syncWindows"];
    let windows: Vec<SyncWindow> = if raw.is_null() {
        Vec::new()
    } else {
        match serde_json::from_value(raw.clone()) {
            Ok(w) => w,
            Err(e) => {
                return SyncWindows {
                    refusal: Some(format!("invalid sync windows in project {project}: {e}")),
                    ..Default::default()
                };
            }
        }
    };
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let (name, ns, dest_name, server) = (
        s(&app["metadata"]["name"]),
        s(&app["spec"]["destination"]["namespace"]),
        s(&app["spec"]["destination"]["name"]),
        s(&app["spec"]["destination"]["server"]),
    );
    let target = Target {
        name: &name,
        namespace: &ns,
        cluster_name: &dest_name,
        cluster_server: &server,
    };
    let evaluation = syncwindow::evaluate(&windows, &target, now);
    let to_values = |ws: &[SyncWindow]| {
        ws.iter()
            .filter_map(|w| serde_json::to_value(w).ok())
            .collect()
    };
    SyncWindows {
        assigned: to_values(&evaluation.assigned),
        active: to_values(&evaluation.active),
        can_sync: evaluation.can_sync(true),
        refusal: evaluation.refusal(true),
        evaluation,
    }
}
