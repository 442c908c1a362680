"""A finding's history: an append-only record of runs, and each claim's effect plotted across runs or candidates.

``pytest --history DIR`` appends one JSON line per run to ``DIR/history.jsonl``: date, command, the models with
their provenance (source, revision, weights or GGUF hash), package versions, device, dtype, and per claim x model
the verdict and its numbers with their roles. Lines are never rewritten: a run appends one line under an exclusive
file lock with a single ``write`` on a file opened for appending (two runs at once, or an interrupted one, leave
whole lines). Only the controller writes (under pytest-xdist the workers never touch the file).

:func:`trends` turns runs (the history, or one run that holds a series of candidates, e.g. a training trajectory
``--models gpt2-organism=ckpt-a,gpt2-organism=ckpt-b``) into one figure per claim: one panel per effect number, one
line per model lineage (a registry model and its candidates), x = the runs in order, broken / error / known-failure
points marked.
"""
from __future__ import annotations

import base64
import fcntl
import hashlib
import io
import json
import os
import platform
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from .results import SCHEMA, ClaimResult, Verdict, readable

FILE = "history.jsonl"
BREAKS = {Verdict.BROKEN: "#c0392b", Verdict.ERROR: "#8e44ad", Verdict.KNOWN: "#7f8c8d", Verdict.NEWLY: "#2471a3"}
PACKAGES = ["interp-claims", "torch", "transformers", "tokenizers", "numpy", "scipy", "safetensors", "gguf"]


def file_sha256(path: Path, limit: int = 8 << 30) -> str | None:
    """The sha256 of a weights file (None above ``limit`` bytes, or if it cannot be read)."""
    try:
        if path.stat().st_size > limit:
            return None
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        return h.hexdigest()
    except OSError:
        return None


def provenance(spec) -> dict:
    """Where a model came from, enough to tell two versions apart: source, revision, and the hash of its
    weights (local folders: model.safetensors; GGUF models: the pinned or computed file hash)."""
    out = {"id": spec.id, "baseline": spec.baseline, "source": spec.source, "hub_id": spec.hub_id,
           "revision": spec.revision, "path": spec.path, "package": spec.package}
    if spec.gguf_sha256:
        out["gguf_sha256"] = spec.gguf_sha256
    elif spec.source == "gguf" and spec.path:
        out["gguf_sha256"] = file_sha256(Path(spec.path))
    if spec.source in ("local", "package") and not spec.gguf:
        try:
            from .access import folder as model_folder
            folder = Path(model_folder(spec))
            files = sorted(folder.glob("*.safetensors"))
            out["weights_sha256"] = {f.name: file_sha256(f) for f in files} or None
        except Exception:  # noqa: BLE001 - provenance must never stop a run; the verdicts say what failed
            out["weights_sha256"] = None
    if spec.package:
        try:
            out["package_version"] = metadata.version(spec.package)
        except metadata.PackageNotFoundError:
            pass
    return out


def packages() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def machine() -> dict:
    """The machine a run or a benchmark was measured on: CPU model, cores, platform, and the GPU where one is
    used (performance figures are meaningless without it)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    out = {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(terse=True)}
    try:
        import torch
        if torch.cuda.is_available():
            out["gpu"] = torch.cuda.get_device_name(0)
    except Exception:  # noqa: BLE001 - a description, never a reason to fail
        pass
    return out


def benchmark_record(script: str, argv: list[str] | None, started: float) -> dict:
    """Where a benchmark's figures come from, as its ``--json`` file begins: the command that reproduces them, the
    date, the benchmark's wall time (``started``: its ``time.time()`` at the start), the machine and the packages."""
    import sys
    import time
    return {"command": f"python {script} " + " ".join(argv if argv is not None else sys.argv[1:]),
            "when": time.strftime("%Y-%m-%d %H:%M:%S"), "wall_s": round(time.time() - started, 1),
            "machine": machine(), "packages": packages()}


