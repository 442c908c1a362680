"""Print each model's behaviour on the templated stimulus sets (the models table of docs/models.md).

    python scripts/behaviour.py [model ...]      # default: every registry model available offline

IOI: accuracy (logit(IO) > logit(S)) and mean logit difference over both name orders; size opposites and a/an:
the share of templated cases whose clean prompt prefers the target and whose corrupted prompt prefers the foil,
and the mean clean - corrupted difference; the seed's own cases with their clean / corrupted logit differences.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from fixtures.loaders import ioi_pairs, stimuli  # noqa: E402
from probes.families.ioi import analysis as ioi  # noqa: E402
from probes.families.neuron import analysis as neuron  # noqa: E402
from probes.errors import ProbeError, StimulusError  # noqa: E402
from probes.loading import load  # noqa: E402
from fixtures.models import registry, resolve  # noqa: E402

STIM = stimuli("neuron_v1")


def cases(lm, rows):
    out = []
    for c in rows:
        try:
            out.append(neuron.make_case(lm, c["name"], c["clean"], c["corrupted"], c["target"], c["foil"]))
        except StimulusError:
            pass
    return out


def summary(lm) -> dict:
    sets, info = ioi.prompt_sets(lm, ioi_pairs(version=1))
    b = ioi.behaviour(lm, sets)
    out = {"ioi": f"{b['accuracy']:.1%} of {b['n_prompts']} ({b['mean_logit_diff']:.2f})"}
    for fam in ("size", "control"):  # control: the a/an cases
        cs = cases(lm, [c for c in STIM["templated"] if c["family"] == fam])
        d = np.array([neuron.logit_diffs(lm, c) for c in cs]).reshape(-1, 2)
        ok = (d[:, 0] > 0) & (d[:, 1] < 0)
        out["a/an" if fam == "control" else fam] = f"{ok.mean():.1%} of {len(d)} ({(d[:, 0] - d[:, 1]).mean():.2f})" if len(d) else "no case"
    out["seed cases (clean, corrupted)"] = {c.name: tuple(round(x, 2) for x in neuron.logit_diffs(lm, c))
                                            for c in cases(lm, STIM["seed"])}
    return out


def main(names: list[str]) -> None:
    reg = registry()
    for name in names or [m for m, s in reg.items() if s.kind == "causal" and s.source != "hub"]:
        try:
            lm = load(resolve(name), device="cpu")
        except ProbeError as e:
            print(f"{name}: not available ({e})")
            continue
        with torch.no_grad():
            print(name, json.dumps(summary(lm)))


if __name__ == "__main__":
    main(sys.argv[1:])
