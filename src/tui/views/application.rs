//! Application: one app's summary (source, destination, target and live revision,
//! auto-sync, why it is out of sync), its resource tree with per-resource sync and health,
//! recent events (loaded on open) and deployment history. `Tab` moves between sections.

use crate::model::{AppId, ResourceStatus, WorkloadRollout};
use crate::ops::estate::{compared_revision, deployed_revision};
use crate::sources::AppEvent;
use crate::tui::keymap::Intent;
use crate::tui::request::{Payload, Request, Response};
use crate::tui::theme::Role;
use crate::tui::view::{Ctx, Loadable, Outbox, View};
use crate::tui::widgets::{self, clean, fit, pad};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    Resources,
    Events,
    History,
}

pub struct ApplicationView {
    id: AppId,
    section: Section,
    scroll: [usize; 3],
    events: Loadable<Vec<AppEvent>>,
    /// The app's workloads (Deployments with their ReplicaSets and pods), from the source's
    /// resource tree (API mode) or owner references (core mode), followed live while the
    /// screen is open (a workload watch whose answers arrive as responses; it stops when
    /// the screen closes). The last answer is kept while the watch restarts or fails, so
    /// the tree does not collapse under the cursor.
    workloads: Option<Vec<WorkloadRollout>>,
    workloads_ticket: Option<crate::tui::request::Ticket>,
    /// Why the tree's children are not live (the watch's last error), shown above it.
    workloads_error: Option<String>,
}

/// One row of the resource tree: a managed resource (depth 0, under the Application), or a
/// ReplicaSet under its Deployment, or a Pod under the ReplicaSet that owns it.
struct TreeRow<'a> {
    prefix: String,
    kind: &'static str,
    name: String,
    managed: Option<&'a ResourceStatus>,
    /// Pod: phase, readiness, waiting reason; ReplicaSet: ready/desired and revision.
    note: String,
}

/// The tree Argo CD draws: each managed resource under the Application; under a Deployment
/// its ReplicaSets (new first), under each ReplicaSet the pods it owns. A pod whose owning
/// ReplicaSet the workload does not list (scaled to zero, pod still terminating) gets that
/// ReplicaSet as a row of its own rather than being hung under another one.
fn tree_rows<'a>(res: &'a [ResourceStatus], workloads: &'a [WorkloadRollout]) -> Vec<TreeRow<'a>> {
    let mut rows = Vec::new();
    for r in res {
        rows.push(TreeRow {
            prefix: String::new(),
            kind: "",
            name: String::new(),
            managed: Some(r),
            note: String::new(),
        });
        if r.kind != "Deployment" {
            continue;
        }
        let Some(w) = workloads
            .iter()
            .find(|w| w.name == r.name && (r.namespace.is_empty() || w.namespace == r.namespace))
        else {
            continue;
        };
        let mut sets: Vec<(String, String)> = w
            .new_replicaset
            .iter()
            .chain(w.old_replicasets.iter())
            .map(|rs| {
                let rev = rs
                    .revision
                    .as_deref()
                    .map(|r| format!(" rev {}", clean(r)))
                    .unwrap_or_default();
                (
                    rs.name.clone(),
                    format!("{}/{} ready{rev}", rs.ready, rs.desired),
                )
            })
            .collect();
        for p in &w.pods {
            if let Some(o) = &p.owner_replicaset
                && !sets.iter().any(|(n, _)| n == o)
            {
                sets.push((o.clone(), String::new()));
            }
        }
        let n_sets = sets.len();
        for (si, (rs, note)) in sets.into_iter().enumerate() {
            let last_rs = si + 1 == n_sets;
            rows.push(TreeRow {
                prefix: if last_rs { "└─ " } else { "├─ " }.into(),
                kind: "ReplicaSet",
                name: rs.clone(),
                managed: None,
                note,
            });
            let pods: Vec<_> = w
                .pods
                .iter()
                .filter(|p| p.owner_replicaset.as_deref() == Some(rs.as_str()))
                .collect();
            for (pi, p) in pods.iter().enumerate() {
                let stem = if last_rs { "   " } else { "│  " };
                let branch = if pi + 1 == pods.len() {
                    "└─ "
                } else {
                    "├─ "
                };
                let mut note = format!(
                    "{} {}",
                    clean(&p.phase),
                    if p.ready { "ready" } else { "not ready" }
                );
                if let Some(w) = &p.waiting_reason {
                    note.push_str(&format!(" {}", clean(w)));
                }
                rows.push(TreeRow {
                    prefix: format!("{stem}{branch}"),
                    kind: "Pod",
                    name: p.name.clone(),
                    managed: None,
                    note,
                });
            }
        }
    }
    rows
}

