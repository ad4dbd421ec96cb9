"""Robust runs: an interrupted or killed run keeps what it finished, --resume redoes nothing
done and loses nothing; bad files become rows of errors.csv and the run goes on."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest
import tifffile

from histoquant.synthetic.study import write_phantom_study
from histoquant.testing import BLOB_SPEC, register, run_blobs

ROOT = Path(__file__).resolve().parents[1]
TABLES = ("objects.csv", "sections.csv", "long.csv", "tables/blobs__animals.csv")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resume_study")
    truth = write_phantom_study(folder, groups=("vehicle", "MSC"), group_means=(12, 20),
                                animals_per_group=2, levels=("L3", "L4"), slide_every=3,
                                seed=5)
    ref = tmp_path_factory.mktemp("resume_ref")
    with pytest.MonkeyPatch.context() as mp:
        register(mp, BLOB_SPEC)
        from histoquant.batch import run_batch

        assert run_batch(folder, ref).ok
    return folder, truth, {t: (ref / t).read_bytes() for t in TABLES}


def _counting_spec(seen: list[str], stop_after: int | None = None):
    """BLOB_SPEC that records each image it measures (once per image, not per tile)."""

    def run(image, regions=None, params=None, **kw):
        if image.name not in seen:
            if stop_after is not None and len(seen) >= stop_after:
                raise KeyboardInterrupt
            seen.append(image.name)
        return run_blobs(image, regions=regions, params=params, **kw)

    return dataclasses.replace(BLOB_SPEC, run=run)


def _parts(out: Path) -> list[Path]:
    return sorted((out / ".parts").glob("*.zip"))


def test_interrupt_then_resume_loses_nothing_and_redoes_nothing(study, tmp_path,
                                                                monkeypatch):
    folder, truth, ref = study
    from histoquant.batch import run_batch

    first: list[str] = []
    register(monkeypatch, _counting_spec(first, stop_after=5))
    with pytest.raises(KeyboardInterrupt):
        run_batch(folder, tmp_path)
    assert len(first) == 5
    assert len(_parts(tmp_path)) == 5
    assert not (tmp_path / "sections.csv").exists()  # no table that looks complete

    second: list[str] = []
    register(monkeypatch, _counting_spec(second))
    report = run_batch(folder, tmp_path, resume=True)
    assert report.ok
    assert report.n_reused == 5
    assert report.n_run == report.n_units - 5
    assert not set(first) & set(second)  # nothing measured twice
    assert len(first) + len(second) == truth["file"].nunique()  # nothing lost
    assert {t: (tmp_path / t).read_bytes() for t in TABLES} == ref


def test_killed_run_resumes(study, tmp_path, monkeypatch):
    folder, truth, ref = study
    script = textwrap.dedent(f"""
        import dataclasses, time
        from histoquant.assays import base
        from histoquant.testing import BLOB_SPEC, run_blobs

        def slow(image, **kw):
            time.sleep(0.15)
            return run_blobs(image, **kw)

        spec = dataclasses.replace(BLOB_SPEC, run=slow)
        original = base.available_assays
        base.available_assays = lambda: {{**original(), "blobs": spec}}
        from histoquant.batch import run_batch
        run_batch({str(folder)!r}, {str(tmp_path)!r})
        """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        deadline = time.monotonic() + 120
        while len(_parts(tmp_path)) < 3:
            assert proc.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    done_before = len(_parts(tmp_path))
    assert 3 <= done_before < truth["file"].nunique()
    assert not (tmp_path / "long.csv").exists()

    seen: list[str] = []
    register(monkeypatch, _counting_spec(seen))
    from histoquant.batch import run_batch

    report = run_batch(folder, tmp_path, resume=True)
    assert report.n_reused == done_before
    assert len(seen) == truth["file"].nunique() - done_before
    assert {t: (tmp_path / t).read_bytes() for t in TABLES} == ref


def test_changed_params_or_input_are_not_reused(study, tmp_path, monkeypatch):
    folder, _, _ = study
    register(monkeypatch, BLOB_SPEC)
    from histoquant.batch import plan_study

    base = {u.sample.rel: u.key for u in plan_study(folder, tmp_path).units}
    other = {u.sample.rel: u.key for u in plan_study(
        folder, tmp_path, overrides={"params": {"threshold": 0.5}}).units}
    assert set(base) == set(other)
    assert all(base[k] != other[k] for k in base)
    again = {u.sample.rel: u.key for u in plan_study(folder, tmp_path).units}
    assert again == base


def _add_bad_files(folder: Path) -> dict[str, str]:
    good = sorted(folder.glob("R01/*.ome.tif"))[0]
    (folder / "bad").mkdir()
    (folder / "bad" / "corrupt.tif").write_bytes(os.urandom(4000))
    data = good.read_bytes()
    (folder / "bad" / "truncated.ome.tif").write_bytes(data[: len(data) // 3])
    os.symlink(folder / "bad" / "gone.tif", folder / "bad" / "lost.tif")
    tifffile.imwrite(folder / "bad" / "blank.ome.tif", (255 * pd.Series([1]).to_numpy()
                     .astype("uint8").reshape(1, 1, 1).repeat(200, 0).repeat(200, 1)
                     .repeat(3, 2)), photometric="rgb",
                     metadata={"axes": "YXS", "PhysicalSizeX": 2.0, "PhysicalSizeY": 2.0})
    sheet = pd.read_csv(folder / "samples.csv", dtype=str, keep_default_na=False)
    rows = [{"file": f"bad/{n}", "animal": "R01", "group": sheet.loc[0, "group"],
             "level": "L5", "section": str(i)} for i, n in enumerate(
        ["corrupt.tif", "truncated.ome.tif", "lost.tif", "blank.ome.tif"], start=1)]
    pd.concat([sheet, pd.DataFrame(rows)]).fillna("").to_csv(folder / "samples.csv",
                                                            index=False)
    return {"bad/corrupt.tif": "ImageReadError", "bad/truncated.ome.tif": "ImageReadError",
            "bad/lost.tif": "ImageReadError", "bad/blank.ome.tif": "EmptyImageError"}


def test_bad_files_are_reported_and_the_run_completes(tmp_path, monkeypatch):
    folder = tmp_path / "study"
    truth = write_phantom_study(folder, groups=("vehicle", "MSC"), group_means=(8, 12),
                                animals_per_group=1, levels=("L3",), slide_every=0, seed=2)
    expected = _add_bad_files(folder)

    def buggy(image, regions=None, params=None, **kw):
        if image.name == "R02_L3_s2":
            raise RuntimeError("an assay bug")
        return run_blobs(image, regions=regions, params=params, **kw)

    register(monkeypatch, dataclasses.replace(BLOB_SPEC, run=buggy))
    expected["R02/R02_L3_s2.ome.tif"] = "RuntimeError"
    from histoquant.cli import main

    out = tmp_path / "out"
    assert main(["batch", str(folder), "-o", str(out), "-q"]) == 1
    errors = pd.read_csv(out / "errors.csv")
    assert dict(zip(errors["file"], errors["error"])) == expected
    assert errors["message"].str.len().min() > 10
    sections = pd.read_csv(out / "sections.csv")
    good = set(truth["file"]) - set(expected)
    assert set(sections["file"]) == good
    run = json.loads((out / "run.json").read_text())
    assert len(run["failures"]) == len(expected)
    bug = next(f for f in run["failures"] if f["error"] == "RuntimeError")
    assert "an assay bug" in bug["traceback"]
    html = (out / "report.html").read_text(encoding="utf-8")
    assert f"Failures ({len(expected)})" in html and "corrupt.tif" in html
    # a rerun with --resume retries only the failures
    seen: list[str] = []
    register(monkeypatch, _counting_spec(seen))
    assert main(["batch", str(folder), "-o", str(out), "-q", "--resume"]) == 1
    assert seen == ["R02_L3_s2"]  # the bad files fail again before the assay runs
    assert set(pd.read_csv(out / "errors.csv")["file"]) == set(expected) - {
        "R02/R02_L3_s2.ome.tif"}


def test_progress_callback_reports_and_can_cancel(study, tmp_path, monkeypatch):
    folder, truth, _ = study
    register(monkeypatch, BLOB_SPEC)
    from histoquant.batch import run_batch

    class Cancelled(Exception):
        pass

    calls = []

    def progress(done, total, message):
        calls.append((done, total))
        if done == 3:
            raise Cancelled  # how a GUI stops a run between images

    with pytest.raises(Cancelled):
        run_batch(folder, tmp_path, progress=progress)
    n = truth["file"].nunique()
    assert calls == [(0, n), (1, n), (2, n), (3, n)]
    assert len(_parts(tmp_path)) == 3
