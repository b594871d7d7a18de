//! The plan of a change, and its evidence: what a sync (or a rollback) of an app would change,
//! why (the commits it brings in or undoes), whether it was proven (the CI run that built the
//! target image, the same image healthy in the environment before) and what stands in the way.
//! One computation; the approval screen and `shipdeck plan` are two renderings of it.
//!
//! A target is linked to its build the way real pipelines do it: the run whose head SHA is
//! the source commit the image tag names (`sha-3fdd1ba`, `main-3fdd1ba`), or the commit a
//! bump commit's `Source-Commit:` trailer names, or the run a `Built-by: ... (RUN-ID)`
//! trailer names (the run that pushed the bump). Never the bump commit's own runs: CI's bump
//! commit is not what CI built. Pure apart from [`images_at`] (reads a Git mirror).

use crate::model::{Application, BuildRun, BuildState, Commit};
use crate::ops::diff::AppDiff;
use crate::sources::git::Mirror;
use serde::Serialize;

/// How a build run was linked to the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Link {
    /// The run's head SHA is the source commit named in the image tag.
    ImageTag,
    /// The run's head SHA is the commit a bump commit's `Source-Commit:` trailer names.
    SourceCommitTrailer,
    /// A bump commit's `Built-by:` trailer names the run.
    BuiltByTrailer,
}

/// The CI run that built the target, or why none is known.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BuildEvidence {
    /// The linked run; None when no run is known.
    pub run: Option<LinkedRun>,
    /// When no run is known: why, in words.
    pub unknown: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LinkedRun {
    /// Workflow file or Jenkins job.
    pub pipeline: String,
    /// GitHub run id or Jenkins build number.
    pub id: u64,
    pub state: BuildState,
    /// The commit the run built.
    pub head_sha: Option<String>,
    pub url: Option<String>,
    pub linked_by: Link,
}

impl BuildEvidence {
    pub fn succeeded(&self) -> bool {
        self.run
            .as_ref()
            .is_some_and(|r| r.state == BuildState::Succeeded)
    }

    /// "built by build.yml run #42 (success) from 3fdd1ba", or that no run is known.
    pub fn words(&self) -> String {
        match &self.run {
            Some(r) => format!(
                "built by {} run #{} ({}) from {}",
                r.pipeline,
                r.id,
                state_word(r.state),
                r.head_sha.as_deref().map_or("an unknown commit", short)
            ),
            None => self
                .unknown
                .clone()
                .unwrap_or_else(|| "no CI run is known for this change".into()),
        }
    }
}

fn state_word(s: BuildState) -> &'static str {
    match s {
        BuildState::Succeeded => "success",
        BuildState::Failed => "failure",
        BuildState::Cancelled => "cancelled",
        BuildState::InProgress => "in progress",
        BuildState::Queued => "queued",
    }
}

fn short(s: &str) -> &str {
    s.get(..7).unwrap_or(s)
}

