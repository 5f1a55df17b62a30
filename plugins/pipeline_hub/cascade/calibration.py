"""Learning a cascade's thresholds on a labelled sample, with a precision and recall guarantee.

Input: ``scores``, shape ``(n,)``, proxy scores in [0, 1] (higher = more likely positive), and
``labels``, shape ``(n,)``, the oracle's answers (bool; the oracle is taken as the gold), for ``n``
records drawn uniformly at random from the population the cascade will run on. Output: a
:class:`Calibration` with ``upper`` (accept as positive when ``score >= upper``) and ``lower`` (answer
negative when ``score < lower``); the band ``[lower, upper)`` goes to the oracle, which is right there.

The guarantee. With probability at least ``1 - delta`` over the sample, on the population
(i) recall >= ``recall`` and (ii) precision >= ``precision``. ``delta`` is split in two halves, one per
threshold (union bound), as LOTUS does (Patel et al., VLDB 2025; ``learn_cascade_thresholds`` in
lotus-ai) after SUPG (Kang et al., PVLDB 13(11), 2020). The bounds differ from theirs: LOTUS uses the
normal-approximation bound ``mean ± std / sqrt(s) * sqrt(2 ln(1 / delta))``, which claims certainty from
a handful of records when their standard deviation is 0 (e.g. three accepted records, all positive).
Here both bounds are exact and distribution-free:

* ``lower`` (recall): recall depends on ``lower`` only (records at or above it are accepted or sent to the
  oracle, both finding the positives), recall(l) = P(score >= l | positive). Of the ``m`` labelled
  positives with sorted scores ``x_(1) <= … <= x_(m)``, ``lower = x_(k)`` with the largest ``k`` such that
  ``P(Binomial(m, 1 - recall) <= k - 1) <= delta / 2``: the classical order-statistic confidence bound for
  a quantile (the population share of positives below ``x_(k)`` is at most Beta(k, m - k + 1), so it
  exceeds ``1 - recall`` with probability at most ``delta / 2``; ties only help). Equivalent to the
  Clopper-Pearson bound. None such ``k`` (too few positives, ``recall ** m > delta / 2``): ``lower = 0``.
* ``upper`` (precision): the oracle's answers are right, so precision >= the precision of the
  proxy-accepted set ``{score >= upper}`` (LOTUS's criterion too). Each ``u`` of a fixed grid
  (:data:`GRID`, chosen before seeing the sample, so the bound is exact) gets the one-sided
  Clopper-Pearson lower bound (Clopper & Pearson, Biometrika 26, 1934; ``scipy.stats.beta.ppf``) of
  P(positive | score >= u) at level ``delta / 2 / len(grid)`` (Bonferroni: every grid point at once);
  ``upper`` is the smallest ``u >= lower`` whose bound reaches ``precision``, else
  :data:`~pipeline_hub.cascade.spec.NEVER_ACCEPT`.

A proxy without a "reject" answer (a ``model:`` proxy: it answers the record or hands it to the oracle)
learns ``upper`` only, with :func:`calibrate_accept_only`: ``labels`` then say whether the proxy's answer
agrees with the oracle's, ``lower`` is 0 and the whole ``delta`` goes to the precision bound (one bound,
no union), so with probability at least ``1 - delta`` the proxy-accepted answers agree with the oracle's
at a rate of at least ``precision`` (and the cascade's answers overall at least as often, the rest being
the oracle's own).

Not done: LOTUS's importance sampling (oversampling high-score records, weighting by
``1 / (n * q_i)``); the sample must be uniform. Degenerate samples (empty, one class only) send every
record to the oracle and say why in ``reason``; nothing here raises for them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from pipeline_hub.cascade.spec import NEVER_ACCEPT, Achieved, Thresholds
from pipeline_hub.exceptions import InputError

# Candidate ``upper`` thresholds: 0.00, 0.01, …, 1.00 (RapidFuzz scores are whole percents).
GRID: NDArray[np.float64] = np.round(np.linspace(0.0, 1.0, 101), 2)


@dataclass(frozen=True)
class Calibration:
    """Learned thresholds and what they achieve.

    ``upper`` in [0, NEVER_ACCEPT], ``lower`` in [0, 1], ``lower <= upper``; ``sample_size`` = ``n``;
    ``achieved``: precision, recall and oracle share of the cascade on the sample itself (point estimates);
    ``recall_bound`` / ``precision_bound``: the certified lower bounds (each at ``delta / 2``) of the
    population's recall and precision, 1.0 when the oracle answers that side alone; ``reason``: why a side
    sends everything to the oracle, None when both thresholds were learned.
    """

    upper: float
    lower: float
    sample_size: int
    achieved: Achieved
    recall_bound: float
    precision_bound: float
    reason: str | None = None

    @property
    def all_to_oracle(self) -> bool:
        """True when no record is accepted or rejected by the proxy (``lower == 0``, ``upper > 1``)."""
        return self.lower <= 0.0 and self.upper > 1.0

    def thresholds(self, calibrated_at: dt.date) -> Thresholds:
        """The :class:`~pipeline_hub.cascade.spec.Thresholds` to store in the topic's ``cascade`` block."""
        return Thresholds(self.upper, self.lower, self.sample_size, calibrated_at, self.achieved)


