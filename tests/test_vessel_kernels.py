"""The fast building blocks of the vasculature assay give the library results they replace."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from histoquant.measure import distance as distance_mod
from histoquant.measure.distance import distance_at
from histoquant.measure.rays import first_hits, padded_flat, run_lengths
from histoquant.measure.skeleton import _skan
from histoquant.measure.thinning import thin_lee
from histoquant.segment.statistics import block_mean
from histoquant.segment.vessels import (
    _dilate_cross,
    _gauss1d,
    _max_filter,
    _resample_grid,
    _sato_bright,
    _upsample,
    background_grid,
    background_window,
    subtract_background,
)
from histoquant.synthetic.vessels import vessel_phantom


@pytest.fixture(scope="module")
def vessel_mask():
    image, _, _ = vessel_phantom((200.0, 230.0), 0.5, seed=6)
    data = image.data[..., 0].astype(np.float32)
    return ndi.gaussian_filter(data, 2) > np.percentile(data, 75)


def _noise(shape, seed=0, sigma=1.5):
    rng = np.random.default_rng(seed)
    return (ndi.gaussian_filter(rng.random(shape), sigma) - 0.5).astype(np.float32)


@pytest.mark.parametrize("sigma", [0.8, 1.2, 1.5, 2.5])
def test_sato_matches_scikit_image(sigma):
    from skimage.filters import sato

    img = _noise((150, 170))
    ours = _sato_bright(img, sigma)
    ref = sato(img, sigmas=[sigma], black_ridges=False, mode="constant", cval=0.0)
    assert ours.dtype == np.float32
    m = int(np.ceil(6 * sigma))  # the image edge: scikit-image pads each derivative pass
    interior = (slice(m, -m), slice(m, -m))
    # below 1.5 px the Hessian is built exactly as scikit-image builds it; above, the
    # direct second-derivative kernel differs from two first-derivative passes by < 1 %
    tol = 1e-5 if sigma < 1.5 else 1e-2
    assert np.abs(ours[interior] - ref[interior]).max() <= tol * ref.max()


def test_gaussian_and_max_filter_along_columns_match_scipy():
    img = _noise((90, 300), seed=1)
    for order in (0, 1, 2):
        ref = ndi.gaussian_filter1d(img, 2.0, axis=0, order=order, mode="constant",
                                    output=np.float32)
        assert np.allclose(_gauss1d(img, 2.0, axis=0, order=order), ref, atol=1e-7)
    sparse = np.where(img > 0.1, img, np.float32(0))
    assert np.array_equal(_max_filter(sparse, 9),
                          ndi.maximum_filter(sparse, size=9, mode="constant"))
    mask = img > 0.15
    cross = ndi.generate_binary_structure(2, 1)
    for n in (1, 3):
        assert np.array_equal(_dilate_cross(mask, n),
                              ndi.binary_dilation(mask, structure=cross, iterations=n))


@pytest.mark.parametrize("shape", [(64, 64), (61, 47)])
def test_block_means_and_resampling(shape):
    img = _noise(shape, seed=2, sigma=0.5)
    for f in (2, 3, 5, 12):
        # the one block mean: a partial edge block is the mean of the pixels it holds
        ref = np.array([[img[i:i + f, j:j + f].mean() for j in range(0, shape[1], f)]
                        for i in range(0, shape[0], f)])
        assert np.allclose(block_mean(img, f), ref, atol=1e-6)

    def bilinear(small, f_from, f_to, out_shape):
        # direct formula: block centres kept, edge values held
        def axis(n_out, n_in):
            x = (np.arange(n_out) + 0.5) * f_to / f_from - 0.5
            i0 = np.clip(np.floor(x).astype(int), 0, n_in - 1)
            i1 = np.minimum(i0 + 1, n_in - 1)
            return i0, i1, np.clip(x - i0, 0, 1)

        r0, r1, wr = axis(out_shape[0], small.shape[0])
        c0, c1, wc = axis(out_shape[1], small.shape[1])
        rows = small[r0] * (1 - wr)[:, None] + small[r1] * wr[:, None]
        return rows[:, c0] * (1 - wc) + rows[:, c1] * wc

    for f_from, f_to in ((2, 1), (4, 2), (5, 2), (5, 1), (3, 1)):
        small = block_mean(img, f_from)
        out_shape = shape if f_to == 1 else (-(-shape[0] // f_to), -(-shape[1] // f_to))
        ours = _resample_grid(small, f_from, f_to, shape)
        assert ours.shape == out_shape
        assert np.allclose(ours, bilinear(small, f_from, f_to, out_shape), atol=1e-5)


@pytest.mark.parametrize("f", [1, 4, 25])
def test_background_window_is_the_whole_images_field(f):
    # A tile reads its window of the whole image's background: bit for bit the values the
    # whole image subtracts there (the same block centres and weights), whatever the
    # window's offset from the block grid; beyond the image the edge blocks are held.
    rng = np.random.default_rng(5)
    img = (rng.random((203, 181)) * 100).astype(np.float32)
    grid, f_got = background_grid(img, 0.5, 2.0 * f)
    assert f_got == f
    field = _upsample(grid, f, img.shape)
    np.testing.assert_array_equal(img - field, subtract_background(img, 0.5, 2.0 * f))
    for off, shape in (((0, 0), img.shape), ((0, 0), (50, 60)), ((37, 11), (90, 120)),
                       ((103, 57), (100, 124)), ((1, 2), (3, 4)), ((150, 160), (53, 21))):
        win = background_window(grid, f, off, shape)
        assert win.dtype == np.float32 and win.shape == shape
        np.testing.assert_array_equal(win, field[off[0]:off[0] + shape[0],
                                                 off[1]:off[1] + shape[1]])
    # a window reaching past the image: interpolated up to the outermost block centres,
    # held beyond them
    out = background_window(grid, f, (-5, 170), (20, 30))
    ext = _upsample(grid, f, (grid.shape[0] * f, grid.shape[1] * f))
    rows = np.clip(np.arange(-5, 15), 0, ext.shape[0] - 1)
    cols = np.clip(np.arange(170, 200), 0, ext.shape[1] - 1)
    np.testing.assert_array_equal(out, ext[np.ix_(rows, cols)])
    np.testing.assert_array_equal(out[5:, :11], field[:15, 170:])


def test_skeleton_graph_is_skans(vessel_mask):
    from skan import Skeleton

    skel = thin_lee(vessel_mask)
    ours, ref = _skan(skel), Skeleton(skel, spacing=1.0, keep_images=False)
    assert ours.n_paths == ref.n_paths > 10
    assert np.array_equal(ours.paths.indptr, ref.paths.indptr)
    assert np.array_equal(ours.paths.indices, ref.paths.indices)
    assert np.array_equal(ours.degrees, ref.degrees)
    assert np.array_equal(ours.coordinates, ref.coordinates)
    assert np.allclose(ours.path_lengths(), ref.path_lengths())


def test_distance_at_is_the_distance_transform(vessel_mask, monkeypatch):
    rr, cc = np.nonzero(vessel_mask)
    ref = ndi.distance_transform_edt(vessel_mask)[rr, cc]
    assert np.allclose(distance_at(vessel_mask, rr, cc), ref)
    # far from the background the ring search hands over to a KD-tree
    monkeypatch.setattr(distance_mod, "_MAX_RING", 2)
    assert np.allclose(distance_at(vessel_mask, rr, cc), ref)
    full = np.ones((9, 12), bool)
    assert np.allclose(distance_at(full, np.array([4]), np.array([6])), 12.0)
    assert distance_at(vessel_mask, np.array([], int), np.array([], int)).size == 0


def test_rays_through_a_disc():
    yy, xx = np.mgrid[:101, :101]
    disc = (yy - 50) ** 2 + (xx - 50) ** 2 <= 30**2
    angles = np.linspace(0, 2 * np.pi, 37)
    directions = np.stack([np.sin(angles), np.cos(angles)], axis=1)
    origins = np.full((len(angles), 2), 50.0)
    flat = padded_flat(disc)
    dist, border = run_lengths(flat, disc.shape, origins, directions, 100.0)
    # the digital disc's edge lies 29.4–30.6 px out, depending on direction
    assert np.allclose(dist, 30.0, atol=0.75) and not border.any()
    # capped rays stop at cap + 2 steps; rays leaving the image end on its border
    capped, _ = run_lengths(flat, disc.shape, origins, directions, 10.0)
    assert np.allclose(capped, 10.375)
    _, out = run_lengths(padded_flat(np.ones((20, 20), bool)), (20, 20),
                         np.array([[10.0, 10.0]]), np.array([[0.0, 1.0]]), 50.0)
    assert out.all()
    # from outside, towards the centre: the first disc pixel is ≈ 30 px from the centre
    start = origins + 45 * directions
    hits = first_hits(flat, disc.shape, start, -directions, np.full(len(angles), 20.0))
    # (samples every 0.5 px: up to half a step inside the edge)
    assert np.allclose(np.hypot(hits[:, 0] - 50, hits[:, 1] - 50), 30.0, atol=1.0)
    missed = first_hits(flat, disc.shape, start, directions, np.full(len(angles), 20.0))
    assert np.isnan(missed).all()
