//! The diff engine: what a sync would change, per resource, as a unified YAML diff and as
//! one-line summaries an operator understands. Input is the desired (Git) and live state of
//! each managed resource as a source gives it (API mode: managed-resources; core mode: Git
//! manifests against live objects); the engine normalizes both as Argo CD does, masks Secret
//! values, and never performs I/O. The digest of the rendered diff goes into approvals and
//! the audit log, so an approval names exactly the change that was read.

mod normalize;
mod summary;

pub use normalize::{
    LAST_APPLIED, TRACKING_LABEL, apply_ignore_differences, mask_secret_values, normalize,
};
pub use summary::{image_change, new_images};

use crate::sources::ManagedResource;
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::fmt;

/// Lines of unchanged context around each hunk, as `diff -u`.
pub const CONTEXT_LINES: usize = 3;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct ResourceKey {
    pub group: String,
    pub kind: String,
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ResourceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.group.is_empty() {
            write!(f, "{}.{}/", self.kind, self.group)?;
        } else {
            write!(f, "{}/", self.kind)?;
        }
        if !self.namespace.is_empty() {
            write!(f, "{}/", self.namespace)?;
        }
        f.write_str(&self.name)
    }
}

/// What a sync does to one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Change {
    /// In Git, not live: the sync creates it.
    Create,
    /// Live, gone from Git: a sync with prune deletes it.
    Prune,
    Modify,
    Unchanged,
}

/// A diff line, already classified, without its `+`/`-`/` ` prefix. Text is raw (from Git
/// and the cluster): sanitize before drawing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum LineKind {
    Context,
    Added,
    Removed,
    /// A run of unchanged lines left out between hunks; the text says how many.
    Folded,
    /// `@@ -a,b +c,d @@`
    Hunk,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffLine {
    pub kind: LineKind,
    pub text: String,
}

impl DiffLine {
    pub fn new(kind: LineKind, text: impl Into<String>) -> Self {
        Self {
            kind,
            text: text.into(),
        }
    }
}

/// One resource's difference between live and target: the one definition every room uses
/// (`shipdeck diff`, the console's diff and approval screens, the audit digest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceDiff {
    pub key: ResourceKey,
    pub change: Change,
    /// One line per change, in words ("image api: sha-1 -> sha-2").
    pub summary: Vec<String>,
    /// The diff from live to target, line by line (empty when unchanged).
    pub lines: Vec<DiffLine>,
    /// Images the change starts running (target images of containers whose image
    /// changes), so a screen can tell whether they were proven elsewhere.
    pub images: Vec<String>,
}

impl ResourceDiff {
    pub fn changed(&self) -> bool {
        self.change != Change::Unchanged
    }

    /// The whole change in one line, for lists.
    pub fn meaning(&self) -> String {
        match self.change {
            Change::Create => "will be created".into(),
            Change::Prune => "will be pruned".into(),
            Change::Unchanged => "no difference".into(),
            Change::Modify if self.summary.is_empty() => "changed".into(),
            Change::Modify => self.summary.join("; "),
        }
    }

    /// The lines as a unified diff from live to target (`--- live` / `+++ target`), as
    /// `diff -u` prints it; empty when unchanged. Folded markers are not part of it.
    pub fn unified(&self) -> String {
        if self.lines.is_empty() {
            return String::new();
        }
        let mut out = String::from("--- live\n+++ target\n");
        for l in &self.lines {
            let prefix = match l.kind {
                LineKind::Folded => continue,
                LineKind::Hunk => "",
                LineKind::Context => " ",
                LineKind::Added => "+",
                LineKind::Removed => "-",
            };
            out.push_str(prefix);
            out.push_str(&l.text);
            out.push('\n');
        }
        out
    }
}

/// The diff of a whole application.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct AppDiff {
    /// Every managed resource, sorted by key; unchanged ones included so a view can say so.
    pub resources: Vec<ResourceDiff>,
}

impl AppDiff {
    pub fn has_differences(&self) -> bool {
        self.resources.iter().any(ResourceDiff::changed)
    }

