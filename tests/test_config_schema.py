"""Strict YAML -> frozen dataclasses (ssd_eval/config/schema.py): finding the file, each type's refusal
as one whole line naming the dotted key, path resolution, and the tree written back."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from ssd_eval.config.run import ProviderConfig, config_from_dict
from ssd_eval.config.schema import (
    BUNDLED_CONFIG_DIR,
    absolute,
    config_to_dict,
    find_config,
    parse_section,
    raise_first_problem,
    read_yaml_config,
)
from ssd_eval.errors import ConfigError

BUNDLED = "coco_val.yaml, compare_providers.yaml, compare_same_model.yaml, smoke.yaml"


def refusal(raw: object, tmp_path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw, base_dir=tmp_path)
    return str(info.value)


# --- finding and reading the file -------------------------------------------------------------------


def test_the_bundled_configs_are_the_packages_configs_folder():
    assert Path(__file__).resolve().parents[1] / "ssd_eval" / "configs" == BUNDLED_CONFIG_DIR


def test_a_file_given_by_its_path_is_that_file(tmp_path, monkeypatch):
    mine = tmp_path / "coco_val.yaml"  # same name as a bundled one: the user's file wins
    mine.write_text("model: {path: m.onnx}\n")
    monkeypatch.chdir(tmp_path)
    assert find_config("coco_val.yaml") == Path("coco_val.yaml")
    assert find_config(mine) == mine


def test_a_home_relative_path_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "mine.yaml").write_text("model: {path: m.onnx}\n")
    assert find_config("~/mine.yaml") == tmp_path / "mine.yaml"


def test_a_bare_name_finds_a_bundled_config_with_or_without_yaml(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert find_config("smoke") == BUNDLED_CONFIG_DIR / "smoke.yaml"
    assert find_config("smoke.yaml") == BUNDLED_CONFIG_DIR / "smoke.yaml"


def test_a_name_in_a_folder_is_not_looked_up_among_the_bundled_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        find_config("configs/smoke")
    assert str(info.value) == f"config file 'configs/smoke' not found (bundled configs: {BUNDLED})"


def test_a_missing_config_lists_the_bundled_ones(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as info:
        find_config("nope")
    assert str(info.value) == f"config file 'nope' not found (bundled configs: {BUNDLED})"


def test_a_name_too_long_for_the_file_system_is_one_short_line():
    with pytest.raises(ConfigError) as info:
        find_config("c" * 300)
    assert str(info.value) == f"config file '{'c' * 60}'...: File name too long"


def test_an_empty_config_is_refused_with_what_to_do(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing\n")
    with pytest.raises(ConfigError) as info:
        read_yaml_config(path)
    assert str(info.value) == (
        f"{path}: the config is empty; start from a bundled one (configs/coco_val.yaml) or give at least one "
        "section, e.g. `model: {source: ssd-10}`"
    )


def test_read_yaml_config_gives_the_tree_and_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: {path: m.onnx}\n")
    assert read_yaml_config(path) == ({"model": {"path": "m.onnx"}}, path)


# --- paths --------------------------------------------------------------------------------------------


def test_absolute_joins_the_current_folder_and_drops_dots(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert absolute("a/./b/../c.onnx") == tmp_path / "a" / "c.onnx"
    assert absolute(Path("/x/y/../z")) == Path("/x/z")
    assert absolute(tmp_path) == tmp_path


def test_absolute_keeps_a_symbolic_link_unless_a_dotdot_follows_it(tmp_path):
    (tmp_path / "real" / "inner" / "deep").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real" / "inner")
    # The link is kept as written; `.` and `..` inside its target are dropped where that names the same file.
    assert absolute(tmp_path / "link" / "." / "x") == tmp_path / "link" / "x"
    assert absolute(tmp_path / "link" / "deep" / ".." / "x") == tmp_path / "link" / "x"
    # `..` right after the link is its target's parent, not the link's folder.
    assert absolute(tmp_path / "link" / ".." / "x") == tmp_path / "real" / "x"


def test_a_config_path_resolves_against_the_base_folder_and_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    config = config_from_dict(
        {
            "model": {"path": "~/m.onnx"},
            "dataset": {"root": "/data/../coco"},
            "gate": {"baseline": "b.json", "max_baseline_drop": 0.003},
        },
        base_dir=tmp_path / "cfg",
    )
    assert config.model.path == tmp_path / "home" / "m.onnx"
    assert config.dataset.root == Path("/coco")
    assert config.gate.baseline == tmp_path / "cfg" / "b.json"


# --- one type at a time: the refusal, whole ---------------------------------------------------------


TYPE_REFUSED = [
    ("just text", "<top level>: expected a mapping, got a string"),
    ([1], "<top level>: expected a mapping, got a list"),
    ({"model": "ssd-10"}, "model: expected a mapping, got a string"),
    ({"model": None}, "model: expected a mapping, got null"),
    (
        {"modle": {}},
        "modle: unknown key (known keys here: model, dataset, preprocess, providers, session, "
        "decode, scoring, output, expected, gate, assets, report)",
    ),
    (
        {"source_file": "x.yaml"},
        "source_file: unknown key (known keys here: model, dataset, preprocess, "
        "providers, session, decode, scoring, output, expected, gate, assets, report)",
    ),
    (
        {"model": {"outputs": {"box": "b"}}},
        "model.outputs.box: unknown key (known keys here: boxes, labels, scores)",
    ),
    ({"model": {3: "x"}}, "model.3: unknown key (known keys here: path, source, input, outputs)"),
    ({"expected": {"tolerance": 0.1}}, "expected.value: missing required key"),
    (
        {"dataset": {"selection": "every"}},
        "dataset.selection: must be one of 'annotated', 'all', got 'every'",
    ),
    ({"dataset": {"selection": None}}, "dataset.selection: must be one of 'annotated', 'all', got None"),
    ({"preprocess": {"mean": "0.5"}}, "preprocess.mean: expected a list, got a string"),
    ({"preprocess": {"mean": {"r": 0.5}}}, "preprocess.mean: expected a list, got a mapping"),
    ({"preprocess": {"mean": [0.5, 0.5, 0.5, 0.5]}}, "preprocess.mean: expected a list of 3 values, got 4"),
    ({"preprocess": {"std": [0.5, "x", 0.5]}}, "preprocess.std[1]: expected a number, got a string 'x'"),
    ({"providers": {"name": "cpu"}}, "providers: expected a list, got a mapping"),
    ({"providers": [{"name": "cpu"}, "cuda"]}, "providers[1]: expected a mapping, got a string"),
    (
        {"gate": {"baseline_stats": ["AP", 50]}},
        "gate.baseline_stats[1]: expected a string, got an integer 50",
    ),
    ({"providers": [{"options": [1]}]}, "providers[0].options: expected a mapping, got a list"),
    ({"providers": [{"options": {1: "x"}}]}, "providers[0].options: keys must be strings, got 1"),
    (
        {"providers": [{"options": {"a": float("nan")}}]},
        "providers[0].options.a: expected a finite number, got nan",
    ),
    (
        {"providers": [{"options": {"a": {"b": [1, float("-inf")]}}}]},
        "providers[0].options.a.b[1]: expected a finite number, got -inf",
    ),
    ({"model": {"path": 3}}, "model.path: expected a path (a string), got an integer"),
    ({"model": {"path": ""}}, "model.path: expected a path (a string), got a string"),
    ({"model": {"path": ["a"]}}, "model.path: expected a path (a string), got a list"),
    ({"decode": {"clip_boxes": "yes"}}, "decode.clip_boxes: expected true or false, got a string 'yes'"),
    ({"decode": {"clip_boxes": 1}}, "decode.clip_boxes: expected true or false, got an integer 1"),
    ({"dataset": {"limit": True}}, "dataset.limit: expected an integer, got a boolean True"),
    ({"dataset": {"limit": 2.0}}, "dataset.limit: expected an integer, got a number 2.0"),
    ({"dataset": {"limit": "5"}}, "dataset.limit: expected an integer, got a string '5'"),
    (
        {"decode": {"score_threshold": False}},
        "decode.score_threshold: expected a number, got a boolean False",
    ),
    ({"decode": {"score_threshold": "0.5"}}, "decode.score_threshold: expected a number, got a string '0.5'"),
    ({"decode": {"score_threshold": None}}, "decode.score_threshold: expected a number, got null None"),
    (
        {"decode": {"score_threshold": float("inf")}},
        "decode.score_threshold: expected a finite number, got inf",
    ),
    (
        {"decode": {"score_threshold": float("nan")}},
        "decode.score_threshold: expected a finite number, got nan",
    ),
    ({"model": {"input": 7}}, "model.input: expected a string, got an integer 7"),
    ({"model": {"input": None}}, "model.input: expected a string, got null None"),
    ({"model": {"input": 0.5}}, "model.input: expected a string, got a number 0.5"),
    ({"model": {"input": {"a": 1}}}, "model.input: expected a string, got a mapping {'a': 1}"),
    # from Python (ssd_eval.evaluate(config={...})) a value can be of a type YAML never makes
    ({"decode": {"clip_boxes": b"yes"}}, "decode.clip_boxes: expected true or false, got bytes b'yes'"),
    ({"dataset": {"limit": {1, 2}}}, "dataset.limit: expected an integer, got set {1, 2}"),
]


@pytest.mark.parametrize(("raw", "line"), TYPE_REFUSED, ids=[line.split(":")[0] for _, line in TYPE_REFUSED])
def test_a_wrong_type_is_one_whole_line(tmp_path, raw, line):
    assert refusal(raw, tmp_path) == f"config: {line}"


def test_each_type_converts_to_the_schemas(tmp_path):
    config = config_from_dict(
        {
            "model": {"path": None},
            "dataset": {"limit": 3},
            "preprocess": {"mean": [0, 1, 0.5]},
            "providers": [{"name": "cuda", "options": {"device_id": 0, "list": [1.5, {"x": None}]}}],
            "decode": {"score_threshold": 0, "clip_boxes": True},
            "expected": {"value": 1},
        },
        base_dir=tmp_path,
    )
    assert config.model.path is None and config.model.source == "ssd-10"
    assert config.dataset.limit == 3
    assert config.preprocess.mean == (0.0, 1.0, 0.5) and all(type(v) is float for v in config.preprocess.mean)
    assert config.providers == (ProviderConfig("cuda", {"device_id": 0, "list": [1.5, {"x": None}]}),)
    assert type(config.decode.score_threshold) is float and config.decode.clip_boxes is True
    assert config.expected is not None and type(config.expected.value) is float


def test_a_mapping_given_is_copied_not_shared(tmp_path):
    options = {"device_id": 0}
    config = config_from_dict({"providers": [{"options": options}]}, base_dir=tmp_path)
    options["device_id"] = 1
    assert config.providers[0].options == {"device_id": 0}


# --- parse_section on any schema ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Leaf:
    count: int
    tags: tuple[str, ...] = ()
    extra: Any = None
    mode: Literal["a", "b"] = "a"
    children: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class _Odd:
    either: int | str = 0


@dataclass(frozen=True)
class _Pair:
    pair: tuple[int, str] = (0, "")


def test_a_fixed_tuple_of_two_is_two_values_of_their_own_types(tmp_path):
    assert parse_section({"pair": [1, "a"]}, _Pair, base_dir=tmp_path, where="w") == _Pair((1, "a"))
    for value, line in (
        ([1, 2], "w: pair[1]: expected a string, got an integer 2"),
        ([1], "w: pair: expected a list of 2 values, got 1"),
        ([1, "a", "b"], "w: pair: expected a list of 2 values, got 3"),
    ):
        with pytest.raises(ConfigError) as info:
            parse_section({"pair": value}, _Pair, base_dir=tmp_path, where="w")
        assert str(info.value) == line


def test_parse_section_names_the_place_and_the_key_given(tmp_path):
    leaf = parse_section(
        {"count": 2, "tags": ["x", "y"], "extra": [1, {"k": 2}]}, _Leaf, base_dir=tmp_path, where="w"
    )
    assert leaf == _Leaf(count=2, tags=("x", "y"), extra=[1, {"k": 2}])
    with pytest.raises(ConfigError) as info:
        parse_section(
            {"count": 2, "extra": {"k": float("nan")}}, _Leaf, base_dir=tmp_path, where="w.yaml", key="leaf"
        )
    assert str(info.value) == "w.yaml: leaf.extra.k: expected a finite number, got nan"
    with pytest.raises(ConfigError) as info:
        parse_section({}, _Leaf, base_dir=tmp_path, where="w.yaml", key="leaf")
    assert str(info.value) == "w.yaml: leaf.count: missing required key"
    with pytest.raises(ConfigError) as info:
        parse_section([], _Leaf, base_dir=tmp_path, where="w.yaml")
    assert str(info.value) == "w.yaml: <top level>: expected a mapping, got a list"


def test_a_schema_type_the_loader_does_not_know_is_named(tmp_path):
    """A schema bug, not a user's: still one line, naming the key."""
    with pytest.raises(ConfigError) as info:
        parse_section({"count": 1, "children": [1]}, _Leaf, base_dir=tmp_path, where="w")
    assert str(info.value) == "w: children: unsupported type list[int]"
    with pytest.raises(ConfigError) as info:
        parse_section({"either": 1}, _Odd, base_dir=tmp_path, where="w")
    assert str(info.value) == "w: either: unsupported union int | str"


