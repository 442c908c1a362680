"""The benchmark, one run, side by side: the seed's one-forward-per-component loop, TransformerLens's patching
function on the same HF model, and this suite's batched patching; every row with the ratio its FLOPs allow.

    python benchmarks/bench_patching.py [--prompts 8] [--tokens 14] [--rows heads,silencing,resid,neurons]
                                        [--repeat 2] [--smollm2] [--agreement]

On a randomly initialised model of gpt2's full config (fixtures/configs/gpt2.json), 8 prompts of equal length
on the CPU (IOI-shaped: clean and corrupted prompts share every token before S2), it times

* head patching (every head, all positions; TransformerLens: ``get_act_patch_attn_head_out_all_pos``),
* head silencing (every head's output permuted; TransformerLens has no patching function for it, so its row is
  a ``run_with_hooks`` loop over the bridge's ``hook_z``),
* residual patching over layer x position, all prompts at once (TransformerLens: ``get_act_patch_resid_pre``),
* one layer's neuron patching (TransformerLens has none per neuron: a ``run_with_hooks`` loop over
  ``mlp.hook_post``),

and prints times, ratios and the largest difference from the loop. "loop" is the seed's method exactly: one
forward of the whole model per component (``outEM = model(tokensEM)``: logits at every position), as
TransformerLens's patching functions also run; for head patching a lean loop (no LM head, two unembedding rows) is
timed too, to show what the batching gains by itself. TransformerLens (``pip install
transformer-lens``, optional: the ``bench`` extra) wraps the very same HF model (``TransformerBridge``, raw HF
weights, eager attention). ``--smollm2`` then times ours vs the loop on the real SmolLM2-135M (30 layers x 9
heads) for head patching and one layer's neuron patching. ``--agreement`` adds how well attribution patching (the
screen used for head silencing and neurons on a CPU) tracks exact neuron patching on the trained organisms.

**The FLOP limit** beside each ratio: the floating-point operations each method must do, counted for that config
and prompt set from the (rows x positions x layers) it runs through the blocks (2 x the block's parameters per
token and layer, plus attention over the context; ours' last block runs its output projection and MLP at the last
position only, and a head edit's block its output projection and MLP only) and the positions it unembeds (2 x
d_model x vocabulary each; ours reads two rows of the unembedding at the last position, negligible), including
ours' setup passes (clean and corrupted activations; the prefix cache is cut from the latter's). loop/ours can
exceed it: the loop's many small passes use the CPU worse than ours' large batched ones; a ratio far below it is
time lost to something other than arithmetic.

**Timing**: each method runs ``--repeat`` times (default 2), the methods of a row taking turns, and its fastest
run is shown: the machines this runs on are shared, and a slow spell then lands on one run of each method rather
than on every run of one. Loops whose components each cost one whole forward are timed on a regular subset and
scaled to all: every 3rd head (gpt2 config), every 6th head (SmolLM2), every 4th prompt (residual loop), 256
neurons (128 on SmolLM2); the largest difference is taken over that subset.

Where the speed comes from (probes.families.ioi, probes.families.neuron): components of one layer are edited in
copies of the prompt batch in one forward pass; the pass starts at the edited layer from the cached residual stream (for
heads, at the edited layer's output projection: its attention is the clean pass's); the positions before the
first difference come from a key/value cache of the shared prefix, cut from the clean or corrupted pass that is
run anyway (residual patching there is a no-op and is not run at all); the last block runs its attention output
projection and its MLP at the last position only (keys and values at every position); only the target - foil
direction of the unembedding is read at the last position.
"""
from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from fixtures.loaders import stimuli  # noqa: E402
from probes.families.ioi import analysis as ioi  # noqa: E402
from probes.families.neuron import analysis as neuron  # noqa: E402
from probes.tokens import first_difference  # noqa: E402
from tests.conftest import random_lm  # noqa: E402


