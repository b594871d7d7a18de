//! Keys to intents. The console never matches raw keys in views (except inside text fields);
//! it asks the keymap which [`Intent`] a key means. Defaults follow DESIGN.md "Screens and
//! keys" (k9s/argonaut habits); config may rebind any intent with strings like `"ctrl-r"`,
//! `"shift-g"`, `"pgdn"`, `"x"`.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use std::collections::BTreeMap;

/// What a key asks for, independent of which key it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Intent {
    Up,
    Down,
    Left,
    Right,
    Top,
    Bottom,
    PageUp,
    PageDown,
    Open,
    Back,
    Filter,
    NextMatch,
    PrevMatch,
    Palette,
    Help,
    Sync,
    Diff,
    Rollback,
    /// Turn the app's auto-sync on or off (approval when turning it on in a gated env).
    AutoSync,
    Rollout,
    Build,
    Builds,
    /// Promote the board cell's service into its environment from the one before.
    Promote,
    Events,
    Logs,
    Mark,
    Refresh,
    Sort,
    NextSection,
    Quit,
}

impl Intent {
    pub const ALL: &'static [Intent] = &[
        Intent::Up,
        Intent::Down,
        Intent::Left,
        Intent::Right,
        Intent::Top,
        Intent::Bottom,
        Intent::PageUp,
        Intent::PageDown,
        Intent::Open,
        Intent::Back,
        Intent::Filter,
        Intent::NextMatch,
        Intent::PrevMatch,
        Intent::Palette,
        Intent::Help,
        Intent::Sync,
        Intent::Diff,
        Intent::Rollback,
        Intent::AutoSync,
        Intent::Rollout,
        Intent::Build,
        Intent::Builds,
        Intent::Promote,
        Intent::Events,
        Intent::Logs,
        Intent::Mark,
        Intent::Refresh,
        Intent::Sort,
        Intent::NextSection,
        Intent::Quit,
    ];

    /// The name used in config (`[keys] sync = "s"`).
    pub fn name(self) -> &'static str {
        match self {
            Intent::Up => "up",
            Intent::Down => "down",
            Intent::Left => "left",
            Intent::Right => "right",
            Intent::Top => "top",
            Intent::Bottom => "bottom",
            Intent::PageUp => "page_up",
            Intent::PageDown => "page_down",
            Intent::Open => "open",
            Intent::Back => "back",
            Intent::Filter => "filter",
            Intent::NextMatch => "next_match",
            Intent::PrevMatch => "prev_match",
            Intent::Palette => "palette",
            Intent::Help => "help",
            Intent::Sync => "sync",
            Intent::Diff => "diff",
            Intent::Rollback => "rollback",
            Intent::AutoSync => "autosync",
            Intent::Rollout => "rollout",
            Intent::Build => "build",
            Intent::Builds => "builds",
            Intent::Promote => "promote",
            Intent::Events => "events",
            Intent::Logs => "logs",
            Intent::Mark => "mark",
            Intent::Refresh => "refresh",
            Intent::Sort => "sort",
            Intent::NextSection => "next_section",
            Intent::Quit => "quit",
        }
    }

    /// What the intent does, for the help screen.
    pub fn describe(self) -> &'static str {
        match self {
            Intent::Up => "move up",
            Intent::Down => "move down",
            Intent::Left => "previous column",
            Intent::Right => "next column",
            Intent::Top => "go to top",
            Intent::Bottom => "go to bottom",
            Intent::PageUp => "page up",
            Intent::PageDown => "page down",
            Intent::Open => "open",
            Intent::Back => "back",
            Intent::Filter => "filter",
            Intent::NextMatch => "next match",
            Intent::PrevMatch => "previous match",
            Intent::Palette => "command palette",
            Intent::Help => "help",
            Intent::Sync => "sync (approval when gated)",
            Intent::Diff => "diff",
            Intent::Rollback => "history and rollback",
            Intent::AutoSync => "turn auto-sync on or off",
            Intent::Rollout => "rollout",
            Intent::Build => "trigger a build",
            Intent::Builds => "builds",
            Intent::Promote => "promote from the environment before",
            Intent::Events => "events",
            Intent::Logs => "logs of the pod",
            Intent::Mark => "mark for bulk sync",
            Intent::Refresh => "refresh",
            Intent::Sort => "change sort",
            Intent::NextSection => "next section",
            Intent::Quit => "quit",
        }
    }
}

