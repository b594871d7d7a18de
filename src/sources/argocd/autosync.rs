//! Turning auto-sync on or off over Argo CD's API: the Application's own `toggle-auto-sync`
//! resource action where the server offers it (Argo CD 3.5 and later; RBAC
//! `applications, action/argoproj.io/Application/toggle-auto-sync`), else a merge PATCH of
//! `spec.syncPolicy` (RBAC `applications, update`).
//!
//! The action is a toggle, not a setter: shipdeck runs it only when the app is not already
//! as asked, re-reads the app afterwards and fails closed when it did not end as asked
//! (someone else toggled it in between). The action changes only
//! `spec.syncPolicy.automated.enabled`; since when auto-sync is off is then recorded with a
//! separate annotation patch, best effort (it needs `update`, which the action does not).

use super::{ArgoApi, enc};
use crate::model::Application;
use crate::sources::SourceError;
use reqwest::Method;
use serde::Deserialize;
use serde_json::json;

/// The action's name and the RBAC action that runs it.
pub const TOGGLE_AUTO_SYNC: &str = "toggle-auto-sync";
pub const TOGGLE_AUTO_SYNC_RBAC: &str = "action/argoproj.io/Application/toggle-auto-sync";

/// How this server changes an app's auto-sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// The `toggle-auto-sync` resource action.
    Action,
    /// PATCH of `spec.syncPolicy`.
    Patch,
}

impl Route {
    pub fn rbac(self) -> &'static str {
        match self {
            Route::Action => TOGGLE_AUTO_SYNC_RBAC,
            Route::Patch => "update",
        }
    }
}

#[derive(Debug, Deserialize)]
struct ActionList {
    #[serde(default)]
    actions: Vec<Offered>,
}

#[derive(Debug, Deserialize)]
struct Offered {
    #[serde(default)]
    name: String,
    #[serde(default)]
    disabled: bool,
}

impl ArgoApi {
    /// The query naming the Application itself as the resource (what Argo CD's UI sends).
    fn app_resource_query(&self, app: &Application) -> String {
        let project = if app.spec.project.is_empty() {
            "default"
        } else {
            &app.spec.project
        };
        format!(
            "?namespace={ns}&resourceName={name}&version=v1alpha1&group=argoproj.io&kind=Application&appNamespace={ns}&project={project}",
            ns = enc(self.inner.app_ns(app)),
            name = enc(&app.metadata.name),
            project = enc(project),
        )
    }

    /// Which route this server takes for `app`: the action when the server lists it (and
    /// does not mark it disabled), else PATCH. A server that cannot list actions (older,
    /// or not Argo CD) gets the PATCH.
    pub async fn auto_sync_route(&self, app: &Application) -> Route {
        let path = format!(
            "/api/v1/applications/{}/resource/actions{}",
            enc(&app.metadata.name),
            self.app_resource_query(app)
        );
        let what = format!("resource actions of {}", app.metadata.name);
        match self
            .inner
            .send::<ActionList>(self.inner.request(Method::GET, &path), &what)
            .await
        {
            Ok(list)
                if list
                    .actions
                    .iter()
                    .any(|a| a.name == TOGGLE_AUTO_SYNC && !a.disabled) =>
            {
                Route::Action
            }
            Ok(_) => Route::Patch,
            Err(e) => {
                tracing::info!("{what}: {e}; changing auto-sync with a patch");
                Route::Patch
            }
        }
    }

    /// Run `toggle-auto-sync` so that auto-sync ends `enabled`, and return the app as it
    /// is afterwards.
    pub(super) async fn toggle_auto_sync(
        &self,
        app: &Application,
        enabled: bool,
    ) -> Result<Application, SourceError> {
        let name = &app.metadata.name;
        let current = self.inner.get_app(app).await?;
        if current.auto_sync() == enabled {
            // Running the toggle now would flip it the wrong way.
            return Ok(current);
        }
        let project = if current.spec.project.is_empty() {
            "default"
        } else {
            &current.spec.project
        };
        let body = json!({
            "name": name,
            "namespace": self.inner.app_ns(&current),
            "resourceName": name,
            "version": "v1alpha1",
            "group": "argoproj.io",
            "kind": "Application",
            "action": TOGGLE_AUTO_SYNC,
            "appNamespace": self.inner.app_ns(&current),
            "project": project,
        });
        let path = format!("/api/v1/applications/{}/resource/actions/v2", enc(name));
        let what = format!("run {TOGGLE_AUTO_SYNC} on {name}");
        self.inner
            .send_raw(self.inner.request(Method::POST, &path).json(&body), &what)
            .await?;
        let after = self.inner.get_app(&current).await?;
        if after.auto_sync() != enabled {
            return Err(SourceError::Refused(format!(
                "{TOGGLE_AUTO_SYNC} ran on {name} but auto-sync is {} now (it changed under shipdeck); look at the app and try again",
                if after.auto_sync() { "on" } else { "off" }
            )));
        }
        Ok(self.mark_since(after, enabled).await)
    }

    /// Record (or clear) since when auto-sync is off, best effort: the action itself does
    /// not need `update`, so a refusal here leaves the app as the action left it.
    async fn mark_since(&self, app: Application, enabled: bool) -> Application {
        let since = crate::sources::kube::AUTO_SYNC_OFF_SINCE;
        let has = app.metadata.annotations.contains_key(since);
        if enabled && !has {
            return app;
        }
        let value = if enabled {
            serde_json::Value::Null
        } else {
            json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        };
        let patch = json!({"metadata": {"annotations": {since: value}}});
        let body = json!({
            "name": app.metadata.name,
            "appNamespace": self.inner.app_ns(&app),
            "patch": patch.to_string(),
            "patchType": "merge",
        });
        let path = format!("/api/v1/applications/{}", enc(&app.metadata.name));
        let what = format!("mark since when auto-sync of {} is off", app.metadata.name);
        match self
            .inner
            .send::<Application>(self.inner.request(Method::PATCH, &path).json(&body), &what)
            .await
        {
            Ok(marked) => marked,
            Err(e) => {
                tracing::warn!("{what}: {e}");
                app
            }
        }
    }
}
