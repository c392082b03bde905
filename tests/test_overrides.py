"""The options of `ssd_eval.evaluate` (and the flags of `ssd-eval run`) folded into a run config
(`ssd_eval.engine.overrides`): each checked, named as the caller gave it, and applied to a copy.

Every refusal is asserted as its whole line, written out here; the values expected are the options
given (paths resolved against the test's current folder) and the config's documented defaults
(tolerance 0.003, docs/gates.md).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import MappingProxyType

import pytest

from ssd_eval.config.run import ExpectedConfig, GateConfig, ProviderConfig, RunConfig
from ssd_eval.engine.overrides import (
    check_run_name,
    option_key,
    plain_tree,
    with_baseline,
    with_expected,
    with_model,
    with_options,
    with_run_name,
)
from ssd_eval.errors import ConfigError

KNOWN = "known models: ssd-10, ssd-12, ssd-12-int8, ssd-12-qdq, twin-<input size> (e.g. twin-1200)"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    """Relative paths resolve against the test's own folder."""
    monkeypatch.chdir(tmp_path)


def _refused(call, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        call()
    assert str(raised.value) == message


def test_option_key_is_the_keyword_or_the_flag():
    assert option_key("run_name", False) == "run_name"
    assert option_key("run_name", True) == "--run-name"
    assert option_key("max_baseline_drop", True) == "--max-baseline-drop"
    assert option_key("limit", True) == "--limit"


def test_plain_tree_is_what_yaml_parses_to():
    given = MappingProxyType({"a": (1, Path("x/y")), "b": [{"c": Path("/z")}], "d": "text", "e": None})
    assert plain_tree(given) == {"a": [1, "x/y"], "b": [{"c": "/z"}], "d": "text", "e": None}
    assert type(plain_tree(given)) is dict and type(plain_tree((1, 2))) is list
    assert plain_tree(Path("p")) == "p" and plain_tree(2.5) == 2.5


def test_no_option_leaves_the_config_as_it_is():
    config = RunConfig()
    assert with_options(config) == config
    assert with_expected(config) is config
    assert with_baseline(config) is config


def test_each_option_replaces_its_key(tmp_path):
    config = with_options(
        RunConfig(),
        model="net.onnx",
        data="coco",
        limit=3,
        provider="cuda",
        output="out",
        run_name="mine",
        require_gate=True,
        image_ids="ids.txt",
    )
    assert (config.model.path, config.model.source) == (tmp_path / "net.onnx", None)
    assert (config.dataset.root, config.dataset.source) == (tmp_path / "coco", None)
    assert config.dataset.limit == 3 and config.dataset.image_ids == tmp_path / "ids.txt"
    assert config.providers == (ProviderConfig(name="cuda"),)
    assert config.output.dir == tmp_path / "out" and config.output.run_name == "mine"
    assert config.gate.required is True
    # What was not given stays the config's own.
    assert config.dataset.annotations == "annotations/instances_val2017.json"
    assert config.output.overwrite is False and config.gate.metric == "AP"


def test_a_provider_list_keeps_its_order_and_limit_one_is_allowed():
    config = with_options(RunConfig(), provider=["openvino", "cpu"], limit=1)
    assert config.providers == (ProviderConfig(name="openvino"), ProviderConfig(name="cpu"))
    assert config.dataset.limit == 1


def test_require_gate_false_keeps_the_configs_own():
    required = dataclasses.replace(RunConfig(), gate=GateConfig(required=True))
    assert with_options(required, require_gate=False).gate.required is True
    assert with_options(RunConfig(), require_gate=False).gate.required is False


@pytest.mark.parametrize("limit", [0, -2, True, 2.5, "3"])
def test_a_limit_that_is_no_whole_number_from_one_is_refused(limit):
    _refused(
        lambda: with_options(RunConfig(), limit=limit),  # type: ignore[arg-type]
        f"limit: must be a whole number >= 1, got {limit!r}",
    )
    _refused(
        lambda: with_options(RunConfig(), limit=limit, flags=True),  # type: ignore[arg-type]
        f"--limit: must be a whole number >= 1, got {limit!r}",
    )


def test_image_ids_must_be_a_path():
    _refused(
        lambda: with_options(RunConfig(), image_ids=[1, 2]),  # type: ignore[arg-type]
        "image_ids: give the path of a file of image ids (one per line, or a JSON list), got list",
    )
    _refused(
        lambda: with_options(RunConfig(), image_ids=7, flags=True),  # type: ignore[arg-type]
        "--image-ids: give the path of a file of image ids (one per line, or a JSON list), got int",
    )


@pytest.mark.parametrize("provider", [[], "", [""], ["cpu", 3], ()])
def test_a_provider_that_names_nothing_is_refused(provider):
    _refused(
        lambda: with_options(RunConfig(), provider=provider),
        f"provider: give a provider name (cpu, cuda, openvino, ...) or a list of them, got {provider!r}",
    )
    _refused(
        lambda: with_options(RunConfig(), provider=provider, flags=True),
        f"--provider: give a provider name (cpu, cuda, openvino, ...) or a list of them, got {provider!r}",
    )


def test_options_name_their_flag_in_the_checks_they_pass_on():
    _refused(
        lambda: with_options(RunConfig(), run_name="a/b", flags=True),
        "--run-name must be one folder name without '/', got 'a/b' (the run folder goes into output.dir / "
        "--output)",
    )
    _refused(
        lambda: with_options(RunConfig(), model="ssd-13", flags=True),
        f"--model 'ssd-13' is neither a file nor a known model name: did you mean ssd-12? {KNOWN}; a file "
        "is given by its path",
    )


def test_a_known_model_name_is_a_source(tmp_path):
    config = with_model(RunConfig(), "ssd-12-int8")
    assert (config.model.path, config.model.source) == (None, "ssd-12-int8")
    # Any twin size is a name; a file of a known name here is that file.
    assert with_model(RunConfig(), "twin-601").model.source == "twin-601"
    # A name replaces a file the config gave: the model is the named one, not that file.
    from_file = with_model(RunConfig(), tmp_path / "mine.onnx")
    assert from_file.model.path == tmp_path / "mine.onnx"
    assert (with_model(from_file, "ssd-10").model.path, with_model(from_file, "ssd-10").model.source) == (
        None,
        "ssd-10",
    )
    (tmp_path / "ssd-12").write_bytes(b"onnx")
    assert with_model(RunConfig(), "ssd-12").model == dataclasses.replace(
        RunConfig().model, path=tmp_path / "ssd-12", source=None
    )


def test_a_model_file_is_a_path_even_before_it_exists(tmp_path):
    for given, path in [
        ("missing.onnx", tmp_path / "missing.onnx"),
        ("MODEL.ONNX", tmp_path / "MODEL.ONNX"),
        (Path("sub/model"), tmp_path / "sub" / "model"),
        ("/abs/model", Path("/abs/model")),
    ]:
        assert (with_model(RunConfig(), given).model.path, with_model(RunConfig(), given).model.source) == (
            path,
            None,
        )


def test_a_bare_word_that_is_no_model_lists_the_known_names():
    _refused(
        lambda: with_model(RunConfig(), "ssd-13"),
        f"model 'ssd-13' is neither a file nor a known model name: did you mean ssd-12? {KNOWN}; a file is "
        "given by its path",
    )
    _refused(
        lambda: with_model(RunConfig(), "twin-x"),
        f"model 'twin-x' is neither a file nor a known model name: did you mean twin-600? {KNOWN}; a file is "
        "given by its path",
    )
    _refused(
        lambda: with_model(RunConfig(), "banana", flags=True),
        f"--model 'banana' is neither a file nor a known model name: {KNOWN}; a file is given by its path",
    )


def test_run_names_are_one_folder_name():
    assert with_run_name(RunConfig(), "r1").output.run_name == "r1"
    check_run_name("r1", True)
    _refused(lambda: check_run_name("..", False), "run_name must be a folder name, got '..'")
    _refused(lambda: check_run_name(3, True), "--run-name must be a folder name, got 3")  # type: ignore[arg-type]
    _refused(
        lambda: with_run_name(RunConfig(), "a\\b"),
        "run_name must be one folder name without '\\\\', got 'a\\\\b' (the run folder goes into output.dir "
        "/ --output)",
    )


# --- with_expected --------------------------------------------------------------------------------

PINNED = ExpectedConfig(value=0.195, tolerance=0.01, metric="AP50", model_sha256="ab" * 32, selection="all")


def test_expect_ap_alone_is_a_figure_with_the_default_tolerance():
    config = with_expected(RunConfig(), expect_ap=0.2)
    assert config.expected == ExpectedConfig(
        value=0.2, tolerance=0.003, metric="AP", model_sha256=None, selection=None
    )


def test_expect_ap_over_a_configured_figure_drops_its_model_and_selection_pin():
    config = dataclasses.replace(RunConfig(), expected=PINNED)
    assert with_expected(config, expect_ap=0.3).expected == ExpectedConfig(
        value=0.3, tolerance=0.01, metric="AP50", model_sha256=None, selection=None
    )
    assert with_expected(config, expect_ap=0.3, tolerance=0.0).expected == ExpectedConfig(
        value=0.3, tolerance=0.0, metric="AP50", model_sha256=None, selection=None
    )


def test_a_tolerance_alone_changes_only_the_tolerance():
    config = dataclasses.replace(RunConfig(), expected=PINNED)
    assert with_expected(config, tolerance=0.02).expected == dataclasses.replace(PINNED, tolerance=0.02)
    _refused(
        lambda: with_expected(RunConfig(), tolerance=0.01),
        "tolerance needs a reference: give expect_ap or set `expected` in the config",
    )
    _refused(
        lambda: with_expected(RunConfig(), tolerance=0.01, flags=True),
        "--tolerance needs a reference: give --expect-ap or set `expected` in the config",
    )


def test_expect_ap_and_tolerance_bounds():
    for value in (0.0, 1.0):
        assert with_expected(RunConfig(), expect_ap=value).expected == ExpectedConfig(value=value)
    for value in (19.5, -0.001, 1.001, float("nan"), float("inf")):
        _refused(
            lambda value=value: with_expected(RunConfig(), expect_ap=value),
            f"expect_ap: must be a COCO stat in [0, 1] (0.195, not 19.5), got {value}",
        )
    _refused(
        lambda: with_expected(RunConfig(), expect_ap=19.5, flags=True),
        "--expect-ap: must be a COCO stat in [0, 1] (0.195, not 19.5), got 19.5",
    )
    for value in (-0.001, float("nan"), float("inf")):
        _refused(
            lambda value=value: with_expected(RunConfig(), expect_ap=0.2, tolerance=value),
            f"tolerance: must be a number >= 0, got {value}",
        )
    _refused(
        lambda: with_expected(RunConfig(), expect_ap=0.2, tolerance=-1.0, flags=True),
        "--tolerance: must be a number >= 0, got -1.0",
    )


# --- with_baseline --------------------------------------------------------------------------------


def test_a_baseline_alone_is_held_with_the_default_drop(tmp_path):
    gate = with_baseline(RunConfig(), baseline="ci.json").gate
    assert (gate.baseline, gate.max_baseline_drop) == (tmp_path / "ci.json", 0.003)
    # A drop the config sets stays.
    own = dataclasses.replace(RunConfig(), gate=GateConfig(max_baseline_drop=0.02))
    gate = with_baseline(own, baseline=Path("/b/ci.json")).gate
    assert (gate.baseline, gate.max_baseline_drop) == (Path("/b/ci.json"), 0.02)


def test_a_drop_alone_needs_the_configs_baseline():
    configured = dataclasses.replace(RunConfig(), gate=GateConfig(baseline=Path("/b/own.json")))
    gate = with_baseline(configured, max_baseline_drop=0.01).gate
    assert (gate.baseline, gate.max_baseline_drop) == (Path("/b/own.json"), 0.01)
    _refused(
        lambda: with_baseline(RunConfig(), max_baseline_drop=0.01),
        "max_baseline_drop needs a baseline: give baseline FILE or set gate.baseline in the config",
    )
    _refused(
        lambda: with_baseline(RunConfig(), max_baseline_drop=0.01, flags=True),
        "--max-baseline-drop needs a baseline: give --baseline FILE or set gate.baseline in the config",
    )


def test_baseline_and_drop_bounds():
    for drop in (0, 1, 0.0, 1.0):
        assert (
            with_baseline(RunConfig(), baseline="b.json", max_baseline_drop=drop).gate.max_baseline_drop
            == drop
        )
    for drop in (1.5, -0.001, True, "0.1", float("nan"), float("inf")):
        _refused(
            lambda drop=drop: with_baseline(RunConfig(), baseline="b.json", max_baseline_drop=drop),
            f"max_baseline_drop: must be a number in [0, 1], got {drop!r}",
        )
    _refused(
        lambda: with_baseline(RunConfig(), baseline="b.json", max_baseline_drop=2, flags=True),
        "--max-baseline-drop: must be a number in [0, 1], got 2",
    )
    _refused(
        lambda: with_baseline(RunConfig(), baseline=3),  # type: ignore[arg-type]
        "baseline: give a baseline file's path, got 3",
    )
    _refused(
        lambda: with_baseline(RunConfig(), baseline=["a.json"], flags=True),  # type: ignore[arg-type]
        "--baseline: give a baseline file's path, got ['a.json']",
    )
