"""pycocotools' COCOeval (bbox) on flat arrays: the same numbers bit for bit, in seconds, lean.

pycocotools walks Python dicts, one per detection, through loops over image x category x area
range x IoU threshold x detection x ground truth: ~2 minutes and ~3 GB for a val2017 run. Here the
same computation runs on columns: detections as an `[N, 7]` array, the ground truth as arrays made
once from the annotation tree. Each step repeats pycocotools 2.0's arithmetic in the same order:

- IoU is maskApi.c's `bbIou` (fmin/fmax, `(da + ga) - i`, a crowd box's union is the detection's area);
- per (image, category), detections are ranked by score with a stable sort and cut at 100; ground
  truth keeps its file order, regular boxes before ignored ones;
- matching is `evaluateImg`'s greedy loop: a detection takes the best still-free regular box with
  IoU >= t (the last one on ties), and only without one the best ignored box; crowd boxes stay free.
  It runs one detection rank at a time for all (image, category, area, threshold) cases at once;
- `accumulate`: stable sort by score over the images in id order, cumulative true/false positives,
  `tp / (fp + tp + eps)`, the right-to-left running max, precision read at the 101 recall points;
- `summarize`: pycocotools' own indexing and means.

So `precision` and `recall` are the very arrays pycocotools builds, and the 12 stats and per-category
AP are equal, not close (tests/test_array_cocoeval.py: generated data and the real slice, every value).
Only bbox evaluation with the default parameters is implemented.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

IOU_THRESHOLDS = np.linspace(0.5, 0.95, int(np.round((0.95 - 0.5) / 0.05)) + 1, endpoint=True)
RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)
MAX_DETS = (1, 10, 100)
AREA_RANGES = ((0.0**2, 1e5**2), (0.0**2, 32.0**2), (32.0**2, 96.0**2), (96.0**2, 1e5**2))
AREA_LABELS = ("all", "small", "medium", "large")


@dataclass(frozen=True)
class ArrayEvaluation:
    """What COCOeval.accumulate + summarize leave: `precision` [T, R, K, A, M], `recall` [T, K, A, M]."""

    cat_ids: tuple[int, ...]
    precision: np.ndarray
    recall: np.ndarray
    stats: tuple[float, ...]
    printout: str


@dataclass(frozen=True)
class _GroundTruth:
    """The evaluated images' annotations, sorted by (image, category), file order within."""

    key: np.ndarray  # int64 image index * K + category index
    boxes: np.ndarray  # float64 [G, 4]
    crowd: np.ndarray  # bool
    ignored: np.ndarray  # bool [G, A]: crowd or outside the area range
    id_nonzero: np.ndarray  # bool: pycocotools stores a match as the gt id, so id 0 counts as none


def box_iou(dt: np.ndarray, gt: np.ndarray, crowd: np.ndarray) -> np.ndarray:
    """`bbIou` of maskApi.c, broadcast: dt [..., 4] against gt [..., 4] (x, y, w, h), crowd like gt."""
    dx, dy, dw, dh = (dt[..., j] for j in range(4))
    gx, gy, gw, gh = (gt[..., j] for j in range(4))
    da = dw * dh
    ga = gw * gh
    w = np.fmin(dw + dx, gw + gx) - np.fmax(dx, gx)
    h = np.fmin(dh + dy, gh + gy) - np.fmax(dy, gy)
    inter = w * h
    union = np.where(crowd, da, da + ga - inter)
    overlap = (w > 0) & (h > 0)
    out = np.zeros(inter.shape)
    np.divide(inter, union, out=out, where=overlap)
    return out


