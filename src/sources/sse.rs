//! An incremental Server-Sent Events parser for Argo CD's watch streams. One event may be
//! tens of megabytes (every application of a big estate in one message), so the parser keeps
//! only the current event's `data:` lines and the unfinished tail of the current line; it
//! never holds the stream. It knows nothing about what the data means.

/// Feeds bytes in, yields complete event payloads (the joined `data:` lines).
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    data: Vec<u8>,
    has_data: bool,
    /// Bytes seen since the last complete event, for "the server is alive" checks.
    pub keepalives: u64,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feed a chunk; `on_event` gets each complete event's data as it completes.
    pub fn feed(&mut self, mut chunk: &[u8], mut on_event: impl FnMut(&[u8])) {
        while let Some(pos) = chunk.iter().position(|b| *b == b'\n') {
            let (head, rest) = chunk.split_at(pos);
            chunk = &rest[1..];
            if self.line.is_empty() {
                self.line_done(head, &mut on_event);
            } else {
                self.line.extend_from_slice(head);
                let line = std::mem::take(&mut self.line);
                self.line_done(&line, &mut on_event);
                // Keep the allocation only while lines are small; a 30 MB buffer is not
                // worth keeping for keepalives.
                if line.capacity() <= 64 * 1024 {
                    self.line = line;
                    self.line.clear();
                }
            }
        }
        self.line.extend_from_slice(chunk);
    }

    fn line_done(&mut self, line: &[u8], on_event: &mut impl FnMut(&[u8])) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if self.has_data {
                on_event(&self.data);
            }
            self.data.clear();
            self.has_data = false;
            if self.data.capacity() > 1024 * 1024 {
                self.data = Vec::new();
            }
            return;
        }
        if line[0] == b':' {
            self.keepalives += 1;
            return;
        }
        let (field, value) = match line.iter().position(|b| *b == b':') {
            Some(i) => {
                let v = &line[i + 1..];
                (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
            }
            None => (line, &b""[..]),
        };
        if field == b"data" {
            if self.has_data {
                self.data.push(b'\n');
            }
            self.data.extend_from_slice(value);
            self.has_data = true;
        }
        // `event`, `id`, `retry`: Argo CD does not use them.
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&[u8]]) -> Vec<String> {
        let mut p = SseParser::new();
        let mut out = Vec::new();
        for c in chunks {
            p.feed(c, |d| out.push(String::from_utf8_lossy(d).into_owned()));
        }
        out
    }

    #[test]
    fn splits_events_across_chunks() {
        let got = events(&[
            b"data: {\"a\"",
            b":1}\n\n: keepalive\n\ndata: x\r\n",
            b"data: y\n\n",
        ]);
        assert_eq!(got, vec!["{\"a\":1}", "x\ny"]);
    }

    #[test]
    fn byte_at_a_time() {
        let input = b"data: hello\n\ndata:world\n\n";
        let chunks: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(events(&chunks), vec!["hello", "world"]);
    }

    #[test]
    fn incomplete_event_is_not_emitted() {
        assert!(events(&[b"data: partial\n"]).is_empty());
    }
}
