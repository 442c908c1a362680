"""The lesion probes on the BERT organism: target positions, and batched ablation equals one set at a time."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from probes import lesion
from probes.errors import StimulusError
from probes.loading import load
from probes.registry import resolve

STIM = json.loads((Path(__file__).resolve().parents[1] / "fixtures/stimuli/lesion_v1.json").read_text())


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
