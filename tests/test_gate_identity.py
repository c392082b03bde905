"""Rules are comparable by identity, not by "full or partial" (issue 17, item 2).

A measured baseline holds any run of its own ground truth and images, whatever the model; published
figures hold only the whole selection; a shard defers every rule to the merge; a subset that could
have been gated and was not is NO VERDICT, a failure with `--require-gate`.
"""

from __future__ import annotations

from dataclasses import replace

from helpers import make_identity

from ssd_eval.config.run import ExpectedConfig, GateConfig
from ssd_eval.evaluation.identity import RunIdentity
from ssd_eval.reports.baseline import Baseline
from ssd_eval.reports.gate import RunFacts, check_run

FIRST_200 = tuple(range(1, 201))
ALL = tuple(range(1, 4953))


def facts(identity: RunIdentity, ap: float) -> RunFacts:
    images = identity.images
    return RunFacts(
        stats={"AP": ap},
        per_category=(),
        selection=images.selection,
        num_images=images.count,
        complete=images.limit is None and images.shard is None and images.id_list_sha256 is None,
        model_sha256=identity.model_sha256,
        model_name=identity.model_name,
        partial=f"shard {images.shard}" if images.shard else "",
        subset=images.subset,
        identity=identity,
    )


def measured(identity: RunIdentity, ap: float) -> Baseline:
    return Baseline(
        name="ci-200",
        kind="measured",
        source="results/reference",
        stats={"AP": ap},
        protocol={"selection": "annotated", "num_images": identity.images.count},
        model={"name": "ssd.onnx", "sha256": identity.model_sha256},
        identity=replace(identity, images=replace(identity.images, image_ids=())),  # as stored: digests
    )


GATE = GateConfig(baseline=None, max_baseline_drop=0.003)
REFERENCE = make_identity(FIRST_200, limit=200)


def test_a_subset_run_is_gated_against_a_baseline_of_the_same_images():
    baseline = measured(REFERENCE, 0.2500)
    # The same 200 images, the same model: AP 0.2480 is 0.0020 below, within 0.003.
    passed = check_run(facts(REFERENCE, 0.2480), expected=None, gate=GATE, baseline=baseline)
    assert passed.verdict == "PASS" and passed.exit_code == 0
    # 0.2460 is 0.0040 below: a real FAIL, exit 1.
    failed = check_run(facts(REFERENCE, 0.2460), expected=None, gate=GATE, baseline=baseline)
    assert failed.verdict == "FAIL" and failed.exit_code == 1
    assert failed.checks[0].message == (
        "AP 0.2460 vs baseline ci-200 0.2500 (delta -0.0040): drops more than the allowed 0.0030"
    )


def test_a_measured_baseline_holds_another_model_file():
    baseline = measured(REFERENCE, 0.2500)
    int8 = replace(REFERENCE, model_sha256="b" * 64, model_name="ssd-int8.onnx")
    report = check_run(facts(int8, 0.2490), expected=None, gate=GATE, baseline=baseline)
    assert report.verdict == "PASS"


def test_other_images_are_not_comparable_and_fail_when_the_gate_is_required():
    baseline = measured(REFERENCE, 0.2500)
    first_100 = make_identity(FIRST_200[:100], limit=100)
    report = check_run(facts(first_100, 0.2500), expected=None, gate=GATE, baseline=baseline)
    (check,) = report.checks
    assert check.state == "not comparable"
    assert check.message.startswith("not comparable: images is 100 images (ids sha256 ")
    assert check.message.endswith(
        "in this run but 200 images (ids sha256 " + _sha12(FIRST_200) + "…) in baseline ci-200"
    )
    assert (report.verdict, report.exit_code) == ("NO VERDICT", 0)
    required = check_run(
        facts(first_100, 0.25), expected=None, gate=replace(GATE, required=True), baseline=baseline
    )
    assert (required.verdict, required.exit_code) == ("NO VERDICT", 1)
    assert required.reason.endswith("gate.required (--require-gate) makes this a failure")


def _sha12(ids: tuple[int, ...]) -> str:
    import hashlib

    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:12]


def test_the_same_images_chosen_another_way_are_held_by_the_baseline():
    """A baseline of the first 200 holds an id list of those 200: the figure depends on the images."""
    baseline = measured(REFERENCE, 0.2500)
    listed = replace(REFERENCE, images=replace(REFERENCE.images, limit=None, id_list_sha256="f" * 64))
    assert check_run(facts(listed, 0.2490), expected=None, gate=GATE, baseline=baseline).verdict == "PASS"


def test_another_ground_truth_is_not_comparable():
    baseline = measured(REFERENCE, 0.2500)
    edited = replace(REFERENCE, ground_truth=replace(REFERENCE.ground_truth, content_digest="e" * 64))
    (check,) = check_run(facts(edited, 0.25), expected=None, gate=GATE, baseline=baseline).checks
    assert check.state == "not comparable"
    assert check.message.startswith("not comparable: ground truth is annotations with content sha256 eeee")


def test_a_shard_defers_every_rule_to_the_merge_even_when_required():
    baseline = measured(make_identity(ALL), 0.1958)
    part = make_identity(ALL, "1/4")
    expected = ExpectedConfig(value=0.195)
    report = check_run(
        facts(part, 0.19), expected=expected, gate=replace(GATE, required=True), baseline=baseline
    )
    assert [c.state for c in report.checks] == ["not comparable", "not comparable"]
    assert all("deferred to `ssd-eval merge` of all shards" in c.message for c in report.checks)
    assert (report.verdict, report.exit_code) == ("NO VERDICT", 0)  # the merge after it must start


def test_published_figures_hold_only_the_whole_selection():
    published = Baseline(
        name="ssd-10-published",
        kind="published",
        source="model card",
        stats={"AP": 0.195},
        protocol={"selection": "annotated", "num_images": 4952},
        model={"name": "ssd-10.onnx", "sha256": "a" * 64},
    )
    expected = ExpectedConfig(value=0.195, model_sha256="a" * 64, selection="annotated")
    gate = replace(GATE, required=True)
    subset = check_run(facts(REFERENCE, 0.195), expected=expected, gate=gate, baseline=published)
    assert [c.state for c in subset.checks] == ["not comparable", "not comparable"]
    assert subset.checks[0].message == (
        "not comparable: the figure is for the whole image selection, this run evaluated 200 images "
        "(limit 200); gate a subset against a baseline made from a reference run of the same images "
        "(`ssd-eval baseline RUN_DIR`)"
    )
    assert subset.exit_code == 1  # not deferred: nothing will apply these rules later
    whole = check_run(facts(make_identity(ALL), 0.1951), expected=expected, gate=gate, baseline=published)
    assert whole.verdict == "PASS"
    # Published figures are about their model only (a measured baseline holds any).
    other = replace(make_identity(ALL), model_sha256="b" * 64)
    assert check_run(facts(other, 0.1951), expected=None, gate=gate, baseline=published).verdict == (
        "NO VERDICT"
    )
