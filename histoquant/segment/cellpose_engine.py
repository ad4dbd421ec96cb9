"""Cellpose (v4, "Cellpose-SAM") as an instance-segmentation engine.

An assay that offers ``engine="cellpose"`` calls :func:`segment_cellpose` to get a label image
of cells (somata, nuclei), then measures and filters those labels exactly as it does the
classical engine's. This module only turns pixels into labels:

- options in physical units (:class:`CellposeOptions`): the expected diameter in µm becomes
  cellpose's diameter in pixels (``diameter_um / pixel_size_um``), the smallest kept area in
  µm² becomes cellpose's ``min_size`` in pixels;
- normalisation from percentiles of the *whole* image, so every tile of a section sees the same
  intensity scale (cellpose's own normalisation works per call, hence per tile);
- large images in overlapping tiles (:mod:`histoquant.segment.tiled_labels`), objects on the
  seams counted once; within a tile, cellpose runs its network on its own 256 px blocks;
- cellpose and PyTorch are an optional extra, imported only inside the call, and the model's
  weights must already be on disk: this module never downloads (a batch run on a cluster node
  without internet must fail at once with a message that says what to do, not hang).

Diameter in Cellpose 4: the network is trained on objects of many sizes and usually needs no
diameter. When one is given, cellpose resizes the image by ``30 / diameter_px`` before the
network (objects then measure about 30 px) and resizes the flows back, so the masks always
come at the input's resolution. The network's cost scales with the resized area: a diameter
of 60 px makes it about four times cheaper, one of 15 px four times dearer.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ChannelError, DependencyError, EmptyImageError, ParamsError, PixelSizeError
from ..io.image import Image
from ..params import AssayParams, param
from .tiled_labels import segment_in_tiles

__all__ = [
    "CellposeOptions",
    "segment_cellpose",
    "resolve_model_path",
    "require_cellpose",
    "cellpose_models_dir",
    "INSTALL_HINT",
]

log = logging.getLogger(__name__)

#: The oldest cellpose whose API this module uses (``use_bfloat16``; diameter only rescales).
MIN_CELLPOSE = (4, 0, 5)

INSTALL_HINT = (
    'Install the optional extra: pip install "histoquant[cellpose]". On a machine without an '
    "NVIDIA GPU install the CPU build of PyTorch first, or pip pulls a CUDA build of several "
    "GB: pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu "
    '(then pip install "histoquant[cellpose]"). torch and torchvision must come from the same '
    "build."
)

_NETWORK_BLOCK_PX = 30.0  # cellpose resizes so that objects measure this many pixels


@dataclass(frozen=True)
class CellposeOptions(AssayParams):
    """How to run cellpose; every size is physical and converted with the pixel size."""

    model: str = param(
        "cpsam",
        help="Cellpose model: a name whose weights file lies in the cellpose models folder "
        "(CELLPOSE_LOCAL_MODELS_PATH, else ~/.cellpose/models), e.g. 'cpsam' (Cellpose-SAM, the "
        "generalist model every cellpose 4 release knows) or 'cpsam_v2' (newer releases), or "
        "the path of a model file, e.g. one fine-tuned on your own annotated sections. "
        "Never downloaded here: see docs/cellpose.md.",
    )
    diameter_um: float | None = param(
        None,
        unit="µm",
        minimum=0.1,
        help="Expected object diameter. None: no rescaling (Cellpose-SAM was trained on many "
        "object sizes and needs none). Given: the image is resized so objects are ~30 px "
        "across for the network, which also sets the network's cost. For rat motor-neuron "
        "somata ~28-40 µm (alpha-MN ~28 µm equivalent diameter, Mayhew & Momoh 1974; range 10-60).",
    )
    flow_threshold: float = param(
        0.4,
        minimum=0.0,
        help="Largest error allowed between a mask's own flows and the network's; higher keeps "
        "more (and worse-shaped) masks. 0.4 is cellpose's default.",
    )
    cellprob_threshold: float = param(
        0.0,
        minimum=-6.0,
        maximum=6.0,
        help="Cell-probability logit above which a pixel may belong to a mask; lower finds more "
        "and larger masks, higher fewer and smaller. 0 is cellpose's default.",
    )
    min_area_um2: float = param(
        20.0,
        unit="µm²",
        minimum=0.0,
        help="Masks smaller than this are dropped (cellpose's min_size, converted to pixels). "
        "20 µm² is a disc of 5 µm, below any nucleus (glial nuclei ~9 µm, Mayhew & Momoh 1974): it "
        "only removes specks; the assay applies its own size criteria afterwards.",
    )
    channels: tuple[int, ...] = param(
        (),
        help="Indices of up to 3 channels to give the network, in order. Empty: every channel "
        "of a 1-3 channel image (an RGB brightfield image as is).",
    )
    invert: bool = param(
        False,
        help="Invert intensities after normalisation, so dark objects on a bright background "
        "(brightfield) look like fluorescence. Cellpose-SAM usually copes either way; try it "
        "when a brightfield stain segments poorly.",
    )
    norm_low_pct: float = param(
        1.0,
        unit="%",
        minimum=0.0,
        maximum=100.0,
        help="Percentile of the whole image mapped to 0 (per channel); cellpose's default.",
    )
    norm_high_pct: float = param(
        99.0,
        unit="%",
        minimum=0.0,
        maximum=100.0,
        help="Percentile of the whole image mapped to 1 (per channel); cellpose's default.",
    )
    device: str = param(
        "auto",
        choices=("auto", "cpu", "cuda", "mps"),
        help="Where the network runs. auto: a CUDA GPU when PyTorch sees one, else Apple MPS, "
        "else the CPU. Asking for cuda/mps without one is an error.",
    )
    bfloat16: bool = param(
        True,
        help="Run the network in bfloat16, cellpose's default since 4.0.5: half the memory, "
        "and faster on GPUs and CPUs with bf16 instructions. False: float32.",
    )
    batch_size: int = param(
        8,
        minimum=1,
        help="Network blocks (256 px) run at once; larger is faster on a GPU with memory to "
        "spare. 8 is cellpose's default.",
    )
    tile_size_px: int = param(
        2048,
        unit="px",
        minimum=256,
        help="Edge of the square tiles a large image is cut into (input pixels). Bounds memory: "
        "cellpose holds several float copies of what it is given. 2048 px keeps that under "
        "~1 GB.",
    )
    tile_overlap_um: float = param(
        100.0,
        unit="µm",
        minimum=0.0,
        help="Overlap of neighbouring tiles. It must exceed the largest object's diameter so "
        "the tile that keeps an object saw all of it: motor-neuron somata reach 60 µm "
        "(rat retrograde-tracer studies), and 100 µm leaves context around them.",
    )

    def __post_init__(self) -> None:
        """Validate the fields, the normalisation percentiles' order and the channels."""
        super().__post_init__()
        if self.norm_low_pct >= self.norm_high_pct:
            raise ParamsError(
                f"CellposeOptions.norm_low_pct ({self.norm_low_pct}) must be below "
                f"norm_high_pct ({self.norm_high_pct})"
            )
        if len(self.channels) > 3 or any(int(c) < 0 for c in self.channels):
            raise ParamsError(
                f"CellposeOptions.channels = {self.channels!r}: give up to 3 channel indices "
                "(0-based), the network reads at most 3 channels"
            )
        if not str(self.model).strip():
            raise ParamsError("CellposeOptions.model is empty: give a model name or file path")


