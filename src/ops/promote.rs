//! Promotion: take the images a service runs, Healthy, in the environment before (promotion
//! order of the board's columns) and write them into the next environment's manifests on
//! its branch, as a Git commit made with the operator's own `git` in a working clone under
//! the cache dir. Three steps, so every front end can show the commit before it leaves:
//! [`select`] (from the estate alone: what would move, or why not), [`prepare`] (clone,
//! surgical text edit in the form the app uses, local commit, its diff), then [`push`] or
//! [`cancel`]. A push that is rejected leaves nothing behind: the clone is reset and the
//! remote never saw the commit. Every step is audited as action `promote`.

pub mod edit;

use crate::model::AppId;
use crate::ops::actions::Ops;
use crate::ops::audit::AuditRecord;
use crate::ops::estate::{Estate, running_since};
use crate::sources::git::{GitError, GitMirrors, PushRejected, WorkClone};
use shipdeck_wire::HealthStatus;

/// Trailer keys of a promotion commit (read back by `ops::plan`).
pub const TRAILER_FROM: &str = "Shipdeck-Promoted-From";
pub const TRAILER_IMAGE: &str = "Shipdeck-Image";
pub const TRAILER_SOURCE_APP: &str = "Shipdeck-Source-App";
pub const TRAILER_SOURCE_REVISION: &str = "Shipdeck-Source-Revision";
pub const TRAILER_HEALTHY_SINCE: &str = "Shipdeck-Healthy-Since";

#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    /// Nothing to promote, or not allowed to (exit 3).
    #[error("{0}")]
    Refused(String),
    /// No such service or environment (exit 5).
    #[error("{0}")]
    NotFound(String),
    /// The push was not allowed (exit 4).
    #[error("{0}")]
    Permission(String),
    /// Git failed, or the push was rejected (exit 6); nothing was left behind.
    #[error("{0}")]
    Failed(String),
    /// A bad request (exit 2).
    #[error("{0}")]
    Usage(String),
}

/// What a promotion would move, decided from the estate alone.
#[derive(Debug, Clone, PartialEq)]
pub struct Selection {
    pub service: String,
    pub from_env: String,
    pub to_env: String,
    pub source_app: AppId,
    pub target_app: AppId,
    /// The images to write (those the environment before runs that this one does not).
    pub images: Vec<String>,
    /// Everything the environment before runs.
    pub source_images: Vec<String>,
    pub healthy_since: Option<chrono::DateTime<chrono::Utc>>,
    pub source_revision: Option<String>,
    pub repo_url: String,
    pub branch: String,
    pub path: String,
    /// Helm value files the Application names (relative to its path).
    pub value_files: Vec<String>,
}

fn images(app: &shipdeck_wire::Application) -> Vec<String> {
    let mut v: Vec<String> = app
        .status
        .summary
        .as_ref()
        .map(|s| s.images.clone())
        .unwrap_or_default();
    v.sort();
    v.dedup();
    v
}

