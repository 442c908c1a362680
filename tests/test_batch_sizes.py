"""Batches follow the device's memory (issue 39): the budget grows with the free memory and stops at its cap, a
worker shares the machine's memory with the others, and the claims' batched measurements give the same numbers
under batch budgets ten times apart."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from fixtures.loaders import ioi_pairs
from fixtures.models import resolve
from probes import attention, devices, loading
from probes.families.induction import analysis as induction
from probes.families.ioi import analysis as ioi
from probes.families.neuron import analysis as neuron


@pytest.fixture(scope="module")
def lm():
    return loading.load(resolve("gpt2-organism"), device="cpu")


def test_the_budget_follows_free_memory_up_to_its_cap(lm, monkeypatch):
    cpu, f32 = torch.device("cpu"), torch.float32
    small = devices.batch_tokens(lm.model, cpu, f32, free=64 << 20)
    large = devices.batch_tokens(lm.model, cpu, f32, free=640 << 20)
    assert 256 <= small < large <= devices.CPU_BATCH_CAP
    assert devices.batch_tokens(lm.model, cpu, f32, free=1 << 40) == devices.CPU_BATCH_CAP
    assert devices.batch_tokens(lm.model, cpu, f32, cap=1000, free=1 << 40) == 1000
    assert devices.batch_tokens(lm.model, cpu, f32, free=1 << 10) == 256  # never below 256 tokens
    assert devices.batch_tokens(lm.model, torch.device("cuda"), f32, free=1 << 40) == devices.GPU_BATCH_CAP
    half = devices.batch_tokens(lm.model, cpu, torch.bfloat16, free=64 << 20)
    assert half > small  # two bytes a number: twice the tokens
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "4")
    quarter = devices.free_memory(cpu)
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "1")
    assert abs(devices.free_memory(cpu) / 4 - quarter) < 0.05 * quarter + (64 << 20)
    assert lm.batch_tokens == devices.batch_tokens(lm.model, cpu, f32)  # what the loader gave the model


def _with(lm, n: int):
    return dataclasses.replace(lm, batch_tokens=n, cache={})


def test_batched_measurements_are_the_same_under_budgets_ten_times_apart(lm):
    small, big = _with(lm, 300), _with(lm, 3000)
    # IOI head patching: heads per pass from the budget
    sets, _ = ioi.prompt_sets(lm, ioi_pairs(version=1)[:12])
    s = sets[0]
    heads = ioi.all_heads(lm)
    src = ioi.head_acts(lm, s.source)
    got = [ioi.head_edit_scores(m, s, heads, lambda layer, h: src[layer, :, :, h, :]) for m in (small, big)]
    K = [max(1, m.batch_tokens // (s.base.shape[0] * s.base.shape[1])) for m in (small, big)]
    assert K[0] < K[1]  # the two budgets do batch differently
    torch.testing.assert_close(got[0], got[1], rtol=1e-5, atol=1e-5)
    # neuron-set ablations: sets per pass from the budget
    case = neuron.make_case(lm, "tall_short", "John is tall. Mary is", "John is short. Mary is", " short", " tall")
    g = np.random.default_rng(0)
    nsets = [{}] + [{1: g.choice(lm.adapter.d_mlp, 5, replace=False)} for _ in range(30)]
    np.testing.assert_allclose(neuron.ablated_diffs(small, [case], nsets), neuron.ablated_diffs(big, [case], nsets),
                               rtol=1e-5, atol=1e-5)
    # next-token losses of head ablations: sequences per pass from the budget
    ids, _ = induction.random_repeats(lm, 40, 10, 0)
    edits = [{}, attention.zero_heads([(1, 0)]), attention.zero_heads([(0, 1), (2, 2)])]
    for a, b in zip(attention.ablation_losses(small, ids, 10, edits), attention.ablation_losses(big, ids, 10, edits)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
