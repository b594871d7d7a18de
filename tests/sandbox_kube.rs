//! The sandbox's Kubernetes API over real HTTP with the real clients (kube-rs and reqwest):
//! CRUD and patches, watches with bookmarks, 410 relists, 409s, RBAC (401/403), selectors,
//! the Table format, size limits, faults, and a second cluster under `/clusters/C`.
//! Objects live in namespaces of their own, so estates seeded by the sandbox do not matter.

use futures::StreamExt;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use kube::runtime::{WatchStreamExt, watcher};
use serde_json::{Value, json};
use shipdeck::sandbox::auth::Role;
use std::time::Duration;

mod common;
use common::{DEADLINE, http, kube_client as client, sandbox as start, wait_true_within};

fn apps_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "argoproj.io",
        "v1alpha1",
        "Application",
    ))
}

fn app(name: &str, env: &str) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": name, "namespace": "kube-test", "labels": {"env": env}},
        "spec": {"project": "default", "destination": {"server": "https://kubernetes.default.svc", "namespace": "web"}},
        "status": {"sync": {"status": "OutOfSync"}, "health": {"status": "Healthy"}}
    }))
    .unwrap()
}

fn cm(name: &str, labels: Value) -> ConfigMap {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": labels},
        "data": {"k": "v"}
    }))
    .unwrap()
}

