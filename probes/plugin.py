"""The pytest plugin of interp-claims (entry point ``pytest11: interp_claims``): options, model selection and
parametrisation, the model fixtures (one load per model per worker), snapshots with roles, figures, verdicts,
reports, history and ``--record``.

Any project that installs interp-claims gets it. A project configures where its files are with ini options,
relative to its root (the folder of its pytest.ini / pyproject.toml / tox.ini / setup.cfg):

    claims_registry   the model registry (default fixtures/models.toml)
    claims_snapshots  the snapshot folder (default snapshots)
    claims_artifacts  figures and reports (default artifacts; --artifacts overrides)

The plugin is idle in a project that has none of this (no registry file, no --models): it adds its options and
fixtures but selects no model and loads nothing. State lives in ``config.stash`` (one :class:`State` per pytest
process: the controller and each xdist worker)."""
from __future__ import annotations

import inspect
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from . import drift as D
from . import history as H
from . import loading
from . import verdicts as V
from .artifacts import RunFolder
from .errors import ProbeError
from . import access
from .registry import ModelSpec, load_registry, resolve
from .errors import NumericsError
from .snapshot import ABS_TOL, REL_TOL, NonFiniteNumber, SnapshotStore, check_snapshot, plain, serialize

INI = {"claims_registry": ("fixtures/models.toml", "the model registry (TOML), relative to the project root"),
       "claims_snapshots": ("snapshots", "the folder of the recorded snapshots, relative to the project root"),
       "claims_artifacts": ("artifacts", "the folder of figures and reports, relative to the project root "
                                         "(--artifacts overrides it)")}


@dataclass
class State:
    """One pytest process's view of the claims run (controller or xdist worker)."""
    root: Path                        # the project root: paths in the ini options and the registry are relative to it
    registry_file: Path | None        # None: no registry (the plugin is idle unless --models names models)
    snapshots: Path
    models: list[ModelSpec] = field(default_factory=list)
    left_out: list[tuple[str, str]] = field(default_factory=list)
    families: set[str] = field(default_factory=set)  # every family of the registry's and the selected models
    registry: dict[str, ModelSpec] = field(default_factory=dict)  # the registry as read at start (_select)
    explicit: bool = False
    any_family: bool = False          # a selected model runs every family (a model given by path or hub id)
    results: list[dict] = field(default_factory=list)
    other_failures: int = 0
    started: float = field(default_factory=time.time)  # when this process configured the run (its wall time)
    usage_errors: int = 0                             # claims-project mistakes found while collecting (exit 4)
    collected: bool = False
    status: int | None = None
    reports: list[Path] = field(default_factory=list)
    history_file: Path | None = None
    loaded: dict[str, loading.LoadedModel] = field(default_factory=dict)
    folder: RunFolder | None = None   # controller: the artifacts folder this run holds (or its own, when taken)
    load_errors: dict[str, ProbeError] = field(default_factory=dict)

    def shown(self, p: Path) -> str:
        """A path as the user reads it: relative to the project root where it lies inside it."""
        p = Path(p)
        return os.path.relpath(p, self.root) if p.is_absolute() and p.is_relative_to(self.root) else str(p)

    @property
    def registry_name(self) -> str:
        return self.shown(self.registry_file) if self.registry_file else "the registry (claims_registry)"


STATE = pytest.StashKey[State]()


def state(config) -> State:
    return config.stash[STATE]


def pytest_addoption(parser):
    g = parser.getgroup("claims", "interpretability claims")
    g.addoption("--models", default=None,
                help="comma-separated registry ids, hub ids (owner/name[@revision]) or local folders; "
                     "default: every registry model available offline")
    g.addoption("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    g.addoption("--corpus", default=None,
                help="a UTF-8 text file, one context per line: neuron.top_contexts also writes the stand-out "
                     "neuron's top contexts in it to artifacts/<model>/neuron.top_contexts.<file stem>.md")
    g.addoption("--device-map", default=None, choices=["auto", "balanced", "balanced_low_0", "sequential"],
                help="on CUDA, spread each model over the visible GPUs (for a model that does not fit one; "
                     "default: one GPU per model, xdist worker gwN on GPU N mod the number of GPUs)")
    g.addoption("--dtype", default="float32", help="float32 | bfloat16 | float16 (default float32)")
    g.addoption("--artifacts", default=None,
                help="folder for figures and reports (default: the ini option claims_artifacts, artifacts/)")
    g.addoption("--allow-mismatch", action="store_true",
                help="compare a candidate (<registry id>=<new version>) with its registry model's snapshots even when "
                     "its architecture, depth, heads, width or tokenizer differ (refused by default)")
    g.addoption("--allow-pickle", action="store_true", help="allow loading pickle (.bin) checkpoints")
    g.addoption("--trust-remote-code", action="store_true", help="allow models that run code from the hub")
    g.addoption("--exact", default="auto", choices=["auto", "on", "off"],
                help="measure every component (head, neuron) exactly: on; screen all of them with attribution "
                     "patching and measure the top ones and a random sample exactly: off; auto (default): exact on "
                     "CUDA or when the model has at most 64 attention heads in all")
    g.addoption("--history", default=None, metavar="DIR",
                help="append this run (date, command, models with their hashes, packages, device, dtype, and per "
                     "claim x model the verdict and its numbers with their roles) to DIR/history.jsonl, never "
                     "rewriting earlier lines; report.html then plots each claim's effect over the runs in DIR "
                     "(relative to the project root unless absolute, as --artifacts)")
    g.addoption("--significance", default="interval", choices=["interval", "floor"],
                help="when a move beyond a number's noise floor is a change (exit 6): interval (default): an effect "
                     "left its recorded bootstrap interval or a stable component left its set; floor: any move "
                     "beyond the floor, diagnostics included (this project's own CI: a change of the measuring code "
                     "on the same model must not hide inside sampling noise)")
    g.addoption("--weight-jitter", type=float, default=0.0, metavar="SIZE",
                help="noise-floor calibration only (scripts/calibrate.py): multiply every weight by 1 + SIZE x N(0, 1), "
                     "seeded, e.g. 1e-6 (float32 rounding scale); never recorded")
    g.addoption("--record", action="store_true",
                help="record the snapshot of every claim that passes its criterion in this run (atomically); "
                     "never deletes or rewrites the snapshot of a claim that failed, errored or did not run")
    for name, (default, help_) in INI.items():
        parser.addini(name, f"{help_} (default {default})", default=default)


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


