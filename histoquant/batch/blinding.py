"""Blinded study runs (ARRIVE 2.0 item 5): coded names, groups withheld, a key kept apart.

``histoquant batch STUDY -o OUT --blind`` measures the study as usual, but every sample the
run works with is coded before any image is read: each image gets a random code (``S`` and
six characters) that stands for its name and file, each animal a random code (``A`` and five
characters), and every group reads ``blinded``. The workers, the part store, the tables, the
QC pictures and their captions, the report, ``run.json``, ``errors.csv`` and the log and
progress lines only ever see the codes; free text that could still hold a real name (an error
message with a file path, a note listing skipped files, the study file's copy in
``run.json``) is rewritten with the codes. Rows are sorted by code, so their order says
nothing either.

The key — code → file, image, animal, group, level, section and input SHA-256 — is written
**outside** ``OUT`` (``OUT.blinding-key.csv`` beside it, or ``--key-out``), never inside it.
It is itself a valid sample sheet (``file``, ``animal``, ``group``, ``level``, ``section``
columns) with the codes added. The original sample sheet alone cannot serve as the key: the
codes are drawn at random (:mod:`secrets`) and appear nowhere in it. The input-hash cache,
which names every file, is kept beside the key as well (``KEY.hashes.json``).

``histoquant unblind OUT --key KEY [-o NEW]`` plans the study again (the folder and settings
the blinded run recorded in ``OUT/.parts/blinding.json``), checks the key against it and
against the parts, and rebuilds every output with real names and groups from the part store
through the same assembling and writing as a normal run — no image is measured again — into
a new folder (default ``OUT-unblinded``): the blinded results stay as the assessor saw them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import re
import secrets
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..errors import HistoquantError
from ..io.safe_paths import OutputFolder
from ..output import write_csv, write_json
from .samples import NO_LEVEL, Sample, natural_key
from .store import ID_DTYPES, PartStore, decode_part, encode_part
from .units import Unit, UnitOutput

if TYPE_CHECKING:
    from .plan import StudyPlan
    from .run import BatchReport

__all__ = ["BLINDED_GROUP", "BlindingError", "Blinding", "KEY_COLUMNS", "default_key_path",
           "read_key", "unblind", "Scrubber"]

log = logging.getLogger(__name__)

#: The group every sample of a blinded run reads.
BLINDED_GROUP = "blinded"
#: Columns of the key file (a sample sheet with the codes added).
KEY_COLUMNS = ["run", "image_code", "animal_code", "file", "image_name", "animal", "group",
               "level", "section", "sha256"]
# Crockford's base 32: no I, L, O, U, so a code read aloud or by hand is not misread
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_INFO = "blinding.json"


class BlindingError(HistoquantError):
    """A blinded run or its unblinding cannot go on (wrong key, key inside the results...)."""


def default_key_path(outdir: str | Path) -> Path:
    """Return where a blinded run writes its key by default: ``OUT.blinding-key.csv`` beside OUT.

    Parameters
    ----------
    outdir : str or pathlib.Path
        The blinded run's output folder.

    Returns
    -------
    pathlib.Path
        A file in the folder that holds ``outdir``.
    """
    outdir = Path(outdir).resolve()
    return outdir.parent / f"{outdir.name}.blinding-key.csv"


def _run_check(run: str) -> str:
    # blinding.json keeps a hash of the run's identifier, so that no cell of the key but
    # the codes appears in the results
    return hashlib.sha256(f"histoquant blinded run {run}".encode()).hexdigest()[:16]


def _code(prefix: str, n: int, taken: set[str]) -> str:
    while True:
        c = prefix + "".join(secrets.choice(_ALPHABET) for _ in range(n))
        if c not in taken:
            taken.add(c)
            return c


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.resolve().relative_to(folder.resolve())
        return True
    except ValueError:
        return False


def read_key(path: str | Path) -> pd.DataFrame:
    """Read and check a blinded run's key.

    Parameters
    ----------
    path : str or pathlib.Path
        The key file a blinded run wrote (CSV).

    Returns
    -------
    pandas.DataFrame
        :data:`KEY_COLUMNS`, every value text.

    Raises
    ------
    BlindingError
        When the file is missing or is not a key (a plain sample sheet has no codes).
    """
    path = Path(path)
    if not path.is_file():
        raise BlindingError(f"no such key file: {path}")
    try:
        key = pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:
        raise BlindingError(f"{path}: cannot read the key ({type(exc).__name__}: {exc})") \
            from exc
    missing = [c for c in ("run", "image_code", "animal_code", "file", "animal", "group")
               if c not in key.columns]
    if missing:
        raise BlindingError(
            f"{path}: not the key of a blinded run (no {', '.join(missing)} column); a sample "
            "sheet alone cannot unblind, because the codes are random: give the key the "
            "blinded run wrote (OUT.blinding-key.csv, or its --key-out)")
    if key["run"].nunique() != 1 or key["image_code"].duplicated().any():
        raise BlindingError(f"{path}: the key is damaged (several runs, or a code twice)")
    for c in KEY_COLUMNS:
        if c not in key.columns:
            key[c] = ""
    return key[KEY_COLUMNS]


class Scrubber:
    """Rewrite free text so that it names no file, image, animal or group of the study.

    Paths, file names and image names become the image's code; animal names, as whole
    tokens (``R01`` in ``evans_blue_R01_L4.geojson``), the animal's code; group names
    ``blinded`` (a name of digits only, or of one character, is not looked for as a token:
    it cannot be told from a number). Matching ignores case. Reversed
    (``codes → names``), the same class turns codes back into names.

    Parameters
    ----------
    substrings : mapping of str to str
        Replaced wherever they occur (paths, file and image names).
    tokens : mapping of str to str
        Replaced where they stand alone, not inside a longer run of letters and digits.
    """

    def __init__(self, substrings: Mapping[str, str], tokens: Mapping[str, str]):
        self.map = {k.lower(): v for k, v in {**tokens, **substrings}.items() if k}
        alts = [(re.escape(k), k) for k in substrings if k] + \
            [(rf"(?<![A-Za-z0-9]){re.escape(k)}(?![A-Za-z0-9])", k) for k in tokens if k]
        alts.sort(key=lambda a: len(a[1]), reverse=True)
        self.rx = re.compile("|".join(a for a, _ in alts), re.IGNORECASE) if alts else None

    def __call__(self, text: str) -> str:
        """Return ``text`` rewritten.

        Parameters
        ----------
        text : str
            Any text.

        Returns
        -------
        str
            The text with every name replaced.
        """
        if self.rx is None or not isinstance(text, str):
            return text
        return self.rx.sub(lambda m: self.map.get(m.group(0).lower(), m.group(0)), text)

    def deep(self, obj: Any) -> Any:
        """Return a copy of a JSON-like value with every string (keys too) rewritten.

        Parameters
        ----------
        obj : object
            Dicts, lists, tuples, strings and scalars.

        Returns
        -------
        object
            The same structure.
        """
        if isinstance(obj, str):
            return self(obj)
        if isinstance(obj, Mapping):
            return {self(k) if isinstance(k, str) else k: self.deep(v) for k, v in obj.items()}
        if isinstance(obj, (list, tuple)):
            return type(obj)(self.deep(v) for v in obj)
        return obj

    def frame(self, df: pd.DataFrame) -> pd.DataFrame:
        """Return a table whose text columns are rewritten (the same object when unchanged).

        Parameters
        ----------
        df : pandas.DataFrame
            Any table.

        Returns
        -------
        pandas.DataFrame
            The table, rewritten.
        """
        out = None
        for c in df.columns:
            # identifiers are coded already; "1" in a section column is no animal
            if c not in ID_DTYPES and (df[c].dtype == object
                                       or pd.api.types.is_string_dtype(df[c])):
                new = df[c].map(lambda v: self(v) if isinstance(v, str) else v)
                if not new.equals(df[c]):
                    out = df.copy() if out is None else out
                    out[c] = new
        return df if out is None else out


class _ScrubFilter(logging.Filter):
    def __init__(self, scrub: Scrubber):
        super().__init__()
        self.scrub = scrub

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = self.scrub(record.getMessage()), None
        if record.exc_info:
            import traceback

            record.exc_text = self.scrub("".join(traceback.format_exception(
                *record.exc_info)))
            record.exc_info = None
        return True


class _HashCache(PartStore):
    """The input-hash cache of a blinded run, beside its key (it names every file)."""

    def __init__(self, file: Path):
        self.out = OutputFolder(file.parent)
        self.dir = file.parent
        self.file = file

    def _hash_file(self) -> Path:
        return self.file


class _BlindStore(PartStore):
    """The part store of a blinded run: what a worker returns is scrubbed before it is kept."""

    def __init__(self, outdir: Path, scrub: Scrubber):
        super().__init__(outdir)
        self.scrub = scrub

    def write(self, out: UnitOutput) -> bytes:
        """Keep a finished unit, any real name left in its record or text columns coded.

        Parameters
        ----------
        out : UnitOutput
            A unit that succeeded.

        Returns
        -------
        bytes
            The part's bytes.
        """
        data = out.part if out.part is not None else encode_part(out)
        part = decode_part(data, out.key, pictures=True)
        meta = self.scrub.deep(part.meta)
        tables = {"summary": self.scrub.frame(part.summary),
                  "objects": self.scrub.frame(part.objects)}
        extra = {k: self.scrub.frame(v) for k, v in part.extra.items()}
        changed = meta != part.meta or any(tables[k] is not getattr(part, k) for k in tables) \
            or any(extra[k] is not part.extra[k] for k in extra)
        if changed:
            part = dataclasses.replace(part, meta=meta, extra=extra, part=None, **tables)
            out = dataclasses.replace(out, part=encode_part(part))
        return super().write(out)


@dataclass
class Blinding:
    """The codes of one blinded run and everything that keeps names out of its results.

    Made by :meth:`start` (a blinded run) or :meth:`for_unblinding`; :meth:`code_plan` turns
    the study's plan into the coded one the run measures and writes.

    Attributes
    ----------
    outdir : pathlib.Path
        The blinded results.
    key_path : pathlib.Path
        The key file (outside ``outdir``).
    run : str
        A random identifier of the blinded run, in its key and ``blinding.json``.
    image_codes : dict of str to str
        Image file (relative to the study folder) → code.
    animal_codes : dict of str to str
        Animal → code.
    """

    outdir: Path
    key_path: Path
    run: str
    image_codes: dict[str, str] = field(default_factory=dict)
    animal_codes: dict[str, str] = field(default_factory=dict)
    scrub: Scrubber | None = None
    real: dict[str, Sample] = field(default_factory=dict)  # image code → real sample
    coded_keys: dict[str, str] = field(default_factory=dict)  # plain unit key → coded key

    # ---- starting a blinded run ---------------------------------------------------------

    @classmethod
    def start(cls, outdir: str | Path, key_out: str | Path | None = None) -> Blinding:
        """Check the output and key paths and read the codes an earlier run of OUT drew.

        Parameters
        ----------
        outdir : str or pathlib.Path
            The blinded run's output folder.
        key_out : str or pathlib.Path, optional
            Where the key goes (default :func:`default_key_path`).

        Returns
        -------
        Blinding
            With the earlier run's identifier and codes when ``outdir`` holds a blinded run
            whose key is at ``key_out`` (so a resumed run keeps its codes), else new ones.

        Raises
        ------
        BlindingError
            When the key would be inside ``outdir``, ``outdir`` holds unblinded results, or
            the key file belongs to another run.
        """
        outdir = Path(outdir).resolve()
        key_path = Path(key_out).resolve() if key_out is not None else default_key_path(outdir)
        if _inside(key_path, outdir):
            raise BlindingError(f"the key {key_path} would be inside the blinded results "
                                f"{outdir}; give a --key-out outside it")
        info = _read_info(outdir)
        if info is None and outdir.is_dir() and any(
                (outdir / n).exists() for n in (".parts", "run.json", "sections.csv", "qc")):
            raise BlindingError(f"{outdir} holds the results of an unblinded run; a blinded "
                                "run needs a new or empty folder (or its own earlier "
                                "blinded results)")
        if key_path.exists():
            key = read_key(key_path)
            if info is None or _run_check(key["run"].iloc[0]) != info.get("run_check"):
                raise BlindingError(f"{key_path} is the key of another blinded run; give "
                                    "another --key-out, or move that key away")
            return cls(outdir, key_path, key["run"].iloc[0],
                       dict(zip(key["file"], key["image_code"])),
                       dict(zip(key["animal"], key["animal_code"])))
        if info is not None:
            raise BlindingError(f"{outdir} holds a blinded run whose key is not at {key_path}; "
                                "give its --key-out (or use a new output folder)")
        return cls(outdir, key_path, secrets.token_hex(8))

    @classmethod
    def for_unblinding(cls, results: Path, key: pd.DataFrame, key_path: Path) -> Blinding:
        """Return the codes of a key, checked against the blinded results it belongs to.

        Parameters
        ----------
        results : pathlib.Path
            The blinded results.
        key : pandas.DataFrame
            From :func:`read_key`.
        key_path : pathlib.Path
            Where the key was read (for messages).

        Returns
        -------
        Blinding

        Raises
        ------
        BlindingError
            When ``results`` is not blinded or the key is another run's.
        """
        info = _read_info(results)
        if info is None:
            raise BlindingError(f"{results} holds no blinded run (no .parts/{_INFO})")
        if _run_check(key["run"].iloc[0]) != info.get("run_check"):
            raise BlindingError(f"{key_path} is the key of another blinded run, not of "
                                f"{results}; nothing was written")
        return cls(results, key_path, key["run"].iloc[0],
                   dict(zip(key["file"], key["image_code"])),
                   dict(zip(key["animal"], key["animal_code"])))

    @property
    def hash_cache(self) -> PartStore:
        """The input-hash cache, beside the key (it names every input file)."""
        return _HashCache(self.key_path.with_name(self.key_path.name + ".hashes.json"))

    # ---- coding a plan ------------------------------------------------------------------

    def code_plan(self, plan: StudyPlan, *, fresh: bool = True) -> StudyPlan:
        """Return the coded plan: coded samples, units keyed anew, names gone from free text.

        Parameters
        ----------
        plan : StudyPlan
            The study's plan, as :func:`~histoquant.batch.plan.plan_study` made it.
        fresh : bool
            Draw codes for images and animals the key does not hold yet (a blinded run);
            False requires every one to be in the key (unblinding).

        Returns
        -------
        StudyPlan
            Each unit's key is a hash of its plain key and its codes, so a resumed blinded run
            finds its parts and a plain run never shares them.

        Raises
        ------
        BlindingError
            With ``fresh`` False, when the study has images or animals the key does not know.
        """
        from .plan import StudyPlan

        samples = list(plan.samples.values())
        missing = sorted({s.rel for s in samples} - set(self.image_codes), key=natural_key)
        if missing and not fresh:
            raise BlindingError(f"{self.key_path}: {len(missing)} image(s) of the study are not "
                                f"in the key ({', '.join(missing[:5])}); the study changed "
                                "since the blinded run, or this is another study's key")
        taken = set(self.image_codes.values()) | set(self.animal_codes.values())
        for s in sorted(samples, key=lambda s: natural_key(s.rel)):
            if s.rel not in self.image_codes:
                self.image_codes[s.rel] = _code("S", 6, taken)
            if s.animal not in self.animal_codes:
                self.animal_codes[s.animal] = _code("A", 5, taken)
        self.scrub = self._scrubber(plan)
        coded = {}
        for p, s in plan.samples.items():
            code = self.image_codes[s.rel]
            bad = [n for n in (s.animal, s.group, s.image) if s.section
                   and len(n) >= 2 and re.search("[A-Za-z]", n)
                   and Scrubber({}, {n: ""}).rx.search(s.section)]
            if bad:
                raise BlindingError(f"{s.rel}: its section label {s.section!r} holds "
                                    f"{bad[0]!r}, which blinding hides; use section numbers")
            coded[p] = dataclasses.replace(s, rel=code, image=code,
                                           animal=self.animal_codes[s.animal],
                                           group=BLINDED_GROUP)
            self.real[code] = s

        by_rel = {s.rel: p for p, s in plan.samples.items()}

        def new_key(key: str, s: Sample) -> str:
            k = hashlib.sha256(f"{key}|{s.image}|{s.animal}|blinded".encode()).hexdigest()[:24]
            self.coded_keys[key] = k
            return k

        # measured in the order of the codes: the progress lines follow no real order
        units = sorted((dataclasses.replace(u, key=new_key(u.key, coded[u.sample.path]),
                                            sample=coded[u.sample.path]) for u in plan.units),
                       key=lambda u: (natural_key(u.sample.rel), u.assay))
        failed = []
        for f in plan.failed:
            cs = coded[by_rel[f.meta["file"]]]
            k = new_key(f.key, cs)
            meta = {**self.scrub.deep(f.meta), "key": k, "image": cs.image, "file": cs.rel}
            meta["error"] = {**meta["error"], "image": cs.image, "file": cs.rel}
            failed.append(dataclasses.replace(f, key=k, meta=meta))
        cfg = plan.config
        raw = dict(cfg.raw)
        if "groups" in raw:
            raw["groups"] = "withheld (blinded run)"
        bcfg = dataclasses.replace(cfg, raw=self.scrub.deep(raw), title=self.scrub(cfg.title),
                                   group_order=(), group_of_animal={}, path=None)
        return StudyPlan(config=bcfg, samples=coded, units=units, failed=failed,
                         notes=[self.scrub(n) for n in plan.notes], inputs={}, sheet=None)

    def _scrubber(self, plan: StudyPlan) -> Scrubber:
        subs: dict[str, str] = {}
        tokens: dict[str, str] = {}
        for s in plan.samples.values():
            subs.update(_markers(s, self.image_codes[s.rel]))
            if s.roi is not None:
                subs[str(s.roi)] = subs[s.roi.name] = "[region file]"
            tokens[s.animal] = self.animal_codes[s.animal]
            tokens[s.group] = BLINDED_GROUP
        tokens.pop(BLINDED_GROUP, None)
        # a bare number ("12") or letter cannot be told from the numbers in free text: such
        # names are found only inside the paths and image names above
        tokens = {k: v for k, v in tokens.items() if len(k) >= 2 and re.search("[A-Za-z]", k)}
        return Scrubber(subs, tokens)

    def names(self) -> Scrubber:
        """Return the reverse rewriting, codes → names, for unblinding (after :meth:`code_plan`).

        Returns
        -------
        Scrubber
            Path, file and image markers back to what they stood for; animal codes back to
            the animals.
        """
        subs: dict[str, str] = {}
        for code, s in self.real.items():
            subs.update({m: name for name, m in _markers(s, code).items()
                         if name != str(s.path.resolve()) or name == str(s.path)})
        return Scrubber(subs, {c: a for a, c in self.animal_codes.items()})

    # ---- files of the run ---------------------------------------------------------------

    def write_key(self, plan: StudyPlan) -> Path:
        """Write the key (outside the results) and the run's ``.parts/blinding.json``.

        Parameters
        ----------
        plan : StudyPlan
            The study's (uncoded) plan.

        Returns
        -------
        pathlib.Path
            The key file.
        """
        rows = [{"run": self.run, "image_code": self.image_codes[s.rel],
                 "animal_code": self.animal_codes[s.animal], "file": s.rel,
                 "image_name": s.image, "animal": s.animal, "group": s.group,
                 "level": s.level if s.level != NO_LEVEL else "", "section": s.section,
                 "sha256": plan.inputs.get(s.rel, "")}
                for s in sorted(plan.samples.values(), key=lambda s: natural_key(s.rel))]
        # codes of images left out this time stay in the key: a later resume keeps them
        known = {r["file"] for r in rows}
        if self.key_path.is_file():
            old = read_key(self.key_path)
            rows += [r for r in old.to_dict("records") if r["file"] not in known]
        self.key_path.parent.mkdir(parents=True, exist_ok=True)
        write_csv(pd.DataFrame(rows, columns=KEY_COLUMNS), self.key_path)
        return self.key_path

    def write_info(self, args: Mapping[str, Any]) -> Path:
        """Write ``OUT/.parts/blinding.json``: the run's identifier and how to plan it again.

        Parameters
        ----------
        args : mapping
            The planning arguments (study folder, study file, sample sheet, assays,
            overrides); none holds a sample's name.

        Returns
        -------
        pathlib.Path
            The file written.
        """
        out = OutputFolder(self.outdir)
        return write_json({"run_check": _run_check(self.run), "key": str(self.key_path),
                           **args},
                          out.path(".parts", _INFO))

    @contextlib.contextmanager
    def quiet_names(self) -> Iterator[None]:
        """Rewrite every log line of this process with the codes while the block runs.

        Yields
        ------
        None
        """
        filt = _ScrubFilter(self.scrub) if self.scrub is not None else None
        handlers = list(logging.getLogger().handlers)
        if logging.lastResort is not None:
            handlers.append(logging.lastResort)
        for h in handlers:
            h.addFilter(filt)
        try:
            yield
        finally:
            for h in handlers:
                h.removeFilter(filt)

    def store(self) -> PartStore:
        """Return the run's part store, which codes any name a worker's output still holds.

        Returns
        -------
        PartStore
            ``OUT/.parts``.
        """
        return _BlindStore(self.outdir, self.scrub)


def _markers(s: Sample, code: str) -> dict[str, str]:
    """Each way free text may name a sample's file → what stands for it in blinded text.

    Distinct markers for the path, the file and the file name let unblinding put back the
    very text a plain run would have written.
    """
    out = {str(s.path.resolve()): f"[path of {code}]", str(s.path): f"[path of {code}]",
           s.rel: f"[file {code}]", s.path.name: f"[file name of {code}]", s.image: code}
    return {k: v for k, v in out.items() if k}


def _read_info(outdir: Path) -> dict[str, Any] | None:
    p = Path(outdir) / ".parts" / _INFO
    if not p.is_file():
        return None
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise BlindingError(f"{p}: unreadable ({exc})") from exc


def refuse_plain_run(outdir: str | Path) -> None:
    """Refuse a plain run into blinded results (its real names would join the coded ones).

    Parameters
    ----------
    outdir : str or pathlib.Path
        The output folder of a plain run.

    Raises
    ------
    BlindingError
        When ``outdir`` holds a blinded run.
    """
    if _read_info(Path(outdir).resolve()) is not None:
        raise BlindingError(f"{outdir} holds a blinded run: resume it with --blind, unblind "
                            "it with 'histoquant unblind', or use another output folder")


def plan_args(folder: Path, config: Any, samples: Any, assays: Iterable[str],
              overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Return the planning arguments of a run as JSON-ready values (for ``blinding.json``).

    Parameters
    ----------
    folder : pathlib.Path
        The study folder.
    config, samples : path or None
        The study file and sample sheet given.
    assays : iterable of str
        The assays chosen.
    overrides : mapping
        From :func:`~histoquant.batch.plan.study_overrides`.

    Returns
    -------
    dict
        Paths made absolute; parameter objects as their mappings.
    """
    ov = {k: (v.to_dict() if hasattr(v, "to_dict") else v) for k, v in overrides.items()}
    return {"folder": str(Path(folder).resolve()),
            "config": str(Path(config).resolve()) if config is not None else None,
            "samples": str(Path(samples).resolve()) if samples is not None else None,
            "assays": list(assays), "overrides": ov}


