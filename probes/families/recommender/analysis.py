"""MLP-projection recommender (seed 003): norms, token-average target vectors, pair (analogy) vectors.

Vectors are MLP outputs (site ``mlp_out``: the MLP's output projection, before the residual add) of every
token of a text. Position 0 is excluded, as the seed does (``tokens[0, 1:]``): in GPT-2-family models it
carries outsized norms; in BERT-family models it is [CLS]. BERT's trailing [SEP] is excluded too.
"""
from __future__ import annotations

import numpy as np
import torch

from ...errors import NumericsError, StimulusError
from ...hooks import capture
from ...loading import LoadedModel
from ...stats import rng


@torch.no_grad()
def mlp_outputs(lm: LoadedModel, text: str) -> tuple[np.ndarray, list[str]]:
    """(L, T', D) MLP outputs for the tokens of ``text`` (position 0 and a trailing [SEP] excluded), labels."""
    enc = lm.tokenizer(text, return_tensors="pt")
    ids = enc["input_ids"].to(lm.device)
    L = lm.adapter.n_layers
    with capture(lm.adapter, [("mlp_out", layer) for layer in range(L)]) as rec:
        lm.acts(ids, attention_mask=torch.ones_like(ids))
    stop = ids.shape[1] - (1 if ids[0, -1].item() == getattr(lm.tokenizer, "sep_token_id", None) else 0)
    x = torch.stack([rec[("mlp_out", layer)][0, 1:stop] for layer in range(L)]).float().cpu().numpy()
    labels = [lm.tokenizer.decode([t]) for t in ids[0, 1:stop].tolist()]
    return x, labels


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def cos(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity between the last axes of ``a`` (..., D) and rows of ``b`` (N, D): (..., N)."""
    return unit(a) @ unit(b).T


def token_average(xA: np.ndarray, xB: np.ndarray, xC: np.ndarray) -> dict:
    """Seed Part 2 at one layer: mean vectors of A and B, their cosine, target = their average, the cosine of
    each C token with the target, and the recommended (most similar) C token index."""
    mA, mB = xA.mean(0), xB.mean(0)
    target = (mA + mB) / 2
    sims = cos(target, xC)
    return {"mean_A": mA, "mean_B": mB, "cos_AB": float(cos(mA, mB[None])[0]), "sims": sims,
            "best": int(np.argmax(sims))}


def pair_sims(xA: np.ndarray, xB: np.ndarray, xC: np.ndarray) -> np.ndarray:
    """Seed Part 4: for every token pair (i of A, j of B) the directional-extrapolation ("analogy") vector
    ``xB[j] + (xB[j] - xA[i])`` (continue from A's token past B's token), and its cosine with every C token:
    (nA, nB, nC), vectorised (no Python loops)."""
    target = 2 * xB[None, :, :] - xA[:, None, :]  # (nA, nB, D)
    return np.einsum("abd,cd->abc", unit(target), unit(xC))


def centred(*xs: np.ndarray) -> tuple[np.ndarray, ...]:
    """Subtract the mean vector over all tokens of all texts (at one layer) from each text's vectors.

    Trained models' MLP outputs share a large common direction (raw cosines near 0.9 for every token pair in the
    organisms); removing it makes similarities reflect what distinguishes tokens, not that common offset."""
    mu = np.concatenate(xs).mean(0)
    return tuple(x - mu for x in xs)


def texts_outputs(lm: LoadedModel, texts: dict[str, str]) -> dict[str, tuple[np.ndarray, list[str]]]:
    """``mlp_outputs`` of each text, with a clear error for a text too short to have a vector."""
    out = {}
    for k, t in texts.items():
        x, labels = mlp_outputs(lm, t)
        if x.shape[1] == 0:
            raise StimulusError(f"text {k!r} has no tokens after position 0: give it at least two tokens")
        if not np.isfinite(x).all():
            raise NumericsError(f"non-finite MLP outputs for text {k!r}: rerun with --dtype float32")
        out[k] = (x, labels)
    return out


def layer_profile(XA: np.ndarray, XB: np.ndarray, XC: np.ndarray, centre: bool = True) -> dict:
    """Per layer: the token-average recommendation (index, similarity) and the pair (analogy) max similarity
    per C token, on centred vectors unless ``centre`` is False."""
    L = XA.shape[0]
    rec, rec_sim, cos_ab = np.empty(L, int), np.empty(L), np.empty(L)
    mx = np.empty((L, XC.shape[1]))
    arg = np.empty((L, XC.shape[1]), int)
    for layer in range(L):
        a, b, c = centred(XA[layer], XB[layer], XC[layer]) if centre else (XA[layer], XB[layer], XC[layer])
        ta = token_average(a, b, c)
        rec[layer], rec_sim[layer], cos_ab[layer] = ta["best"], ta["sims"][ta["best"]], ta["cos_AB"]
        s = pair_sims(a, b, c).reshape(-1, c.shape[0])
        mx[layer], arg[layer] = s.max(0), s.argmax(0)
    return {"rec": rec, "rec_sim": rec_sim, "cos_AB": cos_ab, "max_sims": mx, "argmax_pair": arg,
            "pair_score": mx.mean(1)}


def dim_shuffle_null(XA: np.ndarray, XB: np.ndarray, XC: np.ndarray, layer: int, draws: int = 100,
                     seed: int = 0) -> np.ndarray:
    """Null for the pair score at one layer: the same computation with C's vector dimensions shuffled (seeded;
    one permutation per draw, applied to every C token), after centring."""
    a, b, c = centred(XA[layer], XB[layer], XC[layer])
    g = rng(seed)
    out = np.empty(draws)
    for i in range(draws):
        out[i] = pair_sims(a, b, c[:, g.permutation(c.shape[1])]).reshape(-1, c.shape[0]).max(0).mean()
    return out


def middle_layers(n_layers: int) -> range:
    """The middle half of the network: layers in [L/4, 3L/4) (gpt2: 3-8; 4-layer organisms: 1-2; 6 layers: 2-4)."""
    return range(int(np.ceil(n_layers / 4)), int(np.ceil(3 * n_layers / 4)))
