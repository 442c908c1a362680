"""Write a perturbed copy of a registry model: a stand-in "new version" to rehearse the drill with.

    python scripts/perturb.py gpt2-organism /tmp/gpt2-organism-v2 --noise 0.02
    python scripts/perturb.py gpt2-organism /tmp/gpt2-organism-damaged --noise 1.0
    python scripts/perturb.py smollm2-135m /tmp/smollm2-surgery --zero-heads 3.4,5.1,7.0   # heads removed
    python scripts/perturb.py smollm2-135m /tmp/smollm2-ioi97 --scale-heads 20.0,23.3,29.1 0.97  # a known 3% change

Every weight is multiplied by (1 + noise x N(0, 1)) (seeded); ``--zero-heads L.H,...`` instead (or as well)
removes attention heads by zeroing their columns of the attention output projection (o_proj / c_proj), and
``--scale-heads L.H,... FACTOR`` multiplies those heads' outputs by FACTOR: known changes to rehearse with (how
small a change does a claim notice?). The copy is saved as safetensors with the
model's tokenizer. Then: ``pytest claims/ --models gpt2-organism,gpt2-organism=/tmp/gpt2-organism-v2``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from probes.loading import load  # noqa: E402
from fixtures.models import resolve  # noqa: E402


def perturb(model: torch.nn.Module, noise: float, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1 + noise * torch.randn(p.shape, generator=g, dtype=p.dtype))


def scale_heads(lm, heads: list[tuple[int, int]], factor: float) -> None:
    """Multiply each head's slice of its layer's attention output projection (its contribution to the residual)
    by ``factor`` (0: the head removed)."""
    hd = lm.adapter.head_dim
    with torch.no_grad():
        for layer, h in heads:
            mod, _ = lm.adapter.module("heads", layer)
            cols = slice(h * hd, (h + 1) * hd)
            if isinstance(mod, torch.nn.Linear):
                mod.weight[:, cols] *= factor
            else:  # GPT-2's Conv1D stores the transposed weight (in, out)
                mod.weight[cols, :] *= factor


def zero_heads(lm, heads: list[tuple[int, int]]) -> None:
    scale_heads(lm, heads, 0.0)


def parse_heads(text: str, lm, flag: str, error) -> list[tuple[int, int]]:
    """``"3.4,5.1"`` -> [(3, 4), (5, 1)], checked against the model's layers and heads (``error``: the parser's)."""
    try:
        heads = [tuple(int(x) for x in h.split(".")) for h in text.split(",") if h.strip()]
    except ValueError:
        error(f"{flag} {text!r}: give layer.head pairs, e.g. 3.4,5.1")
    bad = [h for h in heads if len(h) != 2 or not (0 <= h[0] < lm.adapter.n_layers and 0 <= h[1] < lm.adapter.n_heads)]
    if bad:
        error(f"{flag}: {bad} not in {lm.adapter.n_layers} layers x {lm.adapter.n_heads} heads")
    return heads


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a registry id (or folder) to copy")
    ap.add_argument("out", help="the folder to write (must not exist)")
    ap.add_argument("--noise", type=float, default=None,
                    help="relative weight noise (default 0.02; 0 with --zero-heads)")
    ap.add_argument("--zero-heads", default="", metavar="L.H,...",
                    help="heads to remove (zero their columns of the attention output projection)")
    ap.add_argument("--scale-heads", nargs=2, default=None, metavar=("L.H,...", "FACTOR"),
                    help="multiply these heads' outputs (their columns of the attention output projection) by FACTOR")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    out = Path(a.out)
    if out.exists():
        ap.error(f"{out} exists; give a new folder")
    factor = None
    if a.scale_heads is not None:
        try:
            factor = float(a.scale_heads[1])
        except ValueError:
            ap.error(f"--scale-heads: FACTOR {a.scale_heads[1]!r} is not a number (e.g. 0.97)")
    lm = load(resolve(a.model), device="cpu")
    heads = parse_heads(a.zero_heads, lm, "--zero-heads", ap.error)
    scaled = parse_heads(a.scale_heads[0], lm, "--scale-heads", ap.error) if a.scale_heads else []
    noise = a.noise if a.noise is not None else (0.0 if heads or scaled else 0.02)
    if noise:
        perturb(lm.model, noise, a.seed)
    zero_heads(lm, heads)
    if scaled:
        scale_heads(lm, scaled, factor)
    lm.model.save_pretrained(out, safe_serialization=True)
    lm.tokenizer.save_pretrained(out)
    what = [f"every weight x (1 + {noise} N(0,1)), seed {a.seed}"] if noise else []
    what += [f"heads {', '.join(f'{layer}.{h}' for layer, h in heads)} removed (o_proj columns zeroed)"] \
        if heads else []
    what += [f"heads {', '.join(f'{layer}.{h}' for layer, h in scaled)} x {factor:g} (o_proj columns scaled)"] \
        if scaled else []
    print(f"wrote {out} ({a.model}, {'; '.join(what) or 'unchanged'})")


if __name__ == "__main__":
    main()
