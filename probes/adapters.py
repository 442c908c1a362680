"""Architecture adapters: where each named activation lives in a model.

Claims and probes use *site names*, never module paths:

=============  =============================================================  ======
site           meaning                                                        shape
=============  =============================================================  ======
``heads``      per-head attention output, before the output projection        B,T,H,dh
``mlp_pre``    MLP expansion, pre-activation (BERT: ``intermediate.dense``)   B,T,N
``mlp_act``    MLP expansion, post-activation (GPT-2 ``mlp.act``, BERT        B,T,N
               ``intermediate`` output = GELU(dense))
``mlp_out``    MLP output projection (before the residual add)                B,T,D
``resid``      residual stream after the block (block output)                 B,T,D
``resid_pre``  residual stream entering the block (block input)               B,T,D
=============  =============================================================  ======

Hooks are registered by :mod:`probes.hooks`; ``pre`` sites are read from the
module's input, ``post`` sites from its output.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .errors import ProbeError


@dataclass(frozen=True)
class Site:
    module: Callable[[nn.Module, int], nn.Module]  # (model, layer) -> module
    where: str  # "pre" (module input[0]) or "post" (module output)


class Adapter:
    arch: str = "?"
    sites: dict[str, Site] = {}

    def __init__(self, model: nn.Module):
        self.model = model
        self.config = model.config

    # sizes -------------------------------------------------------------
    @property
    def n_layers(self) -> int:
        return self.config.num_hidden_layers

    @property
    def n_heads(self) -> int:
        return self.config.num_attention_heads

    @property
    def d_model(self) -> int:
        return self.config.hidden_size

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def d_mlp(self) -> int:
        return self.mlp_out_weight(0).shape[0]

    # modules -----------------------------------------------------------
    def module(self, site: str, layer: int) -> tuple[nn.Module, str]:
        if site not in self.sites:
            raise ProbeError(f"site {site!r} is not defined for {self.arch}; known sites: {sorted(self.sites)}")
        if not 0 <= layer < self.n_layers:
            raise ProbeError(f"layer {layer} out of range for {self.arch} with {self.n_layers} layers (0..{self.n_layers - 1})")
        s = self.sites[site]
        return s.module(self.model, layer), s.where

    def mlp_out_weight(self, layer: int) -> torch.Tensor:
        """Neuron output weights, shape (N neurons, D): row n is what neuron n writes."""
        raise ProbeError(f"the {self.arch} adapter does not say where the MLP output weights live: define "
                         "mlp_out_weight in its Adapter subclass")

    def embed_matrix(self) -> torch.Tensor:
        return self.model.get_input_embeddings().weight

    def unembed_matrix(self) -> torch.Tensor | None:
        out = self.model.get_output_embeddings()
        return None if out is None else out.weight

    def final_norm(self) -> nn.Module | None:
        return None

    can_resume = False

    @contextmanager
    def resume_from(self, layer: int):
        """Within this context, :meth:`body` runs blocks ``layer..L-1`` only, starting from a given residual
        stream (exact: earlier blocks are not recomputed). Architectures without it raise."""
        raise ProbeError(f"{self.arch}: resuming a forward pass at a layer is not supported")
        yield  # pragma: no cover

    def body(self, resid: torch.Tensor) -> torch.Tensor:
        """Final-normed hidden states from ``resid`` entering the first block (use inside resume_from)."""
        raise ProbeError(f"{self.arch}: body() is not supported")

    def logits_from_resid(self, resid: torch.Tensor) -> torch.Tensor:
        """Logit lens: residual stream -> final norm -> unembedding."""
        W = self.unembed_matrix()
        if W is None:
            raise ProbeError(f"{self.arch} model has no unembedding (no LM head): logit-based claims need a causal or masked LM")
        norm = self.final_norm()
        h = norm(resid) if norm is not None else resid
        return h @ W.T


def _gpt2_block(m, i):
    return m.transformer.h[i]


class GPT2Adapter(Adapter):
    arch = "gpt2"
    sites = {
        "heads": Site(lambda m, i: _gpt2_block(m, i).attn.c_proj, "pre"),
        "mlp_pre": Site(lambda m, i: _gpt2_block(m, i).mlp.c_fc, "post"),
        "mlp_act": Site(lambda m, i: _gpt2_block(m, i).mlp.act, "post"),
        "mlp_out": Site(lambda m, i: _gpt2_block(m, i).mlp, "post"),
        "resid": Site(_gpt2_block, "post"),
        "resid_pre": Site(_gpt2_block, "pre"),
    }
    can_resume = True

    def mlp_out_weight(self, layer):
        return self.model.transformer.h[layer].mlp.c_proj.weight  # Conv1D: (N, D) already

    def final_norm(self):
        return self.model.transformer.ln_f

    @contextmanager
    def resume_from(self, layer: int):
        tr = self.model.transformer
        blocks = tr.h
        tr.h = nn.ModuleList(list(blocks)[layer:])  # same block objects: hooks on them still fire
        zero_pos = tr.wpe.register_forward_hook(lambda m, i, o: torch.zeros_like(o))  # resid already has them
        try:
            yield
        finally:
            tr.h = blocks
            zero_pos.remove()

    def body(self, resid, past_key_values=None):
        """``past_key_values``: a cache of the positions before ``resid`` from a full forward (all layers), for
        continuing a sequence whose prefix is shared by every row."""
        if past_key_values is None:
            return self.model.transformer(inputs_embeds=resid, use_cache=False).last_hidden_state
        return self.model.transformer(inputs_embeds=resid, past_key_values=past_key_values,
                                      use_cache=True).last_hidden_state


class GPTNeoAdapter(GPT2Adapter):
    arch = "gpt_neo"
    sites = {
        "heads": Site(lambda m, i: _gpt2_block(m, i).attn.attention.out_proj, "pre"),
        "mlp_pre": Site(lambda m, i: _gpt2_block(m, i).mlp.c_fc, "post"),
        "mlp_act": Site(lambda m, i: _gpt2_block(m, i).mlp.act, "post"),
        "mlp_out": Site(lambda m, i: _gpt2_block(m, i).mlp, "post"),
        "resid": Site(_gpt2_block, "post"),
        "resid_pre": Site(_gpt2_block, "pre"),
    }

    def mlp_out_weight(self, layer):
        return self.model.transformer.h[layer].mlp.c_proj.weight.T  # nn.Linear: (D, N)


def _bert_layer(m, i):
    return m.base_model.encoder.layer[i]


class BertAdapter(Adapter):
    arch = "bert"
    sites = {
        "heads": Site(lambda m, i: _bert_layer(m, i).attention.output.dense, "pre"),
        "mlp_pre": Site(lambda m, i: _bert_layer(m, i).intermediate.dense, "post"),
        "mlp_act": Site(lambda m, i: _bert_layer(m, i).intermediate, "post"),
        "mlp_out": Site(lambda m, i: _bert_layer(m, i).output.dense, "post"),
        "resid": Site(_bert_layer, "post"),
        "resid_pre": Site(_bert_layer, "pre"),
    }

    def mlp_out_weight(self, layer):
        return _bert_layer(self.model, layer).output.dense.weight.T

    def logits_from_resid(self, resid):
        head = getattr(self.model, "cls", None)
        if head is None:
            raise ProbeError("this BERT model has no MLM head (e.g. the sentence-transformers MiniLM): "
                             "logit-based claims apply to masked LMs such as bert-large-uncased")
        return head(resid)


ADAPTERS = {"gpt2": GPT2Adapter, "gpt_neo": GPTNeoAdapter, "bert": BertAdapter}


def adapter_for(model: nn.Module) -> Adapter:
    mt = model.config.model_type
    if mt not in ADAPTERS:
        raise ProbeError(f"no architecture adapter for model_type {mt!r}; supported: {sorted(ADAPTERS)}. "
                         "Add a subclass of probes.adapters.Adapter naming its modules and register it in ADAPTERS.")
    return ADAPTERS[mt](model)
