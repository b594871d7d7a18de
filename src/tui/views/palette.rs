//! The command palette (`:`): a one-line prompt with completion (`Tab`) over the commands
//! below, environment names and theme names. `Enter` hands the command to the console.

use crate::tui::keymap::Intent;
use crate::tui::theme::Role;
use crate::tui::view::{Ctx, Effect, Outbox, View};
use crate::tui::widgets;
use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph};

pub const COMMANDS: &[(&str, &str)] = &[
    ("board", "the board (home)"),
    ("apps", "all applications"),
    (
        "pending",
        "applications waiting for approval (four-eyes requests first)",
    ),
    ("requests", "four-eyes requests waiting for you"),
    ("builds", "pipelines and runs"),
    (
        "metrics SPAN",
        "delivery metrics over the last SPAN (30d, 2w; default 30d)",
    ),
    ("ctx", "contexts and their connection state"),
    ("env NAME", "applications of one environment"),
    ("theme NAME", "switch colour theme"),
    (
        "refresh",
        "ask Argo CD to re-read Git for the app under the cursor",
    ),
    ("refresh!", "hard refresh of it (re-render manifests)"),
    ("refresh all", "refresh every application"),
    ("warnings", "every config, theme and key warning"),
    (
        "freeze ENV REASON",
        "incident freeze: Argo CD refuses ENV's syncs (until=2h first for an end)",
    ),
    (
        "confirm-prune APP REASON",
        "confirm the prunes APP's sync waits for (Prune=confirm)",
    ),
    (
        "unfreeze ENV REASON",
        "lift shipdeck's freeze of ENV (the name typed is the confirmation)",
    ),
    ("q", "quit"),
];

pub struct PaletteView {
    input: String,
    /// Where the palette was opened, shown faintly behind it.
    below: String,
}

impl PaletteView {
    pub fn new(below: String) -> Self {
        PaletteView {
            input: String::new(),
            below,
        }
    }

    /// Every completion of the current input.
    pub fn completions(&self, ctx: &Ctx) -> Vec<String> {
        let mut all: Vec<String> = COMMANDS
            .iter()
            .map(|(c, _)| match c.split_once(' ') {
                // A command that takes an argument completes with its space.
                Some((head, _)) => format!("{head} "),
                None => c.to_string(),
            })
            .collect();
        all.extend(ctx.estate.environments().map(|e| format!("env {}", e.name)));
        all.extend(crate::tui::theme::built_in_names().map(|t| format!("theme {t}")));
        all.into_iter()
            .filter(|c| c.starts_with(self.input.as_str()) && *c != self.input)
            .collect()
    }
}

impl View for PaletteView {
    fn title(&self, _ctx: &Ctx) -> String {
        format!("{} :", self.below)
    }

    fn typing(&self) -> bool {
        true
    }

    fn overlay(&self) -> bool {
        true
    }

    fn render(&self, ctx: &Ctx, frame: &mut Frame, area: Rect) {
        let theme = ctx.theme;
        let comps = self.completions(ctx);
        let h = (comps.len().min(8) as u16 + 3).min(area.height);
        let popup = Rect {
            x: area.x,
            y: area.y + area.height.saturating_sub(h),
            width: area.width,
            height: h,
        };
        frame.render_widget(Clear, popup);
        let mut lines = vec![Line::from(vec![
            Span::styled(":", theme.style(Role::Accent)),
            Span::styled(
                format!("{}▏", widgets::clean(&self.input)),
                theme.style(Role::Text),
            ),
        ])];
        for c in comps.iter().take(8) {
            lines.push(Line::from(widgets::muted(theme, format!("  {c}"))));
        }
        frame.render_widget(
            Paragraph::new(lines).block(widgets::block(theme, "command · Tab completes")),
            popup,
        );
    }

    fn on_key(&mut self, key: &KeyEvent, ctx: &Ctx, out: &mut Outbox) -> bool {
        match key.code {
            KeyCode::Esc => out.pop(),
            KeyCode::Enter => {
                out.pop();
                out.effects
                    .push(Effect::Command(self.input.trim().to_string()));
            }
            KeyCode::Tab => {
                let comps = self.completions(ctx);
                if let Some(first) = comps.first() {
                    // Complete the longest common prefix; one candidate completes fully.
                    let mut prefix = first.clone();
                    for c in &comps[1..] {
                        while !c.starts_with(&prefix) {
                            prefix.pop();
                        }
                    }
                    if prefix.len() > self.input.len() {
                        self.input = prefix;
                    } else if comps.len() == 1 {
                        self.input = first.clone();
                    }
                }
            }
            KeyCode::Backspace if self.input.pop().is_none() => out.pop(),
            KeyCode::Backspace => {}
            _ => {
                crate::tui::input::edit_line(&mut self.input, key);
            }
        }
        true
    }

    fn on_intent(&mut self, _intent: Intent, _ctx: &Ctx, _out: &mut Outbox) {}

    fn typing_keys(&self, _ctx: &Ctx) -> Vec<(&'static str, &'static str)> {
        vec![
            ("Enter", "run"),
            ("Tab", "complete"),
            ("Ctrl-U", "clear"),
            ("Esc", "cancel"),
        ]
    }

    fn keys(&self, _ctx: &Ctx) -> Vec<(Intent, &'static str)> {
        vec![(Intent::Back, "cancel")]
    }
}
