//! Approve: the screen between an operator and a gated environment. It shows what changes
//! (one line per resource; the full diff one key away), why (Git commits between the live
//! and the target revision), whether it was proven (the CI run of the target commit, the
//! same image healthy in the environment before), and what stands in the way (read-only,
//! an operation running, a sync window, missing permission: asked of `ops::policy`, the
//! guard the headless `sync`/`rollback` refuse with). The operator confirms by typing the
//! application's name, may give a reason, and then follows the operation and the rollout
//! to the end on the same screen. Nothing is sent while anything blocks. The diff shown is
//! the ops engine's, whose digest the approval record carries.

use super::rollout::{WorkloadWatch, workload_lines};
use crate::model::{AppId, BuildRun, BuildState};
use crate::ops::diff::{AppDiff, ResourceDiff};
use crate::ops::estate::{AppEntry, compared_revision};
use crate::ops::plan;
use crate::ops::policy::{self, GuardInput, Mutation, Refusal};
use crate::sources::SyncWindowsState;
use crate::tui::keymap::Intent;
use crate::tui::request::{Approval, Commit, Payload, Request, Response, Ticket};
use crate::tui::theme::Role;
use crate::tui::view::{Ctx, Level, Loadable, Outbox, View};
use crate::tui::widgets::{self, clean, fit};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui_textarea::TextArea;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Sync,
    Rollback(i64),
    /// Turn automated sync on (true) or off: guarded like a sync when turning it on.
    AutoSync(bool),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Review,
    /// Sent; waiting for the source to accept. Holds the operation start we saw before,
    /// so the old operation is not mistaken for the new one.
    Sent {
        ticket: Ticket,
        previous_start: Option<String>,
    },
    /// Accepted; the one follower (`ops::actions::follow`, run by the provider) answers
    /// the same ticket again with how the operation ended.
    Following {
        ticket: Ticket,
        previous_start: Option<String>,
    },
    Done,
    Failed(String),
    /// Four-eyes: nothing was sent; the request is written and waits for a second approver.
    Requested(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Name,
    Reason,
}

pub struct ApproveView {
    id: AppId,
    change: Change,
    diffs: Loadable<AppDiff>,
    commits: Loadable<Vec<Commit>>,
    ci: Loadable<Vec<BuildRun>>,
    /// Images of each deployment of the same service in the environment before.
    before_history: Loadable<Vec<Vec<String>>>,
    permission: Loadable<bool>,
    windows: Loadable<SyncWindowsState>,
    name: TextArea<'static>,
    reason: TextArea<'static>,
    field: Field,
    phase: Phase,
    /// The operation start seen before the request was sent, once sent.
    sent_after: Option<Option<String>>,
    /// What keeps the form open (a wrong name, a missing reason), shown in the form.
    form_error: Option<String>,
    watch: WorkloadWatch,
    /// Opened while the app's history (or the environment before's) was not read yet:
    /// the evidence is asked for once it is, not computed from what is missing.
    deferred: bool,
}

/// The app of the same service in the environment before `e`'s, if the estate has one.
fn entry_before<'a>(ctx: &'a Ctx, e: &AppEntry) -> Option<&'a AppEntry> {
    let p = ctx.estate.previous_environment(&e.environment)?;
    ctx.estate.cell(&e.service, &p.name).next()
}

/// A refusal in the console's words: the guard's messages tell a headless user which flag
/// to add; here the form is the way to approve, so no flag is named.
fn console_words(r: &Refusal) -> String {
    let s = match r {
        Refusal::ReadOnly { action, app } => {
            format!("read-only mode: {action} {app} refused")
        }
        Refusal::NeedsApproval { app, environment }
        | Refusal::NeedsConfirmation { app, environment }
        | Refusal::PruneNeedsConfirmation { app, environment } => {
            format!("{app} ({environment}) needs approval: type its name below to approve")
        }
        Refusal::ApprovalNamesOtherApp { named, app } => {
            format!("“{named}” is not the name: type {app} exactly to approve")
        }
        Refusal::ReasonRequired { environment, .. } => {
            format!("a reason is required in {environment}: say why in the reason field")
        }
        Refusal::OperationRunning { app } => format!(
            "{app}: another operation is already in progress; wait for it to end or terminate it in Argo CD"
        ),
        Refusal::AutoSyncOn { app } => format!(
            "auto-sync is on for {app}: rolling back turns it off, and it stays off until you turn it on again"
        ),
        other => other.to_string(),
    };
    clean(&s).into_owned()
}

fn input(placeholder: &str) -> TextArea<'static> {
    let mut t = TextArea::default();
    t.set_placeholder_text(placeholder);
    t.set_cursor_line_style(ratatui::style::Style::default());
    t
}

