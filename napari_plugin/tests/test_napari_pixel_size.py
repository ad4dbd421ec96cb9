"""The pixel size lives on the image layer (issue #17): typed once in any dock, it becomes the
layer's scale in µm (scale bar on) and every dock reads it; anatomy runs without one."""

from __future__ import annotations

import numpy as np
import pytest
from hqn_helpers import wait_run

import histoquant_napari._assay_widget as aw
from histoquant.assays import available_assays
from histoquant_napari._anatomy_widget import AnatomyWidget
from histoquant_napari._convert import layer_pixel_size

pytestmark = pytest.mark.gui


def test_pixel_size_typed_once_reaches_the_layer_and_every_dock(make_napari_viewer, qtbot,
                                                                notes):
    viewer = make_napari_viewer()
    rgb = np.full((60, 60, 3), 230, np.uint8)
    rgb[20:30, 20:30] = 50
    layer = viewer.add_image(rgb, rgb=True, name="no scale")
    one = aw.AssayWidget(viewer, assay="motor-neurons")
    two = AnatomyWidget(viewer)
    assert one.pixel_size_needed and "no physical pixel size" in one.pixel_size_note.value
    one.pixel_size.value = 0.8
    one.pixel_size.native.editingFinished.emit()  # what pressing Enter or leaving the box does
    assert layer_pixel_size(layer) == pytest.approx(0.8)
    assert tuple(layer.scale) == pytest.approx((0.8, 0.8))
    overlays = getattr(getattr(viewer, "canvas", None), "overlays", None)
    bar = overlays["scale_bar"] if overlays is not None else viewer.scale_bar
    assert bar.visible
    # The note is gone, in this dock and in the other one, and the field is hidden again.
    for w in (one, two):
        assert not w.pixel_size_needed
        assert "0.8 µm (from the layer scale)" in w.pixel_size_note.value
        assert w.pixel_size.native.isHidden()


@pytest.mark.skipif("anatomy" not in available_assays(), reason="no anatomy assay")
def test_anatomy_runs_without_a_pixel_size_and_says_so(make_napari_viewer, qtbot, notes):
    cord = pytest.importorskip("histoquant.synthetic.cord")
    phantom = cord.cord_section(10.0, seed=2)
    viewer = make_napari_viewer()
    viewer.add_image(np.asarray(phantom.image.data), rgb=True, name="section")
    w = AnatomyWidget(viewer)
    assert "anatomy will assume one from the cord width" in w.pixel_size_note.value
    wait_run(qtbot, w, timeout=120000)
    assert w.last_error is None, w.last_error
    names = set(w.regions_layer.features["name"])
    assert {"grey_matter", "ventral_horn_left", "ventral_horn_right"} <= names
    assert any("pixel size unknown" in m for _, m in notes) or \
        "pixel size unknown" in " ".join(w.last_result.warnings)