impl ApplicationView {
    pub fn new(id: AppId) -> Self {
        ApplicationView {
            id,
            section: Section::Resources,
            scroll: [0; 3],
            events: Loadable::Idle,
            workloads: None,
            workloads_ticket: None,
            workloads_error: None,
        }
    }

    /// (Re)start following the workloads; a previous watch's ticket is dropped, so the
    /// console cancels its task.
    fn load_workloads(&mut self, out: &mut Outbox) {
        self.workloads_ticket = Some(out.request(Request::WatchWorkloads {
            app: self.id.clone(),
        }));
    }

    fn tree<'a>(&'a self, ctx: &'a Ctx) -> Vec<TreeRow<'a>> {
        ctx.app(&self.id).map_or_else(Vec::new, |e| {
            tree_rows(
                &e.app.status.resources,
                self.workloads.as_deref().unwrap_or(&[]),
            )
        })
    }

    pub fn focus_events(mut self) -> Self {
        self.section = Section::Events;
        self
    }

    fn idx(&self) -> usize {
        self.section as usize
    }

    /// The cursor row of a pane, kept inside its `len` rows.
    fn cursor(&self, section: Section, len: usize) -> usize {
        self.scroll[section as usize].min(len.saturating_sub(1))
    }

    /// Rows in a pane, for moving its cursor.
    fn rows(&self, ctx: &Ctx, section: Section) -> usize {
        match section {
            Section::Resources => self.tree(ctx).len(),
            Section::Events => self.events.ready().map_or(0, Vec::len),
            Section::History => ctx.app(&self.id).map_or(0, |e| e.app.status.history.len()),
        }
    }