/// Decide what promoting `service` into `to` (from `from`, default: the environment before)
/// would move. Refuses when the source is not Healthy, reports no images, or the target
/// already runs them all.
pub fn select(
    estate: &Estate,
    service: &str,
    to: &str,
    from: Option<&str>,
) -> Result<Selection, PromoteError> {
    let envs: Vec<String> = estate.environments().map(|e| e.name.clone()).collect();
    let to_env = estate
        .environments()
        .find(|e| e.name == to)
        .cloned()
        .ok_or_else(|| {
            PromoteError::NotFound(format!(
                "environment {to} not found (environments: {})",
                envs.join(", ")
            ))
        })?;
    let from_name = match from {
        Some(f) => {
            if !envs.iter().any(|e| e == f) {
                return Err(PromoteError::NotFound(format!(
                    "environment {f} not found (environments: {})",
                    envs.join(", ")
                )));
            }
            if f == to {
                return Err(PromoteError::Usage(format!(
                    "cannot promote from {f} to itself"
                )));
            }
            f.to_string()
        }
        None => estate
            .previous_environment(&to_env)
            .map(|e| e.name.clone())
            .ok_or_else(|| {
                PromoteError::Refused(format!(
                    "{to} is the first environment: there is nothing before it to promote from (name one with --from)"
                ))
            })?,
    };
    let one = |env: &str| -> Result<&crate::ops::estate::AppEntry, PromoteError> {
        let cell: Vec<_> = estate.cell(service, env).collect();
        match cell.as_slice() {
            [one] => Ok(one),
            [] => Err(PromoteError::NotFound(format!(
                "no application of service {service} in {env}"
            ))),
            many => Err(PromoteError::Usage(format!(
                "{} applications of service {service} in {env} ({}): shipdeck promotes one app at a time",
                many.len(),
                many.iter()
                    .map(|e| e.id.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    };
    let source = one(&from_name)?;
    let target = one(to)?;
    for e in [source, target] {
        if !e.board.complete {
            return Err(PromoteError::Refused(format!(
                "{}: what it deployed is not known yet (Argo CD's list carries no history; the whole list is being read): try again in a moment",
                e.id.name
            )));
        }
    }
    let health = source.board.health;
    if health != HealthStatus::Healthy {
        return Err(PromoteError::Refused(format!(
            "{} in {from_name} is {health}, not Healthy: only what runs Healthy there can be promoted",
            source.id.name
        )));
    }
    let source_images = images(&source.app());
    if source_images.is_empty() {
        return Err(PromoteError::Refused(format!(
            "Argo CD reports no images for {} in {from_name}: nothing to promote",
            source.id.name
        )));
    }
    let here = images(&target.app());
    let moving: Vec<String> = source_images
        .iter()
        .filter(|i| !here.contains(i))
        .cloned()
        .collect();
    if moving.is_empty() {
        return Err(PromoteError::Refused(format!(
            "{} in {to} already runs {}: nothing to promote",
            target.id.name,
            source_images.join(", ")
        )));
    }
    let target_app = target.app();
    let src = target_app.spec.primary_source().ok_or_else(|| {
        PromoteError::Refused(format!("{} has no source to write to", target.id.name))
    })?;
    let branch = src.target_revision.clone().unwrap_or_default();
    if branch.is_empty() || branch == "HEAD" {
        return Err(PromoteError::Refused(format!(
            "{} tracks {}, not a named branch: shipdeck writes promotions to the branch an app tracks",
            target.id.name,
            if branch.is_empty() { "HEAD" } else { &branch }
        )));
    }
    if src.chart.is_some() {
        return Err(PromoteError::Refused(format!(
            "{} deploys a chart from a Helm repository: there are no manifests in Git to promote into",
            target.id.name
        )));
    }
    let value_files = src
        .extra
        .get("helm")
        .and_then(|h| h.get("valueFiles"))
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    Ok(Selection {
        service: service.to_string(),
        from_env: from_name,
        to_env: to.to_string(),
        source_app: source.id.clone(),
        target_app: target.id.clone(),
        images: moving,
        source_images,
        healthy_since: running_since(&source.app()),
        source_revision: source.board.deployed.clone().map(|r| r.0),
        repo_url: src.repo_url.clone(),
        branch,
        path: src
            .path
            .clone()
            .unwrap_or_default()
            .trim_matches('/')
            .to_string(),
        value_files,
    })
}

/// How the target app keeps its images.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Plain,
    Kustomize,
    Helm,
}

impl Form {
    pub fn words(self) -> &'static str {
        match self {
            Form::Plain => "plain manifests (image:)",
            Form::Kustomize => "kustomize images",
            Form::Helm => "Helm values",
        }
    }
}

/// A promotion commit made locally, not pushed yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub selection: Selection,
    pub clone: WorkClone,
    pub form: Form,
    /// The branch head the commit sits on.
    pub parent: String,
    pub commit: String,
    pub subject: String,
    pub message: String,
    pub files: Vec<String>,
    /// `git show` of the commit: what the operator confirms.
    pub diff: String,
}

fn tag_of(image: &str) -> &str {
    edit::split_image(image).1.unwrap_or(image)
}

/// The commit message: what was promoted from where, with trailers `ops::plan` reads.
pub fn message(sel: &Selection) -> (String, String) {
    let mut tags: Vec<&str> = Vec::new();
    for t in sel.images.iter().map(|i| tag_of(i)) {
        if !tags.contains(&t) {
            tags.push(t);
        }
    }
    let subject = format!(
        "promote {} {} from {} to {}",
        sel.service,
        tags.join(", "),
        sel.from_env,
        sel.to_env
    );
    let since = sel
        .healthy_since
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
    let mut body = format!(
        "{} ran Healthy in {} ({}){}.\n\n",
        sel.images.join(", "),
        sel.from_env,
        sel.source_app.name,
        since
            .as_deref()
            .map(|s| format!(" since {s}"))
            .unwrap_or_default()
    );
    body.push_str(&format!("{TRAILER_FROM}: {}\n", sel.from_env));
    body.push_str(&format!("{TRAILER_SOURCE_APP}: {}\n", sel.source_app.name));
    for i in &sel.images {
        body.push_str(&format!("{TRAILER_IMAGE}: {i}\n"));
    }
    if let Some(r) = &sel.source_revision {
        body.push_str(&format!("{TRAILER_SOURCE_REVISION}: {r}\n"));
    }
    if let Some(s) = since {
        body.push_str(&format!("{TRAILER_HEALTHY_SINCE}: {s}\n"));
    }
    (subject.clone(), format!("{subject}\n\n{body}"))
}

fn git_failed(e: GitError) -> PromoteError {
    match e {
        GitError::UnknownRevision { url, rev } => {
            PromoteError::Refused(format!("{rev} not found in {url}"))
        }
        other => PromoteError::Failed(other.to_string()),
    }
}

fn is_manifest(p: &str) -> bool {
    p.ends_with(".yaml") || p.ends_with(".yml")
}

/// Edit the files of `sel`'s app in `dir` (a checkout); returns the form and changed files.
pub fn edit_files(
    dir: &std::path::Path,
    files: &[String],
    sel: &Selection,
) -> Result<(Form, Vec<(String, String)>), PromoteError> {
    let prefix = if sel.path.is_empty() || sel.path == "." {
        String::new()
    } else {
        format!("{}/", sel.path)
    };
    let under: Vec<&String> = files.iter().filter(|f| f.starts_with(&prefix)).collect();
    let kustomization = under
        .iter()
        .find(|f| {
            let rest = &f[prefix.len()..];
            matches!(
                rest,
                "kustomization.yaml" | "kustomization.yml" | "Kustomization"
            )
        })
        .map(|f| f.to_string());
    let (form, targets): (Form, Vec<String>) = if !sel.value_files.is_empty() {
        let vf = sel
            .value_files
            .iter()
            .filter(|v| !v.contains("://"))
            .map(|v| normalize(&format!("{prefix}{v}")))
            .collect();
        (Form::Helm, vf)
    } else if let Some(k) = kustomization {
        (Form::Kustomize, vec![k])
    } else {
        (
            Form::Plain,
            under
                .iter()
                .filter(|f| is_manifest(f))
                .map(|f| f.to_string())
                .collect(),
        )
    };
    let mut texts: Vec<(String, String, String)> = Vec::new();
    for f in &targets {
        let full = dir.join(f);
        let text = std::fs::read_to_string(&full).map_err(|e| {
            PromoteError::Refused(format!(
                "cannot read {f} on {} ({e}): the app's {} are not where its Application says",
                sel.branch,
                form.words()
            ))
        })?;
        texts.push((f.clone(), text.clone(), text));
    }
    for image in &sel.images {
        let (repo, Some(tag)) = edit::split_image(image) else {
            return Err(PromoteError::Refused(format!(
                "{image} has no tag (a digest?): shipdeck promotes tags"
            )));
        };
        let mut matched = 0;
        for (_, _, text) in texts.iter_mut() {
            let e = match form {
                Form::Plain => edit::set_plain(text, repo, tag),
                Form::Kustomize => edit::set_kustomize(text, repo, tag),
                Form::Helm => edit::set_helm(text, repo, tag),
            };
            matched += e.matched;
            *text = e.text;
        }
        if matched == 0 {
            return Err(PromoteError::Refused(format!(
                "no {repo} image in {} on {} ({}): shipdeck cannot tell where to write {tag}",
                if targets.is_empty() {
                    sel.path.clone()
                } else {
                    targets.join(", ")
                },
                sel.branch,
                form.words()
            )));
        }
    }
    let changed: Vec<(String, String)> = texts
        .into_iter()
        .filter(|(_, before, after)| before != after)
        .map(|(f, _, after)| (f, after))
        .collect();
    if changed.is_empty() {
        return Err(PromoteError::Refused(format!(
            "{} already holds {} on {}: the change is in Git and waits to be synced (approve {})",
            sel.path,
            sel.images.join(", "),
            sel.branch,
            sel.target_app.name
        )));
    }
    Ok((form, changed))
}

/// `a/./b/../c` -> `a/c`.
fn normalize(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            x => out.push(x),
        }
    }
    out.join("/")
}

