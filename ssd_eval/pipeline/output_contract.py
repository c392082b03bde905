"""The model's output contract: what decoding assumes of `bboxes`, `labels` and `scores`.

The model card's outputs are `bboxes` float `[1, N, 4]` (normalized x1, y1, x2, y2, not clipped),
`labels` int64 `[1, N]` (1..80) and `scores` float `[1, N]` (in [0, 1]), N <= 200. A model that
breaks it would otherwise score a wrong number without a word: `[1, 4, N]` boxes reshaped into rows,
pixel boxes, float labels truncated, negative scores dropped by a score cut. Where each check runs:

- when the session is created, from the signature (`check_output_signature`): element types, ranks,
  batch 1 and the box axis of 4 last, wherever the model states them (types always, sizes when static);
- on every image, before the batch axis is removed (`check_output_arrays`): the three shapes and
  dtypes, one N. O(1): this is where symbolic shapes are checked, the first image being the first;
- on every image, in decode, before any score cut (`check_output_values`): labels 1..80, finite
  values, scores in [0, 1], boxes normalized, x2 >= x1 and y2 >= y1. O(N) with N <= ~200 (tens of
  microseconds against an inference of seconds), so no image is left unchecked;
- after the run (`detection_count_warning`): images with more detections than the card's 200 are a
  warning recorded in metrics.json and the summaries, not an error (a variant may keep more).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ssd_eval.config.run import OutputNames
from ssd_eval.errors import ModelError

CARD_MAX_DETECTIONS = 200  # NonMaxSuppression keeps the top 200 (MODEL_FACTS "Post-processing")
# Normalized boxes are not clipped and slightly outside [0, 1] occurs (onnx/models#470; the 1200 twin's
# boxes span [-0.85, 1.82] on the 50-image slice); a coordinate four image sizes beyond means pixels.
# Pixel boxes lying wholly within 5 px of the top-left corner cannot be told apart (never all of them).
NORMALIZED_RANGE = (-4.0, 5.0)
SCORE_SLACK = 1e-6  # float32 softmax can round a hair above 1

_FLOAT_TYPES = {"tensor(float)", "tensor(double)", "tensor(float16)", "tensor(bfloat16)"}
_INT_TYPES = {f"tensor({t}{b})" for t in ("int", "uint") for b in (8, 16, 32, 64)}


def _layout(names: OutputNames) -> dict[str, str]:
    return {
        names.boxes: "float [1, N, 4] (normalized x1, y1, x2, y2 per row)",
        names.labels: "integer [1, N] (labels 1..80)",
        names.scores: "float [1, N] (scores in [0, 1])",
    }


def check_output_signature(outputs: Sequence[Any], names: OutputNames, *, model: Path) -> None:
    """The declared outputs (onnxruntime NodeArgs: name, type, shape) against the contract."""
    by_name = {o.name: o for o in outputs}
    layout = _layout(names)
    for name, wanted_types, rank in (
        (names.boxes, _FLOAT_TYPES, 3),
        (names.labels, _INT_TYPES, 2),
        (names.scores, _FLOAT_TYPES, 2),
    ):
        arg = by_name[name]
        shape = list(arg.shape) if arg.shape is not None else None
        seen = f"{arg.type} {shape}"
        hint = ""
        if arg.type not in wanted_types:
            if name == names.labels and arg.type in _FLOAT_TYPES:
                hint = ": float labels would be truncated to a class; cast them to int64 in the model"
        elif shape is not None and len(shape) > 0:
            hint = _shape_problem(name, names, shape, rank)
            if not hint:
                continue
        else:
            continue  # unknown rank: checked on the first image's outputs
        raise ModelError(f"model {model} output {name!r} is {seen}; expected {layout[name]}{hint}")


def _shape_problem(name: str, names: OutputNames, shape: Sequence[Any], rank: int) -> str:
    """Why a (possibly symbolic) declared shape breaks the contract, or ''."""
    static = [d if isinstance(d, int) else None for d in shape]
    if len(static) != rank:
        return f" ({len(static)} {'axis' if len(static) == 1 else 'axes'}, not {rank})"
    if static[0] not in (1, None):
        return " (batch 1 first)"
    if name == names.boxes and static[2] != 4:
        if static[1] == 4:  # [1, 4, N] or [1, 4, 7]: the coordinates are on the middle axis
            return ": this is the [1, 4, N] layout; transpose it to [1, N, 4] in the model"
        if static[2] is not None:
            return " (4 box coordinates on the last axis)"
    return ""


def check_output_arrays(
    boxes: np.ndarray, labels: np.ndarray, scores: np.ndarray, names: OutputNames, *, model: Path
) -> None:
    """One image's raw outputs (batch axis included): shapes [1, N, 4], [1, N], [1, N] and dtypes."""
    layout = _layout(names)
    count = scores.shape[1] if scores.ndim == 2 else None
    for name, array, kind, shape_ok in (
        (names.boxes, boxes, np.floating, boxes.ndim == 3 and boxes.shape[0] == 1 and boxes.shape[2] == 4),
        (names.labels, labels, np.integer, labels.ndim == 2 and labels.shape[0] == 1),
        (names.scores, scores, np.floating, scores.ndim == 2 and scores.shape[0] == 1),
    ):
        if shape_ok and np.issubdtype(array.dtype, kind):
            continue
        hint = ""
        if name == names.boxes and boxes.ndim == 3 and boxes.shape[:2] == (1, 4):
            hint = ": this is the [1, 4, N] layout; transpose it to [1, N, 4] in the model"
        elif name == names.labels and np.issubdtype(array.dtype, np.floating):
            hint = ": float labels would be truncated to a class; cast them to int64 in the model"
        raise ModelError(
            f"model {model} output {name!r} is {array.dtype} {list(array.shape)}; "
            f"expected {layout[name]}{hint}"
        )
    if not (boxes.shape[1] == labels.shape[1] == count):
        raise ModelError(
            f"model {model} outputs {names.boxes!r} {list(boxes.shape)}, {names.labels!r} "
            f"{list(labels.shape)} and {names.scores!r} {list(scores.shape)} disagree on N, the "
            "number of detections; expected [1, N, 4], [1, N], [1, N]"
        )


