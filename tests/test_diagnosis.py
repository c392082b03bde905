"""Diagnosis: each known protocol mistake is made on built data, scored for real, and named.

The built data: 160 images of val2017's sizes with ~7 boxes each over the 80 categories, and a
"model" that emits what ssd-10 emits (normalized x1, y1, x2, y2, labels 1..80, scores >= 0.05): a
jittered box for 80% of the objects (jitter worse on small ones, as a real detector's) and 15 false
positives per image. Its correct run, decoded by `decode` and scored by `score` under the published
protocol, is the reference; each mistake is then made in the same place the real one is made (the
label map, the annotation file, the post-processing, the image selection, the decode settings).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from conftest import TINY_GT
from helpers import Det, save_table_detector, write_config
from onnx import TensorProto, helper, numpy_helper
from PIL import Image, ImageDraw

from ssd_eval.cli import main
from ssd_eval.coco_stats import STAT_NAMES
from ssd_eval.data.categories import COCO_CATEGORIES, LabelMap, canonical_label_map, coco_categories_json
from ssd_eval.evaluation.scoring import score
from ssd_eval.pipeline.decode import Detections, decode
from ssd_eval.pipeline.session import RawOutputs
from ssd_eval.reports.baseline import baseline_from_metrics, write_baseline
from ssd_eval.reports.diagnosis import Diagnosis, ProtocolFacts, Reference, diagnose

# The published run behind the card's 0.195 (MODEL_FACTS.md, "Published accuracy").
PUBLISHED = dict(
    zip(
        STAT_NAMES,
        (0.196, 0.375, 0.180, 0.115, 0.256, 0.228, 0.196, 0.318, 0.341, 0.171, 0.405, 0.411),
        strict=True,
    )
)
PUBLISHED_PROTOCOL = ProtocolFacts(
    selection="annotated",
    num_images=4952,
    input_size=(1200, 1200),
    preprocess="pillow",
    clip_boxes=False,
    score_threshold=0.0,
)
PUBLISHED_REFERENCE = Reference("ssd-10-published", PUBLISHED, PUBLISHED_PROTOCOL)

ANNOTATED = 160
EMPTY = 12


@dataclass(frozen=True)
class Built:
    """Ground truth for annotated + empty images and the model's raw outputs on each."""

    coco: dict[str, Any]
    outputs: dict[int, RawOutputs]

    @property
    def annotated_ids(self) -> list[int]:
        with_gt = {a["image_id"] for a in self.coco["annotations"]}
        return [im["id"] for im in self.coco["images"] if im["id"] in with_gt]

    @property
    def all_ids(self) -> list[int]:
        return [im["id"] for im in self.coco["images"]]


def _build(seed: int = 0) -> Built:
    rng = np.random.default_rng(seed)
    cat_ids = [cid for cid, _ in COCO_CATEGORIES]
    label_of = {cid: label for label, cid in enumerate(cat_ids, start=1)}
    images, anns, outputs = [], [], {}
    for k in range(ANNOTATED + EMPTY):
        image_id = 1000 + k
        w, h = (640, 480) if k % 2 else (480, 640)
        images.append({"id": image_id, "file_name": f"{image_id:012d}.jpg", "width": w, "height": h})
        n = 0 if k >= ANNOTATED else 1 + int(rng.poisson(6))
        side = np.exp(rng.normal(np.log(60), 1.0, n)).clip(4, 400)
        aspect = np.exp(rng.normal(0.0, 0.4, n))
        bw = np.minimum(side * np.sqrt(aspect), w - 1)
        bh = np.minimum(side / np.sqrt(aspect), h - 1)
        gt = np.stack([rng.random(n) * (w - bw), rng.random(n) * (h - bh), bw, bh], axis=1)
        cats = rng.choice(cat_ids, n)
        for box, cat in zip(gt, cats, strict=True):
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": int(cat),
                    "bbox": [float(v) for v in box],
                    "area": float(box[2] * box[3]),
                    "iscrowd": 0,
                }
            )
        found = rng.random(n) < 0.8
        wh = np.stack([bw, bh, bw, bh], axis=1)
        hits = gt + rng.normal(0.0, 1.0, (n, 4)) * (0.04 + 2.0 / wh) * wh
        hits[:, 2:] = np.abs(hits[:, 2:]) + 1.0
        m = 15
        noise = np.stack(
            [
                rng.random(m) * w * 0.8,
                rng.random(m) * h * 0.8,
                rng.uniform(10, 200, m),
                rng.uniform(10, 200, m),
            ],
            axis=1,
        )
        xywh = np.concatenate([hits[found], noise])
        boxes = np.stack([xywh[:, 0], xywh[:, 1], xywh[:, 0] + xywh[:, 2], xywh[:, 1] + xywh[:, 3]], axis=1)
        boxes /= np.array([w, h, w, h])
        labels = np.array([label_of[int(c)] for c in cats[found]] + list(rng.integers(1, 81, m)), np.int64)
        scores = np.concatenate([rng.uniform(0.05, 1.0, int(found.sum())), rng.uniform(0.05, 0.7, m)])
        outputs[image_id] = RawOutputs(boxes.astype(np.float32), labels, scores.astype(np.float32))
    coco = {"images": images, "annotations": anns, "categories": coco_categories_json()}
    return Built(coco, outputs)


