"""Study statistics: every number checked against a hand formula or an R-documented example."""

import warnings
from math import comb

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from histoquant.batch.endpoints import (
    OBSERVATION_COLUMNS,
    endpoint_animal_values,
    endpoint_observations,
)
from histoquant.batch.statistics import (
    STATISTICS_COLUMN_DOCS,
    STATISTICS_COLUMNS,
    _holm,
    describe_statistics,
    study_statistics,
)
from histoquant.errors import ParamsError

# R's ``sleep`` data set (Student 1908), the example of R's t.test and wilcox.test help pages
SLEEP_1 = [0.7, -1.6, -0.2, -1.2, -0.1, 3.4, 3.7, 0.8, 0.0, 2.0]
SLEEP_2 = [1.9, 0.8, 1.1, 0.1, -0.1, 4.4, 5.5, 1.6, 4.6, 3.4]


def _obs(rows: list[tuple], endpoint: str = "e", by_level: bool = False) -> pd.DataFrame:
    """Observations from (animal, group, level, section, value) tuples."""
    df = pd.DataFrame(rows, columns=["animal", "group", "level", "section", "value"])
    df["endpoint"], df["assay"], df["measure"], df["label"] = endpoint, "a", "m", endpoint.upper()
    df["unit"], df["summary"], df["by_level"] = "count", "mean_sem", by_level
    df["image"] = df["animal"] + "_" + df["section"].astype(str)
    df["section"] = df["section"].astype(str)
    df["region"], df["weight"] = "image", 1.0
    return df[OBSERVATION_COLUMNS]


def _one_per_animal(values: dict[str, list[float]], endpoint: str = "e") -> pd.DataFrame:
    return _obs([(f"{g}{i}", g, "L4", 1, v) for g, vs in values.items()
                 for i, v in enumerate(vs)], endpoint)


def _stats(obs: pd.DataFrame, groups: list[str], **kw) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no library warning may escape
        return study_statistics(obs, endpoint_animal_values(obs), groups, **kw)


def test_columns_are_documented_in_order():
    assert STATISTICS_COLUMNS == list(STATISTICS_COLUMN_DOCS)
    assert all(STATISTICS_COLUMN_DOCS[c] for c in STATISTICS_COLUMNS)
    t = _stats(_one_per_animal({"ctl": [1, 2, 3], "trt": [2, 4, 5]}), ["ctl", "trt"])
    assert list(t.columns) == STATISTICS_COLUMNS


def test_every_column_is_in_the_user_guide():
    from pathlib import Path

    page = Path(__file__).parents[1] / "docs" / "statistics.md"
    if not page.exists():
        pytest.skip("docs not in this tree")
    text = page.read_text(encoding="utf-8")
    assert [c for c in STATISTICS_COLUMNS if f"`{c}`" not in text] == []


def test_welch_and_mann_whitney_match_r_sleep_example():
    # R: t.test(extra ~ group, data = sleep): t = -1.8608, df = 17.776, p-value = 0.07939
    #    wilcox.test(extra ~ group, data = sleep): W = 25.5, p-value = 0.06933
    t = _stats(_one_per_animal({"2": SLEEP_2, "1": SLEEP_1}), ["2", "1"]).iloc[0]
    assert (t["reference"], t["group"], t["n"], t["ref_n"]) == ("2", "1", 10, 10)
    assert t["welch_t"] == pytest.approx(-1.8608, abs=1e-4)
    assert t["welch_df"] == pytest.approx(17.776, abs=1e-3)
    assert t["welch_p"] == pytest.approx(0.07939, abs=1e-5)
    assert t["mwu_u"] == 25.5
    assert t["mwu_p"] == pytest.approx(0.06933, abs=1e-5)
    assert t["mean_diff"] == pytest.approx(np.mean(SLEEP_1) - np.mean(SLEEP_2))


def test_welch_against_hand_formula_and_descriptives():
    x, y = np.array([3.1, 4.2, 5.0, 6.3]), np.array([1.0, 2.2, 2.9])
    t = _stats(_one_per_animal({"veh": list(y), "msc": list(x)}), ["veh", "msc"]).iloc[0]
    vx, vy = x.var(ddof=1) / len(x), y.var(ddof=1) / len(y)
    want_t = (x.mean() - y.mean()) / np.sqrt(vx + vy)
    want_df = (vx + vy) ** 2 / (vx**2 / (len(x) - 1) + vy**2 / (len(y) - 1))
    assert t["welch_t"] == pytest.approx(want_t)
    assert t["welch_df"] == pytest.approx(want_df)
    assert t["welch_p"] == pytest.approx(2 * stats.t.sf(abs(want_t), want_df))
    assert t["mean"] == pytest.approx(x.mean()) and t["ref_mean"] == pytest.approx(y.mean())
    assert t["sd"] == pytest.approx(x.std(ddof=1))
    assert t["sem"] == pytest.approx(x.std(ddof=1) / 2)
    assert t["median"] == pytest.approx(4.6)
    # R's default quantile (type 7) of 3.1, 4.2, 5.0, 6.3: 3.925 and 5.325
    assert (t["q1"], t["q3"]) == (pytest.approx(3.925), pytest.approx(5.325))


