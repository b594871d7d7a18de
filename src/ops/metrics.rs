//! Delivery metrics per service and environment: deployments (count and frequency), lead
//! time (commit -> running), change failure rate and time to restore. One computation;
//! `shipdeck metrics` and the `:metrics` screen are two renderings of it.
//!
//! How each figure is computed (also in [`HOW`], shown on the screen's help, in
//! `shipdeck metrics --help` and the README):
//! - deployments: Argo CD history entries deployed in the period. Argo CD keeps only
//!   `revisionHistoryLimit` entries (default 10), so older deployments come from the audit log
//!   (successful `sync` records) and, for auto-synced apps, from Git (each commit on the app's
//!   branch touching its path, at its commit time). A history entry that returns to a revision
//!   an older entry ran is a rollback, not a deployment.
//! - lead time: from the commit of the change (the `Source-Commit:` trailer's commit when Git
//!   has it, else the newest commit touching the app's path at the deployed revision) to
//!   `deployedAt`; median and p90 (nearest rank) over the deployments Git can date.
//! - change failure rate: deployments followed within the window (default 1 h), before the
//!   next deployment, by a rollback, a failed operation or Degraded, over all deployments.
//! - time to restore: median time from Degraded to the next Healthy (health events and the
//!   audit log), over the restores that ended in the period.
//!
//! A figure that cannot be computed is `unknown` with the reason; nothing is invented.
//! The pure part ([`figures`]) is separate from the gathering ([`gather`]).

pub mod gather;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

pub use gather::{gather, report};

/// How each figure is computed, in words (help screen, `--help`, README).
pub const HOW: &str = "\
deployments: Argo CD history entries deployed in the period, per day and per week. Argo CD \
keeps only revisionHistoryLimit entries (default 10): older deployments come from the audit log \
(successful syncs) and, for auto-synced apps, from Git (each commit on the app's branch and path, \
at its commit time). An entry returning to an earlier revision (an older entry's, or one \
committed before the revision running) is a rollback, not a deployment.
lead time: commit -> running: from the commit a Source-Commit: trailer names (when Git has it), \
else the newest commit touching the app's path at the deployed revision, to deployedAt; median \
and p90 (nearest rank).
change failure rate: deployments followed within the window (--window, default 1h), before the \
next deployment, by a rollback, a failed sync or Degraded, over all deployments in the period.
time to restore: median time from Degraded to the next Healthy (the Application's health events \
in Argo CD), over the restores that ended in the period; a Degraded period still open is \
counted apart. Kubernetes keeps Events only for a while (1h by default): older restores are \
unknown unless the cluster keeps them longer.
unknown: a figure with no data says so and why; nothing is estimated.";

/// Where a deployment was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Seen {
    History,
    Audit,
    Git,
}

/// Where a lead time starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeadStart {
    /// The commit a `Source-Commit:` trailer names.
    SourceCommit,
    /// The deployed revision's own commit (the manifest change).
    RevisionCommit,
}

/// One deployment of an app.
#[derive(Debug, Clone, PartialEq)]
pub struct Deploy {
    pub at: DateTime<Utc>,
    pub revision: String,
    pub seen: Seen,
    /// When the change was committed, and which commit that is; None when Git cannot tell.
    pub committed: Option<(DateTime<Utc>, LeadStart)>,
    /// Returns to a revision an earlier deployment ran.
    pub rollback: bool,
}

/// What can follow a deployment and make it a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    Rollback,
    FailedOperation,
    Degraded,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub at: DateTime<Utc>,
    pub kind: FailureKind,
}

/// A health transition (`-> Degraded`, `-> Healthy`, ...).
#[derive(Debug, Clone, PartialEq)]
pub struct HealthChange {
    pub at: DateTime<Utc>,
    pub to: String,
}

