//! Safety fails closed (issue 7, item 3), end to end: the real binary against a sandbox
//! started here, in API mode and core mode. Applications that read as production however
//! they are spelled are refused a sync without approval (exit 3) and nothing reaches the
//! Application (checked with kube-rs on the sandbox's Kubernetes API, not with shipdeck);
//! a config shipdeck cannot trust stops it before it connects (exit 2); credentials in a
//! server URL are never echoed; the log file is 0600.

mod cli_support;

use cli_support::{MODES, Mode, World, eventually, start};
use serde_json::Value;

/// Whether anyone but Argo CD's automation asked for an operation on the app: a pending
/// `.operation`, or an operation state started by a user.
async fn manual_operation(w: &World, name: &str) -> Option<Value> {
    let app = w.application(name).await;
    if !app["operation"].is_null() {
        return Some(app["operation"].clone());
    }
    let state = &app["status"]["operationState"]["operation"]["initiatedBy"];
    (!state["username"].is_null() && state["automated"] != true).then(|| state.clone())
}

/// What an operation request would change on the Application: `.operation`, and the
/// operation state's start and request.
async fn operation_fingerprint(w: &World, name: &str) -> Value {
    let app = w.application(name).await;
    serde_json::json!([
        app["operation"],
        app["status"]["operationState"]["startedAt"],
        app["status"]["operationState"]["operation"],
    ])
}

/// name, labels, destination namespace (None: the copy's own, shop-dev), the environment
/// and policy status must show, and the refusal's words.
type Case = (
    &'static str,
    &'static [(&'static str, &'static str)],
    Option<&'static str>,
    &'static str,
    &'static str,
    &'static str,
);

