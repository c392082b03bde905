"""Detection-level agreement between two runs on the same images (pure functions).

Per image, a run's detections are matched to the reference's: same category, IoU >= a threshold
(0.5 by default), greedily in order of descending reference score, each reference detection taking
the unmatched run detection with the highest IoU (ties: the lower index). Matched pairs give score
and box differences; unmatched reference detections are *missing*, unmatched run detections *extra*.

Raw-output differences follow Polygraphy's comparator: over the matched pairs' raw values (scores,
normalized x1, y1, x2, y2 box corners), absolute difference |run - ref| and relative difference
|run - ref| / |ref| (a reference value of 0 gets a tiny epsilon), each summarised by max, mean and p99.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ssd_eval.pipeline.decode import Detections

EPSILON = float(np.finfo(np.float64).eps)  # Polygraphy's epsilon for zero reference values


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in `a` [N, 4] with every box in `b` [M, 4], both pixel x, y, w, h."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    ax1, ay1, aw, ah = a.T[:, :, None]  # each [N, 1]: `a` down, `b` across
    bx1, by1, bw, bh = b.T  # each [M]
    inter_w = np.clip(np.minimum(ax1 + aw, bx1 + bw) - np.maximum(ax1, bx1), 0.0, None)
    inter_h = np.clip(np.minimum(ay1 + ah, by1 + bh) - np.maximum(ay1, by1), 0.0, None)
    inter = inter_w * inter_h
    # A box with a side <= 0 overlaps nothing: inter is 0, and so is its IoU whatever its "area".
    union = aw * ah + bw * bh - inter
    # inter is 0 wherever union is not positive (zero-area or flipped boxes): those divide by 1.
    iou = inter / np.where(union > 0, union, 1.0)
    # Two identical zero-area boxes agree perfectly even though their IoU is 0/0.
    same = np.all(a[:, None, :] == b[None, :, :], axis=2)
    return np.where(same, 1.0, iou)


@dataclass(frozen=True)
class ImageAgreement:
    """How one image's detections of a run line up with the reference's."""

    image_id: int
    pairs: np.ndarray  # int64 [K, 2]: (reference index, run index) of each matched pair
    missing: np.ndarray  # int64: reference indices without a match
    extra: np.ndarray  # int64: run indices without a match
    num_reference: int
    num_run: int
    # Each side's scores, for counting only the detections a person would see (`visible`).
    reference_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))
    run_scores: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def matched(self) -> int:
        return len(self.pairs)

    @property
    def full(self) -> bool:
        """True when every detection on both sides is matched."""
        return len(self.missing) == 0 and len(self.extra) == 0

    def visible(self, min_score: float) -> VisibleCounts:
        """The counts over detections scoring at least `min_score` on their own side. Matching itself
        used every detection, so a pair straddling the cut (0.31 and 0.29 at 0.3) stays a pair."""
        ref_seen = self.reference_scores >= min_score
        run_seen = self.run_scores >= min_score
        return VisibleCounts(
            reference=int(ref_seen.sum()),
            run=int(run_seen.sum()),
            matched=int(ref_seen[self.pairs[:, 0]].sum()),
            missing=int(ref_seen[self.missing].sum()),
            extra=int(run_seen[self.extra].sum()),
        )


@dataclass(frozen=True)
class VisibleCounts:
    """One image's agreement over the detections a person would see (at or above a score)."""

    reference: int
    run: int
    matched: int  # visible reference detections with a partner
    missing: int  # visible reference detections without one
    extra: int  # visible run detections without a reference partner

    @property
    def full(self) -> bool:
        return self.missing == 0 and self.extra == 0


