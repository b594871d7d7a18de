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
    /// The events pane shows only these objects' events (`Kind/name`; Enter on a Job),
    /// with a title; `e` shows all again.
    events_of: Option<(String, Vec<String>)>,
}

/// One row of the resource tree: a managed resource (depth 0, under the Application), or
/// a child Argo CD shows under its parent (ReplicaSet under Deployment, Pod under
/// ReplicaSet, StatefulSet, DaemonSet or Job, Job under CronJob), or a workload child
/// whose parent is not on the screen (hung under the Application).
struct TreeRow {
    prefix: String,
    kind: String,
    name: String,
    managed: Option<ResourceStatus>,
    /// The kind and name of the row's parent (None for rows under the Application).
    parent: Option<(String, String)>,
    /// Pod: phase, readiness, waiting reason; ReplicaSet: ready/desired and revision; a
    /// StatefulSet, DaemonSet or Job: the counts `kubectl get` shows.
    note: String,
}

/// A child in the tree: what it is, its note, and whose child it is (kind, namespace,
/// name; None: the Application's).
struct Child {
    kind: String,
    namespace: String,
    name: String,
    note: String,
    parent: Option<(String, String, String)>,
}

fn pod_note(p: &crate::model::Pod) -> String {
    let mut note = format!(
        "{} {}",
        clean(&p.phase),
        if p.ready { "ready" } else { "not ready" }
    );
    if let Some(w) = &p.waiting_reason {
        note.push_str(&format!(" {}", clean(w)));
    }
    note
}

/// Every child the workloads name, each with its parent, in tree order (a Deployment's
/// ReplicaSets new first, pods by name).
fn children(workloads: &[WorkloadRollout]) -> Vec<Child> {
    let mut out: Vec<Child> = Vec::new();
    for w in workloads {
        let me = (w.kind().to_string(), w.namespace.clone(), w.name.clone());
        out.push(Child {
            kind: me.0.clone(),
            namespace: w.namespace.clone(),
            name: w.name.clone(),
            note: if w.kind() == "Deployment" {
                String::new()
            } else {
                clean(&w.summary()).into_owned()
            },
            parent: w
                .owner
                .as_ref()
                .map(|o| (o.kind.clone(), o.namespace.clone(), o.name.clone())),
        });
        if w.kind() == "Deployment" {
            let mut sets: Vec<String> = Vec::new();
            for rs in w.new_replicaset.iter().chain(w.old_replicasets.iter()) {
                let rev = rs
                    .revision
                    .as_deref()
                    .map(|r| format!(" rev {}", clean(r)))
                    .unwrap_or_default();
                sets.push(rs.name.clone());
                out.push(Child {
                    kind: "ReplicaSet".into(),
                    namespace: w.namespace.clone(),
                    name: rs.name.clone(),
                    note: format!("{}/{} ready{rev}", rs.ready, rs.desired),
                    parent: Some(me.clone()),
                });
            }
            // A pod whose ReplicaSet the workload does not list (scaled to zero, pod still
            // terminating) gets that ReplicaSet as a row of its own.
            for p in &w.pods {
                if let Some(o) = &p.owner_replicaset
                    && !sets.contains(o)
                {
                    sets.push(o.clone());
                    out.push(Child {
                        kind: "ReplicaSet".into(),
                        namespace: w.namespace.clone(),
                        name: o.clone(),
                        note: String::new(),
                        parent: Some(me.clone()),
                    });
                }
            }
        }
        for p in &w.pods {
            let parent = match (&p.owner, &p.owner_replicaset) {
                (Some(o), _) => (o.kind.clone(), o.namespace.clone(), o.name.clone()),
                (None, Some(rs)) => ("ReplicaSet".into(), w.namespace.clone(), rs.clone()),
                (None, None) => me.clone(),
            };
            out.push(Child {
                kind: "Pod".into(),
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                note: pod_note(p),
                parent: Some(parent),
            });
        }
    }
    out
}

