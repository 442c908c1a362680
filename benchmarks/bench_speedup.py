"""The default claims run at an earlier commit and at this checkout, back to back on one machine: wall times, their
ratio, exit statuses and the workers' peak memory, measured in one run (seconds do not travel between machines;
a ratio measured on one machine, minutes apart, does).

    python benchmarks/bench_speedup.py --base 6518fc3 [--command "pytest claims/ -n auto"] [--json FILE]

The base commit is checked out with ``git worktree`` into a temporary folder and run with this environment's
packages (the project's own modules are imported from the folder the run starts in); then this checkout runs. Both
runs get the same command, each with its own ``--artifacts`` folder. Memory: every 0.5 s the resident and anonymous
memory (resident less file-backed pages: weights read through mmap) of every process of the run, the largest of
each kept.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from probes.history import machine, packages  # noqa: E402

PAGE = os.sysconf("SC_PAGE_SIZE")


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (from /proc)."""
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo += kids.get(p, [])
    return out


def run(command: list[str], cwd: Path, artifacts: Path, preexec=None) -> dict:
    """Run ``command`` in ``cwd``; wall time, exit status, the largest resident/anonymous memory of one process.
    ``preexec``: called in the child before it runs (bench_memory.py: enter a memory cgroup)."""
    cmd = command + [f"--artifacts={artifacts}"]
    print(f"[speedup] {cwd}: {shlex.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=preexec)
    peak = {"rss": 0, "anon": 0}
    done = threading.Event()

    def sample():
        while not done.wait(0.5):
            for p in _tree(proc.pid):
                try:
                    v = Path(f"/proc/{p}/statm").read_text().split()
                except OSError:
                    continue
                peak["rss"] = max(peak["rss"], int(v[1]) * PAGE)
                peak["anon"] = max(peak["anon"], (int(v[1]) - int(v[2])) * PAGE)
    t = threading.Thread(target=sample, daemon=True)
    t.start()
    out, _ = proc.communicate()
    wall = time.perf_counter() - t0
    done.set()
    t.join()
    tail = out.strip().splitlines()[-1] if out.strip() else ""
    print(f"[speedup]   exit {proc.returncode} in {wall:.0f} s: {tail}", flush=True)
    return {"wall_s": round(wall, 1), "exit": proc.returncode, "summary": tail,
            "peak_rss_gb": round(peak["rss"] / 1e9, 2), "peak_anon_gb": round(peak["anon"] / 1e9, 2)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", required=True, help="the earlier commit")
    ap.add_argument("--command", default="python -m pytest claims/ -n auto -p no:cacheprovider -q",
                    help="the run to time (default: the default claims run)")
    ap.add_argument("--json", default=None, help="write the result here")
    ap.add_argument("--artifacts", type=Path, default=None,
                    help="keep each run's figures and reports in DIR/base and DIR/head (for scripts/docs.py --run "
                         "DIR/head/report.json); default: a temporary folder")
    a = ap.parse_args(argv)
    git = ["git", "-C", str(ROOT)]
    base = subprocess.check_output(git + ["rev-parse", a.base], text=True).strip()
    head = subprocess.check_output(git + ["rev-parse", "HEAD"], text=True).strip()
    code = ["probes", "claims", "fixtures", "conftest.py", "pyproject.toml"]  # what the run executes (not docs/data)
    dirty = bool(subprocess.check_output(git + ["status", "--porcelain", "--untracked-files=no", "--"] + code,
                                         text=True).strip())
    cmd = shlex.split(a.command)
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "base"
        subprocess.check_call(git + ["worktree", "add", "--detach", str(tree), base], stdout=subprocess.DEVNULL)
        try:
            art = (a.artifacts or Path(tmp)).resolve()
            res = {"base": {"commit": base, **run(cmd, tree, art / "base")},
                   "head": {"commit": head + ("+changes" if dirty else ""), **run(cmd, ROOT, art / "head")}}
        finally:
            subprocess.call(git + ["worktree", "remove", "--force", str(tree)])
    ratio = res["base"]["wall_s"] / res["head"]["wall_s"]
    print(f"[speedup] {base[:7]} {res['base']['wall_s']:.0f} s, {head[:7]} {res['head']['wall_s']:.0f} s: "
          f"{ratio:.2f}x")
    if a.json:
        Path(a.json).write_text(json.dumps({
            "command": "python benchmarks/bench_speedup.py " + " ".join(argv if argv is not None else sys.argv[1:]),
            "run": a.command, "when": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": machine(),
            "packages": packages(), **res, "ratio": round(ratio, 2)}, indent=1) + "\n")
        print(f"[speedup] wrote {a.json}")
    return 0 if all(r["exit"] in (0,) for r in res.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
