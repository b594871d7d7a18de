//! Listing budget (DESIGN.md "Budgets"): 10,000 applications across three environments,
//! measured against the sandbox on loopback and compared in the same run with a peer,
//! `kubectl get applications -A`. Prints figures; asserts nothing (timings belong here,
//! not in tests).
//!
//! Run: `cargo bench --bench listing` (optionally `-- 20000` for another size).

use shipdeck::model::Update;
use shipdeck::ops::estate::Estate;
use shipdeck::sandbox::{Sandbox, SandboxOptions};
use shipdeck::sources::ArgoSource;
use shipdeck::sources::argocd::{ArgoApi, ArgoApiOptions};
use shipdeck::sources::kube::{CoreArgo, CoreOptions};
use std::process::Command;
use std::time::{Duration, Instant};

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// Peak RSS of this process so far, from /proc (Linux), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

async fn first_resync(src: &impl ArgoSource) -> (Duration, usize, Estate) {
    let (tx, mut rx) = tokio::sync::mpsc::channel(1024);
    let started = Instant::now();
    let task = src.watch_applications(tx);
    let mut estate = Estate::new();
    loop {
        match rx.recv().await {
            Some(u @ Update::Resync { .. }) => {
                estate.apply(u);
                break;
            }
            Some(u) => estate.apply(u),
            None => break,
        }
    }
    let took = started.elapsed();
    task.abort();
    let n = estate.len();
    (took, n, estate)
}

fn main() -> anyhow::Result<()> {
    let apps: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        println!("listing benchmark: {apps} applications");
        let started = Instant::now();
        let sandbox = Sandbox::start(SandboxOptions {
            apps: Some(apps),
            time_scale: 1.0,
            ..Default::default()
        })
        .await?;
        println!(
            "  sandbox start ({apps} apps):              {}",
            ms(started.elapsed())
        );
        let rss_before = peak_rss_mib();

        let api = ArgoApi::new(ArgoApiOptions {
            server: sandbox.url.clone(),
            token: Some(shipdeck::secrets::Secret::new(
                sandbox
                    .world
                    .users
                    .token(shipdeck::sandbox::auth::Role::Admin),
            )),
            ..Default::default()
        })?;
        let t = Instant::now();
        let listed = api.list_applications().await?;
        println!(
            "  API mode list (REST):                     {} ({} apps)",
            ms(t.elapsed()),
            listed.len()
        );
        drop(listed);
        let (took, n, estate) = first_resync(&api).await;
        println!(
            "  API mode watch, first full estate (SSE):  {} ({n} apps, {} services)",
            ms(took),
            estate.services().count()
        );
        drop(estate);

        let kubeconfig = kube::config::Kubeconfig::read_from(sandbox.kubeconfig_path())?;
        let core = CoreArgo::connect(CoreOptions {
            kubeconfig: Some(kubeconfig),
            ..Default::default()
        })
        .await?;
        let t = Instant::now();
        let listed = core.list_applications().await?;
        println!(
            "  core mode list (kube-rs):                 {} ({} apps)",
            ms(t.elapsed()),
            listed.len()
        );
        drop(listed);
        let (took, n, _estate) = first_resync(&core).await;
        println!(
            "  core mode watch, first full estate:       {} ({n} apps)",
            ms(took)
        );

        if let (Some(before), Some(after)) = (rss_before, peak_rss_mib()) {
            println!("  peak RSS: {after:.0} MiB (sandbox alone before clients: {before:.0} MiB)");
        }

        // The peer: the real kubectl on the same sandbox, same run.
        let cache = tempfile::tempdir()?;
        let t = Instant::now();
        let out = Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(sandbox.kubeconfig_path())
            .arg("--cache-dir")
            .arg(cache.path())
            .args(["get", "applications", "-A", "--no-headers"])
            .output();
        match out {
            Ok(o) if o.status.success() => {
                let lines = o.stdout.iter().filter(|b| **b == b'\n').count();
                println!(
                    "  peer: kubectl get applications -A:       {} ({lines} rows)",
                    ms(t.elapsed())
                );
            }
            Ok(o) => println!(
                "  peer: kubectl failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => println!("  peer: kubectl not run ({e})"),
        }
        sandbox.stop().await;
        Ok(())
    })
}
