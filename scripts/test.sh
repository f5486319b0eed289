#!/usr/bin/env bash
# Set up (or reuse) .venv, install animegan with its test extra, lint the tree, and run the whole test suite.
# Extra arguments go to pytest, e.g. ./scripts/test.sh -k config
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
# Lint first: a style slip fails in seconds, not after the suite.
.venv/bin/ruff check --quiet .
.venv/bin/ruff format --check --quiet .
# pytest exits 5 when it collects no test: that is a failure here, never a silent pass.
exec .venv/bin/python -m pytest -q "$@"
