"""The study's tables: objects, sections, animals, their tidy (long) forms, and Prism tables.

- ``objects``: one row per detected object, with the study metadata.
- ``sections``: one row per image × section × region × assay.
- ``animals``: one row per assay × animal × level × region; each measure combines over the
  animal's sections as its assay declares (:class:`~histoquant.assays.contract.Measure`:
  counts, areas and lengths summed; densities and fractions the mean of the sections; means of
  per-object values weighted by the number of objects; technical columns left out);
  ``n_sections`` says how many.
- ``long``: the animal table in tidy form, one row per animal × level × region × assay ×
  measure (:data:`LONG_COLUMNS`), with the measure's declared unit: what R (``ggplot2``,
  ``dplyr``), pandas and seaborn read without reshaping. ``sections_long`` is the same per
  section × region (:data:`SECTION_LONG_COLUMNS`), for mixed models with the animal as a
  random effect (``lme4``, ``statsmodels``).
- :func:`assay_tables`: the section or animal table split per assay, each piece holding only
  its assay's columns.
- Prism: per assay × measure × region × level, one row per animal and one column per group;
  per endpoint (:func:`endpoint_prism_tables`), the same shape for the ``.pzfx`` project.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..aggregate import combine_sections, measure_columns
from ..assays.base import AssaySpec, get_assay
from ..assays.contract import find_measure
from .samples import Sample, natural_key

__all__ = ["StudyTables", "assemble", "prism_tables", "group_order", "extra_table",
           "default_measures", "LONG_COLUMNS", "SECTION_LONG_COLUMNS", "long_table",
           "sections_long_table", "assay_tables", "endpoint_prism_tables"]

SECTION_IDS = ["image", "animal", "group", "level", "section", "region", "assay", "file"]
ANIMAL_IDS = ["animal", "group", "level", "region", "assay"]
#: Columns of :func:`long_table` (``n_sections``: the sections behind the animal's value).
LONG_COLUMNS = ["animal", "group", "level", "region", "assay", "measure", "unit", "value",
                "n_sections"]
#: Columns of :func:`sections_long_table`.
SECTION_LONG_COLUMNS = ["image", "animal", "group", "level", "section", "region", "assay",
                        "measure", "unit", "value"]


@dataclass
class StudyTables:
    """Every table of a study run.

    ``long`` and ``sections_long`` are the animal and section tables in tidy form
    (:func:`long_table`, :func:`sections_long_table`).
    """

    objects: pd.DataFrame
    sections: pd.DataFrame
    animals: pd.DataFrame
    prism: dict[tuple[str, str, str, str], pd.DataFrame] = field(default_factory=dict)
    errors: pd.DataFrame = field(default_factory=pd.DataFrame)
    groups: tuple[str, ...] = ()
    long: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=LONG_COLUMNS))
    sections_long: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=SECTION_LONG_COLUMNS))


def group_order(samples: Sequence[Sample], preferred: Sequence[str] = ()) -> tuple[str, ...]:
    """Return groups in the study file's order, then any others alphabetically.

    Parameters
    ----------
    samples : sequence of Sample
        The study's samples.
    preferred : sequence of str
        The group order of the study file.

    Returns
    -------
    tuple of str
        Every group of the samples, each once.
    """
    seen = {s.group for s in samples}
    return tuple([g for g in preferred if g in seen]
                 + sorted(seen - set(preferred), key=natural_key))


def _with_metadata(df: pd.DataFrame, sample: Sample, assay: str) -> pd.DataFrame:
    df = df.copy()
    df["image"] = sample.image
    df["animal"] = sample.animal
    df["group"] = sample.group
    df["level"] = sample.level
    df["assay"] = assay
    df["file"] = sample.rel
    if "section" not in df.columns:
        df["section"] = sample.section or "1"
    if "region" not in df.columns:
        df["region"] = "image"
    df["section"] = df["section"].astype(str)
    df["region"] = df["region"].astype(str)
    first = [c for c in SECTION_IDS if c in df.columns]
    return df[first + [c for c in df.columns if c not in first]]


def _sort(df: pd.DataFrame, keys: Sequence[str], groups: Sequence[str]) -> pd.DataFrame:
    if df.empty:
        return df
    rank = {g: i for i, g in enumerate(groups)}

    def key(col: pd.Series) -> pd.Series:
        if col.name == "group":
            return col.map(lambda g: rank.get(g, len(rank)))
        # Rank the few distinct values once (equal natural keys, equal rank) instead of
        # comparing a tuple key per row: the objects table has tens of thousands of rows.
        text = col.astype(str)
        keys = {v: natural_key(v) for v in text.unique()}
        order = {k: i for i, k in enumerate(sorted(set(keys.values())))}
        return text.map({v: order[k] for v, k in keys.items()})

    return df.sort_values(list(keys), key=key, kind="stable").reset_index(drop=True)


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=SECTION_IDS)
    return pd.concat(frames, ignore_index=True, sort=False)


def assemble(
    parts: Sequence[tuple[Sample, str, pd.DataFrame, pd.DataFrame]],
    *,
    groups: Sequence[str],
    errors: Sequence[Mapping[str, str]] = (),
    measures: Mapping[str, Sequence[str]] | None = None,
) -> StudyTables:
    """Build every study table from the finished units.

    Parameters
    ----------
    parts : sequence of (Sample, assay, summary, objects)
        One per finished unit, in a fixed order (the result does not depend on it).
    groups : sequence of str
        Group order for rows and Prism columns.
    errors : sequence of mapping
        One per failed unit.
    measures : mapping, optional
        Assay → measure columns for the Prism tables (default: every measure).

    Returns
    -------
    StudyTables
        Section, animal, object, error, long and Prism tables.
    """
    sections = _concat([_with_metadata(s, smp, a) for smp, a, s, _ in parts])
    objects = _concat([_with_metadata(o, smp, a) for smp, a, _, o in parts])
    sections = _sort(sections, ["assay", "group", "animal", "level", "section", "image",
                                "region"], groups)
    if len(objects):
        objects = _sort(objects, ["assay", "group", "animal", "level", "section", "image"],
                        groups)
    animals = animal_table(sections, groups)
    prism = prism_tables(animals, groups, measures or {})
    err = pd.DataFrame(list(errors), columns=["image", "file", "assay", "error", "message"])
    if len(err):
        err = err.sort_values(["file", "assay"], key=lambda c: c.map(natural_key),
                              kind="stable").reset_index(drop=True)
    return StudyTables(objects=objects, sections=sections, animals=animals, prism=prism,
                       errors=err, groups=tuple(groups), long=long_table(animals),
                       sections_long=sections_long_table(sections))


def extra_table(parts: Sequence[tuple[Sample, str, pd.DataFrame]],
                groups: Sequence[str]) -> pd.DataFrame:
    """Return an assay's extra table (e.g. Evans Blue profiles) over the study, with metadata.

    Parameters
    ----------
    parts : sequence of (Sample, assay, table)
        One per finished unit that made the table.
    groups : sequence of str
        Group order for the rows.

    Returns
    -------
    pandas.DataFrame
        The tables concatenated, each row with its sample's identifiers.
    """
    df = _concat([_with_metadata(t, smp, a) for smp, a, t in parts])
    keys = [k for k in ("assay", "group", "animal", "level", "section", "image", "region")
            if k in df.columns]
    return _sort(df, keys, groups)


def animal_table(sections: pd.DataFrame, groups: Sequence[str]) -> pd.DataFrame:
    """Return the animal table: per assay × animal × level × region, sums of counts, else means.

    Parameters
    ----------
    sections : pandas.DataFrame
        The section table (one row per section × region). Rows whose ``excluded`` column
        is true (:mod:`histoquant.batch.exclusions`) are left out.
    groups : sequence of str
        Group order for the rows.

    Returns
    -------
    pandas.DataFrame
        One row per assay × animal × level × region, with ``n_sections``.
    """
    if "excluded" in sections.columns:
        sections = sections[~sections["excluded"].fillna(False).astype(bool)]
    if sections.empty:
        return pd.DataFrame(columns=[*ANIMAL_IDS, "n_sections"])
    out = []
    for assay, df in sections.groupby("assay", sort=False):
        df = df.dropna(axis=1, how="all")
        cols = measure_columns(df)
        combined = combine_sections(df[ANIMAL_IDS + cols], ANIMAL_IDS,
                                    get_assay(str(assay)).measure)
        cols = [c for c in cols if c in combined.columns]
        n = (df.assign(_sec=df["image"] + "\x00" + df["section"])
             .groupby(ANIMAL_IDS, sort=False)["_sec"].nunique().reset_index(name="n_sections"))
        combined = combined.merge(n, on=ANIMAL_IDS, how="left")
        out.append(combined[[*ANIMAL_IDS, "n_sections", *cols]].assign(assay=assay))
    animals = pd.concat(out, ignore_index=True, sort=False)
    return _sort(animals, ["assay", "group", "animal", "level", "region"], groups)


def default_measures(animals: pd.DataFrame) -> list[str]:
    """Return the measures of one assay's animal table worth a Prism table and a plot.

    Every numeric measure except ``n_sections`` and, when there are several animals, those
    with a single value across the whole study (bit depth, a fixed threshold).

    Parameters
    ----------
    animals : pandas.DataFrame
        One assay's rows of the animal table.

    Returns
    -------
    list of str
        The measure columns.
    """
    cols = [c for c in measure_columns(animals) if c != "n_sections"
            and animals[c].notna().any()]
    if animals["animal"].nunique() > 1:
        cols = [c for c in cols if animals[c].nunique(dropna=True) > 1]
    return cols


def prism_tables(animals: pd.DataFrame, groups: Sequence[str],
                 measures: Mapping[str, Sequence[str]]) -> dict[tuple[str, str, str, str],
                                                                 pd.DataFrame]:
    """Return the wide tables: key (assay, measure, region, level) → rows animals, columns groups.

    Parameters
    ----------
    animals : pandas.DataFrame
        The animal table.
    groups : sequence of str
        Group order for the columns.
    measures : mapping of str to sequence of str
        Assay → the measures to tabulate.

    Returns
    -------
    dict of (str, str, str, str) to pandas.DataFrame
        One table per assay, measure, region and level.
    """
    out = {}
    if animals.empty:
        return out
    for assay, df in animals.groupby("assay", sort=False):
        cols = list(measures.get(assay) or default_measures(df))
        cols = [c for c in cols if c in df.columns and df[c].notna().any()]
        for (region, level), sub in df.groupby(["region", "level"], sort=False):
            present = [g for g in groups if g in set(sub["group"])]
            for m in cols:
                wide = sub.pivot_table(index="animal", columns="group", values=m,
                                       aggfunc="first", dropna=False, sort=False)
                wide = wide.reindex(columns=present)
                order = sub.drop_duplicates("animal")["animal"].tolist()
                wide = wide.reindex(order)
                wide.columns.name = None
                out[(assay, m, region, level)] = wide.reset_index()
    return out


def describe_measure(assay: str, name: str) -> str:
    """Return a measure's unit and how it was combined from sections per animal.

    Parameters
    ----------
    assay : str
        The assay that reports the measure.
    name : str
        The measure's column name.

    Returns
    -------
    str
        A short phrase for the report's notes (e.g. ``"µm²; mean over sections weighted by
        n_motor_neurons"``).
    """
    m = get_assay(assay).measure(name)
    unit = f"{m.unit}; " if m.unit else ""
    return f"{unit}{m.describe_animal()}"


def _animal_measures(spec: AssaySpec, df: pd.DataFrame) -> list[str]:
    """Return the numeric columns of ``df`` that ``spec`` declares with an animal rule."""
    out = []
    for c in measure_columns(df, exclude=("n_sections",)):
        m = find_measure(spec.measures, c)
        if m is not None and m.animal != "none":
            out.append(c)
    return out


def _melt(table: pd.DataFrame, ids: Sequence[str], columns: Sequence[str]) -> pd.DataFrame:
    """One row per ``table`` row × column of ``table``, each row's measures together."""
    frames = []
    for assay, df in table.groupby("assay", sort=False):
        spec = get_assay(str(assay))
        cols = _animal_measures(spec, df)
        if not cols:
            continue
        long = df[[*ids, *cols]].melt(id_vars=list(ids), value_vars=cols, var_name="measure",
                                      value_name="value", ignore_index=False)
        # melt stacks column after column; a stable sort on the row index puts each row's
        # measures together, in the table's row order and the assay's column order
        long = long.sort_index(kind="stable")
        long = long[long["value"].notna()]
        long["unit"] = long["measure"].map({c: spec.measure(c).unit for c in cols})
        frames.append(long)
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=columns)
    out = pd.concat(frames, ignore_index=True)
    out["value"] = out["value"].astype(float)
    return out[list(columns)]


