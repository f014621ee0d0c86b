#!/usr/bin/env bash
# Install vizlab (editable) with its test tools into a virtual environment, default ./.venv.
#   bash scripts/install.sh                      # with python3; then: .venv/bin/vizlab run mlp
#   PYTHON=python3.13 bash scripts/install.sh    # with another interpreter (Python 3.10 to 3.13)
#   VIZLAB_VENV=/path/to/venv bash scripts/install.sh
# pip picks the Visdom each Python can run: 0.2.4 below Python 3.12, 0.3.x from 3.12 on.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
venv=${VIZLAB_VENV:-.venv}
fail() { echo "install.sh: $*" >&2; exit 2; }

version() { "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null; }
want=$(version "$python") || fail "cannot run $python (set PYTHON to a Python 3.10 to 3.13)"
"$python" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
  || fail "vizlab needs Python 3.10 or newer; $python is $want"
if [ -x "$venv/bin/python" ]; then
  have=$(version "$venv/bin/python") || have="unusable"
  [ "$have" = "$want" ] || fail "$venv holds Python $have, not $want ($python): remove it, or set VIZLAB_VENV"
else
  "$python" -m venv "$venv" || fail "$python cannot make a virtual environment (Debian: apt-get install python3-venv)"
fi
# PIP_CONSTRAINT (not -c) so the pins also reach pip's isolated build of visdom's sdist.
export PIP_CONSTRAINT="$PWD/constraints.txt"
"$venv/bin/python" -m pip install --quiet -e ".[test]"
"$venv/bin/vizlab" --version
"$venv/bin/python" -c 'import importlib.metadata as m, sys
print("Python %s, Visdom %s, torch %s" % (sys.version.split()[0], m.version("visdom"), m.version("torch")))'
