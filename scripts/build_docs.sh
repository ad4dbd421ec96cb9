#!/usr/bin/env bash
# Build the documentation (user guide + API reference) into a folder, with warnings as errors.
# Installs nothing: run `.venv/bin/python -m pip install -e ".[docs]"` first (CI does).
#
#   bash scripts/build_docs.sh [OUTDIR]     default OUTDIR: docs/_build/html
#
# PYTHON picks the interpreter (default .venv/bin/python). Only warnings and errors are
# printed; the pages are in OUTDIR/index.html.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs/_build/html}
PY=${PYTHON:-.venv/bin/python}
# -W: a warning fails the build; --keep-going: report them all first. -E: no stale pages
# from an earlier build; -q: no progress lines. The doctrees go beside the pages' folder, out
# of the published tree.
"$PY" -m sphinx -b html -W --keep-going -E -q -d "$out/../.doctrees-$(basename "$out")" docs "$out"
