//! Git, through the system `git` executable, in bare mirrors under the cache dir. Using the
//! operator's own git means their SSH agent, credential helpers and proxies just work (we
//! never override them; we only forbid interactive prompts, which would hang a TUI). Git
//! runs as a child process off the async runtime. A repository that cannot be fetched is an
//! error the caller shows as a warning; nothing here is fatal to the console.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, thiserror::Error)]
pub enum GitError {
    #[error(
        "git is not installed or not on PATH ({0}); install git to see commits and core-mode diffs"
    )]
    NotInstalled(String),
    #[error("cannot fetch {url}: {detail}")]
    Fetch { url: String, detail: String },
    #[error("revision {rev:?} not found in {url} (fetched just now)")]
    UnknownRevision { url: String, rev: String },
    #[error("git {what} failed in {url}: {detail}")]
    Command {
        url: String,
        what: String,
        detail: String,
    },
    #[error("no cache directory for git mirrors (set HOME or XDG_CACHE_HOME)")]
    NoCacheDir,
}

pub use crate::model::Commit;

/// Bare mirrors of every repository shipdeck reads, by URL.
#[derive(Debug)]
pub struct GitMirrors {
    root: PathBuf,
    /// Fetch at most this often per repository, unless forced.
    pub min_fetch_interval: Duration,
    state: Mutex<HashMap<String, Arc<MirrorState>>>,
}

#[derive(Debug, Default)]
struct MirrorState {
    lock: tokio::sync::Mutex<Option<Instant>>,
}

/// One mirrored repository.
#[derive(Debug, Clone)]
pub struct Mirror {
    pub url: String,
    pub path: PathBuf,
}

impl GitMirrors {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            min_fetch_interval: Duration::from_secs(10),
            state: Mutex::new(HashMap::new()),
        }
    }

    /// `<cache dir>/mirrors`, e.g. `~/.cache/shipdeck/mirrors` on Linux.
    pub fn default_root() -> Result<PathBuf, GitError> {
        crate::paths::cache_dir()
            .map(|d| d.join("mirrors"))
            .ok_or(GitError::NoCacheDir)
    }

    pub fn path_for(&self, url: &str) -> PathBuf {
        use sha2::Digest;
        let clean: String = url
            .trim_end_matches('/')
            .trim_end_matches(".git")
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let tail: String = clean
            .chars()
            .rev()
            .take(80)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        let digest = sha2::Sha256::digest(url.as_bytes());
        let hash: String = digest.iter().take(4).map(|b| format!("{b:02x}")).collect();
        self.root.join(format!("{tail}-{hash}.git"))
    }

    /// Forget when `url` was last fetched, so the next [`GitMirrors::mirror`] fetches (after
    /// we pushed to it: the commit we just made must be found).
    pub async fn invalidate(&self, url: &str) {
        let state = {
            let map = self.state.lock().unwrap_or_else(|e| e.into_inner());
            map.get(url).cloned()
        };
        if let Some(s) = state {
            *s.lock.lock().await = None;
        }
    }

    /// The mirror of `url`, cloned or fetched as needed (`force` fetches even if recent).
    pub async fn mirror(&self, url: &str, force: bool) -> Result<Mirror, GitError> {
        let state = {
            let mut map = self.state.lock().unwrap_or_else(|e| e.into_inner());
            map.entry(url.to_string()).or_default().clone()
        };
        let mut last = state.lock.lock().await;
        let mirror = Mirror {
            url: url.to_string(),
            path: self.path_for(url),
        };
        let fresh = last.is_some_and(|t| t.elapsed() < self.min_fetch_interval);
        if fresh && !force {
            return Ok(mirror);
        }
        if mirror.path.join("HEAD").exists() {
            run_git(
                Some(&mirror.path),
                &["fetch", "--prune", "--quiet", "origin"],
                url,
            )
            .await
            .map_err(|e| fetch_error(url, e))?;
        } else {
            tokio::fs::create_dir_all(&self.root)
                .await
                .map_err(|e| GitError::Fetch {
                    url: url.to_string(),
                    detail: format!("cannot create {}: {e}", self.root.display()),
                })?;
            let tmp = mirror.path.with_extension("partial");
            let _ = tokio::fs::remove_dir_all(&tmp).await;
            let tmp_s = tmp.to_string_lossy().into_owned();
            run_git(None, &["clone", "--mirror", "--quiet", url, &tmp_s], url)
                .await
                .map_err(|e| fetch_error(url, e))?;
            tokio::fs::rename(&tmp, &mirror.path)
                .await
                .map_err(|e| GitError::Fetch {
                    url: url.to_string(),
                    detail: format!("cannot move mirror into place: {e}"),
                })?;
        }
        *last = Some(Instant::now());
        Ok(mirror)
    }
}