/// Clone (or refresh) the target's repository at its branch, edit, and commit locally as
/// the operator. Nothing leaves the machine.
pub async fn prepare(
    git: &GitMirrors,
    ops: &Ops,
    sel: Selection,
) -> Result<Prepared, PromoteError> {
    if ops.read_only {
        return Err(PromoteError::Refused(format!(
            "read-only mode: promote {} refused; run without --read-only to act",
            sel.target_app.name
        )));
    }
    let clone = git
        .work_clone(&sel.repo_url, &sel.branch)
        .await
        .map_err(git_failed)?;
    let parent = String::from_utf8_lossy(
        &clone
            .git(&["rev-parse", "HEAD"])
            .await
            .map_err(git_failed)?,
    )
    .trim()
    .to_string();
    let listing = clone.git(&["ls-files", "-z"]).await.map_err(git_failed)?;
    let files: Vec<String> = listing
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect();
    let dir = clone.dir.clone();
    let sel2 = sel.clone();
    let edited = tokio::task::spawn_blocking(move || edit_files(&dir, &files, &sel2))
        .await
        .map_err(|e| PromoteError::Failed(format!("edit: {e}")))?;
    let (form, changed) = match edited {
        Ok(x) => x,
        Err(e) => {
            let _ = clone.reset().await;
            return Err(e);
        }
    };
    let result = commit(&clone, ops, &sel, &changed).await;
    let (commit, subject, message, diff) = match result {
        Ok(x) => x,
        Err(e) => {
            let _ = clone.reset().await;
            return Err(e);
        }
    };
    Ok(Prepared {
        selection: sel,
        clone,
        form,
        parent,
        commit,
        subject,
        message,
        files: changed.into_iter().map(|(f, _)| f).collect(),
        diff,
    })
}

