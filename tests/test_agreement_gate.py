"""Agreement rules in the comparison gate (issue 19, item 1): a gate that can fail when detections
change although AP does not.

The runs: a reference that finds each image's one object (score 0.9) and emits four false positives
(score 0.2, below every true positive: AP 1.0 whatever they are); a copy of it; and a "moved" run whose
first false positive on each image sits elsewhere. AP stays 1.0 (a hand count: every true positive
ranks above every false one), but 1 of the 5 detections of each image moved: 40 of 50 visible
reference detections matched (0.8), 10 of 50 run detections extra, 0 of 10 images in full agreement.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from helpers import Det, TinyImage, make_coco, save_table_detector, write_config

from ssd_eval.cli import main
from ssd_eval.config.compare import CompareGateConfig
from ssd_eval.evaluation.agreement import match_detections, summarize_agreement
from ssd_eval.pipeline.decode import Detections
from ssd_eval.reports.comparison import RunReport
from ssd_eval.reports.gate_compare import agreement_checks

IMAGES = tuple(TinyImage(20 + i, 60, 60) for i in range(10))
GT = {im.image_id: [Det(5, 5, 20, 20, 1)] for im in IMAGES}
FALSE = [Det(30 + 6 * k, 40, 5, 5, 18, score=0.2) for k in range(4)]
REFERENCE = {i: [*GT[i], *FALSE] for i in GT}
MOVED = {i: [*GT[i], Det(2, 45, 5, 5, 18, score=0.2), *FALSE[1:]] for i in GT}


@pytest.fixture
def runs(tmp_path: Path) -> Path:
    root = make_coco(tmp_path / "coco", IMAGES, GT)
    for name, table in (("ref", REFERENCE), ("copy", REFERENCE), ("moved", MOVED)):
        model = save_table_detector(tmp_path / f"{name}.onnx", root, table)
        config = write_config(tmp_path / f"{name}.yaml", model, root)
        assert main(["--config", str(config), "--run-name", name, "--quiet"]) == 0
    return tmp_path / "results"


RULES = [
    "--max-ap-drop",
    "0.01",
    "--min-matched",
    "0.99",
    "--max-extra",
    "0.01",
    "--max-score-diff",
    "0.001",
    "--max-box-diff",
    "0.5",
    "--min-full-agreement",
    "0.99",
]


def _compare(runs: Path, other: str, name: str) -> tuple[int, dict]:
    code = main(["compare", str(runs / "ref"), str(runs / other), *RULES, "--run-name", name, "--quiet"])
    return code, json.loads((Path("results") / name / "metrics.json").read_text())


def test_a_copy_passes_every_agreement_rule(runs, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, metrics = _compare(runs, "copy", "cmp-same")
    assert code == 0 and metrics["gate"]["verdict"] == "PASS"
    states = {r["rule"]: r["state"] for r in metrics["gate"]["rules"]}
    assert len(states) == 6 and set(states.values()) == {"passed"}


def test_moved_detections_fail_the_agreement_gate_though_ap_holds(runs, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, metrics = _compare(runs, "moved", "cmp-moved")
    assert code == 1 and metrics["gate"]["verdict"] == "FAIL"
    moved = next(r for r in metrics["runs"] if r["name"] == "moved")
    assert moved["stats"]["AP"] == 1.0 and moved["deltas"]["AP"] == 0.0
    by_rule = {r["rule"]: r for r in metrics["gate"]["rules"]}
    assert by_rule["AP drop vs reference ref <= 0.0100"]["state"] == "passed"
    matched = by_rule["matched >= 0.9900 of reference ref's detections"]
    assert matched["state"] == "failed"
    assert matched["message"].startswith("moved: matched 40 of 50 (0.8000) of reference ref's detections")
    assert by_rule["extra <= 0.0100 of the run's detections"]["message"].startswith(
        "moved: 10 of 50 (0.2000) of its detections scoring >= 0.1 have no partner"
    )
    assert by_rule["images in full agreement >= 0.9900"]["state"] == "failed"
    # The matched pairs are identical: score and box rules pass.
    assert by_rule["score difference <= 0.001"]["state"] == "passed"
    assert by_rule["box difference <= 0.5 px"]["state"] == "passed"
    # junit.xml and summary.md say the same.
    suite = ET.parse(Path("results/cmp-moved/junit.xml")).getroot()
    failed = [c.get("name") for c in suite.iter("testcase") if c.find("failure") is not None]
    assert set(failed) == {
        "matched >= 0.9900 of reference ref's detections",
        "extra <= 0.0100 of the run's detections",
        "images in full agreement >= 0.9900",
        "gate verdict",
    }
    summary = Path("results/cmp-moved/summary.md").read_text()
    assert "**FAIL**: `matched >= 0.9900 of reference ref's detections`" in summary


def test_an_out_of_range_limit_is_one_line(runs, capsys):
    assert main(["compare", str(runs / "ref"), str(runs / "copy"), "--min-matched", "1.5", "--quiet"]) == 2
    assert capsys.readouterr().err.strip() == (
        "ssd-eval: error: --min-matched must be in [0, 1] or null, got 1.5"
    )


def _dets(image_id: int, scores: list[float], boxes: list[list[float]]) -> Detections:
    n = len(scores)
    return Detections(
        image_id=image_id,
        boxes=np.asarray(boxes, dtype=np.float64).reshape(n, 4),
        scores=np.asarray(scores, dtype=np.float64),
        category_ids=np.ones(n, dtype=np.int64),
    )


def test_only_visible_detections_count_for_the_fractions():
    # Reference: a box at 0.9 and a near-threshold one at 0.06; the run lacks the weak one and has
    # a weak extra of its own (0.07). At min_score 0.1 both sides agree fully; at 0.05 they do not.
    ref = _dets(1, [0.9, 0.06], [[0, 0, 10, 10], [50, 50, 10, 10]])
    run = _dets(1, [0.88, 0.07], [[0, 0, 10, 10], [80, 80, 10, 10]])
    agreement = match_detections(ref, run)
    seen = agreement.visible(0.1)
    assert (seen.reference, seen.run, seen.matched, seen.missing, seen.extra, seen.full) == (
        1,
        1,
        1,
        0,
        0,
        True,
    )
    low = agreement.visible(0.05)
    assert (low.reference, low.matched, low.missing, low.extra, low.full) == (2, 1, 1, 1, False)
    from ssd_eval.evaluation.agreement import pair_differences

    diff = pair_differences(ref, run, agreement, width=100, height=100)
    summary = summarize_agreement([(agreement, diff)], iou_threshold=0.5, min_score=0.1)
    assert (summary.matched_fraction, summary.extra_fraction, summary.full_fraction) == (1.0, 0.0, 1.0)
    assert summary.score_diff_max == pytest.approx(0.02, abs=1e-12)
    report = RunReport("gpu", "ran", "gpu", {}, agreement=summary)
    gate = CompareGateConfig(min_matched=1.0, max_extra=0.0, max_score_diff=0.01, min_full_agreement=1.0)
    checks = {c.rule: c for c in agreement_checks(report, gate, against="reference cpu")}
    assert [c.state for c in checks.values()] == ["passed", "passed", "failed", "passed"]
    assert checks["score difference <= 0.01"].message == (
        "gpu: matched pairs' scores differ by at most 0.02 (p99 0.02, 1 pairs) from reference cpu, "
        "more than the allowed 0.01"
    )
    # No agreement measured (e.g. the reference itself): the rules are skipped, saying why.
    skipped = agreement_checks(RunReport("cpu", "ran", "cpu", {}), gate, against="reference cpu")
    assert {c.state for c in skipped} == {"skipped"}
