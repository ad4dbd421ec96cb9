"""Finished units on disk (``OUTDIR/.parts``), so a killed run loses nothing.

Each finished image × assay is one zip file named by its key (a hash of the input file and
every setting that shapes the result), written atomically the moment the unit finishes:
``meta.json``, ``summary.csv``, ``objects.csv``, ``qc.png``, ``thumb.png``, the assay's
extra tables (``extra/<name>.csv``) and, for the single-assay command, the label image and
found regions (``files/<name>``). The final tables
are always assembled from these files, so a fresh run, a resumed run and a parallel run give
byte-identical tables. Input hashes are cached by (size, modification time) in
``hashes.json``. A study-wide threshold's first pass keeps each section's sample of
corrected pixels in ``samples/<key>.npz`` (:mod:`histoquant.batch.thresholds`).
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import pandas as pd

from ..io.safe_paths import OutputFolder
from ..io.writers import atomic_path
from ..output import file_sha256
from .units import UNIT_FILES, UnitOutput

__all__ = ["PartStore", "ID_DTYPES", "encode_part", "decode_part"]

# identifier columns stay text when read back ("001" is not 1)
ID_DTYPES = {c: str for c in ("image", "animal", "group", "level", "section", "region", "assay",
                              "file", "class")}


def encode_part(out: UnitOutput) -> bytes:
    """Return the zip file of a finished unit, as bytes.

    Done in the worker, so that CSV encoding and compression run in parallel rather than in
    the one process that collects results. PNGs are stored, not deflated again.

    Parameters
    ----------
    out : UnitOutput
        The unit's tables, pictures and metadata.

    Returns
    -------
    bytes
        The part file's content.
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        z.writestr("meta.json", json.dumps(out.meta, indent=1, sort_keys=True, default=str))
        z.writestr("summary.csv", out.summary.to_csv(index=False, lineterminator="\n"))
        z.writestr("objects.csv", out.objects.to_csv(index=False, lineterminator="\n"))
        for name, png in (("qc.png", out.qc_png), ("thumb.png", out.thumb_png)):
            if png is not None:
                z.writestr(name, png, compress_type=zipfile.ZIP_STORED)
        for name, table in out.extra.items():
            z.writestr(f"extra/{name}.csv", table.to_csv(index=False, lineterminator="\n"))
        for name, data in out.files.items():
            z.writestr(f"files/{name}", data)
    return buf.getvalue()


def decode_part(data: bytes, key: str, *, pictures: bool = False) -> UnitOutput:
    """Return a unit's output from its part file's bytes (tables always; PNGs when ``pictures``).

    Tables are always parsed from the part's CSV text, whether the part was just made or
    written by an earlier run, so that every run assembles identical tables.

    Parameters
    ----------
    data : bytes
        The part file's content (:func:`encode_part`).
    key : str
        The unit's key.
    pictures : bool
        Whether the PNG pictures (and the unit's files) are read too.

    Returns
    -------
    UnitOutput
        The unit's output.
    """
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        meta = json.loads(z.read("meta.json"))
        tables = {}
        for name in ("summary", "objects"):
            raw = z.read(f"{name}.csv")
            tables[name] = pd.read_csv(io.BytesIO(raw), dtype=ID_DTYPES,
                                       keep_default_na=True) if raw.strip() else \
                pd.DataFrame()
        names = set(z.namelist())
        qc = z.read("qc.png") if pictures and "qc.png" in names else None
        thumb = z.read("thumb.png") if pictures and "thumb.png" in names else None
        extra = {}
        for n in sorted(names):
            if n.startswith("extra/") and n.endswith(".csv"):
                raw = z.read(n)
                extra[n[6:-4]] = pd.read_csv(io.BytesIO(raw), dtype=ID_DTYPES) \
                    if raw.strip() else pd.DataFrame()
        # only the names a unit writes: a part is this program's file, but a name from it
        # becomes part of an output path
        files = {n: z.read(f"files/{n}") for n in UNIT_FILES
                 if pictures and f"files/{n}" in names}
    return UnitOutput(key=key, ok=True, summary=tables["summary"], objects=tables["objects"],
                      qc_png=qc, thumb_png=thumb, meta=meta, extra=extra, files=files)


