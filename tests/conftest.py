"""Helpers for the unit tests: small randomly initialised models built from the real configs."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fixtures.real_configs import CONFIGS  # noqa: F401 - tests import it from here


NARROW_DH = 32  # head width of the narrowed configs


def narrowed(d: dict) -> dict:
    """A >1B config made narrow for the probe tests: every head count, the key/value grouping, the norms, rotary
    settings, soft-capping, sliding windows and layer kinds as in the real config; head_dim 32, the residual
    width (heads x 32) and the MLP width (4 x that) scaled down. Smaller configs come back unchanged."""
    D = d.get("hidden_size") or d.get("n_embd")
    if D <= 1024:
        return d
    d = dict(d)
    H = d.get("num_attention_heads") or d.get("n_head") or d.get("num_heads")
    d["hidden_size" if "hidden_size" in d else "n_embd"] = H * NARROW_DH
    if "head_dim" in d:
        d["head_dim"] = NARROW_DH
    d["intermediate_size" if "intermediate_size" in d else "n_inner"] = 4 * H * NARROW_DH
    return d


def real_config(name: str, n_layers: int = 2, narrow: bool = False):
    """The real hub config of ``name`` with fewer layers (all other sizes real); ``narrow``: :func:`narrowed`."""
    from transformers import AutoConfig

    from fixtures.real_configs import shortened
    d = shortened(name, n_layers)
    if d.get("vocab_size", 0) * d.get("hidden_size", 0) > 60_000_000:  # 7B / 256k-vocabulary configs: a smaller
        d["vocab_size"] = 4096                                     # vocabulary keeps tests fast (all else real)
        for k in ("pad_token_id", "bos_token_id", "eos_token_id"):
            if isinstance(d.get(k), int) and d[k] >= 4096:
                d[k] = None
    if narrow:
        d = narrowed(d)
    mt = d.pop("model_type")
    return AutoConfig.for_model(mt, **d)


def random_model(name: str, n_layers: int = 2, seed: int = 0, narrow: bool = False):
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM
    torch.manual_seed(seed)
    cfg = real_config(name, n_layers, narrow)
    cfg._attn_implementation = "eager"
    cls = AutoModelForMaskedLM if cfg.model_type == "bert" else AutoModelForCausalLM
    return cls.from_config(cfg).eval()


def random_lm(name: str, n_layers: int = 2, seed: int = 0, narrow: bool = False):
    """A LoadedModel (no tokenizer) around a random model built from a real config, for probe-level tests."""
    from probes.adapters import adapter_for
    from probes.loading import LoadedModel
    from probes.registry import ModelSpec
    m = random_model(name, n_layers, seed, narrow)
    spec = ModelSpec(id=f"{name}-random", source="local", kind="causal", families=[])
    return LoadedModel(spec, m, None, adapter_for(m), torch.device("cpu"), torch.float32)


@pytest.fixture(scope="session")
def small_models():
    return {n: random_model(n) for n in ("gpt2", "gpt2-large", "gpt-neo-125m", "bert-large-uncased")}


@pytest.fixture(scope="session")
def versions(tmp_path_factory):
    """gpt2-organism with every weight x (1 + 0.02 N(0,1)) ("drifted") and x (1 + 1.0 N(0,1)) ("damaged"),
    written as scripts/perturb.py writes them."""
    import sys
    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "scripts"))
    from perturb import perturb

    from probes.loading import load
    from fixtures.models import resolve
    tmp = tmp_path_factory.mktemp("versions")
    out = {}
    for name, noise in (("drifted", 0.02), ("damaged", 1.0)):
        lm = load(resolve("gpt2-organism"), device="cpu")
        perturb(lm.model, noise, seed=0)
        lm.model.save_pretrained(tmp / name)
        lm.tokenizer.save_pretrained(tmp / name)
        out[name] = tmp / name
    return out