@pytest.fixture(scope="module")
def built() -> Built:
    return _build()


def _evaluate(
    coco: dict[str, Any],
    outputs: dict[int, RawOutputs],
    image_ids: list[int],
    *,
    label_map: LabelMap | None = None,
    clip_boxes: bool = False,
    score_threshold: float = 0.0,
) -> dict[str, float]:
    """Decode the model's outputs for `image_ids` with `decode` and score them with `score`."""
    size = {im["id"]: (im["width"], im["height"]) for im in coco["images"]}
    dets: list[Detections] = [
        decode(
            outputs[i],
            image_id=i,
            width=size[i][0],
            height=size[i][1],
            label_map=label_map or canonical_label_map(),
            clip_boxes=clip_boxes,
            score_threshold=score_threshold,
        )
        for i in image_ids
    ]
    return score(coco, dets, image_ids=image_ids, label_map=canonical_label_map()).stats


def _facts(built: Built, **changes: Any) -> ProtocolFacts:
    facts = ProtocolFacts(
        selection="annotated",
        num_images=ANNOTATED,
        input_size=(1200, 1200),
        preprocess="pillow",
        clip_boxes=False,
        score_threshold=0.0,
    )
    return replace(facts, **changes)


@pytest.fixture(scope="module")
def reference(built: Built) -> Reference:
    """The correct run of the built model: the built data's 'published' figures."""
    stats = _evaluate(built.coco, built.outputs, built.annotated_ids)
    return Reference("built-correct-run", stats, _facts(built))


def test_the_built_model_looks_like_a_detector_of_this_class(reference):
    # Not an expectation of the diagnosis: the built model must have the shape that makes the
    # signatures meaningful (small objects harder than large ones, recall well under 1).
    s = reference.stats
    assert 0.15 < s["AP"] < 0.35
    assert s["APs"] < s["APm"] < s["APl"]
    assert s["AR100"] < 0.6


def test_silent_on_a_correct_run(built, reference):
    stats = _evaluate(built.coco, built.outputs, built.annotated_ids)
    assert diagnose(stats, _facts(built), reference) is None


def test_silent_on_the_published_figures_themselves():
    assert diagnose(PUBLISHED, PUBLISHED_PROTOCOL, PUBLISHED_REFERENCE) is None


def test_silent_on_a_small_provider_difference():
    # A run 0.004 below the card (e.g. another provider's arithmetic): a miss the gate reports, but
    # none of the known protocol mistakes; the diagnosis does not guess.
    stats = {**PUBLISHED, "AP": 0.192, "AP50": 0.371, "AR100": 0.338}
    assert diagnose(stats, PUBLISHED_PROTOCOL, PUBLISHED_REFERENCE) is None


def _named(diagnosis: Diagnosis | None, cause: str) -> Diagnosis:
    assert diagnosis is not None, f"expected the diagnosis {cause!r}, got none"
    assert diagnosis.cause == cause, diagnosis.line
    assert "\n" not in diagnosis.line
    return diagnosis


