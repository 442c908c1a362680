"""A claims run, owned by one :class:`ClaimsSession` per pytest process (the controller, and each xdist worker).

Modelled on syrupy's ``SnapshotSession`` and pytest-benchmark's ``BenchmarkSession``: probes/plugin.py's hooks
are a few lines that call the session, and the session only sequences the run's stages, each a module of its own:

    selection     the options read once and checked, the models selected (probes/selection.py)
    schedule      each claim parametrised over its models (and layers), xdist groups (probes/schedule.py)
    load          a model, once per worker; the memory of the worker's previous model released first (here)
    settle        a claim's measurement against its snapshot, and its frozen ClaimResult (probes/settle.py)
    publish       the run's exit status (probes/verdicts.py), its reports and history (probes/publish.py)
    summary       the terminal's section (probes/render/text.py)
"""
from __future__ import annotations

import os
import time
from dataclasses import replace
from pathlib import Path

import pytest

from . import access, devices, history, loading, schedule, selection
from .artifacts import RunFolder
from .checks import RECORDS_NOTHING
from .errors import ProbeError
from .log import log
from .publish import Published, publish
from .render import cells, text
from .results import ClaimResult, Measurement, RunInfo, Verdict, adjust
from .selection import INI, Options, Selection
from .settle import Settled, result, settle, snapshot_path
from .snapshot import SnapshotStore
from .verdicts import exit_status, ordered

ARTIFACTS_KEY = "interp_claims_artifacts"  # xdist workerinput: the artifacts folder the controller holds


