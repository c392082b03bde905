"""Fuzz of the command line and of annotation values: odd input is exit 2 in one line, never exit 3.

Bounded (a few dozen examples each, no deadline) so that it runs in seconds in CI. The command-line
fuzz runs the CLI in-process on a tiny COCO set, a perfect detector and one finished run folder;
the annotation fuzz reads a changed annotation file and scores a perfect detector on it with every
scorer: each either refuses the file (a DatasetError: exit 2) or scores it without a crash.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import TINY_GT, TINY_IMAGES
from helpers import make_coco, save_table_detector, write_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ssd_eval.cli import main
from ssd_eval.data.dataset import open_ground_truth
from ssd_eval.errors import EXIT_INTERNAL, SsdEvalError
from ssd_eval.evaluation.scoring import score
from ssd_eval.pipeline.decode import Detections

FUZZ = settings(
    max_examples=int(os.environ.get("SSD_EVAL_FUZZ_EXAMPLES", "40")),
    deadline=None,
    derandomize="SSD_EVAL_FUZZ_EXAMPLES" not in os.environ,  # CI: the same examples every run
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("fuzz")
    coco = make_coco(tmp / "coco", TINY_IMAGES, TINY_GT)
    model = save_table_detector(tmp / "perfect.onnx", coco, TINY_GT)
    config = write_config(tmp / "c.yaml", model, coco)
    with contextlib.redirect_stderr(io.StringIO()):
        assert main(["--config", str(config), "--run-name", "done", "--quiet"]) == 0
    fifo = tmp / "fifo"
    os.mkfifo(fifo)
    (tmp / "folder").mkdir()
    (tmp / "cwd").mkdir()
    return {
        "tmp": tmp,
        "coco": coco,
        "model": model,
        "config": config,
        "done": tmp / "results" / "done",
        "fifo": fifo,
        "folder": tmp / "folder",
    }


def _odd_value(world: dict[str, Path]) -> st.SearchStrategy[str]:
    return (
        st.sampled_from(
            [
                "-1",
                "0",
                "1",
                "3",
                "-0",
                "1e309",
                "nan",
                "NaN",
                "inf",
                "-inf",
                "",
                " ",
                "0x10",
                "1_000",
                "9" * 5000,
                "\udcff\udcfe",
                "ä",
                "\t",
                "a/b",
                "..",
                ".",
                "/",
                "0/0",
                "1/0",
                "2/1",
                "-1/3",
                "1/2",
                "3/2",
                "K/N",
                "cpu",
                "CPU",
                "pycocotools",
                "annotated",
                str(world["folder"]),
                str(world["fifo"]),
                "/dev/null",
                "/nonexistent/x",
                str(world["done"]),
                str(world["config"]),
                str(world["model"]),
                str(world["coco"]),
            ]
        )
        | st.text(max_size=8)
        | st.integers(-(2**70), 2**70).map(str)
        | st.floats().map(repr)
    )


FLAGS = {
    "run": [
        "--config",
        "--limit",
        "--provider",
        "--model",
        "--data",
        "--selection",
        "--output",
        "--run-name",
        "--resume",
        "--resume-or-start",
        "--shard",
        "--expect-ap",
        "--tolerance",
        "--baseline",
        "--max-baseline-drop",
        "--image-ids",
    ],
    "check": ["--config", "--data", "--model", "--provider", "--selection", "--limit"],
    "score": ["--scorer", "--data"],
    "compare": [
        "--reference",
        "--config",
        "--resume",
        "--shard",
        "--provider",
        "--limit",
        "--data",
        "--model",
        "--output",
        "--run-name",
        "--max-ap-drop",
        "--max-class-ap-drop",
        "--min-matched",
        "--max-extra",
        "--max-score-diff",
        "--max-box-diff",
        "--min-full-agreement",
    ],
    "merge": ["--output", "--scorer", "--data"],
    "baseline": ["--output", "--name", "--run", "--note"],
}
POSITIONAL = {"score": "done", "merge": "done", "baseline": "done", "compare": "done"}


def _run_cli(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(argv)
    return code, err.getvalue()


def _assert_no_internal_error(argv: list[str], code: int, err: str) -> None:
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("WARNING", "INFO"))]
    assert code != EXIT_INTERNAL, (argv, err)
    assert "Traceback" not in err, (argv, err)
    if code == 2:
        assert len(lines) == 1, (argv, lines)


@FUZZ
@given(data=st.data())
def test_odd_command_line_values_never_end_in_an_internal_error(
    world: dict[str, Path], data: st.DataObject
) -> None:
    command = data.draw(st.sampled_from(sorted(FLAGS)), label="command")
    flags = data.draw(
        st.lists(st.sampled_from(FLAGS[command]), min_size=1, max_size=3, unique=True), label="flags"
    )
    argv = [command] if command != "run" else []
    if command in POSITIONAL and data.draw(st.booleans(), label="positional is the run folder"):
        argv.append(str(world[POSITIONAL[command]]))
    elif command in POSITIONAL:
        argv.append(data.draw(_odd_value(world), label="positional"))
    if command in ("run", "check") and "--config" not in flags:
        argv += ["--config", str(world["config"])]
    for flag in flags:
        argv += [flag, data.draw(_odd_value(world), label=flag)]
    if command in ("run", "compare") and "--output" not in flags:
        argv += ["--output", str(world["tmp"] / "out")]
    argv.append("--quiet")
    # Relative paths among the odd values (an --output of "42") land in the fuzz's own folder.
    here = Path.cwd()
    os.chdir(world["tmp"] / "cwd")
    try:
        code, err = _run_cli(argv)
    finally:
        os.chdir(here)
    _assert_no_internal_error(argv, code, err)


# --- annotation values ---------------------------------------------------------------------------

ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.sampled_from([2**53, 2**53 + 1, -(2**53), 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.lists(st.integers(-5, 100) | st.floats(-5, 100), max_size=6),
    st.lists(st.lists(st.floats(-5, 100) | st.integers(-5, 100), max_size=8), max_size=3),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)
FIELDS = {
    "images": ["id", "file_name", "width", "height"],
    "annotations": ["id", "image_id", "category_id", "bbox", "area", "iscrowd", "segmentation", "ignore"],
    "categories": ["id", "name", "supercategory"],
}


def _perfect(data: dict[str, Any]) -> list[Detections]:
    """The annotation file's own well-formed boxes as detections (what a perfect detector returns)."""
    by_image: dict[int, list[dict]] = {}
    for ann in data["annotations"]:
        if isinstance(ann, dict) and ann.get("iscrowd") == 0:
            by_image.setdefault(ann["image_id"], []).append(ann)
    return [
        Detections(
            image_id,
            np.array([a["bbox"] for a in anns], dtype=np.float64).reshape(-1, 4),
            np.full(len(anns), 0.9),
            np.array([a["category_id"] for a in anns], dtype=np.int64),
        )
        for image_id, anns in sorted(by_image.items())
    ]


