//! Rollout: for each Deployment of the app, gauges for desired/updated/ready/available,
//! old and new ReplicaSets, pods with phase, readiness, restarts and waiting reason, and
//! the verdict `kubectl rollout status` would give. It follows the workloads live (a watch
//! that stops when the screen closes). `l` opens the logs of the selected pod.

use crate::model::{AppId, Pod, RolloutVerdict, WorkloadRollout};
use crate::tui::keymap::Intent;
use crate::tui::request::{Payload, Request, Response, Ticket};
use crate::tui::theme::{Role, Theme};
use crate::tui::view::{Ctx, Level, Outbox, View};
use crate::tui::widgets::{self, clean, fit, pad};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

/// The live state of a workload watch.
#[derive(Debug, Clone, Default)]
pub struct WorkloadWatch {
    pub ticket: Option<Ticket>,
    pub workloads: Option<Vec<WorkloadRollout>>,
    pub error: Option<String>,
}

impl WorkloadWatch {
    pub fn start(&mut self, id: &AppId, out: &mut Outbox) {
        self.ticket = Some(out.request(Request::WatchWorkloads { app: id.clone() }));
        self.error = None;
    }

    pub fn accept(&mut self, resp: &Response) -> bool {
        if self.ticket != Some(resp.ticket) {
            return false;
        }
        match &resp.result {
            Ok(Payload::Workloads(w)) => {
                self.workloads = Some(w.clone());
                self.error = None;
            }
            Ok(_) => self.error = Some("unexpected answer".into()),
            Err(e) => self.error = Some(e.clone()),
        }
        true
    }

    pub fn all_complete(&self) -> bool {
        self.workloads
            .as_ref()
            .is_some_and(|w| w.iter().all(|w| w.verdict() == RolloutVerdict::Complete))
    }
}

pub struct RolloutView {
    id: AppId,
    watch: WorkloadWatch,
    /// Index over all pods of all workloads, in drawing order.
    pod: usize,
}

impl RolloutView {
    pub fn new(id: AppId) -> Self {
        RolloutView {
            id,
            watch: WorkloadWatch::default(),
            pod: 0,
        }
    }

    pub fn with_workloads(id: AppId, w: Vec<WorkloadRollout>) -> Self {
        RolloutView {
            id,
            watch: WorkloadWatch {
                ticket: None,
                workloads: Some(w),
                error: None,
            },
            pod: 0,
        }
    }

    fn pods(&self) -> Vec<&Pod> {
        self.watch
            .workloads
            .iter()
            .flatten()
            .flat_map(|w| w.pods.iter())
            .collect()
    }
}

pub fn verdict_span(theme: &Theme, v: &RolloutVerdict) -> Span<'static> {
    match v {
        RolloutVerdict::Complete => Span::styled("✓ rollout complete", theme.style(Role::Healthy)),
        RolloutVerdict::InProgress(m) => {
            Span::styled(format!("◔ {}", clean(m)), theme.style(Role::Progressing))
        }
        RolloutVerdict::Failed(m) => {
            Span::styled(format!("✗ {}", clean(m)), theme.style(Role::Degraded))
        }
    }
}