def test_labels_used_as_category_ids(built, reference):
    # MLPerf's coco-1200-onnx profile: the label (1..80) goes out as the category id (1..90).
    identity = replace(canonical_label_map(), category_ids=np.array([-1, *range(1, 81)], np.int64))
    stats = _evaluate(built.coco, built.outputs, built.annotated_ids, label_map=identity)
    d = _named(diagnose(stats, _facts(built), reference), "labels")
    assert d.line.startswith(f"AP {stats['AP']:.3f} with reference AP {reference.stats['AP']:.3f}")


def test_labels_off_by_one(built, reference):
    # `inv_map = cocoGt.getCatIds()` without MLPerf's leading 0: label k goes out as label k+1's id
    # (label 80 as id 0, which no category has).
    ids = canonical_label_map().category_ids
    shifted = replace(canonical_label_map(), category_ids=np.concatenate([[-1], ids[2:], [0]]))
    stats = _evaluate(built.coco, built.outputs, built.annotated_ids, label_map=shifted)
    _named(diagnose(stats, _facts(built), reference), "labels")


def test_labels_published_signature():
    # onnx/models #165: AP ~0.002 with labels not mapped.
    stats = {**PUBLISHED, "AP": 0.002, "AP50": 0.004, "AR100": 0.01}
    d = _named(diagnose(stats, PUBLISHED_PROTOCOL, PUBLISHED_REFERENCE), "labels")
    assert d.line.startswith("AP 0.002 with reference AP 0.196 (1%)")


def _upscaled(coco: dict[str, Any], side: int = 1200) -> dict[str, Any]:
    """MLPerf's coco-1200 annotations: every image 1200x1200, boxes and areas scaled with it."""
    scale = {im["id"]: (side / im["width"], side / im["height"]) for im in coco["images"]}
    anns = []
    for a in coco["annotations"]:
        sx, sy = scale[a["image_id"]]
        x, y, w, h = a["bbox"]
        anns.append({**a, "bbox": [x * sx, y * sy, w * sx, h * sy], "area": a["area"] * sx * sy})
    images = [{**im, "width": side, "height": side} for im in coco["images"]]
    return {**coco, "images": images, "annotations": anns}


def test_ground_truth_rescaled_to_1200(built, reference):
    stats = _evaluate(_upscaled(built.coco), built.outputs, built.annotated_ids)
    # AP does not change with scale (pycocotools' IoU is scale-free); only the area ranges move.
    assert stats["AP"] == pytest.approx(reference.stats["AP"], abs=1e-12)
    d = _named(diagnose(stats, _facts(built), reference), "ground-truth-rescaled")
    assert d.line.startswith(f"APs {stats['APs']:.3f} with AP {stats['AP']:.3f}")


def test_ground_truth_rescaled_published_signature():
    # mlcommons/inference #657: .196 .373 .180 .038 .172 .246 / .202 .327 .341 (ARs..ARl not given).
    stats = dict(
        zip(
            STAT_NAMES,
            (0.196, 0.373, 0.180, 0.038, 0.172, 0.246, 0.202, 0.327, 0.341, 0.1, 0.3, 0.4),
            strict=True,
        )
    )
    d = _named(diagnose(stats, PUBLISHED_PROTOCOL, PUBLISHED_REFERENCE), "ground-truth-rescaled")
    assert d.line.startswith(
        "APs 0.038 with AP 0.196 (reference APs 0.115, AP 0.196): ground truth looks rescaled to 1200x1200"
    )


def test_score_cut_inside_the_post_processing(built, reference):
    # MLPerf's PostProcessCocoOnnx: `if score < 0.5: break`; the run's own protocol does not know it.
    cut = {
        i: RawOutputs(o.boxes[o.scores >= 0.5], o.labels[o.scores >= 0.5], o.scores[o.scores >= 0.5])
        for i, o in built.outputs.items()
    }
    stats = _evaluate(built.coco, cut, built.annotated_ids)
    d = _named(diagnose(stats, _facts(built), reference), "score-cut")
    assert d.line.startswith(f"AR100 {stats['AR100']:.3f} vs {reference.stats['AR100']:.3f}")


def test_score_cut_in_the_decode_settings(built, reference):
    stats = _evaluate(built.coco, built.outputs, built.annotated_ids, score_threshold=0.5)
    d = _named(diagnose(stats, _facts(built, score_threshold=0.5), reference), "score-cut")
    assert "decode.score_threshold 0.5" in d.line


