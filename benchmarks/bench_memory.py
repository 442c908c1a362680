"""How much memory a worker of the default run needs, measured: each model's claims in one process, once free and
once inside a memory cgroup capped at ``--limit`` GB, after the model's files were dropped from the page cache.

    python benchmarks/bench_memory.py [--models smollm2-135m,gemma3-270m] [--limit 3] [--json docs/data/memory.json]

A worker of ``pytest claims/ -n auto`` runs some of the models' claims one model (or, for models split by family, one
family) at a time and releases each before the next: one process running every claim of one model is the most any
worker holds for it. Resident memory alone does not say what that process needs: model weights and random-init
copies are read through mmap, and the kernel keeps their pages resident while nothing else wants the memory,
even those of a model the claim is not using. Under a cgroup limit the kernel must drop such pages (they are read
back from disk if used again) and the process is killed if what it cannot drop (anonymous memory: activations,
caches, the tokenizer, the libraries' heaps) and the pages it is using do not fit. So the capped run passes only if
the limit holds the process's working set; its time, beside the free run's, says what the cap costs.

Needs a writable cgroup memory controller (v2 ``memory.max`` or v1 ``memory.limit_in_bytes``), which root has on
most Linux machines; elsewhere the capped runs are reported as not run, with the reason.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_speedup import run  # noqa: E402
from probes.history import benchmark_record  # noqa: E402

CGROUP = Path("/sys/fs/cgroup")


class Cgroup:
    """A memory cgroup capped at ``limit`` bytes (v2, else v1); ``enter`` moves the calling process into it."""

    def __init__(self, name: str, limit: int):
        v2 = CGROUP / "cgroup.controllers"
        if v2.is_file() and "memory" in v2.read_text().split():
            self.path, self.v2 = CGROUP / name, True
        elif (CGROUP / "memory").is_dir():
            self.path, self.v2 = CGROUP / "memory" / name, False
        else:
            raise OSError("no cgroup memory controller under /sys/fs/cgroup")
        self.path.mkdir(exist_ok=True)
        (self.path / ("memory.max" if self.v2 else "memory.limit_in_bytes")).write_text(str(limit))
        if not self.v2 and (self.path / "memory.memsw.limit_in_bytes").exists():
            (self.path / "memory.memsw.limit_in_bytes").write_text(str(limit))  # no swapping past the cap

    def enter(self) -> None:
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def events(self) -> dict:
        """The most memory charged to the group (page cache included: at the cap once the weights were read) and
        how many processes the kernel killed for want of memory."""
        if self.v2:
            ev = dict(line.split() for line in (self.path / "memory.events").read_text().splitlines())
            peak = self.path / "memory.peak"
            return {"peak_charged_gb": round(int(peak.read_text()) / 1e9, 2) if peak.exists() else None,
                    "oom_kills": int(ev.get("oom_kill", 0))}
        oom = dict(line.split() for line in (self.path / "memory.oom_control").read_text().splitlines())
        return {"peak_charged_gb": round(int((self.path / "memory.max_usage_in_bytes").read_text()) / 1e9, 2),
                "oom_kills": int(oom.get("oom_kill", 0))}

    def remove(self) -> None:
        for _ in range(50):  # the processes must have left it
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)


def drop_cached(paths: list[Path]) -> int:
    """Drop the files' pages from the page cache (so that the capped run reads, and is charged for, what it maps);
    returns their bytes."""
    total = 0
    for p in paths:
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:
            continue
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            total += os.fstat(fd).st_size
        finally:
            os.close(fd)
    return total


def model_files(model: str) -> list[Path]:
    """The weights a run of ``model`` maps: its folder's and its random-init copies' (the disk cache)."""
    from probes import access
    from probes.gguf import cache_root
    from probes.registry import load_registry
    spec = load_registry(ROOT / "fixtures" / "models.toml")[model]
    files = [p for p in Path(access.folder(spec)).rglob("*") if p.is_file()]
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in spec.id)
    return files + [Path(p) for p in glob.glob(str(cache_root() / "random" / f"{name}-seed*.safetensors"))]


def main(argv=None) -> int:
    started = time.time()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", default="smollm2-135m,gemma3-270m", help="registry ids, comma-separated")
    ap.add_argument("--limit", type=float, default=3.0, help="the cap, GB (default 3)")
    ap.add_argument("--command", default="python -m pytest claims/ -n 0 -p no:cacheprovider -q",
                    help="the run (default: every claim of the model, one process); --models is added")
    ap.add_argument("--json", default=None, help="write the result here")
    a = ap.parse_args(argv)
    limit = int(a.limit * 1e9)
    rows = []
    for model in [m.strip() for m in a.models.split(",") if m.strip()]:
        cmd = shlex.split(a.command) + ["--models", model]
        if cmd[0] == "python":
            cmd[0] = sys.executable  # this environment's, where the project is installed
        with tempfile.TemporaryDirectory() as tmp:
            print(f"[memory] {model}: free", flush=True)
            free = run(cmd, ROOT, Path(tmp) / "free")
            row = {"model": model, "free": free}
            try:
                cg = Cgroup(f"interp-claims-bench-{os.getpid()}", limit)
            except OSError as e:
                row["capped"] = {"not_run": f"no writable cgroup memory controller ({e}); run as root"}
                print(f"[memory]   capped run not run: {row['capped']['not_run']}", flush=True)
            else:
                try:
                    gone = drop_cached(model_files(model))
                    print(f"[memory] {model}: capped at {a.limit:g} GB ({gone / 1e9:.2f} GB of weights dropped from "
                          f"the page cache first)", flush=True)
                    capped = run(cmd, ROOT, Path(tmp) / "capped", preexec=cg.enter)
                    row["capped"] = {**capped, **cg.events()}
                finally:
                    cg.remove()
                c = row["capped"]
                print(f"[memory]   capped: exit {c['exit']}, {c['wall_s'] / free['wall_s']:.2f}x the free run's "
                      f"time, {c['oom_kills']} processes killed for want of memory", flush=True)
        rows.append(row)
    out = {**benchmark_record("benchmarks/bench_memory.py", argv, started), "limit_gb": a.limit, "run": a.command,
           "rows": rows}
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n")
        print(f"[memory] wrote {a.json}")
    ok = all(r["free"]["exit"] == 0 and r.get("capped", {}).get("exit", 0) == 0 for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
