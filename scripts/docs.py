"""Regenerate the documentation's generated pages from the code and from measured runs (never typed by hand).

    python scripts/docs.py                       # catalogue, performance page, architecture figure, README's figures
    python scripts/docs.py --check               # exit 1 naming each generated page that is stale (tests run it)
    python scripts/docs.py --figures artifacts   # also copy each claim's figure from a run's artifacts folder
    python scripts/docs.py --run artifacts/report.json   # take the suite's run time from a claims run
    python scripts/docs.py --drill DIR/report.json       # README's drill table and its picture from a candidate run
    python benchmarks/bench_patching.py --smollm2 --json docs/data/bench_patching.json   # the benchmark's table

What it writes:

* ``docs/catalogue/index.md`` and one page per claim family (``docs/catalogue/<family>.md``): from the claim
  markers (id, family, source, null, criterion, kinds), the test functions' docstrings and the claims modules'
  docstrings, and per model of ``fixtures/models.toml`` whether the claim runs there and the registry's known
  failures with their measured numbers; each claim's figure from ``docs/catalogue/figures/`` (``--figures``).
* ``docs/performance.md``: from ``docs/data/claims_run.json`` (``--run``: a claims run's report.json, its wall
  time, tests, per-model time, command, date, machine and packages) and ``docs/data/bench_patching.json``.
* ``docs/assets/architecture.png``: the layers of ``probes`` and the imports between its modules, read from the
  code.
* the lines of README.md between ``<!-- generated: NAME -->`` and ``<!-- /generated -->``; the drill's verdict
  table and README's picture of it (``docs/assets/report.png``, rendered in headless Chromium) both from
  ``docs/data/drill.json`` (``--drill``: a candidate run's report.json); ``--check`` finds a picture that is not
  that table's (``docs/data/picture.json`` holds the hashes of the HTML it was rendered from and of the PNG).
"""
from __future__ import annotations

import argparse
import ast
import json
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from fixtures.models import registry as load_registry  # noqa: E402

DOCS = ROOT / "docs"
CAT = DOCS / "catalogue"
DATA = DOCS / "data"
FAMILY_TITLES = {"grammar": "Noun/verb-tuned MLP neurons", "ioi": "Attention heads that carry IOI",
                 "lesion": "Him/her neurons and lesioning", "neuron": "The tall/short neuron investigation",
                 "recommender": "MLP-projection recommendations",
                 "induction": "Previous-token and induction heads", "sinks": "Attention sinks and massive activations",
                 "successor": "Successor heads", "tracing": "Localised factual recall, by causal tracing"}
FAMILY_SOURCES = {"grammar": "GPT-Neo-125M, seed 000", "ioi": "GPT-2, seed 004; Wang et al. 2022",
                  "lesion": "BERT-large, seed 001", "neuron": "GPT-2-large L25.N4413, seed 002; Miller & Neo 2023",
                  "recommender": "GPT-2, seed 003",
                  "induction": "Elhage et al. 2021; Olsson et al. 2022; replicated across model families",
                  "sinks": "Xiao et al. 2023; Sun et al. 2024; replicated across model families",
                  "successor": "Gould et al. 2023; found in GPT-2, Pythia and Llama-2 from 31M to 12B parameters",
                  "tracing": "Meng et al. 2022 (ROME), GPT-2 XL and GPT-J; since replicated in other families, "
                             "e.g. Mamba"}
# the layers of the package (docs/architecture.md); every module of probes/ must be in one
LAYERS = {
    "the run": ["plugin", "session", "publish", "merge"],
    "presentation": ["render.cells", "render.text", "render.html", "render.plots", "render.colours"],
    "the suite": ["selection", "schedule", "settle", "results", "artifacts", "snapshot", "roles", "compare", "drift",
                  "drift_text", "paired", "verdicts", "history", "checks"],
    # one package per claim family (probes/families/<family>/): its analysis and figures (neuron: its workflow too)
    "families": [f"families.{f}.{m}" for f in ("grammar", "ioi", "lesion", "neuron", "recommender", "induction",
                                               "sinks", "successor", "tracing") for m in ("analysis", "figures")]
    + ["families.neuron.workflow"],
    "analyses": ["attention", "stats", "figures"],
    "model access": ["registry", "access", "loading", "devices", "gguf", "adapters", "hooks", "tokens", "log", "errors"],
}
# which layers a layer's modules may import (tests/test_layers.py): each its own and those below it
ALLOWED = {"model access": {"model access"}, "analyses": {"model access", "analyses"},
           # and within "families" a module imports its own family's only (tests/test_layers.py)
           "families": {"model access", "analyses", "families"},
           "the suite": {"model access", "the suite"}, "presentation": {"model access", "the suite", "presentation"},
           "the run": {"model access", "the suite", "presentation", "the run"}}
# the model whose figure illustrates a claim in the catalogue: the first of these that runs it and where it holds
FIGURE_MODELS = ["smollm2-135m", "gemma3-270m", "minilm", "gpt2-organism", "bert-organism", "gpt-neo-organism"]


