//! CI runs (GitHub Actions workflow runs, Jenkins builds) in one shape, so the console can
//! show either without caring which system ran it.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildSystem {
    GithubActions,
    Jenkins,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildState {
    Queued,
    InProgress,
    Succeeded,
    Failed,
    Cancelled,
}

impl BuildState {
    pub fn is_done(self) -> bool {
        matches!(
            self,
            BuildState::Succeeded | BuildState::Failed | BuildState::Cancelled
        )
    }

    /// Map GitHub's `status` + `conclusion` pair.
    pub fn from_github(status: &str, conclusion: Option<&str>) -> Self {
        match status {
            "completed" => match conclusion {
                Some("success") | Some("neutral") | Some("skipped") => BuildState::Succeeded,
                Some("cancelled") => BuildState::Cancelled,
                _ => BuildState::Failed,
            },
            "in_progress" => BuildState::InProgress,
            _ => BuildState::Queued,
        }
    }

    /// Map Jenkins' `building` + `result` pair.
    pub fn from_jenkins(building: bool, result: Option<&str>) -> Self {
        if building {
            return BuildState::InProgress;
        }
        match result {
            Some("SUCCESS") => BuildState::Succeeded,
            Some("ABORTED") => BuildState::Cancelled,
            Some(_) => BuildState::Failed,
            None => BuildState::Queued,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildStep {
    pub number: u32,
    pub name: String,
    pub state: BuildState,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildJob {
    pub id: u64,
    pub name: String,
    pub state: BuildState,
    pub steps: Vec<BuildStep>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRun {
    pub system: BuildSystem,
    /// GitHub run id, or Jenkins build number.
    pub id: u64,
    /// Workflow file name or Jenkins job name.
    pub pipeline: String,
    pub title: String,
    pub branch: Option<String>,
    pub head_sha: Option<String>,
    pub state: BuildState,
    pub url: Option<String>,
    pub created_at: Option<String>,
    pub jobs: Vec<BuildJob>,
    /// The inputs (GitHub) or parameters (Jenkins) the run was started with, where the
    /// system reports them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<(String, String)>,
    /// The last lines of the run's log (Jenkins' console), where fetched.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_tail: Vec<String>,
}
