"""A pytest plugin of benchmarks/bench_roofline.py (not of the suite): per claim test, what it executed or how long
it took, appended as one JSON line to ``$ROOFLINE_OUT``.

``$ROOFLINE_MODE=count``: the test's setup and call run under :class:`Count`, a ``TorchDispatchMode`` that adds up
the floating-point operations of every aten op with a FLOP formula (``torch.utils.flop_counter``'s registry:
matrix products, convolutions, attention) and the bytes of every non-view op's tensor inputs and outputs (the
traffic through memory if nothing stayed in a cache: an upper bound). ``$ROOFLINE_MODE=time``: the same, plain,
with the wall time and the peak resident memory of the process (``/proc/self/statm``, sampled every 20 ms; sampled
in count mode too, with the op count: benchmarks/bench_cost.py times its claims under the counter), and where the
time went (:class:`Where`: the model's passes, statistics, figures, tokenisation, the claims' own code).
"""
from __future__ import annotations

import json
import os
import re
import threading
import time

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import flop_registry

MODE = os.environ.get("ROOFLINE_MODE", "time")
OUT = os.environ.get("ROOFLINE_OUT")
PAGE = os.sysconf("SC_PAGE_SIZE")


class Count(TorchDispatchMode):
    """FLOPs (by torch's own formulas) and bytes of tensors in and out of each op."""

    def __init__(self):
        super().__init__()
        self.flops = 0
        self.bytes = 0
        self.ops = 0  # aten ops dispatched (views included): each is a kernel launch on a GPU

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.ops += 1
        packet = func._overloadpacket
        if packet in flop_registry:
            self.flops += int(flop_registry[packet](*args, **kwargs, out_val=out))
        if not func.is_view:
            self.bytes += sum(t.numel() * t.element_size() for t in tree_flatten((args, kwargs, out))[0]
                              if isinstance(t, torch.Tensor))
        return out

    def finish(self, rec: dict) -> None:
        """Stop counting; add what was counted to the test's record."""
        self.__exit__(None, None, None)
        for k in ("flops", "bytes", "ops"):
            rec[k] += getattr(self, k)


def rss() -> tuple[int, int]:
    """(resident, anonymous) bytes: resident includes file-backed pages (weights read through mmap from the model
    cache, which the kernel can drop and which processes mapping one file share); anonymous is what only this
    process holds."""
    with open("/proc/self/statm") as f:
        v = f.read().split()
    return int(v[1]) * PAGE, (int(v[1]) - int(v[2])) * PAGE


class Peak:
    """The process's largest resident and anonymous memory while it runs (a sampling thread)."""

    def __init__(self):
        self.peak = self.anon = 0
        self._sample()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _sample(self):
        r, a = rss()
        self.peak, self.anon = max(self.peak, r), max(self.anon, a)

    def _run(self):
        while not self._stop.wait(0.02):
            self._sample()

    def stop(self) -> tuple[int, int]:
        self._stop.set()
        self._t.join()
        self._sample()
        return self.peak, self.anon


WHERE = ("passes", "loading", "statistics", "figures", "tokenizer", "claim code")
LOADERS = {"load", "random_init_like", "_random_from_disk"}  # probes/loading.py: a model or a random-init copy
FIGURES = re.compile(r"probes/(families/\w+/)?figures\.py$")  # the generic figure helpers and each family's figures


