//! Just enough of Kubernetes' protobuf encoding to read what kubectl sends for built-in
//! types (it posts `application/vnd.kubernetes.protobuf` and does not fall back to JSON):
//! the `k8s\0` envelope, ObjectMeta, and the few bodies kubectl writes typed —
//! SelfSubjectAccessReview (`auth can-i`), SelfSubjectReview (`auth whoami`), Namespace and ConfigMap (`create`). Anything else
//! answers 415 so the client sees a clear refusal instead of a guess.

use serde_json::{Map, Value, json};

const MAGIC: &[u8] = b"k8s\0";

enum Field<'a> {
    Varint,
    Bytes(&'a [u8]),
    Fixed,
}

fn varint(buf: &[u8], pos: &mut usize) -> Option<u64> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos)?;
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Some(out);
        }
    }
    None
}

fn fields(buf: &[u8]) -> Option<Vec<(u64, Field<'_>)>> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let (num, wire) = (key >> 3, key & 7);
        let f = match wire {
            0 => {
                varint(buf, &mut pos)?;
                Field::Varint
            }
            1 => {
                pos = pos.checked_add(8).filter(|p| *p <= buf.len())?;
                Field::Fixed
            }
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).ok()?;
                let end = pos.checked_add(len).filter(|e| *e <= buf.len())?;
                let b = &buf[pos..end];
                pos = end;
                Field::Bytes(b)
            }
            5 => {
                pos = pos.checked_add(4).filter(|p| *p <= buf.len())?;
                Field::Fixed
            }
            _ => return None,
        };
        out.push((num, f));
    }
    Some(out)
}

fn string(b: &[u8]) -> Option<String> {
    String::from_utf8(b.to_vec()).ok()
}

/// A `map<string,string>` entry.
fn map_entry(b: &[u8]) -> Option<(String, String)> {
    let (mut k, mut v) = (String::new(), String::new());
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(x)) => k = string(x)?,
            (2, Field::Bytes(x)) => v = string(x)?,
            _ => {}
        }
    }
    Some((k, v))
}

fn object_meta(b: &[u8]) -> Option<Value> {
    let mut m = Map::new();
    let (mut labels, mut annotations) = (Map::new(), Map::new());
    for (n, f) in fields(b)? {
        match (n, f) {
            (1, Field::Bytes(x)) => {
                m.insert("name".into(), json!(string(x)?));
            }
            (2, Field::Bytes(x)) => {
                m.insert("generateName".into(), json!(string(x)?));
            }
            (3, Field::Bytes(x)) => {
                m.insert("namespace".into(), json!(string(x)?));
            }
            (6, Field::Bytes(x)) => {
                m.insert("resourceVersion".into(), json!(string(x)?));
            }
            (11, Field::Bytes(x)) => {
                let (k, v) = map_entry(x)?;
                labels.insert(k, json!(v));
            }
            (12, Field::Bytes(x)) => {
                let (k, v) = map_entry(x)?;
                annotations.insert(k, json!(v));
            }
            _ => {}
        }
    }
    if !labels.is_empty() {
        m.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        m.insert("annotations".into(), Value::Object(annotations));
    }
    Some(Value::Object(m))
}

fn strings(b: &[u8], names: &[(u64, &str)]) -> Option<Value> {
    let mut m = Map::new();
    for (n, f) in fields(b)? {
        if let (Some((_, name)), Field::Bytes(x)) = (names.iter().find(|(k, _)| *k == n), f) {
            m.insert((*name).into(), json!(string(x)?));
        }
    }
    Some(Value::Object(m))
}

fn decode_kind(kind: &str, raw: &[u8]) -> Option<Value> {
    let mut obj = Map::new();
    for (n, f) in fields(raw)? {
        let Field::Bytes(x) = f else { continue };
        match (kind, n) {
            (_, 1) => {
                obj.insert("metadata".into(), object_meta(x)?);
            }
            ("SelfSubjectAccessReview", 2) => {
                let mut spec = Map::new();
                for (sn, sf) in fields(x)? {
                    let Field::Bytes(y) = sf else { continue };
                    match sn {
                        1 => {
                            let ra = strings(
                                y,
                                &[
                                    (1, "namespace"),
                                    (2, "verb"),
                                    (3, "group"),
                                    (4, "version"),
                                    (5, "resource"),
                                    (6, "subresource"),
                                    (7, "name"),
                                ],
                            )?;
                            spec.insert("resourceAttributes".into(), ra);
                        }
                        2 => {
                            let nra = strings(y, &[(1, "path"), (2, "verb")])?;
                            spec.insert("nonResourceAttributes".into(), nra);
                        }
                        _ => {}
                    }
                }
                obj.insert("spec".into(), Value::Object(spec));
            }
            ("ConfigMap", 2) => {
                let (k, v) = map_entry(x)?;
                let data = obj.entry("data").or_insert_with(|| json!({}));
                data[k] = json!(v);
            }
            _ => {}
        }
    }
    Some(Value::Object(obj))
}

/// Decode a protobuf body into the JSON object it stands for; None when it is not one of
/// the types understood here.
pub fn decode(body: &[u8]) -> Option<Value> {
    let rest = body.strip_prefix(MAGIC)?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (n, f) in fields(rest)? {
        match (n, f) {
            (1, Field::Bytes(tm)) => {
                for (tn, tf) in fields(tm)? {
                    match (tn, tf) {
                        (1, Field::Bytes(x)) => api_version = string(x)?,
                        (2, Field::Bytes(x)) => kind = string(x)?,
                        _ => {}
                    }
                }
            }
            (2, Field::Bytes(x)) => raw = x,
            _ => {}
        }
    }
    if !matches!(
        kind.as_str(),
        "SelfSubjectAccessReview" | "SelfSubjectReview" | "Namespace" | "ConfigMap"
    ) {
        return None;
    }
    let mut obj = decode_kind(&kind, raw)?;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Some(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ld(field: u8, bytes: &[u8]) -> Vec<u8> {
        let mut v = vec![(field << 3) | 2, bytes.len() as u8];
        v.extend_from_slice(bytes);
        v
    }

    #[test]
    fn decodes_an_access_review() {
        let ra = [
            ld(1, b"argocd"),
            ld(2, b"patch"),
            ld(3, b"argoproj.io"),
            ld(5, b"applications"),
        ]
        .concat();
        let spec = ld(1, &ra);
        let raw = [ld(1, &[]), ld(2, &spec)].concat();
        let tm = [
            ld(1, b"authorization.k8s.io/v1"),
            ld(2, b"SelfSubjectAccessReview"),
        ]
        .concat();
        let body = [MAGIC.to_vec(), ld(1, &tm), ld(2, &raw)].concat();
        let v = decode(&body).unwrap();
        assert_eq!(v["spec"]["resourceAttributes"]["verb"], "patch");
        assert_eq!(v["spec"]["resourceAttributes"]["resource"], "applications");
        assert!(decode(b"k8s\0\x0a\x02").is_none());
    }
}
