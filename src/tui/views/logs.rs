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
/// How many bytes of lines a log view keeps, however long it follows.
pub const LOG_BYTES: usize = 2 * 1024 * 1024;
/// The longest line kept (the rest is cut and marked).
pub const LINE_BYTES: usize = 4 * 1024;

pub struct LogsView {
    app: AppId,
    namespace: String,
    pod: String,
    lines: VecDeque<String>,
    /// Bytes held in `lines`.
    bytes: usize,
    /// The source answered at least once (an empty answer: the pod wrote nothing yet).
    answered: bool,
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
            bytes: 0,
            answered: false,
            back: 0,
            ticket: None,
            error: None,
        }
    }

    /// Append lines, sanitized and cut to [`LINE_BYTES`], dropping the oldest beyond
    /// [`LOG_BUFFER`] lines or [`LOG_BYTES`] bytes.
    pub fn push_lines(&mut self, lines: impl IntoIterator<Item = String>) {
        for l in lines {
            for part in l.split('\n') {
                let mut line = clean(part.trim_end_matches('\r')).into_owned();
                if line.len() > LINE_BYTES {
                    let mut end = LINE_BYTES;
                    while !line.is_char_boundary(end) {
                        end -= 1;
                    }
                    line.truncate(end);
                    line.push_str(" …[cut]");
                }
                self.bytes += line.len();
                self.lines.push_back(line);
                while self.lines.len() > LOG_BUFFER || self.bytes > LOG_BYTES {
                    match self.lines.pop_front() {
                        Some(old) => self.bytes -= old.len(),
                        None => break,
                    }
                }
            }
        }
    }

    /// Lines and bytes held (for the bounds' tests).
    pub fn held(&self) -> (usize, usize) {
        (self.lines.len(), self.bytes)
    }

    /// What the empty pane says: still asking, or the pod has written nothing.
    pub fn empty_note(&self) -> String {
        if !self.answered && self.ticket.is_some() {
            "asking for log lines…".to_string()
        } else if self.ticket.is_some() {
            format!(
                "no log lines: {} has written nothing yet (following; new lines appear here)",
                clean(&self.pod)
            )
        } else {
            format!("no log lines: {} has written nothing", clean(&self.pod))
        }
    }

    fn load(&mut self, out: &mut Outbox) {
        self.lines.clear();
        self.bytes = 0;
        self.answered = false;
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
            out.push(Line::from(widgets::muted(theme, self.empty_note())));
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
                self.answered = true;
                let added = l.len();
                self.push_lines(l.iter().cloned());
                if self.back > 0 {
                    self.back += added;
                }
            }
            Ok(_) => {}
            Err(e) => {
                self.answered = true;
                self.error = Some(e.clone());
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn followed_logs_stay_within_lines_and_bytes() {
        let mut v = LogsView::new(AppId::new("i", "argocd", "a"), "ns".into(), "p".into());
        // Many short lines: the line ring bounds them.
        v.push_lines((0..20_000).map(|i| format!("line {i}")));
        let (n, b) = v.held();
        assert_eq!(n, LOG_BUFFER);
        assert!(b <= LOG_BYTES);
        assert_eq!(v.lines.back().map(String::as_str), Some("line 19999"));
        // Long lines: the byte cap bounds them, each line cut.
        v.push_lines((0..5_000).map(|_| "x".repeat(100_000)));
        let (n, b) = v.held();
        assert!(b <= LOG_BYTES, "{b} bytes held");
        assert!(n < LOG_BUFFER);
        assert!(v.lines.iter().all(|l| l.len() <= LINE_BYTES + 16));
        let counted: usize = v.lines.iter().map(String::len).sum();
        assert_eq!(counted, b);
    }

    #[test]
    fn an_empty_answer_says_the_pod_wrote_nothing() {
        let mut v = LogsView::new(AppId::new("i", "argocd", "a"), "ns".into(), "web-1".into());
        v.ticket = Some(Ticket(1));
        assert_eq!(v.empty_note(), "asking for log lines…");
        v.answered = true;
        assert!(
            v.empty_note()
                .starts_with("no log lines: web-1 has written nothing yet")
        );
    }
}
