//! Keys, help and colour of the console, drawn into a `TestBackend`: `h`/`l` are a pair,
//! logs have their own key, the footer offers only keys that work where the focus is, help
//! stops at its end, a rebinding onto another action's key is refused with a warning and
//! both stay in help, Ctrl-U clears a text field. Colour is checked on the buffer's
//! cells (fg/bg), the oracle a text snapshot cannot give: mono and NO_COLOR have no
//! colour at all, a 16-colour terminal gets only the 16 basic colours, the light theme
//! paints its background, and under NO_COLOR the input cursor shows (reverse video and
//! the terminal's cursor) and the placeholder is dim.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};
use shipdeck::model::*;
use shipdeck::ops::estate::Estate;
use shipdeck::tui::console::{Console, Settings};
use shipdeck::tui::keymap::{Intent, Keymap, default_pairs};
use shipdeck::tui::theme::{ColorDepth, Theme, built_in_names};
use shipdeck::tui::views;
use std::collections::BTreeMap;

fn app(name: &str, env: &str, sync: SyncStatus, health: HealthStatus, image: &str) -> Application {
    let mut a = Application::default();
    a.metadata.name = name.into();
    a.metadata.namespace = "argocd".into();
    a.metadata.labels.insert("env".into(), env.into());
    a.spec.source = Some(ApplicationSource {
        repo_url: "https://git.example.com/platform/deploy.git".into(),
        path: Some(format!("k8s/{env}")),
        target_revision: Some("main".into()),
        ..Default::default()
    });
    a.spec.destination.namespace = Some(format!("shop-{env}"));
    a.status.sync.status = sync;
    a.status.health.status = health;
    a.status.sync.revision = Some("2222222222222222222222222222222222222222".into());
    a.status.history = vec![HistoryEntry {
        id: 1,
        revision: Some("1111111111111111111111111111111111111111".into()),
        deployed_at: Some("2024-06-12T14:10:00Z".into()),
        ..Default::default()
    }];
    a.status.summary = Some(Summary {
        images: vec![format!("registry.example.com/{image}")],
        ..Default::default()
    });
    a
}

