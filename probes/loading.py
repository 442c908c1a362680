"""Load a model + tokenizer + adapter from a ModelSpec (safetensors only unless opted in)."""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from . import access
from .devices import batch_tokens, free_memory, pick_device, pick_dtype
from .adapters import Adapter, adapter_for
from .errors import ModelLoadError, ResourceError
from .hooks import all_finite, check_finite
from .registry import ModelSpec

if TYPE_CHECKING:
    from transformers import PreTrainedModel

def logit_diff(logits: torch.Tensor, target, foil, what: str = "logit difference",
               dtype: torch.dtype | None = None) -> torch.Tensor:
    """logit(target) - logit(foil) per row of ``logits`` (B, V), in float32: one position's logits per row (a
    causal prompt's last, a masked one's [MASK]); ``target``/``foil``: ids, one per row or shared. A NaN/inf
    difference raises :class:`~probes.errors.NumericsError` naming ``what`` (``dtype``: the model's). The one
    difference of two logits that every analysis reads (:meth:`LoadedModel.last_diff` where it has the logits; the
    seed's reference loops; the masked-token margins)."""
    x = logits.float()
    rows = torch.arange(len(x), device=x.device)
    t, f = torch.as_tensor(target, device=x.device), torch.as_tensor(foil, device=x.device)
    d = x[rows, t.expand(len(x))] - x[rows, f.expand(len(x))]
    check_finite(d, what, dtype)
    return d


@dataclass
class LoadedModel:
    spec: ModelSpec
    model: PreTrainedModel
    tokenizer: Any  # a transformers tokenizer (its classes vary by model)
    adapter: Adapter
    device: torch.device
    dtype: torch.dtype
    source_info: dict = dataclasses.field(default_factory=dict)
    # what the claims of one family share on this model (activations, prompt sets, nulls): owned with the model by
    # the plugin's session, dropped when the worker moves on to another family or model (the model_cache fixture)
    cache: dict = dataclasses.field(default_factory=dict, repr=False)
    cache_family: str | None = dataclasses.field(default=None, repr=False)
    # tokens per batched pass (prompts x positions x copies): :func:`batch_tokens`, from the device's free memory
    batch_tokens: int = 8192

    @property
    def kind(self) -> str:
        return self.spec.kind

    def acts(self, input_ids: torch.Tensor, **kw):
        """A forward pass through the base model only (no LM head: a 262k-token unembedding is skipped), for
        passes that only capture or edit activations."""
        return self.adapter.base(input_ids=input_ids, **kw)

    def last_logits(self, input_ids: torch.Tensor, **kw) -> torch.Tensor:
        """Logits at the last position only, (B, V) (causal LMs compute no other position's logits)."""
        if self.kind == "causal":
            return self.model(input_ids=input_ids, logits_to_keep=1, **kw).logits[:, -1]
        return self.model(input_ids=input_ids, **kw).logits[:, -1]

    def last_diff(self, input_ids: torch.Tensor, target, foil, **kw) -> torch.Tensor:
        """logit(target) - logit(foil) at the last position, (B,), read from two rows of the unembedding (never the
        full vocabulary) where the adapter can resume a pass, else from the last position's logits
        (:func:`logit_diff`); ``target``/``foil``: ids, one per row or shared."""
        what = "last-position logit difference"
        if self.kind == "causal" and self.adapter.can_resume:
            d = self.adapter.logit_diff(self.acts(input_ids, **kw).last_hidden_state[:, -1], target, foil)
            check_finite(d, what, self.dtype)
            return d
        return logit_diff(self.last_logits(input_ids, **kw), target, foil, what, self.dtype)

    def enter_family(self, family: str | None) -> bool:
        """Make :attr:`cache` the one of ``family``'s claims: another family's cache is dropped (Gemma-3-270m's MLP
        activations of the grammar words are 0.75 GB that no other family reads). True when something was dropped.
        The plugin calls this before each claim; a run that interleaves families only recomputes what they share."""
        if family == self.cache_family:
            return False
        dropped = bool(self.cache)
        self.cache, self.cache_family = {}, family
        return dropped

    def meta(self) -> dict:
        """Recorded with every snapshot: numbers depend on these."""
        out = {"model": self.spec.id, "revision": self.spec.revision, "dtype": str(self.dtype).replace("torch.", ""),
               "device": self.device.type}
        if self.source_info:  # GGUF: the file's hash and quantisation (dequantised 4-bit weights differ from fp32)
            out.update({k: self.source_info[k] for k in ("gguf_file", "gguf_sha256", "quantisation")})
        return out


