//! Colour themes: semantic names (text, synced, degraded, diff_add, ...) mapped to styles.
//! The five built-in themes are compiled in from `themes/*.toml`; a file of the same name in
//! the user's themes dir overrides only the keys it sets. Colours are reduced to what the
//! terminal can show (truecolor -> 256 -> 16). This room never decides what a status means;
//! views pick the semantic name, the theme picks the colour.

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

const BUILT_IN: &[(&str, &str)] = &[
    ("default", include_str!("../../themes/default.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
    ("colorblind", include_str!("../../themes/colorblind.toml")),
    ("mono", include_str!("../../themes/mono.toml")),
];

/// Names of the built-in themes, for `:theme` completion and `--theme` help.
pub fn built_in_names() -> impl Iterator<Item = &'static str> {
    BUILT_IN.iter().map(|(n, _)| *n)
}

#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    #[error("unknown theme `{0}`: built in are default, light, high-contrast, colorblind, mono")]
    Unknown(String),
    #[error("theme file {path}: {detail}")]
    Parse { path: String, detail: String },
}

/// How many colours the terminal shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorDepth {
    TrueColor,
    Ansi256,
    Ansi16,
    /// `NO_COLOR`: no colour at all.
    None,
}

impl ColorDepth {
    /// Decide from the environment as terminals advertise it: `NO_COLOR` (any non-empty
    /// value) wins, then `COLORTERM=truecolor|24bit`, then a `TERM` naming 256 colours.
    pub fn detect() -> Self {
        let get = |k: &str| std::env::var(k).unwrap_or_default();
        Self::from_env(&get("NO_COLOR"), &get("COLORTERM"), &get("TERM"))
    }

    pub fn from_env(no_color: &str, colorterm: &str, term: &str) -> Self {
        if !no_color.is_empty() {
            ColorDepth::None
        } else if matches!(colorterm, "truecolor" | "24bit") {
            ColorDepth::TrueColor
        } else if term.contains("256color") || term.contains("direct") {
            ColorDepth::Ansi256
        } else {
            ColorDepth::Ansi16
        }
    }
}

/// Every semantic style a view may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    Text,
    Muted,
    Accent,
    Border,
    Selection,
    Synced,
    OutOfSync,
    Healthy,
    Progressing,
    Degraded,
    Missing,
    Suspended,
    Unknown,
    DiffAdd,
    DiffRemove,
    Warning,
    Danger,
}

