//! The audit log: every approval and every mutation appended as one JSON line to
//! `audit.jsonl` in the data dir (`SHIPDECK_DATA_DIR` overrides the directory). Lines are
//! written whole with one append so concurrent shipdecks do not interleave. This file must
//! never hold a secret: no tokens, no Secret values (diffs are recorded by digest only).

use crate::model::{ApprovalRecord, Revision};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const FILE_NAME: &str = "audit.jsonl";
pub const DATA_DIR_ENV: &str = crate::paths::DATA_DIR_ENV;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(
        "no data directory for the audit log (no home directory?): set {DATA_DIR_ENV} to a writable directory"
    )]
    NoDataDir,
    #[error(
        "cannot write the audit log {path}: {source}; fix its permissions or set {DATA_DIR_ENV}"
    )]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the audit log {path}: {detail}")]
    Read { path: PathBuf, detail: String },
}

/// One line of the audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub at: chrono::DateTime<chrono::Utc>,
    pub who: String,
    /// `approve`, `sync`, `rollback`, `disable-auto-sync`, `build`.
    pub action: String,
    /// Argo CD instance (API server or kubeconfig context).
    pub instance: String,
    pub app: String,
    pub environment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_revision: Option<Revision>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_revision: Option<Revision>,
    /// sha256 of the rendered diff the operator saw (see `ops::diff::AppDiff::digest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff_digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `approved`, `sent`, `succeeded`, `failed`, `refused`.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}

impl AuditRecord {
    pub fn approval(r: &ApprovalRecord) -> Self {
        Self {
            at: r.at,
            who: r.approved_by.clone(),
            action: "approve".into(),
            instance: r.app.instance.clone(),
            app: r.app.name.clone(),
            environment: r.environment.clone(),
            from_revision: r.from_revision.clone(),
            to_revision: r.to_revision.clone(),
            diff_digest: r.diff_digest.clone(),
            approval_id: Some(r.id.clone()),
            reason: r.reason.clone(),
            outcome: "approved".into(),
            detail: None,
            dry_run: false,
        }
    }
}

/// Where audit lines go, and (`[[notify]]`) who hears about them.
#[derive(Debug, Clone)]
pub struct AuditLog {
    path: PathBuf,
    notifier: Option<super::notify::Notifier>,
}

impl AuditLog {
    /// `$SHIPDECK_DATA_DIR/audit.jsonl`, else the platform data dir's.
    pub fn open_default() -> Result<Self, AuditError> {
        Ok(Self::in_dir(&data_dir()?))
    }

    pub fn in_dir(dir: &Path) -> Self {
        Self {
            path: dir.join(FILE_NAME),
            notifier: None,
        }
    }

    /// Fan every record appended from now on out to these webhooks (`ops::notify`).
    pub fn with_notifier(mut self, notifier: Option<super::notify::Notifier>) -> Self {
        self.notifier = notifier;
        self
    }

    pub fn notifier(&self) -> Option<&super::notify::Notifier> {
        self.notifier.as_ref()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn append(&self, record: &AuditRecord) -> Result<(), AuditError> {
        self.append_with_images(record, &[])
    }

    /// Append, then queue the record's notification (never blocks), naming the images the
    /// app runs where the caller knows them. A record that could not be written notifies
    /// nobody: a message never claims what the log does not hold.
    pub fn append_with_images(
        &self,
        record: &AuditRecord,
        images: &[String],
    ) -> Result<(), AuditError> {
        self.write(record)?;
        if let Some(n) = &self.notifier {
            n.notify(record, images);
        }
        Ok(())
    }

    fn write(&self, record: &AuditRecord) -> Result<(), AuditError> {
        let write_err = |source| AuditError::Write {
            path: self.path.clone(),
            source,
        };
        if let Some(dir) = self.path.parent() {
            std::fs::create_dir_all(dir).map_err(write_err)?;
        }
        let mut line = serde_json::to_vec(record)
            .map_err(|e| write_err(std::io::Error::other(e.to_string())))?;
        line.push(b'\n');
        let mut opts = std::fs::OpenOptions::new();
        opts.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&self.path).map_err(write_err)?;
        f.write_all(&line).map_err(write_err)?;
        f.flush().map_err(write_err)
    }

    /// Every record, oldest first (for `shipdeck` tests and the console's audit view);
    /// unreadable lines are skipped, not fatal.
    pub fn read_all(&self) -> Result<Vec<AuditRecord>, AuditError> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(AuditError::Read {
                    path: self.path.clone(),
                    detail: e.to_string(),
                });
            }
        };
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }
}

/// shipdeck's data dir: `SHIPDECK_DATA_DIR`, else the platform's (`~/.local/share/shipdeck`).
pub fn data_dir() -> Result<PathBuf, AuditError> {
    crate::paths::data_dir().ok_or(AuditError::NoDataDir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(action: &str) -> AuditRecord {
        AuditRecord {
            at: chrono::Utc::now(),
            who: "ana".into(),
            action: action.into(),
            instance: "i".into(),
            app: "shop-prod".into(),
            environment: "prod".into(),
            from_revision: Some(Revision::new("a")),
            to_revision: Some(Revision::new("b")),
            diff_digest: Some("d".into()),
            approval_id: None,
            reason: None,
            outcome: "succeeded".into(),
            detail: None,
            dry_run: false,
        }
    }

    #[test]
    fn appends_one_json_line_per_record() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let log = AuditLog::in_dir(&dir.path().join("nested"));
        log.append(&rec("approve"))
            .unwrap_or_else(|e| panic!("{e}"));
        log.append(&rec("sync")).unwrap_or_else(|e| panic!("{e}"));
        let text = std::fs::read_to_string(log.path()).unwrap_or_default();
        assert_eq!(text.lines().count(), 2);
        let back = log.read_all().unwrap_or_default();
        assert_eq!(back[1].action, "sync");
        assert_eq!(back[0], rec("approve").clone_with_at(back[0].at));
    }

    impl AuditRecord {
        fn clone_with_at(mut self, at: chrono::DateTime<chrono::Utc>) -> Self {
            self.at = at;
            self
        }
    }
}
