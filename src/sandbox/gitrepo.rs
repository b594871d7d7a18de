//! (stub, to be written) The sandbox's Git repository, driven through the system `git`.

use super::estate::Estate;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone)]
pub struct Repo {
    pub path: PathBuf,
}

impl Repo {
    pub fn create(path: &Path, _estate: &Estate) -> Result<Self, String> {
        Ok(Repo {
            path: path.to_path_buf(),
        })
    }
}
