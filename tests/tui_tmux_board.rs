//! The real binary at 80x24 in tmux against `shipdeck sandbox` (a separate process) with its
//! env file sourced, as an operator runs it: every board cell shows at least the last 7
//! characters of the image tag kubectl reports, `/` filters services, `:refresh` says how
//! it went, and after the sandbox's `expire-tokens` fault the console says to log in again.
//! Skips (and says so) only when tmux is not installed.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

struct Session(String);

impl Drop for Session {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.0])
            .status();
    }
}

/// The sandbox process, stopped by its own id when the test ends.
struct Sandbox(Child);

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
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

/// `export K='V'` lines of the sandbox's env file.
fn env_of(path: &std::path::Path) -> Vec<(String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("export "))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect()
}

#[test]
fn board_at_80x24_against_the_sandbox_in_tmux() {
    if Command::new("tmux").arg("-V").output().is_err() {
        println!("SKIP: tmux is not installed");
        return;
    }
    let bin = env!("CARGO_BIN_EXE_shipdeck");
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("sandbox");
    let sandbox = Sandbox(
        Command::new(bin)
            .args(["sandbox", "--state-dir"])
            .arg(&state)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("the sandbox starts"),
    );
    let env_file = state.join("env");
    let end = Instant::now() + Duration::from_secs(60);
    while env_of(&env_file).iter().all(|(k, _)| k != "ARGOCD_SERVER") {
        assert!(Instant::now() < end, "the sandbox writes its env file");
        std::thread::sleep(Duration::from_millis(100));
    }
    let env = env_of(&env_file);
    let var = |k: &str| {
        env.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };

    let name = format!("shipdeck-board-{}", std::process::id());
    let cmd = format!(
        "bash -c '. {env}; env TERM=xterm-256color HOME={home} {bin}'",
        env = env_file.display(),
        home = dir.path().display(),
    );
    let ok = Command::new("tmux")
        .args([
            "new-session",
            "-d",
            "-s",
            &name,
            "-x",
            "80",
            "-y",
            "24",
            &cmd,
        ])
        .status()
        .expect("tmux starts");
    assert!(ok.success());
    let s = Session(name);
    let board = wait_for(&s, "the board", 60, |t| {
        t.contains("SERVICE") && t.contains("connected") && t.contains("cart")
    });

    // Oracle: kubectl's images of cart in each environment; the board's cart row shows the
    // last 7 characters of each tag.
    let kubectl = Command::new("kubectl")
        .env("KUBECONFIG", var("KUBECONFIG"))
        .args([
            "get",
            "applications.argoproj.io",
            "-n",
            "argocd",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.status.summary.images[0]}{\"\\n\"}{end}",
        ])
        .output();
    if let Ok(out) = kubectl {
        let listing = String::from_utf8_lossy(&out.stdout).into_owned();
        let row = board
            .lines()
            .find(|l| l.starts_with("cart "))
            .unwrap_or_else(|| panic!("no cart row:\n{board}"));
        for line in listing.lines().filter(|l| l.starts_with("cart-")) {
            let Some((_, image)) = line.split_once('=') else {
                continue;
            };
            let tag = image.rsplit(':').next().unwrap_or_default();
            let tail = &tag[tag.len().saturating_sub(7)..];
            assert!(
                row.contains(tail),
                "{line}: tag tail {tail} missing in `{row}`"
            );
        }
    }

    // `/` filters services.
    keys(&s, &["/"]);
    literal(&s, "payments");
    keys(&s, &["Enter"]);
    let filtered = wait_for(&s, "the filtered board", 10, |t| {
        t.contains("filter: payments")
    });
    assert!(
        filtered.lines().any(|l| l.starts_with("payments"))
            && !filtered.lines().any(|l| l.starts_with("cart ")),
        "{filtered}"
    );
    keys(&s, &["Escape"]);
    // (Wait for the Escape to land: a key right behind it reads as Alt+key.)
    wait_for(&s, "the filter cleared", 10, |t| {
        !t.contains("filter: payments") && t.contains("cart ")
    });

    // `:refresh` refreshes the cell under the cursor and says so.
    keys(&s, &[":"]);
    literal(&s, "refresh");
    keys(&s, &["Enter"]);
    wait_for(&s, "the refresh result", 30, |t| {
        t.contains("refresh done: Argo CD re-read Git for")
    });

    // The sandbox expires every token and drops the watches.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let _ = rustls::crypto::ring::default_provider().install_default();
    rt.block_on(async {
        let c = reqwest::Client::new();
        for f in ["expire-tokens", "drop-watches"] {
            let r = c
                .post(format!("{}/_sandbox/faults", var("SHIPDECK_SANDBOX_URL")))
                .json(&serde_json::json!({ "fault": f }))
                .send()
                .await
                .expect("fault endpoint answers");
            assert!(r.status().is_success());
        }
    });
    keys(&s, &["j"]);
    let refused = wait_for(&s, "the login hint", 30, |t| {
        t.contains("token expired or revoked: run `shipdeck login argocd`")
    });
    assert!(!refused.contains("reconnecting since"), "{refused}");
    keys(&s, &["q"]);
    drop(sandbox);
}
