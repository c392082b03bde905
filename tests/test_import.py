"""`ssd-eval import`: detections made elsewhere (COCO results files, MLPerf accuracy logs) become an
ordinary run folder that scores exactly what the same detections score when run through ssd_eval.

The proof: a tiny run with a table detector (known detections, some wrong), whose detections.jsonl is
converted here into a COCO results file and an MLPerf log by converters written from the formats'
specification (docs/import.md), independently of the package's importer; the import must give the
run's 12 stats and per-category AP. Each conversion mistake a harness can make (x and y swapped, COCO
ids written as labels, another image order) is shown to change the result or to be refused, so the
equality tests would catch an importer that made it.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_GT
from helpers import LABEL_OF_CATEGORY, Det, TinyImage, make_coco, save_table_detector, write_config

import ssd_eval
from ssd_eval.cli import main
from ssd_eval.evaluation.identity import NOT_KNOWN, identity_from_json

REPO = Path(__file__).resolve().parents[1]
SSD10_SHA = "80013dd940efc1462c616143b461ef35885bcc1706e0670b66623293b4b52c59"

# File order differs from id order, and the image without annotations (11) sits in the middle: the
# three image orders of an MLPerf log are then three different lists.
IMAGES = (
    TinyImage(9, 96, 64, "RGBA", "png"),
    TinyImage(2, 50, 80, "L", "png"),
    TinyImage(11, 70, 30, "RGB", "png"),
    TinyImage(1, 64, 48, "RGB", "png"),
    TinyImage(7, 40, 40, "CMYK", "jpg"),
    TinyImage(5, 120, 90, "P", "png"),
)
FILE_ORDER = [9, 2, 11, 1, 7, 5]
ANNOTATED_ORDER = [9, 2, 1, 7, 5]  # file order without image 11
SET_ORDER = list({9, 2, 1, 7, 5})  # accuracy-coco.py's list(set(...)) (small ints: ascending)
SIZES = {im.image_id: (im.width, im.height) for im in IMAGES}

# A detector with known mistakes: shifted boxes, an extra dog, a second person, a false positive on
# the empty image; boxes away from the small/medium area boundaries (32², 96²).
DETECTIONS = {
    1: [Det(4, 4, 30, 30, 1, 0.9), Det(30, 10, 20, 30, 18, 0.7)],
    2: [Det(12, 22, 30, 40, 1, 0.8), Det(1, 2, 9, 11, 18, 0.3)],
    5: [Det(0, 0, 60, 45, 1, 0.95), Det(62, 40, 47, 41, 18, 0.6)],
    7: [Det(5, 5, 20, 20, 90, 0.85)],
    9: [Det(20, 10, 40, 40, 1, 0.5), Det(50, 30, 21, 19, 1, 0.4)],
    11: [Det(10, 5, 20, 10, 1, 0.6)],
}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A COCO folder, its table detector, and two finished runs of it: the annotated images and all."""
    tmp = tmp_path_factory.mktemp("import")
    root = make_coco(tmp / "coco", IMAGES, TINY_GT)
    model = save_table_detector(tmp / "det.onnx", root, DETECTIONS)
    results = tmp / "results"
    for name, selection in (("ann", "annotated"), ("all", "all")):
        config = write_config(tmp / f"{name}.yaml", model, root, dataset={"selection": selection})
        assert main(["run", "--config", str(config), "--run-name", name, "--quiet"]) in (0, 1)
    plain = tmp / "plain.yaml"  # the rules of an import in most tests: none (the formats are the point)
    plain.write_text(f"dataset: {{root: {root}}}\n")
    return {"tmp": tmp, "root": root, "model": model, "results": results, "config": plain}


