//! A list (Argo CD's applications, a page of a Kubernetes list) split into its items as its
//! bytes arrive: the body is fed chunk by chunk, and each element of the top-level `items`
//! array is handed over as soon as its closing brace is in, so apps decode while the rest of
//! the list is still on the wire and no copy of the whole body is ever held. The top level's `metadata` (small) is kept for
//! the list's resourceVersion; its other members are skipped.
//!
//! It tracks only what JSON's structure needs (nesting depth, strings and their escapes,
//! the top-level keys): what is inside an item is for the item's decoder to judge, and a
//! body that ends before the top-level object closes is an error, never a shorter list.
//!
//! An item that is an object is decoded where it starts, from the bytes at hand
//! ([`decode_front`]): the decoder finds its end, so its bytes are read once, not scanned
//! for its end and then decoded. Only an item cut by the end of a chunk is scanned (from
//! its start, as it arrives) and decoded once its closing brace is in.

/// Where a captured value goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Capture {
    Item,
    Metadata,
}

#[derive(Debug, Default)]
pub(crate) struct Splitter {
    depth: usize,
    in_string: bool,
    escaped: bool,
    /// At depth 1: a key is expected next (after `{` or `,`), or a value (after `:`).
    expect_key: bool,
    /// Reading a top-level key's characters.
    in_key: bool,
    key: Vec<u8>,
    /// Inside the top-level `items` array.
    in_items: bool,
    /// A value being captured, and the depth it returns to when it ends.
    capture: Option<(Capture, usize)>,
    /// Open braces of the item being captured, when it is an object (then only braces
    /// and strings are tracked until it closes).
    braces: usize,
    buf: Vec<u8>,
    metadata: Option<Vec<u8>>,
    started: bool,
    done: bool,
}

impl Splitter {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Feed the next chunk. `item` is handed bytes that start where an item does, in
    /// order: the item's own bytes, or (an object at the start of what is left of a chunk)
    /// those and whatever follows them. It decodes the item at their front and says how
    /// many bytes it took, or None when they end before the item does ([`decode_front`]);
    /// None for an item's own bytes is an error.
    pub(crate) fn feed<E>(
        &mut self,
        chunk: &[u8],
        item: &mut Decoder<'_, E>,
    ) -> Result<(), SplitError<E>> {
        let mut from = self.capture.map(|_| 0);
        let mut i = 0;
        while i < chunk.len() {
            let b = chunk[i];
            if self.in_string {
                // Skip to the next quote or backslash at once.
                if !self.escaped {
                    let rest = &chunk[i..];
                    let n = memchr::memchr2(b'"', b'\\', rest).unwrap_or(rest.len());
                    if self.in_key {
                        self.key.extend_from_slice(&rest[..n]);
                    }
                    i += n;
                    if i == chunk.len() {
                        break;
                    }
                }
                let b = chunk[i];
                if self.escaped {
                    self.escaped = false;
                    if self.in_key {
                        self.key.push(b);
                    }
                } else if b == b'\\' {
                    self.escaped = true;
                    if self.in_key {
                        self.key.push(b);
                    }
                } else {
                    self.in_string = false;
                    self.in_key = false;
                }
                i += 1;
                continue;
            }
            if self.braces > 0 {
                // Inside an item that is an object: only strings and braces matter until
                // its closing brace (brackets nest within braces in JSON, and whether the
                // item is well formed is for its decoder to judge).
                let Some(n) = memchr::memchr3(b'"', b'{', b'}', &chunk[i..]) else {
                    break;
                };
                i += n;
                match chunk[i] {
                    b'"' => self.in_string = true,
                    b'{' => self.braces += 1,
                    _ => {
                        self.braces -= 1;
                        if self.braces == 0 {
                            let start = from.take().unwrap_or(0);
                            self.capture = None;
                            self.depth = 2;
                            // Whole in this chunk: handed over where it lies, not copied.
                            if self.buf.is_empty() {
                                whole(item, &chunk[start..=i])?;
                            } else {
                                self.buf.extend_from_slice(&chunk[start..=i]);
                                whole(item, &self.buf)?;
                                self.buf.clear();
                            }
                        }
                    }
                }
                i += 1;
                continue;
            }
            if self.done {
                if !b.is_ascii_whitespace() {
                    return Err(SplitError::Malformed("data after the list".into()));
                }
                i += 1;
                continue;
            }
            if !self.started {
                match b {
                    b'{' => {
                        self.started = true;
                        self.depth = 1;
                        self.expect_key = true;
                    }
                    c if c.is_ascii_whitespace() => {}
                    _ => {
                        return Err(SplitError::Malformed(
                            "the list is not a JSON object".into(),
                        ));
                    }
                }
                i += 1;
                continue;
            }
            match b {
                b'"' => {
                    self.in_string = true;
                    if self.depth == 1 && self.expect_key {
                        self.in_key = true;
                        self.key.clear();
                    }
                }
                b':' if self.depth == 1 => self.expect_key = false,
                b',' if self.depth == 1 => self.expect_key = true,
                b'{' | b'[' => {
                    if self.depth == 1 && !self.expect_key {
                        match (self.key.as_slice(), b) {
                            (b"items", b'[') => self.in_items = true,
                            (b"metadata", b'{') => {
                                self.capture = Some((Capture::Metadata, 1));
                                from = Some(i);
                            }
                            _ => {}
                        }
                    } else if self.depth == 2 && self.in_items && self.capture.is_none() {
                        if b == b'{' {
                            let rest = &chunk[i..];
                            match item(rest).map_err(SplitError::Item)? {
                                Some(n) if n > 0 && n <= rest.len() && rest[n - 1] == b'}' => {
                                    i += n;
                                    continue;
                                }
                                Some(_) => {
                                    return Err(SplitError::Malformed(
                                        "an item of the list was misread".into(),
                                    ));
                                }
                                // Cut by the chunk's end: scanned as it arrives.
                                None => {}
                            }
                        }
                        self.capture = Some((Capture::Item, 2));
                        from = Some(i);
                        if b == b'{' {
                            self.braces = 1;
                        }
                    }
                    self.depth += 1;
                }
                b'}' | b']' => {
                    self.depth = self.depth.saturating_sub(1);
                    if let Some((what, base)) = self.capture
                        && self.depth == base
                    {
                        let start = from.take().unwrap_or(0);
                        self.buf.extend_from_slice(&chunk[start..=i]);
                        self.capture = None;
                        match what {
                            Capture::Item => {
                                whole(item, &self.buf)?;
                                self.buf.clear();
                            }
                            Capture::Metadata => {
                                self.metadata = Some(std::mem::take(&mut self.buf))
                            }
                        }
                    }
                    if self.depth == 1 {
                        self.in_items = false;
                    }
                    if self.depth == 0 {
                        self.done = true;
                    }
                }
                _ => {}
            }
            i += 1;
        }
        if let Some(start) = from
            && self.capture.is_some()
        {
            self.buf.extend_from_slice(&chunk[start..]);
        }
        Ok(())
    }