/// Words of `text` in lines of at most `width` characters (a longer word stands alone).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        let fits = line.chars().count() + 1 + word.chars().count() <= width;
        if !line.is_empty() && !fits {
            out.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push(line);
    }
    out
}

impl ApproveView {
    pub fn sync(id: AppId) -> Self {
        Self::new(id, Change::Sync)
    }

    pub fn rollback(id: AppId, history_id: i64) -> Self {
        Self::new(id, Change::Rollback(history_id))
    }

    /// Approve turning auto-sync on (or off): what auto-sync would deploy is reviewed like
    /// a sync.
    pub fn auto_sync(id: AppId, enabled: bool) -> Self {
        Self::new(id, Change::AutoSync(enabled))
    }

    fn new(id: AppId, change: Change) -> Self {
        // Whether it is required is the environment's policy, shown beside the field.
        let reason = "why (goes to the audit log)";
        ApproveView {
            id,
            change,
            diffs: Loadable::Idle,
            commits: Loadable::Idle,
            ci: Loadable::Idle,
            before_history: Loadable::Idle,
            deferred: false,
            permission: Loadable::Idle,
            windows: Loadable::Idle,
            name: input("type the application's name"),
            reason: input(reason),
            field: Field::Name,
            phase: Phase::Review,
            sent_after: None,
            form_error: None,
            watch: WorkloadWatch::default(),
        }
    }

    /// Fill the review with answers directly (render tests).
    pub fn with_review(
        mut self,
        diffs: AppDiff,
        commits: Vec<Commit>,
        ci: Vec<BuildRun>,
        allowed: bool,
        windows: SyncWindowsState,
    ) -> Self {
        self.diffs = Loadable::Ready(diffs);
        self.commits = Loadable::Ready(commits);
        self.ci = Loadable::Ready(ci);
        self.permission = Loadable::Ready(allowed);
        self.windows = Loadable::Ready(windows);
        self
    }

    pub fn type_name(&mut self, s: &str) {
        self.name.insert_str(s);
    }

    fn revisions(&self, ctx: &Ctx) -> (Option<String>, Option<String>) {
        let Some(e) = ctx.app(&self.id) else {
            return (None, None);
        };
        let live = e.board.deployed.clone().map(|r| r.0);
        let target = match self.change {
            Change::Sync | Change::AutoSync(_) => compared_revision(&e.app()).map(|r| r.0),
            Change::Rollback(h) => e
                .app()
                .status
                .history
                .iter()
                .find(|d| d.id == h)
                .and_then(|d| d.revision.clone().or_else(|| d.revisions.first().cloned())),
        };
        (live, target)
    }

    /// Whether the app and the one in the environment before are complete (their history
    /// read; see `Board::complete`): the evidence needs both.
    fn details_in(&self, ctx: &Ctx) -> bool {
        let Some(e) = ctx.app(&self.id) else {
            return true;
        };
        e.board.complete && entry_before(ctx, e).is_none_or(|b| b.board.complete)
    }

    fn mutation(&self) -> Mutation {
        match self.change {
            Change::Sync | Change::AutoSync(true) => Mutation::Sync,
            Change::Rollback(_) => Mutation::Rollback,
            Change::AutoSync(false) => Mutation::DisableAutoSync,
        }
    }

    /// Ask the guard the headless actions use: `Ok` with the obstacles apart from the
    /// approval when `approval` is None, or the full decision on `approval`. The console
    /// turns auto-sync off before a rollback itself (and says so), so that is asked too.
    fn guard(&self, ctx: &Ctx, approval: Option<&Approval>) -> Result<Vec<Refusal>, String> {
        let Some(e) = ctx.app(&self.id) else {
            return Err("the application is gone".into());
        };
        // The evidence (what runs, the history) is not known yet: nothing to approve on.
        if !e.board.complete {
            return Err(format!("wait: {}", crate::tui::widgets::DETAILS_PENDING));
        }
        let policy = ctx.policies.for_env(&e.environment);
        let input = GuardInput {
            mutation: self.mutation(),
            app: &e.app(),
            environment: &e.environment.name,
            policy: &policy,
            read_only: ctx.read_only,
            permitted: self.permission.ready().copied(),
            windows: self.windows.ready(),
            approval,
            disable_auto_sync: matches!(self.change, Change::Rollback(_)) && e.app().auto_sync(),
            prune: false,
        };
        Ok(match approval {
            None => policy::obstacles(&input),
            Some(_) => policy::check(&input).err().into_iter().collect(),
        })
    }

    /// What stands in the way now, in the guard's words.
    fn blockers(&self, ctx: &Ctx) -> Vec<String> {
        match self.guard(ctx, None) {
            // Refusals name the app and the server's windows: external text.
            Ok(refusals) => refusals.iter().map(console_words).collect(),
            Err(gone) => vec![gone],
        }
    }

