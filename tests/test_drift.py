"""Numbers with roles: components compared by identity, a severity per move, short verdict cells."""
from __future__ import annotations

import json

from probes import compare, drift, drift_text, roles
from probes import verdicts
from probes.render import cells, text
from probes.results import ClaimResult

ROLES = roles.roles(effect=["top_k_share", "top_heads[].delta"], identity=["top_heads[].head"])
OLD = {"top_k_share": 0.80, "k": 14, "_recorded_with": {"device": "cpu"},
       "top_heads": [{"head": "20.0", "delta": -5.25}, {"head": "24.4", "delta": 3.60},
                     {"head": "23.3", "delta": -3.22}, {"head": "17.4", "delta": -1.394},
                     {"head": "24.5", "delta": 1.282}]}


def heads(*pairs):
    return [{"head": h, "delta": d} for h, d in pairs]


def test_a_pure_reorder_is_a_reorder_not_a_change_of_sign_or_identity():
    # ranks 4 and 5 swap (their values barely move): the position-keyed diff read this as 17.4 -> 24.5 and a
    # delta of -1.394 -> 1.282 ("moved +2.68, +192%")
    new = dict(OLD, top_heads=heads(("20.0", -5.25), ("24.4", 3.60), ("23.3", -3.22), ("24.5", 1.293),
                                    ("17.4", -1.3941)))
    d = compare.diff(OLD, new, 1e-3, 1e-4, ROLES)
    (ids,) = d.identities
    assert (ids.same, ids.entered, ids.left) == (5, [], [])
    assert ids.ranks == [["17.4", 4, 5], ["24.5", 5, 4]]
    assert "same set, reordered: 17.4 rank 4 -> 5, 24.5 rank 5 -> 4" in "\n".join(drift_text.lines(d))
    moved = {m.path: m for m in d.moves}
    assert set(moved) == {"top_heads[24.5].delta"}  # the one delta that moved beyond tolerance, matched by id
    m = moved["top_heads[24.5].delta"]
    assert m.old == 1.282 and m.new == 1.293 and m.role == roles.EFFECT
    assert abs(m.pct - 100 * 0.011 / 1.282) < 1e-9  # percent of its own recorded value, not the list's largest
    text = "\n".join(drift_text.lines(d))
    assert "17.4 -> 24.5" not in text and '"17.4" -> "24.5"' not in text  # no change of identity
    assert all((m.old > 0) == (m.new > 0) for m in d.moves if m.kind == "value")  # no change of sign
    assert drift_text.summary(d) == "effect +0.9% of top_heads[24.5].delta (top_heads: 5 kept)" and d.level == drift.SMALL


def test_a_real_swap_is_a_swap():
    new = dict(OLD, top_heads=heads(("20.0", -5.25), ("9.9", 3.61), ("23.3", -3.22), ("17.4", -1.394),
                                    ("24.5", 1.282)))
    d = compare.diff(OLD, new, 1e-3, 1e-4, ROLES)
    (ids,) = d.identities
    assert (ids.same, ids.entered, ids.left) == (4, ["9.9"], ["24.4"])
    assert "top_heads: 4 kept, +1, -1; entered 9.9, left 24.4" in drift_text.lines(d)[0]
    assert drift_text.summary(d) == "effect within tolerance (top_heads: 4 kept, +1, -1)"
    # 24.4 carried 3.60 of the 14.75 summed |delta|: 24% of the effect left -> medium (>= 5%, < 25%)
    assert abs(ids.lost_share - 3.60 / 14.746) < 1e-3 and d.level == drift.MEDIUM
    # the top head replaced: large
    new = dict(OLD, top_heads=heads(("1.1", -5.3), ("9.9", 3.6), ("23.3", -3.22), ("17.4", -1.394), ("24.5", 1.282)))
    assert compare.diff(OLD, new, 1e-3, 1e-4, ROLES).level == drift.LARGE


