"""engine/import_run.py's steps, called directly (issue 22: the survivors of its mutation run).

tests/test_import.py proves an import scores what the run that made the detections scored; these
pin each step on its own: the options' refusals written out whole (the `--flag` spelling from the
command line, the keyword's name from the Python API), what each option does to the config, what is
known of the model (the ONNX Model Zoo's ssd-10.onnx: sha256 80013dd9…, 80,363,696 bytes), the
evaluated images and the counts of records left out. The tiny COCO files are written here by hand.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from ssd_eval.config.run import RunConfig, load_config
from ssd_eval.data.dataset import open_ground_truth
from ssd_eval.engine import import_run
from ssd_eval.engine.import_run import (
    _fit,
    _format,
    _ground_truth,
    _identity,
    _image_order,
    _model_info,
    _one_line_extra,
    _parse,
    _read,
    _run_config,
    _selection,
)
from ssd_eval.errors import ConfigError, DetectionsFileError, OutputError
from ssd_eval.evaluation.identity import NOT_KNOWN, DetectionSource
from ssd_eval.evaluation.imports import ImportedDetections
from ssd_eval.pipeline.decode import Detections
from ssd_eval.reports.results import ModelInfo

SSD10_SHA = "80013dd940efc1462c616143b461ef35885bcc1706e0670b66623293b4b52c59"
SSD10_SIZE = 80_363_696
OTHER_SHA = "ab" * 32  # no known model's
KNOWN_MODELS = "ssd-10, ssd-12, ssd-12-int8, ssd-12-qdq"
ANNOTATIONS = "annotations/instances_val2017.json"

# Images 4, 1, 3, 2 in file order (ids not in file order); 3 and 2 have no annotation.
IMAGES = [(4, 100, 50), (1, 64, 48), (3, 30, 20), (2, 20, 30)]
ANNOTATED = [1, 4]


def coco_root(root: Path, *, with_images: bool = True) -> Path:
    """A COCO root: the annotation file (persons on images 4 and 1) and, if asked, an images folder."""
    (root / "annotations").mkdir(parents=True)
    if with_images:
        (root / "val2017").mkdir()
    anns = [
        {"id": 1, "image_id": 4, "category_id": 1, "bbox": [10, 10, 20, 20], "area": 400, "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 1, "bbox": [5, 5, 10, 10], "area": 100, "iscrowd": 0},
    ]
    from ssd_eval.data.categories import coco_categories_json

    data = {
        "images": [{"id": i, "file_name": f"{i:012d}.jpg", "width": w, "height": h} for i, w, h in IMAGES],
        "annotations": anns,
        "categories": coco_categories_json(),
    }
    (root / ANNOTATIONS).write_text(json.dumps(data))
    return root


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return coco_root(tmp_path / "coco")


def gt_of(root: Path, selection: str = "annotated"):
    return open_ground_truth(root / ANNOTATIONS, root / "val2017", selection=selection)  # type: ignore[arg-type]


def refusal(error: type[Exception], call, *args, **kw) -> str:
    with pytest.raises(error) as caught:
        call(*args, **kw)
    return str(caught.value)


def dets(image_id: int, n: int) -> Detections:
    return Detections(image_id, np.ones((n, 4)), np.full(n, 0.5), np.ones(n, dtype=np.int64))


# --- the file ----------------------------------------------------------------------------------------


def test_a_missing_file_and_an_unreadable_one_are_refused(tmp_path):
    missing = tmp_path / "nope.json"
    assert refusal(DetectionsFileError, _read, missing) == (
        f"{missing} not found: give a COCO results file or an MLPerf accuracy log (mlperf_log_accuracy.json)"
    )
    assert refusal(DetectionsFileError, _read, tmp_path) == f"cannot read {tmp_path}: Is a directory"


@pytest.mark.parametrize(
    ("content", "kind"),
    [
        (b'[{"qsl_idx": 0, "image_id": 3}]', "mlperf"),  # the first key found decides
        (b'[{"image_id": 3, "qsl_idx": 0}]', "coco-results"),
        (b" " * 4086 + b'"image_id"', "coco-results"),  # the key ends at the 4096th byte: seen
    ],
)
def test_the_format_is_told_from_the_first_4096_bytes(content, kind):
    assert _format(content, Path("d.json"), None, True) == kind


@pytest.mark.parametrize(
    ("content", "flag"),
    [
        (b" " * 4087 + b'"image_id"', "--format"),  # the key ends at the 4097th byte: not seen
        (b"\xff\xfe[]", "--format"),  # not UTF-8: read with replacement characters, no key
        (b"[]", "format"),  # from the Python API: the keyword's name
    ],
)
def test_a_file_without_either_key_needs_its_format_given(content, flag):
    assert refusal(DetectionsFileError, _format, content, Path("d.json"), None, flag == "--format") == (
        "d.json: its first record has neither qsl_idx (an MLPerf accuracy log) nor image_id (a COCO "
        f"results file): give {flag} coco-results or mlperf"
    )


@pytest.mark.parametrize("content", [b"", b" \n\t"])
def test_an_empty_file_is_refused(content):
    assert refusal(DetectionsFileError, _format, content, Path("d.json"), None, True) == (
        "d.json is empty: give a COCO results file or an MLPerf accuracy log (a JSON list)"
    )


@pytest.mark.parametrize(("flags", "flag"), [(True, "--format"), (False, "format")])
def test_a_given_format_is_taken_or_refused(flags, flag):
    assert _format(b'[{"image_id": 1}]', Path("d.json"), "mlperf", flags) == "mlperf"
    assert refusal(ConfigError, _format, b"[]", Path("d.json"), "coco", flags) == (
        f"{flag}: must be one of coco-results, mlperf, got 'coco'"
    )


# --- the options -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("flags", "flag"), [(True, "--image-order"), (False, "image_order")])
def test_the_image_order_is_for_mlperf_logs(flags, flag):
    assert _image_order("coco-results", None, flags) is None
    assert refusal(ConfigError, _image_order, "coco-results", "file", flags) == (
        f"{flag} is for MLPerf logs (qsl_idx); a COCO results file names its images"
    )
    assert _image_order("mlperf", None, flags) == "file"
    assert _image_order("mlperf", "annotated-set", flags) == "annotated-set"
    assert refusal(ConfigError, _image_order, "mlperf", "set", flags) == (
        f"{flag}: must be one of file, annotated, annotated-set, got 'set'"
    )


@pytest.mark.parametrize(
    ("given", "kind", "order", "chosen"),
    [
        ("annotated", "coco-results", None, "annotated"),
        ("all", "coco-results", None, "all"),
        ("annotated", "mlperf", "file", "annotated"),
        (None, "coco-results", None, None),  # the config's
        (None, "mlperf", "file", "all"),
        (None, "mlperf", "annotated", "annotated"),
        (None, "mlperf", "annotated-set", "annotated"),
    ],
)
def test_the_selection(given, kind, order, chosen):
    assert _selection(given, kind, order, True) == chosen


@pytest.mark.parametrize(("flags", "flag"), [(True, "--selection"), (False, "selection")])
def test_an_unknown_selection_is_refused(flags, flag):
    assert refusal(ConfigError, _selection, "Annotated", "coco-results", None, flags) == (
        f"{flag}: must be annotated or all, got 'Annotated'"
    )


def test_the_default_config_is_the_bundled_published_protocol():
    config = _run_config(None, data=None, selection=None, output=None, overwrite=False)
    assert config.model.source == "ssd-10" and config.dataset.source == "coco-val2017"
    assert config.expected is not None and config.expected.value == 0.195
    assert [p.name for p in config.providers] == ["imported"]


def test_a_config_file_a_mapping_or_a_run_config_is_taken(tmp_path, root):
    path = tmp_path / "mine.yaml"
    path.write_text(
        f"dataset: {{root: {root}, selection: all, limit: 3}}\noutput: {{dir: {tmp_path / 'out'}}}\n"
    )
    from_file = _run_config(path, data=None, selection=None, output=None, overwrite=False)
    assert from_file.dataset.root == root and from_file.dataset.selection == "all"
    assert from_file.dataset.limit is None  # an import has no limit of its own
    assert from_file.output.dir == tmp_path / "out" and from_file.output.overwrite is False
    mapping = {"dataset": {"root": str(root), "selection": "all"}}
    from_mapping = _run_config(mapping, data=None, selection=None, output=None, overwrite=False)
    assert from_mapping.dataset.root == root and from_mapping.dataset.selection == "all"
    given = dataclasses.replace(
        load_config(path), scoring=dataclasses.replace(RunConfig().scoring, backend="numpy")
    )
    assert (
        _run_config(given, data=None, selection=None, output=None, overwrite=False).scoring.backend == "numpy"
    )


def test_the_options_override_the_config(tmp_path, monkeypatch, root):
    monkeypatch.chdir(tmp_path)
    ids = tmp_path / "ids.txt"
    ids.write_text("1\n")
    path = tmp_path / "mine.yaml"
    path.write_text(f"dataset: {{source: coco-val2017, selection: all, image_ids: {ids}, limit: 2}}\n")
    config = _run_config(path, data="coco", selection="annotated", output="out", overwrite=True)
    # --data: that root, no known source; the evaluated images: the whole selection, no limit or id list.
    assert config.dataset.root == tmp_path / "coco" and config.dataset.source is None
    assert config.dataset.selection == "annotated"
    assert config.dataset.limit is None and config.dataset.image_ids is None
    assert config.output.dir == tmp_path / "out" and config.output.overwrite is True


# --- the model ------------------------------------------------------------------------------------------


def test_no_model_named_is_not_known():
    assert _model_info(None, None, True) == ModelInfo(path="", sha256=NOT_KNOWN, size_bytes=0, source=None)


def test_a_sha256_of_a_known_model_names_it():
    assert _model_info(None, SSD10_SHA.upper(), True) == ModelInfo("ssd-10.onnx", SSD10_SHA, SSD10_SIZE, None)


def test_a_sha256_of_no_known_model_is_recorded_alone():
    assert _model_info(None, OTHER_SHA, True) == ModelInfo("", OTHER_SHA, 0, None)


def test_a_known_model_name():
    expected = ModelInfo("ssd-10.onnx", SSD10_SHA, SSD10_SIZE, "ssd-10")
    assert _model_info("ssd-10", None, True) == expected
    assert _model_info("ssd-10", SSD10_SHA.upper(), True) == expected  # the same model: taken


def test_a_model_file(tmp_path):
    model = tmp_path / "m.onnx"
    model.write_bytes(b"abc")
    abc_sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # sha256("abc")
    assert _model_info(model, None, True) == ModelInfo(str(model), abc_sha, 3, None)


@pytest.mark.parametrize("sha", ["a" * 63, "a" * 65, "g" * 64, "a" * 63 + "-"])
@pytest.mark.parametrize(("flags", "flag"), [(True, "--model-sha256"), (False, "model_sha256")])
def test_a_model_sha256_that_is_not_one_is_refused(sha, flags, flag):
    assert refusal(ConfigError, _model_info, None, sha, flags) == (
        f"{flag}: must be a sha256 (64 hexadecimal digits), got {sha!r}"
    )


@pytest.mark.parametrize(
    ("flags", "model", "sha"), [(True, "--model", "--model-sha256"), (False, "model", "model_sha256")]
)
def test_an_unknown_model_name_is_refused(flags, model, sha):
    assert refusal(ConfigError, _model_info, "ssd-11", None, flags) == (
        f"{model} 'ssd-11' is neither a file nor a known model name ({KNOWN_MODELS}); or give {sha}"
    )


@pytest.mark.parametrize(
    ("flags", "model", "sha"), [(True, "--model", "--model-sha256"), (False, "model", "model_sha256")]
)
def test_a_model_and_another_models_sha256_are_refused(flags, model, sha):
    assert refusal(ConfigError, _model_info, "ssd-10", OTHER_SHA, flags) == (
        f"{model} ssd-10 has sha256 80013dd940ef… but {sha} is abababababab…: give one of them"
    )


# --- the ground truth and the records ----------------------------------------------------------------


def test_the_images_folder_is_the_ground_truths_when_there_is_one(root, tmp_path):
    config = _run_config(None, data=root, selection="all", output=None, overwrite=False)
    assert _ground_truth(config).image_dir == root / "val2017"
    bare = coco_root(tmp_path / "bare", with_images=False)  # the annotation file alone is enough
    config = _run_config(None, data=bare, selection="all", output=None, overwrite=False)
    gt = _ground_truth(config)
    assert gt.image_dir == bare / "annotations" and gt.image_ids == [1, 2, 3, 4]


def test_a_known_data_set_is_fetched_without_its_images(tmp_path, monkeypatch):
    """An import reads no pixels: the annotation file alone is fetched (253 MB, not 1 GB)."""
    from ssd_eval.assets import fetch

    bare = coco_root(tmp_path / "coco-annotations", with_images=False)

    def images(**kw):
        raise AssertionError("the images were fetched")

    monkeypatch.setattr(fetch, "ensure_coco_val2017", images)
    monkeypatch.setattr(fetch, "ensure_coco_val2017_annotations", lambda **kw: bare)
    config = _run_config(None, data=None, selection="annotated", output=None, overwrite=False)
    assert config.dataset.root is None and config.dataset.source == "coco-val2017"
    gt = _ground_truth(config)
    assert gt.annotation_file == bare / ANNOTATIONS and gt.image_ids == ANNOTATED


def test_the_readers_name_the_file(root):
    gt = gt_of(root)
    path = Path("some/dets.json")
    bad = json.dumps([{"image_id": 9, "category_id": 1, "bbox": [1, 1, 1, 1], "score": 0.5}]).encode()
    assert refusal(DetectionsFileError, _parse, bad, path, "coco-results", None, gt) == (
        "some/dets.json: record 0: image_id 9 is not an image of instances_val2017.json: import detections "
        "made on the images of that annotation file (--data the COCO root they were made for)"
    )
    bad = json.dumps([{"qsl_idx": 4, "data": ""}]).encode()
    assert refusal(DetectionsFileError, _parse, bad, path, "mlperf", "file", gt) == (
        "some/dets.json: entry 0: qsl_idx 4 is outside the 4 images of image order 'file' (0..3): give the "
        "--image-order the harness used, and the annotation file it ran on (--data)"
    )


def test_a_coco_results_box_is_held_to_its_images_size(root):
    # Image 4 is 100 x 50: x + w may reach 500, not 501.
    record = {"image_id": 4, "category_id": 1, "bbox": [499, 0, 2, 1], "score": 0.5}
    message = refusal(
        DetectionsFileError,
        _parse,
        json.dumps([record]).encode(),
        Path("d.json"),
        "coco-results",
        None,
        gt_of(root),
    )
    assert message == (
        "d.json: record 0: bbox [499, 0, 2, 1] reaches beyond [-4, 5] times the image's size (100x50): "
        "not a box of this image (made for another image size?)"
    )


def test_an_mlperf_log_reads_the_image_order_it_is_given(root):
    data = np.asarray([[1, 0.0, 0.0, 0.5, 0.5, 0.9, 1]], "<f4").tobytes().hex()
    log = json.dumps([{"qsl_idx": 1, "data": data}]).encode()
    gt = gt_of(root, "all")
    assert list(_parse(log, Path("d.json"), "mlperf", "file", gt).detections) == [1]  # file: 4, 1, 3, 2
    assert list(_parse(log, Path("d.json"), "mlperf", "annotated", gt).detections) == [1]  # 4, 1
    assert list(_parse(log, Path("d.json"), "mlperf", "annotated-set", gt).detections) == [4]  # {1, 4}: 1, 4


def extra_line(count: str, images: int, flags: bool = True) -> str:
    selection, ignore = ("--selection", "--ignore-extra") if flags else ("selection", "ignore_extra")
    return (
        f"d.json: {count} for {images} image(s) outside the evaluated selection (annotated: 2 images of "
        f"instances_val2017.json; first: image 2): import with {selection} all to score them, or {ignore} to "
        "leave them out (recorded)"
    )


@pytest.mark.parametrize(
    ("kind", "found", "count"),
    [
        ("coco-results", {1: 1, 2: 1}, "1 record"),
        ("coco-results", {2: 2}, "2 records"),  # records, not images
        ("coco-results", {2: 1, 3: 1}, "2 records"),
        ("mlperf", {2: 3}, "1 entry"),  # entries, not detections
        ("mlperf", {2: 1, 3: 0}, "2 entries"),
    ],
)
def test_records_of_images_outside_the_selection_are_refused_with_their_count(root, kind, found, count):
    imported = ImportedDetections({i: dets(i, n) for i, n in found.items()}, records=9)
    images = len([i for i in found if i not in ANNOTATED])
    message = refusal(DetectionsFileError, _fit, imported, gt_of(root), Path("d.json"), kind, False, True)
    assert message == extra_line(count, images)


def test_the_extra_records_line_from_the_python_api(root):
    line = _one_line_extra(Path("d.json"), 1, "record", [2], gt_of(root), False)
    assert line == extra_line("1 record", 1, flags=False)


@pytest.mark.parametrize(("kind", "left_out"), [("coco-results", 3), ("mlperf", 2)])
def test_records_left_out_are_counted(root, kind, left_out):
    imported = ImportedDetections({1: dets(1, 1), 2: dets(2, 2), 3: dets(3, 1)}, records=4)
    _, detections, extra = _fit(imported, gt_of(root), Path("d.json"), kind, True, True)
    assert extra == left_out
    assert list(detections) == ([1] if kind == "mlperf" else [1, 4])
    # Nothing left out: none counted.
    assert (
        _fit(ImportedDetections({1: dets(1, 1)}, records=1), gt_of(root), Path("d.json"), kind, False, True)[
            2
        ]
        == 0
    )


def test_a_coco_results_file_covers_the_whole_selection(root):
    gt, detections, _ = _fit(
        ImportedDetections({1: dets(1, 2)}, 2), gt_of(root), Path("d.json"), "coco-results", False, True
    )
    assert gt.image_ids == ANNOTATED and gt.id_list is None
    assert {i: len(d) for i, d in detections.items()} == {1: 2, 4: 0}
    assert detections[4].image_id == 4


def test_an_mlperf_log_is_scored_on_the_images_it_covers(root):
    gt, detections, _ = _fit(
        ImportedDetections({4: dets(4, 1)}, 1), gt_of(root, "all"), Path("d.json"), "mlperf", False, True
    )
    assert gt.image_ids == [4] and gt.id_list is not None and gt.id_list.ids == frozenset({4})
    assert (
        gt.id_list.sha256 == "4b227777d4dd1fc61c6f884f48641d02b4d121d3fd328cb08b5531fcacdabf8a"
    )  # sha256("4")
    assert {i: len(d) for i, d in detections.items()} == {4: 1}
    # Covering every image of the selection: the selection itself, no id list.
    whole = ImportedDetections({1: dets(1, 1), 4: dets(4, 1)}, 2)
    assert _fit(whole, gt_of(root), Path("d.json"), "mlperf", False, True)[0].id_list is None


def test_an_mlperf_log_of_no_image_of_the_selection_is_refused(root):
    imported = ImportedDetections({2: dets(2, 1)}, 1)
    assert refusal(
        DetectionsFileError, _fit, imported, gt_of(root), Path("d.json"), "mlperf", True, True
    ) == ("d.json: no entry is for an image of the evaluated selection (annotated)")


# --- the identity --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "name"),
    [
        (ModelInfo("/models/ssd-10.onnx", SSD10_SHA, 1, None), "ssd-10.onnx"),
        (ModelInfo("", NOT_KNOWN, 0, None), ""),
    ],
)
def test_the_identity_names_the_model_file_if_any(root, tmp_path, model, name):
    config = _run_config(None, data=root, selection=None, output=tmp_path, overwrite=False)
    source = DetectionSource("coco-results", "d.json", "0" * 64, None, None, False, 0, 0, False)
    identity = _identity(gt_of(root), config, tmp_path / "run", model, source)
    assert identity.model_name == name and identity.model_sha256 == model.sha256
    assert identity.provider == "imported" and identity.preprocess == NOT_KNOWN and identity.source == source
    assert (identity.score_threshold, identity.clip_boxes, identity.input_size) == (0.0, False, None)
    assert identity.images.image_ids == (1, 4)


def test_the_module_names_its_provider_and_default_config():
    assert (import_run.IMPORTED_PROVIDER, import_run.DEFAULT_CONFIG) == ("imported", "coco_val.yaml")


# --- the whole import, through the Python API ---------------------------------------------------------------

PERSON_ON_1 = {
    "image_id": 1,
    "category_id": 1,
    "bbox": [5, 5, 10, 10],
    "score": 0.9,
}  # image 1's person, exactly
NOTE = (
    "# Imported detections (`ssd-eval import`): nothing below was run. The model, providers and\n"
    "# preprocess sections did not make them; identity.json says what is known (its `source`, and the\n"
    '# model\'s sha256 or "not known"). The dataset, scoring, expected and gate sections apply.\n'
)


def write_json(path: Path, data: object) -> Path:
    path.write_text(json.dumps(data))
    return path


def folder_json(folder: Path, name: str) -> dict:
    return json.loads((folder / name).read_text())


def plain(root: Path) -> dict:
    """A config of no rules (the formats are the point), drawing nothing."""
    return {"dataset": {"root": str(root)}, "report": {"pr_curve": False}}


def test_an_import_with_every_option_records_them(root, tmp_path):
    file = write_json(
        tmp_path / "d.json", [PERSON_ON_1, {**PERSON_ON_1, "image_id": 3}, {**PERSON_ON_1, "image_id": 2}]
    )
    out = tmp_path / "out"
    options = dict(
        data=root,
        format="coco-results",
        config=plain(root),
        output=out,
        run_name="api",
        producer="Triton 24.01",
        model="ssd-10",
        model_sha256=SSD10_SHA,
        selection="annotated",
        ignore_extra=True,
        overwrite=True,
        require_gate=True,
    )
    evaluation = import_run.import_detections(file, **options)
    folder = out / "api"
    assert evaluation.folder == folder
    # Image 1's person found exactly, image 4's missed: precision 1 up to recall 0.5, 51 of COCO's 101
    # recall points.
    assert evaluation.stats["AP"] == pytest.approx(51 / 101, abs=1e-12)
    # Required, with no rules: no verdict, exit 1.
    assert folder_json(folder, "metrics.json")["gate"]["required"] is True
    assert (evaluation.verdict, evaluation.exit_code) == ("NO VERDICT", 1)
    (history,) = [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]
    assert history["command"] == [
        "python",
        "ssd_eval.import_detections",
        str(file),
        f"data={root}",
        "format=coco-results",
        "config=<mapping>",
        f"output={out}",
        "run_name=api",
        "producer=Triton 24.01",
        "model=ssd-10",
        f"model_sha256={SSD10_SHA}",
        "selection=annotated",
        "ignore_extra=True",
        "overwrite=True",
        "require_gate=True",
    ]
    assert (history["verb"], history["folder"], history["outcome"]) == ("import", "api", "finished")
    assert folder_json(folder, "run_info.json") == {
        "model": {"path": "ssd-10.onnx", "sha256": SSD10_SHA, "size_bytes": SSD10_SIZE, "source": "ssd-10"},
        "input_size": None,
        "shard": None,
        "providers_requested": ["imported"],
        "providers_used": ["imported: Triton 24.01"],
        "provider_options": [],
    }
    assert folder_json(folder, "identity.json")["source"] == {
        "format": "coco-results",
        "file_name": "d.json",
        "file_sha256": hashlib.sha256(file.read_bytes()).hexdigest(),
        "producer": "Triton 24.01",
        "image_order": None,
        "ignore_extra": True,
        "extra_ignored": 2,
        "repeats_ignored": 0,
        "partial": False,
    }
    assert (folder / "config.yaml").read_text().startswith(NOTE + "model:\n")
    metrics = folder_json(folder, "metrics.json")
    assert (metrics["wall_s"], metrics["images_per_s"]) == (0.0, 0.0)
    assert list(metrics["timings"]) == ["score"]  # nothing but the scoring was timed
    assert metrics["config"]["output"] == {"dir": str(out), "run_name": "api", "overwrite": True}
    assert metrics["warnings"] == [
        "1 of 2 images have no record in d.json and are scored as images without detections (e.g. image 4); "
        "if the file is of a subset, this AP is not that subset's"
    ]
    assert '<testsuite name="ssd-eval import api"' in (folder / "junit.xml").read_text()
    lines = [json.loads(line) for line in (folder / "detections.jsonl").read_text().splitlines()]
    assert lines == [
        {"image_id": 1, "boxes": [5.0, 5.0, 10.0, 10.0], "scores": [0.9], "category_ids": [1]},
        {"image_id": 4, "boxes": [], "scores": [], "category_ids": []},
    ]


def test_an_import_with_the_defaults(root, tmp_path, monkeypatch):
    """No run name: `import-<format>-<time>`; no output: ./results; no producer: the provider alone;
    every image of the selection with a record: no warning; an empty producer is none."""

    class Clock:
        @staticmethod
        def now():
            from datetime import datetime

            return datetime(2026, 12, 3, 4, 5, 6)

    monkeypatch.setattr(import_run, "datetime", Clock)
    monkeypatch.chdir(tmp_path)
    file = write_json(
        tmp_path / "d.json", [PERSON_ON_1, {**PERSON_ON_1, "image_id": 4, "bbox": [10, 10, 20, 20]}]
    )
    evaluation = import_run.import_detections(file, config=plain(root), producer="")
    folder = tmp_path / "results" / "import-coco-results-20261203-040506"
    assert evaluation.folder == folder and evaluation.exit_code == 0 and evaluation.stats["AP"] == 1.0
    (history,) = [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]
    assert history["command"] == [
        "python",
        "ssd_eval.import_detections",
        str(file),
        "config=<mapping>",
        "producer=",
    ]
    assert folder_json(folder, "run_info.json")["providers_used"] == ["imported"]
    source = folder_json(folder, "identity.json")["source"]
    assert (source["producer"], source["extra_ignored"], source["ignore_extra"]) == (None, 0, False)
    metrics = folder_json(folder, "metrics.json")
    assert metrics["warnings"] == [] and metrics["gate"]["required"] is False
    assert metrics["config"]["output"]["overwrite"] is False


def test_an_mlperf_import_records_its_image_order_repeats_and_partial_log(root, tmp_path):
    # Image order annotated: qsl 0 is image 4, qsl 1 image 1. Only qsl 1 is logged (twice).
    data = np.asarray([[1, 0.1, 0.1, 0.3, 0.3, 0.8, 1]], "<f4").tobytes().hex()
    file = write_json(tmp_path / "log.json", [{"qsl_idx": 1, "data": data}, {"qsl_idx": 1, "data": ""}])
    config = load_config_of(tmp_path, root)
    evaluation = import_run.import_detections(file, config=config, image_order="annotated", output=tmp_path)
    folder = evaluation.folder
    (history,) = [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]
    assert history["command"][3:] == ["config=<RunConfig>", f"output={tmp_path}", "image_order=annotated"]
    assert folder.name.startswith("import-mlperf-")
    source = folder_json(folder, "identity.json")["source"]
    assert (source["format"], source["image_order"], source["repeats_ignored"], source["partial"]) == (
        "mlperf",
        "annotated",
        1,
        True,
    )
    assert folder_json(folder, "identity.json")["images"]["image_ids"] == [1]  # scored on what it covers
    lines = [json.loads(line) for line in (folder / "detections.jsonl").read_text().splitlines()]
    # Image 1 is 64 x 48: y 0.1, 0.3 -> 4.8, 14.4; x 0.1, 0.3 -> 6.4, 19.2 (float32 products).
    assert [line["image_id"] for line in lines] == [1] and lines[0]["category_ids"] == [1]
    assert lines[0]["boxes"] == pytest.approx([6.4, 4.8, 12.8, 9.6], abs=1e-5)
    assert evaluation.result.warnings == ()


def load_config_of(tmp_path: Path, root: Path):
    path = tmp_path / "plain.yaml"
    path.write_text(f"dataset: {{root: {root}}}\nreport: {{pr_curve: false}}\n")
    return load_config(path)


def test_a_model_file_is_recorded_as_the_runs_model(root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "m.onnx").write_bytes(b"abc")
    file = write_json(tmp_path / "d.json", [PERSON_ON_1])
    evaluation = import_run.import_detections(
        file, config=plain(root), model="m.onnx", run_name="m", output="out"
    )
    model = folder_json(evaluation.folder, "metrics.json")["config"]["model"]
    assert (model["path"], model["source"]) == (str(tmp_path / "m.onnx"), None)
    assert folder_json(evaluation.folder, "identity.json")["model_name"] == "m.onnx"


def test_a_second_import_of_one_name_needs_overwrite(root, tmp_path):
    file = write_json(tmp_path / "d.json", [PERSON_ON_1])
    args = dict(config=plain(root), output=tmp_path, run_name="twice")
    import_run.import_detections(file, **args)
    with pytest.raises(OutputError) as caught:
        import_run.import_detections(file, **args)
    assert str(caught.value).startswith(f"run folder {tmp_path / 'twice'} already exists: ")
    evaluation = import_run.import_detections(file, overwrite=True, **args)
    assert folder_json(evaluation.folder, "metrics.json")["config"]["output"]["overwrite"] is True


@pytest.mark.parametrize(
    ("producer", "shown"),
    [
        ("x" * 201, "'" + "x" * 79),  # the value's repr, cut at 80 characters
        ("TensorRT\n# a heading", "'TensorRT\\n# a heading'"),
        ("x\x00y", "'x\\x00y'"),
        (5, "5"),
    ],
)
def test_a_producer_is_one_line_of_printable_text(root, tmp_path, producer, shown):
    file = write_json(tmp_path / "d.json", [PERSON_ON_1])
    with pytest.raises(ConfigError) as caught:
        import_run.import_detections(
            file, config=plain(root), output=tmp_path, run_name="p", producer=producer
        )
    assert str(caught.value) == (
        'producer: give one line of printable text of at most 200 characters (e.g. "TensorRT 8.6 fp16"), '
        f"got {shown}"
    )
    assert not (tmp_path / "p").exists()


def test_a_producer_of_200_characters_is_taken(root, tmp_path):
    file = write_json(tmp_path / "d.json", [PERSON_ON_1])
    evaluation = import_run.import_detections(file, config=plain(root), output=tmp_path, producer="é" * 200)
    assert folder_json(evaluation.folder, "identity.json")["source"]["producer"] == "é" * 200


@pytest.mark.parametrize(
    ("run_name", "problem"),
    [
        (
            "a/b",
            "must be one folder name without '/', got 'a/b' (the run folder goes into output.dir / --output)",
        ),
        ("..", "must be a folder name, got '..'"),
        (5, "must be a folder name, got 5"),
    ],
)
def test_a_run_name_must_be_a_folder_name(root, tmp_path, run_name, problem):
    file = write_json(tmp_path / "d.json", [PERSON_ON_1])
    with pytest.raises(ConfigError) as caught:
        import_run.import_detections(file, config=plain(root), output=tmp_path, run_name=run_name)
    assert str(caught.value) == f"run_name {problem}"


def test_an_import_is_gated_against_the_configs_baseline(root, tmp_path):
    """A measured baseline of one import holds a second import of the same detections (PASS); the
    baseline is copied into the folder, and an import over it without a baseline removes the copy."""
    from ssd_eval.cli import main

    file = write_json(tmp_path / "d.json", [PERSON_ON_1])
    first = import_run.import_detections(file, config=plain(root), output=tmp_path, run_name="first")
    assert main(["baseline", str(first.folder), "--output", str(tmp_path / "baseline.json")]) == 0
    gated = {**plain(root), "gate": {"baseline": str(tmp_path / "baseline.json"), "max_baseline_drop": 0.0}}
    second = import_run.import_detections(file, config=gated, output=tmp_path, run_name="second")
    assert (second.verdict, second.exit_code) == ("PASS", 0)
    assert [check.state for check in second.gate.checks] == ["passed"]
    assert (second.folder / "gate_baseline.json").is_file()
    again = import_run.import_detections(
        file, config=plain(root), output=tmp_path, run_name="second", overwrite=True
    )
    assert again.verdict == "NO VERDICT" and not (again.folder / "gate_baseline.json").exists()


PUBLISHED = Path(__file__).resolve().parents[1] / "ssd_eval" / "baselines" / "ssd-10-published.json"


def test_a_bad_baseline_is_refused_naming_the_config_before_anything_is_written(root, tmp_path):
    file = write_json(tmp_path / "d.json", [PERSON_ON_1])
    bad = {**plain(root), "gate": {"baseline": str(PUBLISHED), "max_class_baseline_drop": 0.01}}
    with pytest.raises(ConfigError) as caught:
        import_run.import_detections(file, config=bad, output=tmp_path, run_name="bad")
    assert str(caught.value) == (
        f"config: gate.max_class_baseline_drop: baseline {PUBLISHED} has no per-category AP (published "
        "figures); use a measured baseline (`ssd-eval baseline RUN_DIR`) or remove the rule"
    )
    assert not (tmp_path / "bad").exists()
    # A run folder of that name: refused for that first, before the baseline is read.
    import_run.import_detections(file, config=plain(root), output=tmp_path, run_name="bad")
    with pytest.raises(OutputError) as caught:
        import_run.import_detections(file, config=bad, output=tmp_path, run_name="bad")
    assert str(caught.value).startswith(f"run folder {tmp_path / 'bad'} already exists: ")
