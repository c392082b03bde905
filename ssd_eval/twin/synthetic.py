"""A self-checking COCO data set: the twin's own detections above a score cut are the ground truth.

Evaluating the same twin on it must give AP 1.0 (to pycocotools' eps), which proves decoding,
rescaling and label mapping on the real architecture. Why it holds:

- every image is written first and the twin then sees the *decoded* file (`load_rgb` +
  `preprocess`, as the evaluator), so JPEG losses and mode conversions cannot change its output;
- the ground truth is every detection scoring above one global cut, so in COCOeval's ranking (per
  category, across all images) every ground-truth detection outranks every other detection of
  that category; the others are false positives that come after recall has reached 1;
- a detection matches its own box at IoU ~1 (>= 0.95), and never another ground-truth box of its
  category in its image: the graph's NMS leaves same-class boxes at IoU <= 0.5;
- the cut sits in the middle of the widest score gap near the requested value, so noise in the
  last float digits cannot reorder ground truth and the rest;
- at most 100 ground-truth boxes per image and category (COCOeval's maxDets).

The box and label conversion here is written independently of `ssd_eval.pipeline.decode` and
`ssd_eval.data.categories` (its own category table, derived from COCO's id gaps), so a mistake there
cannot cancel out.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import math
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ssd_eval.config.run import IMAGENET_MEAN, IMAGENET_STD, OutputNames, ProviderConfig, SessionConfig
from ssd_eval.data.dataset import load_rgb
from ssd_eval.errors import ConfigError, DatasetError
from ssd_eval.pipeline.preprocess import Normalization, preprocess
from ssd_eval.pipeline.session import ProviderSession

log = logging.getLogger(__name__)

GENERATOR_VERSION = 1
ANNOTATIONS = Path("annotations") / "instances_val2017.json"
IMAGES = "val2017"
MARKER = "synthetic.json"
MAX_DETS = 100  # COCOeval's largest maxDets: more boxes per image and category would not be scored
CUT_WINDOW = 0.1  # a requested cut moves to the middle of the widest score gap within +-CUT_WINDOW

# COCO 2017 detection categories, written out here rather than imported: ids 1..90 minus the ten
# unused ones, names in id order. Label k of the model is the k-th of these.
_UNUSED_IDS = frozenset({12, 26, 29, 30, 45, 66, 68, 69, 71, 83})
_CATEGORY_IDS = tuple(i for i in range(1, 91) if i not in _UNUSED_IDS)
_CATEGORY_NAMES = (
    "person",
    "bicycle",
    "car",
    "motorcycle",
    "airplane",
    "bus",
    "train",
    "truck",
    "boat",
    "traffic light",
    "fire hydrant",
    "stop sign",
    "parking meter",
    "bench",
    "bird",
    "cat",
    "dog",
    "horse",
    "sheep",
    "cow",
    "elephant",
    "bear",
    "zebra",
    "giraffe",
    "backpack",
    "umbrella",
    "handbag",
    "tie",
    "suitcase",
    "frisbee",
    "skis",
    "snowboard",
    "sports ball",
    "kite",
    "baseball bat",
    "baseball glove",
    "skateboard",
    "surfboard",
    "tennis racket",
    "bottle",
    "wine glass",
    "cup",
    "fork",
    "knife",
    "spoon",
    "bowl",
    "banana",
    "apple",
    "sandwich",
    "orange",
    "broccoli",
    "carrot",
    "hot dog",
    "pizza",
    "donut",
    "cake",
    "chair",
    "couch",
    "potted plant",
    "bed",
    "dining table",
    "toilet",
    "tv",
    "laptop",
    "mouse",
    "remote",
    "keyboard",
    "cell phone",
    "microwave",
    "oven",
    "toaster",
    "sink",
    "refrigerator",
    "book",
    "clock",
    "vase",
    "scissors",
    "teddy bear",
    "hair drier",
    "toothbrush",
)
_SUPERCATEGORY = "synthetic"

# (Pillow mode, file format) of image i is _FORMATS[i % len(_FORMATS)]; the first five cover every
# mode and both formats.
_FORMATS: tuple[tuple[str, str], ...] = (
    ("RGB", "JPEG"),
    ("L", "PNG"),
    ("P", "PNG"),
    ("CMYK", "JPEG"),
    ("RGBA", "PNG"),
    ("RGB", "PNG"),
    ("L", "JPEG"),
)
_EXTENSIONS = {"JPEG": "jpg", "PNG": "png"}


@dataclass(frozen=True)
class TwinDetection:
    """One raw detection as the model emitted it."""

    box: tuple[float, float, float, float]  # normalized x1, y1, x2, y2
    label: int  # 1..80
    score: float


def category_id_of_label(label: int) -> int:
    """The model's label 1..80 -> COCO category id (1..90 with gaps)."""
    if not 1 <= label <= len(_CATEGORY_IDS):
        raise ValueError(f"label {label} outside 1..{len(_CATEGORY_IDS)}")
    return _CATEGORY_IDS[label - 1]