def test_severity_follows_the_effect_and_diagnostics_stay_small():
    new = dict(OLD, top_k_share=0.60)  # -25% of the recorded effect
    d = compare.diff(OLD, new, 1e-3, 1e-4, ROLES)
    assert d.level == drift.LARGE and round(d.effect, 1) == -25.0 and d.effect_path == "top_k_share"
    new = dict(OLD, top_k_share=0.76)
    assert compare.diff(OLD, new, 1e-3, 1e-4, ROLES).level == drift.MEDIUM
    new = dict(OLD, k=15)  # a diagnostic moved by 7%: reported, never significant on its own
    d = compare.diff(OLD, new, 1e-3, 1e-4, ROLES)
    assert d.moved and not d.significant and d.level == drift.NOISE
    assert drift_text.summary(d) == "effect within tolerance, 1 diagnostic moved (top_heads: 5 kept) within noise"
    assert drift_text.lines(d) == ["[diagnostic] k: 14 -> 15 (moved +1: +7.1% of its recorded value, 70.9x tolerance) - "
                         "within noise"]
    # ... except under significance "floor" (this project's own CI: a change of the measuring code)
    assert compare.diff(OLD, new, 1e-3, 1e-4, ROLES, mode=drift.FLOOR).significant
    # within tolerance: nothing moved
    assert not compare.diff(OLD, dict(OLD, top_k_share=0.80005), 1e-3, 1e-4, ROLES).moved


def test_id_lists_compare_as_sets_and_one_named_component_as_itself():
    t = roles.roles(effect=["drop"], identity=["tokens", "neuron", "layers"])
    old = {"drop": 1.0, "neuron": "L3.N315", "tokens": [" is", " is", " tall"], "layers": [0, 3]}
    new = {"drop": 1.0, "neuron": "L2.N7", "tokens": [" is", " tall", " is"], "layers": [0, 2, 3]}
    d = compare.diff(old, new, 1e-3, 1e-4, t)
    by = {s.path: s for s in d.identities}
    assert by["tokens"].same == 3 and not by["tokens"].entered  # a multiset: the same tokens
    assert by["tokens"].ranks == [[" tall", 3, 2]]  # ranks only for tokens that occur once
    assert drift_text.identity_label(by["neuron"]) == "neuron L3.N315 -> L2.N7" and d.level == drift.LARGE
    assert by["layers"].entered == ["2"] and by["layers"].ranks == []  # a sorted set, not a ranking
    assert drift_text.summary(d).endswith("(layers: 2 kept, +1, -0; neuron L3.N315 -> L2.N7; 1 more id same)")


def test_roles_apply_to_everything_under_a_declared_path():
    t = roles.roles(effect=["lens"], identity=["jumps"])
    assert roles.role_of("lens.tall_short[3]", t) == roles.EFFECT
    assert roles.role_of("jumps.big_small", t) == roles.IDENTITY
    assert roles.role_of("null_q95[2]", t) == roles.DIAGNOSTIC
    old = {"lens": {"a": [1.0, 2.0, 10.0]}, "jumps": {"a": [[0, 1], [3, 4]]}}
    new = {"lens": {"a": [1.0, 2.5, 10.0]}, "jumps": {"a": [[0, 1], [2, 3]]}}
    d = compare.diff(old, new, 1e-3, 1e-4, t)
    (m,) = [m for m in d.moves if m.kind == "value"]
    assert m.path == "lens.a[1]" and m.pct == 25.0  # 0.5 of its own recorded 2.0, not of the profile's largest
    assert "jumps.a: 1 kept, +1, -1; entered [2,3], left [3,4]" in "\n".join(drift_text.lines(d))


def test_cells_are_short_and_the_table_sorts_by_severity():
    """Rows sort by their worst verdict, then severity; a per-layer claim's cell counts its layers."""
    def res(claim, verdict, old=None, new=None, layer=None):
        d = compare.diff(old, new, 1e-4, 1e-6, ROLES) if old is not None else None
        head = compare.effect_numbers(new, ROLES, old, d) if old is not None else (None, None)
        return ClaimResult(claim, "m@v2", verdict, layer=layer, drift=d, headline=head[0], largest=head[1])
    big = dict(OLD, top_heads=heads(("1.1", -3.0), ("2.2", 1.0), ("3.3", -1.0), ("4.4", 0.5), ("5.5", 0.1)))
    small = dict(OLD, top_heads=heads(("20.0", -5.3), ("24.4", 3.60), ("23.3", -3.22), ("17.4", -1.3941),
                                       ("24.5", 1.282)))
    layers = [res("grammar.laminar", verdicts.MOVED, OLD, dict(OLD, top_heads=heads(("20.0", -5.25 * f), ("24.4", 3.60),
                  ("23.3", -3.22), ("17.4", -1.3941), ("24.5", 1.282))), layer=i) for i, f in enumerate([1.004, 1.013, 1.002])]
    layers.append(res("grammar.laminar", verdicts.HOLDS, layer=3))
    results = layers + [res("ioi.behaviour", verdicts.MOVED, OLD, small), res("ioi.head_patching", verdicts.MOVED, OLD, big),
                        res("ioi.head_norms", verdicts.HOLDS), res("ioi.head_silencing", verdicts.BROKEN)]
    _, rows = cells.table(results)
    assert [r[0] for r in rows] == ["ioi.head_silencing", "ioi.head_patching", "grammar.laminar", "ioi.behaviour",
                                    "ioi.head_norms"]
    cell = dict((r[0], r[1]) for r in rows)
    assert cell["ioi.head_patching"] == "holds but changed: top_k_share 0.8 (was 0.8); top_heads: 0 kept, +5, -5"
    assert cell["grammar.laminar"].startswith("holds but changed 3/4 layers, most: L1 top_heads[20.0].delta -5.32"), \
        cell["grammar.laminar"]
    assert cell["grammar.laminar"].endswith("holds 1/4")
    lines = text.terminal_lines(results, 6, "artifacts/report.md")
    assert "  large  ioi.head_patching x m@v2: top_k_share 0.8 (was 0.8); top_heads: 0 kept, +5, -5" in lines
    assert lines[-2:] == ["every moved number: artifacts/report.md", f"exit status 6: {verdicts.EXIT_MEANING[6]}"]