fn fetch_error(url: &str, e: GitError) -> GitError {
    match e {
        GitError::Command { detail, .. } => GitError::Fetch {
            url: url.to_string(),
            detail,
        },
        other => other,
    }
}

/// How much git's processes yield the CPU (`nice`): they read and write Git for what the
/// screens show next (commits, the images of past deployments), never for what is on
/// screen now. A first clone of a large GitOps repository is long work: at the sandbox's
/// 50,000 apps (504,354 objects) `git clone --mirror` takes 6.9 s and 8.3 s of CPU, on the
/// same cores as the list being decoded and the keys being answered. At 10 it takes what
/// the console leaves, and all of an idle machine.
const GIT_NICE: libc::c_int = 10;

/// Start `cmd` (and what it starts: a local clone's upload-pack and pack-objects)
/// [`GIT_NICE`] below the console (at most 19). Should the kernel refuse, git runs as it
/// would have; nothing else changes.
fn background(cmd: &mut tokio::process::Command) {
    // SAFETY: the closure runs in the child between fork and exec and makes two system
    // calls (getpriority, setpriority), which take no locks and allocate nothing; it
    // touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            let now = libc::getpriority(libc::PRIO_PROCESS, 0);
            libc::setpriority(libc::PRIO_PROCESS, 0, (now + GIT_NICE).min(19));
            Ok(())
        });
    }
}

/// Run git with prompts disabled; returns stdout. The operator's environment (SSH agent,
/// credential helpers, proxies) is inherited on purpose.
async fn run_git(dir: Option<&Path>, args: &[&str], url: &str) -> Result<Vec<u8>, GitError> {
    run_git_env(dir.map(Place::GitDir), args, url, &[]).await
}

/// Where git runs: a bare mirror (`--git-dir`) or a working clone (`-C`).
#[derive(Clone, Copy)]
enum Place<'a> {
    GitDir(&'a Path),
    WorkTree(&'a Path),
}

async fn run_git_env(
    place: Option<Place<'_>>,
    args: &[&str],
    url: &str,
    env: &[(&str, &str)],
) -> Result<Vec<u8>, GitError> {
    let mut cmd = tokio::process::Command::new("git");
    match place {
        Some(Place::GitDir(d)) => {
            cmd.arg("--git-dir").arg(d);
        }
        Some(Place::WorkTree(d)) => {
            cmd.arg("-C").arg(d);
        }
        None => {}
    }
    cmd.envs(env.iter().copied());
    cmd.args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .env("GIT_ASKPASS", "")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if std::env::var_os("GIT_SSH_COMMAND").is_none() {
        // Never ask for a host key or passphrase on a terminal the TUI owns.
        cmd.env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes");
    }
    background(&mut cmd);
    let out = cmd.output().await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            GitError::NotInstalled(e.to_string())
        } else {
            GitError::Command {
                url: url.to_string(),
                what: args.first().copied().unwrap_or("").to_string(),
                detail: e.to_string(),
            }
        }
    })?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(GitError::Command {
            url: url.to_string(),
            what: args.first().copied().unwrap_or("").to_string(),
            detail: crate::model::text::sanitize(err.trim()).into_owned(),
        });
    }
    Ok(out.stdout)
}