/// Everything known about one app's delivery, gathered from the sources.
#[derive(Debug, Clone, Default)]
pub struct AppRecord {
    pub app: String,
    pub service: String,
    pub environment: String,
    pub deploys: Vec<Deploy>,
    pub failures: Vec<Failure>,
    pub health: Vec<HealthChange>,
    /// The app's health now (an open Degraded period is ongoing).
    pub health_now: String,
    /// Argo CD's `revisionHistoryLimit` (10 when unset) and how many entries it holds.
    pub history_limit: i64,
    pub history_len: usize,
    /// Why failure signals could not be read (events, audit); None when they were.
    pub signals_unknown: Option<String>,
    /// Why Git could not date commits; None when it could.
    pub git_unknown: Option<String>,
    pub notes: Vec<String>,
}

/// The period and window.
#[derive(Debug, Clone, Copy)]
pub struct Params {
    pub since: DateTime<Utc>,
    pub now: DateTime<Utc>,
    pub window: Duration,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Deployments {
    pub count: usize,
    pub per_day: f64,
    pub per_week: f64,
    pub from_history: usize,
    pub from_audit: usize,
    pub from_git: usize,
    pub rollbacks: usize,
    pub history_limit: i64,
    /// Argo CD's history is full: older deployments are only known from Git and the audit log.
    pub history_truncated: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeadTime {
    pub median_seconds: Option<i64>,
    pub p90_seconds: Option<i64>,
    pub samples: usize,
    pub from_source_commit: usize,
    pub from_revision_commit: usize,
    pub unknown: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailureRate {
    /// Failed deployments over deployments, 0..1.
    pub rate: Option<f64>,
    pub failed: usize,
    pub deployments: usize,
    pub by_rollback: usize,
    pub by_failed_operation: usize,
    pub by_degraded: usize,
    pub unknown: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Restore {
    pub median_seconds: Option<i64>,
    pub restores: usize,
    /// Degraded now, not restored yet.
    pub ongoing: bool,
    pub unknown: Option<String>,
}

/// The four figures of one app (stable JSON; see README "Delivery metrics").
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    pub app: String,
    pub service: String,
    pub environment: String,
    pub since: String,
    pub until: String,
    pub window_seconds: i64,
    pub deployments: Deployments,
    pub lead_time: LeadTime,
    pub change_failure_rate: FailureRate,
    pub time_to_restore: Restore,
    pub notes: Vec<String>,
}

/// Every app's figures over one period (`shipdeck metrics --output json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub since: String,
    pub until: String,
    pub window_seconds: i64,
    pub apps: Vec<Figures>,
}

fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Median of sorted values (mean of the two middle ones, rounded down).
pub fn median(sorted: &[i64]) -> Option<i64> {
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => Some((sorted[n / 2 - 1] + sorted[n / 2]).div_euclid(2)),
    }
}

/// p-th percentile, nearest rank (the ceil(p/100 * n)-th smallest).
pub fn percentile(sorted: &[i64], p: u32) -> Option<i64> {
    let n = sorted.len();
    if n == 0 {
        return None;
    }
    let rank = (u64::from(p) * n as u64).div_ceil(100).max(1) as usize;
    sorted.get(rank.min(n) - 1).copied()
}

/// The figures of one app over the period.
pub fn figures(r: &AppRecord, p: &Params) -> Figures {
    let in_period = |t: DateTime<Utc>| t >= p.since && t <= p.now;
    let mut all: Vec<&Deploy> = r.deploys.iter().collect();
    all.sort_by_key(|d| d.at);
    let deploys: Vec<&Deploy> = all
        .iter()
        .copied()
        .filter(|d| !d.rollback && in_period(d.at))
        .collect();
    let rollbacks = all.iter().filter(|d| d.rollback && in_period(d.at)).count();
    let count = deploys.len();
    let days = ((p.now - p.since).num_seconds() as f64 / 86_400.0).max(1.0 / 24.0);
    let round2 = |x: f64| (x * 100.0).round() / 100.0;
    let seen = |s: Seen| deploys.iter().filter(|d| d.seen == s).count();
    let history_truncated = r.history_limit > 0 && r.history_len as i64 >= r.history_limit;
    let deployments = Deployments {
        count,
        per_day: round2(count as f64 / days),
        per_week: round2(count as f64 * 7.0 / days),
        from_history: seen(Seen::History),
        from_audit: seen(Seen::Audit),
        from_git: seen(Seen::Git),
        rollbacks,
        history_limit: r.history_limit,
        history_truncated,
    };

    // Lead time.
    let mut leads: Vec<i64> = Vec::new();
    let (mut from_source, mut from_revision, mut undated) = (0, 0, 0);
    for d in &deploys {
        match d.committed {
            Some((c, start)) if c <= d.at => {
                leads.push((d.at - c).num_seconds());
                match start {
                    LeadStart::SourceCommit => from_source += 1,
                    LeadStart::RevisionCommit => from_revision += 1,
                }
            }
            _ => undated += 1,
        }
    }
    leads.sort_unstable();
    let lead_unknown = if count == 0 {
        Some("no deployments in the period".to_string())
    } else if leads.is_empty() {
        Some(match &r.git_unknown {
            Some(why) => format!("Git cannot date the deployed commits: {why}"),
            None => "Git cannot date the deployed commits".to_string(),
        })
    } else {
        None
    };
    let mut notes = r.notes.clone();
    if undated > 0 && !leads.is_empty() {
        notes.push(format!(
            "lead time over {} of {count} deployments: Git cannot date the others",
            leads.len()
        ));
    }
    let lead_time = LeadTime {
        median_seconds: median(&leads),
        p90_seconds: percentile(&leads, 90),
        samples: leads.len(),
        from_source_commit: from_source,
        from_revision_commit: from_revision,
        unknown: lead_unknown,
    };

    // Change failure rate: each signal counts against the latest deployment before it,
    // when it came within the window.
    let mut failures: Vec<Failure> = r.failures.clone();
    for d in all.iter().filter(|d| d.rollback) {
        failures.push(Failure {
            at: d.at,
            kind: FailureKind::Rollback,
        });
    }
    for h in degraded_starts(&r.health) {
        failures.push(Failure {
            at: h,
            kind: FailureKind::Degraded,
        });
    }
    let forward: Vec<&Deploy> = all.iter().copied().filter(|d| !d.rollback).collect();
    let mut failed_kinds: Vec<Option<FailureKind>> = vec![None; deploys.len()];
    for f in &failures {
        let Some(latest) = forward.iter().rev().find(|d| d.at < f.at) else {
            continue;
        };
        if f.at - latest.at > p.window {
            continue;
        }
        if let Some(i) = deploys.iter().position(|d| std::ptr::eq(*d, *latest)) {
            // One kind per failed deployment: rollback over failed operation over Degraded.
            let rank = |k: FailureKind| match k {
                FailureKind::Rollback => 0,
                FailureKind::FailedOperation => 1,
                FailureKind::Degraded => 2,
            };
            let slot = &mut failed_kinds[i];
            if slot.is_none_or(|k| rank(f.kind) < rank(k)) {
                *slot = Some(f.kind);
            }
        }
    }
    let kinds = |k: FailureKind| failed_kinds.iter().filter(|x| **x == Some(k)).count();
    let failed = failed_kinds.iter().filter(|x| x.is_some()).count();
    let cfr_unknown = if count == 0 {
        Some("no deployments in the period".to_string())
    } else {
        r.signals_unknown
            .as_ref()
            .map(|why| format!("failure signals cannot be read: {why}"))
    };
    let change_failure_rate = FailureRate {
        rate: if cfr_unknown.is_none() {
            Some((failed as f64 / count as f64 * 10_000.0).round() / 10_000.0)
        } else {
            None
        },
        failed,
        deployments: count,
        by_rollback: kinds(FailureKind::Rollback),
        by_failed_operation: kinds(FailureKind::FailedOperation),
        by_degraded: kinds(FailureKind::Degraded),
        unknown: cfr_unknown,
    };

    // Time to restore.
    let (periods, open) = degraded_periods(&r.health);
    let mut restores: Vec<i64> = periods
        .iter()
        .filter(|(_, healthy)| in_period(*healthy))
        .map(|(d, h)| (*h - *d).num_seconds())
        .collect();
    restores.sort_unstable();
    let ongoing = open.is_some() || r.health_now == "Degraded";
    let ttr_unknown = if let Some(why) = &r.signals_unknown {
        Some(format!("health changes cannot be read: {why}"))
    } else if restores.is_empty() {
        Some(if ongoing {
            "no restore in the period (Degraded now, not restored yet)".to_string()
        } else {
            "no Degraded -> Healthy restore in the period".to_string()
        })
    } else {
        None
    };
    let time_to_restore = Restore {
        median_seconds: if ttr_unknown.is_none() {
            median(&restores)
        } else {
            None
        },
        restores: restores.len(),
        ongoing,
        unknown: ttr_unknown,
    };
    if deployments.from_git > 0 {
        notes.push(format!(
            "{} deployments before Argo CD's oldest history entry are the app's commits in Git \
             (auto-sync deploys each, at about its commit time; no lead time for them)",
            deployments.from_git
        ));
    }
    if history_truncated {
        notes.push(format!(
            "Argo CD keeps only {} history entries: older deployments come from Git and the audit log",
            r.history_limit
        ));
    }
    Figures {
        app: r.app.clone(),
        service: r.service.clone(),
        environment: r.environment.clone(),
        since: ts(p.since),
        until: ts(p.now),
        window_seconds: p.window.num_seconds(),
        deployments,
        lead_time,
        change_failure_rate,
        time_to_restore,
        notes,
    }
}

/// Times the app turned Degraded (from something else).
fn degraded_starts(health: &[HealthChange]) -> Vec<DateTime<Utc>> {
    let mut sorted: Vec<&HealthChange> = health.iter().collect();
    sorted.sort_by_key(|h| h.at);
    let mut out = Vec::new();
    let mut degraded = false;
    for h in sorted {
        let now = h.to == "Degraded";
        if now && !degraded {
            out.push(h.at);
        }
        degraded = now;
    }
    out
}

/// (Degraded at, Healthy at) periods, and the start of an open one.
#[allow(clippy::type_complexity)]
fn degraded_periods(
    health: &[HealthChange],
) -> (Vec<(DateTime<Utc>, DateTime<Utc>)>, Option<DateTime<Utc>>) {
    let mut sorted: Vec<&HealthChange> = health.iter().collect();
    sorted.sort_by_key(|h| h.at);
    let mut out = Vec::new();
    let mut open: Option<DateTime<Utc>> = None;
    for h in sorted {
        match h.to.as_str() {
            "Degraded" => {
                open.get_or_insert(h.at);
            }
            "Healthy" => {
                if let Some(d) = open.take() {
                    out.push((d, h.at));
                }
            }
            _ => {}
        }
    }
    (out, open)
}

/// "2h 5m", "42m", "35s", or "unknown".
pub fn duration_words(secs: Option<i64>) -> String {
    let Some(s) = secs else {
        return "unknown".into();
    };
    let (d, h, m) = (s / 86_400, s % 86_400 / 3_600, s % 3_600 / 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m")
    } else {
        format!("{s}s")
    }
}

/// `30d`, `12h`, `2w`, `90m`, `45s` -> a duration.
pub fn parse_span(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let bad = || format!("'{s}' is not a span like 30d, 2w, 12h, 90m");
    let unit = s.chars().last().ok_or_else(bad)?;
    let n: i64 = s[..s.len() - unit.len_utf8()].parse().map_err(|_| bad())?;
    if n <= 0 || n > 3_650 * 24 * 60 {
        return Err(bad());
    }
    Ok(match unit {
        'w' => Duration::weeks(n),
        'd' => Duration::days(n),
        'h' => Duration::hours(n),
        'm' => Duration::minutes(n),
        's' => Duration::seconds(n),
        _ => return Err(bad()),
    })
}

#[cfg(test)]
mod tests;