const GATED: &[Case] = &[
    // Classified `other` before: the region follows the environment. Its dev label and
    // dev namespace disagree with the name: the stricter wins.
    (
        "ledger-prod-eu",
        &[("env", "dev")],
        None,
        "prod",
        "required",
        "needs approval",
    ),
    (
        "ledger2",
        &[("env", "prod-eu")],
        None,
        "prod-eu",
        "required",
        "needs approval",
    ),
    (
        "ledger3",
        &[("env", "live")],
        None,
        "live",
        "required",
        "needs approval",
    ),
    (
        "ledger4-prod",
        &[("stage", "build")],
        None,
        "prod",
        "required",
        "needs approval",
    ),
    // No hint at all: an unknown environment needs at least a typed confirmation.
    (
        "ledger5",
        &[],
        Some("ledger"),
        "other",
        "confirm",
        "needs confirmation",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn production_however_spelled_is_refused_without_approval_in_both_modes() {
    let w = start().await;
    for (name, labels, ns, ..) in GATED {
        w.copy_app("cart-dev", name, labels, *ns).await;
    }
    // The control: a real dev copy syncs without approval, so a refusal above is the gate.
    w.copy_app("cart-dev", "ledger-dev", &[("env", "dev")], None)
        .await;
    for mode in MODES {
        eventually(&format!("{mode:?} lists the copies"), || async {
            let rows = w.status(mode).await;
            GATED.iter().all(|c| rows.iter().any(|r| r["name"] == c.0))
        })
        .await;
        let rows = w.status(mode).await;
        for (name, _, _, env, policy, _) in GATED {
            let row = rows.iter().find(|r| r["name"] == *name).expect("listed");
            assert_eq!(
                (row["environment"].as_str(), row["policy"].as_str()),
                (Some(*env), Some(*policy)),
                "{mode:?} {name}: {row}"
            );
        }
        let table = w.run(mode, &["status"]).await;
        assert_eq!(table.code, 0, "{}", table.stderr);
        assert!(table.stdout.lines().next().unwrap_or("").contains("POLICY"));
        let line = table
            .stdout
            .lines()
            .find(|l| l.starts_with("ledger3 "))
            .expect("ledger3 in the table");
        assert!(
            line.contains(" live ") && line.contains(" required "),
            "{line}"
        );

        for (name, _, _, _, _, words) in GATED {
            let out = w.run(mode, &["sync", name]).await;
            assert_eq!(
                out.code, 3,
                "{mode:?} sync {name}: {}{}",
                out.stdout, out.stderr
            );
            assert!(
                out.stderr.contains(words) && out.stderr.contains(&format!("--approve {name}")),
                "{mode:?} {name}: {}",
                out.stderr
            );
            assert_eq!(
                manual_operation(&w, name).await,
                None,
                "{mode:?}: a refused sync of {name} reached the Application"
            );
        }
    }
    // Every refused attempt is audited as refused, with the reason, and nothing else was
    // recorded for these apps (no `started`: nothing was sent).
    let ledger: Vec<_> = w
        .audit()
        .into_iter()
        .filter(|r| {
            r["action"] == "sync" && r["app"].as_str().is_some_and(|a| a.starts_with("ledger"))
        })
        .collect();
    assert_eq!(
        ledger.len(),
        10,
        "five apps refused in two modes: {ledger:?}"
    );
    assert!(
        ledger.iter().all(|r| r["outcome"] == "refused"
            && r["detail"].as_str().is_some_and(|d| d.contains("needs"))),
        "refusals are audited as refused, never as started: {ledger:?}"
    );

    let dev = w.run(Mode::Core, &["sync", "ledger-dev"]).await;
    assert_eq!(dev.code, 0, "the dev copy syncs: {}", dev.stderr);
    // With the approval the gated copies go through: the gate, not a broken copy, refused.
    let ok = w
        .run(
            Mode::Core,
            &[
                "sync",
                "ledger3",
                "--approve",
                "ledger3",
                "--reason",
                "fail-closed test",
            ],
        )
        .await;
    assert_eq!(ok.code, 0, "approved: {}", ok.stderr);
    let confirmed = w
        .run(Mode::Api, &["sync", "ledger5", "--approve", "ledger5"])
        .await;
    assert_eq!(confirmed.code, 0, "confirmed: {}", confirmed.stderr);
    eventually("the approved sync reached ledger3", || async {
        manual_operation(&w, "ledger3").await.is_some()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_that_cannot_be_trusted_stops_before_connecting() {
    let w = start().await;
    let syntax = w.config(
        "syntax.toml",
        "theme = \"light\"\n[[instances]\nserver = \"x\"\n",
    );
    let quoted = w.config("quoted.toml", "# ops laptop\nread_only = \"true\"\n");
    let yes = w.config(
        "yes.toml",
        "[poll]\njenkins_seconds = 3\n\n[[contexts]]\nname = \"in-cluster\"\nread_only = \"yes\"\n",
    );
    let range = w.config("range.toml", "[poll]\njenkins_seconds = 0\n");
    let missing = w.home.path().join("nope.toml").display().to_string();
    let before = operation_fingerprint(&w, "cart-prod").await;
    let cases: &[(&str, &str)] = &[
        (&syntax, ":2: (syntax):"),
        (
            &quoted,
            ":2: read_only: wrong type: the string \"true\"; allowed: true or false",
        ),
        (
            &yes,
            ":6: contexts[0].read_only: wrong type: the string \"yes\"",
        ),
        (
            &range,
            ":2: poll.jenkins_seconds: 0 is out of range; allowed: an integer from 1 to 3600",
        ),
        (&missing, ": --config: no such file"),
    ];
    for mode in MODES {
        for (file, says) in cases {
            for args in [
                vec!["--config", file, "status"],
                vec![
                    "--config",
                    file,
                    "sync",
                    "cart-prod",
                    "--approve",
                    "cart-prod",
                    "--reason",
                    "x",
                ],
            ] {
                let out = w.run(mode, &args).await;
                assert_eq!(
                    out.code, 2,
                    "{mode:?} {args:?}: {}{}",
                    out.stdout, out.stderr
                );
                assert!(
                    out.stderr.contains(&format!("{file}{says}")),
                    "{mode:?} {args:?}: {}",
                    out.stderr
                );
                assert!(
                    out.stdout.is_empty(),
                    "stopped before listing: {}",
                    out.stdout
                );
            }
        }
        assert_eq!(
            operation_fingerprint(&w, "cart-prod").await,
            before,
            "nothing was sent"
        );

        let out = w.run(mode, &["--theme", "nosuch", "status"]).await;
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(
            out.stderr.contains("--theme nosuch")
                && out
                    .stderr
                    .contains("default, light, high-contrast, colorblind, mono"),
            "{}",
            out.stderr
        );
    }
    // The same files, read right, do apply: read_only = true refuses (3), unknown keys
    // only warn at their line.
    let ro = w.config("ro.toml", "read_only = true\nread-only = false\n");
    let out = w
        .run(Mode::Core, &["--config", &ro, "sync", "cart-dev"])
        .await;
    assert_eq!(out.code, 3, "{}", out.stderr);
    assert!(out.stderr.contains("read-only mode"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!("warning: {ro}:2: read-only: unknown key")),
        "{}",
        out.stderr
    );
    // `demo` honours --config too, before it starts anything.
    let out = w.run(Mode::Core, &["demo", "--config", &missing]).await;
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains(": --config: no such file"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_in_a_server_url_are_never_echoed_and_the_log_is_private() {
    let w = start().await;
    let host = w.var("ARGOCD_SERVER");
    let host = host.trim_start_matches("http://");
    for server in [
        "http://alice:s3cret@127.0.0.1:1".to_string(),
        format!("http://alice:s3cret@{host}"),
    ] {
        let out = w
            .run_with(
                Mode::Api,
                &["status", "--argocd-server", &server],
                &[("ARGOCD_AUTH_TOKEN", "not-a-token".into())],
            )
            .await;
        assert_ne!(out.code, 0);
        assert!(
            !out.stderr.contains("s3cret") && !out.stdout.contains("s3cret"),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("***@"), "{}", out.stderr);
    }
    let jenkins = w
        .var("JENKINS_URL")
        .replace("http://", "http://bob:hunter2@");
    let out = w
        .run_with(
            Mode::Core,
            &["build", "--jenkins-job", "anything"],
            &[
                ("JENKINS_URL", jenkins),
                ("JENKINS_USER", "bob".into()),
                ("JENKINS_TOKEN", "wrong".into()),
            ],
        )
        .await;
    assert_eq!(out.code, 4, "{}", out.stderr);
    assert!(!out.stderr.contains("hunter2"), "{}", out.stderr);

    // The console's log is created 0600 (an existing one is tightened), like the audit log.
    let logs = w.data.path().join("logs");
    std::fs::create_dir_all(&logs).expect("logs dir");
    std::fs::write(logs.join("shipdeck.log"), "").expect("old log");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(
            logs.join("shipdeck.log"),
            std::fs::Permissions::from_mode(0o644),
        )
        .expect("chmod");
        // No terminal here: the demo stops at the terminal, after opening its log.
        let out = w.run(Mode::Core, &["demo"]).await;
        assert_eq!(out.code, 2, "{}", out.stderr);
        let mode = std::fs::metadata(logs.join("shipdeck.log"))
            .expect("log exists")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

/// Every warning is on `:warnings`, each at its key's line, not only the first one flashed.
#[test]
fn every_config_warning_is_listed_on_the_warnings_screen() {
    use ratatui::{Terminal, backend::TestBackend};
    use shipdeck::tui::console::{Console, Settings};
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("config.toml");
    std::fs::write(
        &file,
        "colour = \"red\"\n\n[poll]\njenkins_seconds = 3\njenkns_seconds = 4\n\n[[instances]]\nserver = \"a\"\nreadonly = true\n",
    )
    .expect("write");
    let (_, warnings) = shipdeck::config::Config::load(Some(&file)).expect("only warnings");
    let shown: Vec<String> = warnings.iter().map(|w| format!("config: {w}")).collect();
    assert_eq!(shown.len(), 3, "{shown:?}");
    let mut c = Console::new(
        shipdeck::ops::estate::Estate::new(),
        Settings {
            warnings: shown,
            ..Settings::default()
        },
    );
    c.command("warnings");
    let mut t = Terminal::new(TestBackend::new(140, 20)).expect("terminal");
    t.draw(|f| c.render(f)).expect("draw");
    let buf = t.backend().buffer().clone();
    let screen: String = (0..buf.area.height)
        .map(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect::<String>()
                + "\n"
        })
        .collect();
    let f = file.display().to_string();
    for want in [
        format!("{f}:1: colour: unknown key"),
        format!("{f}:5: poll.jenkns_seconds: unknown key"),
        format!("{f}:9: instances[0].readonly: unknown key"),
    ] {
        assert!(screen.contains(&want), "{want} not on\n{screen}");
    }
    assert!(screen.contains("3 warnings"), "{screen}");
}
