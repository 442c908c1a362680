"""Attention findings replicated across model families: previous-token heads and induction heads, and the
composition between them (Elhage et al. 2021, "A Mathematical Framework for Transformer Circuits"; Olsson et al.
2022, "In-context Learning and Induction Heads"); attention sinks (Xiao et al. 2023, "Efficient Streaming Language
Models with Attention Sinks") and massive activations (Sun et al. 2024, "Massive Activations in Large Language
Models").

Everything here reads attention weights (eager attention: the plugin loads models with
``attn_implementation="eager"``) or the residual stream after each block, from one forward pass per batch of
sequences, optionally under :func:`probes.hooks.intervene` edits (``zero_heads``). Scores are returned per sequence
so that claims can resample sequences for intervals (:mod:`probes.stats`).
"""
from __future__ import annotations

import numpy as np
import torch

from . import hooks, stats, tokens
from .errors import StimulusError


def random_repeats(lm, n: int, length: int, seed: int) -> tuple[torch.Tensor, int]:
    """(n, prefix + 2 * length) token ids: the tokenizer's leading special tokens (Gemma's ``<bos>``), then ``length``
    random tokens drawn uniformly from the vocabulary without its special tokens (numpy ``default_rng(seed)``),
    repeated once. Returns the ids and the prefix length."""
    tok = lm.tokenizer
    special = set(tok.all_special_ids) | set(getattr(tok, "added_tokens_decoder", {}))
    size = min(len(tok), lm.model.get_input_embeddings().weight.shape[0])
    vocab = np.array([i for i in range(size) if i not in special])
    r = vocab[stats.rng(seed).integers(0, len(vocab), size=(n, length))]
    prefix = tokens.special_wrap(tok)[0]
    ids = np.concatenate([np.tile(np.array(prefix, dtype=np.int64), (n, 1)), r, r], axis=1)
    return torch.tensor(ids, dtype=torch.long, device=lm.device), len(prefix)


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


@torch.no_grad()
def attention(lm, ids: torch.Tensor, mask: torch.Tensor | None = None, edits=None, chunk: int = 8) -> torch.Tensor:
    """Attention weights of every layer and head, (layers, batch, heads, T, T), float32 on the CPU, from forward
    passes of ``chunk`` sequences (under ``hooks.intervene(edits)`` when given). Only the base model runs (no
    unembedding)."""
    out = []
    for i in range(0, len(ids), chunk):
        kw = {"attention_mask": mask[i:i + chunk]} if mask is not None else {}
        with hooks.intervene(lm.adapter, edits or {}):
            att = lm.acts(ids[i:i + chunk], output_attentions=True, **kw).attentions
        if att is None or any(a is None for a in att):
            raise StimulusError(f"model {lm.spec.id!r} returned no attention weights (attn_implementation must be "
                                "'eager'; probes.loading.load sets it)")
        a = torch.stack(att).float().cpu()
        hooks.check_finite(a, "attention weights", lm.dtype)
        out.append(a)
    return torch.cat(out, dim=1)


@torch.no_grad()
def edited_attention(lm, ids: torch.Tensor, edit_sets: list[dict], layers: list[int], read) -> list:
    """``read(att)`` of the attention weights under each of ``edit_sets`` (``hooks.intervene`` edits), where
    ``att`` is shaped as :func:`attention` returns it but computed only where it can change and is read: each
    pass starts at its first edited layer (or the first of ``layers``) from one clean pass's residual stream and
    stops after the last of ``layers``; other layers are NaN. Adapters that cannot resume run whole passes."""
    ad = lm.adapter
    if not ad.can_resume:
        return [read(attention(lm, ids, edits=e)) for e in edit_sets]
    first, stop = min(layers), max(layers) + 1
    starts = [min([layer for _, layer in e] + [first]) for e in edit_sets]
    with hooks.capture(ad, [("resid_pre", layer) for layer in sorted(set(starts))]) as rec:
        lm.acts(ids)
    out = []
    for edits, start in zip(edit_sets, starts):
        with hooks.intervene(ad, edits), ad.resume_from(start, stop):
            att = ad.base(inputs_embeds=rec[("resid_pre", start)], output_attentions=True, use_cache=False).attentions
        a = torch.stack(att).float().cpu()
        hooks.check_finite(a, "attention weights", lm.dtype)
        full = torch.full((ad.n_layers, *a.shape[1:]), float("nan"))
        full[start:stop] = a
        out.append(read(full))
    return out


