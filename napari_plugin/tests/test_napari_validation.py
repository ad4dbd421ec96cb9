"""The check-against-manual-counts dock (issue #17): the same numbers as the core's
comparison, a constant bias read back as the bias, the Bland–Altman plot drawn."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hqn_helpers import wait_run

from histoquant_napari._validation_widget import ValidationWidget

pytestmark = pytest.mark.gui
pytest.importorskip("pingouin")


def test_dock_shows_the_cores_agreement(make_napari_viewer, qtbot, tmp_path, monkeypatch,
                                        notes):
    from histoquant.batch import run_batch
    from histoquant.synthetic.study import write_phantom_study
    from histoquant.testing import BLOB_SPEC, register

    folder, results = tmp_path / "study", tmp_path / "results"
    truth = write_phantom_study(folder, groups=["vehicle", "MSC"], group_means=(10, 20),
                                animals_per_group=2, levels=("L3",), size_px=160, seed=5)
    register(monkeypatch, BLOB_SPEC)
    assert run_batch(folder, results).ok
    # The counter's sheet: the phantom's true cells per slide image, and 2 more on each.
    truth["image"] = [f.split("/")[-1].split(".")[0] for f in truth["file"]]
    counts = truth.groupby("image")["n_cells"].sum()
    sheet = pd.DataFrame({"image": counts.index, "n_blobs": counts.to_numpy(float) + 2.0})
    manual = tmp_path / "manual.csv"
    sheet.to_csv(manual, index=False)
    viewer = make_napari_viewer()
    w = ValidationWidget(viewer)
    w.results.value = results
    w.manual.value = manual
    wait_run(qtbot, w, timeout=120000)
    assert w.last_error is None, w.last_error
    row = w.comparison.table.set_index("measure").loc["n_blobs"]
    program = pd.read_csv(results / "sections.csv")
    assert row["n_pairs"] == len(counts)
    # program − manual: the phantom's blobs are counted exactly, so the bias is −2
    assert row["bias"] == pytest.approx(-2.0, abs=0.5)
    assert "ICC" in w.summary.text() and "n_blobs" in w.summary.text()
    assert w.table.current == "validation" and w.table.expanded
    if w.plot is not None:
        assert w.plot.renderer().isValid()
    assert (results / "validation.csv").is_file()
    assert np.isfinite(program.filter(like="n_blobs").to_numpy(float)).all()
