//! Builds: the pipelines that can be triggered (GitHub workflows with `workflow_dispatch`
//! inputs, Jenkins jobs with parameters) and recent runs. `Enter` on a pipeline opens a
//! form generated from its inputs (choices as lists, booleans as toggles, defaults filled);
//! submitting triggers it and follows the run's jobs and steps live; `r` reruns and `c`
//! cancels the followed run.

use crate::model::{AppId, BuildRun, BuildState, BuildSystem};
use crate::ops::actions::produced::{NextStop, Produced};
use crate::tui::keymap::Intent;
use crate::tui::request::{Payload, Pipeline, PipelineInput, Request, Response, Ticket};
use crate::tui::theme::{Role, Theme};
use crate::tui::view::{Ctx, Level, Loadable, Outbox, View};
use crate::tui::widgets::{self, clean, fit, pad};
use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use std::collections::BTreeMap;

/// One form field's value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Text(String),
    Choice { options: Vec<String>, index: usize },
    Toggle(bool),
}

impl Value {
    fn for_input(i: &PipelineInput) -> Value {
        let default = i.default.clone().unwrap_or_default();
        match i.kind.as_str() {
            "boolean" => Value::Toggle(default == "true"),
            "choice" | "environment" if !i.options.is_empty() => Value::Choice {
                index: i.options.iter().position(|o| *o == default).unwrap_or(0),
                options: i.options.clone(),
            },
            _ => Value::Text(default),
        }
    }

