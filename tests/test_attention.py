"""The attention scores of probes.families.induction and probes.families.sinks, and probes.attention's head
edits, on attention patterns built by hand: each score reads exactly the entries it names."""
from __future__ import annotations

import numpy as np
import torch

from probes import attention
from probes.families.induction import analysis as induction
from probes.families.sinks import analysis as sinks


def pattern(T: int, kind: str, length: int = 0, prefix: int = 0) -> torch.Tensor:
    """A (T, T) causal attention pattern: every query on its previous token, on the first token, or on the token
    after its previous occurrence in ``[prefix] r r``."""
    a = torch.zeros(T, T)
    for q in range(T):
        if kind == "prev":
            a[q, max(q - 1, 0)] = 1
        elif kind == "first":
            a[q, 0] = 1
        elif kind == "induction":
            a[q, q - length + 1 if q >= prefix + length else q] = 1
    return a


def test_scores_read_the_entries_they_name():
    length, prefix = 5, 1
    T = prefix + 2 * length
    heads = torch.stack([pattern(T, "prev"), pattern(T, "first"), pattern(T, "induction", length, prefix)])
    att = heads[None, None].repeat(2, 3, 1, 1, 1)  # (layers 2, sequences 3, heads 3, T, T)
    prev = induction.previous_token_scores(att, prefix)
    ind = induction.induction_scores(att, prefix, length)
    sink = sinks.sink_scores(att)
    assert prev.shape == (2, 3, 3) and np.allclose(prev[:, 0], 1) and np.allclose(prev[:, 1], 0)
    assert np.allclose(ind[:, 2], 1) and np.allclose(ind[:, 0], 0) and np.allclose(ind[:, 1], 0)
    assert np.allclose(sink[:, 1], 1) and np.allclose(sink[:, 0], 1 / (T - 1))  # query 1's previous token is 0


def test_sink_scores_leave_out_padding_and_the_first_query():
    T = 6
    att = pattern(T, "first")[None, None, None].repeat(1, 2, 1, 1, 1)
    att[0, 1, 0, 4:] = 0  # padding rows of the second sequence attend nowhere
    mask = torch.tensor([[1] * 6, [1] * 4 + [0] * 2])
    assert np.allclose(sinks.sink_scores(att, mask), 1.0)


def test_top_heads_and_zero_heads():
    score = np.array([[0.1, 0.9], [0.5, 0.3]])
    assert attention.top_heads(score, 3) == [(0, 1), (1, 0), (1, 1)]
    edits = attention.zero_heads([(1, 0), (0, 1), (1, 1)])
    assert list(edits) == [("heads", 0), ("heads", 1)]
    x = torch.ones(2, 3, 2, 4)
    assert edits[("heads", 1)](x.clone())[:, :, [0, 1]].abs().sum() == 0
