"""Drive the sandbox's Jenkins API with python-jenkins as people script it, and print what the
client saw as one JSON object; jenkins_fidelity.rs checks it against Git and the sandbox's
state. Environment: JENKINS_URL, JENKINS_USER, JENKINS_TOKEN, JOB, TAG_KEEP, TAG_STOP."""

import json
import os
import sys
import time

import jenkins

DEADLINE = 60.0


def poll(what, f):
    end = time.monotonic() + DEADLINE
    while True:
        v = f()
        if v:
            return v
        if time.monotonic() > end:
            raise SystemExit(f"timed out: {what}")
        time.sleep(0.05)


def main():
    server = jenkins.Jenkins(
        os.environ["JENKINS_URL"],
        username=os.environ["JENKINS_USER"],
        password=os.environ["JENKINS_TOKEN"],
        timeout=10,
    )
    job = os.environ["JOB"]
    out = {}
    me = server.get_whoami()
    out["whoami"] = {"id": me["id"], "fullName": me["fullName"]}
    out["version"] = server.get_version()

    # Two builds: one to stop while it runs, one to let finish.
    stop_q = server.build_job(job, {"FRONTEND_DOCKER_TAG": os.environ["TAG_STOP"], "ENVIRONMENT": "dev"})
    keep_q = server.build_job(job, {"FRONTEND_DOCKER_TAG": os.environ["TAG_KEEP"], "ENVIRONMENT": "dev"})
    out["queued"] = [stop_q, keep_q]
    # Each waits in the quiet period first: the queue holds it until it leaves.
    out["queue"] = [
        {"id": i["id"], "task": i["task"]["name"], "why": i.get("why")}
        for i in poll("queue holds the items", lambda: [
            i for i in server.get_queue_info() if i["id"] in (stop_q, keep_q)
        ])
    ]

    def executable(q):
        return poll(f"queue item {q} starts", lambda: server.get_queue_item(q).get("executable"))

    stop_n = executable(stop_q)["number"]
    keep_n = executable(keep_q)["number"]
    out["numbers"] = [stop_n, keep_n]
    running = poll("both builds run", lambda: (lambda b: b if {(x["name"], x["number"]) for x in b} >= {(job, stop_n), (job, keep_n)} else None)(server.get_running_builds()))
    out["running"] = running
    # Stages appear as the build reaches them.
    out["stages_running"] = poll("a stage starts", lambda: (lambda d: d if d["stages"] else None)(server.get_build_stages(job, stop_n)))

    server.stop_build(job, stop_n)
    out["stopped"] = poll("stopped build ends", lambda: (lambda i: i if not i["building"] else None)(server.get_build_info(job, stop_n)))
    out["kept"] = poll("build ends", lambda: (lambda i: i if not i["building"] else None)(server.get_build_info(job, keep_n)))
    out["stages_stopped"] = server.get_build_stages(job, stop_n)
    out["stages_kept"] = server.get_build_stages(job, keep_n)
    out["running_after"] = server.get_running_builds()
    out["queue_after"] = [i["id"] for i in server.get_queue_info() if i["id"] in (stop_q, keep_q)]
    out["jobs"] = [j["name"] for j in server.get_jobs()]
    out["job_info"] = {k: server.get_job_info(job)[k] for k in ("name", "buildable", "nextBuildNumber")}
    out["console"] = server.get_build_console_output(job, keep_n)
    # A build cancelled while it waits in the queue never runs.
    cancel_q = server.build_job(job, {"ENVIRONMENT": "dev"})
    server.cancel_queue(cancel_q)
    out["cancelled_item"] = server.get_queue_item(cancel_q)
    try:
        server.get_build_info(job, 9999)
        out["missing_build"] = "found"
    except jenkins.JenkinsException as e:
        out["missing_build"] = type(e).__name__
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
