"""What an assay returns, and the common columns of its tables."""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["AssayResult", "versions", "ID_COLUMNS", "order_columns", "add_id_columns",
           "normalize_level"]

ID_COLUMNS = ("image", "animal", "group", "level", "section", "region")


def versions() -> dict[str, str]:
    """Versions of histoquant and the libraries whose behaviour shapes the numbers.

    Returns
    -------
    dict of str to str
        Version per distribution (and ``python``); packages not installed are left out.
    """
    return dict(_versions())


@lru_cache(maxsize=1)
def _versions() -> dict[str, str]:
    # reading package metadata costs tens of ms; every result (every tile of a slide) asks
    from importlib import metadata

    out = {"python": platform.python_version()}
    for dist in ("histoquant", "numpy", "scipy", "scikit-image", "pandas", "tifffile", "zarr",
                 "roifile", "skan", "cellpose", "torch"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return out


def normalize_level(value: Any) -> Any:
    """Spinal level in one spelling: ``"l3"``, ``"3"``, ``" L3 "`` → ``"L3"``; others as is.

    Parameters
    ----------
    value : Any
        A level as written in a file name or sheet; None and NaN are returned as is.

    Returns
    -------
    Any
        ``"L<n>"`` for a level number with or without ``L``; anything else unchanged.
    """
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return value
    text = str(value).strip()
    m = re.fullmatch(r"[lL]?\s*(\d+)", text)
    return f"L{int(m.group(1))}" if m else text


def order_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Put the identifier columns (image, animal, group, level, section, region) first.

    Parameters
    ----------
    df : DataFrame
        A results table.

    Returns
    -------
    DataFrame
        ``df`` with its columns reordered: the identifiers in :data:`ID_COLUMNS` order, then
        the others as they were.
    """
    first = [c for c in ID_COLUMNS if c in df.columns]
    return df[first + [c for c in df.columns if c not in first]]


def add_id_columns(df: pd.DataFrame, ids: dict[str, Any]) -> pd.DataFrame:
    """Return ``df`` with one constant column per ``ids`` item, placed with the identifiers.

    Used for what the caller knows about an image and the assay cannot see (animal, group,
    spinal level, section). Known identifiers go in :data:`ID_COLUMNS` order; other keys follow
    them, before the measurements. An existing column of the same name is overwritten.

    Parameters
    ----------
    df : DataFrame
        A results table (not changed).
    ids : dict of str to Any
        Column name to value; None values are skipped.

    Returns
    -------
    DataFrame
        A copy of ``df`` with the columns added.
    """
    out = df.copy()
    for key, value in ids.items():
        if value is None:
            continue
        if key in out.columns:
            out[key] = value
        else:
            out.insert(0, key, [value] * len(out))
    known = [c for c in ID_COLUMNS if c in out.columns]
    custom = [k for k in ids if k in out.columns and k not in known]
    return out[known + custom + [c for c in out.columns if c not in known and c not in custom]]


@dataclass
class AssayResult:
    """The result of one assay on one image.

    Attributes
    ----------
    assay : str
        Assay name (``motor-neurons``, ``evans-blue``, ...).
    image : str
        Image name (file stem) used in the tables.
    objects : DataFrame
        One row per detected object: ``image``, ``region``, ``label``, centroid in µm,
        measurements with units in the column names, ``class``.
    summary : DataFrame
        One row per image × region: counts, areas, densities, fractions.
    labels : ndarray or None
        Label image of every detected object (0 = background), or a mask for area assays.
    masks : dict of str to ndarray
        Named masks the assay used (regions, positive area, vessels...).
    qc : ndarray or None
        QC overlay, RGB uint8.
    params : dict
        The parameters used.
    pixel_size_um : float or None
        Pixel size the measurement used.
    warnings : list of str
        Problems worth a look that did not stop the measurement (saturation, low score).
    tables : dict of str to DataFrame
        The assay's extra tables by name (declared in its ``SPEC.tables``, e.g. the Evans
        Blue perivascular ``profiles``, the gfp-cells ``nuclei``), ``image`` first; every one
        is written to disk as ``<name>.csv``, by the CLI and by the batch.
    extra : dict
        Other assay-specific values (found regions, label images of secondary objects, the
        channel chosen) that are not tables.
    """

    assay: str
    image: str
    objects: pd.DataFrame
    summary: pd.DataFrame
    labels: np.ndarray | None = None
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    qc: np.ndarray | None = None
    params: dict[str, Any] = field(default_factory=dict)
    pixel_size_um: float | None = None
    warnings: list[str] = field(default_factory=list)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=versions)

    def __post_init__(self) -> None:
        """Put the tables' identifier columns first."""
        self.objects = order_columns(self.objects)
        self.summary = order_columns(self.summary)

    def set_ids(self, **ids: Any) -> AssayResult:
        """Add identifier columns (``animal="R12"``, ``level="L3"``...) to both tables.

        ``None`` values are skipped; ``level`` is written in one spelling
        (:func:`normalize_level`: ``"l3"`` and ``"3"`` become ``"L3"``). Returns the result
        itself, changed in place.

        Parameters
        ----------
        **ids : Any
            Column name to value.

        Returns
        -------
        AssayResult
            ``self``.
        """
        if "level" in ids:
            ids = {**ids, "level": normalize_level(ids["level"])}
        self.summary = add_id_columns(self.summary, ids)
        self.objects = add_id_columns(self.objects, ids)
        return self
