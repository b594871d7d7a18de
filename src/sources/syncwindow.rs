//! Sync windows evaluated the way Argo CD does, for core mode where no API server answers
//! `syncwindows`: a five-field cron schedule (minute hour day-of-month month day-of-week with
//! `*`, lists, ranges and steps), a duration (`1h`, `30m`, `1h30m`), and the rules that turn
//! active and assigned windows into "may a manual sync run now". Pure: the caller passes the
//! time. Only UTC is evaluated; a window in another time zone is evaluated as UTC and the
//! caller is told so by [`WindowError::TimeZone`] only when it asks [`parse_window`].

use super::SyncWindowsState;
use crate::model::{Application, SyncWindow};
use chrono::{DateTime, Datelike, Duration, Timelike, Utc};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("sync window schedule {0:?}: {1}")]
    Schedule(String, String),
    #[error("sync window duration {0:?} is not like 1h, 30m or 1h30m")]
    Duration(String),
    #[error("sync window time zone {0:?} is evaluated as UTC")]
    TimeZone(String),
}

/// A parsed cron schedule: one bit set per allowed value of each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    dom_star: bool,
    dow_star: bool,
}

impl Schedule {
    pub fn parse(expr: &str) -> Result<Schedule, WindowError> {
        let err = |m: &str| WindowError::Schedule(expr.to_string(), m.to_string());
        let fields: Vec<&str> = expr.split_whitespace().collect();
        if fields.len() != 5 {
            return Err(err(
                "expected 5 fields: minute hour day-of-month month day-of-week",
            ));
        }
        let minutes = field(fields[0], 0, 59).map_err(|m| err(&m))?;
        let hours = field(fields[1], 0, 23).map_err(|m| err(&m))?;
        let days = field(fields[2], 1, 31).map_err(|m| err(&m))?;
        let months = field(fields[3], 1, 12).map_err(|m| err(&m))?;
        let mut weekdays = field(fields[4], 0, 7).map_err(|m| err(&m))?;
        // 7 is Sunday as well as 0.
        if weekdays & (1 << 7) != 0 {
            weekdays |= 1;
        }
        Ok(Schedule {
            minutes,
            hours,
            days,
            months,
            weekdays,
            dom_star: fields[2].starts_with('*'),
            dow_star: fields[4].starts_with('*'),
        })
    }

    /// Whether the schedule fires in the minute containing `t`.
    pub fn matches(&self, t: DateTime<Utc>) -> bool {
        let bit = |set: u64, v: u32| set & (1u64 << v) != 0;
        if !bit(self.minutes, t.minute()) || !bit(self.hours, t.hour()) {
            return false;
        }
        if !bit(self.months, t.month()) {
            return false;
        }
        let dom = bit(self.days, t.day());
        let dow = bit(self.weekdays, t.weekday().num_days_from_sunday());
        // Cron's rule: when both day fields are restricted, either one matching is enough.
        match (self.dom_star, self.dow_star) {
            (true, true) => true,
            (true, false) => dow,
            (false, true) => dom,
            (false, false) => dom || dow,
        }
    }

    /// The most recent firing at or before `now`, looking back at most `within`.
    pub fn last_fire(&self, now: DateTime<Utc>, within: Duration) -> Option<DateTime<Utc>> {
        let start = now.with_second(0)?.with_nanosecond(0)?;
        let minutes = within.num_minutes().clamp(0, 60 * 24 * 62);
        (0..=minutes)
            .map(|m| start - Duration::minutes(m))
            .find(|t| self.matches(*t))
    }
}

fn field(spec: &str, lo: u32, hi: u32) -> Result<u64, String> {
    let mut set = 0u64;
    for part in spec.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (
                r,
                s.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("bad step in {part:?}"))?,
            ),
            None => (part, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (num(a, lo, hi)?, num(b, lo, hi)?)
        } else {
            let a = num(range, lo, hi)?;
            // `5/10` means from 5 to the end in steps of 10.
            (a, if part.contains('/') { hi } else { a })
        };
        if a > b {
            return Err(format!("range {range:?} runs backwards"));
        }
        let mut v = a;
        while v <= b {
            set |= 1u64 << v;
            v += step;
        }
    }
    Ok(set)
}

fn num(s: &str, lo: u32, hi: u32) -> Result<u32, String> {
    let v: u32 = s
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a number"))?;
    if v < lo || v > hi {
        return Err(format!("{v} is outside {lo}-{hi}"));
    }
    Ok(v)
}

/// `1h`, `30m`, `1h30m`, `90s`, `2d` (Go durations plus days).
pub fn parse_duration(s: &str) -> Result<Duration, WindowError> {
    let bad = || WindowError::Duration(s.to_string());
    let mut total = Duration::zero();
    let mut digits = String::new();
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: i64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        total += match c {
            'd' => Duration::days(n),
            'h' => Duration::hours(n),
            'm' => Duration::minutes(n),
            's' => Duration::seconds(n),
            _ => return Err(bad()),
        };
    }
    if !digits.is_empty() || total <= Duration::zero() {
        return Err(bad());
    }
    Ok(total)
}

/// Whether the window is open at `now`.
pub fn is_active(w: &SyncWindow, now: DateTime<Utc>) -> Result<bool, WindowError> {
    let schedule = Schedule::parse(&w.schedule)?;
    let duration = parse_duration(&w.duration)?;
    Ok(schedule
        .last_fire(now, duration)
        .is_some_and(|start| now < start + duration))
}