class PartStore:
    """The ``.parts`` folder of an output folder.

    Every file it writes is checked to lie inside the output folder (a ``.parts`` link to
    elsewhere is refused with :class:`~histoquant.errors.OutputPathError`).
    """

    def __init__(self, outdir: str | Path):
        self.out = OutputFolder(outdir)
        self.dir = self.out.root / ".parts"

    def path(self, key: str) -> Path:
        """Return the part file of ``key`` (a hex digest, so a plain file name).

        Parameters
        ----------
        key : str
            The unit's key.

        Returns
        -------
        pathlib.Path
            The part's path in the store (it may not exist).
        """
        return self.out.path(".parts", f"{key}.zip")

    def has(self, key: str) -> bool:
        """Return whether a finished, readable part exists for ``key``.

        Parameters
        ----------
        key : str
            The unit's key.

        Returns
        -------
        bool
            True when the part file exists, its zip is intact and it holds ``meta.json``.
        """
        p = self.path(key)
        if not p.is_file():
            return False
        try:
            with zipfile.ZipFile(p) as z:
                return z.testzip() is None and "meta.json" in z.namelist()
        except (zipfile.BadZipFile, OSError):
            return False

    def write(self, out: UnitOutput) -> bytes:
        """Persist a successful unit atomically (its encoded part, or encoded here).

        Parameters
        ----------
        out : UnitOutput
            A unit that succeeded.

        Returns
        -------
        bytes
            The part's bytes, as :func:`decode_part` reads them.
        """
        data = out.part if out.part is not None else encode_part(out)
        with atomic_path(self.path(out.key)) as tmp:
            tmp.write_bytes(data)
        return data

    def read(self, key: str, *, pictures: bool = False) -> UnitOutput:
        """Read a part back (tables always; PNG bytes when ``pictures``).

        Parameters
        ----------
        key : str
            The unit's key.
        pictures : bool
            Whether the PNG pictures (and the unit's files) are read too.

        Returns
        -------
        UnitOutput
            The unit's output.
        """
        return decode_part(self.path(key).read_bytes(), key, pictures=pictures)

    # ---- samples of a study-wide threshold's first pass -----------------------------------

    def sample_path(self, key: str) -> Path:
        """Return the file of a section's threshold sample (``.parts/samples/<key>.npz``).

        Parameters
        ----------
        key : str
            The sample's key (a hex digest: the input's hash and the sampling settings).

        Returns
        -------
        pathlib.Path
            The path (it may not exist).
        """
        return self.out.path(".parts", "samples", f"{key}.npz")

    def write_sample(self, key: str, data: bytes) -> None:
        """Keep a section's threshold sample (encoded by the worker), atomically.

        Parameters
        ----------
        key : str
            The sample's key.
        data : bytes
            The encoded sample (:func:`histoquant.batch.thresholds.encode_sample`).
        """
        path = self.sample_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)

    def read_sample(self, key: str) -> bytes | None:
        """Return a kept threshold sample's bytes, or None when there is none.

        Parameters
        ----------
        key : str
            The sample's key.

        Returns
        -------
        bytes or None
            The encoded sample.
        """
        path = self.sample_path(key)
        try:
            return path.read_bytes() if path.is_file() else None
        except OSError:
            return None

    # ---- input hashes -------------------------------------------------------------------

    def _hash_file(self) -> Path:
        return self.out.path(".parts", "hashes.json")

    def hashes(self, paths: list[Path]) -> tuple[dict[Path, str], dict[Path, str]]:
        """Return the SHA-256 of every input (cached by size and mtime); unreadable ones separately.

        Parameters
        ----------
        paths : list of pathlib.Path
            The input files.

        Returns
        -------
        hashes : dict of Path to str
        errors : dict of Path to str
            Why a file could not be read.
        """
        cache_path = self._hash_file()
        try:
            cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
        except (OSError, ValueError):
            cache = {}
        out, errors = {}, {}
        for p in paths:
            try:
                st = _stat(p)
                hit = cache.get(str(p))
                if hit and hit[0] == st[0] and hit[1] == st[1]:
                    out[p] = hit[2]
                    continue
                out[p] = file_sha256(p)
                cache[str(p)] = [st[0], st[1], out[p]]
            except OSError as exc:
                errors[p] = f"{type(exc).__name__}: {exc}"
        self.dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache_path) as tmp:
            tmp.write_text(json.dumps(cache, indent=0, sort_keys=True))
        return out, errors


def _stat(p: Path) -> tuple[int, int]:
    """Size and newest modification time (of every file inside, for a Zarr folder)."""
    if p.is_dir():
        size = mtime = 0
        for root, _dirs, files in os.walk(p):
            for f in files:
                st = os.stat(os.path.join(root, f))
                size += st.st_size
                mtime = max(mtime, st.st_mtime_ns)
        return size, mtime
    st = p.stat()
    return st.st_size, st.st_mtime_ns
