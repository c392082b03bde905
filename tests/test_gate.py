"""Gate rules as pure functions, and the `run` command's gate: exit codes, baselines, partial runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import TINY_GT
from helpers import save_table_detector, write_config

from ssd_eval.cli import main
from ssd_eval.config.run import GateConfig
from ssd_eval.evaluation.scoring import CategoryScore
from ssd_eval.reports.baseline import Baseline
from ssd_eval.reports.gate import (
    GateReport,
    RunFacts,
    check_class_drops,
    check_config_rules,
    check_drop,
    check_min,
    skipped_check,
)


def cat(cid: int, name: str, ap: float | None, num_gt: int = 5) -> CategoryScore:
    return CategoryScore(cid, name, ap, ap, num_gt, 3)


def test_min_and_drop():
    assert check_min({"AP": 0.2}, metric="AP", floor=0.2).passed
    failed = check_min({"AP": 0.18}, metric="AP", floor=0.19, subject="ov")
    assert not failed.passed
    assert failed.message == "ov: AP 0.1800 is below the minimum 0.1900 by 0.0100"
    assert check_drop({"AP": 0.19}, {"AP": 0.195}, metric="AP", max_drop=0.005, against="x").passed
    drop = check_drop({"AP": 0.18}, {"AP": 0.195}, metric="AP", max_drop=0.005, against="reference cpu")
    assert not drop.passed and "(delta -0.0150): drops more than the allowed 0.0050" in drop.message
    assert check_drop({"AP": 0.3}, {"AP": 0.195}, metric="AP", max_drop=0.0, against="x").passed  # gains pass
    missing = check_drop({"AP50": 0.3}, {"AP": 0.2}, metric="AP50", max_drop=0.0, against="baseline b")
    assert not missing.passed and "baseline b has no AP50" in missing.message
    assert not check_min({"AP": 0.2}, metric="mAP", floor=0.1).passed


def test_class_drops():
    run = [
        cat(1, "person", 0.50),
        cat(2, "bicycle", 0.30),
        cat(3, "car", 0.10, num_gt=1),
        cat(4, "bus", None),
    ]
    ref = [cat(1, "person", 0.52), cat(2, "bicycle", 0.40), cat(3, "car", 0.60, num_gt=1), cat(4, "bus", 0.5)]
    # Drops: person 0.02, bicycle 0.10, car 0.50; bus has no AP in the run and is not compared.
    check = check_class_drops(run, ref, max_drop=0.05, against="reference cpu")
    assert not check.passed
    assert check.message.startswith("2 of 3 categories drop more than 0.0500 vs reference cpu: car 0.1000 vs")
    # Categories with fewer than 2 gt boxes are left out: only bicycle fails.
    check = check_class_drops(run, ref, max_drop=0.05, against="r", min_gt=2)
    assert "1 of 2 categories" in check.message
    assert check_class_drops(run, ref, max_drop=0.5, against="r").passed


def _baseline(**protocol) -> Baseline:
    return Baseline(
        name="b",
        kind="measured",
        source="test",
        stats={"AP": 0.5},
        protocol={"selection": "annotated", "num_images": 5, **protocol},
        model={"name": "m.onnx", "sha256": "abc"},
        per_category=(cat(1, "person", 0.6),),
    )


def test_config_rules_partial_and_mismatch():
    gate = GateConfig(
        min_ap=0.4, baseline=Path("b.json"), max_baseline_drop=0.01, max_class_baseline_drop=0.05
    )
    facts = RunFacts(
        stats={"AP": 0.45},
        per_category=(cat(1, "person", 0.5),),
        selection="annotated",
        num_images=5,
        complete=True,
    )
    checks = check_config_rules(facts, gate, _baseline())
    assert [c.passed for c in checks] == [True, False, False]
    assert "AP 0.4500 vs baseline b 0.5000 (delta -0.0500)" in checks[1].message
    assert "[another model" not in checks[1].message  # the run's sha256 is unknown here
    partial = check_config_rules(RunFacts(**{**facts.__dict__, "complete": False}), gate, _baseline())
    assert all(c.skipped and c.passed for c in partial) and len(partial) == 3
    other = check_config_rules(facts, gate, _baseline(num_images=4952))
    assert (
        not other[1].passed
        and "baseline b is for 4952 images, this run scored 5: not comparable" in other[1].message
    )
    sha = check_config_rules(RunFacts(**{**facts.__dict__, "model_sha256": "def"}), gate, _baseline())
    assert "[another model than the baseline's m.onnx]" in sha[1].message


def test_report_truthiness():
    assert GateReport()  # no rules: passes
    report = GateReport((skipped_check("r", "why"), check_min({"AP": 0.1}, metric="AP", floor=0.2)))
    assert not report and len(report.failures) == 1 and len(report.skipped) == 1


@pytest.fixture
def run_setup(tmp_path, tiny_coco):
    model = save_table_detector(tmp_path / "perfect.onnx", tiny_coco, TINY_GT)
    return tmp_path, write_config(tmp_path / "c.yaml", model, tiny_coco)


def _set_gate(config: Path, **gate) -> Path:
    data = yaml.safe_load(config.read_text())
    data["gate"] = gate
    config.write_text(yaml.safe_dump(data))
    return config


def test_run_gate_with_baseline_exit_codes(run_setup, capsys):
    tmp_path, config = run_setup
    # A measured baseline from a first run, then gates against it.
    assert main(["--config", str(config), "--run-name", "first", "--quiet"]) == 0
    assert (tmp_path / "results" / "first" / "junit.xml").is_file()  # written even without rules
    baseline = tmp_path / "baselines" / "tiny.json"
    assert main(["baseline", str(tmp_path / "results" / "first"), "--output", str(baseline), "--quiet"]) == 0
    capsys.readouterr()
    _set_gate(config, baseline=str(baseline), max_baseline_drop=0.0, max_class_baseline_drop=0.0, min_ap=0.99)
    assert main(["--config", str(config), "--run-name", "second", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.count("gate PASS") == 3
    metrics = json.loads((tmp_path / "results" / "second" / "metrics.json").read_text())
    assert [g["passed"] for g in metrics["gate"]] == [True, True, True]
    # A partial run skips the rules whose figures are for the whole selection.
    assert main(["--config", str(config), "--run-name", "partial", "--quiet", "--limit", "2"]) == 0
    assert capsys.readouterr().out.count("gate skipped") == 3
    # A floor above what the model reaches fails, one line on stderr.
    _set_gate(config, min_ap=1.5)
    assert main(["--config", str(config), "--run-name", "x", "--quiet"]) == 2  # 1.5 is not a valid floor
    assert "gate.min_ap: must be in [0, 1]" in capsys.readouterr().err
    worse = save_table_detector(tmp_path / "worse.onnx", tmp_path / "coco", {**TINY_GT, 2: []})
    _set_gate(config, baseline=str(baseline), max_baseline_drop=0.01)
    assert main(["--config", str(config), "--model", str(worse), "--run-name", "third", "--quiet"]) == 1
    err = capsys.readouterr().err
    # Image 2's person missed: person recall 3/4 at precision 1 (76 of 101 recall points), dog and
    # toothbrush 1.0 -> AP (76/101 + 2) / 3 = 0.9175.
    assert (
        "gate FAIL: AP 0.9175 vs baseline tiny 1.0000 (delta -0.0825): drops more than the allowed 0.0100"
        in err
    )
    assert "[another model than the baseline's perfect.onnx]" in err


def test_run_gate_config_errors(run_setup, capsys):
    tmp_path, config = run_setup
    _set_gate(config, baseline=str(tmp_path / "none.json"), max_baseline_drop=0.01)
    assert main(["--config", str(config), "--quiet"]) == 2
    assert "baseline file" in capsys.readouterr().err
    _set_gate(config, max_baseline_drop=0.01)
    assert main(["--config", str(config), "--quiet"]) == 2
    assert "gate.baseline: set a baseline file" in capsys.readouterr().err
    published = Path(__file__).resolve().parents[1] / "results" / "baselines" / "ssd-10-published.json"
    _set_gate(config, baseline=str(published), max_class_baseline_drop=0.01)
    assert main(["--config", str(config), "--quiet"]) == 2
    assert "has no per-category AP (published figures)" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()  # all refused before any model loaded
