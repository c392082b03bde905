"""Strict config loading: every mistake is one line naming the file and the dotted key."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import TINY_GT
from helpers import save_table_detector, write_config

from ssd_eval.cli import main
from ssd_eval.config.compare import load_compare_config
from ssd_eval.config.run import ProviderConfig, RunConfig, load_config
from ssd_eval.config.schema import BUNDLED_CONFIG_DIR, find_config
from ssd_eval.errors import ConfigError


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    return path


def test_bundled_coco_val_loads_with_the_published_protocol():
    config = load_config(BUNDLED_CONFIG_DIR / "coco_val.yaml")
    assert isinstance(config, RunConfig)
    assert config.model.source == "ssd-10" and config.model.path is None
    assert config.dataset.selection == "annotated"
    assert config.decode.clip_boxes is False
    assert config.providers == (ProviderConfig("cpu", {}),)
    assert config.expected is not None and config.expected.value == 0.195


def test_bare_name_finds_bundled_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_config("coco_val.yaml") == BUNDLED_CONFIG_DIR / "coco_val.yaml"
    assert find_config("coco_val") == BUNDLED_CONFIG_DIR / "coco_val.yaml"


def test_top_level_configs_folder_is_the_bundled_one():
    repo_configs = Path(__file__).resolve().parents[1] / "configs" / "coco_val.yaml"
    assert repo_configs.read_text() == (BUNDLED_CONFIG_DIR / "coco_val.yaml").read_text()


def test_missing_config_lists_bundled_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"'nope.yaml' not found \(bundled configs: .*coco_val.yaml"):
        load_config("nope.yaml")


def test_relative_paths_resolve_against_the_config_folder(tmp_path):
    config = load_config(_write(tmp_path, "model: {path: m/ssd.onnx}\ndataset: {root: ../coco}\n"))
    assert config.model.path == tmp_path / "m" / "ssd.onnx"
    assert config.dataset.root == tmp_path.parent / "coco"  # shown without `..` (issue 19)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model: {paht: x.onnx}\n", r"c.yaml: model.paht: unknown key \(known keys here: path, source"),
        ("providers: [{name: cpu}, {nmae: cuda}]\n", r"providers\[1\].nmae: unknown key"),
        (
            "providers: [{name: cpu}, {name: 3}]\n",
            r"providers\[1\].name: expected a string, got an integer 3",
        ),
        ("dataset: {limit: ten}\n", r"dataset.limit: expected an integer, got a string 'ten'"),
        ("dataset: {limit: 0}\n", r"dataset.limit: must be >= 1"),
        ("dataset: {selection: some}\n", r"dataset.selection: must be one of 'annotated', 'all', got 'some'"),
        ("decode: {clip_boxes: 'yes'}\n", r"decode.clip_boxes: expected true or false"),
        ("preprocess: {mean: [0.5, 0.5]}\n", r"preprocess.mean: expected a list of 3 values, got 2"),
        ("expected: {tolerance: 0.2}\n", r"expected.value: missing required key"),
        (
            "session: {intra_op_threads: -1}\n",
            r"session.intra_op_threads: must be between 0 \(onnxruntime.s default\) and 256, got -1",
        ),
        ("- just a list\n", r"<top level>: expected a mapping, got a list"),
        ("model: {path: null, source: null}\n", r"model: set `path`"),
        ("providers: []\n", r"providers: list at least one"),
    ],
)
def test_invalid_config_names_file_and_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message) as info:
        load_config(_write(tmp_path, text))
    assert str(tmp_path / "c.yaml") in str(info.value)
    assert "\n" not in str(info.value)


def test_invalid_yaml_names_the_line(tmp_path):
    with pytest.raises(ConfigError, match=r"c.yaml: line 3 invalid YAML: expected .,. or .\]."):
        load_config(_write(tmp_path, "model:\n  path: [unclosed\n"))


def test_empty_file_is_an_error_not_all_defaults(tmp_path):
    """An empty file silently meaning "all defaults" would start an 80 MB download (issue 10)."""
    for text in ("", "# only a comment\n"):
        with pytest.raises(ConfigError, match=r"c\.yaml: the config is empty"):
            load_config(_write(tmp_path, text))


@pytest.mark.parametrize(
    "preprocess",
    [
        "{mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}",  # the card's
        "{mean: [0, 0, 0], std: [1, 1, 1]}",  # the edges of the [0, 1] scale: no normalization
        "{mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], size: 32}",
    ],
)
def test_preprocess_on_the_cards_scale_is_accepted(tmp_path, preprocess):
    load_config(_write(tmp_path, f"preprocess: {preprocess}\n"))


@pytest.mark.parametrize(
    ("preprocess", "message"),
    [
        ("{mean: [1.0001, 0.5, 0.5]}", r"preprocess.mean: \[1.0001, 0.5, 0.5\] has values above 1, .*0-255"),
        ("{std: [255, 255, 255]}", r"preprocess.std: \[255, 255, 255\] has values above 1, .*divide by 255"),
        ("{std: [256, 1, 1]}", r"preprocess.std: \[256, 1, 1\]: every value must be in \(0, 1\]"),
        ("{std: [0.2, 0.2, 0.0]}", r"preprocess.std: \[0.2, 0.2, 0\]: every value must be in \(0, 1\]"),
        (
            "{mean: [0.5, -0.01, 0.5]}",
            r"preprocess.mean: \[0.5, -0.01, 0.5\]: every value must be in \[0, 1\]",
        ),
        ("{size: 31}", r"preprocess.size: must be >= 32 or null, got 31"),
    ],
)
def test_preprocess_off_the_cards_scale_is_refused(tmp_path, preprocess, message):
    with pytest.raises(ConfigError, match=r"c.yaml: " + message):
        load_config(_write(tmp_path, f"preprocess: {preprocess}\n"))


# The comparison config's dataset, preprocess, session, decode, gate and output sections are the run
# config's: it refuses what a run config refuses there, in the same words (issue 17).

COMPARE_BASE = "model: {path: m.onnx}\nruns: [{name: x}]\n"


def test_a_comparison_config_refuses_an_impossible_image_size_limit(tmp_path):
    path = _write(tmp_path, COMPARE_BASE + "dataset: {root: ., max_image_pixels: 0}\n")
    with pytest.raises(ConfigError) as info:
        load_compare_config(path)
    assert str(info.value) == (
        f"{path}: dataset.max_image_pixels: must be between 1 and 178956970 (Pillow refuses larger images), "
        "got 0"
    )


def test_a_comparison_config_refuses_a_negative_thread_count(tmp_path):
    path = _write(tmp_path, COMPARE_BASE + "dataset: {root: .}\nsession: {intra_op_threads: -5}\n")
    with pytest.raises(ConfigError) as info:
        load_compare_config(path)
    assert str(info.value) == (
        f"{path}: session.intra_op_threads: must be between 0 (onnxruntime's default) and 256, got -5"
    )


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ("dataset: {root: ., max_image_pixels: 178956971}", "dataset.max_image_pixels: must be between 1"),
        ("dataset: {root: ., limit: 0}", "dataset.limit: must be >= 1 or null, got 0"),
        ("dataset: {root: null, source: null}", "dataset: set `root` (a COCO folder) or `source`"),
        ("preprocess: {workers: -1}", "preprocess.workers: must be >= 0 or null, got -1"),
        ("preprocess: {size: 31}", "preprocess.size: must be >= 32 or null, got 31"),
        ("preprocess: {std: [255, 255, 255]}", "preprocess.std: [255, 255, 255] has values above 1"),
        ("session: {inter_op_threads: -1}", "session.inter_op_threads: must be between 0 (onnxruntime's"),
        (
            "session: {intra_op_threads: 1000000}",
            "session.intra_op_threads: must be between 0 (onnxruntime's default) and 256, got 1000000",
        ),
        (
            "preprocess: {workers: 65}",
            "preprocess.workers: must be at most 64 (threads decoding ahead), got 65",
        ),
        ("preprocess: {size: 4097}", "preprocess.size: must be at most 4096 (pixels a side), got 4097"),
        ("decode: {score_threshold: 1.0}", "decode.score_threshold: must be in [0, 1)"),
        ("gate: {min_ap: 2}", "gate.min_ap: must be in [0, 1] or null, got 2"),
        ("output: {run_name: a/b}", "output.run_name: must be one folder name without '/', got 'a/b'"),
    ],
)
def test_both_configs_refuse_the_same_shared_values_in_the_same_words(tmp_path, section, problem):
    """The run config's message, whole, is the comparison config's."""
    messages = []
    for name, load, base in (("run", load_config, ""), ("compare", load_compare_config, COMPARE_BASE)):
        folder = tmp_path / name
        folder.mkdir()
        text = base + ("" if section.startswith("dataset") else "dataset: {root: .}\n") + section + "\n"
        with pytest.raises(ConfigError) as info:
            load(_write(folder, text))
        messages.append(str(info.value).removeprefix(str(folder / "c.yaml") + ": "))
    assert messages[0] == messages[1]
    assert messages[0].startswith(problem)


# `ssd-eval compare RUN_DIR RUN_DIR --run-name NAME`: NAME is one folder name, as for `run` (issue 17).


@pytest.mark.parametrize(
    ("name", "line"),
    [
        (
            "../x",
            "ssd-eval: error: --run-name must be one folder name without '/', got '../x' "
            "(the run folder goes into output.dir / --output)",
        ),
        (
            "a/b",
            "ssd-eval: error: --run-name must be one folder name without '/', got 'a/b' "
            "(the run folder goes into output.dir / --output)",
        ),
        ("..", "ssd-eval: error: --run-name must be a folder name, got '..'"),
    ],
)
def test_comparing_run_folders_refuses_a_run_name_that_is_a_path(tmp_path, tiny_coco, capsys, name, line):
    model = save_table_detector(tmp_path / "perfect.onnx", tiny_coco, TINY_GT)
    config = write_config(tmp_path / "run.yaml", model, tiny_coco)
    for run in ("a", "b"):
        assert main(["--config", str(config), "--run-name", run, "--quiet"]) == 0
    runs = [str(tmp_path / "results" / "a"), str(tmp_path / "results" / "b")]
    out = tmp_path / "cmp" / "inner"
    before = sorted(p for p in tmp_path.rglob("*"))
    capsys.readouterr()
    assert main(["compare", *runs, "--output", str(out), "--run-name", name, "--quiet"]) == 2
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [line]
    assert sorted(p for p in tmp_path.rglob("*")) == before  # nothing written, not even the --output