def previous_token_scores(att: torch.Tensor, prefix: int) -> np.ndarray:
    """(layers, heads, sequences): mean attention from each position to the position before it, over the positions
    whose previous token is not a leading special token (queries from ``prefix + 1`` on)."""
    T = att.shape[-1]
    q = torch.arange(prefix + 1, T)
    return att[..., q, q - 1].mean(-1).permute(0, 2, 1).numpy()


def induction_scores(att: torch.Tensor, prefix: int, length: int) -> np.ndarray:
    """(layers, heads, sequences): on ``[prefix] r r``, mean attention from each token of the second repeat to the
    token after its previous occurrence (query q, key q - length + 1), the prefix-matching score of Olsson et al."""
    q = torch.arange(prefix + length, prefix + 2 * length - 1)
    return att[..., q, q - length + 1].mean(-1).permute(0, 2, 1).numpy()


def sink_scores(att: torch.Tensor, mask: torch.Tensor | None = None, start: int = 1) -> np.ndarray:
    """(layers, heads, sequences): mean attention to the first position, over the query positions from ``start``
    on that are not padding (the first position attends only to itself)."""
    L, B, H, T, _ = att.shape
    keep = torch.ones(B, T) if mask is None else mask.float().cpu()
    keep[:, :start] = 0
    w = att[..., :, 0]  # (L, B, H, T)
    s = (w * keep[None, :, None, :]).sum(-1) / keep.sum(-1)[None, :, None]
    return s.permute(0, 2, 1).numpy()


def zero_heads(heads: list[tuple[int, int]]) -> dict:
    """``hooks.intervene`` edits that zero these (layer, head) outputs at the input of the output projection."""
    by_layer: dict[int, list[int]] = {}
    for layer, h in heads:
        by_layer.setdefault(layer, []).append(h)

    def zero(hs):
        def fn(x):  # (batch, positions, heads, head_dim)
            x[:, :, hs] = 0
            return x
        return fn
    return {("heads", layer): zero(hs) for layer, hs in sorted(by_layer.items())}


HEAD_BYTES = 2 ** 27  # logits computed at once by the next-token losses: 128 MB (128 rows of Gemma's 262k vocabulary)


