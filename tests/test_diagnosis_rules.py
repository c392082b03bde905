"""Diagnosis rules at their edges: the documented thresholds, the recorded evidence, references that
state only some figures, and the conversions from a baseline and a run.

Written for the survivors of the mutation run of 2026-12-02 (their list, since removed:
`git show f1a4929:docs/mutation-survivors-2026-12-02.md`).
Expectations come from the thresholds as docs/protocol.md states them ("AP at most a quarter of the
reference's", "AP at least 90%, APs at most half", "AR100 at most 85%"), from the published figures
(results/baselines/ssd-10-published.json) and from hand-written lines and evidence. Figures at a
threshold are powers of two or their exact multiples, so the ratio is exactly the threshold.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from helpers import make_identity

from ssd_eval.coco_stats import STAT_NAMES
from ssd_eval.reports.baseline import Baseline
from ssd_eval.reports.diagnosis import (
    Diagnosis,
    ProtocolFacts,
    Reference,
    diagnose,
    diagnose_run,
    reference_from_baseline,
    run_facts,
)
from ssd_eval.reports.results import ModelInfo, RunResult

# The published run's 12 stats to 3 decimals (the committed baseline has AP 0.19578).
PUBLISHED = dict(
    zip(
        STAT_NAMES,
        (0.196, 0.375, 0.180, 0.115, 0.256, 0.228, 0.196, 0.318, 0.341, 0.171, 0.405, 0.411),
        strict=True,
    )
)
PROTOCOL = ProtocolFacts(
    selection="annotated",
    num_images=4952,
    input_size=(1200, 1200),
    preprocess="pillow",
    clip_boxes=False,
    score_threshold=0.0,
)
REFERENCE = Reference("ssd-10-published", PUBLISHED, PROTOCOL)
# The model card states one figure: a baseline may hold any subset of the 12 stats.
CARD_ONLY = Reference("ssd-10-card", {"AP": 0.195}, PROTOCOL)
# Round figures for the thresholds: AP 0.5, APs 0.125, AR100 0.5.
ROUND = {**PUBLISHED, "AP": 0.5, "APs": 0.125, "AR10": 0.25, "AR100": 0.5}
ROUND_REFERENCE = Reference("round", ROUND, PROTOCOL)

SHA = "a" * 64


def _cause(diagnosis: Diagnosis | None) -> str | None:
    return None if diagnosis is None else diagnosis.cause


# --- the thresholds, at the value docs/protocol.md names ("at most", "at least": included) ---


def test_labels_named_at_exactly_a_quarter_of_the_reference_ap():
    assert _cause(diagnose({**ROUND, "AP": 0.125}, PROTOCOL, ROUND_REFERENCE)) == "labels"
    assert diagnose({**ROUND, "AP": 0.126}, PROTOCOL, ROUND_REFERENCE) is None


def test_labels_line_shows_the_ratio_in_whole_percent():
    # 0.122 / 0.5 = 24.4%: shown as 24%.
    d = diagnose({**ROUND, "AP": 0.122}, PROTOCOL, ROUND_REFERENCE)
    assert d is not None and d.line.startswith("AP 0.122 with reference AP 0.500 (24%): ")


def test_rescaled_named_at_exactly_half_the_aps_and_90_percent_of_the_ap():
    # APs 0.0625 = half of 0.125, AP 0.45 = 90% of 0.5.
    at_both = {**ROUND, "APs": 0.0625, "AP": 0.45}
    assert _cause(diagnose(at_both, PROTOCOL, ROUND_REFERENCE)) == "ground-truth-rescaled"
    assert diagnose({**at_both, "APs": 0.0626}, PROTOCOL, ROUND_REFERENCE) is None
    assert diagnose({**at_both, "AP": 0.449}, PROTOCOL, ROUND_REFERENCE) is None


def test_score_cut_named_at_exactly_85_percent_of_the_reference_ar100():
    # AR100 0.425 = 85% of 0.5.
    assert _cause(diagnose({**ROUND, "AR100": 0.425}, PROTOCOL, ROUND_REFERENCE)) == "score-cut"
    assert diagnose({**ROUND, "AR100": 0.426}, PROTOCOL, ROUND_REFERENCE) is None


def test_a_reference_figure_of_zero_is_not_a_division_by_zero():
    # A measured baseline on a slice without small-object hits: APs 0.000. Nothing was lost from it.
    zero = {**PUBLISHED, "APs": 0.0}
    assert diagnose(zero, PROTOCOL, replace(REFERENCE, stats=zero)) is None
    zero_ap = {**PUBLISHED, "AP": 0.0}
    assert diagnose(zero_ap, PROTOCOL, replace(REFERENCE, stats=zero_ap)) is None


def test_a_run_without_small_objects_is_not_read_as_rescaled_ground_truth():
    # APs -1: COCOeval found no small ground truth in the run's images; no APs signature to read.
    assert diagnose({**PUBLISHED, "APs": -1.0}, PROTOCOL, REFERENCE) is None


# --- the whole record, as written to metrics.json ("diagnosis": cause, line, evidence) ---


def test_labels_record():
    d = diagnose({**PUBLISHED, "AP": 0.002}, PROTOCOL, REFERENCE)
    assert d is not None and d.to_json() == {
        "cause": "labels",
        "line": "AP 0.002 with reference AP 0.196 (1%): labels look not mapped to COCO category ids (or "
        "off by one), which gives AP ~0.002 (onnx/models #165)",
        "evidence": {"AP": 0.002, "reference_AP": 0.196},
    }


def test_rescaled_record_with_the_published_upscaled_figures():
    # mlcommons/inference #657: .196 .373 .180 .038 .172 .246 / .202 .327 .341.
    stats = {**PUBLISHED, "AP50": 0.373, "APs": 0.038, "APm": 0.172, "APl": 0.246, "AR1": 0.202}
    d = diagnose(stats, PROTOCOL, REFERENCE)
    assert d is not None and d.to_json() == {
        "cause": "ground-truth-rescaled",
        "line": "APs 0.038 with AP 0.196 (reference APs 0.115, AP 0.196): ground truth looks rescaled to "
        "1200x1200 (MLPerf's coco-1200 annotations give APs 0.038, mlcommons/inference #657)",
        "evidence": {"AP": 0.196, "APs": 0.038, "reference_AP": 0.196, "reference_APs": 0.115},
    }


def test_score_cut_record():
    d = diagnose({**PUBLISHED, "AR100": 0.25}, PROTOCOL, REFERENCE)
    assert d is not None and d.to_json() == {
        "cause": "score-cut",
        "line": "AR100 0.250 vs 0.341 (AR10 0.318): detections look cut at a score threshold (MLPerf's "
        "PostProcessCocoOnnx keeps only scores >= 0.5); keep every detection the graph emits",
        "evidence": {"AR100": 0.25, "score_threshold": 0.0, "reference_AR100": 0.341},
    }


def test_recorded_score_threshold_record():
    d = diagnose({**PUBLISHED, "AR100": 0.25}, replace(PROTOCOL, score_threshold=0.5), REFERENCE)
    assert d is not None and d.to_json() == {
        "cause": "score-cut",
        "line": "AR100 0.250 vs 0.341: decode.score_threshold 0.5 drops detections the reference kept "
        "(its cut: 0)",
        "evidence": {"AR100": 0.25, "score_threshold": 0.5},
    }


def test_image_records():
    smaller = diagnose({**PUBLISHED, "AP": 0.231}, replace(PROTOCOL, num_images=48), REFERENCE)
    assert smaller is not None and smaller.cause == "images"
    assert smaller.evidence == {"AP": 0.231, "num_images": 48, "reference_num_images": 4952}
    all_images = replace(PROTOCOL, selection="all", num_images=5000)
    every = diagnose({**PUBLISHED, "AP": 0.195}, all_images, REFERENCE)
    assert every is not None and every.cause == "images"
    assert every.evidence == {"AP": 0.195, "num_images": 5000, "reference_num_images": 4952}


def test_resize_line_quotes_aps_to_three_decimals():
    stats = {**PUBLISHED, "AP": 0.171, "APs": 0.070}
    d = diagnose(stats, replace(PROTOCOL, preprocess="opencv"), REFERENCE)
    assert d is not None and d.line == (
        "images resized by opencv to 1200x1200, the reference by pillow to 1200x1200: AP 0.171 vs 0.196, "
        "APs 0.070 vs 0.115: a different resize looks like the cause"
    )


def test_resize_line_gives_both_sizes_as_recorded_and_the_two_aps_as_evidence():
    """Non-square sizes, each in the order the identity records it (first x second), none equal."""
    reference = Reference("ref", PUBLISHED, replace(PROTOCOL, input_size=(1000, 1300)))
    d = diagnose({**PUBLISHED, "AP": 0.171}, replace(PROTOCOL, input_size=(600, 800)), reference)
    assert d is not None and d.cause == "resize"
    assert d.line.startswith("images resized by pillow to 600x800, the reference by pillow to 1000x1300: ")
    assert d.evidence == {"AP": 0.171, "reference_AP": 0.196}


# --- a reference that states only the card's AP ---


def test_card_only_reference_resize_line_leaves_out_the_stats_it_lacks():
    d = diagnose(PUBLISHED, replace(PROTOCOL, input_size=(300, 300)), CARD_ONLY)
    assert d is not None and d.line == (
        "images resized by pillow to 300x300, the reference by pillow to 1200x1200: AP 0.196 vs 0.195: "
        "a different resize looks like the cause"
    )


def test_card_only_reference_score_threshold_line_without_a_reference_recall():
    d = diagnose(PUBLISHED, replace(PROTOCOL, score_threshold=0.5), CARD_ONLY)
    assert d is not None and d.line == (
        "AR100 0.341: decode.score_threshold 0.5 drops detections the reference kept (its cut: 0)"
    )


def test_card_only_reference_images_line_without_a_recall_comparison():
    d = diagnose(PUBLISHED, replace(PROTOCOL, selection="all", num_images=5000), CARD_ONLY)
    assert d is not None and d.line == (
        "5000 images scored (all), the reference scored 4952 (annotated): AP 0.196 vs 0.195; images without "
        "annotations add only false positives (MLPerf #385: 19.98 instead of 20.0 over all 5000)"
    )


def test_card_only_reference_reads_no_signature_it_cannot_compare():
    # Low APs and AR100 against a reference that states neither: only AP can be compared, and it matches.
    assert diagnose({**PUBLISHED, "APs": 0.01, "AR100": 0.1}, PROTOCOL, CARD_ONLY) is None


# --- from a baseline and a run ---


def _baseline(sha256: str = SHA, **protocol: Any) -> Baseline:
    facts = {
        "selection": "annotated",
        "num_images": 5,
        "input_size": [300, 400],
        "preprocess": "pillow",
        "clip_boxes": True,
        "score_threshold": 0.05,
        **protocol,
    }
    return Baseline(
        name="tiny",
        kind="measured",
        source="results/good",
        stats={"AP": 0.5, "AR100": 0.6},
        protocol=facts,
        model={"name": "m.onnx", "sha256": sha256},
    )


def _run(stats: dict[str, float], **identity: Any) -> RunResult:
    changes: dict[str, Any] = {
        "input_size": (300, 400),
        "clip_boxes": True,
        "score_threshold": 0.05,
        "model_sha256": SHA,
        **identity,
    }
    return RunResult(
        run_dir="results/x",
        stats=stats,
        per_category=(),
        identity=make_identity(range(1, 6), **changes),
        model=ModelInfo(path="m.onnx", sha256=str(changes["model_sha256"]), size_bytes=1, source=None),
        providers_requested=("CPUExecutionProvider",),
        providers_used=("CPUExecutionProvider",),
        provider_options=({},),
        num_detections=0,
        timings={},
        wall_s=0.0,
        images_per_s=0.0,
    )


def test_reference_from_a_non_square_baseline():
    want = ProtocolFacts(
        selection="annotated",
        num_images=5,
        input_size=(300, 400),
        preprocess="pillow",
        clip_boxes=True,
        score_threshold=0.05,
    )
    assert reference_from_baseline(_baseline()) == Reference("tiny", {"AP": 0.5, "AR100": 0.6}, want)


def test_run_facts_of_a_non_square_run():
    assert run_facts(_run({"AP": 0.5})) == ProtocolFacts(
        selection="annotated",
        num_images=5,
        input_size=(300, 400),
        preprocess="pillow",
        clip_boxes=True,
        score_threshold=0.05,
    )


def test_diagnose_run_only_against_a_baseline_of_the_same_model():
    labels_like = {"AP": 0.01, "AR100": 0.6}
    assert _cause(diagnose_run(_run(labels_like), _baseline())) == "labels"
    # Another model's figures explain nothing about this one.
    assert diagnose_run(_run(labels_like), _baseline(sha256="b" * 64)) is None
    # A baseline that does not name its model (a published card without the file's hash) is trusted.
    assert _cause(diagnose_run(_run(labels_like), _baseline(sha256=""))) == "labels"


# --- another selection of as many images: the same images ---


def test_as_many_images_under_another_selection_are_the_same_images():
    # `all` on a file whose every image is annotated chose what `annotated` chose: the images are not
    # what changed the figures (it was called "images without annotations add only false positives").
    d = diagnose({**PUBLISHED, "AP": 0.19}, replace(PROTOCOL, selection="all"), REFERENCE)
    assert d is not None and d.to_json() == {
        "cause": "images",
        "line": "4952 images scored (all), the reference scored 4952 (annotated): the same images under "
        "another selection (as many, so every one is annotated); AP 0.190 vs 0.196 does not come from the "
        "images",
        "evidence": {"AP": 0.19, "num_images": 4952, "reference_num_images": 4952},
    }
    back = Reference("measured-all", PUBLISHED, replace(PROTOCOL, selection="all"))
    d = diagnose({**PUBLISHED, "AP": 0.19}, PROTOCOL, back)
    assert d is not None and d.line.startswith(
        "4952 images scored (annotated), the reference scored 4952 (all): the same images under another "
        "selection"
    )


def test_as_many_images_under_another_selection_leave_the_signatures_to_be_read():
    # The same images explain nothing, so the stats are read: unmapped labels are still named.
    d = diagnose({**PUBLISHED, "AP": 0.002}, replace(PROTOCOL, selection="all"), REFERENCE)
    assert _cause(d) == "labels"
    # The same selection and count: nothing about the images to say.
    assert diagnose(PUBLISHED, PROTOCOL, REFERENCE) is None


# --- the recall of all the images against the annotated ones, to the published precision ---

ALL_IMAGES = replace(PROTOCOL, selection="all", num_images=5000)
FALSE_POSITIVES = (
    "images without annotations add only false positives (MLPerf #385: 19.98 instead of 20.0 over all 5000)"
)


def _recall_shown(ar100: float, reference: Reference = REFERENCE) -> str:
    d = diagnose({**PUBLISHED, "AP": 0.195, "AR100": ar100}, ALL_IMAGES, reference)
    assert d is not None and d.cause == "images"
    prefix = "5000 images scored (all), the reference scored 4952 (annotated): AP 0.195 vs 0.196, "
    assert d.line.startswith(prefix) and d.line.endswith(f"; {FALSE_POSITIVES}")
    return d.line[len(prefix) : -len(FALSE_POSITIVES) - 2]


def test_all_images_recall_within_half_a_unit_of_the_published_figure_is_unchanged():
    # 0.341 is published to 3 decimals: 0.3405 and 0.3415 print as it would (half a unit either side).
    assert _recall_shown(0.341) == "AR100 0.341 unchanged"
    assert _recall_shown(0.3405) == "AR100 0.341 unchanged"  # was "AR100 0.341 vs 0.341" (float noise)
    assert _recall_shown(0.3415) == "AR100 0.342 unchanged"
    assert _recall_shown(0.3404) == "AR100 0.340 vs 0.341"
    assert _recall_shown(0.3) == "AR100 0.300 vs 0.341"


def test_all_images_recall_at_exactly_the_allowance_is_unchanged():
    # Against a recall of 0: the allowance (half a unit of 0.001, plus the gate's 1e-12 of float noise)
    # is reached exactly, and passed by 1e-12.
    nothing = replace(REFERENCE, stats={**PUBLISHED, "AR100": 0.0})
    assert _recall_shown(0.0005 + 1e-12, nothing) == "AR100 0.001 unchanged"
    assert _recall_shown(0.0005 + 2e-12, nothing) == "AR100 0.001 vs 0.000"


def test_boxes_not_clipped_against_a_clipped_reference_record():
    reference = replace(REFERENCE, protocol=replace(PROTOCOL, clip_boxes=True))
    d = diagnose({**PUBLISHED, "AP": 0.1955, "APl": 0.2261}, PROTOCOL, reference)
    assert d is not None and d.to_json() == {
        "cause": "clipped-boxes",
        "line": "boxes not clipped (decode.clip_boxes: false), the reference's were clipped: AP 0.1955 vs "
        "0.1960, APl 0.2261 vs 0.2280",
        "evidence": {"AP": 0.1955, "reference_AP": 0.196},
    }