    /// Whether the environment's policy needs a reason with the approval.
    fn reason_required(&self, ctx: &Ctx) -> bool {
        ctx.app(&self.id).is_some_and(|e| {
            let p = ctx.policies.for_env(&e.environment);
            p.approval == crate::model::ApprovalPolicy::Required || p.four_eyes()
        })
    }

    /// A rollback of an app that auto-syncs turns auto-sync off first (it stays off): a
    /// step the operator confirms with the approval.
    fn turns_auto_sync_off(&self, ctx: &Ctx) -> bool {
        matches!(self.change, Change::Rollback(_))
            && ctx.app(&self.id).is_some_and(|e| e.board.auto_sync)
    }

    /// The four-eyes request waiting on the app (from the estate's copy of it), if the
    /// environment needs two approvers and the request is for this change.
    fn four_eyes_request(&self, ctx: &Ctx) -> Option<crate::ops::foureyes::ApprovalRequest> {
        let e = ctx.app(&self.id)?;
        if !ctx.policies.for_env(&e.environment).four_eyes() {
            return None;
        }
        let r = crate::ops::foureyes::request_of(&e.app())?.ok()?;
        let same = match (self.change, r.action) {
            (Change::Sync, crate::ops::foureyes::RequestAction::Sync) => true,
            (Change::Rollback(h), crate::ops::foureyes::RequestAction::Rollback) => {
                r.history_id == Some(h)
            }
            _ => false,
        };
        same.then_some(r)
    }