class ClaimsSession:
    """One pytest process's claims run (see the module's docstring for its stages)."""

    def __init__(self, config: pytest.Config):
        self.config = config
        self.opt = Options.read(config)
        self.root = Path(config.inipath).parent if config.inipath else Path(config.rootpath)
        self.registry_file = self._registry_file()
        self.store = SnapshotStore(self._ini_path("claims_snapshots"), self.shown)
        self.sel = Selection()
        self.results: list[ClaimResult] = []
        self.other_failures = 0
        self.usage_errors = 0             # claims-project mistakes found while collecting (exit 4)
        self.collected = False
        self.status: int | None = None
        self.published = Published()
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
        return self.folder.path if self.folder is not None else self.artifacts_given()

    def artifacts_given(self) -> Path:
        """--artifacts (else the ini option claims_artifacts), relative to the project root unless absolute."""
        if self.opt.artifacts is None:
            return self._ini_path("claims_artifacts")
        art = Path(self.opt.artifacts).expanduser()
        return art if art.is_absolute() else self.root / art

    def history_dir(self) -> Path | None:
        """--history DIR, relative to the project root unless absolute (as --artifacts)."""
        return None if not self.opt.history else self.root / Path(self.opt.history)  # absolute: as given

    def param_id(self, spec) -> str:
        return schedule.param_id(spec, self.opt.dtype)

    # ----------------------------------------------------------------------------------------------- selection
    def configure(self) -> None:
        """Check the options and select the models (raises pytest.UsageError with the fix)."""
        selection.check_rootdir(self.config)
        if not self.active:
            return
        if getattr(self.config.option, "update_snapshots", False):
            raise pytest.UsageError(
                "--snapshot-update is disabled in this suite: syrupy deletes the snapshots of claims that failed, "
                "errored, were not selected or were interrupted. Use --record: it writes only the claims that pass in "
                "this run.")
        schedule.threads_per_worker()
        selection.check_options(self.opt)
        self.sel = selection.select(self.opt, self.registry_file, self.root, self.registry_name)
        selection.check_record(self.opt, self.sel, self.registry_name)
        self._check_artifacts()  # after the registry and the models: a usage error leaves no folder behind
        hist = self.history_dir()
        if hist is not None and not self.is_worker:
            selection.check_writable(hist, "--history", "cannot append there", "give a writable folder "
                                     "(its history.jsonl is created, or appended to)", history.FILE)
        if self.is_worker:
            return
        if self.opt.half and devices.pick_device(self.opt.device).type == "cpu" \
                and not devices.native_half(self.opt.dtype_name):
            self.config.issue_config_time_warning(pytest.PytestConfigWarning(
                f"--dtype {self.opt.dtype} on a CPU without {self.opt.dtype_name} instructions (AVX512-BF16 / "
                "AMX, AVX512-FP16): half precision is emulated and runs several times slower than float32 (measured "
                "about 8x); use a GPU or a CPU that has them for half-precision runs"), stacklevel=2)
        for spec in self.sel.models:  # controller: GGUF models converted once, with progress on the terminal,
            if access.is_gguf(spec):  # before workers start and wait for them
                try:
                    access.folder(spec)
                except ProbeError as e:
                    raise pytest.UsageError(str(e)) from None
        if not self.opt.allow_mismatch:
            selection.check_candidates(self.sel)

    def _check_artifacts(self) -> None:
        art = self.artifacts()
        selection.check_writable(art, "--artifacts", "cannot write figures there", "give a writable folder")
        if not self.is_worker:  # two runs with one artifacts folder: the second writes in its own
            self.folder = RunFolder.take(art)
            if self.folder.own:
                log(self.folder.note(self.shown))

    # ------------------------------------------------------------------------------------------------ schedule
    def parametrize(self, metafunc) -> None:
        if not self.active:
            schedule.usage(f"{metafunc.definition.nodeid}: no claims registry: "
                           f"{self.shown(self._ini_path('claims_registry'))} does not exist. Set the ini option "
                           "claims_registry to your registry file (e.g. claims_registry = models.toml in pytest.ini), "
                           "or pass --models")
        schedule.parametrize(metafunc, self.sel, self.opt.dtype, self.registry_name if self.registry_file else None)

    def group(self, items) -> None:
        self.collected = schedule.group(items, self.sel.models) or self.collected

    # -------------------------------------------------------------------------------------------------- models
    def load(self, model_id: str) -> loading.LoadedModel:
        """The loaded model; one load per model per worker. Loading another model releases the previous one and
        what its claims kept (the model cache, random-init copies): a worker holds one model's memory at a time."""
        if model_id in self.load_errors:  # fail fast: do not retry a model that could not load (hub unreachable)
            raise self.load_errors[model_id]
        if model_id not in self.loaded:
            self.release(keep=model_id)
            spec, o = self.sel.spec(model_id), self.opt
            log(f"loading {spec.id} ({spec.source}: {spec.hub_id or spec.path or spec.package}) on {o.device} / "
                f"{o.dtype}")
            try:
                self.loaded[model_id] = loading.load(spec, o.device, o.dtype, allow_pickle=o.allow_pickle,
                                                     trust_remote_code=o.trust_remote_code, device_map=o.device_map,
                                                     jitter=o.weight_jitter or 0.0, max_batch_tokens=o.max_batch_tokens)
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
        params = item.callspec.params
        spec = self.sel.spec(params["model_id"])
        return snapshot_path(self.store, self.opt, Path(item.fspath).stem, item.originalname,
                             spec.baseline or spec.id, params.get("layer"))

    def settle(self, item, m: Measurement, record_ok: bool = True) -> Settled:
        path = self.snapshot_path(item)
        return settle(self.store, self.opt, path, self.shown(path), m, record_ok)

    def result(self, item, rep, call, settled: Settled | None, measurement: Measurement | None,
               figures: list[Path], setup_s: float) -> ClaimResult:
        """The frozen result of one claim x model report; a claim that held without numbers says so (never
        silent: probes/checks.py), unless its marker says ``records=False``."""
        spec = self.sel.spec(item.callspec.params["model_id"])
        r = result(item, rep, call, settled, measurement, spec=spec, model=self.param_id(spec),
                   snapshot=self.shown(self.snapshot_path(item)), figures=tuple(self.shown(p) for p in figures),
                   setup_s=setup_s)
        if r.verdict == Verdict.HOLDS and r.numbers is None and \
                item.get_closest_marker("claim").kwargs.get("records", True) is not False:
            r = replace(r, message=RECORDS_NOTHING)
        return r

    def collect(self, report) -> None:
        """Controller: a test's report (from this process or a worker): its claim result, or a failure that is
        not a claim's."""
        props = dict((k, v) for k, v in report.user_properties if k == "claim")
        if "claim" in props:
            self.results.append(ClaimResult.from_json(props["claim"]))
        elif report.failed:
            self.other_failures += 1

    # ------------------------------------------------------------------------------------------------- publish
    def finish(self, exitstatus: int) -> int:
        """Controller only: the run's exit status from the verdicts (probes/verdicts.py) and its reports."""
        models = [self.param_id(s) for s in self.sel.models]
        self.results = ordered(adjust(self.results), models)  # effects' paired tests adjusted over the run (BH)
        status = exit_status(int(exitstatus), self.results, self.other_failures)
        if self.usage_errors:
            status = int(pytest.ExitCode.USAGE_ERROR)
        self.status = status
        try:
            if self.results:
                self.published = publish(self.artifacts(), self.results, self.info(models), status,
                                         self.history_dir(), self.sel.models)
        finally:
            if self.folder is not None:
                self.folder.release()
        return status

    def info(self, models: list[str]) -> RunInfo:
        """What the reports say about this run."""
        o = self.opt
        try:
            device_used = str(devices.pick_device(o.device))
        except ProbeError:
            device_used = o.device
        return RunInfo(models=models, device=o.device, dtype=o.dtype, device_used=device_used,
                       left_out=list(self.sel.left_out),
                       precision=cells.precision_lines(self.results, o.dtype_name) if o.half else [],
                       when=time.strftime("%Y-%m-%d %H:%M:%S"),
                       command="pytest " + " ".join(self.config.invocation_params.args),
                       lock_diff=history.lock_diff(self.root / "constraints" / "ci.txt"),
                       machine=history.machine(), wall_s=round(time.time() - self.started, 1),
                       trend_note="the models of this run in the order given")

    def summary(self, tr) -> None:
        """The terminal's section: models, the verdict table, what moved, figures and reports."""
        if not self.collected and not self.opt.models and not self.results:
            return  # (under xdist only the workers collect)
        own = self.folder is not None and self.folder.own
        art = self.shown(self.artifacts()) if own else self.opt.artifacts or self.shown(self.artifacts())
        tr.section("interpretability claims")
        for line in text.summary_lines(self.results, self.status, self.opt, [s.id for s in self.sel.models],
                                       self.sel.left_out, art, [self.shown(f) for f in self.published.reports]):
            tr.write_line(line)
        if own and self.folder is not None:
            tr.write_line(self.folder.note(self.shown))
        if self.published.history_file:
            tr.write_line(f"history: run appended to {self.published.history_file}")
