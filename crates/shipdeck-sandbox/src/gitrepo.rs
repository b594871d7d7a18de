//! The sandbox's Git repository: a real repository on disk, driven through the system `git`,
//! holding every app's manifests on `main` (prod) and `develop` (dev/staging), the GitHub
//! workflows, and a believable history. Argo CD's controller reads it, simulated CI commits
//! to it, and an operator can run `git log` in it.
//!
//! The whole history is written with one `git fast-import` (one process for any estate
//! size); later commits also go through fast-import under a mutex. Reads are cached by
//! immutable ids: a commit's file listing by commit, parsed manifests by blob. It never
//! relies on the operator's git configuration (no global config, no signing, no hooks).

use crate::estate::render::{self, start_of_history};
use crate::estate::{AppKind, Estate};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};

/// Marker that says a directory is a sandbox repository we may recreate.
const MARKER: &str = "shipdeck-sandbox";
const CI_BOT: (&str, &str) = ("ci-bot", "ci-bot@users.noreply.github.com");

/// The commit that brought one build of one app into Git.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildCommit {
    pub sha: String,
    /// Commit time, Unix seconds.
    pub time: i64,
}

type Listing = Arc<BTreeMap<String, String>>;
/// The objects of one manifest file.
pub type Manifests = Arc<Vec<Value>>;

pub struct Repo {
    path: PathBuf,
    write: Mutex<()>,
    builds: HashMap<(String, usize), BuildCommit>,
    /// The commits of each app's past builds (`estate::history`), by (app, index).
    past: HashMap<(String, usize), BuildCommit>,
    listings: Mutex<HashMap<String, Listing>>,
    parsed: Mutex<HashMap<String, Arc<Vec<Value>>>>,
    /// Parsed blobs kept: what the initial history primed plus [`PARSED_EXTRA`]; past it the
    /// cache starts over, so hours of CI commits do not grow it without end.
    parsed_limit: std::sync::atomic::AtomicUsize,
}

/// Parsed blobs kept beyond the primed ones.
const PARSED_EXTRA: usize = 20_000;

impl std::fmt::Debug for Repo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Repo").field("path", &self.path).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A planned commit of the initial history.
struct Plan {
    branch: String,
    time: i64,
    message: String,
    author: (String, String),
    files: Vec<(String, String)>,
    builds: Vec<(String, usize)>,
    /// Past builds (`estate::history`) this commit brought: (app, index).
    past: Vec<(String, usize)>,
}

