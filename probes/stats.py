"""Vectorised statistics: t-tests, FDR, Bonferroni, Cohen's d, permutation and sign-flip nulls."""
from __future__ import annotations

import numpy as np
from scipy import stats as sps


def rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def ttest_ind(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Two-sample t-test (equal variances) along axis 0 for every column; returns (t, p)."""
    r = sps.ttest_ind(a, b, axis=0)
    return np.asarray(r.statistic), np.asarray(r.pvalue)


def ttest_ind_perms(x: np.ndarray, n1: int, perms: np.ndarray) -> np.ndarray:
    """Student's t (equal variances) of ``x[perm[:n1]]`` vs ``x[perm[n1:]]`` for every column and every row of
    ``perms`` at once: (B, N). Group sums come from one matrix product per batch of permutations instead of one
    t-test per draw (equals scipy.stats.ttest_ind to rounding; tests/test_grammar_stats.py)."""
    x = np.asarray(x, dtype=np.float64)
    n, n2 = len(x), len(x) - n1
    out = np.empty((len(perms), x.shape[1]))
    tot, totsq = x.sum(0), (x * x).sum(0)
    xsq = x * x
    for b0 in range(0, len(perms), 64):
        P = perms[b0:b0 + 64]
        M = np.zeros((len(P), n))
        M[np.arange(len(P))[:, None], P[:, :n1]] = 1.0
        s1, q1 = M @ x, M @ xsq
        s2, q2 = tot - s1, totsq - q1
        m1, m2 = s1 / n1, s2 / n2
        ss = (q1 - n1 * m1 ** 2) + (q2 - n2 * m2 ** 2)
        with np.errstate(divide="ignore", invalid="ignore"):
            sp2 = np.maximum(ss, 0) / (n - 2)
            out[b0:b0 + len(P)] = (m1 - m2) / np.sqrt(sp2 * (1 / n1 + 1 / n2))
    return out


def t_to_p(t: np.ndarray, df: int) -> np.ndarray:
    """Two-sided p-values of Student t statistics."""
    return 2 * sps.t.sf(np.abs(t), df)


def fdr(p: np.ndarray, q: float = 0.05) -> np.ndarray:
    """Benjamini-Hochberg: boolean mask of discoveries at level q (scipy.stats.false_discovery_control)."""
    p = np.asarray(p, dtype=float)
    return sps.false_discovery_control(np.nan_to_num(p, nan=1.0), method="bh") < q


def bonferroni(p: np.ndarray, alpha: float = 0.05) -> np.ndarray:
    p = np.asarray(p, dtype=float)
    return np.nan_to_num(p, nan=1.0) < alpha / p.size


def cohens_d(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cohen's d per column with the pooled SD (matches pingouin.compute_effsize(..., eftype='cohen'))."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    na, nb = a.shape[0], b.shape[0]
    va, vb = a.var(0, ddof=1), b.var(0, ddof=1)
    pooled = np.sqrt(((na - 1) * va + (nb - 1) * vb) / (na + nb - 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        return (a.mean(0) - b.mean(0)) / pooled


def sign_flip_p(x: np.ndarray, n: int = 10_000, seed: int = 0) -> float:
    """One-sided p-value that mean(x) > 0 under random sign flips (paired/symmetric null)."""
    x = np.asarray(x, float)
    signs = rng(seed).choice([-1.0, 1.0], size=(n, x.size))
    null = (signs * x).mean(1)
    return float((1 + (null >= x.mean()).sum()) / (n + 1))


def perm_p(observed: float, null: np.ndarray) -> float:
    """One-sided permutation p-value: P(null >= observed), with the +1 correction."""
    null = np.asarray(null, float)
    return float((1 + (null >= observed).sum()) / (null.size + 1))


def ttest_1samp(x: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """One-sample t-test against 0 along ``axis``; returns (t, p)."""
    r = sps.ttest_1samp(np.asarray(x, float), 0.0, axis=axis)
    return np.asarray(r.statistic), np.asarray(r.pvalue)
