"""benchmarks/roofline_plugin.py: where a claim's time went is read from the main thread's stack; a frame of
matplotlib anywhere makes it a figure's, a loader makes it loading, else the innermost known library decides."""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import roofline_plugin  # noqa: E402


def stack(*frames: tuple[str, str]):
    """A real frame stack, outermost first: (file name, function name) each; returns the innermost frame."""
    inner = "import sys\ndef {name}(cb):\n    return cb()\n"
    call = lambda: sys._getframe(1)  # noqa: E731 - the innermost made-up function's frame
    for file, name in reversed(frames):
        ns: dict = {}
        exec(compile(inner.format(name=name), file, "exec"), ns)
        call = (lambda f, c: (lambda: f(c)))(ns[name], call)
    return call()


def test_time_is_attributed_by_the_stack():
    cat = roofline_plugin.category
    model = ("/venv/site-packages/torch/nn/modules/linear.py", "forward")
    claim = ("/repo/claims/test_x.py", "test_claim")
    stats = ("/repo/probes/stats.py", "boot_means")
    assert cat(stack(claim, ("/repo/probes/families/neuron/analysis.py", "ablated_diffs"), model)) == "passes"
    assert cat(stack(claim, stats, ("/venv/site-packages/numpy/_core/fromnumeric.py", "sum"))) == "statistics"
    assert cat(stack(claim, ("/repo/probes/figures.py", "save"), ("/venv/site-packages/numpy/lib/x.py", "f"))) \
        == "figures"
    assert cat(stack(claim, ("/repo/probes/families/ioi/figures.py", "behaviour"),
                     ("/venv/site-packages/numpy/lib/x.py", "f"))) == "figures"
    assert cat(stack(claim, ("/repo/probes/loading.py", "load"), model)) == "loading"
    assert cat(stack(claim, ("/venv/site-packages/transformers/tokenization_utils_base.py", "__call__"))) \
        == "tokenizer"
    assert cat(stack(claim, ("/repo/probes/families/ioi/analysis.py", "mention_selectivity"))) == "claim code"
    # a hook of the claim's own, called from inside the model's pass, is the pass's time
    assert cat(stack(claim, model, ("/repo/probes/families/neuron/analysis.py", "put"))) == "passes"
