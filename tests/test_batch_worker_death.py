"""A worker process that dies (the out-of-memory killer, a native crash) fails only the image
it was measuring: the batch finishes, the image is a row of errors.csv, the exit status says
so, and ``--resume`` then gives the tables of a run where nothing died."""

from __future__ import annotations

import dataclasses
import os
import signal

import pandas as pd
import pytest

from histoquant.synthetic.study import write_phantom_study
from histoquant.testing import BLOB_SPEC, register, run_blobs

TABLES = ("objects.csv", "sections.csv", "long.csv", "tables/blobs__animals.csv")
_VICTIM = "HISTOQUANT_TEST_KILL_IMAGE"


def run_or_die(image, regions=None, params=None, **kw):
    """BLOB_SPEC's run, except that the image named in the environment kills its process.

    Module level so that spawned workers can unpickle it; the worker reads the victim from
    the environment it inherited. SIGKILL is what the out-of-memory killer sends.
    """
    if image.name in os.environ.get(_VICTIM, "").split(","):
        os.kill(os.getpid(), signal.SIGKILL)
    return run_blobs(image, regions=regions, params=params, **kw)


DYING_SPEC = dataclasses.replace(BLOB_SPEC, run=run_or_die)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("death_study")
    truth = write_phantom_study(folder, groups=("vehicle", "MSC"), group_means=(12, 20),
                                animals_per_group=2, levels=("L3",), slide_every=0,
                                png_every=0, seed=3)
    ref = tmp_path_factory.mktemp("death_ref")
    with pytest.MonkeyPatch.context() as mp:
        register(mp, BLOB_SPEC)
        from histoquant.batch import run_batch

        assert run_batch(folder, ref).ok
    sections = pd.read_csv(ref / "sections.csv")
    return folder, truth, sections, {t: (ref / t).read_bytes() for t in TABLES}


def test_dead_worker_fails_its_image_only_and_resume_completes(study, tmp_path, monkeypatch):
    folder, _truth, sections, ref = study
    images = sorted(sections["image"].unique())
    assert len(images) >= 4
    victim = images[1]
    monkeypatch.setenv(_VICTIM, victim)
    register(monkeypatch, DYING_SPEC)
    from histoquant.cli import main

    status = main(["batch", str(folder), "-o", str(tmp_path), "--jobs", "2", "-q"])
    assert status == 1, "a failed image must show in the exit status"
    errors = pd.read_csv(tmp_path / "errors.csv")
    assert errors["image"].tolist() == [victim]
    assert errors["error"].tolist() == ["WorkerDied"]
    assert "alone" in errors["message"].iloc[0]
    measured = set(pd.read_csv(tmp_path / "sections.csv")["image"])
    assert measured == set(images) - {victim}, "every other image keeps its row"

    # Nothing dies any more (say, more memory): --resume measures only the victim and the
    # tables are those of a run in which nothing died.
    monkeypatch.delenv(_VICTIM)
    assert main(["batch", str(folder), "-o", str(tmp_path), "--jobs", "2", "-q",
                 "--resume"]) == 0
    assert not (tmp_path / "errors.csv").exists()
    assert {t: (tmp_path / t).read_bytes() for t in TABLES} == ref


def test_two_deaths_in_one_run_are_both_rows(study, tmp_path, monkeypatch):
    """Each death breaks the pool; the run still finishes with both victims as rows."""
    folder, _truth, sections, _ref = study
    images = sorted(sections["image"].unique())
    from histoquant.batch import run_batch

    register(monkeypatch, DYING_SPEC)
    victims = [images[0], images[-1]]
    monkeypatch.setenv(_VICTIM, ",".join(victims))
    report = run_batch(folder, tmp_path, jobs=2)
    assert not report.ok
    assert sorted(e["image"] for e in report.errors) == sorted(victims)
    assert report.n_run == len(images) - 2
    measured = set(pd.read_csv(tmp_path / "sections.csv")["image"])
    assert measured == set(images) - set(victims)