    /// A row, highlighted when the cursor is on it in the focused pane.
    fn mark_cursor(
        &self,
        ctx: &Ctx,
        section: Section,
        on: bool,
        mut spans: Vec<Span<'static>>,
    ) -> Line<'static> {
        if on && section == self.section {
            for s in spans.iter_mut() {
                s.style = ctx.theme.selected(s.style);
            }
        }
        Line::from(spans)
    }

    /// Enter on the resource under the cursor: a workload's rollout (its ReplicaSets and
    /// pods), any other resource's diff.
    fn open_resource(&self, ctx: &Ctx, out: &mut Outbox) {
        let rows = self.tree(ctx);
        let Some(r) = rows.get(self.cursor(Section::Resources, rows.len())) else {
            out.flash(crate::tui::view::Level::Info, "no resource here");
            return;
        };
        let kind = r.managed.map_or(r.kind, |m| m.kind.as_str());
        match kind {
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Pod" | "Rollout" => {
                out.push(Box::new(super::rollout::RolloutView::new(self.id.clone())))
            }
            _ => out.push(Box::new(super::diff::DiffView::new(self.id.clone()))),
        }
    }

    fn summary(&self, ctx: &Ctx) -> Vec<Line<'static>> {
        let theme = ctx.theme;
        let Some(e) = ctx.app(&self.id) else {
            return vec![Line::from(widgets::styled(
                theme,
                Role::Warning,
                "This application is gone from its source.",
            ))];
        };
        let app = &e.app;
        let src = app.spec.primary_source();
        let repo = src
            .map(|s| clean(&s.repo_url).into_owned())
            .unwrap_or_default();
        let path = src
            .and_then(|s| s.path.clone().or_else(|| s.chart.clone()))
            .unwrap_or_default();
        let dest = &app.spec.destination;
        let dest_s = format!(
            "{} / {}",
            clean(
                dest.name
                    .as_deref()
                    .or(dest.server.as_deref())
                    .unwrap_or("-")
            ),
            clean(dest.namespace.as_deref().unwrap_or("-"))
        );
        let target = app.target_revision().unwrap_or("HEAD");
        let resolved = compared_revision(app)
            .map(|r| r.short().to_string())
            .unwrap_or_else(|| "-".into());
        let live = deployed_revision(app)
            .map(|r| r.short().to_string())
            .unwrap_or_else(|| "never deployed".into());
        let mut lines = vec![
            Line::from(vec![
                widgets::sync_span(theme, app.status.sync.status, false),
                Span::raw("  "),
                widgets::health_span(theme, app.status.health.status, false),
                Span::raw("  "),
                widgets::muted(theme, format!("env {}", clean(&e.environment.name))),
                Span::raw("  "),
                widgets::muted(theme, format!("instance {}", clean(&self.id.instance))),
            ]),
            widgets::field(
                theme,
                "source",
                vec![widgets::text(theme, format!("{repo} {}", clean(&path)))],
            ),
            widgets::field(theme, "destination", vec![widgets::text(theme, dest_s)]),
            widgets::field(
                theme,
                "target",
                vec![widgets::text(
                    theme,
                    format!("{} → {resolved}", clean(target)),
                )],
            ),
            widgets::field(
                theme,
                "live",
                vec![widgets::text(
                    theme,
                    format!("{} ({})", clean(&live), widgets::version_of(e)),
                )],
            ),
            widgets::field(
                theme,
                "auto-sync",
                vec![widgets::text(theme, auto_sync_words(app))],
            ),
        ];
        if let Some(cause) = e.cause {
            let why = crate::ops::estate::cause_words(cause, app);
            lines.push(widgets::field(
                theme,
                "out of sync",
                vec![widgets::styled(
                    theme,
                    Role::OutOfSync,
                    clean(&why).into_owned(),
                )],
            ));
        }
        if let Some(op) = &app.status.operation_state {
            let role = match op.phase {
                crate::model::OperationPhase::Succeeded => Role::Synced,
                crate::model::OperationPhase::Running => Role::Progressing,
                _ => Role::Danger,
            };
            lines.push(widgets::field(
                theme,
                "operation",
                vec![
                    widgets::styled(theme, role, op.phase.as_str()),
                    widgets::muted(
                        theme,
                        format!(" {}", clean(op.message.as_deref().unwrap_or(""))),
                    ),
                ],
            ));
        }
        // Argo CD 3.4+ Prune=confirm: say what a confirmation deletes, and how to give it.
        if let Some(wait) = crate::ops::prune::waiting(app) {
            lines.push(widgets::field(
                theme,
                "prune",
                vec![widgets::styled(
                    theme,
                    Role::Warning,
                    format!(
                        "{}: {} (:confirm-prune {})",
                        wait.headline(),
                        wait.resources.join(", "),
                        clean(&app.metadata.name)
                    ),
                )],
            ));
        }
        if let Some(msg) = app
            .status
            .health
            .message
            .as_deref()
            .filter(|m| !m.is_empty())
        {
            lines.push(widgets::field(
                theme,
                "health",
                vec![widgets::muted(theme, clean(msg).into_owned())],
            ));
        }
        lines
    }

    fn resources(&self, ctx: &Ctx, height: usize, width: usize) -> Vec<Line<'static>> {
        let theme = ctx.theme;
        let Some(e) = ctx.app(&self.id) else {
            return Vec::new();
        };
        if e.app.status.resources.is_empty() {
            return vec![Line::from(widgets::muted(
                theme,
                "no managed resources reported",
            ))];
        }
        let rows = self.tree(ctx);
        let mut lines = Vec::new();
        let mut height = height;
        if let Some(err) = &self.workloads_error {
            lines.push(Line::from(widgets::styled(
                theme,
                Role::Warning,
                fit(
                    &format!("pods and ReplicaSets not live: {}", clean(err)),
                    width,
                ),
            )));
            height = height.saturating_sub(1);
        }
        let cursor = self.cursor(Section::Resources, rows.len());
        let offset = widgets::scroll_offset(cursor, height, rows.len());
        // Room for the sync and health columns, or for the longest pod/ReplicaSet note
        // (`Pending not ready ImagePullBackOff`), whichever is wider: a waiting reason is
        // what the operator looks for, it is not cut while names have room.
        let longest_note = rows
            .iter()
            .map(|r| r.note.chars().count() + 1)
            .max()
            .unwrap_or(0);
        let name_w = width
            .saturating_sub((14 + 16 + 4).max(longest_note))
            .max(10);
        lines.extend(
            rows.iter()
                .enumerate()
                .skip(offset)
                .take(height)
                .map(|(i, row)| {
                    let Some(r) = row.managed else {
                        let label = format!("{}{}/{}", row.prefix, row.kind, clean(&row.name));
                        let spans = vec![
                            Span::styled(pad(&label, name_w), theme.style(Role::Text)),
                            Span::raw(" "),
                            widgets::muted(theme, row.note.clone()),
                        ];
                        return self.mark_cursor(ctx, Section::Resources, i == cursor, spans);
                    };
                    let h = r.health.as_ref().map(|h| h.status);
                    let mut spans = vec![
                        Span::styled(
                            pad(&format!("{}/{}", clean(&r.kind), clean(&r.name)), name_w),
                            theme.style(Role::Text),
                        ),
                        Span::raw(" "),
                    ];
                    let s = widgets::sync_span(theme, r.status, false);
                    spans.push(Span::styled(pad(&s.content, 13), s.style));
                    match h {
                        Some(h) => spans.push(widgets::health_span(theme, h, false)),
                        None => spans.push(widgets::muted(theme, "-")),
                    }
                    if let Some(w) = r.sync_wave.filter(|w| *w != 0) {
                        spans.push(widgets::muted(theme, format!(" wave {w}")));
                    }
                    if r.requires_pruning {
                        spans.push(widgets::styled(theme, Role::Warning, " prune"));
                    }
                    self.mark_cursor(ctx, Section::Resources, i == cursor, spans)
                }),
        );
        lines
    }

    fn events_lines(&self, ctx: &Ctx, height: usize, width: usize) -> Vec<Line<'static>> {
        let theme = ctx.theme;
        match &self.events {
            Loadable::Idle => vec![],
            Loadable::Loading(_) => vec![Line::from(widgets::muted(
                theme,
                format!("{} loading events…", ctx.spinner()),
            ))],
            Loadable::Failed(e) => vec![Line::from(widgets::styled(
                theme,
                Role::Danger,
                format!("events: {}", clean(e)),
            ))],
            Loadable::Ready(evs) if evs.is_empty() => {
                vec![Line::from(widgets::muted(theme, "no recent events"))]
            }
            Loadable::Ready(evs) => {
                let cursor = self.cursor(Section::Events, evs.len());
                let offset = widgets::scroll_offset(cursor, height, evs.len());
                evs.iter()
                    .rev()
                    .enumerate()
                    .skip(offset)
                    .take(height)
                    .map(|(i, ev)| {
                        let role = if ev.event_type == "Warning" {
                            Role::Warning
                        } else {
                            Role::Muted
                        };
                        let spans = vec![
                            widgets::muted(
                                theme,
                                format!("{:>4} ", widgets::age(ev.last_seen.as_deref(), ctx.now)),
                            ),
                            widgets::styled(
                                theme,
                                role,
                                format!("{:<18} ", fit(&clean(&ev.reason), 18)),
                            ),
                            widgets::text(
                                theme,
                                fit(&clean(&ev.message), width.saturating_sub(24)),
                            ),
                        ];
                        self.mark_cursor(ctx, Section::Events, i == cursor, spans)
                    })
                    .collect()
            }
        }
    }

    fn history_lines(&self, ctx: &Ctx, height: usize, width: usize) -> Vec<Line<'static>> {
        let theme = ctx.theme;
        let Some(e) = ctx.app(&self.id) else {
            return Vec::new();
        };
        let h = &e.app.status.history;
        if h.is_empty() {
            return vec![Line::from(widgets::muted(theme, "no deployments recorded"))];
        }
        let cursor = self.cursor(Section::History, h.len());
        let offset = widgets::scroll_offset(cursor, height, h.len());
        h.iter()
            .rev()
            .enumerate()
            .skip(offset)
            .take(height)
            .map(|(i, d)| {
                let rev = d
                    .revision
                    .clone()
                    .or_else(|| d.revisions.first().cloned())
                    .unwrap_or_default();
                let who = super::history::who(d);
                let spans = vec![
                    widgets::muted(theme, format!("#{:<4}", d.id)),
                    widgets::text(
                        theme,
                        format!(
                            "{:<9}",
                            crate::model::Revision(clean(&rev).into_owned()).short()
                        ),
                    ),
                    widgets::muted(
                        theme,
                        format!(
                            "{:>5} ago  ",
                            widgets::age(d.deployed_at.as_deref(), ctx.now)
                        ),
                    ),
                    widgets::text(theme, fit(&who, width.saturating_sub(26))),
                ];
                self.mark_cursor(ctx, Section::History, i == cursor, spans)
            })
            .collect()
    }
}

