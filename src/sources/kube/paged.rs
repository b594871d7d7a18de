//! Core mode's list of Applications, in pages of [`PAGE`] as kubectl and kube-rs' watcher ask
//! for it, with two differences that matter at 50,000 apps (100 pages):
//! - the next page is asked for as soon as the current page's continue token is in. The API
//!   server writes a list's `metadata` before its `items`, so the server writes page N+1
//!   while shipdeck decodes page N, and no round trip is waited for on its own. When a server
//!   writes `metadata` last, the next page is asked for once the page is in (no overlap,
//!   same result);
//! - each page's items decode as its bytes arrive ([`Splitter`]), not once the whole page is
//!   collected and copied.
//!
//! Every page after the first carries the first page's continue token chain, so the list is
//! the API server's consistent snapshot, as any paged list. Failures are kube-rs errors, so
//! the callers map them as they map every other API server answer.

use super::compact::CompactApp;
use crate::sources::retry;
use crate::sources::split::{SplitError, Splitter, decode_front};
use futures::{AsyncBufRead, AsyncBufReadExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ListMeta;
use kube::api::ListParams;
use std::pin::Pin;

/// Items per page (kube-rs' watcher and kubectl ask for 500).
pub(super) const PAGE: u32 = 500;

type Body = Pin<Box<dyn AsyncBufRead + Send>>;

/// What a list hands over as it reads (one at a time, never stored: the size of the
/// variants does not matter).
#[allow(clippy::large_enum_variant)]
pub(super) enum Listed {
    /// About how many apps the whole list holds (from the first page's
    /// `remainingItemCount`), to make room for them once.
    Expect(usize),
    App(CompactApp),
}

/// A page asked for ahead of its turn; dropped (the list failed or was abandoned), the
/// request is abandoned too.
struct Ahead(tokio::task::JoinHandle<Result<Body, kube::Error>>);

impl Drop for Ahead {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn malformed(what: impl std::fmt::Display) -> kube::Error {
    kube::Error::SerdeError(<serde_json::Error as serde::de::Error>::custom(what))
}

/// Where a list is read from and how its pages are opened.
#[derive(Clone)]
pub(super) struct Lister {
    pub client: kube::Client,
    /// The collection's path, e.g. `/apis/argoproj.io/v1alpha1/namespaces/argocd/applications`.
    pub url: String,
    /// Open each page under the read policy (429, 5xx and connection failures tried
    /// again); a watch relists on its own instead, so it reports the failure at once.
    pub retrying: bool,
}

impl Lister {
    async fn open_once(self, token: Option<String>) -> Result<Body, kube::Error> {
        let mut lp = ListParams::default().limit(PAGE);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let req = kube::core::Request::new(&self.url)
            .list(&lp)
            .map_err(kube::Error::BuildRequest)?;
        let body = self.client.request_stream(req).await?;
        Ok(Box::pin(body))
    }

    async fn open(&self, token: Option<String>) -> Result<Body, kube::Error> {
        if !self.retrying {
            return self.clone().open_once(token).await;
        }
        retry::read(
            "list applications",
            || self.clone().open_once(token.clone()),
            super::transience,
        )
        .await
    }

    /// A page opened ahead, or opened again when that failed with what the read policy
    /// retries (only when retrying).
    async fn take(&self, mut ahead: Ahead, token: &str) -> Result<Body, kube::Error> {
        let first = match (&mut ahead.0).await {
            Ok(r) => r,
            Err(e) => Err(malformed(format!("the page read ahead was lost: {e}"))),
        };
        match first {
            Ok(b) => Ok(b),
            Err(e) if self.retrying && super::transience(&e).is_transient() => {
                self.open(Some(token.to_string())).await
            }
            Err(e) => Err(e),
        }
    }

    /// Read the whole list, each app to `each` as it decodes; the list's resourceVersion
    /// (to watch from). A list cut off midway, an item that does not decode or a page that
    /// is not a list is an error, never a shorter list.
    pub(super) async fn list(
        &self,
        each: &mut (dyn FnMut(Listed) + Send),
    ) -> Result<String, kube::Error> {
        let mut body = self.open(None).await?;
        let mut first = true;
        loop {
            let mut split = Splitter::new();
            // The page's metadata once read before its items, and the next page asked
            // for on the strength of it.
            let mut early: Option<ListMeta> = None;
            let mut ahead: Option<Ahead> = None;
            loop {
                let chunk = body.fill_buf().await.map_err(kube::Error::ReadEvents)?;
                if chunk.is_empty() {
                    break;
                }
                let n = chunk.len();
                split
                    .feed(chunk, &mut |item| {
                        decode_front::<CompactApp>(item, &mut |c, _| each(Listed::App(c)))
                    })
                    .map_err(|e| match e {
                        SplitError::Malformed(m) => malformed(m),
                        SplitError::Item(e) => kube::Error::SerdeError(e),
                    })?;
                body.as_mut().consume(n);
                if early.is_none()
                    && let Some(m) = split.metadata()
                {
                    let meta = list_meta(m)?;
                    if first && let Some(rest) = meta.remaining_item_count {
                        let rest = usize::try_from(rest).unwrap_or(0);
                        each(Listed::Expect(rest.saturating_add(PAGE as usize)));
                    }
                    if let Some(token) = continue_of(&meta) {
                        ahead = Some(Ahead(tokio::spawn(self.clone().open_once(Some(token)))));
                    }
                    early = Some(meta);
                }
            }
            let bytes = split
                .finish()
                .map_err(malformed)?
                .ok_or_else(|| malformed("a page of the list has no metadata"))?;
            let meta = match early {
                Some(m) => m,
                None => list_meta(&bytes)?,
            };
            first = false;
            body = match (continue_of(&meta), ahead) {
                (Some(t), Some(a)) => self.take(a, &t).await?,
                (Some(t), None) => self.open(Some(t)).await?,
                (None, _) => {
                    return meta
                        .resource_version
                        .filter(|rv| !rv.is_empty())
                        .ok_or_else(|| malformed("the list has no resourceVersion"));
                }
            };
        }
    }
}

fn list_meta(bytes: &[u8]) -> Result<ListMeta, kube::Error> {
    serde_json::from_slice(bytes).map_err(kube::Error::SerdeError)
}

fn continue_of(meta: &ListMeta) -> Option<String> {
    meta.continue_.clone().filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::Notify;

    fn app(name: &str) -> String {
        format!(
            r#"{{"metadata":{{"name":"{name}","namespace":"argocd","resourceVersion":"3","managedFields":[{{"manager":"x"}}]}},"spec":{{"project":"default"}},"status":{{"sync":{{"status":"Synced"}}}}}}"#
        )
    }

    /// A server of two pages over real HTTP. Page 1 holds `a` and `b`; with `meta_first`
    /// its metadata (continue `t1`) comes before its items, and it does not send `b` until
    /// page 2 has been asked for: a client that waits for the whole page before asking
    /// for the next never gets it. Page 2 holds `c`. Returns the server's address.
    async fn two_pages(meta_first: bool) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let asked = Arc::new(Notify::new());
        tokio::spawn(async move {
            while let Ok((mut sock, _)) = listener.accept().await {
                let asked = asked.clone();
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                        match sock.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => req.extend_from_slice(&buf[..n]),
                        }
                    }
                    let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n";
                    let _ = sock.write_all(head.as_bytes()).await;
                    let list = r#"{"kind":"ApplicationList","apiVersion":"argoproj.io/v1alpha1","#;
                    if String::from_utf8_lossy(&req).contains("continue=t1") {
                        asked.notify_one();
                        let body = format!(
                            r#"{list}"metadata":{{"resourceVersion":"5"}},"items":[{}]}}"#,
                            app("c")
                        );
                        let _ = sock.write_all(body.as_bytes()).await;
                        return;
                    }
                    let meta = r#""metadata":{"continue":"t1","resourceVersion":"5","remainingItemCount":1}"#;
                    if meta_first {
                        let start = format!(r#"{list}{meta},"items":[{},"#, app("a"));
                        let _ = sock.write_all(start.as_bytes()).await;
                        let _ = sock.flush().await;
                        if tokio::time::timeout(
                            std::time::Duration::from_secs(10),
                            asked.notified(),
                        )
                        .await
                        .is_err()
                        {
                            return; // cut off: the client sees an error, not a hang
                        }
                        let _ = sock.write_all(format!("{}]}}", app("b")).as_bytes()).await;
                    } else {
                        let body = format!(r#"{list}"items":[{},{}],{meta}}}"#, app("a"), app("b"));
                        let _ = sock.write_all(body.as_bytes()).await;
                    }
                });
            }
        });
        format!("http://{addr}")
    }

    fn lister(url: &str) -> Lister {
        let config = kube::Config::new(url.parse().expect("url"));
        Lister {
            client: kube::Client::try_from(config).expect("client"),
            url: "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications".into(),
            retrying: false,
        }
    }

    async fn names(l: &Lister) -> Result<(Vec<String>, Vec<usize>, String), kube::Error> {
        let mut names = Vec::new();
        let mut expect = Vec::new();
        let rv = l
            .list(&mut |x| match x {
                Listed::Expect(n) => expect.push(n),
                Listed::App(c) => names.push(c.app.metadata.name),
            })
            .await?;
        Ok((names, expect, rv))
    }

    #[tokio::test]
    async fn the_next_page_is_asked_for_before_the_current_one_ends() {
        let l = lister(&two_pages(true).await);
        let (names, expect, rv) = names(&l).await.expect("the list reads");
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(expect, [1 + PAGE as usize]);
        assert_eq!(rv, "5");
    }

    #[tokio::test]
    async fn metadata_after_the_items_still_reads_every_page() {
        let l = lister(&two_pages(false).await);
        let (names, _, rv) = names(&l).await.expect("the list reads");
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(rv, "5");
    }
}
