//! Board, the home screen: rows are services, columns are environments in promotion
//! order, each headed by its approval policy (`PROD · required`); each cell shows sync and health (glyph + word), the running version, and marks
//! for approval, drift, lag and running operations. Only visible rows are drawn.

use crate::model::{AppId, Environment};
use crate::ops::estate::AppEntry;
use crate::tui::keymap::Intent;
use crate::tui::theme::Role;
use crate::tui::view::{Ctx, Level, Outbox, View};
use crate::tui::widgets::{self, Marks, clean, pad};
use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

#[derive(Debug, Default)]
pub struct BoardView {
    row: usize,
    col: usize,
    /// `/` filter over services: a service shows when its name or any of its apps match
    /// (the same matching as the apps list).
    filter: String,
    typing: bool,
    /// Rows visible in the last layout (for paging); set from the area each frame.
    page: usize,
}

/// How much a cell can say at its width.
#[derive(Clone, Copy, PartialEq, Eq)]
enum CellWidth {
    Full,
    Short,
    Glyphs,
    Bare,
}

impl BoardView {
    pub fn new() -> Self {
        Self {
            page: 10,
            ..Default::default()
        }
    }

    fn envs<'a>(&self, ctx: &'a Ctx) -> Vec<&'a Environment> {
        ctx.estate.environments().collect()
    }

    /// Services shown: all, or those the filter matches.
    fn services<'a>(&self, ctx: &'a Ctx) -> Vec<&'a str> {
        let f = self.filter.trim().to_lowercase();
        ctx.estate
            .services()
            .filter(|s| {
                f.is_empty()
                    || s.to_lowercase().contains(&f)
                    || ctx.estate.environments().any(|env| {
                        ctx.estate
                            .cell(s, &env.name)
                            .any(|e| super::apps::filter_matches(&f, e))
                    })
            })
            .collect()
    }

    /// The app under the cursor.
    pub fn selected(&self, ctx: &Ctx) -> Option<AppId> {
        let service = self.services(ctx).get(self.row).copied()?;
        let env = self.envs(ctx).get(self.col).copied()?;
        ctx.estate
            .cell(service, &env.name)
            .next()
            .map(|e| e.id.clone())
    }

    fn cell_spans(ctx: &Ctx, entry: &AppEntry, extra: usize, width: usize) -> Vec<Span<'static>> {
        let theme = ctx.theme;
        let sync = entry.board.sync;
        let health = entry.board.health;
        let marks = widgets::marks_of(ctx, entry);
        let mark_spans = marks.spans(theme);
        let more = if extra > 0 {
            format!(" +{extra}")
        } else {
            String::new()
        };
        let version = widgets::version_of(entry);
        // The tag and the marks are what an operator needs most: the status words give
        // way first (words, abbreviations, glyph + abbreviation, glyphs alone), and the tag
        // keeps at least its last 7 characters behind `…` (`…be2164f`).
        let tag_need = widgets::display_width(&version).min(8);
        let fixed = mark_spans.len() + usize::from(!mark_spans.is_empty()) + more.len() + 1;
        let forms = [
            CellWidth::Full,
            CellWidth::Short,
            CellWidth::Glyphs,
            CellWidth::Bare,
        ];
        let mut spans = Vec::new();
        for kind in forms {
            spans = Self::status_spans(ctx, sync, health, kind);
            if widgets::spans_width(&spans) + fixed + tag_need <= width {
                break;
            }
        }
        let used = widgets::spans_width(&spans) + fixed;
        let room = width.saturating_sub(used);
        if room >= 1 {
            spans.push(Span::raw(" "));
            spans.push(Span::styled(
                widgets::fit_tail(&version, room),
                theme.style(Role::Text),
            ));
        }
        if !mark_spans.is_empty() {
            spans.push(Span::raw(" "));
            spans.extend(mark_spans);
        }
        if !more.is_empty() {
            spans.push(Span::styled(more, theme.style(Role::Muted)));
        }
        spans
    }

    fn status_spans(
        ctx: &Ctx,
        sync: crate::model::SyncStatus,
        health: crate::model::HealthStatus,
        kind: CellWidth,
    ) -> Vec<Span<'static>> {
        let theme = ctx.theme;
        match kind {
            // Glyph and abbreviation joined, still never colour alone.
            CellWidth::Glyphs => vec![
                Span::styled(
                    format!("{}{}", widgets::sync_glyph(sync), widgets::sync_abbr(sync)),
                    theme.style(widgets::sync_role(sync)),
                ),
                Span::raw(" "),
                Span::styled(
                    format!(
                        "{}{}",
                        widgets::health_glyph(health),
                        widgets::health_abbr(health)
                    ),
                    theme.style(widgets::health_role(health)),
                ),
            ],
            // Narrowest: the glyphs (each its own shape, never colour alone).
            CellWidth::Bare => vec![
                Span::styled(
                    widgets::sync_glyph(sync),
                    theme.style(widgets::sync_role(sync)),
                ),
                Span::styled(
                    widgets::health_glyph(health),
                    theme.style(widgets::health_role(health)),
                ),
            ],
            _ => vec![
                widgets::sync_span(theme, sync, kind == CellWidth::Short),
                Span::raw(" "),
                widgets::health_span(theme, health, kind == CellWidth::Short),
            ],
        }
    }
}

