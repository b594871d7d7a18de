//! `shipdeck metrics`: delivery metrics per service and environment (deployments, lead time,
//! change failure rate, time to restore), from Argo CD, Git, events and the audit log.

use super::exit::{self, UsageError};
use super::output::{self, clean};
use super::{ConsoleArgs, OutputArgs, OutputFormat};
use crate::ops::estate::{Estate, Update};
use crate::ops::metrics::{self, Figures, Params, Report, duration_words};
use crate::sources::ArgoSource;
use clap::Args;
use std::time::Duration;

/// `metrics --help`: how each figure is computed and the stable JSON fields.
pub fn help() -> String {
    format!(
        "How each figure is computed:\n{}\n\n{JSON_FIELDS}\n\nExit codes: as every command (see shipdeck --help).",
        metrics::HOW
    )
}

/// The stable JSON fields of `--output json`.
pub const JSON_FIELDS: &str = "JSON fields (--output json; stable): since, until, window_seconds, \
apps: [{app, service, environment, since, until, window_seconds, deployments {count, per_day, \
per_week, from_history, from_audit, from_git, rollbacks, history_limit, history_truncated}, \
lead_time {median_seconds, p90_seconds, samples, from_source_commit, from_revision_commit, \
unknown}, change_failure_rate {rate (0..1), failed, deployments, by_rollback, \
by_failed_operation, by_degraded, unknown}, time_to_restore {median_seconds, restores, ongoing, \
unknown}, notes}]. A figure that cannot be computed is null, with the reason in `unknown`.";

#[derive(Debug, Clone, Args)]
pub struct MetricsArgs {
    /// The period: the last N days/weeks/hours (30d, 4w, 12h).
    #[arg(long, default_value = "30d")]
    pub since: String,
    /// How soon after a deployment a rollback, failed sync or Degraded makes it a failure.
    #[arg(long, default_value = "1h")]
    pub window: String,
    /// Only this service.
    #[arg(long)]
    pub service: Option<String>,
    /// Only this environment.
    #[arg(long)]
    pub environment: Option<String>,
    #[command(flatten)]
    pub out: OutputArgs,
}

/// The longest the whole report may take (events of every app are read).
const DEADLINE: Duration = Duration::from_secs(120);

pub async fn run(args: &ConsoleArgs, m: MetricsArgs) -> i32 {
    let result = async {
        let since =
            metrics::parse_span(&m.since).map_err(|e| UsageError(format!("--since: {e}")))?;
        let window =
            metrics::parse_span(&m.window).map_err(|e| UsageError(format!("--window: {e}")))?;
        let mut room = crate::connect::Room::open(args)?;
        for w in &room.warnings {
            eprintln!("shipdeck: warning: {}", clean(w));
        }
        let git = crate::connect::git(&room.config);
        let backends = tokio::time::timeout(Duration::from_secs(30), room.argo())
            .await
            .map_err(|_| anyhow::anyhow!("connecting to Argo CD: no answer in 30s"))??;
        let mut estate = Estate::with_classifier(room.ops.classifier.clone());
        for b in &backends {
            let apps = tokio::time::timeout(Duration::from_secs(30), b.list_applications())
                .await
                .map_err(|_| anyhow::anyhow!("list applications: no answer in 30s"))??;
            estate.apply(Update::Resync {
                instance: b.instance().to_string(),
                apps: apps
                    .into_iter()
                    .filter(|a| {
                        m.service.is_none() && m.environment.is_none()
                            || estate_match(&room.ops.classifier, a, &m)
                    })
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
        let audit = room.ops.audit.read_all().map_err(|e| e.to_string());
        let audit_ref = audit.as_deref().map_err(String::as_str);
        let now = chrono::Utc::now();
        let params = Params {
            since: now - since,
            now,
            window,
        };
        let report = tokio::time::timeout(
            DEADLINE,
            metrics::report(&backends, &estate, git.as_deref(), audit_ref, &params),
        )
        .await
        .map_err(|_| anyhow::anyhow!("metrics: no answer in {}s", DEADLINE.as_secs()))?;
        match m.out.output {
            OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&json(&report))?),
            OutputFormat::Table => print!("{}", text(&report)),
        }
        Ok::<i32, anyhow::Error>(exit::OK)
    }
    .await;
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("shipdeck: {}", clean(&format!("{e:#}")));
            exit::for_error(&e)
        }
    }
}

fn estate_match(
    classifier: &crate::ops::classify::Classifier,
    a: &crate::model::Application,
    m: &MetricsArgs,
) -> bool {
    let e = classifier.classify(a);
    m.service.as_ref().is_none_or(|s| *s == e.service)
        && m.environment
            .as_ref()
            .is_none_or(|x| *x == e.environment.name)
}

/// The report as JSON, every string sanitized.
pub fn json(r: &Report) -> serde_json::Value {
    fn scrub(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => *s = clean(s),
            serde_json::Value::Array(a) => a.iter_mut().for_each(scrub),
            serde_json::Value::Object(o) => o.values_mut().for_each(scrub),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(r).unwrap_or_default();
    scrub(&mut v);
    v
}

fn rate(f: &Figures) -> String {
    match f.change_failure_rate.rate {
        Some(r) => format!(
            "{:.1}% ({}/{})",
            r * 100.0,
            f.change_failure_rate.failed,
            f.change_failure_rate.deployments
        ),
        None => "unknown".into(),
    }
}

/// The table, then each unknown figure's reason and the notes.
pub fn text(r: &Report) -> String {
    let rows: Vec<Vec<String>> = r
        .apps
        .iter()
        .map(|f| {
            vec![
                clean(&f.service),
                clean(&f.environment),
                f.deployments.count.to_string(),
                format!("{:.2}", f.deployments.per_week),
                duration_words(f.lead_time.median_seconds),
                duration_words(f.lead_time.p90_seconds),
                rate(f),
                duration_words(f.time_to_restore.median_seconds),
            ]
        })
        .collect();
    let mut out = format!(
        "Delivery metrics {} .. {} (failure window {})\n",
        r.since,
        r.until,
        duration_words(Some(r.window_seconds))
    );
    out.push_str(&output::table(
        &[
            "SERVICE",
            "ENV",
            "DEPLOYS",
            "PER WEEK",
            "LEAD MEDIAN",
            "LEAD P90",
            "CHANGE FAILURE",
            "RESTORE MEDIAN",
        ],
        rows,
    ));
    let mut why = String::new();
    for f in &r.apps {
        let mut lines: Vec<String> = Vec::new();
        if let Some(u) = &f.lead_time.unknown {
            lines.push(format!("lead time unknown: {u}"));
        }
        if let Some(u) = &f.change_failure_rate.unknown {
            lines.push(format!("change failure rate unknown: {u}"));
        }
        if let Some(u) = &f.time_to_restore.unknown {
            lines.push(format!("time to restore unknown: {u}"));
        }
        lines.extend(f.notes.iter().cloned());
        if !lines.is_empty() {
            why.push_str(&format!("{} ({}):\n", clean(&f.app), clean(&f.environment)));
            for l in lines {
                why.push_str(&format!("  {}\n", clean(&l)));
            }
        }
    }
    if !why.is_empty() {
        out.push('\n');
        out.push_str(&why);
    }
    out.push_str("\nHow each figure is computed: shipdeck metrics --help\n");
    out
}