impl Repo {
    /// Create the repository at `path` with the estate's manifests and history.
    pub fn create(path: &Path, estate: &Estate) -> Result<Repo, String> {
        prepare_dir(path)?;
        git(path, &["init", "-q", "-b", "main", "."], None)?;
        std::fs::write(
            path.join(".git").join(MARKER),
            "created by shipdeck sandbox\n",
        )
        .map_err(|e| format!("{}: {e}", path.display()))?;
        // Operators push to it (a promotion): a push to the checked-out branch updates the
        // working tree too, as long as it is clean (it is: every sandbox commit resets it).
        git(
            path,
            &["config", "receive.denyCurrentBranch", "updateInstead"],
            None,
        )?;
        let url = file_url(path);
        let (plans, heads) = plan_history(estate, &url);
        let mut stream = Vec::with_capacity(1 << 20);
        let mut branch_started: Vec<String> = vec!["main".into()];
        for (i, p) in plans.iter().enumerate() {
            let mark = i + 1;
            if !branch_started.contains(&p.branch) {
                let _ = write!(stream, "reset refs/heads/{}\nfrom :1\n\n", p.branch);
                branch_started.push(p.branch.clone());
            }
            let (name, email) = &p.author;
            let _ = write!(
                stream,
                "commit refs/heads/{}\nmark :{mark}\nauthor {name} <{email}> {t} +0000\ncommitter {name} <{email}> {t} +0000\ndata {}\n{}\n",
                p.branch,
                p.message.len(),
                p.message,
                t = p.time
            );
            for (file, content) in &p.files {
                let _ = write!(
                    stream,
                    "M 100644 inline {file}\ndata {}\n{content}\n",
                    content.len()
                );
            }
            stream.push(b'\n');
        }
        for b in estate.branches() {
            if !branch_started.contains(&b) {
                let _ = write!(stream, "reset refs/heads/{b}\nfrom :1\n\n");
            }
        }
        let marks_file = path.join(".git").join("shipdeck-marks");
        let marks_arg = format!("--export-marks={}", marks_file.display());
        git(path, &["fast-import", "--quiet", &marks_arg], Some(&stream))?;
        let marks = std::fs::read_to_string(&marks_file).map_err(|e| format!("marks: {e}"))?;
        let _ = std::fs::remove_file(&marks_file);
        let mut by_mark = HashMap::new();
        for line in marks.lines() {
            if let Some((m, sha)) = line.split_once(' ')
                && let Ok(m) = m.trim_start_matches(':').parse::<usize>()
            {
                by_mark.insert(m, sha.to_string());
            }
        }
        let mut builds = HashMap::new();
        let mut past = HashMap::new();
        for (i, p) in plans.iter().enumerate() {
            if let Some(sha) = by_mark.get(&(i + 1)) {
                for key in &p.past {
                    past.insert(
                        key.clone(),
                        BuildCommit {
                            sha: sha.clone(),
                            time: p.time,
                        },
                    );
                }
                for key in &p.builds {
                    builds.insert(
                        key.clone(),
                        BuildCommit {
                            sha: sha.clone(),
                            time: p.time,
                        },
                    );
                }
            }
        }
        git(path, &["reset", "-q", "--hard"], None)?;
        let repo = Repo {
            path: path.to_path_buf(),
            write: Mutex::new(()),
            builds,
            past,
            listings: Mutex::new(HashMap::new()),
            parsed: Mutex::new(HashMap::new()),
            parsed_limit: std::sync::atomic::AtomicUsize::new(PARSED_EXTRA),
        };
        // Prime the parsed-manifest cache with what we just wrote, so the controller's
        // first pass over a large estate does not parse every file again.
        for (branch, files) in heads {
            let Ok(sha) = repo.resolve(&branch) else {
                continue;
            };
            let Ok(listing) = repo.listing(&sha) else {
                continue;
            };
            let mut parsed = lock(&repo.parsed);
            for (file, objects) in files {
                if let Some(blob) = listing.get(&file) {
                    parsed.insert(blob.clone(), Arc::new(objects));
                }
            }
        }
        let primed = lock(&repo.parsed).len();
        repo.parsed_limit
            .store(primed + PARSED_EXTRA, std::sync::atomic::Ordering::Relaxed);
        Ok(repo)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What Applications' `repoURL` holds.
    pub fn url(&self) -> String {
        file_url(&self.path)
    }

    /// The commit that brought `build` of `app` into Git (initial history only).
    pub fn build_commit(&self, app: &str, build: usize) -> Option<&BuildCommit> {
        self.builds.get(&(app.to_string(), build))
    }

    /// The commit of past build `k` of `app` (`estate::history`; initial history only).
    pub fn past_commit(&self, app: &str, k: usize) -> Option<&BuildCommit> {
        self.past.get(&(app.to_string(), k))
    }

    /// Branch, tag or (short) sha -> full commit sha.
    pub fn resolve(&self, rev: &str) -> Result<String, String> {
        if rev.is_empty() || rev.starts_with('-') {
            return Err(format!("unable to resolve '{rev}' to a commit SHA"));
        }
        let spec = format!("{rev}^{{commit}}");
        git(
            &self.path,
            &["rev-parse", "--verify", "--quiet", &spec],
            None,
        )
        .map(|s| s.trim().to_string())
        .map_err(|_| format!("unable to resolve '{rev}' to a commit SHA"))
    }

    fn listing(&self, commit: &str) -> Result<Listing, String> {
        if let Some(l) = lock(&self.listings).get(commit) {
            return Ok(l.clone());
        }
        let out = git(
            &self.path,
            &["ls-tree", "-r", "-z", "--full-tree", commit],
            None,
        )?;
        let mut map = BTreeMap::new();
        for entry in out.split('\0') {
            // "<mode> <type> <sha>\t<path>"
            if let Some((meta, path)) = entry.split_once('\t') {
                let mut parts = meta.split(' ');
                if let (Some(_), Some("blob"), Some(sha)) =
                    (parts.next(), parts.next(), parts.next())
                {
                    map.insert(path.to_string(), sha.to_string());
                }
            }
        }
        let l = Arc::new(map);
        let mut cache = lock(&self.listings);
        if cache.len() > 64 {
            cache.clear();
        }
        cache.insert(commit.to_string(), l.clone());
        Ok(l)
    }

    /// Sizes of the read caches: (commit listings, parsed blobs).
    pub fn cache_sizes(&self) -> (usize, usize) {
        (lock(&self.listings).len(), lock(&self.parsed).len())
    }

    fn blob(&self, sha: &str) -> Result<String, String> {
        git(&self.path, &["cat-file", "blob", sha], None)
    }

    /// A file's content at a revision; None when the file does not exist there.
    pub fn read_file(&self, rev: &str, path: &str) -> Result<Option<String>, String> {
        let commit = self.resolve(rev)?;
        let listing = self.listing(&commit)?;
        match listing.get(path.trim_start_matches('/')) {
            None => Ok(None),
            Some(blob) => self.blob(blob).map(Some),
        }
    }

    /// Files under `dir` at a revision (recursive), as repository paths, sorted.
    pub fn list_files(&self, rev: &str, dir: &str) -> Result<Vec<String>, String> {
        let commit = self.resolve(rev)?;
        let listing = self.listing(&commit)?;
        let prefix = dir_prefix(dir);
        Ok(listing
            .keys()
            .filter(|p| p.starts_with(&prefix))
            .cloned()
            .collect())
    }

    /// The Kubernetes objects of the YAML/JSON files under `dir` at a commit sha, parsed
    /// (cached by blob): (path, objects) per file, sorted by path.
    pub fn manifests(&self, commit: &str, dir: &str) -> Result<Vec<(String, Manifests)>, String> {
        let listing = self.listing(commit)?;
        let prefix = dir_prefix(dir);
        let mut out = Vec::new();
        for (path, blob) in listing.range(prefix.clone()..) {
            if !path.starts_with(&prefix) {
                break;
            }
            if !(path.ends_with(".yaml") || path.ends_with(".yml") || path.ends_with(".json")) {
                continue;
            }
            let cached = lock(&self.parsed).get(blob).cloned();
            let objects = match cached {
                Some(o) => o,
                None => {
                    let text = self.blob(blob)?;
                    let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
                        .map_err(|e| format!("failed to unmarshal {path}: {e}"))?;
                    let docs: Vec<Value> = docs.into_iter().filter(|d| !d.is_null()).collect();
                    for d in &docs {
                        if d.get("kind").and_then(Value::as_str).is_none() {
                            return Err(format!("{path}: Object 'Kind' is missing"));
                        }
                    }
                    let docs = Arc::new(docs);
                    let mut cache = lock(&self.parsed);
                    if cache.len() >= self.parsed_limit.load(std::sync::atomic::Ordering::Relaxed) {
                        cache.clear();
                    }
                    cache.insert(blob.clone(), docs.clone());
                    docs
                }
            };
            out.push((path.clone(), objects));
        }
        Ok(out)
    }

    /// Commit `files` (path, content) on `branch` as `author` ("Name" or "Name <email>");
    /// returns the new commit sha.
    pub fn commit_files(
        &self,
        branch: &str,
        files: &[(String, String)],
        message: &str,
        author: &str,
    ) -> Result<String, String> {
        if branch.is_empty() || branch.contains(char::is_whitespace) || branch.starts_with('-') {
            return Err(format!("invalid branch name '{branch}'"));
        }
        let _guard = lock(&self.write);
        let parent = self.resolve(branch)?;
        let (name, email) = split_author(author);
        let now = chrono::Utc::now().timestamp();
        let mut stream = Vec::new();
        let _ = write!(
            stream,
            "commit refs/heads/{branch}\nauthor {name} <{email}> {now} +0000\ncommitter {name} <{email}> {now} +0000\ndata {}\n{message}\nfrom {parent}\n",
            message.len()
        );
        for (path, content) in files {
            let path = path.trim_start_matches('/');
            if path.contains('\n') || path.is_empty() {
                return Err(format!("invalid file path '{path}'"));
            }
            let _ = write!(
                stream,
                "M 100644 inline {path}\ndata {}\n{content}\n",
                content.len()
            );
        }
        stream.push(b'\n');
        git(&self.path, &["fast-import", "--quiet"], Some(&stream))?;
        let sha = self.resolve(branch)?;
        // Keep the checked-out working tree in step so `cat` in the repo shows the truth.
        if let Ok(head) = git(&self.path, &["symbolic-ref", "--short", "HEAD"], None)
            && head.trim() == branch
        {
            git(&self.path, &["reset", "-q", "--hard"], None)?;
        }
        Ok(sha)
    }

    /// A fingerprint of every branch head, read from the ref files alone (no git process):
    /// it changes when anything, a push included, moves a branch.
    pub fn refs_stamp(&self) -> Vec<(String, String)> {
        let git_dir = self.path.join(".git");
        let mut out = Vec::new();
        let mut stack = vec![git_dir.join("refs").join("heads")];
        while let Some(dir) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if let Ok(text) = std::fs::read_to_string(&p) {
                    out.push((p.display().to_string(), text));
                }
            }
        }
        if let Ok(text) = std::fs::read_to_string(git_dir.join("packed-refs")) {
            out.push(("packed-refs".into(), text));
        }
        out.sort();
        out
    }

    /// Commit time of a revision, Unix seconds.
    pub fn commit_time(&self, rev: &str) -> Result<i64, String> {
        let spec = format!("{rev}^{{commit}}");
        git(&self.path, &["show", "-s", "--format=%ct", &spec], None)?
            .trim()
            .parse()
            .map_err(|e| format!("commit time of {rev}: {e}"))
    }

    /// `git log` between two revisions: (sha, author, unix time, subject), newest first.
    pub fn log(&self, from: &str, to: &str) -> Result<Vec<(String, String, i64, String)>, String> {
        let range = format!("{from}..{to}");
        let out = git(
            &self.path,
            &["log", "--format=%H%x1f%an%x1f%at%x1f%s", &range],
            None,
        )?;
        Ok(out
            .lines()
            .filter_map(|l| {
                let mut p = l.split('\x1f');
                Some((
                    p.next()?.to_string(),
                    p.next()?.to_string(),
                    p.next()?.parse().ok()?,
                    p.next()?.to_string(),
                ))
            })
            .collect())
    }
}