def lock_diff(lock: Path) -> list[str]:
    """``name locked -> installed`` for each package of a lock file (``name==version`` lines, e.g. this
    repository's constraints/ci.txt) whose installed version differs; empty when the file does not exist."""
    import re
    out = []
    if not lock.is_file():
        return out
    for line in lock.read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==(\S+)", line.strip())
        if not m:
            continue
        try:
            have = metadata.version(m.group(1)).split("+")[0]
        except metadata.PackageNotFoundError:
            have = "not installed"
        if have != m.group(2):
            out.append(f"{m.group(1)} {m.group(2)} -> {have}")
    return out


@dataclass(frozen=True)
class Run:
    """One run of the history (a line of history.jsonl): when, its models and results, and the line as written."""
    when: str
    models: list
    results: list[ClaimResult]
    record: dict = field(default_factory=dict, repr=False, compare=False)


def as_run(record: dict) -> Run:
    """A history line (:func:`run_record`, or one read back) as a :class:`Run`."""
    return Run(str(record.get("when", "")), list(record.get("models") or []),
               [ClaimResult.from_json(r) for r in record["results"]], record)


KEEP = ("claim", "model", "baseline", "layer", "verdict", "numbers", "roles", "drift", "headline", "message",
        "snapshot")  # what a history line keeps of each result (no figures, docs or node ids)


def run_record(results: list[ClaimResult], meta: dict, status: int, specs=()) -> dict:
    """The history line of one run: what ran, on what, and per claim x model its verdict and numbers."""
    return {"version": SCHEMA, "when": meta.get("when") or time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": meta.get("command"),
            "device": meta.get("device"), "device_used": meta.get("device_used"), "dtype": meta.get("dtype"),
            "exit_status": status,
            "models": meta.get("models"), "provenance": [provenance(s) for s in specs] or meta.get("provenance", []),
            "packages": meta.get("packages") or packages(),
            "results": [{k: v for k, v in r.to_json().items() if k in KEEP or k == "schema"} for r in results]}


