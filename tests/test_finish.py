"""The end of every scoring path (`ssd_eval.engine.finish`): `finish_run` on a prepared run folder, with
the clock stubbed, and when the COCO results file derived from the log is written again.

The folder is made once by a real run of the perfect detector on tests/conftest.py's tiny set (AP 1.0,
7 detections on the 5 annotated images); `finish_run` is then called on it directly with inputs
written here, and what it returns and writes is checked against them.
"""

from __future__ import annotations

import dataclasses
import json
import os
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import TINY_GT
from helpers import save_table_detector, write_config

from ssd_eval.config.run import ExpectedConfig, load_config
from ssd_eval.data.dataset import open_ground_truth
from ssd_eval.engine import finish
from ssd_eval.engine.finish import _is_newer_own_file, finish_run
from ssd_eval.engine.run_folder import read_identity, read_run_info, write_run_info
from ssd_eval.engine.runner import RunOptions, run_evaluation
from ssd_eval.evaluation.detection_log import read_detection_log
from ssd_eval.pipeline.decode import Detections
from ssd_eval.reports.baseline import baseline_from_metrics, read_baseline
from ssd_eval.reports.results import (
    SkippedImage,
    StageTiming,
    machine_info,
    package_versions,
    result_from_json,
)


@pytest.fixture
def run(tmp_path: Path, tiny_coco: Path) -> Path:
    model = save_table_detector(tmp_path / "perfect.onnx", tiny_coco, TINY_GT)
    config = load_config(
        write_config(
            tmp_path / "c.yaml", model, tiny_coco, output={"run_name": "r"}, report={"pr_curve": False}
        )
    )
    return Path(run_evaluation(config, RunOptions()).run_dir)


def _finish(folder: Path, monkeypatch, **changes: object):
    """finish_run on `folder` with its own config, ground truth, log, run_info and identity; the
    scoring takes 2.5 s by a stubbed clock."""
    ticks = iter([10.0, 12.5])
    monkeypatch.setattr(finish, "time", SimpleNamespace(perf_counter=lambda: next(ticks)))
    config = load_config(folder / "config.yaml")
    gt = open_ground_truth(
        config.dataset.root / config.dataset.annotations, config.dataset.root / config.dataset.images
    )
    info = read_run_info(folder)
    identity = read_identity(folder)
    assert info is not None and identity is not None
    arguments: dict = {
        "detections": read_detection_log(folder / "detections.jsonl"),
        "skipped": {},
        "timings": {"infer": StageTiming(1.0, 200.0, 200.0, 200.0, 5)},
        "wall_s": 3.0,
        "images_per_s": 2.0,
        **changes,
    }
    return finish_run(folder, config, gt, info=info, identity=identity, **arguments)


def test_finish_run_scores_the_log_and_writes_metrics(run, monkeypatch):
    skipped = {
        9: SkippedImage(9, "000000000009.png", "image 9: broken"),
        2: SkippedImage(2, "000000000002.png", "image 2: broken"),
    }
    detections = read_detection_log(run / "detections.jsonl")
    kept = {i: d for i, d in detections.items() if i not in skipped}
    (run / "detections.json").unlink()  # written again from the detections given
    result = _finish(
        run,
        monkeypatch,
        detections=kept,
        skipped=skipped,
        wall_s=12.34567,
        images_per_s=0.123456,
        warnings=("3 images had no record in the file",),
    )
    # Images 2 and 9 held 2 of the 4 persons: person AP 2 of 4 found (51/101), dog 1, toothbrush 1.
    assert result.stats["AP"] == pytest.approx((51 / 101 + 1 + 1) / 3, abs=1e-12)
    assert result.num_detections == 5 and result.run_dir == str(run)
    assert (result.wall_s, result.images_per_s) == (12.346, 0.1235)
    assert result.timings == {
        "infer": StageTiming(1.0, 200.0, 200.0, 200.0, 5),
        "score": StageTiming(2.5, 2500.0, 2500.0, 2500.0, 1),
    }
    assert result.skipped_images == (skipped[2], skipped[9])
    assert result.warnings == ("3 images had no record in the file",)
    assert result.providers_used == ("CPUExecutionProvider",) and result.providers_requested == ("cpu",)
    assert result.model.path.endswith("perfect.onnx") and result.config["output"]["run_name"] == "r"
    assert (result.versions, result.machine) == (package_versions(), machine_info())
    assert [entry.verb for entry in result.history] == ["run"]
    # metrics.json is the result; detections.json the 5 detections given.
    assert result_from_json(json.loads((run / "metrics.json").read_text()), result.identity) == result
    records = json.loads((run / "detections.json").read_text())
    assert sorted({r["image_id"] for r in records}) == [1, 5, 7]
    assert (run / "cocoeval.txt").read_text().count("Average Precision") == 6


def test_more_detections_than_the_card_is_a_warning(run, monkeypatch):
    detections = read_detection_log(run / "detections.jsonl")
    one = detections[7]
    many = Detections(
        image_id=7,
        boxes=one.boxes.repeat(201, axis=0),
        scores=one.scores.repeat(201),
        category_ids=one.category_ids.repeat(201),
    )
    result = _finish(run, monkeypatch, detections={**detections, 7: many}, warnings=("first",))
    assert result.warnings == (
        "first",
        "1 image(s) got more than the model card's 200 detections (most: 201 on image 7); the model keeps "
        "more than ssd-10 does, so its AP is not comparable with the card's",
    )


