//! `shipdeck metrics --output json` (issue 13) against the sandbox's own record, in API and
//! core mode. The oracle is independent of shipdeck: `kubectl get application -o json`
//! (history, deployedAt, sync policy), `kubectl get events -o json` (the Applications' health
//! changes and failed operations) and the system `git` in the sandbox's repository (commit
//! times of each app's path). Figures are recomputed here from those by the documented rules
//! and must match exactly; the sandbox's weeks of history must make them non-trivial.

mod cli_support;
mod common;

use cli_support::{MODES, start};
use serde_json::Value;
use std::collections::BTreeMap;
use std::process::Command;

fn kubectl_available() -> bool {
    Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn kubectl(kubeconfig: &str, args: &[&str]) -> Value {
    let out = Command::new("kubectl")
        .env("KUBECONFIG", kubeconfig)
        .args(["--context", "in-cluster"])
        .args(args)
        .args(["-o", "json"])
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("kubectl JSON")
}

fn git(repo: &str, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(args)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("git runs");
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn secs(t: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t)
        .expect("RFC 3339 time")
        .timestamp()
}

fn median(v: &[i64]) -> Option<i64> {
    let n = v.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(v[n / 2]),
        _ => Some((v[n / 2 - 1] + v[n / 2]).div_euclid(2)),
    }
}

fn p90(v: &[i64]) -> Option<i64> {
    let n = v.len();
    (n > 0).then(|| v[(9 * n).div_ceil(10).max(1) - 1])
}

/// What the oracle says about one app.
#[derive(Debug, PartialEq)]
struct Expected {
    count: usize,
    from_history: usize,
    from_git: usize,
    rollbacks: usize,
    lead_median: Option<i64>,
    lead_p90: Option<i64>,
    failed: usize,
    ttr_median: Option<i64>,
    restores: usize,
}

fn expected(app: &Value, events: &[&Value], repo: &str, since: i64, until: i64) -> Expected {
    let path = app["spec"]["source"]["path"].as_str().unwrap_or("");
    let branch = app["spec"]["source"]["targetRevision"]
        .as_str()
        .unwrap_or("HEAD");
    let ct = |rev: &str, p: Option<&str>| -> i64 {
        let mut a = vec!["log", "-1", "--format=%ct", rev];
        if let Some(p) = p {
            a.extend(["--", p]);
        }
        git(repo, &a).trim().parse().expect("commit time")
    };
    let mut history: Vec<&Value> = app["status"]["history"]
        .as_array()
        .unwrap()
        .iter()
        .collect();
    history.sort_by_key(|h| h["id"].as_i64());
    // (time, revision, rollback)
    let mut deploys: Vec<(i64, String, bool)> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for h in &history {
        let rev = h["revision"].as_str().unwrap().to_string();
        let at = secs(h["deployedAt"].as_str().unwrap());
        let rollback = match seen.last() {
            Some(prev) if *prev != rev => seen.contains(&rev) || ct(&rev, None) < ct(prev, None),
            _ => false,
        };
        deploys.push((at, rev.clone(), rollback));
        seen.push(rev);
    }
    let oldest = deploys.iter().map(|d| d.0).min().unwrap_or(i64::MAX);
    let auto = app["spec"]["syncPolicy"]["automated"].is_object();
    let mut git_deploys: Vec<i64> = Vec::new();
    if auto && history.len() >= 10 {
        for l in git(repo, &["log", "--format=%ct", branch, "--", path]).lines() {
            let t: i64 = l.trim().parse().unwrap();
            if t < oldest {
                git_deploys.push(t);
            }
        }
    }
    let in_period = |t: i64| t >= since && t <= until;
    let counted: Vec<&(i64, String, bool)> =
        deploys.iter().filter(|d| !d.2 && in_period(d.0)).collect();
    let mut leads: Vec<i64> = counted
        .iter()
        .map(|(at, rev, _)| at - ct(rev, Some(path)))
        .filter(|l| *l >= 0)
        .collect();
    leads.sort_unstable();
    // Forward deployments (history and Git), and the failure signals.
    let mut forward: Vec<i64> = deploys.iter().filter(|d| !d.2).map(|d| d.0).collect();
    forward.extend(git_deploys.iter().copied());
    forward.sort_unstable();
    let mut signals: Vec<i64> = deploys.iter().filter(|d| d.2).map(|d| d.0).collect();
    let mut health: Vec<(i64, String)> = Vec::new();
    for e in events {
        let at = secs(e["lastTimestamp"].as_str().unwrap());
        let msg = e["message"].as_str().unwrap_or("");
        if let Some((_, to)) = msg
            .strip_prefix("Updated health status:")
            .and_then(|r| r.split_once("->"))
        {
            health.push((at, to.trim().to_string()));
        } else if e["reason"] == "OperationCompleted"
            && (e["type"] == "Warning" || msg.contains(" failed"))
        {
            signals.push(at);
        }
    }
    let op = &app["status"]["operationState"];
    if (op["phase"] == "Failed" || op["phase"] == "Error")
        && let Some(t) = op["finishedAt"].as_str()
    {
        signals.push(secs(t));
    }
    health.sort();
    let mut degraded = false;
    let mut open: Option<i64> = None;
    let mut restores: Vec<i64> = Vec::new();
    for (at, to) in &health {
        let now = to == "Degraded";
        if now && !degraded {
            signals.push(*at);
        }
        degraded = now;
        if now {
            open.get_or_insert(*at);
        } else if to == "Healthy"
            && let Some(d) = open.take()
            && in_period(*at)
        {
            restores.push(at - d);
        }
    }
    restores.sort_unstable();
    // Each signal fails the latest forward deployment before it, within the window.
    let mut failed: Vec<i64> = Vec::new();
    for s in signals {
        if let Some(d) = forward.iter().rev().find(|d| **d < s)
            && s - d <= 3_600
            && in_period(*d)
            && !failed.contains(d)
        {
            failed.push(*d);
        }
    }
    let from_git = git_deploys.iter().filter(|t| in_period(**t)).count();
    Expected {
        count: counted.len() + from_git,
        from_history: counted.len(),
        from_git,
        rollbacks: deploys.iter().filter(|d| d.2 && in_period(d.0)).count(),
        lead_median: median(&leads),
        lead_p90: p90(&leads),
        failed: failed.len(),
        ttr_median: median(&restores),
        restores: restores.len(),
    }
}