@pytest.fixture(scope="module")
def annotation_data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    coco = make_coco(tmp_path_factory.mktemp("ann") / "coco", TINY_IMAGES, TINY_GT)
    return json.loads((coco / "annotations" / "instances_val2017.json").read_text())


@FUZZ
@given(data=st.data())
def test_odd_annotation_values_are_refused_or_scored(
    annotation_data: dict[str, Any], tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    tree = json.loads(json.dumps(annotation_data))
    for _ in range(data.draw(st.integers(1, 3), label="changes")):
        section = data.draw(st.sampled_from(sorted(FIELDS)), label="section")
        entries = tree[section]
        index = data.draw(st.integers(0, len(entries) - 1), label="index")
        key = data.draw(st.sampled_from(FIELDS[section]), label="key")
        if data.draw(st.booleans(), label="delete"):
            entries[index].pop(key, None)
        else:
            entries[index][key] = data.draw(ODD_VALUES, label="value")
    folder = tmp_path_factory.mktemp("odd")
    path = folder / "ann.json"
    path.write_text(json.dumps(tree))  # NaN and Infinity as Python's json writes them
    try:  # what every command reads first (the images themselves are not needed to score)
        gt = open_ground_truth(path, folder, selection="all")
    except SsdEvalError as exc:
        assert "\n" not in str(exc)
        return
    detections = _perfect(gt.coco_json)
    for backend in ("numpy", "pycocotools", "faster-coco-eval"):
        try:
            score(gt.coco_json, detections, image_ids=gt.image_ids, label_map=gt.label_map, backend=backend)
        except SsdEvalError as exc:
            assert "\n" not in str(exc)
