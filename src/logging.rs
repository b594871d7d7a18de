//! The log file: `<data dir>/logs/shipdeck.log` (`SHIPDECK_DATA_DIR` moves the data dir),
//! never the terminal. Created 0600 like the audit log, and every line passes through
//! [`crate::model::text::redact_credentials`] so a server URL with `user:pass@` in it is
//! not written down.

use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes each formatted event with credentials in URLs hidden.
struct Redacting<W: Write>(W);

impl<W: Write> Write for Redacting<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let clean = crate::model::text::redact_credentials(&text);
        self.0.write_all(clean.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Open (append) or create the log file readable by its owner only, tightening an
/// existing file's mode too.
pub fn open_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut opts = std::fs::OpenOptions::new();
    opts.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    let file = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}

/// Where the log goes.
pub fn log_path() -> Option<PathBuf> {
    crate::ops::audit::data_dir()
        .ok()
        .map(|d| d.join("logs").join("shipdeck.log"))
}

/// Start logging to the file; the guard must live as long as the program so buffered
/// lines are written. None when there is no data dir or the file cannot be opened.
pub fn init() -> Option<tracing_appender::non_blocking::WorkerGuard> {
    let path = log_path()?;
    std::fs::create_dir_all(path.parent()?).ok()?;
    let file = open_private(&path).ok()?;
    let (writer, guard) = tracing_appender::non_blocking(Redacting(file));
    let filter = tracing_subscriber::EnvFilter::try_from_env("SHIPDECK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ok = tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init()
        .is_ok();
    ok.then_some(guard)
}

static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Note when the process started (the first call wins), for [`uptime`].
pub fn mark_start() {
    STARTED.get_or_init(std::time::Instant::now);
}

/// Milliseconds since [`mark_start`] (0 when it was never called): start-up milestones in
/// the log (`SHIPDECK_LOG=debug`) say when they were reached.
pub fn uptime_ms() -> u128 {
    STARTED.get().map(|s| s.elapsed().as_millis()).unwrap_or(0)
}

/// CPU time this process has used, in milliseconds (user and system, every thread), for
/// the same milestones: with [`uptime_ms`] it tells waiting from working.
pub fn cpu_ms() -> u128 {
    // SAFETY: getrusage writes the struct it is handed and reads nothing else.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) } != 0 {
        return 0;
    }
    let ms = |t: libc::timeval| t.tv_sec as u128 * 1000 + t.tv_usec as u128 / 1000;
    ms(u.ru_utime) + ms(u.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_is_private_and_hides_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("shipdeck.log");
        std::fs::write(&p, "old\n").unwrap();
        let f = open_private(&p).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let mut w = Redacting(f);
        w.write_all(b"GET http://ann:pw@argocd.example/api failed\n")
            .unwrap();
        w.flush().unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert_eq!(text, "old\nGET http://***@argocd.example/api failed\n");
    }
}
