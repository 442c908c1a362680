"""A claims run, owned by one :class:`ClaimsSession` per pytest process (the controller, and each xdist worker).

Modelled on syrupy's ``SnapshotSession`` and pytest-benchmark's ``BenchmarkSession``: the session reads its options
once (:class:`Options`) and runs the phases of a run; probes/plugin.py's hooks are a few lines that call it.

    configure     the project (its ini options, registry and snapshot store), checks of the options, the
                  models selected (a default run: every registry model available offline)
    parametrize   each claim over the selected models that run its family and kind (and over layers)
    group         xdist groups: one model per worker, the heaviest first
    load          a model, once per worker; the memory of the worker's previous model released first
    settle        a claim's measurement against its snapshot (or recorded, with --record): a typed drift
    result        the test's outcome and the drift made into a frozen ClaimResult (what crosses xdist)
    finish        the run's exit status from the verdicts, its reports and history
    summary       the terminal's verdict table

pytest internals: none, except pytest's own rootdir / ini search (``_pytest.config.findpaths.determine_setup``) in
:meth:`ClaimsSession.check_rootdir`, for which pytest has no public API; it is used only to explain a mistake, and
skipped when it moves.
"""
from __future__ import annotations

import inspect
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from . import access
from . import compare, drift
from . import history as H
from . import loading
from . import verdicts as V
from .artifacts import RunFolder
from .checks import records_nothing_lines
from .errors import ProbeError, did_you_mean
from .log import log
from .registry import KINDS, ModelSpec, load_registry, resolve
from .results import ClaimResult, Measurement, Verdict, adjust
from .snapshot import SnapshotStore, check_snapshot

INI = {"claims_registry": ("fixtures/models.toml", "the model registry (TOML), relative to the project root"),
       "claims_snapshots": ("snapshots", "the folder of the recorded snapshots, relative to the project root"),
       "claims_artifacts": ("artifacts", "the folder of figures and reports, relative to the project root "
                                         "(--artifacts overrides it)")}
PATH_OPTIONS = ("--models", "--artifacts", "--history", "--corpus")  # options whose value may be a path
USAGE_PREFIX = "interp-claims usage error: "
ARTIFACTS_KEY = "interp_claims_artifacts"  # xdist workerinput: the artifacts folder the controller holds


@dataclass(frozen=True)
class Options:
    """The run's command-line and ini options, read once."""
    models: str | None
    device: str
    device_map: str | None
    dtype: str
    artifacts: str | None
    allow_mismatch: bool
    allow_pickle: bool
    trust_remote_code: bool
    exact: str
    history: str | None
    significance: str
    record: bool
    weight_jitter: float | None  # None: not given
    max_batch_tokens: int | None
    corpus: str | None
    fulltrace: bool
    ini: dict  # claims_registry / claims_snapshots / claims_artifacts as the ini file sets them (None: not set)

    @classmethod
    def read(cls, config) -> "Options":
        o = config.getoption
        return cls(models=o("--models"), device=o("--device"), device_map=o("--device-map"), dtype=o("--dtype"),
                   artifacts=o("--artifacts"), allow_mismatch=o("--allow-mismatch"), allow_pickle=o("--allow-pickle"),
                   trust_remote_code=o("--trust-remote-code"), exact=o("--exact"), history=o("--history"),
                   significance=o("--significance"), record=o("--record"), weight_jitter=o("--weight-jitter"),
                   max_batch_tokens=o("--max-batch-tokens", None),
                   corpus=o("--corpus", None), fulltrace=bool(o("fulltrace", False)),
                   ini={k: config.getini(k) or None for k in INI})

    @property
    def dtype_name(self) -> str:
        """The run's dtype as snapshots name it: float32, bfloat16 or float16."""
        return str(loading.pick_dtype(self.dtype)).replace("torch.", "")

    @property
    def half(self) -> bool:
        """A bfloat16/float16 run (compared with its own snapshots where recorded, else with the float32 ones under
        the half-precision floors measured against them)."""
        return self.dtype_name != "float32"


@dataclass(frozen=True)
class Settled:
    """A measurement settled against its snapshot: the verdict it gives a claim whose criterion held, the drift,
    and the cell's numbers."""
    verdict: Verdict | None = None
    drift: drift.Drift | None = None
    headline: drift.Number | None = None
    largest: drift.Number | None = None
    against: str = ""  # a snapshot of another dtype, or half precision without measured floors: how it was judged


