//! The real binary in a real terminal: `shipdeck demo` inside a detached tmux session of
//! 160x48, driven with `send-keys` through the approval flow, read with `capture-pane`
//! as a person would see it. Skips (and says so) when tmux is not installed. Captures are
//! saved as text screenshots in `assets/screenshots/`.

use std::process::Command;
use std::time::{Duration, Instant};

struct Session(String);

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .status();
    }
}

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux").args(args).output().expect("tmux runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn capture(s: &Session) -> String {
    tmux(&["capture-pane", "-p", "-t", &s.0])
}

fn keys(s: &Session, keys: &[&str]) {
    let mut args = vec!["send-keys", "-t", s.0.as_str()];
    args.extend_from_slice(keys);
    tmux(&args);
}

fn literal(s: &Session, text: &str) {
    tmux(&["send-keys", "-t", &s.0, "-l", text]);
}

/// Wait for `pred` on the pane, with a deadline; the last capture on failure.
fn wait_for(s: &Session, what: &str, secs: u64, pred: impl Fn(&str) -> bool) -> String {
    let end = Instant::now() + Duration::from_secs(secs);
    let mut last = String::new();
    while Instant::now() < end {
        last = capture(s);
        if pred(&last) {
            return last;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("timed out waiting for {what}; screen:\n{last}");
}

/// With `SHIPDECK_SAVE_SCREENSHOTS=1` the captures become the README's screenshots; a
/// plain test run leaves the source tree alone.
fn save(name: &str, text: &str) {
    if std::env::var_os("SHIPDECK_SAVE_SCREENSHOTS").is_none() {
        return;
    }
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/screenshots");
    let _ = std::fs::create_dir_all(&dir);
    let _ = std::fs::write(dir.join(name), text);
}

#[test]
fn demo_approval_flow_in_tmux() {
    if Command::new("tmux").arg("-V").output().is_err() {
        println!("SKIP: tmux is not installed");
        return;
    }
    let name = format!("shipdeck-test-{}", std::process::id());
    let bin = env!("CARGO_BIN_EXE_shipdeck");
    let state = tempfile::tempdir().unwrap();
    let cmd = format!(
        "env TERM=xterm-256color HOME={home} {bin} demo --time-scale 0.05 --state-dir {dir}",
        home = state.path().display(),
        dir = state.path().join("sandbox").display()
    );
    let status = Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            &name,
            "-x",
            "160",
            "-y",
            "48",
            &cmd,
        ])
        .status()
        .expect("tmux starts");
    assert!(status.success());
    let s = Session(name);
    let board = wait_for(&s, "the board with a change waiting", 60, |t| {
        t.contains("SERVICE") && t.contains("⚑")
    });
    save("board.txt", &board);
    // Find the prod app waiting for approval and open the approval screen.
    keys(&s, &[":"]);
    literal(&s, "pending");
    keys(&s, &["Enter"]);
    let list = wait_for(&s, "the pending list", 20, |t| {
        t.contains("waiting for approval")
    });
    let app = list
        .lines()
        .find_map(|l| {
            l.split_whitespace()
                .find(|w| w.ends_with("-prod") || w.ends_with("-production"))
        })
        .unwrap_or_else(|| panic!("no prod app listed:\n{list}"))
        .to_string();
    keys(&s, &["s"]);
    let review = wait_for(&s, "the approval review", 60, |t| {
        t.contains(&format!("Type {app} to approve"))
            && !t.contains("computing diff")
            && !t.contains("checking permission")
    });
    save("approve.txt", &review);
    assert!(review.contains("What changes"), "{review}");
    assert!(review.contains("In the way"), "{review}");
    literal(&s, &app);
    keys(&s, &["Tab"]);
    literal(&s, "tested in staging");
    keys(&s, &["Enter"]);
    let done = wait_for(&s, "Synced and Healthy", 120, |t| {
        assert!(!t.contains("✗ failed"), "the sync failed:\n{t}");
        t.contains("done: operation Succeeded, Healthy")
    });
    save("approve-done.txt", &done);
    assert!(
        done.contains("✓ Synced") && done.contains("♥ Healthy"),
        "{done}"
    );
    keys(&s, &["Escape"]);
    keys(&s, &["Escape"]);
    keys(&s, &["q"]);
}