def append(folder: Path, record: dict) -> Path:
    """Append one run to ``folder/history.jsonl`` (created if missing); earlier lines are never rewritten."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FILE
    line = (json.dumps(record, separators=(",", ":"), default=str) + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
    return path


def load(folder: Path) -> tuple[list[Run], list[str]]:
    """The runs recorded in ``folder/history.jsonl``, oldest first, and a warning per line that could not be read
    (such a line is left in the file, and left out of the plots): not JSON, not a run, or of a version this one
    does not read (lines without a version are of version 2)."""
    path = folder / FILE
    if not path.exists():
        return [], []
    runs, bad = [], []
    with open(path, "rb") as f:
        for i, raw in enumerate(f, 1):
            try:
                run = json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError):
                bad.append(f"{path}:{i} is not a JSON line (left as it is, not plotted)")
                continue
            if not (isinstance(run, dict) and isinstance(run.get("results"), list)
                    and all(isinstance(r, dict) and "claim" in r and "model" in r for r in run["results"])):
                bad.append(f"{path}:{i} is not a run of this history format (an object with 'results', each with "
                           "'claim' and 'model'; left as it is, not plotted)")
                continue
            why = readable(run.get("version", 2))
            if why:
                bad.append(f"{path}:{i}: {why} (left as it is, not plotted)")
                continue
            try:
                runs.append(as_run(run))
            except (KeyError, TypeError, ValueError) as e:
                bad.append(f"{path}:{i}: a result cannot be read ({type(e).__name__}: {e}; left as it is, not "
                           "plotted)")
    return runs, bad


def effect_values(numbers: dict, roles: dict) -> dict[str, float]:
    """The effect numbers of one result as plottable scalars: a scalar effect as itself, a list (or the field of a
    list of records) as its mean (``mean |x|`` for a field of records, whose signs differ by component, and for a
    list whose numbers differ in sign). The effect paths are parsed by probes/drift.py (:func:`effect_patterns`)."""
    from .roles import effect_patterns, node_at
    out = {}
    for head, key in effect_patterns(roles):
        node = node_at(numbers, head)
        if key and isinstance(node, list):
            vals = [abs(x[key]) for x in node if isinstance(x, dict) and isinstance(x.get(key), (int, float))]
            if vals:
                out[f"mean |{head}.{key}|"] = sum(vals) / len(vals)
        elif isinstance(node, list):
            vals = [x for x in node if isinstance(x, (int, float)) and not isinstance(x, bool)]
            if vals and (all(v >= 0 for v in vals) or all(v <= 0 for v in vals)):
                out[f"mean {head}"] = sum(vals) / len(vals)
            elif vals:  # numbers of opposite sign (e.g. the strongest positive and negative neuron's t): never
                out[f"mean |{head}|"] = sum(abs(v) for v in vals) / len(vals)  # averaged with their signs
        elif isinstance(node, (int, float)) and not isinstance(node, bool):
            out[head] = float(node)
    return out


def points(runs: list[Run]) -> dict[str, dict[str, list[dict]]]:
    """claim -> lineage (registry id) -> points in order: {"x": label, "verdict", "values": {effect: value}}.
    Per-layer claims are averaged over their layers; a point's verdict is its worst layer's."""
    out: dict[str, dict[str, list[dict]]] = {}
    for i, run in enumerate(runs):
        date = run.when[:16]
        multi = len(runs) > 1
        k_of: dict[tuple, int] = {}  # the position of a model within its lineage in this run
        by: dict[tuple, list[ClaimResult]] = {}
        for r in run.results:
            if r.verdict == Verdict.SKIPPED:
                continue
            by.setdefault((r.claim, r.model), []).append(r)
        order = run.models
        for (claim, model), rs in sorted(by.items(), key=lambda kv: order.index(kv[0][1]) if kv[0][1] in order
                                         else len(order)):
            lineage = rs[0].baseline or model
            vals: dict[str, list[float]] = {}
            for r in rs:
                for k, v in effect_values(r.numbers or {}, r.roles or {}).items():
                    vals.setdefault(k, []).append(v)
            verdict = min((r.verdict for r in rs), key=lambda v: v.rank)
            label = model.split("@", 1)[1] if "@" in model else model
            k = k_of[(claim, lineage)] = k_of.get((claim, lineage), -1) + 1
            out.setdefault(claim, {}).setdefault(lineage, []).append(
                {"x": f"{date}\n{label}" if multi else label, "slot": (i, k), "date": date, "label": label,
                 "verdict": verdict, "values": {k: sum(v) / len(v) for k, v in vals.items()}})
    return out


def _png(fig) -> str:
    """A finished figure (a ``matplotlib.figure.Figure``, never pyplot's: the user's matplotlib state is left
    alone) as base64 PNG, embedded in report.html."""
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    return base64.b64encode(buf.getvalue()).decode()


def trends(runs: list[Run], min_points: int = 2) -> dict[str, str]:
    """claim -> a PNG (base64) of its effect numbers across the runs / candidates, for each claim with a lineage
    of at least ``min_points`` points."""
    from matplotlib.figure import Figure

    out = {}
    for claim, lineages in points(runs).items():
        lineages = {k: v for k, v in lineages.items() if len(v) >= min_points}
        if not lineages:
            continue
        keys = list(dict.fromkeys(k for pts in lineages.values() for p in pts for k in p["values"]))[:4] or ["(none)"]
        # one x position per (run, position of the model in its lineage in that run), shared by all lineages, so
        # that the lines of several models over several nights line up by run
        slots = sorted({p["slot"] for pts in lineages.values() for p in pts})
        labels = {}
        for sl in slots:
            names = {p["x"] for pts in lineages.values() for p in pts if p["slot"] == sl}
            labels[sl] = names.pop() if len(names) == 1 else \
                next(p["date"] for pts in lineages.values() for p in pts if p["slot"] == sl) + (f" #{sl[1] + 1}"
                                                                                               if sl[1] else "")
        fig = Figure(figsize=(4.2 * len(keys) + 1.0, 3.6))
        axes = fig.subplots(1, len(keys), squeeze=False)
        for ax, key in zip(axes[0], keys):
            for lineage, pts in lineages.items():
                xs = [slots.index(p["slot"]) for p in pts]
                ys = [p["values"].get(key) for p in pts]
                ok = [(x, y) for x, y in zip(xs, ys) if y is not None]
                if ok:
                    ax.plot(*zip(*ok), marker="o", label=lineage)
                for x, p in zip(xs, pts):
                    if p["verdict"] in BREAKS:
                        ax.axvline(x, color=BREAKS[p["verdict"]], alpha=0.25, lw=6)
                        ax.text(x, 0.02, p["verdict"], rotation=90, transform=ax.get_xaxis_transform(),
                                ha="center", va="bottom", fontsize=8, color=BREAKS[p["verdict"]])
            ax.set_xticks(range(len(slots)), [labels[sl] for sl in slots], rotation=30, ha="right", fontsize=7)
            lo, hi = ax.get_ylim()  # at least 10% of the largest |value| tall: float noise must not look like a cliff
            span = 0.1 * max((abs(p["values"][key]) for pts in lineages.values() for p in pts if key in p["values"]),
                             default=0.0)
            if hi - lo < span:
                mid = (hi + lo) / 2
                ax.set_ylim(mid - span / 2, mid + span / 2)
            ax.set_title(key, fontsize=9)
            ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=7, loc="best")
        fig.suptitle(f"{claim}: effect across runs (bands: broken / error / known failure)", fontsize=10)
        out[claim] = _png(fig)
    return out


def forests(results: list[ClaimResult], runs: list[Run] | None = None) -> dict[str, str]:
    """claim -> a PNG (base64) forest plot of its headline effect with its 95% interval: for every model and
    candidate of this run, the recorded snapshot's value beside it (grey), and with ``runs`` (a history) every
    earlier run's point. Claims whose effect is not one number (per-layer profiles) have none."""
    from matplotlib.figure import Figure

    from .compare import headline
    rows: dict[str, list[tuple]] = {}
    for run in (runs or [])[:-1] if runs else []:  # the last history line is this run: drawn from ``results``
        when = run.when[:16]
        for r in run.results:
            if r.layer is None and r.numbers:
                h = headline(r.numbers, r.roles or {})
                if h is not None:
                    rows.setdefault(r.claim, []).append((f"{r.model} {when}", h[0], h[1], h[2], "history"))
    for r in results:
        h = r.headline
        if r.layer is not None or h is None or not isinstance(h.value, (int, float)):
            continue
        label = f"{r.baseline or r.model} (recorded)"  # once per registry model, candidates or not
        if h.old is not None and label not in [x[0] for x in rows.get(r.claim, [])]:
            rows.setdefault(r.claim, []).append((label, h.path, h.old, h.old_ci, "recorded"))
        rows.setdefault(r.claim, []).append((f"{r.model}: {r.verdict}", h.path, h.value, h.ci, r.verdict))
    out = {}
    colours = {"recorded": "#888888", "history": "#9db4d0", "broken": "#c0392b", "precondition failed": "#c0392b",
               "holds but changed": "#d68910", "holds within noise": "#1e8449", "holds": "#1e8449"}
    for claim, rs in rows.items():
        fig = Figure(figsize=(6.5, 0.45 * len(rs) + 1.2))
        ax = fig.subplots()
        for i, (label, path, v, ci, kind) in enumerate(rs):
            y = len(rs) - 1 - i
            c = colours.get(kind, "#1f4e79")
            if ci:
                ax.plot(ci, [y, y], color=c, lw=2.5, alpha=0.8)
            ax.plot([v], [y], "o", color=c, ms=6)
        ax.set_yticks(range(len(rs)), [r[0] for r in rs][::-1], fontsize=8)
        ax.set_xlabel(f"{rs[0][1]}: dot = value, bar = 95% bootstrap interval", fontsize=8)
        ax.grid(axis="x", alpha=0.3)
        ax.set_title(f"{claim}: headline effect by model", fontsize=9)
        out[claim] = _png(fig)
    return out
