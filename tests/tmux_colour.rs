//! The real binary in tmux, read back with `capture-pane -e` (which writes the escapes the
//! pane holds): under `TERM=xterm` without COLORTERM the console uses only the 16 basic
//! colours (no `38;5;` or `38;2;`), with `COLORTERM=truecolor` it may use 24-bit colour,
//! and under `NO_COLOR` or `--theme mono` it writes no colour at all. Skips (and says so)
//! only when tmux is not installed.

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

fn capture(s: &Session) -> String {
    let out = Command::new("tmux")
        .args(["capture-pane", "-e", "-p", "-t", &s.0])
        .output()
        .expect("tmux runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn start(tag: &str, env: &str, extra: &str) -> (Session, tempfile::TempDir) {
    let name = format!("shipdeck-colour-{tag}-{}", std::process::id());
    let bin = env!("CARGO_BIN_EXE_shipdeck");
    let state = tempfile::tempdir().unwrap();
    let cmd = format!(
        "env -u COLORTERM -u NO_COLOR {env} HOME={home} {bin} demo {extra} --time-scale 0.05 --state-dir {dir}",
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
            "120",
            "-y",
            "32",
            &cmd,
        ])
        .status()
        .expect("tmux starts");
    assert!(status.success());
    (Session(name), state)
}

/// The board with escapes, once it is drawn.
fn board(s: &Session) -> String {
    let end = Instant::now() + Duration::from_secs(90);
    let mut last = String::new();
    while Instant::now() < end {
        last = capture(s);
        if last.contains("SERVICE") && last.contains("connected") {
            return last;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("no board; screen:\n{last}");
}

/// SGR parameter lists of every escape on screen.
fn sgr(screen: &str) -> Vec<String> {
    screen
        .split("\x1b[")
        .skip(1)
        .filter_map(|s| {
            let end = s.find(|c: char| !(c.is_ascii_digit() || c == ';'))?;
            (s[end..].starts_with('m')).then(|| s[..end].to_string())
        })
        .collect()
}

fn colour_params(screen: &str) -> Vec<String> {
    sgr(screen)
        .into_iter()
        .filter(|p| {
            p.split(';').any(|n| {
                matches!(
                    n.parse::<u32>(),
                    Ok(30..=38 | 40..=48 | 90..=97 | 100..=107)
                )
            })
        })
        .collect()
}

fn keys(s: &Session, keys: &[&str]) {
    let mut args = vec!["send-keys", "-t", s.0.as_str()];
    args.extend_from_slice(keys);
    Command::new("tmux")
        .args(&args)
        .status()
        .expect("tmux runs");
}

fn wait(s: &Session, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let end = Instant::now() + Duration::from_secs(60);
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

/// From the board to the approval screen of the first app waiting for one.
fn open_approval(s: &Session) -> String {
    keys(s, &[":"]);
    keys(s, &["-l", "pending"]);
    keys(s, &["Enter"]);
    wait(s, "the pending list", |t| {
        t.contains("waiting for approval")
    });
    keys(s, &["s"]);
    wait(s, "the approval form", |t| {
        t.contains("to approve") && t.contains("type the application")
    })
}

fn tmux_missing() -> bool {
    if Command::new("tmux").arg("-V").output().is_err() {
        println!("SKIP: tmux is not installed");
        return true;
    }
    false
}

#[test]
fn xterm_gets_the_16_basic_colours_only() {
    if tmux_missing() {
        return;
    }
    let (s, _dir) = start("xterm", "TERM=xterm", "");
    let screen = board(&s);
    assert!(
        !screen.contains("38;5;") && !screen.contains("48;5;") && !screen.contains("38;2;"),
        "256/24-bit colour escapes under TERM=xterm: {:?}",
        colour_params(&screen)
    );
    assert!(
        !colour_params(&screen).is_empty(),
        "no colour at all under TERM=xterm:\n{screen}"
    );
    // Help and the palette too.
    keys(&s, &["?"]);
    let help = wait(&s, "help", |t| t.contains("Keys on"));
    assert!(!help.contains("38;5;") && !help.contains("38;2;"), "{help}");
}

#[test]
fn truecolor_only_when_colorterm_says_so() {
    if tmux_missing() {
        return;
    }
    let (s, _dir) = start("truecolor", "TERM=xterm COLORTERM=truecolor", "");
    let screen = board(&s);
    assert!(
        screen.contains("38;2;"),
        "no 24-bit colour with COLORTERM=truecolor"
    );
}

#[test]
fn no_color_and_mono_write_no_colour() {
    if tmux_missing() {
        return;
    }
    for (tag, env, extra) in [
        ("nocolor", "TERM=xterm-256color NO_COLOR=1", ""),
        ("mono", "TERM=xterm-256color", "--theme mono"),
    ] {
        let (s, _dir) = start(tag, env, extra);
        let screen = board(&s);
        assert!(
            colour_params(&screen).is_empty(),
            "{tag}: colour escapes {:?}",
            colour_params(&screen)
        );
        // Selection and emphasis stay visible without colour.
        assert!(
            sgr(&screen)
                .iter()
                .any(|p| p.split(';').any(|n| n == "7" || n == "1")),
            "{tag}: neither reverse nor bold on screen"
        );
        // The approval form: its placeholder and cursor carry no colour either; the
        // cursor is reverse video, the placeholder dim.
        let form = open_approval(&s);
        assert!(
            colour_params(&form).is_empty(),
            "{tag}: colour escapes on the approval form {:?}",
            colour_params(&form)
        );
        let params = sgr(&form);
        assert!(
            params.iter().any(|p| p.split(';').any(|n| n == "7")),
            "{tag}: no cursor"
        );
        assert!(
            params.iter().any(|p| p.split(';').any(|n| n == "2")),
            "{tag}: placeholder not dim"
        );
    }
}
