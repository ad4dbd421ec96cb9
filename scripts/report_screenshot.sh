#!/usr/bin/env bash
# Regenerate docs/screenshots/report_endpoints.png: the top of the example study's report.html
# (endpoints panel, then each animal's QC pictures with their values) as a browser shows it.
#
#   bash scripts/report_screenshot.sh [WORKDIR]     default WORKDIR: a new temporary folder
#
# Runs `histoquant batch example_images` (≈ 1 min on one core) into WORKDIR/results, takes a
# headless Chromium screenshot 1280 px wide, and writes it as a palette PNG under 400 KB.
# PYTHON picks the interpreter (default .venv/bin/python); CHROMIUM the browser (default: the
# first of chromium, chromium-browser, google-chrome on the PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
work=${1:-$(mktemp -d)}
browser=${CHROMIUM:-$(command -v chromium || command -v chromium-browser || command -v google-chrome)}
"$PY" -m histoquant batch example_images -o "$work/results" -q
flags=(--headless --hide-scrollbars --window-size=1280,3000)
# the browser's sandbox refuses to start as root (containers)
[[ $(id -u) -eq 0 ]] && flags+=(--no-sandbox)
"$browser" "${flags[@]}" --screenshot="$work/report.png" "file://$work/results/report.html" \
    2>/dev/null
"$PY" - "$work/report.png" docs/screenshots/report_endpoints.png <<'PYEOF'
import sys
from pathlib import Path

from PIL import Image

src, dst = sys.argv[1], Path(sys.argv[2])
im = Image.open(src).convert("RGB")
# 256 colours (octree: the plot colours stay exact) keep the text sharp and the QC
# thumbnails recognisable
scale = 1.0
while True:
    small = im if scale == 1.0 else im.resize(
        (round(im.width * scale), round(im.height * scale)), Image.Resampling.LANCZOS)
    small.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(
        dst, optimize=True)
    if dst.stat().st_size <= 400_000 or scale < 0.5:
        break
    scale *= 0.9
print(f"{dst}: {Image.open(dst).size[0]} × {Image.open(dst).size[1]} px, "
      f"{dst.stat().st_size / 1000:.0f} kB")
PYEOF
