//! Request bodies decoded as Argo CD's API server decodes them: grpc-gateway hands the body
//! to Go's `encoding/json` (Argo CD's `JSONMarshaler`) over the request's Go type, so
//! unknown fields are ignored, keys match case-insensitively, `null` leaves a field unset,
//! and a value of the wrong JSON type is refused with Go's `UnmarshalTypeError` text as a
//! gRPC InvalidArgument (HTTP 400, code 3). The types mirror the swagger definitions in
//! `reference/argocd/swagger-subset.json`.

use super::ApiError;
use serde_json::Value;

/// A Go type a JSON value decodes into.
#[derive(Clone, Copy)]
pub enum T {
    Str,
    Bool,
    Int64,
    /// Anything (`runtime.RawExtension`, free-form maps, fields the sandbox does not type).
    Any,
    /// `map[string]string`.
    StrMap,
    Arr(&'static T, &'static str),
    /// A struct: its Go type name (`v1alpha1.SyncStrategy`) and fields.
    Obj(&'static Struct),
}

pub struct Struct {
    /// Package-qualified Go type name, as `encoding/json` prints it.
    pub go: &'static str,
    pub fields: &'static [(&'static str, T)],
}

impl Struct {
    fn short(&self) -> &'static str {
        self.go.rsplit('.').next().unwrap_or(self.go)
    }
}

const STRS: T = T::Arr(&T::Str, "[]string");

pub static SYNC_STRATEGY_APPLY: Struct = Struct {
    go: "v1alpha1.SyncStrategyApply",
    fields: &[("force", T::Bool)],
};
pub static SYNC_STRATEGY_HOOK: Struct = Struct {
    go: "v1alpha1.SyncStrategyHook",
    // `SyncStrategyApply` is embedded inline in Go; the proto name is accepted too.
    fields: &[
        ("force", T::Bool),
        ("syncStrategyApply", T::Obj(&SYNC_STRATEGY_APPLY)),
    ],
};
pub static SYNC_STRATEGY: Struct = Struct {
    go: "v1alpha1.SyncStrategy",
    fields: &[
        ("apply", T::Obj(&SYNC_STRATEGY_APPLY)),
        ("hook", T::Obj(&SYNC_STRATEGY_HOOK)),
    ],
};
pub static SYNC_RESOURCE: Struct = Struct {
    go: "v1alpha1.SyncOperationResource",
    fields: &[
        ("group", T::Str),
        ("kind", T::Str),
        ("name", T::Str),
        ("namespace", T::Str),
    ],
};
pub static INFO: Struct = Struct {
    go: "v1alpha1.Info",
    fields: &[("name", T::Str), ("value", T::Str)],
};
pub static BACKOFF: Struct = Struct {
    go: "v1alpha1.Backoff",
    fields: &[
        ("duration", T::Str),
        ("factor", T::Int64),
        ("maxDuration", T::Str),
    ],
};
pub static RETRY: Struct = Struct {
    go: "v1alpha1.RetryStrategy",
    fields: &[
        ("limit", T::Int64),
        ("backoff", T::Obj(&BACKOFF)),
        ("refresh", T::Bool),
    ],
};
pub static SYNC_OPTIONS: Struct = Struct {
    go: "application.SyncOptions",
    fields: &[("items", STRS)],
};

/// `ApplicationSyncRequest` (POST /api/v1/applications/{name}/sync).
pub static SYNC_REQUEST: Struct = Struct {
    go: "application.ApplicationSyncRequest",
    fields: &[
        ("name", T::Str),
        ("revision", T::Str),
        ("dryRun", T::Bool),
        ("prune", T::Bool),
        ("strategy", T::Obj(&SYNC_STRATEGY)),
        (
            "resources",
            T::Arr(&T::Obj(&SYNC_RESOURCE), "[]v1alpha1.SyncOperationResource"),
        ),
        ("manifests", STRS),
        ("infos", T::Arr(&T::Obj(&INFO), "[]*v1alpha1.Info")),
        ("retryStrategy", T::Obj(&RETRY)),
        ("syncOptions", T::Obj(&SYNC_OPTIONS)),
        ("appNamespace", T::Str),
        ("project", T::Str),
        ("sourcePositions", T::Arr(&T::Int64, "[]int64")),
        ("revisions", STRS),
    ],
};

/// `ApplicationRollbackRequest` (POST /api/v1/applications/{name}/rollback).
pub static ROLLBACK_REQUEST: Struct = Struct {
    go: "application.ApplicationRollbackRequest",
    fields: &[
        ("name", T::Str),
        ("id", T::Int64),
        ("dryRun", T::Bool),
        ("prune", T::Bool),
        ("appNamespace", T::Str),
        ("project", T::Str),
    ],
};

/// `ApplicationPatchRequest` (PATCH /api/v1/applications/{name}).
pub static PATCH_REQUEST: Struct = Struct {
    go: "application.ApplicationPatchRequest",
    fields: &[
        ("name", T::Str),
        ("patch", T::Str),
        ("patchType", T::Str),
        ("appNamespace", T::Str),
        ("project", T::Str),
    ],
};

