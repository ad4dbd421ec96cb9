"""Fast paths checked against their plain definitions: robust statistics and QC outlines."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.segmentation import find_boundaries

from histoquant.qc import draw_mask_outlines
from histoquant.segment.statistics import MAD_TO_SD, robust_location_scale


def _naive(values, clip_sd=3.0, iterations=5):
    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan")
    loc = float(np.median(v))
    sd = MAD_TO_SD * float(np.median(np.abs(v - loc)))
    for _ in range(iterations):
        if sd <= 0:
            break
        keep = v[v <= loc + clip_sd * sd]
        if keep.size in (v.size, 0):
            break
        v = keep
        loc = float(np.median(v))
        sd = MAD_TO_SD * float(np.median(np.abs(v - loc)))
    return loc, sd


@pytest.mark.parametrize("seed", range(5))
def test_robust_location_scale_equals_definition(seed):
    rng = np.random.default_rng(seed)
    for _ in range(300):
        n = int(rng.integers(1, 80))
        x = rng.normal(size=n)
        if rng.random() < 0.3:
            x = np.round(2 * x)  # ties
        if rng.random() < 0.5:
            x[: n // 3] += rng.uniform(3, 20)  # a bright minority to clip
        if rng.random() < 0.2:
            x[0] = np.nan
        assert robust_location_scale(x) == pytest.approx(_naive(x), abs=1e-12, nan_ok=True)


def test_robust_location_scale_clips_a_bright_minority():
    rng = np.random.default_rng(0)
    x = rng.normal(100.0, 5.0, 200_000)
    x[:40_000] += 60.0  # 20 % signal
    loc, sd = robust_location_scale(x)
    assert loc == pytest.approx(100.0, abs=0.3)
    assert sd == pytest.approx(5.0, rel=0.05)
    assert np.isnan(robust_location_scale(np.array([np.nan]))).all()


def test_binary_outline_matches_find_boundaries():
    rng = np.random.default_rng(1)
    for i in range(40):
        h, w = rng.integers(3, 60, 2)
        mask = ndi.binary_opening(rng.random((h, w)) < rng.uniform(0.3, 0.8))
        if i == 0:
            mask[:] = False
            mask[1:-1, 1:-1] = True
        rgb = np.zeros((h, w, 3), np.uint8)
        draw_mask_outlines(rgb, {"r": mask}, thickness_px=1)
        expected = find_boundaries(mask.astype(np.uint8), mode="inner")
        np.testing.assert_array_equal(rgb.any(axis=-1), expected)
