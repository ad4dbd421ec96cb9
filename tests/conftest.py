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
