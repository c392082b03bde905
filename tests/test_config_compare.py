"""The comparison config (ssd_eval/config/compare.py): its defaults (docs/compare.md, docs/agreement.md),
how it names its runs, and every impossible value of its own refused in one whole line."""

from __future__ import annotations

from pathlib import Path

import pytest

from ssd_eval.config.compare import (
    CompareConfig,
    CompareGateConfig,
    RunSpec,
    check_compare_gate_values,
    compare_config_from_dict,
    load_compare_config,
    run_name,
)
from ssd_eval.config.run import ModelConfig, ProviderConfig
from ssd_eval.config.schema import config_to_dict
from ssd_eval.errors import ConfigError

BASE = {"runs": [{"name": "x"}]}


def refusal(raw: object, tmp_path: Path) -> str:
    with pytest.raises(ConfigError) as info:
        compare_config_from_dict(raw, base_dir=tmp_path)
    return str(info.value)


def test_the_comparisons_own_defaults_are_the_documented_ones(tmp_path):
    """docs/agreement.md: iou_threshold 0.5, min_score 0.1; docs/compare.md: 4 disagreement pictures a
    run, boxes scoring >= 0.3, 640 px a side; every comparison rule off."""
    config = compare_config_from_dict(BASE, base_dir=tmp_path)
    tree = config_to_dict(config)
    assert tree["agreement"] == {"iou_threshold": 0.5, "min_score": 0.1}
    assert tree["pictures"] == {"pr_curves": True, "disagreements": 4, "min_score": 0.3, "max_side": 640}
    for rule in ("max_ap_drop", "max_class_ap_drop", "min_matched", "max_extra", "max_score_diff"):
        assert tree["gate"][rule] is None
    assert tree["gate"]["max_box_diff"] is None and tree["gate"]["min_full_agreement"] is None
    assert tree["reference"] == {
        "name": None,
        "provider": {"name": "cpu", "options": {}},
        "model": None,
        "note": "",
    }
    assert tree["runs"] == [
        {"name": "x", "provider": {"name": "cpu", "options": {}}, "model": None, "note": ""}
    ]
    assert tree["skip_unavailable"] is False
    assert "source_file" not in tree and config.source_file is None


def test_a_run_is_named_by_its_name_else_its_providers_short_name():
    assert run_name(RunSpec(name="int8")) == "int8"
    assert run_name(RunSpec(provider=ProviderConfig(name="OpenVINOExecutionProvider"))) == "openvino"
    assert run_name(RunSpec(name="", provider=ProviderConfig(name="cuda"))) == "cuda"
    assert run_name(RunSpec()) == "cpu"


def test_each_side_is_a_run_config_of_the_shared_sections(tmp_path):
    raw = {
        "model": {"path": "m.onnx"},
        "reference": {"name": "ref"},
        "runs": [
            {"name": "ov", "provider": {"name": "openvino", "options": {"device_type": "CPU"}}},
            {"name": "int8", "model": {"path": "m-int8.onnx"}},
        ],
        "dataset": {"root": "coco", "limit": 7},
        "preprocess": {"backend": "opencv", "size": 300},
        "session": {"intra_op_threads": 2},
        "decode": {"score_threshold": 0.05},
        "scoring": {"backend": "numpy"},
        "output": {"run_name": "cmp"},
        "assets": {"download": False},
        "agreement": {"iou_threshold": 0.75},
        "gate": {"max_ap_drop": 0.01},
        "pictures": {"disagreements": 0},
    }
    source = tmp_path / "cmp.yaml"
    config = compare_config_from_dict(raw, base_dir=tmp_path, source=source)
    assert config.source_file == source
    assert [run_name(spec) for spec in config.all_runs] == ["ref", "ov", "int8"]
    ov = config.run_config(config.runs[0])
    assert ov.model.path == tmp_path / "m.onnx"
    assert ov.providers == (ProviderConfig("openvino", {"device_type": "CPU"}),)
    assert ov.dataset.root == tmp_path / "coco" and ov.dataset.limit == 7
    assert (ov.preprocess.backend, ov.preprocess.size) == ("opencv", 300)
    assert ov.session.intra_op_threads == 2
    assert ov.decode.score_threshold == 0.05
    assert ov.scoring.backend == "numpy"
    assert ov.output.run_name == "cmp"
    assert ov.assets.download is False
    assert ov.expected is None and ov.gate.max_baseline_drop is None
    assert config.run_config(config.runs[1]).model == ModelConfig(path=tmp_path / "m-int8.onnx")
    settings = config.settings
    assert settings.agreement.iou_threshold == 0.75
    assert settings.gate.max_ap_drop == 0.01
    assert settings.pictures.disagreements == 0


