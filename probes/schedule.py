"""Schedule, the second stage of a run: each claim parametrised over the models that run it, and the xdist groups.

:func:`parametrize` gives a claim one test per selected model that runs its family and kind (and per layer for a
claim that takes ``layer``), marking the registry's known failures; :func:`group` puts each model's tests in one
xdist group, heaviest first; :func:`threads_per_worker` splits the cores between the workers.
"""
from __future__ import annotations

import os

import pytest

from . import access, devices
from .errors import did_you_mean
from .registry import KINDS, ModelSpec
from .selection import Selection

USAGE_PREFIX = "interp-claims usage error: "
EXAMPLE = '@pytest.mark.claim(id="myfamily.finding", family="myfamily", source=..., null=..., criterion=...)'


def usage(message: str):
    """A mistake in a claims project found while collecting (a claim without marker, id or a known family; no
    registry): one line on the terminal (pytest shows a CollectError's message without a traceback), and the run
    exits 4 (usage error; probes/plugin.py counts these)."""
    raise pytest.Collector.CollectError(USAGE_PREFIX + message)


def param_id(spec: ModelSpec, dtype: str) -> str:
    """A model's test id: its registry id, with the dtype where it is not float32 (``gpt2-bfloat16``)."""
    name = str(devices.pick_dtype(dtype)).replace("torch.", "")
    return spec.id if name == "float32" else f"{spec.id}-{name}"


def known_failure(spec: ModelSpec, family: str | None, claim_id: str | None) -> list:
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


def _marker(metafunc, sel: Selection, where: str | None) -> tuple[dict, tuple | None]:
    """The claim marker's arguments and its kinds, checked (a usage error names the fix)."""
    mark = metafunc.definition.get_closest_marker("claim")
    node = metafunc.definition.nodeid
    if mark is None:
        usage(f"{node} uses the model fixtures (lm, model_id) but has no claim marker: it would run on every model "
              f"with no verdict, snapshot or report. Mark it {EXAMPLE}, or do not use the lm fixture")
    lacking = [k for k in ("id", "family") if not mark.kwargs.get(k)]
    if lacking:
        usage(f"{node}: @pytest.mark.claim needs {' and '.join(f'{k}=' for k in lacking)} (e.g. {EXAMPLE}): the id "
              "names the claim in verdicts and reports, the family picks its models")
    family = mark.kwargs["family"]
    if family not in sel.families and not sel.any_family:
        usage(f"{node}: family {family!r} (in its claim marker) is not a family of any model in {where or '--models'} "
              f"(families there: {', '.join(sorted(sel.families)) or 'none'}); fix the marker, or add {family!r} to "
              "the families of the models it is about")
    kinds = mark.kwargs.get("kinds")
    kinds = (kinds,) if isinstance(kinds, str) else kinds
    unknown = [k for k in kinds or () if k not in KINDS]
    if unknown:
        usage(f"{node}: kinds={list(kinds)!r} (in its claim marker): {unknown[0]!r} is not a kind of model this "
              f"package knows ({', '.join(KINDS)}){did_you_mean(unknown[0], KINDS)}; fix the marker (leave kinds out "
              "to run on every kind)")
    return mark.kwargs, kinds


def parametrize(metafunc, sel: Selection, dtype: str, registry_name: str | None) -> None:
    """Parametrise a claim over the selected models that run its family and kind (and over layers for claims
    that take a ``layer`` argument, as the seeds loop over layers). ``registry_name``: the registry as the user
    reads its path (None: no registry, models from --models)."""
    kw, kinds = _marker(metafunc, sel, registry_name)
    family = kw["family"]
    per_layer = "layer" in metafunc.fixturenames
    params = []
    for spec in sel.models:
        if not spec.runs(family) or (kinds and spec.kind not in kinds):
            continue
        pid, marks = param_id(spec, dtype), known_failure(spec, family, kw.get("id"))
        if not per_layer:
            params.append(pytest.param(spec.id, id=pid, marks=marks))
            continue
        n = access.n_layers(spec)
        if not n:
            raise pytest.UsageError(f"cannot read the number of layers of {spec.id} (no config.json found)")
        params += [pytest.param(spec.id, layer, id=f"{pid}-L{layer}", marks=marks) for layer in range(n)]
    if not params:
        skip = pytest.mark.skip(reason=f"no selected model supports claim family {family!r} (kinds {kinds}); "
                                       "see --models")
        params = [pytest.param(None, None, marks=skip) if per_layer else pytest.param(None, marks=skip)]
    metafunc.parametrize("model_id,layer" if per_layer else "model_id", params)


def group(items, models: list[ModelSpec]) -> bool:
    """Group tests by model so that under -n auto (with --dist loadgroup) each model loads on one worker; returns
    whether any claim was collected.

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
    specs = {s.id: s for s in models}
    weight, name_of = {}, {}
    for item in items:
        callspec = getattr(item, "callspec", None)
        mid = callspec.params.get("model_id") if callspec else None
        if not mid:
            continue
        spec = specs.get(mid)
        mark = item.get_closest_marker("claim")
        family = mark.kwargs.get("family") if mark else None
        split = spec is not None and family in spec.param("xdist_split", [])
        name = f"{mid}:{family}" if split else mid
        item.add_marker(pytest.mark.xdist_group(name))
        weight[item.nodeid] = spec.param("xdist_weight", 1) if spec is not None else 1
        name_of[item.nodeid] = name
    # heaviest first; within a weight, each group's tests together, groups in the order they first appear (tests/
    # is collected before claims/): a process without xdist then runs one model at a time too, and loads it once
    first: dict[str, int] = {}
    for i, item in enumerate(items):
        first.setdefault(name_of.get(item.nodeid, item.nodeid), i)
    items.sort(key=lambda it: (-weight.get(it.nodeid, 1), first[name_of.get(it.nodeid, it.nodeid)]))
    return bool(name_of)


def threads_per_worker() -> None:
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