impl Mirror {
    async fn git(&self, args: &[&str]) -> Result<Vec<u8>, GitError> {
        run_git(Some(&self.path), args, &self.url).await
    }

    /// A branch, tag or (short) sha -> the full commit sha.
    pub async fn resolve(&self, rev: &str) -> Result<String, GitError> {
        let rev = if rev.is_empty() || rev == "HEAD" {
            "HEAD"
        } else {
            rev
        };
        let spec = format!("{rev}^{{commit}}");
        match self.git(&["rev-parse", "--verify", "--quiet", &spec]).await {
            Ok(out) => Ok(String::from_utf8_lossy(&out).trim().to_string()),
            Err(GitError::Command { .. }) => Err(GitError::UnknownRevision {
                url: self.url.clone(),
                rev: rev.to_string(),
            }),
            Err(e) => Err(e),
        }
    }

    /// Commits reachable from `to` but not from `from`, newest first, touching `path` if set.
    pub async fn commits_between(
        &self,
        from: &str,
        to: &str,
        path: Option<&str>,
    ) -> Result<Vec<Commit>, GitError> {
        let from = self.resolve(from).await?;
        let to = self.resolve(to).await?;
        let range = format!("{from}..{to}");
        let mut args = vec![
            "log",
            "--no-color",
            "--format=%H%x00%an%x00%ae%x00%aI%x00%s%x00%b%x1e",
            &range,
        ];
        if let Some(p) = path.filter(|p| !p.is_empty() && *p != ".") {
            args.push("--");
            args.push(p);
        }
        let out = self.git(&args).await?;
        Ok(parse_log(&String::from_utf8_lossy(&out)))
    }

    /// The newest `limit` commits reachable from `rev` whose message contains `text`
    /// (fixed string), newest first.
    pub async fn commits_mentioning(
        &self,
        rev: &str,
        text: &str,
        limit: usize,
    ) -> Result<Vec<Commit>, GitError> {
        let to = self.resolve(rev).await?;
        let grep = format!("--grep={text}");
        let max = format!("--max-count={limit}");
        let out = self
            .git(&[
                "log",
                "--no-color",
                "--fixed-strings",
                &grep,
                &max,
                "--format=%H%x00%an%x00%ae%x00%aI%x00%s%x00%b%x1e",
                &to,
            ])
            .await?;
        Ok(parse_log(&String::from_utf8_lossy(&out)))
    }

    /// Commits reachable from `rev`, newest first, touching `path` if set, at most `max`
    /// (delivery metrics: an app's bump commits; one commit with `max` 1).
    pub async fn log(
        &self,
        rev: &str,
        path: Option<&str>,
        max: usize,
    ) -> Result<Vec<Commit>, GitError> {
        let rev = self.resolve(rev).await?;
        let max = format!("--max-count={max}");
        let mut args = vec![
            "log",
            "--no-color",
            &max,
            "--format=%H%x00%an%x00%ae%x00%aI%x00%s%x00%b%x1e",
            &rev,
        ];
        if let Some(p) = path.filter(|p| !p.is_empty() && *p != ".") {
            args.push("--");
            args.push(p);
        }
        let out = self.git(&args).await?;
        Ok(parse_log(&String::from_utf8_lossy(&out)))
    }

    /// Paths of all files at `rev` under `dir` (recursive), relative to the repo root.
    pub async fn list_files(&self, rev: &str, dir: &str) -> Result<Vec<String>, GitError> {
        let sha = self.resolve(rev).await?;
        let dir = dir.trim_matches('/');
        let mut args = vec!["ls-tree", "-r", "-z", "--name-only", sha.as_str()];
        if !dir.is_empty() && dir != "." {
            args.push("--");
            args.push(dir);
        }
        let out = self.git(&args).await?;
        Ok(out
            .split(|b| *b == 0)
            .filter(|s| !s.is_empty())
            .map(|s| String::from_utf8_lossy(s).into_owned())
            .collect())
    }