def _constants(body: list) -> dict:
    """A claims module's module-level NAME = <literal> (e.g. FAMILY = "grammar"), as its markers use them."""
    consts = {}
    for node in body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                consts[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                pass
    return consts


def claims() -> list[dict]:
    """Every claim of claims/, in file order: its marker's keywords, docstring and whether it is per layer."""
    out = []
    for f in sorted((ROOT / "claims").glob("test_*.py")):
        body = ast.parse(f.read_text()).body
        consts = _constants(body)

        def value(v, consts=consts, f=f):  # a literal, a module constant, or an f-string / expression of them
            try:
                return ast.literal_eval(v)
            except ValueError:
                return eval(compile(ast.Expression(v), str(f), "eval"), {"__builtins__": {}}, consts)  # noqa: S307
        for node in (n for n in body if isinstance(n, ast.FunctionDef)):
            for dec in node.decorator_list:
                if isinstance(dec, ast.Call) and getattr(dec.func, "attr", "") == "claim":
                    kw = {k.arg: value(k.value) for k in dec.keywords}
                    out.append({**kw, "kinds": kw.get("kinds"), "file": f.name, "test": node.name,
                                "per_layer": any(a.arg == "layer" for a in node.args.args),
                                "doc": ast.get_docstring(node) or ""})
    return out


def family_doc(family: str) -> str:
    f = ROOT / "claims" / f"test_{family}.py"
    return ast.get_docstring(ast.parse(f.read_text())) or "" if f.exists() else ""


def cell(c: dict, m) -> str:
    """``holds`` (a snapshot is recorded: recorded only when the claim passed), ``holds in k layers``, ``known
    failure`` (the registry's, with its numbers on the family's page), ``not measured`` (it runs there, but no
    snapshot is recorded: a reference model without its weights here), ``-`` (the family or kind does not apply)."""
    if c["family"] not in m.families or (c["kinds"] and m.kind not in c["kinds"]):
        return "-"
    if c["id"] in m.expectation(c["family"]).get("known_failures", {}):
        return "known failure"
    folder = ROOT / "snapshots" / c["file"].removesuffix(".py")
    if c["per_layer"]:
        n = len(list(folder.glob(f"{glob_escape(c['test'])}[[]{glob_escape(m.id)}-L*].json")))
        return f"holds in {n} layers" if n else "not measured"
    return "holds" if (folder / f"{c['test']}[{m.id}].json").exists() else "not measured"


def detects() -> dict[str, str]:
    """Per claim, the smallest change of its headline effect the recorded stimuli resolve, as measured in the drill
    (docs/data/drill.json, a candidate of SmolLM2-135M against its recorded findings): the half-width of the change's
    paired 95% interval in percent of the recorded value (for a per-layer claim, the median over its layers)."""
    f = DATA / "drill.json"
    if not f.exists():
        return {}
    d = json.loads(f.read_text())
    found: dict[str, list] = {}
    for r in d["results"]:
        h = r.get("headline") or {}
        if h.get("resolves") is not None:
            found.setdefault(r["claim"], []).append((h["resolves"], h["path"]))
    out = {}
    for claim, xs in found.items():
        xs.sort()
        v, path = xs[len(xs) // 2]
        out[claim] = (f"+-{v:.2g}% of `{path}`" if v else f"`{path}` exactly (the stimuli's own number)") + (
            f" (median of {len(xs)} layers)" if len(xs) > 1 else "")
    return out


def glob_escape(s: str) -> str:
    return re.sub(r"([\[\]*?])", r"[\1]", s)


def _md(s: str) -> str:
    return str(s).replace("|", "\\|").replace("\n", " ")


def catalogue_pages() -> dict[Path, str]:
    reg = list(load_registry().values())
    cs = claims()
    fams = list(dict.fromkeys(c["family"] for c in cs))
    res = detects()
    drill_of = json.loads((DATA / "drill.json").read_text())["command"] if (DATA / "drill.json").exists() else ""
    pages = {}
    idx = ["# Claims catalogue", "",
           "<!-- generated by python scripts/docs.py from the claim markers, docstrings and fixtures/models.toml -->",
           "",
           "Every claim of `claims/`, one page per family. A cell says whether the claim runs on that model of "
           "`fixtures/models.toml` and what was recorded: `holds` (a snapshot is recorded, which happens only when the "
           "claim passed; `holds in k layers` for a per-layer claim), `known failure` where the registry records "
           "that it does not hold there (the family's page gives the measured numbers), `not measured` where it runs "
           "but nothing is recorded (the reference models `gpt2`, `gpt2-large`, `gpt-neo-125m`, "
           "`bert-large-uncased` run where their weights are in the local hub cache), `-` where the family or kind "
           "does not apply.", "",
           "*Detects* is the smallest change of the claim's headline effect that its recorded stimuli resolve: the "
           "half-width of the paired 95% interval of the change (the same stimuli and seeded bootstrap draws on both "
           "versions), in percent of the recorded value, measured on the drill's new version of SmolLM2-135M "
           f"(`{drill_of}`, docs/data/drill.json). A change must also exceed the number's noise floor and survive "
           "Benjamini-Hochberg over the run; `-` where the drill measured no paired interval for the headline.", ""]
    idx.append("| claim | family | detects | " + " | ".join(m.id for m in reg) + " |")
    idx.append("|---|---|---|" + "---|" * len(reg))
    for c in cs:
        idx.append(f"| [`{c['id']}`]({c['family']}.md#{anchor(c['id'])}) | {c['family']} | {res.get(c['id'], '-')} | "
                   + " | ".join(cell(c, m) for m in reg) + " |")
    pages[CAT / "index.md"] = "\n".join(idx) + "\n"
    for fam in fams:
        doc = family_doc(fam)
        lines = [f"# {FAMILY_TITLES.get(fam, fam)} (`{fam}`)", "",
                 "<!-- generated by python scripts/docs.py from claims/ and fixtures/models.toml -->", "",
                 doc.split("\n\n")[0].replace("\n", " "), "", "\n\n".join(doc.split("\n\n")[1:]).strip(), ""]
        for c in (c for c in cs if c["family"] == fam):
            lines += [f"## `{c['id']}`", "", c["doc"].strip(), "",
                      f"- **Source:** {c.get('source', '')}", f"- **Null control:** {c.get('null', '')}",
                      f"- **Criterion:** {c.get('criterion', '')}",
                      f"- **Detects:** {res.get(c['id'], 'no paired interval measured in the drill')} (the paired "
                      "95% half-width of a change on the same stimuli, SmolLM2-135M drill; see the index)",
                      f"- **Test:** `claims/{c['file']}::{c['test']}`" + (" (one test per layer)" if c["per_layer"]
                                                                          else ""), ""]
            runs = [m for m in reg if cell(c, m) != "-"]
            lines += ["| model | tier | recorded verdict |", "|---|---|---|"]
            lines += [f"| {m.id} | {m.tier} | {cell(c, m)} |" for m in runs]
            rest = [m.id for m in reg if m not in runs]
            lines += [""] + ([f"Not for {', '.join(rest)} (family or kind)." , ""] if rest else [])
            known = [(m.id, m.expectation(fam)["known_failures"][c["id"]]) for m in reg
                     if c["id"] in m.expectation(fam).get("known_failures", {})]
            if known:
                lines += ["Known failures (registry, with the measured numbers):", ""]
                lines += [f"- **{mid}**: {_md(why)}" for mid, why in known] + [""]
            fig = CAT / "figures" / f"{c['id']}.png"
            text = fig.with_suffix(".md")
            if not fig.exists() and text.exists():
                src = json.loads(fig.with_suffix(".json").read_text())["model"]
                body = [ln for ln in text.read_text().splitlines() if ln.strip()]
                lines += [f"The claim's artifact on {src} (`artifacts/<model>/{c['id']}.md`), its first lines:", ""]
                lines += ["> " + body[0].lstrip("# ")] + [">", *("> " + ln for ln in body[1:11])] + [""]
            if fig.exists():
                meta = json.loads(fig.with_suffix(".json").read_text()) if fig.with_suffix(".json").exists() \
                    else {"model": "a model of the registry"}
                src = meta["model"]
                where = f"{src}, where it is a known failure (no model here holds it)" if meta.get("verdict") else src
                lines += [f"![{c['id']} on {src}](figures/{c['id']}.png)", "",
                          f"*The claim's figure on {where}, from `python scripts/docs.py --figures <artifacts>`.*", ""]
        pages[CAT / f"{fam}.md"] = "\n".join(lines).rstrip() + "\n"
    return pages


def anchor(claim_id: str) -> str:
    """MkDocs' heading id of ``## `claim.id` ``."""
    return re.sub(r"[^a-z0-9_\-]", "", claim_id.lower().replace(" ", "-"))


def copy_figures(artifacts: Path) -> list[str]:
    """Each claim's figure from a run's artifacts folder, taken from the first model of FIGURE_MODELS that runs
    it without a known failure; returns the claims without one."""
    reg = load_registry()
    (CAT / "figures").mkdir(parents=True, exist_ok=True)
    missing = []
    for c in claims():
        # where the claim holds; else (a finding no model here shows) the figure of a known failure, so named
        for verdict in ("holds", "known failure"):
            found = False
            for mid in FIGURE_MODELS + list(reg):
                m = reg.get(mid)
                png = artifacts / mid / f"{c['id']}.png"
                if not png.is_file():  # a claim whose artifact is text (neuron.top_contexts: the top contexts)
                    png = artifacts / mid / f"{c['id']}.md"
                if m is not None and cell(c, m).startswith(verdict) and png.is_file():
                    shutil.copy(png, CAT / "figures" / f"{c['id']}{png.suffix}")
                    (CAT / "figures" / f"{c['id']}.json").write_text(
                        json.dumps({"model": mid} | ({"verdict": verdict} if verdict != "holds" else {})) + "\n")
                    found = True
                    break
            if found:
                break
        else:
            missing.append(c["id"])
    return missing


def import_run(report: Path) -> None:
    """docs/data/claims_run.json from a claims run's report.json: wall time, tests and time per model, verdicts."""
    r = json.loads(report.read_text())
    meta = r["meta"]
    per_model: dict[str, list] = {}
    for x in r["results"]:
        per_model.setdefault(x["model"], []).append(x.get("duration") or 0.0)
    verdicts: dict[str, int] = {}
    for x in r["results"]:
        verdicts[x["verdict"]] = verdicts.get(x["verdict"], 0) + 1
    per_family: dict[str, list] = {}
    for x in r["results"]:
        per_family.setdefault(x["claim"].split(".")[0], []).append(x.get("duration") or 0.0)
    out = {"command": meta.get("command"), "when": meta.get("when"), "wall_s": meta.get("wall_s"),
           "machine": meta.get("machine"), "packages": meta.get("packages"), "exit_status": r.get("exit_status"),
           "tests": len(r["results"]), "verdicts": verdicts,
           "per_model": {m: {"tests": len(d), "test_s": round(sum(d), 1)} for m, d in per_model.items()},
           "per_family": {f: {"tests": len(d), "test_s": round(sum(d), 1)} for f, d in per_family.items()}}
    DATA.mkdir(parents=True, exist_ok=True)
    (DATA / "claims_run.json").write_text(json.dumps(out, indent=1) + "\n")


DRILL_KEEP = ("schema", "claim", "model", "baseline", "layer", "verdict", "message", "headline", "largest", "drift",
              "duration")
PICTURE = DOCS / "assets" / "report.png"


def read_report(option: str, path: Path) -> str | None:
    """Why ``path`` (given to ``--drill`` or ``--run``) is not a run's report.json that this version reads, as one
    line naming the file and the fix (None: it is one). Checked before anything is written."""
    from probes.merge import check_report
    fix = (f"give the report.json that a run wrote in its --artifacts folder (pytest claims/ ... --artifacts=DIR, then "
           f"python scripts/docs.py {option} DIR/report.json)")
    try:
        rep = json.loads(path.read_text())
    except FileNotFoundError:
        return f"scripts/docs.py {option} {path}: no such file; {fix}"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        return f"scripts/docs.py {option} {path}: cannot be read ({getattr(e, 'strerror', None) or e}); {fix}"
    why = check_report(rep) or (None if isinstance(rep.get("meta"), dict) else "not a report.json (it has no 'meta')")
    return f"scripts/docs.py {option} {path}: {why}; {fix}" if why else None


def import_drill(report: Path) -> None:
    """docs/data/drill.json from a drill run's report.json (a candidate against its recorded findings): its
    verdicts (each result's headline, largest move and drift summary; not every number), the command, date,
    machine and packages. README's table and its picture (:func:`drill_picture`) are both drawn from it."""
    from probes.results import ClaimResult
    r = json.loads(report.read_text())
    meta = r["meta"]
    results = [{k: v for k, v in ClaimResult.from_json(x).to_json().items() if k in DRILL_KEEP}
               for x in r["results"]]
    DATA.mkdir(parents=True, exist_ok=True)
    (DATA / "drill.json").write_text(json.dumps({
        "command": meta.get("command"), "when": meta.get("when"), "wall_s": meta.get("wall_s"),
        "machine": meta.get("machine"), "packages": meta.get("packages"), "exit_status": r.get("exit_status"),
        "device": meta.get("device"), "dtype": meta.get("dtype"), "results": results}, indent=1) + "\n")


def drill_lines(d: dict, width: int = 116) -> tuple[list[str], int]:
    """The drill's terminal verdict table (as the run's terminal showed it, from the current renderer), cut at
    ``width`` characters, and its number of rows."""
    from probes.render.text import terminal_lines
    from probes.results import ClaimResult
    table = terminal_lines([ClaimResult.from_json(x) for x in d["results"]])
    n = next(i for i, ln in enumerate(table) if ln.startswith("verdicts ("))
    return [ln[:width].rstrip() for ln in table], n - 2


def drill_picture_html(d: dict) -> str:
    """The verdict table of the drill's report.html, from the same data as README's table."""
    from probes.render.html import verdict_table_html
    from probes.results import ClaimResult, RunInfo
    info = RunInfo(when=d.get("when") or "", device=d.get("device"), dtype=d.get("dtype"))
    results = [ClaimResult.from_json(x) for x in d["results"]]
    return "\n".join(verdict_table_html(results, info, d["exit_status"]) + ["</body></html>"]) + "\n"


def _sha(data: bytes) -> str:
    import hashlib
    return hashlib.sha256(data).hexdigest()


def drill_picture(tmp: Path) -> None:
    """docs/assets/report.png: the drill's verdict table rendered in headless Chromium (1240 x 900), and in
    docs/data/picture.json the hashes of that HTML and of the PNG, so that --check finds a picture that is not
    the table's."""
    import shutil as sh
    import subprocess
    d = json.loads((DATA / "drill.json").read_text())
    html_text = drill_picture_html(d)
    page = tmp / "drill.html"
    page.write_text(html_text)
    exe = next((x for x in ("chromium", "chromium-browser", "google-chrome") if sh.which(x)), None)
    if exe is None:
        raise SystemExit("scripts/docs.py --drill: the picture needs chromium (apt-get install chromium)")
    PICTURE.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                    "--disable-background-networking", "--disable-extensions", "--hide-scrollbars",
                    f"--user-data-dir={tmp / 'profile'}", "--window-size=1240,900", f"--screenshot={PICTURE}",
                    page.as_uri()], capture_output=True, timeout=120, check=True)
    (DATA / "picture.json").write_text(json.dumps({
        "of": "docs/data/drill.json", "when": d["when"], "html_sha256": _sha(html_text.encode()),
        "png_sha256": _sha(PICTURE.read_bytes())}, indent=1) + "\n")


