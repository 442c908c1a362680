"""The shortcuts of issue 38 compute the numbers the whole passes compute: losses of head ablations resumed at the
first edited layer, attention weights of edited passes stopped after the last read layer, a random-init copy read
back from the disk cache, and the finiteness check by min/max."""
from __future__ import annotations

import dataclasses

import pytest
import torch

from probes import attention, hooks, loading

from .conftest import random_lm

ARCHS = ("gpt2", "gpt-neo-125m", "smollm2-135m", "gemma-3-270m", "qwen2.5-0.5b")


def _repeats(lm, n: int = 3, length: int = 6, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    r = torch.randint(5, lm.model.config.vocab_size, (n, length), generator=g)
    return torch.cat([torch.zeros(n, 1, dtype=torch.long), r, r], 1)


@pytest.mark.parametrize("arch", ARCHS)
def test_resumed_ablation_losses_equal_whole_passes(arch):
    lm = random_lm(arch, n_layers=4, narrow=True)
    ids = _repeats(lm)
    sets = [{}, attention.zero_heads([(2, 0), (3, 1)]), attention.zero_heads([(1, 1)]),
            attention.zero_heads([(0, 0), (3, 0)])]
    resumed = attention.ablation_losses(lm, ids, 6, sets)
    for edits, got in zip(sets, resumed):
        whole = attention.token_losses(lm, ids, 6, edits)
        # the model's own loss, full logits and cross-entropy, as the claims computed it before
        with hooks.intervene(lm.adapter, edits):
            logits = lm.model(ids).logits[:, -6:-1].float()
        ref = torch.nn.functional.cross_entropy(logits.transpose(1, 2), ids[:, -5:], reduction="none")
        assert got.shape == (3, 5)
        torch.testing.assert_close(got, whole, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(resumed[0], resumed[1])  # the edits change the losses (the check can fail)


def test_losses_are_torch_logsumexp_bit_for_bit(monkeypatch):
    """The in-place log-sum-exp of losses_from_hidden is torch.logsumexp's own arithmetic: the same bits, also
    where the unembedding's row chunks split the positions (3 rows a chunk here)."""
    lm = random_lm("gemma-3-270m", n_layers=2, narrow=True)
    ids = _repeats(lm, n=4, length=7)
    V = lm.model.get_output_embeddings().weight.shape[0]
    monkeypatch.setattr(attention, "HEAD_BYTES", 3 * 4 * V)
    with torch.no_grad():
        h = lm.acts(ids).last_hidden_state
        got = attention.losses_from_hidden(lm, h, ids, 7)
        flat, tgt = h[:, -7:-1].reshape(-1, h.shape[-1]), ids[:, -6:].reshape(-1, 1)
        ref = []
        for i in range(0, len(flat), 3):  # the same logits (a GEMM's bits depend on its rows), then torch's own
            logits = lm.adapter.logits_from_normed(flat[i:i + 3]).float()
            ref.append(torch.logsumexp(logits, -1) - logits.gather(-1, tgt[i:i + 3])[:, 0])
    assert got.shape == (4, 6)
    assert torch.equal(got, torch.cat(ref).view(4, 6))
    ce = torch.nn.functional.cross_entropy(lm.adapter.logits_from_normed(flat).float(), tgt[:, 0], reduction="none")
    torch.testing.assert_close(got, ce.view(4, 6), rtol=1e-5, atol=1e-5)


def test_losses_are_accurate_over_a_wide_vocabulary():
    """next_token_losses against a float64 reference on logits as wide and as spread as Gemma-3-270m's (262k
    tokens): within 1e-5 nats, where float32 cross_entropy on the positions-by-vocabulary transpose (the claims'
    former loss) is off by more than 1e-4 (the tolerance tells the two apart)."""
    g = torch.Generator().manual_seed(0)
    V = 2 ** 18
    logits = torch.randn(2, 16, V, generator=g) * 4.0
    tgt = torch.randint(0, V, (2, 16), generator=g)
    exact = torch.logsumexp(logits.double(), -1) - logits.double().gather(-1, tgt[..., None])[..., 0]
    got = attention.next_token_losses(logits.reshape(-1, V).clone(), tgt.reshape(-1)).view(2, 16)
    assert (got.double() - exact).abs().max() < 1e-5
    former = torch.nn.functional.cross_entropy(logits.transpose(1, 2), tgt, reduction="none")
    assert (former.double() - exact).abs().max() > 1e-4


@pytest.mark.parametrize("arch", ARCHS)
def test_edited_attention_equals_whole_passes_on_the_read_layers(arch):
    lm = random_lm(arch, n_layers=4, narrow=True)
    ids = _repeats(lm)
    sets = [attention.zero_heads([(0, 1)]), attention.zero_heads([(1, 0), (0, 0)]), {}]
    got = attention.edited_attention(lm, ids, sets, [2], lambda a: a)
    for edits, att in zip(sets, got):
        whole = attention.attention(lm, ids, edits=edits)
        torch.testing.assert_close(att[2], whole[2], rtol=1e-5, atol=1e-6)
        assert torch.isnan(att[3]).all()  # above the last read layer: not computed, and says so
    assert not torch.allclose(got[0][2], got[2][2])


def test_a_random_copy_read_back_from_the_cache_is_the_initialised_model(tmp_path, monkeypatch):
    monkeypatch.setenv("INTERP_CLAIMS_CACHE", str(tmp_path))
    lm = random_lm("smollm2-135m", n_layers=2)
    lm = dataclasses.replace(lm, spec=dataclasses.replace(lm.spec, id="cache-test"))
    fresh = loading.random_init_like(lm, 3)
    first = loading.random_copy(lm, 3)  # initialised, written to the cache
    files = list((tmp_path / "random").glob("cache-test-seed3-*.safetensors"))
    assert len(files) == 1
    loading.forget_random_copies()
    again = loading.random_copy(lm, 3)  # read back
    assert again is not first
    ids = _repeats(lm)
    for m in (first, again):
        sd = m.model.state_dict()
        assert all(torch.equal(v, sd[k]) for k, v in fresh.model.state_dict().items())
        assert torch.equal(m.model(ids).logits, fresh.model(ids).logits)
    assert again.model.get_input_embeddings().weight is again.model.get_output_embeddings().weight  # still tied
    # one copy at a time; a damaged cache file is replaced by a fresh initialisation
    loading.random_copy(lm, 4)
    assert [k[1] for k in loading._RANDOM] == [4]
    loading.forget_random_copies()
    files[0].write_bytes(b"not a safetensors file")
    healed = loading.random_copy(lm, 3)
    assert torch.equal(healed.model(ids).logits, fresh.model(ids).logits)
    assert files[0].stat().st_size > 1000
    loading.forget_random_copies()


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_the_finiteness_check_finds_every_kind_of_bad_value(dtype):
    x = torch.randn(3, 5, 7).to(dtype)
    hooks.check_finite(x, "x")
    for bad in (float("nan"), float("inf"), -float("inf")):
        y = x.clone()
        y[2, 4, 6] = bad
        assert not hooks.all_finite(y)
        with pytest.raises(Exception, match="1 NaN/inf"):
            hooks.check_finite(y, "y")
    assert hooks.all_finite(torch.empty(0)) and hooks.all_finite(torch.arange(3))
