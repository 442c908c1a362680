"""The documentation site (issue 30): its generated pages are current, it builds in strict mode, and its start page
and an API page render in a real browser."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.test_history import browser, rendered

ROOT = Path(__file__).resolve().parents[1]


def _need(module: str, install: str):
    if importlib.util.find_spec(module) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{module} is not installed ({install}; .ci/run installs it)")
        pytest.skip(f"needs {module} ({install})")


def test_generated_pages_are_current():
    """The catalogue (from the claim markers, docstrings, registry and snapshots), the performance page, README's
    generated lines and every claim's figure: `python scripts/docs.py --check` names what is stale."""
    r = subprocess.run([sys.executable, "scripts/docs.py", "--check"], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def test_the_catalogue_check_fails_when_a_claim_changes(tmp_path, monkeypatch):
    """A claim whose docstring changed makes the catalogue stale (the check can fail)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import docs
    pages = docs.catalogue_pages()
    real = docs.claims

    def edited():
        cs = real()
        cs[0] = {**cs[0], "doc": cs[0]["doc"] + " (edited)"}
        return cs
    monkeypatch.setattr(docs, "claims", edited)
    changed = docs.catalogue_pages()
    assert [p.name for p in pages if pages[p] != changed[p]] == [f"{real()[0]['family']}.md"]


def test_the_site_builds_strictly_and_renders_in_a_browser(tmp_path):
    """mkdocs build --strict (broken links, missing API objects and warnings fail); the start page and the API page
    of the suite layer render in headless Chromium with their content."""
    _need("mkdocs", 'pip install -e ".[docs]"')
    _need("mkdocstrings", 'pip install -e ".[docs]"')
    site = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(site)], cwd=ROOT,
                       capture_output=True, text=True, timeout=600,
                       env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    start = rendered(site / "index.html", tmp_path)
    assert "interp-claims" in start and "Where to go next" in start, start[:1000]
    assert re.search(r'<img[^>]+src="assets/report.png"', start)
    api = rendered(site / "reference" / "suite" / "index.html", tmp_path)
    # mkdocstrings rendered the plugin's fixtures and the verdicts module from their docstrings
    assert "claim_snapshot" in api and "probes.verdicts" in api and "exit_status" in api, api[:1000]
    shot = tmp_path / "start.png"
    subprocess.run(browser(tmp_path) + ["--window-size=1200,1400", f"--screenshot={shot}",
                                        (site / "index.html").as_uri()], capture_output=True, timeout=120)
    import matplotlib.image as mpimg
    img = mpimg.imread(shot)
    assert img.shape[0] == 1400 and img[..., :3].std() > 0.05  # a rendered page, not a blank one