def _model_class(kind: str, arch: str | None):
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM
    return {"causal": AutoModelForCausalLM, "masked": AutoModelForMaskedLM}.get(kind, AutoModel)


def load(spec: ModelSpec, device: str = "auto", dtype: str = "float32", *, allow_pickle: bool = False,
         trust_remote_code: bool = False, offline: bool | None = None, device_map: str | None = None,
         jitter: float = 0.0, jitter_seed: int = 0, max_batch_tokens: int | None = None) -> LoadedModel:
    """Load weights (safetensors only unless ``allow_pickle``), tokenizer and adapter.

    ``device_map`` (``auto`` / ``balanced``; or the registry parameter ``device_map``): on CUDA, spread a model that
    does not fit one GPU over the visible GPUs (accelerate's dispatch moves activations between them); the model's
    device is then that of its input embeddings. Ignored on a CPU.

    Hub models are loaded at the pinned revision; ``offline`` (default: the
    HF_HUB_OFFLINE environment variable) forbids network access. ``jitter``: noise-floor calibration only
    (:func:`jitter_weights`). ``max_batch_tokens``: the cap of :func:`batch_tokens`.
    """
    dev, dt = pick_device(device), pick_dtype(dtype)
    from transformers.utils import logging as hf_logging
    hf_logging.disable_progress_bar()  # our own log line says what loads: no bars in captured output or tracebacks
    where = access.folder(spec)
    kw = _from_pretrained_kwargs(spec, allow_pickle, trust_remote_code, offline)
    if spec.source != "hub":
        _check_weight_files(spec, where, allow_pickle)
        _check_config_and_tokenizer(spec, where, trust_remote_code)
    cls = _model_class(spec.kind, None)
    device_map = device_map or spec.param("device_map")
    if device_map and device_map not in ("auto", "balanced", "balanced_low_0", "sequential"):
        raise ModelLoadError(f"device_map {device_map!r} unknown; use auto, balanced, balanced_low_0 or sequential")
    spread = bool(device_map) and dev.type == "cuda"
    if spread:
        kw["device_map"] = device_map
    model, tok = _from_pretrained(spec, cls, where, dev, dt, kw)
    if spread:
        dev = model.get_input_embeddings().weight.device
        model.eval()
    else:
        model.to(dev).eval()
    check_weights(model, spec.id)
    check_vocabulary(model, tok, spec.id)
    drop_build_tables(tok)
    jitter_weights(model, jitter, jitter_seed)
    from .gguf import read_source
    return LoadedModel(spec, model, tok, adapter_for(model), dev, dt,
                       read_source(where) if spec.source != "hub" else {},
                       batch_tokens=batch_tokens(model, dev, dt, max_batch_tokens))


def _from_pretrained_kwargs(spec: ModelSpec, allow_pickle: bool, trust_remote_code: bool,
                            offline: bool | None) -> dict[str, Any]:
    """``from_pretrained``'s keywords: safetensors only unless ``allow_pickle``; a hub model at its pinned revision,
    offline when ``offline`` says so (default: the HF_HUB_OFFLINE environment variable); a folder's files only."""
    kw: dict[str, Any] = dict(use_safetensors=None if allow_pickle else True, trust_remote_code=trust_remote_code)
    if spec.source == "hub":
        kw["revision"] = spec.revision
        if offline is None:
            offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
        kw["local_files_only"] = offline
    else:
        kw["local_files_only"] = True
    return kw


