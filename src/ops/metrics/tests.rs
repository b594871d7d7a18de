//! The figures on a small history built by hand: exact expected numbers.

use super::*;

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .unwrap()
}

fn deploy(at: &str, rev: &str, committed: Option<&str>) -> Deploy {
    Deploy {
        at: t(at),
        revision: rev.into(),
        seen: Seen::History,
        committed: committed.map(|c| (t(c), LeadStart::RevisionCommit)),
        rollback: false,
    }
}

fn params() -> Params {
    Params {
        since: t("2026-01-01T00:00:00Z"),
        now: t("2026-01-15T00:00:00Z"),
        window: Duration::hours(1),
    }
}

/// Five deployments over 14 days; one rolled back, one followed by a failed sync, one by
/// Degraded after the window (not a failure), one by Degraded inside it.
fn record() -> AppRecord {
    let mut deploys = vec![
        deploy("2026-01-02T10:10:00Z", "a", Some("2026-01-02T10:00:00Z")), // 10m
        deploy("2026-01-04T10:20:00Z", "b", Some("2026-01-04T10:00:00Z")), // 20m, rolled back
        deploy("2026-01-06T11:00:00Z", "c", Some("2026-01-06T10:00:00Z")), // 60m, failed op
        deploy("2026-01-08T10:40:00Z", "d", Some("2026-01-08T10:00:00Z")), // 40m, Degraded late
        deploy("2026-01-10T10:30:00Z", "e", None),                         // undated, Degraded
        // Before the period: neither counted nor a target of later failures.
        deploy("2025-12-20T10:00:00Z", "z", Some("2025-12-20T09:00:00Z")),
    ];
    deploys[4].seen = Seen::Git;
    // Rollback to a, 30 minutes after b.
    deploys.push(Deploy {
        rollback: true,
        ..deploy("2026-01-04T10:50:00Z", "a", None)
    });
    AppRecord {
        app: "cart-prod".into(),
        service: "cart".into(),
        environment: "prod".into(),
        deploys,
        failures: vec![Failure {
            at: t("2026-01-06T11:05:00Z"),
            kind: FailureKind::FailedOperation,
        }],
        health: vec![
            // Degraded 2h after d: outside the window; restored after 15 minutes.
            HealthChange {
                at: t("2026-01-08T12:40:00Z"),
                to: "Degraded".into(),
            },
            HealthChange {
                at: t("2026-01-08T12:55:00Z"),
                to: "Healthy".into(),
            },
            // Degraded 10 minutes after e; restored after 45 minutes (Progressing between).
            HealthChange {
                at: t("2026-01-10T10:40:00Z"),
                to: "Degraded".into(),
            },
            HealthChange {
                at: t("2026-01-10T11:00:00Z"),
                to: "Progressing".into(),
            },
            HealthChange {
                at: t("2026-01-10T11:25:00Z"),
                to: "Healthy".into(),
            },
        ],
        health_now: "Healthy".into(),
        history_limit: 10,
        history_len: 7,
        ..Default::default()
    }
}

#[test]
fn figures_of_a_small_history() {
    let f = figures(&record(), &params());
    assert_eq!(f.deployments.count, 5);
    assert_eq!(f.deployments.rollbacks, 1);
    assert_eq!(f.deployments.from_history, 4);
    assert_eq!(f.deployments.from_git, 1);
    assert_eq!(f.deployments.per_day, 0.36); // 5 / 14
    assert_eq!(f.deployments.per_week, 2.5);
    assert!(!f.deployments.history_truncated);
    // Lead times 10, 20, 40, 60 minutes (e is undated): median 30m, p90 = 4th = 60m.
    assert_eq!(f.lead_time.samples, 4);
    assert_eq!(f.lead_time.median_seconds, Some(30 * 60));
    assert_eq!(f.lead_time.p90_seconds, Some(60 * 60));
    assert_eq!(f.lead_time.unknown, None);
    assert!(
        f.notes.iter().any(|n| n.contains("4 of 5")),
        "{:?}",
        f.notes
    );
    // b (rollback), c (failed op), e (Degraded) failed; a and d did not: 3 / 5.
    assert_eq!(f.change_failure_rate.failed, 3);
    assert_eq!(f.change_failure_rate.rate, Some(0.6));
    assert_eq!(f.change_failure_rate.by_rollback, 1);
    assert_eq!(f.change_failure_rate.by_failed_operation, 1);
    assert_eq!(f.change_failure_rate.by_degraded, 1);
    // Restores of 15 and 45 minutes: median 30m.
    assert_eq!(f.time_to_restore.restores, 2);
    assert_eq!(f.time_to_restore.median_seconds, Some(30 * 60));
    assert!(!f.time_to_restore.ongoing);
    assert_eq!(f.window_seconds, 3600);
}

#[test]
fn a_wider_window_catches_the_late_degraded() {
    let mut p = params();
    p.window = Duration::hours(3);
    let f = figures(&record(), &p);
    assert_eq!(f.change_failure_rate.failed, 4);
    assert_eq!(f.change_failure_rate.rate, Some(0.8));
}

#[test]
fn what_cannot_be_computed_is_unknown_with_the_reason() {
    let mut r = record();
    r.deploys.retain(|d| d.at < t("2026-01-01T00:00:00Z"));
    r.health.clear();
    r.health_now = "Degraded".into();
    let f = figures(&r, &params());
    assert_eq!(f.deployments.count, 0);
    assert_eq!(f.lead_time.median_seconds, None);
    assert_eq!(
        f.lead_time.unknown.as_deref(),
        Some("no deployments in the period")
    );
    assert_eq!(f.change_failure_rate.rate, None);
    assert_eq!(f.time_to_restore.median_seconds, None);
    assert!(f.time_to_restore.ongoing);
    assert!(
        f.time_to_restore
            .unknown
            .as_deref()
            .unwrap()
            .contains("Degraded now")
    );

    let mut r = record();
    r.signals_unknown = Some("events: 403 Forbidden".into());
    r.git_unknown = Some("no Git mirror".into());
    for d in &mut r.deploys {
        d.committed = None;
    }
    r.history_len = 10;
    let f = figures(&r, &params());
    assert_eq!(f.change_failure_rate.rate, None);
    assert!(
        f.change_failure_rate
            .unknown
            .as_deref()
            .unwrap()
            .contains("403")
    );
    assert_eq!(f.time_to_restore.median_seconds, None);
    assert!(
        f.lead_time
            .unknown
            .as_deref()
            .unwrap()
            .contains("no Git mirror")
    );
    assert!(f.deployments.history_truncated);
    assert!(
        f.notes
            .iter()
            .any(|n| n.contains("only 10 history entries"))
    );
}

#[test]
fn median_percentile_spans() {
    assert_eq!(median(&[1, 2, 3]), Some(2));
    assert_eq!(median(&[1, 2, 3, 4]), Some(2));
    assert_eq!(median(&[]), None);
    let v: Vec<i64> = (1..=10).collect();
    assert_eq!(percentile(&v, 90), Some(9));
    assert_eq!(percentile(&[5], 90), Some(5));
    assert_eq!(parse_span("30d").unwrap(), Duration::days(30));
    assert_eq!(parse_span("2w").unwrap(), Duration::weeks(2));
    assert!(parse_span("30").is_err());
    assert!(parse_span("-3d").is_err());
    assert_eq!(duration_words(Some(3_900)), "1h 5m");
    assert_eq!(duration_words(None), "unknown");
}
