//! The last word on colour, at the terminal boundary. crossterm writes every named colour
//! as a 256-colour escape (`38;5;9` for light red), which a 16-colour terminal
//! (`TERM=xterm`) may not understand; and a colour that slipped past the theme (a widget's
//! default) would show under `NO_COLOR`. Everything the console writes passes through
//! [`ColourWriter`], which rewrites each SGR sequence to the depth the terminal has:
//! 16 colours as `30-37`/`90-97` (`40-47`/`100-107`), 256 as `38;5;N`, truecolor
//! untouched, and no colour at all under `NO_COLOR` (bold, dim, reverse stay).

use super::theme::{ColorDepth, ansi16_number, from_256, to_16, to_256};
use std::io::{self, Write};

pub struct ColourWriter<W: Write> {
    inner: W,
    depth: ColorDepth,
    /// An escape sequence cut by a write boundary, held until it is complete.
    pending: Vec<u8>,
}

impl<W: Write> ColourWriter<W> {
    pub fn new(inner: W, depth: ColorDepth) -> Self {
        ColourWriter {
            inner,
            depth,
            pending: Vec::new(),
        }
    }

    pub fn depth(&self) -> ColorDepth {
        self.depth
    }

    pub fn get_ref(&self) -> &W {
        &self.inner
    }
}

impl<W: Write> Write for ColourWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.depth == ColorDepth::TrueColor && self.pending.is_empty() {
            return self.inner.write(buf);
        }
        let mut out = Vec::with_capacity(buf.len() + 16);
        for &b in buf {
            if self.pending.is_empty() {
                if b == 0x1b {
                    self.pending.push(b);
                } else {
                    out.push(b);
                }
                continue;
            }
            self.pending.push(b);
            let seq = &self.pending;
            if seq.len() == 2 {
                if b != b'[' {
                    out.extend_from_slice(seq);
                    self.pending.clear();
                }
                continue;
            }
            if (0x40..=0x7e).contains(&b) {
                out.extend_from_slice(&rewrite(seq, self.depth));
                self.pending.clear();
            } else if seq.len() > 256 {
                out.extend_from_slice(seq);
                self.pending.clear();
            }
        }
        self.inner.write_all(&out)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// One complete CSI sequence (`ESC [ ... final`) at `depth`.
pub fn rewrite(seq: &[u8], depth: ColorDepth) -> Vec<u8> {
    let Some(body) = seq
        .strip_prefix(b"\x1b[")
        .and_then(|s| s.strip_suffix(b"m"))
    else {
        return seq.to_vec();
    };
    if !body.iter().all(|b| b.is_ascii_digit() || *b == b';') {
        return seq.to_vec();
    }
    let text = String::from_utf8_lossy(body);
    let params: Vec<u32> = if text.is_empty() {
        vec![0]
    } else {
        text.split(';').map(|p| p.parse().unwrap_or(0)).collect()
    };
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < params.len() {
        let p = params[i];
        match p {
            38 | 48 | 58 => {
                let (rgb, idx, used) = match params.get(i + 1) {
                    Some(5) => (None, params.get(i + 2).map(|n| *n as u8), 3),
                    Some(2) => {
                        let c = |k: usize| params.get(i + k).copied().unwrap_or(0) as u8;
                        (Some((c(2), c(3), c(4))), None, 5)
                    }
                    _ => (None, None, 1),
                };
                i += used;
                let emit = |n: String| if p == 58 { None } else { Some(n) };
                let code = match (depth, rgb, idx) {
                    (ColorDepth::None, _, _) => None,
                    (ColorDepth::TrueColor, Some((r, g, b)), _) => {
                        Some(format!("{p};2;{r};{g};{b}"))
                    }
                    (ColorDepth::Ansi256, Some((r, g, b)), _) => {
                        Some(format!("{p};5;{}", to_256(r, g, b)))
                    }
                    (ColorDepth::Ansi256 | ColorDepth::TrueColor, None, Some(n)) => {
                        Some(format!("{p};5;{n}"))
                    }
                    (ColorDepth::Ansi16, Some((r, g, b)), _) => {
                        ansi16_number(to_16(r, g, b)).and_then(|n| emit(basic(p, n)))
                    }
                    (ColorDepth::Ansi16, None, Some(n)) => {
                        let n = if n < 16 {
                            n
                        } else {
                            let (r, g, b) = from_256(n);
                            ansi16_number(to_16(r, g, b)).unwrap_or(7)
                        };
                        emit(basic(p, n))
                    }
                    _ => None,
                };
                out.extend(code);
            }
            30..=37 | 39 | 40..=47 | 49 | 90..=97 | 100..=107 | 59 => {
                i += 1;
                if depth != ColorDepth::None || matches!(p, 39 | 49 | 59) {
                    out.push(p.to_string());
                }
            }
            _ => {
                i += 1;
                out.push(p.to_string());
            }
        }
    }
    if out.is_empty() {
        return Vec::new();
    }
    format!("\x1b[{}m", out.join(";")).into_bytes()
}

/// A basic colour as SGR: foreground 30-37/90-97, background 40-47/100-107.
fn basic(p: u32, n: u8) -> String {
    let n = u32::from(n);
    match (p, n) {
        (38, 0..=7) => format!("{}", 30 + n),
        (38, _) => format!("{}", 90 + n - 8),
        (_, 0..=7) => format!("{}", 40 + n),
        (_, _) => format!("{}", 100 + n - 8),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn through(depth: ColorDepth, chunks: &[&[u8]]) -> String {
        let mut w = ColourWriter::new(Vec::new(), depth);
        for c in chunks {
            w.write_all(c).unwrap();
        }
        String::from_utf8(w.inner).unwrap()
    }

    #[test]
    fn sixteen_colours_are_basic_sgr() {
        let s = through(
            ColorDepth::Ansi16,
            &[
                b"a\x1b[38;5;9m",
                b"b\x1b[48;",
                b"5;0mc\x1b[38;2;255;0;0m\x1b[38;5;196m",
            ],
        );
        assert_eq!(s, "a\x1b[91mb\x1b[40mc\x1b[31m\x1b[31m");
        assert!(!s.contains("38;5;"));
        // Cursor moves and other sequences pass untouched.
        assert_eq!(
            through(ColorDepth::Ansi16, &[b"\x1b[2;3H\x1b[?25l"]),
            "\x1b[2;3H\x1b[?25l"
        );
    }

    #[test]
    fn no_colour_keeps_attributes_only() {
        let s = through(
            ColorDepth::None,
            &[b"\x1b[1m\x1b[38;5;8m\x1b[48;2;1;2;3mx\x1b[39;49;7m\x1b[31;1m"],
        );
        assert_eq!(s, "\x1b[1mx\x1b[39;49;7m\x1b[1m");
    }

    #[test]
    fn truecolor_passes_and_256_reduces_rgb() {
        assert_eq!(
            through(ColorDepth::TrueColor, &[b"\x1b[38;2;1;2;3m"]),
            "\x1b[38;2;1;2;3m"
        );
        assert_eq!(
            through(ColorDepth::Ansi256, &[b"\x1b[38;2;255;0;0m"]),
            "\x1b[38;5;196m"
        );
    }
}
