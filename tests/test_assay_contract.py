"""The assay contract: every summary column declared, and combined by its declared rule."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from histoquant.aggregate import combine_sections, combine_tiles
from histoquant.assays import available_assays, get_assay
from histoquant.assays.contract import REGION_AREA, Measure, find_measure
from histoquant.errors import HistoquantError
from histoquant.results import ID_COLUMNS
from histoquant.testing import BLOB_SPEC

MN = get_assay("motor-neurons")


def _tile_rows(areas_um2: list[list[float]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Motor-neuron summary rows of tiles of one region, and their objects."""
    rows, objects = [], []
    for t, cells in enumerate(areas_um2):
        rows.append({"image": "s", "region": "vh", "tile": t, "region_area_mm2": 0.25,
                     "n_motor_neurons": len(cells),
                     "motor_neurons_per_mm2": len(cells) / 0.25,
                     "n_motor_neurons_with_nucleolus": 0, "n_somata": len(cells),
                     "mean_motor_neuron_area_um2": float(np.mean(cells)) if cells else np.nan,
                     "mean_motor_neuron_equivalent_diameter_um": np.nan,
                     "mean_soma_area_um2": float(np.mean(cells)) if cells else np.nan})
        objects += [{"image": "s", "region": "vh", "class": "motor_neuron", "area_um2": a,
                     "equivalent_diameter_um": 2 * np.sqrt(a / np.pi)} for a in cells]
    return pd.DataFrame(rows), pd.DataFrame(objects)


def test_a_mean_of_objects_over_tiles_is_the_mean_over_the_objects():
    # the case: a tile of 10 somata of 100 µm² and a tile of one of 500 µm²
    rows, objects = _tile_rows([[100.0] * 10, [500.0]])
    out = combine_tiles(rows, objects, MN.measure).iloc[0]
    assert out["mean_motor_neuron_area_um2"] == pytest.approx(1500 / 11)  # not 300
    assert out["mean_soma_area_um2"] == pytest.approx(1500 / 11)
    assert out["n_motor_neurons"] == 11
    assert out["region_area_mm2"] == pytest.approx(0.5)
    assert out["motor_neurons_per_mm2"] == pytest.approx(22.0)
    d = 2 * np.sqrt(np.array([100.0] * 10 + [500.0]) / np.pi)
    assert out["mean_motor_neuron_equivalent_diameter_um"] == pytest.approx(d.mean())
    assert "tile" not in out.index


def test_ratios_and_weighted_means_are_exact_over_unequal_tiles():
    ev = get_assay("evans-blue")
    rows = pd.DataFrame({
        "image": "s", "region": "gm", "region_area_mm2": [0.1, 0.3],
        "evb_positive_area_um2": [10_000.0, 3_000.0],       # 10 % and 1 %
        "evb_positive_area_pct": [10.0, 1.0],
        "extravascular_area_um2": [5_000.0, 0.0],
        "extravascular_fraction_pct": [50.0, 0.0],
        "mean_intensity": [4.0, 8.0],
        "threshold": [2.0, 2.0], "threshold_method": ["mad", "mad"],
        "saturation_flag": [False, True]})
    out = combine_tiles(rows, pd.DataFrame(), ev.measure).iloc[0]
    assert out["evb_positive_area_pct"] == pytest.approx(100 * 13_000 / 400_000)
    assert out["extravascular_fraction_pct"] == pytest.approx(100 * 5_000 / 13_000)
    assert out["mean_intensity"] == pytest.approx((0.1 * 4 + 0.3 * 8) / 0.4)
    assert out["threshold"] == 2.0 and out["threshold_method"] == "mad"
    assert bool(out["saturation_flag"]) is True


def test_a_region_flag_survives_tiling_only_when_every_tile_has_it():
    vs = get_assay("vasculature")
    rows = pd.DataFrame({"image": "s", "region": ["gm", "gm", "gm", "wm"],
                         "region_area_mm2": 0.1, "vessel_length_um": [0.0, 0.0, 5.0, 0.0],
                         "flags": ["no_vessels;no_pericytes", "no_pericytes", "no_pericytes",
                                   "no_vessels"]})
    out = combine_tiles(rows, pd.DataFrame(), vs.measure).set_index("region")
    assert out.loc["gm", "flags"] == "no_pericytes"   # one tile has vessels
    assert out.loc["wm", "flags"] == "no_vessels"
    # gfp-cells: "nothing on a flat background" holds for the image only if for every tile
    gfp = get_assay("gfp-cells")
    rows = pd.DataFrame({"image": "s", "region": "tissue", "region_area_mm2": 0.1,
                         "n_gfp_cells": [0, 3], "flag": ["no_tissue_or_signal", ""]})
    assert combine_tiles(rows, pd.DataFrame(), gfp.measure)["flag"].iloc[0] == ""