async fn commit(
    clone: &WorkClone,
    ops: &Ops,
    sel: &Selection,
    changed: &[(String, String)],
) -> Result<(String, String, String, String), PromoteError> {
    for (f, text) in changed {
        tokio::fs::write(clone.dir.join(f), text)
            .await
            .map_err(|e| PromoteError::Failed(format!("cannot write {f}: {e}")))?;
    }
    let mut add = vec!["add", "--"];
    add.extend(changed.iter().map(|(f, _)| f.as_str()));
    clone.git(&add).await.map_err(git_failed)?;
    let (subject, message) = message(sel);
    let msg_file = clone.dir.join(".git").join("SHIPDECK_PROMOTE_MSG");
    tokio::fs::write(&msg_file, &message)
        .await
        .map_err(|e| PromoteError::Failed(format!("cannot write the commit message: {e}")))?;
    let msg_arg = msg_file.to_string_lossy().into_owned();
    // Author and committer: the operator. Their own git config gives the e-mail when set.
    let configured = clone
        .git(&["config", "user.email"])
        .await
        .ok()
        .map(|b| String::from_utf8_lossy(&b).trim().to_string())
        .filter(|s| !s.is_empty());
    let name: String = ops
        .operator
        .chars()
        .filter(|c| !c.is_control() && *c != '<' && *c != '>')
        .collect();
    let email = configured.unwrap_or_else(|| {
        format!(
            "{}@users.noreply.shipdeck",
            name.replace(
                |c: char| !c.is_ascii_alphanumeric() && c != '.' && c != '-',
                "-"
            )
        )
    });
    let env = [
        ("GIT_AUTHOR_NAME", name.as_str()),
        ("GIT_AUTHOR_EMAIL", email.as_str()),
        ("GIT_COMMITTER_NAME", name.as_str()),
        ("GIT_COMMITTER_EMAIL", email.as_str()),
    ];
    clone
        .git_env(&["commit", "--quiet", "-F", &msg_arg], &env)
        .await
        .map_err(git_failed)?;
    let _ = tokio::fs::remove_file(&msg_file).await;
    let sha = String::from_utf8_lossy(
        &clone
            .git(&["rev-parse", "HEAD"])
            .await
            .map_err(git_failed)?,
    )
    .trim()
    .to_string();
    let diff = String::from_utf8_lossy(
        &clone
            .git(&[
                "show",
                "--no-color",
                "--stat",
                "--patch",
                "--format=fuller",
                "HEAD",
            ])
            .await
            .map_err(git_failed)?,
    )
    .into_owned();
    Ok((sha, subject, message, diff))
}

