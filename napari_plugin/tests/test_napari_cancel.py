"""Cancel a single run; closing a dock mid-run cancels it and adds nothing (issue #17)."""

from __future__ import annotations

import time

import pytest
from fake_assays import SPECS

import histoquant_napari._assay_widget as aw

pytestmark = pytest.mark.gui


@pytest.fixture
def slow_widget(make_napari_viewer, monkeypatch, rgb_file):
    from histoquant_napari._reader import read_image_layers

    monkeypatch.setattr(aw, "available_assays", lambda: dict(SPECS))
    viewer = make_napari_viewer()
    for data, kwargs, kind in read_image_layers(rgb_file):
        getattr(viewer, f"add_{kind}")(data, **kwargs)
    w = aw.AssayWidget(viewer, assay="fake-count")
    real = w.compute
    started = []

    def slow(job, progress):
        started.append(True)
        for i in range(400):  # ≈ 4 s unless cancelled
            progress(i / 400, "working")
            time.sleep(0.01)
        return real(job, progress)

    monkeypatch.setattr(w, "compute", slow)
    return viewer, w, started


def test_cancel_stops_a_run_and_adds_nothing(qtbot, slow_widget, notes):
    viewer, w, started = slow_widget
    n_layers = len(viewer.layers)
    with qtbot.waitSignal(w.run_finished, timeout=20000):
        w.run()
        qtbot.waitUntil(lambda: bool(started), timeout=5000)
        assert w.cancel_button.isEnabled()
        t0 = time.perf_counter()
        w.cancel()
    assert time.perf_counter() - t0 < 2.0  # stopped at the next report, not after 4 s
    assert w.status.text() == "cancelled"
    assert w.last_result is None and w.last_error is None
    assert len(viewer.layers) == n_layers
    assert not any(level == "error" for level, _ in notes)
    assert w.run_button.isEnabled() and not w.cancel_button.isEnabled()


def test_closing_the_dock_cancels_its_run(qtbot, slow_widget, notes):
    viewer, w, started = slow_widget
    viewer.window.add_dock_widget(w)
    n_layers = len(viewer.layers)
    worker = w.run()
    qtbot.waitUntil(lambda: bool(started), timeout=5000)
    with qtbot.waitSignal(worker.finished, timeout=20000):
        viewer.window.remove_dock_widget(w)  # what the dock's close button does
    qtbot.wait(100)
    assert w.last_result is None
    assert len(viewer.layers) == n_layers
    assert not any(level == "error" for level, _ in notes)


def test_the_dock_title_follows_the_assay_box(make_napari_viewer, monkeypatch, notes):
    monkeypatch.setattr(aw, "available_assays", lambda: dict(SPECS))
    viewer = make_napari_viewer()
    w = aw.AssayWidget(viewer, assay="fake-count")
    dock = viewer.window.add_dock_widget(w, name="Fake counter (histoquant)")
    w.assay_choice.value = "fake-fluo"
    expected = f"{aw.short_title(SPECS['fake-fluo'])} (histoquant)"
    assert dock.windowTitle() == expected
    assert dock.title.title.text() == expected
