"""GGUF models: locate a packaged GGUF file, verify its hash, and convert it once into a safetensors folder.

transformers loads a GGUF file with ``from_pretrained(folder, gguf_file=name)`` by dequantising every tensor
to float (tens of seconds to minutes on 2 cores). The dequantised model is written once to a cache folder
(``$INTERP_CLAIMS_CACHE``, default ``~/.cache/interp-claims``) as ``model.safetensors`` + ``config.json``
(without its quantisation entry: transformers refuses ``save_pretrained`` on a GGUF-loaded model) + tokenizer
files + ``source.json`` (file name, sha256, quantisation), and reloads from there in seconds.

Conversion is safe when several pytest-xdist workers start at once: one worker converts under a file lock while
the others wait, and the folder appears atomically (written to a temporary folder, then renamed).
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from .errors import ModelLoadError

CACHE_ENV = "INTERP_CLAIMS_CACHE"


def cache_root() -> Path:
    root = os.environ.get(CACHE_ENV) or (Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
                                         / "interp-claims")
    return Path(root).expanduser()


def sha256(path: Path, chunk: int = 1 << 22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def quantisation(path: Path) -> str:
    """The GGUF's file type (e.g. ``MOSTLY_Q4_1``), read from its metadata."""
    import gguf
    try:
        f = gguf.GGUFReader(str(path)).fields.get("general.file_type")
        if f is None:
            return "unknown"
        n = int(f.parts[f.data[0]][0])
        return gguf.LlamaFileType(n).name
    except Exception:  # noqa: BLE001 - metadata without a file type: say so in the snapshot
        return "unknown"


@contextmanager
def file_lock(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def assemble(parts: list[Path], dest: Path, expected_sha256: str | None, log) -> Path:
    """Concatenate chunk files into ``dest`` (atomically; verified against ``expected_sha256``)."""
    if dest.exists() and (expected_sha256 is None or sha256(dest) == expected_sha256):
        return dest
    missing = [str(p) for p in parts if not p.exists()]
    if missing:
        raise ModelLoadError(f"GGUF chunk files missing: {missing}; reinstall the chunk packages")
    log(f"assembling {dest.name} from {len(parts)} chunks")
    with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False, suffix=".part") as out:
        for p in parts:
            with open(p, "rb") as f:
                shutil.copyfileobj(f, out, 1 << 22)
    got = sha256(Path(out.name))
    if expected_sha256 and got != expected_sha256:
        os.unlink(out.name)
        raise ModelLoadError(f"assembled {dest.name} has sha256 {got}, expected {expected_sha256}: the chunk "
                             "packages are damaged or of another version; reinstall them")
    os.replace(out.name, dest)
    return dest


MAGIC = b"GGUF"
CACHED = ("source.json", "config.json", "model.safetensors")  # what a complete converted folder holds


def check_file(gguf_path: Path, model_id: str) -> None:
    """Refuse, with the file and the fix named, a file that is not GGUF or that the GGUF reader cannot parse (a
    truncated download, a damaged copy), before anything is converted or written."""
    with open(gguf_path, "rb") as f:
        head = f.read(4)
    if head != MAGIC:
        raise ModelLoadError(f"model {model_id!r}: {gguf_path} is not a GGUF file (it starts with {head!r}, not "
                             f"{MAGIC!r}); give the .gguf file itself (or a folder with config.json and "
                             "model.safetensors)")
    try:
        import gguf
        gguf.GGUFReader(str(gguf_path))
    except ImportError:
        raise ModelLoadError(f"loading {gguf_path.name} needs the gguf package: `pip install gguf accelerate`") \
            from None
    except Exception as e:  # noqa: BLE001 - the reader's own errors (reshape, struct, index) all mean a bad file
        raise ModelLoadError(f"model {model_id!r}: {gguf_path} is truncated or damaged: the GGUF reader could not "
                             f"read its tensors ({type(e).__name__}: {str(e)[:160]}); download or install it again "
                             f"({gguf_path.stat().st_size / 2**20:.1f} MiB on disk)") from None


def _complete(folder: Path) -> bool:
    return all((folder / f).is_file() for f in CACHED)


def _set_aside(folder: Path, log) -> None:
    """Move an incomplete cache folder out of the way (kept, renamed) so that the model is converted again."""
    missing = [f for f in CACHED if not (folder / f).is_file()]
    dest = folder.with_name(f".{folder.name}.incomplete-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    os.replace(folder, dest)
    log(f"the converted folder {folder} was incomplete (missing {', '.join(missing)}): moved to {dest.name} "
        "(delete it when you like) and converting again")


def converted_folder(model_id: str, gguf_path: Path, expected_sha256: str | None, log, *,
                     source_note: str = "") -> Path:
    """The cache folder holding the dequantised model of ``gguf_path`` (converted on first use; converted again
    when the folder lost a file, e.g. to a full disk or a hand clean-up)."""
    gguf_path = Path(gguf_path)
    if not gguf_path.is_file():
        raise ModelLoadError(f"model {model_id!r}: GGUF file {gguf_path} does not exist")
    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ModelLoadError(f"cannot create the model cache {root} ({e.strerror}); set {CACHE_ENV} to a "
                             "writable folder") from None
    stat = gguf_path.stat()
    key = expected_sha256[:16] if expected_sha256 else hashlib.sha256(
        f"{gguf_path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    final = root / f"{model_id}-{key}"
    if _complete(final):
        return final
    with file_lock(root / f"{model_id}-{key}.lock"):
        if _complete(final):  # another worker converted it while we waited
            return final
        if final.exists():
            _set_aside(final, log)
        t0 = time.time()
        log(f"{model_id}: verifying {gguf_path.name} ({stat.st_size / 2**20:.0f} MiB)")
        digest = sha256(gguf_path)
        if expected_sha256 and digest != expected_sha256:
            raise ModelLoadError(f"model {model_id!r}: {gguf_path} has sha256 {digest}, the registry pins "
                                 f"{expected_sha256}: reinstall the package, or update the entry's gguf_sha256 "
                                 "in the registry if the new file is intended")
        check_file(gguf_path, model_id)
        log(f"{model_id}: dequantising {gguf_path.name} to float32 once (about 0.5-4 minutes on 2 cores); "
            f"cached in {final}")
        tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{model_id}-"))
        os.chmod(tmp, 0o755)
        try:
            _convert(gguf_path, tmp)
            (tmp / "source.json").write_text(json.dumps({
                "gguf_file": gguf_path.name, "gguf_sha256": digest, "quantisation": quantisation(gguf_path),
                "source": source_note, "converted_in_s": round(time.time() - t0, 1)}, indent=2))
            os.replace(tmp, final)
        except Exception:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        log(f"{model_id}: converted in {time.time() - t0:.0f}s")
    return final


def _convert(gguf_path: Path, out: Path) -> None:
    import torch
    from safetensors.torch import save_model
    from transformers import AutoModelForCausalLM, AutoTokenizer
    folder, name = str(gguf_path.parent), gguf_path.name
    try:
        tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    except ImportError as e:
        raise ModelLoadError(f"loading {name} needs the gguf package: `pip install gguf accelerate` ({e})") from None
    save_model(model, str(out / "model.safetensors"))  # drops tied duplicates (lm_head = embed_tokens)
    cfg = model.config.to_dict()
    cfg.pop("quantization_config", None)
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    tok.save_pretrained(out)


def read_source(folder: str | Path) -> dict:
    p = Path(folder) / "source.json"
    return json.loads(p.read_text()) if p.exists() else {}