def pixel_box(box: Sequence[float], width: int, height: int) -> list[float]:
    """Normalized x1, y1, x2, y2 -> COCO pixel x, y, w, h on a `width` x `height` image (not clipped)."""
    x1, y1, x2, y2 = (float(v) for v in box)
    left, top, right, bottom = x1 * width, y1 * height, x2 * width, y2 * height
    return [left, top, right - left, bottom - top]


def categories_json() -> list[dict[str, Any]]:
    return [
        {"id": cid, "name": name, "supercategory": _SUPERCATEGORY}
        for cid, name in zip(_CATEGORY_IDS, _CATEGORY_NAMES, strict=True)
    ]


def synthetic_pixels(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A seeded scene, uint8 RGB `[H, W, 3]`: gradient sky, soft blotches, textured patches, shapes, noise."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    angle = rng.uniform(0, 2 * math.pi)
    ramp = (xx * math.cos(angle) + yy * math.sin(angle)) / max(width, height)
    ramp = (ramp - ramp.min()) / max(float(np.ptp(ramp)), 1e-9)
    top, bottom = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    pixels = top + ramp[:, :, None] * (bottom - top)
    # Low-frequency blotches: a coarse random grid resized up (clouds, foliage, shadows).
    coarse = rng.normal(0, 40, (int(rng.integers(3, 8)), int(rng.integers(3, 8)), 3))
    coarse_img = Image.fromarray(np.clip(coarse + 128, 0, 255).astype(np.uint8))
    pixels += np.asarray(coarse_img.resize((width, height), Image.Resampling.BICUBIC), np.float64) - 128
    # Textured patches: sine or square-wave stripes of random period and orientation.
    for _ in range(int(rng.integers(1, 4))):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        pw, ph = (
            int(rng.integers(width // 8 + 1, width // 2 + 2)),
            int(rng.integers(height // 8 + 1, height // 2 + 2)),
        )
        period, theta = rng.uniform(4, 24), rng.uniform(0, math.pi)
        phase = (xx * math.cos(theta) + yy * math.sin(theta)) * (2 * math.pi / period)
        wave = np.sign(np.sin(phase)) if rng.random() < 0.5 else np.sin(phase)
        mask = (xx >= x0) & (xx < x0 + pw) & (yy >= y0) & (yy < y0 + ph)
        pixels += (mask * wave)[:, :, None] * rng.uniform(20, 60, 3)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    # Shapes: the objects of the scene.
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 12))):
        cx, cy = rng.uniform(-0.1, 1.1) * width, rng.uniform(-0.1, 1.1) * height
        rx, ry = rng.uniform(0.03, 0.3) * width, rng.uniform(0.03, 0.3) * height
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        outline = tuple(int(v) for v in rng.integers(0, 256, 3))
        kind = int(rng.integers(0, 3))
        if kind == 0:
            draw.ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=fill, outline=outline, width=2)
        elif kind == 1:
            draw.rectangle((cx - rx, cy - ry, cx + rx, cy + ry), fill=fill, outline=outline, width=3)
        else:
            corners = int(rng.integers(3, 8))
            angles = np.sort(rng.uniform(0, 2 * math.pi, corners))
            radius = rng.uniform(0.5, 1.0, corners)
            points = [
                (cx + rx * r * math.cos(a), cy + ry * r * math.sin(a))
                for a, r in zip(angles, radius, strict=True)
            ]
            draw.polygon(points, fill=fill, outline=outline)
    noisy = np.asarray(image, np.float64) + rng.normal(0, rng.uniform(2, 12), (height, width, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


def _encode(pixels: np.ndarray, mode: str) -> Image.Image:
    rgb = Image.fromarray(pixels, "RGB")
    if mode == "P":
        return rgb.quantize(colors=64, method=Image.Quantize.MEDIANCUT)
    if mode == "RGBA":
        alpha = np.linspace(255, 64, pixels.shape[1], dtype=np.float64)[None, :].repeat(pixels.shape[0], 0)
        rgba = rgb.convert("RGBA")
        rgba.putalpha(Image.fromarray(alpha.astype(np.uint8), "L"))
        return rgba
    return rgb if mode == "RGB" else rgb.convert(mode)


def _image_sizes(rng: np.random.Generator, count: int) -> list[tuple[int, int]]:
    """Varied sizes and aspect ratios: landscape, portrait, square, long strips, small."""
    sizes = []
    for i in range(count):
        if i % 5 == 4:
            sizes.append((int(rng.integers(60, 160)), int(rng.integers(60, 160))))
        else:
            sizes.append((int(rng.integers(180, 800)), int(rng.integers(180, 800))))
    return sizes


def _infer_all(model_path: Path, files: Sequence[Path]) -> list[tuple[tuple[int, int], list[TwinDetection]]]:
    """The twin's raw detections for each file, decoded and preprocessed as the evaluator does."""
    norm = Normalization.from_mean_std(IMAGENET_MEAN, IMAGENET_STD)
    results = []
    # The evaluator's default session: same provider, options and optimization level.
    with ProviderSession(
        model_path, (ProviderConfig(),), SessionConfig(), input_name="image", outputs=OutputNames()
    ) as session:
        signature = session.signature
        if signature is None or signature.input_height is None or signature.input_width is None:
            raise DatasetError(f"model {model_path} has no fixed input size: it cannot label a synthetic set")
        size = (signature.input_height, signature.input_width)
        for path in files:
            pixels = load_rgb(path)
            raw, _ = session.infer(preprocess(pixels, size, norm))
            dets = [
                TwinDetection(box=(b[0], b[1], b[2], b[3]), label=int(lab), score=float(s))
                for b, lab, s in zip(
                    raw.boxes.tolist(), raw.labels.tolist(), raw.scores.tolist(), strict=True
                )
            ]
            results.append(((pixels.shape[1], pixels.shape[0]), dets))
            log.debug("synthetic: %s -> %d detections", path.name, len(dets))
    return results


def choose_cut(scores: Sequence[float], requested: float | None = None) -> tuple[float, float]:
    """A score cut in the middle of the widest gap between scores, and its margin: (cut, margin).

    The gap is searched within `requested` +- CUT_WINDOW, or (None) between the 1/3 and 2/3
    quantiles of the scores, which keeps about half the detections. Cutting inside a wide gap keeps
    every kept score well above every other one, so noise in the last float digits cannot reorder them.
    """
    if not scores:
        return (0.5 if requested is None else requested), 0.5
    if requested is None:
        low, high = (float(q) for q in np.quantile(np.asarray(scores, np.float64), [1 / 3, 2 / 3]))
    else:
        low, high = max(requested - CUT_WINDOW, 0.0), min(requested + CUT_WINDOW, 1.0)
    values = sorted({0.0, 1.0, *scores})
    best: tuple[float, float] | None = None
    for below, above in itertools.pairwise(values):
        start, end = max(below, low), min(above, high)
        if start < end:
            cut = (start + end) / 2
            margin = min(cut - below, above - cut)
            if best is None or margin > best[1]:
                best = (cut, margin)
    if best is None:  # every score in the window is the same value
        raise DatasetError(f"cannot place a score cut between {low} and {high}: all scores there are equal")
    return best


def generate_synthetic_dataset(
    root: Path,
    *,
    model_path: Path,
    num_images: int = 12,
    seed: int = 0,
    score_cut: float | None = None,
) -> Path:
    """Write a COCO data set under `root` whose ground truth is `model_path`'s detections above a cut.

    `score_cut` None places the cut in the widest score gap of the middle third of all detections
    (about half become ground truth, the rest false positives); a number places it in the widest
    gap within +-CUT_WINDOW of that number. Returns `root` (holding
    `annotations/instances_val2017.json` and `val2017/`).
    """
    if num_images < 1:
        raise ValueError(f"num_images must be >= 1, got {num_images}")
    if score_cut is not None and not 0.0 < score_cut < 1.0:
        raise ValueError(f"score_cut must be in (0, 1) or None, got {score_cut}")
    rng = np.random.default_rng(seed)
    image_dir = root / IMAGES
    image_dir.mkdir(parents=True, exist_ok=True)
    (root / ANNOTATIONS).parent.mkdir(parents=True, exist_ok=True)
    # Non-contiguous, unordered ids, as COCO's are.
    ids = [int(i) for i in rng.choice(np.arange(1, 1_000_000), size=num_images, replace=False)]
    records: list[dict[str, Any]] = []
    files = []
    for index, ((width, height), image_id) in enumerate(zip(_image_sizes(rng, num_images), ids, strict=True)):
        mode, fmt = _FORMATS[index % len(_FORMATS)]
        name = f"{image_id:012d}.{_EXTENSIONS[fmt]}"
        image = _encode(synthetic_pixels(rng, width, height), mode)
        options = {"quality": int(rng.integers(70, 96))} if fmt == "JPEG" else {}
        image.save(image_dir / name, format=fmt, **options)
        files.append(image_dir / name)
        records.append({"id": image_id, "file_name": name, "width": width, "height": height, "license": 1})
    outputs = _infer_all(model_path, files)
    cut, margin = choose_cut([d.score for _, dets in outputs for d in dets], score_cut)
    annotations: list[dict[str, Any]] = []
    for record, ((width, height), dets) in zip(records, outputs, strict=True):
        if (width, height) != (record["width"], record["height"]):
            raise DatasetError(f"synthetic image {record['file_name']} decoded as {width}x{height}")
        kept = sorted((d for d in dets if d.score > cut), key=lambda d: -d.score)
        per_category: dict[int, int] = {}
        for det in kept:
            category_id = category_id_of_label(det.label)
            per_category[category_id] = per_category.get(category_id, 0) + 1
            if per_category[category_id] > MAX_DETS:
                continue  # beyond maxDets COCOeval ignores the detection: it must not be ground truth
            x, y, w, h = pixel_box(det.box, width, height)
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": record["id"],
                    "category_id": category_id,
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": 0,
                    "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
                }
            )
    if not annotations:
        raise DatasetError(
            f"model {model_path} emitted no detection above score {cut:.4f} on {num_images} synthetic "
            "images: lower score_cut or use more images"
        )
    data = {
        "info": {
            "description": "ssd_eval synthetic self-check set: ground truth = the model's own detections",
            "version": str(GENERATOR_VERSION),
            "contributor": "ssd_eval.synthetic",
            "url": "",
            "model": model_path.name,
            "seed": seed,
            "score_cut": cut,
            "score_margin": margin,
        },
        "licenses": [
            {
                "id": 1,
                "name": "CC0 1.0 (generated)",
                "url": "https://creativecommons.org/publicdomain/zero/1.0/",
            }
        ],
        "images": records,
        "annotations": annotations,
        "categories": categories_json(),
    }
    (root / ANNOTATIONS).write_text(json.dumps(data), encoding="utf-8")
    log.info(
        "synthetic data set: %d images, %d ground-truth boxes in %d categories "
        "(score cut %.6f, margin %.2g) in %s",
        len(records),
        len(annotations),
        len({a["category_id"] for a in annotations}),
        cut,
        margin,
        root,
    )
    return root


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


_CACHE_HINT = "set assets.cache in the config (or SSD_EVAL_HOME) to a writable folder"


def ensure_synthetic_dataset(source: str, *, cache: Path) -> Path:
    """The cached data set named `synthetic-<size>` for the twin of that size, built on first use.

    Built into a temporary folder and renamed into place, so an interrupted build leaves nothing
    half-written; rebuilt when the twin file or this generator changes.
    """
    match = re.fullmatch(r"synthetic-(\d+)", source)
    if match is None:
        raise ConfigError(
            f"dataset.source {source!r}: a synthetic data set is named synthetic-<twin image size>, "
            "e.g. synthetic-600"
        )
    from ssd_eval.twin.model import ensure_twin

    model_path = ensure_twin(int(match[1]), 0, cache / "twins")
    marker = {"generator_version": GENERATOR_VERSION, "model": model_path.name, "sha256": _sha256(model_path)}
    root = cache / "synthetic" / source
    if _read_marker(root) == marker and (root / ANNOTATIONS).is_file():
        return root
    log.info("generating the synthetic data set %s for %s into %s", source, model_path.name, root)
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{source}.", dir=root.parent))
    except OSError as exc:
        raise DatasetError(f"cannot write the synthetic data set to {root}: {exc}; {_CACHE_HINT}") from None
    try:
        generate_synthetic_dataset(tmp, model_path=model_path)
        (tmp / MARKER).write_text(json.dumps(marker), encoding="utf-8")
        if _read_marker(root) == marker:  # another process finished the same build meanwhile
            return root
        if root.exists():  # stale: the twin or the generator changed
            stale = Path(tempfile.mkdtemp(prefix=f".{source}.stale.", dir=root.parent))
            os.replace(root, stale / "old")
            shutil.rmtree(stale, ignore_errors=True)
        os.replace(tmp, root)
    except OSError as exc:
        if _read_marker(root) == marker:  # another process finished the same build first
            return root
        raise DatasetError(f"cannot write the synthetic data set to {root}: {exc}; {_CACHE_HINT}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def _read_marker(root: Path) -> object:
    try:
        return json.loads((root / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
