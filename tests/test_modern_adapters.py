"""Adapters of the modern architectures, on randomly initialised models built from each family's real config
(fixtures/configs/, 2 layers): shapes, gated-MLP neurons, no-op interventions, hook removal, the logit lens,
resumed passes (with a prefix key/value cache) and batched patching against the one-pass-per-component loop.

The sizes the adapter reads are checked against the real config at its real widths (built on the meta device: no
memory, no initialisation). The behaviour tests run on the real config with its widths narrowed where the model
has more than 1B parameters (``tests.conftest.narrowed``: head counts, key/value grouping, norms, rotary settings,
soft-capping and layer kinds as in the config, head_dim 32): a 2-layer Mistral-7B at full width took 70 s of
the suite for the same code paths."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from probes.adapters import ARCHS, adapter_for
from probes.families.ioi import analysis as ioi
from probes.families.neuron import analysis as neuron
from probes.hooks import capture, intervene
from probes.tokens import first_difference
from tests.conftest import CONFIGS, narrowed, random_lm, random_model
from tests.test_adapters import check_hooks_removed_on_error, check_noop_is_bit_identical

MODERN = ["smollm2-135m", "llama-3.2-1b", "mistral-7b-v0.1", "qwen2.5-0.5b", "qwen3-0.6b", "gemma-2b", "gemma-2-2b",
          "gemma-3-270m", "pythia-70m", "olmo-1b-hf", "olmo-2-0425-1b", "phi-3-mini-4k-instruct"]
ALL = MODERN + ["gpt2", "gpt-neo-125m"]


@pytest.fixture(scope="module", params=ALL)
def rlm(request):
    return request.param, random_lm(request.param, narrow=True)


def ids(n=3, T=9, seed=1):
    return torch.randint(5, 1000, (n, T), generator=torch.Generator().manual_seed(seed))


def test_every_architecture_has_a_config_fixture():
    types = {json.loads((CONFIGS / f"{n}.json").read_text())["model_type"] for n in ALL}
    assert set(ARCHS) - {"bert"} <= types | {"gemma3_text"}


def sizes(cfg: dict) -> tuple[int, int, int, int]:
    """(d_model, heads, head_dim, d_mlp) as a config states them."""
    D = cfg.get("hidden_size") or cfg.get("n_embd")
    H = cfg.get("num_attention_heads") or cfg.get("n_head") or cfg.get("num_heads")
    return D, H, cfg.get("head_dim") or D // H, cfg.get("intermediate_size") or cfg.get("n_inner") or 4 * D


def test_shapes_and_sizes_from_the_config(rlm):
    name, lm = rlm
    cfg = json.loads((CONFIGS / f"{name}.json").read_text())
    with torch.device("meta"):  # the real widths, without memory or initialisation
        full = adapter_for(random_model(name))
    D, H, dh, N = sizes(cfg)
    assert (full.d_model, full.n_heads, full.head_dim, full.d_mlp) == (D, H, dh, N)
    assert full.mlp_out_weight(0).shape == (N, D)
    ad = lm.adapter  # the model the tests below run (narrowed above 1B parameters)
    D, H, dh, N = sizes(narrowed(cfg))
    assert (ad.d_model, ad.n_heads, ad.head_dim, ad.d_mlp) == (D, H, dh, N)
    sites = [(s, layer) for s in ("heads", "mlp_act", "mlp_out", "resid", "resid_pre") for layer in range(2)]
    with torch.no_grad(), capture(ad, sites) as rec:
        lm.model(input_ids=ids())
    assert rec[("heads", 1)].shape == (3, 9, H, dh)  # per query head, also with fewer key/value heads
    assert rec[("mlp_act", 0)].shape == (3, 9, N)
    assert rec[("mlp_out", 1)].shape == rec[("resid", 1)].shape == rec[("resid_pre", 0)].shape == (3, 9, D)
    assert torch.equal(rec[("resid", 0)], rec[("resid_pre", 1)])
    assert ad.mlp_out_weight(0).shape == (N, D)


def test_neuron_is_the_input_of_the_down_projection(rlm):
    """The neuron (site mlp_act) is the input of the MLP's down projection; gated MLPs: act(gate) * up."""
    _, lm = rlm
    ad = lm.adapter
    mlp = ad.block(1).mlp
    seen = {}
    h = mlp.register_forward_pre_hook(lambda m, a: seen.__setitem__("x", a[0]))
    try:
        with torch.no_grad(), capture(ad, [(s, 1) for s in ("mlp_act", "mlp_pre") if s in ad.sites]) as rec:
            lm.model(input_ids=ids())
    finally:
        h.remove()
    if hasattr(mlp, "up_proj") and "mlp_pre" in ad.sites:
        act = mlp.act_fn(rec[("mlp_pre", 1)]) * mlp.up_proj(seen["x"])
        assert torch.allclose(act, rec[("mlp_act", 1)], atol=1e-5)
    with torch.no_grad():
        down = next(getattr(mlp, n) for n in ("down_proj", "dense_4h_to_h", "c_proj") if hasattr(mlp, n))
        assert torch.allclose(down(rec[("mlp_act", 1)]), mlp(seen["x"]), atol=1e-5)


