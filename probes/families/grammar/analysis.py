"""Grammar tuning of MLP neurons (seed 000): nouns vs verbs.

Each word is presented alone (as the seed does), wrapped in the special tokens
the tokenizer adds to any text: for GPT-2-family models the single token " word"
at position 0; for Gemma "<bos> word"; for BERT-family models "[CLS] word [SEP]";
read at the word. Activations are the MLP expansion *after* the activation function
(site ``mlp_act``; ``mlp_pre`` is available), for every layer from one forward
pass per batch of words, shared by all grammar claims of a model.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from ... import stats
from ...errors import StimulusError
from ...hooks import capture
from ...loading import LoadedModel
from ...log import log
from ...tokens import encode, special_wrap

@dataclass
class WordSets:
    nouns: list[str]
    verbs: list[str]
    n_candidates: tuple[int, int]

    def split(self, which: str, half: int) -> list[str]:
        """Odd/even split (half 1 = even indices, half 2 = odd), as the seed."""
        words = self.nouns if which == "nouns" else self.verbs
        return words[half - 1::2]


def word_sets(lm: LoadedModel, candidates: dict[str, list[str]], max_words: int = 4000) -> WordSets:
    """Nouns and verbs of ``candidates`` (``{"nouns": [...], "verbs": [...]}``, most frequent first: a versioned
    stimulus of the project) that are a single token with a leading space for this model."""
    d = candidates
    keep = {}
    for pos in ("nouns", "verbs"):
        cands = list(d[pos])
        ids = lm.tokenizer([" " + w for w in cands], add_special_tokens=False)["input_ids"]  # one batched call:
        ok = [w for w, x in zip(cands, ids) if len(x) == 1]  # 48k calls of one word each took 3 s
        keep[pos] = ok[:max_words]
    return WordSets(keep["nouns"], keep["verbs"], (len(d["nouns"]), len(d["verbs"])))


@torch.no_grad()
def word_activations(lm: LoadedModel, words: list[str], site: str = "mlp_act", batch: int = 512) -> np.ndarray:
    """(L, n_words, N) activations of every layer for each word presented alone."""
    tok = lm.tokenizer
    enc = tok([" " + w for w in words], add_special_tokens=False)["input_ids"]  # one batched call (word_sets kept
    bad = [w for w, x in zip(words, enc) if len(x) != 1]  # single-token words only); one call per word took 2 s
    if bad:
        raise StimulusError(f"{len(bad)} words are not one token for {lm.spec.id} (e.g. {bad[0]!r}): take the "
                            "word lists through word_sets(), which keeps the single-token ones")
    ids = [x[0] for x in enc]
    pre, post = special_wrap(tok)  # BERT: [CLS] w [SEP]; Gemma: <bos> w; GPT-2: w
    ad = lm.adapter
    L = ad.n_layers
    # a causal model's leading special tokens (Gemma's <bos>) are the same prefix for every word: computed once, as
    # a key/value cache every word continues (the same attention, half the positions for Gemma)
    shared = bool(pre) and not post and lm.kind == "causal" and ad.can_resume
    cache = ad.prefix_cache(torch.tensor([pre], device=lm.device)) if shared else None
    out = []
    for i in range(0, len(ids), batch):
        words = ids[i:i + batch]
        with capture(ad, [(site, layer) for layer in range(L)]) as rec:
            if shared:
                lm.acts(torch.tensor(words, device=lm.device)[:, None], use_cache=True,
                        **{ad._cache_kw: ad.tile_cache(cache, len(words))})
            else:
                chunk = torch.tensor([pre + [w] + post for w in words], device=lm.device)
                lm.acts(chunk, attention_mask=torch.ones_like(chunk))
        pos = 0 if shared else len(pre)
        out.append(torch.stack([rec[(site, layer)][:, pos] for layer in range(L)]).float().cpu().numpy())
    return np.concatenate(out, 1)


@dataclass
class GrammarData:
    """Activations of the four word groups at every layer: acts[group] is (L, n, N)."""
    words: WordSets
    acts: dict[str, np.ndarray] = field(default_factory=dict)
    seconds: float = 0.0

    def layer(self, lay: int) -> dict[str, np.ndarray]:
        return {k: v[lay] for k, v in self.acts.items()}


def collect(lm: LoadedModel, candidates: dict[str, list[str]], site: str = "mlp_act",
            max_words: int = 4000) -> GrammarData:
    """The activations of the nouns and verbs of ``candidates`` (:func:`word_sets`) at every layer."""
    t0 = time.time()
    ws = word_sets(lm, candidates, max_words)
    data = GrammarData(ws)
    groups = {f"{pos}{h}": ws.split(pos, h) for pos in ("nouns", "verbs") for h in (1, 2)}
    for name, words in groups.items():
        data.acts[name] = word_activations(lm, words, site)
    data.seconds = time.time() - t0
    log(f"grammar activations for {lm.spec.id}: {len(ws.nouns)} nouns, {len(ws.verbs)} verbs, "
        f"{lm.adapter.n_layers} layers in {data.seconds:.1f}s")
    return data


def length_confound(nouns: list[str], verbs: list[str]) -> dict:
    """Seed Part 1: word lengths (characters) of nouns vs verbs; t-test and Cohen's d (the seed's pingouin
    ``compute_effsize(eftype="cohen")``, which :func:`stats.cohens_d` equals to 1e-10; importing pingouin took a
    second of each worker)."""
    ln, lv = np.array([len(w) for w in nouns]), np.array([len(w) for w in verbs])
    t, p = stats.ttest_ind(ln, lv)
    d = float(stats.cohens_d(ln, lv))
    return {"len_nouns": ln, "len_verbs": lv, "t": float(t), "p": float(p), "d": d}


def tuning(a: np.ndarray, b: np.ndarray, q: float = 0.05) -> dict:
    """Per-neuron t-test (a vs b), FDR discoveries, Cohen's d."""
    t, p = stats.ttest_ind(a, b)
    d = stats.cohens_d(a, b)
    sig = stats.fdr(p, q)
    return {"t": t, "p": p, "d": d, "sig": sig, "n_sig": int(sig.sum()), "n_large": int((np.abs(d) > 0.8).sum()),
            "n_sig_large": int((sig & (np.abs(d) > 0.8)).sum())}


