"""A worker holds one model's memory at a time (issue 38): when it moves on to its next model, the previous model,
what its claims cached (``model_cache``) and its random-init copies are released before the next one loads."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORGANISMS = ROOT / "fixtures" / "organisms"
REGISTRY = "".join(f'[models.{m}]\nsource = "local"\npath = "{ORGANISMS / m}"\nkind = "causal"\nfamilies = ["mem"]\n'
                   for m in ("gpt2-organism", "gpt-neo-organism"))
CLAIM = '''import gc, weakref
import pytest
from probes.loading import random_copy

SEEN = []  # (model id, weak references to its model, its cache's payload and its random-init copy)


class Payload:
    pass


@pytest.mark.claim(id="mem.release", family="mem", kinds=("causal",), source="-", null="-", criterion="-")
def test_release(lm, model_cache, claim_snapshot):
    gc.collect()
    alive = [(mid, [r() is not None for r in refs]) for mid, refs in SEEN]
    model_cache["payload"] = p = Payload()
    SEEN.append((lm.spec.id, [weakref.ref(lm.model), weakref.ref(p), weakref.ref(random_copy(lm, 0).model)]))
    claim_snapshot({"n": len(SEEN)})
    assert all(not any(flags) for _, flags in alive), alive
'''


def _run(tmp_path, registry: str, claims: str) -> subprocess.CompletedProcess:
    """``claims`` run as a claims project of its own over ``registry``, in one process."""
    (tmp_path / "pytest.ini").write_text("[pytest]\nclaims_registry = models.toml\n")
    (tmp_path / "models.toml").write_text(registry)
    (tmp_path / "test_mem.py").write_text(claims)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-o",
                           "addopts=", "-q", "-rA"], cwd=tmp_path, capture_output=True, text=True, timeout=600)


def test_the_previous_model_is_released_before_the_next_loads(tmp_path):
    r = _run(tmp_path, REGISTRY, CLAIM)
    # two claims ran (one per model), both without snapshot (exit 6); the second found the first model released
    assert r.returncode == 6 and "2 unrecorded" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]


FAMILIES = '''import gc, weakref
import pytest

REFS = []


class Payload:
    pass


@pytest.mark.claim(id="mem.first", family="mem", kinds=("causal",), source="-", null="-", criterion="-")
def test_first(lm, model_cache, claim_snapshot):
    model_cache["payload"] = p = Payload()
    REFS.append(weakref.ref(p))
    claim_snapshot({"n": 1})


@pytest.mark.claim(id="mem.second", family="mem", kinds=("causal",), source="-", null="-", criterion="-")
def test_second(lm, model_cache, claim_snapshot):
    claim_snapshot({"n": 2})
    assert "payload" in model_cache, "the family's cache was dropped between two of its claims"


@pytest.mark.claim(id="other.third", family="other", kinds=("causal",), source="-", null="-", criterion="-")
def test_third(lm, model_cache, claim_snapshot):
    gc.collect()
    claim_snapshot({"n": 3})
    assert not model_cache, sorted(model_cache)
    assert REFS[0]() is None, "another family's cache is still alive"
'''


def test_a_familys_cache_is_dropped_when_the_next_family_starts(tmp_path):
    reg = REGISTRY.split("[models.gpt-neo-organism]")[0].replace('families = ["mem"]', 'families = ["mem", "other"]')
    r = _run(tmp_path, reg, FAMILIES)
    # three claims ran on one model, none with a snapshot (exit 6); the second saw the first's payload, the third
    # (another family) found it gone
    assert r.returncode == 6 and "3 unrecorded" in r.stdout, r.stdout[-3000:] + r.stderr[-2000:]


def test_the_tokenizers_build_tables_are_dropped_and_it_still_encodes(tmp_path):
    """transformers' Llama/Gemma tokenizers keep the Python vocabulary and merges they were built from (Gemma-3's:
    0.15 GB); after loading they are dropped, and encoding, decoding and the vocabulary are unchanged."""
    from transformers import AutoTokenizer, LlamaTokenizer

    from probes.loading import drop_build_tables
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2, "a": 3, "b": 4, "ab": 5, "▁": 6, "▁ab": 7}
    tok = LlamaTokenizer(vocab=vocab, merges=[("a", "b"), ("▁", "ab")])
    assert isinstance(vars(tok).get("_vocab"), dict) and isinstance(vars(tok).get("_merges"), list)
    ids, voc = tok(" ab ab")["input_ids"], tok.get_vocab()
    drop_build_tables(tok)
    assert "_vocab" not in vars(tok) and "_merges" not in vars(tok)
    assert tok(" ab ab")["input_ids"] == ids == [7, 7] and tok.decode(ids) == "ab ab" and tok.get_vocab() == voc
    tok.save_pretrained(tmp_path)  # scripts/perturb.py saves a loaded model's tokenizer beside its weights
    assert AutoTokenizer.from_pretrained(tmp_path)(" ab ab")["input_ids"] == ids
