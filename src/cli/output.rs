//! What the headless commands print: aligned tables for people and JSON for scripts. Every
//! string from outside passes through `sanitize` here before it is printed; JSON escapes
//! control characters by itself, and its strings are sanitized too so a script that prints
//! a field cannot be tricked either.

use crate::model::text::sanitize;
use crate::model::{Application, HistoryEntry, RolloutVerdict, WorkloadRollout};
use crate::ops::estate::{compared_revision, deployed_revision};
use serde::Serialize;
use unicode_width::UnicodeWidthStr;

pub fn clean(s: &str) -> String {
    sanitize(s).into_owned()
}

/// One application in `shipdeck status --output json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct StatusRow {
    pub instance: String,
    pub name: String,
    pub environment: String,
    /// The environment's approval policy: `none`, `confirm` or `required`.
    pub policy: String,
    pub service: String,
    pub sync: String,
    pub health: String,
    /// The revision Argo CD compares against (the resolved target).
    pub revision: Option<String>,
    /// The revision last deployed (newest history entry).
    pub deployed_revision: Option<String>,
    /// `pending-change`, `drift` or `unknown` when OutOfSync.
    pub out_of_sync: Option<String>,
    pub auto_sync: bool,
    /// Phase of the operation in progress, if any.
    pub operation: Option<String>,
}

impl StatusRow {
    /// The row of an app already classified (`status` streams rows without an estate).
    fn of(
        id: &crate::model::AppId,
        environment: &crate::model::Environment,
        service: &str,
        cause: Option<crate::ops::estate::OutOfSyncCause>,
        a: &Application,
        policies: &crate::ops::policy::Policies,
    ) -> Self {
        Self {
            instance: clean(&id.instance),
            name: clean(&id.name),
            environment: clean(&environment.name),
            policy: policies.for_env(environment).label().to_string(),
            service: clean(service),
            sync: a.status.sync.status.to_string(),
            health: a.status.health.status.to_string(),
            revision: compared_revision(a).map(|r| clean(r.as_str())),
            deployed_revision: deployed_revision(a).map(|r| clean(r.as_str())),
            out_of_sync: cause.map(|c| c.as_str().to_string()),
            auto_sync: a.auto_sync(),
            operation: operation_phase(a),
        }
    }
}

fn operation_phase(a: &Application) -> Option<String> {
    if !a.operation_in_progress() {
        return None;
    }
    Some(
        a.status
            .operation_state
            .as_ref()
            .map(|o| o.phase.to_string())
            .unwrap_or_else(|| "Requested".to_string()),
    )
}

/// `status`'s rows built as each app decodes: the app is classified, its row made and the
/// app dropped at once, so no store of whole apps is ever built (see
/// [`crate::sources::ArgoSource::for_each_application`]).
pub struct StatusRows<'a> {
    classifier: &'a crate::ops::classify::Classifier,
    policies: &'a crate::ops::policy::Policies,
    rows: Vec<(
        crate::model::Environment,
        String,
        crate::model::AppId,
        StatusRow,
    )>,
}

impl<'a> StatusRows<'a> {
    pub fn new(
        classifier: &'a crate::ops::classify::Classifier,
        policies: &'a crate::ops::policy::Policies,
    ) -> Self {
        Self {
            classifier,
            policies,
            rows: Vec::new(),
        }
    }

    pub fn push(&mut self, instance: &str, app: Application) {
        let id = crate::model::AppId::new(
            instance,
            app.metadata.namespace.clone(),
            app.metadata.name.clone(),
        );
        let crate::ops::classify::Classified {
            environment,
            service,
        } = self.classifier.classify(&app);
        let cause = crate::ops::estate::out_of_sync_cause(&app);
        let row = StatusRow::of(&id, &environment, &service, cause, &app, self.policies);
        self.rows.push((environment, service, id, row));
    }

    /// In board order: environment (promotion order), service, id.
    pub fn finish(mut self) -> Vec<StatusRow> {
        self.rows
            .sort_by(|a, b| (&a.0, &a.1, &a.2).cmp(&(&b.0, &b.1, &b.2)));
        self.rows.into_iter().map(|r| r.3).collect()
    }
}

const STATUS_HEADERS: [&str; 11] = [
    "NAME",
    "ENV",
    "POLICY",
    "SERVICE",
    "SYNC",
    "HEALTH",
    "REVISION",
    "DEPLOYED",
    "WHY",
    "AUTO",
    "OPERATION",
];

