//! AppProjects over the API server (`GET`/`PUT /api/v1/projects/{name}`), whole as JSON so a
//! project written back loses no field shipdeck does not model. A write is sent once; a 409
//! (someone else changed the project) comes back as [`SourceError::Conflict`].

use super::{ArgoApi, enc};
use crate::sources::SourceError;
use reqwest::Method;
use serde_json::{Value, json};

impl ArgoApi {
    /// The AppProject `name`, as the server answers it.
    pub async fn get_project(&self, name: &str) -> Result<Value, SourceError> {
        let path = format!("/api/v1/projects/{}", enc(name));
        self.inner
            .send(
                self.inner.request(Method::GET, &path),
                &format!("project {name}"),
            )
            .await
    }

    /// Replace the AppProject (its `metadata.resourceVersion` must be the one read).
    pub async fn put_project(&self, project: &Value) -> Result<Value, SourceError> {
        let name = project["metadata"]["name"].as_str().unwrap_or_default();
        let path = format!("/api/v1/projects/{}", enc(name));
        let rb = self
            .inner
            .request(Method::PUT, &path)
            .json(&json!({"project": project}));
        self.inner.send(rb, &format!("update project {name}")).await
    }
}

impl ArgoApi {
    /// A JSON merge patch of the Application (`PATCH /api/v1/applications/{name}`, as
    /// `argocd app patch --type merge` sends it). Sent once.
    pub async fn patch_application(
        &self,
        app: &crate::model::Application,
        patch: &Value,
    ) -> Result<(), SourceError> {
        let path = self.inner.app_path(app, "");
        let rb = self
            .inner
            .request(Method::PATCH, &path)
            .json(&json!({"patch": patch.to_string(), "patchType": "merge"}));
        self.inner
            .send_raw(rb, &format!("patch application {}", app.metadata.name))
            .await
            .map(|_| ())
    }
}
