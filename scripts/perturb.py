"""Write a perturbed copy of a registry model: a stand-in "new version" to rehearse the drill with.

    python scripts/perturb.py gpt2-organism /tmp/gpt2-organism-v2 --noise 0.02
    python scripts/perturb.py gpt2-organism /tmp/gpt2-organism-damaged --noise 1.0
    python scripts/perturb.py smollm2-135m /tmp/smollm2-surgery --zero-heads 3.4,5.1,7.0   # heads removed

Every weight is multiplied by (1 + noise x N(0, 1)) (seeded); ``--zero-heads L.H,...`` instead (or as well)
removes attention heads by zeroing their columns of the attention output projection (o_proj / c_proj), a
known change to rehearse with. The copy is saved as safetensors with the
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


def zero_heads(lm, heads: list[tuple[int, int]]) -> None:
    """Zero each head's slice of its layer's attention output projection (its contribution to the residual)."""
    hd = lm.adapter.head_dim
    with torch.no_grad():
        for layer, h in heads:
            mod, _ = lm.adapter.module("heads", layer)
            cols = slice(h * hd, (h + 1) * hd)
            if isinstance(mod, torch.nn.Linear):
                mod.weight[:, cols] = 0
            else:  # GPT-2's Conv1D stores the transposed weight (in, out)
                mod.weight[cols, :] = 0


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a registry id (or folder) to copy")
    ap.add_argument("out", help="the folder to write (must not exist)")
    ap.add_argument("--noise", type=float, default=None,
                    help="relative weight noise (default 0.02; 0 with --zero-heads)")
    ap.add_argument("--zero-heads", default="", metavar="L.H,...",
                    help="heads to remove (zero their columns of the attention output projection)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    out = Path(a.out)
    if out.exists():
        ap.error(f"{out} exists; give a new folder")
    lm = load(resolve(a.model), device="cpu")
    try:
        heads = [tuple(int(x) for x in h.split(".")) for h in a.zero_heads.split(",") if h.strip()]
    except ValueError:
        ap.error(f"--zero-heads {a.zero_heads!r}: give layer.head pairs, e.g. 3.4,5.1")
    bad = [h for h in heads if len(h) != 2 or not (0 <= h[0] < lm.adapter.n_layers and 0 <= h[1] < lm.adapter.n_heads)]
    if bad:
        ap.error(f"--zero-heads: {bad} not in {lm.adapter.n_layers} layers x {lm.adapter.n_heads} heads")
    noise = a.noise if a.noise is not None else (0.0 if heads else 0.02)
    if noise:
        perturb(lm.model, noise, a.seed)
    zero_heads(lm, heads)
    lm.model.save_pretrained(out, safe_serialization=True)
    lm.tokenizer.save_pretrained(out)
    what = [f"every weight x (1 + {noise} N(0,1)), seed {a.seed}"] if noise else []
    what += [f"heads {', '.join(f'{l}.{h}' for l, h in heads)} removed (o_proj columns zeroed)"] if heads else []
    print(f"wrote {out} ({a.model}, {'; '.join(what) or 'unchanged'})")


if __name__ == "__main__":
    main()
