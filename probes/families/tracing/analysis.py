"""Causal tracing of factual recall (Meng et al. 2022, "Locating and Editing Factual Associations in GPT", ROME).

A fact is a prompt whose subject is named (``The Eiffel Tower`` / ``is located in the city of``) and whose
attribute is one token (`` Paris``). Three runs per fact: the clean run; corrupted runs, where Gaussian noise of
``noise`` times the standard deviation of the input embeddings (over every token of the traced prompts, as the
model sees them: Gemma's scaled) is added to the subject tokens' input embeddings (seeded, one draw per sample); and restored runs, each a corrupted run in which the clean hidden state (the residual stream
after block ``l``) is put back at one position. The indirect effect of a (layer, position) is the probability of
the attribute in the restored run minus that in the corrupted run.

Positions are compared by class, as in the paper's figures: the last subject token, the first token after the
subject, and the last token (the paper's other subject tokens are left out: each class is a resumed pass per layer,
and the claims compare the last subject token with the non-subject positions). Restored runs resume at block ``l + 1`` from the corrupted run's residual
stream (:meth:`probes.adapters.Adapter.resume_from`): earlier blocks are not recomputed. Facts are one right-padded
batch (causal attention: a real token never sees the padding); every (fact, sample, position class) of a layer
is one batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ... import hooks, tokens
from ...errors import StimulusError

CLASSES = ("last subject token", "first token after", "last token")


@dataclass
class Facts:
    """Facts tokenized for one model: right-padded ids (F, T), each fact's length, subject span [start, end), and
    attribute id; ``names``: the subjects."""
    ids: torch.Tensor
    lengths: list[int]
    spans: list[tuple[int, int]]
    attributes: list[int]
    names: list[str]

    def positions(self) -> np.ndarray:
        """(F, 3): per fact the position of each class of :data:`CLASSES`."""
        return np.array([[e - 1, e, n - 1] for (s, e), n in zip(self.spans, self.lengths)])

    def subset(self, keep: list[int]) -> "Facts":
        T = max(self.lengths[i] for i in keep)
        return Facts(self.ids[keep][:, :T], [self.lengths[i] for i in keep], [self.spans[i] for i in keep],
                     [self.attributes[i] for i in keep], [self.names[i] for i in keep])


def tokenize(lm, facts: list[dict]) -> Facts:
    """Each fact ``{"prefix", "subject", "relation", "attribute"}`` as the model reads the whole text
    ``prefix + subject + relation`` (with its leading special tokens), the subject's tokens found by their character
    offsets (:func:`probes.tokens.marked`). The attribute must be one token and the relation at least two (the
    first token after the subject is not the last token)."""
    tok = lm.tokenizer
    rows, lengths, spans, attrs = [], [], [], []
    for f in facts:
        prefix = f.get("prefix") or ""
        text = prefix + f["subject"] + f["relation"]
        ids, span = tokens.marked(tok, text, len(prefix), len(prefix) + len(f["subject"]))
        attr = tokens.encode(tok, f["attribute"])
        if len(attr) != 1:
            raise StimulusError(f"fact {f['subject']!r}: attribute {f['attribute']!r} is {len(attr)} tokens for this "
                                "tokenizer; give a one-token attribute (with its leading space)")
        if len(ids) - span[1] < 2:
            raise StimulusError(f"fact {f['subject']!r}: the relation {f['relation']!r} must be two tokens or more "
                                "after the subject")
        rows.append(ids)
        spans.append(span)
        lengths.append(len(ids))
        attrs.append(attr[0])
    T = max(lengths)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    batch = torch.tensor([r + [pad] * (T - len(r)) for r in rows], dtype=torch.long, device=lm.device)
    return Facts(batch, lengths, spans, attrs, [f["subject"] for f in facts])


def _probs(lm, h: torch.Tensor, last: torch.Tensor, attrs: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """p(attribute) from final-normed hidden states (B, T, D) read at each row's ``last`` position (full softmax,
    in chunks of rows: a 262k vocabulary)."""
    rows = torch.arange(len(h), device=h.device)
    x = h[rows, last]
    out = []
    for i in range(0, len(x), chunk):
        logits = lm.adapter.logits_from_normed(x[i:i + chunk]).float()
        hooks.check_finite(logits, "logits of the traced facts", lm.dtype)
        out.append(logits.log_softmax(-1)[torch.arange(len(logits)), attrs[i:i + chunk]].exp())
    return torch.cat(out).cpu()


@torch.no_grad()
def clean_probs(lm, facts: Facts) -> tuple[np.ndarray, np.ndarray]:
    """Per fact p(attribute) and whether the attribute is the model's top-1 (the fact is known)."""
    h = lm.acts(facts.ids).last_hidden_state
    last = torch.tensor(facts.lengths, device=h.device) - 1
    x = h[torch.arange(len(h)), last]
    logits = lm.adapter.logits_from_normed(x).float()
    attrs = torch.tensor(facts.attributes, device=logits.device)
    p = logits.softmax(-1)[torch.arange(len(logits)), attrs]
    return p.cpu().numpy(), (logits.argmax(-1) == attrs).cpu().numpy()