impl View for ApplicationView {
    fn title(&self, _ctx: &Ctx) -> String {
        format!("app {}", clean(&self.id.name))
    }

    fn open(&mut self, _ctx: &Ctx, out: &mut Outbox) {
        self.events = Loadable::Loading(out.request(Request::Events {
            app: self.id.clone(),
        }));
        self.load_workloads(out);
    }

    fn render(&self, ctx: &Ctx, frame: &mut Frame, area: Rect) {
        let theme = ctx.theme;
        let summary = self.summary(ctx);
        let [top, bottom] = Layout::vertical([
            Constraint::Length(summary.len() as u16 + 2),
            Constraint::Min(3),
        ])
        .areas(area);
        frame.render_widget(
            Paragraph::new(summary).block(widgets::block(theme, clean(&self.id.name).into_owned())),
            top,
        );
        let wide = bottom.width >= 120;
        let (res_area, ev_area, hist_area) = if wide {
            let [l, r] =
                Layout::horizontal([Constraint::Percentage(55), Constraint::Percentage(45)])
                    .areas(bottom);
            let [re, hi] =
                Layout::vertical([Constraint::Percentage(60), Constraint::Percentage(40)]).areas(r);
            (l, re, hi)
        } else {
            let [a, b, c] = Layout::vertical([
                Constraint::Percentage(45),
                Constraint::Percentage(30),
                Constraint::Percentage(25),
            ])
            .areas(bottom);
            (a, b, c)
        };
        let title = |s: Section, t: &str| {
            if s == self.section {
                format!("▸ {t}")
            } else {
                t.to_string()
            }
        };
        let inner_h = |r: Rect| r.height.saturating_sub(2) as usize;
        let inner_w = |r: Rect| r.width.saturating_sub(2) as usize;
        frame.render_widget(
            Paragraph::new(self.resources(ctx, inner_h(res_area), inner_w(res_area))).block(
                widgets::block(theme, title(Section::Resources, "resources")),
            ),
            res_area,
        );
        frame.render_widget(
            Paragraph::new(self.events_lines(ctx, inner_h(ev_area), inner_w(ev_area)))
                .block(widgets::block(theme, title(Section::Events, "events"))),
            ev_area,
        );
        frame.render_widget(
            Paragraph::new(self.history_lines(ctx, inner_h(hist_area), inner_w(hist_area)))
                .block(widgets::block(theme, title(Section::History, "history"))),
            hist_area,
        );
    }

