//! `:metrics [SPAN]`: delivery metrics per service and environment (deployments per week,
//! lead time median and p90, change failure rate, time to restore) over the last SPAN
//! (default 30d), from `ops::metrics`, the one computation `shipdeck metrics` prints. A figure
//! that cannot be computed reads "unknown"; the row under the cursor says why. The help
//! screen (`?`) says how each figure is computed.

use crate::ops::metrics::{self, Figures, Report, duration_words};
use crate::tui::keymap::Intent;
use crate::tui::request::{MetricsApp, Payload, Request, Response, Ticket};
use crate::tui::theme::Role;
use crate::tui::view::{Ctx, Loadable, Outbox, View};
use crate::tui::widgets::{self, clean, pad};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};

pub struct MetricsView {
    since: chrono::Duration,
    span: String,
    window: chrono::Duration,
    report: Loadable<Report>,
    cursor: usize,
    /// The figures wait for apps' details (see `Board::complete`); read once they are in.
    waiting: bool,
}

impl MetricsView {
    /// `span` like `30d`; a bad one falls back to 30 days (the palette says so).
    pub fn new(span: Option<&str>) -> Result<Self, String> {
        let span = span.unwrap_or("30d").to_string();
        let since = metrics::parse_span(&span)?;
        Ok(MetricsView {
            since,
            span,
            window: chrono::Duration::hours(1),
            report: Loadable::Idle,
            cursor: 0,
            waiting: false,
        })
    }

    fn load(&mut self, ctx: &Ctx, out: &mut Outbox) {
        // Figures from apps whose history has not arrived would count no deployments.
        self.waiting = ctx.estate.incomplete() > 0;
        if self.waiting {
            self.report = Loadable::Idle;
            return;
        }
        let apps: Vec<MetricsApp> = ctx
            .estate
            .apps()
            .map(|e| MetricsApp {
                id: e.id.clone(),
                app: e.app(),
                service: e.service.clone(),
                environment: e.environment.name.clone(),
            })
            .collect();
        let mut apps = apps;
        apps.sort_by(|a, b| {
            let rank = |m: &MetricsApp| {
                ctx.estate
                    .get(&m.id)
                    .map_or(u32::MAX, |e| e.environment.rank)
            };
            (a.service.as_str(), rank(a), a.id.name.as_str()).cmp(&(
                b.service.as_str(),
                rank(b),
                b.id.name.as_str(),
            ))
        });
        self.report = Loadable::Loading(out.request(Request::Metrics {
            apps,
            since: self.since,
            window: self.window,
        }));
    }

    fn rows(&self) -> &[Figures] {
        match &self.report {
            Loadable::Ready(r) => &r.apps,
            _ => &[],
        }
    }
}

fn rate(f: &Figures) -> String {
    match f.change_failure_rate.rate {
        Some(r) => format!(
            "{:.1}% ({}/{})",
            r * 100.0,
            f.change_failure_rate.failed,
            f.change_failure_rate.deployments
        ),
        None => "unknown".into(),
    }
}

/// Why the figures of one row are unknown, and its notes.
pub fn reasons(f: &Figures) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(u) = &f.lead_time.unknown {
        out.push(format!("lead time unknown: {u}"));
    }
    if let Some(u) = &f.change_failure_rate.unknown {
        out.push(format!("change failure rate unknown: {u}"));
    }
    if let Some(u) = &f.time_to_restore.unknown {
        out.push(format!("time to restore unknown: {u}"));
    }
    out.extend(f.notes.iter().cloned());
    out
}

const COLUMNS: &[(&str, usize)] = &[
    ("SERVICE", 16),
    ("ENV", 10),
    ("DEPLOYS", 8),
    ("PER WEEK", 9),
    ("LEAD MED", 9),
    ("LEAD P90", 9),
    ("CHANGE FAILURE", 16),
    ("RESTORE MED", 11),
];

impl View for MetricsView {
    fn title(&self, _ctx: &Ctx) -> String {
        format!("metrics {}", self.span)
    }

    fn open(&mut self, ctx: &Ctx, out: &mut Outbox) {
        self.load(ctx, out);
    }

    fn on_estate(&mut self, ctx: &Ctx, out: &mut Outbox) {
        if self.waiting && ctx.estate.incomplete() == 0 {
            self.load(ctx, out);
        }
    }

