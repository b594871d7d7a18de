//! `shipdeck confirm-prune APP [--approve APP --reason TEXT]`: confirm the prunes a sync of
//! APP waits for (Argo CD 3.4+ `Prune=confirm`), gated like a sync and audited.

use super::exit;
use super::output::clean;
use super::{OutputArgs, OutputFormat};
use crate::ops::actions::Ops;
use crate::ops::approval::Approval;
use crate::ops::prune;
use crate::sources::Backend;
use clap::Args;

#[derive(Debug, Clone, Args)]
pub struct ConfirmPruneArgs {
    pub app: String,
    /// Approve in a gated environment: name the app again.
    #[arg(long, value_name = "APP")]
    pub approve: Option<String>,
    /// Why (required where the environment's policy is `required`).
    #[arg(long, requires = "approve")]
    pub reason: Option<String>,
    #[command(flatten)]
    pub out: OutputArgs,
}

pub async fn confirm_prune(src: &Backend, ops: &Ops, a: ConfirmPruneArgs) -> anyhow::Result<i32> {
    let approval = a.approve.as_ref().map(|named| Approval {
        named_app: named.clone(),
        reason: a.reason.clone(),
        operator: ops.operator.clone(),
    });
    let wait = prune::confirm(src, ops, &a.app, approval.as_ref()).await?;
    match a.out.output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "app": clean(&a.app),
                "confirmed": true,
                "message": wait.message,
                "resources": wait.resources,
            }))?
        ),
        OutputFormat::Table => {
            println!(
                "{}: prune confirmed; the sync goes ahead and deletes {} resource(s):",
                clean(&a.app),
                wait.resources.len()
            );
            for r in &wait.resources {
                println!("  {}", clean(r));
            }
        }
    }
    Ok(exit::OK)
}