def prompts(vocab: int, P: int, T: int, seed: int = 0) -> ioi.PromptSet:
    """IOI-shaped random prompts: A at 1, B at 3, S2 at T-4 (B in base, A in source)."""
    g = torch.Generator().manual_seed(seed)
    base = torch.randint(1000, vocab - 1, (P, T), generator=g)
    a, b = torch.randint(1000, vocab - 1, (P,), generator=g), torch.randint(1000, vocab - 1, (P,), generator=g)
    base[:, 1], base[:, 3], base[:, T - 4] = a, b, b
    source = base.clone()
    source[:, T - 4] = a
    return ioi.PromptSet(base, source, a, b, [""] * P, [("A", "B")] * P)


REPEAT = 2  # --repeat


def race(**fns):
    """Each method run REPEAT times, the methods taking turns (a slow spell of a shared machine then slows one run
    of each rather than every run of one); per method its first output and its fastest time."""
    out, best = {}, {}
    for _ in range(REPEAT):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            o = fn()
            t = time.perf_counter() - t0
            out.setdefault(name, o)
            best[name] = min(best.get(name, t), t)
    return out, best


def subset(items: list, every: int):
    """Every ``every``-th item, for a loop whose items each cost the same (one whole forward): (the items, their
    positions in ``items``, the factor that scales the loop's time to all of them)."""
    pos = list(range(0, len(items), every))
    return [items[i] for i in pos], pos, len(items) / len(pos)


class Flops:
    """FLOPs of passes through a model (multiply-adds count 2): ``blocks(rows, new, layers, ctx)`` for ``rows``
    sequences of ``new`` positions through ``layers`` blocks attending to ``ctx`` positions in all (the prefix
    cache's included); ``head(positions)`` for unembedding that many positions over the whole vocabulary."""

    def __init__(self, lm):
        from probes.adapters import _get_path
        ad = lm.adapter

        def weights(module):
            return sum(p.numel() for n, p in module.named_parameters() if "norm" not in n and "ln" not in n)
        self.block = weights(ad.block(0))
        # what ours' last block runs at the last position only (Adapter.body(last_only=True)): the attention
        # output projection and the MLP
        self.tail = weights(_get_path(ad.block(0), ad.spec.heads)) + \
            weights(_get_path(ad.block(0), ad.spec.down.rpartition(".")[0]))
        # what ours' edited block does not run for head edits (Adapter.attention_output): queries, keys, values
        self.qkv = weights(_get_path(ad.block(0), ad.spec.heads.rpartition(".")[0])) - \
            weights(_get_path(ad.block(0), ad.spec.heads))
        self.D, self.L = ad.d_model, ad.n_layers
        self.V = lm.model.get_output_embeddings().weight.shape[0]
        self.width = ad.n_heads * ad.head_dim

    def blocks(self, rows, new, layers, ctx=None, last_only=False, given_heads=False):
        """``last_only``: the last of these blocks runs its output projection and MLP at the last position only.
        ``given_heads``: the first of them takes its per-head outputs as given (no queries, keys, values or
        attention), as ours' head edits do."""
        ctx = new if ctx is None else ctx
        attn = 4 * self.width * (ctx - new / 2)  # scores and weighted values, causal: the mean context
        cut = rows * (new - 1) * 2 * self.tail if last_only and layers else 0
        given = rows * new * (2 * self.qkv + attn) if given_heads and layers else 0
        return rows * new * layers * (2 * self.block + attn) - cut - given

    def head(self, positions):
        return positions * 2 * self.D * self.V

    def full(self, rows, T, logits=True):
        """One full forward of ``rows`` x T tokens; with the seed's logits at every position."""
        return self.blocks(rows, T, self.L) + (self.head(rows * T) if logits else 0)


ROWS: list[dict] = []  # every row printed, for --json
JSON: list = [None, 0.0]  # --json FILE and the start time (the file is rewritten after every row)
COMPLETE = [False]        # whether every requested row was measured