def picture_is_stale() -> str:
    """Why README's picture is not the drill table's (empty when it is)."""
    drill, pic = DATA / "drill.json", DATA / "picture.json"
    if not drill.exists():
        return ""
    if not pic.exists() or not PICTURE.exists():
        return "no picture drawn from docs/data/drill.json"
    p, d = json.loads(pic.read_text()), json.loads(drill.read_text())
    if p["when"] != d["when"] or p["html_sha256"] != _sha(drill_picture_html(d).encode()):
        return "the picture shows another run, or the table's cells have changed since it was drawn"
    if p["png_sha256"] != _sha(PICTURE.read_bytes()):
        return "docs/assets/report.png is not the picture drawn from the drill's table"
    return ""


def _versions(d: dict) -> str:
    p = d.get("packages") or {}
    return ", ".join(f"{k} {p[k]}" for k in ("torch", "transformers") if k in p)


def _mmss(s: float) -> str:
    return f"{int(s // 60)} min {int(round(s % 60))} s" if s >= 60 else f"{s:.0f} s"


def _where(d: dict) -> str:
    m, p = d.get("machine") or {}, d.get("packages") or {}
    pk = ", ".join(f"{k} {v}" for k, v in p.items())
    return (f"`{d.get('command')}`, {d.get('when')}, on {m.get('cores')} cores of {m.get('cpu')} "
            f"({m.get('platform')}{', GPU ' + m['gpu'] if m.get('gpu') else ''}); {pk}")