/// What a pushed promotion did.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub commit: String,
    pub branch: String,
    pub url: String,
}

/// Push the prepared commit with the operator's git credentials. A rejection resets the
/// clone and says why; nothing is left behind.
pub async fn push(ops: &Ops, p: &Prepared) -> Result<Pushed, PromoteError> {
    audit(ops, p, "started", None);
    match p.clone.push().await {
        Ok(()) => {
            audit(ops, p, "succeeded", None);
            Ok(Pushed {
                commit: p.commit.clone(),
                branch: p.selection.branch.clone(),
                url: p.clone.url.clone(),
            })
        }
        Err(r) => {
            let words = format!("{r}; nothing was pushed and the local commit was dropped");
            audit(ops, p, "failed", Some(words.clone()));
            Err(match r {
                PushRejected::Permission { .. } => PromoteError::Permission(words),
                _ => PromoteError::Failed(words),
            })
        }
    }
}

/// Drop the prepared commit (the operator said no).
pub async fn cancel(ops: &Ops, p: &Prepared, why: &str) {
    let _ = p.clone.reset().await;
    audit(ops, p, "refused", Some(why.to_string()));
}

fn audit(ops: &Ops, p: &Prepared, outcome: &str, detail: Option<String>) {
    let s = &p.selection;
    let rec = AuditRecord {
        at: chrono::Utc::now(),
        who: ops.operator.clone(),
        action: "promote".into(),
        instance: s.target_app.instance.clone(),
        app: s.target_app.name.clone(),
        environment: s.to_env.clone(),
        from_revision: Some(crate::model::Revision::new(p.parent.clone())),
        to_revision: Some(crate::model::Revision::new(p.commit.clone())),
        diff_digest: None,
        approval_id: None,
        reason: None,
        outcome: outcome.into(),
        detail: Some(detail.unwrap_or_else(|| {
            format!(
                "{} from {} to {} on {}",
                s.images.join(", "),
                s.from_env,
                s.to_env,
                s.branch
            )
        })),
        dry_run: false,
    };
    if let Err(e) = ops.audit.append(&rec) {
        tracing::warn!("audit log not written: {e}");
    }
}

/// An audit line about a selection without a commit (the workflow route).
pub fn audit_selection(ops: &Ops, s: &Selection, outcome: &str, detail: String) {
    let rec = AuditRecord {
        at: chrono::Utc::now(),
        who: ops.operator.clone(),
        action: "promote".into(),
        instance: s.target_app.instance.clone(),
        app: s.target_app.name.clone(),
        environment: s.to_env.clone(),
        from_revision: None,
        to_revision: None,
        diff_digest: None,
        approval_id: None,
        reason: None,
        outcome: outcome.into(),
        detail: Some(detail),
        dry_run: false,
    };
    if let Err(e) = ops.audit.append(&rec) {
        tracing::warn!("audit log not written: {e}");
    }
}

