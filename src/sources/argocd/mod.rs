//! API mode: an Argo CD API server over REST and its SSE watch stream (reqwest with rustls).
//! The server decides what the token may do; this file turns its answers into `model`
//! values and its errors into [`SourceError`]s with a hint the operator can act on. It
//! never prints or logs the token.

mod autosync;
mod eventlogs;
mod foureyes;
mod projects;
mod watch;
mod workloads;

use crate::sources::split::{SplitError, Splitter, decode_front};

pub use autosync::{Route as AutoSyncRoute, TOGGLE_AUTO_SYNC_RBAC};

use super::fate::SentOperation;
use super::retry::{self, Transience};
use super::{
    AppEvent, ArgoSource, ManagedResource, Refresh, RollbackRequest, SourceError, SyncRequest,
    SyncWindowsState, info_with_operator,
};
use crate::model::{Application, SyncWindow, Update, WorkloadRollout};
use crate::secrets::Secret;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub const LOGIN_HINT: &str = "run `shipdeck login argocd` or set ARGOCD_AUTH_TOKEN";

/// What the console says when Argo CD no longer accepts the token (expired, revoked, the
/// server's secret rotated): retrying will not help, the operator must log in again.
pub const TOKEN_REJECTED: &str =
    "token expired or revoked: run `shipdeck login argocd` (or set ARGOCD_AUTH_TOKEN)";

/// How to reach one Argo CD API server.
#[derive(Debug, Clone, Default)]
pub struct ArgoApiOptions {
    /// Instance name apps carry; None = the server's host.
    pub name: Option<String>,
    /// `argocd.example.com`, `https://argocd.example.com` or `http://127.0.0.1:8080`.
    pub server: String,
    pub token: Option<Secret>,
    /// Skip TLS verification for this server only.
    pub insecure: bool,
    /// Namespace Argo CD keeps Applications in (for ids when the server omits it).
    pub namespace: Option<String>,
    /// Per-request timeout (streams excepted); None = 30 s.
    pub timeout: Option<Duration>,
    /// How often workloads are polled while watched; None = 2 s.
    pub workload_poll: Option<Duration>,
    /// Config marks this instance read-only (ops refuses mutations).
    pub read_only: bool,
}

/// One Argo CD API server. Cheap to clone.
#[derive(Clone)]
pub struct ArgoApi {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    instance: String,
    base: String,
    namespace: String,
    client: reqwest::Client,
    stream_client: reqwest::Client,
    token: Option<Secret>,
    timeout: Duration,
    workload_poll: Duration,
    read_only: bool,
    /// Git mirrors for rendering manifests at a revision the server does not compare (a
    /// rollback's target); set once when connecting, absent in bare clients.
    git: std::sync::OnceLock<Arc<crate::sources::git::GitMirrors>>,
}

impl std::fmt::Debug for ArgoApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArgoApi")
            .field("instance", &self.inner.instance)
            .field("server", &self.inner.base)
            .field("token", &self.inner.token)
            .finish()
    }
}

/// `http://` and `https://` servers are used as given; a bare host gets `https://`.
pub fn normalize_server(server: &str) -> String {
    let s = server.trim().trim_end_matches('/');
    if s.starts_with("http://") || s.starts_with("https://") {
        s.to_string()
    } else {
        format!("https://{s}")
    }
}

/// Argo CD's error body (`runtimeError`).
#[derive(Debug, Default, Deserialize)]
struct ApiErrorBody {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    message: Option<String>,
}

/// How one attempt failed, before it becomes a [`SourceError`].
#[derive(Debug)]
pub(crate) enum Failure {
    Transport(reqwest::Error),
    Status {
        status: StatusCode,
        retry_after: Option<Duration>,
        body: bytes::Bytes,
    },
    /// A read whose request could not be cloned for another attempt (not expected: reads
    /// have no streaming body).
    Uncloneable,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Transport(e) => write!(f, "{}", error_chain(e)),
            Failure::Status { status, .. } => write!(f, "HTTP {status}"),
            Failure::Uncloneable => write!(f, "request cannot be repeated"),
        }
    }
}

impl Failure {
    /// Worth another attempt, for a read?
    fn transience(&self) -> Transience {
        match self {
            Failure::Status {
                status,
                retry_after,
                ..
            } if retry::transient_status(status.as_u16()) => Transience::Transient {
                retry_after: *retry_after,
            },
            // Connection refused or reset, a request that could not be sent, a body cut
            // off; a timeout has already waited its full length and is not repeated.
            Failure::Transport(e)
                if !e.is_timeout() && (e.is_connect() || e.is_request() || e.is_body()) =>
            {
                Transience::Transient { retry_after: None }
            }
            _ => Transience::Permanent,
        }
    }

    /// After a write: did this failure leave the write's fate unknown (it may have been
    /// done)? A connection that broke after the request went out, a timeout, or a gateway
    /// that lost the backend (502, 504) does. A connection never made, or any answer from
    /// Argo CD itself (4xx, 429, 500, 503), says it was not done.
    fn fate_unknown(&self) -> bool {
        match self {
            Failure::Transport(e) => !e.is_connect() && !e.is_builder(),
            Failure::Status { status, .. } => matches!(status.as_u16(), 502 | 504),
            Failure::Uncloneable => false,
        }
    }
}