def _project_root(config) -> Path:
    """The folder of the ini file that configures pytest (else pytest's rootdir)."""
    return Path(config.inipath).parent if config.inipath else Path(config.rootpath)


def _ini_path(config, name: str, root: Path) -> Path:
    p = Path(config.getini(name)).expanduser()
    return p if p.is_absolute() else root / p


def _new_state(config) -> State:
    """Where this project keeps its registry and snapshots. A registry named in the ini file must exist; the default
    one (fixtures/models.toml) may be absent, and the plugin is then idle unless --models names models."""
    root = _project_root(config)
    reg = _ini_path(config, "claims_registry", root)
    if not reg.is_file():
        set_in_ini = config.inipath is not None and "claims_registry" in _ini_keys(config)
        if set_in_ini:
            raise pytest.UsageError(f"claims_registry = {config.getini('claims_registry')} (in {config.inipath}): no "
                                    f"such file ({reg}); create it or fix the path (relative to {root})")
        reg = None
    return State(root=root, registry_file=reg, snapshots=_ini_path(config, "claims_snapshots", root))


def _ini_keys(config) -> set[str]:
    """The ini options the project's ini file sets (pytest's getini cannot tell a default from a set value)."""
    try:
        return set(config._inicfg)
    except AttributeError:  # pragma: no cover - pytest internals moved
        return set()


def _select(config, st: State) -> tuple[list[ModelSpec], list[tuple[str, str]], bool]:
    try:
        registry = load_registry(st.registry_file, st.root) if st.registry_file else {}
    except ProbeError as e:
        raise pytest.UsageError(str(e)) from None
    st.registry = registry
    st.families = {f for spec in registry.values() for f in spec.families or []}
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
        st.families |= {f for spec in specs for f in spec.families or []}
        return specs, [], True
    chosen, left, broken = [], [], []
    for spec in registry.values():
        if spec.source == "hub":  # offline default: a hub model runs once it is in the local cache (documented)
            ok, why = _hub_available(spec)
            (chosen.append(spec) if ok else left.append((spec.id, why)))
            continue
        try:
            access.available(spec)
            chosen.append(spec)
        except ProbeError as e:
            broken.append(str(e))
    if broken:  # a default run checks every registry model it can have: one that broke must not pass unnoticed
        others = ",".join(s.id for s in chosen) or "<ids>"
        raise pytest.UsageError(
            "\n".join(broken) + f"\n(a default run checks every model of {st.registry_name}: fix the entry above, "
            f"or run the others with --models {others})")
    return chosen, left, False


def _artifacts(config) -> Path:
    """Where this run writes figures and reports: the folder given (below), or this run's own folder under it when
    another run holds it (probes/artifacts.py; an xdist worker is told by its controller)."""
    given = getattr(config, "workerinput", {}).get(ARTIFACTS_KEY)
    if given:
        return Path(given)
    st = config.stash.get(STATE, None)
    if st is not None and st.folder is not None:
        return st.folder.path
    return _artifacts_given(config)


ARTIFACTS_KEY = "interp_claims_artifacts"


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """pytest-xdist: a worker writes its figures to the folder its controller holds."""
    st = node.config.stash.get(STATE, None)
    if st is not None and st.folder is not None:
        node.workerinput[ARTIFACTS_KEY] = str(st.folder.path)


def _artifacts_given(config) -> Path:
    """--artifacts (else the ini option claims_artifacts), relative to the project root unless absolute."""
    opt = config.getoption("--artifacts")
    root = state(config).root
    if opt is None:
        return _ini_path(config, "claims_artifacts", root)
    art = Path(opt).expanduser()
    return art if art.is_absolute() else root / art


def _half(config) -> bool:
    """Whether this is a bfloat16/float16 run (compared with the float32 snapshots, never recorded)."""
    return str(loading.pick_dtype(config.getoption("--dtype"))) != "torch.float32"


def _spec(config, model_id: str) -> ModelSpec:
    return next(s for s in state(config).models if s.id == model_id)


