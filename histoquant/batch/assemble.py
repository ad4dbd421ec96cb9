"""Assembling a study's tables from its finished units.

Every successful unit is read back from its part (or taken from the parts this run just
decoded), in the study's natural order, and :func:`~histoquant.batch.tables.assemble` builds
the objects, sections, animals and Prism tables from them. Failed units become error rows.
Nothing here writes a table: :mod:`histoquant.batch.writers` does.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .plan import StudyPlan
from .samples import Sample, natural_key
from .store import PartStore
from .tables import StudyTables, assemble, group_order
from .units import Unit, UnitOutput

__all__ = ["AssembledStudy", "assemble_study"]

#: ``on_picture(unit, png)``: a resumed unit's QC overlay, read back from its part.
OnPicture = Callable[[Unit, bytes], None]


@dataclass
class AssembledStudy:
    """Everything the writers need, computed once.

    Attributes
    ----------
    tables : StudyTables
        Objects, sections, animals, Prism and error tables.
    units : list of dict
        One record per image × assay in the study's order, then the units that failed at
        planning; a failed one holds ``error``.
    thumbnails : dict of str to bytes
        Unit key → QC thumbnail PNG, for the report.
    extras : dict of (assay, name) to list of (sample, assay, table)
        The per-image pieces of each assay's extra tables.
    groups : tuple of str
        Groups in the study's order.
    measures : dict of str to tuple of str
        Assay → measures the study file names.
    notes : list of str
        Notes found while assembling (a measure the study file names that no assay reports).
    """

    tables: StudyTables
    units: list[dict[str, Any]]
    thumbnails: dict[str, bytes]
    extras: dict[tuple[str, str], list[tuple[Sample, str, pd.DataFrame]]]
    groups: tuple[str, ...]
    measures: dict[str, tuple[str, ...]]
    notes: list[str] = field(default_factory=list)

    @property
    def errors(self) -> list[dict[str, str]]:
        """One ``error`` record per failed image × assay."""
        return [m["error"] for m in self.units if "error" in m]


def assemble_study(plan: StudyPlan, store: PartStore, records: Mapping[str, dict[str, Any]],
                   finished: Mapping[str, UnitOutput], *,
                   on_picture: OnPicture | None = None) -> AssembledStudy:
    """Read every unit's result back and build the study's tables.

    Parameters
    ----------
    plan : StudyPlan
        The study run.
    store : PartStore
        The parts of every finished unit.
    records : mapping of str to dict
        Unit key → record of a unit that failed (it holds ``error``).
    finished : mapping of str to UnitOutput
        Units this run measured, already decoded (tables and thumbnail, QC picture written);
        any other unit is read from ``store``.
    on_picture : callable, optional
        Called with the QC overlay of each unit read from ``store`` (one measured by an
        earlier run) as it is read, so the picture is written without being kept.

    Returns
    -------
    AssembledStudy
    """
    cfg = plan.config
    parts, thumbs = [], {}
    extras: dict[tuple[str, str], list[tuple[Sample, str, pd.DataFrame]]] = {}
    units_meta = []
    for u in sorted(plan.units, key=lambda u: (natural_key(u.sample.rel), u.assay)):
        rec = records.get(u.key)
        if rec is not None and "error" in rec:
            units_meta.append(rec)
            continue
        part = finished.get(u.key) or store.read(u.key, pictures=True)
        parts.append((u.sample, u.assay, part.summary, part.objects))
        for name, table in part.extra.items():
            extras.setdefault((u.assay, name), []).append((u.sample, u.assay, table))
        if part.thumb_png:
            thumbs[u.key] = part.thumb_png
        if part.qc_png and on_picture is not None:
            on_picture(u, part.qc_png)
        units_meta.append(part.meta)
    units_meta.extend(f.meta for f in plan.failed)
    errors = [m["error"] for m in units_meta if "error" in m]
    groups = group_order(list(plan.samples.values()), cfg.group_order)
    measures = {a: p.measures for a, p in cfg.assays.items() if p.measures}
    tables = assemble(parts, groups=groups, errors=errors, measures=measures)
    notes = []
    for a, wanted in measures.items():
        missing = [m for m in wanted if m not in tables.animals.columns]
        if missing:
            notes.append(f"assays.{a}.measures: {', '.join(missing)} not reported by "
                         "the assay")
    return AssembledStudy(tables=tables, units=units_meta, thumbnails=thumbs, extras=extras,
                          groups=groups, measures=measures, notes=notes)
