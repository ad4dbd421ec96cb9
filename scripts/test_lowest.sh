#!/usr/bin/env bash
# Check the dependency floors in pyproject.toml: install the LOWEST versions they allow
# (uv's --resolution lowest-direct) in a separate environment, .venv-lowest, and run the core
# tests there (no GUI, no cellpose, not the slow corpus). A floor that is too low fails here,
# so the floors stay true. Run by .ci/run after the README's test command.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/uv ]]; then
    .venv/bin/python -m pip install -q --disable-pip-version-check uv \
        2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
fi
if [[ ! -x .venv-lowest/bin/python ]]; then
    .venv/bin/uv venv -q -p "$PY" .venv-lowest
fi
VIRTUAL_ENV=$PWD/.venv-lowest .venv/bin/uv pip install -q --resolution lowest-direct -e ".[test,dask,learn,stats]"
# numcodecs (pulled in by zarr) warns at import, through a filter of its own that no pytest
# option overrides, unless google-crc32c is there; it is not one of our dependencies.
VIRTUAL_ENV=$PWD/.venv-lowest .venv/bin/uv pip install -q google-crc32c
VIRTUAL_ENV=$PWD/.venv-lowest .venv/bin/uv pip list 2>/dev/null \
    | grep -E "^(numpy|scipy|scikit-image|pandas|tifffile|imagecodecs|zarr|roifile|pyyaml|pillow|skan|numba|openpyxl|tqdm|dask|scikit-learn|skops|pingouin) " \
    | awk '{printf "%s==%s  ", $1, $2} END {print ""}'
# Old releases warn about their own deprecations (pandas' np.find_common_type, numcodecs'
# crc32c); those are theirs, not ours, and would bury the result.
.venv-lowest/bin/python -m pytest -q -p no:cacheprovider -m "not gui and not slow" \
    -W ignore::DeprecationWarning tests
