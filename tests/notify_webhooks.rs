//! Notifications (issue 12): `[[notify]]` webhooks hear about actions as a fan-out of the
//! audit log. The real binary against a sandbox started here; what arrived is read from the
//! sandbox's webhook receiver (`/_sandbox/webhooks`, the oracle for the messages), and the
//! facts they must carry (who, from and to revision, images) from the Application as the
//! sandbox's Kubernetes API holds it.

mod cli_support;

use cli_support::{Mode, World, start};
use serde_json::{Value, json};

async fn received(w: &World, name: &str) -> Vec<Value> {
    let v: Value = reqwest::get(format!("{}/_sandbox/webhooks/{name}", w.sandbox.url))
        .await
        .expect("receiver list")
        .json()
        .await
        .expect("json");
    v["received"].as_array().cloned().unwrap_or_default()
}

/// Messages a webhook accepted (answered 200), bodies only.
async fn accepted(w: &World, name: &str) -> Vec<Value> {
    received(w, name)
        .await
        .into_iter()
        .filter(|r| r["status"] == 200)
        .map(|r| r["body"].clone())
        .collect()
}

fn config(w: &World, json_url: &str) -> String {
    w.config(
        "notify.toml",
        &format!(
            r#"
[[notify]]
name = "team-slack"
url_env = "SHIPDECK_TEST_SLACK"
kind = "slack"
events = ["approved", "synced", "rolled-back"]

[[notify]]
url = "{json_url}"
kind = "json"
events = ["synced", "rolled-back", "failed"]
"#
        ),
    )
}

fn slack_env(w: &World) -> Vec<(&'static str, String)> {
    vec![(
        "SHIPDECK_TEST_SLACK",
        format!("{}/_sandbox/webhooks/slack", w.sandbox.url),
    )]
}

/// The image Git wants for the app's Deployment, as Argo CD's managed-resources says.
async fn target_image(w: &World, app: &str) -> String {
    let r = reqwest::Client::new()
        .get(format!(
            "{}/api/v1/applications/{app}/managed-resources",
            w.var("ARGOCD_SERVER")
        ))
        .bearer_auth(w.var("ARGOCD_AUTH_TOKEN"))
        .send()
        .await
        .expect("managed-resources");
    let v: Value = r.json().await.expect("json");
    let d = v["items"]
        .as_array()
        .and_then(|items| items.iter().find(|i| i["kind"] == "Deployment"))
        .cloned()
        .expect("a Deployment");
    let target: Value =
        serde_json::from_str(d["targetState"].as_str().expect("targetState")).expect("json");
    target["spec"]["template"]["spec"]["containers"][0]["image"]
        .as_str()
        .expect("image")
        .to_string()
}

fn deployed(app: &Value) -> Option<String> {
    app["status"]["history"]
        .as_array()
        .and_then(|h| h.last())
        .and_then(|e| e["revision"].as_str())
        .map(str::to_owned)
}

