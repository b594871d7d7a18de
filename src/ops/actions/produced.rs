//! What a CI run produced and where it goes next, for runs that do not say (GitHub Actions
//! reports no image): the run's bump commit in the GitOps repository, found the way
//! `ops::plan` links a deployed image to its build, in reverse: the commit whose
//! `Built-by: ... (RUN-ID)` trailer names the run. Its diff says which images it wrote
//! (added `image:` lines, or a values file's `tag:`) and where (the paths it changed); the
//! apps whose source path holds those files are where the image goes next: an app that
//! auto-syncs picks it up, a gated environment waits for an approval, any other app needs
//! a sync. Every string comes from outside: callers sanitize before they print.

use super::Ops;
use crate::model::{Application, ApprovalPolicy, Commit};
use crate::sources::git::{GitError, GitMirrors};
use serde::Serialize;
use std::collections::BTreeSet;

/// How many commits mentioning the run are looked at, per repository.
const LOOK_BACK: usize = 50;

/// One bump commit a run pushed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Produced {
    /// The commit in the GitOps repository (full sha).
    pub commit: String,
    /// The images it wrote (`registry/name:tag`), or `tag T` for a values file's tag.
    pub images: Vec<String>,
    /// The files it changed.
    pub paths: Vec<String>,
}

/// Where the image goes next: one app and what happens there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NextStop {
    pub app: String,
    pub environment: String,
    /// `picks it up (auto-sync)`, `waits for approval`, `needs a sync (auto-sync off)`.
    pub how: String,
}

/// Whether a commit's `Built-by:` trailer names run `id` (`<workflow> run #N (ID)` or a
/// run URL ending in the id).
pub fn names_run(c: &Commit, id: u64) -> bool {
    c.body
        .lines()
        .chain(std::iter::once(c.subject.as_str()))
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case("built-by"))
        .filter_map(|(_, v)| {
            let v = v.trim();
            v.rsplit_once('(')
                .and_then(|(_, r)| r.strip_suffix(')'))
                .or_else(|| v.rsplit('/').next())
                .and_then(|s| s.trim().parse::<u64>().ok())
        })
        .any(|n| n == id)
}

/// The images and files a unified diff writes.
pub fn parse_diff(diff: &str) -> (Vec<String>, Vec<String>) {
    let mut images = Vec::new();
    let mut paths = Vec::new();
    for line in diff.lines() {
        if let Some(p) = line.strip_prefix("+++ b/") {
            paths.push(p.trim().to_string());
            continue;
        }
        if line.starts_with("+++") {
            continue;
        }
        let Some(added) = line.strip_prefix('+') else {
            continue;
        };
        let added = added.trim().trim_start_matches("- ").trim();
        let value = |key: &str| {
            added
                .strip_prefix(key)
                .map(|v| v.trim().trim_matches(|c| c == '"' || c == '\'').to_string())
                .filter(|v| !v.is_empty())
        };
        if let Some(i) = value("image:") {
            if !images.contains(&i) {
                images.push(i);
            }
        } else if let Some(t) = value("tag:") {
            let t = format!("tag {t}");
            if !images.contains(&t) {
                images.push(t);
            }
        }
    }
    (images, paths)
}

/// The GitOps repositories (and revisions) the apps deploy from.
fn repos(apps: &[Application]) -> BTreeSet<(String, String)> {
    apps.iter()
        .filter_map(|a| a.spec.primary_source())
        .filter(|s| s.chart.is_none() && !s.repo_url.is_empty())
        .map(|s| {
            let rev = s
                .target_revision
                .clone()
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "HEAD".into());
            (s.repo_url.clone(), rev)
        })
        .collect()
}

/// The bump commits run `run_id` pushed to the apps' GitOps repositories, newest first.
pub async fn produced_by(
    git: &GitMirrors,
    apps: &[Application],
    run_id: u64,
) -> Result<Vec<Produced>, GitError> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let needle = format!("({run_id})");
    for (url, rev) in repos(apps) {
        let mirror = git.mirror(&url, true).await?;
        for c in mirror.commits_mentioning(&rev, &needle, LOOK_BACK).await? {
            if !names_run(&c, run_id) || !seen.insert(c.sha.clone()) {
                continue;
            }
            let diff = mirror.diff(&format!("{}^", c.sha), &c.sha, ".").await?;
            let (images, paths) = parse_diff(&diff);
            out.push(Produced {
                commit: c.sha,
                images,
                paths,
            });
        }
    }
    Ok(out)
}

/// The apps whose source path holds a file the bump commits changed, and what happens to
/// the image there, by the policy of their environment.
pub fn next_stops(ops: &Ops, produced: &[Produced], apps: &[Application]) -> Vec<NextStop> {
    let changed: Vec<&str> = produced
        .iter()
        .flat_map(|p| p.paths.iter().map(String::as_str))
        .collect();
    let mut out: Vec<(u32, NextStop)> = Vec::new();
    for app in apps {
        let Some(src) = app.spec.primary_source() else {
            continue;
        };
        let dir = src.path.as_deref().unwrap_or("").trim_matches('/');
        let holds = |p: &str| {
            dir.is_empty()
                || dir == "."
                || p.strip_prefix(dir)
                    .is_some_and(|rest| rest.starts_with('/'))
        };
        if !changed.iter().any(|p| holds(p)) {
            continue;
        }
        let env = ops.classifier.classify(app).environment;
        let (rank, environment) = (env.rank, env.name);
        let gated = ops.policies.for_env_name(&environment).approval != ApprovalPolicy::None;
        let how = if gated {
            "waits for approval"
        } else if app.auto_sync() {
            "picks it up (auto-sync)"
        } else {
            "needs a sync (auto-sync off)"
        };
        out.push((
            rank,
            NextStop {
                app: app.metadata.name.clone(),
                environment,
                how: how.into(),
            },
        ));
    }
    // In promotion order: dev, staging, prod.
    out.sort_by(|(ra, a), (rb, b)| (ra, &a.app).cmp(&(rb, &b.app)));
    out.into_iter().map(|(_, n)| n).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(body: &str) -> Commit {
        Commit {
            sha: "a".repeat(40),
            author: "ci-bot".into(),
            email: String::new(),
            time: String::new(),
            subject: "ci: bump cart".into(),
            body: body.into(),
        }
    }

    #[test]
    fn the_trailer_names_the_run_by_id_not_by_number() {
        let c = commit("Built-by: build.yml run #7 (123456)\nSource-Commit: abc1234");
        assert!(names_run(&c, 123456));
        assert!(!names_run(&c, 7));
        assert!(!names_run(&commit("no trailer (123456)"), 123456));
    }

    #[test]
    fn a_diff_gives_the_images_and_files_it_writes() {
        let diff = "diff --git a/envs/dev/cart.yaml b/envs/dev/cart.yaml\n--- a/envs/dev/cart.yaml\n+++ b/envs/dev/cart.yaml\n@@ -1 +1 @@\n-        image: ghcr.io/acme/cart:old\n+        image: ghcr.io/acme/cart:sha-1\n+  - image: \"ghcr.io/acme/side:2\"\n";
        let (images, paths) = parse_diff(diff);
        assert_eq!(
            images,
            vec!["ghcr.io/acme/cart:sha-1", "ghcr.io/acme/side:2"]
        );
        assert_eq!(paths, vec!["envs/dev/cart.yaml"]);
    }
}
