//! The app screen's tree holds every workload kind as Argo CD draws it: a StatefulSet's and
//! a Job's pods under them (the default estate's catalog has a postgres StatefulSet
//! `catalog-db` and a migration Job `catalog-db-migrate`), in API mode (the resource
//! tree's parentRefs) and core mode (owner references). The oracle is kubectl on the same
//! cluster: `kubectl get pods -o json` for who owns each pod, `kubectl get sts,jobs` for
//! the counts each workload row shows, `kubectl rollout status` for the StatefulSet's
//! line, `kubectl get events` for what Enter on the Job shows. Live: with the screen open,
//! a StatefulSet rollout started under it (a new image that cannot be pulled, so it stays
//! in the middle) is drawn as kubectl has it, without a key pressed.

mod common;

use common::sandbox_scaled;
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use serde_json::Value;
use shipdeck::model::*;
use shipdeck::sandbox::Sandbox;
use shipdeck::tui::app::Headless;
use shipdeck::tui::views;
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

const KINDS: &[&str] = &[
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "CronJob",
    "Job",
    "Pod",
    "Service",
    "ConfigMap",
];
/// Owners whose pods this test compares (the Deployment tree is tests/app_tree.rs's).
const OWNERS: &[&str] = &["StatefulSet", "DaemonSet", "Job"];
/// The resources pane is the left one at 200 columns: stop at its right border.
const PANE: usize = 110;