    /// The top-level `metadata`'s bytes once they are all in (before the items when the
    /// server writes it first, as Argo CD and the Kubernetes API server do).
    pub(crate) fn metadata(&self) -> Option<&[u8]> {
        self.metadata.as_deref()
    }

    /// The body is all in: the top-level `metadata`'s bytes, if it had one; an error when
    /// the list did not end.
    pub(crate) fn finish(self) -> Result<Option<Vec<u8>>, String> {
        if !self.done {
            return Err(if self.started {
                "the list ends before it closes (a cut-off answer)".into()
            } else {
                "the answer is empty".into()
            });
        }
        Ok(self.metadata)
    }
}

/// What [`Splitter::feed`] hands an item's bytes to: how many bytes the item at their
/// front took, or None when they end before it does.
pub(crate) type Decoder<'a, E> = dyn FnMut(&[u8]) -> Result<Option<usize>, E> + 'a;

#[derive(Debug)]
pub(crate) enum SplitError<E> {
    Malformed(String),
    Item(E),
}

/// An item's own bytes, all of them, to `item`.
fn whole<E>(item: &mut Decoder<'_, E>, bytes: &[u8]) -> Result<(), SplitError<E>> {
    match item(bytes).map_err(SplitError::Item)? {
        Some(_) => Ok(()),
        None => Err(SplitError::Malformed(
            "an item of the list ends before it closes".into(),
        )),
    }
}

