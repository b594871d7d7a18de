//! AppProject sync windows as Argo CD evaluates them: a window is active when a start time
//! its cron schedule matches lies within `duration` before now. Deny wins; allow windows,
//! when an app has any, must be active. `manualSync` lets manual syncs through.

use chrono::{DateTime, Datelike, Duration, Timelike, Utc};
use serde_json::Value;

/// Whether a sync may run now; Err carries Argo CD's message.
pub fn can_sync(
    windows: &[Value],
    app: &str,
    namespace: &str,
    cluster: &str,
    manual: bool,
    now: DateTime<Utc>,
) -> bool {
    let assigned: Vec<&Value> = windows
        .iter()
        .filter(|w| applies(w, app, namespace, cluster))
        .collect();
    let active = |w: &&Value| {
        is_active(
            w["schedule"].as_str().unwrap_or(""),
            w["duration"].as_str().unwrap_or(""),
            now,
        )
    };
    let manual_ok = |w: &&Value| w["manualSync"].as_bool().unwrap_or(false);
    let kind = |w: &&Value, k: &str| w["kind"].as_str() == Some(k);
    let active_denies: Vec<&&Value> = assigned
        .iter()
        .filter(|w| kind(w, "deny") && active(w))
        .collect();
    if !active_denies.is_empty() {
        return manual && active_denies.iter().all(|w| manual_ok(w));
    }
    let allows: Vec<&&Value> = assigned.iter().filter(|w| kind(w, "allow")).collect();
    if allows.is_empty() || allows.iter().any(|w| active(w)) {
        return true;
    }
    manual && allows.iter().any(|w| manual_ok(w))
}

fn applies(w: &Value, app: &str, namespace: &str, cluster: &str) -> bool {
    let any = |field: &str, value: &str| {
        w[field]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .any(|p| glob(p, value))
    };
    any("applications", app) || any("namespaces", namespace) || any("clusters", cluster)
}

/// `*` matches any run of characters.
pub fn glob(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let mut rest = s;
    for (i, p) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(p) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(p);
        } else {
            match rest.find(p) {
                Some(at) => rest = &rest[at + p.len()..],
                None => return false,
            }
        }
    }
    true
}

/// `1h`, `30m`, `1h30m`, `90s`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let mut total = 0i64;
    let mut num = String::new();
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            num.push(c);
        } else {
            let n: i64 = num.parse().ok()?;
            num.clear();
            total += match c {
                'h' => n * 3600,
                'm' => n * 60,
                's' => n,
                'd' => n * 86_400,
                _ => return None,
            };
        }
    }
    if !num.is_empty() {
        return None;
    }
    (total > 0).then(|| Duration::seconds(total))
}

pub fn is_active(schedule: &str, duration: &str, now: DateTime<Utc>) -> bool {
    let Some(d) = parse_duration(duration) else {
        return false;
    };
    let Some(cron) = Cron::parse(schedule) else {
        return false;
    };
    // Walk back minute by minute over the window's length (bounded to a week).
    let minutes = (d.num_minutes()).clamp(1, 7 * 24 * 60);
    let start = now
        .with_second(0)
        .and_then(|t| t.with_nanosecond(0))
        .unwrap_or(now);
    (0..minutes).any(|m| cron.matches(start - Duration::minutes(m)))
}

struct Cron {
    fields: [Vec<u32>; 5],
    dom_any: bool,
    dow_any: bool,
}

impl Cron {
    fn parse(s: &str) -> Option<Cron> {
        let parts: Vec<&str> = s.split_whitespace().collect();
        if parts.len() != 5 {
            return None;
        }
        let ranges = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)];
        let mut fields: [Vec<u32>; 5] = Default::default();
        for (i, (p, (lo, hi))) in parts.iter().zip(ranges).enumerate() {
            fields[i] = parse_field(p, lo, hi)?;
        }
        // Sunday is 0 or 7.
        if fields[4].contains(&7) {
            fields[4].push(0);
        }
        Some(Cron {
            fields,
            dom_any: parts[2] == "*",
            dow_any: parts[4] == "*",
        })
    }

    fn matches(&self, t: DateTime<Utc>) -> bool {
        let dom = self.fields[2].contains(&t.day());
        let dow = self.fields[4].contains(&t.weekday().num_days_from_sunday());
        let day = match (self.dom_any, self.dow_any) {
            (false, false) => dom || dow,
            _ => dom && dow,
        };
        self.fields[0].contains(&t.minute())
            && self.fields[1].contains(&t.hour())
            && self.fields[3].contains(&t.month())
            && day
    }
}

fn parse_field(p: &str, lo: u32, hi: u32) -> Option<Vec<u32>> {
    let mut out = Vec::new();
    for part in p.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => (r, s.parse::<u32>().ok().filter(|s| *s > 0)?),
            None => (part, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (a.parse().ok()?, b.parse().ok()?)
        } else {
            let v: u32 = range.parse().ok()?;
            (v, if step > 1 { hi } else { v })
        };
        if a < lo || b > hi || a > b {
            return None;
        }
        out.extend((a..=b).step_by(step as usize));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn windows_allow_and_deny() {
        let now = DateTime::parse_from_rfc3339("2026-03-06T22:30:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap();
        assert!(is_active("0 0 * * *", "24h", now));
        assert!(is_active("0 22 * * *", "1h", now));
        assert!(!is_active("0 9 * * *", "8h", now));
        let deny = json!([{"kind": "deny", "schedule": "0 22 * * *", "duration": "1h", "applications": ["*-prod"]}]);
        assert!(!can_sync(
            deny.as_array().unwrap(),
            "web-prod",
            "shop",
            "in-cluster",
            true,
            now
        ));
        assert!(can_sync(
            deny.as_array().unwrap(),
            "web-dev",
            "shop",
            "in-cluster",
            true,
            now
        ));
        let allow = json!([{"kind": "allow", "schedule": "0 9 * * *", "duration": "8h", "namespaces": ["shop"], "manualSync": true}]);
        assert!(!can_sync(
            allow.as_array().unwrap(),
            "web-prod",
            "shop",
            "in-cluster",
            false,
            now
        ));
        assert!(can_sync(
            allow.as_array().unwrap(),
            "web-prod",
            "shop",
            "in-cluster",
            true,
            now
        ));
        assert!(glob("*-prod", "web-prod") && !glob("*-prod", "web-dev") && glob("*", "x"));
    }
}
