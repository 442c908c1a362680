"""The run's stages, each tested directly from the inputs it takes (no subprocess run): selection picks the models
and refuses what cannot run, schedule parametrises and groups, settle judges a measurement against its snapshot,
publish writes a run's reports the same way for a run and a merge, and the session sequences them."""
from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from probes import merge, roles, schedule, selection
from probes.results import ClaimResult, Measurement, RunInfo, Verdict
from probes.selection import Options
from probes.session import ClaimsSession
from probes.settle import settle, snapshot_path
from probes.snapshot import SnapshotStore
from probes.verdicts import EXIT_DRIFT, EXIT_LOST, combined_status

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[1]
REGISTRY = ROOT / "fixtures" / "models.toml"


def select(**kw) -> selection.Selection:
    return selection.select(Options(**kw), REGISTRY, ROOT, "fixtures/models.toml")


# --------------------------------------------------------------------------------------------------- selection
def test_selection_takes_the_models_given_once_each_and_names_the_fix():
    sel = select(models="gpt2-organism,bert-organism")
    assert [s.id for s in sel.models] == ["gpt2-organism", "bert-organism"] and not sel.left_out
    assert {"ioi", "lesion"} <= sel.families and not sel.any_family
    with pytest.raises(pytest.UsageError, match="are the same model"):
        select(models="gpt2-organism,gpt2-organism")
    with pytest.raises(pytest.UsageError, match="names no model"):
        select(models=" , ")
    with pytest.raises(pytest.UsageError, match="gpt2-organism"):  # an unknown id: the known ones are named
        select(models="gpt2-organsim")


def test_selection_refuses_options_that_cannot_run():
    for opt, message in ((Options(max_batch_tokens=0), "--max-batch-tokens 0"),
                         (Options(weight_jitter=-1.0), "--weight-jitter -1"),
                         (Options(corpus="/no/such/file.txt"), "--corpus /no/such/file.txt: no such file"),
                         (Options(dtype="float8"), "float8")):
        with pytest.raises(pytest.UsageError, match=message):
            selection.check_options(opt)
    selection.check_options(Options())  # the defaults run
    sel = select(models="gpt2-organism")
    with pytest.raises(pytest.UsageError, match="jittered weights"):
        selection.check_record(Options(record=True, weight_jitter=1e-6), sel, "models.toml")
    selection.check_record(Options(record=True), sel, "models.toml")


def test_check_writable_names_the_option_and_leaves_a_writable_folder_as_it_was(tmp_path):
    selection.check_writable(tmp_path / "new", "--artifacts", "cannot write figures there", "give a writable folder")
    assert (tmp_path / "new").is_dir() and not list((tmp_path / "new").iterdir())
    (tmp_path / "file").write_text("")
    with pytest.raises(pytest.UsageError, match=r"--history .*file/sub: cannot append there"):
        selection.check_writable(tmp_path / "file" / "sub", "--history", "cannot append there", "fix it")


# ---------------------------------------------------------------------------------------------------- schedule
class Item:
    """The parts of a pytest item that schedule.group reads."""

    def __init__(self, nodeid: str, model: str | None, family: str | None):
        self.nodeid = nodeid
        self.callspec = SimpleNamespace(params={"model_id": model}) if model else None
        self.mark = SimpleNamespace(kwargs={"family": family}) if family else None
        self.marks: list = []

    def get_closest_marker(self, name):
        return self.mark if name == "claim" else None

    def add_marker(self, mark):
        self.marks.append(mark)