    /// Lines about the four-eyes request: who requested, when, why, until when; or what a
    /// confirmation here does in a four-eyes environment.
    fn four_eyes_lines(&self, ctx: &Ctx) -> Vec<Line<'static>> {
        let theme = ctx.theme;
        let Some(e) = ctx.app(&self.id) else {
            return Vec::new();
        };
        let policy = ctx.policies.for_env(&e.environment);
        if !policy.four_eyes() {
            return Vec::new();
        }
        match self.four_eyes_request(ctx) {
            Some(r) => {
                let expired = chrono::Utc::now() >= r.expires;
                vec![
                    Line::from(widgets::styled(
                        theme,
                        Role::Warning,
                        format!(
                            "four-eyes: {} · requested by {} at {} · request {}",
                            crate::ops::foureyes::progress(&r),
                            clean(&r.requested_by),
                            r.at.format("%Y-%m-%d %H:%M UTC"),
                            clean(&r.id)
                        ),
                    )),
                    Line::from(widgets::muted(
                        theme,
                        format!(
                            "why: {} · {} {}",
                            clean(&r.reason),
                            if expired { "expired" } else { "expires" },
                            r.expires.format("%Y-%m-%d %H:%M UTC")
                        ),
                    )),
                ]
            }
            None => vec![Line::from(widgets::styled(
                theme,
                Role::Warning,
                format!(
                    "four-eyes: {} approvers; confirming writes a request, a different operator approves it",
                    policy.approvers
                ),
            ))],
        }
    }

    fn action_word(&self) -> &'static str {
        match self.change {
            Change::Sync => "sync",
            Change::Rollback(_) => "roll back",
            Change::AutoSync(true) => "turn auto-sync on for",
            Change::AutoSync(false) => "turn auto-sync off for",
        }
    }

    fn confirm(&mut self, ctx: &Ctx, out: &mut Outbox) {
        let typed = self.name.lines().join("");
        if typed.trim() != self.id.name {
            // What was typed stays in the field; say what is expected.
            self.form_error = Some(if typed.trim().is_empty() {
                format!("type the application's name, {}, to approve", self.id.name)
            } else {
                format!(
                    "“{}” is not the name: type {} exactly to approve",
                    clean(typed.trim()),
                    self.id.name
                )
            });
            self.field = Field::Name;
            return;
        }
        if self.reason_required(ctx) && self.reason.lines().join(" ").trim().is_empty() {
            let env = ctx
                .app(&self.id)
                .map(|e| e.environment.name.clone())
                .unwrap_or_default();
            self.form_error = Some(format!(
                "a reason is required in {}: say why in the reason field",
                clean(&env)
            ));
            self.field = Field::Reason;
            return;
        }
        self.form_error = None;
        let blockers = self.blockers(ctx);
        if let Some(b) = blockers.first() {
            self.form_error = Some(format!("cannot approve: {b}"));
            return;
        }
        let reason = self.reason.lines().join(" ");
        let approval = Approval {
            named_app: typed.trim().to_string(),
            reason: Some(reason.trim().to_string()).filter(|r| !r.is_empty()),
            operator: ctx.operator.to_string(),
        };
        // The whole decision, approval included (a reason the environment requires...),
        // before anything is sent; ops decides again when it acts.
        match self.guard(ctx, Some(&approval)) {
            Ok(refusals) => {
                if let Some(r) = refusals.first() {
                    // Inline, the form stays open with what was typed.
                    self.form_error = Some(format!("cannot approve: {}", console_words(r)));
                    return;
                }
            }
            Err(gone) => {
                out.flash(Level::Error, format!("cannot approve: {gone}"));
                return;
            }
        }
        let pending = self.four_eyes_request(ctx);
        let req = match (pending, self.change) {
            (Some(r), Change::Sync | Change::Rollback(_)) => Request::Approve {
                app: self.id.clone(),
                request: r.id,
                approval: Some(approval),
            },
            (_, Change::Sync) => Request::Sync {
                app: self.id.clone(),
                approval: Some(approval),
            },
            (_, Change::Rollback(id)) => Request::Rollback {
                app: self.id.clone(),
                id,
                approval: Some(approval),
                disable_auto_sync: ctx.app(&self.id).is_some_and(|e| e.board.auto_sync),
            },
            (_, Change::AutoSync(enabled)) => Request::AutoSync {
                app: self.id.clone(),
                enabled,
                approval: Some(approval),
            },
        };
        let previous_start = ctx
            .app(&self.id)
            .and_then(|e| e.app().status.operation_state)
            .and_then(|o| o.started_at);
        let ticket = out.request(req);
        self.phase = Phase::Sent {
            ticket,
            previous_start,
        };
    }

    /// The operation start seen before sending, while the screen follows or after it
    /// ended: the operation line shows only an operation started after it (never an
    /// earlier operation's `Succeeded` beside this one's failure).
    fn previous_start(&self) -> Option<&Option<String>> {
        match &self.phase {
            Phase::Sent { previous_start, .. } | Phase::Following { previous_start, .. } => {
                Some(previous_start)
            }
            _ => self.sent_after.as_ref(),
        }
    }

    fn review_lines(
        &self,
        ctx: &Ctx,
        width: usize,
        compact: bool,
    ) -> (Vec<Line<'static>>, Vec<Line<'static>>) {
        let theme = ctx.theme;
        let (live, target) = self.revisions(ctx);
        let short = |r: &Option<String>| {
            r.as_deref()
                .map(|s| {
                    crate::model::Revision(clean(s).into_owned())
                        .short()
                        .to_string()
                })
                .unwrap_or_else(|| "-".into())
        };
        let mut left = self.four_eyes_lines(ctx);
        let heading = |t: &str| Line::from(Span::styled(t.to_string(), theme.style(Role::Accent)));
        let digest = self
            .diffs
            .ready()
            .map(|d| format!("  diff {}", &d.digest()[..12]))
            .unwrap_or_default();
        left.push(heading(&format!(
            "What changes  ({} → {}){digest}",
            short(&live),
            short(&target)
        )));
        let loading = |what: &str| {
            Line::from(widgets::muted(
                theme,
                format!("  {} {what}…", ctx.spinner()),
            ))
        };
        let failed = |what: &str, e: &str| {
            Line::from(widgets::styled(
                theme,
                Role::Warning,
                format!("  {what}: {}", clean(e)),
            ))
        };
        let max_diff = if compact { 4 } else { 12 };
        match &self.diffs {
            Loadable::Ready(d) => {
                let changed: Vec<&ResourceDiff> = d.changed().collect();
                if changed.is_empty() {
                    left.push(Line::from(widgets::muted(theme, "  no resource differs")));
                }
                for l in super::diff::summary_lines(theme, &changed, None, width.saturating_sub(2))
                    .into_iter()
                    .take(max_diff)
                {
                    let mut spans = vec![Span::raw("  ")];
                    spans.extend(l.spans);
                    left.push(Line::from(spans));
                }
                if changed.len() > max_diff {
                    left.push(Line::from(widgets::muted(
                        theme,
                        format!("  … {} more", changed.len() - max_diff),
                    )));
                }
            }
            Loadable::Failed(e) => left.push(failed("diff", e)),
            _ => left.push(loading("computing diff")),
        }
        left.push(heading("Why: commits"));
        let max_commits = if compact { 3 } else { 10 };
        match &self.commits {
            Loadable::Ready(c) if c.is_empty() => left.push(Line::from(widgets::muted(
                theme,
                "  no commits between these revisions",
            ))),
            Loadable::Ready(c) => {
                for c in c.iter().take(max_commits) {
                    left.push(Line::from(vec![
                        widgets::styled(
                            theme,
                            Role::Accent,
                            format!("  {} ", fit(&clean(&c.sha), 7)),
                        ),
                        widgets::muted(theme, format!("{} ", fit(&clean(&c.author), 16))),
                        widgets::text(theme, fit(&clean(&c.subject), width.saturating_sub(28))),
                    ]));
                }
            }
            Loadable::Failed(e) => left.push(failed("commits", e)),
            _ => left.push(loading("reading Git")),
        }
        let mut right = Vec::new();
        right.push(heading("Proven"));
        // The evidence is `ops::plan`'s, as `shipdeck plan` prints it.
        match (&self.ci, self.diffs.ready(), self.commits.ready()) {
            (Loadable::Ready(_) | Loadable::Failed(_), Some(d), Some(c)) => {
                let runs = match &self.ci {
                    Loadable::Ready(r) => Ok(r.as_slice()),
                    Loadable::Failed(e) => Err(e.as_str()),
                    _ => Ok(&[][..]),
                };
                let e = plan::link_build(&plan::target_images(d), c, runs);
                let (glyph, role) = match e.run.as_ref().map(|r| r.state) {
                    Some(BuildState::Succeeded) => ("✓", Role::Healthy),
                    Some(BuildState::Failed | BuildState::Cancelled) => ("✗", Role::Degraded),
                    Some(_) => ("◔", Role::Progressing),
                    None => ("?", Role::Warning),
                };
                right.push(Line::from(widgets::styled(
                    theme,
                    role,
                    fit(
                        &format!("  {glyph} {}", clean(&e.words())),
                        width.saturating_sub(2),
                    ),
                )));
            }
            (Loadable::Ready(_) | Loadable::Failed(_), _, Some(_))
                if self.diffs.ready().is_none() =>
            {
                right.push(loading("computing diff"))
            }
            (Loadable::Ready(_) | Loadable::Failed(_), _, _)
                if matches!(self.commits, Loadable::Failed(_)) =>
            {
                right.push(failed("commits", "no commits to link the build with"))
            }
            _ => right.push(loading("looking for the CI run")),
        }
        right.extend(self.proven_before(ctx, if compact { width } else { width * 2 / 3 }));
        if let Some(pr) = self.commits.ready().and_then(|c| plan::promotion(c)) {
            right.push(Line::from(widgets::styled(
                theme,
                Role::Accent,
                fit(
                    &format!("  ↑ {}", clean(&pr.words())),
                    width.saturating_sub(2),
                ),
            )));
        }
        right.push(heading("In the way"));
        let blockers = self.blockers(ctx);
        if blockers.is_empty() {
            right.push(Line::from(widgets::styled(
                theme,
                Role::Healthy,
                "  ✓ nothing: no window, no running operation, permitted",
            )));
        }
        if self.turns_auto_sync_off(ctx) {
            let right_w = if compact { width } else { width * 2 / 3 };
            let step = "auto-sync is on: rolling back turns it off, and it stays off until you turn it on again";
            for (i, l) in wrap(step, right_w.saturating_sub(5).max(20))
                .into_iter()
                .enumerate()
            {
                let mark = if i == 0 { "!" } else { " " };
                right.push(Line::from(widgets::styled(
                    theme,
                    Role::Warning,
                    format!("  {mark} {l}"),
                )));
            }
        }
        // The guard's whole message, what to do included, wrapped to the column.
        let right_w = if compact { width } else { width * 2 / 3 };
        for b in &blockers {
            for (i, l) in wrap(b, right_w.saturating_sub(5).max(20))
                .into_iter()
                .enumerate()
            {
                let mark = if i == 0 { "✗" } else { " " };
                right.push(Line::from(widgets::styled(
                    theme,
                    Role::Danger,
                    format!("  {mark} {l}"),
                )));
            }
        }
        match &self.permission {
            Loadable::Failed(e) => right.push(failed("permission check", e)),
            Loadable::Loading(_) | Loadable::Idle => right.push(loading("checking permission")),
            _ => {}
        }
        if let Loadable::Failed(e) = &self.windows {
            right.push(failed("sync windows", e));
        }
        (left, right)
    }

    /// The environment before this one, compared by image (`ops::plan::before`).
    fn proven_before(&self, ctx: &Ctx, width: usize) -> Vec<Line<'static>> {
        let theme = ctx.theme;
        let Some(e) = ctx.app(&self.id) else {
            return Vec::new();
        };
        let Some(d) = self.diffs.ready() else {
            return vec![Line::from(widgets::muted(
                theme,
                "  … comparing with the environment before",
            ))];
        };
        let prev_env = ctx.estate.previous_environment(&e.environment);
        let prev_entry = entry_before(ctx, e);
        if prev_entry.is_some_and(|x| !x.board.complete) {
            return vec![Line::from(widgets::muted(
                theme,
                format!("  … the environment before: {}", widgets::DETAILS_PENDING),
            ))];
        }
        let prev = prev_entry.map(|x| x.app());
        let b = plan::before(
            &plan::target_images(d),
            prev_env.map(|p| plan::PreviousEnv {
                environment: &p.name,
                app: prev.as_ref(),
                history_images: self.before_history.ready().cloned(),
            }),
        );
        let role = match &b {
            plan::Before::Runs { .. } if b.proven() => Role::Healthy,
            plan::Before::FirstEnvironment | plan::Before::NoNewImage { .. } => Role::Muted,
            _ => Role::Warning,
        };
        let glyph = if b.proven() {
            "✓"
        } else if role == Role::Muted {
            " "
        } else {
            "!"
        };
        wrap(&clean(&b.words()), width.saturating_sub(6).max(20))
            .into_iter()
            .enumerate()
            .map(|(i, l)| {
                let mark = if i == 0 { glyph } else { " " };
                Line::from(widgets::styled(theme, role, format!("  {mark} {l}")))
            })
            .collect()
    }

    fn follow_lines(&self, ctx: &Ctx, width: usize) -> Vec<Line<'static>> {
        let theme = ctx.theme;
        let mut lines = Vec::new();
        let status = match &self.phase {
            Phase::Sent { .. } => Line::from(widgets::styled(
                theme,
                Role::Progressing,
                format!("{} sending {}…", ctx.spinner(), self.action_word()),
            )),
            Phase::Following { .. } => Line::from(widgets::styled(
                theme,
                Role::Progressing,
                format!(
                    "{} approved; following the operation and the rollout",
                    ctx.spinner()
                ),
            )),
            Phase::Done => Line::from(widgets::styled(
                theme,
                Role::Healthy,
                match self.change {
                    Change::AutoSync(true) => "✓ done: auto-sync is on",
                    Change::AutoSync(false) => "✓ done: auto-sync is off",
                    _ => "✓ done: operation Succeeded, Healthy, rollout complete",
                },
            )),
            Phase::Failed(m) => Line::from(widgets::styled(
                theme,
                Role::Degraded,
                format!("✗ failed: {}", clean(m)),
            )),
            Phase::Requested(m) => Line::from(widgets::styled(
                theme,
                Role::Warning,
                format!("⚑ requested: {}", clean(m)),
            )),
            Phase::Review => Line::default(),
        };
        lines.push(status);
        if let Some(e) = ctx.app(&self.id) {
            let mut spans = vec![
                widgets::sync_span(theme, e.board.sync, false),
                Span::raw("  "),
                widgets::health_span(theme, e.board.health, false),
                Span::raw("  "),
            ];
            let ours = |op: &crate::model::OperationState| {
                self.previous_start()
                    .is_none_or(|before| op.started_at != *before)
            };
            if let Some(op) = e
                .app()
                .status
                .operation_state
                .as_ref()
                .filter(|op| ours(op))
            {
                spans.push(widgets::muted(
                    theme,
                    format!(
                        "operation {} {}",
                        op.phase,
                        fit(
                            &clean(op.message.as_deref().unwrap_or("")),
                            width.saturating_sub(40)
                        )
                    ),
                ));
            }
            lines.push(Line::from(spans));
        }
        if let Some(err) = &self.watch.error {
            lines.push(Line::from(widgets::styled(
                theme,
                Role::Warning,
                format!("workloads: {}", clean(err)),
            )));
        }
        if let Some(w) = &self.watch.workloads {
            lines.push(Line::default());
            lines.extend(workload_lines(theme, w, None, width));
        }
        lines
    }
}