    fn as_string(&self) -> String {
        match self {
            Value::Text(s) => s.clone(),
            Value::Choice { options, index } => options.get(*index).cloned().unwrap_or_default(),
            Value::Toggle(b) => b.to_string(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Form {
    pipeline: Pipeline,
    values: Vec<Value>,
    field: usize,
    /// What was preselected from the app's cell, or why it could not be, for the form.
    notes: Vec<String>,
}

impl Form {
    pub fn new(pipeline: Pipeline) -> Self {
        let values = pipeline.inputs.iter().map(Value::for_input).collect();
        Form {
            pipeline,
            values,
            field: 0,
            notes: Vec::new(),
        }
    }

    /// The form for one app's cell: inputs that name a service or an environment take the
    /// app's (when the pipeline offers it), and the cursor starts on the first required
    /// field still empty, or the app's own field (`CART_DOCKER_TAG`).
    pub fn for_app(pipeline: Pipeline, service: &str, environment: &str) -> Self {
        let mut f = Form::new(pipeline);
        let tag_field = format!("{}_docker_tag", service.to_lowercase().replace('-', "_"));
        let mut own_field = None;
        for (i, (input, value)) in f
            .pipeline
            .inputs
            .iter()
            .zip(f.values.iter_mut())
            .enumerate()
        {
            let name = input.name.to_lowercase();
            if name == tag_field {
                own_field = Some(i);
            }
            let want = if name.contains("service") {
                ("service", service)
            } else if name.contains("environment") || name == "env" {
                ("environment", environment)
            } else {
                continue;
            };
            match value {
                Value::Choice { options, index } => {
                    match options.iter().position(|o| o.eq_ignore_ascii_case(want.1)) {
                        Some(j) => {
                            *index = j;
                            f.notes.push(format!("{}={}", input.name, want.1));
                        }
                        None => f.notes.push(format!(
                            "{} {} is not an option of `{}`: check it",
                            want.0, want.1, input.name
                        )),
                    }
                }
                Value::Text(t) => {
                    *t = want.1.to_string();
                    f.notes.push(format!("{}={}", input.name, want.1));
                }
                Value::Toggle(_) => {}
            }
        }
        f.field = f
            .pipeline
            .inputs
            .iter()
            .zip(&f.values)
            .position(|(i, v)| i.required && v.as_string().trim().is_empty())
            .or(own_field)
            .unwrap_or(0);
        f
    }

    fn inputs(&self) -> BTreeMap<String, String> {
        self.pipeline
            .inputs
            .iter()
            .zip(&self.values)
            .map(|(i, v)| (i.name.clone(), v.as_string()))
            .collect()
    }

    fn missing(&self) -> Option<&str> {
        self.pipeline
            .inputs
            .iter()
            .zip(&self.values)
            .find(|(i, v)| i.required && v.as_string().trim().is_empty())
            .map(|(i, _)| i.name.as_str())
    }
}

enum Mode {
    List,
    Form(Form),
    /// Following one run.
    Run {
        trigger: Option<Ticket>,
        watch: Option<Ticket>,
        run: Option<BuildRun>,
        error: Option<String>,
    },
}

pub struct BuildsView {
    app: Option<AppId>,
    pipelines: Loadable<Vec<Pipeline>>,
    runs: Loadable<Vec<BuildRun>>,
    selected: usize,
    mode: Mode,
    /// `r`/`c` on the followed run waits for `y`: which action.
    ask: Option<RunAction>,
    /// The rerun or cancel sent, and its answer once it came.
    action: Option<(Ticket, RunAction, Answer)>,
    /// The inputs this screen started the followed run with (GitHub does not report them).
    sent: Vec<(String, String)>,
    /// What the followed GitHub run produced, asked once it succeeded.
    produced: Option<RunImage>,
}

/// The image a succeeded GitHub run wrote to the GitOps repo, and where it goes next.
struct RunImage {
    id: u64,
    ticket: Ticket,
    result: Option<Found>,
}

/// The run's bump commits and next stops, or why they are not known.
type Found = Result<(Vec<Produced>, Vec<NextStop>), String>;

/// The answer to a rerun or cancel: None until it came.
type Answer = Option<Result<String, String>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RunAction {
    Rerun,
    Cancel,
}

impl RunAction {
    fn word(self) -> &'static str {
        match self {
            RunAction::Rerun => "rerun",
            RunAction::Cancel => "cancel",
        }
    }
}

/// `k=v, k=v` of a run's inputs, cleaned for the terminal.
fn inputs_words(r: &BuildRun) -> String {
    pairs_words(&r.inputs)
}

/// Inputs left empty are counted, not listed (a Jenkins job has one per service).
fn pairs_words(inputs: &[(String, String)]) -> String {
    let mut words: Vec<String> = inputs
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| format!("{}={}", clean(k), clean(v)))
        .collect();
    let empty = inputs.iter().filter(|(_, v)| v.is_empty()).count();
    if empty > 0 {
        words.push(format!("{empty} left empty"));
    }
    words.join(", ")
}

/// Where a run's image goes next, read from its inputs and the estate: the image (a
/// `version` or `<SERVICE>_DOCKER_TAG` input, when the run deploys a given tag), and for
/// each environment the service runs in (or the one named by an `environment` input)
/// whether its app picks a new commit up by itself or waits for an operator.
fn next_stops(ctx: &Ctx, inputs: &[(String, String)]) -> (Vec<String>, Vec<(String, String)>) {
    let get = |k: &str| {
        inputs
            .iter()
            .find(|(n, v)| n.eq_ignore_ascii_case(k) && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_string())
    };
    let mut images = Vec::new();
    let mut services: Vec<String> = Vec::new();
    if let Some(svc) = get("service") {
        if let Some(v) = get("version") {
            images.push(format!("{svc}:{v}"));
        }
        services.push(svc);
    }
    for (n, v) in inputs {
        if let Some(svc) = n.strip_suffix("_DOCKER_TAG")
            && !v.trim().is_empty()
        {
            let svc = svc.to_lowercase().replace('_', "-");
            images.push(format!("{svc}:{}", v.trim()));
            services.push(svc);
        }
    }
    let named_env = get("environment");
    let mut stops = Vec::new();
    for svc in &services {
        for env in ctx.estate.environments() {
            if named_env
                .as_ref()
                .is_some_and(|e| !e.eq_ignore_ascii_case(&env.name))
            {
                continue;
            }
            let Some(e) = ctx.estate.cell(svc, &env.name).next() else {
                continue;
            };
            let what = if ctx.policy(env) != crate::model::ApprovalPolicy::None {
                "waits for approval".to_string()
            } else if e.board.auto_sync {
                "picks it up (auto-sync)".to_string()
            } else {
                "needs a sync (auto-sync off)".to_string()
            };
            stops.push((clean(&e.id.name).into_owned(), what));
        }
    }
    (images, stops)
}

fn state_span(theme: &Theme, s: BuildState) -> Span<'static> {
    let (text, role) = match s {
        BuildState::Queued => ("… queued", Role::Muted),
        BuildState::InProgress => ("◔ running", Role::Progressing),
        BuildState::Succeeded => ("✓ success", Role::Healthy),
        BuildState::Failed => ("✗ failed", Role::Degraded),
        BuildState::Cancelled => ("⊘ cancelled", Role::Warning),
    };
    Span::styled(text, theme.style(role))
}

impl BuildsView {
    pub fn new(app: Option<AppId>) -> Self {
        BuildsView {
            app,
            pipelines: Loadable::Idle,
            runs: Loadable::Idle,
            selected: 0,
            mode: Mode::List,
            ask: None,
            action: None,
            sent: Vec::new(),
            produced: None,
        }
    }

