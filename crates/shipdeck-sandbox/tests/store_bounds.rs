//! The sandbox's stores stay bounded: Events beyond `EVENT_LIMIT` per cluster go oldest
//! first (with a DELETED watch event, as the API server's TTL removes them), and the newest
//! are kept.

use serde_json::json;
use shipdeck_sandbox::store::{EVENT_LIMIT, EVENTS, EventType, Store};
use shipdeck_sandbox::{IN_CLUSTER, events};

#[test]
fn events_are_capped_oldest_first() {
    let store = Store::new(100_000);
    let involved = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "namespace": "shop", "uid": "u"}});
    let total = EVENT_LIMIT + 250;
    for i in 0..total {
        events::emit(
            &store,
            IN_CLUSTER,
            &involved,
            "Normal",
            "Churn",
            &format!("event {i}"),
            "test",
        );
    }
    let (kept, _) = store.list(IN_CLUSTER, EVENTS, None);
    assert_eq!(kept.len(), EVENT_LIMIT);
    let messages: Vec<&str> = kept.iter().filter_map(|e| e["message"].as_str()).collect();
    assert!(messages.contains(&format!("event {}", total - 1).as_str()));
    assert!(!messages.contains(&"event 0"));
    assert!(!messages.contains(&"event 249"));
    assert!(messages.contains(&"event 250"));
    // Watchers were told: one DELETED per expired Event.
    let (backlog, _rx) = store
        .watch(IN_CLUSTER, EVENTS, 1)
        .expect("history retained");
    let deleted = backlog
        .iter()
        .filter(|e| e.event_type == EventType::Deleted)
        .count();
    assert_eq!(deleted, 250);
}
