//! `shipdeck promote SERVICE --to ENV [--from ENV] [--yes]`: what runs Healthy in the
//! environment before, written into ENV's manifests on its branch as a commit by the
//! operator (`ops::promote`). The commit's diff is shown first; it is pushed only when
//! confirmed: `--yes`, or `y` on the terminal. With neither it refuses (exit 3) and the
//! local commit is dropped.

use super::OutputFormat;
use super::exit::UsageError;
use super::output::clean;
use crate::connect::Room;
use crate::ops::estate::{Estate, Update};
use crate::ops::promote::{self, PromoteError};
use crate::sources::{ArgoSource, SourceError};
use clap::Args;
use std::io::{BufRead, IsTerminal, Write};
use std::time::Duration;

#[derive(Debug, Clone, Args)]
pub struct PromoteArgs {
    /// The service (a row of the board).
    pub service: String,
    /// The environment to promote into (a column of the board).
    #[arg(long)]
    pub to: String,
    /// The environment to take the images from (default: the one before --to, in the
    /// board's promotion order).
    #[arg(long)]
    pub from: Option<String>,
    /// Push without asking (scripts). Without it shipdeck asks on the terminal, and
    /// refuses when there is none.
    #[arg(long)]
    pub yes: bool,
    /// How: a Git commit (default), or the estate's deploy workflow with a tag input
    /// (`deploy-service.yml`), dispatched with the tag through the configured CI.
    #[arg(long, value_enum, default_value_t = Via::Git)]
    pub via: Via,
    #[command(flatten)]
    pub out: super::OutputArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Via {
    Git,
    Workflow,
}

const DEADLINE: Duration = Duration::from_secs(30);

fn confirm(yes: bool, question: &str) -> bool {
    yes || (std::io::stdin().is_terminal() && std::io::stderr().is_terminal() && ask(question))
}

/// The workflow route: dispatch the deploy workflow with the tag, audited as `promote`.
async fn via_workflow(
    room: &mut Room,
    estate: &Estate,
    sel: promote::Selection,
    a: &PromoteArgs,
) -> anyhow::Result<i32> {
    use crate::model::BuildSystem;
    let apps: Vec<_> = estate.apps().map(|e| e.app()).collect();
    let ci = room.ci(crate::connect::git(&room.config));
    ci.learn_from_apps(&apps, &room.config);
    if ci.is_empty() {
        return Err(crate::connect::Ci::nothing_configured().into());
    }
    let pipelines = match tokio::time::timeout(DEADLINE, ci.pipelines()).await {
        Ok(p) => p?,
        Err(_) => {
            return Err(SourceError::Timeout {
                what: "listing workflows".into(),
                seconds: DEADLINE.as_secs(),
            }
            .into());
        }
    };
    let mut found = None;
    let mut ordered: Vec<_> = pipelines
        .iter()
        .filter(|p| p.system == BuildSystem::GithubActions)
        .collect();
    ordered.sort_by_key(|p| !p.name.ends_with("deploy-service.yml"));
    for p in ordered {
        if let Some(inputs) = promote::workflow_inputs(&p.inputs, &sel)? {
            found = Some((p.clone(), inputs));
            break;
        }
    }
    let Some((p, inputs)) = found else {
        let e = PromoteError::NotFound(
            "no deploy workflow with a tag input (like deploy-service.yml) in the configured CI: promote through Git (--via git)".into(),
        );
        promote::audit_selection(&room.ops, &sel, "refused", e.to_string());
        return Err(e.into());
    };
    let words = format!(
        "dispatch {} with {}",
        p.name,
        inputs
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ")
    );
    eprintln!(
        "{}",
        clean(&format!(
            "Promote {} from {} to {} ({}): {words}",
            sel.images.join(", "),
            sel.from_env,
            sel.to_env,
            sel.target_app.name
        ))
    );
    if !confirm(a.yes, &clean(&format!("{words}?"))) {
        promote::audit_selection(
            &room.ops,
            &sel,
            "refused",
            format!("not confirmed: {words}"),
        );
        return Err(PromoteError::Refused(format!(
            "promote {} to {} needs confirmation: rerun with --yes (or on a terminal); nothing was dispatched",
            sel.service, sel.to_env
        ))
        .into());
    }
    let req = crate::ops::actions::BuildRequest {
        system: p.system,
        pipeline: p.name.clone(),
        repo: p.repo.clone(),
        git_ref: p.git_ref.clone(),
        inputs: inputs.clone(),
        app: Some(sel.target_app.name.clone()),
    };
    promote::audit_selection(&room.ops, &sel, "started", words.clone());
    match crate::ops::actions::build(&ci, &room.ops, &req).await {
        Ok(run) => {
            promote::audit_selection(
                &room.ops,
                &sel,
                "succeeded",
                format!("{words}: run {}", run.id),
            );
            match a.out.output {
                OutputFormat::Json => println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "service": clean(&sel.service),
                        "from": clean(&sel.from_env),
                        "to": clean(&sel.to_env),
                        "app": clean(&sel.target_app.name),
                        "images": sel.images.iter().map(|i| clean(i)).collect::<Vec<_>>(),
                        "workflow": clean(&p.name),
                        "run": run.id,
                        "inputs": inputs.iter().map(|(k, v)| (clean(k), serde_json::Value::from(clean(v)))).collect::<serde_json::Map<_, _>>(),
                    }))?
                ),
                OutputFormat::Table => {
                    println!("{}", clean(&format!("{words}: run {} started", run.id)))
                }
            }
            Ok(super::exit::OK)
        }
        Err(e) => {
            promote::audit_selection(&room.ops, &sel, "failed", e.to_string());
            Err(e.into())
        }
    }
}