fn got(f: &Value) -> Expected {
    Expected {
        count: f["deployments"]["count"].as_u64().unwrap() as usize,
        from_history: f["deployments"]["from_history"].as_u64().unwrap() as usize,
        from_git: f["deployments"]["from_git"].as_u64().unwrap() as usize,
        rollbacks: f["deployments"]["rollbacks"].as_u64().unwrap() as usize,
        lead_median: f["lead_time"]["median_seconds"].as_i64(),
        lead_p90: f["lead_time"]["p90_seconds"].as_i64(),
        failed: f["change_failure_rate"]["failed"].as_u64().unwrap() as usize,
        ttr_median: f["time_to_restore"]["median_seconds"].as_i64(),
        restores: f["time_to_restore"]["restores"].as_u64().unwrap() as usize,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_json_matches_kubectl_and_git_in_api_and_core_mode() {
    if !kubectl_available() {
        println!("SKIP metrics_truth: kubectl is not on PATH");
        return;
    }
    let w = start().await;
    let kc = w.var("KUBECONFIG");
    let repo = w.var("SHIPDECK_SANDBOX_REPO");
    for mode in MODES {
        let before = kubectl(&kc, &["get", "applications", "-n", "argocd"]);
        let events_before = kubectl(&kc, &["get", "events", "-n", "argocd"]);
        let out = w
            .run(mode, &["metrics", "--since", "30d", "--output", "json"])
            .await;
        assert_eq!(out.code, 0, "{mode:?}: {}", out.stderr);
        let report: Value = serde_json::from_str(&out.stdout).expect("metrics JSON");
        let after = kubectl(&kc, &["get", "applications", "-n", "argocd"]);
        let events_after = kubectl(&kc, &["get", "events", "-n", "argocd"]);
        let since = secs(report["since"].as_str().unwrap());
        let until = secs(report["until"].as_str().unwrap());
        assert_eq!(until - since, 30 * 86_400);
        assert_eq!(report["window_seconds"], 3_600);
        let by_name = |list: &Value| -> BTreeMap<String, Value> {
            list["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    (
                        a["metadata"]["name"].as_str().unwrap().to_string(),
                        a.clone(),
                    )
                })
                .collect()
        };
        let (b, a) = (by_name(&before), by_name(&after));
        let events_of = |list: &Value, name: &str| -> Vec<Value> {
            list["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| {
                    e["involvedObject"]["kind"] == "Application"
                        && e["involvedObject"]["name"] == name
                })
                .cloned()
                .collect()
        };
        let apps = report["apps"].as_array().expect("apps");
        assert_eq!(apps.len(), a.len(), "{mode:?}: one row per application");
        let mut compared = 0;
        let (mut any_rollback, mut any_failed, mut any_restore, mut any_git) =
            (false, false, false, false);
        for f in apps {
            let name = f["app"].as_str().unwrap();
            let (Some(x), Some(y)) = (b.get(name), a.get(name)) else {
                panic!("{mode:?}: {name} is not an Application");
            };
            let (eb, ea) = (
                events_of(&events_before, name),
                events_of(&events_after, name),
            );
            // The controllers run on: compare the apps that held still while shipdeck read.
            if x["status"]["history"] != y["status"]["history"]
                || x["status"]["operationState"] != y["status"]["operationState"]
                || eb.len() != ea.len()
            {
                continue;
            }
            assert_eq!(
                f["environment"], y["metadata"]["labels"]["env"],
                "{mode:?}: {name}"
            );
            let refs: Vec<&Value> = ea.iter().collect();
            let want = expected(y, &refs, &repo, since, until);
            let have = got(f);
            assert_eq!(have, want, "{mode:?}: {name}: {f:#}");
            if want.count > 0 {
                let rate = f["change_failure_rate"]["rate"].as_f64().expect("rate");
                let exact = want.failed as f64 / want.count as f64;
                assert!(
                    (rate - exact).abs() < 1e-4,
                    "{mode:?}: {name}: {rate} vs {exact}"
                );
                assert!(f["lead_time"]["unknown"].is_null() || want.lead_median.is_none());
            } else {
                assert!(f["change_failure_rate"]["rate"].is_null());
                assert!(f["change_failure_rate"]["unknown"].is_string());
            }
            if want.restores == 0 {
                assert!(
                    f["time_to_restore"]["unknown"].is_string(),
                    "{name}: unknown says why"
                );
            }
            any_rollback |= want.rollbacks > 0;
            any_failed |= want.failed > 0;
            any_restore |= want.restores > 0;
            any_git |= want.from_git > 0;
            compared += 1;
        }
        assert!(compared >= 12, "{mode:?}: only {compared} apps held still");
        // Weeks of history: the figures are not all zero.
        assert!(any_rollback, "{mode:?}: no rollback in the seeded history");
        assert!(
            any_failed,
            "{mode:?}: no failed deployment in the seeded history"
        );
        assert!(any_restore, "{mode:?}: no restore in the seeded history");
        assert!(any_git, "{mode:?}: no deployment known only from Git");
    }
}
