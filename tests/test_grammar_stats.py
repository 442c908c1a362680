"""Statistics behind the grammar and lesion claims: vectorised Cohen's d equals pingouin's, FDR/Bonferroni,
permutation nulls are seeded, and the word-length criterion fails on confounded stimuli."""
from __future__ import annotations

import warnings

import numpy as np
import pingouin as pg
import pytest

from probes import stats


def test_cohens_d_matches_pingouin():
    g = np.random.default_rng(0)
    a, b = g.normal(0.3, 1.0, (57, 40)), g.normal(0.0, 1.7, (43, 40))
    ours = stats.cohens_d(a, b)
    ref = np.array([pg.compute_effsize(a[:, i], b[:, i], paired=False, eftype="cohen") for i in range(40)])
    assert np.abs(ours - ref).max() < 1e-10


def test_ttest_fdr_bonferroni():
    g = np.random.default_rng(1)
    a = g.normal(0, 1, (50, 100))
    b = g.normal(0, 1, (50, 100))
    b[:, :10] += 2.0
    t, p = stats.ttest_ind(a, b)
    assert stats.fdr(p)[:10].all() and stats.fdr(p)[10:].sum() <= 5
    assert stats.bonferroni(p).sum() <= stats.fdr(p).sum()


def test_ttest_equals_scipy():
    """The vectorised t-test and p-values equal scipy.stats.ttest_ind's (columns of any size, a constant column,
    a column whose groups differ without spread, one-dimensional groups), and the bootstrap's draw counts equal a
    count of its indices."""
    from scipy import stats as sps
    g = np.random.default_rng(3)
    a, b = g.normal(0, 1, (300, 50)), g.normal(0.2, 1.5, (120, 50))
    a[:, 0], b[:, 0] = 1.0, 1.0
    a[:, 1], b[:, 1] = 1.0, 2.0
    t, p = stats.ttest_ind(a, b)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = sps.ttest_ind(a, b, axis=0)
    assert np.allclose(t, ref.statistic, rtol=1e-12, equal_nan=True)
    assert np.allclose(p, ref.pvalue, rtol=1e-12, atol=0, equal_nan=True)
    assert np.isnan(t[0]) and np.isinf(t[1]) and p[1] == 0.0
    t1, p1 = stats.ttest_ind(np.arange(10.0), np.arange(12.0) + 1)
    r1 = sps.ttest_ind(np.arange(10.0), np.arange(12.0) + 1)
    assert float(t1) == pytest.approx(r1.statistic, rel=1e-12) and float(p1) == pytest.approx(r1.pvalue, rel=1e-12)
    assert np.array_equal(stats.t_to_p(ref.statistic[2:], 418), 2 * sps.t.sf(np.abs(ref.statistic[2:]), 418))
    idx = stats.boot_index(37, 200, 5)
    counts = np.zeros((200, 37))
    np.add.at(counts, (np.repeat(np.arange(200), 37), idx.ravel()), 1.0)
    assert np.array_equal(stats._draw_counts(37, 200, 5), counts)


def test_nulls_are_seeded():
    x = np.random.default_rng(2).normal(0.1, 1, 40)
    assert stats.sign_flip_p(x, seed=3) == stats.sign_flip_p(x, seed=3)
    assert stats.perm_p(5.0, np.arange(10)) == pytest.approx(6 / 11)


def test_length_criterion_fails_on_confounded_words():
    from probes.families.grammar.analysis import length_confound
    bad = length_confound(["information", "development", "organization", "construction"] * 20,
                          ["go", "see", "run", "sit"] * 20)
    assert abs(bad["d"]) >= 0.8  # grammar.stimuli asserts |d| < 0.8: it fails on length-confounded stimuli
    ok = length_confound(["table", "river", "houses", "cloud"] * 20, ["write", "carry", "bring", "speaks"] * 20)
    assert abs(ok["d"]) < 0.8


def test_permutation_ttests_equal_scipy_draw_by_draw():
    """The batched permutation t-tests of the label-shuffle nulls equal one scipy t-test per draw."""
    from scipy import stats as sps
    g = np.random.default_rng(2)
    x = g.normal(0, 1, (90, 30))
    x[:, 3] = 1.0  # a constant column: NaN in both
    perms = np.stack([g.permutation(90) for _ in range(70)])
    ours = stats.ttest_ind_perms(x, 40, perms)
    for i in (0, 33, 69):
        with warnings.catch_warnings():  # scipy's warning about the constant column
            warnings.simplefilter("ignore", RuntimeWarning)
            ref = sps.ttest_ind(x[perms[i, :40]], x[perms[i, 40:]], axis=0)
        assert np.allclose(ours[i], ref.statistic, atol=1e-9, equal_nan=True)
        assert np.allclose(stats.t_to_p(ours[i], 88), ref.pvalue, atol=1e-9, equal_nan=True)
