//! Actions against a fake Argo CD: the order guards -> approval record -> send -> audit.

use super::*;
use crate::model::{AutomatedSync, HistoryEntry, SyncPolicy, Update, WorkloadRollout};
use crate::sources::{ManagedResource, SyncWindowsState};
use std::sync::Mutex;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

#[derive(Default)]
struct Fake {
    app: Mutex<Application>,
    denied: bool,
    synced: Mutex<Vec<SyncRequest>>,
    rolled: Mutex<Vec<RollbackRequest>>,
    auto_sync_off: Mutex<bool>,
}

fn app(name: &str, auto: bool) -> Application {
    let mut a = Application::default();
    a.metadata.name = name.into();
    a.metadata.namespace = "argocd".into();
    a.status.sync.status = SyncStatus::OutOfSync;
    a.status.sync.revision = Some("bbb".into());
    for (id, rev) in [(1, "aaa0"), (2, "aaa")] {
        a.status.history.push(HistoryEntry {
            id,
            revision: Some(rev.into()),
            ..Default::default()
        });
    }
    if auto {
        a.spec.sync_policy = Some(SyncPolicy {
            automated: Some(AutomatedSync::default()),
            ..Default::default()
        });
    }
    a
}

impl ArgoSource for Fake {
    fn instance(&self) -> &str {
        "fake"
    }
    fn watch_applications(&self, _tx: mpsc::Sender<Update>) -> JoinHandle<()> {
        tokio::spawn(async {})
    }
    async fn list_applications(&self) -> Result<Vec<Application>, SourceError> {
        Ok(vec![self.app.lock().map(|a| a.clone()).unwrap_or_default()])
    }
    async fn get_application(&self, name: &str, _r: Refresh) -> Result<Application, SourceError> {
        let a = self.app.lock().map(|a| a.clone()).unwrap_or_default();
        if a.metadata.name == name {
            Ok(a)
        } else {
            Err(SourceError::NotFound(name.into()))
        }
    }
    async fn managed_resources(
        &self,
        _a: &Application,
    ) -> Result<Vec<ManagedResource>, SourceError> {
        Ok(vec![ManagedResource {
            kind: "ConfigMap".into(),
            name: "c".into(),
            target: Some(serde_json::json!({"kind":"ConfigMap","data":{"a":"2"}})),
            live: Some(serde_json::json!({"kind":"ConfigMap","data":{"a":"1"}})),
            ..Default::default()
        }])
    }
    async fn workloads(&self, _a: &Application) -> Result<Vec<WorkloadRollout>, SourceError> {
        Ok(vec![])
    }
    fn watch_workloads(
        &self,
        _a: &Application,
        _tx: mpsc::Sender<Result<Vec<WorkloadRollout>, SourceError>>,
    ) -> JoinHandle<()> {
        tokio::spawn(async {})
    }
    async fn events(&self, _a: &Application) -> Result<Vec<AppEvent>, SourceError> {
        Ok(vec![])
    }
    async fn sync(&self, a: &Application, req: SyncRequest) -> Result<Application, SourceError> {
        if let Ok(mut s) = self.synced.lock() {
            s.push(req);
        }
        Ok(a.clone())
    }
    async fn rollback(
        &self,
        a: &Application,
        req: RollbackRequest,
    ) -> Result<Application, SourceError> {
        if a.auto_sync() {
            return Err(SourceError::Refused(
                "rollback cannot be initiated when auto-sync is enabled".into(),
            ));
        }
        if let Ok(mut s) = self.rolled.lock() {
            s.push(req);
        }
        Ok(a.clone())
    }
    async fn set_auto_sync(
        &self,
        a: &Application,
        enabled: bool,
    ) -> Result<Application, SourceError> {
        if let Ok(mut s) = self.auto_sync_off.lock() {
            *s = !enabled;
        }
        let mut a = a.clone();
        if !enabled {
            a.spec.sync_policy = None;
        }
        Ok(a)
    }
    async fn can_i(&self, _action: &str, _a: &Application) -> Result<bool, SourceError> {
        Ok(!self.denied)
    }
    async fn sync_windows(&self, _a: &Application) -> Result<SyncWindowsState, SourceError> {
        Ok(SyncWindowsState {
            can_sync: true,
            ..Default::default()
        })
    }
    async fn pod_logs(
        &self,
        _a: &Application,
        _n: &str,
        _p: &str,
        _t: u32,
    ) -> Result<Vec<String>, SourceError> {
        Ok(vec![])
    }
}

fn ops(dir: &std::path::Path, read_only: bool) -> Ops {
    Ops {
        operator: "ana".into(),
        read_only,
        policies: Policies::default(),
        classifier: Classifier::default(),
        audit: AuditLog::in_dir(dir),
    }
}

