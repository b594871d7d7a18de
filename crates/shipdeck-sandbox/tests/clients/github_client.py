"""Drive the sandbox's GitHub API with PyGithub, in its usual (non-lazy) mode, and print what
the client saw as one JSON object. The Rust test (github_fidelity.rs) checks it against the
sandbox's own state and its Git repository. Environment: GH_API (base URL), GH_TOKEN,
GH_REPO (owner/name)."""

import io
import json
import os
import sys
import time
import urllib.request
import zipfile

import github
from github import Auth, Github

DEADLINE = 60.0


def wait_completed(repo, run_id):
    end = time.monotonic() + DEADLINE
    while True:
        run = repo.get_workflow_run(run_id)
        if run.status == "completed":
            return run
        if time.monotonic() > end:
            raise SystemExit(f"run {run_id} not completed in {DEADLINE}s: {run.status}")
        time.sleep(0.1)


def jobs_of(run):
    return [
        {
            "id": j.id,
            "name": j.name,
            "status": j.status,
            "conclusion": j.conclusion,
            "runner": j.runner_name,
            "steps": [[s.number, s.name, s.status, s.conclusion] for s in j.steps],
        }
        for j in run.jobs()
    ]


def fetch(url):
    """A download link: no token (GitHub's blob host takes signed URLs)."""
    with urllib.request.urlopen(url, timeout=10) as r:
        return r.status, r.headers.get("Content-Type"), r.read()


def main():
    g = Github(base_url=os.environ["GH_API"], auth=Auth.Token(os.environ["GH_TOKEN"]), retry=None, lazy=False)
    out = {}

    repo = g.get_repo(os.environ["GH_REPO"])
    out["repo"] = {
        "full_name": repo.full_name,
        "name": repo.name,
        "owner": repo.owner.login,
        "default_branch": repo.default_branch,
        "private": repo.private,
        "id": repo.id,
        "admin": repo.permissions.admin,
    }

    me = g.get_user()
    out["user"] = {"login": me.login, "type": me.type}

    before = g.get_rate_limit()
    again = g.get_rate_limit()
    out["rate_limit"] = {
        "limit": before.resources.core.limit,
        "remaining": before.resources.core.remaining,
        "used": before.resources.core.used,
        "remaining_again": again.resources.core.remaining,
        "rate_remaining": before.rate.remaining,
        "search_limit": before.resources.search.limit,
    }

    out["branches"] = {b.name: b.commit.sha for b in repo.get_branches()}
    main_branch = repo.get_branch("main")
    out["main"] = {
        "sha": main_branch.commit.sha,
        "protected": main_branch.protected,
        "message": main_branch.commit.commit.message,
        "author": main_branch.commit.commit.author.name,
    }
    try:
        repo.get_branch("no-such-branch")
        out["missing_branch"] = "found"
    except github.GithubException as e:
        out["missing_branch"] = e.status

    # Everyday reads of a GitOps repository: history, a commit, files and directories.
    out["commits"] = [c.sha for c in repo.get_commits(sha="develop")[:5]]
    head = repo.get_commit("main")
    out["commit"] = {
        "sha": head.sha,
        "files": sorted(f.filename for f in head.files),
        "additions": head.stats.additions,
        "deletions": head.stats.deletions,
    }
    readme = repo.get_contents("README.md", ref="main")
    out["readme"] = {"text": readme.decoded_content.decode(), "sha": readme.sha, "size": readme.size}
    out["workflow_dir"] = sorted(c.name for c in repo.get_contents(".github/workflows", ref="main"))
    out["root_dir"] = sorted((c.name, c.type) for c in repo.get_contents("", ref="main"))
    try:
        repo.get_contents("no/such/file", ref="main")
        out["missing_file"] = "found"
    except github.GithubException as e:
        out["missing_file"] = e.status

    runs = {}
    build = repo.get_workflow("build.yml")
    verify = repo.get_workflow("verify-environment.yml")
    started = {
        # Succeeds: three jobs that need each other, committing a new tag.
        "ok": build.create_dispatch("develop", {"service": "frontend"}, return_run_details=True),
        # The estate's builds of notifications fail at the unit tests.
        "failed_job": build.create_dispatch("develop", {"service": "notifications"}, return_run_details=True),
        # prod has a broken app: the health checks fail, the smoke tests after them are skipped.
        "failed_step": verify.create_dispatch("main", {"environment": "prod"}, return_run_details=True),
    }
    for key, r in started.items():
        run = wait_completed(repo, r.id)
        entry = {"id": run.id, "conclusion": run.conclusion, "jobs": jobs_of(run)}
        timing = run.timing()
        entry["timing"] = {
            "run_duration_ms": timing.run_duration_ms,
            "billable": timing.billable,
        }
        runs[key] = entry
    out["runs"] = runs

    ok = repo.get_workflow_run(runs["ok"]["id"])
    out["artifacts"] = ok.get_artifacts().totalCount
    first_job = runs["ok"]["jobs"][0]
    job = repo.get_workflow_job(first_job["id"])
    out["job"] = {"id": job.id, "name": job.name, "run_id": job.run_id, "conclusion": job.conclusion}

    # Job log: PyGithub returns the redirect target; the link itself needs no token.
    link = job.logs_url()
    status, ctype, body = fetch(link)
    out["job_log"] = {"status": status, "type": ctype, "text": body.decode()}

    # Run logs: a 302 from the API to a zip of every job's log.
    headers, _ = g.requester.requestBlobAndCheck("GET", ok.logs_url)
    status, ctype, body = fetch(headers["location"])
    with zipfile.ZipFile(io.BytesIO(body)) as z:
        out["run_logs"] = {
            "status": status,
            "type": ctype,
            "files": {n: z.read(n).decode() for n in z.namelist()},
        }
    # A tampered link is refused by the blob host.
    try:
        fetch(headers["location"].replace("sig=", "sig=0"))
        out["tampered"] = 200
    except urllib.error.HTTPError as e:
        out["tampered"] = e.code

    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
