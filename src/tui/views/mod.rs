//! One file per screen. This module holds what several screens do the same way: opening
//! the screens about one application, and starting a sync, which goes to the approval
//! screen whenever the app's environment requires one.

pub mod application;
pub mod approve;
pub mod apps;
pub mod board;
pub mod builds;
pub mod diff;
pub mod help;
pub mod history;
pub mod logs;
pub mod metrics;
pub mod palette;
pub mod pending;
pub mod promote;
pub mod rollout;
pub mod warnings;

use super::keymap::Intent;
use super::request::Request;
use super::view::{Ctx, Level, Outbox};
use crate::model::{AppId, ApprovalPolicy};

/// Keys that open something about the app under the cursor, shared by board, list and
/// application screens. Returns true when the intent was one of them.
pub fn app_intent(intent: Intent, id: Option<&AppId>, ctx: &Ctx, out: &mut Outbox) -> bool {
    let Some(id) = id else {
        return match intent {
            Intent::Open
            | Intent::Sync
            | Intent::AutoSync
            | Intent::Diff
            | Intent::Rollback
            | Intent::Rollout
            | Intent::Events => {
                out.flash(Level::Info, "no application here");
                true
            }
            _ => false,
        };
    };
    match intent {
        Intent::Open => out.push(Box::new(application::ApplicationView::new(id.clone()))),
        Intent::Events => out.push(Box::new(
            application::ApplicationView::new(id.clone()).focus_events(),
        )),
        Intent::Sync => start_sync(id, ctx, out),
        Intent::AutoSync => toggle_auto_sync(id, ctx, out),
        Intent::Diff => out.push(Box::new(diff::DiffView::new(id.clone()))),
        Intent::Rollback => out.push(Box::new(history::HistoryView::new(id.clone()))),
        Intent::Rollout | Intent::Logs => out.push(Box::new(rollout::RolloutView::new(id.clone()))),
        Intent::Build | Intent::Builds => {
            out.push(Box::new(builds::BuildsView::new(Some(id.clone()))))
        }
        _ => return false,
    }
    true
}

/// Start a sync: refused in read-only mode, through the approval screen when the
/// environment requires it, else sent at once.
pub fn start_sync(id: &AppId, ctx: &Ctx, out: &mut Outbox) {
    if ctx.read_only {
        out.flash(Level::Warning, "read-only mode: sync is disabled");
        return;
    }
    let Some(entry) = ctx.app(id) else {
        out.flash(Level::Error, "application is gone");
        return;
    };
    match ctx.policy(&entry.environment) {
        _ if ctx.policies.for_env(&entry.environment).four_eyes() => {
            out.push(Box::new(approve::ApproveView::sync(id.clone())))
        }
        ApprovalPolicy::Required | ApprovalPolicy::Confirm => {
            out.push(Box::new(approve::ApproveView::sync(id.clone())))
        }
        ApprovalPolicy::None => {
            if entry.board.operation_in_progress {
                out.flash(
                    Level::Warning,
                    format!("{}: an operation is already running", id.name),
                );
                return;
            }
            out.request(Request::Sync {
                app: id.clone(),
                approval: None,
            });
            out.flash(Level::Info, format!("sync of {} requested", id.name));
        }
    }
}

/// Turn the app's auto-sync the other way: refused in read-only mode; turning it on in a
/// gated environment goes through the approval screen (Argo CD then deploys Git on its
/// own), anything else is sent at once and its answer flashed.
pub fn toggle_auto_sync(id: &AppId, ctx: &Ctx, out: &mut Outbox) {
    if ctx.read_only {
        out.flash(
            Level::Warning,
            "read-only mode: auto-sync cannot be changed",
        );
        return;
    }
    let Some(entry) = ctx.app(id) else {
        out.flash(Level::Error, "application is gone");
        return;
    };
    let enabled = !entry.board.auto_sync;
    let gated = matches!(
        ctx.policy(&entry.environment),
        ApprovalPolicy::Required | ApprovalPolicy::Confirm
    );
    if enabled && gated {
        out.push(Box::new(approve::ApproveView::auto_sync(id.clone(), true)));
        return;
    }
    out.request(Request::AutoSync {
        app: id.clone(),
        enabled,
        approval: None,
    });
    out.flash(
        Level::Info,
        format!(
            "turning auto-sync {} for {}…",
            if enabled { "on" } else { "off" },
            id.name
        ),
    );
}
