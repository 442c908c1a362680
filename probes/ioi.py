"""Indirect-object identification (seed 004): behaviour, head silencing, head patching, head activations.

Conventions (the seed's): for a pair of names (A, B) the *base* prompt has the
subject's second mention S2 = B, so the indirect object IO = A (seed's "EM");
the *source* prompt has S2 = A, IO = B (seed's "ME"). The IOI score of a prompt
is ``logit(A) - logit(B)`` at the last position: positive on a correct base
prompt, negative on a correct source prompt.

Head edits act on the per-head attention output before the output projection
(site ``heads``), at every position (as the seed's hooks do). Many heads are
edited in one forward pass: the prompt batch is repeated once per edited head
and each copy gets its own edit (``max_batch_tokens`` bounds memory).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from . import stats
from .hooks import capture, check_finite, intervene
from .loading import LoadedModel, log
from .tokens import batch, prompt_ids, single_token


@dataclass
class PromptSet:
    """Tokenised IOI pairs of one token length (so that they batch and patch position by position)."""
    base: torch.Tensor  # (P, T)
    source: torch.Tensor  # (P, T)
    a_ids: torch.Tensor  # (P,)
    b_ids: torch.Tensor  # (P,)
    texts: list[str]
    names: list[tuple[str, str]]


def prompt_sets(lm: LoadedModel, pairs: Sequence) -> tuple[list[PromptSet], dict]:
    """Tokenise IOI pairs for this model, grouped by length; pairs whose names are not single tokens are dropped."""
    tok = lm.tokenizer
    groups: dict[int, list] = {}
    dropped = []
    for p in pairs:
        try:
            a, b = single_token(tok, " " + p.A), single_token(tok, " " + p.B)
        except Exception:  # noqa: BLE001 - multi-token name for this tokenizer: report, do not use
            dropped.append(f"{p.A}/{p.B}")
            continue
        eb, es = prompt_ids(tok, p.base), prompt_ids(tok, p.source)
        if len(eb) != len(es):
            dropped.append(f"{p.A}/{p.B}")
            continue
        groups.setdefault(len(eb), []).append((p, a, b))
    sets = []
    for _, items in sorted(groups.items()):
        sets.append(PromptSet(
            base=batch(tok, [p.base for p, _, _ in items], lm.device)["input_ids"],
            source=batch(tok, [p.source for p, _, _ in items], lm.device)["input_ids"],
            a_ids=torch.tensor([a for _, a, _ in items], device=lm.device),
            b_ids=torch.tensor([b for _, _, b in items], device=lm.device),
            texts=[p.base for p, _, _ in items], names=[(p.A, p.B) for p, _, _ in items]))
    return sets, {"n_pairs": sum(len(s.texts) for s in sets), "dropped_multi_token": dropped}


def _score(logits: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    last = logits[:, -1].float()
    check_finite(last, "final-position logits")
    return last.gather(1, a[:, None])[:, 0] - last.gather(1, b[:, None])[:, 0]


@torch.no_grad()
def scores(lm: LoadedModel, ids: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IOI score logit(A) - logit(B) at the last position, per prompt."""
    return _score(lm.last_logits(ids)[:, None], a, b)


def behaviour(lm: LoadedModel, sets: list[PromptSet], seed: int = 0) -> dict:
    """logit(IO) - logit(S) on every base and source prompt; accuracy, mean, sign-flip null p-value."""
    diffs = []
    for s in sets:
        diffs.append(scores(lm, s.base, s.a_ids, s.b_ids).cpu())  # IO = A
        diffs.append(-scores(lm, s.source, s.a_ids, s.b_ids).cpu())  # IO = B
    d = torch.cat(diffs).numpy().astype(float)
    return {"n_prompts": int(d.size), "accuracy": float((d > 0).mean()), "mean_logit_diff": float(d.mean()),
            "median_logit_diff": float(np.median(d)), "null_p_sign_flip": stats.sign_flip_p(d, seed=seed),
            "logit_diffs": d}


# ----------------------------------------------------------------------------- head edits
def all_heads(lm: LoadedModel) -> list[tuple[int, int]]:
    return [(l, h) for l in range(lm.adapter.n_layers) for h in range(lm.adapter.n_heads)]


