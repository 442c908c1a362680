"""Fine-tune a registry model briefly on prose: a real "new version" to rehearse the drift drill with.

    python scripts/finetune.py smollm2-135m /tmp/smollm2-ft --steps 40 --lr 2e-5
    pytest claims/ -n auto --models smollm2-135m=/tmp/smollm2-ft

Causal language modelling on blocks of ``--block`` tokens cut from a text file (default: this repository's
README.md, English prose and tables), AdamW, a fixed seed, float32 on the CPU; the result is saved as
safetensors with the model's tokenizer. Progress (step, loss) is printed. Unlike scripts/perturb.py, which adds
noise to every weight, this is the kind of change a new model version brings: gradient steps on new text.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from probes.loading import load  # noqa: E402
from fixtures.models import resolve  # noqa: E402


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a registry id (or folder) of a causal LM")
    ap.add_argument("out", type=Path, help="the folder to write (must not exist)")
    ap.add_argument("--text", type=Path, default=ROOT / "README.md", help="a UTF-8 text file (default README.md)")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--block", type=int, default=128, help="tokens per training sequence")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if a.out.exists():
        ap.error(f"{a.out} exists; give a new folder")
    lm = load(resolve(a.model), device="cpu")
    if lm.spec.kind != "causal":
        ap.error(f"{a.model} is a {lm.spec.kind} model; this script fine-tunes causal LMs")
    ids = lm.tokenizer(a.text.read_text(encoding="utf-8"), add_special_tokens=False)["input_ids"]
    n = len(ids) // a.block
    if n < a.batch:
        ap.error(f"{a.text} has {len(ids)} tokens: fewer than one batch of {a.batch} x {a.block}")
    blocks = torch.tensor(ids[: n * a.block]).view(n, a.block)
    torch.manual_seed(a.seed)
    g = torch.Generator().manual_seed(a.seed)
    model = lm.model.float().train()
    opt = torch.optim.AdamW(model.parameters(), lr=a.lr)
    t0 = time.time()
    print(f"fine-tuning {lm.spec.id} on {a.text.name}: {n} blocks of {a.block} tokens, {a.steps} steps, lr {a.lr}",
          flush=True)
    for step in range(1, a.steps + 1):
        x = blocks[torch.randint(0, n, (a.batch,), generator=g)]
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step == 1 or step % 10 == 0 or step == a.steps:
            print(f"  step {step}/{a.steps} loss {loss.item():.3f} ({time.time() - t0:.0f} s)", flush=True)
    model.eval()
    model.save_pretrained(a.out, safe_serialization=True)
    lm.tokenizer.save_pretrained(a.out)
    print(f"wrote {a.out} ({lm.spec.id} + {a.steps} AdamW steps on {a.text.name}, lr {a.lr}, seed {a.seed})")


if __name__ == "__main__":
    main()
