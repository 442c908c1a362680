"""Helpers for the unit tests: small randomly initialised models built from the real configs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

CONFIGS = Path(__file__).resolve().parents[1] / "fixtures" / "configs"


def real_config(name: str, n_layers: int = 2):
    """The real hub config of ``name`` with fewer layers (all other sizes real)."""
    from transformers import AutoConfig
    d = json.loads((CONFIGS / f"{name}.json").read_text())
    if d["model_type"] == "gpt2":
        d["n_layer"] = n_layers
    elif d["model_type"] == "gpt_neo":
        d["num_layers"] = n_layers
        d["attention_types"] = [[["global", "local"], n_layers // 2]]
        d["attention_layers"] = ["global", "local"] * (n_layers // 2)
    else:
        d["num_hidden_layers"] = n_layers
    mt = d.pop("model_type")
    return AutoConfig.for_model(mt, **d)


def random_model(name: str, n_layers: int = 2, seed: int = 0):
    from transformers import AutoModelForCausalLM, AutoModelForMaskedLM
    torch.manual_seed(seed)
    cfg = real_config(name, n_layers)
    cfg._attn_implementation = "eager"
    cls = AutoModelForMaskedLM if cfg.model_type == "bert" else AutoModelForCausalLM
    return cls.from_config(cfg).eval()


@pytest.fixture(scope="session")
def small_models():
    return {n: random_model(n) for n in ("gpt2", "gpt2-large", "gpt-neo-125m", "bert-large-uncased")}
