"""Architecture adapters: where each named activation lives in a model, declared as data.

Claims and probes use *site names*, never module paths:

=============  =============================================================  ======
site           meaning                                                        shape
=============  =============================================================  ======
``heads``      per-(query-)head attention output, before the output           B,T,H,dh
               projection (the input of ``o_proj`` / ``c_proj``)
``mlp_pre``    MLP expansion, pre-activation (BERT: ``intermediate.dense``;   B,T,N
               gated MLPs: the gate's pre-activation ``gate_proj``)
``mlp_act``    the MLP neurons: post-activation (GPT-2 ``mlp.act``, BERT      B,T,N
               ``intermediate`` = GELU(dense)); gated MLPs: act(gate) * up,
               the input of the down projection
``mlp_out``    what the MLP writes to the residual stream (the output         B,T,D
               projection; Gemma 2/3 and OLMo 2: after their post-MLP norm)
``resid``      residual stream after the block (block output)                 B,T,D
``resid_pre``  residual stream entering the block (block input)               B,T,D
=============  =============================================================  ======

Each architecture is one :class:`Arch` row in :data:`ARCHS` (module paths relative to a block, as
TransformerLens's bridge maps canonical names to HF modules); :class:`Adapter` does the rest for all of them.
``pre`` sites are read from the module's input, ``post`` sites from its output. Hooks are registered by
:mod:`probes.hooks`.
"""
from __future__ import annotations

import copy
import inspect
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, cast

import torch
from torch import nn

from .errors import ProbeError

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def _get_path(root: nn.Module, path: str) -> Any:
    """The submodule at ``path`` (dotted attribute names; a number indexes a module list). Any: what a path names
    is known from the architecture's row only (a Linear's ``weight``, a norm's ``forward``, a block list)."""
    m = root
    for part in filter(None, path.split(".")):
        m = cast(nn.ModuleList, m)[int(part)] if part.isdigit() else getattr(m, part)
    return m


@dataclass(frozen=True)
class Arch:
    """Where things live in one architecture (paths relative to the base model, e.g. ``model.model``, and to
    one block)."""
    layers: str                              # base -> block list
    heads: str                               # block -> attention output projection (its input = per-head outputs)
    mlp_act: tuple[str, str]                 # block -> (module, "pre" | "post") holding the neuron activations
    down: str                                # block -> MLP output projection (neuron output weights)
    mlp_out: tuple[str, str]                 # block -> (module, where): what the MLP adds to the residual
    mlp_pre: tuple[str, str] | None = None   # block -> pre-activation (None: fused, e.g. Phi-3's gate_up_proj)
    final_norm: str | None = None            # base -> final norm (None: no LM head through the base)
    post_mlp_norm: tuple[str, float] | None = None  # block -> (norm after the MLP, weight offset: Gemma 1.0)
    conv1d: bool = False                     # GPT-2's Conv1D stores weights (in, out)
    abs_pos: str | None = None               # base -> absolute position embedding (zeroed in resumed passes)
    resume: bool = True                      # causal stack that can resume at a layer
    lm_head: str | None = None               # model -> MLM head taking the residual stream (BERT)
    attn_norm: str | None = None             # block -> norm before the attention (None: none, e.g. OLMo 2)
    v_proj: str | None = None                # block -> value projection (None: OV circuits not supported)
    qkv_fused: bool = False                  # v_proj is a fused q,k,v projection: V = its last kv_heads*dh outputs
    post_attn_norm: str | None = None        # block -> norm of the attention output (Gemma 2/3, OLMo 2)
    families: tuple[str, ...] = field(default_factory=tuple)  # which model families use this row (docs)


# the gated-MLP row (Llama and its descendants) and Gemma 2/3's, which adds norms after the attention and the MLP:
# the rows below are these with their families (and any difference) replaced
_GATED = Arch(layers="layers", heads="self_attn.o_proj", mlp_act=("mlp.down_proj", "pre"), down="mlp.down_proj",
              mlp_out=("mlp", "post"), mlp_pre=("mlp.gate_proj", "post"), final_norm="norm",
              attn_norm="input_layernorm", v_proj="self_attn.v_proj")