impl ArgoApi {
    pub fn new(opts: ArgoApiOptions) -> Result<ArgoApi, SourceError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let base = normalize_server(&opts.server);
        let instance = opts
            .name
            .clone()
            .unwrap_or_else(|| crate::secrets::host_of(&base));
        let timeout = opts.timeout.unwrap_or(Duration::from_secs(30));
        let build = |total: Option<Duration>| {
            let mut b = reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .tls_danger_accept_invalid_certs(opts.insecure)
                .user_agent(concat!("shipdeck/", env!("CARGO_PKG_VERSION")));
            if let Some(t) = total {
                b = b.timeout(t);
            }
            b.build()
                .map_err(|e| SourceError::Config(format!("HTTP client for {base}: {e}")))
        };
        Ok(ArgoApi {
            inner: Arc::new(Inner {
                instance,
                client: build(Some(timeout))?,
                stream_client: build(None)?,
                base,
                namespace: opts.namespace.unwrap_or_else(|| "argocd".into()),
                token: opts.token.filter(|t| !t.is_empty()),
                timeout,
                workload_poll: opts.workload_poll.unwrap_or(Duration::from_secs(2)),
                read_only: opts.read_only,
                git: std::sync::OnceLock::new(),
            }),
        })
    }

    pub fn server(&self) -> &str {
        &self.inner.base
    }

    pub fn read_only(&self) -> bool {
        self.inner.read_only
    }

    /// Give this client Git mirrors, so it can render the manifests of a revision the
    /// server does not compare (the diff of a rollback). The first call wins.
    pub fn set_git(&self, git: Arc<crate::sources::git::GitMirrors>) {
        let _ = self.inner.git.set(git);
    }

    /// Log in with a username and password (`POST /api/v1/session`); returns the token.
    pub async fn login(&self, username: &str, password: &str) -> Result<Secret, SourceError> {
        #[derive(Deserialize)]
        struct Token {
            token: String,
        }
        let body = json!({"username": username, "password": password});
        let t: Token = self
            .inner
            .send(
                self.inner
                    .request(Method::POST, "/api/v1/session")
                    .json(&body),
                "login",
            )
            .await?;
        Ok(Secret::new(t.token))
    }

    /// The account the token belongs to (`GET /api/v1/session/userinfo`), None when the
    /// server says it is not logged in.
    pub async fn account(&self) -> Result<Option<String>, SourceError> {
        let v: Value = self
            .inner
            .send(
                self.inner.request(Method::GET, "/api/v1/session/userinfo"),
                "user info",
            )
            .await?;
        let logged_in = v.get("loggedIn").and_then(Value::as_bool).unwrap_or(false);
        Ok(v.get("username")
            .and_then(Value::as_str)
            .filter(|u| logged_in && !u.trim().is_empty())
            .map(str::to_owned))
    }

    /// The server's version (`GET /api/version`), to check a connection.
    pub async fn version(&self) -> Result<String, SourceError> {
        let v: Value = self
            .inner
            .send(self.inner.request(Method::GET, "/api/version"), "version")
            .await?;
        Ok(v.get("Version")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_string())
    }
}

/// The parts of an Application the estate reads, as `fields` paths of the application
/// **stream** (`/api/v1/stream/applications`), which Argo CD filters by path like any JSON
/// (argoproj/pkg `grpc/http`). Left out: `metadata.managedFields`, `status.sync.comparedTo`,
/// `status.operationState.syncResult.resources` and anything the model does not type; a
/// screen that needs the whole object reads it with `get_application`.
pub const APP_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.labels",
    "metadata.annotations",
    "metadata.resourceVersion",
    "metadata.uid",
    "metadata.generation",
    "metadata.creationTimestamp",
    "metadata.deletionTimestamp",
    "spec",
    "operation",
    "status.sync.status",
    "status.sync.revision",
    "status.sync.revisions",
    "status.health",
    "status.history",
    "status.operationState.operation",
    "status.operationState.phase",
    "status.operationState.message",
    "status.operationState.startedAt",
    "status.operationState.finishedAt",
    "status.operationState.retryCount",
    "status.operationState.syncResult.revision",
    "status.operationState.syncResult.revisions",
    "status.operationState.syncResult.source",
    "status.resources",
    "status.reconciledAt",
    "status.summary",
    "status.sourceType",
    "status.conditions",
];

/// An application list being read: each chunk is split into its items as it arrives and
/// each item decoded at once, so the apps are decoded while the rest of the list is on the
/// wire, and neither the whole body nor every decoded app need be held at once.
pub(crate) struct ListStream<'a> {
    inner: &'a Inner,
    resp: reqwest::Response,
    split: Splitter,
}

