"""The study report opens with the endpoints, links each dot to its animal's QC pictures,
lists the excluded sections and shows the statistics it is given (#18)."""

from __future__ import annotations

import io
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from histoquant.batch.report import animal_anchors, build_report
from histoquant.batch.tables import StudyTables, animal_table

GROUPS = ("vehicle", "MSC")
# animal → group; "M 4/x" checks that an awkward name still gives a working anchor
ANIMALS = {"V1": "vehicle", "V2": "vehicle", "V3": "vehicle",
           "M1": "MSC", "M2": "MSC", "M3": "MSC", "M 4/x": "MSC"}
EXCLUDED = ("nissl_V1_s2", "2")  # (image, section) excluded by a study rule
REASON = "anatomy quality 0.31 < 0.5"


def _sections() -> pd.DataFrame:
    rng = np.random.default_rng(18)
    rows = []
    for a, g in ANIMALS.items():
        for s in ("1", "2"):
            for horn in ("ventral_horn_left", "ventral_horn_right"):
                rows.append({"assay": "motor-neurons", "animal": a, "group": g, "level": "L4",
                             "section": s, "image": f"nissl_{a}_s{s}", "region": horn,
                             "file": f"nissl_{a}_s{s}.tif",
                             "n_motor_neurons": int(rng.integers(3, 20)),
                             "mean_motor_neuron_area_um2": float(rng.uniform(500, 900)),
                             "region_area_mm2": float(rng.uniform(0.3, 0.5))})
        if g == "MSC":  # GFP+ cells: MSC animals only, per level (median and IQR)
            for level in ("L3", "L4"):
                rows.append({"assay": "gfp-cells", "animal": a, "group": g, "level": level,
                             "section": "1", "image": f"gfp_{a}_{level}", "region": "tissue",
                             "file": f"gfp_{a}_{level}.tif",
                             "n_gfp_cells": int(rng.integers(0, 12)),
                             "region_area_mm2": float(rng.uniform(0.9, 1.2))})
    return pd.DataFrame(rows)


def _png(colour: tuple[int, int, int]) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buf, format="PNG")
    return buf.getvalue()


def _units(sections: pd.DataFrame) -> list[dict]:
    units = []
    for (assay, image, file, animal, group), _ in sections.groupby(
            ["assay", "image", "file", "animal", "group"], sort=False):
        units.append({"key": f"{assay}:{image}", "assay": assay, "image": image, "file": file,
                      "animal": animal, "group": group, "flags": []})
    units[1]["flags"] = ["saturated 2.1 %"]
    # a failed image of V2: no row in the tables, its animal known from the sample sheet
    units.append({"key": "motor-neurons:nissl_V2_s3", "assay": "motor-neurons",
                  "image": "nissl_V2_s3", "file": "nissl_V2_s3.tif", "animal": "V2",
                  "group": "vehicle", "flags": ["failed: ImageReadError"],
                  "error": {"image": "nissl_V2_s3", "file": "nissl_V2_s3.tif",
                            "assay": "motor-neurons", "error": "ImageReadError",
                            "message": "truncated file"}})
    return units


def _report(statistics: pd.DataFrame | None = None, excluded: bool = True) -> str:
    sections = _sections()
    animals = animal_table(sections, GROUPS)
    if excluded:
        sections["excluded"] = False
        sections["exclusion_reason"] = ""
        hit = (sections["image"] == EXCLUDED[0]) & (sections["section"] == EXCLUDED[1])
        sections.loc[hit, "excluded"] = True
        sections.loc[hit, "exclusion_reason"] = REASON
    errors = pd.DataFrame([{"file": "nissl_V2_s3.tif", "assay": "motor-neurons",
                            "error": "ImageReadError", "message": "truncated file"}])
    tables = StudyTables(objects=pd.DataFrame(), sections=sections, animals=animals,
                         errors=errors, groups=GROUPS)
    units = _units(_sections())
    thumbs = {u["key"]: _png((10 * i % 255, 80, 160)) for i, u in enumerate(units)
              if "error" not in u}
    links = {u["key"]: f"qc/{u['assay']}/{u['image']}.png" for u in units if "error" not in u}
    return build_report(tables, units, thumbs, title="t", run_info={"histoquant": "x"},
                        notes=["a note"], statistics=statistics, qc_links=links)


