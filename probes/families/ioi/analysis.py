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

from ... import stats
from ...hooks import capture, check_finite, grads_of, intervene, with_grads
from ...loading import LoadedModel, logit_diff
from ...log import log
from ...tokens import batch, first_difference, prompt_ids, single_token


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


def top_heads(delta: np.ndarray, k: int, sign: int = -1) -> list[dict]:
    """The k heads of a (layers, heads) array of effects with the most negative (sign=-1) or largest |.| (sign=0)
    effect, best first (ties in index order), as records ``{"head": "L.H", "delta": value}`` (the IOI claims' ids:
    the seed's "layer.head", without the "L"/"H" of probes.attention.head_name)."""
    L, H = delta.shape
    key = delta.ravel() if sign == -1 else -np.abs(delta.ravel())
    order = np.argsort(key, kind="stable")[:k]
    return [{"head": f"{i // H}.{i % H}", "delta": float(delta.ravel()[i])} for i in order]


@torch.no_grad()
def scores(lm: LoadedModel, ids: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IOI score logit(A) - logit(B) at the last position, per prompt."""
    return lm.last_diff(ids, a, b)


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
    return [(layer, h) for layer in range(lm.adapter.n_layers) for h in range(lm.adapter.n_heads)]


@torch.no_grad()
def head_edit_scores(lm: LoadedModel, s: PromptSet, heads: list[tuple[int, int]],
                     payload: Callable[[int, int], torch.Tensor], *, max_batch_tokens: int | None = None,
                     progress: str | None = None, prefix: int = 0) -> torch.Tensor:
    """IOI score of ``s.base`` with head (l, h)'s output replaced by ``payload(l, h)``; shape (len(heads), P).

    Batched: heads are grouped by layer and K edited copies of the prompt batch run in one forward pass
    (copy k edits one head). Where the adapter supports it, the pass starts at the edited layer from the
    cached clean residual stream (earlier layers are unaffected by the edit), and only the two target
    logits are computed at the last position. ``prefix``: the caller guarantees the payload equals the clean
    activations before this position (patching from a prompt that shares the prefix): those positions come
    from a key/value cache of the clean prefix and only positions ``prefix..T-1`` are computed.
    """
    ad = lm.adapter
    P, T = s.base.shape
    prefix = prefix if ad.can_resume and 0 < prefix < T else 0
    K = max(1, (max_batch_tokens or lm.batch_tokens) // (P * (T - prefix)))
    layers = sorted({layer for layer, _ in heads})
    resid, cache = {}, None
    if ad.can_resume:  # the clean residual stream and per-head outputs at each edited layer
        with capture(ad, [(site, layer) for layer in layers for site in ("resid_pre", "heads")]) as resid:
            cache = ad.acts_and_prefix_cache(s.base, prefix)
        if prefix and cache is None:
            cache = ad.prefix_cache(s.base[:, :prefix])
    order = sorted(range(len(heads)), key=lambda i: heads[i])
    out = torch.empty(len(heads), P)
    t0, done = time.time(), 0
    for layer in layers:
        idx = [i for i in order if heads[i][0] == layer]
        for c0 in range(0, len(idx), K):
            chunk = idx[c0:c0 + K]
            k = len(chunk)
            ks = torch.arange(k, device=lm.device)
            hs = torch.tensor([heads[i][1] for i in chunk], device=lm.device)
            rep = torch.stack([payload(layer, heads[i][1]) for i in chunk]).to(lm.dtype)[:, :, prefix:]  # (k, P, T', dh)

            def edit(x):  # x: (k*P, T', H, dh)
                x = x.view(k, P, *x.shape[1:])
                x[ks, :, :, hs, :] = rep
                return x.view(k * P, *x.shape[2:])
            with intervene(ad, {("heads", layer): edit}):
                if ad.can_resume:  # the edited layer's attention is the clean pass's up to its output projection
                    z = resid[("heads", layer)][:, prefix:].repeat(k, 1, 1, 1)
                    with ad.attention_output(layer, z), ad.resume_from(layer):
                        h = ad.body(resid[("resid_pre", layer)][:, prefix:].repeat(k, 1, 1),
                                    ad.tile_cache(cache, k, first_layer=layer) if prefix else None, last_only=True).float()
                    check_finite(h, "final hidden state")
                    sc = ad.logit_diff(h, s.a_ids.repeat(k), s.b_ids.repeat(k))  # two unembedding rows
                else:
                    sc = lm.last_diff(s.base.repeat(k, 1), s.a_ids.repeat(k), s.b_ids.repeat(k))
            out[chunk] = sc.view(k, P).cpu()
            done += k
            if progress and len(heads) > K:
                log(f"{progress}: {done}/{len(heads)} heads ({time.time() - t0:.0f}s)")
    return out


@torch.no_grad()
def head_edit_scores_loop(lm: LoadedModel, s: PromptSet, heads: list[tuple[int, int]],
                          payload: Callable[[int, int], torch.Tensor], *, lean: bool = False) -> torch.Tensor:
    """Reference implementation, the seed's method: one full forward pass of the model per head (``outEM =
    model(tokensEM)``, logits at every position), the score read from the last position; the benchmark's baseline
    and the tests' oracle. ``lean``: the same loop without the LM head, the score from two unembedding rows (the
    benchmark times it to show what batching gains by itself)."""
    out = []
    for layer, h in heads:
        rep = payload(layer, h).to(lm.dtype)

        def edit(x, h=h, rep=rep):
            x[:, :, h, :] = rep
            return x
        with intervene(lm.adapter, {("heads", layer): edit}):
            sc = scores(lm, s.base, s.a_ids, s.b_ids) if lean else logit_diff(
                lm.model(input_ids=s.base).logits[:, -1], s.a_ids, s.b_ids, "final-position logit difference", lm.dtype)
            out.append(sc.cpu())
    return torch.stack(out)


@torch.no_grad()
def head_acts(lm: LoadedModel, ids: torch.Tensor) -> torch.Tensor:
    """Per-head attention outputs of every layer: (L, P, T, H, dh)."""
    L = lm.adapter.n_layers
    with capture(lm.adapter, [("heads", layer) for layer in range(L)]) as rec:
        lm.acts(ids)
    return torch.stack([rec[("heads", layer)] for layer in range(L)])


def permutation_payload(acts: torch.Tensor, seed: int, rep: int) -> Callable[[int, int], torch.Tensor]:
    """Silencing by permutation (seed Part 2): the head's clean output (P, T, dh), its T*dh elements shuffled
    within each prompt. Permutations depend only on (seed, layer, head, rep), so batched and loop runs agree."""
    P, T = acts.shape[1], acts.shape[2]
    H, dh = acts.shape[3], acts.shape[4]

    def payload(layer, h):
        g = torch.Generator().manual_seed(int(seed) * 1_000_003 + (layer * H + h) * 1009 + rep)
        perm = torch.argsort(torch.rand(P, T * dh, generator=g), dim=1).to(acts.device)
        flat = acts[layer, :, :, h, :].reshape(P, T * dh)
        return flat.gather(1, perm).view(P, T, dh)
    return payload


def head_attribution(lm: LoadedModel, s: PromptSet, payloads: list[Callable[[int, int], torch.Tensor]]) -> torch.Tensor:
    """Attribution patching (Nanda 2023): the linear estimate of ``head_edit_scores(...) - clean`` for every head
    and each payload, from one forward and one backward pass on the base prompts: (payload - clean output) .
    d(score)/d(head output), summed over positions and head dimensions. (len(payloads), L*H, P), heads in
    ``all_heads`` order."""
    ad = lm.adapter
    L, H = ad.n_layers, ad.n_heads
    with with_grads(ad, "heads", range(L)) as kept:
        sc = lm.last_diff(s.base, s.a_ids, s.b_ids)
        grad = grads_of(sc.sum(), kept)  # prompts are independent rows: row p's gradient is that of its own score
    out = []
    with torch.no_grad():
        for payload in payloads:
            est = []
            for layer in range(L):
                x, g = kept[layer].detach(), grad[layer]
                for h in range(H):
                    est.append(((payload(layer, h).to(x.dtype) - x[:, :, h]) * g[:, :, h]).float().sum((1, 2)))
            out.append(torch.stack(est).cpu())
    return torch.stack(out)


def agreement(est: np.ndarray, exact: np.ndarray, k: int) -> dict:
    """How well a screen's estimates agree with exact values on the exactly measured components."""
    ok = np.isfinite(exact)
    e, x = est[ok], exact[ok]
    r = float(np.corrcoef(e, x)[0, 1]) if ok.sum() > 2 and e.std() > 0 and x.std() > 0 else float("nan")
    k = min(k, int(ok.sum()))
    top_e, top_x = set(np.argsort(e)[:k]), set(np.argsort(x)[:k])
    return {"n_exact": int(ok.sum()), "r": r, "top_k": k, "top_k_overlap": len(top_e & top_x)}