fn dir_prefix(dir: &str) -> String {
    let d = dir.trim_matches('/');
    if d.is_empty() || d == "." {
        String::new()
    } else {
        format!("{d}/")
    }
}

fn split_author(author: &str) -> (String, String) {
    let clean: String = author.chars().filter(|c| !c.is_control()).collect();
    if let Some((name, rest)) = clean.split_once('<') {
        let email = rest.trim_end_matches('>').trim().replace(['<', '>'], "");
        return (name.trim().replace(['<', '>'], ""), email);
    }
    let name = clean.trim().replace(['<', '>'], "");
    let name = if name.is_empty() {
        CI_BOT.0.to_string()
    } else {
        name
    };
    let email = format!("{}@users.noreply.github.com", name.replace(' ', "."));
    (name, email)
}

fn file_url(path: &Path) -> String {
    format!("file://{}", path.display())
}

fn prepare_dir(path: &Path) -> Result<(), String> {
    if path.join(".git").join(MARKER).exists() {
        std::fs::remove_dir_all(path).map_err(|e| format!("{}: {e}", path.display()))?;
    } else if path.exists()
        && std::fs::read_dir(path)
            .map(|mut d| d.next().is_some())
            .unwrap_or(true)
    {
        return Err(format!(
            "{} exists and is not a sandbox repository; choose another state dir",
            path.display()
        ));
    }
    std::fs::create_dir_all(path).map_err(|e| format!("{}: {e}", path.display()))
}