    fn render(&self, ctx: &Ctx, frame: &mut Frame, area: Rect) {
        let theme = ctx.theme;
        let mut lines: Vec<Line> = Vec::new();
        let header: String = COLUMNS.iter().map(|(h, w)| pad(h, *w + 1)).collect();
        lines.push(Line::from(widgets::muted(theme, header)));
        match &self.report {
            // Waiting is not failing: the figures come once every app's history is in.
            Loadable::Idle if self.waiting => lines.push(Line::from(widgets::muted(
                theme,
                format!(
                    "waiting for the history of {} apps (Argo CD's list carries none; the whole list is being read)…",
                    ctx.estate.incomplete()
                ),
            ))),
            Loadable::Idle | Loadable::Loading(_) => lines.push(Line::from(widgets::muted(
                theme,
                "reading Argo CD history, Git, events and the audit log…".to_string(),
            ))),
            Loadable::Failed(e) => lines.push(Line::from(widgets::styled(
                theme,
                Role::Danger,
                format!("metrics cannot be read: {}", clean(e)),
            ))),
            Loadable::Ready(r) => {
                if r.apps.is_empty() {
                    lines.push(Line::from(widgets::muted(
                        theme,
                        "no applications".to_string(),
                    )));
                }
                for (i, f) in r.apps.iter().enumerate() {
                    let cells = [
                        clean(&f.service).into_owned(),
                        clean(&f.environment).into_owned(),
                        f.deployments.count.to_string(),
                        format!("{:.2}", f.deployments.per_week),
                        duration_words(f.lead_time.median_seconds),
                        duration_words(f.lead_time.p90_seconds),
                        rate(f),
                        duration_words(f.time_to_restore.median_seconds),
                    ];
                    let text: String = cells
                        .iter()
                        .zip(COLUMNS)
                        .map(|(c, (_, w))| pad(c, *w + 1))
                        .collect();
                    let role = if i == self.cursor {
                        Role::Selection
                    } else {
                        Role::Text
                    };
                    lines.push(Line::from(widgets::styled(theme, role, text)));
                }
                if let Some(f) = r.apps.get(self.cursor) {
                    lines.push(Line::from(""));
                    lines.push(Line::from(widgets::text(
                        theme,
                        format!(
                            "{} ({}): {} from Argo CD history, {} from Git, {} from the audit log; {} rollbacks",
                            clean(&f.app),
                            clean(&f.environment),
                            f.deployments.from_history,
                            f.deployments.from_git,
                            f.deployments.from_audit,
                            f.deployments.rollbacks
                        ),
                    )));
                    for why in reasons(f) {
                        lines.push(Line::from(widgets::muted(
                            theme,
                            format!("  {}", clean(&why)),
                        )));
                    }
                }
                lines.push(Line::from(""));
                lines.push(Line::from(widgets::muted(
                    theme,
                    format!(
                        "{} .. {} · failure window {} · ? how each figure is computed",
                        r.since,
                        r.until,
                        duration_words(Some(r.window_seconds))
                    ),
                )));
            }
        }
        let title = format!("delivery metrics · last {}", self.span);
        frame.render_widget(
            Paragraph::new(lines)
                .wrap(Wrap { trim: false })
                .block(widgets::block(theme, &title)),
            area,
        );
    }

    fn on_intent(&mut self, intent: Intent, ctx: &Ctx, out: &mut Outbox) {
        let last = self.rows().len().saturating_sub(1);
        match intent {
            Intent::Down => self.cursor = (self.cursor + 1).min(last),
            Intent::Up => self.cursor = self.cursor.saturating_sub(1),
            Intent::Top => self.cursor = 0,
            Intent::Bottom => self.cursor = last,
            Intent::PageDown => self.cursor = (self.cursor + 10).min(last),
            Intent::PageUp => self.cursor = self.cursor.saturating_sub(10),
            Intent::Refresh => self.load(ctx, out),
            Intent::Back | Intent::Quit => out.pop(),
            _ => {}
        }
    }

    fn on_response(&mut self, resp: &Response, _ctx: &Ctx, _out: &mut Outbox) -> bool {
        let result = match &resp.result {
            Ok(Payload::Metrics(r)) => Ok(r.clone()),
            Ok(_) => Err("unexpected answer".to_string()),
            Err(e) => Err(e.clone()),
        };
        self.report.accept(resp.ticket, result)
    }

    fn tickets(&self) -> Vec<Ticket> {
        match &self.report {
            Loadable::Loading(t) => vec![*t],
            _ => Vec::new(),
        }
    }

    fn busy(&self, _ctx: &Ctx) -> bool {
        matches!(self.report, Loadable::Loading(_))
    }

    fn keys(&self, _ctx: &Ctx) -> Vec<(Intent, &'static str)> {
        vec![
            (Intent::Down, "move"),
            (Intent::Refresh, "recompute"),
            (Intent::Back, "close"),
        ]
    }

    fn about(&self) -> Vec<String> {
        metrics::HOW.lines().map(str::to_string).collect()
    }
}
