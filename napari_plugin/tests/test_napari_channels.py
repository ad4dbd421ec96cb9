"""Channel roles in the assay dock (issue #17): filled from the file's names and LUTs with a
note that says why, never by order; duplicates refused; RGB boxes list RGB layers only."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from fake_assays import SPECS
from hqn_helpers import wait_run

import histoquant_napari._assay_widget as aw

pytestmark = pytest.mark.gui


def _lut(r: int, g: int, b: int) -> np.ndarray:
    return np.rint(np.outer([r, g, b], np.arange(256) / 255.0)).astype(np.uint8)


@pytest.fixture
def lut_file(tmp_path):
    """The shape of the shared Tie2-Cre file: C0 tdTomato shown gray, C1 GFP green, C2 DAPI
    blue, no channel names, 0.5 µm/px in the ImageJ calibration."""
    rng = np.random.default_rng(1)
    data = rng.integers(90, 110, (3, 96, 96)).astype(np.uint16)
    data[1, 30:44, 30:44] += 2000
    data[2, 28:46, 28:46] += 1500
    path = tmp_path / "tie2_like.tif"
    tifffile.imwrite(path, data, imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "CYX", "unit": "um",
                               "LUTs": [_lut(255, 255, 255), _lut(0, 255, 0), _lut(0, 0, 255)]})
    return path


def _open(viewer, path):
    from histoquant_napari._reader import read_image_layers

    return [getattr(viewer, f"add_{kind}")(data, **kwargs)
            for data, kwargs, kind in read_image_layers(path)]


def test_roles_and_colours_follow_the_files_luts(make_napari_viewer, lut_file, notes):
    viewer = make_napari_viewer()
    c0, c1, c2 = _open(viewer, lut_file)
    assert [la.colormap.name for la in (c0, c1, c2)] == ["gray", "green", "blue"]
    w = aw.AssayWidget(viewer, assay="gfp-cells")
    assert w.role_widgets["gfp"].value == (c1, None)  # not C0, the first channel
    assert w.role_widgets["dapi"].value == (c2, None)
    assert w.role_widgets["reference"].value is None  # a gray tdTomato is no reference
    note = w.channel_note.text()
    assert "gfp ← C1 (display colour green" in note and "dapi ← C2" in note


def test_one_channel_in_two_roles_is_refused(make_napari_viewer, qtbot, lut_file, notes):
    viewer = make_napari_viewer()
    _c0, c1, _c2 = _open(viewer, lut_file)
    w = aw.AssayWidget(viewer, assay="gfp-cells")
    w.role_widgets["dapi"].value = (c1, None)
    assert "both gfp and dapi" in w.status.text()
    wait_run(qtbot, w)
    assert w.last_error is not None and "both gfp and dapi" in w.last_error
    assert w.last_result is None


def test_an_unresolved_required_role_is_asked_for(make_napari_viewer, qtbot, tmp_path,
                                                  notes):
    viewer = make_napari_viewer()
    data = np.zeros((2, 32, 32), np.uint16)
    path = tmp_path / "two.tif"
    tifffile.imwrite(path, data, imagej=True, resolution=(2.0, 2.0),
                     metadata={"axes": "CYX", "unit": "um", "Labels": ["GFP 488", "EGFP"]})
    _open(viewer, path)
    w = aw.AssayWidget(viewer, assay="gfp-cells")
    assert w.role_widgets["gfp"].native.currentIndex() == -1
    assert "gfp: ambiguous" in w.channel_note.text()
    wait_run(qtbot, w)
    assert "choose the channel for gfp" in (w.last_error or "")


def test_rgb_box_lists_rgb_layers_only(make_napari_viewer, monkeypatch, rgb_file, notes):
    monkeypatch.setattr(aw, "available_assays", lambda: dict(SPECS))
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((20, 20), np.uint8), name="grey")
    (rgb,) = _open(viewer, rgb_file)
    w = aw.AssayWidget(viewer, assay="fake-count")
    items = [w.role_widgets["image"].native.itemText(i)
             for i in range(w.role_widgets["image"].native.count())]
    assert items == [rgb.name]


def test_save_csv_proposes_the_images_folder_and_a_telling_name(make_napari_viewer, qtbot,
                                                                 monkeypatch, rgb_file, notes):
    monkeypatch.setattr(aw, "available_assays", lambda: dict(SPECS))
    viewer = make_napari_viewer()
    _open(viewer, rgb_file)
    w = aw.AssayWidget(viewer, assay="fake-count")
    wait_run(qtbot, w)
    assert w.last_error is None, w.last_error
    proposed = w.table.default_path("summary")
    assert proposed.parent == rgb_file.parent
    assert proposed.name == f"{w.last_result.image}_fake-count_summary.csv"