fn estate() -> Estate {
    use HealthStatus::*;
    use SyncStatus::*;
    let mut e = Estate::new();
    let apps = vec![
        app("cart-dev", "dev", Synced, Healthy, "cart:sha-1"),
        app("cart-staging", "staging", Synced, Degraded, "cart:sha-1"),
        app("cart-prod", "prod", OutOfSync, Progressing, "cart:sha-0"),
        app("pay-dev", "dev", OutOfSync, Missing, "pay:v2"),
        app("pay-staging", "staging", Synced, Suspended, "pay:v2"),
        app("pay-prod", "prod", Synced, HealthStatus::Unknown, "pay:v1"),
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

fn console_with(theme: Theme, keymap: Keymap) -> Console {
    let mut c = Console::new(
        estate(),
        Settings {
            theme,
            keymap,
            operator: "alice".into(),
            source_label: "argocd".into(),
            ..Settings::default()
        },
    );
    c.set_now(
        chrono::DateTime::parse_from_rfc3339("2024-06-12T15:00:00Z")
            .unwrap()
            .into(),
    );
    c
}

fn console() -> Console {
    console_with(Theme::built_in("default"), Keymap::default())
}

fn draw_term(c: &Console, w: u16, h: u16) -> Terminal<TestBackend> {
    let mut t = Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| c.render(f)).unwrap();
    t
}

fn draw(c: &Console, w: u16, h: u16) -> Buffer {
    draw_term(c, w, h).backend().buffer().clone()
}

fn lines(buf: &Buffer) -> Vec<String> {
    (0..buf.area.height)
        .map(|y| {
            let mut line = String::new();
            let mut skip = 0;
            for x in 0..buf.area.width {
                if skip > 0 {
                    skip -= 1;
                    continue;
                }
                let sym = buf[(x, y)].symbol();
                line.push_str(sym);
                skip = unicode_width::UnicodeWidthStr::width(sym).saturating_sub(1);
            }
            line.trim_end().to_string()
        })
        .collect()
}

fn text(buf: &Buffer) -> String {
    lines(buf).join("\n")
}

fn press(c: &mut Console, code: KeyCode, m: KeyModifiers) {
    c.key(KeyEvent::new(code, m));
}

fn key(c: &mut Console, code: KeyCode) {
    press(c, code, KeyModifiers::NONE);
}

fn chars(c: &mut Console, s: &str) {
    for ch in s.chars() {
        key(c, KeyCode::Char(ch));
    }
}

fn ctrl(c: &mut Console, ch: char) {
    press(c, KeyCode::Char(ch), KeyModifiers::CONTROL);
}

// ---- keys ------------------------------------------------------------------------------

#[test]
fn default_keys_never_collide_and_h_l_are_a_pair() {
    let pairs = default_pairs();
    let mut seen = BTreeMap::new();
    for (chord, intent) in &pairs {
        if let Some(other) = seen.insert(*chord, *intent) {
            panic!("{} bound to both {other:?} and {intent:?}", chord.label());
        }
    }
    let k = Keymap::default();
    assert_eq!(k.keys_for(Intent::Left), vec!["h", "←"]);
    assert_eq!(k.keys_for(Intent::Right), vec!["l", "→"]);
    assert_eq!(k.keys_for(Intent::Logs), vec!["L"]);
    assert!(k.unbound().is_empty(), "{:?}", k.unbound());
}

/// On the board `l` moves right exactly as `→` does and `h` comes back as `←` does; the
/// footer names the pair.
#[test]
fn board_moves_with_h_l_and_arrows_alike() {
    let start = draw(&console(), 120, 30);
    let mut by_l = console();
    key(&mut by_l, KeyCode::Char('l'));
    let mut by_arrow = console();
    key(&mut by_arrow, KeyCode::Right);
    let (l, arrow) = (draw(&by_l, 120, 30), draw(&by_arrow, 120, 30));
    assert_ne!(l, start, "l did not move on the board");
    assert_eq!(l, arrow, "l and → differ");
    assert!(
        by_l.screen_titles().len() == 1,
        "{:?}",
        by_l.screen_titles()
    );
    key(&mut by_l, KeyCode::Char('h'));
    key(&mut by_arrow, KeyCode::Left);
    assert_eq!(draw(&by_l, 120, 30), start);
    assert_eq!(draw(&by_arrow, 120, 30), start);
    let footer = lines(&start).pop().unwrap();
    assert!(footer.contains("h/l env"), "{footer}");
}

/// On the approval screen the name field has the focus: `?` types into it, and the footer
/// offers the field's keys, not `? help`.
#[test]
fn approval_footer_offers_only_keys_that_work_in_the_field() {
    let mut c = console();
    c.push(Box::new(views::approve::ApproveView::sync(AppId::new(
        "argocd",
        "argocd",
        "cart-prod",
    ))));
    let buf = draw(&c, 120, 30);
    let footer = lines(&buf).pop().unwrap();
    assert!(!footer.contains("help"), "{footer}");
    for k in ["Enter confirm", "Tab reason", "Ctrl-U clear", "Esc cancel"] {
        assert!(footer.contains(k), "{k} missing: {footer}");
    }
    key(&mut c, KeyCode::Char('?'));
    assert_eq!(c.screen_titles().len(), 2, "{:?}", c.screen_titles());
    let t = text(&draw(&c, 120, 30));
    assert_eq!(name_field(&t).as_deref(), Some("?"), "{t}");
    // The palette's footer is the palette's.
    let mut p = console();
    key(&mut p, KeyCode::Char(':'));
    let footer = lines(&draw(&p, 120, 30)).pop().unwrap();
    assert!(
        footer.contains("Tab complete") && !footer.contains("help"),
        "{footer}"
    );
}

#[test]
fn ctrl_u_clears_text_fields() {
    let mut c = console();
    c.push(Box::new(views::approve::ApproveView::sync(AppId::new(
        "argocd",
        "argocd",
        "cart-prod",
    ))));
    chars(&mut c, "cart-pr");
    let t = text(&draw(&c, 120, 30));
    assert_eq!(name_field(&t).as_deref(), Some("cart-pr"), "{t}");
    ctrl(&mut c, 'u');
    let t = text(&draw(&c, 120, 30));
    assert!(t.contains("type the application's name"), "{t}");
    assert!(
        !t.contains("cart-pru") && name_field(&t).as_deref() != Some("u"),
        "{t}"
    );
    // The palette: Ctrl-U clears, it never types `u`.
    let mut p = console();
    key(&mut p, KeyCode::Char(':'));
    chars(&mut p, "theme");
    ctrl(&mut p, 'u');
    chars(&mut p, "q");
    key(&mut p, KeyCode::Enter);
    assert!(
        p.quit_requested(),
        "the palette ran something else than `q`"
    );
}

/// Help scrolls to its last line and no further: a key up after any number of keys down
/// moves the text at once.
#[test]
fn help_stops_at_its_end() {
    let mut c = console();
    key(&mut c, KeyCode::Char('?'));
    let top = draw(&c, 80, 24);
    for _ in 0..300 {
        key(&mut c, KeyCode::Char('j'));
    }
    let bottom = lines(&draw(&c, 80, 24));
    // The last line of help sits right above the bottom border: the end, not past it.
    let n = bottom.len();
    assert!(
        bottom[n - 3].starts_with('╰') && bottom[n - 4].contains("quit"),
        "the end of help is not at the bottom:\n{}",
        bottom.join("\n")
    );
    key(&mut c, KeyCode::Char('k'));
    let up = lines(&draw(&c, 80, 24));
    assert_ne!(up, bottom, "k after scrolling to the end did not move");
    key(&mut c, KeyCode::Char('g'));
    assert_eq!(draw(&c, 80, 24), top);
    key(&mut c, KeyCode::Char('G'));
    assert_eq!(lines(&draw(&c, 80, 24)), bottom);
}

/// `sync = "d"` while diff keeps `d`: a warning, `d` stays diff, sync keeps `s`, and help
/// shows both. A swap (both rebound) is honoured.
#[test]
fn rebinding_onto_another_actions_key_warns_and_keeps_both() {
    let mut o = BTreeMap::new();
    o.insert("sync".to_string(), vec!["d".to_string()]);
    let (k, warnings) = Keymap::with_overrides(&o);
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("keys.sync") && w.contains("diff")),
        "{warnings:?}"
    );
    assert_eq!(k.keys_for(Intent::Diff), vec!["d"]);
    assert_eq!(k.keys_for(Intent::Sync), vec!["s"]);
    let mut c = console_with(Theme::built_in("default"), k);
    key(&mut c, KeyCode::Char('?'));
    let t = lines(&draw(&c, 120, 60));
    let row = |what: &str| {
        t.iter()
            .find(|l| l.contains(what))
            .cloned()
            .unwrap_or_else(|| panic!("{what} not in help:\n{}", t.join("\n")))
    };
    assert!(
        row("sync/approve").contains("  s "),
        "{}",
        row("sync/approve")
    );
    assert!(row("diff").contains("  d "), "{}", row("diff"));

    let mut swap = BTreeMap::new();
    swap.insert("sync".to_string(), vec!["d".to_string()]);
    swap.insert("diff".to_string(), vec!["s".to_string()]);
    let (k, warnings) = Keymap::with_overrides(&swap);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(k.keys_for(Intent::Sync), vec!["d"]);
    assert_eq!(k.keys_for(Intent::Diff), vec!["s"]);

    // Two actions asking for one key: neither takes it from the other.
    let mut both = BTreeMap::new();
    both.insert("sync".to_string(), vec!["x".to_string()]);
    both.insert("diff".to_string(), vec!["x".to_string()]);
    let (k, warnings) = Keymap::with_overrides(&both);
    assert!(warnings.len() >= 2, "{warnings:?}");
    assert_eq!(k.keys_for(Intent::Sync), vec!["s"]);
    assert_eq!(k.keys_for(Intent::Diff), vec!["d"]);
}