def test_records_keyed_by_a_recurring_token_match_by_occurrence():
    t = roles.roles(effect=["best[].similarity"], identity=["best[].C"])
    old = {"best": [{"C": " his", "A": " a", "similarity": 0.5}, {"C": " the", "A": " b", "similarity": 0.4},
                    {"C": " his", "A": " c", "similarity": 0.3}]}
    new = {"best": [{"C": " his", "A": " a", "similarity": 0.5}, {"C": " the", "A": " b", "similarity": 0.4},
                    {"C": " his", "A": " d", "similarity": 0.3}]}
    d = compare.diff(old, new, 1e-3, 1e-4, t)
    assert drift_text.lines(d) == ['[diagnostic] best[ his#2].A: " c" -> " d" - within noise'] and d.identities[0].same == 3


def test_id_lists_inside_kept_records_are_details_not_severity():
    t = roles.roles(effect=["drop"], identity=["neurons[].id", "neurons[].top_tokens"])
    old = {"drop": 1.0, "neurons": [{"id": "L3.N1", "top_tokens": [" a", " b"]}]}
    new = {"drop": 1.0, "neurons": [{"id": "L3.N1", "top_tokens": [" a", " c"]}]}
    d = compare.diff(old, new, 1e-3, 1e-4, t)
    assert "[identity] neurons[L3.N1].top_tokens: 1 kept, +1, -1; entered  c, left  b" in drift_text.lines(d)
    assert d.level == drift.SMALL and drift_text.summary(d) == "effect within tolerance (neurons: 1 kept)"


def test_noise_floors_widen_the_tolerance_of_the_numbers_that_have_them():
    old = dict(OLD, _noise={"floor": {"top_k_share": 0.001}, "unstable": {}})
    # 0.0035 is 35x the declared tolerance but within FLOOR_K x the measured floor: not a move
    assert not compare.diff(old, dict(OLD, top_k_share=0.8035), 1e-4, 1e-6, ROLES).moved
    # beyond FLOOR_K x floor it moves; with no interval recorded, an effect beyond its floor is significant
    d = compare.diff(old, dict(OLD, top_k_share=0.81), 1e-4, 1e-6, ROLES)
    assert d.moved and d.significant
    # the floor of one number says nothing of another's
    assert compare.diff(old, dict(OLD, k=14.01), 1e-4, 1e-6, ROLES).moved


def test_a_move_is_significant_only_when_the_effect_leaves_its_recorded_interval():
    old = dict(OLD, _intervals={"top_k_share": [0.75, 0.85],
                                "top_heads": [{"delta": [-5.6, -4.9]}, {}, {}, {}, {}]})
    d = compare.diff(old, dict(OLD, top_k_share=0.84), 1e-4, 1e-6, ROLES)  # moved 5%, inside [0.75, 0.85]
    assert d.moved and not d.significant and d.level == drift.NOISE and "within noise" in drift_text.summary(d)
    (m,) = d.moves
    assert "recorded interval [0.75, 0.85]" in drift_text.move_text(m) and abs(m.width - 0.8) < 1e-9  # 0.04 of a half-width 0.05
    d = compare.diff(old, dict(OLD, top_k_share=0.70), 1e-4, 1e-6, ROLES)  # outside: a change, sized by its own value
    assert d.significant and d.level == drift.MEDIUM and round(d.effect, 2) == -12.5
    # records: the interval list is aligned with the recorded records (the top head's delta)
    new = dict(OLD, top_heads=heads(("20.0", -5.5), ("24.4", 3.60), ("23.3", -3.22), ("17.4", -1.394),
                                    ("24.5", 1.282)))
    assert not compare.diff(old, new, 1e-4, 1e-6, ROLES).significant
    new["top_heads"][0]["delta"] = -4.0
    assert compare.diff(old, new, 1e-4, 1e-6, ROLES).significant


