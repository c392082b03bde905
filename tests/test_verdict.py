"""One gate, one verdict, every path: run, resume, merge of shards, score and compare each write the
same verdict into metrics.json, summary.md and junit.xml, and exit with the code it implies.

The detector emits the tiny set's ground truth exactly, so its AP is 1.0 by construction; the one
that misses image 2's person scores (76/101 + 2) / 3 = 0.9175 (hand count in tests/test_gate.py).
"""

from __future__ import annotations

import json
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from conftest import TINY_GT
from helpers import make_identity, save_table_detector, write_compare_config, write_config

import ssd_eval.engine.runner as runner_module
from ssd_eval import __version__
from ssd_eval.cli import main

SSD10_SHA256 = "80013dd940efc1462c616143b461ef35885bcc1706e0670b66623293b4b52c59"
MISSED = {"value": 0.5, "tolerance": 0.01}  # AP 1.0 misses it by +0.5


def assert_verdict(folder: Path, verdict: str, exit_code: int, *, by: str) -> dict:
    """metrics.json, summary.md and junit.xml in `folder` all say `verdict` and imply `exit_code`;
    the JUnit suite is named after the command `by` that wrote them (run, score, merge, compare)."""
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["gate"]["verdict"] == verdict and metrics["gate"]["exit_code"] == exit_code
    summary = (folder / "summary.md").read_text()
    assert f"**Gate: {verdict}** — {metrics['gate']['reason']}" in summary
    suite = ET.parse(folder / "junit.xml").getroot().find("testsuite")
    assert suite is not None
    assert suite.get("name") == f"ssd-eval {by} {folder.name}"
    props = {p.get("name"): p.get("value") for p in suite.findall("properties/property")}
    assert props == {"verdict": verdict, "exit_code": str(exit_code)}
    (case,) = [c for c in suite.iter("testcase") if c.get("name") == "gate verdict"]
    # The verdict case carries the COCO stats metrics.json records (each run's, in a comparison).
    figures = {p.get("name"): p.get("value") for p in case.findall("properties/property")}
    runs = [r for r in metrics["runs"] if r["status"] == "ran"] if "runs" in metrics else [metrics]
    expected = {
        (f"{r['name']}.{k}" if "runs" in metrics else k): ("n/a" if v < 0 else repr(float(v)))
        for r in runs
        for k, v in r["stats"].items()
    }
    assert figures == expected and len(figures) == 12 * len(runs)
    failure = case.find("failure")
    assert (failure is not None) == (exit_code == 1)
    assert (int(suite.get("failures", "0")) > 0) == (exit_code == 1)
    if failure is not None:
        assert failure.get("message") == f"{verdict}: {metrics['gate']['reason']}"
    return metrics


@pytest.fixture
def perfect(tmp_path, tiny_coco) -> tuple[Path, Path]:
    model = save_table_detector(tmp_path / "perfect.onnx", tiny_coco, TINY_GT)
    return model, tiny_coco


def _config(tmp_path: Path, perfect: tuple[Path, Path], name: str = "c.yaml", **sections: dict) -> Path:
    model, root = perfect
    return write_config(tmp_path / name, model, root, **sections)


def _run(config: Path, name: str, *extra: str) -> int:
    return main(["--config", str(config), "--run-name", name, *extra])


def test_run_fails_and_every_file_says_so(tmp_path, perfect, capsys):
    config = _config(tmp_path, perfect, expected=MISSED)
    assert _run(config, "fail") == 1
    err = capsys.readouterr().err
    assert "gate FAIL: AP 1.0000 misses the reference 0.5000 by +0.5000 (tolerance 0.0100)" in err
    assert "gate verdict FAIL: 1 of 1 rule(s) failed" in err
    metrics = assert_verdict(tmp_path / "results" / "fail", "FAIL", 1, by="run")
    assert [r["state"] for r in metrics["gate"]["rules"]] == ["failed"]


