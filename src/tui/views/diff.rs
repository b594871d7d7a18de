//! Diff: what a sync would change, per resource with a one-line meaning, then the unified
//! diff of the chosen resource with YAML colouring and folded unchanged regions. `Tab`/`←→`
//! move between resources, `n`/`N` between hunks; only the visible lines are drawn.

use crate::model::AppId;
use crate::ops::diff::{AppDiff, Change, DiffLine, LineKind, ResourceDiff};
use crate::tui::keymap::Intent;
use crate::tui::request::{Payload, Request, Response, Ticket};
use crate::tui::theme::{Role, Theme};
use crate::tui::view::{Ctx, Loadable, Outbox, View};
use crate::tui::widgets::{self, clean, fit};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

pub struct DiffView {
    id: AppId,
    /// None: target vs live. Some(n): live vs history entry n (what a rollback would do).
    history: Option<i64>,
    diffs: Loadable<AppDiff>,
    resource: usize,
    scroll: usize,
}

impl DiffView {
    pub fn new(id: AppId) -> Self {
        DiffView {
            id,
            history: None,
            diffs: Loadable::Idle,
            resource: 0,
            scroll: 0,
        }
    }

    pub fn to_history(id: AppId, entry: i64) -> Self {
        DiffView {
            history: Some(entry),
            ..DiffView::new(id)
        }
    }

    /// A view already holding its diffs (tests, the approval screen's "full diff").
    pub fn ready(id: AppId, diffs: AppDiff) -> Self {
        DiffView {
            diffs: Loadable::Ready(diffs),
            ..DiffView::new(id)
        }
    }

    fn load(&mut self, out: &mut Outbox) {
        let req = match self.history {
            None => Request::Diff {
                app: self.id.clone(),
            },
            Some(id) => Request::DiffToHistory {
                app: self.id.clone(),
                id,
            },
        };
        self.diffs = Loadable::Loading(out.request(req));
    }

    /// The resources in list order: changed ones first.
    fn list(&self) -> Vec<&ResourceDiff> {
        self.diffs
            .ready()
            .map(AppDiff::changed_first)
            .unwrap_or_default()
    }

    fn current(&self) -> Option<&ResourceDiff> {
        self.list().get(self.resource).copied()
    }

    fn jump_hunk(&mut self, forward: bool) {
        let Some(d) = self.current() else { return };
        let hunks: Vec<usize> = d
            .lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.kind == LineKind::Hunk)
            .map(|(i, _)| i)
            .collect();
        let next = if forward {
            hunks.iter().find(|i| **i > self.scroll).copied()
        } else {
            hunks.iter().rev().find(|i| **i < self.scroll).copied()
        };
        if let Some(i) = next {
            self.scroll = i;
        }
    }

    fn move_resource(&mut self, delta: isize) {
        let n = self.diffs.ready().map_or(0, |d| d.resources.len());
        if n == 0 {
            return;
        }
        self.resource = (self.resource as isize + delta).rem_euclid(n as isize) as usize;
        self.scroll = 0;
    }
}

/// One line per resource: `~ Deployment/api  image api sha-1 -> sha-2`; the mark follows
/// the change the engine found (`+` create, `-` prune, `~` modify, `=` unchanged).
pub fn summary_lines(
    theme: &Theme,
    diffs: &[&ResourceDiff],
    selected: Option<usize>,
    width: usize,
) -> Vec<Line<'static>> {
    diffs
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let (mark, role) = match d.change {
                Change::Unchanged => ("=", Role::Muted),
                Change::Create => ("+", Role::DiffAdd),
                Change::Prune => ("-", Role::DiffRemove),
                Change::Modify => ("~", Role::OutOfSync),
            };
            let name = format!("{}/{}", clean(&d.key.kind), clean(&d.key.name));
            let name_w = (width / 3).clamp(12, 40);
            let mut spans = vec![
                Span::styled(format!("{mark} "), theme.style(role)),
                Span::styled(widgets::pad(&name, name_w), theme.style(Role::Text)),
                Span::raw(" "),
                Span::styled(
                    widgets::fit_change(&clean(&d.meaning()), width.saturating_sub(name_w + 3)),
                    theme.style(if d.changed() { Role::Text } else { Role::Muted }),
                ),
            ];
            if selected == Some(i) {
                for s in spans.iter_mut() {
                    s.style = theme.selected(s.style);
                }
            }
            Line::from(spans)
        })
        .collect()
}

/// A diff line with YAML colouring: the key in the accent colour on context lines, the
/// whole line in the add/remove colour on changed lines.
pub fn diff_line(theme: &Theme, l: &DiffLine, width: usize) -> Line<'static> {
    let text = clean(&l.text);
    match l.kind {
        LineKind::Hunk => Line::from(Span::styled(fit(&text, width), theme.style(Role::Accent))),
        LineKind::Folded => Line::from(Span::styled(fit(&text, width), theme.style(Role::Muted))),
        LineKind::Added => Line::from(Span::styled(
            fit(&format!("+{text}"), width),
            theme.style(Role::DiffAdd),
        )),
        LineKind::Removed => Line::from(Span::styled(
            fit(&format!("-{text}"), width),
            theme.style(Role::DiffRemove),
        )),
        LineKind::Context => {
            let text = fit(&format!(" {text}"), width);
            match text
                .find(": ")
                .or_else(|| text.strip_suffix(':').map(|s| s.len()))
            {
                Some(i) => Line::from(vec![
                    Span::styled(text[..i].to_string(), theme.style(Role::Accent)),
                    Span::styled(text[i..].to_string(), theme.style(Role::Text)),
                ]),
                None => Line::from(Span::styled(text, theme.style(Role::Text))),
            }
        }
    }
}

