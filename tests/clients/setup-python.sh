#!/usr/bin/env bash
# Create (or reuse) the Python virtualenv the sandbox fidelity tests run real clients from,
# with pinned versions. Usage: tests/clients/setup-python.sh [VENV_DIR]  (default
# target/pyenv). Prints the venv's python path on success. Idempotent: a venv that already
# has the pinned packages is left alone.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
venv="${1:-$root/target/pyenv}"
# The official Kubernetes client, pinned (server 1.32-compatible line).
pins=("kubernetes==32.0.1")
stamp="$venv/.shipdeck-pins"
want="$(printf '%s\n' "${pins[@]}")"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
    echo "$venv/bin/python"
    exit 0
fi
command -v python3 >/dev/null || { echo "python3 is not installed" >&2; exit 2; }
python3 -m venv "$venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}" >&2
printf '%s\n' "$want" >"$stamp"
echo "$venv/bin/python"