def cellpose_models_dir() -> Path:
    """Return the folder cellpose keeps model weights in.

    ``CELLPOSE_LOCAL_MODELS_PATH`` when set, else ``~/.cellpose/models`` (cellpose's own rule;
    read at each call here, whereas cellpose reads it once when imported).

    Returns
    -------
    pathlib.Path
        The folder (it need not exist).
    """
    env = os.environ.get("CELLPOSE_LOCAL_MODELS_PATH")
    return Path(env).expanduser() if env else Path.home() / ".cellpose" / "models"


def resolve_model_path(model: str | os.PathLike[str]) -> Path:
    """Return the weights file of a cellpose model given by name or path; never downloads.

    Parameters
    ----------
    model : str or path
        An existing file, or the name of a file in :func:`cellpose_models_dir` (``cpsam``,
        ``cpsam_v2``, or a user model saved there by the cellpose GUI).

    Returns
    -------
    Path
        The absolute path of the weights file.

    Raises
    ------
    DependencyError
        When no such file exists, with where to put it and how to get it.
    """
    text = os.fspath(model)
    path = Path(text).expanduser()
    if path.is_file():
        return path.resolve()
    folder = cellpose_models_dir()
    is_name = "/" not in text and os.sep not in text
    if is_name and (folder / text).is_file():
        return (folder / text).resolve()
    if not is_name:
        raise DependencyError(
            f"Cellpose model file {path} does not exist. Give the path of a model file saved "
            "by cellpose (training writes <save_path>/models/<model_name>), or the name of a "
            f"model whose file lies in {folder}."
        )
    raise DependencyError(
        f"The weights of the cellpose model '{text}' are not on this machine (looked for the "
        f"file {folder / text}); histoquant never downloads them during an analysis. On a "
        "machine with internet access run once: python -c \"from cellpose import models; "
        f"models.CellposeModel(pretrained_model='{text}')\", which saves them to "
        "~/.cellpose/models, then copy that file here. Or put the file in any folder and set "
        "CELLPOSE_LOCAL_MODELS_PATH to that folder, or give the file's path as the model "
        "(see docs/cellpose.md)."
    )