/// The inputs of a deploy workflow (`deploy-service.yml`: `service`, a tag input named
/// `version`, `tag` or `image_tag`, optionally `environment`) for `sel`; None when the
/// workflow has no tag input. Refuses an `environment` choice that lacks the target.
pub fn workflow_inputs(
    inputs: &[crate::ops::actions::PipelineInput],
    sel: &Selection,
) -> Result<Option<Vec<(String, String)>>, PromoteError> {
    const TAG: &[&str] = &["version", "tag", "image_tag", "image-tag"];
    if !inputs.iter().any(|i| TAG.contains(&i.name.as_str())) {
        return Ok(None);
    }
    let [image] = sel.images.as_slice() else {
        return Err(PromoteError::Usage(format!(
            "{} moves {} images; a deploy workflow takes one tag: promote through Git instead",
            sel.service,
            sel.images.len()
        )));
    };
    let tag = tag_of(image).to_string();
    let mut out = Vec::new();
    for i in inputs {
        let v = match i.name.as_str() {
            n if TAG.contains(&n) => tag.clone(),
            "service" => sel.service.clone(),
            // The workflow's word for the environment: shipdeck's, or the one the app's name
            // ends with (`user-svc-production` for shipdeck's `prod`).
            "environment" => i
                .options
                .iter()
                .find(|o| **o == sel.to_env || sel.target_app.name.ends_with(&format!("-{o}")))
                .cloned()
                .unwrap_or_else(|| sel.to_env.clone()),
            _ => continue,
        };
        if !i.options.is_empty() && !i.options.contains(&v) {
            return Err(PromoteError::Refused(format!(
                "the deploy workflow's {} input offers {}, not {v}",
                i.name,
                i.options.join(", ")
            )));
        }
        out.push((i.name.clone(), v));
    }
    Ok(Some(out))
}

/// A refusal before any commit was made is audited too.
pub fn audit_refusal(ops: &Ops, instance: &str, app: &str, env: &str, e: &PromoteError) {
    let rec = AuditRecord {
        at: chrono::Utc::now(),
        who: ops.operator.clone(),
        action: "promote".into(),
        instance: instance.to_string(),
        app: app.to_string(),
        environment: env.to_string(),
        from_revision: None,
        to_revision: None,
        diff_digest: None,
        approval_id: None,
        reason: None,
        outcome: match e {
            PromoteError::Failed(_) => "failed",
            _ => "refused",
        }
        .into(),
        detail: Some(e.to_string()),
        dry_run: false,
    };
    if let Err(e) = ops.audit.append(&rec) {
        tracing::warn!("audit log not written: {e}");
    }
}

/// The promotion a commit records, from its trailers (see [`message`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Promotion {
    pub commit: String,
    pub by: String,
    pub from: String,
    pub source_app: Option<String>,
    pub images: Vec<String>,
    pub source_revision: Option<String>,
    pub healthy_since: Option<String>,
}

impl Promotion {
    /// Read a commit's trailers; None when it is not a promotion.
    pub fn from_commit(c: &crate::model::Commit) -> Option<Promotion> {
        let mut p = Promotion {
            commit: c.sha.clone(),
            by: c.author.clone(),
            from: String::new(),
            source_app: None,
            images: Vec::new(),
            source_revision: None,
            healthy_since: None,
        };
        for line in c.body.lines() {
            let Some((k, v)) = line.split_once(": ") else {
                continue;
            };
            let v = v.trim().to_string();
            match k.trim() {
                TRAILER_FROM => p.from = v,
                TRAILER_SOURCE_APP => p.source_app = Some(v),
                TRAILER_IMAGE => p.images.push(v),
                TRAILER_SOURCE_REVISION => p.source_revision = Some(v),
                TRAILER_HEALTHY_SINCE => p.healthy_since = Some(v),
                _ => {}
            }
        }
        (!p.from.is_empty()).then_some(p)
    }