def run_log(folder: Path) -> dict[int, list[tuple[list[float], float, int]]]:
    """A run's detections.jsonl: per image, its (pixel x, y, w, h), score and COCO category id."""
    found = {}
    for line in (folder / "detections.jsonl").read_text().splitlines():
        record = json.loads(line)
        boxes = np.asarray(record["boxes"], dtype=np.float64).reshape(-1, 4).tolist()
        found[record["image_id"]] = list(zip(boxes, record["scores"], record["category_ids"], strict=True))
    return found


def to_coco_results(folder: Path, *, labels_not_ids: bool = False) -> list[dict]:
    """The COCO results file a detectron2-style evaluator writes for these detections."""
    return [
        {
            "image_id": image_id,
            "category_id": LABEL_OF_CATEGORY[category] if labels_not_ids else category,
            "bbox": box,
            "score": score,
        }
        for image_id, dets in run_log(folder).items()
        for box, score, category in dets
    ]


def to_mlperf_log(
    folder: Path,
    order: list[int],
    *,
    x_first: bool = False,
    coco_ids_as_labels: bool = False,
    leave_out: tuple[int, ...] = (),
    repeat: bool = True,
) -> list[dict]:
    """The mlperf_log_accuracy.json the SSD-ResNet34 harness writes: per sample, the hex of float32
    [qsl_idx, ymin, xmin, ymax, xmax, score, label] (normalized, y first, labels 1..80), entries in
    completion order (shuffled), a sample logged twice (the repeat carries no detections: if it were
    taken instead of the first, the image would lose its detections)."""
    dets = run_log(folder)
    entries = []
    for qsl, image_id in enumerate(order):
        if image_id not in dets or image_id in leave_out:
            continue
        width, height = SIZES[image_id]
        rows = []
        for (x, y, w, h), score, category in dets[image_id]:
            x1, y1, x2, y2 = x / width, y / height, (x + w) / width, (y + h) / height
            label = category if coco_ids_as_labels else LABEL_OF_CATEGORY[category]
            box = [x1, y1, x2, y2] if x_first else [y1, x1, y2, x2]
            rows.append([qsl, *box, score, label])
        data = np.asarray(rows, dtype="<f4").tobytes().hex().upper()
        entries.append({"seq_id": len(entries), "qsl_idx": qsl, "data": data})
    random.Random(0).shuffle(entries)
    if repeat:
        entries.append({"seq_id": len(entries), "qsl_idx": entries[0]["qsl_idx"], "data": ""})
    return entries


