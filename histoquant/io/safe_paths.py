"""Output file names made from data, and the check that every write stays in the output folder.

Region, image, animal, measure and assay names come from users: a RoiSet drawn in ImageJ, a
QuPath GeoJSON, a sample sheet, a file name. Turned into file names as they are, a region
called ``../../x`` writes beside the output folder and one called ``/a/b`` makes folders in
it. Everything that builds an output file name from such a name goes through this module:

- :func:`safe_name` / :func:`safe_file_name` turn names into one safe path component,
  deterministically. Ordinary names (letters, digits, ``-``, ``_``, ``.``, inner spaces) are
  kept as they are; any other name is cleaned and tagged with a short hash of the original,
  so two different names never share a file (``a/b`` and ``a_b`` stay apart).
- :func:`check_inside` refuses a path that, once symbolic links are resolved, is not inside
  the output folder; :class:`OutputFolder` builds every output path through it.

Only file *names* are cleaned: tables keep the original names in their columns.
"""

from __future__ import annotations

import hashlib
import json
import os
import unicodedata
from pathlib import Path

from ..errors import OutputPathError

__all__ = ["safe_name", "safe_file_name", "check_inside", "OutputFolder", "MAX_NAME_BYTES"]

# Most file systems allow 255 bytes per name; atomic writes add a temporary prefix and
# suffix (".<name>.<8 random>.part", 15 bytes), and a little room is left for the suffix.
MAX_NAME_BYTES = 200

# kept as they are (with letters and digits, Unicode ones included); spaces only inside a
# name, since lab names ("ventral horn", "Rat 1") often hold them and they are safe everywhere
_KEEP = frozenset("-_. ")
# names Windows reserves whatever their extension ("CON.csv" cannot be created there)
_RESERVED = frozenset({"CON", "PRN", "AUX", "NUL"}
                      | {f"{d}{n}" for d in ("COM", "LPT") for n in "0123456789¹²³"})
_HASH_CHARS = 8


def _clean(text: str) -> tuple[str, bool]:
    """``text`` as a safe component (no length bound) and whether that changed it."""
    norm = unicodedata.normalize("NFC", text)
    chars = [c if c.isalnum() or c in _KEEP else "_" for c in norm]
    # Leading dots hide a file and make "." and ".."; Windows drops trailing dots and
    # spaces. Both ends are therefore letters, digits, "_" or "-".
    for i in range(len(chars)):
        if chars[i] not in ". ":
            break
        chars[i] = "_"
    for i in range(len(chars) - 1, -1, -1):
        if chars[i] not in ". ":
            break
        chars[i] = "_"
    out = "".join(chars) or "unnamed"
    if out.split(".")[0].upper() in _RESERVED:
        out = "_" + out
    return out, out != text


def _truncate(text: str, max_bytes: int) -> str:
    """Return the longest prefix of ``text`` whose UTF-8 encoding fits ``max_bytes``."""
    return text.encode("utf-8")[:max(max_bytes, 0)].decode("utf-8", "ignore")


def safe_file_name(*parts: object, suffix: str = "", sep: str = "__",
                   max_bytes: int = MAX_NAME_BYTES) -> str:
    r"""One safe file name from one or more names joined by ``sep``, plus ``suffix``.

    Parameters
    ----------
    *parts : object
        Names from data (region, image, animal, measure, assay...), each turned into text.
    suffix : str
        File extension chosen by the code (``".csv"``), added as it is.
    sep : str
        Put between the parts (``"__"`` as in ``<assay>__<measure>__<region>__<level>``).
    max_bytes : int
        Longest name, in UTF-8 bytes, suffix included.

    Returns
    -------
    str
        ``sep.join(parts) + suffix`` when every part is ordinary: letters and digits
        (Unicode too), ``-``, ``_``, ``.`` and inner spaces, not starting with a dot, not a
        Windows device name (``CON``, ``NUL``, ``COM1``...), and, when there are several
        parts, none holding ``sep`` or starting or ending with its character (so that the
        parts can be told apart). Otherwise every other character becomes ``_`` and
        ``_<8 hex>`` (the start of the SHA-256 of the original parts) is added, so different
        originals give different names; a name longer than ``max_bytes`` is cut and tagged
        the same way. Never empty, never ``.`` or ``..``, never holds ``/``, ``\\`` or NUL.

    Raises
    ------
    ValueError
        When no part is given, ``suffix`` is not a plain extension, or ``max_bytes`` leaves
        no room for a name.

    Examples
    --------
    >>> safe_file_name("motor-neurons", "n_cells", "grey_matter", "L4", suffix=".csv")
    'motor-neurons__n_cells__grey_matter__L4.csv'
    >>> safe_file_name("../../x", suffix=".csv")
    '___.._x_9cdf6a50.csv'
    """
    if not parts:
        raise ValueError("safe_file_name needs at least one name")
    if suffix and (not suffix.startswith(".") or _clean(suffix[1:]) != (suffix[1:], False)):
        raise ValueError(f"suffix {suffix!r} is not a plain file extension such as '.csv'")
    texts = [str(p) for p in parts]
    cleaned = [_clean(t) for t in texts]
    changed = any(ch for _, ch in cleaned)
    if len(parts) > 1:
        changed = changed or any(sep in c or c.startswith(sep[0]) or c.endswith(sep[-1])
                                 for c, _ in cleaned)
    name = sep.join(c for c, _ in cleaned)
    suffix_bytes = len(suffix.encode("utf-8"))
    room = max_bytes - suffix_bytes - 1 - _HASH_CHARS
    if room < 1:
        raise ValueError(f"max_bytes={max_bytes} leaves no room for a name")
    if changed or len(name.encode("utf-8")) + suffix_bytes > max_bytes:
        key = texts[0] if len(texts) == 1 else json.dumps(texts)
        digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
        name = f"{_truncate(name, room)}_{digest[:_HASH_CHARS]}"
    return name + suffix


