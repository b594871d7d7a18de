//! Kubernetes `Status` errors: every failure the sandbox's Kubernetes API answers is a
//! `kind: Status` object with the reason and code a real API server would send, so kubectl
//! and kube-rs print and classify it as they would against a cluster. Nothing here decides
//! whether a request fails; it only shapes the answer.

use crate::store::{ResourceType, StoreError};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// A failed request, as a `Status` object.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    pub details: Option<Value>,
    /// `metadata.continue` of the Status (a 410 for an expired list hands one back).
    pub list_continue: Option<String>,
}

impl ApiError {
    pub fn new(code: u16, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            details: None,
            list_continue: None,
        }
    }

    pub fn with_list_continue(mut self, token: String) -> Self {
        self.list_continue = Some(token);
        self
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(400, "BadRequest", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(401, "Unauthorized", "Unauthorized")
    }

    pub fn not_found_path() -> Self {
        Self::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
        .with_details(json!({"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]}))
    }

    pub fn method_not_allowed(method: &str) -> Self {
        Self::new(
            405,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({method})"),
        )
    }

    pub fn too_large() -> Self {
        Self::new(
            413,
            "RequestEntityTooLarge",
            "Request entity too large: limit is 3145728",
        )
    }

    pub fn unsupported_media(content_type: &str) -> Self {
        Self::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json (got {content_type:?})"
            ),
        )
    }

    pub fn invalid(res: ResourceType, name: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        Self::new(
            422,
            "Invalid",
            format!("{} \"{name}\" is invalid: {message}", kind_group(res)),
        )
        .with_details(details(res, name))
    }

    pub fn gone(message: impl Into<String>) -> Self {
        Self::new(410, "Expired", message)
    }

    /// The wording of Kubernetes' RBAC refusal, which operators recognise.
    pub fn forbidden(
        user: &str,
        verb: &str,
        res: ResourceType,
        namespace: Option<&str>,
        name: Option<&str>,
    ) -> Self {
        let what = match name {
            Some(n) if !n.is_empty() => format!("{} \"{n}\"", plural_group(res)),
            _ => plural_group(res),
        };
        let scope = match namespace {
            Some(ns) if !ns.is_empty() => format!("in the namespace \"{ns}\""),
            _ => "at the cluster scope".to_string(),
        };
        Self::new(
            403,
            "Forbidden",
            format!(
                "{what} is forbidden: User \"{user}\" cannot {verb} resource \"{}\" in API group \"{}\" {scope}",
                res.plural, res.group
            ),
        )
        .with_details(details(res, name.unwrap_or("")))
    }

    pub fn conflict(res: ResourceType, name: &str) -> Self {
        ApiError::from_store(
            res,
            StoreError::Conflict {
                plural: res.plural.into(),
                group: res.group.into(),
                name: name.into(),
            },
        )
    }

    /// Map a store error onto the Status the API server would answer.
    pub fn from_store(res: ResourceType, e: StoreError) -> Self {
        match e {
            StoreError::NotFound { name, .. } => Self::new(
                404,
                "NotFound",
                format!("{} \"{name}\" not found", plural_group(res)),
            )
            .with_details(details(res, &name)),
            StoreError::AlreadyExists { name, .. } => Self::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", plural_group(res)),
            )
            .with_details(details(res, &name)),
            StoreError::Conflict { name, .. } => Self::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                    plural_group(res)
                ),
            )
            .with_details(details(res, &name)),
            StoreError::Gone { requested, oldest } => Self::gone(format!(
                "too old resource version: {requested} ({oldest})"
            )),
            StoreError::Invalid(m) => Self::new(422, "Invalid", m),
        }
    }

    pub fn to_value(&self) -> Value {
        let mut v = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(d) = &self.details {
            v["details"] = d.clone();
        }
        if let Some(c) = &self.list_continue {
            v["metadata"] = json!({"continue": c});
        }
        v
    }
}

/// `applications.argoproj.io`, or `pods` for the core group.
pub fn plural_group(res: ResourceType) -> String {
    if res.group.is_empty() {
        res.plural.to_string()
    } else {
        format!("{}.{}", res.plural, res.group)
    }
}

fn kind_group(res: ResourceType) -> String {
    if res.group.is_empty() {
        res.kind.to_string()
    } else {
        format!("{}.{}", res.kind, res.group)
    }
}

fn details(res: ResourceType, name: &str) -> Value {
    let mut d = json!({"group": res.group, "kind": res.plural});
    if !name.is_empty() {
        d["name"] = json!(name);
    }
    d
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = StatusCode::from_u16(self.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self.to_value()).unwrap_or_default();
        let mut resp = (code, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        resp
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.code, self.reason, self.message)
    }
}
