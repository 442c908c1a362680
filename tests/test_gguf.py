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

from probes import access

from probes import gguf as G
from probes.errors import ModelLoadError, UnknownModelError
from fixtures.models import registry, resolve

ROOT = Path(__file__).resolve().parents[1]
SMOL = registry()["smollm2-135m"]


def smol_file() -> Path:
    try:
        return access.gguf_file(SMOL)
    except UnknownModelError as e:
        pytest.skip(f"the packaged SmolLM2 GGUF is not installed here: {e}")


def test_packaged_entries_pin_their_files():
    reg = registry()
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
    code = ("import sys; from probes import gguf as G; from probes.log import log; "
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


@pytest.mark.parametrize("damage", ["truncated", "not_gguf"])
def test_a_bad_gguf_file_is_a_usage_error_naming_it(tmp_path, damage):
    """`--models file.gguf` on a truncated download or on a file that is not GGUF at all: a usage error that names
    the file and the fix (no INTERNALERROR), and nothing is left in the cache."""
    bad = tmp_path / "model.gguf"
    if damage == "truncated":
        with open(smol_file(), "rb") as f:
            bad.write_bytes(f.read(8 << 20))  # the header and the first 8 MiB of tensors
        why = "is truncated or damaged"
    else:
        bad.write_text("<html>404 Not Found</html>\n")  # e.g. an error page saved under the model's name
        why = "is not a GGUF file (it starts with b'<htm'"
    cache = tmp_path / "cache"
    r = subprocess.run([sys.executable, "-m", "pytest", "claims/test_ioi.py", "-p", "no:cacheprovider", "-p",
                        "no:xdist", "-o", "addopts=", "-q", "--models", str(bad), f"--artifacts={tmp_path / 'art'}"],
                       cwd=ROOT, env=dict(os.environ, **{G.CACHE_ENV: str(cache)}), capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 4 and "INTERNALERROR" not in r.stdout + r.stderr, (r.stdout + r.stderr)[-3000:]
    assert why in r.stderr and str(bad) in r.stderr, r.stderr[-2000:]
    assert not [p for p in cache.rglob("*") if p.suffix != ".lock"]


def test_an_incomplete_cache_folder_is_converted_again_and_kept(tmp_path, monkeypatch):
    """A converted folder that lost model.safetensors (a full disk, a hand clean-up) is set aside, renamed, never
    deleted, and the model converted again; the message names both folders."""
    monkeypatch.setenv(G.CACHE_ENV, str(tmp_path / "cache"))
    f = smol_file()
    calls, logs = [], []

    def fake_convert(path, out):  # the real conversion is tested above; here only the cache logic
        calls.append(path)
        for name in ("config.json", "model.safetensors"):
            (out / name).write_text("{}")
    monkeypatch.setattr(G, "_convert", fake_convert)
    monkeypatch.setattr(G, "quantisation", lambda p: "MOSTLY_Q4_1")
    folder = G.converted_folder("smol", f, SMOL.gguf_sha256, logs.append)
    assert G.converted_folder("smol", f, SMOL.gguf_sha256, logs.append) == folder and len(calls) == 1
    (folder / "model.safetensors").unlink()
    assert G.converted_folder("smol", f, SMOL.gguf_sha256, logs.append) == folder and len(calls) == 2
    aside = [p for p in folder.parent.iterdir() if p.name.startswith(f".{folder.name}.incomplete-")]
    assert len(aside) == 1 and (aside[0] / "source.json").is_file()  # kept, not deleted
    assert any("missing model.safetensors" in m and aside[0].name in m for m in logs), logs
