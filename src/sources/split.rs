//! A list (Argo CD's applications, a page of a Kubernetes list) split into its items as its
//! bytes arrive: the body is fed chunk by chunk, and each element of the top-level `items`
//! array is handed over as soon as its closing brace is in, so apps decode while the rest of
//! the list is still on the wire and no copy of the whole body is ever held. The top level's `metadata` (small) is kept for
//! the list's resourceVersion; its other members are skipped.
//!
//! It tracks only what JSON's structure needs (nesting depth, strings and their escapes,
//! the top-level keys): what is inside an item is for the item's decoder to judge, and a
//! body that ends before the top-level object closes is an error, never a shorter list.

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

    /// Feed the next chunk; `item` gets each complete item's bytes, in order.
    pub(crate) fn feed<E>(
        &mut self,
        chunk: &[u8],
        item: &mut dyn FnMut(&[u8]) -> Result<(), E>,
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
                                item(&chunk[start..=i]).map_err(SplitError::Item)?;
                            } else {
                                self.buf.extend_from_slice(&chunk[start..=i]);
                                item(&self.buf).map_err(SplitError::Item)?;
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
                                item(&self.buf).map_err(SplitError::Item)?;
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

#[derive(Debug)]
pub(crate) enum SplitError<E> {
    Malformed(String),
    Item(E),
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Split `body` fed in chunks of `n` bytes: the items' text and the metadata's.
    fn split(body: &str, n: usize) -> Result<(Vec<String>, Option<String>), String> {
        let mut s = Splitter::new();
        let mut items = Vec::new();
        for chunk in body.as_bytes().chunks(n.max(1)) {
            s.feed::<()>(chunk, &mut |b| {
                items.push(String::from_utf8_lossy(b).into_owned());
                Ok(())
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