/// The lines for workloads: gauges, ReplicaSets, pods. `selected_pod` counts pods across
/// workloads.
pub fn workload_lines(
    theme: &Theme,
    workloads: &[WorkloadRollout],
    selected_pod: Option<usize>,
    width: usize,
) -> Vec<Line<'static>> {
    let mut lines = Vec::new();
    let mut pod_index = 0;
    let bar_w = (width / 4).clamp(6, 30);
    for w in workloads {
        lines.push(Line::from(Span::styled(
            format!("{} {}/{}", w.kind(), clean(&w.namespace), clean(&w.name)),
            theme.style(Role::Accent),
        )));
        let verdict = w.verdict();
        let mut v = verdict_span(theme, &verdict);
        if verdict == RolloutVerdict::Complete {
            // kubectl's own words, name included.
            v.content = format!("✓ {}", clean(&w.status_line())).into();
        }
        v.content = format!("  {}", fit(&v.content, width.saturating_sub(2))).into();
        lines.push(Line::from(v));
        // A Job counts completions (its line above), a CronJob only starts Jobs: no
        // replica gauges for them.
        let gauges: &[(&str, u32)] = if matches!(w.kind(), "Job" | "CronJob") {
            &[]
        } else {
            &[
                ("updated", w.updated),
                ("ready", w.ready),
                ("available", w.available),
            ]
        };
        for &(label, v) in gauges {
            let role = if v >= w.desired {
                Role::Healthy
            } else {
                Role::Progressing
            };
            lines.push(Line::from(vec![
                widgets::muted(theme, format!("  {label:<10}")),
                Span::styled(widgets::bar(v, w.desired, bar_w), theme.style(role)),
                widgets::text(theme, format!(" {v}/{} desired", w.desired)),
            ]));
        }
        let rs_line = |label: &str, rs: &crate::model::ReplicaSetInfo, role: Role| {
            let img = rs
                .images
                .first()
                .map(|i| clean(i).into_owned())
                .unwrap_or_default();
            Line::from(vec![
                widgets::muted(theme, format!("  {label:<10}")),
                Span::styled(format!("{} ", clean(&rs.name)), theme.style(role)),
                widgets::text(theme, format!("{}/{} ready ", rs.ready, rs.desired)),
                widgets::muted(theme, fit(&img, width.saturating_sub(40))),
            ])
        };
        if let Some(rs) = &w.new_replicaset {
            lines.push(rs_line("new RS", rs, Role::Text));
        }
        for rs in w
            .old_replicasets
            .iter()
            .filter(|r| r.desired > 0 || r.ready > 0)
        {
            lines.push(rs_line("old RS", rs, Role::Muted));
        }
        if !w.pods.is_empty() {
            let name_w = width.saturating_sub(48).clamp(16, 60);
            lines.push(Line::from(widgets::muted(
                theme,
                format!(
                    "  {}{:<10}{:<7}{:<10}{}",
                    pad("POD", name_w),
                    "PHASE",
                    "READY",
                    "RESTARTS",
                    "WAITING"
                ),
            )));
            for p in &w.pods {
                let waiting = p.waiting_reason.as_deref().unwrap_or("");
                let role = if matches!(
                    waiting,
                    "ImagePullBackOff" | "ErrImagePull" | "CrashLoopBackOff"
                ) {
                    Role::Degraded
                } else if p.ready {
                    Role::Healthy
                } else {
                    Role::Progressing
                };
                let mut spans = vec![
                    widgets::text(theme, format!("  {}", pad(&clean(&p.name), name_w))),
                    widgets::text(theme, format!("{:<10}", clean(&p.phase))),
                    Span::styled(
                        format!("{:<7}", if p.ready { "✓ yes" } else { "✗ no" }),
                        theme.style(role),
                    ),
                    Span::styled(
                        format!("{:<10}", p.restarts),
                        theme.style(if p.restarts > 0 {
                            Role::Warning
                        } else {
                            Role::Text
                        }),
                    ),
                    Span::styled(clean(waiting).into_owned(), theme.style(role)),
                ];
                if selected_pod == Some(pod_index) {
                    for s in spans.iter_mut() {
                        s.style = theme.selected(s.style);
                    }
                }
                lines.push(Line::from(spans));
                pod_index += 1;
            }
        }
        lines.push(Line::default());
    }
    lines
}

impl View for RolloutView {
    fn title(&self, _ctx: &Ctx) -> String {
        format!("rollout {}", clean(&self.id.name))
    }

    fn open(&mut self, _ctx: &Ctx, out: &mut Outbox) {
        if self.watch.workloads.is_none() {
            self.watch.start(&self.id, out);
        }
    }