def long_table(animals: pd.DataFrame) -> pd.DataFrame:
    """Return the animal table in tidy form: one row per animal × level × region × assay × measure.

    Only measures combined per animal are in it (a declared animal rule other than
    ``"none"``; thresholds, noise and other technical columns stay in the section table), and
    only values that exist (an animal with no value for a measure has no row for it).

    Parameters
    ----------
    animals : pandas.DataFrame
        The animal table (:func:`animal_table`).

    Returns
    -------
    pandas.DataFrame
        :data:`LONG_COLUMNS`, in the animal table's row order, each row's measures in its
        assay's column order; ``unit`` as the assay declares it
        (:class:`~histoquant.assays.contract.Measure`), ``n_sections`` the sections behind
        the animal's row.
    """
    if animals.empty:
        return pd.DataFrame(columns=LONG_COLUMNS)
    out = _melt(animals, [*ANIMAL_IDS, "n_sections"], LONG_COLUMNS)
    if len(out):
        out["n_sections"] = out["n_sections"].astype(int)
    return out


def sections_long_table(sections: pd.DataFrame) -> pd.DataFrame:
    """Return the section table in tidy form: one row per section × region × assay × measure.

    The same measures as :func:`long_table`, before they are combined per animal: the table a
    mixed model with the animal as a random effect reads (R:
    ``lmer(value ~ group + (1 | animal), data = subset(d, measure == "..."))``).

    Parameters
    ----------
    sections : pandas.DataFrame
        The section table.

    Returns
    -------
    pandas.DataFrame
        :data:`SECTION_LONG_COLUMNS`, in the section table's row order.
    """
    if sections.empty or "assay" not in sections.columns:
        return pd.DataFrame(columns=SECTION_LONG_COLUMNS)
    ids = SECTION_LONG_COLUMNS[:7]
    return _melt(sections, ids, SECTION_LONG_COLUMNS)