fn fake(a: Application) -> Fake {
    Fake {
        app: Mutex::new(a),
        ..Default::default()
    }
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test]
async fn gated_sync_needs_approval_and_sends_it_as_info() {
    let dir = tmp();
    let ops = ops(dir.path(), false);
    let src = fake(app("shop-prod", false));
    let err = sync(&src, &ops, "shop-prod", SyncOptions::default())
        .await
        .err();
    assert!(
        matches!(
            err,
            Some(ActionError::Refused(Refusal::NeedsApproval { .. }))
        ),
        "{err:?}"
    );
    assert!(src.synced.lock().map(|s| s.is_empty()).unwrap_or(false));
    // The refused attempt is recorded, with the reason.
    let refused = ops.audit.read_all().unwrap_or_default();
    assert_eq!(refused.len(), 1);
    assert_eq!(
        (refused[0].action.as_str(), refused[0].outcome.as_str()),
        ("sync", "refused")
    );
    assert_eq!(refused[0].environment, "prod");
    assert!(
        refused[0]
            .detail
            .as_deref()
            .unwrap_or_default()
            .contains("needs approval"),
        "{:?}",
        refused[0].detail
    );

    let opts = SyncOptions {
        approval: Some(Approval {
            named_app: "shop-prod".into(),
            reason: Some("release 42".into()),
            operator: "ana".into(),
        }),
        ..Default::default()
    };
    let out = sync(&src, &ops, "shop-prod", opts).await;
    let out = out.unwrap_or_else(|e| panic!("{e}"));
    let sent = src.synced.lock().map(|s| s.clone()).unwrap_or_default();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].initiated_by, "ana");
    let info: Vec<_> = sent[0].info.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(info, ["approved-by", "reason", "approval-id", INFO_OP_ID]);
    assert_eq!(
        sent[0].info.last().map(|i| Some(i.value.clone())),
        Some(out.op_id.clone()),
        "the operation carries the id the follower looks for"
    );
    let lines = ops.audit.read_all().unwrap_or_default();
    let lines = &lines[1..];
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].action, "approve");
    assert_eq!(lines[1].action, "sync");
    assert_eq!(lines[1].outcome, "started");
    assert_eq!(lines[1].approval_id, out.approval.map(|a| a.id));
    assert_eq!(lines[1].from_revision, Some(Revision::new("aaa")));
    assert_eq!(lines[1].to_revision, Some(Revision::new("bbb")));
    assert_eq!(lines[1].diff_digest.as_ref().map(String::len), Some(64));
}

#[tokio::test]
async fn read_only_and_denied_refuse_before_sending() {
    let dir = tmp();
    let src = fake(app("shop-dev", false));
    let ro = ops(dir.path(), true);
    let e = sync(&src, &ro, "shop-dev", SyncOptions::default())
        .await
        .err();
    assert!(matches!(
        e,
        Some(ActionError::Refused(Refusal::ReadOnly { .. }))
    ));
    let e = rollback(&src, &ro, "shop-dev", RollbackOptions::default())
        .await
        .err();
    assert!(matches!(
        e,
        Some(ActionError::Refused(Refusal::ReadOnly { .. }))
    ));
    let mut denied = fake(app("shop-dev", false));
    denied.denied = true;
    let e = sync(
        &denied,
        &ops(dir.path(), false),
        "shop-dev",
        SyncOptions::default(),
    )
    .await
    .err();
    assert!(matches!(e, Some(ActionError::Refused(r)) if r.is_permission()));
    assert!(src.synced.lock().map(|s| s.is_empty()).unwrap_or(false));
}