def test_all_images_instead_of_the_annotated(built, reference):
    stats = _evaluate(built.coco, built.outputs, built.all_ids)
    # The 12 empty images add false positives only: precision falls, recall cannot move.
    assert stats["AP"] < reference.stats["AP"]
    assert {k: stats[k] for k in STAT_NAMES[6:]} == {k: reference.stats[k] for k in STAT_NAMES[6:]}
    facts = _facts(built, selection="all", num_images=ANNOTATED + EMPTY)
    d = _named(diagnose(stats, facts, reference), "images")
    assert d.line.startswith("172 images scored (all), the reference scored 160 (annotated)")
    assert "unchanged" in d.line


def test_a_smaller_image_set_is_not_called_the_5000_image_mistake():
    # The ssd-10 config on the 50-image slice: 48 annotated images against the published 4952.
    stats = {**PUBLISHED, "AP": 0.231}
    d = _named(diagnose(stats, replace(PUBLISHED_PROTOCOL, num_images=48), PUBLISHED_REFERENCE), "images")
    assert d.line == (
        "48 images scored (annotated), the reference scored 4952 (annotated): AP 0.231 vs 0.196 on another "
        "image set; the reference's figures hold for its own images only"
    )


def test_boxes_clipped(built, reference):
    stats = _evaluate(built.coco, built.outputs, built.annotated_ids, clip_boxes=True)
    # Ground truth lies inside the image: clipping a box that sticks out can only raise its IoU.
    assert stats["AP"] > reference.stats["AP"]
    d = _named(diagnose(stats, _facts(built, clip_boxes=True), reference), "clipped-boxes")
    assert d.line.startswith("boxes clipped to the image (decode.clip_boxes: true)")


def test_a_recorded_setting_is_named_before_a_signature_in_the_stats():
    # decode.clip_boxes: true and nothing else changed, with AR100 0.25 against 0.341 (73% of it, under
    # the score-cut threshold of 85%): the recorded difference is a fact, the low recall only looks like
    # a score cut. It used to be named "score-cut" because the AR100 heuristic ran first.
    stats = {**PUBLISHED, "AR100": 0.25}
    d = _named(
        diagnose(stats, replace(PUBLISHED_PROTOCOL, clip_boxes=True), PUBLISHED_REFERENCE), "clipped-boxes"
    )
    assert d.line == (
        "boxes clipped to the image (decode.clip_boxes: true), the reference's were not: "
        "AP 0.1960 vs 0.1960, APl 0.2280 vs 0.2280"
    )
    # With the recorded settings matching, the same stats are the score-cut signature.
    d = _named(diagnose(stats, PUBLISHED_PROTOCOL, PUBLISHED_REFERENCE), "score-cut")
    assert d.line.startswith("AR100 0.250 vs 0.341 (AR10 0.318): detections look cut at a score threshold")
    # Labels-like AP with a recorded resize: the resize is named (it changes everything downstream).
    collapsed = {**PUBLISHED, "AP": 0.002, "APs": 0.001}
    resized = replace(PUBLISHED_PROTOCOL, input_size=(300, 300))
    assert _named(diagnose(collapsed, resized, PUBLISHED_REFERENCE), "resize").line.startswith(
        "images resized by pillow to 300x300, the reference by pillow to 1200x1200: AP 0.002 vs 0.196"
    )
    # A lower score threshold than the reference's keeps all it kept: not a difference that explains a
    # miss, so the stats are still read.
    lower = replace(PUBLISHED_PROTOCOL, score_threshold=0.0)
    reference = replace(PUBLISHED_REFERENCE, protocol=replace(PUBLISHED_PROTOCOL, score_threshold=0.05))
    assert _named(diagnose(collapsed, lower, reference), "labels").line.startswith(
        "AP 0.002 with reference AP 0.196 (1%)"
    )


def test_silent_when_ap_is_undefined_on_either_side():
    # AP -1: pycocotools found no ground truth at all; a clipped-boxes (or any) line would quote -1.
    undefined = {**PUBLISHED, "AP": -1.0, "AR100": -1.0}
    clipped = replace(PUBLISHED_PROTOCOL, clip_boxes=True)
    assert diagnose(undefined, clipped, PUBLISHED_REFERENCE) is None
    assert diagnose(PUBLISHED, clipped, replace(PUBLISHED_REFERENCE, stats=undefined)) is None
    assert diagnose(PUBLISHED, clipped, replace(PUBLISHED_REFERENCE, stats={})) is None


