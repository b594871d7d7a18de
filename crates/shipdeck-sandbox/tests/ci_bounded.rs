//! The CI history is bounded: a sandbox left building keeps at most `MAX_RUNS` runs (the
//! oldest completed ones go), while run numbers keep counting.

mod support;

use shipdeck_sandbox::ci::{MAX_RUNS, NewRun, Origin, Status};
use shipdeck_sandbox::{Sandbox, SandboxOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_completed_runs_are_forgotten() {
    let sb = Sandbox::start(SandboxOptions {
        time_scale: 0.0001,
        ..Default::default()
    })
    .await
    .expect("sandbox starts");
    let new = || NewRun {
        origin: Origin::Jenkins {
            job: "bounded".into(),
        },
        name: "bounded".into(),
        action: None,
        inputs: Default::default(),
        branch: "main".into(),
        head_sha: String::new(),
        head_message: String::new(),
        actor: "test".into(),
        jobs: Vec::new(),
    };
    let total = MAX_RUNS + 50;
    let mut last = 0;
    for i in 0..total {
        last = sb.world.ci.start(&sb.world, new()).number;
        if i % 500 == 0 {
            // Let the engine complete what is there, so some runs are completed.
            support::wait_for("runs complete", || async {
                sb.world
                    .ci
                    .runs()
                    .iter()
                    .all(|r| r.status == Status::Completed)
                    .then_some(())
            })
            .await;
        }
    }
    support::wait_for("runs complete", || async {
        sb.world
            .ci
            .runs()
            .iter()
            .all(|r| r.status == Status::Completed)
            .then_some(())
    })
    .await;
    let newest = sb.world.ci.start(&sb.world, new());
    let runs = sb.world.ci.runs();
    assert!(runs.len() <= MAX_RUNS, "{} runs kept", runs.len());
    assert_eq!(newest.number, last + 1);
    assert_eq!(runs[0].id, newest.id, "the newest is kept");
    assert_eq!(last as usize, total);
}