    fn on_intent(&mut self, intent: Intent, ctx: &Ctx, out: &mut Outbox) {
        let i = self.idx();
        match intent {
            Intent::NextSection => {
                self.section = match self.section {
                    Section::Resources => Section::Events,
                    Section::Events => Section::History,
                    Section::History => Section::Resources,
                }
            }
            Intent::Up
            | Intent::Down
            | Intent::Top
            | Intent::Bottom
            | Intent::PageUp
            | Intent::PageDown => {
                // The cursor stays on a row: never past the last one of a half-empty pane.
                let last = self.rows(ctx, self.section).saturating_sub(1);
                let at = self.scroll[i].min(last);
                self.scroll[i] = match intent {
                    Intent::Up => at.saturating_sub(1),
                    Intent::Down => (at + 1).min(last),
                    Intent::Top => 0,
                    Intent::Bottom => last,
                    Intent::PageUp => at.saturating_sub(10),
                    _ => (at + 10).min(last),
                };
            }
            Intent::Events => {
                self.section = Section::Events;
                self.events = Loadable::Loading(out.request(Request::Events {
                    app: self.id.clone(),
                }));
            }
            Intent::Refresh => {
                out.effects
                    .push(crate::tui::view::Effect::Command("refresh".into()));
                self.events = Loadable::Loading(out.request(Request::Events {
                    app: self.id.clone(),
                }));
                self.load_workloads(out);
            }
            Intent::Open if self.section == Section::History => {
                out.push(Box::new(super::history::HistoryView::new(self.id.clone())))
            }
            Intent::Open if self.section == Section::Resources => self.open_resource(ctx, out),
            Intent::Open => {}
            Intent::Back => out.pop(),
            _ => {
                super::app_intent(intent, Some(&self.id), ctx, out);
            }
        }
    }

