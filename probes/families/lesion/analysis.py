"""Statistics-based lesioning of MLP neurons (seed 001): him/her neurons and masked-token logits.

Tuning reads MLP activations at the target token (" him" / " her", found by token id; a sentence must hold
it exactly once). ``site="mlp_pre"`` reads BERT's ``intermediate.dense`` (pre-GELU, as the seed's Part 3);
``site="mlp_act"`` the post-GELU output. Ablation zeroes neurons at ``mlp_pre``: GELU(0) = 0, so this equals
zeroing the post-GELU activation. Ablations of many neuron sets run as one forward pass over a batch of
differently-ablated copies.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ... import stats
from ...errors import ProbeError, StimulusError
from ...hooks import capture, intervene
from ...loading import LoadedModel, logit_diff
from ...tokens import single_token


def _tokenize(lm: LoadedModel, texts: list[str]) -> dict:
    enc = lm.tokenizer(list(texts), return_tensors="pt", padding=True)
    return {k: v.to(lm.device) for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}


def target_ids(lm: LoadedModel) -> tuple[int, int]:
    """Token ids of him and her (as a word after a space)."""
    return single_token(lm.tokenizer, " him"), single_token(lm.tokenizer, " her")


def find_once(ids: torch.Tensor, target: int, texts: list[str], what: str) -> torch.Tensor:
    counts = (ids == target).sum(1)
    bad = (counts != 1).nonzero().flatten().tolist()
    if bad:
        i = bad[0]
        raise StimulusError(f"sentence {texts[i]!r} holds the {what} token {counts[i].item()} times (must be exactly "
                            "once): edit or drop it from the stimulus fixture")
    return (ids == target).float().argmax(1)


@torch.no_grad()
def target_acts(lm: LoadedModel, texts: list[str], target: int, what: str, site: str = "mlp_pre") -> np.ndarray:
    """(L, n_sentences, N) activations at the target token of each sentence, every layer, one forward pass."""
    enc = _tokenize(lm, texts)
    pos = find_once(enc["input_ids"], target, texts, what)
    L = lm.adapter.n_layers
    with capture(lm.adapter, [(site, layer) for layer in range(L)]) as rec:
        lm.acts(**enc)
    idx = torch.arange(len(texts), device=lm.device)
    return torch.stack([rec[(site, layer)][idx, pos] for layer in range(L)]).float().cpu().numpy()


def tuned(him: np.ndarray, her: np.ndarray, q: float = 0.05) -> dict:
    """Per-neuron t-test him vs her at one layer; FDR; him-neurons (him > her) and her-neurons (her > him)."""
    t, p = stats.ttest_ind(him, her)
    sig = stats.fdr(p, q)
    t0 = np.nan_to_num(t)
    return {"t": t, "p": p, "sig": sig, "him": np.flatnonzero(sig & (t0 > 0)), "her": np.flatnonzero(sig & (t0 < 0)),
            "least": np.argsort(np.abs(t0), kind="stable")}


def strongest(tu: dict, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` most tuned him-neurons (largest t) and her-neurons (most negative t) among the significant ones."""
    t = np.nan_to_num(tu["t"])
    him = tu["him"][np.argsort(-t[tu["him"]], kind="stable")][:k]
    her = tu["her"][np.argsort(t[tu["her"]], kind="stable")][:k]
    return him, her