def silencing(lm: LoadedModel, sets: list[PromptSet], *, n_perm: int = 3, seed: int = 0,
              max_batch_tokens: int | None = None, exact: bool = True, n_top: int = 8, n_random: int = 16) -> dict:
    """Seed Part 2: delta IOI (silenced - clean) per (layer, head), averaged over permutations and prompts;
    head norms (norm of the head's clean output on the base prompts, averaged over prompts).

    Silencing by permutation changes a head's output at every position, so no prefix is shared: with
    ``exact=False`` attribution patching screens every head, and the ``n_top`` most damaging by the screen plus
    ``n_random`` seeded random others are measured exactly; the other heads' exact deltas are NaN."""
    heads = all_heads(lm)
    L, H = lm.adapter.n_layers, lm.adapter.n_heads
    norms, payloads, cleans, deltas = [], [], [], []

    def measure(s, pls, clean, chosen):  # (L*H, P): NaN for heads not measured
        per = [head_edit_scores(lm, s, [heads[i] for i in chosen], pl, max_batch_tokens=max_batch_tokens,
                                progress=f"silencing perm {r + 1}/{n_perm}") for r, pl in enumerate(pls)]
        d = torch.full((len(heads), len(clean)), float("nan"))
        d[chosen] = torch.stack(per).mean(0) - clean
        return d

    for si, s in enumerate(sets):
        acts = head_acts(lm, s.base)  # (L, P, T, H, dh)
        pls = [permutation_payload(acts, seed + si, r) for r in range(n_perm)]
        clean = scores(lm, s.base, s.a_ids, s.b_ids).cpu()
        cleans.append(clean)
        norms.append(acts.float().flatten(2, 2).norm(dim=(2, 4)).permute(0, 2, 1).reshape(L * H, -1).cpu())
        if exact:  # measured now: one prompt set's head outputs held at a time (Gemma-3: 0.15 GB a set)
            deltas.append(measure(s, pls, clean, list(range(len(heads)))))
        else:  # the screen needs every set's payloads first
            payloads.append(pls)
        del acts, pls
    est = None
    if not exact:
        est = torch.cat([head_attribution(lm, s, pls).mean(0) for s, pls in zip(sets, payloads)], 1)  # (L*H, P)
        m = est.mean(1).numpy()
        top = list(np.argsort(m, kind="stable")[:n_top])
        rest = [i for i in range(len(heads)) if i not in top]
        chosen = sorted(top + list(stats.rng(seed).choice(rest, size=min(n_random, len(rest)), replace=False)))
        log(f"silencing: attribution screened {len(heads)} heads; measuring {len(chosen)} exactly")
        deltas = [measure(s, pls, clean, chosen) for s, pls, clean in zip(sets, payloads, cleans)]
    d = torch.cat(deltas, 1).view(L, H, -1)
    out = {"delta": d.mean(-1).numpy(), "delta_per_prompt": d.numpy(),
           "head_norm": torch.cat(norms, 1).view(L, H, -1).mean(-1).numpy(),
           "clean_mean": float(torch.cat(cleans).mean()), "exact": exact,
           "clean_per_prompt": torch.cat(cleans).numpy().astype(float),
           "measured": np.isfinite(d.mean(-1).numpy())}
    if est is not None:
        out["estimate"] = est.mean(1).view(L, H).numpy()
        out["agreement"] = agreement(out["estimate"].ravel(), out["delta"].ravel(), n_top)
    return out


