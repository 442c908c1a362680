"""The package's structure (issue 36): imports point one way between the layers of docs/architecture.md (the
family packages use the generic analyses and model access; the generic analyses use model access; model access
imports neither; the suite imports no analysis), a family imports no other family, there is no import circle, and
probes/ names no path of this repository, no list of families and no package of its own."""
from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBES = ROOT / "probes"
sys.path.insert(0, str(ROOT / "scripts"))
import docs  # noqa: E402


def test_every_module_and_family_is_in_one_layer():
    placed = [m for ms in docs.LAYERS.values() for m in ms]
    assert len(placed) == len(set(placed)), placed
    assert set(docs.package_units()) == set(placed)
    assert set(docs.LAYERS["families"]) == {d.name for d in (PROBES / "families").iterdir()
                                            if (d / "__init__.py").exists()}


def test_imports_point_one_way_between_the_layers():
    layer = {m: name for name, ms in docs.LAYERS.items() for m in ms}
    allowed = {"model access": {"model access"}, "analyses": {"model access", "analyses"},
               "families": {"model access", "analyses"},  # and not "families": a family imports no other family
               "the suite": {"model access", "the suite"}}
    wrong = [f"{m} ({layer[m]}) imports {d} ({layer[d]})" for m, deps in docs.module_imports().items() for d in deps
             if layer[d] not in allowed[layer[m]]]
    assert not wrong, wrong


def test_the_import_graph_sees_relative_and_absolute_imports():
    graph = docs.module_imports()
    assert {"hooks", "loading", "stats"} <= graph["ioi"]  # from ... import stats; from ...hooks import capture
    assert "adapters" in graph["lesion"]  # an import inside a function
    assert "hooks" in graph["loading"] and not graph["errors"]


def test_no_import_circle():
    graph = docs.module_imports()
    state: dict[str, int] = {}

    def visit(m, path):
        state[m] = 1
        for d in graph[m]:
            if state.get(d) == 1:
                raise AssertionError("import circle: " + " -> ".join(path + [m, d]))
            if d not in state:
                visit(d, path + [m])
        state[m] = 2
    for m in graph:
        if m not in state:
            visit(m, [])


def test_the_package_knows_no_repository():
    """No module of probes/ computes a path from its own location into this repository (parents[...]), reads
    fixtures/ or snapshots/ of it, lists claim families, or names a model package (those are data:
    builtin_models.toml)."""
    families = ["grammar", "ioi", "lesion", "neuron", "recommender", "induction", "sinks", "successor", "tracing"]
    bad = []
    for p in PROBES.rglob("*.py"):
        code = "\n".join(ln.split("#")[0] for ln in p.read_text().splitlines())
        if re.search(r"parents\[\d\]|CLAIMS_SNAPSHOT_DIR|llm[-_]smollm2|gemma3[-_]270m|gt[-_]all[-_]minilm", code):
            bad.append(f"{p.relative_to(PROBES)}: a repository path or a package name")
        if re.search(r"\[\s*" + r"\s*,\s*".join(f'"{f}"' for f in families[:3]), code):
            bad.append(f"{p.relative_to(PROBES)}: a list of this repository's families")
    assert not bad, bad


def test_nothing_outside_claims_imports_a_claims_module():
    """A benchmark, script or test that needs what a claim measures calls the family's library function, as the
    claim does; a claims module is never imported (its stimuli: fixtures.loaders.stimuli)."""
    import ast
    bad = []
    for p in ROOT.rglob("*.py"):
        rel = p.relative_to(ROOT)
        if rel.parts[0] in ("claims", ".git", ".venv", "build") or "site-packages" in rel.parts:
            continue
        for n in ast.walk(ast.parse(p.read_text())):
            names = [a.name for a in n.names] if isinstance(n, ast.Import) else \
                [n.module or ""] if isinstance(n, ast.ImportFrom) and not n.level else []
            bad += [f"{rel}: {m}" for m in names if m == "claims" or m.startswith("claims.")]
    assert not bad, bad
