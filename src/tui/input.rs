//! Text fields, one behaviour everywhere (approval name and reason, palette, filters, build
//! form): printable characters type (never with Ctrl or Alt held: Ctrl-U is not `u`),
//! Backspace deletes one character, Ctrl-U clears the field, Ctrl-W deletes a word. The
//! field's cursor is drawn in reverse video (visible without colour) and placed as the
//! terminal's own cursor; a placeholder is set apart by dim, not by colour alone.

use super::theme::{Role, Theme};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::Frame;
use ratatui::layout::{Position, Rect};
use ratatui::style::Modifier;
use ratatui_textarea::{CursorMove, TextArea};
use unicode_width::UnicodeWidthStr;

/// The keys every text field takes besides typing, for footers while typing.
pub const FIELD_KEYS: &[(&str, &str)] = &[("Ctrl-U", "clear")];

fn ctrl(key: &KeyEvent, c: char) -> bool {
    key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char(c)
}

/// Edit a one-line field held as a `String`. Returns true when the key was a field key
/// (whether or not it changed anything), false when it is not the field's to take.
pub fn edit_line(s: &mut String, key: &KeyEvent) -> bool {
    let modified = key
        .modifiers
        .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT);
    match key.code {
        _ if ctrl(key, 'u') => s.clear(),
        _ if ctrl(key, 'w') => {
            let keep = s.trim_end().rfind(' ').map(|i| i + 1).unwrap_or(0);
            s.truncate(keep);
        }
        KeyCode::Backspace => {
            s.pop();
        }
        KeyCode::Char(c) if !modified && !c.is_control() => s.push(c),
        _ => return false,
    }
    true
}

/// Edit a `TextArea` field: Ctrl-U clears it (the text area's own Ctrl-U is undo), the
/// rest goes to the text area.
pub fn edit_area(ta: &mut TextArea<'static>, key: &KeyEvent) {
    if ctrl(key, 'u') {
        ta.move_cursor(CursorMove::Bottom);
        ta.move_cursor(CursorMove::End);
        while !ta.is_empty() {
            if !ta.delete_line_by_head() && !ta.delete_newline() {
                break;
            }
        }
        return;
    }
    ta.input(*key);
}

/// Draw a text field with the theme's styles: the focused one shows a reverse-video
/// cursor (and the terminal's cursor there), an unfocused one none; the placeholder is
/// muted and dim.
pub fn draw_area(
    frame: &mut Frame,
    area: Rect,
    ta: &TextArea<'static>,
    theme: &Theme,
    focused: bool,
) {
    let mut ta = ta.clone();
    ta.set_style(theme.style(Role::Text));
    ta.set_placeholder_style(theme.style(Role::Muted).add_modifier(Modifier::DIM));
    ta.set_cursor_line_style(theme.style(Role::Text));
    ta.set_cursor_style(if focused {
        theme.style(Role::Text).add_modifier(Modifier::REVERSED)
    } else {
        theme.style(Role::Text)
    });
    frame.render_widget(&ta, area);
    if focused && area.width > 0 && area.height > 0 {
        let ratatui_textarea::DataCursor(row, col) = ta.cursor();
        let line = ta.lines().get(row).map(String::as_str).unwrap_or("");
        let before: String = line.chars().take(col).collect();
        let x = (before.width() as u16).min(area.width - 1);
        frame.set_cursor_position(Position::new(area.x + x, area.y));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(code: KeyCode, m: KeyModifiers) -> KeyEvent {
        KeyEvent::new(code, m)
    }

    #[test]
    fn ctrl_u_clears_and_ctrl_letters_never_type() {
        let mut s = String::from("shop prod");
        assert!(edit_line(
            &mut s,
            &k(KeyCode::Char('w'), KeyModifiers::CONTROL)
        ));
        assert_eq!(s, "shop ");
        assert!(edit_line(
            &mut s,
            &k(KeyCode::Char('u'), KeyModifiers::CONTROL)
        ));
        assert_eq!(s, "");
        assert!(!edit_line(
            &mut s,
            &k(KeyCode::Char('x'), KeyModifiers::CONTROL)
        ));
        assert!(edit_line(
            &mut s,
            &k(KeyCode::Char('X'), KeyModifiers::SHIFT)
        ));
        assert_eq!(s, "X");
        let mut ta = TextArea::default();
        ta.insert_str("payments-prod");
        edit_area(&mut ta, &k(KeyCode::Char('u'), KeyModifiers::CONTROL));
        assert!(ta.is_empty(), "{:?}", ta.lines());
    }
}
