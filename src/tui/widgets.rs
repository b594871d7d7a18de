//! Small drawing pieces shared by screens: status as glyph + word + colour, the marks of a
//! board cell, truncation by display width, scroll windows, and bordered blocks. Every
//! helper here takes text that is already sanitized or sanitizes it itself ([`clean`]).

use super::theme::{Role, Theme};
use crate::model::text::sanitize;
use crate::model::{HealthStatus, SyncStatus};
use crate::ops::estate::{AppEntry, OutOfSyncCause};
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Borders};
use std::borrow::Cow;
use unicode_width::UnicodeWidthChar;

/// Sanitize outside text for drawing.
pub fn clean(s: &str) -> Cow<'_, str> {
    sanitize(s)
}

pub fn sync_glyph(s: SyncStatus) -> &'static str {
    match s {
        SyncStatus::Synced => "✓",
        SyncStatus::OutOfSync => "≠",
        SyncStatus::Unknown => "?",
    }
}

pub fn sync_short(s: SyncStatus) -> &'static str {
    match s {
        SyncStatus::Synced => "Synced",
        SyncStatus::OutOfSync => "OutOfSync",
        SyncStatus::Unknown => "Unknown",
    }
}

pub fn sync_abbr(s: SyncStatus) -> &'static str {
    match s {
        SyncStatus::Synced => "Syn",
        SyncStatus::OutOfSync => "OOS",
        SyncStatus::Unknown => "Unk",
    }
}

pub fn sync_role(s: SyncStatus) -> Role {
    match s {
        SyncStatus::Synced => Role::Synced,
        SyncStatus::OutOfSync => Role::OutOfSync,
        SyncStatus::Unknown => Role::Unknown,
    }
}

pub fn health_glyph(h: HealthStatus) -> &'static str {
    match h {
        HealthStatus::Healthy => "♥",
        HealthStatus::Progressing => "◔",
        HealthStatus::Degraded => "✗",
        HealthStatus::Missing => "∅",
        HealthStatus::Suspended => "‖",
        HealthStatus::Unknown => "?",
    }
}

pub fn health_abbr(h: HealthStatus) -> &'static str {
    match h {
        HealthStatus::Healthy => "Hlth",
        HealthStatus::Progressing => "Prog",
        HealthStatus::Degraded => "Degr",
        HealthStatus::Missing => "Miss",
        HealthStatus::Suspended => "Susp",
        HealthStatus::Unknown => "Unk",
    }
}

pub fn health_role(h: HealthStatus) -> Role {
    match h {
        HealthStatus::Healthy => Role::Healthy,
        HealthStatus::Progressing => Role::Progressing,
        HealthStatus::Degraded => Role::Degraded,
        HealthStatus::Missing => Role::Missing,
        HealthStatus::Suspended => Role::Suspended,
        HealthStatus::Unknown => Role::Unknown,
    }
}

/// `✓ Synced` in the sync colour.
pub fn sync_span(theme: &Theme, s: SyncStatus, abbreviated: bool) -> Span<'static> {
    let word = if abbreviated {
        sync_abbr(s)
    } else {
        sync_short(s)
    };
    Span::styled(
        format!("{} {}", sync_glyph(s), word),
        theme.style(sync_role(s)),
    )
}

pub fn health_span(theme: &Theme, h: HealthStatus, abbreviated: bool) -> Span<'static> {
    let word = if abbreviated {
        health_abbr(h)
    } else {
        h.as_str()
    };
    Span::styled(
        format!("{} {}", health_glyph(h), word),
        theme.style(health_role(h)),
    )
}

/// Marks on a board cell or an application row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Marks {
    pub awaits_approval: bool,
    pub drift: bool,
    pub lags: bool,
    pub operation: bool,
    /// Auto-sync turned off by shipdeck (a rollback, `autosync off`): since when is on the
    /// app screen.
    pub auto_sync_off: bool,
    /// A four-eyes request waits for a second approver (`1/2`: one of two approvals).
    pub four_eyes: bool,
}

