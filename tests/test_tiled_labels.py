"""Tiled segmentation: the tiles cover the image, own it exactly once, and stitching keeps every
object once, the same as segmenting the whole image in one go."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.measure import label

from histoquant.segment.tiled_labels import segment_in_tiles, tile_grid
from histoquant.synthetic.round_cells import make_round_cells


def threshold_segmenter(tile: np.ndarray) -> np.ndarray:
    """A stand-in instance segmenter: connected components above half range."""
    return label(tile > 0.5)


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when two label images hold the same objects, whatever their numbers."""
    if ((a > 0) != (b > 0)).any():
        return False
    pairs = np.unique(np.stack([a[a > 0], b[b > 0]]), axis=1)
    return len(np.unique(pairs[0])) == pairs.shape[1] == len(np.unique(pairs[1]))


@pytest.mark.parametrize("shape", [(300, 300), (1000, 700), (257, 1030)])
def test_owned_boxes_partition_the_image(shape):
    tiles = tile_grid(shape, 256, 60)
    owner = np.zeros(shape, int)
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]] + 0.5
    for t in tiles:
        assert 0 <= t.read_y[0] < t.read_y[1] <= shape[0]
        assert 0 <= t.read_x[0] < t.read_x[1] <= shape[1]
        assert t.read_y[1] - t.read_y[0] == min(256, shape[0])
        # a tile owns only pixels it reads, with half the overlap kept as context
        assert t.read_y[0] <= t.own_y[0] and t.own_y[1] <= t.read_y[1]
        owner += ((yy >= t.own_y[0]) & (yy < t.own_y[1]) & (xx >= t.own_x[0])
                  & (xx < t.own_x[1]))
    assert (owner == 1).all()
    # neighbours share at least the requested overlap
    starts = sorted({t.read_y[0] for t in tiles})
    assert (np.diff(starts) <= 256 - 60).all()


def test_small_image_is_one_tile():
    (tile,) = tile_grid((200, 180), 256, 50)
    assert tile.read_y == (0, 200) and tile.read_x == (0, 180)


def test_bad_overlap_is_refused():
    with pytest.raises(ValueError, match="half the tile"):
        tile_grid((1000, 1000), 256, 128)


@pytest.mark.parametrize("tile_px", [160, 300])
def test_tiled_equals_whole_image_and_counts_each_cell_once(tile_px):
    image, truth = make_round_cells((700, 650), pixel_size_um=0.5, diameter_um=(10, 25),
                                    n_cells=120, noise=0.0, seed=3)
    whole = threshold_segmenter(image.data)
    assert whole.max() == truth.max()  # the stand-in finds each phantom cell once
    calls = []
    tiled = segment_in_tiles(image.data, threshold_segmenter, tile_px, 60,
                             progress=lambda f, m: calls.append(f))
    assert tiled.dtype == np.int32
    assert same_partition(tiled, whole)
    assert tiled.max() == truth.max() == len(np.unique(tiled)) - 1
    n_tiles = len(tile_grid(image.data.shape, tile_px, 60))
    assert n_tiles > 4
    assert calls == pytest.approx([(k + 1) / n_tiles for k in range(n_tiles)])


def test_too_small_overlap_warns_about_cut_objects():
    image, _ = make_round_cells((600, 600), pixel_size_um=1.0, diameter_um=(40, 60),
                                n_cells=40, noise=0.0, seed=4)
    with pytest.warns(UserWarning, match="inner tile edge"):
        segment_in_tiles(image.data, threshold_segmenter, 200, 10)


def test_rgb_tiles_reach_the_segmenter_with_their_channels():
    image, truth = make_round_cells((400, 400), rgb=True, noise=0.0, seed=5)
    shapes = []

    def seg(tile):
        shapes.append(tile.shape)
        return label(tile[..., 1] < 200)

    out = segment_in_tiles(image.data, seg, 256, 40)
    assert all(s[2] == 3 for s in shapes) and len(shapes) == 4
    assert same_partition(out, seg(image.data))
    assert out.max() == truth.max()


def test_wrong_label_shape_from_segmenter_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        segment_in_tiles(np.zeros((100, 100)), lambda t: np.zeros((5, 5), int), 256, 10)


def test_twin_seen_by_both_tiles_of_a_seam_is_kept_once():
    # one disc centred on the seam between two tiles (x = 226 in pixel-edge coordinates);
    # each tile's segmenter shifts it one pixel towards its own side, as two runs of a
    # network on different context may, so both copies have their centroid in their own box
    img = np.zeros((100, 452), np.float32)
    yy, xx = np.mgrid[0:100, 0:452]
    img[(yy - 50) ** 2 + (xx + 0.5 - 226) ** 2 <= 15**2] = 1.0
    (t0, t1) = tile_grid(img.shape, 256, 60)
    assert t0.own_x[1] == t1.own_x[0] == 226.0
    seen = []

    def seg(tile):
        seen.append(1)
        return np.roll(label(tile > 0.5), -1 if len(seen) == 1 else 1, axis=1)

    out = segment_in_tiles(img, seg, 256, 60)
    assert out.max() == 1
    assert (out > 0).sum() >= (img > 0.5).sum()
