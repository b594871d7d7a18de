//! `shipdeck approve APP`: the second operator of a four-eyes environment. Without
//! `--approve` it shows the request waiting on APP (who, when, why, until when, and whether
//! it still stands); with `--request ID --approve APP --reason TEXT` it approves it as the
//! identity the server reports and sends the sync or rollback the request names.

use super::{OutputArgs, OutputFormat, WaitArgs, approval, bounded_action, finish, print_json};
use crate::cli::exit;
use crate::cli::output::clean;
use crate::ops::actions::{self, ApproveOptions, Ops};
use crate::ops::foureyes;
use crate::sources::ArgoSource;
use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct ApproveArgs {
    pub app: String,
    /// The request id being approved (as `shipdeck approve APP` or `:pending` shows it).
    #[arg(long, value_name = "ID", requires = "approve")]
    pub request: Option<String>,
    /// Approve: name the app again. Without it, the waiting request is only shown.
    #[arg(long, value_name = "APP", requires = "request")]
    pub approve: Option<String>,
    /// Why you approve (recorded with the approval and on the operation).
    #[arg(long, requires = "approve")]
    pub reason: Option<String>,
    /// For a rollback with auto-sync on: turn it off first (it stays off).
    #[arg(long)]
    pub disable_auto_sync: bool,
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub wait: WaitArgs,
    #[command(flatten)]
    pub out: OutputArgs,
}

pub(super) async fn approve<S: ArgoSource>(
    src: &S,
    ops: &Ops,
    a: ApproveArgs,
    seconds: u64,
) -> anyhow::Result<i32> {
    if a.approve.is_none() {
        return show(src, &a).await;
    }
    let outcome = bounded_action(actions::approve(
        src,
        ops,
        &a.app,
        ApproveOptions {
            request: a.request.clone(),
            approval: approval(ops, a.approve.clone(), a.reason.clone()),
            dry_run: a.dry_run,
            disable_auto_sync: a.disable_auto_sync,
        },
    ))
    .await?;
    finish(src, ops, outcome, &a.wait, seconds, &a.out).await
}

/// The waiting request, and whether it still stands for what a sync would do now.
async fn show<S: ArgoSource>(src: &S, a: &ApproveArgs) -> anyhow::Result<i32> {
    let (app, req) = bounded_action(actions::pending(src, &a.app)).await?;
    let standing = match req.action {
        foureyes::RequestAction::Sync => {
            let digest = actions::diff_of(src, &app).await.ok().map(|d| d.digest());
            let git = crate::ops::estate::compared_revision(&app);
            foureyes::standing(
                &req,
                chrono::Utc::now(),
                git.as_ref().map(|r| r.0.as_str()),
                digest.as_deref(),
            )
        }
        foureyes::RequestAction::Rollback => {
            let digest = actions::rollback_diff_of(src, &app, req.history_id)
                .await
                .ok()
                .map(|d| d.digest());
            foureyes::standing(
                &req,
                chrono::Utc::now(),
                req.target_revision.as_deref(),
                digest.as_deref(),
            )
        }
    };
    match a.out.output {
        OutputFormat::Json => print_json(&serde_json::json!({
            "app": clean(&a.app),
            "request": {
                "id": clean(&req.id),
                "action": req.action.as_str(),
                "requested_by": clean(&req.requested_by),
                "reason": clean(&req.reason),
                "at": req.at.to_rfc3339(),
                "expires": req.expires.to_rfc3339(),
                "environment": clean(&req.environment),
                "target_revision": req.target_revision.as_deref().map(clean),
                "diff_digest": req.diff_digest,
                "history_id": req.history_id,
                "approvals": foureyes::progress(&req),
            },
            "standing": standing.describe(),
            "waiting": standing == foureyes::Standing::Waiting,
        }))?,
        OutputFormat::Table => {
            println!(
                "{} of {} ({}) requested by {} at {}: {}",
                req.action.as_str(),
                clean(&a.app),
                clean(&req.environment),
                clean(&req.requested_by),
                req.at.format("%Y-%m-%d %H:%M UTC"),
                clean(&req.reason)
            );
            println!(
                "request {}, {}, to {}, expires {}: {}",
                clean(&req.id),
                foureyes::progress(&req),
                req.target_revision
                    .as_deref()
                    .map(|r| clean(&r.chars().take(7).collect::<String>()))
                    .unwrap_or_else(|| "-".into()),
                req.expires.format("%Y-%m-%d %H:%M UTC"),
                standing.describe()
            );
            if standing == foureyes::Standing::Waiting {
                println!(
                    "approve (as a different operator): shipdeck approve {a} --request {id} --approve {a} --reason '...'",
                    a = clean(&a.app),
                    id = clean(&req.id)
                );
            }
        }
    }
    Ok(if standing == foureyes::Standing::Waiting {
        exit::OK
    } else {
        exit::REFUSED
    })
}
