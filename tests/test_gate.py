"""Gate rules as pure functions, and the `run` command's gate: exit codes, baselines, partial runs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from conftest import TINY_GT
from helpers import save_table_detector, write_config

from ssd_eval.cli import main
from ssd_eval.config.run import ExpectedConfig, GateConfig
from ssd_eval.evaluation.scoring import CategoryScore
from ssd_eval.reports.baseline import Baseline
from ssd_eval.reports.gate import (
    GateReport,
    RunFacts,
    check_class_drops,
    check_config_rules,
    check_drop,
    check_expected,
    check_min,
    expected_rule,
    model_mismatch,
    not_comparable,
    partial_reason,
    skipped_check,
)


def cat(cid: int, name: str, ap: float | None, num_gt: int = 5) -> CategoryScore:
    return CategoryScore(cid, name, ap, ap, num_gt, 3)


def complete_run(stats: dict[str, float], **facts) -> RunFacts:
    """The facts of a full run over the 5 annotated images (per_category, model as given)."""
    base = {"per_category": (), "selection": "annotated", "num_images": 5, "complete": True}
    return RunFacts(stats=stats, **{**base, **facts})


def test_min_and_drop():
    assert check_min({"AP": 0.2}, metric="AP", floor=0.2).passed
    failed = check_min({"AP": 0.18}, metric="AP", floor=0.19, subject="ov")
    assert not failed.passed
    assert failed.message == "ov: AP 0.1800 is below the minimum 0.1900 by 0.0100"
    assert check_drop({"AP": 0.19}, {"AP": 0.195}, metric="AP", max_drop=0.005, against="x").passed
    drop = check_drop({"AP": 0.18}, {"AP": 0.195}, metric="AP", max_drop=0.005, against="reference cpu")
    assert not drop.passed and "(delta -0.0150): drops more than the allowed 0.0050" in drop.message
    assert check_drop({"AP": 0.3}, {"AP": 0.195}, metric="AP", max_drop=0.0, against="x").passed  # gains pass
    missing = check_drop(
        {"AP50": 0.3}, {"AP": 0.2, "AR100": 0.3}, metric="AP50", max_drop=0.0, against="baseline b"
    )
    assert (missing.state, missing.message) == ("failed", "baseline b has no AP50 (it has: AP, AR100)")
    assert check_min({"AP": 0.2}, metric="AP", floor=0.1).subject == ""  # a single run's check names none
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
    facts = complete_run({"AP": 0.45}, per_category=(cat(1, "person", 0.5),))
    checks = check_config_rules(facts, gate, _baseline())
    assert [c.state for c in checks] == ["passed", "failed", "failed"]
    assert "AP 0.4500 vs baseline b 0.5000 (delta -0.0500)" in checks[1].message
    partial_facts = RunFacts(**{**facts.__dict__, "complete": False, "partial": "shard 1/4"})
    partial = check_config_rules(partial_facts, gate, _baseline())
    assert [c.state for c in partial] == ["not comparable"] * 3
    assert partial[0].message == (
        "not comparable: partial run (shard 1/4): the figure is for the whole image selection; "
        "deferred to `ssd-eval merge` of all shards"
    )
    other = check_config_rules(facts, gate, _baseline(num_images=4952))
    assert [c.state for c in other] == ["passed", "not comparable", "not comparable"]
    assert other[1].message == "not comparable: baseline b is for 4952 images, this run scored 5"
    other_model = RunFacts(**{**facts.__dict__, "model_sha256": "def", "model_name": "twin.onnx"})
    sha = check_config_rules(other_model, gate, _baseline())
    assert sha[1].state == "not comparable"
    assert sha[1].message == (
        "not comparable: the model is not m.onnx: the figure is for m.onnx (sha256 abc…), "
        "this run's model (twin.onnx) has sha256 def…"
    )
    # gate.any_model holds another model file (e.g. an int8 conversion) against the baseline anyway.
    anyway = check_config_rules(other_model, replace(gate, any_model=True), _baseline())
    assert [c.state for c in anyway] == ["passed", "failed", "failed"]


def test_verdicts_and_exit_codes():
    passed = check_min({"AP": 0.3}, metric="AP", floor=0.2)
    failed = check_min({"AP": 0.1}, metric="AP", floor=0.2)
    skipped = skipped_check("r", "why")
    unfit = not_comparable("r2", "the model is not ssd-10")
    assert (GateReport().verdict, GateReport().exit_code) == ("NO VERDICT", 0)  # no rules
    assert GateReport().reason == "no rules are set"
    assert (GateReport(required=True).verdict, GateReport(required=True).exit_code) == ("NO VERDICT", 1)
    every_rule_out = GateReport((skipped, unfit))
    assert (every_rule_out.verdict, every_rule_out.exit_code, bool(every_rule_out)) == (
        "NO VERDICT",
        0,
        False,
    )
    assert every_rule_out.reason == "no rule was evaluated (1 skipped, 1 not comparable)"
    assert GateReport((skipped, unfit), required=True).exit_code == 1
    # A shard defers its rules: exit 0 even when the gate is required, or the merge never starts.
    deferred = GateReport((unfit,), required=True, partial="shard 1/2")
    assert (deferred.verdict, deferred.exit_code) == ("NO VERDICT", 0)
    assert "partial run (shard 1/2)" in deferred.reason
    mixed = GateReport((skipped, passed))
    assert (mixed.verdict, mixed.exit_code, bool(mixed)) == ("PASS", 0, True)
    assert mixed.reason == "1 of 2 rule(s) passed (1 skipped)"
    report = GateReport((skipped, failed, passed), required=True)
    assert (report.verdict, report.exit_code, bool(report)) == ("FAIL", 1, False)
    assert len(report.failures) == 1
    assert GateReport((passed,), error="nothing was compared").exit_code == 2


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
    assert main(["--config", str(config), "--run-name", "first"]) == 0
    assert (tmp_path / "results" / "first" / "junit.xml").is_file()  # written even without rules
    baseline = tmp_path / "baselines" / "tiny.json"
    assert main(["baseline", str(tmp_path / "results" / "first"), "--output", str(baseline)]) == 0
    capsys.readouterr()
    _set_gate(config, baseline=str(baseline), max_baseline_drop=0.0, max_class_baseline_drop=0.0, min_ap=0.99)
    assert main(["--config", str(config), "--run-name", "second"]) == 0
    out = capsys.readouterr().out
    assert out.count("gate PASS") == 3
    metrics = json.loads((tmp_path / "results" / "second" / "metrics.json").read_text())
    assert [g["state"] for g in metrics["gate"]["rules"]] == ["passed"] * 3
    assert metrics["gate"]["verdict"] == "PASS"
    # On a partial run the rules whose figures are for the whole selection are not comparable.
    assert main(["--config", str(config), "--run-name", "partial", "--limit", "2"]) == 0
    assert capsys.readouterr().out.count("gate not comparable") == 3
    # A floor above what the model reaches fails, one line on stderr.
    _set_gate(config, min_ap=1.5)
    assert main(["--config", str(config), "--run-name", "x"]) == 2  # 1.5 is not a valid floor
    assert "gate.min_ap: must be in [0, 1]" in capsys.readouterr().err
    worse = save_table_detector(tmp_path / "worse.onnx", tmp_path / "coco", {**TINY_GT, 2: []})
    # A measured baseline holds another model file (what a regression gate is for): a real FAIL.
    _set_gate(config, baseline=str(baseline), max_baseline_drop=0.01)
    assert main(["--config", str(config), "--model", str(worse), "--run-name", "other"]) == 1
    assert "drops more than the allowed 0.0100" in capsys.readouterr().err
    # gate.any_model changes nothing for it.
    _set_gate(config, baseline=str(baseline), max_baseline_drop=0.01, any_model=True)
    assert main(["--config", str(config), "--model", str(worse), "--run-name", "third"]) == 1
    err = capsys.readouterr().err
    # Image 2's person missed: person recall 3/4 at precision 1 (76 of 101 recall points), dog and
    # toothbrush 1.0 -> AP (76/101 + 2) / 3 = 0.9175.
    assert (
        "gate FAIL: AP 0.9175 vs baseline tiny 1.0000 (delta -0.0825): drops more than the allowed 0.0100"
        in err
    )
    assert "gate verdict FAIL: 1 of 1 rule(s) failed" in err


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


# Every rule's whole verdict (rule name, state, message, subject), written out by hand; thresholds
# exactly at the boundary, with numbers exact in binary (issue 11).


def whole(check) -> tuple[str, str, str, str]:
    return (check.rule, check.state, check.message, check.subject)


def test_min_rule():
    assert whole(check_min({"AP": 0.25}, metric="AP", floor=0.25, subject="ov")) == (
        "AP >= 0.2500",
        "passed",
        "ov: AP 0.2500 >= 0.2500",
        "ov",
    )
    assert whole(check_min({"AP": 0.2}, metric="AP", floor=0.25, subject="ov")) == (
        "AP >= 0.2500",
        "failed",
        "ov: AP 0.2000 is below the minimum 0.2500 by 0.0500",
        "ov",
    )
    assert whole(check_min({"AP": 0.2, "AP50": 0.3}, metric="mAP", floor=0.1, subject="ov")) == (
        "mAP >= 0.1000",
        "failed",
        "metric 'mAP' is not a COCO stat (one of AP, AP50)",
        "ov",
    )
    # Float noise of 1e-12 below the floor is allowed, exactly; more is not.
    assert check_min({"AP": 0.5 - 1e-12}, metric="AP", floor=0.5).passed
    assert not check_min({"AP": 0.5 - 1e-9}, metric="AP", floor=0.5).passed


def test_drop_rule():
    kwargs = {"metric": "AP", "max_drop": 0.25, "against": "baseline b", "subject": "s"}
    assert whole(check_drop({"AP": 0.5}, {"AP": 0.75}, **kwargs)) == (
        "AP drop vs baseline b <= 0.2500",
        "passed",
        "s: AP 0.5000 vs baseline b 0.7500 (delta -0.2500, allowed drop 0.2500)",
        "s",
    )
    assert whole(check_drop({"AP": 0.25}, {"AP": 0.75}, **kwargs)) == (
        "AP drop vs baseline b <= 0.2500",
        "failed",
        "s: AP 0.2500 vs baseline b 0.7500 (delta -0.5000): drops more than the allowed 0.2500",
        "s",
    )
    # A published figure's own rounding widens the allowed drop: 0.25 + 0.25 exactly passes.
    slack = check_drop({"AP": 0.25}, {"AP": 0.75}, slack=0.25, **kwargs)
    assert whole(slack) == (
        "AP drop vs baseline b <= 0.2500",
        "passed",
        "s: AP 0.2500 vs baseline b 0.7500 (delta -0.5000, allowed drop 0.2500 + 0.25 "
        "(the figure's published precision))",
        "s",
    )
    assert not check_drop({"AP": 0.25 - 1e-9}, {"AP": 0.75}, slack=0.25, **kwargs).passed
    assert whole(check_drop({"AP": 0.5}, {"AP50": 0.7}, **kwargs)) == (
        "AP drop vs baseline b <= 0.2500",
        "failed",
        "baseline b has no AP (it has: AP50)",
        "s",
    )
    assert check_drop({"AP": 0.5}, {}, **kwargs).message == "baseline b has no AP (it has: none)"
    assert whole(check_drop({"AP50": 0.5}, {"AP": 0.7}, **kwargs)) == (
        "AP drop vs baseline b <= 0.2500",
        "failed",
        "metric 'AP' is not a COCO stat (one of AP50)",
        "s",
    )


def test_expected_rule_with_slack_and_subject():
    figure = ExpectedConfig(metric="AP", value=0.19578, tolerance=0.001)
    assert expected_rule(figure, slack=0.0005) == "AP = 0.19578 ± 0.0010 + 0.0005"
    assert expected_rule(ExpectedConfig(metric="AP", value=0.195, tolerance=0.003)) == "AP = 0.1950 ± 0.0030"
    kwargs = {"slack": 0.0005, "subject": "s", "against": "baseline b"}
    assert whole(check_expected({"AP": 0.196}, figure, **kwargs)) == (
        "AP = 0.19578 ± 0.0010 + 0.0005",
        "passed",
        "s: AP 0.1960 is within 0.0015 of baseline b 0.19578 (delta +0.0002)",
        "s",
    )
    # delta +0.00102: inside tolerance + slack (0.0015), outside tolerance alone.
    assert check_expected({"AP": 0.1968}, figure, **kwargs).passed
    assert whole(check_expected({"AP": 0.1975}, figure, **kwargs)) == (
        "AP = 0.19578 ± 0.0010 + 0.0005",
        "failed",
        "s: AP 0.1975 misses baseline b 0.19578 by +0.0017 (tolerance 0.0015)",
        "s",
    )
    assert whole(check_expected({"AP50": 0.3}, figure, **kwargs)) == (
        "AP = 0.19578 ± 0.0010 + 0.0005",
        "failed",
        "metric 'AP' is not a COCO stat (one of AP50)",
        "s",
    )


def test_expected_rule_boundary_is_inclusive():
    figure = ExpectedConfig(metric="AP", value=0.5, tolerance=0.25)
    measured = 0.5 + (0.25 + 1e-12)  # |delta| == tolerance + the 1e-12 float allowance, exactly
    assert measured - 0.5 == 0.25 + 1e-12
    assert check_expected({"AP": measured}, figure).passed
    assert not check_expected({"AP": 0.5 + 0.25 + 1e-9}, figure).passed


def test_tiny_tolerances_and_deltas_in_scientific_notation():
    figure = ExpectedConfig(metric="AP", value=0.5, tolerance=1e-5)
    assert expected_rule(figure) == "AP = 0.5000 ± 1.0e-05"
    assert check_expected({"AP": 0.500002}, figure).message == (
        "AP 0.5000 is within 1.0e-05 of the reference 0.5000 (delta +2.0e-06)"
    )
    assert check_expected({"AP": 0.5}, figure).message == (
        "AP 0.5000 is within 1.0e-05 of the reference 0.5000 (delta 0.0000)"
    )
    # 5e-5 itself is shown in 4 decimals.
    assert expected_rule(ExpectedConfig(metric="AP", value=0.5, tolerance=5e-5)) == "AP = 0.5000 ± 0.0001"
    # A tolerance of exactly 0 is 0.0000, not 0.0e+00.
    exact = ExpectedConfig(metric="AP", value=0.5, tolerance=0.0)
    assert expected_rule(exact) == "AP = 0.5000 ± 0.0000"
    assert check_expected({"AP": 0.5}, exact).message == (
        "AP 0.5000 is within 0.0000 of the reference 0.5000 (delta 0.0000)"
    )


def test_skipped_and_not_comparable_name_the_subject():
    assert whole(skipped_check("r", "why", subject="s")) == ("r", "skipped", "s: why", "s")
    assert whole(skipped_check("r", "why")) == ("r", "skipped", "why", "")
    assert whole(not_comparable("r", "why", subject="s")) == (
        "r",
        "not comparable",
        "s: not comparable: why",
        "s",
    )


def _facts(**kwargs) -> RunFacts:
    base = {"stats": {"AP": 0.2}, "per_category": (), "selection": "annotated", "num_images": 5}
    return RunFacts(**{**base, "complete": False, **kwargs})


def test_partial_reason_names_where_the_rule_is_applied():
    assert partial_reason(_facts(subset="limit 20")) == (
        "the figure is for the whole image selection, this run evaluated 5 images (limit 20); gate a "
        "subset against a baseline made from a reference run of the same images (`ssd-eval baseline RUN_DIR`)"
    )
    assert partial_reason(_facts(partial="shard 2/4")) == (
        "partial run (shard 2/4): the figure is for the whole image selection; "
        "deferred to `ssd-eval merge` of all shards"
    )


def test_model_mismatch_names_both_models():
    run = _facts(model_sha256="ab" * 32, model_name="mine.onnx")
    assert model_mismatch(run, "AB" * 32) is None  # case does not matter
    assert model_mismatch(run, None) is None and model_mismatch(_facts(), "cd" * 32) is None
    assert model_mismatch(run, "cd" * 32) == (
        "the model is not another model: the figure is for another model (sha256 cdcdcdcdcdcd…), "
        "this run's model (mine.onnx) has sha256 abababababab…"
    )
    ssd10 = "80013dd940efc1462c616143b461ef35885bcc1706e0670b66623293b4b52c59"
    assert model_mismatch(run, ssd10).startswith(
        "the model is not ssd-10.onnx: the figure is for ssd-10.onnx"
    )
    assert model_mismatch(_facts(model_sha256="ab" * 32), "cd" * 32, "theirs.onnx") == (
        "the model is not theirs.onnx: the figure is for theirs.onnx (sha256 cdcdcdcdcdcd…), "
        "this run's model has sha256 abababababab…"
    )


def test_model_mismatch_with_a_model_that_is_not_known():
    """Imported detections that do not name their model: a figure tied to a model does not apply to
    them, nor does a figure made from such a run apply to any model (docs/import.md)."""
    imported = _facts(model_sha256="not known")
    advice = "name it with `ssd-eval import --model FILE` or `--model-sha256 SHA256`"
    assert model_mismatch(imported, "cd" * 32, "theirs.onnx") == (
        "the figure is for theirs.onnx (sha256 cdcdcdcdcdcd…) and this run's model is not known (imported "
        f"detections): {advice}"
    )
    ssd10 = "80013dd940efc1462c616143b461ef35885bcc1706e0670b66623293b4b52c59"
    assert model_mismatch(imported, ssd10) == (
        "the figure is for ssd-10.onnx (sha256 80013dd940ef…) and this run's model is not known (imported "
        f"detections): {advice}"
    )
    assert model_mismatch(imported, "cd" * 32) == (
        "the figure is for a model (sha256 cdcdcdcdcdcd…) and this run's model is not known (imported "
        f"detections): {advice}"
    )
    run = _facts(model_sha256="ab" * 32)
    remake = "it holds no model's runs; remake it from an import that names its model (--model-sha256)"
    assert model_mismatch(run, "not known", "b.json") == (
        f"the figure was measured on detections of a model that is not known (b.json): {remake}"
    )
    assert model_mismatch(run, "not known") == (
        f"the figure was measured on detections of a model that is not known (imported): {remake}"
    )


def test_partial_reason_of_a_subset_that_does_not_say_how():
    assert partial_reason(_facts()) == (
        "the figure is for the whole image selection, this run evaluated 5 images (a subset); gate a "
        "subset against a baseline made from a reference run of the same images (`ssd-eval baseline RUN_DIR`)"
    )


def test_class_drops_whole_messages():
    ref = [cat(k, f"c{k}", 0.9) for k in range(1, 8)]
    run = [cat(1, "c1", None)] + [cat(k, f"c{k}", 0.9 - 0.1 * k) for k in range(2, 8)]
    # c1 has no AP in the run (skipped, and the ones after it still count); c2..c7 drop 0.2..0.7.
    check = check_class_drops(run, ref, max_drop=0.1, against="r", subject="s")
    assert whole(check) == (
        "per-class AP drop vs r <= 0.1000",
        "failed",
        "s: 6 of 6 categories drop more than 0.1000 vs r: c7 0.2000 vs 0.9000 (-0.7000), "
        "c6 0.3000 vs 0.9000 (-0.6000), c5 0.4000 vs 0.9000 (-0.5000), c4 0.5000 vs 0.9000 (-0.4000), "
        "c3 0.6000 vs 0.9000 (-0.3000) and 1 more",
        "s",
    )
    passing = check_class_drops(run, ref, max_drop=0.75, against="r", subject="s")
    assert whole(passing) == (
        "per-class AP drop vs r <= 0.7500",
        "passed",
        "s: 6 categories within 0.7500 of r (largest drop c7 +0.7000)",
        "s",
    )
    assert whole(check_class_drops([cat(1, "c1", None)], ref, max_drop=0.1, against="r", subject="s")) == (
        "per-class AP drop vs r <= 0.1000",
        "failed",
        "s: no category has an AP on both sides to compare",
        "s",
    )
    # min_gt: a category with exactly min_gt boxes counts.
    few = [cat(2, "c2", 0.5, num_gt=3)]
    assert "1 of 1 categories" in check_class_drops(few, ref, max_drop=0.1, against="r", min_gt=3).message
    fewer = check_class_drops(few, ref, max_drop=0.1, against="r", min_gt=4)
    assert fewer.message == "no category has an AP on both sides to compare"


@pytest.mark.parametrize("drop", [0.25, 0.5])
def test_class_drop_exactly_at_the_limit_passes(drop):
    ref = [cat(1, "c1", 0.75)]
    assert check_class_drops([cat(1, "c1", 0.75 - drop)], ref, max_drop=drop, against="r").passed
    assert not check_class_drops([cat(1, "c1", 0.75 - drop - 1e-9)], ref, max_drop=drop, against="r").passed


# The comparison's gate (reports/gate_compare.py), on hand-made comparison results.


def _protocol(limit=None):
    from ssd_eval.reports.results import Protocol

    return Protocol("annotated", 5, 6, 5, limit, None, False, 0.0, "pillow", (1200, 1200))


def _report(name, ap=None, *, skip="", per_category=(), model=True):
    from ssd_eval.reports.comparison import RunReport
    from ssd_eval.reports.results import ModelInfo

    info = ModelInfo(path=f"/m/{name}.onnx", sha256="c" * 64, size_bytes=1, source=None) if model else None
    if ap is None:
        return RunReport(name, "skipped", name, {}, skip_reason=skip)
    return RunReport(name, "ran", name, {}, model=info, stats={"AP": ap}, per_category=per_category)


def _comparison(*runs, limit=None):
    from ssd_eval.reports.comparison import CompareResult

    return CompareResult("/out", runs[0].name, tuple(runs), _protocol(limit), 0.5)


def test_comparison_facts():
    from ssd_eval.reports.gate_compare import comparison_facts

    per_category = (cat(1, "person", 0.5),)
    report = _report("gpu", 0.25, per_category=per_category)
    facts = comparison_facts(_comparison(_report("cpu", 0.5), report, limit=20), report)
    assert facts == RunFacts(
        stats={"AP": 0.25},
        per_category=per_category,
        selection="annotated",
        num_images=5,
        complete=False,
        model_sha256="c" * 64,
        model_name="gpu.onnx",
        subset="limit 20",
    )
    bare = _report("gpu", 0.25, model=False)
    facts = comparison_facts(_comparison(_report("cpu", 0.5), bare), bare)
    assert (facts.complete, facts.partial, facts.model_sha256, facts.model_name) == (True, "", "", "")


def _compare_config(**gate):
    from ssd_eval.config.compare import CompareConfig, CompareGateConfig

    skip = gate.pop("skip_unavailable", False)
    return CompareConfig(skip_unavailable=skip, gate=CompareGateConfig(**gate))


def test_comparison_gate_rules_in_order():
    from ssd_eval.reports.gate_compare import gate_comparison

    ref = _report("cpu", 0.5, per_category=(cat(1, "person", 0.5),))
    trt = _report("trt", skip="TensorrtExecutionProvider is not available")
    gpu = _report("gpu", 0.25, per_category=(cat(1, "person", 0.25),))
    config = _compare_config(min_ap=0.3, max_ap_drop=0.125, max_class_ap_drop=0.5, required=True)
    report = gate_comparison(_comparison(ref, trt, gpu), config, None)
    assert [whole(c) for c in report.checks] == [
        ("AP >= 0.3000", "passed", "cpu: AP 0.5000 >= 0.3000", "cpu"),
        (
            "trt evaluated",
            "failed",
            "trt: not evaluated: TensorrtExecutionProvider is not available (gate.required)",
            "trt",
        ),
        ("AP >= 0.3000", "failed", "gpu: AP 0.2500 is below the minimum 0.3000 by 0.0500", "gpu"),
        (
            "AP drop vs reference cpu <= 0.1250",
            "failed",
            "gpu: AP 0.2500 vs reference cpu 0.5000 (delta -0.2500): drops more than the allowed 0.1250",
            "gpu",
        ),
        (
            "per-class AP drop vs reference cpu <= 0.5000",
            "passed",
            "gpu: 1 categories within 0.5000 of reference cpu (largest drop person +0.2500)",
            "gpu",
        ),
    ]
    assert report.required and report.error == "" and report.verdict == "FAIL"
    optional = gate_comparison(_comparison(ref, trt, gpu), _compare_config(), None)
    assert [whole(c) for c in optional.checks] == [
        ("trt evaluated", "skipped", "trt: not evaluated: TensorrtExecutionProvider is not available", "trt")
    ]
    assert not optional.required
    nameless = gate_comparison(_comparison(ref, _report("x"), gpu), _compare_config(), None)
    assert nameless.checks[0].message == "x: not evaluated: skipped"


def test_a_comparison_where_nothing_ran_besides_the_reference():
    from ssd_eval.reports.gate_compare import gate_comparison

    ref = _report("cpu", 0.5)
    runs = (ref, _report("gpu", skip="no CUDA"), _report("trt"))
    report = gate_comparison(_comparison(*runs), _compare_config(), None)
    assert report.error == (
        "nothing was compared: no run besides the reference cpu ran (gpu: no CUDA; trt: skipped); "
        "install what the runs need (see docs/compare.md)"
    )
    required = gate_comparison(
        _comparison(*runs), _compare_config(skip_unavailable=True, required=True), None
    )
    assert required.error.endswith("(see docs/compare.md), or drop gate.required")
    allowed = gate_comparison(_comparison(*runs), _compare_config(skip_unavailable=True), None)
    assert allowed.error == ""
    alone = gate_comparison(_comparison(ref), _compare_config(), None)
    assert alone.error == (
        "nothing was compared: no run besides the reference cpu ran (no runs listed); "
        "install what the runs need (see docs/compare.md)"
    )
    # A reference that did not run: the runs get their own rules but none against it.
    gpu = _report("gpu", 0.25)
    no_ref = gate_comparison(
        _comparison(_report("cpu", skip="x"), gpu), _compare_config(min_ap=0.2, max_ap_drop=0.0), None
    )
    assert [c.rule for c in no_ref.checks] == ["cpu evaluated", "AP >= 0.2000"]


def _published(**protocol) -> Baseline:
    return Baseline(
        name="card",
        kind="published",
        source="test",
        stats={"AP": 0.196, "AP50": 0.375},
        protocol={"selection": "annotated", "num_images": 5, **protocol},
        model={"name": "ssd-10.onnx", "sha256": "d" * 64},
        decimals={"AP": 3, "AP50": 3},
    )


def test_baseline_figures_held_both_ways_with_their_published_precision():
    gate = GateConfig(baseline=Path("b.json"), baseline_stats=("AP", "AP50"), baseline_tolerance=0.001)
    facts = complete_run({"AP": 0.1972, "AP50": 0.377}, model_sha256="d" * 64)
    # AP: |0.1972 - 0.196| = 0.0012 <= 0.001 + 0.0005; AP50: 0.002 > 0.0015.
    assert [whole(c) for c in check_config_rules(facts, gate, _published())] == [
        (
            "AP = 0.1960 ± 0.0010 + 0.0005",
            "passed",
            "AP 0.1972 is within 0.0015 of baseline card 0.1960 (delta +0.0012)",
            "",
        ),
        (
            "AP50 = 0.3750 ± 0.0010 + 0.0005",
            "failed",
            "AP50 0.3770 misses baseline card 0.3750 by +0.0020 (tolerance 0.0015)",
            "",
        ),
    ]
    # Another selection in the baseline: both figures are not comparable, naming it.
    other = check_config_rules(facts, gate, _published(selection="all"))
    assert [c.state for c in other] == ["not comparable", "not comparable"]
    assert other[0].message == (
        "not comparable: baseline card is for selection 'all', this run used 'annotated'"
    )
    assert check_config_rules(facts, gate, _published(selection=None))[0].passed  # no selection recorded


def test_the_expected_rule_applies_only_to_its_model_and_selection():
    from ssd_eval.reports.gate import check_expected_rule

    facts = RunFacts(
        stats={"AP": 0.195},
        per_category=(),
        selection="all",
        num_images=5,
        complete=True,
        model_sha256="e" * 64,
        model_name="int8.onnx",
    )
    expected = ExpectedConfig(value=0.195, tolerance=0.003, model_sha256="d" * 64)
    mismatch = check_expected_rule(facts, expected, GateConfig())
    assert whole(mismatch) == (
        "AP = 0.1950 ± 0.0030",
        "not comparable",
        "not comparable: the model is not another model: the figure is for another model "
        "(sha256 dddddddddddd…), this run's model (int8.onnx) has sha256 eeeeeeeeeeee…",
        "",
    )
    assert check_expected_rule(facts, expected, GateConfig(any_model=True)).passed
    annotated = ExpectedConfig(value=0.195, tolerance=0.003, selection="annotated")
    assert whole(check_expected_rule(facts, annotated, GateConfig())) == (
        "AP = 0.1950 ± 0.0030",
        "not comparable",
        "not comparable: the figure is for selection 'annotated', this run used 'all'",
        "",
    )
    assert check_expected_rule(facts, ExpectedConfig(value=0.195, selection="all"), GateConfig()).passed


def test_report_reason_counts_the_other_states():
    passed = check_min({"AP": 0.5}, metric="AP", floor=0.1)
    report = GateReport((passed, skipped_check("r", "x"), not_comparable("s", "y")))
    assert report.reason == "1 of 3 rule(s) passed (1 skipped, 1 not comparable)"
    assert GateReport((passed,)).reason == "1 of 1 rule(s) passed"


def test_every_check_names_its_subject_and_a_run_has_none():
    # In a comparison each rule is applied to one run, named by `subject`; a single run has none ("").
    gate = GateConfig(
        min_ap=0.4,
        baseline=Path("b.json"),
        max_baseline_drop=0.01,
        max_class_baseline_drop=0.05,
        baseline_stats=("AP",),
    )
    facts = complete_run({"AP": 0.45}, per_category=(cat(1, "person", 0.5),), model_sha256="abc")
    partial = replace(facts, complete=False, partial="limit 2")
    other_model = replace(facts, model_sha256="def")
    for run in (facts, partial, other_model):
        named = check_config_rules(run, gate, _baseline(), subject="gpu")
        assert len(named) == 4 and {c.subject for c in named} == {"gpu"}
        assert {c.subject for c in check_config_rules(run, gate, _baseline())} == {""}
    assert check_drop({"AP": 0.4}, {"AP": 0.5}, metric="AP", max_drop=0.0, against="x").subject == ""


def test_a_baseline_without_a_model_name_is_another_model():
    gate = GateConfig(baseline=Path("b.json"), max_baseline_drop=0.01)
    facts = complete_run({"AP": 0.5}, model_sha256="def", model_name="twin.onnx")
    nameless = replace(_baseline(), model={"sha256": "abc"})
    (check,) = check_config_rules(facts, gate, nameless)
    assert whole(check) == (
        "AP drop vs baseline b <= 0.0100",
        "not comparable",
        "not comparable: the model is not another model: the figure is for another model (sha256 abc…), "
        "this run's model (twin.onnx) has sha256 def…",
        "",
    )


def test_published_precision_widens_every_rule_against_a_published_baseline():
    gate = GateConfig(baseline=Path("b.json"), max_baseline_drop=0.001, baseline_stats=("AP",))
    facts = complete_run({"AP": 0.1948, "AP50": 0.375}, model_sha256="d" * 64)
    # AP was published as .196 (3 decimals): half a unit of its last digit, 0.0005, is added to the
    # allowed drop (0.196 - 0.1948 = 0.0012 <= 0.001 + 0.0005) and to the figure's tolerance (0.001
    # by default).
    drop, figure = check_config_rules(facts, gate, _published())
    assert whole(drop) == (
        "AP drop vs baseline card <= 0.0010",
        "passed",
        "AP 0.1948 vs baseline card 0.1960 (delta -0.0012, allowed drop 0.0010 + 0.0005 (the figure's "
        "published precision))",
        "",
    )
    assert figure.rule == "AP = 0.1960 ± 0.0010 + 0.0005"
    # Not comparable (a partial run): the rules still name the figure's precision.
    partial = check_config_rules(replace(facts, complete=False, partial="limit 2"), gate, _published())
    assert [c.rule for c in partial] == [
        "AP drop vs baseline card <= 0.0010",
        "AP = 0.1960 ± 0.0010 + 0.0005",
    ]


def test_float_noise_at_a_limit_is_not_a_drop():
    # A drop of 1e-12 (float noise) against an allowed drop of 0 passes; 1e-9 does not.
    assert check_drop({"AP": 0.0}, {"AP": 1e-12}, metric="AP", max_drop=0.0, against="x").passed
    assert not check_drop({"AP": 0.0}, {"AP": 1e-9}, metric="AP", max_drop=0.0, against="x").passed
    noise = check_class_drops([cat(1, "person", 0.0)], [cat(1, "person", 1e-12)], max_drop=0.0, against="x")
    assert noise.passed
    real = check_class_drops([cat(1, "person", 0.0)], [cat(1, "person", 1e-9)], max_drop=0.0, against="x")
    assert not real.passed


def test_class_drops_list_five_and_count_the_rest():
    names = ["person", "bicycle", "car", "motorcycle", "airplane", "bus"]
    ref = [cat(i + 1, name, 0.5) for i, name in enumerate(names)]
    run = [cat(i + 1, name, 0.5 - 0.01 * (i + 1)) for i, name in enumerate(names)]
    listed = (
        "bus 0.4400 vs 0.5000 (-0.0600), airplane 0.4500 vs 0.5000 (-0.0500), motorcycle 0.4600 vs "
        "0.5000 (-0.0400), car 0.4700 vs 0.5000 (-0.0300), bicycle 0.4800 vs 0.5000 (-0.0200)"
    )
    six = check_class_drops(run, ref, max_drop=0.005, against="x")
    assert six.message == f"6 of 6 categories drop more than 0.0050 vs x: {listed} and 1 more"
    five = check_class_drops(run[1:], ref[1:], max_drop=0.005, against="x")
    assert five.message == f"5 of 5 categories drop more than 0.0050 vs x: {listed}"


def test_a_comparison_holds_every_run_against_the_baseline():
    from ssd_eval.reports.gate_compare import gate_comparison

    config = _compare_config(baseline=Path("b.json"), max_baseline_drop=0.01, any_model=True)
    report = gate_comparison(_comparison(_report("cpu", 0.5), _report("gpu", 0.25)), config, _baseline())
    assert [whole(c) for c in report.checks] == [
        (
            "AP drop vs baseline b <= 0.0100",
            "passed",
            "cpu: AP 0.5000 vs baseline b 0.5000 (delta 0.0000, allowed drop 0.0100)",
            "cpu",
        ),
        (
            "AP drop vs baseline b <= 0.0100",
            "failed",
            "gpu: AP 0.2500 vs baseline b 0.5000 (delta -0.2500): drops more than the allowed 0.0100",
            "gpu",
        ),
    ]


def test_class_drops_against_a_baseline_count_only_categories_with_enough_ground_truth():
    # gate.class_min_gt: the car (1 gt box) dropping 0.5 is left out at 2; the person (5) within 0.05.
    gate = GateConfig(baseline=Path("b.json"), max_class_baseline_drop=0.05, class_min_gt=2)
    facts = complete_run(
        {"AP": 0.5}, per_category=(cat(1, "person", 0.6), cat(3, "car", 0.1, num_gt=1)), model_sha256="abc"
    )
    baseline = replace(_baseline(), per_category=(cat(1, "person", 0.6), cat(3, "car", 0.6, num_gt=1)))
    (check,) = check_config_rules(facts, gate, baseline)
    assert check.passed, check.message
    (strict,) = check_config_rules(facts, replace(gate, class_min_gt=1), baseline)
    assert not strict.passed and strict.message.startswith("1 of 2 categories drop more than 0.0500")
