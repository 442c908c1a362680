"""Selection, the first stage of a run: the options read once, checked, and the models that run.

:class:`Options` is every command-line and ini option of the plugin, read once. :func:`check_options` refuses
what cannot run (with the fix), :func:`select` picks the models (``--models``' entries, or every registry model
available offline), :func:`check_record` and :func:`check_candidates` refuse a recording or a comparison that would
mix two models' numbers. Each raises ``pytest.UsageError`` (exit 4) naming the fix.

pytest internals: none, except pytest's own rootdir / ini search (``_pytest.config.findpaths.determine_setup``) in
:func:`check_rootdir`, for which pytest has no public API; it is used only to explain a mistake, and skipped when it
moves.
"""
from __future__ import annotations

import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from . import access, devices
from .errors import ProbeError
from .registry import ModelSpec, load_registry, resolve

INI = {"claims_registry": ("fixtures/models.toml", "the model registry (TOML), relative to the project root"),
       "claims_snapshots": ("snapshots", "the folder of the recorded snapshots, relative to the project root"),
       "claims_artifacts": ("artifacts", "the folder of figures and reports, relative to the project root "
                                         "(--artifacts overrides it)")}
PATH_OPTIONS = ("--models", "--artifacts", "--history", "--corpus")  # options whose value may be a path


@dataclass(frozen=True)
class Options:
    """The run's command-line and ini options, read once."""
    models: str | None = None
    device: str = "auto"
    device_map: str | None = None
    dtype: str = "float32"
    artifacts: str | None = None
    allow_mismatch: bool = False
    allow_pickle: bool = False
    trust_remote_code: bool = False
    exact: str = "auto"
    history: str | None = None
    significance: str = "interval"
    record: bool = False
    weight_jitter: float | None = None  # None: not given
    max_batch_tokens: int | None = None
    corpus: str | None = None
    fulltrace: bool = False
    ini: dict = field(default_factory=lambda: dict.fromkeys(INI))  # claims_registry / claims_snapshots /
    #                                                    claims_artifacts as the ini file sets them (None: not set)

    @classmethod
    def read(cls, config) -> Options:
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
        return str(devices.pick_dtype(self.dtype)).replace("torch.", "")

    @property
    def half(self) -> bool:
        """A bfloat16/float16 run (compared with its own snapshots where recorded, else with the float32 ones under
        the half-precision floors measured against them)."""
        return self.dtype_name != "float32"


@dataclass
class Selection:
    """The models of a run, and what the registry says about families."""
    registry: dict[str, ModelSpec] = field(default_factory=dict)
    models: list[ModelSpec] = field(default_factory=list)
    left_out: list[tuple[str, str]] = field(default_factory=list)  # (registry id, why) of models not run
    families: set[str] = field(default_factory=set)  # every family of the registry's and the selected models
    any_family: bool = False                         # a selected model runs every family (given by path or hub id)

    def spec(self, model_id: str) -> ModelSpec:
        return next(s for s in self.models if s.id == model_id)


def check_options(opt: Options) -> None:
    """Refuse option values that cannot run, naming the fix (no model is loaded and nothing is written first)."""
    if opt.max_batch_tokens is not None and opt.max_batch_tokens < 1:
        raise pytest.UsageError(f"--max-batch-tokens {opt.max_batch_tokens}: give a positive number of "
                                "tokens (e.g. 2048), or leave it out to size batches from the device's memory")
    jitter = opt.weight_jitter
    if jitter is not None and not 0 < jitter < float("inf"):
        raise pytest.UsageError(f"--weight-jitter {jitter:g}: give a positive size (e.g. 1e-6) or leave it out; it "
                                "is for measuring noise floors (scripts/calibrate.py) and perturbs every weight")
    if opt.corpus and not Path(opt.corpus).is_file():
        raise pytest.UsageError(f"--corpus {opt.corpus}: no such file (give a text file with one context per line)")
    try:
        devices.pick_dtype(opt.dtype)
        devices.check_device_name(opt.device)
        devices.pick_device(opt.device)  # --device cuda needs CUDA: one usage error, at start
    except ProbeError as e:
        raise pytest.UsageError(str(e)) from None


def check_rootdir(config) -> None:
    """pytest chooses its rootdir and ini file before any plugin's options are known: in ``--artifacts DIR`` (a
    space, not ``=``) it takes an existing DIR for a test path and looks for the ini file from there. When that
    finds another ini file (or none) than the command's own test paths would, the project's ini file (its
    registry, snapshots) is not read: a usage error naming the ``=`` spelling, which pytest parses as one word."""
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


def unsupported(spec: ModelSpec, registry: dict[str, ModelSpec], dtype_name: str) -> str:
    """Why ``spec`` (or the registry model a candidate is a version of) cannot run in ``dtype_name``, as the
    registry records it (``dtypes_unsupported``); '' when it can."""
    base = registry.get(spec.baseline or "") if spec.baseline else None
    return (spec.dtypes_unsupported or (base.dtypes_unsupported if base else {})).get(dtype_name, "")


