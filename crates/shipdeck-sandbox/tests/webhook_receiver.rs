//! The webhook receiver (`/_sandbox/webhooks`) over real HTTP: it records what it is sent,
//! answers an armed fault exactly the number of times asked, lists by name, and the env
//! file names its URL.

use serde_json::{Value, json};
use shipdeck_sandbox::{Sandbox, SandboxOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_answers_faults_and_lists() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sb = Sandbox::start(SandboxOptions::default())
        .await
        .expect("sandbox starts");
    let env = std::fs::read_to_string(sb.env_path()).expect("env file");
    let hook = format!("{}/_sandbox/webhooks/shipdeck", sb.url);
    assert!(
        env.contains(&format!("export SHIPDECK_SANDBOX_WEBHOOK_URL='{hook}'"))
            || env.contains(&format!("export SHIPDECK_SANDBOX_WEBHOOK_URL={hook}")),
        "env file names the receiver: {env}"
    );
    let http = reqwest::Client::new();

    let r = http
        .post(format!("{}/_sandbox/webhooks/other/fault", sb.url))
        .json(&json!({"status": 500, "times": 2}))
        .send()
        .await
        .expect("arm");
    assert_eq!(r.status(), 200);
    let mut answered = Vec::new();
    for i in 0..3 {
        let r = http
            .post(format!("{}/_sandbox/webhooks/other", sb.url))
            .header("x-try", i.to_string())
            .json(&json!({"text": format!("try {i}")}))
            .send()
            .await
            .expect("post");
        answered.push(r.status().as_u16());
    }
    assert_eq!(answered, vec![500, 500, 200]);
    let r = http
        .post(&hook)
        .body("not json")
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap_or_default(), "ok");

    let all: Value = http
        .get(format!("{}/_sandbox/webhooks", sb.url))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let got = all["received"].as_array().expect("received");
    assert_eq!(got.len(), 4);
    assert_eq!(got[2]["body"]["text"], "try 2");
    assert_eq!(got[2]["status"], 200);
    assert_eq!(got[0]["status"], 500);
    assert_eq!(got[1]["headers"]["x-try"], "1");
    assert_eq!(got[3]["body"], "not json");

    let one: Value = http
        .get(format!("{}/_sandbox/webhooks/shipdeck", sb.url))
        .send()
        .await
        .expect("list one")
        .json()
        .await
        .expect("json");
    assert_eq!(one["received"].as_array().map(Vec::len), Some(1));

    let bad = http
        .post(format!("{}/_sandbox/webhooks/x/fault", sb.url))
        .json(&json!({"status": 200, "times": 1}))
        .send()
        .await
        .expect("bad fault");
    assert_eq!(bad.status(), 400);

    http.delete(format!("{}/_sandbox/webhooks", sb.url))
        .send()
        .await
        .expect("clear");
    let all: Value = http
        .get(format!("{}/_sandbox/webhooks", sb.url))
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    assert_eq!(all["received"].as_array().map(Vec::len), Some(0));
    sb.stop().await;
}