def patching(lm: LoadedModel, sets: list[PromptSet], *, max_batch_tokens: int | None = None) -> dict:
    """Seed Part 5: patch each head's output from the source run into the base run;
    delta IOI (patched - clean base) per (layer, head), and the full clean->source gap."""
    heads = all_heads(lm)
    L, H = lm.adapter.n_layers, lm.adapter.n_heads
    deltas, gaps = [], []
    for s in sets:
        src = head_acts(lm, s.source)
        clean = scores(lm, s.base, s.a_ids, s.b_ids).cpu()
        gaps.append(scores(lm, s.source, s.a_ids, s.b_ids).cpu() - clean)
        patched = head_edit_scores(lm, s, heads, lambda layer, h: src[layer, :, :, h, :], max_batch_tokens=max_batch_tokens,
                                   progress="head patching", prefix=first_difference(s.base, s.source))
        deltas.append(patched - clean)
    d = torch.cat(deltas, 1).view(L, H, -1)
    g = torch.cat(gaps)
    return {"delta": d.mean(-1).numpy(), "delta_per_prompt": d.numpy(), "gap": float(g.mean()),
            "gap_per_prompt": g.numpy().astype(float)}


# ----------------------------------------------------------------------------- parts 3 and 4
def head_norm_map(acts: torch.Tensor) -> np.ndarray:
    """Seed Part 3: average attention-head vector norm per (layer, token): (L, T), for one prompt (P=1)."""
    return acts[:, 0].float().norm(dim=-1).mean(-1).cpu().numpy()


