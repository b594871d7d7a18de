//! The console as an operator runs it: the release binary in a tmux pane (160x48) against
//! the sandbox process, in API mode or core mode, one at a time. Everything here reads
//! the real console process: the first frame is the pane showing `N apps` (polled with
//! `tmux capture-pane`, so a figure carries up to one poll of the rig's own latency), RSS
//! is the process's VmRSS/VmHWM from /proc, idle bytes are what `tmux pipe-pane` copies
//! out of the pane, idle CPU is the process's utime+stime.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub struct Pane {
    socket: String,
    pub name: String,
    pub pid: u32,
    pub bytes_file: PathBuf,
}

fn tmux(socket: &str) -> Command {
    let mut c = Command::new("tmux");
    c.args(["-L", socket])
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    c
}

/// A script that loads the sandbox's env file and `exec`s the console, so the pane's
/// process is the console itself.
fn launcher(
    dir: &Path,
    name: &str,
    bin: &str,
    env_file: &Path,
    core: bool,
) -> anyhow::Result<PathBuf> {
    let home = dir.join(format!("home-{name}"));
    std::fs::create_dir_all(&home)?;
    let path = dir.join(format!("{name}.sh"));
    let text = format!(
        "#!/bin/sh\n. '{}'\nexport HOME='{}' TERM=xterm-256color\nexec '{}'{}\n",
        env_file.display(),
        home.display(),
        bin,
        if core { " --core" } else { "" }
    );
    std::fs::write(&path, text)?;
    Command::new("chmod").arg("+x").arg(&path).status()?;
    Ok(path)
}

impl Pane {
    /// Start the console and return once its process exists (the clock starts before).
    pub fn start(
        socket: &str,
        dir: &Path,
        name: &str,
        bin: &str,
        env_file: &Path,
        core: bool,
    ) -> anyhow::Result<Pane> {
        let script = launcher(dir, name, bin, env_file, core)?;
        let ok = tmux(socket)
            .args(["new-session", "-d", "-s", name, "-x", "160", "-y", "48"])
            .arg(&script)
            .status()?
            .success();
        anyhow::ensure!(ok, "tmux did not start {name}");
        let out = tmux(socket)
            .args(["display-message", "-p", "-t", name, "#{pane_pid}"])
            .output()?;
        let pid: u32 = String::from_utf8_lossy(&out.stdout).trim().parse()?;
        Ok(Pane {
            socket: socket.to_string(),
            name: name.to_string(),
            pid,
            bytes_file: dir.join(format!("{name}.bytes")),
        })
    }

    pub fn text(&self) -> String {
        tmux(&self.socket)
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Poll the pane until `f` holds; the time it took, or None after `within`.
    pub fn wait(&self, within: Duration, f: impl Fn(&str) -> bool) -> Option<Duration> {
        let started = Instant::now();
        while started.elapsed() < within {
            if f(&self.text()) {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        None
    }

    pub fn key(&self, key: &str) {
        let _ = tmux(&self.socket)
            .args(["send-keys", "-t", &self.name, key])
            .status();
    }

    /// Copy everything the console writes to its terminal from now on into `bytes_file`.
    pub fn count_bytes(&self) -> anyhow::Result<()> {
        let _ = std::fs::remove_file(&self.bytes_file);
        let ok = tmux(&self.socket)
            .args(["pipe-pane", "-o", "-t", &self.name])
            .arg(format!("cat >> '{}'", self.bytes_file.display()))
            .status()?
            .success();
        anyhow::ensure!(ok, "tmux pipe-pane failed");
        Ok(())
    }

    pub fn bytes_written(&self) -> u64 {
        std::fs::metadata(&self.bytes_file)
            .map(|m| m.len())
            .unwrap_or(0)
    }

    /// (VmRSS, VmHWM) in MiB.
    pub fn rss(&self) -> (f64, f64) {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap_or_default();
        let kb = |key: &str| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
                .unwrap_or(0.0)
                / 1024.0
        };
        (kb("VmRSS:"), kb("VmHWM:"))
    }

    /// utime + stime, in seconds.
    pub fn cpu_seconds(&self) -> f64 {
        process_cpu_seconds(self.pid)
    }

    /// CPU seconds of the console and everything it started (its session: git, for one),
    /// children it has reaped included.
    fn session_cpu_seconds(&self) -> f64 {
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let mut ticks = 0.0;
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(s) = std::fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
            let f: Vec<&str> = rest.split_whitespace().collect();
            let at = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            // session is field 6, cutime/cstime 16/17 (1-based); `rest` starts at field 3.
            if at(3) as u32 != self.pid {
                continue;
            }
            ticks += at(11) + at(12);
            if entry.file_name().to_str() == Some(&self.pid.to_string()) {
                ticks += at(13) + at(14);
            }
        }
        ticks / hz.max(1.0)
    }

    /// Wait (at most `within`) until the console and what it started use under 5% of a
    /// core over a second: a console that has drawn its board goes on to clone the Git
    /// repositories its cells need, and the next console measured must not share the
    /// cores with that. The time waited.
    pub fn settle(&self, within: Duration) -> Duration {
        settle_on(within, || self.session_cpu_seconds())
    }

    pub fn kill(&self) {
        let _ = tmux(&self.socket)
            .args(["kill-session", "-t", &self.name])
            .status();
    }

    pub fn alive(&self) -> bool {
        Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

/// utime + stime of a process, in seconds.
pub fn process_cpu_seconds(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime is field 14, stime 15 (1-based); `rest` starts at field 3.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / hz.max(1.0)
}

/// Wait (at most `within`) until a process uses under 5% of a core over a second (the
/// sandbox, still reconciling what a churn changed, before the next console is measured
/// against it). The time waited.
pub fn settle_process(pid: u32, within: Duration) -> Duration {
    settle_on(within, || process_cpu_seconds(pid))
}

/// Wait (at most `within`) until `cpu` (CPU seconds used so far) grows by under 5% of a
/// core over a second. The time waited.
fn settle_on(within: Duration, cpu: impl Fn() -> f64) -> Duration {
    let started = Instant::now();
    let mut last = cpu();
    while started.elapsed() < within {
        std::thread::sleep(Duration::from_secs(1));
        let now = cpu();
        if now - last < 0.05 {
            break;
        }
        last = now;
    }
    started.elapsed()
}

/// Kill this bench's own tmux server (its panes and consoles with it).
pub fn stop(socket: &str) {
    let _ = tmux(socket).arg("kill-server").status();
}

/// p-th percentile (0..=100) of durations in ms.
pub fn percentile(v: &[Duration], p: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut ms: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(|a, b| a.total_cmp(b));
    let i = ((p / 100.0) * (ms.len() - 1) as f64).round() as usize;
    ms[i.min(ms.len() - 1)]
}
