//! Patches as the API server applies them: JSON merge patch (RFC 7386), JSON patch
//! (RFC 6902, through the `json-patch` crate), and strategic merge patch treated as a merge
//! patch (the sandbox has no schema to merge lists by key). Pure functions over JSON.

use json_patch::Patch;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    Merge,
    Json,
    Strategic,
}

impl PatchKind {
    pub fn from_content_type(ct: &str) -> Option<Self> {
        let ct = ct.split(';').next().unwrap_or("").trim();
        match ct {
            "application/merge-patch+json" => Some(Self::Merge),
            "application/json-patch+json" => Some(Self::Json),
            "application/strategic-merge-patch+json" => Some(Self::Strategic),
            _ => None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PatchError {
    /// The body is not a patch of the declared kind (400).
    #[error("{0}")]
    Malformed(String),
    /// The patch is well formed but cannot apply to this object (422).
    #[error("{0}")]
    Failed(String),
}

/// Apply `body` to `target`, returning the patched object.
pub fn apply(kind: PatchKind, target: &Value, body: &[u8]) -> Result<Value, PatchError> {
    let mut doc = target.clone();
    match kind {
        PatchKind::Merge | PatchKind::Strategic => {
            let p: Value = serde_json::from_slice(body)
                .map_err(|e| PatchError::Malformed(format!("error decoding patch: {e}")))?;
            if !p.is_object() {
                return Err(PatchError::Malformed(
                    "error decoding patch: a merge patch must be a JSON object".into(),
                ));
            }
            json_patch::merge(&mut doc, &p);
        }
        PatchKind::Json => {
            let p: Patch = serde_json::from_slice(body).map_err(|e| {
                PatchError::Malformed(format!("the JSON patch could not be decoded: {e}"))
            })?;
            json_patch::patch(&mut doc, &p)
                .map_err(|e| PatchError::Failed(format!("the JSON patch could not apply: {e}")))?;
        }
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_and_json_patch() {
        let t = json!({"spec": {"replicas": 1, "paused": true}});
        let m = apply(
            PatchKind::Merge,
            &t,
            br#"{"spec":{"replicas":3,"paused":null}}"#,
        )
        .unwrap();
        assert_eq!(m, json!({"spec": {"replicas": 3}}));
        let j = apply(
            PatchKind::Json,
            &t,
            br#"[{"op":"replace","path":"/spec/replicas","value":2}]"#,
        )
        .unwrap();
        assert_eq!(j["spec"]["replicas"], 2);
        assert!(matches!(
            apply(PatchKind::Json, &t, br#"[{"op":"remove","path":"/nope"}]"#),
            Err(PatchError::Failed(_))
        ));
        assert!(matches!(
            apply(PatchKind::Merge, &t, b"{nope"),
            Err(PatchError::Malformed(_))
        ));
    }
}