    /// A view with lists filled in (render tests).
    pub fn with_lists(pipelines: Vec<Pipeline>, runs: Vec<BuildRun>) -> Self {
        BuildsView {
            pipelines: Loadable::Ready(pipelines),
            runs: Loadable::Ready(runs),
            ..BuildsView::new(None)
        }
    }

    /// Open the form of the n-th pipeline (render tests).
    pub fn with_form(mut self, n: usize) -> Self {
        if let Some(p) = self.pipelines.ready().and_then(|p| p.get(n)).cloned() {
            self.mode = Mode::Form(Form::new(p));
        }
        self
    }

    pub fn following(run: BuildRun) -> Self {
        BuildsView {
            mode: Mode::Run {
                trigger: None,
                watch: None,
                run: Some(run),
                error: None,
            },
            ..BuildsView::new(None)
        }
    }

    fn load(&mut self, out: &mut Outbox) {
        self.pipelines = Loadable::Loading(out.request(Request::Pipelines));
        self.runs = Loadable::Loading(out.request(Request::Runs));
    }

    fn n_pipelines(&self) -> usize {
        self.pipelines.ready().map_or(0, Vec::len)
    }

    fn n_rows(&self) -> usize {
        self.n_pipelines() + self.runs.ready().map_or(0, Vec::len)
    }

    fn render_list(&self, ctx: &Ctx, frame: &mut Frame, area: Rect) {
        let theme = ctx.theme;
        let w = area.width.saturating_sub(2) as usize;
        let [top, bottom] =
            Layout::vertical([Constraint::Percentage(40), Constraint::Percentage(60)]).areas(area);
        let mut lines = Vec::new();
        match &self.pipelines {
            Loadable::Ready(ps) if ps.is_empty() => lines.push(Line::from(widgets::muted(
                theme,
                "no triggerable pipelines",
            ))),
            Loadable::Ready(ps) => {
                for (i, p) in ps.iter().enumerate() {
                    let sys = match p.system {
                        crate::model::BuildSystem::GithubActions => "GitHub",
                        crate::model::BuildSystem::Jenkins => "Jenkins",
                    };
                    let mut spans = vec![
                        widgets::muted(theme, format!("{sys:<8}")),
                        widgets::text(theme, pad(&clean(&p.name), 28)),
                        widgets::muted(
                            theme,
                            fit(
                                &format!("{} · {} inputs", clean(&p.title), p.inputs.len()),
                                w.saturating_sub(38),
                            ),
                        ),
                    ];
                    if i == self.selected {
                        spans
                            .iter_mut()
                            .for_each(|s| s.style = theme.selected(s.style));
                    }
                    lines.push(Line::from(spans));
                }
            }
            Loadable::Failed(e) => lines.push(Line::from(widgets::styled(
                theme,
                Role::Danger,
                format!("pipelines: {}", clean(e)),
            ))),
            _ => lines.push(Line::from(widgets::muted(
                theme,
                format!("{} loading pipelines…", ctx.spinner()),
            ))),
        }
        frame.render_widget(
            Paragraph::new(lines).block(widgets::block(theme, "trigger")),
            top,
        );
        let mut lines = Vec::new();
        let h = bottom.height.saturating_sub(2) as usize;
        match &self.runs {
            Loadable::Ready(rs) if rs.is_empty() => {
                lines.push(Line::from(widgets::muted(theme, "no runs yet")))
            }
            Loadable::Ready(rs) => {
                let np = self.n_pipelines();
                let off = widgets::scroll_offset(self.selected.saturating_sub(np), h, rs.len());
                for (i, r) in rs.iter().enumerate().skip(off).take(h) {
                    let mut spans = vec![
                        state_span(theme, r.state),
                        Span::raw(" "),
                        widgets::text(theme, format!("{} #{} ", clean(&r.pipeline), r.id)),
                        widgets::muted(
                            theme,
                            fit(
                                &format!(
                                    "{} {} {}{}",
                                    clean(&r.title),
                                    clean(r.branch.as_deref().unwrap_or("")),
                                    widgets::age(r.created_at.as_deref(), ctx.now),
                                    if r.inputs.is_empty() {
                                        String::new()
                                    } else {
                                        format!(" · {}", inputs_words(r))
                                    }
                                ),
                                w.saturating_sub(40),
                            ),
                        ),
                    ];
                    if np + i == self.selected {
                        spans
                            .iter_mut()
                            .for_each(|s| s.style = theme.selected(s.style));
                    }
                    lines.push(Line::from(spans));
                }
            }
            Loadable::Failed(e) => lines.push(Line::from(widgets::styled(
                theme,
                Role::Danger,
                format!("runs: {}", clean(e)),
            ))),
            _ => lines.push(Line::from(widgets::muted(
                theme,
                format!("{} loading runs…", ctx.spinner()),
            ))),
        }
        frame.render_widget(
            Paragraph::new(lines).block(widgets::block(theme, "recent runs")),
            bottom,
        );
    }

