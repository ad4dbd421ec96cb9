"""The blinding key: which coded image (``V001.tif``) is which section of the study.

Written by :func:`~histoquant.validate.sample.write_blinded_sample` as ``OUT/key.csv``, beside
(never inside) the folder of coded images the counter is given, and read back by
:func:`~histoquant.validate.compare.compare_counts` to put the manual counts next to the
program's.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..io.writers import atomic_path
from .errors import ValidationError

__all__ = ["KEY_COLUMNS", "read_key", "write_table"]

#: Columns of ``key.csv``: the code, then where the image came from and what it shows.
KEY_COLUMNS = ("code", "coded_file", "file", "image", "animal", "group", "level", "section",
               "pixel_size_um", "sha256")


def read_key(path: str | Path) -> pd.DataFrame:
    """Read a blinding key, every value as text.

    Parameters
    ----------
    path : path
        ``key.csv`` written by ``histoquant validate sample``.

    Returns
    -------
    pandas.DataFrame
        One row per code, indexed by nothing (``code`` is a column), blanks as ``""``.

    Raises
    ------
    ValidationError
        When the file is missing or unreadable, lacks ``code``, ``file`` or ``image``, or
        repeats a code.
    """
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"{path}: no such key file (the key.csv that 'histoquant "
                              "validate sample' wrote beside the coded images)")
    try:
        key = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except Exception as exc:
        raise ValidationError(f"{path}: cannot read the key ({type(exc).__name__}: "
                              f"{exc})") from exc
    key.columns = [str(c).strip() for c in key.columns]
    missing = [c for c in ("code", "file", "image") if c not in key.columns]
    if missing:
        raise ValidationError(f"{path}: not a blinding key: missing column(s) "
                              f"{', '.join(missing)} (it has {', '.join(key.columns)})")
    key = key.apply(lambda s: s.astype(str).str.strip())
    dup = sorted(set(key.loc[key["code"].duplicated(), "code"]))
    if dup:
        raise ValidationError(f"{path}: code(s) listed twice: {', '.join(dup)}")
    return key


def write_table(df: pd.DataFrame, path: Path) -> Path:
    """Write a validation table as UTF-8 CSV atomically, its columns in the order given.

    (:func:`histoquant.output.write_csv` puts the study identifiers first; here the code
    or the measure comes first.)

    Parameters
    ----------
    df : pandas.DataFrame
        The table (its index is not written).
    path : Path
        The file, already checked to lie in the output folder.

    Returns
    -------
    Path
        ``path``.
    """
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, encoding="utf-8", lineterminator="\n")
    return path
