"""The comparison's gate (reports/gate_compare.py): the facts its rules read of each run, and the
detection-agreement rules' verdicts and lines, written out whole.

The agreement lines are those docs/agreement.md records from the 1200 twin: OpenVINO fp32 and the int8
copy against CPU fp32, under compare_same_model.yaml's tolerances.
"""

from __future__ import annotations

import dataclasses

from helpers import make_identity

from ssd_eval.config.compare import CompareGateConfig
from ssd_eval.evaluation.agreement import AgreementSummary, DiffStats
from ssd_eval.reports.comparison import CompareResult, RunReport
from ssd_eval.reports.gate import RunFacts
from ssd_eval.reports.gate_compare import agreement_checks, comparison_facts
from ssd_eval.reports.results import ModelInfo, Protocol

NO_DIFF = DiffStats(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
# compare_same_model.yaml's agreement tolerances (docs/agreement.md, "What each rule guards against").
SAME_MODEL = CompareGateConfig(
    min_matched=0.99, max_extra=0.01, max_score_diff=0.001, max_box_diff=0.5, min_full_agreement=0.95
)
REFERENCE = "reference twin1200-cpu"


def summary(**figures: float) -> AgreementSummary:
    """An agreement summary of the figures given, every other count and difference 0."""
    base = AgreementSummary(
        iou_threshold=0.5,
        images=0,
        images_full_agreement=0,
        reference_detections=0,
        run_detections=0,
        matched=0,
        missing=0,
        extra=0,
        score_diff_mean=0.0,
        score_diff_max=0.0,
        box_diff_px_mean=0.0,
        box_diff_px_max=0.0,
        raw_scores=NO_DIFF,
        raw_boxes=NO_DIFF,
        min_score=0.1,
    )
    return dataclasses.replace(base, **figures)  # type: ignore[arg-type]


def whole(check) -> tuple[str, str, str, str]:
    return (check.rule, check.state, check.message, check.subject)


def checks(name: str, agreement: AgreementSummary | None, gate: CompareGateConfig = SAME_MODEL) -> list:
    report = RunReport(name, "ran", name, {}, agreement=agreement)
    return [whole(c) for c in agreement_checks(report, gate, against=REFERENCE)]


def test_openvino_fp32_passes_every_agreement_rule_with_the_documented_lines():
    openvino = summary(
        images=48,
        images_full_agreement=48,
        reference_detections=9082,
        run_detections=9082,
        matched=9082,
        score_diff_max=5.39e-05,
        score_diff_p99=9.96e-06,
        box_diff_px_max=0.00343,
        box_diff_px_p99=0.00114,
        visible_reference=5660,
        visible_run=5660,
        visible_matched=5660,
        visible_images_full=48,
    )
    who = "twin1200-openvino"
    assert checks(who, openvino) == [
        (
            "matched >= 0.9900 of reference twin1200-cpu's detections",
            "passed",
            "twin1200-openvino: matched 5660 of 5660 (1.0000) of reference twin1200-cpu's detections "
            "scoring >= 0.1 (0 missing of 9082 in all)",
            who,
        ),
        (
            "extra <= 0.0100 of the run's detections",
            "passed",
            "twin1200-openvino: 0 of 5660 (0.0000) of its detections scoring >= 0.1 have no partner in "
            "reference twin1200-cpu",
            who,
        ),
        (
            "score difference <= 0.001",
            "passed",
            "twin1200-openvino: matched pairs' scores differ by at most 5.39e-05 (p99 9.96e-06, 9082 pairs) "
            "from reference twin1200-cpu",
            who,
        ),
        (
            "box difference <= 0.5 px",
            "passed",
            "twin1200-openvino: matched pairs' box corners differ by at most 0.00343 px (p99 0.00114 px) "
            "from reference twin1200-cpu",
            who,
        ),
        (
            "images in full agreement >= 0.9500",
            "passed",
            "twin1200-openvino: 48 of 48 (1.0000) images agree with reference twin1200-cpu detection for "
            "detection (scoring >= 0.1)",
            who,
        ),
    ]


def test_the_int8_copy_fails_five_rules_with_the_documented_lines():
    int8 = summary(
        images=48,
        reference_detections=9082,
        run_detections=9245,
        matched=4299,
        missing=4783,
        extra=4946,
        score_diff_max=0.836,
        score_diff_p99=0.577,
        box_diff_px_max=165.0,
        box_diff_px_p99=87.1,
        visible_reference=5660,
        visible_run=5793,
        visible_matched=3236,
        visible_extra=2518,
    )
    who = "twin1200-int8"
    assert checks(who, int8) == [
        (
            "matched >= 0.9900 of reference twin1200-cpu's detections",
            "failed",
            "twin1200-int8: matched 3236 of 5660 (0.5717) of reference twin1200-cpu's detections scoring "
            ">= 0.1, below the minimum 0.9900 (4783 missing of 9082 in all)",
            who,
        ),
        (
            "extra <= 0.0100 of the run's detections",
            "failed",
            "twin1200-int8: 2518 of 5793 (0.4347) of its detections scoring >= 0.1 have no partner in "
            "reference twin1200-cpu, more than the allowed 0.0100",
            who,
        ),
        (
            "score difference <= 0.001",
            "failed",
            "twin1200-int8: matched pairs' scores differ by at most 0.836 (p99 0.577, 4299 pairs) from "
            "reference twin1200-cpu, more than the allowed 0.001",
            who,
        ),
        (
            "box difference <= 0.5 px",
            "failed",
            "twin1200-int8: matched pairs' box corners differ by at most 165 px (p99 87.1 px) from "
            "reference twin1200-cpu, more than the allowed 0.5 px",
            who,
        ),
        (
            "images in full agreement >= 0.9500",
            "failed",
            "twin1200-int8: 0 of 48 (0.0000) images agree with reference twin1200-cpu detection for "
            "detection (scoring >= 0.1), below the minimum 0.9500",
            who,
        ),
    ]


def test_nothing_visible_on_either_side_is_full_agreement_of_0_of_0():
    # No visible detection and no image: nothing to miss, nothing extra (the fractions are 1, 0, 1).
    assert checks("gpu", summary()) == [
        (
            "matched >= 0.9900 of reference twin1200-cpu's detections",
            "passed",
            "gpu: matched 0 of 0 of reference twin1200-cpu's detections scoring >= 0.1 "
            "(0 missing of 0 in all)",
            "gpu",
        ),
        (
            "extra <= 0.0100 of the run's detections",
            "passed",
            "gpu: 0 of 0 of its detections scoring >= 0.1 have no partner in reference twin1200-cpu",
            "gpu",
        ),
        (
            "score difference <= 0.001",
            "passed",
            "gpu: matched pairs' scores differ by at most 0 (p99 0, 0 pairs) from reference twin1200-cpu",
            "gpu",
        ),
        (
            "box difference <= 0.5 px",
            "passed",
            "gpu: matched pairs' box corners differ by at most 0 px (p99 0 px) from reference twin1200-cpu",
            "gpu",
        ),
        (
            "images in full agreement >= 0.9500",
            "passed",
            "gpu: 0 of 0 images agree with reference twin1200-cpu detection for detection (scoring >= 0.1)",
            "gpu",
        ),
    ]


def test_float_noise_at_each_limit_passes_exactly_and_more_fails():
    # The gate's EPS: a figure 1e-12 past a limit is float noise and passes; 1e-9 past it fails.
    # Fractions: 1 of 2 (0.5) against limits set 1e-12 and 1e-9 past 0.5.
    half = summary(
        images=2,
        visible_images_full=1,
        visible_reference=2,
        visible_matched=1,
        visible_run=2,
        visible_extra=1,
    )

    def states(agreement: AgreementSummary, **rules: float) -> list[str]:
        report = RunReport("gpu", "ran", "gpu", {}, agreement=agreement)
        return [c.state for c in agreement_checks(report, CompareGateConfig(**rules), against="x")]

    for past, state in ((1e-12, "passed"), (1e-9, "failed")):
        limits = {"min_matched": 0.5 + past, "max_extra": 0.5 - past, "min_full_agreement": 0.5 + past}
        assert states(half, **limits) == [state] * 3
    # Differences 1e-12 and 1e-9 past the limits 0.25 (score) and 0.5 px (box).
    for past, state in ((1e-12, "passed"), (1e-9, "failed")):
        shifted = summary(score_diff_max=0.25 + past, box_diff_px_max=0.5 + past)
        assert states(shifted, max_score_diff=0.25, max_box_diff=0.5) == [state] * 2


def test_no_agreement_measured_skips_each_rule_that_is_set():
    gate = CompareGateConfig(min_matched=0.99, max_box_diff=0.5)
    why = "gpu: no detection agreement with reference twin1200-cpu was measured"
    assert checks("gpu", None, gate) == [
        ("min_matched", "skipped", why, "gpu"),
        ("max_box_diff", "skipped", why, "gpu"),
    ]
    assert checks("gpu", None, CompareGateConfig()) == []


def _model(name: str, sha256: str) -> ModelInfo:
    return ModelInfo(path=f"/models/{name}.onnx", sha256=sha256, size_bytes=1, source=None)


def test_comparison_facts_hold_the_reference_images_with_the_runs_own_model():
    # Shard 1 of 2 of an id list of images 1..4: the run evaluated images 1 and 3.
    shard = make_identity([1, 2, 3, 4], "1/2")
    identity = dataclasses.replace(
        shard, images=dataclasses.replace(shard.images, id_list_sha256="0123abcd" * 8)
    )
    reference = RunReport("cpu", "ran", "cpu", {}, model=_model("ssd", "a" * 64), stats={"AP": 0.5})
    run = RunReport("int8", "ran", "cpu", {}, model=_model("ssd-int8", "b" * 64), stats={"AP": 0.25})
    result = CompareResult("/out", "cpu", (reference, run), Protocol.of(identity), 0.5, identity=identity)
    assert comparison_facts(result, run) == RunFacts(
        stats={"AP": 0.25},
        per_category=(),
        selection="annotated",
        num_images=2,
        complete=False,
        model_sha256="b" * 64,
        model_name="ssd-int8.onnx",
        partial="shard 1/2",
        subset="id list 0123abcd0123…",
        identity=dataclasses.replace(identity, model_sha256="b" * 64, model_name="ssd-int8.onnx"),
    )
    # A model's sha256 is lower case in an identity, whatever case the run recorded.
    upper = RunReport("gpu", "ran", "cuda", {}, model=_model("ssd", "ABCDEF01" * 8))
    facts = comparison_facts(result, upper)
    assert facts.identity is not None and facts.identity.model_sha256 == "abcdef01" * 8


def test_comparison_facts_without_an_identity_read_the_protocol():
    run = RunReport("gpu", "ran", "cuda", {}, model=_model("ssd", "b" * 64))
    whole_selection = Protocol("annotated", 5, 6, 5, None, None, False, 0.0, "pillow", (1200, 1200))
    facts = comparison_facts(CompareResult("/out", "cpu", (run,), whole_selection, 0.5), run)
    assert (facts.complete, facts.partial, facts.subset, facts.identity) == (True, "", "", None)
    shard = dataclasses.replace(whole_selection, shard="2/3", limit=30)
    facts = comparison_facts(CompareResult("/out", "cpu", (run,), shard, 0.5), run)
    assert (facts.complete, facts.partial, facts.subset) == (False, "shard 2/3", "limit 30")
    assert facts.identity is None
