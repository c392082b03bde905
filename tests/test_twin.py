"""The SSD-ResNet34 twin: real-model cost and layout, valid opset-10 graph, realistic detections."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from ssd_eval.config.run import IMAGENET_MEAN, IMAGENET_STD
from ssd_eval.errors import ModelError
from ssd_eval.pipeline.preprocess import Normalization, normalize_to_nchw, preprocess
from ssd_eval.twin.graph_stats import count_macs, count_parameters
from ssd_eval.twin.model import (
    NUM_DEFAULTS,
    build_twin,
    default_boxes,
    ensure_twin,
    feature_map_sizes,
    grid_sizes,
    save_twin,
)

SIZE = 600  # everything that runs the model runs it at 600: a quarter of 1200's cost
SHARED_SLICE = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "coco_val2017_first50"
NORM = Normalization.from_mean_std(IMAGENET_MEAN, IMAGENET_STD)


def synthetic_image(seed: int, size: int = SIZE) -> np.ndarray:
    """A normalized test picture: a colour gradient, filled rectangles and discs, sensor noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    image = 90.0 + 80.0 * np.stack([xx, yy, 1.0 - xx * yy], axis=-1)
    for _ in range(10):
        colour = rng.integers(0, 256, 3)
        x0, y0 = rng.integers(0, size * 3 // 4, 2)
        w, h = rng.integers(size // 12, size // 3, 2)
        if rng.random() < 0.5:
            image[y0 : y0 + h, x0 : x0 + w] = colour
        else:
            inside = (xx * size - x0 - w / 2) ** 2 + (yy * size - y0 - w / 2) ** 2 < (w / 2) ** 2
            image[inside] = colour
    image += rng.normal(0.0, 6.0, image.shape)
    return normalize_to_nchw(np.clip(image, 0, 255).astype(np.uint8), NORM)


def iou_matrix(boxes: np.ndarray) -> np.ndarray:
    lo = np.maximum(boxes[:, None, :2], boxes[None, :, :2])
    hi = np.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    inter = np.prod(np.clip(hi - lo, 0, None), axis=2)
    area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    return inter / (area[:, None] + area[None, :] - inter)


def reference_postprocess(
    locs: np.ndarray, confs: np.ndarray, dboxes: np.ndarray
) -> list[tuple[int, int, float]]:
    """numpy version of the graph's tail: decode, softmax, greedy per-class NMS, best 200.

    Returns (label, default box index, score), best first.
    """
    loc = locs[0].T.astype(np.float64)  # [N, 4]
    centre = dboxes[:, :2] + 0.1 * loc[:, :2] * dboxes[:, 2:]
    size = dboxes[:, 2:] * np.exp(0.2 * loc[:, 2:])
    boxes = np.concatenate([centre - size / 2, centre + size / 2], axis=1)
    logits = confs[0].T.astype(np.float64)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    kept: list[tuple[int, int, float]] = []
    for label in range(1, probs.shape[1]):
        candidates = np.flatnonzero(probs[:, label] > 0.05)
        order = candidates[np.argsort(-probs[candidates, label], kind="stable")]
        chosen: list[int] = []
        for index in order:
            if len(chosen) == 200:
                break
            if not chosen or iou_matrix(boxes[[index, *chosen]])[0, 1:].max() <= 0.5:
                chosen.append(int(index))
        kept += [(label, index, float(probs[index, label])) for index in chosen]
    return sorted(kept, key=lambda k: -k[2])[:200]


@pytest.fixture(scope="module")
def model() -> onnx.ModelProto:
    return build_twin(SIZE, seed=0)


@pytest.fixture(scope="module")
def model_1200() -> onnx.ModelProto:
    return build_twin(1200, seed=0)


@pytest.fixture(scope="module")
def session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def detections(session: ort.InferenceSession) -> dict[str, np.ndarray]:
    outputs = session.run(None, {"image": synthetic_image(seed=1)})
    return dict(zip([o.name for o in session.get_outputs()], outputs, strict=True))


# --- cost and layout of the real model ---------------------------------------------------------


def test_parameter_count_matches_the_real_model(model_1200: onnx.ModelProto) -> None:
    assert count_parameters(model_1200) == pytest.approx(20.0e6, rel=0.01)


def test_macs_match_the_real_model(model_1200: onnx.ModelProto) -> None:
    assert count_macs(model_1200) == pytest.approx(216e9, rel=0.02)


def test_parameters_do_not_depend_on_the_image_size(
    model: onnx.ModelProto, model_1200: onnx.ModelProto
) -> None:
    assert count_parameters(model) == count_parameters(model_1200)


def test_feature_maps_and_grids_at_1200() -> None:
    assert feature_map_sizes(1200) == [150, 75, 38, 19, 9, 7]
    assert grid_sizes(1200) == [50, 25, 13, 7, 3, 3]


def test_default_boxes_at_1200_follow_dboxes_r34_coco() -> None:
    boxes = default_boxes(1200)
    assert boxes.shape == (15130, 4)
    assert boxes.dtype == np.float32
    assert boxes.min() >= 0.0 and boxes.max() <= 1.0
    # First level: step 24 px, smallest box int(21 * 4) = 84 px; columns vary fastest.
    np.testing.assert_allclose(boxes[0], [0.5 / 50, 0.5 / 50, 84 / 1200, 84 / 1200], rtol=1e-6)
    np.testing.assert_allclose(boxes[1, :2], [1.5 / 50, 0.5 / 50], rtol=1e-6)
    np.testing.assert_allclose(boxes[50, :2], [0.5 / 50, 1.5 / 50], rtol=1e-6)
    # Second size of the first level: sqrt(84 * 180) px, after all 2500 locations of the first.
    np.testing.assert_allclose(boxes[2500, 2:], [np.sqrt(84 * 180) / 1200] * 2, rtol=1e-6)


def test_default_boxes_at_600() -> None:
    grids = grid_sizes(600)
    assert grids == [25, 13, 7, 4, 2, 1]
    expected = sum(g * g * nd for g, nd in zip(grids, NUM_DEFAULTS, strict=True))
    assert len(default_boxes(600)) == expected == 3924


def test_the_graph_carries_the_default_boxes(model: onnx.ModelProto) -> None:
    stored = {t.name: t for t in model.graph.initializer}["default_boxes"]
    np.testing.assert_array_equal(numpy_helper.to_array(stored)[0], default_boxes(SIZE))


@pytest.mark.parametrize("size", [300, 384])
def test_too_small_sizes_are_refused_clearly(size: int) -> None:
    with pytest.raises(ValueError, match="at least 385 pixels"):
        build_twin(size)


def test_sizes_whose_box_grid_does_not_match_are_refused() -> None:
    with pytest.raises(ValueError, match=r"598.*\[25, 13, 7, 4, 2, 1\].*\[26, 13"):
        feature_map_sizes(598)


def test_smallest_size_that_fits() -> None:
    assert feature_map_sizes(385)[-1] == 1


# --- a valid, loadable opset-10 model ------------------------------------------------------------


def test_model_is_valid_opset_10_for_older_runtimes(model: onnx.ModelProto) -> None:
    onnx.checker.check_model(model)
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 10)]
    assert model.ir_version <= 13


