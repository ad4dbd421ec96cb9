"""The single-assay command is a one-assay study run: resumable, parallel, same numbers."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tifffile

from histoquant.synthetic.study import write_phantom_study
from histoquant.testing import BLOB_SPEC, register


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("imgs")
    write_phantom_study(folder, groups=("vehicle",), group_means=(15,), animals_per_group=1,
                        levels=("L3", "L4"), slide_every=0, png_every=0, seed=5, size_px=300)
    return sorted(folder.rglob("*.ome.tif"))[:3]


@pytest.fixture
def blobs(monkeypatch):
    return register(monkeypatch, BLOB_SPEC)


def _main(*args):
    from histoquant.cli import main

    return main([*map(str, args), "-q"])


def test_resume_reuses_every_image_and_gives_identical_tables(images, blobs, tmp_path,
                                                              capsys):
    out = tmp_path / "out"
    assert _main("blobs", *images, "-o", out) == 0
    first = {n: (out / n).read_bytes() for n in ("summary.csv", "objects.csv")}
    assert len(list((out / ".parts").glob("*.zip"))) == len(images)
    (out / "qc" / f"{images[0].name.removesuffix('.ome.tif')}.png").unlink()
    from histoquant.cli import main

    assert main(["blobs", *map(str, images), "-o", str(out), "--resume"]) == 0
    assert f"({len(images)} reused)" in capsys.readouterr().err
    assert {n: (out / n).read_bytes() for n in first} == first
    assert (out / "qc" / f"{images[0].name.removesuffix('.ome.tif')}.png").is_file()
    run = json.loads((out / "run.json").read_text())
    assert run["resumed"] == len(images) and len(run["images"]) == len(images)


def test_two_processes_give_the_tables_of_one(images, blobs, tmp_path):
    assert _main("blobs", *images, "-o", tmp_path / "one") == 0
    assert _main("blobs", *images, "-o", tmp_path / "two", "--jobs", "2") == 0
    for name in ("summary.csv", "objects.csv"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_tables_and_label_image_are_the_assays_own(images, blobs, tmp_path):
    from histoquant.io import read_image

    out = tmp_path / "out"
    assert _main("blobs", images[0], "-o", out, "--level", "l3") == 0
    name = images[0].name.removesuffix(".ome.tif")
    direct = BLOB_SPEC.run(read_image(images[0]))
    labels = tifffile.imread(out / "labels" / f"{name}.tif")
    np.testing.assert_array_equal(labels, direct.labels)
    summary = pd.read_csv(out / "summary.csv")
    assert summary["n_blobs"].tolist() == direct.summary["n_blobs"].tolist()
    assert summary["level"].tolist() == ["L3"] and summary["section"].tolist() == [1]
    assert len(pd.read_csv(out / "objects.csv")) == len(direct.objects)
    # the QC overlay keeps the image's full width (captioned above)
    from PIL import Image

    with Image.open(out / "qc" / f"{name}.png") as qc:
        assert qc.size[0] == labels.shape[1] and qc.size[1] > labels.shape[0]
