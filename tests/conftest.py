"""Shared fixtures: the real-image folder (skipped when absent) and temporary outputs."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from histoquant.segment import cellpose_engine

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout; tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is absent (real images are not distributed)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def atlas_refs():
    """``benchmarks/real_data_refs/atlas.py``, the reader of the atlas drawings (one home for
    it; loaded by path since ``benchmarks`` is not a package). Skips when it is absent."""
    import importlib.util
    import sys

    path = ROOT / "benchmarks" / "real_data_refs" / "atlas.py"
    if not path.exists():
        pytest.skip(f"{path} (the atlas reader) is absent")
    name = "_histoquant_real_data_atlas"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return sys.modules[name]


@pytest.fixture(scope="session")
def random_cpsam_dir(tmp_path_factory):
    """A models folder holding a seeded random-weight Cellpose-SAM saved under the name cpsam."""
    pytest.importorskip("cellpose")
    import torch

    # a broken install fails here with what to fix, not with a skip
    cellpose_engine._import_cellpose()
    try:
        from cellpose.vit import CPSAM as Net  # cellpose >= 4.1
    except ImportError:
        from cellpose.vit_sam import Transformer as Net  # cellpose 4.0.x
    folder = tmp_path_factory.mktemp("cellpose_models")
    torch.manual_seed(0)
    net = Net(dtype=torch.float32)
    torch.save(net.state_dict(), folder / "cpsam")
    del net
    return folder


@pytest.fixture()
def network_attempts(monkeypatch) -> list:
    """Refuse every socket connection in the test; returns the list of addresses tried."""
    attempts: list = []

    def refuse(self, address, *args):
        attempts.append(address)
        raise OSError("network access in a test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    return attempts