def test_io_names_shapes_and_types(session: ort.InferenceSession, detections: dict[str, np.ndarray]) -> None:
    [image] = session.get_inputs()
    assert (image.name, image.shape, image.type) == ("image", [1, 3, SIZE, SIZE], "tensor(float)")
    assert [(o.name, o.shape) for o in session.get_outputs()] == [
        ("bboxes", [1, "nbox", 4]),
        ("labels", [1, "nbox"]),
        ("scores", [1, "nbox"]),
    ]
    n = detections["scores"].shape[1]
    assert detections["bboxes"].shape == (1, n, 4) and detections["bboxes"].dtype == np.float32
    assert detections["labels"].shape == (1, n) and detections["labels"].dtype == np.int64
    assert detections["scores"].dtype == np.float32


# --- detections that look like a detector's ------------------------------------------------------


def test_boxes_are_ordered_corners_near_the_unit_square(detections: dict[str, np.ndarray]) -> None:
    boxes = detections["bboxes"][0]
    assert np.all(boxes[:, 0] <= boxes[:, 2]) and np.all(boxes[:, 1] <= boxes[:, 3])
    assert boxes.min() > -0.6 and boxes.max() < 1.6  # not clipped, as in the real model
    inside = np.all((boxes > -0.05) & (boxes < 1.05), axis=1)
    assert inside.mean() > 0.6


def test_labels_scores_and_order(detections: dict[str, np.ndarray]) -> None:
    labels, scores = detections["labels"][0], detections["scores"][0]
    assert labels.min() >= 1 and labels.max() <= 80  # background never emitted
    assert np.all(scores > 0.05) and np.all(scores <= 1.0)
    assert np.all(np.diff(scores) <= 0)  # best first


def test_tens_to_200_detections_over_several_classes(detections: dict[str, np.ndarray]) -> None:
    labels = detections["labels"][0]
    assert 20 <= len(labels) <= 200
    counts = np.bincount(labels)
    assert np.count_nonzero(counts) >= 5
    assert counts.max() < 0.8 * len(labels)


def test_nms_really_suppresses(detections: dict[str, np.ndarray]) -> None:
    boxes, labels = detections["bboxes"][0], detections["labels"][0]
    for label in np.unique(labels):
        same = boxes[labels == label]
        iou = iou_matrix(same.astype(np.float64))
        np.fill_diagonal(iou, 0.0)
        assert iou.max(initial=0.0) <= 0.5 + 1e-5, (
            f"class {label}: two boxes overlap with IoU {iou.max():.3f}"
        )


def test_detections_depend_on_the_image(
    session: ort.InferenceSession, detections: dict[str, np.ndarray]
) -> None:
    other = session.run(None, {"image": synthetic_image(seed=2)})
    first = {
        (int(label), *np.round(box, 2))
        for label, box in zip(detections["labels"][0], detections["bboxes"][0], strict=True)
    }
    second = {(int(label), *np.round(box, 2)) for label, box in zip(other[1][0], other[0][0], strict=True)}
    assert len(first & second) < 0.5 * min(len(first), len(second))


