//! What four-eyes approvals need from Kubernetes in core mode: who the kubeconfig's
//! credentials are as the API server says (`SelfSubjectReview`) and a merge patch of one
//! annotation on the Application, bound to the resourceVersion read.

use super::apps::{app_ns, apps_api, convert};
use super::{Inner, kube_err};
use crate::model::Application;
use crate::sources::SourceError;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};

pub(super) async fn identity(inner: &Inner) -> Result<String, SourceError> {
    let api: Api<SelfSubjectReview> = Api::all(inner.client.clone());
    let review = api
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .map_err(|e| kube_err(&inner.context, "self subject review (who am I)", e))?;
    review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| {
            SourceError::Refused(format!(
                "context {}: the API server's SelfSubjectReview names no user",
                inner.context
            ))
        })
}

pub(super) async fn annotate(
    inner: &Inner,
    app: &Application,
    key: &str,
    value: Option<&str>,
) -> Result<Application, SourceError> {
    let name = &app.metadata.name;
    let api = apps_api(inner, app_ns(inner, app));
    let patch = crate::sources::annotation_patch(app, key, value);
    let obj = api
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .map_err(|e| kube_err(&inner.context, &format!("annotate application {name}"), e))?;
    convert(inner, &obj)
}