    pub fn words(&self) -> String {
        let short = self.commit.get(..7).unwrap_or(&self.commit);
        let since = self
            .healthy_since
            .as_deref()
            .map(|s| format!(", where it has run Healthy since {s}"))
            .unwrap_or_default();
        format!(
            "promoted from {} by {} ({short}){since}",
            self.from, self.by
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(images: &[&str]) -> Selection {
        Selection {
            service: "user-svc".into(),
            from_env: "staging".into(),
            to_env: "prod".into(),
            source_app: AppId::new("i", "argocd", "user-svc-staging"),
            target_app: AppId::new("i", "argocd", "user-svc-production"),
            images: images.iter().map(|s| s.to_string()).collect(),
            source_images: vec![],
            healthy_since: None,
            source_revision: None,
            repo_url: "file:///r".into(),
            branch: "main".into(),
            path: "apps/user-svc/production".into(),
            value_files: vec![],
        }
    }

    #[test]
    fn deploy_workflow_inputs_take_the_tag_service_and_the_workflows_environment_word() {
        use crate::ops::actions::PipelineInput;
        let input = |name: &str, options: &[&str]| PipelineInput {
            name: name.into(),
            options: options.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let inputs = vec![
            input("service", &[]),
            input("version", &[]),
            input("environment", &["dev", "staging", "production"]),
            input("dry_run", &[]),
        ];
        let got = workflow_inputs(&inputs, &sel(&["r/user-svc:sha-80d612e"]))
            .expect("inputs")
            .expect("a tag input");
        let want: Vec<(String, String)> = [
            ("service", "user-svc"),
            ("version", "sha-80d612e"),
            ("environment", "production"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
        // No tag input: not a deploy workflow.
        assert!(
            workflow_inputs(&inputs[..1], &sel(&["r/x:1"]))
                .expect("ok")
                .is_none()
        );
        // An environment the workflow does not offer is refused, not guessed.
        let narrow = vec![input("version", &[]), input("environment", &["dev"])];
        assert!(matches!(
            workflow_inputs(&narrow, &sel(&["r/x:1"])),
            Err(PromoteError::Refused(_))
        ));
        // Two images cannot go through one tag.
        assert!(matches!(
            workflow_inputs(&inputs, &sel(&["r/a:1", "r/b:1"])),
            Err(PromoteError::Usage(_))
        ));
    }

    #[test]
    fn normalizes_value_file_paths() {
        assert_eq!(
            normalize("helm/app/../values-prod.yaml"),
            "helm/values-prod.yaml"
        );
        assert_eq!(normalize("./a//b.yaml"), "a/b.yaml");
    }

    #[test]
    fn reads_back_the_trailers_it_writes() {
        let sel = Selection {
            service: "cart".into(),
            from_env: "staging".into(),
            to_env: "prod".into(),
            source_app: AppId::new("i", "argocd", "cart-staging"),
            target_app: AppId::new("i", "argocd", "cart-prod"),
            images: vec!["ghcr.io/acme/cart:sha-abc".into()],
            source_images: vec!["ghcr.io/acme/cart:sha-abc".into()],
            healthy_since: chrono::DateTime::from_timestamp(1_700_000_000, 0),
            source_revision: Some("0123456789".into()),
            repo_url: "file:///r".into(),
            branch: "main".into(),
            path: "apps/cart/prod".into(),
            value_files: vec![],
        };
        let (subject, msg) = message(&sel);
        assert_eq!(subject, "promote cart sha-abc from staging to prod");
        let body = msg.split_once("\n\n").map(|(_, b)| b).unwrap_or("");
        let c = crate::model::Commit {
            sha: "feedbeef00".into(),
            author: "ana".into(),
            body: body.into(),
            subject,
            ..Default::default()
        };
        let p = Promotion::from_commit(&c).expect("a promotion");
        assert_eq!(p.from, "staging");
        assert_eq!(p.images, vec!["ghcr.io/acme/cart:sha-abc".to_string()]);
        assert_eq!(
            p.words(),
            "promoted from staging by ana (feedbee), where it has run Healthy since 2023-11-14T22:13:20Z"
        );
        let plain = crate::model::Commit {
            body: "just a bump".into(),
            ..Default::default()
        };
        assert!(Promotion::from_commit(&plain).is_none());
    }
}