# ---- unblinding ---------------------------------------------------------------------------

class _UnblindStore(PartStore):
    """Reads a blinded run's parts back with real names: records and captions."""

    def __init__(self, results: Path, names: Scrubber, units: Mapping[str, Unit],
                 blinding: Blinding):
        super().__init__(results)
        self.names, self.units, self.blinding = names, units, blinding

    def read(self, key: str, *, pictures: bool = False) -> UnitOutput:
        """Read a part back with the real names.

        Parameters
        ----------
        key : str
            The unit's key.
        pictures : bool
            Whether the PNG pictures are read too; each gets a caption line with the real
            names above its coded one.

        Returns
        -------
        UnitOutput
            The unit's output.
        """
        part = super().read(key, pictures=pictures)
        u = self.units[key]
        s = u.sample
        meta = {**self.names.deep(part.meta), "image": s.image, "file": s.rel}
        line = [" · ".join([s.image, u.assay, " ".join(x for x in (s.animal, s.group, s.level)
                                                      if x and x != NO_LEVEL)])
                + f" (blinded as {self.blinding.image_codes[s.rel]}, "
                  f"{self.blinding.animal_codes[s.animal]})"]
        summary = part.summary
        if u.study_threshold is not None:
            # the label names the group that set it ("study:mad(vehicle)"), which the
            # blinded part holds as "blinded": the unit knows the real one
            meta["study_threshold"] = u.study_threshold
            column = u.study_threshold["column"]
            if column in summary.columns:
                summary = summary.assign(**{column: u.study_threshold["label"]})
        return dataclasses.replace(
            part, meta=meta, summary=summary,
            qc_png=_recaption(part.qc_png, line) if part.qc_png else None,
            thumb_png=_recaption(part.thumb_png, line) if part.thumb_png else None)