def test_an_undeclared_column_is_an_error_not_a_guess():
    rows = pd.DataFrame({"image": ["s"], "region": ["r"], "region_area_mm2": [1.0],
                         "n_mystery_cells": [3]})
    with pytest.raises(HistoquantError, match="n_mystery_cells.*does not declare"):
        combine_tiles(rows, pd.DataFrame(), MN.measure)


def test_sections_combine_per_animal_as_declared():
    sections = pd.DataFrame({
        "animal": "R1", "level": "L4", "region": "vh",
        "region_area_mm2": [0.2, 0.2], "n_motor_neurons": [10, 2],
        "motor_neurons_per_mm2": [50.0, 10.0], "n_motor_neurons_with_nucleolus": [5, 1],
        "n_somata": [20, 4], "mean_motor_neuron_area_um2": [100.0, 700.0],
        "mean_motor_neuron_equivalent_diameter_um": [11.0, 30.0],
        "mean_soma_area_um2": [80.0, 200.0]})
    out = combine_sections(sections, ["animal", "level", "region"], MN.measure).iloc[0]
    assert out["n_motor_neurons"] == 12                      # sum
    assert out["motor_neurons_per_mm2"] == pytest.approx(30.0)  # mean of sections
    assert out["mean_motor_neuron_area_um2"] == pytest.approx((10 * 100 + 2 * 700) / 12)
    assert out["mean_soma_area_um2"] == pytest.approx((20 * 80 + 4 * 200) / 24)
    ev = get_assay("evans-blue")
    tech = pd.DataFrame({"animal": ["R1", "R1"], "region": "gm", "threshold": [1.0, 3.0],
                         "evb_positive_area_pct": [2.0, 4.0]})
    out = combine_sections(tech, ["animal", "region"], ev.measure)
    assert "threshold" not in out.columns                    # technical: animal="none"
    assert out["evb_positive_area_pct"].iloc[0] == pytest.approx(3.0)


def test_declarations_are_checked():
    with pytest.raises(ValueError, match="reads 2 column"):
        Measure("x_pct", "%", tiles="ratio", of=("a",))
    with pytest.raises(ValueError, match="tiles must be one of"):
        Measure("x", "", tiles="average")
    with pytest.raises(ValueError, match="animal_weight"):
        Measure("x", "", animal="weighted")
    assert find_measure((REGION_AREA, Measure("n_rejected_*", "count")),
                        "n_rejected_thin").name == "n_rejected_*"
    assert find_measure((REGION_AREA,), "n_cells") is None


@pytest.mark.parametrize("spec", [*available_assays().values(), BLOB_SPEC],
                         ids=lambda s: s.name)
def test_every_declared_rule_reads_declared_columns(spec):
    names = {m.name for m in spec.measures}
    assert names, f"{spec.name} declares no summary column"
    for m in spec.measures:
        if m.tiles in ("ratio", "weighted"):
            for col in m.of:
                assert find_measure(spec.measures, col) is not None, (m.name, col)
        if m.animal == "weighted":
            assert find_measure(spec.measures, m.animal_weight) is not None, m.name
        assert m.unit is not None and m.help, f"{spec.name}.{m.name} has no help"


def summary_columns(summary: pd.DataFrame) -> list[str]:
    return [c for c in summary.columns if c not in ID_COLUMNS]


def test_every_assay_names_the_parameters_shown_first():
    """AssayParams.common: the few parameters a histologist changes most, that exist."""
    from histoquant.assays import available_assays

    for name, spec in available_assays().items():
        fields = [i["name"] for i in spec.params_cls.field_info()]
        common = spec.params_cls.common
        assert 3 <= len(common) <= 8, name
        assert set(common) <= set(fields), (name, set(common) - set(fields))
