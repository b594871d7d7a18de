//! Plain domain types shared by every room of shipdeck, and the pure logic that belongs to
//! them. Nothing here performs I/O or knows about terminals: `sources` fill these types from
//! the outside world, `ops` decides with them, `tui` draws them. The Argo CD wire shapes come from `shipdeck-wire`, which the sandbox
//! shares; nothing else here is shared with it.

mod build;
mod compact;
mod packed;
pub mod text;
mod workload;

pub use build::*;
pub use compact::{compact_for_board, is_compact};
pub use packed::Packed;
pub use shipdeck_wire::*;
pub use workload::*;

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where an application lives: the Argo CD instance (an API server or a kubeconfig context
/// running Argo CD in core mode), the namespace of the Application object, and its name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AppId {
    pub instance: String,
    pub namespace: String,
    pub name: String,
}

impl AppId {
    pub fn new(
        instance: impl Into<String>,
        namespace: impl Into<String>,
        name: impl Into<String>,
    ) -> Self {
        Self {
            instance: instance.into(),
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl fmt::Display for AppId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.instance, self.namespace, self.name)
    }
}

/// A Git revision (commit SHA, branch, or tag) as Argo CD reports it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Revision(pub String);

impl Revision {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// A commit SHA shortened to 7 characters the way Git prints it; branch and tag names
    /// are left whole because shortening them would make them wrong.
    pub fn short(&self) -> &str {
        let s = self.0.as_str();
        if s.len() >= 40 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            &s[..7]
        } else {
            s
        }
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One Git commit as `git log` gives it (sources fill it, the approval screen lists it).
/// Text fields are raw: sanitize before drawing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Commit {
    pub sha: String,
    pub author: String,
    pub email: String,
    /// Author time, ISO 8601.
    pub time: String,
    pub subject: String,
    pub body: String,
}

/// A deployment environment with its rank in promotion order (dev < staging < prod < others).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Environment {
    pub name: String,
    pub rank: u32,
}

impl Environment {
    pub fn new(name: impl Into<String>, rank: u32) -> Self {
        Self {
            name: name.into(),
            rank,
        }
    }
}

impl PartialOrd for Environment {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Environment {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.rank
            .cmp(&other.rank)
            .then_with(|| self.name.cmp(&other.name))
    }
}

/// Whether an environment needs an operator's approval before a sync or rollback.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalPolicy {
    #[default]
    None,
    Confirm,
    Required,
}

/// A record of an operator approving a change to a gated environment, kept in the audit log
/// and sent to Argo CD as `info` entries on the operation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalRecord {
    pub id: String,
    pub app: AppId,
    pub environment: String,
    pub approved_by: String,
    pub reason: Option<String>,
    pub from_revision: Option<Revision>,
    pub to_revision: Option<Revision>,
    pub diff_digest: Option<String>,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// Connection state of one source (an Argo CD instance, a cluster context, a CI system).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    Connecting,
    Connected,
    /// Lost and retrying; `since` is when data was last known fresh (RFC 3339).
    Reconnecting {
        reason: String,
        since: String,
    },
    Failed {
        reason: String,
    },
}

/// Apps in a part of a [`Update::Summary`].
pub const SUMMARY_PART: usize = 4096;

/// A change to the estate, sent by sources and actions.
#[derive(Debug, Clone)]
pub enum Update {
    /// An application was added or changed.
    Upsert(AppId, Box<Application>),
    Delete(AppId),
    /// A source relisted: every app of `instance` not in the list is gone.
    Resync {
        instance: String,
        apps: Vec<(AppId, Application)>,
    },
    /// A Resync from Argo CD's projected list: its fixed table of fields leaves out the
    /// history, operation messages and conditions, so the entries are marked incomplete
    /// until [`Update::Details`] (or any change of the app) brings the whole app.
    ///
    /// A large list comes in parts, sent as it is read ([`SUMMARY_PART`] apps each), so
    /// the estate takes each part in while the rest is on the wire and the decoded apps
    /// are freed part by part: `first` begins a list (what an earlier, unfinished one sent
    /// stays until this one ends), and once the part with `last` is in, every app of
    /// `instance` the list did not hold is gone. A list of one part has both.
    Summary {
        instance: String,
        apps: Vec<(AppId, Application)>,
        /// Each app packed by the source as it read the list (from the bytes it decoded,
        /// see [`Packed::of_json`]), in the order of `apps`; any other length (empty) and
        /// the estate packs them itself.
        packed: Vec<Packed>,
        first: bool,
        last: bool,
    },
    /// Whole apps for entries still incomplete. An entry already complete keeps what it
    /// has: a change the stream delivered is as new as these, or newer.
    Details {
        apps: Vec<(AppId, Application)>,
    },
    Connection {
        source: String,
        state: Connection,
    },
}
