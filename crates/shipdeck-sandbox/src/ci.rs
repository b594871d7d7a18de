//! Simulated CI shared by the GitHub Actions and Jenkins APIs: one run engine where a run goes
//! queued -> in_progress (jobs and steps advancing on the sandbox clock) -> completed, and a
//! successful build commits its new image tag into the estate's manifests through
//! `estate::apply_bump`, as CI bots do. The APIs only create, read, cancel and rerun runs;
//! this file decides how they unfold. It never talks HTTP.

use super::World;
use super::estate::{CiAction, ImageBump};
use super::store::APPLICATIONS;
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

/// Which system a run belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A GitHub Actions workflow run (workflow id and file).
    Github { workflow_id: u64, file: String },
    /// A Jenkins build of a job.
    Jenkins { job: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Queued,
    InProgress,
    Completed,
}

impl Status {
    pub fn github(self) -> &'static str {
        match self {
            Status::Queued => "queued",
            Status::InProgress => "in_progress",
            Status::Completed => "completed",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Step {
    pub number: u32,
    pub name: String,
    pub status: Status,
    pub conclusion: Option<&'static str>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    /// Simulated seconds this step takes.
    pub seconds: f64,
    /// The step that commits the result (the run's side effect happens here).
    pub effect: bool,
}

#[derive(Debug, Clone)]
pub struct Job {
    pub id: u64,
    pub name: String,
    pub status: Status,
    pub conclusion: Option<&'static str>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub steps: Vec<Step>,
    /// Indices (in the run's job list) of the jobs this one `needs`; it is skipped when one
    /// of them did not succeed, as GitHub does.
    pub needs: Vec<usize>,
    /// The job's log lines, each prefixed with its timestamp as GitHub's logs are.
    pub log: Vec<String>,
}

/// A job to run: its name, step names, and the names of the jobs it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobSpec {
    pub name: String,
    pub steps: Vec<String>,
    pub needs: Vec<String>,
}

impl JobSpec {
    pub fn new(name: &str, steps: &[&str], needs: &[&str]) -> JobSpec {
        JobSpec {
            name: name.to_string(),
            steps: steps.iter().map(|x| x.to_string()).collect(),
            needs: needs.iter().map(|x| x.to_string()).collect(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Run {
    /// Unique across both systems (GitHub run id).
    pub id: u64,
    pub origin: Origin,
    /// Workflow or job name.
    pub name: String,
    /// run_number (GitHub) or build number (Jenkins), per workflow/job.
    pub number: u64,
    pub attempt: u32,
    pub action: Option<CiAction>,
    pub inputs: BTreeMap<String, String>,
    pub branch: String,
    pub head_sha: String,
    pub head_message: String,
    pub event: String,
    pub actor: String,
    pub status: Status,
    pub conclusion: Option<&'static str>,
    pub jobs: Vec<Job>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    /// Image tag a build produced, commits it made.
    pub tag: Option<String>,
    pub commits: Vec<String>,
    pub log: Vec<String>,
    /// Whether the run must fail, and at which step (job index, step index).
    fail_at: Option<(usize, usize)>,
    /// Wall time the current queue/step phase ends.
    next_at: Option<tokio::time::Instant>,
}

/// A Jenkins queue item: the build it became, once it left the queue.
#[derive(Debug, Clone)]
pub struct QueueItem {
    pub id: u64,
    pub job: String,
    pub run_id: u64,
    pub cancelled: bool,
    pub in_queue_since: DateTime<Utc>,
}

/// Runs kept (with their logs); older completed ones are forgotten, so a sandbox left
/// building for hours stays bounded. Numbers keep counting.
pub const MAX_RUNS: usize = 2000;

#[derive(Default)]
struct State {
    runs: Vec<Run>,
    queue: Vec<QueueItem>,
    numbers: BTreeMap<String, u64>,
    next_run: u64,
    next_job: u64,
    next_queue: u64,
}

impl State {
    /// Forget the oldest completed runs beyond [`MAX_RUNS`], and their queue items.
    fn trim(&mut self) {
        let mut excess = self.runs.len().saturating_sub(MAX_RUNS);
        if excess == 0 {
            return;
        }
        self.runs.retain(|r| {
            if excess > 0 && r.status == Status::Completed {
                excess -= 1;
                false
            } else {
                true
            }
        });
        let kept: std::collections::HashSet<u64> = self.runs.iter().map(|r| r.id).collect();
        self.queue.retain(|q| kept.contains(&q.run_id));
    }
}

/// All CI runs of the sandbox. Lives in `World`.
#[derive(Default)]
pub struct Ci {
    state: Mutex<State>,
    wake: tokio::sync::Notify,
    /// GitHub API calls answered, for the rate-limit headers.
    pub api_calls: AtomicU64,
    /// Jenkins CSRF crumbs issued: (session, crumb), newest last.
    crumbs: Mutex<Vec<(String, String)>>,
    tokens: AtomicU64,
}

impl std::fmt::Debug for Ci {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ci").finish_non_exhaustive()
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub origin: Origin,
    pub name: String,
    pub action: Option<CiAction>,
    pub inputs: BTreeMap<String, String>,
    pub branch: String,
    pub head_sha: String,
    pub head_message: String,
    pub actor: String,
    /// Jobs in run order; empty: the default jobs of the action.
    pub jobs: Vec<JobSpec>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CiError {
    #[error("run {0} not found")]
    NotFound(u64),
    #[error("Cannot cancel a workflow run that is completed.")]
    AlreadyCompleted,
    #[error("This workflow run is not completed yet, so it cannot be re-run.")]
    NotCompleted,
}

fn truthy(v: Option<&String>) -> bool {
    v.is_some_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "1" | "yes"))
}

/// The default jobs of an action, as the estate's workflow files describe them.
fn default_jobs(action: Option<CiAction>) -> Vec<JobSpec> {
    match action {
        Some(CiAction::Build) => vec![
            JobSpec::new("test", &["Run actions/checkout@v4", "Run unit tests"], &[]),
            JobSpec::new(
                "build",
                &[
                    "Run actions/checkout@v4",
                    "Build and push image",
                    "Scan image",
                ],
                &["test"],
            ),
            JobSpec::new(
                "bump",
                &[
                    "Run actions/checkout@v4",
                    "Bump image tag in manifests",
                    "Commit and push",
                ],
                &["build"],
            ),
        ],
        Some(CiAction::Deploy) => vec![JobSpec::new(
            "deploy",
            &[
                "Run actions/checkout@v4",
                "Set image tag",
                "Commit and push",
                "Notify Argo CD",
            ],
            &[],
        )],
        Some(CiAction::Sync) => vec![JobSpec::new(
            "sync",
            &[
                "Run actions/checkout@v4",
                "Log in to Argo CD",
                "Sync applications",
            ],
            &[],
        )],
        Some(CiAction::Verify) | None => vec![JobSpec::new(
            "verify",
            &["Run actions/checkout@v4", "Health checks", "Smoke tests"],
            &[],
        )],
    }
}

impl Ci {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A fresh opaque token (Jenkins sessions, crumbs), from the OS random source so no
    /// one can guess another client's.
    pub fn new_token(&self, kind: &str) -> String {
        let _ = kind;
        self.tokens.fetch_add(1, Ordering::Relaxed);
        let bytes: [u8; 16] = rand::random();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Issue a CSRF crumb for a Jenkins session (the last 1,000 stay valid).
    pub fn issue_crumb(&self, session: &str) -> String {
        let crumb = self.new_token("crumb");
        let mut crumbs = self.crumbs.lock().unwrap_or_else(|p| p.into_inner());
        crumbs.push((session.to_string(), crumb.clone()));
        let excess = crumbs.len().saturating_sub(1000);
        crumbs.drain(..excess);
        crumb
    }

    pub fn crumbs(&self) -> Vec<(String, String)> {
        self.crumbs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The number the next run of a workflow (`gh:FILE`) or job (`jenkins:NAME`) gets.
    pub fn next_number(&self, key: &str) -> u64 {
        self.lock().numbers.get(key).copied().unwrap_or(0) + 1
    }

    /// Queue a new run; returns it. The engine task picks it up at once.
    pub fn start(&self, world: &World, new: NewRun) -> Run {
        let mut st = self.lock();
        st.next_run += 1;
        let id = 9_000_000_000 + st.next_run;
        let key = match &new.origin {
            Origin::Github { file, .. } => format!("gh:{file}"),
            Origin::Jenkins { job } => format!("jenkins:{job}"),
        };
        let number = {
            let n = st.numbers.entry(key).or_insert(0);
            *n += 1;
            *n
        };
        let job_specs = if new.jobs.is_empty() {
            default_jobs(new.action)
        } else {
            new.jobs.clone()
        };
        let names: Vec<String> = job_specs.iter().map(|j| j.name.clone()).collect();
        let jobs = job_specs
            .into_iter()
            .map(|spec| {
                st.next_job += 1;
                let needs = spec
                    .needs
                    .iter()
                    .filter_map(|n| names.iter().position(|x| x == n))
                    .collect();
                build_job(20_000_000_000 + st.next_job, spec.name, spec.steps, needs)
            })
            .collect::<Vec<_>>();
        let now = Utc::now();
        let mut run = Run {
            id,
            origin: new.origin,
            name: new.name,
            number,
            attempt: 1,
            action: new.action,
            inputs: new.inputs,
            branch: new.branch,
            head_sha: new.head_sha,
            head_message: new.head_message,
            event: "workflow_dispatch".into(),
            actor: new.actor,
            status: Status::Queued,
            conclusion: None,
            jobs,
            created_at: now,
            updated_at: now,
            started_at: None,
            tag: None,
            commits: Vec::new(),
            log: Vec::new(),
            fail_at: None,
            next_at: None,
        };
        plan(world, &mut run);
        st.runs.push(run.clone());
        st.trim();
        drop(st);
        self.wake.notify_one();
        run
    }

    /// A Jenkins trigger: a queue item for a new build.
    pub fn enqueue_jenkins(&self, world: &World, new: NewRun) -> QueueItem {
        let job = match &new.origin {
            Origin::Jenkins { job } => job.clone(),
            Origin::Github { file, .. } => file.clone(),
        };
        let run = self.start(world, new);
        let mut st = self.lock();
        st.next_queue += 1;
        let item = QueueItem {
            id: st.next_queue,
            job,
            run_id: run.id,
            cancelled: false,
            in_queue_since: run.created_at,
        };
        st.queue.push(item.clone());
        item
    }

    pub fn queue_item(&self, id: u64) -> Option<(QueueItem, Run)> {
        let st = self.lock();
        let item = st.queue.iter().find(|q| q.id == id)?.clone();
        let run = st.runs.iter().find(|r| r.id == item.run_id)?.clone();
        Some((item, run))
    }

    /// Every Jenkins queue item with its run, oldest first.
    pub fn queue_items(&self) -> Vec<(QueueItem, Run)> {
        let st = self.lock();
        st.queue
            .iter()
            .filter_map(|q| {
                let run = st.runs.iter().find(|r| r.id == q.run_id)?;
                Some((q.clone(), run.clone()))
            })
            .collect()
    }

    pub fn run(&self, id: u64) -> Option<Run> {
        self.lock().runs.iter().find(|r| r.id == id).cloned()
    }

    /// A Jenkins build by job and number.
    pub fn build(&self, job: &str, number: u64) -> Option<Run> {
        self.lock()
            .runs
            .iter()
            .find(|r| {
                r.number == number && matches!(&r.origin, Origin::Jenkins { job: j } if j == job)
            })
            .cloned()
    }

    /// Every run, newest first.
    pub fn runs(&self) -> Vec<Run> {
        let mut v = self.lock().runs.clone();
        v.reverse();
        v
    }

    pub fn cancel(&self, id: u64) -> Result<Run, CiError> {
        let mut st = self.lock();
        let run = st
            .runs
            .iter_mut()
            .find(|r| r.id == id)
            .ok_or(CiError::NotFound(id))?;
        if run.status == Status::Completed {
            return Err(CiError::AlreadyCompleted);
        }
        let now = Utc::now();
        for job in &mut run.jobs {
            for step in &mut job.steps {
                if step.status != Status::Completed {
                    step.conclusion = Some(if step.status == Status::InProgress {
                        "cancelled"
                    } else {
                        "skipped"
                    });
                    step.status = Status::Completed;
                    step.completed_at = step.started_at.map(|_| now);
                }
            }
            if job.status != Status::Completed {
                job.conclusion = Some("cancelled");
                job.status = Status::Completed;
                job.completed_at = Some(now);
            }
        }
        run.status = Status::Completed;
        run.conclusion = Some("cancelled");
        run.updated_at = now;
        run.next_at = None;
        run.log.push("The run was canceled by @admin.".into());
        for q in st.queue.iter_mut().filter(|q| q.run_id == id) {
            q.cancelled = true;
        }
        st.runs
            .iter()
            .find(|r| r.id == id)
            .cloned()
            .ok_or(CiError::NotFound(id))
    }

    /// Re-run a completed run (all jobs, or only the failed ones and those after them).
    pub fn rerun(&self, world: &World, id: u64, failed_only: bool) -> Result<Run, CiError> {
        let mut st = self.lock();
        let run = st
            .runs
            .iter_mut()
            .find(|r| r.id == id)
            .ok_or(CiError::NotFound(id))?;
        if run.status != Status::Completed {
            return Err(CiError::NotCompleted);
        }
        // Re-run failed jobs (and the ones skipped or cancelled with them); keep successes.
        for job in run
            .jobs
            .iter_mut()
            .filter(|j| !failed_only || j.conclusion != Some("success"))
        {
            let n = job.steps.len();
            let steps = job
                .steps
                .iter()
                .skip(1)
                .take(n.saturating_sub(2))
                .map(|s| s.name.clone())
                .collect();
            *job = build_job(job.id, job.name.clone(), steps, job.needs.clone());
        }
        run.attempt += 1;
        run.status = Status::Queued;
        run.conclusion = None;
        run.updated_at = Utc::now();
        run.log.clear();
        plan(world, run);
        let run = run.clone();
        drop(st);
        self.wake.notify_one();
        Ok(run)
    }
}

fn build_job(id: u64, name: String, steps: Vec<String>, needs: Vec<usize>) -> Job {
    let mut names = vec!["Set up job".to_string()];
    names.extend(steps);
    names.push("Complete job".into());
    let count = names.len();
    let steps = names
        .into_iter()
        .enumerate()
        .map(|(i, name)| {
            let effect = matches!(name.as_str(), "Commit and push" | "Health checks");
            let seconds = match i {
                0 => 1.0,
                _ if i == count - 1 => 0.5,
                _ if effect => 1.5,
                _ => 2.0 + (i % 3) as f64,
            };
            Step {
                number: i as u32 + 1,
                name,
                status: Status::Queued,
                conclusion: None,
                started_at: None,
                completed_at: None,
                seconds,
                effect,
            }
        })
        .collect();
    Job {
        id,
        name,
        status: Status::Queued,
        conclusion: None,
        started_at: None,
        completed_at: None,
        steps,
        needs,
        log: Vec::new(),
    }
}

/// Decide up front whether (and where) the run fails: a `simulate_failure`/`fail` input, or
/// an estate whose builds of this service fail (at the tests).
fn plan(world: &World, run: &mut Run) {
    let forced = truthy(run.inputs.get("simulate_failure")) || truthy(run.inputs.get("fail"));
    let service = run.inputs.get("service").cloned().unwrap_or_default();
    let estate_fails = run.action == Some(CiAction::Build)
        && !service.is_empty()
        && world.estate.fails_builds(&service);
    run.fail_at = if forced || estate_fails {
        // The first step that does real work (after "Set up job" and checkout).
        run.jobs
            .iter()
            .position(|j| j.status != Status::Completed)
            .map(|j| (j, run.jobs[j].steps.len().saturating_sub(2).clamp(1, 2)))
    } else {
        None
    };
    run.next_at = Some(tokio::time::Instant::now() + world.clock.wall(queue_time(&run.origin)));
}

/// Simulated time a new run waits before it starts: a second for GitHub's runner pickup,
/// Jenkins' default quiet period (5 s) for a build.
pub fn queue_time(origin: &Origin) -> Duration {
    match origin {
        Origin::Github { .. } => Duration::from_secs(1),
        Origin::Jenkins { .. } => Duration::from_secs(5),
    }
}

/// The CI engine: advances every active run when its current phase is due.
pub fn spawn(world: Arc<World>) -> Vec<tokio::task::JoinHandle<()>> {
    vec![tokio::spawn(async move {
        loop {
            let next = advance(&world);
            match next {
                Some(t) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(t) => {}
                        _ = world.ci.wake.notified() => {}
                    }
                }
                None => world.ci.wake.notified().await,
            }
        }
    })]
}

/// Advance all due runs; returns when the next one is due. Side effects (Git commits) run
/// outside the lock.
fn advance(world: &World) -> Option<tokio::time::Instant> {
    let now = tokio::time::Instant::now();
    let mut effects: Vec<(u64, Run)> = Vec::new();
    {
        let mut st = world.ci.lock();
        for run in st.runs.iter_mut() {
            while run.status != Status::Completed && run.next_at.is_some_and(|t| t <= now) {
                if let Some(effect_run) = step_run(world, run, now) {
                    effects.push((run.id, effect_run));
                    break;
                }
            }
        }
    }
    for (id, snapshot) in effects {
        let outcome = perform(world, &snapshot);
        let mut st = world.ci.lock();
        if let Some(run) = st.runs.iter_mut().find(|r| r.id == id) {
            finish_effect(world, run, outcome);
        }
    }
    let st = world.ci.lock();
    st.runs
        .iter()
        .filter(|r| r.status != Status::Completed)
        .filter_map(|r| r.next_at)
        .min()
}

/// GitHub's log line: the timestamp, a space, the text.
fn log_line(ts: DateTime<Utc>, text: &str) -> String {
    format!(
        "{} {text}",
        ts.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
    )
}

/// Move a run one phase on. Returns a snapshot when the phase that just started needs its
/// side effect performed (the run then waits for `finish_effect`).
fn step_run(world: &World, run: &mut Run, now: tokio::time::Instant) -> Option<Run> {
    let ts = Utc::now();
    let clock = world.clock;
    run.updated_at = ts;
    if run.status == Status::Queued {
        run.status = Status::InProgress;
        run.started_at = Some(ts);
    }
    // The current job and step.
    let Some(ji) = run.jobs.iter().position(|j| j.status != Status::Completed) else {
        complete(run, ts);
        return None;
    };
    // A job whose needed jobs did not all succeed never starts: GitHub skips it.
    if run.jobs[ji].status == Status::Queued {
        let blocked = run.jobs[ji].needs.iter().any(|&n| {
            run.jobs
                .get(n)
                .is_some_and(|d| d.conclusion != Some("success"))
        });
        if blocked {
            skip_job(&mut run.jobs[ji], ts);
            run.next_at = Some(now);
            return None;
        }
    }
    let fail_at = run.fail_at;
    let job = &mut run.jobs[ji];
    if job.status == Status::Queued {
        job.status = Status::InProgress;
        job.started_at = Some(ts);
    }
    let Some(si) = job.steps.iter().position(|s| s.status != Status::Completed) else {
        job.status = Status::Completed;
        job.completed_at = Some(ts);
        job.conclusion = Some("success");
        run.next_at = Some(now);
        return None;
    };
    let step = &mut job.steps[si];
    match step.status {
        Status::Queued => {
            step.status = Status::InProgress;
            step.started_at = Some(ts);
            let secs = step.seconds;
            run.log.push(format!("##[group]{}", step.name));
            let line = log_line(ts, &format!("##[group]{}", step.name));
            job.log.push(line);
            run.next_at = Some(now + clock.wall(Duration::from_secs_f64(secs)));
            None
        }
        _ => {
            if fail_at == Some((ji, si)) {
                step.status = Status::Completed;
                step.completed_at = Some(ts);
                step.conclusion = Some("failure");
                let name = step.name.clone();
                let error = format!("##[error]{name}: Process completed with exit code 1.");
                job.log.push(log_line(ts, &error));
                job.log.push(log_line(ts, "##[endgroup]"));
                run.log.push(error);
                fail_from(run, ji, ts);
                return None;
            }
            if step.effect {
                return Some(run.clone());
            }
            step.status = Status::Completed;
            step.completed_at = Some(ts);
            step.conclusion = Some("success");
            job.log.push(log_line(ts, "##[endgroup]"));
            run.next_at = Some(now);
            None
        }
    }
}

/// A job that never ran: it and its steps are `skipped`.
fn skip_job(job: &mut Job, ts: DateTime<Utc>) {
    for step in job
        .steps
        .iter_mut()
        .filter(|s| s.status != Status::Completed)
    {
        step.status = Status::Completed;
        step.conclusion = Some("skipped");
    }
    job.status = Status::Completed;
    job.conclusion = Some("skipped");
    job.started_at = Some(ts);
    job.completed_at = Some(ts);
}

/// Job `ji` failed at its current step: the steps after it are skipped, except the runner's
/// own "Complete job", which still runs (as on GitHub). The run goes on with the jobs that do
/// not need the failed one; those that do are skipped when their turn comes.
fn fail_from(run: &mut Run, ji: usize, ts: DateTime<Utc>) {
    let job = &mut run.jobs[ji];
    let last = job.steps.len().saturating_sub(1);
    for (i, step) in job.steps.iter_mut().enumerate() {
        if step.status == Status::Completed {
            continue;
        }
        step.status = Status::Completed;
        if i == last && step.name == "Complete job" {
            step.conclusion = Some("success");
            step.started_at = Some(ts);
            step.completed_at = Some(ts);
        } else {
            step.conclusion = Some("skipped");
        }
    }
    job.log.push(log_line(ts, "Cleaning up orphan processes"));
    job.status = Status::Completed;
    job.completed_at = Some(ts);
    job.conclusion = Some("failure");
    if job.started_at.is_none() {
        job.started_at = Some(ts);
    }
    run.next_at = Some(tokio::time::Instant::now());
}

/// Every job is done: the run concludes `failure` if one failed, `success` otherwise.
fn complete(run: &mut Run, ts: DateTime<Utc>) {
    let failed = run
        .jobs
        .iter()
        .any(|j| matches!(j.conclusion, Some("failure") | Some("cancelled")));
    run.status = Status::Completed;
    run.conclusion = Some(if failed { "failure" } else { "success" });
    run.updated_at = ts;
    run.next_at = None;
}

/// What a run's effect step produced.
struct Outcome {
    ok: bool,
    lines: Vec<String>,
    tag: Option<String>,
    commits: Vec<String>,
}

/// The side effect of a run: commit image bumps (build, deploy) or check health (verify).
fn perform(world: &World, run: &Run) -> Outcome {
    let mut out = Outcome {
        ok: true,
        lines: Vec::new(),
        tag: None,
        commits: Vec::new(),
    };
    let input = |k: &str| {
        run.inputs
            .get(k)
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let mut bumps: Vec<ImageBump> = Vec::new();
    match run.action {
        Some(CiAction::Build) if trigger_of(world, run).is_some() => {
            trigger_downstream(world, run, &mut out);
        }
        Some(CiAction::Build) => {
            let service = input("service");
            let build = 1000 + (run.id % 1_000_000) as usize;
            let tag = world.estate.tag(&service, build, &run.branch);
            out.tag = Some(tag.clone());
            for environment in world.estate.environments_of(&service) {
                bumps.push(ImageBump {
                    service: service.clone(),
                    environment,
                    tag: tag.clone(),
                });
            }
            if bumps.is_empty() {
                out.ok = false;
                out.lines
                    .push(format!("no environment deploys service '{service}'"));
            }
        }
        Some(CiAction::Deploy) => {
            let environment = match input("environment") {
                e if e.is_empty() => input("ENVIRONMENT"),
                e => e,
            };
            // A job of a one-environment estate takes no ENVIRONMENT parameter.
            let environment = match (environment.is_empty(), &world.estate.environments[..]) {
                (true, [only]) => only.name.clone(),
                _ => environment,
            };
            let service = input("service");
            let version = input("version");
            if !service.is_empty() {
                bumps.push(ImageBump {
                    service,
                    environment: environment.clone(),
                    tag: version,
                });
            }
            // Jenkins GitOps-Pipeline: one `<SERVICE>_DOCKER_TAG` parameter per service.
            for (p, s) in world.estate.tag_parameters() {
                let tag = input(&p);
                if !tag.is_empty() {
                    bumps.push(ImageBump {
                        service: s,
                        environment: environment.clone(),
                        tag,
                    });
                }
            }
            if bumps.is_empty() {
                out.lines
                    .push("nothing to deploy: no service tag given".into());
            }
        }
        Some(CiAction::Verify) => {
            let env = input("environment");
            let env = if env == "production" && world.estate.environment("production").is_none() {
                "prod".to_string()
            } else {
                env
            };
            let (apps, _) = world.store.list(
                super::IN_CLUSTER,
                APPLICATIONS,
                Some(super::ARGOCD_NAMESPACE),
            );
            let mut checked = 0;
            for a in apps
                .iter()
                .filter(|a| a["metadata"]["labels"]["env"].as_str() == Some(env.as_str()))
            {
                checked += 1;
                let health = a["status"]["health"]["status"]
                    .as_str()
                    .unwrap_or("Unknown");
                let name = a["metadata"]["name"].as_str().unwrap_or("");
                out.lines.push(format!("{name}: {health}"));
                if health != "Healthy" {
                    out.ok = false;
                }
            }
            if checked == 0 {
                out.ok = false;
                out.lines
                    .push(format!("no applications in environment '{env}'"));
            }
        }
        Some(CiAction::Sync) => request_syncs(world, run, &mut out),
        None => {}
    }
    // The bump commit says which run made it and from which commit, as CI bots' trailers do.
    let trailer = format!(
        "Built-by: {} run #{} ({})\nSource-Commit: {}",
        run.name, run.number, run.id, run.head_sha
    );
    for bump in bumps {
        match super::estate::apply_bump_with(world, &bump, "ci-bot", &trailer) {
            Ok(sha) => {
                out.lines.push(format!(
                    "bumped {} in {} to {} ({})",
                    bump.service,
                    bump.environment,
                    bump.tag,
                    &sha[..sha.len().min(7)]
                ));
                out.commits.push(sha);
            }
            Err(e) => {
                out.ok = false;
                out.lines.push(format!("error: {e}"));
            }
        }
    }
    out
}

/// The downstream job of a Jenkins build whose job definition names one.
fn trigger_of(world: &World, run: &Run) -> Option<String> {
    let Origin::Jenkins { job } = &run.origin else {
        return None;
    };
    world
        .estate
        .jenkins
        .iter()
        .find(|j| &j.name == job)
        .and_then(|j| j.trigger.clone())
}

/// A "CI" build: tag every image it built and hand the tags to the downstream job (its
/// `<X>_DOCKER_TAG` parameters), which rewrites the manifests and pushes.
fn trigger_downstream(world: &World, run: &Run, out: &mut Outcome) {
    let Some(downstream) = trigger_of(world, run) else {
        return;
    };
    let Some(def) = world.estate.jenkins.iter().find(|j| j.name == downstream) else {
        out.ok = false;
        out.lines
            .push(format!("ERROR: No item named {downstream} found"));
        return;
    };
    let build = 1000 + (run.id % 1_000_000) as usize;
    let mut params = BTreeMap::new();
    for (param, target) in world.estate.tag_parameters() {
        if !def.parameters.iter().any(|p| p.name == param) {
            continue;
        }
        let tag = world.estate.tag(&target, build, &run.branch);
        out.lines.push(format!("built {target}:{tag}"));
        params.insert(param, tag);
    }
    if params.is_empty() {
        out.ok = false;
        out.lines
            .push(format!("{downstream} takes no image tag parameter"));
        return;
    }
    out.tag = params.values().next().cloned();
    let item = world.ci.enqueue_jenkins(
        world,
        NewRun {
            origin: Origin::Jenkins {
                job: downstream.clone(),
            },
            name: downstream.clone(),
            action: Some(def.action),
            inputs: params,
            branch: run.branch.clone(),
            head_sha: run.head_sha.clone(),
            head_message: String::new(),
            actor: run.actor.clone(),
            jobs: vec![JobSpec::new(
                &downstream,
                &["Checkout SCM", "Update manifests", "Commit and push"],
                &[],
            )],
        },
    );
    out.lines.push(format!(
        "Scheduling project: {downstream} (queue item {})",
        item.id
    ));
}

/// gitops-sync: ask Argo CD to sync the apps of a target (by their sync wave: infrastructure
/// up to 0, monitoring 1, microservices 2), only those out of sync unless `force_sync`.
fn request_syncs(world: &World, run: &Run, out: &mut Outcome) {
    let target = run
        .inputs
        .get("sync_target")
        .map(|v| v.trim().to_string())
        .unwrap_or_else(|| "all".into());
    let force = truthy(run.inputs.get("force_sync"));
    let waves: &dyn Fn(i64) -> bool = match target.as_str() {
        "infrastructure" => &|w| w <= 0,
        "monitoring" => &|w| w == 1,
        "microservices" => &|w| w == 2,
        "all" => &|_| true,
        other => {
            out.ok = false;
            out.lines.push(format!(
                "unknown sync_target '{other}' (infrastructure, monitoring, microservices, all)"
            ));
            return;
        }
    };
    let (apps, _) = world.store.list(
        super::IN_CLUSTER,
        APPLICATIONS,
        Some(super::ARGOCD_NAMESPACE),
    );
    let mut asked = 0;
    for a in apps.iter() {
        let wave = a["metadata"]["annotations"][super::estate::SYNC_WAVE]
            .as_str()
            .and_then(|w| w.trim().parse::<i64>().ok())
            .unwrap_or(0);
        let name = a["metadata"]["name"].as_str().unwrap_or("").to_string();
        let children = a["spec"]["source"]["path"]
            .as_str()
            .is_some_and(|p| p.starts_with("argocd/"));
        if children || !waves(wave) {
            continue;
        }
        if !force && a["status"]["sync"]["status"] == "Synced" {
            continue;
        }
        let operation = serde_json::json!({
            "sync": {"revision": a["spec"]["source"]["targetRevision"], "prune": true,
                     "syncOptions": if force { serde_json::json!(["Force=true"]) } else { serde_json::json!([]) }},
            "initiatedBy": {"username": run.actor},
            "retry": {},
        });
        let mut set = false;
        let written = world.store.mutate(
            super::IN_CLUSTER,
            APPLICATIONS,
            super::ARGOCD_NAMESPACE,
            &name,
            false,
            |o| {
                set = o.get("operation").is_none_or(|op| op.is_null());
                if set {
                    o["operation"] = operation.clone();
                }
                Ok(set)
            },
        );
        if written.is_ok() && set {
            asked += 1;
            out.lines.push(format!("argocd app sync {name}"));
        }
    }
    out.lines
        .push(format!("{asked} application(s) asked to sync ({target})"));
}

fn finish_effect(world: &World, run: &mut Run, outcome: Outcome) {
    let ts = Utc::now();
    run.log.extend(outcome.lines.iter().cloned());
    if outcome.tag.is_some() {
        run.tag = outcome.tag;
    }
    run.commits.extend(outcome.commits);
    if run.status == Status::Completed {
        return; // cancelled meanwhile
    }
    let Some(ji) = run.jobs.iter().position(|j| j.status != Status::Completed) else {
        return;
    };
    let Some(si) = run.jobs[ji]
        .steps
        .iter()
        .position(|s| s.status != Status::Completed)
    else {
        return;
    };
    for line in &outcome.lines {
        run.jobs[ji].log.push(log_line(ts, line));
    }
    run.jobs[ji].log.push(log_line(ts, "##[endgroup]"));
    let step = &mut run.jobs[ji].steps[si];
    step.status = Status::Completed;
    step.completed_at = Some(ts);
    if outcome.ok {
        step.conclusion = Some("success");
        run.next_at = Some(tokio::time::Instant::now());
    } else {
        step.conclusion = Some("failure");
        fail_from(run, ji, ts);
    }
    let _ = world;
    run.updated_at = ts;
}

/// The source commit a seeded build ran on: the sha in its image tag (`sha-3fdd1ba`,
/// `main-3fdd1ba`), completed to 40 hex digits, as a real build's head SHA is the commit
/// the tag names. None for tag styles without a sha (semver, date).
pub fn source_commit(seed: u64, tag: &str) -> Option<String> {
    let short = tag.rsplit('-').next()?;
    if short.len() != 7 || !short.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = short.to_ascii_lowercase();
    let mut i = 0u32;
    while out.len() < 40 {
        let h = super::estate::hash(seed, &format!("{tag}/{i}"));
        out.push_str(&format!("{h:016x}"));
        i += 1;
    }
    out.truncate(40);
    Some(out)
}

/// The build history CI has at start: one completed `build.yml` run per image the estate's
/// Git holds (oldest first), on the source commit its tag names, concluded `success` (the
/// estate's failing services' newest builds `failure`). This is what links an image to the
/// run that built it, as in a real pipeline.
pub fn seed_history(world: &World) {
    let estate = &world.estate;
    let Some(wf) = estate
        .github
        .workflows
        .iter()
        .find(|w| w.action == CiAction::Build)
    else {
        return;
    };
    let mut builds: BTreeMap<(usize, String), (String, String)> = BTreeMap::new();
    for app in estate
        .apps
        .iter()
        .filter(|a| a.kind == super::estate::AppKind::Service)
    {
        for build in app.builds() {
            let tag = estate.tag(&app.service, build, &app.branch);
            builds
                .entry((build, app.service.clone()))
                .or_insert((tag, app.branch.clone()));
        }
    }
    let newest: BTreeMap<&str, usize> =
        builds
            .keys()
            .map(|(b, s)| (s.as_str(), *b))
            .fold(BTreeMap::new(), |mut m, (s, b)| {
                let e = m.entry(s).or_insert(b);
                *e = (*e).max(b);
                m
            });
    let mut st = world.ci.lock();
    for ((build, service), (tag, branch)) in &builds {
        let Some(head_sha) = source_commit(estate.seed, tag) else {
            continue;
        };
        let failed = estate.fails_builds(service) && newest.get(service.as_str()) == Some(build);
        st.next_run += 1;
        let id = 9_000_000_000 + st.next_run;
        let number = {
            let n = st.numbers.entry(format!("gh:{}", wf.file)).or_insert(0);
            *n += 1;
            *n
        };
        let at = super::estate::render::build_time(estate, service, *build);
        let conclusion = if failed { "failure" } else { "success" };
        let jobs = default_jobs(Some(CiAction::Build))
            .into_iter()
            .map(|spec| {
                st.next_job += 1;
                let mut job =
                    build_job(20_000_000_000 + st.next_job, spec.name, spec.steps, vec![]);
                job.status = Status::Completed;
                job.conclusion = Some(conclusion);
                job.started_at = Some(at);
                job.completed_at = Some(at + chrono::Duration::minutes(3));
                for step in &mut job.steps {
                    step.status = Status::Completed;
                    step.conclusion = Some(conclusion);
                    step.started_at = Some(at);
                    step.completed_at = Some(at + chrono::Duration::minutes(3));
                }
                job
            })
            .collect();
        let mut inputs = BTreeMap::new();
        inputs.insert("service".to_string(), service.clone());
        st.runs.push(Run {
            id,
            origin: Origin::Github {
                workflow_id: super::github_api::workflow_id(&wf.file),
                file: wf.file.clone(),
            },
            name: wf.name.clone(),
            number,
            attempt: 1,
            action: Some(CiAction::Build),
            inputs,
            branch: branch.clone(),
            head_sha,
            head_message: format!("{service}: build {build}"),
            event: "push".into(),
            actor: "ci-bot".into(),
            status: Status::Completed,
            conclusion: Some(conclusion),
            jobs,
            created_at: at,
            updated_at: at + chrono::Duration::minutes(3),
            started_at: Some(at),
            tag: (!failed).then(|| tag.clone()),
            commits: Vec::new(),
            log: Vec::new(),
            fail_at: None,
            next_at: None,
        });
    }
    st.trim();
}

/// Counter of GitHub API calls answered (rate-limit headers).
pub fn count_api_call(world: &World) -> u64 {
    world.ci.api_calls.fetch_add(1, Ordering::Relaxed) + 1
}
