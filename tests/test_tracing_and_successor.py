"""probes.families.tracing and probes.families.successor on small models and hand-built inputs: the resumed
restoration equals a full corrupted pass with the hidden state put back by a hook; zero noise changes nothing; the
succession score reads exactly the pairs it names; bad facts are refused with the fix."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from probes import hooks
from probes.errors import StimulusError
from probes.families.successor import analysis as successor
from probes.families.tracing import analysis as tracing
from tests.conftest import random_lm


@pytest.fixture(scope="module", params=["smollm2-135m", "gemma-3-270m", "gpt2"])
def rlm(request):
    return random_lm(request.param, n_layers=3, narrow=True)


def facts_by_hand(lm, F: int = 3, T: int = 7) -> tracing.Facts:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 1000, (F, T), generator=g)
    lengths = [T, T - 1, T - 2][:F]
    return tracing.Facts(ids, lengths, [(1, 3), (0, 2), (2, 3)][:F], [11, 12, 13][:F], ["a", "b", "c"][:F])


def test_restoration_equals_a_full_pass_with_the_state_put_back(rlm):
    """Each restored probability equals a full pass from the same corrupted embeddings in which a hook puts the
    clean residual stream back at that (layer, position); the last token restored after the last block gives the
    clean probability; with zero noise every run is the clean run."""
    lm = rlm
    facts = facts_by_hand(lm)
    tr = tracing.trace(lm, facts, noise=3.0, samples=2, seed=0)
    F, S_, L, C = tr["restored"].shape
    assert (F, S_, L, C) == (3, 2, lm.adapter.n_layers, 3)
    with torch.no_grad():
        emb = lm.model.get_input_embeddings()(facts.ids)
    real = torch.arange(facts.ids.shape[1])[None] < torch.tensor(facts.lengths)[:, None]
    sigma = float(emb[real].std())
    eps = torch.randn((2, *emb.shape), generator=torch.Generator().manual_seed(0)) * (3.0 * sigma)
    with torch.no_grad(), hooks.capture(lm.adapter, [("resid", lay) for lay in range(L)]) as clean:
        lm.acts(facts.ids)
    pos = facts.positions()
    for f in range(F):
        s, e = facts.spans[f]
        noisy = emb[f:f + 1].clone()
        noisy[:, s:e] += eps[1, f:f + 1, s:e]  # sample 1
        for layer in range(L):
            for c in range(C):
                p = int(pos[f, c])

                def put(x, layer=layer, p=p):
                    x[:, p] = clean[("resid", layer)][f, p]
                    return x
                with torch.no_grad(), hooks.intervene(lm.adapter, {("resid", layer): put}):
                    h = lm.adapter.base(inputs_embeds=noisy).last_hidden_state[0, facts.lengths[f] - 1]
                    ref = lm.adapter.logits_from_normed(h[None]).float().softmax(-1)[0, facts.attributes[f]]
                assert abs(tr["restored"][f, 1, layer, c] - float(ref)) < 1e-5 * max(1.0, float(ref)) + 1e-7
    assert np.allclose(tr["restored"][:, :, L - 1, 2], tr["clean"][:, None], atol=1e-6)
    zero = tracing.trace(lm, facts, noise=0.0, samples=1, seed=0)
    assert np.allclose(zero["corrupted"][:, 0], zero["clean"], atol=1e-6)
    assert np.allclose(zero["restored"], zero["clean"][:, None, None, None], atol=1e-6)


def test_site_contrast_and_band():
    ie = np.zeros((2, 6, 3))
    ie[:, :3, 0] = 0.5   # last subject token, early layers
    ie[:, 3:, 2] = 0.9   # last token, late layers
    sc = tracing.site_contrast(ie, tracing.band(6))
    assert list(tracing.band(6)) == [0, 1, 2]
    assert np.allclose(sc["per_class"][:, 0], 0.5) and np.allclose(sc["margin"], 0.5)


class _Tok:
    """A tokenizer that splits words on '|' (one token per piece) and knows no special tokens."""
    all_special_ids: list = []
    pad_token_id = None

    def __call__(self, text, add_special_tokens=True, return_offsets_mapping=False):
        pieces, offsets, at = [], [], 0
        for w in text.split("|"):
            if w:
                pieces.append(hash(w) % 1000 + 5)
                offsets.append((at, at + len(w)))
            at += len(w) + 1
        return {"input_ids": pieces, **({"offset_mapping": offsets} if return_offsets_mapping else {})}


def test_bad_facts_are_refused_with_the_fix():
    class LM:
        tokenizer = _Tok()
        device = torch.device("cpu")
    with pytest.raises(StimulusError, match="one-token attribute"):
        tracing.tokenize(LM(), [{"subject": "Eiffel", "relation": "is|in", "attribute": "Pa|ris"}])
    with pytest.raises(StimulusError, match="two tokens or more"):
        tracing.tokenize(LM(), [{"subject": "Eiffel", "relation": "in", "attribute": "Paris"}])
    f = tracing.tokenize(LM(), [{"prefix": "In|", "subject": "Big|Ben", "relation": "|is|in", "attribute": "London"}])
    assert f.spans == [(1, 3)] and f.lengths == [5] and f.positions().tolist() == [[2, 3, 4]]


def test_succession_reads_the_pairs_it_names():
    # one task of 4 members; head (0, 0) always predicts the successor (the last member: itself), head (0, 1)
    # copies, head (1, 0) predicts member 0
    top = {"t": np.array([[[1, 2, 3, 3], [0, 1, 2, 3]], [[0, 0, 0, 0], [3, 2, 1, 0]]])}
    corr = successor.correct(top)
    assert corr["t"].shape == (2, 2, 3)
    score = successor.scores(corr)
    assert score[0, 0] == 1.0 and score[0, 1] == 0.0 and score[1, 0] == 0.0
    # a shuffled order: member 3 -> 1 -> 0 -> 2; the copying head never succeeds, head (1, 1) maps 1 -> 2 only
    sh = successor.scores(successor.correct(top, {"t": np.array([3, 1, 0, 2])}))
    assert sh[0, 1] == 0.0 and sh.max() <= 1.0
    draws = successor.boot_scores(corr, [(0, 0), (0, 1)], n_boot=50)
    assert draws.shape == (50, 2) and np.all(draws[:, 0] == 1.0) and np.all(draws[:, 1] == 0.0)
    assert successor.shuffled_maxima(top, 5, 0).shape == (5,)


def test_tasks_a_tokenizer_splits_are_set_aside():
    ids, split = successor.task_ids(_Tok(), {"ok": ["a", "b", "c"], "split": ["x", "y|z"]})
    assert list(ids) == ["ok"] and split == {"split": ["y|z"]}