    fn render_form(&self, ctx: &Ctx, frame: &mut Frame, area: Rect, form: &Form) {
        let theme = ctx.theme;
        let mut lines = vec![Line::from(widgets::muted(
            theme,
            format!(
                "ref {}",
                clean(form.pipeline.git_ref.as_deref().unwrap_or("default branch"))
            ),
        ))];
        if let Some(app) = &self.app {
            lines.push(Line::from(widgets::muted(
                theme,
                format!(
                    "for {}: {}",
                    clean(&app.name),
                    if form.notes.is_empty() {
                        "no input names its service or environment".to_string()
                    } else {
                        clean(&form.notes.join(", ")).into_owned()
                    }
                ),
            )));
        }
        lines.push(Line::default());
        for (i, (input, value)) in form.pipeline.inputs.iter().zip(&form.values).enumerate() {
            let selected = i == form.field;
            let label = format!(
                "{}{} {}",
                if selected { "▸ " } else { "  " },
                clean(&input.name),
                if input.required { "*" } else { "" }
            );
            let val: Vec<Span> = match value {
                Value::Text(s) => vec![widgets::text(
                    theme,
                    format!("[{}{}]", clean(s), if selected { "▏" } else { "" }),
                )],
                Value::Toggle(b) => vec![widgets::styled(
                    theme,
                    Role::Accent,
                    if *b { "[x] true" } else { "[ ] false" },
                )],
                Value::Choice { options, index } => options
                    .iter()
                    .enumerate()
                    .map(|(j, o)| {
                        if j == *index {
                            widgets::styled(theme, Role::Accent, format!("‹{}› ", clean(o)))
                        } else {
                            widgets::muted(theme, format!(" {} ", clean(o)))
                        }
                    })
                    .collect(),
            };
            let mut spans = vec![Span::styled(
                pad(&label, 26),
                theme.style(if selected { Role::Accent } else { Role::Text }),
            )];
            spans.extend(val);
            lines.push(Line::from(spans));
            if !input.description.is_empty() {
                lines.push(Line::from(widgets::muted(
                    theme,
                    format!(
                        "    {}",
                        fit(
                            &clean(&input.description),
                            area.width.saturating_sub(8) as usize
                        )
                    ),
                )));
            }
        }
        lines.push(Line::default());
        lines.push(Line::from(widgets::muted(
            theme,
            "↑↓ field · ←→ choose · Space toggle · type to edit · Enter trigger · Esc cancel",
        )));
        frame.render_widget(
            Paragraph::new(lines).block(widgets::block(
                theme,
                format!("trigger {}", clean(&form.pipeline.name)),
            )),
            area,
        );
    }

