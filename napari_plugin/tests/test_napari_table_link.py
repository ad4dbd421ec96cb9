"""Table ↔ viewer (issue #17): a row click centres and rings the object, a click on an object
selects its row; a rerun updates the result layers in place."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from fake_assays import SPECS
from hqn_helpers import wait_run

import histoquant_napari._assay_widget as aw

pytestmark = pytest.mark.gui


@pytest.fixture
def measured(make_napari_viewer, qtbot, monkeypatch, rgb_file, notes):
    from histoquant_napari._reader import read_image_layers

    monkeypatch.setattr(aw, "available_assays", lambda: dict(SPECS))
    viewer = make_napari_viewer()
    for data, kwargs, kind in read_image_layers(rgb_file):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    w = aw.AssayWidget(viewer, assay="fake-count")
    wait_run(qtbot, w)
    assert w.last_error is None, w.last_error
    return viewer, w


def test_row_click_centres_and_marks_the_object(measured):
    viewer, w = measured
    objects = w.last_result.objects
    assert len(objects) >= 2
    i = len(objects) - 1
    w.table.show_table("objects")
    w.table._clicked(i if not w.table.turned else 0, 0 if not w.table.turned else i)
    ycol, xcol = w.spec.positions[0]
    y, x = objects[ycol].iloc[i], objects[xcol].iloc[i]
    assert tuple(aw.viewer_camera(viewer).center[-2:]) == pytest.approx((y, x))
    ring = viewer.layers[f"selected · fake-count · {w.last_result.image}"]
    px = w.last_result.pixel_size_um
    np.testing.assert_allclose(ring.data, [[y / px, x / px]])
    assert w.result_layers[0].selected_label == int(objects["label"].iloc[i])


def test_object_click_selects_its_row(measured):
    _viewer, w = measured
    objects = w.last_result.objects
    i = 1
    ycol, xcol = w.spec.positions[0]
    event = SimpleNamespace(position=(objects[ycol].iloc[i], objects[xcol].iloc[i]))
    w._pick_object(w.result_layers[0], event)
    assert w.table.current == "objects"
    picked = (w.table.table.selectedRanges()[0].leftColumn() if w.table.turned
              else w.table.table.selectedRanges()[0].topRow())
    assert picked == i


def test_rerun_updates_layers_in_place(measured, qtbot):
    viewer, w = measured
    before = [id(layer) for layer in viewer.layers]
    labels = w.result_layers[0]
    labels.opacity = 0.9  # the user's choice survives a rerun
    w.params_form["min_area_um2"].value = 70.0
    wait_run(qtbot, w)
    assert [id(layer) for layer in viewer.layers] == before
    assert w.result_layers[0] is labels and labels.opacity == pytest.approx(0.9)
    np.testing.assert_array_equal(labels.data, w.last_result.labels)
    assert list(labels.features["index"]) == list(w.last_result.objects["label"])
