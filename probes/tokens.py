"""Tokenisation helpers that refuse ambiguous stimuli with a clear message."""
from __future__ import annotations

import torch

from .errors import StimulusError


def encode(tok, text: str) -> list[int]:
    """Token ids of ``text`` without special tokens."""
    return tok(text, add_special_tokens=False)["input_ids"]


def special_wrap(tok) -> tuple[list[int], list[int]]:
    """The special tokens the tokenizer puts before and after any text: ([CLS], [SEP]) for BERT, ([<bos>], [])
    for Gemma, ([], []) for GPT-2 and SmolLM2. Models expect them (Gemma without its BOS inverts its answers)."""
    core = encode(tok, "x")
    full = tok("x")["input_ids"]
    for i in range(len(full) - len(core) + 1):
        if full[i:i + len(core)] == core:
            return full[:i], full[i + len(core):]
    return [], []


def prompt_ids(tok, text: str) -> list[int]:
    """A causal prompt as the model expects it: the tokenizer's leading special tokens (e.g. Gemma's BOS), then
    the text; no trailing special token (the prompt is to be continued)."""
    return special_wrap(tok)[0] + encode(tok, text)


def marked(tok, text: str, start: int, end: int) -> tuple[list[int], tuple[int, int]]:
    """A causal prompt tokenised as the whole text (:func:`prompt_ids`), with the tokens of the marked characters
    ``text[start:end]`` found by their character offsets: (ids, (first token, one past the last)). A token that
    straddles the mark's edge belongs to the mark. Tokenising a text piece by piece gives other tokens than the
    text itself (``"In " + "Brazil"`` -> ``In``, `` ``, ``Brazil``; the text -> ``In``, `` Brazil``)."""
    if not 0 <= start < end <= len(text):
        raise StimulusError(f"the mark [{start}, {end}) of {text!r} covers no token: mark a span of the text that has "
                            "characters")
    lead = special_wrap(tok)[0]
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    inside = [i for i, (a, b) in enumerate(enc["offset_mapping"]) if a < end and b > start and b > a]
    if not inside:
        raise StimulusError(f"{text[start:end]!r} in {text!r} covers no token of this tokenizer; mark a span of "
                            "the text that has characters")
    return lead + list(enc["input_ids"]), (len(lead) + inside[0], len(lead) + inside[-1] + 1)


def single_token(tok, word: str) -> int:
    """The id of ``word`` (include the leading space, e.g. ' Mike'); error unless it is exactly one token."""
    ids = encode(tok, word)
    if len(ids) != 1:
        pieces = [tok.decode([i]) for i in ids]
        raise StimulusError(
            f"stimulus word {word!r} is {len(ids)} tokens {pieces} for this tokenizer, not one. "
            "Pick a single-token word for this model (check with tokenizer.tokenize), or filter the stimulus "
            "list per model with probes.tokens.keep_single_tokens.")
    if tok.unk_token_id is not None and ids[0] == tok.unk_token_id and word.strip() != tok.unk_token:
        raise StimulusError(f"target {word!r} is not in the vocabulary (encodes to the unknown token); "
                            "choose a target the tokenizer knows")
    return ids[0]


def keep_single_tokens(tok, words: list[str], prefix: str = " ") -> list[str]:
    """The words that are one token with ``prefix`` (for per-model stimulus filtering)."""
    return [w for w in words if len(encode(tok, prefix + w)) == 1]


def batch(tok, texts: list[str], device, *, special: bool = True) -> dict:
    """Tokenise equal-length texts; error naming the odd one if lengths differ."""
    enc = [prompt_ids(tok, t) if special else encode(tok, t) for t in texts]
    lens = {len(e) for e in enc}
    if len(lens) != 1:
        first = len(enc[0])
        odd = next(t for t, e in zip(texts, enc) if len(e) != first)
        raise StimulusError(f"texts must have equal token length for batched patching; {texts[0]!r} has {first} "
                            f"tokens, {odd!r} has a different count. Group prompts by length (probes.tokens.by_length).")
    ids = torch.tensor(enc, device=device)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def by_length(tok, texts: list[str]) -> dict[int, list[int]]:
    """Indices of ``texts`` grouped by token length."""
    groups: dict[int, list[int]] = {}
    for i, t in enumerate(texts):
        groups.setdefault(len(prompt_ids(tok, t)), []).append(i)
    return groups


def positions(ids: torch.Tensor, target: int, what: str = "target") -> torch.Tensor:
    """Position of the single occurrence of ``target`` in each row; error if a row has 0 or 2+."""
    hits = ids == target
    counts = hits.sum(1)
    bad = (counts != 1).nonzero().flatten().tolist()
    if bad:
        raise StimulusError(f"{what} token id {target} occurs {counts[bad[0]].item()} times in row {bad[0]} "
                            "(must occur exactly once); fix or drop that stimulus")
    return hits.float().argmax(1)


def first_difference(a: torch.Tensor, b: torch.Tensor) -> int:
    """The first position where any row of ``a`` differs from ``b`` (T if none): positions before it are the same
    in both runs of a causal model, so patching them changes nothing."""
    d = (a != b).any(0).nonzero()
    return int(d[0, 0]) if len(d) else a.shape[1]
