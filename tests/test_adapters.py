"""Adapters on randomly initialised models built from the real configs (2 layers each)."""
from __future__ import annotations

import pytest
import torch

from probes.adapters import adapter_for
from probes.errors import NumericsError, ProbeError
from probes.hooks import capture, intervene, n_hooks

NAMES = ["gpt2", "gpt2-large", "gpt-neo-125m", "bert-large-uncased"]
EXPECT = {  # d_model, heads, d_mlp
    "gpt2": (768, 12, 3072), "gpt2-large": (1280, 20, 5120), "gpt-neo-125m": (768, 12, 3072),
    "bert-large-uncased": (1024, 16, 4096),
}


def ids(n=5, T=7):
    return torch.randint(100, 1000, (n, T), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", NAMES)
def test_captured_shapes(small_models, name):
    m = small_models[name]
    ad = adapter_for(m)
    D, H, N = EXPECT[name]
    assert (ad.d_model, ad.n_heads, ad.d_mlp, ad.head_dim) == (D, H, N, D // H)
    sites = [(s, layer) for s in ("heads", "mlp_pre", "mlp_act", "mlp_out", "resid") for layer in range(2)]
    with torch.no_grad(), capture(ad, sites) as rec:
        m(input_ids=ids())
    assert rec[("heads", 1)].shape == (5, 7, H, D // H)
    assert rec[("mlp_pre", 0)].shape == rec[("mlp_act", 0)].shape == (5, 7, N)
    assert rec[("mlp_out", 1)].shape == rec[("resid", 1)].shape == (5, 7, D)
    assert ad.mlp_out_weight(0).shape == (N, D)
    # pre- vs post-activation are really different things (GELU applied in between)
    assert torch.allclose(torch.nn.functional.gelu(rec[("mlp_pre", 0)], approximate="tanh" if "gpt" in name else "none"),
                          rec[("mlp_act", 0)], atol=1e-5)


def check_noop_is_bit_identical(m, ad, x) -> None:
    """Identity edits on every site of layers 0-1 leave the logits bit-identical (shared with the modern adapters)."""
    with torch.no_grad():
        ref = m(input_ids=x).logits
        edits = {(s, layer): (lambda y: y) for s in ("heads", "mlp_act", "mlp_out", "resid") for layer in range(2)}
        with intervene(ad, edits):
            out = m(input_ids=x).logits
    assert torch.equal(ref, out)


def check_hooks_removed_on_error(m, ad, x) -> None:
    """Hooks of intervene() and capture() are gone after an exception (shared with the modern adapters)."""
    before = n_hooks(m)

    def boom(y):
        raise RuntimeError("boom")
    with pytest.raises(RuntimeError, match="boom"):
        with torch.no_grad(), intervene(ad, {("mlp_act", 1): boom}):
            m(input_ids=x)
    with pytest.raises(RuntimeError, match="boom"):
        with torch.no_grad(), capture(ad, [("heads", 0), ("resid", 1)]):
            m(input_ids=x)
            raise RuntimeError("boom")
    assert n_hooks(m) == before


@pytest.mark.parametrize("name", NAMES)
def test_noop_intervention_is_bit_identical(small_models, name):
    m = small_models[name]
    check_noop_is_bit_identical(m, adapter_for(m), ids())


@pytest.mark.parametrize("name", NAMES)
def test_hooks_removed_even_when_forward_raises(small_models, name):
    m = small_models[name]
    check_hooks_removed_on_error(m, adapter_for(m), ids())


def test_head_edit_changes_only_that_head(small_models):
    m = small_models["gpt2"]
    ad = adapter_for(m)

    def zero_head3(x):
        x[:, :, 3] = 0
        return x
    with torch.no_grad(), intervene(ad, {("heads", 0): zero_head3}), capture(ad, [("heads", 0)]) as rec:
        m(input_ids=ids())
    # capture reads the module input after the edit: head 3 is zero, the others are not
    assert rec[("heads", 0)][:, :, 3].abs().max() == 0
    assert rec[("heads", 0)][:, :, 2].abs().max() > 0


def test_nan_activations_raise_clear_error(small_models):
    m = small_models["gpt2"]
    ad = adapter_for(m)

    def poison(x):
        x[0, 0, 0] = float("nan")
        return x
    with pytest.raises(NumericsError, match="NaN/inf values in .*float32 this is no overflow.*an edit or an input"):
        with torch.no_grad(), intervene(ad, {("mlp_act", 0): poison}), capture(ad, [("resid", 1)]):
            m(input_ids=ids())


def test_unknown_site_and_layer(small_models):
    ad = adapter_for(small_models["gpt2"])
    with pytest.raises(ProbeError, match="known sites"):
        ad.module("attn_weights", 0)
    with pytest.raises(ProbeError, match="out of range"):
        ad.module("heads", 5)