def _ground_truth(
    annotations: Sequence[Mapping[str, Any]], image_index: Mapping[int, int], cat_index: Mapping[int, int]
) -> _GroundTruth:
    num_cats = len(cat_index)
    keys, boxes, crowd, areas, id_nonzero = [], [], [], [], []
    for ann in annotations:
        i = image_index.get(ann["image_id"])
        k = cat_index.get(ann["category_id"])
        if i is None or k is None:
            continue
        keys.append(i * num_cats + k)
        boxes.append(ann["bbox"])
        # pycocotools: gt['ignore'] = 'iscrowd' in gt and gt['iscrowd']; the IoU takes int(iscrowd).
        crowd.append(bool(ann.get("iscrowd")))
        areas.append(ann["area"])
        id_nonzero.append(ann["id"] != 0)
    key = np.array(keys, dtype=np.int64)
    order = np.argsort(key, kind="stable")
    area = np.array(areas, dtype=np.float64)[order]
    is_crowd = np.array(crowd, dtype=bool)[order]
    lo = np.array([r[0] for r in AREA_RANGES])
    hi = np.array([r[1] for r in AREA_RANGES])
    outside = (area[:, None] < lo) | (area[:, None] > hi)
    return _GroundTruth(
        key=key[order],
        boxes=np.array(boxes, dtype=np.float64).reshape(-1, 4)[order],
        crowd=is_crowd,
        ignored=is_crowd[:, None] | outside,
        id_nonzero=np.array(id_nonzero, dtype=bool)[order],
    )


def _index_in(sorted_ids: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each value's position in `sorted_ids`, and whether it is there at all (the position of a value
    that is not there means nothing)."""
    return np.searchsorted(sorted_ids, values), np.isin(values, sorted_ids)


def _groups(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unique keys of a sorted array with the start and length of each run."""
    keys, starts, lengths = np.unique(sorted_keys, return_index=True, return_counts=True)
    return keys, starts, lengths


def _bits(flags: np.ndarray) -> np.ndarray:
    """[..., A] booleans -> uint64 masks holding the T threshold bits of every area that is set."""
    per_area = np.uint64((1 << len(IOU_THRESHOLDS)) - 1)
    out = np.zeros(flags.shape[:-1], dtype=np.uint64)
    for a in range(flags.shape[-1]):
        out |= np.where(flags[..., a], per_area << np.uint64(a * len(IOU_THRESHOLDS)), np.uint64(0))
    return out


def _unbits(masks: np.ndarray) -> np.ndarray:
    """uint64 masks -> bool [N, A, T]."""
    width = len(AREA_RANGES) * len(IOU_THRESHOLDS)
    octets = np.ascontiguousarray(masks, dtype="<u8").view(np.uint8).reshape(len(masks), 8)
    flags = np.unpackbits(octets, axis=1, bitorder="little")[:, :width].astype(bool)
    return flags.reshape(len(masks), len(AREA_RANGES), len(IOU_THRESHOLDS))


