"""Attention sinks (Xiao et al. 2023, "Efficient Streaming Language Models with Attention Sinks") and massive
activations (Sun et al. 2024, "Massive Activations in Large Language Models"), on ordinary sentences.

The sink scores read the attention weights of :func:`probes.attention.attention`; the magnitudes, the residual
stream after each block. Scores are returned per sequence so that claims can resample sentences for intervals.
"""
from __future__ import annotations

import numpy as np
import torch

from ... import hooks, tokens
from ...errors import StimulusError


def text_batch(lm, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Texts as one right-padded batch with the tokenizer's own special tokens: (ids, mask, prefix length)."""
    tok = lm.tokenizer
    before, after = tokens.special_wrap(tok)
    rows = [before + tok(t, add_special_tokens=False)["input_ids"] + after for t in texts]
    if any(len(r) < 4 for r in rows):
        raise StimulusError("a sink text is shorter than 4 tokens; give sentences of several words")
    T = max(map(len, rows))
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    ids = torch.tensor([r + [pad] * (T - len(r)) for r in rows], dtype=torch.long, device=lm.device)
    mask = torch.tensor([[1] * len(r) + [0] * (T - len(r)) for r in rows], dtype=torch.long, device=lm.device)
    return ids, mask, len(before)


def sink_scores(att: torch.Tensor, mask: torch.Tensor | None = None, start: int = 1) -> np.ndarray:
    """(layers, heads, sequences): mean attention to the first position, over the query positions from ``start``
    on that are not padding (the first position attends only to itself)."""
    L, B, H, T, _ = att.shape
    keep = torch.ones(B, T) if mask is None else mask.float().cpu()
    keep[:, :start] = 0
    w = att[..., :, 0]  # (L, B, H, T)
    s = (w * keep[None, :, None, :]).sum(-1) / keep.sum(-1)[None, :, None]
    return s.permute(0, 2, 1).numpy()


@torch.no_grad()
def residual_magnitudes(lm, ids: torch.Tensor, mask: torch.Tensor | None = None) -> dict:
    """Per block output (the residual stream after each block): the largest |activation| with its (position,
    dimension), and the median |activation| over the real tokens. ``{"top": (layers,) values, "where": [(pos, dim)],
    "median": (layers,), "top3": per layer the three largest (value, pos, dim) over distinct dimensions,
    "per_sequence_top": (layers, sequences) each sequence's largest}``."""
    L = lm.adapter.n_layers
    kw = {"attention_mask": mask} if mask is not None else {}
    with hooks.capture(lm.adapter, [("resid", layer) for layer in range(L)]) as rec:
        lm.acts(ids, **kw)
    keep = (torch.ones(ids.shape) if mask is None else mask.cpu()).bool()
    top, where, med, top3, per_seq = [], [], [], [], []
    for layer in range(L):
        a = rec[("resid", layer)].float().abs().cpu()  # (B, T, D)
        a = torch.where(keep[..., None], a, torch.zeros(()))
        per_seq.append(a.flatten(1).max(1).values.numpy())
        flat = a.max(0).values  # (T, D): the largest over sequences
        v, i = flat.flatten().topk(min(64, flat.numel()))
        T, D = flat.shape
        dims_seen, three = set(), []
        for val, idx in zip(v.tolist(), i.tolist()):
            pos, dim = divmod(idx, D)
            if dim in dims_seen:
                continue
            dims_seen.add(dim)
            three.append((val, pos, dim))
            if len(three) == 3:
                break
        top.append(three[0][0])
        where.append((three[0][1], three[0][2]))
        med.append(float(a[keep].median()))
        top3.append(three)
    return {"top": np.array(top), "where": where, "median": np.array(med), "top3": top3,
            "per_sequence_top": np.array(per_seq)}
