"""The run config's values (ssd_eval/config/run.py): its defaults, and every impossible value refused in
one whole line naming the dotted key, with the bounds written down here from docs/checks.md,
docs/gates.md and configs/coco_val.yaml."""

from __future__ import annotations

from pathlib import Path

import pytest

from ssd_eval.config.run import (
    RunConfig,
    check_preprocess_values,
    config_from_dict,
    load_config,
    run_name_problem,
)
from ssd_eval.config.schema import config_to_dict
from ssd_eval.errors import ConfigError

STATS = "AP AP50 AP75 APs APm APl AR1 AR10 AR100 ARs ARm ARl"  # pycocotools' 12, in its order
# ssd-10.onnx's sha256 (configs/coco_val.yaml)
SHA = "80013dd940efc1462c616143b461ef35885bcc1706e0670b66623293b4b52c59"


def refusal(raw: dict, tmp_path: Path) -> str:
    """The one line a config tree is refused with."""
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw, base_dir=tmp_path)
    return str(info.value)


def test_an_empty_tree_is_the_documented_defaults(tmp_path):
    """Each default as configs/coco_val.yaml and the docs state it (the model card's names and values)."""
    config = config_from_dict({}, base_dir=tmp_path)
    assert config_to_dict(config) == {
        "model": {
            "path": None,
            "source": "ssd-10",
            "input": "image",
            "outputs": {"boxes": "bboxes", "labels": "labels", "scores": "scores"},
        },
        "dataset": {
            "root": None,
            "source": "coco-val2017",
            "annotations": "annotations/instances_val2017.json",
            "images": "val2017",
            "selection": "annotated",
            "image_ids": None,
            "limit": None,
            "on_bad_image": "stop",
            "max_image_pixels": 89478485,
        },
        "preprocess": {
            "backend": "pillow",
            "size": None,
            "workers": None,
            "mean": [0.485, 0.456, 0.406],
            "std": [0.229, 0.224, 0.225],
        },
        "providers": [{"name": "cpu", "options": {}}],
        "session": {
            "graph_optimization_level": "all",
            "intra_op_threads": 0,
            "inter_op_threads": 0,
            "allow_cpu_fallback": False,
        },
        "decode": {"score_threshold": 0.0, "clip_boxes": False},
        "scoring": {"backend": "pycocotools"},
        "output": {"dir": None, "run_name": None, "overwrite": False},
        "expected": None,
        "gate": {
            "metric": "AP",
            "min_ap": None,
            "baseline": None,
            "max_baseline_drop": None,
            "max_class_baseline_drop": None,
            "baseline_stats": [],
            "baseline_tolerance": 0.001,
            "class_min_gt": 1,
            "required": False,
            "any_model": False,
        },
        "assets": {"cache": None, "mirror": None, "download": True},
        "report": {"pr_curve": True, "pictures": 0, "min_score": 0.3, "max_side": 640},
    }
    assert config.source_file is None


def test_expected_defaults_to_the_documented_tolerance_and_metric(tmp_path):
    expected = config_from_dict({"expected": {"value": 0.195}}, base_dir=tmp_path).expected
    assert expected is not None
    assert (expected.value, expected.tolerance, expected.metric) == (0.195, 0.003, "AP")
    assert (expected.model_sha256, expected.selection) == (None, None)


def test_the_source_file_is_kept_and_names_the_refusals(tmp_path):
    source = tmp_path / "mine.yaml"
    assert config_from_dict({}, base_dir=tmp_path, source=source).source_file == source
    with pytest.raises(ConfigError) as info:
        config_from_dict({"dataset": {"limit": 0}}, base_dir=tmp_path, source=source)
    assert str(info.value) == f"{source}: dataset.limit: must be >= 1 or null, got 0"