/// A key with its modifiers, comparable and printable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Chord {
    pub code: KeyCodeKey,
    pub ctrl: bool,
    pub alt: bool,
}

/// The subset of key codes a binding can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyCodeKey {
    Char(char),
    Up,
    Down,
    Left,
    Right,
    Home,
    End,
    PageUp,
    PageDown,
    Enter,
    Esc,
    Tab,
    BackTab,
    Backspace,
}

impl Chord {
    pub fn from_event(ev: &KeyEvent) -> Option<Chord> {
        let code = match ev.code {
            KeyCode::Char(c) => KeyCodeKey::Char(c),
            KeyCode::Up => KeyCodeKey::Up,
            KeyCode::Down => KeyCodeKey::Down,
            KeyCode::Left => KeyCodeKey::Left,
            KeyCode::Right => KeyCodeKey::Right,
            KeyCode::Home => KeyCodeKey::Home,
            KeyCode::End => KeyCodeKey::End,
            KeyCode::PageUp => KeyCodeKey::PageUp,
            KeyCode::PageDown => KeyCodeKey::PageDown,
            KeyCode::Enter => KeyCodeKey::Enter,
            KeyCode::Esc => KeyCodeKey::Esc,
            KeyCode::Tab => KeyCodeKey::Tab,
            KeyCode::BackTab => KeyCodeKey::BackTab,
            KeyCode::Backspace => KeyCodeKey::Backspace,
            _ => return None,
        };
        Some(Chord {
            code,
            ctrl: ev.modifiers.contains(KeyModifiers::CONTROL),
            alt: ev.modifiers.contains(KeyModifiers::ALT),
        })
    }

    fn key(code: KeyCodeKey) -> Chord {
        Chord {
            code,
            ctrl: false,
            alt: false,
        }
    }

    fn ch(c: char) -> Chord {
        Chord::key(KeyCodeKey::Char(c))
    }

    fn ctrl(c: char) -> Chord {
        Chord {
            code: KeyCodeKey::Char(c),
            ctrl: true,
            alt: false,
        }
    }

    /// Parse a config string: `"s"`, `"G"`, `"shift-g"`, `"ctrl-r"`, `"alt-x"`, `"enter"`,
    /// `"esc"`, `"space"`, `"up"`, `"pgdn"`, `"tab"`.
    pub fn parse(s: &str) -> Option<Chord> {
        let mut ctrl = false;
        let mut alt = false;
        let mut shift = false;
        let mut rest = s.trim();
        loop {
            let lower = rest.to_ascii_lowercase();
            if let Some(r) = lower
                .strip_prefix("ctrl-")
                .or_else(|| lower.strip_prefix("c-"))
            {
                ctrl = true;
                rest = &rest[rest.len() - r.len()..];
            } else if let Some(r) = lower
                .strip_prefix("alt-")
                .or_else(|| lower.strip_prefix("m-"))
            {
                alt = true;
                rest = &rest[rest.len() - r.len()..];
            } else if let Some(r) = lower.strip_prefix("shift-") {
                shift = true;
                rest = &rest[rest.len() - r.len()..];
            } else {
                break;
            }
        }
        let code = match rest.to_ascii_lowercase().as_str() {
            "up" => KeyCodeKey::Up,
            "down" => KeyCodeKey::Down,
            "left" => KeyCodeKey::Left,
            "right" => KeyCodeKey::Right,
            "home" => KeyCodeKey::Home,
            "end" => KeyCodeKey::End,
            "pgup" | "pageup" => KeyCodeKey::PageUp,
            "pgdn" | "pagedown" => KeyCodeKey::PageDown,
            "enter" | "return" => KeyCodeKey::Enter,
            "esc" | "escape" => KeyCodeKey::Esc,
            "tab" => KeyCodeKey::Tab,
            "backtab" => KeyCodeKey::BackTab,
            "backspace" => KeyCodeKey::Backspace,
            "space" => KeyCodeKey::Char(' '),
            _ => {
                let mut chars = rest.chars();
                let c = chars.next()?;
                if chars.next().is_some() {
                    return None;
                }
                let c = if shift { c.to_ascii_uppercase() } else { c };
                KeyCodeKey::Char(if ctrl { c.to_ascii_lowercase() } else { c })
            }
        };
        Some(Chord { code, ctrl, alt })
    }

