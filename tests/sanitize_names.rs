//! The sanitizer shows what it removes and never lets two different strings display the
//! same. Oracle: an independent decoder (`undisplay`) must give back the exact input, and
//! displays of distinct inputs must differ, over hand-picked attacks and generated strings
//! from an alphabet of the troublesome characters. Then on screen: two apps whose names
//! differ only by an escape sequence or a bidi override show as two different names.

use ratatui::Terminal;
use ratatui::backend::TestBackend;
use shipdeck::model::text::{sanitize, undisplay};
use shipdeck::model::*;
use shipdeck::ops::estate::Estate;
use shipdeck::tui::console::{Console, Settings};
use std::collections::BTreeMap;

fn safe_to_print(s: &str) -> bool {
    s.chars().all(|c| !c.is_control())
        && !s.chars().any(|c| matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}'))
}

#[test]
fn removed_characters_are_shown() {
    assert_eq!(sanitize("RED\u{202e}X"), "RED\\u{202e}X");
    assert_ne!(sanitize("RED\u{202e}X"), sanitize("REDX"));
    assert_eq!(sanitize("evil\u{1b}[2K-dev"), "evil\\u{1b}[2K-dev");
    assert_ne!(sanitize("evil\u{1b}[2K-dev"), "evil-dev");
    assert_eq!(sanitize("a\u{200b}b"), "a\\u{200b}b");
    assert_eq!(sanitize("cafe\u{301}"), "cafe\\u{301}");
    assert_ne!(sanitize("cafe\u{301}"), sanitize("café"));
    assert_eq!(sanitize("x\u{7f}"), "x\\u{7f}");
    // A name that spells an escape itself cannot pass for the escaped one.
    assert_ne!(sanitize("RED\\u{202e}X"), sanitize("RED\u{202e}X"));
    assert_eq!(sanitize("shop-prod"), "shop-prod");
}

#[test]
fn displays_read_back_and_never_collide() {
    // A small deterministic generator (xorshift) over an alphabet of trouble.
    let alphabet: Vec<char> = vec![
        'a', 'u', '{', '}', '2', 'e', '\\', '\u{1b}', '[', '\u{7}', '\u{202e}', '\u{200b}',
        '\u{301}', '\t', '\r', '\u{9b}', '\u{feff}', '-', 'é', '界',
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    for _ in 0..20_000 {
        let len = (next() % 8) as usize;
        let s: String = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        let shown = sanitize(&s).into_owned();
        assert!(safe_to_print(&shown), "{s:?} displays unsafe {shown:?}");
        assert_eq!(
            undisplay(&shown),
            s,
            "{s:?} -> {shown:?} does not read back"
        );
        if let Some(other) = seen.insert(shown.clone(), s.clone()) {
            assert_eq!(other, s, "{other:?} and {s:?} both display as {shown:?}");
        }
    }
}

fn app(name: &str) -> Application {
    let mut a = Application::default();
    a.metadata.name = name.into();
    a.metadata.namespace = "argocd".into();
    a.metadata.labels.insert("env".into(), "dev".into());
    a.status.sync.status = SyncStatus::Synced;
    a.status.health.status = HealthStatus::Healthy;
    a
}

#[test]
fn look_alike_names_show_as_different_apps() {
    let mut e = Estate::new();
    for name in [
        "evil-dev",
        "evil\u{1b}[2K-dev",
        "RED\u{202e}X-dev",
        "REDX-dev",
    ] {
        let id = AppId::new("argocd", "argocd", name);
        e.apply(Update::Upsert(id, Box::new(app(name))));
    }
    let mut c = Console::new(e, Settings::default());
    c.command("apps");
    let mut t = Terminal::new(TestBackend::new(140, 30)).unwrap();
    t.draw(|f| c.render(f)).unwrap();
    let buf = t.backend().buffer();
    let screen: String = (0..buf.area.height)
        .map(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect::<String>()
                + "\n"
        })
        .collect();
    assert!(
        !screen.contains('\u{1b}') && !screen.contains('\u{202e}'),
        "{screen}"
    );
    for shown in ["evil\\u{1b}[2K-dev", "RED\\u{202e}X-dev", "REDX-dev"] {
        assert!(screen.contains(shown), "{shown} not on screen:\n{screen}");
    }
    // `evil-dev` appears as itself, once: the escaped one does not pass for it.
    let plain = screen
        .lines()
        .filter(|l| l.contains("evil-dev") && !l.contains("\\u{1b}"))
        .count();
    assert_eq!(plain, 1, "{screen}");
}