def category(frame) -> str:
    """What the main thread is doing, from its stack (innermost frame first): ``figures`` (any frame in
    matplotlib, probes/figures.py or a family's probes/families/<family>/figures.py), ``loading`` (a model or a
    random-init copy being loaded: probes/loading.py's loaders), else by the innermost frame of a known library:
    ``passes`` (torch or transformers' model code: the models' arithmetic and its element-wise work),
    ``statistics`` (numpy, scipy, probes/stats.py), ``tokenizer`` (tokenizers, transformers' tokenization); else
    ``claim code`` (the claims' and probes' own Python, and the tensor operations they call directly)."""
    files, loading = [], False
    while frame is not None:
        code = frame.f_code
        files.append(code.co_filename)
        loading = loading or (code.co_name in LOADERS and code.co_filename.endswith("probes/loading.py"))
        frame = frame.f_back
    if any("/matplotlib/" in f or FIGURES.search(f) for f in files):
        return "figures"
    if loading:
        return "loading"
    for f in files:
        if "/tokenizers/" in f or "/tokenization_" in f:
            return "tokenizer"
        if "/torch/" in f or "/transformers/" in f:
            return "passes"
        if "/numpy/" in f or "/scipy/" in f or f.endswith("probes/stats.py"):
            return "statistics"
        if f.endswith(("probes/hooks.py", "probes/adapters.py")):
            return "passes"  # the adapters' own forward (a resumed pass) and the hooks inside the model's pass
    return "claim code"


class Where:
    """Where the main thread's time goes (:func:`category`), from its stack sampled every 5 ms by a thread: each
    sample is given the time since the one before. Time mode only (the counter would be what it samples)."""

    def __init__(self):
        import sys
        self.seconds = dict.fromkeys(WHERE, 0.0)
        self._main = threading.main_thread().ident
        self._frames = sys._current_frames
        self._stop = threading.Event()
        self._last = time.perf_counter()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.wait(0.005):
            frame = self._frames().get(self._main)
            now = time.perf_counter()
            if frame is not None:
                self.seconds[category(frame)] += now - self._last
            self._last = now

    def finish(self, rec: dict) -> None:
        """Stop sampling; add each category's seconds to the test's record."""
        self._stop.set()
        self._t.join()
        where = rec.setdefault("where", dict.fromkeys(WHERE, 0.0))
        for k, v in self.seconds.items():
            where[k] += v


STASH = pytest.StashKey[dict]()


def _start(item):
    rec = item.stash.setdefault(STASH, {"flops": 0, "bytes": 0, "ops": 0, "seconds": 0.0, "rss_peak": 0, "anon_peak": 0,
                                        "rss_start": rss()[0]})
    peak = Peak()  # sampled in both modes (bench_cost.py reads the count pass's peak memory)
    if MODE == "count":
        c = Count()
        c.__enter__()
        return rec, c, peak, time.perf_counter()
    return rec, Where(), peak, time.perf_counter()


def _stop(rec, c, peak, t0):
    rec["seconds"] += time.perf_counter() - t0
    c.finish(rec)  # the counter (count mode) or the stack sampler (time mode)
    if peak is not None:
        r, a = peak.stop()
        rec["rss_peak"], rec["anon_peak"] = max(rec["rss_peak"], r), max(rec["anon_peak"], a)


def _measured(item):
    """A hook wrapper's body: the phase (setup: the claim's fixtures, or call) counted or timed."""
    state = _start(item)
    try:
        return (yield)
    finally:
        _stop(*state)


pytest_runtest_setup = pytest.hookimpl(wrapper=True)(_measured)
pytest_runtest_call = pytest.hookimpl(wrapper=True)(_measured)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """How the test ended: ``outcome`` (passed / failed / skipped) and, for a claim stopped by its precondition
    (:class:`probes.errors.PreconditionFailed`: nothing to measure), ``precondition``."""
    rep = yield
    rec = item.stash.get(STASH, None)
    if rec is not None and rep.when in ("setup", "call") and (rep.when == "call" or not rep.passed):
        rec["outcome"] = rep.outcome
        exc = call.excinfo
        rec["precondition"] = bool(exc and exc.typename == "PreconditionFailed")
    return rep


def pytest_runtest_teardown(item):
    rec = item.stash.get(STASH, None)
    mark = item.get_closest_marker("claim")
    cs = getattr(getattr(item, "callspec", None), "params", {})
    if rec is None or mark is None or not OUT or cs.get("model_id") is None:
        return
    with open(OUT, "a") as f:
        f.write(json.dumps({"claim": mark.kwargs.get("id"), "model": cs["model_id"], "layer": cs.get("layer"),
                            "nodeid": item.nodeid, "mode": MODE, **rec}) + "\n")