def test_schedule_groups_each_model_and_puts_the_heavier_first():
    sel = select(models="gpt2-organism,smollm2-135m")
    items = [Item("tests/test_a.py::t", None, None), Item("c::ioi[gpt2]", "gpt2-organism", "ioi"),
             Item("c::ioi[smol]", "smollm2-135m", "ioi"), Item("c::neuron[gpt2]", "gpt2-organism", "neuron")]
    assert schedule.group(items, sel.models) is True
    weight = {s.id: s.param("xdist_weight", 1) for s in sel.models}
    assert weight["smollm2-135m"] > weight["gpt2-organism"]  # the registry's hint this test relies on
    assert [i.nodeid for i in items][0] == "c::ioi[smol]"  # the heaviest model's tests first
    gpt2 = [i for i in items if i.callspec and i.callspec.params["model_id"] == "gpt2-organism"]
    assert {m.kwargs.get("name", m.args[0] if m.args else None) for i in gpt2 for m in i.marks} == {"gpt2-organism"}
    assert not items[-1].marks or items[-1].callspec  # a test that is not a claim gets no group
    assert schedule.group([Item("tests/test_a.py::t", None, None)], sel.models) is False


class Metafunc:
    """The parts of pytest's Metafunc that schedule.parametrize reads and writes."""

    def __init__(self, kwargs: dict | None, fixturenames=("lm", "model_id")):
        mark = SimpleNamespace(kwargs=kwargs) if kwargs is not None else None
        self.definition = SimpleNamespace(nodeid="claims/test_x.py::test_y", get_closest_marker=lambda name: mark)
        self.fixturenames = list(fixturenames)
        self.calls: list = []

    def parametrize(self, names, params):
        self.calls.append((names, params))


def test_schedule_parametrizes_a_claim_over_the_models_of_its_family_and_refuses_a_bad_marker():
    sel = select(models="gpt2-organism,bert-organism")
    meta = Metafunc({"id": "ioi.behaviour", "family": "ioi", "kinds": "causal"})
    schedule.parametrize(meta, sel, "float32", "fixtures/models.toml")
    (names, params), = meta.calls
    assert names == "model_id" and [p.id for p in params] == ["gpt2-organism"]
    meta = Metafunc({"id": "ioi.behaviour", "family": "ioi"})
    schedule.parametrize(meta, sel, "bfloat16", "fixtures/models.toml")
    assert [p.id for p in meta.calls[0][1]] == ["gpt2-organism-bfloat16"]
    for kwargs, message in ((None, "has no claim marker"), ({"id": "x.y"}, "needs family="),
                            ({"id": "x.y", "family": "nofamily"}, "not a family of any model"),
                            ({"id": "x.y", "family": "ioi", "kinds": ["casual"]}, "did you mean 'causal'")):
        with pytest.raises(pytest.Collector.CollectError, match=message) as e:
            schedule.parametrize(Metafunc(kwargs), sel, "float32", "fixtures/models.toml")
        assert str(e.value).startswith(schedule.USAGE_PREFIX)


# ------------------------------------------------------------------------------------------------------ settle
def measurement(gap: float) -> Measurement:
    return Measurement({"gap": gap, "n": 20}, roles.roles(effect=["gap"]), 1e-3, 1e-4, (0.05, 0.05),
                       {"model": "m", "dtype": "float32"})


def test_settle_records_only_when_asked_and_judges_a_move_beyond_tolerance(tmp_path):
    store = SnapshotStore(tmp_path)
    path = snapshot_path(store, Options(), "test_x", "test_y", "m", None)
    assert path == tmp_path / "test_x" / "test_y[m].json"
    assert snapshot_path(store, Options(dtype="bfloat16"), "test_x", "test_y", "m", 3).name == "test_y[m-L3].json"
    assert settle(store, Options(), path, "p", measurement(2.0)).verdict == Verdict.UNRECORDED
    assert not path.exists()  # compared, never written without --record
    assert settle(store, Options(record=True), path, "p", measurement(2.0)).verdict == Verdict.HOLDS
    recorded = path.read_text()
    assert settle(store, Options(), path, "p", measurement(2.0005)).verdict == Verdict.HOLDS  # within 1e-3 rel
    moved = settle(store, Options(), path, "p", measurement(1.5))
    assert moved.verdict == Verdict.MOVED and moved.headline.pct == pytest.approx(-25.0)
    assert settle(store, Options(record=True), path, "p", measurement(1.5), record_ok=False).verdict == Verdict.MOVED
    assert path.read_text() == recorded  # a broken claim (record_ok=False) is compared, never recorded


