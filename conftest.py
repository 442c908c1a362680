"""pytest wiring: options, model selection and parametrisation, model fixtures (loaded once per worker),
snapshot and figure fixtures."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from probes import loading
from probes.errors import ProbeError
from probes.registry import ModelSpec, load_registry, resolve
from probes.snapshot import ToleranceJSONSnapshot, record, snapshot_file, with_tolerance

ROOT = Path(__file__).parent


def pytest_addoption(parser):
    g = parser.getgroup("claims", "interpretability claims")
    g.addoption("--models", default=None,
                help="comma-separated registry ids, hub ids (owner/name[@revision]) or local folders; "
                     "default: every registry model available offline")
    g.addoption("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    g.addoption("--corpus", default=None,
                help="a UTF-8 text file, one context per line: neuron.top_contexts also writes the stand-out "
                     "neuron's top contexts in it to artifacts/<model>/neuron.top_contexts.<file stem>.md")
    g.addoption("--dtype", default="float32", help="float32 | bfloat16 | float16 (default float32)")
    g.addoption("--artifacts", default="artifacts", help="folder for figures (default artifacts/)")
    g.addoption("--allow-pickle", action="store_true", help="allow loading pickle (.bin) checkpoints")
    g.addoption("--trust-remote-code", action="store_true", help="allow models that run code from the hub")
    g.addoption("--exact", default="auto", choices=["auto", "on", "off"],
                help="measure every component (head, neuron) exactly: on; screen all of them with attribution "
                     "patching and measure the top ones and a random sample exactly: off; auto (default): exact on "
                     "CUDA or when the model has at most 64 attention heads in all")
    g.addoption("--record", action="store_true",
                help="record the snapshot of every claim that passes its criterion in this run (atomically); "
                     "never deletes or rewrites the snapshot of a claim that failed, errored or did not run")


def _hub_available(spec: ModelSpec) -> tuple[bool, str]:
    try:
        from huggingface_hub import try_to_load_from_cache
        hit = try_to_load_from_cache(spec.hub_id, "config.json", revision=spec.revision)
    except Exception as e:  # noqa: BLE001
        return False, f"hub cache lookup failed ({type(e).__name__})"
    if isinstance(hit, str):
        return True, ""
    return False, (f"not in the local hub cache at revision {spec.revision[:10]} (offline default run; "
                   f"download it and pass --models {spec.id})")


def _select(config) -> tuple[list[ModelSpec], list[tuple[str, str]], bool]:
    registry = load_registry()
    opt = config.getoption("--models")
    if opt is not None:
        entries = [m.strip() for m in opt.split(",") if m.strip()]
        if not entries:
            raise pytest.UsageError(f"--models {opt!r} names no model; give registry ids ({', '.join(registry)}), "
                                    "folders, GGUF files or hub ids, separated by commas")
        try:
            specs = [resolve(m, registry) for m in entries]
        except ProbeError as e:
            raise pytest.UsageError(str(e)) from None
        seen: dict[str, str] = {}
        for m, spec in zip(entries, specs):
            if spec.id in seen:
                raise pytest.UsageError(f"--models entries {seen[spec.id]!r} and {m!r} are the same model "
                                        f"({spec.id!r}); give it once")
            seen[spec.id] = m
        return specs, [], True
    chosen, left = [], []
    for spec in registry.values():
        if spec.source == "hub":
            ok, why = _hub_available(spec)
        else:
            try:
                spec.available()
                ok, why = True, ""
            except ProbeError as e:
                ok, why = False, str(e)
        (chosen.append(spec) if ok else left.append((spec.id, why)))
    return chosen, left, False


def _threads_per_worker() -> None:
    """Under pytest-xdist, split the cores between the workers: every worker's torch defaulting to all cores
    oversubscribes the CPU (measured here: 2 workers x 2 threads on 2 cores ran the claims several times slower)."""
    n = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if n and not os.environ.get("OMP_NUM_THREADS"):
        import torch
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(n)))


def pytest_configure(config):
    _threads_per_worker()
    if getattr(config.option, "update_snapshots", False):
        raise pytest.UsageError(
            "--snapshot-update is disabled in this suite: syrupy deletes the snapshots of claims that failed, errored, "
            "were not selected or were interrupted. Use --record: it writes only the claims that pass in this run.")
    corpus = config.getoption("--corpus", None)
    if corpus and not Path(corpus).is_file():
        raise pytest.UsageError(f"--corpus {corpus}: no such file (give a text file with one context per line)")
    config.addinivalue_line("markers", "claim(id, family, source, kinds): an interpretability claim")
    config.addinivalue_line("markers", "xdist_group(name): run on one xdist worker (set per model)")
    try:
        loading.pick_dtype(config.getoption("--dtype"))
        loading.check_device_name(config.getoption("--device"))
    except ProbeError as e:
        raise pytest.UsageError(str(e)) from None
    art = Path(config.getoption("--artifacts"))
    art = art if art.is_absolute() else ROOT / art
    try:
        art.mkdir(parents=True, exist_ok=True)
        (art / ".write-test").touch()
        (art / ".write-test").unlink()
    except OSError as e:
        raise pytest.UsageError(f"--artifacts {art}: cannot write figures there ({e.strerror}); give a writable "
                                "folder") from None
    config._claims_models, config._claims_left_out, config._claims_explicit = _select(config)
    if not hasattr(config, "workerinput"):  # controller (or a run without xdist): convert GGUF models once, with
        for spec in config._claims_models:  # progress on the terminal, before workers start and wait for them
            if spec.source == "gguf" or (spec.source == "package" and spec.gguf):
                try:
                    spec.location()
                except ProbeError as e:
                    raise pytest.UsageError(str(e)) from None


def _param_id(spec: ModelSpec, dtype: str) -> str:
    dt = loading.pick_dtype(dtype)
    return spec.id if str(dt) == "torch.float32" else f"{spec.id}-{str(dt).replace('torch.', '')}"


def _known_failure(spec: ModelSpec, family: str | None, claim_id: str | None) -> list:
    """A strict xfail for a claim the registry records as not holding for this model
    (``expect.<family>.known_failures = {"<claim id>" = "<reason, with the measured numbers>"}``).

    Only the claim's assertion may fail (``raises=AssertionError``): an error still errors. strict: if the claim
    starts to hold, the test fails and asks for the registry entry to be removed."""
    reason = spec.expectation(family or "").get("known_failures", {}).get(claim_id or "")
    if not reason:
        return []
    return [pytest.mark.xfail(strict=True, raises=AssertionError,
                              reason=f"registry: {claim_id} does not hold for {spec.id}: {reason} (if it now holds, "
                                     f"remove it from expect.{family}.known_failures in fixtures/models.toml)")]


def pytest_generate_tests(metafunc):
    """Parametrise claims over the selected models that support their family (and over layers for claims
    that take a ``layer`` argument, as the seeds loop over layers)."""
    if "model_id" not in metafunc.fixturenames:
        return
    mark = metafunc.definition.get_closest_marker("claim")
    family = mark.kwargs["family"] if mark else None
    kinds = mark.kwargs.get("kinds") if mark else None
    cfg = metafunc.config
    per_layer = "layer" in metafunc.fixturenames
    params = []
    for spec in cfg._claims_models:
        if family and family not in spec.families:
            continue
        if kinds and spec.kind not in kinds:
            continue
        pid = _param_id(spec, cfg.getoption("--dtype"))
        marks = _known_failure(spec, family, mark.kwargs.get("id") if mark else None)
        if per_layer:
            n = spec.n_layers()
            if not n:
                raise pytest.UsageError(f"cannot read the number of layers of {spec.id} (no config.json found)")
            params += [pytest.param(spec.id, l, id=f"{pid}-L{l}", marks=marks) for l in range(n)]
        else:
            params.append(pytest.param(spec.id, id=pid, marks=marks))
    if not params:
        skip = pytest.mark.skip(reason=f"no selected model supports claim family {family!r} (kinds {kinds}); "
                                       "see --models")
        params = [pytest.param(None, None, marks=skip) if per_layer else pytest.param(None, marks=skip)]
    metafunc.parametrize("model_id,layer" if per_layer else "model_id", params)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Group tests by model so that under -n auto (with --dist loadgroup) each model loads on one worker.

    Each claim gets an ``xdist_group`` mark named after its model; xdist's worker hook (which runs after this
    one) turns it into the scheduling group by suffixing the nodeid. pytest 9.2 derives nodeids from a new
    attribute, which silently breaks that in pytest-xdist 3.8: hence pytest<9.1 in pyproject.toml
    (tests/test_parallel.py checks that each model loads once).
    """
    for item in items:
        cs = getattr(item, "callspec", None)
        group = cs.params.get("model_id") if cs else None
        if not group:
            continue
        config._claims_collected = True
        item.add_marker(pytest.mark.xdist_group(group))