impl View for BoardView {
    fn title(&self, _ctx: &Ctx) -> String {
        "board".into()
    }

    fn render(&self, ctx: &Ctx, frame: &mut Frame, area: Rect) {
        let theme = ctx.theme;
        let envs = self.envs(ctx);
        let services = self.services(ctx);
        let n_services = services.len();
        let mut area = area;
        let mut lines: Vec<Line> = Vec::with_capacity(area.height as usize);
        if !self.filter.is_empty() || self.typing {
            let mut status = format!(
                "filter: {}{} · {n_services} of {} services",
                clean(&self.filter),
                if self.typing { "▏" } else { "" },
                ctx.estate.services().count()
            );
            if !self.typing {
                status.push_str(" · Esc clears");
            }
            frame.render_widget(
                Paragraph::new(Line::from(widgets::muted(theme, status))),
                Rect { height: 1, ..area },
            );
            area = Rect {
                y: area.y + 1,
                height: area.height.saturating_sub(1),
                ..area
            };
        }
        if n_services == 0 && !ctx.estate.is_empty() {
            let msg = format!("no service matches `{}`", clean(&self.filter));
            frame.render_widget(Paragraph::new(Line::from(widgets::muted(theme, msg))), area);
            return;
        }
        if n_services == 0 {
            let msg = if ctx.estate.connections.is_empty() {
                "Waiting for applications… (no source has answered yet)".to_string()
            } else {
                "No applications yet: see the connection state above.".to_string()
            };
            frame.render_widget(Paragraph::new(Line::from(widgets::muted(theme, msg))), area);
            return;
        }
        let width = area.width as usize;
        let svc_w = (width / 5).clamp(12, 28);
        let n = envs.len().max(1);
        let cell_w = (width.saturating_sub(svc_w)) / n;
        let mut head = vec![Span::styled(
            pad("SERVICE", svc_w),
            theme.style(Role::Muted),
        )];
        for (i, env) in envs.iter().enumerate() {
            let style = if i == self.col {
                theme.style(Role::Accent)
            } else {
                theme.style(Role::Muted)
            };
            // The environment with its policy, so a gated column says so before `s`.
            let policy = ctx.policies.for_env(env).label();
            head.push(Span::styled(
                pad(
                    &format!("{} · {policy}", clean(&env.name).to_uppercase()),
                    cell_w,
                ),
                style,
            ));
        }
        lines.push(Line::from(head));
        let body_h = (area.height as usize).saturating_sub(1);
        let offset = widgets::scroll_offset(self.row, body_h, n_services);
        for (i, service) in services
            .iter()
            .copied()
            .enumerate()
            .skip(offset)
            .take(body_h)
        {
            let selected_row = i == self.row;
            let svc_style = if selected_row {
                theme.style(Role::Accent)
            } else {
                theme.style(Role::Text)
            };
            let mut spans = vec![Span::styled(pad(&clean(service), svc_w), svc_style)];
            for (c, env) in envs.iter().enumerate() {
                let mut cell = ctx.estate.cell(service, &env.name);
                let first = cell.next();
                let extra = cell.count();
                let inner = cell_w.saturating_sub(1);
                let mut cell_spans = match first {
                    Some(entry) => Self::cell_spans(ctx, entry, extra, inner),
                    None => vec![Span::styled("·", theme.style(Role::Muted))],
                };
                let used = widgets::spans_width(&cell_spans);
                cell_spans.push(Span::raw(" ".repeat(cell_w.saturating_sub(used))));
                if selected_row && c == self.col {
                    for s in cell_spans.iter_mut() {
                        s.style = theme.selected(s.style);
                    }
                }
                spans.extend(cell_spans);
            }
            lines.push(Line::from(spans));
        }
        frame.render_widget(Paragraph::new(lines).style(widgets::base(theme)), area);
    }

    fn typing(&self) -> bool {
        self.typing
    }

    fn selected_app(&self, ctx: &Ctx) -> Option<AppId> {
        self.selected(ctx)
    }