def _check_weight_files(spec: ModelSpec, where: str, allow_pickle: bool) -> None:
    """A folder holds safetensors weights (pickle checkpoints only with ``allow_pickle``: they run code)."""
    folder = Path(where)
    safetensors = (folder / "model.safetensors").exists() or list(folder.glob("model-*.safetensors"))
    pickles = [f.name for f in folder.glob("*.bin")] + [f.name for f in folder.glob("*.pt*")]
    if not safetensors and not pickles:
        raise ModelLoadError(f"model {spec.id!r}: {where} has no weights (no model.safetensors); save them with "
                             "model.save_pretrained(folder) beside config.json")
    if not safetensors and not allow_pickle:
        raise ModelLoadError(f"model {spec.id!r}: no model.safetensors in {where}, only pickle checkpoints "
                             f"({', '.join(sorted(pickles))}), which run code when loaded; convert them to "
                             "safetensors, or opt in with --allow-pickle if you trust the file.")


def _check_config_and_tokenizer(spec: ModelSpec, where: str, trust_remote_code: bool) -> None:
    """A folder's config.json is readable JSON that asks for no custom code (unless ``trust_remote_code``), and
    tokenizer files lie beside it."""
    cfg_file = Path(where) / "config.json"
    try:
        cfg = json.loads(cfg_file.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"model {spec.id!r}: {cfg_file} is not a readable JSON config ({e}); fix or "
                             "re-save it with model.save_pretrained") from None
    if cfg.get("auto_map") and not trust_remote_code:
        raise ModelLoadError(f"model {spec.id!r}: {cfg_file} asks for custom code (auto_map "
                             f"{sorted(cfg['auto_map'])}); it runs code from the model's files. Rerun with "
                             "--trust-remote-code only if you trust them.")
    tok_files = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "vocab.txt", "tokenizer.model")
    if not any((Path(where) / f).exists() for f in tok_files):
        raise ModelLoadError(f"model {spec.id!r}: {where} has no tokenizer files ({', '.join(tok_files)}); "
                             "save them with tokenizer.save_pretrained(folder)")


def _from_pretrained(spec: ModelSpec, cls, where: str, dev: torch.device, dt: torch.dtype,
                     kw: dict[str, Any]) -> tuple[Any, Any]:
    """The model (of class ``cls``) and its tokenizer from ``where``; running out of memory, or any other failure,
    is an error that names the fix."""
    from transformers import AutoTokenizer
    try:
        model = cls.from_pretrained(where, dtype=dt, attn_implementation="eager", **kw)
        tok = AutoTokenizer.from_pretrained(where, **{k: v for k, v in kw.items() if k != "use_safetensors"})
    except torch.OutOfMemoryError:
        raise ResourceError(f"model {spec.id!r} does not fit on {dev} in {dt} ({free_memory(dev) / 1e9:.1f} GB "
                            "free): spread it over the GPUs with --device-map auto, or load it in half precision "
                            "(--dtype bfloat16)") from None
    except Exception as e:  # noqa: BLE001 - re-raised with a fix
        hint = ("the hub is not reachable from here: download it where you have access with "
                f"`hf download {spec.hub_id} --revision {spec.revision}` and rerun with HF_HUB_OFFLINE=1, "
                "or pass a local folder to --models") if spec.source == "hub" else "check the folder's files"
        raise ModelLoadError(f"could not load model {spec.id!r} from {where}: {type(e).__name__}: "
                             f"{str(e).splitlines()[0] if str(e) else ''}. Fix: {hint}.") from None
    return model, tok


def drop_build_tables(tok) -> None:
    """Free the Python vocabulary and merges that transformers 5's Llama and Gemma tokenizer classes keep after
    building their Rust tokenizer from them (``_vocab``, ``_merges``: read in ``__init__`` only; encoding,
    decoding and ``get_vocab`` go through the Rust tokenizer). Gemma-3's 262k entries and 515k merges held 0.15 GB
    of a worker's heap, through every claim. Deleted, not emptied: code that did read them fails loudly."""
    for attr in ("_vocab", "_merges"):
        if isinstance(tok.__dict__.get(attr), (dict, list)):
            del tok.__dict__[attr]