fn is_hex(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The source commit an image tag names: the last `-`-separated part of the tag when it
/// is 7 to 40 hex digits (`ghcr.io/acme/cart:sha-3fdd1ba` -> `3fdd1ba`).
pub fn tag_commit(image: &str) -> Option<String> {
    let tag = image.rsplit_once(':').map_or(image, |(_, t)| t);
    if tag.contains('/') {
        return None;
    }
    let last = tag.rsplit('-').next()?;
    (last.len() >= 7 && last.len() <= 40 && is_hex(last)).then(|| last.to_ascii_lowercase())
}

/// `Source-Commit:` shas and `Built-by:` run ids in commit messages (trailers).
fn trailers(commits: &[Commit]) -> (Vec<String>, Vec<u64>) {
    let mut shas = Vec::new();
    let mut ids = Vec::new();
    for c in commits {
        for line in c.body.lines().chain(std::iter::once(c.subject.as_str())) {
            let Some((k, v)) = line.split_once(':') else {
                continue;
            };
            let v = v.trim();
            match k.trim().to_ascii_lowercase().as_str() {
                "source-commit" if v.len() >= 7 && is_hex(v) => shas.push(v.to_ascii_lowercase()),
                "built-by" => {
                    // "<workflow> run #N (RUN-ID)" or a run URL ending in the id.
                    let id = v
                        .rsplit_once('(')
                        .and_then(|(_, r)| r.strip_suffix(')'))
                        .or_else(|| v.rsplit('/').next())
                        .and_then(|s| s.trim().parse::<u64>().ok());
                    ids.extend(id);
                }
                _ => {}
            }
        }
    }
    (shas, ids)
}

/// Link the target to the run that built it. `images` are the images the change starts
/// running; `commits` the commits it brings in (the bump commits among them).
pub fn link_build(
    images: &[String],
    commits: &[Commit],
    runs: Result<&[BuildRun], &str>,
) -> BuildEvidence {
    let runs = match runs {
        Ok(r) => r,
        Err(e) => {
            return BuildEvidence {
                run: None,
                unknown: Some(format!("no CI run is known: {e}")),
            };
        }
    };
    let head = |r: &BuildRun| r.head_sha.as_deref().unwrap_or("").to_ascii_lowercase();
    let (trailer_shas, trailer_ids) = trailers(commits);
    let mut candidates: Vec<(&BuildRun, Link)> = Vec::new();
    for sha in images.iter().filter_map(|i| tag_commit(i)) {
        candidates.extend(
            runs.iter()
                .filter(|r| !sha.is_empty() && head(r).starts_with(&sha))
                .map(|r| (r, Link::ImageTag)),
        );
    }
    for sha in &trailer_shas {
        candidates.extend(
            runs.iter()
                .filter(|r| head(r).starts_with(sha.as_str()))
                .map(|r| (r, Link::SourceCommitTrailer)),
        );
    }
    for id in &trailer_ids {
        candidates.extend(
            runs.iter()
                .filter(|r| r.id == *id)
                .map(|r| (r, Link::BuiltByTrailer)),
        );
    }
    // A successful run first, then the newest.
    let best = candidates.iter().max_by(|(a, _), (b, _)| {
        (a.state == BuildState::Succeeded, &a.created_at, a.id).cmp(&(
            b.state == BuildState::Succeeded,
            &b.created_at,
            b.id,
        ))
    });
    match best {
        Some((r, how)) => BuildEvidence {
            run: Some(LinkedRun {
                pipeline: r.pipeline.clone(),
                id: r.id,
                state: r.state,
                head_sha: r.head_sha.clone(),
                url: r.url.clone(),
                linked_by: *how,
            }),
            unknown: None,
        },
        None => {
            let what = if images.is_empty() {
                "this change starts no new image".to_string()
            } else {
                images
                    .iter()
                    .map(|i| i.rsplit_once(':').map_or(i.as_str(), |(_, t)| t))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            BuildEvidence {
                run: None,
                unknown: Some(format!("no CI run is known that built {what}")),
            }
        }
    }
}

/// The environment before this one, compared by image.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum Before {
    /// This is the first environment in promotion order.
    FirstEnvironment,
    /// The environment before has no app of this service.
    NoApp { environment: String },
    /// The change starts no new image: nothing to compare.
    NoNewImage { environment: String },
    /// The environment before runs every target image now.
    Runs {
        environment: String,
        images: Vec<String>,
        since: Option<String>,
        health: String,
    },
    /// It ran this image earlier but runs another now.
    RanEarlier {
        environment: String,
        images: Vec<String>,
    },
    /// It never ran this image (as far as its history's manifests tell).
    NeverRan {
        environment: String,
        images: Vec<String>,
    },
    /// It does not run it now; whether it ever did is unknown.
    NotNow {
        environment: String,
        images: Vec<String>,
    },
}

impl Before {
    /// Whether the environment before runs this image Healthy.
    pub fn proven(&self) -> bool {
        matches!(self, Before::Runs { health, .. } if health == "Healthy")
    }

    pub fn words(&self) -> String {
        let tags = |v: &[String]| {
            v.iter()
                .map(|i| i.rsplit_once(':').map_or(i.as_str(), |(_, t)| t))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match self {
            Before::FirstEnvironment => "first environment: nothing before it".into(),
            Before::NoApp { environment } => format!("{environment} has no app of this service"),
            Before::NoNewImage { environment } => {
                format!("no new image: nothing to compare with {environment}")
            }
            Before::Runs {
                environment,
                images,
                since,
                health,
            } => match since {
                Some(t) => {
                    // RFC 3339 to minutes: "2026-11-27 01:03".
                    let t = t.replace('T', " ");
                    let t = t.get(..16).unwrap_or(&t);
                    format!("{environment} runs {} since {t}, {health}", tags(images))
                }
                None => format!("{environment} runs {}, {health}", tags(images)),
            },
            Before::RanEarlier {
                environment,
                images,
            } => format!(
                "{environment} ran this image earlier but runs {} now",
                tags(images)
            ),
            Before::NeverRan { environment, .. } => {
                format!("{environment} never ran this image")
            }
            Before::NotNow {
                environment,
                images,
            } => format!("{environment} runs {}, not this image", tags(images)),
        }
    }
}

/// The environment before, seen for the comparison: its name, its app, and the images of
/// each of its history entries when known (from Git), oldest first.
pub struct PreviousEnv<'a> {
    pub environment: &'a str,
    pub app: Option<&'a Application>,
    pub history_images: Option<Vec<Vec<String>>>,
}

/// Compare the target images with the environment before.
pub fn before(target_images: &[String], prev: Option<PreviousEnv<'_>>) -> Before {
    let Some(prev) = prev else {
        return Before::FirstEnvironment;
    };
    let environment = prev.environment.to_string();
    let Some(app) = prev.app else {
        return Before::NoApp { environment };
    };
    if target_images.is_empty() {
        return Before::NoNewImage { environment };
    }
    let images: Vec<String> = app
        .status
        .summary
        .as_ref()
        .map(|s| s.images.clone())
        .unwrap_or_default();
    if target_images.iter().all(|i| images.contains(i)) {
        return Before::Runs {
            environment,
            images: target_images.to_vec(),
            since: app
                .status
                .history
                .last()
                .and_then(|h| h.deployed_at.clone()),
            health: app.status.health.status.to_string(),
        };
    }
    match prev.history_images {
        Some(h)
            if h.iter()
                .any(|e| target_images.iter().all(|i| e.contains(i))) =>
        {
            Before::RanEarlier {
                environment,
                images,
            }
        }
        Some(_) => Before::NeverRan {
            environment,
            images,
        },
        None => Before::NotNow {
            environment,
            images,
        },
    }
}

/// The images the change starts running (from the diff).
pub fn target_images(diff: &AppDiff) -> Vec<String> {
    let mut v: Vec<String> = diff
        .changed()
        .flat_map(|d| d.images.iter().cloned())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// Container images in YAML manifests (every document, every pod template).
pub fn images_in_manifests(texts: &[String]) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for key in ["containers", "initContainers"] {
                    if let Some(cs) = m.get(key).and_then(|c| c.as_array()) {
                        for c in cs {
                            if let Some(i) = c.get("image").and_then(|i| i.as_str()) {
                                out.push(i.to_string());
                            }
                        }
                    }
                }
                for (_, x) in m {
                    walk(x, out);
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|x| walk(x, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for t in texts {
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(t).unwrap_or_default();
        for d in &docs {
            walk(d, &mut out);
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Images the manifests under `path` hold at `rev` (plain YAML directories; a kustomize or
/// Helm source gives what its files name literally, which may be nothing).
pub async fn images_at(
    mirror: &Mirror,
    rev: &str,
    path: &str,
) -> Result<Vec<String>, crate::sources::git::GitError> {
    let mut texts = Vec::new();
    for f in mirror.list_files(rev, path).await? {
        if !(f.ends_with(".yaml") || f.ends_with(".yml")) {
            continue;
        }
        if let Some(t) = mirror.read_file(rev, &f).await? {
            texts.push(t);
        }
    }
    Ok(images_in_manifests(&texts))
}

/// What a change would do and the evidence for it: the one thing the approval screen and
/// `shipdeck plan` show. Field names are stable (documented in README, `plan --help`).
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub app: String,
    pub environment: String,
    /// "sync" or "rollback".
    pub change: String,
    pub from_revision: Option<String>,
    pub to_revision: Option<String>,
    /// sha256 of the diff (what an approval records).
    pub diff_digest: String,
    /// One line per changed resource: `Kind/ns/name: meaning`.
    pub changes: Vec<String>,
    /// The commits the change brings in (sync) or undoes (rollback), newest first.
    pub commits: Vec<Commit>,
    /// Images the change starts running.
    pub images: Vec<String>,
    pub build: BuildEvidence,
    pub before: Before,
    /// Built by a successful run and running Healthy in the environment before.
    pub proven: bool,
    /// What stands in the way, in the guard's words.
    pub blockers: Vec<String>,
    /// The shipdeck promotion among the commits (newest first), from its trailers: where the
    /// images were promoted from and since when they ran Healthy there.
    pub promotion: Option<crate::ops::promote::Promotion>,
}

/// The newest promotion among `commits` (newest first), read from its trailers.
pub fn promotion(commits: &[Commit]) -> Option<crate::ops::promote::Promotion> {
    commits
        .iter()
        .find_map(crate::ops::promote::Promotion::from_commit)
}

/// Everything a plan is made from, fetched by the caller.
pub struct PlanInput<'a> {
    pub app: &'a Application,
    pub environment: &'a str,
    pub rollback: bool,
    pub from_revision: Option<String>,
    pub to_revision: Option<String>,
    pub diff: &'a AppDiff,
    pub commits: &'a [Commit],
    pub runs: Result<&'a [BuildRun], &'a str>,
    pub previous: Option<PreviousEnv<'a>>,
    pub blockers: Vec<String>,
}

/// The one computation of a plan.
pub fn plan(input: PlanInput<'_>) -> Plan {
    let images = target_images(input.diff);
    let build = link_build(&images, input.commits, input.runs);
    let before = before(&images, input.previous);
    Plan {
        app: input.app.metadata.name.clone(),
        environment: input.environment.to_string(),
        change: if input.rollback { "rollback" } else { "sync" }.into(),
        from_revision: input.from_revision,
        to_revision: input.to_revision,
        diff_digest: input.diff.digest(),
        changes: input
            .diff
            .changed()
            .map(|r| format!("{}: {}", r.key, r.meaning()))
            .collect(),
        commits: input.commits.to_vec(),
        proven: build.succeeded() && before.proven(),
        images,
        build,
        before,
        blockers: input.blockers,
        promotion: if input.rollback {
            None
        } else {
            promotion(input.commits)
        },
    }
}

/// Images of each history entry of `app` (oldest first) from its manifests in Git; None
/// when Git or the app's source cannot tell.
pub async fn history_images(
    git: Option<&crate::sources::git::GitMirrors>,
    app: &Application,
) -> Option<Vec<Vec<String>>> {
    let git = git?;
    let src = app.spec.primary_source()?;
    let mirror = git.mirror(&src.repo_url, false).await.ok()?;
    let path = src.path.clone().unwrap_or_default();
    let mut out = Vec::new();
    for h in &app.status.history {
        let rev = h
            .revision
            .clone()
            .or_else(|| h.revisions.first().cloned())?;
        let p = h
            .source
            .as_ref()
            .and_then(|s| s.path.clone())
            .unwrap_or_else(|| path.clone());
        out.push(images_at(&mirror, &rev, &p).await.ok()?);
    }
    Some(out)
}

/// The plan of a sync of `name`, gathered from the sources: the diff, the commits from the
/// deployed to the target revision, CI's runs, the environment before (from `estate`) and
/// the guard's obstacles. What `shipdeck plan` prints.
pub async fn compute<S: crate::sources::ArgoSource>(
    src: &S,
    ops: &crate::ops::actions::Ops,
    estate: &crate::ops::estate::Estate,
    name: &str,
    git: Option<&crate::sources::git::GitMirrors>,
    runs: Result<Vec<BuildRun>, String>,
) -> Result<Plan, crate::ops::actions::ActionError> {
    use crate::ops::actions::ActionError;
    use crate::ops::estate::{compared_revision, deployed_revision};
    use crate::ops::policy::{self, GuardInput, Mutation};
    let entry = estate
        .apps()
        .find(|e| e.id.name == name && e.id.instance == src.instance())
        .ok_or_else(|| ActionError::NotFound(format!("application {name} not found")))?;
    let app = &entry.app();
    let diff = crate::ops::actions::diff_of(src, app).await?;
    let from = deployed_revision(app).map(|r| r.0);
    let to = compared_revision(app).map(|r| r.0);
    let commits = match (git, app.spec.primary_source(), &from, &to) {
        (Some(g), Some(s), Some(f), Some(t)) => match g.mirror(&s.repo_url, false).await {
            Ok(m) => m
                .commits_between(f, t, s.path.as_deref())
                .await
                .unwrap_or_default(),
            Err(_) => Vec::new(),
        },
        _ => Vec::new(),
    };
    let prev_env = estate.previous_environment(&entry.environment).cloned();
    let prev_app = prev_env
        .as_ref()
        .and_then(|e| estate.cell(&entry.service, &e.name).next())
        .map(|e| e.app());
    let prev_history = match &prev_app {
        Some(a) => history_images(git, a).await,
        None => None,
    };
    let permitted = src.can_i(Mutation::Sync.rbac_action(), app).await.ok();
    let windows = src.sync_windows(app).await.ok();
    let policy = ops.policies.for_env(&entry.environment);
    let blockers = policy::obstacles(&GuardInput {
        mutation: Mutation::Sync,
        app,
        environment: &entry.environment.name,
        policy: &policy,
        read_only: ops.read_only,
        permitted,
        windows: windows.as_ref(),
        approval: None,
        disable_auto_sync: false,
        prune: false,
    })
    .iter()
    .map(ToString::to_string)
    .collect();
    let runs_ref = runs.as_deref().map_err(String::as_str);
    Ok(plan(PlanInput {
        app,
        environment: &entry.environment.name,
        rollback: false,
        from_revision: from,
        to_revision: to,
        diff: &diff,
        commits: &commits,
        runs: runs_ref,
        previous: prev_env.as_ref().map(|e| PreviousEnv {
            environment: &e.name,
            app: prev_app.as_ref(),
            history_images: prev_history,
        }),
        blockers,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: u64, sha: &str, state: BuildState) -> BuildRun {
        BuildRun {
            system: crate::model::BuildSystem::GithubActions,
            id,
            pipeline: "build.yml".into(),
            title: String::new(),
            branch: None,
            head_sha: Some(sha.into()),
            state,
            url: None,
            created_at: Some(format!("2026-01-01T00:00:{:02}Z", id % 60)),
            jobs: vec![],
            inputs: Vec::new(),
            log_tail: Vec::new(),
        }
    }

    #[test]
    fn tag_commit_reads_the_sha_of_a_tag() {
        assert_eq!(
            tag_commit("ghcr.io/acme/cart:sha-3fdd1ba").as_deref(),
            Some("3fdd1ba")
        );
        assert_eq!(
            tag_commit("reg:5000/x:main-ABCDEF1").as_deref(),
            Some("abcdef1")
        );
        assert_eq!(tag_commit("x:v1.2.3"), None);
        assert_eq!(tag_commit("x:latest"), None);
    }

    #[test]
    fn links_by_tag_trailers_and_never_by_the_bump_commit() {
        let runs = vec![
            run(
                1,
                "3fdd1ba0000000000000000000000000000000aa",
                BuildState::Failed,
            ),
            run(
                2,
                "3fdd1ba0000000000000000000000000000000aa",
                BuildState::Succeeded,
            ),
            run(3, "bbbbbbb", BuildState::Succeeded),
            run(4, "cccccccccc", BuildState::Succeeded),
        ];
        let img = vec!["r/cart:sha-3fdd1ba".to_string()];
        let e = link_build(&img, &[], Ok(&runs));
        assert_eq!(e.run.as_ref().map(|r| r.id), Some(2));
        assert_eq!(
            e.words(),
            "built by build.yml run #2 (success) from 3fdd1ba"
        );
        let bump = Commit {
            sha: "bbbbbbb".into(),
            subject: "ci: bump".into(),
            body: "Built-by: Build run #9 (4)".into(),
            ..Default::default()
        };
        let e = link_build(&["r/x:v1".into()], &[bump], Ok(&runs));
        assert_eq!(e.run.as_ref().map(|r| r.id), Some(4));
        assert_eq!(
            e.run.as_ref().map(|r| r.linked_by),
            Some(Link::BuiltByTrailer)
        );
        // The run of the bump commit itself (3) is not the build.
        let bump = Commit {
            sha: "bbbbbbb".into(),
            ..Default::default()
        };
        let e = link_build(&["r/x:v1".into()], &[bump], Ok(&runs));
        assert!(e.run.is_none());
        assert_eq!(e.words(), "no CI run is known that built v1");
    }
}