def match_detections(reference: Detections, run: Detections, *, iou_threshold: float = 0.5) -> ImageAgreement:
    """Match `run`'s detections to `reference`'s: same category, IoU >= threshold, greedy by score."""
    if reference.image_id != run.image_id:
        raise ValueError(f"cannot match image {reference.image_id} with image {run.image_id}")
    ious = iou_matrix(reference.boxes, run.boxes)
    same_label = reference.category_ids[:, None] == run.category_ids[None, :]
    candidates = same_label & (ious >= iou_threshold)
    taken = np.zeros(len(run), dtype=bool)
    pairs: list[tuple[int, int]] = []
    # Stable sort: equal scores keep their emitted order.
    for ref_index in np.argsort(-reference.scores, kind="stable"):
        free = np.flatnonzero(candidates[ref_index] & ~taken)  # ascending run indices
        if free.size == 0:
            continue
        run_index = int(free[np.argmax(ious[ref_index, free])])  # argmax picks the lowest index among ties
        taken[run_index] = True
        pairs.append((int(ref_index), run_index))
    pairs.sort()
    pair_array = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    matched_ref = set(pair_array[:, 0].tolist())
    return ImageAgreement(
        image_id=reference.image_id,
        pairs=pair_array,
        missing=np.asarray([i for i in range(len(reference)) if i not in matched_ref], dtype=np.int64),
        extra=np.flatnonzero(~taken).astype(np.int64),
        num_reference=len(reference),
        num_run=len(run),
        reference_scores=np.asarray(reference.scores, dtype=np.float64),
        run_scores=np.asarray(run.scores, dtype=np.float64),
    )


def corners(boxes: np.ndarray) -> np.ndarray:
    """Pixel x, y, w, h -> x1, y1, x2, y2."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


@dataclass(frozen=True)
class PairDifferences:
    """One image's matched pairs: score and box differences (arrays of length K)."""

    ref_scores: np.ndarray  # [K]
    run_scores: np.ndarray  # [K]
    ref_corners: np.ndarray  # [K, 4] normalized x1, y1, x2, y2 (the model's raw box output)
    run_corners: np.ndarray  # [K, 4]
    box_px: np.ndarray  # [K]: the largest |corner difference| of each pair, in pixels


def pair_differences(
    reference: Detections, run: Detections, agreement: ImageAgreement, *, width: int, height: int
) -> PairDifferences:
    """Differences of the matched pairs; boxes back in the model's normalized corner form."""
    ref_i, run_i = agreement.pairs[:, 0], agreement.pairs[:, 1]
    ref_px, run_px = corners(reference.boxes[ref_i]), corners(run.boxes[run_i])
    scale = np.array([width, height, width, height], dtype=np.float64)
    return PairDifferences(
        ref_scores=reference.scores[ref_i],
        run_scores=run.scores[run_i],
        ref_corners=ref_px / scale,
        run_corners=run_px / scale,
        box_px=np.abs(run_px - ref_px).max(axis=1),
    )


