#!/usr/bin/env bash
# Install vizlab (editable) with its test tools into a virtual environment, default ./.venv.
#   bash scripts/install.sh            # then: .venv/bin/vizlab run mlp
#   VIZLAB_VENV=/path/to/venv bash scripts/install.sh
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VIZLAB_VENV:-.venv}
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
# PIP_CONSTRAINT (not -c) so the pins also reach pip's isolated build of visdom's sdist.
export PIP_CONSTRAINT="$PWD/constraints.txt"
"$venv/bin/python" -m pip install --quiet -e ".[test]"
"$venv/bin/vizlab" --version