def shuffled_counts(a: np.ndarray, b: np.ndarray, n: int = 200, seed: int = 0, q: float = 0.05) -> np.ndarray:
    """Label-shuffle null: FDR-significant neuron counts when noun/verb labels are permuted (seeded)."""
    x = np.concatenate([a, b])
    g = stats.rng(seed)
    perms = np.stack([g.permutation(len(x)) for _ in range(n)])
    p = stats.t_to_p(stats.ttest_ind_perms(x, len(a), perms), len(x) - 2)
    return np.array([stats.fdr(row, q).sum() for row in p], dtype=int)


def split_half(acts: dict[str, np.ndarray]) -> dict:
    """Seed Part 4: t-values of split 1, split 2 and split 12 (nouns-1 vs verbs-2); Bonferroni; correlations."""
    t1, p1 = stats.ttest_ind(acts["nouns1"], acts["verbs1"])
    t2, p2 = stats.ttest_ind(acts["nouns2"], acts["verbs2"])
    t12, p12 = stats.ttest_ind(acts["nouns1"], acts["verbs2"])
    ok = np.isfinite(t1) & np.isfinite(t2) & np.isfinite(t12)
    b1, b2, b12 = stats.bonferroni(p1), stats.bonferroni(p2), stats.bonferroni(p12)
    both = b1 & b2
    return {"t1": t1, "t2": t2, "t12": t12, "sig1": b1, "sig2": b2, "sig12": b12,
            "r_12": float(np.corrcoef(t1[ok], t2[ok])[0, 1]), "r_1_12": float(np.corrcoef(t1[ok], t12[ok])[0, 1]),
            "n_both_sig": int(both.sum()),
            "sign_agreement": float((np.sign(t1[both]) == np.sign(t2[both])).mean()) if both.any() else float("nan")}