/// Check a window's values, for reporting a bad AppProject.
pub fn parse_window(w: &SyncWindow) -> Result<(), WindowError> {
    Schedule::parse(&w.schedule)?;
    parse_duration(&w.duration)?;
    match w.time_zone.as_deref() {
        None | Some("") | Some("UTC") | Some("Etc/UTC") => Ok(()),
        Some(tz) => Err(WindowError::TimeZone(tz.to_string())),
    }
}

fn glob(pattern: &str, s: &str) -> bool {
    fn rec(p: &[u8], s: &[u8]) -> bool {
        match p.first() {
            None => s.is_empty(),
            Some(b'*') => (0..=s.len()).any(|i| rec(&p[1..], &s[i..])),
            Some(b'?') => !s.is_empty() && rec(&p[1..], &s[1..]),
            Some(c) => s.first() == Some(c) && rec(&p[1..], &s[1..]),
        }
    }
    rec(pattern.as_bytes(), s.as_bytes())
}

/// Whether a window applies to an app (by name, destination namespace or cluster).
pub fn applies_to(w: &SyncWindow, app: &Application) -> bool {
    let name = &app.metadata.name;
    let dest = &app.spec.destination;
    let ns = dest.namespace.as_deref().unwrap_or("");
    w.applications.iter().any(|p| glob(p, name))
        || w.namespaces.iter().any(|p| glob(p, ns))
        || w.clusters.iter().any(|p| {
            dest.server.as_deref().is_some_and(|s| glob(p, s))
                || dest.name.as_deref().is_some_and(|n| glob(p, n))
        })
}

/// The windows of a project for an app at `now`, and whether a manual sync may run, with
/// Argo CD's rules: an active deny blocks unless it allows manual syncs; allow windows that
/// exist but are all closed block unless one allows manual syncs. Windows that do not parse
/// are skipped (the caller reports them via [`parse_window`]).
pub fn evaluate(windows: &[SyncWindow], app: &Application, now: DateTime<Utc>) -> SyncWindowsState {
    let assigned: Vec<SyncWindow> = windows
        .iter()
        .filter(|w| applies_to(w, app))
        .cloned()
        .collect();
    let active: Vec<SyncWindow> = assigned
        .iter()
        .filter(|w| is_active(w, now).unwrap_or(false))
        .cloned()
        .collect();
    let active_deny: Vec<&SyncWindow> = active.iter().filter(|w| w.kind == "deny").collect();
    let active_allow = active.iter().any(|w| w.kind == "allow");
    let inactive_allow: Vec<&SyncWindow> = assigned
        .iter()
        .filter(|w| w.kind == "allow" && !active.contains(w))
        .collect();
    let can_sync = if !active_deny.is_empty() {
        active_deny.iter().all(|w| w.manual_sync)
    } else if !active_allow && !inactive_allow.is_empty() {
        inactive_allow.iter().any(|w| w.manual_sync)
    } else {
        true
    };
    SyncWindowsState {
        can_sync,
        active,
        assigned,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
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

    #[test]
    fn cron_fields() {
        let s = Schedule::parse("*/15 9-17 * * 1-5").unwrap();
        // 2026-11-20 is a Friday.
        assert!(s.matches(at(2026, 11, 20, 9, 30)));
        assert!(!s.matches(at(2026, 11, 20, 9, 31)));
        assert!(!s.matches(at(2026, 11, 21, 9, 30)));
        let s = Schedule::parse("0 22 1,15 * 0").unwrap();
        assert!(s.matches(at(2026, 11, 1, 22, 0)));
        assert!(
            s.matches(at(2026, 11, 22, 22, 0)),
            "Sunday matches by weekday"
        );
        assert!(!s.matches(at(2026, 11, 2, 22, 0)));
        assert!(Schedule::parse("0 25 * * *").is_err());
        assert!(Schedule::parse("0 * *").is_err());
        assert!(
            Schedule::parse("0 0 * * 7")
                .unwrap()
                .matches(at(2026, 11, 22, 0, 0))
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("1h30m").unwrap(), Duration::minutes(90));
        assert_eq!(parse_duration("2d").unwrap(), Duration::days(2));
        assert!(parse_duration("1x").is_err());
        assert!(parse_duration("10").is_err());
    }

    #[test]
    fn deny_window_blocks_unless_manual() {
        let app = Application::default();
        let now = at(2026, 11, 20, 22, 30);
        let mut deny = window("deny", "0 22 * * *", "1h");
        let st = evaluate(std::slice::from_ref(&deny), &app, now);
        assert!(!st.can_sync);
        assert_eq!(st.active.len(), 1);
        deny.manual_sync = true;
        assert!(evaluate(&[deny.clone()], &app, now).can_sync);
        let later = at(2026, 11, 20, 23, 0);
        assert!(
            evaluate(&[deny], &app, later).can_sync,
            "window closed at 23:00"
        );
    }

    #[test]
    fn closed_allow_window_blocks() {
        let app = Application::default();
        let allow = window("allow", "0 6 * * *", "2h");
        assert!(evaluate(std::slice::from_ref(&allow), &app, at(2026, 11, 20, 7, 0)).can_sync);
        assert!(!evaluate(&[allow], &app, at(2026, 11, 20, 9, 0)).can_sync);
    }

    #[test]
    fn windows_match_by_name_namespace_cluster() {
        let mut app = Application::default();
        app.metadata.name = "shop-prod".into();
        app.spec.destination.namespace = Some("shop".into());
        let mut w = window("deny", "* * * * *", "1h");
        w.applications = vec!["*-dev".into()];
        assert!(!applies_to(&w, &app));
        w.namespaces = vec!["sh?p".into()];
        assert!(applies_to(&w, &app));
    }
}
