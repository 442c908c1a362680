"""The documentation site (issue 30): its generated pages are current, it builds in strict mode, and its start page
and an API page render in a real browser."""
from __future__ import annotations

import importlib.util
import json
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


def test_each_speedup_measurement_has_its_paragraph(tmp_path, monkeypatch):
    """docs/data/speedup*.json: one measurement per file, each on its machine, oldest first on the page."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import docs
    real = json.loads((ROOT / "docs/data/speedup.json").read_text())
    for name, cpu, when, ratio in (("speedup-b.json", "CPU B", "2026-01-02 00:00:00", 1.21),
                                   ("speedup.json", "CPU A", "2026-01-01 00:00:00", 1.35)):
        d = {**real, "machine": {**real["machine"], "cpu": cpu}, "when": when, "ratio": ratio}
        (tmp_path / name).write_text(json.dumps(d))
    monkeypatch.setattr(docs, "DATA", tmp_path)
    page = docs.performance_page()
    a, b = page.index("**1.35x**"), page.index("**1.21x**")
    assert a < b and "of CPU A" in page[a:b] and "of CPU B" in page[b:]


def build(site: Path, config: Path = ROOT / "mkdocs.yml") -> subprocess.CompletedProcess:
    """The build exactly as README and mkdocs.yml write it (``mkdocs build --strict``), into ``site``: no flag that
    hides warnings (``-q`` drops them before strict mode counts them, so a quiet build passes with warnings)."""
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
                          cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


def test_the_site_builds_strictly_and_renders_in_a_browser(tmp_path):
    """mkdocs build --strict (broken links, missing API objects, pages left out of the navigation and any other
    warning fail); the start page and the API page of the suite layer render in headless Chromium with their
    content."""
    _need("mkdocs", 'pip install -e ".[docs]"')
    _need("mkdocstrings", 'pip install -e ".[docs]"')
    site = tmp_path / "site"
    r = build(site)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "WARNING" not in r.stderr, r.stderr[-3000:]
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


def test_the_strict_build_fails_on_a_page_left_out_of_the_navigation(tmp_path):
    """The check can fail: the same build of the same configuration, with one page added to the docs that no
    navigation entry lists, aborts and names the page."""
    _need("mkdocs", 'pip install -e ".[docs]"')
    import shutil
    docs = tmp_path / "docs"
    shutil.copytree(ROOT / "docs", docs)
    (docs / "stray.md").write_text("# A page no navigation lists\n")
    cfg = (ROOT / "mkdocs.yml").read_text()
    cfg = re.sub(r"^docs_dir: .*$", f"docs_dir: {docs}", cfg, flags=re.M)
    cfg = cfg.replace("paths: [.]", f"paths: [{ROOT}]")  # mkdocstrings: the package, from the repository
    (tmp_path / "mkdocs.yml").write_text(cfg)
    r = build(tmp_path / "site", tmp_path / "mkdocs.yml")
    assert r.returncode != 0 and "stray.md" in r.stderr, r.stderr[-3000:]
    (docs / "stray.md").unlink()  # and without it, that configuration builds: the page was the reason
    assert build(tmp_path / "site", tmp_path / "mkdocs.yml").returncode == 0


def test_readme_picture_is_checked_against_the_drill_table(tmp_path, monkeypatch):
    """README's picture and its drill table come from one file (docs/data/drill.json): the check passes for the
    committed pair and fails when the table's data changes without a new picture, or the picture is replaced."""
    import shutil
    sys.path.insert(0, str(ROOT / "scripts"))
    import docs
    data, assets, committed = tmp_path / "data", tmp_path / "assets", docs.DATA / "drill.json"
    shutil.copytree(docs.DATA, data)
    assets.mkdir()
    shutil.copy(docs.PICTURE, assets / "report.png")
    monkeypatch.setattr(docs, "DATA", data)
    monkeypatch.setattr(docs, "PICTURE", assets / "report.png")
    assert docs.picture_is_stale() == ""
    d = json.loads((data / "drill.json").read_text())
    d["results"][0]["verdict"] = "broken"
    (data / "drill.json").write_text(json.dumps(d))
    assert "changed since it was drawn" in docs.picture_is_stale()
    shutil.copy(committed, data / "drill.json")
    (assets / "report.png").write_bytes(b"another picture")
    assert "not the picture drawn" in docs.picture_is_stale()