/// `ResourceActionRunRequestV2` (POST /api/v1/applications/{name}/resource/actions/v2).
pub static RESOURCE_ACTION_RUN_V2: Struct = Struct {
    go: "application.ResourceActionRunRequestV2",
    fields: &[
        ("name", T::Str),
        ("namespace", T::Str),
        ("resourceName", T::Str),
        ("version", T::Str),
        ("group", T::Str),
        ("kind", T::Str),
        ("action", T::Str),
        ("appNamespace", T::Str),
        ("project", T::Str),
        ("resourceActionParameters", T::Any),
    ],
};

/// `SessionCreateRequest` (POST /api/v1/session).
pub static SESSION_REQUEST: Struct = Struct {
    go: "session.SessionCreateRequest",
    fields: &[
        ("username", T::Str),
        ("password", T::Str),
        ("token", T::Str),
    ],
};

static OBJECT_META: Struct = Struct {
    go: "v1.ObjectMeta",
    fields: &[
        ("name", T::Str),
        ("generateName", T::Str),
        ("namespace", T::Str),
        ("uid", T::Str),
        ("resourceVersion", T::Str),
        ("generation", T::Int64),
        ("labels", T::StrMap),
        ("annotations", T::StrMap),
        ("finalizers", STRS),
    ],
};
static DESTINATION: Struct = Struct {
    go: "v1alpha1.ApplicationDestination",
    fields: &[("server", T::Str), ("namespace", T::Str), ("name", T::Str)],
};
static SOURCE: Struct = Struct {
    go: "v1alpha1.ApplicationSource",
    fields: &[
        ("repoURL", T::Str),
        ("path", T::Str),
        ("targetRevision", T::Str),
        ("chart", T::Str),
        ("ref", T::Str),
        ("name", T::Str),
        ("helm", T::Any),
        ("kustomize", T::Any),
        ("directory", T::Any),
        ("plugin", T::Any),
    ],
};
static AUTOMATED: Struct = Struct {
    go: "v1alpha1.SyncPolicyAutomated",
    fields: &[
        ("prune", T::Bool),
        ("selfHeal", T::Bool),
        ("allowEmpty", T::Bool),
        ("enabled", T::Bool),
    ],
};
static SYNC_POLICY: Struct = Struct {
    go: "v1alpha1.SyncPolicy",
    fields: &[
        ("automated", T::Obj(&AUTOMATED)),
        ("syncOptions", STRS),
        ("retry", T::Obj(&RETRY)),
        ("managedNamespaceMetadata", T::Any),
    ],
};
static APP_SPEC: Struct = Struct {
    go: "v1alpha1.ApplicationSpec",
    fields: &[
        ("source", T::Obj(&SOURCE)),
        (
            "sources",
            T::Arr(&T::Obj(&SOURCE), "v1alpha1.ApplicationSources"),
        ),
        ("destination", T::Obj(&DESTINATION)),
        ("project", T::Str),
        ("syncPolicy", T::Obj(&SYNC_POLICY)),
        ("ignoreDifferences", T::Any),
        ("info", T::Arr(&T::Obj(&INFO), "[]v1alpha1.Info")),
        ("revisionHistoryLimit", T::Int64),
    ],
};

/// `v1alpha1.Application` (the body of create and update).
pub static APPLICATION: Struct = Struct {
    go: "v1alpha1.Application",
    fields: &[
        ("apiVersion", T::Str),
        ("kind", T::Str),
        ("metadata", T::Obj(&OBJECT_META)),
        ("spec", T::Obj(&APP_SPEC)),
        ("status", T::Any),
        ("operation", T::Any),
    ],
};

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn go_type(t: &T) -> &'static str {
    match t {
        T::Str => "string",
        T::Bool => "bool",
        T::Int64 => "int64",
        T::Any => "interface {}",
        T::StrMap => "map[string]string",
        T::Arr(_, go) => go,
        T::Obj(s) => s.go,
    }
}

/// Where a value sits, for the error: the innermost struct and the JSON field path.
struct Ctx<'a> {
    top: &'a Struct,
    inner: Option<&'static str>,
    path: Vec<String>,
}

impl Ctx<'_> {
    fn error(&self, value: &Value, t: &T) -> String {
        let what = match value {
            Value::Number(n) if matches!(t, T::Int64) => format!("number {n}"),
            v => json_kind(v).to_string(),
        };
        if self.path.is_empty() {
            return format!(
                "json: cannot unmarshal {what} into Go value of type {}",
                go_type(t)
            );
        }
        format!(
            "json: cannot unmarshal {what} into Go struct field {}.{} of type {}",
            self.inner.unwrap_or(self.top.short()),
            self.path.join("."),
            go_type(t)
        )
    }
}