#[tokio::test]
async fn rollback_defaults_to_previous_and_disables_auto_sync_on_request() {
    let dir = tmp();
    let ops = ops(dir.path(), false);
    let src = fake(app("shop-dev", true));
    let e = rollback(&src, &ops, "shop-dev", RollbackOptions::default())
        .await
        .err();
    assert!(matches!(
        e,
        Some(ActionError::Refused(Refusal::AutoSyncOn { .. }))
    ));
    let out = rollback(
        &src,
        &ops,
        "shop-dev",
        RollbackOptions {
            disable_auto_sync: true,
            ..Default::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.notes.iter().any(|n| n.contains("stays disabled")));
    assert!(src.auto_sync_off.lock().map(|b| *b).unwrap_or(false));
    let sent = src.rolled.lock().map(|s| s.clone()).unwrap_or_default();
    assert_eq!(sent[0].id, 1);
    assert_eq!(out.to_revision, Some(Revision::new("aaa0")));
    let actions: Vec<_> = ops
        .audit
        .read_all()
        .unwrap_or_default()
        .into_iter()
        .map(|r| format!("{} {}", r.action, r.outcome))
        .collect();
    assert_eq!(
        actions,
        [
            "rollback refused",
            "disable-auto-sync started",
            "rollback started"
        ]
    );
    let e = rollback_target(
        &src.app.lock().map(|a| a.clone()).unwrap_or_default(),
        Some(9),
    )
    .err();
    assert!(
        e.map(|e| e.to_string())
            .unwrap_or_default()
            .contains("does not have deployment with id 9")
    );
}

#[test]
fn judge_waits_for_our_operation_then_sync_and_health() {
    use crate::model::OperationState;
    let mut a = app("x", false);
    a.status.operation_state = Some(OperationState {
        operation: Default::default(),
        phase: OperationPhase::Succeeded,
        message: None,
        sync_result: None,
        started_at: Some("t1".into()),
        finished_at: Some("t2".into()),
        retry_count: None,
    });
    // The old operation's end is not ours.
    assert_eq!(
        judge(&a, &OurOperation::started_after(Some("t1"))),
        WaitState::Running
    );
    assert_eq!(judge(&a, &OurOperation::default()), WaitState::Running); // still OutOfSync
    a.status.sync.status = SyncStatus::Synced;
    a.status.health.status = HealthStatus::Healthy;
    assert_eq!(judge(&a, &OurOperation::default()), WaitState::Done);
    if let Some(op) = a.status.operation_state.as_mut() {
        op.phase = OperationPhase::Failed;
        op.message = Some("one or more objects failed\u{1b}[31m".into());
    }
    assert!(
        matches!(judge(&a, &OurOperation::default()), WaitState::Failed(m) if !m.contains('\u{1b}'))
    );
}

#[test]
fn judge_accepts_out_of_sync_after_a_rollback_but_not_after_a_plain_sync() {
    use crate::model::{OperationState, SyncResult};
    let mut a = app("x", false);
    a.status.health.status = HealthStatus::Healthy;
    a.status.sync.status = SyncStatus::OutOfSync;
    a.status.sync.revision = Some("head".into());
    let state = |rev: &str| OperationState {
        operation: Default::default(),
        phase: OperationPhase::Succeeded,
        message: None,
        sync_result: Some(SyncResult {
            revision: Some(rev.into()),
            ..Default::default()
        }),
        started_at: Some("t1".into()),
        finished_at: Some("t2".into()),
        retry_count: None,
    };
    // Rolled back to an older revision while Git holds `head`: OutOfSync is the end state.
    a.status.operation_state = Some(state("older"));
    assert_eq!(judge(&a, &OurOperation::default()), WaitState::Done);
    // Synced to `head` but still OutOfSync: something is not applied yet; keep waiting.
    a.status.operation_state = Some(state("head"));
    assert_eq!(judge(&a, &OurOperation::default()), WaitState::Running);
}

/// A CI that records what it was asked and answers runs in a fixed state.
#[derive(Default)]
struct FakeCi {
    dispatched: Mutex<Vec<BuildRequest>>,
    reruns: Mutex<Vec<u64>>,
    state: Option<crate::model::BuildState>,
}

fn run_of(id: u64, state: crate::model::BuildState) -> crate::model::BuildRun {
    crate::model::BuildRun {
        system: crate::model::BuildSystem::GithubActions,
        id,
        pipeline: "build.yml".into(),
        title: String::new(),
        branch: None,
        head_sha: None,
        state,
        url: None,
        created_at: None,
        jobs: Vec::new(),
        inputs: Vec::new(),
        log_tail: Vec::new(),
    }
}

impl CiSource for FakeCi {
    async fn dispatch(&self, req: &BuildRequest) -> Result<crate::model::BuildRun, SourceError> {
        if let Ok(mut d) = self.dispatched.lock() {
            d.push(req.clone());
        }
        Ok(run_of(7, crate::model::BuildState::Queued))
    }

    async fn run(
        &self,
        _system: crate::model::BuildSystem,
        _pipeline: &str,
        id: u64,
    ) -> Result<crate::model::BuildRun, SourceError> {
        Ok(run_of(
            id,
            self.state.unwrap_or(crate::model::BuildState::InProgress),
        ))
    }

    async fn rerun(&self, run: &RunRef) -> Result<(), SourceError> {
        if let Ok(mut r) = self.reruns.lock() {
            r.push(run.id);
        }
        Ok(())
    }
}

fn build_req() -> BuildRequest {
    BuildRequest {
        system: crate::model::BuildSystem::GithubActions,
        pipeline: "build.yml".into(),
        repo: Some("acme/shop".into()),
        git_ref: None,
        inputs: vec![("service".into(), "checkout".into())],
        app: None,
    }
}

fn outcomes(ops: &Ops) -> Vec<String> {
    ops.audit
        .read_all()
        .unwrap_or_default()
        .into_iter()
        .map(|r| format!("{} {}", r.action, r.outcome))
        .collect()
}

#[tokio::test]
async fn read_only_refusals_are_audited_and_nothing_is_sent() {
    let dir = tmp();
    let ro = ops(dir.path(), true);
    let src = fake(app("shop-dev", false));
    let ci = FakeCi::default();
    let _ = sync(&src, &ro, "shop-dev", SyncOptions::default()).await;
    let e = build(&ci, &ro, &build_req()).await.err();
    assert!(matches!(
        e,
        Some(ActionError::Refused(Refusal::ReadOnly { .. }))
    ));
    let run = RunRef {
        system: crate::model::BuildSystem::GithubActions,
        pipeline: "build.yml".into(),
        id: 3,
    };
    assert!(rerun(&ci, &ro, &run).await.is_err());
    assert!(cancel(&ci, &ro, &run).await.is_err());
    assert!(ci.dispatched.lock().map(|d| d.is_empty()).unwrap_or(false));
    assert!(ci.reruns.lock().map(|d| d.is_empty()).unwrap_or(false));
    assert_eq!(
        outcomes(&ro),
        [
            "sync refused",
            "build refused",
            "rerun refused",
            "cancel refused"
        ]
    );
    let detail = ro.audit.read_all().unwrap_or_default()[0]
        .detail
        .clone()
        .unwrap_or_default();
    assert!(detail.contains("read-only"), "{detail}");
}

#[tokio::test]
async fn rerun_goes_through_ops_and_a_followed_build_ends_with_its_outcome() {
    let dir = tmp();
    let ops = ops(dir.path(), false);
    let run = RunRef {
        system: crate::model::BuildSystem::GithubActions,
        pipeline: "build.yml".into(),
        id: 3,
    };
    let ci = FakeCi {
        state: Some(crate::model::BuildState::Failed),
        ..Default::default()
    };
    rerun(&ci, &ops, &run)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ci.reruns.lock().map(|r| r.clone()).unwrap_or_default(), [3]);
    // The CI's own default refuses what it does not offer, and that is recorded as failed.
    assert!(cancel(&ci, &ops, &run).await.is_err());
    let started = build(&ci, &ops, &build_req())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let r = follow_build(
        &ci,
        &ops,
        None,
        &started,
        Duration::from_secs(5),
        Duration::from_millis(1),
    )
    .await;
    assert!(matches!(r, Err(ActionError::Failed(_))), "{r:?}");
    // Still running when the deadline passes: timed-out.
    let slow = FakeCi::default();
    let r = follow_build(
        &slow,
        &ops,
        None,
        &started,
        Duration::from_millis(5),
        Duration::from_millis(1),
    )
    .await;
    assert!(matches!(r, Err(ActionError::Timeout { .. })), "{r:?}");
    assert_eq!(
        outcomes(&ops),
        [
            "rerun started",
            "cancel failed",
            "build started",
            "build failed",
            "build timed-out"
        ]
    );
}