@contextlib.contextmanager
def _quiet(*names: str) -> Iterator[None]:
    """Silence cellpose's import-time notices (an optional DINOv3 backbone it cannot find)."""
    loggers = [logging.getLogger(n) for n in names]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _import_cellpose() -> Any:
    """``cellpose.models``, or a DependencyError that says what to install."""
    try:
        import torch  # noqa: F401
    except ImportError as exc:
        raise DependencyError(f"engine 'cellpose' needs PyTorch, which is not installed. "
                              f"{INSTALL_HINT}") from exc
    try:
        with _quiet("cellpose.vit", "cellpose.models"):
            from cellpose import models
    except ImportError as exc:
        raise DependencyError(f"engine 'cellpose' needs cellpose >= 4.0.5, which is not "
                              f"installed ({exc}). {INSTALL_HINT}") from exc
    except RuntimeError as exc:
        # a CUDA torchvision beside a CPU torch cannot register its operators
        if "torchvision" in str(exc):
            raise DependencyError(
                f"cellpose cannot be imported: torchvision does not match the installed torch "
                f"({exc}). Install both from the same build, e.g. "
                "pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu"
            ) from exc
        raise
    from importlib import metadata

    version = metadata.version("cellpose")
    parts = tuple(int(p) for p in version.split(".")[:3] if p.isdigit())
    if parts < MIN_CELLPOSE:
        raise DependencyError(
            f"engine 'cellpose' needs cellpose >= 4.0.5 (Cellpose-SAM); cellpose {version} is "
            f'installed. pip install --upgrade "histoquant[cellpose]"'
        )
    return models


def require_cellpose(model: str | os.PathLike[str] = "cpsam") -> Path:
    """Check that cellpose can run ``model`` here, before a batch starts; never downloads.

    Parameters
    ----------
    model : str or path
        As :attr:`CellposeOptions.model`.

    Returns
    -------
    Path
        The model's weights file.

    Raises
    ------
    DependencyError
        cellpose or torch is missing or broken, or the weights are not on disk; the message
        says what to install or where to put the file.
    """
    _import_cellpose()
    return resolve_model_path(model)


def _pick_device(choice: str) -> str:
    import torch

    has_mps = bool(getattr(torch.backends, "mps", None) and torch.backends.mps.is_available())
    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "mps" if has_mps else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise DependencyError(
            f"device 'cuda' was asked for, but PyTorch {torch.__version__} sees no CUDA GPU "
            f"(built for CUDA {torch.version.cuda}). Use device 'auto' or 'cpu', or install a "
            "torch build that matches the GPU driver."
        )
    if choice == "mps" and not has_mps:
        raise DependencyError("device 'mps' was asked for, but PyTorch sees no Apple GPU; use "
                              "device 'auto' or 'cpu'.")
    return choice


def _check_model_file(path: Path) -> None:
    """Refuse a file that is not a Cellpose 4 state dict before building the (large) network."""
    import torch

    try:
        state = torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except Exception as exc:  # torch raises several types for foreign or truncated files
        raise DependencyError(
            f"{path}: not a cellpose model file ({type(exc).__name__}: {exc})"
        ) from exc
    if not isinstance(state, dict) or "W2" not in state:
        raise DependencyError(
            f"{path}: not a Cellpose 4 model (no 'W2' weights). Cellpose 3 models (cyto3, "
            "nuclei, ...) do not load in cellpose 4: retrain on your images or use 'cpsam'."
        )