    fn render(&self, ctx: &Ctx, frame: &mut Frame, area: Rect) {
        let theme = ctx.theme;
        let mut lines = Vec::new();
        if let Some(e) = ctx.app(&self.id) {
            lines.push(Line::from(vec![
                widgets::sync_span(theme, e.board.sync, false),
                Span::raw("  "),
                widgets::health_span(theme, e.board.health, false),
                Span::raw("  "),
                widgets::muted(
                    theme,
                    if e.board.operation_in_progress {
                        "operation running"
                    } else {
                        ""
                    },
                ),
            ]));
        }
        if let Some(err) = &self.watch.error {
            lines.push(Line::from(widgets::styled(
                theme,
                Role::Danger,
                format!("workloads: {}", clean(err)),
            )));
        }
        match &self.watch.workloads {
            None if self.watch.error.is_none() => lines.push(Line::from(widgets::muted(
                theme,
                format!("{} loading workloads…", ctx.spinner()),
            ))),
            None => {}
            Some(w) if w.is_empty() => lines.push(Line::from(widgets::muted(
                theme,
                "this application has no Deployments",
            ))),
            Some(w) => lines.extend(workload_lines(
                theme,
                w,
                Some(self.pod),
                area.width.saturating_sub(2) as usize,
            )),
        }
        let h = area.height.saturating_sub(2) as usize;
        // Keep the selected pod visible: scroll so its line fits.
        let sel_line = lines
            .iter()
            .position(|l| {
                l.spans
                    .first()
                    .is_some_and(|s| s.style == theme.selected(s.style) && s.style.bg.is_some())
            })
            .unwrap_or(0);
        let offset = sel_line.saturating_sub(h.saturating_sub(2));
        let visible: Vec<Line> = lines.into_iter().skip(offset).take(h).collect();
        frame.render_widget(
            Paragraph::new(visible).block(widgets::block(
                theme,
                format!("rollout {}", clean(&self.id.name)),
            )),
            area,
        );
    }

    fn on_intent(&mut self, intent: Intent, ctx: &Ctx, out: &mut Outbox) {
        let n = self.pods().len();
        match intent {
            Intent::Up => self.pod = self.pod.saturating_sub(1),
            Intent::Down => self.pod = (self.pod + 1).min(n.saturating_sub(1)),
            Intent::Top => self.pod = 0,
            Intent::Bottom => self.pod = n.saturating_sub(1),
            Intent::Logs | Intent::Open => match self.pods().get(self.pod) {
                Some(p) => out.push(Box::new(super::logs::LogsView::new(
                    self.id.clone(),
                    p.namespace.clone(),
                    p.name.clone(),
                ))),
                None => out.flash(Level::Info, "no pod selected"),
            },
            Intent::Refresh => self.watch.start(&self.id, out),
            Intent::Back => out.pop(),
            Intent::Rollout => {}
            _ => {
                super::app_intent(intent, Some(&self.id), ctx, out);
            }
        }
    }

    fn on_response(&mut self, resp: &Response, _ctx: &Ctx, _out: &mut Outbox) -> bool {
        let changed = self.watch.accept(resp);
        if changed {
            self.pod = self.pod.min(self.pods().len().saturating_sub(1));
        }
        changed
    }

    fn tickets(&self) -> Vec<Ticket> {
        self.watch.ticket.into_iter().collect()
    }

    fn busy(&self, _ctx: &Ctx) -> bool {
        self.watch.workloads.is_none() && self.watch.error.is_none()
    }

    fn keys(&self, _ctx: &Ctx) -> Vec<(Intent, &'static str)> {
        vec![
            (Intent::Down, "select pod"),
            (Intent::Logs, "logs"),
            (Intent::Diff, "diff"),
            (Intent::Events, "events"),
            (Intent::Refresh, "rewatch"),
            (Intent::Back, "back"),
        ]
    }
}