def _match(
    gt: _GroundTruth,
    dt_boxes: np.ndarray,
    dt_starts: np.ndarray,
    dt_counts: np.ndarray,
    gt_starts: np.ndarray,
    gt_counts: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """evaluateImg's greedy matching for every (image, category) holding both kinds of box.

    Arguments describe those pairs: where their detections (ranked, at most 100) and ground truth
    start and how many there are. Returns, per detection, (area, threshold) bits (see `_bits`): `hit`,
    matched (pycocotools' `dtm != 0`), and `to_ignored`, matched to an ignored box (`dtIgnore`
    before the area rule); detections outside these pairs match nothing.

    The 4 areas x 10 thresholds of one ground-truth box are the 40 bits of one uint64 (bit
    a * 10 + t), so one detection rank of every pair is a few operations on [pairs, boxes] masks.
    """
    num_thr = len(IOU_THRESHOLDS)
    # above[c]: the bits of thresholds[:c] in every area (an IoU >= exactly the first c thresholds).
    above = np.array(
        [sum(((1 << c) - 1) << (a * num_thr) for a in range(len(AREA_RANGES))) for c in range(num_thr + 1)],
        dtype=np.uint64,
    )
    every = above[-1]
    hit_bits = np.zeros(len(dt_boxes), dtype=np.uint64)
    ignored_bits = np.zeros(len(dt_boxes), dtype=np.uint64)
    for size in np.unique(gt_counts).tolist():
        in_bucket = np.flatnonzero(gt_counts == size)
        # Pairs with more detections first: at rank d the pairs still matching are a prefix. Pairs with
        # as many detections may come in any order: each is matched on its own row.
        in_bucket = in_bucket[np.argsort(-dt_counts[in_bucket])]
        counts = dt_counts[in_bucket]
        first_dt = dt_starts[in_bucket]
        g = gt_starts[in_bucket][:, None] + np.arange(size)  # [P, G]
        g_boxes, g_crowd = gt.boxes[g], gt.crowd[g]
        g_regular = _bits(~gt.ignored[g])
        g_ignored = _bits(gt.ignored[g])
        g_counts = np.where(gt.id_nonzero[g], every, np.uint64(0))  # a match to id 0 is no match
        g_takeable = np.where(g_crowd, np.uint64(0), every)  # a crowd box matches any number
        free = np.full((len(in_bucket), size), every, dtype=np.uint64)
        active = [int(np.count_nonzero(counts > rank)) for rank in range(int(counts[0]))]
        for rank, n in enumerate(active):
            d = first_dt[:n] + rank
            iou = box_iou(dt_boxes[d][:, None, :], g_boxes[:n], g_crowd[:n])  # [n, G]
            pool = free[:n] & above[np.searchsorted(IOU_THRESHOLDS, iou, side="right")]
            if size == 1:
                chosen = pool
            else:
                regular = pool & g_regular[:n]
                # A regular box wins over any ignored one; without one, ignored boxes compete.
                pool = regular | (pool & ~np.bitwise_or.reduce(regular, axis=1)[:, None])
                # Best IoU first, the later box first among equals (pycocotools keeps the last).
                best_first = size - 1 - np.argsort(-iou[:, ::-1], axis=1, kind="stable")
                chosen = np.zeros_like(pool)
                claimed = np.zeros(n, dtype=np.uint64)
                rows = np.arange(n)
                for j in range(size):
                    col = best_first[:, j]
                    bits = pool[rows, col] & ~claimed
                    chosen[rows, col] = bits
                    claimed |= bits
            hit_bits[d] = np.bitwise_or.reduce(chosen & g_counts[:n], axis=1)
            ignored_bits[d] = np.bitwise_or.reduce(chosen & g_ignored[:n], axis=1)
            free[:n] &= ~(chosen & g_takeable[:n])
    return hit_bits, ignored_bits


def _accumulate(
    num_cats: int,
    det_cat: np.ndarray,
    det_rank: np.ndarray,
    det_scores: np.ndarray,
    hit: np.ndarray,
    to_ignored: np.ndarray,
    outside: np.ndarray,
    regular_gt: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """COCOeval.accumulate over the detections (ordered by image, then rank within the image).

    pycocotools computes precision at every detection and reads it at the 101 recall points through
    a right-to-left running max. Recall only rises at a true positive, so a point it reads is a true
    positive, or detection 0 for recall 0 (whose running max is then the first true positive's, as
    precision is 0 before it); and between true positives precision only falls (more false positives
    over the same true positives). So precision at the true positives gives the same running max,
    with the same divisions: the work is per true positive, not per detection and (area, threshold).
    The false positives before a true positive are the detections inside the area range so far minus
    those that matched something.
    """
    num_thr, num_rec = len(IOU_THRESHOLDS), len(RECALL_THRESHOLDS)
    num_areas, num_max = len(AREA_RANGES), len(MAX_DETS)
    precision = -np.ones((num_thr, num_rec, num_cats, num_areas, num_max))
    recall = -np.ones((num_thr, num_cats, num_areas, num_max))
    eps = np.spacing(1)
    true_pos = hit & ~to_ignored  # pycocotools' dtm & ~dtIgnore, as (area, threshold) bits
    # Neither a false positive nor an unmatched detection inside the area range.
    not_false_pos = (hit | to_ignored) & _bits(~outside)
    touched = (hit | to_ignored) != 0
    position = np.empty(len(det_cat), dtype=np.int64)  # a detection's place in the current order
    by_cat = np.argsort(det_cat, kind="stable")
    cats, starts, lengths = _groups(det_cat[by_cat])
    spans = {int(c): by_cat[s : s + n] for c, s, n in zip(cats, starts, lengths, strict=True)}
    for k in range(num_cats):
        npig = regular_gt[k]  # [A] regular ground-truth boxes of the category
        areas = [a for a in range(num_areas) if npig[a] > 0]
        if not areas:
            continue
        by_score = spans.get(k, np.zeros(0, dtype=np.int64))
        # A stable sort of a subset keeps the subset's order in the stable sort of the whole.
        by_score = by_score[np.argsort(-det_scores[by_score], kind="mergesort")]
        for m, max_det in enumerate(MAX_DETS):
            order = by_score[det_rank[by_score] < max_det]
            tp_count, envelope = _true_positive_precision(
                order, areas, position, outside, touched, true_pos, not_false_pos, eps
            )
            for i, a in enumerate(areas):
                ntp = tp_count[i]  # [T]
                recall[:, k, a, m] = ntp / int(npig[a])  # rc[-1], and 0 without detections
                q = np.zeros((num_thr, num_rec))
                if envelope.shape[-1]:
                    rc = np.arange(1, envelope.shape[-1] + 1, dtype=np.float64) / int(npig[a])
                    at = np.searchsorted(rc, RECALL_THRESHOLDS, side="left")
                    reached = at[None, :] < ntp[:, None]  # [T, R]
                    q = np.where(reached, envelope[i][:, np.minimum(at, len(rc) - 1)], 0.0)
                precision[:, :, k, a, m] = q
    return precision, recall


def _true_positive_precision(
    order: np.ndarray,
    areas: list[int],
    position: np.ndarray,
    outside: np.ndarray,
    touched: np.ndarray,
    true_pos: np.ndarray,
    not_false_pos: np.ndarray,
    eps: float,
) -> tuple[np.ndarray, np.ndarray]:
    """For detections in score order: true positives per (area, threshold) [len(areas), T], and the
    right-to-left running max of precision at the i-th true positive [len(areas), T, max count]
    (padded with -1).
    """
    num_thr = len(IOU_THRESHOLDS)
    position[order] = np.arange(len(order))
    inside_so_far = np.cumsum(~outside[order][:, areas], axis=0)  # [nd, areas]
    events = order[touched[order]]  # the detections that matched something, in score order
    is_tp = _unbits(true_pos[events])[:, areas, :]  # [S, areas, T]
    seen = np.cumsum(_unbits(not_false_pos[events])[:, areas, :], axis=0)
    lanes = len(areas) * num_thr
    lane, event = np.nonzero(is_tp.reshape(len(events), lanes).T)  # by lane, then in score order
    count = np.bincount(lane, minlength=lanes)
    nth = np.arange(len(lane)) - np.repeat(np.cumsum(count) - count, count)
    area_i, thr = lane // num_thr, lane % num_thr
    tp = (nth + 1).astype(np.float64)
    fp = (inside_so_far[position[events[event]], area_i] - seen[event, area_i, thr]).astype(np.float64)
    grid = np.full((lanes, int(count.max())), -1.0)  # `areas` is never empty: count has >= 10 lanes
    grid[lane, nth] = tp / (fp + tp + eps)
    envelope = np.maximum.accumulate(grid[:, ::-1], axis=1)[:, ::-1]
    return count.reshape(len(areas), num_thr), envelope.reshape(len(areas), num_thr, -1)


def _summarize(precision: np.ndarray, recall: np.ndarray) -> tuple[tuple[float, ...], str]:
    """COCOeval.summarize for bbox: the 12 stats and its printout, with pycocotools' own indexing."""
    lines, stats = [], []

    def one(ap: int, iou_thr: float | None = None, area: str = "all", max_dets: int = 100) -> float:
        aind = [i for i, label in enumerate(AREA_LABELS) if label == area]
        mind = [i for i, m in enumerate(MAX_DETS) if m == max_dets]
        if ap == 1:
            s = precision
            if iou_thr is not None:
                s = s[np.where(iou_thr == IOU_THRESHOLDS)[0]]
            s = s[:, :, :, aind, mind]
        else:  # bbox's summarize asks AR over every threshold only
            s = recall[:, :, aind, mind]
        mean = -1.0 if len(s[s > -1]) == 0 else float(np.mean(s[s > -1]))
        iou_text = (
            f"{IOU_THRESHOLDS[0]:0.2f}:{IOU_THRESHOLDS[-1]:0.2f}" if iou_thr is None else f"{iou_thr:0.2f}"
        )
        title, kind = ("Average Precision", "(AP)") if ap == 1 else ("Average Recall", "(AR)")
        where = f"IoU={iou_text:<9} | area={area:>6s} | maxDets={max_dets:>3d}"
        lines.append(f" {title:<18} {kind} @[ {where} ] = {mean:0.3f}")
        return mean

    stats.append(one(1))
    stats.append(one(1, iou_thr=0.5))
    stats.append(one(1, iou_thr=0.75))
    for area in AREA_LABELS[1:]:
        stats.append(one(1, area=area))
    for max_dets in MAX_DETS:
        stats.append(one(0, max_dets=max_dets))
    for area in AREA_LABELS[1:]:
        stats.append(one(0, area=area))
    return tuple(stats), "\n".join(lines) + "\n"


def evaluate_bbox(
    coco_json: Mapping[str, Any], rows: np.ndarray, image_ids: Sequence[int]
) -> ArrayEvaluation:
    """COCOeval(gt, loadRes(rows), 'bbox') with `params.imgIds = image_ids`: evaluate, accumulate, summarize.

    `rows` are `[image_id, x, y, w, h, score, category_id]` as `loadRes` takes them; rows of other
    images or of categories absent from the annotation file are left out, as pycocotools does.
    """
    img_ids = np.unique(np.asarray(list(image_ids), dtype=np.int64))
    cat_ids = np.unique(np.array([int(c["id"]) for c in coco_json["categories"]], dtype=np.int64))
    num_cats = len(cat_ids)
    image_index = {int(v): i for i, v in enumerate(img_ids.tolist())}
    cat_index = {int(v): k for k, v in enumerate(cat_ids.tolist())}
    gt = _ground_truth(coco_json["annotations"], image_index, cat_index)

    rows = np.asarray(rows, dtype=np.float64).reshape(-1, 7)
    det_img, known_img = _index_in(img_ids, rows[:, 0])
    det_k, known_cat = _index_in(cat_ids, rows[:, 6])
    keep = known_img & known_cat
    rows, det_img, det_k = rows[keep], det_img[keep], det_k[keep]
    # Rank detections within (image, category) by score, stably, and keep the first 100.
    by_score = np.argsort(-rows[:, 5], kind="stable")
    key = det_img * num_cats + det_k
    order = by_score[np.argsort(key[by_score], kind="stable")]
    key = key[order]
    dt_keys, dt_starts, dt_counts = _groups(key)
    rank = np.arange(len(key)) - np.repeat(dt_starts, dt_counts)
    top = rank < MAX_DETS[-1]
    order, key, rank = order[top], key[top], rank[top]
    dt_keys, dt_starts, dt_counts = _groups(key)
    boxes, scores = rows[order, 1:5], rows[order, 5]
    area = boxes[:, 2] * boxes[:, 3]  # loadRes: ann['area'] = bb[2] * bb[3]
    lo = np.array([r[0] for r in AREA_RANGES])
    hi = np.array([r[1] for r in AREA_RANGES])
    dt_outside = (area[:, None] < lo) | (area[:, None] > hi)

    gt_keys, gt_starts, gt_counts = _groups(gt.key)
    both_dt = np.isin(dt_keys, gt_keys)
    both_gt = np.isin(gt_keys, dt_keys)
    hit, to_ignored = _match(
        gt, boxes, dt_starts[both_dt], dt_counts[both_dt], gt_starts[both_gt], gt_counts[both_gt]
    )
    regular = ~gt.ignored  # [G, A]
    regular_gt = np.zeros((num_cats, len(AREA_RANGES)), dtype=np.int64)
    # Without categories there is no ground truth and no detection: `% 0` of empty keys is empty.
    np.add.at(regular_gt, gt.key % num_cats, regular)
    precision, recall = _accumulate(
        num_cats, key % num_cats, rank, scores, hit, to_ignored, dt_outside, regular_gt
    )
    stats, printout = _summarize(precision, recall)
    return ArrayEvaluation(
        cat_ids=tuple(int(c) for c in cat_ids.tolist()),
        precision=precision,
        recall=recall,
        stats=stats,
        printout=printout,
    )