@lru_cache(maxsize=1)
def _load_model(path: str, stamp: tuple[int, int], device: str, bfloat16: bool) -> Any:
    """Build the network once per (file, version of the file, device, precision)."""
    models = _import_cellpose()
    import torch

    _check_model_file(Path(path))
    log.info("loading cellpose model %s on %s (%s)", path, device,
             "bfloat16" if bfloat16 else "float32")
    # an existing file path: cellpose loads it and never reaches its download code
    return models.CellposeModel(pretrained_model=path, device=torch.device(device),
                                use_bfloat16=bfloat16)


def _check_pixel_size(value: Any) -> float:
    try:
        px = float(value)
    except (TypeError, ValueError):
        raise PixelSizeError(f"pixel size {value!r} is not a number of µm") from None
    if not math.isfinite(px) or px <= 0:
        raise PixelSizeError(
            f"pixel size must be a positive number of µm per pixel, not {value!r}: the cellpose "
            "engine converts the diameter, tile overlap and minimum area with it"
        )
    return px


def _pick_channels(shape: tuple[int, ...], channels: tuple[int, ...]) -> list[int] | None:
    """Channel indices to read, or None for a single-channel (Y, X) image."""
    if len(shape) == 2:
        if channels and tuple(channels) != (0,):
            raise ChannelError(f"channels {channels!r} asked of a single-channel (Y, X) image")
        return None
    if len(shape) != 3:
        raise ChannelError(
            f"the cellpose engine segments 2D images, (Y, X) or (Y, X, C); got shape {shape}. "
            "Project Z stacks first (Image.channel projects them)."
        )
    n = shape[2]
    if not channels:
        if n > 3:
            raise ChannelError(
                f"the image has {n} channels and the network reads at most 3: choose them with "
                "CellposeOptions(channels=(i, j, ...))"
            )
        return list(range(n))
    bad = [c for c in channels if c >= n]
    if bad:
        raise ChannelError(f"channel index(es) {bad} do not exist in an image with {n} channels")
    return [int(c) for c in channels]


