//! Applications: every app in one table grouped by environment, sortable, filterable with
//! `/` (then `n`/`N` to move between matches), with `Space` marks for a bulk sync of apps
//! that need no approval. The row index is rebuilt when the estate changes, never while
//! drawing, and only the visible rows are drawn.

use crate::model::{AppId, ApprovalPolicy, Environment};
use crate::ops::estate::AppEntry;
use crate::tui::keymap::Intent;
use crate::tui::request::Request;
use crate::tui::theme::Role;
use crate::tui::view::{Ctx, Level, Outbox, View};
use crate::tui::widgets::{self, clean, pad};
use crossterm::event::{KeyCode, KeyEvent};
use ratatui::Frame;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use std::collections::BTreeSet;

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
    generation: u64,
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
            generation: u64::MAX,
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
        let f = self.filter.to_lowercase();
        e.id.name.to_lowercase().contains(&f)
            || e.service.to_lowercase().contains(&f)
            || e.app.status.sync.status.as_str().to_lowercase() == f
            || e.app.status.health.status.as_str().to_lowercase() == f
    }

    fn rebuild(&mut self, ctx: &Ctx) {
        let keep = self.selected_id();
        let mut entries: Vec<&AppEntry> =
            ctx.estate.apps().filter(|e| self.matches(ctx, e)).collect();
        let health_rank = |e: &AppEntry| {
            std::cmp::Reverse(
                crate::model::HealthStatus::Healthy.worst(e.app.status.health.status) as u8,
            )
        };
        entries.sort_by(|a, b| {
            let by_env = a.environment.cmp(&b.environment);
            let inner = match self.sort {
                Sort::Name => std::cmp::Ordering::Equal,
                Sort::Sync => a
                    .app
                    .status
                    .sync
                    .status
                    .cmp(&b.app.status.sync.status)
                    .reverse(),
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
        self.rows = rows;
        self.generation = ctx.estate.generation;
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

    fn bulk_sync(&mut self, ctx: &Ctx, out: &mut Outbox) {
        if ctx.read_only {
            out.flash(Level::Warning, "read-only mode: sync is disabled");
            return;
        }
        let mut sent = 0;
        let mut skipped = 0;
        for id in std::mem::take(&mut self.marks) {
            match ctx.app(&id) {
                Some(e)
                    if ctx.policy(&e.environment) == ApprovalPolicy::None
                        && !e.app.operation_in_progress() =>
                {
                    out.request(Request::Sync {
                        app: id,
                        approval: None,
                    });
                    sent += 1;
                }
                _ => skipped += 1,
            }
        }
        let msg = if skipped > 0 {
            format!("sync requested for {sent} apps; {skipped} skipped (gated or busy)")
        } else {
            format!("sync requested for {sent} apps")
        };
        out.flash(Level::Info, msg);
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
        self.typing
    }

    fn render(&self, ctx: &Ctx, frame: &mut Frame, area: Rect) {
        let theme = ctx.theme;
        let width = area.width as usize;
        // Columns drop by priority as the terminal narrows: version, then cause.
        let show_version = width >= 70;
        let show_cause = width >= 100;
        let sync_w = 12;
        let health_w = 14;
        let env_w = 9;
        let ver_w = if show_version { 18 } else { 0 };
        let cause_w = if show_cause { 26 } else { 0 };
        // A WAVE column only on estates whose apps carry sync waves.
        let waves = self.rows.iter().any(|r| {
            matches!(r, Row::App(id) if ctx.app(id).is_some_and(|e| app_wave(&e.app).is_some()))
        });
        let wave_w = if waves { 6 } else { 0 };
        let name_w = width
            .saturating_sub(2 + env_w + sync_w + health_w + wave_w + ver_w + cause_w)
            .max(10);
        let mut lines = Vec::with_capacity(area.height as usize);
        let mut status = format!(
            "{} apps · sort: {}",
            self.rows
                .iter()
                .filter(|r| matches!(r, Row::App(_)))
                .count(),
            self.sort.label()
        );
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
        let body_h = (area.height as usize).saturating_sub(2);
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
                    let s = widgets::sync_span(theme, e.app.status.sync.status, false);
                    spans.push(Span::styled(pad(&s.content, sync_w), s.style));
                    let h = widgets::health_span(theme, e.app.status.health.status, false);
                    spans.push(Span::styled(pad(&h.content, health_w), h.style));
                    if waves {
                        let w = app_wave(&e.app).map_or("-".to_string(), |w| w.to_string());
                        spans.push(Span::styled(pad(&w, wave_w), theme.style(Role::Muted)));
                    }
                    if show_version {
                        spans.push(Span::styled(
                            pad(&widgets::version_of(e), ver_w),
                            theme.style(Role::Text),
                        ));
                    }
                    if show_cause {
                        let marks = widgets::marks_of(ctx, e);
                        let mut words = marks.words();
                        if let Some(c) = e.cause
                            && !marks.drift
                        {
                            words.insert(0, c.as_str());
                        }
                        let mut ms = marks.spans(theme);
                        ms.push(Span::raw(" "));
                        ms.push(widgets::muted(theme, words.join(", ")));
                        let txt: String = ms.iter().map(|s| s.content.as_ref()).collect();
                        let _ = txt;
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
        frame.render_widget(Paragraph::new(lines).style(widgets::base(theme)), area);
    }

    fn on_key(&mut self, key: &KeyEvent, ctx: &Ctx, _out: &mut Outbox) -> bool {
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
            KeyCode::Backspace => {
                self.filter.pop();
                self.rebuild(ctx);
            }
            KeyCode::Char(c) if !c.is_control() => {
                self.filter.push(c);
                self.rebuild(ctx);
            }
            _ => {}
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
                            format!("{}: gated environment, approve it on its own (s)", id.name),
                        );
                    } else if !self.marks.remove(&id) {
                        self.marks.insert(id);
                    }
                    self.step(1);
                }
            }
            Intent::Sync if !self.marks.is_empty() => self.bulk_sync(ctx, out),
            Intent::Back => out.pop(),
            _ => {
                let id = self.selected_id();
                super::app_intent(intent, id.as_ref(), ctx, out);
            }
        }
    }

    fn on_estate(&mut self, ctx: &Ctx, _out: &mut Outbox) {
        if self.generation != ctx.estate.generation {
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

/// The `argocd.argoproj.io/sync-wave` of an Application (its place in an app-of-apps sync).
pub(crate) fn app_wave(app: &shipdeck_wire::Application) -> Option<i64> {
    app.metadata
        .annotations
        .get("argocd.argoproj.io/sync-wave")
        .and_then(|w| w.trim().parse().ok())
}
