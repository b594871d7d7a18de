//! AppProject sync windows as Argo CD evaluates them: which windows apply to an app, which
//! are active now (cron schedule + duration, UTC), and whether a manual sync may go ahead.

use crate::store::APPPROJECTS;
use crate::{ARGOCD_NAMESPACE, IN_CLUSTER, World};
use chrono::{DateTime, Datelike, Duration, Timelike, Utc};
use serde_json::Value;

#[derive(Debug, Clone, Default)]
pub struct SyncWindows {
    pub assigned: Vec<Value>,
    pub active: Vec<Value>,
    pub can_sync: bool,
}

/// The windows of the app's project that apply to it, and whether a manual sync may run now.
pub fn sync_windows(world: &World, app: &Value, now: DateTime<Utc>) -> SyncWindows {
    let project = app["spec"]["project"].as_str().unwrap_or("default");
    let Some(proj) = world
        .store
        .get(IN_CLUSTER, APPPROJECTS, ARGOCD_NAMESPACE, project)
    else {
        return SyncWindows {
            can_sync: true,
            ..Default::default()
        };
    };
    let assigned: Vec<Value> = proj["spec"]["syncWindows"]
        .as_array()
        .map(|ws| ws.iter().filter(|w| matches(w, app)).cloned().collect())
        .unwrap_or_default();
    let active: Vec<Value> = assigned
        .iter()
        .filter(|w| is_active(w, now))
        .cloned()
        .collect();
    let kind = |w: &Value, k: &str| w["kind"].as_str() == Some(k);
    let manual = |w: &Value| w["manualSync"].as_bool().unwrap_or(false);
    let can_sync = if active.iter().any(|w| kind(w, "deny")) {
        active.iter().filter(|w| kind(w, "deny")).all(manual)
    } else if assigned.iter().any(|w| kind(w, "allow")) {
        active.iter().any(|w| kind(w, "allow"))
            || assigned.iter().filter(|w| kind(w, "allow")).any(manual)
    } else {
        true
    };
    SyncWindows {
        assigned,
        active,
        can_sync,
    }
}

fn matches(window: &Value, app: &Value) -> bool {
    let list = |f: &str| -> Vec<&str> {
        window[f]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default()
    };
    let name = app["metadata"]["name"].as_str().unwrap_or("");
    let dest = &app["spec"]["destination"];
    let ns = dest["namespace"].as_str().unwrap_or("");
    let clusters = [
        dest["name"].as_str().unwrap_or(""),
        dest["server"].as_str().unwrap_or(""),
    ];
    list("applications").iter().any(|p| glob(p, name))
        || list("namespaces").iter().any(|p| glob(p, ns))
        || list("clusters")
            .iter()
            .any(|p| clusters.iter().any(|c| !c.is_empty() && glob(p, c)))
}

/// Shell-style `*` matching, as Argo CD's glob for window targets.
pub fn glob(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let mut rest = s;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else if let Some(pos) = rest.find(part) {
            rest = &rest[pos + part.len()..];
        } else {
            return false;
        }
    }
    true
}

fn is_active(window: &Value, now: DateTime<Utc>) -> bool {
    let Some(schedule) = window["schedule"].as_str() else {
        return false;
    };
    let Some(cron) = Cron::parse(schedule) else {
        return false;
    };
    let minutes = parse_duration_minutes(window["duration"].as_str().unwrap_or("")).unwrap_or(0);
    let start = now
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(now);
    (0..minutes.min(60 * 24 * 31)).any(|back| cron.matches(start - Duration::minutes(back)))
}

/// "1h", "30m", "1h30m", "24h", "90s" -> whole minutes.
fn parse_duration_minutes(s: &str) -> Option<i64> {
    let mut total = 0f64;
    let mut num = String::new();
    for c in s.chars() {
        if c.is_ascii_digit() || c == '.' {
            num.push(c);
        } else {
            let n: f64 = num.parse().ok()?;
            num.clear();
            total += match c {
                'h' => n * 60.0,
                'm' => n,
                's' => n / 60.0,
                'd' => n * 1440.0,
                _ => return None,
            };
        }
    }
    if !num.is_empty() {
        return None;
    }
    Some(total.ceil() as i64)
}

struct Cron {
    minute: Vec<bool>,
    hour: Vec<bool>,
    dom: Vec<bool>,
    month: Vec<bool>,
    dow: Vec<bool>,
    dom_any: bool,
    dow_any: bool,
}

impl Cron {
    fn parse(s: &str) -> Option<Cron> {
        let f: Vec<&str> = s.split_whitespace().collect();
        if f.len() != 5 {
            return None;
        }
        const MONTHS: &[&str] = &[
            "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
        ];
        const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];
        let mut dow = field(f[4], 0, 7, DAYS, 0)?;
        if dow[7] {
            dow[0] = true;
        }
        Some(Cron {
            minute: field(f[0], 0, 59, &[], 0)?,
            hour: field(f[1], 0, 23, &[], 0)?,
            dom: field(f[2], 1, 31, &[], 1)?,
            month: field(f[3], 1, 12, MONTHS, 1)?,
            dow,
            dom_any: f[2] == "*" || f[2] == "?",
            dow_any: f[4] == "*" || f[4] == "?",
        })
    }

    fn matches(&self, t: DateTime<Utc>) -> bool {
        let dom = self.dom[t.day() as usize];
        let dow = self.dow[t.weekday().num_days_from_sunday() as usize];
        let day = match (self.dom_any, self.dow_any) {
            (false, false) => dom || dow,
            _ => dom && dow,
        };
        self.minute[t.minute() as usize]
            && self.hour[t.hour() as usize]
            && self.month[t.month() as usize]
            && day
    }
}

fn field(s: &str, min: usize, max: usize, names: &[&str], name_base: usize) -> Option<Vec<bool>> {
    let mut set = vec![false; max + 1];
    let value = |v: &str| -> Option<usize> {
        v.parse().ok().or_else(|| {
            names
                .iter()
                .position(|n| n.eq_ignore_ascii_case(v))
                .map(|p| p + name_base)
        })
    };
    for part in s.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, st)) => (r, st.parse::<usize>().ok().filter(|s| *s > 0)?),
            None => (part, 1),
        };
        let (lo, hi) = if range == "*" || range == "?" {
            (min, max)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let v = value(range)?;
            (v, if step > 1 { max } else { v })
        };
        if lo < min || hi > max || lo > hi {
            return None;
        }
        for v in (lo..=hi).step_by(step) {
            set[v] = true;
        }
    }
    Some(set)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use serde_json::json;

    #[test]
    fn cron_windows() {
        let t = Utc.with_ymd_and_hms(2026, 3, 2, 10, 30, 0).unwrap(); // a Monday
        let w = json!({"schedule": "0 10 * * *", "duration": "1h"});
        assert!(is_active(&w, t));
        let w = json!({"schedule": "0 22 * * *", "duration": "1h"});
        assert!(!is_active(&w, t));
        let w = json!({"schedule": "* * * * sat,sun", "duration": "1m"});
        assert!(!is_active(&w, t));
        let w = json!({"schedule": "0 9 * * 1-5", "duration": "8h"});
        assert!(is_active(&w, t));
        assert!(glob("shop-*", "shop-prod"));
        assert!(!glob("shop-*", "kafka"));
        assert!(glob("*", "x"));
    }
}