def _percentiles(image: Any, chans: list[int] | None, low: float, high: float
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (low, high) intensities from a strided sample of at most ~4 MP."""
    h, w = image.shape[:2]
    step = max(1, math.ceil(math.sqrt(h * w / 4e6)))
    sample = np.asarray(image[::step, ::step], dtype=np.float32)
    sample = sample[..., None] if chans is None else sample[..., chans]
    if not np.isfinite(sample).all():
        raise EmptyImageError("the image holds NaN or infinite values; fill or mask them first")
    flat = sample.reshape(-1, sample.shape[-1])
    lo, hi = np.percentile(flat, [low, high], axis=0).astype(np.float32)
    if np.all(hi <= lo):
        raise EmptyImageError(
            "the image is blank (its intensity percentiles "
            f"{low:g}-{high:g} % are equal in every channel); there is nothing to segment"
        )
    return lo, hi


def _normalise(tile: np.ndarray, chans: list[int] | None, lo: np.ndarray, hi: np.ndarray,
               invert: bool) -> np.ndarray:
    x = tile.astype(np.float32)
    x = x[..., None] if chans is None else x[..., chans]
    if not np.isfinite(x).all():
        raise EmptyImageError("the image holds NaN or infinite values; fill or mask them first")
    span = hi - lo
    flat = span <= 0
    x = (x - lo) / np.where(flat, 1.0, span)
    x[..., flat] = 0.0  # a constant channel carries no information
    return 1.0 - x if invert else x


def segment_cellpose(
    image: Any,
    pixel_size_um: float | None,
    options: CellposeOptions | dict[str, Any] | None = None,
    *,
    progress: Callable[[float, str], None] | None = None,
) -> np.ndarray:
    """Segment cells with cellpose and return their label image.

    Parameters
    ----------
    image : array_like or Image
        (Y, X) or (Y, X, C) pixels, any numeric dtype; NumPy, or a lazy array (zarr, dask) that
        is read one tile at a time; or an :class:`~histoquant.io.Image` with axes YX or YXC.
    pixel_size_um : float or None
        Pixel edge in µm; converts ``diameter_um``, ``min_area_um2`` and ``tile_overlap_um``.
        None only with an Image that carries its pixel size.
    options : CellposeOptions or dict, optional
        Cellpose settings (defaults: :class:`CellposeOptions`).
    progress : callable, optional
        ``progress(fraction_done, message)`` after each tile.

    Returns
    -------
    ndarray of int32
        (Y, X) labels, 0 = background, 1..N one per cell.

    Raises
    ------
    DependencyError
        cellpose/torch missing, the model's weights not on disk, or a requested GPU absent.
    PixelSizeError, ChannelError, EmptyImageError, ParamsError
        Bad input or options.

    Notes
    -----
    The network's cost is fixed per 256 px block of the resized image; on a CPU Cellpose-SAM
    takes tens of seconds per block (see docs/cellpose.md), so use a GPU for whole sections.
    """
    if options is None:
        options = CellposeOptions()
    elif isinstance(options, dict):
        options = CellposeOptions.from_dict(options)
    elif not isinstance(options, CellposeOptions):
        raise ParamsError(f"options must be CellposeOptions or a dict, not {type(options)}")
    if isinstance(image, Image):
        if image.axes not in ("YX", "YXC"):
            raise ChannelError(
                f"{image.source}: the cellpose engine segments 2D images; this one has axes "
                f"{image.axes}. Project Z first (Image.channel projects it)."
            )
        if pixel_size_um is None:
            pixel_size_um = image.require_pixel_size()
        image = image.data
    px = _check_pixel_size(pixel_size_um)
    shape = tuple(int(s) for s in getattr(image, "shape", ()))
    chans = _pick_channels(shape, tuple(options.channels))
    if shape[0] < 16 or shape[1] < 16:
        raise EmptyImageError(f"the image ({shape[0]}x{shape[1]} px) is too small to segment")
    overlap_px = math.ceil(options.tile_overlap_um / px)
    if 2 * overlap_px >= options.tile_size_px:
        raise ParamsError(
            f"tile_overlap_um = {options.tile_overlap_um} µm is {overlap_px} px at "
            f"{px:g} µm/px; it must stay below half of tile_size_px ({options.tile_size_px}): "
            "raise tile_size_px or lower the overlap"
        )
    diameter_px = None if options.diameter_um is None else options.diameter_um / px
    if diameter_px is not None and _NETWORK_BLOCK_PX / diameter_px > 4:
        warnings.warn(
            f"diameter {options.diameter_um} µm is {diameter_px:.1f} px: cellpose will enlarge "
            f"the image {_NETWORK_BLOCK_PX / diameter_px:.1f}x for the network, which costs "
            f"{(_NETWORK_BLOCK_PX / diameter_px) ** 2:.0f}x the time; leave diameter_um unset "
            "if the objects are really that small",
            UserWarning,
            stacklevel=2,
        )
    min_size_px = round(options.min_area_um2 / (px * px))
    lo, hi = _percentiles(image, chans, options.norm_low_pct, options.norm_high_pct)

    # dependencies last among the checks, but before any work: import, weights, device
    model_path = require_cellpose(options.model)
    device = _pick_device(options.device)
    st = model_path.stat()
    model = _load_model(str(model_path), (st.st_mtime_ns, st.st_size), device, options.bfloat16)
    log.info("cellpose on %s: diameter %s px, min size %d px, tiles %d px overlapping %d px",
             shape, "none" if diameter_px is None else f"{diameter_px:.1f}", min_size_px,
             options.tile_size_px, overlap_px)

    def run_tile(tile: np.ndarray) -> np.ndarray:
        x = _normalise(tile, chans, lo, hi, options.invert)
        masks = model.eval(
            x,
            channel_axis=2,
            normalize=False,
            diameter=diameter_px,
            flow_threshold=options.flow_threshold,
            cellprob_threshold=options.cellprob_threshold,
            min_size=min_size_px,
            batch_size=options.batch_size,
        )[0]
        return np.asarray(masks).reshape(tile.shape[:2])

    return segment_in_tiles(image, run_tile, options.tile_size_px, overlap_px, progress=progress)