def test_resume_gates_like_a_run(tmp_path, perfect, monkeypatch):
    config = _config(tmp_path, perfect, expected=MISSED)
    real = runner_module.decode_image
    calls = {"n": 0}

    def dies_at_the_third(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(runner_module, "decode_image", dies_at_the_third)
    assert _run(config, "cut") == 130
    run_dir = tmp_path / "results" / "cut"
    assert not (run_dir / "metrics.json").exists()
    monkeypatch.setattr(runner_module, "decode_image", real)
    assert main(["--resume", str(run_dir), "--quiet"]) == 1
    assert_verdict(run_dir, "FAIL", 1, by="run")


def test_shards_defer_and_the_merge_applies_the_full_run_rules(tmp_path, perfect, capsys):
    config = _config(tmp_path, perfect, expected=MISSED)
    shards = []
    for k in (1, 2):
        # Even with --require-gate a shard exits 0: its rules are deferred, or the merge never starts.
        assert _run(config, f"s{k}", "--shard", f"{k}/2", "--require-gate") == 0
        shards.append(tmp_path / "results" / f"s{k}")
        metrics = assert_verdict(shards[-1], "NO VERDICT", 0, by="run")
        assert metrics["gate"]["partial"] == f"shard {k}/2"
        assert metrics["gate"]["rules"][0]["state"] == "not comparable"
    out = capsys.readouterr().out
    assert "gate not comparable: AP = 0.5000 ± 0.0100: not comparable: partial run (shard 2/2)" in out
    assert "deferred to `ssd-eval merge` of all shards" in out
    merged = tmp_path / "results" / "merged"
    assert main(["merge", *map(str, shards), "--output", str(merged)]) == 1
    assert "gate FAIL: AP 1.0000 misses the reference 0.5000" in capsys.readouterr().err
    metrics = assert_verdict(merged, "FAIL", 1, by="merge")
    assert metrics["gate"]["partial"] is None and metrics["protocol"]["num_images"] == 5


def test_a_merge_that_passes_and_a_merge_with_no_rule(tmp_path, perfect):
    config = _config(tmp_path, perfect, expected={"value": 1.0, "tolerance": 1e-9})
    for k in (1, 2):
        assert _run(config, f"p{k}", "--shard", f"{k}/2") == 0
    results = tmp_path / "results"
    assert main(["merge", str(results / "p1"), str(results / "p2"), "--output", str(results / "m")]) == 0
    assert_verdict(results / "m", "PASS", 0, by="merge")
    bare = _config(tmp_path, perfect, name="bare.yaml")
    for k in (1, 2):
        assert _run(bare, f"b{k}", "--shard", f"{k}/2") == 0
    shards = [str(results / "b1"), str(results / "b2")]
    assert main(["merge", *shards, "--output", str(results / "mb"), "--quiet"]) == 0
    assert_verdict(results / "mb", "NO VERDICT", 0, by="merge")
    assert main(["merge", *shards, "--output", str(results / "mr"), "--quiet", "--require-gate"]) == 1
    assert_verdict(results / "mr", "NO VERDICT", 1, by="merge")


def test_score_reapplies_the_recorded_rules(tmp_path, perfect, capsys):
    config = _config(tmp_path, perfect, expected={"value": 1.0, "tolerance": 1e-9})
    assert _run(config, "fail", "--expect-ap", "0.5", "--tolerance", "0.01") == 1
    run_dir = tmp_path / "results" / "fail"
    (run_dir / "metrics.json").unlink()
    # The flags given at run time are part of the run's recorded rules.
    assert main(["score", str(run_dir)]) == 1
    assert "misses the reference 0.5000 by +0.5000 (tolerance 0.0100)" in capsys.readouterr().err
    assert_verdict(run_dir, "FAIL", 1, by="score")
    assert _run(config, "pass") == 0
    assert main(["score", str(tmp_path / "results" / "pass")]) == 0
    assert_verdict(tmp_path / "results" / "pass", "PASS", 0, by="score")


def test_require_gate_given_at_run_time_is_recorded(tmp_path, perfect):
    bare = _config(tmp_path, perfect)
    assert _run(bare, "req", "--require-gate") == 1  # no rule set: NO VERDICT, required
    assert main(["score", str(tmp_path / "results" / "req"), "--quiet"]) == 1
    assert_verdict(tmp_path / "results" / "req", "NO VERDICT", 1, by="score")
    for k in (1, 2):
        assert _run(bare, f"s{k}", "--shard", f"{k}/2", "--require-gate") == 0  # deferred
    shards = [str(tmp_path / "results" / f"s{k}") for k in (1, 2)]
    assert main(["merge", *shards, "--output", str(tmp_path / "results" / "m"), "--quiet"]) == 1
    assert_verdict(tmp_path / "results" / "m", "NO VERDICT", 1, by="merge")


def test_score_reapplies_a_baseline_from_the_run_folder(tmp_path, perfect):
    config = _config(tmp_path, perfect)
    assert _run(config, "first") == 0
    baseline = tmp_path / "b.json"
    assert main(["baseline", str(tmp_path / "results" / "first"), "--output", str(baseline), "--quiet"]) == 0
    gated = _config(
        tmp_path, perfect, name="g.yaml", gate={"baseline": str(baseline), "max_baseline_drop": 0.0}
    )
    assert _run(gated, "second") == 0
    baseline.unlink()  # the run folder keeps the copy it was gated against
    assert main(["score", str(tmp_path / "results" / "second"), "--quiet"]) == 0
    metrics = assert_verdict(tmp_path / "results" / "second", "PASS", 0, by="score")
    assert metrics["gate"]["rules"][0]["rule"] == "AP drop vs baseline b <= 0.0000"


def test_every_rule_out_is_no_verdict(tmp_path, perfect, capsys):
    # The figure is pinned to ssd-10.onnx: this model is another one, so the rule is not comparable.
    pinned = {"value": 0.195, "tolerance": 0.003, "model_sha256": SSD10_SHA256}
    config = _config(tmp_path, perfect, expected=pinned)
    assert _run(config, "nv") == 0
    out = capsys.readouterr().out
    assert (
        "gate not comparable: AP = 0.1950 ± 0.0030: not comparable: the model is not ssd-10.onnx: the "
        "figure is for ssd-10.onnx (sha256 80013dd940ef…), this run's model (perfect.onnx) has sha256"
    ) in out
    assert "misses the reference" not in out
    assert "gate verdict NO VERDICT: no rule was evaluated (1 not comparable)" in out
    assert assert_verdict(tmp_path / "results" / "nv", "NO VERDICT", 0, by="run")["gate"]["required"] is False
    assert _run(config, "nv-required", "--require-gate") == 1
    assert "gate.required (--require-gate) makes this a failure" in capsys.readouterr().err
    required_run = assert_verdict(tmp_path / "results" / "nv-required", "NO VERDICT", 1, by="run")
    assert required_run["gate"]["required"] is True
    required = _config(tmp_path, perfect, name="r.yaml", expected=pinned, gate={"required": True})
    assert _run(required, "nv-config") == 1
    assert_verdict(tmp_path / "results" / "nv-config", "NO VERDICT", 1, by="run")
    # A subset (--limit) is gated like any run: nothing later applies its rules, so NO VERDICT on it
    # fails a required gate (only a shard defers, to its merge).
    assert _run(required, "nv-limit", "--limit", "2") == 1
    assert_verdict(tmp_path / "results" / "nv-limit", "NO VERDICT", 1, by="run")
    # No rule at all is no verdict either.
    bare = _config(tmp_path, perfect, name="bare.yaml")
    assert _run(bare, "none") == 0
    assert "gate verdict NO VERDICT: no rules are set" in capsys.readouterr().out
    assert _run(bare, "none-required", "--require-gate") == 1


def _compare_config(tmp_path: Path, perfect: tuple[Path, Path], runs: list[dict], **sections) -> Path:
    model, root = perfect
    return write_compare_config(tmp_path, root, model, runs, **sections)


def test_compare_fails_and_every_file_says_so(tmp_path, perfect, tiny_coco):
    worse = save_table_detector(tmp_path / "worse.onnx", tiny_coco, {**TINY_GT, 2: []})
    runs = [{"name": "worse", "provider": {"name": "cpu"}, "model": {"path": str(worse)}}]
    config = _compare_config(tmp_path, perfect, runs, gate={"max_ap_drop": 0.01})
    assert main(["compare", "--config", str(config), "--run-name", "bad", "--quiet"]) == 1
    metrics = assert_verdict(tmp_path / "results" / "bad", "FAIL", 1, by="compare")
    prov = metrics["provenance"]
    assert prov["command"] == ["ssd-eval", "compare", "--config", str(config), "--run-name", "bad", "--quiet"]
    assert prov["ssd_eval_version"] == __version__
    # The summary says which command, code and times produced it, as a run's does.
    summary = (tmp_path / "results" / "bad" / "summary.md").read_text()
    assert f"`ssd-eval compare --config {config} --run-name bad --quiet` (ssd_eval {__version__}" in summary
    assert f"{prov['started']} to {prov['finished']}." in summary
    (rule,) = metrics["gate"]["rules"]
    assert rule["message"].startswith("worse: AP 0.9175 vs reference ref 1.0000 (delta -0.0825)")


def test_compare_skipped_runs_are_in_the_verdict(tmp_path, perfect, capsys):
    gpu = {"name": "gpu", "provider": {"name": "cuda"}}
    again = {"name": "again", "provider": {"name": "cpu"}}
    config = _compare_config(
        tmp_path, perfect, [again, gpu], gate={"max_ap_drop": 0.01}, skip_unavailable=True
    )
    assert main(["compare", "--config", str(config), "--run-name", "one", "--quiet"]) == 0
    metrics = assert_verdict(tmp_path / "results" / "one", "PASS", 0, by="compare")
    states = {(r["subject"], r["state"]) for r in metrics["gate"]["rules"]}
    assert states == {("again", "passed"), ("gpu", "skipped")}
    skipped = next(r for r in metrics["gate"]["rules"] if r["state"] == "skipped")
    assert (
        skipped["message"].startswith("gpu: not evaluated: ")
        and "CUDAExecutionProvider" in skipped["message"]
    )
    # With gate.required a run that did not run fails the gate.
    args = ["compare", "--config", str(config), "--quiet", "--require-gate"]
    assert main([*args, "--run-name", "req"]) == 1
    assert_verdict(tmp_path / "results" / "req", "FAIL", 1, by="compare")
    # Only the reference ran: nothing was compared.
    only = _compare_config(tmp_path, perfect, [gpu], gate={"max_ap_drop": 0.01}, skip_unavailable=True)
    capsys.readouterr()
    assert main(["compare", "--config", str(only), "--run-name", "none", "--quiet"]) == 0
    assert_verdict(tmp_path / "results" / "none", "NO VERDICT", 0, by="compare")
    assert (
        main(["compare", "--config", str(only), "--run-name", "none-req", "--quiet", "--require-gate"]) == 2
    )
    assert "nothing was compared: no run besides the reference ref ran (gpu: " in capsys.readouterr().err


def test_provenance_is_recorded(tmp_path, perfect):
    config = _config(tmp_path, perfect)
    assert _run(config, "prov", "--quiet") == 0
    prov = json.loads((tmp_path / "results" / "prov" / "metrics.json").read_text())["provenance"]
    utc = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"
    assert re.fullmatch(utc, prov["started"]) and re.fullmatch(utc, prov["finished"])
    assert prov["started"] <= prov["finished"]
    assert prov["command"] == ["ssd-eval", "--config", str(config), "--run-name", "prov", "--quiet"]
    assert prov["ssd_eval_version"] == __version__
    summary = (tmp_path / "results" / "prov" / "summary.md").read_text()
    assert f"`ssd-eval --config {config} --run-name prov --quiet` (ssd_eval {__version__}" in summary
    assert f"{prov['started']} to {prov['finished']}." in summary


def test_provenance_names_the_git_commit(tmp_path, perfect):
    # Deselected in the mutation run ([tool.mutmut]): mutants/ is a copy, not the project's git folder.
    config = _config(tmp_path, perfect)
    assert _run(config, "prov", "--quiet") == 0
    prov = json.loads((tmp_path / "results" / "prov" / "metrics.json").read_text())["provenance"]
    root = Path(__file__).resolve().parents[1]
    head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("not a git checkout")
    assert prov["git_commit"] == head.stdout.strip()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--expect-ap", "19.5"], "--expect-ap: must be a COCO stat in [0, 1] (0.195, not 19.5), got 19.5"),
        (["--expect-ap", "nan"], "--expect-ap: must be a COCO stat in [0, 1] (0.195, not 19.5), got nan"),
        (["--expect-ap", "0.2", "--tolerance", "-1"], "--tolerance: must be a number >= 0, got -1.0"),
        (["--expect-ap", "0.2", "--tolerance", "inf"], "--tolerance: must be a number >= 0, got inf"),
    ],
)
def test_bad_gate_flags_exit_2_before_any_image(tmp_path, perfect, capsys, flags, message):
    config = _config(tmp_path, perfect)
    assert _run(config, "x", *flags) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"ssd-eval: error: {message}"]
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    ("section", "message"),
    [
        (
            {"expected": {"value": 19.5}},
            "expected.value: must be a COCO stat in [0, 1] (0.195, not 19.5), got 19.5",
        ),
        ({"expected": {"value": 0.2, "tolerance": -0.1}}, "expected.tolerance: must be >= 0, got -0.1"),
        ({"expected": {"value": float("nan")}}, "expected.value: expected a finite number, got nan"),
        ({"gate": {"min_ap": float("inf")}}, "gate.min_ap: expected a finite number, got inf"),
        (
            {"providers": [{"name": "cpu", "options": {"x": [1.0, float("nan")]}}]},
            "providers[0].options.x[1]: ",
        ),
    ],
)
def test_bad_numbers_in_a_config_exit_2(tmp_path, perfect, capsys, section, message):
    config = _config(tmp_path, perfect, **section)
    assert _run(config, "x") == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("ssd-eval: error: ") and message in line


