"""Re-scoring a run folder without a model (engine/rescore.py), on run folders written by hand.

The folders hold the tiny COCO set's ground truth as detections (tests/conftest.py): a perfect detector,
AP 1.0 by definition; without image 2's one person it finds 3 of 4 persons, which a hand count scores.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from pathlib import Path

import pytest
from conftest import TINY_GT
from helpers import Det, make_identity, write_run_folder

from ssd_eval.config.run import RunConfig
from ssd_eval.engine.rescore import (
    check_complete,
    check_ground_truth,
    previous_timings,
    read_run,
    require_run_info,
    rescore_run,
    run_times,
    scoring_ground_truth,
    with_overrides,
)
from ssd_eval.engine.run_folder import load_run_config, read_history, read_identity
from ssd_eval.errors import DatasetError, OutputError
from ssd_eval.pipeline.decode import Detections
from ssd_eval.reports.results import Provenance, SkippedImage, StageTiming

ANNOTATED = (1, 2, 5, 7, 9)  # image 11 has no annotation
# Person AP without image 2's person (the only one at score 0.9 that is missing): recall 3/4 at
# precision 1, 76 of 101 recall points, at every IoU threshold; dog and toothbrush 1.0.
AP_WITHOUT_2 = (76 / 101 + 1 + 1) / 3


def refused(call, *args, **kwargs) -> str:
    with pytest.raises(OutputError) as info:
        call(*args, **kwargs)
    return str(info.value)


def entry(verb: str, inferred: int = 0, wall_s: float = 0.0, **timings: StageTiming) -> Provenance:
    return Provenance("2026-01-01T00:00:00Z", "2026-01-01T00:01:00Z", (), "t", None, verb, "finished",
                      inferred, wall_s, dict(timings))  # fmt: skip


def test_a_perfect_run_rescores_to_ap_1_with_its_recorded_timings(tmp_path, tiny_coco):
    folder = write_run_folder(
        tmp_path / "r", tiny_coco, TINY_GT, history=[("run", 3, 1.5), ("resume", 2, 0.5)]
    )
    result = rescore_run(folder)
    assert result.stats["AP"] == pytest.approx(1.0, abs=1e-12)
    # The inference parts add up: 5 images in 2.0 s, 2.5 images/s; infer 0.75 + 0.25 s.
    assert (result.wall_s, result.images_per_s) == (2.0, 2.5)
    assert result.timings["infer"].count == 5 and result.timings["infer"].total_s == 1.0
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["stats"]["AP"] == pytest.approx(1.0, abs=1e-12)
    history = read_history(folder)
    assert [e.verb for e in history] == ["run", "resume", "score"]
    assert history[-1].command == ("python", "-c", "ssd_eval.score(...)")
    rescore_run(folder, command=["ssd-eval", "score", str(folder)])
    assert read_history(folder)[-1].command == ("ssd-eval", "score", str(folder))


def test_a_rescore_with_another_scorer_and_a_moved_data_set(tmp_path, tiny_coco):
    missing_2 = {k: v for k, v in TINY_GT.items() if k != 2}
    folder = write_run_folder(tmp_path / "r", tiny_coco, missing_2, skipped={2: "truncated"})
    moved = tiny_coco.rename(tmp_path / "moved")
    with pytest.raises(DatasetError):
        rescore_run(folder)
    result = rescore_run(folder, backend="numpy", data=moved)
    assert result.stats["AP"] == pytest.approx(AP_WITHOUT_2, abs=1e-12)
    assert result.skipped_images == (SkippedImage(2, "000000000002.png", "truncated"),)
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["config"]["scoring"]["backend"] == "numpy"
    assert metrics["config"]["dataset"]["root"] == str(moved)


def test_overrides_replace_the_scorer_and_the_data_root(tmp_path, monkeypatch):
    recorded = RunConfig()
    assert with_overrides(recorded, backend=None, data=None) == recorded
    scorer = with_overrides(recorded, backend="numpy", data=None)
    assert scorer.scoring.backend == "numpy" and scorer.dataset == recorded.dataset
    monkeypatch.chdir(tmp_path)
    moved = with_overrides(recorded, backend=None, data=Path("coco/../data"))
    assert moved.dataset.root == tmp_path / "data"  # absolute, as every recorded path
    assert moved.dataset.source is None  # the root given replaces the download
    assert recorded.dataset.source == "coco-val2017" and moved.scoring == recorded.scoring


def test_a_folder_without_run_info(tmp_path):
    assert refused(require_run_info, tmp_path) == (
        f"{tmp_path} has no run_info.json: the run never reached its first image (or an older ssd_eval "
        "wrote it); rerun it"
    )


def test_the_ground_truth_needs_no_images(tmp_path, tiny_coco):
    folder = write_run_folder(tmp_path / "r", tiny_coco, TINY_GT)
    config = load_run_config(folder)
    assert scoring_ground_truth(config, None).image_dir == tiny_coco / "val2017"
    for image in (tiny_coco / "val2017").iterdir():
        image.unlink()
    (tiny_coco / "val2017").rmdir()
    gt = scoring_ground_truth(config, None)
    assert gt.image_ids == list(ANNOTATED)
    assert gt.image_dir == tiny_coco / "annotations"  # no image folder: the annotations' own
    assert rescore_run(folder).stats["AP"] == pytest.approx(1.0, abs=1e-12)


def test_the_ground_truth_of_a_shard_and_of_a_limit(tmp_path, tiny_coco):
    from ssd_eval.data.dataset import Shard

    folder = write_run_folder(
        tmp_path / "r", tiny_coco, TINY_GT, dataset={"root": str(tiny_coco), "limit": 4}
    )
    config = load_run_config(folder)
    assert scoring_ground_truth(config, None).image_ids == [1, 2, 5, 7]
    assert scoring_ground_truth(config, Shard(1, 2)).image_ids == [2, 7]
    selection_all = dataclasses.replace(config, dataset=dataclasses.replace(config.dataset, selection="all"))
    assert scoring_ground_truth(selection_all, None).image_ids == [1, 2, 5, 7]
    unlimited = dataclasses.replace(selection_all, dataset=dataclasses.replace(config.dataset, limit=None,
                                                                               selection="all"))  # fmt: skip
    assert scoring_ground_truth(unlimited, None).image_ids == [1, 2, 5, 7, 9, 11]


def test_an_id_list_run_is_scored_on_the_ids_its_identity_recorded(tmp_path, tiny_coco):
    ids = tmp_path / "ids.txt"
    ids.write_text("9\n2\n5\n")
    folder = write_run_folder(
        tmp_path / "r", tiny_coco, TINY_GT, dataset={"root": str(tiny_coco), "image_ids": str(ids)}
    )
    identity = read_identity(folder)
    assert identity is not None and identity.images.image_ids == (2, 5, 9)
    ids.unlink()  # the list is not on this machine: the identity has the ids
    config = load_run_config(folder)
    gt = scoring_ground_truth(config, None, identity)
    assert gt.image_ids == [2, 5, 9]
    assert gt.id_list is not None and gt.id_list.path == ids
    assert gt.id_list.sha256 == identity.images.id_list_sha256
    assert rescore_run(folder).stats["AP"] == pytest.approx(1.0, abs=1e-12)
    # Without an id list in the config (an imported run's), the ids are named after the identity.
    plain = dataclasses.replace(config, dataset=dataclasses.replace(config.dataset, image_ids=None))
    images = dataclasses.replace(identity.images, image_ids=(2, 5, 404))
    with pytest.raises(DatasetError) as info:
        scoring_ground_truth(plain, None, dataclasses.replace(identity, images=images))
    assert str(info.value).startswith("dataset.image_ids: identity.json lists 1 image id(s) that ")
    # A whole run's identity (no id list) chooses by the config as recorded.
    whole = make_identity(ANNOTATED)
    gt = scoring_ground_truth(plain, None, whole)
    assert gt.image_ids == list(ANNOTATED) and gt.id_list is None


def test_a_shard_of_an_id_list_reads_the_list(tmp_path, tiny_coco):
    from ssd_eval.data.dataset import Shard

    ids = tmp_path / "ids.txt"
    ids.write_text("9\n2\n5\n")
    folder = write_run_folder(
        tmp_path / "r",
        tiny_coco,
        TINY_GT,
        shard="2/2",
        dataset={"root": str(tiny_coco), "image_ids": str(ids)},
    )
    identity = read_identity(folder)
    assert identity is not None and identity.images.image_ids == (5,)
    gt = scoring_ground_truth(load_run_config(folder), Shard(1, 2), identity)
    assert gt.image_ids == [5]
    assert (gt.shard, gt.whole_image_ids) == (Shard(1, 2), (2, 5, 9))  # the shard of the list's ids


def dets(image_id: int) -> Detections:
    return Detections.empty(image_id)


def test_every_image_has_its_detections_or_was_skipped(tmp_path, tiny_coco):
    from ssd_eval.data.dataset import open_ground_truth

    gt = open_ground_truth(tiny_coco / "annotations" / "instances_val2017.json", tiny_coco / "val2017")
    skipped = {7: SkippedImage(7, "7.jpg", "bad")}
    check_complete(tmp_path, gt, {i: dets(i) for i in (1, 2, 5, 9)}, skipped)
    assert refused(check_complete, tmp_path, gt, {i: dets(i) for i in (1, 9)}, skipped) == (
        f"{tmp_path}: 2 of 5 images have no detections yet (first: image 2): finish the run with "
        f"`ssd-eval run --resume {tmp_path}`"
    )
    extra = {i: dets(i) for i in (1, 2, 5, 9, 11, 12)}
    assert refused(check_complete, tmp_path, gt, extra, {**skipped, 3: SkippedImage(3, "3.jpg", "bad")}) == (
        f"{tmp_path}: its log holds 3 image(s) that {gt.annotation_file} does not evaluate (first: image 3): "
        "score the run against the annotation file it was made with (--data the COCO root it used)"
    )


def test_a_run_is_scored_only_against_its_own_ground_truth(tmp_path, tiny_coco):
    from conftest import TINY_IMAGES
    from helpers import TinyImage, make_coco

    folder = write_run_folder(tmp_path / "r", tiny_coco, TINY_GT)
    identity = read_identity(folder)
    assert identity is not None
    run = read_run(folder)
    check_ground_truth(folder, identity, run.gt)
    # The same images with another box: another ground truth.
    other = make_coco(tmp_path / "other", TINY_IMAGES, {**TINY_GT, 9: [Det(1, 1, 5, 5, 1)]})
    from ssd_eval.data.dataset import open_ground_truth

    gt = open_ground_truth(other / "annotations" / "instances_val2017.json", other / "val2017")
    line = refused(check_ground_truth, folder, identity, gt)
    digest = "annotations with content sha256 [0-9a-f]{12}…"
    assert re.fullmatch(
        f"{re.escape(str(folder))}: ground truth is {digest} in the run but {digest} in "
        f"{re.escape(str(gt.annotation_file))}: score it against the annotations it was made with \\(--data "
        "the COCO root it used, or an identical copy\\)",
        line,
    ), line
    assert refused(rescore_run, folder, data=other) == line
    fewer = make_coco(tmp_path / "fewer", [TinyImage(1, 64, 48)], {1: TINY_GT[1]})
    gt = open_ground_truth(fewer / "annotations" / "instances_val2017.json", fewer / "val2017")
    assert refused(check_ground_truth, folder, identity, gt).startswith(
        f"{folder}: images is 5 images (ids sha256 "
    )


def test_an_older_folder_is_scored_by_the_identity_it_implies(tmp_path, tiny_coco):
    folder = write_run_folder(tmp_path / "r", tiny_coco, TINY_GT, shard="1/2", identity=False)
    run = read_run(folder)
    assert run.identity.images.shard == "1/2" and run.identity.images.image_ids == (1, 5, 9)
    assert run.gt.image_ids == [1, 5, 9]
    assert sorted(run.detections) == [1, 5, 9]
    assert rescore_run(folder).stats["AP"] == pytest.approx(1.0, abs=1e-12)


METRICS = {
    "timings": {
        "read": {"total_s": 1.0, "mean_ms": 200.0, "median_ms": 190.0, "p90_ms": 300.0, "count": 5},
        "infer": {"total_s": 2.0, "mean_ms": 400.0, "median_ms": 390.0, "p90_ms": 500.0, "count": 5},
        "score": {"total_s": 0.1, "mean_ms": 100.0, "median_ms": 100.0, "p90_ms": 100.0, "count": 1},
    },
    "wall_s": 3.5,
    "images_per_s": 1.4286,
}


def test_an_older_folder_keeps_the_timings_of_its_metrics(tmp_path, caplog):
    assert previous_timings(tmp_path) == ({}, 0.0, 0.0)
    (tmp_path / "metrics.json").write_text(json.dumps(METRICS))
    timings, wall_s, images_per_s = previous_timings(tmp_path)
    assert timings == {  # the scoring is not inference: it is timed again
        "read": StageTiming(1.0, 200.0, 190.0, 300.0, 5),
        "infer": StageTiming(2.0, 400.0, 390.0, 500.0, 5),
    }
    assert (wall_s, images_per_s) == (3.5, 1.4286)
    # No inference part in the history (only scores): the metrics' timings.
    times = run_times(tmp_path, [entry("score"), entry("")])
    assert (times.timings, times.wall_s, times.images_per_s) == (timings, 3.5, 1.4286)
    # With one: the history's, whatever metrics.json says.
    infer = StageTiming(0.5, 100.0, 100.0, 100.0, 5)
    times = run_times(tmp_path, [entry("score"), entry("run", 5, 2.0, infer=infer)])
    assert (times.timings, times.wall_s, times.images_per_s) == ({"infer": infer}, 2.0, 2.5)
    assert not caplog.records


@pytest.mark.parametrize(
    "data",
    [
        b"\xff",
        b"{",
        b"[1]",
        b"{}",
        json.dumps({**METRICS, "wall_s": "x"}).encode(),
        json.dumps({**METRICS, "wall_s": None}).encode(),
        json.dumps({**METRICS, "timings": {"infer": {"total_s": 1}}}).encode(),
        json.dumps({**METRICS, "timings": []}).encode(),
        b"[" * 100000 + b"]" * 100000,
        b'{"wall_s": NaN}',
    ],
)
def test_damaged_metrics_carry_no_timings(tmp_path, caplog, data):
    path = tmp_path / "metrics.json"
    path.write_bytes(data)
    with caplog.at_level(logging.WARNING, logger="ssd_eval.engine.rescore"):
        assert previous_timings(tmp_path) == ({}, 0.0, 0.0)
    assert [r.getMessage() for r in caplog.records] == [
        f"{path} is damaged; its timings are not carried over"
    ]


def test_unreadable_metrics_carry_no_timings(tmp_path, caplog):
    (tmp_path / "metrics.json").mkdir()  # is_file() is False: nothing recorded
    assert previous_timings(tmp_path) == ({}, 0.0, 0.0)
    assert not caplog.records


def test_an_imported_run_of_an_unknown_model_is_scored(tmp_path, tiny_coco):
    """Its identity names no model (NOT_KNOWN differs even from itself): only its ground truth and images
    are held against the annotations it is scored with."""
    from ssd_eval.engine.run_folder import write_identity
    from ssd_eval.evaluation.identity import NOT_KNOWN, DetectionSource

    folder = write_run_folder(tmp_path / "r", tiny_coco, TINY_GT)
    identity = read_identity(folder)
    assert identity is not None
    source = DetectionSource("coco-results", "dets.json", "f" * 64, None, None, False, 0, 0, False)
    (folder / "identity.json").unlink()
    write_identity(folder, dataclasses.replace(identity, model_sha256=NOT_KNOWN, source=source))
    result = rescore_run(folder)
    assert result.stats["AP"] == pytest.approx(1.0, abs=1e-12)
    assert result.identity.model_sha256 == NOT_KNOWN


def test_a_run_of_the_known_data_set_is_scored_with_its_annotations_alone(tmp_path, tiny_coco):
    """dataset.source coco-val2017 without a root: scoring needs the annotation file, never the 1 GB of
    images (here only the annotations are in the cache, and downloads are off)."""
    cache = tmp_path / "cache"
    (cache / "coco-annotations" / "annotations").mkdir(parents=True)
    annotations = tiny_coco / "annotations" / "instances_val2017.json"
    (cache / "coco-annotations" / "annotations" / "instances_val2017.json").write_bytes(
        annotations.read_bytes()
    )
    folder = write_run_folder(
        tmp_path / "r",
        tiny_coco,
        TINY_GT,
        dataset={"source": "coco-val2017"},
        assets={"cache": str(cache), "download": False},
    )
    config = load_run_config(folder)
    assert config.dataset.root is None
    gt = scoring_ground_truth(config, None)
    assert gt.annotation_file == cache / "coco-annotations" / "annotations" / "instances_val2017.json"
    assert gt.image_dir == cache / "coco-annotations" / "annotations" and gt.image_ids == list(ANNOTATED)
    assert rescore_run(folder).stats["AP"] == pytest.approx(1.0, abs=1e-12)


def test_an_id_list_run_with_a_limit_or_of_unannotated_images_is_scored(tmp_path, tiny_coco):
    from helpers import TinyImage, make_coco

    ids = tmp_path / "ids.txt"
    ids.write_text("9\n2\n5\n")
    folder = write_run_folder(
        tmp_path / "r",
        tiny_coco,
        TINY_GT,
        dataset={"root": str(tiny_coco), "image_ids": str(ids), "limit": 2},
    )
    ids.unlink()
    run = read_run(folder)
    assert run.gt.image_ids == [2, 5] and run.gt.limit == 2
    assert rescore_run(folder).stats["AP"] == pytest.approx(1.0, abs=1e-12)
    # Images without a single annotation in the file, chosen by selection "all" and an id list.
    bare = make_coco(tmp_path / "bare", [TinyImage(3, 40, 40), TinyImage(4, 40, 30)], {})
    ids.write_text("4\n")
    folder = write_run_folder(
        tmp_path / "b", bare, {}, dataset={"root": str(bare), "image_ids": str(ids), "selection": "all"}
    )
    ids.unlink()
    run = read_run(folder)
    assert run.gt.image_ids == [4] and run.gt.selection == "all"