fn kubectl_available() -> bool {
    Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn kubectl(sb: &Sandbox, args: &[&str]) -> String {
    let out = Command::new("kubectl")
        .env("KUBECONFIG", sb.kubeconfig_path())
        .args(args)
        .output()
        .expect("kubectl runs");
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (pod, owner kind, owner name): kubectl's controlling owner of each pod in `ns` owned by
/// a StatefulSet, DaemonSet or Job.
type Edges = BTreeSet<(String, String, String)>;

fn kubectl_edges(sb: &Sandbox, ns: &str) -> Edges {
    let v: Value =
        serde_json::from_str(&kubectl(sb, &["get", "pods", "-n", ns, "-o", "json"])).expect("json");
    let mut out = Edges::new();
    for p in v["items"].as_array().into_iter().flatten() {
        let Some(o) = p["metadata"]["ownerReferences"]
            .as_array()
            .and_then(|os| os.iter().find(|o| o["controller"] == true))
        else {
            continue;
        };
        let kind = o["kind"].as_str().unwrap_or_default();
        if OWNERS.contains(&kind) {
            out.insert((
                p["metadata"]["name"].as_str().unwrap_or_default().into(),
                kind.into(),
                o["name"].as_str().unwrap_or_default().into(),
            ));
        }
    }
    out
}

/// A drawn tree row: its depth column, kind, name, and the rest of the line.
struct Row {
    col: usize,
    kind: String,
    name: String,
    rest: String,
}

fn rows(screen: &str) -> Vec<Row> {
    let mut out = Vec::new();
    for line in screen.lines() {
        let line: String = line.chars().take(PANE).collect();
        let Some((at, kind)) = KINDS.iter().find_map(|k| {
            let pat = format!("{k}/");
            line.match_indices(&pat)
                .find(|(i, _)| {
                    // A whole word: not `ReplicaSet/` inside `...Set/`, not inside a name.
                    line[..*i]
                        .chars()
                        .last()
                        .is_none_or(|c| !c.is_alphanumeric())
                })
                .map(|(i, _)| (i, k.to_string()))
        }) else {
            continue;
        };
        let after = &line[at + kind.len() + 1..];
        let name = after
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string();
        out.push(Row {
            col: line[..at].chars().count(),
            kind,
            name,
            rest: after.to_string(),
        });
    }
    out
}

/// The edges the screen draws: a pod's parent is the nearest row above it indented less.
fn screen_edges(rows: &[Row]) -> Edges {
    let mut out = Edges::new();
    for (i, r) in rows.iter().enumerate() {
        if r.kind != "Pod" {
            continue;
        }
        let parent = rows[..i].iter().rev().find(|p| p.col < r.col);
        if let Some(p) = parent
            && OWNERS.contains(&p.kind.as_str())
        {
            out.insert((r.name.clone(), p.kind.clone(), p.name.clone()));
        }
    }
    out
}

/// What each StatefulSet and Job row must say, from kubectl's own table: `ready READY` for
/// a StatefulSet, `STATUS COMPLETIONS` for a Job.
fn kubectl_notes(sb: &Sandbox, ns: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for l in kubectl(sb, &["get", "statefulsets", "-n", ns, "--no-headers"]).lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        out.push(("StatefulSet".into(), f[0].into(), format!("ready {}", f[1])));
    }
    for l in kubectl(sb, &["get", "jobs", "-n", ns, "--no-headers"]).lines() {
        let f: Vec<&str> = l.split_whitespace().collect();
        out.push(("Job".into(), f[0].into(), format!("{} {}", f[1], f[2])));
    }
    out
}

/// Whether the screen's rows say what kubectl says: the same pod ownership, each workload
/// row with kubectl's counts, each pod with kubectl's waiting reason. Err: what differs.
fn compare(sb: &Sandbox, ns: &str, screen: &str) -> Result<(), String> {
    let k1 = kubectl_edges(sb, ns);
    let notes = kubectl_notes(sb, ns);
    let reasons = kubectl_reasons(sb, ns);
    let rs = rows(screen);
    let shown = screen_edges(&rs);
    let k2 = kubectl_edges(sb, ns);
    if k1 != k2 || notes != kubectl_notes(sb, ns) || reasons != kubectl_reasons(sb, ns) {
        return Err("the cluster changed under the comparison".into());
    }
    if k1.is_empty() {
        return Err("kubectl shows no StatefulSet/Job pods".into());
    }
    if shown != k1 {
        return Err(format!("tree\n screen:  {shown:?}\n kubectl: {k1:?}"));
    }
    for (kind, name, note) in &notes {
        let row = rs.iter().find(|r| r.kind == *kind && r.name == *name);
        if !row.is_some_and(|r| r.rest.contains(note.as_str())) {
            return Err(format!(
                "{kind}/{name}: kubectl says {note:?}, the row says {:?}",
                row.map(|r| r.rest.trim())
            ));
        }
    }
    // The StatefulSet's and Job's pods (the namespace's other pods are tests/app_tree.rs's).
    for (pod, reason) in reasons
        .iter()
        .filter(|(p, _)| k1.iter().any(|e| &e.0 == *p))
    {
        let row = rs.iter().find(|r| r.kind == "Pod" && r.name == *pod);
        if !row.is_some_and(|r| r.rest.contains(reason.as_str())) {
            return Err(format!(
                "Pod/{pod}: kubectl says {reason}, the row says {:?}",
                row.map(|r| r.rest.trim())
            ));
        }
    }
    Ok(())
}

/// Each waiting pod's first container waiting reason in `ns`, as kubectl has it.
fn kubectl_reasons(sb: &Sandbox, ns: &str) -> std::collections::BTreeMap<String, String> {
    let v: Value =
        serde_json::from_str(&kubectl(sb, &["get", "pods", "-n", ns, "-o", "json"])).expect("json");
    v["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let reason = p["status"]["containerStatuses"][0]["state"]["waiting"]["reason"]
                .as_str()?
                .to_string();
            Some((p["metadata"]["name"].as_str()?.to_string(), reason))
        })
        .collect()
}

fn key(h: &mut Headless, code: KeyCode) {
    h.key(KeyEvent::new(code, KeyModifiers::NONE));
}

