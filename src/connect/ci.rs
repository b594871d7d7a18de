//! CI for every front end: GitHub Actions repositories and Jenkins jobs behind the
//! `ops::actions::CiSource` seam, so builds, reruns and cancels are guarded and audited like
//! every other change. Errors stay typed ([`SourceError`]) and say what to do (log in, set
//! a variable). Which repositories and jobs: `[[pipelines]]` rules, `GITHUB_REPOSITORY`,
//! the apps' `shipdeck.io/*` annotations; where and with what credentials: `[github]`,
//! `[jenkins]`, `GITHUB_*`/`GH_TOKEN`, `JENKINS_*`, the keyring and the gh CLI config.

use crate::config::{self, Config};
use crate::model::{Application, BuildRun, BuildSystem};
use crate::ops::actions::{BuildRequest, CiSource, Pipeline, RunRef};
use crate::secrets::{CredentialChain, Secret};
use crate::sources::SourceError;
use crate::sources::git::GitMirrors;
use crate::sources::github::{DEFAULT_API_URL, GithubClient, GithubError, GithubOptions};
use crate::sources::jenkins::{JenkinsClient, JenkinsError, JenkinsOptions};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

const GITHUB_HINT: &str = "set GH_TOKEN or GITHUB_TOKEN, or run `shipdeck login github`";
const JENKINS_HINT: &str =
    "set JENKINS_USER and JENKINS_TOKEN (or JENKINS_API_TOKEN), or run `shipdeck login jenkins`";
/// How many builds of each Jenkins job "recent runs" lists.
const JENKINS_RECENT: usize = 10;
/// The HTTP timeout of the CI clients (their default), for timeout messages.
const CLIENT_TIMEOUT_SECS: u64 = 30;

/// GitHub's errors in the words every front end shows; the login hint stays.
pub fn from_github(e: GithubError) -> SourceError {
    match e {
        GithubError::Unauthorized { server, detail } => SourceError::Unauthorized {
            server: format!("GitHub {server}"),
            detail,
            hint: GITHUB_HINT.into(),
        },
        GithubError::Forbidden(m) => SourceError::Forbidden(format!("GitHub: {m}")),
        GithubError::NotFound(m) => SourceError::NotFound(format!("GitHub: {m}")),
        GithubError::Unreachable { server, detail } => SourceError::Unreachable {
            server: format!("GitHub {server}"),
            detail,
        },
        GithubError::Timeout(m) => SourceError::Timeout {
            what: format!("GitHub: {m}"),
            seconds: CLIENT_TIMEOUT_SECS,
        },
        GithubError::Protocol { server, detail } => SourceError::Protocol {
            server: format!("GitHub {server}"),
            detail,
        },
        // A dispatch GitHub refused as invalid (an input the workflow does not declare): usage.
        other @ GithubError::Invalid(_) => SourceError::Invalid(other.to_string()),
        other @ (GithubError::RateLimited { .. }
        | GithubError::Refused(_)
        | GithubError::Workflow { .. }) => SourceError::Refused(other.to_string()),
    }
}

/// Jenkins' errors in the words every front end shows; the login hint stays.
pub fn from_jenkins(e: JenkinsError) -> SourceError {
    match e {
        JenkinsError::Unauthorized { server, detail } => SourceError::Unauthorized {
            server: format!("Jenkins {server}"),
            detail,
            hint: JENKINS_HINT.into(),
        },
        JenkinsError::Forbidden(m) => SourceError::Forbidden(format!("Jenkins: {m}")),
        JenkinsError::NotFound(m) => SourceError::NotFound(format!("Jenkins: {m}")),
        JenkinsError::Unreachable { server, detail } => SourceError::Unreachable {
            server: format!("Jenkins {server}"),
            detail,
        },
        JenkinsError::Timeout(m) => SourceError::Timeout {
            what: format!("Jenkins: {m}"),
            seconds: CLIENT_TIMEOUT_SECS,
        },
        JenkinsError::Protocol { server, detail } => SourceError::Protocol {
            server: format!("Jenkins {server}"),
            detail,
        },
        JenkinsError::Refused(m) => SourceError::Refused(format!("Jenkins: {m}")),
        JenkinsError::Invalid(m) => SourceError::Invalid(format!("Jenkins: {m}")),
    }
}