def safe_name(name: object, *, max_bytes: int = MAX_NAME_BYTES) -> str:
    """One safe path component (file or folder name) from any name.

    The same rules as :func:`safe_file_name` with one part and no suffix: ordinary names
    are returned unchanged, anything else is cleaned and tagged with a hash of the original.

    Parameters
    ----------
    name : object
        A region, image, animal, measure or assay name (turned into text).
    max_bytes : int
        Longest result in UTF-8 bytes.

    Returns
    -------
    str

    Examples
    --------
    >>> safe_name("grey_matter")
    'grey_matter'
    >>> safe_name("a/b") != safe_name("a_b")
    True
    """
    return safe_file_name(name, max_bytes=max_bytes)


def _why_outside(root: Path, path: Path, real: Path) -> str:
    """Why ``path`` (absolute, under ``root`` by name) resolves outside ``root``."""
    cur = Path(path.anchor)
    for part in path.parts[1:]:
        cur = cur / part
        if cur != root and cur.is_relative_to(root) and cur.is_symlink():
            return f"{cur} is a symbolic link to {os.readlink(cur)}"
    return f"it resolves to {real}"


def check_inside(root: str | Path, path: str | Path) -> Path:
    """Return ``path`` (made absolute) when it lies inside ``root`` after resolving links.

    Every existing component of ``path`` is resolved (``Path.resolve``), so a symbolic link
    anywhere under ``root`` (a pre-existing ``outdir/qc -> /elsewhere``, or the file itself)
    that leads outside ``root`` is refused; links that stay inside are followed. ``root``
    itself may be a link: the user chose it.

    Parameters
    ----------
    root : path
        The output folder.
    path : path
        A file or folder to be written under it (a relative path is taken from the current
        folder, as ``open`` does).

    Returns
    -------
    Path
        ``path``, absolute.

    Raises
    ------
    OutputPathError
        Naming the path and why: it leads out of ``root``, a component is a link to a place
        outside, it is ``root`` itself, or a link loop.
    """
    root_abs = Path(os.path.abspath(root))
    # Not normalised: "a/link/../b" is where the system says, which resolve() follows.
    p = Path(path) if Path(path).is_absolute() else Path.cwd() / path
    if p.name in ("", ".", "..") or \
            not Path(os.path.normpath(p)).is_relative_to(root_abs):
        raise OutputPathError(f"{path}: refused to write outside the output folder {root} "
                              "(the name leads out of it)")
    try:
        root_real = root_abs.resolve()
        real = p.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a link loop (Python < 3.13)
        raise OutputPathError(f"{path}: refused to write in the output folder {root} "
                              f"({exc})") from exc
    if real == root_real or not real.is_relative_to(root_real):
        why = "it is the output folder itself" if real == root_real else \
            _why_outside(root_abs, p, real)
        raise OutputPathError(f"{path}: refused to write outside the output folder {root} "
                              f"({why})")
    return p


class OutputFolder:
    """An output folder that hands out checked paths.

    Parameters
    ----------
    root : path
        The output folder (it need not exist yet).

    Examples
    --------
    >>> out = OutputFolder("results")  # doctest: +SKIP
    >>> out.path("prism", safe_file_name(assay, measure, region, level, suffix=".csv"))
    ... # doctest: +SKIP
    """

    def __init__(self, root: str | Path):
        self.root = Path(os.path.abspath(root))

    def path(self, *parts: str) -> Path:
        """Return ``root / parts...``, checked by :func:`check_inside`.

        ``parts`` are names the code chose (``"qc"``, ``"summary.csv"``) or made with
        :func:`safe_name` / :func:`safe_file_name`; a part that still climbs out or passes
        through a link to elsewhere raises :class:`~histoquant.errors.OutputPathError`.

        Parameters
        ----------
        *parts : str
            Folder and file names below the root.

        Returns
        -------
        pathlib.Path
            The path (nothing is created).
        """
        if not parts:
            raise ValueError("OutputFolder.path needs at least one name")
        return check_inside(self.root, self.root.joinpath(*parts))

    def check(self, depth: int = 2) -> None:
        """Refuse an output folder holding a symbolic link that leads outside it.

        Looks at the entries of ``root`` and of its sub-folders, ``depth`` levels down,
        without following links, so that a run can stop before it measures anything
        instead of failing at its first write.

        Parameters
        ----------
        depth : int
            How many levels of sub-folders are looked at.

        Raises
        ------
        OutputPathError
            Naming the first such link.
        """
        def scan(folder: str, level: int) -> None:
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except (FileNotFoundError, NotADirectoryError):
                return
            for entry in entries:
                if entry.is_symlink():
                    check_inside(self.root, entry.path)
                elif level < depth and entry.is_dir(follow_symlinks=False):
                    scan(entry.path, level + 1)

        if self.root.is_symlink() or self.root.is_dir():
            scan(str(self.root), 1)

    def __repr__(self) -> str:
        """``OutputFolder('<root>')``."""
        return f"OutputFolder({str(self.root)!r})"
