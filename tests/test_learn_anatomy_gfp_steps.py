"""A pixel classifier in place of the anatomy's and gfp-cells' foreground step: on phantoms
with exact truth, on the command line, in a study, and refused when it lacks the class."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("sklearn")
pytest.importorskip("skops")

from histoquant.assays import anatomy, gfp_cells
from histoquant.cli import main
from histoquant.errors import ModelFileError, ParamsError
from histoquant.io import write_ome_tiff
from histoquant.learn.assay_models import load_assay_model
from histoquant.learn.pixels import save_pixel_classifier, train_pixel_classifier
from histoquant.measure.scores import dice
from histoquant.synthetic.cord import cord_section
from histoquant.synthetic.gfp import make_gfp_phantom

HORNS = ("ventral_horn_left", "ventral_horn_right", "dorsal_horn_left", "dorsal_horn_right")
# small forests on few pixels: the tests check the plumbing and the masks, not the forest
FOREST = {"n_estimators": 10, "max_depth": 12, "max_samples_per_class": 2000}
GFP_CELLS = {"n_cells": 8, "n_touching_pairs": 1, "n_anucleate": 1}


def _cord_model(swap: bool = False):
    """background / grey / white matter from the truth of one fluorescence cord phantom
    (``swap``: the white matter called grey matter)."""
    ph = cord_section(10.0, seed=21, angle_deg=10.0, modality="fluorescence")
    t = ph.truth(1)
    lab = np.ones(ph.image.shape_yx, np.uint8)
    lab[t["tissue"]] = 3
    lab[t["grey_matter"]] = 2
    if swap:
        lab[lab > 1] = 5 - lab[lab > 1]
    return train_pixel_classifier([ph.image], [lab],
                                  classes=["background", "grey_matter", "white_matter"],
                                  **FOREST)


@pytest.fixture(scope="module")
def cord_model():
    return _cord_model()


@pytest.fixture(scope="module")
def gfp_model():
    image, truth = make_gfp_phantom((512, 512), 0.5, seed=11, **GFP_CELLS)
    lab = np.ones(image.shape_yx, np.uint8)
    lab[truth.decoy_labels > 0] = 3
    lab[truth.cell_labels > 0] = 2
    return train_pixel_classifier([image], [lab],
                                  classes=["background", "gfp_cell", "autofluorescence"],
                                  **FOREST)


@pytest.fixture(scope="module")
def cord_files(tmp_path_factory, cord_model):
    folder = tmp_path_factory.mktemp("gm_steps")
    model = save_pixel_classifier(cord_model, folder / "gm.hqm")
    ph = cord_section(10.0, seed=4, angle_deg=75.0, modality="fluorescence")
    return model, write_ome_tiff(ph.image, folder / "R1_L3_s1.ome.tif"), ph


def test_anatomy_grey_matter_and_horns_from_the_classifier(cord_model):
    ph = cord_section(10.0, seed=4, angle_deg=75.0, modality="fluorescence")
    res = anatomy.run(ph.image, model=cord_model)
    slide = res.extra["anatomy"]
    assert slide.status == "ok" and len(slide.sections) == 1
    s, truth = slide.sections[0], ph.truth(1)
    d = {n: dice(s.mask(n), truth[n]) for n in ("tissue", "grey_matter", *HORNS)}
    assert d["tissue"] >= 0.95 and d["grey_matter"] >= 0.95, d
    assert min(d[h] for h in HORNS) >= 0.9, d  # horns, left/right: the rest ran on it
    assert not s.flags and s.quality > 0.8
    assert res.extra["engine"] == "classifier"
    rec = res.extra["model"]
    assert rec["classes"] == ["background", "grey_matter", "white_matter"]
    assert rec["grey_matter_class"] == "grey_matter" and len(rec["manifest_sha256"]) == 64
    assert anatomy.run(ph.image).extra["engine"] == "classical"


def test_the_classifier_decides_the_grey_matter():
    """A model that calls the white matter grey matter: the butterfly is not found (the
    depth checks drop a rim along the surface), so the mask came from the model."""
    ph = cord_section(10.0, seed=4, angle_deg=75.0, modality="fluorescence")
    s = anatomy.run(ph.image, model=_cord_model(swap=True)).extra["anatomy"].sections
    grey = s[0].mask("grey_matter") if s else np.zeros(ph.image.shape_yx, bool)
    assert dice(grey, ph.truth(1)["grey_matter"]) < 0.5


def test_gfp_counts_from_the_classifier_match_truth(gfp_model):
    # the assay tests' phantom size: on 512² the cells crowd the decoys (the classical
    # engine finds 5-6 of 8 there)
    for seed in (1,):
        image, truth = make_gfp_phantom((1024, 1024), 0.5, seed=seed, **GFP_CELLS)
        res = gfp_cells.run(image, model=gfp_model)
        assert res.extra["engine"] == "classifier"
        assert res.extra["model"]["gfp_class"] == "gfp_cell"
        n = int(res.summary["n_gfp_cells"].sum())
        assert abs(n - truth.n_gfp_cells) <= 1, (seed, n, truth.n_gfp_cells)
        obj = res.objects.drop_duplicates("label")
        lab = np.asarray(res.labels)
        counted = obj.loc[obj["class"] == "gfp_cell", "label"]
        on_cell = [(truth.cell_labels[lab == k] > 0).mean() > 0.5 for k in counted]
        assert sum(on_cell) >= len(on_cell) - 1, (seed, on_cell)
        # decoys the model calls autofluorescence are never candidates; every object is
        # still measured and classed by the rules (the same columns)
        assert set(obj.columns) == set(gfp_cells.run(image).objects.columns)


def test_gfp_takes_both_model_kinds_and_not_with_cellpose(gfp_model):
    assert gfp_cells.SPEC.model_step("objects") is not None
    assert gfp_cells.SPEC.model_step("pixels") is not None
    image, _ = make_gfp_phantom((256, 256), 0.5, n_cells=1, n_lipofuscin=1, n_rbc=1)
    with pytest.raises(ParamsError, match="cellpose"):
        gfp_cells.run(image, params={"engine": "cellpose"}, model=gfp_model)


def test_a_model_without_the_class_is_refused_naming_the_classes(cord_model, gfp_model,
                                                                 tmp_path, capsys):
    gm = save_pixel_classifier(cord_model, tmp_path / "gm.hqm")
    gfp = save_pixel_classifier(gfp_model, tmp_path / "gfp.hqm")
    with pytest.raises(ModelFileError, match="'gfp_cell' or 'cell' or 'gfp'"):
        load_assay_model(gm, "gfp-cells")
    with pytest.raises(ModelFileError, match="'grey_matter' or 'gray_matter' or 'gm'"):
        load_assay_model(gfp, "anatomy")
    image, _ = make_gfp_phantom((256, 256), 0.5, n_cells=1, n_lipofuscin=1, n_rbc=1)
    path = write_ome_tiff(image, tmp_path / "g.ome.tif")
    out = tmp_path / "o"
    assert main(["anatomy", str(path), "--model", str(gfp), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert "['background', 'gfp_cell', 'autofluorescence']" in err and "grey_matter" in err
    assert "Traceback" not in err and not (out / "summary.csv").exists()


def test_anatomy_model_on_the_command_line_and_in_a_study(cord_files, tmp_path, capsys):
    model, path, ph = cord_files
    with pytest.raises(SystemExit):
        main(["anatomy", "--help"])
    assert "--model" in capsys.readouterr().out
    out = tmp_path / "cli"
    assert main(["anatomy", str(path), "--model", str(model), "-o", str(out), "-q"]) == 0
    summary = pd.read_csv(out / "summary.csv")
    truth = ph.truth(1)
    area = truth["grey_matter"].sum() * (10.0 / 1000) ** 2
    assert summary["grey_matter_area_mm2"].iloc[0] == pytest.approx(area, rel=0.05)

    folder = tmp_path / "study"
    folder.mkdir()
    (folder / path.name).write_bytes(path.read_bytes())
    (folder / "samples.csv").write_text(f"file,animal,group,level\n{path.name},R1,g,L3\n")
    (folder / "gm.hqm").write_bytes(model.read_bytes())
    (folder / "study.yaml").write_text("assays:\n  anatomy:\n    model: gm.hqm\n")
    assert main(["batch", str(folder), "-o", str(tmp_path / "out"), "-q"]) == 0
    found = sorted(p.name for p in (tmp_path / "out").rglob("*.csv"))
    tables = [pd.read_csv(p) for p in (tmp_path / "out").rglob("*.csv")
              if "grey_matter_area_mm2" in pd.read_csv(p, nrows=0).columns]
    assert tables, found
    assert tables[0]["grey_matter_area_mm2"].iloc[0] == pytest.approx(
        summary["grey_matter_area_mm2"].iloc[0])