def test_a_component_leaving_a_top_set_is_a_change_only_if_it_was_stable_there():
    swap = dict(OLD, top_heads=heads(("20.0", -5.25), ("24.4", 3.60), ("23.3", -3.22), ("17.4", -1.394),
                                     ("9.9", 1.27)))  # the 5th head, 24.5, replaced by 9.9
    stab = {"top_heads": {"20.0": 1.0, "24.4": 1.0, "23.3": 0.99, "17.4": 0.97, "24.5": 0.55}}
    d = compare.diff(dict(OLD, _stability=stab), swap, 1e-4, 1e-6, ROLES)
    (ids,) = d.identities
    assert ids.left == ["24.5"] and not ids.sig and not d.significant and "no stable component" in drift_text.identity_text(ids)
    stab["top_heads"]["24.5"] = 0.98  # it was in the top 5 in 98% of resamples: its exit is a change
    assert compare.diff(dict(OLD, _stability=stab), swap, 1e-4, 1e-6, ROLES).significant
    # ids that float-noise perturbations moved (scripts/calibrate.py) never count
    noise = {"floor": {}, "unstable": {"top_heads": ["24.5", "9.9"]}}
    d = compare.diff(dict(OLD, _noise=noise), swap, 1e-4, 1e-6, ROLES)
    assert not d.significant and d.identities[0].floor_noise
    assert not any(m.kind == "set" for m in d.moves)


def test_a_cell_names_each_number_and_percentage_and_prints_counts_as_integers():
    """A candidate's cell: the headline with its interval and the recorded value beside it (with the change in % of
    that number), the effect number that moved most by name, counts as integers; a per-layer claim names the layer
    that moved most with its number."""
    def num(path, value, ci, old, old_ci):
        return drift.Number(path, value, tuple(ci), old, tuple(old_ci), 100 * (value - old) / abs(old))
    ids = drift.Drift(moves=[drift.Move("top", roles.IDENTITY, "set", ["L3.N7", "a", "b", "c", "d"], ["L3.N7", "a", "b", "x",
                                                                                         "y"], sig=False)],
                  identities=[drift.IdentitySet("top", 5, 5, 3, ["x", "y"], ["c", "d"])], has_effect=True)
    one = ClaimResult("grammar.neurons", "m@ft", verdicts.NOISE, baseline="m", drift=ids,
                      headline=num("n_sig", 1402, [1381.0, 1421.975], 1417, [1394.975, 1437.025]),
                      largest=num("top[L3.N7].t", -30.5, [-33.1, -28.6], -28.0, [-30.0, -26.1]))
    layers = [ClaimResult("grammar.laminar", "m@ft", verdicts.MOVED, baseline="m", layer=layer,
                          headline=num("r_split", 0.9, [0.88, 0.92], 0.9 * f, [0.87, 0.93]), drift=drift.Drift())
              for layer, f in ((0, 1.01), (1, 1.2), (2, 0.99))]
    _, rows = cells.table([one] + layers)
    cell = dict((r[0], r[1]) for r in rows)
    assert cell["grammar.neurons"] == (
        "holds within noise: n_sig 1402 [1381, 1422] (was 1417 [1395, 1437], -1.1%); largest move: top[L3.N7].t "
        "-30.5 [-33.1, -28.6] (was -28 [-30, -26.1], -8.9%); top: 3 kept, +2, -2")
    assert cell["grammar.laminar"] == ("holds but changed 3/3 layers, most: L1 r_split 0.9 [0.88, 0.92] (was 1.08 "
                                        "[0.87, 0.93], -16.7%)")
    # a registry model whose numbers did not move: the headline alone
    same = ClaimResult("grammar.neurons", "m", verdicts.HOLDS, headline=one.headline)
    assert cells.cell([same]) == "holds: n_sig 1402 [1381, 1422]"
    # the result crosses xdist and report.json as JSON and comes back equal
    assert ClaimResult.from_json(json.loads(json.dumps(one.to_json()))) == one