fn status_cells(r: &StatusRow) -> [&str; 11] {
    fn short(r: &Option<String>) -> &str {
        r.as_deref()
            .map(|s| {
                if s.len() >= 40 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
                    &s[..7]
                } else {
                    s
                }
            })
            .unwrap_or("-")
    }
    fn or_dash(r: &Option<String>) -> &str {
        r.as_deref().unwrap_or("-")
    }
    [
        &r.name,
        &r.environment,
        &r.policy,
        &r.service,
        &r.sync,
        &r.health,
        short(&r.revision),
        short(&r.deployed_revision),
        or_dash(&r.out_of_sync),
        if r.auto_sync { "auto" } else { "manual" },
        or_dash(&r.operation),
    ]
}

/// The `status` table, aligned as [`table`] aligns, with cells borrowed from the rows
/// (one pass for the widths, one to write; no copy of every cell).
pub fn status_table(rows: &[StatusRow]) -> String {
    let mut widths: Vec<usize> = STATUS_HEADERS.iter().map(|h| h.width()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(status_cells(r).iter()) {
            *w = (*w).max(c.width());
        }
    }
    let mut out = String::with_capacity((widths.iter().sum::<usize>() + 24) * (rows.len() + 1));
    let mut line = |cells: &[&str]| {
        let start = out.len();
        for (i, c) in cells.iter().enumerate() {
            out.push_str(c);
            if i + 1 < cells.len() {
                let pad = widths[i].saturating_sub(c.width()) + 2;
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        let kept = start + out[start..].trim_end().len();
        out.truncate(kept);
        out.push('\n');
    };
    line(&STATUS_HEADERS);
    for r in rows {
        line(&status_cells(r));
    }
    out
}

#[derive(Debug, Clone, Serialize)]
pub struct HistoryRow {
    pub id: i64,
    pub revision: Option<String>,
    pub deployed_at: Option<String>,
    pub initiated_by: Option<String>,
    pub automated: bool,
    /// Images the deployment ran (from its revision's manifests in Git); null when unknown.
    pub images: Option<Vec<String>>,
}

/// `images`: per history entry, oldest first (as `ops::plan::history_images` gives them).
pub fn history_rows(a: &Application, images: Option<&[Vec<String>]>) -> Vec<HistoryRow> {
    a.status
        .history
        .iter()
        .enumerate()
        .rev()
        .map(|(i, h): (usize, &HistoryEntry)| HistoryRow {
            images: images
                .and_then(|v| v.get(i))
                .map(|v| v.iter().map(|s| clean(s)).collect()),
            id: h.id,
            revision: h
                .revision
                .clone()
                .or_else(|| h.revisions.first().cloned())
                .map(|r| clean(&r)),
            deployed_at: h.deployed_at.as_deref().map(clean),
            initiated_by: h
                .initiated_by
                .as_ref()
                .and_then(|i| i.username.as_deref())
                .map(clean),
            automated: h.initiated_by.as_ref().is_some_and(|i| i.automated),
        })
        .collect()
}

pub fn history_table(rows: &[HistoryRow]) -> String {
    table(
        &["ID", "REVISION", "DEPLOYED AT", "BY", "IMAGES"],
        rows.iter()
            .map(|r| {
                vec![
                    r.id.to_string(),
                    r.revision.clone().unwrap_or_else(|| "-".into()),
                    r.deployed_at.clone().unwrap_or_else(|| "-".into()),
                    if r.automated {
                        "automated".to_string()
                    } else {
                        r.initiated_by.clone().unwrap_or_else(|| "-".into())
                    },
                    r.images
                        .as_ref()
                        .map(|v| v.join(","))
                        .unwrap_or_else(|| "-".into()),
                ]
            })
            .collect(),
    )
}

pub fn verdict_word(v: &RolloutVerdict) -> (&'static str, String) {
    match v {
        RolloutVerdict::Complete => ("complete", String::new()),
        RolloutVerdict::InProgress(m) => ("in progress", clean(m)),
        RolloutVerdict::Failed(m) => ("failed", clean(m)),
    }
}

pub fn rollout_text(workloads: &[WorkloadRollout]) -> String {
    let mut out = table(
        &[
            "KIND",
            "WORKLOAD",
            "DESIRED",
            "UPDATED",
            "READY",
            "AVAILABLE",
            "STATUS",
        ],
        workloads
            .iter()
            .map(|w| {
                vec![
                    clean(w.kind()),
                    format!("{}/{}", clean(&w.namespace), clean(&w.name)),
                    w.desired.to_string(),
                    // A Job has completions, not updated replicas.
                    if matches!(w.kind(), "Job" | "CronJob") {
                        "-".into()
                    } else {
                        w.updated.to_string()
                    },
                    w.ready.to_string(),
                    w.available.to_string(),
                    verdict_word(&w.verdict()).0.to_string(),
                ]
            })
            .collect(),
    );
    for w in workloads {
        // kubectl's own line for this state (`kubectl rollout status --watch=false`), word
        // for word: complete, in progress and failed alike.
        out.push_str(&format!("{}\n", clean(&w.status_line())));
        if !w.pods.is_empty() {
            out.push('\n');
            out.push_str(&table(
                &["POD", "PHASE", "READY", "RESTARTS", "WAITING"],
                w.pods
                    .iter()
                    .map(|p| {
                        vec![
                            clean(&p.name),
                            clean(&p.phase),
                            if p.ready { "yes" } else { "no" }.into(),
                            p.restarts.to_string(),
                            p.waiting_reason
                                .as_deref()
                                .map(clean)
                                .unwrap_or_else(|| "-".into()),
                        ]
                    })
                    .collect(),
            ));
        }
    }
    out
}

/// Columns padded to the widest cell (by display width), two spaces apart.
pub fn table(headers: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.width()).collect();
    for row in &rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.width());
            }
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            l.push_str(c);
            if i + 1 < cells.len() {
                let pad = widths
                    .get(i)
                    .copied()
                    .unwrap_or(0)
                    .saturating_sub(c.width())
                    + 2;
                l.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(headers.to_vec());
    for row in &rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// `shipdeck plan --output json`: the plan with every external string sanitized.
pub fn plan_json(p: &crate::ops::plan::Plan) -> serde_json::Value {
    fn scrub(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) => *s = clean(s),
            serde_json::Value::Array(a) => a.iter_mut().for_each(scrub),
            serde_json::Value::Object(m) => m.values_mut().for_each(scrub),
            _ => {}
        }
    }
    let mut v = serde_json::to_value(p).unwrap_or_default();
    scrub(&mut v);
    v
}

