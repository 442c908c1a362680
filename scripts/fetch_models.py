"""Download registry hub models at their pinned revisions into the local hub cache (safetensors, configs and
tokenizer files only), for a machine that can reach the hub (the nightly GPU workflow, a workstation).

    python scripts/fetch_models.py gpt2 gpt2-large

Models that are not hub models (organisms, packaged models) need no download and are skipped with a line.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from probes.errors import ProbeError  # noqa: E402
from fixtures.models import resolve  # noqa: E402

PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model", "tokenizer*"]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="registry ids or hub ids owner/name@revision (commas also split)")
    a = ap.parse_args(argv)
    for entry in [m for arg in a.models for m in arg.split(",") if m]:
        try:
            spec = resolve(entry)
        except ProbeError as e:
            ap.error(str(e))
        if spec.source != "hub":
            print(f"{entry}: {spec.source} model, nothing to download")
            continue
        from huggingface_hub import snapshot_download
        path = snapshot_download(spec.hub_id, revision=spec.revision, allow_patterns=PATTERNS)
        print(f"{entry}: {spec.hub_id}@{spec.revision} in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
