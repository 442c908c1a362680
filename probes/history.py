"""A finding's history: an append-only record of runs, and the points of each claim's effect across them.

``pytest --history DIR`` appends one JSON line per run to ``DIR/history.jsonl``: date, command, the models with
their provenance (source, revision, weights or GGUF hash), package versions, device, dtype, and per claim x model
the verdict and its numbers with their roles. Lines are never rewritten: a run appends one line under an exclusive
file lock with a single ``write`` on a file opened for appending (two runs at once, or an interrupted one, leave
whole lines). Only the controller writes (under pytest-xdist the workers never touch the file).

:func:`points` turns runs (the history, or one run that holds a series of candidates, e.g. a training trajectory
``--models gpt2-organism=ckpt-a,gpt2-organism=ckpt-b``) into the points that probes/render/plots.py draws, one figure per claim: one panel per effect number, one
line per model lineage (a registry model and its candidates), x = the runs in order, broken / error / known-failure
points marked.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import platform
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from .results import SCHEMA, ClaimResult, RunInfo, Verdict, readable

FILE = "history.jsonl"
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
    out: list[str] = []
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


def run_record(results: list[ClaimResult], info: RunInfo, status: int, specs=()) -> dict:
    """The history line of one run: what ran, on what, and per claim x model its verdict and numbers."""
    return {"version": SCHEMA, "when": info.when or time.strftime("%Y-%m-%d %H:%M:%S"), "command": info.command,
            "device": info.device, "device_used": info.device_used, "dtype": info.dtype, "exit_status": status,
            "models": info.models, "provenance": [provenance(s) for s in specs] or info.provenance,
            "packages": info.packages or packages(),
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
    list whose numbers differ in sign). The effect paths are parsed by probes/roles.py (:func:`effect_patterns`)."""
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
            nth = k_of[(claim, lineage)] = k_of.get((claim, lineage), -1) + 1
            out.setdefault(claim, {}).setdefault(lineage, []).append(
                {"x": f"{date}\n{label}" if multi else label, "slot": (i, nth), "date": date, "label": label,
                 "verdict": verdict, "values": {k: sum(v) / len(v) for k, v in vals.items()}})
    return out
