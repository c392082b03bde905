"""Independent references for the numbers a wrong protocol would change (issue 11).

Every expected value here is written from the model card's text or counted by hand: ImageNet mean
[0.485, 0.456, 0.406] and std [0.229, 0.224, 0.225] in RGB order, resize to the model's input
(1200x1200 for ssd-10) with Pillow's bilinear filter, aspect ratio not kept. Nothing is imported
from the code under test to compute an expectation. Sizes are non-square wherever a width and a
height could be swapped, and every threshold is tested on both sides.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import Det, save_table_detector, write_config
from PIL import Image

import ssd_eval.evaluation.scoring as scoring_module
from ssd_eval.cli import main
from ssd_eval.config.compare import AgreementConfig
from ssd_eval.config.run import ExpectedConfig, PreprocessConfig, load_config
from ssd_eval.data.categories import canonical_label_map, coco_categories_json
from ssd_eval.data.dataset import CocoGroundTruth, ImageRecord, load_checked, load_rgb
from ssd_eval.errors import DatasetError
from ssd_eval.evaluation.agreement import match_detections
from ssd_eval.evaluation.detection_log import detections_from_line, detections_to_line
from ssd_eval.evaluation.scoring import score
from ssd_eval.pipeline.decode import Detections
from ssd_eval.pipeline.preprocess import HostPreprocessor, Normalization, preprocess
from ssd_eval.pipeline.session import ProviderSession
from ssd_eval.reports.gate import check_drop, check_expected, check_min

# The model card, literally (RGB order).
CARD_MEAN = (0.485, 0.456, 0.406)
CARD_STD = (0.229, 0.224, 0.225)
REPO = Path(__file__).resolve().parents[1]

# A pure colour after the card's preprocessing: (value / 255 - mean[c]) / std[c], by hand.
RED = ((1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (0 - 0.406) / 0.225)
GREEN = ((0 - 0.485) / 0.229, (1 - 0.456) / 0.224, (0 - 0.406) / 0.225)
BLUE = ((0 - 0.485) / 0.229, (0 - 0.456) / 0.224, (1 - 0.406) / 0.225)


def _card_norm() -> Normalization:
    return Normalization.from_mean_std(CARD_MEAN, CARD_STD)


# --- preprocessing -------------------------------------------------------------------------------


def test_default_mean_std_are_the_cards_in_rgb_order():
    defaults = PreprocessConfig()
    assert defaults.mean == pytest.approx(CARD_MEAN, abs=0) and defaults.std == pytest.approx(CARD_STD, abs=0)
    assert defaults.backend == "pillow"


@pytest.mark.parametrize("folder", ["configs", "ssd_eval/configs"])
def test_bundled_coco_val_yaml_has_the_cards_mean_std(folder):
    path = REPO / folder / "coco_val.yaml"
    raw = yaml.safe_load(path.read_text())
    assert raw["preprocess"]["mean"] == [0.485, 0.456, 0.406]
    assert raw["preprocess"]["std"] == [0.229, 0.224, 0.225]
    assert raw["preprocess"]["backend"] == "pillow"
    loaded = load_config(path)
    assert loaded.preprocess.mean == CARD_MEAN and loaded.preprocess.std == CARD_STD


@pytest.mark.parametrize(
    ("color", "expected"), [((255, 0, 0), RED), ((0, 255, 0), GREEN), ((0, 0, 255), BLUE)]
)
def test_pure_colours_give_the_cards_values_per_channel(color, expected):
    pixels = np.zeros((6, 10, 3), np.uint8)
    pixels[:] = color
    defaults = PreprocessConfig()  # the package's own default mean/std, against the card's values
    out = preprocess(pixels, (4, 8), Normalization.from_mean_std(defaults.mean, defaults.std))
    assert out.shape == (1, 3, 4, 8) and out.dtype == np.float32
    for channel in range(3):
        np.testing.assert_allclose(out[0, channel], expected[channel], rtol=0, atol=2e-6)


@pytest.mark.parametrize("ext", ["png", "bmp"])
def test_a_red_file_loads_as_red(tmp_path, ext):
    path = tmp_path / f"red.{ext}"
    Image.new("RGB", (7, 3), (255, 0, 0)).save(path)
    pixels = load_rgb(path)
    assert pixels.shape == (3, 7, 3)
    assert pixels[0, 0].tolist() == [255, 0, 0]
    tensor = HostPreprocessor("pillow", (5, 9), _card_norm())(pixels)
    np.testing.assert_allclose(tensor[0, :, 2, 4], RED, rtol=0, atol=2e-6)


def test_resize_to_a_non_square_size_is_height_then_width_without_keeping_aspect():
    # 30 rows x 50 columns: red left half, blue right half.
    pixels = np.zeros((30, 50, 3), np.uint8)
    pixels[:, :25] = (255, 0, 0)
    pixels[:, 25:] = (0, 0, 255)
    out = preprocess(pixels, (20, 40), _card_norm())  # (height, width)
    assert out.shape == (1, 3, 20, 40)
    np.testing.assert_allclose(out[0, :, 10, 0], RED, atol=2e-6)  # left column red
    np.testing.assert_allclose(out[0, :, 10, 39], BLUE, atol=2e-6)  # right column blue
    # Pillow's bilinear resize straight from Pillow (size is (width, height) there).
    reference = np.asarray(Image.fromarray(pixels).resize((40, 20), Image.Resampling.BILINEAR), np.float64)
    card = (reference / 255 - np.array(CARD_MEAN)) / np.array(CARD_STD)
    np.testing.assert_allclose(out[0], card.transpose(2, 0, 1), rtol=0, atol=2e-6)


def test_model_card_size_1200_square_from_a_landscape_image():
    pixels = np.zeros((48, 64, 3), np.uint8)
    pixels[:, :, 1] = 255
    out = HostPreprocessor("pillow", (1200, 1200), _card_norm())(pixels)
    assert out.shape == (1, 3, 1200, 1200) and out.flags["C_CONTIGUOUS"]
    np.testing.assert_allclose(out[0, :, 600, 600], GREEN, atol=2e-6)


def test_bilinear_not_nearest_on_an_upscaled_edge():
    # Two columns 0 and 255 upscaled to 4 columns: Pillow bilinear gives 0, 64, 191, 255 (hand-checked
    # against Pillow's support of 1 source pixel); nearest would give 0, 0, 255, 255.
    pixels = np.zeros((1, 2, 3), np.uint8)
    pixels[:, 1] = 255
    out = preprocess(pixels, (1, 4), Normalization.from_mean_std((0.0, 0.0, 0.0), (1.0, 1.0, 1.0)))
    np.testing.assert_allclose(out[0, 0, 0] * 255, [0, 64, 191, 255], atol=1e-3)


# --- the image size check against the annotation ---------------------------------------------------


def _one_image_gt(tmp_path: Path, width: int, height: int) -> tuple[CocoGroundTruth, ImageRecord]:
    record = ImageRecord(1, "a.png", width, height)
    gt = CocoGroundTruth(
        annotation_file=tmp_path / "ann.json",
        image_dir=tmp_path,
        coco_json={},
        images=(record,),
        label_map=canonical_label_map(),
        selection="annotated",
        total_images=1,
        annotated_images=1,
    )
    return gt, record


def test_image_size_is_checked_against_the_annotation(tmp_path):
    Image.new("RGB", (40, 30), (1, 2, 3)).save(tmp_path / "a.png")  # 40 wide, 30 high
    gt, record = _one_image_gt(tmp_path, 40, 30)
    assert load_checked(gt, record).pixels.shape == (30, 40, 3)
    swapped, record = _one_image_gt(tmp_path, 30, 40)
    with pytest.raises(DatasetError, match=r"a\.png is 40x30 but ann\.json says 30x40"):
        load_checked(swapped, record)
    for width, height in ((41, 30), (40, 29)):
        other, record = _one_image_gt(tmp_path, width, height)
        with pytest.raises(DatasetError, match="use the original COCO files"):
            load_checked(other, record)


# --- the gate's thresholds, both sides --------------------------------------------------------------


@pytest.mark.parametrize(
    ("measured", "passed"),
    [
        (0.195, True),
        (0.1979, True),  # above, within 0.003
        (0.1921, True),  # below, within 0.003
        (0.1985, False),  # ABOVE by more than the tolerance: the protocol changed
        (0.2500, False),
        (0.1915, False),  # below by more than the tolerance
        (0.0, False),
    ],
)
def test_expected_rule_is_two_sided(measured, passed):
    check = check_expected({"AP": measured}, ExpectedConfig(metric="AP", value=0.195, tolerance=0.003))
    assert check.passed is passed
    assert check.evaluated  # passed or failed, never skipped or not comparable


def test_expected_rule_messages_and_boundary():
    expected = ExpectedConfig(metric="AP", value=0.5, tolerance=0.25)  # exact in binary
    assert check_expected({"AP": 0.75}, expected).passed and check_expected({"AP": 0.25}, expected).passed
    assert not check_expected({"AP": 0.7500001}, expected).passed
    above = check_expected({"AP": 0.8}, expected)
    assert above.rule == "AP = 0.5000 ± 0.2500"
    assert above.message == "AP 0.8000 misses the reference 0.5000 by +0.3000 (tolerance 0.2500)"
    within = check_expected({"AP": 0.4}, expected)
    assert within.message == "AP 0.4000 is within 0.2500 of the reference 0.5000 (delta -0.1000)"
    other = check_expected({"AP50": 0.5}, ExpectedConfig(metric="AP50", value=0.375, tolerance=0.25))
    assert other.passed and other.rule.startswith("AP50 = 0.3750")
    unknown = check_expected({"AP": 0.5}, ExpectedConfig(metric="mAP", value=0.5, tolerance=0.1))
    assert not unknown.passed and "'mAP' is not a COCO stat (one of AP)" in unknown.message


def test_min_and_drop_on_both_sides_of_the_boundary():
    assert check_min({"AP": 0.25}, metric="AP", floor=0.25).passed
    assert not check_min({"AP": 0.2499999}, metric="AP", floor=0.25).passed
    assert check_min({"AP": 0.26}, metric="AP", floor=0.25).passed
    # drop = reference - measured; exactly the allowed drop passes, a hair more fails, a gain passes.
    assert check_drop({"AP": 0.25}, {"AP": 0.5}, metric="AP", max_drop=0.25, against="b").passed
    assert not check_drop({"AP": 0.2499999}, {"AP": 0.5}, metric="AP", max_drop=0.25, against="b").passed
    assert check_drop({"AP": 0.75}, {"AP": 0.5}, metric="AP", max_drop=0.0, against="b").passed
    assert not check_drop({"AP": 0.4999}, {"AP": 0.5}, metric="AP", max_drop=0.0, against="b").passed


# --- agreement ----------------------------------------------------------------------------------


def _dets(image_id: int, rows: list[tuple[float, float, float, float, int, float]]) -> Detections:
    return Detections(
        image_id,
        np.asarray([r[:4] for r in rows], np.float64).reshape(-1, 4),
        np.asarray([r[5] for r in rows], np.float64),
        np.asarray([r[4] for r in rows], np.int64),
    )


def test_agreement_iou_default_is_one_half():
    assert AgreementConfig().iou_threshold == 0.5
    reference = _dets(1, [(0, 0, 10, 10, 1, 0.9), (100, 0, 10, 10, 1, 0.8)])
    # Run box 0: shifted 3.3 px -> IoU 67/133 = 0.5038 (matched); run box 1: shifted 3.4 px ->
    # IoU 66/134 = 0.4925 (not matched at the default 0.5, matched at 0.45).
    run = _dets(1, [(3.3, 0, 10, 10, 1, 0.9), (103.4, 0, 10, 10, 1, 0.8)])
    default = match_detections(reference, run)
    assert default.pairs.tolist() == [[0, 0]]
    assert default.missing.tolist() == [1] and default.extra.tolist() == [1]
    assert match_detections(reference, run, iou_threshold=0.45).pairs.tolist() == [[0, 0], [1, 1]]
    assert match_detections(reference, run, iou_threshold=0.51).pairs.tolist() == []


# --- scoring: the per-class AP50 row and crowd boxes -------------------------------------------------


def _coco(anns: list[tuple[int, list[float], int, int]]) -> dict:
    """Annotations from (image_id, bbox, category_id, iscrowd)."""
    return {
        "images": [{"id": i, "file_name": f"{i}.jpg", "width": 640, "height": 480} for i in (1, 2)],
        "annotations": [
            {
                "id": k + 1,
                "image_id": image_id,
                "bbox": box,
                "area": box[2] * box[3],
                "category_id": cat,
                "iscrowd": crowd,
            }
            for k, (image_id, box, cat, crowd) in enumerate(anns)
        ],
        "categories": coco_categories_json(),
    }


def test_per_class_ap50_row_is_the_iou_050_column():
    coco = _coco([(1, [0, 0, 100, 100], 1, 0), (2, [200, 100, 100, 100], 1, 0)])
    # Person 1 found exactly; person 2 by a box shifted 40 px: IoU 60*100 / (140*100) = 0.4286
    # -> a miss at every threshold (AP50 and AP both 1/2 recall -> 51/101);
    dets = [
        _dets(1, [(0, 0, 100, 100, 1, 0.9)]),
        _dets(2, [(240, 100, 100, 100, 1, 0.8)]),
    ]
    result = score(coco, dets, image_ids=[1, 2], label_map=canonical_label_map())
    person = next(c for c in result.per_category if c.category_id == 1)
    assert person.ap50 == pytest.approx(51 / 101, abs=1e-12)
    # ... now shifted 20 px: IoU 80/120 = 0.667 -> a match at 0.50..0.65 (4 of 10 thresholds).
    dets[1] = _dets(2, [(220, 100, 100, 100, 1, 0.8)])
    result = score(coco, dets, image_ids=[1, 2], label_map=canonical_label_map())
    person = next(c for c in result.per_category if c.category_id == 1)
    assert person.ap50 == pytest.approx(1.0, abs=1e-12)
    assert person.ap == pytest.approx((4 * 1 + 6 * 51 / 101) / 10, abs=1e-12)
    # ... and shifted 31 px: IoU 69/131 = 0.527 -> a match at 0.50 only: AP50 is that column alone.
    dets[1] = _dets(2, [(231, 100, 100, 100, 1, 0.8)])
    result = score(coco, dets, image_ids=[1, 2], label_map=canonical_label_map())
    person = next(c for c in result.per_category if c.category_id == 1)
    assert person.ap50 == pytest.approx(1.0, abs=1e-12)
    assert person.ap == pytest.approx((1 + 9 * 51 / 101) / 10, abs=1e-12)
    assert person.name == "person" and person.num_det == 2 and person.num_gt == 2


def test_crowd_boxes_are_not_counted_as_ground_truth():
    coco = _coco(
        [
            (1, [0, 0, 100, 100], 1, 0),
            (1, [300, 300, 200, 150], 1, 1),  # a crowd of persons
            (2, [10, 10, 50, 50], 18, 0),
            (2, [100, 10, 50, 50], 18, 0),
            (2, [200, 10, 50, 50], 18, 1),  # a crowd of dogs
            (2, [300, 10, 50, 50], 3, 1),  # a car crowd only
        ]
    )
    dets = [_dets(1, [(0, 0, 100, 100, 1, 0.9), (310, 310, 50, 50, 1, 0.5)])]
    result = score(coco, dets, image_ids=[1, 2], label_map=canonical_label_map())
    by_id = {c.category_id: c for c in result.per_category}
    assert (by_id[1].num_gt, by_id[18].num_gt, by_id[3].num_gt) == (1, 2, 0)
    assert (by_id[1].num_det, by_id[18].num_det, by_id[3].num_det) == (2, 0, 0)
    # The detection inside the person crowd is ignored, not a false positive: person AP 1.
    assert by_id[1].ap == pytest.approx(1.0, abs=1e-12)
    assert by_id[3].ap is None and by_id[3].ap50 is None
    # Only image 2 evaluated: its crowd dog is still not counted.
    only2 = score(coco, dets, image_ids=[2], label_map=canonical_label_map())
    assert {c.category_id: c.num_gt for c in only2.per_category}[18] == 2
    assert {c.category_id: c.num_gt for c in only2.per_category}[1] == 0


# --- the detection log keeps every bit ----------------------------------------------------------


def test_detection_log_keeps_full_float_precision():
    boxes = np.array([[0.1 + 0.2, 1 / 3, 2 / 3 * 640, 480 * 0.123456789012345678]])
    scores = np.array([0.7 + 1 / 3])  # not a float32 value
    dets = Detections(42, boxes, scores, np.array([90]))
    line = detections_to_line(dets)
    assert "0.30000000000000004" in line and "0.3333333333333333" in line
    back = detections_from_line(line)
    assert back.image_id == 42 and back.category_ids.tolist() == [90]
    assert back.boxes.tobytes() == boxes.tobytes() and back.scores.tobytes() == scores.tobytes()
    assert json.loads(line) == {
        "image_id": 42,
        "boxes": [0.30000000000000004, 0.3333333333333333, 426.66666666666663, 59.259258725925925],
        "scores": [1.0333333333333332],
        "category_ids": [90],
    }


# --- the whole pipeline: what the session is fed, which provider and which scorer ran ----------------

# Model input 24 high x 40 wide; images 64 wide x 48 high (red) and 30 wide x 50 high (blue).
MODEL_HW = (24, 40)
IMAGES = ((1, 64, 48, (255, 0, 0)), (2, 30, 50, (0, 0, 255)))
GT = {1: [Det(8, 4, 40, 20, 1)], 2: [Det(2, 30, 20, 16, 18)]}


def _pipeline_data(root: Path) -> Path:
    (root / "annotations").mkdir(parents=True)
    (root / "val2017").mkdir()
    images, anns = [], []
    for image_id, width, height, color in IMAGES:
        name = f"{image_id:012d}.png"
        Image.new("RGB", (width, height), color).save(root / "val2017" / name)
        images.append({"id": image_id, "file_name": name, "width": width, "height": height})
        for d in GT[image_id]:
            anns.append(
                {
                    "id": len(anns) + 1,
                    "image_id": image_id,
                    "category_id": d.category_id,
                    "bbox": [d.x, d.y, d.w, d.h],
                    "area": d.w * d.h,
                    "iscrowd": 0,
                }
            )
    data = {"images": images, "annotations": anns, "categories": coco_categories_json()}
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(data))
    return root


class _Spy:
    """Records the tensors fed to the model, the providers asked of onnxruntime and the scorer used."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        import faster_coco_eval
        import onnxruntime as ort
        import pycocotools.cocoeval

        self.tensors: list[np.ndarray] = []
        self.providers: list[list[str]] = []
        self.scorers: list[str] = []
        spy = self
        real_infer = ProviderSession.infer

        def infer(session: ProviderSession, tensor: np.ndarray):  # type: ignore[no-untyped-def]
            spy.tensors.append(np.array(tensor, copy=True))
            return real_infer(session, tensor)

        real_session = ort.InferenceSession

        def session(*args, **kwargs):  # type: ignore[no-untyped-def]
            spy.providers.append(list(kwargs.get("providers") or []))
            return real_session(*args, **kwargs)

        class PyCocoSpy(pycocotools.cocoeval.COCOeval):  # type: ignore[misc]
            def evaluate(self) -> None:
                spy.scorers.append("pycocotools")
                super().evaluate()

        class FastSpy(faster_coco_eval.COCOeval_faster):  # type: ignore[misc]
            def evaluate(self) -> None:
                spy.scorers.append("faster-coco-eval")
                super().evaluate()

        monkeypatch.setattr(ProviderSession, "infer", infer)
        monkeypatch.setattr(ort, "InferenceSession", session)
        monkeypatch.setattr(pycocotools.cocoeval, "COCOeval", PyCocoSpy)
        monkeypatch.setattr(faster_coco_eval, "COCOeval_faster", FastSpy)
        real_numpy = scoring_module.evaluate_bbox

        def numpy_scorer(*args, **kwargs):  # type: ignore[no-untyped-def]
            spy.scorers.append("numpy")
            return real_numpy(*args, **kwargs)

        monkeypatch.setattr(scoring_module, "evaluate_bbox", numpy_scorer)


