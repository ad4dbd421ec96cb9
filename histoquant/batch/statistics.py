"""The study's statistics: every group against the reference group, endpoint by endpoint.

:func:`study_statistics` reads the two endpoint tables of :mod:`histoquant.batch.endpoints`
and returns one row per endpoint (× level for a ``by_level`` endpoint) × treated group:

- **descriptive statistics** of the animal values of both groups (n, mean, SD, SEM, median,
  quartiles);
- the **group difference on animal values**, the experimental unit: Welch's t-test
  (:func:`scipy.stats.ttest_ind` with ``equal_var=False``) and the Mann–Whitney U test
  (:func:`scipy.stats.mannwhitneyu`, two-sided; exact for small samples without ties);
- **Hedges' g** (treated − reference over the pooled SD, small-sample corrected) with a 95 %
  confidence interval, from :func:`statsmodels.stats.meta_analysis.effectsize_smd`;
- a **linear mixed model** on the section-level observations with a random intercept per
  animal (:class:`statsmodels.regression.mixed_linear_model.MixedLM`, REML), ``value ~ group``
  plus ``level`` as a factor when an endpoint pooled over levels has several;
- **Holm-adjusted p-values** (:func:`statsmodels.stats.multitest.multipletests`) of the Welch,
  Mann–Whitney and mixed-model p-values, each across every comparison of the table.

What cannot be estimated (a group with fewer than two animals, no variance, one observation
per animal for the mixed model, a fit that does not converge) is left NaN with a ``note``;
nothing raises and no library warning escapes: they are caught and written into the notes.
:data:`STATISTICS_COLUMNS` lists the columns in order and :data:`STATISTICS_COLUMN_DOCS` says
what each one means. See ``docs/statistics.md``.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ParamsError

__all__ = ["STATISTICS_COLUMNS", "STATISTICS_COLUMN_DOCS", "CONFIDENCE", "study_statistics",
           "describe_statistics"]

#: Confidence level of every interval in the table.
CONFIDENCE = 0.95

#: Data dictionary of :func:`study_statistics`: column → meaning, in the table's order.
STATISTICS_COLUMN_DOCS: dict[str, str] = {
    "endpoint": "Endpoint identifier, as declared by its assay.",
    "assay": "Assay that measures the endpoint.",
    "measure": "Summary column of the section table the endpoint reads.",
    "label": "The endpoint as a paper writes it.",
    "unit": "Unit of the values, the differences and the mixed-model coefficient.",
    "summary": "How the endpoint's groups are summarised in the report: mean_sem or "
               "median_iqr (both are in this table).",
    "level": "Spinal level of a by_level endpoint; 'all' for an endpoint pooled over levels.",
    "reference": "Reference group (the first of the study's groups unless chosen).",
    "group": "Group compared with the reference; empty when there is no other group.",
    "ref_n": "Number of animals of the reference group with a value.",
    "ref_mean": "Mean of the reference group's animal values.",
    "ref_sd": "Standard deviation (n − 1) of the reference group's animal values.",
    "ref_sem": "Standard error of the reference group's mean (SD / √n).",
    "ref_median": "Median of the reference group's animal values.",
    "ref_q1": "First quartile of the reference group's animal values (linear interpolation, "
              "R type 7).",
    "ref_q3": "Third quartile of the reference group's animal values.",
    "n": "Number of animals of the compared group with a value.",
    "mean": "Mean of the compared group's animal values.",
    "sd": "Standard deviation (n − 1) of the compared group's animal values.",
    "sem": "Standard error of the compared group's mean.",
    "median": "Median of the compared group's animal values.",
    "q1": "First quartile of the compared group's animal values.",
    "q3": "Third quartile of the compared group's animal values.",
    "mean_diff": "Difference of the group means of animal values: group − reference.",
    "welch_t": "Welch's t statistic on animal values (group − reference; unequal variances).",
    "welch_df": "Welch–Satterthwaite degrees of freedom.",
    "welch_p": "Two-sided p-value of Welch's t-test.",
    "mwu_u": "Mann–Whitney U statistic of the compared group (number of pairs where the "
             "group's animal exceeds the reference's, ties counting one half).",
    "mwu_p": "Two-sided p-value of the Mann–Whitney U test (exact without ties in small "
             "samples, else normal approximation with tie and continuity correction).",
    "hedges_g": "Hedges' g: (group − reference) / pooled SD of animal values, times "
                "J = 1 − 3 / (4 (n₁ + n₂) − 9).",
    "hedges_g_ci_low": "Lower bound of the 95 % CI of g: g − 1.96 √var, var = (n₁ + n₂) / "
                       "(n₁ n₂) + g² / (2 (n₁ + n₂ − 3.94)) (statsmodels, as RevMan).",
    "hedges_g_ci_high": "Upper bound of the 95 % CI of g.",
    "mixed_formula": "The mixed model fitted on the section-level observations, in R's "
                     "notation; empty when none was fitted.",
    "mixed_coef": "Mixed-model fixed effect of the group (group − reference), in the "
                  "endpoint's unit, adjusted for level when level is in the model.",
    "mixed_se": "Standard error of mixed_coef (REML).",
    "mixed_df": "Degrees of freedom of the group effect: animals − between-animal fixed "
                "effects (the between-within rule of R's nlme::lme).",
    "mixed_ci_low": "Lower bound of the 95 % CI of mixed_coef (t distribution, mixed_df).",
    "mixed_ci_high": "Upper bound of the 95 % CI of mixed_coef.",
    "mixed_p": "Two-sided p-value of the group effect (t = mixed_coef / mixed_se on "
               "mixed_df degrees of freedom).",
    "mixed_n_obs": "Observations (section × region rows) in the mixed model.",
    "mixed_n_animals": "Animals in the mixed model.",
    "mixed_animal_var": "Between-animal variance (random intercept), REML.",
    "mixed_residual_var": "Within-animal (residual) variance, REML.",
    "mixed_note": "Why the mixed model was not fitted, or what to know about its fit "
                  "(boundary, convergence, weights).",
    "welch_p_holm": "welch_p adjusted by Holm's method across every comparison of the table "
                    "with a Welch p-value.",
    "mwu_p_holm": "mwu_p adjusted by Holm's method across every comparison with a "
                  "Mann–Whitney p-value.",
    "mixed_p_holm": "mixed_p adjusted by Holm's method across every comparison with a "
                    "mixed-model p-value.",
    "note": "What could not be estimated on animal values, and why.",
}
#: Columns of :func:`study_statistics`, in order (see :data:`STATISTICS_COLUMN_DOCS`).
STATISTICS_COLUMNS: list[str] = list(STATISTICS_COLUMN_DOCS)

_ALL_LEVELS = "all"
_DESCRIPTIVE = ("n", "mean", "sd", "sem", "median", "q1", "q3")
_HOLM = {"welch_p": "welch_p_holm", "mwu_p": "mwu_p_holm", "mixed_p": "mixed_p_holm"}
_ENDPOINT_KEYS = ("endpoint", "assay", "measure", "label", "unit", "summary")


def _captured(fn: Callable[[], Any], notes: list[str], what: str) -> Any:
    """Call ``fn`` with every warning recorded into ``notes`` instead of printed."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        np_state = np.seterr(all="ignore")
        try:
            out = fn()
        finally:
            np.seterr(**np_state)
    for w in caught:
        msg = f"{what}: {str(w.message).strip().splitlines()[0]}"
        if msg not in notes:
            notes.append(msg)
    return out


