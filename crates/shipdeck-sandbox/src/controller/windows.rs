//! Whether the controller may run a sync now, by the one engine in
//! `shipdeck_wire::syncwindow` (Argo CD's `CanSync(isManual)`).

use chrono::{DateTime, Utc};
use serde_json::Value;
use shipdeck_wire::syncwindow::{self, Target};
use shipdeck_wire::{Application, SyncWindow};

/// Ok when a sync may run now; Err says why not (a window, or windows that do not parse).
pub fn can_sync(
    windows: &Value,
    app: &Application,
    cluster: &str,
    manual: bool,
    now: DateTime<Utc>,
) -> Result<(), String> {
    if windows.is_null() {
        return Ok(());
    }
    let windows: Vec<SyncWindow> = serde_json::from_value(windows.clone())
        .map_err(|e| format!("invalid sync windows: {e}"))?;
    let mut target = Target::of(app);
    if target.cluster_name.is_empty() {
        target.cluster_name = cluster;
    }
    match syncwindow::evaluate(&windows, &target, now).refusal(manual) {
        None => Ok(()),
        Some(why) => Err(why),
    }
}