/// A console fed by `src` (its estate watch and its provider), with `name`'s app screen
/// open once the estate has it.
async fn console_on<S>(
    src: &S,
    name: &str,
    mode: &str,
) -> (Headless, tokio::task::JoinHandle<()>, tempfile::TempDir)
where
    S: shipdeck::ops::freeze::Projects + shipdeck::ops::prune::Annotate + Clone + 'static,
{
    let (mut h, watch, dir) = common::console::headless_over(src);
    assert!(
        h.until(Duration::from_secs(30), |c| !c
            .estate
            .find_by_name(name)
            .is_empty())
            .await,
        "{mode}: {name} in the console's estate"
    );
    let id = AppId::new(src.instance(), "argocd", name);
    h.console
        .push(Box::new(views::application::ApplicationView::new(id)));
    (h, watch, dir)
}

/// Pump the console until its screen says what kubectl says (or fail with the last
/// difference).
async fn until_kubectl(h: &mut Headless, sb: &Sandbox, ns: &str, mode: &str, what: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        h.step(Duration::from_millis(50)).await;
        let screen = h.screen(200, 80);
        match compare(sb, ns, &screen) {
            Ok(()) => return,
            Err(e) => assert!(
                tokio::time::Instant::now() < deadline,
                "{mode}: {what}: the screen never said what kubectl says: {e}\n{screen}"
            ),
        }
    }
}

/// The cursor's row index of the first tree row of `kind`.
fn row_index(h: &Headless, kind: &str) -> usize {
    rows(&h.screen(200, 80))
        .iter()
        .position(|r| r.kind == kind)
        .unwrap_or_else(|| panic!("a {kind} row"))
}

