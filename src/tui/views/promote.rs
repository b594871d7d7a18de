//! Promote (`p` on a board cell): what runs Healthy in the environment before, written into
//! this cell's manifests as a commit by the operator, shown as `git show` before it leaves
//! the machine. `y` pushes it (the operator's own git credentials); `Esc`/`n` drops it and
//! nothing is pushed. What would move, or why nothing can, is `ops::promote::select` on the
//! estate the board shows; the commit and the push are `ops::promote`'s (audited).

use crate::ops::promote::{self, Prepared, Selection};
use crate::tui::keymap::Intent;
use crate::tui::request::{Payload, Request, Response, Ticket};
use crate::tui::theme::Role;
use crate::tui::view::{Ctx, Level, Loadable, Outbox, View};
use crate::tui::widgets::{self, clean, fit};
use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::Paragraph;

pub struct PromoteView {
    service: String,
    environment: String,
    selection: Result<Selection, String>,
    prepared: Loadable<Prepared>,
    pushed: Loadable<String>,
    scroll: usize,
    /// The selection failed while apps' history was still being read: chosen again as it
    /// comes in.
    waiting: bool,
}

impl PromoteView {
    pub fn new(service: &str, environment: &str) -> Self {
        PromoteView {
            service: service.to_string(),
            environment: environment.to_string(),
            selection: Err(String::new()),
            prepared: Loadable::Idle,
            pushed: Loadable::Idle,
            scroll: 0,
            waiting: false,
        }
    }

    fn drop_commit(&mut self, out: &mut Outbox) {
        // Only a commit that was never pushed is dropped (a rejected push already reset it).
        if let Loadable::Ready(p) = &self.prepared
            && matches!(self.pushed, Loadable::Idle)
        {
            out.request(Request::PromoteCancel {
                prepared: Box::new(p.clone()),
            });
            out.flash(Level::Info, "promotion dropped: nothing was pushed");
        }
        out.pop();
    }

    fn diff_lines(&self) -> Vec<String> {
        match &self.prepared {
            Loadable::Ready(p) => crate::model::text::sanitize_multiline(&p.diff)
                .lines()
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        }
    }
}

impl View for PromoteView {
    fn title(&self, _ctx: &Ctx) -> String {
        format!(
            "promote {} → {}",
            clean(&self.service),
            clean(&self.environment)
        )
    }

    fn open(&mut self, ctx: &Ctx, out: &mut Outbox) {
        if ctx.read_only {
            self.selection = Err("read-only mode: promotion is disabled".into());
            return;
        }
        self.selection = promote::select(ctx.estate, &self.service, &self.environment, None)
            .map_err(|e| e.to_string());
        self.waiting = self.selection.is_err() && ctx.estate.incomplete() > 0;
        if let Ok(sel) = &self.selection {
            let t = out.request(Request::PromotePrepare {
                selection: Box::new(sel.clone()),
            });
            self.prepared = Loadable::Loading(t);
        }
    }

    fn on_estate(&mut self, ctx: &Ctx, out: &mut Outbox) {
        if self.waiting {
            self.open(ctx, out);
        }
    }

