"""The package's structure (issue 36): imports point one way between the layers of docs/architecture.md (analyses and
the suite use model access; model access imports neither; the suite imports no analysis), there is no import
circle, and probes/ names no path of this repository, no family and no package of its own."""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBES = ROOT / "probes"


def imports() -> dict[str, set[str]]:
    mods = {p.stem for p in PROBES.glob("*.py") if p.stem != "__init__"}
    out = {}
    for m in mods:
        deps = set()
        for n in ast.walk(ast.parse((PROBES / f"{m}.py").read_text())):
            if isinstance(n, ast.ImportFrom) and n.level == 1:
                deps |= {n.module.split(".")[0]} if n.module else {a.name for a in n.names}
        out[m] = {d for d in deps if d in mods and d != m}
    return out


def test_imports_point_one_way_between_the_layers():
    sys.path.insert(0, str(ROOT / "scripts"))
    import docs
    layer = {m: name for name, ms in docs.LAYERS.items() for m in ms}
    allowed = {"model access": {"model access"}, "analyses": {"model access", "analyses"},
               "the suite": {"model access", "the suite"}}
    wrong = [f"{m} ({layer[m]}) imports {d} ({layer[d]})" for m, deps in imports().items() for d in deps
             if layer[d] not in allowed[layer[m]]]
    assert not wrong, wrong


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
    for p in PROBES.glob("*.py"):
        code = "\n".join(ln.split("#")[0] for ln in p.read_text().splitlines())
        if re.search(r"parents\[\d\]|CLAIMS_SNAPSHOT_DIR|llm[-_]smollm2|gemma3[-_]270m|gt[-_]all[-_]minilm", code):
            bad.append(f"{p.name}: a repository path or a package name")
        if re.search(r"\[\s*" + r"\s*,\s*".join(f'"{f}"' for f in families[:3]), code):
            bad.append(f"{p.name}: a list of this repository's families")
    assert not bad, bad
