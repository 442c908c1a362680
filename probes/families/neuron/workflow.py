"""The seed's Finding 1, automated (seed 002): :func:`investigate` runs the analysis steps of
:mod:`probes.families.neuron.analysis` on one case, from the behaviour to the neurons that stand out;
:func:`random_neuron_sets` draws the null that the workflow claim zeroes them against.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ... import stats
from ...loading import LoadedModel
from .analysis import (Case, attribution_patching, congruence, layer_position_patching, logit_diffs, logit_lens,
                       mlp_layer_patching, neuron_patching, robust_z, spikes)

NULL_SETS = 100  # random neuron sets of the workflow's null (min p = 1/101; each set is a forward of the cases)


@dataclass
class Investigation:
    """What :func:`investigate` found for one case (the seed's Finding 1, automated)."""
    case: str
    clean_diff: float
    corrupted_diff: float
    behaves: bool
    lens: np.ndarray
    spikes: list[tuple[int, int]]
    layer_position: np.ndarray
    mlp_layers: np.ndarray
    layers: list[int]
    attribution: np.ndarray
    restorations: dict[int, np.ndarray]
    neurons: list[dict]

    def neuron_sets(self) -> dict[int, np.ndarray]:
        out: dict[int, list[int]] = {}
        for n in self.neurons:
            out.setdefault(n["layer"], []).append(n["neuron"])
        return {layer: np.array(v) for layer, v in out.items()}


def investigate(lm: LoadedModel, case: Case, *, spike_frac: float = 0.2, z_min: float = 5.0,
                max_neurons: int = 10, n_tokens: int = 8, log=None) -> Investigation:
    """Behaviour check -> logit-lens spike layers -> layer x position patching -> exact neuron patching in the
    identified layers -> outlier neurons (robust z >= ``z_min``, at most ``max_neurons`` by restoration) -> their
    congruence with the unembedding. The identified layers are the blocks where the lens jumps (a jump (i, i + 1)
    is block i's contribution); if there are none, the layer whose whole-MLP patching restores most. Attribution patching over all
    layers is returned beside the exact values (a screen, not used for the selection)."""
    say = log or (lambda msg: None)
    clean, corr = logit_diffs(lm, case)
    behaves = clean > 0 > corr
    say(f"{case.name}: logit diff clean {clean:.3f}, corrupted {corr:.3f}"
        + ("" if behaves else " (the corruption does not flip the preference: results are not interpretable)"))
    lens = logit_lens(lm, case)
    sp = spikes(lens, spike_frac)
    lp = layer_position_patching(lm, case)
    mlp = mlp_layer_patching(lm, case)
    layers = sorted({a for a, b in sp}) or [int(np.argmax(mlp))]
    say(f"{case.name}: lens jumps {sp}; neuron patching in layers {layers}")
    attr = attribution_patching(lm, case)
    rest = {layer: neuron_patching(lm, case, layer) for layer in layers}
    cands = []
    for layer, r in rest.items():
        z = robust_z(r)
        cands += [(float(r[n]), layer, int(n), float(z[n])) for n in np.flatnonzero(z >= z_min)]
    cands.sort(key=lambda t: -t[0])
    neurons = []
    for v, layer, n, rz in cands[:max_neurons]:
        cg = congruence(lm, layer, n, n_tokens, spaces=("unembed",))["unembed"]
        neurons.append({"layer": layer, "neuron": n, "id": f"L{layer}.N{n}", "restoration": v, "robust_z": rz,
                        "top_tokens": cg["top"], "bottom_tokens": cg["bottom"]})
    say(f"{case.name}: outlier neurons {[d['id'] for d in neurons]}")
    return Investigation(case.name, clean, corr, behaves, lens, sp, lp, mlp, layers, attr, rest, neurons)


def random_neuron_sets(found: dict[int, np.ndarray], n_neurons: int, draws: int = NULL_SETS,
                       seed: int = 0) -> list[dict[int, np.ndarray]]:
    """``draws`` seeded random neuron sets of the same layers and sizes as ``found`` (``{layer: neurons}``, as
    :meth:`Investigation.neuron_sets` gives), each layer's drawn without replacement from its ``n_neurons``."""
    g = stats.rng(seed)
    return [{layer: g.choice(n_neurons, len(n), replace=False) for layer, n in found.items()} for _ in range(draws)]