/// `shipdeck plan`: the approval screen's sections as text.
pub fn plan_text(p: &crate::ops::plan::Plan) -> String {
    let short = |r: &Option<String>| {
        r.as_deref()
            .map(|s| clean(s.get(..7).unwrap_or(s)))
            .unwrap_or_else(|| "-".into())
    };
    let mut s = format!(
        "{} {} in {} ({} -> {})  diff {}\n\nWhat changes\n",
        clean(&p.change),
        clean(&p.app),
        clean(&p.environment),
        short(&p.from_revision),
        short(&p.to_revision),
        p.diff_digest.get(..12).unwrap_or(""),
    );
    if p.changes.is_empty() {
        s.push_str("  no resource differs\n");
    }
    for c in &p.changes {
        s.push_str(&format!("  {}\n", clean(c)));
    }
    s.push_str("\nWhy: commits\n");
    if p.commits.is_empty() {
        s.push_str("  no commits between these revisions\n");
    }
    for c in &p.commits {
        s.push_str(&format!(
            "  {} {} {}\n",
            clean(c.sha.get(..7).unwrap_or(&c.sha)),
            clean(&c.author),
            clean(&c.subject)
        ));
    }
    let mark = |ok: bool| if ok { "✓" } else { "!" };
    s.push_str("\nProven\n");
    s.push_str(&format!(
        "  {} {}\n  {} {}\n",
        mark(p.build.succeeded()),
        clean(&p.build.words()),
        mark(p.before.proven()),
        clean(&p.before.words())
    ));
    if let Some(pr) = &p.promotion {
        s.push_str(&format!("  ↑ {}\n", clean(&pr.words())));
    }
    s.push_str(if p.proven {
        "  proven\n"
    } else {
        "  not proven\n"
    });
    s.push_str("\nIn the way\n");
    if p.blockers.is_empty() {
        s.push_str("  nothing\n");
    }
    for b in &p.blockers {
        s.push_str(&format!("  ✗ {}\n", clean(b)));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_clean() {
        let t = table(&["A", "BB"], vec![vec!["xyz".into(), "1".into()]]);
        assert_eq!(t, "A    BB\nxyz  1\n");
        assert_eq!(clean("a\u{1b}[2Jb"), "a\\u{1b}[2Jb");
    }
}
