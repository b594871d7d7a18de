//! The application list decoded one item at a time: `items` is walked by a serde visitor
//! that hands each app to the caller as it decodes, so `status` builds its rows without a
//! `Vec` of every app (the body's bytes are the only whole copy).

use crate::model::Application;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

/// Decode `{"items": [...], ...}` from `body`, calling `each` once per app in list order.
pub(crate) fn for_each_item(
    body: &[u8],
    each: &mut (dyn FnMut(Application) + Send),
) -> Result<(), serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(body);
    ListSeed(each).deserialize(&mut de)?;
    de.end()
}

struct ListSeed<'a>(&'a mut (dyn FnMut(Application) + Send));

impl<'de> DeserializeSeed<'de> for ListSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for ListSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an application list")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == "items" {
                map.next_value_seed(ItemsSeed(&mut *self.0))?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }
}

struct ItemsSeed<'a>(&'a mut (dyn FnMut(Application) + Send));

impl<'de> DeserializeSeed<'de> for ItemsSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        // `"items": null` is an empty list, as Argo CD sends it.
        d.deserialize_option(self)
    }
}

impl<'de> Visitor<'de> for ItemsSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of applications")
    }
    fn visit_none<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(app) = seq.next_element::<Application>()? {
            (self.0)(app);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(body: &str) -> Result<Vec<String>, serde_json::Error> {
        let mut out = Vec::new();
        for_each_item(body.as_bytes(), &mut |a: Application| {
            out.push(a.metadata.name)
        })?;
        Ok(out)
    }

    #[test]
    fn hands_over_every_item_in_order_and_skips_the_rest() {
        let body = r#"{"metadata":{"resourceVersion":"7"},"items":[
            {"metadata":{"name":"a"},"status":{"sync":{"status":"Synced"}}},
            {"metadata":{"name":"b"}}],"extra":{"x":[1,2]}}"#;
        assert_eq!(
            names(body).ok(),
            Some(vec!["a".to_string(), "b".to_string()])
        );
    }

    #[test]
    fn null_or_missing_items_are_empty_and_garbage_is_an_error() {
        assert_eq!(names(r#"{"items":null}"#).ok(), Some(vec![]));
        assert_eq!(names(r#"{"metadata":{}}"#).ok(), Some(vec![]));
        assert!(names(r#"{"items":[{"metadata":{"name":1}}]}"#).is_err());
        assert!(names(r#"{"items":[]} trailing"#).is_err());
    }
}
