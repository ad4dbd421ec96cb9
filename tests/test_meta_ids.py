"""Identifier columns given by the caller (--meta KEY=VALUE, --level) reach every table row."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from histoquant.assays.base import AssaySpec
from histoquant.cli import _meta_arg, _meta_from_args
from histoquant.io import as_image, write_ome_tiff
from histoquant.params import AssayParams
from histoquant.results import AssayResult, add_id_columns
from histoquant.runner import run_files


@dataclass(frozen=True)
class _NoParams(AssayParams):
    pass


def _fake_run(image, regions=None, params=None, *, channels=None, progress=None):
    summary = pd.DataFrame({"image": [image.name, image.name], "region": ["a", "b"],
                            "n": [1, 0]})
    objects = pd.DataFrame({"image": [image.name], "region": ["a"], "label": [1]})
    return AssayResult("fake", image.name, objects, summary)


def test_add_id_columns_places_ids_first_and_keeps_rows():
    df = pd.DataFrame({"image": ["x", "x"], "region": ["a", "b"], "n": [3, 0]})
    out = add_id_columns(df, {"treatment": "MSC", "level": "L3", "animal": "R1", "x": None})
    assert list(out.columns) == ["image", "animal", "level", "region", "treatment", "n"]
    assert (out["level"] == "L3").all() and len(out) == 2
    assert "x" not in out.columns


def test_add_id_columns_on_empty_table_keeps_column():
    out = add_id_columns(pd.DataFrame(columns=["image", "label"]), {"level": "L2"})
    assert "level" in out.columns and len(out) == 0


def test_runner_writes_meta_into_both_tables(tmp_path):
    spec = AssaySpec("fake", "fake", _NoParams, _fake_run)
    path = write_ome_tiff(as_image(np.arange(64, dtype=np.uint16).reshape(8, 8), 1.0),
                          tmp_path / "s01.ome.tif")
    report = run_files(spec, [path], tmp_path / "out", meta={"level": "L4", "animal": "R7"})
    summary = pd.read_csv(tmp_path / "out" / "summary.csv")
    objects = pd.read_csv(tmp_path / "out" / "objects.csv")
    assert report.ok
    # a one-assay batch: the section column of a study run ("1": the image is one section)
    assert list(summary.columns[:5]) == ["image", "animal", "level", "section", "region"]
    assert (summary["level"] == "L4").all() and (objects["animal"] == "R7").all()
    assert (summary["section"] == 1).all()


def test_meta_arg_parsing_and_level_alias():
    assert _meta_arg("animal = R12") == ("animal", "R12")
    for bad in ("animal", "image=x", "my key=1"):
        with pytest.raises(argparse.ArgumentTypeError):
            _meta_arg(bad)
    args = argparse.Namespace(meta=[("level", "L2"), ("group", "MSC")], level="L3")
    assert _meta_from_args(args) == {"level": "L3", "group": "MSC"}
