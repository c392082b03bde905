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

import pytest
from conftest import TINY_GT
from helpers import save_table_detector, write_config

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
        "images[5].id = '11': an image id must be an integer (the only offence)",
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

FAULTS = ANNOTATION_FAULTS


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
    code = main(["--config", str(setup.config), "--run-name", "new", "--quiet", *extra])
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
    assert metrics["stats"]["AP"] == pytest.approx(1.0, abs=1e-12)
