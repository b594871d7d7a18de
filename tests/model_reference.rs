//! The model must read the real Argo CD shapes: every example in
//! `tests/fixtures/argocd/examples/` (copied from Argo CD, see the README there)
//! deserializes into it, and the sync-window engine reads every window Argo CD documents.

use shipdeck::model::{AppProject, Application, HealthStatus, OperationPhase, SyncStatus};

mod common;

fn reference(file: &str) -> String {
    common::fixture(&format!("argocd/examples/{file}"))
}

#[test]
fn full_status_example_reads_into_the_model() {
    let text = reference("application-status-full.yaml");
    let app: Application = serde_saphyr::from_str(&text).expect("application-status-full.yaml");
    assert_eq!(app.metadata.name, "velero-test");
    assert_eq!(app.status.health.status, HealthStatus::Healthy);
    assert_eq!(app.status.history.len(), 10);
    assert_eq!(app.status.history[0].id, 14);
    let op = app.status.operation_state.expect("operationState");
    assert_eq!(op.phase, OperationPhase::Succeeded);
    assert_eq!(op.sync_result.expect("syncResult").resources.len(), 2);
    assert!(matches!(
        app.status.sync.status,
        SyncStatus::Synced | SyncStatus::OutOfSync
    ));
    // Fields shipdeck does not model survive in `extra` (a rollback copies the source back).
    let src = app.status.history[0].source.as_ref().expect("source");
    assert!(src.extra.contains_key("plugin"));
}

#[test]
fn spec_reference_reads_into_the_model() {
    let text = reference("application-spec-reference.yaml");
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).expect("spec reference");
    let apps: Vec<Application> = docs
        .into_iter()
        .filter(|d| d["kind"] == "Application")
        .map(|d| serde_json::from_value(d).expect("Application"))
        .collect();
    assert!(!apps.is_empty());
    assert!(apps.iter().any(|a| a.spec.primary_source().is_some()));
}

#[test]
fn sync_windows_read_into_the_model() {
    let text = reference("appproject-syncwindows.yaml");
    let proj: AppProject = serde_saphyr::from_str(&text).expect("appproject");
    assert!(proj.spec.sync_windows.iter().any(|w| w.kind == "deny"));
    assert!(proj.spec.sync_windows.iter().any(|w| w.manual_sync));
    // Every window Argo CD's own example defines is one the engine can evaluate.
    for w in &proj.spec.sync_windows {
        shipdeck::model::syncwindow::validate(w)
            .unwrap_or_else(|e| panic!("reference window {w:?}: {e}"));
    }
}

#[test]
fn operation_shapes_read_into_the_model() {
    let text = reference("operation-sync-and-rollback.yaml");
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).expect("operations");
    assert_eq!(docs.len(), 3);
    for mut d in docs {
        drop_placeholders(&mut d);
        let app: Application = serde_json::from_value(d).expect("operation doc");
        let op = app.operation.expect("operation");
        assert!(op.sync.is_some() && op.initiated_by.is_some());
    }
}

/// The reference marks values it leaves open as `<...>` (a list of revisions written as
/// `<history[id].revisions>`); drop them so the shape around them is what gets checked.
fn drop_placeholders(v: &mut serde_json::Value) {
    if let Some(map) = v.as_object_mut() {
        map.retain(|_, x| {
            !x.as_str()
                .is_some_and(|s| s.starts_with('<') && s.ends_with('>'))
        });
        map.values_mut().for_each(drop_placeholders);
    } else if let Some(list) = v.as_array_mut() {
        list.iter_mut().for_each(drop_placeholders);
    }
}
