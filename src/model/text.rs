//! Making outside text safe for a terminal. Names, annotations, commit messages, event
//! messages and logs come from people and programs shipdeck does not control; an escape
//! sequence inside one could move the cursor, change the title or worse. Everything from
//! outside passes through [`sanitize`] before it is drawn or printed.

use std::borrow::Cow;

/// Hide credentials inside URLs (`http://user:pass@host` -> `http://***@host`): a server
/// given with them must never have them echoed in a message, on screen or in the log.
pub fn redact_credentials(s: &str) -> Cow<'_, str> {
    if !s.contains("://") || !s.contains('@') {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    let mut changed = false;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at the path, the query, whitespace or a quote.
        let end = tail
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '"' | '\'' | '<' | '>') || c.is_whitespace()
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                changed = true;
                out.push_str("***");
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(s)
    }
}

/// Remove ANSI/VT escape sequences and control characters (keeping none), replacing a tab
/// with a space, and hide credentials in URLs ([`redact_credentials`]). Returns the input
/// unchanged (borrowed) when it is already clean.
pub fn sanitize(s: &str) -> Cow<'_, str> {
    match redact_credentials(s) {
        Cow::Owned(redacted) => Cow::Owned(strip_unsafe(&redacted).into_owned()),
        Cow::Borrowed(s) => strip_unsafe(s),
    }
}

fn strip_unsafe(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => skip_escape(&mut chars),
            // C1 CSI / OSC / DCS introducers: their parameters follow like ESC [ / ESC ].
            '\u{9b}' => skip_csi(&mut chars),
            '\u{9d}' | '\u{90}' | '\u{98}' | '\u{9e}' | '\u{9f}' => skip_string(&mut chars),
            '\t' => out.push(' '),
            c if is_unsafe(c) => {}
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Like [`sanitize`] but keeps newlines, for multi-line text (commit messages, logs)
/// that the caller splits into lines itself.
pub fn sanitize_multiline(s: &str) -> String {
    s.split('\n')
        .map(|line| sanitize(line.trim_end_matches('\r')).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn skip_escape(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    match chars.peek().copied() {
        Some('[') => {
            chars.next();
            skip_csi(chars);
        }
        Some(']') | Some('P') | Some('X') | Some('^') | Some('_') => {
            chars.next();
            skip_string(chars);
        }
        Some(c) if ('\u{20}'..='\u{2f}').contains(&c) => {
            // nF escape: intermediates then one final byte.
            for c in chars.by_ref() {
                if !('\u{20}'..='\u{2f}').contains(&c) {
                    break;
                }
            }
        }
        Some(_) => {
            chars.next();
        }
        None => {}
    }
}

fn skip_csi(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    for c in chars.by_ref() {
        if ('\u{40}'..='\u{7e}').contains(&c) {
            break;
        }
    }
}

/// Skip an OSC/DCS/APC/PM string until BEL or ST (ESC \ or U+9C).
fn skip_string(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) {
    while let Some(c) = chars.next() {
        match c {
            '\u{7}' | '\u{9c}' => break,
            '\u{1b}' => {
                if chars.peek() == Some(&'\\') {
                    chars.next();
                }
                break;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_text_is_borrowed() {
        assert!(matches!(sanitize("shop-prod"), Cow::Borrowed(_)));
    }

    #[test]
    fn strips_escape_sequences_and_controls() {
        assert_eq!(sanitize("a\u{1b}[31mred\u{1b}[0m"), "ared");
        assert_eq!(sanitize("x\u{1b}]0;pwned\u{7}y"), "xy");
        assert_eq!(
            sanitize("x\u{1b}]8;;http://e\u{1b}\\link\u{1b}]8;;\u{1b}\\y"),
            "xlinky"
        );
        assert_eq!(sanitize("a\rb\u{8}c\u{0}"), "abc");
        assert_eq!(sanitize("a\tb"), "a b");
        assert_eq!(sanitize("\u{9b}2Jboom"), "boom");
        assert_eq!(sanitize("rtl\u{202e}txt"), "rtltxt");
        assert_eq!(sanitize("trailing\u{1b}"), "trailing");
    }

    #[test]
    fn multiline_keeps_lines() {
        assert_eq!(sanitize_multiline("a\u{1b}[1m\r\nb"), "a\nb");
    }

    #[test]
    fn credentials_in_urls_are_hidden() {
        assert_eq!(
            sanitize(
                "http://alice:s3cret@127.0.0.1:1 unreachable: GET http://alice:s3cret@127.0.0.1:1/api/v1"
            ),
            "http://***@127.0.0.1:1 unreachable: GET http://***@127.0.0.1:1/api/v1"
        );
        assert_eq!(
            sanitize("https://tok@github.example/x"),
            "https://***@github.example/x"
        );
        // No credentials: borrowed, untouched; an e-mail in a path is not an authority.
        assert!(matches!(sanitize("http://host/a@b"), Cow::Borrowed(_)));
        assert!(matches!(sanitize("ann@example.com"), Cow::Borrowed(_)));
    }
}