def row(name, t_loop, t_tl, t_ours, d_tl, d_ours, lim_loop, lim_tl):
    ROWS.append({"row": name, "loop_s": t_loop, "tl_s": t_tl, "ours_s": t_ours, "loop_over_ours": t_loop / t_ours,
                 "loop_limit": lim_loop, "tl_over_ours": t_tl / t_ours if t_tl is not None else None,
                 "tl_limit": lim_tl if t_tl is not None else None, "max_diff_tl": d_tl, "max_diff_ours": d_ours})
    write_json(*JSON)
    tl = f"{t_tl:8.2f}s" if t_tl is not None else "       -"
    r_tl = f"{t_tl / t_ours:5.1f}x (limit {lim_tl:5.1f}x)" if t_tl is not None else " " * 20
    dtl = f"{d_tl:.1e}" if d_tl is not None else "-"
    print(f"{name:<26} loop {t_loop:7.2f}s  TL {tl}  ours {t_ours:6.2f}s  "
          f"loop/ours {t_loop / t_ours:5.1f}x (limit {lim_loop:5.1f}x)  TL/ours {r_tl}  "
          f"max|diff| TL {dtl}, ours {d_ours:.1e}", flush=True)


def bridge(lm):
    """TransformerLens's TransformerBridge around the same HF model (None if TransformerLens is missing)."""
    try:
        from transformer_lens.model_bridge import TransformerBridge
    except ImportError:
        print("(TransformerLens not installed: `pip install transformer-lens`; its columns are left out)")
        return None
    from transformer_lens import patching
    patching.tqdm = lambda it, **kw: it  # its per-index progress bars would bury the table
    folder = Path(tempfile.mkdtemp()) / "model"
    lm.model.config.save_pretrained(folder)
    # a copy with the same weights: the bridge rewires the modules it wraps (with it on the very same model,
    # transformers 5.24's prefix-cached passes of ours gave wrong numbers, off by 1.4 logits)
    return TransformerBridge.boot_transformers(str(folder), hf_model=copy.deepcopy(lm.model), device="cpu")


@torch.no_grad()
def main() -> None:
    global REPEAT
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=14)
    ap.add_argument("--neuron-layer", type=int, default=6)
    ap.add_argument("--smollm2", action="store_true", help="also time ours vs the loop on SmolLM2-135M")
    ap.add_argument("--agreement", action="store_true",
                    help="also print attribution vs exact neuron patching on the trained organisms")
    ap.add_argument("--repeat", type=int, default=REPEAT,
                    help=f"runs of each method, taking turns; its fastest is shown (default {REPEAT})")
    ap.add_argument("--rows", default="heads,silencing,resid,neurons",
                    help="which gpt2-config rows to time (comma-separated; default all)")
    ap.add_argument("--json", default=None, metavar="FILE",
                    help="also write the rows with the command, date, machine and package versions to FILE (the "
                         "documentation's performance page is generated from it: python scripts/docs.py)")
    a = ap.parse_args()
    REPEAT = a.repeat
    started = time.time()
    JSON[:] = [a.json, started]
    rows = set(a.rows.split(","))
    lm = random_lm("gpt2", n_layers=12)
    ad = lm.adapter
    s = prompts(lm.model.config.vocab_size, a.prompts, a.tokens)
    L, H = ad.n_layers, ad.n_heads
    heads = ioi.all_heads(lm)
    print(f"gpt2 full config (random init), {a.prompts} prompts x {a.tokens} tokens, {L * H} heads, "
          f"{torch.get_num_threads()} threads; each method's fastest of {REPEAT} runs, the methods taking turns; "
          "limit: the ratio the FLOPs of the two methods allow", flush=True)
    tl = bridge(lm)

    def metric(logits):  # per-prompt IOI score of the patched base run
        last = logits[:, -1]
        return last.gather(1, s.a_ids[:, None])[:, 0] - last.gather(1, s.b_ids[:, None])[:, 0]

    if "heads" in rows:
        bench_heads(lm, s, heads, tl, metric)
    if "silencing" in rows:
        bench_silencing(lm, s, heads, tl, metric)
    if "resid" in rows:
        bench_resid(lm, s, a.prompts, a.tokens, tl, metric)
    if "neurons" in rows:
        bench_neurons(lm, s, a.prompts, a.neuron_layer, tl)
    if a.smollm2:
        bench_smollm2(a.prompts, a.tokens)
    if a.agreement:
        agreement()
    COMPLETE[0] = True
    write_json(a.json, started)
    if a.json:
        print(f"wrote {a.json}")