@torch.no_grad()
def masked_margins(lm: LoadedModel, texts: list[str], targets: list[str], layer: int | None = None,
                   sets: list[tuple[np.ndarray, np.ndarray]] | None = None, batch: int = 256,
                   shared_layer: bool = True) -> np.ndarray:
    """logit(target) - logit(foil) at each [MASK] (target him -> foil her and vice versa).

    Without ``sets``: clean margins, shape (S,). With ``sets`` = [(him_neurons, her_neurons), ...] and a layer:
    margins with those neurons zeroed at the mask (him-neurons where the target is him, her-neurons where it is
    her), one row per set: (R, S), computed as batches of R x S ablated copies. ``shared_layer=False`` runs
    ``layer`` itself in every copy too (the reference the tests compare with).
    """
    him_id, her_id = target_ids(lm)
    enc = _tokenize(lm, texts)
    S = len(texts)
    pos = find_once(enc["input_ids"], lm.tokenizer.mask_token_id, texts, "[MASK]")
    tgt = torch.tensor([him_id if t == "him" else her_id for t in targets], device=lm.device)
    foil = torch.tensor([her_id if t == "him" else him_id for t in targets], device=lm.device)
    is_him = torch.tensor([t == "him" for t in targets], device=lm.device)

    def margins(at, reps):  # at: (reps * S, V), the logits at the masks
        return logit_diff(at, tgt.repeat(reps), foil.repeat(reps), "masked-token logit difference", lm.dtype)

    if sets is None:
        return margins(lm.model(**enc).logits[torch.arange(S, device=lm.device), pos], 1).cpu().numpy()
    if layer is None:
        raise ValueError("masked_margins: sets of neurons to zero need the layer they are in (layer=)")
    N = lm.adapter.d_mlp
    # the edit is at the mask position of ``layer`` only: every block before it computes the same thing in every
    # ablated copy, so it runs once (the clean pass, which also records the attention mask the model builds for
    # its blocks), the copies resume at ``layer``, and the MLM head reads only the mask positions
    blocks = lm.adapter.blocks()
    got = {}

    def grab(module, args, kwargs):
        got["h"] = args[0]
        got["mask"] = args[1] if len(args) > 1 else kwargs.get("attention_mask")
    hook = blocks[layer].register_forward_pre_hook(grab, with_kwargs=True)
    try:
        lm.acts(**enc)
    finally:
        hook.remove()
    head = _mlm_head(lm)
    blk: Any = blocks[layer]  # a BERT layer: its attention and feed_forward_chunk (torch types them as Tensor | Module)
    # within ``layer`` itself the copies differ only in the MLP at the mask (BERT's layer: attention, then a
    # position-wise feed-forward): the attention and the other positions' MLP run once, each copy runs the MLP
    # at its mask position alone
    within = shared_layer and hasattr(blk, "attention") and hasattr(blk, "feed_forward_chunk")
    if within:
        att = blk.attention(got["h"], got["mask"])[0]  # (S, T, D): the same in every copy
        after = blk.feed_forward_chunk(att)  # the clean output of ``layer``
        att_at = att[torch.arange(S, device=lm.device), pos][:, None]  # (S, 1, D): the MLP's input at the masks
    out = []
    per = max(1, batch // S)
    for c0 in range(0, len(sets), per):
        chunk = sets[c0:c0 + per]
        R = len(chunk)
        keep = _keep_masks(lm, chunk, is_him, N)
        rows = torch.arange(R * S, device=lm.device)
        p = pos.repeat(R)
        mask = None if got["mask"] is None else got["mask"].repeat(R, *([1] * (got["mask"].dim() - 1)))
        if within:
            with intervene(lm.adapter, {("mlp_pre", layer): lambda x: x * keep[:, None, :]}):
                at = blk.feed_forward_chunk(att_at.repeat(R, 1, 1))  # (R*S, 1, D)
            h = after.repeat(R, 1, 1)
            h[rows, p] = at[:, 0]
            rest = blocks[layer + 1:]
        else:
            def zero(x):
                x[rows, p] = x[rows, p] * keep
                return x
            h = got["h"].repeat(R, 1, 1)
            rest = blocks[layer:]
        with intervene(lm.adapter, {} if within else {("mlp_pre", layer): zero}):
            for block in rest:
                h = block(h, mask)
                h = h[0] if isinstance(h, tuple) else h
        out.append(margins(head(h[rows, p]), R).view(R, S).cpu())  # the MLM head at the mask positions only
    return torch.cat(out).numpy()


def _keep_masks(lm: LoadedModel, chunk: list[tuple[np.ndarray, np.ndarray]], is_him: torch.Tensor,
                n: int) -> torch.Tensor:
    """(sets x sentences, neurons): row r*S + s keeps every neuron but set r's him-neurons (sentence s's target is
    him) or her-neurons (her)."""
    keep = torch.ones(len(chunk), len(is_him), n, device=lm.device, dtype=lm.dtype)
    for r, (him_n, her_n) in enumerate(chunk):
        keep[r, is_him.nonzero().flatten()[:, None], torch.as_tensor(him_n, dtype=torch.long)[None]] = 0
        keep[r, (~is_him).nonzero().flatten()[:, None], torch.as_tensor(her_n, dtype=torch.long)[None]] = 0
    return keep.view(len(chunk) * len(is_him), n)


def _mlm_head(lm: LoadedModel):
    from ...adapters import _get_path
    if not lm.adapter.spec.lm_head:
        raise ProbeError(f"model {lm.spec.id!r} ({lm.adapter.arch}) has no masked-LM head to read pronouns from")
    return _get_path(lm.model, lm.adapter.spec.lm_head)


def random_sets(n_neurons: int, n_him: int, n_her: int, draws: int, seed: int = 0):
    """``draws`` random (him, her) neuron sets of the given sizes (seeded)."""
    g = stats.rng(seed)
    return [(g.choice(n_neurons, n_him, replace=False), g.choice(n_neurons, n_her, replace=False))
            for _ in range(draws)]


@torch.no_grad()
def triple_logits(lm: LoadedModel, texts: list[str]) -> np.ndarray:
    """Seed Part 4: logits of (her, him) at the her-position and the him-position of the clean sentence, the
    her-mask sentence and the him-mask sentence: (3 sentences, 2 positions [her, him], 2 tokens [her, him])."""
    him_id, her_id = target_ids(lm)
    mask = lm.tokenizer.mask_token_id
    enc = _tokenize(lm, texts)
    logits = lm.model(**enc).logits.float()
    out = np.zeros((3, 2, 2))
    for i in range(3):
        ids = enc["input_ids"][i]
        her_pos = (ids == (mask if i == 1 else her_id)).nonzero()[0, 0]
        him_pos = (ids == (mask if i == 2 else him_id)).nonzero()[0, 0]
        for j, pos in enumerate((her_pos, him_pos)):
            out[i, j] = logits[i, pos, [her_id, him_id]].cpu().numpy()
    return out
