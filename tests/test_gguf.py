"""GGUF models: the packaged file is located through package metadata, hash-checked, dequantised once into the
cache (one converter when several workers start at once, the folder appearing atomically), and --models takes a
GGUF file or a folder holding one."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from probes import gguf as G
from probes.errors import ModelLoadError, UnknownModelError
from probes.registry import load_registry, resolve

ROOT = Path(__file__).resolve().parents[1]
SMOL = load_registry()["smollm2-135m"]


def smol_file() -> Path:
    try:
        return SMOL.gguf_file()
    except UnknownModelError as e:
        pytest.skip(f"the packaged SmolLM2 GGUF is not installed here: {e}")


def test_packaged_entries_pin_their_files():
    reg = load_registry()
    for mid in ("smollm2-135m", "gemma3-270m"):
        s = reg[mid]
        assert s.tier == "packaged" and s.kind == "causal" and len(s.gguf_sha256) == 64
    assert reg["gemma3-270m"].gguf_sha256.startswith("a5fd3b62") and len(reg["gemma3-270m"].gguf_parts) == 4


def test_models_accepts_a_gguf_file_or_a_folder_holding_one(tmp_path):
    f = smol_file()
    (tmp_path / "one").mkdir()
    (tmp_path / "one" / "m.gguf").symlink_to(f)
    for entry in (str(f), str(tmp_path / "one")):
        s = resolve(entry)
        assert (s.source, s.kind) == ("gguf", "causal") and Path(s.path).suffix == ".gguf"
    (tmp_path / "one" / "n.gguf").symlink_to(f)
    with pytest.raises(UnknownModelError, match="2 GGUF files"):
        resolve(str(tmp_path / "one"))
    with pytest.raises(UnknownModelError, match="does not exist"):
        resolve(str(tmp_path / "missing.gguf"))


def test_wrong_hash_is_refused_and_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv(G.CACHE_ENV, str(tmp_path / "cache"))
    with pytest.raises(ModelLoadError, match="sha256.*reinstall the package"):
        G.converted_folder("smol", smol_file(), "0" * 64, lambda m: None)
    assert not [p for p in (tmp_path / "cache").iterdir() if not p.name.endswith(".lock")]


def test_concurrent_workers_convert_once(tmp_path):
    """Two processes ask for the same model at once: one converts under the lock, the other waits and reuses it."""
    f = smol_file()
    code = ("import sys; from probes import gguf as G; from probes.loading import log; "
            f"print(G.converted_folder('smol', {str(f)!r}, {SMOL.gguf_sha256!r}, log))")
    env = dict(os.environ, **{G.CACHE_ENV: str(tmp_path / "cache")})
    procs = [subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    folders = {o.strip() for o, _ in outs}
    assert len(folders) == 1
    assert sum("dequantising" in e for _, e in outs) == 1  # converted once
    folder = Path(folders.pop())
    src = json.loads((folder / "source.json").read_text())
    assert src["gguf_sha256"] == SMOL.gguf_sha256 and src["quantisation"] == "MOSTLY_Q4_1"
    cfg = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in cfg and cfg["num_hidden_layers"] == 30
    assert (folder / "model.safetensors").exists() and not list(folder.parent.glob(".smol-*"))  # no temp left
