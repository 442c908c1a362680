"""Print the claims x models table for README.md from the claim markers and the registry.

    python scripts/catalogue.py
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from probes.registry import load_registry  # noqa: E402


def claims():
    for f in sorted((ROOT / "claims").glob("test_*.py")):
        for node in ast.parse(f.read_text()).body:
            if not isinstance(node, ast.FunctionDef):
                continue
            for dec in node.decorator_list:
                if isinstance(dec, ast.Call) and getattr(dec.func, "attr", "") == "claim":
                    kw = {k.arg: ast.literal_eval(k.value) if not isinstance(k.value, ast.Name) else None
                          for k in dec.keywords}
                    fam = f.stem.replace("test_", "")
                    per_layer = any(a.arg == "layer" for a in node.args.args)
                    doc = (ast.get_docstring(node) or "").split("\n\n")[0].replace("\n", " ")
                    yield {"id": kw["id"], "family": fam if kw.get("family") is None else kw["family"],
                           "source": kw.get("source", ""), "kinds": kw.get("kinds"), "per_layer": per_layer,
                           "test": f"{f.name}::{node.name}", "doc": doc}


def main() -> None:
    reg = load_registry()
    models = list(reg.values())
    head = "| claim | source | what it asserts | " + " | ".join(m.id for m in models) + " |"
    print(head)
    print("|" + "---|" * (3 + len(models)))
    for c in claims():
        fam = c["family"]
        cells = []
        for m in models:
            ok = fam in m.families and (not c["kinds"] or m.kind in c["kinds"])
            known = c["id"] in m.expectation(fam).get("known_failures", {})
            cells.append(("known failure" if known else "per layer" if c["per_layer"] else "yes") if ok else "-")
        doc = c["doc"].replace("|", "\\|")
        print(f"| `{c['id']}` | {c['source']} | {doc} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
