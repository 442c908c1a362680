"""The lesion probes on the BERT organism: target positions, and batched ablation equals one set at a time."""
from __future__ import annotations

import numpy as np
import pytest

from fixtures.loaders import stimuli
from probes.families.lesion import analysis as lesion
from probes.errors import StimulusError
from probes.loading import load
from fixtures.models import resolve

STIM = stimuli("lesion_v1")


@pytest.fixture(scope="module")
def bert():
    return load(resolve("bert-organism"), device="cpu")


def test_seed_sentences_hold_their_target_once(bert):
    him, her = lesion.target_ids(bert)
    a = lesion.target_acts(bert, STIM["tuning"]["him"], him, "him")
    b = lesion.target_acts(bert, STIM["tuning"]["her"], her, "her")
    assert a.shape[:2] == (bert.adapter.n_layers, 54) and b.shape == a.shape
    with pytest.raises(StimulusError, match="holds the him token 2 times"):
        lesion.target_acts(bert, ["I saw him and him."], him, "him")
    with pytest.raises(StimulusError, match="0 times"):
        lesion.target_acts(bert, ["I saw nobody."], him, "him")


def test_batched_ablation_equals_one_set_at_a_time(bert):
    texts = [h["text"] for h in STIM["heldout"][:6]]
    targets = [h["target"] for h in STIM["heldout"][:6]]
    sets = lesion.random_sets(bert.adapter.d_mlp, 20, 30, draws=5, seed=1)
    batched = lesion.masked_margins(bert, texts, targets, layer=3, sets=sets)
    single = np.concatenate([lesion.masked_margins(bert, texts, targets, layer=3, sets=[s]) for s in sets])
    assert batched.shape == (5, 6) and np.abs(batched - single).max() < 1e-4
    clean = lesion.masked_margins(bert, texts, targets)
    empty = lesion.masked_margins(bert, texts, targets, layer=3, sets=[(np.array([], int), np.array([], int))])
    assert np.abs(empty[0] - clean).max() < 1e-4  # ablating nothing changes nothing
    assert np.abs(batched - clean).max() > 0  # ablating neurons changes something


def _naive_margins(lm, texts, targets, layer, sets):
    """Reference: one full forward per set (the model's own MLM head over every position), a plain forward hook
    zeroing the set's neurons at the mask position of ``layer``'s pre-activation."""
    import torch
    him_id, her_id = lesion.target_ids(lm)
    enc = lm.tokenizer(texts, return_tensors="pt", padding=True)
    pos = (enc["input_ids"] == lm.tokenizer.mask_token_id).nonzero()[:, 1]
    rows = torch.arange(len(texts))
    out = []
    for him_n, her_n in sets:
        def hook(mod, inp, x):
            x = x.clone()
            for i, t in enumerate(targets):
                x[i, pos[i], torch.as_tensor(him_n if t == "him" else her_n, dtype=torch.long)] = 0
            return x
        h = lm.model.bert.encoder.layer[layer].intermediate.dense.register_forward_hook(hook)
        try:
            with torch.no_grad():
                at = lm.model(**enc).logits[rows, pos]
        finally:
            h.remove()
        t = torch.tensor([him_id if x == "him" else her_id for x in targets])
        f = torch.tensor([her_id if x == "him" else him_id for x in targets])
        out.append((at[rows, t] - at[rows, f]).numpy())
    return np.stack(out)


def _bert_large_config_model(bert):
    """A randomly initialised BERT of bert-large-uncased's real config (2 layers), with the organism's tokenizer."""
    import dataclasses

    from transformers import BertForMaskedLM

    from probes.adapters import adapter_for
    from tests.conftest import real_config
    m = BertForMaskedLM(real_config("bert-large-uncased")).eval()
    return dataclasses.replace(bert, model=m, adapter=adapter_for(m))


@pytest.mark.parametrize("which", ["bert-organism", "bert-large-config"])
def test_resumed_ablation_equals_full_forwards_in_every_layer(bert, which):
    lm = bert if which == "bert-organism" else _bert_large_config_model(bert)
    texts = [h["text"] for h in STIM["heldout"][:5]]
    targets = [h["target"] for h in STIM["heldout"][:5]]
    sets = lesion.random_sets(lm.adapter.d_mlp, 7, 9, draws=3, seed=2)
    for layer in range(lm.adapter.n_layers):
        fast = lesion.masked_margins(lm, texts, targets, layer=layer, sets=sets)
        assert np.abs(fast - _naive_margins(lm, texts, targets, layer, sets)).max() < 1e-4, layer