def test_graph_tail_matches_a_numpy_reference(model: onnx.ModelProto) -> None:
    """Decode, softmax, per-class NMS and the top 200, recomputed from the heads' raw outputs."""
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend([helper.make_empty_tensor_value_info(n) for n in ("locs", "confs", "top.box")])
    bboxes, labels, scores, locs, confs, box_ids = ort.InferenceSession(
        probe.SerializeToString(), providers=["CPUExecutionProvider"]
    ).run(None, {"image": synthetic_image(seed=3)})
    expected = reference_postprocess(locs, confs, default_boxes(SIZE))
    assert len(expected) == scores.shape[1] > 0
    np.testing.assert_allclose(scores[0], [s for _, _, s in expected], rtol=1e-4, atol=1e-6)
    assert sorted(zip(labels[0].tolist(), box_ids.tolist(), strict=True)) == sorted(
        (lab, i) for lab, i, _ in expected
    )
    loc = locs[0].T[box_ids]
    dbox = default_boxes(SIZE)[box_ids]
    centre = dbox[:, :2] + 0.1 * loc[:, :2] * dbox[:, 2:]
    np.testing.assert_allclose(bboxes[0][:, :2] + bboxes[0][:, 2:], 2 * centre, atol=1e-5)


@pytest.mark.skipif(not SHARED_SLICE.is_dir(), reason="shared COCO slice not present")
def test_a_real_photo_gives_a_detectors_worth_of_detections(session: ort.InferenceSession) -> None:
    from ssd_eval.data.dataset import load_rgb

    path = sorted((SHARED_SLICE / "val2017").glob("*.jpg"))[0]
    _, labels, scores = session.run(None, {"image": preprocess(load_rgb(path), (SIZE, SIZE), NORM)})
    assert 20 <= scores.shape[1] <= 200
    assert len(np.unique(labels)) >= 5


# --- determinism, saving and the cache ---------------------------------------------------------


def test_same_seed_same_bytes_other_seed_other_bytes(model: onnx.ModelProto) -> None:
    again = build_twin(SIZE, seed=0).SerializeToString()
    assert again == model.SerializeToString()
    assert build_twin(SIZE, seed=1).SerializeToString() != again


def test_ensure_twin_builds_once_and_saves_atomically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = ensure_twin(SIZE, 0, tmp_path / "twins")
    assert path == tmp_path / "twins" / "ssd-twin-600-s0-v1.onnx"
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind
    assert onnx.load(str(path)).ir_version <= 13

    def no_rebuild(*args: object) -> None:
        raise AssertionError("the cached twin was rebuilt")

    monkeypatch.setattr("ssd_eval.twin.model.build_twin", no_rebuild)
    assert ensure_twin(SIZE, 0, tmp_path / "twins") == path


def test_ensure_twin_reports_an_impossible_size_as_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="image size 300"):
        ensure_twin(300, 0, tmp_path)
    assert not any(tmp_path.iterdir())


def test_save_twin_replaces_an_existing_file(tmp_path: Path) -> None:
    tiny = helper.make_model(
        helper.make_graph(
            [helper.make_node("Relu", ["x"], ["y"])],
            "tiny",
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        )
    )
    target = tmp_path / "model.onnx"
    target.write_bytes(b"stale")
    save_twin(tiny, target)
    assert onnx.load(str(target)).graph.name == "tiny"
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]


# --- graph_stats on a graph counted by hand ------------------------------------------------------


def test_graph_stats_count_by_hand() -> None:
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.standard_normal((8, 2, 3, 3)).astype(np.float32), "w")  # group 2
    bias = numpy_helper.from_array(np.zeros(8, np.float32), "b")
    matrix = numpy_helper.from_array(np.ones((5, 3), np.float32), "m")
    anchors = numpy_helper.from_array(np.ones((1, 10, 4), np.float32), "anchors")  # a constant, not a weight
    shape = numpy_helper.from_array(np.array([1, 8 * 5 * 5], np.int64), "shape")
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], strides=[2, 2], group=2),
            helper.make_node("MatMul", ["c", "m"], ["y"]),  # [1, 8, 5, 5] @ [5, 3]
            helper.make_node("Add", ["anchors", "anchors"], ["z"]),
            helper.make_node("Reshape", ["c", "shape"], ["flat"]),
        ],
        "counted",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 11, 11])],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("z", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("flat", TensorProto.FLOAT, None),
        ],
        initializer=[weight, bias, matrix, anchors, shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)])
    assert count_parameters(model) == 8 * 2 * 9 + 8 + 5 * 3
    # Conv: 8 x 5 x 5 outputs, each 2 * 3 * 3 MACs; MatMul: 8 x 5 x 3 outputs, each 5 MACs.
    assert count_macs(model) == 8 * 5 * 5 * 18 + 8 * 5 * 3 * 5
