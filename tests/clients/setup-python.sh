#!/usr/bin/env bash
# Create (or reuse) the virtualenv of third-party API clients the sandbox's fidelity tests
# run (the official kubernetes client, PyGithub, python-jenkins): target/pyenv, with the pinned versions of tests/clients/requirements.txt from PyPI.
# Prints the venv's python on stdout; everything else goes to stderr.
# Needs python3 with the venv module (Debian/Ubuntu: apt-get install python3-venv).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
req="$root/tests/clients/requirements.txt"
venv="${SHIPDECK_PYENV:-$root/target/pyenv}"
mkdir -p "$(dirname "$venv")"
# Tests run in parallel: one of them builds the venv, the others wait for it.
exec 9>"$venv.lock"
flock 9
stamp="$venv/.requirements"
if [[ -x "$venv/bin/python" && -f "$stamp" ]] && cmp -s "$req" "$stamp"; then
  echo "$venv/bin/python"
  exit 0
fi
rm -rf "$venv"
python3 -m venv "$venv" >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" >&2
cp "$req" "$stamp"
echo "$venv/bin/python"