@torch.no_grad()
def head_norm_cv_per_prompt(lm: LoadedModel, sets: list[PromptSet]) -> torch.Tensor:
    """Per source prompt: the coefficient of variation of head-output norms across the heads of a layer, averaged
    over layers and tokens (position 0 excluded)."""
    vals = []
    for s in sets:
        nm = head_acts(lm, s.source).float().norm(dim=-1)[:, :, 1:]  # (L, P, T-1, H)
        vals.append((nm.std(-1) / nm.mean(-1).clamp_min(1e-12)).mean((0, 2)).cpu())
    return torch.cat(vals)


def head_norm_cv(lm: LoadedModel, sets: list[PromptSet]) -> float:
    """Coefficient of variation of head-output norms across the heads of a layer, averaged over layers,
    prompts and tokens (source prompts; position 0 excluded)."""
    return float(head_norm_cv_per_prompt(lm, sets).mean())


def repeat_positions(ids: torch.Tensor, name_ids: torch.Tensor) -> torch.Tensor:
    """(P, 2) positions of the first and second mention of each prompt's repeated name."""
    pos = []
    for row, n in zip(ids, name_ids):
        where = (row == n).nonzero().flatten()
        if len(where) != 2:
            from ...errors import StimulusError
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
    per_prompt = selectivity_ratio(D.reshape(P, L, H, dh).mean(-1))  # (P, L)
    observed = per_prompt.mean(0)  # (L,)
    g = stats.rng(seed)
    null = np.empty((n_null, L))
    for i in range(n_null):
        perm = g.permuted(np.broadcast_to(np.arange(H * dh), (P, L, H * dh)), axis=-1)
        shuffled = np.take_along_axis(D, perm, axis=-1).reshape(P, L, H, dh).mean(-1)
        null[i] = selectivity_ratio(shuffled).mean(0)
    p = (1 + (null >= observed).sum(0)) / (n_null + 1)
    return {"ratio": observed, "null_mean": null.mean(0), "null_q95": np.quantile(null, 0.95, axis=0), "p": p,
            "ratio_per_prompt": per_prompt}
