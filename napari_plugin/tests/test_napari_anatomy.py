"""The anatomy widget with histoquant's real anatomy on a cord phantom (skipped where this
histoquant has no anatomy assay)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hqn_helpers import wait_run

from histoquant.assays import available_assays
from histoquant.rois import normalize_regions
from histoquant_napari._anatomy_widget import AnatomyWidget
from histoquant_napari._convert import image_to_layer_data
from histoquant_napari._shapes import regions_from_shapes_layer

pytestmark = [
    pytest.mark.gui,
    pytest.mark.skipif("anatomy" not in available_assays(),
                       reason="this histoquant has no anatomy assay"),
]


@pytest.fixture(scope="module")
def phantom():
    cord = pytest.importorskip("histoquant.synthetic.cord")
    return cord.cord_section(10.0, seed=2)


def test_anatomy_widget_regions_equal_core(make_napari_viewer, qtbot, phantom, notes):
    viewer = make_napari_viewer()
    (layer,) = [viewer.add_image(d, **kw) for d, kw, _ in image_to_layer_data(phantom.image)]
    w = AnatomyWidget(viewer)
    viewer.window.add_dock_widget(w)
    assert w.image_choice.value == (layer, None)
    assert w.params_form is not None  # the anatomy's own parameters, with their defaults
    spec = available_assays()["anatomy"]
    assert w.params_form.params() == spec.params_cls()
    wait_run(qtbot, w, timeout=120000)
    assert w.last_error is None, w.last_error
    core = spec.run(phantom.image)
    pd.testing.assert_frame_equal(w.table.summary, core.summary)
    shapes = w.regions_layer
    names = set(shapes.features["name"])
    assert {"grey_matter", "ventral_horn_left", "ventral_horn_right"} <= names
    assert "white_matter" not in names and "tissue" not in names  # not ticked by default
    assert tuple(shapes.scale) == (10.0, 10.0)
    # The editable outlines cover the anatomy's regions to within the 5 µm simplification.
    shape = phantom.image.shape_yx
    drawn = normalize_regions(regions_from_shapes_layer(shapes, layer), shape)
    found = normalize_regions([r for r in core.extra["regions"] if r.name in names], shape)
    for name in names:
        inter = (drawn[name] & found[name]).sum()
        union = (drawn[name] | found[name]).sum()
        assert inter / union > 0.95, name


def test_swap_left_right_on_real_regions(make_napari_viewer, qtbot, phantom, notes):
    viewer = make_napari_viewer()
    for d, kw, _ in image_to_layer_data(phantom.image):
        viewer.add_image(d, **kw)
    w = AnatomyWidget(viewer)
    wait_run(qtbot, w, timeout=120000)
    before = list(w.regions_layer.features["name"])
    left = [i for i, n in enumerate(before) if n == "ventral_horn_left"]
    w.swap_sides()
    after = list(w.regions_layer.features["name"])
    assert all(after[i] == "ventral_horn_right" for i in left)
    assert np.array_equal(np.array(before) == "grey_matter", np.array(after) == "grey_matter")
