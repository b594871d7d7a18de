//! The console's promotion requests answered over `ops::promote` (the same steps the CLI
//! takes): prepare the commit and show it, push it, or drop it. Audit and read-only are
//! `ops::promote`'s. Never draws or decides.

use super::request::{Payload, Request, Response, Ticket};
use crate::ops::actions::Ops;
use crate::ops::promote;
use crate::sources::git::GitMirrors;
use std::sync::Arc;
use tokio::sync::mpsc;

pub fn task(
    git: Option<Arc<GitMirrors>>,
    ops: Arc<Ops>,
    ticket: Ticket,
    req: Request,
    tx: mpsc::Sender<Response>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let result = match req {
            Request::PromotePrepare { selection } => match git {
                None => {
                    Err("Git is not available (no cache directory for the working clone)".into())
                }
                Some(git) => {
                    let sel = *selection;
                    let (instance, app, env) = (
                        sel.target_app.instance.clone(),
                        sel.target_app.name.clone(),
                        sel.to_env.clone(),
                    );
                    match promote::prepare(&git, &ops, sel).await {
                        Ok(p) => Ok(Payload::Promotion(Box::new(p))),
                        Err(e) => {
                            promote::audit_refusal(&ops, &instance, &app, &env, &e);
                            Err(e.to_string())
                        }
                    }
                }
            },
            Request::PromotePush { prepared } => match promote::push(&ops, &prepared).await {
                Ok(p) => {
                    if let Some(g) = &git {
                        g.invalidate(&p.url).await;
                    }
                    Ok(Payload::Accepted(format!(
                        "pushed {} to {}: {} turns OutOfSync and waits for its sync",
                        p.commit.get(..7).unwrap_or(&p.commit),
                        p.branch,
                        prepared.selection.target_app.name
                    )))
                }
                Err(e) => Err(e.to_string()),
            },
            Request::PromoteCancel { prepared } => {
                promote::cancel(&ops, &prepared, "declined in the console").await;
                Ok(Payload::Accepted(
                    "promotion dropped: nothing was pushed".into(),
                ))
            }
            _ => Err("not a promotion request".into()),
        };
        let _ = tx.send(Response { ticket, result }).await;
    })
}
