"""The hand-made references of ``benchmarks/real_data.py`` (skipped without ../shared/data).

- the atlas extraction (``benchmarks/real_data_refs/atlas.py``) on one atlas drawing: the cord
  is one piece covering a plausible share of the canvas, the grey matter a plausible share of
  the cord and inside it;
- the by-eye ChAT counts (``benchmarks/real_data_refs/chat_counts.csv``): one row per ChAT
  section, each with its count, range and how it was counted.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import ndimage as ndi

pytestmark = pytest.mark.realdata

ROOT = Path(__file__).resolve().parents[1]
REFS = ROOT / "benchmarks" / "real_data_refs"


@pytest.fixture(scope="module")
def data() -> Path:
    # the usual ../shared/data; HISTOQUANT_SHARED_DATA for a checkout elsewhere (a worktree)
    folder = Path(os.environ.get("HISTOQUANT_SHARED_DATA") or ROOT.parent / "shared" / "data")
    if not folder.is_dir():
        pytest.skip("../shared/data is absent (real images are not distributed)")
    return folder


def test_atlas_extraction_on_one_drawing(data, atlas_refs):
    from PIL import Image

    folder = data / "spinal_cord_fluorescent"
    image = np.asarray(Image.open(folder / "chat" / "214_L1_ChAT.jpg"))
    atlas = atlas_refs.extract_atlas(folder / "atlas" / "214_L1_atlas.png", image.shape[:2])
    # the drawing's canvas is 1950 px wide, the image 1956: masks come at the image's shape
    assert atlas.canvas_shape == (1200, 1950)
    assert atlas.cord.shape == atlas.grey.shape == image.shape[:2]
    # one cord, about a third of the canvas (the section is ≈ 1000 × 850 px of 1956 × 1200)
    _, n = ndi.label(atlas.cord)
    assert n == 1
    assert 0.2 < atlas.cord.mean() < 0.45
    # grey matter: one butterfly inside the cord, 30–60 % of it (mouse L1 ≈ 40 %)
    assert ndi.label(atlas.grey)[1] == 1
    assert not (atlas.grey & ~atlas.cord).any()
    frac = atlas.grey.sum() / atlas.cord.sum()
    assert 0.3 < frac < 0.6, frac
    # the dorsal column (white matter between the dorsal horns) is outside the grey matter,
    # the commissure near the cord's centre inside it
    rows, cols = np.nonzero(atlas.cord)
    top, mid_c = rows.min(), int(np.median(cols))
    assert not atlas.grey[top + 40, mid_c]
    assert atlas.grey[int(np.median(rows)), mid_c]
    assert atlas_refs.dice(atlas.cord, atlas.cord) == 1.0


def test_chat_counts_cover_every_chat_section(data):
    sections = sorted("_".join(p.stem.split("_")[:2])
                      for p in (data / "spinal_cord_fluorescent" / "chat").glob("*.jpg"))
    table = pd.read_csv(REFS / "chat_counts.csv")
    assert sorted(table["section"]) == sections
    assert table["section"].is_unique
    assert {"count", "count_low", "count_high", "method"} <= set(table.columns)
    assert table["method"].astype(str).str.len().min() > 5
    assert (table["count_low"] <= table["count"]).all()
    assert (table["count"] <= table["count_high"]).all()
    clear = table["image_left_clear"] + table["image_right_clear"]
    assert (clear == table["count"]).all()
