//! AppProject sync windows, evaluated the way Argo CD does (`SyncWindows.Matches`, `Active`,
//! `InactiveAllows` and `CanSync` in argoproj/argo-cd `pkg/apis/application/v1alpha1/types.go`),
//! so that the sandbox (which plays Argo CD) and the product (which must predict Argo CD in core
//! mode, where no API server answers `syncwindows`) share one engine.
//!
//! - `schedule`: five cron fields as robfig/cron v3's parser with
//!   `Minute | Hour | Dom | Month | Dow` reads them: `*`, `?`, lists, ranges, steps (`N/s` runs
//!   from N to the field's end), month and weekday names, weekdays 0-6 (7 is an error, as
//!   there), day-of-month and day-of-week OR-ed unless either starts with `*`/`?`; an optional
//!   `TZ=`/`CRON_TZ=` prefix. No `@daily` descriptors (that parser refuses them).
//! - `duration`: Go's `time.ParseDuration` (`1h`, `30m`, `1h30m`, `1.5h`, `90s`; no `d`).
//! - A window is active when a start its schedule names lies in `(now - duration, now)`.
//! - `timeZone`: the schedule is read as wall-clock time in that IANA zone (chrono-tz), so a
//!   `0 9 * * 1-5` window in Europe/Berlin opens at 09:00 Berlin time in summer and in winter.
//!   Argo CD shifts by the zone's offset *now*; the two agree except within one window length
//!   of a daylight-saving change. A start that falls in a spring-forward gap does not happen;
//!   one in a fall-back fold happens at its first occurrence.
//! - Targets: `applications` (app name), `clusters` (destination name or server), `namespaces`
//!   (destination namespace), glob patterns (globset: `*`, `?`, `[..]`, `{a,b}`), OR-ed, or
//!   all that are set must match when `andOperator` is true.
//! - Can a sync run: an active deny blocks, unless the sync is manual and every active deny
//!   has `manualSync`; otherwise an active allow lets it through; otherwise assigned allow
//!   windows that are all closed block, unless the sync is manual and all of them have
//!   `manualSync`; an app with no windows syncs.
//!
//! Fail closed where Argo CD would guess: a window whose schedule, duration, kind, time zone
//! or patterns do not parse makes [`Evaluation::can_sync`] false and is named in
//! [`Evaluation::errors`] (Argo CD refuses on a bad schedule or duration too; it would
//! evaluate an unknown time zone as UTC and treat a bad pattern as no match).

use crate::{Application, SyncWindow};
use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use globset::{Glob, GlobMatcher};
use std::fmt;

/// Why a window cannot be evaluated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WindowError {
    Kind(String),
    Schedule { schedule: String, reason: String },
    Duration(String),
    TimeZone(String),
    Pattern { pattern: String, reason: String },
}

impl fmt::Display for WindowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowError::Kind(k) => write!(f, "kind '{k}' mismatch: can only be allow or deny"),
            WindowError::Schedule { schedule, reason } => {
                write!(f, "cannot parse schedule '{schedule}': {reason}")
            }
            WindowError::Duration(d) => write!(
                f,
                "cannot parse duration '{d}': not a Go duration like 1h, 30m or 1h30m"
            ),
            WindowError::TimeZone(tz) => write!(f, "unknown time zone '{tz}'"),
            WindowError::Pattern { pattern, reason } => {
                write!(f, "cannot parse pattern '{pattern}': {reason}")
            }
        }
    }
}

impl std::error::Error for WindowError {}

const STAR: u64 = 1 << 63;

/// A parsed five-field cron schedule: one bit per allowed value of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minute: u64,
    hour: u64,
    dom: u64,
    month: u64,
    dow: u64,
    /// A `TZ=`/`CRON_TZ=` prefix: the zone the schedule names, over the window's own.
    zone: Option<Tz>,
}

struct Bounds {
    min: u32,
    max: u32,
    names: &'static [(&'static str, u32)],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
    ],
};