def test_load_config_resolves_paths_against_the_files_folder(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.yaml").write_text("model: {path: m.onnx}\n")
    monkeypatch.chdir(tmp_path)
    config = load_config("sub/c.yaml")
    assert config.model.path == tmp_path / "sub" / "m.onnx"
    assert config.source_file == Path("sub/c.yaml")


REFUSED = [
    # the model and providers
    (
        {"model": {"path": None, "source": None}},
        "model: set `path` (an ONNX file) or `source` (a known model, e.g. ssd-10)",
    ),
    ({"providers": []}, "providers: list at least one execution provider, e.g. [{name: cpu}]"),
    # dataset (docs/checks.md: max_image_pixels 1 to 178,956,970)
    (
        {"dataset": {"root": None, "source": None}},
        "dataset: set `root` (a COCO folder) or `source` (e.g. coco-val2017)",
    ),
    ({"dataset": {"limit": 0}}, "dataset.limit: must be >= 1 or null, got 0"),
    ({"dataset": {"limit": -3}}, "dataset.limit: must be >= 1 or null, got -3"),
    (
        {"dataset": {"max_image_pixels": 0}},
        "dataset.max_image_pixels: must be between 1 and 178956970 (Pillow refuses larger images), got 0",
    ),
    (
        {"dataset": {"max_image_pixels": 178956971}},
        "dataset.max_image_pixels: must be between 1 and 178956970 (Pillow refuses larger images), "
        "got 178956971",
    ),
    # preprocess (docs/checks.md: size 32 to 4096, workers 0 to 64)
    ({"preprocess": {"size": 31}}, "preprocess.size: must be >= 32 or null, got 31"),
    ({"preprocess": {"size": 4097}}, "preprocess.size: must be at most 4096 (pixels a side), got 4097"),
    ({"preprocess": {"workers": -1}}, "preprocess.workers: must be >= 0 or null, got -1"),
    (
        {"preprocess": {"workers": 65}},
        "preprocess.workers: must be at most 64 (threads decoding ahead), got 65",
    ),
    (
        {"preprocess": {"mean": [1.0001, 0.5, 0.5]}},
        "preprocess.mean: [1.0001, 0.5, 0.5] has values above 1, which suggests the 0-255 scale; pixels are "
        "scaled to [0, 1] before normalizing, so give mean on that scale (divide by 255): the card's are "
        "[0.485, 0.456, 0.406]",
    ),
    (
        {"preprocess": {"std": [58.395, 57.12, 255]}},
        "preprocess.std: [58.395, 57.12, 255] has values above 1, which suggests the 0-255 scale; pixels are "
        "scaled to [0, 1] before normalizing, so give std on that scale (divide by 255): the card's are "
        "[0.229, 0.224, 0.225]",
    ),
    (
        {"preprocess": {"std": [256, 1, 1]}},
        "preprocess.std: [256, 1, 1]: every value must be in (0, 1]; the card's are [0.229, 0.224, 0.225]",
    ),
    (
        {"preprocess": {"std": [0.229, 0, 0.225]}},
        "preprocess.std: [0.229, 0, 0.225]: every value must be in (0, 1]; "
        "the card's are [0.229, 0.224, 0.225]",
    ),
    (
        {"preprocess": {"mean": [0.5, -0.01, 0.5]}},
        "preprocess.mean: [0.5, -0.01, 0.5]: every value must be in [0, 1]; "
        "the card's are [0.485, 0.456, 0.406]",
    ),
    # 1 itself is on the [0, 1] scale: a mean of [1, -0.5, 0] is out of range, but not 0-255
    (
        {"preprocess": {"mean": [1, -0.5, 0]}},
        "preprocess.mean: [1, -0.5, 0]: every value must be in [0, 1]; the card's are [0.485, 0.456, 0.406]",
    ),
    # session (docs/checks.md: 0 to 256)
    (
        {"session": {"intra_op_threads": 257}},
        "session.intra_op_threads: must be between 0 (onnxruntime's default) and 256, got 257",
    ),
    (
        {"session": {"inter_op_threads": -1}},
        "session.inter_op_threads: must be between 0 (onnxruntime's default) and 256, got -1",
    ),
    # decode
    ({"decode": {"score_threshold": 1.0}}, "decode.score_threshold: must be in [0, 1)"),
    ({"decode": {"score_threshold": -0.01}}, "decode.score_threshold: must be in [0, 1)"),
    # expected (docs/gates.md: AP-like values in [0, 1], tolerances >= 0)
    (
        {"expected": {"value": 0.2, "metric": "mAP"}},
        f"expected.metric: must be one of {STATS}, got 'mAP'",
    ),
    (
        {"expected": {"value": 19.5}},
        "expected.value: must be a COCO stat in [0, 1] (0.195, not 19.5), got 19.5",
    ),
    (
        {"expected": {"value": -0.001}},
        "expected.value: must be a COCO stat in [0, 1] (0.195, not 19.5), got -0.001",
    ),
    ({"expected": {"value": 0.2, "tolerance": -0.001}}, "expected.tolerance: must be >= 0, got -0.001"),
    (
        {"expected": {"value": 0.2, "model_sha256": SHA[:63]}},
        "expected.model_sha256: must be 64 hexadecimal digits (a sha256) or null",
    ),
    (
        {"expected": {"value": 0.2, "model_sha256": SHA + "0"}},
        "expected.model_sha256: must be 64 hexadecimal digits (a sha256) or null",
    ),
    (
        {"expected": {"value": 0.2, "model_sha256": SHA[:63] + "g"}},
        "expected.model_sha256: must be 64 hexadecimal digits (a sha256) or null",
    ),
    (
        {"expected": {"value": 0.2, "model_sha256": "X" + SHA[1:]}},
        "expected.model_sha256: must be 64 hexadecimal digits (a sha256) or null",
    ),
    # gate
    ({"gate": {"metric": "ap"}}, f"gate.metric: must be one of {STATS}, got 'ap'"),
    ({"gate": {"min_ap": 1.5}}, "gate.min_ap: must be in [0, 1] or null, got 1.5"),
    ({"gate": {"min_ap": -0.1}}, "gate.min_ap: must be in [0, 1] or null, got -0.1"),
    (
        {"gate": {"baseline": "b.json", "max_baseline_drop": 2}},
        "gate.max_baseline_drop: must be in [0, 1] or null, got 2.0",
    ),
    (
        {"gate": {"baseline": "b.json", "max_class_baseline_drop": 1.01}},
        "gate.max_class_baseline_drop: must be in [0, 1] or null, got 1.01",
    ),
    (
        {"gate": {"baseline": "b.json", "max_baseline_drop": 0.003, "baseline_tolerance": -0.5}},
        "gate.baseline_tolerance: must be in [0, 1] or null, got -0.5",
    ),
    (
        {"gate": {"baseline": "b.json", "baseline_stats": ["AP", "ap50"]}},
        f"gate.baseline_stats[1]: must be one of {STATS}, got 'ap50'",
    ),
    (
        {"gate": {"max_baseline_drop": 0.003}},
        "gate.baseline: set a baseline file for max_baseline_drop / max_class_baseline_drop / baseline_stats",
    ),
    (
        {"gate": {"max_class_baseline_drop": 0.05}},
        "gate.baseline: set a baseline file for max_baseline_drop / max_class_baseline_drop / baseline_stats",
    ),
    (
        {"gate": {"baseline_stats": ["AP"]}},
        "gate.baseline: set a baseline file for max_baseline_drop / max_class_baseline_drop / baseline_stats",
    ),
    (
        {"gate": {"baseline": "b.json"}},
        "gate.max_baseline_drop: set it (e.g. 0.003) to gate against the baseline",
    ),
    ({"gate": {"class_min_gt": -1}}, "gate.class_min_gt: must be >= 0"),
    # output
    ({"output": {"run_name": ".."}}, "output.run_name: must be a folder name, got '..'"),
    (
        {"output": {"run_name": "a/b"}},
        "output.run_name: must be one folder name without '/', got 'a/b' (the run folder goes into "
        "output.dir / --output)",
    ),
    # report
    ({"report": {"pictures": -1}}, "report.pictures: must be a number of images >= 0, got -1"),
    ({"report": {"min_score": 1.0}}, "report.min_score: must be in [0, 1), got 1.0"),
    ({"report": {"min_score": -0.01}}, "report.min_score: must be in [0, 1), got -0.01"),
    ({"report": {"max_side": 63}}, "report.max_side: must be >= 64 pixels, got 63"),
]


@pytest.mark.parametrize(("raw", "line"), REFUSED, ids=[line.split(":")[0] for _, line in REFUSED])
def test_an_impossible_value_is_one_whole_line(tmp_path, raw, line):
    assert refusal(raw, tmp_path) == f"config: {line}"


ACCEPTED = [
    # each bound itself is allowed
    {"dataset": {"root": "coco", "source": None}},
    {"dataset": {"limit": 1, "max_image_pixels": 1}},
    {"dataset": {"max_image_pixels": 178956970}},
    {"preprocess": {"size": 32, "workers": 0}},
    {"preprocess": {"size": 4096, "workers": 64}},
    {"preprocess": {"mean": [0, 0, 1], "std": [1, 1, 1]}},
    {"preprocess": {"mean": [1, 1, 1], "std": [0.001, 0.5, 1]}},
    {"session": {"intra_op_threads": 256, "inter_op_threads": 256}},
    {"decode": {"score_threshold": 0.0}},
    {"decode": {"score_threshold": 0.999}},
    {"expected": {"value": 0.0, "tolerance": 0.0, "metric": "ARl"}},
    {"expected": {"value": 1.0, "model_sha256": SHA.upper()}},
    {"expected": {"value": 0.2, "model_sha256": SHA}},
    {"gate": {"min_ap": 0.0, "metric": "AR100"}},
    {"gate": {"min_ap": 1.0}},
    {"gate": {"baseline": "b.json", "max_baseline_drop": 0.0, "baseline_tolerance": 0.0}},
    {"gate": {"baseline": "b.json", "max_baseline_drop": 1.0, "baseline_tolerance": 1.0}},
    {"gate": {"baseline": "b.json", "max_class_baseline_drop": 1.0}},
    {"gate": {"baseline": "b.json", "baseline_stats": ["AP", "ARl"], "class_min_gt": 0}},
    {"output": {"run_name": "..."}},
    {"report": {"pictures": 0, "min_score": 0.0, "max_side": 64}},
    {"report": {"min_score": 0.999}},
]


@pytest.mark.parametrize("raw", ACCEPTED)
def test_a_value_on_a_bound_is_accepted(tmp_path, raw):
    assert isinstance(config_from_dict(raw, base_dir=tmp_path), RunConfig)


def test_the_first_of_several_problems_is_the_line(tmp_path):
    """Every check runs; the line is the first problem, in the order of the sections."""
    raw = {"dataset": {"limit": 0}, "preprocess": {"size": 31}, "report": {"max_side": 1}}
    assert refusal(raw, tmp_path) == "config: dataset.limit: must be >= 1 or null, got 0"
    raw = {"expected": {"value": 2.0, "tolerance": -1.0}}
    assert refusal(raw, tmp_path) == (
        "config: expected.value: must be a COCO stat in [0, 1] (0.195, not 19.5), got 2.0"
    )


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "must be a folder name, got ''"),
        ("  ", "must be a folder name, got '  '"),
        (".", "must be a folder name, got '.'"),
        (" .. ", "must be a folder name, got ' .. '"),
        (
            "a\\b",
            "must be one folder name without '\\\\', got 'a\\\\b' "
            "(the run folder goes into output.dir / --output)",
        ),
        (
            "a\\b/c",
            "must be one folder name without '/', got 'a\\\\b/c' "
            "(the run folder goes into output.dir / --output)",
        ),
        (
            "a\0b",
            "must be one folder name without 'NUL', got 'a\\x00b' "
            "(the run folder goes into output.dir / --output)",
        ),
        ("run-1.v2", None),
    ],
)
def test_a_run_name_is_one_folder_name(name, problem):
    assert run_name_problem(name) == problem


def test_the_preprocess_checks_name_the_section_they_are_given():
    from ssd_eval.config.run import PreprocessConfig

    problems = check_preprocess_values(PreprocessConfig(size=31, workers=65), "runs[0].preprocess")
    assert problems == [
        ("runs[0].preprocess.size", "must be >= 32 or null, got 31"),
        ("runs[0].preprocess.workers", "must be at most 64 (threads decoding ahead), got 65"),
    ]