def test_noop_intervention_is_bit_identical_and_hooks_go(rlm):
    _, lm = rlm
    check_noop_is_bit_identical(lm.model, lm.adapter, ids())
    check_hooks_removed_on_error(lm.model, lm.adapter, ids())


def test_logit_lens_reproduces_the_logits(rlm):
    """Final norm ((1 + w) for Gemma), unembedding and Gemma 2's soft-capping: the lens at the last layer is the
    model's own logits, and logit_diff reads the same difference from two unembedding rows."""
    _, lm = rlm
    ad = lm.adapter
    with torch.no_grad(), capture(ad, [("resid", 1)]) as rec:
        out = lm.model(input_ids=ids()).logits
    lens = ad.logits_from_resid(rec[("resid", 1)])
    assert torch.allclose(lens, out, atol=1e-5, rtol=1e-5)
    h = ad.final_norm()(rec[("resid", 1)])[:, -1]
    d = ad.logit_diff(h, torch.tensor([7, 8, 9]), torch.tensor([10, 11, 12]))
    ref = out[:, -1, [7, 8, 9]].diagonal() - out[:, -1, [10, 11, 12]].diagonal()
    assert torch.allclose(d, ref, atol=1e-4)


def test_resumed_pass_equals_full_pass(rlm):
    """Resuming at layer 1 from the captured residual (and continuing a shared prefix from a key/value cache, with
    the rotary positions following it) gives the full pass's hidden states; ``last_only`` its last position."""
    _, lm = rlm
    ad = lm.adapter
    x = ids()
    with torch.no_grad():
        full = ad.base(input_ids=x).last_hidden_state
        with capture(ad, [("resid_pre", 1)]) as rec:
            lm.model(input_ids=x)
        with ad.resume_from(1):
            h = ad.body(rec[("resid_pre", 1)])
        assert (h - full).abs().max() < 1e-4
        cache = ad.prefix_cache(x[:, :4])
        with ad.resume_from(1):
            h2 = ad.body(rec[("resid_pre", 1)][:, 4:], cache)
        assert (h2 - full[:, 4:]).abs().max() < 1e-4
        # the last position alone (the last block's output projection and MLP run there only)
        cache = ad.prefix_cache(x[:, :4])  # a fresh one (a pass extends the cache it continues)
        with ad.resume_from(1):
            h3 = ad.body(rec[("resid_pre", 1)][:, 4:], cache, last_only=True)
        assert h3.shape == (3, ad.d_model) and (h3 - full[:, -1]).abs().max() < 1e-4
        # the prefix's cache cut from a pass of the whole sequence serves the same
        cut = ad.acts_and_prefix_cache(x, 4)
        with ad.resume_from(1):
            h4 = ad.body(rec[("resid_pre", 1)][:, 4:], cut, last_only=True)
        assert (h4 - full[:, -1]).abs().max() < 1e-4
        window = getattr(ad.config, "sliding_window", None)
        ad.config.sliding_window = x.shape[1]  # a window the sequence fills: no cut (the caller runs the prefix)
        try:
            assert ad.acts_and_prefix_cache(x, 4) is None
        finally:
            ad.config.sliding_window = window
    assert ad.n_layers == 2 and len(ad.blocks()) == 2  # restored