def write_json(path: str | None, started: float) -> None:
    """--json: the rows measured so far, with the command, date, machine and package versions (written after every
    row, so that an interrupted run keeps what it measured)."""
    if path:
        from probes.history import machine, packages
        pk = packages()
        try:
            from importlib import metadata
            pk["transformer-lens"] = metadata.version("transformer-lens")
        except Exception:  # noqa: BLE001 - optional
            pass
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps({
            "command": "python benchmarks/bench_patching.py " + " ".join(sys.argv[1:]),
            "when": time.strftime("%Y-%m-%d %H:%M", time.localtime(started)), "wall_s": round(time.time() - started, 1),
            "threads": torch.get_num_threads(), "machine": machine(), "packages": pk, "rows": ROWS,
            "complete": COMPLETE[0]}, indent=1) + "\n")


def head_flops(lm, P, T, prefix):
    """(loop, ours): every head edited at every position after ``prefix``, the IOI score read at the last one."""
    F, L, H = Flops(lm), lm.adapter.n_layers, lm.adapter.n_heads
    loop = L * H * F.full(P, T)
    ours = F.full(P, T, logits=False) + \
        sum(F.blocks(H * P, T - prefix, L - layer, ctx=T, last_only=True, given_heads=True) for layer in range(L))
    return loop, ours


def bench_heads(lm, s, heads, tl, metric) -> None:
    L, H = lm.adapter.n_layers, lm.adapter.n_heads
    P, T = s.base.shape
    first = first_difference(s.base, s.source)
    src = ioi.head_acts(lm, s.source)
    pay = lambda layer, h: src[layer, :, :, h, :]  # noqa: E731
    sub, pos, scale = subset(heads, 3)
    fns = dict(loop=lambda: ioi.head_edit_scores_loop(lm, s, sub, pay),
               lean=lambda: ioi.head_edit_scores_loop(lm, s, sub, pay, lean=True),
               ours=lambda: ioi.head_edit_scores(lm, s, heads, pay, prefix=first))
    if tl is not None:
        from transformer_lens import patching
        _, src_cache = tl.run_with_cache(s.source)
        fns["tl"] = lambda: patching.get_act_patch_attn_head_out_all_pos(tl, s.base, src_cache, metric,
                                                                        reduce="none").values.reshape(L * H, -1)
    out, t = race(**fns)
    loop = out["loop"]
    d_tl = float((out["tl"][pos] - loop).abs().max()) if tl is not None else None
    f_loop, f_ours = head_flops(lm, P, T, first)
    row("head patching", t["loop"] * scale, t.get("tl"), t["ours"], d_tl,
        float((out["ours"][pos] - loop).abs().max()), f_loop / f_ours, f_loop / f_ours)
    f_lean = L * H * Flops(lm).full(P, T, logits=False)
    t_lean = t["lean"] * scale
    print(f"{'  (a lean loop)':<26} one forward per head without the LM head, two unembedding rows read: "
          f"{t_lean:.2f}s, lean loop/ours {t_lean / t['ours']:.1f}x (limit {f_lean / f_ours:.1f}x), "
          f"max|diff| {float((out['lean'] - loop).abs().max()):.1e}", flush=True)


def bench_silencing(lm, s, heads, tl, metric) -> None:
    """head silencing (permutation: every position changes, no shared prefix)"""
    P, T = s.base.shape
    acts = ioi.head_acts(lm, s.base)
    pay = ioi.permutation_payload(acts, 0, 0)
    sub, pos, scale = subset(heads, 3)
    fns = dict(loop=lambda: ioi.head_edit_scores_loop(lm, s, sub, pay),
               ours=lambda: ioi.head_edit_scores(lm, s, heads, pay))
    if tl is not None:
        def tl_silencing():
            out = []
            for layer, h in sub:
                rep = pay(layer, h)

                def hook(z, hook, h=h, rep=rep):
                    z[:, :, h, :] = rep
                    return z
                lg = tl.run_with_hooks(s.base, fwd_hooks=[(f"blocks.{layer}.attn.hook_z", hook)])
                out.append(metric(lg))
            return torch.stack(out)
        fns["tl"] = tl_silencing
    out, t = race(**fns)
    loop = out["loop"]
    d_tl = float((out["tl"] - loop).abs().max()) if tl is not None else None
    f_loop, f_ours = head_flops(lm, P, T, 0)
    row("head silencing (all pos)", t["loop"] * scale, t["tl"] * scale if tl is not None else None, t["ours"], d_tl,
        float((out["ours"][pos] - loop).abs().max()), f_loop / f_ours, f_loop / f_ours)


