//! `:requests` (and `:pending` while any exist): four-eyes requests waiting for me, one row
//! per app: app, environment, requester, when, why, expiry. "Me" is the identity each
//! instance's server reports (asked once per instance); my own requests are hidden (they
//! wait for someone else) and counted. Enter opens the approval screen, which shows the
//! request beside the same evidence as any approval and approves it.

use super::approve::ApproveView;
use crate::model::AppId;
use crate::ops::foureyes::{self, ApprovalRequest, RequestAction};
use crate::tui::keymap::Intent;
use crate::tui::request::{Payload, Request, Response, Ticket};
use crate::tui::theme::Role;
use crate::tui::view::{Ctx, Level, Outbox, View};
use crate::tui::widgets::{self, clean, fit};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use std::collections::BTreeMap;

/// Who I am on one instance, as its server said (or why it could not say).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Me {
    Asking(Ticket),
    Known(String),
    Unknown(String),
}

#[derive(Default)]
pub struct PendingView {
    me: BTreeMap<String, Me>,
    cursor: usize,
}

/// One request waiting on an app of the estate.
struct Row {
    id: AppId,
    environment: String,
    request: ApprovalRequest,
}

impl PendingView {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every standing (not expired) request in the estate, oldest first.
    fn all(ctx: &Ctx) -> Vec<Row> {
        let now = chrono::Utc::now();
        let mut rows: Vec<Row> = ctx
            .estate
            .apps()
            .filter_map(|e| {
                if !e.board.four_eyes {
                    return None;
                }
                let r = foureyes::request_of(&e.app())?.ok()?;
                (now < r.expires).then(|| Row {
                    id: e.id.clone(),
                    environment: e.environment.name.clone(),
                    request: r,
                })
            })
            .collect();
        rows.sort_by_key(|r| r.request.at);
        rows
    }

    /// Whether the estate holds any standing request (`:pending` opens this view then).
    pub fn any(ctx: &Ctx) -> bool {
        !Self::all(ctx).is_empty()
    }

    fn mine(&self, row: &Row) -> bool {
        matches!(self.me.get(&row.id.instance), Some(Me::Known(me)) if *me == row.request.requested_by)
    }

    /// The requests waiting for me, and how many of mine wait for someone else.
    fn rows(&self, ctx: &Ctx) -> (Vec<Row>, usize) {
        let (mine, theirs): (Vec<Row>, Vec<Row>) =
            Self::all(ctx).into_iter().partition(|r| self.mine(r));
        (theirs, mine.len())
    }
}

impl View for PendingView {
    fn title(&self, _ctx: &Ctx) -> String {
        "requests".into()
    }

    fn open(&mut self, ctx: &Ctx, out: &mut Outbox) {
        for row in Self::all(ctx) {
            if !self.me.contains_key(&row.id.instance) {
                let t = out.request(Request::Identity {
                    app: row.id.clone(),
                });
                self.me.insert(row.id.instance.clone(), Me::Asking(t));
            }
        }
    }

    fn on_estate(&mut self, ctx: &Ctx, out: &mut Outbox) {
        // A request on an instance not asked about yet.
        self.open(ctx, out);
    }

    fn on_response(&mut self, resp: &Response, _ctx: &Ctx, _out: &mut Outbox) -> bool {
        for me in self.me.values_mut() {
            if *me == Me::Asking(resp.ticket) {
                *me = match &resp.result {
                    Ok(Payload::Identity(who)) => Me::Known(clean(who).into_owned()),
                    Ok(_) => Me::Unknown("unexpected answer".into()),
                    Err(e) => Me::Unknown(clean(e).into_owned()),
                };
                return true;
            }
        }
        false
    }

    fn tickets(&self) -> Vec<Ticket> {
        self.me
            .values()
            .filter_map(|m| match m {
                Me::Asking(t) => Some(*t),
                _ => None,
            })
            .collect()
    }

