"""Test helpers: tiny COCO data sets and tiny ONNX detectors built with onnx.helper.

The "table detector" knows the answer for every image: it reduces its input tensor to a key (the
mean of the normalized tensor), finds the nearest key in a table and emits that image's row of
detections. Fed the ground truth it is a perfect detector; fed a perturbed table it is a detector
with known mistakes. Keys are computed with the package's own loader and preprocessing, so the
model sees exactly what the pipeline feeds it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import yaml
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from ssd_eval.data.categories import COCO_CATEGORIES
from ssd_eval.data.dataset import load_rgb
from ssd_eval.evaluation.identity import GroundTruthIdentity, ImageSelection, RunIdentity
from ssd_eval.pipeline.preprocess import Normalization, preprocess

SHARED_SLICE = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco_val2017_first50"
LABEL_OF_CATEGORY = {cid: label for label, (cid, _) in enumerate(COCO_CATEGORIES, start=1)}


@dataclass(frozen=True)
class Det:
    """One detection in COCO pixel terms, as a test writes it down."""

    x: float
    y: float
    w: float
    h: float
    category_id: int
    score: float = 0.9


def coco_categories(order: Sequence[int] | None = None) -> list[dict]:
    cats = [{"id": cid, "name": name, "supercategory": "x"} for cid, name in COCO_CATEGORIES]
    return [cats[i] for i in order] if order is not None else cats


def write_image(path: Path, width: int, height: int, value: int, mode: str = "RGB") -> None:
    """A uniform image: it survives any resize unchanged, so its key is robust."""
    rgb = Image.new("RGB", (width, height), (value, (value * 3) % 256, (value * 7) % 256))
    if mode == "RGB":
        image = rgb
    elif mode == "L":
        image = Image.new("L", (width, height), value)
    elif mode == "P":
        image = rgb.convert("P")
    elif mode == "RGBA":
        image = rgb.convert("RGBA")
    elif mode == "CMYK":
        image = rgb.convert("CMYK")
    elif mode == "I;16":
        image = Image.fromarray(np.full((height, width), value * 257, dtype=np.uint16))
    else:
        raise ValueError(mode)
    image.save(path)


@dataclass(frozen=True)
class TinyImage:
    image_id: int
    width: int
    height: int
    mode: str = "RGB"
    ext: str = "png"


def make_coco(
    root: Path,
    images: Sequence[TinyImage],
    gt: dict[int, Sequence[Det]],
    *,
    category_order: Sequence[int] | None = None,
    crowd: dict[int, Sequence[Det]] | None = None,
) -> Path:
    """Write `root/annotations/instances_val2017.json` and `root/val2017/*` for the given images."""
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "val2017").mkdir(parents=True, exist_ok=True)
    records, anns = [], []
    for index, img in enumerate(images):
        name = f"{img.image_id:012d}.{img.ext}"
        write_image(root / "val2017" / name, img.width, img.height, value=30 + 11 * index, mode=img.mode)
        records.append({"id": img.image_id, "file_name": name, "width": img.width, "height": img.height})
        for crowd_flag, table in ((0, gt), (1, crowd or {})):
            for d in table.get(img.image_id, ()):
                anns.append(
                    {
                        "id": len(anns) + 1,
                        "image_id": img.image_id,
                        "category_id": d.category_id,
                        "bbox": [d.x, d.y, d.w, d.h],
                        "area": d.w * d.h,
                        "iscrowd": crowd_flag,
                        "segmentation": [[d.x, d.y, d.x + d.w, d.y, d.x + d.w, d.y + d.h]],
                    }
                )
    data = {"images": records, "annotations": anns, "categories": coco_categories(category_order)}
    path = root / "annotations" / "instances_val2017.json"
    path.write_text(json.dumps(data))
    return root


def _hw(size: int | tuple[int, int]) -> tuple[int, int]:
    """A model input size as (height, width); an int means a square."""
    return (size, size) if isinstance(size, int) else size


def image_key(path: Path, size: int | tuple[int, int]) -> float:
    """The key the table detector computes in-graph: the mean of the preprocessed tensor."""
    norm = Normalization.from_mean_std((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))  # the card's
    return float(preprocess(load_rgb(path), _hw(size), norm).astype(np.float64).mean())


def table_detector(
    keys: Sequence[float],
    detections: Sequence[Sequence[Det]],
    sizes: Sequence[tuple[int, int]],
    *,
    input_size: int | tuple[int, int] = 32,
    label_offset: int = 0,
    max_dets: int | None = None,
    names: tuple[str, str, str, str] = ("image", "bboxes", "labels", "scores"),
) -> onnx.ModelProto:
    """An opset-10 model emitting `detections[i]` (normalized boxes) for the image whose key is `keys[i]`."""
    count = max_dets or max(1, max((len(d) for d in detections), default=1))
    n = len(keys)
    boxes = np.zeros((n, count, 4), np.float32)
    labels = np.ones((n, count), np.int64)
    scores = np.zeros((n, count), np.float32)
    counts = np.zeros((n,), np.int64)
    for i, (dets, (width, height)) in enumerate(zip(detections, sizes, strict=True)):
        counts[i] = len(dets)
        for j, d in enumerate(dets):
            boxes[i, j] = [d.x / width, d.y / height, (d.x + d.w) / width, (d.y + d.h) / height]
            labels[i, j] = LABEL_OF_CATEGORY[d.category_id] + label_offset
            scores[i, j] = d.score
    image_name, boxes_name, labels_name, scores_name = names
    inits = [
        numpy_helper.from_array(np.asarray(keys, np.float32), "keys"),
        numpy_helper.from_array(boxes, "table_boxes"),
        numpy_helper.from_array(labels, "table_labels"),
        numpy_helper.from_array(scores, "table_scores"),
        numpy_helper.from_array(counts, "table_counts"),
        numpy_helper.from_array(np.array([0], np.int64), "zero"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
    ]
    nodes = [
        helper.make_node("ReduceMean", [image_name], ["key4"], axes=[1, 2, 3], keepdims=0),
        helper.make_node("Sub", ["keys", "key4"], ["diff"]),
        helper.make_node("Abs", ["diff"], ["dist"]),
        helper.make_node("ArgMin", ["dist"], ["idx"], axis=0, keepdims=1),
        helper.make_node("Gather", ["table_counts", "idx"], ["n_dets"], axis=0),
        helper.make_node("Gather", ["table_boxes", "idx"], ["all_boxes"], axis=0),
        helper.make_node("Gather", ["table_labels", "idx"], ["all_labels"], axis=0),
        helper.make_node("Gather", ["table_scores", "idx"], ["all_scores"], axis=0),
        helper.make_node("Slice", ["all_boxes", "zero", "n_dets", "axis1"], [boxes_name]),
        helper.make_node("Slice", ["all_labels", "zero", "n_dets", "axis1"], [labels_name]),
        helper.make_node("Slice", ["all_scores", "zero", "n_dets", "axis1"], [scores_name]),
    ]
    graph = helper.make_graph(
        nodes,
        "table_detector",
        [helper.make_tensor_value_info(image_name, TensorProto.FLOAT, [1, 3, *_hw(input_size)])],
        [
            helper.make_tensor_value_info(boxes_name, TensorProto.FLOAT, [1, "n", 4]),
            helper.make_tensor_value_info(labels_name, TensorProto.INT64, [1, "n"]),
            helper.make_tensor_value_info(scores_name, TensorProto.FLOAT, [1, "n"]),
        ],
        initializer=inits,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 10)], producer_name="ssd_eval-tests"
    )
    model.ir_version = 5
    onnx.checker.check_model(model)
    return model


def save_table_detector(
    path: Path,
    root: Path,
    detections_by_image: dict[int, Sequence[Det]],
    *,
    input_size: int | tuple[int, int] = 32,
    **kwargs: object,
) -> Path:
    """Key every image of a COCO folder and save a table detector emitting the given detections."""
    data = json.loads((root / "annotations" / "instances_val2017.json").read_text())
    images = data["images"]
    keys = [image_key(root / "val2017" / im["file_name"], input_size) for im in images]
    ordered = np.sort(np.asarray(keys))
    if len(ordered) > 1 and np.min(np.diff(ordered)) < 1e-5:
        raise AssertionError("two images share a key; the table detector cannot tell them apart")
    dets = [detections_by_image.get(im["id"], ()) for im in images]
    sizes = [(im["width"], im["height"]) for im in images]
    onnx.save(table_detector(keys, dets, sizes, input_size=input_size, **kwargs), path)  # type: ignore[arg-type]
    return path


def ground_truth_dets(root: Path) -> dict[int, list[Det]]:
    """The non-crowd annotations of a COCO folder as detections (a perfect detector's output)."""
    data = json.loads((root / "annotations" / "instances_val2017.json").read_text())
    out: dict[int, list[Det]] = {}
    for ann in data["annotations"]:
        if not ann.get("iscrowd", 0):
            x, y, w, h = ann["bbox"]
            out.setdefault(ann["image_id"], []).append(Det(x, y, w, h, ann["category_id"], 0.9))
    return out


def write_config(path: Path, model: Path, root: Path, **sections: dict) -> Path:
    """A config for a test run; `sections` replace whole top-level sections."""
    import yaml

    config = {
        "model": {"path": str(model)},
        "dataset": {"root": str(root)},
        "output": {"dir": str(path.parent / "results")},
    }
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value} if isinstance(value, dict) else value
    path.write_text(yaml.safe_dump(config))
    return path