def check_output_values(
    boxes: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray,
    *,
    image_id: int,
    num_labels: int,
    names: OutputNames | None = None,
) -> None:
    """One image's detections (batch axis removed: [N, 4], [N], [N]) before any score cut."""
    names = names or OutputNames()
    where = f"image {image_id}: the model's output"
    if not np.issubdtype(labels.dtype, np.integer):
        raise ModelError(
            f"{where} {names.labels!r} is {labels.dtype}; expected {_layout(names)[names.labels]}: "
            "float labels would be truncated to a class; cast them to int64 in the model"
        )
    bad = np.flatnonzero((labels < 1) | (labels > num_labels))
    if bad.size:
        # Also the message for labels 0..79 (not mapped) and COCO ids 1..90 emitted as labels.
        raise ModelError(
            f"image {image_id}: the model emitted label {int(labels[bad[0]])}, outside 1..{num_labels}; "
            "this is not the SSD label layout (0 is background and never emitted)"
        )
    if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
        raise ModelError(f"image {image_id}: the model emitted NaN or infinite boxes/scores")
    bad = np.flatnonzero((scores < 0) | (scores > 1 + SCORE_SLACK))
    if bad.size:
        raise ModelError(
            f"{where} {names.scores!r} holds {float(scores[bad[0]]):.6g} (detection {int(bad[0])}; "
            f"{bad.size} of {scores.size} outside [0, 1]); expected scores in [0, 1] (softmax "
            "probabilities, not logits)"
        )
    low, high = NORMALIZED_RANGE
    bad = np.flatnonzero(((boxes < low) | (boxes > high)).any(axis=1))
    if bad.size:
        raise ModelError(
            f"{where} {names.boxes!r} holds {_row(boxes[bad[0]])} (detection {int(bad[0])}; "
            f"{bad.size} of {len(boxes)} beyond [{low:g}, {high:g}]); expected x1, y1, x2, y2 "
            "normalized to [0, 1]: these look like pixels"
        )
    bad = np.flatnonzero((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]))
    if bad.size:
        raise ModelError(
            f"{where} {names.boxes!r} holds {_row(boxes[bad[0]])} (detection {int(bad[0])}; "
            f"{bad.size} of {len(boxes)} with x2 < x1 or y2 < y1); expected corners x1, y1, x2, y2 "
            "(not x, y, w, h)"
        )


def _row(values: np.ndarray) -> str:
    return "[" + ", ".join(f"{float(v):.4g}" for v in values) + "]"


def detection_count_warning(counts: Mapping[int, int]) -> str | None:
    """A warning when images got more detections than the card's 200 (`counts`: image id -> N)."""
    over = {image_id: n for image_id, n in counts.items() if n > CARD_MAX_DETECTIONS}
    if not over:
        return None
    worst = max(over, key=lambda i: (over[i], -i))
    return (
        f"{len(over)} image(s) got more than the model card's {CARD_MAX_DETECTIONS} detections "
        f"(most: {over[worst]} on image {worst}); the model keeps more than ssd-10 does, so its AP "
        "is not comparable with the card's"
    )
