//! Sync windows for core mode, where no API server answers `syncwindows`: the one engine in
//! `shipdeck_wire::syncwindow` (shared with the sandbox) read with Argo CD's rules, the cron
//! schedule evaluated in the window's `timeZone`. Pure: the caller passes the time.

use super::SyncWindowsState;
use crate::model::{Application, SyncWindow};
use chrono::{DateTime, Utc};
pub use shipdeck_wire::syncwindow::WindowError;
use shipdeck_wire::syncwindow::{self as engine, Target};

/// Check a window's values, for reporting a bad AppProject.
pub fn parse_window(w: &SyncWindow) -> Result<(), WindowError> {
    engine::validate(w)
}

/// The windows of a project for an app at `now`, and whether a manual sync may run. A window
/// that cannot be read (bad schedule, duration, kind, time zone or pattern) blocks: the
/// caller reports it via [`parse_window`].
pub fn evaluate(windows: &[SyncWindow], app: &Application, now: DateTime<Utc>) -> SyncWindowsState {
    let e = engine::evaluate(windows, &Target::of(app), now);
    SyncWindowsState {
        can_sync: e.can_sync(true),
        active: e.active,
        assigned: e.assigned,
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
    fn deny_window_blocks_unless_manual() {
        let app = Application::default();
        let now = at(2026, 11, 20, 22, 30);
        let mut deny = window("deny", "0 22 * * *", "1h");
        let st = evaluate(std::slice::from_ref(&deny), &app, now);
        assert!(!st.can_sync);
        assert_eq!(st.active.len(), 1);
        deny.manual_sync = true;
        assert!(evaluate(std::slice::from_ref(&deny), &app, now).can_sync);
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
    fn windows_in_their_time_zone_and_bad_ones_block() {
        let mut app = Application::default();
        app.metadata.name = "shop-prod".into();
        app.spec.destination.namespace = Some("shop".into());
        // 22:00-23:00 in Tokyo is 13:00-14:00 UTC.
        let mut deny = window("deny", "0 22 * * *", "1h");
        deny.applications = vec![];
        deny.namespaces = vec!["sh?p".into()];
        deny.time_zone = Some("Asia/Tokyo".into());
        assert!(!evaluate(std::slice::from_ref(&deny), &app, at(2026, 11, 20, 13, 30)).can_sync);
        assert!(evaluate(std::slice::from_ref(&deny), &app, at(2026, 11, 20, 22, 30)).can_sync);
        deny.time_zone = Some("Nowhere/Else".into());
        assert!(parse_window(&deny).is_err());
        assert!(!evaluate(&[deny], &app, at(2026, 11, 20, 22, 30)).can_sync);
    }
}
