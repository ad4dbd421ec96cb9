"""The study's endpoints: the few measures a paper reports, as tidy tables.

Each assay declares its endpoints (:class:`~histoquant.assays.contract.Endpoint`). From the
section table this module builds

- the **observations**: one row per endpoint × section × region, the unit the mixed model
  sees (sections nested in animals);
- the **animal values**: one row per endpoint × animal (× level for a ``by_level``
  endpoint), the unit the group comparison sees, with the number of sections behind it.

The report's first panel, ``statistics.csv`` and the Prism project read these two tables and
nothing else, so they agree by construction.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence

import numpy as np
import pandas as pd

from ..assays.base import AssaySpec, get_assay
from ..assays.contract import Endpoint

__all__ = ["OBSERVATION_COLUMNS", "ANIMAL_VALUE_COLUMNS", "study_endpoints",
           "endpoint_regions", "endpoint_observations", "endpoint_animal_values"]

#: Columns of :func:`endpoint_observations`.
OBSERVATION_COLUMNS = ["endpoint", "assay", "measure", "label", "unit", "summary", "by_level",
                       "animal", "group", "level", "section", "image", "region", "value",
                       "weight"]
#: Columns of :func:`endpoint_animal_values`.
ANIMAL_VALUE_COLUMNS = ["endpoint", "assay", "measure", "label", "unit", "summary",
                        "by_level", "animal", "group", "level", "n_sections",
                        "n_observations", "regions", "value"]
_ALL_LEVELS = "all"


def study_endpoints(assays: Sequence[str]) -> list[tuple[AssaySpec, Endpoint]]:
    """Return the declared endpoints of the given assays, in assay then declaration order.

    Parameters
    ----------
    assays : sequence of str
        Assay names (as in the section table's ``assay`` column).

    Returns
    -------
    list of (AssaySpec, Endpoint)
        Every endpoint of those assays.
    """
    out = []
    for name in dict.fromkeys(assays):
        spec = get_assay(str(name))
        out.extend((spec, e) for e in spec.endpoints)
    return out


def endpoint_regions(endpoint: Endpoint, regions: Sequence[str]) -> list[str]:
    """Return the regions an endpoint reads among those the study measured.

    The first of ``endpoint.regions`` that matches any measured region wins; when none
    matches (a study measured on whole images), every region is read.

    Parameters
    ----------
    endpoint : Endpoint
        The endpoint.
    regions : sequence of str
        The regions in the study's rows of the endpoint's assay.

    Returns
    -------
    list of str
        The regions read, in the order given.
    """
    present = list(dict.fromkeys(str(r) for r in regions))
    for pattern in endpoint.regions:
        hit = [r for r in present if fnmatch.fnmatchcase(r, pattern)]
        if hit:
            return hit
    return present


def endpoint_observations(sections: pd.DataFrame) -> pd.DataFrame:
    """Return one row per endpoint × section × region of the section table.

    Parameters
    ----------
    sections : pandas.DataFrame
        The study's section table (``assay``, ``animal``, ``group``, ``level``, ``section``,
        ``image``, ``region`` and the measure columns). An ``excluded`` column, when there is
        one, drops the rows where it is true.

    Returns
    -------
    pandas.DataFrame
        :data:`OBSERVATION_COLUMNS`; rows with a missing value are left out.
    """
    if sections.empty or "assay" not in sections.columns:
        return pd.DataFrame(columns=OBSERVATION_COLUMNS)
    if "excluded" in sections.columns:
        sections = sections[~sections["excluded"].fillna(False).astype(bool)]
    frames = []
    for spec, e in study_endpoints(sections["assay"].dropna().unique()):
        rows = sections[sections["assay"] == spec.name]
        if e.measure not in rows.columns:
            continue
        rows = rows[rows["region"].astype(str).isin(endpoint_regions(e, rows["region"]))]
        value = pd.to_numeric(rows[e.measure], errors="coerce")
        weight = (pd.to_numeric(rows[e.weight], errors="coerce") if e.weight
                  and e.weight in rows.columns else pd.Series(1.0, index=rows.index))
        df = pd.DataFrame({
            "endpoint": e.name, "assay": spec.name, "measure": e.measure, "label": e.label,
            "unit": spec.measure(e.measure).unit, "summary": e.summary,
            "by_level": e.by_level,
            **{k: rows[k].astype(str) for k in ("animal", "group", "level", "section",
                                                "image", "region")},
            "value": value, "weight": weight})
        frames.append(df[np.isfinite(df["value"])])
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=OBSERVATION_COLUMNS)
    return pd.concat(frames, ignore_index=True)[OBSERVATION_COLUMNS]


def _animal_value(df: pd.DataFrame) -> float:
    w = df["weight"].to_numpy(float)
    v = df["value"].to_numpy(float)
    ok = np.isfinite(w) & (w > 0)
    if not ok.any():  # nothing to weigh by (no motor neurons: no mean soma area either)
        return float("nan")
    return float(np.average(v[ok], weights=w[ok]))


def endpoint_animal_values(observations: pd.DataFrame) -> pd.DataFrame:
    """Return one value per endpoint × animal (× level for a ``by_level`` endpoint).

    Parameters
    ----------
    observations : pandas.DataFrame
        From :func:`endpoint_observations`.

    Returns
    -------
    pandas.DataFrame
        :data:`ANIMAL_VALUE_COLUMNS`. ``level`` is ``"all"`` for an endpoint pooled over
        levels; ``regions`` lists the regions read (``;``-joined).
    """
    if observations.empty:
        return pd.DataFrame(columns=ANIMAL_VALUE_COLUMNS)
    obs = observations.copy()
    obs.loc[~obs["by_level"].astype(bool), "level"] = _ALL_LEVELS
    keys = ["endpoint", "assay", "measure", "label", "unit", "summary", "by_level", "animal",
            "group", "level"]
    rows = []
    for key, df in obs.groupby(keys, sort=False):
        rows.append({**dict(zip(keys, key)),
                     "n_sections": int((df["image"] + "\x00" + df["section"]).nunique()),
                     "n_observations": len(df),
                     "regions": ";".join(dict.fromkeys(df["region"])),
                     "value": _animal_value(df)})
    return pd.DataFrame(rows, columns=ANIMAL_VALUE_COLUMNS)
