//! Signals and the terminal, against the real binary in a real terminal (tmux), for
//! `shipdeck demo` and for `shipdeck` against a `shipdeck sandbox --state-dir D` process:
//!
//! - SIGINT, SIGQUIT, SIGTERM and SIGHUP sent with kill(2) give the terminal back (tmux's
//!   `alternate_on` back to 0, cursor shown, and `stty -a` run in the pane afterwards shows
//!   `icanon` and `echo`, not raw) and the exit status is 130, 131, 143, 129;
//! - SIGTSTP gives the shell its prompt back, `fg` redraws the board and keys work again
//!   without Enter (`?` opens the help, `q` quits); a bare SIGSTOP + `fg` likewise;
//!   without job control (no shell to `fg` it) SIGTSTP does not leave it stopped;
//! - with no terminal, `shipdeck demo` and `shipdeck` refuse with a message that says a
//!   terminal is needed and points at `shipdeck sandbox`.
//!
//! The oracle is tmux's own view of the pane and the kernel's (`/proc`, stty), never the
//! product. Each test has its own tmux server (`-L`), removed on drop. Skips (and says so)
//! when tmux is not installed.

use std::io::BufRead;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_shipdeck");

fn have_tmux() -> bool {
    let ok = Command::new("tmux")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        println!("SKIP: tmux is not installed");
    }
    ok
}

/// One tmux server with one 160x48 pane running `cmd`; killed (and its socket file
/// removed) on drop.
struct Pane {
    socket: String,
    socket_path: String,
}