def next_token_losses(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """``logsumexp(logits) - logits[target]`` per row of (n, V) float logits, ``targets`` (n,): torch.logsumexp's
    own steps (max, exp of the difference, sum, log, plus max) in place, so ``logits`` is consumed (read once; the
    same bits as torch.logsumexp in 40% of its time: 107 vs 43 ms for 128 rows of Gemma-3-270m's logits, one thread
    of a 2-core AMD EPYC, idle).

    Accurate where ``cross_entropy`` is not: on Gemma-3-270m's logits of the repeated-token stimulus (262k tokens)
    these losses are within 3e-6 nats of a float64 reference, while float32 ``cross_entropy`` on the
    positions-by-vocabulary transpose (how the induction claims and the example project computed them before)
    is low by 4.5e-4 nats on average, up to 1.3e-3 (its log-softmax accumulates the sum along a strided
    dimension), and on the contiguous layout by 1.8e-5 (up to 8e-5)."""
    picked = logits.gather(-1, targets[:, None])[:, 0]
    top = logits.amax(-1, keepdim=True)
    return logits.sub_(top).exp_().sum(-1).log_().add_(top[:, 0]) - picked


def losses_from_hidden(lm, h: torch.Tensor, ids: torch.Tensor, keep: int) -> torch.Tensor:
    """Next-token losses of ``ids``' last ``keep - 1`` tokens from the final-normed hidden states ``h`` (n, T, D)
    of a pass over them: (n, keep - 1), on the CPU. The unembedding runs on the ``keep - 1`` predicting positions
    only, in row chunks of at most :data:`HEAD_BYTES` of logits, each chunk's losses by :func:`next_token_losses`
    (no full-size log-softmax is kept)."""
    x = h[:, -keep:-1]
    tgt = ids[:, -keep + 1:].reshape(-1)
    flat = x.reshape(-1, x.shape[-1])
    V = lm.model.get_output_embeddings().weight.shape[0]
    rows = max(1, HEAD_BYTES // (4 * V))
    out = [next_token_losses(lm.adapter.logits_from_normed(flat[i:i + rows]).float(), tgt[i:i + rows])
           for i in range(0, len(flat), rows)]
    loss = torch.cat(out).view(x.shape[:2])
    hooks.check_finite(loss, "next-token losses of the repeated tokens (a NaN/inf logit)", lm.dtype)
    return loss.cpu()


def _rows(lm, ids: torch.Tensor) -> int:
    return max(1, lm.batch_tokens // ids.shape[1])


@torch.no_grad()
def token_losses(lm, ids: torch.Tensor, keep: int, edits=None) -> torch.Tensor:
    """Next-token loss of the tokens at the last ``keep - 1`` positions, (n, keep - 1), optionally under
    ``hooks.intervene`` edits: base-model passes of up to ``lm.batch_tokens`` tokens, then
    :func:`losses_from_hidden`."""
    out = []
    n = _rows(lm, ids)
    for i in range(0, len(ids), n):
        x = ids[i:i + n]
        with hooks.intervene(lm.adapter, edits or {}):
            h = lm.acts(x).last_hidden_state
        out.append(losses_from_hidden(lm, h, x, keep))
    return torch.cat(out)


@torch.no_grad()
def ablation_losses(lm, ids: torch.Tensor, keep: int, edit_sets: list[dict]) -> list[torch.Tensor]:
    """:func:`token_losses` under each of ``edit_sets`` (``{(site, layer): fn}``; ``{}`` for none). One unedited
    pass records the residual stream entering each edited layer; each edited pass then starts at its first edited
    layer from that record (the blocks below it would compute the same numbers again). Adapters that cannot
    resume a pass run every pass whole."""
    ad = lm.adapter
    layers = sorted({layer for edits in edit_sets for _, layer in edits})
    if not ad.can_resume or not layers:
        return [token_losses(lm, ids, keep, e) for e in edit_sets]
    out: list[list[torch.Tensor]] = [[] for _ in edit_sets]
    n = _rows(lm, ids)
    for i in range(0, len(ids), n):
        x = ids[i:i + n]
        with hooks.capture(ad, [("resid_pre", l) for l in layers]) as rec:
            h0 = lm.acts(x).last_hidden_state
        for j, edits in enumerate(edit_sets):
            if not edits:
                out[j].append(losses_from_hidden(lm, h0, x, keep))
                continue
            start = min(layer for _, layer in edits)
            with hooks.intervene(ad, edits), ad.resume_from(start):
                h = ad.body(rec[("resid_pre", start)])
            out[j].append(losses_from_hidden(lm, h, x, keep))
    return [torch.cat(o) for o in out]


def repeat_losses(lm, ids: torch.Tensor, length: int, edits=None) -> tuple[np.ndarray, np.ndarray]:
    """Per-sequence mean loss on tokens 2..length of the first and of the second repeat (the first token of a
    repeat cannot be predicted)."""
    loss = token_losses(lm, ids, 2 * length, edits)
    return loss[:, :length - 1].mean(1).numpy(), loss[:, length:].mean(1).numpy()


@torch.no_grad()
def residual_magnitudes(lm, ids: torch.Tensor, mask: torch.Tensor | None = None) -> dict:
    """Per block output (the residual stream after each block): the largest |activation| with its (position,
    dimension), and the median |activation| over the real tokens. ``{"top": (layers,) values, "where": [(pos, dim)],
    "median": (layers,), "top3": per layer the three largest (value, pos, dim) over distinct dimensions,
    "per_sequence_top": (layers, sequences) each sequence's largest}``."""
    L = lm.adapter.n_layers
    kw = {"attention_mask": mask} if mask is not None else {}
    with hooks.capture(lm.adapter, [("resid", l) for l in range(L)]) as rec:
        lm.acts(ids, **kw)
    keep = (torch.ones(ids.shape) if mask is None else mask.cpu()).bool()
    top, where, med, top3, per_seq = [], [], [], [], []
    for l in range(L):
        a = rec[("resid", l)].float().abs().cpu()  # (B, T, D)
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


def head_name(head: tuple[int, int]) -> str:
    return f"L{head[0]}.H{head[1]}"


def top_heads(score: np.ndarray, k: int) -> list[tuple[int, int]]:
    """The ``k`` (layer, head) pairs with the highest scores of a (layers, heads) array, best first."""
    order = np.argsort(score, axis=None)[::-1][:k]
    return [tuple(int(x) for x in np.unravel_index(i, score.shape)) for i in order]