# ----------------------------------------------------------------------------------------------------- publish
def result(model: str, verdict: Verdict = Verdict.HOLDS) -> ClaimResult:
    from probes.drift import Number
    return ClaimResult("ioi.behaviour", model, verdict, headline=Number("gap", 2.0, (1.8, 2.2), 2.1, (1.9, 2.3), -4.8))


def test_a_run_and_a_merge_publish_their_reports_through_one_function(tmp_path, capsys):
    from probes.publish import publish
    out = publish(tmp_path / "a", [result("m1")], RunInfo(models=["m1"], device="cpu", dtype="float32"), 0)
    assert sorted(p.name for p in out.reports) == ["report.html", "report.json", "report.md"]
    rep = json.loads((tmp_path / "a" / "report.json").read_text())
    assert RunInfo.from_json(rep["meta"]).models == ["m1"] and "merged_from" not in rep["meta"]
    publish(tmp_path / "b", [result("m2", Verdict.UNRECORDED)], RunInfo(models=["m2"]), EXIT_DRIFT)
    status = merge.main([str(tmp_path / "merged"), str(tmp_path / "a"), str(tmp_path / "b")])
    assert status == EXIT_DRIFT
    merged = json.loads((tmp_path / "merged" / "report.json").read_text())
    assert merged["meta"]["merged_from"] == 2 and merged["meta"]["models"] == ["m1", "m2"]
    html = (tmp_path / "merged" / "report.html").read_text()
    assert "headline effect with its 95% interval" in html  # the forest plots: a merge draws what a run draws


def test_the_exit_status_of_merged_runs():
    assert combined_status([0, 0]) == 0 and combined_status([0, EXIT_DRIFT]) == EXIT_DRIFT
    assert combined_status([EXIT_DRIFT, 1, 4]) == 1 and combined_status([0], lost=True) == EXIT_LOST


def test_run_info_round_trips_and_reads_older_meta():
    info = RunInfo(models=["a"], left_out=[("b", "why")], merged_from=2, lost=[("f", "cut off")])
    assert RunInfo.from_json(json.loads(json.dumps(info.to_json()))) == info
    old = RunInfo.from_json({"models": ["a"], "when": "2026-01-01", "unknown_key": 1, "device": None})
    assert old.models == ["a"] and old.device is None and old.left_out == []


# ----------------------------------------------------------------------------------------------------- session
def test_the_session_selects_settles_and_publishes_a_run(pytester, tmp_path):
    """A ClaimsSession built from a real pytest config (no run): its stages in order, on the organism's id."""
    pytester.makeini(f"[pytest]\nclaims_registry = {REGISTRY}\nclaims_snapshots = {tmp_path / 'snaps'}\n")
    config = pytester.parseconfig("--models=gpt2-organism", f"--artifacts={tmp_path / 'art'}", "-p", "no:xdist")
    s = ClaimsSession(config)
    assert s.active and not s.is_worker
    s.configure()
    assert [m.id for m in s.sel.models] == ["gpt2-organism"] and s.param_id(s.sel.models[0]) == "gpt2-organism"
    s.results = [result("gpt2-organism")]
    assert s.finish(0) == 0 and s.status == 0
    assert {p.name for p in s.published.reports} == {"report.html", "report.json", "report.md"}
    assert all(p.parent == tmp_path / "art" for p in s.published.reports)
    lines: list[str] = []
    s.collected = True
    s.summary(SimpleNamespace(section=lambda title: lines.append(f"== {title}"), write_line=lines.append))
    assert lines[0] == "== interpretability claims" and lines[1].startswith("models: gpt2-organism")
    assert any(line.startswith("ioi.behaviour") and "holds" in line for line in lines)
    assert "report: " + str(tmp_path / "art" / "report.md") in lines