def check_weights(model, model_id: str) -> None:
    """Every floating-point weight is finite: a NaN or inf in the checkpoint would surface later as NaN activations
    with a misleading cause. Names the first damaged tensors and the fix."""
    bad = []
    with torch.no_grad():
        for name, p in model.named_parameters():
            if not all_finite(p):
                bad.append(f"{name} ({int((~torch.isfinite(p)).sum())} of {p.numel()})")
    if bad:
        raise ModelLoadError(f"model {model_id!r}: the checkpoint's weights hold NaN/inf values: "
                             f"{', '.join(bad[:3])}{' and more' if len(bad) > 3 else ''}; the file is damaged: "
                             "restore, re-download or re-save the model")


def check_vocabulary(model, tok, model_id: str) -> None:
    """The tokenizer's ids index rows of the input embedding: a tokenizer larger than the embedding (a tokenizer of
    another model, or added tokens without ``resize_token_embeddings``) would index past its end."""
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tok) > rows:
        raise ModelLoadError(f"model {model_id!r}: its tokenizer has {len(tok)} tokens but its input embedding "
                             f"only {rows} rows, so ids >= {rows} have no embedding: the tokenizer files belong to "
                             "another model, or tokens were added without model.resize_token_embeddings(len("
                             "tokenizer)); save the model's own tokenizer beside it")


def jitter_weights(model, size: float, seed: int = 0) -> None:
    """Noise-floor calibration only (scripts/calibrate.py, through the plugin's ``--weight-jitter``): multiply every
    floating-point weight by ``1 + size * N(0, 1)`` (seeded), e.g. ``size=1e-6``, about 8 float32 rounding steps, a
    perturbation at the scale of another CPU's rounding; in half precision the product is taken in float32 and
    rounded back (calibrate.py --dtype uses half a rounding step of that dtype). The plugin refuses ``--record``
    with it."""
    if not size:
        return
    g = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for p in model.parameters():
            if p.is_floating_point():  # in float32, then rounded to the model's dtype (1 + 1e-6 is 1 in bfloat16)
                noise = 1.0 + size * torch.randn(p.shape, generator=g)
                p.copy_((p.float() * noise.to(p.device)).to(p.dtype))


def random_init_like(lm: LoadedModel, seed: int) -> LoadedModel:
    """A randomly initialised model of the same config (the 'untrained' null control)."""
    torch.manual_seed(seed)
    model = type(lm.model)(lm.model.config)
    # the model's own to(): cast only for mypy, which reads PreTrainedModel.to (declared through
    # functools.wraps(nn.Module.to)) as an unbound function
    cast(torch.nn.Module, model).to(lm.device, lm.dtype)
    model.eval()
    spec = dataclasses.replace(lm.spec, id=f"{lm.spec.id}-random{seed}")
    return _sibling(lm, spec, model)


def _sibling(lm: LoadedModel, spec: ModelSpec, model) -> LoadedModel:
    """Another model beside ``lm`` (a random-init null): its tokenizer, device, dtype, source and batch budget."""
    return LoadedModel(spec, model, lm.tokenizer, adapter_for(model), lm.device, lm.dtype, lm.source_info,
                       batch_tokens=lm.batch_tokens)


_RANDOM: dict[tuple, LoadedModel] = {}


def _random_file(lm: LoadedModel, seed: int) -> Path:
    """Where the weights of ``random_init_like(lm, seed)`` are kept: keyed by everything that decides them (the
    model class and config, the seed, the dtype, torch's and transformers' versions: their initialisers)."""
    import hashlib

    import transformers

    from .gguf import cache_root
    cfg = {k: v for k, v in lm.model.config.to_dict().items() if k not in ("_name_or_path", "transformers_version")}
    key = json.dumps([type(lm.model).__name__, cfg, seed, str(lm.dtype), torch.__version__,
                      transformers.__version__], sort_keys=True, default=str)
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in lm.spec.id)
    return cache_root() / "random" / f"{name}-seed{seed}-{hashlib.sha256(key.encode()).hexdigest()[:16]}.safetensors"


