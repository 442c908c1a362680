"""Neuron investigation (seed 002): logit lens, activation patching, neuron patching, congruence, top contexts.

A *case* is a clean prompt, a corrupted prompt of the same token length, and a target / foil token: the clean
prompt prefers the target ("John is tall. Mary is" -> " short"), the corrupted one the foil. Every patching
result is a *normalised restoration*: (patched - corrupted) / (clean - corrupted) of the logit difference
target - foil at the last position, so 1 means the patch restores the clean behaviour fully.

Neuron activations are the MLP's post-activation values (site ``mlp_act``), patched at every position (the
prompts differ at the adjective, and the seed's neuron patching patches the whole sequence).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ...errors import ModelLoadError, StimulusError
from ...hooks import capture, check_finite, grads_of, intervene, with_grads
from ...loading import LoadedModel, logit_diff
from ...tokens import first_difference, prompt_ids, single_token, special_wrap


@dataclass
class Case:
    name: str
    clean: torch.Tensor      # (1, T) token ids
    corrupted: torch.Tensor  # (1, T)
    target: int
    foil: int
    labels: list[str] = field(default_factory=list)


def make_case(lm: LoadedModel, name: str, clean: str, corrupted: str, target: str, foil: str) -> Case:
    """Tokenise a case; clear errors for multi-token targets and prompts of different token lengths."""
    tok = lm.tokenizer
    c = torch.tensor([prompt_ids(tok, clean)], device=lm.device)
    k = torch.tensor([prompt_ids(tok, corrupted)], device=lm.device)
    if c.shape != k.shape:
        raise StimulusError(f"case {name!r}: clean and corrupted prompts have {c.shape[1]} and {k.shape[1]} tokens "
                            f"for {lm.spec.id}; patching needs equal lengths: pick words of equal token length")
    return Case(name, c, k, single_token(tok, target), single_token(tok, foil),
                [tok.decode([t]) for t in c[0].tolist()])


@torch.no_grad()
def logit_diffs(lm: LoadedModel, case: Case) -> tuple[float, float]:
    """Logit difference target - foil at the last position, on the clean and the corrupted prompt."""
    out = lm.last_diff(torch.cat([case.clean, case.corrupted]), case.target, case.foil)
    return float(out[0]), float(out[1])


def _seed_diff(lm: LoadedModel, case: Case) -> torch.Tensor:
    """The seed's way of reading the corrupted prompt's logit difference: a full pass with logits at every
    position, the last one read (the reference loops)."""
    return logit_diff(lm.model(input_ids=case.corrupted).logits[:, -1], case.target, case.foil,
                      "last-position logit difference", lm.dtype)


def restoration(patched: torch.Tensor | np.ndarray, clean: float | np.ndarray, corrupted: float | np.ndarray):
    return (patched - corrupted) / (clean - corrupted)


@torch.no_grad()
def logit_lens(lm: LoadedModel, case: Case) -> np.ndarray:
    """Logit difference read from the residual stream after the embedding and after each block, through the
    final norm and the unembedding: (L + 1,) values; entry l + 1 is after block l (the last one equals the
    model's own logit difference)."""
    L = lm.adapter.n_layers
    with capture(lm.adapter, [("resid_pre", 0)] + [("resid", layer) for layer in range(L)]) as rec:
        lm.acts(case.clean)
    rs = [rec[("resid_pre", 0)]] + [rec[("resid", layer)] for layer in range(L)]
    ad = lm.adapter
    norm = ad.final_norm()
    if norm is None:
        raise ModelLoadError(f"{lm.spec.id}: the logit lens reads the residual stream through the final norm, which "
                             "this architecture does not expose (its adapter row has no final_norm)")
    return np.array([float(ad.logit_diff(norm(r[:, -1]), case.target, case.foil)[0]) for r in rs])


def spikes(lens: np.ndarray, frac: float = 0.2) -> list[tuple[int, int]]:
    """Transitions (i, i + 1) of the lens where the logit difference jumps by more than ``frac`` of its total rise.
    Lens indices as TransformerLens' accumulated residual: 0 = embeddings, i = entering block i, L = after the last
    block; so (i, i + 1) is block i's contribution (the seed's 30->31, 33->34, 35->36 for gpt2-large)."""
    inc = np.diff(lens)
    total = lens[-1] - lens[0]
    return [(int(i), int(i) + 1) for i in np.flatnonzero(inc > frac * abs(total))]


@torch.no_grad()
def layer_position_patching(lm: LoadedModel, case: Case, *, max_batch_tokens: int | None = None) -> np.ndarray:
    """Residual stream patched clean -> corrupted at one (layer, position) at a time; normalised restoration,
    (L + 1, T), rows indexed like the lens: row l < L is the residual entering block l (row 0: embeddings), row L
    the residual after the last block. One case of :func:`layer_position_patching_many`."""
    return layer_position_patching_many(lm, [case], max_batch_tokens=max_batch_tokens)[0]


@torch.no_grad()
def layer_position_patching_many(lm: LoadedModel, cases: list[Case], *, max_batch_tokens: int | None = None) -> np.ndarray:
    """:func:`layer_position_patching` for several cases of one token length at once: (P, L + 1, T), batched over
    the cases and the positions (as TransformerLens's ``get_act_patch_resid_pre`` batches the prompts of each
    (layer, position), but in one pass per layer and chunk of positions rather than one per (layer, position)).

    Only what a patch can change is computed. Before the first position where any case's prompts differ, the clean
    and corrupted residual streams are the same (a causal model), so patching there is a no-op: restoration 0. A
    patch at (l, p) changes nothing before block l and nothing before position p, so the patched copies of row l
    start at block l from the corrupted residual stream, over a key/value cache of the shared prefix, one copy per
    (position, case) (batched). After the last block a patch changes only its own position's output: row L is 1 at
    the last position, 0 elsewhere. Models that cannot resume (BERT) run one full forward per row over T copies,
    case by case.
    """
    ad = lm.adapter
    L, T, P = ad.n_layers, cases[0].clean.shape[1], len(cases)
    if any(c.clean.shape[1] != T for c in cases):
        raise StimulusError(f"layer_position_patching_many: cases of {sorted({c.clean.shape[1] for c in cases})} "
                            "tokens; batch cases of one token length together")
    diffs = np.array([logit_diffs(lm, c) for c in cases])  # (P, 2): clean, corrupted
    clean, corr = diffs[:, 0, None, None], diffs[:, 1, None, None]
    if not ad.can_resume:
        return np.stack([restoration(_layer_position_full(lm, c), c0, c1) for c, (c0, c1) in zip(cases, diffs)])
    ids_clean = torch.cat([c.clean for c in cases])
    ids_corr = torch.cat([c.corrupted for c in cases])
    target = torch.tensor([c.target for c in cases], device=lm.device)
    foil = torch.tensor([c.foil for c in cases], device=lm.device)
    sites = [("resid_pre", layer) for layer in range(L)]
    with capture(ad, sites) as rc:
        lm.acts(ids_clean)
    first = first_difference(ids_clean, ids_corr)
    with capture(ad, sites) as rk:
        cache = ad.acts_and_prefix_cache(ids_corr, first)
    out = np.broadcast_to(corr, (P, L + 1, T)).copy()  # before the first difference: the corrupted run itself
    out[:, L, T - 1] = diffs[:, 0]  # the final residual of the last position is all the readout sees
    n = T - first
    if n:
        if first and cache is None:
            cache = ad.prefix_cache(ids_corr[:, :first])
        K = max(1, (max_batch_tokens or lm.batch_tokens) // (n * P))  # positions per pass; rows j * P + p: position j, case p
        for layer in range(L):
            src, base = rc[("resid_pre", layer)][:, first:], rk[("resid_pre", layer)][:, first:]  # (P, n, D)
            for j0 in range(0, n, K):
                k = min(n, j0 + K) - j0
                x = base.repeat(k, 1, 1)
                rows = torch.arange(k * P, device=lm.device)
                j = torch.arange(j0, j0 + k, device=lm.device).repeat_interleave(P)
                x[rows, j] = src[rows % P, j]
                with ad.resume_from(layer):
                    h = ad.body(x, ad.tile_cache(cache, k, first_layer=layer) if first else None, last_only=True).float()
                check_finite(h, "final hidden state")
                d = ad.logit_diff(h, target.repeat(k), foil.repeat(k)).cpu().numpy().reshape(k, P)
                out[:, layer, first + j0:first + j0 + k] = d.T
    return restoration(out, clean, corr)


def _layer_position_full(lm: LoadedModel, case: Case) -> np.ndarray:
    """Raw patched logit differences (L + 1, T) from one full forward per row over T corrupted copies."""
    L, T = lm.adapter.n_layers, case.clean.shape[1]
    sites = [("resid_pre", layer) for layer in range(L)] + [("resid", L - 1)]
    with capture(lm.adapter, sites) as rec:
        lm.acts(case.clean)
    out = np.empty((L + 1, T))
    rows = torch.arange(T, device=lm.device)
    for i, site in enumerate(sites):
        src = rec[site][0]  # (T, D)

        def put(x, src=src):
            x[rows, rows] = src[rows]
            return x
        with intervene(lm.adapter, {site: put}):
            out[i] = lm.last_diff(case.corrupted.repeat(T, 1), case.target, case.foil).cpu().numpy()
    return out


@torch.no_grad()
def layer_position_patching_loop(lm: LoadedModel, case: Case) -> np.ndarray:
    """The seed's way (TransformerLens's ``get_act_patch_resid_pre``): one full forward of the model per (layer,
    position), logits at every position; the benchmark's baseline and the test oracle. Same shape and rows as
    :func:`layer_position_patching`."""
    ad = lm.adapter
    L, T = ad.n_layers, case.clean.shape[1]
    clean, corr = logit_diffs(lm, case)
    sites = [("resid_pre", layer) for layer in range(L)] + [("resid", L - 1)]
    with capture(ad, sites) as rec:
        lm.acts(case.clean)
    out = np.empty((L + 1, T))
    for i, site in enumerate(sites):
        for p in range(T):
            def put(x, src=rec[site], p=p):
                x[:, p] = src[:, p]
                return x
            with intervene(ad, {site: put}):
                out[i, p] = float(_seed_diff(lm, case)[0])
    return restoration(out, clean, corr)


@torch.no_grad()
def mlp_layer_patching(lm: LoadedModel, case: Case) -> np.ndarray:
    """Whole MLP output of each layer patched clean -> corrupted (all positions): restoration per layer (L,)."""
    L = lm.adapter.n_layers
    clean, corr = logit_diffs(lm, case)
    with capture(lm.adapter, [("mlp_out", layer) for layer in range(L)]) as rec:
        lm.acts(case.clean)
    out = np.empty(L)
    for layer in range(L):
        src = rec[("mlp_out", layer)]
        with intervene(lm.adapter, {("mlp_out", layer): lambda x: src.expand_as(x).clone()}):  # noqa: B023 - used at once
            out[layer] = float(lm.last_diff(case.corrupted, case.target, case.foil)[0])
    return restoration(out, clean, corr)


@torch.no_grad()
def neuron_patching(lm: LoadedModel, case: Case, layer: int, neurons: np.ndarray | None = None,
                    batch: int | None = None, max_batch_tokens: int | None = None) -> np.ndarray:
    """Each neuron of ``layer`` patched clean -> corrupted on its own (all positions): normalised restoration per
    neuron, (N,). Batched: one forward over ``batch`` corrupted copies (default: ``max_batch_tokens`` tokens), each
    patching a different neuron. Where the adapter supports it, the pass starts at ``layer`` from the cached
    corrupted residual stream (earlier layers cannot see the patch), the positions before the first one where the
    prompts differ come from a key/value cache (their activations are the same in both prompts, so patching them
    changes nothing), and only the target - foil direction of the last position is read out."""
    ad = lm.adapter
    N, T = ad.d_mlp, case.clean.shape[1]
    idx = np.arange(N) if neurons is None else np.asarray(neurons)
    batch = batch or max(1, (max_batch_tokens or lm.batch_tokens) // T)
    clean, corr = logit_diffs(lm, case)
    with capture(ad, [("mlp_act", layer)]) as rec:
        lm.acts(case.clean)
    src = rec[("mlp_act", layer)][0]  # (T, N)
    first, cache = 0, None
    if ad.can_resume:
        first = first_difference(case.clean, case.corrupted) % T  # identical prompts (T): no prefix to skip
        with capture(ad, [("resid_pre", layer)]) as pre:
            cache = ad.acts_and_prefix_cache(case.corrupted, first)
        src = src[first:]
        if first and cache is None:
            cache = ad.prefix_cache(case.corrupted[:, :first])  # no patch hook yet
    out = np.empty(len(idx))
    for b0 in range(0, len(idx), batch):
        nb = torch.as_tensor(idx[b0:b0 + batch], device=lm.device)
        rows = torch.arange(len(nb), device=lm.device)

        def put(x, nb=nb, rows=rows):  # x: (batch, positions, N); the last block runs the last position only
            x[rows, :, nb] = src[src.shape[0] - x.shape[1]:, nb].T
            return x
        with intervene(ad, {("mlp_act", layer): put}):
            if ad.can_resume:
                resid = pre[("resid_pre", layer)][:, first:].repeat(len(nb), 1, 1)
                with ad.resume_from(layer):
                    h = ad.body(resid, ad.tile_cache(cache, len(nb), first_layer=layer) if cache is not None else None,
                                last_only=True).float()
                check_finite(h, "final hidden state")
                d = ad.logit_diff(h, case.target, case.foil)
            else:
                d = lm.last_diff(case.corrupted.repeat(len(nb), 1), case.target, case.foil)
        out[b0:b0 + len(nb)] = d.cpu().numpy()
    return restoration(out, clean, corr)


@torch.no_grad()
def neuron_patching_loop(lm: LoadedModel, case: Case, layer: int, neurons: np.ndarray) -> np.ndarray:
    """The seed's way, one full forward pass of the model per neuron, logits at every position (the benchmark's
    baseline and the test oracle)."""
    clean, corr = logit_diffs(lm, case)
    with capture(lm.adapter, [("mlp_act", layer)]) as rec:
        lm.acts(case.clean)
    src = rec[("mlp_act", layer)][0]
    out = np.empty(len(neurons))
    for i, n in enumerate(neurons):
        def put(x, n=int(n)):
            x[0, :, n] = src[:, n]
            return x
        with intervene(lm.adapter, {("mlp_act", layer): put}):
            out[i] = float(_seed_diff(lm, case)[0])
    return restoration(out, clean, corr)


def attribution_patching(lm: LoadedModel, case: Case) -> np.ndarray:
    """Linear estimate of every neuron's restoration in every layer from one forward and one backward pass on
    the corrupted prompt (plus one clean forward): (clean act - corrupted act) x d(logit diff)/d(act), summed over
    positions, normalised like the exact patching. (L, N)."""
    L = lm.adapter.n_layers
    clean, corr = logit_diffs(lm, case)
    with torch.no_grad(), capture(lm.adapter, [("mlp_act", layer) for layer in range(L)]) as rec:
        lm.acts(case.clean)
    with with_grads(lm.adapter, "mlp_act", range(L)) as kept:
        d = lm.last_diff(case.corrupted, case.target, case.foil)[0]
        grad = grads_of(d, kept)
    est = torch.stack([((rec[("mlp_act", layer)][0] - kept[layer][0].detach()) * grad[layer][0]).sum(0) for layer in range(L)])
    return (est.float().cpu().numpy()) / (clean - corr)


def robust_z(x: np.ndarray) -> np.ndarray:
    """(x - median) / (1.4826 MAD): outliers of a restoration distribution."""
    med = np.median(x)
    mad = 1.4826 * np.median(np.abs(x - med))
    return (x - med) / max(mad, 1e-12)


@torch.no_grad()
def congruence(lm: LoadedModel, layer: int, neuron: int, k: int = 10,
               spaces: tuple[str, ...] = ("unembed", "embed")) -> dict:
    """A neuron's output weights against every token's unembedding (and embedding): top and bottom tokens."""
    w = lm.adapter.mlp_out_weight(layer)[neuron].float()
    out = {}
    for name, M in (("unembed", lm.adapter.unembed_matrix()), ("embed", lm.adapter.embed_matrix())):
        if M is None or name not in spaces:
            continue
        s = (M.float() @ w).cpu().numpy()
        order = np.argsort(-s, kind="stable")
        dec = lambda ids: [lm.tokenizer.decode([int(i)]) for i in ids]  # noqa: E731
        out[name] = {"scores": s, "top": dec(order[:k]), "top_scores": s[order[:k]],
                     "bottom": dec(order[::-1][:k]), "bottom_scores": s[order[::-1][:k]]}
    return out


@torch.no_grad()
def token_writers(lm: LoadedModel, token: int) -> np.ndarray:
    """Every neuron of every layer against one token's unembedding: (L, N) dot products (which neurons write it)."""
    unembed = lm.adapter.unembed_matrix()
    if unembed is None:
        raise ModelLoadError(f"{lm.spec.id}: its adapter exposes no unembedding, so no neuron can be said to write a token")
    u = unembed[token].float()
    return torch.stack([lm.adapter.mlp_out_weight(layer).float() @ u for layer in range(lm.adapter.n_layers)]).cpu().numpy()


@torch.no_grad()
def top_contexts(lm: LoadedModel, texts: list[str], layer: int, neuron: int, k: int = 20,
                 window: int = 8) -> list[dict]:
    """Neuroscope-style: the ``k`` (text, position) pairs where the neuron fires most, with the firing token and
    its preceding context (``window`` tokens)."""
    tok = lm.tokenizer
    best: list[tuple[float, int, int]] = []
    n_special = len(special_wrap(tok)[0])  # a leading BOS is not a context: never reported
    enc = [prompt_ids(tok, t) for t in texts]
    groups: dict[int, list[int]] = {}
    for i, ids in enumerate(enc):  # texts of equal token length run as one batch
        groups.setdefault(len(ids), []).append(i)
    for idx in groups.values():
        for b0 in range(0, len(idx), 64):
            rows = idx[b0:b0 + 64]
            x = torch.tensor([enc[i] for i in rows], device=lm.device)
            with capture(lm.adapter, [("mlp_act", layer)]) as rec:
                lm.acts(x)
            acts = rec[("mlp_act", layer)][:, :, neuron].float().cpu().numpy()
            for i, a in zip(rows, acts):
                best += [(float(v), i, p) for p, v in enumerate(a) if p >= n_special]
    best.sort(key=lambda t: (-t[0], t[1], t[2]))
    out = []
    for v, i, p in best[:k]:
        ids = enc[i]
        out.append({"activation": v, "text": i, "position": p, "token": tok.decode([ids[p]]),
                    "before": tok.decode(ids[max(0, p - window):p]), "after": tok.decode(ids[p + 1:p + 4])})
    return out


def _keep_masks(lm: LoadedModel, chunk: list[dict[int, np.ndarray]], layers: list[int], n: int) -> dict:
    """layer -> (sets, neurons) mask: row j keeps every neuron but set j's of that layer."""
    keep = {layer: torch.ones(len(chunk), n, device=lm.device, dtype=lm.dtype) for layer in layers}
    for j, s in enumerate(chunk):
        for layer, neurons in s.items():
            keep[layer][j, torch.as_tensor(np.asarray(neurons), dtype=torch.long)] = 0
    return keep


@torch.no_grad()
def ablated_diffs(lm: LoadedModel, cases: list[Case], sets: list[dict[int, np.ndarray]],
                  max_batch_tokens: int | None = None) -> np.ndarray:
    """Clean-prompt logit differences with each neuron set zeroed (``{layer: neurons}``, all positions): (R, C).
    Row 0 of ``sets`` may be ``{}`` for the unablated model. Batched: cases of equal length, repeated once per
    set in a chunk of sets, run in one forward pass in which copy r zeroes set r's neurons (a mask per layer);
    where the adapter supports it the pass starts at the first ablated layer from the cached clean residual
    stream, and only the target - foil direction is read. Tokens every case of a length begins with (Gemma's
    ``<bos>``) run once per set, as a key/value cache (under that set's ablation) that the set's cases continue."""
    ad = lm.adapter
    groups: dict[int, list[int]] = {}
    for i, c in enumerate(cases):
        groups.setdefault(c.clean.shape[1], []).append(i)
    out = np.empty((len(sets), len(cases)))
    layers = sorted({layer for s in sets for layer in s})
    N = ad.d_mlp
    start = layers[0] if layers and ad.can_resume else None
    for idx in groups.values():
        ids = torch.cat([cases[i].clean for i in idx])
        C, T = ids.shape
        tgt = torch.tensor([cases[i].target for i in idx], device=lm.device)
        foil = torch.tensor([cases[i].foil for i in idx], device=lm.device)
        f = 0  # the shared leading tokens (at least one position is left to run)
        if start is not None:
            with capture(ad, [("resid_pre", start)]) as rec:
                lm.acts(ids)
            f = min(first_difference(ids, ids[:1].expand(C, -1)), T - 1) if C > 1 else 0
        R = max(1, (max_batch_tokens or lm.batch_tokens) // (C * T))
        for r0 in range(0, len(sets), R):
            chunk = sets[r0:r0 + R]
            k = len(chunk)
            keep = _keep_masks(lm, chunk, layers, N)

            def ablate(rows):  # edits for k * rows sequences, copy j (rows j*rows ...) keeping mask row j
                def edit(x, m):  # x: (k*rows, positions, N) (one position in the last block)
                    return (x.view(k, rows, -1, N) * m[:, None, None, :]).view(x.shape)
                return {("mlp_act", layer): (lambda x, m=keep[layer]: edit(x, m)) for layer in layers}
            cache = None
            if f:
                with intervene(ad, ablate(1)):  # the shared prefix under each set's ablation
                    cache = ad.tile_cache(ad.prefix_cache(ids[:1, :f].repeat(k, 1)), C, interleave=True,
                                           first_layer=start or 0)
            with intervene(ad, ablate(C)):
                if start is not None:
                    with ad.resume_from(start):
                        h = ad.body(rec[("resid_pre", start)][:, f:].repeat(k, 1, 1), cache, last_only=True)
                    check_finite(h, "final hidden state")
                    d = ad.logit_diff(h, tgt.repeat(k), foil.repeat(k))
                else:
                    d = lm.last_diff(ids.repeat(k, 1), tgt.repeat(k), foil.repeat(k))
            out[r0:r0 + k, idx] = d.view(k, C).cpu().numpy()
    return out
