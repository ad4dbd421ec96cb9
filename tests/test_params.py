"""Parameter objects: validation, files, unknown keys."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from histoquant.errors import ParamsError
from histoquant.params import AssayParams, param


@dataclass(frozen=True)
class DemoParams(AssayParams):
    min_area_um2: float = param(100.0, unit="µm²", help="why", minimum=0)
    method: str = param("otsu", choices=("otsu", "fixed"))
    n_iter: int = param(3)
    flag: bool = param(False)
    scales_um: tuple[float, ...] = param((1.0, 2.0), unit="µm")
    threshold: float | None = param(None)


def test_defaults_and_field_info():
    info = {f["name"]: f for f in DemoParams.field_info()}
    assert info["min_area_um2"]["unit"] == "µm²"
    assert info["method"]["choices"] == ("otsu", "fixed")
    assert DemoParams().scales_um == (1.0, 2.0)


def test_from_dict_coerces_strings_from_cli_or_yaml():
    p = DemoParams.from_dict({"min_area_um2": "250", "n_iter": "5", "flag": "yes",
                              "scales_um": [1, 3], "threshold": 12})
    assert p.min_area_um2 == 250.0 and p.n_iter == 5 and p.flag is True
    assert p.scales_um == (1.0, 3.0) and p.threshold == 12.0


def test_unknown_key_lists_valid_ones():
    with pytest.raises(ParamsError, match=r"min_area_px.*Valid parameters: min_area_um2"):
        DemoParams.from_dict({"min_area_px": 3})


@pytest.mark.parametrize("bad", [{"min_area_um2": -1}, {"method": "magic"},
                                 {"n_iter": 2.5}, {"flag": "maybe"}, {"min_area_um2": "big"}])
def test_invalid_values(bad):
    with pytest.raises(ParamsError):
        DemoParams.from_dict(bad)


def test_files(tmp_path):
    (tmp_path / "p.yaml").write_text("min_area_um2: 42\nmethod: fixed\n")
    (tmp_path / "p.json").write_text('{"demo": {"n_iter": 7}}')
    assert DemoParams.from_file(tmp_path / "p.yaml").min_area_um2 == 42
    assert DemoParams.from_file(tmp_path / "p.json", section="demo").n_iter == 7
    (tmp_path / "bad.yaml").write_text("- a list\n")
    with pytest.raises(ParamsError, match="mapping"):
        DemoParams.from_file(tmp_path / "bad.yaml")
    with pytest.raises(ParamsError, match="cannot read"):
        DemoParams.from_file(tmp_path / "none.yaml")


def test_round_trip_and_replace():
    p = DemoParams(min_area_um2=5.0)
    assert DemoParams.from_dict(p.to_dict()) == p
    assert p.replace(n_iter=9).n_iter == 9
