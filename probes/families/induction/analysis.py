"""Previous-token heads and induction heads, and the composition between them (Elhage et al. 2021, "A Mathematical
Framework for Transformer Circuits"; Olsson et al. 2022, "In-context Learning and Induction Heads"), on random
token sequences repeated once.

The scores read the attention weights of :func:`probes.attention.attention` (or of
:func:`~probes.attention.edited_attention` under head edits); the losses are :func:`probes.attention.token_losses`.
Scores and losses are returned per sequence so that claims can resample sequences for intervals.
"""
from __future__ import annotations

import numpy as np
import torch

from ... import stats, tokens
from ...attention import edited_attention, token_losses, zero_heads


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


def repeat_losses(lm, ids: torch.Tensor, length: int, edits=None) -> tuple[np.ndarray, np.ndarray]:
    """Per-sequence mean loss on tokens 2..length of the first and of the second repeat (the first token of a
    repeat cannot be predicted)."""
    loss = token_losses(lm, ids, 2 * length, edits)
    return loss[:, :length - 1].mean(1).numpy(), loss[:, length:].mean(1).numpy()


def random_head_sets(g: np.random.Generator, pool: list, k: int, n: int) -> list[list]:
    """``n`` draws of ``k`` distinct heads of ``pool``, from the generator ``g``: the heads an ablation claim zeroes
    instead of the ones it names (its permutation null)."""
    return [[pool[i] for i in g.choice(len(pool), k, replace=False)] for _ in range(n)]


def ablated_induction_scores(lm, ids: torch.Tensor, prefix: int, length: int, heads: list[tuple[int, int]],
                             zeroed: list[list[tuple[int, int]]]) -> list[np.ndarray]:
    """The composition test: for each set of heads in ``zeroed``, the mean induction score of ``heads`` per
    sequence, (sequences,), with that set zeroed. Attention is read only at the layers of ``heads``, each edited
    pass from its first zeroed layer (:func:`probes.attention.edited_attention`)."""
    def read(att) -> np.ndarray:
        s = induction_scores(att, prefix, length)
        return np.mean([s[h] for h in heads], axis=0)
    return edited_attention(lm, ids, [zero_heads(z) for z in zeroed], sorted({h[0] for h in heads}), read)