def test_the_tolerance_flag_defaults_to_the_configs(tmp_path, perfect, capsys):
    # No `expected` in the config: the one default, 0.003. AP 1.0 is 0.004 from 0.996.
    config = _config(tmp_path, perfect)
    assert _run(config, "d1", "--expect-ap", "0.996") == 1
    assert "misses the reference 0.9960 by +0.0040 (tolerance 0.0030)" in capsys.readouterr().err
    # The config's tolerance when it has one.
    wide = _config(tmp_path, perfect, name="w.yaml", expected={"value": 0.5, "tolerance": 0.02})
    assert _run(wide, "d2", "--expect-ap", "0.99") == 0
    assert "AP 1.0000 is within 0.0200 of the reference 0.9900" in capsys.readouterr().out
    assert _run(wide, "d3", "--tolerance", "0.6") == 0  # the config's value, a wider tolerance
    assert "AP 1.0000 is within 0.6000 of the reference 0.5000" in capsys.readouterr().out


def test_a_library_call_is_recorded_as_the_docs_show_it():
    """docs/api.md: `("python", "ssd_eval.evaluate", "smoke.yaml", "limit=3", "provider=cpu")`: the
    positional arguments, then the options given; None and False left out; a mapping as <mapping>, a
    list comma-separated, a path as written; True and 0 kept (they were given)."""
    from pathlib import Path

    from ssd_eval.reports.verdict import Invocation

    called = Invocation.of_call(
        "ssd_eval.evaluate",
        "smoke.yaml",
        limit=3,
        provider="cpu",
        data=None,
        resume=False,
        require_gate=True,
        shard=0,
    )
    assert called.command == (
        "python",
        "ssd_eval.evaluate",
        "smoke.yaml",
        "limit=3",
        "provider=cpu",
        "require_gate=True",
        "shard=0",
    )
    assert not called.flags
    mixed = Invocation.of_call("ssd_eval.compare", [Path("results/cpu"), "results/ov"], config={"gate": {}})
    assert mixed.command == ("python", "ssd_eval.compare", "results/cpu,results/ov", "config=<mapping>")