impl Marks {
    pub const LEGEND: &'static [(&'static str, &'static str)] = &[
        ("⚑", "waits for approval"),
        ("≈", "drift: live differs from Git"),
        ("«", "lags the environment before it"),
        ("⟳", "operation running"),
        (
            "⏸",
            "auto-sync turned off by a rollback or shipdeck (since when: app screen)",
        ),
        (
            "1/2",
            "1 of 2 approvals: a four-eyes request waits for a second approver (:requests)",
        ),
    ];

    pub fn spans(&self, theme: &Theme) -> Vec<Span<'static>> {
        let mut v = Vec::new();
        if self.awaits_approval {
            v.push(Span::styled("⚑", theme.style(Role::Warning)));
        }
        if self.drift {
            v.push(Span::styled("≈", theme.style(Role::Danger)));
        }
        if self.lags {
            v.push(Span::styled("«", theme.style(Role::Muted)));
        }
        if self.operation {
            v.push(Span::styled("⟳", theme.style(Role::Progressing)));
        }
        if self.auto_sync_off {
            v.push(Span::styled("⏸", theme.style(Role::Warning)));
        }
        if self.four_eyes {
            v.push(Span::styled("1/2", theme.style(Role::Warning)));
        }
        v
    }

    pub fn words(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.awaits_approval {
            v.push("needs approval");
        }
        if self.drift {
            v.push("drift");
        }
        if self.lags {
            v.push("lags");
        }
        if self.operation {
            v.push("syncing");
        }
        if self.four_eyes {
            v.push("1 of 2 approvals");
        }
        v
    }
}

/// The image tag of an app's own image, else its deployed revision shortened. Argo CD
/// lists an app's images sorted by name, so with a database StatefulSet or a sidecar
/// beside the service the first is not the service's: the image whose repository is named
/// as one of the app's Deployments comes first, then the first listed.
pub fn version_of(entry: &AppEntry) -> String {
    if let Some(v) = entry.board.version.as_deref() {
        return clean(v).into_owned();
    }
    entry
        .board
        .deployed
        .as_ref()
        .map(|r| clean(r.short()).into_owned())
        .unwrap_or_else(|| "-".into())
}

/// Compute an app's marks from the estate's own judgements (approval, lag) and its state.
pub fn marks_of(ctx: &super::view::Ctx, entry: &AppEntry) -> Marks {
    Marks {
        awaits_approval: ctx.estate.waits_for_approval(entry, ctx.policies),
        drift: entry.cause == Some(OutOfSyncCause::Drift),
        lags: ctx.estate.lag(entry).is_some(),
        operation: entry.board.operation_in_progress,
        auto_sync_off: !entry.board.auto_sync && entry.board.auto_sync_off_marked,
        four_eyes: entry.board.four_eyes
            && crate::ops::foureyes::request_of(&entry.app())
                .and_then(Result::ok)
                .is_some_and(|r| chrono::Utc::now() < r.expires),
    }
}

/// Cut a string to a display width, with `…` when cut.
pub fn fit(s: &str, width: usize) -> String {
    let mut out = String::new();
    let mut w = 0;
    let total: usize = s.chars().map(|c| c.width().unwrap_or(0)).sum();
    if total <= width {
        return s.to_string();
    }
    if width == 0 {
        return out;
    }
    for c in s.chars() {
        let cw = c.width().unwrap_or(0);
        if w + cw + 1 > width {
            break;
        }
        out.push(c);
        w += cw;
    }
    out.push('…');
    out
}

/// Cut from the left, keeping the end (`…0612-143022`): the tail of a version tag is
/// what tells two versions apart.
pub fn fit_tail(s: &str, width: usize) -> String {
    let total: usize = s.chars().map(|c| c.width().unwrap_or(0)).sum();
    if total <= width {
        return s.to_string();
    }
    if width == 0 {
        return String::new();
    }
    let mut kept: Vec<char> = Vec::new();
    let mut w = 0;
    for c in s.chars().rev() {
        let cw = c.width().unwrap_or(0);
        if w + cw + 1 > width {
            break;
        }
        kept.push(c);
        w += cw;
    }
    kept.push('…');
    kept.into_iter().rev().collect()
}