/// The tree Argo CD draws: each managed resource under the Application, under each
/// resource its children by owner (`parentRefs` in API mode, `ownerReferences` in core
/// mode), to any depth. A child whose parent is neither managed nor another child hangs
/// under the Application, after the managed resources.
fn tree_rows(res: &[ResourceStatus], workloads: &[WorkloadRollout]) -> Vec<TreeRow> {
    let kids = children(workloads);
    let is = |k: &Child, kind: &str, ns: &str, name: &str| {
        k.kind == kind && k.name == name && (ns.is_empty() || k.namespace == ns)
    };
    let managed_is = |k: &Child| res.iter().any(|r| is(k, &r.kind, &r.namespace, &r.name));
    let of = |kind: &str, ns: &str, name: &str| -> Vec<usize> {
        kids.iter()
            .enumerate()
            .filter(|(_, k)| {
                k.parent.as_ref().is_some_and(|(pk, pns, pn)| {
                    pk == kind && pn == name && (ns.is_empty() || pns == ns)
                })
            })
            .map(|(i, _)| i)
            .collect()
    };
    let mut used = vec![false; kids.len()];
    fn walk(
        at: (&str, &str, &str),
        stem: &str,
        kids: &[Child],
        of: &dyn Fn(&str, &str, &str) -> Vec<usize>,
        used: &mut Vec<bool>,
        rows: &mut Vec<TreeRow>,
    ) {
        let mine: Vec<usize> = of(at.0, at.1, at.2)
            .into_iter()
            .filter(|i| !used[*i])
            .collect();
        for i in &mine {
            used[*i] = true;
        }
        for (n, i) in mine.iter().enumerate() {
            let last = n + 1 == mine.len();
            let k = &kids[*i];
            rows.push(TreeRow {
                prefix: format!("{stem}{}", if last { "└─ " } else { "├─ " }),
                kind: k.kind.clone(),
                name: k.name.clone(),
                managed: None,
                parent: Some((at.0.to_string(), at.2.to_string())),
                note: k.note.clone(),
            });
            let deeper = format!("{stem}{}", if last { "   " } else { "│  " });
            walk(
                (&k.kind, &k.namespace, &k.name),
                &deeper,
                kids,
                of,
                used,
                rows,
            );
        }
    }
    let mut rows = Vec::new();
    for r in res {
        // A managed workload's own row carries its counts.
        let note = kids
            .iter()
            .find(|k| k.parent.is_none() && is(k, &r.kind, &r.namespace, &r.name))
            .map(|k| k.note.clone())
            .unwrap_or_default();
        for (i, k) in kids.iter().enumerate() {
            if is(k, &r.kind, &r.namespace, &r.name) {
                used[i] = true;
            }
        }
        rows.push(TreeRow {
            prefix: String::new(),
            kind: r.kind.clone(),
            name: r.name.clone(),
            managed: Some(r.clone()),
            parent: None,
            note,
        });
        walk(
            (&r.kind, &r.namespace, &r.name),
            "",
            &kids,
            &of,
            &mut used,
            &mut rows,
        );
    }
    // Children whose parent is not drawn: under the Application, each with its own
    // children.
    for i in 0..kids.len() {
        if used[i] || managed_is(&kids[i]) {
            continue;
        }
        let parent_drawn = kids[i].parent.as_ref().is_some_and(|(pk, pns, pn)| {
            res.iter().any(|r| {
                r.kind == *pk && r.name == *pn && (r.namespace.is_empty() || r.namespace == *pns)
            }) || kids
                .iter()
                .any(|k| k.kind == *pk && k.namespace == *pns && k.name == *pn)
        });
        if parent_drawn {
            continue;
        }
        used[i] = true;
        let k = &kids[i];
        rows.push(TreeRow {
            prefix: String::new(),
            kind: k.kind.clone(),
            name: k.name.clone(),
            managed: None,
            parent: None,
            note: k.note.clone(),
        });
        walk(
            (&k.kind, &k.namespace, &k.name),
            "   ",
            &kids,
            &of,
            &mut used,
            &mut rows,
        );
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
            events_of: None,
        }
    }

    /// (Re)start following the workloads; a previous watch's ticket is dropped, so the
    /// console cancels its task.
    fn load_workloads(&mut self, out: &mut Outbox) {
        self.workloads_ticket = Some(out.request(Request::WatchWorkloads {
            app: self.id.clone(),
        }));
    }

    fn tree(&self, ctx: &Ctx) -> Vec<TreeRow> {
        ctx.app(&self.id).map_or_else(Vec::new, |e| {
            tree_rows(
                &e.app().status.resources,
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
            Section::Events => self
                .events
                .ready()
                .map_or(0, |e| self.shown_events(e).len()),
            Section::History => ctx.app(&self.id).map_or(0, |e| e.board.history_len),
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
    ///
    /// A Job or CronJob (and a Job's pod) has no rollout in kubectl: Enter shows its events
    /// here (the Job's and its pods'), in the events pane.
    fn open_resource(&mut self, ctx: &Ctx, out: &mut Outbox) {
        let rows = self.tree(ctx);
        let Some(r) = rows.get(self.cursor(Section::Resources, rows.len())) else {
            out.flash(crate::tui::view::Level::Info, "no resource here");
            return;
        };
        let parent_kind = r.parent.as_ref().map(|p| p.0.as_str());
        let job_like = matches!(r.kind.as_str(), "Job" | "CronJob")
            || (r.kind == "Pod" && parent_kind == Some("Job"));
        if job_like {
            // The object and everything under it (a CronJob's Jobs, a Job's pods).
            let at = self.cursor(Section::Resources, rows.len());
            let depth = |row: &TreeRow| row.prefix.chars().count();
            let mut objects = vec![format!("{}/{}", r.kind, r.name)];
            objects.extend(
                rows.iter()
                    .skip(at + 1)
                    .take_while(|row| depth(row) > depth(r) && row.managed.is_none())
                    .map(|row| format!("{}/{}", row.kind, row.name)),
            );
            let title = format!("{}/{}", r.kind, clean(&r.name));
            drop(rows);
            self.events_of = Some((title, objects));
            self.section = Section::Events;
            self.scroll[Section::Events as usize] = 0;
            self.events = Loadable::Loading(out.request(Request::Events {
                app: self.id.clone(),
            }));
            return;
        }
        match r.kind.as_str() {
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Pod" | "Rollout" => {
                out.push(Box::new(super::rollout::RolloutView::new(self.id.clone())))
            }
            _ => out.push(Box::new(super::diff::DiffView::new(self.id.clone()))),
        }
    }

    /// The events the pane shows: all of the app's, or those of the object Enter chose.
    fn shown_events<'e>(&self, evs: &'e [AppEvent]) -> Vec<&'e AppEvent> {
        evs.iter()
            .filter(|e| {
                self.events_of
                    .as_ref()
                    .is_none_or(|(_, objs)| objs.contains(&e.object))
            })
            .collect()
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
        let app = &e.app();
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
        let live = match deployed_revision(app) {
            Some(r) => r.short().to_string(),
            // The projected list has no history: not "never deployed", not known yet.
            None if !e.board.complete => "not read yet (the history is being read)".into(),
            None => "never deployed".into(),
        };
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
            let why = if e.board.complete {
                crate::ops::estate::cause_words(cause, app)
            } else {
                format!(
                    "out of sync; why is known once {}",
                    widgets::DETAILS_PENDING_SHORT
                )
            };
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
        if e.app().status.resources.is_empty() {
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
                    let Some(r) = row.managed.as_ref() else {
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
                    if !row.note.is_empty() {
                        spans.push(widgets::muted(theme, format!("  {}", row.note)));
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
            Loadable::Ready(evs) if self.shown_events(evs).is_empty() => {
                let what = match &self.events_of {
                    Some((t, _)) => format!("no recent events of {t} (e: all events)"),
                    None => "no recent events".into(),
                };
                vec![Line::from(widgets::muted(theme, what))]
            }
            Loadable::Ready(evs) => {
                let evs = self.shown_events(evs);
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
        if !e.board.complete {
            return vec![Line::from(widgets::muted(theme, widgets::DETAILS_PENDING))];
        }
        let h = &e.app().status.history;
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
            Paragraph::new(self.events_lines(ctx, inner_h(ev_area), inner_w(ev_area))).block(
                widgets::block(
                    theme,
                    title(
                        Section::Events,
                        &match &self.events_of {
                            Some((t, _)) => format!("events of {t}"),
                            None => "events".into(),
                        },
                    ),
                ),
            ),
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
                self.events_of = None;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ObjectRef, Pod};

    fn owner(kind: &str, name: &str) -> Option<ObjectRef> {
        Some(ObjectRef {
            kind: kind.into(),
            namespace: "data".into(),
            name: name.into(),
            uid: String::new(),
        })
    }

    fn pod(name: &str, parent: &str, kind: &str) -> Pod {
        Pod {
            namespace: "data".into(),
            name: name.into(),
            phase: "Running".into(),
            ready: true,
            owner: owner(kind, parent),
            ..Default::default()
        }
    }

    fn managed(kind: &str, name: &str) -> ResourceStatus {
        serde_json::from_value(serde_json::json!({
            "kind": kind, "name": name, "namespace": "data", "status": "Synced"
        }))
        .expect("resource status")
    }

    /// Any depth, any kind: CronJob -> Job -> Pod, StatefulSet -> Pod, each drawn under its
    /// parent with tree branches; a Job whose CronJob is not managed hangs under the
    /// Application.
    #[test]
    fn tree_rows_nest_by_owner_for_every_kind() {
        let res = vec![managed("StatefulSet", "db"), managed("CronJob", "nightly")];
        let ws = vec![
            WorkloadRollout {
                kind: "StatefulSet".into(),
                namespace: "data".into(),
                name: "db".into(),
                desired: 2,
                ready: 1,
                pods: vec![
                    pod("db-0", "db", "StatefulSet"),
                    pod("db-1", "db", "StatefulSet"),
                ],
                ..Default::default()
            },
            WorkloadRollout {
                kind: "CronJob".into(),
                namespace: "data".into(),
                name: "nightly".into(),
                ..Default::default()
            },
            WorkloadRollout {
                kind: "Job".into(),
                namespace: "data".into(),
                name: "nightly-1".into(),
                owner: owner("CronJob", "nightly"),
                job: Some(crate::model::JobState {
                    completions: 1,
                    succeeded: 1,
                    condition: Some("Complete".into()),
                    ..Default::default()
                }),
                pods: vec![pod("nightly-1-abcde", "nightly-1", "Job")],
                ..Default::default()
            },
            WorkloadRollout {
                kind: "Job".into(),
                namespace: "data".into(),
                name: "orphan".into(),
                owner: owner("CronJob", "gone"),
                job: Some(crate::model::JobState {
                    completions: 1,
                    active: 1,
                    ..Default::default()
                }),
                pods: vec![pod("orphan-x", "orphan", "Job")],
                ..Default::default()
            },
        ];
        let rows: Vec<String> = tree_rows(&res, &ws)
            .iter()
            .map(|r| {
                format!("{}{}/{} {}", r.prefix, r.kind, r.name, r.note)
                    .trim_end()
                    .to_string()
            })
            .collect();
        assert_eq!(
            rows,
            [
                "StatefulSet/db ready 1/2",
                "├─ Pod/db-0 Running ready",
                "└─ Pod/db-1 Running ready",
                "CronJob/nightly",
                "└─ Job/nightly-1 Complete 1/1",
                "   └─ Pod/nightly-1-abcde Running ready",
                "Job/orphan Running 0/1",
                "   └─ Pod/orphan-x Running ready",
            ]
        );
    }
}