impl ListStream<'_> {
    /// The next chunk's apps, to `each`; false once the body is all in.
    pub(crate) async fn next(
        &mut self,
        each: &mut (dyn FnMut(Application) + Send),
    ) -> Result<bool, SourceError> {
        self.next_raw(&mut |a, _| each(a)).await
    }

    /// As [`ListStream::next`], each app with the bytes it was decoded from.
    pub(crate) async fn next_raw(
        &mut self,
        each: &mut (dyn FnMut(Application, &[u8]) + Send),
    ) -> Result<bool, SourceError> {
        let chunk = self
            .resp
            .chunk()
            .await
            .map_err(|e| self.inner.transport_error("list applications", e))?;
        let Some(chunk) = chunk else {
            return Ok(false);
        };
        self.inner.feed_list(&mut self.split, &chunk, each)?;
        Ok(true)
    }

    /// The body is all in: the list's resourceVersion; an error for a list cut off or not
    /// a list (never a shorter list).
    pub(crate) fn finish(self) -> Result<Option<String>, SourceError> {
        self.inner.end_list(self.split)
    }
}

/// What the board reads, as `fields` paths of the application **list**. The list does not
/// filter by path: Argo CD's API server picks each item's fields from a fixed table
/// (`forwarder_overwrite.go`) and drops every other path without a word. These are the
/// table's fields the estate models; what the table lacks (history, operation messages,
/// conditions, reconciledAt) arrives with the whole list read next ([`Update::Details`]).
///
/// [`Update::Details`]: crate::model::Update::Details
pub const LIST_FIELDS: &[&str] = &[
    "metadata.name",
    "metadata.namespace",
    "metadata.labels",
    "metadata.annotations",
    "metadata.creationTimestamp",
    "metadata.deletionTimestamp",
    "spec",
    "operation.sync",
    "status.sync.status",
    "status.sync.revision",
    "status.health",
    "status.operationState.phase",
    "status.operationState.startedAt",
    "status.operationState.finishedAt",
    "status.resources",
    "status.summary",
];

/// `/api/v1/applications`, projected to [`LIST_FIELDS`] (the watcher's first list: its
/// entries are incomplete, see `Update::Summary`) or whole. Public for the listing
/// bench, which times the server sending exactly this.
pub fn list_path(projected: bool) -> String {
    if !projected {
        return "/api/v1/applications".into();
    }
    let mut fields = vec!["metadata.resourceVersion".to_string()];
    fields.extend(LIST_FIELDS.iter().map(|f| format!("items.{f}")));
    format!("/api/v1/applications?fields={}", fields.join(","))
}