/// One GitHub repository whose workflows can be run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GithubRepo {
    pub owner: String,
    pub repo: String,
    /// Branch workflows are read from and dispatched on.
    pub git_ref: String,
    /// Git URL to read workflow files from when the contents API is not served.
    pub repo_url: Option<String>,
}

impl GithubRepo {
    pub fn full_name(&self) -> String {
        format!("{}/{}", self.owner, self.repo)
    }
}

/// GitHub Actions: one client (one API, one token) and the repositories to offer (more
/// are learnt from the apps after the console opened).
pub struct GithubCi {
    pub client: GithubClient,
    repos: RwLock<Vec<GithubRepo>>,
}

impl GithubCi {
    pub fn new(client: GithubClient, repos: Vec<GithubRepo>) -> GithubCi {
        GithubCi {
            client,
            repos: RwLock::new(repos),
        }
    }

    /// The repositories offered now.
    pub fn repos(&self) -> Vec<GithubRepo> {
        self.repos.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// Jenkins: the client, or why there is none (no credentials), and the jobs to offer.
pub struct JenkinsCi {
    pub client: Result<JenkinsClient, SourceError>,
    jobs: RwLock<Vec<String>>,
}

impl JenkinsCi {
    pub fn new(client: Result<JenkinsClient, SourceError>, jobs: Vec<String>) -> JenkinsCi {
        JenkinsCi {
            client,
            jobs: RwLock::new(jobs),
        }
    }

    /// The jobs offered now.
    pub fn jobs(&self) -> Vec<String> {
        self.jobs.read().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// GitHub Actions and Jenkins, as configured; either may be absent.
pub struct Ci {
    pub github: Option<GithubCi>,
    pub jenkins: Option<JenkinsCi>,
    /// Which repository each GitHub run came from (run ids are what screens keep).
    run_repos: Mutex<HashMap<u64, (String, String)>>,
}

fn split_repo(s: &str) -> Option<(String, String)> {
    let (o, r) = s.trim().split_once('/')?;
    (!o.is_empty() && !r.is_empty() && !r.contains('/')).then(|| (o.to_string(), r.to_string()))
}

/// The Git URL of a repository on the public GitHub (workflow files via Git).
fn default_repo_url(api_url: &str, owner: &str, repo: &str) -> Option<String> {
    (api_url.trim_end_matches('/') == DEFAULT_API_URL)
        .then(|| format!("https://github.com/{owner}/{repo}.git"))
}

impl Ci {
    /// No CI at all.
    pub fn none() -> Ci {
        Ci {
            github: None,
            jenkins: None,
            run_repos: Mutex::new(HashMap::new()),
        }
    }

    pub fn new(github: Option<GithubCi>, jenkins: Option<JenkinsCi>) -> Ci {
        Ci {
            github,
            jenkins,
            run_repos: Mutex::new(HashMap::new()),
        }
    }

    /// CI from config, environment and keyring; contacts nothing. GitHub is there whenever
    /// a client can be made (the public API by default); Jenkins when a URL is known.
    pub fn from_config(
        config: &Config,
        chain: &CredentialChain,
        git: Option<Arc<GitMirrors>>,
    ) -> Ci {
        let api = config
            .github
            .api_url
            .clone()
            .or_else(|| (chain.env)("GITHUB_API_URL"))
            .unwrap_or_else(|| DEFAULT_API_URL.into());
        let token = chain.github_token(&api, None).map(|(t, _)| t);
        let github = GithubClient::new(GithubOptions {
            api_url: Some(api.clone()),
            token,
            timeout: None,
            git,
        })
        .map_err(|e| tracing::warn!("GitHub client: {e}"))
        .ok()
        .map(|client| GithubCi::new(client, Vec::new()));
        let jenkins = config
            .jenkins
            .url
            .clone()
            .or_else(|| (chain.env)("JENKINS_URL"))
            .map(|url| {
                let client = match chain.jenkins(&url, config.jenkins.user.as_deref(), None) {
                    Some((user, token, _)) => JenkinsClient::new(JenkinsOptions {
                        url: Some(url.clone()),
                        user,
                        token,
                        timeout: None,
                    })
                    .map_err(from_jenkins),
                    None => Err(SourceError::Config(format!(
                        "no Jenkins credentials for {url}: {JENKINS_HINT}"
                    ))),
                };
                JenkinsCi::new(client, Vec::new())
            });
        let ci = Ci::new(github, jenkins);
        if let Some((owner, repo)) = (chain.env)("GITHUB_REPOSITORY")
            .as_deref()
            .and_then(split_repo)
        {
            ci.add_repo(&owner, &repo, None, None);
        }
        for rule in &config.pipelines {
            if let Some((owner, repo)) = rule.github.as_deref().and_then(split_repo) {
                ci.add_repo(&owner, &repo, rule.git_ref.clone(), None);
            }
            if let Some(job) = rule.jenkins.as_deref() {
                ci.add_job(job);
            }
        }
        ci
    }

    /// The sandbox's GitHub Actions and Jenkins with its own credentials (`shipdeck demo`).
    pub fn sandbox(sb: &crate::sandbox::Sandbox, git: Option<Arc<GitMirrors>>) -> Ci {
        let users = &sb.world.users;
        let github = GithubClient::new(GithubOptions {
            api_url: Some(format!("{}/github", sb.url)),
            token: Some(Secret::new(users.github_token())),
            timeout: None,
            git,
        })
        .ok()
        .map(|client| {
            GithubCi::new(
                client,
                vec![GithubRepo {
                    owner: sb.world.estate.github.owner.clone(),
                    repo: sb.world.estate.github.repo.clone(),
                    git_ref: "main".into(),
                    repo_url: Some(sb.world.repo.url()),
                }],
            )
        });
        let jenkins = Some(JenkinsCi::new(
            JenkinsClient::new(JenkinsOptions {
                url: Some(format!("{}/jenkins", sb.url)),
                user: users.jenkins_user(),
                token: Secret::new(users.jenkins_token()),
                timeout: None,
            })
            .map_err(from_jenkins),
            sb.world
                .estate
                .jenkins
                .iter()
                .map(|j| j.name.clone())
                .collect(),
        ));
        Ci::new(github, jenkins)
    }

    /// Offer a repository's workflows (once; a later mention fills in what was missing).
    pub fn add_repo(
        &self,
        owner: &str,
        repo: &str,
        git_ref: Option<String>,
        repo_url: Option<String>,
    ) {
        let Some(g) = &self.github else {
            return;
        };
        let mut repos = g.repos.write().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = repos
            .iter_mut()
            .find(|r| r.owner == owner && r.repo == repo)
        {
            if r.repo_url.is_none() {
                r.repo_url = repo_url;
            }
            return;
        }
        let repo_url = repo_url.or_else(|| default_repo_url(g.client.api_url(), owner, repo));
        repos.push(GithubRepo {
            owner: owner.to_string(),
            repo: repo.to_string(),
            git_ref: git_ref.unwrap_or_else(|| "main".into()),
            repo_url,
        });
    }

    /// Offer a Jenkins job (when Jenkins is configured at all).
    pub fn add_job(&self, job: &str) {
        if let Some(j) = &self.jenkins {
            let mut jobs = j.jobs.write().unwrap_or_else(|e| e.into_inner());
            if !jobs.iter().any(|x| x == job) {
                jobs.push(job.to_string());
            }
        }
    }

    /// The pipelines the apps name (annotations, then `[[pipelines]]` rules); a GitHub
    /// repository named for an app reads its workflow files from the app's own Git source
    /// when nothing better is known.
    pub fn learn_from_apps<'a>(
        &self,
        apps: impl IntoIterator<Item = &'a Application>,
        config: &Config,
    ) {
        for app in apps {
            match config::pipeline_for(app, &config.pipelines) {
                Some(config::Pipeline::Github {
                    owner,
                    repo,
                    git_ref,
                    ..
                }) => {
                    let url = app.spec.primary_source().map(|s| s.repo_url.clone());
                    self.add_repo(&owner, &repo, git_ref, url);
                }
                Some(config::Pipeline::Jenkins { job }) => self.add_job(&job),
                None => {}
            }
        }
    }

    /// Whether there is anything to offer.
    pub fn is_empty(&self) -> bool {
        self.github.as_ref().is_none_or(|g| g.repos().is_empty())
            && self.jenkins.as_ref().is_none_or(|j| j.jobs().is_empty())
    }

    /// Why there is nothing to offer, and what to do about it.
    pub fn nothing_configured() -> SourceError {
        SourceError::Config(
            "no CI configured: add [[pipelines]] rules with github = \"OWNER/REPO\" or jenkins = \"JOB\" to the config (with [jenkins] url or JENKINS_URL), set GITHUB_REPOSITORY, or annotate apps with shipdeck.io/github-repo".into(),
        )
    }

    fn github(&self) -> Result<&GithubCi, SourceError> {
        self.github.as_ref().ok_or_else(|| {
            SourceError::Config(
                "GitHub is not configured: set GITHUB_API_URL or [github] api_url".into(),
            )
        })
    }

    fn jenkins(&self) -> Result<(&JenkinsClient, &JenkinsCi), SourceError> {
        let j = self.jenkins.as_ref().ok_or_else(|| {
            SourceError::Config(
                "Jenkins is not configured: set JENKINS_URL or [jenkins] url in the config".into(),
            )
        })?;
        match &j.client {
            Ok(c) => Ok((c, j)),
            Err(e) => Err(e.clone()),
        }
    }

    /// The repository of a request: the one named, else the only one offered.
    fn repo_for(&self, named: Option<&str>) -> Result<(String, String, String), SourceError> {
        let g = self.github()?;
        if let Some(n) = named {
            let (owner, repo) = split_repo(n)
                .ok_or_else(|| SourceError::Config(format!("{n:?}: expected OWNER/REPO")))?;
            let git_ref = g
                .repos()
                .into_iter()
                .find(|r| r.owner == owner && r.repo == repo)
                .map_or_else(|| "main".to_string(), |r| r.git_ref.clone());
            return Ok((owner, repo, git_ref));
        }
        match g.repos().as_slice() {
            [one] => Ok((one.owner.clone(), one.repo.clone(), one.git_ref.clone())),
            [] => Err(SourceError::Config(
                "which GitHub repository? pass --repo OWNER/REPO, set GITHUB_REPOSITORY, or add a [[pipelines]] rule".into(),
            )),
            _ => Err(SourceError::Config(
                "several GitHub repositories are configured: name one (OWNER/REPO)".into(),
            )),
        }
    }

    fn remember(&self, id: u64, owner: &str, repo: &str) {
        self.run_repos
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, (owner.to_string(), repo.to_string()));
    }

    /// The repository a GitHub run id came from.
    fn repo_of_run(&self, id: u64) -> Result<(String, String), SourceError> {
        if let Some(r) = self
            .run_repos
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id)
            .cloned()
        {
            return Ok(r);
        }
        let (o, r, _) = self.repo_for(None)?;
        Ok((o, r))
    }

    /// Every pipeline that can be triggered, with its inputs: each repository's workflows
    /// that take `workflow_dispatch`, and each Jenkins job with its parameters.
    pub async fn pipelines(&self) -> Result<Vec<Pipeline>, SourceError> {
        let mut out = Vec::new();
        if let Some(g) = &self.github {
            let repos = g.repos();
            let several = repos.len() > 1;
            for r in &repos {
                let wfs = g
                    .client
                    .workflows(&r.owner, &r.repo, &r.git_ref, r.repo_url.as_deref())
                    .await
                    .map_err(from_github)?;
                for w in wfs {
                    let Some(inputs) = w.inputs.clone() else {
                        continue;
                    };
                    out.push(Pipeline {
                        system: BuildSystem::GithubActions,
                        name: w.file().to_string(),
                        title: if several {
                            format!("{} · {}", r.full_name(), w.name)
                        } else {
                            w.name.clone()
                        },
                        git_ref: Some(r.git_ref.clone()),
                        repo: Some(r.full_name()),
                        inputs: inputs.into_iter().map(Into::into).collect(),
                    });
                }
            }
        }
        let jobs = self
            .jenkins
            .as_ref()
            .map(JenkinsCi::jobs)
            .unwrap_or_default();
        if !jobs.is_empty() {
            let (client, _) = self.jenkins()?;
            for job in &jobs {
                let params = client.parameters(job).await.map_err(from_jenkins)?;
                out.push(Pipeline {
                    system: BuildSystem::Jenkins,
                    name: job.clone(),
                    title: "Jenkins job".into(),
                    git_ref: None,
                    repo: None,
                    inputs: params.into_iter().map(Into::into).collect(),
                });
            }
        }
        Ok(out)
    }

    /// Recent runs: GitHub runs of every repository offered and the latest builds of every
    /// Jenkins job offered (with their parameters), newest first.
    pub async fn runs(&self) -> Result<Vec<BuildRun>, SourceError> {
        let mut runs = Vec::new();
        if let Some(g) = &self.github {
            for r in &g.repos() {
                let list = g
                    .client
                    .runs(&r.owner, &r.repo, None, None)
                    .await
                    .map_err(from_github)?;
                for run in &list {
                    self.remember(run.id, &r.owner, &r.repo);
                }
                runs.extend(list);
            }
        }
        let jobs = self
            .jenkins
            .as_ref()
            .map(JenkinsCi::jobs)
            .unwrap_or_default();
        if !jobs.is_empty() {
            let (client, _) = self.jenkins()?;
            for job in &jobs {
                let numbers = client
                    .build_numbers(job, JENKINS_RECENT)
                    .await
                    .map_err(from_jenkins)?;
                for n in numbers {
                    runs.push(client.build(job, n).await.map_err(from_jenkins)?);
                }
            }
        }
        runs.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(b.id.cmp(&a.id)));
        Ok(runs)
    }
}

