//! Logs of one pod: sanitized lines in a bounded buffer (the oldest fall off), following
//! the end unless the operator scrolls up; `G` resumes following.

use crate::model::AppId;
use crate::tui::keymap::Intent;
use crate::tui::request::{Payload, Request, Response, Ticket};
use crate::tui::theme::Role;
use crate::tui::view::{Ctx, Outbox, View};
use crate::tui::widgets::{self, clean, fit};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::Paragraph;
use std::collections::VecDeque;

/// How many lines a log view keeps.
pub const LOG_BUFFER: usize = 5_000;

pub struct LogsView {
    app: AppId,
    namespace: String,
    pod: String,
    lines: VecDeque<String>,
    /// Lines from the bottom; 0 follows the end.
    back: usize,
    ticket: Option<Ticket>,
    error: Option<String>,
}

impl LogsView {
    pub fn new(app: AppId, namespace: String, pod: String) -> Self {
        LogsView {
            app,
            namespace,
            pod,
            lines: VecDeque::new(),
            back: 0,
            ticket: None,
            error: None,
        }
    }

    /// Append lines, sanitized, dropping the oldest beyond the buffer.
    pub fn push_lines(&mut self, lines: impl IntoIterator<Item = String>) {
        for l in lines {
            for part in l.split('\n') {
                self.lines
                    .push_back(clean(part.trim_end_matches('\r')).into_owned());
            }
        }
        while self.lines.len() > LOG_BUFFER {
            self.lines.pop_front();
        }
    }

    fn load(&mut self, out: &mut Outbox) {
        self.lines.clear();
        self.ticket = Some(out.request(Request::Logs {
            app: self.app.clone(),
            namespace: self.namespace.clone(),
            pod: self.pod.clone(),
            follow: true,
        }));
    }
}

impl View for LogsView {
    fn title(&self, _ctx: &Ctx) -> String {
        format!("logs {}", clean(&self.pod))
    }

    fn open(&mut self, _ctx: &Ctx, out: &mut Outbox) {
        self.load(out);
    }

    fn render(&self, ctx: &Ctx, frame: &mut Frame, area: Rect) {
        let theme = ctx.theme;
        let h = area.height.saturating_sub(2) as usize;
        let w = area.width.saturating_sub(2) as usize;
        let mut out: Vec<Line> = Vec::with_capacity(h);
        if let Some(e) = &self.error {
            out.push(Line::from(widgets::styled(
                theme,
                Role::Danger,
                format!("logs: {}", clean(e)),
            )));
        } else if self.lines.is_empty() {
            out.push(Line::from(widgets::muted(
                theme,
                if self.ticket.is_some() {
                    "waiting for log lines…"
                } else {
                    "no lines"
                },
            )));
        }
        let end = self.lines.len().saturating_sub(self.back);
        let start = end.saturating_sub(h.saturating_sub(out.len()));
        for l in self.lines.range(start..end) {
            out.push(Line::from(widgets::text(theme, fit(l, w))));
        }
        let follow = if self.back == 0 {
            "following"
        } else {
            "paused (G to follow)"
        };
        frame.render_widget(
            Paragraph::new(out).block(widgets::block(
                theme,
                format!(
                    "{}/{} · {} lines · {follow}",
                    clean(&self.namespace),
                    clean(&self.pod),
                    self.lines.len()
                ),
            )),
            area,
        );
    }

    fn on_intent(&mut self, intent: Intent, _ctx: &Ctx, out: &mut Outbox) {
        let max = self.lines.len().saturating_sub(1);
        match intent {
            Intent::Up => self.back = (self.back + 1).min(max),
            Intent::Down => self.back = self.back.saturating_sub(1),
            Intent::PageUp => self.back = (self.back + 20).min(max),
            Intent::PageDown => self.back = self.back.saturating_sub(20),
            Intent::Top => self.back = max,
            Intent::Bottom => self.back = 0,
            Intent::Refresh => self.load(out),
            Intent::Back => out.pop(),
            _ => {}
        }
    }

    fn on_response(&mut self, resp: &Response, _ctx: &Ctx, _out: &mut Outbox) -> bool {
        if self.ticket != Some(resp.ticket) {
            return false;
        }
        match &resp.result {
            Ok(Payload::LogLines(l)) => {
                let added = l.len();
                self.push_lines(l.iter().cloned());
                if self.back > 0 {
                    self.back += added;
                }
            }
            Ok(_) => {}
            Err(e) => self.error = Some(e.clone()),
        }
        true
    }

    fn tickets(&self) -> Vec<Ticket> {
        self.ticket.into_iter().collect()
    }

    fn keys(&self, _ctx: &Ctx) -> Vec<(Intent, &'static str)> {
        vec![
            (Intent::Up, "scroll up"),
            (Intent::Bottom, "follow"),
            (Intent::Refresh, "reload"),
            (Intent::Back, "back"),
        ]
    }
}