    fn render(&self, ctx: &Ctx, frame: &mut Frame, area: Rect) {
        let theme = ctx.theme;
        let width = area.width as usize;
        let mut lines: Vec<Line> = Vec::new();
        let sel = match &self.selection {
            Ok(s) => s,
            Err(e) => {
                lines.push(Line::from(widgets::styled(
                    theme,
                    Role::Warning,
                    fit(&format!("cannot promote: {}", clean(e)), width),
                )));
                lines.push(Line::from(widgets::muted(theme, "Esc back")));
                frame.render_widget(Paragraph::new(lines).style(widgets::base(theme)), area);
                return;
            }
        };
        let since = sel
            .healthy_since
            .map(|t| format!(", Healthy since {}", t.format("%Y-%m-%d %H:%M UTC")))
            .unwrap_or_default();
        lines.push(Line::from(widgets::text(
            theme,
            fit(
                &clean(&format!(
                    "Promote {} from {} ({}{since}) to {} ({})",
                    sel.images.join(", "),
                    sel.from_env,
                    sel.source_app.name,
                    sel.to_env,
                    sel.target_app.name
                )),
                width,
            ),
        )));
        match &self.prepared {
            Loadable::Idle | Loadable::Loading(_) => lines.push(Line::from(widgets::muted(
                theme,
                format!("{} writing the commit in a working clone…", ctx.spinner()),
            ))),
            Loadable::Failed(e) => {
                lines.push(Line::from(widgets::styled(
                    theme,
                    Role::Danger,
                    fit(&format!("cannot promote: {}", clean(e)), width),
                )));
                lines.push(Line::from(widgets::muted(theme, "Esc back")));
            }
            Loadable::Ready(p) => {
                lines.push(Line::from(widgets::muted(
                    theme,
                    fit(
                        &clean(&format!(
                            "commit {} on {} of {} ({})",
                            p.commit.get(..7).unwrap_or(&p.commit),
                            sel.branch,
                            sel.repo_url,
                            p.form.words()
                        )),
                        width,
                    ),
                )));
                let action = match &self.pushed {
                    Loadable::Idle => Line::from(widgets::styled(
                        theme,
                        Role::Accent,
                        fit(
                            &clean(&format!(
                                "y push to {} with your git credentials · Esc/n drop the commit (nothing is pushed)",
                                sel.branch
                            )),
                            width,
                        ),
                    )),
                    Loadable::Loading(_) => {
                        Line::from(widgets::muted(theme, format!("{} pushing…", ctx.spinner())))
                    }
                    Loadable::Ready(words) => Line::from(widgets::styled(
                        theme,
                        Role::Healthy,
                        fit(&format!("✓ {}", clean(words)), width),
                    )),
                    Loadable::Failed(e) => Line::from(widgets::styled(
                        theme,
                        Role::Danger,
                        fit(&format!("✗ {}", clean(e)), width),
                    )),
                };
                lines.push(action);
                lines.push(Line::from(""));
                let height = (area.height as usize).saturating_sub(lines.len());
                for l in self.diff_lines().into_iter().skip(self.scroll).take(height) {
                    let role = if l.starts_with('+') && !l.starts_with("+++") {
                        Role::DiffAdd
                    } else if l.starts_with('-') && !l.starts_with("---") {
                        Role::DiffRemove
                    } else if l.starts_with("    Shipdeck-") || l.starts_with("commit ") {
                        Role::Accent
                    } else {
                        Role::Text
                    };
                    lines.push(Line::from(widgets::styled(theme, role, fit(&l, width))));
                }
            }
        }
        frame.render_widget(Paragraph::new(lines).style(widgets::base(theme)), area);
    }

    fn on_key(&mut self, key: &KeyEvent, _ctx: &Ctx, out: &mut Outbox) -> bool {
        match key.code {
            KeyCode::Char('y') => {
                // Once: a rejected push reset the clone (promote again from the board).
                if let (Loadable::Ready(p), Loadable::Idle) = (&self.prepared, &self.pushed) {
                    let t = out.request(Request::PromotePush {
                        prepared: Box::new(p.clone()),
                    });
                    self.pushed = Loadable::Loading(t);
                }
                true
            }
            KeyCode::Char('n') => {
                self.drop_commit(out);
                true
            }
            _ => false,
        }
    }

    fn on_intent(&mut self, intent: Intent, _ctx: &Ctx, out: &mut Outbox) {
        let len = self.diff_lines().len();
        match intent {
            Intent::Up => self.scroll = self.scroll.saturating_sub(1),
            Intent::Down => self.scroll = (self.scroll + 1).min(len.saturating_sub(1)),
            Intent::PageUp => self.scroll = self.scroll.saturating_sub(20),
            Intent::PageDown => self.scroll = (self.scroll + 20).min(len.saturating_sub(1)),
            Intent::Top => self.scroll = 0,
            Intent::Back | Intent::Quit => self.drop_commit(out),
            _ => {}
        }
    }

    fn on_response(&mut self, resp: &Response, _ctx: &Ctx, out: &mut Outbox) -> bool {
        if self.prepared.ticket() == Some(resp.ticket) {
            let r = match &resp.result {
                Ok(Payload::Promotion(p)) => Ok((**p).clone()),
                Ok(_) => Err("unexpected answer".to_string()),
                Err(e) => Err(e.clone()),
            };
            return self.prepared.accept(resp.ticket, r);
        }
        if self.pushed.ticket() == Some(resp.ticket) {
            let r = match &resp.result {
                Ok(Payload::Accepted(w)) => Ok(w.clone()),
                Ok(_) => Err("unexpected answer".to_string()),
                Err(e) => Err(e.clone()),
            };
            if let Ok(w) = &r {
                out.flash(Level::Info, w.clone());
            }
            return self.pushed.accept(resp.ticket, r);
        }
        false
    }

    fn tickets(&self) -> Vec<Ticket> {
        self.prepared
            .ticket()
            .into_iter()
            .chain(self.pushed.ticket())
            .collect()
    }

    fn busy(&self, _ctx: &Ctx) -> bool {
        self.prepared.is_loading() || self.pushed.is_loading()
    }

    fn keys(&self, _ctx: &Ctx) -> Vec<(Intent, &'static str)> {
        vec![
            (Intent::Down, "scroll"),
            (Intent::PageDown, "page"),
            (Intent::Back, "drop and back"),
        ]
    }
}