def test_an_evaluation_and_a_comparison_are_truthy_only_when_they_pass(tmp_path):
    """The records the library returns (docs/api.md): `if ssd_eval.evaluate(...)` means PASS; a
    comparison still waiting for its runs has no gate: NO VERDICT, exit 0, falsy."""
    from ssd_eval.reports.gate import GateReport, check_min, skipped_check
    from ssd_eval.reports.results import ModelInfo, RunResult
    from ssd_eval.reports.verdict import Comparison, Evaluation

    result = RunResult(
        run_dir=str(tmp_path),
        stats={"AP": 0.25},
        per_category=(),
        identity=make_identity(range(1, 6)),
        model=ModelInfo("m.onnx", "a" * 64, 1, None),
        providers_requested=(),
        providers_used=(),
        provider_options=(),
        num_detections=0,
        timings={},
        wall_s=0.0,
        images_per_s=0.0,
    )
    passed = GateReport((check_min({"AP": 0.25}, metric="AP", floor=0.25),))
    failed = GateReport((check_min({"AP": 0.25}, metric="AP", floor=0.5),))
    no_verdict = GateReport((skipped_check("r", "why"),), required=True)
    assert [bool(Evaluation(result, gate)) for gate in (passed, failed, no_verdict)] == [True, False, False]
    assert [Evaluation(result, gate).exit_code for gate in (passed, failed, no_verdict)] == [0, 1, 1]
    waiting = Comparison(tmp_path, None, None, waiting=("gpu",))
    assert (bool(waiting), waiting.verdict, waiting.exit_code) == (False, "NO VERDICT", 0)
    assert [bool(Comparison(tmp_path, None, gate)) for gate in (passed, failed, no_verdict)] == [
        True,
        False,
        False,
    ]
    assert [Comparison(tmp_path, None, gate).exit_code for gate in (passed, failed, no_verdict)] == [0, 1, 1]