/// Every application of every connected Argo CD, classified as the board does.
pub(super) async fn estate_of(room: &mut Room) -> anyhow::Result<Estate> {
    let backends = match tokio::time::timeout(DEADLINE, room.argo()).await {
        Ok(b) => b?,
        Err(_) => {
            return Err(SourceError::Timeout {
                what: "connecting to Argo CD".into(),
                seconds: DEADLINE.as_secs(),
            }
            .into());
        }
    };
    let mut estate = Estate::with_classifier(room.ops.classifier.clone());
    for b in &backends {
        let apps = match tokio::time::timeout(DEADLINE, b.list_applications()).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(SourceError::Timeout {
                    what: "listing applications".into(),
                    seconds: DEADLINE.as_secs(),
                }
                .into());
            }
        };
        estate.apply(Update::Resync {
            instance: b.instance().to_string(),
            apps: apps
                .into_iter()
                .map(|a| {
                    let id = crate::model::AppId::new(
                        b.instance(),
                        a.metadata.namespace.clone(),
                        a.metadata.name.clone(),
                    );
                    (id, a)
                })
                .collect(),
        });
    }
    Ok(estate)
}

fn ask(question: &str) -> bool {
    let mut err = std::io::stderr();
    let _ = write!(err, "{question} [y/N] ");
    let _ = err.flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

pub async fn promote(room: &mut Room, a: PromoteArgs) -> anyhow::Result<i32> {
    let estate = estate_of(room).await?;
    let ops = &room.ops;
    let target_name = estate
        .cell(&a.service, &a.to)
        .next()
        .map(|e| (e.id.instance.clone(), e.id.name.clone()))
        .unwrap_or_default();
    let refuse = |e: PromoteError| -> anyhow::Error {
        promote::audit_refusal(ops, &target_name.0, &target_name.1, &a.to, &e);
        e.into()
    };
    let sel = promote::select(&estate, &a.service, &a.to, a.from.as_deref()).map_err(refuse)?;
    if a.via == Via::Workflow {
        return via_workflow(room, &estate, sel, &a).await;
    }
    let git = crate::connect::git(&room.config).ok_or_else(|| {
        UsageError("no cache directory for the working clone (set HOME or XDG_CACHE_HOME)".into())
    })?;
    let p = promote::prepare(&git, ops, sel).await.map_err(refuse)?;
    let s = &p.selection;
    eprintln!(
        "{}",
        clean(&format!(
            "Promote {} from {} ({}{}) to {} ({}): commit {} on {} of {} ({})",
            s.images.join(", "),
            s.from_env,
            s.source_app.name,
            s.healthy_since
                .map(|t| format!(", Healthy since {}", t.format("%Y-%m-%d %H:%M UTC")))
                .unwrap_or_default(),
            s.to_env,
            s.target_app.name,
            p.commit.get(..7).unwrap_or(&p.commit),
            s.branch,
            s.repo_url,
            p.form.words(),
        ))
    );
    eprintln!();
    eprint!("{}", crate::model::text::sanitize_multiline(&p.diff));
    eprintln!();
    let confirmed = if a.yes {
        true
    } else if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        ask(&clean(&format!("Push this commit to {}?", s.branch)))
    } else {
        promote::cancel(ops, &p, "not confirmed: no terminal to ask on and no --yes").await;
        return Err(PromoteError::Refused(format!(
            "promote {} to {} needs confirmation: rerun with --yes (or on a terminal); nothing was pushed",
            s.service, s.to_env
        ))
        .into());
    };
    if !confirmed {
        promote::cancel(ops, &p, "declined on the terminal").await;
        return Err(PromoteError::Refused("not confirmed: nothing was pushed".into()).into());
    }
    let pushed = promote::push(ops, &p).await?;
    match a.out.output {
        OutputFormat::Json => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "service": clean(&s.service),
                "from": clean(&s.from_env),
                "to": clean(&s.to_env),
                "app": clean(&s.target_app.name),
                "images": s.images.iter().map(|i| clean(i)).collect::<Vec<_>>(),
                "commit": pushed.commit,
                "branch": clean(&pushed.branch),
                "repo": clean(&pushed.url),
                "files": p.files.iter().map(|f| clean(f)).collect::<Vec<_>>(),
            }))?
        ),
        OutputFormat::Table => println!(
            "{}",
            clean(&format!(
                "pushed {} to {}: {} will turn OutOfSync; review and sync it (shipdeck plan {})",
                pushed.commit.get(..7).unwrap_or(&pushed.commit),
                pushed.branch,
                s.target_app.name,
                s.target_app.name
            ))
        ),
    }
    Ok(super::exit::OK)
}