def _describe(values: np.ndarray) -> dict[str, float]:
    s = pd.Series(values, dtype=float)
    n = len(s)
    return {"n": n,
            "mean": float(s.mean()) if n else np.nan,
            # pandas returns NaN for one value where numpy would warn
            "sd": float(s.std(ddof=1)) if n else np.nan,
            "sem": float(s.sem(ddof=1)) if n else np.nan,
            "median": float(s.median()) if n else np.nan,
            "q1": float(s.quantile(0.25)) if n else np.nan,
            "q3": float(s.quantile(0.75)) if n else np.nan}


def _animal_tests(x: np.ndarray, y: np.ndarray, notes: list[str]) -> dict[str, float]:
    """Welch, Mann–Whitney and Hedges' g of ``x`` (group) against ``y`` (reference)."""
    from scipy import special, stats
    from statsmodels.stats.meta_analysis import effectsize_smd

    out = dict.fromkeys(["welch_t", "welch_df", "welch_p", "mwu_u", "mwu_p", "hedges_g",
                         "hedges_g_ci_low", "hedges_g_ci_high"], np.nan)
    nx, ny = len(x), len(y)
    if nx == 0 or ny == 0:
        notes.append("no animals in " + ("both groups" if nx == ny == 0
                                         else "the group" if nx == 0 else "the reference"))
        return out
    sx = float(np.std(x, ddof=1)) if nx > 1 else np.nan
    sy = float(np.std(y, ddof=1)) if ny > 1 else np.nan
    if nx < 2 or ny < 2:
        notes.append(f"fewer than 2 animals in a group ({nx} vs {ny}): no t-test, no "
                     "Hedges' g")
    elif sx == 0 and sy == 0:
        notes.append("every animal value equal within each group: t and g undefined")
    else:
        res = _captured(lambda: stats.ttest_ind(x, y, equal_var=False), notes, "Welch")
        out["welch_t"], out["welch_p"] = float(res.statistic), float(res.pvalue)
        out["welch_df"] = float(res.df)
        pooled = ((nx - 1) * sx**2 + (ny - 1) * sy**2) / (nx + ny - 2)
        if pooled > 0:
            g, var = _captured(lambda: effectsize_smd(float(np.mean(x)), sx, nx,
                                                      float(np.mean(y)), sy, ny),
                               notes, "Hedges' g")
            half = stats.norm.ppf(0.5 + CONFIDENCE / 2) * np.sqrt(var)
            out["hedges_g"] = float(g)
            out["hedges_g_ci_low"], out["hedges_g_ci_high"] = float(g - half), float(g + half)
            if min(nx, ny) < 3:
                # N − 3.94 in the variance is near 0 at 2 + 2 animals: 2–3 × the exact width
                notes.append(f"Hedges' g CI with {nx} vs {ny} animals: the normal "
                             "approximation is far too wide")
    if np.all(np.concatenate([x, y]) == x[0]):
        notes.append("every animal value equal: Mann–Whitney U not informative")
    else:
        res = _captured(lambda: stats.mannwhitneyu(x, y, alternative="two-sided"), notes,
                        "Mann–Whitney")
        out["mwu_u"], out["mwu_p"] = float(res.statistic), float(res.pvalue)
        # the smallest two-sided exact p of n1 vs n2 animals: 2 / C(n1 + n2, n1)
        floor = 2.0 / float(special.comb(nx + ny, nx, exact=True))
        if floor > 1 - CONFIDENCE:
            notes.append(f"Mann–Whitney with {nx} vs {ny} animals cannot reach p < "
                         f"{1 - CONFIDENCE:.2f} (smallest p {min(floor, 1.0):.2g})")
    return out