@pytest.mark.parametrize("backend", ["pycocotools", "faster-coco-eval", "numpy"])
def test_pipeline_feeds_rgb_card_values_at_the_models_non_square_size(tmp_path, monkeypatch, backend):
    pytest.importorskip("faster_coco_eval")
    spy = _Spy(monkeypatch)
    root = _pipeline_data(tmp_path / "coco")
    model = save_table_detector(tmp_path / "m.onnx", root, GT, input_size=MODEL_HW)
    config = write_config(tmp_path / "c.yaml", model, root, scoring={"backend": backend})
    assert main(["--config", str(config), "--run-name", "r", "--quiet"]) == 0
    metrics = json.loads((tmp_path / "results" / "r" / "metrics.json").read_text())

    # Fed: [1, 3, 24, 40], image 1 red and image 2 blue, with the card's values in RGB order.
    assert [t.shape for t in spy.tensors] == [(1, 3, 24, 40), (1, 3, 24, 40)]
    for tensor, expected in zip(spy.tensors, (RED, BLUE), strict=True):
        for channel in range(3):
            np.testing.assert_allclose(tensor[0, channel], expected[channel], rtol=0, atol=2e-6)

    # Boxes rescaled to each image's own (non-square) width and height: a perfect score.
    assert metrics["stats"]["AP"] == pytest.approx(1.0, abs=1e-12)
    assert metrics["num_detections"] == 2

    # The provider asked for and the one recorded; the scorer the config names, and only it.
    assert spy.providers == [["CPUExecutionProvider"]]
    assert metrics["providers_used"] == ["CPUExecutionProvider"]
    assert spy.scorers == [backend]
    assert metrics["config"]["scoring"]["backend"] == backend


@pytest.mark.parametrize("backend", ["pycocotools", "faster-coco-eval", "numpy"])
def test_score_uses_the_backend_it_is_given(monkeypatch, backend):
    pytest.importorskip("faster_coco_eval")
    spy = _Spy(monkeypatch)
    coco = _coco([(1, [0, 0, 100, 100], 1, 0)])
    result = score(
        coco,
        [_dets(1, [(0, 0, 100, 100, 1, 0.9)])],
        image_ids=[1],
        label_map=canonical_label_map(),
        backend=backend,
    )
    assert spy.scorers == [backend]
    assert result.stats["AP"] == pytest.approx(1.0, abs=1e-12)
    assert (result.num_images, result.num_detections) == (1, 1)
