"""Stain separation and background flattening against images made from known densities."""

from __future__ import annotations

import numpy as np
import pytest

from histoquant.errors import ChannelError, EmptyImageError
from histoquant.segment.background import background_level, flatten_background
from histoquant.segment.stain import (
    CRESYL_VIOLET_OD,
    estimate_stain_vector,
    estimate_white,
    optical_density,
    stain_density,
    unit_vector,
)
from histoquant.synthetic.nissl import NISSL_OD, nissl_phantom

WHITE = np.array([240.0, 236.0, 244.0])


def _render(conc: np.ndarray, vector=CRESYL_VIOLET_OD, white=WHITE, dtype=np.uint8):
    """RGB image of one stain at concentration ``conc`` (OD units along the unit vector)."""
    v = unit_vector(vector)
    rgb = white * 10.0 ** (-conc[..., None] * v)
    if dtype == np.uint8:
        return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    return (rgb / 255.0).astype(dtype)


def test_density_recovers_known_concentration():
    rng = np.random.default_rng(0)
    conc = rng.uniform(0.0, 1.2, size=(64, 80))
    rgb = _render(conc)
    dens = stain_density(rgb, CRESYL_VIOLET_OD, WHITE)
    assert dens.dtype == np.float32 and dens.shape == conc.shape
    # uint8 rounding limits the precision: ±0.5 grey level is ≤ 0.01 OD up to 1.2 OD here.
    np.testing.assert_allclose(dens, conc, atol=0.02)


def test_float_input_gives_the_same_density():
    conc = np.linspace(0, 1, 50 * 40).reshape(50, 40)
    dens_f = stain_density(_render(conc, dtype=np.float32), CRESYL_VIOLET_OD, WHITE / 255.0)
    np.testing.assert_allclose(dens_f, conc, atol=1e-4)


def test_block_average_is_the_mean_of_the_full_resolution_density():
    rng = np.random.default_rng(1)
    conc = rng.uniform(0.0, 1.0, size=(61, 47))  # not a multiple of the factor
    rgb = _render(conc)
    full = stain_density(rgb, CRESYL_VIOLET_OD, WHITE)
    for factor in (2, 3):
        small = stain_density(rgb, CRESYL_VIOLET_OD, WHITE, factor=factor, strip_pixels=300)
        assert small.shape == (-(-61 // factor), -(-47 // factor))
        np.testing.assert_allclose(small[3, 4], full[3 * factor:4 * factor,
                                                     4 * factor:5 * factor].mean(), rtol=1e-5)
        np.testing.assert_allclose(small[-1, -1], full[(61 // factor) * factor:,
                                                       (47 // factor) * factor:].mean(),
                                   rtol=1e-5)


def test_saturated_pixels_give_finite_density():
    rgb = np.zeros((4, 4, 3), np.uint8)
    dens = stain_density(rgb, CRESYL_VIOLET_OD, WHITE)
    assert np.isfinite(dens).all() and dens.min() > 2.0


def test_optical_density_is_zero_at_white_and_clipped():
    od = optical_density(np.array([[240, 236, 244], [255, 255, 255]], float), WHITE)
    np.testing.assert_allclose(od, 0, atol=1e-6)


def test_nan_and_bad_shapes_are_refused():
    rgb = np.full((8, 8, 3), 0.5, np.float32)
    rgb[2, 2, 1] = np.nan
    with pytest.raises(EmptyImageError):
        stain_density(rgb, CRESYL_VIOLET_OD, (1.0, 1.0, 1.0))
    with pytest.raises(ChannelError):
        stain_density(np.zeros((8, 8), np.uint8))
    with pytest.raises(ChannelError):
        unit_vector((0, 0, 0))


def test_white_is_estimated_from_the_palest_pixels():
    conc = np.zeros((100, 100))
    conc[:, 50:] = 0.8
    white = estimate_white(_render(conc), percentile=99.0)
    np.testing.assert_allclose(white, WHITE, atol=1.0)


def test_stain_vector_estimated_from_a_phantom():
    image, _ = nissl_phantom((400, 400), 0.5, seed=2, motor_neuron_density_per_mm2=80)
    v = estimate_stain_vector(image.data)
    angle = np.degrees(np.arccos(np.clip(v @ unit_vector(NISSL_OD), -1, 1)))
    assert angle < 8.0
    # With no stain at all the fallback comes back.
    blank = np.full((50, 50, 3), 240, np.uint8)
    np.testing.assert_allclose(estimate_stain_vector(blank), unit_vector(CRESYL_VIOLET_OD))


def test_flatten_background_removes_a_ramp_but_keeps_cells():
    yy, xx = np.mgrid[:300, :400].astype(np.float32)
    ramp = 0.1 + 0.2 * xx / 400 + 0.05 * yy / 300
    img = ramp.copy()
    cells = np.zeros_like(img)
    for y, x in [(50, 60), (150, 200), (250, 330), (80, 300)]:
        cells[(yy - y) ** 2 + (xx - x) ** 2 < 15 ** 2] = 0.5
    img += cells
    flatten_background(img, block_px=50)
    neuropil = cells == 0
    assert np.abs(img[neuropil]).mean() < 0.01
    assert np.abs(img[neuropil]).max() < 0.05  # edges: extrapolated half a block
    np.testing.assert_allclose(img[cells > 0].mean(), 0.5, atol=0.03)


def test_background_level_ignores_pale_lumina_and_dark_cells():
    rng = np.random.default_rng(3)
    img = rng.normal(0.2, 0.01, size=(100, 100)).astype(np.float32)
    img[:25] = 0.0      # a quarter of pale lumen
    img[-25:] = 0.8     # a quarter of dark soma
    grid = background_level(img, block_px=100)
    np.testing.assert_allclose(grid, 0.2, atol=0.02)


def test_block_grid_reads_linear_between_centres_and_fills_gaps():
    """The shared grid reader is exact on a linear field; the smoother fills NaN blocks."""
    from histoquant.segment.background import read_block_grid, smooth_block_grid

    b = 10
    grid = np.add.outer(np.arange(4.0), 2 * np.arange(5.0)).astype(np.float32)
    full = read_block_grid(grid, b, 0, 40, 0, 50)
    # between the outermost block centres (pixels 4.5 … 34.5 / 44.5) the field is linear
    y, x = 14, 27
    assert np.isclose(full[y, x], (y + 0.5) / b - 0.5 + 2 * ((x + 0.5) / b - 0.5), atol=1e-5)
    assert np.array_equal(read_block_grid(grid, b, 12, 20, 7, 31), full[12:20, 7:31])
    assert np.all(full[:4] == full[4])  # held beyond the first centre
    gappy = np.full((6, 6), 3.0, np.float32)
    gappy[2:4, 2:4] = np.nan
    assert np.allclose(smooth_block_grid(gappy), 3.0)
    assert not smooth_block_grid(np.full((3, 3), np.nan)).any()