    /// A file's content at `rev`; None when it does not exist there.
    pub async fn read_file(&self, rev: &str, path: &str) -> Result<Option<String>, GitError> {
        let sha = self.resolve(rev).await?;
        let spec = format!("{sha}:{}", path.trim_start_matches('/'));
        match self.git(&["cat-file", "-p", &spec]).await {
            Ok(out) => Ok(Some(String::from_utf8_lossy(&out).into_owned())),
            Err(GitError::Command { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The unified diff of `path` between two revisions.
    pub async fn diff(&self, from: &str, to: &str, path: &str) -> Result<String, GitError> {
        let from = self.resolve(from).await?;
        let to = self.resolve(to).await?;
        let out = self
            .git(&[
                "diff",
                "--no-color",
                &from,
                &to,
                "--",
                path.trim_matches('/'),
            ])
            .await?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    /// Write the files under `dir` at `rev` into `dest` (for `kubectl kustomize`).
    pub async fn export(&self, rev: &str, dir: &str, dest: &Path) -> Result<(), GitError> {
        for file in self.list_files(rev, dir).await? {
            let Some(content) = self.read_file(rev, &file).await? else {
                continue;
            };
            let target = dest.join(&file);
            let io = |e: std::io::Error| GitError::Command {
                url: self.url.clone(),
                what: "export".into(),
                detail: format!("{}: {e}", target.display()),
            };
            if let Some(parent) = target.parent() {
                tokio::fs::create_dir_all(parent).await.map_err(io)?;
            }
            tokio::fs::write(&target, content).await.map_err(io)?;
        }
        Ok(())
    }
}

/// A working clone of one branch, for writing (promotion): a normal clone under the cache
/// dir (`<cache>/worktrees/…`), reset to the remote branch every time it is opened, so a
/// commit that was never pushed never survives into the next promotion. Pushes use the
/// operator's own git: SSH agent, credential helpers; prompts are disabled, never tokens on
/// the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkClone {
    pub url: String,
    pub branch: String,
    pub dir: PathBuf,
}

/// Why a push did not land.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushRejected {
    #[error(
        "the remote moved on (someone pushed to {branch} first): fetch and promote again ({detail})"
    )]
    NotFastForward { branch: String, detail: String },
    #[error("no permission to push to {url}: {detail}")]
    Permission { url: String, detail: String },
    #[error("push to {url} failed: {detail}")]
    Other { url: String, detail: String },
}

impl GitMirrors {
    /// `<cache dir>/worktrees/<name>`: the working clone of `url` (beside the mirrors).
    pub fn work_path(&self, url: &str) -> PathBuf {
        let name = self
            .path_for(url)
            .file_name()
            .map(|n| n.to_string_lossy().trim_end_matches(".git").to_string())
            .unwrap_or_else(|| "repo".into());
        self.root.with_file_name("worktrees").join(name)
    }