/// The breadcrumb of screen titles in `width` columns: the current screen (the last) is
/// kept whole, and the trail is shortened from the left (`… › apps prod › diff cart-prod`).
/// Only when the current screen alone is wider than `width` is it cut, keeping its start.
pub fn breadcrumb(titles: &[String], width: usize) -> String {
    const SEP: &str = " › ";
    let w = |s: &str| s.chars().map(|c| c.width().unwrap_or(0)).sum::<usize>();
    let Some((last, before)) = titles.split_last() else {
        return String::new();
    };
    let whole = titles.join(SEP);
    if w(&whole) <= width {
        return whole;
    }
    if w(last) + 2 > width {
        return fit(last, width);
    }
    // Keep as many trailing crumbs as fit behind `… › `.
    let mut kept: Vec<&str> = vec![last.as_str()];
    let mut used = w(last) + w("…") + w(SEP);
    for t in before.iter().rev() {
        let tw = w(t) + w(SEP);
        if used + tw > width {
            break;
        }
        used += tw;
        kept.push(t.as_str());
    }
    kept.reverse();
    format!("…{SEP}{}", kept.join(SEP))
}

/// Cut the middle, keeping the start and the end (`image cart ghcr…:sha-3fdd1ba`).
pub fn fit_middle(s: &str, width: usize) -> String {
    if display_width(s) <= width {
        return s.to_string();
    }
    if width < 3 {
        return fit(s, width);
    }
    let head_w = (width - 1) / 2;
    let head = fit(s, head_w + 1);
    let head = head.trim_end_matches('…');
    let tail = fit_tail(s, width - display_width(head));
    format!("{head}{}", tail)
}

/// A change's meaning (`image cart A -> B`) in `width` columns: what it becomes is kept
/// whole (the target image is what an operator approves), the middle of what it was is cut
/// first; plain text is cut at the end.
pub fn fit_change(s: &str, width: usize) -> String {
    if display_width(s) <= width {
        return s.to_string();
    }
    const ARROW: &str = " -> ";
    let keep_target = |s: &str| match s.rsplit_once(ARROW) {
        Some((before, after)) if display_width(after) + ARROW.len() + 8 <= width => {
            let room = width - display_width(after) - ARROW.len();
            Some(format!("{}{ARROW}{after}", fit_middle(before, room)))
        }
        _ => None,
    };
    if let Some(f) = keep_target(s) {
        return f;
    }
    // Still too wide: images without their registry and path (`cart:sha-d1e8378`).
    let short: Vec<&str> = s
        .split(' ')
        .map(|w| match w.rsplit_once('/') {
            Some((_, last)) if !last.is_empty() => last,
            _ => w,
        })
        .collect();
    let short = short.join(" ");
    if display_width(&short) <= width {
        return short;
    }
    keep_target(&short).unwrap_or_else(|| fit(&short, width))
}

/// Pad or cut to exactly `width` display columns.
pub fn pad(s: &str, width: usize) -> String {
    let f = fit(s, width);
    let w: usize = f.chars().map(|c| c.width().unwrap_or(0)).sum();
    format!("{f}{}", " ".repeat(width.saturating_sub(w)))
}

/// Display width of a string.
pub fn display_width(s: &str) -> usize {
    s.chars().map(|c| c.width().unwrap_or(0)).sum()
}

pub fn spans_width(spans: &[Span]) -> usize {
    spans.iter().map(|s| s.width()).sum()
}

/// The first visible row so that `selected` stays in a window of `height` rows, keeping
/// the previous offset when possible (no jumping while moving inside the window).
pub fn scroll_offset(selected: usize, height: usize, len: usize) -> usize {
    if height == 0 || len <= height {
        return 0;
    }
    let half = height / 2;
    selected.saturating_sub(half).min(len - height)
}

/// A bordered block with a title in the accent style.
pub fn block<'a>(theme: &Theme, title: impl Into<String>) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_type(BorderType::Rounded)
        .border_style(theme.style(Role::Border))
        .style(theme.style(Role::Text))
        .title(Span::styled(
            format!(" {} ", title.into()),
            theme.style(Role::Accent),
        ))
}

/// A styled one-line label/value pair: `label: value`.
pub fn field<'a>(theme: &Theme, label: &str, value: Vec<Span<'a>>) -> Line<'a> {
    let mut spans = vec![Span::styled(
        format!("{label:<14}"),
        theme.style(Role::Muted),
    )];
    spans.extend(value);
    Line::from(spans)
}

