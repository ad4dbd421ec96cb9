"""The bad-input corpus of ``benchmarks/bad_inputs.py``: every case must end in a clear error
or a correct result — no crash, no hang, nothing written outside the output folder, no silent
wrong result — and in a batch every good image keeps its row."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _corpus_module():
    spec = importlib.util.spec_from_file_location("bad_inputs", ROOT / "benchmarks" /
                                                  "bad_inputs.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it executes
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_every_bad_input_is_a_clear_error_or_a_correct_result(tmp_path):
    corpus = _corpus_module()
    outcomes = corpus.run_corpus(tmp_path, jobs=2, timeout=90)
    assert len(outcomes) >= 60
    bad = [f"{o.case.name}: {o.verdict} ({o.detail})" for o in outcomes
           if o.verdict not in corpus.GOOD]
    assert not bad, "\n".join(bad)
    # both kinds occur: the corpus checks results, not only refusals
    verdicts = {o.verdict for o in outcomes}
    assert verdicts == {"clear error", "correct result"}