def test_batched_patching_equals_the_loop(rlm):
    """Neuron patching (resumed, prefix-cached, two unembedding rows) and head patching (batched) equal the seed's
    one-forward-per-component loop within 1e-4."""
    _, lm = rlm
    g = torch.Generator().manual_seed(3)
    clean = torch.randint(5, 1000, (1, 10), generator=g)
    corr = clean.clone()
    corr[0, 4] = (clean[0, 4] + 17) % 1000
    case = neuron.Case("t", clean, corr, 11, 12)
    neurons = torch.randperm(lm.adapter.d_mlp, generator=g)[:6].numpy()
    a = neuron.neuron_patching(lm, case, 1, neurons, batch=4)
    b = neuron.neuron_patching_loop(lm, case, 1, neurons)
    assert abs(a - b).max() < 1e-4
    base = torch.randint(5, 1000, (3, 8), generator=g)
    s = ioi.PromptSet(base, base.flip(1), torch.tensor([5, 6, 7]), torch.tensor([8, 9, 10]), ["x"] * 3, [("a", "b")] * 3)
    src = ioi.head_acts(lm, s.source)
    heads = [(layer, h) for layer in range(2) for h in sorted({0, lm.adapter.n_heads - 1})]  # first and last (GQA groups)
    x = ioi.head_edit_scores(lm, s, heads, lambda layer, h: src[layer, :, :, h, :], max_batch_tokens=60)
    y = ioi.head_edit_scores_loop(lm, s, heads, lambda layer, h: src[layer, :, :, h, :])
    assert (x - y).abs().max() < 1e-4
    attn = lm.adapter.block(1).get_submodule(lm.adapter.spec.heads.rpartition(".")[0])
    assert "forward" not in vars(attn)  # the edited layer's attention (given per-head outputs) is restored
    # patching from prompts that share a prefix: the prefix comes from a key/value cache, only the rest is computed
    src_ids = base.clone()
    src_ids[:, 5:] = base.flip(1)[:, 5:]
    s2 = ioi.PromptSet(base, src_ids, s.a_ids, s.b_ids, s.texts, s.names)
    src2 = ioi.head_acts(lm, src_ids)
    pay = lambda layer, h: src2[layer, :, :, h, :]  # noqa: E731
    assert first_difference(base, src_ids) == 5
    x2 = ioi.head_edit_scores(lm, s2, heads, pay, max_batch_tokens=30, prefix=5)
    y2 = ioi.head_edit_scores_loop(lm, s2, heads, pay)
    assert (x2 - y2).abs().max() < 1e-4


def test_residual_patching_equals_the_loop(rlm):
    """Residual patching (layer x position) resumed at each layer over a prefix key/value cache, with the no-op
    positions before the first difference left out, equals one full forward per (layer, position) within 1e-4
    (compared in logit units: restoration x (clean - corrupted)). The case without a shared prefix is checked on
    the organisms (tests/test_neuron_probes.py): the loop is the costly side here (a full vocabulary per forward)."""
    _, lm = rlm
    g = torch.Generator().manual_seed(4)
    clean = torch.randint(5, 1000, (1, 7), generator=g)
    corr = clean.clone()
    corr[0, 3] = (clean[0, 3] + 29) % 1000  # the prompts differ from position 3 on
    case = neuron.Case("t", clean, corr, 11, 12)
    gap = float(np.subtract(*neuron.logit_diffs(lm, case)))
    fast = neuron.layer_position_patching(lm, case, max_batch_tokens=9)  # several chunks per layer
    loop = neuron.layer_position_patching_loop(lm, case)
    assert fast.shape == loop.shape == (lm.adapter.n_layers + 1, 7)
    assert abs((fast - loop) * gap).max() < 1e-4