impl Role {
    pub const ALL: &'static [Role] = &[
        Role::Text,
        Role::Muted,
        Role::Accent,
        Role::Border,
        Role::Selection,
        Role::Synced,
        Role::OutOfSync,
        Role::Healthy,
        Role::Progressing,
        Role::Degraded,
        Role::Missing,
        Role::Suspended,
        Role::Unknown,
        Role::DiffAdd,
        Role::DiffRemove,
        Role::Warning,
        Role::Danger,
    ];

    pub fn key(self) -> &'static str {
        match self {
            Role::Text => "text",
            Role::Muted => "muted",
            Role::Accent => "accent",
            Role::Border => "border",
            Role::Selection => "selection",
            Role::Synced => "synced",
            Role::OutOfSync => "out_of_sync",
            Role::Healthy => "healthy",
            Role::Progressing => "progressing",
            Role::Degraded => "degraded",
            Role::Missing => "missing",
            Role::Suspended => "suspended",
            Role::Unknown => "unknown",
            Role::DiffAdd => "diff_add",
            Role::DiffRemove => "diff_remove",
            Role::Warning => "warning",
            Role::Danger => "danger",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum StyleSpec {
    Color(String),
    Full {
        #[serde(default)]
        fg: Option<String>,
        #[serde(default)]
        bg: Option<String>,
        #[serde(default)]
        bold: bool,
        #[serde(default)]
        dim: bool,
        #[serde(default)]
        reverse: bool,
        #[serde(default)]
        underline: bool,
    },
}

#[derive(Debug, Deserialize)]
struct ThemeFile {
    #[serde(default)]
    name: Option<String>,
    /// The background the theme's colours were chosen for; painted under every cell when
    /// set (a light theme on a dark terminal would otherwise be near invisible). Unset or
    /// `"terminal"`: the terminal's own background.
    #[serde(default)]
    background: Option<String>,
    #[serde(default)]
    colors: BTreeMap<String, StyleSpec>,
}

/// A resolved theme: one style per role, already reduced to the terminal's colour depth.
#[derive(Debug, Clone)]
pub struct Theme {
    pub name: String,
    styles: BTreeMap<Role, Style>,
    /// The painted background, already reduced to the terminal's depth.
    background: Option<Color>,
    /// Problems found while loading (unknown keys, bad colours), shown as warnings.
    pub warnings: Vec<String>,
}

impl Theme {
    /// Load a theme by name: the built-in one, overlaid by `<user_dir>/<name>.toml` when that
    /// file exists. A user file for a name that is not built in overlays `default`.
    pub fn load(
        name: &str,
        user_dir: Option<&Path>,
        depth: ColorDepth,
    ) -> Result<Theme, ThemeError> {
        let name = if depth == ColorDepth::None {
            "mono"
        } else {
            name
        };
        let user = user_dir
            .map(|d| d.join(format!("{name}.toml")))
            .filter(|p| p.is_file());
        let base = BUILT_IN.iter().find(|(n, _)| *n == name).map(|(_, t)| *t);
        let (base, base_name) = match (base, &user) {
            (Some(b), _) => (b, name),
            (None, Some(_)) => (BUILT_IN[0].1, "default"),
            (None, None) => return Err(ThemeError::Unknown(name.to_string())),
        };
        let mut theme = Theme {
            name: name.to_string(),
            styles: BTreeMap::new(),
            background: None,
            warnings: Vec::new(),
        };
        theme.overlay(base, &format!("built-in theme {base_name}"), depth)?;
        if let Some(path) = user {
            match std::fs::read_to_string(&path) {
                Ok(text) => theme.overlay(&text, &path.display().to_string(), depth)?,
                Err(e) => theme
                    .warnings
                    .push(format!("cannot read {}: {e}", path.display())),
            }
        }
        Ok(theme)
    }

    /// A built-in theme at full colour; never fails (used by tests and as a fallback).
    pub fn built_in(name: &str) -> Theme {
        Theme::load(name, None, ColorDepth::TrueColor).unwrap_or_else(|_| Theme::fallback())
    }

    fn fallback() -> Theme {
        Theme {
            name: "fallback".into(),
            styles: BTreeMap::new(),
            background: None,
            warnings: vec!["built-in themes failed to load".into()],
        }
    }

    fn overlay(&mut self, text: &str, origin: &str, depth: ColorDepth) -> Result<(), ThemeError> {
        let file: ThemeFile = toml::from_str(text).map_err(|e| ThemeError::Parse {
            path: origin.to_string(),
            detail: e.to_string(),
        })?;
        let _ = file.name;
        match file.background.as_deref() {
            None => {}
            Some("terminal") => self.background = None,
            Some(c) => match parse_color(c) {
                Ok(c) if depth != ColorDepth::None => self.background = Some(reduce(c, depth)),
                Ok(_) => self.background = None,
                Err(bad) => self
                    .warnings
                    .push(format!("{origin}: key `background`: bad colour `{bad}`")),
            },
        }
        for (key, spec) in file.colors {
            let Some(role) = Role::ALL.iter().copied().find(|r| r.key() == key) else {
                self.warnings
                    .push(format!("{origin}: unknown key `{key}` ignored"));
                continue;
            };
            match resolve(&spec, depth) {
                Ok(style) => {
                    self.styles.insert(role, style);
                }
                Err(bad) => self
                    .warnings
                    .push(format!("{origin}: key `{key}`: bad colour `{bad}`")),
            }
        }
        Ok(())
    }

    /// A role's style, on the theme's background when it paints one.
    pub fn style(&self, role: Role) -> Style {
        let style = self.styles.get(&role).copied().unwrap_or_default();
        match (self.background, style.bg) {
            (Some(bg), None) => style.bg(bg),
            _ => style,
        }
    }

    /// The background the theme paints, if any.
    pub fn background(&self) -> Option<Color> {
        self.background
    }

    /// The selection style patched over a row's own style.
    pub fn selected(&self, base: Style) -> Style {
        base.patch(self.style(Role::Selection))
    }
}

fn resolve(spec: &StyleSpec, depth: ColorDepth) -> Result<Style, String> {
    let mut style = Style::default();
    let (fg, bg, bold, dim, reverse, underline) = match spec {
        StyleSpec::Color(c) => (Some(c), None, false, false, false, false),
        StyleSpec::Full {
            fg,
            bg,
            bold,
            dim,
            reverse,
            underline,
        } => (fg.as_ref(), bg.as_ref(), *bold, *dim, *reverse, *underline),
    };
    if let Some(c) = fg {
        style = style.fg(reduce(parse_color(c)?, depth));
    }
    if let Some(c) = bg {
        style = style.bg(reduce(parse_color(c)?, depth));
    }
    for (on, m) in [
        (bold, Modifier::BOLD),
        (dim, Modifier::DIM),
        (reverse, Modifier::REVERSED),
        (underline, Modifier::UNDERLINED),
    ] {
        if on {
            style = style.add_modifier(m);
        }
    }
    Ok(style)
}

fn parse_color(s: &str) -> Result<Color, String> {
    s.parse::<Color>().map_err(|_| s.to_string())
}

/// Reduce a colour to what the terminal can show.
pub fn reduce(c: Color, depth: ColorDepth) -> Color {
    match (c, depth) {
        (_, ColorDepth::None) => Color::Reset,
        (Color::Rgb(r, g, b), ColorDepth::Ansi256) => Color::Indexed(to_256(r, g, b)),
        (Color::Rgb(r, g, b), ColorDepth::Ansi16) => to_16(r, g, b),
        (Color::Indexed(i), ColorDepth::Ansi16) if i >= 16 => {
            let (r, g, b) = from_256(i);
            to_16(r, g, b)
        }
        (c, _) => c,
    }
}

const CUBE: [u8; 6] = [0, 95, 135, 175, 215, 255];

fn nearest_cube(v: u8) -> usize {
    CUBE.iter()
        .enumerate()
        .min_by_key(|(_, c)| (i32::from(**c) - i32::from(v)).abs())
        .map(|(i, _)| i)
        .unwrap_or(0)
}

fn dist(a: (u8, u8, u8), b: (u8, u8, u8)) -> i32 {
    let d = |x: u8, y: u8| (i32::from(x) - i32::from(y)).pow(2);
    d(a.0, b.0) + d(a.1, b.1) + d(a.2, b.2)
}

pub(crate) fn to_256(r: u8, g: u8, b: u8) -> u8 {
    let (ri, gi, bi) = (nearest_cube(r), nearest_cube(g), nearest_cube(b));
    let cube = (CUBE[ri], CUBE[gi], CUBE[bi]);
    let cube_index = 16 + 36 * ri + 6 * gi + bi;
    let avg = (u32::from(r) + u32::from(g) + u32::from(b)) / 3;
    let gray_step = ((avg.saturating_sub(8)) / 10).min(23) as u8;
    let gray_level = 8 + 10 * gray_step;
    let gray = (gray_level, gray_level, gray_level);
    if dist((r, g, b), gray) < dist((r, g, b), cube) {
        232 + gray_step
    } else {
        cube_index as u8
    }
}

pub(crate) fn from_256(i: u8) -> (u8, u8, u8) {
    if i >= 232 {
        let v = 8 + 10 * (i - 232);
        (v, v, v)
    } else {
        let i = usize::from(i - 16);
        (CUBE[i / 36], CUBE[(i / 6) % 6], CUBE[i % 6])
    }
}

pub(crate) fn to_16(r: u8, g: u8, b: u8) -> Color {
    const ANSI: [(Color, (u8, u8, u8)); 16] = [
        (Color::Black, (0, 0, 0)),
        (Color::Red, (205, 49, 49)),
        (Color::Green, (13, 188, 121)),
        (Color::Yellow, (229, 229, 16)),
        (Color::Blue, (36, 114, 200)),
        (Color::Magenta, (188, 63, 188)),
        (Color::Cyan, (17, 168, 205)),
        (Color::Gray, (229, 229, 229)),
        (Color::DarkGray, (102, 102, 102)),
        (Color::LightRed, (241, 76, 76)),
        (Color::LightGreen, (35, 209, 139)),
        (Color::LightYellow, (245, 245, 67)),
        (Color::LightBlue, (59, 142, 234)),
        (Color::LightMagenta, (214, 112, 214)),
        (Color::LightCyan, (41, 184, 219)),
        (Color::White, (255, 255, 255)),
    ];
    ANSI.iter()
        .min_by_key(|(_, rgb)| dist((r, g, b), *rgb))
        .map(|(c, _)| *c)
        .unwrap_or(Color::Reset)
}

/// The 16 basic colours by their ANSI number (0-7 normal, 8-15 bright).
pub(crate) fn ansi16_number(c: Color) -> Option<u8> {
    Some(match c {
        Color::Black => 0,
        Color::Red => 1,
        Color::Green => 2,
        Color::Yellow => 3,
        Color::Blue => 4,
        Color::Magenta => 5,
        Color::Cyan => 6,
        Color::Gray => 7,
        Color::DarkGray => 8,
        Color::LightRed => 9,
        Color::LightGreen => 10,
        Color::LightYellow => 11,
        Color::LightBlue => 12,
        Color::LightMagenta => 13,
        Color::LightCyan => 14,
        Color::White => 15,
        _ => return None,
    })
}

/// `--theme NAME` must name a theme (built in, or a file in the config dir's `themes/`):
/// a typo is a usage error with the list, not a silent fallback.
pub fn check_theme(name: &str) -> Result<(), String> {
    let dir = crate::paths::config_dir().map(|d| d.join("themes"));
    Theme::load(name, dir.as_deref(), ColorDepth::TrueColor)
        .map(|_| ())
        .map_err(|e| {
            let mut names: Vec<String> = built_in_names().map(str::to_string).collect();
            if let Some(Ok(entries)) = dir.as_deref().map(std::fs::read_dir) {
                names.extend(entries.flatten().filter_map(|e| {
                    let p = e.path();
                    let stem = p.file_stem()?.to_string_lossy().into_owned();
                    (p.extension()? == "toml").then_some(stem)
                }));
            }
            let why = match e {
                ThemeError::Unknown(_) => "no such theme".to_string(),
                other => other.to_string(),
            };
            format!("--theme {name}: {why}; available: {}", names.join(", "))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_in_theme_sets_every_role() {
        for name in built_in_names() {
            let t = Theme::load(name, None, ColorDepth::TrueColor).unwrap();
            assert!(t.warnings.is_empty(), "{name}: {:?}", t.warnings);
            for role in Role::ALL {
                assert!(t.styles.contains_key(role), "{name} lacks {}", role.key());
            }
        }
    }

    #[test]
    fn depth_follows_environment() {
        assert_eq!(
            ColorDepth::from_env("1", "truecolor", "xterm-256color"),
            ColorDepth::None
        );
        assert_eq!(
            ColorDepth::from_env("", "truecolor", "xterm"),
            ColorDepth::TrueColor
        );
        assert_eq!(
            ColorDepth::from_env("", "", "screen-256color"),
            ColorDepth::Ansi256
        );
        assert_eq!(ColorDepth::from_env("", "", "screen"), ColorDepth::Ansi16);
    }

    #[test]
    fn colours_reduce() {
        assert_eq!(
            reduce(Color::Rgb(255, 0, 0), ColorDepth::Ansi256),
            Color::Indexed(196)
        );
        assert_eq!(
            reduce(Color::Rgb(128, 128, 128), ColorDepth::Ansi256),
            Color::Indexed(244)
        );
        assert_eq!(
            reduce(Color::Rgb(250, 80, 80), ColorDepth::Ansi16),
            Color::LightRed
        );
        let t = Theme::load("default", None, ColorDepth::Ansi16).unwrap();
        assert!(!matches!(t.style(Role::Degraded).fg, Some(Color::Rgb(..))));
    }

    #[test]
    fn no_color_gives_mono_and_user_file_overrides() {
        let t = Theme::load("default", None, ColorDepth::None).unwrap();
        assert_eq!(t.name, "mono");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("default.toml"),
            "[colors]\nsynced = \"#010203\"\nbogus = \"red\"\n",
        )
        .unwrap();
        let t = Theme::load("default", Some(dir.path()), ColorDepth::TrueColor).unwrap();
        assert_eq!(t.style(Role::Synced).fg, Some(Color::Rgb(1, 2, 3)));
        assert!(t.style(Role::Degraded).fg.is_some());
        assert_eq!(t.warnings.len(), 1);
        assert!(Theme::load("nope", None, ColorDepth::TrueColor).is_err());
    }
}