def _hand_values() -> pd.DataFrame:
    """Per animal, by hand: the mean of its section × horn rows (soma area weighted by count)."""
    s = _sections()
    s = s[~((s["image"] == EXCLUDED[0]) & (s["section"] == EXCLUDED[1]))]
    mn = s[s["assay"] == "motor-neurons"]
    rows = []
    for a, df in mn.groupby("animal"):
        w = df["n_motor_neurons"].to_numpy(float)
        rows.append({"endpoint": "motor_neurons_per_ventral_horn", "animal": a, "level": "",
                     "value": df["n_motor_neurons"].mean()})
        rows.append({"endpoint": "motor_neuron_soma_area", "animal": a, "level": "",
                     "value": float((df["mean_motor_neuron_area_um2"] * w).sum() / w.sum())})
    gfp = s[s["assay"] == "gfp-cells"]
    for a, df in gfp.groupby("animal"):
        rows.append({"endpoint": "gfp_cells_per_section", "animal": a, "level": "",
                     "value": df["n_gfp_cells"].mean()})
        for level, d in df.groupby("level"):
            rows.append({"endpoint": "gfp_cells_per_section_by_level", "animal": a,
                         "level": level, "value": float(d["n_gfp_cells"].mean())})
    out = pd.DataFrame(rows)
    out["group"] = out["animal"].map(ANIMALS)
    return out


def _cards(page: str) -> dict[str, str]:
    """Endpoint name → the HTML of its card."""
    start = page.index("<section id='endpoints'>")
    page = page[start:page.index("</section>", start)]
    parts = re.split(r"<div class='ep' id='ep-", page)[1:]
    return {p.split("'", 1)[0]: p for p in parts}


@pytest.fixture(scope="module")
def page() -> str:
    return _report()


def test_endpoints_come_before_any_other_plot(page):
    start = page.index("<section id='endpoints'>")
    end = page.index("</section>", start)
    first_svg = page.index("<svg")
    assert start < first_svg < end
    # every other plot (the folded measures) comes after the endpoints and the QC pictures
    others = [m.start() for m in re.finditer("<svg", page) if m.start() > end]
    assert others and min(others) > page.index("<section id='measures'>")
    assert page.index("id='animals'") < page.index("<section id='measures'>")
    # the measures are folded, the technical ones in their own fold
    assert re.search(r"<details class='assay' id='measures-motor-neurons'>", page)
    assert "<summary>Technical measures of motor-neurons (1): region_area_mm2" in page


def test_one_dot_per_animal_at_its_value(page):
    cards = _cards(page)
    truth = _hand_values()
    assert set(cards) == set(truth["endpoint"])
    for endpoint, card in cards.items():
        dots = re.findall(r"<circle [^>]*data-animal='([^']*)' data-value='([^']*)'", card)
        want = truth[truth["endpoint"] == endpoint]
        assert len(dots) == len(want)  # one per animal (× level for a by_level endpoint)
        got = sorted((html_unescape(a), float(v)) for a, v in dots)
        exp = sorted(zip(want["animal"], want["value"]))
        assert [a for a, _ in got] == [a for a, _ in exp]
        np.testing.assert_allclose([v for _, v in got], [v for _, v in exp], rtol=1e-12)
    # by level: one panel per level, each with the MSC animals only
    assert cards["gfp_cells_per_section_by_level"].count("class='panel'") == 2
    assert "n = 4" in cards["gfp_cells_per_section"]