fn check(v: &Value, t: &T, ctx: &mut Ctx<'_>) -> Result<(), String> {
    if v.is_null() {
        return Ok(());
    }
    let ok = match t {
        T::Any => true,
        T::Str => v.is_string(),
        T::Bool => v.is_boolean(),
        T::Int64 => v.as_i64().is_some(),
        T::StrMap => {
            let Some(m) = v.as_object() else {
                return Err(ctx.error(v, t));
            };
            // Go names the map field, not the key, in the error.
            if let Some(item) = m.values().find(|i| !i.is_string() && !i.is_null()) {
                return Err(ctx.error(item, &T::Str));
            }
            true
        }
        T::Arr(item_t, _) => {
            let Some(items) = v.as_array() else {
                return Err(ctx.error(v, t));
            };
            for item in items {
                check(item, item_t, ctx)?;
            }
            true
        }
        T::Obj(s) => {
            let Some(m) = v.as_object() else {
                return Err(ctx.error(v, t));
            };
            let saved = ctx.inner;
            for (key, item) in m {
                // Go matches the exact name first, then case-insensitively.
                let field = s
                    .fields
                    .iter()
                    .find(|(n, _)| n == key)
                    .or_else(|| s.fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(key)));
                let Some((name, ft)) = field else {
                    continue; // unknown fields are ignored
                };
                ctx.inner = Some(s.short());
                ctx.path.push((*name).to_string());
                let r = check(item, ft, ctx);
                ctx.path.pop();
                r?;
            }
            ctx.inner = saved;
            true
        }
    };
    if ok { Ok(()) } else { Err(ctx.error(v, t)) }
}

/// Go's message for JSON that does not parse (its common cases: a truncated document, and
/// a document that does not start as JSON).
fn syntax_error(body: &[u8], e: &serde_json::Error) -> String {
    if e.is_eof() {
        return "unexpected EOF".to_string();
    }
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b) if !b"{[\"-0123456789tfn".contains(b) => {
            let c = *b as char;
            let shown = if c.is_ascii_graphic() || c == ' ' {
                format!("'{c}'")
            } else {
                format!("'\\x{:02x}'", b)
            };
            format!("invalid character {shown} looking for beginning of value")
        }
        _ => format!("invalid character in JSON: {e}"),
    }
}

/// Decode `body` as `s` would be: the JSON value (an empty body is an empty request), or
/// 400 InvalidArgument with Go's error text.
pub fn decode(body: &[u8], s: &'static Struct) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    let v: Value =
        serde_json::from_slice(body).map_err(|e| ApiError::invalid(syntax_error(body, &e)))?;
    let mut ctx = Ctx {
        top: s,
        inner: None,
        path: Vec::new(),
    };
    check(&v, &T::Obj(s), &mut ctx).map_err(ApiError::invalid)?;
    // `null` decodes to the zero request; field lookups then see nothing set. Keys that
    // differ only in case are normalised to the declared name.
    Ok(normalize(v, &T::Obj(s)))
}

fn normalize(v: Value, t: &T) -> Value {
    match (v, t) {
        (Value::Null, T::Obj(_)) => Value::Object(Default::default()),
        (Value::Object(m), T::Obj(s)) => {
            let mut out = serde_json::Map::new();
            for (k, item) in m {
                match s.fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(&k)) {
                    Some((name, ft)) => {
                        out.insert((*name).to_string(), normalize(item, ft));
                    }
                    None => {
                        out.insert(k, item);
                    }
                }
            }
            Value::Object(out)
        }
        (Value::Array(items), T::Arr(item_t, _)) => {
            Value::Array(items.into_iter().map(|i| normalize(i, item_t)).collect())
        }
        (v, _) => v,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(body: &str) -> String {
        decode(body.as_bytes(), &SYNC_REQUEST).unwrap_err().message
    }

    #[test]
    fn type_errors_read_as_go_writes_them() {
        assert_eq!(
            msg("[]"),
            "json: cannot unmarshal array into Go value of type application.ApplicationSyncRequest"
        );
        assert_eq!(
            msg(r#"{"prune":"yes"}"#),
            "json: cannot unmarshal string into Go struct field ApplicationSyncRequest.prune of type bool"
        );
        assert_eq!(
            msg(r#"{"revision":123}"#),
            "json: cannot unmarshal number into Go struct field ApplicationSyncRequest.revision of type string"
        );
        assert_eq!(
            msg(r#"{"strategy":{"apply":{"force":1}}}"#),
            "json: cannot unmarshal number into Go struct field SyncStrategyApply.strategy.apply.force of type bool"
        );
        let ok = decode(
            br#"{"Prune":true,"extra":{"x":1},"dryRun":null}"#,
            &SYNC_REQUEST,
        )
        .unwrap();
        assert_eq!(ok["prune"], true);
        assert!(decode(b"", &SYNC_REQUEST).is_ok());
        assert_eq!(
            msg("prune=true"),
            "invalid character 'p' looking for beginning of value"
        );
        assert_eq!(msg(r#"{"prune":"#), "unexpected EOF");
        assert!(decode(b"null", &SYNC_REQUEST).unwrap().is_object());
        let e = decode(br#"{"id":"3"}"#, &ROLLBACK_REQUEST).unwrap_err();
        assert_eq!(e.code, 3);
        assert_eq!(
            decode(br#"{"id":1.5}"#, &ROLLBACK_REQUEST)
                .unwrap_err()
                .message,
            "json: cannot unmarshal number 1.5 into Go struct field ApplicationRollbackRequest.id of type int64"
        );
    }
}