#: Optimisers tried in turn until one converges.
_OPTIMISERS = ("bfgs", "lbfgs", "powell", "nm")
#: Animal variance below this fraction of the residual variance counts as 0.
_BOUNDARY = 1e-6
_MIXED_KEYS = ("mixed_formula", "mixed_coef", "mixed_se", "mixed_df", "mixed_ci_low",
               "mixed_ci_high", "mixed_p", "mixed_n_obs", "mixed_n_animals",
               "mixed_animal_var", "mixed_residual_var", "mixed_note")


def _mixed_model(obs: pd.DataFrame, group: str, with_level: bool) -> dict[str, Any]:
    """Random-intercept model of ``obs`` (two groups): the effect of ``group``."""
    import statsmodels.formula.api as smf
    from scipy import stats

    out: dict[str, Any] = dict.fromkeys(_MIXED_KEYS, np.nan)
    out["mixed_formula"] = ""
    notes: list[str] = []
    data = pd.DataFrame({"value": obs["value"].to_numpy(float),
                         "treated": (obs["group"] == group).to_numpy(float),
                         "level": obs["level"].astype(str).to_numpy(),
                         "animal": obs["animal"].astype(str).to_numpy(),
                         "section": (obs["image"].astype(str) + "\x00"
                                     + obs["section"].astype(str)).to_numpy()})
    data = data[np.isfinite(data["value"])]
    n_animals = data["animal"].nunique()
    out["mixed_n_obs"], out["mixed_n_animals"] = len(data), n_animals
    per_animal = data.groupby("animal").size()
    with_level = with_level and data["level"].nunique() > 1
    rhs = "treated" + (" + C(level)" if with_level else "")
    readable = "value ~ group" + (" + level" if with_level else "") + " + (1 | animal)"

    def done(note: str | None = None) -> dict[str, Any]:
        if note:
            notes.insert(0, note)
        out["mixed_note"] = "; ".join(notes)
        return out

    if data["treated"].nunique() < 2:
        return done("one group only: no mixed model")
    if len(per_animal) and per_animal.max() < 2:
        return done("one observation per animal: the animal and residual variances cannot "
                    "be told apart, so no mixed model (the animal-value tests are the "
                    "analysis)")
    if data["value"].nunique() < 2:
        return done("every observation equal: no mixed model")
    if "weight" in obs and obs["weight"].nunique() > 1:
        notes.append("observations weigh equally here; the animal values are weighted")
    if data.groupby("animal")["section"].nunique().max() < 2:
        notes.append("one section per animal: the within-animal replicates are regions, "
                     "not sections")
    try:
        model = _captured(lambda: smf.mixedlm(f"value ~ {rhs}", data, groups="animal"),
                          notes, "mixed model")
    except Exception as exc:  # patsy and statsmodels raise many types
        return done(f"mixed model could not be built: {exc}")
    exog = pd.DataFrame(model.exog, columns=model.exog_names)
    if np.linalg.matrix_rank(exog.to_numpy()) < exog.shape[1]:
        return done("group and level are confounded: no mixed model")
    # nlme's between-within rule: a fixed effect constant within every animal is estimated
    # from animals, so its t has (animals − such effects) degrees of freedom
    between = int((exog.groupby(data["animal"].to_numpy()).nunique() <= 1).all().sum())
    df = n_animals - between
    if df < 1:
        return done(f"{n_animals} animals for {between} between-animal effects: no degrees "
                    "of freedom for the group effect")
    fit, fit_notes, failures = None, [], []
    # gradient optimisers fail where REML puts the animal variance on its boundary (0);
    # the derivative-free ones reach it, so they are tried next
    for method in _OPTIMISERS:
        tried: list[str] = []
        try:
            f = _captured(lambda m=method: model.fit(reml=True, method=m), tried, "mixed model")
        except Exception as exc:  # the optimiser's linear algebra can fail
            failures.append(f"{method}: {exc}")
            continue
        if f.converged:
            fit, fit_notes = f, tried
            break
        failures.append(f"{method}: did not converge")
    out["mixed_formula"] = readable
    if fit is None:
        return done("mixed model did not converge (" + "; ".join(failures)
                    + "): estimates withheld")
    coef = float(fit.fe_params["treated"])
    se = float(fit.bse_fe["treated"])
    animal_var = float(np.asarray(fit.cov_re)[0, 0])
    out.update(mixed_animal_var=animal_var, mixed_residual_var=float(fit.scale))
    if not np.isfinite(se) or se <= 0:
        return done("mixed model standard error undefined: estimates withheld")
    if animal_var <= _BOUNDARY * float(fit.scale):
        # statsmodels' boundary and Hessian warnings say the same: one plain note instead
        notes.append("animal variance estimated at 0 (boundary): the group effect equals "
                     "the comparison of pooled observations, tested on the animals' df")
    else:
        notes.extend(fit_notes)
    t = coef / se
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, df)) * se
    out.update(mixed_coef=coef, mixed_se=se, mixed_df=float(df), mixed_ci_low=coef - half,
               mixed_ci_high=coef + half, mixed_p=float(2 * stats.t.sf(abs(t), df)))
    return done()


