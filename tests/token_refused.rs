//! An expired or revoked Argo CD token (issue 8): over real HTTP against a sandbox started
//! here, the application watch connects, the sandbox expires every token (its
//! `expire-tokens` fault) and drops open watches, and the watch then reports `failed` with
//! what to do, not `reconnecting since …` forever. The oracle that the token really is
//! refused is the sandbox's own API answering 401 to the same token.

mod common;

use serde_json::json;
use shipdeck::model::{Connection, Update};
use shipdeck::sandbox::auth::Role;
use shipdeck::secrets::Secret;
use shipdeck::sources::ArgoSource;
use shipdeck::sources::argocd::{ArgoApi, ArgoApiOptions, TOKEN_REJECTED};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// The latest connection state among the waiting updates, or after up to `wait`.
async fn next_state(rx: &mut mpsc::Receiver<Update>, wait: Duration) -> Option<Connection> {
    let mut last = None;
    if let Ok(Some(u)) = tokio::time::timeout(wait, rx.recv()).await
        && let Update::Connection { state, .. } = u
    {
        last = Some(state);
    }
    while let Ok(u) = rx.try_recv() {
        if let Update::Connection { state, .. } = u {
            last = Some(state);
        }
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_token_says_log_in_again_instead_of_reconnecting() {
    let sb = common::sandbox().await;
    let token = sb.world.users.token(Role::Admin);
    let api = ArgoApi::new(ArgoApiOptions {
        server: sb.url.clone(),
        token: Some(Secret::new(token.clone())),
        ..Default::default()
    })
    .expect("API client");
    let (tx, mut rx) = mpsc::channel(4096);
    let task = api.watch_applications(tx);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if next_state(&mut rx, Duration::from_millis(200)).await == Some(Connection::Connected) {
            break;
        }
        assert!(Instant::now() < deadline, "the watch connects");
    }

    common::fault(&sb, json!({"fault": "expire-tokens"})).await;
    common::fault(&sb, json!({"fault": "drop-watches"})).await;
    // Oracle: the sandbox refuses this token now.
    let refused = common::Api::with_token(&sb, &token)
        .get("/api/v1/applications")
        .await
        .0;
    assert_eq!(refused, 401, "the sandbox refuses the expired token");

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    loop {
        if let Some(state) = next_state(&mut rx, Duration::from_millis(200)).await {
            seen.push(state.clone());
            if let Connection::Failed { reason } = &state {
                assert_eq!(reason, TOKEN_REJECTED);
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the watch says the token was refused (saw {seen:?})"
        );
    }
    // It stays failed while the token is refused: a few retries later, never `connected`
    // and never back to `reconnecting`.
    let until = Instant::now() + Duration::from_secs(6);
    while Instant::now() < until {
        if let Some(state) = next_state(&mut rx, Duration::from_millis(300)).await {
            assert!(
                matches!(&state, Connection::Failed { reason } if reason == TOKEN_REJECTED),
                "stays failed with the login hint, saw {state:?}"
            );
        }
    }
    task.abort();
}