def write(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


def scored(folder: Path) -> tuple[dict, list]:
    data = metrics(folder)
    return data["stats"], data["per_category"]


def do_import(world, file: Path, name: str, *extra: str) -> int:
    args = ["import", str(file), "--data", str(world["root"]), "--output", str(world["results"])]
    return main([*args, "--run-name", name, "--config", str(world["config"]), *extra])


# --- COCO results files ---------------------------------------------------------------------------------


def test_a_coco_results_file_scores_what_its_run_scored(world, capsys):
    results = world["results"]
    file = write(world["tmp"] / "coco_ann.json", to_coco_results(results / "ann"))
    # The run on the annotated images has no record of image 11: the file holds exactly its detections.
    assert do_import(world, file, "coco-ann", "--producer", "TensorRT 8.6 fp16") == 0
    imported = results / "coco-ann"
    assert scored(imported) == scored(results / "ann")
    stats = scored(imported)[0]
    assert 0.3 < stats["AP"] < 0.95  # a real mix of hits and misses, not a degenerate 0 or 1
    # An ordinary run folder, with where the detections came from in its identity.
    assert {"config.yaml", "identity.json", "run_info.json", "history.jsonl", "detections.jsonl"} <= {
        p.name for p in imported.iterdir()
    }
    identity = identity_from_json(json.loads((imported / "identity.json").read_text()))
    assert identity.model_sha256 == NOT_KNOWN and identity.input_size is None
    assert identity.source is not None
    assert identity.source.format == "coco-results" and identity.source.producer == "TensorRT 8.6 fp16"
    assert identity.source.file_sha256 == __import__("hashlib").sha256(file.read_bytes()).hexdigest()
    out = capsys.readouterr().out
    assert "imported   COCO results file coco_ann.json" in out and "model      not known" in out
    assert (
        "## ssd-eval: model not known on imported: TensorRT 8.6 fp16" in (imported / "summary.md").read_text()
    )


def test_images_without_records_have_no_detections(world):
    results = world["results"]
    records = [r for r in to_coco_results(results / "ann") if r["image_id"] != 2]
    file = write(world["tmp"] / "coco_no2.json", records)
    assert do_import(world, file, "coco-no2") == 0
    lines = [json.loads(x) for x in (results / "coco-no2" / "detections.jsonl").read_text().splitlines()]
    assert {r["image_id"]: len(r["scores"]) for r in lines}[2] == 0
    assert scored(results / "coco-no2")[0]["AP"] < scored(results / "ann")[0]["AP"]
    # Said, in metrics.json and summary.md: a results file of a subset would otherwise pass for a
    # worse detector on the whole selection.
    (warning,) = metrics(results / "coco-no2")["warnings"]
    assert warning.startswith("1 of ") and "no record in coco_no2.json" in warning and "image 2" in warning
    assert "no record in coco_no2.json" in (results / "coco-no2" / "summary.md").read_text()


def test_records_of_images_outside_the_selection_are_refused_or_ignored(world, capsys):
    results = world["results"]
    file = write(world["tmp"] / "coco_all.json", to_coco_results(results / "all"))
    assert do_import(world, file, "coco-extra") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "1 record for 1 image(s) outside the evaluated selection" in err[0]
    assert "first: image 11" in err[0] and "--ignore-extra" in err[0]
    assert not (results / "coco-extra").exists()
    # --ignore-extra: the annotated run's numbers, and the count recorded.
    assert do_import(world, file, "coco-ignored", "--ignore-extra") == 0
    assert scored(results / "coco-ignored") == scored(results / "ann")
    source = json.loads((results / "coco-ignored" / "identity.json").read_text())["source"]
    assert source["ignore_extra"] is True and source["extra_ignored"] == 1
    # --selection all: the run of all images, false positive on image 11 included.
    assert do_import(world, file, "coco-all", "--selection", "all") == 0
    assert scored(results / "coco-all") == scored(results / "all")


def test_contiguous_labels_written_as_category_ids_change_the_result(world):
    # The mistake accuracy-coco.py's --use-inv-map exists for, made in a results file: every label
    # 1..80 is a valid-looking id (toothbrush 80 is "toaster"), so nothing refuses it; the AP must move.
    results = world["results"]
    file = write(world["tmp"] / "coco_labels.json", to_coco_results(results / "ann", labels_not_ids=True))
    assert do_import(world, file, "coco-labels") == 0
    assert scored(results / "coco-labels")[0]["AP"] < scored(results / "ann")[0]["AP"] - 0.1


def test_the_model_is_not_known_unless_named(world, capsys):
    # The default rules (coco_val.yaml: ssd-10's published 0.195) are tied to ssd-10's sha256.
    results = world["results"]
    file = write(world["tmp"] / "coco_model.json", to_coco_results(results / "ann"))
    base = ["import", str(file), "--data", str(world["root"]), "--output", str(results), "--quiet"]
    assert main([*base, "--run-name", "unnamed"]) == 0
    gate = metrics(results / "unnamed")["gate"]
    assert gate["verdict"] == "NO VERDICT"
    assert all(c["state"] == "not comparable" and "not known" in c["message"] for c in gate["rules"])
    # Named (a known model name, no file needed): the figure is held against the run, and missed.
    assert main([*base, "--run-name", "named", "--model", "ssd-10"]) == 1
    checks = metrics(results / "named")["gate"]["rules"]
    assert any(c["state"] == "failed" and c["rule"].startswith("AP = 0.195") for c in checks)
    assert main([*base, "--run-name", "named-sha", "--model-sha256", SSD10_SHA]) == 1
    capsys.readouterr()


# --- MLPerf accuracy logs --------------------------------------------------------------------------------


def test_an_mlperf_log_in_file_order_scores_what_its_run_scored(world):
    results = world["results"]
    log = to_mlperf_log(results / "all", FILE_ORDER)  # all images: image 11's false positive included
    assert do_import(world, write(world["tmp"] / "mlperf_file.json", log), "mlperf-file") == 0
    assert scored(results / "mlperf-file") == scored(results / "all")
    source = json.loads((results / "mlperf-file" / "identity.json").read_text())["source"]
    assert source["image_order"] == "file" and source["repeats_ignored"] == 1 and not source["partial"]


@pytest.mark.parametrize(("order", "ids"), [("annotated", ANNOTATED_ORDER), ("annotated-set", SET_ORDER)])
def test_an_mlperf_log_of_the_annotated_images_scores_what_its_run_scored(world, order, ids):
    results = world["results"]
    log = to_mlperf_log(results / "ann", ids)
    file = write(world["tmp"] / f"mlperf_{order}.json", log)
    assert do_import(world, file, f"mlperf-{order}", "--image-order", order) == 0
    assert scored(results / f"mlperf-{order}") == scored(results / "ann")


def test_an_entry_without_detections_is_an_image_without_detections(world):
    results = world["results"]
    log = to_mlperf_log(results / "all", FILE_ORDER, repeat=False)
    for entry in log:
        if FILE_ORDER[entry["qsl_idx"]] == 11:
            entry["data"] = ""  # what the harness logs for an image it found nothing in
    assert do_import(world, write(world["tmp"] / "mlperf_empty.json", log), "mlperf-empty") == 0
    lines = [json.loads(x) for x in (results / "mlperf-empty" / "detections.jsonl").read_text().splitlines()]
    assert {r["image_id"]: len(r["scores"]) for r in lines}[11] == 0
    # Image 11 has no ground truth: without its false positive, AP is at least the run's.
    assert scored(results / "mlperf-empty")[0]["AP"] >= scored(results / "all")[0]["AP"]


def test_a_partial_log_is_scored_on_the_images_it_covers(world, capsys):
    results, tmp = world["results"], world["tmp"]
    log = to_mlperf_log(results / "ann", ANNOTATED_ORDER, leave_out=(2, 5))
    file = write(tmp / "mlperf_partial.json", log)
    assert do_import(world, file, "mlperf-partial", "--image-order", "annotated") == 0
    assert "covers part of the selection" in capsys.readouterr().out
    # The expectation: ssd_eval's own run of those images (an id list), the same detections.
    ids = tmp / "covered.txt"
    ids.write_text("1\n7\n9\n")
    config = write_config(tmp / "partial.yaml", world["model"], world["root"])
    args = ["run", "--config", str(config), "--image-ids", str(ids), "--run-name", "ids", "--quiet"]
    assert main(args) == 0
    assert scored(results / "mlperf-partial") == scored(results / "ids")
    protocol = metrics(results / "mlperf-partial")["protocol"]
    assert protocol["num_images"] == 3 and protocol["id_list_sha256"]


def test_x_first_boxes_change_the_result(world):
    results = world["results"]
    log = to_mlperf_log(results / "all", FILE_ORDER, x_first=True)
    assert do_import(world, write(world["tmp"] / "mlperf_xfirst.json", log), "mlperf-xfirst") == 0
    assert scored(results / "mlperf-xfirst")[0]["AP"] < scored(results / "all")[0]["AP"] - 0.1


def test_coco_ids_written_as_labels_are_refused_or_change_the_result(world, capsys):
    results = world["results"]
    log = to_mlperf_log(results / "all", FILE_ORDER, coco_ids_as_labels=True)
    assert do_import(world, write(world["tmp"] / "mlperf_ids.json", log), "mlperf-ids") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "label 90, not one of the contiguous indices 1..80" in err[0]
    # Without the toothbrush (id 90 > 80) nothing is out of range: dog (18) reads as sheep (label 18).
    log = to_mlperf_log(results / "all", FILE_ORDER, coco_ids_as_labels=True, leave_out=(7,))
    assert do_import(world, write(world["tmp"] / "mlperf_ids2.json", log), "mlperf-ids2") == 0
    truth = to_mlperf_log(results / "all", FILE_ORDER, leave_out=(7,))
    assert do_import(world, write(world["tmp"] / "mlperf_no7.json", truth), "mlperf-no7") == 0
    assert scored(results / "mlperf-ids2")[0]["AP"] < scored(results / "mlperf-no7")[0]["AP"] - 0.1


@pytest.mark.parametrize("wrong", ["file", "annotated-set"])
def test_another_image_order_changes_the_result(world, wrong, capsys):
    # A log of the annotated images (the harness dropped image 11) read with another image list: the
    # detections land on other images (or image 11, outside the selection).
    results = world["results"]
    log = to_mlperf_log(results / "ann", ANNOTATED_ORDER)
    file = write(world["tmp"] / f"mlperf_ann_as_{wrong}.json", log)
    code = do_import(world, file, f"ann-as-{wrong}", "--image-order", wrong, "--selection", "all")
    assert code == 0
    assert scored(results / f"ann-as-{wrong}")[0]["AP"] < scored(results / "ann")[0]["AP"] - 0.1
    capsys.readouterr()


# --- what an imported folder then does -------------------------------------------------------------------


def test_score_baseline_and_resume_on_an_imported_folder(world, capsys):
    results, tmp = world["results"], world["tmp"]
    file = write(tmp / "coco_score.json", to_coco_results(results / "ann"))
    assert do_import(world, file, "to-score") == 0
    folder = results / "to-score"
    before = scored(folder)
    assert main(["score", str(folder), "--scorer", "numpy", "--quiet"]) == 0
    assert scored(folder) == before
    assert main(["baseline", str(folder), "--output", str(tmp / "imported-baseline.json")]) == 0
    baseline = json.loads((tmp / "imported-baseline.json").read_text())
    assert baseline["model"]["sha256"] == NOT_KNOWN
    # A measured baseline like any other (docs/import.md): it holds an onnxruntime run of the same
    # images, whatever its model; the run that made the imported detections scores the same: PASS.
    capsys.readouterr()
    argv = ["run", "--config", str(world["tmp"] / "ann.yaml"), "--run-name", "held", "--quiet"]
    assert main([*argv, "--baseline", str(tmp / "imported-baseline.json"), "--require-gate"]) == 0
    gate = metrics(results / "held")["gate"]
    assert [c["state"] for c in gate["rules"] if "baseline" in c["rule"]] == ["passed"]
    capsys.readouterr()
    assert main(["run", "--resume", str(folder), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nothing to resume" in err[0]


def test_the_python_api_imports_like_the_command_line(world):
    results = world["results"]
    file = write(world["tmp"] / "coco_api.json", to_coco_results(results / "ann"))
    evaluation = ssd_eval.import_detections(
        file, data=world["root"], config=world["config"], output=results, run_name="api", producer="Triton"
    )
    assert evaluation.stats == scored(results / "ann")[0]
    assert evaluation.result.identity.source is not None
    assert evaluation.result.identity.source.producer == "Triton"
    history = [json.loads(x) for x in (results / "api" / "history.jsonl").read_text().splitlines()]
    assert history[0]["verb"] == "import" and history[0]["command"][1] == "ssd_eval.import_detections"


def test_compare_an_onnxruntime_run_with_imported_detections(world, capsys):
    results, tmp = world["results"], world["tmp"]
    faithful = write(tmp / "coco_cmp.json", to_coco_results(results / "ann"))
    assert do_import(world, faithful, "imported-trt") == 0
    # A perturbed pipeline: image 1's boxes 6 px to the right, image 5's dog lost.
    records = []
    for r in to_coco_results(results / "ann"):
        if r["image_id"] == 1:
            r = {**r, "bbox": [r["bbox"][0] + 6, *r["bbox"][1:]]}
        if r["image_id"] == 5 and r["category_id"] == 18:
            continue
        records.append(r)
    assert do_import(world, write(tmp / "coco_bad.json", records), "imported-bad") == 0
    gate = ["--min-matched", "0.99", "--max-box-diff", "0.5", "--output", str(tmp / "cmp"), "--quiet"]
    ref = str(results / "ann")
    assert main(["compare", ref, str(results / "imported-trt"), "--run-name", "ok", *gate]) == 0
    report = json.loads((tmp / "cmp" / "ok" / "metrics.json").read_text())
    run = report["runs"][1]
    agreement = run["agreement"]
    assert agreement["matched"] == agreement["reference_detections"] == 9
    assert agreement["box_diff_px_max"] == 0
    assert run["note"].startswith("imported: COCO results") and run["provider"] == "imported"
    assert main(["compare", ref, str(results / "imported-bad"), "--run-name", "bad", *gate]) == 1
    capsys.readouterr()


# --- every bad record or entry: one line, exit 2, nothing written -------------------------------------------


def _entry(rows: list[list[float]], qsl: int = 0) -> dict:
    return {"seq_id": 0, "qsl_idx": qsl, "data": np.asarray(rows, "<f4").tobytes().hex()}


GOOD = {"image_id": 1, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5}
ROW = [0, 0.1, 0.1, 0.5, 0.5, 0.9, 1]  # qsl 0 (image 9 in file order), person

FAULTS = [
    (None, b"", "is empty: give a COCO results file or an MLPerf accuracy log"),
    (
        "coco-results",
        b'[{"image_id": 1, "image_id": 2, "category_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5}]',
        "duplicate key 'image_id'",
    ),
    ("coco-results", {"image_id": 1}, "the top level is a dict"),
    ("coco-results", [1], "record 0 is a int, not an object"),
    ("coco-results", [{**GOOD, "image_id": 3}], "record 0: image_id 3 is not an image of"),
    ("coco-results", [{**GOOD, "image_id": True}], "record 0: image_id is True, not a whole number"),
    ("coco-results", [GOOD, {**GOOD, "category_id": None}], "record 1: category_id is None, not a whole"),
    ("coco-results", [{"image_id": 1, "bbox": [1, 2, 3, 4], "score": 0.5}], "category_id is missing"),
    ("coco-results", [{**GOOD, "category_id": 12}], "record 0: category_id 12 is not a category"),
    ("coco-results", [{**GOOD, "bbox": [1, 2, 3]}], "record 0: bbox is [1, 2, 3]"),
    ("coco-results", [{**GOOD, "bbox": [1, 2, "3", 4]}], "record 0: bbox is [1, 2, '3', 4]"),
    ("coco-results", [{**GOOD, "bbox": [1, 2, -3, 4]}], "record 0: bbox [1, 2, -3, 4] has a negative width"),
    ("coco-results", [{**GOOD, "bbox": [1, 2, 10**400, 4]}], "record 0: bbox is [1, 2, 1000"),
    ("coco-results", [{**GOOD, "bbox": [1e308, 1e308, 1e308, 1e308]}], "record 0: bbox [1e+308, 1e+308"),
    ("coco-results", [{**GOOD, "bbox": [1e6, 1e6, 2, 3]}], "reaches beyond [-4, 5] times the image's size"),
    ("coco-results", [{**GOOD, "score": 1.5}], "record 0: score is 1.5"),
    ("coco-results", [{**GOOD, "score": None}], "record 0: score is None"),
    ("coco-results", "NaN-score", "record 0: score is nan"),
    ("mlperf", {"qsl_idx": 0}, "the top level is a dict"),
    ("mlperf", ["x"], "entry 0 is a str, not an object"),
    ("mlperf", [{"data": ""}], "entry 0: qsl_idx is missing"),
    ("mlperf", [{"qsl_idx": -1, "data": ""}], "entry 0: qsl_idx -1 is outside the 6 images"),
    ("mlperf", [{"qsl_idx": 6, "data": ""}], "entry 0: qsl_idx 6 is outside the 6 images of image order"),
    ("mlperf", [{"qsl_idx": 0}], "entry 0: data is missing"),
    ("mlperf", [{"qsl_idx": 0, "data": "zz"}], "entry 0: data 'zz' is not hexadecimal"),
    ("mlperf", [{"qsl_idx": 0, "data": "000000"}], "entry 0: data holds 3 bytes"),
    ("mlperf", [_entry([[*ROW, 0.0]])], "entry 0: data holds 8 float32 values, not a multiple of 7"),
    ("mlperf", [_entry([ROW], qsl=1)], "entry 0: detection 0 has image_idx 0 but the entry's qsl_idx is 1"),
    ("mlperf", [_entry([[0, 0.1, 0.1, 0.5, 0.5, 0.9, 0]])], "detection 0 has label 0, not one of"),
    ("mlperf", [_entry([[0, 0.1, 0.1, 0.5, 0.5, 0.9, 81]])], "detection 0 has label 81"),
    ("mlperf", [_entry([ROW, [0, 0.1, 0.1, 0.5, 0.5, 0.9, 1.5]])], "detection 1 has label 1.5"),
    ("mlperf", [_entry([[0, 0.1, 0.1, 0.5, 0.5, 1.5, 1]])], "detection 0 has score 1.5"),
    ("mlperf", [_entry([[0, np.nan, 0.1, 0.5, 0.5, 0.9, 1]])], "detection 0 [0.0, nan"),
    ("mlperf", [_entry([[0, 10, 20, 300, 400, 0.9, 1]])], "these look like pixels"),
    ("mlperf", [_entry([[0, 0.5, 0.1, 0.2, 0.5, 0.9, 1]])], "with ymax < ymin or xmax < xmin"),
    (None, [], "give --format coco-results or mlperf"),
    ("coco-results", b"\xff\xfe", "is not readable JSON"),
]


@pytest.mark.parametrize(("kind", "content", "fragment"), FAULTS, ids=[f[2][:40] for f in FAULTS])
def test_a_bad_record_or_entry_is_one_line_and_exit_2(world, tmp_path, capsys, kind, content, fragment):
    path = tmp_path / "bad.json"
    if content == "NaN-score":
        path.write_text(json.dumps([{**GOOD, "score": float("nan")}]))
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(json.dumps(content))
    args = ["import", str(path), "--data", str(world["root"]), "--output", str(tmp_path)]
    args += ["--run-name", "bad", "--config", str(world["config"])] + (["--format", kind] if kind else [])
    capsys.readouterr()
    assert main(args) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err and captured.out == ""
    assert fragment in lines[0] and lines[0].startswith("ssd-eval: error: ")
    assert not (tmp_path / "bad").exists()


def test_a_fault_from_the_command_line_is_one_line_without_traceback(world, tmp_path):
    path = write(tmp_path / "bad.json", [{**GOOD, "bbox": [1, 2, -3, 4]}])
    done = subprocess.run(
        [sys.executable, "-m", "ssd_eval", "import", str(path), "--data", str(world["root"])],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "negative width" in done.stderr


@pytest.mark.parametrize("producer", ["TensorRT\n# a heading", "x\x00y", "x" * 201])
def test_a_producer_is_one_line_of_printable_text(world, capsys, producer):
    """It goes into summary.md (and GitHub's step summary): a new line would start a heading there."""
    file = write(world["tmp"] / "coco_producer.json", to_coco_results(world["results"] / "ann"))
    assert do_import(world, file, "producer", "--producer", producer, "--quiet") == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("ssd-eval: error: --producer: give one line of printable text")
    assert not (world["results"] / "producer").exists()


def test_user_text_in_summary_md_is_one_line_without_html():
    from ssd_eval.reports.ci_report import _escape

    assert _escape("trt <!-- x\n# HEAD | y") == "trt &lt;!-- x # HEAD \\| y"


def test_an_unknown_model_is_no_model_and_other_identities_are_unchanged(world):
    results = world["results"]
    ran = identity_from_json(json.loads((results / "ann" / "identity.json").read_text()))
    assert "source" not in ran.to_json()  # a run's identity.json (and a baseline's digest) as before
    file = write(world["tmp"] / "coco_id.json", to_coco_results(results / "ann"))
    assert do_import(world, file, "id-a") == 0 and do_import(world, file, "id-b") == 0
    a, b = (
        identity_from_json(json.loads((results / n / "identity.json").read_text())) for n in ("id-a", "id-b")
    )
    assert [d.key for d in a.differences(ran, ("model",))] == ["model sha256"]
    assert [d.key for d in a.differences(b, ("model",))] == ["model sha256"]  # not known twice: not the same
    assert a.differences(ran, ("ground truth", "images", "decode")) == ()  # what compare needs to agree
    assert identity_from_json(a.to_json()) == a


# --- one MLPerf entry's detections, checked row by row (pure: no files) ---------------------------------


def _rows(*rows: list[float]) -> np.ndarray:
    return np.array(rows, dtype=np.float32).astype(np.float64)


def test_mlperf_rows_at_the_edges_of_the_score_range_are_detections():
    from ssd_eval.evaluation.imports.mlperf_log import _check_rows

    # [image_idx, ymin, xmin, ymax, xmax, score, label]: scores exactly 0 and 1 are scores.
    _check_rows(_rows([3, 0.1, 0.1, 0.2, 0.2, 0.0, 1], [3, 0.1, 0.1, 0.2, 0.2, 1.0, 80]), "log", 3, 80)


@pytest.mark.parametrize(
    ("row", "line"),
    [
        (
            [3, 0.1, 0.1, 0.2, 0.2, float("nan"), 1],
            "log: detection 1 [3.0, 0.1, 0.1, 0.2, 0.2, nan, 1.0] holds NaN or infinity",
        ),
        (
            [4, 0.1, 0.1, 0.2, 0.2, 0.5, 1],
            "log: detection 1 has image_idx 4 but the entry's qsl_idx is 3: the payload and loadgen disagree "
            "on the image (accuracy-coco.py only prints an ERROR); the log is damaged",
        ),
        (
            [3, 0.1, 0.1, 0.2, 0.2, 0.5, 81],
            "log: detection 1 has label 81, not one of the contiguous indices 1..80 the SSD-ResNet34 logs "
            "hold (a COCO category id, or a 0-based index?)",
        ),
        ([3, 0.1, 0.1, 0.2, 0.2, -0.001, 1], "log: detection 1 has score -0.001; expected a score in [0, 1]"),
        (
            [3, 0.1, 0.1, 0.2, 0.05, 0.5, 1],
            "log: detection 1 has box [0.1, 0.1, 0.2, 0.05] with ymax < ymin or xmax < xmin; expected "
            "ymin, xmin, ymax, xmax (y first)",
        ),
    ],
)
def test_a_bad_mlperf_row_is_named_by_its_index_in_one_line(row, line):
    """The second detection of an entry is the bad one: the line names detection 1, and says what to do."""
    from ssd_eval.errors import DetectionsFileError
    from ssd_eval.evaluation.imports.mlperf_log import _check_rows

    good = [3, 0.1, 0.1, 0.2, 0.2, 0.9, 1]
    with pytest.raises(DetectionsFileError) as raised:
        _check_rows(_rows(good, row), "log", 3, 80)
    assert str(raised.value).startswith(line), str(raised.value)