impl View for ApproveView {
    fn title(&self, _ctx: &Ctx) -> String {
        match self.change {
            Change::Sync => format!("approve sync {}", clean(&self.id.name)),
            Change::Rollback(h) => format!("approve rollback {} → #{h}", clean(&self.id.name)),
            Change::AutoSync(on) => format!(
                "approve auto-sync {} {}",
                if on { "on" } else { "off" },
                clean(&self.id.name)
            ),
        }
    }

    fn open(&mut self, ctx: &Ctx, out: &mut Outbox) {
        if !matches!(self.diffs, Loadable::Idle) {
            return;
        }
        self.deferred = !self.details_in(ctx);
        if self.deferred {
            return;
        }
        let app = self.id.clone();
        self.diffs = Loadable::Loading(out.request(match self.change {
            Change::Sync | Change::AutoSync(_) => Request::Diff { app: app.clone() },
            Change::Rollback(id) => Request::DiffToHistory {
                app: app.clone(),
                id,
            },
        }));
        let (live, target) = self.revisions(ctx);
        // A sync brings in live..target; a rollback undoes target..live.
        let range = match (self.change, &live, &target) {
            (Change::Sync, Some(l), Some(t)) => Some((l.clone(), t.clone())),
            (Change::Rollback(_), Some(l), Some(t)) => Some((t.clone(), l.clone())),
            _ => None,
        };
        self.commits = match range {
            Some((from, to)) => Loadable::Loading(out.request(Request::Commits {
                app: app.clone(),
                from,
                to,
            })),
            _ => Loadable::Failed("no deployed revision to compare with".into()),
        };
        // Every run CI knows; `ops::plan` links the one that built the target image.
        self.ci = Loadable::Loading(out.request(Request::Runs));
        let before = ctx
            .app(&self.id)
            .and_then(|e| entry_before(ctx, e))
            .map(|x| x.id.clone());
        if let Some(b) = before {
            self.before_history = Loadable::Loading(out.request(Request::HistoryImages { app: b }));
        }
        self.permission = Loadable::Loading(out.request(Request::Permission {
            app: app.clone(),
            action: self.mutation().rbac_action().into(),
        }));
        self.windows = Loadable::Loading(out.request(Request::SyncWindows { app }));
    }

