//! Every console screen drawn into a `TestBackend` from a fixture estate, at 80x24 and
//! 160x48, compared with insta snapshots; plus explicit checks of the colours of status
//! cells (text snapshots cannot show them), key handling, and sanitization.

use chrono::{DateTime, TimeZone, Utc};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use shipdeck::model::*;
use shipdeck::ops::diff::{AppDiff, Change, DiffLine, LineKind, ResourceDiff, ResourceKey};
use shipdeck::ops::estate::Estate;
use shipdeck::sources::{AppEvent, SyncWindowsState};
use shipdeck::tui::console::{Console, Settings};
use shipdeck::tui::request::*;
use shipdeck::tui::theme::{Role, Theme};
use shipdeck::tui::views;

const SIZES: [(u16, u16); 2] = [(80, 24), (160, 48)];

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 6, 12, 15, 0, 0).unwrap()
}

const OLD: &str = "1111111111111111111111111111111111111111";
const NEW: &str = "2222222222222222222222222222222222222222";

fn app(
    name: &str,
    env: &str,
    sync: SyncStatus,
    health: HealthStatus,
    image: &str,
    auto: bool,
) -> Application {
    let mut a = Application::default();
    a.metadata.name = name.into();
    a.metadata.namespace = "argocd".into();
    a.metadata.labels.insert("env".into(), env.into());
    a.spec.source = Some(ApplicationSource {
        repo_url: "https://git.example.com/platform/deploy.git".into(),
        path: Some(format!("k8s/{env}")),
        target_revision: Some(if env == "prod" { "main" } else { "develop" }.into()),
        ..Default::default()
    });
    a.spec.destination.name = Some("in-cluster".into());
    a.spec.destination.namespace = Some(format!("shop-{env}"));
    if auto {
        a.spec.sync_policy = Some(SyncPolicy {
            automated: Some(AutomatedSync {
                prune: true,
                self_heal: true,
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    a.status.sync.status = sync;
    a.status.health.status = health;
    let pending = sync == SyncStatus::OutOfSync;
    a.status.sync.revision = Some(if pending { NEW } else { OLD }.into());
    a.status.history = vec![
        HistoryEntry {
            id: 1,
            revision: Some("0000000000000000000000000000000000000000".into()),
            deployed_at: Some("2024-06-10T09:00:00Z".into()),
            initiated_by: Some(InitiatedBy {
                username: Some("alice".into()),
                automated: false,
            }),
            ..Default::default()
        },
        HistoryEntry {
            id: 2,
            revision: Some(OLD.into()),
            deployed_at: Some("2024-06-12T14:10:00Z".into()),
            initiated_by: Some(InitiatedBy {
                username: None,
                automated: true,
            }),
            ..Default::default()
        },
    ];
    a.status.summary = Some(Summary {
        images: vec![format!("registry.example.com/{image}")],
        ..Default::default()
    });
    a.status.resources = vec![
        ResourceStatus {
            kind: "Deployment".into(),
            group: "apps".into(),
            name: name.trim_end_matches(&format!("-{env}")).into(),
            namespace: format!("shop-{env}"),
            status: sync,
            health: Some(HealthInfo {
                status: health,
                message: None,
            }),
            ..Default::default()
        },
        ResourceStatus {
            kind: "Service".into(),
            name: name.trim_end_matches(&format!("-{env}")).into(),
            namespace: format!("shop-{env}"),
            status: SyncStatus::Synced,
            health: Some(HealthInfo {
                status: HealthStatus::Healthy,
                message: None,
            }),
            ..Default::default()
        },
    ];
    a
}

fn estate() -> Estate {
    use HealthStatus::*;
    use SyncStatus::*;
    let mut e = Estate::new();
    let apps = vec![
        app(
            "event-ingestion-dev",
            "dev",
            Synced,
            Healthy,
            "event-consumer:v20240612-143022",
            true,
        ),
        app(
            "event-ingestion-staging",
            "staging",
            Synced,
            Healthy,
            "event-consumer:v20240612-143022",
            true,
        ),
        app(
            "event-ingestion-prod",
            "prod",
            OutOfSync,
            Healthy,
            "event-consumer:v20240611-101500",
            false,
        ),
        app(
            "checkout-dev",
            "dev",
            Synced,
            Progressing,
            "checkout:sha-9f8e7d6",
            true,
        ),
        app(
            "checkout-staging",
            "staging",
            Synced,
            Degraded,
            "checkout:sha-9f8e7d6",
            true,
        ),
        app(
            "checkout-prod",
            "prod",
            Synced,
            Healthy,
            "checkout:sha-1a2b3c4",
            false,
        ),
        app("kafka-dev", "dev", Synced, Healthy, "kafka:3.7.0", true),
        app("kafka-prod", "prod", Synced, Healthy, "kafka:3.7.0", true),
        app(
            "link-app-dev",
            "dev",
            Synced,
            Healthy,
            "link-app:sha-77aa11",
            true,
        ),
        app(
            "link-app-staging",
            "staging",
            Synced,
            Suspended,
            "link-app:sha-77aa11",
            true,
        ),
        app(
            "link-app-prod",
            "prod",
            SyncStatus::Unknown,
            Missing,
            "link-app:v20240601-aa11",
            false,
        ),
    ];
    for a in apps {
        let id = AppId::new("argocd", "argocd", a.metadata.name.clone());
        e.apply(Update::Upsert(id, Box::new(a)));
    }
    e.apply(Update::Connection {
        source: "argocd".into(),
        state: Connection::Connected,
    });
    e
}

fn id(name: &str) -> AppId {
    AppId::new("argocd", "argocd", name)
}

fn console_with(settings: Settings) -> Console {
    let mut c = Console::new(estate(), settings);
    c.set_now(now());
    c
}

fn console() -> Console {
    console_with(Settings {
        operator: "alice".into(),
        source_label: "argocd".into(),
        ..Settings::default()
    })
}

fn draw(c: &Console, w: u16, h: u16) -> Buffer {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| c.render(f)).unwrap();
    t.backend().buffer().clone()
}

fn text(buf: &Buffer) -> String {
    let area = buf.area;
    let mut out = String::new();
    for y in 0..area.height {
        let mut line = String::new();
        let mut skip = 0;
        for x in 0..area.width {
            if skip > 0 {
                skip -= 1;
                continue;
            }
            let sym = buf[(x, y)].symbol();
            line.push_str(sym);
            skip = unicode_width::UnicodeWidthStr::width(sym).saturating_sub(1);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn snap(name: &str, c: &Console) {
    for (w, h) in SIZES {
        let t = text(&draw(c, w, h));
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), t);
    }
}

fn key(c: &mut Console, code: KeyCode) {
    c.key(KeyEvent::new(code, KeyModifiers::NONE));
}

fn chars(c: &mut Console, s: &str) {
    for ch in s.chars() {
        key(c, KeyCode::Char(ch));
    }
}

/// Find the first cell on row `y` whose symbol is `sym` (after column `from`).
fn find(buf: &Buffer, y: u16, from: u16, sym: &str) -> Option<u16> {
    (from..buf.area.width).find(|x| buf[(*x, y)].symbol() == sym)
}

fn row_of(buf: &Buffer, needle: &str) -> u16 {
    let t = text(buf);
    t.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle} not on screen:\n{t}")) as u16
}

fn diffs() -> AppDiff {
    let l = |kind, text: &str| DiffLine::new(kind, text);
    let key = |kind: &str, name: &str| ResourceKey {
        group: if kind == "Deployment" { "apps" } else { "" }.into(),
        kind: kind.into(),
        namespace: "shop-prod".into(),
        name: name.into(),
    };
    AppDiff {
        resources: vec![
            ResourceDiff {
                key: key("Deployment", "event-ingestion"),
                change: Change::Modify,
                summary: vec!["image consumer v20240611-101500 -> v20240612-143022".into()],
                lines: vec![
                    l(LineKind::Folded, "⋯ 12 unchanged lines"),
                    l(LineKind::Hunk, "@@ -13,7 +13,7 @@"),
                    l(LineKind::Context, "    spec:"),
                    l(LineKind::Context, "      containers:"),
                    l(
                        LineKind::Removed,
                        "      - image: registry.example.com/event-consumer:v20240611-101500",
                    ),
                    l(
                        LineKind::Added,
                        "      - image: registry.example.com/event-consumer:v20240612-143022",
                    ),
                    l(LineKind::Context, "        name: consumer"),
                    l(LineKind::Folded, "⋯ 4 unchanged lines"),
                ],
                images: vec!["registry.example.com/event-consumer:v20240612-143022".into()],
            },
            ResourceDiff {
                key: key("ConfigMap", "event-ingestion-config"),
                change: Change::Modify,
                summary: vec!["key BATCH_SIZE added".into()],
                lines: vec![
                    l(LineKind::Hunk, "@@ -1,4 +1,5 @@"),
                    l(LineKind::Context, "data:"),
                    l(LineKind::Added, "  BATCH_SIZE: \"500\""),
                ],
                images: vec![],
            },
            ResourceDiff {
                key: key("Service", "event-ingestion"),
                change: Change::Unchanged,
                summary: vec![],
                lines: vec![],
                images: vec![],
            },
        ],
    }
}

fn commit(sha: &str, author: &str, time: &str, subject: &str) -> Commit {
    Commit {
        sha: sha.into(),
        author: author.into(),
        time: time.into(),
        subject: subject.into(),
        ..Default::default()
    }
}

fn workloads() -> Vec<WorkloadRollout> {
    let pod =
        |n: &str, phase: &str, ready: bool, restarts: u32, waiting: Option<&str>, rs: &str| Pod {
            namespace: "shop-prod".into(),
            name: n.into(),
            phase: phase.into(),
            ready,
            restarts,
            waiting_reason: waiting.map(Into::into),
            owner_replicaset: Some(rs.into()),
            images: vec![],
            created_at: None,
            owner: None,
        };
    vec![WorkloadRollout {
        namespace: "shop-prod".into(),
        name: "event-ingestion".into(),
        generation: 4,
        observed_generation: 4,
        desired: 3,
        current: 4,
        updated: 3,
        ready: 3,
        available: 3,
        images: vec!["registry.example.com/event-consumer:v20240612-143022".into()],
        progressing_reason: Some("ReplicaSetUpdated".into()),
        new_replicaset: Some(ReplicaSetInfo {
            name: "event-ingestion-7d9f8".into(),
            revision: Some("4".into()),
            desired: 2,
            ready: 1,
            available: 1,
            images: vec!["registry.example.com/event-consumer:v20240612-143022".into()],
        }),
        old_replicasets: vec![ReplicaSetInfo {
            name: "event-ingestion-5c6b4".into(),
            revision: Some("3".into()),
            desired: 2,
            ready: 2,
            available: 2,
            images: vec!["registry.example.com/event-consumer:v20240611-101500".into()],
        }],
        pods: vec![
            pod(
                "event-ingestion-7d9f8-abcde",
                "Running",
                true,
                0,
                None,
                "event-ingestion-7d9f8",
            ),
            pod(
                "event-ingestion-7d9f8-fghij",
                "Pending",
                false,
                0,
                Some("ContainerCreating"),
                "event-ingestion-7d9f8",
            ),
            pod(
                "event-ingestion-5c6b4-klmno",
                "Running",
                true,
                0,
                None,
                "event-ingestion-5c6b4",
            ),
            pod(
                "event-ingestion-5c6b4-pqrst",
                "Running",
                false,
                4,
                Some("CrashLoopBackOff"),
                "event-ingestion-5c6b4",
            ),
        ],
        ..Default::default()
    }]
}

fn run(state: BuildState) -> BuildRun {
    BuildRun {
        system: BuildSystem::GithubActions,
        id: 4242,
        pipeline: "build.yml".into(),
        title: "Build event-ingestion".into(),
        branch: Some("develop".into()),
        head_sha: Some(NEW.into()),
        state,
        url: None,
        created_at: Some("2024-06-12T14:50:00Z".into()),
        jobs: vec![BuildJob {
            id: 1,
            name: "build".into(),
            state,
            steps: vec![
                BuildStep {
                    number: 1,
                    name: "Checkout".into(),
                    state: BuildState::Succeeded,
                },
                BuildStep {
                    number: 2,
                    name: "Test".into(),
                    state: BuildState::Succeeded,
                },
                BuildStep {
                    number: 3,
                    name: "Push image".into(),
                    state,
                },
            ],
        }],
        inputs: Vec::new(),
        log_tail: Vec::new(),
    }
}

fn pipelines() -> Vec<Pipeline> {
    vec![
        Pipeline {
            system: BuildSystem::GithubActions,
            name: "build.yml".into(),
            title: "Build and bump".into(),
            git_ref: Some("develop".into()),
            repo: None,
            inputs: vec![
                PipelineInput {
                    name: "service".into(),
                    description: "Service to build".into(),
                    kind: "choice".into(),
                    options: vec![
                        "event-ingestion".into(),
                        "checkout".into(),
                        "link-app".into(),
                    ],
                    default: Some("checkout".into()),
                    required: true,
                },
                PipelineInput {
                    name: "skip_tests".into(),
                    description: "Skip the test suite".into(),
                    kind: "boolean".into(),
                    options: vec![],
                    default: Some("false".into()),
                    required: false,
                },
                PipelineInput {
                    name: "note".into(),
                    description: "Free text for the run title".into(),
                    kind: "string".into(),
                    options: vec![],
                    default: Some("hotfix".into()),
                    required: false,
                },
            ],
        },
        Pipeline {
            system: BuildSystem::Jenkins,
            name: "GitOps-Pipeline".into(),
            title: "Bump tags".into(),
            git_ref: None,
            repo: None,
            inputs: vec![],
        },
    ]
}

#[test]
fn board() {
    let c = console();
    snap("board", &c);
}

#[test]
fn board_status_cells_have_colour_and_words() {
    let c = console();
    let theme = Theme::built_in("default");
    let buf = draw(&c, 160, 48);
    let t = text(&buf);
    // Words beside glyphs: never colour alone.
    assert!(t.contains("✓ Synced"), "{t}");
    assert!(t.contains("✗ Degraded"), "{t}");
    assert!(t.contains("≠ OutOfSync"), "{t}");
    let y = row_of(&buf, "checkout");
    let x = find(&buf, y, 20, "✗").expect("degraded glyph on checkout row");
    assert_eq!(buf[(x, y)].fg, theme.style(Role::Degraded).fg.unwrap());
    // The dev cell is selected (selection colours); look at prod, after staging.
    let x = find(&buf, y, x, "✓").expect("synced glyph");
    assert_eq!(buf[(x, y)].fg, theme.style(Role::Synced).fg.unwrap());
    let y = row_of(&buf, "event-ingestion");
    let x = find(&buf, y, 20, "≠").expect("out of sync glyph");
    assert_eq!(buf[(x, y)].fg, theme.style(Role::OutOfSync).fg.unwrap());
    // The prod cell waits for approval.
    let x = find(&buf, y, 20, "⚑").expect("approval mark");
    assert_eq!(buf[(x, y)].fg, theme.style(Role::Warning).fg.unwrap());
    // The same in the colour-blind theme: different colours, same words.
    let c = console_with(Settings {
        theme: Theme::built_in("colorblind"),
        ..Settings::default()
    });
    let buf = draw(&c, 160, 48);
    let y = row_of(&buf, "checkout");
    let x = find(&buf, y, 20, "✗").unwrap();
    assert_eq!(buf[(x, y)].fg, ratatui::style::Color::Rgb(0xd5, 0x5e, 0x00));
}

#[test]
fn board_read_only_header_and_footer() {
    let c = console_with(Settings {
        read_only: true,
        ..Settings::default()
    });
    let buf = draw(&c, 80, 24);
    let t = text(&buf);
    assert!(t.lines().next().unwrap().contains("READ-ONLY"), "{t}");
    assert!(!t.lines().last().unwrap().contains("sync"), "{t}");
    snap("board_read_only", &c);
}

#[test]
fn too_small_terminal_says_so() {
    let c = console();
    let t = text(&draw(&c, 50, 10));
    assert!(t.contains("terminal too small"), "{t}");
}

#[test]
fn applications_grouped_filtered_sorted() {
    let mut c = console();
    c.command("apps");
    snap("apps", &c);
    key(&mut c, KeyCode::Char('/'));
    chars(&mut c, "check");
    key(&mut c, KeyCode::Enter);
    let t = text(&draw(&c, 160, 48));
    assert!(
        t.contains("checkout-prod") && !t.contains("kafka-dev"),
        "{t}"
    );
    snap("apps_filtered", &c);
}

/// Updates folded between frames: the applications list (ordered by name, so rebuilt only
/// when apps come or go) shows a status change and a new app once the console reacts, as
/// it does before a frame and before a key.
#[test]
fn applications_list_follows_folded_updates() {
    let mut c = console();
    c.command("apps");
    let before = text(&draw(&c, 160, 48));
    let count = |t: &str| {
        t.lines()
            .find_map(|l| {
                l.split(" apps · sort")
                    .next()
                    .filter(|_| l.contains(" apps · sort"))
            })
            .and_then(|n| {
                n.trim()
                    .rsplit(' ')
                    .next()
                    .and_then(|n| n.parse::<usize>().ok())
            })
    };
    let n = count(&before).expect("the list says how many apps");
    let degraded = app(
        "checkout-prod",
        "prod",
        SyncStatus::OutOfSync,
        HealthStatus::Degraded,
        "checkout:v2",
        false,
    );
    let added = app(
        "aardvark-prod",
        "prod",
        SyncStatus::Synced,
        HealthStatus::Healthy,
        "aardvark:v1",
        false,
    );
    c.fold(vec![
        Update::Upsert(id("checkout-prod"), Box::new(degraded)),
        Update::Upsert(id("aardvark-prod"), Box::new(added)),
    ]);
    c.react();
    let t = text(&draw(&c, 160, 48));
    assert_eq!(count(&t), Some(n + 1), "{t}");
    assert!(t.contains("aardvark-prod"), "{t}");
    let row = t
        .lines()
        .find(|l| l.contains("checkout-prod"))
        .unwrap_or_default();
    assert!(row.contains("Degraded"), "{row}");
    // A status change alone, folded and then a key: the key reacts first.
    let healthy = app(
        "checkout-prod",
        "prod",
        SyncStatus::Synced,
        HealthStatus::Healthy,
        "checkout:v2",
        false,
    );
    c.fold(vec![Update::Upsert(id("checkout-prod"), Box::new(healthy))]);
    key(&mut c, KeyCode::Down);
    let t = text(&draw(&c, 160, 48));
    let row = t
        .lines()
        .find(|l| l.contains("checkout-prod"))
        .unwrap_or_default();
    assert!(
        row.contains("Healthy") && !row.contains("Degraded"),
        "{row}"
    );
}

#[test]
fn application_screen() {
    let mut c = console();
    c.push(Box::new(views::application::ApplicationView::new(id(
        "event-ingestion-prod",
    ))));
    let events = vec![
        AppEvent {
            event_type: "Normal".into(),
            reason: "OperationCompleted".into(),
            message: "Sync operation to 1111111 succeeded".into(),
            object: "Application/event-ingestion-prod".into(),
            count: 1,
            last_seen: Some("2024-06-12T14:10:00Z".into()),
        },
        AppEvent {
            event_type: "Warning".into(),
            reason: "OutOfSync".into(),
            message: "evil \u{1b}]0;pwned\u{7}title".into(),
            object: "Application/event-ingestion-prod".into(),
            count: 1,
            last_seen: Some("2024-06-12T14:55:00Z".into()),
        },
    ];
    c.respond(Response {
        ticket: Ticket(1),
        result: Ok(Payload::Events(events)),
    });
    let t = text(&draw(&c, 160, 48));
    // Removed characters are shown, not hidden (an escape must not pass for plain text).
    assert!(
        t.contains("evil \\u{1b}]0;pwned\\u{7}title") && !t.contains('\u{1b}'),
        "{t}"
    );
    snap("application", &c);
}

#[test]
fn diff_screen() {
    let mut c = console();
    c.push(Box::new(views::diff::DiffView::ready(
        id("event-ingestion-prod"),
        diffs(),
    )));
    snap("diff", &c);
    let theme = Theme::built_in("default");
    let buf = draw(&c, 160, 48);
    let y = row_of(&buf, "+      - image");
    let x = find(&buf, y, 0, "+").unwrap();
    assert_eq!(buf[(x, y)].fg, theme.style(Role::DiffAdd).fg.unwrap());
}

#[test]
fn rollout_screen() {
    let mut c = console();
    c.push(Box::new(views::rollout::RolloutView::with_workloads(
        id("event-ingestion-prod"),
        workloads(),
    )));
    snap("rollout", &c);
    let buf = draw(&c, 160, 48);
    let t = text(&buf);
    assert!(t.contains("1 old replicas are pending termination"), "{t}");
    let y = row_of(&buf, "CrashLoopBackOff");
    let x = find(&buf, y, 60, "C").unwrap();
    assert_eq!(
        buf[(x, y)].fg,
        Theme::built_in("default").style(Role::Degraded).fg.unwrap()
    );
}

#[test]
fn history_screen() {
    let mut c = console();
    c.push(Box::new(views::history::HistoryView::new(id(
        "checkout-staging",
    ))));
    snap("history", &c);
    key(&mut c, KeyCode::Char('j'));
    key(&mut c, KeyCode::Char('R'));
    let t = text(&draw(&c, 80, 24));
    assert!(
        t.contains("Roll back checkout-staging to deployment #1?"),
        "{t}"
    );
}

fn approve_view() -> views::approve::ApproveView {
    views::approve::ApproveView::sync(id("event-ingestion-prod")).with_review(
        diffs(),
        vec![
            // The bump commit names the run that pushed it (a date tag names no commit).
            Commit {
                body: "Built-by: Build event-ingestion run #7 (4242)".into(),
                ..commit(
                    NEW,
                    "ci-bot",
                    "2024-06-12T14:52:00Z",
                    "bump event-consumer to v20240612-143022",
                )
            },
            commit(
                "3333333333333333333333333333333333333333",
                "bob",
                "2024-06-12T13:00:00Z",
                "consumer: batch size from config",
            ),
        ],
        vec![run(BuildState::Succeeded)],
        true,
        SyncWindowsState {
            can_sync: true,
            ..Default::default()
        },
    )
}

#[test]
fn approve_screen() {
    let mut c = console();
    c.push(Box::new(approve_view()));
    snap("approve", &c);
    let t = text(&draw(&c, 160, 48));
    assert!(t.contains("built by build.yml run #4242 (success)"), "{t}");
    assert!(
        t.contains("staging runs v20240612-143022 since 2024-06-12 14:10"),
        "{t}"
    );
    assert!(t.contains("nothing: no window"), "{t}");
}

#[test]
fn approve_refuses_wrong_name_and_sends_with_approval() {
    let mut c = console();
    c.push(Box::new(approve_view()));
    let _ = c.take_requests();
    chars(&mut c, "event-ingestion-pro");
    key(&mut c, KeyCode::Enter);
    assert!(c.take_requests().is_empty());
    // Inline in the form, with what was typed kept and the expected name said.
    let t = text(&draw(&c, 160, 48));
    assert!(t.contains("type event-ingestion-prod exactly"), "{t}");
    assert!(t.contains("event-ingestion-pro"), "{t}");
    chars(&mut c, "d");
    key(&mut c, KeyCode::Tab);
    chars(&mut c, "fixes the lag");
    key(&mut c, KeyCode::Enter);
    let reqs = c.take_requests();
    assert_eq!(reqs.len(), 1);
    match &reqs[0].request {
        Request::Sync {
            app,
            approval: Some(a),
        } => {
            assert_eq!(app.name, "event-ingestion-prod");
            assert_eq!(a.operator, "alice");
            assert_eq!(a.named_app, "event-ingestion-prod");
            assert_eq!(a.reason.as_deref(), Some("fixes the lag"));
        }
        other => panic!("unexpected {other:?}"),
    }
    assert!(reqs[0].app.is_some());
}

#[test]
fn approve_asks_the_policy_for_a_reason_prod_requires() {
    let mut c = console();
    c.push(Box::new(approve_view()));
    let _ = c.take_requests();
    chars(&mut c, "event-ingestion-prod");
    key(&mut c, KeyCode::Enter);
    assert!(c.take_requests().is_empty());
    // Inline, in the console's words; the form stays open.
    let t = text(&draw(&c, 160, 48));
    assert!(t.contains("a reason is required in prod"), "{t}");
    assert!(!t.contains("--reason"), "{t}");
}

#[test]
fn approve_blocked_by_window_and_read_only() {
    let mut c = console_with(Settings {
        read_only: true,
        ..Settings::default()
    });
    c.push(Box::new(
        views::approve::ApproveView::sync(id("event-ingestion-prod")).with_review(
            diffs(),
            vec![],
            vec![],
            false,
            SyncWindowsState::default(),
        ),
    ));
    let t = text(&draw(&c, 160, 48));
    assert!(t.contains("read-only mode"), "{t}");
    assert!(t.contains("blocked by sync window"), "{t}");
    assert!(t.contains("you may not sync"), "{t}");
    chars(&mut c, "event-ingestion-prod");
    key(&mut c, KeyCode::Enter);
    assert!(c.take_requests().is_empty());
}

#[test]
fn sync_on_board_of_prod_opens_approval_and_dev_syncs_at_once() {
    let mut c = console();
    // Board: row 0 checkout, columns dev staging prod.
    key(&mut c, KeyCode::Char('s'));
    let reqs = c.take_requests();
    assert!(
        matches!(&reqs[..], [o] if matches!(&o.request, Request::Sync { app, approval: None } if app.name == "checkout-dev"))
    );
    key(&mut c, KeyCode::Char('j'));
    key(&mut c, KeyCode::Right);
    key(&mut c, KeyCode::Right);
    key(&mut c, KeyCode::Char('s'));
    assert!(
        c.screen_titles()
            .last()
            .unwrap()
            .starts_with("approve sync event-ingestion-prod")
    );
}

#[test]
fn builds_screens() {
    let mut c = console();
    c.push(Box::new(views::builds::BuildsView::with_lists(
        pipelines(),
        vec![run(BuildState::InProgress), run(BuildState::Failed)],
    )));
    snap("builds", &c);
    key(&mut c, KeyCode::Enter);
    snap("builds_form", &c);
    key(&mut c, KeyCode::Right);
    key(&mut c, KeyCode::Down);
    key(&mut c, KeyCode::Char(' '));
    key(&mut c, KeyCode::Enter);
    let reqs = c.take_requests();
    let Some(Request::Trigger { inputs, .. }) = reqs.last().map(|o| &o.request) else {
        panic!("no trigger")
    };
    assert_eq!(inputs.get("service").map(String::as_str), Some("link-app"));
    assert_eq!(inputs.get("skip_tests").map(String::as_str), Some("true"));
    assert_eq!(inputs.get("note").map(String::as_str), Some("hotfix"));
    let mut c = console();
    c.push(Box::new(views::builds::BuildsView::following(run(
        BuildState::InProgress,
    ))));
    snap("builds_run", &c);
}

#[test]
fn logs_screen_is_bounded_and_sanitized() {
    let mut c = console();
    c.push(Box::new(views::logs::LogsView::new(
        id("checkout-staging"),
        "shop-staging".into(),
        "checkout-5c6b4-pqrst".into(),
    )));
    let mut lines: Vec<String> = (0..6000).map(|i| format!("line {i}")).collect();
    lines.push("panic: \u{1b}[2Jboom \u{1b}]52;c;ZXZpbA==\u{7}".into());
    c.respond(Response {
        ticket: Ticket(1),
        result: Ok(Payload::LogLines(lines)),
    });
    let t = text(&draw(&c, 80, 24));
    assert!(t.contains("5000 lines"), "{t}");
    assert!(t.contains("panic: \\u{1b}[2Jboom"), "{t}");
    snap("logs", &c);
}

#[test]
fn help_and_palette() {
    let mut c = console();
    key(&mut c, KeyCode::Char('?'));
    snap("help", &c);
    key(&mut c, KeyCode::Esc);
    key(&mut c, KeyCode::Char(':'));
    chars(&mut c, "th");
    key(&mut c, KeyCode::Tab);
    snap("palette", &c);
    chars(&mut c, "high-contrast");
    key(&mut c, KeyCode::Enter);
    assert_eq!(c.settings().theme.name, "high-contrast");
    key(&mut c, KeyCode::Char(':'));
    chars(&mut c, "env prod");
    key(&mut c, KeyCode::Enter);
    let t = text(&draw(&c, 80, 24));
    assert!(
        t.contains("event-ingestion-prod") && !t.contains("checkout-dev"),
        "{t}"
    );
    key(&mut c, KeyCode::Char(':'));
    chars(&mut c, "q");
    key(&mut c, KeyCode::Enter);
    assert!(c.quit_requested());
}

#[test]
fn late_answers_to_old_requests_are_dropped() {
    let mut c = console();
    c.push(Box::new(views::diff::DiffView::new(id(
        "event-ingestion-prod",
    ))));
    let first = c.take_requests();
    c.key(KeyEvent::new(KeyCode::Char('r'), KeyModifiers::CONTROL));
    let second = c.take_requests();
    assert_eq!((first.len(), second.len()), (1, 1));
    c.respond(Response {
        ticket: second[0].ticket,
        result: Ok(Payload::Diff(diffs())),
    });
    c.respond(Response {
        ticket: first[0].ticket,
        result: Err("stale".into()),
    });
    let t = text(&draw(&c, 160, 48));
    assert!(
        t.contains("2 of 3 resources differ") && !t.contains("stale"),
        "{t}"
    );
}