impl Schedule {
    pub fn parse(spec: &str) -> Result<Schedule, WindowError> {
        let err = |reason: String| WindowError::Schedule {
            schedule: spec.to_string(),
            reason,
        };
        let mut rest = spec.trim();
        if rest.is_empty() {
            return Err(err("empty spec string".into()));
        }
        let mut zone = None;
        for prefix in ["CRON_TZ=", "TZ="] {
            if let Some(r) = rest.strip_prefix(prefix) {
                let (name, tail) = r.split_once(char::is_whitespace).unwrap_or((r, ""));
                zone = Some(
                    name.parse::<Tz>()
                        .map_err(|_| err(format!("provided bad location {name}")))?,
                );
                rest = tail.trim();
                break;
            }
        }
        if rest.starts_with('@') {
            return Err(err(format!("parser does not accept descriptors: {rest}")));
        }
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(err(format!(
                "expected exactly 5 fields, found {}: {rest}",
                fields.len()
            )));
        }
        Ok(Schedule {
            minute: field(fields[0], &MINUTES).map_err(err)?,
            hour: field(fields[1], &HOURS).map_err(err)?,
            dom: field(fields[2], &DOM).map_err(err)?,
            month: field(fields[3], &MONTHS).map_err(err)?,
            dow: field(fields[4], &DOW).map_err(err)?,
            zone,
        })
    }

    fn day_matches(&self, d: NaiveDate) -> bool {
        if !bit(self.month, d.month()) {
            return false;
        }
        let dom = bit(self.dom, d.day());
        let dow = bit(self.dow, d.weekday().num_days_from_sunday());
        if self.dom & STAR != 0 || self.dow & STAR != 0 {
            dom && dow
        } else {
            dom || dow
        }
    }

    /// The latest start strictly before `now` and strictly after `after`, reading the
    /// schedule as wall-clock time in `tz` (or the schedule's own `TZ=` zone).
    pub fn last_start(
        &self,
        tz: Tz,
        now: DateTime<Utc>,
        after: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let tz = self.zone.unwrap_or(tz);
        if after >= now {
            return None;
        }
        let today = now.with_timezone(&tz).date_naive();
        // One day of slack for zone offsets; at most nine years back (a 29 February start
        // recurs within eight), however long the window.
        let first = after.with_timezone(&tz).date_naive();
        let first = first.pred_opt().unwrap_or(first);
        let mut day = today;
        for _ in 0..(366 * 9) {
            if day < first {
                break;
            }
            if self.day_matches(day) {
                for h in (0..24u32).rev().filter(|h| bit(self.hour, *h)) {
                    for m in (0..60u32).rev().filter(|m| bit(self.minute, *m)) {
                        let Some(local) = day.and_hms_opt(h, m, 0) else {
                            continue;
                        };
                        // A gap (spring forward) yields None: that start does not happen.
                        let Some(t) = tz.from_local_datetime(&local).earliest() else {
                            continue;
                        };
                        let t = t.with_timezone(&Utc);
                        if t < now {
                            return (t > after).then_some(t);
                        }
                    }
                }
            }
            day = day.pred_opt()?;
        }
        None
    }
}

fn bit(set: u64, v: u32) -> bool {
    set & (1u64 << v) != 0
}

/// One cron field: comma-separated ranges, as robfig/cron's `getField`/`getRange`.
fn field(spec: &str, b: &Bounds) -> Result<u64, String> {
    let mut bits = 0u64;
    for expr in spec.split(',') {
        let (range, step) = match expr.split_once('/') {
            Some((r, s)) => {
                if s.contains('/') {
                    return Err(format!("too many slashes: {expr}"));
                }
                (r, Some(s))
            }
            None => (expr, None),
        };
        let lo_hi: Vec<&str> = range.split('-').collect();
        let mut extra = 0u64;
        let (start, mut end) = if lo_hi[0] == "*" || lo_hi[0] == "?" {
            if lo_hi.len() > 1 {
                return Err(format!("too many hyphens: {expr}"));
            }
            extra = STAR;
            (b.min, b.max)
        } else {
            let start = int_or_name(lo_hi[0], b)?;
            match lo_hi.len() {
                1 => (start, start),
                2 => (start, int_or_name(lo_hi[1], b)?),
                _ => return Err(format!("too many hyphens: {expr}")),
            }
        };
        let step = match step {
            None => 1,
            Some(s) => {
                let n = int(s)?;
                if lo_hi.len() == 1 {
                    end = b.max;
                }
                if n > 1 {
                    extra = 0;
                }
                n
            }
        };
        if start < b.min {
            return Err(format!(
                "beginning of range ({start}) below minimum ({}): {expr}",
                b.min
            ));
        }
        if end > b.max {
            return Err(format!(
                "end of range ({end}) above maximum ({}): {expr}",
                b.max
            ));
        }
        if start > end {
            return Err(format!(
                "beginning of range ({start}) beyond end of range ({end}): {expr}"
            ));
        }
        if step == 0 {
            return Err(format!("step of range should be a positive number: {expr}"));
        }
        let mut v = start;
        while v <= end {
            bits |= 1u64 << v;
            v += step;
        }
        bits |= extra;
    }
    Ok(bits)
}

