//! Applications: every app in one table grouped by environment, sortable, filterable with
//! `/` (then `n`/`N` to move between matches), with `Space` marks for a bulk sync of apps
//! that need no approval. The row index is rebuilt when the estate changes, never while
//! drawing, and only the visible rows are drawn.

use crate::model::{AppId, ApprovalPolicy, Environment};
use crate::ops::estate::AppEntry;
use crate::tui::keymap::Intent;
use crate::tui::request::{Payload, Request, Response, Ticket};
use crate::tui::theme::Role;
use crate::tui::view::{Ctx, Level, Outbox, View};
use crate::tui::widgets::{self, clean, pad};
use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use std::collections::BTreeSet;

/// Whether a filter matches an app: a case-insensitive substring of its name, service,
/// environment, sync status or health status (`degr` finds Degraded apps, `prod` an
/// environment). Shared with the board's `/`.
pub fn filter_matches(filter: &str, e: &AppEntry) -> bool {
    let f = filter.trim().to_lowercase();
    if f.is_empty() {
        return true;
    }
    [
        e.id.name.as_str(),
        e.service.as_str(),
        e.environment.name.as_str(),
        e.board.sync.as_str(),
        e.board.health.as_str(),
    ]
    .iter()
    .any(|field| field.to_lowercase().contains(&f))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sort {
    Name,
    Sync,
    Health,
}

impl Sort {
    fn next(self) -> Sort {
        match self {
            Sort::Name => Sort::Sync,
            Sort::Sync => Sort::Health,
            Sort::Health => Sort::Name,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Sort::Name => "name",
            Sort::Sync => "sync",
            Sort::Health => "health (worst first)",
        }
    }
}

/// One app's answer in a bulk sync: None until it came.
type Answer = Option<Result<String, String>>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Row {
    Group(String, usize),
    App(AppId),
}

#[derive(Debug)]
pub struct AppsView {
    rows: Vec<Row>,
    selected: usize,
    sort: Sort,
    filter: String,
    typing: bool,
    only_env: Option<String>,
    /// Only apps that wait for an operator's approval (`:pending`).
    only_waiting: bool,
    marks: BTreeSet<AppId>,
    /// A bulk sync waiting for `y`: the marked apps visible when `s` was pressed.
    bulk_confirm: Option<Vec<AppId>>,
    /// The last bulk sync: each app's ticket and its answer once it came.
    bulk: Vec<(Ticket, String, Answer)>,
    generation: u64,
    /// The estate's `shape` the rows were built for, and how many of the rows are apps.
    shape: u64,
    apps: usize,
}

impl AppsView {
    pub fn new(only_env: Option<String>) -> Self {
        AppsView {
            rows: Vec::new(),
            selected: 0,
            sort: Sort::Name,
            filter: String::new(),
            typing: false,
            only_env,
            only_waiting: false,
            marks: BTreeSet::new(),
            bulk_confirm: None,
            bulk: Vec::new(),
            generation: u64::MAX,
            shape: u64::MAX,
            apps: 0,
        }
    }

    /// Apps waiting for approval, across environments.
    pub fn waiting() -> Self {
        AppsView {
            only_waiting: true,
            ..AppsView::new(None)
        }
    }

    fn matches(&self, ctx: &Ctx, e: &AppEntry) -> bool {
        if self.only_waiting && !ctx.estate.waits_for_approval(e, ctx.policies) {
            return false;
        }
        if let Some(env) = &self.only_env
            && &e.environment.name != env
        {
            return false;
        }
        if self.filter.is_empty() {
            return true;
        }
        filter_matches(&self.filter, e)
    }

    fn rebuild(&mut self, ctx: &Ctx) {
        let keep = self.selected_id();
        let mut entries: Vec<&AppEntry> =
            ctx.estate.apps().filter(|e| self.matches(ctx, e)).collect();
        let health_rank = |e: &AppEntry| {
            std::cmp::Reverse(crate::model::HealthStatus::Healthy.worst(e.board.health) as u8)
        };
        entries.sort_by(|a, b| {
            let by_env = a.environment.cmp(&b.environment);
            let inner = match self.sort {
                Sort::Name => std::cmp::Ordering::Equal,
                Sort::Sync => a.board.sync.cmp(&b.board.sync).reverse(),
                Sort::Health => health_rank(a).cmp(&health_rank(b)),
            };
            by_env.then(inner).then_with(|| a.id.cmp(&b.id))
        });
        let mut rows = Vec::with_capacity(entries.len() + 4);
        let mut current: Option<&Environment> = None;
        let mut group_at = 0;
        for e in &entries {
            if current != Some(&e.environment) {
                let len = rows.len();
                if let Some(Row::Group(_, n)) = rows.get_mut(group_at) {
                    *n = len - group_at - 1;
                }
                group_at = rows.len();
                rows.push(Row::Group(e.environment.name.clone(), 0));
                current = Some(&e.environment);
            }
            rows.push(Row::App(e.id.clone()));
        }
        let len = rows.len();
        if let Some(Row::Group(_, n)) = rows.get_mut(group_at) {
            *n = len - group_at - 1;
        }
        self.apps = entries.len();
        self.rows = rows;
        self.generation = ctx.estate.generation;
        self.shape = ctx.estate.shape;
        self.selected = keep
            .and_then(|id| self.rows.iter().position(|r| *r == Row::App(id.clone())))
            .unwrap_or_else(|| self.first_app_from(0, true).unwrap_or(0));
    }

    fn selected_id(&self) -> Option<AppId> {
        match self.rows.get(self.selected) {
            Some(Row::App(id)) => Some(id.clone()),
            _ => None,
        }
    }

    fn first_app_from(&self, start: usize, forward: bool) -> Option<usize> {
        if forward {
            (start..self.rows.len()).find(|i| matches!(self.rows[*i], Row::App(_)))
        } else {
            (0..=start.min(self.rows.len().saturating_sub(1)))
                .rev()
                .find(|i| matches!(self.rows[*i], Row::App(_)))
        }
    }

    fn step(&mut self, delta: isize) {
        let target = (self.selected as isize + delta).clamp(0, self.rows.len() as isize - 1);
        let target = target.max(0) as usize;
        let found = if delta >= 0 {
            self.first_app_from(target, true)
                .or_else(|| self.first_app_from(target, false))
        } else {
            self.first_app_from(target, false)
                .or_else(|| self.first_app_from(target, true))
        };
        if let Some(i) = found {
            self.selected = i;
        }
    }

    fn wrap_step(&mut self, forward: bool) {
        let apps: Vec<usize> = (0..self.rows.len())
            .filter(|i| matches!(self.rows[*i], Row::App(_)))
            .collect();
        if apps.is_empty() {
            return;
        }
        let pos = apps.iter().position(|i| *i == self.selected).unwrap_or(0);
        let next = if forward {
            (pos + 1) % apps.len()
        } else {
            (pos + apps.len() - 1) % apps.len()
        };
        self.selected = apps[next];
    }

    /// Marked apps the current rows show (a filter hides the others; they are not acted on).
    fn visible_marks(&self) -> Vec<AppId> {
        self.rows
            .iter()
            .filter_map(|r| match r {
                Row::App(id) if self.marks.contains(id) => Some(id.clone()),
                _ => None,
            })
            .collect()
    }

    /// `s` with marks: list the visible marked apps and ask once.
    fn bulk_sync(&mut self, ctx: &Ctx, out: &mut Outbox) {
        if ctx.read_only {
            out.flash(Level::Warning, "read-only mode: sync is disabled");
            return;
        }
        let visible = self.visible_marks();
        let hidden = self.marks.len() - visible.len();
        if visible.is_empty() {
            out.flash(
                Level::Warning,
                format!(
                    "{hidden} marked {} hidden by the filter: nothing synced (Esc clears the filter, Space unmarks)",
                    if hidden == 1 { "app is" } else { "apps are" }
                ),
            );
            return;
        }
        self.bulk_confirm = Some(visible);
    }

    fn bulk_prompt(&self, ids: &[AppId], hidden: usize) -> String {
        let names: Vec<String> = ids.iter().map(|i| clean(&i.name).into_owned()).collect();
        let mut s = format!(
            "sync {} {}: {}? y/N",
            ids.len(),
            if ids.len() == 1 { "app" } else { "apps" },
            names.join(", ")
        );
        if hidden > 0 {
            s.push_str(&format!(
                " ({hidden} marked but hidden by the filter: left alone)"
            ));
        }
        s
    }

    /// `y` on the bulk prompt: send one sync per app that can still take one; each answer
    /// is reported against its app.
    fn bulk_send(&mut self, ids: Vec<AppId>, ctx: &Ctx, out: &mut Outbox) {
        self.bulk.clear();
        for id in ids {
            self.marks.remove(&id);
            let name = clean(&id.name).into_owned();
            match ctx.app(&id) {
                Some(e) if ctx.policy(&e.environment) != ApprovalPolicy::None => self.bulk.push((
                    Ticket(0),
                    name,
                    Some(Err("gated: approve it on its own (s)".into())),
                )),
                Some(e) if e.board.operation_in_progress => self.bulk.push((
                    Ticket(0),
                    name,
                    Some(Err("skipped: an operation is already running".into())),
                )),
                Some(_) => {
                    let t = out.request(Request::Sync {
                        app: id,
                        approval: None,
                    });
                    self.bulk.push((t, name, None));
                }
                None => self
                    .bulk
                    .push((Ticket(0), name, Some(Err("skipped: app is gone".into())))),
            }
        }
        self.report(out);
    }

    /// Each app's result so far, in one line.
    fn bulk_words(&self) -> String {
        let parts: Vec<String> = self
            .bulk
            .iter()
            .map(|(_, name, r)| match r {
                None => format!("{name} … sending"),
                Some(Ok(m)) => format!("{name} ✓ {}", clean(m)),
                Some(Err(e)) => format!("{name} ✗ {}", clean(e)),
            })
            .collect();
        format!("sync of {} apps: {}", self.bulk.len(), parts.join(" · "))
    }

    fn report(&self, out: &mut Outbox) {
        let level = if self.bulk.iter().any(|(_, _, r)| matches!(r, Some(Err(_)))) {
            Level::Warning
        } else {
            Level::Info
        };
        out.flash(level, self.bulk_words());
    }
}

impl View for AppsView {
    fn title(&self, _ctx: &Ctx) -> String {
        if self.only_waiting {
            return "waiting for approval".into();
        }
        match &self.only_env {
            Some(env) => format!("apps {}", clean(env)),
            None => "apps".into(),
        }
    }

    fn open(&mut self, ctx: &Ctx, _out: &mut Outbox) {
        self.rebuild(ctx);
    }

    fn typing(&self) -> bool {
        self.typing || self.bulk_confirm.is_some()
    }

    fn typing_keys(&self, _ctx: &Ctx) -> Vec<(&'static str, &'static str)> {
        vec![
            ("Enter", "keep filter"),
            ("Ctrl-U", "clear"),
            ("Esc", "drop filter"),
        ]
    }

    fn selected_app(&self, _ctx: &Ctx) -> Option<AppId> {
        self.selected_id()
    }

    fn render(&self, ctx: &Ctx, frame: &mut Frame, area: Rect) {
        let theme = ctx.theme;
        let width = area.width as usize;
        // What an operator needs most is the version and the state ("needs approval"):
        // as the terminal narrows, sync and health shrink to glyph + abbreviation first,
        // the version is cut from the left (`…be2164f`), and only then do columns go.
        let wide = width >= 100;
        let show_version = width >= 60;
        let show_cause = width >= 70;
        let (sync_w, health_w) = if wide { (12, 14) } else { (6, 7) };
        let env_w = 9;
        let ver_w = if !show_version {
            0
        } else if wide {
            18
        } else {
            10
        };
        let cause_w = if !show_cause {
            0
        } else if wide {
            26
        } else {
            18
        };
        // A WAVE column only on estates whose apps carry sync waves (counted by the estate:
        // looking at every row took 15 ms a frame at 50,000 apps).
        let waves = ctx.estate.any_wave();
        let wave_w = if waves { 6 } else { 0 };
        let name_w = width
            .saturating_sub(2 + env_w + sync_w + health_w + wave_w + ver_w + cause_w)
            .max(10);
        let mut lines = Vec::with_capacity(area.height as usize);
        let mut status = format!("{} apps · sort: {}", self.apps, self.sort.label());
        if !self.filter.is_empty() || self.typing {
            status.push_str(&format!(" · filter: {}", clean(&self.filter)));
            if self.typing {
                status.push('▏');
            }
        }
        if !self.marks.is_empty() {
            status.push_str(&format!(" · {} marked", self.marks.len()));
        }
        lines.push(Line::from(widgets::muted(theme, status)));
        let mut head = format!(
            "  {}{}{}{}",
            pad("NAME", name_w),
            pad("ENV", env_w),
            pad("SYNC", sync_w),
            pad("HEALTH", health_w)
        );
        if waves {
            head.push_str(&pad("WAVE", wave_w));
        }
        if show_version {
            head.push_str(&pad("VERSION", ver_w));
        }
        if show_cause {
            head.push_str(&pad("STATE", cause_w));
        }
        lines.push(Line::from(widgets::muted(theme, head)));
        // Below the table: the bulk prompt, then each app's result of the last bulk sync.
        let mut tail: Vec<Line> = Vec::new();
        if let Some(ids) = &self.bulk_confirm {
            let hidden = self.marks.len().saturating_sub(ids.len());
            tail.push(Line::from(widgets::styled(
                theme,
                Role::Warning,
                self.bulk_prompt(ids, hidden),
            )));
        } else if !self.bulk.is_empty() {
            tail.push(Line::from(widgets::muted(
                theme,
                format!("last bulk sync ({} apps):", self.bulk.len()),
            )));
            for (_, name, r) in self.bulk.iter().take(8) {
                tail.push(Line::from(match r {
                    None => widgets::muted(theme, format!("  {name} … sending")),
                    Some(Ok(m)) => {
                        widgets::styled(theme, Role::Synced, format!("  ✓ {name}: {}", clean(m)))
                    }
                    Some(Err(e)) => {
                        widgets::styled(theme, Role::Danger, format!("  ✗ {name}: {}", clean(e)))
                    }
                }));
            }
        }
        let body_h = (area.height as usize).saturating_sub(2 + tail.len());
        let offset = widgets::scroll_offset(self.selected, body_h, self.rows.len());
        for (i, row) in self.rows.iter().enumerate().skip(offset).take(body_h) {
            match row {
                Row::Group(env, n) => lines.push(Line::from(Span::styled(
                    format!("── {} ({n})", clean(env)),
                    theme.style(Role::Accent),
                ))),
                Row::App(id) => {
                    let Some(e) = ctx.app(id) else {
                        lines.push(Line::from(widgets::muted(
                            theme,
                            format!("  {} (gone)", clean(&id.name)),
                        )));
                        continue;
                    };
                    let mark = if self.marks.contains(id) {
                        "● "
                    } else {
                        "  "
                    };
                    let mut spans = vec![
                        Span::styled(mark, theme.style(Role::Accent)),
                        Span::styled(pad(&clean(&id.name), name_w), theme.style(Role::Text)),
                        Span::styled(
                            pad(&clean(&e.environment.name), env_w),
                            theme.style(Role::Muted),
                        ),
                    ];
                    let (sync, health) = (e.board.sync, e.board.health);
                    if wide {
                        let s = widgets::sync_span(theme, sync, false);
                        spans.push(Span::styled(pad(&s.content, sync_w), s.style));
                        let h = widgets::health_span(theme, health, false);
                        spans.push(Span::styled(pad(&h.content, health_w), h.style));
                    } else {
                        let s =
                            format!("{}{}", widgets::sync_glyph(sync), widgets::sync_abbr(sync));
                        spans.push(Span::styled(
                            pad(&s, sync_w),
                            theme.style(widgets::sync_role(sync)),
                        ));
                        let h = format!(
                            "{}{}",
                            widgets::health_glyph(health),
                            widgets::health_abbr(health)
                        );
                        spans.push(Span::styled(
                            pad(&h, health_w),
                            theme.style(widgets::health_role(health)),
                        ));
                    }
                    if waves {
                        let w = e.board.wave.map_or("-".to_string(), |w| w.to_string());
                        spans.push(Span::styled(pad(&w, wave_w), theme.style(Role::Muted)));
                    }
                    if show_version {
                        spans.push(Span::styled(
                            pad(
                                &widgets::fit_tail(&widgets::version_of(e), ver_w - 1),
                                ver_w,
                            ),
                            theme.style(Role::Text),
                        ));
                    }
                    if show_cause {
                        let marks = widgets::marks_of(ctx, e);
                        let mut words = marks.words();
                        // The marks' words first ("needs approval"), the cause after:
                        // what is cut at the edge is the least needed.
                        if let Some(c) = e.cause
                            && !marks.drift
                        {
                            words.push(c.as_str());
                        }
                        let mut ms = marks.spans(theme);
                        let room = cause_w.saturating_sub(ms.len() + 1);
                        ms.push(Span::raw(" "));
                        ms.push(widgets::muted(theme, widgets::fit(&words.join(", "), room)));
                        spans.extend(ms);
                    }
                    if i == self.selected {
                        for s in spans.iter_mut() {
                            s.style = theme.selected(s.style);
                        }
                    }
                    lines.push(Line::from(spans));
                }
            }
        }
        lines.extend(tail);
        frame.render_widget(Paragraph::new(lines).style(widgets::base(theme)), area);
    }

    fn on_key(&mut self, key: &KeyEvent, ctx: &Ctx, out: &mut Outbox) -> bool {
        if let Some(ids) = self.bulk_confirm.take() {
            if key.code == KeyCode::Char('y') {
                self.bulk_send(ids, ctx, out);
            } else {
                out.flash(Level::Info, "bulk sync cancelled: nothing sent");
            }
            return true;
        }
        if !self.typing {
            return false;
        }
        match key.code {
            KeyCode::Esc => {
                self.typing = false;
                self.filter.clear();
                self.rebuild(ctx);
            }
            KeyCode::Enter => self.typing = false,
            _ => {
                if crate::tui::input::edit_line(&mut self.filter, key) {
                    self.rebuild(ctx);
                }
            }
        }
        true
    }

    fn on_intent(&mut self, intent: Intent, ctx: &Ctx, out: &mut Outbox) {
        match intent {
            Intent::Up => self.step(-1),
            Intent::Down => self.step(1),
            Intent::Top => self.step(-(self.rows.len() as isize)),
            Intent::Bottom => self.step(self.rows.len() as isize),
            Intent::PageUp => self.step(-10),
            Intent::PageDown => self.step(10),
            Intent::Filter => {
                self.typing = true;
            }
            Intent::NextMatch => self.wrap_step(true),
            Intent::PrevMatch => self.wrap_step(false),
            Intent::Sort => {
                self.sort = self.sort.next();
                self.rebuild(ctx);
            }
            Intent::Back if !self.filter.is_empty() => {
                self.filter.clear();
                self.rebuild(ctx);
            }
            Intent::Mark => {
                if let Some(id) = self.selected_id() {
                    let gated = ctx
                        .app(&id)
                        .is_some_and(|e| ctx.policy(&e.environment) != ApprovalPolicy::None);
                    if gated {
                        out.flash(
                            Level::Warning,
                            format!(
                                "{} cannot join a bulk sync: its environment is gated, and gated apps are approved one by one (s on it)",
                                clean(&id.name)
                            ),
                        );
                    } else if !self.marks.remove(&id) {
                        self.marks.insert(id);
                    }
                    self.step(1);
                }
            }
            Intent::Sync if !self.marks.is_empty() => self.bulk_sync(ctx, out),
            Intent::Refresh => out
                .effects
                .push(crate::tui::view::Effect::Command("refresh".into())),
            Intent::Back => out.pop(),
            _ => {
                let id = self.selected_id();
                super::app_intent(intent, id.as_ref(), ctx, out);
            }
        }
    }

    fn on_response(&mut self, resp: &Response, _ctx: &Ctx, out: &mut Outbox) -> bool {
        let Some(slot) = self
            .bulk
            .iter_mut()
            .find(|(t, _, r)| *t == resp.ticket && r.is_none())
        else {
            return false;
        };
        slot.2 = Some(match &resp.result {
            Ok(Payload::Accepted(m)) => Ok(m.clone()),
            // Four-eyes: written, not sent; the words say so.
            Ok(Payload::Requested(m)) => Ok(m.clone()),
            Ok(_) => Ok("sent".into()),
            Err(e) => Err(e.clone()),
        });
        self.report(out);
        true
    }

    fn on_estate(&mut self, ctx: &Ctx, _out: &mut Outbox) {
        // Ordered by name with no filter on status, the rows change only when apps come or
        // go: a status change (the bulk of a busy estate's updates) is read when drawn.
        let by_status = self.sort != Sort::Name || self.only_waiting || !self.filter.is_empty();
        if self.shape != ctx.estate.shape || (by_status && self.generation != ctx.estate.generation)
        {
            self.rebuild(ctx);
        }
    }

    fn keys(&self, ctx: &Ctx) -> Vec<(Intent, &'static str)> {
        let mut v = vec![
            (Intent::Open, "open"),
            (Intent::Filter, "filter"),
            (Intent::NextMatch, "next"),
            (Intent::PrevMatch, "prev"),
            (Intent::Sort, "sort"),
        ];
        if !ctx.read_only {
            v.push((Intent::Mark, "mark"));
            v.push((Intent::Sync, "sync"));
        }
        v.extend([
            (Intent::Diff, "diff"),
            (Intent::Rollout, "rollout"),
            (Intent::Rollback, "history"),
            (Intent::Back, "back"),
        ]);
        v
    }
}
