"""The generic assay widget against two small fake assays (the plumbing, independent of the
real assays): layers in, numbers equal to the core's, layers and tables out, errors shown."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from fake_assays import SPECS
from hqn_helpers import wait_run

import histoquant_napari._assay_widget as aw
from histoquant.io import read_image
from histoquant.rois import Region

pytestmark = pytest.mark.gui


@pytest.fixture
def fake_registry(monkeypatch):
    monkeypatch.setattr(aw, "available_assays", lambda: dict(SPECS))


def _open(viewer, path):
    from histoquant_napari._reader import read_image_layers

    out = []
    for data, kwargs, kind in read_image_layers(path):
        out.append(getattr(viewer, f"add_{kind}")(data, **kwargs))
    return out


def test_rgb_assay_numbers_equal_core(make_napari_viewer, qtbot, fake_registry, rgb_file,
                                      notes):
    viewer = make_napari_viewer()
    (layer,) = _open(viewer, rgb_file)
    w = aw.AssayWidget(viewer, assay="fake-count")
    viewer.window.add_dock_widget(w)
    assert w.role_widgets["image"].value == (layer, None)
    assert not w.pixel_size_needed  # the OME pixel size is the layer scale
    assert w.pixel_size.native.isHidden()
    wait_run(qtbot, w)
    assert w.last_error is None, w.last_error
    core = SPECS["fake-count"].run(read_image(rgb_file))
    pd.testing.assert_frame_equal(w.last_result.summary, core.summary)
    pd.testing.assert_frame_equal(w.last_result.objects, core.objects)
    labels = viewer.layers[f"objects · fake-count · {core.image}"]
    np.testing.assert_array_equal(labels.data, core.labels)
    assert tuple(labels.scale) == (0.5, 0.5)
    assert list(labels.features["index"]) == list(core.objects["label"])
    # One summary row with many columns: shown turned, a row per measurement.
    table = w.table.table
    assert w.table.turned
    assert table.columnCount() == len(core.summary) == 1
    assert table.horizontalHeaderItem(0).text() == "image"  # the region's name
    rows = [table.verticalHeaderItem(i).text() for i in range(table.rowCount())]
    assert rows == list(core.summary.columns)
    n_row = rows.index("n_objects")
    assert table.item(n_row, 0).text() == str(core.summary["n_objects"].iloc[0])


def test_changed_param_reaches_core(make_napari_viewer, qtbot, fake_registry, rgb_file, notes):
    viewer = make_napari_viewer()
    _open(viewer, rgb_file)
    w = aw.AssayWidget(viewer, assay="fake-count")
    w.params_form["min_area_um2"].value = 70.0  # drops the disks of radius 8 and 9 px (< 70 µm²)
    wait_run(qtbot, w)
    params = SPECS["fake-count"].params_cls(min_area_um2=70.0)
    core = SPECS["fake-count"].run(read_image(rgb_file), params=params)
    pd.testing.assert_frame_equal(w.last_result.summary, core.summary)
    assert w.last_result.summary["n_objects"].iloc[0] == 2


def test_fluorescence_roles_and_regions(make_napari_viewer, qtbot, fake_registry, fluo_file,
                                        notes):
    from histoquant_napari._shapes import shapes_layer_kwargs

    viewer = make_napari_viewer()
    _dapi, gfp = _open(viewer, fluo_file)
    w = aw.AssayWidget(viewer, assay="fake-fluo")
    # No channel is named 'signal' or 'reference', by name or colour: nothing is guessed, the
    # required role waits to be chosen and the note says so.
    assert w.role_widgets["signal"].native.currentIndex() == -1
    assert w.role_widgets["reference"].value is None
    assert "signal: choose its channel" in w.channel_note.text()
    w.role_widgets["signal"].value = (gfp, None)
    box = Region("box", [np.array([[20, 30], [20, 70], [60, 70], [60, 30]], float)])
    data, kwargs = shapes_layer_kwargs([box], gfp, name="regions")
    shapes = viewer.add_shapes(data, **kwargs)
    w.reset_choices()
    w.regions_choice.value = shapes
    wait_run(qtbot, w)
    assert w.last_error is None, w.last_error
    core = SPECS["fake-fluo"].run(read_image(fluo_file), regions=[box],
                                  channels={"signal": "GFP"})
    pd.testing.assert_frame_equal(w.last_result.summary, core.summary)
    assert list(w.last_result.summary["region"]) == ["box"]


def test_missing_pixel_size_is_asked_for(make_napari_viewer, qtbot, fake_registry, notes):
    viewer = make_napari_viewer()
    rgb = np.full((60, 60, 3), 230, np.uint8)
    rgb[20:30, 20:30] = 50
    viewer.add_image(rgb, rgb=True, name="no scale")
    w = aw.AssayWidget(viewer, assay="fake-count")
    assert w.pixel_size_needed and not w.pixel_size.native.isHidden()
    assert "no physical pixel size" in w.pixel_size_note.value
    wait_run(qtbot, w)
    assert w.last_result is None
    assert notes and notes[-1][0] == "error" and "pixel size" in notes[-1][1]
    w.pixel_size.value = 2.0
    wait_run(qtbot, w)
    assert w.last_error is None
    assert w.last_result.pixel_size_um == 2.0
    assert w.last_result.summary["region_area_mm2"].iloc[0] == pytest.approx(
        60 * 60 * 4 / 1e6)


def test_core_error_becomes_notification(make_napari_viewer, qtbot, fake_registry, fluo_file,
                                         notes):
    viewer = make_napari_viewer()
    _open(viewer, fluo_file)
    w = aw.AssayWidget(viewer, assay="fake-count")  # an RGB assay on a grey layer
    wait_run(qtbot, w)
    assert w.last_result is None
    assert notes[-1][0] == "error"
    assert "a brightfield RGB image is needed; none of the open image layers is RGB" in \
        notes[-1][1]


def test_params_save_load_roundtrip(make_napari_viewer, fake_registry, tmp_path, notes):
    viewer = make_napari_viewer()
    w = aw.AssayWidget(viewer, assay="fake-count")
    cls = SPECS["fake-count"].params_cls
    assert w.params_form.params() == cls()
    w.params_form["min_area_um2"].value = 37.5
    w.params_form["method"].value = "min"
    path = w.save_params(tmp_path / "p.yaml")
    assert cls.from_file(path) == cls(min_area_um2=37.5, method="min")
    w.params_form.reset()
    assert w.params_form.params() == cls()
    w.load_params(path)
    assert w.params_form.params() == cls(min_area_um2=37.5, method="min")
    bad = tmp_path / "bad.json"
    bad.write_text('{"min_area_um": 3}')
    assert w.load_params(bad) is None
    assert notes[-1][0] == "error" and "Valid parameters" in notes[-1][1]


def test_closed_widget_ignores_layer_events(make_napari_viewer, qtbot, fake_registry, rgb_file,
                                            notes):
    import gc
    import weakref

    viewer = make_napari_viewer()
    w = aw.AssayWidget(viewer, assay="fake-count")
    dock = viewer.window.add_dock_widget(w)
    (layer,) = _open(viewer, rgb_file)  # the widget now follows this layer's name too
    ref = weakref.ref(w)
    viewer.window.remove_dock_widget(dock)
    dock.deleteLater()
    w.deleteLater()
    del w, dock

    def collected():
        gc.collect()
        return ref() is None

    # deleteLater runs when Qt's event loop gets to it: seconds on a loaded machine, not 50 ms
    qtbot.waitUntil(collected, timeout=10_000)
    layer.name = "renamed"  # layer events after the widget is gone: no error
    _open(viewer, rgb_file)
    assert ref() is None  # the viewer's events did not keep the closed widget alive
