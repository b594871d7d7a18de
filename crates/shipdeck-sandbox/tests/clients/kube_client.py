"""The official Python Kubernetes client against the sandbox, in its usual (non-lazy) mode.

Run by crates/shipdeck-sandbox/tests/k8s_fidelity.rs as `python kube_client.py SCENARIO ARGS...`
with KUBECONFIG set. Each scenario prints one JSON object of what the client saw; the Rust
test asserts on it. Errors the client raises are reported, not hidden: an unexpected
exception fails the run with its traceback.
"""

import json
import os
import sys
import time

from kubernetes import client, config, dynamic
from kubernetes.client.rest import ApiException


def api_error(e):
    try:
        body = json.loads(e.body)
    except Exception:  # the body is what the server sent; keep it as text
        body = e.body
    return {"status": e.status, "body": body}


def discovery():
    api = client.ApiClient()
    dyn = dynamic.DynamicClient(api)
    found = {}
    for gv, kind in [
        ("apps/v1", "StatefulSet"),
        ("apps/v1", "DaemonSet"),
        ("batch/v1", "Job"),
        ("events.k8s.io/v1", "Event"),
        ("v1", "Pod"),
    ]:
        r = dyn.resources.get(api_version=gv, kind=kind)
        found[f"{gv}/{kind}"] = r.name
    groups = [g.name for g in client.ApisApi().get_api_versions().groups]
    version = client.VersionApi().get_code().git_version
    sts = dyn.resources.get(api_version="apps/v1", kind="StatefulSet")
    listed = sts.get()  # a real list call through the discovered resource
    return {"found": found, "groups": groups, "version": version, "sts_kind": listed.kind}


def paging(ns, kind="configmaps"):
    v1 = client.CoreV1Api()
    lister = v1.list_namespaced_pod if kind == "pods" else v1.list_namespaced_config_map
    pages = []
    token = None
    while True:
        r = lister(ns, limit=2, _continue=token)
        pages.append(
            {
                "names": [i.metadata.name for i in r.items],
                "remaining": r.metadata.remaining_item_count,
                "continue": r.metadata._continue,
                "rv": r.metadata.resource_version,
            }
        )
        token = r.metadata._continue
        if not token:
            break
    return {"pages": pages}


def expired(ns, token):
    v1 = client.CoreV1Api()
    try:
        v1.list_namespaced_config_map(ns, limit=2, _continue=token)
        return {"error": None}
    except ApiException as e:
        err = api_error(e)
    rest = []
    again = err["body"].get("metadata", {}).get("continue") if isinstance(err["body"], dict) else None
    while again:
        r = v1.list_namespaced_config_map(ns, limit=2, _continue=again)
        rest += [i.metadata.name for i in r.items]
        again = r.metadata._continue
    return {"error": err, "rest": rest}


def pod_template(app, image):
    return {
        "metadata": {"labels": {"app": app}},
        "spec": {"containers": [{"name": app, "image": image}]},
    }


def workloads(ns):
    core = client.CoreV1Api()
    apps = client.AppsV1Api()
    batch = client.BatchV1Api()
    events = client.EventsV1Api()
    apps.create_namespaced_stateful_set(
        ns,
        {
            "apiVersion": "apps/v1",
            "kind": "StatefulSet",
            "metadata": {"name": "kafka"},
            "spec": {
                "replicas": 3,
                "serviceName": "kafka",
                "selector": {"matchLabels": {"app": "kafka"}},
                "template": pod_template("kafka", "bitnami/kafka:3.7"),
            },
        },
    )
    apps.create_namespaced_daemon_set(
        ns,
        {
            "apiVersion": "apps/v1",
            "kind": "DaemonSet",
            "metadata": {"name": "node-agent"},
            "spec": {
                "selector": {"matchLabels": {"app": "node-agent"}},
                "template": pod_template("node-agent", "fluent/fluent-bit:3.0"),
            },
        },
    )
    batch.create_namespaced_job(
        ns,
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "migrate"},
            "spec": {
                "completions": 1,
                "template": {
                    "metadata": {"labels": {"app": "migrate"}},
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "migrate", "image": "flyway/flyway:10"}],
                    },
                },
            },
        },
    )
    deadline = time.time() + 60
    while True:
        sts = apps.read_namespaced_stateful_set("kafka", ns)
        ds = apps.read_namespaced_daemon_set("node-agent", ns)
        job = batch.read_namespaced_job("migrate", ns)
        settled = (
            (sts.status.ready_replicas or 0) == 3
            and (ds.status.number_ready or 0) == 3
            and (job.status.succeeded or 0) == 1
        )
        if settled or time.time() > deadline:
            break
        time.sleep(0.1)
    all_sts = apps.list_stateful_set_for_all_namespaces()
    all_ds = apps.list_daemon_set_for_all_namespaces()
    all_jobs = batch.list_job_for_all_namespaces()
    pods = core.list_namespaced_pod(ns)
    # events.k8s.io/v1: list every Event (the models require eventTime), then write one and
    # read it back through the core API: one stored object, two versions.
    all_events = events.list_event_for_all_namespaces(limit=50)
    events.create_namespaced_event(
        ns,
        {
            "apiVersion": "events.k8s.io/v1",
            "kind": "Event",
            "metadata": {"name": "kafka.rebalance"},
            "eventTime": "2026-01-01T00:00:00.000000Z",
            "reportingController": "example.com/kafka-operator",
            "reportingInstance": "kafka-operator-0",
            "action": "Rebalance",
            "reason": "Rebalanced",
            "note": "partitions moved",
            "type": "Normal",
            "regarding": {"kind": "StatefulSet", "name": "kafka", "namespace": ns, "apiVersion": "apps/v1"},
        },
    )
    core_ev = core.read_namespaced_event("kafka.rebalance", ns)
    v1_ev = events.read_namespaced_event("kafka.rebalance", ns)
    selected = events.list_namespaced_event(ns, field_selector="regarding.name=kafka,reason=Rebalanced")
    core_selected = core.list_namespaced_event(ns, field_selector="involvedObject.name=kafka")
    return {
        "sts": {
            "replicas": sts.status.replicas,
            "ready": sts.status.ready_replicas,
            "current": sts.status.current_replicas,
            "updated": sts.status.updated_replicas,
            "current_revision": sts.status.current_revision,
            "update_revision": sts.status.update_revision,
        },
        "ds": {"desired": ds.status.desired_number_scheduled, "ready": ds.status.number_ready},
        "job": {
            "succeeded": job.status.succeeded,
            "conditions": [c.type for c in (job.status.conditions or [])],
        },
        "all_sts": [f"{s.metadata.namespace}/{s.metadata.name}" for s in all_sts.items],
        "all_ds": [f"{s.metadata.namespace}/{s.metadata.name}" for s in all_ds.items],
        "all_jobs": [f"{s.metadata.namespace}/{s.metadata.name}" for s in all_jobs.items],
        "pods": sorted(p.metadata.name for p in pods.items),
        "events_listed": len(all_events.items),
        "core_event": {"message": core_ev.message, "involved": core_ev.involved_object.name},
        "v1_event": {"note": v1_ev.note, "regarding": v1_ev.regarding.name},
        "v1_selected": [e.metadata.name for e in selected.items],
        "core_selected": [e.metadata.name for e in core_selected.items],
    }


