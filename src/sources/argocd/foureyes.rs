//! What four-eyes approvals need from the Argo CD API server: who the token belongs to as
//! the server says (`GET /api/v1/session/userinfo`) and a merge patch of one annotation on
//! the Application (`PATCH /api/v1/applications/{name}`, `patchType: merge`).

use super::{ArgoApi, enc};
use crate::model::Application;
use crate::sources::SourceError;
use reqwest::Method;
use serde_json::json;

impl ArgoApi {
    /// The account name Argo CD reports for this token; refused when the server says the
    /// session is not logged in or names nobody (the caller then fails closed).
    pub(crate) async fn server_identity(&self) -> Result<String, SourceError> {
        match self.account().await? {
            Some(name) => Ok(name),
            None => Err(SourceError::Refused(format!(
                "{} does not say who you are (session/userinfo: not logged in); log in again",
                self.inner.base
            ))),
        }
    }

    pub(crate) async fn patch_annotation(
        &self,
        app: &Application,
        key: &str,
        value: Option<&str>,
    ) -> Result<Application, SourceError> {
        let body = json!({
            "name": app.metadata.name,
            "appNamespace": self.inner.app_ns(app),
            "patch": crate::sources::annotation_patch(app, key, value).to_string(),
            "patchType": "merge",
        });
        let path = format!("/api/v1/applications/{}", enc(&app.metadata.name));
        let what = format!("annotate application {}", app.metadata.name);
        let rb = self.inner.request(Method::PATCH, &path).json(&body);
        self.inner.send::<Application>(rb, &what).await
    }
}