def _scored_run(folder: Path, ap: float):
    """A scored run of 5 images at 300x400 (clipped boxes, scores cut at 0.05) whose stats are all `ap`."""
    from ssd_eval.coco_stats import STAT_NAMES
    from ssd_eval.reports.results import ModelInfo, RunResult

    changes = {
        "input_size": (300, 400),
        "clip_boxes": True,
        "score_threshold": 0.05,
        "model_sha256": "a" * 64,
    }
    return RunResult(
        run_dir=str(folder),
        stats=dict.fromkeys(STAT_NAMES, ap),
        per_category=(),
        identity=make_identity(range(1, 6), **changes),
        model=ModelInfo("m.onnx", "a" * 64, 1, None),
        providers_requested=("cpu",),
        providers_used=("CPUExecutionProvider",),
        provider_options=({},),
        num_detections=0,
        timings={},
        wall_s=0.0,
        images_per_s=0.0,
    )


def _tiny_baseline():
    from ssd_eval.reports.baseline import Baseline

    protocol = {
        "selection": "annotated",
        "num_images": 5,
        "input_size": [300, 400],
        "preprocess": "pillow",
        "clip_boxes": True,
        "score_threshold": 0.05,
    }
    return Baseline(
        name="tiny",
        kind="measured",
        source="results/first",
        stats={"AP": 0.5, "AR100": 0.5},
        protocol=protocol,
        model={"name": "m.onnx", "sha256": "a" * 64},
    )