def cases_of(s, n_prompts: int) -> list:
    return [neuron.Case(f"p{i}", s.source[i:i + 1], s.base[i:i + 1], int(s.a_ids[i]), int(s.b_ids[i]))
            for i in range(n_prompts)]


def bench_resid(lm, s, n_prompts, n_tokens, tl, metric) -> None:
    """residual patching, layer x position: the loop one case and one (layer, position) at a time, TransformerLens
    all prompts per (layer, position), ours all prompts and positions of a layer in one resumed pass"""
    L, F, T = lm.adapter.n_layers, Flops(lm), n_tokens
    cases = cases_of(s, n_prompts)
    clean_c = np.array([neuron.logit_diffs(lm, c) for c in cases])

    def raw(r, rows=slice(None)):  # restoration -> patched logit difference (what TransformerLens's metric returns)
        c = clean_c[rows]
        return r * (c[:, 0] - c[:, 1])[:, None, None] + c[:, 1][:, None, None]
    sub, pos, scale = subset(list(range(n_prompts)), 4)  # the loop on every 4th prompt, scaled to all
    fns = dict(loop=lambda: np.stack([neuron.layer_position_patching_loop(lm, cases[i])[:L] for i in sub]),
               ours=lambda: neuron.layer_position_patching_many(lm, cases)[:, :L])
    if tl is not None:
        from transformer_lens import patching
        _, clean_cache = tl.run_with_cache(s.source)
        fns["tl"] = lambda: patching.get_act_patch_resid_pre(tl, s.base, clean_cache, metric, reduce="none")
    out, t = race(**fns)
    loop = raw(out["loop"], pos)
    t_loop, t_ours, t_tl = t["loop"] * scale, t["ours"], t.get("tl")
    d_tl = float(np.abs(out["tl"].values.reshape(L, n_tokens, -1).permute(2, 0, 1).numpy()[pos] - loop).max()) \
        if tl is not None else None
    P = n_prompts
    first = first_difference(s.base, s.source)
    n = T - first
    f_loop = P * (L + 1) * T * F.full(1, T) + P * F.full(2, T, logits=False)  # + each case's clean/corrupted
    f_tl = L * T * F.full(P, T)
    f_ours = P * F.full(2, T, logits=False) + 2 * F.full(P, T, logits=False) + \
        sum(F.blocks(P * n, n, L - layer, ctx=T, last_only=True) for layer in range(L))
    row("resid patching (L x pos)", t_loop, t_tl, t_ours, d_tl, float(np.abs(raw(out["ours"])[pos] - loop).max()),
        f_loop / f_ours, f_tl / f_ours)


def neuron_flops(lm, T, first, layer, n):
    """(per-neuron loop, ours) for ``n`` neurons of ``layer`` patched at every position of one case."""
    F, L = Flops(lm), lm.adapter.n_layers
    loop = n * F.full(1, T)
    ours = 4 * F.full(1, T, logits=False) + F.blocks(n, T - first, L - layer, ctx=T, last_only=True)
    return loop, ours


def bench_neurons(lm, s, n_prompts, layer, tl) -> None:
    """one layer's neuron patching (first case; all 3072 neurons of the layer)"""
    c = cases_of(s, n_prompts)[0]
    N, T = lm.adapter.d_mlp, c.clean.shape[1]
    idx = np.arange(N)
    n_loop = 256  # the loops are timed on 256 neurons and scaled to the layer
    fns = dict(loop=lambda: neuron.neuron_patching_loop(lm, c, layer, idx[:n_loop]),
               ours=lambda: neuron.neuron_patching(lm, c, layer))
    if tl is not None:
        _, cc = tl.run_with_cache(c.clean)
        clean_post = cc[f"blocks.{layer}.mlp.hook_post"]
        cl, co = neuron.logit_diffs(lm, c)

        def tl_neurons():
            out = np.empty(n_loop)
            for n in range(n_loop):
                def hook(act, hook, n=n):
                    act[:, :, n] = clean_post[:, :, n]
                    return act
                lg = tl.run_with_hooks(c.corrupted, fwd_hooks=[(f"blocks.{layer}.mlp.hook_post", hook)])
                out[n] = float(lg[0, -1, c.target] - lg[0, -1, c.foil])
            return neuron.restoration(out, cl, co)
        fns["tl"] = tl_neurons
    out, t = race(**fns)
    loop, ours = out["loop"], out["ours"]
    t_loop, t_ours = t["loop"] * N / n_loop, t["ours"]
    t_tl = t["tl"] * N / n_loop if tl is not None else None
    d_tl = float(np.abs(out["tl"] - loop).max()) if tl is not None else None
    print(f"(neuron loops timed on {n_loop} neurons and scaled to the layer's {N})")
    f_loop, f_ours = neuron_flops(lm, T, first_difference(c.clean, c.corrupted), layer, N)
    row(f"neuron patching (L{layer})", t_loop, t_tl, t_ours, d_tl, float(np.abs(ours[:n_loop] - loop).max()),
        f_loop / f_ours, f_loop / f_ours)