_MODELS: dict[str, loading.LoadedModel] = {}
_LOAD_ERRORS: dict[str, ProbeError] = {}


@pytest.fixture
def lm(model_id, request) -> loading.LoadedModel:
    """The loaded model; cached for the whole worker process (one load per model per worker)."""
    if model_id in _LOAD_ERRORS:  # fail fast: do not retry a model that could not load (e.g. hub unreachable)
        raise _LOAD_ERRORS[model_id]
    if model_id not in _MODELS:
        cfg = request.config
        spec = next(s for s in cfg._claims_models if s.id == model_id)
        loading.log(f"loading {spec.id} ({spec.source}: {spec.hub_id or spec.path or spec.package}) "
                    f"on {cfg.getoption('--device')} / {cfg.getoption('--dtype')}")
        try:
            _MODELS[model_id] = loading.load(spec, cfg.getoption("--device"), cfg.getoption("--dtype"),
                                             allow_pickle=cfg.getoption("--allow-pickle"),
                                             trust_remote_code=cfg.getoption("--trust-remote-code"))
        except ProbeError as e:
            _LOAD_ERRORS[model_id] = e
            raise
        if os.environ.get("CLAIMS_LOAD_LOG"):  # tests/ check that each model loads once per worker
            with open(os.environ["CLAIMS_LOAD_LOG"], "a") as f:
                f.write(f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')} {model_id}\n")
    return _MODELS[model_id]


@pytest.fixture
def exact(lm, request) -> bool:
    """Whether component-ranking claims measure every component exactly (see --exact)."""
    opt = request.config.getoption("--exact")
    if opt != "auto":
        return opt == "on"
    return lm.device.type == "cuda" or lm.adapter.n_layers * lm.adapter.n_heads <= 64


@pytest.fixture
def claim_snapshot(snapshot, lm, request):
    """``claim_snapshot(data, rel=..., abs_=...)``: compare ``data`` with this claim x model's JSON snapshot."""
    def check(data: dict, rel: float | None = None, abs_: float | None = None):
        if request.config.getoption("--record"):  # reached only after the claim's criterion held
            path = snapshot_file(Path(request.node.fspath).stem, request.node.name)
            changed = record(path, {**data, "_recorded_with": lm.meta()},
                             ToleranceJSONSnapshot.rel_tol if rel is None else rel,
                             ToleranceJSONSnapshot.abs_tol if abs_ is None else abs_)
            loading.log(f"recorded {path.relative_to(path.parents[1])}" if changed else
                        f"{path.relative_to(path.parents[1])} unchanged (within tolerance)")
            return
        ext = ToleranceJSONSnapshot if rel is None and abs_ is None else with_tolerance(
            rel if rel is not None else ToleranceJSONSnapshot.rel_tol,
            abs_ if abs_ is not None else ToleranceJSONSnapshot.abs_tol)
        assert snapshot.use_extension(ext) == {**data, "_recorded_with": lm.meta()}
    return check


@pytest.fixture
def figure_path(request, model_id):
    """``figure_path(claim_id)`` -> artifacts/<model>/<claim_id>.png"""
    folder = Path(request.config.getoption("--artifacts"))
    folder = folder if folder.is_absolute() else ROOT / folder
    model_dir = _param_id(request.getfixturevalue("lm").spec, request.config.getoption("--dtype"))

    def path(claim_id: str) -> Path:
        return folder / model_dir / f"{claim_id}.png"
    return path


@pytest.fixture
def artifact_path(figure_path):
    """``artifact_path(name)`` -> artifacts/<model>/<name> (folder created): non-figure artifacts of a claim."""
    def path(name: str) -> Path:
        p = figure_path("x").with_name(name)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p
    return path


def pytest_terminal_summary(terminalreporter, config):
    models = [s.id for s in getattr(config, "_claims_models", [])]
    if not getattr(config, "_claims_collected", False) and not config.getoption("--models"):
        return
    tr = terminalreporter
    tr.section("interpretability claims")
    tr.write_line(f"models: {', '.join(models) or '(none)'}; device {config.getoption('--device')}, "
                  f"dtype {config.getoption('--dtype')}")
    for mid, why in getattr(config, "_claims_left_out", []):
        tr.write_line(f"left out {mid}: {why}")
    tr.write_line(f"figures: {config.getoption('--artifacts')}/<model>/<claim>.png")


