//! The sandbox's Kubernetes API: what kubectl and kube-rs talk to. One handler parses the
//! path itself (core `/api/v1/...`, groups `/apis/{group}/{version}/...`, both at the root
//! for the in-cluster cluster and under `/clusters/{cluster}/` for every cluster), checks
//! the bearer token and RBAC, and serves from `world.store`.
//!
//! It speaks the wire protocol only; controllers and the Argo CD API live elsewhere. The
//! routes are parameter captures, so the Argo CD router's static `/api/v1/applications...`
//! segments take priority over them.

pub mod convert;
pub mod discovery;
mod handlers;
pub mod patch;
mod proto;
pub mod selectors;
pub mod status;
pub mod table;
mod watch;

use crate::auth::User;
use crate::store::{ResourceType, resource_type};
use crate::{IN_CLUSTER, World};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bytes::Bytes;
use serde_json::Value;
use status::ApiError;
use std::collections::HashMap;
use std::sync::Arc;

/// Largest request body accepted; bigger ones answer 413 (the API server's limit is 3 MiB).
pub const BODY_LIMIT: usize = 3 * 1024 * 1024;

/// The Kubernetes routes, at the root and under `/clusters/{cluster}`.
pub fn router(world: Arc<World>) -> Router {
    const SHAPES: &[&str] = &[
        "/version",
        // Discovery with a trailing slash, as clients' discovery calls send it.
        "/version/",
        "/api/",
        "/apis/",
        "/api/v1/",
        "/apis/{g}/",
        "/apis/{g}/{v}/",
        "/openapi/v3",
        "/openapi/v3/{*doc}",
        "/api",
        "/apis",
        "/api/v1",
        "/api/v1/{a}",
        "/api/v1/{a}/{b}",
        "/api/v1/{a}/{b}/{c}",
        "/api/v1/{a}/{b}/{c}/{d}",
        "/api/v1/{a}/{b}/{c}/{d}/{e}",
        "/apis/{g}",
        "/apis/{g}/{v}",
        "/apis/{g}/{v}/{a}",
        "/apis/{g}/{v}/{a}/{b}",
        "/apis/{g}/{v}/{a}/{b}/{c}",
        "/apis/{g}/{v}/{a}/{b}/{c}/{d}",
        "/apis/{g}/{v}/{a}/{b}/{c}/{d}/{e}",
    ];
    let mut r = Router::new();
    for prefix in ["", "/clusters/{cluster}"] {
        for shape in SHAPES {
            r = r.route(&format!("{prefix}{shape}"), any(entry));
        }
    }
    r.with_state(world)
}

/// Everything a handler needs to know about one request.
pub(crate) struct Ctx {
    pub world: Arc<World>,
    pub cluster: String,
    pub user: User,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
}

impl Ctx {
    pub fn q(&self, key: &str) -> Option<&str> {
        self.query.get(key).map(String::as_str)
    }

    /// A boolean parameter as the API server parses it (Go's `strconv.ParseBool`): the
    /// Python client sends `watch=True`.
    pub fn q_true(&self, key: &str) -> bool {
        matches!(
            self.q(key),
            Some("1" | "t" | "T" | "true" | "TRUE" | "True")
        )
    }

    pub fn header(&self, name: header::HeaderName) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// 403 unless the user may do `verb` (on `obj` when there is one).
    pub fn authorize(
        &self,
        verb: &str,
        res: ResourceType,
        namespace: Option<&str>,
        name: Option<&str>,
        obj: Option<&Value>,
    ) -> Result<(), ApiError> {
        if self.world.users.allowed(&self.user, verb, &res, obj) {
            Ok(())
        } else {
            Err(ApiError::forbidden(
                &self.user.name,
                verb,
                res,
                namespace,
                name,
            ))
        }
    }
}