fn images(app: &Value) -> Vec<Value> {
    app["status"]["summary"]["images"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Slack's `section` fields as title -> text.
fn slack_fields(body: &Value) -> std::collections::BTreeMap<String, String> {
    body["blocks"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|b| b["fields"].as_array().cloned().unwrap_or_default())
        .filter_map(|f| {
            let t = f["text"].as_str()?;
            let (title, value) = t.split_once('\n')?;
            Some((title.trim_matches('*').to_string(), value.to_string()))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sync_a_rollback_and_a_failure_reach_the_webhooks_with_the_facts_and_retries_deliver_once()
 {
    let w = start().await;
    let cfg = config(&w, &format!("{}/_sandbox/webhooks/json", w.sandbox.url));
    let env = slack_env(&w);

    // A gated prod sync, approved, waited for (API mode).
    let rows = w.status(Mode::Api).await;
    let app = rows
        .iter()
        .find(|r| r["environment"] == "prod" && r["out_of_sync"] == "pending-change")
        .and_then(|r| r["name"].as_str())
        .map(str::to_owned)
        .expect("a prod app waiting for a sync");
    let before = w.application(&app).await;
    let from = deployed(&before).expect("a deployed revision");
    let out = w
        .run_with(
            Mode::Api,
            &[
                "--config",
                &cfg,
                "sync",
                &app,
                "--approve",
                &app,
                "--reason",
                "ship <!channel> & co",
                "--wait",
                "--timeout",
                "120",
            ],
            &env,
        )
        .await;
    assert_eq!(out.code, 0, "sync: {}\n{}", out.stdout, out.stderr);
    assert!(
        !out.stderr.contains("warning: notification"),
        "all delivered before exit: {}",
        out.stderr
    );
    let after = w.application(&app).await;
    let to = after["status"]["operationState"]["syncResult"]["revision"]
        .as_str()
        .expect("synced revision")
        .to_string();
    // Who: the operator name this shipdeck was given (cli_support runs it as USER
    // `fail-closed`, no `operator` in the config). In API mode Argo CD itself records the
    // token's account in initiatedBy; the message names the shipdeck operator, as the audit
    // log does.
    let who = "fail-closed".to_string();
    assert_ne!(from, to, "the sync moved the app");

    // json: one `synced` object, every documented field, the facts as Kubernetes has them.
    let json_msgs = accepted(&w, "json").await;
    assert_eq!(json_msgs.len(), 1, "{json_msgs:#?}");
    let m = &json_msgs[0];
    for k in [
        "schema",
        "event",
        "action",
        "outcome",
        "app",
        "environment",
        "instance",
        "who",
        "from_revision",
        "to_revision",
        "images",
        "reason",
        "detail",
        "approval_id",
        "at",
    ] {
        assert!(m.get(k).is_some(), "field {k} missing: {m}");
    }
    assert_eq!(m["schema"], "shipdeck.notification/v1");
    assert_eq!(m["event"], "synced");
    assert_eq!(m["outcome"], "succeeded");
    assert_eq!(m["app"], app.as_str());
    assert_eq!(m["environment"], "prod");
    assert_eq!(m["who"], who.as_str());
    assert_eq!(m["from_revision"], from.as_str());
    assert_eq!(m["to_revision"], to.as_str());
    assert_eq!(m["reason"], "ship <!channel> & co");
    let imgs = images(&after);
    assert!(!imgs.is_empty(), "the sandbox reports images");
    assert_eq!(m["images"], Value::Array(imgs.clone()));
    let hdr = &received(&w, "json").await[0]["headers"];
    assert_eq!(hdr["content-type"], "application/json");

    // Slack: an `approved` then a `synced` message in Slack's format, escaped.
    let slack = accepted(&w, "slack").await;
    assert_eq!(slack.len(), 2, "{slack:#?}");
    assert!(
        slack[0]["text"]
            .as_str()
            .is_some_and(|t| t.contains(&format!("{who} approved {app} in prod"))),
        "{}",
        slack[0]
    );
    let synced = &slack[1];
    let text = synced["text"].as_str().unwrap_or_default();
    assert!(
        text.contains(&format!(
            "{who} synced {app} in prod ({} → {})",
            &from[..7],
            &to[..7]
        )),
        "{text}"
    );
    let f = slack_fields(synced);
    assert_eq!(f.get("App"), Some(&app));
    assert_eq!(f.get("Environment").map(String::as_str), Some("prod"));
    assert_eq!(f.get("Who"), Some(&who));
    assert_eq!(f.get("From"), Some(&from));
    assert_eq!(f.get("To"), Some(&to));
    assert_eq!(f.get("Outcome").map(String::as_str), Some("succeeded"));
    assert_eq!(
        f.get("Reason").map(String::as_str),
        Some("ship &lt;!channel&gt; &amp; co"),
        "Slack's control characters are escaped"
    );
    let img0 = imgs[0].as_str().unwrap_or_default();
    assert!(f.get("Image").is_some_and(|i| i.contains(img0)), "{f:?}");

    // A rollback (core mode) while the json webhook answers 500 twice: retried, delivered
    // exactly once.
    let r = reqwest::Client::new()
        .post(format!("{}/_sandbox/webhooks/json/fault", w.sandbox.url))
        .json(&json!({"status": 500, "times": 2}))
        .send()
        .await
        .expect("arm fault");
    assert!(r.status().is_success());
    let rows = w.status(Mode::Core).await;
    let dev = rows
        .iter()
        .find(|r| r["environment"] == "dev" && r["auto_sync"] == true && r["sync"] == "Synced")
        .and_then(|r| r["name"].as_str())
        .map(str::to_owned)
        .expect("an auto-synced dev app");
    let before = w.application(&dev).await;
    let from = deployed(&before).expect("deployed");
    let out = w
        .run_with(
            Mode::Core,
            &[
                "--config",
                &cfg,
                "rollback",
                &dev,
                "--disable-auto-sync",
                "--wait",
                "--timeout",
                "120",
            ],
            &env,
        )
        .await;
    assert_eq!(out.code, 0, "rollback: {}\n{}", out.stdout, out.stderr);
    assert!(
        !out.stderr.contains("warning: notification"),
        "{}",
        out.stderr
    );
    let after = w.application(&dev).await;
    let to = deployed(&after).expect("deployed after");
    let all = received(&w, "json").await;
    let statuses: Vec<i64> = all
        .iter()
        .filter(|r| r["body"]["app"] == dev.as_str())
        .map(|r| r["status"].as_i64().unwrap_or_default())
        .collect();
    assert_eq!(statuses, vec![500, 500, 200], "two refused, one delivered");
    let m = &accepted(&w, "json").await[1];
    assert_eq!(m["event"], "rolled-back");
    assert_eq!(m["action"], "rollback");
    assert_eq!(m["app"], dev.as_str());
    assert_eq!(m["environment"], "dev");
    assert_eq!(m["from_revision"], from.as_str());
    assert_eq!(m["to_revision"], to.as_str());
    let slack = accepted(&w, "slack").await;
    assert_eq!(slack.len(), 3, "{slack:#?}");
    assert!(
        slack[2]["text"]
            .as_str()
            .is_some_and(|t| t.contains(&format!("rolled back {dev} in dev"))),
        "{}",
        slack[2]
    );

    // A sync whose rollout fails: `failed`, with Argo CD's reason, and no image claimed
    // (the live ones are the old ones).
    let rows = w.status(Mode::Api).await;
    let broken = rows
        .iter()
        .find(|r| {
            r["environment"] == "prod"
                && r["out_of_sync"] == "pending-change"
                && r["name"] != app.as_str()
        })
        .and_then(|r| r["name"].as_str())
        .map(str::to_owned)
        .expect("a second prod app waiting for a sync");
    let image = target_image(&w, &broken).await;
    let r = reqwest::Client::new()
        .post(format!("{}/_sandbox/image-fault", w.sandbox.url))
        .json(&json!({"image": image, "mode": "ImagePullBackOff"}))
        .send()
        .await
        .expect("image-fault");
    assert!(r.status().is_success());
    let out = w
        .run_with(
            Mode::Api,
            &[
                "--config",
                &cfg,
                "sync",
                &broken,
                "--approve",
                &broken,
                "--reason",
                "hotfix",
                "--wait",
                "--timeout",
                "600",
            ],
            &env,
        )
        .await;
    assert_eq!(out.code, 6, "the sync fails: {}", out.stderr);
    let msgs = accepted(&w, "json").await;
    let m = msgs.last().expect("a message");
    assert_eq!(m["event"], "failed", "{m}");
    assert_eq!(m["outcome"], "failed");
    assert_eq!(m["app"], broken.as_str());
    assert_eq!(m["images"], json!([]));
    let detail = m["detail"].as_str().unwrap_or_default();
    assert!(detail.contains(&image), "the failing image named: {detail}");
    assert!(
        out.stderr.contains(detail),
        "the same reason as the command's: {detail} / {}",
        out.stderr
    );
    w.sandbox.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_never_fails_the_action_it_warns_without_the_secret() {
    let w = start().await;
    // A port nothing listens on.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let cfg = w.config(
        "down.toml",
        &format!(
            r#"
[[notify]]
url = "http://127.0.0.1:{port}/services/T000/B000/XSECRETX"
kind = "json"
events = ["synced"]
"#
        ),
    );
    let rows = w.status(Mode::Core).await;
    let app = rows
        .iter()
        .find(|r| r["environment"] == "prod" && r["out_of_sync"] == "pending-change")
        .and_then(|r| r["name"].as_str())
        .map(str::to_owned)
        .expect("a prod app waiting for a sync");
    let out = w
        .run(
            Mode::Core,
            &[
                "--config",
                &cfg,
                "sync",
                &app,
                "--approve",
                &app,
                "--reason",
                "r",
                "--wait",
                "--timeout",
                "120",
            ],
        )
        .await;
    assert_eq!(out.code, 0, "the action succeeds: {}", out.stderr);
    let app_now = w.application(&app).await;
    assert_eq!(app_now["status"]["operationState"]["phase"], "Succeeded");
    assert!(
        out.stderr.contains(&format!(
            "warning: notification synced for {app} to http://127.0.0.1:{port}/… not delivered"
        )),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("after 4 attempts"), "{}", out.stderr);
    assert!(!out.stderr.contains("XSECRETX"), "{}", out.stderr);
    assert!(!out.stdout.contains("XSECRETX"));
    // Nor in the log file.
    let logs = walk(w.home.path())
        .into_iter()
        .chain(walk(w.data.path()))
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .any(|t| t.contains("XSECRETX"));
    assert!(!logs, "the webhook's secret path is written nowhere");
    w.sandbox.stop().await;
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else if p.extension().is_none_or(|x| x != "toml") {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_notify_config_is_refused_before_anything_is_contacted() {
    let w = start().await;
    let cases: &[(&str, &[&str])] = &[
        (
            "[[notify]]\nurl = \"http://x/h\"\nkind = \"json\"\nevents = [\"synched\"]\n",
            &[
                "notify[0].events[0]",
                "\"synched\" is not an event",
                "rolled-back",
            ],
        ),
        (
            "[[notify]]\nurl = \"http://x/h\"\nkind = \"teams\"\nevents = [\"synced\"]\n",
            &["notify[0].kind", "\"slack\", \"json\""],
        ),
        (
            "[[notify]]\nurl_env = \"SHIPDECK_TEST_UNSET_HOOK\"\nkind = \"slack\"\nevents = [\"synced\"]\n",
            &["notify[0].url_env", "SHIPDECK_TEST_UNSET_HOOK is not set"],
        ),
        (
            "[[notify]]\nurl = \"ftp://host/XSECRETX\"\nkind = \"json\"\nevents = [\"synced\"]\n",
            &["notify[0].url", "not http or https"],
        ),
        (
            "[[notify]]\nkind = \"json\"\nevents = [\"synced\"]\n",
            &["notify[0]", "exactly one of `url` and `url_env`"],
        ),
        (
            "[[notify]]\nurl = \"http://x/h\"\nkind = \"json\"\nevents = []\n",
            &["notify[0].events", "no events"],
        ),
    ];
    for (i, (text, want)) in cases.iter().enumerate() {
        let cfg = w.config(&format!("bad{i}.toml"), text);
        let out = w.run(Mode::Api, &["--config", &cfg, "status"]).await;
        assert_eq!(out.code, 2, "case {i}: {}", out.stderr);
        for s in *want {
            assert!(out.stderr.contains(s), "case {i}: {s:?} in {}", out.stderr);
        }
        assert!(!out.stderr.contains("XSECRETX"), "{}", out.stderr);
        assert!(out.stdout.is_empty(), "nothing listed: {}", out.stdout);
    }
    w.sandbox.stop().await;
}