def split_half_null(acts: dict[str, np.ndarray], n: int = 200, seed: int = 0) -> np.ndarray:
    """Null for the split-half correlation: noun/verb labels shuffled within each split independently."""
    g = stats.rng(seed)
    x1 = np.concatenate([acts["nouns1"], acts["verbs1"]])
    x2 = np.concatenate([acts["nouns2"], acts["verbs2"]])
    n1, n2 = len(acts["nouns1"]), len(acts["nouns2"])
    draws = [(g.permutation(len(x1)), g.permutation(len(x2))) for _ in range(n)]  # the seeded order of old
    T1 = stats.ttest_ind_perms(x1, n1, np.stack([d[0] for d in draws]))
    T2 = stats.ttest_ind_perms(x2, n2, np.stack([d[1] for d in draws]))
    out = np.empty(n)
    for i in range(n):
        ok = np.isfinite(T1[i]) & np.isfinite(T2[i])
        out[i] = np.corrcoef(T1[i][ok], T2[i][ok])[0, 1]
    return out


@torch.no_grad()
def token_order(lm: LoadedModel, sentence: str, seed: int = 0, site: str = "mlp_act") -> dict:
    """Seed Part 8: activations for a sentence, its tokens presented one by one (alone), and its scrambled
    order (re-ordered back to the original positions), correlated per layer over tokens x neurons."""
    return token_order_many(lm, [sentence], [seed], site)[0]


@torch.no_grad()
def token_order_many(lm: LoadedModel, sentences: list[str], seeds: list[int], site: str = "mlp_act") -> list[dict]:
    """:func:`token_order` for several sentences (sentence i scrambled with ``seeds[i]``). A causal model runs
    them in two passes: every sentence and its scrambled order as rows of one batch (right-padded: a causal model's
    positions cannot see the padding after them), and every token of every sentence alone as rows of another.
    Encoders run each sentence on its own (their positions would see the padding)."""
    tok = lm.tokenizer
    L = lm.adapter.n_layers
    pre, post = special_wrap(tok)  # BERT: [CLS] ... [SEP]; Gemma: <bos> ...; GPT-2: nothing
    ids = [torch.tensor(encode(tok, s), device=lm.device) for s in sentences]
    perms = [torch.randperm(len(x), generator=torch.Generator().manual_seed(seed)).to(lm.device)
             for x, seed in zip(ids, seeds)]

    def run(rows: list[torch.Tensor]) -> torch.Tensor:  # rows of token ids -> (L, rows, T max, N), pre/post cut
        n = max(len(r) for r in rows)
        pad = [torch.cat([r, r.new_full((n - len(r),), int(r[0]))]) for r in rows]  # any token: never seen
        x = torch.stack([torch.cat([torch.tensor(pre, dtype=r.dtype, device=r.device), r,
                                    torch.tensor(post, dtype=r.dtype, device=r.device)]) for r in pad])
        with capture(lm.adapter, [(site, layer) for layer in range(L)]) as rec:
            lm.acts(x, attention_mask=torch.ones_like(x))
        a = torch.stack([rec[(site, layer)] for layer in range(L)]).float()
        return a[:, :, len(pre):len(pre) + n]

    if lm.kind == "causal" and not post:
        both = run([r for x, p in zip(ids, perms) for r in (x, x[p])])  # (L, 2S, T max, N)
        alone = run([t[None] for x in ids for t in x])[:, :, 0]  # (L, sum T, N)
        starts = np.cumsum([0] + [len(x) for x in ids])
        parts = [(both[:, 2 * i, :len(x)], alone[:, starts[i]:starts[i + 1]], both[:, 2 * i + 1, :len(x)])
                 for i, x in enumerate(ids)]
    else:
        parts = [(run([x])[:, 0], run(list(x[:, None]))[:, :, 0], run([x[p]])[:, 0]) for x, p in zip(ids, perms)]
    out = []
    for x, p, (sent, words, scr) in zip(ids, perms, parts):
        scr = scr[:, torch.argsort(p)]  # back in the original order
        r = np.zeros((L, 3))
        for layer in range(L):
            s, w, c = (v[layer].flatten().cpu().numpy() for v in (sent, words, scr))
            r[layer] = np.corrcoef(s, w)[0, 1], np.corrcoef(s, c)[0, 1], np.corrcoef(c, w)[0, 1]
        out.append({"r": r, "n_tokens": int(len(x)), "sentence": sent.cpu().numpy(), "words": words.cpu().numpy(),
                    "scrambled": scr.cpu().numpy(), "scrambled_text": tok.decode(x[p])})
    return out
