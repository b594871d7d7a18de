#!/usr/bin/env bash
# Create (or reuse) the Python virtualenv the sandbox fidelity tests run real clients from,
# with the pinned versions of tests/clients/requirements.txt (the official `kubernetes`
# client and its dependencies). Usage: tests/clients/setup-python.sh [VENV_DIR] (default
# target/pyenv). Prints the venv's python on stdout; everything else goes to stderr.
# Idempotent: a venv already holding exactly these pins is left alone.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${1:-$root/target/pyenv}"
reqs="$here/requirements.txt"
stamp="$venv/.shipdeck-requirements"
if [[ -x "$venv/bin/python" && -f "$stamp" ]] && cmp -s "$stamp" "$reqs"; then
    echo "$venv/bin/python"
    exit 0
fi
command -v python3 >/dev/null || { echo "python3 is not installed" >&2; exit 2; }
python3 -m venv "$venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$reqs" >&2
cp "$reqs" "$stamp"
echo "$venv/bin/python"