def test_mann_whitney_exact_without_ties():
    # every treated animal below every reference animal: U = 0, exact p = 2 / C(7, 3)
    t = _stats(_one_per_animal({"ref": [4, 5, 6, 7], "trt": [1, 2, 3]}), ["ref", "trt"])
    assert t.iloc[0]["mwu_u"] == 0
    assert t.iloc[0]["mwu_p"] == pytest.approx(2 / comb(7, 3))
    assert "cannot reach p < 0.05" in t.iloc[0]["note"]  # 0.057: said so


def _hedges_by_hand(x: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Hedges & Olkin's g and the variance statsmodels (and RevMan) use."""
    n1, n2 = len(x), len(y)
    sp = np.sqrt(((n1 - 1) * x.var(ddof=1) + (n2 - 1) * y.var(ddof=1)) / (n1 + n2 - 2))
    g = (1 - 3 / (4 * (n1 + n2) - 9)) * (x.mean() - y.mean()) / sp
    var_revman = (n1 + n2) / (n1 * n2) + g**2 / (2 * (n1 + n2 - 3.94))
    var_textbook = (n1 + n2) / (n1 * n2) + g**2 / (2 * (n1 + n2))
    return g, var_revman, var_textbook


def test_hedges_g_and_ci_against_textbook_formula():
    x, y = np.array(SLEEP_1), np.array(SLEEP_2)
    t = _stats(_one_per_animal({"2": SLEEP_2, "1": SLEEP_1}), ["2", "1"]).iloc[0]
    g, var, var_textbook = _hedges_by_hand(x, y)
    assert t["hedges_g"] == pytest.approx(g)
    z = stats.norm.ppf(0.975)
    assert t["hedges_g_ci_low"] == pytest.approx(g - z * np.sqrt(var))
    assert t["hedges_g_ci_high"] == pytest.approx(g + z * np.sqrt(var))
    # the convention matters little at n = 10 + 10 (the textbook 2N: under 1 % narrower) ...
    assert np.sqrt(var_textbook) / np.sqrt(var) == pytest.approx(1, abs=0.01)
    # ... and is conservative at 2 + 2 animals, where the normal approximation is poor anyway
    _, v2, v2_textbook = _hedges_by_hand(np.array([1.0, 2.0]), np.array([2.5, 4.0]))
    assert v2 > v2_textbook


def test_hedges_g_against_pingouin():
    pg = pytest.importorskip("pingouin")
    x, y = np.array([3.1, 4.2, 5.0, 6.3, 4.4]), np.array([1.0, 2.2, 2.9, 3.5])
    t = _stats(_one_per_animal({"veh": list(y), "msc": list(x)}), ["veh", "msc"]).iloc[0]
    assert t["hedges_g"] == pytest.approx(pg.compute_effsize(x, y, eftype="hedges"))


def _balanced(seed: int = 0, levels: tuple[str, ...] = ("L4",)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for g, shift in (("veh", 0.0), ("msc", 3.0)):
        for a in range(3):
            animal = rng.normal(0, 2.0)  # clear between-animal variance: not at the boundary
            for lv_i, lv in enumerate(levels):
                for s in range(4):
                    rows.append((f"{g}{a}", g, lv, f"{lv}_{s}",
                                 10 + shift + animal + 1.5 * lv_i + rng.normal(0, 1.0)))
    return _obs(rows)


def test_mixed_model_balanced_equals_anova_on_animal_means():
    obs = _balanced()
    t = _stats(obs, ["veh", "msc"]).iloc[0]
    means = obs.groupby(["group", "animal"])["value"].mean()
    m_trt, m_veh = means["msc"].to_numpy(), means["veh"].to_numpy()
    # balanced random intercept: the REML estimate is the difference of group means ...
    assert t["mixed_coef"] == pytest.approx(m_trt.mean() - m_veh.mean(), rel=1e-6)
    # ... its SE the pooled-variance SE of animal means, on animals − 2 df: Student's t
    student = stats.ttest_ind(m_trt, m_veh, equal_var=True)
    sp2 = (m_trt.var(ddof=1) + m_veh.var(ddof=1)) / 2
    assert t["mixed_se"] == pytest.approx(np.sqrt(sp2 * (1 / 3 + 1 / 3)), rel=1e-4)
    assert t["mixed_df"] == 4
    assert t["mixed_p"] == pytest.approx(student.pvalue, rel=1e-3)
    # nested ANOVA by hand: F(group) = MS_group / MS_animal(group) = t²
    v, grand = obs["value"], obs["value"].mean()
    ss_g = sum(len(d) * (d.mean() - grand) ** 2 for _, d in v.groupby(obs["group"]))
    group_mean = obs.groupby("group")["value"].transform("mean")
    animal_mean = obs.groupby("animal")["value"].transform("mean")
    ms_a = ((animal_mean - group_mean) ** 2).sum() / (6 - 2)
    assert (t["mixed_coef"] / t["mixed_se"]) ** 2 == pytest.approx(ss_g / 1 / ms_a, rel=1e-4)
    # and the variance components: MS_animal = σ²_e + 4 σ²_a, MS_error = σ²_e
    ms_e = ((v - animal_mean) ** 2).sum() / (24 - 6)
    assert t["mixed_residual_var"] == pytest.approx(ms_e, rel=1e-3)
    assert t["mixed_animal_var"] == pytest.approx((ms_a - ms_e) / 4, rel=1e-3)
    assert (t["mixed_n_obs"], t["mixed_n_animals"]) == (24, 6)
    assert t["mixed_formula"] == "value ~ group + (1 | animal)"
    assert t["mixed_ci_low"] < t["mixed_coef"] < t["mixed_ci_high"]


def test_mixed_model_adds_level_for_a_pooled_endpoint():
    obs = _balanced(1, levels=("L3", "L4"))
    t = _stats(obs, ["veh", "msc"]).iloc[0]
    assert t["mixed_formula"] == "value ~ group + level + (1 | animal)"
    means = obs.groupby(["group", "animal"])["value"].mean()
    # balanced over levels: the level effect does not move the group difference
    assert t["mixed_coef"] == pytest.approx(means["msc"].mean() - means["veh"].mean(), rel=1e-6)
    assert t["mixed_df"] == 4  # level varies within animals: not a between-animal effect


def test_by_level_endpoint_has_one_row_per_level():
    obs = _balanced(2, levels=("L3", "L4"))
    obs["by_level"] = True
    t = _stats(obs, ["veh", "msc"])
    assert t["level"].tolist() == ["L3", "L4"]
    assert (t["mixed_formula"] == "value ~ group + (1 | animal)").all()
    assert (t["mixed_n_obs"] == 24).all()  # of 48: one level each


def test_holm_hand_worked():
    t = pd.DataFrame({"welch_p": [0.01, 0.04, 0.03, np.nan], "mwu_p": [0.5, np.nan, 0.2, 0.1],
                      "mixed_p": np.nan})
    _holm(t)
    assert t["welch_p_holm"].tolist()[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert np.isnan(t["welch_p_holm"].iloc[3])  # no p: not in the family
    assert t["mwu_p_holm"].tolist() == pytest.approx([0.5, np.nan, 0.4, 0.3], nan_ok=True)
    assert t["mixed_p_holm"].isna().all()


def test_holm_family_is_every_endpoint_of_the_run():
    obs = pd.concat([_one_per_animal({"v": [1, 2, 3, 2.5], "m": [3, 4, 5, 4.2]}, "e1"),
                     _one_per_animal({"v": [1, 2, 3, 2.0], "m": [1.5, 2, 3.6, 2.2]}, "e2"),
                     _one_per_animal({"v": [5, 6, 7, 6.1], "m": [9, 8, 9.5, 10]}, "e3")])
    t = _stats(obs, ["v", "m"])
    assert t["endpoint"].tolist() == ["e1", "e2", "e3"]
    p = t["welch_p"].to_numpy()
    order = np.argsort(p)
    want = np.maximum.accumulate(np.minimum(1, p[order] * (3 - np.arange(3))))
    got = t["welch_p_holm"].to_numpy()[order]
    assert got == pytest.approx(want)


@pytest.mark.parametrize("values, groups, in_note", [
    ({"v": [1.0], "m": [2.0, 3.0]}, ["v", "m"], "fewer than 2 animals"),
    ({"v": [2.0, 2.0], "m": [2.0, 2.0]}, ["v", "m"], "every animal value equal"),
    ({"v": [2.0, 2.0], "m": [3.0, 3.0]}, ["v", "m"], "t and g undefined"),
    ({"v": [1.0, 2.0]}, ["v"], "only one group"),
    ({"m": [1.0, 2.0]}, ["v", "m"], "no animals in the reference"),
])
def test_edge_cases_are_notes_not_errors(values, groups, in_note):
    t = _stats(_one_per_animal(values), groups)
    assert len(t) == 1
    assert in_note in t.iloc[0]["note"]
    assert np.isnan(t.iloc[0]["welch_p"]) and np.isnan(t.iloc[0]["hedges_g"])


def test_nan_values_and_animals_without_values():
    obs = _one_per_animal({"v": [1.0, 2.0, 3.0], "m": [3.0, 4.0, 6.0]})
    animals = endpoint_animal_values(obs)
    animals.loc[0, "value"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = study_statistics(obs, animals, ["v", "m"]).iloc[0]
    assert (t["ref_n"], t["n"]) == (2, 3)
    assert "animals without a value left out" in t["note"]
    assert np.isfinite(t["welch_p"])


def test_one_observation_per_animal_is_said_not_fitted():
    t = _stats(_one_per_animal({"v": [1, 2, 3], "m": [3, 4, 6]}), ["v", "m"]).iloc[0]
    assert np.isfinite(t["welch_p"])
    assert np.isnan(t["mixed_coef"]) and np.isnan(t["mixed_p"])
    assert "one observation per animal" in t["mixed_note"]
    assert t["mixed_formula"] == ""


def test_regions_as_replicates_and_boundary_are_noted():
    # one section per animal, two horns each, no animal effect at all: REML puts the animal
    # variance on its boundary; statsmodels' warnings become the note
    rng = np.random.default_rng(3)
    rows = [(f"{g}{a}", g, "L4", 1, 5 + (g == "m") + rng.normal(0, 1))
            for g in ("v", "m") for a in range(4) for _ in range(2)]
    obs = _obs(rows)
    obs["region"] = ["left", "right"] * 8
    t = _stats(obs, ["v", "m"]).iloc[0]
    assert "regions, not sections" in t["mixed_note"]
    if t["mixed_animal_var"] < 1e-6:
        assert "boundary" in t["mixed_note"]
    assert t["mixed_df"] == 6


def test_weighted_endpoint_is_noted():
    obs = endpoint_observations(pd.DataFrame([
        {"assay": "motor-neurons", "animal": a, "group": g, "level": "L4", "section": s,
         "image": f"{a}{s}", "region": "ventral_horn_left", "n_motor_neurons": n,
         "mean_motor_neuron_area_um2": area}
        for a, g, s, n, area in [("A", "v", 1, 4, 500.0), ("A", "v", 2, 6, 520.0),
                                 ("B", "v", 1, 5, 480.0), ("B", "v", 2, 5, 470.0),
                                 ("C", "m", 1, 8, 600.0), ("C", "m", 2, 3, 640.0),
                                 ("D", "m", 1, 7, 610.0), ("D", "m", 2, 9, 590.0)]]))
    t = _stats(obs, ["v", "m"]).set_index("endpoint")
    assert "animal values are weighted" in t.loc["motor_neuron_soma_area", "mixed_note"]
    assert "weighted" not in t.loc["motor_neurons_per_ventral_horn", "mixed_note"]


def test_bad_reference_and_empty_input():
    obs = _one_per_animal({"v": [1.0, 2.0], "m": [3.0, 4.0]})
    with pytest.raises(ParamsError, match="not one of the study's groups"):
        study_statistics(obs, endpoint_animal_values(obs), ["v", "m"], reference="x")
    t = _stats(obs, ["v", "m"], reference="m").iloc[0]
    assert (t["reference"], t["group"]) == ("m", "v")
    empty = study_statistics(obs.iloc[:0], endpoint_animal_values(obs.iloc[:0]), ["v", "m"])
    assert empty.empty and list(empty.columns) == STATISTICS_COLUMNS


def test_describe_statistics_names_the_methods():
    t = _stats(_one_per_animal({"veh": [1, 2, 3], "msc": [2, 4, 5]}), ["veh", "msc"])
    text = describe_statistics(t)
    for word in ("Welch", "Mann–Whitney", "Hedges", "mixed model", "Holm", "(veh)",
                 "the 1 comparison of the 1 endpoint"):
        assert word in text
    assert "Holm" in describe_statistics()


def test_every_group_against_the_reference_only():
    obs = _one_per_animal({"veh": [1.0, 2.0, 3.0], "low": [2.0, 3.0, 4.5],
                           "high": [4.0, 5.0, 6.5]})
    t = _stats(obs, ["veh", "low", "high", "absent"])
    assert t["group"].tolist() == ["low", "high", "absent"]
    assert (t["reference"] == "veh").all()
    assert t.loc[2, "n"] == 0 and "no animals in the group" in t.loc[2, "note"]
    # both comparisons are in the Holm family (the absent group has no p)
    p = t["welch_p"].to_numpy()[:2]
    assert t["welch_p_holm"].tolist()[:2] == pytest.approx(
        [min(1, max(2 * p.min(), p.max())) if q == p.max() else 2 * p.min() for q in p])
