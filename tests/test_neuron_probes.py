"""probes.families.neuron: batched patching equals the seed's one-forward-per-neuron loop; the lens ends at the model's
logits; attribution patching approximates exact patching; bad stimuli give clear errors."""
from __future__ import annotations

import numpy as np
import pytest

from probes.errors import StimulusError
from probes.families.neuron import analysis as neuron
from probes.loading import load
from fixtures.models import resolve


@pytest.fixture(scope="module")
def lm():
    return load(resolve("gpt2-organism"), device="cpu")


@pytest.fixture(scope="module")
def case(lm):
    return neuron.make_case(lm, "tall_short", "John is tall. Mary is", "John is short. Mary is", " short", " tall")


@pytest.mark.parametrize("model", ["gpt2-organism", "gpt-neo-organism"])
@pytest.mark.parametrize("layer", [0, 3])
def test_batched_neuron_patching_equals_loop(model, layer):
    """The batched path (resumed at the layer, shared prefix from a key/value cache) equals one forward each."""
    lm = load(resolve(model), device="cpu")
    case = neuron.make_case(lm, "big_small", "Issac is big. Todd is small. John is big. Mary is",
                        "Issac is small. Todd is big. John is small. Mary is", " small", " big")
    idx = np.arange(0, lm.adapter.d_mlp, 37)
    batched = neuron.neuron_patching(lm, case, layer, idx, batch=5)
    loop = neuron.neuron_patching_loop(lm, case, layer, idx)
    np.testing.assert_allclose(batched, loop, atol=1e-5)


def test_lens_ends_at_model_logit_diff(lm, case):
    lens = neuron.logit_lens(lm, case)
    assert lens.shape == (lm.adapter.n_layers + 1,)
    assert abs(lens[-1] - neuron.logit_diffs(lm, case)[0]) < 1e-3


def test_layer_position_patching_endpoints(lm, case):
    r = neuron.layer_position_patching(lm, case)
    diff = (case.clean != case.corrupted)[0].numpy()
    np.testing.assert_allclose(r[0, diff].sum(), 1, atol=1e-4)   # the embeddings of the differing token: all of it
    np.testing.assert_allclose(r[-1, -1], 1, atol=1e-4)          # the final residual at the last position: all of it


@pytest.mark.parametrize("model", ["gpt2-organism", "gpt-neo-organism"])
def test_residual_patching_equals_loop(model):
    """Resumed, prefix-cached residual patching equals the seed's one full forward per (layer, position)."""
    lm = load(resolve(model), device="cpu")
    case = neuron.make_case(lm, "big_small", "Issac is big. Todd is small. John is big. Mary is",
                        "Issac is small. Todd is big. John is small. Mary is", " small", " big")
    np.testing.assert_allclose(neuron.layer_position_patching(lm, case), neuron.layer_position_patching_loop(lm, case),
                               atol=1e-5)
    corr = case.clean.clone()
    corr[0, 0] = case.clean[0, 4]  # the first name replaced by the second: no shared prefix, no key/value cache
    assert corr[0, 0] != case.clean[0, 0]
    first = neuron.Case("first", case.clean, corr, case.target, case.foil)
    gap = np.subtract(*neuron.logit_diffs(lm, first))  # compared in logit units (a small gap magnifies restorations)
    np.testing.assert_allclose(neuron.layer_position_patching(lm, first, max_batch_tokens=8) * gap,
                               neuron.layer_position_patching_loop(lm, first) * gap, atol=1e-4)


def test_attribution_tracks_exact_patching(lm, case):
    a = neuron.attribution_patching(lm, case)
    assert a.shape == (lm.adapter.n_layers, lm.adapter.d_mlp)
    exact = neuron.neuron_patching(lm, case, 3)
    assert np.corrcoef(a[3], exact)[0, 1] > 0.9


def test_ablating_nothing_is_the_clean_model(lm, case):
    d = neuron.ablated_diffs(lm, [case], [{}])
    assert abs(d[0, 0] - neuron.logit_diffs(lm, case)[0]) < 1e-4


def test_bad_cases_name_the_fix(lm):
    with pytest.raises(StimulusError, match="equal lengths"):
        neuron.make_case(lm, "x", "John is tall. Mary is", "John is very short. Mary is", " short", " tall")
    with pytest.raises(StimulusError, match="not one"):
        neuron.make_case(lm, "x", "John is tall. Mary is", "John is short. Mary is", " shortest-ever", " tall")