fn int_or_name(s: &str, b: &Bounds) -> Result<u32, String> {
    let lower = s.to_ascii_lowercase();
    match b.names.iter().find(|(n, _)| *n == lower) {
        Some((_, v)) => Ok(*v),
        None => int(s),
    }
}

fn int(s: &str) -> Result<u32, String> {
    let n: i64 = s
        .parse()
        .map_err(|_| format!("failed to parse int from {s}"))?;
    if n < 0 {
        return Err(format!("negative number ({n}) not allowed: {s}"));
    }
    u32::try_from(n).map_err(|_| format!("failed to parse int from {s}"))
}

/// Go's `time.ParseDuration`: a sequence of decimal numbers with units `ns`, `us`/`µs`,
/// `ms`, `s`, `m`, `h`, optionally signed (`1h30m`, `1.5h`, `-30m`, `0`).
pub fn parse_duration(s: &str) -> Result<Duration, WindowError> {
    let bad = || WindowError::Duration(s.to_string());
    let mut rest = s;
    let mut negative = false;
    if let Some(r) = rest.strip_prefix('-') {
        negative = true;
        rest = r;
    } else if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    }
    if rest == "0" {
        return Ok(Duration::zero());
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let not_digit = |c: char| !c.is_ascii_digit();
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let end = rest.find(not_digit).unwrap_or(rest.len());
        let (whole, r) = rest.split_at(end);
        rest = r;
        let mut frac = "";
        if let Some(r) = rest.strip_prefix('.') {
            let end = r.find(not_digit).unwrap_or(r.len());
            frac = &r[..end];
            rest = &r[end..];
        }
        if whole.is_empty() && frac.is_empty() {
            return Err(bad());
        }
        let end = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (unit, r) = rest.split_at(end);
        rest = r;
        let scale: i128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return Err(bad()),
        };
        let whole: i128 = if whole.is_empty() {
            0
        } else {
            whole.parse().map_err(|_| bad())?
        };
        let mut nanos = whole.checked_mul(scale).ok_or_else(bad)?;
        // Fractions beyond nanoseconds do not count; 18 digits keep the arithmetic in range.
        let frac = &frac[..frac.len().min(18)];
        if !frac.is_empty() {
            let f: i128 = frac.parse().map_err(|_| bad())?;
            nanos += f * scale / 10i128.pow(frac.len() as u32);
        }
        total = total.checked_add(nanos).ok_or_else(bad)?;
        if total > i64::MAX as i128 {
            return Err(bad());
        }
    }
    let total = i64::try_from(total).map_err(|_| bad())?;
    Ok(Duration::nanoseconds(if negative { -total } else { total }))
}

/// The zone a window's schedule is read in: `timeZone`, UTC when unset.
pub fn zone(w: &SyncWindow) -> Result<Tz, WindowError> {
    match w.time_zone.as_deref().map(str::trim) {
        None | Some("") => Ok(Tz::UTC),
        Some(name) => name
            .parse::<Tz>()
            .map_err(|_| WindowError::TimeZone(name.to_string())),
    }
}

/// What a window is matched against: the app's name and destination.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Target<'a> {
    pub name: &'a str,
    pub namespace: &'a str,
    pub cluster_name: &'a str,
    pub cluster_server: &'a str,
}

