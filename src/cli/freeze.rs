//! `shipdeck freeze ENV --reason TEXT [--until TIME]`, `shipdeck unfreeze ENV [--approve ENV
//! --reason TEXT]` and `shipdeck freeze --list`: the incident freeze of `ops::freeze`, over
//! every connected Argo CD instance that has apps in the environment.

use super::exit::{self, UsageError};
use super::output::clean;
use super::{OutputArgs, OutputFormat};
use crate::ops::actions::{ActionError, Ops};
use crate::ops::approval::Approval;
use crate::ops::freeze::{self, FreezeMark};
use crate::sources::{ArgoSource, Backend};
use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct FreezeArgs {
    /// The environment to freeze (as the board names it: prod, staging, ...).
    #[arg(required_unless_present = "list")]
    pub env: Option<String>,
    /// Why (shown in every operator's header and recorded on the window and in the audit log).
    #[arg(long, required_unless_present = "list")]
    pub reason: Option<String>,
    /// Until when: an RFC 3339 time (2026-12-01T18:00:00Z) or a duration from now (2h, 90m).
    /// Default: until further notice (until `shipdeck unfreeze ENV`).
    #[arg(long)]
    pub until: Option<String>,
    /// List the freezes open now instead.
    #[arg(long, conflicts_with_all = ["reason", "until"])]
    pub list: bool,
    #[command(flatten)]
    pub out: OutputArgs,
}

#[derive(Debug, Clone, Args)]
pub struct UnfreezeArgs {
    pub env: String,
    /// Approve lifting the freeze of a gated environment: name the environment again.
    #[arg(long, value_name = "ENV")]
    pub approve: Option<String>,
    /// Why (required where the environment's policy is `required`).
    #[arg(long, requires = "approve")]
    pub reason: Option<String>,
    #[command(flatten)]
    pub out: OutputArgs,
}

fn print_outcomes(out: &OutputArgs, done: &[freeze::FreezeOutcome]) -> anyhow::Result<()> {
    match out.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(done)?),
        OutputFormat::Table => {
            for d in done {
                let verb = if d.action == "freeze" {
                    "frozen"
                } else {
                    "unfrozen"
                };
                println!(
                    "{} {verb}: project(s) {}; apps {}",
                    clean(&d.env),
                    clean(&d.projects.join(", ")),
                    clean(&d.apps.join(", "))
                );
                if let Some(m) = &d.mark {
                    println!("{}", clean(&m.line()));
                }
            }
        }
    }
    Ok(())
}

pub async fn freeze_cmd(backends: &[Backend], ops: &Ops, a: FreezeArgs) -> anyhow::Result<i32> {
    if a.list {
        let mut all: Vec<FreezeMark> = Vec::new();
        for b in backends {
            let apps = b.list_applications().await?;
            all.extend(freeze::active_freezes(b, &apps).await);
        }
        match a.out.output {
            OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&all)?),
            OutputFormat::Table => {
                if all.is_empty() {
                    println!("no freeze open");
                }
                for m in &all {
                    println!("{}", clean(&m.line()));
                }
            }
        }
        return Ok(exit::OK);
    }
    let env = a.env.unwrap_or_default();
    let reason = a.reason.unwrap_or_default();
    let now = chrono::Utc::now();
    let until = match &a.until {
        Some(u) => Some(freeze::parse_until(u, now).map_err(UsageError)?),
        None => None,
    };
    if reason.trim().is_empty() {
        return Err(UsageError("--reason must say why".into()).into());
    }
    // A bad --until is the operator's to fix before anything is written.
    let probe = FreezeMark {
        env: env.clone(),
        by: ops.operator.clone(),
        at: Some(now),
        until,
        reason: reason.clone(),
    };
    freeze::window(&probe, &[], now).map_err(UsageError)?;
    let mut done = Vec::new();
    let mut last_err = None;
    for b in backends {
        match freeze::freeze(b, ops, &env, &reason, until).await {
            Ok(o) => done.push(o),
            Err(ActionError::NotFound(m)) if backends.len() > 1 => last_err = Some(m),
            Err(e) => return Err(e.into()),
        }
    }
    if done.is_empty() {
        return Err(ActionError::NotFound(
            last_err.unwrap_or_else(|| format!("no applications in environment {env}")),
        )
        .into());
    }
    print_outcomes(&a.out, &done)?;
    Ok(exit::OK)
}

pub async fn unfreeze_cmd(backends: &[Backend], ops: &Ops, a: UnfreezeArgs) -> anyhow::Result<i32> {
    let approval = a.approve.as_ref().map(|named| Approval {
        named_app: named.clone(),
        reason: a.reason.clone(),
        operator: ops.operator.clone(),
    });
    let mut done = Vec::new();
    let mut last_err = None;
    for b in backends {
        match freeze::unfreeze(b, ops, &a.env, approval.as_ref()).await {
            Ok(o) => done.push(o),
            Err(ActionError::NotFound(m)) if backends.len() > 1 => last_err = Some(m),
            Err(e) => return Err(e.into()),
        }
    }
    if done.is_empty() {
        return Err(ActionError::NotFound(
            last_err.unwrap_or_else(|| format!("{} is not frozen by shipdeck", a.env)),
        )
        .into());
    }
    print_outcomes(&a.out, &done)?;
    Ok(exit::OK)
}