impl Pane {
    fn start(tag: &str, cmd: &str) -> Pane {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let socket = format!("shipdeck-sig-{}-{n}-{tag}", std::process::id());
        let mut pane = Pane {
            socket,
            socket_path: String::new(),
        };
        let status = Command::new("tmux")
            .args(["-L", &pane.socket, "-f", "/dev/null"])
            .args(["new-session", "-d", "-s", "t", "-x", "160", "-y", "48", cmd])
            .status()
            .expect("tmux starts");
        assert!(status.success(), "tmux new-session failed");
        pane.socket_path = pane.format("#{socket_path}");
        pane
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn capture(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-J", "-t", "t"])
    }

    fn format(&self, f: &str) -> String {
        self.tmux(&["display-message", "-p", "-t", "t", f])
            .trim()
            .to_string()
    }

    fn alternate_on(&self) -> bool {
        self.format("#{alternate_on}") == "1"
    }

    fn keys(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "t"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    /// Wait for `pred` with a deadline; on failure the last screen in the panic.
    fn wait(&self, what: &str, secs: u64, pred: impl Fn(&Pane, &str) -> bool) -> String {
        let end = Instant::now() + Duration::from_secs(secs);
        loop {
            let screen = self.capture();
            if pred(self, &screen) {
                return screen;
            }
            if Instant::now() > end {
                panic!(
                    "timed out waiting for {what} (alternate_on={}); screen:\n{screen}",
                    self.format("#{alternate_on}")
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The `shipdeck` process the pane's shell started (found through /proc).
    fn shipdeck_pid(&self) -> i32 {
        let parent: i32 = self
            .format("#{pane_pid}")
            .parse()
            .expect("pane_pid is a number");
        let end = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(pid) = descendant_named(parent, "shipdeck") {
                return pid;
            }
            assert!(Instant::now() < end, "no shipdeck process below {parent}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Pane {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
        if !self.socket_path.is_empty() {
            let _ = std::fs::remove_file(&self.socket_path);
        }
    }
}

/// (ppid, state, comm) of a process from /proc/PID/stat.
fn stat(pid: i32) -> Option<(i32, char, String)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_string();
    let mut rest = text[close + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((ppid, state, comm))
}

/// A live process named `name` below `root` (tmux may run the pane's command through
/// its default shell, so the console need not be a direct child).
fn descendant_named(root: i32, name: &str) -> Option<i32> {
    let procs: Vec<(i32, i32, char, String)> = std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| {
            let pid: i32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let (ppid, state, comm) = stat(pid)?;
            Some((pid, ppid, state, comm))
        })
        .collect();
    let mut below = vec![root];
    let mut i = 0;
    while i < below.len() {
        let parent = below[i];
        for (pid, ppid, state, comm) in &procs {
            if *ppid == parent {
                if comm == name && *state != 'Z' {
                    return Some(*pid);
                }
                below.push(*pid);
            }
        }
        i += 1;
    }
    None
}

fn alive(pid: i32) -> bool {
    stat(pid).is_some_and(|(_, s, _)| s != 'Z')
}

fn stopped(pid: i32) -> bool {
    stat(pid).is_some_and(|(_, s, _)| s == 'T')
}

fn kill(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a pid this test found as the pane's child.
    let rc = unsafe { libc::kill(pid, sig) };
    assert_eq!(rc, 0, "kill({pid}, {sig}) failed");
}

/// The board is up: the alternate screen is on, the column header is drawn, and the
/// board's own footer (the last row, so the frame is complete) is there, not an overlay's.
fn board_up(p: &Pane, screen: &str) -> bool {
    p.alternate_on()
        && screen.contains("SERVICE")
        && screen.contains("PROD")
        && screen.contains("q quit")
        && !screen.contains("Esc close")
}

/// The shell reported the job stopped and printed its prompt after that (the rest of the
/// prompt's row may still hold what the console drew there).
fn shell_back(screen: &str) -> bool {
    let lines: Vec<&str> = screen.lines().collect();
    lines.iter().enumerate().any(|(i, l)| {
        l.contains("Stopped") && lines[i + 1..].iter().any(|n| n.starts_with("prompt$"))
    })
}

/// How the pane starts the console: `demo` with its own state dir, or the plain console
/// with the sandbox's env file sourced.
enum Target<'a> {
    Demo(&'a Path),
    Console(&'a Path),
}

impl Target<'_> {
    /// The shell command that runs the console, with HOME (logs, audit) in `home`.
    fn command(&self, home: &Path, tag: &str) -> String {
        match self {
            Target::Demo(dir) => format!(
                "env TERM=xterm-256color HOME={home} {BIN} demo --state-dir {dir}",
                home = home.display(),
                dir = dir.join(tag).display()
            ),
            Target::Console(dir) => format!(
                ". {env} && env TERM=xterm-256color HOME={home} {BIN}",
                env = dir.join("env").display(),
                home = home.display()
            ),
        }
    }
}

/// `shipdeck sandbox --state-dir D` as its own process, until dropped.
struct SandboxProcess {
    child: Child,
    dir: tempfile::TempDir,
}

impl SandboxProcess {
    fn start() -> SandboxProcess {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut child = Command::new(BIN)
            .args(["sandbox", "--state-dir"])
            .arg(dir.path().join("sb"))
            .env("HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("shipdeck sandbox starts");
        // The ready line is what scripts wait for; it comes once the env file is written.
        let out = child.stdout.take().expect("stdout piped");
        let mut line = String::new();
        std::io::BufReader::new(out)
            .read_line(&mut line)
            .expect("reads the ready line");
        assert!(line.starts_with("sandbox ready"), "sandbox said: {line:?}");
        SandboxProcess { child, dir }
    }

    fn state_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("sb")
    }
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        kill(self.child.id() as i32, libc::SIGTERM);
        let _ = self.child.wait();
    }
}

/// For each signal: start the console in a fresh pane under `sh -c`, wait for the board,
/// send the signal from outside, and check what the terminal and the shell see.
fn signals_give_the_terminal_back(target: Target<'_>) {
    let home = tempfile::tempdir().expect("tempdir");
    for (name, sig, status) in [
        ("INT", libc::SIGINT, 130),
        ("QUIT", libc::SIGQUIT, 131),
        ("TERM", libc::SIGTERM, 143),
        ("HUP", libc::SIGHUP, 129),
    ] {
        let run = target.command(home.path(), name);
        // The pane stays open after the console ends so its screen can be read.
        let cmd = format!("sh -c '{run}; echo EXIT=$?; stty -a; exec sleep 600'");
        let p = Pane::start(name, &cmd);
        p.wait("the board", 90, board_up);
        let pid = p.shipdeck_pid();
        kill(pid, sig);
        let screen = p.wait(&format!("the exit status after SIG{name}"), 60, |p, s| {
            !p.alternate_on() && s.contains("EXIT=") && s.contains("icanon")
        });
        assert!(
            screen.contains(&format!("EXIT={status}")),
            "SIG{name}: expected EXIT={status}:\n{screen}"
        );
        assert_eq!(
            p.format("#{cursor_flag}"),
            "1",
            "SIG{name}: the cursor stayed hidden"
        );
        let words: Vec<&str> = screen.split_whitespace().collect();
        assert!(
            words.contains(&"icanon") && words.contains(&"echo") && !words.contains(&"-icanon"),
            "SIG{name}: the terminal was left raw:\n{screen}"
        );
        assert!(!alive(pid), "SIG{name}: shipdeck is still running");
    }
}

/// Under an interactive shell with job control: SIGTSTP, `fg`, a key; SIGSTOP, `fg`, `q`.
fn stop_and_continue(target: Target<'_>) {
    let home = tempfile::tempdir().expect("tempdir");
    let p = Pane::start("tstp", "env PS1='prompt$ ' bash --norc --noprofile -i");
    p.wait("the shell prompt", 30, |_, s| s.contains("prompt$"));
    p.keys(&["-l", &target.command(home.path(), "tstp")]);
    p.keys(&["Enter"]);
    p.wait("the board", 90, board_up);
    let pid = p.shipdeck_pid();

    kill(pid, libc::SIGTSTP);
    let screen = p.wait("the shell back after SIGTSTP", 30, |p, s| {
        !p.alternate_on() && shell_back(s)
    });
    assert!(stopped(pid), "shipdeck is not stopped:\n{screen}");

    p.keys(&["-l", "fg"]);
    p.keys(&["Enter"]);
    // tmux clears the alternate screen on entry, so the board here is a fresh full draw.
    p.wait("the board redrawn after fg", 30, board_up);
    assert!(!stopped(pid), "shipdeck is still stopped after fg");
    // A key without Enter reaches the console: raw mode is back.
    p.keys(&["?"]);
    p.wait("the help after fg", 30, |p, s| {
        p.alternate_on() && s.contains("this help")
    });
    p.keys(&["Escape"]);
    p.wait("the board again", 30, board_up);

    // A stop the console cannot catch: the alternate screen stays, the shell puts its own
    // modes back and prints its prompt on it; SIGCONT (from `fg`) takes the terminal back.
    kill(pid, libc::SIGSTOP);
    p.wait("the shell back after SIGSTOP", 30, |_, s| {
        stopped(pid) && shell_back(s)
    });
    p.keys(&["-l", "fg"]);
    p.keys(&["Enter"]);
    p.wait("the board redrawn after SIGSTOP and fg", 30, |p, s| {
        board_up(p, s) && !s.contains("prompt$") && !stopped(pid)
    });
    p.keys(&["?"]);
    p.wait("the help after SIGSTOP and fg", 30, |p, s| {
        p.alternate_on() && s.contains("this help")
    });
    p.keys(&["Escape"]);
    p.wait("the board again", 30, board_up);
    p.keys(&["q"]);
    p.wait("the shell back after q", 60, |p, s| {
        !p.alternate_on() && s.trim_end().ends_with("prompt$")
    });
    assert!(!alive(pid), "q did not end shipdeck");
    p.keys(&["-l", "echo EXIT=$?"]);
    p.keys(&["Enter"]);
    let screen = p.wait("the exit status", 30, |_, s| s.contains("EXIT=0"));
    assert!(screen.contains("EXIT=0"), "{screen}");
}

#[test]
fn demo_signals_give_the_terminal_back() {
    if !have_tmux() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    signals_give_the_terminal_back(Target::Demo(dir.path()));
}

#[test]
fn console_signals_give_the_terminal_back() {
    if !have_tmux() {
        return;
    }
    let sb = SandboxProcess::start();
    signals_give_the_terminal_back(Target::Console(&sb.state_dir()));
}

#[test]
fn demo_stop_and_continue() {
    if !have_tmux() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    stop_and_continue(Target::Demo(dir.path()));
}

#[test]
fn console_stop_and_continue() {
    if !have_tmux() {
        return;
    }
    let sb = SandboxProcess::start();
    stop_and_continue(Target::Console(&sb.state_dir()));
}

/// Without job control (`sh -c` in the pane: an orphaned process group, no shell to `fg`
/// it) the kernel drops a default-action SIGTSTP; the console must not stop itself for
/// good but carry on with its terminal: `q` still quits.
#[test]
fn demo_stop_without_job_control_carries_on() {
    if !have_tmux() {
        return;
    }
    let home = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    let run = Target::Demo(dir.path()).command(home.path(), "orphan");
    let p = Pane::start(
        "orphan",
        &format!("sh -c '{run}; echo EXIT=$?; exec sleep 600'"),
    );
    p.wait("the board", 90, board_up);
    let pid = p.shipdeck_pid();
    kill(pid, libc::SIGTSTP);
    p.keys(&["?"]);
    p.wait("the help after SIGTSTP", 30, |p, s| {
        p.alternate_on() && s.contains("this help")
    });
    assert!(!stopped(pid), "shipdeck stopped with no one to continue it");
    p.keys(&["Escape"]);
    p.wait("the board again", 30, board_up);
    p.keys(&["q"]);
    let screen = p.wait("the exit status after q", 60, |p, s| {
        !p.alternate_on() && s.contains("EXIT=")
    });
    assert!(screen.contains("EXIT=0"), "{screen}");
}

/// Without a terminal (stdout a pipe): exit 2, say a terminal is needed and what to use
/// instead, and start nothing (the demo's state dir is never created).
#[test]
fn without_a_terminal_the_console_says_so() {
    let home = tempfile::tempdir().expect("tempdir");
    let state = home.path().join("demo-state");
    for args in [
        vec![
            "demo".to_string(),
            "--state-dir".into(),
            state.display().to_string(),
        ],
        vec![],
    ] {
        let out = Command::new(BIN)
            .args(&args)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", home.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("shipdeck runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains("needs a terminal"), "{args:?}: {err}");
        assert!(
            err.contains("shipdeck sandbox --state-dir"),
            "{args:?}: {err}"
        );
        assert!(
            !err.contains("No such device"),
            "{args:?}: the raw OS error leaked: {err}"
        );
        assert!(out.stdout.is_empty(), "{args:?}: wrote to stdout");
    }
    assert!(!state.exists(), "the demo started a sandbox anyway");
}

/// The terminal goes away under a running console (the SSH session drops, the tmux server
/// dies): the console must end, not spin on the dead terminal. The tmux server is killed
/// with SIGKILL, so nothing but the kernel tells the console. Four consoles in turn, each
/// while its board is live: two in the pane's session (the kernel sends SIGHUP, which races
/// the loop's next poll of the input), and two under `setsid`, in a session of their own
/// whose controlling terminal the pane is not, so no SIGHUP comes at all: only the dead
/// terminal says it is gone (before the hang-up watch, such a console spun on it for good).
fn ends_when_its_terminal_hangs_up(target: Target<'_>) {
    let home = tempfile::tempdir().expect("tempdir");
    for round in 0..4 {
        let tag = format!("hup{round}");
        let run = target.command(home.path(), &tag);
        let run = if round % 2 == 0 {
            run
        } else {
            format!("setsid -w sh -c \"{run}\"")
        };
        let p = Pane::start(&tag, &format!("sh -c '{run}'"));
        p.wait("the board", 90, board_up);
        let pid = p.shipdeck_pid();
        let server: i32 = p.format("#{pid}").parse().expect("the server's pid");
        kill(server, libc::SIGKILL);
        let end = Instant::now() + Duration::from_secs(20);
        while alive(pid) && Instant::now() < end {
            std::thread::sleep(Duration::from_millis(100));
        }
        if alive(pid) {
            // Leave nothing spinning behind a failed test.
            // SAFETY: kill(2) on the pid this test found as the pane's child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            panic!("round {round}: shipdeck still runs 20 s after its terminal hung up");
        }
    }
}

#[test]
fn demo_ends_when_its_terminal_hangs_up() {
    if !have_tmux() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    ends_when_its_terminal_hangs_up(Target::Demo(dir.path()));
}

#[test]
fn console_ends_when_its_terminal_hangs_up() {
    if !have_tmux() {
        return;
    }
    let sb = SandboxProcess::start();
    ends_when_its_terminal_hangs_up(Target::Console(&sb.state_dir()));
}
