"""What an assay declares about its tables: each summary column, each extra table.

An assay's summary has one row per image × region. Every column of it is declared once, in the
assay's :class:`~histoquant.assays.base.AssaySpec`, as a :class:`Measure`: its unit, what it
means, how the rows of the tiles of one region combine into the row of a whole-image run, and
how the sections of one animal combine into the animal's value. The batch, the whole-slide
tiler and the napari plugin read these declarations; nothing guesses from column names.

Tile rules (``tiles``), over the rows of the tiles of one image × region:

``sum``
    Counts, areas, lengths, integrated intensities: they add up.
``ratio``
    ``scale × Σ numerator / Σ denominator`` (``of=(numerator, denominator)``): densities and
    area fractions, exact whatever the tiles.
``weighted``
    ``Σ value × weight / Σ weight`` (``of=(weight,)``): a mean over the pixels (or the length)
    that ``weight`` counts, exact when ``weight`` is that amount.
``objects``
    The mean (``stat``) of an object column (``of=(column,)``) over the stitched objects of the
    region, optionally only those matching ``where`` (``(("class", "motor_neuron"),)``): a mean
    of per-object values is a mean over objects, never over tiles.
``image``
    An image-wide statistic (threshold, noise, background): identical on every tile when the
    assay is calibrated once for the whole image; otherwise the region-area-weighted mean.
``any`` / ``min`` / ``max`` / ``first`` / ``join``
    Flags, extremes, a method name, and ``;``-joined labels.
``common``
    The ``;``-separated labels every tile has: a region has ``no_vessels`` only when none of
    its tiles holds a vessel.

Animal rules (``animal``), over the sections of one animal × level × region: ``sum``,
``mean`` (each section counts once), ``weighted`` (``animal_weight`` column, e.g. a mean soma
area weighted by the number of somata), or ``none`` (technical: left out of animal tables).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Measure", "ExtraTable", "Endpoint", "TILE_RULES", "ANIMAL_RULES", "REGION_AREA",
           "ENDPOINT_SUMMARIES", "find_measure", "data_dictionary"]

TILE_RULES = ("sum", "ratio", "weighted", "objects", "image", "any", "min", "max", "first",
              "join", "common")
ANIMAL_RULES = ("sum", "mean", "weighted", "none")
_N_OF = {"ratio": 2, "weighted": 1, "objects": 1}
ENDPOINT_SUMMARIES = ("mean_sem", "median_iqr")


@dataclass(frozen=True)
class Measure:
    """One summary column: unit, meaning, and how it combines over tiles and over sections.

    Parameters
    ----------
    name : str
        Column name; a glob (``n_rejected_*``) declares a family of columns.
    unit : str
        Unit as printed (``count``, ``mm²``, ``%``, ``per mm²``, ``a.u.``; ``""`` for labels).
    help : str
        What the column holds, for the data dictionary and the report.
    tiles : str
        Tile rule, one of :data:`TILE_RULES`.
    of : tuple of str
        Columns the tile rule reads: ``(numerator, denominator)`` for ``ratio``, ``(weight,)``
        for ``weighted``, ``(object column,)`` for ``objects``.
    scale : float
        Factor of a ``ratio`` (``100`` for a percentage of two areas in the same unit).
    where : tuple of (str, object)
        For ``objects``: only objects whose columns equal these values.
    animal : str
        Animal rule, one of :data:`ANIMAL_RULES`.
    animal_weight : str, optional
        Weight column for ``animal="weighted"``.
    """

    name: str
    unit: str
    help: str = ""
    tiles: str = "sum"
    of: tuple[str, ...] = ()
    scale: float = 1.0
    where: tuple[tuple[str, Any], ...] = ()
    animal: str = "mean"
    animal_weight: str | None = None

    def __post_init__(self) -> None:
        """Refuse unknown rules and rules given the wrong number of columns."""
        if self.tiles not in TILE_RULES:
            raise ValueError(f"{self.name}: tiles must be one of {TILE_RULES}, not "
                             f"{self.tiles!r}")
        if self.animal not in ANIMAL_RULES:
            raise ValueError(f"{self.name}: animal must be one of {ANIMAL_RULES}, not "
                             f"{self.animal!r}")
        need = _N_OF.get(self.tiles, 0)
        if len(self.of) != need:
            raise ValueError(f"{self.name}: tiles={self.tiles!r} reads {need} column(s) in "
                             f"'of', got {self.of}")
        if (self.animal == "weighted") != (self.animal_weight is not None):
            raise ValueError(f"{self.name}: animal_weight goes with animal='weighted' only")

    def describe_animal(self) -> str:
        """Return how sections combine into one value per animal, in words.

        Returns
        -------
        str
            ``"sum over sections"``, ``"mean over sections"``, ``"mean over sections weighted by
            <animal_weight>"`` or ``"not combined per animal"``.
        """
        return {"sum": "sum over sections", "mean": "mean over sections",
                "weighted": f"mean over sections weighted by {self.animal_weight}",
                "none": "not combined per animal"}[self.animal]


@dataclass(frozen=True)
class ExtraTable:
    """A table an assay writes besides summary and objects (``<name>.csv`` in the output).

    Parameters
    ----------
    name : str
        File stem and key in :attr:`histoquant.results.AssayResult.tables`.
    help : str
        What one row holds.
    """

    name: str
    help: str = ""


#: The column every summary opens with: the area measured.
@dataclass(frozen=True)
class Endpoint:
    """A measure a paper reports: what the study's report, statistics and Prism file lead with.

    An endpoint reads one summary column. Its *observations* are the section × region rows of
    the section table whose region matches ``regions`` (the first pattern that matches any row
    of the study wins, so a study measured on whole images still has its endpoint, and the
    outputs say which region was used). An animal's value is the mean of its observations
    (each section × region row counts once), or their mean weighted by ``weight``; with
    ``by_level`` there is one value per animal and spinal level.

    Parameters
    ----------
    name : str
        Identifier, unique within the assay (``motor_neurons_per_ventral_horn``).
    measure : str
        The summary column read; it must be a declared :class:`Measure`.
    label : str
        As a paper writes it (``"Motor neurons per ventral horn"``).
    regions : tuple of str
        Region globs, tried in order; empty: every region.
    weight : str, optional
        Column weighting the observations in an animal's mean (``n_motor_neurons`` for a mean
        soma area); None: each observation counts once.
    summary : str
        How the report summarises a group: ``mean_sem`` or ``median_iqr``
        (:data:`ENDPOINT_SUMMARIES`).
    by_level : bool
        One value per animal and spinal level (GFP+ cells per level), not per animal.
    """

    name: str
    measure: str
    label: str
    regions: tuple[str, ...] = ()
    weight: str | None = None
    summary: str = "mean_sem"
    by_level: bool = False

    def __post_init__(self) -> None:
        """Refuse an unknown summary."""
        if self.summary not in ENDPOINT_SUMMARIES:
            raise ValueError(f"endpoint {self.name}: summary must be one of "
                             f"{ENDPOINT_SUMMARIES}, not {self.summary!r}")


REGION_AREA = Measure("region_area_mm2", "mm²", "area of the region measured", tiles="sum",
                      animal="sum")


def find_measure(measures: Sequence[Measure], name: str) -> Measure | None:
    """Return the declaration of column ``name``: an exact name first, else the first glob.

    Parameters
    ----------
    measures : sequence of Measure
        An assay's declared summary columns (names may be globs: ``*``, ``?``, ``[...]``).
    name : str
        The column name.

    Returns
    -------
    Measure or None
        The matching declaration; None when none matches.
    """
    for m in measures:
        if m.name == name:
            return m
    for m in measures:
        if any(ch in m.name for ch in "*?[") and fnmatch.fnmatchcase(name, m.name):
            return m
    return None


def data_dictionary(specs: Sequence[Any]) -> list[dict[str, str]]:
    """One row per declared summary column of each spec: what a statistics user needs.

    Parameters
    ----------
    specs : sequence of AssaySpec
        The assays of a run.

    Returns
    -------
    list of dict
        ``assay``, ``column``, ``unit``, ``meaning``, ``per_animal`` (how sections combine)
        and ``over_tiles`` (how tiles of a slide combine).
    """
    rows = []
    for spec in specs:
        for m in spec.measures:
            tiles = m.tiles if not m.of else f"{m.tiles} of {', '.join(m.of)}"
            rows.append({"assay": spec.name, "column": m.name, "unit": m.unit,
                         "meaning": m.help, "per_animal": m.describe_animal(),
                         "over_tiles": tiles})
    return rows