/// For [`Splitter::feed`]: decode a `T` from the front of `bytes` and hand it to `each`
/// with the bytes it was decoded from; how many bytes it took, or None when `bytes` end
/// before it does. An item that does not decode is an error.
pub(crate) fn decode_front<T: serde::de::DeserializeOwned>(
    bytes: &[u8],
    each: &mut dyn FnMut(T, &[u8]),
) -> Result<Option<usize>, serde_json::Error> {
    let mut s = serde_json::Deserializer::from_slice(bytes).into_iter::<T>();
    match s.next() {
        Some(Ok(v)) => {
            let n = s.byte_offset();
            each(v, &bytes[..n.min(bytes.len())]);
            Ok(Some(n))
        }
        Some(Err(e)) if e.is_eof() => Ok(None),
        Some(Err(e)) => Err(e),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Split `body` fed in chunks of `n` bytes: the items' text and the metadata's.
    fn split(body: &str, n: usize) -> Result<(Vec<String>, Option<String>), String> {
        let mut s = Splitter::new();
        let mut items = Vec::new();
        for chunk in body.as_bytes().chunks(n.max(1)) {
            s.feed(chunk, &mut |b| {
                decode_front::<serde_json::Value>(b, &mut |_, raw| {
                    items.push(String::from_utf8_lossy(raw).into_owned())
                })
            })
            .map_err(|e| format!("{e:?}"))?;
        }
        let meta = s.finish()?;
        Ok((
            items,
            meta.map(|m| String::from_utf8_lossy(&m).into_owned()),
        ))
    }

    #[test]
    fn items_and_metadata_come_out_whole_whatever_the_chunking() {
        let body = r#" {"kind":"x","metadata":{"resourceVersion":"7"},"items":[
            {"metadata":{"name":"a \"quoted\" } ] {"},"status":{"h":[1,{"x":"]"}]}},
            {"metadata":{"name":"b\\"}}
        ],"extra":{"items":[{"no":1}]}} "#;
        let want = (
            vec![
                r#"{"metadata":{"name":"a \"quoted\" } ] {"},"status":{"h":[1,{"x":"]"}]}}"#
                    .to_string(),
                r#"{"metadata":{"name":"b\\"}}"#.to_string(),
            ],
            Some(r#"{"resourceVersion":"7"}"#.to_string()),
        );
        for n in [1, 2, 3, 7, 64, body.len()] {
            assert_eq!(split(body, n).as_ref(), Ok(&want), "chunks of {n}");
        }
    }

    #[test]
    fn an_item_that_is_not_an_object_is_split_as_well() {
        let body = r#"{"items":[[1,{"a":"}"}],{"b":[{}]},"x\"y"]}"#;
        for n in [1, 2, 5, body.len()] {
            let (items, _) = split(body, n).unwrap_or_default();
            assert_eq!(
                items,
                [r#"[1,{"a":"}"}]"#, r#"{"b":[{}]}"#],
                "chunks of {n}"
            );
        }
    }

    #[test]
    fn items_whole_in_a_chunk_are_decoded_once_where_they_lie() {
        let body = r#"{"metadata":{},"items":[{"a":"}{"},{"b":[1,{"c":2}]},{"d":3}]}"#;
        for n in [body.len(), 40] {
            let mut s = Splitter::new();
            let (mut calls, mut got) = (0, Vec::new());
            for chunk in body.as_bytes().chunks(n) {
                s.feed(chunk, &mut |b| {
                    calls += 1;
                    decode_front::<serde_json::Value>(b, &mut |v, raw| {
                        got.push((v.to_string(), String::from_utf8_lossy(raw).into_owned()))
                    })
                })
                .expect("feeds");
            }
            assert!(s.finish().is_ok());
            let texts: Vec<&str> = got.iter().map(|(_, raw)| raw.as_str()).collect();
            assert_eq!(
                texts,
                [r#"{"a":"}{"}"#, r#"{"b":[1,{"c":2}]}"#, r#"{"d":3}"#]
            );
            for (v, raw) in &got {
                assert_eq!(v, raw, "what was decoded is the item's text");
            }
            // Whole: one call per item. In chunks of 40 the second item is cut: tried
            // where it starts, then handed over once whole.
            assert_eq!(calls, if n == body.len() { 3 } else { 4 }, "chunks of {n}");
        }
    }

    #[test]
    fn an_item_that_does_not_decode_is_an_error_not_a_cut() {
        for body in [r#"{"items":[{"a":1,,"b":2}]}"#, r#"{"items":[{"a":tru}]}"#] {
            let mut s = Splitter::new();
            let r = s.feed(body.as_bytes(), &mut |b| {
                decode_front::<serde_json::Value>(b, &mut |_, _| {})
            });
            assert!(r.is_err() || s.finish().is_err(), "{body}");
        }
        // A decoder that says it took bytes that are not an item's.
        let mut s = Splitter::new();
        let r = s.feed::<()>(br#"{"items":[{"a":1}]}"#, &mut |_| Ok(Some(3)));
        assert!(matches!(r, Err(SplitError::Malformed(_))));
        // One that says a whole item is cut.
        let mut s = Splitter::new();
        let r = s.feed::<()>(br#"{"items":[[1]]}"#, &mut |_| Ok(None));
        assert!(matches!(r, Err(SplitError::Malformed(_))));
    }

    #[test]
    fn a_key_named_items_inside_a_value_is_not_the_list() {
        let body = r#"{"metadata":{"items":[{"no":1}]},"items":[{"a":1}]}"#;
        let (items, _) = split(body, 5).unwrap_or_default();
        assert_eq!(items, vec![r#"{"a":1}"#.to_string()]);
    }

    #[test]
    fn null_or_missing_items_are_none_and_a_cut_off_list_is_an_error() {
        assert_eq!(split(r#"{"items":null}"#, 3).map(|x| x.0.len()), Ok(0));
        assert_eq!(split(r#"{"metadata":{}}"#, 3).map(|x| x.0.len()), Ok(0));
        let cut = r#"{"metadata":{"resourceVersion":"7"},"items":[{"a":1},{"b":"#;
        assert!(split(cut, 4).is_err());
        assert!(split("", 4).is_err());
        assert!(split("[1,2]", 4).is_err());
        assert!(split(r#"{"items":[]} trailing"#, 4).is_err());
    }
}
