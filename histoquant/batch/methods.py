"""``methods.md``: the study run as a methods paragraph, ready to paste into a paper.

Everything in it is read from the run's record (``run.json``, :func:`~.writers.run_record`)
and its section table, so the text says what was done, not what the defaults would have
done: every parameter that differs from its default (with the default beside it), how each
threshold was set, the engines and learned models (with the model file's SHA-256), the
software versions, the number of animals and sections per group, the sections excluded and
why, and the statistics.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from ..assays.base import get_assay

__all__ = ["changed_params", "methods_text"]

_KEY_VERSIONS = ("histoquant", "python", "numpy", "scipy", "scikit-image", "pandas",
                 "statsmodels", "scikit-learn", "cellpose", "torch")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return a == b


def _value(v: Any, unit: str | None) -> str:
    if isinstance(v, (list, tuple)):
        text = ", ".join(_value(x, None) for x in v)
    elif isinstance(v, float):
        text = f"{v:g}"
    else:
        text = str(v)
    return f"{text} {unit}" if unit else text


def changed_params(assay: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Return the parameters of a run that differ from the assay's defaults.

    Parameters
    ----------
    assay : str
        The assay name.
    params : mapping
        The parameters the run used (``run.json``'s ``assays[assay]["params"]``).

    Returns
    -------
    list of dict
        ``name``, ``value``, ``default``, ``unit`` and ``help`` of each changed parameter,
        in declaration order.
    """
    spec = get_assay(assay)
    defaults = spec.params_cls().to_dict()
    out = []
    for info in spec.params_cls.field_info():
        name = info["name"]
        if name in params and not _same(params[name], defaults.get(name)):
            out.append({"name": name, "value": params[name], "default": defaults.get(name),
                        "unit": info.get("unit") or "", "help": info.get("help") or ""})
    return out


def _counts(sections: pd.DataFrame, assay: str, groups: Sequence[str]) -> str:
    rows = sections[sections["assay"] == assay] if "assay" in sections else sections.iloc[:0]
    if "excluded" in rows:
        rows = rows[~rows["excluded"].fillna(False).astype(bool)]
    if rows.empty:
        return "no section"
    per = []
    keys = rows.assign(_sec=rows["image"].astype(str) + "\x00" + rows["section"].astype(str))
    has_group = "group" in keys and keys["group"].notna().any()
    for g, df in (keys.groupby("group", sort=False) if has_group else [(None, keys)]):
        n_animals, n_sections = df["animal"].nunique(), df["_sec"].nunique()
        text = f"{n_sections} section{'s' * (n_sections != 1)} from {n_animals} " \
               f"animal{'s' * (n_animals != 1)}"
        per.append((str(g), text) if g is not None else (None, text))
    if has_group:
        order = {g: i for i, g in enumerate(groups)}
        per.sort(key=lambda t: order.get(t[0], len(order)))
        return "; ".join(f"{g}: {t}" for g, t in per)
    return per[0][1]


def _regions(regions: Any, sections: pd.DataFrame, assay: str) -> str:
    names: list[str] = []
    if "region" in sections and "assay" in sections:
        names = list(dict.fromkeys(sections.loc[sections["assay"] == assay, "region"]
                                   .dropna().astype(str)))
    if regions in (None, "", "none"):
        if names and names != ["image"]:
            return f"in the regions {', '.join(names)}, from the region files the sample " \
                   "sheet names"
        return "in the whole image"
    if regions == "auto":
        return "in the regions found by histoquant's anatomy module (automatic outline of " \
               "the section, grey matter and horns)"
    return f"in regions drawn by hand ({regions})"


def _threshold_sentence(assay: str, record: Mapping[str, Any]) -> str:
    thr = (record.get("study_thresholds") or {}).get(assay)
    if not thr:
        return ""
    source = thr.get("from_group", "all")
    who = "every section of the study" if source in (None, "all") else \
        f"the sections of the {source} group"
    n = thr.get("n_sections")
    n_text = f" ({n} sections)" if n else ""
    value = thr.get("value", thr.get("threshold"))
    value_text = f" of {value:.4g}" if isinstance(value, (int, float)) else ""
    method = thr.get("method", "")
    how = f" by {method}" if method else ""
    return (f" One threshold{value_text} was applied to every section, computed{how} from "
            f"the pooled pixels of {who}{n_text}, each section weighted equally, so that all "
            "groups were measured on the same intensity scale.")