    fn typing(&self) -> bool {
        self.phase == Phase::Review
    }

    fn render(&self, ctx: &Ctx, frame: &mut Frame, area: Rect) {
        let theme = ctx.theme;
        let env = ctx
            .app(&self.id)
            .map(|e| e.environment.name.clone())
            .unwrap_or_default();
        let title = format!(
            "{} {} in {}",
            self.action_word(),
            clean(&self.id.name),
            clean(&env)
        );
        let block = widgets::block(theme, title);
        let inner = block.inner(area);
        frame.render_widget(block, area);
        if self.phase != Phase::Review {
            let lines = self.follow_lines(ctx, inner.width as usize);
            let h = inner.height as usize;
            let skip = lines.len().saturating_sub(h);
            frame.render_widget(
                Paragraph::new(lines.into_iter().skip(skip).collect::<Vec<_>>()),
                inner,
            );
            return;
        }
        let compact = inner.width < 120;
        let [body, form] =
            Layout::vertical([Constraint::Min(4), Constraint::Length(3)]).areas(inner);
        if compact {
            let (mut left, right) = self.review_lines(ctx, body.width as usize, true);
            left.extend(right);
            frame.render_widget(Paragraph::new(left), body);
        } else {
            let [l, r] =
                Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)])
                    .areas(body);
            let (left, right) = self.review_lines(ctx, l.width as usize, false);
            frame.render_widget(Paragraph::new(left), l);
            frame.render_widget(Paragraph::new(right), r);
        }
        let [prompt, name_row, reason_row] =
            Layout::vertical([Constraint::Length(1); 3]).areas(form);
        let step = if self.turns_auto_sync_off(ctx) {
            " and turn auto-sync off"
        } else {
            ""
        };
        let prompt_line = match &self.form_error {
            Some(m) => Line::from(vec![
                widgets::styled(theme, Role::Danger, format!("✗ {m}")),
                widgets::muted(theme, " · Esc cancel"),
            ]),
            None => Line::from(vec![
                widgets::styled(
                    theme,
                    Role::Warning,
                    format!("Type {} to approve{step}", clean(&self.id.name)),
                ),
                widgets::muted(
                    theme,
                    " · Tab reason · Enter confirm · Ctrl-d full diff · Esc cancel",
                ),
            ]),
        };
        frame.render_widget(Paragraph::new(prompt_line), prompt);
        let reason_label = if self.reason_required(ctx) {
            "reason (required) "
        } else {
            "reason (optional) "
        };
        for (row, label, ta, f) in [
            (name_row, "name ", &self.name, Field::Name),
            (reason_row, reason_label, &self.reason, Field::Reason),
        ] {
            let [lab, field] =
                Layout::horizontal([Constraint::Length(21), Constraint::Min(5)]).areas(row);
            let role = if self.field == f {
                Role::Accent
            } else {
                Role::Muted
            };
            frame.render_widget(
                Paragraph::new(widgets::styled(
                    theme,
                    role,
                    format!("{} ", if self.field == f { "▸" } else { " " }) + label,
                )),
                lab,
            );
            crate::tui::input::draw_area(frame, field, ta, theme, self.field == f);
        }
    }

    fn on_key(&mut self, key: &KeyEvent, ctx: &Ctx, out: &mut Outbox) -> bool {
        if self.phase != Phase::Review {
            return false;
        }
        match key.code {
            KeyCode::Esc => out.pop(),
            KeyCode::Tab | KeyCode::BackTab => {
                self.field = if self.field == Field::Name {
                    Field::Reason
                } else {
                    Field::Name
                };
            }
            KeyCode::Enter => self.confirm(ctx, out),
            KeyCode::Char('d') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                match self.diffs.ready() {
                    Some(d) => out.push(Box::new(super::diff::DiffView::ready(
                        self.id.clone(),
                        d.clone(),
                    ))),
                    None => out.flash(Level::Info, "the diff is not ready yet"),
                }
            }
            KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => out.pop(),
            _ => {
                let ta = if self.field == Field::Name {
                    &mut self.name
                } else {
                    &mut self.reason
                };
                crate::tui::input::edit_area(ta, key);
            }
        }
        true
    }

    fn on_intent(&mut self, intent: Intent, ctx: &Ctx, out: &mut Outbox) {
        match intent {
            Intent::Back => out.pop(),
            Intent::Diff => out.push(Box::new(super::diff::DiffView::new(self.id.clone()))),
            Intent::Rollout => {
                out.push(Box::new(super::rollout::RolloutView::new(self.id.clone())))
            }
            Intent::Logs => out.push(Box::new(super::rollout::RolloutView::new(self.id.clone()))),
            _ => {
                let _ = ctx;
            }
        }
    }

    fn on_response(&mut self, resp: &Response, ctx: &Ctx, out: &mut Outbox) -> bool {
        let t = resp.ticket;
        let r = &resp.result;
        macro_rules! take {
            ($field:expr, $pat:path) => {
                if $field.ticket() == Some(t) {
                    let v = r.clone().and_then(|p| match p {
                        $pat(x) => Ok(x),
                        _ => Err("unexpected answer".to_string()),
                    });
                    return $field.accept(t, v);
                }
            };
        }
        take!(self.diffs, Payload::Diff);
        take!(self.commits, Payload::Commits);
        take!(self.ci, Payload::Runs);
        take!(self.before_history, Payload::HistoryImages);
        take!(self.permission, Payload::Allowed);
        take!(self.windows, Payload::Windows);
        if let Phase::Sent {
            ticket,
            previous_start,
        } = &self.phase
            && *ticket == t
        {
            match r {
                // Setting a flag ends when Argo CD accepted it: nothing to follow.
                Ok(Payload::Requested(m)) => {
                    out.flash(
                        Level::Info,
                        format!(
                            "{} of {}: request written, waiting for a second approver",
                            self.action_word(),
                            self.id.name
                        ),
                    );
                    self.phase = Phase::Requested(m.clone());
                }
                Ok(_) if matches!(self.change, Change::AutoSync(_)) => self.phase = Phase::Done,
                Ok(_) => {
                    self.sent_after = Some(previous_start.clone());
                    self.phase = Phase::Following {
                        ticket: t,
                        previous_start: previous_start.clone(),
                    };
                    self.watch.start(&self.id, out);
                    out.flash(
                        Level::Info,
                        format!(
                            "{} of {} approved and sent",
                            self.action_word(),
                            self.id.name
                        ),
                    );
                }
                Err(e) => self.phase = Phase::Failed(e.clone()),
            }
            return true;
        }
        if let Phase::Following { ticket, .. } = &self.phase
            && *ticket == t
        {
            self.phase = match r {
                Ok(_) => Phase::Done,
                Err(e) => Phase::Failed(e.clone()),
            };
            return true;
        }
        let _ = ctx;
        self.watch.accept(resp)
    }

    fn on_estate(&mut self, ctx: &Ctx, out: &mut Outbox) {
        if self.deferred && self.details_in(ctx) {
            self.open(ctx, out);
        }
    }

    fn tickets(&self) -> Vec<Ticket> {
        let mut v: Vec<Ticket> = [
            self.diffs.ticket(),
            self.commits.ticket(),
            self.ci.ticket(),
            self.before_history.ticket(),
            self.permission.ticket(),
            self.windows.ticket(),
            self.watch.ticket,
        ]
        .into_iter()
        .flatten()
        .collect();
        if let Phase::Sent { ticket, .. } | Phase::Following { ticket, .. } = &self.phase {
            v.push(*ticket);
        }
        v
    }

    fn busy(&self, _ctx: &Ctx) -> bool {
        matches!(self.phase, Phase::Sent { .. } | Phase::Following { .. })
            || self.diffs.is_loading()
            || self.commits.is_loading()
            || self.ci.is_loading()
    }

    fn typing_keys(&self, _ctx: &Ctx) -> Vec<(&'static str, &'static str)> {
        let other = if self.field == Field::Name {
            "reason"
        } else {
            "name"
        };
        vec![
            ("Enter", "confirm"),
            ("Tab", other),
            ("Ctrl-U", "clear"),
            ("Ctrl-d", "full diff"),
            ("Esc", "cancel"),
        ]
    }

    fn keys(&self, _ctx: &Ctx) -> Vec<(Intent, &'static str)> {
        if self.phase == Phase::Review {
            vec![(Intent::Back, "cancel")]
        } else {
            vec![
                (Intent::Rollout, "rollout"),
                (Intent::Diff, "diff"),
                (Intent::Back, "back"),
            ]
        }
    }
}
