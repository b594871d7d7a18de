//! Soak: the default estate with churn and builds for a bounded wall time at a time scale,
//! so that an hour (or more) of simulated activity runs in minutes. Prints the process RSS
//! at start and end and the size of every store the sandbox keeps (objects per type, watch
//! history, events, CI runs, Git caches), which must stay bounded however long it runs.
//!
//! `cargo bench --bench soak -- [--minutes M] [--hours H]`: M wall minutes (default 3)
//! holding H simulated hours (default 1). Not run by the tests.

use shipdeck::sandbox::ci::{NewRun, Origin};
use shipdeck::sandbox::estate::CiAction;
use shipdeck::sandbox::store::{DEPLOYMENTS, PODS};
use shipdeck::sandbox::{ARGOCD_NAMESPACE, IN_CLUSTER, Sandbox, SandboxOptions};
use std::time::{Duration, Instant};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn arg(name: &str, default: f64) -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn report(sb: &Sandbox, label: &str, started: Instant) {
    let stats = sb.world.store.stats();
    let (listings, parsed) = sb.world.repo.cache_sizes();
    let runs = sb.world.ci.runs();
    let log_lines: usize = runs
        .iter()
        .map(|r| r.log.len() + r.jobs.iter().map(|j| j.log.len()).sum::<usize>())
        .sum();
    println!(
        "[{label} +{:.0}s] RSS {:.1} MiB | watch history {} | event order {} | CI runs {} ({} log lines) | git listings {} parsed blobs {}",
        started.elapsed().as_secs_f64(),
        rss_kib() as f64 / 1024.0,
        stats.history,
        stats.event_order,
        runs.len(),
        log_lines,
        listings,
        parsed,
    );
    let line: Vec<String> = stats
        .objects
        .iter()
        .filter(|(c, _, _)| c == IN_CLUSTER)
        .map(|(_, p, n)| format!("{p} {n}"))
        .collect();
    println!("    objects ({IN_CLUSTER}): {}", line.join(", "));
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let minutes = arg("--minutes", 3.0).max(0.1);
    let hours = arg("--hours", 1.0).max(0.01);
    let wall = Duration::from_secs_f64(minutes * 60.0);
    let scale = wall.as_secs_f64() / (hours * 3600.0);
    println!(
        "soak: default estate, {hours} simulated hour(s) in {minutes} wall minute(s) (time scale {scale:.5})"
    );
    let sb = match Sandbox::start(SandboxOptions {
        time_scale: scale,
        ..Default::default()
    })
    .await
    {
        Ok(sb) => sb,
        Err(e) => {
            eprintln!("sandbox did not start: {e}");
            std::process::exit(1);
        }
    };
    let started = Instant::now();
    report(&sb, "start", started);
    let rss_start = rss_kib();
    let services: Vec<String> = sb.world.estate.services();
    let build = sb
        .world
        .estate
        .github
        .workflows
        .iter()
        .find(|w| w.action == CiAction::Build)
        .cloned();
    // One build every 2 simulated minutes, a pod killed every 20 simulated seconds, a
    // manual sync of every app every 10 simulated minutes.
    let tick = sb.world.clock.wall(Duration::from_secs(20));
    let mut n: u64 = 0;
    let mut next_report = Instant::now() + wall / 6;
    while started.elapsed() < wall {
        n += 1;
        if n.is_multiple_of(6)
            && let Some(w) = &build
        {
            let service = services[(n as usize / 6) % services.len().max(1)].clone();
            let head = sb.world.repo.resolve("develop").unwrap_or_default();
            sb.world.ci.start(
                &sb.world,
                NewRun {
                    origin: Origin::Github {
                        workflow_id: 1,
                        file: w.file.clone(),
                    },
                    name: w.name.clone(),
                    action: Some(CiAction::Build),
                    inputs: [("service".to_string(), service)].into_iter().collect(),
                    branch: "develop".into(),
                    head_sha: head,
                    head_message: "soak build".into(),
                    actor: "soak".into(),
                    jobs: vec![],
                },
            );
        }
        // Churn: a pod dies, the Deployment controller replaces it.
        let (pods, _) = sb.world.store.list(IN_CLUSTER, PODS, None);
        if !pods.is_empty() {
            let p = &pods[(n as usize * 7919) % pods.len()];
            let ns = p["metadata"]["namespace"].as_str().unwrap_or("");
            let name = p["metadata"]["name"].as_str().unwrap_or("");
            let _ = sb.world.store.delete(IN_CLUSTER, PODS, ns, name);
        }
        if n.is_multiple_of(30) {
            let (apps, _) = sb.world.store.list(
                IN_CLUSTER,
                shipdeck::sandbox::store::APPLICATIONS,
                Some(ARGOCD_NAMESPACE),
            );
            for a in apps.iter() {
                let name = a["metadata"]["name"].as_str().unwrap_or("").to_string();
                let _ = sb.world.store.mutate(
                    IN_CLUSTER,
                    shipdeck::sandbox::store::APPLICATIONS,
                    ARGOCD_NAMESPACE,
                    &name,
                    false,
                    |o| {
                        if o.get("operation").is_some_and(|x| !x.is_null()) {
                            return Ok(false);
                        }
                        o["operation"] = serde_json::json!({
                            "sync": {"prune": false},
                            "initiatedBy": {"username": "soak"},
                        });
                        Ok(true)
                    },
                );
            }
        }
        if Instant::now() >= next_report {
            report(&sb, "soak", started);
            next_report += wall / 6;
        }
        tokio::time::sleep(tick).await;
    }
    let (deps, _) = sb.world.store.list(IN_CLUSTER, DEPLOYMENTS, None);
    report(&sb, "end", started);
    let rss_end = rss_kib();
    println!(
        "soak done: {} ticks, {} deployments; RSS start {:.1} MiB, end {:.1} MiB",
        n,
        deps.len(),
        rss_start as f64 / 1024.0,
        rss_end as f64 / 1024.0
    );
    sb.stop().await;
}