def rollout(ns):
    """Change the StatefulSet's image, wait for the rollout, watch the StatefulSet through
    the client's watch helper, then delete it."""
    from kubernetes import watch

    apps = client.AppsV1Api()
    before = apps.read_namespaced_stateful_set("kafka", ns).status.update_revision
    apps.patch_namespaced_stateful_set(
        "kafka",
        ns,
        {"spec": {"template": {"spec": {"containers": [{"name": "kafka", "image": "bitnami/kafka:3.8"}]}}}},
    )
    w = watch.Watch()
    seen = []
    done = None
    for ev in w.stream(apps.list_namespaced_stateful_set, ns, timeout_seconds=60):
        st = ev["object"].status
        seen.append(ev["type"])
        if (
            st.update_revision != before
            and (st.updated_replicas or 0) == 3
            and (st.ready_replicas or 0) == 3
            and st.current_revision == st.update_revision
        ):
            done = {
                "update_revision": st.update_revision,
                "current_revision": st.current_revision,
                "updated": st.updated_replicas,
                "ready": st.ready_replicas,
            }
            w.stop()
    images = {
        p.metadata.name: p.spec.containers[0].image
        for p in client.CoreV1Api().list_namespaced_pod(ns, label_selector="app=kafka").items
    }
    return {"before": before, "done": done, "events": seen, "images": images}


def delete_sts(ns):
    apps = client.AppsV1Api()
    apps.delete_namespaced_stateful_set("kafka", ns)
    deadline = time.time() + 30
    while time.time() < deadline:
        left = client.CoreV1Api().list_namespaced_pod(ns, label_selector="app=kafka").items
        if not left:
            break
        time.sleep(0.05)
    try:
        apps.read_namespaced_stateful_set("kafka", ns)
        gone = None
    except ApiException as e:
        gone = e.status
    return {"pods_left": len(left), "read_after_delete": gone}


def delete_configmap(ns, name):
    st = client.CoreV1Api().delete_namespaced_config_map(name, ns)
    return {"kind": st.kind, "status": st.status, "name": st.details.name, "kind_detail": st.details.kind}


def field_selector(ns):
    v1 = client.CoreV1Api()
    out = {}
    try:
        v1.list_namespaced_pod(ns, field_selector="spec.bogus=x")
        out["bogus"] = None
    except ApiException as e:
        out["bogus"] = api_error(e)
    out["supported"] = len(v1.list_namespaced_pod(ns, field_selector="status.phase=Running").items)
    try:
        client.AppsV1Api().list_namespaced_stateful_set(ns, field_selector="spec.replicas=3")
        out["sts_bogus"] = None
    except ApiException as e:
        out["sts_bogus"] = api_error(e)
    return out


def invalid_names(ns):
    v1 = client.CoreV1Api()
    out = {}
    for key, name in [("underscore", "Bad_Name"), ("escape", "bad\x1b[31mname")]:
        try:
            v1.create_namespaced_config_map(ns, {"metadata": {"name": name}, "data": {"k": "v"}})
            out[key] = None
        except ApiException as e:
            out[key] = api_error(e)
    try:
        client.AppsV1Api().create_namespaced_stateful_set(
            ns,
            {"metadata": {"name": "Kafka"}, "spec": {"selector": {"matchLabels": {"a": "b"}},
                                                    "template": pod_template("a", "b")}},
        )
        out["sts"] = None
    except ApiException as e:
        out["sts"] = api_error(e)
    return out


def main():
    config.load_kube_config(config_file=os.environ["KUBECONFIG"], context="in-cluster")
    scenario, args = sys.argv[1], sys.argv[2:]
    if scenario != "discovery":
        try:
            client.CoreV1Api().create_namespace({"metadata": {"name": args[0]}})
        except ApiException as e:
            if e.status != 409:
                raise
    result = globals()[scenario](*args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