def html_unescape(text: str) -> str:
    import html

    return html.unescape(text)


def test_summary_table_equals_mean_and_sem_by_hand(page):
    cards = _cards(page)
    truth = _hand_values()
    for endpoint in ("motor_neurons_per_ventral_horn", "motor_neuron_soma_area"):
        rows = re.findall(r"<tr class='summary'[^>]*data-group='([^']*)' data-n='(\d+)' "
                          r"data-centre='[^']*' data-low='[^']*' data-high='[^']*' "
                          r"data-mean='([^']*)' data-sem='([^']*)'>(.*?)</tr>",
                          cards[endpoint])
        assert [r[0] for r in rows] == list(GROUPS)
        for group, n, mean, sem, cells in rows:
            v = truth[(truth["endpoint"] == endpoint) & (truth["group"] == group)]["value"]
            v = v.to_numpy(float)
            assert int(n) == len(v)
            assert float(mean) == pytest.approx(v.mean(), rel=1e-12)
            assert float(sem) == pytest.approx(v.std(ddof=1) / np.sqrt(len(v)), rel=1e-12)
            shown = re.search(r"<td>([-\d.,]+) ± ([\d.,]+)</td>", cells)
            assert shown, cells
            assert float(shown.group(1).replace(",", "")) == pytest.approx(
                v.mean(), abs=float(shown.group(2)) / 10)
    rows = re.findall(r"<tr class='summary'[^>]*data-level='(L\d)' data-group='MSC' "
                      r"data-n='(\d+)' [^>]*data-median='([^']*)' data-q1='([^']*)' "
                      r"data-q3='([^']*)'>", cards["gfp_cells_per_section_by_level"])
    assert [r[0] for r in rows] == ["L3", "L4"]
    for level, n, med, q1, q3 in rows:
        v = truth[(truth["endpoint"] == "gfp_cells_per_section_by_level")
                  & (truth["level"] == level)]["value"].to_numpy(float)
        assert int(n) == 4
        assert (float(q1), float(med), float(q3)) == pytest.approx(
            tuple(np.percentile(v, [25, 50, 75])))


def test_every_link_inside_the_page_resolves(page):
    ids = set(re.findall(r"\bid='([^']+)'", page))
    targets = re.findall(r"href='#([^']*)'", page)
    assert targets and set(targets) <= ids
    anchors = animal_anchors(ANIMALS)
    assert anchors["M 4/x"] == "animal-M_4_x"
    # each dot and each name in the table goes to its animal, whose block holds its pictures
    cards = _cards(page)
    dot_links = re.findall(r"<a href='#([^']*)' class='dot'><circle [^>]*data-animal='([^']*)'",
                           cards["motor_neurons_per_ventral_horn"])
    assert {html_unescape(a) for _, a in dot_links} == set(ANIMALS)
    for target, animal in dot_links:
        animal = html_unescape(animal)
        assert target == anchors[animal]
        block = page[page.index(f"id='{target}'"):]
        block = block[:block.index("<div class='animal'", 10)] if \
            "<div class='animal'" in block[10:] else block
        assert f"nissl_{animal}_s1.tif" in html_unescape(block)
        assert f"href='qc/motor-neurons/nissl_{animal}_s1.png'" in html_unescape(block)
    table_links = re.findall(r"<td class='l'>((?:<a href='#[^']*'>[^<]*</a> ?)+)</td>",
                             cards["motor_neurons_per_ventral_horn"])
    assert len(table_links) == 2


def test_excluded_sections_are_listed_and_left_out(page):
    box = page[page.index("<div class='box' id='excluded'>"):]
    box = html_unescape(box[:box.index("</div>")])
    assert "Excluded sections (1)" in box and REASON in box and EXCLUDED[0] in box
    assert page.index("id='excluded'") < page.index("id='animals'")
    # the excluded section is named on its picture, and its values are not in the dot
    assert "section 2 excluded: " + REASON in html_unescape(page)
    plain = _report(excluded=False)
    v1 = re.compile(r"data-animal='V1' data-value='([^']*)'")
    assert v1.search(page).group(1) != v1.search(plain).group(1)
    assert "Excluded sections" not in plain