@torch.no_grad()
def head_edit_scores(lm: LoadedModel, s: PromptSet, heads: list[tuple[int, int]],
                     payload: Callable[[int, int], torch.Tensor], *, max_batch_tokens: int = 8192,
                     progress: str | None = None) -> torch.Tensor:
    """IOI score of ``s.base`` with head (l, h)'s output replaced by ``payload(l, h)``; shape (len(heads), P).

    Batched: heads are grouped by layer and K edited copies of the prompt batch run in one forward pass
    (copy k edits one head). Where the adapter supports it, the pass starts at the edited layer from the
    cached clean residual stream (earlier layers are unaffected by the edit), and only the two target
    logits are computed at the last position.
    """
    ad = lm.adapter
    P, T = s.base.shape
    K = max(1, max_batch_tokens // (P * T))
    layers = sorted({l for l, _ in heads})
    resid = {}
    if ad.can_resume:
        with capture(ad, [("resid_pre", l) for l in layers]) as resid:
            lm.acts(s.base)
    order = sorted(range(len(heads)), key=lambda i: heads[i])
    out = torch.empty(len(heads), P)
    t0, done = time.time(), 0
    for l in layers:
        idx = [i for i in order if heads[i][0] == l]
        for c0 in range(0, len(idx), K):
            chunk = idx[c0:c0 + K]
            k = len(chunk)
            ks = torch.arange(k, device=lm.device)
            hs = torch.tensor([heads[i][1] for i in chunk], device=lm.device)
            rep = torch.stack([payload(l, heads[i][1]) for i in chunk]).to(lm.dtype)  # (k, P, T, dh)

            def edit(x):  # x: (k*P, T, H, dh)
                x = x.view(k, P, *x.shape[1:])
                x[ks, :, :, hs, :] = rep
                return x.view(k * P, *x.shape[2:])
            with intervene(ad, {("heads", l): edit}):
                if ad.can_resume:
                    with ad.resume_from(l):
                        h = ad.body(resid[("resid_pre", l)].repeat(k, 1, 1))[:, -1].float()
                    check_finite(h, "final hidden state")
                    sc = ad.logit_diff(h, s.a_ids.repeat(k), s.b_ids.repeat(k))  # two unembedding rows
                else:
                    sc = _score(lm.last_logits(s.base.repeat(k, 1))[:, None], s.a_ids.repeat(k), s.b_ids.repeat(k))
            out[chunk] = sc.view(k, P).cpu()
            done += k
            if progress and len(heads) > K:
                log(f"{progress}: {done}/{len(heads)} heads ({time.time() - t0:.0f}s)")
    return out


@torch.no_grad()
def head_edit_scores_loop(lm: LoadedModel, s: PromptSet, heads: list[tuple[int, int]],
                          payload: Callable[[int, int], torch.Tensor]) -> torch.Tensor:
    """Reference implementation, one forward pass per head (the seed's method); used by the benchmark and tests."""
    out = []
    for l, h in heads:
        rep = payload(l, h).to(lm.dtype)

        def edit(x, h=h, rep=rep):
            x[:, :, h, :] = rep
            return x
        with intervene(lm.adapter, {("heads", l): edit}):
            out.append(scores(lm, s.base, s.a_ids, s.b_ids).cpu())
    return torch.stack(out)


@torch.no_grad()
def head_acts(lm: LoadedModel, ids: torch.Tensor) -> torch.Tensor:
    """Per-head attention outputs of every layer: (L, P, T, H, dh)."""
    L = lm.adapter.n_layers
    with capture(lm.adapter, [("heads", l) for l in range(L)]) as rec:
        lm.acts(ids)
    return torch.stack([rec[("heads", l)] for l in range(L)])


def permutation_payload(acts: torch.Tensor, seed: int, rep: int) -> Callable[[int, int], torch.Tensor]:
    """Silencing by permutation (seed Part 2): the head's clean output (P, T, dh), its T*dh elements shuffled
    within each prompt. Permutations depend only on (seed, layer, head, rep), so batched and loop runs agree."""
    P, T = acts.shape[1], acts.shape[2]
    H, dh = acts.shape[3], acts.shape[4]

    def payload(l, h):
        g = torch.Generator().manual_seed(int(seed) * 1_000_003 + (l * H + h) * 1009 + rep)
        perm = torch.argsort(torch.rand(P, T * dh, generator=g), dim=1).to(acts.device)
        flat = acts[l, :, :, h, :].reshape(P, T * dh)
        return flat.gather(1, perm).view(P, T, dh)
    return payload


def silencing(lm: LoadedModel, sets: list[PromptSet], *, n_perm: int = 3, seed: int = 0,
              max_batch_tokens: int = 8192) -> dict:
    """Seed Part 2: delta IOI (silenced - clean) per (layer, head), averaged over permutations and prompts;
    head norms (norm of the head's clean output on the base prompts, averaged over prompts)."""
    heads = all_heads(lm)
    L, H = lm.adapter.n_layers, lm.adapter.n_heads
    deltas, norms, clean_all = [], [], []
    for si, s in enumerate(sets):
        acts = head_acts(lm, s.base)  # (L, P, T, H, dh)
        clean = scores(lm, s.base, s.a_ids, s.b_ids).cpu()
        per = [head_edit_scores(lm, s, heads, permutation_payload(acts, seed + si, r),
                                max_batch_tokens=max_batch_tokens, progress=f"silencing perm {r + 1}/{n_perm}")
               for r in range(n_perm)]
        deltas.append(torch.stack(per).mean(0) - clean)  # (nheads, P)
        norms.append(acts.float().flatten(2, 2).norm(dim=(2, 4)).permute(0, 2, 1).reshape(L * H, -1).cpu())
        clean_all.append(clean)
    d = torch.cat(deltas, 1).view(L, H, -1)
    return {"delta": d.mean(-1).numpy(), "delta_per_prompt": d.numpy(),
            "head_norm": torch.cat(norms, 1).view(L, H, -1).mean(-1).numpy(),
            "clean_mean": float(torch.cat(clean_all).mean())}


def patching(lm: LoadedModel, sets: list[PromptSet], *, max_batch_tokens: int = 8192) -> dict:
    """Seed Part 5: patch each head's output from the source run into the base run;
    delta IOI (patched - clean base) per (layer, head), and the full clean->source gap."""
    heads = all_heads(lm)
    L, H = lm.adapter.n_layers, lm.adapter.n_heads
    deltas, gaps = [], []
    for s in sets:
        src = head_acts(lm, s.source)
        clean = scores(lm, s.base, s.a_ids, s.b_ids).cpu()
        gaps.append(scores(lm, s.source, s.a_ids, s.b_ids).cpu() - clean)
        patched = head_edit_scores(lm, s, heads, lambda l, h: src[l, :, :, h, :],
                                   max_batch_tokens=max_batch_tokens, progress="head patching")
        deltas.append(patched - clean)
    d = torch.cat(deltas, 1).view(L, H, -1)
    return {"delta": d.mean(-1).numpy(), "delta_per_prompt": d.numpy(), "gap": float(torch.cat(gaps).mean())}


# ----------------------------------------------------------------------------- parts 3 and 4
def head_norm_map(acts: torch.Tensor) -> np.ndarray:
    """Seed Part 3: average attention-head vector norm per (layer, token): (L, T), for one prompt (P=1)."""
    return acts[:, 0].float().norm(dim=-1).mean(-1).cpu().numpy()


@torch.no_grad()
def head_norm_cv(lm: LoadedModel, sets: list[PromptSet]) -> float:
    """Coefficient of variation of head-output norms across the heads of a layer, averaged over layers,
    prompts and tokens (source prompts; position 0 excluded)."""
    vals = []
    for s in sets:
        nm = head_acts(lm, s.source).float().norm(dim=-1)[:, :, 1:]  # (L, P, T-1, H)
        vals.append((nm.std(-1) / nm.mean(-1).clamp_min(1e-12)).mean((0, 2)).cpu())
    return float(torch.cat(vals).mean())


def repeat_positions(ids: torch.Tensor, name_ids: torch.Tensor) -> torch.Tensor:
    """(P, 2) positions of the first and second mention of each prompt's repeated name."""
    pos = []
    for row, n in zip(ids, name_ids):
        where = (row == n).nonzero().flatten()
        if len(where) != 2:
            from .errors import StimulusError
            raise StimulusError(f"the repeated name (token {n.item()}) occurs {len(where)} times, expected 2")
        pos.append(where)
    return torch.stack(pos)


def selectivity_ratio(diff_l1: np.ndarray) -> np.ndarray:
    """Seed Part 4: per-head L1-mean |mention1 - mention2| -> mean of the two largest / mean of the two smallest.
    ``diff_l1``: (..., H); returns (...)."""
    s = np.sort(diff_l1, axis=-1)
    return s[..., -2:].mean(-1) / np.maximum(s[..., :2].mean(-1), 1e-12)


def mention_selectivity(lm: LoadedModel, sets: list[PromptSet], *, n_null: int = 1000, seed: int = 0) -> dict:
    """Per layer: the head selectivity ratio for first-vs-second mention of the repeated name (source prompts,
    S2 = A), averaged over prompts, and a null in which each layer's (H*dh) difference vector is shuffled
    across heads (so head identity carries no information)."""
    L, H, dh = lm.adapter.n_layers, lm.adapter.n_heads, lm.adapter.head_dim
    diffs = []
    for s in sets:
        acts = head_acts(lm, s.source).float()  # (L, P, T, H, dh)
        pos = repeat_positions(s.source, s.a_ids)
        idx = torch.arange(len(pos), device=acts.device)
        m1, m2 = acts[:, idx, pos[:, 0]], acts[:, idx, pos[:, 1]]  # (L, P, H, dh)
        diffs.append((m1 - m2).permute(1, 0, 2, 3).reshape(len(pos), L, H * dh).cpu())
    D = torch.cat(diffs).abs().numpy()  # (P, L, H*dh)
    P = D.shape[0]
    observed = selectivity_ratio(D.reshape(P, L, H, dh).mean(-1)).mean(0)  # (L,)
    g = stats.rng(seed)
    null = np.empty((n_null, L))
    for i in range(n_null):
        perm = g.permuted(np.broadcast_to(np.arange(H * dh), (P, L, H * dh)), axis=-1)
        shuffled = np.take_along_axis(D, perm, axis=-1).reshape(P, L, H, dh).mean(-1)
        null[i] = selectivity_ratio(shuffled).mean(0)
    p = (1 + (null >= observed).sum(0)) / (n_null + 1)
    return {"ratio": observed, "null_mean": null.mean(0), "null_q95": np.quantile(null, 0.95, axis=0), "p": p}
