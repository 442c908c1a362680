"""Capture and intervene on named sites; hooks are always removed, also on exceptions."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterable

import torch

from .adapters import Adapter
from .errors import NumericsError

Edit = Callable[[torch.Tensor], torch.Tensor]


def _split_heads(x: torch.Tensor, ad: Adapter) -> torch.Tensor:
    return x.view(*x.shape[:-1], ad.n_heads, ad.head_dim)


def _get(args_or_out, where):
    if where == "pre":
        return args_or_out[0]
    return args_or_out[0] if isinstance(args_or_out, tuple) else args_or_out


def _put(args_or_out, where, new):
    if where == "pre" or isinstance(args_or_out, tuple):
        return (new, *args_or_out[1:])
    return new


def all_finite(x: torch.Tensor) -> bool:
    """No NaN/inf in ``x``, by one min/max reduction (NaN propagates through both, an inf shows in one):
    ``isfinite(x).all()`` allocates a mask and took 12x as long (20 s of a 262k-vocabulary claim's 150 s)."""
    if x.numel() == 0 or not x.is_floating_point():
        return True
    lo, hi = torch.aminmax(x.detach())
    return bool(torch.isfinite(lo) and torch.isfinite(hi))


def check_finite(x: torch.Tensor, what: str, dtype: torch.dtype | None = None) -> None:
    """Raise NumericsError when ``x`` holds NaN/inf; ``dtype``: the model's (default ``x``'s), which decides the
    named cause (half-precision overflow, or not)."""
    if not all_finite(x):
        n = (~torch.isfinite(x)).sum().item()
        fix = ("with float16 this is usually overflow: rerun with --dtype float32 or --dtype bfloat16" if (dtype or x.dtype)
               in (torch.float16, torch.bfloat16) else "in float32 this is no overflow: the model's weights were finite "
               "when loaded, so an edit or an input produced it; rerun the claim alone (-k) to find which")
        raise NumericsError(f"{n} NaN/inf values in {what} (dtype {x.dtype}); {fix}")


@contextmanager
def capture(ad: Adapter, sites: Iterable[tuple[str, int]], *, to_cpu: bool = False, finite: bool = True):
    """Record activations. Yields a dict filled during the forward pass: ``rec[(site, layer)]``.

    ``heads`` are returned as (B, T, H, dh); everything else as the module sees it.
    """
    rec: dict[tuple[str, int], torch.Tensor] = {}
    handles = []
    try:
        for site, layer in sites:
            mod, where = ad.module(site, layer)

            def hook(module, *a, key=(site, layer), where=where):
                x = _get(a[0] if where == "pre" else a[1], where).detach()
                if finite:
                    check_finite(x, f"{key[0]} of layer {key[1]}")
                if key[0] == "heads":
                    x = _split_heads(x, ad)
                rec[key] = x.cpu() if to_cpu else x

            handles.append(mod.register_forward_pre_hook(hook) if where == "pre" else mod.register_forward_hook(hook))
        yield rec
    finally:
        for h in handles:
            h.remove()


@contextmanager
def intervene(ad: Adapter, edits: dict[tuple[str, int], Edit]):
    """Replace activations: ``edits[(site, layer)] = fn(x) -> new x``.

    ``fn`` gets a clone (heads as B, T, H, dh) and returns a tensor of the same shape.
    """
    handles = []
    try:
        for (site, layer), fn in edits.items():
            mod, where = ad.module(site, layer)

            def apply(x, site=site, fn=fn):
                if site == "heads":
                    y = fn(_split_heads(x.clone(), ad))
                    return y.reshape(x.shape)
                return fn(x.clone())

            if where == "pre":
                def pre(module, args, apply=apply):
                    return _put(args, "pre", apply(args[0]))
                handles.append(mod.register_forward_pre_hook(pre))
            else:
                def post(module, args, out, apply=apply):
                    return _put(out, "post", apply(_get(out, "post")))
                handles.append(mod.register_forward_hook(post))
        yield
    finally:
        for h in handles:
            h.remove()


def n_hooks(model: torch.nn.Module) -> int:
    """Total forward hooks and pre-hooks on all modules (tests use it to prove hooks are gone)."""
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


@contextmanager
def with_grads(ad: Adapter, site: str, layers: Iterable[int]):
    """Keep the activations of ``site`` at ``layers`` with their gradients: yields a dict ``kept[layer]`` (tensors
    that retain their grad after a backward pass run inside the context, under torch.enable_grad())."""
    kept: dict[int, torch.Tensor] = {}

    def keep(layer):
        def fn(x):
            x.retain_grad()
            kept[layer] = x
            return x
        return fn
    with torch.enable_grad(), intervene(ad, {(site, layer): keep(layer) for layer in layers}):
        yield kept


def grads_of(out: torch.Tensor, kept: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
    """d(out)/d(kept[l]) for the activations :func:`with_grads` kept, by ``torch.autograd.grad``: only the
    gradients on the way to those activations are computed (``out.backward()`` also computed every weight's
    gradient: the size of the model again in memory, 1.1 GB for Gemma-3-270m, and a 262k-row product for its
    unembedding)."""
    layers = list(kept)
    return dict(zip(layers, torch.autograd.grad(out, [kept[layer] for layer in layers])))