    fn on_response(&mut self, resp: &Response, _ctx: &Ctx, _out: &mut Outbox) -> bool {
        if self.workloads_ticket == Some(resp.ticket) {
            // The watch keeps its ticket: every change of the cluster comes as another
            // answer. A failed answer keeps the last tree (the managed resources are still
            // true, only their children may be stale) and says so above it.
            match &resp.result {
                Ok(Payload::Workloads(w)) => {
                    self.workloads = Some(w.clone());
                    self.workloads_error = None;
                }
                Ok(_) => self.workloads_error = Some("unexpected answer".into()),
                Err(e) => self.workloads_error = Some(e.clone()),
            }
            return true;
        }
        let r = resp.result.clone().and_then(|p| match p {
            Payload::Events(v) => Ok(v),
            _ => Err("unexpected answer".into()),
        });
        self.events.accept(resp.ticket, r)
    }

    fn selected_app(&self, _ctx: &Ctx) -> Option<AppId> {
        Some(self.id.clone())
    }

    fn tickets(&self) -> Vec<crate::tui::request::Ticket> {
        self.events
            .ticket()
            .into_iter()
            .chain(self.workloads_ticket)
            .collect()
    }

    fn busy(&self, _ctx: &Ctx) -> bool {
        self.events.is_loading()
    }

    fn keys(&self, ctx: &Ctx) -> Vec<(Intent, &'static str)> {
        let mut v = vec![(Intent::NextSection, "section")];
        if !ctx.read_only {
            v.push((Intent::Sync, "sync"));
        }
        v.extend([
            (Intent::Diff, "diff"),
            (Intent::Rollout, "rollout/pods"),
            (Intent::Rollback, "history"),
            (Intent::AutoSync, "auto-sync on/off"),
            (Intent::Events, "events"),
            (Intent::Refresh, "refresh"),
            (Intent::Back, "back"),
        ]);
        v
    }
}

/// `on`, `off (manual sync)`, or, when shipdeck turned it off (a rollback or `autosync
/// off`), since when: every operator reads it from the Application's annotation.
pub fn auto_sync_words(app: &crate::model::Application) -> String {
    if app.auto_sync() {
        return "on".into();
    }
    match app
        .metadata
        .annotations
        .get(crate::sources::kube::AUTO_SYNC_OFF_SINCE)
    {
        Some(at) => format!(
            "off since {} (turned off by shipdeck; A turns it on again)",
            clean(at)
        ),
        None => "off (manual sync)".into(),
    }
}