class ClaimsSession:
    """One pytest process's claims run (see the module's docstring for its phases)."""

    def __init__(self, config):
        self.config = config
        self.opt = Options.read(config)
        self.root = Path(config.inipath).parent if config.inipath else Path(config.rootpath)
        self.registry_file = self._registry_file()
        self.store = SnapshotStore(self._ini_path("claims_snapshots"), self.shown)
        self.registry: dict[str, ModelSpec] = {}
        self.models: list[ModelSpec] = []
        self.left_out: list[tuple[str, str]] = []
        self.families: set[str] = set()   # every family of the registry's and the selected models
        self.any_family = False           # a selected model runs every family (a model given by path or hub id)
        self.results: list[ClaimResult] = []
        self.other_failures = 0
        self.usage_errors = 0             # claims-project mistakes found while collecting (exit 4)
        self.collected = False
        self.status: int | None = None
        self.reports: list[Path] = []
        self.history_file: Path | None = None
        self.folder: RunFolder | None = None  # controller: the artifacts folder this run holds (or its own)
        self.started = time.time()
        self.loaded: dict[str, loading.LoadedModel] = {}
        self.load_errors: dict[str, ProbeError] = {}

    # ------------------------------------------------------------------------------------------------- paths
    def shown(self, p) -> str:
        """A path as the user reads it: relative to the project root where it lies inside it."""
        p = Path(p)
        return os.path.relpath(p, self.root) if p.is_absolute() and p.is_relative_to(self.root) else str(p)

    def _ini_path(self, name: str) -> Path:
        p = Path(self.opt.ini[name] or INI[name][0]).expanduser()
        return p if p.is_absolute() else self.root / p

    def _registry_file(self) -> Path | None:
        """The registry named in the ini file must exist; the default one (fixtures/models.toml) may be absent,
        and the plugin is then idle unless --models names models."""
        reg = self._ini_path("claims_registry")
        if reg.is_file():
            return reg
        if self.opt.ini["claims_registry"] is not None:
            raise pytest.UsageError(f"claims_registry = {self.opt.ini['claims_registry']} (in {self.config.inipath}): "
                                    f"no such file ({reg}); create it or fix the path (relative to {self.root})")
        return None

    @property
    def registry_name(self) -> str:
        return self.shown(self.registry_file) if self.registry_file else "the registry (claims_registry)"

    @property
    def active(self) -> bool:
        """Whether this is a claims project (a registry, or --models): else the plugin adds options and fixtures
        only, selects nothing and loads nothing."""
        return self.registry_file is not None or self.opt.models is not None

    @property
    def is_worker(self) -> bool:
        return hasattr(self.config, "workerinput")

    def artifacts(self) -> Path:
        """Where this run writes figures and reports: the folder given, or this run's own folder under it when
        another run holds it (probes/artifacts.py; an xdist worker is told by its controller)."""
        given = getattr(self.config, "workerinput", {}).get(ARTIFACTS_KEY)
        if given:
            return Path(given)
        if self.folder is not None:
            return self.folder.path
        return self.artifacts_given()

    def artifacts_given(self) -> Path:
        """--artifacts (else the ini option claims_artifacts), relative to the project root unless absolute."""
        if self.opt.artifacts is None:
            return self._ini_path("claims_artifacts")
        art = Path(self.opt.artifacts).expanduser()
        return art if art.is_absolute() else self.root / art

    def history_dir(self) -> Path | None:
        """--history DIR, relative to the project root unless absolute (as --artifacts)."""
        h = self.opt.history
        if not h:
            return None
        return Path(h) if Path(h).is_absolute() else self.root / h

    def spec(self, model_id: str) -> ModelSpec:
        return next(s for s in self.models if s.id == model_id)

    def param_id(self, spec: ModelSpec) -> str:
        dt = loading.pick_dtype(self.opt.dtype)
        return spec.id if str(dt) == "torch.float32" else f"{spec.id}-{str(dt).replace('torch.', '')}"

    # ----------------------------------------------------------------------------------------------- configure
    def configure(self) -> None:
        """Check the options and select the models (raises pytest.UsageError with the fix)."""
        self.check_rootdir()
        if not self.active:
            return
        if getattr(self.config.option, "update_snapshots", False):
            raise pytest.UsageError(
                "--snapshot-update is disabled in this suite: syrupy deletes the snapshots of claims that failed, "
                "errored, were not selected or were interrupted. Use --record: it writes only the claims that pass in "
                "this run.")
        self._threads_per_worker()
        if self.opt.max_batch_tokens is not None and self.opt.max_batch_tokens < 1:
            raise pytest.UsageError(f"--max-batch-tokens {self.opt.max_batch_tokens}: give a positive number of "
                                    "tokens (e.g. 2048), or leave it out to size batches from the device's memory")
        jitter = self.opt.weight_jitter
        if jitter is not None and not 0 < jitter < float("inf"):
            raise pytest.UsageError(f"--weight-jitter {jitter:g}: give a positive size (e.g. 1e-6) or leave it out; it "
                                    "is for measuring noise floors (scripts/calibrate.py) and perturbs every weight")
        if self.opt.corpus and not Path(self.opt.corpus).is_file():
            raise pytest.UsageError(f"--corpus {self.opt.corpus}: no such file (give a text file with one context "
                                    "per line)")
        try:
            loading.pick_dtype(self.opt.dtype)
            loading.check_device_name(self.opt.device)
            loading.pick_device(self.opt.device)  # --device cuda needs CUDA: one usage error, at start
        except ProbeError as e:
            raise pytest.UsageError(str(e)) from None
        self.models, self.left_out = self._select()
        self.any_family = any(spec.families is None for spec in self.models)
        self._check_record()
        self._check_artifacts()  # after the registry and the models: a usage error leaves no folder behind
        self._check_history()
        if self.opt.half and loading.pick_device(self.opt.device).type == "cpu" and not self.is_worker \
                and not loading.native_half(self.opt.dtype_name):
            self.config.issue_config_time_warning(pytest.PytestConfigWarning(
                f"--dtype {self.opt.dtype} on a CPU without {self.opt.dtype_name} instructions (AVX512-BF16 / "
                "AMX, AVX512-FP16): half precision is emulated and runs several times slower than float32 (measured "
                "about 8x); use a GPU or a CPU that has them for half-precision runs"), stacklevel=2)
        if not self.is_worker:  # controller (or a run without xdist): convert GGUF models once, with progress on
            for spec in self.models:  # the terminal, before workers start and wait for them
                if access.is_gguf(spec):
                    try:
                        access.folder(spec)
                    except ProbeError as e:
                        raise pytest.UsageError(str(e)) from None
            if not self.opt.allow_mismatch:
                self._check_candidates()

    def check_rootdir(self) -> None:
        """pytest chooses its rootdir and ini file before any plugin's options are known: in ``--artifacts DIR`` (a
        space, not ``=``) it takes an existing DIR for a test path and looks for the ini file from there. When that
        finds another ini file (or none) than the command's own test paths would, the project's ini file (its
        registry, snapshots) is not read: a usage error naming the ``=`` spelling, which pytest parses as one word."""
        config = self.config
        args = [str(a) for a in config.invocation_params.args]
        taken = [(opt, val) for opt, val in zip(args, args[1:]) if opt in PATH_OPTIONS and Path(val).exists()]
        if not taken:
            return
        try:
            from _pytest.config.findpaths import determine_setup  # no public API: see the module's docstring
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

    @staticmethod
    def _threads_per_worker() -> None:
        """Under pytest-xdist, split the cores between the workers: every worker's torch defaulting to all cores
        oversubscribes the CPU (measured here: 2 workers x 2 threads on 2 cores ran the claims several times
        slower). The share goes into OMP_NUM_THREADS as well, for the processes a worker starts (a test running
        pytest or a script): a 2-thread child beside the other worker's busy thread took 227 s where 1 thread took
        135 s. numpy's BLAS (OpenBLAS), loaded before this runs, keeps a thread per core unless told: a worker's
        bootstrap and t-test matrix products on 2 threads beside the other worker's torch thread took that thread
        from 144 to 101 GFLOP/s, and ran slower themselves (9.2 against 14.3 calls a second on one thread)."""
        n = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
        if n and not os.environ.get("OMP_NUM_THREADS"):
            import torch
            from threadpoolctl import threadpool_limits
            share = max(1, (os.cpu_count() or 1) // int(n))
            torch.set_num_threads(share)
            threadpool_limits(share)  # every BLAS and OpenMP pool loaded so far, for the rest of the process
            os.environ["OMP_NUM_THREADS"] = str(share)

    def _check_artifacts(self) -> None:
        art = self.artifacts()
        try:
            art.mkdir(parents=True, exist_ok=True)
            probe = art / f".write-test-{os.getpid()}"  # one per process: xdist workers check at the same time
            probe.touch()
            probe.unlink()
        except OSError as e:
            raise pytest.UsageError(f"--artifacts {art}: cannot write figures there ({e.strerror}); give a writable "
                                    "folder") from None
        if not self.is_worker:  # two runs with one artifacts folder: the second writes in its own
            self.folder = RunFolder.take(art)
            if self.folder.own:
                log(self.folder.note(self.shown))

    def _check_history(self) -> None:
        hist = self.history_dir()
        if hist is None or self.is_worker:
            return
        try:
            hist.mkdir(parents=True, exist_ok=True)
            if (hist / H.FILE).exists() and not os.access(hist / H.FILE, os.W_OK) or not os.access(hist, os.W_OK):
                raise PermissionError(13, "not writable")
        except OSError as e:
            raise pytest.UsageError(f"--history {hist}: cannot append there ({e.strerror}); give a writable folder "
                                    "(its history.jsonl is created, or appended to)") from None

    def _check_record(self) -> None:
        if not self.opt.record:
            return
        cands = [s.id for s in self.models if s.baseline]
        if cands:
            raise pytest.UsageError(
                f"--record with candidate models ({', '.join(cands)}): a candidate is compared with its registry "
                "entry's snapshots, never recorded over them. To adopt the new version, point the registry entry "
                f"({self.registry_name}) at it, then run --record for that id.")
        if self.opt.weight_jitter:
            raise pytest.UsageError("--record with --weight-jitter: jittered weights are for measuring noise floors "
                                    "(scripts/calibrate.py), never recorded; leave one of them out")

    def _select(self) -> tuple[list[ModelSpec], list[tuple[str, str]]]:
        """The models of this run: --models' entries, or every registry model available offline (a hub model
        outside the local hub cache is left out and named; any other that cannot be had is a usage error)."""
        try:
            registry = load_registry(self.registry_file, self.root) if self.registry_file else {}
        except ProbeError as e:
            raise pytest.UsageError(str(e)) from None
        self.registry = registry
        self.families = {f for spec in registry.values() for f in spec.families or []}
        opt = self.opt.models
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
            self.families |= {f for spec in specs for f in spec.families or []}
            bad = [(spec, why) for spec in specs if (why := self._unsupported(spec))]
            if bad:
                raise pytest.UsageError("; ".join(f"--models {s.id} with --dtype {self.opt.dtype}: {why}"
                                                  for s, why in bad))
            return specs, []
        chosen, left, broken = [], [], []
        for spec in registry.values():
            why = self._unsupported(spec)
            if why:  # the registry says it cannot run in this dtype (measured): left out, and named
                left.append((spec.id, f"not in {self.opt.dtype_name}: {why}"))
                continue
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
                "\n".join(broken) + f"\n(a default run checks every model of {self.registry_name}: fix the entry "
                f"above, or run the others with --models {others})")
        return chosen, left

    def _unsupported(self, spec: ModelSpec) -> str:
        """Why ``spec`` (or the registry model a candidate is a version of) cannot run in this run's dtype, as the
        registry records it (``dtypes_unsupported``); '' when it can."""
        base = self.registry.get(spec.baseline or "") if spec.baseline else None
        return (spec.dtypes_unsupported or (base.dtypes_unsupported if base else {})).get(self.opt.dtype_name, "")

    def _check_candidates(self) -> None:
        """A candidate (``<registry id>=<new version>``) is compared with its registry model's snapshots: refused
        when its architecture, depth, heads, width or tokenizer differ, since those numbers would be another
        model's."""
        for spec in self.models:
            base = self.registry.get(spec.baseline or "")
            if base is None:
                continue
            diff = access.mismatch(spec, base)
            if diff:
                where = spec.path or spec.hub_id
                raise pytest.UsageError(
                    f"--models {spec.baseline}={where}: not a version of {spec.baseline} ({'; '.join(diff)}), so its "
                    f"numbers cannot be compared with {spec.baseline}'s snapshots. Measure it as a model of its own "
                    f"(--models {where}), or pass --allow-mismatch to compare it anyway")

    # --------------------------------------------------------------------------------------------- parametrize
    def parametrize(self, metafunc) -> None:
        """Parametrise a claim over the selected models that run its family and kind (and over layers for claims
        that take a ``layer`` argument, as the seeds loop over layers)."""
        mark = metafunc.definition.get_closest_marker("claim")
        node = metafunc.definition.nodeid
        example = '@pytest.mark.claim(id="myfamily.finding", family="myfamily", source=..., null=..., criterion=...)'
        if mark is None:
            _usage(f"{node} uses the model fixtures (lm, model_id) but has no claim marker: it would run on every "
                   f"model with no verdict, snapshot or report. Mark it {example}, or do not use the lm fixture")
        lacking = [k for k in ("id", "family") if not mark.kwargs.get(k)]
        if lacking:
            _usage(f"{node}: @pytest.mark.claim needs {' and '.join(f'{k}=' for k in lacking)} (e.g. {example}): the "
                   "id names the claim in verdicts and reports, the family picks its models")
        if not self.active:
            _usage(f"{node}: no claims registry: {self.shown(self._ini_path('claims_registry'))} does not exist. Set "
                   "the ini option claims_registry to your registry file (e.g. claims_registry = models.toml in "
                   "pytest.ini), or pass --models")
        family = mark.kwargs["family"]
        if family not in self.families and not self.any_family:
            _usage(f"{node}: family {family!r} (in its claim marker) is not a family of any model in "
                   f"{self.registry_name if self.registry_file else '--models'} (families there: "
                   f"{', '.join(sorted(self.families)) or 'none'}); fix the marker, or add {family!r} to the families "
                   "of the models it is about")
        kinds = mark.kwargs.get("kinds")
        kinds = (kinds,) if isinstance(kinds, str) else kinds
        unknown = [k for k in kinds or () if k not in KINDS]
        if unknown:
            _usage(f"{node}: kinds={list(kinds)!r} (in its claim marker): {unknown[0]!r} is not a kind of model this "
                   f"package knows ({', '.join(KINDS)}){did_you_mean(unknown[0], KINDS)}; fix the marker (leave "
                   "kinds out to run on every kind)")
        per_layer = "layer" in metafunc.fixturenames
        params = []
        for spec in self.models:
            if not spec.runs(family) or (kinds and spec.kind not in kinds):
                continue
            pid = self.param_id(spec)
            marks = _known_failure(spec, family, mark.kwargs.get("id"))
            if per_layer:
                n = access.n_layers(spec)
                if not n:
                    raise pytest.UsageError(f"cannot read the number of layers of {spec.id} (no config.json found)")
                params += [pytest.param(spec.id, layer, id=f"{pid}-L{layer}", marks=marks) for layer in range(n)]
            else:
                params.append(pytest.param(spec.id, id=pid, marks=marks))
        if not params:
            skip = pytest.mark.skip(reason=f"no selected model supports claim family {family!r} (kinds {kinds}); "
                                           "see --models")
            params = [pytest.param(None, None, marks=skip) if per_layer else pytest.param(None, marks=skip)]
        metafunc.parametrize("model_id,layer" if per_layer else "model_id", params)

    def group(self, items) -> None:
        """Group tests by model so that under -n auto (with --dist loadgroup) each model loads on one worker.

        Each claim gets an ``xdist_group`` mark named after its model; xdist's worker hook (which runs after this
        one) turns it into the scheduling group by suffixing the nodeid. pytest 9.2 derives nodeids from a new
        attribute, which silently breaks that in pytest-xdist 3.8: hence pytest<9.1 in pyproject.toml
        (tests/test_parallel.py checks that each model loads once).

        Scheduling hints from the registry: ``xdist_split = [families]`` gives those claim families of a slow
        model a group of their own (the model then loads on a second worker, and its claims run on two cores at
        once), and ``xdist_weight`` (default 1) puts the heavier models' tests first, so that the longest groups
        start first (longest-first list scheduling). xdist hands groups out in the order they are first collected
        only with ``--no-loadscope-reorder`` (in pyproject.toml's addopts): by default it re-sorts them by their
        number of tests, which queued Gemma-3's few but slow neuron claims behind every organism. Tests that are not
        claims (tests/) count as weight 1: many short items that fill in behind the real models, before the
        organisms. A group's tests run together, also without xdist: a process holds one model at a time (the
        session releases the previous one when the next loads)."""
        specs = {s.id: s for s in self.models}
        weight, group = {}, {}
        for item in items:
            cs = getattr(item, "callspec", None)
            mid = cs.params.get("model_id") if cs else None
            if not mid:
                continue
            self.collected = True
            spec = specs.get(mid)
            mark = item.get_closest_marker("claim")
            family = mark.kwargs.get("family") if mark else None
            split = spec is not None and family in spec.param("xdist_split", [])
            name = f"{mid}:{family}" if split else mid
            item.add_marker(pytest.mark.xdist_group(name))
            weight[item.nodeid] = spec.param("xdist_weight", 1) if spec is not None else 1
            group[item.nodeid] = name
        # heaviest first; within a weight, each group's tests together, groups in the order they first appear (tests/
        # is collected before claims/): a process without xdist then runs one model at a time too, and loads it once
        first: dict[str, int] = {}
        for i, item in enumerate(items):
            first.setdefault(group.get(item.nodeid, item.nodeid), i)
        items.sort(key=lambda it: (-weight.get(it.nodeid, 1), first[group.get(it.nodeid, it.nodeid)]))

    # -------------------------------------------------------------------------------------------------- models
    def load(self, model_id: str) -> loading.LoadedModel:
        """The loaded model; one load per model per worker. Loading another model releases the previous one and
        what its claims kept (the model cache, random-init copies): a worker holds one model's memory at a time."""
        if model_id in self.load_errors:  # fail fast: do not retry a model that could not load (hub unreachable)
            raise self.load_errors[model_id]
        if model_id not in self.loaded:
            self.release(keep=model_id)
            spec = self.spec(model_id)
            o = self.opt
            log(f"loading {spec.id} ({spec.source}: {spec.hub_id or spec.path or spec.package}) "
                        f"on {o.device} / {o.dtype}")
            try:
                self.loaded[model_id] = loading.load(spec, o.device, o.dtype, allow_pickle=o.allow_pickle,
                                                     trust_remote_code=o.trust_remote_code, device_map=o.device_map,
                                                     jitter=o.weight_jitter, max_batch_tokens=o.max_batch_tokens)
            except ProbeError as e:
                self.load_errors[model_id] = e
                raise
            if os.environ.get("CLAIMS_LOAD_LOG"):  # tests/ check that each model loads once per worker
                with open(os.environ["CLAIMS_LOAD_LOG"], "a") as f:
                    f.write(f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')} {model_id}\n")
        return self.loaded[model_id]

    def release(self, keep: str | None = None) -> None:
        """Drop every loaded model but ``keep``, with its cache (``LoadedModel.cache``) and random-init copies."""
        gone = [m for m in self.loaded if m != keep]
        for m in gone:
            del self.loaded[m]
        if gone:
            loading.forget_random_copies(keep)
            loading.return_memory()

    # -------------------------------------------------------------------------------------------------- settle
    def snapshot_path(self, item) -> Path:
        """The snapshot this claim x model is compared with: the registry model's own (a candidate ``id@label``
        uses ``id``'s). A bf16/fp16 run uses its own (``[<model>-bfloat16]``) when one is recorded, and records
        there; else it is compared with the float32 one."""
        cs = item.callspec.params
        spec = self.spec(cs["model_id"])
        layer = "" if cs.get("layer") is None else f"-L{cs['layer']}"
        module, model = Path(item.fspath).stem, spec.baseline or spec.id
        if self.opt.half:
            own = self.store.path(module, f"{item.originalname}[{model}-{self.opt.dtype_name}{layer}]")
            if self.opt.record or own.exists():
                return own
        return self.store.path(module, f"{item.originalname}[{model}{layer}]")

    def settle(self, item, m: Measurement, record_ok: bool = True) -> Settled:
        """Compare the claim's numbers with its snapshot (its verdict: holds, holds within noise, holds but
        changed, or holds without snapshot), or, with --record, write them (the test body, criterion and figure
        included, has passed). A drift is not a test failure: the claim holds; the verdict, the exit status (6, for
        a significant change) and the reports say that its numbers moved. ``record_ok=False`` (a broken claim):
        compare only."""
        path = self.snapshot_path(item)
        shown = self.shown(path)
        new = m.recorded()
        if self.opt.record and record_ok:
            changed = self.store.record(path, new, m.rel, m.abs)
            log(f"recorded {shown}" if changed else f"{shown} unchanged (within tolerance)")
            return Settled(Verdict.HOLDS, None, *compare.effect_numbers(new, m.roles))
        old = self.store.read(path)
        if old is None:
            return Settled(Verdict.UNRECORDED, None, *compare.effect_numbers(new, m.roles))
        check_snapshot(old, new, shown)
        rel, abs_, against = self.tolerance(old, m)
        drift = compare.diff(old, new, rel, abs_, m.roles, self.opt.significance, dtype=self.opt.dtype_name)
        verdict = Verdict.HOLDS if not drift.moved else Verdict.MOVED if drift.significant else Verdict.NOISE
        return Settled(verdict, drift, *compare.effect_numbers(new, m.roles, old, drift), against=against)

    def tolerance(self, old: dict, m: Measurement) -> tuple[float, float, str]:
        """The declared tolerance that judges this run against ``old`` (floors come with it: drift.noise_for), and
        how it was judged when the run's dtype is not the snapshot's ('' when it is, with measured floors).

        With floors measured for the run's dtype (the snapshot's own, or the half-precision floors that
        scripts/calibrate.py --dtype measured against float32 numbers), the claim's float32 tolerance and those
        floors judge it. Without them a half-precision run falls back to the claim's declared half-precision
        tolerance (``half=``, default HALF_TOL), and says so."""
        dtype, rec = self.opt.dtype_name, compare.recorded_dtype(old)
        measured = compare.noise_for(old, dtype)[1]
        if not self.opt.half or measured:
            return m.rel, m.abs, (f"{rec} snapshot, {dtype} floors" if rec != dtype else "")
        rel, abs_ = max(m.rel, m.half[0]), max(m.abs, m.half[1])
        return rel, abs_, (f"{rec} snapshot, no {dtype} floors measured: declared tolerance {rel:g} rel / "
                           f"{abs_:g} abs")

    # -------------------------------------------------------------------------------------------------- result
    def result(self, item, rep, call, settled: Settled | None, measurement: Measurement | None,
               figures: list[Path], setup_s: float) -> ClaimResult:
        """The frozen result of one claim x model report (setup that failed, or call)."""
        exc = call.excinfo
        cs = item.callspec.params
        mark = item.get_closest_marker("claim")
        strict_xpass = rep.when == "call" and rep.failed and exc is None
        verdict = V.classify(rep.when, rep.outcome, exc, getattr(rep, "wasxfail", None), strict_xpass,
                             settled.verdict if rep.passed and settled is not None else None)
        spec = self.spec(cs["model_id"])
        message = ""
        if verdict in (Verdict.BROKEN, Verdict.PRECONDITION, Verdict.ERROR):
            message = (exc.exconly() if exc is not None else str(rep.longrepr)[-600:]).split("\n")[0]
        elif verdict == Verdict.KNOWN:
            message = rep.wasxfail
        elif verdict == Verdict.NEWLY:
            message = (f"holds now; remove it from the registry's known_failures "
                       f"({os.path.basename(spec.origin) if spec.origin else 'the registry'})")
        s = settled or Settled()
        numbers = measurement.numbers if measurement is not None and rep.when == "call" else None
        if numbers is not None and "_replicates" in numbers:  # kept in the snapshot, not in every report
            numbers = {k: v for k, v in numbers.items() if k != "_replicates"}
        return ClaimResult(
            claim=mark.kwargs.get("id"), model=self.param_id(spec), verdict=verdict, baseline=spec.baseline,
            layer=cs.get("layer"), message=message[:2000], drift=s.drift if rep.when == "call" else None,
            headline=s.headline, largest=s.largest, numbers=numbers,
            roles=measurement.roles if numbers is not None else None, snapshot=self.shown(self.snapshot_path(item)),
            against=s.against if rep.when == "call" else "",
            figures=tuple(self.shown(p) for p in figures), source=mark.kwargs.get("source", ""),
            null=mark.kwargs.get("null", ""), criterion=mark.kwargs.get("criterion", ""),
            doc=(item.obj.__doc__ or "").strip().split("\n\n")[0], nodeid=item.nodeid,
            duration=round(rep.duration + (setup_s if rep.when == "call" else 0.0), 2))

    def collect(self, report) -> None:
        """Controller: a test's report (from this process or a worker): its claim result, or a failure that is
        not a claim's."""
        props = dict((k, v) for k, v in report.user_properties if k == "claim")
        if "claim" in props:
            self.results.append(ClaimResult.from_json(props["claim"]))
        elif report.failed:
            self.other_failures += 1

    # -------------------------------------------------------------------------------------------------- finish
    def finish(self, exitstatus: int) -> int:
        """Controller only: the run's exit status from the verdicts (probes/verdicts.py) and its reports."""
        results = V.ordered(adjust(self.results), [self.param_id(s) for s in self.models])
        self.results = results  # the effects' paired tests adjusted together (Benjamini-Hochberg over the run)
        status = V.exit_status(int(exitstatus), results, self.other_failures)
        if self.usage_errors:
            status = int(pytest.ExitCode.USAGE_ERROR)
        self.status = status
        try:
            if results:
                self._write_reports(results, status)
        finally:
            if self.folder is not None:
                self.folder.release()
        return status

    def _write_reports(self, results: list[ClaimResult], status: int) -> None:
        config, o = self.config, self.opt
        meta = {"models": [self.param_id(s) for s in self.models], "device": o.device, "dtype": o.dtype,
                "device_used": self._device_used(), "left_out": self.left_out,
                "precision": V.precision_lines(results, o.dtype_name) if o.half else [],
                "when": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": "pytest " + " ".join(config.invocation_params.args)}
        meta["lock_diff"] = H.lock_diff(self.root / "constraints" / "ci.txt")  # newer releases than CI's lock
        meta.update(machine=H.machine(), wall_s=round(time.time() - self.started, 1))
        record = H.run_record(results, meta, status, self.models)
        meta.update(provenance=record["provenance"], packages=record["packages"])  # in report.json too (merges)
        runs, hist = [H.as_run(record)], self.history_dir()
        try:
            if hist is not None:
                self.history_file = H.append(hist, record)
                runs, bad = H.load(hist)
                for b in bad:
                    log(b)
                meta["trend_note"] = f"the {len(runs)} run(s) in {hist / H.FILE}; x = run date and model version"
            else:
                meta["trend_note"] = "the models of this run in the order given"
            trends = H.trends(runs)
        except Exception as e:  # noqa: BLE001 - history and plots must not hide the verdicts
            trends = {}
            log(f"could not write the history or its plots: {type(e).__name__}: {e}")
        try:
            forests = H.forests(results, runs if hist is not None else None)
        except Exception as e:  # noqa: BLE001 - a plot must not hide the verdicts
            forests = {}
            log(f"could not draw the forest plots: {type(e).__name__}: {e}")
        try:
            self.reports = V.write_reports(self.artifacts(), results, meta, status, trends, forests)
        except Exception as e:  # noqa: BLE001 - a report that cannot be written must not hide the verdicts above it
            self.reports = []
            log(f"could not write the reports in {self.artifacts()}: {type(e).__name__}: {e}")

    def _device_used(self) -> str:
        """What --device resolved to (auto: cuda when available), for the reports and the history."""
        try:
            return str(loading.pick_device(self.opt.device))
        except ProbeError:
            return self.opt.device

    # ------------------------------------------------------------------------------------------------- summary
    def summary(self, tr) -> None:
        """The terminal's section: models, the verdict table, what moved, figures and reports."""
        if not self.collected and not self.opt.models and not self.results:
            return  # (under xdist only the workers collect)
        o = self.opt
        tr.section("interpretability claims")
        tr.write_line(f"models: {', '.join(s.id for s in self.models) or '(none)'}; device {o.device}, dtype "
                      f"{o.dtype}")
        for mid, why in self.left_out:
            tr.write_line(f"left out {mid}: {why}")
        for line in records_nothing_lines(self.results):  # a claim that held without numbers: never silent
            tr.write_line(line)
        if o.half:
            for line in V.precision_lines(self.results, o.dtype_name):
                tr.write_line(line)
        md = next((f for f in self.reports if f.name == "report.md"), None)
        for line in V.terminal_lines(self.results, self.status, self.shown(md) if md else None):
            tr.write_line(line)
        figs = list(dict.fromkeys(f for r in self.results for f in r.figures))
        own = self.folder is not None and self.folder.own
        if self.results:
            art = self.shown(self.artifacts()) if own else o.artifacts or self.shown(self.artifacts())
            tr.write_line(f"figures written: {len(figs)} in {art}/<model>/" if figs else "figures written: none")
        if len(figs) <= 40:
            for f in figs:
                tr.write_line(f"  {f}")
        for f in self.reports:
            tr.write_line(f"report: {self.shown(f)}")
        if own:
            tr.write_line(self.folder.note(self.shown))
        if self.history_file:
            tr.write_line(f"history: run appended to {self.history_file}")


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


def _usage(message: str):
    """A mistake in a claims project found while collecting (a claim without marker, id or a known family; no
    registry): one line on the terminal (pytest shows a CollectError's message without a traceback), and the run
    exits 4 (usage error; probes/plugin.py counts these)."""
    raise pytest.Collector.CollectError(USAGE_PREFIX + message)