    fn render(&self, ctx: &Ctx, frame: &mut Frame, area: Rect) {
        let theme = ctx.theme;
        let (rows, mine) = self.rows(ctx);
        let width = area.width.saturating_sub(2) as usize;
        let mut lines = Vec::new();
        for (inst, me) in &self.me {
            match me {
                Me::Asking(_) => lines.push(Line::from(widgets::muted(
                    theme,
                    format!("{} asking {} who you are…", ctx.spinner(), clean(inst)),
                ))),
                Me::Unknown(e) => lines.push(Line::from(widgets::styled(
                    theme,
                    Role::Warning,
                    fit(
                        &format!(
                            "{}: cannot tell who you are ({e}); approving there is refused",
                            clean(inst)
                        ),
                        width,
                    ),
                ))),
                Me::Known(_) => {}
            }
        }
        if mine > 0 {
            lines.push(Line::from(widgets::muted(
                theme,
                format!("{mine} of your own requests wait for another operator (not listed)"),
            )));
        }
        if rows.is_empty() {
            lines.push(Line::from(widgets::muted(
                theme,
                "No four-eyes request waits for you.".to_string(),
            )));
        } else {
            lines.push(Line::from(Span::styled(
                format!(
                    "{:<24} {:<10} {:<9} {:<12} {:<17} {:<17} WHY",
                    "APP", "ENV", "ACTION", "REQUESTER", "REQUESTED", "EXPIRES"
                ),
                theme.style(Role::Accent),
            )));
        }
        for (i, r) in rows.iter().enumerate() {
            let action = match r.request.action {
                RequestAction::Sync => "sync".to_string(),
                RequestAction::Rollback => {
                    format!("rollback #{}", r.request.history_id.unwrap_or(-1))
                }
            };
            let text = format!(
                "{:<24} {:<10} {:<9} {:<12} {:<17} {:<17} {}",
                fit(&clean(&r.id.name), 24),
                fit(&clean(&r.environment), 10),
                fit(&action, 9),
                fit(&clean(&r.request.requested_by), 12),
                r.request.at.format("%m-%d %H:%M UTC"),
                r.request.expires.format("%m-%d %H:%M UTC"),
                clean(&r.request.reason)
            );
            let role = if i == self.cursor.min(rows.len().saturating_sub(1)) {
                Role::Selection
            } else {
                Role::Text
            };
            lines.push(Line::from(Span::styled(
                fit(&text, width),
                theme.style(role),
            )));
        }
        let title = format!("{} requests waiting for you", rows.len());
        frame.render_widget(
            Paragraph::new(lines).block(widgets::block(theme, &title)),
            area,
        );
    }

    fn on_intent(&mut self, intent: Intent, ctx: &Ctx, out: &mut Outbox) {
        let (rows, _) = self.rows(ctx);
        let last = rows.len().saturating_sub(1);
        match intent {
            Intent::Down => self.cursor = (self.cursor + 1).min(last),
            Intent::Up => self.cursor = self.cursor.saturating_sub(1),
            Intent::Top => self.cursor = 0,
            Intent::Bottom => self.cursor = last,
            Intent::Open => match rows.get(self.cursor.min(last)) {
                Some(r) => out.push(Box::new(match r.request.action {
                    RequestAction::Sync => ApproveView::sync(r.id.clone()),
                    RequestAction::Rollback => {
                        ApproveView::rollback(r.id.clone(), r.request.history_id.unwrap_or(-1))
                    }
                })),
                None => out.flash(Level::Info, "no request here"),
            },
            Intent::Back | Intent::Quit => out.pop(),
            _ => {}
        }
    }

    fn selected_app(&self, ctx: &Ctx) -> Option<AppId> {
        let (rows, _) = self.rows(ctx);
        rows.get(self.cursor).map(|r| r.id.clone())
    }

    fn keys(&self, _ctx: &Ctx) -> Vec<(Intent, &'static str)> {
        vec![
            (Intent::Down, "move"),
            (Intent::Open, "review and approve"),
            (Intent::Back, "close"),
        ]
    }
}