def performance_page() -> str:
    lines = ["# Performance", "",
             "<!-- generated by python scripts/docs.py from docs/data/*.json; never typed -->", "",
             "Every figure here comes from a file in `docs/data/`, written by the command named beside it, with the "
             "date, machine and package versions of that run. Run times on shared machines vary by 10% or more "
             "between runs of the same code.", ""]
    run = DATA / "claims_run.json"
    if run.exists():
        d = json.loads(run.read_text())
        lines += ["## The claims run", "",
                  f"{d['tests']} claim tests in **{_mmss(d['wall_s'])}** (wall time of the pytest process), exit "
                  f"status {d['exit_status']}; verdicts: "
                  + ", ".join(f"{n} {v}" for v, n in sorted(d["verdicts"].items(), key=lambda x: -x[1])) + ".", "",
                  f"Measured by {_where(d)}. Regenerate: run the command with `--artifacts=DIR`, then "
                  "`python scripts/docs.py --run DIR/report.json`.", "",
                  "| model | tests | time in its tests, fixtures included (s) |", "|---|---|---|"]
        for m, v in sorted(d["per_model"].items(), key=lambda x: -x[1]["test_s"]):
            lines.append(f"| {m} | {v['tests']} | {v['test_s']:.1f} |")
        if d.get("per_family"):
            lines += ["", "| claim family | tests | time in its tests, fixtures included (s) |", "|---|---|---|"]
            for f, v in sorted(d["per_family"].items(), key=lambda x: -x[1]["test_s"]):
                lines.append(f"| [{f}](catalogue/{f}.md) | {v['tests']} | {v['test_s']:.1f} |")
        lines += ["", "Under `-n auto` each model's tests run as one xdist group (two for the slowest models), its "
                  "load shared by its claims, so the wall time is far below the sum of the column.", ""]
    runs = sorted((json.loads(f.read_text()) for f in DATA.glob("speedup*.json")), key=lambda d: d["when"])
    if runs:  # one file per measurement (bench_speedup.py --json docs/data/speedup[-<machine>].json)
        lines += ["## Against an earlier commit, back to back", "",
                  "Each paragraph is one measurement on the machine it names, oldest first: the ratio of the two "
                  "runs' wall times there (the ratio, not the seconds, is what compares between machines).", ""]
    for d in runs:
        b, h = d["base"], d["head"]
        lines += [f"`{d['run']}` at {b['commit'][:7]} took **{_mmss(b['wall_s'])}** (exit {b['exit']}), at "
                  f"{h['commit'][:7].replace('+', '')}{' with uncommitted changes' if '+' in h['commit'] else ''} "
                  f"**{_mmss(h['wall_s'])}** (exit {h['exit']}): **{d['ratio']:.2f}x**, measured one after the "
                  f"other by {_where(d)}. The largest process of each run held {b['peak_rss_gb']:.2f} GB and "
                  f"{h['peak_rss_gb']:.2f} GB resident, of it {b['peak_anon_gb']:.2f} GB and "
                  f"{h['peak_anon_gb']:.2f} GB anonymous (the rest: weights read through mmap, pages the kernel "
                  "can drop).", ""]
    lines += memory_section()
    bench = DATA / "bench_patching.json"
    if bench.exists():
        d = json.loads(bench.read_text())
        lines += ["## Batched patching against the seed's loop and TransformerLens", "",
                  ("" if d.get("complete", True) else "*An interrupted run: only the rows below were measured.* ") +
                  f"Measured by {_where(d)}; {d['threads']} threads; the whole benchmark took {_mmss(d['wall_s'])}. "
                  "Each ratio has beside it the ratio the two methods' FLOPs allow (the benchmark's docstring gives the "
                  "count). Loops whose components each cost one whole forward are timed on a regular subset and "
                  "scaled; each method's fastest of its runs is shown.", "",
                  "| row | loop (s) | TransformerLens (s) | ours (s) | loop / ours (FLOP limit) | TL / ours (FLOP limit) "
                  "| max abs diff from the loop: TL, ours |", "|---|---|---|---|---|---|---|"]
        for r in d["rows"]:
            tl = f"{r['tl_s']:.2f}" if r.get("tl_s") is not None else "-"
            rtl = f"{r['tl_over_ours']:.1f}x ({r['tl_limit']:.1f}x)" if r.get("tl_over_ours") is not None else "-"
            dtl = f"{r['max_diff_tl']:.1e}" if r.get("max_diff_tl") is not None else "-"
            lines.append(f"| {r['row']} | {r['loop_s']:.2f} | {tl} | {r['ours_s']:.2f} | "
                         f"{r['loop_over_ours']:.1f}x ({r['loop_limit']:.1f}x) | {rtl} | {dtl}, {r['max_diff_ours']:.1e} |")
        lines.append("")
    lines += ["## What the benchmark measures", "", bench_doc(), ""]
    lines += roofline_section()
    lines += cost_section()
    return "\n".join(lines).rstrip() + "\n"


