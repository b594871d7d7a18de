//! The sandbox's Argo CD API decodes request bodies as Argo CD does (grpc-gateway over Go's
//! `encoding/json`, typed by the swagger definitions): wrong JSON types answer 400 with
//! `{"error", "code": 3, "message"}` and Go's error text, and start nothing; unknown fields
//! are ignored. Application names must be DNS-1123 at create. Over raw HTTP (reqwest); the
//! oracle for "nothing started" is the Application as the Kubernetes API serves it.

use serde_json::{Value, json};
use shipdeck_sandbox::auth::Role;
use shipdeck_sandbox::{Sandbox, SandboxOptions};

async fn start() -> Sandbox {
    let _ = rustls::crypto::ring::default_provider().install_default();
    Sandbox::start(SandboxOptions {
        time_scale: 0.02,
        ..Default::default()
    })
    .await
    .expect("sandbox starts")
}

fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

async fn call(
    sb: &Sandbox,
    method: reqwest::Method,
    path: &str,
    body: Option<&str>,
) -> (u16, Value) {
    let mut req = http()
        .request(method, format!("{}{path}", sb.url))
        .bearer_auth(sb.world.users.token(Role::Admin));
    if let Some(b) = body {
        req = req
            .header("content-type", "application/json")
            .body(b.to_string());
    }
    let r = req.send().await.expect("request is answered");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap_or_default();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// The Application as the Kubernetes API stores it (independent of the Argo CD routes).
async fn stored_app(sb: &Sandbox, name: &str) -> (u16, Value) {
    call(
        sb,
        reqwest::Method::GET,
        &format!("/apis/argoproj.io/v1alpha1/namespaces/argocd/applications/{name}"),
        None,
    )
    .await
}

/// An app an admin may sync by hand right now: no automated sync, no operation running,
/// and no sync window closing it.
async fn manual_app(sb: &Sandbox) -> String {
    let (_, list) = call(sb, reqwest::Method::GET, "/api/v1/applications", None).await;
    for app in list["items"].as_array().expect("apps listed") {
        let name = app["metadata"]["name"].as_str().unwrap_or("");
        if !app["spec"]["syncPolicy"]["automated"].is_null() || !app["operation"].is_null() {
            continue;
        }
        let (_, w) = call(
            sb,
            reqwest::Method::GET,
            &format!("/api/v1/applications/{name}/syncwindows"),
            None,
        )
        .await;
        if w["canSync"] == true {
            return name.to_string();
        }
    }
    panic!("the default estate has no manually synced app open to sync");
}

fn assert_invalid(status: u16, body: &Value, message: &str) {
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], 3, "{body}");
    assert_eq!(body["message"], message, "{body}");
    assert_eq!(body["error"], message, "{body}");
}