#[test]
fn judge_tells_operations_apart_by_their_id_within_the_same_second() {
    use crate::model::{InfoEntry, Operation, OperationState};
    let state = |id: &str, phase: OperationPhase| OperationState {
        operation: Operation {
            info: vec![InfoEntry {
                name: INFO_OP_ID.into(),
                value: id.into(),
            }],
            ..Default::default()
        },
        phase,
        message: Some("boom".into()),
        sync_result: None,
        // Both operations started within the same (whole) second.
        started_at: Some("2026-01-01T00:00:01Z".into()),
        finished_at: Some("2026-01-01T00:00:01Z".into()),
        retry_count: None,
    };
    let mut a = app("x", false);
    a.status.sync.status = SyncStatus::Synced;
    a.status.health.status = HealthStatus::Healthy;
    let second = OurOperation {
        id: Some("b".into()),
        previous_started_at: Some("2026-01-01T00:00:01Z".into()),
    };
    let first = OurOperation {
        id: Some("a".into()),
        previous_started_at: None,
    };
    // The first one's success is not the second's.
    a.status.operation_state = Some(state("a", OperationPhase::Succeeded));
    assert_eq!(judge(&a, &second), WaitState::Running);
    assert_eq!(judge(&a, &first), WaitState::Done);
    // The second one's failure is the second's, though its startedAt equals the first's,
    // and it is not the first's.
    a.status.operation_state = Some(state("b", OperationPhase::Failed));
    assert!(matches!(judge(&a, &second), WaitState::Failed(m) if m.contains("boom")));
    assert_eq!(judge(&a, &first), WaitState::Running);
    // Without an id the same-second operation is not taken for ours (startedAt fallback).
    let mut no_id = state("b", OperationPhase::Failed);
    no_id.operation.info.clear();
    a.status.operation_state = Some(no_id);
    assert_eq!(
        judge(
            &a,
            &OurOperation::started_after(Some("2026-01-01T00:00:01Z"))
        ),
        WaitState::Running
    );
}
