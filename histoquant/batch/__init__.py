"""Study runs: a folder tree of sections → one value per animal per measure, with provenance.

::

    histoquant batch STUDY_DIR -c study.yaml -o OUTDIR [--jobs N | --scheduler ADDRESS]
                               [--resume] [--blind [--key-out KEY]]
    histoquant unblind OUTDIR [--key KEY] [-o NEW]

In Python::

    from histoquant.batch import run_batch
    report = run_batch("study/", "results/", jobs=2)

See ``docs/batch.md`` for the study file, the sample sheet and every output.
"""

from .blinding import BlindingError, unblind
from .config import (
    AssayPlan,
    QCOptions,
    SlideOptions,
    StudyConfig,
    StudyError,
    load_study,
    load_study_config,
)
from .run import BatchProgress, BatchReport, StudyPlan, plan_study, run_batch
from .samples import Sample, build_samples, discover, find_images, read_sample_sheet
from .tables import StudyTables, assemble

__all__ = [
    "AssayPlan",
    "BatchProgress",
    "BlindingError",
    "BatchReport",
    "QCOptions",
    "Sample",
    "SlideOptions",
    "StudyConfig",
    "StudyError",
    "StudyPlan",
    "StudyTables",
    "assemble",
    "build_samples",
    "discover",
    "find_images",
    "load_study",
    "load_study_config",
    "plan_study",
    "read_sample_sheet",
    "run_batch",
    "unblind",
]