def memory_section() -> list[str]:
    """What a worker needs (benchmarks/bench_memory.py --json docs/data/memory.json): each model's claims in one
    process, free and under a memory cap."""
    f = DATA / "memory.json"
    if not f.exists():
        return []
    d = json.loads(f.read_text())
    cap = f"{d['limit_gb']:g} GB"
    out = ["## Memory a worker needs", "",
           f"Every claim of one model in one process (`{d['run']} --models <id>`: the most a worker of the default run "
           f"holds for that model), once free and once in a memory cgroup capped at {cap} after the model's weights "
           f"were dropped from the page cache. Measured by {_where(d)}. Resident memory counts the pages of weights "
           "read through mmap (the model's and one random-init copy's) while nothing else wants the memory; under the "
           "cap the kernel drops those the claim is not using, and kills the process if what it cannot drop does not "
           "fit. The method, and why: `benchmarks/bench_memory.py`.", "",
           f"| model | free: time | free: peak resident (GB) | of it anonymous (GB) | under {cap}: exit | "
           "time, against free | processes killed |", "|---|---|---|---|---|---|---|"]
    for r in d["rows"]:
        fr, c = r["free"], r.get("capped", {})
        if "not_run" in c:
            capped = f"not run ({c['not_run']}) | - | -"
        else:
            capped = f"{c['exit']} | {_mmss(c['wall_s'])}, {c['wall_s'] / fr['wall_s']:.2f}x | {c['oom_kills']}"
        out.append(f"| {r['model']} | {_mmss(fr['wall_s'])} (exit {fr['exit']}) | {fr['peak_rss_gb']:.2f} | "
                   f"{fr['peak_anon_gb']:.2f} | {capped} |")
    return out + [""]


def went_to(where: dict | None, least: float = 0.05) -> str:
    """``passes 81%, figures 9%``: the shares of a claim's time of at least ``least`` (bench_roofline.py)."""
    total = sum((where or {}).values())
    return ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in sorted(where.items(), key=lambda kv: -kv[1])
                     if v / total >= least) if total else ""


def _floor(d: dict) -> str:
    """The least time these claims could take on the machine's cores: the passes at the limit, the rest (loading,
    statistics, figures, the claims' code) as measured, spread perfectly over one worker per core."""
    t, cores = d["total"], d["machine"].get("cores") or 1
    if not t.get("where") or "passes" not in t["where"]:
        return ""
    outside = sum(t["where"].values()) - t["where"]["passes"]
    return (f" **The floor**: the passes at the limit ({t['roofline_s']:.0f} s) and the rest as measured "
            f"({outside:.0f} s), spread perfectly over {cores} workers (one per core, as `-n auto`): "
            f"{(t['roofline_s'] + outside) / cores:.0f} s of wall time for these claims. Below that only less "
            "arithmetic (fewer prompts, draws or null copies) makes them faster, not faster code.")


