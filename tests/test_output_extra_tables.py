"""The runner writes an assay's extra tables (``result.tables``) beside summary.csv."""

from __future__ import annotations

import pandas as pd
import pytest

from histoquant.output import extra_tables, write_tables
from histoquant.results import AssayResult


def _result(name: str, rows: int) -> AssayResult:
    summary = pd.DataFrame({"image": [name], "region": ["image"], "n": [1]})
    profile = pd.DataFrame({"image": [name] * rows, "distance_um": list(range(rows))})
    return AssayResult("demo", name, pd.DataFrame({"image": []}), summary,
                       tables={"profiles": profile})


def test_extra_tables_are_concatenated_and_written(tmp_path):
    tables = write_tables([_result("a", 2), _result("b", 0), _result("c", 3)], tmp_path)
    written = pd.read_csv(tmp_path / "profiles.csv")
    assert list(written["image"]) == ["a", "a", "c", "c", "c"]
    assert len(tables["profiles"]) == 5


def test_no_extra_tables_writes_nothing_more(tmp_path):
    res = _result("a", 1)
    res.tables = {}
    write_tables([res], tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["objects.csv", "summary.csv"]


def test_reserved_names_are_refused():
    res = _result("a", 1)
    res.tables = {"summary": pd.DataFrame({"image": ["a"]})}
    with pytest.raises(ValueError, match="not allowed"):
        extra_tables([res])