impl View for DiffView {
    fn title(&self, _ctx: &Ctx) -> String {
        match self.history {
            None => format!("diff {}", clean(&self.id.name)),
            Some(h) => format!("diff {} ↔ #{h}", clean(&self.id.name)),
        }
    }

    fn open(&mut self, _ctx: &Ctx, out: &mut Outbox) {
        if matches!(self.diffs, Loadable::Idle) {
            self.load(out);
        }
    }

    fn render(&self, ctx: &Ctx, frame: &mut Frame, area: Rect) {
        let theme = ctx.theme;
        let diffs = match &self.diffs {
            Loadable::Ready(d) => d.changed_first(),
            Loadable::Idle | Loadable::Loading(_) => {
                frame.render_widget(
                    Paragraph::new(widgets::muted(
                        theme,
                        format!("{} computing diff…", ctx.spinner()),
                    )),
                    area,
                );
                return;
            }
            Loadable::Failed(e) => {
                frame.render_widget(
                    Paragraph::new(vec![
                        Line::from(widgets::styled(
                            theme,
                            Role::Danger,
                            format!("diff failed: {}", clean(e)),
                        )),
                        Line::from(widgets::muted(theme, "Ctrl-r to try again")),
                    ]),
                    area,
                );
                return;
            }
        };
        if diffs.is_empty() {
            frame.render_widget(
                Paragraph::new(widgets::muted(theme, "no managed resources")),
                area,
            );
            return;
        }
        let changed = diffs.iter().filter(|d| d.changed()).count();
        let wide = area.width >= 120;
        let (list_area, diff_area) = if wide {
            let [l, r] =
                Layout::horizontal([Constraint::Length(area.width * 2 / 5), Constraint::Min(20)])
                    .areas(area);
            (l, r)
        } else {
            let h = (diffs.len() as u16 + 2).min(area.height / 3).max(3);
            let [t, b] = Layout::vertical([Constraint::Length(h), Constraint::Min(3)]).areas(area);
            (t, b)
        };
        let list_h = list_area.height.saturating_sub(2) as usize;
        let list_off = widgets::scroll_offset(self.resource, list_h, diffs.len());
        let lines: Vec<Line> = summary_lines(
            theme,
            &diffs,
            Some(self.resource),
            list_area.width.saturating_sub(2) as usize,
        )
        .into_iter()
        .skip(list_off)
        .take(list_h)
        .collect();
        frame.render_widget(
            Paragraph::new(lines).block(widgets::block(
                theme,
                format!("{changed} of {} resources differ", diffs.len()),
            )),
            list_area,
        );
        let Some(d) = diffs.get(self.resource) else {
            return;
        };
        let h = diff_area.height.saturating_sub(2) as usize;
        let w = diff_area.width.saturating_sub(2) as usize;
        let body: Vec<Line> = if d.lines.is_empty() {
            vec![Line::from(widgets::muted(theme, "no difference"))]
        } else {
            d.lines
                .iter()
                .skip(self.scroll.min(d.lines.len().saturating_sub(1)))
                .take(h)
                .map(|l| diff_line(theme, l, w))
                .collect()
        };
        let title = format!(
            "{} {}/{} ({}/{})",
            clean(&d.key.namespace),
            clean(&d.key.kind),
            clean(&d.key.name),
            self.resource + 1,
            diffs.len()
        );
        frame.render_widget(
            Paragraph::new(body).block(widgets::block(theme, title)),
            diff_area,
        );
    }

    fn on_intent(&mut self, intent: Intent, _ctx: &Ctx, out: &mut Outbox) {
        let len = self.current().map_or(0, |d| d.lines.len());
        match intent {
            Intent::Up => self.scroll = self.scroll.saturating_sub(1),
            Intent::Down => self.scroll = (self.scroll + 1).min(len.saturating_sub(1)),
            Intent::PageUp => self.scroll = self.scroll.saturating_sub(20),
            Intent::PageDown => self.scroll = (self.scroll + 20).min(len.saturating_sub(1)),
            Intent::Top => self.scroll = 0,
            Intent::Bottom => self.scroll = len.saturating_sub(1),
            Intent::NextMatch => self.jump_hunk(true),
            Intent::PrevMatch => self.jump_hunk(false),
            Intent::NextSection | Intent::Right => self.move_resource(1),
            Intent::Left => self.move_resource(-1),
            Intent::Refresh => self.load(out),
            Intent::Back => out.pop(),
            _ => {}
        }
    }

    fn on_response(&mut self, resp: &Response, _ctx: &Ctx, _out: &mut Outbox) -> bool {
        if self.diffs.ticket() != Some(resp.ticket) {
            return false;
        }
        let r = resp.result.clone().and_then(|p| match p {
            Payload::Diff(d) => Ok(d),
            _ => Err("unexpected answer".into()),
        });
        self.resource = 0;
        self.scroll = 0;
        self.diffs.accept(resp.ticket, r)
    }

    fn tickets(&self) -> Vec<Ticket> {
        self.diffs.ticket().into_iter().collect()
    }

    fn busy(&self, _ctx: &Ctx) -> bool {
        self.diffs.is_loading()
    }

    fn keys(&self, _ctx: &Ctx) -> Vec<(Intent, &'static str)> {
        vec![
            (Intent::NextSection, "next resource"),
            (Intent::Left, "prev resource"),
            (Intent::NextMatch, "next hunk"),
            (Intent::PrevMatch, "prev hunk"),
            (Intent::Down, "scroll"),
            (Intent::PageDown, "page"),
            (Intent::Refresh, "reload"),
            (Intent::Back, "back"),
        ]
    }
}
