"""Numbers before verdicts: every claim hands its numbers to ``claim_snapshot`` and writes its figure before any
criterion or precondition, so that a broken claim, a known failure or a failed precondition still shows its
numbers beside the recorded ones, and its figure (DESIGN 3, item 7)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FILES = sorted(ROOT.glob("claims/test_*.py")) + sorted(ROOT.glob("examples/*/claims/test_*.py"))
VERDICTS = {"require", "precondition", "fail", "skip", "xfail"}  # calls that end a claim with a verdict


def _name(call: ast.Call) -> str:
    f = call.func
    return f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""


def _is_claim(fn) -> bool:
    return any(isinstance(d, ast.Call) and isinstance(d.func, ast.Attribute) and d.func.attr == "claim"
               for d in fn.decorator_list)


def claims():
    for path in FILES:
        tree = ast.parse(path.read_text())
        for fn in tree.body:
            if isinstance(fn, ast.FunctionDef) and _is_claim(fn):
                yield pytest.param(path, fn, id=f"{path.relative_to(ROOT)}::{fn.name}")


def first_line(fn, names) -> int | None:
    """The first call of one of ``names``, or of a helper that is handed one of them (``require_gaps(lm,
    claim_snapshot, ...)`` records before its precondition)."""
    lines = [n.lineno for n in ast.walk(fn) if isinstance(n, ast.Call) and (
        _name(n) in names or any(isinstance(a, ast.Name) and a.id in names for a in n.args))]
    return min(lines, default=None)


def verdict_lines(fn, kinds) -> list[int]:
    """Where the claim body asserts or raises (``kinds`` "assert"), or calls a precondition ("require": a call
    named require*, precondition, pytest.fail/skip); nested functions are not the body."""
    out = []

    def visit(node):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.Lambda)):
                continue
            if "assert" in kinds and isinstance(child, (ast.Assert, ast.Raise)):
                out.append(child.lineno)
            if "require" in kinds and isinstance(child, ast.Call) and (
                    _name(child) in VERDICTS or _name(child).startswith("require")) and \
                    not any(isinstance(a, ast.Name) and a.id == "claim_snapshot" for a in child.args):
                out.append(child.lineno)
            visit(child)
    visit(fn)
    return out


def test_every_claim_module_is_read():
    assert len(FILES) >= 9 and len(list(claims())) >= 40


@pytest.mark.parametrize("path,fn", list(claims()))
def test_claim_records_its_numbers_and_figure_before_any_verdict(path, fn):
    snap = first_line(fn, {"claim_snapshot"})
    records = next((d for d in fn.decorator_list if isinstance(d, ast.Call) and any(
        k.arg == "records" and isinstance(k.value, ast.Constant) and k.value.value is False for k in d.keywords)),
        None)
    if records is None:
        assert snap is not None, f"{fn.name} never calls claim_snapshot"
    fig = first_line(fn, {"figure_path", "artifact_path"})
    # a criterion comes after the numbers and the figure; a precondition (nothing to measure) after numbers that
    # say why (claim_snapshot of what it reads: the claim's own call replaces them once it measures)
    early = [ln for ln in verdict_lines(fn, {"assert"}) if (snap is not None and ln < snap) or
             (fig is not None and ln < fig)]
    early += [ln for ln in verdict_lines(fn, {"require"}) if snap is not None and ln < snap]
    assert not early, (f"{path.name}:{min(early)}: {fn.name} asserts, or calls a precondition, before it calls "
                       f"claim_snapshot (line {snap}) or writes its figure (line {fig}): a broken claim would "
                       "show no numbers. Record first, then judge.")