    pub fn changed(&self) -> impl Iterator<Item = &ResourceDiff> {
        self.resources.iter().filter(|r| r.changed())
    }

    /// Every resource, changed ones first (each group in key order), for lists.
    pub fn changed_first(&self) -> Vec<&ResourceDiff> {
        let mut v: Vec<&ResourceDiff> = self.resources.iter().collect();
        v.sort_by_key(|r| !r.changed());
        v
    }

    /// Every changed resource's unified diff, one after another, as `argocd app diff` prints.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for r in self.changed() {
            out.push_str(&format!("===== {} ======\n", r.key));
            out.push_str(&r.unified());
        }
        out
    }

    /// sha256 of [`AppDiff::render`], hex: what an approval and the audit log record.
    pub fn digest(&self) -> String {
        hex(&Sha256::digest(self.render().as_bytes()))
    }

    /// `Kind/ns/name: summary` lines for every change.
    pub fn summary_lines(&self) -> Vec<String> {
        self.changed()
            .flat_map(|r| r.summary.iter().map(move |s| format!("{}: {s}", r.key)))
            .collect()
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Diff every managed resource of an app. `ignore_differences` is the app's
/// `spec.ignoreDifferences`.
pub fn diff_app(resources: &[ManagedResource], ignore_differences: &[Value]) -> AppDiff {
    let mut out: Vec<ResourceDiff> = resources
        .iter()
        .map(|r| {
            let key = ResourceKey {
                group: r.group.clone(),
                kind: r.kind.clone(),
                namespace: r.namespace.clone(),
                name: r.name.clone(),
            };
            diff_resource(
                key,
                r.target.as_ref().filter(|v| !v.is_null()),
                r.live.as_ref().filter(|v| !v.is_null()),
                ignore_differences,
            )
        })
        .collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    AppDiff { resources: out }
}

/// Diff one resource: normalize, drop ignored fields, restrict live to what is managed,
/// mask Secret values, then compare.
pub fn diff_resource(
    key: ResourceKey,
    target: Option<&Value>,
    live: Option<&Value>,
    ignore_differences: &[Value],
) -> ResourceDiff {
    let applied = live.and_then(normalize::last_applied);
    let mut t = target.map(normalize);
    let mut l = live.map(normalize);
    for side in [t.as_mut(), l.as_mut()].into_iter().flatten() {
        normalize::fold_string_data(side);
        apply_ignore_differences(side, ignore_differences);
    }
    if let (Some(t), Some(l)) = (t.as_ref(), l.as_mut()) {
        let mut applied = applied;
        if let Some(a) = applied.as_mut() {
            normalize::fold_string_data(a);
        }
        normalize::restrict_to_managed(l, t, applied.as_ref());
    }
    mask_secret_values(t.as_mut(), l.as_mut());

    let (change, summary) = match (&t, &l) {
        (Some(_), None) => (Change::Create, vec!["resource will be created".to_string()]),
        (None, Some(_)) => (Change::Prune, vec!["resource will be pruned".to_string()]),
        (None, None) => (Change::Unchanged, Vec::new()),
        (Some(t), Some(l)) if t == l => (Change::Unchanged, Vec::new()),
        (Some(t), Some(l)) => (Change::Modify, summary::summarize(&key.kind, t, l)),
    };
    let (lines, images) = if change == Change::Unchanged {
        (Vec::new(), Vec::new())
    } else {
        (
            diff_lines(l.as_ref(), t.as_ref()),
            new_images(&key.kind, t.as_ref(), l.as_ref()),
        )
    };
    ResourceDiff {
        key,
        change,
        summary,
        lines,
        images,
    }
}

/// YAML as Argo CD's diff shows it; a value that cannot be serialized falls back to JSON so
/// the diff is never silently empty.
pub fn to_yaml(v: &Value) -> String {
    serde_saphyr::to_string(v)
        .unwrap_or_else(|_| serde_json::to_string_pretty(v).unwrap_or_default() + "\n")
}

/// The unified diff from live to target as classified lines, with a folded marker for
/// each run of unchanged lines left out before, between and after the hunks.
fn diff_lines(live: Option<&Value>, target: Option<&Value>) -> Vec<DiffLine> {
    let old = live.map(to_yaml).unwrap_or_default();
    let new = target.map(to_yaml).unwrap_or_default();
    let total = old.split_inclusive('\n').count();
    let diff = similar::TextDiff::from_lines(&old, &new);
    let fold = |n: usize, out: &mut Vec<DiffLine>| {
        if n > 0 {
            let s = if n == 1 { "" } else { "s" };
            out.push(DiffLine::new(
                LineKind::Folded,
                format!("⋯ {n} unchanged line{s}"),
            ));
        }
    };
    let mut out = Vec::new();
    let mut seen = 0usize;
    let mut unified = diff.unified_diff();
    unified.context_radius(CONTEXT_LINES);
    for hunk in unified.iter_hunks() {
        let start = hunk.ops().first().map_or(seen, |op| op.old_range().start);
        let end = hunk.ops().last().map_or(seen, |op| op.old_range().end);
        fold(start.saturating_sub(seen), &mut out);
        out.push(DiffLine::new(LineKind::Hunk, hunk.header().to_string()));
        for c in hunk.iter_changes() {
            let kind = match c.tag() {
                similar::ChangeTag::Equal => LineKind::Context,
                similar::ChangeTag::Insert => LineKind::Added,
                similar::ChangeTag::Delete => LineKind::Removed,
            };
            let text = c.value();
            let text = text.strip_suffix('\n').unwrap_or(text);
            out.push(DiffLine::new(kind, text.strip_suffix('\r').unwrap_or(text)));
        }
        seen = end;
    }
    if !out.is_empty() {
        fold(total.saturating_sub(seen), &mut out);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn res(kind: &str, name: &str, target: Option<Value>, live: Option<Value>) -> ManagedResource {
        ManagedResource {
            group: if kind == "Deployment" {
                "apps".into()
            } else {
                String::new()
            },
            version: "v1".into(),
            kind: kind.into(),
            namespace: "shop".into(),
            name: name.into(),
            target,
            live,
        }
    }

    fn deployment(image: &str) -> Value {
        json!({"apiVersion":"apps/v1","kind":"Deployment",
            "metadata":{"name":"api","namespace":"shop"},
            "spec":{"replicas":2,"template":{"spec":{"containers":[{"name":"api","image":image}]}}}})
    }

    fn live(mut v: Value) -> Value {
        v["metadata"]["uid"] = json!("1234");
        v["metadata"]["resourceVersion"] = json!("99");
        v["status"] = json!({"replicas":2});
        if v["kind"] == "Deployment" {
            v["spec"]["strategy"] = json!({"type":"RollingUpdate"});
        }
        v
    }

    #[test]
    fn app_diff_with_create_prune_modify_and_unchanged() {
        let cm = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"shop"},"data":{"a":"1"}});
        let resources = vec![
            res(
                "Deployment",
                "api",
                Some(deployment("api:sha-2")),
                Some(live(deployment("api:sha-1"))),
            ),
            res("ConfigMap", "c", Some(cm.clone()), Some(live(cm.clone()))),
            res("ConfigMap", "new", Some(cm.clone()), None),
            res("ConfigMap", "old", None, Some(live(cm))),
        ];
        let d = diff_app(&resources, &[]);
        assert!(d.has_differences());
        assert_eq!(
            d.summary_lines(),
            [
                "ConfigMap/shop/new: resource will be created",
                "ConfigMap/shop/old: resource will be pruned",
                "Deployment.apps/shop/api: image api: sha-1 -> sha-2",
            ]
        );
        let text = d.render();
        assert!(
            text.contains("-          image: api:sha-1")
                || text.contains("-    image: api:sha-1")
                || text.contains("image: api:sha-1")
        );
        assert!(text.contains("@@"));
        assert!(!text.contains("uid") && !text.contains("strategy"));
        assert_eq!(d.digest().len(), 64);
        assert_eq!(d.digest(), diff_app(&resources, &[]).digest());
    }

    #[test]
    fn unchanged_app_has_no_differences() {
        let d = deployment("api:1");
        let diff = diff_app(
            &[res("Deployment", "api", Some(d.clone()), Some(live(d)))],
            &[],
        );
        assert!(!diff.has_differences());
        assert_eq!(diff.render(), "");
    }

    #[test]
    fn secret_values_never_appear() {
        let s = |v: &str| json!({"apiVersion":"v1","kind":"Secret","metadata":{"name":"s","namespace":"shop"},"data":{"password":v,"user":"YWRtaW4="}});
        let d = diff_app(
            &[res(
                "Secret",
                "s",
                Some(s("c2VjcmV0Mg==")),
                Some(live(s("c2VjcmV0MQ=="))),
            )],
            &[],
        );
        let text = d.render();
        assert!(
            !text.contains("c2VjcmV0") && !text.contains("YWRtaW4="),
            "{text}"
        );
        assert_eq!(
            d.summary_lines(),
            ["Secret/shop/s: Secret key password changed"]
        );
    }

    #[test]
    fn lines_are_structured_and_unified_text_is_what_diff_u_prints() {
        let mut long = deployment("api:sha-1");
        for i in 0..12 {
            long["metadata"]["labels"][format!("l{i:02}")] = json!("x");
        }
        let mut new = long.clone();
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("api:sha-2");
        let key = ResourceKey {
            group: "apps".into(),
            kind: "Deployment".into(),
            namespace: "shop".into(),
            name: "api".into(),
        };
        let d = diff_resource(key, Some(&new), Some(&long), &[]);
        assert_eq!(d.change, Change::Modify);
        assert_eq!(d.meaning(), "image api: sha-1 -> sha-2");
        let kinds: Vec<LineKind> = d.lines.iter().map(|l| l.kind).collect();
        assert_eq!(kinds.first(), Some(&LineKind::Folded), "{:?}", d.lines);
        assert_eq!(kinds.iter().filter(|k| **k == LineKind::Hunk).count(), 1);
        let removed: Vec<&str> = d
            .lines
            .iter()
            .filter(|l| l.kind == LineKind::Removed)
            .map(|l| l.text.trim())
            .collect();
        let added: Vec<&str> = d
            .lines
            .iter()
            .filter(|l| l.kind == LineKind::Added)
            .map(|l| l.text.trim())
            .collect();
        assert_eq!(removed, ["- image: api:sha-1"]);
        assert_eq!(d.images, ["api:sha-2"]);
        assert_eq!(added, ["- image: api:sha-2"]);
        // The text form is byte for byte what `similar` prints as `diff -u`, so the digest
        // names the same text an operator would get from `shipdeck diff`.
        let (old_text, new_text) = (to_yaml(&long), to_yaml(&new));
        let expected = similar::TextDiff::from_lines(&old_text, &new_text)
            .unified_diff()
            .context_radius(CONTEXT_LINES)
            .header("live", "target")
            .to_string();
        assert_eq!(d.unified(), expected);
    }

    #[test]
    fn meanings_follow_the_change_not_its_words() {
        let cm = json!({"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"c","namespace":"shop"},"data":{"a":"1"}});
        let d = diff_app(
            &[
                res("ConfigMap", "new", Some(cm.clone()), None),
                res("ConfigMap", "old", None, Some(live(cm.clone()))),
                res("ConfigMap", "same", Some(cm.clone()), Some(live(cm))),
            ],
            &[],
        );
        let m: Vec<(Change, String)> = d
            .changed_first()
            .into_iter()
            .map(|r| (r.change, r.meaning()))
            .collect();
        assert_eq!(
            m,
            [
                (Change::Create, "will be created".to_string()),
                (Change::Prune, "will be pruned".to_string()),
                (Change::Unchanged, "no difference".to_string()),
            ]
        );
        let created = &d.resources[0];
        assert!(created.lines.iter().all(|l| l.kind != LineKind::Removed));
        assert!(created.lines.iter().any(|l| l.kind == LineKind::Added));
    }
}