fn api_code(e: kube::Error) -> (u16, String, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone(), s.message.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crud_patch_conflicts_and_delete() {
    let sb = start().await;
    let c = client(&sb, "in-cluster").await;
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "kube-test");
    let pp = PostParams::default();
    let created = cms
        .create(&pp, &cm("one", json!({"tier": "web"})))
        .await
        .unwrap();
    let rv1 = created.metadata.resource_version.clone().unwrap();
    let (code, reason, _) = api_code(cms.create(&pp, &cm("one", json!({}))).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (409, "AlreadyExists"));

    let mut updated = created.clone();
    updated.data = Some([("k".to_string(), "v2".to_string())].into());
    let after = cms.replace("one", &pp, &updated).await.unwrap();
    assert_ne!(
        after.metadata.resource_version.as_deref(),
        Some(rv1.as_str())
    );
    // Same body again still names the old resourceVersion: stale.
    let (code, reason, _) = api_code(cms.replace("one", &pp, &updated).await.unwrap_err());
    assert_eq!((code, reason.as_str()), (409, "Conflict"));

    let patched = cms
        .patch(
            "one",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {"extra": "x"}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data.as_ref().unwrap()["extra"], "x");
    let jp: json_patch::Patch =
        serde_json::from_value(json!([{"op": "replace", "path": "/data/k", "value": "v3"}]))
            .unwrap();
    let patched = cms
        .patch("one", &PatchParams::default(), &Patch::<()>::Json(jp))
        .await
        .unwrap();
    assert_eq!(patched.data.as_ref().unwrap()["k"], "v3");

    let apps: Api<DynamicObject> = Api::namespaced_with(c.clone(), "kube-test", &apps_resource());
    apps.create(&pp, &app("web-dev", "dev")).await.unwrap();
    let got = apps.get("web-dev").await.unwrap();
    assert_eq!(got.data["status"]["health"]["status"], "Healthy");
    // Applications have no status subresource: a patch of status lands.
    let got = apps
        .patch(
            "web-dev",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"sync": {"status": "Synced"}}})),
        )
        .await
        .unwrap();
    assert_eq!(got.data["status"]["sync"]["status"], "Synced");

    cms.delete("one", &DeleteParams::default()).await.unwrap();
    let (code, reason, _) = api_code(cms.get("one").await.unwrap_err());
    assert_eq!((code, reason.as_str()), (404, "NotFound"));
    let all: Api<ConfigMap> = Api::all(c);
    assert!(
        all.list(&ListParams::default())
            .await
            .unwrap()
            .items
            .iter()
            .all(|c| c.metadata.name.as_deref() != Some("one"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectors_filter_lists() {
    let sb = start().await;
    let c = client(&sb, "in-cluster").await;
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "sel");
    let pp = PostParams::default();
    cms.create(&pp, &cm("a", json!({"tier": "web", "env": "prod"})))
        .await
        .unwrap();
    cms.create(&pp, &cm("b", json!({"tier": "db", "env": "prod"})))
        .await
        .unwrap();
    cms.create(&pp, &cm("c", json!({"tier": "web"})))
        .await
        .unwrap();
    let names = |l: kube::core::ObjectList<ConfigMap>| {
        let mut v: Vec<String> = l
            .items
            .into_iter()
            .filter_map(|c| c.metadata.name)
            .collect();
        v.sort();
        v
    };
    let q = |s: &str| ListParams::default().labels(s);
    assert_eq!(names(cms.list(&q("tier=web")).await.unwrap()), ["a", "c"]);
    assert_eq!(names(cms.list(&q("tier!=web")).await.unwrap()), ["b"]);
    assert_eq!(
        names(cms.list(&q("tier in (db,cache)")).await.unwrap()),
        ["b"]
    );
    assert_eq!(
        names(cms.list(&q("tier notin (db),env")).await.unwrap()),
        ["a"]
    );
    assert_eq!(names(cms.list(&q("!env")).await.unwrap()), ["c"]);
    let f = ListParams::default().fields("metadata.name=b");
    assert_eq!(names(cms.list(&f).await.unwrap()), ["b"]);
    let all: Api<ConfigMap> = Api::all(c);
    let f = ListParams::default().fields("metadata.namespace!=sel");
    assert!(
        names(all.list(&f).await.unwrap())
            .iter()
            .all(|n| !["a", "b", "c"].contains(&n.as_str()))
    );
    let list = all.list(&ListParams::default()).await.unwrap();
    assert!(
        list.metadata
            .resource_version
            .is_some_and(|rv| !rv.is_empty())
    );
    let bad = all
        .list(&ListParams::default().labels("tier in web"))
        .await
        .unwrap_err();
    assert_eq!(api_code(bad).0, 400);

    // A watch with a label selector sees an object leave it as DELETED.
    let token = sb.world.users.token(Role::Admin);
    let resp = http()
        .get(format!(
            "{}/api/v1/namespaces/sel/configmaps?watch=1&labelSelector=tier%3Dweb",
            sb.url
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    cms.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"labels": {"tier": "db"}}})),
    )
    .await
    .unwrap();
    let lines = read_lines_until(resp, |v| v["type"] == "DELETED").await;
    assert_eq!(lines.last().unwrap()["object"]["metadata"]["name"], "a");
    assert!(lines.iter().all(|l| l["object"]["metadata"]["name"] != "b"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_recovers_from_410_and_dropped_watches() {
    let sb = start().await;
    let c = client(&sb, "in-cluster").await;
    let cms: Api<ConfigMap> = Api::namespaced(c.clone(), "watch");
    let pp = PostParams::default();
    cms.create(&pp, &cm("before", json!({}))).await.unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let seen2 = seen.clone();
    let stream = watcher(cms.clone(), watcher::Config::default())
        .default_backoff()
        .applied_objects();
    let task = tokio::spawn(async move {
        let mut s = std::pin::pin!(stream);
        while let Some(item) = s.next().await {
            let Ok(o) = item else { continue };
            seen2
                .lock()
                .unwrap()
                .push(o.metadata.name.unwrap_or_default());
        }
    });
    let has = |n: &str| seen.lock().unwrap().iter().any(|x| x == n);
    wait_true_within("the watch sees \"before\"", DEADLINE, || has("before")).await;
    cms.create(&pp, &cm("live", json!({}))).await.unwrap();
    wait_true_within("the watch sees \"live\"", DEADLINE, || has("live")).await;

    // Expired versions and dropped streams: the watcher re-watches, gets 410, relists.
    sb.world.store.expire_history();
    sb.world.store.drop_watches();
    cms.create(&pp, &cm("after-410", json!({}))).await.unwrap();
    // kube-rs backs off exponentially (0.8 s doubling, reset only after 120 s quiet) on
    // every watch error, so on a loaded machine the relist may come late.
    wait_true_within(
        "the watch recovers from 410",
        Duration::from_secs(90),
        || has("after-410"),
    )
    .await;

    sb.world.store.drop_watches();
    cms.create(&pp, &cm("after-drop", json!({}))).await.unwrap();
    wait_true_within(
        "the watch recovers from a drop",
        Duration::from_secs(90),
        || has("after-drop"),
    )
    .await;
    task.abort();
}

/// Read a streaming response until `pred` holds for one of its lines.
async fn read_lines_until(
    resp: reqwest::Response,
    mut pred: impl FnMut(&Value) -> bool,
) -> Vec<Value> {
    let mut body = resp.bytes_stream();
    let mut buf = Vec::new();
    let mut lines = Vec::new();
    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        let chunk = tokio::time::timeout_at(end, body.next())
            .await
            .expect("stream line in time");
        let Some(chunk) = chunk else {
            panic!("stream ended early: {lines:?}")
        };
        buf.extend_from_slice(&chunk.unwrap());
        while let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            let v: Value = serde_json::from_slice(&line).unwrap();
            let done = pred(&v);
            lines.push(v);
            if done {
                return lines;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_watch_bookmarks_gone_and_tables() {
    let sb = start().await;
    let token = sb.world.users.token(Role::Admin);
    let h = http();
    let base = format!("{}/api/v1/namespaces/raw/configmaps", sb.url);
    let create = |name: &str| {
        h.post(&base)
            .bearer_auth(&token)
            .json(&json!({"metadata": {"name": name}, "data": {"a": "b"}}))
            .send()
    };
    assert_eq!(create("first").await.unwrap().status(), 201);
    let list: Value = h
        .get(&base)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rv = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_string();

    let resp = h
        .get(format!(
            "{base}?watch=true&resourceVersion={rv}&allowWatchBookmarks=true"
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let creator = tokio::spawn({
        let c = create("second");
        async move { c.await.unwrap().status() }
    });
    let (mut second, mut bookmark) = (false, false);
    let lines = read_lines_until(resp, |v| {
        second |= v["type"] == "ADDED" && v["object"]["metadata"]["name"] == "second";
        bookmark |= v["type"] == "BOOKMARK";
        second && bookmark
    })
    .await;
    assert_eq!(creator.await.unwrap(), 201);
    assert!(
        lines
            .iter()
            .any(|l| l["type"] == "BOOKMARK"
                && l["object"]["metadata"]["resourceVersion"].is_string())
    );

    // Too old a version: 200, then one ERROR event carrying a 410 Expired Status.
    sb.world.store.expire_history();
    let resp = h
        .get(format!("{base}?watch=1&resourceVersion={rv}"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    // The stream ends right after the ERROR event.
    let text = tokio::time::timeout(DEADLINE, resp.text())
        .await
        .expect("watch ends after ERROR")
        .unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1);
    let status = &lines.last().unwrap()["object"];
    assert_eq!(
        (status["code"].as_u64(), status["reason"].as_str()),
        (Some(410), Some("Expired"))
    );

    // Without a version a watch opens with ADDED for what exists.
    let resp = h
        .get(format!("{base}?watch=1"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    read_lines_until(resp, |v| {
        v["type"] == "ADDED" && v["object"]["metadata"]["name"] == "first"
    })
    .await;

    // Tables: Application printer columns, pod columns; watch events carry Tables too.
    let apps_url = format!(
        "{}/apis/argoproj.io/v1alpha1/namespaces/kube-test/applications",
        sb.url
    );
    let r = h
        .post(&apps_url)
        .bearer_auth(&token)
        .json(&app("tabled", "dev"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    let t: Value = h
        .get(format!("{}/apis/argoproj.io/v1alpha1/applications", sb.url))
        .header("Accept", accept)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(t["kind"], "Table");
    let cols: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(&cols[..3], ["Name", "Sync Status", "Health Status"]);
    let row = t["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["cells"][0] == "tabled")
        .expect("row of the app");
    assert_eq!(row["cells"][1], "OutOfSync");
    assert_eq!(row["object"]["kind"], "PartialObjectMetadata");
    let t: Value = h
        .get(format!("{}/api/v1/pods", sb.url))
        .header("Accept", accept)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cols: Vec<&str> = t["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(cols, ["Name", "Ready", "Status", "Restarts", "Age"]);
    let resp = h
        .get(format!("{apps_url}?watch=true"))
        .header("Accept", accept)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let lines = read_lines_until(resp, |v| v["type"] == "ADDED").await;
    assert_eq!(lines[0]["object"]["kind"], "Table");
    assert_eq!(lines[0]["object"]["rows"][0]["cells"][0], "tabled");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_401_403_and_access_reviews() {
    let sb = start().await;
    let h = http();
    let url = format!(
        "{}/apis/argoproj.io/v1alpha1/namespaces/kube-test/applications",
        sb.url
    );
    let r = h.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        (body["kind"].as_str(), body["reason"].as_str()),
        (Some("Status"), Some("Unauthorized"))
    );
    assert_eq!(
        h.get(&url)
            .bearer_auth("made-up")
            .send()
            .await
            .unwrap()
            .status(),
        401
    );

    let admin = client(&sb, "in-cluster").await;
    let pp = PostParams::default();
    let admin_apps: Api<DynamicObject> =
        Api::namespaced_with(admin.clone(), "kube-test", &apps_resource());
    admin_apps
        .create(&pp, &app("shop-dev", "dev"))
        .await
        .unwrap();
    admin_apps
        .create(&pp, &app("shop-prod", "prod"))
        .await
        .unwrap();

    let viewer = client(&sb, "viewer@in-cluster").await;
    let viewer_apps: Api<DynamicObject> =
        Api::namespaced_with(viewer, "kube-test", &apps_resource());
    assert_eq!(
        viewer_apps
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    let patch = Patch::Merge(json!({"metadata": {"annotations": {"x": "y"}}}));
    let (code, reason, message) = api_code(
        viewer_apps
            .patch("shop-dev", &PatchParams::default(), &patch)
            .await
            .unwrap_err(),
    );
    assert_eq!((code, reason.as_str()), (403, "Forbidden"));
    assert_eq!(
        message,
        "applications.argoproj.io \"shop-dev\" is forbidden: User \"viewer\" cannot patch resource \"applications\" in API group \"argoproj.io\" in the namespace \"kube-test\""
    );

    let deployer = client(&sb, "deployer@in-cluster").await;
    let deployer_apps: Api<DynamicObject> =
        Api::namespaced_with(deployer.clone(), "kube-test", &apps_resource());
    deployer_apps
        .patch("shop-dev", &PatchParams::default(), &patch)
        .await
        .unwrap();
    let (code, _, _) = api_code(
        deployer_apps
            .patch("shop-prod", &PatchParams::default(), &patch)
            .await
            .unwrap_err(),
    );
    assert_eq!(code, 403);
    let cms: Api<ConfigMap> = Api::namespaced(deployer, "kube-test");
    assert_eq!(
        api_code(cms.create(&pp, &cm("no", json!({}))).await.unwrap_err()).0,
        403
    );

    // Access reviews answer per user and object.
    let review = |name: &str| {
        json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectAccessReview",
        "spec": {"resourceAttributes": {"namespace": "kube-test", "verb": "patch", "group": "argoproj.io", "resource": "applications", "name": name}}})
    };
    let ssar = format!(
        "{}/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        sb.url
    );
    let ask = |role: Role, name: &str| {
        h.post(&ssar)
            .bearer_auth(sb.world.users.token(role))
            .json(&review(name))
            .send()
    };
    let allowed = |v: Value| v["status"]["allowed"].as_bool();
    assert_eq!(
        allowed(
            ask(Role::Deployer, "shop-dev")
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        ),
        Some(true)
    );
    assert_eq!(
        allowed(
            ask(Role::Deployer, "shop-prod")
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        ),
        Some(false)
    );
    assert_eq!(
        allowed(
            ask(Role::Viewer, "shop-dev")
                .await
                .unwrap()
                .json()
                .await
                .unwrap()
        ),
        Some(false)
    );

    // Expired tokens answer 401 until the client takes the new ones.
    sb.world.users.expire_all();
    let (code, _, _) = api_code(admin_apps.list(&ListParams::default()).await.unwrap_err());
    assert_eq!(code, 401);
    let fresh = sb.world.users.token(Role::Admin);
    assert_eq!(
        h.get(&url)
            .bearer_auth(fresh)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_limits_faults_and_second_cluster() {
    let sb = start().await;
    let h = http();
    let token = sb.world.users.token(Role::Admin);
    let base = format!("{}/api/v1/namespaces/lim/configmaps", sb.url);
    let r = h
        .post(&base)
        .bearer_auth(&token)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let big = json!({"metadata": {"name": "big"}, "data": {"x": "a".repeat(4 * 1024 * 1024)}});
    let r = h
        .post(&base)
        .bearer_auth(&token)
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 413);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["reason"], "RequestEntityTooLarge");
    let r = h
        .get(format!("{}/api/v1/widgets", sb.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = h
        .get(format!(
            "{}/apis/argoproj.io/v1alpha1/namespaces/x/applications/none",
            sb.url
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(r.json::<Value>().await.unwrap()["reason"], "NotFound");

    // Discovery lists what kubectl needs.
    let d: Value = h
        .get(format!("{}/apis/argoproj.io/v1alpha1", sb.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let apps = d["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "applications")
        .unwrap();
    assert_eq!(apps["kind"], "Application");
    assert!(
        apps["shortNames"]
            .as_array()
            .unwrap()
            .contains(&json!("app"))
    );
    let groups: Value = h
        .get(format!("{}/apis", sb.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = groups["groups"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert_eq!(
        names,
        [
            "apps",
            "events.k8s.io",
            "authorization.k8s.io",
            "authentication.k8s.io",
            "batch",
            "argoproj.io"
        ]
    );

    // Faults: forced conflicts, failing and clearing rules.
    let faults = format!("{}/_sandbox/faults", sb.url);
    assert_eq!(
        h.post(&faults)
            .json(&json!({"fault": "conflict", "count": 1}))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let mk = |name: &str| {
        h.post(&base)
            .bearer_auth(&token)
            .json(&json!({"metadata": {"name": name}}))
            .send()
    };
    assert_eq!(mk("c1").await.unwrap().status(), 409);
    assert_eq!(mk("c1").await.unwrap().status(), 201);
    let rule = json!({"fault": "fail", "path": "/namespaces/lim/", "status": 503, "count": 2});
    assert_eq!(
        h.post(&faults).json(&rule).send().await.unwrap().status(),
        200
    );
    assert_eq!(
        h.get(&base)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        503
    );
    assert_eq!(h.delete(&faults).send().await.unwrap().status(), 200);
    assert_eq!(
        h.get(&base)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        h.post(&faults)
            .json(&json!({"fault": "nonsense"}))
            .send()
            .await
            .unwrap()
            .status(),
        400
    );
    let health: Value = h
        .get(format!("{}/_sandbox/health", sb.url))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");

    // A second cluster under /clusters/C keeps its own objects.
    let mut cfg = kube::Config::new(format!("{}/clusters/east", sb.url).parse().unwrap());
    cfg.auth_info.token = Some(token.clone().into());
    let east = kube::Client::try_from(cfg).unwrap();
    let east_cms: Api<ConfigMap> = Api::namespaced(east, "lim");
    east_cms
        .create(&PostParams::default(), &cm("east-only", json!({})))
        .await
        .unwrap();
    assert!(east_cms.get("c1").await.is_err());
    let home: Value = h
        .get(&base)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        home["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|i| i["metadata"]["name"] != "east-only")
    );
    assert_eq!(
        sb.world
            .store
            .get(
                "east",
                shipdeck::sandbox::store::CONFIGMAPS,
                "lim",
                "east-only"
            )
            .map(|o| o["metadata"]["name"].clone()),
        Some(json!("east-only"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_files_are_private_and_complete() {
    use std::os::unix::fs::PermissionsExt;
    let sb = start().await;
    for f in [sb.kubeconfig_path(), sb.env_path()] {
        let mode = std::fs::metadata(&f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", f.display());
    }
    let env = std::fs::read_to_string(sb.env_path()).unwrap();
    for var in [
        "KUBECONFIG",
        "ARGOCD_SERVER",
        "ARGOCD_AUTH_TOKEN",
        "GITHUB_API_URL",
        "GITHUB_TOKEN",
        "JENKINS_URL",
        "JENKINS_USER",
        "JENKINS_TOKEN",
        "SHIPDECK_SANDBOX_REPO",
    ] {
        assert!(env.contains(&format!("export {var}=")), "{var}");
    }
    assert!(env.contains(&sb.world.users.token(Role::Admin)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_delay_and_token_faults_over_http() {
    let sb = start().await;
    let h = http();
    let token = sb.world.users.token(Role::Admin);
    let apps_url = format!(
        "{}/apis/argoproj.io/v1alpha1/namespaces/argocd/applications",
        sb.url
    );
    let mut target = serde_json::to_value(app("churn-target", "dev")).unwrap();
    target["metadata"]["namespace"] = json!("argocd");
    assert_eq!(
        h.post(&apps_url)
            .bearer_auth(&token)
            .json(&target)
            .send()
            .await
            .unwrap()
            .status(),
        201
    );

    let faults = format!("{}/_sandbox/faults", sb.url);
    let churn = json!({"fault": "churn", "per_second": 500, "seconds": 20});
    assert_eq!(
        h.post(&faults).json(&churn).send().await.unwrap().status(),
        200
    );
    let churned = || {
        sb.world
            .store
            .list(
                "in-cluster",
                shipdeck::sandbox::store::APPLICATIONS,
                Some("argocd"),
            )
            .0
            .iter()
            .any(|a| {
                a["metadata"]["annotations"]["sandbox.shipdeck.io/churn"].is_string()
                    && a["status"]["reconciledAt"].is_string()
            })
    };
    wait_true_within("churn reconciles an app", DEADLINE, churned).await;
    let state: Value = h.get(&faults).send().await.unwrap().json().await.unwrap();
    assert_eq!(state["churn"], true);
    assert_eq!(h.delete(&faults).send().await.unwrap().status(), 200);
    let state: Value = h.get(&faults).send().await.unwrap().json().await.unwrap();
    assert_eq!(state["churn"], false);
    assert!(
        h.post(&faults)
            .json(&json!({"fault": "churn", "per_second": 0, "seconds": 1}))
            .send()
            .await
            .unwrap()
            .status()
            .is_client_error()
    );

    // A delay rule holds requests but still serves them.
    let delay =
        json!({"fault": "delay", "path": "/namespaces/argocd/applications", "ms": 20, "count": 1});
    assert_eq!(
        h.post(&faults).json(&delay).send().await.unwrap().status(),
        200
    );
    let state: Value = h.get(&faults).send().await.unwrap().json().await.unwrap();
    assert_eq!(state["rules"][0]["fault"], "delay");
    assert_eq!(
        h.get(&apps_url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let state: Value = h.get(&faults).send().await.unwrap().json().await.unwrap();
    assert_eq!(state["rules"].as_array().map(Vec::len), Some(0));

    // Expired tokens over HTTP; the state files can be rewritten with the new ones.
    assert_eq!(
        h.post(&faults)
            .json(&json!({"fault": "expire-tokens"}))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        h.get(&apps_url)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    shipdeck::sandbox::files::write_state_files(&sb.world, &sb.state_dir).unwrap();
    let c = client(&sb, "in-cluster").await;
    let apps: Api<DynamicObject> = Api::namespaced_with(c, "argocd", &apps_resource());
    assert!(apps.get("churn-target").await.is_ok());
}