fn enc(s: &str) -> String {
    // Path segments and query values: percent-encode everything outside unreserved.
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl Inner {
    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.request_with(&self.client, method, path)
    }

    fn request_with(&self, client: &reqwest::Client, method: Method, path: &str) -> RequestBuilder {
        let rb = client.request(method, format!("{}{}", self.base, path));
        match &self.token {
            Some(t) => rb.bearer_auth(t.expose()),
            None => rb,
        }
    }

    fn app_ns<'a>(&'a self, app: &'a Application) -> &'a str {
        if app.metadata.namespace.is_empty() {
            &self.namespace
        } else {
            &app.metadata.namespace
        }
    }

    /// `/api/v1/applications/{name}{suffix}?appNamespace=..` for an app.
    fn app_path(&self, app: &Application, suffix: &str) -> String {
        let sep = if suffix.contains('?') { '&' } else { '?' };
        format!(
            "/api/v1/applications/{}{suffix}{sep}appNamespace={}",
            enc(&app.metadata.name),
            enc(self.app_ns(app))
        )
    }

    pub(crate) fn transport_error(&self, what: &str, e: reqwest::Error) -> SourceError {
        if e.is_timeout() {
            SourceError::Timeout {
                what: format!("{what} ({})", self.base),
                seconds: self.timeout.as_secs(),
            }
        } else if e.is_connect() || e.is_request() {
            SourceError::Unreachable {
                server: self.base.clone(),
                detail: format!("{what}: {}", error_chain(&e)),
            }
        } else {
            SourceError::Protocol {
                server: self.base.clone(),
                detail: format!("{what}: {}", error_chain(&e)),
            }
        }
    }

    /// Turn a non-success answer into the error the operator should see.
    pub(crate) fn status_error(&self, what: &str, status: StatusCode, body: &[u8]) -> SourceError {
        let parsed: ApiErrorBody = serde_json::from_slice(body).unwrap_or_default();
        let msg = parsed.message.or(parsed.error).unwrap_or_else(|| {
            String::from_utf8_lossy(&body[..body.len().min(300)])
                .trim()
                .to_string()
        });
        let msg = crate::model::text::sanitize(&msg).into_owned();
        let msg = if msg.is_empty() {
            status.to_string()
        } else {
            msg
        };
        match status.as_u16() {
            401 => SourceError::Unauthorized {
                server: self.base.clone(),
                detail: msg,
                hint: LOGIN_HINT.into(),
            },
            // Argo CD answers a sync that a window blocks with gRPC PermissionDenied (403),
            // "cannot sync: blocked by sync window": that is a policy of the project, not
            // a missing permission (exit 3, not 4).
            403 if is_window_refusal(&msg) => SourceError::Refused(format!("{what}: {msg}")),
            403 => SourceError::Forbidden(format!("{what}: {msg}")),
            404 => SourceError::NotFound(format!("{what}: {msg}")),
            409 => SourceError::Conflict(format!("{what}: {msg}")),
            // gRPC FailedPrecondition / InvalidArgument arrive as 400 with Argo's reason.
            400 | 412 | 422 => SourceError::Refused(msg),
            // Argo CD (or its ingress) is there but cannot serve: as good as unreachable.
            502 | 503 => SourceError::Unreachable {
                server: self.base.clone(),
                detail: format!("{what}: HTTP {}: {msg}", status.as_u16()),
            },
            408 | 504 => SourceError::Timeout {
                what: format!("{what}: {msg}"),
                seconds: self.timeout.as_secs(),
            },
            _ if parsed.code == Some(9) => SourceError::Refused(msg),
            s => SourceError::Protocol {
                server: self.base.clone(),
                detail: format!("{what}: HTTP {s}: {msg}"),
            },
        }
    }

    /// One request, once: the body of a success, or what went wrong.
    async fn attempt(
        &self,
        client: &reqwest::Client,
        req: reqwest::Request,
    ) -> Result<bytes::Bytes, Failure> {
        let resp = self.respond(client, req).await?;
        resp.bytes().await.map_err(Failure::Transport)
    }

    /// One request, once: the answer of a success, its body still to read, or what went
    /// wrong (a failure's body read).
    async fn respond(
        &self,
        client: &reqwest::Client,
        req: reqwest::Request,
    ) -> Result<reqwest::Response, Failure> {
        let resp = client.execute(req).await.map_err(Failure::Transport)?;
        let status = resp.status();
        if status.is_success() {
            return Ok(resp);
        }
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(retry::parse_retry_after);
        let body = resp.bytes().await.map_err(Failure::Transport)?;
        Err(Failure::Status {
            status,
            retry_after,
            body,
        })
    }

    fn failure_error(&self, what: &str, f: Failure) -> SourceError {
        match f {
            Failure::Transport(e) => self.transport_error(what, e),
            Failure::Status { status, body, .. } => self.status_error(what, status, &body),
            Failure::Uncloneable => SourceError::Protocol {
                server: self.base.clone(),
                detail: format!("{what}: the request could not be repeated"),
            },
        }
    }

    /// Send a request. Reads (GET, HEAD) retry transient failures under the one read policy
    /// ([`retry`]); anything else is sent exactly once.
    pub(crate) async fn send_raw(
        &self,
        rb: RequestBuilder,
        what: &str,
    ) -> Result<bytes::Bytes, SourceError> {
        let (client, req) = rb.build_split();
        let req = req.map_err(|e| self.transport_error(what, e))?;
        let idempotent = matches!(*req.method(), Method::GET | Method::HEAD);
        if !idempotent || req.try_clone().is_none() {
            return self
                .attempt(&client, req)
                .await
                .map_err(|f| self.failure_error(what, f));
        }
        self.retried(what, &client, &req, Self::attempt)
            .await
            .map_err(|f| self.failure_error(what, f))
    }

    /// `once` (one attempt of `req`) under the read policy.
    async fn retried<'a, T, Fut>(
        &'a self,
        what: &str,
        client: &'a reqwest::Client,
        req: &reqwest::Request,
        once: impl Fn(&'a Self, &'a reqwest::Client, reqwest::Request) -> Fut,
    ) -> Result<T, Failure>
    where
        Fut: Future<Output = Result<T, Failure>>,
    {
        retry::read(
            what,
            || {
                let next = req.try_clone();
                let once = &once;
                async move {
                    match next {
                        Some(r) => once(self, client, r).await,
                        None => Err(Failure::Uncloneable),
                    }
                }
            },
            Failure::transience,
        )
        .await
    }

    /// A write sent once, its failure kept whole so the caller can tell "refused" from
    /// "fate unknown".
    async fn send_once(&self, rb: RequestBuilder) -> Result<bytes::Bytes, Failure> {
        let (client, req) = rb.build_split();
        let req = req.map_err(Failure::Transport)?;
        self.attempt(&client, req).await
    }

    pub(crate) async fn send<T: DeserializeOwned>(
        &self,
        rb: RequestBuilder,
        what: &str,
    ) -> Result<T, SourceError> {
        let body = self.send_raw(rb, what).await?;
        serde_json::from_slice(&body).map_err(|e| SourceError::Protocol {
            server: self.base.clone(),
            detail: format!("{what}: {e}"),
        })
    }

    /// Every application, whole (a read: retried under the read policy).
    pub(crate) async fn list(&self) -> Result<(Vec<Application>, Option<String>), SourceError> {
        let body = self
            .send_raw(
                self.request(Method::GET, &list_path(false)),
                "list applications",
            )
            .await?;
        let mut split = Splitter::new();
        let mut apps = Vec::new();
        self.feed_list(&mut split, &body, &mut |a, _| apps.push(a))?;
        Ok((apps, self.end_list(split)?))
    }

    fn list_error(&self, detail: impl fmt::Display) -> SourceError {
        SourceError::Protocol {
            server: self.base.clone(),
            detail: format!("list applications: {detail}"),
        }
    }

    /// Split the next bytes of a list into its items, each decoded and handed to `each`.
    fn feed_list(
        &self,
        split: &mut Splitter,
        bytes: &[u8],
        each: &mut (dyn FnMut(Application, &[u8]) + Send),
    ) -> Result<(), SourceError> {
        split
            .feed(bytes, &mut |b| decode_front::<Application>(b, each))
            .map_err(|e| match e {
                SplitError::Malformed(m) => self.list_error(m),
                SplitError::Item(e) => self.list_error(e),
            })
    }

    /// A list's body is all in: its resourceVersion; an error for a list cut off or not a
    /// list (never a shorter list).
    fn end_list(&self, split: Splitter) -> Result<Option<String>, SourceError> {
        #[derive(Deserialize)]
        struct Meta {
            #[serde(default, rename = "resourceVersion")]
            resource_version: Option<String>,
        }
        let Some(meta) = split.finish().map_err(|m| self.list_error(m))? else {
            return Ok(None);
        };
        let m: Meta = serde_json::from_slice(&meta)
            .map_err(|e| self.list_error(format!("the list's metadata: {e}")))?;
        Ok(m.resource_version.filter(|v| !v.is_empty()))
    }

    /// Open the list to read as it arrives ([`ListStream`]), projected to [`LIST_FIELDS`]
    /// or whole. `retrying`: opening it is retried under the read policy (a failure once
    /// items are handed over is not: they cannot be taken back).
    pub(crate) async fn list_stream(
        &self,
        projected: bool,
        retrying: bool,
    ) -> Result<ListStream<'_>, SourceError> {
        let what = "list applications";
        let (client, req) = self
            .request(Method::GET, &list_path(projected))
            .build_split();
        let req = req.map_err(|e| self.transport_error(what, e))?;
        let resp = if retrying {
            self.retried(what, &client, &req, Self::respond).await
        } else {
            self.respond(&client, req).await
        }
        .map_err(|f| self.failure_error(what, f))?;
        Ok(ListStream {
            inner: self,
            resp,
            split: Splitter::new(),
        })
    }

    /// The whole list, each app handed to `each` as it decodes, read as it arrives (so
    /// `status` never holds the whole body: at 50,000 apps that is 175 MB). Opening it is
    /// retried as [`Inner::list`]; a failure midway is an error.
    async fn list_each(
        &self,
        each: &mut (dyn FnMut(Application) + Send),
    ) -> Result<(), SourceError> {
        let mut list = self.list_stream(false, true).await?;
        while list.next(each).await? {}
        list.finish().map(drop)
    }

    async fn get_app(&self, app: &Application) -> Result<Application, SourceError> {
        let path = self.app_path(app, "");
        self.send(
            self.request(Method::GET, &path),
            &format!("application {}", app.metadata.name),
        )
        .await
    }

    /// Send a sync or rollback (`POST .../{suffix}`) once. A 409 (the app changed under the
    /// server's update; nothing was done) is retried after re-reading the app, a few times.
    /// A failure that leaves the write's fate unknown is never resent: the app is read to
    /// learn whether the operation landed, and that is what the caller hears.
    async fn write_operation(
        &self,
        app: &Application,
        kind: &str,
        body: &Value,
        mut sent: SentOperation,
    ) -> Result<Application, SourceError> {
        let name = &app.metadata.name;
        let what = format!("{kind} {name}");
        let path = format!("/api/v1/applications/{}/{kind}", enc(name));
        let mut conflicts = 0;
        loop {
            sent.sent_at = chrono::Utc::now();
            let rb = self.request(Method::POST, &path).json(body);
            let failure = match self.send_once(rb).await {
                Ok(bytes) => {
                    return serde_json::from_slice(&bytes).map_err(|e| SourceError::Protocol {
                        server: self.base.clone(),
                        detail: format!("{what}: {e}"),
                    });
                }
                Err(f) => f,
            };
            match &failure {
                Failure::Status { status, .. }
                    if status.as_u16() == 409 && conflicts < CONFLICT_RETRIES =>
                {
                    conflicts += 1;
                    let current = self.get_app(app).await?;
                    if sent.landed_in(&current) {
                        return Ok(current);
                    }
                    if current.operation.is_some() {
                        return Err(SourceError::Refused(
                            crate::sources::kube::ANOTHER_OPERATION.into(),
                        ));
                    }
                    tracing::info!("{what}: conflict; re-read the app, sending again");
                }
                f if f.fate_unknown() => {
                    return self.learn_fate(app, &what, &sent, failure).await;
                }
                _ => return Err(self.failure_error(&what, failure)),
            }
        }
    }

    /// The answer to a write never came: look for the operation in the app for a little
    /// while (a request still in flight at the server lands late) and report what is seen.
    async fn learn_fate(
        &self,
        app: &Application,
        what: &str,
        sent: &SentOperation,
        failure: Failure,
    ) -> Result<Application, SourceError> {
        let cause = self.failure_error(what, failure).to_string();
        tracing::warn!("{what}: {cause}; reading the app to learn whether it went through");
        let deadline = tokio::time::Instant::now() + FATE_WINDOW;
        let last_read_error = loop {
            let read_error = match self.get_app(app).await {
                Ok(current) if sent.landed_in(&current) => {
                    tracing::info!("{what}: the app shows the operation; it went through");
                    return Ok(current);
                }
                Ok(_) => None,
                Err(e) => Some(e.to_string()),
            };
            if tokio::time::Instant::now() >= deadline {
                break read_error;
            }
            tokio::time::sleep(FATE_POLL).await;
        };
        let detail = match last_read_error {
            Some(e) => format!(
                "{cause}; the app could not be read afterwards ({e}), so whether it went through is unknown: look at the app before sending it again (shipdeck did not resend it)"
            ),
            None => format!(
                "{cause}; the app shows no operation from it after {}s, so it was most likely not done; shipdeck did not resend it",
                FATE_WINDOW.as_secs()
            ),
        };
        Err(SourceError::Unreachable {
            server: self.base.clone(),
            detail,
        })
    }
}