    /// The image line and the next stops: from the inputs where they name the image,
    /// else (a GitHub run) from the bump commit the run pushed, once known.
    fn produced_words(
        &self,
        run: &BuildRun,
        images: Vec<String>,
        stops: Vec<(String, String)>,
    ) -> (String, Vec<(String, String)>) {
        if !images.is_empty() {
            return (clean(&images.join(", ")).into_owned(), stops);
        }
        let known = self.produced.as_ref().filter(|p| p.id == run.id);
        match known.map(|p| &p.result) {
            Some(Some(Ok((produced, next)))) if !produced.is_empty() => {
                let mut images: Vec<&str> = Vec::new();
                for i in produced.iter().flat_map(|p| p.images.iter()) {
                    if !images.contains(&i.as_str()) {
                        images.push(i);
                    }
                }
                let commits: Vec<&str> = produced
                    .iter()
                    .map(|p| p.commit.get(..7).unwrap_or(&p.commit))
                    .collect();
                let words = format!(
                    "{} (bump {} in the GitOps repo)",
                    images.join(", "),
                    commits.join(", ")
                );
                let stops = next
                    .iter()
                    .map(|n| (clean(&n.app).into_owned(), n.how.clone()))
                    .collect();
                (clean(&words).into_owned(), stops)
            }
            Some(Some(Ok(_))) => (
                "not known: no commit in the GitOps repo names this run".into(),
                stops,
            ),
            Some(Some(Err(e))) => (format!("not known: {}", clean(e)), stops),
            Some(None) => ("looking for the run's bump commit…".into(), stops),
            None if run.system == BuildSystem::GithubActions && !run.state.is_done() => {
                ("known once the run succeeds".into(), stops)
            }
            None => ("not reported by the run".into(), stops),
        }
    }

    fn render_run(
        &self,
        ctx: &Ctx,
        frame: &mut Frame,
        area: Rect,
        run: Option<&BuildRun>,
        error: Option<&String>,
    ) {
        let theme = ctx.theme;
        let mut lines = Vec::new();
        if let Some(e) = error {
            lines.push(Line::from(widgets::styled(
                theme,
                Role::Danger,
                clean(e).into_owned(),
            )));
        }
        match run {
            None if error.is_none() => lines.push(Line::from(widgets::muted(
                theme,
                format!("{} waiting for the run to start…", ctx.spinner()),
            ))),
            None => {}
            Some(r) => {
                lines.push(Line::from(vec![
                    state_span(theme, r.state),
                    widgets::text(theme, format!("  {} #{}  ", clean(&r.pipeline), r.id)),
                    widgets::muted(
                        theme,
                        format!(
                            "{} {}",
                            clean(r.branch.as_deref().unwrap_or("")),
                            clean(
                                r.head_sha
                                    .as_deref()
                                    .map(|s| s.get(..7).unwrap_or(s))
                                    .unwrap_or("")
                            )
                        ),
                    ),
                ]));
                // The inputs the system reports, else the ones this screen sent.
                let inputs = if r.inputs.is_empty() {
                    &self.sent
                } else {
                    &r.inputs
                };
                if !inputs.is_empty() {
                    lines.push(Line::from(vec![
                        widgets::muted(theme, "  started with  "),
                        widgets::text(
                            theme,
                            fit(&pairs_words(inputs), area.width.saturating_sub(20) as usize),
                        ),
                    ]));
                }
                // The image line shows when the inputs name it or the run's bump commit is
                // being looked for.
                if !inputs.is_empty() || self.produced.as_ref().is_some_and(|p| p.id == r.id) {
                    let (images, stops) = next_stops(ctx, inputs);
                    let (image, stops) = self.produced_words(r, images, stops);
                    lines.push(Line::from(vec![
                        widgets::muted(theme, "  image         "),
                        widgets::text(theme, fit(&image, area.width.saturating_sub(20) as usize)),
                    ]));
                    if !stops.is_empty() {
                        let words: Vec<String> =
                            stops.iter().map(|(a, w)| format!("{a} {w}")).collect();
                        lines.push(Line::from(vec![
                            widgets::muted(theme, "  goes next     "),
                            widgets::text(
                                theme,
                                fit(&words.join(" · "), area.width.saturating_sub(20) as usize),
                            ),
                        ]));
                    }
                }
                if r.system == crate::model::BuildSystem::Jenkins && !r.jobs.is_empty() {
                    lines.push(Line::from(widgets::muted(theme, "  stages")));
                }
                for j in &r.jobs {
                    lines.push(Line::from(vec![
                        Span::raw("  "),
                        state_span(theme, j.state),
                        widgets::text(theme, format!(" {}", clean(&j.name))),
                    ]));
                    for s in &j.steps {
                        lines.push(Line::from(vec![
                            Span::raw("      "),
                            state_span(theme, s.state),
                            widgets::muted(theme, format!(" {}. {}", s.number, clean(&s.name))),
                        ]));
                    }
                }
                if !r.log_tail.is_empty() {
                    lines.push(Line::from(widgets::muted(
                        theme,
                        format!("  console (last {} lines)", r.log_tail.len()),
                    )));
                    for l in &r.log_tail {
                        lines.push(Line::from(widgets::muted(
                            theme,
                            format!(
                                "    {}",
                                fit(&clean(l), area.width.saturating_sub(8) as usize)
                            ),
                        )));
                    }
                }
                if let Some((_, what, result)) = &self.action {
                    lines.push(Line::from(match result {
                        None => widgets::muted(
                            theme,
                            format!("{} {} sending…", ctx.spinner(), what.word()),
                        ),
                        Some(Ok(m)) => {
                            widgets::styled(theme, Role::Healthy, format!("✓ {}", clean(m)))
                        }
                        Some(Err(e)) => widgets::styled(
                            theme,
                            Role::Danger,
                            format!("✗ {} failed: {}", what.word(), clean(e)),
                        ),
                    }));
                }
                if let Some(what) = self.ask {
                    lines.push(Line::default());
                    lines.push(Line::from(widgets::styled(
                        theme,
                        Role::Warning,
                        format!("{} {} #{}? y/N", what.word(), clean(&r.pipeline), r.id),
                    )));
                } else if r.state.is_done() {
                    lines.push(Line::default());
                    lines.push(Line::from(widgets::muted(
                        theme,
                        if r.system == crate::model::BuildSystem::Jenkins {
                            "Esc back (Jenkins has no rerun: start the job again from the list)"
                        } else {
                            "r rerun · Esc back"
                        },
                    )));
                } else {
                    lines.push(Line::from(widgets::muted(
                        theme,
                        "c cancel · Esc back (the run continues)",
                    )));
                }
            }
        }
        frame.render_widget(
            Paragraph::new(lines).block(widgets::block(theme, "run")),
            area,
        );
    }