def _random_from_disk(lm: LoadedModel, seed: int) -> LoadedModel:
    """``random_init_like(lm, seed)``, its weights read back from the cache after the first time: initialising a
    270M-parameter model draws 270M normal numbers (4.4 s on one core), reading them back takes well under a
    second, so a worker can hold one copy at a time and still give each family its seeds. A model spread over
    devices (``--device-map``), or a cache that cannot be written, initialises every time."""
    from safetensors.torch import load_file, save_model
    if getattr(lm.model, "hf_device_map", None):
        return random_init_like(lm, seed)
    path = _random_file(lm, seed)
    spec = dataclasses.replace(lm.spec, id=f"{lm.spec.id}-random{seed}")
    if path.is_file():
        try:
            model = _assemble(lm.model, load_file(path, device=str(lm.device)))
            return _sibling(lm, spec, model)
        except Exception:  # noqa: BLE001 - a damaged or foreign cache file: initialise again and rewrite it
            pass
    rnd = random_init_like(lm, seed)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        save_model(rnd.model, str(tmp))
        os.replace(tmp, path)
    except OSError:
        pass
    return rnd


def _assemble(like: PreTrainedModel, weights: dict[str, torch.Tensor]) -> PreTrainedModel:
    """A model of ``like``'s class and config holding ``weights`` (no copy: the tensors are taken as they are),
    its buffers (rotary frequencies, which the config decides) shared with ``like``. Built on the meta device, so
    no memory is allocated but the weights'."""
    with torch.device("meta"):
        model = type(like)(like.config)
    shared: dict[int, list[str]] = {}  # names of one tensor (a tied embedding is kept once in the file)
    for name, t in like.named_parameters(remove_duplicate=False):
        shared.setdefault(id(t), []).append(name)
    weights = dict(weights)
    for names in shared.values():
        have = [n for n in names if n in weights]
        for n in names if have else []:
            weights.setdefault(n, weights[have[0]])
    model.load_state_dict(weights, strict=False, assign=True)
    model.tie_weights()
    for name, buf in like.named_buffers():
        owner, _, attr = name.rpartition(".")
        target = model.get_submodule(owner) if owner else model
        target._buffers[attr] = buf
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:
        raise ValueError(f"not in the file: {left[:3]}")
    return model.eval()


def random_copy(lm: LoadedModel, seed: int) -> LoadedModel:
    """:func:`random_init_like`, the worker's one copy at a time: the claims' untrained nulls share seeds (token
    order 0-4, head norms 0-2, recommender 0-2); each copy of a 270M-parameter model holds 1.1 GB, and the five a
    worker used to keep took it past 10 GB. Copies come back from the disk cache (:func:`_random_from_disk`).
    Callers must not modify the copy (claims only read it; tests that damage models use random_init_like), nor
    hold it across a call for another seed."""
    key = (lm.spec.id, seed, lm.dtype, str(lm.device))
    if key not in _RANDOM:
        _RANDOM.clear()
        _RANDOM[key] = _random_from_disk(lm, seed)
    return _RANDOM[key]


def forget_random_copies(keep: str | None = None) -> None:
    """Drop the random-init copies of every model but ``keep`` (the plugin calls this after each claim)."""
    for k in [k for k in _RANDOM if k[0] != keep]:
        del _RANDOM[k]


def return_memory(collect: bool = True) -> None:
    """Hand freed heap memory back to the system (glibc keeps what a process freed for its own reuse: after a
    270M-parameter model was released, a worker still held 0.5-1 GB it no longer used; after Gemma-3-270m's
    ioi.head_silencing, 0.7 GB). ``collect``: run the garbage collector first (cycles: figures, tracebacks); the
    trim alone takes 3-40 ms. No-op but the collection where glibc is not the allocator."""
    import gc
    if collect:
        gc.collect()
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