/// Re-read-and-resend rounds a sync or rollback gets for 409 Conflict answers.
const CONFLICT_RETRIES: u32 = 3;
/// How long shipdeck looks for an operation whose answer never came.
const FATE_WINDOW: Duration = Duration::from_secs(5);
const FATE_POLL: Duration = Duration::from_millis(250);

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(inner) = src {
        let t = inner.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = inner.source();
    }
    s
}

/// The JSON body of `POST /api/v1/applications/{name}/sync` (swagger
/// `applicationApplicationSyncRequest`).
pub fn sync_body(app: &Application, ns: &str, req: &SyncRequest) -> Value {
    let strategy = if req.apply_strategy {
        json!({"apply": {}})
    } else {
        json!({"hook": {}})
    };
    let mut body = json!({
        "name": app.metadata.name,
        "appNamespace": ns,
        "prune": req.prune,
        "dryRun": req.dry_run,
        "strategy": strategy,
        "infos": info_with_operator(&req.info, &req.initiated_by),
    });
    if let Some(r) = &req.revision {
        body["revision"] = json!(r);
    }
    if !req.resources.is_empty() {
        body["resources"] = json!(req.resources);
    }
    body
}

/// The JSON body of `POST /api/v1/applications/{name}/rollback`.
pub fn rollback_body(app: &Application, ns: &str, req: &RollbackRequest) -> Value {
    json!({
        "name": app.metadata.name,
        "appNamespace": ns,
        "id": req.id,
        "prune": req.prune,
        "dryRun": req.dry_run,
    })
}

