"""Validation against manual counts: a blinded sample to count, then agreement statistics.

::

    histoquant validate sample STUDY -n 24 -o blind/      # coded images + blank sheet + key
    histoquant validate compare RESULTS blind/manual_counts.csv --key blind/key.csv

- :mod:`~histoquant.validate.sample`: the stratified random sample, copied under codes;
- :mod:`~histoquant.validate.key`: the blinding key;
- :mod:`~histoquant.validate.pairs`: reading results and manual counts, and pairing them;
- :mod:`~histoquant.validate.agreement`: ICC (pingouin), Bland–Altman, mean absolute % error;
- :mod:`~histoquant.validate.objects`: object precision/recall/F1 against manual label images;
- :mod:`~histoquant.validate.compare`: all of it, written as ``validation.csv`` / ``.html``;
- :mod:`~histoquant.validate.plot`, :mod:`~histoquant.validate.report`: the page.

The ICC needs pingouin, the optional extra ``histoquant[stats]``; it is imported only when a
comparison runs. See ``docs/validation.md``.
"""

from .agreement import Agreement, BlandAltman, agreement, bland_altman, icc_absolute
from .compare import Comparison, compare_counts
from .errors import ValidationError
from .sample import BlindedSample, pick_stratified, write_blinded_sample

__all__ = [
    "Agreement",
    "BlandAltman",
    "BlindedSample",
    "Comparison",
    "ValidationError",
    "agreement",
    "bland_altman",
    "compare_counts",
    "icc_absolute",
    "pick_stratified",
    "write_blinded_sample",
]
