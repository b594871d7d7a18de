//! Exit codes as the README says, in every case (issue 7, item 4): the README's table is
//! read here, must match the code's table (`shipdeck::cli::exit::CODES`) row for row, and
//! every row is produced by the real binary against a sandbox started here, in API and
//! core mode where both apply.

mod cli_support;

use cli_support::{Mode, World, start};
use std::collections::BTreeMap;

/// `| `N` | meaning |` rows of the README's exit-code table.
fn readme_table() -> BTreeMap<i32, String> {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    readme
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l
                .trim()
                .trim_matches('|')
                .split('|')
                .map(str::trim)
                .collect();
            let [code, meaning] = cells.as_slice() else {
                return None;
            };
            let code = code.strip_prefix('`')?.strip_suffix('`')?.parse().ok()?;
            Some((code, meaning.to_string()))
        })
        .collect()
}

struct Case {
    what: String,
    mode: Mode,
    args: Vec<String>,
    env: Vec<(&'static str, String)>,
}

fn case(what: &str, mode: Mode, args: &[&str]) -> Case {
    Case {
        what: what.into(),
        mode,
        args: args.iter().map(|s| s.to_string()).collect(),
        env: Vec::new(),
    }
}

fn with_env(mut c: Case, env: &[(&'static str, String)]) -> Case {
    c.env.extend(env.iter().cloned());
    c
}

/// Every documented code, and what produces it.
fn scenarios(w: &World) -> BTreeMap<i32, Vec<Case>> {
    let est = &w.sandbox.world.estate;
    let workflow = est
        .github
        .workflows
        .iter()
        .find(|x| matches!(x.action, shipdeck::sandbox::estate::CiAction::Build))
        .expect("a build workflow")
        .file
        .clone();
    let repo = format!("{}/{}", est.github.owner, est.github.repo);
    let job = est.jenkins.first().expect("a Jenkins job").name.clone();
    let github = vec![
        ("GITHUB_API_URL", w.var("GITHUB_API_URL")),
        ("GITHUB_TOKEN", w.var("GITHUB_TOKEN")),
    ];
    let jenkins_wrong = vec![
        ("JENKINS_URL", w.var("JENKINS_URL")),
        ("JENKINS_USER", w.var("JENKINS_USER")),
        ("JENKINS_TOKEN", "wrong-token".to_string()),
    ];
    let syntax = w.config("syntax.toml", "[[instances]\n");
    let quoted = w.config("quoted.toml", "read_only = \"true\"\n");
    let missing = w.home.path().join("missing.toml").display().to_string();
    let mut m: BTreeMap<i32, Vec<Case>> = BTreeMap::new();
    let both = |what: &str, args: &[&str]| -> Vec<Case> {
        [Mode::Core, Mode::Api]
            .into_iter()
            .map(|mode| case(&format!("{what} ({mode:?})"), mode, args))
            .collect()
    };
    m.insert(0, both("status", &["status"]));
    m.insert(
        1,
        both("diff of a prod app Git moved past", &["diff", "cart-prod"]),
    );
    let mut usage = both("missing --config", &["--config", &missing, "status"]);
    usage.extend(both(
        "config syntax error",
        &["--config", &syntax, "status"],
    ));
    usage.extend(both(
        "read_only = \"true\"",
        &["--config", &quoted, "status"],
    ));
    usage.extend(both("unknown theme", &["--theme", "nosuch", "status"]));
    usage.push(case(
        "a flag clap does not know",
        Mode::Core,
        &["status", "--nosuch"],
    ));
    usage.push(with_env(
        case(
            "unknown GitHub workflow input",
            Mode::Core,
            &[
                "build",
                "--workflow",
                &workflow,
                "--repo",
                &repo,
                "--input",
                "nosuch=1",
            ],
        ),
        &github,
    ));
    m.insert(2, usage);
    let mut refused = both("gated sync without approval", &["sync", "cart-prod"]);
    refused.push(case(
        "read-only sync",
        Mode::Api,
        &["sync", "cart-dev", "--read-only"],
    ));
    m.insert(3, refused);
    m.insert(
        4,
        vec![
            with_env(
                case("wrong Argo CD token", Mode::Api, &["status"]),
                &[("ARGOCD_AUTH_TOKEN", "wrong-token".into())],
            ),
            case(
                "viewer may not sync",
                Mode::Core,
                &["sync", "cart-dev", "--context", "viewer@in-cluster"],
            ),
            with_env(
                case(
                    "wrong Jenkins token",
                    Mode::Core,
                    &["build", "--jenkins-job", &job],
                ),
                &jenkins_wrong,
            ),
        ],
    );
    let mut not_found = both("unknown application", &["diff", "nosuch"]);
    not_found.push(case(
        "an app with no pipeline",
        Mode::Core,
        &["build", "cart-dev"],
    ));
    not_found.push(case(
        "a history id the app does not have",
        Mode::Api,
        &[
            "rollback",
            "frontend-prod",
            "--id",
            "9999",
            "--approve",
            "frontend-prod",
            "--reason",
            "exit-code test",
        ],
    ));
    m.insert(5, not_found);
    m.insert(
        6,
        both(
            "rollout of a Degraded app",
            &["rollout", "payments-prod", "--wait", "--timeout", "60"],
        ),
    );
    m.insert(
        7,
        vec![case(
            "nothing listens",
            Mode::Api,
            &["status", "--argocd-server", "http://127.0.0.1:1"],
        )],
    );
    m
}

#[test]
fn the_readme_table_is_the_codes_table() {
    let readme = readme_table();
    let code: BTreeMap<i32, String> = shipdeck::cli::exit::CODES
        .iter()
        .map(|(c, m)| (*c, m.to_string()))
        .collect();
    assert_eq!(
        readme, code,
        "README's exit-code table and cli::exit::CODES differ"
    );
    assert_eq!(
        readme.keys().copied().collect::<Vec<_>>(),
        (0..=7).collect::<Vec<_>>()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_of_the_readme_table_happens_as_documented() {
    let w = start().await;
    let table = readme_table();
    let scenarios = scenarios(&w);
    assert_eq!(
        table.keys().collect::<Vec<_>>(),
        scenarios.keys().collect::<Vec<_>>(),
        "every documented code has a scenario"
    );
    let mut wrong = Vec::new();
    for (code, cases) in &scenarios {
        for c in cases {
            let args: Vec<&str> = c.args.iter().map(String::as_str).collect();
            let out = w.run_with(c.mode, &args, &c.env).await;
            if out.code != *code {
                wrong.push(format!(
                    "{} ({}): exit {} not {code}: {}",
                    c.what, table[code], out.code, out.stderr
                ));
            }
            if *code >= 2 && *code != 6 {
                assert!(
                    out.stderr.starts_with("shipdeck: ") || out.stderr.starts_with("error: "),
                    "{}: a message on stderr: {:?}",
                    c.what,
                    out.stderr
                );
            }
        }
    }
    // Argo CD answering 503 is "unreachable", in API mode.
    w.fault(serde_json::json!({"fault": "fail", "path": "/applications", "status": 503}))
        .await;
    let out = w.run(Mode::Api, &["status"]).await;
    if out.code != 7 {
        wrong.push(format!(
            "Argo CD answering 503: exit {} not 7: {}",
            out.code, out.stderr
        ));
    }
    w.clear_faults().await;
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