    /// The working clone of `url` at the remote's `branch`, clean (cloned or fetched and
    /// reset). Refuses a revision that is not a branch of the remote.
    pub async fn work_clone(&self, url: &str, branch: &str) -> Result<WorkClone, GitError> {
        if branch.is_empty() || branch == "HEAD" || branch.starts_with('-') {
            return Err(GitError::UnknownRevision {
                url: url.to_string(),
                rev: branch.to_string(),
            });
        }
        let w = WorkClone {
            url: url.to_string(),
            branch: branch.to_string(),
            dir: self.work_path(url),
        };
        if !w.dir.join(".git").exists() {
            if let Some(parent) = w.dir.parent() {
                tokio::fs::create_dir_all(parent)
                    .await
                    .map_err(|e| GitError::Fetch {
                        url: url.to_string(),
                        detail: format!("cannot create {}: {e}", parent.display()),
                    })?;
            }
            let _ = tokio::fs::remove_dir_all(&w.dir).await;
            let dest = w.dir.to_string_lossy().into_owned();
            run_git(
                None,
                &["clone", "--quiet", "--no-checkout", url, &dest],
                url,
            )
            .await
            .map_err(|e| fetch_error(url, e))?;
        }
        w.git(&["fetch", "--prune", "--quiet", "origin"])
            .await
            .map_err(|e| fetch_error(url, e))?;
        let remote = format!("refs/remotes/origin/{branch}");
        if w.git(&["rev-parse", "--verify", "--quiet", &remote])
            .await
            .is_err()
        {
            return Err(GitError::UnknownRevision {
                url: url.to_string(),
                rev: format!("branch {branch}"),
            });
        }
        w.git(&["checkout", "--quiet", "--force", "-B", branch, &remote])
            .await?;
        w.reset().await?;
        Ok(w)
    }
}

impl WorkClone {
    /// Run git in the clone; `env` adds variables (author and committer identity).
    pub async fn git_env(&self, args: &[&str], env: &[(&str, &str)]) -> Result<Vec<u8>, GitError> {
        run_git_env(Some(Place::WorkTree(&self.dir)), args, &self.url, env).await
    }

    pub async fn git(&self, args: &[&str]) -> Result<Vec<u8>, GitError> {
        self.git_env(args, &[]).await
    }

    /// Back to the remote branch as last fetched: drops local commits and edits.
    pub async fn reset(&self) -> Result<(), GitError> {
        let remote = format!("refs/remotes/origin/{}", self.branch);
        self.git(&["reset", "--quiet", "--hard", &remote]).await?;
        self.git(&["clean", "-q", "-fdx"]).await?;
        Ok(())
    }

    /// Push HEAD to the branch. A rejection resets the clone (nothing is left behind) and
    /// says why.
    pub async fn push(&self) -> Result<(), PushRejected> {
        let refspec = format!("HEAD:refs/heads/{}", self.branch);
        let result = self.git(&["push", "origin", &refspec]).await;
        let Err(e) = result else {
            let _ = self.git(&["fetch", "--quiet", "origin"]).await;
            return Ok(());
        };
        let detail = match e {
            GitError::Command { detail, .. } => detail,
            other => other.to_string(),
        };
        let _ = self.reset().await;
        Err(classify_push(&self.url, &self.branch, &detail))
    }
}

/// What git's words on a failed push mean.
pub fn classify_push(url: &str, branch: &str, detail: &str) -> PushRejected {
    let d = detail.to_ascii_lowercase();
    // The lines that say why (the remote's words, the rejected ref), else the last one.
    let why: Vec<&str> = detail
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("remote:") || l.contains("rejected") || l.contains("denied"))
        .collect();
    let last = if why.is_empty() {
        detail
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or(detail)
            .trim()
            .to_string()
    } else {
        why.join("; ")
    };
    if d.contains("non-fast-forward") || d.contains("fetch first") || d.contains("[rejected]") {
        PushRejected::NotFastForward {
            branch: branch.to_string(),
            detail: last,
        }
    } else if d.contains("permission")
        || d.contains("denied")
        || d.contains("403")
        || d.contains("401")
        || d.contains("authentication failed")
        || d.contains("could not read username")
        || d.contains("protected branch")
    {
        PushRejected::Permission {
            url: url.to_string(),
            detail: last,
        }
    } else {
        PushRejected::Other {
            url: url.to_string(),
            detail: last,
        }
    }
}