def _holm(table: pd.DataFrame) -> None:
    from statsmodels.stats.multitest import multipletests

    for col, adj in _HOLM.items():
        p = pd.to_numeric(table[col], errors="coerce").to_numpy(float)
        ok = np.isfinite(p)
        out = np.full(len(p), np.nan)
        if ok.any():
            out[ok] = multipletests(p[ok], method="holm")[1]
        table[adj] = out


def study_statistics(observations: pd.DataFrame, animal_values: pd.DataFrame,
                     groups: Sequence[str], *, reference: str | None = None) -> pd.DataFrame:
    """Compare every group with the reference group on every endpoint.

    Parameters
    ----------
    observations : pandas.DataFrame
        Section-level rows from :func:`~histoquant.batch.endpoints.endpoint_observations`
        (the mixed model's data).
    animal_values : pandas.DataFrame
        One value per animal from :func:`~histoquant.batch.endpoints.endpoint_animal_values`
        (the unit of the t-test, the U test and Hedges' g).
    groups : sequence of str
        The study's groups in order; groups not listed are left out.
    reference : str, optional
        The group every other group is compared with; default the first of ``groups``.

    Returns
    -------
    pandas.DataFrame
        :data:`STATISTICS_COLUMNS`, one row per endpoint × level (``"all"`` unless the
        endpoint is ``by_level``) × compared group, in the order of ``animal_values`` and
        ``groups``; one row with an empty ``group`` where there is no group to compare.
        What cannot be estimated is NaN with a ``note`` / ``mixed_note``.

    Raises
    ------
    ParamsError
        If ``reference`` is not one of ``groups``.
    """
    groups = [str(g) for g in dict.fromkeys(groups)]
    if reference is None:
        reference = groups[0] if groups else ""
    reference = str(reference)
    if groups and reference not in groups:
        raise ParamsError(f"reference group {reference!r} is not one of the study's groups "
                          f"{groups}")
    if animal_values.empty or not groups:
        return pd.DataFrame(columns=STATISTICS_COLUMNS)
    others = [g for g in groups if g != reference]
    av = animal_values.copy()
    av["value"] = pd.to_numeric(av["value"], errors="coerce")
    av["group"], av["level"] = av["group"].astype(str), av["level"].astype(str)
    obs = observations.copy()
    if not obs.empty:
        obs["group"], obs["level"] = obs["group"].astype(str), obs["level"].astype(str)
    rows = []
    for (endpoint, level), vals in av.groupby(["endpoint", "level"], sort=False):
        first = vals.iloc[0]
        by_level = bool(first.get("by_level", False))
        head = {k: first[k] for k in _ENDPOINT_KEYS if k in vals.columns}
        head.update(level=level, reference=reference)
        ref_values = vals.loc[vals["group"] == reference, "value"].dropna().to_numpy(float)
        ref_desc = {f"ref_{k}": v for k, v in _describe(ref_values).items()}
        ep_obs = obs[obs["endpoint"] == endpoint] if not obs.empty else obs
        if by_level and not ep_obs.empty:
            ep_obs = ep_obs[ep_obs["level"] == level]
        for g in others or [None]:
            notes: list[str] = []
            row: dict[str, Any] = {**head, "group": g or "", **ref_desc}
            if g is None:
                row.update(dict.fromkeys(_DESCRIPTIVE, np.nan), n=0)
                row["note"] = "only one group: nothing to compare"
                row["mixed_note"] = "only one group: no mixed model"
                rows.append(row)
                continue
            x = vals.loc[vals["group"] == g, "value"].dropna().to_numpy(float)
            row.update(_describe(x))
            row["mean_diff"] = (row["mean"] - row["ref_mean"]) if len(x) and len(ref_values) \
                else np.nan
            row.update(_animal_tests(x, ref_values, notes))
            if len(vals.loc[vals["group"].isin([g, reference]), "value"].dropna()) < \
                    len(vals[vals["group"].isin([g, reference])]):
                notes.append("animals without a value left out")
            pair = ep_obs[ep_obs["group"].isin([g, reference])] if not ep_obs.empty else ep_obs
            if pair.empty:
                row.update(dict.fromkeys(_MIXED_KEYS, np.nan), mixed_formula="",
                           mixed_note="no observations: no mixed model",
                           mixed_n_obs=0, mixed_n_animals=0)
            else:
                row.update(_mixed_model(pair, g, with_level=not by_level))
            row["note"] = "; ".join(notes)
            rows.append(row)
    table = pd.DataFrame(rows).reindex(columns=STATISTICS_COLUMNS)
    _holm(table)
    for col in ("ref_n", "n", "mixed_n_obs", "mixed_n_animals"):
        table[col] = pd.to_numeric(table[col], errors="coerce").astype("Int64")
    for col in ("note", "mixed_note", "mixed_formula", "group"):
        table[col] = ["" if pd.isna(v) else str(v) for v in table[col]]
    return table[STATISTICS_COLUMNS]


