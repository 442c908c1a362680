"""Write a perturbed copy of a registry model: a stand-in "new version" to rehearse the drill with.

    python scripts/perturb.py gpt2-organism /tmp/gpt2-organism-v2 --noise 0.02
    python scripts/perturb.py gpt2-organism /tmp/gpt2-organism-damaged --noise 1.0

Every weight is multiplied by (1 + noise x N(0, 1)) (seeded), and the copy is saved as safetensors with the
model's tokenizer. Then: ``pytest claims/ --models gpt2-organism,gpt2-organism=/tmp/gpt2-organism-v2``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from probes.loading import load  # noqa: E402
from probes.registry import resolve  # noqa: E402


def perturb(model: torch.nn.Module, noise: float, seed: int = 0) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1 + noise * torch.randn(p.shape, generator=g, dtype=p.dtype))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a registry id (or folder) to copy")
    ap.add_argument("out", help="the folder to write (must not exist)")
    ap.add_argument("--noise", type=float, default=0.02, help="relative weight noise (default 0.02)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    out = Path(a.out)
    if out.exists():
        ap.error(f"{out} exists; give a new folder")
    lm = load(resolve(a.model), device="cpu")
    perturb(lm.model, a.noise, a.seed)
    lm.model.save_pretrained(out, safe_serialization=True)
    lm.tokenizer.save_pretrained(out)
    print(f"wrote {out} ({a.model}, every weight x (1 + {a.noise} N(0,1)), seed {a.seed})")


if __name__ == "__main__":
    main()
