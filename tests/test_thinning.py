"""Lee thinning on boundary pixels: the same skeleton as scikit-image's, pixel for pixel."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.morphology import skeletonize

from histoquant.measure.thinning import thin_lee
from histoquant.synthetic.vessels import vessel_phantom


def test_same_skeleton_as_scikit_image_on_random_shapes():
    rng = np.random.default_rng(0)
    for _ in range(150):
        n = int(rng.integers(6, 70))
        field = ndi.gaussian_filter(rng.random((n, n + 5)), rng.uniform(0.5, 3.0))
        mask = field > rng.uniform(0.45, 0.55)
        assert np.array_equal(thin_lee(mask), skeletonize(mask, method="lee").astype(bool))


def test_same_skeleton_as_scikit_image_on_vessels():
    image, _, _ = vessel_phantom((160.0, 160.0), 0.5, seed=2)
    mask = image.data[..., 0] > np.percentile(image.data[..., 0], 80)
    ours = thin_lee(mask)
    assert ours.sum() > 100
    assert np.array_equal(ours, skeletonize(mask, method="lee").astype(bool))


def test_edge_cases():
    assert not thin_lee(np.zeros((4, 5), bool)).any()
    full = np.ones((7, 9), bool)
    assert np.array_equal(thin_lee(full), skeletonize(full, method="lee").astype(bool))
    with pytest.raises(ValueError, match="2D"):
        thin_lee(np.ones((2, 3, 3), bool))