def bench_smollm2(n_prompts, n_tokens) -> None:
    from probes.loading import load
    from fixtures.models import resolve
    sm = load(resolve("smollm2-135m"), device="cpu")
    s2 = prompts(sm.model.config.vocab_size, n_prompts, n_tokens)
    hs = ioi.all_heads(sm)
    src = ioi.head_acts(sm, s2.source)
    pay = lambda layer, h: src[layer, :, :, h, :]  # noqa: E731
    sub, pos, scale = subset(hs, 6)
    first = first_difference(s2.base, s2.source)
    out, t = race(loop=lambda: ioi.head_edit_scores_loop(sm, s2, sub, pay),
                  ours=lambda: ioi.head_edit_scores(sm, s2, hs, pay, prefix=first))
    print(f"SmolLM2-135M, {len(hs)} heads (loop timed on {len(sub)} and scaled)")
    f_loop, f_ours = head_flops(sm, n_prompts, n_tokens, first)
    row("SmolLM2 head patching", t["loop"] * scale, None, t["ours"], None,
        float((out["ours"][pos] - out["loop"]).abs().max()), f_loop / f_ours, None)
    c2 = neuron.Case("s", s2.source[:1], s2.base[:1], int(s2.a_ids[0]), int(s2.b_ids[0]))
    N2 = sm.adapter.d_mlp
    out, t = race(loop=lambda: neuron.neuron_patching_loop(sm, c2, 15, np.arange(128)),
                  ours=lambda: neuron.neuron_patching(sm, c2, 15))
    print(f"(loop timed on 128 of {N2} neurons and scaled)")
    f_loop, f_ours = neuron_flops(sm, n_tokens, first_difference(c2.clean, c2.corrupted), 15, N2)
    row("SmolLM2 neuron patching", t["loop"] * N2 / 128, None, t["ours"], None,
        float(np.abs(out["ours"][:128] - out["loop"]).max()), f_loop / f_ours, None)


def agreement() -> None:
    """Attribution patching (one forward and one backward pass) vs exact patching of every neuron of every layer,
    on the trained organisms and the seed's size cases."""
    from probes.loading import load
    from fixtures.models import resolve
    print("attribution vs exact neuron patching on the trained organisms (all neurons of all layers):")
    stim = stimuli("neuron_v1")["seed"]
    for name in ("gpt2-organism", "gpt-neo-organism"):
        lm = load(resolve(name), device="cpu")
        for c in stim:
            case = neuron.make_case(lm, c["name"], c["clean"], c["corrupted"], c["target"], c["foil"])
            attr = neuron.attribution_patching(lm, case)
            exact = np.stack([neuron.neuron_patching(lm, case, layer) for layer in range(lm.adapter.n_layers)])
            r = np.corrcoef(attr.ravel(), exact.ravel())[0, 1]
            hits = [len(set(np.argsort(-exact[layer])[:10]) & set(np.argsort(-attr[layer])[:10]))
                    for layer in range(lm.adapter.n_layers)]
            print(f"  {name:17s} {c['name']:11s} r(attribution, exact) = {r:.3f}; exact top-10 found in the "
                  f"attribution top-10, per layer: {hits}")


if __name__ == "__main__":
    main()
