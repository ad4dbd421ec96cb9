"""The Nissl ventral-horn phantom: deterministic, exact truth, same tissue at any pixel size."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from histoquant.synthetic.nissl import CELL_KINDS, make_nissl_tissue, nissl_phantom


@pytest.fixture(scope="module")
def phantom():
    return nissl_phantom((600, 600), 0.5, seed=3, motor_neuron_density_per_mm2=60)


def test_image_is_rgb_uint8_with_pixel_size(phantom):
    image, truth = phantom
    assert image.data.shape == (600, 600, 3)
    assert image.data.dtype == np.uint8
    assert image.rgb and image.pixel_size_um == 0.5
    assert truth.labels.shape == (600, 600)
    assert truth.pixel_size_um == 0.5


def test_same_seed_same_image_other_seed_other_image():
    a, ta = nissl_phantom((200, 200), 0.5, seed=11)
    b, tb = nissl_phantom((200, 200), 0.5, seed=11)
    c, _ = nissl_phantom((200, 200), 0.5, seed=12)
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(ta.labels, tb.labels)
    assert not np.array_equal(a.data, c.data)


def test_truth_table_matches_label_images(phantom):
    _, truth = phantom
    cells = truth.cells
    assert set(cells["kind"]) <= set(CELL_KINDS)
    present = set(np.unique(truth.labels)) - {0}
    assert present == set(cells["label"])
    mn = set(cells.loc[cells["is_motor_neuron"], "label"])
    assert set(np.unique(truth.motor_neuron_labels)) - {0} == mn
    assert truth.n_motor_neurons == len(mn) >= 3
    # Motor-neuron pixels carry the same label in both images.
    sel = truth.motor_neuron_labels > 0
    np.testing.assert_array_equal(truth.labels[sel], truth.motor_neuron_labels[sel])


def test_sizes_follow_the_reference_figures(phantom):
    _, truth = phantom
    c = truth.cells
    mn = c.loc[c["kind"] == "motor_neuron", "equivalent_diameter_um"]
    glia = c.loc[c["kind"] == "glia", "equivalent_diameter_um"]
    small = c.loc[c["kind"] == "small_neuron", "equivalent_diameter_um"]
    assert mn.min() >= 23 and mn.max() <= 42.5          # α-motor neurons ≈ 28 µm
    assert glia.min() >= 7.4 and glia.max() <= 10.6      # glial nuclei ≈ 9 µm
    assert small.min() >= 11.9 and small.max() <= 17.1   # small neurons ≈ 16 µm
    np.testing.assert_allclose(truth.motor_neuron_diameters_um, mn.to_numpy())


def test_pixel_areas_match_analytic_areas(phantom):
    _, truth = phantom
    counts = np.bincount(truth.labels.ravel())
    px2 = truth.pixel_size_um ** 2
    mn = truth.cells[truth.cells["is_motor_neuron"]]
    # Motor neurons are kept inside the image, so their full outline is drawn.
    rel = counts[mn["label"].to_numpy()] * px2 / mn["area_um2"].to_numpy() - 1
    assert np.abs(rel).max() < 0.03


def test_some_cells_touch(phantom):
    """Satellite glia pressed on motor neurons and glial pairs: the splitting must work."""
    _, truth = phantom
    lab = truth.labels
    touching = set()
    for a, b in ((lab[1:, :], lab[:-1, :]), (lab[:, 1:], lab[:, :-1])):
        sel = (a != b) & (a > 0) & (b > 0)
        touching |= {tuple(sorted(p)) for p in zip(a[sel].tolist(), b[sel].tolist())}
    kinds = dict(zip(truth.cells["label"], truth.cells["kind"]))
    pairs = {tuple(sorted((kinds[a], kinds[b]))) for a, b in touching}
    assert ("glia", "motor_neuron") in pairs
    assert len(touching) >= 5


def test_stain_and_illumination_are_uneven(phantom):
    image, truth = phantom
    # Neuropil brightness varies across the field by more than the noise.
    grey = image.data.astype(float).mean(axis=2)
    neuropil = ndi.binary_erosion(truth.labels == 0, iterations=5)
    blocks = [grey[r:r + 150, c:c + 150][neuropil[r:r + 150, c:c + 150]].mean()
              for r in range(0, 600, 150) for c in range(0, 600, 150)]
    assert max(blocks) - min(blocks) > 6


def test_same_tissue_at_another_pixel_size():
    tissue = make_nissl_tissue((300.0, 300.0), seed=5, motor_neuron_density_per_mm2=80)
    fine, tf = tissue.render(0.5)
    coarse, tc = tissue.render(1.0)
    assert fine.data.shape == (600, 600, 3) and coarse.data.shape == (300, 300, 3)
    assert coarse.pixel_size_um == 1.0
    # The same somata, in µm.
    mn_f = tf.cells[tf.cells["is_motor_neuron"]].reset_index(drop=True)
    mn_c = tc.cells[tc.cells["is_motor_neuron"]].reset_index(drop=True)
    np.testing.assert_allclose(mn_f["centroid_y_um"], mn_c["centroid_y_um"])
    np.testing.assert_allclose(mn_f["area_um2"], mn_c["area_um2"])
    # Their pixel areas agree in µm² at both pixel sizes.
    af = np.bincount(tf.labels.ravel())[mn_f["label"]] * 0.25
    ac = np.bincount(tc.labels.ravel())[mn_c["label"]] * 1.0
    np.testing.assert_allclose(ac, af, rtol=0.05)
    # And the images look alike once the fine one is averaged to the coarse grid.
    avg = fine.data.astype(float).reshape(300, 2, 300, 2, 3).mean(axis=(1, 3))
    assert np.corrcoef(avg.ravel(), coarse.data.astype(float).ravel())[0, 1] > 0.9


def test_bad_pixel_size_is_refused():
    tissue = make_nissl_tissue((50.0, 50.0), seed=0)
    with pytest.raises(ValueError):
        tissue.render(0.0)
