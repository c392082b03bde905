"""The fault table: inputs that once gave a silent wrong AP (or a crash after inference) end in exit 2.

Each row breaks one thing in a working setup (the tiny COCO set, a perfect table detector, a
config), runs the CLI in-process and checks: exit code 2, exactly one stderr line, no traceback,
the line names the fault, and every file that existed before the run is still there, unchanged.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from conftest import TINY_GT
from helpers import Det, save_table_detector, write_config
from onnx import TensorProto, helper, numpy_helper

from ssd_eval.cli import main


@dataclass(frozen=True)
class Setup:
    tmp: Path
    coco: Path
    model: Path
    config: Path

    @property
    def annotation_file(self) -> Path:
        return self.coco / "annotations" / "instances_val2017.json"


@dataclass(frozen=True)
class Fault:
    name: str
    apply: Callable[[Setup], list[str]]  # breaks the setup; returns extra CLI arguments
    expect: str  # a part of the one stderr line


def _annotations(change: Callable[[dict], None]) -> Callable[[Setup], list[str]]:
    def apply(setup: Setup) -> list[str]:
        data = json.loads(setup.annotation_file.read_text())
        change(data)
        setup.annotation_file.write_text(json.dumps(data))
        return []

    return apply


def _duplicate_image(data: dict) -> None:
    data["images"].append(dict(data["images"][0]))


def _string_ids(data: dict) -> None:
    for image in data["images"]:
        image["id"] = str(image["id"])
    for ann in data["annotations"]:
        ann["image_id"] = str(ann["image_id"])


def _one_string_image_id(data: dict) -> None:
    data["annotations"][2]["image_id"] = str(data["annotations"][2]["image_id"])


def _set_ann(index: int, key: str, value: object) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        if value is None:
            del data["annotations"][index][key]
        else:
            data["annotations"][index][key] = value

    return change


def _set_image(index: int, key: str, value: object) -> Callable[[dict], None]:
    def change(data: dict) -> None:
        data["images"][index][key] = value

    return change


def _duplicate_annotation_id(data: dict) -> None:
    data["annotations"][3]["id"] = data["annotations"][1]["id"]


def _duplicate_category(data: dict) -> None:
    data["categories"].append(dict(data["categories"][0]))


# tiny_coco: images 1, 2, 5, 7, 9, 11 (in this order); annotations 0-6 on images 1, 1, 2, 5, 5, 7, 9.
ANNOTATION_FAULTS = [
    Fault("image listed twice", _annotations(_duplicate_image), "images[6].id = 1: listed twice"),
    Fault(
        "all ids as strings", _annotations(_string_ids), "images[0].id = '1': an image id must be an integer"
    ),
    Fault(
        "one string image_id",
        _annotations(_one_string_image_id),
        "annotations[2].image_id = '2': expected the integer id of an image",
    ),
    Fault(
        "string images[].id",
        _annotations(_set_image(5, "id", "11")),
        "images[5].id = '11': an image id must be an integer with |id| <= 9007199254740991 (2**53 - 1: "
        "exact in float64, as the scorers hold ids) (the only offence)",
    ),
    Fault("image width as text", _annotations(_set_image(1, "width", "50")), "images[1].width = '50'"),
    Fault(
        "annotation on a missing image",
        _annotations(_set_ann(4, "image_id", 4)),
        "annotations[4].image_id = 4: expected the integer id of an image listed in `images`",
    ),
    Fault(
        "category not listed",
        _annotations(_set_ann(0, "category_id", 12)),
        "annotations[0].category_id = 12: expected the integer id of a category",
    ),
    Fault(
        "annotation id twice", _annotations(_duplicate_annotation_id), "annotations[3].id = 2: listed twice"
    ),
    Fault("annotation id 0", _annotations(_set_ann(0, "id", 0)), "annotations[0].id = 0"),
    Fault("category listed twice", _annotations(_duplicate_category), "categories[80].id = 1: listed twice"),
    Fault(
        "bbox of three numbers",
        _annotations(_set_ann(6, "bbox", [1, 2, 3])),
        "annotations[6].bbox = [1, 2, 3]",
    ),
    Fault(
        "bbox with text",
        _annotations(_set_ann(6, "bbox", [1, 2, "3", 4])),
        "annotations[6].bbox = [1, 2, '3', 4]: expected four numbers",
    ),
    Fault(
        "bbox with NaN",
        _annotations(_set_ann(5, "bbox", [1, 2, float("nan"), 4])),
        "annotations[5].bbox = [1, 2, nan, 4]: expected finite numbers",
    ),
    Fault(
        "bbox negative width",
        _annotations(_set_ann(1, "bbox", [30, 10, -20, 30])),
        "annotations[1].bbox = [30, 10, -20, 30]: width and height must be >= 0",
    ),
    Fault("no iscrowd", _annotations(_set_ann(3, "iscrowd", None)), "annotations[3].iscrowd is missing"),
    Fault("no area", _annotations(_set_ann(3, "area", None)), "annotations[3].area is missing"),
]


def _patched_model(
    name: str,
    make_nodes: Callable[[str, str], list],
    *,
    elem_type: int = TensorProto.FLOAT,
    shape: list | None = None,
    config: dict | None = None,
) -> Callable[[Setup], list[str]]:
    """The perfect detector with output `name` rewritten by `make_nodes(original, name)`."""

    def apply(setup: Setup) -> list[str]:
        model = onnx.load(setup.model)
        original = f"{name}_original"
        for node in model.graph.node:
            node.output[:] = [original if out == name else out for out in node.output]
        model.graph.node.extend(make_nodes(original, name))
        for index, out in enumerate(model.graph.output):
            if out.name == name:
                dims = shape if shape is not None else [d.dim_param or d.dim_value for d in _dims(out)]
                model.graph.output[index].CopyFrom(helper.make_tensor_value_info(name, elem_type, dims))
        path = setup.tmp / f"broken-{name}.onnx"
        onnx.save(model, path)
        if config:
            data = yaml.safe_load(setup.config.read_text())
            for section, values in config.items():
                data.setdefault(section, {}).update(values)
            setup.config.write_text(yaml.safe_dump(data))
        return ["--model", str(path)]

    return apply


def _dims(value_info: onnx.ValueInfoProto) -> list:
    return list(value_info.type.tensor_type.shape.dim)


def _const(name: str, values: np.ndarray) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(values, name))


def _transpose(src: str, dst: str) -> list:
    return [helper.make_node("Transpose", [src], [dst], perm=[0, 2, 1])]


def _times(factor: float) -> Callable[[str, str], list]:
    def nodes(src: str, dst: str) -> list:
        return [
            _const(f"{dst}_k", np.array(factor, np.float32)),
            helper.make_node("Mul", [src, f"{dst}_k"], [dst]),
        ]

    return nodes


def _minus(amount: float) -> Callable[[str, str], list]:
    def nodes(src: str, dst: str) -> list:
        return [
            _const(f"{dst}_k", np.array(amount, np.float32)),
            helper.make_node("Sub", [src, f"{dst}_k"], [dst]),
        ]

    return nodes


def _swap_x(src: str, dst: str) -> list:
    """x2, y1, x1, y2: every box with a width gets x2 < x1."""
    return [
        _const(f"{dst}_order", np.array([2, 1, 0, 3], np.int64)),
        helper.make_node("Gather", [src, f"{dst}_order"], [dst], axis=2),
    ]


def _to_float(src: str, dst: str) -> list:
    return [helper.make_node("Cast", [src], [dst], to=TensorProto.FLOAT)]


MODEL_FAULTS = [
    Fault(
        "bboxes declared [1, 4, N]",
        _patched_model("bboxes", _transpose, shape=[1, 4, "n"]),
        "output 'bboxes' is tensor(float) [1, 4, 'n']; expected float [1, N, 4] (normalized x1, y1, x2, y2 "
        "per row): this is the [1, 4, N] layout",
    ),
    Fault(
        "bboxes [1, 4, N] with symbolic shape",
        _patched_model("bboxes", _transpose, shape=[1, "a", "b"]),
        "output 'bboxes' is float32 [1, 4, 2]; expected float [1, N, 4]",
    ),
    Fault(
        "boxes in pixels",
        _patched_model("bboxes", _times(640.0)),
        # image 1 is 64x48, its first box (4, 4, 30, 30): x1 = 4 / 64 * 640 = 40, y1 = 4 / 48 * 640 = 53.33
        "output 'bboxes' holds [40, 53.33, 340, 453.3] (detection 0; 2 of 2 beyond [-4, 5]); expected x1, "
        "y1, x2, y2 normalized to [0, 1]: these look like pixels",
    ),
    Fault(
        "x2 < x1",
        _patched_model("bboxes", _swap_x),
        "with x2 < x1 or y2 < y1); expected corners x1, y1, x2, y2",
    ),
    Fault(
        "float labels",
        _patched_model("labels", _to_float, elem_type=TensorProto.FLOAT),
        "output 'labels' is tensor(float) [1, 'n']; expected integer [1, N] (labels 1..80): float labels "
        "would be truncated",
    ),
    Fault(
        "negative scores under a score cut",
        _patched_model("scores", _minus(1.0), config={"decode": {"score_threshold": 0.5}}),
        "image 1: the model's output 'scores' holds -0.1 (detection 0; 2 of 2 outside [0, 1])",
    ),
    Fault(
        "scores as logits",
        _patched_model("scores", _times(10.0)),
        "image 1: the model's output 'scores' holds 9 (detection 0; 2 of 2 outside [0, 1])",
    ),
]


def _run_config(**preprocess: object) -> Callable[[Setup], list[str]]:
    def apply(setup: Setup) -> list[str]:
        data = yaml.safe_load(setup.config.read_text())
        data["preprocess"] = preprocess
        setup.config.write_text(yaml.safe_dump(data))
        return []

    return apply


def _compare_config(**preprocess: object) -> Callable[[Setup], list[str]]:
    """A comparison config of the perfect detector against itself: `compare --config` replaces the run."""

    def apply(setup: Setup) -> list[str]:
        data = {
            "model": {"path": str(setup.model)},
            "reference": {"name": "ref", "provider": {"name": "cpu"}},
            "runs": [{"name": "again", "provider": {"name": "cpu"}}],
            "dataset": {"root": str(setup.coco)},
            "output": {"dir": str(setup.tmp / "results")},
            "preprocess": preprocess,
        }
        path = setup.tmp / "compare.yaml"
        path.write_text(yaml.safe_dump(data))
        return ["compare", "--config", str(path)]

    return apply


IMAGENET_255 = {"mean": [123.675, 116.28, 103.53], "std": [58.395, 57.12, 57.375]}
SCALE_HINT = "has values above 1, which suggests the 0-255 scale"
CONFIG_FAULTS = [
    Fault(
        "mean and std on 0-255",
        _run_config(**IMAGENET_255),
        f"preprocess.mean: [123.675, 116.28, 103.53] {SCALE_HINT}",
    ),
    Fault(
        "std on 0-255",
        _run_config(std=[58.395, 57.12, 57.375]),
        f"preprocess.std: [58.395, 57.12, 57.375] {SCALE_HINT}",
    ),
    Fault(
        "std zero",
        _run_config(std=[0.229, 0, 0.225]),
        "preprocess.std: [0.229, 0, 0.225]: every value must be in (0, 1]",
    ),
    Fault(
        "std negative",
        _run_config(std=[-0.229, 0.224, 0.225]),
        "preprocess.std: [-0.229, 0.224, 0.225]: every value",
    ),
    Fault(
        "mean negative",
        _run_config(mean=[-0.485, 0.456, 0.406]),
        "preprocess.mean: [-0.485, 0.456, 0.406]: every value must be in [0, 1]",
    ),
    Fault("size zero", _run_config(size=0), "preprocess.size: must be >= 32 or null, got 0"),
    Fault("size negative", _run_config(size=-1200), "preprocess.size: must be >= 32 or null, got -1200"),
    Fault("workers negative", _run_config(workers=-2), "preprocess.workers: must be >= 0 or null, got -2"),
    Fault(
        "compare: mean on 0-255",
        _compare_config(**IMAGENET_255),
        f"compare.yaml: preprocess.mean: [123.675, 116.28, 103.53] {SCALE_HINT}",
    ),
    Fault(
        "compare: std zero",
        _compare_config(std=[0.229, 0.224, 0]),
        "compare.yaml: preprocess.std: [0.229, 0.224, 0]: every value must be in (0, 1]",
    ),
    Fault(
        "compare: size zero",
        _compare_config(size=0),
        "compare.yaml: preprocess.size: must be >= 32 or null, got 0",
    ),
]

FAULTS = ANNOTATION_FAULTS + MODEL_FAULTS + CONFIG_FAULTS


@pytest.fixture
def setup(tmp_path: Path, tiny_coco: Path) -> Setup:
    model = save_table_detector(tmp_path / "perfect.onnx", tiny_coco, TINY_GT)
    config = write_config(tmp_path / "c.yaml", model, tiny_coco)
    earlier = tmp_path / "results" / "earlier"
    earlier.mkdir(parents=True)
    (earlier / "metrics.json").write_text('{"stats": {"AP": 0.5}}')
    (earlier / "detections.jsonl").write_text('{"image_id": 1}\n')
    return Setup(tmp_path, tiny_coco, model, config)


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_fault_is_one_line_exit_2_and_keeps_every_file(setup: Setup, fault: Fault, capsys) -> None:
    extra = fault.apply(setup)
    before = _snapshot(setup.tmp)
    capsys.readouterr()
    command = extra if extra[:1] == ["compare"] else ["--config", str(setup.config), *extra]
    code = main([*command, "--run-name", "new", "--quiet"])
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert code == 2, captured.err
    assert len(lines) == 1, lines
    assert lines[0].startswith("ssd-eval: error: ") and "Traceback" not in captured.err
    assert fault.expect in lines[0], lines[0]
    after = _snapshot(setup.tmp)
    assert {k: after.get(k) for k in before} == before


def test_the_setup_itself_scores_ap_1(setup: Setup, capsys) -> None:
    """Without a fault the same setup passes: the faults above, not the setup, make the exit 2."""
    assert main(["--config", str(setup.config), "--run-name", "ok", "--quiet"]) == 0
    metrics = json.loads((setup.tmp / "results" / "ok" / "metrics.json").read_text())
    assert metrics["stats"]["AP"] == pytest.approx(1.0, abs=1e-12) and metrics["warnings"] == []


def test_more_than_200_detections_is_a_warning_in_the_report(setup: Setup, capsys) -> None:
    """Not an error, not silence: metrics.json, the printed summary and summary.md say so."""
    # Image 1 gets its 2 true boxes and 199 far-off low-score boxes: 201 detections.
    extra = [Det(0, 0, 1, 1, 90, 0.06)] * 199
    dets = {**TINY_GT, 1: [*TINY_GT[1], *extra]}
    model = save_table_detector(setup.tmp / "many.onnx", setup.coco, dets)
    assert main(["--config", str(setup.config), "--model", str(model), "--run-name", "many"]) == 0
    expected = "1 image(s) got more than the model card's 200 detections (most: 201 on image 1)"
    run_dir = setup.tmp / "results" / "many"
    warnings = json.loads((run_dir / "metrics.json").read_text())["warnings"]
    assert len(warnings) == 1 and warnings[0].startswith(expected)
    assert f"WARNING    {expected}" in capsys.readouterr().out
    assert f"**Warning:** {expected}" in (run_dir / "summary.md").read_text()


def test_an_output_fault_on_a_later_image_keeps_the_images_done(setup: Setup, capsys) -> None:
    """Image 5 (the third) gets a negative score: exit 2 naming it; images 1 and 2 stay in the log."""
    dets = {**TINY_GT, 5: [Det(0, 0, 60, 45, 1, score=-0.25), *TINY_GT[5][1:]]}
    model = save_table_detector(setup.tmp / "late.onnx", setup.coco, dets)
    before = _snapshot(setup.tmp)
    assert main(["--config", str(setup.config), "--model", str(model), "--run-name", "late", "--quiet"]) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in lines[0]
    assert "image 5: the model's output 'scores' holds -0.25 (detection 0; 1 of 2 outside [0, 1])" in lines[0]
    log = (setup.tmp / "results" / "late" / "detections.jsonl").read_text().splitlines()
    assert [json.loads(line)["image_id"] for line in log] == [1, 2]
    after = _snapshot(setup.tmp)
    assert {k: after.get(k) for k in before} == before
