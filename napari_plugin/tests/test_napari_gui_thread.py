"""The GUI thread stays free (issue #17): the longest gap between ticks of a 10 ms Qt timer
during an anatomy rerun and an assay rerun, and that a rerun updates its layers in place."""

from __future__ import annotations

import time

import pytest
from fake_assays import SPECS
from hqn_helpers import wait_run

import histoquant_napari._assay_widget as aw
from histoquant.assays import available_assays
from histoquant_napari._anatomy_widget import AnatomyWidget
from histoquant_napari._convert import image_to_layer_data, regions_to_shapes_data

pytestmark = pytest.mark.gui

#: The issue's limit for one call on the GUI thread.
STALL_S = 0.2


class _Ticks:
    def __init__(self):
        from qtpy.QtCore import QTimer

        self.timer = QTimer()
        self.timer.setInterval(10)
        self.timer.timeout.connect(self._tick)
        self.worst = 0.0
        self.last = time.perf_counter()

    def _tick(self):
        now = time.perf_counter()
        self.worst = max(self.worst, now - self.last)
        self.last = now

    def __enter__(self):
        self.last = time.perf_counter()
        self.timer.start()
        return self

    def __exit__(self, *exc):
        self.timer.stop()


def test_assay_rerun_keeps_the_gui_thread_free(make_napari_viewer, qtbot, monkeypatch,
                                               rgb_file, notes):
    from histoquant_napari._reader import read_image_layers

    monkeypatch.setattr(aw, "available_assays", lambda: dict(SPECS))
    viewer = make_napari_viewer()
    for data, kwargs, kind in read_image_layers(rgb_file):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    w = aw.AssayWidget(viewer, assay="fake-count")
    wait_run(qtbot, w)
    with _Ticks() as ticks:
        wait_run(qtbot, w)
        qtbot.wait(50)
    assert w.last_error is None, w.last_error
    assert ticks.worst < STALL_S, f"the GUI thread was blocked {ticks.worst:.3f} s"


@pytest.mark.skipif("anatomy" not in available_assays(), reason="no anatomy assay")
def test_anatomy_rerun_updates_the_shapes_in_place(make_napari_viewer, qtbot, notes):
    cord = pytest.importorskip("histoquant.synthetic.cord")
    phantom = cord.cord_section(10.0, seed=2)
    viewer = make_napari_viewer()
    for d, kw, _ in image_to_layer_data(phantom.image):
        viewer.add_image(d, **kw)
    w = AnatomyWidget(viewer)
    wait_run(qtbot, w, timeout=120000)
    shapes = w.regions_layer
    n = len(shapes.data)
    with _Ticks() as ticks:
        wait_run(qtbot, w, timeout=120000)
        qtbot.wait(50)
    assert w.last_error is None, w.last_error
    assert w.regions_layer is shapes and len(shapes.data) == n
    _, _, features = regions_to_shapes_data(w.last_regions, tolerance_px=0.5)
    assert list(shapes.features["name"]) == list(features["name"])
    # 0.13 s measured on the 2-core project machine under load; the margin covers the
    # worker thread holding the GIL inside a C routine, which the timer cannot tell apart.
    assert ticks.worst < 2 * STALL_S, f"the GUI thread was blocked {ticks.worst:.3f} s"


def test_shapes_are_named_from_the_region_dropdown(make_napari_viewer, qtbot, notes):
    import numpy as np

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((50, 50), np.uint8), name="img", scale=(2.0, 2.0))
    w = AnatomyWidget(viewer)
    square = np.array([[5, 5], [5, 20], [20, 20], [20, 5]], float)
    shapes = viewer.add_shapes([square], shape_type="polygon", name="hand",
                               features={"name": ["region"]},
                               feature_defaults={"name": "region"})
    w.reset_choices()
    w.shapes_choice.value = shapes
    w.shape_name.value = "ventral_horn_left"
    shapes.add_polygons([square + 20])  # a shape drawn by hand takes the chosen name
    assert list(shapes.features["name"]) == ["region", "ventral_horn_left"]
    shapes.selected_data = {0}
    w.shape_name.value = "grey_matter"
    w.rename_selected()
    assert list(shapes.features["name"]) == ["grey_matter", "ventral_horn_left"]


def test_every_dock_fits_two_to_a_1080_px_screen(make_napari_viewer, qtbot, notes):
    """Each dock asks for at most 500 px of height, and its parameters start folded."""
    from histoquant_napari._base_widget import DOCK_MAX_HINT_PX
    from histoquant_napari._batch_widget import BatchWidget
    from histoquant_napari._teach_widget import TeachWidget
    from histoquant_napari._validation_widget import ValidationWidget

    viewer = make_napari_viewer()
    docks = [AnatomyWidget(viewer), BatchWidget(viewer), TeachWidget(viewer),
             ValidationWidget(viewer)]
    docks += [aw.AssayWidget(viewer, assay=n) for n in aw.assay_specs()]
    for w in docks:
        dock = viewer.window.add_dock_widget(w)
        qtbot.wait(10)
        assert dock.minimumSizeHint().height() <= 500, type(w).__name__
        assert w.sizeHint().height() <= DOCK_MAX_HINT_PX, type(w).__name__
        form = getattr(w, "params_form", None)
        if form is not None and form.more_toggle is not None:
            hidden = [n for n in form.more_names if form[n].native.isHidden()]
            assert hidden == form.more_names  # folded until asked
            form.show_more(True)
            assert not any(form[n].native.isHidden() for n in form.more_names)
        viewer.window.remove_dock_widget(dock)


def test_three_docks_fit_a_1080_px_screen_and_the_window_shrinks_back(make_napari_viewer,
                                                                      qtbot, notes):
    """The window's minimum height with three docks open fits a 1,080 px screen, and it is
    what it was once they close (issue #17: 2,500 px with three docks before)."""
    viewer = make_napari_viewer()
    qt_window = viewer.window._qt_window
    qtbot.wait(10)
    alone = qt_window.minimumSizeHint().height()
    docks = [viewer.window.add_dock_widget(w) for w in
             (AnatomyWidget(viewer), aw.AssayWidget(viewer, assay="motor-neurons"),
              aw.AssayWidget(viewer, assay="evans-blue"))]
    qtbot.wait(50)
    assert qt_window.minimumSizeHint().height() <= 1080
    for dock in docks:
        viewer.window.remove_dock_widget(dock)
    qtbot.wait(50)
    assert qt_window.minimumSizeHint().height() <= alone + 2