    fn on_key(&mut self, key: &KeyEvent, ctx: &Ctx, _out: &mut Outbox) -> bool {
        // Esc clears a filter that is set (the board is home: Back does nothing else here).
        if !self.typing && !self.filter.is_empty() && key.code == KeyCode::Esc {
            self.filter.clear();
            return true;
        }
        if !self.typing {
            return false;
        }
        match key.code {
            KeyCode::Esc => {
                self.typing = false;
                self.filter.clear();
            }
            KeyCode::Enter => self.typing = false,
            KeyCode::Backspace => {
                self.filter.pop();
            }
            KeyCode::Char(c) if !c.is_control() => self.filter.push(c),
            _ => {}
        }
        self.row = self.row.min(self.services(ctx).len().saturating_sub(1));
        true
    }

    fn on_intent(&mut self, intent: Intent, ctx: &Ctx, out: &mut Outbox) {
        let rows = self.services(ctx).len();
        let cols = ctx.estate.environments().count();
        let last_row = rows.saturating_sub(1);
        match intent {
            Intent::Up => self.row = self.row.saturating_sub(1),
            Intent::Down => self.row = (self.row + 1).min(last_row),
            Intent::Left => self.col = self.col.saturating_sub(1),
            Intent::Right => self.col = (self.col + 1).min(cols.saturating_sub(1)),
            Intent::Top => self.row = 0,
            Intent::Bottom => self.row = last_row,
            Intent::PageUp => self.row = self.row.saturating_sub(self.page),
            Intent::PageDown => self.row = (self.row + self.page).min(last_row),
            Intent::NextSection => self.col = if cols == 0 { 0 } else { (self.col + 1) % cols },
            Intent::Filter => self.typing = true,
            Intent::Refresh => out
                .effects
                .push(crate::tui::view::Effect::Command("refresh".into())),
            Intent::Promote => {
                let services = self.services(ctx);
                let env = ctx
                    .estate
                    .environments()
                    .nth(self.col)
                    .map(|e| e.name.clone());
                match (services.get(self.row), env) {
                    (Some(s), Some(e)) if !ctx.read_only => {
                        out.push(Box::new(super::promote::PromoteView::new(s, &e)))
                    }
                    (Some(_), Some(_)) => {
                        out.flash(Level::Warning, "read-only mode: promotion is disabled")
                    }
                    _ => out.flash(Level::Info, "no cell here"),
                }
            }
            Intent::Back if !self.filter.is_empty() => {
                self.filter.clear();
                self.row = 0;
            }
            _ => {
                let id = self.selected(ctx);
                super::app_intent(intent, id.as_ref(), ctx, out);
            }
        }
    }

    fn on_estate(&mut self, ctx: &Ctx, _out: &mut Outbox) {
        let rows = self.services(ctx).len();
        let cols = ctx.estate.environments().count();
        self.row = self.row.min(rows.saturating_sub(1));
        self.col = self.col.min(cols.saturating_sub(1));
    }

    fn keys(&self, ctx: &Ctx) -> Vec<(Intent, &'static str)> {
        let mut v = vec![
            (Intent::Open, "open"),
            (Intent::Diff, "diff"),
            (Intent::Rollout, "rollout"),
            (Intent::Rollback, "history"),
        ];
        if !ctx.read_only {
            v.insert(0, (Intent::Sync, "sync/approve"));
            v.push((Intent::Build, "build"));
            v.push((Intent::Promote, "promote"));
        }
        v.extend([
            (Intent::Left, "env"),
            (Intent::Filter, "filter services"),
            (Intent::Events, "events"),
            (Intent::Builds, "builds"),
            (Intent::Refresh, "refresh"),
            (Intent::Palette, "command"),
            (Intent::Quit, "quit"),
        ]);
        v
    }
}

/// Where a service's cell sits, for tests and the palette (`:app NAME`).
pub fn locate(ctx: &Ctx, id: &AppId) -> Option<(usize, usize)> {
    let entry = ctx.estate.get(id)?;
    let row = ctx.estate.services().position(|s| s == entry.service)?;
    let col = ctx
        .estate
        .environments()
        .position(|e| *e == entry.environment)?;
    Some((row, col))
}

impl BoardView {
    /// Put the cursor on an app's cell.
    pub fn select(&mut self, ctx: &Ctx, id: &AppId) {
        if let Some((_, c)) = locate(ctx, id)
            && let Some(entry) = ctx.estate.get(id)
        {
            if !self.services(ctx).contains(&entry.service.as_str()) {
                self.filter.clear();
            }
            if let Some(r) = self.services(ctx).iter().position(|s| *s == entry.service) {
                self.row = r;
                self.col = c;
            }
        }
    }

    pub fn legend() -> &'static [(&'static str, &'static str)] {
        Marks::LEGEND
    }
}