    fn form_key(form: &mut Form, key: &KeyEvent) {
        let Some(value) = form.values.get_mut(form.field) else {
            return;
        };
        match (key.code, value) {
            (KeyCode::Left, Value::Choice { options, index }) => {
                *index = (*index + options.len() - 1) % options.len().max(1)
            }
            (KeyCode::Right, Value::Choice { options, index }) => {
                *index = (*index + 1) % options.len().max(1)
            }
            (KeyCode::Char(' ') | KeyCode::Left | KeyCode::Right, Value::Toggle(b)) => *b = !*b,
            (_, Value::Text(s)) => {
                crate::tui::input::edit_line(s, key);
            }
            _ => {}
        }
    }
}

impl View for BuildsView {
    fn title(&self, _ctx: &Ctx) -> String {
        match &self.mode {
            Mode::Form(f) => format!("builds › {}", clean(&f.pipeline.name)),
            Mode::Run { .. } => "builds › run".into(),
            Mode::List => match &self.app {
                Some(id) => format!("builds for {}", clean(&id.name)),
                None => "builds".into(),
            },
        }
    }

    fn open(&mut self, _ctx: &Ctx, out: &mut Outbox) {
        if matches!(self.pipelines, Loadable::Idle) && matches!(self.mode, Mode::List) {
            self.load(out);
        }
    }

    fn typing(&self) -> bool {
        !matches!(self.mode, Mode::List)
    }

    fn render(&self, ctx: &Ctx, frame: &mut Frame, area: Rect) {
        match &self.mode {
            Mode::List => self.render_list(ctx, frame, area),
            Mode::Form(f) => self.render_form(ctx, frame, area, f),
            Mode::Run { run, error, .. } => {
                self.render_run(ctx, frame, area, run.as_ref(), error.as_ref())
            }
        }
    }