def test_the_results_file_is_written_again_only_when_it_is_older_than_the_log(run, monkeypatch):
    results, log = run / "detections.json", run / "detections.jsonl"
    # Newer than the log: kept as it is.
    results.write_text("[]")
    os.utime(results, (log.stat().st_mtime + 10,) * 2)
    _finish(run, monkeypatch)
    assert results.read_text() == "[]"
    # Older: written again from the log.
    os.utime(results, (log.stat().st_mtime - 10,) * 2)
    _finish(run, monkeypatch)
    assert len(json.loads(results.read_text())) == 7
    # A link (even a newer one) is replaced by a file of the folder's own; its target is not touched.
    target = run.parent / "elsewhere.json"
    target.write_text("[]")
    results.unlink()
    results.symlink_to(target)
    os.utime(target, (log.stat().st_mtime + 10,) * 2)
    _finish(run, monkeypatch)
    assert not results.is_symlink() and len(json.loads(results.read_text())) == 7
    assert target.read_text() == "[]"


def test_is_newer_own_file(tmp_path):
    path, than = tmp_path / "a", tmp_path / "b"
    assert _is_newer_own_file(path, than) is False  # missing
    path.write_text("x")
    assert _is_newer_own_file(path, than) is True  # `than` missing
    than.write_text("y")
    for offset, newer in ((-1, False), (0, True), (1, True)):
        os.utime(path, (than.stat().st_mtime + offset,) * 2)
        assert _is_newer_own_file(path, than) is newer, offset
    link = tmp_path / "link"
    link.symlink_to(path)
    assert _is_newer_own_file(link, than) is False
    folder = tmp_path / "folder"
    folder.mkdir()
    assert _is_newer_own_file(folder, tmp_path / "missing") is False


def test_gate_scored_run_gates_the_result_against_the_configs_figure(run, monkeypatch):
    result = _finish(run, monkeypatch)
    config = load_config(run / "config.yaml")
    passed = finish.gate_scored_run(
        result, dataclasses.replace(config, expected=ExpectedConfig(1.0)), None, verb="score"
    )
    assert passed.verdict == "PASS" and passed.exit_code == 0
    failed = finish.gate_scored_run(
        result, dataclasses.replace(config, expected=ExpectedConfig(0.5)), None, verb="score"
    )
    assert failed.verdict == "FAIL" and failed.exit_code == 1
    assert not (run / "gate_baseline.json").exists()


def test_the_configs_scorer_writes_cocoeval_txt(run, monkeypatch):
    """cocoeval.txt is the printout of the scorer the config names: pycocotools' starts with its index
    notes, the numpy scorer's with the first stat line."""
    _finish(run, monkeypatch)
    assert (run / "cocoeval.txt").read_text().splitlines()[0] == "creating index..."
    config = load_config(run / "config.yaml")
    (run / "config.yaml").write_text((run / "config.yaml").read_text().replace("pycocotools", "numpy"))
    assert load_config(run / "config.yaml").scoring.backend == "numpy" != config.scoring.backend
    result = _finish(run, monkeypatch)
    lines = (run / "cocoeval.txt").read_text().splitlines()
    assert lines[0] == " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 1.000"
    assert len(lines) == 12 and result.stats["AP"] == pytest.approx(1.0, abs=1e-12)


def test_the_pictures_are_drawn_for_this_run(run, monkeypatch):
    asked: list[tuple] = []

    def drawing(folder, report, gt, detections, *, precision, title):  # type: ignore[no-untyped-def]
        asked.append((folder, report, sorted(gt.image_ids), sorted(detections), precision.shape, title))
        return {"pr_curve": None, "pr_curve_note": "not drawn here"}

    monkeypatch.setattr(finish, "draw_run_pictures", drawing)
    result = _finish(run, monkeypatch)
    report = load_config(run / "config.yaml").report
    # precision: 10 IoU thresholds, 101 recall points, the 80 categories.
    assert asked == [
        (run, report, [1, 2, 5, 7, 9], [1, 2, 5, 7, 9], (10, 101, 80), "perfect.onnx on CPUExecutionProvider")
    ]
    assert result.pictures == {"pr_curve": None, "pr_curve_note": "not drawn here"}
    # A run on two providers (a fallback among them) names both in the title.
    info = read_run_info(run)
    assert info is not None
    both = ("OpenVINOExecutionProvider", "CPUExecutionProvider")
    write_run_info(run, dataclasses.replace(info, providers_used=both))
    asked.clear()
    _finish(run, monkeypatch)
    assert asked[0][-1] == "perfect.onnx on OpenVINOExecutionProvider, CPUExecutionProvider"


def test_a_baseline_is_copied_into_the_folder_it_gates(run, monkeypatch):
    result = _finish(run, monkeypatch)
    metrics = json.loads((run / "metrics.json").read_text())
    baseline = baseline_from_metrics(metrics, name="own", source=str(run))
    config = load_config(run / "config.yaml")
    gate = dataclasses.replace(config.gate, baseline=run / "own.json", max_baseline_drop=0.0)
    evaluation = finish.gate_scored_run(
        result, dataclasses.replace(config, gate=gate), baseline, verb="merge"
    )
    assert evaluation.verdict == "PASS"
    assert [(c.rule, c.state) for c in evaluation.gate] == [("AP drop vs baseline own <= 0.0000", "passed")]
    assert read_baseline(run / "gate_baseline.json") == baseline
    suite = ET.parse(run / "junit.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("name") == "ssd-eval merge r"
