//! Listing budget (issue 11): N applications (default 10,000) served by `shipdeck sandbox
//! --apps N` running as its own process from the release binary, measured only once the
//! sandbox is settled, each figure beside a peer's from the same run and the ratio.
//! Prints figures; asserts nothing (timings belong here, not in tests).
//!
//! Run: `cargo bench --bench listing -- 50000`.
//!
//! Medians of `RUNS` paired runs. "First full estate" is the console's store holding every
//! app (the `Resync` the board renders from), measured in this process with the product's
//! own sources; rendering a frame from it is `benches/tui_render.rs`'s. Peak RSS is that of
//! a `shipdeck status` process (wait4's ru_maxrss), the headless twin of the console's load.

use serde_json::Value;
use shipdeck::model::Update;
use shipdeck::ops::estate::Estate;
use shipdeck::sources::ArgoSource;
use shipdeck::sources::argocd::{ArgoApi, ArgoApiOptions};
use shipdeck::sources::kube::{CoreArgo, CoreOptions};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const RUNS: usize = 3;

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// `export KEY='value'` lines of the sandbox's env file.
fn read_env(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let l = l.trim().strip_prefix("export ").unwrap_or(l.trim());
            let (k, v) = l.split_once('=')?;
            Some((k.to_string(), v.trim_matches(['\'', '"']).to_string()))
        })
        .collect()
}

/// Run a command to the end: wall time, peak RSS (MiB) and stdout size.
fn run_measured(cmd: &mut Command) -> anyhow::Result<(Duration, f64, usize)> {
    let started = Instant::now();
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
    let mut out = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = out.read_to_end(&mut buf);
        buf.len()
    });
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: rusage is plain data; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let took = started.elapsed();
    let bytes = reader.join().unwrap_or(0);
    if r != pid || !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        anyhow::bail!("{cmd:?} failed (status {status})");
    }
    Ok((took, usage.ru_maxrss as f64 / 1024.0, bytes))
}

async fn first_resync(src: &impl ArgoSource) -> (Duration, usize) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let started = Instant::now();
    let task = src.watch_applications(tx);
    let mut estate = Estate::new();
    while let Some(u) = rx.recv().await {
        let done = matches!(u, Update::Resync { .. });
        estate.apply(u);
        if done {
            break;
        }
    }
    let took = started.elapsed();
    task.abort();
    (took, estate.len())
}

struct Row {
    measure: String,
    ours: String,
    peer_name: String,
    peer: String,
    ratio: String,
}

fn row(measure: &str, ours: Duration, peer_name: &str, peer: Duration) -> Row {
    Row {
        measure: measure.into(),
        ours: secs(ours),
        peer_name: peer_name.into(),
        peer: secs(peer),
        ratio: format!("{:.2}x", ours.as_secs_f64() / peer.as_secs_f64().max(1e-9)),
    }
}