fn parse_state(s: Option<&str>) -> Option<Value> {
    let s = s?.trim();
    if s.is_empty() || s == "null" {
        return None;
    }
    serde_json::from_str::<Value>(s)
        .ok()
        .filter(|v| !v.is_null())
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceDiff {
    #[serde(default)]
    group: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    target_state: Option<String>,
    #[serde(default)]
    live_state: Option<String>,
    #[serde(default)]
    hook: bool,
}

impl ArgoSource for ArgoApi {
    fn instance(&self) -> &str {
        &self.inner.instance
    }

    async fn identity(&self) -> Result<String, SourceError> {
        self.server_identity().await
    }

    async fn annotate(
        &self,
        app: &Application,
        key: &str,
        value: Option<&str>,
    ) -> Result<Application, SourceError> {
        self.patch_annotation(app, key, value).await
    }

    fn watch_applications(&self, tx: mpsc::Sender<Update>) -> JoinHandle<()> {
        watch::watch(self.inner.clone(), tx)
    }

    async fn list_applications(&self) -> Result<Vec<Application>, SourceError> {
        Ok(self.inner.list().await?.0)
    }

    async fn for_each_application(
        &self,
        each: &mut (dyn FnMut(Application) + Send),
    ) -> Result<(), SourceError> {
        self.inner.list_each(each).await
    }

    async fn get_application(
        &self,
        name: &str,
        refresh: Refresh,
    ) -> Result<Application, SourceError> {
        let mut path = format!("/api/v1/applications/{}", enc(name));
        match refresh {
            Refresh::None => {}
            Refresh::Normal => path.push_str("?refresh=normal"),
            Refresh::Hard => path.push_str("?refresh=hard"),
        }
        self.inner
            .send(
                self.inner.request(Method::GET, &path),
                &format!("application {name}"),
            )
            .await
    }

    async fn managed_resources(
        &self,
        app: &Application,
    ) -> Result<Vec<ManagedResource>, SourceError> {
        #[derive(Deserialize)]
        struct Resp {
            #[serde(default)]
            items: Option<Vec<ResourceDiff>>,
        }
        let path = self.inner.app_path(app, "/managed-resources");
        let r: Resp = self
            .inner
            .send(self.inner.request(Method::GET, &path), "managed resources")
            .await?;
        Ok(r.items
            .unwrap_or_default()
            .into_iter()
            .filter(|d| !d.hook)
            .map(|d| {
                let target = parse_state(d.target_state.as_deref());
                let live = parse_state(d.live_state.as_deref());
                let api_version = target
                    .as_ref()
                    .or(live.as_ref())
                    .and_then(|v| v.get("apiVersion"))
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let version = api_version.rsplit('/').next().unwrap_or("").to_string();
                ManagedResource {
                    group: d.group,
                    version,
                    kind: d.kind,
                    namespace: d.namespace,
                    name: d.name,
                    target,
                    live,
                }
            })
            .collect())
    }

    /// Live from the server's comparison, desired rendered from Git as the spec names it
    /// (the server only compares against its own target revision).
    async fn managed_resources_as_specified(
        &self,
        app: &Application,
    ) -> Result<Vec<ManagedResource>, SourceError> {
        let git = self.inner.git.get().cloned().ok_or_else(|| {
            SourceError::Refused(
                "no Git mirror for this Argo CD server, so the diff of a rollback (Git at another revision) is not available"
                    .into(),
            )
        })?;
        let live = self.managed_resources(app).await?;
        let desired = crate::sources::kube::render_desired(&git, app).await?;
        Ok(crate::sources::kube::pair_with_live(app, desired, live))
    }

    async fn workloads(&self, app: &Application) -> Result<Vec<WorkloadRollout>, SourceError> {
        workloads::workloads(&self.inner, app).await
    }

    fn watch_workloads(
        &self,
        app: &Application,
        tx: mpsc::Sender<Result<Vec<WorkloadRollout>, SourceError>>,
    ) -> JoinHandle<()> {
        workloads::watch(self.inner.clone(), app.clone(), tx)
    }

    async fn events(&self, app: &Application) -> Result<Vec<AppEvent>, SourceError> {
        eventlogs::events(&self.inner, app).await
    }

    async fn sync(&self, app: &Application, req: SyncRequest) -> Result<Application, SourceError> {
        let body = sync_body(app, self.inner.app_ns(app), &req);
        let sent = SentOperation::new(info_with_operator(&req.info, &req.initiated_by), None);
        self.inner.write_operation(app, "sync", &body, sent).await
    }

    async fn rollback(
        &self,
        app: &Application,
        req: RollbackRequest,
    ) -> Result<Application, SourceError> {
        let body = rollback_body(app, self.inner.app_ns(app), &req);
        // The rollback API carries no info entries: the operation is known by the revision
        // of the history entry it returns to.
        let revision = app
            .status
            .history
            .iter()
            .find(|h| h.id == req.id)
            .and_then(|h| h.revision.clone().or_else(|| h.revisions.first().cloned()));
        let sent = SentOperation::new(Vec::new(), revision);
        self.inner
            .write_operation(app, "rollback", &body, sent)
            .await
    }

    /// The `toggle-auto-sync` resource action where the server lists it for the app
    /// (Argo CD 3.5+, see `autosync.rs`), else
    /// `PATCH /api/v1/applications/{name}` with a merge patch, as `argocd app set` does.
    /// That endpoint is Argo CD's (ApplicationService.Patch) but is not in the reference
    /// swagger subset; a server without it answers 404/405 and the operator is told to
    /// change the policy another way.
    async fn set_auto_sync(
        &self,
        app: &Application,
        enabled: bool,
    ) -> Result<Application, SourceError> {
        if self.auto_sync_route(app).await == AutoSyncRoute::Action {
            return self.toggle_auto_sync(app, enabled).await;
        }
        let body_for = |a: &Application| {
            json!({
                "name": a.metadata.name,
                "appNamespace": self.inner.app_ns(a),
                "patch": crate::sources::kube::auto_sync_patch(a, enabled).to_string(),
                "patchType": "merge",
            })
        };
        let path = format!("/api/v1/applications/{}", enc(&app.metadata.name));
        let what = format!("set auto-sync of {}", app.metadata.name);
        let patch_once = |body: Value| {
            let rb = self.inner.request(Method::PATCH, &path).json(&body);
            let what = &what;
            async move { self.inner.send::<Application>(rb, what).await }
        };
        // A 409 means the patch was not applied: re-read the app, build the patch from what
        // it is now, and send it once more.
        let mut answer = patch_once(body_for(app)).await;
        if let Err(SourceError::Conflict(_)) = answer {
            tracing::info!("{what}: conflict; re-reading the app and sending the patch again");
            let current = self.inner.get_app(app).await?;
            answer = patch_once(body_for(&current)).await;
        }
        match answer {
            Err(SourceError::NotFound(_)) | Err(SourceError::Protocol { .. }) => {
                Err(SourceError::Refused(format!(
                    "{} does not accept application patches over its API; change the sync policy with `argocd app set {} --sync-policy {}` or in Git",
                    self.inner.base,
                    app.metadata.name,
                    if enabled { "automated" } else { "none" }
                )))
            }
            other => other,
        }
    }

    async fn auto_sync_rbac(&self, app: &Application) -> &'static str {
        self.auto_sync_route(app).await.rbac()
    }

    async fn can_i(&self, action: &str, app: &Application) -> Result<bool, SourceError> {
        #[derive(Deserialize)]
        struct Answer {
            #[serde(default)]
            value: String,
        }
        let project = if app.spec.project.is_empty() {
            "default"
        } else {
            &app.spec.project
        };
        let ns = self.inner.app_ns(app);
        // Apps outside Argo CD's own namespace are named project/namespace/app in RBAC.
        let object = if ns == self.inner.namespace {
            format!("{}/{}", enc(project), enc(&app.metadata.name))
        } else {
            format!("{}/{}/{}", enc(project), enc(ns), enc(&app.metadata.name))
        };
        let path = format!(
            "/api/v1/account/can-i/applications/{}/{object}",
            enc(action)
        );
        let a: Answer = self
            .inner
            .send(self.inner.request(Method::GET, &path), "can-i")
            .await?;
        Ok(a.value == "yes")
    }

    async fn sync_windows(&self, app: &Application) -> Result<SyncWindowsState, SourceError> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Resp {
            #[serde(default)]
            active_windows: Option<Vec<SyncWindow>>,
            #[serde(default)]
            assigned_windows: Option<Vec<SyncWindow>>,
            #[serde(default)]
            can_sync: Option<bool>,
        }
        let path = self.inner.app_path(app, "/syncwindows");
        let r: Resp = self
            .inner
            .send(self.inner.request(Method::GET, &path), "sync windows")
            .await?;
        Ok(SyncWindowsState {
            can_sync: r.can_sync.unwrap_or(true),
            active: r.active_windows.unwrap_or_default(),
            assigned: r.assigned_windows.unwrap_or_default(),
        })
    }

    async fn pod_logs(
        &self,
        app: &Application,
        namespace: &str,
        pod: &str,
        tail: u32,
    ) -> Result<Vec<String>, SourceError> {
        let path = self.inner.app_path(
            app,
            &format!(
                "/pods/{}/logs?namespace={}&tailLines={tail}&follow=false",
                enc(pod),
                enc(namespace)
            ),
        );
        let body = self
            .inner
            .send_raw(self.inner.request(Method::GET, &path), "pod logs")
            .await?;
        Ok(parse_log_lines(&body))
    }

    async fn follow_pod_logs(
        &self,
        app: &Application,
        namespace: &str,
        pod: &str,
        tail: u32,
        tx: mpsc::Sender<Result<Vec<String>, SourceError>>,
    ) {
        eventlogs::follow(&self.inner, app, namespace, pod, tail, tx).await
    }
}

