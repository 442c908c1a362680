"""The model registry (a project's ``claims_registry``, parsed by a schema) and resolution of
``--models`` entries.

An entry of ``--models`` is a registry id, a hub id (``owner/name`` or a bare
hub name, optionally ``@revision``), a local folder holding ``config.json``, or a
GGUF file (or a folder holding exactly one), dequantised once into a cache folder
(probes/gguf.py). Unknown hub ids, local folders and GGUF files get the generic
claims their kind supports.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import UnknownModelError, did_you_mean, nearest

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10 (requires-python): the same parser as a package, a dependency there (pyproject.toml)
    import tomli as tomllib

KINDS = ("causal", "masked", "encoder")
SOURCES = ("local", "package", "hub", "gguf")
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
    families: list[str] | None  # None: a model given by path or hub id, which runs every family of the project's
    #                             claims that fits its kind (the claim markers' kinds=)
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
    install: str | None = None         # the command that installs a package model (named when it is missing)
    params: dict = field(default_factory=dict)
    expect: dict = field(default_factory=dict)
    note: str = ""
    dtypes_unsupported: dict = field(default_factory=dict)  # dtype -> why the model cannot run in it (measured)
    baseline: str | None = None        # a candidate: the registry id whose parameters and snapshots it is measured by
    root: str | None = None            # the project root a relative ``path`` is read from (its registry's folder)
    origin: str | None = None          # the registry file the entry comes from (named in messages)

    def param(self, name: str, default=None):
        return self.params.get(name, default)

    def expectation(self, family: str) -> dict:
        return self.expect.get(family, {})

    def runs(self, family: str) -> bool:
        """Whether this model runs the claims of ``family`` (every family, for a model given by path)."""
        return self.families is None or family in self.families

    def given(self, value: str | None, name: str) -> str:
        """``value``, the field ``name`` that this entry's source needs (:func:`check_entry` refuses a registry
        entry without it, :func:`resolve` sets it): an error naming the entry and the field where it is missing."""
        if value is None:
            raise UnknownModelError(f"model {self.id!r}: source = {self.source!r} needs {name}")
        return value

    def local_path(self) -> Path:
        """A ``local`` entry's folder: ``path`` as written, relative to the project root unless absolute."""
        p = Path(self.given(self.path, "path")).expanduser()
        return p if p.is_absolute() or self.root is None else Path(self.root) / p


def _not_a_registry_id(spec: ModelSpec, entry: str, registry: dict[str, ModelSpec]) -> ModelSpec:
    """A folder or file is the registry model when it is that entry's own folder; one that is merely named like a
    registry id must not take over that id's snapshots without its parameters."""
    reg = registry.get(spec.id)
    if reg is None:
        return spec
    if reg.source == "local" and spec.source == "local" and \
            Path(spec.given(spec.path, "path")).resolve() == reg.local_path().resolve():
        return reg
    raise UnknownModelError(
        f"--models {entry!r} is named like the registry model {spec.id!r} but is not its folder. To check it against "
        f"{spec.id}'s recorded findings (under its registry parameters) pass --models {spec.id}={entry}; to measure "
        "it as a model of its own, give it a folder (or file) name that is not a registry id.")


# The registry's schema: each field of an entry, its type and (where it has them) its allowed values. A strict
# loader over dataclasses, not a validation library: the schema is fifteen flat fields, and each mistake must be one
# line naming the registry, the entry, the field and the fix (pydantic's messages are several lines per error and
# name types, not the registry's words); a dependency would buy nothing here.
STR, STRS, TABLE = "a string", "a list of strings", "a table"
SCHEMA: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "source": (STR, SOURCES), "kind": (STR, KINDS), "families": (STRS, None), "tier": (STR, None),
    "path": (STR, None), "package": (STR, None), "subdir": (STR, None), "hub_id": (STR, None),
    "revision": (STR, None), "gguf": (STR, None), "gguf_parts": (STRS, None), "gguf_sha256": (STR, None),
    "made_from": (STR, None), "install": (STR, None), "params": (TABLE, None), "expect": (TABLE, None),
    "note": (STR, None), "dtypes_unsupported": (TABLE, None)}
FIELDS = set(SCHEMA)
BUILTIN = Path(__file__).resolve().parent / "builtin_models.toml"
ACCESS = ("source", "path", "package", "subdir", "hub_id", "revision", "gguf", "gguf_parts", "gguf_sha256",
          "made_from", "install", "kind", "tier", "dtypes_unsupported")  # what a builtin entry brings (a project adds families, params,
#                                                   expect, note)
PARAM_TYPES = {"xdist_split": STRS, "xdist_weight": "a number", "device_map": STR}


