"""The study's tables: objects, sections, animals, and wide per-measure tables for Prism.

- ``objects``: one row per detected object, with the study metadata.
- ``sections``: one row per image × section × region × assay.
- ``animals``: one row per assay × animal × level × region; each measure combines over the
  animal's sections as its assay declares (:class:`~histoquant.assays.contract.Measure`:
  counts, areas and lengths summed; densities and fractions the mean of the sections; means of
  per-object values weighted by the number of objects; technical columns left out);
  ``n_sections`` says how many.
- Prism: per assay × measure × region × level, one row per animal and one column per group.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd

from ..aggregate import combine_sections, measure_columns
from ..assays.base import get_assay
from .samples import Sample, natural_key

__all__ = ["StudyTables", "assemble", "prism_tables", "group_order", "extra_table",
           "default_measures"]

SECTION_IDS = ["image", "animal", "group", "level", "section", "region", "assay", "file"]
ANIMAL_IDS = ["animal", "group", "level", "region", "assay"]


@dataclass
class StudyTables:
    """Every table of a study run."""

    objects: pd.DataFrame
    sections: pd.DataFrame
    animals: pd.DataFrame
    prism: dict[tuple[str, str, str, str], pd.DataFrame] = field(default_factory=dict)
    errors: pd.DataFrame = field(default_factory=pd.DataFrame)
    groups: tuple[str, ...] = ()


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
        Section, animal, object, error and Prism tables.
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
                       errors=err, groups=tuple(groups))


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
