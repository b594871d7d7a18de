//! AppProjects as custom resources in core mode: read and replace whole (kube-rs, JSON), so
//! a project written back loses no field shipdeck does not model. The replace carries the
//! resourceVersion read; a 409 comes back as [`SourceError::Conflict`].

use super::apps::project_resource;
use super::{CoreArgo, kube_err, read};
use crate::sources::SourceError;
use kube::api::{Api, DynamicObject, PostParams};
use serde_json::Value;

impl CoreArgo {
    fn projects(&self) -> Api<DynamicObject> {
        Api::namespaced_with(
            self.inner.client.clone(),
            &self.inner.namespace,
            &project_resource(),
        )
    }

    /// The AppProject `name` in Argo CD's namespace.
    pub async fn get_project(&self, name: &str) -> Result<Value, SourceError> {
        let api = self.projects();
        let obj = read(&self.inner.context, &format!("project {name}"), || {
            api.get(name)
        })
        .await?;
        serde_json::to_value(&obj).map_err(|e| SourceError::Protocol {
            server: self.inner.context.clone(),
            detail: format!("project {name}: {e}"),
        })
    }

    /// Replace the AppProject (its `metadata.resourceVersion` must be the one read).
    pub async fn put_project(&self, project: &Value) -> Result<Value, SourceError> {
        let name = project["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let what = format!("update project {name}");
        let obj: DynamicObject =
            serde_json::from_value(project.clone()).map_err(|e| SourceError::Protocol {
                server: self.inner.context.clone(),
                detail: format!("{what}: {e}"),
            })?;
        let done = self
            .projects()
            .replace(&name, &PostParams::default(), &obj)
            .await
            .map_err(|e| kube_err(&self.inner.context, &what, e))?;
        serde_json::to_value(&done).map_err(|e| SourceError::Protocol {
            server: self.inner.context.clone(),
            detail: format!("{what}: {e}"),
        })
    }
}

impl CoreArgo {
    /// A JSON merge patch of the Application custom resource (as `kubectl patch --type
    /// merge`). Sent once.
    pub async fn patch_application(
        &self,
        app: &crate::model::Application,
        patch: &Value,
    ) -> Result<(), SourceError> {
        let ns = super::apps::app_ns(&self.inner, app).to_string();
        let what = format!("patch application {}", app.metadata.name);
        super::apps::apps_api(&self.inner, &ns)
            .patch(
                &app.metadata.name,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(patch),
            )
            .await
            .map(|_| ())
            .map_err(|e| kube_err(&self.inner.context, &what, e))
    }
}
