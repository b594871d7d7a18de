//! Nothing to the terminal when nothing on it changes. The loop draws after every batch of
//! source updates, and most updates (a reconcile time, an annotation) change no cell:
//! ratatui then writes no cells, but the frame would still carry its synchronized-update
//! markers and a cursor hide, some twenty bytes per batch, without end on a busy estate.
//! The gate holds each frame's bytes and drops a frame that only hides an already hidden
//! cursor; every other frame goes out whole, inside its synchronized update. A frame is
//! what the loop writes between its `BeginSynchronizedUpdate` and `EndSynchronizedUpdate`
//! (crossterm writes each marker with one `write`).

use std::io::{self, Write};

const HIDE: &[u8] = b"\x1b[?25l";
const SHOW: &[u8] = b"\x1b[?25h";
const BEGIN: &[u8] = b"\x1b[?2026h";
const END: &[u8] = b"\x1b[?2026l";

pub struct FrameGate<W: Write> {
    inner: W,
    frame: Vec<u8>,
    framing: bool,
    /// The console takes the terminal with the cursor hidden.
    cursor_hidden: bool,
}

impl<W: Write> FrameGate<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            frame: Vec::new(),
            framing: false,
            cursor_hidden: true,
        }
    }

    /// Start holding a frame.
    fn begin(&mut self) {
        self.framing = true;
        self.frame.clear();
    }

    /// The frame is complete: write it inside a synchronized update, or drop it when it
    /// would change nothing on the screen.
    fn end(&mut self) -> io::Result<()> {
        self.framing = false;
        let frame = std::mem::take(&mut self.frame);
        let idle = changes_nothing(&frame, self.cursor_hidden);
        if !idle {
            if frame.ends_with(HIDE) {
                self.cursor_hidden = true;
            } else if frame.windows(SHOW.len()).any(|w| w == SHOW) {
                self.cursor_hidden = false;
            }
            self.inner.write_all(BEGIN)?;
            self.inner.write_all(&frame)?;
            self.inner.write_all(END)?;
            self.inner.flush()?;
        }
        self.frame = frame;
        self.frame.clear();
        Ok(())
    }
}

/// Whether a frame leaves the screen as it was: only attribute settings (ratatui ends every
/// draw by resetting colours and attributes, cells or not; they colour nothing when no
/// character follows, and each draw starts again from the reset state) and a cursor hide
/// when the cursor is hidden already.
fn changes_nothing(frame: &[u8], cursor_hidden: bool) -> bool {
    let mut rest = frame;
    while !rest.is_empty() {
        if cursor_hidden && rest.starts_with(HIDE) {
            rest = &rest[HIDE.len()..];
            continue;
        }
        // `ESC [ params m`: select graphic rendition, nothing drawn.
        let Some(params) = rest.strip_prefix(b"\x1b[") else {
            return false;
        };
        let n = params
            .iter()
            .take_while(|b| b.is_ascii_digit() || **b == b';' || **b == b':')
            .count();
        if params.get(n) != Some(&b'm') {
            return false;
        }
        rest = &params[n + 1..];
    }
    true
}

impl<W: Write> Write for FrameGate<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf == BEGIN {
            self.begin();
            return Ok(buf.len());
        }
        if self.framing && buf == END {
            self.end()?;
            return Ok(buf.len());
        }
        if self.framing {
            self.frame.extend_from_slice(buf);
            Ok(buf.len())
        } else {
            self.inner.write(buf)
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        if self.framing {
            Ok(())
        } else {
            self.inner.flush()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One frame as the loop writes it: crossterm's markers around ratatui's bytes.
    fn frame(g: &mut FrameGate<Vec<u8>>, bytes: &[u8]) -> usize {
        let before = g.inner.len();
        crossterm::execute!(g, crossterm::terminal::BeginSynchronizedUpdate).expect("begin");
        g.write_all(bytes).expect("write");
        g.flush().expect("flush");
        crossterm::execute!(g, crossterm::terminal::EndSynchronizedUpdate).expect("end");
        g.inner.len() - before
    }

    #[test]
    fn a_frame_that_changes_nothing_writes_nothing() {
        let mut g = FrameGate::new(Vec::new());
        assert_eq!(frame(&mut g, b""), 0);
        assert_eq!(frame(&mut g, HIDE), 0, "the cursor is hidden already");
        let cells = b"\x1b[1;1Hhello\x1b[?25l";
        assert_eq!(frame(&mut g, cells), BEGIN.len() + cells.len() + END.len());
        assert!(g.inner.starts_with(BEGIN) && g.inner.ends_with(END));
        // Shown for a text field, then hidden again: both go out.
        let show = b"\x1b[?25h\x1b[3;4H";
        assert_eq!(frame(&mut g, show), BEGIN.len() + show.len() + END.len());
        assert_eq!(frame(&mut g, HIDE), BEGIN.len() + HIDE.len() + END.len());
        assert_eq!(frame(&mut g, HIDE), 0);
    }

    /// The oracle is ratatui itself: the same screen drawn twice through the real backend.
    #[test]
    fn ratatui_redrawing_the_same_screen_writes_nothing() {
        use ratatui::style::{Color, Style};
        use ratatui::widgets::Paragraph;
        #[derive(Clone, Default)]
        struct Shared(std::rc::Rc<std::cell::RefCell<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.borrow_mut().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let out = Shared::default();
        let mut t = ratatui::Terminal::new(ratatui::backend::CrosstermBackend::new(
            FrameGate::new(out.clone()),
        ))
        .expect("terminal");
        let _ = t.resize(ratatui::layout::Rect::new(0, 0, 20, 3));
        let mut draw = |text: &str| {
            let before = out.0.borrow().len();
            crossterm::execute!(
                t.backend_mut(),
                crossterm::terminal::BeginSynchronizedUpdate
            )
            .expect("begin");
            t.draw(|f| {
                f.render_widget(
                    Paragraph::new(text.to_string()).style(Style::new().fg(Color::Red)),
                    f.area(),
                )
            })
            .expect("draw");
            crossterm::execute!(t.backend_mut(), crossterm::terminal::EndSynchronizedUpdate)
                .expect("end");
            out.0.borrow().len() - before
        };
        assert!(draw("cart Synced") > 0, "the first frame paints");
        assert_eq!(
            draw("cart Synced"),
            0,
            "the same frame again writes nothing"
        );
        assert!(draw("cart OutOfSync") > 0, "a changed cell goes out");
        assert_eq!(draw("cart OutOfSync"), 0);
    }

    #[test]
    fn attribute_settings_alone_change_nothing_and_text_does() {
        assert!(changes_nothing(b"\x1b[39m\x1b[49m\x1b[59m\x1b[0m", true));
        assert!(changes_nothing(
            b"\x1b[39m\x1b[49m\x1b[59m\x1b[0m\x1b[?25l",
            true
        ));
        assert!(
            !changes_nothing(b"\x1b[0m\x1b[?25l", false),
            "the cursor goes away"
        );
        assert!(!changes_nothing(b"\x1b[0mx", true));
        assert!(
            !changes_nothing(b"\x1b[1;1H", true),
            "a move is not an attribute"
        );
        assert!(!changes_nothing(b"\x1b[?25h", true));
    }

    #[test]
    fn outside_a_frame_bytes_pass_straight_through() {
        let mut g = FrameGate::new(Vec::new());
        g.write_all(b"\x1b[2J").expect("write");
        assert_eq!(g.inner, b"\x1b[2J");
    }
}
