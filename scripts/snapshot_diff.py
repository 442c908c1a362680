"""Every recorded number whose value differs between a git revision and the working tree, with its noise floor:
the review of a deliberate re-recording.

    python scripts/snapshot_diff.py                 # against HEAD
    python scripts/snapshot_diff.py 0a4664c --all   # every number, also those that did not move

One line per number: the snapshot, the number's path, old -> new, the change in percent of the old value
and in units of its recorded float32 noise floor (``_noise.floor``; ``-`` where none is recorded). Keys that are
recorded beside the numbers (intervals, replicates, floors, provenance) are counted, not listed. Exit 0; read-only.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from probes import compare, roles  # noqa: E402


def _at(rev: str, path: str) -> dict | None:
    r = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, capture_output=True, text=True)
    return json.loads(r.stdout) if r.returncode == 0 else None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rev", nargs="?", default="HEAD", help="the git revision to compare with (default HEAD)")
    ap.add_argument("--all", action="store_true", help="list every number, also those that did not move")
    a = ap.parse_args(argv)
    changed = subprocess.run(["git", "diff", "--name-only", a.rev, "--", "snapshots"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout.split()
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "snapshots").rglob("*.json")) if a.all else changed
    moved = side = 0
    for f in files:
        old, new = _at(a.rev, f), json.loads((ROOT / f).read_text()) if (ROOT / f).exists() else None
        if old is None or new is None:
            print(f"{f}: {'added' if old is None else 'removed'}")
            continue
        floors = (old.get("_noise") or {}).get("floor", {})
        was = {p: v for p, _, v, _ in compare.leaves(old)}
        for p, _, v, _ in compare.leaves(new):
            o = was.get(p)
            if o is None or (o == v and not a.all):
                continue
            fl = floors.get(p)
            pct = f"{100 * (v - o) / abs(o):+.3g}%" if o else "-"
            units = f"{abs(v - o) / fl:.3g} floors" if fl else "- floors"
            print(f"{f}: {p} {o!r} -> {v!r} ({pct}, {units})")
            moved += o != v
        side += any(old.get(k) != new.get(k) for k in roles.IGNORED)
    print(f"{moved} recorded number(s) moved in {len(changed)} changed file(s); {side} file(s) with other keys "
          "changed (intervals, replicates, floors, provenance)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