def assay_tables(table: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Split a section or animal table per assay, each piece with only its assay's columns.

    A piece keeps the identifier columns, every column with a value in the assay's rows, and
    the columns the assay declares by name (:class:`~histoquant.assays.contract.Measure`)
    even when empty, so an assay's table has the same columns from one run to the next.

    Parameters
    ----------
    table : pandas.DataFrame
        The section or animal table (with an ``assay`` column).

    Returns
    -------
    dict of str to pandas.DataFrame
        Assay → its rows, in the table's order of assays.
    """
    out: dict[str, pd.DataFrame] = {}
    if table.empty or "assay" not in table.columns:
        return out
    ids = {*SECTION_IDS, *ANIMAL_IDS, "n_sections"}
    for assay, df in table.groupby("assay", sort=False):
        declared = {m.name for m in get_assay(str(assay)).measures}
        keep = [c for c in df.columns
                if c in ids or c in declared or df[c].notna().any()]
        out[str(assay)] = df[keep].reset_index(drop=True)
    return out


def endpoint_prism_tables(values: pd.DataFrame,
                          groups: Sequence[str]) -> dict[str, pd.DataFrame]:
    """Return one grouped table per endpoint (and level, for a ``by_level`` endpoint).

    Each table has one row per animal (its name as the index, the row title in Prism) and one
    column per group that has a value for the endpoint (in ``groups`` order, then any other
    alphabetically): the animal's value in its group's column, the other cells empty. This is
    the shape of a Prism *Column* table, which an unpaired t-test or Mann–Whitney test reads.

    Parameters
    ----------
    values : pandas.DataFrame
        Endpoint animal values (:func:`~histoquant.batch.endpoints.endpoint_animal_values`).
    groups : sequence of str
        The study's group order.

    Returns
    -------
    dict of str to pandas.DataFrame
        Title → table. The title is the endpoint's label, its unit in brackets and, for a
        ``by_level`` endpoint, the level (``"Motor neurons per ventral horn (count)"``,
        ``"GFP+ cells per section (count) · L3"``); the assay is added to tell two endpoints
        of the same label apart. Each table's ``attrs`` name its ``endpoint``, ``assay``,
        ``measure``, ``level``, ``by_level`` and the ``regions`` read.
    """
    out: dict[str, pd.DataFrame] = {}
    if values.empty:
        return out
    rank = {g: i for i, g in enumerate(groups)}
    for (endpoint, assay), ep in values.groupby(["endpoint", "assay"], sort=False):
        levels = sorted(dict.fromkeys(ep["level"].astype(str)), key=natural_key)
        for level in levels:
            df = ep[ep["level"].astype(str) == level]
            first = df.iloc[0]
            title = str(first["label"])
            if first["unit"]:
                title += f" ({first['unit']})"
            if bool(first["by_level"]):
                title += f" · {level}"
            if title in out:
                title += f" [{assay}]"
            base, n = title, 2
            while title in out:
                title, n = f"{base} #{n}", n + 1
            present = sorted(dict.fromkeys(df["group"].astype(str)),
                             key=lambda g: (rank.get(g, len(rank)), natural_key(g)))
            animals = list(dict.fromkeys(df["animal"].astype(str)))
            wide = pd.DataFrame(np.nan, index=pd.Index(animals, name="animal"),
                                columns=present, dtype=float)
            for animal, group, value in zip(df["animal"].astype(str), df["group"].astype(str),
                                            df["value"].astype(float)):
                wide.loc[animal, group] = value
            wide.attrs = {"endpoint": str(endpoint), "assay": str(assay),
                          "measure": str(first["measure"]), "level": level,
                          "by_level": bool(first["by_level"]),
                          "regions": ";".join(dict.fromkeys(
                              ";".join(df["regions"].astype(str)).split(";")))}
            out[title] = wide
    return out
