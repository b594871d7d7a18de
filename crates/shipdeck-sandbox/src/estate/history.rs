//! Weeks of delivery history before the estate's recent builds, so delivery metrics mean
//! something: for every service app, past image bumps in Git (about five weeks, realistic
//! times, later for later environments), their deployments in Argo CD's history (as many as
//! `revisionHistoryLimit` keeps), a few rollbacks, failed syncs and Degraded periods recorded
//! as the Application's events with their real past times. Deterministic from the seed.
//!
//! Only small estates get it (the large generated ones keep their start time small).

use super::{AppDef, AppKind, Estate, hash};
use chrono::{DateTime, Duration, Utc};

/// How far back the past history reaches, in days before the recent history starts.
pub const PAST_DAYS: i64 = 35;
/// Estates larger than this get no past history.
pub const MAX_APPS: usize = 300;

/// One past build of an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PastBuild {
    pub tag: String,
    /// Commit time of its bump.
    pub time: DateTime<Utc>,
}

/// Whether an app gets past history.
pub fn has_past(estate: &Estate, app: &AppDef) -> bool {
    estate.apps.len() <= MAX_APPS && app.kind == AppKind::Service
}

/// The past builds of an app, oldest first (the first one is in the initial commit).
pub fn past_builds(estate: &Estate, app: &AppDef, start: DateTime<Utc>) -> Vec<PastBuild> {
    if !has_past(estate, app) {
        return Vec::new();
    }
    let n = 9 + (hash(estate.seed, &format!("{}:past", app.service)) % 5) as i64;
    let rank = estate
        .environments
        .iter()
        .position(|e| e.name == app.environment)
        .unwrap_or(0) as i64;
    let span = Duration::days(PAST_DAYS - 3).num_minutes();
    (0..n)
        .map(|k| {
            // Builds of a service are the same across environments; later environments get
            // them later (staging hours after dev, prod after staging).
            let minutes = (hash(estate.seed, &format!("{}@past{k}", app.service)) % 600) as i64;
            let env_jitter = (hash(estate.seed, &format!("{}@past{k}", app.name)) % 40) as i64;
            let time = start - Duration::days(PAST_DAYS)
                + Duration::minutes(span * k / n + minutes + 12 + rank * 170 + env_jitter);
            PastBuild {
                tag: past_tag(estate, &app.service, k as usize, &app.branch, time),
                time,
            }
        })
        .collect()
}

/// The image tag of a past build, in the estate's tag style.
fn past_tag(estate: &Estate, service: &str, k: usize, branch: &str, t: DateTime<Utc>) -> String {
    let h = hash(estate.seed, &format!("{service}#past{k}"));
    let sha = format!("{:07x}", h & 0x0fff_ffff);
    match estate.tag_style {
        super::TagStyle::Sha => format!("sha-{sha}"),
        super::TagStyle::BranchSha => format!("{branch}-{sha}"),
        super::TagStyle::Semver => format!("v1.1.{k}"),
        super::TagStyle::Date => format!("v{}", t.format("%Y%m%d-%H%M%S")),
    }
}

/// A file of the app's first build as it read at a past build: the first build's image tag
/// replaced by the past one.
pub fn at_past(text: &str, first_tag: &str, past: &str) -> String {
    text.replace(&format!(":{first_tag}"), &format!(":{past}"))
        .replace(&format!("tag: {first_tag}"), &format!("tag: {past}"))
}

/// What happened after a past deployment (deterministic from the seed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aftermath {
    Fine,
    /// Rolled back to the deployment before, this many minutes later.
    RolledBack(i64),
    /// Degraded this many minutes after, restored after the second number of minutes.
    Degraded(i64, i64),
    /// A follow-up sync failed this many minutes after.
    SyncFailed(i64),
}

/// The aftermath of past deployment `k` of `app` (never of the first or the last one).
pub fn aftermath(estate: &Estate, app: &AppDef, k: usize, n: usize) -> Aftermath {
    if k == 0 || k + 1 >= n {
        return Aftermath::Fine;
    }
    let h = hash(estate.seed, &format!("{}:after{k}", app.name));
    match h % 16 {
        0 => Aftermath::RolledBack(15 + (h >> 8) as i64 % 30),
        1 => Aftermath::Degraded(3 + (h >> 8) as i64 % 20, 6 + (h >> 16) as i64 % 35),
        2 => Aftermath::SyncFailed(5 + (h >> 8) as i64 % 40),
        _ => Aftermath::Fine,
    }
}