fn parse_log(out: &str) -> Vec<Commit> {
    out.split('\u{1e}')
        .filter_map(|rec| {
            let rec = rec.trim_start_matches('\n');
            if rec.is_empty() {
                return None;
            }
            let mut f = rec.splitn(6, '\0');
            Some(Commit {
                sha: f.next()?.to_string(),
                author: f.next()?.to_string(),
                email: f.next()?.to_string(),
                time: f.next()?.to_string(),
                subject: f.next()?.to_string(),
                body: f.next().unwrap_or("").trim_end().to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The nice value of the process that reads its own /proc/self/stat.
    fn nice_of_stat(stat: &str) -> Option<i32> {
        // Field 19 (1-based); the fields after the command name start at field 3.
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(16)?
            .parse()
            .ok()
    }

    #[tokio::test]
    async fn git_and_what_it_starts_yield_the_cpu() {
        let mine = std::fs::read_to_string("/proc/self/stat").expect("own stat");
        let mine = nice_of_stat(&mine).expect("own nice");
        let mut cmd = tokio::process::Command::new("cat");
        cmd.arg("/proc/self/stat").stdout(Stdio::piped());
        background(&mut cmd);
        let out = cmd.output().await.expect("cat runs");
        let child = nice_of_stat(&String::from_utf8_lossy(&out.stdout)).expect("child nice");
        assert_eq!(child, (mine + GIT_NICE).min(19));
    }

    #[test]
    fn parses_log_records() {
        let out =
            "abc\0Ann\0ann@x\0T1\0bump api\0line1\nline2\n\u{1e}\ndef\0Bob\0b@x\0T2\0fix\0\u{1e}\n";
        let c = parse_log(out);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].body, "line1\nline2");
        assert_eq!(c[1].sha, "def");
        assert_eq!(c[1].body, "");
    }

    #[test]
    fn mirror_paths_are_distinct_and_safe() {
        let m = GitMirrors::new("/tmp/m");
        let a = m.path_for("https://github.com/org/repo.git");
        let b = m.path_for("https://github.com/org/repo2.git");
        assert_ne!(a, b);
        assert!(!a.file_name().unwrap().to_string_lossy().contains('/'));
    }

    #[tokio::test]
    async fn mirror_commits_between_and_files() {
        let src = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        let git = |args: &[&str]| {
            let ok = std::process::Command::new("git")
                .args(args)
                .current_dir(src.path())
                .env("GIT_AUTHOR_NAME", "Ann")
                .env("GIT_AUTHOR_EMAIL", "ann@example.com")
                .env("GIT_COMMITTER_NAME", "Ann")
                .env("GIT_COMMITTER_EMAIL", "ann@example.com")
                .status()
                .unwrap()
                .success();
            assert!(ok, "git {args:?}");
        };
        git(&["init", "-q", "-b", "main"]);
        std::fs::create_dir_all(src.path().join("k8s")).unwrap();
        std::fs::write(src.path().join("k8s/a.yaml"), "a: 1\n").unwrap();
        git(&["add", "."]);
        git(&["commit", "-q", "-m", "first"]);
        std::fs::write(src.path().join("k8s/a.yaml"), "a: 2\n").unwrap();
        git(&["commit", "-q", "-am", "second\n\nwhy it changed"]);
        let url = format!("file://{}", src.path().display());
        let mirrors = GitMirrors::new(cache.path());
        let m = mirrors.mirror(&url, true).await.unwrap();
        let commits = m.commits_between("main~1", "main", None).await.unwrap();
        assert_eq!(commits.len(), 1);
        assert_eq!(commits[0].subject, "second");
        assert_eq!(commits[0].body, "why it changed");
        assert_eq!(
            m.list_files("main", "k8s").await.unwrap(),
            vec!["k8s/a.yaml"]
        );
        assert_eq!(
            m.read_file("main", "k8s/a.yaml").await.unwrap().unwrap(),
            "a: 2\n"
        );
        assert!(
            m.diff("main~1", "main", "k8s")
                .await
                .unwrap()
                .contains("+a: 2")
        );
        assert!(matches!(
            m.resolve("nope").await,
            Err(GitError::UnknownRevision { .. })
        ));
        let bad = mirrors.mirror("file:///nonexistent/repo", true).await;
        assert!(matches!(bad, Err(GitError::Fetch { .. })));
    }
}
