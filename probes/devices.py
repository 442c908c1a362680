"""Devices and dtypes: which device and dtype a run asks for (``--device``, ``--dtype``, checked before anything
loads), whether this CPU computes half precision natively, and how many tokens a batched pass may hold on a device
(``--max-batch-tokens``)."""
from __future__ import annotations

import os
from typing import Any

import torch

from .errors import ModelLoadError, did_you_mean

DTYPES = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
          "float16": torch.float16, "fp16": torch.float16}


CPU_BATCH_CAP = 8192  # on a CPU larger batches gain nothing (GEMMs reach the limit from ~1k rows) and cost memory
GPU_BATCH_CAP = 1 << 16


def free_memory(device: torch.device) -> int:
    """Bytes this process may still use on ``device``: the GPU's free memory, or the system's available memory
    shared among the xdist workers of a run."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as f:
            avail = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemAvailable:"))
    except (OSError, StopIteration):
        avail = 8 << 30
    return avail // max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1))


def batch_tokens(model, device: torch.device, dtype: torch.dtype, cap: int | None = None,
                 free: int | None = None) -> int:
    """Tokens per batched pass that fit a third of ``free`` (default :func:`free_memory`): each token of a batch
    holds the residual stream and the per-head outputs recorded at every layer (what patching keeps), one block's
    activations (attention in and out, the MLP's hidden layer twice) and one layer's eager attention scores over
    a 512-token context. At least 256; at most ``cap`` (``--max-batch-tokens``), or 8192 on a CPU and 65536 on
    a GPU. Batch sizes change no number beyond float rounding (tests/test_batch_sizes.py)."""
    c = model.config
    c = getattr(c, "text_config", None) or c
    d = _config_size(c, ("hidden_size", "n_embd"), 768)
    f = _config_size(c, ("intermediate_size", "n_inner"), 4 * d)
    L = _config_size(c, ("num_hidden_layers", "n_layer", "num_layers"), 12)
    H = _config_size(c, ("num_attention_heads", "n_head", "num_heads"), 12)
    per_token = torch.tensor([], dtype=dtype).element_size() * (2 * L * d + 4 * d + 2 * f + H * 512)
    free = free_memory(device) if free is None else free
    fits = int(free / 3 / per_token)
    limit = cap or (GPU_BATCH_CAP if device.type == "cuda" else CPU_BATCH_CAP)
    return max(256, min(fits, limit))


def _config_size(config: Any, names: tuple[str, ...], default: int) -> int:
    """The first of ``names`` (one size under the names of different architectures) that ``config`` sets to a
    nonzero value, else ``default``."""
    for name in names:
        if value := getattr(config, name, None):
            return value
    return default


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: CUDA when available, else CPU. Under pytest-xdist on a machine with several GPUs, worker gwN takes
    GPU N mod (number of GPUs), so that the workers (one model each, see probes/plugin.py) spread over the GPUs."""
    if name == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        worker = os.environ.get("PYTEST_XDIST_WORKER", "")
        n = torch.cuda.device_count()
        return torch.device(f"cuda:{int(worker[2:]) % n}" if worker.startswith("gw") and n > 1 else "cuda")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"--device {name} requested but torch.cuda.is_available() is False "
                             f"(torch {torch.__version__}); use --device cpu or install a CUDA build of torch")
    return torch.device(name)


def check_device_name(name: str) -> None:
    """--device must be auto, cpu, cuda or cuda:N (checked before anything loads)."""
    import re
    known = r"auto|cpu|cuda(:\d+)?|mps"
    if not re.fullmatch(known, name):
        alt = name.strip().lower().replace("gpu", "cuda")  # GPU, gpu:1, CPU
        hint = f"; did you mean {alt!r}?" if re.fullmatch(known, alt) else \
            did_you_mean(alt, ("auto", "cpu", "cuda", "cuda:0", "mps"))
        raise ModelLoadError(f"--device {name!r} is not a device; use auto, cpu, cuda or cuda:N{hint}")


def pick_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        raise ModelLoadError(f"--dtype {name!r} unknown; use one of {sorted(DTYPES)}{did_you_mean(name, DTYPES)}")
    return DTYPES[name]


def native_half(dtype: str) -> bool:
    """Whether this CPU computes ``dtype`` (bfloat16 / float16) natively through oneDNN (AVX512-BF16 or AMX,
    AVX512-FP16): there half precision runs about as fast as float32 or faster; elsewhere it is emulated."""
    try:
        ops = torch.ops.mkldnn
        return bool(ops._is_mkldnn_bf16_supported() if dtype == "bfloat16" else ops._is_mkldnn_fp16_supported())
    except (AttributeError, RuntimeError):
        return False
