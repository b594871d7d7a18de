//! Help: every binding of the screen it was opened from, the marks legend, and the
//! palette commands. Built from the keymap, so rebound keys show as rebound.

use crate::tui::keymap::Intent;
use crate::tui::theme::Role;
use crate::tui::view::{Ctx, Outbox, View};
use crate::tui::widgets::{self, Marks, pad};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use std::cell::Cell;

pub struct HelpView {
    screen: String,
    bindings: Vec<(Intent, &'static str)>,
    /// What the screen says about itself (`View::about`), e.g. how its figures are computed.
    about: Vec<String>,
    scroll: usize,
    /// The last scroll that still fills the window, as the last frame measured it (help
    /// never scrolls past its end).
    max_scroll: Cell<usize>,
}

impl HelpView {
    pub fn new(screen: String, bindings: Vec<(Intent, &'static str)>) -> Self {
        HelpView {
            screen,
            bindings,
            about: Vec::new(),
            scroll: 0,
            max_scroll: Cell::new(usize::MAX),
        }
    }

    /// With the screen's own words (shown after its keys, wrapped).
    pub fn with_about(mut self, about: Vec<String>) -> Self {
        self.about = about;
        self
    }
}

/// Word-wrap `s` at `width` columns.
fn wrap(s: &str, width: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut line = String::new();
    for word in s.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
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

const ALWAYS: &[(Intent, &str)] = &[
    (Intent::Up, "move up"),
    (Intent::Down, "move down"),
    (Intent::Top, "top"),
    (Intent::Bottom, "bottom"),
    (Intent::PageUp, "page up"),
    (Intent::PageDown, "page down"),
    (Intent::Back, "back"),
    (Intent::Palette, "command palette"),
    (Intent::Help, "this help"),
    (Intent::Refresh, "refresh"),
];

impl View for HelpView {
    fn title(&self, _ctx: &Ctx) -> String {
        format!("help · {}", self.screen)
    }

    fn render(&self, ctx: &Ctx, frame: &mut Frame, area: Rect) {
        let theme = ctx.theme;
        let lines = self.lines(ctx);
        let height = area.height.saturating_sub(2) as usize;
        let max = lines.len().saturating_sub(height);
        self.max_scroll.set(max);
        let visible: Vec<Line> = lines.into_iter().skip(self.scroll.min(max)).collect();
        frame.render_widget(
            Paragraph::new(visible).block(widgets::block(theme, "help")),
            area,
        );
    }

    fn on_intent(&mut self, intent: Intent, _ctx: &Ctx, out: &mut Outbox) {
        let max = self.max_scroll.get();
        let at = self.scroll.min(max);
        self.scroll = match intent {
            Intent::Down => (at + 1).min(max),
            Intent::Up => at.saturating_sub(1),
            Intent::Top => 0,
            Intent::Bottom => max,
            Intent::PageDown => at.saturating_add(10).min(max),
            Intent::PageUp => at.saturating_sub(10),
            Intent::Back | Intent::Help | Intent::Quit => {
                out.pop();
                at
            }
            _ => at,
        };
    }

    fn keys(&self, _ctx: &Ctx) -> Vec<(Intent, &'static str)> {
        vec![(Intent::Down, "scroll"), (Intent::Back, "close")]
    }
}

impl HelpView {
    fn lines(&self, ctx: &Ctx) -> Vec<Line<'static>> {
        let theme = ctx.theme;
        let mut lines = vec![Line::from(Span::styled(
            format!("Keys on {}", self.screen),
            theme.style(Role::Accent),
        ))];
        let mut seen = Vec::new();
        // Left and Right come as a pair: a screen that moves with one moves with both.
        let mut bindings: Vec<(Intent, &str)> = Vec::new();
        for (intent, what) in &self.bindings {
            bindings.push((*intent, what));
            let pair = match intent {
                Intent::Left => Some(Intent::Right),
                Intent::Right => Some(Intent::Left),
                _ => None,
            };
            if let Some(p) = pair
                && !self.bindings.iter().any(|(i, _)| *i == p)
            {
                bindings.push((p, p.describe()));
            }
        }
        for (intent, what) in bindings.iter().chain(ALWAYS.iter()) {
            if seen.contains(intent) {
                continue;
            }
            seen.push(*intent);
            let keys = ctx.keymap.keys_for(*intent).join(" ");
            lines.push(Line::from(vec![
                widgets::styled(theme, Role::Accent, format!("  {}", pad(&keys, 18))),
                widgets::text(theme, (*what).to_string()),
            ]));
        }
        if !self.about.is_empty() {
            lines.push(Line::default());
            lines.push(Line::from(Span::styled(
                "How this screen's figures are computed",
                theme.style(Role::Accent),
            )));
            for paragraph in &self.about {
                for (i, l) in wrap(paragraph, 88).into_iter().enumerate() {
                    let indent = if i == 0 { "  " } else { "    " };
                    lines.push(Line::from(widgets::text(
                        theme,
                        format!("{indent}{}", widgets::clean(&l)),
                    )));
                }
            }
        }
        let unbound = ctx.keymap.unbound();
        if !unbound.is_empty() {
            lines.push(Line::default());
            lines.push(Line::from(Span::styled(
                "Not bound to any key (see :warnings)",
                theme.style(Role::Warning),
            )));
            for intent in unbound {
                lines.push(Line::from(vec![
                    widgets::styled(theme, Role::Warning, format!("  {}", pad("-", 18))),
                    widgets::text(theme, intent.describe().to_string()),
                ]));
            }
        }
        lines.push(Line::default());
        lines.push(Line::from(Span::styled(
            "Status",
            theme.style(Role::Accent),
        )));
        lines.push(Line::from(vec![
            Span::raw("  "),
            widgets::sync_span(theme, crate::model::SyncStatus::Synced, false),
            Span::raw("  "),
            widgets::sync_span(theme, crate::model::SyncStatus::OutOfSync, false),
            Span::raw("  "),
            widgets::health_span(theme, crate::model::HealthStatus::Healthy, false),
            Span::raw("  "),
            widgets::health_span(theme, crate::model::HealthStatus::Progressing, false),
            Span::raw("  "),
            widgets::health_span(theme, crate::model::HealthStatus::Degraded, false),
            Span::raw("  "),
            widgets::health_span(theme, crate::model::HealthStatus::Missing, false),
            Span::raw("  "),
            widgets::health_span(theme, crate::model::HealthStatus::Suspended, false),
        ]));
        for (glyph, meaning) in Marks::LEGEND {
            lines.push(Line::from(vec![
                widgets::styled(theme, Role::Warning, format!("  {glyph}  ")),
                widgets::text(theme, (*meaning).to_string()),
            ]));
        }
        lines.push(Line::default());
        lines.push(Line::from(Span::styled(
            "Commands (:)",
            theme.style(Role::Accent),
        )));
        for (cmd, what) in super::palette::COMMANDS {
            lines.push(Line::from(vec![
                widgets::styled(theme, Role::Accent, format!("  {}", pad(cmd, 18))),
                widgets::text(theme, (*what).to_string()),
            ]));
        }
        lines
    }
}