def roofline_section() -> list[str]:
    """The roofline table (benchmarks/bench_roofline.py --json docs/data/roofline.json): per claim family and
    model, and per claim x model, the time, memory, work and the fraction of this machine's limit."""
    f = DATA / "roofline.json"
    if not f.exists():
        return []
    d = json.loads(f.read_text())
    lim = d["limit"]
    t = d["total"]
    frac = 100 * t["roofline_s"] / t["seconds"] if t["seconds"] else 0.0
    out = ["## Every claim against the machine's limit", "",
           f"Measured by {_where(d)}; {d['threads']} thread(s), as each xdist worker of the default run has on 2 cores. "
           f"**The limit** on this machine, in the same run: GEMM {lim['gemm_flops_s'] / 1e9:.1f} GFLOP/s (float32, "
           f"shape {lim['gemm_shape']}), memory bandwidth {lim['bandwidth_bytes_s'] / 1e9:.1f} GB/s. All claims of "
           f"these models: {t['seconds']:.0f} s measured, {t['roofline_s']:.0f} s at the limit: **{frac:.1f}% of the "
           "machine's limit** overall. The fraction is the claim's roofline time (its counted FLOPs at the GEMM "
           "rate, or its bytes at the bandwidth, whichever is longer) over its measured time."
           + (f" Where the measured time went (the main thread's stack, sampled): {went_to(t['where'], 0.01)}."
              if t.get("where") else "") + _floor(d), ""]
    fam: dict[tuple, dict] = {}
    for r in d["rows"]:
        x = fam.setdefault((r["claim"].split(".")[0], r["model"]), {"seconds": 0.0, "flops": 0, "bytes": 0,
                                                                     "roofline_s": 0.0, "rss_gb": 0.0, "anon_gb": 0.0})
        for k in ("seconds", "flops", "bytes", "roofline_s"):
            x[k] += r[k]
        x["rss_gb"] = max(x["rss_gb"], r["rss_gb"])
        x["anon_gb"] = max(x["anon_gb"], r.get("anon_gb", 0.0))
    out += ["Peak memory is the process's resident memory; *anonymous* is the part only the process holds (the rest "
            "is file-backed: model weights and random-init copies read through mmap from the model cache, pages the "
            "kernel can drop and that two workers mapping one file share).", "",
            "| family | model | time (s) | peak memory (GB) | anonymous (GB) | GFLOP | GB moved | GFLOP/s | "
            "of the limit |", "|---|---|---|---|---|---|---|---|---|"]
    for (fm, m), x in sorted(fam.items(), key=lambda kv: -kv[1]["seconds"]):
        rate = x["flops"] / x["seconds"] / 1e9 if x["seconds"] else 0.0
        pct = 100 * x["roofline_s"] / x["seconds"] if x["seconds"] else 0.0
        out.append(f"| [{fm}](catalogue/{fm}.md) | {m} | {x['seconds']:.1f} | {x['rss_gb']:.2f} | "
                   f"{x['anon_gb']:.2f} | {x['flops'] / 1e9:.1f} | {x['bytes'] / 1e9:.1f} | {rate:.2f} | {pct:.1f}% |")
    out += ["", "### Per claim x model", "",
            "*Needs at least*: the passes the claim's measurement cannot do without (its prompts, draws and nulls), "
            "for the claims that cost most.", "",
            "*Time went to*: the shares of the claim's time (5% or more) in the models' passes, loading a model or a "
            "random-init copy, statistics (numpy, scipy), figures, the tokenizer and the claim's own code: what "
            "bounds a claim far from the limit.", "",
            "| claim | model | time (s) | peak memory (GB) | anonymous (GB) | GFLOP | GB moved | of the limit | "
            "bound by | time went to | needs at least |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in d["rows"]:
        out.append(f"| `{r['claim']}` | {r['model']} | {r['seconds']:.1f} | {r['rss_gb']:.2f} | "
                   f"{r.get('anon_gb', 0.0):.2f} | {r['gflops']:.1f} | {r['gbytes']:.1f} | "
                   f"{100 * (r['fraction'] or 0):.1f}% | {r['bound']} | {went_to(r.get('where'))} | "
                   f"{r.get('minimum') or ''} |")
    out += ["", "### What the roofline benchmark measures", "",
            "\n\n".join((ast.get_docstring(ast.parse((ROOT / "benchmarks" / "bench_roofline.py").read_text()))
                         or "").split("\n\n")[1:]), ""]
    return out


def _shape(name: str) -> str:
    c = json.loads((ROOT / "fixtures" / "configs" / f"{name}.json").read_text())
    L = c.get("num_hidden_layers") or c.get("n_layer")
    H = c.get("num_attention_heads") or c.get("n_head")
    return f"{L} x {H}, width {c.get('hidden_size') or c.get('n_embd')}"


def _dur(s: float) -> str:
    """A duration a person reads at a glance: seconds, minutes or hours."""
    if s < 90:
        return f"{s:.0f} s"
    if s < 2 * 3600:
        return f"{s / 60:.0f} min" if s >= 600 else f"{s / 60:.1f} min"
    return f"{s / 3600:.0f} h" if s >= 36000 else f"{s / 3600:.1f} h"


def cost_configs(rows: list[dict]) -> list[str]:
    """The configs of the cost model's rows, smallest first."""
    return sorted(dict.fromkeys(r["config"] for r in rows),
                  key=lambda c: next(r["params"] for r in rows if r["config"] == c))


def cost_line(d: dict) -> str:
    """README's one line of the cost model: the catalogue's predicted time for the smallest and largest config."""
    rows = d["rows"]
    configs = cost_configs(rows)
    tot = {c: [sum(r["predicted"][k] for r in rows if r["config"] == c) for k in ("cpu_s", "gpu_s")] for c in configs}
    big = configs[-1]
    m = d.get("machine") or {}
    peak = max(r["predicted"]["rss_peak"] for r in rows if r["config"] == big)
    fits = "" if peak <= d.get("memory_bytes", float("inf")) else \
        f" (were there memory: it needs about {peak / 1e9:.0f} GB)"
    return (f"The causal claims are predicted to take {_dur(tot[big][0])} on {big} in {d['dtype']} on "
            f"{m.get('cores')} CPU cores ({m.get('cpu')}){fits}, and at least {_dur(tot[big][1])} on an "
            f"{d['gpu']['name']} (its counted work at the GPU's peak rates, not measured); "
            "[performance](docs/performance.md#cost-from-135m-to-7b-parameters) has each config measured ("
            + ", ".join(configs) + "), how the prediction is fitted and how it held at full depth, and the command.")


def cost_section() -> list[str]:
    """The cost model (benchmarks/bench_cost.py --json docs/data/cost.json): per real config, the catalogue's
    predicted time and memory on this machine and on a stated GPU, per family, and the fit checked at full size."""
    f = DATA / "cost.json"
    if not f.exists():
        return []
    d = json.loads(f.read_text())
    rows, gpu = d["rows"], d["gpu"]
    configs = cost_configs(rows)
    left = [c for c in ("smollm2-135m", "qwen2.5-0.5b", "llama-3.2-1b", "gemma-2-2b", "phi-3-mini-4k-instruct",
                        "mistral-7b-v0.1") if c not in configs]
    cut = {c: "/".join(sorted(next(r for r in rows if r["config"] == c)["measured"], key=int)) for c in configs}
    out = ["## Cost from 135M to 7B parameters", "",
           f"Measured by {_where(d)}; {d['dtype']}, one pytest process per cut on {d['threads']} threads; the "
           f"{len(d['runs'])} pytest runs took {_dur(sum(r['wall_s'] for r in d['runs']))} in all. Every causal claim family ran on randomly initialised models of "
           "each real config cut to a few layers (all other sizes real: width, heads, MLP, vocabulary), with the "
           "heads screened as on a CPU at full depth (`--exact off`). The full model's cost is **predicted**: "
           "each family's counted work (FLOPs, bytes, ops) as a polynomial in the layers (up to L^2, growing), taken "
           "at the real depth; its time the deepest cut's plus the added FLOPs at the rate the added FLOPs of the "
           "cuts ran at (the marginal rates below); its peak memory the deepest cut's plus the added weights, twice "
           "(the model and one random-init null). The GPU column is **not measured**: the counted work at "
           f"the stated {gpu['name']}'s rates ({gpu['flops_s'] / 1e12:.0f} TFLOP/s dense bfloat16, "
           f"{gpu['bandwidth_bytes_s'] / 1e12:.2f} TB/s, {gpu['op_s'] * 1e6:.0f} us per op of eager PyTorch), a "
           "bound for the same screened work (on CUDA `--exact auto` measures every head exactly, which is more). "
           "Peak memory: one pytest process, its model and one random-init null at a time.", "",
           "Layers measured: " + "; ".join(f"{c} {v}" for c, v in cut.items()) + "."
           + (" Not measured in this run (each costs the time of its cuts): " + ", ".join(left) + "; `--configs` "
              "names them." if left else ""), "",
           "| config | parameters | layers x heads | this machine | measured at full size | "
           f"{gpu['name']} | peak memory (GB) | TFLOP |", "|---|---|---|---|---|---|---|---|"]
    too_big = f" (more than this machine's {d.get('memory_bytes', 0) / 1e9:.0f} GB: its time here is hypothetical)"
    for c in configs:
        mine = [r for r in rows if r["config"] == c]
        cpu = sum(r["predicted"]["cpu_s"] for r in mine)
        peak = max(r["predicted"]["rss_peak"] for r in mine)
        full = [r["measured_full"]["seconds"] for r in mine if "measured_full" in r]
        vocab = (f" (vocabulary raised from {mine[0]['real_vocab']} to {mine[0]['vocab']}: the tokenizer's)"
                 if mine[0]["vocab"] > mine[0]["real_vocab"] else "")
        out.append(f"| {c}{vocab} | {mine[0]['params'] / 1e9:.2f}B | {_shape(c)} | **{_dur(cpu)}** | "
                   f"{_dur(sum(full)) if len(full) == len(mine) else '-'} | "
                   f"{_dur(sum(r['predicted']['gpu_s'] for r in mine))} | "
                   f"{peak / 1e9:.1f}{too_big if peak > d.get('memory_bytes', float('inf')) else ''} | "
                   f"{sum(r['predicted']['flops'] for r in mine) / 1e12:.0f} |")
    fams = list(dict.fromkeys(r["family"] for r in rows))
    out += ["", "Per claim family, this machine, predicted at full depth (a family marked * has claims "
            "that stop at their precondition on a random model; their measurement was timed with the selection a "
            "trained model makes, by benchmarks/cost_forced.py):", "",
            "| family | " + " | ".join(configs) + " | FLOPs grow as L^k: k | ops: k |",
            "|---|" + "---|" * (len(configs) + 2)]
    for fm in fams:
        cells, mine = [], [r for r in rows if r["family"] == fm]
        for c in configs:
            r = next((r for r in mine if r["config"] == c), None)
            cells.append(_dur(r["predicted"]["cpu_s"]) if r else "-")
        ks = {k: [r["growth"][k] for r in mine if r.get("growth", {}).get(k) is not None] for k in ("flops", "ops")}
        span = {k: "-" if not v else f"{min(v):.1f}" if f"{min(v):.1f}" == f"{max(v):.1f}" else
                f"{min(v):.1f}-{max(v):.1f}" for k, v in ks.items()}
        star = "*" if any(r["forced"] for r in mine) else ""
        out.append(f"| [{fm}](catalogue/{fm}.md){star} | " + " | ".join(cells) + f" | {span['flops']} | {span['ops']} |")
    out += ["", "k is the local exponent of the fitted work at the real depth (d log work / d log layers; its range over "
            "the configs): 1 for passes through every layer, 2 for sweeps resumed from each layer (a head or layer "
            "patched from its own depth), below 1 where the layers' share is small beside the unembedding."]
    checked = [r for r in rows if "measured_full" in r]
    if checked:
        out += ["", "### The prediction checked at full size", "",
                "The same claims on the full-depth random-init model, measured, beside the prediction from the "
                "shortened ones:", "",
                "| config | family | predicted (s) | measured (s) | predicted TFLOP | counted TFLOP | predicted peak "
                "(GB) | measured peak (GB) |", "|---|---|---|---|---|---|---|---|"]
        for r in checked:
            p, m = r["predicted"], r["measured_full"]
            out.append(f"| {r['config']} | {r['family']} | {p['cpu_s']:.0f} | {m['seconds']:.0f} | "
                       f"{p['flops'] / 1e12:.2f} | {m['flops'] / 1e12:.2f} | {p['rss_peak'] / 1e9:.1f} | "
                       f"{m['rss_peak'] / 1e9:.1f} |")
    out += ["", "### Marginal rates", "",
            "The FLOP rate that fits how the families' times grew from one cut to the next, per config (the time "
            "model of the prediction; bfloat16 GEMMs run on this CPU's AMX units):", "",
            "| config | GFLOP/s of the added FLOPs |", "|---|---|"]
    for c in configs:
        m = next(r for r in rows if r["config"] == c).get("marginal_flops_s")
        out.append(f"| {c} | {m / 1e9:.0f} |" if m else f"| {c} | - (the time did not grow with the FLOPs) |")
    out += ["", "### What the cost benchmark measures", "",
            "\n\n".join((ast.get_docstring(ast.parse((ROOT / "benchmarks" / "bench_cost.py").read_text()))
                         or "").split("\n\n")[1:]), ""]
    return out


def bench_doc() -> str:
    doc = ast.get_docstring(ast.parse((ROOT / "benchmarks" / "bench_patching.py").read_text())) or ""
    return "\n\n".join(doc.split("\n\n")[1:])


def readme_blocks() -> dict[str, str]:
    """The generated lines of README.md, by block name."""
    out = {}
    run = DATA / "claims_run.json"
    if run.exists():
        d = json.loads(run.read_text())
        m = d.get("machine") or {}
        out["run-time"] = (f"The default run ({d['tests']} claim tests) took {_mmss(d['wall_s'])} on {m.get('cores')} "
                           f"CPU cores ({m.get('cpu')}) on {d['when'][:10]} with {_versions(d)} "
                           "([performance](docs/performance.md) has the command and every version).")
    drill = DATA / "drill.json"
    if drill.exists():
        d = json.loads(drill.read_text())
        m = d.get("machine") or {}
        lines, rows = drill_lines(d)
        shown = min(10, rows)
        where = (f"`{d['command']}` on {d['when'][:10]}, {m.get('cores')} CPU cores, {_versions(d)}, "
                 f"{_mmss(d['wall_s'])}; exit status {d['exit_status']}")
        out["drill"] = "\n".join(["    " + ln for ln in lines[:shown + 2]] + [
            "", f"({shown} of {rows} rows, cut at 116 characters; {where}.)"])
        out["drill-full"] = "\n".join(["    " + ln for ln in lines] + ["", f"({where}; cut at 116 characters.)"])
    out["config-memory"] = config_memory()
    cost = DATA / "cost.json"
    if cost.exists():
        out["cost"] = cost_line(json.loads(cost.read_text()))
    cs = claims()
    out["families"] = "\n".join(
        f"- [**{fam}**](docs/catalogue/{fam}.md) ({_count(sum(c['family'] == fam for c in cs), 'claim')}): "
        f"{_first_lower(FAMILY_TITLES.get(fam, fam))} ({FAMILY_SOURCES.get(fam, 'see its page')})"
        for fam in dict.fromkeys(c["family"] for c in cs))
    return out


def config_memory() -> str:
    """The weights' memory of each real config in fixtures/configs (parameters counted on the meta device: nothing
    is allocated), in float32 and bfloat16."""
    import warnings

    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForMaskedLM
    from transformers.utils import logging as hf_logging
    hf_logging.set_verbosity_error()
    rows = []
    for f in sorted((ROOT / "fixtures" / "configs").glob("*.json")):
        cfg = AutoConfig.from_pretrained(str(f))
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            kind = AutoModelForMaskedLM if cfg.model_type == "bert" else AutoModelForCausalLM
            n = sum(p.numel() for p in kind.from_config(cfg).parameters())
        rows.append((n, f"| `{f.stem}` | {cfg.model_type} | {n / 1e9:.2f} B | {cfg.num_hidden_layers} | "
                        f"{cfg.vocab_size:,} | {n * 4 / 2 ** 30:.1f} GiB | {n * 2 / 2 ** 30:.1f} GiB |"))
    head = ["| config | architecture | parameters | layers | vocabulary | float32 | bfloat16 / float16 |",
            "|---|---|---|---|---|---|---|"]
    return "\n".join(head + [r for _, r in sorted(rows)])


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _first_lower(title: str) -> str:
    """'Noun/verb-tuned MLP neurons' -> 'noun/verb-tuned MLP neurons' (acronyms kept)."""
    return title[:1].lower() + title[1:] if title[1:2].islower() else title


def with_blocks(path: Path) -> str:
    """``path``'s text with its ``<!-- generated: NAME -->`` blocks filled in."""
    text = path.read_text()
    for name, body in readme_blocks().items():
        # the block's old lines (none when it was left empty) replaced by the body
        text = re.sub(rf"(<!-- generated: {name} -->\n)(?:.*?\n)?(<!-- /generated -->)",
                      lambda m: m.group(1) + body + "\n" + m.group(2), text, flags=re.S)
    return text


def probe_modules() -> dict[str, Path]:
    """Every module of probes/ by its dotted name below the package (``session``, ``render.cells``,
    ``families.ioi.analysis``); a package's ``__init__.py`` holds its docstring only and is not one."""
    probes = ROOT / "probes"
    return {".".join(p.relative_to(probes).with_suffix("").parts): p for p in sorted(probes.rglob("*.py"))
            if p.name != "__init__.py"}


def _targets(node: ast.ImportFrom, package: list[str], mods: set[str]) -> set[str]:
    """The modules of probes/ a relative ``from ... import ...`` in ``package`` names."""
    base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
    stem = base + (node.module.split(".") if node.module else [])
    out = set()
    for alias in node.names:
        sub = ".".join(stem + [alias.name])
        out.add(sub if sub in mods else ".".join(stem))
    return {m for m in out if m in mods}


def probe_imports() -> dict[str, set[str]]:
    """module -> the modules of probes/ it imports (relative imports resolved, at any depth of the package)."""
    files = probe_modules()
    mods = set(files)
    out = {}
    for m, path in files.items():
        package = m.split(".")[:-1]
        deps: set[str] = set()
        for n in ast.walk(ast.parse(path.read_text())):
            if isinstance(n, ast.ImportFrom) and n.level >= 1:
                deps |= _targets(n, package, mods)
        out[m] = deps - {m}
    return out


def _layer_positions(width: float = 10.6, per_row: int = 9) -> dict[str, tuple[float, float]]:
    """Where each module's box goes: its layer's band, rows of ``per_row`` boxes."""
    pos = {}
    for band, (layer, ms) in enumerate(LAYERS.items()):
        rows = [ms[i:i + per_row] for i in range(0, len(ms), per_row)]
        for r, row in enumerate(rows):
            y = 3.0 * (len(LAYERS) - 1 - band) + 1.0 - r * 0.8 + (len(rows) - 1) * 0.4
            for i, m in enumerate(row):
                pos[m] = (0.9 + i * width / max(1, per_row - 1), y)
    return pos


def architecture_figure(path: Path) -> None:
    """The layers of probes/ as bands of boxes, with an arrow for each import between two modules of different
    layers (read from the code)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    imports = probe_imports()
    placed = {m for ms in LAYERS.values() for m in ms}
    if set(imports) - placed:
        raise SystemExit(f"scripts/docs.py: modules {sorted(set(imports) - placed)} are in no layer of LAYERS; add them")
    pos = _layer_positions()
    fig, ax = plt.subplots(figsize=(14, 9))
    colours = ["#e8e1f4", "#f6efd9", "#dbe9f6", "#e6f4e1", "#fbeede"]
    for band, layer in enumerate(LAYERS):
        y = 3.0 * (len(LAYERS) - 1 - band)
        ax.add_patch(plt.Rectangle((-0.6, y - 0.4), 12.6, 2.8, color=colours[band % len(colours)], zorder=0))
        ax.text(-0.5, y + 2.2, layer, fontsize=11, weight="bold", va="center")
    for m, (x, y) in pos.items():
        ax.text(x, y, m.removeprefix("families."), ha="center", va="center", fontsize=8, zorder=3,
                bbox=dict(boxstyle="round,pad=0.3", fc="white", ec="#555555"))
    layer_of = {m: layer for layer, ms in LAYERS.items() for m in ms}
    for m, deps in imports.items():
        for d in deps:
            if layer_of[m] != layer_of[d]:
                ax.annotate("", xy=pos[d], xytext=pos[m], zorder=1,
                            arrowprops=dict(arrowstyle="->", color="#888888", lw=0.6, alpha=0.5, shrinkA=9, shrinkB=9))
    ax.set_xlim(-0.7, 12.1)
    ax.set_ylim(-0.6, 3.0 * len(LAYERS) - 0.4)
    ax.axis("off")
    ax.set_title("probes/: the modules by layer; an arrow is an import across layers (generated from the code)",
                 fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def generated() -> dict[Path, str]:
    pages = catalogue_pages()
    pages[DOCS / "performance.md"] = performance_page()
    for p in (ROOT / "README.md", DOCS / "drill.md", DOCS / "getting-started.md"):
        pages[p] = with_blocks(p)
    return pages


def check() -> int:
    """--check: 1 (naming each) if a generated page, the drill's picture or a claim's figure is stale or missing."""
    pages = generated()
    stale = [p for p, text in pages.items() if not p.exists() or p.read_text() != text]
    # a generated block left empty on disk (a block this script has no body for, or lost its lines)
    stale += [p for p in (ROOT / "README.md", DOCS / "drill.md", DOCS / "getting-started.md") if p not in stale
              and re.search(r"<!-- generated: [\w-]+ -->\n<!-- /generated -->", p.read_text())]
    why = picture_is_stale()
    if why:
        stale.append(PICTURE)
        print(f"{PICTURE.relative_to(ROOT)}: {why} (python scripts/docs.py --drill <the drill's report.json>)")
    stale += [CAT / "figures" / f"{c['id']}.png" for c in claims()
              if not any((CAT / "figures" / f"{c['id']}{x}").exists() for x in (".png", ".md"))]
    for p in stale:
        print(f"stale or missing: {p.relative_to(ROOT)}")
    if stale:
        print("regenerate with: python scripts/docs.py (figures: --figures <a run's artifacts folder>)")
    return 1 if stale else 0


def write(a: argparse.Namespace) -> None:
    """Copy the figures, import the run and the drill given, and write every generated page and picture."""
    if a.figures:
        missing = copy_figures(a.figures)
        if missing:
            print(f"no figure in {a.figures} for: {', '.join(missing)}")
    if a.run:
        import_run(a.run)
    if a.drill:
        import_drill(a.drill)
    for p, text in generated().items():
        p.parent.mkdir(parents=True, exist_ok=True)
        if not p.exists() or p.read_text() != text:
            p.write_text(text)
            print(f"wrote {p.relative_to(ROOT)}")
    architecture_figure(DOCS / "assets" / "architecture.png")
    if a.drill or picture_is_stale():
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            drill_picture(Path(tmp))
        print(f"wrote {PICTURE.relative_to(ROOT)} from docs/data/drill.json")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="exit 1 if a generated page differs from what is on disk")
    ap.add_argument("--figures", type=Path, help="copy each claim's figure from this run's artifacts folder")
    ap.add_argument("--run", type=Path, help="a claims run's report.json: the performance page's run time")
    ap.add_argument("--drill", type=Path, help="a drill run's report.json: README's verdict table")
    a = ap.parse_args()
    for option, path in (("--run", a.run), ("--drill", a.drill)):
        why = read_report(option, path) if path is not None else None
        if why:  # before anything is written
            print(why, file=sys.stderr)
            return 2
    if a.check:
        return check()
    write(a)
    return 0


if __name__ == "__main__":
    sys.exit(main())
