//! Where shipdeck keeps its files, in one place: the platform's directories for the
//! application `shipdeck` (on Linux `~/.config/shipdeck`, `~/.local/share/shipdeck`,
//! `~/.cache/shipdeck`), the data directory overridable with `SHIPDECK_DATA_DIR` (tests and
//! read-only homes). None when there is no home directory to put them under.

use std::path::PathBuf;

/// Overrides [`data_dir`] (and so the audit log and the logs) when set and not empty.
pub const DATA_DIR_ENV: &str = "SHIPDECK_DATA_DIR";

fn project() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("dev", "shipdeck", "shipdeck")
}

/// The config directory (`config.toml`, `themes/`).
pub fn config_dir() -> Option<PathBuf> {
    project().map(|d| d.config_dir().to_path_buf())
}

/// The data directory (audit log, logs): `SHIPDECK_DATA_DIR`, else the platform's.
pub fn data_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os(DATA_DIR_ENV).filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(d));
    }
    project().map(|d| d.data_dir().to_path_buf())
}

/// The cache directory (Git mirrors).
pub fn cache_dir() -> Option<PathBuf> {
    project().map(|d| d.cache_dir().to_path_buf())
}

/// The log directory: `<data dir>/logs`.
pub fn log_dir() -> Option<PathBuf> {
    data_dir().map(|d| d.join("logs"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirs_are_distinct_and_named_for_shipdeck() {
        // Without a home directory there is nothing to compare; the platform always has one
        // where tests run.
        let (c, k) = (config_dir().unwrap(), cache_dir().unwrap());
        assert!(
            c.ends_with("shipdeck") && k.ends_with("shipdeck"),
            "{c:?} {k:?}"
        );
        assert_ne!(c, k);
        let d = data_dir().unwrap();
        assert_eq!(log_dir().unwrap(), d.join("logs"));
    }
}