fn main() -> anyhow::Result<()> {
    let apps: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let bin = env!("CARGO_BIN_EXE_shipdeck");
    let dir = tempfile::tempdir()?;
    println!("listing benchmark: {apps} applications, {bin}");

    // The sandbox as its own process, as an operator would run it.
    let started = Instant::now();
    let mut sandbox = Command::new(bin)
        .args(["sandbox", "--seed", "1", "--apps", &apps.to_string()])
        .arg("--state-dir")
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let mut ready = String::new();
    {
        let out = sandbox
            .stdout
            .as_mut()
            .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
        let mut b = [0u8; 1];
        while !ready.contains('\n') && out.read(&mut b)? == 1 {
            ready.push(b[0] as char);
        }
    }
    let start_time = started.elapsed();
    let env = read_env(&dir.path().join("env"));
    let server = env.get("ARGOCD_SERVER").cloned().unwrap_or_default();
    let token = env.get("ARGOCD_AUTH_TOKEN").cloned().unwrap_or_default();
    let kubeconfig = env.get("KUBECONFIG").cloned().unwrap_or_default();
    println!("  sandbox ready in {} ({})", secs(start_time), ready.trim());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        // Settled: every app listed and reconciled, no operation running.
        let http = reqwest::Client::new();
        let settle_started = Instant::now();
        loop {
            let body: Value = http
                .get(format!(
                    "{server}/api/v1/applications?fields=items.status.reconciledAt,items.operation"
                ))
                .bearer_auth(&token)
                .send()
                .await?
                .json()
                .await?;
            let items = body["items"].as_array().cloned().unwrap_or_default();
            if items.len() == apps
                && items
                    .iter()
                    .all(|a| a["status"]["reconciledAt"].is_string() && a["operation"].is_null())
            {
                break;
            }
            if settle_started.elapsed() > Duration::from_secs(600) {
                anyhow::bail!("the sandbox did not settle in 10 minutes");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        println!("  settled after {}", secs(settle_started.elapsed()));
        let sandbox_rss = std::fs::read_to_string(format!("/proc/{}/status", sandbox.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
            })
            .map(|kb| kb / 1024.0);

        let mut rows = Vec::new();
        let envs: Vec<(String, String)> = env.clone().into_iter().collect();
        let cache = tempfile::tempdir()?;
        let kubectl = |args: &[&str]| {
            let mut c = Command::new("kubectl");
            c.arg("--kubeconfig")
                .arg(&kubeconfig)
                .arg("--cache-dir")
                .arg(cache.path())
                .args(args);
            c
        };
        let shipdeck = |args: &[&str]| {
            let mut c = Command::new(bin);
            c.envs(envs.iter().cloned()).args(args);
            c
        };

        // Peer for the first estate: curl of the full list, then a JSON parse.
        let mut curl = Vec::new();
        let mut api_first = Vec::new();
        let mut core_first = Vec::new();
        let mut count = (0, 0);
        let api = ArgoApi::new(ArgoApiOptions {
            server: server.clone(),
            token: Some(shipdeck::secrets::Secret::new(token.clone())),
            ..Default::default()
        })?;
        let core = CoreArgo::connect(CoreOptions {
            kubeconfig: Some(kube::config::Kubeconfig::read_from(&kubeconfig)?),
            ..Default::default()
        })
        .await?;
        for _ in 0..RUNS {
            let t = Instant::now();
            let out = Command::new("curl")
                .args(["-sf", "-H"])
                .arg(format!("Authorization: Bearer {token}"))
                .arg(format!("{server}/api/v1/applications"))
                .output()?;
            let v: Value = serde_json::from_slice(&out.stdout)?;
            curl.push(t.elapsed());
            anyhow::ensure!(v["items"].as_array().map(Vec::len) == Some(apps));
            drop(v);
            let (d, n) = first_resync(&api).await;
            api_first.push(d);
            count.0 = n;
            let (d, n) = first_resync(&core).await;
            core_first.push(d);
            count.1 = n;
        }
        anyhow::ensure!(count == (apps, apps), "first estates held {count:?} apps");
        let curl = median(curl);
        rows.push(row(
            "first full estate, API mode",
            median(api_first),
            "curl list + JSON parse",
            curl,
        ));
        rows.push(row(
            "first full estate, core mode",
            median(core_first),
            "curl list + JSON parse",
            curl,
        ));

        // Headless: status JSON and table, API and core mode, against kubectl.
        let mut rss = Vec::new();
        let pairs: [(&str, Vec<&str>, &str, Vec<&str>); 4] = [
            (
                "status --output json (API)",
                vec!["status", "--output", "json"],
                "kubectl get applications -A -o json",
                vec!["get", "applications", "-A", "-o", "json"],
            ),
            (
                "status table (API)",
                vec!["status"],
                "kubectl get applications -A",
                vec!["get", "applications", "-A"],
            ),
            (
                "status --output json (core)",
                vec!["--core", "status", "--output", "json"],
                "kubectl get applications -A -o json",
                vec!["get", "applications", "-A", "-o", "json"],
            ),
            (
                "status table (core)",
                vec!["--core", "status"],
                "kubectl get applications -A",
                vec!["get", "applications", "-A"],
            ),
        ];
        for (name, ours, peer_name, peer) in pairs {
            let mut a = Vec::new();
            let mut b = Vec::new();
            let mut peak = (0.0f64, 0.0f64);
            for _ in 0..RUNS {
                let (d, r, _) = run_measured(&mut shipdeck(&ours))?;
                a.push(d);
                peak.0 = peak.0.max(r);
                let (d, r, _) = run_measured(&mut kubectl(&peer))?;
                b.push(d);
                peak.1 = peak.1.max(r);
            }
            rows.push(row(name, median(a), peer_name, median(b)));
            rss.push((name, peak));
        }
        for (name, (ours, peer)) in rss {
            rows.push(Row {
                measure: format!("peak RSS, {name}"),
                ours: format!("{ours:.0} MiB"),
                peer_name: "kubectl (same listing)".into(),
                peer: format!("{peer:.0} MiB"),
                ratio: format!("{:.2}x", ours / peer.max(1e-9)),
            });
        }

        println!();
        println!("| measure ({apps} apps) | shipdeck | peer | peer figure | ratio |");
        println!("|---|---|---|---|---|");
        for r in &rows {
            println!(
                "| {} | {} | {} | {} | {} |",
                r.measure, r.ours, r.peer_name, r.peer, r.ratio
            );
        }
        println!();
        println!(
            "sandbox: ready in {}, RSS {} once settled",
            secs(start_time),
            sandbox_rss
                .map(|m| format!("{m:.0} MiB"))
                .unwrap_or_else(|| "unknown".into())
        );
        Ok(())
    });
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(sandbox.id().to_string())
        .status();
    let _ = sandbox.wait();
    result
}