impl CiSource for Ci {
    async fn dispatch(&self, req: &BuildRequest) -> Result<BuildRun, SourceError> {
        let inputs: BTreeMap<String, String> = req.inputs.iter().cloned().collect();
        match req.system {
            BuildSystem::GithubActions => {
                let g = self.github()?;
                let (owner, repo, default_ref) = self.repo_for(req.repo.as_deref())?;
                let git_ref = req.git_ref.clone().unwrap_or(default_ref);
                let d = g
                    .client
                    .dispatch(&owner, &repo, &req.pipeline, &git_ref, &inputs)
                    .await
                    .map_err(from_github)?;
                self.remember(d.run_id, &owner, &repo);
                g.client
                    .run(&owner, &repo, d.run_id)
                    .await
                    .map_err(from_github)
            }
            BuildSystem::Jenkins => {
                let (j, _) = self.jenkins()?;
                let item = j
                    .trigger(&req.pipeline, &inputs)
                    .await
                    .map_err(from_jenkins)?;
                let number = j
                    .wait_queue(item, Duration::from_millis(250), Duration::from_secs(120))
                    .await
                    .map_err(from_jenkins)?;
                j.build(&req.pipeline, number).await.map_err(from_jenkins)
            }
        }
    }

    async fn run(
        &self,
        system: BuildSystem,
        pipeline: &str,
        id: u64,
    ) -> Result<BuildRun, SourceError> {
        match system {
            BuildSystem::GithubActions => {
                let g = self.github()?;
                let (owner, repo) = self.repo_of_run(id)?;
                g.client.run(&owner, &repo, id).await.map_err(from_github)
            }
            BuildSystem::Jenkins => {
                let (j, _) = self.jenkins()?;
                j.build_detail(pipeline, id).await.map_err(from_jenkins)
            }
        }
    }