    fn on_key(&mut self, key: &KeyEvent, ctx: &Ctx, out: &mut Outbox) -> bool {
        match &mut self.mode {
            Mode::List => false,
            Mode::Form(form) => {
                match key.code {
                    KeyCode::Esc => self.mode = Mode::List,
                    KeyCode::Up | KeyCode::BackTab => form.field = form.field.saturating_sub(1),
                    KeyCode::Down | KeyCode::Tab => {
                        form.field = (form.field + 1).min(form.values.len().saturating_sub(1))
                    }
                    KeyCode::Enter => {
                        if ctx.read_only {
                            out.flash(Level::Warning, "read-only mode: builds are disabled");
                        } else if let Some(m) = form.missing() {
                            out.flash(Level::Warning, format!("input `{m}` is required"));
                        } else {
                            let inputs = form.inputs();
                            self.sent = inputs.clone().into_iter().collect();
                            let t = out.request(Request::Trigger {
                                pipeline: form.pipeline.clone(),
                                inputs,
                            });
                            self.mode = Mode::Run {
                                trigger: Some(t),
                                watch: None,
                                run: None,
                                error: None,
                            };
                        }
                    }
                    _ => Self::form_key(form, key),
                }
                true
            }
            Mode::Run {
                run, watch, error, ..
            } => {
                if let Some(what) = self.ask.take() {
                    let Some(r) = run.as_ref() else {
                        return true;
                    };
                    if key.code != KeyCode::Char('y') {
                        out.flash(Level::Info, format!("{} not sent", what.word()));
                        return true;
                    }
                    let (system, pipeline, id) = (r.system, r.pipeline.clone(), r.id);
                    let t = match what {
                        RunAction::Rerun => out.request(Request::Rerun {
                            system,
                            pipeline: pipeline.clone(),
                            id,
                        }),
                        RunAction::Cancel => out.request(Request::Cancel {
                            system,
                            pipeline: pipeline.clone(),
                            id,
                        }),
                    };
                    self.action = Some((t, what, None));
                    if what == RunAction::Rerun {
                        *watch = Some(out.request(Request::WatchRun {
                            system,
                            pipeline,
                            id,
                        }));
                        *error = None;
                    }
                    return true;
                }
                match key.code {
                    KeyCode::Esc => {
                        self.mode = Mode::List;
                        self.action = None;
                        self.load(out);
                    }
                    KeyCode::Char('r')
                        if run.as_ref().is_some_and(|r| {
                            r.state.is_done() && r.system == crate::model::BuildSystem::Jenkins
                        }) =>
                    {
                        out.flash(
                            Level::Info,
                            "Jenkins has no rerun: start the job again from the list (Esc, Enter on it)",
                        );
                    }
                    KeyCode::Char('r')
                        if run.as_ref().is_some_and(|r| r.state.is_done()) && !ctx.read_only =>
                    {
                        self.ask = Some(RunAction::Rerun);
                    }
                    KeyCode::Char('c')
                        if run.as_ref().is_some_and(|r| !r.state.is_done()) && !ctx.read_only =>
                    {
                        self.ask = Some(RunAction::Cancel);
                    }
                    _ => return false,
                }
                true
            }
        }
    }

    fn on_intent(&mut self, intent: Intent, ctx: &Ctx, out: &mut Outbox) {
        let n = self.n_rows();
        match intent {
            Intent::Up => self.selected = self.selected.saturating_sub(1),
            Intent::Down => self.selected = (self.selected + 1).min(n.saturating_sub(1)),
            Intent::Top => self.selected = 0,
            Intent::Bottom => self.selected = n.saturating_sub(1),
            Intent::Refresh => self.load(out),
            Intent::Open | Intent::Build => {
                let np = self.n_pipelines();
                if self.selected < np {
                    if ctx.read_only {
                        out.flash(Level::Warning, "read-only mode: builds are disabled");
                    } else if let Some(p) = self
                        .pipelines
                        .ready()
                        .and_then(|p| p.get(self.selected))
                        .cloned()
                    {
                        let cell = self.app.as_ref().and_then(|id| ctx.app(id));
                        self.mode = Mode::Form(match cell {
                            Some(e) => Form::for_app(p, &e.service, &e.environment.name),
                            None => Form::new(p),
                        });
                    }
                } else if let Some(r) = self
                    .runs
                    .ready()
                    .and_then(|r| r.get(self.selected - np))
                    .cloned()
                {
                    let watch = Some(out.request(Request::WatchRun {
                        system: r.system,
                        pipeline: r.pipeline.clone(),
                        id: r.id,
                    }));
                    self.sent = Vec::new();
                    self.mode = Mode::Run {
                        trigger: None,
                        watch,
                        run: Some(r),
                        error: None,
                    };
                }
            }
            Intent::Back => out.pop(),
            _ => {}
        }
    }