_GEMMA_POST = replace(_GATED, mlp_out=("post_feedforward_layernorm", "post"),
                      post_mlp_norm=("post_feedforward_layernorm", 1.0), post_attn_norm="post_attention_layernorm")

ARCHS: dict[str, Arch] = {
    "gpt2": Arch(layers="h", heads="attn.c_proj", mlp_act=("mlp.act", "post"), down="mlp.c_proj",
                 mlp_out=("mlp", "post"), mlp_pre=("mlp.c_fc", "post"), final_norm="ln_f", conv1d=True,
                 abs_pos="wpe", attn_norm="ln_1", v_proj="attn.c_attn", qkv_fused=True, families=("GPT-2",)),
    "gpt_neo": Arch(layers="h", heads="attn.attention.out_proj", mlp_act=("mlp.act", "post"), down="mlp.c_proj",
                    mlp_out=("mlp", "post"), mlp_pre=("mlp.c_fc", "post"), final_norm="ln_f", abs_pos="wpe",
                    attn_norm="ln_1", v_proj="attn.attention.v_proj", families=("GPT-Neo",)),
    "bert": Arch(layers="encoder.layer", heads="attention.output.dense", mlp_act=("intermediate", "post"),
                 down="output.dense", mlp_out=("output.dense", "post"), mlp_pre=("intermediate.dense", "post"),
                 resume=False, lm_head="cls", families=("BERT", "MiniLM")),
    "gpt_neox": Arch(layers="layers", heads="attention.dense", mlp_act=("mlp.act", "post"),
                     down="mlp.dense_4h_to_h", mlp_out=("mlp", "post"), mlp_pre=("mlp.dense_h_to_4h", "post"),
                     final_norm="final_layer_norm", families=("GPT-NeoX", "Pythia")),
    "llama": replace(_GATED, families=("Llama 2/3", "SmolLM2")),
    "mistral": replace(_GATED, families=("Mistral",)),
    "qwen2": replace(_GATED, families=("Qwen2", "Qwen2.5")),
    "qwen3": replace(_GATED, families=("Qwen3",)),
    "olmo": replace(_GATED, families=("OLMo",)),
    "olmo2": replace(_GEMMA_POST, post_mlp_norm=("post_feedforward_layernorm", 0.0), attn_norm=None,
                     families=("OLMo 2",)),
    "phi3": replace(_GATED, mlp_pre=None, v_proj="self_attn.qkv_proj", qkv_fused=True, families=("Phi-3",)),
    "gemma": replace(_GATED, families=("Gemma",)),
    "gemma2": replace(_GEMMA_POST, families=("Gemma 2",)),
    "gemma3_text": replace(_GEMMA_POST, families=("Gemma 3 (text)",)),
}


