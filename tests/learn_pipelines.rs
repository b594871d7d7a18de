//! The console learns the pipelines the apps' annotations name from the apps its watches
//! deliver (the first list and every change after), instead of listing every app a second
//! time at start-up (issue 11: at 50,000 apps that second list doubled the start-up load
//! and the peak memory). Oracle: the CI's own repos and jobs after the updates pass.

mod common;

use shipdeck::config::{ANNOTATION_GITHUB_REPO, ANNOTATION_JENKINS_JOB};
use shipdeck::connect::{ConsoleArgs, Wired};
use shipdeck::model::{AppId, Application, Update};
use std::time::Duration;

fn annotated(name: &str, key: &str, value: &str) -> (AppId, Application) {
    let mut a = Application::default();
    a.metadata.name = name.into();
    a.metadata.namespace = "argocd".into();
    a.metadata.annotations.insert(key.into(), value.into());
    (AppId::new("sandbox", "argocd", name), a)
}

#[tokio::test]
async fn pipelines_named_by_annotations_are_learned_from_the_watched_apps() {
    let sb = common::sandbox().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "").expect("config");
    let args = ConsoleArgs {
        config: Some(config),
        ..Default::default()
    };
    let wired = Wired::sandbox(&args, &sb).expect("wired");
    let repos = |w: &Wired| {
        w.ci.github
            .as_ref()
            .map(|g| g.repos().iter().map(|r| r.full_name()).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert!(!repos(&wired).contains(&"acme/ledger".to_string()));
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let mut out = wired.learn_pipelines(rx);
    let (id, app) = annotated("ledger-dev", ANNOTATION_GITHUB_REPO, "acme/ledger");
    tx.send(Update::Resync {
        instance: "sandbox".into(),
        apps: vec![(id.clone(), app)],
    })
    .await
    .expect("send");
    let (jid, job_app) = annotated("ledger-batch", ANNOTATION_JENKINS_JOB, "ledger/nightly");
    tx.send(Update::Upsert(jid.clone(), Box::new(job_app)))
        .await
        .expect("send");
    // Every update goes on to the console, unchanged and in order.
    let first = tokio::time::timeout(Duration::from_secs(10), out.recv()).await;
    assert!(
        matches!(first, Ok(Some(Update::Resync { ref apps, .. })) if apps.len() == 1 && apps[0].0 == id),
        "{first:?}"
    );
    let second = tokio::time::timeout(Duration::from_secs(10), out.recv()).await;
    assert!(
        matches!(second, Ok(Some(Update::Upsert(ref i, _))) if *i == jid),
        "{second:?}"
    );
    assert!(
        repos(&wired).contains(&"acme/ledger".to_string()),
        "{:?}",
        repos(&wired)
    );
    let jobs = wired
        .ci
        .jenkins
        .as_ref()
        .map(|j| j.jobs())
        .unwrap_or_default();
    assert!(jobs.contains(&"ledger/nightly".to_string()), "{jobs:?}");
    drop(tx);
    assert!(
        tokio::time::timeout(Duration::from_secs(10), out.recv())
            .await
            .is_ok_and(|u| u.is_none()),
        "the forwarder ends with its sources"
    );
    sb.stop().await;
}