def calibrate(
    scores: ArrayLike,
    labels: ArrayLike,
    *,
    precision: float,
    recall: float,
    delta: float,
    grid: ArrayLike = GRID,
) -> Calibration:
    """Thresholds meeting ``precision`` and ``recall`` (each in (0, 1]) with probability >= ``1 - delta``.

    ``scores``, ``labels``: shape ``(n,)`` (see the module docstring for the method and its sources);
    ``grid``: candidate upper thresholds in [0, 1], fixed before the sample is seen. Raises
    :class:`~pipeline_hub.exceptions.InputError` when the arrays differ in shape, a score is not a finite
    number in [0, 1], a label is not 0/1, a target is out of range or ``grid`` is empty. Degenerate
    samples do not raise.
    """
    s, y = _checked(scores, labels, precision, recall, delta)
    n, m = len(s), int(y.sum())
    alpha = delta / 2
    if n == 0 or m in (0, n):
        why = "empty sample" if n == 0 else f"the sample of {n} has only {'negatives' if m == 0 else 'positives'}"
        return _result(s, y, NEVER_ACCEPT, 0.0, 1.0, 1.0, f"{why}: every record goes to the oracle")
    reasons = []
    lower, recall_bound = _lower_for_recall(np.sort(s[y]), recall, alpha)
    if lower is None:
        lower = 0.0
        reasons.append(
            f"{m} labelled positives are too few to bound recall >= {recall} at delta/2 = {alpha:g}:"
            " nothing is rejected"
        )
    candidates = np.asarray(grid, dtype=float).reshape(-1)
    if candidates.size == 0:
        raise InputError("cascade calibration: the grid of upper thresholds is empty")
    upper, precision_bound = _upper_for_precision(s, y, precision, alpha / len(candidates), candidates, lower)
    if upper > 1.0:
        reasons.append(
            f"no upper threshold of {len(candidates)} certifies precision >= {precision} at delta/2 = {alpha:g}"
            " (Bonferroni): nothing is accepted"
        )
    return _result(s, y, upper, lower, recall_bound, precision_bound, "; ".join(reasons) or None)


def calibrate_accept_only(
    scores: ArrayLike, labels: ArrayLike, *, precision: float, delta: float, grid: ArrayLike = GRID
) -> Calibration:
    """``upper`` (``lower`` = 0) so the accepted records are positive at rate >= ``precision`` w.p. >= ``1 - delta``.

    For a proxy whose non-accepted records all go to the oracle (a model proxy): ``scores`` shape
    ``(n,)`` in [0, 1], ``labels`` shape ``(n,)``, True when the proxy's answer agrees with the oracle's.
    ``upper`` is the smallest grid point whose one-sided Clopper-Pearson lower bound of
    P(agree | score >= u), at level ``delta / len(grid)`` (Bonferroni), reaches ``precision``; none:
    :data:`~pipeline_hub.cascade.spec.NEVER_ACCEPT`. ``achieved``: ``precision`` = agreement of the accepted
    records on the sample (None when none is accepted), ``recall`` None (nothing is rejected),
    ``oracle_share`` = share not accepted; ``recall_bound`` is 1.0. Raises
    :class:`~pipeline_hub.exceptions.InputError` as :func:`calibrate` does.
    """
    s, y = _checked(scores, labels, precision, 1.0, delta)
    candidates = np.asarray(grid, dtype=float).reshape(-1)
    if candidates.size == 0:
        raise InputError("cascade calibration: the grid of upper thresholds is empty")
    reason = None
    if len(s) == 0 or not y.any():
        why = "empty sample" if len(s) == 0 else f"the proxy agrees with the oracle on none of the {len(s)} records"
        upper, bound, reason = NEVER_ACCEPT, 1.0, f"{why}: every record goes to the oracle"
    else:
        upper, bound = _upper_for_precision(s, y, precision, delta / len(candidates), candidates, 0.0)
        if upper > 1.0:
            reason = (
                f"no upper threshold of {len(candidates)} certifies an agreement >= {precision} at delta = {delta:g}"
                " (Bonferroni): nothing is accepted"
            )
    accepted = s >= upper
    achieved = Achieved(
        precision=_ratio(int((accepted & y).sum()), int(accepted.sum())),
        recall=None,
        oracle_share=_ratio(int((~accepted).sum()), len(s)),
    )
    return Calibration(upper, 0.0, len(s), achieved, 1.0, bound, reason)


