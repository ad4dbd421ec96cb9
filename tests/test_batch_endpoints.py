"""Endpoints: declared per assay, read from the section table into observations and animals."""

import numpy as np
import pandas as pd
import pytest

from histoquant.assays.base import AssaySpec, available_assays, get_assay
from histoquant.assays.contract import Endpoint, Measure
from histoquant.batch.endpoints import (
    ANIMAL_VALUE_COLUMNS,
    endpoint_animal_values,
    endpoint_observations,
    endpoint_regions,
)
from histoquant.params import AssayParams


def _mn_sections() -> pd.DataFrame:
    rows = []
    # two animals; animal A: two sections × two horns, B: one section × two horns + whole image
    for animal, group, sec, region, n, area in [
        ("A", "vehicle", "1", "ventral_horn_left", 10, 500.0),
        ("A", "vehicle", "1", "ventral_horn_right", 6, 700.0),
        ("A", "vehicle", "2", "ventral_horn_left", 8, 400.0),
        ("A", "vehicle", "2", "ventral_horn_right", 0, np.nan),
        ("B", "MSC", "1", "ventral_horn_left", 3, 900.0),
        ("B", "MSC", "1", "ventral_horn_right", 5, 1000.0),
        ("B", "MSC", "1", "dorsal_horn_left", 99, 100.0),
    ]:
        rows.append({"assay": "motor-neurons", "animal": animal, "group": group, "level": "L4",
                     "section": sec, "image": f"{animal}_{sec}", "region": region,
                     "n_motor_neurons": n, "mean_motor_neuron_area_um2": area})
    return pd.DataFrame(rows)


def test_every_endpoint_reads_a_declared_measure():
    n = 0
    for name in available_assays():
        spec = get_assay(name)
        for e in spec.endpoints:
            spec.measure(e.measure)
            n += 1
    assert n >= 8  # MN ×2, EvB ×2, vessels ×3, GFP ×2


def test_undeclared_measure_is_refused():
    with pytest.raises(ValueError, match="not a declared summary column"):
        AssaySpec(name="x", title="x", params_cls=AssayParams, run=lambda *a, **k: None,
                  measures=(Measure("a", "count"),), endpoints=(Endpoint("e", "b", "B"),))
    with pytest.raises(ValueError, match="summary must be one of"):
        Endpoint("e", "a", "A", summary="mode")


def test_regions_first_matching_pattern_else_all():
    e = Endpoint("e", "a", "A", regions=("ventral_horn_*", "grey_matter"))
    assert endpoint_regions(e, ["grey_matter", "ventral_horn_left"]) == ["ventral_horn_left"]
    assert endpoint_regions(e, ["grey_matter", "tissue"]) == ["grey_matter"]
    assert endpoint_regions(e, ["image"]) == ["image"]


def test_animal_values_mean_per_horn_and_weighted_area():
    obs = endpoint_observations(_mn_sections())
    assert set(obs["region"]) == {"ventral_horn_left", "ventral_horn_right"}
    a = endpoint_animal_values(obs)
    assert list(a.columns) == ANIMAL_VALUE_COLUMNS
    a = a.set_index(["endpoint", "animal"])
    # A: (10 + 6 + 8 + 0) / 4 horns; B: (3 + 5) / 2 (the dorsal horn is not read)
    assert a.loc[("motor_neurons_per_ventral_horn", "A"), "value"] == pytest.approx(6.0)
    assert a.loc[("motor_neurons_per_ventral_horn", "B"), "value"] == pytest.approx(4.0)
    assert a.loc[("motor_neurons_per_ventral_horn", "A"), "n_sections"] == 2
    assert a.loc[("motor_neurons_per_ventral_horn", "A"), "n_observations"] == 4
    # soma area weighted by the motor neurons behind each mean; the empty horn has none
    want_a = (10 * 500 + 6 * 700 + 8 * 400) / 24
    assert a.loc[("motor_neuron_soma_area", "A"), "value"] == pytest.approx(want_a)
    assert a.loc[("motor_neuron_soma_area", "B"), "value"] == pytest.approx(
        (3 * 900 + 5 * 1000) / 8)
    assert (a["level"] == "all").all()


def test_excluded_rows_and_by_level():
    s = _mn_sections()
    s["excluded"] = [False, False, True, True, False, False, False]
    a = endpoint_animal_values(endpoint_observations(s)).set_index(["endpoint", "animal"])
    assert a.loc[("motor_neurons_per_ventral_horn", "A"), "value"] == pytest.approx(8.0)
    g = pd.DataFrame({"assay": "gfp-cells", "animal": ["A", "A", "A"], "group": "MSC",
                      "level": ["L2", "L2", "L3"], "section": ["1", "2", "1"],
                      "image": ["a", "b", "c"], "region": "tissue", "n_gfp_cells": [4, 6, 1]})
    v = endpoint_animal_values(endpoint_observations(g))
    by = v[v["endpoint"] == "gfp_cells_per_section_by_level"].set_index("level")["value"]
    assert by.to_dict() == {"L2": 5.0, "L3": 1.0}
    pooled = v[v["endpoint"] == "gfp_cells_per_section"]
    assert pooled["value"].tolist() == [pytest.approx(11 / 3)]
