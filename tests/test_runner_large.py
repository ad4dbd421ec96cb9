"""The single-assay command measures an image above the memory limit tile by tile, as a study."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from histoquant.io import limits
from histoquant.testing import BLOB_SPEC, register


@pytest.fixture
def blob_image(tmp_path):
    from histoquant.synthetic.study import write_phantom_study

    write_phantom_study(tmp_path / "study", groups=("vehicle",), group_means=(30,),
                        animals_per_group=1, levels=("L3",), slide_every=0, png_every=0,
                        seed=2, size_px=400)
    return sorted((tmp_path / "study").rglob("*.tif"))[0]


def test_an_image_over_the_memory_limit_is_measured_in_tiles(blob_image, tmp_path,
                                                             monkeypatch):
    from histoquant.cli import main
    from histoquant.io import read_image

    register(monkeypatch, BLOB_SPEC)
    assert main(["blobs", str(blob_image), "-o", str(tmp_path / "whole"), "-q"]) == 0
    monkeypatch.setattr(limits, "MAX_IN_MEMORY_PIXELS", 1000)
    assert not isinstance(read_image(blob_image).data, np.ndarray)  # now opened lazily
    assert main(["blobs", str(blob_image), "-o", str(tmp_path / "tiled"), "-q"]) == 0
    whole = pd.read_csv(tmp_path / "whole" / "summary.csv")
    tiled = pd.read_csv(tmp_path / "tiled" / "summary.csv")
    assert int(tiled["n_blobs"].iloc[0]) == int(whole["n_blobs"].iloc[0]) > 0
    assert len(pd.read_csv(tmp_path / "tiled" / "objects.csv")) == \
        len(pd.read_csv(tmp_path / "whole" / "objects.csv"))
    # the tiled path was taken (it writes no full-size label image), not a whole read
    assert (tmp_path / "whole" / "labels").is_dir()
    assert not (tmp_path / "tiled" / "labels").exists()


def test_auto_regions_on_an_image_over_the_limit_run_the_anatomy_on_a_reduced_copy(
        blob_image, tmp_path, monkeypatch):
    # The single-assay command is a one-assay study run: what a study does for a slide
    # (the anatomy on a copy reduced to slides.anatomy_pixel_um, masks applied tile by tile)
    # it does too, where it used to refuse and point to the batch.
    import sys
    import types

    import histoquant
    from histoquant.cli import main

    register(monkeypatch, BLOB_SPEC)
    calls = []

    def auto_regions(image, names):
        calls.append(image.pixel_size_um)
        return {"grey_matter": np.ones(image.shape_yx, bool)}

    def find_sections(image):
        return types.SimpleNamespace(sections=[types.SimpleNamespace(quality=0.9)])

    fake = types.SimpleNamespace(auto_regions=auto_regions, find_sections=find_sections)
    monkeypatch.setitem(sys.modules, "histoquant.anatomy", fake)
    monkeypatch.setattr(histoquant, "anatomy", fake, raising=False)
    assert main(["blobs", str(blob_image), "-o", str(tmp_path / "whole"), "-q"]) == 0
    monkeypatch.setattr(limits, "MAX_IN_MEMORY_PIXELS", 1000)
    assert main(["blobs", str(blob_image), "--regions", "auto", "-o", str(tmp_path / "o"),
                 "-q"]) == 0
    assert len(calls) == 1 and calls[0] == pytest.approx(8.0, rel=0.05)
    whole = pd.read_csv(tmp_path / "whole" / "summary.csv")
    auto = pd.read_csv(tmp_path / "o" / "summary.csv")
    assert auto["region"].tolist() == ["grey_matter"]
    assert int(auto["n_blobs"].iloc[0]) == int(whole["n_blobs"].iloc[0]) > 0