// ---- colour ----------------------------------------------------------------------------

/// The screens a colour test walks: board, apps, help, palette, approval with its
/// placeholder and cursor.
fn screens(theme: Theme) -> Vec<(String, Buffer)> {
    let mut out = Vec::new();
    let mut c = console_with(theme, Keymap::default());
    out.push(("board".into(), draw(&c, 120, 30)));
    key(&mut c, KeyCode::Char('?'));
    out.push(("help".into(), draw(&c, 120, 30)));
    key(&mut c, KeyCode::Esc);
    key(&mut c, KeyCode::Char(':'));
    chars(&mut c, "ap");
    out.push(("palette".into(), draw(&c, 120, 30)));
    key(&mut c, KeyCode::Esc);
    c.command("apps");
    out.push(("apps".into(), draw(&c, 120, 30)));
    c.push(Box::new(views::approve::ApproveView::sync(AppId::new(
        "argocd",
        "argocd",
        "cart-prod",
    ))));
    out.push(("approve".into(), draw(&c, 120, 30)));
    out
}

fn cells(buf: &Buffer) -> impl Iterator<Item = (u16, u16, &ratatui::buffer::Cell)> {
    let a = buf.area;
    (0..a.height).flat_map(move |y| (0..a.width).map(move |x| (x, y, &buf[(x, y)])))
}

