//! A large JSON answer written while it is sent: serialized on a blocking thread into
//! chunks that go out as they fill, so the client reads (and decodes) the first items while
//! the last are still being written, and the sandbox never holds the whole body (at 50,000
//! apps the list is 175 MB whole, 61 MB projected). A client that goes away stops the
//! writer at its next chunk. A body cut short ends the response early, which a client sees
//! as a truncated document (never as a shorter valid one).

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use std::io::Write;
use tokio::sync::mpsc;

/// Bytes per chunk, and chunks written ahead of the client.
const CHUNK: usize = 256 * 1024;
const AHEAD: usize = 4;

struct Chunks {
    buf: Vec<u8>,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
}

impl Chunks {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let full = std::mem::replace(&mut self.buf, Vec::with_capacity(CHUNK));
        self.tx
            .blocking_send(Ok(Bytes::from(full)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "client gone"))
    }
}

impl Write for Chunks {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.write_all(b)?;
        Ok(b.len())
    }

    // serde_json writes every token on its own: taken whole, without the default loop.
    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        self.buf.extend_from_slice(b);
        if self.buf.len() >= CHUNK {
            self.send()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// `value` as an `application/json` response, written on a blocking thread as it is sent.
pub fn json<T: serde::Serialize + Send + 'static>(value: T) -> Response {
    let (tx, rx) = mpsc::channel(AHEAD);
    tokio::task::spawn_blocking(move || {
        let mut out = Chunks {
            buf: Vec::with_capacity(CHUNK),
            tx,
        };
        match serde_json::to_writer(&mut out, &value) {
            // The last chunk; a client gone by now needs nothing more.
            Ok(()) => drop(out.send()),
            Err(e) if e.is_io() => {}
            // Dropping the sender ends the body where it stands: the client sees a
            // document cut off, not a shorter list.
            Err(e) => tracing::warn!("a streamed answer failed midway: {e}"),
        }
    });
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
    )
        .into_response()
}