/// The logs endpoint streams one `{"result":{"content":..}}` JSON object per line.
fn parse_log_lines(body: &[u8]) -> Vec<String> {
    #[derive(Deserialize)]
    struct Entry {
        #[serde(default)]
        content: Option<String>,
        #[serde(default)]
        last: Option<bool>,
    }
    #[derive(Deserialize)]
    struct Msg {
        #[serde(default)]
        result: Option<Entry>,
    }
    body.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice::<Msg>(l).ok()?.result)
        .filter(|e| e.last != Some(true) || e.content.as_deref().is_some_and(|c| !c.is_empty()))
        .filter_map(|e| e.content)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_normalized() {
        assert_eq!(
            normalize_server("argocd.example.com"),
            "https://argocd.example.com"
        );
        assert_eq!(
            normalize_server("http://127.0.0.1:8080/"),
            "http://127.0.0.1:8080"
        );
    }

    #[test]
    fn managed_resource_states_parse() {
        assert_eq!(parse_state(Some("null")), None);
        assert_eq!(parse_state(None), None);
        assert_eq!(parse_state(Some("{\"a\":1}")), Some(json!({"a": 1})));
    }

    #[test]
    fn log_lines() {
        let body = b"{\"result\":{\"content\":\"one\",\"podName\":\"p\"}}\n{\"result\":{\"content\":\"two\"}}\n{\"result\":{\"content\":\"\",\"last\":true}}\n";
        assert_eq!(parse_log_lines(body), vec!["one", "two"]);
    }

    #[test]
    fn sync_body_carries_operator_in_infos() {
        let mut app = Application::default();
        app.metadata.name = "shop-prod".into();
        let req = SyncRequest {
            initiated_by: "ann".into(),
            prune: true,
            ..Default::default()
        };
        let b = sync_body(&app, "argocd", &req);
        assert_eq!(b["infos"][0]["name"], "initiated-by");
        assert_eq!(b["infos"][0]["value"], "ann");
        assert_eq!(b["strategy"], json!({"hook": {}}));
    }
}

/// Argo CD's words when a sync window refuses a sync (`server/application/application.go`).
fn is_window_refusal(msg: &str) -> bool {
    msg.contains("cannot sync: blocked by sync window")
        || msg.contains("cannot sync: invalid sync window")
}

#[cfg(test)]
mod window_refusal_tests {
    #[test]
    fn a_window_refusal_is_not_a_missing_permission() {
        assert!(super::is_window_refusal(
            "cannot sync: blocked by sync window"
        ));
        assert!(super::is_window_refusal(
            "cannot sync: invalid sync window: bad cron"
        ));
        assert!(!super::is_window_refusal(
            "permission denied: applications, sync, prod/cart-prod"
        ));
    }
}
