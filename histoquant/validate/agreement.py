"""Agreement of automatic and manual values of one measure: ICC, Bland–Altman, MAPE.

The ICC is pingouin's (:func:`pingouin.intraclass_corr`), not written here. We report
ICC(2,1) — two-way random effects, absolute agreement, single rater (McGraw & Wong's
ICC(A,1), Shrout & Fleiss's ICC2): the sections are a sample of the sections the method will
meet and the two "raters" (the program and the counter) stand for raters that could have
been used, so both are random; absolute agreement, because a systematic offset (the program
counting 10 % more) is a disagreement a lab needs to see, which a consistency ICC hides; single
rater, because the program's value will be used alone, not averaged with a manual count.

Bland–Altman: differences are *automatic − manual* (a positive bias means the program gives
more), limits of agreement ``bias ± 1.96 SD`` of the differences, with 95 % confidence
intervals from Bland & Altman (1999): ``bias ± t SD/√n`` and, for each limit,
``± t SD √(1/n + 1.96²/(2(n−1)))`` with ``t`` the 97.5 % point of Student's t on ``n − 1``
degrees of freedom.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np
from numpy.typing import ArrayLike

from ..errors import DependencyError
from .errors import ValidationError

__all__ = ["Agreement", "BlandAltman", "agreement", "bland_altman", "icc_absolute",
           "mean_absolute_pct_error", "MIN_PAIRS", "ICC_KIND"]

#: Fewest pairs for any statistic: the ICC's F test and the SD of differences need them.
MIN_PAIRS = 3
#: The ICC reported, in McGraw & Wong's notation (pingouin's ``ICC(A,1)``, formerly ``ICC2``).
ICC_KIND = "ICC(2,1) absolute agreement, single rater"
_Z = 1.96


@dataclass(frozen=True)
class BlandAltman:
    """Bland–Altman statistics of paired values (differences automatic − manual).

    Attributes
    ----------
    n : int
        Number of pairs.
    bias, bias_ci_low, bias_ci_high : float
        Mean difference and its 95 % confidence interval.
    sd_diff : float
        Sample SD of the differences (``ddof=1``).
    loa_low, loa_high : float
        Limits of agreement, ``bias ∓ 1.96 sd_diff``.
    loa_low_ci_low, loa_low_ci_high, loa_high_ci_low, loa_high_ci_high : float
        95 % confidence intervals of the limits.
    """

    n: int
    bias: float
    bias_ci_low: float
    bias_ci_high: float
    sd_diff: float
    loa_low: float
    loa_high: float
    loa_low_ci_low: float
    loa_low_ci_high: float
    loa_high_ci_low: float
    loa_high_ci_high: float


@dataclass(frozen=True)
class Agreement:
    """Every agreement statistic of one measure (one row of ``validation.csv``).

    Attributes
    ----------
    n_pairs : int
        Sections with both an automatic and a manual value.
    mean_manual, mean_auto : float
        Means of each.
    icc, icc_ci_low, icc_ci_high : float
        ICC(2,1) and its 95 % CI (pingouin gives it to two decimals). NaN when undefined:
        an identical value on every section, or a CI when every difference is zero.
    bland_altman : BlandAltman
        Bias and limits of agreement.
    mape_pct : float
        Mean of ``|auto − manual| / manual`` in %, over the pairs whose manual value is not 0.
    n_mape : int
        How many pairs that was.
    """

    n_pairs: int
    mean_manual: float
    mean_auto: float
    icc: float
    icc_ci_low: float
    icc_ci_high: float
    bland_altman: BlandAltman
    mape_pct: float
    n_mape: int

    def row(self) -> dict[str, float | int | str]:
        """Return the statistics as one flat row (the columns of ``validation.csv``).

        Returns
        -------
        dict
            ``n_pairs``, means, ``icc_kind``, ICC and CI, Bland–Altman fields, MAPE.
        """
        ba = asdict(self.bland_altman)
        ba.pop("n")
        return {"n_pairs": self.n_pairs, "mean_manual": self.mean_manual,
                "mean_auto": self.mean_auto, "icc_kind": ICC_KIND, "icc": self.icc,
                "icc_ci_low": self.icc_ci_low, "icc_ci_high": self.icc_ci_high, **ba,
                "mape_pct": self.mape_pct, "n_mape": self.n_mape}


def _pairs(auto: ArrayLike, manual: ArrayLike, what: str = "values") -> tuple[np.ndarray,
                                                                             np.ndarray]:
    a = np.asarray(auto, dtype=float).ravel()
    m = np.asarray(manual, dtype=float).ravel()
    if a.shape != m.shape:
        raise ValidationError(f"{what}: {a.size} automatic and {m.size} manual values; "
                              "they must be paired")
    bad = ~(np.isfinite(a) & np.isfinite(m))
    if bad.any():
        raise ValidationError(f"{what}: {int(bad.sum())} pair(s) hold a blank or non-finite "
                              "value; fill or remove them")
    if a.size < MIN_PAIRS:
        raise ValidationError(f"{what}: {a.size} pair(s); agreement needs at least "
                              f"{MIN_PAIRS} sections counted both ways")
    return a, m


def bland_altman(auto: ArrayLike, manual: ArrayLike) -> BlandAltman:
    """Return the Bland–Altman bias and 95 % limits of agreement, with their CIs.

    Parameters
    ----------
    auto, manual : array_like
        Paired values (same length, at least :data:`MIN_PAIRS`, finite).

    Returns
    -------
    BlandAltman
        Differences are ``auto − manual``.

    Raises
    ------
    ValidationError
        Unpaired, non-finite, or fewer than :data:`MIN_PAIRS` values.

    Examples
    --------
    >>> ba = bland_altman([12, 10, 7], [10, 10, 10])
    >>> round(ba.bias, 6), round(ba.sd_diff, 6)
    (-0.333333, 2.516611)
    """
    from scipy import stats

    a, m = _pairs(auto, manual)
    d = a - m
    n = d.size
    bias = float(d.mean())
    sd = float(d.std(ddof=1))
    t = float(stats.t.ppf(0.975, n - 1))
    se_bias = sd / math.sqrt(n)
    se_loa = sd * math.sqrt(1.0 / n + _Z**2 / (2.0 * (n - 1)))
    lo, hi = bias - _Z * sd, bias + _Z * sd
    return BlandAltman(n=n, bias=bias, bias_ci_low=bias - t * se_bias,
                       bias_ci_high=bias + t * se_bias, sd_diff=sd, loa_low=lo, loa_high=hi,
                       loa_low_ci_low=lo - t * se_loa, loa_low_ci_high=lo + t * se_loa,
                       loa_high_ci_low=hi - t * se_loa, loa_high_ci_high=hi + t * se_loa)


def mean_absolute_pct_error(auto: ArrayLike, manual: ArrayLike) -> tuple[float, int]:
    """Return the mean absolute % error against the manual values, and over how many pairs.

    Parameters
    ----------
    auto, manual : array_like
        Paired values.

    Returns
    -------
    mape_pct : float
        ``100 × mean(|auto − manual| / |manual|)`` over pairs whose manual value is not 0
        (a relative error of a zero count is undefined); NaN when every manual value is 0.
    n : int
        The pairs used.
    """
    a = np.asarray(auto, dtype=float).ravel()
    m = np.asarray(manual, dtype=float).ravel()
    keep = m != 0
    if not keep.any():
        return float("nan"), 0
    return float(100.0 * np.mean(np.abs(a[keep] - m[keep]) / np.abs(m[keep]))), int(keep.sum())


def _pingouin():
    try:
        import pingouin
    except ImportError as exc:
        raise DependencyError(
            "the intraclass correlation needs pingouin, an optional extra of histoquant: "
            "pip install 'histoquant[stats]'") from exc
    return pingouin


def icc_absolute(auto: ArrayLike, manual: ArrayLike) -> tuple[float, float, float]:
    """Return ICC(2,1) (absolute agreement, single rater) with its 95 % CI, from pingouin.

    Parameters
    ----------
    auto, manual : array_like
        Paired values of the sections (targets) by the two raters.

    Returns
    -------
    icc, ci_low, ci_high : float
        NaN where undefined (pingouin's CI when every difference is zero; the ICC when every
        section has the same value).

    Raises
    ------
    DependencyError
        When pingouin is not installed.
    ValidationError
        Unpaired, non-finite, or fewer than :data:`MIN_PAIRS` values.
    """
    import pandas as pd

    a, m = _pairs(auto, manual)
    pg = _pingouin()
    n = a.size
    long = pd.DataFrame({"section": np.tile(np.arange(n), 2),
                         "rater": np.repeat(["auto", "manual"], n),
                         "value": np.concatenate([a, m])})
    # Perfect agreement divides by a zero error mean square inside pingouin (ICC 1, CI NaN);
    # its pandas deprecation notes are not ours to show either.
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")
        table = pg.intraclass_corr(data=long, targets="section", raters="rater",
                                   ratings="value")
    types = table["Type"].astype(str).tolist()
    # pingouin ≥ 0.6 names it ICC(A,1); 0.5 named it ICC2 (Shrout & Fleiss)
    which = next((i for i, t in enumerate(types) if t in ("ICC(A,1)", "ICC2")), None)
    if which is None:
        raise DependencyError(f"pingouin {getattr(pg, '__version__', '?')} gives no "
                              f"ICC(A,1)/ICC2 row (it gives {', '.join(types)})")
    row = table.iloc[which]
    ci = np.asarray(row["CI95%"] if "CI95%" in row.index else row["CI95"], dtype=float)
    icc = float(row["ICC"])
    return icc, float(ci[0]), float(ci[1])


def agreement(auto: ArrayLike, manual: ArrayLike, what: str = "values") -> Agreement:
    """Return every agreement statistic of paired automatic and manual values.

    Parameters
    ----------
    auto, manual : array_like
        Paired values, one per section.
    what : str
        Name of the measure, for error messages.

    Returns
    -------
    Agreement
        ICC(2,1) with CI, Bland–Altman, mean absolute % error.

    Raises
    ------
    ValidationError
        Unpaired, non-finite, or fewer than :data:`MIN_PAIRS` values.
    DependencyError
        When pingouin is not installed.
    """
    a, m = _pairs(auto, manual, what)
    icc, lo, hi = icc_absolute(a, m)
    mape, n_mape = mean_absolute_pct_error(a, m)
    return Agreement(n_pairs=int(a.size), mean_manual=float(m.mean()),
                     mean_auto=float(a.mean()), icc=icc, icc_ci_low=lo, icc_ci_high=hi,
                     bland_altman=bland_altman(a, m), mape_pct=mape, n_mape=n_mape)