def test_gate_run_records_the_diagnosis_of_a_run_that_fails(tmp_path):
    from ssd_eval.config.run import GateConfig, RunConfig
    from ssd_eval.reports.verdict import gate_run

    config = RunConfig(gate=GateConfig(baseline=tmp_path / "b.json", max_baseline_drop=0.01))
    # AP 0.01 against the baseline's 0.5: 2% of it, the unmapped-labels signature (at most a quarter).
    evaluation = gate_run(_scored_run(tmp_path, 0.01), config, _tiny_baseline(), verb="score")
    diagnosis = {
        "cause": "labels",
        "line": "AP 0.010 with reference AP 0.500 (2%): labels look not mapped to COCO category ids "
        "(or off by one), which gives AP ~0.002 (onnx/models #165)",
        "evidence": {"AP": 0.01, "reference_AP": 0.5},
    }
    assert evaluation.verdict == "FAIL" and evaluation.diagnosis is not None
    assert evaluation.diagnosis.to_json() == diagnosis and evaluation.result.diagnosis == diagnosis
    metrics = assert_verdict(tmp_path, "FAIL", 1, by="score")
    assert metrics["diagnosis"] == diagnosis
    assert f"**Likely cause:** {diagnosis['line']}" in (tmp_path / "summary.md").read_text()


def test_gate_run_diagnoses_nothing_when_the_run_passes(tmp_path):
    from ssd_eval.config.run import GateConfig, RunConfig
    from ssd_eval.reports.verdict import gate_run

    # min_ap passes at 0.01; the baseline is named but holds no rule: a PASS has no miss to explain,
    # though its AP would read as unmapped labels against the baseline's.
    config = RunConfig(gate=GateConfig(min_ap=0.01, baseline=tmp_path / "b.json"))
    evaluation = gate_run(_scored_run(tmp_path, 0.01), config, _tiny_baseline(), verb="run")
    assert (evaluation.verdict, evaluation.diagnosis, evaluation.result.diagnosis) == ("PASS", None, None)
    assert assert_verdict(tmp_path, "PASS", 0, by="run")["diagnosis"] is None
    assert "Likely cause" not in (tmp_path / "summary.md").read_text()