    pub fn label(&self) -> String {
        let base = match self.code {
            KeyCodeKey::Char(' ') => "Space".to_string(),
            KeyCodeKey::Char(c) => c.to_string(),
            KeyCodeKey::Up => "↑".into(),
            KeyCodeKey::Down => "↓".into(),
            KeyCodeKey::Left => "←".into(),
            KeyCodeKey::Right => "→".into(),
            KeyCodeKey::Home => "Home".into(),
            KeyCodeKey::End => "End".into(),
            KeyCodeKey::PageUp => "PgUp".into(),
            KeyCodeKey::PageDown => "PgDn".into(),
            KeyCodeKey::Enter => "Enter".into(),
            KeyCodeKey::Esc => "Esc".into(),
            KeyCodeKey::Tab => "Tab".into(),
            KeyCodeKey::BackTab => "S-Tab".into(),
            KeyCodeKey::Backspace => "Bksp".into(),
        };
        let mut s = String::new();
        if self.ctrl {
            s.push_str("Ctrl-");
        }
        if self.alt {
            s.push_str("Alt-");
        }
        s.push_str(&base);
        s
    }
}

/// One `[keys]` entry as read: the action, its config name, and its keys with their text.
type Wanted<'a> = (Intent, &'a str, Vec<(Chord, &'a str)>);

/// Which chords mean which intents. Several chords may mean one intent (`j` and `↓`).
#[derive(Debug, Clone)]
pub struct Keymap {
    bindings: BTreeMap<Chord, Intent>,
}

impl Default for Keymap {
    fn default() -> Self {
        Keymap {
            bindings: default_pairs().into_iter().collect(),
        }
    }
}

/// The default bindings as a list (a test checks that no chord appears twice: collected
/// into a map, a repeated chord would silently lose one action).
pub fn default_pairs() -> Vec<(Chord, Intent)> {
    {
        use KeyCodeKey as K;
        let pairs: Vec<(Chord, Intent)> = vec![
            (Chord::ch('k'), Intent::Up),
            (Chord::key(K::Up), Intent::Up),
            (Chord::ch('j'), Intent::Down),
            (Chord::key(K::Down), Intent::Down),
            (Chord::ch('h'), Intent::Left),
            (Chord::key(K::Left), Intent::Left),
            (Chord::ch('l'), Intent::Right),
            (Chord::key(K::Right), Intent::Right),
            (Chord::ch('g'), Intent::Top),
            (Chord::key(K::Home), Intent::Top),
            (Chord::ch('G'), Intent::Bottom),
            (Chord::key(K::End), Intent::Bottom),
            (Chord::key(K::PageUp), Intent::PageUp),
            (Chord::ctrl('b'), Intent::PageUp),
            (Chord::key(K::PageDown), Intent::PageDown),
            (Chord::ctrl('f'), Intent::PageDown),
            (Chord::key(K::Enter), Intent::Open),
            (Chord::key(K::Esc), Intent::Back),
            (Chord::ch('/'), Intent::Filter),
            (Chord::ch('n'), Intent::NextMatch),
            (Chord::ch('N'), Intent::PrevMatch),
            (Chord::ch(':'), Intent::Palette),
            (Chord::ch('?'), Intent::Help),
            (Chord::ch('s'), Intent::Sync),
            (Chord::ch('d'), Intent::Diff),
            (Chord::ch('R'), Intent::Rollback),
            (Chord::ch('A'), Intent::AutoSync),
            (Chord::ch('o'), Intent::Rollout),
            (Chord::ch('b'), Intent::Build),
            (Chord::ch('B'), Intent::Builds),
            (Chord::ch('p'), Intent::Promote),
            (Chord::ch('e'), Intent::Events),
            // `l` is `h`'s pair (right); logs take the capital.
            (Chord::ch('L'), Intent::Logs),
            (Chord::ch(' '), Intent::Mark),
            (Chord::ctrl('r'), Intent::Refresh),
            (Chord::ch('S'), Intent::Sort),
            (Chord::key(K::Tab), Intent::NextSection),
            (Chord::ch('q'), Intent::Quit),
            (Chord::ctrl('c'), Intent::Quit),
        ];
        pairs
    }
}

impl Keymap {
    /// Defaults overridden by config entries `intent name -> key string(s)`. A binding
    /// replaces every default chord of that intent. Bad entries come back as warnings.
    ///
    /// A key another action keeps (`sync = "d"` while diff is still on `d`), or that two
    /// entries both claim, is not taken from anyone: silently unbinding diff would make
    /// `d` do something else than the help says. The entry loses that key with a warning
    /// saying how to swap; an action left with no key keeps its defaults that are free,
    /// so every action stays reachable and listed in help.
    pub fn with_overrides(overrides: &BTreeMap<String, Vec<String>>) -> (Keymap, Vec<String>) {
        let defaults = Keymap::default();
        let mut warnings = Vec::new();
        let mut wanted: Vec<Wanted> = Vec::new();
        for (name, keys) in overrides {
            let Some(intent) = Intent::ALL.iter().copied().find(|i| i.name() == name) else {
                warnings.push(format!("keys: unknown action `{name}`"));
                continue;
            };
            let chords: Vec<(Chord, &str)> = keys
                .iter()
                .filter_map(|k| {
                    let c = Chord::parse(k);
                    if c.is_none() {
                        warnings.push(format!("keys.{name}: cannot read key `{k}`"));
                    }
                    c.map(|c| (c, k.as_str()))
                })
                .collect();
            if chords.is_empty() {
                continue;
            }
            wanted.push((intent, name.as_str(), chords));
        }
        let rebound: Vec<Intent> = wanted.iter().map(|(i, _, _)| *i).collect();
        let mut map = defaults.clone();
        map.bindings.retain(|_, i| !rebound.contains(i));
        // How many entries claim each chord (two entries on one key: neither gets it).
        let mut claims: BTreeMap<Chord, Vec<Intent>> = BTreeMap::new();
        for (intent, _, chords) in &wanted {
            for (c, _) in chords {
                let v = claims.entry(*c).or_default();
                if !v.contains(intent) {
                    v.push(*intent);
                }
            }
        }
        let mut empty = Vec::new();
        for (intent, name, chords) in &wanted {
            let mut got = 0;
            for (c, text) in chords {
                if let Some(owner) = map.bindings.get(c).copied().filter(|o| o != intent) {
                    warnings.push(format!(
                        "keys.{name} = \"{text}\": `{}` is already {}'s key; kept it for {} \
                         (to swap, rebind {} too)",
                        c.label(),
                        owner.name(),
                        owner.name(),
                        owner.name()
                    ));
                    continue;
                }
                let others: Vec<&str> = claims
                    .get(c)
                    .into_iter()
                    .flatten()
                    .filter(|i| *i != intent)
                    .map(|i| i.name())
                    .collect();
                if !others.is_empty() {
                    warnings.push(format!(
                        "keys.{name} = \"{text}\": `{}` is also asked for by {}; bound to neither",
                        c.label(),
                        others.join(", ")
                    ));
                    continue;
                }
                map.bindings.insert(*c, *intent);
                got += 1;
            }
            if got == 0 {
                empty.push((*intent, *name));
            }
        }
        for (intent, name) in empty {
            let mut kept = Vec::new();
            for (c, i) in defaults.bindings.iter().filter(|(_, i)| **i == intent) {
                if !map.bindings.contains_key(c) && !claims.contains_key(c) {
                    map.bindings.insert(*c, *i);
                    kept.push(c.label());
                }
            }
            warnings.push(if kept.is_empty() {
                format!("keys.{name}: no key left for {name}; use the palette or rebind it")
            } else {
                format!("keys.{name}: keeps its default {}", kept.join(" "))
            });
        }
        (map, warnings)
    }

    /// Actions that no key reaches (help lists them as unbound).
    pub fn unbound(&self) -> Vec<Intent> {
        Intent::ALL
            .iter()
            .copied()
            .filter(|i| !self.bindings.values().any(|b| b == i))
            .collect()
    }

    pub fn intent(&self, ev: &KeyEvent) -> Option<Intent> {
        let chord = Chord::from_event(ev)?;
        // SHIFT is not part of a chord: terminals report `G` with or without it.
        self.bindings.get(&chord).copied()
    }

    /// The first key bound to an intent, for footers ("s sync").
    pub fn key_for(&self, intent: Intent) -> String {
        self.keys_for(intent)
            .into_iter()
            .next()
            .unwrap_or_else(|| "-".into())
    }

    /// The first key of an intent that does not type into a text field (a named key or a
    /// modified one), for footers while typing; None when every key of it types.
    pub fn non_typing_key_for(&self, intent: Intent) -> Option<String> {
        self.bindings
            .iter()
            .filter(|(c, i)| {
                **i == intent && (c.ctrl || c.alt || !matches!(c.code, KeyCodeKey::Char(_)))
            })
            .map(|(c, _)| c.label())
            .next()
    }

    /// Keys bound to an intent, plain letters before modified keys and named keys.
    pub fn keys_for(&self, intent: Intent) -> Vec<String> {
        let mut chords: Vec<&Chord> = self
            .bindings
            .iter()
            .filter(|(_, i)| **i == intent)
            .map(|(c, _)| c)
            .collect();
        chords.sort_by_key(|c| {
            (
                c.ctrl || c.alt,
                !matches!(c.code, KeyCodeKey::Char(_)),
                c.label(),
            )
        });
        chords.into_iter().map(Chord::label).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(code: KeyCode, m: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, m)
    }

    #[test]
    fn defaults_follow_design() {
        let k = Keymap::default();
        assert_eq!(
            k.intent(&ev(KeyCode::Char('j'), KeyModifiers::NONE)),
            Some(Intent::Down)
        );
        assert_eq!(
            k.intent(&ev(KeyCode::Char('G'), KeyModifiers::SHIFT)),
            Some(Intent::Bottom)
        );
        assert_eq!(
            k.intent(&ev(KeyCode::Char('r'), KeyModifiers::CONTROL)),
            Some(Intent::Refresh)
        );
        assert_eq!(
            k.intent(&ev(KeyCode::Char('R'), KeyModifiers::SHIFT)),
            Some(Intent::Rollback)
        );
        assert_eq!(k.key_for(Intent::Sync), "s");
    }

    #[test]
    fn overrides_replace_and_warn() {
        let mut o = BTreeMap::new();
        o.insert("sync".to_string(), vec!["ctrl-s".to_string()]);
        o.insert("nonsense".to_string(), vec!["x".to_string()]);
        o.insert("diff".to_string(), vec!["F12x".to_string()]);
        let (k, w) = Keymap::with_overrides(&o);
        assert_eq!(
            k.intent(&ev(KeyCode::Char('s'), KeyModifiers::CONTROL)),
            Some(Intent::Sync)
        );
        assert_eq!(k.intent(&ev(KeyCode::Char('s'), KeyModifiers::NONE)), None);
        assert_eq!(
            k.intent(&ev(KeyCode::Char('d'), KeyModifiers::NONE)),
            Some(Intent::Diff)
        );
        assert_eq!(w.len(), 2);
        assert_eq!(Chord::parse("shift-g"), Chord::parse("G"));
        assert_eq!(Chord::parse("pgdn").map(|c| c.label()), Some("PgDn".into()));
    }
}