def test_load_compare_config_resolves_paths_against_the_files_folder(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "cmp.yaml").write_text("model: {path: m.onnx}\nruns: [{name: x}]\n")
    monkeypatch.chdir(tmp_path)
    config = load_compare_config("sub/cmp.yaml")
    assert config.model.path == tmp_path / "sub" / "m.onnx"
    assert config.source_file == Path("sub/cmp.yaml")
    assert isinstance(config, CompareConfig)


def test_the_line_names_the_file(tmp_path):
    source = tmp_path / "cmp.yaml"
    with pytest.raises(ConfigError) as info:
        compare_config_from_dict({}, base_dir=tmp_path, source=source)
    assert (
        str(info.value)
        == f"{source}: runs: missing required key (list the runs to compare with the reference)"
    )
    with pytest.raises(ConfigError) as info:
        compare_config_from_dict({"runs": []}, base_dir=tmp_path, source=source)
    assert str(info.value).startswith(f"{source}: runs: list at least one run")


COMPARE_REFUSED = [
    ({}, "runs: missing required key (list the runs to compare with the reference)"),
    (["runs"], "<top level>: expected a mapping, got a list"),
    (
        {"runs": []},
        "runs: list at least one run to compare with the reference, e.g. [{provider: {name: openvino}}]",
    ),
    ({"runs": [{"name": "a/b"}]}, "runs[0].name: must be a plain name, got 'a/b'"),
    ({"runs": [{"name": "x"}, {"name": ".."}]}, "runs[1].name: must be a plain name, got '..'"),
    ({"reference": {"name": "."}, "runs": [{"name": "x"}]}, "reference.name: must be a plain name, got '.'"),
    (
        {"runs": [{"provider": {"name": "ExecutionProvider"}}]},
        "runs[0].name: must be a plain name, got ''",
    ),
    (
        {"runs": [{"provider": {"name": "CPUExecutionProvider"}}]},
        "runs[0].name: 'cpu' is already the name of reference: give each run a name",
    ),
    (
        {"runs": [{"name": "a"}, {"name": "b"}, {"name": "a"}]},
        "runs[2].name: 'a' is already the name of runs[0]: give each run a name",
    ),
    (
        {"model": {"path": None, "source": None}, "runs": [{"name": "x"}]},
        "reference.model: set `path` (an ONNX file) or `source` (e.g. ssd-10, twin-1200)",
    ),
    (
        {"runs": [{"name": "x", "model": {"path": None, "source": None}}]},
        "runs[0].model: set `path` (an ONNX file) or `source` (e.g. ssd-10, twin-1200)",
    ),
    (
        {**BASE, "preprocess": {"backend": "onnx-normalize"}},
        "preprocess.backend: a comparison feeds one host-made tensor to every run: use pillow or opencv "
        "(got 'onnx-normalize', which finishes preprocessing on each provider)",
    ),
    (
        {**BASE, "preprocess": {"backend": "onnx-resize"}},
        "preprocess.backend: a comparison feeds one host-made tensor to every run: use pillow or opencv "
        "(got 'onnx-resize', which finishes preprocessing on each provider)",
    ),
    ({**BASE, "agreement": {"iou_threshold": 0.0}}, "agreement.iou_threshold: must be in (0, 1]"),
    ({**BASE, "agreement": {"iou_threshold": 1.01}}, "agreement.iou_threshold: must be in (0, 1]"),
    ({**BASE, "agreement": {"min_score": 1.0}}, "agreement.min_score: must be in [0, 1), got 1.0"),
    ({**BASE, "agreement": {"min_score": -0.1}}, "agreement.min_score: must be in [0, 1), got -0.1"),
    ({**BASE, "gate": {"max_ap_drop": 1.5}}, "gate.max_ap_drop: must be in [0, 1] or null, got 1.5"),
    (
        {**BASE, "gate": {"max_class_ap_drop": -0.1}},
        "gate.max_class_ap_drop: must be in [0, 1] or null, got -0.1",
    ),
    ({**BASE, "gate": {"min_matched": 2}}, "gate.min_matched: must be in [0, 1] or null, got 2.0"),
    ({**BASE, "gate": {"max_extra": 1.01}}, "gate.max_extra: must be in [0, 1] or null, got 1.01"),
    (
        {**BASE, "gate": {"min_full_agreement": -1}},
        "gate.min_full_agreement: must be in [0, 1] or null, got -1.0",
    ),
    (
        {**BASE, "gate": {"max_score_diff": 1.5}},
        "gate.max_score_diff: must be in [0, 1] (scores are), got 1.5",
    ),
    (
        {**BASE, "gate": {"max_score_diff": -0.01}},
        "gate.max_score_diff: must be in [0, 1] (scores are), got -0.01",
    ),
    ({**BASE, "gate": {"max_box_diff": -1}}, "gate.max_box_diff: must be a number of pixels >= 0, got -1.0"),
    ({**BASE, "gate": {"min_ap": 1.5}}, "gate.min_ap: must be in [0, 1] or null, got 1.5"),
    ({**BASE, "pictures": {"disagreements": -1}}, "pictures.disagreements: must be >= 0"),
    ({**BASE, "pictures": {"max_side": 63}}, "pictures.max_side: must be >= 64"),
    ({**BASE, "output": {"run_name": ".."}}, "output.run_name: must be a folder name, got '..'"),
]