def cascade_outcome(scores: ArrayLike, labels: ArrayLike, upper: float, lower: float) -> Achieved:
    """Precision, recall and oracle share of the cascade ``(upper, lower)`` on labelled records.

    Shapes ``(n,)``; the oracle's answers are ``labels``. A ratio with a zero denominator (no predicted
    positive, no positive, no record) is None.
    """
    s, y = np.asarray(scores, dtype=float), np.asarray(labels, dtype=bool)
    accepted, band = s >= upper, (s >= lower) & (s < upper)
    predicted = accepted | (band & y)
    true_pos = int((predicted & y).sum())
    return Achieved(
        precision=_ratio(true_pos, int(predicted.sum())),
        recall=_ratio(true_pos, int(y.sum())),
        oracle_share=_ratio(int(band.sum()), len(s)),
    )


def _lower_for_recall(positives: NDArray[np.float64], recall: float, alpha: float) -> tuple[float | None, float]:
    """``(lower, recall lower bound)`` from the sorted positive scores; ``(None, 1.0)`` when none certifies."""
    m = len(positives)
    ks = np.arange(1, m + 1)
    ok = stats.binom.cdf(ks - 1, m, 1.0 - recall) <= alpha
    if not ok.any():
        return None, 1.0
    k = int(ks[ok].max())
    return float(positives[k - 1]), float(1.0 - stats.beta.ppf(1.0 - alpha, k, m - k + 1))


def _upper_for_precision(
    s: NDArray[np.float64],
    y: NDArray[np.bool_],
    precision: float,
    level: float,
    grid: NDArray[np.float64],
    floor: float,
) -> tuple[float, float]:
    """``(upper, precision lower bound)``: smallest grid point >= ``floor`` certified at ``level``, else never."""
    at_or_above = s[None, :] >= grid[:, None]
    k = at_or_above.sum(axis=1)
    j = (at_or_above & y[None, :]).sum(axis=1)
    bound = np.zeros(len(grid))
    some = j > 0
    bound[some] = stats.beta.ppf(level, j[some], k[some] - j[some] + 1)
    passing = (bound >= precision) & (grid >= floor)
    if not passing.any():
        return NEVER_ACCEPT, 1.0
    best = int(np.flatnonzero(passing)[np.argmin(grid[passing])])
    return float(grid[best]), float(bound[best])


def _result(
    s: NDArray[np.float64],
    y: NDArray[np.bool_],
    upper: float,
    lower: float,
    recall_bound: float,
    precision_bound: float,
    reason: str | None,
) -> Calibration:
    achieved = cascade_outcome(s, y, upper, lower)
    return Calibration(upper, lower, len(s), achieved, recall_bound, precision_bound, reason)


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def _checked(
    scores: ArrayLike, labels: ArrayLike, precision: float, recall: float, delta: float
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    s, raw = np.asarray(scores, dtype=float).reshape(-1), np.asarray(labels).reshape(-1)
    if s.shape != raw.shape:
        raise InputError(f"cascade calibration: {s.size} scores but {raw.size} labels")
    if not np.all(np.isfinite(s) & (s >= 0.0) & (s <= 1.0)):
        raise InputError("cascade calibration: every score must be a finite number in [0, 1]")
    if raw.size and not np.isin(raw, (0, 1)).all():
        raise InputError("cascade calibration: labels must be booleans (or 0/1)")
    for name, value in (("precision", precision), ("recall", recall)):
        if not 0.0 < value <= 1.0:
            raise InputError(f"cascade calibration: target {name} must be in (0, 1], not {value!r}")
    if not 0.0 < delta < 1.0:
        raise InputError(f"cascade calibration: delta must be in (0, 1), not {delta!r}")
    return s, raw.astype(bool)