/// Run git in `dir` without the operator's configuration; stdout on success.
fn git(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> Result<String, String> {
    let mut cmd = Command::new("git");
    cmd.current_dir(dir)
        .args([
            "-c",
            "commit.gpgsign=false",
            "-c",
            "tag.gpgsign=false",
            "-c",
            "init.defaultBranch=main",
            "-c",
            "core.autocrlf=false",
            "-c",
            "core.hooksPath=/dev/null",
            "-c",
            "gc.auto=0",
            // Small text blobs: fast compression keeps creating 10,000 apps' history quick.
            "-c",
            "core.compression=1",
        ])
        .args(args)
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_AUTHOR_NAME", CI_BOT.0)
        .env("GIT_AUTHOR_EMAIL", CI_BOT.1)
        .env("GIT_COMMITTER_NAME", CI_BOT.0)
        .env("GIT_COMMITTER_EMAIL", CI_BOT.1)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("cannot run git (is it installed and on PATH?): {e}"))?;
    if let Some(input) = stdin
        && let Some(mut s) = child.stdin.take()
    {
        s.write_all(input)
            .map_err(|e| format!("git {}: {e}", args.join(" ")))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| format!("git {}: {e}", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!(
            "git {} failed: {}",
            args.first().unwrap_or(&""),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The initial history: one commit with every app at its first build, then one commit per
/// bump (grouped per environment and build on large estates), plus a few human commits.
/// Also returns, per branch, the final objects of every app file (to prime the cache).
#[allow(clippy::type_complexity)]
fn plan_history(
    estate: &Estate,
    url: &str,
) -> (Vec<Plan>, Vec<(String, Vec<(String, Vec<Value>)>)>) {
    let start = start_of_history().timestamp();
    let grouped = estate.apps.len() > 300;
    // Weeks of past builds before the recent ones (small estates): the layout is older.
    let any_past = estate
        .apps
        .iter()
        .any(|a| crate::estate::history::has_past(estate, a));
    let setup_time = if any_past {
        start - 86_400 * (crate::estate::history::PAST_DAYS + 1)
    } else {
        start - 86_400
    };
    let mut initial_past = Vec::new();
    let mut initial_files: Vec<(String, String)> = vec![
        ("README.md".into(), readme(estate)),
        (".gitignore".into(), "*.swp\n.DS_Store\n".into()),
    ];
    for w in &estate.github.workflows {
        initial_files.push((
            format!(".github/workflows/{}", w.file),
            workflow_yaml(w, estate),
        ));
    }
    if !estate.jenkins.is_empty() {
        initial_files.push(("Jenkinsfile".into(), jenkinsfile(estate)));
    }
    let mut initial_builds = Vec::new();
    // Pre-production branches get their own first commit: their apps may share paths with
    // prod's (branch-per-environment repositories), so they cannot all live in one tree.
    let mut branch_setup: BTreeMap<String, Plan> = BTreeMap::new();
    let mut plans: Vec<Plan> = Vec::new();
    let mut groups: BTreeMap<(String, String, usize), Plan> = BTreeMap::new();
    let mut heads: BTreeMap<String, Vec<(String, Vec<Value>)>> = BTreeMap::new();
    for app in &estate.apps {
        let first = app.first_build();
        let first_objects = render::app_files(estate, app, first, url);
        let mut first_files: Vec<(String, String)> = first_objects
            .iter()
            .map(|(file, objs)| (file.clone(), render::to_yaml(objs)))
            .collect();
        // What each file held at the previous build: later commits carry only the files
        // a bump changed (and serialize only those).
        let mut previous: HashMap<String, Vec<Value>> = first_objects.into_iter().collect();
        if let Some(v) = &app.values_file {
            first_files.push((v.clone(), render::values_yaml(estate, app, first)));
        }
        let past = crate::estate::history::past_builds(estate, app, start_of_history());
        let mut setup_files = first_files.clone();
        let mut setup_build = Some((app.name.clone(), first));
        if let Some(p0) = past.first() {
            // The layout held the oldest past build; each past bump follows, then the bump
            // to the first recent build (whose commit is that build's).
            let first_tag = estate.tag(&app.service, first, &app.branch);
            let at = |tag: &str| -> Vec<(String, String)> {
                first_files
                    .iter()
                    .map(|(f, t)| {
                        (
                            f.clone(),
                            crate::estate::history::at_past(t, &first_tag, tag),
                        )
                    })
                    .collect()
            };
            setup_files = at(&p0.tag);
            setup_build = None;
            for (k, b) in past.iter().enumerate().skip(1) {
                plans.push(Plan {
                    branch: app.branch.clone(),
                    time: b.time.timestamp(),
                    message: format!(
                        "ci: bump {} to {} in {}",
                        app.service, b.tag, app.environment
                    ),
                    author: (CI_BOT.0.into(), CI_BOT.1.into()),
                    files: at(&b.tag),
                    builds: vec![],
                    past: vec![(app.name.clone(), k)],
                });
            }
            plans.push(Plan {
                branch: app.branch.clone(),
                time: render::commit_time(estate, app, first)
                    .timestamp()
                    .min(start - 3_600),
                message: bump_message(estate, app, first),
                author: (CI_BOT.0.into(), CI_BOT.1.into()),
                files: first_files.clone(),
                builds: vec![(app.name.clone(), first)],
                past: vec![],
            });
        }
        let setup_past: Vec<(String, usize)> = if past.is_empty() {
            vec![]
        } else {
            vec![(app.name.clone(), 0)]
        };
        if app.branch == "main" {
            initial_files.extend(setup_files);
            initial_builds.extend(setup_build);
            initial_past.extend(setup_past);
        } else {
            let plan = branch_setup
                .entry(app.branch.clone())
                .or_insert_with(|| Plan {
                    branch: app.branch.clone(),
                    time: setup_time + 3_600,
                    message: format!("Set up {} for the pre-production environments", app.branch),
                    author: ("platform-team".into(), "platform@acme.dev".into()),
                    files: vec![],
                    builds: vec![],
                    past: vec![],
                });
            plan.files.extend(setup_files);
            plan.builds.extend(setup_build);
            plan.past.extend(setup_past);
        }
        for build in app.builds() {
            let last = build == app.git_build;
            if build == first && !last {
                continue;
            }
            let files = render::app_files(estate, app, build, url);
            if last {
                heads
                    .entry(app.branch.clone())
                    .or_default()
                    .extend(files.iter().cloned());
            }
            if build == first {
                continue;
            }
            let mut texts: Vec<(String, String)> = Vec::new();
            for (f, o) in files {
                if previous.get(&f) != Some(&o) {
                    texts.push((f.clone(), render::to_yaml(&o)));
                    previous.insert(f, o);
                }
            }
            if let Some(v) = &app.values_file {
                texts.push((v.clone(), render::values_yaml(estate, app, build)));
            }
            let time = render::commit_time(estate, app, build).timestamp();
            if grouped {
                let key = (app.branch.clone(), app.environment.clone(), build);
                let plan = groups.entry(key).or_insert_with(|| Plan {
                    branch: app.branch.clone(),
                    time,
                    message: String::new(),
                    author: (CI_BOT.0.into(), CI_BOT.1.into()),
                    files: vec![],
                    builds: vec![],
                    past: vec![],
                });
                plan.files.extend(texts);
                plan.builds.push((app.name.clone(), build));
                plan.message = format!(
                    "ci: bump {} services in {} to build {build}",
                    plan.builds.len(),
                    app.environment
                );
            } else {
                plans.push(Plan {
                    branch: app.branch.clone(),
                    time,
                    message: bump_message(estate, app, build),
                    author: (CI_BOT.0.into(), CI_BOT.1.into()),
                    files: texts,
                    builds: vec![(app.name.clone(), build)],
                    past: vec![],
                });
            }
        }
    }
    plans.extend(groups.into_values());
    // A few human commits between the bumps, as real repositories have.
    let humans = [
        ("priya", "docs: link the on-call runbook from the README"),
        ("marc", "chore: tighten resource requests after load test"),
        ("alice", "ci: pin actions/checkout to v4"),
    ];
    for (i, (who, msg)) in humans.iter().enumerate() {
        let branch = if i % 2 == 0 { "develop" } else { "main" };
        if !estate.branches().iter().any(|b| b == branch) {
            continue;
        }
        plans.push(Plan {
            branch: branch.into(),
            time: start + 86_400 * (2 + 3 * i as i64) + 3_600 * 15,
            message: msg.to_string(),
            author: (who.to_string(), format!("{who}@acme.dev")),
            files: vec![(
                "docs/runbook.md".into(),
                format!(
                    "# Runbook\n\nOn-call: see the board in shipdeck.\n\nRevision {}.\n",
                    i + 1
                ),
            )],
            builds: vec![],
            past: vec![],
        });
    }
    plans.sort_by_key(|p| p.time);
    let initial = Plan {
        branch: "main".into(),
        time: setup_time,
        message: format!("Initial GitOps layout for {}", estate.name),
        author: ("platform-team".into(), "platform@acme.dev".into()),
        files: initial_files,
        builds: initial_builds,
        past: initial_past,
    };
    let mut all = vec![initial];
    all.extend(branch_setup.into_values());
    all.extend(plans);
    (all, heads.into_iter().collect())
}

fn bump_message(estate: &Estate, app: &crate::estate::AppDef, build: usize) -> String {
    match app.kind {
        AppKind::Infra => format!(
            "{}: raise topic retention to 7 days in {}",
            app.service, app.environment
        ),
        AppKind::Parent => "argocd: subscribe apps to sync-failure alerts".into(),
        AppKind::Service => format!(
            "ci: bump {} to {} in {}",
            app.service,
            estate.tag(&app.service, build, &app.branch),
            app.environment
        ),
    }
}

fn readme(estate: &Estate) -> String {
    let mut s = format!(
        "# {}/{}\n\n{}\n\nGitOps repository watched by Argo CD. `develop` deploys to the pre-production\nenvironments, `main` to production.\n\n| app | environment | path | branch |\n|---|---|---|---|\n",
        estate.github.owner, estate.github.repo, estate.description
    );
    for a in estate.apps.iter().take(200) {
        s.push_str(&format!(
            "| {} | {} | `{}` | {} |\n",
            a.name, a.environment, a.path, a.branch
        ));
    }
    s
}

fn yaml_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// A real GitHub Actions workflow with `workflow_dispatch` inputs.
pub fn workflow_yaml(w: &crate::estate::WorkflowDef, estate: &Estate) -> String {
    use crate::estate::CiAction;
    let mut s = format!("name: {}\n\non:\n", yaml_str(&w.name));
    if w.action == CiAction::Build {
        s.push_str("  push:\n    branches: [develop]\n");
    }
    s.push_str("  workflow_dispatch:\n");
    if !w.inputs.is_empty() {
        s.push_str("    inputs:\n");
        for i in &w.inputs {
            s.push_str(&format!(
                "      {}:\n        description: {}\n        required: {}\n        type: {}\n",
                i.name,
                yaml_str(&i.description),
                i.required,
                i.kind
            ));
            if let Some(d) = &i.default {
                s.push_str(&format!("        default: {}\n", yaml_str(d)));
            }
            if !i.options.is_empty() {
                s.push_str("        options:\n");
                for o in &i.options {
                    s.push_str(&format!("          - {}\n", yaml_str(o)));
                }
            }
        }
    }
    s.push_str("\npermissions:\n  contents: write\n  packages: write\n\njobs:\n");
    let registry = &estate.registry;
    match w.action {
        CiAction::Build => s.push_str(&format!(
            "  test:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n      - name: Run unit tests\n        run: make test SERVICE=${{{{ inputs.service }}}}\n  build:\n    needs: test\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n      - name: Build and push image\n        run: docker build -t {registry}/${{{{ inputs.service }}}}:sha-${{GITHUB_SHA::7}} . && docker push {registry}/${{{{ inputs.service }}}}:sha-${{GITHUB_SHA::7}}\n      - name: Scan image\n        run: trivy image --exit-code 1 --severity CRITICAL {registry}/${{{{ inputs.service }}}}:sha-${{GITHUB_SHA::7}}\n  bump:\n    needs: build\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n        with:\n          ref: develop\n      - name: Bump image tag in manifests\n        run: ./scripts/bump.sh ${{{{ inputs.service }}}} sha-${{GITHUB_SHA::7}}\n      - name: Commit and push\n        run: 'git commit -am \"ci: bump ${{{{ inputs.service }}}}\" && git push'\n"
        )),
        CiAction::Deploy => s.push_str(
            "  deploy:\n    runs-on: ubuntu-latest\n    environment: ${{ inputs.environment }}\n    steps:\n      - uses: actions/checkout@v4\n      - name: Set image tag\n        run: ./scripts/bump.sh ${{ inputs.service }} ${{ inputs.version }} ${{ inputs.environment }}\n      - name: Commit and push\n        run: 'git commit -am \"deploy: ${{ inputs.service }} ${{ inputs.version }} to ${{ inputs.environment }}\" && git push'\n      - name: Notify Argo CD\n        run: curl -fsS -X POST \"$ARGOCD_WEBHOOK\"\n",
        ),
        CiAction::Sync => s.push_str(
            "  sync:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n      - name: Log in to Argo CD\n        run: argocd login \"$ARGOCD_SERVER\" --auth-token \"$ARGOCD_AUTH_TOKEN\" --grpc-web\n      - name: Sync applications\n        run: ./scripts/gitops-sync.sh --target ${{ inputs.sync_target }} --force ${{ inputs.force_sync }}\n",
        ),
        CiAction::Verify => s.push_str(
            "  verify:\n    runs-on: ubuntu-latest\n    steps:\n      - uses: actions/checkout@v4\n      - name: Health checks\n        run: ./scripts/health-check.sh --environment ${{ inputs.environment }} --format json\n      - name: Smoke tests\n        if: inputs.test_type != 'health'\n        run: ./scripts/smoke.sh ${{ inputs.environment }} ${{ inputs.test_type }}\n",
        ),
    }
    s
}

fn jenkinsfile(estate: &Estate) -> String {
    let mut s = String::from("pipeline {\n  agent any\n  parameters {\n");
    for j in &estate.jenkins {
        for p in &j.parameters {
            if p.kind == "choice" {
                s.push_str(&format!(
                    "    choice(name: '{}', choices: [{}], description: '{}')\n",
                    p.name,
                    p.options
                        .iter()
                        .map(|o| format!("'{o}'"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    p.description
                ));
            } else {
                s.push_str(&format!(
                    "    string(name: '{}', defaultValue: '{}', description: '{}')\n",
                    p.name,
                    p.default.clone().unwrap_or_default(),
                    p.description
                ));
            }
        }
    }
    s.push_str("  }\n  stages {\n    stage('Update manifests') { steps { sh './scripts/bump-all.sh' } }\n    stage('Push') { steps { sh 'git push origin HEAD' } }\n  }\n  post {\n    success { mail to: 'team@acme.dev', subject: 'GitOps-Pipeline succeeded', body: env.BUILD_URL }\n    failure { mail to: 'team@acme.dev', subject: 'GitOps-Pipeline failed', body: env.BUILD_URL }\n  }\n}\n");
    s
}

#[cfg(test)]
mod workflow_tests {
    use super::*;

    /// GitHub reads these files: they must be YAML, with the dispatch inputs where a client
    /// (the console's build form) looks for them.
    #[test]
    fn generated_workflows_are_valid_yaml_with_dispatch_inputs() {
        for name in crate::estate::built_in_names() {
            let estate = Estate::load(name, None, 1).unwrap();
            for w in &estate.github.workflows {
                let text = workflow_yaml(w, &estate);
                let doc: serde_json::Value = serde_saphyr::from_str(&text)
                    .unwrap_or_else(|e| panic!("{name}/{}: {e}\n{text}", w.file));
                assert!(
                    doc["on"]["workflow_dispatch"]["inputs"].is_object(),
                    "{name}/{}: no dispatch inputs",
                    w.file
                );
                assert!(doc["jobs"].is_object(), "{name}/{}: no jobs", w.file);
            }
        }
    }
}