def test_a_baseline_sha256_in_capitals_is_still_the_runs_model(tmp_path, tiny_coco):
    # The gate matches a baseline's model sha256 whatever its case; so does the diagnosis. The same
    # table detector as above: perfect over the 5 annotated images, a false positive on image 11.
    dets = {**TINY_GT, 11: [Det(1, 1, 10, 10, 1, score=0.95)]}
    model = save_table_detector(tmp_path / "model.onnx", tiny_coco, dets)
    config = write_config(tmp_path / "run.yaml", model, tiny_coco)
    assert main(["--config", str(config), "--run-name", "good", "--quiet"]) == 0
    good = json.loads((tmp_path / "results" / "good" / "metrics.json").read_text())
    baseline = tmp_path / "tiny-baseline.json"
    write_baseline(baseline, baseline_from_metrics(good, name="tiny", source="results/good"))
    data = json.loads(baseline.read_text())
    assert data["model"]["sha256"] == good["model"]["sha256"] == good["model"]["sha256"].lower()
    data["model"]["sha256"] = data["model"]["sha256"].upper()
    baseline.write_text(json.dumps(data))
    gated = write_config(
        tmp_path / "gated.yaml",
        model,
        tiny_coco,
        gate={"baseline": str(baseline), "max_baseline_drop": 0.003, "required": True},
    )
    assert main(["--config", str(gated), "--run-name", "all", "--quiet", "--selection", "all"]) == 1
    metrics = json.loads((tmp_path / "results" / "all" / "metrics.json").read_text())
    assert metrics["diagnosis"]["cause"] == "images"
    assert metrics["diagnosis"]["line"].startswith(
        "6 images scored (all), the reference scored 5 (annotated): AP 0.933 vs 1.000, AR100 1.000 unchanged"
    )


def test_different_resize_named_from_the_protocol():
    stats = {**PUBLISHED, "AP": 0.171, "APs": 0.070}
    facts = replace(PUBLISHED_PROTOCOL, preprocess="opencv")
    d = _named(diagnose(stats, facts, PUBLISHED_REFERENCE), "resize")
    assert d.line.startswith(
        "images resized by opencv to 1200x1200, the reference by pillow to 1200x1200: AP 0.171 vs 0.196"
    )


def test_diagnosis_is_json_serializable():
    d = diagnose({**PUBLISHED, "AP": 0.002}, PUBLISHED_PROTOCOL, PUBLISHED_REFERENCE)
    assert d is not None
    assert json.loads(json.dumps(d.to_json()))["cause"] == "labels"


def test_a_run_that_misses_records_and_prints_its_diagnosis(tmp_path, tiny_coco, capsys):
    # One table detector (same sha256 for both runs) that also fires on image 11, which has no
    # annotations: scored over the 5 annotated images it is perfect; over all 6 it is not.
    dets = {**TINY_GT, 11: [Det(1, 1, 10, 10, 1, score=0.95)]}
    model = save_table_detector(tmp_path / "model.onnx", tiny_coco, dets)
    config = write_config(tmp_path / "run.yaml", model, tiny_coco)
    assert main(["--config", str(config), "--run-name", "good"]) == 0
    good = json.loads((tmp_path / "results" / "good" / "metrics.json").read_text())
    assert good["diagnosis"] is None
    assert "Likely cause" not in (tmp_path / "results" / "good" / "summary.md").read_text()
    baseline = tmp_path / "tiny-baseline.json"
    write_baseline(baseline, baseline_from_metrics(good, name="tiny", source="results/good"))

    # gate.required: the run below is not comparable to the baseline (another image selection), so
    # the gate has NO VERDICT, which a required gate turns into exit 1.
    gated = write_config(
        tmp_path / "gated.yaml",
        model,
        tiny_coco,
        gate={"baseline": str(baseline), "max_baseline_drop": 0.003, "required": True},
    )
    assert main(["--config", str(gated), "--run-name", "good2"]) == 0
    assert json.loads((tmp_path / "results" / "good2" / "metrics.json").read_text())["diagnosis"] is None
    capsys.readouterr()

    code = main(["--config", str(gated), "--run-name", "all", "--selection", "all"])
    assert code == 1
    # Hand count over all 6 images: person precision 4/5 at every recall, dog and toothbrush 1:
    # AP (0.8 + 1 + 1) / 3 = 0.933; recall is 1 either way.
    line = (
        "6 images scored (all), the reference scored 5 (annotated): AP 0.933 vs 1.000, AR100 1.000 unchanged"
    )
    err = capsys.readouterr().err
    assert f"diagnosis: {line}" in err
    metrics = json.loads((tmp_path / "results" / "all" / "metrics.json").read_text())
    assert metrics["diagnosis"]["cause"] == "images"
    assert metrics["diagnosis"]["line"].startswith(line)
    summary = (tmp_path / "results" / "all" / "summary.md").read_text()
    assert f"**Likely cause:** {line}" in summary


