"""The pytest plugin of interp-claims (entry point ``pytest11: interp_claims``): hooks and fixtures only. A run is a
:class:`probes.session.ClaimsSession` (options, model selection, parametrisation, settling, verdicts, reports);
each hook here is a few lines that call it.

Any project that installs interp-claims gets it. A project configures where its files are with ini options,
relative to its root (the folder of its pytest.ini / pyproject.toml / tox.ini / setup.cfg):

    claims_registry   the model registry (default fixtures/models.toml)
    claims_snapshots  the snapshot folder (default snapshots)
    claims_artifacts  figures and reports (default artifacts; --artifacts overrides)

The plugin is idle in a project that has none of this (no registry file, no --models): it adds its options and
fixtures but selects no model and loads nothing. The session lives in ``config.stash`` (one per pytest process:
the controller and each xdist worker)."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import pytest
import torch

from . import compare, loading, paired, roles
from .checks import check_paths
from .errors import NumericsError, ProbeError, ResourceError, did_you_mean
from .log import log
from .results import ClaimResult, Measurement, Verdict
from .schedule import USAGE_PREFIX
from .selection import INI
from .session import ARTIFACTS_KEY, ClaimsSession
from .settle import Settled
from .snapshot import ABS_TOL, REL_TOL, NonFiniteNumber, plain

SESSION = pytest.StashKey[ClaimsSession]()
MEASURED = pytest.StashKey[Measurement]()  # what a claim handed to claim_snapshot, settled after the test body
SETTLED = pytest.StashKey[Settled]()        # the snapshot comparison's outcome, read by pytest_runtest_makereport
FIGURES = pytest.StashKey[list]()           # the figure/artifact paths a claim asked for
STARTED = pytest.StashKey[float]()          # when the claim started (figures written after it are this run's)
SETUP_S = pytest.StashKey[float]()          # the claim's setup time (its fixtures), added to its duration
HALF_TOL = (0.05, 0.05)                     # (rel, abs) of a bf16/fp16 run where no half floors are measured


def _session(config) -> ClaimsSession:
    return config.stash[SESSION]


DEVICE_MAPS, EXACT, SIGNIFICANCE = ("auto", "balanced", "balanced_low_0", "sequential"), ("auto", "on", "off"), \
    ("interval", "floor")


def _one_of(option: str, values: tuple[str, ...]):
    """An option's value checked against its fixed set, with the nearest one suggested (argparse's own choices say
    only which values there are)."""
    def value(text: str) -> str:
        if text not in values:
            raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(values)}{did_you_mean(text, values)}")
        return text
    value.__name__ = option
    return value


def pytest_addoption(parser):
    g = parser.getgroup("claims", "interpretability claims")
    g.addoption("--models", default=None,
                help="comma-separated registry ids, hub ids (owner/name[@revision]) or local folders; "
                     "default: every registry model available offline")
    g.addoption("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    g.addoption("--corpus", default=None,
                help="a UTF-8 text file, one context per line: neuron.top_contexts also writes the stand-out "
                     "neuron's top contexts in it to artifacts/<model>/neuron.top_contexts.<file stem>.md")
    g.addoption("--device-map", default=None, choices=DEVICE_MAPS, type=_one_of("--device-map", DEVICE_MAPS),
                help="on CUDA, spread each model over the visible GPUs (for a model that does not fit one; "
                     "default: one GPU per model, xdist worker gwN on GPU N mod the number of GPUs)")
    g.addoption("--dtype", default="float32", help="float32 | bfloat16 | float16 (default float32)")
    g.addoption("--max-batch-tokens", type=int, default=None, metavar="N",
                help="cap the tokens of a batched pass (default: what fits a third of the device's free memory, at "
                     "most 8192 on a CPU and 65536 on a GPU); numbers do not depend on it")
    g.addoption("--artifacts", default=None,
                help="folder for figures and reports (default: the ini option claims_artifacts, artifacts/)")
    g.addoption("--allow-mismatch", action="store_true",
                help="compare a candidate (<registry id>=<new version>) with its registry model's snapshots even when "
                     "its architecture, depth, heads, width or tokenizer differ (refused by default)")
    g.addoption("--allow-pickle", action="store_true", help="allow loading pickle (.bin) checkpoints")
    g.addoption("--trust-remote-code", action="store_true", help="allow models that run code from the hub")
    g.addoption("--exact", default="auto", choices=EXACT, type=_one_of("--exact", EXACT),
                help="measure every component (head, neuron) exactly: on; screen all of them with attribution "
                     "patching and measure the top ones and a random sample exactly: off; auto (default): exact on "
                     "CUDA or when the model has at most 64 attention heads in all")
    g.addoption("--history", default=None, metavar="DIR",
                help="append this run (date, command, models with their hashes, packages, device, dtype, and per "
                     "claim x model the verdict and its numbers with their roles) to DIR/history.jsonl, never "
                     "rewriting earlier lines; report.html then plots each claim's effect over the runs in DIR "
                     "(relative to the project root unless absolute, as --artifacts)")
    g.addoption("--significance", default="interval", choices=SIGNIFICANCE,
                type=_one_of("--significance", SIGNIFICANCE),
                help="when a move beyond a number's noise floor is a change (exit 6): interval (default): an effect "
                     "left its recorded bootstrap interval or a stable component left its set; floor: any move "
                     "beyond the floor, diagnostics included (this project's own CI: a change of the measuring code "
                     "on the same model must not hide inside sampling noise)")
    g.addoption("--weight-jitter", type=float, default=None, metavar="SIZE",
                help="noise-floor calibration only (scripts/calibrate.py): multiply every weight by 1 + SIZE x N(0, 1), "
                     "seeded, e.g. 1e-6 (float32 rounding scale); never recorded")
    g.addoption("--record", action="store_true",
                help="record the snapshot of every claim that passes its criterion in this run (atomically); "
                     "never deletes or rewrites the snapshot of a claim that failed, errored or did not run")
    for name, (default, help_) in INI.items():
        parser.addini(name, f"{help_} (default {default})", default=None)  # None: not set in the ini file


def pytest_configure(config):
    config.addinivalue_line("markers", "claim(id, family, source, kinds, null, criterion, records): an "
                                       "interpretability claim (interp-claims)")
    config.addinivalue_line("markers", "xdist_group(name): run on one xdist worker (set per model)")
    s = config.stash[SESSION] = ClaimsSession(config)
    config.pluginmanager.register(_Controller(s), "interp_claims-controller")
    s.configure()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """pytest-xdist: a worker writes its figures to the folder its controller holds."""
    s = node.config.stash.get(SESSION, None)
    if s is not None and s.folder is not None:
        node.workerinput[ARTIFACTS_KEY] = str(s.folder.path)


def pytest_generate_tests(metafunc):
    if "model_id" in metafunc.fixturenames:
        _session(metafunc.config).parametrize(metafunc)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    _session(config).group(items)


# ------------------------------------------------------------------------------------------------------- fixtures
@pytest.fixture
def lm(model_id, request):
    """The loaded model; one load per model per worker (the previous model's memory released first), its
    ``model_cache`` the claim's family's (another family's dropped first). The random-init copy a claim used
    (``random_copy``) is released after it: a copy of Gemma-3-270m is 1.1 GB, held through the next claims' work, and
    the next claim that needs it reads it back from the disk cache in 0.8 s. What the claim freed goes back to the
    system after it (glibc would keep it for the process)."""
    model = _session(request.config).load(model_id)
    mark = request.node.get_closest_marker("claim")
    if model.enter_family(mark.kwargs.get("family") if mark else None):
        loading.return_memory()
    yield model
    loading.forget_random_copies()
    loading.return_memory(collect=False)


@pytest.fixture
def model_cache(lm, request) -> dict:
    """A dict the claims of one family share on one model (e.g. activations several claims read), kept while the
    worker runs that family on that model and dropped when it moves on: ``model_cache.setdefault(key, ...)``, never
    a module-level global."""
    return lm.cache


@pytest.fixture
def corpus_file(request) -> Path | None:
    """The text file given with ``--corpus`` (one context per line; checked to exist at start), or None."""
    given = _session(request.config).opt.corpus
    return Path(given) if given else None


@pytest.fixture
def exact(lm, request) -> bool:
    """Whether component-ranking claims measure every component exactly (see --exact)."""
    opt = _session(request.config).opt.exact
    if opt != "auto":
        return opt == "on"
    return lm.device.type == "cuda" or lm.adapter.n_layers * lm.adapter.n_heads <= 64


@pytest.fixture
def claim_snapshot(lm, request):
    """``claim_snapshot(data, effect=[...], identity=[...], rel=..., abs_=..., half=(rel, abs))``: the claim's numbers,
    compared with this claim x model's recorded snapshot (or recorded, with --record) after the test body has
    finished, so the claim's figure is written first.

    ``effect``: the paths of the numbers the finding is about; ``identity``: the paths of component ids (a list of
    ids, or ``list[].field`` for a list of records keyed by that field); the rest are diagnostics (probes/roles.py).
    A drift is then reported as the change of the effect and the overlap of the identities, and lists of components
    are matched by id, not by position. ``half``: the claim's tolerance when a bf16/fp16 run is compared with a
    snapshot that has no floors measured for that dtype (default ``HALF_TOL``; the run's own tolerance applies
    where it is wider); with measured half-precision floors (scripts/calibrate.py --dtype) those judge it, as the
    float32 floors judge a float32 run. ``rel`` / ``abs_``
    default to the claim module's ``TOLERANCE = (rel, abs)`` where it declares one, else (1e-3, 1e-4).

    ``intervals``: 95% bootstrap intervals over the claim's stimuli (``probes.stats.mean_ci`` and friends), in the
    shape of the numbers (``{"mean_logit_diff": [lo, hi], "top_heads": [{"delta": [lo, hi]}, ...]}``);
    ``stability``: per identity path, each component's share of resamples in which it is in the set. Both are
    recorded beside the numbers, and the first draws of each effect's interval (``probes.stats.interval`` keeps
    them) as ``_replicates``: a later run draws the same seeded resamples, so a change of an effect is tested pair
    by pair on the same stimuli (probes/paired.py); a stable component leaving its set is a change too
    (probes/compare.py).

    Numbers must be finite: a NaN or inf is an error naming its key, unless ``allow_nan=True`` (then recorded as
    null, never as text).

    Call it **before** the criterion's assertions (and write the figure before them too): a broken claim's
    numbers are then compared with its snapshot (never recorded) and shown beside its verdict."""
    rel0, abs0 = getattr(request.module, "TOLERANCE", (REL_TOL, ABS_TOL))

    def check(data: dict, rel: float | None = None, abs_: float | None = None,
              half: tuple[float, float] | None = None, effect=(), identity=(), intervals=None, stability=None,
              allow_nan: bool = False):
        extra = {}
        table = roles.roles(effect, identity)
        if intervals:
            extra["_intervals"] = intervals
            reps = paired.replicates(intervals, lambda p: roles.role_of(p, table) == roles.EFFECT)
            if reps:  # the effects' bootstrap draws: a new version is tested against them pair by pair
                extra["_replicates"] = reps
        if stability:
            extra["_stability"] = stability
        try:
            numbers = plain({**data, **extra}, allow_nan)
        except NonFiniteNumber as e:
            raise NumericsError(
                f"claim_snapshot: {e.path} is {e.value!r}: a claim's numbers must be finite (a NaN or inf usually means "
                "an activation overflowed, e.g. in float16, or a statistic divided by zero). Fix the measurement, or "
                "pass claim_snapshot(..., allow_nan=True) to record non-finite numbers as null") from None
        check_paths(numbers, effect, identity)  # a role path that names no number: an error, never silent
        request.node.stash[MEASURED] = Measurement(
            numbers, table, rel0 if rel is None else rel, abs0 if abs_ is None else abs_,
            (half or HALF_TOL)[:2], lm.meta())
    return check


def _claim_file(request, name: str) -> Path:
    """artifacts/<model>/<name>, remembered so that the summary and the reports list it once written."""
    s = _session(request.config)
    p = s.artifacts() / s.param_id(request.getfixturevalue("lm").spec) / name
    p.parent.mkdir(parents=True, exist_ok=True)
    request.node.stash.setdefault(FIGURES, []).append(p)
    return p


def _claim_id(request) -> str:
    return request.node.get_closest_marker("claim").kwargs["id"]


@pytest.fixture
def figure_path(request, model_id):
    """``figure_path()`` -> artifacts/<model>/<claim id>.png (folder created; the id from the claim's marker);
    ``figure_path(name)`` -> artifacts/<model>/<name>.png for a claim with more than one figure."""
    return lambda name=None: _claim_file(request, f"{name or _claim_id(request)}.png")


@pytest.fixture
def figure_title(request, lm):
    """``figure_title(suffix="")`` -> ``"<claim id> - <model><suffix>"`` (e.g. ``figure_title(f", layer {layer}")``):
    a figure's title from the claim's marker and the model, said once."""
    s = _session(request.config)
    return lambda suffix="": f"{_claim_id(request)} - {s.param_id(lm.spec)}{suffix}"


@pytest.fixture
def artifact_path(request, model_id):
    """``artifact_path(name)`` -> artifacts/<model>/<name> (folder created): non-figure artifacts of a claim."""
    return lambda name: _claim_file(request, name)


# ---------------------------------------------------------------------------------------------- running a claim
def pytest_runtest_setup(item):
    item.stash[STARTED] = time.time() - 1.0  # figures written from here on are this run's (1 s: mtime granularity)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """After a claim's body (criterion and figure) has passed, settle its snapshot. A registry known failure that
    now holds is not compared: its verdict is 'newly holds'. A broken claim's numbers are compared, never
    recorded; a known failure still failing shows its numbers without a snapshot."""
    xfail = any(mark.name == "xfail" for mark in item.iter_markers())
    s = _session(item.config)
    try:
        result = yield
    except torch.OutOfMemoryError:
        lm = item.funcargs.get("lm")
        n = getattr(lm, "batch_tokens", None)
        raise ResourceError(f"out of memory on {getattr(lm, 'device', 'the device')} with batches of {n} tokens: "
                            f"rerun with --max-batch-tokens {max(256, (n or 1024) // 4)}, or spread the model over "
                            "the GPUs with --device-map auto") from None
    except AssertionError:
        m = item.stash.get(MEASURED, None)  # what the claim handed over before its criterion failed
        if m is not None and not xfail:
            try:
                item.stash[SETTLED] = s.settle(item, m, record_ok=False)
            except ProbeError as e:  # a corrupt snapshot must not hide the claim's own failure
                log(f"{item.nodeid}: {e}")
        elif m is not None:
            item.stash[SETTLED] = Settled(None, None, *compare.effect_numbers(m.recorded(), m.roles))
        raise
    m = item.stash.get(MEASURED, None)
    if m is not None and not xfail:
        item.stash[SETTLED] = s.settle(item, m)
    return result


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Attach the claim's result (probes/results.py, as JSON) to its report; the controller collects them."""
    rep = yield
    exc = call.excinfo
    if exc is not None and isinstance(exc.value, ProbeError) and not _session(item.config).opt.fulltrace:
        rep.longrepr = f"{exc.typename}: {exc.value}"  # a checked input: its message names the fix, no traceback
    params = getattr(getattr(item, "callspec", None), "params", {})
    if item.get_closest_marker("claim") is None or params.get("model_id") is None:
        return rep
    in_call = rep.when == "call"
    if rep.when == "setup":
        item.stash[SETUP_S] = rep.duration  # fixtures a claim computes (shared measurements, nulls) count as its time
        if rep.passed:
            return rep  # the call's report carries the result
    elif not in_call:
        return rep
    start = item.stash.get(STARTED, 0.0)
    figures = [p for p in dict.fromkeys(item.stash.get(FIGURES, [])) if p.is_file() and p.stat().st_mtime >= start]
    result = _session(item.config).result(item, rep, call, item.stash.get(SETTLED, None) if in_call else None,
                                         item.stash.get(MEASURED, None) if in_call else None, figures,
                                         item.stash.get(SETUP_S, 0.0))
    rep.user_properties.append(("claim", result.to_json()))
    return rep


TALLY = {  # (verdict, whether pytest saw the call pass) -> pytest's category, letter and word for it
    (Verdict.MOVED, True): ("changed", "C", ("CHANGED", {"yellow": True})),
    (Verdict.NOISE, True): ("passed", "n", ("PASSED (within noise)", {"green": True})),
    (Verdict.PRECONDITION, False): ("failed", "P", ("PRECONDITION FAILED", {"red": True})),
    (Verdict.UNRECORDED, True): ("unrecorded", "U", ("NO SNAPSHOT", {"yellow": True}))}


def pytest_report_teststatus(report, config):
    """pytest's own tally agrees with the verdicts: a claim that holds with moved numbers (or none recorded) passed
    its criterion, and is counted as 'changed' (or 'unrecorded'), not as failed."""
    props = dict(p for p in getattr(report, "user_properties", []) if p[0] == "claim")
    if report.when != "call" or "claim" not in props:
        return None
    return TALLY.get((ClaimResult.from_json(props["claim"]).verdict, report.passed))


class _Controller:
    """Registered per config (pytest_runtest_logreport gets no config): on the controller (also under xdist), the
    claims' results and the failures that are not claims'; usage errors found while collecting."""

    def __init__(self, s: ClaimsSession):
        self.s = s

    def pytest_collectreport(self, report):
        if report.failed and str(report.longrepr).startswith(USAGE_PREFIX):
            self.s.usage_errors += 1

    def pytest_runtest_logreport(self, report):
        self.s.collect(report)


def pytest_sessionfinish(session, exitstatus):
    """Controller only: the run's exit status from the verdicts, and its reports."""
    s = session.config.stash.get(SESSION, None)
    if s is None or hasattr(session.config, "workerinput"):
        return
    session.exitstatus = s.finish(exitstatus)


def pytest_terminal_summary(terminalreporter, config):
    s = config.stash.get(SESSION, None)
    if s is not None:
        s.summary(terminalreporter)