def hub_available(spec: ModelSpec) -> tuple[bool, str]:
    """Whether a hub model is in the local hub cache (a default run is offline), and why not."""
    try:
        from huggingface_hub import try_to_load_from_cache
        hit = try_to_load_from_cache(spec.hub_id or "", "config.json", revision=spec.revision)
    except Exception as e:  # noqa: BLE001
        return False, f"hub cache lookup failed ({type(e).__name__})"
    if isinstance(hit, str):
        return True, ""
    return False, (f"not in the local hub cache at revision {(spec.revision or '')[:10]} (offline default run; "
                   f"download it and pass --models {spec.id})")


def _given(opt: Options, given: str, registry: dict[str, ModelSpec]) -> list[ModelSpec]:
    """The models ``--models`` names (``given``), each once, each runnable in the run's dtype."""
    entries = [m.strip() for m in given.split(",") if m.strip()]
    if not entries:
        raise pytest.UsageError(f"--models {given!r} names no model; give registry ids ({', '.join(registry)}), "
                                "folders, GGUF files or hub ids, separated by commas")
    try:
        specs = [resolve(m, registry) for m in entries]
    except ProbeError as e:
        raise pytest.UsageError(str(e)) from None
    seen: dict[str, str] = {}
    for m, spec in zip(entries, specs):
        if spec.id in seen:
            raise pytest.UsageError(f"--models entries {seen[spec.id]!r} and {m!r} are the same model ({spec.id!r}); "
                                    "give it once")
        seen[spec.id] = m
    bad = [(spec, why) for spec in specs if (why := unsupported(spec, registry, opt.dtype_name))]
    if bad:
        raise pytest.UsageError("; ".join(f"--models {s.id} with --dtype {opt.dtype}: {why}" for s, why in bad))
    return specs


def _default(opt: Options, registry: dict[str, ModelSpec], registry_name: str) -> tuple[list, list]:
    """Every registry model available offline (a hub model outside the local hub cache, or one the registry says
    cannot run in this dtype, is left out and named; any other that cannot be had is a usage error)."""
    chosen, left, broken = [], [], []
    for spec in registry.values():
        why = unsupported(spec, registry, opt.dtype_name)
        if why:  # the registry says it cannot run in this dtype (measured): left out, and named
            left.append((spec.id, f"not in {opt.dtype_name}: {why}"))
            continue
        if spec.source == "hub":  # offline default: a hub model runs once it is in the local cache (documented)
            ok, why = hub_available(spec)
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
            "\n".join(broken) + f"\n(a default run checks every model of {registry_name}: fix the entry "
            f"above, or run the others with --models {others})")
    return chosen, left


def select(opt: Options, registry_file: Path | None, root: Path, registry_name: str) -> Selection:
    """The models of this run: --models' entries, or every registry model available offline."""
    try:
        registry = load_registry(registry_file, root) if registry_file else {}
    except ProbeError as e:
        raise pytest.UsageError(str(e)) from None
    sel = Selection(registry=registry, families={f for spec in registry.values() for f in spec.families or []})
    if opt.models is not None:
        sel.models = _given(opt, opt.models, registry)
    else:
        sel.models, sel.left_out = _default(opt, registry, registry_name)
    sel.families |= {f for spec in sel.models for f in spec.families or []}
    sel.any_family = any(spec.families is None for spec in sel.models)
    return sel


def check_record(opt: Options, sel: Selection, registry_name: str) -> None:
    """--record writes only a registry model's own snapshots, of unperturbed weights."""
    if not opt.record:
        return
    cands = [s.id for s in sel.models if s.baseline]
    if cands:
        raise pytest.UsageError(
            f"--record with candidate models ({', '.join(cands)}): a candidate is compared with its registry "
            "entry's snapshots, never recorded over them. To adopt the new version, point the registry entry "
            f"({registry_name}) at it, then run --record for that id.")
    if opt.weight_jitter:
        raise pytest.UsageError("--record with --weight-jitter: jittered weights are for measuring noise floors "
                                "(scripts/calibrate.py), never recorded; leave one of them out")


def check_candidates(sel: Selection) -> None:
    """A candidate (``<registry id>=<new version>``) is compared with its registry model's snapshots: refused
    when its architecture, depth, heads, width or tokenizer differ, since those numbers would be another
    model's."""
    for spec in sel.models:
        base = sel.registry.get(spec.baseline or "")
        if base is None:
            continue
        diff = access.mismatch(spec, base)
        if diff:
            where = spec.path or spec.hub_id
            raise pytest.UsageError(
                f"--models {spec.baseline}={where}: not a version of {spec.baseline} ({'; '.join(diff)}), so its "
                f"numbers cannot be compared with {spec.baseline}'s snapshots. Measure it as a model of its own "
                f"(--models {where}), or pass --allow-mismatch to compare it anyway")


def check_writable(folder: Path, option: str, what: str, fix: str, file: str | None = None) -> None:
    """``folder`` (created if missing) and its ``file`` (when it exists) can be written by this process; else a
    usage error: ``<option> <folder>: <what> (<why>); <fix>``."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"  # one per process: xdist workers check at the same time
        probe.touch()
        probe.unlink()
        if file is not None and (folder / file).exists() and not os.access(folder / file, os.W_OK):
            raise PermissionError(13, "not writable")
    except OSError as e:
        raise pytest.UsageError(f"{option} {folder}: {what} ({e.strerror}); {fix}") from None