#[tokio::test]
async fn sync_refuses_type_invalid_bodies_and_starts_nothing() {
    let sb = start().await;
    let name = manual_app(&sb).await;
    let path = format!("/api/v1/applications/{name}/sync");
    let cases = [
        (
            "[]",
            "json: cannot unmarshal array into Go value of type application.ApplicationSyncRequest",
        ),
        (
            r#"{"prune":"yes"}"#,
            "json: cannot unmarshal string into Go struct field ApplicationSyncRequest.prune of type bool",
        ),
        (
            r#"{"dryRun":"no"}"#,
            "json: cannot unmarshal string into Go struct field ApplicationSyncRequest.dryRun of type bool",
        ),
        (
            r#"{"revision":123}"#,
            "json: cannot unmarshal number into Go struct field ApplicationSyncRequest.revision of type string",
        ),
        (
            r#"{"strategy":{"apply":{"force":"true"}}}"#,
            "json: cannot unmarshal string into Go struct field SyncStrategyApply.strategy.apply.force of type bool",
        ),
        (
            r#"{"resources":[{"kind":7}]}"#,
            "json: cannot unmarshal number into Go struct field SyncOperationResource.resources.kind of type string",
        ),
        (
            r#"{"syncOptions":{"items":"Prune=false"}}"#,
            "json: cannot unmarshal string into Go struct field SyncOptions.syncOptions.items of type []string",
        ),
    ];
    for (body, message) in cases {
        let (status, resp) = call(&sb, reqwest::Method::POST, &path, Some(body)).await;
        assert_invalid(status, &resp, message);
        let (_, app) = stored_app(&sb, &name).await;
        assert!(app["operation"].is_null(), "{body} started a sync: {app}");
    }
    // Unknown fields are ignored, as grpc-gateway's decoder does; keys match by case too.
    let (status, resp) = call(
        &sb,
        reqwest::Method::POST,
        &path,
        Some(r#"{"Prune":false,"dryRun":true,"notAField":{"x":1}}"#),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    let (_, app) = stored_app(&sb, &name).await;
    let op = &app["operation"]["sync"];
    // The operation may already be done; then it is in operationState.
    let op = if op.is_null() {
        &app["status"]["operationState"]["operation"]["sync"]
    } else {
        op
    };
    assert_eq!(op["dryRun"], true, "{app}");
    assert_eq!(op["prune"], false, "{app}");
}

#[tokio::test]
async fn other_write_routes_decode_strictly_too() {
    let sb = start().await;
    let name = manual_app(&sb).await;
    let (status, resp) = call(
        &sb,
        reqwest::Method::POST,
        &format!("/api/v1/applications/{name}/rollback"),
        Some(r#"{"id":"1"}"#),
    )
    .await;
    assert_invalid(
        status,
        &resp,
        "json: cannot unmarshal string into Go struct field ApplicationRollbackRequest.id of type int64",
    );
    let (status, resp) = call(
        &sb,
        reqwest::Method::POST,
        &format!("/api/v1/applications/{name}/rollback"),
        Some(r#"{"id":1,"dryRun":"false"}"#),
    )
    .await;
    assert_invalid(
        status,
        &resp,
        "json: cannot unmarshal string into Go struct field ApplicationRollbackRequest.dryRun of type bool",
    );
    let (status, resp) = call(
        &sb,
        reqwest::Method::PATCH,
        &format!("/api/v1/applications/{name}"),
        Some(r#"{"patch":{"spec":{}},"patchType":"merge"}"#),
    )
    .await;
    assert_invalid(
        status,
        &resp,
        "json: cannot unmarshal object into Go struct field ApplicationPatchRequest.patch of type string",
    );
    let (status, resp) = call(
        &sb,
        reqwest::Method::POST,
        "/api/v1/session",
        Some(r#"{"username":1,"password":"x"}"#),
    )
    .await;
    assert_invalid(
        status,
        &resp,
        "json: cannot unmarshal number into Go struct field SessionCreateRequest.username of type string",
    );
    let (status, resp) = call(
        &sb,
        reqwest::Method::POST,
        "/api/v1/applications",
        Some(r#"{"metadata":{"name":"typed"},"spec":{"project":5}}"#),
    )
    .await;
    assert_invalid(
        status,
        &resp,
        "json: cannot unmarshal number into Go struct field ApplicationSpec.spec.project of type string",
    );
    let (_, app) = stored_app(&sb, &name).await;
    assert!(app["operation"].is_null(), "{app}");
}

#[tokio::test]
async fn create_validates_the_name_and_honours_upsert() {
    let sb = start().await;
    let template = manual_app(&sb).await;
    let (_, existing) = stored_app(&sb, &template).await;
    let mut spec = existing["spec"].clone();
    spec["syncPolicy"] = Value::Null;
    let app = |name: &str, spec: &Value| {
        json!({"apiVersion": "argoproj.io/v1alpha1", "kind": "Application",
               "metadata": {"name": name}, "spec": spec})
        .to_string()
    };

    // A name with an escape sequence: Argo CD passes the Kubernetes API's 422 on.
    let (status, resp) = call(
        &sb,
        reqwest::Method::POST,
        "/api/v1/applications",
        Some(&app("bad\u{1b}[31mname", &spec)),
    )
    .await;
    assert_eq!(status, 400, "{resp}");
    assert_eq!(resp["code"], 3);
    let m = resp["message"].as_str().unwrap();
    assert_eq!(
        m,
        "error creating application: Application.argoproj.io \"bad\\x1b[31mname\" is invalid: metadata.name: Invalid value: \"bad\\x1b[31mname\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    );
    let (status, _) = call(
        &sb,
        reqwest::Method::POST,
        "/api/v1/applications",
        Some(&app("Upper", &spec)),
    )
    .await;
    assert_eq!(status, 400);
    let (_, list) = call(
        &sb,
        reqwest::Method::GET,
        "/apis/argoproj.io/v1alpha1/namespaces/argocd/applications",
        None,
    )
    .await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["metadata"]["name"].as_str())
        .collect();
    assert!(
        !names.iter().any(|n| n.contains('\u{1b}') || *n == "Upper"),
        "{names:?}"
    );

    // A valid one is stored, as the Kubernetes API shows.
    let (status, resp) = call(
        &sb,
        reqwest::Method::POST,
        "/api/v1/applications",
        Some(&app("fidelity-web", &spec)),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    let (status, stored) = stored_app(&sb, "fidelity-web").await;
    assert_eq!(status, 200);
    assert_eq!(stored["spec"]["project"], spec["project"]);

    // Same name, other spec: refused without upsert, replaced with it.
    let mut other = spec.clone();
    other["destination"]["namespace"] = json!("elsewhere");
    let (status, resp) = call(
        &sb,
        reqwest::Method::POST,
        "/api/v1/applications",
        Some(&app("fidelity-web", &other)),
    )
    .await;
    assert_invalid(
        status,
        &resp,
        "existing application spec is different, use upsert flag to force update",
    );
    let (status, resp) = call(
        &sb,
        reqwest::Method::POST,
        "/api/v1/applications?upsert=true",
        Some(&app("fidelity-web", &other)),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    let (_, stored) = stored_app(&sb, "fidelity-web").await;
    assert_eq!(stored["spec"]["destination"]["namespace"], "elsewhere");

    // Update (PUT) decodes strictly and writes the spec.
    let (status, resp) = call(
        &sb,
        reqwest::Method::PUT,
        "/api/v1/applications/fidelity-web",
        Some(r#"{"metadata":{"name":"fidelity-web","labels":{"team":3}}}"#),
    )
    .await;
    assert_invalid(
        status,
        &resp,
        "json: cannot unmarshal number into Go struct field ObjectMeta.metadata.labels of type string",
    );
    let (status, resp) = call(
        &sb,
        reqwest::Method::PUT,
        "/api/v1/applications/fidelity-web",
        Some(&app("fidelity-web", &spec)),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    let (_, stored) = stored_app(&sb, "fidelity-web").await;
    assert_eq!(stored["spec"]["destination"], spec["destination"]);
}
