"""Successor-head claim: some attention head's OV circuit maps members of ordinal sequences to their successors.

Source: Gould et al. 2023 ("Successor Heads: Recurring, Interpretable Attention Heads In The Wild"), found in GPT-2,
Pythia and Llama-2 from 31M parameters up. Stimulus: fixtures/stimuli/successor_v1.json: six ordinal tasks (digits,
number words, ordinals, days, months, letters); a task enters only when all its members are single tokens of the
model's tokenizer (the split ones are recorded). Measure (probes.families.successor): each head's OV circuit applied to
each member's effective embedding (the residual stream after block 0), read through the final norm and the
unembedding rows of the task's tokens; the succession score is the mean over tasks of how often the successor is
ranked first (the member itself is a candidate). Intervals resample each task's pairs. Nulls: every head of three
randomly initialised copies of the same config; the best head when each task's members are put in a random order
(20 seeded shuffles). No model that runs here holds it (registry known failures); the positive control is a
SmolLM2 copy with one head's output projection fitted to map each member to its successor, where it holds
(tests/test_claims_can_fail.py).
"""
from __future__ import annotations

import pytest

from fixtures.loaders import stimuli
from probes import attention, figures, stats
from probes.errors import require
from probes.families.successor import analysis as successor
from probes.families.successor import figures as successor_figures
from probes.loading import random_copy

FAMILY = "successor"
STIM = stimuli("successor_v1")
THRESHOLD = STIM["head_threshold"]


@pytest.mark.claim(id="successor.heads", family=FAMILY, kinds=("causal",),
                   source="Gould et al. 2023, succession score of the OV circuit",
                   null="every head of 3 random-init copies of the same config; the best head for 20 seeded "
                        "shuffles of each task's order (permutation p-value)",
                   criterion="some head ranks the successor first among the task's tokens for >= 50% of the pairs "
                             "(mean over tasks), above every random-init head and every shuffled order (p < 0.05)")
def test_some_head_maps_ordinals_to_their_successors(lm, claim_snapshot, figure_path, figure_title):
    """Some head, applied to a token's effective embedding, writes its successor (Monday -> Tuesday, 3 -> 4,
    C -> D) more than any other member of the sequence, on most pairs of several sequences: far more than any head
    of a randomly initialised copy, and more than any head scores for a shuffled order of the same tokens."""
    ids, split = successor.task_ids(lm.tokenizer, STIM["tasks"])
    claim_snapshot({"tasks": sorted(ids), "tasks_split": {t: w for t, w in sorted(split.items())}},
                   identity=["tasks"])  # what the precondition reads (replaced below by the claim's numbers)
    require(len(ids) >= STIM["min_tasks"],
            f"only {len(ids)} succession task(s) have single-token members for this tokenizer (need "
            f"{STIM['min_tasks']}); split: " + "; ".join(f"{t} ({', '.join(map(repr, w[:3]))})"
                                                        for t, w in split.items()))
    top = successor.top1(lm, ids)
    corr = successor.correct(top)
    score = successor.scores(corr)  # (layers, heads)
    L, H = score.shape
    null_random = max(float(successor.scores(successor.correct(successor.top1(random_copy(lm, seed), ids))).max())
                      for seed in STIM["null_seeds"])
    shuffled = successor.shuffled_maxima(top, STIM["shuffles"], STIM["seed"])
    best = attention.top_heads(score, 1)[0]
    p_shuffle = stats.perm_p(float(score[best]), shuffled)
    passing = [h for h in attention.top_heads(score, L * H)
               if score[h] >= THRESHOLD and score[h] > null_random and score[h] > shuffled.max()]
    heads = [(layer, h) for layer in range(L) for h in range(H)]
    draws = successor.boot_scores(corr, heads)  # (n_boot, L*H): each task's pairs resampled
    top5 = attention.top_heads(score, 5)
    data = {"tasks": sorted(ids), "tasks_split": {t: w for t, w in sorted(split.items())},
            "heads": [attention.head_name(h) for h in passing],
            "top_heads": [{"head": attention.head_name(h), "score": float(score[h]),
                           "per_task": {t: float(c[h].mean()) for t, c in corr.items()}} for h in top5],
            "top_score": float(score[best]), "null_random_init_max": null_random,
            "null_shuffled_max": float(shuffled.max()), "p_shuffled": p_shuffle}
    claim_snapshot(data, effect=["top_score", "top_heads[].score"],
                   identity=["heads", "top_heads[].head"],
                   intervals={"top_score": stats.interval(draws.max(1), centre=float(score[best])),
                              "top_heads": [{"score": stats.interval(draws[:, h[0] * H + h[1]])} for h in top5]},
                   stability={"heads": stats.top_k_stability(draws, max(1, len(passing)),
                                                             [attention.head_name(h) for h in heads], order="pos")})
    figures.save(successor_figures.heads(
        figure_title(), score, data["top_heads"][0]["per_task"], {t: len(v) for t, v in ids.items()},
        attention.head_name(best), null_random, float(shuffled.max()), THRESHOLD), figure_path())
    assert score[best] >= THRESHOLD, (
        f"no head has a succession score >= {THRESHOLD}: the best, {attention.head_name(best)}, ranks the successor "
        "first "
        f"for {score[best]:.3f} of the pairs (random-init copies' best {null_random:.3f}, shuffled orders' best "
        f"{shuffled.max():.3f})")
    assert passing, (f"the best head {attention.head_name(best)} ({score[best]:.3f}) is not above the random-init "
                     "copies' "
                     f"best ({null_random:.3f}) and every shuffled order's best ({shuffled.max():.3f}, p = "
                     f"{p_shuffle:.3f})")