@pytest.mark.parametrize(
    ("raw", "line"), COMPARE_REFUSED, ids=[line.split(":")[0] for _, line in COMPARE_REFUSED]
)
def test_an_impossible_comparison_is_one_whole_line(tmp_path, raw, line):
    assert refusal(raw, tmp_path) == f"config: {line}"


COMPARE_ACCEPTED = [
    {"runs": [{"provider": {"name": "openvino"}}]},  # named "openvino" beside the reference's "cpu"
    {"reference": {"name": "a"}, "runs": [{"name": "b"}, {"name": "c", "model": {"path": "int8.onnx"}}]},
    {
        "model": {"path": None, "source": None},
        "reference": {"model": {"path": "m.onnx"}},
        "runs": [{"name": "x", "model": {"source": "twin-600"}}],
    },
    {**BASE, "preprocess": {"backend": "opencv"}},
    {**BASE, "agreement": {"iou_threshold": 1.0, "min_score": 0.0}},
    {**BASE, "agreement": {"iou_threshold": 0.001, "min_score": 0.999}},
    {**BASE, "gate": {"max_ap_drop": 0.0, "max_class_ap_drop": 1.0, "min_matched": 1.0, "max_extra": 0.0}},
    {**BASE, "gate": {"min_full_agreement": 1.0, "max_score_diff": 0.0, "max_box_diff": 0.0}},
    {**BASE, "gate": {"max_score_diff": 1.0, "max_box_diff": 1e9}},
    {**BASE, "pictures": {"disagreements": 0, "max_side": 64}},
]


@pytest.mark.parametrize("raw", COMPARE_ACCEPTED)
def test_a_comparison_on_a_bound_is_accepted(tmp_path, raw):
    assert isinstance(compare_config_from_dict(raw, base_dir=tmp_path), CompareConfig)


def test_the_comparison_rules_are_checked_under_the_key_given():
    """The flags' check (`--max-ap-drop`) names its own key."""
    gate = CompareGateConfig(max_ap_drop=2.0, max_score_diff=3.0, max_box_diff=-2.0)
    assert check_compare_gate_values(gate, "limits") == [
        ("limits.max_ap_drop", "must be in [0, 1] or null, got 2.0"),
        ("limits.max_score_diff", "must be in [0, 1] (scores are), got 3.0"),
        ("limits.max_box_diff", "must be a number of pixels >= 0, got -2.0"),
    ]
    assert check_compare_gate_values(CompareGateConfig()) == []