def _threads_per_worker() -> None:
    """Under pytest-xdist, split the cores between the workers: every worker's torch defaulting to all cores
    oversubscribes the CPU (measured here: 2 workers x 2 threads on 2 cores ran the claims several times slower).
    The share goes into OMP_NUM_THREADS as well, for the processes a worker starts (a test running pytest or a
    script): a 2-thread child beside the other worker's busy thread took 227 s where 1 thread took 135 s."""
    n = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if n and not os.environ.get("OMP_NUM_THREADS"):
        import torch
        share = max(1, (os.cpu_count() or 1) // int(n))
        torch.set_num_threads(share)
        os.environ["OMP_NUM_THREADS"] = str(share)


PATH_OPTIONS = ("--models", "--artifacts", "--history", "--corpus")  # options whose value may be a path


def _check_rootdir_not_taken_from_an_option(config) -> None:
    """pytest chooses its rootdir and ini file before any plugin's options are known: in ``--artifacts DIR`` (a space,
    not ``=``) it takes an existing DIR for a test path and looks for the ini file from there. When that finds
    another ini file (or none) than the command's own test paths would, the project's ini file (its registry,
    snapshots) is not read: a usage error naming the ``=`` spelling, which pytest parses as one word."""
    args = [str(a) for a in config.invocation_params.args]
    taken = [(opt, val) for opt, val in zip(args, args[1:]) if opt in PATH_OPTIONS and Path(val).exists()]
    if not taken:
        return
    try:
        from _pytest.config.findpaths import determine_setup  # pytest's own rootdir/ini search (private API)
        given = [str(a) for a in config.args] if config.args_source == pytest.Config.ArgsSource.ARGS else []
        kw = dict(inifile=config.known_args_namespace.inifilename, args=given,
                  rootdir_cmd_arg=config.known_args_namespace.rootdir or None,
                  invocation_dir=Path(config.invocation_params.dir))
        if "override_ini" in inspect.signature(determine_setup).parameters:
            kw["override_ini"] = config.known_args_namespace.override_ini
        _, inipath, *_ = determine_setup(**kw)
    except Exception:  # another pytest: leave its choice alone
        return
    if inipath != config.inipath:
        opt, val = taken[0]
        raise pytest.UsageError(
            f"{opt} {val}: pytest took this path for a test path when it looked for its ini file, before this "
            f"plugin's options were known, and read {config.inipath or 'no ini file'} instead of {inipath}. Write "
            f"the value with '=': {opt}={val}")


def pytest_configure(config):
    _check_rootdir_not_taken_from_an_option(config)
    config.addinivalue_line("markers", "claim(id, family, source, kinds, null, criterion): an interpretability "
                                       "claim (interp-claims)")
    config.addinivalue_line("markers", "xdist_group(name): run on one xdist worker (set per model)")
    st = config.stash[STATE] = _new_state(config)
    config.pluginmanager.register(_Collector(config), "interp_claims-collector")
    if st.registry_file is None and config.getoption("--models") is None:
        return  # not a claims project: options and fixtures only, nothing selected or loaded (syrupy left as it is)
    if getattr(config.option, "update_snapshots", False):
        raise pytest.UsageError(
            "--snapshot-update is disabled in this suite: syrupy deletes the snapshots of claims that failed, errored, "
            "were not selected or were interrupted. Use --record: it writes only the claims that pass in this run.")
    _threads_per_worker()
    corpus = config.getoption("--corpus", None)
    if corpus and not Path(corpus).is_file():
        raise pytest.UsageError(f"--corpus {corpus}: no such file (give a text file with one context per line)")
    try:
        loading.pick_dtype(config.getoption("--dtype"))
        loading.check_device_name(config.getoption("--device"))
        loading.pick_device(config.getoption("--device"))  # --device cuda needs CUDA: one usage error, at start
    except ProbeError as e:
        raise pytest.UsageError(str(e)) from None
    art = _artifacts(config)
    try:
        art.mkdir(parents=True, exist_ok=True)
        probe = art / f".write-test-{os.getpid()}"  # one per process: xdist workers check at the same time
        probe.touch()
        probe.unlink()
    except OSError as e:
        raise pytest.UsageError(f"--artifacts {art}: cannot write figures there ({e.strerror}); give a writable "
                                "folder") from None
    if not hasattr(config, "workerinput"):  # two runs with one artifacts folder: the second writes in its own
        st.folder = RunFolder.take(art)
        if st.folder.own:
            loading.log(st.folder.note(st.shown))
    hist = _history(config)
    if hist is not None and not hasattr(config, "workerinput"):
        try:
            hist.mkdir(parents=True, exist_ok=True)
            if (hist / H.FILE).exists() and not os.access(hist / H.FILE, os.W_OK) or not os.access(hist, os.W_OK):
                raise PermissionError(13, "not writable")
        except OSError as e:
            raise pytest.UsageError(f"--history {hist}: cannot append there ({e.strerror}); give a writable folder "
                                    "(its history.jsonl is created, or appended to)") from None
    st.models, st.left_out, st.explicit = _select(config, st)
    st.any_family = any(spec.families is None for spec in st.models)
    if config.getoption("--record"):
        cands = [s.id for s in st.models if s.baseline]
        if cands:
            raise pytest.UsageError(
                f"--record with candidate models ({', '.join(cands)}): a candidate is compared with its registry "
                "entry's snapshots, never recorded over them. To adopt the new version, point the registry entry "
                f"({st.registry_name}) at it, then run --record for that id.")
        if config.getoption("--weight-jitter"):
            raise pytest.UsageError("--record with --weight-jitter: jittered weights are for measuring noise floors "
                                    "(scripts/calibrate.py), never recorded; leave one of them out")
        if _half(config):
            raise pytest.UsageError(f"--record with --dtype {config.getoption('--dtype')}: snapshots are the float32 "
                                    "findings; a half-precision run is compared with them, not recorded")
    if _half(config) and loading.pick_device(
            config.getoption("--device")).type == "cpu" and not hasattr(config, "workerinput"):
        config.issue_config_time_warning(pytest.PytestConfigWarning(
            f"--dtype {config.getoption('--dtype')} on a CPU: half precision is emulated there and runs several "
            "times slower than float32 (measured about 8x); use a GPU for half-precision runs"), stacklevel=2)
    if not hasattr(config, "workerinput"):  # controller (or a run without xdist): convert GGUF models once, with
        for spec in st.models:  # progress on the terminal, before workers start and wait for them
            if access.is_gguf(spec):
                try:
                    access.folder(spec)
                except ProbeError as e:
                    raise pytest.UsageError(str(e)) from None
        if not config.getoption("--allow-mismatch"):
            _check_candidates(st)


def _check_candidates(st: State) -> None:
    """A candidate (``<registry id>=<new version>``) is compared with its registry model's snapshots: refused when
    its architecture, depth, heads, width or tokenizer differ, since those numbers would be another model's."""
    for spec in st.models:
        base = st.registry.get(spec.baseline or "")
        if base is None:
            continue
        diff = access.mismatch(spec, base)
        if diff:
            raise pytest.UsageError(
                f"--models {spec.baseline}={spec.path or spec.hub_id}: not a version of {spec.baseline} ("
                f"{'; '.join(diff)}), so its numbers cannot be compared with {spec.baseline}'s snapshots. Measure it "
                f"as a model of its own (--models {spec.path or spec.hub_id}), or pass --allow-mismatch to compare "
                "it anyway")


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
    where = os.path.basename(spec.origin) if spec.origin else "the registry"
    return [pytest.mark.xfail(strict=True, raises=AssertionError,
                              reason=f"registry: {claim_id} does not hold for {spec.id}: {reason} (if it now holds, "
                                     f"remove it from expect.{family}.known_failures in {where})")]


def pytest_generate_tests(metafunc):
    """Parametrise claims over the selected models that support their family (and over layers for claims
    that take a ``layer`` argument, as the seeds loop over layers)."""
    if "model_id" not in metafunc.fixturenames:
        return
    mark = metafunc.definition.get_closest_marker("claim")
    cfg = metafunc.config
    st = state(cfg)
    node = metafunc.definition.nodeid
    example = ('@pytest.mark.claim(id="myfamily.finding", family="myfamily", source=..., null=..., criterion=...)')
    if mark is None:
        _usage(f"{node} uses the model fixtures (lm, model_id) but has no claim marker: it would run on every model "
               f"with no verdict, snapshot or report. Mark it {example}, or do not use the lm fixture")
    lacking = [k for k in ("id", "family") if not mark.kwargs.get(k)]
    if lacking:
        _usage(f"{node}: @pytest.mark.claim needs {' and '.join(f'{k}=' for k in lacking)} (e.g. {example}): the id "
               "names the claim in verdicts and reports, the family picks its models")
    if st.registry_file is None and cfg.getoption("--models") is None:
        _usage(f"{node}: no claims registry: {st.shown(_ini_path(cfg, 'claims_registry', st.root))} does not exist. "
               "Set the ini option claims_registry to your registry file (e.g. claims_registry = models.toml in "
               "pytest.ini), or pass --models")
    family = mark.kwargs["family"]
    if family not in st.families and not st.any_family:
        _usage(f"{node}: family {family!r} (in its claim marker) is not a family of any model in "
               f"{st.registry_name if st.registry_file else '--models'} (families there: "
               f"{', '.join(sorted(st.families)) or 'none'}); fix the marker, or add {family!r} to the families of "
               "the models it is about")
    kinds = mark.kwargs.get("kinds")
    per_layer = "layer" in metafunc.fixturenames
    params = []
    for spec in st.models:
        if family and not spec.runs(family):
            continue
        if kinds and spec.kind not in kinds:
            continue
        pid = _param_id(spec, cfg.getoption("--dtype"))
        marks = _known_failure(spec, family, mark.kwargs.get("id") if mark else None)
        if per_layer:
            n = access.n_layers(spec)
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


def _usage(message: str):
    """A mistake in a claims project found while collecting (a claim without marker, id or a known family; no
    registry): one line on the terminal (pytest shows a CollectError's message without a traceback), and the run
    exits 4 (usage error, see :meth:`_Collector.pytest_collectreport`)."""
    raise pytest.Collector.CollectError(USAGE_PREFIX + message)


USAGE_PREFIX = "interp-claims usage error: "


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Group tests by model so that under -n auto (with --dist loadgroup) each model loads on one worker.

    Each claim gets an ``xdist_group`` mark named after its model; xdist's worker hook (which runs after this
    one) turns it into the scheduling group by suffixing the nodeid. pytest 9.2 derives nodeids from a new
    attribute, which silently breaks that in pytest-xdist 3.8: hence pytest<9.1 in pyproject.toml
    (tests/test_parallel.py checks that each model loads once).

    Scheduling hints from the registry: ``xdist_split = [families]`` gives those claim families of a slow model
    a group of their own (the model then loads on a second worker, and its claims run on two cores at once), and
    ``xdist_weight`` (default 1) puts the heavier models' tests first, so that the longest groups start first
    (longest-first list scheduling). xdist hands groups out in the order they are first collected only with
    ``--no-loadscope-reorder`` (in pyproject.toml's addopts): by default it re-sorts them by their number of
    tests, which queued Gemma-3's few but slow neuron claims behind every organism. Tests that are not claims
    (tests/) count as weight 1: many short items that fill in behind the real models, before the organisms.
    """
    st = state(config)
    specs = {s.id: s for s in st.models}
    weight = {}
    for item in items:
        cs = getattr(item, "callspec", None)
        mid = cs.params.get("model_id") if cs else None
        if not mid:
            continue
        st.collected = True
        spec = specs.get(mid)
        mark = item.get_closest_marker("claim")
        family = mark.kwargs.get("family") if mark else None
        split = spec is not None and family in spec.param("xdist_split", [])
        item.add_marker(pytest.mark.xdist_group(f"{mid}:{family}" if split else mid))
        weight[item.nodeid] = spec.param("xdist_weight", 1) if spec is not None else 1
    # stable: collection order within a weight (tests/ is collected before claims/)
    items.sort(key=lambda it: -weight.get(it.nodeid, 1))


@pytest.fixture
def lm(model_id, request) -> loading.LoadedModel:
    """The loaded model; cached for the whole worker process (one load per model per worker)."""
    st = state(request.config)
    if model_id in st.load_errors:  # fail fast: do not retry a model that could not load (e.g. hub unreachable)
        raise st.load_errors[model_id]
    if model_id not in st.loaded:
        cfg = request.config
        spec = _spec(cfg, model_id)
        loading.log(f"loading {spec.id} ({spec.source}: {spec.hub_id or spec.path or spec.package}) "
                    f"on {cfg.getoption('--device')} / {cfg.getoption('--dtype')}")
        try:
            st.loaded[model_id] = loading.load(spec, cfg.getoption("--device"), cfg.getoption("--dtype"),
                                               allow_pickle=cfg.getoption("--allow-pickle"),
                                               trust_remote_code=cfg.getoption("--trust-remote-code"),
                                               device_map=cfg.getoption("--device-map"),
                                               jitter=cfg.getoption("--weight-jitter"))
        except ProbeError as e:
            st.load_errors[model_id] = e
            raise
        if os.environ.get("CLAIMS_LOAD_LOG"):  # tests/ check that each model loads once per worker
            with open(os.environ["CLAIMS_LOAD_LOG"], "a") as f:
                f.write(f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')} {model_id}\n")
    return st.loaded[model_id]


@pytest.fixture
def exact(lm, request) -> bool:
    """Whether component-ranking claims measure every component exactly (see --exact)."""
    opt = request.config.getoption("--exact")
    if opt != "auto":
        return opt == "on"
    return lm.device.type == "cuda" or lm.adapter.n_layers * lm.adapter.n_heads <= 64


PENDING = pytest.StashKey[dict]()   # the numbers a claim handed to claim_snapshot, settled after the test body
FIGURES = pytest.StashKey[list]()   # the figure/artifact paths a claim asked for
STARTED = pytest.StashKey[float]()  # when the claim started (figures written after it are this run's)
SETTLED = pytest.StashKey[dict]()   # the snapshot comparison's outcome, read by pytest_runtest_makereport
SETUP_S = pytest.StashKey[float]()  # the claim's setup time (its fixtures), added to its duration in the reports
HALF_TOL = (0.05, 0.05)             # default (rel, abs) tolerance of a bf16/fp16 run against the float32 snapshot


@pytest.fixture
def claim_snapshot(lm, request):
    """``claim_snapshot(data, effect=[...], identity=[...], rel=..., abs_=..., half=(rel, abs))``: the claim's numbers,
    compared with this claim x model's recorded snapshot (or recorded, with --record) after the test body has
    finished, so the claim's figure is written first.

    ``effect``: the paths of the numbers the finding is about; ``identity``: the paths of component ids (a list of
    ids, or ``list[].field`` for a list of records keyed by that field); the rest are diagnostics (probes/drift.py).
    A drift is then reported as the change of the effect and the overlap of the identities, and lists of components
    are matched by id, not by position. ``half``: the claim's tolerance when a bf16/fp16 run is compared with the
    float32 snapshot (default ``HALF_TOL``; the run's own tolerance applies where it is wider).

    ``intervals``: 95% bootstrap intervals over the claim's stimuli (``probes.stats.mean_ci`` and friends), in the
    shape of the numbers (``{"mean_logit_diff": [lo, hi], "top_heads": [{"delta": [lo, hi]}, ...]}``);
    ``stability``: per identity path, each component's share of resamples in which it is in the set. Both are
    recorded beside the numbers; a move is significant when an effect leaves its recorded interval or a stable
    component leaves its set (probes/drift.py).

    Call it **before** the criterion's assertions (and write the figure before them too): a broken claim's
    numbers are then compared with its snapshot (never recorded) and shown beside its verdict."""
    def check(data: dict, rel: float | None = None, abs_: float | None = None,
              half: tuple[float, float] | None = None, effect=(), identity=(), intervals=None, stability=None,
              allow_nan: bool = False):
        roles = D.roles(effect, identity)
        extra = {}
        if intervals:
            extra["_intervals"] = intervals
        if stability:
            extra["_stability"] = stability
        try:
            numbers = plain({**data, **extra}, allow_nan)
        except NonFiniteNumber as e:
            raise NumericsError(
                f"claim_snapshot: {e.path} is {e.value!r}: a claim's numbers must be finite (a NaN or inf usually means "
                "an activation overflowed, e.g. in float16, or a statistic divided by zero). Fix the measurement, or "
                f"pass claim_snapshot(..., allow_nan=True) to record non-finite numbers as null") from None
        request.node.stash[PENDING] = {
            "data": {**numbers, "_recorded_with": lm.meta()}, "roles": roles,
            "rel": REL_TOL if rel is None else rel, "abs": ABS_TOL if abs_ is None else abs_, "half": half or HALF_TOL}
    return check


def _baseline_file(item) -> Path:
    """The snapshot this claim x model is compared with: the registry model's own (a candidate ``id@label`` uses
    ``id``'s; a bf16/fp16 run uses the float32 one)."""
    cs = item.callspec.params
    spec = _spec(item.config, cs["model_id"])
    layer = "" if cs.get("layer") is None else f"-L{cs['layer']}"
    return SnapshotStore(state(item.config).snapshots).path(
        Path(item.fspath).stem, f"{item.originalname}[{spec.baseline or spec.id}{layer}]")


def _numbers(old: dict | None, new: dict, roles: dict, drift: D.Drift | None = None) -> dict:
    """The headline effect of this run and the effect number that moved most, each with its interval and the
    recorded value and interval (probes/drift.py: effect_numbers)."""
    head, largest = D.effect_numbers(new, roles, old, drift)
    return {"headline": head, "largest": largest}


def _settle_snapshot(item, pending: dict, record_ok: bool = True) -> dict:
    """Compare the claim's numbers with its snapshot (its verdict: holds, holds within noise, holds but changed,
    or holds without snapshot), or, with --record, write them (the test body, criterion and figure included, has
    passed). A drift is not a test failure: the claim holds; the verdict, the exit status (6, for a significant
    change) and the reports say that its numbers moved. ``record_ok=False`` (a broken claim): compare only."""
    path = _baseline_file(item)
    shown = state(item.config).shown(path)
    new = json.loads(serialize(pending["data"]))
    if item.config.getoption("--record") and record_ok:
        changed = SnapshotStore(path.parent.parent).record(path, pending["data"], pending["rel"], pending["abs"])
        loading.log(f"recorded {shown}" if changed else f"{shown} unchanged (within tolerance)")
        return {"verdict": V.HOLDS, **_numbers(None, new, pending["roles"])}
    rel, abs_ = pending["rel"], pending["abs"]
    if _half(item.config):
        rel, abs_ = max(rel, pending["half"][0]), max(abs_, pending["half"][1])
    if not path.exists():
        return {"verdict": V.UNRECORDED, **_numbers(None, new, pending["roles"]),
                "lines": serialize({k: v for k, v in new.items() if k != "_recorded_with"}).splitlines()}
    old = SnapshotStore(path.parent.parent, state(item.config).shown).read(path)
    check_snapshot(old, new, shown)
    drift = D.diff(old, new, rel, abs_, pending["roles"], item.config.getoption("--significance"))
    nums = _numbers(old, new, pending["roles"], drift)
    if not drift.moved:
        return {"verdict": V.HOLDS, "drift": drift.as_dict(), **nums}
    return {"verdict": V.MOVED if drift.significant else V.NOISE, "lines": drift.lines(), "drift": drift.as_dict(),
            **nums}


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    """After a claim's body (criterion and figure) has passed, settle its snapshot. A registry known failure that
    now holds is not compared: its verdict is 'newly holds'."""
    xfail = any(m.name == "xfail" for m in item.iter_markers())
    try:
        result = yield
    except AssertionError:  # broken (or its precondition failed): its numbers are compared, never recorded
        pending = item.stash.get(PENDING, None)
        if pending is not None and not xfail:
            try:
                item.stash[SETTLED] = _settle_snapshot(item, pending, record_ok=False)
            except ProbeError as e:  # a corrupt snapshot must not hide the claim's own failure
                loading.log(f"{item.nodeid}: {e}")
        elif pending is not None:  # a known failure still failing: no snapshot, but its effect is shown
            item.stash[SETTLED] = _numbers(None, json.loads(serialize(pending["data"])), pending["roles"])
        raise
    pending = item.stash.get(PENDING, None)
    if pending is not None and not xfail:
        item.stash[SETTLED] = _settle_snapshot(item, pending)
    return result


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Attach the claim's verdict (probes/verdicts.py) to its report; the controller collects them."""
    rep = yield
    exc = call.excinfo
    if exc is not None and isinstance(exc.value, ProbeError) and not item.config.getoption("fulltrace"):
        rep.longrepr = f"{exc.typename}: {exc.value}"  # a checked input: its message names the fix, no traceback
    mark = item.get_closest_marker("claim")
    cs = getattr(getattr(item, "callspec", None), "params", {})
    if mark is None or cs.get("model_id") is None:
        return rep
    if rep.when == "setup":
        item.stash[SETUP_S] = rep.duration  # fixtures a claim computes (shared measurements, nulls) count as its time
    if not (rep.when == "call" or (rep.when == "setup" and not rep.passed)):
        return rep
    st = state(item.config)
    exc = call.excinfo
    strict_xpass = rep.when == "call" and rep.failed and exc is None
    settled = item.stash.get(SETTLED, {}) if rep.when == "call" else {}
    verdict = V.classify(rep.when, rep.outcome, exc, getattr(rep, "wasxfail", None), strict_xpass,
                         settled.get("verdict") if rep.passed else None)
    spec = _spec(item.config, cs["model_id"])
    message = ""
    if verdict in (V.BROKEN, V.PRECONDITION, V.ERROR):
        message = (exc.exconly() if exc is not None else str(rep.longrepr)[-600:]).split("\n")[0]
    elif verdict == V.KNOWN:
        message = rep.wasxfail
    elif verdict == V.NEWLY:
        message = (f"holds now; remove it from the registry's known_failures "
                   f"({os.path.basename(spec.origin) if spec.origin else 'the registry'})")
    start = item.stash.get(STARTED, 0.0)
    figures = [st.shown(p) for p in dict.fromkeys(item.stash.get(FIGURES, []))
               if p.is_file() and p.stat().st_mtime >= start]
    pending = item.stash.get(PENDING, None) if rep.when == "call" else None
    rep.user_properties.append(("claim", {
        "claim": mark.kwargs.get("id"), "model": _param_id(spec, item.config.getoption("--dtype")),
        "baseline": spec.baseline, "layer": cs.get("layer"), "verdict": verdict, "message": message[:2000],
        "moved": settled.get("lines", []),
        "drift": settled.get("drift"), "headline": settled.get("headline"), "largest": settled.get("largest"),
        "numbers": plain({k: v for k, v in pending["data"].items() if k != "_recorded_with"}) if pending else None,
        "roles": pending["roles"] if pending else None,
        "snapshot": st.shown(_baseline_file(item)), "figures": figures,
        "source": mark.kwargs.get("source", ""), "null": mark.kwargs.get("null", ""),
        "criterion": mark.kwargs.get("criterion", ""), "doc": (item.obj.__doc__ or "").strip().split("\n\n")[0],
        "nodeid": item.nodeid,
        "duration": round(rep.duration + (item.stash.get(SETUP_S, 0.0) if rep.when == "call" else 0.0), 2)}))
    return rep


def pytest_report_teststatus(report, config):
    """pytest's own tally agrees with the verdicts: a claim that holds with moved numbers (or none recorded) passed
    its criterion, and is counted as 'moved' (or 'unrecorded'), not as failed."""
    props = dict(p for p in getattr(report, "user_properties", []) if p[0] == "claim")
    verdict = props.get("claim", {}).get("verdict")
    if report.when == "call" and report.passed and verdict == V.MOVED:
        return "changed", "C", ("CHANGED", {"yellow": True})
    if report.when == "call" and report.passed and verdict == V.NOISE:
        return "passed", "n", ("PASSED (within noise)", {"green": True})
    if report.when == "call" and report.failed and verdict == V.PRECONDITION:
        return "failed", "P", ("PRECONDITION FAILED", {"red": True})
    if report.when == "call" and report.passed and verdict == V.UNRECORDED:
        return "unrecorded", "U", ("NO SNAPSHOT", {"yellow": True})
    return None


def pytest_runtest_setup(item):
    item.stash[STARTED] = time.time() - 1.0  # figures written from here on are this run's (1 s: mtime granularity)


class _Collector:
    """Registered per config (pytest_runtest_logreport gets no config): on the controller (also under xdist), collect
    the verdicts and count the failures that are not claims."""

    def __init__(self, config):
        self.config = config

    def pytest_collectreport(self, report):
        st = self.config.stash.get(STATE, None)
        if st is not None and report.failed and str(report.longrepr).startswith(USAGE_PREFIX):
            st.usage_errors += 1

    def pytest_runtest_logreport(self, report):
        st = self.config.stash.get(STATE, None)
        if st is None:
            return
        props = dict((k, v) for k, v in report.user_properties if k == "claim")
        if "claim" in props:
            st.results.append(props["claim"])
        elif report.failed:
            st.other_failures += 1


def _claim_file(request, name: str) -> Path:
    """artifacts/<model>/<name>, remembered so that the summary and the reports list it once written."""
    model_dir = _param_id(request.getfixturevalue("lm").spec, request.config.getoption("--dtype"))
    p = _artifacts(request.config) / model_dir / name
    p.parent.mkdir(parents=True, exist_ok=True)
    request.node.stash.setdefault(FIGURES, []).append(p)
    return p


@pytest.fixture
def figure_path(request, model_id):
    """``figure_path(claim_id)`` -> artifacts/<model>/<claim_id>.png (folder created)"""
    return lambda claim_id: _claim_file(request, f"{claim_id}.png")


@pytest.fixture
def artifact_path(request, model_id):
    """``artifact_path(name)`` -> artifacts/<model>/<name> (folder created): non-figure artifacts of a claim."""
    return lambda name: _claim_file(request, name)


def pytest_sessionfinish(session, exitstatus):
    """Controller only: the run's exit status from the verdicts (probes/verdicts.py) and its reports."""
    config = session.config
    st = config.stash.get(STATE, None)
    if hasattr(config, "workerinput") or st is None:
        return
    dtype = config.getoption("--dtype")
    st.results = results = V.ordered(st.results, [_param_id(s, dtype) for s in st.models])
    status = V.exit_status(int(exitstatus), results, st.other_failures)
    if st.usage_errors:
        status = int(pytest.ExitCode.USAGE_ERROR)
    session.exitstatus = status
    st.status = status
    if not results:
        return
    meta = {"models": [_param_id(s, dtype) for s in st.models],
            "device": config.getoption("--device"), "dtype": dtype,
            "device_used": _device_used(config),
            "left_out": st.left_out, "when": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": "pytest " + " ".join(config.invocation_params.args)}
    meta["lock_diff"] = H.lock_diff(st.root / "constraints" / "ci.txt")  # newer releases than CI's lock
    meta.update(machine=H.machine(), wall_s=round(time.time() - st.started, 1))
    runs, hist = [H.run_record(results, meta, status, st.models)], _history(config)
    meta.update(provenance=runs[0]["provenance"], packages=runs[0]["packages"])  # in report.json too (merges)
    try:
        if hist is not None:
            st.history_file = H.append(hist, runs[0])
            runs, bad = H.load(hist)
            for b in bad:
                loading.log(b)
            meta["trend_note"] = f"the {len(runs)} run(s) in {hist / H.FILE}; x = run date and model version"
        else:
            meta["trend_note"] = "the models of this run in the order given"
        trends = H.trends(runs)
    except Exception as e:  # noqa: BLE001 - history and plots must not hide the verdicts
        trends = {}
        loading.log(f"could not write the history or its plots: {type(e).__name__}: {e}")
    try:
        forests = H.forests(results, runs if hist is not None else None)
    except Exception as e:  # noqa: BLE001 - a plot must not hide the verdicts
        forests = {}
        loading.log(f"could not draw the forest plots: {type(e).__name__}: {e}")
    try:
        st.reports = V.write_reports(_artifacts(config), results, meta, status, trends, forests)
    except Exception as e:  # noqa: BLE001 - a report that cannot be written must not hide the verdicts above it
        st.reports = []
        loading.log(f"could not write the reports in {_artifacts(config)}: {type(e).__name__}: {e}")
    finally:
        if st.folder is not None:
            st.folder.release()


def _device_used(config) -> str:
    """What --device resolved to (auto: cuda when available), for the reports and the history."""
    try:
        return str(loading.pick_device(config.getoption("--device")))
    except ProbeError:
        return config.getoption("--device")


def _history(config) -> Path | None:
    """--history DIR, relative to the project root unless absolute (as --artifacts)."""
    h = config.getoption("--history")
    if not h:
        return None
    return Path(h) if Path(h).is_absolute() else state(config).root / h


def pytest_terminal_summary(terminalreporter, config):
    st = config.stash.get(STATE, None)
    if st is None:
        return
    if not st.collected and not config.getoption("--models") and not st.results:
        return  # (under xdist only the workers collect)
    tr = terminalreporter
    tr.section("interpretability claims")
    tr.write_line(f"models: {', '.join(s.id for s in st.models) or '(none)'}; device {config.getoption('--device')}, "
                  f"dtype {config.getoption('--dtype')}")
    for mid, why in st.left_out:
        tr.write_line(f"left out {mid}: {why}")
    if _half(config) and any(r["verdict"] != V.SKIPPED for r in st.results):
        tr.write_line(f"{config.getoption('--dtype')} run: compared with the float32 snapshots under each claim's "
                      "half-precision tolerance")
    results = st.results
    md = next((f for f in st.reports if f.name == "report.md"), None)
    for line in V.terminal_lines(results, st.status, st.shown(md) if md else None):
        tr.write_line(line)
    figs = list(dict.fromkeys(f for r in results for f in r.get("figures", [])))
    if results:
        art = st.shown(_artifacts(config)) if st.folder is not None and st.folder.own else \
            config.getoption("--artifacts") or st.shown(_artifacts(config))
        tr.write_line(f"figures written: {len(figs)} in {art}/<model>/" if figs else "figures written: none")
    if len(figs) <= 40:
        for f in figs:
            tr.write_line(f"  {f}")
    for f in st.reports:
        tr.write_line(f"report: {st.shown(f)}")
    if st.folder is not None and st.folder.own:
        tr.write_line(st.folder.note(st.shown))
    if st.history_file:
        tr.write_line(f"history: run appended to {st.history_file}")