def describe_statistics(table: pd.DataFrame | None = None) -> str:
    """Return the statistical methods in plain English, for a methods section.

    Parameters
    ----------
    table : pandas.DataFrame, optional
        A :func:`study_statistics` table; when given, the sentences name the reference group
        and the number of comparisons Holm's method adjusted over.

    Returns
    -------
    str
        One paragraph.
    """
    import scipy
    import statsmodels

    ref = ""
    family = "all comparisons of the table"
    if table is not None and len(table):
        refs = [r for r in dict.fromkeys(table["reference"].astype(str)) if r]
        if refs:
            ref = f" ({', '.join(refs)})"
        n = int((table["group"].astype(str) != "").sum())
        k = table["endpoint"].nunique()
        family = (f"the {n} comparison{'s' if n != 1 else ''} of the {k} "
                  f"endpoint{'s' if k != 1 else ''}")
    return (
        "The animal was the experimental unit: each animal's value of an endpoint is the "
        "mean of its section observations (weighted where the endpoint declares a weight). "
        f"Each group was compared with the reference group{ref} on animal values by Welch's "
        "t-test and by the two-sided Mann–Whitney U test (exact for small samples without "
        "ties). The effect size is Hedges' g (difference of means over the pooled standard "
        "deviation, with the small-sample correction J = 1 − 3/(4N − 9)) with a 95 % "
        "confidence interval from its normal approximation (variance N/(n₁n₂) + "
        "g²/(2(N − 3.94))). Section-level observations were analysed with a linear mixed "
        "model with a random intercept per animal (REML; spinal level as a fixed factor "
        "where an endpoint pooled several levels); the group effect was tested with a t "
        "statistic on the number of animals minus the between-animal fixed effects "
        "(degrees of freedom as in nlme). The mixed model was not fitted where no animal "
        "had more than one observation. P-values were adjusted for multiple comparisons by "
        f"Holm's method across {family} (Welch, Mann–Whitney and mixed-model p-values "
        "separately, each among the comparisons where it could be computed). Computed with "
        f"SciPy {scipy.__version__} and statsmodels {statsmodels.__version__}.")
