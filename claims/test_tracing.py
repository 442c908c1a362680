"""Causal-tracing claims: the model knows facts, and their recall is localised at the last subject token in the
early-to-middle layers.

Source: Meng et al. 2022 ("Locating and Editing Factual Associations in GPT", ROME), in GPT-2 XL and GPT-J; since
replicated in other families (e.g. Mamba, Sharma et al. 2024). Stimulus: fixtures/stimuli/facts_v1.json: 46 facts written for the file as (prefix, subject,
relation, one-token attribute). A model knows a fact when the attribute is its top-1 next token; the known facts are
recorded. Measure (probes.families.tracing): the subject's input embeddings corrupted with Gaussian noise of 3x the
embeddings' standard deviation (4 seeded draws per fact, averaged), then the clean residual stream after block l restored
at one position: the last subject token, the first token after the subject, or the last token. Effects are
probabilities of the attribute, restored minus corrupted, on the first 16 known facts; intervals resample the facts
and, within each, its noise draws (a two-stage bootstrap: both random sources).
Nulls: restoring at the non-subject positions; a randomly initialised copy of the same config.
"""
from __future__ import annotations

import numpy as np
import pytest

from fixtures.loaders import stimuli
from probes import figures, stats
from probes.errors import require
from probes.families.tracing import analysis as tracing
from probes.families.tracing import figures as tracing_figures
from probes.loading import random_copy

FAMILY = "tracing"
STIM = stimuli("facts_v1")
@pytest.fixture
def facts(lm, model_cache) -> dict:
    """The facts tokenized for this model, with the model's and a random-init copy's clean probabilities of each
    attribute (once per model: shared by the family's claims)."""
    if "tracing.facts" not in model_cache:
        f = tracing.tokenize(lm, STIM["facts"])
        p, known = tracing.clean_probs(lm, f)
        p_rnd, known_rnd = tracing.clean_probs(random_copy(lm, STIM["null_seed"]), f)
        model_cache["tracing.facts"] = {"facts": f, "p": p, "known": known, "p_random": p_rnd,
                                        "known_random": known_rnd}
    return model_cache["tracing.facts"]


def _known_names(c: dict) -> list[str]:
    return [n for n, k in zip(c["facts"].names, c["known"]) if k]


@pytest.mark.claim(id="tracing.known_facts", family=FAMILY, kinds=("causal",),
                   source="Meng et al. 2022, known facts (the attribute is the model's top-1 prediction)",
                   null="a random-init copy of the same config on the same prompts",
                   criterion="the attribute is the top-1 next token for >= 50% of the 46 facts, and for more facts "
                             "than in the random-init copy")
def test_the_model_knows_facts(lm, facts, claim_snapshot, figure_path, figure_title):
    """The model completes most facts of the list with their attribute (the Eiffel Tower is located in the city of
    -> Paris), which a randomly initialised copy does not: the facts the tracing claims can use, recorded by name."""
    known = facts["known"]
    share = float(known.mean())
    names = _known_names(facts)
    claim_snapshot({"known": names, "known_share": share, "mean_p_attribute": float(facts["p"].mean()),
                    "random_init_known_share": float(facts["known_random"].mean())},
                   effect=["known_share"], identity=["known"],
                   intervals={"known_share": stats.mean_ci(known.astype(float))})
    figures.save(tracing_figures.known_facts(figure_title(), facts["facts"].names, facts["p"], known,
                                             facts["p_random"]), figure_path())
    assert share >= STIM["known_share"], (f"the model answers only {known.sum()} of {len(known)} facts "
                                          f"({share:.0%} < {STIM['known_share']:.0%})")
    assert known.sum() > facts["known_random"].sum(), \
        f"the random-init copy answers as many facts ({facts['known_random'].sum()}) as the model ({known.sum()})"


@pytest.mark.claim(id="tracing.subject_site", family=FAMILY, kinds=("causal",),
                   source="Meng et al. 2022, causal tracing (the early site)",
                   null="restoring at the first token after the subject and at the last token of the same layers; "
                        "a random-init copy traced alike (4 facts)",
                   criterion="over layers 0..L/2-1, restoring the last subject token restores >= 25% of the "
                             "corruption's drop on average, more than either non-subject position (per-fact margin, "
                             "sign-flip p < 0.01), and more than in the random-init copy")