/// Static: the tree of `catalog-dev` is kubectl's; Enter on the Job shows its events
/// (kubectl's), Enter on the StatefulSet its rollout with kubectl's status line.
async fn tree_and_enter<S>(sb: &Sandbox, src: &S, mode: &str)
where
    S: shipdeck::ops::freeze::Projects + shipdeck::ops::prune::Annotate + Clone + 'static,
{
    let ns = "shop-dev";
    let (mut h, watch, _dir) = console_on(src, "catalog-dev", mode).await;
    // The Job has completed (its pod Succeeded) and the StatefulSet is ready, as kubectl
    // tells once the estate settled.
    common::wait_for("catalog-db-migrate complete", || async {
        kubectl(sb, &["get", "jobs", "-n", ns, "--no-headers"])
            .contains("Complete")
            .then_some(())
    })
    .await;
    until_kubectl(&mut h, sb, ns, mode, "catalog-dev at rest").await;
    // The version the screen gives the app is its Deployment's image tag (kubectl's), not
    // the database's that sorts first among the app's images.
    let image = kubectl(
        sb,
        &[
            "get",
            "deployment",
            "catalog",
            "-n",
            ns,
            "-o",
            "jsonpath={.spec.template.spec.containers[0].image}",
        ],
    );
    let tag = image.rsplit(':').next().unwrap_or_default().to_string();
    let live = h
        .screen(200, 80)
        .lines()
        .find(|l| l.contains("live "))
        .unwrap_or_default()
        .to_string();
    assert!(
        tag.starts_with("sha-") && live.contains(&format!("({tag})")),
        "{mode}: the live line gives the Deployment's tag {tag:?}: {live}"
    );

    // Enter on the Job: its events, as kubectl lists them.
    let job_row = row_index(&h, "Job");
    for _ in 0..job_row {
        key(&mut h, KeyCode::Char('j'));
    }
    key(&mut h, KeyCode::Enter);
    let events = kubectl(
        sb,
        &[
            "get",
            "events",
            "-n",
            ns,
            "--field-selector",
            "involvedObject.name=catalog-db-migrate",
            "-o",
            "jsonpath={range .items[*]}{.message}{\"\\n\"}{end}",
        ],
    );
    let created = events
        .lines()
        .find(|l| l.starts_with("Created pod: "))
        .unwrap_or_else(|| panic!("kubectl lists the Job's SuccessfulCreate event: {events}"))
        .to_string();
    let shown = h
        .until(Duration::from_secs(30), |c| {
            let mut t = ratatui::Terminal::new(ratatui::backend::TestBackend::new(200, 80))
                .expect("terminal");
            t.draw(|f| c.render(f)).expect("draw");
            let buf = t.backend().buffer().clone();
            let text: String = (0..buf.area.height)
                .map(|y| {
                    (0..buf.area.width)
                        .map(|x| buf[(x, y)].symbol())
                        .collect::<String>()
                })
                .collect::<Vec<_>>()
                .join("\n");
            text.contains("events of Job/catalog-db-migrate") && text.contains(&created)
        })
        .await;
    assert!(
        shown,
        "{mode}: Enter on the Job shows its events ({created:?})\n{}",
        h.screen(200, 80)
    );
    assert_eq!(
        h.console.screen_titles().last().map(String::as_str),
        Some("app catalog-dev"),
        "{mode}: the Job's events are on the app screen"
    );

    // Back to the tree (Tab twice: events -> history -> resources), up to the StatefulSet.
    key(&mut h, KeyCode::Tab);
    key(&mut h, KeyCode::Tab);
    let sts_row = row_index(&h, "StatefulSet");
    for _ in sts_row..job_row {
        key(&mut h, KeyCode::Char('k'));
    }
    key(&mut h, KeyCode::Enter);
    assert!(
        h.console
            .screen_titles()
            .last()
            .is_some_and(|t| t.starts_with("rollout")),
        "{mode}: Enter on the StatefulSet opens its rollout: {:?}",
        h.console.screen_titles()
    );
    let line = kubectl(
        sb,
        &[
            "rollout",
            "status",
            "statefulset/catalog-db",
            "-n",
            ns,
            "--watch=false",
        ],
    );
    let line = line.trim().to_string();
    let drawn = h
        .until(Duration::from_secs(30), |c| {
            let mut t = ratatui::Terminal::new(ratatui::backend::TestBackend::new(200, 80))
                .expect("terminal");
            t.draw(|f| c.render(f)).expect("draw");
            let buf = t.backend().buffer().clone();
            (0..buf.area.height).any(|y| {
                let row: String = (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect();
                row.contains("StatefulSet shop-dev/catalog-db")
            }) && (0..buf.area.height).any(|y| {
                let row: String = (0..buf.area.width).map(|x| buf[(x, y)].symbol()).collect();
                row.contains(line.as_str())
            })
        })
        .await;
    assert!(
        drawn,
        "{mode}: the rollout shows the StatefulSet with kubectl's line {line:?}\n{}",
        h.screen(200, 80)
    );
    watch.abort();
}

/// Live: with `app`'s screen open, its StatefulSet rolls to `image` (which cannot be
/// pulled: the roll stops with its highest pod replaced and waiting), and the screen
/// follows to kubectl's tree, counts and waiting reasons; the source's status line for the
/// StatefulSet is kubectl's `rollout status` line at that point.
async fn follows_a_statefulset_roll<S>(
    sb: &Sandbox,
    src: &S,
    app: &str,
    ns: &str,
    image: &str,
    mode: &str,
) where
    S: shipdeck::ops::freeze::Projects + shipdeck::ops::prune::Annotate + Clone + 'static,
{
    use k8s_openapi::api::apps::v1::StatefulSet;
    // An auto-synced app takes the revision Git has once it is out of sync; after that, a
    // live change stays (no self-heal). Wait until it synced what Git has.
    common::wait_for_within(
        &format!("{app} synced to what Git has"),
        Duration::from_secs(60),
        || async {
            let v = kubectl(
                sb,
                &[
                    "get",
                    "applications.argoproj.io",
                    "-n",
                    "argocd",
                    app,
                    "-o",
                    "jsonpath={.status.sync.status} {.status.sync.revision} {.status.operationState.phase} {.status.operationState.syncResult.revision}",
                ],
            );
            let f: Vec<&str> = v.split_whitespace().collect();
            (f.len() == 4 && f[0] == "Synced" && f[2] == "Succeeded" && f[1] == f[3]).then_some(())
        },
    )
    .await;
    let (mut h, watch, _dir) = console_on(src, app, mode).await;
    until_kubectl(&mut h, sb, ns, mode, "before the roll").await;
    let before = kubectl(
        sb,
        &[
            "get",
            "sts",
            "catalog-db",
            "-n",
            ns,
            "-o",
            "jsonpath={.status.updateRevision}",
        ],
    );

    common::http()
        .post(format!("{}/_sandbox/image-fault", sb.url))
        .json(&serde_json::json!({"image": image, "mode": "ImagePullBackOff"}))
        .send()
        .await
        .expect("image fault")
        .error_for_status()
        .expect("image fault set");
    let client = common::kube_default(sb).await;
    let api: kube::Api<StatefulSet> = kube::Api::namespaced(client, ns);
    let mut s = api.get("catalog-db").await.expect("statefulset");
    let c = s
        .spec
        .template
        .spec
        .as_mut()
        .and_then(|p| p.containers.first_mut())
        .expect("a container");
    c.image = Some(image.into());
    api.replace("catalog-db", &Default::default(), &s)
        .await
        .expect("replace statefulset");

    // kubectl: the roll is under way (a new update revision, a pod waiting on its image).
    common::wait_for_within(
        "the roll stalls on the image",
        Duration::from_secs(60),
        || async {
            let rev = kubectl(
                sb,
                &[
                    "get",
                    "sts",
                    "catalog-db",
                    "-n",
                    ns,
                    "-o",
                    "jsonpath={.status.updateRevision}",
                ],
            );
            let waiting = kubectl_reasons(sb, ns)
                .iter()
                .any(|(p, r)| p.starts_with("catalog-db-") && r == "ImagePullBackOff");
            (rev != before && waiting).then_some(())
        },
    )
    .await;
    // No key pressed: the open screen follows.
    until_kubectl(&mut h, sb, ns, mode, "mid-roll").await;
    let app_obj = src
        .get_application(app, shipdeck::sources::Refresh::None)
        .await
        .expect("app");
    let oracle = Command::new("kubectl")
        .env("KUBECONFIG", sb.kubeconfig_path())
        .args([
            "rollout",
            "status",
            "statefulset/catalog-db",
            "-n",
            ns,
            "--watch=false",
        ])
        .output()
        .expect("kubectl runs");
    let oracle = String::from_utf8_lossy(&oracle.stdout).trim().to_string();
    let ws = src.workloads(&app_obj).await.expect("workloads");
    let sts = ws
        .iter()
        .find(|w| w.kind() == "StatefulSet" && w.name == "catalog-db")
        .expect("the StatefulSet among the workloads");
    assert_eq!(
        sts.status_line(),
        oracle,
        "{mode}: kubectl's rollout status line mid-roll"
    );
    watch.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statefulset_and_job_pods_hang_under_their_owner_as_kubectl_says() {
    if !kubectl_available() {
        println!("SKIP app_tree_kinds: kubectl is not on PATH");
        return;
    }
    let sb = sandbox_scaled(0.1).await;
    let api = common::argo_admin(&sb);
    let cache = tempfile::tempdir().expect("tempdir");
    let core = common::core_admin(&sb, cache.path()).await;

    tree_and_enter(&sb, &api, "API mode").await;
    tree_and_enter(&sb, &core, "core mode").await;
    // Each mode on its own app (neither self-heals: the change under the screen stays;
    // catalog-staging auto-syncs, but only a revision it has not synced yet).
    follows_a_statefulset_roll(
        &sb,
        &api,
        "catalog-prod",
        "shop",
        "docker.io/library/postgres:no-such-1",
        "API mode",
    )
    .await;
    follows_a_statefulset_roll(
        &sb,
        &core,
        "catalog-staging",
        "shop-staging",
        "docker.io/library/postgres:no-such-2",
        "core mode",
    )
    .await;
}
