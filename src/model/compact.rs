//! The board's projection of an Application: what the estate keeps for every app in
//! either mode. API mode asks Argo CD for exactly these fields (`fields=` on list and
//! stream, `APP_FIELDS` in `sources::argocd`); core mode reads whole objects from the
//! Kubernetes API and drops the rest here as each one decodes, so both modes hold the
//! same compact app. Screens that need the whole object (the app screen, diff, sync,
//! rollback) fetch it with `get_application`.

use shipdeck_wire::Application;

/// Drop what the board, `status` and the estate never read: the comparison target
/// (`status.sync.comparedTo`, a copy of the source and destination) and the per-resource
/// results of the last sync (`status.operationState.syncResult.resources`, one entry per
/// managed resource). Everything `APP_FIELDS` names is kept.
pub fn compact_for_board(app: &mut Application) {
    app.status.sync.compared_to = None;
    if let Some(result) = app
        .status
        .operation_state
        .as_mut()
        .and_then(|o| o.sync_result.as_mut())
    {
        result.resources = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_compared_to_and_sync_results_and_keeps_the_rest() {
        let mut a: Application = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "status": {
                "sync": {"status": "Synced", "revision": "abc",
                         "comparedTo": {"source": {"repoURL": "x"}}},
                "operationState": {"phase": "Succeeded", "syncResult": {
                    "revision": "abc",
                    "resources": [{"kind": "Deployment", "name": "web"}]}}
            }
        }))
        .expect("fixture parses");
        assert!(a.status.sync.compared_to.is_some());
        compact_for_board(&mut a);
        assert_eq!(a.status.sync.compared_to, None);
        let r = a.status.operation_state.and_then(|o| o.sync_result);
        assert_eq!(r.as_ref().map(|r| r.resources.len()), Some(0));
        assert_eq!(r.and_then(|r| r.revision).as_deref(), Some("abc"));
        assert_eq!(a.status.sync.revision.as_deref(), Some("abc"));
        assert_eq!(a.metadata.name, "web");
    }
}
