"""In a real viewer: opening files through napari, the anatomy widget, editing region shapes,
region files in and out, and the batch widget (with fake assays and a fake anatomy)."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
from fake_assays import SPECS
from hqn_helpers import wait_run

import histoquant.assays.base as base
import histoquant_napari._anatomy_widget as anat
import histoquant_napari._assay_widget as aw
from histoquant.io import read_image
from histoquant.rois import normalize_regions, read_regions

pytestmark = pytest.mark.gui


def _halves(image, names, params=None, progress=None):
    """Fake anatomy: the left and right halves of the image (pixel columns < / ≥ width/2)."""
    from histoquant.rois import Region

    h, w = image.shape_yx
    left = np.zeros((h, w), bool)
    left[:, : w // 2] = True
    if progress:
        progress(0.5, "halving")
    return [Region("left_half", mask=left), Region("right_half", mask=~left)], None


@pytest.fixture
def fakes(monkeypatch):
    monkeypatch.setattr(aw, "available_assays", lambda: dict(SPECS))
    monkeypatch.setattr(base, "available_assays", lambda: dict(SPECS))
    monkeypatch.setattr(anat, "find_regions", _halves)
    monkeypatch.setattr(anat, "region_names", lambda: ("left_half", "right_half"))


def test_open_through_napari_sets_scale(make_napari_viewer, rgb_file, fluo_file):
    viewer = make_napari_viewer()
    (rgb,) = viewer.open(str(rgb_file), plugin="histoquant-napari")
    assert rgb.rgb and tuple(rgb.scale) == (0.5, 0.5)
    dapi, gfp = viewer.open(str(fluo_file), plugin="histoquant-napari")
    assert tuple(gfp.scale) == (0.65, 0.65)
    assert gfp.colormap.name == "green" and dapi.colormap.name == "blue"
    assert str(gfp.units[-1]) == "micrometer"


def test_anatomy_shapes_edit_changes_result(make_napari_viewer, qtbot, fakes, rgb_file, notes):
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(rgb_file), plugin="histoquant-napari")
    an = anat.AnatomyWidget(viewer)
    viewer.window.add_dock_widget(an)
    wait_run(qtbot, an)
    assert an.last_error is None, an.last_error
    shapes = an.regions_layer
    assert list(shapes.features["name"]) == ["left_half", "right_half"]
    assert tuple(shapes.scale) == tuple(layer.scale)
    w = aw.AssayWidget(viewer, assay="fake-count")
    viewer.window.add_dock_widget(w)
    w.regions_choice.value = shapes
    wait_run(qtbot, w)
    counts = dict(zip(w.last_result.summary["region"], w.last_result.summary["n_objects"]))
    # Disks at columns 50, 60 (left half) and 150, 160 (right half) of the 200-px image.
    assert counts == {"left_half": 2, "right_half": 2}
    # The user drags the left shape's lower edge up to row 79: the disk at row 110 leaves it.
    data = [np.array(d) for d in shapes.data]
    left = data[0]
    left[left[:, 0] > 80, 0] = 79.0
    shapes.data = data
    wait_run(qtbot, w)
    counts = dict(zip(w.last_result.summary["region"], w.last_result.summary["n_objects"]))
    assert counts == {"left_half": 1, "right_half": 2}
    edited = [r for r in read_regions_from(shapes)]
    core = SPECS["fake-count"].run(read_image(rgb_file), regions=edited)
    pd.testing.assert_frame_equal(w.last_result.summary, core.summary)
    area = w.last_result.summary.set_index("region")["region_area_mm2"]
    assert area["left_half"] == pytest.approx(80 * 100 * 0.25 / 1e6, rel=0.03)


def read_regions_from(shapes):
    from histoquant_napari._shapes import regions_from_shapes_layer

    return regions_from_shapes_layer(shapes)


def test_swap_left_right_and_region_files(make_napari_viewer, qtbot, fakes, rgb_file, tmp_path,
                                          notes):
    viewer = make_napari_viewer()
    viewer.open(str(rgb_file), plugin="histoquant-napari")
    an = anat.AnatomyWidget(viewer)
    wait_run(qtbot, an)
    an.regions_layer.features = an.regions_layer.features.assign(
        name=["vh_left", "vh_right"])
    an.swap_sides()
    assert list(an.regions_layer.features["name"]) == ["vh_right", "vh_left"]
    out = an.save_regions(tmp_path / "rois.zip")
    saved = {r.name: r for r in read_regions(out)}
    assert set(saved) == {"vh_left", "vh_right"}
    masks = normalize_regions(list(saved.values()), (160, 200))
    assert masks["vh_right"][:, :100].all() and not masks["vh_right"][:, 100:].any()
    # Opening it again gives a Shapes layer on the image's grid, and the GeoJSON writer of the
    # manifest saves the same regions.
    layer = an.open_regions(out)
    assert tuple(layer.scale) == (0.5, 0.5)
    import napari

    written = napari.save_layers(str(tmp_path / "again.geojson"), [layer],
                                 plugin="histoquant-napari")
    again = normalize_regions(read_regions(written[0]), (160, 200))
    for k in masks:
        np.testing.assert_array_equal(again[k], masks[k])
    opened = viewer.open(str(out), plugin="histoquant-napari")
    assert opened[0].__class__.__name__ == "Shapes" and tuple(opened[0].scale) == (0.5, 0.5)


def test_anatomy_without_module_says_so(make_napari_viewer, qtbot, monkeypatch, rgb_file,
                                        notes):
    monkeypatch.setattr(anat, "available_assays", lambda: {})
    viewer = make_napari_viewer()
    viewer.open(str(rgb_file), plugin="histoquant-napari")
    an = anat.AnatomyWidget(viewer)
    wait_run(qtbot, an)
    assert notes[-1][0] == "error" and "no anatomy assay" in notes[-1][1]


def _folder(tmp_path, rgb_file, n=3):
    folder = tmp_path / "slides"
    folder.mkdir()
    for i in range(n):
        (folder / f"s{i}.ome.tif").write_bytes(rgb_file.read_bytes())
    return folder


def test_batch_widget_runs_folder(make_napari_viewer, qtbot, fakes, rgb_file, tmp_path, notes):
    from histoquant_napari._batch_widget import BatchWidget

    folder = _folder(tmp_path, rgb_file)
    viewer = make_napari_viewer()
    w = BatchWidget(viewer)
    viewer.window.add_dock_widget(w)
    w.folder.value = folder
    w.outdir.value = tmp_path / "out"
    w.assays.value = ["fake-count"]
    wait_run(qtbot, w)
    assert w.last_error is None, w.last_error
    assert w.last_ok is True
    # The study tables the batch wrote, shown in the widget: sections first.
    sections = pd.read_csv(tmp_path / "out" / "sections.csv")
    assert sorted(sections["image"]) == ["s0", "s1", "s2"]
    core = SPECS["fake-count"].run(read_image(folder / "s0.ome.tif"))
    row = sections.set_index("image").loc["s0"]
    assert row["n_objects"] == core.summary["n_objects"].iloc[0]
    assert row["region_area_mm2"] == pytest.approx(core.summary["region_area_mm2"].iloc[0])
    assert next(iter(w.table.tables)) == "sections"
    assert "long" in w.table.tables and "sections_long" not in w.table.tables
    assert w.progress_bar.value() == w.progress_bar.maximum() == 3


def test_batch_cancel_and_bad_input(make_napari_viewer, qtbot, fakes, rgb_file, tmp_path,
                                    notes):
    from histoquant_napari._batch_widget import BatchWidget

    folder = _folder(tmp_path, rgb_file, n=4)
    viewer = make_napari_viewer()
    w = BatchWidget(viewer)
    w.folder.value = folder
    w.outdir.value = tmp_path / "out"
    wait_run(qtbot, w)  # no assay ticked and no study.yaml
    assert "study.yaml" in notes[-1][1] and notes[-1][0] == "error"
    w.assays.value = ["fake-count"]
    with qtbot.waitSignal(w.run_finished, timeout=60000):
        w.run()
        w.cancel()  # seen at the worker's next progress report
    assert w.cancelled and w.last_ok is None
    text = w.status.text()
    # The worker may have finished an image before the flag was set: either way it stops early.
    match = re.match(r"cancelled (?:before the first image|after (\d) of 4 image)", text)
    assert match, text
    done = int(match.group(1) or 0)
    assert done < 4 and "resume" in text
    assert not (tmp_path / "out" / "sections.csv").exists()  # no table that looks complete
    assert w.can_resume and not w.resume.native.isHidden()
    w.resume.value = True
    wait_run(qtbot, w)
    assert w.last_ok is True and not w.cancelled
    assert len(pd.read_csv(tmp_path / "out" / "sections.csv")) == 4
    assert f"({4 - done} measured, {done} reused)" in w.status.text()
    wait_run(qtbot, w)  # again with resume: nothing left to measure
    assert "(0 measured, 4 reused)" in w.status.text()