def _recaption(png: bytes, lines: list[str]) -> bytes:
    import numpy as np
    from PIL import Image as PILImage

    from ..output import PNG_COMPRESS_LEVEL
    from ..qc import add_caption

    rgb = np.asarray(PILImage.open(io.BytesIO(png)).convert("RGB"))
    buf = io.BytesIO()
    PILImage.fromarray(add_caption(rgb, lines)).save(buf, format="PNG",
                                                     compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()


def unblind(results: str | Path, key: str | Path | None = None,
            out: str | Path | None = None) -> BatchReport:
    """Rebuild a blinded run's outputs with real names and groups, from its part store.

    Parameters
    ----------
    results : str or pathlib.Path
        The blinded run's output folder.
    key : str or pathlib.Path, optional
        Its key (default: the key path the run recorded, ``OUT.blinding-key.csv``).
    out : str or pathlib.Path, optional
        Where the unblinded outputs go (default ``OUT-unblinded`` beside ``results``);
        never ``results`` itself, so the blinded outputs stay as the assessor saw them.

    Returns
    -------
    BatchReport
        As :func:`~histoquant.batch.run.run_batch` returns it; no image is measured.

    Raises
    ------
    BlindingError
        When the key is not this run's, the study changed since (an image or result
        missing), or ``out`` is ``results``; nothing is written then.
    StudyError
        When the study folder, file or sample sheet can no longer be read.
    """
    from .execute import Measured
    from .plan import StudyPlan, plan_study
    from .run import BatchReport, _finish
    from .thresholds import apply_study_thresholds

    t_start = time.perf_counter()
    results = Path(results).resolve()
    info = _read_info(results)
    if info is None:
        raise BlindingError(f"{results} holds no blinded run (no .parts/{_INFO})")
    key_path = Path(key) if key is not None else Path(info.get("key") or
                                                      default_key_path(results))
    keydf = read_key(key_path)
    b = Blinding.for_unblinding(results, keydf, key_path)
    out = Path(out).resolve() if out is not None else \
        results.parent / f"{results.name}-unblinded"
    if out == results or _inside(out, results):
        raise BlindingError(f"the unblinded outputs go to a new folder, not into the blinded "
                            f"results {results}")
    plan = plan_study(info["folder"], results, config=info.get("config"),
                      samples=info.get("samples"), assays=info.get("assays") or (),
                      overrides=info.get("overrides") or {}, hash_store=b.hash_cache)
    groups = dict(zip(keydf["file"], keydf["group"]))
    wrong = [s.rel for s in plan.samples.values() if s.rel in groups
             and groups[s.rel] != s.group]
    if wrong:
        raise BlindingError(f"{key_path}: the key's groups differ from the study's for "
                            f"{len(wrong)} image(s) ({', '.join(wrong[:5])}); nothing was "
                            "written")
    store = PartStore(results)
    # the study-wide thresholds of the blinded run, from its kept samples (no image is read
    # when they are all there): the units' keys hold them
    apply_study_thresholds(plan, store, resume=True)
    coded = b.code_plan(plan, fresh=False)
    run_json = results / "run.json"
    blinded_run = json.loads(run_json.read_text()) if run_json.is_file() else {}
    failures = {(f.get("image"), f.get("assay")): f for f in blinded_run.get("failures", [])}
    flags = {(m.get("image"), m.get("assay")): m.get("flags") for m in
             blinded_run.get("units", [])}
    names = b.names()
    records, missing = {}, []
    coded_units = {u.key: u for u in coded.units}
    for u in plan.units:
        cu = coded_units[b.coded_keys[u.key]]
        if store.has(cu.key):
            continue
        f = failures.get((cu.sample.image, cu.assay))
        if f is None:
            missing.append(f"{u.sample.rel} ({u.assay})")
            continue
        err = {**names.deep({k: v for k, v in f.items() if k != "traceback"}),
               "image": u.sample.image, "file": u.sample.rel, "assay": u.assay}
        records[cu.key] = {"image": u.sample.image, "file": u.sample.rel, "assay": u.assay,
                           "key": cu.key, "flags": names.deep(
                               flags.get((cu.sample.image, cu.assay)) or []), "error": err}
    if missing:
        raise BlindingError(f"{len(missing)} result(s) of the study are not in {results} "
                            f"({', '.join(missing[:5])}): the blinded run is unfinished "
                            "(resume it first) or the study changed since; nothing was "
                            "written")
    # failed when planned (unreadable): the plain records, under the coded keys
    failed_real = [dataclasses.replace(f, key=cf.key, meta={**f.meta, "key": cf.key})
                   for f, cf in zip(plan.failed, coded.failed)]
    # the plain plan, with each unit under its coded key (where its part is)
    units = [dataclasses.replace(u, key=b.coded_keys[u.key]) for u in plan.units]
    real_plan = StudyPlan(config=plan.config, samples=plan.samples, units=units,
                          failed=failed_real, notes=list(plan.notes), inputs=plan.inputs,
                          sheet=plan.sheet, thresholds=plan.thresholds)
    ustore = _UnblindStore(results, names, {u.key: u for u in units}, b)
    measured = Measured(records=records, n_reused=len(units) - len(records))
    report = BatchReport(outdir=out, n_units=len(units) + len(coded.failed),
                         n_reused=measured.n_reused,
                         notes=[*plan.notes, f"unblinded from {results} with the key "
                                f"{key_path} ; no image was measured "
                                "again"])
    out.mkdir(parents=True, exist_ok=True)
    _finish(real_plan, ustore, OutputFolder(out), report, measured, jobs=1, scheduler=None,
            resume=True, timings={"planning_s": time.perf_counter() - t_start,
                                  "measuring_s": 0.0},
            t_start=t_start, aliases={s.image: [b.image_codes[s.rel]]
                                      for s in plan.samples.values()},
            blinding="unblinded")
    return report