def _exclusions(sections: pd.DataFrame) -> list[str]:
    if "excluded" not in sections:
        return []
    ex = sections[sections["excluded"].fillna(False).astype(bool)]
    if ex.empty:
        return []
    ex = ex.drop_duplicates(["assay", "image", "section"])
    reason = ex["exclusion_reason"].fillna("no reason given") if "exclusion_reason" in ex \
        else pd.Series("no reason given", index=ex.index)
    lines = []
    for (assay, why), df in ex.assign(_why=reason).groupby(["assay", "_why"], sort=False):
        names = ", ".join(f"{i}" + (f" section {s}" if str(s) not in ("", "1", "nan") else "")
                          for i, s in zip(df["image"], df["section"], strict=True))
        lines.append(f"- {assay}: {len(df)} section{'s' * (len(df) != 1)} excluded ({why}): "
                     f"{names}")
    return lines


def methods_text(record: Mapping[str, Any], sections: pd.DataFrame, *,
                 groups: Sequence[str] = (), statistics: str | None = None,
                 blinding: str | None = None) -> str:
    """Return the methods paragraph of a study run, in Markdown.

    Parameters
    ----------
    record : mapping
        The run's record (``run.json``).
    sections : pandas.DataFrame
        The section table (with ``excluded`` and ``exclusion_reason`` when sections were
        excluded).
    groups : sequence of str
        Group order.
    statistics : str, optional
        The statistics sentence(s) (:func:`histoquant.batch.statistics.describe_statistics`).
    blinding : str, optional
        ``"blinded"``: a blinded run (groups withheld); ``"unblinded"``: the outputs of
        ``histoquant unblind`` after a blinded run. The text says so.

    Returns
    -------
    str
        Markdown: one paragraph per assay, then exclusions, statistics and software.
    """
    versions = record.get("versions") or {}
    hq = record.get("histoquant") or versions.get("histoquant", "")
    lines = ["# Methods", ""]
    title = (record.get("study_config") or {}).get("title")
    if title:
        lines += [f"*{title}*", ""]
    for assay, info in (record.get("assays") or {}).items():
        spec = get_assay(assay)
        params = info.get("params") or {}
        text = (f"**{spec.title}.** Images were measured with histoquant {hq} "
                f"(assay `{assay}`) {_regions(info.get('regions'), sections, assay)}")
        px = info.get("pixel_size_um")
        text += f", at a pixel size of {px:g} µm" if isinstance(px, (int, float)) else \
            ", at the pixel size recorded in each file"
        text += f" ({_counts(sections, assay, groups)})."
        engine = params.get("engine")
        if engine:
            text += f" Objects were segmented with the {engine} engine."
        model = info.get("model")
        if model:
            sha = model.get("sha256") if isinstance(model, Mapping) else None
            path = model.get("path") if isinstance(model, Mapping) else model
            text += (f" A learned model (`{path}`" + (f", SHA-256 {sha}" if sha else "")
                     + ") replaced the step its kind names (see docs/learning.md).")
        changed = changed_params(assay, params)
        if changed:
            text += " Parameters that differ from histoquant's defaults: " + "; ".join(
                f"{c['name']} = {_value(c['value'], c['unit'])} (default "
                f"{_value(c['default'], c['unit'])})" for c in changed) + "."
        else:
            text += " Every parameter was at histoquant's default."
        text += _threshold_sentence(assay, record)
        lines += [text, ""]
    excl = _exclusions(sections)
    lines += ["**Exclusions.**" + (" Sections were excluded by the rules declared in the "
                                   "study file, before any statistics:" if excl else
                                   " No section was excluded."), *excl, ""]
    if blinding == "blinded":
        lines += ["**Blinding.** This run is blind: animal and section names are coded and "
                  "group membership is withheld from every output; statistics follow "
                  "`histoquant unblind`.", ""]
    elif blinding == "unblinded":
        lines += ["**Blinding.** The images were measured blind: animal and section names "
                  "were coded and group membership withheld from every output until the "
                  "measurements (and any exclusions) were final; groups were then added with "
                  "`histoquant unblind`, which measured nothing again.", ""]
    if statistics:
        lines += [f"**Statistics.** {statistics}", ""]
    shown = [f"{k} {versions[k]}" for k in _KEY_VERSIONS if versions.get(k)]
    if shown:
        lines += ["**Software.** " + ", ".join(shown) + ".", ""]
    return "\n".join(lines).rstrip() + "\n"
