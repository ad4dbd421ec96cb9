"""The same study gives byte-identical tables run again, with 2 processes, and on Dask."""

from __future__ import annotations

import sys

import pytest

from histoquant.errors import DependencyError
from histoquant.synthetic.study import write_phantom_study
from histoquant.testing import BLOB_SPEC, register

TABLES = ("objects.csv", "sections.csv", "long.csv", "sections_long.csv")


@pytest.fixture(scope="module")
def small_study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("small")
    write_phantom_study(folder, groups=("vehicle", "MSC"), group_means=(12, 20),
                        animals_per_group=2, levels=("L3", "L4"), slide_every=3, seed=11)
    return folder


@pytest.fixture
def blobs(monkeypatch):
    return register(monkeypatch, BLOB_SPEC)


def _tables(out):
    files = [out / t for t in TABLES] + sorted((out / "prism").glob("*.csv")) + sorted(
        (out / "tables").glob("*.csv"))
    return {f.relative_to(out).as_posix(): f.read_bytes() for f in files}


@pytest.fixture(scope="module")
def reference(small_study, tmp_path_factory):
    out = tmp_path_factory.mktemp("ref")
    with pytest.MonkeyPatch.context() as mp:
        register(mp, BLOB_SPEC)
        from histoquant.batch import run_batch

        assert run_batch(small_study, out, jobs=1).ok
    tables = _tables(out)
    assert len(tables) > 3
    return tables


def test_rerun_gives_identical_tables(small_study, reference, blobs, tmp_path):
    from histoquant.batch import run_batch

    assert run_batch(small_study, tmp_path, jobs=1).ok
    assert _tables(tmp_path) == reference


def test_two_processes_give_identical_tables(small_study, reference, blobs, tmp_path):
    from histoquant.cli import main

    assert main(["batch", str(small_study), "-o", str(tmp_path), "--jobs", "2", "-q"]) == 0
    assert _tables(tmp_path) == reference
    # the workbook, written by a spare process in a parallel run, holds the same tables
    import pandas as pd

    book = pd.read_excel(tmp_path / "study.xlsx", sheet_name=None)
    for name, file in (("blobs sections", "tables/blobs__sections.csv"),
                       ("blobs animals", "tables/blobs__animals.csv"),
                       ("long", "long.csv"), ("objects", "objects.csv")):
        csv = pd.read_csv(tmp_path / file)
        assert list(book[name].columns) == list(csv.columns)
        pd.testing.assert_frame_equal(book[name], csv, check_dtype=False)


def test_dask_local_cluster_gives_identical_tables(small_study, reference, blobs, tmp_path):
    distributed = pytest.importorskip("distributed")
    from histoquant.batch import run_batch

    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                                  dashboard_address=None) as cluster:
        report = run_batch(small_study, tmp_path, scheduler=cluster.scheduler_address)
    assert report.ok
    assert _tables(tmp_path) == reference


def test_missing_dask_is_a_clear_dependency_error(small_study, blobs, tmp_path, monkeypatch):
    from histoquant.batch import run_batch

    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(DependencyError, match=r"histoquant\[dask\]"):
        run_batch(small_study, tmp_path, scheduler="tcp://127.0.0.1:1")


def test_unreachable_scheduler_is_a_clear_error(small_study, blobs, tmp_path):
    pytest.importorskip("distributed")
    import dask

    from histoquant.batch import run_batch

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}), \
            pytest.raises(DependencyError, match="cannot reach the Dask scheduler"):
        run_batch(small_study, tmp_path, scheduler="tcp://127.0.0.1:9")


def test_workers_run_numerical_libraries_single_threaded(monkeypatch):
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor

    from histoquant.batch import execute as ex

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "3")  # a user's own setting is kept
    with ex._single_threaded_children():
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            env = {k: pool.submit(os.getenv, k).result()
                   for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    assert env == {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "3"}
    assert "OMP_NUM_THREADS" not in os.environ  # the parent is left as it was