    fn on_response(&mut self, resp: &Response, _ctx: &Ctx, out: &mut Outbox) -> bool {
        let t = resp.ticket;
        if let Some((at, what, result)) = &mut self.action
            && *at == t
        {
            let r = match &resp.result {
                Ok(Payload::Accepted(m)) => Ok(m.clone()),
                Ok(_) => Ok(format!("{} sent", what.word())),
                Err(e) => Err(e.clone()),
            };
            match &r {
                Ok(m) => out.flash(Level::Info, clean(m).into_owned()),
                Err(e) => out.flash(
                    Level::Error,
                    format!("{} failed: {}", what.word(), clean(e)),
                ),
            }
            *result = Some(r);
            return true;
        }
        if self.pipelines.ticket() == Some(t) {
            let v = resp.result.clone().and_then(|p| match p {
                Payload::Pipelines(v) => Ok(v),
                _ => Err("unexpected answer".into()),
            });
            return self.pipelines.accept(t, v);
        }
        if self.runs.ticket() == Some(t) {
            let v = resp.result.clone().and_then(|p| match p {
                Payload::Runs(v) => Ok(v),
                _ => Err("unexpected answer".into()),
            });
            return self.runs.accept(t, v);
        }
        if let Some(p) = &mut self.produced
            && p.ticket == t
        {
            p.result = Some(match &resp.result {
                Ok(Payload::Produced { produced, next }) => Ok((produced.clone(), next.clone())),
                Ok(_) => Err("unexpected answer".into()),
                Err(e) => Err(e.clone()),
            });
            return true;
        }
        // A GitHub run reports no image: once it succeeded, ask for its bump commit.
        let succeeded = match (&self.mode, &resp.result) {
            (Mode::Run { watch, trigger, .. }, Ok(Payload::Run(r)))
                if (*watch == Some(t) || *trigger == Some(t))
                    && r.system == BuildSystem::GithubActions
                    && r.state == BuildState::Succeeded =>
            {
                Some(r.id)
            }
            _ => None,
        };
        if let Some(id) = succeeded
            && self.produced.as_ref().is_none_or(|p| p.id != id)
        {
            self.produced = Some(RunImage {
                id,
                ticket: out.request(Request::RunProduced { id }),
                result: None,
            });
        }
        if let Mode::Run {
            trigger,
            watch,
            run,
            error,
        } = &mut self.mode
        {
            if *trigger == Some(t) {
                *trigger = None;
                match &resp.result {
                    Ok(Payload::Run(r)) => {
                        *watch = Some(out.request(Request::WatchRun {
                            system: r.system,
                            pipeline: r.pipeline.clone(),
                            id: r.id,
                        }));
                        *run = Some(r.clone());
                    }
                    Ok(_) => *error = Some("unexpected answer".into()),
                    Err(e) => *error = Some(format!("trigger failed: {e}")),
                }
                return true;
            }
            if *watch == Some(t) {
                match &resp.result {
                    Ok(Payload::Run(r)) => *run = Some(r.clone()),
                    Ok(_) => {}
                    Err(e) => *error = Some(e.clone()),
                }
                return true;
            }
        }
        false
    }

    fn tickets(&self) -> Vec<Ticket> {
        let mut v: Vec<Ticket> = [self.pipelines.ticket(), self.runs.ticket()]
            .into_iter()
            .flatten()
            .collect();
        if let Mode::Run { trigger, watch, .. } = &self.mode {
            v.extend(trigger.iter().chain(watch.iter()));
        }
        if let Some(p) = &self.produced
            && p.result.is_none()
        {
            v.push(p.ticket);
        }
        if let Some((t, _, None)) = &self.action {
            v.push(*t);
        }
        v
    }

    fn busy(&self, _ctx: &Ctx) -> bool {
        match &self.mode {
            Mode::Run { run, error, .. } => {
                error.is_none() && run.as_ref().is_none_or(|r| !r.state.is_done())
            }
            _ => self.pipelines.is_loading() || self.runs.is_loading(),
        }
    }

    fn keys(&self, ctx: &Ctx) -> Vec<(Intent, &'static str)> {
        match self.mode {
            Mode::List => {
                let mut v = vec![(Intent::Down, "select")];
                if !ctx.read_only {
                    v.push((Intent::Open, "trigger/follow"));
                }
                v.extend([(Intent::Refresh, "reload"), (Intent::Back, "back")]);
                v
            }
            _ => vec![(Intent::Back, "back")],
        }
    }
}