def _type_ok(value, want: str) -> bool:
    if want == STR:
        return isinstance(value, str)
    if want == STRS:
        return isinstance(value, list) and all(isinstance(x, str) for x in value)
    if want == TABLE:
        return isinstance(value, dict)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _shown(value) -> str:
    return json.dumps(value) if isinstance(value, (str, int, float, bool, list)) else type(value).__name__


def check_entry(where: str, mid: str, e: dict) -> None:
    """One registry entry against :data:`SCHEMA`: unknown fields, missing ones, wrong types and unknown values,
    each one line naming the registry, the entry, the field and what it may be."""
    head = f"registry {where}, [models.{mid}]"
    _check_fields(head, e)
    _check_values(head, e)
    _check_tables(head, e)
    _check_source(head, e)


def _check_fields(head: str, e: dict) -> None:
    """No unknown field (with the nearest known name), none of source and kind missing."""
    unknown = sorted(set(e) - FIELDS)
    if unknown:
        near = [(k, n) for k in unknown if (n := nearest(k, FIELDS))]
        fix = (f"; did you mean {near[0][1]!r}?" if len(unknown) == 1 and near else
               f"; did you mean {', '.join(f'{n!r} for {k!r}' for k, n in near)}?" if near else ".")
        raise UnknownModelError(
            f"{head}: unknown field(s) {', '.join(unknown)}{fix} Fields an entry may have: "
            f"{', '.join(sorted(FIELDS))}, or builtin = \"<id>\" (a model this package knows: "
            f"{', '.join(builtin_models())}) with families, params, expect and note")
    missing = [k for k in ("source", "kind") if k not in e]
    if missing:
        raise UnknownModelError(f"{head}: missing {', '.join(missing)} ({'; '.join(_allowed(k) for k in missing)})")


def _check_values(head: str, e: dict) -> None:
    """Each field of the type :data:`SCHEMA` gives it, and one of its allowed values where it has them."""
    for k, v in e.items():
        want, values = SCHEMA[k]
        if not _type_ok(v, want):
            eg = f'; e.g. {k} = ["{v}"]' if want == STRS and isinstance(v, str) else ""
            raise UnknownModelError(f"{head}: {k} = {_shown(v)} is not {want}{eg}")
        if values is not None and v not in values:
            raise UnknownModelError(f"{head}: {k} = {_shown(v)} is not one of {', '.join(values)}"
                                    f"{did_you_mean(v, values)}")


def _check_tables(head: str, e: dict) -> None:
    """The tables' contents: known params of their types, expect.<family> tables with their known_failures'
    reasons, dtypes_unsupported's dtypes with their reasons."""
    for k, v in (e.get("params") or {}).items():
        if k in PARAM_TYPES and not _type_ok(v, PARAM_TYPES[k]):
            raise UnknownModelError(f"{head}: params.{k} = {_shown(v)} is not {PARAM_TYPES[k]}")
    for fam, x in (e.get("expect") or {}).items():
        if not isinstance(x, dict):
            raise UnknownModelError(f"{head}: expect.{fam} = {_shown(x)} is not a table (expect.<family>.<name>)")
        kf = x.get("known_failures", {})
        if not isinstance(kf, dict) or not all(isinstance(r, str) for r in kf.values()):
            raise UnknownModelError(f"{head}: expect.{fam}.known_failures must be a table of \"<claim id>\" = "
                                    "\"<reason, with the measured numbers>\"")
    for dt, why in (e.get("dtypes_unsupported") or {}).items():
        if dt not in ("float32", "bfloat16", "float16") or not isinstance(why, str) or not why:
            raise UnknownModelError(f"{head}: dtypes_unsupported must be a table of float32 / bfloat16 / float16 = "
                                    f"\"<why, with the measured numbers>\"; got {dt} = {_shown(why)}")


def _check_source(head: str, e: dict) -> None:
    """The fields the entry's source needs: a hub id with a pinned revision, a path, a package (with its subdir
    unless it ships a GGUF file)."""
    if e["source"] == "hub" and not (e.get("hub_id") and e.get("revision")):
        raise UnknownModelError(
            f"{head}: a hub entry needs hub_id and a pinned revision (a commit hash or tag), so that every run "
            f"measures the same weights; add revision = \"<commit>\" (the commit of {e.get('hub_id') or 'the model'} "
            "you recorded)")
    need = {"local": ["path"], "gguf": ["path"], "package": ["package"]}.get(e["source"], [])
    if e["source"] == "package" and not e.get("gguf"):
        need.append("subdir")
    lacking = [k for k in need if not e.get(k)]
    if lacking:
        raise UnknownModelError(f"{head}: source = {_shown(e['source'])} needs {' and '.join(lacking)}")


