#!/usr/bin/env bash
# Set up histoquant in ./.venv on a fresh machine. Safe to run again: it only adds what is missing.
#
#   bash scripts/setup.sh          core package (enough for the command line and the main job)
#   bash scripts/setup.sh --test   + test tools, napari plugin, Qt, cellpose (torch runs on the CPU), Dask,
#                                  scikit-learn/skops/pingouin (learned engines, validation),
#                                  and the Debian packages napari needs to draw under Xvfb
set -euo pipefail
cd "$(dirname "$0")/.."

want_test=0
[[ "${1:-}" == "--test" ]] && want_test=1

PY=${PYTHON:-python3}
if [[ ! -x .venv/bin/python ]]; then
    "$PY" -m venv .venv
fi
# This machine's pip configuration may name local package folders that are absent; pip warns
# once per package about each. Those lines say nothing about the install: filtered out.
pip() {
    .venv/bin/python -m pip "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}
pip install -q --disable-pip-version-check --upgrade pip

if [[ $want_test == 1 ]]; then
    if ! command -v xvfb-run >/dev/null 2>&1 || ! ldconfig -p | grep -q libxcb-cursor.so.0; then
        if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
            export DEBIAN_FRONTEND=noninteractive
            apt-get update -qq
            # Xvfb for a real X display; GL, xcb and fontconfig libraries for Qt6 and vispy.
            apt-get install -y -qq --no-install-recommends xvfb xauth libgl1 libegl1 \
                libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 \
                libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0 \
                libdbus-1-3 libfontconfig1 libglib2.0-0 >/dev/null
        else
            echo "warning: install xvfb and the Qt/GL libraries (see scripts/setup.sh) for the GUI tests" >&2
        fi
    fi
    # torch and torchvision first, as a matching pair that lies on this machine's disk:
    # cellpose 4 imports torchvision, and PyPI's torchvision fails to import beside the CPU
    # torch 2.13.0 build ("operator torchvision::nms does not exist"). Pinned in every later
    # install so nothing swaps torch for another multi-GB download.
    pip install -q --disable-pip-version-check "torch==2.14.1" "torchvision==0.29.1"
    pip install -q --disable-pip-version-check -e ".[test,dask,cellpose,learn,stats]" "torch==2.14.1" "torchvision==0.29.1"
    if [[ -f napari_plugin/pyproject.toml ]]; then
        pip install -q --disable-pip-version-check -e "napari_plugin[testing]" "torch==2.14.1" "torchvision==0.29.1"
    fi
else
    pip install -q --disable-pip-version-check -e .
fi
