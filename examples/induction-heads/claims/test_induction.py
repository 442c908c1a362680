"""Induction heads (Olsson et al. 2022, "In-context learning and induction heads", Transformer Circuits Thread).

On a sequence of random tokens repeated twice, a model with induction heads predicts the second repeat from the
first: a head attends from each token to the token after that token's previous occurrence and copies it.
Three claims, each against a null: (a) the behaviour, (b) the heads' attention, (c) the heads' causal role.

Written as a user of interp-claims would: the plugin gives ``lm``, ``claim_snapshot`` and ``figure_path``; the
measurements use the public probes API (next-token losses, plain and with heads zeroed through
probes.attention's token_losses, ablation_losses and zero_heads; stats; random-init copies; the tokenizer's special
tokens) and nothing else of the repository. (The same finding is also in the catalogue of interp-claims itself,
claims/test_induction.py, with the composition check.)
"""
import json
from pathlib import Path

import matplotlib
import numpy as np
import pytest
import torch

from probes import stats, tokens
from probes.attention import ablation_losses, token_losses  # next-token losses, plain and under edits
from probes.attention import zero_heads  # hooks.intervene edits that zero (layer, head) outputs
from probes.loading import random_copy

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STIM = json.loads((Path(__file__).resolve().parents[1] / "stimuli" / "repeated_tokens_v1.json").read_text())
SOURCE = "Olsson et al. 2022, In-context learning and induction heads"


# ------------------------------------------------------------------------------------------- measurements
def repeated_tokens(lm) -> tuple[torch.Tensor, int]:
    """The stimulus: (n_sequences, prefix + 2 * length) token ids, and the prefix length (Gemma's <bos>)."""
    tok, n, L = lm.tokenizer, STIM["n_sequences"], STIM["length"]
    special = set(tok.all_special_ids) | set(getattr(tok, "added_tokens_decoder", {}))
    size = min(len(tok), lm.model.get_input_embeddings().weight.shape[0])
    vocab = np.array([i for i in range(size) if i not in special])
    r = vocab[stats.rng(STIM["seed"]).integers(0, len(vocab), size=(n, L))]
    prefix = tokens.special_wrap(tok)[0]
    ids = np.concatenate([np.tile(np.array(prefix, dtype=np.int64), (n, 1)), r, r], axis=1)
    return torch.tensor(ids, dtype=torch.long, device=lm.device), len(prefix)


def repeat_losses(lm, ids) -> tuple[np.ndarray, np.ndarray]:
    """Per-sequence mean loss on tokens 2..L of the first and of the second repeat (the first token of a repeat
    cannot be predicted from the sequence). ``token_losses(lm, ids, keep)``: the next-token losses of the last
    ``keep - 1`` tokens, only those positions unembedded (Gemma's vocabulary has 262k tokens)."""
    L = STIM["length"]
    loss = token_losses(lm, ids, 2 * L)  # predictions of the tokens after the prefix's first: r[1:], r[0], r[1:]
    return loss[:, :L - 1].mean(1).numpy(), loss[:, L:].mean(1).numpy()


@torch.no_grad()
def induction_scores(lm, ids, p) -> np.ndarray:
    """(layers, heads): mean attention from each token of the second repeat to the token after its previous
    occurrence (query q, key q - L + 1), over sequences and positions."""
    L = STIM["length"]
    att = torch.stack(lm.model(ids, output_attentions=True).attentions).float()  # (layers, n, heads, T, T)
    q = torch.arange(p + L, p + 2 * L - 1, device=att.device)
    return att[:, :, :, q, q - L + 1].mean((1, 3)).cpu().numpy()


def name(head: tuple[int, int]) -> str:
    return f"L{head[0]}.H{head[1]}"


@pytest.fixture
def stimulus(lm):
    return repeated_tokens(lm)


# ------------------------------------------------------------------------------------------------- claims
@pytest.mark.claim(id="induction.behaviour", family="induction", source=f"{SOURCE}, repeated random tokens",
                   null="random-init copies of the same config (3 seeds); per-sequence sign flips",
                   criterion="second-repeat loss >= 1 nat below the first, by >= 1 nat more than in every "
                             "random-init copy, sign-flip p < 0.01")
def test_second_repeat_is_predicted(lm, stimulus, claim_snapshot, figure_path):
    """The model predicts the second repeat of a random token sequence from the first: its loss there is far
    below its loss on the first repeat, which a randomly initialised copy cannot do."""
    ids, p = stimulus
    first, second = repeat_losses(lm, ids)
    drop = first - second
    null_drops = [float(np.mean(np.subtract(*repeat_losses(random_copy(lm, s), ids)))) for s in STIM["null_seeds"]]
    p_flip = stats.sign_flip_p(drop)
    # the numbers first (a broken claim's are compared with its snapshot too), with a 95% interval from
    # resampling the sequences: a new version's move is significant only when it leaves that interval
    claim_snapshot({"loss_first": float(first.mean()), "loss_second": float(second.mean()),
                    "loss_drop": float(drop.mean()), "null_loss_drop": null_drops, "p_sign_flip": p_flip},
                   effect=["loss_drop"], intervals={"loss_drop": stats.mean_ci(drop)})
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.bar(["first repeat", "second repeat"], [first.mean(), second.mean()], color=["#999", "#c44"])
    ax.set_ylabel("next-token loss (nats)")
    ax.set_title(f"{lm.spec.id}: loss drop {drop.mean():.2f} nats (random-init copies: "
                 f"{', '.join(f'{d:.2f}' for d in null_drops)})", fontsize=9)
    fig.tight_layout()
    fig.savefig(figure_path("induction.behaviour"), dpi=120)
    plt.close(fig)
    assert drop.mean() >= 1.0, f"second-repeat loss only {drop.mean():.2f} nats below the first (need >= 1)"
    assert drop.mean() >= max(null_drops) + 1.0, \
        f"loss drop {drop.mean():.2f} not >= 1 nat above the random-init copies' ({max(null_drops):.2f})"
    assert p_flip < 0.01, f"sign-flip p = {p_flip:.3g} over {len(drop)} sequences"