pub fn text<'a>(theme: &Theme, s: impl Into<String>) -> Span<'a> {
    Span::styled(s.into(), theme.style(Role::Text))
}

/// What a screen shows in place of an app's history (or anything else only the whole app
/// carries) while only Argo CD's projected list has been read.
pub const DETAILS_PENDING: &str =
    "history not read yet: Argo CD's list carries none; the whole list is being read";
/// The same, inside a sentence.
pub const DETAILS_PENDING_SHORT: &str = "the app's history is read";

pub fn muted<'a>(theme: &Theme, s: impl Into<String>) -> Span<'a> {
    Span::styled(s.into(), theme.style(Role::Muted))
}

pub fn styled<'a>(theme: &Theme, role: Role, s: impl Into<String>) -> Span<'a> {
    Span::styled(s.into(), theme.style(role))
}

/// Center a rectangle of `w`x`h` in `area` (for popups).
pub fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// A text bar for gauges: `███████░░░ 3/4`.
pub fn bar(value: u32, max: u32, width: usize) -> String {
    if width == 0 {
        return String::new();
    }
    let filled = if max == 0 {
        0
    } else {
        ((value.min(max) as usize) * width)
            .div_ceil(max as usize)
            .min(width)
    };
    format!("{}{}", "█".repeat(filled), "░".repeat(width - filled))
}

/// A time stamp (RFC 3339) as an age: `42s`, `5m`, `3h`, `2d`.
pub fn age(ts: Option<&str>, now: chrono::DateTime<chrono::Utc>) -> String {
    let Some(t) = ts.and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok()) else {
        return "-".into();
    };
    let secs = (now - t.with_timezone(&chrono::Utc)).num_seconds().max(0);
    match secs {
        0..=59 => format!("{secs}s"),
        60..=3599 => format!("{}m", secs / 60),
        3600..=86_399 => format!("{}h", secs / 3600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// The footer: `key what` pairs that fit the width, in order. With `keep_last` the last
/// pair (`? help`) is always kept, dropping earlier ones to make room.
pub fn footer(
    theme: &Theme,
    items: &[(String, String)],
    width: usize,
    keep_last: bool,
) -> Line<'static> {
    let mut spans = Vec::new();
    let mut used = 0;
    let n = items.len();
    let last_w = items
        .last()
        .filter(|_| keep_last)
        .map(|(k, l)| k.chars().count() + l.chars().count() + 3)
        .unwrap_or(0);
    for (i, (key, label)) in items.iter().enumerate() {
        let w = key.chars().count() + label.chars().count() + 3;
        let reserve = if keep_last && i + 1 < n { last_w } else { 0 };
        if used + w + reserve > width {
            continue;
        }
        spans.push(Span::styled(key.clone(), theme.style(Role::Accent)));
        spans.push(muted(theme, format!(" {label}  ")));
        used += w;
    }
    Line::from(spans)
}

pub fn base(theme: &Theme) -> Style {
    theme.style(Role::Text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn breadcrumb_keeps_the_current_screen_and_cuts_from_the_left() {
        let t: Vec<String> = ["board", "apps prod", "app cart-prod", "rollout cart-prod"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(breadcrumb(&t, 200), t.join(" › "));
        let b = breadcrumb(&t, 40);
        assert!(b.ends_with("› rollout cart-prod"), "{b}");
        assert!(b.starts_with("… › "), "{b}");
        assert!(display_width(&b) <= 40, "{b}");
        assert_eq!(breadcrumb(&t[3..], 10), "rollout c…");
    }

    #[test]
    fn a_change_keeps_its_target_whole() {
        let m = "image cart ghcr.io/acme/cart:sha-3fdd1ba -> ghcr.io/acme/cart:sha-d1e8378";
        let f = fit_change(m, 60);
        assert!(f.ends_with(" -> ghcr.io/acme/cart:sha-d1e8378"), "{f}");
        assert!(f.starts_with("image"), "{f}");
        assert!(display_width(&f) <= 60, "{f}");
        assert_eq!(fit_change("short", 60), "short");
        let f = fit_change(m, 30);
        assert!(f.ends_with(" -> cart:sha-d1e8378"), "{f}");
        assert!(display_width(&f) <= 30, "{f}");
        assert_eq!(fit_tail("sha-be2164f", 8), "…be2164f");
    }
}