def test_residual_patching_batched_over_cases_equals_one_case_at_a_time(rlm):
    """Several cases in one batch (each its own prompts, targets and first difference: 2 and 4; the shared prefix
    of the batch is the earliest) equal the one-case patching case by case within 1e-4 in logit units (which the
    test above checks against the loop), with chunks that split a layer's positions."""
    _, lm = rlm
    g = torch.Generator().manual_seed(6)
    cases = []
    for i, at in enumerate((4, 2, 4)):
        clean = torch.randint(5, 1000, (1, 7), generator=g)
        corr = clean.clone()
        corr[0, at] = (clean[0, at] + 31) % 1000
        cases.append(neuron.Case(f"c{i}", clean, corr, 11 + i, 40 + i))
    fast = neuron.layer_position_patching_many(lm, cases, max_batch_tokens=40)  # 2 positions x 3 cases per pass
    for c, f in zip(cases, fast):
        gap = float(np.subtract(*neuron.logit_diffs(lm, c)))
        assert abs((f - neuron.layer_position_patching(lm, c)) * gap).max() < 1e-4


def test_batched_ablation_equals_one_set_at_a_time(rlm):
    """Zeroing many neuron sets in one resumed forward (a mask per copy) equals zeroing each set on its own; the
    cases share their first two tokens (as Gemma's cases share <bos>), which run once per set as a cache."""
    _, lm = rlm
    g = torch.Generator().manual_seed(5)
    cases = [neuron.Case(f"c{i}", torch.randint(5, 1000, (1, 7 + i % 2), generator=g), None, 11 + i, 20 + i)
             for i in range(4)]
    for c in cases:
        c.clean[0, :2] = torch.tensor([3, 4])
    N = lm.adapter.d_mlp
    sets = [{}, {1: [0, 3, 5]}, {0: [1, 2], 1: [N - 1]}, {1: list(range(0, N, 7))}]
    batched = neuron.ablated_diffs(lm, cases, sets, max_batch_tokens=40)
    for r, s in enumerate(sets):
        edits = {("mlp_act", layer): (lambda x, n=torch.tensor(n): x.index_fill_(-1, n, 0)) for layer, n in s.items()}
        with torch.no_grad(), intervene(lm.adapter, edits):
            ref = [float(lm.last_diff(c.clean, c.target, c.foil)[0]) for c in cases]
        assert abs(batched[r] - ref).max() < 1e-4


def test_head_ov_is_what_a_head_writes_when_it_attends_to_one_position(rlm):
    """On a one-token input every head attends to that token alone: with all other heads zeroed, what the
    attention sublayer writes (after Gemma 2/3's and OLMo 2's post-attention norm; without the output projection's
    shared bias) is ``head_ov`` of the block's input, for every head (grouped-query, fused qkv and Conv1D
    layouts). GPT-NeoX's interleaved qkv is not declared: a clear error."""
    from probes.adapters import _get_path
    from probes.errors import ProbeError
    name, lm = rlm
    ad = lm.adapter
    x = ids(3, 1)
    if not ad.spec.v_proj:
        with pytest.raises(ProbeError, match="OV circuits are not supported"):
            ad.head_ov(1, torch.zeros(1, ad.d_model))
        return
    blk = ad.block(1)
    proj = _get_path(blk, ad.spec.heads)
    out_mod = _get_path(blk, ad.spec.post_attn_norm) if ad.spec.post_attn_norm else proj
    with torch.no_grad(), capture(ad, [("resid_pre", 1)]) as rec:
        lm.model(input_ids=x)
    ov = ad.head_ov(1, rec[("resid_pre", 1)][:, 0])
    assert ov.shape == (ad.n_heads, 3, ad.d_model)
    for h in range(ad.n_heads):
        got = {}
        hook = out_mod.register_forward_hook(lambda m, i, o: got.__setitem__("out", o.detach()))

        def others_zeroed(z, h=h):
            keep = z[:, :, h].clone()
            z[:] = 0
            z[:, :, h] = keep
            return z
        try:
            with torch.no_grad(), intervene(ad, {("heads", 1): others_zeroed}):
                lm.model(input_ids=x)
        finally:
            hook.remove()
        out = got["out"][:, 0]
        if not ad.spec.post_attn_norm and getattr(proj, "bias", None) is not None:
            out = out - proj.bias
        assert torch.allclose(ov[h], out, atol=1e-5, rtol=1e-4), (name, h, (ov[h] - out).abs().max())
