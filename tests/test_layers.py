"""The package's structure (issues 36 and 51): imports point one way between the layers of docs/architecture.md
(scripts/docs.py LAYERS: the claim families use the generic analyses and model access, and a family imports no other
family; analyses and the suite use model access; model access imports neither; the suite imports no analysis and no
presentation; presentation renders what the suite judged; the run sequences them), there is no import circle,
probes/ names no path of this repository, no family and no package of its own, and nothing outside claims/ imports a
claims module."""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBES = ROOT / "probes"


def imports() -> dict[str, set[str]]:
    """module -> the modules of probes/ it imports (scripts/docs.py reads them the same way for its figure)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import docs
    return docs.probe_imports()


def test_imports_point_one_way_between_the_layers():
    sys.path.insert(0, str(ROOT / "scripts"))
    import docs
    layer = {m: name for name, ms in docs.LAYERS.items() for m in ms}
    allowed = docs.ALLOWED
    wrong = [f"{m} ({layer[m]}) imports {d} ({layer[d]})" for m, deps in imports().items() for d in deps
             if layer[d] not in allowed[layer[m]]]
    assert not wrong, wrong


def test_every_module_is_in_one_layer_and_a_family_imports_only_its_own():
    sys.path.insert(0, str(ROOT / "scripts"))
    import docs
    placed = [m for ms in docs.LAYERS.values() for m in ms]
    assert len(placed) == len(set(placed)) and set(placed) == set(docs.probe_modules()), placed
    family = {m: m.split(".")[1] for m in docs.LAYERS["families"]}
    wrong = [f"{m} imports {d}" for m, deps in imports().items() if m in family for d in deps
             if d in family and family[d] != family[m]]
    assert not wrong, wrong
    assert "families.neuron.analysis" in imports()["families.neuron.workflow"]  # relative imports at any depth
    assert {"hooks", "loading", "stats"} <= imports()["families.ioi.analysis"]


def test_no_import_circle():
    graph = imports()
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
            bad.append(f"{p.name}: a repository path or a package name")
        if re.search(r"\[\s*" + r"\s*,\s*".join(f'"{f}"' for f in families[:3]), code):
            bad.append(f"{p.name}: a list of this repository's families")
    assert not bad, bad


def test_nothing_outside_claims_imports_a_claims_module():
    """A benchmark, script or test that needs what a claim measures calls the family's library function, as the
    claim does; a claims module is never imported (its stimuli: fixtures.loaders.stimuli)."""
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
