//! Core mode's watch and list decode each Application straight from the API server's bytes
//! into the board's compact app: no `DynamicObject` (a `serde_json::Value` tree of the whole
//! object with its `managedFields`), no second conversion through `Value`, and what the
//! board never reads dropped as it decodes ([`crate::model::compact_for_board`]). The
//! watcher keeps no store of its own, so the estate holds the only copy.

use crate::model::{Application, compact_for_board};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::{ApiResource, DynamicResourceScope, Resource};
use serde::{Deserialize, Deserializer};
use std::borrow::Cow;

/// One Application as the watcher hands it over: the compact app and the little object
/// metadata a watch reads (name, namespace, resourceVersion, uid).
#[derive(Debug, Clone)]
pub(super) struct CompactApp {
    meta: ObjectMeta,
    pub app: Application,
}

impl<'de> Deserialize<'de> for CompactApp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // The wire type has no field for anything the product does not read, so
        // `managedFields` and other unknown keys are skipped by the parser, not built.
        // What `compact_for_board` drops is not even built (`decoding_for_board`).
        let mut app = shipdeck_wire::decoding_for_board(|| Application::deserialize(d))?;
        compact_for_board(&mut app);
        let m = &app.metadata;
        let meta = ObjectMeta {
            name: Some(m.name.clone()),
            namespace: (!m.namespace.is_empty()).then(|| m.namespace.clone()),
            resource_version: m.resource_version.clone(),
            uid: m.uid.clone(),
            ..Default::default()
        };
        Ok(Self { meta, app })
    }
}

impl Resource for CompactApp {
    type DynamicType = ApiResource;
    type Scope = DynamicResourceScope;

    fn kind(dt: &ApiResource) -> Cow<'_, str> {
        dt.kind.as_str().into()
    }
    fn group(dt: &ApiResource) -> Cow<'_, str> {
        dt.group.as_str().into()
    }
    fn version(dt: &ApiResource) -> Cow<'_, str> {
        dt.version.as_str().into()
    }
    fn api_version(dt: &ApiResource) -> Cow<'_, str> {
        dt.api_version.as_str().into()
    }
    fn plural(dt: &ApiResource) -> Cow<'_, str> {
        dt.plural.as_str().into()
    }
    fn meta(&self) -> &ObjectMeta {
        &self.meta
    }
    fn meta_mut(&mut self) -> &mut ObjectMeta {
        &mut self.meta
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_compact_app_and_the_watchers_metadata() {
        let c: CompactApp = serde_json::from_value(serde_json::json!({
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
            "metadata": {"name": "web", "namespace": "argocd", "resourceVersion": "42",
                         "uid": "u-1", "managedFields": [{"manager": "argocd-controller"}]},
            "spec": {"project": "default", "destination": {"namespace": "web"}},
            "status": {"sync": {"status": "OutOfSync", "comparedTo": {"source": {}}}}
        }))
        .expect("fixture parses");
        assert_eq!(c.meta.name.as_deref(), Some("web"));
        assert_eq!(c.meta.namespace.as_deref(), Some("argocd"));
        assert_eq!(c.meta.resource_version.as_deref(), Some("42"));
        assert_eq!(c.meta.managed_fields, None);
        assert_eq!(c.app.spec.project, "default");
        assert_eq!(c.app.status.sync.compared_to, None);
        assert_eq!(c.app.status.sync.status.to_string(), "OutOfSync");
    }
}