impl<'a> Target<'a> {
    pub fn of(app: &'a Application) -> Target<'a> {
        let d = &app.spec.destination;
        Target {
            name: &app.metadata.name,
            namespace: d.namespace.as_deref().unwrap_or(""),
            cluster_name: d.name.as_deref().unwrap_or(""),
            cluster_server: d.server.as_deref().unwrap_or(""),
        }
    }
}

fn matchers(patterns: &[String]) -> Result<Vec<GlobMatcher>, WindowError> {
    patterns
        .iter()
        .map(|p| {
            Glob::new(p)
                .map(|g| g.compile_matcher())
                .map_err(|e| WindowError::Pattern {
                    pattern: p.clone(),
                    reason: e.kind().to_string(),
                })
        })
        .collect()
}

/// Whether a window applies to the target, as Argo CD's `SyncWindows.Matches`.
pub fn applies(w: &SyncWindow, t: &Target<'_>) -> Result<bool, WindowError> {
    let apps = matchers(&w.applications)?;
    let clusters = matchers(&w.clusters)?;
    let namespaces = matchers(&w.namespaces)?;
    let app_hit = apps.iter().any(|g| g.is_match(t.name));
    let cluster_hit = clusters.iter().any(|g| {
        (!t.cluster_name.is_empty() && g.is_match(t.cluster_name))
            || (!t.cluster_server.is_empty() && g.is_match(t.cluster_server))
    });
    let ns_hit = namespaces.iter().any(|g| g.is_match(t.namespace));
    if w.and_operator {
        let set = [
            (!apps.is_empty(), app_hit),
            (!clusters.is_empty(), cluster_hit),
            (!namespaces.is_empty(), ns_hit),
        ];
        Ok(set.iter().any(|(s, _)| *s) && set.iter().all(|(s, hit)| !*s || *hit))
    } else {
        Ok(app_hit || cluster_hit || ns_hit)
    }
}

/// Whether the window is open at `now`.
pub fn is_active(w: &SyncWindow, now: DateTime<Utc>) -> Result<bool, WindowError> {
    let schedule = Schedule::parse(&w.schedule)?;
    let duration = parse_duration(&w.duration)?;
    let tz = zone(w)?;
    if duration <= Duration::zero() {
        return Ok(false);
    }
    let after = now
        .checked_sub_signed(duration)
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    Ok(schedule.last_start(tz, now, after).is_some())
}

/// Every value of a window checked, for reporting a bad AppProject.
pub fn validate(w: &SyncWindow) -> Result<(), WindowError> {
    if w.kind != "allow" && w.kind != "deny" {
        return Err(WindowError::Kind(w.kind.clone()));
    }
    Schedule::parse(&w.schedule)?;
    parse_duration(&w.duration)?;
    zone(w)?;
    matchers(&w.applications)?;
    matchers(&w.clusters)?;
    matchers(&w.namespaces)?;
    Ok(())
}

/// A project's windows seen from one app at one instant.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evaluation {
    /// The windows that apply to the app.
    pub assigned: Vec<SyncWindow>,
    /// The assigned windows open now.
    pub active: Vec<SyncWindow>,
    /// Windows that could not be evaluated (each makes `can_sync` false).
    pub errors: Vec<(usize, WindowError)>,
}

impl Evaluation {
    /// Argo CD's `CanSync(isManual)`, failing closed on any window in `errors`.
    pub fn can_sync(&self, manual: bool) -> bool {
        self.refusal(manual).is_none()
    }

    /// Why a sync may not run now, or None when it may.
    pub fn refusal(&self, manual: bool) -> Option<String> {
        if let Some((i, e)) = self.errors.first() {
            return Some(format!("invalid sync window {i}: {e}"));
        }
        let denies: Vec<&SyncWindow> = self.active.iter().filter(|w| w.kind == "deny").collect();
        if !denies.is_empty() {
            if manual && denies.iter().all(|w| w.manual_sync) {
                return None;
            }
            return Some(format!(
                "a deny sync window is open ({})",
                describe(denies[0])
            ));
        }
        if self.active.iter().any(|w| w.kind == "allow") {
            return None;
        }
        let closed: Vec<&SyncWindow> = self
            .assigned
            .iter()
            .filter(|w| w.kind == "allow" && !self.active.contains(w))
            .collect();
        if !closed.is_empty() {
            if manual && closed.iter().all(|w| w.manual_sync) {
                return None;
            }
            return Some(format!(
                "no allow sync window is open ({})",
                describe(closed[0])
            ));
        }
        None
    }
}