def ids_sha256(ids: Sequence[int]) -> str:
    """The digest of a set of image ids, by the rule the identity documents: ascending, comma-separated."""
    return hashlib.sha256(",".join(str(i) for i in sorted(ids)).encode()).hexdigest()


def make_identity(
    whole: Sequence[int], shard: str | None = None, *, limit: int | None = None, **changes: object
) -> RunIdentity:
    """A run identity written out by hand: shard `K/N` of the `whole` selection (round robin, as
    select_images cuts it), or the whole; other facts as `changes` (RunIdentity's field names)."""
    part = tuple(whole)
    if shard is not None:
        index, count = (int(v) for v in shard.split("/"))
        part = part[index - 1 :: count]
    images = ImageSelection(
        selection="annotated",
        limit=limit,
        id_list_sha256=None,
        whole_count=len(whole),
        whole_digest=ids_sha256(whole),
        shard=shard,
        count=len(part),
        digest=ids_sha256(part),
        image_ids=part,
    )
    base = RunIdentity(
        model_sha256="a" * 64,
        model_name="ssd.onnx",
        provider="CUDAExecutionProvider",
        ground_truth=GroundTruthIdentity("c" * 64, "d" * 64, len(whole), len(whole)),
        images=images,
        preprocess="pillow",
        input_size=(1200, 1200),
        mean=(0.485, 0.456, 0.406),
        std=(0.229, 0.224, 0.225),
        score_threshold=0.0,
        clip_boxes=False,
        scorer="pycocotools",
        rules={"expected.value": 0.195},
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def write_compare_config(
    folder: Path, root: Path, model: Path | None, runs: list[dict], **sections: object
) -> Path:
    """`folder/compare.yaml`: a CPU reference named ref and `runs` over the COCO root, on the model file
    (None: the 600 twin), without pictures; `sections` replace or add top-level keys."""
    data = {
        "model": {"path": str(model)} if model is not None else {"source": "twin-600"},
        "reference": {"name": "ref", "provider": {"name": "cpu"}},
        "runs": runs,
        "dataset": {"root": str(root)},
        "output": {"dir": str(folder / "results")},
        "pictures": {"pr_curves": False, "disagreements": 0},
        **sections,
    }
    path = folder / "compare.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def write_run_folder(
    folder: Path,
    root: Path,
    detections: dict[int, Sequence[Det]],
    *,
    shard: str | None = None,
    skipped: dict[int, str] | None = None,
    history: Sequence[tuple[str, int, float]] = (("run", 0, 0.0),),
    identity: bool = True,
    **sections: object,
) -> Path:
    """A run folder written as `ssd-eval run` writes it, without a model: config.yaml, run_info.json,
    identity.json (unless `identity` is False: a folder of an older ssd_eval), the detection log of
    `detections` (an image it lacks: none found), skipped.jsonl of `skipped` (image id -> reason: not
    logged) and history.jsonl, one entry per
    (verb, images inferred, wall seconds) of `history`. `sections` replace the config's sections."""
    from ssd_eval.config.run import config_from_dict
    from ssd_eval.data.dataset import open_ground_truth
    from ssd_eval.engine.run_folder import (
        RunInfo,
        append_history,
        append_skipped,
        derived_identity,
        parse_shard,
        prepare_run_folder,
        write_identity,
        write_run_info,
    )
    from ssd_eval.evaluation.detection_log import DetectionLog
    from ssd_eval.pipeline.decode import Detections
    from ssd_eval.reports.results import ModelInfo, Provenance, SkippedImage, StageTiming

    raw = {
        "model": {"path": "model.onnx"},
        "dataset": {"root": str(root)},
        "output": {"dir": str(folder.parent), "run_name": folder.name},
        **sections,
    }
    config = config_from_dict(raw, base_dir=folder.parent)
    dataset = config.dataset
    gt = open_ground_truth(
        root / dataset.annotations,
        root / dataset.images,
        selection=dataset.selection,
        limit=dataset.limit,
        shard=parse_shard(shard) if shard else None,
        id_list=dataset.image_ids,
    )
    info = RunInfo(
        model=ModelInfo(path=str(folder.parent / "model.onnx"), sha256="a" * 64, size_bytes=100, source=None),
        input_size=(32, 32),
        shard=shard,
        providers_requested=("CPUExecutionProvider",),
        providers_used=("CPUExecutionProvider",),
        provider_options=({},),
    )
    prepare_run_folder(folder, config, resume=False)
    write_run_info(folder, info)
    if identity:
        write_identity(folder, derived_identity(folder, config, info, gt, legacy=False))
    with DetectionLog(folder / "detections.jsonl") as log:
        for image_id in gt.image_ids:
            if image_id not in (skipped or {}):
                dets = detections.get(image_id, ())
                log.append(
                    Detections(
                        image_id,
                        np.asarray([[d.x, d.y, d.w, d.h] for d in dets], dtype=np.float64).reshape(-1, 4),
                        np.asarray([d.score for d in dets], dtype=np.float64),
                        np.asarray([d.category_id for d in dets], dtype=np.int64),
                    )
                )
    for image_id, reason in sorted((skipped or {}).items()):
        append_skipped(folder / "skipped.jsonl", SkippedImage(image_id, f"{image_id:012d}.png", reason))
    for verb, inferred, wall_s in history:
        timing = StageTiming(wall_s / 2, 1.0, 1.0, 1.0, inferred)
        entry = Provenance(
            started="2026-01-01T00:00:00Z",
            finished="2026-01-01T00:01:00Z",
            command=("ssd-eval", verb),
            ssd_eval_version="test",
            git_commit=None,
            verb=verb,
            images_inferred=inferred,
            wall_s=wall_s,
            timings={"infer": timing} if inferred else {},
            folder=folder.name,
        )
        append_history(folder, entry)
    return folder
