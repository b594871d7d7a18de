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
/// managed resource). Everything `APP_FIELDS` names is kept, except that a history entry's
/// `source` equal to the app's own source is left out: it is the same in nearly every entry
/// (up to ten per app), and every reader falls back to the app's source when an entry has
/// none, so the meaning is unchanged.
pub fn compact_for_board(app: &mut Application) {
    app.status.sync.compared_to = None;
    if let Some(own) = app.spec.primary_source() {
        for h in app.status.history.iter_mut() {
            if h.source.as_ref() == Some(own) {
                h.source = None;
            }
        }
    }
    if let Some(result) = app
        .status
        .operation_state
        .as_mut()
        .and_then(|o| o.sync_result.as_mut())
    {
        result.resources = Vec::new();
    }
}

/// Whether [`compact_for_board`] surely leaves `app` as it is (any history entry with a
/// source counts as not: whether it is the app's own is not looked at).
pub fn is_compact(app: &Application) -> bool {
    app.status.sync.compared_to.is_none()
        && app.status.history.iter().all(|h| h.source.is_none())
        && app
            .status
            .operation_state
            .as_ref()
            .and_then(|o| o.sync_result.as_ref())
            .is_none_or(|r| r.resources.is_empty())
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

    #[test]
    fn is_compact_says_whether_compacting_would_change_the_app() {
        let cases = [
            serde_json::json!({"metadata": {"name": "plain"},
                               "status": {"sync": {"status": "Synced"}}}),
            serde_json::json!({"metadata": {"name": "compared"},
                               "status": {"sync": {"comparedTo": {"source": {"repoURL": "x"}}}}}),
            serde_json::json!({"metadata": {"name": "results"},
                               "status": {"operationState": {"phase": "Succeeded", "syncResult": {
                                   "resources": [{"kind": "Deployment", "name": "web"}]}}}}),
            serde_json::json!({"metadata": {"name": "history"},
                               "spec": {"source": {"repoURL": "https://git/x", "path": "web"}},
                               "status": {"history": [{"id": 1, "revision": "a",
                                   "source": {"repoURL": "https://git/x", "path": "web"}}]}}),
        ];
        for v in cases {
            let a: Application = serde_json::from_value(v).expect("fixture parses");
            let mut c = a.clone();
            compact_for_board(&mut c);
            assert_eq!(is_compact(&a), c == a, "{}", a.metadata.name);
            assert!(is_compact(&c), "{} once compacted", a.metadata.name);
        }
    }

    #[test]
    fn a_history_source_equal_to_the_apps_own_is_left_out_and_others_kept() {
        let mut a: Application = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "web"},
            "spec": {"source": {"repoURL": "https://git/x", "path": "web", "targetRevision": "main"}},
            "status": {"history": [
                {"id": 1, "revision": "a", "source": {"repoURL": "https://git/x", "path": "old", "targetRevision": "main"}},
                {"id": 2, "revision": "b", "source": {"repoURL": "https://git/x", "path": "web", "targetRevision": "main"}}
            ]}
        }))
        .expect("fixture parses");
        compact_for_board(&mut a);
        let h = &a.status.history;
        assert_eq!(
            h[0].source.as_ref().and_then(|s| s.path.as_deref()),
            Some("old")
        );
        assert_eq!(h[1].source, None);
        // What readers do with an entry without a source: the app's own, as before.
        assert_eq!(
            crate::ops::actions::rollback_spec(&a, Some(2))
                .ok()
                .and_then(|s| s.spec.source)
                .and_then(|s| s.path),
            Some("web".to_string())
        );
    }
}
