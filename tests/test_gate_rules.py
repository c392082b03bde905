"""Gate rules on undefined stats (issue 17): COCOeval's -1 is neither passed nor failed, on either side.

pycocotools reports a stat as -1 when it has no ground truth in its area range (the tiny set has no
object larger than 96x96, so its APl and ARl are -1). A rule holding -1 against a figure used to pass
(`expected` 0 ± 1) or fail (`min_ap` 0) on a number that is not one; it is now "not comparable".
"""

from __future__ import annotations

import json

from conftest import TINY_GT
from helpers import save_table_detector, write_config

from ssd_eval.cli import main
from ssd_eval.config.run import ExpectedConfig, GateConfig
from ssd_eval.reports.baseline import Baseline
from ssd_eval.reports.gate import RunFacts, check_drop, check_expected, check_min, check_run

UNDEFINED_RUN = (
    "APl is undefined for this run (pycocotools reports -1: no ground truth in its area range), "
    "so the rule cannot be evaluated"
)


def whole(check) -> tuple[str, str, str, str]:
    return (check.rule, check.state, check.message, check.subject)


def test_min_on_an_undefined_stat_is_not_comparable():
    assert whole(check_min({"APl": -1.0}, metric="APl", floor=0.0, subject="ov")) == (
        "APl >= 0.0000",
        "not comparable",
        f"ov: not comparable: {UNDEFINED_RUN}",
        "ov",
    )
    # A defined 0 is a figure: it meets a floor of 0 and misses one of 0.25.
    assert check_min({"APl": 0.0}, metric="APl", floor=0.0).state == "passed"
    assert check_min({"APl": 0.0}, metric="APl", floor=0.25).state == "failed"


def test_expected_on_an_undefined_stat_is_not_comparable():
    # |-1 - 0| = 1 <= tolerance 1: this passed before.
    figure = ExpectedConfig(metric="APl", value=0.0, tolerance=1.0)
    assert whole(check_expected({"APl": -1.0}, figure)) == (
        "APl = 0.0000 ± 1.0000",
        "not comparable",
        f"not comparable: {UNDEFINED_RUN}",
        "",
    )
    # A baseline's figure of -1 (a baseline file may hold it: "no data") is not held against either.
    held = ExpectedConfig(metric="APl", value=-1.0, tolerance=0.001)
    assert whole(check_expected({"APl": 0.5}, held, subject="s", against="baseline b")) == (
        "APl = -1.0000 ± 0.0010",
        "not comparable",
        "s: not comparable: APl is undefined for baseline b (pycocotools reports -1: no ground truth in "
        "its area range), so the rule cannot be evaluated",
        "s",
    )


def test_drop_on_an_undefined_stat_on_either_side_is_not_comparable():
    kwargs = {"metric": "APl", "max_drop": 0.25, "against": "reference cpu", "subject": "gpu"}
    # The run's -1 against 0.5: a "drop" of 1.5, which failed before.
    assert whole(check_drop({"APl": -1.0}, {"APl": 0.5}, **kwargs)) == (
        "APl drop vs reference cpu <= 0.2500",
        "not comparable",
        f"gpu: not comparable: {UNDEFINED_RUN}",
        "gpu",
    )
    # The reference's -1 against 0.5: a "gain" of 1.5, which passed before.
    assert whole(check_drop({"APl": 0.5}, {"APl": -1.0}, **kwargs)) == (
        "APl drop vs reference cpu <= 0.2500",
        "not comparable",
        "gpu: not comparable: APl is undefined for reference cpu (pycocotools reports -1: no ground "
        "truth in its area range), so the rule cannot be evaluated",
        "gpu",
    )
    # -1 on both sides is no "delta 0" either.
    assert check_drop({"APl": -1.0}, {"APl": -1.0}, **kwargs).state == "not comparable"
    # A missing metric is still a failure (a mistake of the config, not of the data).
    assert check_drop({"APl": -1.0}, {"AP": 0.5}, **kwargs).state == "failed"


def test_a_run_whose_gated_stats_are_all_undefined_has_no_verdict():
    run = RunFacts(
        stats={"AP": 0.5, "APl": -1.0},
        per_category=(),
        selection="annotated",
        num_images=5,
        complete=True,
    )
    baseline = Baseline(
        name="b",
        kind="measured",
        source="results/b",
        stats={"AP": 0.5, "APl": 0.75},
        protocol={"selection": "annotated", "num_images": 5},
        model={},
    )
    gate = GateConfig(
        metric="APl", min_ap=0.0, baseline=None, max_baseline_drop=0.25, baseline_stats=("APl",)
    )
    expected = ExpectedConfig(metric="APl", value=0.0, tolerance=1.0)
    report = check_run(run, expected=expected, gate=gate, baseline=baseline)
    assert [c.state for c in report.checks] == ["not comparable"] * 4
    assert (report.verdict, report.exit_code) == ("NO VERDICT", 0)
    assert report.reason == "no rule was evaluated (4 not comparable)"


def test_the_cli_reports_an_undefined_stat_as_not_comparable(tmp_path, tiny_coco, capsys):
    # The tiny set's largest box is 60x45: no large object, so APl is -1 (no ground truth there).
    model = save_table_detector(tmp_path / "perfect.onnx", tiny_coco, TINY_GT)
    config = write_config(
        tmp_path / "c.yaml", model, tiny_coco, expected={"metric": "APl", "value": 0.0, "tolerance": 1.0}
    )
    assert main(["--config", str(config), "--run-name", "r"]) == 0
    out = capsys.readouterr().out
    assert f"gate not comparable: APl = 0.0000 ± 1.0000: not comparable: {UNDEFINED_RUN}\n" in out
    assert "gate verdict NO VERDICT: no rule was evaluated (1 not comparable)\n" in out
    metrics = json.loads((tmp_path / "results" / "r" / "metrics.json").read_text())
    assert metrics["stats"]["APl"] == -1.0
    assert [r["state"] for r in metrics["gate"]["rules"]] == ["not comparable"]
    # With gate.required, no verdict is a failure: exit 1, never a pass on -1.
    required = write_config(
        tmp_path / "required.yaml",
        model,
        tiny_coco,
        gate={"metric": "APl", "min_ap": 0.0, "required": True},
    )
    assert main(["--config", str(required), "--run-name", "req"]) == 1
