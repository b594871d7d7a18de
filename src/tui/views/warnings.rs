//! `:warnings`: every warning from the config file, the theme and the keymap, one per
//! line with its file:line (the start flash shows only the first and the count).

use crate::tui::keymap::Intent;
use crate::tui::theme::Role;
use crate::tui::view::{Ctx, Outbox, View};
use crate::tui::widgets;
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Wrap};

pub struct WarningsView {
    warnings: Vec<String>,
    scroll: usize,
}

impl WarningsView {
    pub fn new(warnings: Vec<String>) -> Self {
        WarningsView {
            warnings,
            scroll: 0,
        }
    }
}

impl View for WarningsView {
    fn title(&self, _ctx: &Ctx) -> String {
        "warnings".into()
    }

    fn render(&self, ctx: &Ctx, frame: &mut Frame, area: Rect) {
        let theme = ctx.theme;
        let lines: Vec<Line> = if self.warnings.is_empty() {
            vec![Line::from(widgets::muted(
                theme,
                "No warnings: config, theme and keys loaded cleanly.".to_string(),
            ))]
        } else {
            self.warnings
                .iter()
                .skip(self.scroll)
                .map(|w| {
                    Line::from(vec![
                        widgets::styled(theme, Role::Warning, "! ".to_string()),
                        widgets::text(theme, widgets::clean(w)),
                    ])
                })
                .collect()
        };
        let title = format!("{} warnings", self.warnings.len());
        frame.render_widget(
            Paragraph::new(lines)
                .wrap(Wrap { trim: false })
                .block(widgets::block(theme, &title)),
            area,
        );
    }

    fn on_intent(&mut self, intent: Intent, _ctx: &Ctx, out: &mut Outbox) {
        let last = self.warnings.len().saturating_sub(1);
        match intent {
            Intent::Down => self.scroll = (self.scroll + 1).min(last),
            Intent::Up => self.scroll = self.scroll.saturating_sub(1),
            Intent::Top => self.scroll = 0,
            Intent::Bottom => self.scroll = last,
            Intent::PageDown => self.scroll = (self.scroll + 10).min(last),
            Intent::PageUp => self.scroll = self.scroll.saturating_sub(10),
            Intent::Back | Intent::Quit => out.pop(),
            _ => {}
        }
    }

    fn keys(&self, _ctx: &Ctx) -> Vec<(Intent, &'static str)> {
        vec![(Intent::Down, "scroll"), (Intent::Back, "close")]
    }
}