async fn entry(State(world): State<Arc<World>>, req: Request) -> Response {
    match handle(world, req).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

/// A JSON answer with the given status.
pub(crate) fn json_response(code: StatusCode, body: Vec<u8>) -> Response {
    let mut resp = (code, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

pub(crate) fn json_value(code: StatusCode, v: &Value) -> Response {
    json_response(code, serde_json::to_vec(v).unwrap_or_default())
}

/// Past this, an oversized body is no longer drained before the 413 goes out.
const DRAIN_LIMIT: usize = 64 * 1024 * 1024;

async fn read_body(req: Request) -> Result<Bytes, ApiError> {
    use futures::StreamExt;
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let protobuf = ct.contains("protobuf");
    if ct.contains("cbor") {
        return Err(ApiError::unsupported_media(ct));
    }
    // Read everything the client sends (discarding past the limit) before answering 413,
    // so the client sees the Status rather than a connection torn down mid-upload.
    let mut body = req.into_body().into_data_stream();
    let mut buf = Vec::new();
    let mut seen = 0usize;
    while let Some(data) = body.next().await {
        let data = data.map_err(|e| ApiError::bad_request(format!("cannot read the body: {e}")))?;
        seen += data.len();
        if seen <= BODY_LIMIT {
            buf.extend_from_slice(&data);
        } else if seen > DRAIN_LIMIT {
            break;
        }
    }
    if seen > BODY_LIMIT {
        return Err(ApiError::too_large());
    }
    if protobuf {
        let obj = proto::decode(&buf)
            .ok_or_else(|| ApiError::unsupported_media("application/vnd.kubernetes.protobuf"))?;
        return Ok(Bytes::from(serde_json::to_vec(&obj).unwrap_or_default()));
    }
    Ok(Bytes::from(buf))
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
}

async fn handle(world: Arc<World>, req: Request) -> Result<Response, ApiError> {
    let path = req.uri().path().to_string();
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let (cluster, rest) = match segs.as_slice() {
        ["clusters", c, rest @ ..] => {
            if !is_dns_label(c) {
                return Err(ApiError::not_found_path());
            }
            ((*c).to_string(), rest.to_vec())
        }
        _ => (IN_CLUSTER.to_string(), segs.clone()),
    };
    let user = authenticate(&world, req.headers(), &rest)?;
    let query = axum::extract::Query::<HashMap<String, String>>::try_from_uri(req.uri())
        .map(|q| q.0)
        .map_err(|e| ApiError::bad_request(format!("malformed query: {e}")))?;
    let method = req.method().clone();
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("127.0.0.1")
        .to_string();
    let ctx = Ctx {
        world,
        cluster,
        user,
        query,
        headers: req.headers().clone(),
    };
    let get_only = |v: Value| {
        if method == Method::GET {
            Ok(json_value(StatusCode::OK, &v))
        } else {
            Err(ApiError::method_not_allowed(method.as_str()))
        }
    };
    match rest.as_slice() {
        ["version"] => get_only(discovery::version()),
        ["openapi", "v3"] => get_only(discovery::openapi_v3_root()),
        ["openapi", "v3", doc @ ..] => get_only(
            discovery::openapi_v3_doc(&doc.join("/")).ok_or_else(ApiError::not_found_path)?,
        ),
        ["api"] => get_only(discovery::api_versions(&host)),
        ["apis"] => get_only(discovery::api_group_list()),
        ["api", v] => {
            get_only(discovery::resource_list("", v).ok_or_else(ApiError::not_found_path)?)
        }
        ["apis", g] => get_only(discovery::api_group(g).ok_or_else(ApiError::not_found_path)?),
        ["apis", g, v] => {
            get_only(discovery::resource_list(g, v).ok_or_else(ApiError::not_found_path)?)
        }
        ["api", v, tail @ ..] => {
            let (v, tail) = (v.to_string(), owned(tail));
            resource(ctx, "", &v, &tail, method, req).await
        }
        ["apis", g, v, tail @ ..] => {
            let (g, v, tail) = (g.to_string(), v.to_string(), owned(tail));
            resource(ctx, &g, &v, &tail, method, req).await
        }
        _ => Err(ApiError::not_found_path()),
    }
}

/// Header kubeconfig users carry their token in as well (`as-user-extra: {token: [..]}`):
/// kubectl withholds `Authorization` on plain-HTTP servers but still sends impersonation
/// headers, and the sandbox serves plain HTTP on loopback.
const TOKEN_EXTRA_HEADER: &str = "impersonate-extra-token";

/// The caller, from the bearer token (or the kubeconfig's impersonation-extra copy of it);
/// `Impersonate-User` then narrows an admin to another sandbox user, as RBAC would allow.
fn authenticate(world: &World, headers: &HeaderMap, rest: &[&str]) -> Result<User, ApiError> {
    let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let from_extra = text(TOKEN_EXTRA_HEADER).map(|t| format!("Bearer {t}"));
    let authorization = text(header::AUTHORIZATION.as_str()).or(from_extra.as_deref());
    let user = match world.users.authenticate(authorization) {
        Ok(u) => u,
        // Version information is public on a real API server (system:public-info-viewer).
        Err(_) if rest == ["version"] => {
            return Ok(User {
                name: "system:anonymous".into(),
                role: crate::auth::Role::Viewer,
            });
        }
        Err(_) => return Err(ApiError::unauthorized()),
    };
    match text("impersonate-user") {
        None => Ok(user),
        Some(name) if name == user.name => Ok(user),
        Some(name) if user.role == crate::auth::Role::Admin => {
            let role = crate::auth::Role::ALL
                .into_iter()
                .find(|r| r.username() == name)
                .ok_or_else(|| {
                    ApiError::new(
                        403,
                        "Forbidden",
                        format!(
                            "users \"{name}\" is forbidden: no such sandbox user to impersonate"
                        ),
                    )
                })?;
            Ok(User {
                name: name.to_string(),
                role,
            })
        }
        Some(name) => Err(ApiError::new(
            403,
            "Forbidden",
            format!(
                "users \"{name}\" is forbidden: User \"{}\" cannot impersonate resource \"users\" in API group \"\" at the cluster scope",
                user.name
            ),
        )),
    }
}

fn owned(tail: &[&str]) -> Vec<String> {
    tail.iter().map(|s| s.to_string()).collect()
}

/// A path below a group version: a collection, an object, or an object's subresource.
async fn resource(
    ctx: Ctx,
    group: &str,
    version: &str,
    tail: &[String],
    method: Method,
    req: Request,
) -> Result<Response, ApiError> {
    let t: Vec<&str> = tail.iter().map(String::as_str).collect();
    if group == "authorization.k8s.io" && version == "v1" && t == ["selfsubjectaccessreviews"] {
        if method != Method::POST {
            return Err(ApiError::method_not_allowed(method.as_str()));
        }
        let body = read_body(req).await?;
        return handlers::access_review(&ctx, &body);
    }
    if group == "authentication.k8s.io" && version == "v1" && t == ["selfsubjectreviews"] {
        if method != Method::POST {
            return Err(ApiError::method_not_allowed(method.as_str()));
        }
        // The review carries no input (kube-apiserver ignores its body): who is asking is
        // the whole answer, so a JSON or protobuf body is read and dropped alike.
        let _ = read_body(req).await?;
        return Ok(handlers::self_subject_review(&ctx));
    }
    let namespaced_path = t.len() >= 3
        && t[0] == "namespaces"
        && resource_type(group, t[2]).is_some_and(|r| r.namespaced);
    let (ns, plural, name, sub) = if namespaced_path {
        (Some(t[1]), t[2], t.get(3).copied(), t.get(4).copied())
    } else {
        if t.len() > 3 {
            return Err(ApiError::not_found_path());
        }
        (None, t[0], t.get(1).copied(), t.get(2).copied())
    };
    let res = resource_type(group, plural)
        .filter(|r| r.version == version)
        .ok_or_else(ApiError::not_found_path)?;
    if res.namespaced && ns.is_none() && name.is_some() {
        return Err(ApiError::not_found_path());
    }
    let ns = ns.map(str::to_string);
    let ns = ns.as_deref();
    match (name, sub) {
        (None, _) => match method {
            Method::GET if ctx.q_true("watch") => handlers::watch(&ctx, res, ns),
            Method::GET => handlers::list(&ctx, res, ns),
            Method::POST if ns.is_some() || !res.namespaced => {
                let body = read_body(req).await?;
                handlers::create(&ctx, res, ns, &body)
            }
            m => Err(ApiError::method_not_allowed(m.as_str())),
        },
        (Some(name), None) => {
            let name = name.to_string();
            match method {
                Method::GET => handlers::get(&ctx, res, ns, &name),
                Method::PUT => {
                    let body = read_body(req).await?;
                    handlers::update(&ctx, res, ns, &name, &body, false)
                }
                Method::PATCH => {
                    let ct = ctx.header(header::CONTENT_TYPE).to_string();
                    let body = read_body(req).await?;
                    handlers::patch(&ctx, res, ns, &name, &ct, &body, false)
                }
                Method::DELETE => handlers::delete(&ctx, res, ns, &name),
                m => Err(ApiError::method_not_allowed(m.as_str())),
            }
        }
        (Some(name), Some("status")) if discovery::has_status_subresource(res) => {
            let name = name.to_string();
            match method {
                Method::GET => handlers::get(&ctx, res, ns, &name),
                Method::PUT => {
                    let body = read_body(req).await?;
                    handlers::update(&ctx, res, ns, &name, &body, true)
                }
                Method::PATCH => {
                    let ct = ctx.header(header::CONTENT_TYPE).to_string();
                    let body = read_body(req).await?;
                    handlers::patch(&ctx, res, ns, &name, &ct, &body, true)
                }
                m => Err(ApiError::method_not_allowed(m.as_str())),
            }
        }
        (Some(name), Some("log")) if res.kind == "Pod" && method == Method::GET => {
            handlers::pod_log(&ctx, ns, name)
        }
        (Some(name), Some("scale"))
            if matches!(res.kind, "Deployment" | "ReplicaSet" | "StatefulSet") =>
        {
            let name = name.to_string();
            let ct = ctx.header(header::CONTENT_TYPE).to_string();
            let body = if method == Method::GET {
                Bytes::new()
            } else {
                read_body(req).await?
            };
            handlers::scale(&ctx, res, ns, &name, &method, &ct, &body)
        }
        _ => Err(ApiError::not_found_path()),
    }
}