@torch.no_grad()
def trace(lm, facts: Facts, noise: float, samples: int, seed: int) -> dict:
    """Clean, corrupted and restored probabilities of each fact's attribute:
    ``{"clean": (F,), "corrupted": (F, S), "restored": (F, S, L, 3), "sigma": float}`` (restored: the residual
    stream after block l put back at the position of each class of :data:`CLASSES`)."""
    ad = lm.adapter
    L, F, S = ad.n_layers, len(facts.lengths), samples
    emb_mod = lm.model.get_input_embeddings()
    emb = emb_mod(facts.ids)  # as the model sees them (Gemma's scaling is inside its embedding module)
    real = torch.arange(facts.ids.shape[1], device=emb.device)[None] < torch.tensor(facts.lengths, device=emb.device)[:, None]
    sigma = float(emb[real].float().std())
    subj = torch.zeros(facts.ids.shape, dtype=torch.bool, device=emb.device)
    for i, (s, e) in enumerate(facts.spans):
        subj[i, s:e] = True
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn((S, *emb.shape), generator=g).to(emb.device, emb.dtype) * (noise * sigma)
    noisy = (emb[None] + eps * subj[None, :, :, None]).reshape(S * F, *emb.shape[1:])  # row s*F + f
    sites = [("resid", layer) for layer in range(L)]
    with hooks.capture(ad, sites) as clean_rec:
        h_clean = lm.acts(facts.ids).last_hidden_state
    last = torch.tensor(facts.lengths, device=emb.device) - 1
    attrs = torch.tensor(facts.attributes, device=emb.device)
    p_clean = _probs(lm, h_clean, last, attrs)
    with hooks.capture(ad, sites) as bad_rec:
        h_bad = ad.base(inputs_embeds=noisy).last_hidden_state
    p_bad = _probs(lm, h_bad, last.repeat(S), attrs.repeat(S)).reshape(S, F)
    pos = torch.tensor(facts.positions(), device=emb.device)  # (F, 4)
    C = len(CLASSES)
    restored = torch.empty(C, S, F, L)
    rows_f = torch.arange(F, device=emb.device)
    for layer in range(L):
        x = bad_rec[("resid", layer)].reshape(S, F, *emb.shape[1:])[None].repeat(C, 1, 1, 1, 1)  # (C, S, F, T, D)
        clean = clean_rec[("resid", layer)]
        for c in range(C):
            x[c][:, rows_f, pos[:, c]] = clean[rows_f, pos[:, c]]  # (S, F, D) <- (F, D)
        x = x.reshape(C * S * F, *emb.shape[1:])
        lasts, at = last.repeat(C * S), attrs.repeat(C * S)
        if layer == L - 1:  # after the last block: the final norm and the unembedding alone
            norm = ad.final_norm()
            h = norm(x) if norm is not None else x
        else:
            with ad.resume_from(layer + 1):
                h = ad.body(x)
        restored[..., layer] = _probs(lm, h, lasts, at).reshape(C, S, F)
    return {"clean": p_clean.numpy(), "corrupted": p_bad.numpy().T, "sigma": sigma,
            "restored": restored.permute(2, 1, 3, 0).numpy()}


def effects(tr: dict) -> np.ndarray:
    """(F, L, 3): the indirect effect of restoring each (layer, position class), averaged over noise samples."""
    return (tr["restored"] - tr["corrupted"][:, :, None, None]).mean(1)


def sample_effects(tr: dict, layers: range) -> np.ndarray:
    """(F, S, 3): the indirect effect of each position class averaged over ``layers``, per fact and noise sample
    (the units of a two-stage bootstrap: :func:`probes.stats.nested_means`)."""
    ie = tr["restored"] - tr["corrupted"][:, :, None, None]  # (F, S, L, 3)
    return ie[:, :, list(layers)].mean(2)


def band(n_layers: int) -> range:
    """The early-to-middle layers of the claim: the first half, ``0 .. L/2 - 1``."""
    return range(n_layers // 2)


def site_contrast(ie: np.ndarray, layers: range) -> dict:
    """Per fact the mean indirect effect over ``layers`` of each class, and the last subject token's margin over the
    better non-subject class (first token after, last token) per fact: ``{"per_class": (F, 3), "margin": (F,)}``."""
    per = ie[:, list(layers)].mean(1)
    return {"per_class": per, "margin": per[:, 0] - per[:, 1:].max(1)}