def _box_finder() -> onnx.ModelProto:
    """A detector that sees: the box around the input's bright pixels, at any input size.

    It emits one detection (label 1 = person, score 0.9): the first and last row and column where
    the normalized input exceeds 0 in some channel, as a fraction of the input's height and width.
    Its box is only as fine as the input grid, so the resize before it shows in its AP.
    """
    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    inits = [
        numpy_helper.from_array(np.array(0.0, np.float32), "zero"),
        numpy_helper.from_array(np.array([-1], np.int64), "minus_one"),
        numpy_helper.from_array(np.array([-(2**31)], np.int64), "far_end"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
        numpy_helper.from_array(np.array([2], np.int64), "height_index"),
        numpy_helper.from_array(np.array([3], np.int64), "width_index"),
        numpy_helper.from_array(np.array([1, 1, 4], np.int64), "box_shape"),
        numpy_helper.from_array(np.array([[1]], np.int64), "label_value"),
        numpy_helper.from_array(np.array([[0.9]], np.float32), "score_value"),
    ]
    nodes = [
        helper.make_node("ReduceMax", ["image"], ["brightest"], axes=[1], keepdims=0),  # [1, H, W]
        helper.make_node("Greater", ["brightest", "zero"], ["lit"]),
        helper.make_node("Cast", ["lit"], ["mask"], to=f32),
        helper.make_node("ReduceMax", ["mask"], ["columns"], axes=[1], keepdims=0),  # [1, W]
        helper.make_node("ReduceMax", ["mask"], ["rows"], axes=[2], keepdims=0),  # [1, H]
        helper.make_node("Shape", ["image"], ["shape"]),
    ]
    for name, line, index in (("x", "columns", "width_index"), ("y", "rows", "height_index")):
        nodes += [
            helper.make_node("Gather", ["shape", index], [f"{name}_n"], axis=0),
            helper.make_node("Cast", [f"{name}_n"], [f"{name}_nf"], to=f32),
            helper.make_node("ArgMax", [line], [f"{name}_first"], axis=1, keepdims=0),
            helper.make_node(
                "Slice", [line, "minus_one", "far_end", "axis1", "minus_one"], [f"{name}_reversed"]
            ),
            helper.make_node("ArgMax", [f"{name}_reversed"], [f"{name}_from_end"], axis=1, keepdims=0),
            helper.make_node("Sub", [f"{name}_n", f"{name}_from_end"], [f"{name}_end"]),
            helper.make_node("Cast", [f"{name}_first"], [f"{name}_first_f"], to=f32),
            helper.make_node("Cast", [f"{name}_end"], [f"{name}_end_f"], to=f32),
            helper.make_node("Div", [f"{name}_first_f", f"{name}_nf"], [f"{name}1"]),
            helper.make_node("Div", [f"{name}_end_f", f"{name}_nf"], [f"{name}2"]),
        ]
    nodes += [
        helper.make_node("Concat", ["x1", "y1", "x2", "y2"], ["box"], axis=0),
        helper.make_node("Reshape", ["box", "box_shape"], ["bboxes"]),
        helper.make_node("Identity", ["label_value"], ["labels"]),
        helper.make_node("Identity", ["score_value"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes,
        "box_finder",
        [helper.make_tensor_value_info("image", f32, [1, 3, "height", "width"])],
        [
            helper.make_tensor_value_info("bboxes", f32, [1, 1, 4]),
            helper.make_tensor_value_info("labels", i64, [1, 1]),
            helper.make_tensor_value_info("scores", f32, [1, 1]),
        ],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)])
    model.ir_version = 5
    onnx.checker.check_model(model)
    return model


def _bright_boxes(root: Path) -> Path:
    """Images of one white rectangle on black, its box the ground truth, at off-grid positions."""
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    images, anns = [], []
    for k in range(8):
        width, height = 200 + 10 * k, 150 + 7 * k
        x, y, w, h = 13 + 7 * k, 9 + 5 * k, 61 + 9 * k, 47 + 6 * k
        picture = Image.new("RGB", (width, height))
        ImageDraw.Draw(picture).rectangle((x, y, x + w - 1, y + h - 1), fill=(255, 255, 255))
        name = f"{k + 1:012d}.png"
        picture.save(root / "val2017" / name)
        images.append({"id": k + 1, "file_name": name, "width": width, "height": height})
        anns.append(
            {
                "id": k + 1,
                "image_id": k + 1,
                "category_id": 1,
                "bbox": [x, y, w, h],
                "area": w * h,
                "iscrowd": 0,
            }
        )
    data = {"images": images, "annotations": anns, "categories": coco_categories_json()}
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(data))
    return root