fn describe(w: &SyncWindow) -> String {
    let tz = w
        .time_zone
        .as_deref()
        .filter(|z| !z.is_empty())
        .unwrap_or("UTC");
    format!("{} '{}' for {} {}", w.kind, w.schedule, w.duration, tz)
}

/// The windows that apply to `target` and which of them are open at `now`.
pub fn evaluate(windows: &[SyncWindow], target: &Target<'_>, now: DateTime<Utc>) -> Evaluation {
    let mut out = Evaluation::default();
    for (i, w) in windows.iter().enumerate() {
        match applies(w, target) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                // Whether it applies cannot be told: refuse rather than guess.
                out.errors.push((i, e));
                continue;
            }
        }
        out.assigned.push(w.clone());
        if let Err(e) = validate(w) {
            out.errors.push((i, e));
            continue;
        }
        match is_active(w, now) {
            Ok(true) => out.active.push(w.clone()),
            Ok(false) => {}
            Err(e) => out.errors.push((i, e)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn window(kind: &str, schedule: &str, duration: &str) -> SyncWindow {
        SyncWindow {
            kind: kind.into(),
            schedule: schedule.into(),
            duration: duration.into(),
            applications: vec!["*".into()],
            ..Default::default()
        }
    }

    fn open(schedule: &str, duration: &str, tz: Option<&str>, now: &str) -> bool {
        let mut w = window("allow", schedule, duration);
        w.time_zone = tz.map(String::from);
        is_active(&w, at(now)).unwrap()
    }

    const APP: Target<'static> = Target {
        name: "shop-prod",
        namespace: "shop",
        cluster_name: "in-cluster",
        cluster_server: "https://kubernetes.default.svc",
    };

    #[test]
    fn cron_fields_as_robfig() {
        // 2026-11-20 is a Friday.
        assert!(open(
            "*/15 9-17 * * 1-5",
            "1m",
            None,
            "2026-11-20T09:30:30Z"
        ));
        assert!(!open(
            "*/15 9-17 * * 1-5",
            "1m",
            None,
            "2026-11-20T09:31:30Z"
        ));
        assert!(!open(
            "*/15 9-17 * * 1-5",
            "1m",
            None,
            "2026-11-21T09:30:30Z"
        ));
        // Both day fields restricted: either matches.
        assert!(open("0 22 1,15 * 0", "1h", None, "2026-11-01T22:10:00Z"));
        assert!(open("0 22 1,15 * sun", "1h", None, "2026-11-22T22:10:00Z"));
        assert!(!open("0 22 1,15 * 0", "1h", None, "2026-11-02T22:10:00Z"));
        // Day-of-month `*`: both must match.
        assert!(!open("0 22 * * 0", "1h", None, "2026-11-02T22:10:00Z"));
        assert!(open("0 0 * JAN-mar *", "1h", None, "2026-02-03T00:10:00Z"));
        assert!(!open("0 0 * jan-mar *", "1h", None, "2026-04-03T00:10:00Z"));
        // `N/step` runs to the end of the field.
        assert!(open("5/20 * * * *", "1m", None, "2026-04-03T07:45:10Z"));
        assert!(!open("5/20 * * * *", "1m", None, "2026-04-03T07:44:10Z"));
        for bad in [
            "0 25 * * *",
            "0 * *",
            "0 0 * * 7",
            "@daily",
            "0 0 * * * *",
            "*/0 * * * *",
            "5-1 * * * *",
            "",
            "x * * * *",
        ] {
            assert!(Schedule::parse(bad).is_err(), "{bad:?} should not parse");
        }
        assert!(Schedule::parse("? * * * ?").is_ok());
    }

    #[test]
    fn open_interval_is_after_start_and_before_end() {
        let now = "2026-03-06T22:00:00Z";
        assert!(
            !open("0 22 * * *", "1h", None, now),
            "not yet at the start instant"
        );
        assert!(open("0 22 * * *", "1h", None, "2026-03-06T22:00:01Z"));
        assert!(open("0 22 * * *", "1h", None, "2026-03-06T22:59:59Z"));
        assert!(!open("0 22 * * *", "1h", None, "2026-03-06T23:00:00Z"));
        // A window that started yesterday and runs past midnight.
        assert!(open("0 22 * * *", "8h", None, "2026-03-07T05:00:00Z"));
        assert!(open("0 0 * * *", "24h", None, "2026-03-06T22:30:00Z"));
        assert!(!open("0 0 * * *", "0", None, "2026-03-06T00:00:30Z"));
        // The longest Go duration reaches past chrono's first day: still evaluated.
        assert!(open("0 0 * * *", "2562047h", None, "2026-03-06T00:00:30Z"));
    }

    #[test]
    fn durations_as_go() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::minutes(90));
        assert_eq!(parse_duration("1.5h").unwrap(), Duration::minutes(90));
        assert_eq!(parse_duration("90s").unwrap(), Duration::seconds(90));
        assert_eq!(
            parse_duration("300ms").unwrap(),
            Duration::milliseconds(300)
        );
        assert_eq!(parse_duration("-30m").unwrap(), Duration::minutes(-30));
        assert_eq!(parse_duration("0").unwrap(), Duration::zero());
        assert_eq!(parse_duration("1.s").unwrap(), Duration::seconds(1));
        for bad in ["", "2d", "10", "1x", "h", ".h", "1h ", "- 1h"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn time_zone_is_wall_clock_in_the_zone() {
        // 09:00 in Berlin is 08:00 UTC in winter (CET) and 07:00 UTC in summer (CEST).
        let berlin = Some("Europe/Berlin");
        assert!(open("0 9 * * *", "1h", berlin, "2026-01-15T08:30:00Z"));
        assert!(!open("0 9 * * *", "1h", berlin, "2026-01-15T07:30:00Z"));
        assert!(open("0 9 * * *", "1h", berlin, "2026-07-15T07:30:00Z"));
        assert!(!open("0 9 * * *", "1h", berlin, "2026-07-15T08:30:00Z"));
        // The same window in UTC is open at neither of the summer instants' zone times.
        assert!(!open("0 9 * * *", "1h", None, "2026-07-15T07:30:00Z"));
        // Weekday boundaries follow the zone: Friday 20:00 in New York is Saturday in UTC.
        let ny = Some("America/New_York");
        assert!(open("0 20 * * fri", "2h", ny, "2026-11-21T01:30:00Z"));
        assert!(!open("0 20 * * fri", "2h", None, "2026-11-21T01:30:00Z"));
        // A schedule's own TZ= prefix wins.
        assert!(open(
            "CRON_TZ=Asia/Tokyo 0 9 * * *",
            "1h",
            None,
            "2026-07-15T00:30:00Z"
        ));
        // A start inside the spring-forward gap (02:30 on 2026-03-29 in Berlin) does not
        // happen that day.
        assert!(!open("30 2 29 3 *", "1h", berlin, "2026-03-29T01:45:00Z"));
        // An unknown zone is an error, not UTC.
        let mut w = window("deny", "* * * * *", "1h");
        w.time_zone = Some("Mars/Olympus".into());
        assert!(matches!(
            is_active(&w, at("2026-01-01T00:00:00Z")),
            Err(WindowError::TimeZone(_))
        ));
        let e = evaluate(&[w], &APP, at("2026-01-01T00:00:00Z"));
        assert!(!e.can_sync(true));
        assert!(e.refusal(true).unwrap().contains("Mars/Olympus"));
    }

    #[test]
    fn targets_by_glob_with_or_and_and() {
        let mut w = window("deny", "* * * * *", "1h");
        w.applications = vec!["*-dev".into()];
        assert!(!applies(&w, &APP).unwrap());
        w.namespaces = vec!["sh?p".into()];
        assert!(applies(&w, &APP).unwrap(), "OR: the namespace is enough");
        w.and_operator = true;
        assert!(
            !applies(&w, &APP).unwrap(),
            "AND: the app name must match too"
        );
        w.applications = vec!["shop-{prod,staging}".into()];
        assert!(applies(&w, &APP).unwrap());
        w.clusters = vec!["https://*".into()];
        assert!(applies(&w, &APP).unwrap(), "clusters match the server URL");
        w.clusters = vec!["other".into()];
        assert!(!applies(&w, &APP).unwrap());
        let none = SyncWindow {
            and_operator: true,
            ..window("deny", "* * * * *", "1h")
        };
        let none = SyncWindow {
            applications: vec![],
            ..none
        };
        assert!(
            !applies(&none, &APP).unwrap(),
            "a window naming nothing applies to nothing"
        );
        let mut bad = window("deny", "* * * * *", "1h");
        bad.applications = vec!["[".into()];
        let e = evaluate(&[bad], &APP, at("2026-01-01T00:00:00Z"));
        assert!(!e.can_sync(true), "an unreadable pattern refuses");
    }

    #[test]
    fn can_sync_as_argo() {
        let night = at("2026-11-20T22:30:00Z");
        let day = at("2026-11-20T10:30:00Z");
        let mut deny = window("deny", "0 22 * * *", "1h");
        let e = evaluate(std::slice::from_ref(&deny), &APP, night);
        assert_eq!(e.active.len(), 1);
        assert!(!e.can_sync(true) && !e.can_sync(false));
        assert!(e.refusal(false).unwrap().contains("deny"));
        deny.manual_sync = true;
        let e = evaluate(std::slice::from_ref(&deny), &APP, night);
        assert!(e.can_sync(true) && !e.can_sync(false));
        // Every active deny must allow manual syncs.
        let strict = window("deny", "0 21 * * *", "4h");
        assert!(!evaluate(&[deny.clone(), strict], &APP, night).can_sync(true));
        assert!(evaluate(&[deny], &APP, day).can_sync(false), "closed deny");

        let mut allow = window("allow", "0 9 * * *", "8h");
        assert!(evaluate(std::slice::from_ref(&allow), &APP, day).can_sync(false));
        let e = evaluate(std::slice::from_ref(&allow), &APP, night);
        assert!(!e.can_sync(true));
        assert!(e.refusal(true).unwrap().contains("no allow"));
        allow.manual_sync = true;
        assert!(evaluate(std::slice::from_ref(&allow), &APP, night).can_sync(true));
        // Closed allows all need manualSync for a manual sync to pass.
        let other = window("allow", "0 3 * * *", "1h");
        assert!(!evaluate(&[allow.clone(), other.clone()], &APP, night).can_sync(true));
        // One open allow is enough, and a deny that is open beats it.
        let always = window("allow", "* * * * *", "1h");
        assert!(evaluate(&[other.clone(), always.clone()], &APP, night).can_sync(false));
        let deny = window("deny", "0 22 * * *", "1h");
        assert!(!evaluate(&[always, deny], &APP, night).can_sync(true));
        // Windows for other apps do not count.
        let mut elsewhere = window("deny", "* * * * *", "1h");
        elsewhere.applications = vec!["kafka-*".into()];
        let e = evaluate(&[elsewhere], &APP, night);
        assert!(e.assigned.is_empty() && e.can_sync(false));
        assert!(evaluate(&[], &APP, night).can_sync(false));
        // A bad kind, schedule or duration on an assigned window refuses.
        for w in [
            window("block", "* * * * *", "1h"),
            window("deny", "0 0 * * 7", "1h"),
            window("deny", "* * * * *", "2d"),
        ] {
            assert!(!evaluate(&[w], &APP, night).can_sync(true));
        }
    }

    #[test]
    fn wire_shape_round_trips() {
        let w: SyncWindow = serde_json::from_value(serde_json::json!({
            "kind": "allow", "schedule": "0 9 * * 1-5", "duration": "8h",
            "namespaces": ["shop"], "manualSync": true, "timeZone": "Europe/Berlin",
            "andOperator": true
        }))
        .unwrap();
        assert!(w.and_operator && w.manual_sync);
        assert_eq!(w.time_zone.as_deref(), Some("Europe/Berlin"));
        let back = serde_json::to_value(&w).unwrap();
        assert_eq!(back["andOperator"], true);
        let plain = serde_json::to_value(window("deny", "* * * * *", "1h")).unwrap();
        assert!(plain.get("andOperator").is_none());
    }
}