#[test]
fn mono_and_no_color_paint_no_colour_at_all() {
    for (label, theme) in [
        (
            "--theme mono",
            Theme::load("mono", None, ColorDepth::TrueColor).unwrap(),
        ),
        (
            "NO_COLOR",
            Theme::load("default", None, ColorDepth::None).unwrap(),
        ),
    ] {
        for (screen, buf) in screens(theme) {
            for (x, y, cell) in cells(&buf) {
                assert!(
                    cell.fg == Color::Reset && cell.bg == Color::Reset,
                    "{label} {screen}: cell {x},{y} `{}` has fg {:?} bg {:?}",
                    cell.symbol(),
                    cell.fg,
                    cell.bg
                );
            }
        }
    }
}

#[test]
fn sixteen_colour_terminals_get_only_basic_colours() {
    let basic = |c: Color| {
        matches!(
            c,
            Color::Reset
                | Color::Black
                | Color::Red
                | Color::Green
                | Color::Yellow
                | Color::Blue
                | Color::Magenta
                | Color::Cyan
                | Color::Gray
                | Color::DarkGray
                | Color::LightRed
                | Color::LightGreen
                | Color::LightYellow
                | Color::LightBlue
                | Color::LightMagenta
                | Color::LightCyan
                | Color::White
        )
    };
    let depth = ColorDepth::from_env("", "", "xterm");
    assert_eq!(depth, ColorDepth::Ansi16);
    assert_eq!(
        ColorDepth::from_env("", "truecolor", "xterm"),
        ColorDepth::TrueColor
    );
    assert_eq!(
        ColorDepth::from_env("", "24bit", "xterm"),
        ColorDepth::TrueColor
    );
    assert_eq!(
        ColorDepth::from_env("", "", "xterm-256color"),
        ColorDepth::Ansi256
    );
    for name in built_in_names() {
        let theme = Theme::load(name, None, depth).unwrap();
        let mut coloured = 0;
        for (screen, buf) in screens(theme) {
            for (x, y, cell) in cells(&buf) {
                assert!(
                    basic(cell.fg) && basic(cell.bg),
                    "{name} {screen}: cell {x},{y} has fg {:?} bg {:?}",
                    cell.fg,
                    cell.bg
                );
                coloured += usize::from(cell.fg != Color::Reset);
            }
        }
        if name != "mono" {
            assert!(coloured > 0, "{name} lost every colour at 16 colours");
        }
    }
}

