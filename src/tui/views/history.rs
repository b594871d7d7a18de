//! History and rollback: the app's deployments newest first, with id, revision, when, who
//! (automated or a user) and image tags where known. `d` shows the diff to the selected
//! deployment; `Enter`/`R` rolls back to it through the same guards as a sync (approval
//! for gated environments, a typed confirmation otherwise).

use crate::model::{AppId, ApprovalPolicy, HistoryEntry, Revision};
use crate::tui::keymap::Intent;
use crate::tui::request::{Payload, Request, Response, Ticket};
use crate::tui::theme::Role;
use crate::tui::view::{Ctx, Level, Loadable, Outbox, View};
use crate::tui::widgets::{self, clean, fit};
use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;

/// Who started a deployment, as an operator reads it.
pub fn who(d: &HistoryEntry) -> String {
    match &d.initiated_by {
        Some(i) if i.automated => "automated".into(),
        Some(i) => clean(i.username.as_deref().unwrap_or("unknown user")).into_owned(),
        None => "unknown".into(),
    }
}

/// Images as a list shows them: the last path segment with its tag (`cart:sha-3fdd1ba`).
pub fn image_words(images: &[String]) -> String {
    images
        .iter()
        .map(|i| i.rsplit('/').next().unwrap_or(i))
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether two deployments put the same thing in place (revision and source alike).
fn same_deployment(a: &HistoryEntry, b: &HistoryEntry) -> bool {
    let rev = |d: &HistoryEntry| d.revision.clone().or_else(|| d.revisions.first().cloned());
    rev(a) == rev(b)
        && serde_json::to_value(&a.source).ok() == serde_json::to_value(&b.source).ok()
        && serde_json::to_value(&a.sources).ok() == serde_json::to_value(&b.sources).ok()
}

pub struct HistoryView {
    id: AppId,
    /// Images of each history entry (oldest first), from its manifests in Git.
    images: Loadable<Vec<Vec<String>>>,
    selected: usize,
    /// The history id under the cursor: the cursor follows the entry when new rows are
    /// added on top (after a rollback), never the row number.
    pinned: Option<i64>,
    /// Waiting for `y` to roll back to this history id (non-gated environments).
    confirm: Option<i64>,
}

impl HistoryView {
    pub fn new(id: AppId) -> Self {
        HistoryView {
            id,
            images: Loadable::Idle,
            selected: 0,
            pinned: None,
            confirm: None,
        }
    }

    /// Newest first; none while the app's details are not in (nothing to roll back to is
    /// offered from a history not read yet).
    fn entries(&self, ctx: &Ctx) -> Vec<HistoryEntry> {
        ctx.app(&self.id)
            .filter(|e| e.board.complete)
            .map(|e| e.app().status.history.into_iter().rev().collect())
            .unwrap_or_default()
    }

    /// Move the cursor to row `i` and pin the entry there.
    fn select(&mut self, ctx: &Ctx, i: usize) {
        self.selected = i;
        self.pinned = self.entries(ctx).get(i).map(|d| d.id);
    }

    /// Put the cursor back on the pinned entry wherever it now is.
    fn follow(&mut self, ctx: &Ctx) {
        let entries = self.entries(ctx);
        match self
            .pinned
            .and_then(|id| entries.iter().position(|d| d.id == id))
        {
            Some(i) => self.selected = i,
            None => {
                self.selected = self.selected.min(entries.len().saturating_sub(1));
                self.pinned = entries.get(self.selected).map(|d| d.id);
            }
        }
    }

    fn rollback(&mut self, ctx: &Ctx, out: &mut Outbox) {
        if ctx.read_only {
            out.flash(Level::Warning, "read-only mode: rollback is disabled");
            return;
        }
        let Some(e) = ctx.app(&self.id) else { return };
        let entries = self.entries(ctx);
        let Some(target) = entries.get(self.selected) else {
            out.flash(Level::Info, "no deployment selected");
            return;
        };
        if self.selected == 0 {
            out.flash(Level::Info, "that deployment is the one running now");
            return;
        }
        if let Some(running) = entries.first()
            && same_deployment(target, running)
        {
            out.flash(
                Level::Info,
                format!(
                    "deployment #{} is what runs now (as #{}): nothing to roll back to",
                    target.id, running.id
                ),
            );
            return;
        }
        match ctx.policy(&e.environment) {
            ApprovalPolicy::None => self.confirm = Some(target.id),
            _ => out.push(Box::new(super::approve::ApproveView::rollback(
                self.id.clone(),
                target.id,
            ))),
        }
    }
}

impl View for HistoryView {
    fn title(&self, _ctx: &Ctx) -> String {
        format!("history {}", clean(&self.id.name))
    }

    fn open(&mut self, ctx: &Ctx, out: &mut Outbox) {
        self.follow(ctx);
        if matches!(self.images, Loadable::Idle) {
            self.images = Loadable::Loading(out.request(Request::HistoryImages {
                app: self.id.clone(),
            }));
        }
    }

    fn on_response(&mut self, resp: &Response, _ctx: &Ctx, _out: &mut Outbox) -> bool {
        if self.images.ticket() != Some(resp.ticket) {
            return false;
        }
        let v = resp.result.clone().and_then(|p| match p {
            Payload::HistoryImages(x) => Ok(x),
            _ => Err("unexpected answer".to_string()),
        });
        self.images.accept(resp.ticket, v)
    }

    fn tickets(&self) -> Vec<Ticket> {
        self.images.ticket().into_iter().collect()
    }

    fn typing(&self) -> bool {
        self.confirm.is_some()
    }

    fn render(&self, ctx: &Ctx, frame: &mut Frame, area: Rect) {
        let theme = ctx.theme;
        let entries = self.entries(ctx);
        let w = area.width.saturating_sub(2) as usize;
        let mut lines = vec![Line::from(widgets::muted(
            theme,
            format!(
                "{:<6}{:<10}{:<10}{:<18}{:<15}{}",
                "ID", "REVISION", "WHEN", "BY", "STATE", "IMAGES"
            ),
        ))];
        if ctx.app(&self.id).is_some_and(|e| !e.board.complete) {
            lines.push(Line::from(widgets::muted(theme, widgets::DETAILS_PENDING)));
        } else if entries.is_empty() {
            lines.push(Line::from(widgets::muted(theme, "no deployments recorded")));
        }
        let h = area.height.saturating_sub(4) as usize;
        let offset = widgets::scroll_offset(self.selected, h, entries.len());
        for (i, d) in entries.iter().enumerate().skip(offset).take(h) {
            let rev = d
                .revision
                .clone()
                .or_else(|| d.revisions.first().cloned())
                .unwrap_or_default();
            let mut spans = vec![
                widgets::text(theme, format!("#{:<5}", d.id)),
                widgets::text(
                    theme,
                    format!("{:<10}", Revision(clean(&rev).into_owned()).short()),
                ),
                widgets::muted(
                    theme,
                    format!(
                        "{:<10}",
                        format!("{} ago", widgets::age(d.deployed_at.as_deref(), ctx.now))
                    ),
                ),
                widgets::text(theme, format!("{:<18}", fit(&who(d), 17))),
                if i == 0 {
                    widgets::styled(theme, Role::Synced, format!("{:<15}", "← running"))
                } else if entries.first().is_some_and(|r| same_deployment(d, r)) {
                    widgets::styled(theme, Role::Synced, format!("{:<15}", "= running now"))
                } else {
                    widgets::muted(theme, format!("{:<15}", ""))
                },
            ];
            // Entries are drawn newest first; the images are kept oldest first.
            let images = match &self.images {
                Loadable::Ready(v) => v
                    .get(entries.len() - 1 - i)
                    .map(|x| clean(&image_words(x)).into_owned())
                    .unwrap_or_else(|| "-".into()),
                Loadable::Failed(_) => "?".into(),
                _ => "…".into(),
            };
            spans.push(widgets::text(theme, fit(&images, w.saturating_sub(59))));
            if i == self.selected {
                for s in spans.iter_mut() {
                    s.style = theme.selected(s.style);
                }
            }
            lines.push(Line::from(spans));
        }
        if let Some(id) = self.confirm {
            lines.push(Line::default());
            if ctx.app(&self.id).is_some_and(|e| e.board.auto_sync) {
                lines.push(Line::from(widgets::styled(
                    theme,
                    Role::Warning,
                    "auto-sync is on: rolling back turns it off for this app (turn it on again when fixed)",
                )));
            }
            lines.push(Line::from(vec![
                Span::styled(
                    format!("Roll back {} to deployment #{id}? ", clean(&self.id.name)),
                    theme.style(Role::Warning),
                ),
                widgets::text(theme, "y to confirm, any other key cancels"),
            ]));
        }
        frame.render_widget(
            Paragraph::new(lines).block(widgets::block(
                theme,
                format!("history {}", clean(&self.id.name)),
            )),
            area,
        );
    }

    fn on_key(&mut self, key: &KeyEvent, ctx: &Ctx, out: &mut Outbox) -> bool {
        let Some(id) = self.confirm.take() else {
            return false;
        };
        if key.code == KeyCode::Char('y') {
            if ctx
                .app(&self.id)
                .is_some_and(|e| e.board.operation_in_progress)
            {
                out.flash(Level::Warning, "an operation is already running");
            } else {
                let auto = ctx.app(&self.id).is_some_and(|e| e.board.auto_sync);
                out.request(Request::Rollback {
                    app: self.id.clone(),
                    id,
                    approval: None,
                    disable_auto_sync: auto,
                });
                out.flash(
                    Level::Info,
                    format!("rollback of {} to #{id} requested", self.id.name),
                );
                out.push(Box::new(super::rollout::RolloutView::new(self.id.clone())));
            }
        } else {
            out.flash(Level::Info, "rollback cancelled");
        }
        true
    }

    fn on_intent(&mut self, intent: Intent, ctx: &Ctx, out: &mut Outbox) {
        let n = self.entries(ctx).len();
        match intent {
            Intent::Up => self.select(ctx, self.selected.saturating_sub(1)),
            Intent::Down => self.select(ctx, (self.selected + 1).min(n.saturating_sub(1))),
            Intent::Top => self.select(ctx, 0),
            Intent::Bottom => self.select(ctx, n.saturating_sub(1)),
            Intent::Diff => {
                if let Some(d) = self.entries(ctx).get(self.selected) {
                    out.push(Box::new(super::diff::DiffView::to_history(
                        self.id.clone(),
                        d.id,
                    )));
                }
            }
            Intent::Open | Intent::Rollback => self.rollback(ctx, out),
            Intent::Back => out.pop(),
            _ => {}
        }
    }

    fn on_estate(&mut self, ctx: &Ctx, _out: &mut Outbox) {
        self.follow(ctx);
    }

    fn keys(&self, ctx: &Ctx) -> Vec<(Intent, &'static str)> {
        let mut v = vec![(Intent::Down, "select"), (Intent::Diff, "diff to it")];
        if !ctx.read_only {
            v.push((Intent::Rollback, "roll back"));
        }
        v.push((Intent::Back, "back"));
        v
    }
}
