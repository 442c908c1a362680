"""Neuron-investigation claims: "John is tall. Mary is" -> " short" is carried partly by a stand-out MLP neuron.

Source: seed 002 (the tall/short neuron investigation; gpt2-large L25.N4413), with Miller & Neo 2023 for the
" an" neuron (gpt2-large L31.N892). Stimulus: fixtures/stimuli/neuron_v1.json (the seed's cases: tall/short,
the alternating big/small and huge/tiny patterns with their same-length corruptions, the pear/apple -> " an"
control; templated cases and a held-out text corpus for the organisms). Score: logit(target) - logit(foil) at
the last position; patching results are normalised restorations (probes.families.neuron).

The stand-out neuron is looked for in the registry's ``neuron_layer`` (gpt2-large: 25, the seed's); by default
the last layer. Registry expectations for gpt2-large (seed 002) are checked when that model runs.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.stats import hypergeom

from fixtures.loaders import stimuli
from probes import figures, stats
from probes.errors import StimulusError, require
from probes.families.neuron import analysis as neuron
from probes.families.neuron import figures as neuron_figures
from probes.families.neuron import workflow as neuron_workflow

FAMILY = "neuron"
# (rel, abs) of every claim_snapshot here unless a claim says otherwise: wider in its absolute part than the
# library's default (1e-3, 1e-4), which the other families use
TOLERANCE = (1e-3, 1e-3)
STIM = stimuli("neuron_v1")
TOP_FRAC = 0.02       # "stands out" = within the top 2% of the layer's neurons


def cached(lm, key, fn):
    """``fn()`` once per model (in the model's cache, dropped with it)."""
    k = ("neuron", key)
    if k not in lm.cache:
        lm.cache[k] = fn()
    return lm.cache[k]


def seed_cases(lm) -> dict[str, neuron.Case]:
    return cached(lm, "seed", lambda: {c["name"]: neuron.make_case(lm, c["name"], c["clean"], c["corrupted"],
                                                                c["target"], c["foil"]) for c in STIM["seed"]})


def templated_cases(lm, family: str | None = None) -> tuple[list[neuron.Case], int]:
    """The templated cases this tokenizer can run (equal-length clean/corrupted, single-token targets)."""
    def build():
        out, dropped = [], 0
        for c in STIM["templated"]:
            try:
                out.append((c["family"], neuron.make_case(lm, c["name"], c["clean"], c["corrupted"], c["target"],
                                                      c["foil"])))
            except StimulusError:
                dropped += 1
        return out, dropped
    cases, dropped = cached(lm, "templated", build)
    return [c for f, c in cases if family is None or f == family], dropped


def expect(lm) -> dict:
    return lm.spec.expectation(FAMILY)


def min_gap(lm) -> float:
    return expect(lm).get("min_gap", 1.0)


def neuron_layer(lm) -> int:
    return lm.spec.param("neuron_layer", lm.adapter.n_layers - 1)


def require_gap(lm, case: neuron.Case) -> tuple[float, float]:
    clean, corr = neuron.logit_diffs(lm, case)
    require(clean - corr >= min_gap(lm), f"{case.name}: clean and corrupted logit differences ({clean:.3f}, "
                                         f"{corr:.3f}) do not differ by {min_gap(lm)}: the model does not solve "
                                         "the case, nothing to patch (see neuron.behaviour)")
    return clean, corr


def require_gaps(lm, claim_snapshot, names) -> None:
    """The precondition of a claim that patches seed cases, its numbers first: each case's clean-minus-corrupted
    logit difference is handed to ``claim_snapshot`` (replaced by the claim's own numbers once it measures), so that a
    model that does not solve a case shows by how much, then every case must differ by the minimum gap."""
    cases = seed_cases(lm)
    claim_snapshot({"case_gap": {n: float(np.subtract(*neuron.logit_diffs(lm, cases[n]))) for n in names}},
                   effect=["case_gap"])
    for n in names:
        require_gap(lm, cases[n])


def solves(lm, case: neuron.Case) -> bool:
    clean, corr = neuron.logit_diffs(lm, case)
    return clean - corr >= min_gap(lm)


def restorations(lm, layer: int) -> dict[str, np.ndarray]:
    return cached(lm, ("neurons", layer), lambda: {n: neuron.neuron_patching(lm, c, layer)
                                                   for n, c in seed_cases(lm).items()})


def stand_out(lm) -> tuple[int, int]:
    layer = neuron_layer(lm)
    return layer, int(np.argmax(restorations(lm, layer)["tall_short"]))


@pytest.mark.claim(id="neuron.behaviour", family=FAMILY, kinds=("causal",), source="seed 002; Miller & Neo 2023",
                   null="sign-flip test over the templated cases",
                   criterion="every seed case has clean > 0 > corrupted; >= 90% of templated cases too, p < 0.01")
def test_size_opposites_and_control_behaviour(lm, claim_snapshot, figure_path, figure_title):
    """Each seed case prefers its target on the clean prompt and its foil on the corrupted one (the size
    opposites and the pear/apple -> " an" control), and so do >= 90% of the templated cases (sign-flip p < 0.01)."""
    cases = seed_cases(lm)
    d = {n: neuron.logit_diffs(lm, c) for n, c in cases.items()}
    bad = [n for n, (a, b) in d.items() if not a > 0 > b]
    tc, dropped = templated_cases(lm)
    td = np.array([neuron.logit_diffs(lm, c) for c in tc]).reshape(-1, 2)
    acc = float(((td[:, 0] > 0) & (td[:, 1] < 0)).mean()) if len(td) else float("nan")
    min_acc = expect(lm).get("min_accuracy", 0.9)
    # intervals: the templated cases resampled (the seed cases are single prompts: no interval, their floors)
    ok = stats.resample((td[:, 0] > 0) & (td[:, 1] < 0)) if len(td) else None
    claim_snapshot({"seed_clean": {n: v[0] for n, v in d.items()}, "seed_corrupted": {n: v[1] for n, v in d.items()},
                    "templated_n": len(td), "templated_dropped": dropped, "templated_accuracy": acc},
                   rel=1e-3, abs_=1e-4, effect=["templated_accuracy", "seed_clean", "seed_corrupted"],
                   intervals={"templated_accuracy": stats.interval(ok.mean(1))} if len(td) else None)
    figures.save(neuron_figures.behaviour(figure_title(), list(d), np.array([v[0] for v in d.values()]),
                                          np.array([v[1] for v in d.values()]), td[:, 0], td[:, 1]),
                 figure_path())
    assert not bad, f"seed cases without the behaviour (clean > 0 > corrupted): {bad} ({d})"
    if len(td):
        assert acc >= min_acc, f"templated cases: behaviour on {acc:.1%}, need {min_acc:.0%}"
        p = stats.sign_flip_p(td[:, 0])
        assert p < 0.01, f"templated clean logit differences not above a sign-flip null (p={p:.3g})"


@pytest.mark.claim(id="neuron.logit_lens", family=FAMILY, kinds=("causal",), source="seed 002 (logit lens)",
                   null="none besides the minimum gap: the lens must end at the model's own logit difference",
                   criterion="the lens rises by >= the minimum gap, with some block adding > 20% of the rise "
                             "(registry jumps where given)")
def test_logit_lens_jumps(lm, claim_snapshot, figure_path, figure_title):
    """Read through the final norm and unembedding, the logit difference rises through the layers by at least the
    minimum gap, in jumps: some block adds more than 20% of the total rise (the lens's last entry equals the
    model's own logit difference). gpt2-large: jumps at 30->31, 33->34, 35->36 (registry)."""
    lenses, sp, failed = {}, {}, []
    for n, c in seed_cases(lm).items():
        lens = neuron.logit_lens(lm, c)
        model = neuron.logit_diffs(lm, c)[0]
        lenses[n], sp[n] = lens, neuron.spikes(lens)
        rise = lens[-1] - lens[0]
        if abs(lens[-1] - model) >= 1e-2 * max(1, abs(model)):
            failed.append(f"{n}: lens end {lens[-1]:.4f} != model {model:.4f}")
        if rise < min_gap(lm):
            failed.append(f"{n}: the lens rises by {rise:.3f} only (need {min_gap(lm)})")
        if not sp[n]:
            failed.append(f"{n}: no block adds more than 20% of the rise: {np.round(np.diff(lens), 3)}")
    exp = expect(lm).get("logit_jumps")
    missing = [j for j in map(tuple, exp) if j not in sp["tall_short"]] if exp else []
    if missing:
        failed.append(f"expected jumps {missing} not found; found {sp['tall_short']}")
    claim_snapshot({"lens": lenses, "jumps": {n: [list(j) for j in v] for n, v in sp.items()}},
                   effect=["lens"], identity=["jumps"])
    figures.save(neuron_figures.logit_lens(figure_title(), lenses, sp),
                 figure_path())
    # criterion (last: a broken claim still shows its numbers and figure)
    assert not failed, "; ".join(failed)


@pytest.mark.claim(id="neuron.activation_patching", family=FAMILY, kinds=("causal",),
                   source="seed 002 (activation patching)",
                   null="positions other than the adjective(s) and the final one",
                   criterion="in every layer those positions restore >= 0.8, the final position from the crossover "
                             "on")
def test_information_moves_from_adjective_to_final_position(lm, claim_snapshot, figure_path, figure_title):
    """Residual-stream patching (clean -> corrupted, layer x position) on each size case: the behaviour is carried
    by the adjective(s) where the prompts differ and then by the final position, and by nothing else: in every
    layer those positions together restore >= 0.8, and from the crossover layer on the final position alone
    restores >= 0.8 (a one-way handoff). The crossover layer is recorded; gpt2-large: the final position takes
    over at layer 26 (seed: "layers 26 to 35 attend to 'is', 0 to 24 to 'tall'"; registry, +-1)."""
    res, cross, failed = {}, {}, []
    names = ("tall_short", "big_small", "huge_tiny")
    require_gaps(lm, claim_snapshot, names)
    for n in names:
        c = seed_cases(lm)[n]
        r = neuron.layer_position_patching(lm, c)
        diff = (c.clean != c.corrupted)[0].cpu().numpy()
        carried = r[:, diff].sum(1) + r[:, -1]
        if not (carried >= 0.8).all():
            failed.append(f"{n}: rows {np.flatnonzero(carried < 0.8).tolist()} are restored only "
                          f"{np.round(carried, 2).tolist()} by the adjective and final positions")
        k = int(np.argmax(r[:, -1] >= 0.8))
        if not (r[k:, -1] >= 0.8).all():
            failed.append(f"{n}: the final position does not keep the behaviour after layer {k}: "
                          f"{np.round(r[:, -1], 2).tolist()}")
        res[n], cross[n] = r, k
    c = seed_cases(lm)["tall_short"]
    exp = expect(lm).get("final_position_from")
    if exp is not None and abs(cross["tall_short"] - exp) > 1:
        failed.append(f"the final position takes over at layer {cross['tall_short']}, expected {exp} (+-1)")
    r = res["tall_short"]
    claim_snapshot({"restoration": res, "crossover_layer": cross}, effect=["restoration"],
                   identity=["crossover_layer"])
    figures.save(neuron_figures.layer_position(figure_title(", tall/short"), r, c.labels),
                 figure_path())
    # criterion (last: a broken claim still shows its numbers and figure)
    assert not failed, "; ".join(failed)


@pytest.mark.claim(id="neuron.stand_out", family=FAMILY, kinds=("causal",), source="seed 002 (neuron patching)",
                   null="the other neurons of the layer (robust z; the pear/apple control)",
                   criterion="the tall/short top neuron has robust z >= 5, is in the top 2% for big/small and "
                             "huge/tiny, not for pear/apple")
def test_stand_out_neuron_recurs_for_related_prompts(lm, claim_snapshot, figure_path, figure_title):
    """Patching each neuron of the neuron layer on its own: the top neuron for tall/short is an outlier (robust
    z >= 5), is in the top 2% for big/small and for huge/tiny, and is not in the top 2% for the pear/apple
    control. gpt2-large: L25.N4413 (0.084, 0.045, 0.033; registry)."""
    require_gaps(lm, claim_snapshot, list(seed_cases(lm)))
    layer, star = stand_out(lm)
    rest = restorations(lm, layer)
    N = len(rest["tall_short"])
    k = max(1, int(np.ceil(TOP_FRAC * N)))
    rank = {n: int((r > r[star]).sum()) for n, r in rest.items()}
    z = float(neuron.robust_z(rest["tall_short"])[star])
    claim_snapshot({"neuron": f"L{layer}.N{star}", "robust_z": z, "rank": rank,
                    "restoration": {n: float(r[star]) for n, r in rest.items()},
                    "profile_corr": {f"tall_short~{n}": float(np.corrcoef(rest["tall_short"], r)[0, 1])
                                     for n, r in rest.items() if n != "tall_short"}},
                   effect=["restoration", "robust_z"], identity=["neuron"])
    figures.save(neuron_figures.patching(figure_title(), rest, layer, star),
                 figure_path())
    # criterion (last: a broken claim still shows its numbers and figure)
    assert z >= 5, f"top tall/short neuron L{layer}.N{star} is not an outlier (robust z {z:.2f})"
    for n in ("big_small", "huge_tiny"):
        assert rank[n] < k, f"L{layer}.N{star} ranks {rank[n] + 1} of {N} for {n}, not in the top {k}"
    assert rank["pear_apple"] >= k, f"L{layer}.N{star} is in the top {k} for the unrelated control too (rank " \
                                    f"{rank['pear_apple'] + 1})"
    exp = expect(lm).get("tall_short_neuron")
    if exp:
        assert f"L{layer}.N{star}" == exp, f"stand-out neuron L{layer}.N{star}, expected {exp}"


@pytest.mark.claim(id="neuron.congruence", family=FAMILY, kinds=("causal",),
                   source="seed 002 (congruence); Miller & Neo 2023",
                   null="the other neurons of the writer's layer",
                   criterion="the most ' an'-congruent neuron restores > 0 and more than 98% of its layer's neurons")
def test_congruence_finds_the_writer_of_an(lm, claim_snapshot, figure_path, figure_title):
    """The neuron whose output weights are most congruent with unembed(" an") - unembed(" a"), over every neuron of
    every layer, matters for the pear/apple case: patching it restores more than 98% of its layer's neurons do
    (top 2%) and more than 0. The stand-out neuron's top and bottom tokens are recorded. gpt2-large: L31.N892
    writes " an" and restores about half; L25.N4413's top tokens include " decreasing" / " decline" (registry)."""
    require_gaps(lm, claim_snapshot, ["pear_apple"])
    c = seed_cases(lm)["pear_apple"]
    w = neuron.token_writers(lm, c.target) - neuron.token_writers(lm, c.foil)
    L, N = w.shape
    bl, bn = np.unravel_index(int(np.argmax(w)), w.shape)
    r = neuron.neuron_patching(lm, c, int(bl))
    k = max(1, int(np.ceil(TOP_FRAC * N)))
    rank = int((r > r[bn]).sum())
    layer, star = stand_out(lm)
    cg = neuron.congruence(lm, layer, star)["unembed"]
    # the stand-out neuron is an argmax over the tall/short case: an identity only where the model solves that case
    # (elsewhere its top neurons merely reorder: a diagnostic)
    ids = ["an_writer"] + (["stand_out", "top_tokens", "bottom_tokens"] if solves(lm, seed_cases(lm)["tall_short"])
                           else [])
    claim_snapshot({"an_writer": f"L{bl}.N{bn}", "an_writer_restoration": float(r[bn]), "an_writer_rank": rank,
                    "stand_out": f"L{layer}.N{star}", "top_tokens": cg["top"], "bottom_tokens": cg["bottom"]},
                   effect=["an_writer_restoration"], identity=ids)
    figures.save(neuron_figures.congruence(figure_title(f", L{layer}.N{star}"), cg, w,
                                           "an - a", (int(bl), int(bn))), figure_path())
    # criterion (last: a broken claim still shows its numbers and figure)
    assert r[bn] > 0 and rank < k, f"top ' an' writer L{bl}.N{bn}: restoration {r[bn]:.4f}, rank {rank + 1} of {N}"
    exp = expect(lm)
    if exp.get("an_neuron"):
        assert f"L{bl}.N{bn}" == exp["an_neuron"], f"top ' an' writer L{bl}.N{bn}, expected {exp['an_neuron']}"
    if exp.get("congruent_tokens"):
        assert set(exp["congruent_tokens"]) & set(cg["top"]), f"{cg['top']} has none of {exp['congruent_tokens']}"


def write_contexts(path: Path, title: str, top: list[dict], tags: list[str]) -> None:
    lines = [f"# {title}", ""] + [f"{i + 1}. `{t['activation']:.3f}` ({tag}) {t['before']}**[{t['token']}]**{t['after']}"
                                  for i, (t, tag) in enumerate(zip(top, tags))]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.mark.claim(id="neuron.top_contexts", family=FAMILY, kinds=("causal",), source="seed 002 (Neuroscope)",
                   null="the corpus share of size texts (hypergeometric)",
                   criterion="the stand-out neuron's top-20 contexts are size texts more often than chance, p < 0.01")
def test_stand_out_neuron_fires_on_size_contexts(lm, claim_snapshot, artifact_path, corpus_file):
    """Over the held-out corpus (every phenomenon the organisms learned), the stand-out neuron's 20 most
    activating contexts come from size texts more often than their share of the corpus (hypergeometric
    p < 0.01). The contexts are written, firing token marked, to artifacts/<model>/neuron.top_contexts.md (and, for
    a text file given with ``--corpus``, to neuron.top_contexts.<file stem>.md: an artifact, not asserted)."""
    require_gaps(lm, claim_snapshot, ["tall_short"])
    layer, star = stand_out(lm)
    corpus = STIM["corpus"]
    top = neuron.top_contexts(lm, [t["text"] for t in corpus], layer, star, k=20)
    fam = [corpus[t["text"]]["family"] for t in top]
    n_size = sum(f == "size" for f in fam)
    M, K = len(corpus), sum(t["family"] == "size" for t in corpus)
    p = float(hypergeom.sf(n_size - 1, M, K, len(top)))
    write_contexts(artifact_path("neuron.top_contexts.md"), f"L{layer}.N{star} - {lm.spec.id}: top {len(top)} "
                   f"contexts of {M} held-out texts", top, fam)
    extra = corpus_file  # --corpus (checked to exist at start)
    if extra:
        texts = [t for t in Path(extra).read_text(encoding="utf-8").splitlines() if t.strip()]
        mine = neuron.top_contexts(lm, texts, layer, star, k=20)
        write_contexts(artifact_path(f"neuron.top_contexts.{Path(extra).stem}.md"),
                       f"L{layer}.N{star} - {lm.spec.id}: top {len(mine)} contexts of {len(texts)} lines of {extra}",
                       mine, [f"line {t['text'] + 1}" for t in mine])
    claim_snapshot({"neuron": f"L{layer}.N{star}", "n_size": n_size, "p": p,
                    "tokens": [t["token"] for t in top], "families": fam}, rel=1e-3, abs_=1e-4,
                   effect=["n_size"], identity=["neuron", "tokens", "families"])
    # criterion (last: a broken claim still shows its numbers)
    assert p < 0.01, f"{n_size}/{len(top)} top contexts are size texts (corpus share {K}/{M}; p={p:.3g})"


@pytest.mark.claim(id="neuron.workflow", family=FAMILY, kinds=("causal",), source="seed 002 (automating Finding 1)",
                   null="100 seeded random neuron sets of the same layers and sizes",
                   criterion="zeroing the found neurons drops the logit difference more than 95% of random sets (p < "
                             "0.05)")
def test_workflow_finds_neurons_that_matter(lm, claim_snapshot, figure_path, figure_title):
    """``investigate`` (probes.families.neuron.workflow) on tall/short (behaviour -> lens jumps -> patching -> outlier
    neurons -> congruence) returns neurons that, zeroed, lower the clean logit difference of the templated size cases
    more than 95% of random neuron sets of the same layers and sizes (100 seeded draws)."""
    require_gaps(lm, claim_snapshot, ["tall_short"])
    c = seed_cases(lm)["tall_short"]
    inv = neuron_workflow.investigate(lm, c)
    require(inv.behaves, f"tall/short: clean {inv.clean_diff:.3f}, corrupted {inv.corrupted_diff:.3f}: the model "
                         "does not solve the case, nothing to investigate")
    claim_snapshot({"layers": inv.layers, "jumps": [list(j) for j in inv.spikes], "neurons": []},
                   identity=["layers", "jumps"])  # replaced below once neurons were found
    require(bool(inv.neurons), f"no outlier neurons in layers {inv.layers}: nothing to zero")
    found = inv.neuron_sets()
    size, _ = templated_cases(lm, "size")
    cases = size or [c]
    rand = neuron_workflow.random_neuron_sets(found, lm.adapter.d_mlp)  # 100 seeded draws
    d = neuron.ablated_diffs(lm, cases, [{}, found] + rand)
    drop = d[0][None] - d[1:]
    mean = drop.mean(1)
    p = stats.perm_p(mean[0], mean[1:])
    claim_snapshot({"layers": inv.layers, "jumps": [list(j) for j in inv.spikes],
                    "neurons": [{k: v for k, v in n.items()} for n in inv.neurons], "drop": float(mean[0]),
                    "random_q95": float(np.quantile(mean[1:], .95)), "p": p},
                   effect=["drop"], identity=["layers", "jumps", "neurons[].id", "neurons[].top_tokens",
                                              "neurons[].bottom_tokens"],
                   intervals={"drop": stats.mean_ci(drop[0])} if drop.shape[1] > 1 else None)  # the cases resampled
    figures.save(neuron_figures.workflow(figure_title(), inv, float(mean[0]), mean[1:], p),
                 figure_path())
    assert p < 0.05, f"zeroing {[n['id'] for n in inv.neurons]} drops the logit diff by {mean[0]:.3f}, not above " \
                     f"random sets (p={p:.3f})"