def test_a_different_resize(tmp_path, capsys):
    root = _bright_boxes(tmp_path / "coco")
    model = tmp_path / "box_finder.onnx"
    onnx.save(_box_finder(), model)
    right = write_config(tmp_path / "right.yaml", model, root, preprocess={"size": 320})
    assert main(["--config", str(right), "--run-name", "right"]) == 0
    good = json.loads((tmp_path / "results" / "right" / "metrics.json").read_text())
    assert good["stats"]["AP"] == pytest.approx(1.0, abs=1e-12)  # every box to within IoU 0.95
    baseline = tmp_path / "baseline.json"
    write_baseline(baseline, baseline_from_metrics(good, name="right", source="results/right"))
    gate = {"baseline": str(baseline), "max_baseline_drop": 0.003}
    # The same model, fed images resized to 32x32 instead of 320x320: its boxes snap to a grid of
    # 6-9 pixels and lose IoU at the strict thresholds.
    wrong = write_config(tmp_path / "wrong.yaml", model, root, preprocess={"size": 32}, gate=gate)
    capsys.readouterr()
    assert main(["--config", str(wrong), "--run-name", "wrong"]) == 1
    metrics = json.loads((tmp_path / "results" / "wrong" / "metrics.json").read_text())
    assert metrics["stats"]["AP"] < good["stats"]["AP"]
    assert metrics["diagnosis"]["cause"] == "resize"
    line = metrics["diagnosis"]["line"]
    assert line.startswith("images resized by pillow to 32x32, the reference by pillow to 320x320: AP ")
    assert f"diagnosis: {line}" in capsys.readouterr().err
    # The diagnosis explains a verdict that is not PASS: a run within a loose gate gets none, even
    # with the resize mistake in it.
    loose = write_config(
        tmp_path / "loose.yaml", model, root, preprocess={"size": 32}, gate={**gate, "max_baseline_drop": 0.9}
    )
    assert main(["--config", str(loose), "--run-name", "loose"]) == 0
    assert json.loads((tmp_path / "results" / "loose" / "metrics.json").read_text())["diagnosis"] is None


def test_the_committed_published_baseline_is_a_diagnosis_reference():
    from ssd_eval.reports.baseline import read_baseline
    from ssd_eval.reports.diagnosis import reference_from_baseline

    path = Path(__file__).resolve().parents[1] / "results" / "baselines" / "ssd-10-published.json"
    reference = reference_from_baseline(read_baseline(path))
    assert reference is not None
    assert reference.protocol == PUBLISHED_PROTOCOL
    assert (
        reference.stats["AP"] == 0.19578
        and reference.stats["APs"] == 0.115
        and reference.stats["AR100"] == 0.341
    )
    # mlcommons/inference #657's figures against it: the upscaled ground truth.
    upscaled = {
        **PUBLISHED,
        "AP": 0.196,
        "AP50": 0.373,
        "APs": 0.038,
        "APm": 0.172,
        "APl": 0.246,
        "AR1": 0.202,
    }
    d = _named(diagnose(upscaled, PUBLISHED_PROTOCOL, reference), "ground-truth-rescaled")
    assert d.line.startswith("APs 0.038 with AP 0.196 (reference APs 0.115, AP 0.196)")