def test_raise_first_problem_names_the_first_only():
    raise_first_problem([], "w.yaml")  # nothing to say
    with pytest.raises(ConfigError) as info:
        raise_first_problem([("a.b", "first"), ("c", "second")], "w.yaml")
    assert str(info.value) == "w.yaml: a.b: first"


# --- the tree written back ----------------------------------------------------------------------------


def test_config_to_dict_writes_plain_yaml_data(tmp_path):
    config = config_from_dict(
        {"model": {"path": "m.onnx"}, "providers": [{"name": "cuda", "options": {"paths": ["a"]}}]},
        base_dir=tmp_path,
        source=tmp_path / "c.yaml",
    )
    tree = config_to_dict(config)
    assert tree["model"]["path"] == str(tmp_path / "m.onnx")
    assert tree["providers"] == [{"name": "cuda", "options": {"paths": ["a"]}}]
    assert tree["preprocess"]["mean"] == [0.485, 0.456, 0.406]
    assert "source_file" not in tree
    # read back, it is the same config
    again = config_from_dict(tree, base_dir=Path("/elsewhere"), source=tmp_path / "c.yaml")
    assert again == config
    assert config_to_dict(ProviderConfig) is ProviderConfig  # a class is not a value
    assert config_to_dict({"p": Path("/a"), "t": (1, Path("/b"))}) == {"p": "/a", "t": [1, "/b"]}
    assert os.fspath(tmp_path) in tree["model"]["path"]