/// The light theme paints its white background under every cell of every screen,
/// including the palette popup and the approval form.
#[test]
fn light_theme_paints_its_background_everywhere() {
    for depth in [
        ColorDepth::TrueColor,
        ColorDepth::Ansi256,
        ColorDepth::Ansi16,
    ] {
        let theme = Theme::load("light", None, depth).unwrap();
        let bg = theme.background().expect("light sets a background");
        let selection = theme.style(shipdeck::tui::theme::Role::Selection).bg;
        for (screen, buf) in screens(theme) {
            for (x, y, cell) in cells(&buf) {
                assert!(
                    cell.bg == bg || Some(cell.bg) == selection,
                    "light {depth:?} {screen}: cell {x},{y} `{}` has bg {:?}",
                    cell.symbol(),
                    cell.bg
                );
            }
        }
    }
    let hc = Theme::load("high-contrast", None, ColorDepth::TrueColor).unwrap();
    assert_eq!(hc.background(), Some(Color::Rgb(0, 0, 0)));
}

/// Under NO_COLOR the focused field shows a reverse-video cursor and the terminal's own
/// cursor there; the placeholder is dim; the unfocused field draws no cursor.
#[test]
fn no_color_input_cursor_shows_and_placeholder_is_dim() {
    let theme = Theme::load("default", None, ColorDepth::None).unwrap();
    let mut c = console_with(theme, Keymap::default());
    c.push(Box::new(views::approve::ApproveView::sync(AppId::new(
        "argocd",
        "argocd",
        "cart-prod",
    ))));
    let term = draw_term(&c, 120, 30);
    let buf = term.backend().buffer().clone();
    let t = lines(&buf);
    let name_y = t.iter().position(|l| l.contains("▸ name")).unwrap() as u16;
    let reason_y = t.iter().position(|l| l.contains("reason ")).unwrap() as u16;
    let field_x = t[name_y as usize]
        .find("type the")
        .map(|b| t[name_y as usize][..b].chars().count() as u16);
    let field_x = field_x.expect("placeholder shown") - 1;
    let cursor = &buf[(field_x, name_y)];
    assert!(
        cursor.modifier.contains(Modifier::REVERSED),
        "cursor cell {field_x},{name_y} is {cursor:?}"
    );
    assert!(
        term.backend().cursor_visible(),
        "the terminal cursor is hidden"
    );
    assert_eq!(
        term.backend().cursor_position(),
        ratatui::layout::Position::new(field_x, name_y)
    );
    let placeholder = &buf[(field_x + 1, name_y)];
    assert_eq!(placeholder.symbol(), "t");
    assert!(
        placeholder.modifier.contains(Modifier::DIM),
        "placeholder {placeholder:?}"
    );
    // The reason field has no cursor.
    let reason_row: Vec<_> = (0..120).map(|x| &buf[(x, reason_y)]).collect();
    assert!(
        !reason_row
            .iter()
            .any(|c| c.modifier.contains(Modifier::REVERSED)),
        "unfocused field draws a cursor"
    );
    // Typed text is not dim; the cursor follows it.
    chars(&mut c, "cart");
    let term = draw_term(&c, 120, 30);
    let buf = term.backend().buffer();
    assert!(!buf[(field_x, name_y)].modifier.contains(Modifier::DIM));
    assert!(
        buf[(field_x + 4, name_y)]
            .modifier
            .contains(Modifier::REVERSED)
    );
    assert_eq!(
        term.backend().cursor_position(),
        ratatui::layout::Position::new(field_x + 4, name_y)
    );
}

/// What the approval form's name field holds, as drawn (its label is padded to line up with
/// the reason field's).
fn name_field(screen: &str) -> Option<String> {
    screen.lines().find_map(|l| {
        let rest = &l[l.find("▸ name")? + "▸ name".len()..];
        Some(rest.trim().trim_end_matches('│').trim().to_string())
    })
}