def test_failures_and_flags_are_near_the_top(page):
    assert "Failures (1)" in page and page.index("Failures (1)") < page.index("id='animals'")
    assert "Flagged images (1)" in page
    # the failed image sits with its animal, marked
    block = page[page.index("id='animal-V2'"):page.index("id='animal-V3'")]
    assert "card failed" in block and "truncated file" in block


def test_statistics_are_shown_when_given_and_never_computed_otherwise(page):
    assert "No statistics were given" in page
    assert "Welch" not in page and "Hedges" not in page
    stats = pd.DataFrame([{
        "endpoint": "motor_neurons_per_ventral_horn", "level": "all", "group": "MSC",
        "reference": "vehicle", "n": 4, "ref_n": 3, "welch_t": 2.345, "welch_p": 0.0412,
        "mwu_u": 11.0, "mwu_p": 0.0571, "hedges_g": 1.61, "hedges_g_ci_low": 0.12,
        "hedges_g_ci_high": 3.1, "mixed_coef": 4.2, "mixed_ci_low": 0.5,
        "mixed_ci_high": 7.9, "mixed_p": 0.0264, "welch_p_holm": 0.1648,
        "mwu_p_holm": 0.2284, "mixed_p_holm": 0.1056, "note": "small n",
        "new_column": "kept"}])
    with_stats = html_unescape(_report(stats))
    assert "No statistics were given" not in with_stats
    for text in ("Welch t", "Welch p (Holm)", "Mann–Whitney U", "mixed model p (Holm)",
                 "Hedges' g [95 % CI]", "1.61 [0.12, 3.1]", "4.2 [0.5, 7.9]", "0.041",
                 "0.165", "small n", "Motor neurons per ventral horn"):
        assert text in with_stats, text
    assert "new_column" not in with_stats  # the rest is in statistics.csv
    card = _cards(with_stats)["motor_neurons_per_ventral_horn"]  # unescaped: ids plain
    assert "Hedges' g 1.61 [0.12, 3.1]" in card and "Welch p 0.041 (Holm 0.165)" in card
    # fewer columns (names may change): what is there is shown, nothing breaks
    few = html_unescape(_report(stats[["endpoint", "group", "reference", "welch_p", "hedges_g"]]))
    assert "Welch p" in few and "1.61" in few and "(Holm" not in few


def test_the_page_fetches_nothing_from_elsewhere(page):
    assert "<script" not in page and "<link" not in page and "@import" not in page
    assert "url(" not in page
    for attr in re.findall(r"\b(?:src|href)='([^']*)'", page):
        assert attr.startswith(("#", "data:image/png;base64,", "qc/")), attr
    assert not re.search(r"(?:src|href)=\"", page)  # every attribute quoted as above


def test_a_study_where_every_image_failed_still_gets_a_page():
    units = [{"key": "k1", "assay": "motor-neurons", "image": "a", "file": "a.tif",
              "animal": "R1", "group": "vehicle", "flags": ["failed: ImageReadError"],
              "error": {"error": "ImageReadError", "message": "not an image"}}]
    tables = StudyTables(objects=pd.DataFrame(), sections=pd.DataFrame(),
                         animals=pd.DataFrame(), groups=("vehicle",),
                         errors=pd.DataFrame([{"file": "a.tif", "error": "ImageReadError"}]))
    page = build_report(tables, units, {}, title="t", run_info={})
    assert "declares an endpoint" in page and "Failures (1)" in page
    assert "id='animal-R1'" in page and "not an image" in page
    ids = set(re.findall(r"\bid='([^']+)'", page))
    assert set(re.findall(r"href='#([^']*)'", page)) <= ids
