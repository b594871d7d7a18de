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
        let idle = frame.is_empty() || (frame == HIDE && self.cursor_hidden);
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

    #[test]
    fn outside_a_frame_bytes_pass_straight_through() {
        let mut g = FrameGate::new(Vec::new());
        g.write_all(b"\x1b[2J").expect("write");
        assert_eq!(g.inner, b"\x1b[2J");
    }
}
