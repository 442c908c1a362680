"""Attention weights and next-token losses, plain and with heads zeroed: what the attention findings share (the
induction, sinks and successor families, probes.families) and what a project's own claims use
(examples/induction-heads).

Everything here reads attention weights (eager attention: the plugin loads models with
``attn_implementation="eager"``) or next-token losses, from one forward pass per batch of sequences, optionally
under :func:`probes.hooks.intervene` edits (``zero_heads``); an edited pass starts at its first edited layer where
the adapter can resume one. Scores are returned per sequence so that claims can resample sequences for intervals
(:mod:`probes.stats`).
"""
from __future__ import annotations

import numpy as np
import torch

from . import hooks
from .errors import StimulusError


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
        with hooks.capture(ad, [("resid_pre", lay) for lay in layers]) as rec:
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


def head_name(head: tuple[int, int]) -> str:
    return f"L{head[0]}.H{head[1]}"


def top_heads(score: np.ndarray, k: int) -> list[tuple[int, int]]:
    """The ``k`` (layer, head) pairs with the highest scores of a (layers, heads) array, best first."""
    order = np.argsort(score, axis=None)[::-1][:k]
    return [(int(layer), int(head)) for layer, head in (np.unravel_index(i, score.shape) for i in order)]
