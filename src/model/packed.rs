//! An Application kept compressed. The estate holds every app of every instance; at 50,000
//! apps the decoded `Application` (about 1.9 KB of struct layout and 70-odd allocations
//! before a single string) is most of the console's memory. The board reads a few facts
//! per app (`ops::estate::Board`), decoded once when the app arrives; the whole projected
//! object stays here, as its JSON compressed against a dictionary (the first app packed in
//! this process: Argo CD objects share nearly every key and most values, such as the repo,
//! the cluster and the project), and is decoded when a screen or a command reads one app.
//! Lossless: [`Packed::unpack`] gives back exactly what was packed.

use shipdeck_wire::Application;
use std::sync::OnceLock;

/// LZ4 looks back at most 64 KiB, so a longer dictionary is cut to its end.
const DICT_MAX: usize = 64 * 1024;

static DICT: OnceLock<Box<[u8]>> = OnceLock::new();

fn dictionary(first: &[u8]) -> &'static [u8] {
    DICT.get_or_init(|| {
        let from = first.len().saturating_sub(DICT_MAX);
        first[from..].into()
    })
}

/// One app's JSON, LZ4-compressed against the process's dictionary, its length in front.
#[derive(Clone, PartialEq, Eq)]
pub struct Packed(Box<[u8]>);

impl Packed {
    pub fn pack(app: &Application) -> Self {
        // Serializing the wire type cannot fail (string keys only, no custom serializers);
        // should it ever, the empty blob unpacks to an error, never to a made-up app.
        Self::of_json(&serde_json::to_vec(app).unwrap_or_default())
    }

    /// An app's JSON as it is, packed: for bytes that decode to exactly the app the caller
    /// holds (its wire form, when [`crate::model::compact_for_board`] would change
    /// nothing), so the app need not be serialized again.
    pub fn of_json(json: &[u8]) -> Self {
        let dict = dictionary(json);
        let blob = lz4_flex::block::compress_prepend_size_with_dict(json, dict);
        // The blob is kept; the buffers that made it are not (see `memory::long_lived`).
        Self(crate::memory::long_lived(|| Box::from(&blob[..])))
    }

    /// The app as it was packed.
    pub fn unpack(&self) -> Result<Application, String> {
        let dict = DICT.get().map_or(&[][..], |d| &d[..]);
        let json = lz4_flex::block::decompress_size_prepended_with_dict(&self.0, dict)
            .map_err(|e| format!("a packed application does not decompress: {e}"))?;
        serde_json::from_slice(&json)
            .map_err(|e| format!("a packed application does not decode: {e}"))
    }

    /// Bytes held.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Packed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Packed({} bytes)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(name: &str, extra: serde_json::Value) -> Application {
        let mut v = serde_json::json!({
            "metadata": {"name": name, "namespace": "argocd",
                         "labels": {"env": "prod"}, "annotations": {"a": "\u{1b}[31mred"}},
            "spec": {"project": "shop", "source": {"repoURL": "https://git/x", "path": name,
                     "targetRevision": "main", "helm": {"valueFiles": ["a.yaml"]}},
                     "destination": {"server": "https://kubernetes.default.svc", "namespace": name}},
            "status": {"sync": {"status": "OutOfSync", "revision": "abc"},
                       "health": {"status": "Degraded", "message": "back-off"},
                       "history": [{"id": 1, "revision": "abc", "deployedAt": "2026-01-01T00:00:00Z"}]}
        });
        if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            for (k, x) in e {
                o.insert(k.clone(), x.clone());
            }
        }
        serde_json::from_value(v).expect("fixture parses")
    }

    #[test]
    fn unpacks_to_exactly_what_was_packed_and_is_smaller_than_its_json() {
        let first = app("web", serde_json::json!({}));
        let second = app(
            "cart",
            serde_json::json!({"operation": {"sync": {"revision": "def"}}}),
        );
        for a in [&first, &second] {
            let p = Packed::pack(a);
            assert_eq!(p.unpack().as_ref(), Ok(a));
            let json = serde_json::to_vec(a).expect("serializes").len();
            assert!(p.len() < json, "{} packed against {json} of JSON", p.len());
        }
    }

    #[test]
    fn wire_bytes_pack_to_the_app_they_decode_to() {
        // As a list item arrives: keys in any order, nulls, a field the model does not type.
        let raw = br#"{"status":{"sync":{"status":"Synced"},"unknown":[1]},"metadata":{"annotations":null,"name":"web","namespace":"argocd"},"spec":{"project":"shop"}}"#;
        let decoded: Application = serde_json::from_slice(raw).expect("fixture parses");
        let p = Packed::of_json(raw);
        assert_eq!(p.unpack().as_ref(), Ok(&decoded));
        assert_eq!(Packed::pack(&decoded).unpack(), Ok(decoded));
    }

    #[test]
    fn a_damaged_blob_is_an_error_not_an_app() {
        let p = Packed(vec![200, 0, 0, 0, 1, 2, 3].into_boxed_slice());
        assert!(p.unpack().is_err());
        assert!(Packed(Box::new([])).unpack().is_err());
    }
}