def _allowed(k: str) -> str:
    want, values = SCHEMA[k]
    return f"{k}: one of {', '.join(values)}" if values else f"{k}: {want}"


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
                                f"knows ({', '.join(known)}){did_you_mean(name, known)}; use one of them, or give "
                                "source, kind and its files")
    clash = sorted(k for k in e if k in ACCESS and k != "tier")
    if clash:
        raise UnknownModelError(f"registry {where}, [models.{mid}]: builtin = {name!r} brings where the weights come "
                                f"from; remove {', '.join(clash)} (or drop builtin and describe the model yourself)")
    return {**known[name], **{k: v for k, v in e.items() if k != "builtin"}}


def load_registry(path: Path, root: Path | None = None) -> dict[str, ModelSpec]:
    """The registry's models by id. ``root``: the folder that relative ``path`` entries are read from (the
    project's root; default: the registry file's folder). A file that cannot be read, or an entry that breaks the
    schema (:func:`check_entry`), is an error naming the file, the entry, the field and the fix. An entry without
    ``families`` runs every family of the project's claims that fits its kind."""
    path = Path(path)
    where = str(path)
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise UnknownModelError(f"registry {where} does not exist: create it (docs/writing-claims.md) or "
                                "point the ini option claims_registry at yours") from None
    except tomllib.TOMLDecodeError as e:
        raise UnknownModelError(f"registry {where} is not valid TOML ({e}); fix the file") from None
    models = data.get("models") or {}
    if not isinstance(models, dict) or not all(isinstance(e, dict) for e in models.values()):
        raise UnknownModelError(f"registry {where}: models must be tables [models.<id>]; fix the file")
    out = {}
    for mid, written in models.items():
        entry = _with_builtin(where, mid, written)
        check_entry(where, mid, entry)
        out[mid] = ModelSpec(id=mid, **{"families": None, **entry}, root=str(root or path.parent), origin=where)
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
        raise UnknownModelError(f"--models {entry!r}: {rid!r} is not a registry id ({', '.join(sorted(registry))})"
                                f"{did_you_mean(rid, registry)}; "
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
    if new.source == "hub" and not new.revision:
        raise UnknownModelError(f"--models {entry!r}: pin the candidate's revision (owner/name@<commit or tag>) so "
                                "that its verdicts can be reproduced")
    label = new.revision if new.source == "hub" and new.revision else new.id
    return replace(base, id=f"{rid}@{label}", source=new.source, path=new.path, hub_id=new.hub_id,
                   revision=new.revision, package=None, subdir=None, gguf=None, gguf_parts=[], gguf_sha256=None,
                   made_from=None, install=None, tier="candidate", baseline=rid,
                   note=f"candidate version of {rid} from {source}")


def resolve(entry: str, registry: dict[str, ModelSpec]) -> ModelSpec:
    """Turn a ``--models`` entry into a ModelSpec (``<registry id>=<source>``: see :func:`candidate`). A folder,
    GGUF file or hub id that is no registry model runs every family of the project that fits its kind."""
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
        return _resolve_path(entry, p, registry)
    if entry.startswith((".", "/", "~")) or entry.count("/") > 1:
        raise UnknownModelError(f"{entry!r}: no such file or folder (a hub id has the form owner/name[@revision])")
    if "/" in entry or "@" in entry:
        hub_id, _, rev = entry.partition("@")
        return ModelSpec(id=entry.replace("/", "--").replace("@", "-"), source="hub", hub_id=hub_id,
                         revision=rev or None, kind="causal", families=None)
    known = ", ".join(sorted(registry))
    origin = next((s.origin for s in registry.values() if s.origin), "the registry")
    raise UnknownModelError(
        f"unknown model {entry!r}: not a registry id ({known}), not an existing folder, and not a hub id of the "
        f"form owner/name[@revision]{did_you_mean(entry, registry) or '.'} Add it to {origin} or pass a folder or "
        "hub id.")


def _resolve_path(entry: str, p: Path, registry: dict[str, ModelSpec]) -> ModelSpec:
    """An existing file or folder ``p`` (the ``--models`` entry ``entry``): a GGUF file, a folder holding exactly
    one, or a folder holding config.json."""
    ggufs = [p] if p.is_file() and p.suffix == ".gguf" else \
        (sorted(p.glob("*.gguf")) if p.is_dir() and not (p / "config.json").exists() else [])
    if len(ggufs) > 1:
        raise UnknownModelError(f"{entry!r} holds {len(ggufs)} GGUF files ({[g.name for g in ggufs]}): pass one "
                                "file to --models")
    if ggufs:
        g = ggufs[0].resolve()
        return _not_a_registry_id(ModelSpec(id=g.stem, source="gguf", path=str(g), kind="causal",
                                            families=None), entry, registry)
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
                                        families=None), entry, registry)