@dataclass(frozen=True)
class DiffStats:
    """Polygraphy-style summary of absolute and relative differences of one output."""

    count: int
    abs_max: float
    abs_mean: float
    abs_p99: float
    rel_max: float
    rel_mean: float
    rel_p99: float

    @classmethod
    def of(cls, reference: np.ndarray, run: np.ndarray) -> DiffStats:
        ref = np.asarray(reference, dtype=np.float64).ravel()
        out = np.asarray(run, dtype=np.float64).ravel()
        if ref.size == 0:
            return cls(0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        absdiff = np.abs(out - ref)
        denom = np.abs(ref)
        denom[denom == 0] = EPSILON
        reldiff = absdiff / denom
        return cls(
            count=int(ref.size),
            abs_max=float(absdiff.max()),
            abs_mean=float(absdiff.mean()),
            abs_p99=float(np.percentile(absdiff, 99)),
            rel_max=float(reldiff.max()),
            rel_mean=float(reldiff.mean()),
            rel_p99=float(np.percentile(reldiff, 99)),
        )


@dataclass(frozen=True)
class AgreementSummary:
    """Agreement of one run with the reference over all compared images."""

    iou_threshold: float
    images: int
    images_full_agreement: int  # images where every detection on both sides is matched
    reference_detections: int
    run_detections: int
    matched: int
    missing: int  # reference detections the run does not have
    extra: int  # run detections the reference does not have
    score_diff_mean: float  # |run score - reference score| over matched pairs
    score_diff_max: float
    box_diff_px_mean: float  # largest |corner difference| of a matched pair, in pixels
    box_diff_px_max: float
    raw_scores: DiffStats  # Polygraphy-style, matched scores
    raw_boxes: DiffStats  # Polygraphy-style, matched normalized x1, y1, x2, y2
    # The same over the detections a person would see (score >= min_score on their side): what the
    # agreement rules hold; near-threshold detections flicker between providers without meaning.
    min_score: float = 0.0
    visible_reference: int = 0
    visible_run: int = 0
    visible_matched: int = 0
    visible_extra: int = 0
    visible_images_full: int = 0
    score_diff_p99: float = 0.0  # over all matched pairs
    box_diff_px_p99: float = 0.0

    @property
    def matched_fraction(self) -> float:
        """Visible reference detections with a partner, over the visible reference detections."""
        return self.visible_matched / self.visible_reference if self.visible_reference else 1.0

    @property
    def extra_fraction(self) -> float:
        """Visible run detections without a reference partner, over the visible run detections."""
        return self.visible_extra / self.visible_run if self.visible_run else 0.0

    @property
    def full_fraction(self) -> float:
        """Images where every visible detection is matched both ways, over the compared images."""
        return self.visible_images_full / self.images if self.images else 1.0

    @property
    def match_rate(self) -> float:
        """Matched pairs over the larger side's detections (1.0: full agreement)."""
        larger = max(self.reference_detections, self.run_detections)
        return self.matched / larger if larger else 1.0


def summarize_agreement(
    items: Iterable[tuple[ImageAgreement, PairDifferences]], *, iou_threshold: float, min_score: float = 0.0
) -> AgreementSummary:
    """Fold per-image agreements and pair differences into one summary."""
    agreements: list[ImageAgreement] = []
    diffs: list[PairDifferences] = []
    for agreement, diff in items:
        agreements.append(agreement)
        diffs.append(diff)

    def flat(arrays: Iterable[np.ndarray]) -> np.ndarray:
        """All values in one flat array (an empty one when there are none)."""
        return np.concatenate([np.zeros(0), *(np.ravel(a) for a in arrays)])

    ref_scores = flat(d.ref_scores for d in diffs)
    run_scores = flat(d.run_scores for d in diffs)
    box_px = flat(d.box_px for d in diffs)
    score_diff = np.abs(run_scores - ref_scores)
    visible = [a.visible(min_score) for a in agreements]
    return AgreementSummary(
        iou_threshold=iou_threshold,
        images=len(agreements),
        images_full_agreement=sum(a.full for a in agreements),
        reference_detections=sum(a.num_reference for a in agreements),
        run_detections=sum(a.num_run for a in agreements),
        matched=sum(a.matched for a in agreements),
        missing=sum(len(a.missing) for a in agreements),
        extra=sum(len(a.extra) for a in agreements),
        score_diff_mean=float(score_diff.mean()) if score_diff.size else 0.0,
        score_diff_max=float(score_diff.max()) if score_diff.size else 0.0,
        box_diff_px_mean=float(box_px.mean()) if box_px.size else 0.0,
        box_diff_px_max=float(box_px.max()) if box_px.size else 0.0,
        raw_scores=DiffStats.of(ref_scores, run_scores),
        raw_boxes=DiffStats.of(flat(d.ref_corners for d in diffs), flat(d.run_corners for d in diffs)),
        min_score=min_score,
        visible_reference=sum(v.reference for v in visible),
        visible_run=sum(v.run for v in visible),
        visible_matched=sum(v.matched for v in visible),
        visible_extra=sum(v.extra for v in visible),
        visible_images_full=sum(v.full for v in visible),
        score_diff_p99=float(np.percentile(score_diff, 99)) if score_diff.size else 0.0,
        box_diff_px_p99=float(np.percentile(box_px, 99)) if box_px.size else 0.0,
    )


def disagreement(reference: Detections, run: Detections, agreement: ImageAgreement) -> float:
    """How much one image disagrees: scores of unmatched detections plus |score difference| of pairs.

    Confident disagreements weigh most; used to pick the images worth looking at.
    """
    unmatched = float(reference.scores[agreement.missing].sum() + run.scores[agreement.extra].sum())
    ref_i, run_i = agreement.pairs[:, 0], agreement.pairs[:, 1]
    return unmatched + float(np.abs(reference.scores[ref_i] - run.scores[run_i]).sum())


def visible_unmatched(
    reference: Detections, run: Detections, agreement: ImageAgreement, *, min_score: float
) -> int:
    """Detections one side has and the other lacks that score at least `min_score` (drawn in a picture).

    A real disagreement: an image whose only differences are tiny score or box shifts has none.
    """
    missing = int(np.count_nonzero(reference.scores[agreement.missing] >= min_score))
    return missing + int(np.count_nonzero(run.scores[agreement.extra] >= min_score))
