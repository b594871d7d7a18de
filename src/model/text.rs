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

/// Make outside text safe and truthful to draw: every character that would act on the
/// terminal or not show (escape sequences, control characters, bidi overrides, zero-width
/// and other invisible characters) is shown as a visible escape `\u{202e}` instead of
/// being hidden, and credentials in URLs are hidden ([`redact_credentials`]). Returns the
/// input unchanged (borrowed) when it is already clean.
///
/// Two different strings never display the same: the display can be read back
/// ([`undisplay`]). A run of backslashes that precedes `u{` or an escaped character is
/// doubled, so a name that literally contains `\u{202e}` shows as `\\u{202e}` and never
/// as the name that contains U+202E. An escape sequence shows whole (`\u{1b}[2K`), so
/// `evil\x1b[2K-dev` cannot pass for `evil-dev`.
pub fn sanitize(s: &str) -> Cow<'_, str> {
    match redact_credentials(s) {
        Cow::Owned(redacted) => Cow::Owned(escape_unsafe(&redacted).into_owned()),
        Cow::Borrowed(s) => escape_unsafe(s),
    }
}

fn escape_unsafe(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) && !s.contains("\\u{") {
        return Cow::Borrowed(s);
    }
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() + 16);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\\' {
            let run = chars[i..].iter().take_while(|c| **c == '\\').count();
            let next = chars.get(i + run).copied();
            let ambiguous = match next {
                Some('u') => chars.get(i + run + 1) == Some(&'{'),
                Some(n) => is_unsafe(n),
                None => false,
            };
            let n = if ambiguous { 2 * run } else { run };
            out.extend(std::iter::repeat_n('\\', n));
            i += run;
            continue;
        }
        if is_unsafe(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
        i += 1;
    }
    Cow::Owned(out)
}

/// Read a display of [`sanitize`] back into the text it shows (what an operator typed
/// after copying a name from the screen). The inverse of the escaping (credentials stay
/// hidden).
pub fn undisplay(s: &str) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] != '\\' {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let run = chars[i..].iter().take_while(|c| **c == '\\').count();
        let rest = &chars[i + run..];
        let starts = rest.first() == Some(&'u') && rest.get(1) == Some(&'{');
        let escaped = starts
            .then(|| {
                let close = rest.iter().position(|c| *c == '}')?;
                let hex: String = rest[2..close].iter().collect();
                let c = u32::from_str_radix(&hex, 16)
                    .ok()
                    .and_then(char::from_u32)?;
                Some((c, close + 1))
            })
            .flatten();
        match escaped {
            Some((c, len)) if run % 2 == 1 => {
                out.extend(std::iter::repeat_n('\\', run / 2));
                out.push(c);
                i += run + len;
            }
            _ if starts && run % 2 == 0 => {
                out.extend(std::iter::repeat_n('\\', run / 2));
                i += run;
            }
            _ => {
                out.extend(std::iter::repeat_n('\\', run));
                i += run;
            }
        }
    }
    out
}

/// Like [`sanitize`] but keeps newlines and shows a tab as a space, for free text
/// (commit messages, diffs, logs) that the caller splits into lines itself.
pub fn sanitize_multiline(s: &str) -> String {
    s.split('\n')
        .map(|line| sanitize(&line.trim_end_matches('\r').replace('\t', " ")).into_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Characters that act on a terminal or do not show: controls (C0, DEL, C1), bidi
/// embeddings, overrides and isolates, zero-width and other format characters, line and
/// paragraph separators, and anything the terminal draws zero columns wide (combining
/// marks, variation selectors: `e\u{301}` must not look like `é`).
fn is_unsafe(c: char) -> bool {
    use unicode_width::UnicodeWidthChar;
    if c.is_ascii() {
        return c.is_ascii_control();
    }
    c.is_control()
        || matches!(
            c,
            '\u{ad}'
                | '\u{34f}'
                | '\u{61c}'
                | '\u{115f}'
                | '\u{1160}'
                | '\u{17b4}'
                | '\u{17b5}'
                | '\u{180b}'..='\u{180f}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{206f}'
                | '\u{3164}'
                | '\u{fe00}'..='\u{fe0f}'
                | '\u{feff}'
                | '\u{ffa0}'
                | '\u{fff9}'..='\u{fffb}'
                | '\u{e0000}'..='\u{e0fff}'
        )
        || c.width().unwrap_or(0) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_text_is_borrowed() {
        assert!(matches!(sanitize("shop-prod"), Cow::Borrowed(_)));
    }

    #[test]
    fn shows_escape_sequences_and_controls() {
        assert_eq!(
            sanitize("a\u{1b}[31mred\u{1b}[0m"),
            "a\\u{1b}[31mred\\u{1b}[0m"
        );
        assert_eq!(sanitize("x\u{1b}]0;pwned\u{7}y"), "x\\u{1b}]0;pwned\\u{7}y");
        assert_eq!(sanitize("a\rb\u{8}c\u{0}"), "a\\u{d}b\\u{8}c\\u{0}");
        assert_eq!(sanitize("a\tb"), "a\\u{9}b");
        assert_eq!(sanitize("\u{9b}2Jboom"), "\\u{9b}2Jboom");
        assert_eq!(sanitize("RED\u{202e}X"), "RED\\u{202e}X");
        assert_eq!(sanitize("trailing\u{1b}"), "trailing\\u{1b}");
        assert_eq!(sanitize("e\u{301}"), "e\\u{301}");
        // Backslashes elsewhere are left alone (paths, JSON in logs).
        assert!(matches!(
            sanitize("C:\\\\Users\\x \\u0041"),
            Cow::Borrowed(_)
        ));
        assert_eq!(sanitize("a\\u{41}"), "a\\\\u{41}");
    }

    #[test]
    fn display_reads_back() {
        for s in [
            "RED\u{202e}X",
            "a\\u{202e}",
            "a\\\u{202e}",
            "\\\\u{1b}x\\",
            "evil\u{1b}[2K-dev",
            "plain",
            "\\",
            "\\u{zz}",
            "\\\\\u{7}",
        ] {
            assert_eq!(undisplay(&sanitize(s)), s, "{s:?} -> {:?}", sanitize(s));
        }
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