def test_recall_is_localised_at_the_last_subject_token(lm, facts, claim_snapshot, figure_path, figure_title):
    """With the subject's embeddings corrupted by noise, putting back the clean hidden state of the last subject
    token in an early-to-middle layer restores the fact, while putting back the first token after the subject or
    the last token in those layers restores almost nothing: the association is recalled at the subject, and moved
    to the last token only later."""
    known = [i for i, k in enumerate(facts["known"]) if k]
    claim_snapshot({"n_known": len(known)})  # what the preconditions read (replaced below by the claim's numbers)
    require(len(known) >= STIM["min_known"], f"the model answers only {len(known)} facts (need "
                                             f"{STIM['min_known']} to trace; see tracing.known_facts)")
    traced = facts["facts"].subset(known[:STIM["trace_facts"]])
    tr = tracing.trace(lm, traced, STIM["noise"], STIM["samples"], STIM["seed"])
    gap = tr["clean"] - tr["corrupted"].mean(1)
    claim_snapshot({"n_known": len(known), "p_clean": float(tr["clean"].mean()),
                    "p_corrupted": float(tr["corrupted"].mean())})
    require(gap.mean() >= 0.5 * tr["clean"].mean(),
            f"the corruption does not remove the fact: p(attribute) {tr['clean'].mean():.3f} clean, "
            f"{tr['corrupted'].mean():.3f} corrupted (noise {STIM['noise']} x sigma {tr['sigma']:.3g})")
    ie = tracing.effects(tr)  # (facts, layers, classes)
    L = ie.shape[1]
    band = tracing.band(L)
    sc = tracing.site_contrast(ie, band)
    per, margin = sc["per_class"], sc["margin"]
    # intervals: facts resampled, and each drawn fact's noise samples resampled (both random sources)
    nested = stats.nested_means(tracing.sample_effects(tr, band))  # (n_boot, facts, classes)
    draws = nested.mean(1)
    margin_draws = (nested[..., 0] - nested[..., 1:].max(-1)).mean(1)
    share = float(per[:, 0].mean() / gap.mean())
    p_flip = stats.sign_flip_p(margin)
    rnd = random_copy(lm, STIM["null_seed"])
    null_facts = facts["facts"].subset(list(range(STIM["null_facts"])))
    ie_rnd = tracing.effects(tracing.trace(rnd, null_facts, STIM["noise"], STIM["samples"], STIM["seed"]))
    null_subject = float(tracing.site_contrast(ie_rnd, band)["per_class"][:, 0].mean())
    mean_ie = ie.mean(0)  # (layers, classes)
    later = np.flatnonzero(mean_ie[:, 2] > mean_ie[:, 0])
    handover = int(later[0]) if len(later) else L
    keys = ("last_subject", "first_after", "last_token")
    claim_snapshot({"traced": traced.names, "band": [band.start, band.stop - 1], "p_clean": float(tr["clean"].mean()),
                    "p_corrupted": float(tr["corrupted"].mean()),
                    "restored": {k: float(per[:, j].mean()) for j, k in enumerate(keys)},
                    "restored_share": share, "margin": float(margin.mean()), "p_sign_flip": p_flip,
                    "random_init_last_subject": null_subject, "handover_layer": handover},
                   effect=["restored.last_subject", "margin"], identity=["traced"],
                   intervals={"restored": {k: stats.interval(draws[:, j]) for j, k in enumerate(keys)},
                              "margin": stats.interval(margin_draws)})
    figures.save(tracing_figures.causal_trace(figure_title(f": {len(traced.names)} known facts"), mean_ie,
                                              tracing.CLASSES, band, per, ie_rnd.mean(0)[:, 0], float(gap.mean())),
                 figure_path())
    assert share >= STIM["min_restored_share"], (
        f"restoring the last subject token in layers {band.start}-{band.stop - 1} restores only {share:.0%} of the "
        f"corruption's drop ({per[:, 0].mean():.3f} of {gap.mean():.3f}; >= {STIM['min_restored_share']:.0%} needed)")
    assert p_flip < 0.01 and margin.mean() > 0, (
        f"the last subject token does not restore more than the non-subject positions: margin {margin.mean():.3f} "
        f"(first token after {per[:, 1].mean():.3f}, last token {per[:, 2].mean():.3f}), sign-flip p = {p_flip:.3g}")
    assert per[:, 0].mean() > null_subject, (f"the random-init copy restores as much at the last subject token "
                                             f"({null_subject:.3f} vs {per[:, 0].mean():.3f})")
