"""Successor heads (Gould et al. 2023, "Successor Heads: Recurring, Interpretable Attention Heads In The Wild"):
attention heads whose OV circuit, applied to a token's effective embedding, maps a member of an ordinal sequence
(numbers, days, months, letters, ...) to its successor.

The effective embedding of a token is the residual stream after the first block for the token alone (after the
tokenizer's leading special tokens: Gemma's ``<bos>``), i.e. the embedding through the first MLP, as in the paper.
Each head's OV circuit (:meth:`probes.adapters.Adapter.head_ov`) is applied to it, then the final norm and the
unembedding rows of the task's own tokens: the head predicts the successor when the successor gets the highest of
those logits (the source token itself is a candidate: a copying head fails). A head's succession score is the
mean over tasks of its top-1 accuracy over the task's consecutive pairs. Nothing here runs a forward pass over a
prompt; the cost is one pass over single tokens and one value projection per layer.
"""
from __future__ import annotations

import numpy as np
import torch

from ... import hooks, stats, tokens


def task_ids(tok, tasks: dict[str, list[str]]) -> tuple[dict[str, list[int]], dict[str, list[str]]]:
    """The tasks whose members are all single tokens of this tokenizer, as ids, and the others with their split
    members (``{task: [member, ...]}``): a tokenizer that splits a member cannot show succession on that task."""
    ids, split = {}, {}
    for name, words in tasks.items():
        enc = [tokens.encode(tok, w) for w in words]
        bad = [w for w, e in zip(words, enc) if len(e) != 1]
        if bad:
            split[name] = bad
        else:
            ids[name] = [e[0] for e in enc]
    return ids, split


@torch.no_grad()
def effective_embeddings(lm, ids: list[int]) -> torch.Tensor:
    """(N, D): the residual stream after block 0 for each token alone (after the leading special tokens)."""
    prefix = tokens.special_wrap(lm.tokenizer)[0]
    x = torch.tensor([prefix + [i] for i in ids], dtype=torch.long, device=lm.device)
    with hooks.capture(lm.adapter, [("resid", 0)]) as rec:
        lm.acts(x)
    return rec[("resid", 0)][:, -1]


@torch.no_grad()
def top1(lm, tasks: dict[str, list[int]]) -> dict[str, np.ndarray]:
    """Per task, (layers, heads, n): the index (within the task) of the task token with the highest logit when each
    head's OV circuit is applied to each member's effective embedding."""
    ad = lm.adapter
    allids = [i for ids in tasks.values() for i in ids]
    E = effective_embeddings(lm, allids)
    U = ad.unembed_matrix()
    norm = ad.final_norm()
    out = {t: np.empty((ad.n_layers, ad.n_heads, len(ids)), dtype=np.int64) for t, ids in tasks.items()}
    for layer in range(ad.n_layers):
        ov = ad.head_ov(layer, E)  # (H, N, D)
        h = norm(ov) if norm is not None else ov
        hooks.check_finite(h, f"OV outputs of layer {layer}", lm.dtype)
        start = 0
        for t, ids in tasks.items():
            n = len(ids)
            logits = h[:, start:start + n].float() @ U[ids].float().T  # (H, n sources, n candidates)
            out[t][layer] = logits.argmax(-1).cpu().numpy()
            start += n
    return out


def correct(top: dict[str, np.ndarray], orders: dict[str, np.ndarray] | None = None) -> dict[str, np.ndarray]:
    """Per task, (layers, heads, n - 1) booleans: whether the head's top-1 for member ``order[i]`` is
    ``order[i + 1]``; ``orders``: a permutation of each task's members (None: the true order)."""
    out = {}
    for t, a in top.items():
        o = np.arange(a.shape[-1]) if orders is None else orders[t]
        out[t] = a[..., o[:-1]] == o[1:]
    return out


def scores(corr: dict[str, np.ndarray]) -> np.ndarray:
    """(layers, heads): the succession score, the mean over tasks of the top-1 accuracy over each task's pairs."""
    return np.mean([c.mean(-1) for c in corr.values()], axis=0)


def shuffled_maxima(top: dict[str, np.ndarray], n: int, seed: int) -> np.ndarray:
    """(n,): the best head's succession score when each task's members are put in a random order (seeded), the
    null of shuffled sequences (the maximum over heads, as for the true order)."""
    g = stats.rng(seed)
    out = []
    for _ in range(n):
        orders = {t: g.permutation(a.shape[-1]) for t, a in top.items()}
        out.append(float(scores(correct(top, orders)).max()))
    return np.array(out)


def boot_scores(corr: dict[str, np.ndarray], heads: list[tuple[int, int]], n_boot: int = stats.N_BOOT,
                seed: int = 0) -> np.ndarray:
    """(n_boot, len(heads)): these heads' succession scores with each task's pairs resampled (stratified by task)."""
    per_task = []
    for c in corr.values():
        sel = np.stack([c[h] for h in heads]).astype(float)  # (k, pairs)
        idx = stats.boot_index(sel.shape[1], n_boot, seed)
        per_task.append(sel[:, idx].mean(-1).T)  # (n_boot, k)
    return np.mean(per_task, axis=0)