@pytest.mark.claim(id="induction.scores", family="induction", source=f"{SOURCE}, induction score (prefix matching)",
                   null="the same score in random-init copies of the same config (3 seeds), every head",
                   criterion="at least one head puts >= 40% of its attention on the token after the previous "
                             "occurrence, above every head of every random-init copy")
def test_some_heads_attend_to_the_next_token_of_the_previous_occurrence(lm, stimulus, claim_snapshot, figure_path):
    """Some heads attend from each token of the second repeat to the token that followed its previous occurrence
    far more than any head of a randomly initialised copy."""
    ids, p = stimulus
    score = induction_scores(lm, ids, p)
    null_max = max(float(induction_scores(random_copy(lm, s), ids, p).max()) for s in STIM["null_seeds"])
    order = np.argsort(-score, axis=None)
    top = [np.unravel_index(i, score.shape) for i in order[:5]]
    heads = [name(h) for h in zip(*np.nonzero((score >= STIM["induction_threshold"]) & (score > null_max)))]
    claim_snapshot({"induction_heads": heads, "top_heads": [{"head": name(h), "score": float(score[h])} for h in top],
                    "top_score": float(score.max()), "null_max_score": null_max},
                   effect=["top_score", "top_heads[].score"],
                   identity=["induction_heads", "top_heads[].head"])
    fig, ax = plt.subplots(figsize=(max(4, score.shape[1] * 0.35 + 2), max(3, score.shape[0] * 0.22 + 1.5)))
    im = ax.imshow(score, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(f"{lm.spec.id}: induction score (random-init max {null_max:.2f})", fontsize=9)
    fig.colorbar(im, ax=ax, label="attention to the token after the previous occurrence")
    fig.tight_layout()
    fig.savefig(figure_path("induction.scores"), dpi=120)
    plt.close(fig)
    assert heads, (f"no head has an induction score >= {STIM['induction_threshold']} above the random-init copies' "
                   f"maximum {null_max:.3f} (top: {name(top[0])} {score.max():.3f})")


@pytest.mark.claim(id="induction.ablation", family="induction", source=f"{SOURCE}, head ablation",
                   null="as many heads drawn at random (20 seeded draws): permutation p-value",
                   criterion="zeroing the top-k induction heads (k = heads at >= 40%, 1 to a quarter of all heads) "
                             "raises the second-repeat loss more than every random draw (p < 0.05)")
def test_ablating_induction_heads_hurts_the_second_repeat(lm, stimulus, claim_snapshot, figure_path):
    """Zeroing the heads with the highest induction scores raises the loss on the second repeat more than zeroing
    as many random heads."""
    ids, p = stimulus
    score = induction_scores(lm, ids, p)
    n_all = score.size
    k = int(np.clip((score >= STIM["induction_threshold"]).sum(), 1, max(1, n_all // 4)))
    top = [tuple(int(v) for v in np.unravel_index(i, score.shape)) for i in np.argsort(-score, axis=None)[:k]]
    g = stats.rng(STIM["seed"])
    draws = [[tuple(int(v) for v in np.unravel_index(i, score.shape)) for i in g.choice(n_all, k, replace=False)]
             for _ in range(STIM["random_head_draws"])]
    # second-repeat losses (sequences, positions) unedited, with the top heads zeroed and with each draw's: one
    # unedited pass, then each edited pass from its first edited layer (the layers below compute the same numbers)
    base_tok, top_tok, *null_tok = ablation_losses(lm, ids, STIM["length"],
                                                   [{}, zero_heads(top)] + [zero_heads(d) for d in draws])
    base = float(base_tok.mean())
    rise = float(top_tok.mean()) - base
    per_sequence_rise = (top_tok.mean(1) - base_tok.mean(1)).numpy()  # for the interval: the sequences resampled
    null = [float(t.mean()) - base for t in null_tok]
    p_perm = stats.perm_p(float(rise), np.array(null))
    claim_snapshot({"k": k, "ablated_heads": [name(h) for h in top], "loss_second": float(base),
                    "loss_rise": float(rise), "null_rise_max": max(null), "null_rise_median": float(np.median(null)),
                    "p_permutation": p_perm},
                   effect=["loss_rise"], identity=["ablated_heads"],
                   intervals={"loss_rise": stats.mean_ci(per_sequence_rise)})
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.hist(null, bins=15, color="#999", label=f"{k} random heads ({len(null)} draws)")
    ax.axvline(rise, color="#c44", lw=2, label=f"top {k} induction heads")
    ax.set_xlabel("rise of the second-repeat loss when zeroed (nats)")
    ax.set_ylabel("random draws")
    ax.set_title(f"{lm.spec.id}: ablation, permutation p = {p_perm:.3f}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(figure_path("induction.ablation"), dpi=120)
    plt.close(fig)
    assert p_perm < 0.05, (f"zeroing the top {k} induction heads raises the loss by {rise:.3f}, not above the random "
                           f"draws (max {max(null):.3f}, p = {p_perm:.3f})")