    async fn rerun(&self, run: &RunRef) -> Result<(), SourceError> {
        match run.system {
            BuildSystem::GithubActions => {
                let g = self.github()?;
                let (owner, repo) = self.repo_of_run(run.id)?;
                g.client
                    .rerun(&owner, &repo, run.id, false)
                    .await
                    .map_err(from_github)
            }
            // Jenkins has no rerun of its own, and a new build would get a new number the
            // follower of this one would not see: say how instead.
            BuildSystem::Jenkins => Err(SourceError::Refused(format!(
                "rerun is offered for GitHub runs only: start {} again with b (same parameters)",
                run.pipeline
            ))),
        }
    }

    async fn cancel(&self, run: &RunRef) -> Result<(), SourceError> {
        match run.system {
            BuildSystem::GithubActions => {
                let g = self.github()?;
                let (owner, repo) = self.repo_of_run(run.id)?;
                g.client
                    .cancel(&owner, &repo, run.id)
                    .await
                    .map_err(from_github)
            }
            BuildSystem::Jenkins => {
                let (j, _) = self.jenkins()?;
                j.stop(&run.pipeline, run.id).await.map_err(from_jenkins)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(vars: &[(&str, &str)]) -> CredentialChain {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        CredentialChain {
            env: Box::new(move |k| map.get(k).cloned()),
            use_keyring: false,
            argocd_config: None,
            gh_config: None,
        }
    }

    #[test]
    fn config_and_environment_name_the_repositories_and_jobs() {
        let (config, w) = Config::parse(
            "[[pipelines]]\napps = \"shop-*\"\ngithub = \"acme/shop\"\nref = \"develop\"\n\n[[pipelines]]\napps = \"wanderlust\"\njenkins = \"GitOps-Pipeline\"\n",
            std::path::Path::new("c.toml"),
        )
        .expect("the test config parses");
        assert!(w.is_empty(), "{w:?}");
        let ci = Ci::from_config(
            &config,
            &chain(&[
                ("GITHUB_API_URL", "http://127.0.0.1:9/github"),
                ("GITHUB_REPOSITORY", "acme/other"),
                ("JENKINS_URL", "http://127.0.0.1:9/jenkins"),
                ("JENKINS_USER", "ci"),
                ("JENKINS_TOKEN", "t"),
            ]),
            None,
        );
        let g = ci.github.as_ref().unwrap();
        let repos = g.repos();
        let names: Vec<String> = repos.iter().map(GithubRepo::full_name).collect();
        assert_eq!(names, ["acme/other", "acme/shop"]);
        assert_eq!(repos[1].git_ref, "develop");
        let j = ci.jenkins.as_ref().unwrap();
        assert!(j.client.is_ok());
        assert_eq!(j.jobs(), ["GitOps-Pipeline"]);
        assert!(!ci.is_empty());
    }

    #[test]
    fn jenkins_without_credentials_says_what_to_do() {
        let config = Config::defaults();
        let ci = Ci::from_config(
            &config,
            &chain(&[("JENKINS_URL", "http://127.0.0.1:9/jenkins")]),
            None,
        );
        ci.add_job("deploy");
        let e = ci.jenkins().err().unwrap().to_string();
        assert!(e.contains("shipdeck login jenkins"), "{e}");
    }

    #[test]
    fn typed_errors_keep_the_login_hint() {
        let e = from_github(GithubError::Unauthorized {
            server: "api.github.com".into(),
            detail: "401".into(),
        });
        assert!(matches!(e, SourceError::Unauthorized { .. }));
        assert!(e.to_string().contains("shipdeck login github"), "{e}");
        let e = from_jenkins(JenkinsError::Unauthorized {
            server: "j".into(),
            detail: "401".into(),
        });
        assert!(e.to_string().contains("shipdeck login jenkins"), "{e}");
    }
}
