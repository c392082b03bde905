"""Every gate rule's whole verdict (rule name, state, message, subject), written out by hand.

A run's gate is only as trustworthy as these one-liners: CI reads the state and a person reads the
message. Thresholds are tested exactly at the boundary, with numbers exact in binary.
"""

from __future__ import annotations

import pytest

from ssd_eval.config.run import ExpectedConfig
from ssd_eval.evaluation.scoring import CategoryScore
from ssd_eval.reports.gate import (
    RunFacts,
    check_class_drops,
    check_drop,
    check_expected,
    check_min,
    expected_rule,
    model_mismatch,
    not_comparable,
    partial_reason,
    skipped_check,
)


def whole(check) -> tuple[str, str, str, str]:
    return (check.rule, check.state, check.message, check.subject)


def cat(cid: int, name: str, ap: float | None, num_gt: int = 5) -> CategoryScore:
    return CategoryScore(cid, name, ap, ap, num_gt, 3)


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
        "AP 0.5000 is within 1.0e-05 of the reference 0.5000 (delta +0.0000)"
    )
    # 5e-5 itself is shown in 4 decimals.
    assert expected_rule(ExpectedConfig(metric="AP", value=0.5, tolerance=5e-5)) == "AP = 0.5000 ± 0.0001"


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
    assert partial_reason(_facts()) == (
        "partial run (limit/shard): the figure is for the whole image selection; "
        "a run of the whole selection applies it"
    )
    assert partial_reason(_facts(partial="shard 2/4")) == (
        "partial run (shard 2/4): the figure is for the whole image selection; "
        "deferred to `ssd-eval merge` of all shards"
    )
    assert partial_reason(_facts(partial="limit 20")).endswith("; a run of the whole selection applies it")


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