class Adapter:
    """Sizes, site modules, weights, logit lens and resumed passes of one loaded model, from its :class:`Arch`."""

    def __init__(self, model: PreTrainedModel, arch: str | None = None):
        self.model = model
        # Any: a transformers config holds its architecture's attributes (num_hidden_layers, head_dim, layer_types),
        # which PreTrainedConfig does not declare
        self.config: Any = model.config
        self.arch = arch or model.config.model_type
        if self.arch not in ARCHS:
            raise ProbeError(f"no architecture adapter for model_type {self.arch!r}; supported: {sorted(ARCHS)}. "
                             "Add a row to probes.adapters.ARCHS naming its modules.")
        self.spec = ARCHS[self.arch]
        self.base = model.base_model
        self.can_resume = self.spec.resume
        # the forward's name for a key/value cache: ``cache`` from transformers 5.24 on (``past_key_values`` is
        # deprecated there), ``past_key_values`` before
        self._cache_kw = "cache" if "cache" in inspect.signature(self.base.forward).parameters else "past_key_values"

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
        return getattr(self.config, "head_dim", None) or self.d_model // self.n_heads

    @property
    def d_mlp(self) -> int:
        return self.mlp_out_weight(0).shape[0]

    @property
    def sites(self) -> dict[str, tuple[str, str]]:
        s = self.spec
        out = {"heads": (s.heads, "pre"), "mlp_act": s.mlp_act, "mlp_out": s.mlp_out, "resid": ("", "post"),
               "resid_pre": ("", "pre")}
        if s.mlp_pre:
            out["mlp_pre"] = s.mlp_pre
        return out

    # modules -----------------------------------------------------------
    def blocks(self) -> nn.ModuleList:
        return _get_path(self.base, self.spec.layers)

    def block(self, layer: int) -> nn.Module:
        return self.blocks()[layer]

    def module(self, site: str, layer: int) -> tuple[nn.Module, str]:
        if site not in self.sites:
            raise ProbeError(f"site {site!r} is not defined for {self.arch}; known sites: {sorted(self.sites)}")
        if not 0 <= layer < self.n_layers:
            raise ProbeError(f"layer {layer} out of range for {self.arch} with {self.n_layers} layers (0..{self.n_layers - 1})")
        path, where = self.sites[site]
        return _get_path(self.block(layer), path), where

    def mlp_out_weight(self, layer: int) -> torch.Tensor:
        """Neuron output weights, shape (N neurons, D): row n is the direction neuron n writes to the residual
        stream (through a post-MLP norm's elementwise scale where the architecture has one)."""
        blk = self.block(layer)
        w = _get_path(blk, self.spec.down).weight
        w = w if self.spec.conv1d else w.T
        if self.spec.post_mlp_norm:
            name, offset = self.spec.post_mlp_norm
            w = w * (offset + _get_path(blk, name).weight)[None, :]
        return w

    def embed_matrix(self) -> torch.Tensor:
        return cast(torch.Tensor, self.model.get_input_embeddings().weight)  # an embedding's weight, not a submodule

    def unembed_matrix(self) -> torch.Tensor | None:
        out = self.model.get_output_embeddings()
        return None if out is None else out.weight

    def final_norm(self) -> nn.Module | None:
        return _get_path(self.base, self.spec.final_norm) if self.spec.final_norm else None

    @property
    def softcap(self) -> float | None:
        return getattr(self.config, "final_logit_softcapping", None)

    @property
    def n_kv_heads(self) -> int:
        return getattr(self.config, "num_key_value_heads", None) or self.n_heads

    # OV circuits -------------------------------------------------------
    @torch.no_grad()
    def head_ov(self, layer: int, x: torch.Tensor) -> torch.Tensor:
        """(H, N, D): what each head of ``layer`` writes to the residual stream when it attends entirely to a
        position holding ``x`` (N, D): its OV circuit, O_h V_h norm(x), with the value bias and (Gemma 2/3, OLMo 2)
        the post-attention norm applied to the head's output alone; the output projection's bias, shared by all
        heads, is left out. Grouped-query heads read their key/value head's values."""
        s = self.spec
        if not s.v_proj:
            raise ProbeError(f"OV circuits are not supported for {self.arch} (its value projection is not declared "
                             "in probes.adapters.ARCHS: add v_proj, attn_norm and post_attn_norm to its row)")
        blk = self.block(layer)
        h = _get_path(blk, s.attn_norm)(x) if s.attn_norm else x
        H, KV, dh = self.n_heads, self.n_kv_heads, self.head_dim
        v = _get_path(blk, s.v_proj)(h)
        if s.qkv_fused:
            v = v[..., -KV * dh:]
        v = v.reshape(len(x), KV, dh)[:, torch.arange(H) // (H // KV)]  # (N, H, dh)
        w = _get_path(blk, s.heads).weight
        w = (w if s.conv1d else w.T).reshape(H, dh, -1)  # (H, dh, D)
        out = torch.einsum("nhd,hdo->hno", v, w)
        if s.post_attn_norm:
            out = _get_path(blk, s.post_attn_norm)(out)
        return out

    # logits ------------------------------------------------------------
    def logits_from_normed(self, h: torch.Tensor) -> torch.Tensor:
        """Full logits from final-normed hidden states (bias and Gemma 2's soft-capping as the model applies them)."""
        head = self.model.get_output_embeddings()
        logits = head(h)
        if self.softcap:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    def logits_from_resid(self, resid: torch.Tensor) -> torch.Tensor:
        """Logit lens: residual stream -> final norm -> unembedding (-> soft-cap): reproduces the model's logits
        when given the last block's output."""
        if self.spec.lm_head:
            head = getattr(self.model, self.spec.lm_head, None)
            if head is None:
                raise ProbeError("this BERT model has no MLM head (e.g. the sentence-transformers MiniLM): "
                                 "logit-based claims apply to masked LMs such as bert-large-uncased")
            return head(resid)
        if self.unembed_matrix() is None:
            raise ProbeError(f"{self.arch} model has no unembedding (no LM head): logit-based claims need a causal "
                             "or masked LM")
        norm = self.final_norm()
        return self.logits_from_normed(norm(resid) if norm is not None else resid)

    def logit_diff(self, h: torch.Tensor, target: torch.Tensor | int, foil: torch.Tensor | int) -> torch.Tensor:
        """logit(target) - logit(foil) from final-normed hidden states ``h`` (..., D), reading only the two rows
        of the unembedding (never the full vocabulary: Gemma's is 262k x 640). ``target``/``foil``: ids, scalars
        or one per row of ``h``."""
        head = self.model.get_output_embeddings()
        U = head.weight
        t, f = torch.as_tensor(target, device=h.device), torch.as_tensor(foil, device=h.device)
        h = h.float()
        if not self.softcap:
            d = (h * (U[t] - U[f]).float()).sum(-1)
            if getattr(head, "bias", None) is not None:
                d = d + (head.bias[t] - head.bias[f]).float()
            return d
        lt, lf = (h * U[t].float()).sum(-1), (h * U[f].float()).sum(-1)
        if getattr(head, "bias", None) is not None:
            lt, lf = lt + head.bias[t].float(), lf + head.bias[f].float()
        c = self.softcap
        return torch.tanh(lt / c) * c - torch.tanh(lf / c) * c

    # resumed passes ----------------------------------------------------
    @contextmanager
    def resume_from(self, layer: int, stop: int | None = None):
        """Within this context, :meth:`body` runs blocks ``layer..L-1`` only, starting from a given residual
        stream (exact: earlier blocks are not recomputed). Per-layer config lists (Gemma's and Qwen's
        ``layer_types``: sliding-window vs global attention) are sliced alike; rotary positions follow from the
        key/value cache of a shared prefix; absolute position embeddings (GPT-2) are zeroed, the residual
        already holds them. ``stop``: blocks ``layer..stop-1`` only, for passes that read nothing above them (the
        final hidden state is then not the model's)."""
        if not self.can_resume:
            raise ProbeError(f"{self.arch}: resuming a forward pass at a layer is not supported")
        parent_path, _, attr = self.spec.layers.rpartition(".")
        parent = _get_path(self.base, parent_path)
        blocks = getattr(parent, attr)
        types = getattr(self.config, "layer_types", None)
        setattr(parent, attr, nn.ModuleList(list(blocks)[layer:stop]))  # same block objects: hooks on them still fire
        handles = []
        if self.spec.abs_pos:
            pos = _get_path(self.base, self.spec.abs_pos)
            handles.append(pos.register_forward_hook(lambda m, i, o: torch.zeros_like(o)))
        try:
            if types is not None:
                self.config.__dict__["layer_types"] = list(types)[layer:stop]
            yield
        finally:
            setattr(parent, attr, blocks)
            if types is not None:
                self.config.__dict__["layer_types"] = types
            for h in handles:
                h.remove()

    @contextmanager
    def attention_output(self, layer: int, z: torch.Tensor):
        """Within this context block ``layer``'s attention is not computed: the module returns its output projection
        of ``z`` (B, T, H, dh), per-head outputs computed earlier (a clean pass's), and hooks on the projection
        (an edit of the heads) still apply. For resumed passes whose edits start at the heads of ``layer``: their
        queries, keys and values there equal the clean pass's. The layer's key/value cache is not extended (no
        later layer reads it). Enter it before :meth:`resume_from` (which renumbers the blocks)."""
        attn_path, _, proj_name = self.spec.heads.rpartition(".")
        attn = _get_path(self.block(layer), attn_path)
        proj = getattr(attn, proj_name)
        flat = z.reshape(*z.shape[:2], -1)
        own = attn.__dict__.get("forward")  # a wrapper already set on the instance (accelerate's, --device-map)
        attn.forward = lambda *args, **kwargs: (proj(flat), None)  # the (output, attention weights) pair
        try:
            yield
        finally:
            if own is None:
                del attn.forward
            else:
                attn.forward = own

    def prefix_cache(self, ids: torch.Tensor):
        """A key/value cache of ``ids`` (every layer) from a forward of the base model: the shared prefix that
        :meth:`body` continues."""
        out = self.base(input_ids=ids, use_cache=True)
        return out["cache"] if "cache" in out.keys() else out["past_key_values"]

    def acts_and_prefix_cache(self, ids: torch.Tensor, keep: int):
        """One forward of ``ids`` through the base model (hooks around it see every position) and the key/value
        cache of its first ``keep`` positions, cut from that pass's cache: the shared prefix costs no pass of its
        own. None when ``keep`` is 0 or covers every position, or when a sliding-window layer may have dropped
        those positions (a window not longer than ``ids``): the caller then takes :meth:`prefix_cache` of the
        prefix alone."""
        T = ids.shape[1]
        window = getattr(self.config, "sliding_window", None)
        if not 0 < keep < T or (window and T >= window - 1):
            self.base(input_ids=ids)
            return None
        out = self.base(input_ids=ids, use_cache=True)
        cache = out["cache"] if "cache" in out.keys() else out["past_key_values"]
        cache.crop(keep - T)  # a negative count: remove the last T - keep positions
        return cache

    @staticmethod
    def tile_cache(cache, k: int, interleave: bool = False, first_layer: int = 0):
        """A copy of a key/value cache with its batch repeated ``k`` times as blocks (row j*P + p = prompt p), or
        with ``interleave`` each row ``k`` times in place (row j*k + i = row j). ``first_layer``: the layers before
        it keep the original's untiled tensors, unread by a pass resumed at ``first_layer`` (a pass only rebinds a
        layer's tensors, never writes into them)."""
        tensors = [t for layer in getattr(cache, "layers", []) for t in (getattr(layer, "keys", None),
                                                                       getattr(layer, "values", None))
                   if isinstance(t, torch.Tensor)]
        c = copy.deepcopy(cache, {id(t): t for t in tensors})  # the structure copied, the tensors shared
        for i, layer in enumerate(getattr(c, "layers", [])):
            if i < first_layer:
                continue
            for name in ("keys", "values"):
                t = getattr(layer, name, None)
                if isinstance(t, torch.Tensor) and t.numel():
                    setattr(layer, name, t.repeat_interleave(k, dim=0) if interleave else
                            t.repeat(k, *([1] * (t.dim() - 1))))
        return c

    def body(self, resid: torch.Tensor, cache=None, last_only: bool = False) -> torch.Tensor:
        """Final-normed hidden states from ``resid`` entering the first block (use inside resume_from).
        ``cache``: a key/value cache of the positions before ``resid`` (:meth:`prefix_cache`), for continuing a
        sequence whose prefix is shared by every row. ``last_only``: only the last position's, (B, D); the last
        block then runs its attention output projection and its MLP at that position alone (keys and values are
        still computed at every position), so an edit hooked inside the last block's MLP sees one position."""
        kw = {} if cache is None else {self._cache_kw: cache}
        with self._last_position() if last_only else nullcontext():
            h = self.base(inputs_embeds=resid, use_cache=cache is not None, **kw).last_hidden_state
        return h[:, -1] if last_only else h

    @contextmanager
    def _last_position(self):
        """The last block's attention output projection and MLP take the last position only. Their outputs (one
        position) broadcast over the residual stream's positions when added to it: the last position is exact,
        the others are not meaningful (the final hidden state is read at the last position only). Hooks
        registered here run after those an edit registered earlier on the same module (an edited head's output
        is edited at every position, then cut)."""
        block = self.blocks()[-1]  # also inside resume_from (the block list is then a slice ending at the same block)

        def cut(module, args):
            return (args[0][:, -1:], *args[1:]) if args and args[0].dim() == 3 else None  # keyword calls: untouched
        hooks = [_get_path(block, path).register_forward_pre_hook(cut)
                 for path in (self.spec.heads, self.spec.down.rpartition(".")[0])]
        try:
            yield
        finally:
            for h in hooks:
                h.remove()


def adapter_for(model: PreTrainedModel) -> Adapter:
    return Adapter(model)


def supported() -> dict[str, tuple[str, ...]]:
    """model_type -> model families, for docs and error messages."""
    return {k: v.families for k, v in ARCHS.items()}
