"""Diagnosis: when a full run misses the reference, which known protocol mistake does it look like?

The published run behind ssd-10's 0.195 (MODEL_FACTS.md, "Published accuracy") has a 12-stat
signature, and each known way of getting the protocol wrong bends it in its own way:

- labels not mapped to COCO category ids (or off by one): AP collapses (~0.002, onnx/models #165);
- ground truth upscaled to 1200x1200 (MLPerf's coco-1200 annotations): AP unchanged, but the area
  ranges shift, so APs falls to about a third (0.038 vs 0.115, mlcommons/inference #657);
- a score cut (MLPerf's PostProcessCocoOnnx keeps scores >= 0.5): AR100 well below 0.341;
- all 5000 images instead of the 4952 annotated: the 48 empty images add only false positives, so
  AP is slightly lower and recall is unchanged (MLPerf #385);
- boxes clipped to the image, a different resize: recorded in the run's protocol, compared with
  the reference's.

`diagnose` names the most likely cause in one line, with the evidence, or returns None when nothing
looks off. Facts come before signatures: a setting the run recorded differently from the reference
(input size or preprocessing, clip_boxes, a higher score threshold, the image selection) is named
first, and the 12 stats are read for a signature only when the recorded settings match. It explains
a miss; it never passes or fails anything (the gate does that).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ssd_eval.coco_stats import is_undefined
from ssd_eval.reports.baseline import Baseline
from ssd_eval.reports.gate import EPS
from ssd_eval.reports.results import RunResult

Cause = Literal["resize", "labels", "ground-truth-rescaled", "score-cut", "images", "clipped-boxes"]

# Thresholds, each a fraction of the reference's own figure, derived from the published signatures
# in MODEL_FACTS.md ("Protocol signatures") with a wide margin on both sides:
#
# Unmapped labels: the published AP fell from 0.196 to 0.002 (1% of it). Labels used as category
# ids leave the first 11 categories right (COCO ids 1..11 have no gap), so up to ~11/80 of the AP
# survives; no other listed mistake removes more than a few percent of AP. A quarter separates them.
LABELS_MAX_AP_RATIO = 0.25
# Upscaled ground truth: APs 0.038 against 0.115 (ratio 0.33) with AP unchanged (0.196 = 0.196;
# IoU does not depend on scale). Half of the reference's APs with at least 90% of its AP.
RESCALED_MAX_APS_RATIO = 0.5
RESCALED_MIN_AP_RATIO = 0.9
# A score cut: "AR100 well below 0.341". A provider or a clipped box moves AR100 by a few 0.001;
# a cut at 0.5 removes most of the low-scored true positives: 85% of the reference's AR100.
SCORE_CUT_MAX_AR100_RATIO = 0.85
# Figures are published to 3 decimals: a recall within half a unit of the last place is unchanged.
PUBLISHED_PRECISION = 0.0005


@dataclass(frozen=True)
class ProtocolFacts:
    """What a run (or the reference run) recorded of how it was evaluated."""

    selection: str  # annotated | all
    num_images: int
    input_size: tuple[int, int] | None  # None: not known (imported detections)
    preprocess: str  # the preprocessing backend (pillow is the model card's), or "not known"
    clip_boxes: bool
    score_threshold: float


@dataclass(frozen=True)
class Reference:
    """The figures a run is diagnosed against (the published run, or a measured baseline)."""

    name: str
    stats: Mapping[str, float]
    protocol: ProtocolFacts


@dataclass(frozen=True)
class Diagnosis:
    """The likely cause of a miss, in one line with its evidence."""

    cause: Cause
    line: str
    evidence: Mapping[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"cause": self.cause, "line": self.line, "evidence": dict(self.evidence)}


def _known(stats: Mapping[str, float], name: str) -> float | None:
    """A stat, or None where it is absent or -1 (COCOeval's "no ground truth in this area range")."""
    value = stats.get(name)
    return None if value is None or is_undefined(value) else value


def _versus(stats: Mapping[str, float], ref: Reference, name: str, digits: int = 3) -> str:
    """ ", APs 0.070 vs 0.115" when both sides know the stat, else nothing."""
    value, want = _known(stats, name), _known(ref.stats, name)
    if value is None or want is None:
        return ""
    return f", {name} {value:.{digits}f} vs {want:.{digits}f}"


def _ratio(value: float, reference: float) -> float:
    return value / reference if reference > 0 else math.inf


def _resize(stats: Mapping[str, float], run: ProtocolFacts, ref: Reference) -> Diagnosis | None:
    want = ref.protocol
    if run.input_size == want.input_size and run.preprocess == want.preprocess:
        return None
    if run.input_size is None or want.input_size is None:
        return None  # detections made elsewhere: their resize is not known here
    size = f"{run.input_size[0]}x{run.input_size[1]}"
    want_size = f"{want.input_size[0]}x{want.input_size[1]}"
    return Diagnosis(
        "resize",
        f"images resized by {run.preprocess} to {size}, the reference by {want.preprocess} to {want_size}: "
        f"AP {stats['AP']:.3f} vs {ref.stats['AP']:.3f}"
        + _versus(stats, ref, "APs")
        + ": a different resize looks like the cause",
        {"AP": stats["AP"], "reference_AP": ref.stats["AP"]},
    )


def _labels(stats: Mapping[str, float], ref: Reference) -> Diagnosis | None:
    ap, want = stats["AP"], ref.stats["AP"]
    if _ratio(ap, want) > LABELS_MAX_AP_RATIO:
        return None
    return Diagnosis(
        "labels",
        f"AP {ap:.3f} with reference AP {want:.3f} ({100 * _ratio(ap, want):.0f}%): labels look not "
        "mapped to COCO category ids (or off by one), which gives AP ~0.002 (onnx/models #165)",
        {"AP": ap, "reference_AP": want},
    )


def _rescaled(stats: Mapping[str, float], ref: Reference) -> Diagnosis | None:
    aps, want_aps = _known(stats, "APs"), _known(ref.stats, "APs")
    if aps is None or want_aps is None:
        return None
    ap, want_ap = stats["AP"], ref.stats["AP"]
    if _ratio(aps, want_aps) > RESCALED_MAX_APS_RATIO or _ratio(ap, want_ap) < RESCALED_MIN_AP_RATIO:
        return None
    return Diagnosis(
        "ground-truth-rescaled",
        f"APs {aps:.3f} with AP {ap:.3f} (reference APs {want_aps:.3f}, AP {want_ap:.3f}): ground truth "
        "looks rescaled to 1200x1200 (MLPerf's coco-1200 annotations give APs 0.038, "
        "mlcommons/inference #657)",
        {"AP": ap, "APs": aps, "reference_AP": want_ap, "reference_APs": want_aps},
    )


def _recall(stats: Mapping[str, float], run: ProtocolFacts, ref: Reference) -> tuple[str, dict[str, float]]:
    """ "AR100 0.254 vs 0.341" and the evidence of a score cut."""
    recall, want = stats["AR100"], ref.stats.get("AR100")
    shown = f"AR100 {recall:.3f}" + (f" vs {want:.3f}" if want is not None else "")
    return shown, {"AR100": recall, "score_threshold": run.score_threshold}


def _score_threshold(stats: Mapping[str, float], run: ProtocolFacts, ref: Reference) -> Diagnosis | None:
    """A higher recorded score threshold (a lower one keeps all the reference kept: no miss from it)."""
    if run.score_threshold <= ref.protocol.score_threshold:
        return None
    shown, evidence = _recall(stats, run, ref)
    return Diagnosis(
        "score-cut",
        f"{shown}: decode.score_threshold {run.score_threshold:g} drops detections the reference kept "
        f"(its cut: {ref.protocol.score_threshold:g})",
        evidence,
    )


def _score_cut(stats: Mapping[str, float], run: ProtocolFacts, ref: Reference) -> Diagnosis | None:
    """A cut the run did not record (inside the post-processing): AR100 well below the reference's."""
    want = ref.stats.get("AR100")
    if want is None or _ratio(stats["AR100"], want) > SCORE_CUT_MAX_AR100_RATIO:
        return None
    shown, evidence = _recall(stats, run, ref)
    return Diagnosis(
        "score-cut",
        f"{shown} (AR10 {stats['AR10']:.3f}): detections look cut at a score threshold "
        "(MLPerf's PostProcessCocoOnnx keeps only scores >= 0.5); keep every detection the graph emits",
        {**evidence, "reference_AR100": want},
    )


def _scored(run: ProtocolFacts, ref: Reference) -> str:
    want = ref.protocol
    return (
        f"{run.num_images} images scored ({run.selection}), "
        f"the reference scored {want.num_images} ({want.selection}): "
    )


def _image_evidence(stats: Mapping[str, float], run: ProtocolFacts, ref: Reference) -> dict[str, float]:
    return {"AP": stats["AP"], "num_images": run.num_images, "reference_num_images": ref.protocol.num_images}


def _images(stats: Mapping[str, float], run: ProtocolFacts, ref: Reference) -> Diagnosis | None:
    """Another number of images than the reference's. As many under the other selection are the same
    images (`_same_images`): not a difference that explains a miss, so the stats are read first."""
    want = ref.protocol
    scored = _scored(run, ref)
    evidence = _image_evidence(stats, run, ref)
    if run.num_images < want.num_images:
        # Not a mistake of the list: another (smaller) image set, whose figures differ by chance.
        return Diagnosis(
            "images",
            f"{scored}AP {stats['AP']:.3f} vs {ref.stats['AP']:.3f} on another image set; "
            "the reference's figures hold for its own images only",
            evidence,
        )
    if run.num_images == want.num_images:
        return None
    recall = ""
    if "AR100" in ref.stats:
        want_recall = ref.stats["AR100"]
        same = abs(stats["AR100"] - want_recall) <= PUBLISHED_PRECISION + EPS  # 0.3405 - 0.341: float noise
        recall = f", AR100 {stats['AR100']:.3f} " + ("unchanged" if same else f"vs {want_recall:.3f}")
    return Diagnosis(
        "images",
        f"{scored}AP {stats['AP']:.3f} vs {ref.stats['AP']:.3f}{recall}; images without annotations add "
        "only false positives (MLPerf #385: 19.98 instead of 20.0 over all 5000)",
        evidence,
    )


def _same_images(stats: Mapping[str, float], run: ProtocolFacts, ref: Reference) -> Diagnosis | None:
    """`all` against `annotated` (or back) with as many images: every image is annotated, so both
    selections chose the same images. Said when nothing else explains the figures: the images do not."""
    want = ref.protocol
    if run.selection == want.selection or run.num_images != want.num_images:
        return None
    return Diagnosis(
        "images",
        f"{_scored(run, ref)}the same images under another selection (as many, so every one is "
        f"annotated); AP {stats['AP']:.3f} vs {ref.stats['AP']:.3f} does not come from the images",
        _image_evidence(stats, run, ref),
    )


def _clipped(stats: Mapping[str, float], run: ProtocolFacts, ref: Reference) -> Diagnosis | None:
    if run.clip_boxes == ref.protocol.clip_boxes:
        return None
    done = "clipped to the image" if run.clip_boxes else "not clipped"
    return Diagnosis(
        "clipped-boxes",
        f"boxes {done} (decode.clip_boxes: {str(run.clip_boxes).lower()}), the reference's were "
        f"{'clipped' if ref.protocol.clip_boxes else 'not'}: AP {stats['AP']:.4f} vs {ref.stats['AP']:.4f}"
        + _versus(stats, ref, "APl", 4),
        {"AP": stats["AP"], "reference_AP": ref.stats["AP"]},
    )


def diagnose(stats: Mapping[str, float], run: ProtocolFacts, reference: Reference) -> Diagnosis | None:
    """The most likely protocol mistake behind a run's figures, or None when none is seen.

    First the settings the run recorded differently from the reference, a different input (resize)
    first because it changes everything downstream: a recorded difference is a fact, while a
    signature in the stats is a guess (clipped boxes can lower AR100 as a score cut does). Only when
    the recorded settings match, the signatures in the 12 stats, strongest first.
    """
    if _known(stats, "AP") is None or _known(reference.stats, "AP") is None:
        return None  # no ground truth on one side (AP -1): there is no miss to explain
    return (
        _recorded_difference(stats, run, reference)
        or _signature(stats, run, reference)
        or _same_images(stats, run, reference)
    )


def _recorded_difference(stats: Mapping[str, float], run: ProtocolFacts, ref: Reference) -> Diagnosis | None:
    """A setting the run recorded differently from the reference, named with its effect."""
    return (
        _resize(stats, run, ref)
        or _clipped(stats, run, ref)
        or _score_threshold(stats, run, ref)
        or _images(stats, run, ref)
    )


def _signature(stats: Mapping[str, float], run: ProtocolFacts, ref: Reference) -> Diagnosis | None:
    """A known mistake the run could not record, read from its 12 stats."""
    return _labels(stats, ref) or _rescaled(stats, ref) or _score_cut(stats, run, ref)


def reference_from_baseline(baseline: Baseline) -> Reference | None:
    """A baseline as a diagnosis reference, or None when it does not record the protocol facts."""
    p = baseline.protocol
    try:
        facts = ProtocolFacts(
            selection=str(p["selection"]),
            num_images=int(p["num_images"]),
            input_size=(int(p["input_size"][0]), int(p["input_size"][1])),
            preprocess=str(p["preprocess"]),
            clip_boxes=bool(p["clip_boxes"]),
            score_threshold=float(p["score_threshold"]),
        )
    except (KeyError, TypeError, ValueError, IndexError):
        return None
    return Reference(baseline.name, dict(baseline.stats), facts)


def run_facts(result: RunResult) -> ProtocolFacts:
    """The protocol facts a run recorded."""
    p = result.protocol
    return ProtocolFacts(
        selection=p.selection,
        num_images=p.num_images,
        input_size=(int(p.input_size[0]), int(p.input_size[1])) if p.input_size else None,
        preprocess=p.preprocess,
        clip_boxes=p.clip_boxes,
        score_threshold=p.score_threshold,
    )


def diagnose_run(result: RunResult, baseline: Baseline | None) -> Diagnosis | None:
    """`diagnose` for a full run of the baseline's own model (another model's figures explain nothing)."""
    if baseline is None or not result.protocol.complete:
        return None
    want_sha = baseline.model.get("sha256")
    if want_sha and str(want_sha).lower() != result.model.sha256.lower():
        return None
    reference = reference_from_baseline(baseline)
    if reference is None:
        return None
    return diagnose(result.stats, run_facts(result), reference)
