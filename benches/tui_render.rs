//! Frame times of the console with 10,000 applications (or the count given) across 3
//! environments: the first board frame after the estate fills, 5,000 updates applied a few
//! at a time on the board and on the applications list, the applications list (sorted,
//! grouped), a burst of 5,000 updates applied then drawn, and an idle frame. Prints figures; asserts nothing
//! (budgets are read, not enforced, in DESIGN.md "Budgets").

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use shipdeck::model::*;
use shipdeck::ops::estate::Estate;
use shipdeck::tui::console::{Console, Settings};
use std::time::Instant;

fn app(i: usize, env: &str) -> (AppId, Application) {
    let name = format!("svc-{i:05}-{env}");
    let mut a = Application::default();
    a.metadata.name = name.clone();
    a.metadata.labels.insert("env".into(), env.into());
    a.status.sync.status = if i.is_multiple_of(17) {
        SyncStatus::OutOfSync
    } else {
        SyncStatus::Synced
    };
    a.status.health.status = if i.is_multiple_of(23) {
        HealthStatus::Degraded
    } else {
        HealthStatus::Healthy
    };
    a.status.summary = Some(Summary {
        images: vec![format!("registry/svc-{i}:sha-{:07x}", i * 7919)],
        ..Default::default()
    });
    (AppId::new("bench", "argocd", name), a)
}

fn frame_ms(t: &mut Terminal<TestBackend>, c: &Console) -> f64 {
    let start = Instant::now();
    let _ = t.draw(|f| c.render(f));
    start.elapsed().as_secs_f64() * 1000.0
}

/// 5,000 updates applied a few at a time, as a live stream delivers them between frames.
fn trickle_ms(c: &mut Console, n: usize, envs: &[&str]) -> f64 {
    let trickle: Vec<Update> = (0..5_000)
        .map(|i| {
            let (id, a) = app(i % (n / 3), envs[i % 3]);
            Update::Upsert(id, Box::new(a))
        })
        .collect();
    let b = Instant::now();
    let mut trickle = trickle.into_iter().peekable();
    while trickle.peek().is_some() {
        c.apply(trickle.by_ref().take(5).collect::<Vec<_>>());
    }
    b.elapsed().as_secs_f64() * 1000.0
}

fn main() {
    let envs = ["dev", "staging", "prod"];
    // `tui_render -- 50000` (or any count) for another size.
    let n: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(10_000);
    let start = Instant::now();
    let mut updates = Vec::with_capacity(n);
    for i in 0..n {
        let (id, a) = app(i / 3, envs[i % 3]);
        updates.push(Update::Upsert(id, Box::new(a)));
    }
    let mut c = Console::new(Estate::new(), Settings::default());
    c.apply(updates);
    let fill = start.elapsed().as_secs_f64() * 1000.0;
    let mut t = Terminal::new(TestBackend::new(160, 48)).expect("test terminal");
    let first = frame_ms(&mut t, &c);
    println!("estate of {n} apps filled in {fill:.1} ms; first board frame {first:.2} ms (160x48)");
    let total = start.elapsed().as_secs_f64() * 1000.0;
    println!("first full frame with data after {total:.1} ms (budget: 1000 ms)");
    println!(
        "5000 updates applied 5 at a time (as a live stream delivers them), on the board: {:.1} ms",
        trickle_ms(&mut c, n, &envs)
    );
    c.command("apps");
    let apps = frame_ms(&mut t, &c);
    println!("applications list frame {apps:.2} ms");
    let burst: Vec<Update> = (0..5_000)
        .map(|i| {
            let (id, mut a) = app(i % (n / 3), envs[i % 3]);
            a.status.health.status = HealthStatus::Progressing;
            Update::Upsert(id, Box::new(a))
        })
        .collect();
    let b = Instant::now();
    c.apply(burst);
    let applied = b.elapsed().as_secs_f64() * 1000.0;
    let after = frame_ms(&mut t, &c);
    println!("burst of 5000 updates applied in {applied:.1} ms, next frame {after:.2} ms");
    println!(
        "the same 5000 updates applied 5 at a time, on the applications list: {:.1} ms",
        trickle_ms(&mut c, n, &envs)
    );
    let mut worst: f64 = 0.0;
    for _ in 0..50 {
        worst = worst.max(frame_ms(&mut t, &c));
    }
    println!("steady frames: worst of 50 = {worst:.2} ms");
}
